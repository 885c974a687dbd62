/**
 * `VirtualClock.reserve` + `postReserved` (a series of timers set one at a time, each by the previous one, with
 * sequence numbers reserved up front; the scenario runner's `load` steps use it) fire in exactly the order, and at
 * exactly the times, of the same series with every timer set up front, among other timers (zero-delay ones, ones
 * set from callbacks at the same instants); and `pendingTimers` counts the series' unset timers alike.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { VirtualClock } from '../../../src/net/sim/index.ts';

interface Plan {
  /** Other timers set before the series: delay, and the delay of one more timer its callback sets (or null). */
  readonly before: ReadonlyArray<{ delay: number; nested: number | null }>;
  /** The series: count timers, `every` apart, from when it is set; each callback may set one more timer. */
  readonly count: number;
  readonly every: number;
  readonly nested: number | null;
  readonly after: ReadonlyArray<{ delay: number; nested: number | null }>;
}

const other = fc.record({ delay: fc.integer({ min: 0, max: 12 }), nested: fc.option(fc.integer({ min: 0, max: 6 }), { nil: null }) });
const planArb: fc.Arbitrary<Plan> = fc.record({
  before: fc.array(other, { maxLength: 20 }),
  count: fc.integer({ min: 1, max: 30 }),
  every: fc.constantFrom(0, 0.5, 1, 1 / 3, 2),
  nested: fc.option(fc.integer({ min: 0, max: 4 }), { nil: null }),
  after: fc.array(other, { maxLength: 20 }),
});

/** Runs `plan` with the series set up front (`reserved` false) or chained; returns what fired, when, and the pending counts. */
function run(plan: Plan, reserved: boolean): string[] {
  const clock = new VirtualClock();
  const log: string[] = [];
  const setOther = (name: string, o: { delay: number; nested: number | null }): void => {
    clock.setTimer(o.delay, () => {
      log.push(`${name}@${clock.now()}`);
      if (o.nested !== null) clock.setTimer(o.nested, () => log.push(`${name}.n@${clock.now()}`));
    });
  };
  plan.before.forEach((o, i) => setOther(`b${i}`, o));
  const fire = (k: number): void => {
    log.push(`s${k}@${clock.now()}`);
    if (plan.nested !== null) clock.setTimer(plan.nested, () => log.push(`s${k}.n@${clock.now()}`));
  };
  if (!reserved) {
    for (let k = 0; k < plan.count; k++) clock.setTimer(k * plan.every, () => fire(k));
  } else {
    const start = clock.now();
    const base = clock.reserve(plan.count);
    const atOf = (k: number): number => (k * plan.every > 0 ? start + k * plan.every : start);
    const next = (k: number): void => {
      if (k + 1 < plan.count) clock.postReserved(atOf(k + 1), base + k + 1, next, k + 1);
      fire(k);
    };
    clock.postReserved(atOf(0), base, next, 0);
  }
  plan.after.forEach((o, i) => setOther(`a${i}`, o));
  log.push(`pending ${clock.pendingTimers()}`);
  while (clock.step()) log.push(`pending ${clock.pendingTimers()}`);
  return log;
}

test('a reserved series fires as the same series set up front, among other timers', () => {
  fc.assert(
    fc.property(planArb, (plan) => {
      assert.deepEqual(run(plan, true), run(plan, false));
    }),
    { numRuns: 300 },
  );
});

test('postReserved refuses a time in the past', () => {
  const clock = new VirtualClock();
  const base = clock.reserve(1);
  clock.advanceBy(5);
  assert.throws(() => clock.postReserved(4, base, () => {}, undefined), RangeError);
});
