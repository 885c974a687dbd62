/**
 * Memory and time of the per-client limiter (src/core/client-limits.ts) at 10^6 distinct clients: heap per key
 * when every client is idle with a refilling bucket (the LRU tier, bounded by max_tracked_clients) and when every
 * client holds one open connection (the busy tier, never evicted), and the cost of one admit + release.
 * Run: node --expose-gc --import tsx bench/micro/client-limits-memory.ts [clients]
 */
import { admitClient, ClientLimiter, releaseClient, type ClientHold, type ClientLimitSettings } from '../../src/core/client-limits.ts';

const N = Number(process.argv[2] ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const limits: ClientLimitSettings = { perIpConnections: 10, perIpNewPerSecond: 1, perIpBurst: 5, ipv6Prefix: 64 };
const ip = (i: number): string => `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
const ips = Array.from({ length: N }, (_, i) => ip(i)); // built before the baseline: the addresses are not limiter state
const v6 = Array.from({ length: N }, (_, i) => `2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`);

function idle(addrs: readonly string[]): { bytes: number; ns: number; size: { busy: number; idle: number } } {
  const before = heap();
  const lim = new ClientLimiter(N);
  const t0 = process.hrtime.bigint();
  for (const a of addrs) {
    const r = admitClient(lim, limits, undefined, 'app', a, 0);
    releaseClient(lim, r.hold!, 0); // closed with 4 of 5 tokens: kept idle while the bucket refills
  }
  const ns = Number(process.hrtime.bigint() - t0) / addrs.length;
  const bytes = (heap() - before) / addrs.length;
  const size = lim.size;
  void lim;
  return { bytes, ns, size };
}

function busy(addrs: readonly string[]): { bytes: number; size: { busy: number; idle: number } } {
  const holds: ClientHold[] = new Array<ClientHold>(addrs.length);
  const before = heap();
  const lim = new ClientLimiter(1_000);
  for (let i = 0; i < addrs.length; i++) holds[i] = admitClient(lim, limits, undefined, 'app', addrs[i]!, 0).hold!;
  const bytes = (heap() - before) / addrs.length;
  return { bytes, size: lim.size };
}

const a = idle(ips);
console.log(`IPv4, ${N} idle clients (LRU tier): ${a.bytes.toFixed(0)} B/client, ${(a.bytes * N / 2 ** 20).toFixed(0)} MiB in all; admit+release ${a.ns.toFixed(0)} ns; size ${JSON.stringify(a.size)}`);
const b = idle(v6);
console.log(`IPv6 /64, ${N} idle clients (LRU tier): ${b.bytes.toFixed(0)} B/client, ${(b.bytes * N / 2 ** 20).toFixed(0)} MiB in all; admit+release ${b.ns.toFixed(0)} ns`);
const c = busy(ips);
console.log(`IPv4, ${N} clients with one open connection (busy tier, hold included): ${c.bytes.toFixed(0)} B/client, ${(c.bytes * N / 2 ** 20).toFixed(0)} MiB; size ${JSON.stringify(c.size)}`);

// Steady state: 10,000 clients cycling (each admitted and released in turn), the common case on a busy node.
{
  const lim = new ClientLimiter(100_000);
  const few = ips.slice(0, 10_000);
  const ops = 2_000_000;
  let t = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    t += 0.01; // 100,000 admits per virtual second over 10,000 clients: 10/s each, under the 1/s rate → some refused
    const r = admitClient(lim, limits, undefined, 'app', few[i % few.length]!, t);
    if (r.hold) releaseClient(lim, r.hold, t);
  }
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  console.log(`steady state, 10,000 clients cycling: ${ns.toFixed(0)} ns per admit (+ release when admitted); size ${JSON.stringify(lim.size)}`);
}
{
  const lim = new ClientLimiter(100_000);
  const few = ips.slice(0, 10_000);
  const ops = 2_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const r = admitClient(lim, { ...limits, perIpNewPerSecond: undefined }, undefined, 'app', few[i % few.length]!, 0);
    releaseClient(lim, r.hold!, 0);
  }
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  console.log(`steady state, count limit only (nothing kept after close): ${ns.toFixed(0)} ns per admit + release`);
}
