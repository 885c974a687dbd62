/**
 * MachineHost's contract (src/machines/host.ts): a machine whose transitions could depend on more than (state value,
 * event type) is refused when the host is built, with an error naming the machine, the state and the feature; the
 * real machines are accepted; `onTransition` reports every change of state key.
 *
 * The error message is asserted here because naming the state and the feature is the feature.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  assign,
  emit,
  enqueueActions,
  forwardTo,
  fromCallback,
  log,
  raise,
  sendParent,
  sendTo,
  setup,
  spawnChild,
  type AnyStateMachine,
} from 'xstate';
import { MachineHost, type HostedInstance, type MachineEvent } from '../../../src/machines/host.ts';
import { tcpConnectionMachine, type TcpConnEvent } from '../../../src/machines/tcp-connection.machine.ts';
import { udpFlowMachine } from '../../../src/machines/udp-flow.machine.ts';
import { createManualClock, type ManualClock } from '../../helpers/manual-clock.ts';

interface Rec extends HostedInstance<Rec, MachineEvent> {
  log: string[];
}

const noop = (): void => {};

function hostFor(machine: AnyStateMachine, clock: ManualClock = createManualClock(), extra: Partial<ConstructorParameters<typeof MachineHost<Rec, MachineEvent>>[1]> = {}): MachineHost<Rec, MachineEvent> {
  const names = Object.keys(machine.implementations.actions);
  return new MachineHost<Rec, MachineEvent>(machine, {
    clock,
    impl: Object.fromEntries(names.map((n) => [n, (r: Rec) => r.log.push(n)])),
    delayMs: () => 1_000,
    ...extra,
  });
}

/** Asserts that building a host throws an Error naming the machine id and every given fragment (state, feature). */
function refuses(machine: AnyStateMachine, ...named: (string | RegExp)[]): void {
  assert.throws(
    () => hostFor(machine),
    (e: unknown) => {
      assert.ok(e instanceof Error && !('code' in e), 'a plain Error: refusing is a programming bug, not an outcome');
      assert.match(e.message, new RegExp(`'${machine.id}'`));
      for (const n of named) assert.match(e.message, typeof n === 'string' ? new RegExp(n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : n);
      return true;
    },
  );
}

const base = setup({ actions: { act: noop } });

describe('MachineHost refuses at construction what it cannot run exactly', () => {
  it('a context', () => {
    const m = base.createMachine({ id: 'ctx', context: { n: 0 }, initial: 'a', states: { a: {} } });
    refuses(m, 'state (root)', 'context');
  });

  it('assign, which transition() applies itself (GO, BACK, GO would keep the first context)', () => {
    const m = setup({ types: { context: {} as { n: number } } }).createMachine({
      id: 'counter',
      initial: 'idle',
      context: { n: 0 },
      states: {
        idle: { on: { GO: { target: 'busy', actions: assign({ n: ({ context }) => context.n + 1 }) } } },
        busy: { on: { BACK: 'idle' } },
      },
    });
    refuses(m, 'state idle on GO', 'assign (xstate.assign)');
  });

  it('a named action implemented in setup by assign', () => {
    const m = setup({ types: { context: {} as { n: number } }, actions: { bump: assign({ n: 1 }) } }).createMachine({
      id: 'named',
      context: { n: 0 },
      initial: 'a',
      states: { a: { entry: 'bump' } },
    });
    refuses(m, "state a entry: named action 'bump' = assign");
  });

  it('a guard on an event transition, on an after transition and on the root', () => {
    const m = setup({ guards: { isBig: () => true } }).createMachine({
      id: 'guarded',
      initial: 'a',
      on: { ROOT: { target: '.b', guard: 'isBig' } },
      states: {
        a: { on: { GO: { target: 'b', guard: 'isBig' } }, after: { 500: { target: 'b', guard: ({ event }) => event.type === 'x' } } },
        b: {},
      },
    });
    refuses(m, "state a on GO: guard 'isBig'", 'state a after 500: guard', "state (root) on ROOT: guard 'isBig'");
  });

  it('spawnChild', () => {
    const m = setup({ actors: { child: fromCallback(noop) } }).createMachine({
      id: 'spawner',
      initial: 'a',
      states: { a: { entry: spawnChild('child') } },
    });
    refuses(m, 'state a entry', 'spawnChild');
  });

  it('invoke', () => {
    const m = setup({ actors: { child: fromCallback(noop) } }).createMachine({
      id: 'invoker',
      initial: 'a',
      states: { a: { initial: 'inner', states: { inner: { invoke: { src: 'child' } } } } },
    });
    refuses(m, 'state a.inner', "invoke of 'child'");
  });

  it('sendTo, sendParent and forwardTo', () => {
    const m = base.createMachine({
      id: 'sender',
      initial: 'a',
      states: {
        a: { entry: sendTo('someone', { type: 'X' }), exit: sendParent({ type: 'Y' }), on: { GO: { target: 'b', actions: forwardTo('someone') } } },
        b: {},
      },
    });
    refuses(m, 'state a entry: sendTo', 'state a exit: sendTo', 'state a on GO: sendTo');
  });

  it('enqueueActions', () => {
    const m = base.createMachine({
      id: 'enqueuer',
      initial: 'a',
      states: { a: { on: { GO: { actions: enqueueActions(({ enqueue }) => enqueue('act')) } } } },
    });
    refuses(m, 'state a on GO', 'enqueueActions');
  });

  it('emit', () => {
    const m = base.createMachine({ id: 'emitter', initial: 'a', states: { a: { exit: emit({ type: 'OUT' }) } } });
    refuses(m, 'state a exit', 'emit');
  });

  it('log', () => {
    const m = base.createMachine({ id: 'logger', initial: 'a', states: { a: { entry: log('hi') } } });
    refuses(m, 'state a entry', 'log');
  });

  it('an immediate raise, and a delayed raise of a custom event', () => {
    const m = base.createMachine({
      id: 'raiser',
      initial: 'a',
      states: { a: { entry: raise({ type: 'NOW' }), on: { GO: { actions: raise({ type: 'LATER' }, { delay: 10 }) } } } },
    });
    refuses(m, 'state a entry: immediate raise', 'state a on GO: delayed raise of a custom event');
  });

  it('an eventless always transition', () => {
    const m = base.createMachine({ id: 'eventless', initial: 'a', states: { a: { always: 'b' }, b: {} } });
    refuses(m, 'state a', 'always');
  });

  it('a history state', () => {
    const m = base.createMachine({
      id: 'historic',
      initial: 'a',
      states: { a: { initial: 'x', states: { x: {}, h: { type: 'history' } } } },
    });
    refuses(m, 'state a.h', 'history');
  });

  it('a named action with no implementation in impl', () => {
    const m = base.createMachine({ id: 'unimplemented', initial: 'a', states: { a: { entry: 'act' } } });
    assert.throws(
      () => new MachineHost<Rec, MachineEvent>(m, { clock: createManualClock(), impl: {}, delayMs: () => 0 }),
      (e: unknown) => e instanceof Error && /'unimplemented'/.test(e.message) && /state a entry: named action 'act' has no implementation/.test(e.message),
    );
  });

  it('inline action functions and parameterized actions', () => {
    const m = setup({ actions: { act: (_, _p: { k: number }) => {} } }).createMachine({
      id: 'inline',
      initial: 'a',
      states: { a: { entry: () => {}, on: { GO: { actions: { type: 'act', params: { k: 1 } } } } } },
    });
    refuses(m, 'state a entry: inline action function', "state a on GO: parameterized action 'act'");
  });

  it('lists every problem of a machine, not just the first', () => {
    const m = setup({ guards: { g: () => true } }).createMachine({
      id: 'many',
      initial: 'a',
      states: { a: { entry: raise({ type: 'X' }), on: { GO: { target: 'b', guard: 'g' } } }, b: { always: 'a' } },
    });
    assert.throws(() => hostFor(m), (e: unknown) => e instanceof Error && e.message.split('\n  - ').length - 1 === 3);
  });
});

describe('MachineHost accepts the real machines', () => {
  it('tcpConnection', () => {
    const host = hostFor(tcpConnectionMachine);
    const r = host.start({ log: [] } as unknown as Rec);
    assert.equal(host.stateOf(r), '"accepted"');
  });

  it('udpFlow', () => {
    const host = hostFor(udpFlowMachine);
    const r = host.start({ log: [] } as unknown as Rec);
    host.send(r, { type: 'UPSTREAM.READY' });
    assert.equal(host.stateOf(r), '"active"');
  });

  it('a numeric after delay runs for its literal duration without asking delayMs', () => {
    const m = base.createMachine({ id: 'literal', initial: 'a', states: { a: { after: { 500: 'b' } }, b: { type: 'final' } } });
    const clock = createManualClock();
    const host = hostFor(m, clock, { delayMs: () => assert.fail('delayMs is for named delays') });
    const r = host.start({ log: [] } as unknown as Rec);
    clock.advance(499);
    assert.equal(host.stateOf(r), '"a"');
    clock.advance(1);
    assert.equal(host.isDone(r), true);
    assert.equal(clock.pending, 0);
  });
});

describe('MachineHost onTransition', () => {
  type Change = [from: string, to: string, event: string];

  function tcpHost(clock: ManualClock, changes: Change[]): MachineHost<Rec, MachineEvent> {
    return hostFor(tcpConnectionMachine, clock, {
      delayMs: (_r, name) => (name === 'connectTimeout' ? 15_000 : 3_000),
      onTransition: (r, from, to, event) => {
        changes.push([from, to, event.type]);
        r.log.push(`→${to}`);
      },
    });
  }

  it('reports the start and every change of state key, after the step’s actions, with the event', () => {
    const clock = createManualClock();
    const changes: Change[] = [];
    const host = tcpHost(clock, changes);
    const r = host.start({ log: [] } as unknown as Rec);
    const send = (type: TcpConnEvent['type']): void => host.send(r, { type });
    send('CONN.ROUTED');
    send('TLS.SKIPPED');
    send('ORIGIN.RESOLVED');
    send('UPSTREAM.CONNECTED');
    send('TLS.SKIPPED');
    send('SPLICE.C2S_END');
    send('SPLICE.CLOSED');
    assert.deepEqual(changes, [
      ['', '"accepted"', 'xstate.init'],
      ['"accepted"', '"clientTls"', 'CONN.ROUTED'],
      ['"clientTls"', '"resolving"', 'TLS.SKIPPED'],
      ['"resolving"', '"connecting"', 'ORIGIN.RESOLVED'],
      ['"connecting"', '"originTls"', 'UPSTREAM.CONNECTED'],
      ['"originTls"', '{"established":{"c2s":"open","s2c":"open"}}', 'TLS.SKIPPED'],
      ['{"established":{"c2s":"open","s2c":"open"}}', '{"established":{"c2s":"ended","s2c":"open"}}', 'SPLICE.C2S_END'],
      ['{"established":{"c2s":"ended","s2c":"open"}}', '"closed"', 'SPLICE.CLOSED'],
    ]);
    // Called once the step's actions ran: each action precedes the report of the state it led to.
    assert.deepEqual(r.log.slice(0, 3), ['classify', '→"accepted"', 'startClientTls']);
    assert.deepEqual(r.log.slice(-2), ['finish', '→"closed"']);
  });

  it('stays silent for ignored events, re-entering self-transitions and anything after the final state', () => {
    const clock = createManualClock();
    const changes: Change[] = [];
    const host = tcpHost(clock, changes);
    const r = host.start({ log: [] } as unknown as Rec);
    host.send(r, { type: 'SPLICE.C2S_END' }); // not handled in accepted
    host.send(r, { type: 'CONN.ROUTED' });
    host.send(r, { type: 'TLS.SKIPPED' });
    host.send(r, { type: 'ORIGIN.RESOLVED' });
    changes.length = 0;
    host.send(r, { type: 'UPSTREAM.FAILED', error: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) } as MachineEvent);
    clock.advance(15_000); // connectTimeout re-enters connecting
    assert.deepEqual(changes, []);
    assert.equal(r.log.filter((a) => a === 'dialNext').length, 3);
    host.send(r, { type: 'CONN.ABORT' });
    host.send(r, { type: 'CONN.ROUTED' });
    assert.deepEqual(changes, [['"connecting"', '"closed"', 'CONN.ABORT']]);
  });

  it('reports a timer-driven change with the after event', () => {
    const clock = createManualClock();
    const changes: Change[] = [];
    const host = tcpHost(clock, changes);
    const r = host.start({ log: [] } as unknown as Rec);
    host.send(r, { type: 'PROXY.EXPECTED' });
    clock.advance(3_000);
    assert.deepEqual(changes.at(-1), ['"readingProxyHeader"', '"closed"', 'xstate.after.proxyHeaderTimeout.tcpConnection.readingProxyHeader']);
    assert.equal(host.pendingTimers(r), 0);
  });

  it('queues events sent from the hook like an action’s, after the reported step', () => {
    const changes: Change[] = [];
    const host: MachineHost<Rec, MachineEvent> = hostFor(udpFlowMachine, createManualClock(), {
      onTransition: (r, from, to, event) => {
        changes.push([from, to, event.type]);
        if (to === '"active"') host.send(r, { type: 'FLOW.IDLE' });
      },
    });
    const r = host.start({ log: [] } as unknown as Rec);
    host.send(r, { type: 'UPSTREAM.READY' });
    assert.deepEqual(changes, [
      ['', '"opening"', 'xstate.init'],
      ['"opening"', '"active"', 'UPSTREAM.READY'],
      ['"active"', '"closed"', 'FLOW.IDLE'],
    ]);
    assert.deepEqual(r.log, ['openUpstream', 'startRelay', 'recordIdle', 'finish']);
  });
});
