/**
 * Connections per second through the EdgeNode with per-client limits on vs off, 10,000 distinct clients named by
 * inbound PROXY v2 headers (edge.accept_proxy trusts the load generator), in one process on loopback, interleaved
 * rounds. The limits are set so that nobody is refused (per_ip_connections 100, 10,000/s, burst 10,000): the figure
 * is the cost of counting, not of refusing. A relative figure only (client, origin and proxy share the process).
 * Run: taskset -c 1 node --import tsx bench/micro/client-limits-cps.ts [connections per round] [rounds]
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { EdgeNode } from '../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../src/net/node/network.ts';
import { validateConfig } from '../../src/model/config.ts';
import { encodeProxyV2 } from '../../src/core/proxy-protocol.ts';

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const CLIENTS = 10_000;
const C = 50;

const origin = net.createServer((s) => {
  s.on('data', (d) => s.write(d));
  s.on('end', () => s.end());
  s.on('error', () => {});
});
origin.listen(0, '127.0.0.1');
await once(origin, 'listening');
const oport = (origin.address() as net.AddressInfo).port;

async function edgeWith(limits: boolean, port: number): Promise<EdgeNode> {
  const r = validateConfig({
    edge: {
      addresses: ['127.0.0.1'],
      accept_proxy: { trusted: ['127.0.0.1'] },
      ...(limits ? { limits: { per_ip_connections: 100, per_ip_new_per_second: 10_000, per_ip_burst: 10_000 } } : {}),
    },
    apps: [{ protocol: `tcp/${port}`, dns: { name: `l${port}.example.test` }, origin_direct: [`tcp://127.0.0.1:${oport}`] }],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues.slice(0, 3)));
  const e = new EdgeNode({ net: createNodeNetwork(), log: pino({ level: 'silent' }) }, r.config);
  await e.apply(r.config);
  return e;
}

// One header per client, built once: 10.0.x.y → the edge.
const headers = Array.from({ length: CLIENTS }, (_, i) =>
  Buffer.concat([
    encodeProxyV2({ family: 'IPv4', src: { address: `10.0.${i >> 8}.${i & 255}`, port: 40_000 + (i % 20_000) }, dst: { address: '198.51.100.1', port: 7000 } }, { transport: 'stream' }),
    Buffer.from('ping'),
  ]),
);

async function cps(port: number): Promise<number> {
  let started = 0;
  const one = (i: number): Promise<void> =>
    new Promise((res) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(headers[i % CLIENTS]!));
      s.on('data', () => s.end());
      s.on('close', () => res());
      s.on('error', () => {});
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (started < N) await one(started++);
    }),
  );
  return N / ((performance.now() - t0) / 1000);
}

const off = await edgeWith(false, 7626);
const on = await edgeWith(true, 7627);
const res: Record<'off' | 'on', number[]> = { off: [], on: [] };
for (let i = 0; i < ROUNDS; i++) {
  res.off.push(await cps(7626));
  res.on.push(await cps(7627));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const refused = on.tcp.stats.downstream_cx_refused_client_connections + on.tcp.stats.downstream_cx_refused_client_rate;
console.log(`connections/s, ${CLIENTS} clients via PROXY v2: limits off ${med(res.off).toFixed(0)} [${res.off.map((x) => x.toFixed(0)).join(', ')}], limits on ${med(res.on).toFixed(0)} [${res.on.map((x) => x.toFixed(0)).join(', ')}] (×${(med(res.on) / med(res.off)).toFixed(3)}), ${ROUNDS} interleaved rounds of ${N}; refused ${refused}; status 200: ${on.tcp.stats.closed_by_status['200'] ?? 0}`);
await off.shutdown(0);
await on.shutdown(0);
origin.close();
