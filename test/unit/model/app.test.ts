import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { crossAppIssues, validateApp } from '../../../src/model/app.ts';
import { type AppSpec } from '../../../src/model/types.ts';

const base = { protocol: 'tcp/22', dns: { type: 'CNAME', name: 'ssh.example.com' }, origin_direct: ['tcp://192.0.2.1:22'] };

function ok(raw: unknown, opts: Parameters<typeof validateApp>[2] = {}): AppSpec {
  const r = validateApp(raw, '', opts);
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  return r.app;
}
/** [code, pointer] pairs, sorted, so a test names exactly the problems it expects. */
function problems(raw: unknown, prefix = '', opts: Parameters<typeof validateApp>[2] = {}): string[][] {
  const r = validateApp(raw, prefix, opts);
  assert.ok(!r.ok, 'expected validation to fail');
  return r.issues.map((i) => [i.code, i.pointer]).sort();
}

void describe('the Spectrum app object', () => {
  void it('validates the create request from the Spectrum docs and keeps its fields', () => {
    const req = {
      protocol: 'tcp/22', dns: { type: 'CNAME', name: 'ssh.example.com' }, origin_direct: ['tcp://192.0.2.1:22'],
      proxy_protocol: 'off', ip_firewall: true, tls: 'full', edge_ips: { type: 'dynamic', connectivity: 'all' },
      traffic_type: 'direct', argo_smart_routing: true,
    };
    const app = ok(req);
    assert.equal(app.protocol, 'tcp');
    assert.deepEqual(app.edgePorts, { start: 22, end: 22 });
    assert.equal(app.tls, 'full');
    assert.equal(app.ipFirewall, true);
    assert.equal(app.argoSmartRouting, true);
    assert.match(app.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(app.spec, { id: app.id, ...req });
  });

  void it('accepts the response object (read-only id and dates) and keeps its id', () => {
    const app = ok({ ...base, id: 'ea95132c15732412d22c1476fa83f27a', created_on: '2014-01-02T02:20:00Z', modified_on: '2014-01-02T02:20:00Z' });
    assert.equal(app.id, 'ea95132c15732412d22c1476fa83f27a');
    assert.equal(Object.hasOwn(app.spec, 'created_on'), false);
  });

  void it('fills Spectrum defaults', () => {
    const app = ok({ protocol: 'tcp/22', dns: { name: 'ssh.example.com' }, origin_direct: ['tcp://192.0.2.1:22'] });
    assert.equal(app.proxyProtocol, 'off');
    assert.equal(app.tls, 'off');
    assert.equal(app.ipFirewall, false);
    assert.equal(app.argoSmartRouting, false);
    assert.equal(app.trafficType, 'direct');
    assert.deepEqual(app.dns, { type: 'CNAME', name: 'ssh.example.com' });
    assert.deepEqual(app.edgeIps, { type: 'dynamic', connectivity: 'all' });
    assert.equal(app.connectTimeoutMs, undefined);
  });

  void it('derives the same id for the same protocol and name, and a different one otherwise', () => {
    const a = ok(base).id;
    assert.equal(ok({ ...base, protocol: 'tcp/22-22', dns: { name: 'SSH.example.com.' } }).id, a);
    assert.notEqual(ok({ ...base, protocol: 'tcp/23', origin_direct: ['tcp://192.0.2.1:22'] }).id, a);
  });

  void it('ignores unknown fields and keeps them out of the spec', () => {
    const app = ok({ ...base, ipv4: true, colour: 'blue', dns: { ...base.dns, extra: 1 } });
    assert.equal(Object.hasOwn(app.spec, 'ipv4'), false);
    assert.equal(Object.hasOwn(app.spec, 'colour'), false);
    assert.deepEqual(app.spec['dns'], { type: 'CNAME', name: 'ssh.example.com' });
  });

  void it('treats null as absent for optional fields', () => {
    const app = ok({ ...base, origin_dns: null, origin_port: null, tls: null, edge_ips: null });
    assert.equal(app.tls, 'off');
  });

  void it('returns a deep-frozen AppSpec', () => {
    const app = ok(base);
    assert.ok(Object.isFrozen(app) && Object.isFrozen(app.spec) && Object.isFrozen(app.origin) && Object.isFrozen(app.edgePorts));
  });

  void it('keeps Refract timeout overrides in the AppSpec and the spec', () => {
    const app = ok({ ...base, connect_timeout_ms: 500, idle_timeout_ms: 1000 });
    assert.equal(app.connectTimeoutMs, 500);
    assert.equal(app.idleTimeoutMs, 1000);
    assert.equal(app.spec['idle_timeout_ms'], 1000);
    assert.deepEqual(problems({ ...base, idle_timeout_ms: 0 }), [['E_CONFIG_SCHEMA', '/idle_timeout_ms']]);
  });
});

void describe('legacy forms', () => {
  void it('reads proxy_protocol true as v1 and false as off', () => {
    assert.equal(ok({ ...base, proxy_protocol: true }).proxyProtocol, 'v1');
    assert.equal(ok({ ...base, proxy_protocol: false }).proxyProtocol, 'off');
    assert.equal(ok({ ...base, proxy_protocol: true }).spec['proxy_protocol'], 'v1');
  });
  void it('reads spp true as simple on a UDP app', () => {
    const udp = { protocol: 'udp/53', dns: { name: 'dns.example.com' }, origin_direct: ['udp://192.0.2.1:53'] };
    assert.equal(ok({ ...udp, spp: true }).proxyProtocol, 'simple');
    assert.equal(ok({ ...udp, spp: true, proxy_protocol: false }).proxyProtocol, 'simple');
    assert.equal(ok({ ...udp, spp: false, proxy_protocol: 'v2' }).proxyProtocol, 'v2');
    assert.deepEqual(problems({ ...udp, spp: true, proxy_protocol: 'v2' }), [['E_CONFIG_PROXY_PROTOCOL', '/spp']]);
  });
  void it('reads a numeric-string origin_port as a number and A-A as a single port', () => {
    const dnsApp = { protocol: 'tcp/22', dns: { name: 'ssh.example.com' }, origin_dns: { name: 'origin.example.com' } };
    const app = ok({ ...dnsApp, origin_port: '22' });
    assert.deepEqual(app.origin, { kind: 'dns', name: 'origin.example.com', type: '', ttlSec: undefined, ports: { start: 22, end: 22 } });
    assert.equal(app.spec['origin_port'], 22);
    assert.equal(ok({ ...dnsApp, origin_port: '22-22' }).spec['origin_port'], 22);
  });
});

void describe('origins', () => {
  const dnsApp = { protocol: 'tcp/1000-2000', dns: { name: 'r.example.com' }, origin_dns: { name: 'origin.example.com', ttl: 1200 } };

  void it('accepts the DNS-origin example with a port range', () => {
    const app = ok({ ...dnsApp, origin_port: '3000-4000' });
    assert.deepEqual(app.origin, { kind: 'dns', name: 'origin.example.com', type: '', ttlSec: 1200, ports: { start: 3000, end: 4000 } });
    assert.equal(app.spec['origin_port'], '3000-4000');
  });
  void it('maps an edge range onto one origin port', () => {
    assert.deepEqual(ok({ ...dnsApp, origin_port: 3000 }).origin, { kind: 'dns', name: 'origin.example.com', type: '', ttlSec: 1200, ports: { start: 3000, end: 3000 } });
    assert.equal(ok({ ...base, protocol: 'tcp/100-200' }).origin.kind, 'direct');
  });
  void it('takes SRV without origin_port', () => {
    const app = ok({ ...dnsApp, origin_dns: { name: '_mc._tcp.example.com', type: 'SRV', ttl: 600 } });
    assert.equal(app.origin.kind === 'dns' ? app.origin.ports : 'x', undefined);
  });
  void it('gives 11000 for neither, both, an empty list, or origin_port with origin_direct', () => {
    assert.deepEqual(problems({ protocol: 'tcp/22', dns: { name: 'a.example.com' } }, '/apps/3'), [['E_ORIGIN_CONFIG_INVALID', '/apps/3']]);
    assert.deepEqual(problems({ ...base, origin_dns: { name: 'o.example.com' }, origin_port: 22 }), [['E_ORIGIN_CONFIG_INVALID', '/origin_dns']]);
    assert.deepEqual(problems({ ...base, origin_direct: [] }), [['E_ORIGIN_CONFIG_INVALID', '/origin_direct']]);
    assert.deepEqual(problems({ ...base, origin_port: 22 }), [['E_ORIGIN_CONFIG_INVALID', '/origin_port']]);
    const p = problems({ ...base, origin_dns: { name: 'o.example.com' }, origin_port: 22 });
    assert.ok(p.every(([c]) => c === 'E_ORIGIN_CONFIG_INVALID'));
  });
  void it('gives 11001 for a bad name, a missing origin_port, a short ttl and origin_port with SRV', () => {
    assert.deepEqual(problems({ ...dnsApp, origin_dns: { name: 'not a name' }, origin_port: 3000 }), [['E_ORIGIN_DNS_INVALID', '/origin_dns/name']]);
    assert.deepEqual(problems({ ...dnsApp, origin_dns: { name: 'o.example.com', type: 'A' } }), [['E_ORIGIN_DNS_INVALID', '/origin_port']]);
    assert.deepEqual(problems({ ...dnsApp, origin_dns: { name: 'o.example.com', ttl: 599 }, origin_port: 3000 }), [['E_ORIGIN_DNS_INVALID', '/origin_dns/ttl']]);
    assert.deepEqual(problems({ ...dnsApp, origin_dns: { name: 'o.example.com', type: 'SRV' }, origin_port: 3000 }), [['E_ORIGIN_DNS_INVALID', '/origin_port']]);
    assert.deepEqual(problems({ ...dnsApp, origin_dns: { name: 'o.example.com', type: 'MX' }, origin_port: 3000 }), [['E_ORIGIN_DNS_INVALID', '/origin_dns/type']]);
    assert.deepEqual(problems({ ...dnsApp, origin_dns: { name: 'o.example.com', ttl: 'long' }, origin_port: 3000 }), [['E_ORIGIN_DNS_INVALID', '/origin_dns/ttl']]);
    assert.deepEqual(problems({ ...dnsApp, origin_dns: 'o.example.com', origin_port: 3000 }), [['E_ORIGIN_DNS_INVALID', '/origin_dns']]);
  });
  void it('accepts a short ttl when the node lowers the floor', () => {
    const app = ok({ ...dnsApp, origin_dns: { name: 'o.example.com', ttl: 1 }, origin_port: 3000 }, { originDnsMinTtlSec: 1 });
    assert.equal(app.origin.kind === 'dns' ? app.origin.ttlSec : 0, 1);
  });
  void it('gives 11002 for a bad origin_direct address, pointing at the entry', () => {
    assert.deepEqual(problems({ ...base, origin_direct: ['tcp://192.0.2.1:22', 'tcp://2001:db8::1:22'] }, '/apps/0'), [
      ['E_ORIGIN_ADDRESS_INVALID', '/apps/0/origin_direct/1'],
    ]);
    assert.deepEqual(problems({ ...base, origin_direct: ['tcp://origin.example.com:22'] }), [['E_ORIGIN_ADDRESS_INVALID', '/origin_direct/0']]);
  });
  void it('gives E_CONFIG_PROTOCOL_MISMATCH for a udp:// origin on a TCP app', () => {
    assert.deepEqual(problems({ ...base, origin_direct: ['udp://192.0.2.1:22'] }), [['E_CONFIG_PROTOCOL_MISMATCH', '/origin_direct/0']]);
  });
  void it('gives E_CONFIG_PORT_RANGE_MISMATCH when range lengths differ', () => {
    assert.deepEqual(problems({ ...base, protocol: 'tcp/1000-2000', origin_direct: ['tcp://192.0.2.1:3000-3999'] }), [
      ['E_CONFIG_PORT_RANGE_MISMATCH', '/origin_direct/0'],
    ]);
    assert.deepEqual(problems({ ...dnsApp, origin_port: '3000-3001' }), [['E_CONFIG_PORT_RANGE_MISMATCH', '/origin_port']]);
    assert.deepEqual(problems({ ...base, origin_direct: ['tcp://192.0.2.1:22-23'] }), [['E_CONFIG_PORT_RANGE_MISMATCH', '/origin_direct/0']]);
  });
  void it('gives port codes for port zero and reversed ranges wherever they appear', () => {
    assert.deepEqual(problems({ ...base, protocol: 'tcp/0' }), [['E_CONFIG_PORT_ZERO', '/protocol']]);
    assert.deepEqual(problems({ ...base, origin_direct: ['tcp://192.0.2.1:0'] }), [['E_CONFIG_PORT_ZERO', '/origin_direct/0']]);
    assert.deepEqual(problems({ ...dnsApp, origin_port: 0 }), [['E_CONFIG_PORT_ZERO', '/origin_port']]);
    assert.deepEqual(problems({ ...base, protocol: 'tcp/30-20' }), [['E_CONFIG_PORT_RANGE_ORDER', '/protocol']]);
    assert.deepEqual(problems({ ...dnsApp, origin_port: '4000-3000' }), [['E_CONFIG_PORT_RANGE_ORDER', '/origin_port']]);
    assert.deepEqual(problems({ ...dnsApp, origin_port: 70000 }), [['E_CONFIG_SCHEMA', '/origin_port']]);
    assert.deepEqual(problems({ ...dnsApp, origin_port: 'x' }), [['E_CONFIG_SCHEMA', '/origin_port']]);
  });
});

void describe('protocol, proxy_protocol, tls and the rest', () => {
  void it('gives E_CONFIG_PROTOCOL for a malformed protocol and E_CONFIG_SCHEMA when missing', () => {
    assert.deepEqual(problems({ ...base, protocol: 'sctp/22' }), [['E_CONFIG_PROTOCOL', '/protocol']]);
    assert.deepEqual(problems({ ...base, protocol: 22 }), [['E_CONFIG_SCHEMA', '/protocol']]);
    const { protocol: _p, ...noProtocol } = base;
    assert.deepEqual(problems(noProtocol), [['E_CONFIG_SCHEMA', '/protocol']]);
  });
  void it('gives E_CONFIG_PROXY_PROTOCOL for v1 on UDP and simple on TCP', () => {
    const udp = { protocol: 'udp/53', dns: { name: 'dns.example.com' }, origin_direct: ['udp://192.0.2.1:53'] };
    assert.deepEqual(problems({ ...udp, proxy_protocol: 'v1' }), [['E_CONFIG_PROXY_PROTOCOL', '/proxy_protocol']]);
    assert.deepEqual(problems({ ...udp, proxy_protocol: true }), [['E_CONFIG_PROXY_PROTOCOL', '/proxy_protocol']]);
    assert.deepEqual(problems({ ...base, proxy_protocol: 'simple' }), [['E_CONFIG_PROXY_PROTOCOL', '/proxy_protocol']]);
    assert.deepEqual(problems({ ...base, spp: true }), [['E_CONFIG_PROXY_PROTOCOL', '/spp']]);
    assert.deepEqual(problems({ ...base, proxy_protocol: 'v3' }), [['E_CONFIG_SCHEMA', '/proxy_protocol']]);
  });
  void it('rejects edge TLS on a UDP app', () => {
    const udp = { protocol: 'udp/53', dns: { name: 'dns.example.com' }, origin_direct: ['udp://192.0.2.1:53'] };
    assert.deepEqual(problems({ ...udp, tls: 'full' }), [['E_CONFIG_SCHEMA', '/tls']]);
  });
  void it('passes TLS modes and argo through on TCP apps', () => {
    for (const tls of ['off', 'flexible', 'full', 'strict'] as const) assert.equal(ok({ ...base, tls }).tls, tls);
  });
  void it('gives E_CONFIG_UNSUPPORTED for L7 traffic types and virtual networks', () => {
    assert.deepEqual(problems({ ...base, traffic_type: 'https' }), [['E_CONFIG_UNSUPPORTED', '/traffic_type']]);
    assert.deepEqual(problems({ ...base, virtual_network_id: 'f5c4e5ae-4a3e-4a3e-8a3e-4a3e4a3e4a3e' }), [['E_CONFIG_UNSUPPORTED', '/virtual_network_id']]);
    assert.deepEqual(problems({ ...base, traffic_type: 'worker' }), [['E_CONFIG_SCHEMA', '/traffic_type']]);
  });
  void it('gives 11004 when dns.type does not match edge_ips', () => {
    assert.deepEqual(problems({ ...base, dns: { type: 'ADDRESS', name: 'a.example.com' } }), [['E_DNS_TYPE_MISMATCH', '/dns/type']]);
    assert.deepEqual(problems({ ...base, edge_ips: { type: 'static', ips: ['198.51.100.10'] } }), [['E_DNS_TYPE_MISMATCH', '/edge_ips']]);
    assert.deepEqual(problems({ ...base, dns: { type: 'ADDRESS', name: 'a.example.com' }, edge_ips: { type: 'dynamic', connectivity: 'ipv6' } }), [
      ['E_DNS_TYPE_MISMATCH', '/edge_ips'],
    ]);
  });
  void it('accepts static edge IPs with an ADDRESS name, and infers static from ips', () => {
    const app = ok({ ...base, dns: { type: 'ADDRESS', name: 'www.example.com' }, edge_ips: { ips: ['198.51.100.10', '2001:DB8::1'] } });
    assert.deepEqual(app.edgeIps, { type: 'static', ips: ['198.51.100.10', '2001:db8::1'] });
  });
  void it('rejects contradictory or empty edge_ips', () => {
    const addr = { ...base, dns: { type: 'ADDRESS', name: 'www.example.com' } };
    assert.deepEqual(problems({ ...addr, edge_ips: { type: 'static', ips: [] } }), [['E_CONFIG_SCHEMA', '/edge_ips/ips']]);
    assert.deepEqual(problems({ ...addr, edge_ips: { type: 'static' } }), [['E_CONFIG_SCHEMA', '/edge_ips/ips']]);
    assert.deepEqual(problems({ ...addr, edge_ips: { type: 'static', ips: ['not-an-ip'] } }), [['E_CONFIG_CIDR', '/edge_ips/ips/0']]);
    assert.deepEqual(problems({ ...base, edge_ips: { type: 'dynamic', ips: ['198.51.100.10'] } }), [['E_CONFIG_SCHEMA', '/edge_ips/ips']]);
  });
  void it('rejects a missing or malformed dns', () => {
    assert.deepEqual(problems({ ...base, dns: undefined }), [['E_CONFIG_SCHEMA', '/dns']]);
    assert.deepEqual(problems({ ...base, dns: {} }), [['E_CONFIG_SCHEMA', '/dns/name']]);
    assert.deepEqual(problems({ ...base, dns: { name: 'a.example.com', type: 'A' } }), [['E_CONFIG_SCHEMA', '/dns/type']]);
  });
  void it('rejects ids that are not URL-path safe', () => {
    assert.deepEqual(problems({ ...base, id: 'a/b' }), [['E_CONFIG_SCHEMA', '/id']]);
    assert.deepEqual(problems({ ...base, id: '' }), [['E_CONFIG_SCHEMA', '/id']]);
  });
  void it('rejects a non-object app at its prefix', () => {
    assert.deepEqual(problems([base], '/apps/1'), [['E_CONFIG_SCHEMA', '/apps/1']]);
    assert.deepEqual(problems(null), [['E_CONFIG_SCHEMA', '']]);
  });
  void it('collects every problem of one app at once', () => {
    const p = problems({ protocol: 'udp/0', dns: { name: 'x.example.com' }, origin_direct: ['tcp://1.2.3.4:5', 'tcp://h:1'], tls: 'full', traffic_type: 'http' });
    assert.deepEqual(p, [
      ['E_CONFIG_PORT_ZERO', '/protocol'],
      ['E_CONFIG_UNSUPPORTED', '/traffic_type'],
      ['E_ORIGIN_ADDRESS_INVALID', '/origin_direct/1'],
    ]);
  });
  void it('escapes ~ and / in pointers', () => {
    const r = validateApp({ ...base, origin_direct: ['tcp://1.2.3.4:5'], protocol: 'x' }, '/a~b/c/d');
    assert.ok(!r.ok);
    assert.equal(r.issues[0]?.pointer, '/a~b/c/d/protocol');
  });
  void it('carries Cloudflare error numbers where Spectrum has them', () => {
    const r = validateApp({ protocol: 'tcp/22', dns: { name: 'a.example.com' } });
    assert.ok(!r.ok);
    assert.equal(r.issues[0]?.cfCode, 11000);
  });
});

void describe('rules across apps', () => {
  const app = (raw: object): AppSpec => ok({ ...base, ...raw });
  void it('reports duplicate ids', () => {
    const apps = [app({ id: 'same', protocol: 'tcp/1' }), app({ id: 'same', protocol: 'tcp/2' })];
    assert.deepEqual(crossAppIssues(apps, ['/apps/0', '/apps/1']).map((i) => [i.code, i.pointer]), [['E_CONFIG_DUPLICATE_ID', '/apps/1/id']]);
  });
  void it('leaves edge ports to the bind check (src/model/edge-conflicts.ts): overlapping apps are no issue here', () => {
    const apps = [app({ protocol: 'tcp/100-200' }), app({ protocol: 'tcp/200-300' })];
    assert.deepEqual(crossAppIssues(apps, ['/apps/0', '/apps/1']), []);
  });
});
