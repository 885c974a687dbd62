/**
 * The compiled evaluator against a brute-force oracle. Rules are drawn around a few anchor addresses so ranges
 * overlap and nest; they go through the model's validation (raw text forms: IPv4-mapped, upper case, expanded IPv6)
 * and are compiled; the oracle reads the raw rules itself with ipaddr.js and BigInt and picks the winner by the
 * documented precedence with a linear scan.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { compileAccessRules, decide, type AccessDecision, type AccessQuery } from '../../../src/core/access-rules.ts';
import { validateAccessRule, type AccessRule } from '../../../src/model/access-rules.ts';
import { parseIpWords } from '../../../src/model/ip.ts';

interface RawRule {
  readonly id: string;
  readonly mode: 'allow' | 'whitelist' | 'block';
  readonly target: 'ip' | 'ip6' | 'ip_range' | 'asn' | 'country';
  readonly value: string | number;
}

const big = (a: ipaddr.IPv4 | ipaddr.IPv6): bigint => a.toByteArray().reduce((n, b) => (n << 8n) | BigInt(b), 0n);
const v4Text = (n: bigint): string => ipaddr.fromByteArray([24, 16, 8, 0].map((s) => Number((n >> BigInt(s)) & 255n))).toString();
const v6Of = (n: bigint): ipaddr.IPv6 => ipaddr.fromByteArray([...Array(16).keys()].map((i) => Number((n >> BigInt(120 - 8 * i)) & 255n))) as ipaddr.IPv6;

/** The text forms an operator (or a socket) might use for one IPv6 address. */
function v6Text(n: bigint, form: number): string {
  const a = v6Of(n);
  switch (form % 4) {
    case 0:
      return a.toRFC5952String();
    case 1:
      return a.toNormalizedString();
    case 2:
      return a.toNormalizedString().split(':').map((g) => g.padStart(4, '0')).join(':').toUpperCase();
    default:
      return a.toString();
  }
}

const V4_ANCHORS = ['192.0.2.0', '10.0.0.0', '0.0.0.0', '255.255.255.0'].map((s) => big(ipaddr.parse(s)));
const V6_ANCHORS = ['2001:db8::', 'fe80::', '::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00', '64:ff9b::'].map((s) => big(ipaddr.parse(s)));
const ASNS = [1, 2, 64500, 4_294_967_295];
const COUNTRIES = ['US', 'DE', 'XX', 'T1'];

/**
 * An address near an anchor: the anchor with up to `spread` low bits replaced, often by a few fixed patterns so
 * that an `ip` rule, a full-length range and a client often land on the very same address.
 */
const near = (anchors: readonly bigint[], bits: number, spread: number): fc.Arbitrary<bigint> =>
  fc.tuple(
    fc.constantFrom(...anchors),
    fc.integer({ min: 0, max: spread }),
    fc.oneof(fc.constantFrom(0n, 1n, 0x85n, (1n << BigInt(bits)) - 1n), fc.bigInt({ min: 0n, max: (1n << BigInt(bits)) - 1n })),
  ).map(
    ([a, k, r]) => (a & ~((1n << BigInt(k)) - 1n)) | (r & ((1n << BigInt(k)) - 1n)),
  );

const mask = (n: bigint, bits: number, prefix: number): bigint => n & ~((1n << BigInt(bits - prefix)) - 1n) & ((1n << BigInt(bits)) - 1n);

const rawRule: fc.Arbitrary<Omit<RawRule, 'id'>> = fc.oneof(
  // IPv4 ranges and addresses, sometimes written as IPv4-mapped IPv6
  fc.tuple(near(V4_ANCHORS, 32, 8), fc.integer({ min: 0, max: 32 }), fc.nat(3).map((k) => k === 0), fc.boolean(), fc.nat()).map(([n, p, single, mapped, form]) => {
    if (single) return { target: 'ip' as const, value: mapped ? v6Text((0xffffn << 32n) | n, form) : v4Text(n) };
    const net = mask(n, 32, p);
    return { target: 'ip_range' as const, value: mapped ? `${v6Text((0xffffn << 32n) | net, form)}/${96 + p}` : `${v4Text(net)}/${p}` };
  }),
  // IPv6 ranges and addresses
  fc.tuple(near(V6_ANCHORS, 128, 12), fc.integer({ min: 0, max: 128 }), fc.nat(3).map((k) => k === 0), fc.boolean(), fc.nat()).map(([n, p, single, asIp6, form]) =>
    single ? { target: asIp6 ? ('ip6' as const) : ('ip' as const), value: v6Text(n, form) } : { target: 'ip_range' as const, value: `${v6Text(mask(n, 128, p), form)}/${p}` },
  ),
  fc.tuple(fc.constantFrom(...ASNS), fc.constantFrom('AS', 'as', '', '#')).map(([a, f]) => ({ target: 'asn' as const, value: f === '#' ? a : `${f}${a}` })),
  fc.constantFrom(...COUNTRIES, 'de', 'us').map((c) => ({ target: 'country' as const, value: c })),
).chain((r) => fc.constantFrom('allow', 'whitelist', 'block').map((mode) => ({ ...r, mode: mode as RawRule['mode'] })));

const rawRules: fc.Arbitrary<RawRule[]> = fc.array(rawRule, { maxLength: 60, size: 'max' }).map((rs) => rs.map((r, i) => ({ ...r, id: `r${i}` })));

const query: fc.Arbitrary<AccessQuery> = fc.record({
  ip: fc.oneof(
    near(V4_ANCHORS, 32, 8).map(v4Text),
    fc.tuple(near(V4_ANCHORS, 32, 8), fc.nat()).map(([n, form]) => v6Text((0xffffn << 32n) | n, form)),
    fc.tuple(near(V6_ANCHORS, 128, 12), fc.nat()).map(([n, form]) => v6Text(n, form)),
  ),
  asn: fc.option(fc.constantFrom(...ASNS, 3), { nil: undefined }),
  country: fc.option(fc.constantFrom(...COUNTRIES, 'FR'), { nil: undefined }),
});

// ── the oracle ──────────────────────────────────────────────────────────────────────────────────────────────────

interface Net {
  readonly family: 4 | 6;
  readonly n: bigint;
  readonly prefix: number;
}

/** An address or range as the documented rules read it: IPv4-mapped with prefix ≥ 96 is IPv4. */
function net(text: string): Net {
  const [addr = '', p] = text.split('/');
  const a = ipaddr.parse(addr);
  const bits = a.kind() === 'ipv4' ? 32 : 128;
  const prefix = p === undefined ? bits : Number(p);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    return { family: 4, n: big((a as ipaddr.IPv6).toIPv4Address()), prefix: prefix - 96 };
  }
  return { family: bits === 32 ? 4 : 6, n: big(a), prefix };
}

function contains(rule: Net, client: Net): boolean {
  const bits = rule.family === 4 ? 32 : 128;
  return rule.family === client.family && mask(rule.n, bits, rule.prefix) === mask(client.n, bits, rule.prefix);
}

function oracle(rules: readonly RawRule[], q: AccessQuery): { action: AccessDecision['action']; matched: AccessDecision['matched']; ruleId: string | undefined } {
  const client = net(q.ip.includes('%') ? (q.ip.split('%')[0] ?? '') : q.ip);
  let best: { rank: number[]; rule: RawRule; index: number } | undefined;
  rules.forEach((rule, index) => {
    let rank: number[] | undefined;
    if (rule.target === 'ip' || rule.target === 'ip6' || rule.target === 'ip_range') {
      const r = net(String(rule.value));
      if (contains(r, client)) rank = [3, r.prefix * 2 + (rule.target === 'ip_range' ? 0 : 1)];
    } else if (rule.target === 'asn') {
      if (q.asn !== undefined && Number(String(rule.value).replace(/^as/i, '')) === q.asn) rank = [2, 0];
    } else if (q.country !== undefined && String(rule.value).toUpperCase() === q.country) {
      rank = [1, 0];
    }
    if (rank === undefined) return;
    const allow = rule.mode !== 'block';
    const key = [...rank, allow ? 1 : 0, -index];
    const bestKey = best === undefined ? undefined : [...best.rank, best.rule.mode !== 'block' ? 1 : 0, -best.index];
    const wins = bestKey === undefined || key.some((k, i) => key.slice(0, i).every((x, j) => x === bestKey[j]) && k > (bestKey[i] ?? 0));
    if (wins) best = { rank, rule, index };
  });
  if (best === undefined) return { action: 'none', matched: 'UNKNOWN', ruleId: undefined };
  const allow = best.rule.mode !== 'block';
  const kind = best.rule.target === 'asn' ? 'ASN' : best.rule.target === 'country' ? 'COUNTRY' : 'IP';
  return { action: allow ? 'allow' : 'block', matched: allow ? `WHITELIST_${kind}` : `BLOCK_${kind}`, ruleId: best.rule.id };
}

function validated(raw: readonly RawRule[]): AccessRule[] {
  return raw.map((r) => {
    const v = validateAccessRule({ id: r.id, mode: r.mode, configuration: { target: r.target, value: r.value } });
    assert.ok(v.ok, v.ok ? '' : `${JSON.stringify(r)}: ${JSON.stringify(v.issues)}`);
    return v.rule;
  });
}

void describe('access rule evaluation (property)', () => {
  void it('agrees with a brute-force oracle over random overlapping rule sets and clients, IPv4 and IPv6', () => {
    fc.assert(
      fc.property(rawRules, fc.array(query, { minLength: 1, maxLength: 30 }), (raw, queries) => {
        const compiled = compileAccessRules(validated(raw));
        for (const q of queries) {
          const d = decide(compiled, q);
          assert.deepEqual({ action: d.action, matched: d.matched, ruleId: d.ruleId }, oracle(raw, q), JSON.stringify(q));
        }
      }),
      { numRuns: 300 },
    );
  });

  void it('gives the same decisions whatever the order of rules with distinct specificity', () => {
    fc.assert(
      fc.property(rawRules, fc.array(query, { minLength: 1, maxLength: 10 }), fc.nat(), (raw, queries, seed) => {
        const rules = validated(raw);
        const shuffled = [...rules].sort((a, b) => ((a.id.length * 31 + seed) % 7) - ((b.id.length * 31 + seed) % 7) || a.id.localeCompare(b.id));
        const c1 = compileAccessRules(rules);
        const c2 = compileAccessRules(shuffled);
        for (const q of queries) {
          const d1 = decide(c1, q);
          const d2 = decide(c2, q);
          // Ties between rules of one specificity and mode go to the earlier rule, so only the outcome must agree.
          assert.deepEqual([d1.action, d1.matched], [d2.action, d2.matched]);
        }
      }),
      { numRuns: 100 },
    );
  });

  void it('normalises a rule to a form that validates to itself', () => {
    fc.assert(
      fc.property(rawRules, (raw) => {
        for (const rule of validated(raw)) {
          const again = validateAccessRule(rule);
          assert.ok(again.ok);
          assert.deepEqual(again.rule, rule);
        }
      }),
      { numRuns: 100 },
    );
  });
});

void describe('the address parser (property)', () => {
  const words = new Uint32Array(4);

  void it('reads every IPv4 address and every IPv6 text form ipaddr.js writes to the same bits', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }), (n) => {
        assert.equal(parseIpWords(v4Text(n), words), 4);
        assert.equal(BigInt(words[0] ?? 0), n);
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.nat(), fc.boolean(), (n0, form, sparse) => {
        // Sparse values exercise `::` compression of zero runs.
        const n = sparse ? n0 & 0xffff0000ffff00000000ffff0000ffffn : n0;
        for (const text of [v6Text(n, form), `${v6Of(n).toNormalizedString().split(':').slice(0, 6).join(':')}:${v4Text(n & 0xffffffffn)}`]) {
          assert.equal(parseIpWords(text, words), 6, text);
          assert.equal((BigInt(words[0] ?? 0) << 96n) | (BigInt(words[1] ?? 0) << 64n) | (BigInt(words[2] ?? 0) << 32n) | BigInt(words[3] ?? 0), n, text);
        }
      }),
    );
  });

  void it('accepts exactly the strings ipaddr.js accepts as IPv6 or four-part decimal IPv4 (zones aside)', () => {
    const chars = fc.constantFrom('0', '1', 'a', 'F', ':', ':', '.', '2', '5');
    fc.assert(
      fc.property(fc.string({ unit: chars, maxLength: 24 }), (s) => {
        // ipaddr.js reads the deprecated `::a.b.c.d` as IPv4-mapped; only the accept/refuse verdict is compared.
        const theirs = ipaddr.IPv4.isValidFourPartDecimal(s) || ipaddr.IPv6.isValid(s);
        assert.equal(parseIpWords(s, words) !== 0, theirs, s);
      }),
      { numRuns: 5000 },
    );
  });
});
