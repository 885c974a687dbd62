/**
 * The engine under test: an `EdgeNode` on each edge host, started at the run's start and again when its host
 * restarts (each start is an incarnation with a generation number), reloaded by `reload` steps. Its config is
 * `{ node: { id: edge name }, edge: { addresses: the edge host's, ...scenario.edge }, apps, access_rules }`, its
 * geolocation is built from the topology's clients (`topologyGeo`).
 *
 * Each node's two streams feed the run: every decision-trace line goes to the trace recorder (the hash, `onTrace`)
 * and then, with the Spectrum events, to the tracker. The node dials and binds through a thin wrapper of its host's
 * Network that tells the tracker which upstream socket it opened just after which trace record (see `tracker.ts`).
 */
import { createHash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { type GeoLookup } from '../core/geo.ts';
import { EdgeNode } from '../edge/edge-node.ts';
import { type ConnectTcpOptions, type Network } from '../net/ports.ts';
import { type SpectrumEvent } from '../streams/events.ts';
import { traceLine, type TraceRecord } from '../streams/trace.ts';
import { type Fail, type UdpCounters } from './results.ts';
import { canonicalIp, edgeConfig, UDP_COUNTER_KEYS } from './schema.ts';
import { type Tracker } from './tracker.ts';
import { type ScenarioFile, type TimelineStep, type Topology } from './types.ts';
import { type World } from './world.ts';

type ReloadSpec = Extract<TimelineStep, { reload: unknown }>['reload'];

/**
 * The edges' geolocation: each client address answers its client's `country` and `asn`. When any client has a
 * country, country data counts as loaded, so an address no client owns (or a client without one) is `XX`, as a real
 * database answers for unknown space; with none, every country answer is undefined (no country rule can match).
 */
export function topologyGeo(clients: Topology['clients']): GeoLookup {
  const byIp = new Map<string, { country: string | undefined; asn: number | undefined }>();
  for (const c of clients) for (const a of c.addresses) byIp.set(canonicalIp(a), { country: c.country, asn: c.asn });
  const anyCountry = clients.some((c) => c.country !== undefined);
  const key = (ip: string): string => canonicalIp(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip);
  return Object.freeze({
    country: (ip: string) => byIp.get(key(ip))?.country ?? (anyCountry ? 'XX' : undefined),
    asn: (ip: string) => {
      const asn = byIp.get(key(ip))?.asn;
      return asn === undefined ? undefined : { asn };
    },
  });
}

/** The decision trace of every edge, in recording order: its sha256, its line count, and the caller's `onTrace`. */
export class TraceRecorder {
  readonly #hash = createHash('sha256');
  readonly #onTrace: ((line: string) => void) | undefined;
  /** Trace lines not yet hashed: hashing in batches gives the same digest for a fraction of the calls. */
  #unhashed = '';
  #lines = 0;

  constructor(onTrace: ((line: string) => void) | undefined) {
    this.#onTrace = onTrace;
  }

  get lines(): number {
    return this.#lines;
  }

  record(r: TraceRecord): void {
    const line = traceLine(r);
    this.#unhashed += `${line}\n`;
    if (this.#unhashed.length >= 65_536) {
      this.#hash.update(this.#unhashed);
      this.#unhashed = '';
    }
    this.#lines++;
    this.#onTrace?.(line);
  }

  /** sha256 (hex) of every line, each followed by a newline. Call once, after the run. */
  digest(): string {
    return this.#hash.update(this.#unhashed).digest('hex');
  }
}

/** `code: message` of what an edge threw. */
function errorText(e: unknown): string {
  return `${(e as { code?: string }).code ?? 'error'}: ${(e as Error).message}`;
}

/** The edge nodes of the run, their current configuration sections, and every incarnation started. */
export class Edges {
  /** Every EdgeNode the run started (restarts included): UDP counters are summed over them. */
  readonly #nodes: EdgeNode[] = [];
  /** The running incarnation of each edge host (a crashed host has none). */
  readonly #running = new Map<string, EdgeNode>();
  readonly #world: World;
  readonly #tracker: Tracker;
  readonly #trace: TraceRecorder;
  readonly #fail: Fail;
  readonly #log: Logger = pino({ level: 'silent' });
  readonly #geo: GeoLookup;
  #generation = 0;
  #apps: readonly unknown[];
  #edgeSection: Record<string, unknown> | undefined;
  #accessRules: readonly unknown[] | undefined;

  constructor(world: World, sc: ScenarioFile, tracker: Tracker, trace: TraceRecorder, fail: Fail) {
    this.#world = world;
    this.#tracker = tracker;
    this.#trace = trace;
    this.#fail = fail;
    this.#apps = sc.apps;
    this.#edgeSection = sc.edge;
    this.#accessRules = sc.access_rules;
    this.#geo = topologyGeo(world.topo.clients);
  }

  /**
   * Starts an incarnation of the engine on edge host `name`. A configuration the node refuses is a failure at `path`;
   * one that no longer validates (the scenario was validated with it) is a bug and throws.
   */
  async start(name: string, path: string): Promise<void> {
    const host = this.#world.host(name);
    const tracker = this.#tracker;
    const trace = this.#trace;
    const gen = ++this.#generation;
    // The engine records `dial` and then calls connectTcp, synchronously: the wrapper pairs the two.
    const net: Network = {
      clock: host.clock,
      random: host.random,
      tls: host.tls,
      listenTcp: (o, cb) => host.listenTcp(o, cb),
      connectTcp: (o: ConnectTcpOptions) => {
        const c = host.connectTcp(o);
        tracker.upstreamOpened(c.local);
        return c;
      },
      resolve: (n, t) => host.resolve(n, t),
      bindUdp: async (o) => {
        const sock = await host.bindUdp(o);
        if (o.port !== 0) return sock; // an edge port; flows' upstream sockets bind port 0
        return {
          get local() {
            return sock.local;
          },
          setHandler(h) {
            // The engine sets an upstream socket's handler and, synchronously after, records the flow's `established`.
            tracker.udpUpstreamArmed(name, sock.local.port);
            sock.setHandler(h);
          },
          send: (d, port, address) => sock.send(d, port, address),
          close: () => sock.close(),
        };
      },
    };
    const cfg = edgeConfig(name, host.addresses, this.#edgeSection, this.#apps, this.#accessRules);
    if (!cfg.ok) throw new Error(`edge ${name}: config became invalid: ${cfg.issues.map((i) => `${i.pointer} ${i.code}`).join(', ')}`);
    const node = new EdgeNode({ net, log: this.#log, geo: this.#geo, certs: this.#world.certSource(host) }, cfg.config);
    this.#nodes.push(node);
    node.trace.records$.subscribe((r: TraceRecord) => {
      trace.record(r);
      tracker.onTrace(name, gen, r);
    });
    node.events.events$.subscribe((e: SpectrumEvent) => tracker.onEvent(gen, e));
    this.#running.set(name, node);
    try {
      await node.apply(cfg.config);
    } catch (e) {
      this.#fail(path, 'the edge applies its configuration', errorText(e));
    }
  }

  /** Edge host `name` crashed: its node is gone (a `restart` starts a new incarnation). */
  crashed(name: string): void {
    this.#running.delete(name);
  }

  /** A hot reload: replaces the sections `r` gives and applies the result to every running edge; failures at `path`. */
  async reload(r: ReloadSpec, path: string): Promise<void> {
    if (r.apps !== undefined) this.#apps = r.apps;
    if (r.edge !== undefined) this.#edgeSection = r.edge;
    if (r.access_rules !== undefined) this.#accessRules = r.access_rules;
    for (const [name, node] of this.#running) {
      const cfg = edgeConfig(name, this.#world.host(name).addresses, this.#edgeSection, this.#apps, this.#accessRules);
      if (!cfg.ok) {
        this.#fail(path, 'a valid configuration', cfg.issues.map((x) => `${x.pointer} ${x.code}`).join(', '));
        continue;
      }
      try {
        await node.apply(cfg.config);
      } catch (e) {
        this.#fail(path, 'the edge applies the new configuration', errorText(e));
      }
    }
  }

  /** The UDP engines' counters, summed over every incarnation. */
  udpCounters(): UdpCounters {
    return Object.fromEntries(UDP_COUNTER_KEYS.map((k) => [k, this.#nodes.reduce((n, node) => n + node.udp.stats[`udp_${k}`], 0)])) as UdpCounters;
  }
}
