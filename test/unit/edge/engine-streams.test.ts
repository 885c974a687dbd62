/**
 * The engine's streams, in the simulator: machines are fed by the engine's input streams and report every state
 * change on `states$` (TCP and UDP), bytes never show up there, and `EdgeNode.follow` applies config snapshots
 * in order, reporting each applied or rejected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Subject, toArray, firstValueFrom } from 'rxjs';
import { createSim } from '../../../src/net/sim/index.ts';
import { EdgeNode, type FollowResult } from '../../../src/edge/edge-node.ts';
import type { MachineStateChange } from '../../../src/machines/tcp-connection.ts';
import type { RefractConfig } from '../../../src/model/types.ts';
import { mustConfig } from '../../helpers/edge.ts';

const enc = new TextEncoder();

function world() {
  const sim = createSim({ seed: 7 });
  const edgeH = sim.host('edge', { addresses: ['198.51.100.1'] });
  const originH = sim.host('origin', { addresses: ['198.51.100.2'] });
  const clientH = sim.host('client', { addresses: ['203.0.113.5'] });
  sim.link('client', 'edge', { latencyMs: 3 });
  sim.link('edge', 'origin', { latencyMs: 2 });
  return { sim, edgeH, originH, clientH };
}

type World = ReturnType<typeof world>;

/** Runs the simulator until `p` settles (the sim only moves when asked). */
async function settle<T>(sim: World['sim'], p: Promise<T>): Promise<T> {
  await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  return p;
}

/** An edge on the edge host, recording machine state changes of the given engine, with `config` applied. */
async function startEdge(w: World, config: RefractConfig, engine: 'tcp' | 'udp') {
  const edge = new EdgeNode({ net: w.edgeH, log: pino({ level: 'silent' }) }, config);
  const states: MachineStateChange[] = [];
  edge[engine].states$.subscribe((s) => states.push(s));
  await settle(w.sim, edge.apply(config));
  return { edge, states, stop: () => settle(w.sim, edge.shutdown(0)) };
}

test('a TCP connection reports each machine state on states$, once per change, and no bytes', async () => {
  const w = world();
  const { sim, originH, clientH } = w;
  await originH.listenTcp({ host: '198.51.100.2', port: 7000 }, (c) => {
    c.setHandlers({ data: (d) => c.write(d), end: () => c.end() });
  });
  const config = mustConfig({
    edge: { addresses: ['198.51.100.1'] },
    apps: [{ protocol: 'tcp/80', dns: { name: 'echo.example.test' }, origin_direct: ['tcp://198.51.100.2:7000'] }],
  });
  const { states, stop } = await startEdge(w, config, 'tcp');

  let echoed = 0;
  const c = clientH.connectTcp({ host: '198.51.100.1', port: 80 });
  c.setHandlers({
    connect: () => {
      for (let i = 0; i < 50; i++) c.write(enc.encode('0123456789'));
      c.end();
    },
    data: (d) => void (echoed += d.length),
  });
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });

  assert.equal(echoed, 500);
  assert.deepEqual(
    states.map((s) => [s.from, s.to, s.event]),
    [
      ['', '"accepted"', 'xstate.init'],
      ['"accepted"', '"clientTls"', 'CONN.ROUTED'],
      ['"clientTls"', '"resolving"', 'TLS.SKIPPED'],
      ['"resolving"', '"connecting"', 'ORIGIN.RESOLVED'],
      ['"connecting"', '"originTls"', 'UPSTREAM.CONNECTED'],
      ['"originTls"', '{"established":{"c2s":"open","s2c":"open"}}', 'TLS.SKIPPED'],
      ['{"established":{"c2s":"open","s2c":"open"}}', '{"established":{"c2s":"ended","s2c":"open"}}', 'SPLICE.C2S_END'],
      ['{"established":{"c2s":"ended","s2c":"open"}}', '{"established":{"c2s":"ended","s2c":"ended"}}', 'SPLICE.S2C_END'],
      ['{"established":{"c2s":"ended","s2c":"ended"}}', '"closed"', 'SPLICE.CLOSED'],
    ],
  );
  assert.ok(states.every((s) => s.proto === 'tcp' && s.conn === 1 && s.app === config.apps[0]!.id));
  assert.ok(states.every((s, i) => i === 0 || s.t >= states[i - 1]!.t), 'in time order');

  await stop();
  assert.equal(sim.clock.pendingTimers(), 0);
});

test('a refused origin and a drain deadline reach the machine through its streams (states$ shows the path)', async () => {
  const w = world();
  const { sim, originH, clientH } = w;
  await originH.listenTcp({ host: '198.51.100.2', port: 7000 }, (c) => c.setHandlers({ data: () => {} }));
  const refusedApp = { protocol: 'tcp/81', dns: { name: 'refused.example.test' }, origin_direct: ['tcp://198.51.100.2:7999'] };
  const heldApp = { protocol: 'tcp/82', dns: { name: 'held.example.test' }, origin_direct: ['tcp://198.51.100.2:7000'] };
  const config = mustConfig({ edge: { addresses: ['198.51.100.1'], drain_timeout_ms: 5_000 }, apps: [refusedApp, heldApp] });
  const { edge, states, stop } = await startEdge(w, config, 'tcp');
  const refused = clientH.connectTcp({ host: '198.51.100.1', port: 81 });
  refused.setHandlers({ data: () => {} });
  const held = clientH.connectTcp({ host: '198.51.100.1', port: 82 });
  held.setHandlers({ data: () => {} });
  await sim.clock.advanceByAsync(1_000); // both decided, the held one established (idle timeout: 400 s)
  // Removing the held app drains its connection; the deadline arrives on control$.
  const removed = edge.apply(mustConfig({ edge: { addresses: ['198.51.100.1'], drain_timeout_ms: 5_000 }, apps: [refusedApp] }));
  await sim.clock.advanceByAsync(1_000);
  await removed;
  await sim.clock.advanceByAsync(5_000);
  const path = (conn: number) => states.filter((s) => s.conn === conn).map((s) => s.event);
  assert.deepEqual(path(1), ['xstate.init', 'CONN.ROUTED', 'TLS.SKIPPED', 'ORIGIN.RESOLVED', 'UPSTREAM.EXHAUSTED']);
  assert.deepEqual(path(2), ['xstate.init', 'CONN.ROUTED', 'TLS.SKIPPED', 'ORIGIN.RESOLVED', 'UPSTREAM.CONNECTED', 'TLS.SKIPPED', 'CONN.DRAIN_DEADLINE']);
  assert.deepEqual(edge.tcp.stats.closed_by_status, { 200: 1, 521: 1 });
  await stop();
});

test('a UDP flow reports opening, active and closed on states$', async () => {
  const w = world();
  const { sim, originH, clientH } = w;
  const origin = await originH.bindUdp({ host: '198.51.100.2', port: 5300 });
  origin.setHandler((m) => origin.send(m.data, m.remote.port, m.remote.address));
  const config = mustConfig({
    edge: { addresses: ['198.51.100.1'], udp_idle_timeout_ms: 10_000 },
    apps: [{ protocol: 'udp/53', dns: { name: 'dns.example.test' }, origin_direct: ['udp://198.51.100.2:5300'] }],
  });
  const { states, stop } = await startEdge(w, config, 'udp');
  const s = await clientH.bindUdp({ host: '203.0.113.5', port: 0 });
  let replies = 0;
  s.setHandler(() => replies++);
  for (let i = 0; i < 5; i++) s.send(enc.encode(`q${i}`), 53, '198.51.100.1');
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
  s.close();
  assert.equal(replies, 5);
  assert.deepEqual(
    states.map((x) => [x.proto, x.to, x.event]),
    [
      ['udp', '"opening"', 'xstate.init'],
      ['udp', '"active"', 'UPSTREAM.READY'],
      ['udp', '"closed"', 'FLOW.IDLE'],
    ],
  );
  await stop();
});

test('EdgeNode.follow applies snapshots in order and reports each: applied, rejected (port taken), applied', async () => {
  const { sim, edgeH } = world();
  const base = { edge: { addresses: ['198.51.100.1'] } };
  const app = (port: number) => ({ protocol: `tcp/${port}`, dns: { name: `p${port}.example.test` }, origin_direct: ['tcp://198.51.100.2:7000'] });
  const first = mustConfig({ ...base, apps: [app(80)] });
  const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, first);
  // Something else holds port 81 on the edge host, so the second snapshot cannot bind.
  const squatter = await edgeH.listenTcp({ host: '198.51.100.1', port: 81 }, () => {});
  const snapshots$ = new Subject<RefractConfig>();
  const results = firstValueFrom(edge.follow(snapshots$).pipe(toArray()));
  snapshots$.next(first);
  snapshots$.next(mustConfig({ ...base, apps: [app(80), app(81)] }));
  snapshots$.next(mustConfig({ ...base, apps: [app(82)] }));
  snapshots$.complete();
  for (let i = 0; i < 5; i++) await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  const r: FollowResult[] = await results;
  assert.deepEqual(r.map((x) => x.ok), [true, false, true]);
  assert.equal(r[1]!.ok ? '' : (r[1]!.error as { code: string }).code, 'E_LISTEN_ADDRESS_IN_USE');
  const third = r[2]!;
  assert.ok(third.ok);
  assert.deepEqual([third.result.added.length, third.result.removed], [1, [first.apps[0]!.id]]);
  assert.deepEqual(edge.listeners().map((l) => l.port), [82]);
  await squatter.close();
  await settle(sim, edge.shutdown(0));
});

test('closings$ carries the closing events only, and with no events$ listener the engine builds no connect event', async () => {
  const w = world();
  const { sim, originH, clientH } = w;
  await originH.listenTcp({ host: '198.51.100.2', port: 7000 }, (c) => {
    c.setHandlers({ data: (d) => c.write(d), end: () => c.end() });
  });
  const config = mustConfig({
    edge: { addresses: ['198.51.100.1'] },
    apps: [{ protocol: 'tcp/80', dns: { name: 'echo.example.test' }, origin_direct: ['tcp://198.51.100.2:7000'] }],
  });
  const { edge, stop } = await startEdge(w, config, 'tcp');
  const closings: string[] = [];
  edge.events.closings$.subscribe((e) => closings.push(`${e.Event} ${e.Status}`));
  assert.equal(edge.events.observed, true);
  assert.equal(edge.events.observedFor('connect'), false, 'a closings$ listener does not want connect events');
  assert.equal(edge.events.observedFor('disconnect'), true);
  const once = (): void => {
    const c = clientH.connectTcp({ host: '198.51.100.1', port: 80 });
    c.setHandlers({ connect: () => (c.write(enc.encode('ping')), c.end()), data: () => {} });
  };
  once();
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
  assert.deepEqual(closings, ['disconnect 200']);
  // With an events$ listener too, both streams see the second connection: events$ both events, closings$ one.
  const all: string[] = [];
  edge.events.events$.subscribe((e) => all.push(`${e.Event} ${e.Status}`));
  assert.equal(edge.events.observedFor('connect'), true);
  once();
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
  assert.deepEqual(all, ['connect 0', 'disconnect 200']);
  assert.deepEqual(closings, ['disconnect 200', 'disconnect 200']);
  await stop();
});
