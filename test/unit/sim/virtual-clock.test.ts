import test from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock, SIM_EPOCH_MS } from '../../../src/net/sim/index.ts';

test('timers fire in deadline order and equal deadlines fire in the order they were set', () => {
  const clock = new VirtualClock();
  const fired: string[] = [];
  clock.setTimer(20, () => fired.push('c@20'));
  clock.setTimer(10, () => fired.push('a@10'));
  clock.setTimer(10, () => fired.push('b@10'));
  clock.setTimer(0, () => fired.push('z@0'));
  clock.runUntilIdle();
  assert.deepEqual(fired, ['z@0', 'a@10', 'b@10', 'c@20']);
  assert.equal(clock.now(), 20);
});

test('a zero-delay timer set inside a callback runs after the timers already due at that instant', () => {
  const clock = new VirtualClock();
  const fired: string[] = [];
  clock.setTimer(5, () => {
    fired.push('first');
    clock.setTimer(0, () => fired.push('nested'));
  });
  clock.setTimer(5, () => fired.push('second'));
  clock.runUntilIdle();
  assert.deepEqual(fired, ['first', 'second', 'nested']);
  assert.equal(clock.now(), 5);
});

test('cancelled timers never fire, and cancelling twice or after firing is harmless', () => {
  const clock = new VirtualClock();
  const fired: number[] = [];
  const c1 = clock.setTimer(1, () => fired.push(1));
  const c2 = clock.setTimer(2, () => fired.push(2));
  assert.equal(clock.pendingTimers(), 2);
  c1();
  c1();
  assert.equal(clock.pendingTimers(), 1);
  clock.runUntilIdle();
  c2();
  assert.deepEqual(fired, [2]);
  assert.equal(clock.pendingTimers(), 0);
});

test('the clock refuses to go backwards', () => {
  const clock = new VirtualClock();
  clock.advanceBy(100);
  assert.throws(() => clock.runUntil(99), RangeError);
  assert.throws(() => clock.advanceBy(-1), RangeError);
  assert.equal(clock.now(), 100);
});

test('advanceBy fires what is due and lands exactly on the target time', () => {
  const clock = new VirtualClock();
  const at: number[] = [];
  clock.setTimer(3, () => at.push(clock.now()));
  clock.setTimer(12, () => at.push(clock.now()));
  const r = clock.advanceBy(10);
  assert.deepEqual(at, [3]);
  assert.equal(clock.now(), 10);
  assert.deepEqual(r, { steps: 1, idle: false });
  clock.advanceBy(2);
  assert.deepEqual(at, [3, 12]);
});

test('runUntilIdle jumps between deadlines and stops at maxSteps or maxTime', () => {
  const clock = new VirtualClock();
  let n = 0;
  const tick = (): void => {
    n++;
    clock.setTimer(1_000, tick);
  };
  clock.setTimer(1_000, tick);
  const bySteps = clock.runUntilIdle({ maxSteps: 5 });
  assert.deepEqual(bySteps, { steps: 5, idle: false });
  assert.equal(clock.now(), 5_000);
  const byTime = clock.runUntilIdle({ maxTime: 2_500 });
  assert.equal(byTime.steps, 2);
  assert.equal(clock.now(), 7_000, 'time stays at the last fired deadline');
  assert.equal(n, 7);
});

test('step fires exactly one timer and reports when there is none', () => {
  const clock = new VirtualClock();
  const fired: number[] = [];
  clock.setTimer(4, () => fired.push(4));
  clock.setTimer(9, () => fired.push(9));
  assert.equal(clock.nextDeadline(), 4);
  assert.equal(clock.step(), true);
  assert.deepEqual(fired, [4]);
  assert.equal(clock.now(), 4);
  assert.equal(clock.step(), true);
  assert.equal(clock.step(), false);
  assert.equal(clock.now(), 9);
});

test('a callback that drives the clock is rejected as a re-entrant run', () => {
  const clock = new VirtualClock();
  clock.setTimer(1, () => clock.advanceBy(1));
  assert.throws(() => clock.runUntilIdle(), /re-entrant/);
});

test('epochMs is the fixed 2026-01-01 epoch plus virtual time, or a chosen epoch', () => {
  const clock = new VirtualClock();
  assert.equal(new Date(SIM_EPOCH_MS).toISOString(), '2026-01-01T00:00:00.000Z');
  clock.advanceBy(1_500);
  assert.equal(clock.epochMs(), SIM_EPOCH_MS + 1_500);
  assert.equal(new VirtualClock({ epochMs: 1_000 }).epochMs(), 1_000);
});

test('a negative delay is clamped to now and a non-finite delay throws', () => {
  const clock = new VirtualClock();
  clock.advanceBy(50);
  let at = -1;
  clock.setTimer(-10, () => (at = clock.now()));
  clock.runUntilIdle();
  assert.equal(at, 50);
  assert.throws(() => clock.setTimer(Number.NaN, () => {}), RangeError);
  assert.throws(() => clock.setTimer(Infinity, () => {}), RangeError);
});

test('many cancellations compact the heap without disturbing the order of live timers', () => {
  const clock = new VirtualClock();
  const fired: number[] = [];
  const cancels: Array<() => void> = [];
  for (let i = 0; i < 20_000; i++) {
    const d = (i * 7919) % 1_000;
    cancels.push(clock.setTimer(d, () => fired.push(i)));
  }
  for (let i = 0; i < 20_000; i++) if (i % 10 !== 0) cancels[i]!();
  assert.equal(clock.pendingTimers(), 2_000);
  clock.runUntilIdle();
  const expected = [...Array(2_000).keys()].map((k) => k * 10).sort((a, b) => ((a * 7919) % 1_000) - ((b * 7919) % 1_000) || a - b);
  assert.deepEqual(fired, expected);
});

test('the async run lets promise continuations run between timers, at the virtual time they belong to', async () => {
  const clock = new VirtualClock();
  const seen: string[] = [];
  const wait = (ms: number): Promise<void> => new Promise((resolve) => clock.setTimer(ms, resolve));
  const task = (async () => {
    await wait(10);
    seen.push(`a@${clock.now()}`);
    await wait(5);
    seen.push(`b@${clock.now()}`);
  })();
  clock.setTimer(12, () => seen.push(`timer@${clock.now()}`));
  const r = await clock.runUntilIdleAsync();
  await task;
  assert.deepEqual(seen, ['a@10', 'timer@12', 'b@15']);
  assert.equal(r.idle, true);
  await clock.advanceByAsync(5);
  assert.equal(clock.now(), 20);
});
