/**
 * Spectrum's analytics queries (docs/api.md, "Analytics"): the request parameters of `events/summary`,
 * `events/bytime` and `aggregate/current` checked into an `AnalyticsQuery` (a bad part is an E_API_ANALYTICS_*
 * issue naming it), and `query(store, q)`, which groups the stored rollups (and the rows not written yet) by the
 * requested dimensions (and time interval) and computes the metrics in the SDK's result shape.
 *
 * `query` is a plain function over an AnalyticsStore, so the API and the dashboard share it.
 */
import { configIssue } from '../model/app.ts';
import type { ConfigIssue } from '../model/types.ts';
import { mergeBytesInto, mergeInto, newSketch, type RollupFigures } from '../streams/analytics.ts';
import type { AnalyticsStore } from './analytics-store.ts';

export const METRICS = ['count', 'bytesIngress', 'bytesEgress', 'durationAvg', 'durationMedian', 'duration90th', 'duration99th'] as const;
export type Metric = (typeof METRICS)[number];
export const DIMENSIONS = ['event', 'appID', 'coloName', 'ipVersion'] as const;
export type Dimension = (typeof DIMENSIONS)[number];
export const TIME_DELTAS = ['year', 'quarter', 'month', 'week', 'day', 'hour', 'dekaminute', 'minute'] as const;
export type TimeDelta = (typeof TIME_DELTAS)[number];
export const FILTER_OPS = ['==', '!=', '>=', '<=', '>', '<'] as const;
export type FilterOp = (typeof FILTER_OPS)[number];

/** Default and largest `limit` (rows of `data`); the SDK does not send one. */
export const DEFAULT_LIMIT = 10_000;
/** Most time intervals a bytime query may span. */
export const MAX_INTERVALS = 10_080;
/** `since` defaults to `until` − 6 hours (Cloudflare's default). */
export const DEFAULT_SPAN_MS = 6 * 3_600_000;

export interface FilterTerm {
  readonly dimension: Dimension;
  readonly op: FilterOp;
  readonly value: string;
}
/** OR of ANDs (AND binds tighter). Empty: no filter. */
export type Filter = ReadonlyArray<ReadonlyArray<FilterTerm>>;

export interface SortKey {
  readonly field: Metric | Dimension;
  readonly desc: boolean;
}

export interface AnalyticsQuery {
  readonly zone: string;
  readonly metrics: readonly Metric[];
  readonly dimensions: readonly Dimension[];
  readonly filters: Filter;
  /** Epoch ms; a bucket counts when its start lies in [since, until). */
  readonly since: number;
  readonly until: number;
  readonly sort: readonly SortKey[];
  readonly limit: number;
  /** bytime only. */
  readonly timeDelta?: TimeDelta | undefined;
}

export interface AnalyticsResult {
  data: Array<{ dimensions: string[]; metrics: number[] | number[][] }>;
  data_lag: number;
  max: Record<string, number>;
  min: Record<string, number>;
  totals: Record<string, number>;
  rows: number;
  query: Record<string, unknown>;
  time_intervals?: string[][];
}

const COLUMN: Record<Dimension, string> = { event: 'event', appID: 'app_id', coloName: 'colo', ipVersion: 'ip_version' };

function dimValue(r: { event: string; app: string; colo: string; ipVersion: number }, d: Dimension): string {
  switch (d) {
    case 'event':
      return r.event;
    case 'appID':
      return r.app;
    case 'coloName':
      return r.colo;
    case 'ipVersion':
      return String(r.ipVersion);
  }
}

// ── parameters ────────────────────────────────────────────────────────────────────────────────────────────────

/** A query parameter's values: repeated keys and comma lists both (`metrics=a&metrics=b`, `metrics=a,b`). */
function listParam(v: unknown): string[] {
  const items = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return items.flatMap((x) => String(x).split(',')).map((s) => s.trim()).filter((s) => s !== '');
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

function parseTime(name: string, v: unknown): number | ConfigIssue | undefined {
  if (v === undefined || v === '') return undefined;
  const ms = typeof v === 'string' && RFC3339.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(ms)) return configIssue('', 'E_API_ANALYTICS_TIME', `${name} must be an RFC 3339 time such as 2026-01-01T00:00:00Z, not ${JSON.stringify(v)}`);
  return ms;
}

/**
 * Parses `filters`: terms `dimension OP value` (OP one of == != > < >= <=), joined by `;` or ` AND ` (AND) and
 * `,` or ` OR ` (OR); AND binds tighter. Values may be quoted ('x' or "x").
 */
export function parseFilters(text: string): Filter | ConfigIssue {
  const bad = (m: string): ConfigIssue => configIssue('', 'E_API_ANALYTICS_FILTER', m);
  const out: FilterTerm[][] = [];
  for (const alt of text.split(/,|\s+OR\s+/)) {
    const and: FilterTerm[] = [];
    for (const raw of alt.split(/;|\s+AND\s+/)) {
      const term = raw.trim();
      const m = /^([A-Za-z]+)\s*(==|!=|>=|<=|>|<)\s*(.*)$/.exec(term);
      if (m === null) return bad(`filter term ${JSON.stringify(term)} is not DIMENSION OP VALUE (OP one of ${FILTER_OPS.join(' ')})`);
      const dimension = m[1] as Dimension;
      if (!DIMENSIONS.includes(dimension)) return bad(`filter on ${JSON.stringify(m[1])}: filters take a dimension (${DIMENSIONS.join(', ')})`);
      let value = (m[3] ?? '').trim();
      if (/^(['"]).*\1$/.test(value) && value.length >= 2) value = value.slice(1, -1);
      if (value === '') return bad(`filter term ${JSON.stringify(term)} has no value`);
      if (dimension === 'ipVersion' && !/^\d+$/.test(value)) return bad(`ipVersion is compared with a number (4 or 6), not ${JSON.stringify(value)}`);
      and.push({ dimension, op: m[2] as FilterOp, value });
    }
    out.push(and);
  }
  return out;
}

/**
 * Checks the request's query string into an AnalyticsQuery. `bytime` requires time_delta. `nowMs` is the default
 * `until`.
 */
export function parseAnalyticsQuery(zone: string, q: Record<string, unknown>, nowMs: number, kind: 'summary' | 'bytime'): AnalyticsQuery | ConfigIssue {
  const metrics = listParam(q['metrics']);
  for (const m of metrics) if (!METRICS.includes(m as Metric)) return configIssue('', 'E_API_ANALYTICS_METRIC', `unknown metric ${JSON.stringify(m)}; metrics are ${METRICS.join(', ')}`);
  const dimensions = listParam(q['dimensions']);
  for (const d of dimensions) if (!DIMENSIONS.includes(d as Dimension)) return configIssue('', 'E_API_ANALYTICS_DIMENSION', `unknown dimension ${JSON.stringify(d)}; dimensions are ${DIMENSIONS.join(', ')}`);
  if (new Set(dimensions).size !== dimensions.length) return configIssue('', 'E_API_ANALYTICS_DIMENSION', 'a dimension is listed twice');
  const ms = metrics.length === 0 ? (['count'] as Metric[]) : [...new Set(metrics as Metric[])];

  const rawFilters = q['filters'];
  if (Array.isArray(rawFilters) && rawFilters.length > 1) return configIssue('', 'E_API_ANALYTICS_FILTER', 'give filters once (join terms with ; for AND and , for OR)');
  const filterText = rawFilters === undefined ? '' : String(Array.isArray(rawFilters) ? rawFilters[0] : rawFilters).trim();
  const filters = filterText === '' ? [] : parseFilters(filterText);
  if ('code' in filters) return filters;

  const until = parseTime('until', q['until']);
  if (typeof until === 'object') return until;
  const since = parseTime('since', q['since']);
  if (typeof since === 'object') return since;
  const u = until ?? nowMs;
  const s = since ?? u - DEFAULT_SPAN_MS;
  if (s >= u) return configIssue('', 'E_API_ANALYTICS_TIME', `since (${new Date(s).toISOString()}) must be before until (${new Date(u).toISOString()})`);

  const sort: SortKey[] = [];
  for (const raw of listParam(q['sort'])) {
    const desc = raw.startsWith('-');
    const field = raw.replace(/^[+-]/, '');
    if (!ms.includes(field as Metric) && !dimensions.includes(field)) {
      return configIssue('', 'E_API_ANALYTICS_SORT', `cannot sort by ${JSON.stringify(field)}: sort fields must be among the query's metrics or dimensions`);
    }
    sort.push({ field: field as Metric | Dimension, desc });
  }

  let limit = DEFAULT_LIMIT;
  if (q['limit'] !== undefined && q['limit'] !== '') {
    const v = String(q['limit']);
    limit = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!(limit >= 1 && limit <= DEFAULT_LIMIT)) return configIssue('', 'E_API_ANALYTICS_LIMIT', `limit must be an integer from 1 to ${DEFAULT_LIMIT}, not ${JSON.stringify(q['limit'])}`);
  }

  let timeDelta: TimeDelta | undefined;
  if (kind === 'bytime') {
    const td = q['time_delta'];
    if (typeof td !== 'string' || !TIME_DELTAS.includes(td as TimeDelta)) {
      return configIssue('', 'E_API_ANALYTICS_TIME_DELTA', `time_delta must be one of ${TIME_DELTAS.join(', ')}${td === undefined ? '' : `, not ${JSON.stringify(td)}`}`);
    }
    timeDelta = td as TimeDelta;
    const n = intervals(s, u, timeDelta).length;
    if (n > MAX_INTERVALS) return configIssue('', 'E_API_ANALYTICS_TIME_DELTA', `${n} intervals of a ${timeDelta} between since and until; at most ${MAX_INTERVALS}: choose a larger time_delta or a shorter span`);
  }
  return { zone, metrics: ms, dimensions: dimensions as Dimension[], filters, since: s, until: u, sort, limit, timeDelta };
}

// ── time intervals ─────────────────────────────────────────────────────────────────────────────────────────────

const FIXED_SEC: Partial<Record<TimeDelta, number>> = { minute: 60, dekaminute: 600, hour: 3600, day: 86_400 };

/** The start (epoch ms, UTC) of the `delta` interval holding `ms`; weeks start on Monday. */
export function intervalStart(ms: number, delta: TimeDelta): number {
  const fixed = FIXED_SEC[delta];
  if (fixed !== undefined) return Math.floor(ms / (fixed * 1000)) * fixed * 1000;
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  switch (delta) {
    case 'week': {
      const day = Date.UTC(y, d.getUTCMonth(), d.getUTCDate());
      return day - ((d.getUTCDay() + 6) % 7) * 86_400_000;
    }
    case 'month':
      return Date.UTC(y, d.getUTCMonth(), 1);
    case 'quarter':
      return Date.UTC(y, Math.floor(d.getUTCMonth() / 3) * 3, 1);
    case 'year':
      return Date.UTC(y, 0, 1);
    case 'minute':
    case 'dekaminute':
    case 'hour':
    case 'day':
      throw new Error(`intervalStart: ${delta} has a fixed width`);
  }
}

function nextStart(start: number, delta: TimeDelta): number {
  const fixed = FIXED_SEC[delta];
  if (fixed !== undefined) return start + fixed * 1000;
  const d = new Date(start);
  switch (delta) {
    case 'week':
      return start + 7 * 86_400_000;
    case 'month':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    case 'quarter':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 3, 1);
    case 'year':
      return Date.UTC(d.getUTCFullYear() + 1, 0, 1);
    case 'minute':
    case 'dekaminute':
    case 'hour':
    case 'day':
      throw new Error(`nextStart: ${delta} has a fixed width`);
  }
}

/** The intervals covering [since, until): aligned starts (the first may begin before since). Stops past MAX_INTERVALS + 1. */
export function intervals(since: number, until: number, delta: TimeDelta): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = intervalStart(since, delta); s < until && out.length <= MAX_INTERVALS; ) {
    const e = nextStart(s, delta);
    out.push([s, e]);
    s = e;
  }
  return out;
}

// ── the query ──────────────────────────────────────────────────────────────────────────────────────────────────

type Acc = RollupFigures;

const emptyAcc = (): Acc => ({ count: 0, bytesIngress: 0, bytesEgress: 0, durN: 0, durSum: 0, sketch: undefined });

function addAcc(a: Acc, b: Acc): void {
  mergeInto(a, b);
}

function metricOf(a: Acc, m: Metric): number {
  switch (m) {
    case 'count':
      return a.count;
    case 'bytesIngress':
      return a.bytesIngress;
    case 'bytesEgress':
      return a.bytesEgress;
    case 'durationAvg':
      return a.durN === 0 ? 0 : a.durSum / a.durN;
    case 'durationMedian':
      return quantile(a, 0.5);
    case 'duration90th':
      return quantile(a, 0.9);
    case 'duration99th':
      return quantile(a, 0.99);
  }
}

function quantile(a: Acc, q: number): number {
  if (a.sketch === undefined || a.sketch.count === 0) return 0;
  return a.sketch.getValueAtQuantile(q);
}

/** Whether a row's dimensions pass the filter. */
export function matches(r: { event: string; app: string; colo: string; ipVersion: number }, f: Filter): boolean {
  if (f.length === 0) return true;
  return f.some((and) =>
    and.every((t) => {
      const num = t.dimension === 'ipVersion';
      const a: string | number = num ? r.ipVersion : dimValue(r, t.dimension);
      const b: string | number = num ? Number(t.value) : t.value;
      switch (t.op) {
        case '==':
          return a === b;
        case '!=':
          return a !== b;
        case '>':
          return a > b;
        case '<':
          return a < b;
        case '>=':
          return a >= b;
        case '<=':
          return a <= b;
      }
    }),
  );
}

function filterSql(f: Filter): { sql: string; args: Array<string | number> } {
  if (f.length === 0) return { sql: '1', args: [] };
  const args: Array<string | number> = [];
  const sql = f
    .map((and) => '(' + and.map((t) => {
      args.push(t.dimension === 'ipVersion' ? Number(t.value) : t.value);
      return `${COLUMN[t.dimension]} ${t.op === '==' ? '=' : t.op} ?`;
    }).join(' AND ') + ')')
    .join(' OR ');
  return { sql: `(${sql})`, args };
}

interface Group {
  dims: string[];
  total: Acc;
  /** Per interval (bytime). */
  slots: Acc[] | undefined;
}

function needSketch(metrics: readonly Metric[]): boolean {
  return metrics.some((m) => m === 'durationMedian' || m === 'duration90th' || m === 'duration99th');
}

/**
 * Runs `q` over `store`: the stored rows of the zone whose bucket starts in [since, until) and pass the filters,
 * plus the rows not written yet, grouped by the dimensions (and by interval for bytime). Rows of `data` are sorted
 * by `sort` (then by the dimension values) and cut to `limit`; `totals`, `min` and `max` cover every group.
 */
export function query(store: AnalyticsStore, q: AnalyticsQuery): AnalyticsResult {
  const sinceSec = Math.ceil(q.since / 1000);
  const untilSec = Math.ceil(q.until / 1000);
  const spans = q.timeDelta === undefined ? undefined : intervals(q.since, q.until, q.timeDelta);
  const starts = spans?.map(([s]) => s / 1000);
  const slotOf = (t: number): number => {
    if (starts === undefined) return 0;
    // The last interval whose start is ≤ t.
    let lo = 0;
    let hi = starts!.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts![mid]! <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const groups = new Map<string, Group>();
  const totals = emptyAcc();
  const groupOf = (dims: string[]): Group => {
    const key = dims.join('\u0000');
    let g = groups.get(key);
    if (g === undefined) {
      g = { dims, total: emptyAcc(), slots: spans?.map(() => emptyAcc()) };
      groups.set(key, g);
    }
    return g;
  };
  const add = (dims: string[], t: number, a: Acc): void => {
    const g = groupOf(dims);
    addAcc(g.total, a);
    if (g.slots !== undefined) addAcc(g.slots[slotOf(t)]!, a);
    addAcc(totals, a);
  };

  const sketches = needSketch(q.metrics);
  const cols = q.dimensions.map((d) => COLUMN[d]);
  const where = filterSql(q.filters);
  // SQLite sums per group and time slot: no slot for a summary, the interval start for fixed widths (they are
  // multiples of the width since the epoch), the bucket start for calendar intervals (mapped to a slot here).
  const fixed = q.timeDelta === undefined ? undefined : FIXED_SEC[q.timeDelta];
  const slotSql = q.timeDelta === undefined ? '0' : fixed !== undefined ? `(t / ${fixed}) * ${fixed}` : 't';
  store.read((db) => {
    const groupBy = ['slot', ...cols].join(', ');
    const sums = db
      .prepare(
        `SELECT ${slotSql} AS slot, ${cols.length > 0 ? `${cols.join(', ')}, ` : ''}SUM(count) AS count, SUM(bytes_ingress) AS bi, SUM(bytes_egress) AS be, SUM(dur_n) AS dn, SUM(dur_sum) AS ds
         FROM analytics WHERE zone_id = ? AND t >= ? AND t < ? AND ${where.sql} GROUP BY ${groupBy}`,
      )
      .all(q.zone, sinceSec, untilSec, ...where.args) as Array<Record<string, number | string>>;
    for (const r of sums) {
      add(cols.map((c) => String(r[c])), Number(r['slot']), {
        count: Number(r['count']),
        bytesIngress: Number(r['bi']),
        bytesEgress: Number(r['be']),
        durN: Number(r['dn']),
        durSum: Number(r['ds']),
        sketch: undefined,
      });
    }
    if (!sketches) return;
    const rows = db
      .prepare(`SELECT t, ${[...cols, 'sketch'].join(', ')} FROM analytics WHERE zone_id = ? AND t >= ? AND t < ? AND sketch IS NOT NULL AND ${where.sql}`)
      .iterate(q.zone, sinceSec, untilSec, ...where.args) as Iterable<Record<string, number | string | Buffer>>;
    // Each stored sketch goes straight into the accumulators' sketches (no sketch object per row).
    for (const r of rows) {
      const bytes = r['sketch'] as Buffer;
      const g = groupOf(cols.map((c) => String(r[c])));
      mergeBytesInto((g.total.sketch ??= newSketch()), bytes);
      if (g.slots !== undefined) mergeBytesInto((g.slots[slotOf(Number(r['t']))]!.sketch ??= newSketch()), bytes);
      mergeBytesInto((totals.sketch ??= newSketch()), bytes);
    }
  });
  for (const r of store.unwritten()) {
    if (r.zone !== q.zone || r.t < sinceSec || r.t >= untilSec || !matches(r, q.filters)) continue;
    add(q.dimensions.map((d) => dimValue(r, d)), r.t, { ...r, sketch: sketches ? r.sketch : undefined });
  }

  // Sort: the requested keys, then the dimension values (so the order is always the same).
  const all = [...groups.values()];
  const cmpDim = (d: Dimension, a: string, b: string): number => (d === 'ipVersion' ? Number(a) - Number(b) : a < b ? -1 : a > b ? 1 : 0);
  all.sort((x, y) => {
    for (const k of q.sort) {
      const di = q.dimensions.indexOf(k.field as Dimension);
      const c = di >= 0 ? cmpDim(k.field as Dimension, x.dims[di]!, y.dims[di]!) : metricOf(x.total, k.field as Metric) - metricOf(y.total, k.field as Metric);
      if (c !== 0) return k.desc ? -c : c;
    }
    for (let i = 0; i < q.dimensions.length; i++) {
      const c = cmpDim(q.dimensions[i]!, x.dims[i]!, y.dims[i]!);
      if (c !== 0) return c;
    }
    return 0;
  });

  const min: Record<string, number> = {};
  const max: Record<string, number> = {};
  const seen = (m: Metric, v: number): void => {
    if (!(m in min) || v < min[m]!) min[m] = v;
    if (!(m in max) || v > max[m]!) max[m] = v;
  };
  for (const g of all) {
    for (const m of q.metrics) {
      if (g.slots === undefined) seen(m, metricOf(g.total, m));
      else for (const s of g.slots) seen(m, metricOf(s, m));
    }
  }
  const data = all.slice(0, q.limit).map((g) => ({
    dimensions: g.dims,
    metrics: g.slots === undefined ? q.metrics.map((m) => metricOf(g.total, m)) : q.metrics.map((m) => g.slots!.map((s) => metricOf(s, m))),
  }));
  const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
  const result: AnalyticsResult = {
    data,
    data_lag: 0,
    max,
    min,
    totals: Object.fromEntries(q.metrics.map((m) => [m, metricOf(totals, m)])),
    rows: data.length,
    query: {
      dimensions: q.dimensions,
      filters: q.filters.map((and) => and.map((t) => `${t.dimension}${t.op}${t.value}`).join(';')).join(','),
      limit: q.limit,
      metrics: q.metrics,
      since: iso(q.since),
      sort: q.sort.map((k) => `${k.desc ? '-' : '+'}${k.field}`),
      until: iso(q.until),
      ...(q.timeDelta === undefined ? {} : { time_delta: q.timeDelta }),
    },
  };
  if (spans !== undefined) result.time_intervals = spans.map(([s, e]) => [iso(s), iso(e)]);
  return result;
}

/** One app's figures of `aggregate/current`. */
export interface CurrentItem {
  appID: string;
  bytesEgress: number;
  bytesIngress: number;
  connections: number;
  durationAvg: number;
}

/**
 * `aggregate/current`: per app, over the current minute and the one before it (written or not): `connections` =
 * `connect` events, bytes and the average duration of the closing events. `apps` limits the apps (each listed app
 * appears, with zeros when it had no traffic); `colo` limits to one colo (node id).
 */
export function current(store: AnalyticsStore, zone: string, nowMs: number, apps: readonly string[], colo: string | undefined): CurrentItem[] {
  const since = (Math.floor(nowMs / 60_000) - 1) * 60_000;
  const terms = (d: Dimension, values: readonly string[]): FilterTerm[][] => values.map((value) => [{ dimension: d, op: '==', value }]);
  const filter: FilterTerm[][] = [];
  for (const a of apps.length === 0 ? [undefined] : apps) {
    const and: FilterTerm[] = [];
    if (a !== undefined) and.push(...terms('appID', [a])[0]!);
    if (colo !== undefined) and.push({ dimension: 'coloName', op: '==', value: colo });
    if (and.length > 0) filter.push(and);
  }
  const r = query(store, { zone, metrics: ['count', 'bytesIngress', 'bytesEgress', 'durationAvg'], dimensions: ['appID', 'event'], filters: filter, since, until: since + 120_000, sort: [], limit: DEFAULT_LIMIT });
  const by = new Map<string, { connections: number; bi: number; be: number; durSum: number; durN: number }>();
  for (const a of apps) by.set(a, { connections: 0, bi: 0, be: 0, durSum: 0, durN: 0 });
  for (const d of r.data) {
    const [app, event] = d.dimensions as [string, string];
    const [count, bi, be, avg] = d.metrics as number[];
    const x = by.get(app) ?? { connections: 0, bi: 0, be: 0, durSum: 0, durN: 0 };
    by.set(app, x);
    if (event === 'connect') {
      x.connections += count!;
      continue;
    }
    x.bi += bi!;
    x.be += be!;
    x.durSum += avg! * count!;
    x.durN += count!;
  }
  return [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([appID, x]) => ({ appID, bytesEgress: x.be, bytesIngress: x.bi, connections: x.connections, durationAvg: x.durN === 0 ? 0 : x.durSum / x.durN }));
}
