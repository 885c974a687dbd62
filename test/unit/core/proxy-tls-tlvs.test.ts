import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProxyHeader, encodeProxyV2, PP2_CLIENT_SSL, PP2_TYPE, tlsProxyTlvs } from '../../../src/core/proxy-protocol.ts';

const addrs = { family: 'IPv4' as const, src: { address: '198.51.100.7', port: 40000 }, dst: { address: '203.0.113.1', port: 443 } };
const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

/** Sub-TLVs inside a PP2_TYPE_SSL value (after client u8 and verify u32). */
function subTlvs(v: Uint8Array): Array<{ type: number; value: string }> {
  const out: Array<{ type: number; value: string }> = [];
  let i = 5;
  while (i + 3 <= v.length) {
    const len = (v[i + 1]! << 8) | v[i + 2]!;
    out.push({ type: v[i]!, value: text(v.subarray(i + 3, i + 3 + len)) });
    i += 3 + len;
  }
  assert.equal(i, v.length, 'sub-TLVs fill the SSL TLV exactly');
  return out;
}

void describe('PROXY v2 TLVs of a TLS-terminated connection', () => {
  void it('carry the SSL TLV (client SSL, verify 0, version, cipher) and the SNI as AUTHORITY, readable by the decoder', () => {
    const header = encodeProxyV2(addrs, { tlvs: tlsProxyTlvs({ version: 'TLSv1.3', cipher: 'AEAD-AES128-GCM-SHA256', sni: 'shop.example.test' }) });
    const d = decodeProxyHeader(header);
    assert.equal(d.kind, 'header');
    if (d.kind !== 'header') return;
    assert.deepEqual(d.header.tlvs.map((t) => t.type), [PP2_TYPE.SSL, PP2_TYPE.AUTHORITY]);
    const ssl = d.header.tlvs[0]!.value;
    assert.equal(ssl[0], PP2_CLIENT_SSL);
    assert.deepEqual([...ssl.subarray(1, 5)], [0, 0, 0, 0]);
    assert.deepEqual(subTlvs(ssl), [
      { type: PP2_TYPE.SSL_VERSION, value: 'TLSv1.3' },
      { type: PP2_TYPE.SSL_CIPHER, value: 'AEAD-AES128-GCM-SHA256' },
    ]);
    assert.equal(text(d.header.tlvs[1]!.value), 'shop.example.test');
    assert.equal(d.header.length, header.length);
  });

  void it('leave AUTHORITY out when the client sent no SNI', () => {
    const tlvs = tlsProxyTlvs({ version: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256', sni: '' });
    assert.deepEqual(tlvs.map((t) => t.type), [PP2_TYPE.SSL]);
  });
});
