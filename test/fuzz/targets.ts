/**
 * The fuzz targets: every parser that reads bytes or text a peer or an operator controls, each with an input
 * generator (random input and mutated valid encodings) and a check of its contract. A check passes when the parser
 * returns its documented result type (a `kind`/`ok` union, a coded ConfigIssue) and fails on anything else: a throw
 * (other than the one coded error a parser documents), a code missing from src/model/errors.ts, a result that
 * breaks a stated invariant. Shared by `npm run fuzz` (test/fuzz/run.ts, 10^6 inputs each) and the small slice that
 * `npm test` runs (test/fuzz/fuzz.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import fc from 'fast-check';
import YAML from 'yaml';
import {
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  ProxyHeaderReader,
  proxyV2HeaderLength,
  tlsProxyTlvs,
  type DecodeResult,
  type ProxyAddresses,
} from '../../src/core/proxy-protocol.ts';
import { decodeSpp, encodeSpp, encodeSppHeader, SPP_HEADER_LENGTH } from '../../src/core/spp.ts';
import { scanClientHello } from '../../src/net/node/tls.ts';
import { loadConfigText, parseZones } from '../../src/model/config.ts';
import { parseAsnCsv, parseCountryCsv, type GeoParseResult, type RangeTable } from '../../src/core/geo.ts';
import { answerQuery, DNS_UDP_MAX } from '../../src/dns/answer.ts';
import { dnsViewOf } from '../../src/dns/view.ts';
import { validateApp } from '../../src/model/app.ts';
import { validateAccessRule } from '../../src/model/access-rules.ts';
import { parseAnalyticsQuery, parseFilters, DIMENSIONS, METRICS, TIME_DELTAS } from '../../src/api/analytics-query.ts';
import { parseRuleQuery, selectRules } from '../../src/api/rule-list.ts';
import type { ApiRule } from '../../src/api/config-source.ts';
import { isErrorCode } from '../../src/model/errors.ts';
import type { ConfigIssue } from '../../src/model/types.ts';
import { validAppArb, validConfigArb } from '../prop/model/arbitraries.ts';
import { bigRaw, configOf, fixtureRaw, query } from '../unit/dns/fixture.ts';
import { cutsArb, editsArb, mutateBytes, mutateText, split } from './mutate.ts';

export interface FuzzTarget<T> {
  /** Short name, used by `--only`. */
  readonly name: string;
  /** The function under test. */
  readonly parser: string;
  readonly input: fc.Arbitrary<T>;
  /** Runs the parser on one input; throws (an AssertionError, or the parser's own throw) when the contract breaks. */
  run(input: T): void;
}

const target = <T>(t: FuzzTarget<T>): FuzzTarget<unknown> => t as unknown as FuzzTarget<unknown>;

// ── shared checks ─────────────────────────────────────────────────────────────────────────────────────────────

function checkIssue(i: ConfigIssue, prefix?: string): void {
  assert.ok(isErrorCode(i.code), `issue code ${String(i.code)} is not in src/model/errors.ts`);
  if (prefix !== undefined) assert.ok(i.code.startsWith(prefix), `issue code ${i.code} is not an ${prefix} code`);
  assert.equal(typeof i.message, 'string');
  assert.equal(typeof i.pointer, 'string');
}

function isIssue(v: object): v is ConfigIssue {
  return 'code' in v && 'pointer' in v;
}

// ── PROXY protocol v1 and v2 (TCP streams, UDP datagrams) ────────────────────────────────────────────────────

const PP_CODES = new Set(['E_PP_BAD_SIGNATURE', 'E_PP_V1_MALFORMED', 'E_PP_V1_TOO_LONG', 'E_PP_V2_BAD_VERSION', 'E_PP_V2_BAD_COMMAND', 'E_PP_V2_BAD_FAMILY', 'E_PP_V2_BAD_LENGTH', 'E_PP_V2_BAD_TLV']);

const port = fc.integer({ min: 0, max: 65535 });
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const ipv6 = fc.ipV6();
const ppAddresses: fc.Arbitrary<ProxyAddresses> = fc.oneof(
  fc.tuple(ipv4, port, ipv4, port).map(([s, sp, d, dp]) => ({ family: 'IPv4' as const, src: { address: s, port: sp }, dst: { address: d, port: dp } })),
  fc.tuple(ipv6, port, ipv6, port).map(([s, sp, d, dp]) => ({ family: 'IPv6' as const, src: { address: s, port: sp }, dst: { address: d, port: dp } })),
);

const ascii = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));

/** Valid v1 lines: encoder output, UNKNOWN forms, IPv6 with a trailing dotted quad. */
const v1Valid = fc.oneof(
  { weight: 4, arbitrary: ppAddresses.map((a) => encodeProxyV1(a)) },
  fc.constantFrom(ascii('PROXY UNKNOWN\r\n'), ascii('PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n'), ascii('PROXY TCP6 ::ffff:1.2.3.4 1:2:3:4:5:6:1.2.3.4 1 2\r\n')),
);
const V1_TOKENS = ['PROXY', ' ', 'TCP4', 'TCP6', 'UNKNOWN', '\r', '\n', '\r\n', '.', ':', '::', '0', '00', '1', '255', '256', '65535', '65536', 'ffff', '1.2.3.4', '::1', '%eth0', '\t', '-1'];
/** Lines made of v1 tokens: near-grammatical text. */
const v1Tokens = fc.array(fc.constantFrom(...V1_TOKENS), { maxLength: 20 }).map((t) => ascii(`PROXY ${t.join('')}`));

/** Valid v2 headers: TCP and UDP over IPv4/IPv6, LOCAL, AF_UNIX and UNSPEC blocks, with TLVs (TLS ones included). */
const tlvsArb = fc.oneof(
  fc.array(fc.record({ type: fc.nat(255), value: fc.uint8Array({ maxLength: 32 }) }), { maxLength: 4 }),
  fc.tuple(fc.constantFrom('TLSv1.2', 'TLSv1.3'), fc.constantFrom('ECDHE-RSA-AES128-GCM-SHA256', 'TLS_AES_128_GCM_SHA256'), fc.string({ maxLength: 20 })).map(([version, cipher, sni]) => tlsProxyTlvs({ version, cipher, sni })),
);
function rawV2(verCmd: number, fam: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + body.length);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = verCmd;
  out[13] = fam;
  out[14] = body.length >> 8;
  out[15] = body.length & 0xff;
  out.set(body, 16);
  return out;
}
const v2Valid = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(ppAddresses, fc.constantFrom('stream' as const, 'dgram' as const), tlvsArb).map(([a, transport, tlvs]) => encodeProxyV2(a, { transport, tlvs })) },
  { weight: 1, arbitrary: fc.tuple(ppAddresses, tlvsArb).map(([a, tlvs]) => encodeProxyV2(a, { command: 'local', tlvs })) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(0x31, 0x32), fc.string({ maxLength: 40 }), fc.boolean())
      .map(([fam, path, abstract]) => {
        const block = new Uint8Array(216);
        const p = Buffer.from(path);
        block.set(p.subarray(0, abstract ? 107 : 108), abstract ? 1 : 0);
        block.set(p.subarray(0, 108), 108);
        return rawV2(0x21, fam, block);
      }),
  },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0x00, 0x01, 0x02, 0x10, 0x20, 0x30), fc.uint8Array({ maxLength: 40 })).map(([fam, body]) => rawV2(0x21, fam, body)) },
);
/** A valid signature, then random version, family and length bytes and a random body. */
const v2Random = fc.tuple(fc.nat(255), fc.nat(255), fc.uint8Array({ maxLength: 300 })).map(([vc, fam, body]) => rawV2(vc, fam, body));

function checkDecode(buf: Uint8Array, r: DecodeResult): void {
  switch (r.kind) {
    case 'incomplete': {
      // A full buffer always decides: 107 bytes for v1, 16 + len for v2.
      const need = proxyV2HeaderLength(buf);
      if (need !== undefined) assert.ok(buf.length < need, `incomplete with all ${need} bytes of a v2 header`);
      else if (buf[0] === 0x50) assert.ok(buf.length < PROXY_V1_MAX_LENGTH, `incomplete with ${buf.length} bytes of a v1 line`);
      return;
    }
    case 'error':
      assert.ok(PP_CODES.has(r.code) && isErrorCode(r.code), `code ${r.code}`);
      assert.equal(typeof r.detail, 'string');
      return;
    case 'header': {
      const h = r.header;
      assert.ok(h.length <= buf.length && r.rest.length === buf.length - h.length, 'rest is the bytes past the header');
      assert.equal(h.family !== 'unspec', h.src !== undefined && h.dst !== undefined, 'src and dst exactly when the family is known');
      if (h.family !== 'unspec') assert.equal(h.command, 'proxy');
      for (const e of [h.src, h.dst]) {
        if (e === undefined) continue;
        assert.ok(Number.isInteger(e.port) && e.port >= 0 && e.port <= 65535, `port ${e.port}`);
        if (h.family === 'IPv4' || h.family === 'IPv6') assert.equal(isIP(e.address), h.family === 'IPv4' ? 4 : 6, `address ${e.address}`);
      }
      if (h.version === 1) assert.equal(h.tlvs.length, 0);
      return;
    }
  }
}

/** The same bytes through the streaming reader, in chunks: the verdict must equal the whole-buffer decode. */
function checkReader(buf: Uint8Array, whole: DecodeResult, cuts: readonly number[]): void {
  const reader = new ProxyHeaderReader();
  let got: DecodeResult = { kind: 'incomplete' };
  for (const chunk of split(buf, cuts)) {
    got = reader.push(chunk);
    if (got.kind !== 'incomplete') break;
  }
  assert.equal(got.kind, whole.kind, 'reader and decoder agree on the kind');
  if (got.kind === 'error' && whole.kind === 'error') assert.equal(got.code, whole.code);
  if (got.kind === 'header' && whole.kind === 'header') assert.deepEqual(got.header, whole.header);
}

function proxyTarget(name: string, valid: fc.Arbitrary<Uint8Array>, random: fc.Arbitrary<Uint8Array>): FuzzTarget<{ bytes: Uint8Array; cuts: number[] }> {
  const mutated = fc.tuple(valid, fc.uint8Array({ maxLength: 16 }), editsArb(4, true)).map(([h, payload, edits]) => mutateBytes(Buffer.concat([h, payload]), edits));
  return {
    name,
    parser: 'decodeProxyHeader + ProxyHeaderReader (src/core/proxy-protocol.ts)',
    input: fc.record({ bytes: fc.oneof({ weight: 3, arbitrary: mutated }, { weight: 1, arbitrary: random }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 120 }) }), cuts: cutsArb }),
    run({ bytes, cuts }) {
      const r = decodeProxyHeader(bytes);
      checkDecode(bytes, r);
      checkReader(bytes, r, cuts);
    },
  };
}

// ── Simple Proxy Protocol ───────────────────────────────────────────────────────────────────────────────────

const sppValid = fc
  .tuple(fc.oneof(ipv4, ipv6), port, fc.oneof(ipv4, ipv6), port, fc.uint8Array({ maxLength: 64 }))
  .map(([c, cp, p, pp, payload]) => encodeSpp({ client: { address: c, port: cp }, proxy: { address: p, port: pp } }, payload));

const spp: FuzzTarget<Uint8Array> = {
  name: 'spp',
  parser: 'decodeSpp (src/core/spp.ts)',
  input: fc.oneof(
    { weight: 3, arbitrary: fc.tuple(sppValid, editsArb(4, true)).map(([d, e]) => mutateBytes(d, e)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 80 }).map((b) => Uint8Array.from(Buffer.concat([Buffer.from([0x56, 0xec]), b]))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 80 }) },
  ),
  run(d) {
    const r = decodeSpp(d);
    if (r.kind === 'error') {
      assert.ok(r.code === 'E_SPP_TOO_SHORT' || r.code === 'E_SPP_BAD_MAGIC', r.code);
      return;
    }
    assert.equal(r.payload.length, d.length - SPP_HEADER_LENGTH);
    // Any 16 bytes are an address: the decoded header encodes back to the same 38 bytes.
    assert.deepEqual(encodeSppHeader({ client: r.client, proxy: r.proxy }), d.subarray(0, SPP_HEADER_LENGTH));
  },
};

// ── TLS ClientHello (the SNI reader in front of edge TLS) ────────────────────────────────────────────────────

const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);

interface HelloSpec {
  sni: string | undefined;
  sessionId: number;
  suites: number;
  extsBefore: Array<{ type: number; body: Uint8Array }>;
  recordCuts: number[];
}

/** A ClientHello with an optional SNI among other extensions, fragmented over one or more records. */
function helloBytes(h: HelloSpec): Buffer {
  const ext: Buffer[] = h.extsBefore.map((e) => Buffer.concat([u16(e.type === 0 ? 0x0a : e.type), u16(e.body.length), e.body]));
  if (h.sni !== undefined) {
    const name = Buffer.from(h.sni, 'latin1');
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    const list = Buffer.concat([u16(entry.length), entry]);
    ext.push(Buffer.concat([u16(0), u16(list.length), list]));
  }
  ext.push(Buffer.concat([u16(0x000b), u16(2), Buffer.from([1, 0])]));
  const exts = Buffer.concat(ext);
  const suites = Buffer.concat(Array.from({ length: h.suites }, (_, i) => u16(0x1301 + i)));
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 9), Buffer.from([h.sessionId]), Buffer.alloc(h.sessionId, 7), u16(suites.length), suites, Buffer.from([1, 0]), u16(exts.length), exts]);
  const msg = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  const records: Buffer[] = [];
  let prev = 0;
  for (const k of [...new Set(h.recordCuts.map((c) => Math.floor((c / 1000) * msg.length)).filter((k) => k > 0))].sort((a, b) => a - b).concat(msg.length)) {
    if (k <= prev) continue;
    records.push(Buffer.concat([Buffer.from([0x16, 3, 1]), u16(k - prev), msg.subarray(prev, k)]));
    prev = k;
  }
  return Buffer.concat(records);
}

const helloSpec: fc.Arbitrary<HelloSpec> = fc.record({
  sni: fc.option(fc.oneof(fc.domain(), fc.string({ maxLength: 40 })), { nil: undefined }),
  sessionId: fc.constantFrom(0, 32),
  suites: fc.integer({ min: 0, max: 8 }),
  extsBefore: fc.array(fc.record({ type: fc.nat(0xffff), body: fc.uint8Array({ maxLength: 24 }) }), { maxLength: 3 }),
  recordCuts: fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 3 }),
});

const clientHello: FuzzTarget<{ bytes: Uint8Array; sni?: string | null }> = {
  name: 'client-hello',
  parser: 'scanClientHello (src/net/node/tls.ts)',
  input: fc.oneof(
    { weight: 4, arbitrary: fc.tuple(helloSpec, editsArb(4, true)).map(([h, e]) => (e.length === 0 ? { bytes: Uint8Array.from(helloBytes(h)), sni: h.sni === undefined ? null : Buffer.from(h.sni, 'latin1').toString('latin1') } : { bytes: mutateBytes(helloBytes(h), e) })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => ({ bytes: Uint8Array.from(Buffer.concat([Buffer.from([0x16, 3, 1, b.length >> 8, b.length & 0xff, 1]), b])) })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes })) },
  ),
  run({ bytes, sni }) {
    const r = scanClientHello(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    switch (r.kind) {
      case 'partial':
        break;
      case 'not_tls':
        assert.equal(typeof r.detail, 'string');
        break;
      case 'hello':
        assert.ok(r.servername === undefined || typeof r.servername === 'string');
        break;
      default:
        assert.fail(`unknown kind ${(r as { kind: string }).kind}`);
    }
    // An undamaged ClientHello: its SNI is read exactly.
    if (sni !== undefined) assert.deepEqual(r, { kind: 'hello', servername: sni ?? undefined });
  },
};

// ── the config loader (YAML text → validated config) ─────────────────────────────────────────────────────────

const CONFIG_TOKENS = [
  '&a ', '*a', '<<: *a\n', '!!str ', '!!binary ', '!!int ', '!tag ', '{', '}', '[', ']', ', ', ': ', '- ', '\n', '\n  ', '\n    - ', '\t', '# ', '"', "'", '\\', '|\n', '>-\n',
  '---\n', '...\n', '%YAML 1.2\n', '? ', '\u0000', '\ufeff', '\ud800', 'null', '~', '1e999', '0x1F', '-0', '.inf', '.nan', '65536', '0', '-1', '2147483648', 'tcp/0-65535', 'udp/1-',
  'tcp/22', 'tcp://127.0.0.1:1', 'tcp://[::1]:1', '127.0.0.1', '::', '0.0.0.0/0', 'apps:', 'edge:', 'zones:', 'node:', 'dns:', 'log:', 'api:', 'access_rules:', 'proxy_protocol: ',
  'origin_direct: ', 'origin_dns: ', 'edge_ips: ', 'tls: ', 'protocol: ', 'id: ', 'name: ', '__proto__: ', 'constructor: ', 'true', 'yes', 'off',
];

/** Valid config texts: the shipped example, the DNS fixture, and generated configs, as YAML and as JSON. */
const configSeeds: string[] = (() => {
  const out = [readFileSync(new URL('../../examples/refract.yaml', import.meta.url), 'utf8'), YAML.stringify(fixtureRaw()), JSON.stringify(bigRaw(3))];
  for (const c of fc.sample(validConfigArb, { numRuns: 12, seed: 16 })) out.push(YAML.stringify(c), JSON.stringify(c, null, 1));
  return out;
})();

const config: FuzzTarget<string> = {
  name: 'config',
  parser: 'loadConfigText (src/model/config.ts)',
  input: fc.oneof(
    { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...configSeeds), editsArb(6)).map(([t, e]) => mutateText(t, e, CONFIG_TOKENS)) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom(...CONFIG_TOKENS), { maxLength: 40 }).map((t) => t.join('')) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    // Deep nesting, closed or not, around a seed's text: what once exhausted the YAML library's stack.
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...configSeeds), fc.integer({ min: 0, max: 3_000 }), fc.constantFrom(['[', ']'], ['{a: ', '}'], ['- ', ''], ['&x [', ']'], ['[*x, ', ']']), fc.boolean(), fc.nat())
        .map(([t, n, [open, close], closed, at]) => {
          const i = at % (t.length + 1);
          return `${t.slice(0, i)}${open.repeat(n)}${closed ? close.repeat(n) : ''}${t.slice(i)}`;
        }),
    },
  ),
  run(text) {
    const r = loadConfigText(text, 'fuzz.yaml');
    for (const w of r.warnings) assert.ok(w.code.startsWith('W_') && isErrorCode(w.code), `warning code ${w.code}`);
    if (r.ok) {
      assert.ok(Object.isFrozen(r.config), 'the config is frozen');
    } else {
      assert.ok(r.issues.length > 0, 'a refused config names at least one issue');
      for (const i of r.issues) checkIssue(i);
    }
  },
};

// ── geolocation CSV ───────────────────────────────────────────────────────────────────────────────────────────

/** The first lines of a shipped ip-location-db file (a dev dependency): real rows as seeds. */
function head(path: string, lines: number): string {
  try {
    const text = readFileSync(new URL(`../../node_modules/@ip-location-db/${path}`, import.meta.url), 'latin1');
    let at = 0;
    for (let i = 0; i < lines && at !== -1; i++) at = text.indexOf('\n', at + 1);
    return text.slice(0, at === -1 ? text.length : at + 1);
  } catch {
    return '';
  }
}

const GEO_TOKENS = [',', '"', '""', '\n', '\r\n', '\r', '#', '::', ':', '.', '-', ' ', '\ufeff', '0', '255', '256', '4294967295', '4294967296', '340282366920938463463374607431768211455', '340282366920938463463374607431768211456', 'AS', 'as', 'ZZ', 'T1', 'xx', '::ffff:', '1.2.3.4', 'ip_range_start,ip_range_end,country_code\n', '"a,b"', '00', '1e3', '0x10'];

const countrySeeds = [
  head('geo-whois-asn-country/geo-whois-asn-country-ipv4.csv', 30),
  head('geo-whois-asn-country/geo-whois-asn-country-ipv6.csv', 20),
  head('geo-whois-asn-country/geo-whois-asn-country-ipv4-num.csv', 20),
  'ip_range_start,ip_range_end,country_code\r\n# comment\r\n1.0.0.0,1.0.0.255,AU\r\n"1.0.1.0","1.0.3.255","cn"\r\n2001:db8::,2001:db8::ffff,T1\r\n10.0.0.0,10.0.0.255,\r\n',
  '\ufeff16777216,16777471,AU\n3221225984,3221226239,US,extra,fields\n',
].filter((s) => s !== '');

const asnSeeds = [
  head('asn/asn-ipv4.csv', 30),
  head('asn/asn-ipv6.csv', 20),
  head('asn/asn-ipv6-num.csv', 10),
  'start,end,asn,org\n1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."\n1.0.4.0,1.0.7.255,AS38803,\n2.0.0.0,2.0.0.255,0,unrouted\n',
].filter((s) => s !== '');

const PROBES = ['1.0.0.1', '1.0.4.5', '2001:db8::1', '2001:200::1', '0.0.0.0', '255.255.255.255', '::', '::ffff:1.0.0.1', 'not an address'];

function geoTarget<V>(name: string, parser: string, seeds: readonly string[], parse: (t: string) => GeoParseResult<RangeTable<V>>, checkValue: (v: V) => void): FuzzTarget<string> {
  return {
    name,
    parser,
    input: fc.oneof(
      { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...seeds), editsArb(6)).map(([t, e]) => mutateText(t, e, GEO_TOKENS)) },
      { weight: 1, arbitrary: fc.array(fc.constantFrom(...GEO_TOKENS), { maxLength: 40 }).map((t) => t.join('')) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    ),
    run(text) {
      const r = parse(text);
      if (!r.ok) {
        assert.equal(r.code, 'E_GEO_FORMAT');
        assert.ok(Number.isInteger(r.line) && r.line >= 0, `line ${r.line}`);
        assert.equal(typeof r.message, 'string');
        return;
      }
      // The table answers lookups of any string (an address in it, outside it, or none).
      for (const ip of PROBES) {
        const v = r.value.find(ip);
        if (v !== undefined) checkValue(v);
      }
      const first = /^[^,\n]*/.exec(text)?.[0] ?? '';
      const v = r.value.find(first);
      if (v !== undefined) checkValue(v);
    },
  };
}

// ── DNS queries ───────────────────────────────────────────────────────────────────────────────────────────────

const dnsViews = [dnsViewOf(configOf(fixtureRaw())), dnsViewOf(configOf(bigRaw(60)))];
const dnsSeeds = [
  query('game.example.com', 'A'),
  query('GAME.example.com', 'AAAA', { edns: 1232 }),
  query('big.example.com', 'A', { edns: 4096 }),
  query('example.com', 'NS'),
  query('nope.example.com', 'TXT', { edns: 512, ednsFlags: 0x8000 }),
  query('1.0.0.127.in-addr.arpa', 'PTR'),
  query('example.com', 'SOA', { edns: 1232, ednsVersion: 1 }),
  query('fixed.example.com', 'ANY'),
];

const dns: FuzzTarget<{ bytes: Uint8Array; tcp: boolean; big: boolean }> = {
  name: 'dns',
  parser: 'answerQuery (src/dns/answer.ts)',
  input: fc.record({
    bytes: fc.oneof(
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...dnsSeeds), editsArb(5)).map(([q, e]) => mutateBytes(q, e)) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }) },
    ),
    tcp: fc.boolean(),
    big: fc.boolean(),
  }),
  run({ bytes, tcp, big }) {
    const view = dnsViews[big ? 1 : 0];
    assert.ok(view !== undefined);
    const out = answerQuery(bytes, tcp ? 'tcp' : 'udp', view);
    if (out.kind === 'drop') {
      assert.ok(bytes.length < 12 || ((bytes[2] ?? 0) & 0x80) !== 0, 'only short queries and responses are dropped');
      return;
    }
    assert.equal(out.bytes[0], bytes[0]);
    assert.equal(out.bytes[1], bytes[1]);
    assert.equal((out.bytes[2] ?? 0) & 0x80, 0x80, 'QR set');
    if (!tcp) assert.ok(out.bytes.length <= DNS_UDP_MAX);
  },
};

// ── API request bodies (the zod schemas of apps, access rules and zones) ─────────────────────────────────────

/** Values worth putting in any field: wrong types, boundaries, prototype keys, long strings. */
const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom('', ' ', 'tcp/0', 'tcp/65536', 'udp/1-0', 'tcp/1-65535', 'tcp/22', 'tcp://[::1]:0', 'udp://1.2.3.4:1-2', 'CNAME', 'ADDRESS', 'SRV', 'static', 'dynamic', 'v1', 'v2', 'simple', 'full', 'strict', -1, 0, 1.5, 2 ** 53, -(2 ** 31), Infinity, NaN, true, null, [], {}),
  fc.constant(JSON.parse('{"__proto__": {"polluted": 1}, "constructor": {"prototype": {}}}') as unknown),
  fc.string({ minLength: 200, maxLength: 2000 }),
);

/** `obj` with up to `n` fields set to nasty values, deleted, or nested one level down. */
function damagedObject(base: fc.Arbitrary<Record<string, unknown>>, keys: readonly string[]): fc.Arbitrary<unknown> {
  const edit = fc.record({ key: fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 8 })), sub: fc.option(fc.constantFrom(...keys, 'name', 'type', 'ips', 'target', 'value'), { nil: undefined }), del: fc.boolean(), value: nastyValue });
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([o, edits]) => {
      const out: Record<string, unknown> = structuredClone(o);
      for (const e of edits) {
        // A copy: fast-check hands out the same constant objects to many runs, which must not see each other's edits.
        const value = structuredClone(e.value);
        if (e.del) delete out[e.key];
        else if (e.sub !== undefined && typeof out[e.key] === 'object' && out[e.key] !== null) (out[e.key] as Record<string, unknown>)[e.sub] = value;
        else out[e.key] = value;
      }
      return out;
    }) },
    { weight: 1, arbitrary: nastyValue },
  );
}

const APP_KEYS = ['id', 'protocol', 'dns', 'origin_direct', 'origin_dns', 'origin_port', 'proxy_protocol', 'spp', 'tls', 'edge_ips', 'ip_firewall', 'argo_smart_routing', 'traffic_type', 'connect_timeout_ms', 'idle_timeout_ms', 'edge_tls', 'zone', 'access_rules'];

const apiApp: FuzzTarget<unknown> = {
  name: 'api-app',
  parser: 'validateApp (src/model/app.ts; POST/PUT app bodies)',
  input: damagedObject(validAppArb(), APP_KEYS),
  run(raw) {
    const r = validateApp(raw);
    for (const w of r.warnings) checkIssue(w, 'W_');
    if (r.ok) assert.ok(Object.isFrozen(r.app));
    else {
      assert.ok(r.issues.length > 0);
      for (const i of r.issues) checkIssue(i);
    }
  },
};

const RULE_VALUES = ['1.2.3.4', '1.2.3.04', '::1', '::ffff:1.2.3.4', '2001:db8::/32', '2001:db8::1/32', '10.0.0.0/8', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/08', '::/0', '0.0.0.0/0', '1.2.3.4/32', '::ffff:0:0/96', '::ffff:1.2.3.0/120', '1.2.3/24', '1.2.3.4%eth0', 'AS13335', 'as0', '4294967296', '13335', 'DE', 'de', 'XX', 'T1', 'ZZ', ''];
const validRule = fc.record({
  mode: fc.constantFrom('block', 'allow', 'whitelist', 'challenge'),
  configuration: fc.oneof(
    fc.record({ target: fc.constantFrom('ip', 'ip6', 'ip_range', 'asn', 'country'), value: fc.constantFrom(...RULE_VALUES) }),
    fc.record({ target: fc.constant('ip'), value: fc.oneof(ipv4, ipv6) }),
    fc.record({ target: fc.constant('ip_range'), value: fc.tuple(fc.oneof(ipv4, ipv6), fc.integer({ min: -1, max: 130 })).map(([a, p]) => `${a}/${p}`) }),
    fc.record({ target: fc.constant('asn'), value: fc.oneof(fc.integer({ min: -1, max: 2 ** 32 }), fc.integer({ min: 0, max: 2 ** 32 }).map((n) => `AS${n}`)) }),
  ),
  notes: fc.string({ maxLength: 20 }),
});

const apiRule: FuzzTarget<unknown> = {
  name: 'api-rule',
  parser: 'validateAccessRule (src/model/access-rules.ts; POST/PATCH rule bodies)',
  input: fc.oneof({ weight: 2, arbitrary: validRule }, { weight: 3, arbitrary: damagedObject(validRule, ['mode', 'configuration', 'notes', 'id', 'zone']) }),
  run(raw) {
    const r = validateAccessRule(raw);
    for (const w of r.warnings) checkIssue(w, 'W_');
    if (r.ok) assert.ok(Object.isFrozen(r.rule));
    else for (const i of r.issues) checkIssue(i);
  },
};

const apiZone: FuzzTarget<unknown> = {
  name: 'api-zone',
  parser: 'parseZones (src/model/config.ts; POST /zones bodies)',
  input: fc.oneof(
    fc.array(damagedObject(fc.record({ name: fc.oneof(fc.domain(), fc.string({ maxLength: 30 })) }), ['name', 'id']), { maxLength: 4 }),
    nastyValue,
  ),
  run(raw) {
    const r = parseZones(raw);
    for (const i of r.issues) checkIssue(i);
    for (const z of r.zones) assert.equal(typeof z.id, 'string');
  },
};

// ── API query strings: analytics and the access-rule list ─────────────────────────────────────────────────────

const ANALYTICS_TOKENS = [...METRICS, ...DIMENSIONS, ...TIME_DELTAS, '==', '!=', '>=', '<=', '>', '<', ';', ',', ' AND ', ' OR ', "'", '"', ' ', '-', '+', 'connect', 'tcp-22', 'FRA', '4', '6', 'x\ny'];
const TIMES = ['2026-01-01T00:00:00Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999+23:59', '2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T00:00:00-00:00', '2026-01-01', 'now'];
const tokenText = (tokens: readonly string[]): fc.Arbitrary<string> => fc.oneof({ weight: 3, arbitrary: fc.array(fc.constantFrom(...tokens), { maxLength: 8 }).map((t) => t.join('')) }, { weight: 1, arbitrary: fc.string({ maxLength: 30 }) });
const paramValue = (text: fc.Arbitrary<string>): fc.Arbitrary<string | string[]> => fc.oneof({ weight: 4, arbitrary: text }, { weight: 1, arbitrary: fc.array(text, { maxLength: 3 }) });

const analyticsQuery = fc.record(
  {
    metrics: paramValue(tokenText(ANALYTICS_TOKENS)),
    dimensions: paramValue(tokenText(ANALYTICS_TOKENS)),
    filters: paramValue(tokenText(ANALYTICS_TOKENS)),
    since: paramValue(fc.oneof(fc.constantFrom(...TIMES), fc.string({ maxLength: 30 }))),
    until: paramValue(fc.oneof(fc.constantFrom(...TIMES), fc.string({ maxLength: 30 }))),
    sort: paramValue(tokenText(ANALYTICS_TOKENS)),
    limit: paramValue(fc.oneof(fc.constantFrom('0', '1', '10000', '10001', '1e3', '-1', ''), fc.string({ maxLength: 6 }))),
    time_delta: paramValue(fc.oneof(fc.constantFrom(...TIME_DELTAS), fc.string({ maxLength: 8 }))),
  },
  { requiredKeys: [] },
);

const apiAnalytics: FuzzTarget<{ q: Record<string, unknown>; now: number; bytime: boolean }> = {
  name: 'api-analytics',
  parser: 'parseAnalyticsQuery, parseFilters (src/api/analytics-query.ts)',
  input: fc.record({ q: analyticsQuery, now: fc.integer({ min: 0, max: 4_102_444_800_000 }), bytime: fc.boolean() }),
  run({ q, now, bytime }) {
    const r = parseAnalyticsQuery('zone', q, now, bytime ? 'bytime' : 'summary');
    if (isIssue(r)) checkIssue(r, 'E_API_ANALYTICS_');
    else {
      assert.ok(r.since < r.until, 'since before until');
      assert.ok(r.limit >= 1 && r.limit <= 10_000);
    }
    if (typeof q['filters'] === 'string') {
      const f = parseFilters(q['filters']);
      if (!Array.isArray(f)) checkIssue(f as ConfigIssue, 'E_API_ANALYTICS_');
    }
  },
};

const scope = { id: 'z', name: 'example.com', type: 'zone' } as const;
const sampleRules: ApiRule[] = [
  ['ip', '192.0.2.1'], ['ip6', '2001:db8::1'], ['ip_range', '10.0.0.0/8'], ['ip_range', '2001:db8::/32'], ['asn', 'AS13335'], ['country', 'DE'],
].map(([target, value], i) => ({
  id: `r${i}`, mode: i % 2 === 0 ? 'block' : 'whitelist', configuration: { target: target ?? '', value: value ?? '' }, notes: `note ${i} ÄÖ`,
  allowed_modes: ['block', 'whitelist'], scope, created_on: '2026-01-01T00:00:00Z', modified_on: '2026-01-01T00:00:00Z',
}));
const RULE_QUERY_TOKENS = ['block', 'allow', 'whitelist', 'challenge', 'ip', 'ip6', 'ip_range', 'asn', 'country', 'all', 'any', 'asc', 'desc', 'mode', 'configuration.target', 'configuration.value', 'note', 'ÄÖ', ...RULE_VALUES];
const ruleQuery = fc.dictionary(
  fc.constantFrom('mode', 'notes', 'configuration.target', 'configuration[target]', 'configuration.value', 'configuration[value]', 'match', 'order', 'direction', 'page', 'x'),
  paramValue(fc.oneof(fc.constantFrom(...RULE_QUERY_TOKENS), fc.string({ maxLength: 20 }))),
  { maxKeys: 6 },
);

const apiRuleQuery: FuzzTarget<Record<string, unknown>> = {
  name: 'api-rule-query',
  parser: 'parseRuleQuery + selectRules (src/api/rule-list.ts)',
  input: ruleQuery,
  run(q) {
    const r = parseRuleQuery(q);
    if (isIssue(r)) {
      checkIssue(r, 'E_API_BAD_REQUEST');
      return;
    }
    const kept = selectRules(sampleRules, r);
    assert.ok(kept.length <= sampleRules.length);
  },
};

// ── the list ──────────────────────────────────────────────────────────────────────────────────────────────────

export const TARGETS: readonly FuzzTarget<unknown>[] = [
  target(proxyTarget('proxy-v1', v1Valid, v1Tokens)),
  target(proxyTarget('proxy-v2', v2Valid, v2Random)),
  target(spp),
  target(clientHello),
  target(config),
  target(geoTarget('geo-country', 'parseCountryCsv (src/core/geo.ts)', countrySeeds, parseCountryCsv, (v) => assert.match(v, /^[A-Z0-9]{2}$/))),
  target(geoTarget('geo-asn', 'parseAsnCsv (src/core/geo.ts)', asnSeeds, parseAsnCsv, (v) => assert.ok(Number.isInteger(v.asn) && v.asn > 0))),
  target(dns),
  target(apiApp),
  target(apiRule),
  target(apiZone),
  target(apiAnalytics),
  target(apiRuleQuery),
];
