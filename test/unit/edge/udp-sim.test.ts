/**
 * The same UDP engine on the simulator: flow creation, reply routing to the right client, SPP both ways, idle
 * expiry in virtual time, and nothing left afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createSim } from '../../../src/net/sim/index.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { mustConfig } from '../../helpers/edge.ts';
import { decodeSpp, encodeSpp } from '../../../src/core/spp.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';
import type { UdpSocket } from '../../../src/net/ports.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

test('udp in the simulator: SPP flows per client, replies routed back, idle expiry in virtual time', async () => {
  const sim = createSim({ seed: 42 });
  const edgeH = sim.host('edge', { addresses: ['198.51.100.1'] });
  const originH = sim.host('origin', { addresses: ['198.51.100.2'] });
  const clients = [sim.host('c1', { addresses: ['203.0.113.1'] }), sim.host('c2', { addresses: ['203.0.113.2'] })];
  sim.link('c1', 'edge', { latencyMs: 5 });
  sim.link('c2', 'edge', { latencyMs: 7 });

  const origin = await originH.bindUdp({ host: '198.51.100.2', port: 5300 });
  origin.setHandler((m) => {
    const s = decodeSpp(m.data);
    if (s.kind !== 'ok') return;
    origin.send(encodeSpp({ client: s.client, proxy: s.proxy }, enc.encode(`${s.client.address} said ${dec.decode(s.payload)}`)), m.remote.port, m.remote.address);
  });

  const config = mustConfig({
    edge: { addresses: ['198.51.100.1'], udp_idle_timeout_ms: 60_000 },
    apps: [{ protocol: 'udp/53', dns: { name: 'dns.example.test' }, origin_direct: ['udp://198.51.100.2:5300'], proxy_protocol: 'simple' }],
  });
  const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, config);
  const events: SpectrumEvent[] = [];
  edge.events.events$.subscribe((e) => events.push(e));
  const applied = edge.apply(config);
  await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  await applied;

  const received: string[][] = [[], []];
  for (const [i, h] of clients.entries()) {
    const s = await h.bindUdp({ host: h.name === 'c1' ? '203.0.113.1' : '203.0.113.2', port: 0 });
    s.setHandler((m) => received[i]!.push(dec.decode(m.data)));
    s.send(enc.encode(`hello ${i}`), 53, '198.51.100.1');
    sim.clock.setTimer(10_000, () => s.send(enc.encode(`later ${i}`), 53, '198.51.100.1'));
    sim.clock.setTimer(200_000, () => s.close());
  }
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });

  assert.deepEqual(received, [
    ['203.0.113.1 said hello 0', '203.0.113.1 said later 0'],
    ['203.0.113.2 said hello 1', '203.0.113.2 said later 1'],
  ]);
  const closes = events.filter((e) => e.Event === 'disconnect');
  assert.equal(closes.length, 2);
  for (const c of closes) {
    assert.equal(c.CloseReason, 'idle_timeout');
    assert.equal(c.ClientPackets, 2);
    assert.equal(c.OriginPackets, 2);
    // Idle for 60 s after the last datagram at ~10 s.
    assert.ok(c.DurationMs >= 70_000 && c.DurationMs < 71_000, `flow lasted ${c.DurationMs} ms`);
  }
  assert.equal(edge.udp.activeCount, 0);
  const done = edge.shutdown(0);
  await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  await done;
  assert.equal(sim.clock.pendingTimers(), 0);
  assert.deepEqual(sim.netstat().udp.filter((u) => u.host === 'edge'), []);
});

/**
 * An edge host with `edgeAddresses`, two UDP echo origins on 198.51.100.2 (5301 answers `blue:…`, 5302 `green:…`),
 * a client host with two addresses linked to the edge, and `app(id, originPort)`: udp/53 to one of the origins.
 */
async function blueGreenWorld(seed: number, edgeAddresses: string[]) {
  const sim = createSim({ seed });
  const edgeH = sim.host('edge', { addresses: edgeAddresses });
  const origins = sim.host('origins', { addresses: ['198.51.100.2'] });
  const client = sim.host('c', { addresses: ['203.0.113.1', '203.0.113.2'] });
  sim.link('c', 'edge', { latencyMs: 2 });
  for (const [port, name] of [
    [5301, 'blue'],
    [5302, 'green'],
  ] as const) {
    const o = await origins.bindUdp({ host: '198.51.100.2', port });
    o.setHandler((m) => o.send(enc.encode(`${name}:${dec.decode(m.data)}`), m.remote.port, m.remote.address));
  }
  const app = (id: string, originPort: number) => ({ id, protocol: 'udp/53', dns: { name: `${id}.example.test` }, origin_direct: [`udp://198.51.100.2:${originPort}`] });
  return { sim, edgeH, client, app };
}

test('udp: an app added on the port of a removed, still-draining UDP app takes its socket over', async () => {
  const { sim, edgeH, client, app } = await blueGreenWorld(7, ['198.51.100.1']);
  const cfg = (apps: unknown[]) => mustConfig({ edge: { addresses: ['198.51.100.1'], drain_timeout_ms: 30_000, udp_idle_timeout_ms: 120_000 }, apps });
  const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, cfg([app('blue', 5301)]));
  // Runs the simulation for 1 s of virtual time (well inside the 30 s drain), then settles `p`.
  const step = async <T>(p: Promise<T>): Promise<T> => {
    await sim.runUntilIdleAsync({ maxSteps: 100_000, maxTime: 1_000 });
    return p;
  };
  await step(edge.apply(cfg([app('blue', 5301)])));

  const received: string[][] = [[], []];
  const socks = await Promise.all(['203.0.113.1', '203.0.113.2'].map((host) => client.bindUdp({ host, port: 0 })));
  socks.forEach((s, i) => s.setHandler((m) => received[i]!.push(dec.decode(m.data))));
  socks[0]!.send(enc.encode('a'), 53, '198.51.100.1');
  await step(Promise.resolve());

  // blue is removed (its flow drains for 30 s) and green takes udp/53 at once: no E_LISTEN_ADDRESS_IN_USE.
  await step(edge.apply(cfg([])));
  const r = await step(edge.apply(cfg([app('green', 5302)])));
  assert.deepEqual(r.added, ['green']);
  assert.deepEqual(edge.listeners(), [{ protocol: 'udp', host: '198.51.100.1', port: 53, app: 'green' }]);
  socks[0]!.send(enc.encode('b'), 53, '198.51.100.1'); // the draining flow: still blue
  socks[1]!.send(enc.encode('c'), 53, '198.51.100.1'); // a new source: green
  await step(Promise.resolve());
  assert.deepEqual(received, [['blue:a', 'blue:b'], ['green:c']]);

  // Past blue's drain deadline the socket stays open for green (the close timer was cancelled).
  sim.clock.setTimer(40_000, () => socks[1]!.send(enc.encode('d'), 53, '198.51.100.1'));
  await sim.runUntilIdleAsync({ maxSteps: 100_000, maxTime: 41_000 });
  assert.deepEqual(received[1], ['green:c', 'green:d']);
  for (const s of socks) s.close();
  const done = edge.shutdown(0);
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
  await done;
  assert.deepEqual(sim.netstat().udp.filter((u) => u.host === 'edge'), []);
});

test('udp with edge.pools: a removed app\'s address is held while its flow drains, then a new name takes it', async () => {
  const { sim, edgeH, client, app } = await blueGreenWorld(8, ['10.9.0.1', '10.9.0.2']);
  // 10.9.0.0/30: two usable addresses, .1 and .2; edge.addresses (.2) is never handed out, so every name gets .1.
  const cfg = (apps: unknown[]) => mustConfig({ edge: { addresses: ['10.9.0.2'], pools: { ipv4: ['10.9.0.0/30'] }, drain_timeout_ms: 30_000, udp_idle_timeout_ms: 120_000 }, apps });
  const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, cfg([app('blue', 5301)]));
  const step = async <T>(p: Promise<T>): Promise<T> => {
    await sim.runUntilIdleAsync({ maxSteps: 100_000, maxTime: 1_000 });
    return p;
  };
  await step(edge.apply(cfg([app('blue', 5301)])));
  assert.deepEqual(edge.listeners(), [{ protocol: 'udp', host: '10.9.0.1', port: 53, app: 'blue' }]);
  assert.deepEqual(edge.config?.edgeIps?.names, { 'blue.example.test': { ipv4: '10.9.0.1' } });

  const received: string[][] = [[], []];
  const socks = await Promise.all(['203.0.113.1', '203.0.113.2'].map((host) => client.bindUdp({ host, port: 0 })));
  socks.forEach((s, i) => s.setHandler((m) => received[i]!.push(dec.decode(m.data))));
  socks[0]!.send(enc.encode('a'), 53, '10.9.0.1');
  await step(Promise.resolve());

  // blue is removed (its flow drains): its 10.9.0.1 is held until the drain deadline, so green, another name, finds
  // the pool empty and nothing changes; the draining flow still reaches blue.
  await step(edge.apply(cfg([])));
  assert.deepEqual(Object.keys(edge.config?.edgeIps?.held ?? {}), ['10.9.0.1']);
  const refused = edge.apply(cfg([app('green', 5302)]));
  refused.catch(() => undefined);
  await sim.runUntilIdleAsync({ maxSteps: 100_000, maxTime: 1_000 });
  await assert.rejects(refused, { code: 'E_EDGE_POOL_EXHAUSTED' });
  socks[0]!.send(enc.encode('b'), 53, '10.9.0.1'); // the draining flow: still blue
  await step(Promise.resolve());
  assert.deepEqual(received, [['blue:a', 'blue:b'], []]);
  // After the drain deadline (30 s) the flow is closed and the address is free: green takes it.
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 31_000 });
  const r = await step(edge.apply(cfg([app('green', 5302)])));
  assert.deepEqual(r.added, ['green']);
  assert.deepEqual(edge.listeners(), [{ protocol: 'udp', host: '10.9.0.1', port: 53, app: 'green' }]);
  assert.equal(edge.config?.edgeIps?.held, undefined);
  socks[1]!.send(enc.encode('c'), 53, '10.9.0.1'); // a new source: green
  socks[1]!.send(enc.encode('x'), 53, '10.9.0.2'); // edge.addresses: nothing listens there
  await step(Promise.resolve());
  assert.deepEqual(received, [['blue:a', 'blue:b'], ['green:c']]);
  for (const s of socks) s.close();
  const done = edge.shutdown(0);
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
  await done;
  assert.deepEqual(sim.netstat().udp.filter((u) => u.host === 'edge'), []);
});

test('udp in the simulator: clients on one port from several addresses keep separate flows, whichever closes first', async () => {
  // The engine indexes an edge socket's flows by client port and chains the addresses sharing one: the middle of
  // such a chain closing (c2 goes idle) must leave the others routed, and c2's next datagram opens a fresh flow.
  const sim = createSim({ seed: 7 });
  const edgeH = sim.host('edge', { addresses: ['198.51.100.1'] });
  const originH = sim.host('origin', { addresses: ['198.51.100.2'] });
  const names = ['c1', 'c2', 'c3'];
  const hosts = names.map((n, i) => sim.host(n, { addresses: [`203.0.113.${i + 1}`] }));
  for (const n of names) sim.link(n, 'edge', { latencyMs: 3 });
  const origin = await originH.bindUdp({ host: '198.51.100.2', port: 5300 });
  origin.setHandler((m) => origin.send(m.data, m.remote.port, m.remote.address));
  const config = mustConfig({
    edge: { addresses: ['198.51.100.1'], udp_idle_timeout_ms: 10_000 },
    apps: [{ protocol: 'udp/53', dns: { name: 'dns.example.test' }, origin_direct: ['udp://198.51.100.2:5300'] }],
  });
  const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, config);
  const events: SpectrumEvent[] = [];
  edge.events.events$.subscribe((e) => events.push(e));
  const applied = edge.apply(config);
  await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  await applied;

  const received: string[][] = [[], [], []];
  // c1, c2, c3 open in that order (the chain is c3 → c2 → c1); c2 goes idle at ~10 s while the others keep talking;
  // after that c1 and c3 still reach their flows, and c2 opens a new one.
  const plan: Array<[number, number, string]> = [
    [0, 0, 'a'], [1, 1, 'a'], [2, 2, 'a'],
    [5_000, 0, 'b'], [5_001, 2, 'b'],
    [12_000, 0, 'c'], [12_001, 2, 'c'],
    [13_000, 1, 'd'],
  ];
  const socks: UdpSocket[] = [];
  for (const [i, h] of hosts.entries()) {
    const s = await h.bindUdp({ host: `203.0.113.${i + 1}`, port: 40_000 });
    s.setHandler((m) => received[i]!.push(dec.decode(m.data)));
    socks.push(s);
  }
  for (const [at, i, what] of plan) sim.clock.setTimer(at, () => socks[i]!.send(enc.encode(`${names[i]} ${what}`), 53, '198.51.100.1'));
  sim.clock.setTimer(100_000, () => socks.forEach((s) => s.close()));
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });

  assert.deepEqual(received, [['c1 a', 'c1 b', 'c1 c'], ['c2 a', 'c2 d'], ['c3 a', 'c3 b', 'c3 c']]);
  assert.equal(edge.udp.stats.udp_flows_total, 4);
  const closes = events.filter((e) => e.Event === 'disconnect').map((e) => `${e.ClientIP}:${e.ClientPort} ${e.ClientPackets}`);
  assert.deepEqual(closes.sort(), ['203.0.113.1:40000 3', '203.0.113.2:40000 1', '203.0.113.2:40000 1', '203.0.113.3:40000 3']);
  assert.equal(edge.udp.activeCount, 0);
  const done = edge.shutdown(0);
  await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  await done;
});
