/**
 * The scenario's expectations, checked against the run's report: per connection and per flow, closing statuses,
 * connect-time percentiles, load echoes, UDP counters, quiescence. Each miss is reported through `fail` at a JSON
 * pointer into the scenario; nothing throws.
 */
import { type CertInfo } from '../net/ports.ts';
import { type AnalyticsRow } from './analytics.ts';
import { type ApiOutcome, type ConnectionReport, type DescriptorCounts, type Fail, type FlowReport, type ResolutionReport, type ScenarioReport, type UdpCounters } from './results.ts';
import { canonicalIp, formatIpPort, LOAD_DEFAULT_BYTES, loadId, parseIpPort, UDP_COUNTER_KEYS } from './schema.ts';
import { type ConnExpectation, type CountExpectation, type FlowExpectation, type ScenarioFile } from './types.ts';

/** How the run ended, for the quiescence expectation's message. */
export interface RunEnd {
  readonly quiescent: boolean;
  readonly leftOpen: readonly string[];
  readonly pendingTimers: number;
  readonly stoppedBy: ScenarioReport['stoppedBy'];
}

/** Whether `actual` meets an exact count or a `[min, max]` range. */
function countHolds(expected: CountExpectation, actual: number): boolean {
  return typeof expected === 'number' ? actual === expected : actual >= expected[0] && actual <= expected[1];
}

/** A count expectation as a failure's `expected`. */
function countText(expected: CountExpectation): number | string {
  return typeof expected === 'number' ? expected : `between ${expected[0]} and ${expected[1]}`;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  const i = Math.max(0, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.min(i, sorted.length - 1)] ?? 0;
}

/** An `ip:port` as the report writes it (IPv6 bracketed); text that is not one stays as it is. */
function endpoint(s: string): string {
  const p = parseIpPort(s);
  return p === undefined ? s : formatIpPort(p.address, p.port);
}

/** Compares a field when the expectation gives it (JSON equality), failing at `base/field`. */
function comparer(base: string, fail: Fail): (field: string, expected: unknown, actual: unknown) => void {
  return (field, expected, actual) => {
    if (expected !== undefined && JSON.stringify(expected) !== JSON.stringify(actual)) fail(`${base}/${field}`, expected, actual);
  };
}

function checkConnection(x: ConnExpectation, c: ConnectionReport, fullText: string, base: string, fail: Fail, certs: ReadonlyMap<string, CertInfo>): void {
  const cmp = comparer(base, fail);
  cmp('status', x.status, c.status);
  cmp('event', x.event, c.event);
  cmp('matched', x.matched, c.matched);
  cmp('country', x.country, c.country);
  if (x.origin !== undefined) cmp('origin', endpoint(x.origin), c.origin);
  cmp('client_bytes', x.client_bytes, c.clientBytes);
  cmp('origin_bytes', x.origin_bytes, c.originBytes);
  cmp('received', x.received, fullText);
  cmp('received_bytes', x.received_bytes, c.receivedBytes);
  cmp('close_reason', x.close_reason, c.reason);
  cmp('error_code', x.error_code, c.code);
  if (x.error !== undefined) cmp('error', x.error, c.error ?? 'none');
  if (x.closed_at_ms !== undefined) {
    const [lo, hi] = x.closed_at_ms;
    if (c.closedAtMs === null || c.closedAtMs < lo || c.closedAtMs > hi) fail(`${base}/closed_at_ms`, `closed between ${lo} and ${hi} ms`, c.closedAtMs === null ? 'still open' : c.closedAtMs);
  }
  if (x.tls !== undefined) {
    const { origin_fingerprint_of: fpOf, ...fields } = x.tls;
    for (const [k, v] of Object.entries(fields)) cmp(`tls/${k}`, v, c.tls?.[k] ?? null);
    if (fpOf !== undefined) cmp('tls/origin_fingerprint_of', certs.get(fpOf)?.fingerprint256 ?? `(no certificate ${fpOf})`, c.tls?.['origin_fingerprint'] ?? null);
  }
  if (x.client_tls !== undefined) {
    const ct = c.clientTls;
    const seen = ct === null ? {} : 'failure' in ct ? { failure: ct.failure } : { protocol: ct.protocol, cipher: ct.cipher, failure: 'none' };
    for (const [k, v] of Object.entries(x.client_tls)) cmp(`client_tls/${k}`, v, (seen as Record<string, string>)[k] ?? null);
  }
  if (x.proxy_header !== undefined) {
    cmp('proxy_header', { version: x.proxy_header.version, src: endpoint(x.proxy_header.src), dst: endpoint(x.proxy_header.dst) }, c.proxyHeader);
  }
}

/**
 * The connection, status, connect-time, load and quiescence expectations. `texts`: the whole received text of each
 * connection an expectation names; `certs`: the scenario's certificates (for `tls.origin_fingerprint_of`);
 * `reportOf`: a connection's report by id (default: a map of `connections` built here).
 */
export function checkExpectations(
  sc: ScenarioFile,
  connections: readonly ConnectionReport[],
  texts: ReadonlyMap<string, string>,
  byStatus: Readonly<Record<string, number>>,
  end: RunEnd,
  fail: Fail,
  certs: ReadonlyMap<string, CertInfo>,
  reportOf?: (id: string) => ConnectionReport | undefined,
): void {
  const ex = sc.expect ?? {};
  let byId: ((id: string) => ConnectionReport | undefined) | undefined = reportOf;
  const lookup = (id: string): ConnectionReport | undefined => {
    if (byId === undefined) {
      const m = new Map(connections.map((c) => [c.id, c] as const));
      byId = (i) => m.get(i);
    }
    return byId(id);
  };
  ex.connections?.forEach((x, k) => {
    const c = lookup(x.id);
    const base = `/expect/connections/${k}`;
    if (c === undefined) fail(`${base}/id`, `connection ${x.id} was opened`, 'never opened');
    else checkConnection(x, c, texts.get(x.id) ?? '', base, fail, certs);
  });
  if (ex.statuses !== undefined) {
    const keys = new Set([...Object.keys(ex.statuses), ...Object.keys(byStatus)]);
    for (const s of [...keys].sort((a, b) => Number(a) - Number(b))) {
      const want = ex.statuses[s] ?? 0;
      const got = byStatus[s] ?? 0;
      if (want !== got) fail(`/expect/statuses/${s}`, want, got);
    }
  }
  for (const [s, want] of Object.entries(ex.statuses_at_least ?? {})) {
    const got = byStatus[s] ?? 0;
    if (got < want) fail(`/expect/statuses_at_least/${s}`, `>= ${want}`, got);
  }
  if (ex.connect_ms !== undefined) {
    const ms = connections.flatMap((c) => (c.connectMs === null ? [] : [c.connectMs])).sort((a, b) => a - b);
    const check = (key: 'p50_max' | 'p99_max', p: number): void => {
      const max = ex.connect_ms?.[key];
      if (max === undefined) return;
      if (ms.length === 0) fail(`/expect/connect_ms/${key}`, `<= ${max}`, 'no connection reached an origin');
      else if (percentile(ms, p) > max) fail(`/expect/connect_ms/${key}`, `<= ${max}`, percentile(ms, p));
    };
    check('p50_max', 50);
    check('p99_max', 99);
  }
  sc.timeline.forEach((step, i) => {
    if (!('load' in step) || step.load.echo_bytes_expected !== true) return;
    const want = step.load.bytes ?? LOAD_DEFAULT_BYTES;
    const wrong: string[] = [];
    for (let k = 0; k < step.load.count; k++) {
      const id = loadId(step.load, k);
      const c = lookup(id);
      if (c === undefined || c.receivedBytes !== want) wrong.push(`${id}: ${c?.receivedBytes ?? 0}`);
    }
    if (wrong.length > 0) {
      const shown = wrong.slice(0, 5).join(', ') + (wrong.length > 5 ? `, … (${wrong.length} in all)` : '');
      fail(`/timeline/${i}/load/echo_bytes_expected`, `${want} bytes back on each of ${step.load.count} connections`, shown);
    }
  });
  if ((ex.quiescent ?? true) && !end.quiescent) {
    const why = end.stoppedBy === 'idle' ? 'connections left open' : `the run stopped at ${end.stoppedBy === 'max_time' ? 'max_time_ms' : 'the step budget'} with work pending`;
    fail('/expect/quiescent', 'no open connection and no pending timer after the run', { why, pendingTimers: end.pendingTimers, open: end.leftOpen });
  }
}

function checkFlow(x: FlowExpectation, f: FlowReport, received: readonly string[], base: string, fail: Fail): void {
  const cmp = comparer(base, fail);
  const count = (field: string, expected: CountExpectation | undefined, actual: number): void => {
    if (expected !== undefined && !countHolds(expected, actual)) fail(`${base}/${field}`, countText(expected), actual);
  };
  cmp('status', x.status, f.status);
  cmp('event', x.event, f.event);
  cmp('close_reason', x.close_reason, f.reason);
  count('client_packets', x.client_packets, f.clientPackets);
  count('origin_packets', x.origin_packets, f.originPackets);
  count('client_bytes', x.client_bytes, f.clientBytes);
  count('origin_bytes', x.origin_bytes, f.originBytes);
  if (x.origin !== undefined) cmp('origin', endpoint(x.origin), f.origin);
  cmp('edge_flows', x.edge_flows, f.edgeFlows);
  cmp('received', x.received, received);
  count('received_datagrams', x.received_datagrams, f.receivedDatagrams);
  count('received_bytes', x.received_bytes, f.receivedBytes);
  cmp('received_foreign', x.received_foreign, f.receivedForeign);
  count('origin_datagrams', x.origin_datagrams, f.originDatagrams);
  cmp('proxy_headers', x.proxy_headers, f.proxyHeaders);
  if (x.origin_client !== undefined) cmp('origin_client', endpoint(x.origin_client), f.originClient);
}

/** `expect.descriptors` against the edges' descriptor guards (none: every count reads 0). */
export function checkDescriptorExpectations(sc: ScenarioFile, d: DescriptorCounts | undefined, fail: Fail): void {
  const ex = sc.expect?.descriptors;
  if (ex === undefined) return;
  const got = { accept_refused: d?.acceptRefused ?? 0, upstream_failed: d?.upstreamFailed ?? 0, episodes: d?.episodes ?? 0, lost_untraced: d?.lostUntraced ?? 0 };
  for (const key of ['accept_refused', 'upstream_failed', 'episodes', 'lost_untraced'] as const) {
    const want = ex[key];
    if (want !== undefined && !countHolds(want, got[key])) fail(`/expect/descriptors/${key}`, countText(want), got[key]);
  }
}

/** The flow and UDP counter expectations. `received`: every payload each flow received. */
export function checkFlowExpectations(sc: ScenarioFile, flows: readonly FlowReport[], received: ReadonlyMap<string, readonly string[]>, udp: UdpCounters, fail: Fail): void {
  const ex = sc.expect ?? {};
  const byId = new Map(flows.map((f) => [f.id, f] as const));
  ex.flows?.forEach((x, k) => {
    const f = byId.get(x.id);
    const base = `/expect/flows/${k}`;
    if (f === undefined) fail(`${base}/id`, `flow ${x.id} sent a datagram`, 'never sent');
    else checkFlow(x, f, received.get(x.id) ?? [], base, fail);
  });
  for (const key of UDP_COUNTER_KEYS) {
    const want = ex.udp?.[key];
    if (want !== undefined && !countHolds(want, udp[key])) fail(`/expect/udp/${key}`, countText(want), udp[key]);
  }
}

/**
 * The `resolutions` expectations: rcode, the address set (order-independent, canonical text: `2001:DB8::1` is
 * `2001:db8::1`) and the TTL of each resolve step's answer.
 */
/**
 * `expect.analytics` against the bytime table: each entry's figures summed over the rows of its app (by id, DNS
 * name, or the ids its api ref got on any edge) and event. Exact.
 */
export function checkAnalyticsExpectations(sc: ScenarioFile, rows: readonly AnalyticsRow[], api: readonly ApiOutcome[], fail: Fail): void {
  sc.expect?.analytics?.forEach((x, k) => {
    const ids = new Set(api.filter((o) => o.op === 'create' && o.ref === x.app && o.id !== null).map((o) => o.id!));
    const mine = rows.filter((r) => (r.app === x.app || r.name === x.app || ids.has(r.app)) && (x.event === undefined || r.event === x.event));
    const sum = (f: (r: AnalyticsRow) => number): number => mine.reduce((n, r) => n + f(r), 0);
    const cmp = comparer(`/expect/analytics/${k}`, fail);
    cmp('count', x.count, sum((r) => r.count));
    cmp('bytes_ingress', x.bytes_ingress, sum((r) => r.bytesIngress));
    cmp('bytes_egress', x.bytes_egress, sum((r) => r.bytesEgress));
  });
}

export function checkResolutionExpectations(sc: ScenarioFile, resolutions: readonly ResolutionReport[], fail: Fail): void {
  const byId = new Map(resolutions.map((r) => [r.id, r] as const));
  sc.expect?.resolutions?.forEach((x, k) => {
    const base = `/expect/resolutions/${k}`;
    const r = byId.get(x.id);
    if (r === undefined) {
      fail(`${base}/id`, `resolve ${x.id} ran`, 'never ran');
      return;
    }
    const cmp = comparer(base, fail);
    cmp('rcode', x.rcode, r.rcode ?? `no answer (${r.error ?? 'none yet'})`);
    if (x.addresses !== undefined) {
      const sorted = (a: readonly string[]): string[] => [...new Set(a.map(canonicalIp))].sort();
      cmp('addresses', sorted(x.addresses), sorted(r.addresses));
    }
    cmp('ttl', x.ttl, r.ttl);
  });
}
