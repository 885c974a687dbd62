import test from 'node:test';
import assert from 'node:assert/strict';
import { createSim, type SimEvent } from '../../../src/net/sim/index.ts';
import { closeListeners, listen, record, settle, world } from './harness.ts';

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
