import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  PROXY_V2_SIGNATURE,
  ProxyHeaderReader,
  type DecodeResult,
  type ProxyAddresses,
} from '../../../src/core/proxy-protocol.ts';

// ── generators ────────────────────────────────────────────────────────────────────────────────────────────────

const port = fc.integer({ min: 0, max: 65535 });
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
// Zero groups are drawn often so that `::` compression (and its RFC 5952 tie rules) gets exercised.
const ipv6Parts = fc.array(fc.oneof(fc.constant(0), fc.constant(0xffff), fc.nat(0xffff)), { minLength: 8, maxLength: 8 });
const ipv6 = ipv6Parts.map((p) => new ipaddr.IPv6(p).toRFC5952String());
const pair = (family: 'IPv4' | 'IPv6', ip: fc.Arbitrary<string>): fc.Arbitrary<ProxyAddresses> =>
  fc.tuple(ip, port, ip, port).map(([s, sp, d, dp]) => ({ family, src: { address: s, port: sp }, dst: { address: d, port: dp } }));
const addresses = fc.oneof(pair('IPv4', ipv4), pair('IPv6', ipv6));
const tlvs = fc.array(fc.tuple(fc.nat(255), fc.uint8Array({ maxLength: 40 })).map(([type, value]) => ({ type, value })), { maxLength: 5 });
const transport = fc.constantFrom('stream' as const, 'dgram' as const);
const payload = fc.uint8Array({ maxLength: 64 });
/** Cut points, as fractions so they fit any length. */
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 });

const v1Bytes = addresses.map((a) => encodeProxyV1(a));
const v2Bytes = fc.tuple(addresses, transport, tlvs).map(([a, t, x]) => encodeProxyV2(a, { transport: t, tlvs: x }));
const anyHeaderBytes = fc.oneof(v1Bytes, v2Bytes);

// ── helpers ───────────────────────────────────────────────────────────────────────────────────────────────────

const cat = (parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));

function split(bytes: Uint8Array, fractions: number[]): Uint8Array[] {
  const at = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const k of [...at, bytes.length]) {
    chunks.push(bytes.subarray(prev, k)); // empty chunks included on purpose
    prev = k;
  }
  return chunks;
}

/** Feeds chunks until the reader decides; `after` is `rest` plus every chunk not pushed. */
function feed(chunks: Uint8Array[]): { result: DecodeResult; after: Uint8Array } {
  const reader = new ProxyHeaderReader();
  for (let i = 0; i < chunks.length; i++) {
    const r = reader.push(chunks[i] ?? new Uint8Array(0));
    if (r.kind !== 'incomplete') {
      const after = r.kind === 'header' ? cat([r.rest, ...chunks.slice(i + 1)]) : new Uint8Array(0);
      return { result: r, after };
    }
  }
  return { result: { kind: 'incomplete' }, after: new Uint8Array(0) };
}

/** What must agree between two decodes of the same stream: kind, code, header (not `rest` or `detail`). */
function verdict(r: DecodeResult): unknown {
  if (r.kind === 'error') return { kind: 'error', code: r.code };
  if (r.kind === 'header') return { kind: 'header', header: r.header };
  return { kind: 'incomplete' };
}

/** Byte-level damage: overwrite, insert, delete or truncate at random places. */
const mutated = fc
  .tuple(
    anyHeaderBytes,
    payload,
    fc.array(fc.tuple(fc.constantFrom('set', 'insert', 'delete', 'truncate'), fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(255)), {
      minLength: 1,
      maxLength: 4,
    }),
  )
  .map(([h, p, ops]) => {
    const b = Array.from(cat([h, p]));
    for (const [op, f, v] of ops) {
      const i = Math.floor(f * b.length);
      if (op === 'set' && i < b.length) b[i] = v;
      else if (op === 'insert') b.splice(i, 0, v);
      else if (op === 'delete') b.splice(i, 1);
      else if (op === 'truncate') b.length = i;
    }
    return Uint8Array.from(b);
  });

// ── properties ────────────────────────────────────────────────────────────────────────────────────────────────

void describe('PROXY protocol properties', () => {
  void it('v1 decode(encode(a)) gives back the addresses, ports and family', () => {
    fc.assert(
      fc.property(addresses, (a) => {
        const bytes = encodeProxyV1(a);
        const r = decodeProxyHeader(bytes);
        assert.equal(r.kind, 'header');
        if (r.kind !== 'header') return;
        assert.deepEqual(r.header, {
          version: 1, command: 'proxy', transport: 'stream', family: a.family, src: a.src, dst: a.dst, tlvs: [], length: bytes.length,
        });
        assert.equal(r.rest.length, 0);
        assert.ok(bytes.length <= (a.family === 'IPv4' ? 56 : 104));
      }),
    );
  });

  void it('v1 writes the same bytes for any spelling of an IPv6 address', () => {
    fc.assert(
      fc.property(ipv6Parts, ipv6Parts, port, port, (s, d, sp, dp) => {
        const canonical = encodeProxyV1({
          family: 'IPv6', src: { address: new ipaddr.IPv6(s).toRFC5952String(), port: sp }, dst: { address: new ipaddr.IPv6(d).toRFC5952String(), port: dp },
        });
        const spelled = encodeProxyV1({
          family: 'IPv6',
          src: { address: new ipaddr.IPv6(s).toNormalizedString().toUpperCase(), port: sp },
          dst: { address: new ipaddr.IPv6(d).toNormalizedString().split(':').map((g) => g.padStart(4, '0')).join(':'), port: dp },
        });
        assert.deepEqual(spelled, canonical);
      }),
    );
  });

  void it('v2 decode(encode(a)) gives back addresses, ports, transport and every TLV in order', () => {
    fc.assert(
      fc.property(addresses, transport, tlvs, (a, t, x) => {
        const bytes = encodeProxyV2(a, { transport: t, tlvs: x });
        const r = decodeProxyHeader(bytes);
        assert.equal(r.kind, 'header');
        if (r.kind !== 'header') return;
        assert.deepEqual(r.header, {
          version: 2, command: 'proxy', transport: t, family: a.family, src: a.src, dst: a.dst,
          tlvs: x.map((v) => ({ type: v.type, value: Uint8Array.from(v.value) })), length: bytes.length,
        });
      }),
    );
  });

  void it('v2 LOCAL round-trips its TLVs and carries no addresses', () => {
    fc.assert(
      fc.property(addresses, tlvs, (a, x) => {
        const r = decodeProxyHeader(encodeProxyV2(a, { command: 'local', tlvs: x }));
        assert.equal(r.kind, 'header');
        if (r.kind !== 'header') return;
        assert.equal(r.header.command, 'local');
        assert.equal(r.header.src, undefined);
        assert.deepEqual(r.header.tlvs.map((v) => [v.type, Array.from(v.value)]), x.map((v) => [v.type, Array.from(v.value)]));
      }),
    );
  });

  void it('every proper prefix of a valid header is incomplete', () => {
    fc.assert(
      fc.property(anyHeaderBytes, (bytes) => {
        for (let k = 0; k < bytes.length; k++) assert.equal(decodeProxyHeader(bytes.subarray(0, k)).kind, 'incomplete', `prefix ${k}`);
      }),
    );
  });

  void it('the reader decodes identically for every split, returning trailing payload intact', () => {
    fc.assert(
      fc.property(anyHeaderBytes, payload, cuts, (h, p, f) => {
        const input = cat([h, p]);
        const whole = decodeProxyHeader(input);
        assert.equal(whole.kind, 'header');
        // random multi-way split
        const got = feed(split(input, f));
        assert.deepEqual(verdict(got.result), verdict(whole));
        assert.deepEqual(got.after, p);
        // every two-way split
        for (let k = 0; k <= input.length; k++) {
          const two = feed([input.subarray(0, k), input.subarray(k)]);
          assert.deepEqual(verdict(two.result), verdict(whole), `cut at ${k}`);
          assert.deepEqual(two.after, p, `cut at ${k}`);
        }
        // one byte at a time
        const bytewise = feed(Array.from(input, (_, i) => input.subarray(i, i + 1)));
        assert.deepEqual(verdict(bytewise.result), verdict(whole));
        assert.deepEqual(bytewise.after, p);
      }),
      { numRuns: 60 },
    );
  });

  void it('random bytes never throw and never decode as a header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cuts, (bytes, f) => {
        const r = decodeProxyHeader(bytes);
        assert.ok(r.kind === 'incomplete' || r.kind === 'error');
        assert.deepEqual(verdict(feed(split(bytes, f)).result), verdict(r));
      }),
      { numRuns: 500 },
    );
  });

  void it('bytes behind a valid signature never throw, and the reader agrees with the decoder for any split', () => {
    const v1Start = fc.uint8Array({ maxLength: 120 }).map((b) => cat([new TextEncoder().encode('PROXY '), b]));
    const v2Start = fc.uint8Array({ maxLength: 120 }).map((b) => cat([PROXY_V2_SIGNATURE, Uint8Array.of(0x21), b]));
    fc.assert(
      fc.property(fc.oneof(v1Start, v2Start, mutated), cuts, (bytes, f) => {
        const whole = decodeProxyHeader(bytes);
        const got = feed(split(bytes, f));
        assert.deepEqual(verdict(got.result), verdict(whole));
        if (whole.kind === 'header') assert.deepEqual(got.after, whole.rest);
      }),
      { numRuns: 500 },
    );
  });

  void it('decoding is prefix-monotone: a decided prefix decides the whole stream the same way', () => {
    fc.assert(
      fc.property(mutated, (bytes) => {
        const whole = verdict(decodeProxyHeader(bytes));
        for (let k = 0; k <= bytes.length; k++) {
          const part = decodeProxyHeader(bytes.subarray(0, k));
          if (part.kind !== 'incomplete') assert.deepEqual(verdict(part), whole, `prefix ${k}`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
