import test from 'node:test';
import assert from 'node:assert/strict';
import { type Conn } from '../../../src/net/ports.ts';
import { assertNoLeaks, bytes, closeListeners, echo, listen, record, settle, world } from './harness.ts';

const fastRetries = { dataRetries: 3, rtoMinMs: 100 };

test('a partition in the middle of a stream delays the bytes; after healing each arrives exactly once, in order', async () => {
  const { sim, client, server } = world({ defaultLink: { latencyMs: 1 } });
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => (srv = record(c, sim, { onEnd: () => c.end() })));
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 50; i++) {
    sim.clock.setTimer(100 * (i + 1), () => {
      const b = bytes(700, i);
      sent.push(b);
      conn.write(b);
      if (i === 49) conn.end();
    });
  }
  sim.clock.setTimer(1_000, () => sim.partition('client', 'server'));
  sim.clock.setTimer(3_000, () => sim.heal('client', 'server'));
  sim.clock.advanceBy(2_900);
  const during = srv!.received().length;
  assert.ok(during <= 10 * 700 + 700, `little got through during the partition: ${during}`);
  settle(sim);
  assert.deepEqual(srv!.received(), Buffer.concat(sent));
  assert.deepEqual(r.events, ['connect', 'end', 'close:false']);
  assert.ok(sim.link('client', 'server').stats.blockedDrops > 0);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('a partition longer than the retransmission budget fails the sender with ETIMEDOUT (read)', async () => {
  const { sim, client, server } = world({ tcp: fastRetries });
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => (srv = record(c, sim)));
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  settle(sim);
  sim.partition('client', 'server');
  const t0 = sim.clock.now();
  conn.write(Buffer.from('into the void'));
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'error:ETIMEDOUT', 'close:true']);
  assert.equal(r.errors[0]!.syscall, 'read');
  const elapsed = r.times[1]! - t0;
  assert.ok(Math.abs(elapsed - (100 + 200 + 400 + 800)) < 1, `timed out after ${elapsed} ms`);
  assert.deepEqual(srv!.events, [], 'the other side never hears of it');
});

test('the default retransmission budget is Linux tcp_retries2 = 15 (about 924.6 s)', async () => {
  const { sim, client, server } = world();
  await listen(server, 80);
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  settle(sim);
  sim.partition('client', 'server');
  const t0 = sim.clock.now();
  conn.write(Buffer.from('x'));
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'error:ETIMEDOUT', 'close:true']);
  const elapsed = (r.times[1]! - t0) / 1_000;
  assert.ok(Math.abs(elapsed - 924.6) < 0.1, `timed out after ${elapsed} s`);
});

test('when only the return path is cut, the unacknowledged sender times out while the receiver got the bytes', async () => {
  const { sim, client, server } = world({ tcp: fastRetries });
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => (srv = record(c, sim)));
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  settle(sim);
  sim.partition('client', 'server', { direction: 'b->a' });
  conn.write(Buffer.from('one way'));
  settle(sim);
  assert.equal(srv!.received().toString(), 'one way');
  assert.deepEqual(r.events, ['connect', 'error:ETIMEDOUT', 'close:true']);
});

test('a crashed peer is silent: an idle connection notices nothing, a writing one times out', async () => {
  const { sim, client, server } = world({ tcp: fastRetries });
  await listen(server, 80);
  const idle = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const ri = record(idle, sim);
  const busy = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const rb = record(busy, sim);
  settle(sim);
  sim.crash('server');
  sim.clock.advanceBy(3_600_000);
  assert.deepEqual(ri.events, ['connect']);
  busy.write(Buffer.from('hello?'));
  settle(sim);
  assert.deepEqual(rb.events, ['connect', 'error:ETIMEDOUT', 'close:true']);
  assert.deepEqual(ri.events, ['connect']);
  assert.deepEqual(sim.netstat().listeners, [], 'listeners die with the host');
});

test('after a crash and restart the peer is reset on its next write, and the app must listen again', async () => {
  const { sim, client, server } = world();
  const serverSide: ReturnType<typeof record>[] = [];
  await listen(server, 80, (c) => serverSide.push(record(c, sim)));
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  settle(sim);
  sim.crash('server');
  sim.restart('server');
  conn.write(Buffer.from('are you there'));
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'error:ECONNRESET', 'close:true']);
  assert.deepEqual(serverSide[0]!.events, [], 'the crashed process saw nothing');

  const refused = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const rr = record(refused, sim);
  settle(sim);
  assert.deepEqual(rr.events, ['error:ECONNREFUSED', 'close:true']);

  await listen(server, 80, echo);
  const again = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const ra = record(again, sim, { onConnect: () => again.end() });
  settle(sim);
  assert.deepEqual(ra.events, ['connect', 'end', 'close:false']);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('a crashed host runs none of its callbacks or timers; timers set after the restart run', async () => {
  const { sim, client, server } = world();
  const fired: string[] = [];
  let srv: Conn | undefined;
  await listen(server, 80, (c) => {
    srv = c;
    c.setHandlers({ data: () => fired.push('data'), close: () => fired.push('close') });
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  conn.setHandlers({ connect: () => {} });
  settle(sim);
  assert.ok(srv !== undefined);
  server.clock.setTimer(5_000, () => fired.push('old timer'));
  sim.crash('server');
  conn.write(Buffer.from('lost'));
  sim.clock.advanceBy(1_000);
  sim.restart('server');
  server.clock.setTimer(1, () => fired.push('new timer'));
  settle(sim);
  assert.deepEqual(fired, ['new timer']);
  assert.throws(() => {
    sim.crash('server');
    server.connectTcp({ host: '10.0.0.1', port: 1 });
  }, /down/);
});

test('clock skew shifts a host wall clock only; monotonic time is shared and a skew can step backwards', () => {
  const { sim, client, server } = world();
  const skewed = sim.host('skewed', { addresses: ['10.0.0.9'], clockSkewMs: 250_000 });
  sim.clock.advanceBy(1_000);
  assert.equal(skewed.clock.epochMs() - client.clock.epochMs(), 250_000);
  assert.equal(skewed.clock.now(), client.clock.now());
  sim.setClockSkew('server', -30_000);
  assert.equal(server.clock.epochMs(), sim.clock.epochMs() - 30_000);
  assert.equal(server.random.next() === client.random.next(), false, 'hosts draw from their own streams');
});

test('isolating a host cuts it off from every other host until healed', async () => {
  const { sim, client, server } = world({ tcp: { synRetries: 1 } });
  const third = sim.host('third', { addresses: ['10.0.0.3'] });
  await listen(server, 80, echo);
  sim.isolate('server');
  const a = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const b = third.connectTcp({ host: '10.0.0.2', port: 80 });
  const ra = record(a, sim);
  const rb = record(b, sim);
  settle(sim);
  assert.deepEqual(ra.events, ['error:ETIMEDOUT', 'close:true']);
  assert.deepEqual(rb.events, ['error:ETIMEDOUT', 'close:true']);
  sim.heal();
  const c = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const rc = record(c, sim, { onConnect: () => c.end() });
  settle(sim);
  assert.deepEqual(rc.events, ['connect', 'end', 'close:false']);
});

test('link parameters are validated with errors that name the field', () => {
  const { sim } = world();
  assert.throws(() => sim.link('client', 'server', { loss: 1.5 }), /loss/);
  assert.throws(() => sim.link('client', 'server', { latencyMs: -1 }), /latencyMs/);
  assert.throws(() => sim.link('client', 'server', { slicer: { minBytes: 4, maxBytes: 2 } }), /slicer/);
  assert.throws(() => sim.link('client', 'nobody'), /no host/);
  assert.throws(() => sim.host('dup', { addresses: ['10.0.0.1'] }), /already belongs/);
});

// ── middlebox faults on a link (LinkParams finDelayMs, swallow, cutAfterBytes, resetAfterMs) ───────────────────────

/** A server that writes `n` bytes on accept (and ends when `end`), recorded; the client connection, recorded. */
async function banner(n: number, end: boolean, link: Parameters<ReturnType<typeof world>['sim']['link']>[2]) {
  const { sim, client, server } = world({ defaultLink: { latencyMs: 1 }, tcp: { finTimeoutMs: 1_000 } });
  sim.link('server', 'client', link, { direction: 'a->b' });
  let srv: ReturnType<typeof record> | undefined;
  let srvConn: Conn | undefined;
  await listen(server, 80, (c) => {
    srvConn = c;
    srv = record(c, sim, { onEnd: () => c.end() });
    c.write(bytes(n));
    if (end) c.end();
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const cl = record(conn, sim, { onEnd: () => conn.end() });
  return { sim, conn, cl, srv: () => srv!, srvConn: () => srvConn! };
}

test('finDelayMs holds a FIN back by that long; the bytes before it are not delayed', async () => {
  const w = await banner(500, true, { finDelayMs: 300 });
  settle(w.sim);
  assert.deepEqual(w.cl.events, ['connect', 'data', 'end', 'close:false']);
  assert.equal(w.cl.received().length, 500);
  const [, data, end] = w.cl.times;
  assert.ok(Math.abs(end! - data! - 300) < 0.01, `FIN ${end! - data!} ms after the data`);
  await closeListeners(w.sim);
  assertNoLeaks(w.sim);
});

test("swallow 'fin': the receiver never sees the end; its own FIN still reaches the sender (half-open)", async () => {
  const w = await banner(500, true, { swallow: 'fin' });
  w.sim.runUntilIdle({ maxTime: 10_000 });
  assert.deepEqual(w.cl.events, ['connect', 'data'], 'no end for the client');
  assert.deepEqual(w.srv().events, [], 'the server is still waiting for the client');
  w.conn.end();
  settle(w.sim);
  assert.deepEqual(w.srv().events, ['end', 'close:false']);
  assert.deepEqual(w.cl.events, ['connect', 'data'], 'the client ended but never got the end: open');
  w.conn.destroy();
  settle(w.sim);
  await closeListeners(w.sim);
  assertNoLeaks(w.sim);
});

test("swallow 'all': the handshake completes, every byte is acknowledged and none delivered, and the sender never times out", async () => {
  const w = await banner(100_000, false, { swallow: 'all' });
  w.sim.runUntilIdle({ maxTime: 2_000_000 });
  assert.deepEqual(w.cl.events, ['connect']);
  assert.equal(w.srvConn().bytesWritten, 100_000);
  assert.deepEqual(w.srv().events, [], 'no ETIMEDOUT: the middlebox acknowledged everything');
  w.srvConn().destroy();
  w.conn.destroy();
  settle(w.sim);
  await closeListeners(w.sim);
  assertNoLeaks(w.sim);
});

for (const how of ['fin', 'rst'] as const) {
  test(`cutAfterBytes with ${how}: the receiver gets exactly the first N bytes, then ${how === 'fin' ? 'end' : 'ECONNRESET'}; the sender is reset`, async () => {
    const w = await banner(10_000, false, { cutAfterBytes: { bytes: 1_000, with: how } });
    settle(w.sim);
    assert.deepEqual(w.cl.received(), Buffer.from(bytes(10_000)).subarray(0, 1_000));
    assert.deepEqual(w.cl.events, how === 'fin' ? ['connect', 'data', 'end', 'close:false'] : ['connect', 'data', 'error:ECONNRESET', 'close:true']);
    assert.deepEqual(w.srv().events, ['error:ECONNRESET', 'close:true']);
    await closeListeners(w.sim);
    assertNoLeaks(w.sim);
  });
}

test('resetAfterMs resets both ends that long after the handshake', async () => {
  const w = await banner(10, false, { resetAfterMs: 250 });
  settle(w.sim);
  assert.deepEqual(w.cl.events, ['connect', 'data', 'error:ECONNRESET', 'close:true']);
  assert.deepEqual(w.srv().events, ['error:ECONNRESET', 'close:true']);
  assert.ok(Math.abs(w.cl.times[2]! - w.cl.times[0]! - 250) < 0.01, `reset ${w.cl.times[2]! - w.cl.times[0]!} ms after connect`);
  await closeListeners(w.sim);
  assertNoLeaks(w.sim);
});

test('middlebox link parameters are validated with errors that name the field', () => {
  const { sim } = world();
  assert.throws(() => sim.link('client', 'server', { finDelayMs: -1 }), /finDelayMs/);
  assert.throws(() => sim.link('client', 'server', { swallow: 'some' as 'fin' }), /swallow/);
  assert.throws(() => sim.link('client', 'server', { cutAfterBytes: { bytes: -1, with: 'fin' } }), /cutAfterBytes/);
  assert.throws(() => sim.link('client', 'server', { cutAfterBytes: { bytes: 5, with: 'close' as 'fin' } }), /cutAfterBytes/);
  assert.throws(() => sim.link('client', 'server', { resetAfterMs: -5 }), /resetAfterMs/);
});
