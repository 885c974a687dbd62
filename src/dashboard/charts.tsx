/**
 * Analytics charts (uPlot), kept apart from the rest of the dashboard: they read Spectrum's analytics endpoint
 * `GET /zones/{zone}/spectrum/analytics/events/bytime` in Cloudflare's documented shape (`metrics`, `dimensions`,
 * `time_delta` repeated as query parameters; the answer `{data: [{dimensions, metrics: number[][]}],
 * time_intervals: [[start, end]], …}`). A node without the analytics store answers 404: the page then says
 * "analytics not available" and draws nothing.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { ANALYTICS_ENDPOINTS, ApiFailure, savedToken, path } from './api.ts';

/** The bytime result, as the SDK types it. */
export interface Bytime {
  readonly data: ReadonlyArray<{ readonly dimensions?: readonly string[]; readonly metrics?: ReadonlyArray<readonly number[]> | readonly number[] }>;
  readonly time_intervals?: ReadonlyArray<readonly string[]>;
}

/** One chart: a metric, a dimension to split the series by, and an optional filter. */
interface ChartSpec {
  readonly id: string;
  readonly title: string;
  readonly metrics: readonly string[];
  readonly dimension: string;
  readonly filters?: string;
}

const CHARTS: readonly ChartSpec[] = [
  { id: 'connections', title: 'Connections per app', metrics: ['count'], dimension: 'appID', filters: 'event==connect' },
  { id: 'bytes', title: 'Bytes per app (client → origin)', metrics: ['bytesIngress'], dimension: 'appID' },
  { id: 'statuses', title: 'Closing events by kind', metrics: ['count'], dimension: 'event', filters: 'event!=connect' },
];

export type Fetched = { kind: 'ok'; result: Bytime } | { kind: 'unavailable' } | { kind: 'error'; message: string };

/** GET …/events/bytime for the last hour per minute. 404 → unavailable. */
export async function fetchBytime(zone: string, spec: ChartSpec, nowMs: number): Promise<Fetched> {
  const q = new URLSearchParams();
  for (const m of spec.metrics) q.append('metrics', m);
  q.append('dimensions', spec.dimension);
  if (spec.filters) q.append('filters', spec.filters);
  q.append('since', new Date(nowMs - 3_600_000).toISOString());
  q.append('until', new Date(nowMs).toISOString());
  q.append('time_delta', 'minute');
  const res = await fetch(`${path(ANALYTICS_ENDPOINTS.bytime, { zone })}?${q.toString()}`, { headers: { authorization: `Bearer ${savedToken() ?? ''}` } });
  if (res.status === 404) return { kind: 'unavailable' };
  const json = (await res.json().catch(() => ({}))) as { success?: boolean; result?: Bytime; errors?: Array<{ code: number; message: string }> };
  if (!res.ok || json.success !== true || json.result === undefined) return { kind: 'error', message: new ApiFailure(res.status, json.errors ?? []).message };
  return { kind: 'ok', result: json.result };
}

/** uPlot's columns: x = interval starts (seconds), one series per data row (its first metric). */
export function toColumns(r: Bytime): { x: number[]; series: Array<{ label: string; values: number[] }> } {
  const x = (r.time_intervals ?? []).map((iv) => Date.parse(iv[0] ?? '') / 1000);
  const series = r.data.map((row) => {
    const m = row.metrics?.[0];
    const values = Array.isArray(m) ? (m as number[]) : typeof m === 'number' ? [m] : [];
    return { label: (row.dimensions ?? []).join(' ') || 'all', values: x.map((_, i) => values[i] ?? 0) };
  });
  return { x, series };
}

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04'];

function Chart({ zone, spec }: { zone: string; spec: ChartSpec }) {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<Fetched | undefined>();
  useEffect(() => {
    let plot: uPlot | undefined;
    let stop = false;
    fetchBytime(zone, spec, Date.now()).then(
      (f) => {
        if (stop) return;
        setState(f);
        if (f.kind !== 'ok' || !box.current) return;
        const { x, series } = toColumns(f.result);
        const width = Math.max(280, box.current.clientWidth);
        plot = new uPlot(
          {
            width,
            height: 220,
            series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length] ?? '#2563eb', width: 2 }))],
            axes: [{}, { size: 60 }],
          },
          [x, ...series.map((s) => s.values)],
          box.current,
        );
      },
      (e: unknown) => !stop && setState({ kind: 'error', message: e instanceof Error ? e.message : String(e) }),
    );
    return () => {
      stop = true;
      plot?.destroy();
    };
  }, [zone, spec]);
  return (
    <article class="card chart" data-chart={spec.id} data-chart-state={state?.kind ?? 'loading'}>
      <h3>{spec.title}</h3>
      {state?.kind === 'unavailable' && <p class="muted">Analytics not available on this node.</p>}
      {state?.kind === 'error' && <p class="error">{state.message}</p>}
      <div ref={box} class="plot" />
    </article>
  );
}

export function AnalyticsPage({ zone }: { zone: string }) {
  return (
    <section aria-labelledby="analytics-title">
      <div class="page-head">
        <h2 id="analytics-title">Analytics</h2>
        <span class="muted">last hour, per minute</span>
      </div>
      <div class="charts">
        {CHARTS.map((c) => (
          <Chart zone={zone} spec={c} key={`${zone}-${c.id}`} />
        ))}
      </div>
    </section>
  );
}
