/**
 * The TCP connection engine: one `tcpConnectionMachine` instance per accepted connection, executed by the
 * memoised `MachineHost`, fed by the engine-wide input streams of tcp-inputs.ts.
 *
 * This file keeps the per-connection record, the executor, and what acts on all connections (accept, drain,
 * refilter, abort). The named actions live in rooms named for what they do:
 * - tcp-admission.ts: no app / untrusted PROXY sender / blocked / routed (classifiers in src/core/admission.ts);
 * - tcp-inbound-proxy.ts: the inbound PROXY header;
 * - tcp-tls-legs.ts: the client and origin TLS handshakes;
 * - tcp-upstream.ts: resolve, dial, retry, abandon, and the splice;
 * - src/core/outcomes.ts: every way a connection ends (event, status, reason, code, counter);
 * - spectrum-event.ts: the Spectrum event, shared with UDP.
 *
 * Start reading at `accept` and the constructor's `impl` table, with the machine (tcp-connection.machine.ts) beside.
 */
import { Subject, type Observable, type Subscription } from 'rxjs';
import { MachineHost } from './host.ts';
import { tcpConnectionMachine, type TcpConnActionName, type TcpConnEvent } from './tcp-connection.machine.ts';
import type { Conn } from '../net/ports.ts';
import { OUTCOMES, clientTlsOutcome, connectFailOutcome, establishedOutcome, originTlsOutcome } from '../core/outcomes.ts';
import type { AppSpec } from '../model/types.ts';
import { IdleWaiters } from '../streams/events.ts';
import { DEAD_DOWN, DEAD_UP, EV, TCP_OUTCOME_COUNTERS, TcpEnv, type ConnRecord, type TcpEngineDeps, type TcpStats } from './tcp-env.ts';
import { TcpInputs } from './tcp-inputs.ts';
import { blockedByRules, classify, releaseLimits } from './tcp-admission.ts';
import { readInboundProxyHeader } from './tcp-inbound-proxy.ts';
import { startClientTls, startOriginTls } from './tcp-tls-legs.ts';
import { abandonAttempt, dialNext, resolveOrigin, startSplice } from './tcp-upstream.ts';

export type { TcpEngineDeps, TcpStats, TcpTlsDeps, UpstreamTarget } from './tcp-env.ts';

/** One machine state change of one connection or flow (the `states$` stream). */
export interface MachineStateChange {
  /** Clock.now() of the change. */
  readonly t: number;
  readonly proto: 'tcp' | 'udp';
  /** Connection id (TCP) or flow id (UDP), as in the trace. */
  readonly conn: number;
  readonly app: string;
  /** The state value's JSON before (`''` at start) and after, e.g. `"connecting"`. */
  readonly from: string;
  readonly to: string;
  /** The event that caused it (`xstate.init` at start). */
  readonly event: string;
}

/** The log line of each limit refusal (logged on the first and every 1,000th). */
const LIMIT_LOG = {
  client_connections: 'per-client connection limit reached; new connections of the client are refused',
  client_rate: 'per-client connection rate exceeded; new connections of the client are refused',
  node_cap: 'edge.max_connections reached; new connections are refused',
  app_cap: 'app max_connections reached; new connections of the app are refused',
} as const;

export class TcpEngine {
  readonly #env: TcpEnv;
  readonly #host: MachineHost<ConnRecord, TcpConnEvent>;
  readonly #active = new Set<ConnRecord>();
  #nextId = 1;
  readonly #idle = new IdleWaiters();
  readonly #inputs = new TcpInputs<ConnRecord>();
  readonly #feed: Subscription;
  readonly #states = new Subject<MachineStateChange>();
  /** Machine state changes of every connection; nothing is built while nobody subscribes. */
  readonly states$: Observable<MachineStateChange> = this.#states.asObservable();
  readonly stats: TcpStats = {
    downstream_cx_total: 0,
    downstream_cx_active: 0,
    downstream_cx_no_app: 0,
    downstream_cx_proxy_refused: 0,
    downstream_cx_ip_blocked: 0,
    downstream_cx_refused_node_cap: 0,
    downstream_cx_refused_app_cap: 0,
    downstream_cx_refused_client_connections: 0,
    downstream_cx_refused_client_rate: 0,
    upstream_cx_total: 0,
    upstream_cx_connect_fail: 0,
    upstream_cx_connect_timeout: 0,
    upstream_cx_resolve_fail: 0,
    idle_timeout: 0,
    drain_deadline: 0,
    tls_client_handshakes: 0,
    tls_client_failed: 0,
    tls_origin_handshakes: 0,
    tls_origin_failed: 0,
    closed_by_status: {},
  };

  constructor(deps: TcpEngineDeps) {
    const env = (this.#env = new TcpEnv(deps, this.stats, this.#inputs));
    const impl: Record<TcpConnActionName, (r: ConnRecord, e: TcpConnEvent) => void> = {
      classify: (r) => classify(env, r),
      readProxyHeader: (r) => readInboundProxyHeader(env, r),
      recordProxyTimeout: (r) => env.end(r, OUTCOMES.proxy_timeout),
      recordProxyInvalid: (r, e) => env.end(r, OUTCOMES.proxy_invalid, e.type === 'PROXY.INVALID' ? e.code : undefined),
      recordUntrusted: (r) => env.end(r, OUTCOMES.proxy_untrusted),
      recordNoApp: (r) => env.end(r, OUTCOMES.no_app),
      recordFiltered: (r) => env.end(r, OUTCOMES.ip_firewall),
      recordLimited: (r, e) => {
        if (e.type === 'CONN.LIMITED') env.end(r, OUTCOMES[e.outcome]);
      },
      startClientTls: (r) => startClientTls(env, r),
      recordClientTlsFailed: (r) => env.end(r, clientTlsOutcome(r.tlsFailure?.reason)),
      startOriginTls: (r) => startOriginTls(env, r),
      recordOriginTlsFailed: (r) => env.end(r, originTlsOutcome(r.tlsFailure?.reason)),
      resolveOrigin: (r) => resolveOrigin(env, r),
      recordResolveFailed: (r, e) => env.end(r, OUTCOMES.resolve_failed, e.type === 'ORIGIN.RESOLVE_FAILED' ? e.code : undefined),
      dialNext: (r) => dialNext(env, r),
      recordConnectFailure: (r, e) => {
        if (e.type === 'UPSTREAM.FAILED') abandonAttempt(env, r, e.error, false);
      },
      recordConnectTimeout: (r) => abandonAttempt(env, r, undefined, true),
      recordExhausted: (r) => env.end(r, connectFailOutcome(r.lastError?.code, r.lastErrorWasTimeout)),
      startSplice: (r) => startSplice(env, r),
      recordHalfClose: () => {},
      recordSpliceClosed: (r) => env.end(r, OUTCOMES.normal),
      recordSpliceError: (r, e) => {
        if (e.type === 'SPLICE.ERROR') env.end(r, establishedOutcome(e.side, e.error.code));
      },
      recordIdle: (r) => env.end(r, OUTCOMES.idle_timeout),
      recordClientGone: (r) => env.end(r, OUTCOMES.downstream_gone),
      recordDrainDeadline: (r) => env.end(r, OUTCOMES.drain_deadline),
      recordAbort: (r) => env.end(r, OUTCOMES.aborted),
      finish: (r) => this.#finish(r),
    };
    const states = this.#states;
    this.#host = new MachineHost<ConnRecord, TcpConnEvent>(tcpConnectionMachine, {
      clock: deps.clock,
      impl,
      delayMs: (r, name) => {
        if (name === 'connectTimeout') return r.app?.connectTimeoutMs ?? r.settings.connectTimeoutMs;
        if (name === 'proxyHeaderTimeout') return r.settings.acceptProxy?.timeoutMs ?? 3_000;
        throw new Error(`tcpConnection: unknown delay ${name}`);
      },
      onTransition: (r, from, to, e) => {
        if (states.observed) states.next({ t: deps.clock.now(), proto: 'tcp', conn: r.id, app: r.app?.id ?? '', from, to, event: e.type });
      },
    });
    // The machines are fed here, and only here: every input stream, merged, routed to its connection's machine.
    const host = this.#host;
    this.#feed = this.#inputs.all$.subscribe((input) => host.send(input.rec, input.event));
  }

  /** Open connections (any state before closed). */
  get activeCount(): number {
    return this.#active.size;
  }

  /** Number of distinct machine states the executor has compiled (bounded; for tests). */
  get compiledStates(): number {
    return this.#host.cachedStates;
  }

  /** States of the open connections (for tests and debugging). */
  states(): string[] {
    return [...this.#active].map((r) => this.#host.stateOf(r));
  }

  /** State (`stateOf`) and app id of each open connection, for the API's live counts (never per byte). */
  appStates(): Array<{ readonly app: string | undefined; readonly state: string }> {
    return [...this.#active].map((r) => ({ app: r.app?.id, state: this.#host.stateOf(r) }));
  }

  /**
   * Takes an accepted downstream connection. `app` is the app serving its edge port now (undefined: none);
   * `listener` names the edge listener that accepted it (`drainListeners` picks connections by it).
   */
  accept(down: Conn, app: AppSpec | undefined, listener?: string): void {
    const deps = this.#env.deps;
    const clock = deps.clock;
    const local = down.local;
    const remote = down.remote;
    const rec: ConnRecord = {
      _node: undefined!,
      _timers: undefined,
      _queue: undefined,
      _busy: false,
      id: this.#nextId++,
      down,
      app,
      listener,
      edge: local,
      acceptedAt: clock.now(),
      acceptedEpoch: clock.epochMs(),
      settings: deps.settings(),
      client: { address: remote.address, port: remote.port, family: remote.family },
      proxyDst: { address: local.address, port: local.port, family: local.family },
      targets: [],
      attempt: 0,
      current: undefined,
      up: undefined,
      lastError: undefined,
      lastErrorWasTimeout: false,
      prefix: undefined,
      splice: undefined,
      connectedEpoch: 0,
      outcome: OUTCOMES.normal,
      code: '',
      drainCancel: undefined,
      log: undefined,
      announced: false,
      downEnded: false,
      country: '',
      asn: 0,
      matched: 'UNKNOWN',
      clientTls: undefined,
      clientTlsStatus: 'UNKNOWN',
      originTls: undefined,
      originTlsStatus: 'UNKNOWN',
      originCert: undefined,
      tlsFailure: undefined,
      headerSent: false,
      capHeld: false,
      limitHold: undefined,
    };
    this.stats.downstream_cx_total++;
    this.stats.downstream_cx_active++;
    this.#active.add(rec);
    if (this.#env.tracing) {
      this.#env.record({
        t: clock.now(),
        node: rec.settings.id,
        app: app?.id ?? '',
        conn: rec.id,
        event: 'accept',
        client: `${remote.address}:${remote.port}`,
        edge: `${local.address}:${local.port}`,
      });
    }
    this.#host.start(rec);
  }

  /**
   * Starts draining connections of the given apps (all when `appIds` is undefined): they continue until they end
   * by themselves or until `deadlineMs` from now, when `control$` tells their machines the deadline passed.
   */
  drain(appIds: ReadonlySet<string> | undefined, deadlineMs: number): void {
    this.#drainWhere((r) => !appIds || (r.app !== undefined && appIds.has(r.app.id)), deadlineMs);
  }

  /**
   * Starts draining the connections accepted by the given edge listeners (the `listener` names given to `accept`),
   * whatever their app: an app moved off an address (edge-IP rotation) or a port (a narrowed range) keeps serving
   * them until they end or `deadlineMs` from now. By listener, not by local address: a wildcard listener
   * (`0.0.0.0`, `::`) accepts on concrete, possibly v4-mapped, addresses.
   */
  drainListeners(listeners: ReadonlySet<string>, deadlineMs: number): void {
    this.#drainWhere((r) => r.listener !== undefined && listeners.has(r.listener), deadlineMs);
  }

  /** Arms the drain deadline of every open connection `which` picks (once: an armed one keeps its deadline). */
  #drainWhere(which: (r: ConnRecord) => boolean, deadlineMs: number): void {
    const control$ = this.#inputs.control$;
    for (const r of this.#active) {
      if (r.drainCancel || !which(r)) continue;
      r.drainCancel = this.#env.deps.clock.setTimer(deadlineMs, () => {
        r.drainCancel = undefined;
        control$.signal(r, EV.DRAIN_DEADLINE);
      });
    }
  }

  /** Resolves when no connection is open. */
  whenIdle(): Promise<void> {
    return this.#idle.wait(this.#active.size);
  }

  /**
   * Re-applies the (new) access rules to open connections of ip_firewall apps and closes those now blocked
   * (403, `ip_firewall`). Used only when `edge.close_blocked_connections` is on; returns how many were closed.
   */
  refilter(): number {
    let n = 0;
    for (const r of [...this.#active]) {
      if (!r.app?.ipFirewall || !r.announced) continue;
      if (blockedByRules(this.#env, r)) {
        n++;
        this.#inputs.control$.signal(r, EV.FILTERED);
      }
    }
    return n;
  }

  /** Closes every open connection now (tests, fatal shutdown). */
  abortAll(): void {
    for (const r of [...this.#active]) this.#inputs.control$.signal(r, EV.ABORT);
  }

  /** Stops feeding the machines and completes `states$` (after the last connection closed). */
  dispose(): void {
    this.#feed.unsubscribe();
    this.#inputs.complete();
    this.#states.complete();
  }

  /** Entry of `closed`: release both sockets, count, trace, emit the closing event, log anything unusual. */
  #finish(r: ConnRecord): void {
    const env = this.#env;
    const stats = this.stats;
    r.drainCancel?.();
    r.drainCancel = undefined;
    if (r.splice) r.splice.stop();
    else {
      r.down.setHandlers(DEAD_DOWN);
      r.down.destroy();
      if (r.up) {
        r.up.setHandlers(DEAD_UP);
        r.up.destroy();
      }
    }
    this.#active.delete(r);
    releaseLimits(env, r);
    stats.downstream_cx_active--;
    const o = r.outcome;
    if (o.counter) stats[TCP_OUTCOME_COUNTERS[o.counter]]++;
    const key = String(o.status);
    stats.closed_by_status[key] = (stats.closed_by_status[key] ?? 0) + 1;
    if (env.tracing) {
      env.record({
        t: env.deps.clock.now(),
        node: r.settings.id,
        app: r.app?.id ?? '',
        conn: r.id,
        event: 'close',
        status: o.status,
        reason: o.reason,
        code: r.code,
        bytes_in: r.splice?.bytesDownstream ?? 0,
        bytes_out: r.splice?.bytesUpstream ?? 0,
      });
    }
    if (r.app) {
      env.announce(r);
      env.emit(r, o.event, o.status);
    }
    if (o.counter !== undefined && o.counter in LIMIT_LOG) {
      // A flood of refusals must not flood the log: the first and every 1,000th of each kind.
      const n = stats[TCP_OUTCOME_COUNTERS[o.counter]];
      if (n % 1000 === 1) env.logOf(r).warn({ status: o.status, reason: o.reason, code: r.code, refused: n }, LIMIT_LOG[o.counter as keyof typeof LIMIT_LOG]);
    } else if (o.status !== 200 && o.status !== 0) {
      env.lineOf(r, 'info', `conn.closed.${o.status}`)?.info({ status: o.status, reason: o.reason, code: r.code }, 'connection closed');
    } else if (env.deps.log.isLevelEnabled('debug')) {
      env.logOf(r).debug(
        { status: o.status, reason: o.reason, bytesDownstream: r.splice?.bytesDownstream ?? 0, bytesUpstream: r.splice?.bytesUpstream ?? 0 },
        'connection closed',
      );
    }
    this.#idle.notify(this.#active.size);
  }
}

