/**
 * A Clock for unit tests that moves only when the test says so. Timers run in (deadline, order set) order, each
 * with `now()` equal to its deadline; a timer set by a running timer and due inside the same `advance` runs too.
 */
import type { Cancel, Clock } from '../../src/net/ports.ts';

export interface ManualClock extends Clock {
  /** Moves time forward by `ms` (≥ 0), running every timer due on the way. */
  advance(ms: number): void;
  /** Timers set and not yet fired or cancelled. */
  readonly pending: number;
}

/** `startMs` is the initial `now()`; `epochMs()` is `epochBaseMs + now()`. */
export function createManualClock(startMs = 0, epochBaseMs = 1_700_000_000_000): ManualClock {
  let now = startMs;
  let seq = 0;
  const timers = new Map<number, { readonly at: number; readonly seq: number; readonly fn: () => void }>();

  const nextDue = (limit: number): { at: number; seq: number; fn: () => void } | undefined => {
    let best: { at: number; seq: number; fn: () => void } | undefined;
    for (const t of timers.values()) {
      if (t.at <= limit && (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq))) best = t;
    }
    return best;
  };

  return {
    now: () => now,
    epochMs: () => epochBaseMs + now,
    setTimer(ms: number, fn: () => void): Cancel {
      if (!(ms >= 0)) throw new RangeError(`setTimer needs ms >= 0, got ${ms}`);
      const id = seq++;
      timers.set(id, { at: now + ms, seq: id, fn });
      return () => {
        timers.delete(id);
      };
    },
    advance(ms: number): void {
      if (!(ms >= 0)) throw new RangeError(`advance needs ms >= 0, got ${ms}`);
      const until = now + ms;
      // Bounded: a timer that re-arms itself at 0 ms forever is a bug worth a loud failure, not a hang.
      for (let fired = 0; ; fired++) {
        if (fired > 100_000) throw new Error('manual clock: more than 100000 timers in one advance');
        const t = nextDue(until);
        if (!t) break;
        timers.delete(t.seq);
        now = t.at;
        t.fn();
      }
      now = until;
    },
    get pending() {
      return timers.size;
    },
  };
}
