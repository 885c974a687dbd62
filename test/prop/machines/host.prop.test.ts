/**
 * The memoised executor (src/machines/host.ts) must agree with XState itself: for random event sequences and
 * random timer firings, a `createActor` of the same machine and the executor pass through the same states and run
 * the same named actions in the same order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createActor, type AnyActorRef } from 'xstate';
import { MachineHost, type HostedInstance } from '../../../src/machines/host.ts';
import { tcpConnectionMachine, type TcpConnEvent } from '../../../src/machines/tcp-connection.machine.ts';
import type { Cancel, Clock } from '../../../src/net/ports.ts';

/** A manual clock shared by both sides; timers fire in (deadline, seq) order. */
class TestClock implements Clock {
  t = 0;
  seq = 0;
  timers: Array<{ at: number; seq: number; fn: () => void; live: boolean }> = [];
  now = (): number => this.t;
  epochMs = (): number => this.t;
  setTimer(ms: number, fn: () => void): Cancel {
    const timer = { at: this.t + ms, seq: this.seq++, fn, live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  }
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.live && x.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      due.live = false;
      this.t = due.at;
      due.fn();
    }
    this.t = until;
    this.timers = this.timers.filter((x) => x.live);
  }
}

const plainEvents: TcpConnEvent['type'][] = [
  'CONN.ROUTED', 'CONN.NO_APP', 'PROXY.EXPECTED', 'PROXY.UNTRUSTED', 'ORIGIN.RESOLVED', 'UPSTREAM.CONNECTED',
  'UPSTREAM.EXHAUSTED', 'SPLICE.C2S_END', 'SPLICE.S2C_END', 'SPLICE.IDLE', 'SPLICE.CLOSED', 'CONN.DRAIN_DEADLINE', 'CONN.ABORT',
];
const stepArb = fc.oneof(
  fc.constantFrom(...plainEvents).map((type) => ({ kind: 'event' as const, event: { type } as TcpConnEvent })),
  fc.constant({ kind: 'event' as const, event: { type: 'UPSTREAM.FAILED', error: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) } as TcpConnEvent }),
  fc.constant({ kind: 'event' as const, event: { type: 'DOWNSTREAM.CLOSED' } as TcpConnEvent }),
  fc.constant({ kind: 'event' as const, event: { type: 'ORIGIN.RESOLVE_FAILED', code: 'E_UPSTREAM_RESOLVE_FAILED', detail: '' } as TcpConnEvent }),
  // Durations around the timeouts' edges, so off-by-one timer handling shows.
  fc.constantFrom(1, 999, 2_999, 3_000, 5_000, 14_000, 14_999, 15_000, 20_000).map((ms) => ({ kind: 'advance' as const, ms })),
);

// Prefixes that put the machine deep into its life, so random suffixes explore every state, not just `accepted`.
const ev = (type: TcpConnEvent['type']) => ({ kind: 'event' as const, event: { type } as TcpConnEvent });
const prefixArb = fc.constantFrom(
  [],
  [ev('CONN.ROUTED')],
  [ev('PROXY.EXPECTED')],
  [ev('CONN.ROUTED'), ev('ORIGIN.RESOLVED')],
  [ev('CONN.ROUTED'), ev('ORIGIN.RESOLVED'), ev('UPSTREAM.CONNECTED')],
);

interface Rec extends HostedInstance<Rec, TcpConnEvent> {
  log: string[];
}

const actionNames = Object.keys(tcpConnectionMachine.implementations.actions);

test('the memoised executor and createActor agree on states and actions for random event sequences', () => {
  fc.assert(
    fc.property(prefixArb, fc.array(stepArb, { maxLength: 40 }), (prefix, suffix) => {
      const steps = [...prefix, ...suffix];
      // Oracle: a real actor whose actions log their names.
      const clockA = new TestClock();
      const logA: string[] = [];
      const impls = Object.fromEntries(actionNames.map((n) => [n, () => logA.push(n)]));
      const actor: AnyActorRef = createActor(tcpConnectionMachine.provide({ actions: impls }), {
        clock: { setTimeout: (fn: () => void, ms: number) => clockA.setTimer(ms, fn), clearTimeout: (c: Cancel) => c() },
      });
      actor.start();

      const clockB = new TestClock();
      const host = new MachineHost<Rec, TcpConnEvent>(tcpConnectionMachine, {
        clock: clockB,
        impl: Object.fromEntries(actionNames.map((n) => [n, (r: Rec) => r.log.push(n)])),
        delayMs: (_r, name) => (name === 'connectTimeout' ? 15_000 : 3_000),
      });
      const rec = host.start({ log: [] } as unknown as Rec);

      const statesA: string[] = [];
      const statesB: string[] = [];
      for (const s of steps) {
        if (s.kind === 'event') {
          actor.send(s.event);
          host.send(rec, s.event);
        } else {
          clockA.advance(s.ms);
          clockB.advance(s.ms);
        }
        statesA.push(JSON.stringify(actor.getSnapshot().value));
        statesB.push(host.stateOf(rec));
      }
      assert.deepEqual(statesB, statesA);
      assert.deepEqual(rec.log, logA);
      assert.equal(host.isDone(rec), actor.getSnapshot().status === 'done');
      if (host.isDone(rec)) assert.equal(host.pendingTimers(rec), 0, 'a finished instance keeps no timers');
    }),
    { numRuns: 500 },
  );
});
