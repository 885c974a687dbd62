/**
 * The engine under test: an `EdgeNode` on each edge host, started at the run's start and again when its host
 * restarts (each start is an incarnation with a generation number), reloaded by `reload` steps. Its config is
 * `{ node: { id: edge name }, edge: { addresses: the edge host's, ...scenario.edge }, apps, access_rules, zones }`, its
 * geolocation is built from the topology's clients (`topologyGeo`).
 *
 * Each node's configuration goes through a real `ConfigSource` (src/api), as under `refract serve` with the API on:
 * the scenario's sections play the config file, an in-memory `ApiStore` per edge host holds the apps `api` steps
 * create (it outlives a crash, like the database on disk: a restarted edge starts with them), `reload` steps are file
 * reloads (`follow`, which keeps the API apps), and `api` steps call `create`/`replace`/`delete` as the HTTP routes do.
 * created_on/modified_on come from the host's virtual clock and app ids from a seeded stream (`World.ids`).
 *
 * With a `dns` section, each edge that has a listen address there runs the authoritative DNS server (src/dns,
 * `startDnsServer` on the edge host's Network, UDP and TCP) once its configuration is applied, and again after a
 * restart. It answers from a view of the ConfigSource's running configuration (`dnsViewOf`), built again on the first
 * query after each apply (start, file reload, api write), so a name answers what the edge binds for it at that moment.
 *
 * Each node's two streams feed the run: every decision-trace line goes to the trace recorder (the hash, `onTrace`)
 * and then, with the Spectrum events, to the tracker. The node dials and binds through a thin wrapper of its host's
 * Network that tells the tracker which upstream socket it opened just after which trace record (see `tracker.ts`).
 */
import { createHash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { firstValueFrom, of } from 'rxjs';
import { ApiWriteError, ConfigSource, type Actor } from '../api/config-source.ts';
import { ApiStore } from '../api/store.ts';
import { startDnsServer } from '../dns/server.ts';
import { dnsViewOf, type DnsView } from '../dns/view.ts';
import { DEFAULTS } from '../model/defaults.ts';
import { type RefractConfig } from '../model/types.ts';
import { type GeoLookup } from '../core/geo.ts';
import { EdgeNode } from '../edge/edge-node.ts';
import { type ConnectTcpOptions, type Network } from '../net/ports.ts';
import { type SpectrumEvent } from '../streams/events.ts';
import { traceLine, TraceLineWriter, type TraceRecord } from '../streams/trace.ts';
import { type SimAnalytics } from './analytics.ts';
import { type ApiOutcome, type Fail, type UdpCounters } from './results.ts';
import { canonicalIp, dnsListens, edgeConfig, edgeConfigInput, findZone, parseIpPort, UDP_COUNTER_KEYS, type IpPort } from './schema.ts';
import { type Tracker } from './tracker.ts';
import { type ApiStep, type ScenarioFile, type TimelineStep, type Topology } from './types.ts';
import { type World } from './world.ts';

/** Who an `api` step writes as, in the edge's audit log. */
const SCENARIO_ACTOR: Actor = { id: 'scenario', name: 'scenario timeline', kind: 'token', email: undefined };

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
  // Each address as the engine writes it → its client's entry (null: no client has it), canonicalised once per address.
  const seen = new Map<string, { country: string | undefined; asn: number | undefined } | null>();
  const entry = (ip: string): { country: string | undefined; asn: number | undefined } | undefined => {
    let e = seen.get(ip);
    if (e === undefined) {
      e = byIp.get(canonicalIp(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip)) ?? null;
      seen.set(ip, e);
    }
    return e ?? undefined;
  };
  return Object.freeze({
    country: (ip: string) => entry(ip)?.country ?? (anyCountry ? 'XX' : undefined),
    asn: (ip: string) => {
      const asn = entry(ip)?.asn;
      return asn === undefined ? undefined : { asn };
    },
  });
}

/** The decision trace of every edge, in recording order: its sha256, its line count, and the caller's `onTrace`. */
export class TraceRecorder {
  readonly #hash = createHash('sha256');
  readonly #onTrace: ((line: string) => void) | undefined;
  /** The lines' bytes, gathered in a reused buffer and hashed in chunks (no string per line unless `onTrace` wants one). */
  readonly #out = new TraceLineWriter((bytes) => this.#hash.update(bytes));
  #lines = 0;

  constructor(onTrace: ((line: string) => void) | undefined) {
    this.#onTrace = onTrace;
  }

  get lines(): number {
    return this.#lines;
  }

  record(r: TraceRecord): void {
    this.#lines++;
    const onTrace = this.#onTrace;
    if (onTrace === undefined) {
      this.#out.write(r);
      return;
    }
    const line = traceLine(r);
    this.#out.writeLine(line);
    onTrace(line);
  }

  /** sha256 (hex) of every line, each followed by a newline. Call once, after the run. */
  digest(): string {
    this.#out.flush();
    return this.#hash.digest('hex');
  }
}

/** `code: message` of what an edge threw (a ConfigSource refusal: each issue's pointer and code). */
function errorText(e: unknown): string {
  if (e instanceof ApiWriteError) return issuesText(e.issues);
  return `${(e as { code?: string }).code ?? 'error'}: ${(e as Error).message}`;
}

function issuesText(issues: ReadonlyArray<{ pointer: string; code: string }>): string {
  return issues.map((i) => `${i.pointer} ${i.code}`).join(', ');
}

/** What the config file's name is in the API's messages (E_API_FILE_APP names it). */
const FILE_NAME = 'the scenario file';

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
  readonly #zones: readonly unknown[] | undefined;
  /** The ConfigSource of each running incarnation. */
  readonly #sources = new Map<string, ConfigSource>();
  /** Per edge host, for the whole run (restarts included): the API's store, its app-id stream, and ref → app. */
  readonly #stores = new Map<string, ApiStore>();
  readonly #appIds = new Map<string, () => string>();
  readonly #refs = new Map<string, Map<string, { id: string; zoneId: string }>>();
  readonly #apiOutcomes: ApiOutcome[] = [];
  /** api steps run one after another (a step at the same time as another waits for it, so refs are bound). */
  #apiChain: Promise<void> = Promise.resolve();
  /** Every ref an api create names (the others name file apps). */
  readonly #createRefs: ReadonlySet<string>;
  /** Per edge host: where its DNS server listens, and that address's pointer in the file (`dns` section). */
  readonly #dnsListen = new Map<string, { at: IpPort; pointer: string }>();
  readonly #dnsTtlSec: number;
  /** Where every incarnation's Spectrum events are also rolled up (src/scenario/analytics.ts). */
  readonly #analytics: SimAnalytics | undefined;

  constructor(world: World, sc: ScenarioFile, tracker: Tracker, trace: TraceRecorder, fail: Fail, analytics?: SimAnalytics) {
    this.#world = world;
    this.#tracker = tracker;
    this.#trace = trace;
    this.#fail = fail;
    this.#analytics = analytics;
    this.#apps = sc.apps;
    this.#edgeSection = sc.edge;
    this.#accessRules = sc.access_rules;
    this.#zones = sc.zones;
    this.#createRefs = new Set(sc.timeline.flatMap((t) => ('api' in t && t.api.create !== undefined ? [t.api.create.ref] : [])));
    this.#geo = topologyGeo(world.topo.clients);
    this.#dnsTtlSec = sc.dns?.ttl ?? DEFAULTS.dnsTtlSec;
    const listens = dnsListens(sc.dns);
    listens.forEach((l, k) => {
      const at = parseIpPort(l)!;
      const edge = world.topo.edges.find((e) => world.host(e.name).addresses.some((a) => canonicalIp(a) === canonicalIp(at.address)));
      if (edge !== undefined) this.#dnsListen.set(edge.name, { at, pointer: typeof sc.dns?.listen === 'string' ? '/dns/listen' : `/dns/listen/${k}` });
    });
  }

  /** The config "file" of edge `name`: the scenario's sections as they are now. */
  #fileRaw(name: string): Record<string, unknown> {
    return edgeConfigInput(name, this.#world.host(name).addresses, this.#edgeSection, this.#apps, this.#accessRules, this.#zones);
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
    const cfg = edgeConfig(name, host.addresses, this.#edgeSection, this.#apps, this.#accessRules, this.#zones);
    if (!cfg.ok) throw new Error(`edge ${name}: config became invalid: ${issuesText(cfg.issues)}`);
    const node = new EdgeNode({ net, log: this.#log, geo: this.#geo, certs: this.#world.certSource(host) }, cfg.config);
    this.#nodes.push(node);
    node.trace.records$.subscribe((r: TraceRecord) => {
      trace.record(r);
      tracker.onTrace(name, gen, r);
    });
    // The tracker needs the closing events only: without the analytics rollup (which counts `connect` events too)
    // the engine then builds no `connect` event at all.
    const analytics = this.#analytics;
    if (analytics === undefined) {
      node.events.closings$.subscribe((e: SpectrumEvent) => {
        tracker.onEvent(gen, e);
      });
    } else {
      node.events.events$.subscribe((e: SpectrumEvent) => {
        tracker.onEvent(gen, e);
        analytics.add(e);
      });
    }
    this.#running.set(name, node);
    let store = this.#stores.get(name);
    if (store === undefined) {
      store = new ApiStore(':memory:');
      this.#stores.set(name, store);
      this.#appIds.set(name, this.#world.ids(`api-apps:${name}`));
      this.#refs.set(name, new Map());
    }
    const source = new ConfigSource({
      edge: node,
      store,
      file: FILE_NAME,
      fileRaw: this.#fileRaw(name),
      now: () => new Date(host.clock.epochMs()),
      newAppId: this.#appIds.get(name)!,
    });
    this.#sources.set(name, source);
    try {
      await source.start(); // the file's apps and the API apps stored before a crash
    } catch (e) {
      this.#fail(path, 'the edge applies its configuration', errorText(e));
      return;
    }
    await this.#startDns(name, source);
  }

  /**
   * The DNS server of edge `name`, if the `dns` section gives it a listen address: bound on the edge host, answering
   * from `source`'s running configuration (a new view on the first query after each apply). It dies with its host
   * (a crash) like every socket there; a bind failure is a failure at the listen address's pointer.
   */
  async #startDns(name: string, source: ConfigSource): Promise<void> {
    const listen = this.#dnsListen.get(name);
    if (listen === undefined) return;
    let seen: RefractConfig | undefined;
    let view: DnsView | undefined;
    const current = (): DnsView => {
      const config = source.config;
      if (config !== seen || view === undefined) {
        seen = config;
        view = dnsViewOf(config, { ttlSec: this.#dnsTtlSec, listenHost: listen.at.address });
      }
      return view;
    };
    try {
      await startDnsServer(this.#world.host(name), { host: listen.at.address, port: listen.at.port }, current);
    } catch (e) {
      this.#fail(listen.pointer, `the DNS server listens on edge ${name}`, errorText(e));
    }
  }

  /** Edge host `name` crashed: its node is gone (a `restart` starts a new incarnation; the API store stays). */
  crashed(name: string): void {
    this.#running.delete(name);
    this.#sources.delete(name);
  }

  /**
   * A hot reload: replaces the sections `r` gives and applies the result to every running edge as a file reload
   * (`ConfigSource.follow`: the API apps stay, and a file that conflicts with one is refused whole); failures at `path`.
   */
  async reload(r: ReloadSpec, path: string): Promise<void> {
    if (r.apps !== undefined) this.#apps = r.apps;
    if (r.edge !== undefined) this.#edgeSection = r.edge;
    if (r.access_rules !== undefined) this.#accessRules = r.access_rules;
    for (const [name, source] of this.#sources) {
      const outcome = await firstValueFrom(source.follow(of(this.#fileRaw(name))));
      if (outcome.ok) continue;
      // ConfigSource refuses an invalid merge with an ApiWriteError; a failed apply rejects with the edge's error.
      if (outcome.error instanceof ApiWriteError) {
        this.#fail(path, 'a valid configuration', errorText(outcome.error));
      } else {
        this.#fail(path, 'the edge applies the new configuration', errorText(outcome.error));
      }
    }
  }

  /**
   * An `api` step (index `step`, at `at`): the write on every edge host in topology order, through its ConfigSource's
   * `create`/`replace`/`delete`/`rotateEdgeIps` (what the HTTP routes call, after the route's own zone check). Each outcome is recorded;
   * one that does not match `expect_error` (refused when it should succeed, or the other way round, or another code)
   * is a failure at `path`. An edge that is down refuses with EHOSTDOWN.
   */
  api(s: ApiStep, step: number, at: number, path: string): Promise<void> {
    const run = this.#apiChain.then(async () => {
      for (const e of this.#world.topo.edges) {
        const outcome = await this.#apiWrite(e.name, s, step, at);
        this.#apiOutcomes.push(outcome);
        this.#checkApiOutcome(outcome, s.expect_error, path);
      }
    });
    this.#apiChain = run.catch(() => undefined);
    return run;
  }

  async #apiWrite(edge: string, s: ApiStep, step: number, at: number): Promise<ApiOutcome> {
    const op = s.create !== undefined ? 'create' : s.update !== undefined ? 'update' : s.rotate !== undefined ? 'rotate' : 'delete';
    const ref = (s.create ?? s.update ?? s.rotate ?? s.delete)!.ref;
    const base = { step, at, edge, op, ref } as const;
    const source = this.#sources.get(edge);
    if (source === undefined) return { ...base, id: null, code: 'EHOSTDOWN', message: `edge ${edge} is down` };
    const refs = this.#refs.get(edge)!;
    const refused = (id: string | null, e: unknown): ApiOutcome => {
      if (!(e instanceof ApiWriteError)) throw e;
      return { ...base, id, code: e.issues[0]?.code ?? 'E_INTERNAL', message: e.message };
    };
    if (s.create !== undefined) {
      const want = s.create.zone;
      const zone = want === undefined ? source.zones[0] : findZone(source.zones, want);
      if (zone === undefined) return { ...base, id: null, code: 'E_API_ZONE_NOT_FOUND', message: `no zone ${want ?? ''}` };
      try {
        const app = await source.create(zone.id, s.create.app, SCENARIO_ACTOR);
        refs.set(ref, { id: app.id, zoneId: zone.id });
        return { ...base, id: app.id, code: null, message: null };
      } catch (e) {
        return refused(null, e);
      }
    }
    // An API app by its ref (on this edge), else a file app by its id, in the zone the API lists it in.
    const target = refs.get(ref) ?? (this.#createRefs.has(ref) ? undefined : this.#fileApp(source, ref));
    if (target === undefined) return { ...base, id: null, code: 'E_SCENARIO_REFERENCE', message: `no app has ref ${ref} on edge ${edge} (its create did not succeed there)` };
    try {
      if (s.rotate !== undefined) {
        const app = await source.rotateEdgeIps(target.zoneId, target.id, SCENARIO_ACTOR);
        const ips = app['ips'];
        return { ...base, id: target.id, code: null, message: null, ips: Array.isArray(ips) ? (ips as string[]) : [] };
      }
      if (s.update !== undefined) await source.replace(target.zoneId, target.id, s.update.app, SCENARIO_ACTOR);
      else await source.delete(target.zoneId, target.id, SCENARIO_ACTOR);
      return { ...base, id: target.id, code: null, message: null };
    } catch (e) {
      return refused(target.id, e);
    }
  }

  /** A file app's id and zone (a file app a reload removed: the first zone, where the API answers 404). */
  #fileApp(source: ConfigSource, id: string): { id: string; zoneId: string } | undefined {
    const zone = source.zones.find((z) => source.app(z.id, id)?.fromFile === true) ?? source.zones[0];
    return zone === undefined ? undefined : { id, zoneId: zone.id };
  }

  #checkApiOutcome(o: ApiOutcome, expectError: string | undefined, path: string): void {
    const actual = o.code === null ? { edge: o.edge, applied: true, id: o.id } : { edge: o.edge, code: o.code, message: o.message };
    if (expectError === undefined && o.code !== null) this.#fail(path, { applied: true }, actual);
    else if (expectError !== undefined && o.code !== expectError) this.#fail(`${path}/expect_error`, { code: expectError }, actual);
  }

  /** Each api step's outcome on each edge, in the order they ran. */
  apiOutcomes(): readonly ApiOutcome[] {
    return this.#apiOutcomes;
  }

  /** Closes the API stores (after the run). */
  close(): void {
    for (const s of this.#stores.values()) s.close();
    this.#stores.clear();
  }

  /** The UDP engines' counters, summed over every incarnation. */
  udpCounters(): UdpCounters {
    return Object.fromEntries(UDP_COUNTER_KEYS.map((k) => [k, this.#nodes.reduce((n, node) => n + node.udp.stats[`udp_${k}`], 0)])) as UdpCounters;
  }
}
