// The simulator's descriptor limit (HostOptions.maxDescriptors): the real network's guard over the host's sockets.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createSim } from '../../../src/net/sim/index.ts';
import { type Conn, type NetError } from '../../../src/net/ports.ts';
import { record } from './harness.ts';

/** Runs the simulation `ms` of virtual time on (or until idle). */
function runFor(sim: ReturnType<typeof createSim>, ms: number): void {
  sim.runUntilIdle({ maxTime: ms });
}

function limitedWorld(maxDescriptors: number, descriptorReserve: number) {
  const sim = createSim({ seed: 1, defaultLink: { latencyMs: 1 } });
  const client = sim.host('client', { addresses: ['10.0.0.1'] });
  const server = sim.host('server', { addresses: ['10.0.0.2'], maxDescriptors, descriptorReserve });
  return { sim, client, server };
}

test('accepts short of the reserve are reset before the application sees them, counted, in one episode', async () => {
  const { sim, client, server } = limitedWorld(4, 1);
  const accepted: Conn[] = [];
  await server.listenTcp({ host: '10.0.0.2', port: 80 }, (c) => accepted.push(c));
  const conns = Array.from({ length: 5 }, () => client.connectTcp({ host: '10.0.0.2', port: 80 }));
  const recs = conns.map((c) => record(c, sim));
  runFor(sim, 30);
  // Listener 1 + two accepted = 3 = limit - reserve: the third is over, the guard pauses and refuses the rest.
  assert.equal(accepted.length, 2);
  const reset = recs.filter((r) => r.events.includes('error:ECONNRESET')).length;
  assert.equal(reset, 3);
  const t = server.descriptorTotals()!;
  assert.deepEqual({ acceptRefused: t.acceptRefused, upstreamFailed: t.upstreamFailed, episodes: t.episodes, lostUntraced: t.lostUntraced }, { acceptRefused: 3, upstreamFailed: 0, episodes: 1, lostUntraced: 0 });
  assert.equal(accepted.length + t.acceptRefused, conns.length);
  // Free them: the guard's probe resumes accepting, and a new connection is served.
  for (const c of accepted) c.destroy();
  runFor(sim, 3_000);
  assert.equal(server.descriptors?.paused, false);
  const late = client.connectTcp({ host: '10.0.0.2', port: 80 });
  record(late, sim);
  runFor(sim, 100);
  assert.equal(accepted.length, 3);
});

test('connects, binds and listens past the limit fail with EMFILE and count; an accept with none left is lost unseen', async () => {
  const { sim, client, server } = limitedWorld(3, 1);
  await server.listenTcp({ host: '10.0.0.2', port: 80 }, () => assert.fail('no connection should reach the application'));
  await server.bindUdp({ host: '10.0.0.2', port: 0 });
  await server.bindUdp({ host: '10.0.0.2', port: 0 });
  // 3 in use = the limit.
  await assert.rejects(server.bindUdp({ host: '10.0.0.2', port: 0 }), (e: NetError) => e.code === 'EMFILE' && e.syscall === 'bind');
  await assert.rejects(server.listenTcp({ host: '10.0.0.2', port: 81 }, () => {}), (e: NetError) => e.code === 'EMFILE' && e.syscall === 'listen');
  const out = server.connectTcp({ host: '10.0.0.1', port: 9 });
  const outRec = record(out, sim);
  const inbound = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const inRec = record(inbound, sim);
  runFor(sim, 50);
  assert.deepEqual(outRec.events, ['error:EMFILE', 'close:true']);
  assert.equal(outRec.errors[0]!.syscall, 'connect');
  // The kernel had no descriptor for the accept: the client is connected, then sees the end (libuv's close), and
  // nothing counts it but `lostUntraced` (what the guard exists to prevent on a real machine).
  assert.deepEqual(inRec.events, ['connect', 'end']);
  const t = server.descriptorTotals()!;
  assert.deepEqual({ acceptRefused: t.acceptRefused, upstreamFailed: t.upstreamFailed, lostUntraced: t.lostUntraced }, { acceptRefused: 0, upstreamFailed: 3, lostUntraced: 1 });
  assert.equal(t.episodes, 1);
});

test('a host without maxDescriptors has no guard and no limit', async () => {
  const sim = createSim({ seed: 1 });
  const h = sim.host('h', { addresses: ['10.0.0.3'] });
  for (let i = 0; i < 50; i++) await h.bindUdp({ host: '10.0.0.3', port: 0 });
  assert.equal(h.descriptorTotals(), undefined);
  assert.equal(h.descriptors, undefined);
});
