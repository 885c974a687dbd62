/**
 * Text for people: the summary table of a run, a readable diff of failed expectations, and scenario file problems.
 * Pure functions of a report (or issue list) to a string; `cli.ts` decides where they go.
 */
import { type ScenarioIssue } from './schema.ts';
import { type ConnectionReport, type ExpectationFailure, type FlowReport, type ScenarioReport } from './runner.ts';

/** Connections listed one per row when the run has at most this many (a load test gets totals only). */
const LIST_CONNECTIONS_UP_TO = 20;

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Milliseconds as the most readable unit: `850 ms`, `12.5 s`, `15 min 26 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Number(ms.toFixed(ms < 10 ? 2 : 0))} ms`;
  if (ms < 60_000) return `${Number((ms / 1_000).toFixed(ms < 10_000 ? 2 : 1))} s`;
  const min = Math.floor(ms / 60_000);
  const s = Math.round((ms - min * 60_000) / 1_000);
  return min < 60 ? `${min} min ${s} s` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

function table(rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number> = new Set()): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 && !rightAligned.has(i) ? c : rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}

function connectionRows(cs: readonly ConnectionReport[]): string[][] {
  const head = ['id', 'status', 'reason', 'origin', 'in', 'out', 'recv', 'connect', 'client error'];
  return [
    head,
    ...cs.map((c) => [
      c.id,
      c.status === null ? '—' : String(c.status),
      c.reason ?? (c.edge === null ? 'not accepted' : 'open'),
      c.origin ?? '—',
      int(c.clientBytes),
      int(c.originBytes),
      int(c.receivedBytes),
      c.connectMs === null ? '—' : formatDuration(c.connectMs),
      c.error ?? '',
    ]),
  ];
}

function flowRows(fs: readonly FlowReport[]): string[][] {
  const head = ['flow', 'status', 'reason', 'origin', 'sent', 'pkts in', 'pkts out', 'recv', 'foreign', 'origin saw', 'error'];
  return [
    head,
    ...fs.map((f) => [
      f.edgeFlows > 1 ? `${f.id} (${f.edgeFlows} flows)` : f.id,
      f.status === null ? '—' : String(f.status),
      f.reason ?? (f.edge === null ? 'not accepted' : 'open'),
      f.origin ?? '—',
      int(f.sentDatagrams),
      int(f.clientPackets),
      int(f.originPackets),
      int(f.receivedDatagrams),
      int(f.receivedForeign),
      f.originClient ?? '—',
      f.error ?? '',
    ]),
  ];
}

/** UDP flows: one row each for small runs, else totals by status. */
/** The edges' descriptor guards (edges with `max_descriptors`), one line. */
function descriptorSection(r: ScenarioReport): string[] {
  const d = r.descriptors;
  if (d === undefined) return [];
  return [
    `descriptors: ${int(d.acceptRefused)} accepts reset and counted (E_ACCEPT_EMFILE), ${int(d.upstreamFailed)} EMFILE on connect/bind (E_UPSTREAM_EMFILE), ${int(d.episodes)} episode(s), ${int(d.lostUntraced)} lost without a trace`,
  ];
}

function flowSection(r: ScenarioReport): string[] {
  const lines: string[] = [''];
  if (r.flows.length <= LIST_CONNECTIONS_UP_TO) {
    lines.push(table(flowRows(r.flows), new Set([4, 5, 6, 7, 8])));
  } else {
    const groups = new Map<string, { n: number; sent: number; recv: number; foreign: number }>();
    for (const f of r.flows) {
      const k = f.status === null ? '— (open or refused)' : String(f.status);
      const g = groups.get(k) ?? { n: 0, sent: 0, recv: 0, foreign: 0 };
      g.n++;
      g.sent += f.sentDatagrams;
      g.recv += f.receivedDatagrams;
      g.foreign += f.receivedForeign;
      groups.set(k, g);
    }
    const rows = [['status', 'flows', 'sent', 'received', 'foreign'], ...[...groups].map(([k, g]) => [k, int(g.n), int(g.sent), int(g.recv), int(g.foreign)])];
    lines.push(table(rows, new Set([1, 2, 3, 4])));
  }
  const counters = Object.entries(r.udp).filter(([, v]) => v > 0);
  if (counters.length > 0) lines.push(`udp counters: ${counters.map(([k, v]) => `${k} ${int(v)}`).join(', ')}`);
  return lines;
}

/** The api steps' outcomes, one line each: `api  at 500 ms  create b on edge: app 2a9e…` or `…: refused E_…`. */
function apiSection(r: ScenarioReport): string[] {
  if (r.api === undefined || r.api.length === 0) return [];
  const outcome = (a: NonNullable<ScenarioReport['api']>[number]): string => {
    if (a.code !== null) return `refused ${a.code}`;
    return a.ips === undefined ? `applied, app ${a.id ?? ''}` : `applied, app ${a.id ?? ''} now on ${a.ips.join(', ')}`;
  };
  const rows = r.api.map((a) => [`/timeline/${a.step}`, `${int(a.at)} ms`, a.op, a.ref, a.edge, outcome(a)]);
  return ['', table([['api step', 'at', 'write', 'ref', 'edge', 'outcome'], ...rows], new Set([1]))];
}

/** Lines of the analytics table the summary shows; the rest are counted (the JSON report has every one). */
export const SUMMARY_ANALYTICS_ROWS = 40;

/**
 * The bytime table (when the report has one): per virtual minute (UTC, the simulator's clock starts at
 * 2026-01-01T00:00Z), app and event, the count and bytes each way, then a total line per app and event.
 */
function analyticsSection(r: ScenarioReport): string[] {
  if (r.analytics === undefined) return [];
  if (r.analytics.length === 0) return ['', 'analytics: no events'];
  const label = (x: { name: string; app: string }): string => x.name || x.app || '(no app)';
  const shown = r.analytics.slice(0, SUMMARY_ANALYTICS_ROWS);
  const rows = shown.map((x) => [x.minute.slice(11, 16), label(x), x.event, int(x.count), int(x.bytesIngress), int(x.bytesEgress)]);
  const totals = new Map<string, { name: string; app: string; event: string; count: number; bi: number; be: number }>();
  for (const x of r.analytics) {
    const key = `${x.app}\u0000${x.event}`;
    const t = totals.get(key) ?? { name: x.name, app: x.app, event: x.event, count: 0, bi: 0, be: 0 };
    t.count += x.count;
    t.bi += x.bytesIngress;
    t.be += x.bytesEgress;
    totals.set(key, t);
  }
  const minutes = new Set(r.analytics.map((x) => x.minute)).size;
  const out = ['', `analytics (events/bytime per minute, from the same rollup as the API; ${int(minutes)} minute(s) with events)`, table([['minute', 'app', 'event', 'count', 'bytes in', 'bytes out'], ...rows], new Set([3, 4, 5]))];
  if (r.analytics.length > shown.length) out.push(`(${int(r.analytics.length - shown.length)} more lines; --json has them all)`);
  if (minutes > 1) {
    const sum = [...totals.values()]
      .sort((a, b) => label(a).localeCompare(label(b)) || a.event.localeCompare(b.event))
      .map((t) => ['run', label(t), t.event, int(t.count), int(t.bi), int(t.be)]);
    out.push('', table([['', 'app', 'event', 'count', 'bytes in', 'bytes out'], ...sum], new Set([3, 4, 5])));
  }
  return out;
}

/** The resolve steps, one row each: who asked what of which server, and the answer (rcode, addresses, TTL) or error. */
function resolutionSection(r: ScenarioReport): string[] {
  if (r.resolutions === undefined || r.resolutions.length === 0) return [];
  const rows = r.resolutions.map((x) => [
    x.id,
    `${int(x.sentAtMs)} ms`,
    x.client,
    `${x.name} ${x.type}`,
    `${x.server} ${x.transport}${x.truncated ? ' (TC, retried)' : ''}`,
    x.rcode ?? '—',
    x.addresses.length === 0 ? '—' : x.addresses.join(', '),
    x.ttl === null ? '—' : `${x.ttl} s`,
    x.dialledBy.join(', '),
    x.error ?? '',
  ]);
  return ['', table([['resolve', 'at', 'client', 'question', 'server', 'rcode', 'addresses', 'ttl', 'dialled by', 'error'], ...rows], new Set([1]))];
}

/**
 * The summary of a run: times and event rate, connections by status with their bytes, UDP flows, the trace hash,
 * quiescence, and (for small runs) one row per connection or flow. Ends without a newline.
 */
export function formatSummary(r: ScenarioReport): string {
  const rate = r.wallMs > 0 ? (r.steps / r.wallMs) * 1_000 : 0;
  const lines: string[] = [];
  lines.push(`scenario  ${r.name}`);
  lines.push(`seed      ${r.seed}`);
  lines.push(`time      ${formatDuration(r.virtualMs)} virtual, ${formatDuration(r.wallMs)} wall (${r.stoppedBy === 'idle' ? 'ran until idle' : r.stoppedBy === 'max_time' ? 'stopped at max_time_ms' : 'stopped at the step budget'})`);
  lines.push(`events    ${int(r.steps)} simulator events, ${int(rate)} events/s`);
  lines.push(`trace     ${int(r.traceLines)} lines, sha256 ${r.traceHash}`);

  // Connections by status: timeline connections plus any closing event the edges saw. A UDP-only run has none.
  const flows = r.flows ?? [];
  const flowClosings = flows.reduce((n, f) => n + f.edgeFlowsClosed, 0);
  if (r.connections.length === 0 && flows.length > 0) {
    lines.push(...flowSection(r));
    lines.push(...descriptorSection(r));
    const untrackedUdp = Object.values(r.byStatus).reduce((n, v) => n + v, 0) - flowClosings;
    if (untrackedUdp > 0) lines.push(`(${int(untrackedUdp)} more closing events on the edges that no timeline flow owns)`);
    lines.push(...resolutionSection(r));
    lines.push(...apiSection(r));
    lines.push(...analyticsSection(r));
    lines.push('');
    lines.push(r.quiescent ? 'quiescent: yes (no open connection, no pending timer)' : `quiescent: no (${r.leftOpen.length} connection(s) open, ${r.pendingTimers} timer(s) pending)`);
    return lines.join('\n');
  }
  const groups = new Map<string, { n: number; inB: number; outB: number; reasons: Set<string> }>();
  for (const c of r.connections) {
    const key = c.status === null ? (c.error !== null ? `— (${c.error})` : '— (open)') : String(c.status);
    const g = groups.get(key) ?? { n: 0, inB: 0, outB: 0, reasons: new Set<string>() };
    g.n++;
    g.inB += c.clientBytes;
    g.outB += c.originBytes;
    if (c.reason !== null) g.reasons.add(c.reason);
    groups.set(key, g);
  }
  const keys = [...groups.keys()].sort((a, b) => (Number(a) || 1e9) - (Number(b) || 1e9) || a.localeCompare(b));
  const rows = [['status', 'connections', 'client bytes', 'origin bytes', 'close reasons'], ...keys.map((k) => {
    const g = groups.get(k)!;
    return [k, int(g.n), int(g.inB), int(g.outB), [...g.reasons].sort().join(', ')];
  })];
  const total = r.connections.reduce((a, c) => ({ inB: a.inB + c.clientBytes, outB: a.outB + c.originBytes }), { inB: 0, outB: 0 });
  rows.push(['total', int(r.connections.length), int(total.inB), int(total.outB), '']);
  lines.push('');
  lines.push(table(rows, new Set([1, 2, 3])));
  const untracked = Object.entries(r.byStatus).reduce((n, [, v]) => n + v, 0) - r.connections.filter((c) => c.status !== null && c.event !== null).length - flowClosings;
  if (untracked > 0) lines.push(`(${int(untracked)} more closing events on the edges that no timeline connection or flow owns)`);

  if (r.connections.length > 0 && r.connections.length <= LIST_CONNECTIONS_UP_TO) {
    lines.push('');
    lines.push(table(connectionRows(r.connections), new Set([4, 5, 6])));
  }
  if (flows.length > 0) lines.push(...flowSection(r));
  lines.push(...descriptorSection(r));
  lines.push(...resolutionSection(r));
  lines.push(...apiSection(r));
  lines.push(...analyticsSection(r));
  lines.push('');
  lines.push(r.quiescent ? 'quiescent: yes (no open connection, no pending timer)' : `quiescent: no (${r.leftOpen.length} connection(s) open, ${r.pendingTimers} timer(s) pending)`);
  return lines.join('\n');
}

/** A value as it reads best in a diff: strings JSON-quoted (so \r\n shows), objects as compact JSON. */
function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Where two strings first differ, as `at character N: expected "…" but got "…"` with a little context. */
function firstDifference(expected: string, actual: string): string | undefined {
  let i = 0;
  while (i < expected.length && i < actual.length && expected[i] === actual[i]) i++;
  if (i === expected.length && i === actual.length) return undefined;
  const from = Math.max(0, i - 10);
  const snip = (s: string): string => JSON.stringify(s.slice(from, i + 20)) + (s.length > i + 20 ? '…' : '');
  if (i === actual.length) return `actual stops after ${i} characters (expected ${expected.length}); expected continues ${snip(expected)}`;
  if (i === expected.length) return `actual has ${actual.length - i} characters more than expected, from ${snip(actual)}`;
  return `first difference at character ${i}: expected ${snip(expected)}, actual ${snip(actual)}`;
}

/** A readable diff of failed expectations, one block per failure, in file order. Empty string when none failed. */
export function formatFailures(failures: readonly ExpectationFailure[]): string {
  if (failures.length === 0) return '';
  const out = [`${failures.length} expectation${failures.length === 1 ? '' : 's'} failed:`];
  for (const f of failures) {
    out.push(`  ${f.path}`);
    if (f.actual !== null && typeof f.actual === 'object' && !Array.isArray(f.actual) && 'why' in f.actual) {
      const a = f.actual as { why: string; pendingTimers: number; open: readonly string[] };
      out.push(`    expected: ${show(f.expected)}`);
      out.push(`    actual:   ${a.why}; ${a.pendingTimers} timer(s) pending`);
      for (const o of a.open) out.push(`              ${o}`);
      continue;
    }
    out.push(`    expected: ${show(f.expected)}`);
    out.push(`    actual:   ${show(f.actual)}`);
    if (typeof f.expected === 'string' && typeof f.actual === 'string') {
      const d = firstDifference(f.expected, f.actual);
      if (d !== undefined && f.expected.length + f.actual.length > 16) out.push(`    ${d}`);
    }
  }
  return out.join('\n');
}

/** Scenario file problems, one per line: `FILE:LINE:COL: POINTER: CODE (cfCode): message`. */
export function formatIssues(file: string, issues: readonly ScenarioIssue[]): string {
  const lines = issues.map((i) => {
    const where = i.line === undefined ? file : `${file}:${i.line}:${i.col ?? 1}`;
    return `  ${where}: ${i.pointer || '/'}: ${i.code}${i.cfCode ? ` (${i.cfCode})` : ''}: ${i.message}`;
  });
  return `${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}\n${lines.join('\n')}`;
}
