/**
 * The vocabulary of how a connection or flow ends: Spectrum's event names and Refract's finer close reasons.
 * The outcome table that maps each way of ending to these (src/core/outcomes.ts) and the event stream
 * (src/streams/events.ts) both speak it.
 */

/** Spectrum's `spectrum_events` event names: `connect`, then one closing event per connection. */
export type SpectrumEventName = 'connect' | 'disconnect' | 'originError' | 'resolveOrigin' | 'clientFiltered' | 'tlsError';

/** Why a connection ended, finer than Status (a Refract extension). */
export type CloseReason =
  | 'normal'
  | 'idle_timeout'
  | 'drain_deadline'
  | 'aborted'
  | 'upstream_reset'
  | 'upstream_error'
  | 'downstream_reset'
  | 'downstream_error'
  | 'downstream_gone'
  | 'connect_refused'
  | 'connect_timeout'
  | 'connect_unreachable'
  | 'connect_failed'
  | 'descriptors_exhausted'
  | 'resolve_failed'
  | 'no_app'
  | 'proxy_untrusted'
  | 'proxy_invalid'
  | 'proxy_timeout'
  | 'ip_firewall'
  | 'client_limit'
  | 'max_connections'
  | 'tls_handshake_failed'
  | 'tls_invalid_sni'
  | 'tls_no_certificate'
  | 'origin_tls_failed'
  | 'origin_tls_certificate';
