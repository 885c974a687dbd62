/**
 * What every room of the TCP engine works with: the per-connection record, the engine's dependencies and
 * counters, its input streams, and the trace and log helpers. The engine (tcp-connection.ts) owns one `TcpEnv`;
 * the rooms (tcp-admission.ts, tcp-inbound-proxy.ts, tcp-tls-legs.ts, tcp-upstream.ts) receive it.
 */
import type { Logger } from 'pino';
import type { HostedInstance } from './host.ts';
import type { TcpConnEvent } from './tcp-connection.machine.ts';
import type { Cancel, CertInfo, Clock, Conn, ConnHandlers, NetError, Network, SocketAddress, TlsClientParams, TlsFailure, TlsInfo, TlsServerParams } from '../net/ports.ts';
import type { SpliceHandle } from '../net/splice.ts';
import type { CompiledAccessRules, ClientMatchedIpFirewall } from '../core/access-rules.ts';
import type { GeoLookup } from '../core/geo.ts';
import type { Outcome } from '../core/outcomes.ts';
import { ClientLimiter, type ClientHold } from '../core/client-limits.ts';
import { DEFAULTS } from '../model/defaults.ts';
import type { ErrorCode } from '../model/errors.ts';
import type { AppSpec, NodeSettings, TlsStatus, UpstreamTarget } from '../model/types.ts';
import type { EventLog } from '../streams/events.ts';
import type { LogLimiter } from '../streams/log-limit.ts';
import type { Trace, TraceEventName, TraceRecord } from '../streams/trace.ts';
import type { TcpInputs } from './tcp-inputs.ts';
import type { SpectrumEventName } from '../model/outcome.ts';
import { spectrumEvent, type EventFacts, type TlsEventFields } from './spectrum-event.ts';
import { spectrumCipherName } from '../core/tls-ciphers.ts';
import { NO_TLS_FIELDS } from '../streams/events.ts';

export type { UpstreamTarget };

/** TLS parameters for the two legs, from the node's current certificates and trust (a reload swaps them). */
export interface TcpTlsDeps {
  /** Server side of the client leg; undefined when the app has no certificate (status 540). */
  serverParams(app: AppSpec, edge: SocketAddress): TlsServerParams | undefined;
  /** Client side of the origin leg (full, strict). */
  clientParams(app: AppSpec, target: UpstreamTarget): TlsClientParams;
}

export interface TcpEngineDeps {
  readonly net: Network;
  readonly clock: Clock;
  /** Current node settings (read per connection, so a reload applies to new connections). */
  settings(): NodeSettings;
  /** Origin targets for a new connection; sync when no I/O is needed. Rejects with a RefractError. */
  targets(app: AppSpec, edgePort: number): readonly UpstreamTarget[] | Promise<readonly UpstreamTarget[]>;
  readonly events: EventLog;
  /**
   * The compiled IP Access rules that apply to `app` (the node-wide rules plus those of the app's zone) and the
   * geolocation data, current (a reload swaps them). Returns prebuilt objects: no allocation per call.
   */
  access(app: AppSpec | undefined): { readonly rules: CompiledAccessRules; readonly geo: GeoLookup };
  /** Decision trace (optional); records are built only when someone subscribes. */
  readonly trace?: Trace;
  readonly log: Logger;
  /**
   * Per-cause limit of the connection path's log lines (src/streams/log-limit.ts): a client must not set the log
   * volume. Undefined: every line is written.
   */
  readonly logLimit?: LogLimiter;
  /** Edge TLS; without it an app with tls != off fails its handshake with status 540 (no certificate). */
  readonly tls?: TcpTlsDeps;
  /**
   * The per-client limit state (src/core/client-limits.ts), shared by the node's TCP and UDP engines so a client's
   * connections and flows count together; without it each engine keeps its own.
   */
  readonly limiter?: ClientLimiter;
}

export interface TcpStats {
  downstream_cx_total: number;
  downstream_cx_active: number;
  downstream_cx_no_app: number;
  downstream_cx_proxy_refused: number;
  downstream_cx_ip_blocked: number;
  /** Closed at once: `edge.max_connections` / the app's `max_connections` reached (503). */
  downstream_cx_refused_node_cap: number;
  downstream_cx_refused_app_cap: number;
  /** Closed at once: the client's `per_ip_connections` / `per_ip_new_per_second` (429). */
  downstream_cx_refused_client_connections: number;
  downstream_cx_refused_client_rate: number;
  upstream_cx_total: number;
  upstream_cx_connect_fail: number;
  upstream_cx_connect_timeout: number;
  upstream_cx_resolve_fail: number;
  idle_timeout: number;
  drain_deadline: number;
  tls_client_handshakes: number;
  tls_client_failed: number;
  tls_origin_handshakes: number;
  tls_origin_failed: number;
  closed_by_status: Record<string, number>;
}

/** The TcpStats counter each outcome counter names. */
export const TCP_OUTCOME_COUNTERS = {
  ip_blocked: 'downstream_cx_ip_blocked',
  idle_timeout: 'idle_timeout',
  drain_deadline: 'drain_deadline',
  client_connections: 'downstream_cx_refused_client_connections',
  client_rate: 'downstream_cx_refused_client_rate',
  node_cap: 'downstream_cx_refused_node_cap',
  app_cap: 'downstream_cx_refused_app_cap',
} as const satisfies Record<NonNullable<Outcome['counter']>, keyof TcpStats>;

export type Endpoint = { address: string; port: number; family: 'IPv4' | 'IPv6' };

/** Everything per connection (the machine itself has no context). A plain object: a few hundred bytes. */
export interface ConnRecord extends HostedInstance<ConnRecord, TcpConnEvent> {
  readonly id: number;
  /** The client stream: the accepted socket, or the plaintext side of the edge TLS session once it started. */
  down: Conn;
  readonly app: AppSpec | undefined;
  /** The edge listener that accepted it (its slot key in the edge node), when the caller named one. */
  readonly listener: string | undefined;
  readonly edge: SocketAddress;
  readonly acceptedAt: number;
  readonly acceptedEpoch: number;
  readonly settings: NodeSettings;
  client: Endpoint;
  /** Edge address the client connected to (the load balancer's, when an inbound PROXY header says so). */
  proxyDst: Endpoint;
  targets: readonly UpstreamTarget[];
  attempt: number;
  current: UpstreamTarget | undefined;
  up: Conn | undefined;
  lastError: NetError | undefined;
  lastErrorWasTimeout: boolean;
  /** Client bytes read before the splice (past an inbound PROXY header), in order, for the origin. */
  prefix: Uint8Array[] | undefined;
  splice: SpliceHandle | undefined;
  connectedEpoch: number;
  /** How the connection ends (set by the action that leads to `closed`; `finish` acts on it). */
  outcome: Outcome;
  /** The error code reported with the outcome (the outcome's own, or a finer one such as a PROXY decoder's). */
  code: ErrorCode | '';
  drainCancel: Cancel | undefined;
  log: Logger | undefined;
  /** The `connect` event went out (after the inbound PROXY header, when one is expected). */
  announced: boolean;
  /** The client's FIN arrived before the splice started (it is forwarded once upstream is connected). */
  downEnded: boolean;
  country: string;
  asn: number;
  matched: ClientMatchedIpFirewall;
  clientTls: TlsInfo | undefined;
  clientTlsStatus: TlsStatus;
  originTls: TlsInfo | undefined;
  originTlsStatus: TlsStatus;
  originCert: CertInfo | undefined;
  tlsFailure: TlsFailure | undefined;
  /** The PROXY header went to the origin in clear before the origin TLS handshake. */
  headerSent: boolean;
  /** Counted against `max_connections` (node and app) until it closes. */
  capHeld: boolean;
  /** What the per-client limiter counts for it, given back at close. */
  limitHold: ClientHold | undefined;
}

// Per-connection callbacks are object-literal METHODS, and payload-free events are constants. Why: tsx runs
// esbuild with keepNames, which wraps every named arrow function (`close: () => …`) in a defineProperty('name')
// call: ~250 ns and a 256-byte property block kept as long as the closure, ~2.4 KB per open connection in all.
export const EV = {
  DOWN_CLOSED: { type: 'DOWNSTREAM.CLOSED' },
  UP_CONNECTED: { type: 'UPSTREAM.CONNECTED' },
  EXHAUSTED: { type: 'UPSTREAM.EXHAUSTED' },
  C2S_END: { type: 'SPLICE.C2S_END' },
  S2C_END: { type: 'SPLICE.S2C_END' },
  IDLE: { type: 'SPLICE.IDLE' },
  CLOSED: { type: 'SPLICE.CLOSED' },
  ROUTED: { type: 'CONN.ROUTED' },
  NO_APP: { type: 'CONN.NO_APP' },
  FILTERED: { type: 'CONN.FILTERED' },
  PROXY_EXPECTED: { type: 'PROXY.EXPECTED' },
  PROXY_UNTRUSTED: { type: 'PROXY.UNTRUSTED' },
  TLS_SKIPPED: { type: 'TLS.SKIPPED' },
  TLS_CLIENT_OK: { type: 'TLS.CLIENT_OK' },
  TLS_CLIENT_FAILED: { type: 'TLS.CLIENT_FAILED' },
  TLS_ORIGIN_OK: { type: 'TLS.ORIGIN_OK' },
  TLS_ORIGIN_FAILED: { type: 'TLS.ORIGIN_FAILED' },
  RESOLVED: { type: 'ORIGIN.RESOLVED' },
  DRAIN_DEADLINE: { type: 'CONN.DRAIN_DEADLINE' },
  ABORT: { type: 'CONN.ABORT' },
} as const satisfies Record<string, TcpConnEvent>;

const noop = (): void => {};
/** Handlers that silence a Conn being discarded. */
export const DEAD_UP: Partial<ConnHandlers> = { connect: noop, error: noop, close: noop };
export const DEAD_DOWN: Partial<ConnHandlers> = { data: noop, end: noop, close: noop, error: noop };

/** The engine's environment, as the rooms see it. */
export class TcpEnv {
  readonly deps: TcpEngineDeps;
  readonly stats: TcpStats;
  readonly inputs: TcpInputs<ConnRecord>;
  readonly limiter: ClientLimiter;
  /** Connections counted against `max_connections` now: node-wide, and per app id. */
  capOpen = 0;
  readonly capOpenByApp = new Map<string, number>();

  constructor(deps: TcpEngineDeps, stats: TcpStats, inputs: TcpInputs<ConnRecord>) {
    this.deps = deps;
    this.stats = stats;
    this.inputs = inputs;
    this.limiter = deps.limiter ?? new ClientLimiter(DEFAULTS.limitsMaxTrackedClients);
  }

  /** Records how the connection ends; `finish` (the final state's entry) acts on it. */
  end(r: ConnRecord, outcome: Outcome, code: ErrorCode | '' = outcome.code): void {
    r.outcome = outcome;
    r.code = code;
  }

  /** Emits `connect` once, with the real client address (after any inbound PROXY header). */
  announce(r: ConnRecord): void {
    if (r.announced || !r.app) return;
    r.announced = true;
    this.emit(r, 'connect', 0);
  }

  /** A Spectrum event for the connection (built only when someone listens). */
  emit(r: ConnRecord, name: SpectrumEventName, status: number): void {
    const events = this.deps.events;
    if (!events.observedFor(name)) return;
    events.emit(spectrumEvent(this.deps.clock, name, status, tcpEventFacts(r)));
  }

  /** The connection's child logger (built on first use: most connections never log). */
  logOf(r: ConnRecord): Logger {
    return (r.log ??= this.deps.log.child({
      conn: r.id,
      app: r.app?.id,
      appName: r.app?.dns.name,
      downstream: `${r.client.address}:${r.client.port}`,
      edge: `${r.edge.address}:${r.edge.port}`,
    }));
  }

  /**
   * The connection's logger for one line of `cause` at `level`, or undefined when that level is off or the cause is
   * over its limit (the line is then counted, and summed up in one line when the window ends).
   */
  lineOf(r: ConnRecord, level: 'info' | 'warn', cause: string): Logger | undefined {
    if (!this.deps.log.isLevelEnabled(level)) return undefined;
    if (this.deps.logLimit !== undefined && !this.deps.logLimit.allow(cause)) return undefined;
    return this.logOf(r);
  }

  trace(r: ConnRecord, event: TraceEventName, detail?: Record<string, unknown>): void {
    const tr = this.deps.trace;
    if (!tr || !tr.enabled) return;
    if (detail === undefined) tr.record({ t: this.deps.clock.now(), node: r.settings.id, app: r.app?.id ?? '', conn: r.id, event });
    else tr.record({ t: this.deps.clock.now(), node: r.settings.id, app: r.app?.id ?? '', conn: r.id, event, ...detail });
  }

  /**
   * True when someone listens to the decision trace. The records of every connection (accept, resolved, dial,
   * established, close) are built at their call sites only then, as one object literal each (`record`): no detail
   * object, no spread, nothing built when nobody listens.
   */
  get tracing(): boolean {
    const tr = this.deps.trace;
    return tr !== undefined && tr.enabled;
  }

  /** Records `rec`, whose keys come in the trace's order (t, node, app, conn, event, then the detail); see `tracing`. */
  record(rec: TraceRecord): void {
    this.deps.trace!.record(rec);
  }

  /** Until the splice starts, a client that vanishes must still end the connection (and cancel any dial). */
  downWatch(r: ConnRecord): Partial<ConnHandlers> {
    return new DownWatch(this, r);
  }
}

/** The client Conn's handlers until the splice takes it over (one object per connection, its callbacks methods). */
class DownWatch {
  readonly #env: TcpEnv;
  readonly #r: ConnRecord;
  constructor(env: TcpEnv, r: ConnRecord) {
    this.#env = env;
    this.#r = r;
  }
  error(err: NetError): void {
    this.#r.lastError = err;
  }
  close(): void {
    this.#env.inputs.socket$.signal(this.#r, EV.DOWN_CLOSED);
  }
}

/** The TLS fields of a TCP connection's event (both legs, as far as they got). */
export function tcpTlsFields(r: ConnRecord): TlsEventFields {
  const app = r.app!;
  if (app.tls === 'off') return NO_TLS_FIELDS;
  const c = r.clientTls;
  const o = r.originTls;
  const originLeg = app.tls === 'full' || app.tls === 'strict';
  return {
    ClientTlsProtocol: c ? c.protocol : 'unknown',
    ClientTlsCipher: c ? spectrumCipherName(c.cipher) : 'UNK',
    // After a failed client handshake, the name the ClientHello asked for (the one refused, for a 400); only the
    // server side of a handshake reports a servername in its failure, so an origin failure leaves this empty.
    ClientTlsClientHelloServerName: c?.servername ?? r.tlsFailure?.servername ?? '',
    ClientTlsStatus: r.clientTlsStatus,
    OriginTlsProtocol: o ? o.protocol : originLeg ? 'unknown' : 'none',
    OriginTlsCipher: o ? spectrumCipherName(o.cipher) : 'UNK',
    OriginTlsFingerprint: r.originCert?.fingerprint256 ?? '',
    OriginTlsStatus: r.originTlsStatus,
  };
}

/** A TCP connection's facts. */
export function tcpEventFacts(r: ConnRecord): EventFacts {
  return {
    proto: 'tcp',
    connectionId: String(r.id),
    app: r.app!,
    client: r.client,
    edge: r.edge,
    upstream: r.current,
    bytesDownstream: r.splice?.bytesDownstream ?? 0,
    bytesUpstream: r.splice?.bytesUpstream ?? 0,
    matched: r.matched,
    country: r.country,
    asn: r.asn,
    acceptedAt: r.acceptedAt,
    connectedEpoch: r.connectedEpoch,
    colo: r.settings.id,
    reason: r.outcome.reason,
    code: r.code,
    tls: tcpTlsFields(r),
  };
}
