import test from 'node:test';
import assert from 'node:assert/strict';
import { type Conn } from '../../../src/net/ports.ts';
import { assertNoLeaks, closeListeners, echo, listen, record, settle, world } from './harness.ts';

test('connect fires after one round trip and the server accepts half a round trip later', async () => {
  const { sim, client, server } = world({ defaultLink: { latencyMs: 10 } });
  let acceptedAt = -1;
  await listen(server, 80, (c) => {
    acceptedAt = sim.clock.now();
    echo(c);
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim, { onConnect: () => conn.end() });
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'end', 'close:false']);
  assert.equal(r.times[0], 20);
  assert.equal(acceptedAt, 30);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('a port with no listener refuses: ECONNREFUSED from connect, then close(true), after one round trip', () => {
  const { sim, client } = world({ defaultLink: { latencyMs: 5 } });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 81 });
  const r = record(conn, sim);
  settle(sim);
  assert.deepEqual(r.events, ['error:ECONNREFUSED', 'close:true']);
  assert.equal(r.times[0], 10);
  const err = r.errors[0]!;
  assert.equal(err.syscall, 'connect');
  assert.equal(err.address, '10.0.0.2');
  assert.equal(err.port, 81);
  assert.equal((err as { errno?: number }).errno, -111);
  assert.equal(conn.closed, true);
  assertNoLeaks(sim);
});

test('a black-holed connect times out with ETIMEDOUT after the SYN retries (127 s by default)', () => {
  const { sim, client } = world();
  sim.partition('client', 'server');
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  settle(sim);
  assert.deepEqual(r.events, ['error:ETIMEDOUT', 'close:true']);
  assert.equal(r.times[0], 127_000);
  assert.equal(r.errors[0]!.syscall, 'connect');
  assertNoLeaks(sim);
});

test('an address nobody owns is a black hole too, and the SYN retry budget is configurable', () => {
  const { sim, client } = world({ tcp: { synRetries: 2, synRtoMs: 500 } });
  const conn = client.connectTcp({ host: '192.0.2.99', port: 80 });
  const r = record(conn, sim);
  settle(sim);
  assert.deepEqual(r.events, ['error:ETIMEDOUT', 'close:true']);
  assert.equal(r.times[0], 500 + 1_000 + 2_000);
});

test('a connect blocked by a partition succeeds on the SYN retry after the partition heals', async () => {
  const { sim, client, server } = world({ defaultLink: { latencyMs: 1 } });
  await listen(server, 80, echo);
  sim.partition('client', 'server');
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim, { onConnect: () => conn.end() });
  sim.clock.advanceBy(2_000);
  assert.deepEqual(r.events, []);
  sim.heal('client', 'server');
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'end', 'close:false']);
  assert.equal(r.times[0], 3_000 + 2, 'third SYN leaves at 3 s');
});

test('a lost SYN-ACK (asymmetric partition) also ends in ETIMEDOUT and the server forgets the half-open handshake', async () => {
  const { sim, client, server } = world();
  const accepted = await listen(server, 80);
  sim.partition('client', 'server', { direction: 'b->a' });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  sim.clock.advanceBy(1);
  assert.equal(sim.netstat().tcp.find((c) => c.host === 'server')?.state, 'SYN_RECEIVED');
  settle(sim);
  assert.deepEqual(r.events, ['error:ETIMEDOUT', 'close:true']);
  assert.equal(accepted.length, 0);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('destroy while connecting closes without error and leaves nothing behind on either host', async () => {
  const { sim, client, server } = world();
  const accepted = await listen(server, 80);
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  conn.destroy();
  assert.deepEqual(r.events, [], 'close is not synchronous');
  settle(sim);
  assert.deepEqual(r.events, ['close:false']);
  assert.equal(accepted.length, 0);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('listen reports EADDRINUSE for overlapping binds the way Linux does', async () => {
  const { server } = world();
  const code = (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'ok',
      (e: { code: string }) => e.code,
    );
  const any4 = await server.listenTcp({ host: '0.0.0.0', port: 80 }, () => {});
  assert.equal(await code(server.listenTcp({ host: '10.0.0.2', port: 80 }, () => {})), 'EADDRINUSE');
  assert.equal(await code(server.listenTcp({ host: '::', port: 80 }, () => {})), 'EADDRINUSE');
  assert.equal(await code(server.listenTcp({ host: 'fd00::2', port: 80 }, () => {})), 'ok', 'an IPv6 address does not overlap 0.0.0.0');
  await any4.close();
  assert.equal(await code(server.listenTcp({ host: '10.0.0.2', port: 80 }, () => {})), 'ok');
  assert.equal(await code(server.listenTcp({ host: '127.0.0.1', port: 80 }, () => {})), 'ok', 'distinct specific addresses coexist');
  await assert.rejects(server.listenTcp({ host: '10.0.0.2', port: 80 }, () => {}), { code: 'EADDRINUSE', syscall: 'listen', address: '10.0.0.2', port: 80, errno: -98 });
});

test('listen reports EADDRNOTAVAIL for a foreign address and EACCES for a low port on an unprivileged host', async () => {
  const { sim, server } = world();
  await assert.rejects(server.listenTcp({ host: '10.0.0.1', port: 80 }, () => {}), { code: 'EADDRNOTAVAIL', syscall: 'listen' });
  const user = sim.host('user', { addresses: ['10.0.0.3'], unprivileged: true });
  await assert.rejects(user.listenTcp({ host: '0.0.0.0', port: 443 }, () => {}), { code: 'EACCES' });
  await assert.rejects(user.listenTcp({ host: '0.0.0.0', port: 70_000 }, () => {}), { code: 'ERR_SOCKET_BAD_PORT' });
  const ok = await user.listenTcp({ host: '0.0.0.0', port: 8443 }, () => {});
  assert.equal(ok.address.port, 8443);
});

test('port 0 binds a deterministic ephemeral port, and closing a listener twice rejects like Node', async () => {
  const { server } = world();
  const a = await server.listenTcp({ host: '0.0.0.0', port: 0 }, () => {});
  const b = await server.listenTcp({ host: '::', port: 0 }, () => {});
  assert.deepEqual(a.address, { address: '0.0.0.0', port: 49152, family: 'IPv4' });
  assert.deepEqual(b.address, { address: '::', port: 49153, family: 'IPv6' });
  await a.close();
  await assert.rejects(a.close(), { code: 'ERR_SERVER_NOT_RUNNING' });
});

test('dialled connections get ephemeral ports from 49152 upwards, per host', async () => {
  const { sim, client, server } = world();
  const accepted = await listen(server, 80, (c) => c.setHandlers({ end: () => c.end(), data: () => {} }));
  const conns: Conn[] = [];
  for (let i = 0; i < 3; i++) {
    const c = client.connectTcp({ host: '10.0.0.2', port: 80 });
    conns.push(c);
    c.setHandlers({ connect: () => c.end(), data: () => {} });
  }
  settle(sim);
  assert.deepEqual(
    conns.map((c) => c.local),
    [49152, 49153, 49154].map((port) => ({ address: '10.0.0.1', port, family: 'IPv4' })),
  );
  assert.deepEqual(
    accepted.map((c) => c.remote.port),
    [49152, 49153, 49154],
  );
  // The accepted side's addresses mirror the dialled side's (an IPv4 listener: the same text, family and ports).
  assert.deepEqual(
    accepted.map((c) => [c.local, c.remote]),
    conns.map((c) => [c.remote, c.local]),
  );
  assert.deepEqual(accepted[0]!.local, { address: '10.0.0.2', port: 80, family: 'IPv4' });
});

test('a dual-stack listener sees an IPv4 client as an IPv4-mapped IPv6 address, as Node reports it', async () => {
  const { sim, client, server } = world();
  const accepted = await listen(server, 80, (c) => c.setHandlers({ data: () => {}, end: () => c.end() }), '::');
  const v4 = client.connectTcp({ host: '10.0.0.2', port: 80 });
  v4.setHandlers({ connect: () => v4.end(), data: () => {} });
  const v6 = client.connectTcp({ host: 'fd00::2', port: 80 });
  v6.setHandlers({ connect: () => v6.end(), data: () => {} });
  settle(sim);
  assert.deepEqual(accepted[0]!.remote, { address: '::ffff:10.0.0.1', port: 49152, family: 'IPv6' });
  assert.deepEqual(accepted[0]!.local, { address: '::ffff:10.0.0.2', port: 80, family: 'IPv6' });
  assert.deepEqual(v4.remote, { address: '10.0.0.2', port: 80, family: 'IPv4' });
  assert.deepEqual(accepted[1]!.remote, { address: 'fd00::1', port: 49153, family: 'IPv6' });
  assert.deepEqual(v6.local, { address: 'fd00::1', port: 49153, family: 'IPv6' });
});

test('loopback reaches the same host and never leaves it', async () => {
  const { sim, server } = world();
  const accepted = await listen(server, 8080, echo, '127.0.0.1');
  sim.isolate('server');
  const c = server.connectTcp({ host: '127.0.0.1', port: 8080 });
  const r = record(c, sim, { onConnect: () => c.end() });
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'end', 'close:false']);
  assert.equal(accepted[0]!.remote.address, '127.0.0.1');
});

test('connectTcp rejects a bad port synchronously with ERR_SOCKET_BAD_PORT, as Node throws', () => {
  const { client } = world();
  assert.throws(() => client.connectTcp({ host: '10.0.0.2', port: 65_536 }), { code: 'ERR_SOCKET_BAD_PORT', name: 'RangeError' });
  assert.throws(() => client.connectTcp({ host: '10.0.0.2', port: 1.5 }), { code: 'ERR_SOCKET_BAD_PORT' });
});

test('a localAddress the host does not own fails with EADDRNOTAVAIL (bind), on a later tick', () => {
  const { sim, client } = world();
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80, localAddress: '10.0.0.2' });
  const r = record(conn, sim);
  assert.deepEqual(r.events, []);
  settle(sim);
  assert.deepEqual(r.events, ['error:EADDRNOTAVAIL', 'close:true']);
  assert.equal(r.errors[0]!.syscall, 'bind');
});

test('an owned localAddress becomes the source address the server sees', async () => {
  const { sim, server } = world();
  const multi = sim.host('multi', { addresses: ['10.0.1.1', '10.0.1.2'] });
  const accepted = await listen(server, 80, (c) => c.setHandlers({ data: () => {}, end: () => c.end() }));
  const conn = multi.connectTcp({ host: '10.0.0.2', port: 80, localAddress: '10.0.1.2' });
  conn.setHandlers({ connect: () => conn.end(), data: () => {} });
  settle(sim);
  assert.equal(accepted[0]!.remote.address, '10.0.1.2');
  assert.equal(conn.local.address, '10.0.1.2');
});

test('a host with no address of the destination family fails with ENETUNREACH', () => {
  const { sim } = world();
  const v4only = sim.host('v4only', { addresses: ['10.0.9.9'] });
  const conn = v4only.connectTcp({ host: 'fd00::2', port: 80 });
  const r = record(conn, sim);
  settle(sim);
  assert.deepEqual(r.events, ['error:ENETUNREACH', 'close:true']);
});

test('connecting by name looks the name up in the simulated zone; an unknown name fails with ENOTFOUND', async () => {
  const { sim, client, server } = world();
  sim.dns.set('origin.example', 'A', ['10.0.0.2']);
  await listen(server, 80, echo);
  const named = client.connectTcp({ host: 'origin.example', port: 80 });
  const ok = record(named, sim, { onConnect: () => named.end() });
  const unknown = client.connectTcp({ host: 'nowhere.example', port: 80 });
  const bad = record(unknown, sim);
  settle(sim);
  assert.deepEqual(ok.events, ['connect', 'end', 'close:false']);
  assert.deepEqual(named.remote, { address: '10.0.0.2', port: 80, family: 'IPv4' });
  assert.deepEqual(bad.events, ['error:ENOTFOUND', 'close:true']);
  assert.equal(bad.errors[0]!.syscall, 'getaddrinfo');
});

test('closing a listener resets handshakes still in progress; accepted connections live on', async () => {
  const { sim, client, server } = world({ defaultLink: { latencyMs: 10 } });
  const accepted: Conn[] = [];
  const listener = await server.listenTcp({ host: '0.0.0.0', port: 80 }, (c) => {
    accepted.push(c);
    echo(c);
  });
  const first = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r1 = record(first, sim);
  sim.clock.advanceBy(35); // first is accepted at 30
  const second = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r2 = record(second, sim);
  sim.clock.advanceBy(25); // second's SYN-ACK reached the client at 55; its ACK is in flight
  await listener.close();
  settle(sim);
  assert.deepEqual(r2.events, ['connect', 'error:ECONNRESET', 'close:true']);
  assert.deepEqual(r1.events, ['connect']);
  assert.equal(accepted.length, 1);
  first.end();
  settle(sim);
  assert.deepEqual(r1.events, ['connect', 'end', 'close:false']);
  assertNoLeaks(sim);
});
