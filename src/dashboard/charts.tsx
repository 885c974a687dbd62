/**
 * Analytics charts (uPlot), kept apart from the rest of the dashboard: they read Spectrum's analytics endpoint
 * `GET /zones/{zone}/spectrum/analytics/events/bytime` (src/api/analytics-query.ts) in Cloudflare's documented
 * shape (`metrics`, `dimensions`, `filters`, `since`, `until`, `time_delta` as query parameters; the answer
 * `{data: [{dimensions, metrics: number[][]}], time_intervals: [[start, end]], …}`: per data row, one array per
 * metric with one value per interval). A node without the analytics store answers 404 (E_API_ANALYTICS_OFF): the
 * page then says "analytics not available" and draws nothing.
 *
 * Each chart card carries `data-chart-state` (loading, ok, empty, unavailable, error), `data-points` (how many
 * plotted values are not zero) and `data-total` (their sum), so a test can tell a chart that got data from one that
 * did not.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { ANALYTICS_ENDPOINTS, ApiFailure, callAll, ENDPOINTS, savedToken, path } from './api.ts';
import { bytimeQuery, CHARTS, REFRESH_MS, toColumns, type Bytime, type ChartSpec } from './analytics-data.ts';

export type Fetched = { kind: 'ok'; result: Bytime } | { kind: 'unavailable' } | { kind: 'error'; message: string };

/** GET …/events/bytime for the last hour per minute. 404 → unavailable. */
export async function fetchBytime(zone: string, spec: ChartSpec, nowMs: number): Promise<Fetched> {
  const res = await fetch(`${path(ANALYTICS_ENDPOINTS.bytime, { zone })}?${bytimeQuery(spec, nowMs)}`, { headers: { authorization: `Bearer ${savedToken() ?? ''}` } });
  if (res.status === 404) return { kind: 'unavailable' };
  const json = (await res.json().catch(() => ({}))) as { success?: boolean; result?: Bytime; errors?: Array<{ code: number; message: string }> };
  if (!res.ok || json.success !== true || json.result === undefined) return { kind: 'error', message: new ApiFailure(res.status, json.errors ?? []).message };
  return { kind: 'ok', result: json.result };
}

/** 1500 → 1.5k, 2000000 → 2M (the y axis' labels). */
function compact(v: number): string {
  const a = Math.abs(v);
  const [d, unit] = a >= 1e9 ? [1e9, 'G'] : a >= 1e6 ? [1e6, 'M'] : a >= 1e3 ? [1e3, 'k'] : [1, ''];
  return `${Number((v / d).toFixed(1))}${unit}`;
}

export const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04'];

function Chart({ zone, spec, names }: { zone: string; spec: ChartSpec; names: ReadonlyMap<string, string> }) {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<Fetched | undefined>();
  const [points, setPoints] = useState({ n: 0, total: 0 });
  useEffect(() => {
    let plot: uPlot | undefined;
    let stop = false;
    const load = (): void => {
      fetchBytime(zone, spec, Date.now()).then(
        (f) => {
          if (stop) return;
          plot?.destroy();
          plot = undefined;
          setState(f);
          if (f.kind !== 'ok' || !box.current) return;
          const name = spec.dimension === 'appID' ? (d: string) => names.get(d) ?? d : (d: string) => d;
          const { x, series } = toColumns(f.result, spec.metrics, name);
          const values = series.flatMap((s) => s.values);
          setPoints({ n: values.filter((v) => v !== 0).length, total: values.reduce((a, b) => a + b, 0) });
          if (series.length === 0) return;
          plot = new uPlot(
            {
              width: Math.max(240, box.current.clientWidth),
              height: 220,
              legend: { live: false },
              // One colour per data row (an app, an event); a chart's second metric (bytes out) is dashed.
              series: [
                {},
                ...series.map((s, i) => ({
                  label: s.label,
                  stroke: COLORS[Math.floor(i / spec.metrics.length) % COLORS.length] ?? '#2563eb',
                  width: 2,
                  dash: i % spec.metrics.length === 0 ? [] : [6, 4],
                  points: { show: true, size: 4 },
                })),
              ],
              axes: [{}, { size: 60, values: (_u: uPlot, ticks: number[]) => ticks.map(compact) }],
            },
            [x, ...series.map((s) => s.values)],
            box.current,
          );
        },
        (e: unknown) => !stop && setState({ kind: 'error', message: e instanceof Error ? e.message : String(e) }),
      );
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    // The chart follows its box's width (a phone turned, a window resized).
    const resize = new ResizeObserver(() => {
      if (plot && box.current) plot.setSize({ width: Math.max(240, box.current.clientWidth), height: 220 });
    });
    if (box.current) resize.observe(box.current);
    return () => {
      stop = true;
      clearInterval(timer);
      resize.disconnect();
      plot?.destroy();
    };
  }, [zone, spec, names]);
  const kind = state === undefined ? 'loading' : state.kind === 'ok' && state.result.data.length === 0 ? 'empty' : state.kind;
  return (
    <article class="card chart" data-chart={spec.id} data-chart-state={kind} data-points={points.n} data-total={points.total}>
      <h3>{spec.title}</h3>
      {kind === 'unavailable' && <p class="muted">Analytics not available on this node.</p>}
      {kind === 'empty' && <p class="muted">No traffic in the last hour.</p>}
      {state?.kind === 'error' && <p class="error">{state.message}</p>}
      <div ref={box} class="plot" />
    </article>
  );
}

export function AnalyticsPage({ zone }: { zone: string }) {
  // App ids → DNS names for the series labels (an app that is gone keeps its id).
  const [names, setNames] = useState<ReadonlyMap<string, string> | undefined>();
  useEffect(() => {
    let stop = false;
    callAll<{ id: string; dns?: { name?: string } }>(ENDPOINTS.apps, { zone }).then(
      (apps) => !stop && setNames(new Map(apps.map((a) => [a.id, a.dns?.name ?? a.id]))),
      () => !stop && setNames(new Map()),
    );
    return () => {
      stop = true;
    };
  }, [zone]);
  return (
    <section aria-labelledby="analytics-title">
      <div class="page-head">
        <h2 id="analytics-title">Analytics</h2>
        <span class="muted">last hour, per minute; refreshed every 15 s</span>
      </div>
      <div class="charts">
        {names !== undefined && CHARTS.map((c) => <Chart zone={zone} spec={c} names={names} key={`${zone}-${c.id}`} />)}
      </div>
    </section>
  );
}
