import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { combineGeo, countryCsvParser, NO_GEO, parseAsnCsv, parseCountryCsv, type AsnInfo, type GeoParseResult, type RangeTable } from '../../../src/core/geo.ts';

function table<V>(r: GeoParseResult<RangeTable<V>>): RangeTable<V> {
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r.value;
}
function failure<V>(r: GeoParseResult<RangeTable<V>>): [string, number] {
  assert.ok(!r.ok, 'expected the CSV to be refused');
  return [r.code, r.line];
}

// Lines as ip-location-db ships them (asn-country-ipv4.csv, asn-country-ipv6.csv, asn-ipv4.csv).
const COUNTRY_V4 = '1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.3.255,CN\n1.0.4.0,1.0.7.255,AU\n';
const COUNTRY_V6 = '2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP\n2001:db8::,2001:db8::ffff,T1\n';
const ASN_V4 = '1.0.0.0,1.0.0.255,13335,CLOUDFLARENET\n1.0.4.0,1.0.5.255,38803,"Wirefreebroadband Pty Ltd, AU"\n1.0.6.0,1.0.7.255,38803,"Wirefreebroadband Pty Ltd, AU"\n';

void describe('geolocation CSV', () => {
  void it('finds the country of IPv4 and IPv6 addresses, inclusive at both ends, and nothing between ranges', () => {
    const t = table(parseCountryCsv(COUNTRY_V4 + COUNTRY_V6));
    assert.equal(t.size, 5);
    assert.equal(t.find('1.0.0.0'), 'AU');
    assert.equal(t.find('1.0.0.255'), 'AU');
    assert.equal(t.find('1.0.1.0'), 'CN');
    assert.equal(t.find('1.0.7.255'), 'AU');
    assert.equal(t.find('1.0.8.0'), undefined);
    assert.equal(t.find('0.255.255.255'), undefined);
    assert.equal(t.find('2001:200::1'), 'JP');
    assert.equal(t.find('2001:200:ffff:ffff:ffff:ffff:ffff:ffff'), 'JP');
    assert.equal(t.find('2001:201::'), undefined);
    assert.equal(t.find('2001:db8::ffff'), 'T1');
    assert.equal(t.find('::1'), undefined);
    assert.equal(t.find('not an address'), undefined);
  });

  void it('looks up an IPv4-mapped IPv6 address in the IPv4 ranges', () => {
    const t = table(parseCountryCsv(COUNTRY_V4));
    assert.equal(t.find('::ffff:1.0.2.3'), 'CN');
    assert.equal(t.find('::ffff:100:203'), 'CN');
  });

  void it('reads the integer forms of the -num files, IPv6 by option or by size', () => {
    const v4 = table(parseCountryCsv('16777216,16777471,AU\n', { numericFamily: 'IPv4' }));
    assert.equal(v4.find('1.0.0.7'), 'AU');
    const v6 = table(parseCountryCsv('42540528726795050063891204319802818560,42540528806023212578155541913346768895,JP\n'));
    assert.equal(v6.find('2001:200::1'), 'JP');
    const small6 = table(parseCountryCsv('1,1,JP\n', { numericFamily: 'IPv6' }));
    assert.equal(small6.find('::1'), 'JP');
    assert.equal(small6.find('0.0.0.1'), undefined);
    assert.deepEqual(failure(parseCountryCsv('4294967296,4294967296,AU\n', { numericFamily: 'IPv4' })), ['E_GEO_FORMAT', 1]);
  });

  void it('skips a header, comments, blank lines, a BOM and CR line ends, and ignores fields past the country', () => {
    const text = '\ufeffip_range_start,ip_range_end,country_code\r\n# generated\r\n\r\n1.0.0.0,1.0.0.255,AU,Queensland,Brisbane\r\n';
    const t = table(parseCountryCsv(text));
    assert.equal(t.size, 1);
    assert.equal(t.find('1.0.0.9'), 'AU');
  });

  void it('upper-cases country codes and skips rows with an empty country', () => {
    const t = table(parseCountryCsv('1.0.0.0,1.0.0.255,au\n1.0.1.0,1.0.1.255,\n'));
    assert.equal(t.find('1.0.0.1'), 'AU');
    assert.equal(t.find('1.0.1.1'), undefined);
    assert.equal(t.size, 1);
  });

  void it('reads ASN rows with quoted organisations, sharing one frozen object per distinct AS', () => {
    const t = table(parseAsnCsv(ASN_V4 + '1.0.8.0,1.0.8.255,64500,"say ""hi"""\n1.0.9.0,1.0.9.255,AS64501,\n1.0.10.0,1.0.10.255,0,unrouted\n'));
    assert.deepEqual(t.find('1.0.0.1'), { asn: 13335, org: 'CLOUDFLARENET' });
    const a = t.find('1.0.4.1');
    assert.deepEqual(a, { asn: 38803, org: 'Wirefreebroadband Pty Ltd, AU' });
    assert.equal(t.find('1.0.7.1'), a);
    assert.ok(Object.isFrozen(a));
    assert.deepEqual(t.find('1.0.8.1'), { asn: 64500, org: 'say "hi"' });
    assert.deepEqual(t.find('1.0.9.1'), { asn: 64501 });
    assert.equal(t.find('1.0.10.1'), undefined);
  });

  void it('sorts rows that are not in order', () => {
    const t = table(parseCountryCsv('1.0.4.0,1.0.7.255,AU\n2001:db8::,2001:db8::ff,DE\n1.0.0.0,1.0.0.255,CN\n::1,::1,US\n'));
    assert.equal(t.find('1.0.0.1'), 'CN');
    assert.equal(t.find('1.0.5.1'), 'AU');
    assert.equal(t.find('::1'), 'US');
    assert.equal(t.find('2001:db8::f'), 'DE');
  });

  void it('refuses malformed data with E_GEO_FORMAT and the line', () => {
    const cases: [string, number][] = [
      ['1.0.0.0,1.0.0.255,AU\n1.0.0.x,1.0.1.0,AU\n', 2],
      ['1.0.0.9,1.0.0.1,AU\n', 1],
      ['1.0.0.0,2001:db8::,AU\n', 1],
      ['1.0.0.0,1.0.0.255\n', 1],
      ['1.0.0.0,1.0.0.255,AUS\n', 1],
      ['1.0.0.0,1.0.0.255,"AU\n', 1],
      ['1.0.0.0,1.0.0.255,A"U\n', 1],
      ['999.0.0.0,1.0.0.255,AU\n', 1], // a first line with digits is data, never a header
    ];
    for (const [text, line] of cases) assert.deepEqual(failure(parseCountryCsv(text)), ['E_GEO_FORMAT', line], text);
    assert.deepEqual(failure(parseAsnCsv('1.0.0.0,1.0.0.255,4294967296,X\n')), ['E_GEO_FORMAT', 1]);
    assert.deepEqual(failure(parseAsnCsv('1.0.0.0,1.0.0.255,ASN,X\n')), ['E_GEO_FORMAT', 1]);
    const r = parseCountryCsv('x\n1.0.0.0,1.0.0.255,AU\n1.0.0.0,1.0.0.0,CNN\n', { source: 'country.csv' });
    assert.ok(!r.ok);
    assert.match(r.message, /^country\.csv:3: /);
  });

  void it('gives every address the narrowest range holding it: nested blocks and single addresses, as the shipped files have', () => {
    // As in geo-whois-asn-country-ipv4.csv: a /23 (DE), a single address in it (BE), and a block at its end (DE).
    const t = table(parseCountryCsv('2.58.196.0,2.58.197.255,DE\n2.58.197.15,2.58.197.15,BE\n2.58.197.16,2.58.197.255,DE\n2.58.196.0,2.58.196.0,NL\n'));
    assert.equal(t.find('2.58.195.255'), undefined);
    assert.equal(t.find('2.58.196.0'), 'NL'); // nested at the start of the outer range
    assert.equal(t.find('2.58.196.1'), 'DE');
    assert.equal(t.find('2.58.197.14'), 'DE');
    assert.equal(t.find('2.58.197.15'), 'BE');
    assert.equal(t.find('2.58.197.16'), 'DE');
    assert.equal(t.find('2.58.197.255'), 'DE');
    assert.equal(t.find('2.58.198.0'), undefined);
    // NL, DE (196.1-197.14), BE, DE (197.16-255, the nested DE block merged with the outer one's tail).
    assert.deepEqual(t.stats, { ranges: 4, nested: 3, partial: 0, segments: 4 });
    // Three levels deep, IPv6, ending at the last address of the family.
    const v6 = table(parseCountryCsv('ff00::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,JP\nffff::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,NL\nffff:ffff::,ffff:ffff::ff,GB\n'));
    assert.equal(v6.find('ff00::1'), 'JP');
    assert.equal(v6.find('fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 'JP');
    assert.equal(v6.find('ffff::'), 'NL');
    assert.equal(v6.find('ffff:ffff::ff'), 'GB');
    assert.equal(v6.find('ffff:ffff::100'), 'NL');
    assert.equal(v6.find('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 'NL');
    assert.deepEqual(v6.stats, { ranges: 3, nested: 2, partial: 0, segments: 4 });
  });

  void it('splits a partial overlap: the narrower range wins where they overlap, each keeps the rest; equal ranges: the later line', () => {
    // As in asn-ipv4.csv: 214.95.0.0-215.0.255.255 (AS749) and 215.0.0.0-215.1.3.255 (AS721), the second narrower.
    const asn = table(parseAsnCsv('214.95.0.0,215.0.255.255,749,DoD\n215.0.0.0,215.1.3.255,721,DoD NIC\n'));
    assert.deepEqual(asn.find('214.95.0.0'), { asn: 749, org: 'DoD' });
    assert.deepEqual(asn.find('214.255.255.255'), { asn: 749, org: 'DoD' });
    assert.deepEqual(asn.find('215.0.0.0'), { asn: 721, org: 'DoD NIC' });
    assert.deepEqual(asn.find('215.1.3.255'), { asn: 721, org: 'DoD NIC' });
    assert.equal(asn.find('215.1.4.0'), undefined);
    assert.deepEqual(asn.stats, { ranges: 2, nested: 0, partial: 1, segments: 2 });
    // The wider range starting later: it still loses the overlap, whatever the row order.
    for (const text of ['10.0.0.0,10.0.0.9,AU\n10.0.0.5,10.0.0.99,NZ\n', '10.0.0.5,10.0.0.99,NZ\n10.0.0.0,10.0.0.9,AU\n']) {
      const t = table(parseCountryCsv(text));
      assert.deepEqual([4, 5, 9, 10].map((x) => t.find(`10.0.0.${x}`)), ['AU', 'AU', 'AU', 'NZ'], text);
    }
    // The same range twice (geo-whois-asn-country-ipv4.csv lists 108.165.88.0-108.165.90.255 as DE, then US).
    const dup = table(parseCountryCsv('108.165.88.0,108.165.90.255,DE\n108.165.88.0,108.165.90.255,US\n'));
    assert.equal(dup.find('108.165.89.1'), 'US');
    assert.deepEqual(dup.stats, { ranges: 2, nested: 1, partial: 0, segments: 1 });
  });

  void it('parses a file fed in pieces at line ends as in one go, counting lines across pieces', () => {
    const text = '# c\n1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.3.255,CN\n2001:db8::,2001:db8::ff,DE\n';
    const p = countryCsvParser();
    const cut1 = text.indexOf('\n') + 1;
    const cut2 = text.indexOf('\n', cut1) + 1;
    assert.equal(p.feed(text, 0, cut1), undefined);
    assert.equal(p.feed(text, cut1, cut2), undefined);
    assert.equal(p.feed(text, cut2), undefined);
    const t = table(p.finish());
    assert.equal(t.size, 3);
    assert.equal(t.find('1.0.2.0'), 'CN');
    assert.equal(t.find('2001:db8::1'), 'DE');
    const q = countryCsvParser();
    assert.equal(q.feed('1.0.0.0,1.0.0.255,AU\n'), undefined);
    const bad = q.feed('1.0.1.0,1.0.1.255,AU\nnope,1.0.2.0,AU\n');
    assert.deepEqual(bad && [bad.code, bad.line], ['E_GEO_FORMAT', 3]);
    assert.deepEqual(failure(q.finish()), ['E_GEO_FORMAT', 3]);
  });

  void it('answers from a 100,000-range table with gaps exactly as the ranges were written', () => {
    const lines: string[] = [];
    const ranges: [number, number, string][] = [];
    const codes = ['AU', 'CN', 'DE', 'US'];
    for (let i = 0; i < 100_000; i++) {
      const start = i * 40_000;
      const end = start + (i % 7) * 5_000; // gaps between ranges
      const code = codes[i % 4] ?? 'US';
      ranges.push([start, end, code]);
      lines.push(`${start},${end},${code}`);
    }
    const t = table(parseCountryCsv(lines.join('\n'), { numericFamily: 'IPv4' }));
    const dotted = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
    for (let k = 0; k < 2_000; k++) {
      const x = (k * 2_654_435_761) % 4_000_000_000;
      const [s, e, code] = ranges[Math.floor(x / 40_000)] ?? [0, -1, ''];
      const hit = s <= x && x <= e ? [s, e, code] : undefined;
      assert.equal(t.find(dotted(x)), hit?.[2], dotted(x));
    }
  });
});

void describe('combined geolocation sources', () => {
  const first = table(parseCountryCsv('1.0.0.0,1.0.0.255,AU\n'));
  const second = table(parseCountryCsv('1.0.0.0,1.0.1.255,CN\n'));
  const asn = table(parseAsnCsv(ASN_V4));

  void it('answers from the first source that knows the address', () => {
    const g = combineGeo({ country: [first, second], asn: [asn] });
    assert.equal(g.country('1.0.0.1'), 'AU');
    assert.equal(g.country('1.0.1.1'), 'CN');
    assert.deepEqual(g.asn('1.0.0.1'), { asn: 13335, org: 'CLOUDFLARENET' });
    assert.equal(g.asn('9.9.9.9'), undefined);
  });

  void it('says XX for an address no country source knows, and nothing without country data or for a non-address', () => {
    const g = combineGeo({ country: [first] });
    assert.equal(g.country('192.0.2.1'), 'XX');
    assert.equal(g.country('2001:db8::1'), 'XX');
    assert.equal(g.country('nope'), undefined);
    assert.equal(combineGeo({ asn: [asn] }).country('1.0.0.1'), undefined);
    const none: AsnInfo | undefined = NO_GEO.asn('1.0.0.1');
    assert.equal(none, undefined);
    assert.equal(NO_GEO.country('1.0.0.1'), undefined);
  });
});
