/**
 * Edge-IP rotation on the simulator: the allocator gives a name fresh addresses (allocateEdgeIps with `rotate`) and
 * the edge applies the result like any config: the app listens on the new address only, the DNS view answers it, an
 * established connection on the old address keeps flowing until the drain deadline closes it, and a new connection
 * to the old address is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createSim } from '../../../src/net/sim/index.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { allocateEdgeIps } from '../../../src/model/edge-ips.ts';
import { dnsViewOf } from '../../../src/dns/view.ts';
import { mustConfig } from '../../helpers/edge.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

test('rotation: new address listens and is answered, the old one refuses new connections, an established one drains', async () => {
  const sim = createSim({ seed: 11 });
  const edgeH = sim.host('edge', { addresses: ['10.9.0.1', '10.9.0.2', '10.9.0.3'] });
  const originH = sim.host('origin', { addresses: ['198.51.100.2'] });
  const clientH = sim.host('client', { addresses: ['203.0.113.5'] });
  sim.link('client', 'edge', { latencyMs: 3 });
  sim.link('edge', 'origin', { latencyMs: 2 });
  await originH.listenTcp({ host: '198.51.100.2', port: 7000 }, (c) => c.setHandlers({ data: (d) => c.write(d), end: () => c.end() }));

  const config = mustConfig({
    zones: [{ name: 'example.test' }],
    edge: { pools: { ipv4: ['10.9.0.0/29'] }, drain_timeout_ms: 5_000, idle_timeout_ms: 600_000 },
    apps: [{ id: 'echo', protocol: 'tcp/80', dns: { type: 'CNAME', name: 'echo.example.test' }, origin_direct: ['tcp://198.51.100.2:7000'] }],
  });
  const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, config);
  const run = async <T>(p: Promise<T>): Promise<T> => {
    await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 1_000 });
    return p;
  };
  await run(edge.apply(config));
  const answer = () => {
    const view = dnsViewOf(edge.config!);
    const target = view.lookup('echo.example.test')?.cname;
    assert.ok(target !== undefined);
    return view.lookup(target)?.a;
  };
  assert.deepEqual(answer(), ['10.9.0.1']);

  // An established connection on the old address.
  const got: string[] = [];
  let oldClosed = false;
  const old = clientH.connectTcp({ host: '10.9.0.1', port: 80 });
  const closedOld = () => void (oldClosed = true);
  old.setHandlers({ data: (d) => got.push(dec.decode(d)), end: closedOld, error: closedOld, close: closedOld });
  old.write(enc.encode('before'));
  await run(Promise.resolve());
  assert.deepEqual(got, ['before']);

  // Rotate: fresh address, old one held until the drain deadline.
  const r = allocateEdgeIps(edge.config!, edge.config!.edgeIps, sim.clock.epochMs(), 'echo.example.test');
  assert.ok(r.ok);
  await run(edge.apply(r.config));
  assert.deepEqual(edge.listeners().map((l) => `${l.host}:${l.port}`), ['10.9.0.2:80']);
  assert.deepEqual(answer(), ['10.9.0.2']);
  assert.deepEqual(Object.keys(edge.config?.edgeIps?.held ?? {}), ['10.9.0.1']);

  // The established connection keeps flowing; a new one to the old address is refused; the new address serves.
  old.write(enc.encode('after'));
  let refused = '';
  const again = clientH.connectTcp({ host: '10.9.0.1', port: 80 });
  again.setHandlers({ error: (e) => void (refused = (e as { code?: string }).code ?? 'error') });
  const fresh: string[] = [];
  const next = clientH.connectTcp({ host: '10.9.0.2', port: 80 });
  next.setHandlers({ data: (d) => fresh.push(dec.decode(d)) });
  next.write(enc.encode('new'));
  await run(Promise.resolve());
  assert.deepEqual(got, ['before', 'after']);
  assert.equal(refused, 'ECONNREFUSED');
  assert.deepEqual(fresh, ['new']);
  assert.equal(oldClosed, false);

  // The drain deadline (5 s) closes the old connection; the new one stays.
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 6_000 });
  assert.equal(edge.tcp.activeCount, 1, 'the old connection is closed at the deadline');
  assert.equal(oldClosed, true);
  assert.equal(edge.tcp.activeCount, 1);
  next.destroy();
  const done = edge.shutdown(0);
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
  await done;
});
