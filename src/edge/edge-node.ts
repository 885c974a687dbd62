/**
 * EdgeNode: builds listeners and connection machines from configuration snapshots, and changes them in place.
 *
 * Reload semantics (`apply`):
 * - added apps start listening; removed apps stop accepting and their open connections drain (they continue until
 *   `drain_timeout_ms`, then close); changed apps apply to new connections only, and an address or port a changed
 *   app no longer has stops accepting and drains the same way; unchanged apps are untouched;
 * - it is all-or-nothing: new ports are bound first, and if any bind fails they are released again and the running
 *   configuration stays, with the error returned (E_LISTEN_*).
 * Applies are serialised: a snapshot arriving while one is being applied waits its turn.
 */
import type { Logger } from 'pino';
import { concatMap, from, tap, type Observable, type Subscription } from 'rxjs';
import type { CertSource, Conn, Network, TcpListener, UdpSocket } from '../net/ports.ts';
import { EdgeTls } from './edge-tls.ts';
import type { AccessRule, AppSpec, RefractConfig, UpstreamTarget } from '../model/types.ts';
import { RefractError, listenErrorCode } from '../model/errors.ts';
import { TcpEngine } from '../machines/tcp-connection.ts';
import { UdpEngine, type UdpSlot } from '../machines/udp-flow.ts';
import { EventLog } from '../streams/events.ts';
import { Trace } from '../streams/trace.ts';
import { AcceptStream } from '../streams/machine-inputs.ts';
import { LogLimiter } from '../streams/log-limit.ts';
import { DEFAULTS } from '../model/defaults.ts';
import { createOriginResolver, type OriginResolver } from './origin-resolver.ts';
import { compileAccessRules, type CompiledAccessRules } from '../core/access-rules.ts';
import { NO_GEO, type GeoLookup } from '../core/geo.ts';
import { ClientLimiter } from '../core/client-limits.ts';
import { allocateEdgeIps, appBindAddresses, poolsConfigured, type EdgeIpState } from '../model/edge-ips.ts';

/** Connections held per new listener while a change is prepared (docs/architecture.md): past it, reset. */
const HELD_MAX = 1024;

interface ListenerSlot {
  readonly key: string;
  readonly protocol: 'tcp' | 'udp';
  readonly host: string;
  readonly port: number;
  /** The app serving this edge ip:port now; swapped in place on reload. */
  app: AppSpec | undefined;
  listener: TcpListener | undefined;
  /** The listener's accepted connections, and the engine's subscription to them. */
  accepted: Subscription | undefined;
  /**
   * Connections accepted between the bind (first phase) and the commit: held, paused, until the commit gives the
   * slot its app (and, on a first start, the node its settings); reset if the change is aborted.
   */
  held: Conn[] | undefined;
  udp: (UdpSlot & { app: AppSpec | undefined }) | undefined;
}

export interface ApplyResult {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
  readonly unchanged: string[];
  readonly listeners: number;
}

/** What `follow` reports for each snapshot: applied, or rejected with the running configuration kept. */
export type FollowResult =
  | { readonly ok: true; readonly config: RefractConfig; readonly result: ApplyResult }
  | { readonly ok: false; readonly config: RefractConfig; readonly error: unknown };

/** A change whose first phase is done (`EdgeNode.prepare`): commit it or abort it, exactly once. */
export interface PreparedApply {
  /** The configuration as it will run (its edge-IP allocation set when the edge made it). */
  readonly config: RefractConfig;
  commit(): Promise<ApplyResult>;
  abort(): Promise<void>;
}

interface Prepared {
  readonly config: RefractConfig;
  readonly tls: Awaited<ReturnType<EdgeTls['prepare']>>;
  readonly fresh: ListenerSlot[];
  readonly desired: Map<string, { protocol: 'tcp' | 'udp'; host: string; port: number; app: AppSpec }>;
  readonly prev: Map<string, AppSpec>;
  readonly next: Map<string, AppSpec>;
}

/** Maps a bind failure's errno to Refract's code (it lives in src/model/errors.ts; re-exported for callers). */
export { listenErrorCode };

function slotKey(protocol: 'tcp' | 'udp', host: string, port: number): string {
  return `${protocol}|${host}|${port}`;
}

/** The compiled rules one app meets, with the geolocation data: what the engines' `access(app)` returns. */
interface AccessTable {
  readonly rules: CompiledAccessRules;
  readonly geo: GeoLookup;
}

/**
 * One table of compiled rules per zone that has rules of its own (the node-wide rules followed by the zone's), and
 * the node-wide table for every other app. Built once per applied configuration, never per connection.
 */
interface AccessTables {
  readonly nodeWide: AccessTable;
  readonly byZone: ReadonlyMap<string, AccessTable>;
}

function compileAccessTables(rules: readonly AccessRule[], geo: GeoLookup): AccessTables {
  const nodeWide = rules.filter((r) => r.zone === undefined);
  const zoned = new Map<string, AccessRule[]>();
  for (const r of rules) {
    if (r.zone === undefined) continue;
    const list = zoned.get(r.zone) ?? [];
    list.push(r);
    zoned.set(r.zone, list);
  }
  const byZone = new Map<string, AccessTable>();
  // Node-wide rules first: between rules of equal specificity the earlier wins (after allow over block).
  for (const [zone, list] of zoned) byZone.set(zone, Object.freeze({ rules: compileAccessRules([...nodeWide, ...list]), geo }));
  return { nodeWide: Object.freeze({ rules: compileAccessRules(nodeWide), geo }), byZone };
}

export interface EdgeNodeDeps {
  readonly net: Network;
  readonly log: Logger;
  readonly events?: EventLog;
  readonly trace?: Trace;
  /** Country/ASN data (the CLI loads it from `geo:` files); none = lookups answer nothing. */
  readonly geo?: GeoLookup;
  /** Edge certificates and origin trust (real: PEM files and the local CA; sim: descriptors). None: TLS apps fail with 540. */
  readonly certs?: CertSource;
  /**
   * The edge-IP allocation to keep (a state file, read at start), for configs applied without one of their own: the
   * first such apply keeps these addresses, later ones keep the running allocation.
   */
  readonly edgeIps?: EdgeIpState;
  /** false: bind no UDP listener (a worker of `serve --workers` other than the first, on a runtime without reusePort). */
  readonly udp?: boolean;
}

export class EdgeNode {
  readonly #net: Network;
  readonly #log: Logger;
  readonly events: EventLog;
  readonly trace: Trace;
  readonly tcp: TcpEngine;
  readonly udp: UdpEngine;
  readonly #resolver: OriginResolver;
  #config: RefractConfig | undefined;
  readonly #slots = new Map<string, ListenerSlot>();
  #chain: Promise<unknown> = Promise.resolve();
  #access: AccessTables;
  readonly #geo: GeoLookup;
  #stopped = false;
  readonly #tls: EdgeTls;
  readonly #seedEdgeIps: EdgeIpState | undefined;
  /** The per-cause limit of the connection path's log lines (`log.rate_limit`; docs/hardening.md). */
  readonly logLimit: LogLimiter;
  readonly #limiter: ClientLimiter;
  readonly #udpOn: boolean;

  constructor(deps: EdgeNodeDeps, initial: RefractConfig) {
    this.#udpOn = deps.udp !== false;
    this.#seedEdgeIps = deps.edgeIps;
    this.#net = deps.net;
    this.#log = deps.log;
    this.events = deps.events ?? new EventLog();
    this.trace = deps.trace ?? new Trace();
    this.#geo = deps.geo ?? NO_GEO;
    this.#access = compileAccessTables(initial.accessRules, this.#geo);
    this.#resolver = createOriginResolver({
      net: deps.net,
      clock: deps.net.clock,
      minTtlSec: initial.node.dnsMinTtlSec,
      log: deps.log.child({ component: 'origin-resolver' }),
    });
    this.#tls = new EdgeTls(deps.certs);
    const clock = deps.net.clock;
    const limitLog = deps.log.child({ component: 'log-limit' });
    this.logLimit = new LogLimiter(
      initial.log.rateLimit ?? { lines: DEFAULTS.logRateLimitLines, intervalMs: DEFAULTS.logRateLimitIntervalMs },
      { now: () => clock.now(), setTimer: (ms, fn) => clock.setTimer(ms, fn) },
      (cause, suppressed, intervalMs) =>
        limitLog.warn({ event: 'log.suppressed', cause, suppressed, intervalMs }, `${cause}: ${suppressed} more in the last ${Math.round(intervalMs / 100) / 10} s`),
    );
    this.#limiter = new ClientLimiter(initial.node.limitsMaxTrackedClients ?? DEFAULTS.limitsMaxTrackedClients);
    // Both engines share the node's environment: ports, settings, origin resolution, event and trace streams.
    const engineDeps = {
      net: deps.net,
      clock: deps.net.clock,
      settings: () => this.#config!.node,
      targets: (app: AppSpec, port: number) => this.#targets(app, port),
      events: this.events,
      access: (app: AppSpec | undefined) => (app?.zoneId === undefined ? undefined : this.#access.byZone.get(app.zoneId)) ?? this.#access.nodeWide,
      trace: this.trace,
      log: deps.log,
      logLimit: this.logLimit,
      // One limiter for both engines: a client's connections and flows count together.
      limiter: this.#limiter,
    };
    this.tcp = new TcpEngine({ ...engineDeps, tls: this.#tls });
    this.udp = new UdpEngine(engineDeps);
  }

  get config(): RefractConfig | undefined {
    return this.#config;
  }

  /** Bound edge addresses, `host:port` → app id (for tests and the status page). */
  listeners(): Array<{ protocol: 'tcp' | 'udp'; host: string; port: number; app: string | undefined }> {
    return [...this.#slots.values()].map((s) => ({ protocol: s.protocol, host: s.host, port: s.port, app: s.app?.id }));
  }

  #targets(app: AppSpec, port: number): readonly UpstreamTarget[] | Promise<readonly UpstreamTarget[]> {
    return this.#resolver.targetsSync(app, port) ?? this.#resolver.targets(app, port);
  }

  /** Applies a validated configuration (see the module comment). Serialised with other applies. */
  apply(config: RefractConfig): Promise<ApplyResult> {
    return this.#applied(config).then((r) => r.result);
  }

  /** Like `apply`, with the configuration as applied (its edge-IP allocation set when the edge made it). */
  #applied(config: RefractConfig): Promise<{ config: RefractConfig; result: ApplyResult }> {
    const run = this.#chain.then(async () => this.#commit(await this.#prepare(config)));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * The first phase of `apply` alone (for `serve --workers`, which applies a change in every worker at once):
   * certificates loaded and new ports bound, nothing running changed yet. The caller then calls exactly one of
   * `commit` (the second phase: `apply`'s result) or `abort` (the new ports released, nothing changed); other
   * applies wait until then. Rejects, changing nothing, like `apply`.
   */
  prepare(config: RefractConfig): Promise<PreparedApply> {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const run = this.#chain.then(() => this.#prepare(config));
    this.#chain = run.then(
      () => held,
      () => undefined,
    );
    run.catch(() => undefined);
    return run.then((p) => {
      let done = false;
      return {
        config: p.config,
        commit: async () => {
          if (done) throw new RefractError('E_INTERNAL', { message: 'this prepared change was already committed or aborted' });
          done = true;
          try {
            return (await this.#commit(p)).result;
          } finally {
            release();
          }
        },
        abort: async () => {
          if (done) return;
          done = true;
          try {
            await EdgeNode.#release(p.fresh);
          } finally {
            release();
          }
        },
      };
    });
  }

  /**
   * Follows a stream of validated snapshots (the CLI's file and SIGHUP reloads): applies each in turn and reports
   * the outcome of each, in order (cold: nothing happens until subscribed). A rejected snapshot is logged and
   * reported; the running configuration stays and later snapshots are still applied.
   */
  follow(snapshots$: Observable<RefractConfig>): Observable<FollowResult> {
    return snapshots$.pipe(
      concatMap((config) =>
        from(
          this.#applied(config).then(
            (r): FollowResult => ({ ok: true, config: r.config, result: r.result }),
            (error: unknown): FollowResult => ({ ok: false, config, error }),
          ),
        ),
      ),
      tap((o) => {
        if (o.ok) this.#log.info({ event: 'config.applied', ...o.result }, 'configuration applied');
        else this.#log.error({ event: 'config.rejected', err: o.error }, 'configuration rejected; the running configuration stays');
      }),
    );
  }

  static async #release(fresh: readonly ListenerSlot[]): Promise<void> {
    await Promise.all(fresh.map((s) => s.listener?.close()));
    for (const s of fresh) {
      s.accepted?.unsubscribe();
      s.udp?.sock.close();
      for (const c of s.held ?? []) c.reset();
      s.held = undefined;
    }
  }

  async #prepare(config: RefractConfig): Promise<Prepared> {
    if (this.#stopped) throw new RefractError('E_INTERNAL', { message: 'the edge node is shut down' });
    // With pools, a config not allocated by its caller is allocated here, keeping the running allocation.
    if (config.edgeIps === undefined && poolsConfigured(config)) {
      const r = allocateEdgeIps(config, this.#config?.edgeIps ?? this.#seedEdgeIps, this.#net.clock.epochMs());
      if (!r.ok) {
        const first = r.issues[0]!;
        throw new RefractError(first.code, { message: r.issues.map((i) => `${i.message} (at ${i.pointer || '/'})`).join('; '), details: { issues: r.issues } });
      }
      for (const m of r.moved) this.#log.warn({ event: 'edge_ips.moved', ...m }, `${m.name}: ${m.from} is in no pool any more; now ${m.to ?? 'none'}`);
      config = r.config;
    }
    const prev = new Map((this.#config?.apps ?? []).map((a) => [a.id, a] as const));
    const next = new Map(config.apps.map((a) => [a.id, a] as const));

    // Desired slots: each app's own edge addresses (without pools: every edge address) × its ports, per protocol.
    const desired = new Map<string, { protocol: 'tcp' | 'udp'; host: string; port: number; app: AppSpec }>();
    for (const app of next.values()) {
      // A worker of `serve --workers` on a runtime without reusePort leaves UDP to one worker (flow affinity).
      if (app.protocol === 'udp' && !this.#udpOn) continue;
      for (const host of appBindAddresses(config, app)) {
        for (let p = app.edgePorts.start; p <= app.edgePorts.end; p++) {
          desired.set(slotKey(app.protocol, host, p), { protocol: app.protocol, host, port: p, app });
        }
      }
    }

    // Phase 1: load or issue certificates, then bind what is new; on any failure release those and keep
    // everything as it was.
    const tls = await this.#tls.prepare(config);
    const fresh: ListenerSlot[] = [];
    try {
      for (const [key, d] of desired) {
        // A removed UDP app's socket still draining on this port is taken over in phase 2, not bound again.
        if (this.#slots.has(key) || this.#udpClosing.has(key)) continue;
        const slot: ListenerSlot = { key, protocol: d.protocol, host: d.host, port: d.port, app: undefined, listener: undefined, accepted: undefined, udp: undefined, held: undefined };
        fresh.push(slot);
        try {
          if (d.protocol === 'tcp') {
            // The listener's accepts become a stream; the TCP engine takes each with the slot's app of the moment.
            const accepted$ = new AcceptStream<Conn>();
            slot.held = [];
            slot.accepted = accepted$.subscribe((conn) => {
              const held = slot.held;
              if (held === undefined) this.tcp.accept(conn, slot.app, slot.key);
              else if (held.length < HELD_MAX) held.push(conn);
              else conn.reset();
            });
            slot.listener = await this.#net.listenTcp({ host: d.host, port: d.port }, accepted$.onConnection);
          } else {
            const asked = config.node.udpReceiveBufferBytes;
            const sock: UdpSocket = await this.#net.bindUdp({ host: d.host, port: d.port, receiveBufferBytes: asked });
            slot.udp = { sock, app: undefined };
            // Linux grants at most net.core.rmem_max.
            const got = sock.receiveBufferBytes;
            if (got !== undefined && got < asked) {
              this.#log.warn(
                { event: 'udp.receive_buffer', app: d.app.id, address: d.host, port: d.port, asked, got },
                `edge UDP socket ${d.host}:${d.port}: receive buffer ${got} bytes, below edge.udp_receive_buffer ${asked} (raise net.core.rmem_max)`,
              );
            }
          }
        } catch (e) {
          const code = (e as { code?: string }).code;
          throw new RefractError(listenErrorCode(code), {
            details: { address: d.host, port: d.port, app: d.app.id, cause: code },
            cause: e,
          });
        }
      }
    } catch (e) {
      await EdgeNode.#release(fresh);
      throw e;
    }
    return { config, tls, fresh, desired, prev, next };
  }

  async #commit(p: Prepared): Promise<{ config: RefractConfig; result: ApplyResult }> {
    const { config, tls, fresh, desired, prev, next } = p;
    // Phase 2: commit. Nothing below can fail (rules were validated; compiling them cannot fail).
    this.#access = compileAccessTables(config.accessRules, this.#geo);
    this.#tls.commit(tls);
    for (const s of fresh) {
      this.#slots.set(s.key, s);
      if (s.udp) this.udp.attach(s.udp);
    }
    for (const key of desired.keys()) {
      const draining = this.#udpClosing.get(key);
      if (draining === undefined) continue;
      // Its old app's flows keep draining on it (to their deadline); new sources go to the new app.
      draining.cancel();
      this.#udpClosing.delete(key);
      this.#slots.set(key, draining.slot);
    }
    for (const [key, d] of desired) {
      const slot = this.#slots.get(key)!;
      slot.app = d.app;
      if (slot.udp) slot.udp.app = d.app;
    }
    const closing: Promise<void>[] = [];
    // Connections on a slot that goes away drain to the deadline even when their app stays (it moved to other
    // addresses: edge-IP rotation; or its port range shrank); a removed app's are drained below as well.
    const goneTcp = new Set<string>();
    const goneUdp = new Set<UdpSlot>();
    for (const [key, s] of this.#slots) {
      if (desired.has(key)) continue;
      if (s.listener) goneTcp.add(s.key);
      if (s.udp) goneUdp.add(s.udp);
      s.app = undefined;
      if (s.udp) s.udp.app = undefined;
      this.#slots.delete(key);
      if (s.listener) closing.push(s.listener.close().then(() => s.accepted?.unsubscribe()));
      // A removed UDP app's socket stays open while its flows drain (replies arrive on it), then closes.
      if (s.udp) this.#closeUdpAfterDrain(s, config.node.drainTimeoutMs);
    }
    this.#config = config;
    if (config.log.rateLimit !== undefined) this.logLimit.configure(config.log.rateLimit);
    this.#limiter.resize(config.node.limitsMaxTrackedClients ?? DEFAULTS.limitsMaxTrackedClients);
    // Connections that arrived on the new listeners while the change was being prepared: now they have an app.
    for (const s of fresh) {
      const held = s.held;
      s.held = undefined;
      if (held !== undefined) for (const c of held) this.tcp.accept(c, s.app, s.key);
    }

    const added: string[] = [];
    const changed: string[] = [];
    const unchanged: string[] = [];
    for (const [id, app] of next) {
      const old = prev.get(id);
      if (!old) added.push(id);
      else if (JSON.stringify(old) === JSON.stringify(app)) unchanged.push(id);
      else changed.push(id);
    }
    const removed = [...prev.keys()].filter((id) => !next.has(id));
    if (config.node.closeBlockedConnections) {
      const closed = this.tcp.refilter();
      const closedFlows = this.udp.refilter();
      if (closed + closedFlows > 0) {
        this.#log.info({ event: 'access.refiltered', closed, closedFlows }, 'closed open connections and UDP flows that a new block rule matches');
      }
    }
    if (removed.length > 0) {
      this.tcp.drain(new Set(removed), config.node.drainTimeoutMs);
      this.udp.drain(new Set(removed), config.node.drainTimeoutMs);
    }
    if (goneTcp.size > 0) this.tcp.drainListeners(goneTcp, config.node.drainTimeoutMs);
    if (goneUdp.size > 0) this.udp.drainSlots(goneUdp, config.node.drainTimeoutMs);
    this.#resolver.retain(new Set(next.keys()));
    await Promise.all(closing);
    return { config, result: { added, removed, changed, unchanged, listeners: this.#slots.size } };
  }

  /**
   * Removed UDP apps' sockets waiting for their flows' drain deadline, by slot key, with the timer that closes them.
   * An app added on the same address and port before then takes the socket over (a new bind would fail: the port
   * is still ours).
   */
  readonly #udpClosing = new Map<string, { readonly slot: ListenerSlot; readonly cancel: () => void }>();

  #closeUdpAfterDrain(slot: ListenerSlot, deadlineMs: number): void {
    const cancel = this.#net.clock.setTimer(deadlineMs, () => {
      this.#udpClosing.delete(slot.key);
      slot.udp?.sock.close();
    });
    this.#udpClosing.set(slot.key, { slot, cancel });
  }

  /**
   * Reloads certificates (files changed on disk, or local-CA certificates near expiry) for the running config:
   * new handshakes use them; open connections keep theirs. Rejects, changing nothing, when a file is bad.
   */
  reloadCertificates(): Promise<void> {
    const run = this.#chain.then(async () => {
      const cfg = this.#config;
      if (!cfg || this.#stopped) return;
      this.#tls.commit(await this.#tls.prepare(cfg));
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Files whose change should trigger `reloadCertificates` (the CLI watches them). */
  tlsWatchedFiles(): readonly string[] {
    return this.#tls.watchedFiles();
  }

  /**
   * Graceful stop: stop accepting, let open connections finish for up to `deadlineMs`, then close the rest.
   * Resolves when no connection is left.
   */
  async shutdown(deadlineMs?: number): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#chain;
    const slots = [...this.#slots.values()];
    this.#slots.clear();
    await Promise.all(slots.map((s) => s.listener?.close()));
    for (const s of slots) s.accepted?.unsubscribe();
    const deadline = deadlineMs ?? this.#config?.node.drainTimeoutMs ?? 30_000;
    this.tcp.drain(undefined, deadline);
    this.udp.drain(undefined, deadline);
    await Promise.all([this.tcp.whenIdle(), this.udp.whenIdle()]);
    this.logLimit.flush();
    for (const s of slots) {
      if (s.udp) {
        s.udp.app = undefined;
        s.udp.sock.close();
      }
    }
    for (const { slot, cancel } of this.#udpClosing.values()) {
      cancel();
      slot.udp?.sock.close();
    }
    this.#udpClosing.clear();
    this.#resolver.dispose();
    this.tcp.dispose();
    this.udp.dispose();
    this.events.complete();
    this.trace.complete();
  }
}
