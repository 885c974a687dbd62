import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileAccessRules, decide, NO_MATCH, type AccessQuery } from '../../../src/core/access-rules.ts';
import { validateAccessRule, type AccessRule } from '../../../src/model/access-rules.ts';
import { isV4MappedWords, parseIpWords } from '../../../src/model/ip.ts';

/** A validated rule with a readable id. */
function r(id: string, mode: 'allow' | 'block' | 'whitelist', target: string, value: string | number): AccessRule {
  const v = validateAccessRule({ id, mode, configuration: { target, value } });
  assert.ok(v.ok, v.ok ? '' : JSON.stringify(v.issues));
  return v.rule;
}
/** [action, matched, ruleId] of one query. */
function ask(rules: readonly AccessRule[], q: AccessQuery | string): [string, string, string | undefined] {
  const d = decide(compileAccessRules(rules), typeof q === 'string' ? { ip: q } : q);
  return [d.action, d.matched, d.ruleId];
}

void describe('access rule evaluation', () => {
  void it('allows everyone with no rules, reporting UNKNOWN and no rule', () => {
    const c = compileAccessRules([]);
    for (const ip of ['192.0.2.1', '2001:db8::1', '::ffff:192.0.2.1', 'garbage']) {
      assert.equal(decide(c, { ip, asn: 64500, country: 'US' }), NO_MATCH);
    }
    assert.deepEqual({ ...NO_MATCH }, { action: 'none', matched: 'UNKNOWN' });
  });

  void it('lets an ip rule beat a range that holds the address, whichever the modes', () => {
    const rules = [r('net', 'block', 'ip_range', '192.0.2.0/24'), r('host', 'allow', 'ip', '192.0.2.7')];
    assert.deepEqual(ask(rules, '192.0.2.7'), ['allow', 'WHITELIST_IP', 'host']);
    assert.deepEqual(ask(rules, '192.0.2.8'), ['block', 'BLOCK_IP', 'net']);
    const flipped = [r('net', 'allow', 'ip_range', '192.0.2.0/24'), r('host', 'block', 'ip', '192.0.2.7')];
    assert.deepEqual(ask(flipped, '192.0.2.7'), ['block', 'BLOCK_IP', 'host']);
  });

  void it('lets an ip rule beat a /32 range of the same address even when the range allows', () => {
    const rules = [r('range32', 'allow', 'ip_range', '192.0.2.7/32'), r('host', 'block', 'ip', '192.0.2.7')];
    assert.deepEqual(ask(rules, '192.0.2.7'), ['block', 'BLOCK_IP', 'host']);
    const v6 = [r('range128', 'allow', 'ip_range', '2001:db8::7/128'), r('host6', 'block', 'ip', '2001:db8::7')];
    assert.deepEqual(ask(v6, '2001:db8::7'), ['block', 'BLOCK_IP', 'host6']);
  });

  void it('lets the longer prefix win among nested ranges, up to their first and last addresses', () => {
    const rules = [
      r('a16', 'block', 'ip_range', '10.1.0.0/16'),
      r('b24', 'allow', 'ip_range', '10.1.2.0/24'),
      r('c25', 'block', 'ip_range', '10.1.2.128/25'),
      r('d8', 'allow', 'ip_range', '10.0.0.0/8'),
    ];
    const at = (ip: string): string | undefined => ask(rules, ip)[2];
    assert.equal(at('10.0.255.255'), 'd8');
    assert.equal(at('10.1.0.0'), 'a16');
    assert.equal(at('10.1.1.255'), 'a16');
    assert.equal(at('10.1.2.0'), 'b24');
    assert.equal(at('10.1.2.127'), 'b24');
    assert.equal(at('10.1.2.128'), 'c25');
    assert.equal(at('10.1.2.255'), 'c25');
    assert.equal(at('10.1.3.0'), 'a16');
    assert.equal(at('10.1.255.255'), 'a16');
    assert.equal(at('10.2.0.0'), 'd8');
    assert.equal(at('10.255.255.255'), 'd8');
    assert.equal(at('11.0.0.0'), undefined);
    assert.equal(at('9.255.255.255'), undefined);
  });

  void it('covers the whole space with /0 rules, including the last address of each family', () => {
    const rules = [r('all4', 'block', 'ip_range', '0.0.0.0/0'), r('all6', 'block', 'ip_range', '::/0'), r('top', 'allow', 'ip', '255.255.255.255')];
    assert.equal(ask(rules, '0.0.0.0')[2], 'all4');
    assert.equal(ask(rules, '255.255.255.254')[2], 'all4');
    assert.equal(ask(rules, '255.255.255.255')[2], 'top');
    assert.equal(ask(rules, '::')[2], 'all6');
    assert.equal(ask(rules, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')[2], 'all6');
  });

  void it('decides by IP, then ASN, then country', () => {
    const rules = [r('cn', 'block', 'country', 'CN'), r('as', 'allow', 'asn', 'AS64500'), r('ip', 'block', 'ip_range', '198.51.100.0/24')];
    assert.deepEqual(ask(rules, { ip: '198.51.100.1', asn: 64500, country: 'CN' }), ['block', 'BLOCK_IP', 'ip']);
    assert.deepEqual(ask(rules, { ip: '203.0.113.1', asn: 64500, country: 'CN' }), ['allow', 'WHITELIST_ASN', 'as']);
    assert.deepEqual(ask(rules, { ip: '203.0.113.1', asn: 64501, country: 'CN' }), ['block', 'BLOCK_COUNTRY', 'cn']);
    assert.deepEqual(ask(rules, { ip: '203.0.113.1', country: 'US' }), ['none', 'UNKNOWN', undefined]);
    const flipped = [r('cn', 'allow', 'country', 'CN'), r('as', 'block', 'asn', 'AS64500')];
    assert.deepEqual(ask(flipped, { ip: '203.0.113.1', asn: 64500, country: 'CN' }), ['block', 'BLOCK_ASN', 'as']);
    assert.deepEqual(ask(flipped, { ip: '203.0.113.1', country: 'CN' }), ['allow', 'WHITELIST_COUNTRY', 'cn']);
  });

  void it('lets allow beat block between rules of equal specificity, in either order, then the earlier rule', () => {
    const pairs: [string, string | number][] = [['ip_range', '192.0.2.0/24'], ['ip', '2001:db8::1'], ['asn', 'AS64500'], ['country', 'DE']];
    const q: AccessQuery = { ip: '192.0.2.9', asn: 64500, country: 'DE' };
    for (const [target, value] of pairs) {
      const ip = target === 'ip' ? '2001:db8::1' : q.ip;
      const b = r('b', 'block', target, value);
      const a = r('a', 'whitelist', target, value);
      assert.equal(ask([b, a], { ...q, ip })[2], 'a', target);
      assert.equal(ask([a, b], { ...q, ip })[2], 'a', target);
      assert.equal(ask([b, r('b2', 'block', target, value)], { ...q, ip })[2], 'b', target);
    }
  });

  void it('treats an IPv4-mapped IPv6 client as the IPv4 client, and IPv6 rules do not see it', () => {
    const rules = [r('v4', 'block', 'ip_range', '192.0.2.0/24'), r('v6all', 'allow', 'ip_range', '::/0')];
    assert.deepEqual(ask(rules, '::ffff:192.0.2.1'), ['block', 'BLOCK_IP', 'v4']);
    assert.deepEqual(ask(rules, '::FFFF:c000:0201'), ['block', 'BLOCK_IP', 'v4']);
    assert.deepEqual(ask(rules, '::ffff:198.51.100.1'), ['none', 'UNKNOWN', undefined]);
    assert.deepEqual(ask(rules, '::192.0.2.1'), ['allow', 'WHITELIST_IP', 'v6all']); // IPv4-compatible is IPv6
    assert.deepEqual(ask([r('m', 'block', 'ip', '::ffff:192.0.2.1')], '192.0.2.1'), ['block', 'BLOCK_IP', 'm']);
  });

  void it('ignores the zone of a link-local client address', () => {
    assert.deepEqual(ask([r('ll', 'block', 'ip_range', 'fe80::/10')], 'fe80::1%eth0'), ['block', 'BLOCK_IP', 'll']);
  });

  void it('matches no IP rule for a client address it cannot parse, but still ASN and country rules', () => {
    const rules = [r('all', 'block', 'ip_range', '0.0.0.0/0'), r('de', 'block', 'country', 'DE')];
    assert.deepEqual(ask(rules, 'not-an-ip'), ['none', 'UNKNOWN', undefined]);
    assert.deepEqual(ask(rules, { ip: '', country: 'DE' }), ['block', 'BLOCK_COUNTRY', 'de']);
  });

  void it('matches a country given in lower case', () => {
    assert.equal(ask([r('de', 'block', 'country', 'DE')], { ip: '192.0.2.1', country: 'de' })[2], 'de');
  });

  void it('returns one shared frozen decision per rule, so deciding allocates nothing', () => {
    const c = compileAccessRules([r('net', 'block', 'ip_range', '192.0.2.0/24')]);
    const d1 = decide(c, { ip: '192.0.2.1' });
    assert.equal(decide(c, { ip: '192.0.2.200' }), d1);
    assert.ok(Object.isFrozen(d1) && Object.isFrozen(c));
    assert.equal(c.size, 1);
  });

  void it('throws a plain Error for a rule that was not validated', () => {
    const raw = (target: string, value: string): AccessRule => ({ id: 'x', mode: 'block', notes: '', configuration: { target, value } as AccessRule['configuration'] });
    for (const bad of [raw('ip', '192.0.2.0/24'), raw('ip_range', '192.0.2.0'), raw('ip_range', '192.0.2.0/33'), raw('ip', 'fe80::1%eth0'), raw('asn', '64500')]) {
      assert.throws(() => compileAccessRules([bad]), (e: unknown) => e instanceof Error && !('code' in e), JSON.stringify(bad));
    }
  });
});

void describe('the address parser', () => {
  const words = new Uint32Array(4);
  const parsed = (s: string): [number, number[]] => {
    const f = parseIpWords(s, words);
    return [f, f === 4 ? [words[0] ?? 0] : f === 6 ? [...words] : []];
  };

  void it('reads IPv4 dotted quads and the IPv6 text forms into big-endian words', () => {
    assert.deepEqual(parsed('192.0.2.1'), [4, [0xc0000201]]);
    assert.deepEqual(parsed('255.255.255.255'), [4, [0xffffffff]]);
    assert.deepEqual(parsed('::'), [6, [0, 0, 0, 0]]);
    assert.deepEqual(parsed('::1'), [6, [0, 0, 0, 1]]);
    assert.deepEqual(parsed('1::'), [6, [0x10000, 0, 0, 0]]);
    assert.deepEqual(parsed('2001:DB8::8:800:200C:417A'), [6, [0x20010db8, 0, 0x80800, 0x200c417a]]);
    assert.deepEqual(parsed('1:2:3:4:5:6:7:8'), [6, [0x10002, 0x30004, 0x50006, 0x70008]]);
    assert.deepEqual(parsed('::ffff:192.0.2.1'), [6, [0, 0, 0xffff, 0xc0000201]]);
    assert.deepEqual(parsed('1:2:3:4:5:6:7::'), [6, [0x10002, 0x30004, 0x50006, 0x70000]]);
    assert.deepEqual(parsed('fe80::1%eth0'), [6, [0xfe800000, 0, 0, 1]]);
    assert.ok(isV4MappedWords(new Uint32Array([0, 0, 0xffff, 1])));
    assert.ok(!isV4MappedWords(new Uint32Array([0, 0, 0, 1])));
  });

  void it('refuses what is not an address', () => {
    for (const s of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', '1..2.3', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1::', '1::2:', '12345::',
      '1:2:3:4:5:6:7::8', '::ffff:1.2.3', 'g::1', '%eth0', '::1%', '1.2.3.4%eth0x', ' 1.2.3.4', '::1.2.3.4:5']) {
      assert.equal(parseIpWords(s, words), 0, s);
    }
  });
});
