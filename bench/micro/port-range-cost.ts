/**
 * What a 1,000-port app costs: listening sockets, memory and time to bind, through EdgeNode on real loopback.
 * Run: node --expose-gc --import tsx bench/micro/port-range-cost.ts
 */
import { pino } from 'pino';
import { EdgeNode } from '../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../src/net/node/network.ts';
import { validateConfig } from '../../src/model/config.ts';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const r = validateConfig({
  edge: { addresses: ['127.0.0.1'] },
  apps: [{ protocol: 'tcp/8000-8999', dns: { type: 'CNAME', name: 'big.example.test' }, origin_direct: ['tcp://127.0.0.1:9000'] }],
});
if (!r.ok) throw new Error(JSON.stringify(r.issues));
gc();
const before = process.memoryUsage();
const edge = new EdgeNode({ net: createNodeNetwork(), log: pino({ level: 'silent' }) }, r.config);
const t0 = performance.now();
await edge.apply(r.config);
const bindMs = performance.now() - t0;
gc();
const after = process.memoryUsage();
const n = edge.listeners().length;
console.log(`listeners: ${n}; bind time ${bindMs.toFixed(0)} ms; RSS +${((after.rss - before.rss) / 1024 / 1024).toFixed(1)} MiB ` +
  `(${((after.rss - before.rss) / n / 1024).toFixed(1)} KiB/port); heap +${((after.heapUsed - before.heapUsed) / 1024).toFixed(0)} KiB ` +
  `(${((after.heapUsed - before.heapUsed) / n).toFixed(0)} B/port)`);
await edge.shutdown(0);
