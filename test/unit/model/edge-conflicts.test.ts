/**
 * E_CONFIG_EDGE_CONFLICT per protocol, address and port (src/model/edge-conflicts.ts): the bind check alone, then
 * through the validator (without pools every app binds every edge address; with pools each binds its own edge IPs)
 * and through the stateful allocation the API and the edge node run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { edgeBindConflicts, type EdgeBinder } from '../../../src/model/edge-conflicts.ts';
import { validateConfig } from '../../../src/model/config.ts';
import { allocateEdgeIps, appBindAddresses } from '../../../src/model/edge-ips.ts';
import type { RefractConfig } from '../../../src/model/types.ts';

function binder(i: number, protocol: 'tcp' | 'udp', ports: string, addresses: string[]): EdgeBinder {
  const [start, end = start] = ports.split('-').map(Number) as [number, number?];
  return { pointer: `/apps/${i}`, field: 'protocol', label: `app b${i}`, protocol, ports: { start, end: end! }, addresses };
}
const at = (binders: EdgeBinder[]): string[] => edgeBindConflicts(binders).map((i) => `${i.code} ${i.pointer}`);

describe('edgeBindConflicts', () => {
  it('reports overlapping ranges of one protocol on one address, on the later binder; adjacent ranges and TCP beside UDP are fine', () => {
    assert.deepEqual(at([binder(0, 'tcp', '100-200', ['127.0.0.1']), binder(1, 'udp', '150', ['127.0.0.1']), binder(2, 'tcp', '200-300', ['127.0.0.1'])]), [
      'E_CONFIG_EDGE_CONFLICT /apps/2/protocol',
    ]);
    assert.deepEqual(at([binder(0, 'tcp', '100-199', ['127.0.0.1']), binder(1, 'tcp', '200-300', ['127.0.0.1']), binder(2, 'udp', '100', ['127.0.0.1'])]), []);
  });

  it('the same port on distinct addresses is no conflict', () => {
    assert.deepEqual(at([binder(0, 'tcp', '22', ['127.0.10.1']), binder(1, 'tcp', '22', ['127.0.10.2']), binder(2, 'tcp', '22', ['fd00:10::1'])]), []);
  });

  it('0.0.0.0 collides with every IPv4 address, :: with every address (dual-stack); 0.0.0.0 does not with IPv6', () => {
    assert.deepEqual(at([binder(0, 'tcp', '22', ['127.0.10.1']), binder(1, 'tcp', '20-30', ['0.0.0.0'])]), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
    assert.deepEqual(at([binder(0, 'tcp', '20-30', ['0.0.0.0']), binder(1, 'tcp', '22', ['127.0.10.1'])]), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
    assert.deepEqual(at([binder(0, 'tcp', '22', ['fd00:10::1']), binder(1, 'tcp', '22', ['0.0.0.0'])]), []);
    assert.deepEqual(at([binder(0, 'tcp', '22', ['fd00:10::1']), binder(1, 'tcp', '22', ['::'])]), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
    assert.deepEqual(at([binder(0, 'tcp', '22', ['127.0.10.1']), binder(1, 'tcp', '22', ['::'])]), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
    assert.deepEqual(at([binder(0, 'tcp', '22', ['0.0.0.0']), binder(1, 'tcp', '22', ['::'])]), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
    assert.deepEqual(at([binder(0, 'tcp', '22', ['::']), binder(1, 'tcp', '23', ['127.0.10.1'])]), []);
  });

  it('compares addresses in canonical form (IPv6 spellings, IPv4-mapped)', () => {
    assert.deepEqual(at([binder(0, 'tcp', '22', ['fd00:10:0:0::1']), binder(1, 'tcp', '22', ['FD00:10::1'])]), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
    assert.deepEqual(at([binder(0, 'tcp', '22', ['127.0.0.1']), binder(1, 'tcp', '22', ['::ffff:127.0.0.1'])]), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
  });

  it('a binder on several addresses conflicts on any of them; each binder gets one issue', () => {
    assert.deepEqual(
      at([binder(0, 'tcp', '22', ['127.0.10.1', 'fd00:10::1']), binder(1, 'tcp', '22', ['127.0.10.2', 'fd00:10::1']), binder(2, 'tcp', '1-1000', ['127.0.10.1', '127.0.10.2'])]),
      ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol', 'E_CONFIG_EDGE_CONFLICT /apps/2/protocol'],
    );
  });

  it('the message names both binders and the address and first shared port', () => {
    const [i] = edgeBindConflicts([binder(0, 'tcp', '20-30', ['fd00:10::1']), binder(1, 'tcp', '25-40', ['fd00:10::1'])]);
    assert.match(i!.message, /app b0/);
    assert.match(i!.message, /\/apps\/0/);
    assert.match(i!.message, /\[fd00:10::1\]:25/);
  });
});

const POOL_EDGE = { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/24'], ipv6: ['fd00:10::/64'] } };
const ssh = (name: string, extra: Record<string, unknown> = {}) => ({
  protocol: 'tcp/22',
  dns: { type: 'CNAME', name },
  origin_direct: ['tcp://127.0.0.1:2222'],
  ...extra,
});
const issues = (raw: Record<string, unknown>): string[] => {
  const r = validateConfig(raw);
  return r.ok ? [] : r.issues.map((i) => `${i.code} ${i.pointer}`);
};
function valid(raw: Record<string, unknown>): RefractConfig {
  const r = validateConfig(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

describe('E_CONFIG_EDGE_CONFLICT in the validator', () => {
  it('without pools every app binds every edge address: two apps on tcp/22 conflict whatever their names', () => {
    assert.deepEqual(issues({ edge: { addresses: ['127.0.0.1'] }, apps: [ssh('a.example.com'), ssh('b.example.com')] }), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
    // Reported with every other problem of the file at once.
    assert.deepEqual(issues({ apps: [ssh('a.example.com'), ssh('b.example.com'), { ...ssh('c.example.com'), protocol: 'tcp/0' }] }), [
      'E_CONFIG_PORT_ZERO /apps/2/protocol',
      'E_CONFIG_EDGE_CONFLICT /apps/1/protocol',
    ]);
  });

  it('with pools, two dynamic apps with distinct names share tcp/22 on their own addresses', () => {
    const config = valid({ edge: POOL_EDGE, apps: [ssh('a.example.com'), ssh('b.example.com'), ssh('c.example.com', { edge_ips: { type: 'dynamic', connectivity: 'ipv6' } })] });
    const r = allocateEdgeIps(config, undefined, 0);
    assert.ok(r.ok);
    assert.deepEqual(
      r.config.apps.map((a) => appBindAddresses(r.config, a)),
      [['127.0.10.1', 'fd00:10::1'], ['127.0.10.2', 'fd00:10::2'], ['fd00:10::3']],
    );
  });

  it('with pools, two apps of one name on one port conflict (they share the name\'s addresses)', () => {
    assert.deepEqual(issues({ edge: POOL_EDGE, apps: [ssh('a.example.com'), ssh('b.example.com'), ssh('A.example.com', { id: 'again' })] }), ['E_CONFIG_EDGE_CONFLICT /apps/2/protocol']);
    // Different families of one name do not share an address: ipv4 and ipv6 apps of one name may share a port.
    assert.deepEqual(
      issues({ edge: POOL_EDGE, apps: [ssh('a.example.com', { edge_ips: { connectivity: 'ipv4' } }), ssh('a.example.com', { id: 'v6', edge_ips: { connectivity: 'ipv6' } })] }),
      [],
    );
  });

  it('with pools, a static app on a wildcard edge address conflicts with every app on its port', () => {
    const edge = { addresses: ['0.0.0.0'], pools: POOL_EDGE.pools };
    const wild = ssh('w.example.com', { dns: { type: 'ADDRESS', name: 'w.example.com' }, edge_ips: { type: 'static', ips: ['0.0.0.0'] } });
    assert.deepEqual(issues({ edge, apps: [ssh('a.example.com'), wild] }), ['E_CONFIG_EDGE_CONFLICT /apps/1/protocol']);
    assert.deepEqual(issues({ edge, apps: [ssh('a.example.com', { edge_ips: { connectivity: 'ipv6' } }), wild] }), [], '0.0.0.0 leaves IPv6 alone');
    assert.deepEqual(issues({ edge, apps: [ssh('a.example.com'), { ...wild, protocol: 'tcp/23' }] }), []);
  });

  it('with pools, a static app on the same address and port as another app of its name conflicts', () => {
    const st = (id: string, protocol: string) => ({ id, protocol, dns: { type: 'ADDRESS', name: 's.example.com' }, edge_ips: { type: 'static', ips: ['127.0.10.200'] }, origin_direct: ['tcp://127.0.0.1:2222'] });
    assert.deepEqual(issues({ edge: POOL_EDGE, apps: [ssh('a.example.com'), st('s1', 'tcp/22'), st('s2', 'tcp/20-22')] }), ['E_CONFIG_EDGE_CONFLICT /apps/2/protocol']);
    assert.deepEqual(issues({ edge: POOL_EDGE, apps: [ssh('a.example.com'), st('s1', 'tcp/22'), st('s2', 'tcp/23')] }), []);
  });

  it('built-in origins conflict with apps on the addresses the apps bind', () => {
    const echo = (listen: string) => ({ name: 'echo', listen, behaviour: 'echo' });
    // Without pools apps bind 127.0.0.1: an origin there on the app's port conflicts; elsewhere it does not.
    assert.deepEqual(issues({ origins: [echo('tcp://127.0.0.1:22')], apps: [ssh('a.example.com')] }), ['E_CONFIG_EDGE_CONFLICT /origins/0/listen']);
    assert.deepEqual(issues({ origins: [echo('tcp://127.0.0.2:22')], apps: [ssh('a.example.com')] }), []);
    // With pools the app binds its pool address, not 127.0.0.1: the origin there is fine, one on the pool address is not.
    assert.deepEqual(issues({ edge: POOL_EDGE, origins: [echo('tcp://127.0.0.1:22')], apps: [ssh('a.example.com')] }), []);
    assert.deepEqual(issues({ edge: POOL_EDGE, origins: [echo('tcp://127.0.10.1:22')], apps: [ssh('a.example.com')] }), ['E_CONFIG_EDGE_CONFLICT /origins/0/listen']);
    assert.deepEqual(issues({ edge: POOL_EDGE, origins: [echo('tcp://0.0.0.0:22')], apps: [ssh('a.example.com')] }), ['E_CONFIG_EDGE_CONFLICT /origins/0/listen']);
  });
});

describe('E_CONFIG_EDGE_CONFLICT after a stateful allocation (the API\'s and the edge node\'s)', () => {
  it('a new name beside names holding non-lowest addresses binds its own; an allocation whose apps collide is refused', () => {
    const first = allocateEdgeIps(valid({ edge: POOL_EDGE, apps: [ssh('a.example.com'), ssh('b.example.com')] }), undefined, 0);
    assert.ok(first.ok);
    // a goes away (its addresses are held while they drain); c comes and takes the next free ones, not a's.
    const r = allocateEdgeIps(valid({ edge: POOL_EDGE, apps: [ssh('b.example.com'), ssh('c.example.com')] }), first.state, 10);
    assert.ok(r.ok);
    assert.deepEqual(r.config.apps.map((a) => appBindAddresses(r.config, a)), [['127.0.10.2', 'fd00:10::2'], ['127.0.10.3', 'fd00:10::3']]);
    // A configuration that skipped validation (one more app of name b on tcp/22) is refused by the allocation itself.
    const unchecked: RefractConfig = { ...r.config, edgeIps: undefined, apps: [...r.config.apps, { ...r.config.apps[0]!, id: 'b2' }] };
    const refused = allocateEdgeIps(unchecked, r.state, 20);
    assert.ok(!refused.ok);
    assert.deepEqual(refused.issues.map((i) => `${i.code} ${i.pointer}`), ['E_CONFIG_EDGE_CONFLICT /apps/2/protocol']);
    assert.match(refused.issues[0]!.message, /127\.0\.10\.2:22/);
  });
});
