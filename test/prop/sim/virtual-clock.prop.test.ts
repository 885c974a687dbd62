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
