/**
 * Connections per second through the EdgeNode with no IP Access rules vs 10,000 rules (ip_firewall on), in one
 * process on loopback, interleaved rounds. A relative figure only (client, origin and proxy share the process).
 * Run: node --import tsx bench/micro/access-rules-cps.ts [connections] [rounds]
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { EdgeNode } from '../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../src/net/node/network.ts';
import { validateConfig } from '../../src/model/config.ts';

const N = Number(process.argv[2] ?? 3000);
const ROUNDS = Number(process.argv[3] ?? 3);
const C = 50;

function rules(n: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const k = i % 4;
    const a = (i >> 8) & 255;
    const b = i & 255;
    if (k === 0) out.push({ mode: 'block', configuration: { target: 'ip', value: `10.${a}.${b}.1` } });
    else if (k === 1) out.push({ mode: 'block', configuration: { target: 'ip_range', value: `172.16.${b}.0/24` } });
    else if (k === 2) out.push({ mode: 'allow', configuration: { target: 'ip', value: `2001:db8::${i.toString(16)}` } });
    else out.push({ mode: 'block', configuration: { target: 'asn', value: String(64_512 + i) } });
  }
  // Dedupe by configuration (validation refuses duplicates).
  const seen = new Set<string>();
  return out.filter((r) => {
    const k = JSON.stringify(r);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const origin = net.createServer((s) => {
  s.on('data', (d) => s.write(d));
  s.on('end', () => s.end());
  s.on('error', () => {});
});
origin.listen(0, '127.0.0.1');
await once(origin, 'listening');
const oport = (origin.address() as net.AddressInfo).port;

async function edgeWith(ruleCount: number, port: number): Promise<EdgeNode> {
  const r = validateConfig({
    edge: { addresses: ['127.0.0.1'] },
    access_rules: rules(ruleCount),
    apps: [{ protocol: `tcp/${port}`, dns: { name: `r${ruleCount}.example.test` }, origin_direct: [`tcp://127.0.0.1:${oport}`], ip_firewall: true }],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues.slice(0, 3)));
  const e = new EdgeNode({ net: createNodeNetwork(), log: pino({ level: 'silent' }) }, r.config);
  await e.apply(r.config);
  return e;
}

async function cps(port: number): Promise<number> {
  let started = 0;
  const one = (): Promise<void> =>
    new Promise((res) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('ping'));
      s.on('data', () => s.end());
      s.on('close', () => res());
      s.on('error', () => {});
    });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, async () => {
    while (started < N) {
      started++;
      await one();
    }
  }));
  return N / ((performance.now() - t0) / 1000);
}

const none = await edgeWith(0, 7590);
const many = await edgeWith(10_000, 7591);
const res: Record<string, number[]> = { none: [], '10k': [] };
for (let i = 0; i < ROUNDS; i++) {
  res.none!.push(await cps(7590));
  res['10k']!.push(await cps(7591));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`connections/s, ip_firewall on: no rules ${med(res.none!).toFixed(0)}, 10,000 rules ${med(res['10k']!).toFixed(0)} (×${(med(res['10k']!) / med(res.none!)).toFixed(2)}), ${ROUNDS} interleaved rounds of ${N}`);
await none.shutdown(0);
await many.shutdown(0);
origin.close();
