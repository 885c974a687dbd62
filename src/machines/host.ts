/**
 * How Refract runs its XState machines: a memoised executor over XState's own pure `transition()`.
 *
 * Why not an actor per connection: a root XState actor costs ~40–50 µs per lifecycle and ~4 KB of heap (see
 * docs/architecture.md, "Machine hosting"), and `transition()` alone is slower still (~60 µs per event: it builds
 * an inert actor scope per call). The executor asks XState once per (state value, event type) and remembers the
 * answer: each later event is a Map lookup plus the actions.
 *
 * That is exact only if XState's answer depends on nothing but (state value, event type). So the constructor walks
 * the machine definition (`machine.root`: every state node's `on`, `after`, `always`, `entry`, `exit`, `invoke`,
 * initial actions, the root's `on`) and throws a plain `Error` (a programming bug) naming the machine id, the state
 * path and each offending feature, for a machine that uses any of:
 * - `context` (other than none or `{}`), `assign` (`transition()` applies it and returns no action, so a memoised
 *   step would silently keep the first context);
 * - guards (a guard may read context or event data; the memo would keep the first answer);
 * - `invoke`, `spawnChild`, `sendTo` / `sendParent` / `forwardTo`, `enqueueActions`, `emit`, `log`, `stopChild`,
 *   inline action functions, parameterized actions (the executor has no children, no emitter, and calls named
 *   implementations with (record, event) only);
 * - `raise` without a delay, or with a delay but a custom event (time goes through `after` only);
 * - eventless `always` transitions, history states;
 * - a named action with no implementation in `impl`, or whose setup implementation is one of XState's built-in
 *   actions (XState would run the built-in internally and never hand the name back).
 * Nothing of this is checked per event.
 *
 * What the executor interprets of XState's action objects:
 * - named actions from `setup({ actions })`: looked up in the `impl` table given here (the machine's own
 *   implementations are placeholders), called with (record, event);
 * - `xstate.raise` of an `after` transition: a timer on our Clock, duration from `delayMs(name)` for a named
 *   delay (so per-connection timeouts need no context) or the literal for a numeric one; firing sends the
 *   after-event back through the executor;
 * - `xstate.cancel`: cancels that timer.
 *
 * XState stays the definition and the oracle: `test/prop/machines/host.prop.test.ts` drives random event sequences
 * through this executor and through `createActor` side by side, for each machine, and asserts the same states and
 * actions.
 *
 * State changes go out through `HostOptions.onTransition` (one undefined-check per step when not given).
 */
import { initialTransition, transition, type AnyStateMachine } from 'xstate';
import type { Cancel, Clock } from '../net/ports.ts';

export interface MachineEvent {
  readonly type: string;
}

/** Per-instance state the executor needs; a connection record extends it. */
export interface HostedInstance<R extends HostedInstance<R, E>, E extends MachineEvent> {
  /** @internal executor state */
  _node: CachedNode<R, E>;
  /**
   * @internal pending timers: XState send id, then its Cancel, per timer (a flat list: instances have one or two,
   * and an object keyed by id would turn into a slow dictionary at the first `delete`)
   */
  _timers: (string | Cancel)[] | undefined;
  /** @internal events sent while actions run (run-to-completion, like an actor's mailbox) */
  _queue: E[] | undefined;
  _busy: boolean;
}

type Op<R, E> =
  | { readonly kind: 'call'; readonly fn: (rec: R, event: E) => void }
  /** `delay`: a named delay (`delayMs` decides per instance) or a literal in ms (`after: { 500: … }`) */
  | { readonly kind: 'after'; readonly id: string; readonly delay: string | number; readonly event: E }
  | { readonly kind: 'cancel'; readonly id: string };

export interface CachedNode<R, E> {
  readonly snapshot: any;
  /** JSON of the state value, e.g. `"connecting"` or `{"established":{"c2s":"open","s2c":"done"}}`. */
  readonly key: string;
  readonly done: boolean;
  readonly edges: Map<string, { readonly next: CachedNode<R, E>; readonly ops: readonly Op<R, E>[] }>;
}

export interface HostOptions<R, E extends MachineEvent> {
  clock: Clock;
  /** Implementations of the machine's named actions. */
  impl: Record<string, (rec: R, event: E) => void>;
  /** Duration of a named delay for this instance, ms. */
  delayMs: (rec: R, name: string) => number;
  /**
   * Called after each step whose state value changed (self-transitions and ignored events do not call it), once
   * the step's actions ran, with the old and new state keys (`stateOf`) and the event; after `start` too, with
   * `from` = `''` and an event of type `xstate.init`. Events it sends to `rec` are queued like an action's.
   */
  onTransition?: (rec: R, from: string, to: string, event: E) => void;
}

/** `xstate.after.<delay>.<state id>` → `<delay>` */
function delayName(eventType: string): string {
  const rest = eventType.slice('xstate.after.'.length);
  const dot = rest.indexOf('.');
  return dot < 0 ? rest : rest.slice(0, dot);
}

export class MachineHost<R extends HostedInstance<R, E>, E extends MachineEvent> {
  readonly #machine: AnyStateMachine;
  readonly #opts: HostOptions<R, E>;
  readonly #onTransition: HostOptions<R, E>['onTransition'];
  readonly #nodes = new Map<string, CachedNode<R, E>>();
  /** after-event type (`xstate.after.<delay>.<state id>`) → its delay as written: a name or ms */
  readonly #afterDelays: ReadonlyMap<string, string | number>;
  #initial: { node: CachedNode<R, E>; ops: readonly Op<R, E>[] } | undefined;

  /** @throws Error if `machine` uses a feature the executor cannot run exactly (see the file header). */
  constructor(machine: AnyStateMachine, opts: HostOptions<R, E>) {
    this.#afterDelays = assertHostable(machine, opts.impl);
    this.#machine = machine;
    this.#opts = opts;
    this.#onTransition = opts.onTransition;
  }

  /** Distinct (state) nodes seen so far; bounded by the machine's state count. */
  get cachedStates(): number {
    return this.#nodes.size;
  }

  #intern(snapshot: any): CachedNode<R, E> {
    const key = JSON.stringify(snapshot.value);
    let node = this.#nodes.get(key);
    if (!node) {
      node = { snapshot, key, done: snapshot.status === 'done', edges: new Map() };
      this.#nodes.set(key, node);
    }
    return node;
  }

  #compile(actions: readonly any[]): Op<R, E>[] {
    const ops: Op<R, E>[] = [];
    for (const a of actions) {
      const type: string = a.type;
      if (type === 'xstate.raise') {
        const p = a.params as { event: E; id: string; delay?: number };
        if (p.delay === undefined) throw new Error(`machine host: immediate raise of ${p.event.type} is not supported`);
        ops.push({ kind: 'after', id: p.id, delay: this.#afterDelays.get(p.event.type) ?? delayName(p.event.type), event: p.event });
      } else if (type === 'xstate.cancel') {
        ops.push({ kind: 'cancel', id: (a.params as { sendId: string }).sendId });
      } else {
        const fn = this.#opts.impl[type];
        if (!fn) throw new Error(`machine host: no implementation for action '${type}' of machine '${this.#machine.id}'`);
        ops.push({ kind: 'call', fn });
      }
    }
    return ops;
  }

  /** Starts an instance: runs the initial state's entry actions with `rec`. */
  start(rec: R): R {
    if (!this.#initial) {
      const [snap, actions] = initialTransition(this.#machine, undefined as never);
      this.#initial = { node: this.#intern(snap), ops: this.#compile(actions) };
    }
    const r = rec;
    r._node = this.#initial.node;
    r._timers = undefined;
    r._queue = undefined;
    r._busy = true;
    const init = { type: 'xstate.init' } as unknown as E;
    this.#run(r, this.#initial.ops, init);
    if (this.#onTransition !== undefined) this.#onTransition(r, '', r._node.key, init);
    this.#drain(r);
    return r;
  }

  /** Delivers an event. Events sent from inside actions are queued and run after the current step. */
  send(rec: R, event: E): void {
    if (rec._busy) {
      (rec._queue ??= []).push(event);
      return;
    }
    rec._busy = true;
    this.#step(rec, event);
    this.#drain(rec);
  }

  #drain(rec: R): void {
    const q = rec._queue;
    if (q) {
      for (let e = q.shift(); e !== undefined; e = q.shift()) this.#step(rec, e);
    }
    rec._busy = false;
  }

  #step(rec: R, event: E): void {
    const node = rec._node;
    if (node.done) return; // a final state ignores everything, like a stopped actor
    let edge = node.edges.get(event.type);
    if (!edge) {
      const [snap, actions] = transition(this.#machine, node.snapshot, event as never);
      edge = { next: this.#intern(snap), ops: this.#compile(actions) };
      node.edges.set(event.type, edge);
    }
    const next = edge.next;
    rec._node = next;
    this.#run(rec, edge.ops, event);
    if (next.done) this.#clearTimers(rec);
    if (this.#onTransition !== undefined && next !== node) this.#onTransition(rec, node.key, next.key, event);
  }

  #run(rec: R, ops: readonly Op<R, E>[], event: E): void {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.kind === 'call') op.fn(rec, event);
      else if (op.kind === 'cancel') takeTimer(rec, op.id)?.();
      else {
        takeTimer(rec, op.id)?.();
        const fire = op.event;
        const id = op.id;
        const ms = typeof op.delay === 'number' ? op.delay : this.#opts.delayMs(rec, op.delay);
        const cancel = this.#opts.clock.setTimer(ms, () => {
          takeTimer(rec, id);
          this.send(rec, fire);
        });
        (rec._timers ??= []).push(id, cancel);
      }
    }
  }

  #clearTimers(rec: R): void {
    const t = rec._timers;
    if (!t) return;
    rec._timers = undefined;
    for (let i = 1; i < t.length; i += 2) (t[i] as Cancel)();
  }

  /** The current state value's JSON (for logs and tests). */
  stateOf(rec: R): string {
    return rec._node.key;
  }

  isDone(rec: R): boolean {
    return rec._node.done;
  }

  /** Pending timers of an instance (leak checks). */
  pendingTimers(rec: R): number {
    return rec._timers ? rec._timers.length / 2 : 0;
  }
}

/** Removes the timer with XState send id `id` from the instance's list and returns its Cancel (undefined: none). */
function takeTimer(rec: { _timers: (string | Cancel)[] | undefined }, id: string): Cancel | undefined {
  const t = rec._timers;
  if (t === undefined) return undefined;
  for (let i = 0; i < t.length; i += 2) {
    if (t[i] === id) {
      const cancel = t[i + 1] as Cancel;
      t.splice(i, 2);
      return cancel;
    }
  }
  return undefined;
}

// ── the contract, checked once per MachineHost ─────────────────────────────────────────────────────────────────

/** What XState's built-in action objects are called in user code (`forwardTo`/`sendParent` are `xstate.sendTo`). */
const BUILTINS: Readonly<Record<string, string>> = {
  'xstate.assign': 'assign',
  'xstate.sendTo': 'sendTo/sendParent/forwardTo',
  'xstate.spawnChild': 'spawnChild',
  'xstate.stopChild': 'stopChild',
  'xstate.enqueueActions': 'enqueueActions',
  'xstate.emit': 'emit',
  'xstate.log': 'log',
};

/** `a.b` for a state node, `(root)` for the machine's root. */
function statePath(node: any): string {
  return node.path.length === 0 ? '(root)' : (node.path as string[]).join('.');
}

function guardName(g: any): string {
  if (typeof g === 'string') return `'${g}'`;
  if (typeof g === 'function') return g.name ? `'${g.name}' (inline)` : '(inline function)';
  if (g && typeof g.type === 'string') return `'${g.type}'`;
  return String(g);
}

/**
 * Walks `machine.root` and throws an `Error` listing every use of a feature the memoised executor cannot honour
 * (see the file header), each with its state path; returns the delays of the machine's `after` transitions by
 * after-event type.
 */
export function assertHostable(machine: AnyStateMachine, impl: Readonly<Record<string, unknown>>): Map<string, string | number> {
  const problems: string[] = [];
  const delays = new Map<string, string | number>();
  const named = machine.implementations.actions as Record<string, unknown>;

  const ctx: unknown = machine.config.context;
  if (ctx !== undefined && !(ctx !== null && typeof ctx === 'object' && Object.keys(ctx).length === 0)) {
    problems.push(`state (root): context (keep per-instance data in the record the actions receive)`);
  }

  const action = (a: any, where: string, via = ''): void => {
    if (typeof a === 'string') return namedAction(a, where);
    if (typeof a === 'object' && a !== null && typeof a.type === 'string') {
      if (a.params !== undefined) problems.push(`${where}: parameterized action '${a.type}' (the executor calls impl with (record, event) only)`);
      return namedAction(a.type, where);
    }
    const type: unknown = typeof a === 'function' ? (a as { type?: unknown }).type : undefined;
    if (typeof type !== 'string') {
      problems.push(`${where}: ${via}inline action function (name it in setup({ actions }) and implement it in impl)`);
      return;
    }
    if (type === 'xstate.raise') {
      // `after` compiles to a delayed raise of `xstate.after.<delay>.<state id>` (entry) and a cancel (exit).
      const ev: unknown = a.event;
      const afterEvent = typeof ev === 'object' && ev !== null && String((ev as { type?: unknown }).type).startsWith('xstate.after.');
      if (a.delay === undefined) problems.push(`${where}: ${via}immediate raise (the executor delivers no internal events)`);
      else if (!afterEvent) problems.push(`${where}: ${via}delayed raise of a custom event (write it as an after transition)`);
      return;
    }
    if (type === 'xstate.cancel') {
      if (typeof a.sendId !== 'string') problems.push(`${where}: ${via}cancel with a computed send id`);
      return;
    }
    problems.push(`${where}: ${via}${BUILTINS[type] ?? type} (${type}) is not supported by the memoised executor`);
  };

  const namedAction = (name: string, where: string): void => {
    const def: any = named[name];
    // A named action implemented in setup by a built-in (`inc: assign(…)`): transition() runs the built-in itself
    // and never returns the name, so an impl entry of that name would silently never run.
    if (typeof def === 'function' && typeof def.type === 'string' && def.type.startsWith('xstate.')) {
      return action(def, where, `named action '${name}' = `);
    }
    if (!Object.prototype.hasOwnProperty.call(impl, name)) problems.push(`${where}: named action '${name}' has no implementation in impl`);
  };

  const transitionDef = (t: any, where: string): void => {
    if (t.guard !== undefined) problems.push(`${where}: guard ${guardName(t.guard)} (a guard may read context or event data; the memo would keep its first answer)`);
    for (const a of t.actions as unknown[]) action(a, where);
  };

  const visit = (node: any): void => {
    const path = statePath(node);
    const at = `state ${path}`;
    if (node.type === 'history') problems.push(`${at}: history state (its target depends on the path taken, not on the state value)`);
    for (const a of node.entry as unknown[]) action(a, `${at} entry`);
    for (const a of node.exit as unknown[]) action(a, `${at} exit`);
    if (node.type === 'compound') for (const a of node.initial.actions as unknown[]) action(a, `${at} initial`);
    for (const inv of node.invoke as Array<{ src: unknown; id: string }>) {
      problems.push(`${at}: invoke of ${typeof inv.src === 'string' ? `'${inv.src}'` : 'inline logic'} (the executor runs no child actors)`);
    }
    for (const t of (node.always ?? []) as unknown[]) {
      problems.push(`${at}: eventless always transition (the executor steps on events only)`);
      transitionDef(t, `${at} always`);
    }
    for (const t of node.after as Array<{ eventType: string; delay: string | number }>) delays.set(t.eventType, t.delay);
    for (const [eventType, defs] of node.transitions as Map<string, unknown[]>) {
      const d = delays.get(eventType);
      const where = `${at} ${d === undefined ? `on ${eventType}` : `after ${d}`}`;
      for (const t of defs) transitionDef(t, where);
    }
    for (const child of Object.values(node.states as Record<string, unknown>)) visit(child);
  };
  visit(machine.root);

  if (problems.length > 0) {
    throw new Error(
      `MachineHost cannot run machine '${machine.id}' exactly (it memoises XState's transition() per state value and event type):\n` +
        problems.map((p) => `  - ${p}`).join('\n'),
    );
  }
  return delays;
}
