/**
 * The one table of Refract's error codes (and of the few warning codes, `W_…`). A code is a stable contract: tests
 * assert codes, never message text, and `docs/errors.md` is kept in sync with this table by
 * `test/unit/model/errors-doc.test.ts`.
 *
 * - `source`: who caused it (pingora's split): `config` (the operator's input), `downstream` (the client),
 *   `upstream` (the origin), `internal` (us).
 * - `retryable`: whether trying again unchanged can help.
 * - `cfCode`: Cloudflare's API error number where Spectrum defines the same condition (docs/spectrum.md, "API error codes").
 */

export type ErrorSource = 'config' | 'downstream' | 'upstream' | 'internal';

export interface ErrorSpec {
  readonly message: string;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  readonly cfCode?: number;
}

export const ERRORS = {
  // ── configuration and app objects ────────────────────────────────────────────────────────────────────────────
  E_CONFIG_READ: { message: 'The configuration file could not be read.', source: 'config', retryable: true },
  E_CONFIG_PARSE: { message: 'The configuration file is not valid YAML or JSON.', source: 'config', retryable: false },
  E_CONFIG_TOO_LARGE: { message: 'The configuration file is larger than the size limit; it was not read.', source: 'config', retryable: false },
  E_CONFIG_TOO_COMPLEX: { message: 'The configuration file has more YAML nodes or alias expansions than the limit; it was not parsed.', source: 'config', retryable: false },
  E_CONFIG_ENCODING: { message: 'The configuration file is not UTF-8.', source: 'config', retryable: false },
  E_CONFIG_TOO_DEEP: { message: 'The configuration nests lists and mappings more than 64 levels deep.', source: 'config', retryable: false },
  E_CONFIG_INVALID: { message: 'The configuration is invalid; see the listed problems.', source: 'config', retryable: false },
  E_CONFIG_SCHEMA: { message: 'A field has the wrong type, a value out of range, or an unknown field.', source: 'config', retryable: false },
  E_ORIGIN_CONFIG_INVALID: { message: 'Give exactly one of origin_direct and origin_dns.', source: 'config', retryable: false, cfCode: 11000 },
  E_ORIGIN_DNS_INVALID: { message: 'The origin DNS configuration is invalid (name, type, ttl, or a missing origin_port).', source: 'config', retryable: false, cfCode: 11001 },
  E_ORIGIN_ADDRESS_INVALID: { message: 'An origin address is invalid (IPv6 must be bracketed: tcp://[2001:db8::1]:443).', source: 'config', retryable: false, cfCode: 11002 },
  E_DNS_TYPE_MISMATCH: { message: 'dns.type does not match edge_ips (dynamic needs CNAME, static needs ADDRESS), or changed on update.', source: 'config', retryable: false, cfCode: 11004 },
  E_CONFIG_PROTOCOL: { message: 'protocol must be tcp/PORT, tcp/START-END, udp/PORT or udp/START-END.', source: 'config', retryable: false },
  E_CONFIG_PORT_ZERO: { message: 'Port 0 is not a valid edge or origin port; ports are 1-65535.', source: 'config', retryable: false },
  E_CONFIG_PORT_RANGE_ORDER: { message: 'A port range must be START-END with START <= END.', source: 'config', retryable: false },
  E_CONFIG_PORT_RANGE_MISMATCH: { message: 'The origin port range must have as many ports as the edge range.', source: 'config', retryable: false },
  E_CONFIG_PROTOCOL_MISMATCH: { message: 'The origin scheme (tcp:// or udp://) must match the app protocol.', source: 'config', retryable: false },
  E_CONFIG_EDGE_CONFLICT: { message: 'Two apps claim the same edge address, protocol and port.', source: 'config', retryable: false },
  E_CONFIG_DUPLICATE_ID: { message: 'Two apps have the same id.', source: 'config', retryable: false },
  E_CONFIG_UNSUPPORTED: { message: 'The setting is valid for Spectrum but not supported by this Refract version.', source: 'config', retryable: false },
  E_CONFIG_PROXY_PROTOCOL: { message: 'The proxy_protocol value does not fit the app protocol (v1 is TCP only, simple is UDP only).', source: 'config', retryable: false },
  E_CONFIG_CIDR: { message: 'Not a valid IP address or CIDR block.', source: 'config', retryable: false },
  E_CONFIG_ZONE: { message: 'An app or access rule names a zone (zone: NAME or ID) that is not configured.', source: 'config', retryable: false },

  // ── edge IPs (edge.pools; src/model/edge-ips.ts) ─────────────────────────────────────────────────────────────
  E_EDGE_IP_QUOTA: { message: 'More DNS names need a dynamic IPv4 address than edge.ipv4_quota allows.', source: 'config', retryable: false, cfCode: 12005 },
  E_EDGE_POOL_EXHAUSTED: { message: 'No free address is left in the edge pool of the family the app needs (or no pool of that family is configured).', source: 'config', retryable: false },
  E_EDGE_IP_NOT_IN_POOL: { message: 'A static edge IP lies in no edge.pools block and is not listed in edge.addresses.', source: 'config', retryable: false },
  E_EDGE_IP_NOT_ROTATABLE: { message: 'The app holds no dynamic edge address to rotate: it is static, or no edge.pools is configured.', source: 'config', retryable: false },
  E_EDGE_IP_ROTATE_NEEDS_API: { message: 'refract edge-ips rotate goes through the running node\'s management API, and the config has no api: section.', source: 'config', retryable: false },
  E_API_UNREACHABLE: { message: 'The running node\'s management API (api.listen) did not answer.', source: 'internal', retryable: true },
  E_EDGE_IP_TAKEN: { message: 'The edge address already serves another DNS name (one address serves one name).', source: 'config', retryable: false },

  // ── configuration warnings (W_: the file is valid and runs, but probably not as meant; `refract validate` exits 0)
  W_CONFIG_UNKNOWN_KEY: { message: 'An unknown key in an app object or access rule is ignored (Spectrum compatibility); it may be a typo.', source: 'config', retryable: false },
  W_DNS_NAME_OUTSIDE_ZONES: { message: 'The app\'s dns.name lies in none of the zones, so the DNS server (dns:) does not answer for it.', source: 'config', retryable: false },
  W_DNS_STATIC_IP_UNBOUND: { message: 'A static edge IP of the app is not bound (not in edge.addresses), so the DNS server does not answer it.', source: 'config', retryable: false },
  W_METRICS_NOT_LOOPBACK: { message: 'The metrics listener (metrics.listen, no authentication) is bound beyond loopback.', source: 'config', retryable: false },
  W_ACCESS_RULES_UNUSED: { message: 'Access rules are configured but no app has ip_firewall: true, so none of them applies.', source: 'config', retryable: false },

  // ── IP Access rules and geolocation data (src/model/access-rules.ts, src/core/geo.ts) ────────────────────────
  E_RULE_MODE: { message: 'An access rule mode must be allow (or its API spelling whitelist) or block; challenge modes do not apply to Spectrum.', source: 'config', retryable: false },
  E_RULE_IP: { message: 'An ip rule needs one IPv4 or IPv6 address (a CIDR block goes in target ip_range).', source: 'config', retryable: false },
  E_RULE_CIDR: { message: 'An ip_range rule needs ADDRESS/PREFIX with no address bits set past the prefix.', source: 'config', retryable: false },
  E_RULE_COUNTRY: { message: 'A country rule needs an ISO 3166-1 alpha-2 code, XX (unknown) or T1 (Tor).', source: 'config', retryable: false },
  E_RULE_ASN: { message: 'An asn rule needs ASn or n with n from 1 to 4294967295.', source: 'config', retryable: false },
  E_RULE_DUPLICATE: { message: 'Two access rules have the same configuration (target and value) or the same id.', source: 'config', retryable: false },
  E_GEO_READ: { message: 'A geolocation data file could not be read.', source: 'config', retryable: true },
  E_GEO_FORMAT: { message: 'A geolocation data file is not CSV start,end,country / start,end,asn,org or an MMDB database.', source: 'config', retryable: false },
  E_GEO_TOO_LARGE: { message: 'A geolocation data file is larger than the size limit; it was not read.', source: 'config', retryable: false },

  // ── scenario files (`refract sim`; src/scenario/schema.ts) ───────────────────────────────────────────────────
  E_SCENARIO_READ: { message: 'The scenario file could not be read.', source: 'config', retryable: true },
  E_SCENARIO_PARSE: { message: 'The scenario file is not valid YAML or JSON.', source: 'config', retryable: false },
  E_SCENARIO_SCHEMA: { message: 'A scenario field is missing, has the wrong type or a value out of range, or is unknown.', source: 'config', retryable: false },
  E_SCENARIO_REFERENCE: { message: 'The scenario names a host, address, connection, zone, API app or resolve step it does not define.', source: 'config', retryable: false },
  E_SCENARIO_DUPLICATE: { message: 'The scenario defines a host name, address, connection id, API app ref or resolve id twice.', source: 'config', retryable: false },
  E_SCENARIO_ADDRESS: { message: 'A scenario address, listen URI, ip:port or DNS record is malformed or not usable there.', source: 'config', retryable: false },
  E_SCENARIO_TIMELINE: { message: 'A timeline step acts on a connection before it opens, uses a resolve before it runs, or lies beyond max_time_ms.', source: 'config', retryable: false },
  E_SCENARIO_UNSUPPORTED: { message: 'The scenario asks for something the simulator does not model.', source: 'config', retryable: false },

  // ── listening ────────────────────────────────────────────────────────────────────────────────────────────────
  E_LISTEN_ADDRESS_IN_USE: { message: 'The edge address and port are already in use by another process.', source: 'internal', retryable: true },
  E_LISTEN_ADDRESS_UNAVAILABLE: { message: 'The edge address is not configured on this host.', source: 'config', retryable: false },
  E_LISTEN_PERMISSION: { message: 'Not permitted to bind the edge port (ports below 1024 need privileges).', source: 'config', retryable: false },
  E_LISTEN_FAILED: { message: 'The edge port could not be bound.', source: 'internal', retryable: true },
  E_ACCEPT_EMFILE: { message: 'File descriptors ran short (RLIMIT_NOFILE): new connections are reset at accept and counted until some are free.', source: 'internal', retryable: true },
  W_NOFILE_LOW: { message: 'RLIMIT_NOFILE (ulimit -n, LimitNOFILE) is lower than the configured listeners and connection limits need.', source: 'config', retryable: false },
  E_PID_FILE_IN_USE: { message: 'The --pid-file names a process that is still running (another refract serve?).', source: 'config', retryable: true },
  E_WORKERS_INVALID: { message: "--workers is a whole number from 1 to 256, or 'auto' (one per core).", source: 'config', retryable: false },
  E_WORKERS_UNSUPPORTED: { message: 'The configuration uses something `serve --workers` above 1 does not support yet (node.user).', source: 'config', retryable: false },
  E_WORKER_START: { message: 'A worker process of `serve --workers` could not start or apply the configuration.', source: 'internal', retryable: true },

  // ── PROXY protocol (decoders: inbound headers from load balancers, test origins) ──────────────────────────────
  E_PP_BAD_SIGNATURE: { message: 'The bytes do not start with a PROXY protocol v1 or v2 signature.', source: 'downstream', retryable: false },
  E_PP_V1_MALFORMED: { message: 'The PROXY v1 line is malformed.', source: 'downstream', retryable: false },
  E_PP_V1_TOO_LONG: { message: 'No CRLF within the first 107 bytes of a PROXY v1 line.', source: 'downstream', retryable: false },
  E_PP_V2_BAD_VERSION: { message: 'The PROXY v2 version nibble is not 2.', source: 'downstream', retryable: false },
  E_PP_V2_BAD_COMMAND: { message: 'The PROXY v2 command is neither LOCAL nor PROXY.', source: 'downstream', retryable: false },
  E_PP_V2_BAD_FAMILY: { message: 'The PROXY v2 address family or transport is unknown.', source: 'downstream', retryable: false },
  E_PP_V2_BAD_LENGTH: { message: 'The PROXY v2 length is too short for its address family.', source: 'downstream', retryable: false },
  E_PP_V2_BAD_TLV: { message: 'A PROXY v2 TLV runs past the end of the header.', source: 'downstream', retryable: false },
  E_PP_TIMEOUT: { message: 'No complete PROXY header arrived in time.', source: 'downstream', retryable: false },
  E_PP_UNTRUSTED: { message: 'The sender is not in edge.accept_proxy.trusted, so its PROXY header is refused.', source: 'downstream', retryable: false },

  // ── Simple Proxy Protocol (UDP; decoded on origin replies) ───────────────────────────────────────────────────
  E_SPP_TOO_SHORT: { message: 'The datagram is shorter than the 38-byte Simple Proxy Protocol header.', source: 'upstream', retryable: false },
  E_SPP_BAD_MAGIC: { message: 'The datagram does not start with the Simple Proxy Protocol magic 0x56EC.', source: 'upstream', retryable: false },

  // ── upstream (origin) ────────────────────────────────────────────────────────────────────────────────────────
  E_UPSTREAM_CONNECT_REFUSED: { message: 'The origin refused the connection.', source: 'upstream', retryable: true },
  E_UPSTREAM_CONNECT_TIMEOUT: { message: 'The origin did not answer before the connect timeout.', source: 'upstream', retryable: true },
  E_UPSTREAM_UNREACHABLE: { message: 'The origin network or host is unreachable.', source: 'upstream', retryable: true },
  E_UPSTREAM_CONNECT_FAILED: { message: 'The connection to the origin failed.', source: 'upstream', retryable: true },
  E_UPSTREAM_EMFILE: { message: 'The proxy was out of file descriptors (EMFILE/ENFILE) when it opened the origin connection or UDP socket.', source: 'internal', retryable: true },
  E_UPSTREAM_RESOLVE_FAILED: { message: 'The origin name could not be resolved.', source: 'upstream', retryable: true },
  E_UPSTREAM_RESET: { message: 'The origin reset the connection.', source: 'upstream', retryable: false },
  E_UPSTREAM_TIMEOUT: { message: 'The established origin connection timed out.', source: 'upstream', retryable: false },
  E_UPSTREAM_EPIPE: { message: 'The origin closed while we were writing.', source: 'upstream', retryable: false },

  // ── downstream (client) ──────────────────────────────────────────────────────────────────────────────────────
  E_DOWNSTREAM_RESET: { message: 'The client reset the connection.', source: 'downstream', retryable: false },
  E_DOWNSTREAM_TIMEOUT: { message: 'The client connection timed out.', source: 'downstream', retryable: false },
  E_DOWNSTREAM_EPIPE: { message: 'The client closed while we were writing.', source: 'downstream', retryable: false },
  E_NO_APP: { message: 'No app serves this edge address and port.', source: 'downstream', retryable: false },
  E_RULE_BLOCKED: { message: 'The client matched an IP Access rule whose mode is block.', source: 'downstream', retryable: false },
  E_IDLE_TIMEOUT: { message: 'No bytes flowed either way for the idle timeout.', source: 'internal', retryable: false },
  E_DRAIN_DEADLINE: { message: 'The connection was still open at the drain deadline.', source: 'internal', retryable: false },

  // ── limits (edge.limits, an app's limits, max_connections; src/core/client-limits.ts) ────────────────────────
  E_LIMIT_CLIENT_CONNECTIONS: { message: 'The client already holds per_ip_connections open connections or flows.', source: 'downstream', retryable: true },
  E_LIMIT_CLIENT_RATE: { message: 'The client opens connections faster than per_ip_new_per_second (its per_ip_burst is spent).', source: 'downstream', retryable: true },
  E_LIMIT_NODE_CONNECTIONS: { message: 'The node holds edge.max_connections open TCP connections already.', source: 'internal', retryable: true },
  E_LIMIT_APP_CONNECTIONS: { message: 'The app holds its max_connections open TCP connections already.', source: 'internal', retryable: true },

  // ── TLS (edge termination, origin re-encryption, certificates; docs/tls.md) ──────────────────────────────────
  E_TLS_CERT_READ: { message: 'A TLS certificate or key file could not be read.', source: 'config', retryable: true },
  E_TLS_CERT_INVALID: { message: 'A TLS certificate or key is not valid PEM, or the key does not match the certificate.', source: 'config', retryable: false },
  E_TLS_CA: { message: 'The local CA could not be created or loaded from the data directory.', source: 'config', retryable: true },
  E_PRIVILEGES_NOT_ROOT: { message: 'node.user is set, but the process is not running as root, so it cannot switch users.', source: 'config', retryable: false },
  E_PRIVILEGES_UNKNOWN: { message: 'node.user or node.group names no user or group on this host.', source: 'config', retryable: false },
  E_PRIVILEGES_UNWRITABLE: { message: 'After switching to node.user, a directory Refract writes to is not writable by that user.', source: 'config', retryable: false },
  E_TLS_KEY_PERMISSIONS: { message: 'A private key file or the local CA directory may be read or written by group or others.', source: 'config', retryable: false },
  E_TLS_CLIENT_HANDSHAKE: { message: 'The client TLS handshake failed (no shared version or cipher, a bad record, or an alert from the client).', source: 'downstream', retryable: false },
  E_TLS_CLIENT_SNI: { message: 'The client asked (SNI) for a name no certificate on this edge address covers.', source: 'downstream', retryable: false },
  E_TLS_NO_CERTIFICATE: { message: 'The app terminates TLS but has no certificate to present.', source: 'config', retryable: false },
  E_TLS_HANDSHAKE_TIMEOUT: { message: 'The TLS handshake did not finish in time.', source: 'downstream', retryable: false },
  E_TLS_ORIGIN_HANDSHAKE: { message: 'The TLS handshake with the origin failed (no shared version or cipher, an alert, or the origin does not speak TLS).', source: 'upstream', retryable: true },
  E_TLS_ORIGIN_CERT_EXPIRED: { message: 'strict: the origin certificate has expired or is not yet valid.', source: 'upstream', retryable: false },
  E_TLS_ORIGIN_CERT_NAME: { message: 'strict: the origin certificate does not cover the origin name.', source: 'upstream', retryable: false },
  E_TLS_ORIGIN_CERT_SELF_SIGNED: { message: 'strict: the origin certificate is self-signed.', source: 'upstream', retryable: false },
  E_TLS_ORIGIN_CERT_UNTRUSTED: { message: 'strict: the origin certificate chain does not lead to a trusted CA.', source: 'upstream', retryable: false },

  // ── management API (src/api, docs/api.md) ─────────────────────────────────────────────────────────────────────
  // ── event sinks (log.events; src/cli/event-sinks.ts): logged, never thrown ──
  E_EVENTS_FILE: { message: 'The events file could not be written (log.events.file or --events).', source: 'internal', retryable: true },
  E_EVENTS_PUSH_FAILED: { message: 'An event batch POST failed (5xx, 429, network error or timeout); it is retried with backoff.', source: 'upstream', retryable: true },
  E_EVENTS_PUSH_REFUSED: { message: 'The event receiver refused a batch with a 4xx status other than 429; the batch is dropped.', source: 'upstream', retryable: false },
  E_EVENTS_DROPPED: { message: 'Events were dropped: the HTTP sink buffer was full, or the shutdown deadline passed before delivery.', source: 'internal', retryable: false },
  E_API_AUTH: { message: 'Authentication error: send Authorization: Bearer TOKEN with an active token, or X-Auth-Email and X-Auth-Key with a global key, from refract token create.', source: 'downstream', retryable: false, cfCode: 10000 },
  E_API_FORBIDDEN: { message: 'The token lacks the permission this request needs, or may not use this zone.', source: 'downstream', retryable: false, cfCode: 10000 },
  E_API_RATE_LIMITED: { message: 'Too many requests with this token or key: wait for Retry-After seconds.', source: 'downstream', retryable: true, cfCode: 971 },
  E_API_BAD_REQUEST: { message: 'The request is malformed: a query parameter out of range, or a body that is not a JSON object.', source: 'downstream', retryable: false },
  E_API_NOT_FOUND: { message: 'No such API route.', source: 'downstream', retryable: false },
  E_API_ZONE_NOT_FOUND: { message: 'No zone with this id (zones come from the config file and from POST /zones).', source: 'downstream', retryable: false },
  E_API_ZONE_EXISTS: { message: 'A zone with this name already exists.', source: 'downstream', retryable: false, cfCode: 1061 },
  E_API_FILE_ZONE: { message: 'The zone comes from the config file and is read-only through the API; edit the file.', source: 'downstream', retryable: false },
  E_API_APP_NOT_FOUND: { message: 'No app with this id in this zone.', source: 'downstream', retryable: false },
  E_API_FILE_APP: { message: 'The app comes from the config file and is read-only through the API; edit the file.', source: 'downstream', retryable: false },
  E_API_RULE_NOT_FOUND: { message: 'No IP Access rule with this id applies to this zone.', source: 'downstream', retryable: false },
  E_API_FILE_RULE: { message: 'The IP Access rule comes from the config file and is read-only through the API; edit the file.', source: 'downstream', retryable: false },
  E_API_RULE_CONFIGURATION: { message: "An IP Access rule's configuration (target and value) cannot change; delete the rule and create another.", source: 'downstream', retryable: false },
  E_DASHBOARD_BUILD: { message: "The dashboard's browser code could not be bundled at start; the API and the proxy run without it.", source: 'internal', retryable: false },
  E_DASHBOARD_DISABLED: { message: 'The dashboard is turned off (api.dashboard: false).', source: 'config', retryable: false },
  E_API_ANALYTICS_OFF: { message: 'This node keeps no analytics (analytics: { enabled: false }).', source: 'config', retryable: false },
  E_API_ANALYTICS_METRIC: { message: 'An analytics query names an unknown metric (count, bytesIngress, bytesEgress, durationAvg, durationMedian, duration90th, duration99th).', source: 'downstream', retryable: false },
  E_API_ANALYTICS_DIMENSION: { message: 'An analytics query names an unknown dimension (event, appID, coloName, ipVersion), or one twice.', source: 'downstream', retryable: false },
  E_API_ANALYTICS_FILTER: { message: 'An analytics filter is malformed: terms are DIMENSION OP VALUE joined by ; (AND) and , (OR).', source: 'downstream', retryable: false },
  E_API_ANALYTICS_SORT: { message: 'An analytics sort field is not among the query\'s metrics or dimensions.', source: 'downstream', retryable: false },
  E_API_ANALYTICS_TIME: { message: 'An analytics since or until is not an RFC 3339 time, or since is not before until.', source: 'downstream', retryable: false },
  E_API_ANALYTICS_TIME_DELTA: { message: 'An analytics bytime query needs time_delta (year, quarter, month, week, day, hour, dekaminute, minute) giving at most 10,080 intervals.', source: 'downstream', retryable: false },
  E_API_ANALYTICS_LIMIT: { message: 'An analytics limit must be an integer from 1 to 10,000.', source: 'downstream', retryable: false },

  // ── internal ─────────────────────────────────────────────────────────────────────────────────────────────────
  E_INTERNAL: { message: 'Internal error.', source: 'internal', retryable: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Maps a bind failure's errno (EADDRINUSE, EADDRNOTAVAIL, EACCES, …) to Refract's E_LISTEN_* code. */
export function listenErrorCode(code: string | undefined): ErrorCode {
  if (code === 'EADDRINUSE') return 'E_LISTEN_ADDRESS_IN_USE';
  if (code === 'EADDRNOTAVAIL') return 'E_LISTEN_ADDRESS_UNAVAILABLE';
  if (code === 'EACCES' || code === 'EPERM') return 'E_LISTEN_PERMISSION';
  return 'E_LISTEN_FAILED';
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** Codes of warnings (`W_…`): the input is accepted, but probably not as meant. Every other code is an error. */
export type WarningCode = Extract<ErrorCode, `W_${string}`>;

export function isWarningCode(code: unknown): code is WarningCode {
  return isErrorCode(code) && code.startsWith('W_');
}

/** The one error class. Throw it at boundaries (config, API, CLI); machines receive it as event payload instead. */
export class RefractError extends Error {
  readonly code: ErrorCode;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, opts: { message?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    const spec: ErrorSpec = ERRORS[code];
    super(opts.message ?? spec.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RefractError';
    this.code = code;
    this.source = spec.source;
    this.retryable = spec.retryable;
    this.details = opts.details;
  }

  get cfCode(): number | undefined {
    const spec: ErrorSpec = ERRORS[this.code];
    return spec.cfCode;
  }
}

export function isRefractError(e: unknown): e is RefractError {
  return e instanceof RefractError;
}
