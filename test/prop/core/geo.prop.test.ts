/**
 * Geolocation tables against a linear scan: random disjoint ranges of both families, written in any order and in
 * the text forms the files use (dotted, integer, any IPv6 form, quoted fields), fed to the parser in random pieces,
 * then looked up at and around every range boundary; and random nested, partly overlapping and repeated ranges
 * against a brute-force narrowest-range reference.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { asnCsvParser, countryCsvParser, type AsnInfo, type GeoCsvParser } from '../../../src/core/geo.ts';

interface Range {
  readonly family: 4 | 6;
  readonly start: bigint;
  readonly end: bigint;
  readonly value: number;
}

const MAX = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n } as const;
const text4 = (n: bigint): string => [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
const text6 = (n: bigint, form: number): string => {
  const a = ipaddr.fromByteArray([...Array(16).keys()].map((i) => Number((n >> BigInt(120 - 8 * i)) & 255n))) as ipaddr.IPv6;
  return form % 2 === 0 ? a.toRFC5952String() : a.toNormalizedString().toUpperCase();
};
/** An integer IPv6 at or below 2^32-1 would read as IPv4 without a family hint, so small ones stay in text. */
const addrText = (family: 4 | 6, n: bigint, form: number): string =>
  form % 3 === 2 && (family === 4 || n > MAX[4]) ? String(n) : family === 4 ? text4(n) : text6(n, form);

/** Disjoint ranges: sorted cut points of one family, paired, with gaps. */
const ranges = (family: 4 | 6): fc.Arbitrary<Range[]> =>
  fc.uniqueArray(fc.bigInt({ min: 0n, max: MAX[family] }), { maxLength: 40, comparator: (a, b) => a === b }).chain((cuts) => {
    const sorted = [...cuts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const pairs: [bigint, bigint][] = [];
    for (let i = 0; i + 1 < sorted.length; i += 2) pairs.push([sorted[i] ?? 0n, sorted[i + 1] ?? 0n]);
    return fc.tuple(...pairs.map(() => fc.nat(3))).map((vals) =>
      pairs.map(([start, end], i) => ({ family, start, end, value: vals[i] ?? 0 })),
    );
  });

const COUNTRIES = ['AU', 'nz', 'T1', 'XX'];
const ORGS = ['', 'CLOUDFLARENET', 'Org, Inc.', 'say "hi"'];
const quote = (s: string): string => (/[",]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

function feedInPieces<V>(p: GeoCsvParser<V>, text: string, cuts: readonly number[]): void {
  const ends = [...new Set(cuts.map((c) => text.indexOf('\n', Math.floor(c * text.length)) + 1).filter((e) => e > 0))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...ends, text.length]) {
    if (to <= from) continue;
    assert.equal(p.feed(text, from, to), undefined);
    from = to;
  }
}

/** Probe addresses: every boundary, one either side, and the ends of the space. */
function probes(rs: readonly Range[]): [4 | 6, bigint][] {
  const out: [4 | 6, bigint][] = [[4, 0n], [4, MAX[4]], [6, 0n], [6, MAX[6]]];
  for (const r of rs) {
    for (const n of [r.start - 1n, r.start, r.end, r.end + 1n]) if (n >= 0n && n <= MAX[r.family]) out.push([r.family, n]);
  }
  return out;
}

const scan = (rs: readonly Range[], family: 4 | 6, n: bigint): Range | undefined => rs.find((r) => r.family === family && r.start <= n && n <= r.end);

void describe('geolocation tables (property)', () => {
  void it('find agrees with a linear scan for country CSV in any row order, form and piece split', () => {
    fc.assert(
      fc.property(ranges(4), ranges(6), fc.nat(), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 5 }), (r4, r6, seed, cuts) => {
        const all = [...r4, ...r6];
        const rows = all.map((r, i) => ({ r, line: `${addrText(r.family, r.start, seed + i)},${addrText(r.family, r.end, seed + i)},${COUNTRIES[r.value]}` }));
        rows.sort((a, b) => ((a.r.value * 7 + seed) % 5) - ((b.r.value * 7 + seed) % 5)); // any order
        const text = rows.map((x) => x.line).join('\n') + '\n';
        const p = countryCsvParser({ numericFamily: undefined });
        feedInPieces(p, text, cuts);
        const t = p.finish();
        assert.ok(t.ok, t.ok ? '' : t.message);
        for (const [family, n] of probes(all)) {
          const want = scan(all, family, n);
          const ip = family === 4 ? text4(n) : text6(n, 0);
          assert.equal(t.value.find(ip), want === undefined ? undefined : (COUNTRIES[want.value] ?? '').toUpperCase(), ip);
        }
      }),
      { numRuns: 200 },
    );
  });

  void it('find agrees with a linear scan for ASN CSV with quoted organisations', () => {
    fc.assert(
      fc.property(ranges(4), ranges(6), (r4, r6) => {
        const all = [...r4, ...r6];
        const text = all.map((r) => `${addrText(r.family, r.start, 0)},${addrText(r.family, r.end, 1)},${64_500 + r.value},${quote(ORGS[r.value] ?? '')}`).join('\r\n');
        const p = asnCsvParser();
        assert.equal(p.feed(text), undefined);
        const t = p.finish();
        assert.ok(t.ok, t.ok ? '' : t.message);
        for (const [family, n] of probes(all)) {
          const want = scan(all, family, n);
          const org = want === undefined ? '' : (ORGS[want.value] ?? '');
          const expected: AsnInfo | undefined = want === undefined ? undefined : org === '' ? { asn: 64_500 + want.value } : { asn: 64_500 + want.value, org };
          assert.deepEqual(t.value.find(family === 4 ? text4(n) : text6(n, 1)), expected);
        }
      }),
      { numRuns: 200 },
    );
  });

  void it('gives every address the narrowest range holding it (equal widths: the later line), over random nested and overlapping ranges', () => {
    // Ranges in a small window (so they nest, overlap partly and repeat), near 0 or near the top of the family.
    const overlapping = (family: 4 | 6): fc.Arbitrary<Range[]> =>
      fc.tuple(fc.constantFrom(0n, MAX[family] - 300n, family === 4 ? 0x0a00_0000n : 0x2001_0db8n << 96n), fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 300n }), fc.bigInt({ min: 0n, max: 300n }), fc.nat(3)), { maxLength: 30 })).map(([base, rs]) =>
        rs.map(([a, b, value]) => ({ family, start: base + (a < b ? a : b), end: base + (a < b ? b : a), value })),
      );
    fc.assert(
      fc.property(overlapping(4), overlapping(6), fc.nat(), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 5 }), (r4, r6, seed, cuts) => {
        // Rows interleaved by the seed: the line order (the tie-break) is the order written.
        const rows = [...r4, ...r6].map((r, i) => ({ r, key: (i * 7919 + seed) % 101 })).sort((a, b) => a.key - b.key).map((x) => x.r);
        const text = rows.map((r, i) => `${addrText(r.family, r.start, seed + i)},${addrText(r.family, r.end, seed + i)},${COUNTRIES[r.value]}`).join('\n') + '\n';
        const p = countryCsvParser({ numericFamily: undefined });
        feedInPieces(p, text, cuts);
        const t = p.finish();
        assert.ok(t.ok, t.ok ? '' : t.message);
        const narrowest = (family: 4 | 6, n: bigint): Range | undefined => {
          let best: Range | undefined;
          for (const r of rows) {
            if (r.family !== family || n < r.start || n > r.end) continue;
            if (best === undefined || r.end - r.start <= best.end - best.start) best = r; // later line wins a tie
          }
          return best;
        };
        const found = [...probes(rows)];
        for (const r of rows) found.push([r.family, (r.start + r.end) / 2n]);
        for (const [family, n] of found) {
          const want = narrowest(family, n);
          const ip = family === 4 ? text4(n) : text6(n, 1);
          assert.equal(t.value.find(ip), want === undefined ? undefined : (COUNTRIES[want.value] ?? '').toUpperCase(), ip);
        }
        // Counts against the definitions: inside another range (an equal one included), or overlapping an earlier-starting one partly.
        const inside = (a: Range, b: Range): boolean => a.family === b.family && b.start <= a.start && a.end <= b.end;
        const before = (b: Range, a: Range, bi: number, ai: number): boolean => b.start < a.start || (b.start === a.start && (b.end > a.end || (b.end === a.end && bi < ai)));
        const nested = rows.filter((a, ai) => rows.some((b, bi) => bi !== ai && inside(a, b) && before(b, a, bi, ai))).length;
        const partial = rows.filter((a, ai) => !rows.some((b, bi) => bi !== ai && inside(a, b) && before(b, a, bi, ai)) && rows.some((b) => b.family === a.family && b.start < a.start && a.start <= b.end)).length;
        assert.deepEqual([t.value.stats.ranges, t.value.stats.nested, t.value.stats.partial], [rows.length, nested, partial]);
        assert.ok(t.value.stats.segments <= Math.max(0, 2 * rows.length - 1));
      }),
      { numRuns: 300 },
    );
  });
});
