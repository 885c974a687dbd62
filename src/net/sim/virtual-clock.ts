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
import { promiseHooks } from 'node:v8';
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
  /** Position in the heap array; `IN_DUE` while in the due queue; `DEAD` once fired or cancelled. */
  idx: number;
  /** Set by `post`: no handle escaped, so once fired the object is reused for another posted timer. */
  pooled: boolean;
}

const DEFAULT_MAX_STEPS = 10_000_000;
const DEAD = -1;
const IN_DUE = -2;
/** `idx` of a posted timer waiting in a lane (lanes hold only posted timers, which are never cancelled). */
const IN_LANE = -3;
/** At most this many lanes (distinct delays in use at once); a posted timer that finds none goes into the heap. */
const MAX_LANES = 8;
/** Fills fired slots of the due queue (keeps the array's elements one shape; holds no callback or argument). */
function noop(): void {}
const SPENT: Timer = { at: 0, seq: 0, fn: noop, arg: undefined, idx: DEAD, pooled: false };

/**
 * Posted timers set with one delay (`at - now` when set), in set order: their `(deadline, seq)` order is their set
 * order, so they need no heap. A FIFO in a ring of slots (a power of two), doubled when full: a lane that never
 * empties (a busy link) reuses its slots instead of growing.
 */
class Lane {
  delay = 0;
  q: Timer[] = new Array<Timer>(16).fill(SPENT);
  head = 0;
  size = 0;

  push(t: Timer): void {
    let q = this.q;
    if (this.size === q.length) {
      const bigger = new Array<Timer>(q.length * 2).fill(SPENT);
      for (let i = 0; i < this.size; i++) bigger[i] = q[(this.head + i) & (q.length - 1)]!;
      this.q = q = bigger;
      this.head = 0;
    }
    q[(this.head + this.size++) & (q.length - 1)] = t;
  }

  /** The first timer; the lane must not be empty. */
  first(): Timer {
    return this.q[this.head]!;
  }

  /** The last timer; the lane must not be empty. */
  last(): Timer {
    return this.q[(this.head + this.size - 1) & (this.q.length - 1)]!;
  }

  /** Drops the first timer; the lane must not be empty. */
  shift(): void {
    this.q[this.head] = SPENT;
    this.head = (this.head + 1) & (this.q.length - 1);
    this.size--;
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Virtual-time implementation of the `Clock` port: a binary min-heap of timers ordered by `(deadline, seq)`. Each
 * timer knows its heap position, so cancelling removes it at once (O(log n)) instead of leaving a tombstone.
 *
 * Timers due at exactly `now()` (deferred callbacks, zero-latency deliveries) skip the heap: they wait in a FIFO, the
 * due queue, in `seq` order. The order stays `(deadline, seq)`: every timer in the due queue was set while time was
 * `now()`, so any heap timer also due at `now()` was set earlier (lower seq) and fires first; time moves past `now()`
 * only when the due queue holds no live timer. A cancelled due timer stays in the queue as a dead slot, skipped.
 *
 * Posted timers (`post`, `postAt`: never cancelled) due later skip the heap too when they can: each joins the lane of
 * its delay (`at - now` when set; up to MAX_LANES lanes), a FIFO in which set order is `(deadline, seq)` order. The
 * next timer is the earliest of the heap's top and the lanes' heads (then the due queue as above), so the firing
 * order is the same total order as with every timer in the heap. Packet arrivals over a link with no jitter (every
 * one a latency after it leaves) are most of a simulation's timers: appended and taken in O(1), where the heap sifted
 * them through its O(log n) levels of idle and retransmission timers.
 */
export class VirtualClock implements Clock {
  #now = 0;
  #seq = 0;
  /** Sequence numbers reserved (`reserve`) whose timers are not set yet. */
  #reserved = 0;
  #heap: Timer[] = [];
  /** The due queue: live timers (idx === IN_DUE) and dead slots from `#dueHead` to `#dueTail`. */
  #due: Timer[] = [];
  #dueHead = 0;
  #dueTail = 0;
  /** Live timers in the due queue. */
  #dueLive = 0;
  /**
   * Lanes of posted timers (see Lane): packet arrivals over a link all come one latency after they leave, so most
   * of a simulation's timers are appended to a lane and fired from its head, without the heap's O(log n) sifts.
   */
  readonly #lanes: Lane[] = [];
  /** The lane last appended to (most posts have the delay of the one before). */
  #lastLane: Lane | undefined = undefined;
  /** Timers waiting in lanes. */
  #laneLive = 0;
  #running = false;
  /** Fired timers of `post`/`postAt`, for reuse. */
  readonly #free: Timer[] = [];
  /** Set by the promise hooks of an async run when a promise was created or settled (see `runUntilIdleAsync`). */
  #promised = false;
  readonly #markPromised = (): void => {
    this.#promised = true;
  };
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
    return this.#push(ms > 0 ? this.#now + ms : this.#now, fn, arg, false);
  }

  /** @internal Schedules at an absolute virtual time, which must not be in the past. */
  scheduleAt<A>(at: number, fn: (arg: A) => void, arg: A): TimerHandle {
    if (!(at >= this.#now)) throw new RangeError(`VirtualClock: cannot schedule at ${at}, now is ${this.#now}`);
    return this.#push(at, fn, arg, false);
  }

  /**
   * @internal `schedule` for a callback that is never cancelled: returns no handle, so the timer object can be
   * reused once fired (packet arrivals and deferred callbacks are most of a simulation's timers).
   */
  post<A>(ms: number, fn: (arg: A) => void, arg: A): void {
    if (!Number.isFinite(ms)) throw new RangeError(`VirtualClock: timer delay must be finite, got ${ms}`);
    this.#push(ms > 0 ? this.#now + ms : this.#now, fn, arg, true);
  }

  /** @internal `scheduleAt` for a callback that is never cancelled (see `post`). */
  postAt<A>(at: number, fn: (arg: A) => void, arg: A): void {
    if (!(at >= this.#now)) throw new RangeError(`VirtualClock: cannot schedule at ${at}, now is ${this.#now}`);
    this.#push(at, fn, arg, true);
  }

  /**
   * @internal Reserves `n` consecutive sequence numbers (returns the first) for timers that are set later, one at a
   * time, with `postReserved`: a long series of timers (a scenario's `load` of thousands of connections) then keeps one
   * timer in the heap instead of all of them, and fires in exactly the order it would have had every timer been set
   * now. Until set, a reserved timer counts as pending (`pendingTimers`).
   */
  reserve(n: number): number {
    const base = this.#seq;
    this.#seq += n;
    this.#reserved += n;
    return base;
  }

  /**
   * @internal Sets a timer at absolute time `at` with a sequence number from `reserve`, never cancelled (see `post`).
   * It takes the place in the `(deadline, seq)` order that `seq` gave it, so it must be set before any timer that
   * order puts after it has fired: a series sets its next timer when the previous one fires, at the same time or later.
   */
  postReserved<A>(at: number, seq: number, fn: (arg: A) => void, arg: A): void {
    if (!(at >= this.#now)) throw new RangeError(`VirtualClock: cannot schedule at ${at}, now is ${this.#now}`);
    this.#reserved--;
    let t: Timer<A>;
    const spare = this.#free.pop();
    if (spare === undefined) t = { at, seq, fn, arg, idx: 0, pooled: true };
    else {
      t = spare;
      t.at = at;
      t.seq = seq;
      t.fn = fn;
      t.arg = arg;
    }
    // Into the heap even when due now: its seq is older than every timer in the due queue (#fireNext compares both).
    t.idx = this.#heap.length;
    this.#heap.push(t);
    this.#siftUp(t, t.idx);
  }

  /** @internal Cancels a timer from `schedule`; harmless if it already fired or was cancelled. */
  cancel(handle: TimerHandle): void {
    const t = handle as Timer;
    const i = t.idx;
    if (i < 0) {
      if (i === IN_DUE) {
        t.idx = DEAD; // its slot in the due queue is skipped when reached
        this.#dueLive--;
      }
      return;
    }
    t.idx = DEAD;
    const h = this.#heap;
    const last = h.pop()!;
    if (last === t) return;
    // Put the last element in the hole and restore the heap property in whichever direction it is violated.
    this.#siftDown(last, this.#siftUp(last, i));
  }

  /** Timers set and not yet fired or cancelled (the leak check of tests that open connections). */
  pendingTimers(): number {
    return this.#heap.length + this.#dueLive + this.#reserved + this.#laneLive;
  }

  /** Deadline of the next timer, or undefined when idle. */
  nextDeadline(): number | undefined {
    if (this.#dueLive > 0) return this.#now;
    const t = this.#laneLive > 0 ? this.#earliest() : this.#heap[0];
    return t?.at;
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
    return { steps, idle: this.pendingTimers() === 0 };
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
    return { steps, idle: this.pendingTimers() === 0 };
  }

  /**
   * `runUntilIdle` that lets promise continuations run between timers, the way Node drains microtasks after every
   * callback. Use it when code under test awaits promises that the simulation settles (DNS answers, listeners).
   *
   * Draining costs a trip through Node's tick queue, so it is done only after a timer whose callbacks created or
   * settled a promise (V8's promise hooks tell, while the run lasts); when none did, no continuation can be queued
   * and the next timer fires at once, as if the drain had happened. Not noticed: `queueMicrotask`,
   * `process.nextTick`, and resolving an already pending promise with another promise, called from a timer
   * callback; what they queue runs at the next drain (the end of the run at the latest). Nothing in Refract does so.
   */
  async runUntilIdleAsync(limits: RunLimits = {}): Promise<RunResult> {
    const until = limits.maxTime === undefined ? Infinity : this.#now + limits.maxTime;
    const steps = await this.#stepAsync(until, limits.maxSteps ?? DEFAULT_MAX_STEPS);
    return { steps, idle: this.pendingTimers() === 0 };
  }

  /** `advanceBy` that drains microtasks between timers (see `runUntilIdleAsync`). */
  async advanceByAsync(ms: number): Promise<RunResult> {
    if (!(ms >= 0)) throw new RangeError(`VirtualClock cannot go backwards (advanceByAsync(${ms}))`);
    const until = this.#now + ms;
    const steps = await this.#stepAsync(until, Infinity);
    if (until > this.#now) this.#now = until;
    return { steps, idle: this.pendingTimers() === 0 };
  }

  /** Fires timers due by `until` (at most `maxSteps`), draining microtasks after those that touched a promise. */
  async #stepAsync(until: number, maxSteps: number): Promise<number> {
    let steps = 0;
    await drainMicrotasks();
    const stop = this.#watchPromises();
    try {
      while (steps < maxSteps) {
        const n = this.#fireUntilPromised(until, maxSteps - steps);
        if (n === 0) break;
        steps += n;
        if (this.#promised) {
          await drainMicrotasks();
          this.#promised = false; // the drain's own promise, and what ran during it, are not the next timer's doing
        }
      }
    } finally {
      stop();
    }
    await drainMicrotasks();
    return steps;
  }

  /** Promise hooks for an async run: any promise created or settled sets `#promised`. Returns the hooks' remover. */
  #watchPromises(): () => void {
    this.#promised = false;
    const stop = promiseHooks.createHook({ init: this.#markPromised, settled: this.#markPromised });
    return () => {
      stop();
    };
  }

  /**
   * Fires timers due by `until`, at most `max`, stopping after one whose callbacks created or settled a promise (the
   * caller drains microtasks then). Returns how many fired: one `#enter` for a run of timers, not one per timer.
   */
  #fireUntilPromised(until: number, max: number): number {
    this.#enter();
    let n = 0;
    try {
      while (n < max && this.#fireNext(until)) {
        n++;
        if (this.#promised) break;
      }
    } finally {
      this.#running = false;
    }
    return n;
  }

  #enter(): void {
    if (this.#running) throw new Error('VirtualClock: a timer callback tried to drive the clock (re-entrant run)');
    this.#running = true;
  }

  #push<A>(at: number, fn: (arg: A) => void, arg: A, pooled: boolean): Timer<A> {
    let t: Timer<A>;
    const spare = pooled ? this.#free.pop() : undefined;
    if (spare === undefined) t = { at, seq: this.#seq++, fn, arg, idx: 0, pooled };
    else {
      t = spare;
      t.at = at;
      t.seq = this.#seq++;
      t.fn = fn;
      t.arg = arg;
    }
    if (at === this.#now) {
      t.idx = IN_DUE;
      // Slots are reused, never truncated: emptying an array frees its store and the next push allocates anew.
      this.#due[this.#dueTail++] = t;
      this.#dueLive++;
      return t;
    }
    if (pooled) {
      const lane = this.#laneFor(at);
      if (lane !== undefined) {
        t.idx = IN_LANE;
        lane.push(t);
        this.#laneLive++;
        return t;
      }
    }
    t.idx = this.#heap.length;
    this.#heap.push(t);
    this.#siftUp(t, t.idx);
    return t;
  }

  /**
   * The lane a posted timer due at `at` (later than now) joins: the one with its delay, else an empty or new one; it
   * must not be due before the lane's last timer (then, and when every lane is taken, undefined: the heap).
   */
  #laneFor(at: number): Lane | undefined {
    const delay = at - this.#now;
    let lane = this.#lastLane;
    if (lane === undefined || lane.delay !== delay) {
      lane = undefined;
      let empty: Lane | undefined;
      const lanes = this.#lanes;
      for (let i = 0; i < lanes.length; i++) {
        const l = lanes[i]!;
        if (l.delay === delay) {
          lane = l;
          break;
        }
        if (empty === undefined && l.size === 0) empty = l;
      }
      if (lane === undefined) {
        if (empty === undefined) {
          if (lanes.length >= MAX_LANES) return undefined;
          lanes.push((empty = new Lane()));
        }
        lane = empty;
        lane.delay = delay;
      }
      this.#lastLane = lane;
    }
    // Same delay, later set: never earlier than the lane's last (checked: the subtraction above may round).
    if (lane.size > 0 && lane.last().at > at) return undefined;
    return lane;
  }

  /**
   * The earliest of the heap's top and the lanes' heads (not the due queue's), or undefined when all are empty; when
   * it is a lane's head, that lane is `#bestLane`.
   */
  #earliest(): Timer | undefined {
    let best = this.#heap[0];
    let bestLane: Lane | undefined;
    const lanes = this.#lanes;
    for (let i = 0; i < lanes.length; i++) {
      const l = lanes[i]!;
      if (l.size === 0) continue;
      const t = l.first();
      if (best === undefined || before(t, best)) {
        best = t;
        bestLane = l;
      }
    }
    this.#bestLane = bestLane;
    return best;
  }

  #bestLane: Lane | undefined = undefined;

  /** Fires `t` (already out of the heap or due queue); a posted timer goes back to the pool afterwards. */
  #fire(t: Timer): void {
    t.idx = DEAD;
    t.fn(t.arg);
    if (t.pooled) {
      t.fn = noop;
      t.arg = undefined;
      this.#free.push(t);
    }
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
    const top = this.#laneLive > 0 ? this.#earliest() : h[0];
    if (this.#dueLive > 0) {
      const q = this.#due;
      let d = q[this.#dueHead]!;
      while (d.idx === DEAD) {
        q[this.#dueHead++] = SPENT;
        d = q[this.#dueHead]!;
      }
      // A heap or lane timer due now was set before every timer in the due queue (see the class comment).
      if (top === undefined || top.at !== d.at || top.seq > d.seq) {
        q[this.#dueHead++] = SPENT;
        if (--this.#dueLive === 0) this.#clearDue(); // later slots, if any, are dead
        this.#fire(d);
        return true;
      }
    } else if (this.#dueTail > 0) this.#clearDue(); // only dead slots left
    if (top === undefined || top.at > until) return false;
    if (top.idx === IN_LANE) {
      this.#bestLane!.shift();
      this.#laneLive--;
    } else {
      const last = h.pop()!;
      if (last !== top) this.#siftDown(last, 0);
    }
    if (top.at > this.#now) this.#now = top.at;
    this.#fire(top);
    return true;
  }

  /** Empties a due queue that holds only dead slots (releasing the cancelled timers). */
  #clearDue(): void {
    const q = this.#due;
    for (let i = this.#dueHead; i < this.#dueTail; i++) q[i] = SPENT;
    this.#dueHead = this.#dueTail = 0;
  }
}

/**
 * Resolves after every microtask queued so far (and those they queue) has run: V8 drains the whole microtask queue
 * before Node runs the next `process.nextTick` callback.
 */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => process.nextTick(resolve));
}
