/** Edge-IP allocation (src/model/edge-ips.ts) and the `edge.pools` / `edge.ipv4_quota` settings. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../../src/model/config.ts';
import { allocateEdgeIps, appBindAddresses, edgeIpStateFrom, type EdgeIpState } from '../../../src/model/edge-ips.ts';
import type { RefractConfig } from '../../../src/model/types.ts';

const ORIGIN = ['tcp://127.0.0.1:9000'];
let port = 7000;
function app(name: string, edgeIps: unknown = { type: 'dynamic', connectivity: 'all' }, id?: string): Record<string, unknown> {
  const isStatic = (edgeIps as { type?: string }).type === 'static';
  return { ...(id === undefined ? {} : { id }), protocol: `tcp/${port++}`, dns: { type: isStatic ? 'ADDRESS' : 'CNAME', name }, edge_ips: edgeIps, origin_direct: ORIGIN };
}
function cfg(apps: unknown[], edge: Record<string, unknown> = {}): RefractConfig {
  const r = validateConfig({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['10.1.0.0/29'], ipv6: ['fd00::/120'] }, ...edge }, apps });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}
function issuesOf(apps: unknown[], edge: Record<string, unknown> = {}): Array<[string, string]> {
  const r = validateConfig({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['10.1.0.0/29'], ipv6: ['fd00::/120'] }, ...edge }, apps });
  return r.ok ? [] : r.issues.map((i) => [i.pointer, i.code]);
}
function alloc(config: RefractConfig, prev?: EdgeIpState, nowMs = 0): EdgeIpState {
  const r = allocateEdgeIps(config, prev, nowMs);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.state;
}

describe('edge.pools and edge.ipv4_quota', () => {
  it('defaults: no pools (no allocation), quota 10', () => {
    const r = validateConfig({});
    assert.ok(r.ok);
    assert.deepEqual(r.config.node.pools, { ipv4: [], ipv6: [] });
    assert.equal(r.config.node.ipv4Quota, 10);
  });

  it('bad pools and quotas get codes and pointers', () => {
    assert.deepEqual(issuesOf([], { pools: { ipv4: ['10.0.0.0/33'] } }), [['/edge/pools/ipv4/0', 'E_CONFIG_CIDR']]);
    assert.deepEqual(issuesOf([], { pools: { ipv4: ['fd00::/64'] } }), [['/edge/pools/ipv4/0', 'E_CONFIG_CIDR']]);
    assert.deepEqual(issuesOf([], { pools: { ipv6: ['10.0.0.0/8'] } }), [['/edge/pools/ipv6/0', 'E_CONFIG_CIDR']]);
    assert.deepEqual(issuesOf([], { pools: { ipv5: [] } }), [['/edge/pools/ipv5', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(issuesOf([], { ipv4_quota: -1 }), [['/edge/ipv4_quota', 'E_CONFIG_SCHEMA']]);
  });

  it('the quota counts DNS names with a dynamic IPv4 address: 12005 on the name that does not fit', () => {
    const apps = [app('a.example.com'), app('b.example.com'), app('c.example.com', { connectivity: 'ipv6' })];
    assert.deepEqual(issuesOf(apps, { ipv4_quota: 2 }), []);
    assert.deepEqual(issuesOf([...apps, app('A.example.com')], { ipv4_quota: 2 }), []); // same name, other case
    const r = validateConfig({ edge: { pools: { ipv4: ['10.1.0.0/24'] }, ipv4_quota: 2 }, apps: [...apps.slice(0, 2), app('d.example.com', { connectivity: 'ipv4' })] });
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map((i) => [i.pointer, i.code, i.cfCode]), [['/apps/2/dns/name', 'E_EDGE_IP_QUOTA', 12005]]);
  });

  it('static IPs must lie in a pool or in edge.addresses; one name per address', () => {
    assert.deepEqual(issuesOf([app('s.example.com', { type: 'static', ips: ['10.1.0.3', '127.0.0.1', 'fd00::9'] })]), []);
    assert.deepEqual(issuesOf([app('s.example.com', { type: 'static', ips: ['10.1.0.3', '192.0.2.1'] })]), [['/apps/0/edge_ips/ips/1', 'E_EDGE_IP_NOT_IN_POOL']]);
    assert.deepEqual(
      issuesOf([app('s.example.com', { type: 'static', ips: ['10.1.0.3'] }), app('t.example.com', { type: 'static', ips: ['10.1.0.3'] })]),
      [['/apps/1/edge_ips/ips/0', 'E_EDGE_IP_TAKEN']],
    );
    assert.deepEqual(issuesOf([app('s.example.com', { type: 'static', ips: ['10.1.0.3'] }), app('s.example.com', { type: 'static', ips: ['10.1.0.3'] })]), []);
  });

  it('a family without a pool: ipv4-only apps are refused, "all" takes what there is', () => {
    assert.deepEqual(issuesOf([app('a.example.com', { connectivity: 'ipv4' })], { pools: { ipv6: ['fd00::/120'] } }), [['/apps/0/edge_ips/connectivity', 'E_EDGE_POOL_EXHAUSTED']]);
    const c = cfg([app('a.example.com')], { pools: { ipv6: ['fd00::/120'] } });
    assert.deepEqual(alloc(c).names, { 'a.example.com': { ipv6: 'fd00::1' } });
  });

  it('a pool with no room left is E_EDGE_POOL_EXHAUSTED', () => {
    // 10.1.0.0/30 has two usable addresses (.1, .2).
    assert.deepEqual(issuesOf([app('a.example.com'), app('b.example.com'), app('c.example.com')], { pools: { ipv4: ['10.1.0.0/30'] } }), [['/apps/2/edge_ips', 'E_EDGE_POOL_EXHAUSTED']]);
  });
});

describe('allocateEdgeIps', () => {
  it('without pools nothing is allocated and apps bind every edge address', () => {
    const r = validateConfig({ edge: { addresses: ['127.0.0.1', '::1'] }, apps: [app('a.example.com')] });
    assert.ok(r.ok);
    const a = allocateEdgeIps(r.config, undefined, 0);
    assert.ok(a.ok);
    assert.equal(a.config, r.config);
    assert.deepEqual(appBindAddresses(r.config, r.config.apps[0]!), ['127.0.0.1', '::1']);
  });

  it('one IPv4 and one IPv6 per DNS name, lowest free first, names in sorted order; shared names share', () => {
    const c = cfg([app('b.example.com'), app('a.example.com', { connectivity: 'ipv4' }), app('b.example.com', { connectivity: 'ipv6' }), app('c.example.com', { connectivity: 'ipv6' })]);
    const s = alloc(c);
    assert.deepEqual(s.names, {
      'a.example.com': { ipv4: '10.1.0.1' },
      'b.example.com': { ipv4: '10.1.0.2', ipv6: 'fd00::1' },
      'c.example.com': { ipv6: 'fd00::2' },
    });
    const r = allocateEdgeIps(c, undefined, 0);
    assert.ok(r.ok);
    assert.deepEqual(r.config.apps.map((a) => appBindAddresses(r.config, a)), [['10.1.0.2', 'fd00::1'], ['10.1.0.1'], ['fd00::1'], ['fd00::2']]);
  });

  it('keeps every existing assignment; a freed address is held until the drain deadline, then goes to the next new name', () => {
    const s1 = alloc(cfg([app('a.example.com'), app('b.example.com'), app('c.example.com')]));
    assert.equal(s1.names['b.example.com']?.ipv4, '10.1.0.2');
    // b is deleted at t=1000 and z added: a and c keep theirs; b's addresses are held for drain_timeout_ms (30 s).
    const r = allocateEdgeIps(cfg([app('c.example.com'), app('z.example.com'), app('a.example.com')]), s1, 1000);
    assert.ok(r.ok);
    assert.deepEqual(r.state.names['a.example.com'], s1.names['a.example.com']);
    assert.deepEqual(r.state.names['c.example.com'], s1.names['c.example.com']);
    assert.deepEqual(r.state.names['z.example.com'], { ipv4: '10.1.0.4', ipv6: 'fd00::4' });
    assert.deepEqual(r.state.held, { '10.1.0.2': 31_000, 'fd00::2': 31_000 });
    assert.deepEqual(r.released, ['b.example.com']);
    // Still held just before the deadline: a new name skips them.
    const s2 = alloc(cfg([app('0.example.com'), app('c.example.com'), app('a.example.com'), app('z.example.com')]), r.state, 30_999);
    assert.deepEqual(s2.names['0.example.com'], { ipv4: '10.1.0.5', ipv6: 'fd00::5' });
    assert.deepEqual(s2.held, r.state.held);
    // From the deadline on they are free: the hold is dropped and the next new name takes them.
    const s3 = alloc(cfg([app('1.example.com'), app('c.example.com'), app('a.example.com'), app('z.example.com')]), r.state, 31_000);
    assert.deepEqual(s3.names['a.example.com'], s1.names['a.example.com']);
    assert.deepEqual(s3.names['1.example.com'], { ipv4: '10.1.0.2', ipv6: 'fd00::2' });
    assert.equal(s3.held, undefined);
  });

  it('drain_timeout_ms 0 frees at once; a family a name stops needing is held too', () => {
    const s1 = alloc(cfg([app('a.example.com'), app('b.example.com')], { drain_timeout_ms: 0 }));
    const s2 = alloc(cfg([app('z.example.com')], { drain_timeout_ms: 0 }), s1, 5);
    assert.deepEqual(s2.names['z.example.com'], { ipv4: '10.1.0.1', ipv6: 'fd00::1' });
    assert.equal(s2.held, undefined);
    const s3 = alloc(cfg([app('a.example.com', { connectivity: 'ipv6' }), app('b.example.com')], { drain_timeout_ms: 500 }), s1, 100);
    assert.deepEqual(s3.names['a.example.com'], { ipv6: 'fd00::1' });
    assert.deepEqual(s3.held, { '10.1.0.1': 600 });
  });

  it('rotate gives a name fresh addresses, holds the old ones until the drain deadline, and leaves others alone', () => {
    const c = cfg([app('a.example.com'), app('b.example.com')], { pools: { ipv4: ['10.1.0.0/29'], ipv6: ['fd00::/125'] } });
    const s1 = alloc(c);
    const r = allocateEdgeIps(c, s1, 1000, 'A.example.com.');
    assert.ok(r.ok);
    assert.deepEqual(r.state.names['a.example.com'], { ipv4: '10.1.0.3', ipv6: 'fd00::3' });
    assert.deepEqual(r.state.names['b.example.com'], s1.names['b.example.com']);
    assert.deepEqual(r.state.held, { '10.1.0.1': 31_000, 'fd00::1': 31_000 });
    assert.deepEqual(r.moved.map((m) => [m.from, m.to, m.reason]), [['10.1.0.1', '10.1.0.3', 'rotated'], ['fd00::1', 'fd00::3', 'rotated']]);
    assert.deepEqual(r.config.apps.map((a) => appBindAddresses(r.config, a)), [['10.1.0.3', 'fd00::3'], ['10.1.0.2', 'fd00::2']]);
    // Rotating again skips the held addresses; with drain 0 nothing is held but the old address is still not reused.
    const again = allocateEdgeIps(c, r.state, 2000, 'a.example.com');
    assert.ok(again.ok);
    assert.deepEqual(again.state.names['a.example.com'], { ipv4: '10.1.0.4', ipv6: 'fd00::4' });
    const c0 = cfg([app('a.example.com')], { drain_timeout_ms: 0 });
    const z = allocateEdgeIps(c0, alloc(c0), 0, 'a.example.com');
    assert.ok(z.ok);
    assert.deepEqual(z.state.names['a.example.com'], { ipv4: '10.1.0.2', ipv6: 'fd00::2' });
    assert.equal(z.state.held, undefined);
  });

  it('rotate is refused with a code: a static or unknown name, no pools, or no other free address', () => {
    const codes = (r: ReturnType<typeof allocateEdgeIps>) => (r.ok ? [] : r.issues.map((i) => i.code));
    const st = cfg([app('s.example.com', { type: 'static', ips: ['10.1.0.3'] })]);
    assert.deepEqual(codes(allocateEdgeIps(st, alloc(st), 0, 's.example.com')), ['E_EDGE_IP_NOT_ROTATABLE']);
    const c = cfg([app('a.example.com')]);
    assert.deepEqual(codes(allocateEdgeIps(c, alloc(c), 0, 'nope.example.com')), ['E_EDGE_IP_NOT_ROTATABLE']);
    const none = validateConfig({ apps: [app('a.example.com')] });
    assert.ok(none.ok);
    assert.deepEqual(codes(allocateEdgeIps(none.config, undefined, 0, 'a.example.com')), ['E_EDGE_IP_NOT_ROTATABLE']);
    const full = validateConfig({ edge: { pools: { ipv4: ['10.1.0.0/30'] } }, apps: [app('a.example.com'), app('b.example.com')] });
    assert.ok(full.ok);
    assert.deepEqual(codes(allocateEdgeIps(full.config, alloc(full.config), 0, 'a.example.com')), ['E_EDGE_POOL_EXHAUSTED']);
  });

  it('a static claim on a held address is refused until the hold ends', () => {
    const s1 = alloc(cfg([app('a.example.com')]));
    const s2 = alloc(cfg([]), s1, 0);
    assert.deepEqual(s2.held, { '10.1.0.1': 30_000, 'fd00::1': 30_000 });
    const claim = cfg([app('s.example.com', { type: 'static', ips: ['10.1.0.1'] })]);
    const r = allocateEdgeIps(claim, s2, 10_000);
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map((i) => [i.pointer, i.code]), [['/apps/0/edge_ips/ips/0', 'E_EDGE_IP_TAKEN']]);
    const later = allocateEdgeIps(claim, s2, 30_000);
    assert.ok(later.ok);
    assert.equal(later.state.held, undefined); // both holds ended at 30 s
  });

  it('never hands out static addresses, edge.addresses, or the network and broadcast addresses', () => {
    const c = cfg([app('s.example.com', { type: 'static', ips: ['10.1.0.1'] }), app('a.example.com', { connectivity: 'ipv4' }), app('b.example.com', { connectivity: 'ipv4' })], {
      addresses: ['10.1.0.2'],
      pools: { ipv4: ['10.1.0.0/29'] },
    });
    assert.deepEqual(alloc(c).names, { 'a.example.com': { ipv4: '10.1.0.3' }, 'b.example.com': { ipv4: '10.1.0.4' } });
    const full = validateConfig({ edge: { pools: { ipv4: ['10.1.0.0/30'] } }, apps: [app('a.example.com'), app('b.example.com')] });
    assert.ok(full.ok);
    assert.deepEqual(Object.values(alloc(full.config).names).map((n) => n.ipv4), ['10.1.0.1', '10.1.0.2']);
  });

  it('an address of the previous state no longer in a pool is replaced (moved)', () => {
    const prev = edgeIpStateFrom({ names: { 'a.example.com': { ipv4: '10.9.9.9', ipv6: 'FD00::0:7' } } });
    const r = allocateEdgeIps(cfg([app('a.example.com')]), prev, 0);
    assert.ok(r.ok);
    assert.deepEqual(r.state.names['a.example.com'], { ipv4: '10.1.0.1', ipv6: 'fd00::7' });
    assert.deepEqual(r.moved, [{ name: 'a.example.com', from: '10.9.9.9', to: '10.1.0.1', reason: 'not-in-pool' }]);
  });

  it('a static claim on an address another name holds dynamically is refused, nothing moves', () => {
    const s1 = alloc(cfg([app('a.example.com')]));
    const r = allocateEdgeIps(cfg([app('a.example.com'), app('s.example.com', { type: 'static', ips: ['10.1.0.1'] })]), s1, 0);
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map((i) => [i.pointer, i.code]), [['/apps/1/edge_ips/ips/0', 'E_EDGE_IP_TAKEN']]);
  });

  it('a quota lowered below the names held is reported at /edge/ipv4_quota', () => {
    const s1 = alloc(cfg([app('a.example.com'), app('b.example.com')]));
    const c = validateConfig({ edge: { pools: { ipv4: ['10.1.0.0/29'] }, ipv4_quota: 5 }, apps: [app('a.example.com'), app('b.example.com')] });
    assert.ok(c.ok);
    const r = allocateEdgeIps({ ...c.config, node: { ...c.config.node, ipv4Quota: 1 } }, s1, 0);
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map((i) => [i.pointer, i.code]), [['/edge/ipv4_quota', 'E_EDGE_IP_QUOTA']]);
  });

  it('is deterministic: the same input gives the same state', () => {
    const apps = [app('x.example.com'), app('y.example.com', { connectivity: 'ipv6' }), app('w.example.com', { connectivity: 'ipv4' })];
    assert.deepEqual(alloc(cfg(apps)), alloc(cfg(apps)));
  });

  it('edgeIpStateFrom drops malformed entries and canonicalises IPv6', () => {
    assert.deepEqual(edgeIpStateFrom(null).names, {});
    assert.deepEqual(edgeIpStateFrom({ names: { a: { ipv4: 'x' }, b: { ipv4: '10.0.0.1', ipv6: '::1' }, c: 3, d: { ipv4: '::1' } } }).names, { b: { ipv4: '10.0.0.1', ipv6: '::1' } });
    assert.deepEqual(edgeIpStateFrom({ names: {}, held: { 'FD00::0:7': 5, '10.0.0.1': 'x', bad: 3, '10.0.0.2': 7 } }).held, { 'fd00::7': 5, '10.0.0.2': 7 });
    assert.equal(edgeIpStateFrom({ names: {}, held: {} }).held, undefined);
  });
});
