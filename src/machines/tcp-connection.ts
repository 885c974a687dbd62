/**
 * The TCP connection engine: one `tcpConnectionMachine` instance per accepted connection, executed by the
 * memoised `MachineHost`, with the named actions implemented here over the Network port.
 *
 * A connection record holds everything per connection (the machine itself has no context). Records are plain
 * objects so that an idle connection costs a few hundred bytes beyond its two sockets.
 */
import type { Logger } from 'pino';
import { MachineHost, type HostedInstance } from './host.ts';
import { tcpConnectionMachine, type TcpConnActionName, type TcpConnEvent } from './tcp-connection.machine.ts';
import type { Cancel, CertInfo, Clock, Conn, ConnHandlers, NetError, Network, SocketAddress, TlsClientParams, TlsFailure, TlsInfo, TlsServerParams } from '../net/ports.ts';
import { splice, type SpliceHandle } from '../net/splice.ts';
import { encodeProxyV1, encodeProxyV2, ProxyHeaderReader, tlsProxyTlvs, type ProxyAddresses } from '../core/proxy-protocol.ts';
import { spectrumCipherName } from '../core/tls-ciphers.ts';
import { isRefractError, type ErrorCode } from '../model/errors.ts';
import type { AppSpec, NodeSettings, TlsStatus, UpstreamTarget } from '../model/types.ts';
import { IdleWaiters, NO_TLS_FIELDS, rfc3339, type CloseReason, type EventLog, type SpectrumEvent, type SpectrumEventName } from '../streams/events.ts';
import { inAnyCidr as isTrustedSource } from '../model/ip.ts';
import { decide, type ClientMatchedIpFirewall, type CompiledAccessRules } from '../core/access-rules.ts';
import type { GeoLookup } from '../core/geo.ts';
import type { Trace, TraceEventName } from '../streams/trace.ts';

export type { UpstreamTarget } from '../model/types.ts';

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
  /** The zone's compiled IP Access rules and the geolocation data, current (a reload swaps them). */
  access(): { readonly rules: CompiledAccessRules; readonly geo: GeoLookup };
  /** Decision trace (optional); records are built only when someone subscribes. */
  readonly trace?: Trace;
  readonly log: Logger;
  /** Edge TLS; without it an app with tls != off fails its handshake with status 540 (no certificate). */
  readonly tls?: TcpTlsDeps;
}

export interface TcpStats {
  downstream_cx_total: number;
  downstream_cx_active: number;
  downstream_cx_no_app: number;
  downstream_cx_proxy_refused: number;
  downstream_cx_ip_blocked: number;
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

interface ConnRecord extends HostedInstance<ConnRecord, TcpConnEvent> {
  readonly id: number;
  /** The client stream: the accepted socket, or the plaintext side of the edge TLS session once it started. */
  down: Conn;
  readonly app: AppSpec | undefined;
  readonly edge: SocketAddress;
  readonly acceptedAt: number;
  readonly acceptedEpoch: number;
  readonly settings: NodeSettings;
  client: { address: string; port: number; family: 'IPv4' | 'IPv6' };
  /** Edge address the client connected to (the load balancer's, when an inbound PROXY header says so). */
  proxyDst: { address: string; port: number; family: 'IPv4' | 'IPv6' };
  targets: readonly UpstreamTarget[];
  attempt: number;
  current: UpstreamTarget | undefined;
  up: Conn | undefined;
  lastError: NetError | undefined;
  lastErrorWasTimeout: boolean;
  prefix: Uint8Array[] | undefined;
  splice: SpliceHandle | undefined;
  connectedEpoch: number;
  status: number;
  eventName: SpectrumEventName;
  reason: CloseReason;
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
}

const EMPTY_PREFIX: Uint8Array[] = [];

// Per-connection callbacks below are object-literal METHODS, and payload-free events are constants. Why: tsx runs
// esbuild with keepNames, which wraps every named arrow function (`close: () => …`) in a defineProperty('name')
// call: ~250 ns and a 256-byte property block kept as long as the closure, ~2.4 KB per open connection in all.
const EV_DOWN_CLOSED: TcpConnEvent = { type: 'DOWNSTREAM.CLOSED' };
const EV_UP_CONNECTED: TcpConnEvent = { type: 'UPSTREAM.CONNECTED' };
const EV_C2S_END: TcpConnEvent = { type: 'SPLICE.C2S_END' };
const EV_S2C_END: TcpConnEvent = { type: 'SPLICE.S2C_END' };
const EV_IDLE: TcpConnEvent = { type: 'SPLICE.IDLE' };
const EV_CLOSED: TcpConnEvent = { type: 'SPLICE.CLOSED' };
const noop = (): void => {};
const DEAD_UP: Partial<ConnHandlers> = { connect: noop, error: noop, close: noop };
const DEAD_DOWN: Partial<ConnHandlers> = { data: noop, end: noop, close: noop, error: noop };


/** Spectrum status for an error on an established connection (§4.6). */
function establishedStatus(side: 'downstream' | 'upstream', code: string): { status: number; reason: CloseReason; err: ErrorCode } {
  if (side === 'upstream') {
    if (code === 'ECONNRESET') return { status: 444, reason: 'upstream_reset', err: 'E_UPSTREAM_RESET' };
    if (code === 'ETIMEDOUT') return { status: 445, reason: 'upstream_error', err: 'E_UPSTREAM_TIMEOUT' };
    if (code === 'EPIPE') return { status: 448, reason: 'upstream_error', err: 'E_UPSTREAM_EPIPE' };
    return { status: 447, reason: 'upstream_error', err: 'E_UPSTREAM_RESET' };
  }
  if (code === 'ECONNRESET') return { status: 499, reason: 'downstream_reset', err: 'E_DOWNSTREAM_RESET' };
  if (code === 'ETIMEDOUT') return { status: 497, reason: 'downstream_error', err: 'E_DOWNSTREAM_TIMEOUT' };
  if (code === 'EPIPE') return { status: 498, reason: 'downstream_error', err: 'E_DOWNSTREAM_EPIPE' };
  return { status: 495, reason: 'downstream_error', err: 'E_DOWNSTREAM_RESET' };
}

/** Spectrum status when no origin address could be connected (§4.2). */
function connectFailStatus(err: NetError | undefined, timedOut: boolean): { status: number; reason: CloseReason; err: ErrorCode } {
  if (timedOut || err?.code === 'ETIMEDOUT') return { status: 522, reason: 'connect_timeout', err: 'E_UPSTREAM_CONNECT_TIMEOUT' };
  if (err?.code === 'ECONNREFUSED') return { status: 521, reason: 'connect_refused', err: 'E_UPSTREAM_CONNECT_REFUSED' };
  if (err?.code === 'ENETUNREACH' || err?.code === 'EHOSTUNREACH') {
    return { status: 523, reason: 'connect_unreachable', err: 'E_UPSTREAM_UNREACHABLE' };
  }
  return { status: 520, reason: 'connect_failed', err: 'E_UPSTREAM_CONNECT_FAILED' };
}

/** Spectrum status for a failed client (edge) handshake: 400 bad SNI, 540 no certificate, else 443. */
function clientTlsFailureStatus(f: TlsFailure | undefined): { status: number; reason: CloseReason; err: ErrorCode } {
  if (f?.reason === 'unknown_sni') return { status: 400, reason: 'tls_invalid_sni', err: 'E_TLS_CLIENT_SNI' };
  if (f?.reason === 'no_certificate') return { status: 540, reason: 'tls_no_certificate', err: 'E_TLS_NO_CERTIFICATE' };
  if (f?.reason === 'handshake_timeout') return { status: 443, reason: 'tls_handshake_failed', err: 'E_TLS_HANDSHAKE_TIMEOUT' };
  return { status: 443, reason: 'tls_handshake_failed', err: 'E_TLS_CLIENT_HANDSHAKE' };
}

/**
 * Status for a failed origin handshake. Spectrum documents none; Refract uses Cloudflare's HTTP numbers for the
 * same conditions: 526 when `strict` refused the certificate, 525 for any other handshake failure.
 */
function originTlsFailureStatus(f: TlsFailure | undefined): { status: number; reason: CloseReason; err: ErrorCode } {
  const reason = f?.reason;
  const cert = (err: ErrorCode) => ({ status: 526, reason: 'origin_tls_certificate' as const, err });
  if (reason === 'cert_expired' || reason === 'cert_not_yet_valid') return cert('E_TLS_ORIGIN_CERT_EXPIRED');
  if (reason === 'cert_wrong_name') return cert('E_TLS_ORIGIN_CERT_NAME');
  if (reason === 'cert_self_signed') return cert('E_TLS_ORIGIN_CERT_SELF_SIGNED');
  if (reason === 'cert_unknown_ca') return cert('E_TLS_ORIGIN_CERT_UNTRUSTED');
  if (reason === 'handshake_timeout') return { status: 525, reason: 'origin_tls_failed', err: 'E_TLS_HANDSHAKE_TIMEOUT' };
  return { status: 525, reason: 'origin_tls_failed', err: 'E_TLS_ORIGIN_HANDSHAKE' };
}

/** PROXY v1/v2 need one family for both addresses: an IPv4 side becomes IPv4-mapped IPv6 when the other is IPv6. */
function proxyAddresses(src: ConnRecord['client'], dst: ConnRecord['proxyDst']): ProxyAddresses {
  if (src.family === dst.family) {
    return { family: src.family, src: { address: src.address, port: src.port }, dst: { address: dst.address, port: dst.port } };
  }
  const v6 = (a: { address: string; family: string }): string => (a.family === 'IPv4' ? `::ffff:${a.address}` : a.address);
  return { family: 'IPv6', src: { address: v6(src), port: src.port }, dst: { address: v6(dst), port: dst.port } };
}

export class TcpEngine {
  readonly #deps: TcpEngineDeps;
  readonly #host: MachineHost<ConnRecord, TcpConnEvent>;
  readonly #active = new Set<ConnRecord>();
  #nextId = 1;
  readonly #idle = new IdleWaiters();
  readonly stats: TcpStats = {
    downstream_cx_total: 0,
    downstream_cx_active: 0,
    downstream_cx_no_app: 0,
    downstream_cx_proxy_refused: 0,
    downstream_cx_ip_blocked: 0,
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
    this.#deps = deps;
    const impl: Record<TcpConnActionName, (r: ConnRecord, e: TcpConnEvent) => void> = {
      classify: (r) => this.#classify(r),
      readProxyHeader: (r) => this.#readProxyHeader(r),
      recordProxyTimeout: (r) => this.#end(r, 'clientFiltered', 400, 'proxy_timeout', 'E_PP_TIMEOUT'),
      recordProxyInvalid: (r, e) => this.#end(r, 'clientFiltered', 400, 'proxy_invalid', e.type === 'PROXY.INVALID' ? e.code : 'E_PP_BAD_SIGNATURE'),
      recordUntrusted: (r) => this.#end(r, 'clientFiltered', 403, 'proxy_untrusted', 'E_PP_UNTRUSTED'),
      recordNoApp: (r) => this.#end(r, 'disconnect', 0, 'no_app', 'E_NO_APP'),
      recordFiltered: (r) => {
        this.stats.downstream_cx_ip_blocked++;
        this.#end(r, 'clientFiltered', 403, 'ip_firewall', 'E_RULE_BLOCKED');
      },
      startClientTls: (r) => this.#startClientTls(r),
      recordClientTlsFailed: (r) => {
        const s = clientTlsFailureStatus(r.tlsFailure);
        this.#end(r, 'tlsError', s.status, s.reason, s.err);
      },
      startOriginTls: (r) => this.#startOriginTls(r),
      recordOriginTlsFailed: (r) => {
        const s = originTlsFailureStatus(r.tlsFailure);
        this.#end(r, 'originError', s.status, s.reason, s.err);
      },
      resolveOrigin: (r) => this.#resolveOrigin(r),
      recordResolveFailed: (r, e) =>
        this.#end(r, 'resolveOrigin', 531, 'resolve_failed', e.type === 'ORIGIN.RESOLVE_FAILED' ? e.code : 'E_UPSTREAM_RESOLVE_FAILED'),
      dialNext: (r) => this.#dialNext(r),
      recordConnectFailure: (r, e) => {
        if (e.type === 'UPSTREAM.FAILED') this.#abandonAttempt(r, e.error, false);
      },
      recordConnectTimeout: (r) => this.#abandonAttempt(r, undefined, true),
      recordExhausted: (r) => {
        const s = connectFailStatus(r.lastError, r.lastErrorWasTimeout);
        this.#end(r, 'originError', s.status, s.reason, s.err);
      },
      startSplice: (r) => this.#startSplice(r),
      recordHalfClose: () => {},
      recordSpliceClosed: (r) => this.#end(r, 'disconnect', 200, 'normal', ''),
      recordSpliceError: (r, e) => {
        if (e.type !== 'SPLICE.ERROR') return;
        const s = establishedStatus(e.side, e.error.code);
        this.#end(r, 'disconnect', s.status, s.reason, s.err);
      },
      recordIdle: (r) => {
        this.stats.idle_timeout++;
        this.#end(r, 'disconnect', 200, 'idle_timeout', 'E_IDLE_TIMEOUT');
      },
      recordClientGone: (r) => this.#end(r, 'disconnect', 499, 'downstream_gone', 'E_DOWNSTREAM_RESET'),
      recordDrainDeadline: (r) => {
        this.stats.drain_deadline++;
        this.#end(r, 'disconnect', 200, 'drain_deadline', 'E_DRAIN_DEADLINE');
      },
      recordAbort: (r) => this.#end(r, 'disconnect', 500, 'aborted', 'E_INTERNAL'),
      finish: (r) => this.#finish(r),
    };
    this.#host = new MachineHost<ConnRecord, TcpConnEvent>(tcpConnectionMachine, {
      clock: deps.clock,
      impl,
      delayMs: (r, name) => {
        if (name === 'connectTimeout') return r.app?.connectTimeoutMs ?? r.settings.connectTimeoutMs;
        if (name === 'proxyHeaderTimeout') return r.settings.acceptProxy?.timeoutMs ?? 3_000;
        throw new Error(`tcpConnection: unknown delay ${name}`);
      },
    });
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

  /** Takes an accepted downstream connection. `app` is the app serving its edge port now (undefined: none). */
  accept(down: Conn, app: AppSpec | undefined): void {
    const clock = this.#deps.clock;
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
      edge: local,
      acceptedAt: clock.now(),
      acceptedEpoch: clock.epochMs(),
      settings: this.#deps.settings(),
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
      status: 0,
      eventName: 'disconnect',
      reason: 'normal',
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
    };
    this.stats.downstream_cx_total++;
    this.stats.downstream_cx_active++;
    this.#active.add(rec);
    this.#trace(rec, 'accept', {
      client: `${remote.address}:${remote.port}`,
      edge: `${local.address}:${local.port}`,
    });
    this.#host.start(rec);
  }

  /**
   * Starts draining connections of the given apps (all when `appIds` is undefined): they continue until they end
   * by themselves or until `deadlineMs` from now, when they are closed.
   */
  drain(appIds: ReadonlySet<string> | undefined, deadlineMs: number): void {
    for (const r of this.#active) {
      if (appIds && (!r.app || !appIds.has(r.app.id))) continue;
      if (r.drainCancel) continue;
      r.drainCancel = this.#deps.clock.setTimer(deadlineMs, () => {
        r.drainCancel = undefined;
        this.#host.send(r, { type: 'CONN.DRAIN_DEADLINE' });
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
      if (this.#blocked(r)) {
        n++;
        this.#host.send(r, { type: 'CONN.FILTERED' });
      }
    }
    return n;
  }

  /** Closes every open connection now (tests, fatal shutdown). */
  abortAll(): void {
    for (const r of [...this.#active]) this.#host.send(r, { type: 'CONN.ABORT' });
  }

  #logOf(r: ConnRecord): Logger {
    return (r.log ??= this.#deps.log.child({
      conn: r.id,
      app: r.app?.id,
      downstream: `${r.client.address}:${r.client.port}`,
      edge: `${r.edge.address}:${r.edge.port}`,
    }));
  }

  #trace(r: ConnRecord, event: TraceEventName, detail?: Record<string, unknown>): void {
    const tr = this.#deps.trace;
    if (!tr || !tr.enabled) return;
    tr.record({ t: this.#deps.clock.now(), node: r.settings.id, app: r.app?.id ?? '', conn: r.id, event, ...detail });
  }

  #send(r: ConnRecord, e: TcpConnEvent): void {
    this.#host.send(r, e);
  }

  /** Until the splice starts, a client that vanishes must still end the connection (and cancel any dial). */
  #downWatch(r: ConnRecord): Partial<ConnHandlers> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- methods, not arrows: see EV_DOWN_CLOSED
    const self = this;
    return {
      error(err) {
        r.lastError = err;
      },
      close() {
        self.#send(r, EV_DOWN_CLOSED);
      },
    };
  }

  // ── actions ──────────────────────────────────────────────────────────────────────────────────────────────────

  #classify(r: ConnRecord): void {
    // Until the splice starts, a client that vanishes must still end the connection (and cancel any dial).
    r.down.setHandlers(this.#downWatch(r));
    if (!r.app) {
      this.stats.downstream_cx_no_app++;
      this.#send(r, { type: 'CONN.NO_APP' });
      return;
    }
    const ap = r.settings.acceptProxy;
    if (!ap) {
      // Access rules run before any upstream work, on the socket's address (no load balancer in front).
      if (this.#blocked(r)) {
        this.#send(r, { type: 'CONN.FILTERED' });
        return;
      }
      this.#announce(r);
    } else {
      if (isTrustedSource(ap.trusted, r.client.address)) this.#send(r, { type: 'PROXY.EXPECTED' });
      else {
        this.stats.downstream_cx_proxy_refused++;
        this.#send(r, { type: 'PROXY.UNTRUSTED' });
      }
      return;
    }
    this.#send(r, { type: 'CONN.ROUTED' });
  }

  /** Looks the client up (country, ASN) and, for apps with ip_firewall, applies the zone's rules. */
  #blocked(r: ConnRecord): boolean {
    const { rules, geo } = this.#deps.access();
    const ip = r.client.address;
    r.country = geo.country(ip) ?? '';
    const asn = geo.asn(ip);
    r.asn = asn?.asn ?? 0;
    if (!r.app?.ipFirewall || rules.size === 0) return false;
    const d = decide(rules, { ip, country: r.country || undefined, asn: asn?.asn });
    r.matched = d.matched; // UNKNOWN when no rule matched
    if (d.action === 'block') this.#trace(r, 'filtered', { matched: d.matched, rule: d.ruleId ?? '' });
    return d.action === 'block';
  }

  /** Emits `connect` once, with the real client address (after any inbound PROXY header). */
  #announce(r: ConnRecord): void {
    if (r.announced || !r.app) return;
    r.announced = true;
    this.#emit(r, 'connect', 0);
  }

  #readProxyHeader(r: ConnRecord): void {
    const reader = new ProxyHeaderReader();
    let done = false;
    r.down.setHandlers({
      data: (chunk) => {
        if (done) {
          // Bytes that raced the pause: keep them, in order, for the origin.
          (r.prefix ??= []).push(chunk);
          return;
        }
        const res = reader.push(chunk);
        if (res.kind === 'incomplete') return;
        done = true;
        r.down.pause();
        if (res.kind === 'error') {
          this.#send(r, { type: 'PROXY.INVALID', code: res.code, detail: res.detail });
          return;
        }
        const h = res.header;
        if (h.command === 'proxy' && h.src && h.dst && (h.family === 'IPv4' || h.family === 'IPv6')) {
          r.client = { address: h.src.address, port: h.src.port, family: h.family };
          r.proxyDst = { address: h.dst.address, port: h.dst.port, family: h.family };
          r.log = undefined;
        }
        if (res.rest.length > 0) r.prefix = [res.rest];
        this.#trace(r, 'proxy_in', { version: h.version, command: h.command, client: `${r.client.address}:${r.client.port}` });
        // Rules apply to the client the header names, never to the load balancer.
        if (this.#blocked(r)) {
          this.#send(r, { type: 'CONN.FILTERED' });
          return;
        }
        this.#announce(r);
        this.#send(r, { type: 'PROXY.DECODED', header: h, rest: res.rest });
      },
      end: () => {
        if (done) r.downEnded = true;
        else {
          done = true;
          this.#send(r, { type: 'PROXY.INVALID', code: 'E_PP_BAD_SIGNATURE', detail: 'connection ended before a complete PROXY header' });
        }
      },
    });
    r.down.resume();
  }

  #startClientTls(r: ConnRecord): void {
    const app = r.app!;
    if (app.tls === 'off') {
      this.#send(r, { type: 'TLS.SKIPPED' });
      return;
    }
    this.stats.tls_client_handshakes++;
    const params = this.#deps.tls?.serverParams(app, r.edge);
    if (!params) {
      this.#clientTlsFailed(r, { status: 'INVALID_CONFIG', reason: 'no_certificate', detail: 'no certificate for this app' });
      return;
    }
    // The TLS layer takes the raw socket over; from here on the connection's client stream is the plaintext side.
    const session = this.#deps.net.tls.server(r.down, params, r.prefix);
    r.prefix = undefined;
    r.down = session.conn;
    r.down.setHandlers(this.#downWatch(r));
    session.onDone((o) => {
      if (!o.ok) {
        this.#clientTlsFailed(r, o.failure);
        return;
      }
      r.clientTls = o.info;
      r.clientTlsStatus = 'OK';
      this.#trace(r, 'tls_client', { version: o.info.protocol, cipher: o.info.cipher, sni: o.info.servername });
      this.#send(r, { type: 'TLS.CLIENT_OK' });
    });
  }

  #clientTlsFailed(r: ConnRecord, f: TlsFailure): void {
    this.stats.tls_client_failed++;
    r.tlsFailure = f;
    r.clientTlsStatus = f.status;
    this.#trace(r, 'tls_client_failed', { reason: f.reason });
    this.#logOf(r).info({ reason: f.reason, tlsStatus: f.status, detail: f.detail, sni: f.servername }, 'client TLS handshake failed');
    this.#send(r, { type: 'TLS.CLIENT_FAILED' });
  }

  #startOriginTls(r: ConnRecord): void {
    const app = r.app!;
    if (app.tls !== 'full' && app.tls !== 'strict') {
      this.#send(r, { type: 'TLS.SKIPPED' });
      return;
    }
    this.stats.tls_origin_handshakes++;
    // The PROXY header precedes the ClientHello, in clear (what HAProxy's `accept-proxy ssl` expects).
    const header = this.#proxyHeader(r);
    if (header) {
      r.up!.write(header);
      r.headerSent = true;
    }
    const tlsDeps = this.#deps.tls;
    if (!tlsDeps) {
      this.#originTlsFailed(r, { status: 'INTERNAL_ERROR', reason: 'internal', detail: 'no TLS support configured' });
      return;
    }
    const session = this.#deps.net.tls.client(r.up!, tlsDeps.clientParams(app, r.current!));
    r.up = session.conn;
    session.onDone((o) => {
      if (!o.ok) {
        r.originCert = o.failure.peerCert;
        this.#originTlsFailed(r, o.failure);
        return;
      }
      r.originTls = o.info;
      r.originCert = o.info.peerCert;
      r.originTlsStatus = 'OK';
      this.#trace(r, 'tls_origin', { version: o.info.protocol, cipher: o.info.cipher });
      this.#send(r, { type: 'TLS.ORIGIN_OK' });
    });
  }

  #originTlsFailed(r: ConnRecord, f: TlsFailure): void {
    this.stats.tls_origin_failed++;
    r.tlsFailure = f;
    r.originTlsStatus = f.status;
    const t = r.current;
    this.#trace(r, 'tls_origin_failed', { reason: f.reason });
    this.#logOf(r).warn(
      { upstream: t && `${t.host}:${t.port}`, reason: f.reason, tlsStatus: f.status, detail: f.detail, fingerprint: f.peerCert?.fingerprint256 },
      `origin TLS handshake failed: ${f.reason}`,
    );
    this.#send(r, { type: 'TLS.ORIGIN_FAILED' });
  }

  /** The PROXY header for the origin (undefined when the app sends none). */
  #proxyHeader(r: ConnRecord): Uint8Array | undefined {
    const app = r.app!;
    if (app.proxyProtocol !== 'v1' && app.proxyProtocol !== 'v2') return undefined;
    const a = proxyAddresses(r.client, r.proxyDst);
    if (app.proxyProtocol === 'v1') return encodeProxyV1(a);
    const ct = r.clientTls;
    const tlvs = app.proxyProtocolTlvs && ct ? tlsProxyTlvs({ version: ct.protocol, cipher: spectrumCipherName(ct.cipher), sni: ct.servername }) : undefined;
    return encodeProxyV2(a, tlvs ? { transport: 'stream', tlvs } : { transport: 'stream' });
  }

  #resolveOrigin(r: ConnRecord): void {
    const app = r.app!;
    let res: readonly UpstreamTarget[] | Promise<readonly UpstreamTarget[]>;
    try {
      res = this.#deps.targets(app, r.edge.port);
    } catch (e) {
      this.#resolveFailed(r, e);
      return;
    }
    if (Array.isArray(res)) {
      this.#resolved(r, res as readonly UpstreamTarget[]);
      return;
    }
    (res as Promise<readonly UpstreamTarget[]>).then(
      (t) => this.#resolved(r, t),
      (e: unknown) => this.#resolveFailed(r, e),
    );
  }

  #resolved(r: ConnRecord, targets: readonly UpstreamTarget[]): void {
    r.targets = targets;
    this.#trace(r, 'resolved', { targets: targets.map((t) => `${t.host}:${t.port}`) });
    this.#send(r, { type: 'ORIGIN.RESOLVED' });
  }

  #resolveFailed(r: ConnRecord, e: unknown): void {
    this.stats.upstream_cx_resolve_fail++;
    const code: ErrorCode = isRefractError(e) ? e.code : 'E_UPSTREAM_RESOLVE_FAILED';
    const detail = e instanceof Error ? e.message : String(e);
    this.#logOf(r).warn({ err: e, code }, 'origin resolution failed');
    this.#send(r, { type: 'ORIGIN.RESOLVE_FAILED', code, detail });
  }

  #dialNext(r: ConnRecord): void {
    const limit = Math.min(r.targets.length, r.settings.maxConnectAttempts);
    if (r.attempt >= limit) {
      this.#send(r, { type: 'UPSTREAM.EXHAUSTED' });
      return;
    }
    const t = r.targets[r.attempt++]!;
    r.current = t;
    this.stats.upstream_cx_total++;
    this.#trace(r, 'dial', { upstream: `${t.host}:${t.port}`, attempt: r.attempt });
    const up = this.#deps.net.connectTcp({ host: t.host, port: t.port });
    r.up = up;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- methods, not arrows: see EV_DOWN_CLOSED
    const self = this;
    up.setHandlers({
      connect() {
        self.#send(r, EV_UP_CONNECTED);
      },
      error(error) {
        self.#send(r, { type: 'UPSTREAM.FAILED', error });
      },
    });
  }

  #abandonAttempt(r: ConnRecord, err: NetError | undefined, timedOut: boolean): void {
    if (timedOut) this.stats.upstream_cx_connect_timeout++;
    else this.stats.upstream_cx_connect_fail++;
    r.lastError = err;
    r.lastErrorWasTimeout = timedOut;
    const up = r.up;
    r.up = undefined;
    if (up) {
      up.setHandlers(DEAD_UP);
      up.destroy();
    }
    const t = r.current;
    this.#trace(r, 'dial_failed', { upstream: t ? `${t.host}:${t.port}` : '', code: timedOut ? 'ETIMEDOUT' : (err?.code ?? '') });
    this.#logOf(r).info(
      { upstream: t && `${t.host}:${t.port}`, code: timedOut ? 'ETIMEDOUT' : err?.code, attempt: r.attempt },
      timedOut ? 'origin connect timed out' : 'origin connect failed',
    );
  }

  #startSplice(r: ConnRecord): void {
    const up = r.up!;
    r.connectedEpoch = this.#deps.clock.epochMs();
    const app = r.app!;
    let prefix = r.prefix ?? EMPTY_PREFIX;
    const header = r.headerSent ? undefined : this.#proxyHeader(r);
    if (header) prefix = [header, ...prefix];
    const idle = app.idleTimeoutMs ?? r.settings.idleTimeoutMs;
    this.#trace(r, 'established', { upstream: `${r.current!.host}:${r.current!.port}`, proxy_protocol: app.proxyProtocol });
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- methods, not arrows: see EV_DOWN_CLOSED
    const self = this;
    r.splice = splice(
      r.down,
      up,
      { clock: this.#deps.clock, idleTimeoutMs: idle, upstreamPrefix: prefix, downstreamEnded: r.downEnded },
      {
        c2sEnd() {
          self.#trace(r, 'c2s_end');
          self.#send(r, EV_C2S_END);
        },
        s2cEnd() {
          self.#trace(r, 's2c_end');
          self.#send(r, EV_S2C_END);
        },
        error(side, error) {
          self.#send(r, { type: 'SPLICE.ERROR', side, error });
        },
        idle() {
          self.#send(r, EV_IDLE);
        },
        closed() {
          self.#send(r, EV_CLOSED);
        },
      },
    );
    r.prefix = undefined;
  }

  /** Records how the connection ends; `finish` (the final state's entry) acts on it. */
  #end(r: ConnRecord, name: SpectrumEventName, status: number, reason: CloseReason, code: ErrorCode | ''): void {
    r.eventName = name;
    r.status = status;
    r.reason = reason;
    r.code = code;
  }

  #finish(r: ConnRecord): void {
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
    this.stats.downstream_cx_active--;
    const key = String(r.status);
    this.stats.closed_by_status[key] = (this.stats.closed_by_status[key] ?? 0) + 1;
    this.#trace(r, 'close', {
      status: r.status,
      reason: r.reason,
      code: r.code,
      bytes_in: r.splice?.bytesDownstream ?? 0,
      bytes_out: r.splice?.bytesUpstream ?? 0,
    });
    if (r.app) {
      this.#announce(r);
      this.#emit(r, r.eventName, r.status);
    }
    if (r.status !== 200 && r.status !== 0) {
      this.#logOf(r).info({ status: r.status, reason: r.reason, code: r.code }, 'connection closed');
    } else if (this.#deps.log.isLevelEnabled('debug')) {
      this.#logOf(r).debug(
        { status: r.status, reason: r.reason, bytesIn: r.splice?.bytesDownstream ?? 0, bytesOut: r.splice?.bytesUpstream ?? 0 },
        'connection closed',
      );
    }
    this.#idle.notify(this.#active.size);
  }

  #emit(r: ConnRecord, name: SpectrumEventName, status: number): void {
    const events = this.#deps.events;
    if (!events.observed) return;
    const app = r.app!;
    const closing = name !== 'connect';
    const now = this.#deps.clock.epochMs();
    const t = r.current;
    const ev: SpectrumEvent = {
      Event: name,
      Timestamp: rfc3339(now),
      Application: app.id,
      ClientIP: r.client.address,
      ClientPort: r.client.port,
      ClientProto: 'tcp',
      ClientBytes: r.splice?.bytesDownstream ?? 0,
      OriginBytes: r.splice?.bytesUpstream ?? 0,
      OriginIP: t?.host ?? '',
      OriginPort: t?.port ?? 0,
      OriginProto: 'tcp',
      OriginTlsMode: app.tls,
      ...(app.tls === 'off' ? NO_TLS_FIELDS : this.#tlsFields(r)),
      ProxyProtocol: app.proxyProtocol,
      IpFirewall: app.ipFirewall,
      ClientMatchedIpFirewall: r.matched,
      ClientCountry: r.country,
      ClientAsn: r.asn,
      Status: status,
      ConnectTimestamp: r.connectedEpoch ? rfc3339(r.connectedEpoch) : '',
      DisconnectTimestamp: closing ? rfc3339(now) : '',
      ColoCode: r.settings.id,
      ConnectionID: String(r.id),
      EdgeIP: r.edge.address,
      EdgePort: r.edge.port,
      DurationMs: closing ? Math.round((this.#deps.clock.now() - r.acceptedAt) * 1000) / 1000 : 0,
      CloseReason: closing ? r.reason : '',
      ErrorCode: closing ? r.code : '',
    };
    events.emit(ev);
  }

  #tlsFields(r: ConnRecord): Pick<SpectrumEvent, keyof typeof NO_TLS_FIELDS> {
    const c = r.clientTls;
    const o = r.originTls;
    const originLeg = r.app!.tls === 'full' || r.app!.tls === 'strict';
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
}
