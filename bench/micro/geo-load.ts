/**
 * Micro-benchmark: loading the ip-location-db CSV files as shipped (the dev dependencies `@ip-location-db/asn` and
 * `@ip-location-db/geo-whois-asn-country`, IPv4 and IPv6): per file, the time to parse the text and the time to
 * flatten nested and overlapping ranges (`finish`), the counts `geo.loaded` reports, and the memory the tables keep
 * (heap and typed arrays after a GC, with the file text dropped); then the lookup cost over those tables.
 * Run: node --expose-gc --import tsx bench/micro/geo-load.ts [rounds]
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { asnCsvParser, countryCsvParser, type RangeTable } from '../../src/core/geo.ts';

const ROUNDS = Number(process.argv[2] ?? 3);
const require = createRequire(import.meta.url);
const pkg = (name: string, file: string): string => join(dirname(require.resolve(`${name}/package.json`)), file);
const FILES = [
  ['asn', pkg('@ip-location-db/asn', 'asn-ipv4.csv')],
  ['asn', pkg('@ip-location-db/asn', 'asn-ipv6.csv')],
  ['country', pkg('@ip-location-db/geo-whois-asn-country', 'geo-whois-asn-country-ipv4.csv')],
  ['country', pkg('@ip-location-db/geo-whois-asn-country', 'geo-whois-asn-country-ipv6.csv')],
] as const;

const gc = (globalThis as { gc?: () => void }).gc;
const mem = (): number => {
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const kept: RangeTable<unknown>[] = [];
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
const baseline = mem();
for (const [kind, file] of FILES) {
  const parse: number[] = [];
  const flat: number[] = [];
  const parseCpu: number[] = [];
  const flatCpu: number[] = [];
  let table: RangeTable<unknown> | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    const text = readFileSync(file, 'utf8');
    const p = kind === 'asn' ? asnCsvParser({ source: file }) : countryCsvParser({ source: file });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const failed = p.feed(text);
    const t1 = performance.now();
    const c1 = process.cpuUsage(c0);
    const res = failed ?? p.finish();
    const t2 = performance.now();
    const c2 = process.cpuUsage(c0);
    if (!res.ok) throw new Error(res.message);
    parse.push(t1 - t0);
    flat.push(t2 - t1);
    parseCpu.push(cpuMs(c1));
    flatCpu.push(cpuMs(c2) - cpuMs(c1));
    table = res.value as RangeTable<unknown>;
  }
  if (table === undefined) continue;
  kept.push(table);
  const name = file.split('/').pop();
  console.log(
    `${name}: ${JSON.stringify(table.stats)}; parse ${median(parse).toFixed(0)} ms (CPU ${median(parseCpu).toFixed(0)}), flatten ${median(flat).toFixed(0)} ms (CPU ${median(flatCpu).toFixed(0)}), medians of ${ROUNDS}`,
  );
}
console.log(`tables kept: ${((mem() - baseline) / 2 ** 20).toFixed(1)} MiB (heap + typed arrays, after GC, file text dropped)`);

// Lookups: random IPv4 and IPv6 clients over the loaded tables (a seeded generator, so runs compare).
let seed = 0x9e3779b9;
const rnd = (): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
};
const N = 1_000_000;
const v4 = Array.from({ length: 4096 }, () => [24, 16, 8, 0].map((s) => (rnd() >>> s) & 255).join('.'));
const v6 = Array.from({ length: 4096 }, () => ['2001', '2400', '2a00', '2600'][rnd() % 4] + ':' + Array.from({ length: 7 }, () => (rnd() & 0xffff).toString(16)).join(':'));
for (const [label, clients] of [['IPv4', v4], ['IPv6', v6]] as const) {
  let hits = 0;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) for (const t of kept) if (t.find(clients[i & 4095] ?? '') !== undefined) hits++;
  const ns = ((performance.now() - t0) * 1e6) / (N * kept.length);
  console.log(`lookup ${label}: ${ns.toFixed(0)} ns per table (${hits} hits)`);
}
console.log(`RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB with all four tables loaded`);
