/**
 * A port taken away from an app that stays (its edge range narrowed by a reload) drains like a removed app's: its
 * listener closes at once (new connections are refused), its established connections keep flowing until they end or
 * `edge.drain_timeout_ms` closes them, and the ports the app keeps are untouched. Checked on the simulator for a
 * specific edge address and for the wildcards `0.0.0.0` and `::` (an IPv4 client of a `::` listener is seen on a
 * v4-mapped address): a connection accepted on a wildcard listener has a concrete local address, so the edge must
 * tell which listener took it by the listener, not by the address.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createSim } from '../../../src/net/sim/index.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';
import { mustConfig } from '../../helpers/edge.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const EDGE_IP = '10.9.0.1';

describe('a port removed from a running app drains its connections', () => {
  for (const address of [EDGE_IP, '0.0.0.0', '::']) {
    for (const protocol of ['tcp', 'udp'] as const) {
      it(`${protocol}, edge address ${address}: the removed port's connection closes at the drain deadline, the kept port's stays`, async () => {
        const sim = createSim({ seed: 5 });
        const edgeH = sim.host('edge', { addresses: [EDGE_IP] });
        const originH = sim.host('origin', { addresses: ['198.51.100.2'] });
        const clientH = sim.host('client', { addresses: ['203.0.113.5'] });
        sim.link('client', 'edge', { latencyMs: 3 });
        sim.link('edge', 'origin', { latencyMs: 2 });
        if (protocol === 'tcp') {
          await originH.listenTcp({ host: '198.51.100.2', port: 7000 }, (c) => c.setHandlers({ data: (d) => c.write(d), end: () => c.end() }));
        } else {
          const o = await originH.bindUdp({ host: '198.51.100.2', port: 7000 });
          o.setHandler((m) => o.send(m.data, m.remote.port, m.remote.address));
        }
        const cfg = (ports: string) =>
          mustConfig({
            edge: { addresses: [address], drain_timeout_ms: 5_000, idle_timeout_ms: 600_000, udp_idle_timeout_ms: 600_000 },
            apps: [{ id: 'app', protocol: `${protocol}/${ports}`, dns: { name: 'app.example.test' }, origin_direct: [`${protocol}://198.51.100.2:7000`] }],
          });
        const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, cfg('80-81'));
        const events: SpectrumEvent[] = [];
        edge.events.events$.subscribe((e) => events.push(e));
        const run = async <T>(p: Promise<T>, maxTime = 1_000): Promise<T> => {
          await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime });
          return p;
        };
        await run(edge.apply(cfg('80-81')));

        // One client connection (or UDP flow) per port, each echoing once.
        const got: Record<number, string[]> = { 80: [], 81: [] };
        const closed: Record<number, boolean> = { 80: false, 81: false };
        const send: Record<number, (s: string) => void> = {};
        const stop: Array<() => void> = [];
        for (const port of [80, 81]) {
          if (protocol === 'tcp') {
            const c = clientH.connectTcp({ host: EDGE_IP, port });
            const end = () => void (closed[port] = true);
            c.setHandlers({ data: (d) => got[port]!.push(dec.decode(d)), end, error: end, close: end });
            send[port] = (s) => void c.write(enc.encode(s));
            stop.push(() => c.destroy());
          } else {
            const s = await clientH.bindUdp({ host: '203.0.113.5', port: 0 });
            s.setHandler((m) => got[port]!.push(dec.decode(m.data)));
            send[port] = (t) => s.send(enc.encode(t), port, EDGE_IP);
            stop.push(() => s.close());
          }
        }
        send[80]!('a');
        send[81]!('a');
        await run(Promise.resolve());
        assert.deepEqual(got, { 80: ['a'], 81: ['a'] });

        // Narrow the app to port 80: port 81 stops listening; its established connection keeps flowing for now.
        const applied = await run(edge.apply(cfg('80')));
        assert.deepEqual(applied.changed, ['app']);
        assert.deepEqual(edge.listeners().map((l) => l.port), [80]);
        send[80]!('b');
        send[81]!('b');
        await run(Promise.resolve());
        assert.deepEqual(got, { 80: ['a', 'b'], 81: ['a', 'b'] });
        if (protocol === 'tcp') {
          let refused = '';
          const again = clientH.connectTcp({ host: EDGE_IP, port: 81 });
          again.setHandlers({ error: (e) => void (refused = (e as { code?: string }).code ?? 'error') });
          await run(Promise.resolve());
          assert.equal(refused, 'ECONNREFUSED', 'the removed port takes no new connection');
        }

        // The drain deadline (5 s) ends the removed port's connection, and only it.
        await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 6_000 });
        const ends = events.filter((e) => e.Event !== 'connect');
        assert.deepEqual(
          ends.map((e) => [e.EdgePort, e.CloseReason]),
          [[81, 'drain_deadline']],
        );
        if (protocol === 'tcp') assert.deepEqual(closed, { 80: false, 81: true });
        assert.equal(protocol === 'tcp' ? edge.tcp.activeCount : edge.udp.activeCount, 1);
        send[80]!('c');
        await run(Promise.resolve());
        assert.deepEqual(got[80], ['a', 'b', 'c'], 'the kept port still serves');

        for (const s of stop) s();
        const done = edge.shutdown(0);
        await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
        await done;
        assert.equal(edge.tcp.activeCount + edge.udp.activeCount, 0);
      });
    }
  }
});
