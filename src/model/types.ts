/**
 * Normalised shapes the engine consumes. The zod schemas in `app.ts` / `config.ts` parse the operator's input
 * (Spectrum app objects, legacy forms included) and produce these; nothing past the config boundary sees raw input.
 * All values are deep-frozen after validation.
 */

export type L4Protocol = 'tcp' | 'udp';
export type ProxyProtocolMode = 'off' | 'v1' | 'v2' | 'simple';
export type TlsMode = 'off' | 'flexible' | 'full' | 'strict';
/** Spectrum's ClientTlsStatus / OriginTlsStatus values (docs/events.md). */
export type TlsStatus = 'UNKNOWN' | 'OK' | 'INTERNAL_ERROR' | 'INVALID_CONFIG' | 'INVALID_SNI' | 'HANDSHAKE_FAILED' | 'KEYLESS_RPC';
export type TrafficType = 'direct' | 'http' | 'https';

/** Spectrum's `ClientMatchedIpFirewall` event values (docs/events.md). */
export type ClientMatchedIpFirewall =
  | 'UNKNOWN'
  | 'ALLOW'
  | 'BLOCK_ERROR'
  | 'BLOCK_IP'
  | 'BLOCK_COUNTRY'
  | 'BLOCK_ASN'
  | 'WHITELIST_IP'
  | 'WHITELIST_COUNTRY'
  | 'WHITELIST_ASN';

/** Inclusive port range; a single port has start === end. */
export interface PortRange {
  readonly start: number;
  readonly end: number;
}

/** One `origin_direct` entry, e.g. `tcp://[2001:db8::1]:3000-4000`. */
export interface DirectOrigin {
  readonly protocol: L4Protocol;
  /** Literal IP address, without brackets. */
  readonly host: string;
  readonly family: 'IPv4' | 'IPv6';
  readonly ports: PortRange;
}

export type OriginDnsType = '' | 'A' | 'AAAA' | 'SRV';

export type OriginSpec =
  | { readonly kind: 'direct'; readonly targets: readonly DirectOrigin[] }
  | {
      readonly kind: 'dns';
      readonly name: string;
      /** '' = A and AAAA. */
      readonly type: OriginDnsType;
      /** Seconds our resolution is cached for (Spectrum: `origin_dns.ttl`). */
      readonly ttlSec: number | undefined;
      /** Absent only for SRV, where the port comes from the record. */
      readonly ports: PortRange | undefined;
    };

/** A Spectrum application after validation. `spec` is the normalised app object as the API would return it. */
export interface AppSpec {
  readonly id: string;
  readonly protocol: L4Protocol;
  readonly edgePorts: PortRange;
  readonly origin: OriginSpec;
  readonly proxyProtocol: ProxyProtocolMode;
  readonly tls: TlsMode;
  readonly ipFirewall: boolean;
  readonly argoSmartRouting: boolean;
  readonly trafficType: TrafficType;
  readonly dns: { readonly type: 'CNAME' | 'ADDRESS'; readonly name: string };
  readonly edgeIps:
    | { readonly type: 'dynamic'; readonly connectivity: 'all' | 'ipv4' | 'ipv6' }
    | { readonly type: 'static'; readonly ips: readonly string[] };
  /** Refract extensions (per-app overrides of node defaults), milliseconds. */
  readonly connectTimeoutMs: number | undefined;
  readonly idleTimeoutMs: number | undefined;
  /** UDP apps: concurrent flows of this app (the node's `udp_max_flows` caps all apps together). */
  readonly udpMaxFlows: number | undefined;
  /** Per-client limits of this app (`limits`); the node's `edge.limits` apply too, so the tighter binds. */
  readonly limits?: ClientLimitSettings | undefined;
  /** TCP apps: open connections of this app at most (`max_connections`); the node's cap applies too. */
  readonly maxConnections?: number | undefined;
  /** TLS apps: certificate files (absent: the local CA issues one) and the origin's TLS name (full/strict). */
  readonly edgeTls: { readonly certFile: string | undefined; readonly keyFile: string | undefined; readonly originServerName: string | undefined } | undefined;
  /** proxy_protocol v2 with edge TLS: add the SSL TLV (version, cipher) and the SNI as AUTHORITY. */
  readonly proxyProtocolTlvs: boolean;
  /**
   * The id of the zone the app belongs to (src/model/zones.ts): the one its `zone` field names, else the one its
   * dns.name falls in, else the first zone; undefined when no zones are configured. The zone's IP Access rules
   * apply to the app when it has ip_firewall.
   */
  readonly zoneId: string | undefined;
  /** The normalised Spectrum app object (snake_case, as the API returns it). */
  readonly spec: Readonly<Record<string, unknown>>;
}

/** One address to dial: an origin target after resolution and port mapping. */
export interface UpstreamTarget {
  readonly host: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

// ── IP Access rules (validated in access-rules.ts, evaluated in src/core/access-rules.ts) ──────────────────────

export type AccessRuleMode = 'allow' | 'block';
/** Normalised targets (`ip6` becomes `ip`). */
export type AccessRuleTarget = 'ip' | 'ip_range' | 'country' | 'asn';

/**
 * A validated rule. `configuration.value` is canonical: `ip` an address (IPv4 dotted quad, IPv6 in RFC 5952 form;
 * IPv4-mapped IPv6 becomes IPv4), `ip_range` `NETWORK/PREFIX` in the same forms, `country` two upper-case letters,
 * `asn` `AS<n>`.
 */
export interface AccessRule {
  /** Given, or derived: 32 hex of SHA-256 over target and value, the same on every node and reload. */
  readonly id: string;
  readonly mode: AccessRuleMode;
  readonly configuration: { readonly target: AccessRuleTarget; readonly value: string };
  /** Free text for people; '' when absent. */
  readonly notes: string;
  /**
   * The id of the zone the rule belongs to: it applies only to that zone's apps with ip_firewall. Absent: the rule
   * is node-wide and applies to every app with ip_firewall.
   */
  readonly zone?: string;
}

/** A demo origin that `refract serve` starts itself (so the example config shows bytes flowing on a fresh machine). */
export interface BuiltinOrigin {
  readonly name: string;
  readonly protocol: L4Protocol;
  readonly host: string;
  readonly ports: PortRange;
  /** echo: sends back what it receives; banner: speaks first, then echoes; discard: reads and drops. */
  readonly behaviour: 'echo' | 'banner' | 'discard';
  readonly banner: string | undefined;
}

export interface AcceptProxySettings {
  /** CIDRs whose connections must start with a PROXY v1/v2 header; others are refused (E_PP_UNTRUSTED). */
  readonly trusted: readonly string[];
  /** How long to wait for the complete header, ms (HAProxy's spec: at least 3 s). */
  readonly timeoutMs: number;
}

/**
 * Per-client limits of one scope (`edge.limits`, or an app's `limits`), normalised (docs/configuration.md,
 * "Per-client limits"). A client is an IPv4 address or an IPv6 prefix of `ipv6Prefix` bits.
 */
export interface ClientLimitSettings {
  /** Open connections (TCP) and flows (UDP) of one client at most; undefined: no count limit. */
  readonly perIpConnections: number | undefined;
  /** New connections and flows of one client per second, on average; undefined: no rate limit. */
  readonly perIpNewPerSecond: number | undefined;
  /** Tokens a client may save up (new connections at once after a quiet spell); >= 1. */
  readonly perIpBurst: number;
  /** IPv6 clients are grouped by this many leading bits (1..128). */
  readonly ipv6Prefix: number;
}

export interface NodeSettings {
  readonly id: string;
  /** Where the node keeps its state (the API's database, and by default the local CA); relative: to the config file's folder. */
  readonly dataDir?: string;
  /** Edge IPs the node binds every app port on (with pools: only the static apps that list them). */
  readonly addresses: readonly string[];
  /** Address pools dynamic apps take their edge IPs from (docs/dns.md, "Edge IPs"); both empty: no allocation. */
  readonly pools: { readonly ipv4: readonly string[]; readonly ipv6: readonly string[] };
  /** Most DNS names holding a dynamic IPv4 address from the pools. */
  readonly ipv4Quota: number;
  readonly acceptProxy: AcceptProxySettings | undefined;
  readonly connectTimeoutMs: number;
  /** TCP: no bytes either way for this long closes the connection, ms. */
  readonly idleTimeoutMs: number;
  /** UDP: no datagrams either way for this long ends the flow, ms. */
  readonly udpIdleTimeoutMs: number;
  readonly drainTimeoutMs: number;
  /** On a config change, also close open connections that a new block rule matches (default false). */
  readonly closeBlockedConnections: boolean;
  /** Concurrent UDP flows per node; a datagram that would open one more is dropped and counted. */
  readonly udpMaxFlows: number;
  /** Per-client limits of the node (`edge.limits`), counted over all apps; undefined: none. */
  readonly limits?: ClientLimitSettings | undefined;
  /** Idle client keys the limiter remembers at most (`edge.limits.max_tracked_clients`). */
  readonly limitsMaxTrackedClients?: number | undefined;
  /** Open TCP connections of the node at most (`edge.max_connections`); undefined: no cap. */
  readonly maxConnections?: number | undefined;
  /** Largest datagram sent to an origin, PROXY/SPP header included; larger ones are dropped, never fragmented. */
  readonly udpMaxDatagramBytes: number;
  /** SO_RCVBUF asked for on each edge UDP socket, bytes (`edge.udp_receive_buffer`); Linux caps it at net.core.rmem_max. */
  readonly udpReceiveBufferBytes: number;
  /** DNS servers for origin_dns (`host:port`); empty = the system resolver. */
  readonly dnsServers: readonly string[];
  /** Lower bound on how long an origin_dns answer is cached, seconds (tests may set 1; Spectrum's API floor is 600). */
  readonly dnsMinTtlSec: number;
  /** Most origin addresses tried for one connection before it fails (a refused or timed-out address moves on). */
  readonly maxConnectAttempts: number;
  readonly tls: TlsSettings;
  /** Drop root to this user (and group) once every listener is bound (src/cli/privileges.ts). */
  readonly user?: string | undefined;
  readonly group?: string | undefined;
}

export interface TlsSettings {
  /** Where the local CA and the certificates it issued live (relative paths: to the config file's folder). */
  readonly dataDir: string;
  /** Extra CAs (PEM bundle) trusted for `strict` origins, beside the system store. */
  readonly caBundle: string | undefined;
  /** A TLS handshake (client or origin side) that takes longer fails, ms. */
  readonly handshakeTimeoutMs: number;
  /** Refuse a client whose SNI no certificate on the edge address covers (status 400); false: serve the port's app. */
  readonly strictSni: boolean;
}

export interface LogSettings {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** Where Spectrum-style events go as JSON lines: a file path, 'stdout', or undefined for none. */
  readonly events: string | undefined;
  /** Size rotation of the events file (`log.events.rotate`); undefined: the file grows. */
  readonly eventsRotate?: EventsRotate | undefined;
  /** The HTTP NDJSON push sink (`log.events.http`); undefined: none. */
  readonly eventsHttp?: EventsHttpSink | undefined;
  /** `log.max_buffer`: bytes each output may hold while its reader is slow; more lines are dropped and counted. */
  readonly maxBufferBytes?: number;
  /** `log.rate_limit`: connection-path log lines allowed per cause per interval (lines 0: no limit). */
  readonly rateLimit?: { readonly lines: number; readonly intervalMs: number };
}

/** Rotate the events file when it reaches `size` (rotating-file-stream's form: `100M`), keeping `keep` old files. */
export interface EventsRotate {
  readonly size: string;
  readonly sizeBytes: number;
  readonly keep: number;
}

/** Batched POSTs of events as NDJSON to `url` (docs/events.md, "Sinks"). */
export interface EventsHttpSink {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Events per POST at most. */
  readonly batchSize: number;
  /** A partial batch is sent this long after its first event, ms. */
  readonly batchIntervalMs: number;
  /** Events held in memory (queued and in flight) at most; more are dropped and counted. */
  readonly bufferEvents: number;
  readonly gzip: boolean;
  /** First retry delay and the cap of the doubling backoff, ms. */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** One POST's time limit, ms. */
  readonly timeoutMs: number;
  /** How long shutdown waits for the buffer to be delivered, ms. */
  readonly shutdownDeadlineMs: number;
}

/** Prometheus metrics (docs/metrics.md). */
export interface MetricsSettings {
  /** The metrics listener (no auth); undefined: none (metrics only on the API listener, with a token). */
  readonly listen: { readonly host: string; readonly port: number } | undefined;
  /** Distinct app label values at most; further apps are counted under `app="_other"`. */
  readonly maxApps: number;
}

export interface RefractConfig {
  readonly node: NodeSettings;
  readonly log: LogSettings;
  readonly origins: readonly BuiltinOrigin[];
  readonly apps: readonly AppSpec[];
  /**
   * The IP Access rules, node-wide ones (no `zone`) and zone-scoped ones; they apply to apps with
   * `ip_firewall: true`, a zone's rules only to that zone's apps (docs/access-rules.md).
   */
  readonly accessRules: readonly AccessRule[];
  /** Country and ASN data files (MMDB or CSV), loaded by the CLI. */
  readonly geo: { readonly country: readonly string[]; readonly asn: readonly string[] };
  /** The zones the management API serves (docs/api.md); empty when none are configured. */
  readonly zones?: readonly Zone[];
  /** The management API (docs/api.md); undefined: no API. */
  readonly api?: ApiSettings | undefined;
  /** The authoritative DNS server for `zones` (docs/dns.md); undefined: none. */
  readonly dns?: DnsSettings | undefined;
  /** Prometheus metrics (docs/metrics.md); undefined: none. */
  readonly metrics?: MetricsSettings | undefined;
  /** The analytics store's settings (docs/api.md, "Analytics"); undefined: the defaults. Used only with `api`. */
  readonly analytics?: AnalyticsSettings | undefined;
  /** The edge-IP allocation (src/model/edge-ips.ts), set when pools are configured and the config was allocated. */
  readonly edgeIps?: EdgeIpState | undefined;
}

/** The addresses held by one DNS name (lower-case, no final dot). */
export interface EdgeIpNameState {
  readonly ipv4?: string;
  readonly ipv6?: string;
}

/** The edge-IP allocation state (src/model/edge-ips.ts): dynamic addresses by DNS name; static ones are config. */
export interface EdgeIpState {
  readonly names: Readonly<Record<string, EdgeIpNameState>>;
  /**
   * Addresses given back (a name no app uses any more, or a family it no longer needs) that stay out of the pool
   * until their old connections' drain deadline: canonical address → the clock time (ms) from which it is free.
   * Absent when nothing is held.
   */
  readonly held?: Readonly<Record<string, number>>;
}

export interface DnsSettings {
  /** Where the server binds UDP and TCP (the same address and port). */
  readonly listen: { readonly host: string; readonly port: number };
  /** TTL of every record it answers, and of the SOA's negative-caching minimum, seconds. */
  readonly ttlSec: number;
}

/** A Cloudflare-style zone: API apps live in one. `id` is 32 hex characters (derived from the name when not given). */
export interface Zone {
  readonly id: string;
  readonly name: string;
}

export interface AnalyticsSettings {
  /** False: no analytics store is written and the analytics endpoints answer 404 E_API_ANALYTICS_OFF. */
  readonly enabled: boolean;
  /** Days analytics rows are kept (minute rows for the last day, hour rows before). */
  readonly retentionDays: number;
}

export interface ApiSettings {
  readonly listen: { readonly host: string; readonly port: number };
  /** Requests per token or key per window (default 1,200 per 300 s). */
  readonly rateLimit: { readonly requests: number; readonly windowSec: number };
  /** Serve the dashboard under /dashboard/ on the API listener (default true). */
  readonly dashboard: boolean;
}

/**
 * One validation problem (or, with a `W_` code, a warning): where (RFC 6901 JSON pointer into the input), what
 * (stable code), and why.
 */
export interface ConfigIssue {
  readonly pointer: string;
  readonly code: import('./errors.ts').ErrorCode;
  /** Cloudflare's API number for the same problem, when Spectrum defines one. */
  readonly cfCode: number | undefined;
  readonly message: string;
  /** 1-based line and column in the file, when the issue came from text (`loadConfigText`). */
  readonly line?: number;
  readonly column?: number;
  /** For an unknown key close to a known one: the known key it probably meant. */
  readonly suggestion?: string;
}
