/**
 * The scenario file format (`scenarios/*.yaml`): a runnable story for the simulator, with expectations.
 * The zod schema in `schema.ts` validates files against these types (with coded errors, E_SCENARIO_*); the runner
 * (`runner.ts`) executes them in virtual time; property tests emit shrunk failures in this same format
 * (`scenarios/regressions/`), and `refract replay` builds one from a production trace.
 *
 * Times are virtual milliseconds from the start of the run. Addresses are any unicast IP literals (the simulator
 * is not the real network; use documentation ranges: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
 *
 * Extensions beyond the first draft (all optional, so older files stay valid; docs/scenarios.md has the details):
 * listener `parse_proxy: 'required'`, connect `half_open`, expectation fields `error`, `received_bytes` and `closed_at_ms`;
 * UDP: `udp://` origin listeners with the UDP behaviours, the `datagram` step, `expect.flows` and `expect.udp`.
 * IP Access rules: top-level `access_rules`, `reload.access_rules`, client `country`/`asn` as the edges' geolocation,
 * connection expectations `matched` and `country`, and `expect.udp.dgrams_ip_blocked`.
 * TLS: top-level `certificates` (descriptors: the simulator has no cryptography), listener `tls`, connect `tls`,
 * connection expectations `tls` (the edge's event fields) and `client_tls` (what the client saw).
 * Management API: top-level `zones` (default one zone, `example.test`) and the `api` step (create, update, delete an
 * app through each edge's ConfigSource, the apply path of the API's routes).
 * DNS and edge IPs: top-level `dns` (the authoritative DNS server on the edges), `edge.pools` (the edge host owns its
 * pools' addresses), the `resolve` step, `connect`/`datagram` to a resolved address (`resolved` + `port`), the api
 * step's `rotate`, and `expect.resolutions`.
 */

export type TlsVersionName = 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** A certificate descriptor (src/net/sim/sim-certs.ts `simCert`): named by `id` in `edge_tls.cert`/`key`,
 * `edge.tls.ca_bundle` and listener `tls.cert`. */
export interface CertificateSpec {
  id: string;
  names: string[];
  key_type?: 'rsa' | 'ecdsa';
  /** Relative to the run's start: valid (default), expired, not_yet_valid. */
  validity?: 'valid' | 'expired' | 'not_yet_valid';
  /** sim-public-ca (default, trusted like a public CA), sim-local-ca, self, unknown, or another descriptor's id. */
  issuer?: string;
}

/** A TLS endpoint's settings: versions, and cipher lists in preference order (OpenSSL names; 1.3: IANA names). */
export interface TlsEndpointSpec {
  min_version?: TlsVersionName;
  max_version?: TlsVersionName;
  ciphers?: string[];
  ciphersuites?: string[];
}

export interface ScenarioFile {
  /** One-line title; the file's top comment explains the story. */
  name: string;
  /** Default seed; `refract sim --seed N` overrides it. */
  seed: number;
  /** Stop the run at this virtual time even if work remains, ms (default 3,600,000 = 1 h). */
  max_time_ms?: number;
  topology: Topology;
  /** Node settings for the edge node(s): same keys as the config file's `edge:` section (addresses default to the edge host's). */
  edge?: Record<string, unknown>;
  /** Spectrum app objects, as in the config file's `apps:`. */
  apps: unknown[];
  /**
   * The zone's IP Access rules in Cloudflare's shape (docs/access-rules.md), given to every edge as the config's
   * top-level `access_rules`; they apply to apps with `ip_firewall: true`. Clients' `country`/`asn` feed the lookup.
   */
  access_rules?: unknown[];
  certificates?: CertificateSpec[];
  /**
   * The zones API apps live in, as the config file's `zones:` (`{ id?, name }`; the id is derived from the name when
   * absent). Default: one zone named `example.test` (DEFAULT_ZONE_NAME).
   */
  zones?: Array<{ id?: string; name: string }>;
  /**
   * The authoritative DNS server (docs/dns.md), as the config file's `dns:` section: `listen` is `IP:PORT` on an edge
   * host (a list: one per edge that runs one; the others run none), `ttl` in seconds (default 30). Each edge with a
   * listen address runs `startDnsServer` there, answering from the configuration it applies.
   */
  dns?: DnsSection;
  timeline: TimelineStep[];
  expect?: Expectations;
}

export interface DnsSection {
  listen: string | string[];
  ttl?: number;
}

export interface Topology {
  /** Edge nodes (one EdgeNode each). Most scenarios have one. */
  /**
   * `max_descriptors`: the edge process's file-descriptor limit (the simulator counts its listeners, connections and
   * UDP sockets against it and runs the real network's descriptor guard); `descriptor_reserve`: what the guard keeps
   * free (default 2 % of the limit, between 16 and 1,024).
   */
  edges: Array<{ name: string; addresses: string[]; max_descriptors?: number; descriptor_reserve?: number }>;
  /** `country` and `asn` are what the edges' geolocation lookup answers for each of the client's addresses. */
  clients: Array<{ name: string; addresses: string[]; country?: string; asn?: number }>;
  origins: Array<{
    name: string;
    addresses: string[];
    listeners: Array<{
      /** `tcp://ip:port`, `tcp://ip:start-end`, or the same with `udp://` (then `behaviour` is a UDP one). */
      listen: string;
      behaviour: OriginBehaviour | UdpOriginBehaviour;
      /** banner: text sent first. */
      banner?: string;
      /**
       * Records the PROXY header it receives (for expectations); default true: a connection that starts with a
       * header has it decoded and recorded, any other first bytes are payload. `'required'`: the connection must
       * start with a header (else the origin resets it) and a banner is sent only after it, as a PROXY-aware
       * server (Postfix `smtpd_upstream_proxy_protocol`) does. `false`: every byte is payload.
       */
      parse_proxy?: boolean | 'required';
      /**
       * `spp-echo` only: a datagram whose payload is exactly one of these texts is answered with a WRONG SPP header
       * (the client port off by one), as a buggy or spoofing origin would; the edge must drop that reply.
       */
      wrong_header_for?: string[];
      /** A TLS origin presenting certificate `cert` (a descriptor id); a PROXY header before the ClientHello is read in clear. */
      tls?: TlsEndpointSpec & { cert: string };
    }>;
  }>;
  /** Link parameters between two hosts (both directions unless `direction`). Unlisted pairs: 0.1 ms, lossless. */
  links?: Array<{
    between: [string, string];
    direction?: 'both' | 'a->b' | 'b->a';
    latency_ms?: number;
    jitter_ms?: number;
    loss?: number;
    duplicate?: number;
    reorder?: number;
    bandwidth_bytes_per_ms?: number;
    queue_bytes?: number;
    /** Split writes into pieces of at most this many bytes (PROXY headers and hellos split across reads). */
    slice_max_bytes?: number;
  }>;
  /** origin_dns records served by the world's DNS. A/AAAA records are IP literals; SRV records are
   * `"PRIORITY WEIGHT PORT TARGET"` (zone-file order). `ttl` in seconds. */
  dns?: Array<{ name: string; type: 'A' | 'AAAA' | 'SRV'; records: string[]; ttl: number }>;
}

/** echo: returns what it reads; sink: reads and drops; banner: speaks first then echoes; refuse: nothing listens
 * (ECONNREFUSED); blackhole: SYNs vanish (connect timeout); reset: RST after the first bytes; close: FIN at once. */
export type OriginBehaviour = 'echo' | 'sink' | 'banner' | 'refuse' | 'blackhole' | 'reset' | 'close';

/**
 * What a `udp://` origin listener does with each datagram. echo: sends it back as it came. spp-echo: decodes the
 * Simple Proxy Protocol header, records the client address it names, and answers with the same header and payload
 * (datagrams without a valid header are dropped). v2-echo: decodes a PROXY v2 header on the first datagram from each
 * source (one edge flow), records it, and echoes payloads (later datagrams are echoed whole, header or not). silent:
 * records and never answers.
 */
export type UdpOriginBehaviour = 'echo' | 'spp-echo' | 'v2-echo' | 'silent';

/** An exact count, or `[min, max]` inclusive (for stories where loss and duplication make the exact value random). */
export type CountExpectation = number | [number, number];

export type TimelineStep =
  /** A client opens a connection (`id` names it for later steps and expectations). */
  | {
      at: number;
      connect: {
        id: string;
        client: string;
        /** `ip:port` on an edge (`[v6]:port` for IPv6). Exactly one of `to` and `resolved`. */
        to?: string;
        /** The id of a `resolve` step: dial the first address it answered, on `port`. */
        resolved?: string;
        /** With `resolved` (and only then): the port to dial. */
        port?: number;
        /** Source IP: one of the client's addresses (default: the first of `to`'s family). */
        from?: string;
        /** Default false: when the peer's FIN arrives, the client ends its side too (Node's default socket).
         * True: it keeps its side open until an `end`/`reset` step (for half-close stories). */
        half_open?: boolean;
        /** Speak TLS to the edge: SNI, versions (default 1.2-1.3), ciphers; `verify` checks the edge's certificate
         * (trusting sim-public-ca and sim-local-ca) against `sni`. Sends wait for the handshake. */
        tls?: TlsEndpointSpec & { sni?: string; verify?: boolean };
      };
    }
  /** Sends bytes: `text`, or `bytes` of filler. */
  | { at: number; send: { id: string; text?: string; bytes?: number } }
  /** Half-closes the client's side (FIN). */
  | { at: number; end: { id: string } }
  /** Resets the client's side (RST). */
  | { at: number; reset: { id: string } }
  /** Many clients at once: `count` connections from `client`, spaced `every_ms` (default 1), each sending `bytes`
   * (default 64) and ending. Their ids are `id_prefix` + index (0-based): `load-0`, `load-1`, … With
   * `echo_bytes_expected`, each must receive exactly `bytes` bytes back (an echo origin). */
  | { at: number; load: { id_prefix: string; client: string; to: string; count: number; every_ms?: number; bytes?: number; echo_bytes_expected?: boolean } }
  | { at: number; partition: { a: string | string[]; b: string | string[]; direction?: 'both' | 'a->b' | 'b->a' } }
  | { at: number; heal: { a?: string | string[]; b?: string | string[] } }
  | { at: number; link: Topology extends { links?: Array<infer L> } ? L : never }
  | { at: number; crash: { host: string } }
  /** Restarts a crashed host; origins on it listen again. */
  | { at: number; restart: { host: string } }
  /** A hot reload of every edge: replaces what it gives (apps, `edge` section, IP Access rules); the rest stays. */
  | { at: number; reload: { apps?: unknown[]; edge?: Record<string, unknown>; access_rules?: unknown[] } }
  | { at: number; dns: { name: string; type: 'A' | 'AAAA' | 'SRV'; records: string[]; ttl: number } }
  /**
   * A client sends UDP datagrams to an edge. `id` names the flow: the client socket is bound on the first step with
   * that id (from `from`, default the client's first address of `to`'s family; port `from_port`, default
   * ephemeral) and reused by later steps with the same id, which must name the same client, `to`, `from` and
   * `from_port`. `text` or `bytes` of filler is the payload; with `count`, that many datagrams `every_ms` apart.
   */
  | { at: number; datagram: DatagramStep }
  /**
   * A write through the management API's apply path (ConfigSource, as the HTTP routes call it) on every running edge:
   * create, update (PUT: the whole app) or delete an app. `ref` names an API app within the scenario (its id is made
   * at run time); update and delete may also name a file app by its `id` (the API refuses: E_API_FILE_APP).
   * `expect_error`: the write must be refused with this code; without it, it must succeed.
   */
  | { at: number; api: ApiStep }
  /**
   * A client asks a DNS server for `name` (a real query, over the simulated network): type A (default) or AAAA, to
   * `server` (`IP:PORT`, default the first `dns.listen`), over UDP (retried once after 5 s, then over TCP when the
   * answer is truncated) or TCP (`tcp: true`). The answer is recorded under `id` for `connect`/`datagram` steps
   * (`resolved`) and `expect.resolutions`.
   */
  | { at: number; resolve: ResolveStep };

export interface ResolveStep {
  id: string;
  client: string;
  name: string;
  type?: 'A' | 'AAAA';
  server?: string;
  tcp?: boolean;
}

export interface ApiStep {
  create?: { ref: string; zone?: string; app: Record<string, unknown> };
  update?: { ref: string; app: Record<string, unknown> };
  delete?: { ref: string };
  /** Refract's extension endpoint: fresh edge IPs for the app's DNS name (ConfigSource.rotateEdgeIps). */
  rotate?: { ref: string };
  expect_error?: string;
}

export interface DatagramStep {
  id: string;
  client: string;
  /** `ip:port` on an edge (`[v6]:port` for IPv6). Exactly one of `to` and `resolved`. */
  to?: string;
  /** The id of a `resolve` step: send to the first address it answered, on `port`. */
  resolved?: string;
  port?: number;
  from?: string;
  /** Fixed source port, 1-49151 (below the ephemeral range, so it never collides with an ephemeral one). */
  from_port?: number;
  text?: string;
  bytes?: number;
  /** Datagrams to send (default 1), spaced `every_ms` (default 1). */
  count?: number;
  every_ms?: number;
}
export interface ConnExpectation {
  /** Connection id from the timeline. */
  id: string;
  status?: number;
  event?: 'disconnect' | 'originError' | 'resolveOrigin' | 'clientFiltered' | 'tlsError';
  /** ClientMatchedIpFirewall of its closing event: `BLOCK_COUNTRY`, `WHITELIST_ASN`, … (`UNKNOWN`: no rule matched). */
  matched?: 'UNKNOWN' | 'BLOCK_IP' | 'WHITELIST_IP' | 'BLOCK_ASN' | 'WHITELIST_ASN' | 'BLOCK_COUNTRY' | 'WHITELIST_COUNTRY';
  /** ClientCountry of its closing event (the geolocation lookup's answer). */
  country?: string;
  /** `ip:port` of the origin that served it. */
  origin?: string;
  /** Bytes read from the client / from the origin, as the edge counted them. */
  client_bytes?: number;
  origin_bytes?: number;
  /** What the client received, exactly (text). */
  received?: string;
  /** The PROXY header the origin decoded: `{ version, src, dst }` (src/dst as `ip:port`). */
  proxy_header?: { version: 1 | 2; src: string; dst: string };
  close_reason?: string;
  /** ErrorCode of the closing event (docs/errors.md), e.g. `E_TLS_ORIGIN_CERT_EXPIRED`. */
  error_code?: string;
  /** The client socket's error code (`ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`, …); `none` = it saw no error. */
  error?: string;
  /** How many bytes the client received. */
  received_bytes?: number;
  /** When the client's socket closed: virtual ms, `[min, max]` inclusive. */
  closed_at_ms?: [number, number];
  /** TLS fields of the edge's closing event (ClientTls*, OriginTls*); `origin_fingerprint_of` names a certificate id. */
  tls?: {
    client_protocol?: string;
    client_cipher?: string;
    client_status?: string;
    sni?: string;
    origin_protocol?: string;
    origin_cipher?: string;
    origin_status?: string;
    origin_fingerprint_of?: string;
  };
  /** The client's own handshake: negotiated version and cipher, or the failure reason it saw (`none`: it succeeded). */
  client_tls?: { protocol?: string; cipher?: string; failure?: string };
}

/**
 * One UDP flow id from the timeline. The edge's fields describe its last flow for that client socket (the edge
 * opens a new one when a client sends again after its flow expired; `edge_flows` counts them).
 */
export interface FlowExpectation {
  id: string;
  /** The edge's closing event: Status, Event, CloseReason, ClientPackets, OriginPackets, ClientBytes, OriginBytes. */
  status?: number;
  event?: 'disconnect' | 'originError' | 'resolveOrigin' | 'clientFiltered';
  close_reason?: string;
  client_packets?: CountExpectation;
  origin_packets?: CountExpectation;
  client_bytes?: CountExpectation;
  origin_bytes?: CountExpectation;
  /** `ip:port` of the origin the edge sent to. */
  origin?: string;
  /** How many flows the edge opened for this client socket. */
  edge_flows?: number;
  /** The payloads the client received, as text, in order of arrival. */
  received?: string[];
  received_datagrams?: CountExpectation;
  received_bytes?: CountExpectation;
  /** Datagrams the client received whose payload it never sent (with echoing origins: another flow's reply). */
  received_foreign?: number;
  /** Datagrams the origin received on this flow (headers included). */
  origin_datagrams?: CountExpectation;
  /** Of those, how many started with a PROXY v2 signature. */
  proxy_headers?: number;
  /** The client address the origin decoded (SPP header, or the PROXY v2 header of a flow's first datagram), `ip:port`. */
  origin_client?: string;
}

/** Counters of the edges' UDP engines (`edge.udp.stats` without the `udp_` prefix), summed over every edge. */
export interface UdpCountersExpectation {
  flows_total?: CountExpectation;
  flows_refused_cap?: CountExpectation;
  dgrams_no_app?: CountExpectation;
  dgrams_oversize?: CountExpectation;
  dgrams_queue_full?: CountExpectation;
  dgrams_from_unexpected_source?: CountExpectation;
  spp_reply_invalid?: CountExpectation;
  dgrams_upstream?: CountExpectation;
  dgrams_downstream?: CountExpectation;
  /** Datagrams dropped by IP Access rules (no flow opened, nothing sent upstream). */
  dgrams_ip_blocked?: CountExpectation;
}

/** One `resolve` step's answer. */
export interface ResolutionExpectation {
  id: string;
  /** The answer's rcode: NOERROR, NXDOMAIN, REFUSED, SERVFAIL, … */
  rcode?: string;
  /** The A (or AAAA) addresses answered, as a set: order does not matter, the list must match exactly. */
  addresses?: string[];
  /** The TTL of the address records, seconds (the smallest, if they differ). */
  ttl?: number;
}

/**
 * Analytics figures over the whole run (the simulator's rollup, the same as the API's `events/bytime`), summed over
 * the rows of `app` (a file app's id, an api create's ref, or an app's DNS name) and, if given, of `event` only.
 * Each figure given must be exact.
 */
export interface AnalyticsExpectation {
  app: string;
  /** A Spectrum event name: connect, disconnect, originError, clientFiltered, resolveOrigin, tlsError. */
  event?: string;
  count?: number;
  /** Bytes from clients (ClientBytes of the closing events). */
  bytes_ingress?: number;
  /** Bytes to clients (OriginBytes of the closing events). */
  bytes_egress?: number;
}

export interface Expectations {
  connections?: ConnExpectation[];
  /** Analytics figures (the run's report then carries the bytime table, `analytics`). */
  analytics?: AnalyticsExpectation[];
  /** `resolve` steps' answers, by id. */
  resolutions?: ResolutionExpectation[];
  /** UDP flows, by the `id` of their `datagram` steps. */
  flows?: FlowExpectation[];
  udp?: UdpCountersExpectation;
  /**
   * The edges' descriptor guards, summed (edges with `max_descriptors` only): accepted connections reset and counted
   * (E_ACCEPT_EMFILE), origin connects and UDP binds that failed with EMFILE (E_UPSTREAM_EMFILE), episodes, and
   * connections the kernel accepted and closed past the limit with no trace.
   */
  descriptors?: { accept_refused?: CountExpectation; upstream_failed?: CountExpectation; episodes?: CountExpectation; lost_untraced?: CountExpectation };
  /** Counts of closing events (TCP and UDP) by Status, e.g. `{ "200": 998, "522": 2 }`. Exact unless `at_least`. */
  statuses?: Record<string, number>;
  statuses_at_least?: Record<string, number>;
  /** Percentiles of connect time (accept → established), ms. */
  connect_ms?: { p50_max?: number; p99_max?: number };
  /** After the run: no open connection, no pending timer. Default true. */
  quiescent?: boolean;
}

/** The edges' descriptor guards, summed over edges with `max_descriptors` (src/net/descriptor-guard.ts). */
export interface DescriptorCounts {
  /** Accepted connections reset at once and counted (E_ACCEPT_EMFILE). */
  readonly acceptRefused: number;
  /** Origin connects and UDP binds (and listens) that failed with EMFILE (E_UPSTREAM_EMFILE). */
  readonly upstreamFailed: number;
  readonly episodes: number;
  /** Connections accepted by the kernel past the limit and closed with no event, log or count. */
  readonly lostUntraced: number;
}
