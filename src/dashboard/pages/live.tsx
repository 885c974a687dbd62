/**
 * Live: each engine machine drawn from its XState definition (GET /refract/machines, the same source as `refract
 * machines`) as an SVG graph, with the number of open connections or flows in each state right now (GET
 * /refract/engine/states, polled once a second while the page is open).
 */
import { useEffect, useState } from 'preact/hooks';
import type { EngineStates, GraphState, GraphTransition, MachineGraph } from '../../model/engine-view.ts';
import { call, ENDPOINTS } from '../api.ts';

const BOX_W = 200;
const BOX_H = 46;
const GAP_X = 40;
const GAP_Y = 46;

interface Placed {
  readonly state: GraphState;
  readonly x: number;
  readonly y: number;
  readonly h: number;
}

/**
 * Layers the top-level states: a state's layer is its distance from the initial state over transitions (final
 * states go last), so the lifecycle reads from top to bottom.
 */
function layout(g: MachineGraph): { placed: Placed[]; width: number; height: number } {
  const top = g.states.filter((s) => s.parent === '');
  const layer = new Map<string, number>();
  const start = top.find((s) => s.initial) ?? top[0];
  if (start) layer.set(start.id, 0);
  const queue = start ? [start.id] : [];
  const topOf = (id: string) => id.split('.')[0] ?? id;
  while (queue.length > 0) {
    const id = queue.shift()!;
    for (const t of g.transitions) {
      if (topOf(t.from) !== id) continue;
      const to = topOf(t.to);
      if (!layer.has(to)) {
        layer.set(to, (layer.get(id) ?? 0) + 1);
        queue.push(to);
      }
    }
  }
  const finals = top.filter((s) => s.type === 'final');
  const last = Math.max(0, ...[...layer.entries()].filter(([id]) => !finals.some((f) => f.id === id)).map(([, l]) => l)) + 1;
  for (const s of top) if (s.type === 'final' || !layer.has(s.id)) layer.set(s.id, s.type === 'final' ? last : last - 1);
  const rows: GraphState[][] = [];
  for (const s of top) (rows[layer.get(s.id) ?? 0] ??= []).push(s);
  const heightOf = (s: GraphState) => {
    const regions = g.states.filter((c) => c.parent === s.id);
    return regions.length === 0 ? BOX_H : BOX_H + 22 * regions.length;
  };
  const widest = Math.max(1, ...rows.map((r) => r?.length ?? 0));
  const width = widest * BOX_W + (widest - 1) * GAP_X + 40;
  const placed: Placed[] = [];
  let y = 10;
  for (const row of rows) {
    if (!row) continue;
    const rowW = row.length * BOX_W + (row.length - 1) * GAP_X;
    let x = (width - rowW) / 2;
    const h = Math.max(...row.map(heightOf));
    for (const s of row) {
      placed.push({ state: s, x, y, h: heightOf(s) });
      x += BOX_W + GAP_X;
    }
    y += h + GAP_Y;
  }
  return { placed, width, height: y - GAP_Y + 14 };
}

function Arrow({ from, to, t, final }: { from: Placed; to: Placed; t: GraphTransition; final: boolean }) {
  const title = `${t.from} → ${t.to}: ${t.event}${t.guard ? ` [${t.guard}]` : ''}${t.actions.length ? ` / ${t.actions.join(', ')}` : ''}`;
  if (from === to) {
    const x = from.x + BOX_W;
    const y = from.y + from.h / 2;
    return (
      <path class="edge loop" d={`M ${x} ${y - 8} C ${x + 26} ${y - 22}, ${x + 26} ${y + 22}, ${x} ${y + 8}`} marker-end="url(#arrow)">
        <title>{title}</title>
      </path>
    );
  }
  const sameRow = from.y === to.y;
  const [x1, y1, x2, y2] = sameRow
    ? [from.x < to.x ? from.x + BOX_W : from.x, from.y + from.h / 2, from.x < to.x ? to.x : to.x + BOX_W, to.y + to.h / 2]
    : to.y > from.y
      ? [from.x + BOX_W / 2, from.y + from.h, to.x + BOX_W / 2, to.y]
      : [from.x + BOX_W / 2, from.y, to.x + BOX_W / 2, to.y + to.h];
  return (
    <line class={`edge${final ? ' to-final' : ''}`} x1={x1} y1={y1} x2={x2} y2={y2} marker-end="url(#arrow)">
      <title>{title}</title>
    </line>
  );
}

function Diagram({ g, counts }: { g: MachineGraph; counts: Readonly<Record<string, number>> }) {
  const { placed, width, height } = layout(g);
  const at = new Map(placed.map((p) => [p.state.id, p] as const));
  const topOf = (id: string) => id.split('.')[0] ?? id;
  const seen = new Set<string>();
  const arrows = g.transitions.filter((t) => {
    // Transitions between nested states of one top-level state (c2s open → ended) are told by its region lines.
    if (t.from !== t.to && topOf(t.from) === topOf(t.to)) return false;
    const key = `${topOf(t.from)}>${topOf(t.to)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return (
    <svg class="diagram" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${g.id} state diagram`} data-machine={g.id}>
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
        </marker>
      </defs>
      {arrows.map((t) => {
        const from = at.get(topOf(t.from));
        const to = at.get(topOf(t.to));
        return from && to ? <Arrow from={from} to={to} t={t} final={to.state.type === 'final'} /> : null;
      })}
      {placed.map((p) => {
        const n = counts[p.state.id] ?? 0;
        const regions = g.states.filter((c) => c.parent === p.state.id);
        return (
          <g class={`state${n > 0 ? ' busy' : ''}${p.state.type === 'final' ? ' final' : ''}`} data-state={p.state.id} data-count={n}>
            <rect x={p.x} y={p.y} width={BOX_W} height={p.h} rx="10" />
            <text x={p.x + 12} y={p.y + 28} class="label">{p.state.key}</text>
            <text x={p.x + BOX_W - 12} y={p.y + 28} class="count" text-anchor="end">{n}</text>
            {regions.map((r, i) => {
              const leaves = g.states.filter((c) => c.parent === r.id);
              const text = leaves.map((l) => `${l.key} ${counts[l.id] ?? 0}`).join(' · ');
              return (
                <text x={p.x + 12} y={p.y + BOX_H + 10 + i * 22} class="region">{`${r.key}: ${text}`}</text>
              );
            })}
          </g>
        );
      })}
    </svg>
  );
}

export function LivePage() {
  const [graphs, setGraphs] = useState<MachineGraph[] | undefined>();
  const [states, setStates] = useState<EngineStates | undefined>();
  const [error, setError] = useState('');
  const [updated, setUpdated] = useState('');
  useEffect(() => {
    call<MachineGraph[]>(ENDPOINTS.machines).then(setGraphs, (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
    let stop = false;
    const poll = () =>
      call<EngineStates>(ENDPOINTS.engineStates).then(
        (s) => {
          if (stop) return;
          setStates(s);
          setError('');
          setUpdated(new Date().toLocaleTimeString());
        },
        (e: unknown) => !stop && setError(e instanceof Error ? e.message : String(e)),
      );
    void poll();
    const timer = setInterval(() => void poll(), 1000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, []);
  return (
    <section aria-labelledby="live-title">
      <div class="page-head">
        <h2 id="live-title">Live engine</h2>
        <span class="muted" aria-live="off">{updated && `updated ${updated}`}</span>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {graphs === undefined && !error && <p class="muted">Loading…</p>}
      <div class="machines">
        {graphs?.map((g) => {
          const engine = states?.[g.proto];
          const counts = engine?.states ?? {};
          return (
            <article class="card machine" data-machine-card={g.id}>
              <h3>
                {g.id} <span class="muted">({g.proto === 'tcp' ? 'TCP connections' : 'UDP flows'}: <span class="active-count">{engine?.active ?? 0}</span> open)</span>
              </h3>
              <Diagram g={g} counts={counts} />
              <details>
                <summary>Counts per state</summary>
                <table class="counts">
                  <tbody>
                    {g.states.map((s) => (
                      <tr data-state-row={s.id}>
                        <td>{s.id}</td>
                        <td class="num">{counts[s.id] ?? 0}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                {g.anyState.length > 0 && <p class="muted small">In any state: {g.anyState.map((t) => `${t.event} → ${t.to}`).join(', ')}</p>}
              </details>
            </article>
          );
        })}
      </div>
    </section>
  );
}
