/**
 * The simulator's one owner of time. Everything that happens in a simulation (packet arrivals, retransmissions,
 * application timers, deferred callbacks) is a timer on this clock, so the order of events is total and depends only
 * on the seed and the workload.
 *
 * Invariants:
 * - Timers fire in `(deadline, seq)` order: equal deadlines fire in the order they were set (turmoil's tie-breaker;
 *   XState's `SimulatedClock` lacks it).
 * - `now()` never decreases; asking to run to an earlier time throws.
 * - Time moves only inside `step`/`advanceBy`/`runUntil`/`runUntilIdle` (and their async forms). A timer callback may
 *   set timers (including at `now()`, which then run after every timer already due at `now()`), but may not drive
 *   the clock itself.
 */
import { type Cancel, type Clock } from '../ports.ts';

/** 2026-01-01T00:00:00Z in ms since the Unix epoch: the default wall-clock origin of a simulation. */
export const SIM_EPOCH_MS = 1_767_225_600_000;

/** Bounds for a run; both optional. */
export interface RunLimits {
  /** Fire at most this many timers (default 10,000,000). */
  readonly maxSteps?: number;
  /** Do not fire timers due later than `now() + maxTime` ms (default: no bound). */
  readonly maxTime?: number;
}

export interface RunResult {
  /** Timers fired. */
  readonly steps: number;
  /** True when no live timer remains. */
  readonly idle: boolean;
}

/** A scheduled callback; opaque outside the simulator. */
export interface TimerHandle {
  /** Virtual time (ms) at which it fires. */
  readonly at: number;
}

interface Timer<A = any> extends TimerHandle {
  at: number;
  seq: number;
  fn: (arg: A) => void;
  arg: A;
  /** Position in the heap array; -1 once fired or cancelled. */
  idx: number;
}

const DEFAULT_MAX_STEPS = 10_000_000;

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Virtual-time implementation of the `Clock` port: a binary min-heap of timers ordered by `(deadline, seq)`. Each
 * timer knows its heap position, so cancelling removes it at once (O(log n)) instead of leaving a tombstone.
 */
export class VirtualClock implements Clock {
  #now = 0;
  #seq = 0;
  #heap: Timer[] = [];
  #running = false;
  readonly #epochMs: number;

  constructor(opts: { epochMs?: number } = {}) {
    this.#epochMs = opts.epochMs ?? SIM_EPOCH_MS;
  }

  /** Virtual milliseconds since the start of the simulation. */
  now(): number {
    return this.#now;
  }

  /** The fixed epoch (default 2026-01-01T00:00:00Z) plus `now()`. */
  epochMs(): number {
    return this.#epochMs + this.#now;
  }

  /**
   * Runs `fn` once, `ms` virtual milliseconds from now. Negative delays are clamped to 0 (as Node clamps them);
   * a non-finite delay throws `RangeError` because it is always a bug in the caller.
   */
  setTimer(ms: number, fn: () => void): Cancel {
    const t = this.schedule(ms, fn, undefined);
    return () => this.cancel(t);
  }

  /** @internal Like `setTimer`, with an argument for `fn` and a handle instead of a closure (no allocation). */
  schedule<A>(ms: number, fn: (arg: A) => void, arg: A): TimerHandle {
    if (!Number.isFinite(ms)) throw new RangeError(`VirtualClock: timer delay must be finite, got ${ms}`);
    return this.#push(ms > 0 ? this.#now + ms : this.#now, fn, arg);
  }

  /** @internal Schedules at an absolute virtual time, which must not be in the past. */
  scheduleAt<A>(at: number, fn: (arg: A) => void, arg: A): TimerHandle {
    if (!(at >= this.#now)) throw new RangeError(`VirtualClock: cannot schedule at ${at}, now is ${this.#now}`);
    return this.#push(at, fn, arg);
  }

  /** @internal Cancels a timer from `schedule`; harmless if it already fired or was cancelled. */
  cancel(handle: TimerHandle): void {
    const t = handle as Timer;
    const i = t.idx;
    if (i < 0) return;
    t.idx = -1;
    const h = this.#heap;
    const last = h.pop()!;
    if (last === t) return;
    // Put the last element in the hole and restore the heap property in whichever direction it is violated.
    this.#siftDown(last, this.#siftUp(last, i));
  }

  /** Timers set and not yet fired or cancelled (the leak check of tests that open connections). */
  pendingTimers(): number {
    return this.#heap.length;
  }

  /** Deadline of the next timer, or undefined when idle. */
  nextDeadline(): number | undefined {
    return this.#heap[0]?.at;
  }

  /** Fires the next live timer, moving time to its deadline. Returns false when there is none. */
  step(): boolean {
    this.#enter();
    try {
      return this.#fireNext(Infinity);
    } finally {
      this.#running = false;
    }
  }

  /** Fires every timer due within `ms` from now, then sets now to exactly now + ms. Throws if ms < 0. */
  advanceBy(ms: number): RunResult {
    if (!(ms >= 0)) throw new RangeError(`VirtualClock cannot go backwards (advanceBy(${ms}))`);
    return this.runUntil(this.#now + ms);
  }

  /** Fires every timer due at or before `t`, then sets now to `t`. Throws if `t` is earlier than now. */
  runUntil(t: number): RunResult {
    if (!(t >= this.#now)) throw new RangeError(`VirtualClock cannot go backwards (runUntil(${t}) at ${this.#now})`);
    this.#enter();
    let steps = 0;
    try {
      while (this.#fireNext(t)) steps++;
      this.#now = t;
    } finally {
      this.#running = false;
    }
    return { steps, idle: this.#heap.length === 0 };
  }

  /**
   * Jumps from deadline to deadline, firing timers, until none is left or a limit is hit. Time stays at the last
   * fired deadline (it is not moved to the `maxTime` bound).
   */
  runUntilIdle(limits: RunLimits = {}): RunResult {
    const maxSteps = limits.maxSteps ?? DEFAULT_MAX_STEPS;
    const until = limits.maxTime === undefined ? Infinity : this.#now + limits.maxTime;
    this.#enter();
    let steps = 0;
    try {
      while (steps < maxSteps && this.#fireNext(until)) steps++;
    } finally {
      this.#running = false;
    }
    return { steps, idle: this.#heap.length === 0 };
  }

  /**
   * `runUntilIdle` that lets promise continuations run between timers, the way Node drains microtasks after every
   * callback. Use it when code under test awaits promises that the simulation settles (DNS answers, listeners).
   */
  async runUntilIdleAsync(limits: RunLimits = {}): Promise<RunResult> {
    const maxSteps = limits.maxSteps ?? DEFAULT_MAX_STEPS;
    const until = limits.maxTime === undefined ? Infinity : this.#now + limits.maxTime;
    let steps = 0;
    await drainMicrotasks();
    while (steps < maxSteps && this.#stepUntil(until)) {
      steps++;
      await drainMicrotasks();
    }
    return { steps, idle: this.#heap.length === 0 };
  }

  /** `advanceBy` that drains microtasks between timers (see `runUntilIdleAsync`). */
  async advanceByAsync(ms: number): Promise<RunResult> {
    if (!(ms >= 0)) throw new RangeError(`VirtualClock cannot go backwards (advanceByAsync(${ms}))`);
    const until = this.#now + ms;
    let steps = 0;
    await drainMicrotasks();
    while (this.#stepUntil(until)) {
      steps++;
      await drainMicrotasks();
    }
    if (until > this.#now) this.#now = until;
    return { steps, idle: this.#heap.length === 0 };
  }

  #stepUntil(until: number): boolean {
    this.#enter();
    try {
      return this.#fireNext(until);
    } finally {
      this.#running = false;
    }
  }

  #enter(): void {
    if (this.#running) throw new Error('VirtualClock: a timer callback tried to drive the clock (re-entrant run)');
    this.#running = true;
  }

  #push<A>(at: number, fn: (arg: A) => void, arg: A): Timer<A> {
    const t: Timer<A> = { at, seq: this.#seq++, fn, arg, idx: this.#heap.length };
    this.#heap.push(t);
    this.#siftUp(t, t.idx);
    return t;
  }

  /** Moves `t` up from position `i` to where it belongs; returns its final position. */
  #siftUp(t: Timer, i: number): number {
    const h = this.#heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (!before(t, parent)) break;
      h[i] = parent;
      parent.idx = i;
      i = p;
    }
    h[i] = t;
    t.idx = i;
    return i;
  }

  /** Moves `t` down from position `i` to where it belongs. */
  #siftDown(t: Timer, i: number): void {
    const h = this.#heap;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(h[r]!, h[l]!) ? r : l;
      const child = h[c]!;
      if (!before(child, t)) break;
      h[i] = child;
      child.idx = i;
      i = c;
    }
    h[i] = t;
    t.idx = i;
  }

  #fireNext(until: number): boolean {
    const h = this.#heap;
    const t = h[0];
    if (t === undefined || t.at > until) return false;
    const last = h.pop()!;
    if (last !== t) this.#siftDown(last, 0);
    t.idx = -1;
    if (t.at > this.#now) this.#now = t.at;
    t.fn(t.arg);
    return true;
  }
}

/**
 * Resolves after every microtask queued so far (and those they queue) has run: V8 drains the whole microtask queue
 * before Node runs the next `process.nextTick` callback.
 */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => process.nextTick(resolve));
}
