/**
 * The analytics charts' data, without the browser (so unit tests run it against the real API): which bytime queries
 * the charts send (`CHARTS`, `bytimeQuery`) and how an answer becomes uPlot's columns (`toColumns`).
 */
/** The bytime result, as the SDK types it. */
export interface Bytime {
  readonly data: ReadonlyArray<{ readonly dimensions?: readonly string[]; readonly metrics?: ReadonlyArray<readonly number[]> | readonly number[] }>;
  readonly time_intervals?: ReadonlyArray<readonly string[]>;
}

/** One chart: the metrics, a dimension to split the series by, and an optional filter. */
export interface ChartSpec {
  readonly id: string;
  readonly title: string;
  readonly metrics: readonly string[];
  readonly dimension: 'appID' | 'event';
  readonly filters?: string;
}

/** Short names of the metrics in series labels (only when a chart plots more than one). */
const METRIC_LABEL: Record<string, string> = { bytesIngress: 'in', bytesEgress: 'out', count: 'count' };

export const CHARTS: readonly ChartSpec[] = [
  { id: 'connections', title: 'Connections per app', metrics: ['count'], dimension: 'appID', filters: 'event==connect' },
  { id: 'bytes', title: 'Bytes per app (in: from clients, out: from origins)', metrics: ['bytesIngress', 'bytesEgress'], dimension: 'appID' },
  { id: 'statuses', title: 'Closing events by kind', metrics: ['count'], dimension: 'event', filters: 'event!=connect' },
];

/** The span the charts cover (per minute), and how often they ask again, ms. */
const SPAN_MS = 3_600_000;
export const REFRESH_MS = 15_000;

/** The query string of a chart's bytime request over [nowMs − 1 h, nowMs), per minute. */
export function bytimeQuery(spec: ChartSpec, nowMs: number): string {
  const q = new URLSearchParams();
  for (const m of spec.metrics) q.append('metrics', m);
  q.append('dimensions', spec.dimension);
  if (spec.filters) q.append('filters', spec.filters);
  q.append('since', new Date(nowMs - SPAN_MS).toISOString());
  q.append('until', new Date(nowMs).toISOString());
  q.append('time_delta', 'minute');
  return q.toString();
}

/**
 * uPlot's columns: x = interval starts (epoch seconds); one series per data row and metric, labelled by the row's
 * dimension value (an app id through `name`, so apps show by DNS name) and, when the chart has several metrics,
 * the metric.
 */
export function toColumns(r: Bytime, metrics: readonly string[], name: (dim: string) => string = (d) => d): { x: number[]; series: Array<{ label: string; values: number[] }> } {
  const x = (r.time_intervals ?? []).map((iv) => Date.parse(iv[0] ?? '') / 1000);
  const series: Array<{ label: string; values: number[] }> = [];
  for (const row of r.data) {
    const dim = (row.dimensions ?? []).map(name).join(' ') || 'all';
    metrics.forEach((m, i) => {
      const col = row.metrics?.[i];
      const values = Array.isArray(col) ? (col as number[]) : typeof col === 'number' ? [col] : [];
      series.push({ label: metrics.length > 1 ? `${dim} ${METRIC_LABEL[m] ?? m}` : dim, values: x.map((_, k) => values[k] ?? 0) });
    });
  }
  return { x, series };
}
