import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { VirtualClock } from '../../../src/net/sim/index.ts';

type Cmd = { kind: 'set'; delay: number; nested: number | null } | { kind: 'cancel'; which: number } | { kind: 'advance'; ms: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), delay: fc.integer({ min: 0, max: 50 }), nested: fc.option(fc.integer({ min: 0, max: 20 }), { nil: null }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel' as const), which: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 30 }) }) },
);

test('timers fire in (deadline, set order), cancelled ones never, and time never goes backwards', () => {
  fc.assert(
    fc.property(fc.array(cmdArb, { maxLength: 200 }), (cmds) => {
      const clock = new VirtualClock();
      // The model: every timer with its deadline and global set order; fired = sorted by (deadline, order).
      interface T {
        id: number;
        at: number;
        order: number;
        cancelled: boolean;
        cancel: () => void;
      }
      const timers: T[] = [];
      let order = 0;
      const fired: number[] = [];
      let last = 0;
      const set = (delay: number, nested: number | null): void => {
        const id = timers.length;
        const t: T = { id, at: clock.now() + delay, order: order++, cancelled: false, cancel: () => {} };
        timers.push(t);
        t.cancel = clock.setTimer(delay, () => {
          assert.ok(clock.now() >= last, 'time went backwards');
          assert.equal(clock.now(), t.at);
          last = clock.now();
          fired.push(id);
          if (nested !== null) set(nested, null);
        });
      };
      for (const c of cmds) {
        if (c.kind === 'set') set(c.delay, c.nested);
        else if (c.kind === 'cancel' && timers.length > 0) {
          const t = timers[c.which % timers.length]!;
          if (!fired.includes(t.id)) t.cancelled = true;
          t.cancel();
        } else if (c.kind === 'advance') clock.advanceBy(c.ms);
      }
      clock.runUntilIdle();
      const live = timers.filter((t) => !t.cancelled);
      assert.deepEqual(fired.slice().sort((a, b) => a - b), live.map((t) => t.id));
      // Within the firing sequence, (deadline, order) is non-decreasing.
      for (let i = 1; i < fired.length; i++) {
        const p = timers[fired[i - 1]!]!;
        const q = timers[fired[i]!]!;
        assert.ok(p.at < q.at || (p.at === q.at && p.order < q.order), `timer ${p.id} before ${q.id}`);
      }
      assert.equal(clock.pendingTimers(), 0);
    }),
    { numRuns: 300 },
  );
});

// Posted timers (`post`, `postAt`) wait in lanes, one per delay (at most 8), when they can; cancellable ones in the
// heap. Few distinct delays exercise the lanes, many (a jittered link) fill them and fall back to the heap; fractional
// times make `at - now` round. The firing order must be the (deadline, set order) of every timer all the same.
type PostCmd =
  | { kind: 'post'; delay: number; absolute: boolean; nested: number | null }
  | { kind: 'schedule'; delay: number }
  | { kind: 'cancel'; which: number }
  | { kind: 'advance'; ms: number };

const delayArb = fc.oneof(fc.constantFrom(0, 0.5, 0.5, 0.5, 1, 1.25, 3), fc.integer({ min: 0, max: 40 }).map((n) => n / 7), fc.double({ min: 0, max: 20, noNaN: true }));
const postArb: fc.Arbitrary<PostCmd> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('post' as const), delay: delayArb, absolute: fc.boolean(), nested: fc.option(delayArb, { nil: null }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('schedule' as const), delay: delayArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), which: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 9 }).map((n) => n / 3) }) },
);

test('posted timers (lanes) and scheduled ones fire together in (deadline, set order)', () => {
  fc.assert(
    fc.property(fc.array(postArb, { maxLength: 300 }), (cmds) => {
      const clock = new VirtualClock();
      interface T {
        at: number;
        order: number;
        cancelled: boolean;
      }
      const timers: T[] = [];
      const handles: Array<ReturnType<VirtualClock['schedule']> | undefined> = [];
      const fired: number[] = [];
      const fire = (id: number): void => {
        assert.equal(clock.now(), timers[id]!.at);
        fired.push(id);
      };
      const post = (delay: number, absolute: boolean, nested: number | null): void => {
        const id = timers.length;
        const at = clock.now() + delay;
        timers.push({ at, order: id, cancelled: false });
        handles.push(undefined);
        const cb = (n: number): void => {
          fire(n);
          if (nested !== null) post(nested, !absolute, null);
        };
        if (absolute) clock.postAt(at, cb, id);
        else clock.post(delay, cb, id);
      };
      for (const c of cmds) {
        if (c.kind === 'post') post(c.delay, c.absolute, c.nested);
        else if (c.kind === 'schedule') {
          const id = timers.length;
          timers.push({ at: clock.now() + c.delay, order: id, cancelled: false });
          handles.push(clock.schedule(c.delay, fire, id));
        } else if (c.kind === 'cancel' && timers.length > 0) {
          const id = c.which % timers.length;
          const h = handles[id];
          if (h !== undefined && !fired.includes(id)) {
            timers[id]!.cancelled = true;
            clock.cancel(h);
          }
        } else if (c.kind === 'advance') clock.advanceBy(c.ms);
        assert.equal(clock.pendingTimers(), timers.filter((t, i) => !t.cancelled && !fired.includes(i)).length);
      }
      const next = clock.nextDeadline();
      const pending = timers.filter((t, i) => !t.cancelled && !fired.includes(i));
      assert.equal(next, pending.length === 0 ? undefined : Math.min(...pending.map((t) => t.at)));
      clock.runUntilIdle();
      assert.deepEqual(
        fired.slice().sort((a, b) => a - b),
        timers.flatMap((t, i) => (t.cancelled ? [] : [i])),
      );
      for (let i = 1; i < fired.length; i++) {
        const p = timers[fired[i - 1]!]!;
        const q = timers[fired[i]!]!;
        assert.ok(p.at < q.at || (p.at === q.at && p.order < q.order), `timer ${fired[i - 1]} before ${fired[i]}`);
      }
      assert.equal(clock.pendingTimers(), 0);
    }),
    { numRuns: 500 },
  );
});
