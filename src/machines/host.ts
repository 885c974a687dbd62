/**
 * How Refract runs its XState machines: a memoised executor over XState's own pure `transition()`.
 *
 * Why not an actor per connection: a root XState actor costs ~40–50 µs per lifecycle and ~4 KB of heap (see
 * docs/architecture.md, "Machine hosting"), and `transition()` alone is slower still (~60 µs per event: it builds
 * an inert actor scope per call). Our machines are written so that a transition depends only on (state, event
 * type): their context is empty, guards (if any) look only at the state, and per-connection data lives in a record
 * the named actions receive. Under that contract, XState's answer for (state, event type) never changes, so we
 * ask XState once and remember it: each later event is a Map lookup plus the actions.
 *
 * XState stays the definition and the oracle: `test/prop/machines/host.prop.test.ts` drives random event sequences
 * through this executor and through `createActor` side by side and asserts the same states and actions.
 *
 * What the executor interprets of XState's action objects:
 * - named actions from `setup({ actions })`: looked up in the `impl` table given here (the machine's own
 *   implementations are placeholders), called with (record, event);
 * - `xstate.raise` with a delay (`after` transitions): a timer on our Clock, duration from `delayMs(name)`,
 *   so per-connection timeouts need no context; firing sends the after-event back through the executor;
 * - `xstate.cancel`: cancels that timer.
 * Anything else (assign, spawn, sendTo…) breaks the contract and throws at first use.
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
  | { readonly kind: 'after'; readonly id: string; readonly delay: string; readonly event: E }
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
  /** Called after each step that changed the state (and after `start`, with `from` ''); for state streams. */
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
  readonly #nodes = new Map<string, CachedNode<R, E>>();
  #initial: { node: CachedNode<R, E>; ops: readonly Op<R, E>[] } | undefined;

  constructor(machine: AnyStateMachine, opts: HostOptions<R, E>) {
    this.#machine = machine;
    this.#opts = opts;
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
        ops.push({ kind: 'after', id: p.id, delay: delayName(p.event.type), event: p.event });
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
    this.#opts.onTransition?.(r, '', this.#initial.node.key, init);
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
    rec._node = edge.next;
    this.#run(rec, edge.ops, event);
    if (edge.next.done) this.#clearTimers(rec);
    if (edge.next !== node) this.#opts.onTransition?.(rec, node.key, edge.next.key, event);
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
        const cancel = this.#opts.clock.setTimer(this.#opts.delayMs(rec, op.delay), () => {
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
