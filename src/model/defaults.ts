/**
 * The one table of defaults and limits for the node config and the Spectrum app object. Validation (`app.ts`,
 * `config.ts`) and `docs/configuration.md` both read from here; change a value here and nowhere else.
 *
 * Where Spectrum documents a default it is Spectrum's (docs/spectrum.md, "The app object"); where it is silent the
 * value is Refract's choice, named as such.
 */
export const DEFAULTS = {
  // ── node ──────────────────────────────────────────────────────────────────────────────────────────────────────
  nodeId: 'refract-1',
  dataDir: '.refract', // node.data_dir: the API database and (unless edge.tls.data_dir says otherwise) the local CA
  apiHost: '127.0.0.1',
  apiPort: 8787,
  dnsListenHost: '127.0.0.1', // dns.listen: loopback unless the operator says otherwise
  dnsListenPort: 5300, // dns.listen without a port (53 needs privileges)
  dnsTtlSec: 30, // dns.ttl: short, so a changed answer reaches resolvers soon (Refract's choice)
  metricsHost: '127.0.0.1', // metrics.listen: loopback unless the operator says otherwise (the listener has no auth)
  metricsPort: 9464, // metrics.listen without a port (the Prometheus exporter port OpenTelemetry uses; 9090 is Prometheus' own server)
  metricsMaxApps: 1_000, // metrics.max_apps: app label values before the rest are counted as app="_other"
  eventsHttpBatchSize: 500, // log.events.http.batch_size: events per POST
  eventsHttpBatchIntervalMs: 1_000, // 1 s: a partial batch waits at most this long
  eventsHttpBuffer: 10_000, // events held in memory while the receiver is slow or down; more are dropped
  eventsHttpRetryInitialMs: 500, // first retry after 0.5 s, then doubling
  eventsHttpRetryMaxMs: 30_000, // backoff cap, 30 s
  eventsHttpTimeoutMs: 10_000, // 10 s per POST
  eventsHttpShutdownDeadlineMs: 5_000, // 5 s to deliver the buffer at shutdown
  eventsRotateKeep: 5, // log.events.rotate.keep: rotated files kept
  analyticsRetentionDays: 7, // analytics.retention_days: a week of rollups (minute rows for a day, hour rows after)
  /** Edge IPs every app port is bound on. */
  edgeAddresses: ['127.0.0.1'],
  ipv4Quota: 10, // edge.ipv4_quota: Spectrum's default of 10 IPv4 hostnames per account
  acceptProxyTimeoutMs: 3_000, // 3 s: HAProxy's PROXY spec asks receivers to wait at least 3 s for the header
  connectTimeoutMs: 15_000, // 15 s: Cloudflare's origin "complete TCP connection" figure (→ 522)
  idleTimeoutMs: 400_000, // 400 s of no bytes either way, TCP (Cloudflare's client-side idle figure)
  udpIdleTimeoutMs: 60_000, // 60 s of no datagrams either way ends a UDP flow (Envoy udp_proxy's default)
  closeBlockedConnections: false, // a rule change applies to new connections; established ones are left alone
  udpMaxFlows: 100_000, // concurrent UDP flows per node; a new flow past this is refused (counted, logged)
  limitsIpv6Prefix: 64, // edge.limits.ipv6_prefix: an IPv6 client is its /64 (one subscriber, usually)
  limitsMaxTrackedClients: 100_000, // edge.limits.max_tracked_clients: idle client keys the limiter remembers
  udpMaxDatagramBytes: 1_472, // largest datagram sent to an origin, header included (1500-byte MTU − 28): never fragment
  udpReceiveBufferBytes: 4 * 1024 * 1024, // 4 MiB per edge UDP socket: a burst of new flows queues here while the first datagrams are handled
  drainTimeoutMs: 30_000, // 30 s for open connections to finish after a listener stops accepting
  maxConnectAttempts: 3, // origin addresses tried for one connection before it fails
  dnsServers: [] as readonly string[], // [] = the system resolver
  dnsServerPort: 53, // port of a dns.servers entry written without one
  dnsMinTtlSec: 600, // 600 s: cache origin_dns answers at least this long (Spectrum's ttl floor)
  logLevel: 'info',
  logMaxBufferBytes: 1024 * 1024, // log.max_buffer: 1 MiB per output (stderr, stdout, events file) before lines drop
  logRateLimitLines: 10, // log.rate_limit.lines: connection-path lines per cause per interval
  logRateLimitIntervalMs: 10_000, // log.rate_limit.interval_ms: 10 s
  tlsHandshakeTimeoutMs: 10_000, // 10 s for a TLS handshake, client or origin side (Refract's choice)
  tlsStrictSni: true, // an SNI no certificate covers is refused with 400, as Spectrum's "invalid SNI"

  // ── Spectrum app object ───────────────────────────────────────────────────────────────────────────────────────
  dnsType: 'CNAME',
  originDnsType: '', // '' = A and AAAA
  proxyProtocol: 'off',
  tls: 'off',
  ipFirewall: false,
  argoSmartRouting: false,
  trafficType: 'direct',
  edgeIps: { type: 'dynamic', connectivity: 'all' },
  builtinOriginBehaviour: 'echo',
} as const;

/** Limits that validation enforces (not defaults: values outside these are rejected). */
export const LIMITS = {
  minPort: 1,
  maxPort: 65_535,
  /** Spectrum's floor for origin_dns.ttl, seconds. Lowered to `originDnsTtlFloorLowered` by edge.dns.min_ttl_sec < 600. */
  originDnsMinTtlSec: 600,
  originDnsTtlFloorLowered: 1, // s
  /** RFC 2181 §8: a DNS TTL is an unsigned 31-bit number of seconds. */
  maxTtlSec: 2_147_483_647,
  /** Node timers overflow past 2^31−1 ms (~24.8 days) and fire at once; every *_ms setting stays below. */
  maxTimerMs: 2_147_483_647,
  maxConnectAttempts: 16,
  /** dns.ttl bounds, seconds: at least 1, at most a day (answers follow config changes; a longer TTL hides them). */
  minDnsTtlSec: 1,
  maxDnsTtlSec: 86_400,
  maxAnalyticsRetentionDays: 3650, // analytics.retention_days: ten years
  /** App ids and node ids: URL-path safe, so the REST API can use them as `/apps/{id}`. */
  idPattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
  /** Length of a derived app id in hex characters (Spectrum's ids are 32 hex). */
  derivedIdLength: 32,
} as const;
