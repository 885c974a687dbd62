/**
 * The engine as the API shows it live (src/model/engine-view.ts): the machines' graphs, drawn from their XState
 * definitions (the same source as `refract machines`), and how many open connections and flows are in each state.
 */
import { toGraph } from '../machines/diagram.ts';
import { MACHINE_PROTO, MACHINES } from '../machines/registry.ts';
import type { EngineStates, MachineGraph } from '../model/engine-view.ts';
import type { EdgeView, OpenInstance } from './edge-view.ts';

let graphs: readonly MachineGraph[] | undefined;

/** Every machine as a graph, in `refract machines` order (built once). */
export function machineGraphs(): readonly MachineGraph[] {
  graphs ??= Object.entries(MACHINES).map(([id, m]) => toGraph(m, MACHINE_PROTO[id] ?? 'tcp'));
  return graphs;
}

/**
 * The state ids an instance is in, from its state value's JSON (`MachineHost.stateOf`): `"connecting"` →
 * [connecting]; `{"established":{"c2s":"open","s2c":"ended"}}` → [established, established.c2s,
 * established.c2s.open, established.s2c, established.s2c.ended].
 */
export function stateIds(stateJson: string): string[] {
  const out: string[] = [];
  const walk = (v: unknown, prefix: string): void => {
    if (typeof v === 'string') {
      out.push(prefix + v);
      return;
    }
    if (typeof v !== 'object' || v === null) return;
    for (const [k, sub] of Object.entries(v as Record<string, unknown>)) {
      out.push(prefix + k);
      walk(sub, `${prefix}${k}.`);
    }
  };
  try {
    walk(JSON.parse(stateJson) as unknown, '');
  } catch {
    out.push(stateJson);
  }
  return out;
}

function count(list: ReadonlyArray<OpenInstance>, keep: (app: string | undefined) => boolean) {
  const states: Record<string, number> = {};
  let active = 0;
  for (const { app, state, n = 1 } of list) {
    if (!keep(app)) continue;
    active += n;
    for (const id of stateIds(state)) states[id] = (states[id] ?? 0) + n;
  }
  return { active, states };
}

/** Open connections and flows per state now; `keep` limits them to some apps (a token limited to zones). */
export function engineStates(edge: EdgeView, keep: (app: string | undefined) => boolean = () => true): EngineStates {
  return { tcp: count(edge.tcp.appStates(), keep), udp: count(edge.udp.appStates(), keep) };
}

/**
 * Open instances per app id (`''`: not routed to an app) and per top-level state (`connecting`, `established`, …),
 * from one walk of an engine's `appStates()`: what the Prometheus gauges read at scrape time.
 */
export function openTally(list: ReadonlyArray<OpenInstance>): {
  readonly open: number;
  readonly byApp: ReadonlyMap<string, number>;
  readonly byState: ReadonlyMap<string, number>;
} {
  const byApp = new Map<string, number>();
  const byState = new Map<string, number>();
  let open = 0;
  for (const { app, state, n = 1 } of list) {
    const id = app ?? '';
    open += n;
    byApp.set(id, (byApp.get(id) ?? 0) + n);
    const top = stateIds(state)[0] ?? state;
    byState.set(top, (byState.get(top) ?? 0) + n);
  }
  return { open, byApp, byState };
}
