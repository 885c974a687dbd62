/**
 * Mermaid `stateDiagram-v2` drawings of XState v5 machines, generated from the definition (`machine.root`), so the
 * pictures in docs/architecture.md cannot drift from the code (test/unit/machines/diagram.test.ts checks them;
 * `npm run docs:machines` rewrites them).
 *
 * What is drawn, and how:
 * - each state, by its key; nested states get an id made of their path (`established_c2s_open`, since Mermaid's
 *   ids are global and two regions may both have an `open`) and their key as the label;
 * - `[*] --> x` for the initial state of the machine and of each compound state; `x --> [*]` for final states;
 * - a parallel state as a composite state whose regions are separated by `--`;
 * - a transition as an arrow labelled `EVENT [guard] / action, action`; a delayed one as `after <delay>`; a
 *   re-entering self-transition (`reenter: true`: exit and entry actions run again) as a loop marked `(re-enter)`,
 *   a targetless one (actions only, no exit) as a loop marked `(stays)`;
 * - entry and exit actions as state descriptions (`x : entry / classify`);
 * - the root's own `on` (events handled in every state) as a note on each target, `from any state:` with one line
 *   per event. Drawing them as arrows from every non-final state would add (states × events) arrows into one
 *   target (21 for tcpConnection) and bury the lifecycle; the note says the same in three lines.
 * The output is deterministic: states, events and actions in definition order, nothing else.
 */
import type { AnyStateMachine } from 'xstate';
import type { GraphState, GraphTransition, MachineGraph } from '../model/engine-view.ts';

/** The parts of an XState v5 StateNode read here (public fields and getters of `machine.root`). */
interface Node {
  readonly key: string;
  readonly path: readonly string[];
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  readonly parent?: Node;
  readonly states: Readonly<Record<string, Node>>;
  readonly entry: readonly unknown[];
  readonly exit: readonly unknown[];
  readonly initial: { readonly target: readonly Node[] };
  readonly after: ReadonlyArray<{ readonly eventType: string; readonly delay: string | number }>;
  readonly transitions: ReadonlyMap<string, readonly Transition[]>;
}

interface Transition {
  readonly target?: readonly Node[] | undefined;
  readonly guard?: unknown;
  readonly actions: readonly unknown[];
  readonly reenter: boolean;
}

/** Mermaid id of a state: its key at the top level, its path joined by `_` below (ids are global in Mermaid). */
function idOf(node: Node): string {
  return node.path.map((k) => k.replace(/[^A-Za-z0-9]/g, '_')).join('_');
}

/** Printable name of an action; null for the raise/cancel pairs XState adds for `after` (drawn as arrows). */
function actionName(a: unknown): string | null {
  if (typeof a === 'string') return a;
  if (typeof a === 'object' && a !== null && typeof (a as { type?: unknown }).type === 'string') return (a as { type: string }).type;
  const type = typeof a === 'function' ? (a as { type?: unknown }).type : undefined;
  if (type === 'xstate.cancel') return null;
  if (type === 'xstate.raise') {
    const ev = (a as { event?: unknown }).event;
    const t = typeof ev === 'object' && ev !== null ? String((ev as { type?: unknown }).type) : '';
    return t.startsWith('xstate.after.') ? null : 'raise';
  }
  if (typeof type === 'string') return type.replace(/^xstate\./, '');
  return 'inline';
}

function guardName(g: unknown): string {
  if (typeof g === 'string') return g;
  if (typeof g === 'object' && g !== null && typeof (g as { type?: unknown }).type === 'string') return (g as { type: string }).type;
  if (typeof g === 'function') return g.name || 'inline';
  return String(g);
}

function actionList(actions: readonly unknown[]): string {
  return actions
    .map(actionName)
    .filter((n): n is string => n !== null)
    .join(', ');
}

/** `EVENT [guard] (mark) / a, b`, `after connectTimeout / a`. */
function label(eventType: string, t: Transition, delays: ReadonlyMap<string, string | number>, mark = ''): string {
  const d = delays.get(eventType);
  let s = d === undefined ? eventType : `after ${d}`;
  if (t.guard !== undefined) s += ` [${guardName(t.guard)}]`;
  if (mark) s += ` (${mark})`;
  const acts = actionList(t.actions);
  return acts ? `${s} / ${acts}` : s;
}

function isAncestorOrSelf(a: Node, b: Node): boolean {
  for (let n: Node | undefined = b; n; n = n.parent) if (n === a) return true;
  return false;
}

/** The innermost state whose block can hold an arrow between `a` and `b` (their parents' common ancestor). */
function blockFor(a: Node, b: Node): Node {
  for (let n: Node | undefined = a.parent ?? a; n; n = n.parent) if (isAncestorOrSelf(n, b.parent ?? b)) return n;
  throw new Error(`diagram: ${idOf(a)} and ${idOf(b)} have no common ancestor`);
}

/**
 * Draws `machine` as a Mermaid `stateDiagram-v2` (no fences), one statement per line, ending with a newline.
 * Deterministic for a given definition.
 */
export function toMermaid(machine: AnyStateMachine): string {
  const root = machine.root as unknown as Node;
  // Arrows are written in the block of the innermost composite state holding both ends, after its child states,
  // so that Mermaid never meets an id before the composite state that declares it.
  const arrows = new Map<Node, string[]>();
  const rootNotes = new Map<Node, string[]>();
  const delaysOf = (n: Node): Map<string, string | number> => new Map(n.after.map((a) => [a.eventType, a.delay]));

  const collect = (node: Node): void => {
    const delays = delaysOf(node);
    for (const [eventType, ts] of node.transitions) {
      for (const t of ts) {
        const targets = t.target ?? [];
        const text = label(eventType, t, delays, targets.length === 0 ? 'stays' : '');
        if (node === root) {
          // Events handled in every state: a note on each target (targetless ones: on the initial state).
          for (const target of targets.length > 0 ? targets : root.initial.target) {
            const lines = rootNotes.get(target) ?? [];
            lines.push(text);
            rootNotes.set(target, lines);
          }
          continue;
        }
        if (targets.length === 0) {
          push(node.parent ?? root, `${idOf(node)} --> ${idOf(node)} : ${text}`);
          continue;
        }
        for (const target of targets) {
          const shown = target === node && t.reenter ? label(eventType, t, delays, 're-enter') : text;
          push(blockFor(node, target), `${idOf(node)} --> ${idOf(target)} : ${shown}`);
        }
      }
    }
    for (const child of Object.values(node.states)) collect(child);
  };
  const push = (block: Node, line: string): void => {
    const list = arrows.get(block) ?? [];
    list.push(line);
    arrows.set(block, list);
  };
  collect(root);

  const out: string[] = ['stateDiagram-v2'];
  const block = (node: Node, depth: number): void => {
    const pad = '  '.repeat(depth);
    if (node.type === 'compound') for (const t of node.initial.target) out.push(`${pad}[*] --> ${idOf(t)}`);
    const children = Object.values(node.states);
    children.forEach((child, i) => {
      if (node.type === 'parallel' && i > 0) out.push(`${pad}--`);
      const id = idOf(child);
      if (id !== child.key) out.push(`${pad}state "${child.key}" as ${id}`);
      const entry = actionList(child.entry);
      const exit = actionList(child.exit);
      if (entry) out.push(`${pad}${id} : entry / ${entry}`);
      if (exit) out.push(`${pad}${id} : exit / ${exit}`);
      if (Object.keys(child.states).length > 0) {
        out.push(`${pad}state ${id} {`);
        block(child, depth + 1);
        out.push(`${pad}}`);
      }
      if (child.type === 'final') out.push(`${pad}${id} --> [*]`);
    });
    for (const line of arrows.get(node) ?? []) out.push(`${pad}${line}`);
  };
  block(root, 1);
  for (const [target, lines] of rootNotes) {
    out.push(`  note right of ${idOf(target)}`, '    from any state:', ...lines.map((l) => `    ${l}`), '  end note');
  }
  return out.join('\n') + '\n';
}

/** Dotted id of a state for the JSON graph (`established.c2s.open`). */
function graphId(node: Node): string {
  return node.path.join('.');
}

/**
 * The same definition as plain data (src/model/engine-view.ts), for the dashboard's live view: every state in
 * definition order, every transition with its event, guard and actions, and the root's transitions separately
 * (handled in any state). Deterministic for a given definition.
 */
export function toGraph(machine: AnyStateMachine, proto: 'tcp' | 'udp'): MachineGraph {
  const root = machine.root as unknown as Node;
  const states: GraphState[] = [];
  const transitions: GraphTransition[] = [];
  const anyState: GraphTransition[] = [];
  const visit = (node: Node): void => {
    const delays = new Map(node.after.map((a) => [a.eventType, a.delay] as const));
    for (const [eventType, ts] of node.transitions) {
      const d = delays.get(eventType);
      const event = d === undefined ? eventType : `after ${d}`;
      for (const t of ts) {
        const guard = t.guard === undefined ? '' : guardName(t.guard);
        const actions = t.actions.map(actionName).filter((n): n is string => n !== null);
        const targets = t.target ?? [];
        const list = node === root ? anyState : transitions;
        const from = node === root ? '' : graphId(node);
        if (targets.length === 0) list.push({ from, to: from, event, guard, actions, mark: 'stays' });
        for (const target of targets) list.push({ from, to: graphId(target), event, guard, actions, mark: target === node && t.reenter ? 're-enter' : '' });
      }
    }
    const initial = node.type === 'compound' ? new Set(node.initial.target) : new Set<Node>();
    for (const child of Object.values(node.states)) {
      states.push({
        id: graphId(child),
        key: child.key,
        parent: node === root ? '' : graphId(node),
        type: child.type,
        initial: initial.has(child),
        entry: child.entry.map(actionName).filter((n): n is string => n !== null),
        exit: child.exit.map(actionName).filter((n): n is string => n !== null),
      });
      visit(child);
    }
  };
  visit(root);
  return { id: machine.id, proto, states, transitions, anyState };
}
