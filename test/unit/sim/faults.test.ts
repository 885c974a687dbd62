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
