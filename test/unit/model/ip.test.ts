import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  canonicalAddress,
  canonicalIp,
  inAnyCidr,
  isFourPartDecimalV4,
  isLoopback,
  isUnspecified,
  isV4MappedWords,
  parseCidr,
  parseIpLiteral,
  parseIpWords,
  unmappedV4,
  withoutCompatForm,
} from '../../../src/model/ip.ts';

describe('model/ip: literals', () => {
  it('reads dotted four-part IPv4 and zone-free IPv6, nothing else', () => {
    assert.deepEqual(parseIpLiteral('192.0.2.1'), { address: '192.0.2.1', family: 'IPv4' });
    assert.deepEqual(parseIpLiteral('2001:DB8::1'), { address: '2001:db8::1', family: 'IPv6' });
    for (const bad of ['127.1', '0x7f.0.0.1', '010.0.0.1', 'fe80::1%eth0', 'example.com', '', '1.2.3.4/32']) {
      assert.equal(parseIpLiteral(bad), undefined, bad);
    }
  });

  it('classifies unspecified and loopback addresses, IPv4-mapped by their IPv4 address', () => {
    assert.ok(isUnspecified({ address: '0.0.0.0', family: 'IPv4' }));
    assert.ok(isUnspecified({ address: '0:0::0', family: 'IPv6' }));
    assert.ok(!isUnspecified({ address: '10.0.0.1', family: 'IPv4' }));
    assert.ok(isLoopback({ address: '127.9.9.9', family: 'IPv4' }));
    assert.ok(isLoopback({ address: '::1', family: 'IPv6' }));
    assert.ok(isLoopback({ address: '::ffff:127.0.0.1', family: 'IPv6' }));
    assert.ok(!isLoopback({ address: '10.0.0.1', family: 'IPv4' }));
  });

  it('gives canonical text: IPv6 in RFC 5952 form, IPv4-mapped as IPv4', () => {
    assert.deepEqual(canonicalIp('2001:DB8:0:0:0:0:0:1'), { text: '2001:db8::1', family: 'IPv6' });
    assert.deepEqual(canonicalIp('::ffff:192.0.2.1'), { text: '192.0.2.1', family: 'IPv4' });
    assert.deepEqual(canonicalAddress('192.0.2.1', 'IPv4'), { text: '192.0.2.1', family: 'IPv4' });
    assert.equal(canonicalIp('nope'), undefined);
  });

  it('reads the deprecated ::a.b.c.d form as RFC 4291 does, not as IPv4-mapped', () => {
    assert.equal(withoutCompatForm('::1.2.3.4'), '::102:304');
    assert.equal(withoutCompatForm('::1.2.3.4/120'), '::102:304/120');
    assert.deepEqual(canonicalIp('::1.2.3.4'), { text: '::102:304', family: 'IPv6' });
    assert.equal(unmappedV4('::1.2.3.4'), undefined);
    assert.equal(unmappedV4('::ffff:1.2.3.4'), '1.2.3.4');
    assert.equal(unmappedV4('1.2.3.4'), undefined);
  });
});

describe('model/ip: CIDR blocks', () => {
  it('parses blocks and bare addresses, refusing prefixes past the family', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { address: { address: '10.0.0.0', family: 'IPv4' }, prefix: 8 });
    assert.deepEqual(parseCidr('2001:db8::1'), { address: { address: '2001:db8::1', family: 'IPv6' }, prefix: 128 });
    assert.equal(parseCidr('10.0.0.0/33'), undefined);
    assert.equal(parseCidr('10.0.0.0/-1'), undefined);
    assert.equal(parseCidr('10.0.0.0/'), undefined);
  });

  it('matches addresses against blocks; IPv4-mapped peers match IPv4 blocks; bad input matches nothing', () => {
    const trusted = ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'];
    assert.ok(inAnyCidr(trusted, '10.1.2.3'));
    assert.ok(inAnyCidr(trusted, '::ffff:10.1.2.3'));
    assert.ok(inAnyCidr(trusted, '2001:db8:1::5'));
    assert.ok(inAnyCidr(trusted, '192.0.2.7'));
    assert.ok(inAnyCidr(['fe80::/10'], 'fe80::1%eth0'));
    assert.ok(!inAnyCidr(trusted, '192.0.2.8'));
    assert.ok(!inAnyCidr(trusted, '11.0.0.1'));
    assert.ok(!inAnyCidr(trusted, 'not-an-ip'));
    assert.ok(!inAnyCidr(['garbage', '10.0.0.0/99'], '10.0.0.1'));
    assert.ok(inAnyCidr(['::ffff:10.0.0.0/104'], '10.2.3.4'));
  });
});

describe('model/ip: the allocation-free word parser', () => {
  it('writes IPv4 to word 0 and IPv6 to four big-endian words', () => {
    const w = new Uint32Array(4);
    assert.equal(parseIpWords('192.0.2.1', w), 4);
    assert.equal(w[0], 0xc0000201);
    assert.equal(parseIpWords('2001:db8::ffff:1', w), 6);
    assert.deepEqual([...w], [0x20010db8, 0, 0, 0xffff0001]);
    assert.equal(parseIpWords('fe80::1%eth0', w), 6);
    assert.equal(parseIpWords('010.0.0.1', w), 0);
    assert.equal(parseIpWords('1.2.3', w), 0);
  });

  it('recognises IPv4-mapped words', () => {
    const w = new Uint32Array(4);
    assert.equal(parseIpWords('::ffff:192.0.2.1', w), 6);
    assert.ok(isV4MappedWords(w));
    assert.equal(w[3], 0xc0000201);
    parseIpWords('::1', w);
    assert.ok(!isV4MappedWords(w));
  });
});

describe('model/ip: isFourPartDecimalV4', () => {
  it('answers exactly as ipaddr.js isValidFourPartDecimal, for addresses, near-addresses and host names', () => {
    const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '0x7f', '', '-1', '1e2', '256'));
    const nearV4 = fc.tuple(fc.array(octet, { minLength: 1, maxLength: 6 }), fc.constantFrom('.', '..', ':')).map(([o, sep]) => o.join(sep));
    const hostName = fc.domain();
    fc.assert(
      fc.property(fc.oneof(nearV4, hostName, fc.string(), fc.ipV4(), fc.ipV6()), (s) => {
        assert.equal(isFourPartDecimalV4(s), ipaddr.IPv4.isValidFourPartDecimal(s), s);
      }),
      { numRuns: 3_000 },
    );
    assert.equal(isFourPartDecimalV4('192.0.2.1'), true);
    assert.equal(isFourPartDecimalV4('192.0.2.256'), false);
    assert.equal(isFourPartDecimalV4('bench-tls.example.test'), false);
  });
});
