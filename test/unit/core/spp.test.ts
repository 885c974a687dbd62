import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeSpp,
  encodeSpp,
  encodeSppHeader,
  hasSppHeader,
  prependSppHeader,
  SPP_HEADER_LENGTH,
  type SppDecodeResult,
} from '../../../src/core/spp.ts';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

function ok(r: SppDecodeResult): Extract<SppDecodeResult, { kind: 'ok' }> {
  assert.equal(r.kind, 'ok', `expected ok, got ${JSON.stringify(r)}`);
  if (r.kind !== 'ok') throw new Error('unreachable');
  return r;
}

void describe('Simple Proxy Protocol', () => {
  void it('writes an IPv4 client as IPv4-mapped IPv6, byte for byte against the 38-byte layout', () => {
    const d = encodeSpp({ client: { address: '192.0.2.1', port: 42300 }, proxy: { address: '198.51.100.7', port: 53 } }, ascii('hi'));
    const expected = hex(
      '56ec' + // magic
        '00000000000000000000ffffc0000201' + // client ::ffff:192.0.2.1
        '00000000000000000000ffffc6336407' + // proxy ::ffff:198.51.100.7
        'a53c' + // client port 42300
        '0035' + // proxy port 53
        '6869', // payload "hi"
    );
    assert.deepEqual(d, expected);
    assert.equal(SPP_HEADER_LENGTH, 38);
  });

  void it('writes IPv6 addresses as they are', () => {
    const d = encodeSpp({ client: { address: '2001:db8::1', port: 1 }, proxy: { address: '2001:db8::ffff', port: 65535 } }, new Uint8Array(0));
    assert.deepEqual(d, hex('56ec' + '20010db8000000000000000000000001' + '20010db800000000000000000000ffff' + '0001' + 'ffff'));
  });

  void it('writes 1.2.3.4 and ::ffff:1.2.3.4 identically', () => {
    const a = encodeSpp({ client: { address: '1.2.3.4', port: 1 }, proxy: { address: '5.6.7.8', port: 2 } }, new Uint8Array(0));
    const b = encodeSpp({ client: { address: '::ffff:1.2.3.4', port: 1 }, proxy: { address: '::ffff:5.6.7.8', port: 2 } }, new Uint8Array(0));
    assert.deepEqual(a, b);
  });

  void it('decodes IPv4-mapped addresses as IPv4 and others in RFC 5952 form', () => {
    const r = ok(decodeSpp(hex('56ec' + '00000000000000000000ffffc0000201' + '20010db8000000000000000000000001' + 'a53c' + '0035' + 'cafe')));
    assert.deepEqual(r.client, { address: '192.0.2.1', port: 42300 });
    assert.deepEqual(r.proxy, { address: '2001:db8::1', port: 53 });
    assert.deepEqual(r.payload, hex('cafe'));
  });

  void it('returns the payload as a view of the datagram, empty when there is none', () => {
    const d = encodeSpp({ client: { address: '1.2.3.4', port: 1 }, proxy: { address: '5.6.7.8', port: 2 } }, ascii('xyz'));
    const r = ok(decodeSpp(d));
    assert.equal(r.payload.buffer, d.buffer);
    assert.equal(r.payload.byteOffset, d.byteOffset + 38);
    assert.equal(ok(decodeSpp(d.subarray(0, 38))).payload.length, 0);
  });

  void it('rejects a datagram shorter than 38 bytes with E_SPP_TOO_SHORT', () => {
    const d = encodeSpp({ client: { address: '1.2.3.4', port: 1 }, proxy: { address: '5.6.7.8', port: 2 } }, new Uint8Array(0));
    const r = decodeSpp(d.subarray(0, 37));
    assert.equal(r.kind === 'error' && r.code, 'E_SPP_TOO_SHORT');
    const empty = decodeSpp(new Uint8Array(0));
    assert.equal(empty.kind === 'error' && empty.code, 'E_SPP_TOO_SHORT');
  });

  void it('rejects a wrong magic with E_SPP_BAD_MAGIC', () => {
    for (const magic of ['ec56', '56ed', '0000']) {
      const d = hex(magic + '00'.repeat(36) + '41');
      const r = decodeSpp(d);
      assert.equal(r.kind === 'error' && r.code, 'E_SPP_BAD_MAGIC', magic);
    }
  });

  void it('a header built once per flow and prepended gives the same datagram as encodeSpp', () => {
    const h = { client: { address: '2001:db8::7', port: 5000 }, proxy: { address: '192.0.2.9', port: 27015 } };
    const header = encodeSppHeader(h);
    assert.equal(header.length, SPP_HEADER_LENGTH);
    assert.deepEqual(prependSppHeader(header, ascii('ping')), encodeSpp(h, ascii('ping')));
    assert.throws(() => prependSppHeader(header.subarray(0, 37), ascii('ping')), RangeError);
  });

  void it('hasSppHeader accepts a reply carrying the flow header unchanged and refuses any other', () => {
    const header = encodeSppHeader({ client: { address: '1.2.3.4', port: 1 }, proxy: { address: '5.6.7.8', port: 2 } });
    const reply = prependSppHeader(header, ascii('pong'));
    assert.equal(hasSppHeader(reply, header), true);
    assert.equal(hasSppHeader(reply.subarray(0, 38), header), true);
    assert.equal(hasSppHeader(reply.subarray(0, 37), header), false);
    for (const at of [0, 17, 35, 37]) {
      const bad = Uint8Array.from(reply);
      bad[at] = (bad[at] ?? 0) ^ 0x01;
      assert.equal(hasSppHeader(bad, header), false, `byte ${at}`);
    }
    assert.equal(hasSppHeader(ascii('pong'), header), false);
  });

  void it('throws on an address that is not an IP literal, a zone id, or a port out of range', () => {
    const proxy = { address: '5.6.7.8', port: 2 };
    assert.throws(() => encodeSpp({ client: { address: 'example.com', port: 1 }, proxy }, new Uint8Array(0)), TypeError);
    assert.throws(() => encodeSpp({ client: { address: '01.2.3.4', port: 1 }, proxy }, new Uint8Array(0)), TypeError);
    assert.throws(() => encodeSpp({ client: { address: 'fe80::1%eth0', port: 1 }, proxy }, new Uint8Array(0)), TypeError);
    assert.throws(() => encodeSpp({ client: { address: '1.2.3.4', port: 70000 }, proxy }, new Uint8Array(0)), RangeError);
  });
});
