import test from 'node:test';
import assert from 'node:assert/strict';
import { createSim, type SimEvent } from '../../../src/net/sim/index.ts';
import { assertNoLeaks, closeListeners, listen, record, settle, world } from './harness.ts';

test('netstat lists connections with kernel state and queues, listeners and UDP sockets', async () => {
  const { sim, client, server } = world();
  await listen(server, 80, (c) => c.setHandlers({ data: () => {} }));
  const udp = await client.bindUdp({ host: '0.0.0.0', port: 5353 });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  record(conn, sim);
  sim.clock.advanceBy(0.1);
  assert.deepEqual(
    sim.netstat().tcp.map((c) => [c.host, c.state, c.app]),
    [
      ['client', 'SYN_SENT', 'open'],
      ['server', 'SYN_RECEIVED', 'none'],
    ],
  );
  settle(sim);
  conn.end();
  settle(sim);
  const ns = sim.netstat();
  assert.deepEqual(ns.tcp, [
    { host: 'client', local: '10.0.0.1:49152', remote: '10.0.0.2:80', state: 'FIN_WAIT2', app: 'open', sendQueue: 0, recvQueue: 0 },
    { host: 'server', local: '10.0.0.2:80', remote: '10.0.0.1:49152', state: 'CLOSE_WAIT', app: 'open', sendQueue: 0, recvQueue: 0 },
  ]);
  assert.deepEqual(ns.listeners, [{ host: 'server', local: '0.0.0.0:80' }]);
  assert.deepEqual(ns.udp, [{ host: 'client', local: '0.0.0.0:5353' }]);
  udp.close();
  await closeListeners(sim);
});

test('hosts are created once with their addresses and looked up by name afterwards', () => {
  const sim = createSim({ seed: 'hosts' });
  const a = sim.host('a', { addresses: ['10.1.0.1', 'FD00:0::1'] });
  assert.equal(sim.host('a'), a);
  assert.deepEqual(a.addresses, ['10.1.0.1', 'fd00::1']);
  assert.throws(() => sim.host('a', { addresses: ['10.1.0.2'] }), /already exists/);
  assert.throws(() => sim.host('b'), /no host/);
  assert.throws(() => sim.host('c', { addresses: ['127.0.0.1'] }), /unicast/);
  assert.throws(() => sim.host('c', { addresses: ['not-an-ip'] }), /unicast/);
  assert.deepEqual(
    sim.hosts().map((h) => h.name),
    ['a'],
  );
});

test('onEvent receives every simulator event with its virtual time, in order', async () => {
  const events: SimEvent[] = [];
  const { sim, client, server } = world({ defaultLink: { latencyMs: 1 }, onEvent: (e) => events.push(e) });
  await listen(server, 80);
  const conn = client.connectTcp({ host: '10.0.0.2', port: 81 });
  record(conn, sim);
  settle(sim);
  assert.deepEqual(
    events.map((e) => `${e.t} ${e.type} ${e.host}`),
    ['0 tcp.listen server', '0 tcp.syn client', '2 tcp.rst client', '2 tcp.error client', '2 tcp.close client'],
  );
  assert.equal(events[1]!.detail, '10.0.0.1:49152>10.0.0.2:81 try=0');
});

test('a host network carries the shared clock and its own random stream', () => {
  const { sim, client, server } = world({ seed: 99 });
  assert.equal(client.clock.now(), sim.clock.now());
  const again = world({ seed: 99 });
  assert.equal(client.random.next(), again.client.random.next());
  assert.notEqual(client.random.next(), server.random.next());
});

test('a host owns its prefixes whole: any address in them binds and is reached (TCP and UDP); none is used as a source', async () => {
  const sim = createSim({ seed: 'prefixes' });
  const edge = sim.host('edge', { addresses: ['198.51.100.1'], prefixes: ['203.0.113.0/24', '2001:db8:10::/64'] });
  const client = sim.host('client', { addresses: ['192.0.2.100', '2001:db8:1::100'] });
  const accepted = await listen(edge, 8000, (c) => c.setHandlers({ data: (d) => c.write(d), end: () => c.end() }), '203.0.113.7');
  await listen(edge, 8000, (c) => c.setHandlers({ data: (d) => c.write(d), end: () => c.end() }), '2001:db8:10::abcd');
  const udp = await edge.bindUdp({ host: '203.0.113.200', port: 53 });
  udp.setHandler((m) => udp.send(m.data, m.remote.port, m.remote.address));
  await assert.rejects(edge.listenTcp({ host: '203.0.114.1', port: 8000 }, () => {}), { code: 'EADDRNOTAVAIL' });

  const v4 = client.connectTcp({ host: '203.0.113.7', port: 8000 });
  const r4 = record(v4, sim, {
    onConnect: () => {
      v4.write(Buffer.from('four'));
      v4.end();
    },
  });
  const v6 = client.connectTcp({ host: '2001:db8:10::abcd', port: 8000 });
  const r6 = record(v6, sim, {
    onConnect: () => {
      v6.write(Buffer.from('six'));
      v6.end();
    },
  });
  const cu = await client.bindUdp({ host: '0.0.0.0', port: 0 });
  const got: string[] = [];
  cu.setHandler((m) => got.push(`${m.remote.address} ${Buffer.from(m.data).toString()}`));
  cu.send(Buffer.from('q'), 53, '203.0.113.200');
  const unowned = client.connectTcp({ host: '203.0.114.1', port: 8000 }); // nobody owns it: a black hole
  const ru = record(unowned, sim);
  sim.clock.advanceBy(500);
  assert.equal(r4.received().toString(), 'four');
  assert.equal(r6.received().toString(), 'six');
  assert.deepEqual(got, ['203.0.113.200 q']);
  assert.equal(accepted[0]?.local.address, '203.0.113.7');
  assert.deepEqual(ru.events, [], 'a SYN to an address no host owns vanishes');
  unowned.destroy();

  // Dialling out, the edge's source is its listed address, never a prefix address.
  const back = await listen(client, 9000);
  const out = edge.connectTcp({ host: '192.0.2.100', port: 9000 });
  record(out, sim);
  sim.clock.advanceBy(100);
  assert.equal(out.local.address, '198.51.100.1');
  assert.equal(back[0]?.remote.address, '198.51.100.1');
  out.destroy();
  back[0]?.destroy();
  cu.close();
  udp.close();
  await closeListeners(sim);
  settle(sim);
  assertNoLeaks(sim);
});

test('prefixes may not hold another host address nor overlap another host prefixes, and must be unicast blocks', () => {
  const sim = createSim({ seed: 'prefix-rules' });
  sim.host('client', { addresses: ['203.0.113.10'] });
  assert.throws(() => sim.host('a', { addresses: ['198.51.100.1'], prefixes: ['203.0.113.0/24'] }), /contains 203\.0\.113\.10, an address of 'client'/);
  sim.host('b', { addresses: ['198.51.100.2'], prefixes: ['2001:db8:10::/64'] });
  assert.throws(() => sim.host('c', { addresses: ['198.51.100.3'], prefixes: ['2001:db8:10:0:8000::/65'] }), /overlaps 2001:db8:10::\/64 of 'b'/);
  assert.throws(() => sim.host('d', { addresses: ['2001:db8:10::5'] }), /already belongs to 'b'/);
  assert.throws(() => sim.host('e', { addresses: ['198.51.100.5'], prefixes: ['127.0.10.0/24'] }), /unicast block/);
  assert.throws(() => sim.host('e', { addresses: ['198.51.100.5'], prefixes: ['0.0.0.0/0'] }), /unicast block/);
  assert.throws(() => sim.host('e', { addresses: ['198.51.100.5'], prefixes: ['126.0.0.0/7'] }), /unicast block/);
  assert.throws(() => sim.host('f', { addresses: ['198.51.100.6'], prefixes: ['not-a-block'] }), /CIDR block/);
});
