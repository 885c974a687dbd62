/**
 * How a TCP connection or UDP flow ends: one table from outcome to Spectrum event name, Status, Refract's close
 * reason and error code, and the counter it bumps. Every status the engines report comes from this table; the
 * classifiers below pick the row for an errno or a TLS failure. Pure: data in, data out.
 *
 * Statuses follow Spectrum's event table (docs/events.md): 200 normal close, 4xx client side, 5xx origin side;
 * 525/526 reuse Cloudflare's HTTP numbers for a failed origin handshake / a certificate `strict` refused.
 */
import type { ErrorCode } from '../model/errors.ts';
import type { CloseReason, SpectrumEventName } from '../model/outcome.ts';
import type { TlsFailureReason } from '../model/tls.ts';

/** Engine counters an outcome bumps besides `closed_by_status` (the TCP engine's names; UDP counts per datagram). */
export type OutcomeCounter = 'ip_blocked' | 'idle_timeout' | 'drain_deadline' | 'client_connections' | 'client_rate' | 'node_cap' | 'app_cap';

export interface Outcome {
  /** The closing event's name (`disconnect`, `originError`, …). */
  readonly event: SpectrumEventName;
  /** Spectrum's Status; 0 for a connection no app served (it gets no event). */
  readonly status: number;
  readonly reason: CloseReason;
  /** The default error code ('' for a normal close); a few callers carry a finer one (a PROXY decoder's code). */
  readonly code: ErrorCode | '';
  readonly counter?: OutcomeCounter;
}

const row = (event: SpectrumEventName, status: number, reason: CloseReason, code: ErrorCode | '', counter?: OutcomeCounter): Outcome =>
  Object.freeze(counter ? { event, status, reason, code, counter } : { event, status, reason, code });

/** Every way a connection or flow ends. Keys are stable names for tests and docs. */
export const OUTCOMES = Object.freeze({
  // Both legs up, then closed.
  normal: row('disconnect', 200, 'normal', ''),
  idle_timeout: row('disconnect', 200, 'idle_timeout', 'E_IDLE_TIMEOUT', 'idle_timeout'),
  drain_deadline: row('disconnect', 200, 'drain_deadline', 'E_DRAIN_DEADLINE', 'drain_deadline'),
  aborted: row('disconnect', 500, 'aborted', 'E_INTERNAL'),
  // Established, then an error on one side (the other side is reset).
  upstream_reset: row('disconnect', 444, 'upstream_reset', 'E_UPSTREAM_RESET'),
  upstream_timeout: row('disconnect', 445, 'upstream_error', 'E_UPSTREAM_TIMEOUT'),
  upstream_error: row('disconnect', 447, 'upstream_error', 'E_UPSTREAM_RESET'),
  upstream_epipe: row('disconnect', 448, 'upstream_error', 'E_UPSTREAM_EPIPE'),
  downstream_error: row('disconnect', 495, 'downstream_error', 'E_DOWNSTREAM_RESET'),
  downstream_timeout: row('disconnect', 497, 'downstream_error', 'E_DOWNSTREAM_TIMEOUT'),
  downstream_epipe: row('disconnect', 498, 'downstream_error', 'E_DOWNSTREAM_EPIPE'),
  downstream_reset: row('disconnect', 499, 'downstream_reset', 'E_DOWNSTREAM_RESET'),
  /** The client went away before the splice started. */
  downstream_gone: row('disconnect', 499, 'downstream_gone', 'E_DOWNSTREAM_RESET'),
  // Admission.
  no_app: row('disconnect', 0, 'no_app', 'E_NO_APP'),
  proxy_untrusted: row('clientFiltered', 403, 'proxy_untrusted', 'E_PP_UNTRUSTED'),
  proxy_invalid: row('clientFiltered', 400, 'proxy_invalid', 'E_PP_BAD_SIGNATURE'),
  proxy_timeout: row('clientFiltered', 400, 'proxy_timeout', 'E_PP_TIMEOUT'),
  ip_firewall: row('clientFiltered', 403, 'ip_firewall', 'E_RULE_BLOCKED', 'ip_blocked'),
  // Limits: closed at once, before any upstream work (429 as Cloudflare's "too many requests"; 503 as overload).
  client_connections: row('clientFiltered', 429, 'client_limit', 'E_LIMIT_CLIENT_CONNECTIONS', 'client_connections'),
  client_rate: row('clientFiltered', 429, 'client_limit', 'E_LIMIT_CLIENT_RATE', 'client_rate'),
  node_cap: row('disconnect', 503, 'max_connections', 'E_LIMIT_NODE_CONNECTIONS', 'node_cap'),
  app_cap: row('disconnect', 503, 'max_connections', 'E_LIMIT_APP_CONNECTIONS', 'app_cap'),
  // Client TLS leg.
  tls_invalid_sni: row('tlsError', 400, 'tls_invalid_sni', 'E_TLS_CLIENT_SNI'),
  tls_handshake_failed: row('tlsError', 443, 'tls_handshake_failed', 'E_TLS_CLIENT_HANDSHAKE'),
  tls_handshake_timeout: row('tlsError', 443, 'tls_handshake_failed', 'E_TLS_HANDSHAKE_TIMEOUT'),
  tls_no_certificate: row('tlsError', 540, 'tls_no_certificate', 'E_TLS_NO_CERTIFICATE'),
  // Origin.
  resolve_failed: row('resolveOrigin', 531, 'resolve_failed', 'E_UPSTREAM_RESOLVE_FAILED'),
  connect_failed: row('originError', 520, 'connect_failed', 'E_UPSTREAM_CONNECT_FAILED'),
  connect_refused: row('originError', 521, 'connect_refused', 'E_UPSTREAM_CONNECT_REFUSED'),
  connect_timeout: row('originError', 522, 'connect_timeout', 'E_UPSTREAM_CONNECT_TIMEOUT'),
  connect_unreachable: row('originError', 523, 'connect_unreachable', 'E_UPSTREAM_UNREACHABLE'),
  /** The proxy itself was out of file descriptors (EMFILE/ENFILE) when it dialled the origin: Refract's own status. */
  connect_descriptors: row('originError', 503, 'descriptors_exhausted', 'E_UPSTREAM_EMFILE'),
  origin_tls_failed: row('originError', 525, 'origin_tls_failed', 'E_TLS_ORIGIN_HANDSHAKE'),
  origin_tls_timeout: row('originError', 525, 'origin_tls_failed', 'E_TLS_HANDSHAKE_TIMEOUT'),
  origin_cert_expired: row('originError', 526, 'origin_tls_certificate', 'E_TLS_ORIGIN_CERT_EXPIRED'),
  origin_cert_name: row('originError', 526, 'origin_tls_certificate', 'E_TLS_ORIGIN_CERT_NAME'),
  origin_cert_self_signed: row('originError', 526, 'origin_tls_certificate', 'E_TLS_ORIGIN_CERT_SELF_SIGNED'),
  origin_cert_untrusted: row('originError', 526, 'origin_tls_certificate', 'E_TLS_ORIGIN_CERT_UNTRUSTED'),
});

export type OutcomeName = keyof typeof OUTCOMES;

/** An established connection's first error, by side and errno (Node's `code`). */
export function establishedOutcome(side: 'downstream' | 'upstream', errno: string): Outcome {
  if (side === 'upstream') {
    if (errno === 'ECONNRESET') return OUTCOMES.upstream_reset;
    if (errno === 'ETIMEDOUT') return OUTCOMES.upstream_timeout;
    if (errno === 'EPIPE') return OUTCOMES.upstream_epipe;
    return OUTCOMES.upstream_error;
  }
  if (errno === 'ECONNRESET') return OUTCOMES.downstream_reset;
  if (errno === 'ETIMEDOUT') return OUTCOMES.downstream_timeout;
  if (errno === 'EPIPE') return OUTCOMES.downstream_epipe;
  return OUTCOMES.downstream_error;
}

/** No origin address could be connected: the last attempt's errno, or its connect timeout. */
export function connectFailOutcome(errno: string | undefined, timedOut: boolean): Outcome {
  if (timedOut || errno === 'ETIMEDOUT') return OUTCOMES.connect_timeout;
  if (errno === 'ECONNREFUSED') return OUTCOMES.connect_refused;
  if (errno === 'ENETUNREACH' || errno === 'EHOSTUNREACH') return OUTCOMES.connect_unreachable;
  if (errno === 'EMFILE' || errno === 'ENFILE') return OUTCOMES.connect_descriptors;
  return OUTCOMES.connect_failed;
}

/** A failed client (edge) handshake: 400 for a name no certificate covers, 540 without a certificate, else 443. */
export function clientTlsOutcome(reason: TlsFailureReason | undefined): Outcome {
  if (reason === 'unknown_sni') return OUTCOMES.tls_invalid_sni;
  if (reason === 'no_certificate') return OUTCOMES.tls_no_certificate;
  if (reason === 'handshake_timeout') return OUTCOMES.tls_handshake_timeout;
  return OUTCOMES.tls_handshake_failed;
}

/** A failed origin handshake: 526 when `strict` refused the certificate, 525 for any other failure. */
export function originTlsOutcome(reason: TlsFailureReason | undefined): Outcome {
  if (reason === 'cert_expired' || reason === 'cert_not_yet_valid') return OUTCOMES.origin_cert_expired;
  if (reason === 'cert_wrong_name') return OUTCOMES.origin_cert_name;
  if (reason === 'cert_self_signed') return OUTCOMES.origin_cert_self_signed;
  if (reason === 'cert_unknown_ca') return OUTCOMES.origin_cert_untrusted;
  if (reason === 'handshake_timeout') return OUTCOMES.origin_tls_timeout;
  return OUTCOMES.origin_tls_failed;
}

/**
 * A UDP flow whose upstream could not open: 531 when the origin name did not resolve, 503 when the proxy was out of
 * file descriptors for its upstream socket, else 520.
 */
export function udpOpenFailedOutcome(code: ErrorCode): Outcome {
  if (code === 'E_UPSTREAM_EMFILE') return OUTCOMES.connect_descriptors;
  return code === 'E_UPSTREAM_RESOLVE_FAILED' ? OUTCOMES.resolve_failed : OUTCOMES.connect_failed;
}
