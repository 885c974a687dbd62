import test from 'node:test';
import assert from 'node:assert/strict';
import { type Datagram } from '../../../src/net/ports.ts';
import { settle, world } from './harness.ts';

test('a datagram arrives after the link latency, with the sender address and port', async () => {
  const { sim, client, server } = world({ defaultLink: { latencyMs: 7 } });
  const srv = await server.bindUdp({ host: '0.0.0.0', port: 53 });
  const got: Array<{ at: number; msg: Datagram }> = [];
  srv.setHandler((msg) => got.push({ at: sim.clock.now(), msg }));
  const cli = await client.bindUdp({ host: '0.0.0.0', port: 0 });
  assert.deepEqual(cli.local, { address: '0.0.0.0', port: 49152, family: 'IPv4' });
  cli.send(Buffer.from('query'), 53, '10.0.0.2');
  settle(sim);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.at, 7);
  assert.equal(Buffer.from(got[0]!.msg.data).toString(), 'query');
  assert.deepEqual(got[0]!.msg.remote, { address: '10.0.0.1', port: 49152, family: 'IPv4' });
});

test('UDP binds follow Linux: EADDRINUSE on overlap, EADDRNOTAVAIL for a foreign address', async () => {
  const { server } = world();
  const s = await server.bindUdp({ host: '10.0.0.2', port: 5000 });
  await assert.rejects(server.bindUdp({ host: '0.0.0.0', port: 5000 }), { code: 'EADDRINUSE', syscall: 'bind' });
  await assert.rejects(server.bindUdp({ host: '10.0.0.1', port: 5001 }), { code: 'EADDRNOTAVAIL', syscall: 'bind' });
  s.close();
  const again = await server.bindUdp({ host: '0.0.0.0', port: 5000 });
  assert.equal(again.local.port, 5000);
});

test('a closed UDP socket throws ERR_SOCKET_DGRAM_NOT_RUNNING on send and on a second close, as Node does', async () => {
  const { client } = world();
  const s = await client.bindUdp({ host: '0.0.0.0', port: 0 });
  assert.throws(() => s.send(Buffer.from('x'), 0, '10.0.0.2'), { code: 'ERR_SOCKET_BAD_PORT' });
  s.close();
  assert.throws(() => s.send(Buffer.from('x'), 53, '10.0.0.2'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
  assert.throws(() => s.close(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
});

test('a dual-stack UDP socket sees IPv4 senders as IPv4-mapped addresses', async () => {
  const { sim, client, server } = world();
  const srv = await server.bindUdp({ host: '::', port: 443 });
  const got: Datagram[] = [];
  srv.setHandler((m) => got.push(m));
  const c4 = await client.bindUdp({ host: '0.0.0.0', port: 0 });
  const c6 = await client.bindUdp({ host: '::', port: 0 });
  c4.send(Buffer.from('4'), 443, '10.0.0.2');
  c6.send(Buffer.from('6'), 443, 'fd00::2');
  settle(sim);
  assert.deepEqual(
    got.map((m) => m.remote),
    [
      { address: '::ffff:10.0.0.1', port: 49152, family: 'IPv6' },
      { address: 'fd00::1', port: 49153, family: 'IPv6' },
    ],
  );
});

test('datagrams to a closed port, across a partition or to a crashed host vanish without a trace', async () => {
  const { sim, client, server } = world();
  const srv = await server.bindUdp({ host: '0.0.0.0', port: 9 });
  let n = 0;
  srv.setHandler(() => n++);
  const cli = await client.bindUdp({ host: '0.0.0.0', port: 0 });
  cli.send(Buffer.from('closed port'), 10, '10.0.0.2');
  settle(sim);
  sim.partition('client', 'server', { direction: 'a->b' });
  cli.send(Buffer.from('partitioned'), 9, '10.0.0.2');
  settle(sim);
  sim.heal();
  cli.send(Buffer.from('ok'), 9, '10.0.0.2');
  settle(sim);
  assert.equal(n, 1);
  sim.crash('server');
  cli.send(Buffer.from('crashed'), 9, '10.0.0.2');
  settle(sim);
  assert.equal(n, 1);
  assert.equal(sim.link('client', 'server').stats.blockedDrops, 2);
});

test('a bandwidth-limited link drops datagrams that do not fit its queue', async () => {
  const { sim, client, server } = world();
  sim.link('client', 'server', { bandwidthBytesPerMs: 10, queueBytes: 1_000 });
  const srv = await server.bindUdp({ host: '0.0.0.0', port: 9 });
  const arrivals: number[] = [];
  srv.setHandler(() => arrivals.push(sim.clock.now()));
  const cli = await client.bindUdp({ host: '0.0.0.0', port: 0 });
  for (let i = 0; i < 20; i++) cli.send(new Uint8Array(400), 9, '10.0.0.2');
  settle(sim);
  // 400 B at 10 B/ms = 40 ms each. The queue counts every byte not yet serialised: two datagrams (800 B) fit in
  // 1,000 B, a third would make 1,200 B.
  assert.deepEqual(
    arrivals.map((t) => Math.round(t * 10) / 10),
    [40.1, 80.1],
  );
  assert.equal(sim.link('client', 'server').stats.queueDrops, 18);
});

test('loss, duplication and reordering on a fixed seed match their probabilities', async () => {
  const { sim, client, server } = world({ seed: 2026 });
  sim.link('client', 'server', { latencyMs: 10, loss: 0.1, duplicate: 0.05, reorder: 0.1, reorderDelayMs: 5 });
  const srv = await server.bindUdp({ host: '0.0.0.0', port: 9 });
  const seqs: number[] = [];
  srv.setHandler((m) => seqs.push(Buffer.from(m.data).readUInt32BE(0)));
  const cli = await client.bindUdp({ host: '0.0.0.0', port: 0 });
  const N = 10_000;
  for (let i = 0; i < N; i++) {
    sim.clock.setTimer(i, () => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i);
      cli.send(b, 9, '10.0.0.2');
    });
  }
  settle(sim);
  const unique = new Set(seqs).size;
  const dups = seqs.length - unique;
  let late = 0;
  let max = -1;
  for (const s of seqs) {
    if (s < max) late++;
    else max = s;
  }
  // Expected: 9,000 ± 90 delivered (3σ), 450 ± 65 duplicates, ≈ 900 arrivals behind a later datagram.
  assert.ok(Math.abs(unique - 9_000) < 90, `delivered ${unique}`);
  assert.ok(Math.abs(dups - 450) < 65, `duplicates ${dups}`);
  assert.ok(late > 700 && late < 1_100, `late arrivals ${late}`);
  const st = sim.link('client', 'server').stats;
  assert.equal(st.lost, N - unique);
  assert.equal(st.duplicated, dups);
});
