import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ISO_COUNTRY_CODES,
  toCloudflareRule,
  validateAccessRule,
  validateAccessRules,
  type AccessRule,
} from '../../../src/model/access-rules.ts';

function ok(raw: unknown): AccessRule {
  const r = validateAccessRule(raw);
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  return r.rule;
}
/** [code, pointer] pairs, sorted, so a test names exactly the problems it expects. */
function problems(raw: unknown, prefix = ''): string[][] {
  const r = validateAccessRule(raw, prefix);
  assert.ok(!r.ok, 'expected validation to fail');
  return r.issues.map((i) => [i.code, i.pointer]).sort();
}
function listProblems(raw: unknown, prefix = ''): string[][] {
  const r = validateAccessRules(raw, prefix);
  assert.ok(!r.ok, 'expected validation to fail');
  return r.issues.map((i) => [i.code, i.pointer]).sort();
}
const rule = (mode: unknown, target: unknown, value: unknown): Record<string, unknown> => ({ mode, configuration: { target, value } });
const valueOf = (target: string, value: unknown): string => ok(rule('block', target, value)).configuration.value;
const codeOf = (target: string, value: unknown): string[][] => problems(rule('block', target, value));

void describe('IP Access rule objects', () => {
  void it("validates Cloudflare's documented examples for each target and keeps their shape", () => {
    const r = ok({ mode: 'block', configuration: { target: 'ip', value: '198.51.100.4' }, notes: 'This rule is enabled because of an event that occurred on date X.' });
    assert.equal(r.mode, 'block');
    assert.deepEqual(r.configuration, { target: 'ip', value: '198.51.100.4' });
    assert.equal(r.notes, 'This rule is enabled because of an event that occurred on date X.');
    assert.deepEqual(ok(rule('block', 'ip_range', '203.0.113.0/24')).configuration, { target: 'ip_range', value: '203.0.113.0/24' });
    assert.deepEqual(ok(rule('block', 'country', 'T1')).configuration, { target: 'country', value: 'T1' });
    assert.deepEqual(ok(rule('block', 'asn', 'AS13335')).configuration, { target: 'asn', value: 'AS13335' });
  });

  void it('reads mode whitelist (the API spelling) as allow and writes it back as whitelist', () => {
    const r = ok({ mode: 'whitelist', configuration: { target: 'ip6', value: '2001:DB8::1' } });
    assert.equal(r.mode, 'allow');
    assert.deepEqual(r.configuration, { target: 'ip', value: '2001:db8::1' });
    assert.deepEqual(toCloudflareRule(r), { id: r.id, mode: 'whitelist', configuration: { target: 'ip6', value: '2001:db8::1' }, notes: '' });
    assert.equal(toCloudflareRule(ok(rule('block', 'ip', '192.0.2.1'))).configuration.target, 'ip');
  });

  void it('refuses challenge modes and unknown modes with E_RULE_MODE at the mode', () => {
    for (const mode of ['challenge', 'js_challenge', 'managed_challenge', 'Block', 'deny', '']) {
      assert.deepEqual(problems(rule(mode, 'ip', '192.0.2.1')), [['E_RULE_MODE', '/mode']], mode);
    }
    assert.deepEqual(problems(rule(1, 'ip', '192.0.2.1')), [['E_CONFIG_SCHEMA', '/mode']]);
  });

  void it('normalises addresses: RFC 5952 IPv6, and IPv4-mapped IPv6 to IPv4', () => {
    assert.equal(valueOf('ip', '2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
    assert.equal(valueOf('ip', '::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(valueOf('ip6', '::ffff:c000:201'), '192.0.2.1');
    assert.equal(valueOf('ip', '::192.0.2.1'), '::c000:201'); // IPv4-compatible is plain IPv6
    assert.equal(valueOf('ip_range', '2001:DB8:0::/48'), '2001:db8::/48');
    assert.equal(valueOf('ip_range', '::ffff:192.0.2.0/120'), '192.0.2.0/24');
    assert.equal(valueOf('ip_range', '::ffff:0.0.0.0/96'), '0.0.0.0/0');
  });

  void it('accepts any prefix length in ip_range, not only the ones the Cloudflare API takes', () => {
    for (const v of ['0.0.0.0/0', '10.0.0.0/8', '192.0.2.128/25', '192.0.2.1/32', '::/0', '2001:db8::/127', '2001:db8::1/128']) {
      assert.equal(valueOf('ip_range', v), v);
    }
  });

  void it('refuses an ip value that is not one address with E_RULE_IP', () => {
    for (const v of ['192.0.2.0/24', 'example.com', '192.0.2.01', '192.0.2', '256.0.0.1', 'fe80::1%eth0', '', '1::2::3']) {
      assert.deepEqual(codeOf('ip', v), [['E_RULE_IP', '/configuration/value']], v);
    }
    assert.deepEqual(codeOf('ip6', '192.0.2.1'), [['E_RULE_IP', '/configuration/value']]);
    assert.deepEqual(codeOf('ip', 3221225985), [['E_RULE_IP', '/configuration/value']]);
  });

  void it('refuses a malformed range, or one with bits past the prefix, with E_RULE_CIDR', () => {
    for (const v of ['192.0.2.0', '192.0.2.5/24', '192.0.2.0/33', '192.0.2.0/', '192.0.2.0/-1', '2001:db8::1/64', '2001:db8::/129', 'x/8']) {
      assert.deepEqual(codeOf('ip_range', v), [['E_RULE_CIDR', '/configuration/value']], v);
    }
  });

  void it('takes country codes in any case, XX and T1, and refuses names and unassigned codes with E_RULE_COUNTRY', () => {
    assert.equal(valueOf('country', 'de'), 'DE');
    assert.equal(valueOf('country', 'XX'), 'XX');
    assert.equal(valueOf('country', 't1'), 'T1');
    for (const v of ['germany', 'DEU', 'EU', 'ZZ', 'XK', 'D', '', 'T2']) {
      assert.deepEqual(codeOf('country', v), [['E_RULE_COUNTRY', '/configuration/value']], v);
    }
    assert.deepEqual(codeOf('country', 49), [['E_RULE_COUNTRY', '/configuration/value']]);
  });

  void it('ships the 249 ISO 3166-1 alpha-2 codes, each two upper-case letters, once', () => {
    assert.equal(ISO_COUNTRY_CODES.length, 249);
    assert.equal(new Set(ISO_COUNTRY_CODES).size, 249);
    assert.ok(ISO_COUNTRY_CODES.every((c) => /^[A-Z]{2}$/.test(c)));
    for (const c of ['US', 'CN', 'DE', 'SS', 'AQ', 'BQ']) assert.ok(ISO_COUNTRY_CODES.includes(c), c);
  });

  void it('takes an ASN as AS<n>, <n> or a number from 1 to 4294967295, and refuses others with E_RULE_ASN', () => {
    assert.equal(valueOf('asn', 'as13335'), 'AS13335');
    assert.equal(valueOf('asn', '13335'), 'AS13335');
    assert.equal(valueOf('asn', 13335), 'AS13335');
    assert.equal(valueOf('asn', 'AS4294967295'), 'AS4294967295');
    assert.equal(valueOf('asn', 'AS1'), 'AS1');
    for (const v of ['AS0', 0, 'AS4294967296', 4294967296, -1, 1.5, 'AS', 'ASX', 'AS 13335', '99999999999', '']) {
      assert.deepEqual(codeOf('asn', v), [['E_RULE_ASN', '/configuration/value']], String(v));
    }
  });

  void it('requires mode, configuration, target and value, pointing at where each belongs', () => {
    assert.deepEqual(problems({}, '/access_rules/3'), [
      ['E_CONFIG_SCHEMA', '/access_rules/3/configuration'],
      ['E_CONFIG_SCHEMA', '/access_rules/3/mode'],
    ]);
    assert.deepEqual(problems({ mode: 'block', configuration: {} }), [
      ['E_CONFIG_SCHEMA', '/configuration/target'],
      ['E_CONFIG_SCHEMA', '/configuration/value'],
    ]);
    assert.deepEqual(problems({ mode: 'block', configuration: 'ip' }), [['E_CONFIG_SCHEMA', '/configuration']]);
    assert.deepEqual(problems('block'), [['E_CONFIG_SCHEMA', '']]);
    assert.deepEqual(problems(rule('block', 'ip_list', 'x')), [['E_CONFIG_SCHEMA', '/configuration/target']]);
  });

  void it('reports every problem of a rule at once', () => {
    assert.deepEqual(problems({ id: '-bad', mode: 'challenge', configuration: { target: 'asn', value: 'AS0' }, notes: 5 }), [
      ['E_CONFIG_SCHEMA', '/id'],
      ['E_CONFIG_SCHEMA', '/notes'],
      ['E_RULE_ASN', '/configuration/value'],
      ['E_RULE_MODE', '/mode'],
    ]);
  });

  void it('accepts an API response object, ignoring its read-only fields, and treats null as absent', () => {
    const r = ok({
      id: '92f17202ed8bd63d69a66b86a49a8f6b', mode: 'block', allowed_modes: ['whitelist', 'block', 'challenge'],
      configuration: { target: 'ip', value: '198.51.100.4' }, created_on: '2014-01-01T05:20:00.12345Z',
      modified_on: '2014-01-01T05:20:00.12345Z', notes: null, scope: { id: 'x', type: 'zone' },
    });
    assert.deepEqual(r, { id: '92f17202ed8bd63d69a66b86a49a8f6b', mode: 'block', configuration: { target: 'ip', value: '198.51.100.4' }, notes: '' });
  });

  void it('derives the same 32-hex id for the same normalised configuration, and a different one otherwise', () => {
    const a = ok(rule('block', 'ip6', '2001:DB8::1')).id;
    assert.match(a, /^[0-9a-f]{32}$/);
    assert.equal(ok(rule('allow', 'ip', '2001:db8:0::1')).id, a);
    assert.notEqual(ok(rule('block', 'ip_range', '2001:db8::1/128')).id, a);
  });

  void it('validates a normalised rule to itself, deep-frozen', () => {
    for (const raw of [rule('whitelist', 'ip6', '::ffff:192.0.2.1'), rule('block', 'ip_range', '2001:DB8::/32'), rule('block', 'asn', 64500), rule('allow', 'country', 'fr')]) {
      const once = ok(raw);
      assert.deepEqual(ok(once), once);
      assert.ok(Object.isFrozen(once) && Object.isFrozen(once.configuration));
    }
  });
});

void describe('IP Access rule lists', () => {
  void it('validates a list in order, deep-frozen', () => {
    const r = validateAccessRules([rule('block', 'country', 'CN'), rule('allow', 'ip_range', '192.0.2.0/24')], '/access_rules');
    assert.ok(r.ok);
    assert.deepEqual(r.rules.map((x) => x.configuration.value), ['CN', '192.0.2.0/24']);
    assert.ok(Object.isFrozen(r.rules));
  });

  void it('refuses a second rule with the same configuration after normalisation, or the same id, with E_RULE_DUPLICATE', () => {
    assert.deepEqual(listProblems([rule('block', 'ip', '2001:db8::1'), rule('allow', 'ip6', '2001:DB8:0::1')], '/access_rules'), [
      ['E_RULE_DUPLICATE', '/access_rules/1/configuration'],
    ]);
    assert.deepEqual(listProblems([{ ...rule('block', 'ip', '192.0.2.1'), id: 'r1' }, { ...rule('block', 'ip', '192.0.2.2'), id: 'r1' }]), [
      ['E_RULE_DUPLICATE', '/1/id'],
    ]);
    assert.deepEqual(listProblems([rule('block', 'asn', 'AS64500'), rule('block', 'asn', 64500), rule('block', 'asn', '64500')]), [
      ['E_RULE_DUPLICATE', '/1/configuration'],
      ['E_RULE_DUPLICATE', '/2/configuration'],
    ]);
  });

  void it('keeps an ip rule and an ip_range of that one address apart (the ip rule is the more specific)', () => {
    assert.ok(validateAccessRules([rule('block', 'ip', '192.0.2.1'), rule('allow', 'ip_range', '192.0.2.1/32')]).ok);
  });

  void it('reports the problems of every rule, with pointers into the list', () => {
    assert.deepEqual(listProblems([rule('block', 'ip', 'nope'), rule('block', 'country', 'US'), 7], '/access_rules'), [
      ['E_CONFIG_SCHEMA', '/access_rules/2'],
      ['E_RULE_IP', '/access_rules/0/configuration/value'],
    ]);
    assert.deepEqual(listProblems({ mode: 'block' }, '/access_rules'), [['E_CONFIG_SCHEMA', '/access_rules']]);
  });
});
