/** The management API's config keys: api, zones, node.data_dir (docs/configuration.md). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deriveZoneId, validateConfig } from '../../../src/model/config.ts';

const codes = (raw: unknown): Array<[string, string]> => {
  const r = validateConfig(raw);
  return r.ok ? [] : r.issues.map((i) => [i.pointer, i.code]);
};

describe('config: api, zones, node.data_dir', () => {
  it('defaults the API to loopback 8787 and derives zone ids from the name', () => {
    const r = validateConfig({ api: {}, zones: [{ name: 'Example.COM.' }, { id: '023e105f4ecef8ad9ca31a8372d0c353', name: 'b.example' }] });
    assert.ok(r.ok);
    assert.deepEqual(r.config.api, { listen: { host: '127.0.0.1', port: 8787 }, rateLimit: { requests: 1200, windowSec: 300 }, dashboard: true });
    const off = validateConfig({ api: { dashboard: false }, zones: [{ name: 'example.com' }] });
    assert.ok(off.ok);
    assert.equal(off.config.api?.dashboard, false);
    assert.deepEqual(codes({ api: { dashboard: 'yes' }, zones: [{ name: 'example.com' }] }), [['/api/dashboard', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(r.config.zones, [
      { id: deriveZoneId('example.com'), name: 'example.com' },
      { id: '023e105f4ecef8ad9ca31a8372d0c353', name: 'b.example' },
    ]);
    assert.match(deriveZoneId('example.com'), /^[0-9a-f]{32}$/);
    assert.equal(deriveZoneId('example.com'), deriveZoneId('example.com'));
  });

  it('reads api.listen as IP:PORT, [IPv6]:PORT or IP', () => {
    const r = validateConfig({ api: { listen: '[::1]:9000' }, zones: [{ name: 'a.example' }] });
    assert.ok(r.ok);
    assert.deepEqual(r.config.api?.listen, { host: '::1', port: 9000 });
  });

  it('node.data_dir is the default of edge.tls.data_dir', () => {
    const r = validateConfig({ node: { data_dir: '/var/lib/refract' } });
    assert.ok(r.ok);
    assert.equal(r.config.node.dataDir, '/var/lib/refract');
    assert.equal(r.config.node.tls.dataDir, '/var/lib/refract');
    const both = validateConfig({ node: { data_dir: 'state' }, edge: { tls: { data_dir: 'ca' } } });
    assert.ok(both.ok);
    assert.equal(both.config.node.tls.dataDir, 'ca');
  });

  it('rejects bad zones and an API without zones, with codes', () => {
    assert.deepEqual(codes({ api: {} }), [['/zones', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(codes({ zones: [{ id: 'xyz', name: 'a.example' }] }), [['/zones/0/id', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(codes({ zones: [{ name: 'bad name' }] }), [['/zones/0/name', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(codes({ zones: [{}] }), [['/zones/0/name', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(codes({ zones: [{ name: 'a.example' }, { name: 'A.example' }] }), [['/zones/1/name', 'E_CONFIG_DUPLICATE_ID']]);
    assert.deepEqual(codes({ zones: [{ name: 'a.example', zone: 1 }] }), [['/zones/0/zone', 'E_CONFIG_SCHEMA']]);
    assert.deepEqual(codes({ api: { listen: 'localhost:80' }, zones: [{ name: 'a.example' }] }), [['/api/listen', 'E_CONFIG_CIDR']]);
  });
});
