/**
 * The admission and leg classifiers (src/core/admission.ts, src/core/legs.ts): the decisions the engines announce
 * as machine events (CONN.NO_APP, PROXY.EXPECTED/UNTRUSTED, CONN.FILTERED, TLS.SKIPPED, UPSTREAM.EXHAUSTED).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessVerdict, admitAtAccept } from '../../../src/core/admission.ts';
import { clientLegNeedsTls, nextDialIndex, originLegNeedsTls } from '../../../src/core/legs.ts';
import { compileAccessRules } from '../../../src/core/access-rules.ts';
import { validateAccessRules } from '../../../src/model/access-rules.ts';
import { NO_GEO, type GeoLookup } from '../../../src/core/geo.ts';

const proxy = { trusted: ['10.0.0.0/8'], timeoutMs: 3_000 } as never;

test('at accept: no app first, then PROXY trust, else the access rules run on the socket address', () => {
  assert.equal(admitAtAccept(false, proxy, '10.1.2.3'), 'no_app');
  assert.equal(admitAtAccept(true, undefined, '203.0.113.9'), 'check_access');
  assert.equal(admitAtAccept(true, proxy, '10.1.2.3'), 'expect_proxy');
  assert.equal(admitAtAccept(true, proxy, '203.0.113.9'), 'untrusted');
});

function rules(raw: unknown[]) {
  const r = validateAccessRules(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return compileAccessRules(r.rules);
}
const geo: GeoLookup = { country: (ip) => (ip.startsWith('198.') ? 'NL' : undefined), asn: (ip) => (ip.startsWith('198.') ? { asn: 64500, org: 'x' } : undefined) };

test('access verdict: geo looked up always, rules only for ip_firewall apps, block only on a block rule', () => {
  const r = rules([
    { mode: 'block', configuration: { target: 'country', value: 'NL' } },
    { mode: 'allow', configuration: { target: 'ip', value: '198.51.100.7' } },
  ]);
  const blocked = accessVerdict(true, r, geo, '198.51.100.1');
  assert.deepEqual([blocked.country, blocked.asn, blocked.blocked, blocked.decision?.matched], ['NL', 64500, true, 'BLOCK_COUNTRY']);
  const allowed = accessVerdict(true, r, geo, '198.51.100.7');
  assert.deepEqual([allowed.blocked, allowed.decision?.matched], [false, 'WHITELIST_IP']);
  const off = accessVerdict(false, r, geo, '198.51.100.1');
  assert.deepEqual([off.country, off.blocked, off.decision], ['NL', false, undefined]);
  const none = accessVerdict(true, rules([]), NO_GEO, '203.0.113.1');
  assert.deepEqual([none.country, none.asn, none.blocked, none.decision], ['', 0, false, undefined]);
});

test('legs: which TLS modes handshake on which leg, and when the dial attempts are used up', () => {
  assert.deepEqual((['off', 'flexible', 'full', 'strict'] as const).map(clientLegNeedsTls), [false, true, true, true]);
  assert.deepEqual((['off', 'flexible', 'full', 'strict'] as const).map(originLegNeedsTls), [false, false, true, true]);
  assert.equal(nextDialIndex(0, 3, 2), 0);
  assert.equal(nextDialIndex(1, 3, 2), 1);
  assert.equal(nextDialIndex(2, 3, 2), -1, 'max attempts reached');
  assert.equal(nextDialIndex(1, 1, 5), -1, 'addresses used up');
  assert.equal(nextDialIndex(0, 0, 5), -1, 'no address');
});
