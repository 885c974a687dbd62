/**
 * Prometheus metrics of one edge node (docs/metrics.md), in a prom-client `Registry` of its own (never the global
 * default registry: tests and several nodes in one process must not share counters).
 *
 * Where the figures come from:
 * - per-app counters and histograms from the node's Spectrum events (`EdgeNode.events.events$`: one `connect` and
 *   one closing event per connection or flow; never a value per byte or chunk). Bytes are counted when the
 *   connection closes (the closing event carries them);
 * - gauges and the engines' node-wide counters (`TcpEngine.stats`, `UdpEngine.stats`) are read at scrape time, in
 *   `collect()` callbacks;
 * - config reloads and API requests from the callers (`recordReload`, `recordApiRequest`), event sinks from the
 *   stats functions they register (`registerSink`).
 *
 * Label sets are bounded: labels name apps (their id; `refract_app_info` maps ids to names), protocols, statuses,
 * kinds, never clients. At most `maxApps` app ids get series of their own; the others are counted under
 * `app="_other"`. An app that left the config and has no open connection or flow loses its series at the next
 * scrape (counters included), so deleted apps do not accumulate.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Subscription } from 'rxjs';
import type { EdgeView } from '../edge/edge-view.ts';
import { openTally } from '../edge/engine-view.ts';
import type { SpectrumEvent } from '../streams/events.ts';
import type { OutputStats } from '../model/engine-view.ts';

/** The label value that apps past `maxApps` share. */
export const OTHER_APP = '_other';

export interface MetricsOptions {
  /** Distinct app label values at most (default 1,000). */
  readonly maxApps?: number;
  /** prom-client's process metrics (CPU, memory, event loop, GC); default true. */
  readonly defaultMetrics?: boolean;
}

/** What an event sink reports (src/cli/event-sinks.ts): totals since start and what it holds now. */
export interface SinkStats {
  readonly delivered: number;
  readonly dropped: number;
  readonly retries: number;
  readonly buffered: number;
}

/**
 * What the real network's descriptor guard reports (`DescriptorGuard.stats()`, src/net/descriptor-guard.ts; the
 * API may not import the network, so the shape is repeated here and the CLI registers the function).
 */
export interface DescriptorGuardStats {
  /** Soft RLIMIT_NOFILE (Infinity when unknown: the guard is off). */
  readonly limit: number;
  readonly reserve: number;
  readonly acceptRefused: number;
  readonly upstreamFailed: number;
  readonly episodes: number;
  readonly paused: boolean;
}

/** Open connections and flows of a node right now: the dashboard's and the gauges' one source. */
export interface EngineState {
  readonly tcp: { readonly open: number; readonly byApp: ReadonlyMap<string, number>; readonly byState: ReadonlyMap<string, number> };
  readonly udp: { readonly open: number; readonly byApp: ReadonlyMap<string, number>; readonly byState: ReadonlyMap<string, number> };
  /** Bound edge listeners per protocol. */
  readonly listeners: { readonly tcp: number; readonly udp: number };
}

/** Reads the engines' state now (O(open connections)); for scrapes and status pages, not for the connection path. */
export function engineState(edge: EdgeView): EngineState {
  const listeners = { tcp: 0, udp: 0 };
  for (const l of edge.listeners()) listeners[l.protocol]++;
  return {
    tcp: openTally(edge.tcp.appStates()),
    udp: openTally(edge.udp.appStates()),
    listeners,
  };
}

type Labels = Record<string, string>;

/** One counter's per-app series, kept as plain numbers and written into prom-client at scrape time. */
class AppCounter {
  readonly #byApp = new Map<string, Map<string, { readonly labels: Labels; v: number }>>();
  constructor(readonly counter: Counter<string>) {}

  inc(app: string, key: string, labels: () => Labels, by = 1): void {
    let m = this.#byApp.get(app);
    if (m === undefined) this.#byApp.set(app, (m = new Map()));
    const s = m.get(key);
    if (s !== undefined) s.v += by;
    else m.set(key, { labels: { app, ...labels() }, v: by });
  }

  drop(app: string): void {
    this.#byApp.delete(app);
  }

  write(): void {
    this.counter.reset();
    for (const m of this.#byApp.values()) for (const s of m.values()) this.counter.inc(s.labels, s.v);
  }
}

const CONNECT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 14_400];

/** Statuses of a failed origin connection (docs/errors.md, "Event status codes"). */
const ORIGIN_FAILURE_EVENTS = new Set(['originError', 'resolveOrigin']);

export class EdgeMetrics {
  readonly registry = new Registry();
  readonly #edge: EdgeView;
  readonly #maxApps: number;
  /** App ids with series of their own (at most maxApps; OTHER_APP is not in it). */
  readonly #apps = new Set<string>();
  readonly #sub: Subscription;
  readonly #cxTotal: AppCounter;
  readonly #closed: AppCounter;
  readonly #bytesIn: AppCounter;
  readonly #bytesOut: AppCounter;
  readonly #upOk: AppCounter;
  readonly #upFail: AppCounter;
  readonly #tls: AppCounter;
  readonly #access: AppCounter;
  readonly #udpPackets: AppCounter;
  readonly #counters: AppCounter[];
  readonly #connectTime: Histogram<string>;
  readonly #duration: Histogram<string>;
  /** Histogram label sets per app, to remove them with the app. */
  readonly #histLabels = new Map<string, Set<'tcp' | 'udp'>>();
  readonly #reloads: Counter<string>;
  readonly #api: Counter<string>;
  readonly #sinks = new Map<string, () => SinkStats>();
  readonly #outputs = new Map<string, () => OutputStats>();

  constructor(edge: EdgeView, opts: MetricsOptions = {}) {
    this.#edge = edge;
    this.#maxApps = opts.maxApps ?? 1_000;
    const r = this.registry;
    const appCounter = (name: string, help: string, labelNames: string[]): AppCounter =>
      new AppCounter(new Counter({ name, help, labelNames: ['app', ...labelNames], registers: [r] }));
    this.#cxTotal = appCounter('refract_downstream_cx_total', 'Connections (TCP) and flows (UDP) routed to an app: its connect events.', ['proto']);
    this.#closed = appCounter('refract_downstream_cx_closed_total', 'Connections and flows closed, by Spectrum status (docs/errors.md): the closing events.', ['proto', 'status']);
    this.#bytesIn = appCounter('refract_downstream_bytes_received_total', 'Bytes read from clients (ClientBytes), counted when the connection or flow closes.', ['proto']);
    this.#bytesOut = appCounter('refract_downstream_bytes_sent_total', 'Bytes read from the origin for the client (OriginBytes), counted when the connection or flow closes.', ['proto']);
    this.#upOk = appCounter('refract_upstream_cx_established_total', 'Connections and flows whose origin leg came up (ConnectTimestamp set), counted at close.', ['proto']);
    this.#upFail = appCounter('refract_upstream_cx_connect_fail_total', 'Connections and flows that got no origin connection: originError (520-526) and resolveOrigin (531) events, by status.', ['proto', 'status']);
    this.#tls = appCounter('refract_tls_handshakes_total', 'TLS handshakes per leg (client, origin) by status (OK, HANDSHAKE_FAILED, INVALID_SNI, ...) and version, counted at close.', ['leg', 'result', 'version']);
    this.#access = appCounter('refract_access_decisions_total', 'IP Access rule decisions on ip_firewall apps, by the kind that matched (ClientMatchedIpFirewall: BLOCK_IP, WHITELIST_COUNTRY, UNKNOWN = no rule), one per connection or flow.', ['kind']);
    this.#udpPackets = appCounter('refract_udp_flow_datagrams_total', 'Datagrams of closed UDP flows, from the client (ClientPackets) and from the origin (OriginPackets).', ['direction']);
    this.#counters = [this.#cxTotal, this.#closed, this.#bytesIn, this.#bytesOut, this.#upOk, this.#upFail, this.#tls, this.#access, this.#udpPackets];
    this.#connectTime = new Histogram({
      name: 'refract_upstream_cx_connect_duration_seconds',
      help: 'From accept to both legs up (ConnectTimestamp): inbound PROXY header, client TLS, origin DNS, connect attempts and origin TLS included.',
      labelNames: ['app', 'proto'],
      buckets: CONNECT_BUCKETS,
      registers: [r],
    });
    this.#duration = new Histogram({
      name: 'refract_downstream_cx_duration_seconds',
      help: 'Connection and flow lifetime, accept to close (DurationMs of the closing event).',
      labelNames: ['app', 'proto'],
      buckets: DURATION_BUCKETS,
      registers: [r],
    });
    this.#reloads = new Counter({ name: 'refract_config_reloads_total', help: 'Configuration changes after start: file reloads (source=file) and API writes (source=api), by result.', labelNames: ['source', 'result'], registers: [r] });
    this.#api = new Counter({ name: 'refract_api_requests_total', help: 'Management API requests by route pattern, method and status code.', labelNames: ['route', 'method', 'code'], registers: [r] });

    // Scrape-time views: each collect() runs synchronously, so one scrape reads each metric whole.
    const label = (id: string): string => this.#label(id);
    const first = this.#cxTotal;
    const writeCounters = (ac: AppCounter): void => {
      // The first counter's collect also prunes apps gone from the config (once per scrape).
      if (ac === first) this.#prune();
      ac.write();
    };
    for (const ac of this.#counters) (ac.counter as unknown as { collect: () => void }).collect = () => writeCounters(ac);
    // Ordered after the per-app counters in the registry, so the prune above ran before they are read.
    new Gauge({
      name: 'refract_downstream_cx_active',
      help: 'Open connections (TCP) and flows (UDP) per app, read from the engines at scrape time.',
      labelNames: ['app', 'proto'],
      registers: [r],
      collect() {
        this.reset();
        const s = engineState(edge);
        for (const [proto, byApp] of [['tcp', s.tcp.byApp], ['udp', s.udp.byApp]] as const) {
          for (const [id, n] of byApp) if (id !== '') this.inc({ app: label(id), proto }, n);
        }
      },
    });
    new Gauge({
      name: 'refract_connections',
      help: 'Open connections and flows by machine state (TCP: accepted, clientTls, resolving, connecting, originTls, established, ...; UDP: opening, active).',
      labelNames: ['proto', 'state'],
      registers: [r],
      collect() {
        this.reset();
        const s = engineState(edge);
        for (const [proto, byState] of [['tcp', s.tcp.byState], ['udp', s.udp.byState]] as const) {
          for (const [state, n] of byState) this.set({ proto, state }, n);
        }
      },
    });
    new Gauge({
      name: 'refract_app_info',
      help: 'One series per configured app (value 1): its id, DNS name and protocol, to join on app.',
      labelNames: ['app', 'app_name', 'proto'],
      registers: [r],
      collect() {
        this.reset();
        for (const a of edge.config?.apps ?? []) {
          const app = label(a.id);
          if (app !== OTHER_APP) this.set({ app, app_name: a.dns.name, proto: a.protocol }, 1);
        }
      },
    });
    new Gauge({
      name: 'refract_listeners',
      help: 'Bound edge listeners (one per address and port) per protocol.',
      labelNames: ['proto'],
      registers: [r],
      collect() {
        const l = engineState(edge).listeners;
        this.set({ proto: 'tcp' }, l.tcp);
        this.set({ proto: 'udp' }, l.udp);
      },
    });
    const statCounter = (name: string, help: string, labelNames: string[], read: () => ReadonlyArray<readonly [Labels, number]>): void => {
      new Counter({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset();
          for (const [labels, v] of read()) this.inc(labels, v);
        },
      });
    };
    const tcp = edge.tcp.stats;
    const udp = edge.udp.stats;
    statCounter('refract_upstream_cx_connect_attempts_total', 'TCP origin connect attempts (each address tried counts).', [], () => [[{}, tcp.upstream_cx_total]]);
    statCounter('refract_upstream_cx_connect_attempt_failures_total', 'TCP origin connect attempts that failed, by reason (error: refused, unreachable, ...; timeout: connect_timeout_ms).', ['reason'], () => [
      [{ reason: 'error' }, tcp.upstream_cx_connect_fail],
      [{ reason: 'timeout' }, tcp.upstream_cx_connect_timeout],
    ]);
    statCounter('refract_downstream_cx_no_app_total', 'TCP connections accepted on a port whose app was removed in the same instant (no event, no app label).', [], () => [[{}, tcp.downstream_cx_no_app]]);
    statCounter(
      'refract_downstream_cx_refused_total',
      'New connections (TCP, closed at once) and flows (UDP, each datagram that would have opened one) refused by a limit: node_cap / app_cap (max_connections, udp_max_flows), client_connections (per_ip_connections), client_rate (per_ip_new_per_second).',
      ['proto', 'reason'],
      () => [
        [{ proto: 'tcp', reason: 'node_cap' }, tcp.downstream_cx_refused_node_cap],
        [{ proto: 'tcp', reason: 'app_cap' }, tcp.downstream_cx_refused_app_cap],
        [{ proto: 'tcp', reason: 'client_connections' }, tcp.downstream_cx_refused_client_connections],
        [{ proto: 'tcp', reason: 'client_rate' }, tcp.downstream_cx_refused_client_rate],
        [{ proto: 'udp', reason: 'cap' }, udp.udp_flows_refused_cap],
        [{ proto: 'udp', reason: 'client_connections' }, udp.udp_flows_refused_client_connections],
        [{ proto: 'udp', reason: 'client_rate' }, udp.udp_flows_refused_client_rate],
      ],
    );
    statCounter('refract_udp_flows_refused_total', 'UDP flows refused at udp_max_flows (node or app cap).', [], () => [[{}, udp.udp_flows_refused_cap]]);
    statCounter('refract_udp_datagrams_total', 'UDP datagrams relayed, by direction (to_origin, to_client).', ['direction'], () => [
      [{ direction: 'to_origin' }, udp.udp_dgrams_upstream],
      [{ direction: 'to_client' }, udp.udp_dgrams_downstream],
    ]);
    statCounter('refract_udp_datagrams_dropped_total', 'UDP datagrams dropped, by reason.', ['reason'], () => [
      [{ reason: 'no_app' }, udp.udp_dgrams_no_app],
      [{ reason: 'ip_blocked' }, udp.udp_dgrams_ip_blocked],
      [{ reason: 'oversize' }, udp.udp_dgrams_oversize],
      [{ reason: 'queue_full' }, udp.udp_dgrams_queue_full],
      [{ reason: 'unexpected_source' }, udp.udp_dgrams_from_unexpected_source],
      [{ reason: 'spp_invalid' }, udp.udp_spp_reply_invalid],
    ]);
    const sinks = this.#sinks;
    const sinkCounter = (name: string, help: string, pick: (s: SinkStats) => number): void =>
      statCounter(name, help, ['sink'], () => [...sinks].map(([sink, f]) => [{ sink }, pick(f())] as const));
    sinkCounter('refract_event_sink_delivered_total', 'Events an event sink delivered (HTTP: in batches the receiver accepted).', (s) => s.delivered);
    sinkCounter('refract_event_sink_dropped_total', 'Events an event sink dropped: buffer full, or a batch the receiver refused with a 4xx other than 429.', (s) => s.dropped);
    sinkCounter('refract_event_sink_retries_total', 'Retried deliveries (5xx, 429, network errors, timeouts).', (s) => s.retries);
    new Gauge({
      name: 'refract_event_sink_buffered',
      help: 'Events an event sink holds now (queued and in flight).',
      labelNames: ['sink'],
      registers: [r],
      collect() {
        this.reset();
        for (const [sink, f] of sinks) this.set({ sink }, f().buffered);
      },
    });
    const outputs = this.#outputs;
    statCounter('refract_output_lines_total', 'Lines written to an output (stderr: the log; stdout: access log and events; events_file), by result (written, dropped: the output held log.max_buffer bytes because its reader was slow).', ['output', 'result'], () =>
      [...outputs].flatMap(([output, f]) => {
        const s = f();
        return [[{ output, result: 'written' }, s.written], [{ output, result: 'dropped' }, s.dropped]] as const;
      }),
    );
    new Gauge({
      name: 'refract_output_buffered_bytes',
      help: 'Bytes an output holds now, not yet taken by its reader (at most about log.max_buffer).',
      labelNames: ['output'],
      registers: [r],
      collect() {
        this.reset();
        for (const [output, f] of outputs) this.set({ output }, f().bufferedBytes);
      },
    });
    const limiter = edge.logLimit;
    statCounter('refract_log_lines_suppressed_total', 'Connection-path log lines suppressed by log.rate_limit, by cause (tls.client_failed, conn.closed.STATUS, origin.connect_failed, ...); each window that suppressed lines ends with one summary line.', ['cause'], () =>
      [...limiter.suppressedByCause].map(([cause, n]) => [{ cause }, n] as const),
    );
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: r });

    this.#sub = edge.events.events$.subscribe((e) => this.#onEvent(e));
  }

  /** The label for an app id: itself while fewer than `maxApps` apps have series, else OTHER_APP. */
  #label(id: string): string {
    if (this.#apps.has(id)) return id;
    if (this.#apps.size >= this.#maxApps) return OTHER_APP;
    this.#apps.add(id);
    return id;
  }

  #onEvent(e: SpectrumEvent): void {
    const app = this.#label(e.Application);
    const proto = e.ClientProto;
    if (e.Event === 'connect') {
      this.#cxTotal.inc(app, proto, () => ({ proto }));
      return;
    }
    const status = String(e.Status);
    this.#closed.inc(app, `${proto}|${status}`, () => ({ proto, status }));
    this.#bytesIn.inc(app, proto, () => ({ proto }), e.ClientBytes);
    this.#bytesOut.inc(app, proto, () => ({ proto }), e.OriginBytes);
    if (e.ClientPackets !== undefined) this.#udpPackets.inc(app, 'c', () => ({ direction: 'from_client' }), e.ClientPackets);
    if (e.OriginPackets !== undefined) this.#udpPackets.inc(app, 'o', () => ({ direction: 'from_origin' }), e.OriginPackets);
    if (e.IpFirewall) {
      const kind = e.ClientMatchedIpFirewall;
      this.#access.inc(app, kind, () => ({ kind }));
    }
    if (e.ClientTlsStatus !== 'UNKNOWN') {
      const result = e.ClientTlsStatus;
      const version = e.ClientTlsProtocol;
      this.#tls.inc(app, `client|${result}|${version}`, () => ({ leg: 'client', result, version }));
    }
    if (e.OriginTlsStatus !== 'UNKNOWN') {
      const result = e.OriginTlsStatus;
      const version = e.OriginTlsProtocol;
      this.#tls.inc(app, `origin|${result}|${version}`, () => ({ leg: 'origin', result, version }));
    }
    let protos = this.#histLabels.get(app);
    if (protos === undefined) this.#histLabels.set(app, (protos = new Set()));
    protos.add(proto);
    const labels = { app, proto };
    if (e.ConnectTimestamp !== '') {
      this.#upOk.inc(app, proto, () => ({ proto }));
      // Accept time = close time − DurationMs (both from the event); ms precision, so clamp at 0.
      const acceptedAt = Date.parse(e.DisconnectTimestamp) - e.DurationMs;
      this.#connectTime.observe(labels, Math.max(0, Date.parse(e.ConnectTimestamp) - acceptedAt) / 1000);
    } else if (ORIGIN_FAILURE_EVENTS.has(e.Event)) {
      this.#upFail.inc(app, `${proto}|${status}`, () => ({ proto, status }));
    }
    this.#duration.observe(labels, e.DurationMs / 1000);
  }

  /** Drops the series of apps that left the config and have nothing open (run at scrape time). */
  #prune(): void {
    const keep = new Set((this.#edge.config?.apps ?? []).map((a) => a.id));
    for (const { app } of [...this.#edge.tcp.appStates(), ...this.#edge.udp.appStates()]) if (app !== undefined) keep.add(app);
    for (const id of [...this.#apps]) {
      if (keep.has(id)) continue;
      this.#apps.delete(id);
      this.#dropSeries(id);
    }
  }

  #dropSeries(app: string): void {
    for (const ac of this.#counters) ac.drop(app);
    for (const proto of this.#histLabels.get(app) ?? []) {
      this.#connectTime.remove({ app, proto });
      this.#duration.remove({ app, proto });
    }
    this.#histLabels.delete(app);
  }

  /** A configuration change after start: a file reload or an API write, applied or rejected. */
  recordReload(source: 'file' | 'api', ok: boolean): void {
    this.#reloads.inc({ source, result: ok ? 'success' : 'failure' });
  }

  /**
   * One management API request (`route` is the matched route pattern, `unmatched` for none). A write (POST, PUT,
   * PATCH, DELETE) that passed auth is also a config change: success with 200, failure with another status.
   */
  recordApiRequest(route: string, method: string, code: number): void {
    this.#api.inc({ route, method, code: String(code) });
    if (route !== 'unmatched' && (method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE') && code !== 401 && code !== 403 && code !== 429) {
      this.recordReload('api', code === 200);
    }
  }

  /** Adds an event sink's figures under `sink=name` (replacing one of the same name). */
  /** An output's figures, read at scrape time (`refract_output_lines_total`, `refract_output_buffered_bytes`). */
  registerOutput(name: string, stats: () => OutputStats): void {
    this.#outputs.set(name, stats);
  }

  /**
   * The descriptor guard's figures (docs/hardening.md, "Overload and descriptors"): connections lost to descriptor
   * exhaustion by side, episodes, whether accepting is paused, the limit and the reserve. Call once.
   */
  registerDescriptors(stats: () => DescriptorGuardStats): void {
    const r = this.registry;
    new Counter({
      name: 'refract_descriptor_exhaustion_connections_total',
      help: 'Connections lost to file-descriptor exhaustion, counted: accept (accepted and reset at once while descriptors were short, E_ACCEPT_EMFILE), upstream (origin connects and UDP upstream binds that failed with EMFILE/ENFILE, E_UPSTREAM_EMFILE, status 503).',
      labelNames: ['side'],
      registers: [r],
      collect() {
        const s = stats();
        this.reset();
        this.inc({ side: 'accept' }, s.acceptRefused);
        this.inc({ side: 'upstream' }, s.upstreamFailed);
      },
    });
    new Counter({
      name: 'refract_descriptor_exhaustion_episodes_total',
      help: 'Descriptor-exhaustion episodes: accepting paused until twice the reserve was free (one log line at each start and end).',
      registers: [r],
      collect() {
        this.reset();
        this.inc(stats().episodes);
      },
    });
    new Gauge({
      name: 'refract_descriptor_accept_paused',
      help: '1 while accepting is paused for want of file descriptors, else 0.',
      registers: [r],
      collect() {
        this.set(stats().paused ? 1 : 0);
      },
    });
    new Gauge({
      name: 'refract_descriptor_limit',
      help: 'File descriptors the process may open (soft RLIMIT_NOFILE) and the reserve the guard keeps free, by kind (limit, reserve); no series when the limit is unknown.',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        const s = stats();
        this.reset();
        if (!Number.isFinite(s.limit)) return;
        this.set({ kind: 'limit' }, s.limit);
        this.set({ kind: 'reserve' }, s.reserve);
      },
    });
  }

  registerSink(name: string, stats: () => SinkStats): void {
    this.#sinks.set(name, stats);
  }

  /** The Prometheus text exposition (version 0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stops following the event stream and clears the registry (its default-metrics collectors too). */
  dispose(): void {
    this.#sub.unsubscribe();
    this.registry.clear();
  }
}
