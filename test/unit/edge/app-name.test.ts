/**
 * Apps named by their dns.name beside their opaque id: `ApplicationName` in Spectrum events (TCP and UDP) and
 * `appName` on the engine's log lines about a connection or flow. Ports 8750-8759 belong to this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { pino } from 'pino';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../../src/net/node/network.ts';
import { startBuiltinOrigins } from '../../../src/edge/builtin-origins.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';
import { delay, exchange, mustConfig } from '../../helpers/edge.ts';

const raw = {
  edge: { addresses: ['127.0.0.1'], udp_idle_timeout_ms: 150 },
  origins: [{ name: 'udp-echo', listen: 'udp://127.0.0.1:8755', behaviour: 'echo' }],
  apps: [
    // Nothing listens on 8756: the connection ends 521 and the engine logs it.
    { id: 'tcp-app', protocol: 'tcp/8751', dns: { type: 'CNAME', name: 'refused.example.test' }, origin_direct: ['tcp://127.0.0.1:8756'] },
    { id: 'udp-app', protocol: 'udp/8752', dns: { type: 'CNAME', name: 'game.example.test' }, origin_direct: ['udp://127.0.0.1:8755'], udp_max_flows: 1 },
  ],
};

async function send(port: number, text: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  s.send(text, port, '127.0.0.1');
  return s;
}

test('app names: ApplicationName in TCP and UDP events, appName on connection and flow log lines', async () => {
  const config = mustConfig(raw);
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const net = createNodeNetwork({ dnsServers: config.node.dnsServers });
  const edge = new EdgeNode({ net, log }, config);
  const events: SpectrumEvent[] = [];
  edge.events.events$.subscribe((e) => events.push(e));
  const origins = await startBuiltinOrigins(net, config.origins, pino({ level: 'silent' }));
  await edge.apply(config);
  const sockets: dgram.Socket[] = [];
  try {
    await exchange(8751, 'x', { timeoutMs: 3000 });
    const a = await send(8752, 'first flow');
    sockets.push(a);
    await once(a, 'message');
    sockets.push(await send(8752, 'second flow: past the app cap of 1')); // refused, and logged
    await delay(600); // the first flow's idle timeout (150 ms) closes it
  } finally {
    for (const s of sockets) s.close();
    await edge.shutdown(50);
    await origins.close();
  }

  const tcp = events.filter((e) => e.ClientProto === 'tcp');
  assert.deepEqual(tcp.map((e) => [e.Event, e.Status, e.Application, e.ApplicationName]), [
    ['connect', 0, 'tcp-app', 'refused.example.test'],
    ['originError', 521, 'tcp-app', 'refused.example.test'],
  ]);
  const udp = events.filter((e) => e.ClientProto === 'udp');
  assert.deepEqual(udp.map((e) => [e.Event, e.Application, e.ApplicationName]), [
    ['connect', 'udp-app', 'game.example.test'],
    ['disconnect', 'udp-app', 'game.example.test'],
  ]);

  const closed = lines.find((l) => l['msg'] === 'connection closed');
  assert.equal(closed?.['app'], 'tcp-app');
  assert.equal(closed?.['appName'], 'refused.example.test');
  const cap = lines.find((l) => l['msg'] === 'UDP flow cap reached; new flows are refused');
  assert.equal(cap?.['app'], 'udp-app');
  assert.equal(cap?.['appName'], 'game.example.test');
});
