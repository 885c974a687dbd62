import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { decodeSpp, encodeSpp, SPP_HEADER_LENGTH } from '../../../src/core/spp.ts';

const port = fc.integer({ min: 0, max: 65535 });
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const ipv6 = fc
  .array(fc.oneof(fc.constant(0), fc.nat(0xffff)), { minLength: 8, maxLength: 8 })
  .map((p) => new ipaddr.IPv6(p))
  .filter((a) => !a.isIPv4MappedAddress()) // those decode as IPv4: covered below
  .map((a) => a.toRFC5952String());
const endpoint = fc.tuple(fc.oneof(ipv4, ipv6), port).map(([address, p]) => ({ address, port: p }));
const payload = fc.uint8Array({ maxLength: 128 });

void describe('Simple Proxy Protocol properties', () => {
  void it('decode(encode(h, p)) gives back the client, the proxy and the payload, for IPv4 and IPv6', () => {
    fc.assert(
      fc.property(endpoint, endpoint, payload, (client, proxy, p) => {
        const d = encodeSpp({ client, proxy }, p);
        assert.equal(d.length, SPP_HEADER_LENGTH + p.length);
        const r = decodeSpp(d);
        assert.equal(r.kind, 'ok');
        if (r.kind !== 'ok') return;
        assert.deepEqual(r.client, client);
        assert.deepEqual(r.proxy, proxy);
        assert.deepEqual(r.payload, p);
      }),
    );
  });

  void it('an IPv4 address written IPv4-mapped decodes as plain IPv4', () => {
    fc.assert(
      fc.property(ipv4, port, (v4, p) => {
        const r = decodeSpp(encodeSpp({ client: { address: `::ffff:${v4}`, port: p }, proxy: { address: '::1', port: p } }, new Uint8Array(0)));
        assert.equal(r.kind === 'ok' && r.client.address, v4);
      }),
    );
  });

  void it('every datagram with the magic decodes, and re-encoding it gives the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 36, maxLength: 36 }), payload, (fields, p) => {
        const d = Uint8Array.from([0x56, 0xec, ...fields, ...p]);
        const r = decodeSpp(d);
        assert.equal(r.kind, 'ok');
        if (r.kind !== 'ok') return;
        assert.deepEqual(encodeSpp({ client: r.client, proxy: r.proxy }, r.payload), d);
      }),
    );
  });

  void it('random bytes never throw: too short, bad magic, or ok', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (d) => {
        const r = decodeSpp(d);
        if (d.length < SPP_HEADER_LENGTH) assert.equal(r.kind === 'error' && r.code, 'E_SPP_TOO_SHORT');
        else if (d[0] !== 0x56 || d[1] !== 0xec) assert.equal(r.kind === 'error' && r.code, 'E_SPP_BAD_MAGIC');
        else assert.equal(r.kind, 'ok');
      }),
      { numRuns: 500 },
    );
  });
});
