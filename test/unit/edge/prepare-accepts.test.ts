/**
 * Connections that arrive on a new listener between the two phases of a change (`EdgeNode.prepare` has bound the
 * port, `commit` has not run yet): held until the commit, then served by the new app; reset if the change is
 * aborted. On a first start this used to crash the process (the node had no settings yet), which `serve --workers`
 * hit whenever a client connected as soon as the port was bound. Both worlds: the simulator and real loopback.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { createSim } from '../../../src/net/sim/index.ts';
import { createNodeNetwork } from '../../../src/net/node/network.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { mustConfig } from '../../helpers/edge.ts';

const dec = new TextDecoder();
const enc = new TextEncoder();

describe('connections accepted between prepare and commit', () => {
  for (const outcome of ['commit', 'abort'] as const) {
    it(`simulator, first start, ${outcome}: the early connection is ${outcome === 'commit' ? 'served once committed' : 'reset'}`, async () => {
      const sim = createSim({ seed: 11 });
      const edgeH = sim.host('edge', { addresses: ['10.9.0.1'] });
      const originH = sim.host('origin', { addresses: ['198.51.100.2'] });
      const clientH = sim.host('client', { addresses: ['203.0.113.5'] });
      sim.link('client', 'edge', { latencyMs: 3 });
      sim.link('edge', 'origin', { latencyMs: 2 });
      await originH.listenTcp({ host: '198.51.100.2', port: 7000 }, (c) => c.setHandlers({ data: (d) => c.write(d), end: () => c.end() }));
      const cfg = mustConfig({
        edge: { addresses: ['10.9.0.1'] },
        apps: [{ id: 'app', protocol: 'tcp/80', dns: { name: 'app.example.test' }, origin_direct: ['tcp://198.51.100.2:7000'] }],
      });
      const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, cfg);
      const run = async <T>(p: Promise<T>): Promise<T> => {
        await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 1_000 });
        return p;
      };
      const prepared = await run(edge.prepare(cfg));
      // The port is bound: a client connects and sends before the commit.
      const c = clientH.connectTcp({ host: '10.9.0.1', port: 80 });
      const got: string[] = [];
      let reset = false;
      let closed = false;
      c.setHandlers({ data: (d) => got.push(dec.decode(d)), error: (e) => void (reset = e.code === 'ECONNRESET'), close: () => void (closed = true) });
      c.write(enc.encode('early'));
      await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 500 });
      assert.deepEqual(got, [], 'nothing is served before the commit');
      if (outcome === 'commit') {
        await run(prepared.commit());
        await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 1_000 });
        assert.equal(got.join(''), 'early');
      } else {
        await run(prepared.abort());
        await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 1_000 });
        assert.ok(reset && closed, `reset ${reset}, closed ${closed}`);
      }
      await run(edge.shutdown(0));
    });
  }

  it('real sockets, first start: a connection made right after the bind is served once committed', async () => {
    const origin = net.createServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
    await once(origin, 'listening');
    const originPort = (origin.address() as net.AddressInfo).port;
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const cfg = mustConfig({
      edge: { addresses: ['127.0.0.1'] },
      apps: [{ id: 'app', protocol: `tcp/${port}`, dns: { name: 'app.example.test' }, origin_direct: [`tcp://127.0.0.1:${originPort}`] }],
    });
    const edge = new EdgeNode({ net: createNodeNetwork(), log: pino({ level: 'silent' }) }, cfg);
    try {
      const prepared = await edge.prepare(cfg);
      const client = net.connect(port, '127.0.0.1');
      await once(client, 'connect');
      client.write('early');
      const chunks: Buffer[] = [];
      client.on('data', (d: Buffer) => chunks.push(d));
      // Give the accept time to reach the node before the commit.
      await new Promise((r) => setTimeout(r, 100));
      await prepared.commit();
      for (let i = 0; i < 200 && Buffer.concat(chunks).length < 5; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(Buffer.concat(chunks).toString(), 'early');
      client.destroy();
    } finally {
      await edge.shutdown(0);
      origin.close();
    }
  });
});
