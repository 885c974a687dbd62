/**
 * The per-client limiter (src/core/client-limits.ts) on virtual time: counts, the token bucket, IPv6 grouping,
 * node and app scopes together, and the memory bound (busy keys are never evicted, idle ones are).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admitClient, capVerdict, clientKey, ClientLimiter, releaseClient, type ClientLimitSettings } from '../../../src/core/client-limits.ts';

const limits = (l: Partial<ClientLimitSettings>): ClientLimitSettings => ({ perIpConnections: undefined, perIpNewPerSecond: undefined, perIpBurst: 1, ipv6Prefix: 64, ...l });

test('per_ip_connections: the n+1th open connection of a client is refused until one closes', () => {
  const lim = new ClientLimiter(10);
  const l = limits({ perIpConnections: 2 });
  for (let i = 0; i < 2; i++) {
    assert.equal(lim.check('10.0.0.1', l, 0), 'ok');
    lim.open('10.0.0.1', l, 0);
  }
  assert.equal(lim.check('10.0.0.1', l, 0), 'connections');
  assert.equal(lim.check('10.0.0.2', l, 0), 'ok', 'another client is not affected');
  lim.close('10.0.0.1', l, 5);
  assert.equal(lim.check('10.0.0.1', l, 5), 'ok');
  assert.equal(lim.openOf('10.0.0.1'), 1);
});

test('token bucket: burst at once, then one per 1/rate seconds; a refused attempt takes no token', () => {
  const lim = new ClientLimiter(10);
  const l = limits({ perIpNewPerSecond: 2, perIpBurst: 3 });
  const k = '192.0.2.1';
  const take = (t: number): string => {
    const v = lim.check(k, l, t);
    if (v === 'ok') {
      lim.open(k, l, t);
      lim.close(k, l, t);
    }
    return v;
  };
  assert.deepEqual([take(0), take(0), take(0), take(0)], ['ok', 'ok', 'ok', 'rate']);
  assert.equal(take(499), 'rate', 'half a second earns one token, not yet');
  assert.equal(take(500), 'ok');
  assert.equal(take(500), 'rate');
  assert.equal(lim.tokensOf(k, l, 100_000), 3, 'a long quiet spell refills to the burst, not past it');
});

test('a key with nothing open and a full bucket is not stored; a refilling one is idle until evicted', () => {
  const lim = new ClientLimiter(2);
  const l = limits({ perIpNewPerSecond: 1, perIpBurst: 1 });
  for (const k of ['a', 'b', 'c']) {
    lim.open(k, l, 0);
    lim.close(k, l, 0);
  }
  assert.deepEqual(lim.size, { busy: 0, idle: 2 }, 'the least recently used idle key (a) was evicted');
  assert.equal(lim.check('a', l, 0), 'ok', 'an evicted key forgets its bucket');
  assert.equal(lim.check('c', l, 0), 'rate');
  const counts = limits({ perIpConnections: 5 });
  lim.open('d', counts, 0);
  lim.close('d', counts, 0);
  assert.equal(lim.size.idle, 2, 'without a rate a closed key keeps nothing');
});

test('busy keys are never evicted, however many idle keys come after them', () => {
  const lim = new ClientLimiter(3);
  const l = limits({ perIpConnections: 1, perIpNewPerSecond: 1, perIpBurst: 1 });
  lim.open('holder', l, 0);
  for (let i = 0; i < 100; i++) {
    lim.open(`k${i}`, l, 0);
    lim.close(`k${i}`, l, 0);
  }
  assert.deepEqual(lim.size, { busy: 1, idle: 3 });
  assert.equal(lim.check('holder', l, 10_000), 'connections', 'its count survived');
  lim.close('holder', l, 10_000);
  assert.throws(() => lim.close('holder', l, 10_000), /nothing open/);
});

test('resize keeps busy keys and the most recent idle ones', () => {
  const lim = new ClientLimiter(5);
  const l = limits({ perIpNewPerSecond: 1, perIpBurst: 1 });
  lim.open('busy', l, 0);
  for (const k of ['a', 'b', 'c', 'd']) {
    lim.open(k, l, 0);
    lim.close(k, l, 0);
  }
  lim.resize(2);
  assert.deepEqual(lim.size, { busy: 1, idle: 2 });
  assert.equal(lim.check('d', l, 0), 'rate');
  assert.equal(lim.check('a', l, 0), 'ok');
});

test('clientKey: IPv4 as is, IPv4-mapped as IPv4, IPv6 cut to its prefix', () => {
  assert.equal(clientKey('203.0.113.9', 64), '203.0.113.9');
  assert.equal(clientKey('::ffff:203.0.113.9', 64), '203.0.113.9');
  assert.equal(clientKey('2001:db8:1:2:aaaa::1', 64), clientKey('2001:db8:1:2:ffff::9', 64));
  assert.notEqual(clientKey('2001:db8:1:2::1', 64), clientKey('2001:db8:1:3::1', 64));
  assert.equal(clientKey('2001:db8:1:2::1', 48), clientKey('2001:db8:1:3::1', 48));
  assert.notEqual(clientKey('2001:db8::1', 128), clientKey('2001:db8::2', 128));
  assert.equal(clientKey('2001:db8:ffff::1', 33), clientKey('2001:db8:8000::', 33));
  assert.notEqual(clientKey('2001:db8:ffff::1', 33), clientKey('2001:db8:7fff::', 33));
});

test('admitClient: node and app scopes both apply (the tighter binds), nothing is counted on a refusal', () => {
  const lim = new ClientLimiter(10);
  const node = limits({ perIpConnections: 3 });
  const app = limits({ perIpConnections: 1 });
  const a = admitClient(lim, node, app, 'app1', '10.0.0.1', 0);
  assert.equal(a.verdict, 'ok');
  assert.equal(admitClient(lim, node, app, 'app1', '10.0.0.1', 0).verdict, 'connections', 'the app allows 1');
  assert.equal(lim.openOf('10.0.0.1'), 1, 'the refusal counted nothing at the node');
  const b = admitClient(lim, node, app, 'app2', '10.0.0.1', 0);
  const c = admitClient(lim, node, undefined, 'app3', '10.0.0.1', 0);
  assert.deepEqual([b.verdict, c.verdict], ['ok', 'ok']);
  assert.equal(admitClient(lim, node, undefined, 'app3', '10.0.0.1', 0).verdict, 'connections', 'the node allows 3 over all apps');
  for (const h of [a.hold, b.hold, c.hold]) releaseClient(lim, h!, 1);
  assert.deepEqual(lim.size, { busy: 0, idle: 0 });
  assert.deepEqual(admitClient(lim, undefined, undefined, 'x', '10.0.0.1', 0), { verdict: 'ok', hold: undefined });
});

test('capVerdict: the node cap first, then the app cap; undefined caps nothing', () => {
  assert.equal(capVerdict(10, 10, 0, 5), 'node_cap');
  assert.equal(capVerdict(9, 10, 5, 5), 'app_cap');
  assert.equal(capVerdict(9, 10, 4, 5), 'ok');
  assert.equal(capVerdict(1e9, undefined, 1e9, undefined), 'ok');
});
