/** The `dns:` config section and its warnings (src/model/config.ts), and how the view reads edge addresses. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../../src/model/config.ts';
import { appAddresses, dnsViewOf } from '../../../src/dns/view.ts';
import { configOf, fixtureRaw } from './fixture.ts';

const ZONES = [{ name: 'example.com' }];

function issues(raw: unknown): Array<[string, string]> {
  const r = validateConfig(raw);
  return r.ok ? [] : r.issues.map((i) => [i.pointer, i.code]);
}

describe('dns: config section', () => {
  it('defaults: loopback 127.0.0.1:5300, TTL 30 s; absent: no DNS server', () => {
    assert.deepEqual(configOf({ zones: ZONES, dns: {} }).dns, { listen: { host: '127.0.0.1', port: 5300 }, ttlSec: 30 });
    assert.deepEqual(configOf({ zones: ZONES, dns: null }).dns, undefined);
    assert.equal(configOf({}).dns, undefined);
    assert.deepEqual(configOf({ zones: ZONES, dns: { listen: '[::1]:53', ttl: 86_400 } }).dns, { listen: { host: '::1', port: 53 }, ttlSec: 86_400 });
    assert.deepEqual(configOf({ zones: ZONES, dns: { listen: '127.0.0.2' } }).dns?.listen, { host: '127.0.0.2', port: 5300 });
  });

  it('bad values get codes and pointers', () => {
    assert.deepEqual(issues({ zones: ZONES, dns: { listen: 'localhost:53' } }), [['/dns/listen', 'E_CONFIG_CIDR']]);
    assert.deepEqual(issues({ zones: ZONES, dns: { listen: '127.0.0.1:53-54' } }), [['/dns/listen', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(issues({ zones: ZONES, dns: { listen: '127.0.0.1:0' } }), [['/dns/listen', 'E_CONFIG_PORT_ZERO']]);
    assert.deepEqual(issues({ zones: ZONES, dns: { ttl: 0 } }), [['/dns/ttl', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(issues({ zones: ZONES, dns: { ttl: 86_401 } }), [['/dns/ttl', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(issues({ zones: ZONES, dns: { ttl: 1.5 } }), [['/dns/ttl', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(issues({ zones: ZONES, dns: { port: 53 } }), [['/dns/port', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(issues({ zones: ZONES, dns: 'on' }), [['/dns', 'E_CONFIG_SCHEMA']]);
  });

  it('dns needs at least one zone', () => {
    assert.deepEqual(issues({ dns: {} }), [['/zones', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(issues({ dns: {}, zones: [] }), [['/zones', 'E_CONFIG_SCHEMA']]);
  });

  it('warns about an app whose name lies in no zone, and a static IP the edge does not bind; not without dns:', () => {
    const r = validateConfig(fixtureRaw());
    assert.ok(r.ok);
    assert.deepEqual(
      r.warnings.map((w) => [w.pointer, w.code]),
      [
        ['/apps/4/edge_ips/ips/1', 'W_DNS_STATIC_IP_UNBOUND'],
        ['/apps/6/dns/name', 'W_DNS_NAME_OUTSIDE_ZONES'],
      ],
    );
    const none = validateConfig({ ...fixtureRaw(), dns: undefined });
    assert.ok(none.ok);
    assert.deepEqual(none.warnings, []);
  });
});

describe('dns view: addresses', () => {
  const app = (edgeIps: unknown) => configOf({ zones: ZONES, apps: [{ protocol: 'tcp/1', dns: { type: (edgeIps as { type?: string }).type === 'static' ? 'ADDRESS' : 'CNAME', name: 'a.example.com' }, edge_ips: edgeIps, origin_direct: ['tcp://127.0.0.1:2'] }] }).apps[0]!;

  it('wildcard edge addresses are nobody\'s address: a dynamic app answers the specific ones only', () => {
    assert.deepEqual(appAddresses(app({ type: 'dynamic' }), ['0.0.0.0', '127.0.0.1', '::', '::1']), { a: ['127.0.0.1'], aaaa: ['::1'] });
    assert.deepEqual(appAddresses(app({ type: 'dynamic' }), ['0.0.0.0', '::']), { a: [], aaaa: [] });
  });

  it('static ips are answered when bound or covered by a wildcard (0.0.0.0: IPv4; :: both families)', () => {
    const s = app({ type: 'static', ips: ['192.0.2.1', '2001:db8::1'] });
    assert.deepEqual(appAddresses(s, ['127.0.0.1']), { a: [], aaaa: [] });
    assert.deepEqual(appAddresses(s, ['0.0.0.0']), { a: ['192.0.2.1'], aaaa: [] });
    assert.deepEqual(appAddresses(s, ['::']), { a: ['192.0.2.1'], aaaa: ['2001:db8::1'] });
    assert.deepEqual(appAddresses(s, ['2001:db8::1']), { a: [], aaaa: ['2001:db8::1'] });
  });

  it('the NS glue is the listen address unless it is a wildcard', () => {
    assert.deepEqual(dnsViewOf(configOf({ zones: ZONES, dns: { listen: '::1' } })).lookup('ns.example.com'), { a: [], aaaa: ['::1'], cname: undefined });
    assert.deepEqual(dnsViewOf(configOf({ zones: ZONES, dns: { listen: '0.0.0.0' } })).lookup('ns.example.com'), undefined);
  });

  it('a CNAME target label: the app id lower-cased when it is a DNS label, else app- and a hash', () => {
    const v = dnsViewOf(
      configOf({
        zones: ZONES,
        apps: [
          { id: 'Web.1', protocol: 'tcp/1', dns: { name: 'w.example.com' }, origin_direct: ['tcp://127.0.0.1:2'] },
          { id: 'Game', protocol: 'tcp/2', dns: { name: 'g.example.com' }, origin_direct: ['tcp://127.0.0.1:2'] },
        ],
      }),
    );
    assert.match(v.lookup('w.example.com')?.cname ?? '', /^app-[0-9a-f]{24}\.spectrum\.example\.com$/);
    assert.equal(v.lookup('g.example.com')?.cname, 'game.spectrum.example.com');
  });

  it('zones nest: a name belongs to the longest zone it lies in', () => {
    const v = dnsViewOf(configOf({ zones: [{ name: 'example.com' }, { name: 'sub.example.com' }], apps: [{ id: 'x', protocol: 'tcp/1', dns: { name: 'x.sub.example.com' }, origin_direct: ['tcp://127.0.0.1:2'] }] }));
    assert.equal(v.lookup('x.sub.example.com')?.cname, 'x.spectrum.sub.example.com');
  });
});
