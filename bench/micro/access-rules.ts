/**
 * Micro-benchmark: nanoseconds per access-rule decision, with no rules and with 10,000 rules of mixed targets
 * (IPv4 ranges /8-/32 and addresses, IPv6 ranges /16-/128 and addresses, ASNs, every country), for IPv4, IPv6 and
 * IPv4-mapped clients. Also the compile time. Rules and clients come from a seeded generator, so runs compare.
 * Run: node --import tsx bench/micro/access-rules.ts [decisions]
 */
import { compileAccessRules, decide, type AccessQuery, type CompiledAccessRules } from '../../src/core/access-rules.ts';
import { ISO_COUNTRY_CODES, SPECIAL_COUNTRY_CODES, validateAccessRules } from '../../src/model/access-rules.ts';

const N = Number(process.argv[2] ?? 2_000_000);

// xorshift32: a fixed seed, so every run draws the same rules and clients.
let seed = 0x9e3779b9;
const rnd = (): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};
const int = (n: number): number => Math.floor(rnd() * n);
const v4 = (): number => int(2 ** 32);
const dotted = (x: number): string => [24, 16, 8, 0].map((s) => (x >>> s) & 255).join('.');
const hex16 = (): string => int(65_536).toString(16);
/** IPv6 under a handful of /16s, so rules and clients meet. */
const v6Groups = (): string[] => [['2001', '2400', '2a00', '2600'][int(4)] ?? '2001', ...Array.from({ length: 7 }, hex16)];
const v6 = (g: string[]): string => g.join(':');
const maskV4 = (x: number, p: number): number => (p === 0 ? 0 : (x & (~0 << (32 - p))) >>> 0);
function maskV6(g: string[], p: number): string {
  const out = g.map((h, i) => {
    const keep = Math.max(0, Math.min(16, p - 16 * i));
    return (keep === 0 ? 0 : parseInt(h, 16) & ((0xffff << (16 - keep)) & 0xffff)).toString(16);
  });
  return out.join(':');
}

const raw: unknown[] = [];
const seen = new Set<string>();
const add = (target: string, value: string | number, mode = rnd() < 0.3 ? 'allow' : 'block'): void => {
  const key = `${target} ${value}`;
  if (seen.has(key)) return;
  seen.add(key);
  raw.push({ mode, configuration: { target, value } });
};
for (const c of [...ISO_COUNTRY_CODES, ...SPECIAL_COUNTRY_CODES]) add('country', c);
while (raw.length < 10_000) {
  const k = int(10);
  if (k < 4) {
    const p = 8 + int(25);
    add('ip_range', `${dotted(maskV4(v4(), p))}/${p}`);
  } else if (k < 6) {
    add('ip', dotted(v4()));
  } else if (k < 8) {
    const p = 16 + int(113);
    add('ip_range', `${maskV6(v6Groups(), p)}/${p}`);
  } else if (k < 9) {
    add('ip', v6(v6Groups()));
  } else {
    add('asn', `AS${1 + int(400_000)}`);
  }
}
const v = validateAccessRules(raw);
if (!v.ok) throw new Error(JSON.stringify(v.issues.slice(0, 3)));

const countries = [...ISO_COUNTRY_CODES];
const clients = (kind: 'v4' | 'v6' | 'mapped'): AccessQuery[] =>
  Array.from({ length: 1 << 14 }, () => ({
    ip: kind === 'v4' ? dotted(v4()) : kind === 'mapped' ? `::ffff:${dotted(v4())}` : v6(v6Groups()),
    asn: 1 + int(400_000),
    country: countries[int(countries.length)] ?? 'US',
  }));

function nsPerDecision(c: CompiledAccessRules, qs: readonly AccessQuery[]): { ns: number; blocked: number } {
  let blocked = 0;
  const mask = qs.length - 1;
  for (let i = 0; i < 200_000; i++) if (decide(c, qs[i & mask] as AccessQuery).action === 'block') blocked++; // warm-up
  blocked = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) if (decide(c, qs[i & mask] as AccessQuery).action === 'block') blocked++;
  return { ns: Number(process.hrtime.bigint() - t0) / N, blocked: blocked / N };
}

const t0 = process.hrtime.bigint();
const big = compileAccessRules(v.rules);
const compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
const none = compileAccessRules([]);
const counts = v.rules.reduce<Record<string, number>>((m, r) => ({ ...m, [r.configuration.target]: (m[r.configuration.target] ?? 0) + 1 }), {});
console.log(`rules: ${v.rules.length} (${Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ')}); compile ${compileMs.toFixed(1)} ms; ` +
  `segments v4 ${big.v4Owners.length}, v6 ${big.v6Owners.length}`);
for (const kind of ['v4', 'v6', 'mapped'] as const) {
  const qs = clients(kind);
  const a = nsPerDecision(none, qs);
  const b = nsPerDecision(big, qs);
  console.log(`${kind.padEnd(6)} clients: no rules ${a.ns.toFixed(1)} ns/decision; 10,000 rules ${b.ns.toFixed(1)} ns/decision (${(b.blocked * 100).toFixed(1)}% blocked)`);
}
