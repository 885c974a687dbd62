/**
 * Apps with distinct DNS names on one edge port, each on its own edge IPs (pools: IPv4 and IPv6), on the simulator:
 * the edge binds one listener per address, and each listener leads to its own app's origin, over IPv4 and IPv6;
 * an IPv6-only app listens on its IPv6 address alone; when one of the apps is deleted its addresses stop
 * accepting while the other apps keep theirs; and a config that skipped validation with two apps on one address and
 * port is refused by the edge's own allocation, changing nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createSim } from '../../../src/net/sim/index.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { mustConfig } from '../../helpers/edge.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

test('one port, three names: each edge address leads to its own app; deleting one leaves the others serving', async () => {
  const sim = createSim({ seed: 3 });
  const edgeH = sim.host('edge', { addresses: ['10.9.0.9', '10.9.0.1', '10.9.0.2', 'fd00:9::1', 'fd00:9::2', 'fd00:9::3'] });
  const originH = sim.host('origin', { addresses: ['198.51.100.2'] });
  const clientH = sim.host('client', { addresses: ['203.0.113.5', '2001:db8::5'] });
  sim.link('client', 'edge', { latencyMs: 3 });
  sim.link('edge', 'origin', { latencyMs: 2 });
  // One origin port per app, each answering with its own name.
  for (const [i, who] of ['a', 'b', 'c'].entries()) {
    await originH.listenTcp({ host: '198.51.100.2', port: 7000 + i }, (c) => c.setHandlers({ data: (d) => c.write(enc.encode(`${who}:${dec.decode(d)}`)), end: () => c.end() }));
  }
  const app = (who: string, i: number, connectivity = 'all') => ({
    id: who,
    protocol: 'tcp/22',
    dns: { type: 'CNAME', name: `${who}.example.test` },
    edge_ips: { type: 'dynamic', connectivity },
    origin_direct: [`tcp://198.51.100.2:${7000 + i}`],
  });
  const cfg = (apps: unknown[]) => mustConfig({ edge: { addresses: ['10.9.0.9'], pools: { ipv4: ['10.9.0.0/29'], ipv6: ['fd00:9::/125'] }, drain_timeout_ms: 1_000 }, apps });
  const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, cfg([]));
  const run = async <T>(p: Promise<T>): Promise<T> => {
    await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 1_000 });
    return p;
  };
  await run(edge.apply(cfg([app('a', 0), app('b', 1), app('c', 2, 'ipv6')])));
  assert.deepEqual(
    edge.listeners().map((l) => `${l.host} ${l.port} ${l.app}`).sort(),
    ['10.9.0.1 22 a', '10.9.0.2 22 b', 'fd00:9::1 22 a', 'fd00:9::2 22 b', 'fd00:9::3 22 c'],
  );

  /** What one connection to host:22 gets back for 'hi' (or the connect error's code). */
  const ask = async (host: string): Promise<string> => {
    let got = '';
    let err = '';
    const c = clientH.connectTcp({ host, port: 22 });
    c.setHandlers({ data: (d) => void (got += dec.decode(d)), error: (e) => void (err = (e as { code?: string }).code ?? 'error') });
    c.write(enc.encode('hi'));
    await run(Promise.resolve());
    c.destroy();
    await run(Promise.resolve());
    return err === '' ? got : err;
  };
  assert.equal(await ask('10.9.0.1'), 'a:hi');
  assert.equal(await ask('10.9.0.2'), 'b:hi');
  assert.equal(await ask('fd00:9::1'), 'a:hi');
  assert.equal(await ask('fd00:9::2'), 'b:hi');
  assert.equal(await ask('fd00:9::3'), 'c:hi');
  assert.equal(await ask('10.9.0.9'), 'ECONNREFUSED', 'no app binds edge.addresses with pools');

  // Delete b: its addresses refuse, a and c keep theirs.
  await run(edge.apply(cfg([app('a', 0), app('c', 2, 'ipv6')])));
  assert.equal(await ask('10.9.0.2'), 'ECONNREFUSED');
  assert.equal(await ask('fd00:9::2'), 'ECONNREFUSED');
  assert.equal(await ask('10.9.0.1'), 'a:hi');
  assert.equal(await ask('fd00:9::3'), 'c:hi');

  // A config that skipped validation with two apps of one name on one port: the edge's own allocation refuses it
  // (E_CONFIG_EDGE_CONFLICT) and nothing changes.
  const before = edge.listeners();
  const valid = cfg([app('a', 0), app('c', 2, 'ipv6')]);
  const clash = { ...valid, apps: [...valid.apps, { ...valid.apps[0]!, id: 'a2' }] };
  await assert.rejects(run(edge.apply(clash)), (e: unknown) => (e as { code?: string }).code === 'E_CONFIG_EDGE_CONFLICT');
  assert.deepEqual(edge.listeners(), before);
  assert.equal(await ask('10.9.0.1'), 'a:hi');

  const done = edge.shutdown(0);
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
  await done;
  assert.equal(edge.tcp.activeCount, 0);
});
