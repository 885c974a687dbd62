import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  parseTlvs,
  PP2_TYPE,
  PROXY_V1_MAX_LENGTH,
  ProxyHeaderReader,
  toProxyAddresses,
  type DecodeResult,
  type ProxyHeader,
} from '../../../src/core/proxy-protocol.ts';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
/** Bytes from hex with optional whitespace: `hex('0d 0a')`. */
const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));

function header(r: DecodeResult): { header: ProxyHeader; rest: Uint8Array } {
  assert.equal(r.kind, 'header', `expected a header, got ${JSON.stringify(r)}`);
  if (r.kind !== 'header') throw new Error('unreachable');
  return r;
}
function code(r: DecodeResult): string {
  assert.equal(r.kind, 'error', `expected an error, got ${r.kind}`);
  return r.kind === 'error' ? r.code : '';
}

const SIG = '0d0a0d0a000d0a515549540a';

void describe('PROXY v1 encoder', () => {
  void it('writes the Spectrum TCP4 example byte for byte', () => {
    const bytes = encodeProxyV1({ family: 'IPv4', src: { address: '192.0.2.0', port: 42300 }, dst: { address: '192.0.2.255', port: 443 } });
    assert.deepEqual(bytes, ascii('PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n'));
  });

  void it('writes the Spectrum TCP6 example byte for byte', () => {
    const bytes = encodeProxyV1({
      family: 'IPv6',
      src: { address: '2001:db8::', port: 42300 },
      dst: { address: '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', port: 443 },
    });
    assert.deepEqual(bytes, ascii('PROXY TCP6 2001:db8:: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff 42300 443\r\n'));
  });

  void it('writes IPv6 in RFC 5952 form whatever form it was given in', () => {
    const bytes = encodeProxyV1({
      family: 'IPv6',
      src: { address: '2001:0DB8:0000:0000:0001:0000:0000:0001', port: 1 },
      dst: { address: '0:0:0:0:0:0:0:1', port: 2 },
    });
    assert.deepEqual(bytes, ascii('PROXY TCP6 2001:db8::1:0:0:1 ::1 1 2\r\n'));
    const dotted = encodeProxyV1({ family: 'IPv6', src: { address: '::ffff:192.0.2.1', port: 1 }, dst: { address: '::192.0.2.2', port: 2 } });
    assert.deepEqual(dotted, ascii('PROXY TCP6 ::ffff:c000:201 ::c000:202 1 2\r\n'));
  });

  void it('throws on an address of the wrong family, a zone id, or a port out of range', () => {
    const ok = { family: 'IPv4' as const, src: { address: '1.2.3.4', port: 1 }, dst: { address: '5.6.7.8', port: 2 } };
    assert.throws(() => encodeProxyV1({ ...ok, src: { address: '::1', port: 1 } }), TypeError);
    assert.throws(() => encodeProxyV1({ ...ok, src: { address: '01.2.3.4', port: 1 } }), TypeError);
    assert.throws(() => encodeProxyV1({ ...ok, family: 'IPv6' }), TypeError);
    assert.throws(() => encodeProxyV1({ family: 'IPv6', src: { address: 'fe80::1%eth0', port: 1 }, dst: { address: '::1', port: 2 } }), TypeError);
    assert.throws(() => encodeProxyV1({ ...ok, dst: { address: '5.6.7.8', port: 65536 } }), RangeError);
    assert.throws(() => encodeProxyV1({ ...ok, dst: { address: '5.6.7.8', port: 1.5 } }), RangeError);
  });
});

void describe('PROXY v1 decoder', () => {
  void it('decodes the Spectrum TCP4 example and returns the bytes after it as rest', () => {
    const r = header(decodeProxyHeader(ascii('PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\nGET / HTTP/1.1\r\n')));
    assert.deepEqual(r.header, {
      version: 1, command: 'proxy', transport: 'stream', family: 'IPv4',
      src: { address: '192.0.2.0', port: 42300 }, dst: { address: '192.0.2.255', port: 443 },
      tlvs: [], length: 44,
    });
    assert.deepEqual(r.rest, ascii('GET / HTTP/1.1\r\n'));
  });

  void it('decodes the Spectrum TCP6 example', () => {
    const line = 'PROXY TCP6 2001:db8:: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff 42300 443\r\n';
    const r = header(decodeProxyHeader(ascii(line)));
    assert.equal(r.header.family, 'IPv6');
    assert.deepEqual(r.header.src, { address: '2001:db8::', port: 42300 });
    assert.deepEqual(r.header.dst, { address: '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', port: 443 });
    assert.equal(r.header.length, line.length);
  });

  void it('accepts uppercase and uncompressed IPv6 and reports it in RFC 5952 form', () => {
    const r = header(decodeProxyHeader(ascii('PROXY TCP6 2001:0DB8:0:0:0:0:0:1 0:0:0:0:0:0:0:0 0 65535\r\n')));
    assert.deepEqual(r.header.src, { address: '2001:db8::1', port: 0 });
    assert.deepEqual(r.header.dst, { address: '::', port: 65535 });
  });

  void it('accepts a trailing dotted quad in IPv6 as inet_pton does, with RFC 4291 meaning', () => {
    const r = header(decodeProxyHeader(ascii('PROXY TCP6 ::ffff:192.0.2.1 ::192.0.2.2 1 2\r\n')));
    assert.equal(r.header.src?.address, '::ffff:c000:201');
    assert.equal(r.header.dst?.address, '::c000:202'); // IPv4-compatible, not IPv4-mapped
  });

  void it('accepts PROXY UNKNOWN, short or with ignored fields, as a LOCAL-like header', () => {
    for (const line of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff:: 1.2.3.4 whatever 99999\r\n']) {
      const r = header(decodeProxyHeader(cat(ascii(line), ascii('x'))));
      assert.deepEqual(r.header, { version: 1, command: 'local', transport: 'unspec', family: 'unspec', tlvs: [], length: line.length });
      assert.deepEqual(r.rest, ascii('x'));
    }
  });

  void it('accepts the longest lines the spec allows (TCP6 104 bytes, UNKNOWN 107 bytes)', () => {
    const v6 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const tcp6 = `PROXY TCP6 ${v6} ${v6} 65535 65535\r\n`;
    const unknown = `PROXY UNKNOWN ${v6} ${v6} 65535 65535\r\n`;
    assert.equal(tcp6.length, 104);
    assert.equal(unknown.length, PROXY_V1_MAX_LENGTH);
    assert.equal(header(decodeProxyHeader(ascii(tcp6))).header.length, 104);
    assert.equal(header(decodeProxyHeader(ascii(unknown))).header.length, 107);
  });

  void it('rejects a line whose CRLF is not within the first 107 bytes with E_PP_V1_TOO_LONG', () => {
    const pad = 'a'.repeat(PROXY_V1_MAX_LENGTH - 'PROXY UNKNOWN '.length - 1); // CRLF would end at byte 108
    assert.equal(code(decodeProxyHeader(ascii(`PROXY UNKNOWN ${pad}\r\n`))), 'E_PP_V1_TOO_LONG');
    assert.equal(code(decodeProxyHeader(ascii(`PROXY UNKNOWN ${'b'.repeat(200)}`))), 'E_PP_V1_TOO_LONG');
    // Decided as soon as 106 bytes hold no CR (a CR at index 106 would end the line at byte 108), not before.
    const long = ascii(`PROXY UNKNOWN ${pad}`);
    assert.equal(long.length, 106);
    assert.equal(decodeProxyHeader(long.subarray(0, 105)).kind, 'incomplete');
    assert.equal(code(decodeProxyHeader(long)), 'E_PP_V1_TOO_LONG');
  });

  const malformed: Array<[string, string]> = [
    ['two spaces after PROXY', 'PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['an unknown protocol token', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a lowercase protocol token', 'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['no space after PROXY', 'PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a leading zero in a port', 'PROXY TCP4 1.2.3.4 5.6.7.8 042300 443\r\n'],
    ['a port above 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n'],
    ['a signed port', 'PROXY TCP4 1.2.3.4 5.6.7.8 +1 443\r\n'],
    ['a leading zero in an IPv4 octet', 'PROXY TCP4 192.168.000.1 5.6.7.8 1 2\r\n'],
    ['an IPv4 octet above 255', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'],
    ['a three-part IPv4 address', 'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n'],
    ['an IPv6 address under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n'],
    ['an IPv4 address under TCP6', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['an IPv6 zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'],
    ['two double colons', 'PROXY TCP6 1::2::3 ::1 1 2\r\n'],
    ['a five-digit IPv6 group', 'PROXY TCP6 12345::1 ::1 1 2\r\n'],
    ['a missing destination port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['an extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'],
    ['a space before CRLF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n'],
    ['a tab instead of a space', 'PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a bare LF ending', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['a bare CR ending', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'],
    ['LF CR instead of CR LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r'],
    ['UNKNOWN glued to more text', 'PROXY UNKNOWNX\r\n'],
    ['a bare LF inside an UNKNOWN line', 'PROXY UNKNOWN a\nb\r\n'],
    ['PROXY alone', 'PROXY\r\n'],
  ];
  for (const [what, line] of malformed) {
    void it(`rejects ${what} with E_PP_V1_MALFORMED`, () => {
      assert.equal(code(decodeProxyHeader(ascii(line))), 'E_PP_V1_MALFORMED');
    });
  }

  void it('rejects bytes that start neither signature with E_PP_BAD_SIGNATURE, from the first wrong byte', () => {
    assert.equal(code(decodeProxyHeader(ascii('GET / HTTP/1.1\r\n'))), 'E_PP_BAD_SIGNATURE');
    assert.equal(code(decodeProxyHeader(ascii('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'))), 'E_PP_BAD_SIGNATURE');
    assert.equal(code(decodeProxyHeader(ascii('PROX!'))), 'E_PP_BAD_SIGNATURE');
    assert.equal(code(decodeProxyHeader(Uint8Array.of(0x16, 0x03, 0x01))), 'E_PP_BAD_SIGNATURE'); // a TLS ClientHello
  });

  void it('reports incomplete for every proper prefix of a valid line', () => {
    const line = ascii('PROXY TCP6 2001:db8:: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff 42300 443\r\n');
    for (let k = 0; k < line.length; k++) assert.equal(decodeProxyHeader(line.subarray(0, k)).kind, 'incomplete', `prefix ${k}`);
  });

  void it('rejects a malformed line as soon as its prefix cannot become valid, before any CRLF', () => {
    assert.equal(code(decodeProxyHeader(ascii('PROXY TCP4 1.2.3.4 X'))), 'E_PP_V1_MALFORMED');
    assert.equal(code(decodeProxyHeader(ascii('PROXY TCP4 1.2.3.04'))), 'E_PP_V1_MALFORMED');
    assert.equal(code(decodeProxyHeader(ascii('PROXY TCP9'))), 'E_PP_V1_MALFORMED');
    assert.equal(code(decodeProxyHeader(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1 65536'))), 'E_PP_V1_MALFORMED');
  });
});

void describe('PROXY v2 encoder', () => {
  void it('writes a TCP over IPv4 header that matches the layout byte for byte', () => {
    const bytes = encodeProxyV2({ family: 'IPv4', src: { address: '192.0.2.1', port: 42300 }, dst: { address: '198.51.100.7', port: 443 } });
    const expected = hex(
      SIG +
        '21' + // ver 2 | PROXY
        '11' + // AF_INET | STREAM
        '000c' + // len 12
        'c0000201' + // src 192.0.2.1
        'c6336407' + // dst 198.51.100.7
        'a53c' + // src port 42300
        '01bb', // dst port 443
    );
    assert.deepEqual(bytes, expected);
    assert.equal(bytes.length, 28);
  });

  void it('writes a TCP over IPv6 header that matches the layout byte for byte', () => {
    const bytes = encodeProxyV2({
      family: 'IPv6',
      src: { address: '2001:db8::1', port: 42300 },
      dst: { address: '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', port: 443 },
    });
    const expected = hex(
      SIG +
        '21' + // ver 2 | PROXY
        '21' + // AF_INET6 | STREAM
        '0024' + // len 36
        '20010db8000000000000000000000001' + // src
        '20010db8ffffffffffffffffffffffff' + // dst
        'a53c' + // 42300
        '01bb', // 443
    );
    assert.deepEqual(bytes, expected);
    assert.equal(bytes.length, 52);
  });

  void it('writes UDP (dgram) with transport nibble 2', () => {
    const v4 = encodeProxyV2({ family: 'IPv4', src: { address: '1.2.3.4', port: 1 }, dst: { address: '5.6.7.8', port: 2 } }, { transport: 'dgram' });
    const v6 = encodeProxyV2({ family: 'IPv6', src: { address: '::1', port: 1 }, dst: { address: '::2', port: 2 } }, { transport: 'dgram' });
    assert.equal(v4[13], 0x12);
    assert.equal(v6[13], 0x22);
  });

  void it('writes LOCAL as version 2 command 0 with family UNSPEC and no addresses', () => {
    const bytes = encodeProxyV2({ family: 'IPv4', src: { address: '1.2.3.4', port: 1 }, dst: { address: '5.6.7.8', port: 2 } }, { command: 'local' });
    assert.deepEqual(bytes, hex(`${SIG}20000000`));
  });

  void it('appends TLVs in order after the address block and counts them in len', () => {
    const bytes = encodeProxyV2(
      { family: 'IPv4', src: { address: '1.2.3.4', port: 1 }, dst: { address: '5.6.7.8', port: 2 } },
      { tlvs: [{ type: PP2_TYPE.AUTHORITY, value: ascii('a.example') }, { type: 0xe7, value: new Uint8Array(0) }] },
    );
    assert.deepEqual(bytes.subarray(14, 16), hex('001b')); // 12 + (3 + 9) + (3 + 0) = 27
    assert.deepEqual(bytes.subarray(28), cat(hex('020009'), ascii('a.example'), hex('e70000')));
  });

  void it('throws on a TLV type outside 0-255 or a body longer than 65535 bytes', () => {
    const a = { family: 'IPv4' as const, src: { address: '1.2.3.4', port: 1 }, dst: { address: '5.6.7.8', port: 2 } };
    assert.throws(() => encodeProxyV2(a, { tlvs: [{ type: 256, value: new Uint8Array(0) }] }), RangeError);
    assert.throws(() => encodeProxyV2(a, { tlvs: [{ type: 0xe0, value: new Uint8Array(65535 - 12 - 3 + 1) }] }), RangeError);
    assert.equal(encodeProxyV2(a, { tlvs: [{ type: 0xe0, value: new Uint8Array(65535 - 12 - 3) }] }).length, 16 + 65535);
  });
});

void describe('PROXY v2 decoder', () => {
  void it('decodes the hand-built TCP4 header and returns the payload after it as rest', () => {
    const r = header(decodeProxyHeader(hex(`${SIG}2111000cc0000201c6336407a53c01bb` + 'cafe')));
    assert.deepEqual(r.header, {
      version: 2, command: 'proxy', transport: 'stream', family: 'IPv4',
      src: { address: '192.0.2.1', port: 42300 }, dst: { address: '198.51.100.7', port: 443 },
      tlvs: [], length: 28,
    });
    assert.deepEqual(r.rest, hex('cafe'));
  });

  void it('decodes a UDP over IPv6 header with addresses in RFC 5952 form', () => {
    const r = header(decodeProxyHeader(hex(`${SIG}21220024${'20010db8000000000000000000000001'}${'0'.repeat(32)}00350035`)));
    assert.equal(r.header.transport, 'dgram');
    assert.deepEqual(r.header.src, { address: '2001:db8::1', port: 53 });
    assert.deepEqual(r.header.dst, { address: '::', port: 53 });
  });

  void it('keeps every TLV, unknown types included, in wire order', () => {
    const tlvs = '0100026832' + 'f10000' + 'e00003010203';
    const r = header(decodeProxyHeader(hex(`${SIG}2111${(12 + tlvs.length / 2).toString(16).padStart(4, '0')}010203040506070800010002${tlvs}`)));
    assert.deepEqual(r.header.tlvs, [
      { type: PP2_TYPE.ALPN, value: ascii('h2') },
      { type: 0xf1, value: new Uint8Array(0) },
      { type: 0xe0, value: hex('010203') },
    ]);
  });

  void it('copies TLV values so they do not alias the input', () => {
    const buf = hex(`${SIG}21110010010203040506070800010002e0000141`);
    const r = header(decodeProxyHeader(buf));
    buf[buf.length - 1] = 0;
    assert.deepEqual(r.header.tlvs[0]?.value, hex('41'));
  });

  void it('accepts LOCAL with any family byte and ignores its addresses', () => {
    for (const fam of ['00', '11', '21', 'ff']) {
      const body = fam === '11' ? '010203040506070800010002' : '';
      const len = (body.length / 2).toString(16).padStart(4, '0');
      const r = header(decodeProxyHeader(hex(`${SIG}20${fam}${len}${body}`)));
      assert.deepEqual(r.header, { version: 2, command: 'local', transport: 'unspec', family: 'unspec', tlvs: [], length: 16 + body.length / 2 });
    }
  });

  void it('decodes the TLVs after a LOCAL header\'s address block', () => {
    const r = header(decodeProxyHeader(hex(`${SIG}20110010010203040506070800010002040001ff`)));
    assert.equal(r.header.command, 'local');
    assert.deepEqual(r.header.tlvs, [{ type: PP2_TYPE.NOOP, value: hex('ff') }]);
  });

  void it('decodes PROXY with family UNSPEC as proxy/unspec without addresses, parsing its TLVs', () => {
    const r = header(decodeProxyHeader(hex(`${SIG}21000004e0000100`)));
    assert.deepEqual(r.header, {
      version: 2, command: 'proxy', transport: 'unspec', family: 'unspec', tlvs: [{ type: 0xe0, value: hex('00') }], length: 20,
    });
  });

  void it('falls back to UNSPEC, block opaque, when only one of the family and transport nibbles is set', () => {
    const r = header(decodeProxyHeader(hex(`${SIG}21100003ffffff`)));
    assert.deepEqual(r.header, { version: 2, command: 'proxy', transport: 'unspec', family: 'unspec', tlvs: [], length: 19 });
  });

  void it('decodes AF_UNIX paths, including a Linux abstract socket as @name', () => {
    const path = (s: string, abstract = false): string => {
      const b = new Uint8Array(108);
      b.set(ascii(s), abstract ? 1 : 0);
      return Buffer.from(b).toString('hex');
    };
    const r = header(decodeProxyHeader(hex(`${SIG}213100d8${path('/run/app.sock')}${path('edge', true)}`)));
    assert.equal(r.header.family, 'unix');
    assert.equal(r.header.transport, 'stream');
    assert.deepEqual(r.header.src, { address: '/run/app.sock', port: 0 });
    assert.deepEqual(r.header.dst, { address: '@edge', port: 0 });
  });

  void it('rejects a wrong version nibble with E_PP_V2_BAD_VERSION as soon as byte 13 arrives', () => {
    assert.equal(code(decodeProxyHeader(hex(`${SIG}1111000c010203040506070800010002`))), 'E_PP_V2_BAD_VERSION');
    assert.equal(code(decodeProxyHeader(hex(`${SIG}31`))), 'E_PP_V2_BAD_VERSION');
  });

  void it('rejects a command other than LOCAL or PROXY with E_PP_V2_BAD_COMMAND', () => {
    assert.equal(code(decodeProxyHeader(hex(`${SIG}2211000c010203040506070800010002`))), 'E_PP_V2_BAD_COMMAND');
    assert.equal(code(decodeProxyHeader(hex(`${SIG}2f`))), 'E_PP_V2_BAD_COMMAND');
  });

  void it('rejects an unknown family or transport nibble under PROXY with E_PP_V2_BAD_FAMILY', () => {
    for (const fam of ['41', '13', 'f0', '03']) {
      assert.equal(code(decodeProxyHeader(hex(`${SIG}21${fam}0000`))), 'E_PP_V2_BAD_FAMILY', fam);
    }
  });

  void it('rejects a length too short for the family with E_PP_V2_BAD_LENGTH before the body arrives', () => {
    assert.equal(code(decodeProxyHeader(hex(`${SIG}2111000b`))), 'E_PP_V2_BAD_LENGTH');
    assert.equal(code(decodeProxyHeader(hex(`${SIG}21220023`))), 'E_PP_V2_BAD_LENGTH');
    assert.equal(code(decodeProxyHeader(hex(`${SIG}213100d7`))), 'E_PP_V2_BAD_LENGTH');
  });

  void it('rejects a TLV that runs past the header, or stray bytes after the last TLV, with E_PP_V2_BAD_TLV', () => {
    const addr = '010203040506070800010002';
    assert.equal(code(decodeProxyHeader(hex(`${SIG}21110011${addr}e00003aabb`))), 'E_PP_V2_BAD_TLV');
    assert.equal(code(decodeProxyHeader(hex(`${SIG}2111000e${addr}e000`))), 'E_PP_V2_BAD_TLV');
    assert.equal(code(decodeProxyHeader(hex(`${SIG}2111000d${addr}e0`))), 'E_PP_V2_BAD_TLV');
  });

  void it('rejects a corrupted signature with E_PP_BAD_SIGNATURE', () => {
    assert.equal(code(decodeProxyHeader(hex('0d0a0d0a010d0a515549540a2111000c'))), 'E_PP_BAD_SIGNATURE');
    assert.equal(code(decodeProxyHeader(hex('0d0a0d0b'))), 'E_PP_BAD_SIGNATURE');
  });

  void it('reports incomplete for every proper prefix of a valid header', () => {
    const bytes = hex(`${SIG}21110011010203040506070800010002e00002aabb`);
    for (let k = 0; k < bytes.length; k++) assert.equal(decodeProxyHeader(bytes.subarray(0, k)).kind, 'incomplete', `prefix ${k}`);
  });

  void it('parseTlvs reports the first bound violation and accepts an empty range', () => {
    assert.deepEqual(parseTlvs(new Uint8Array(0), 0, 0), []);
    assert.equal(typeof parseTlvs(hex('e0ffff00'), 0, 4), 'string');
  });
});

void describe('ProxyHeaderReader', () => {
  const v1 = ascii('PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n');
  const v2 = encodeProxyV2(
    { family: 'IPv6', src: { address: '2001:db8::1', port: 1 }, dst: { address: '2001:db8::2', port: 2 } },
    { tlvs: [{ type: PP2_TYPE.UNIQUE_ID, value: new Uint8Array(128).fill(7) }] },
  );

  for (const [name, bytes] of [['v1', v1], ['v2', v2]] as const) {
    void it(`decodes a ${name} header pushed one byte at a time, then hands back the payload`, () => {
      const input = cat(bytes, ascii('hello'));
      const reader = new ProxyHeaderReader();
      let k = 0;
      let r: DecodeResult = { kind: 'incomplete' };
      for (; k < input.length && r.kind === 'incomplete'; k++) r = reader.push(input.subarray(k, k + 1));
      assert.equal(k, bytes.length, 'the header is decided on its last byte');
      const whole = header(decodeProxyHeader(input));
      assert.deepEqual(header(r).header, whole.header);
      assert.deepEqual(cat(header(r).rest, input.subarray(k)), ascii('hello'));
    });
  }

  void it('returns rest as a view of the last chunk, without copying the payload', () => {
    const chunk = cat(v2, new Uint8Array(4096).fill(1));
    const r = header(new ProxyHeaderReader().push(chunk));
    assert.equal(r.rest.buffer, chunk.buffer);
    assert.equal(r.rest.byteOffset, chunk.byteOffset + v2.length);
    assert.equal(r.rest.length, 4096);
  });

  void it('decodes a maximum-size v2 header (16 + 65535 bytes) fed in uneven chunks', () => {
    const big = encodeProxyV2(
      { family: 'IPv4', src: { address: '1.2.3.4', port: 1 }, dst: { address: '5.6.7.8', port: 2 } },
      { tlvs: [{ type: 0xe0, value: new Uint8Array(65535 - 12 - 3).fill(9) }] },
    );
    const reader = new ProxyHeaderReader();
    let r: DecodeResult = { kind: 'incomplete' };
    for (let at = 0, step = 1; r.kind === 'incomplete'; at += step, step = (step * 7) % 1000 + 1) r = reader.push(big.subarray(at, at + step));
    assert.equal(header(r).header.length, 16 + 65535);
    assert.equal(header(r).header.tlvs[0]?.value.length, 65535 - 15);
  });

  void it('reports an error as soon as the pushed bytes cannot start a header', () => {
    const reader = new ProxyHeaderReader();
    assert.equal(reader.push(ascii('PROXY TC')).kind, 'incomplete');
    assert.equal(code(reader.push(ascii('X4'))), 'E_PP_V1_MALFORMED');
  });

  void it('returns incomplete for an empty chunk', () => {
    assert.equal(new ProxyHeaderReader().push(new Uint8Array(0)).kind, 'incomplete');
  });

  void it('throws on a push after a header or an error (one reader per connection)', () => {
    const ok = new ProxyHeaderReader();
    header(ok.push(v1));
    assert.throws(() => ok.push(ascii('more')), Error);
    const bad = new ProxyHeaderReader();
    code(bad.push(ascii('GET /')));
    assert.throws(() => bad.push(ascii('more')), Error);
  });
});

void describe('toProxyAddresses', () => {
  void it('turns IPv4-mapped socket addresses into IPv4', () => {
    assert.deepEqual(toProxyAddresses({ address: '::ffff:192.0.2.1', port: 1 }, { address: '::ffff:198.51.100.7', port: 443 }), {
      family: 'IPv4', src: { address: '192.0.2.1', port: 1 }, dst: { address: '198.51.100.7', port: 443 },
    });
  });

  void it('maps the IPv4 side to IPv6 when the two families differ', () => {
    assert.deepEqual(toProxyAddresses({ address: '192.0.2.1', port: 1 }, { address: '2001:db8::1', port: 443 }), {
      family: 'IPv6', src: { address: '::ffff:c000:201', port: 1 }, dst: { address: '2001:db8::1', port: 443 },
    });
  });

  void it('drops an IPv6 zone id and canonicalises the address', () => {
    const a = toProxyAddresses({ address: 'FE80:0:0:0:0:0:0:1%eth0', port: 1 }, { address: 'fe80::2%eth0', port: 2 });
    assert.equal(a.family, 'IPv6');
    assert.equal(a.src.address, 'fe80::1');
    assert.equal(a.dst.address, 'fe80::2');
  });

  void it('throws on a host name or a bad port', () => {
    assert.throws(() => toProxyAddresses({ address: 'example.com', port: 1 }, { address: '1.2.3.4', port: 2 }), TypeError);
    assert.throws(() => toProxyAddresses({ address: '1.2.3.4', port: -1 }, { address: '1.2.3.4', port: 2 }), RangeError);
  });
});
