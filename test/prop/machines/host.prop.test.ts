/**
 * The memoised executor (src/machines/host.ts) must agree with XState itself: for random event sequences and
 * random timer firings, a `createActor` of the same machine and the executor pass through the same states and run
 * the same named actions in the same order. One property per machine the engine hosts (tcpConnection, udpFlow).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createActor, type AnyActorRef, type AnyStateMachine } from 'xstate';
import { MachineHost, type HostedInstance, type MachineEvent } from '../../../src/machines/host.ts';
import { tcpConnectionMachine, type TcpConnEvent } from '../../../src/machines/tcp-connection.machine.ts';
import { udpFlowMachine, type UdpFlowEvent } from '../../../src/machines/udp-flow.machine.ts';
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

type Step = { readonly kind: 'event'; readonly event: MachineEvent } | { readonly kind: 'advance'; readonly ms: number };
const ev = (type: string): Step => ({ kind: 'event', event: { type } });

interface Rec extends HostedInstance<Rec, MachineEvent> {
  log: string[];
}

/** One machine under the oracle: its events, timer durations, and prefixes that put it deep into its life. */
interface Case {
  readonly machine: AnyStateMachine;
  readonly steps: fc.Arbitrary<Step>;
  /** Prefixes, so random suffixes explore every state, not just the initial one. */
  readonly prefixes: fc.Arbitrary<Step[]>;
  readonly delayMs: (name: string) => number;
}

const tcpPlain: TcpConnEvent['type'][] = [
  'CONN.ROUTED', 'CONN.NO_APP', 'CONN.FILTERED', 'PROXY.EXPECTED', 'PROXY.UNTRUSTED', 'TLS.SKIPPED', 'TLS.CLIENT_OK',
  'TLS.CLIENT_FAILED', 'TLS.ORIGIN_OK', 'TLS.ORIGIN_FAILED', 'ORIGIN.RESOLVED', 'UPSTREAM.CONNECTED', 'UPSTREAM.EXHAUSTED',
  'SPLICE.C2S_END', 'SPLICE.S2C_END', 'SPLICE.IDLE', 'SPLICE.CLOSED', 'CONN.DRAIN_DEADLINE', 'CONN.ABORT',
];
const tcp: Case = {
  machine: tcpConnectionMachine,
  // Weighted so that every event is about as likely as any other (a plain oneof would give the four payload events
  // as much weight as all the plain ones together), and time passes in one step of eight.
  steps: fc.oneof(
    { arbitrary: fc.constantFrom(...tcpPlain).map(ev), weight: tcpPlain.length },
    { arbitrary: fc.constant<Step>({ kind: 'event', event: { type: 'UPSTREAM.FAILED', error: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) } as TcpConnEvent }), weight: 1 },
    { arbitrary: fc.constant<Step>({ kind: 'event', event: { type: 'DOWNSTREAM.CLOSED' } }), weight: 1 },
    { arbitrary: fc.constant<Step>({ kind: 'event', event: { type: 'ORIGIN.RESOLVE_FAILED', code: 'E_UPSTREAM_RESOLVE_FAILED', detail: '' } as TcpConnEvent }), weight: 1 },
    { arbitrary: fc.constant<Step>({ kind: 'event', event: { type: 'PROXY.INVALID', code: 'E_PP_BAD_SIGNATURE', detail: '' } as TcpConnEvent }), weight: 1 },
    // Durations around the timeouts' edges, so off-by-one timer handling shows.
    { arbitrary: fc.constantFrom(1, 999, 2_999, 3_000, 5_000, 14_000, 14_999, 15_000, 20_000).map((ms): Step => ({ kind: 'advance', ms })), weight: 3 },
  ),
  prefixes: fc.constantFrom(
    [],
    [ev('CONN.ROUTED')],
    [ev('PROXY.EXPECTED')],
    [ev('CONN.ROUTED'), ev('TLS.SKIPPED')],
    [ev('CONN.ROUTED'), ev('TLS.SKIPPED'), ev('ORIGIN.RESOLVED')],
    [ev('CONN.ROUTED'), ev('TLS.SKIPPED'), ev('ORIGIN.RESOLVED'), ev('UPSTREAM.CONNECTED')],
    [ev('CONN.ROUTED'), ev('TLS.SKIPPED'), ev('ORIGIN.RESOLVED'), ev('UPSTREAM.CONNECTED'), ev('TLS.SKIPPED')],
    [ev('CONN.ROUTED'), ev('TLS.SKIPPED'), ev('ORIGIN.RESOLVED'), ev('UPSTREAM.CONNECTED'), ev('TLS.SKIPPED'), ev('SPLICE.C2S_END')],
    [ev('CONN.ROUTED'), ev('TLS.SKIPPED'), ev('ORIGIN.RESOLVED'), ev('UPSTREAM.CONNECTED'), ev('TLS.SKIPPED'), ev('SPLICE.S2C_END')],
  ),
  delayMs: (name) => (name === 'connectTimeout' ? 15_000 : 3_000),
};

const udpPlain: UdpFlowEvent['type'][] = ['UPSTREAM.READY', 'FLOW.IDLE', 'FLOW.DRAIN_DEADLINE', 'FLOW.FILTERED', 'FLOW.ABORT'];
const udp: Case = {
  machine: udpFlowMachine,
  steps: fc.oneof(
    fc.constantFrom(...udpPlain).map(ev),
    fc.constant<Step>({ kind: 'event', event: { type: 'UPSTREAM.FAILED', code: 'E_UPSTREAM_RESOLVE_FAILED', detail: '' } as UdpFlowEvent }),
    // The machine has no `after` today; time passing must change nothing on either side.
    fc.constantFrom(1, 1_000, 60_000).map((ms): Step => ({ kind: 'advance', ms })),
  ),
  prefixes: fc.constantFrom([], [ev('UPSTREAM.READY')]),
  delayMs: (name) => assert.fail(`udpFlow has no delay named ${name}`),
};

/**
 * Runs `steps` through a `createActor` of `c.machine` and through MachineHost; asserts they agree step by step.
 * Adds every state key passed through to `seen`.
 */
function agree(c: Case, steps: readonly Step[], seen: Set<string>): void {
  const actionNames = Object.keys(c.machine.implementations.actions);
  // Oracle: a real actor whose actions log their names.
  const clockA = new TestClock();
  const logA: string[] = [];
  const impls = Object.fromEntries(actionNames.map((n) => [n, () => logA.push(n)]));
  const actor: AnyActorRef = createActor(c.machine.provide({ actions: impls }), {
    clock: { setTimeout: (fn: () => void, ms: number) => clockA.setTimer(ms, fn), clearTimeout: (cancel: Cancel) => cancel() },
  });
  actor.start();

  const clockB = new TestClock();
  const host = new MachineHost<Rec, MachineEvent>(c.machine, {
    clock: clockB,
    impl: Object.fromEntries(actionNames.map((n) => [n, (r: Rec) => r.log.push(n)])),
    delayMs: (_r, name) => c.delayMs(name),
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
  for (const k of statesB) seen.add(k);
  assert.deepEqual(rec.log, logA);
  assert.equal(host.isDone(rec), actor.getSnapshot().status === 'done');
  if (host.isDone(rec)) assert.equal(host.pendingTimers(rec), 0, 'a finished instance keeps no timers');
  actor.stop();
}

/** `"state"` / `"region":"leaf"` fragments of every leaf state, as they appear in a state key's JSON. */
function leafKeys(machine: AnyStateMachine): string[] {
  const out: string[] = [];
  const walk = (node: { key: string; states: Record<string, unknown> }, parentKey: string | undefined): void => {
    const children = Object.values(node.states) as (typeof node)[];
    if (children.length === 0) out.push(parentKey === undefined ? JSON.stringify(node.key) : `${JSON.stringify(parentKey)}:${JSON.stringify(node.key)}`);
    for (const ch of children) walk(ch, node === machine.root ? undefined : node.key);
  };
  walk(machine.root as never, undefined);
  return out;
}

for (const c of [tcp, udp]) {
  test(`the memoised executor and createActor agree on ${c.machine.id} states and actions for random event sequences`, () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(c.prefixes, fc.array(c.steps, { maxLength: 40 }), (prefix, suffix) => agree(c, [...prefix, ...suffix], seen)),
      { numRuns: 500 },
    );
    // The generator must reach every leaf state, or the agreement says nothing about the states it missed.
    assert.deepEqual(leafKeys(c.machine).filter((k) => ![...seen].some((s) => s.includes(k))), [], 'leaf states never reached');
  });
}
