import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateApp } from '../../../src/model/app.ts';
import { validateConfig } from '../../../src/model/config.ts';
import { type AppSpec } from '../../../src/model/types.ts';

const base = { protocol: 'tcp/443', dns: { type: 'CNAME', name: 'tls.example.com' }, origin_direct: ['tcp://192.0.2.1:443'] };

function ok(raw: unknown): AppSpec {
  const r = validateApp(raw, '');
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  return r.app;
}
function problems(raw: unknown): string[][] {
  const r = validateApp(raw, '');
  assert.ok(!r.ok, 'expected validation to fail');
  return r.issues.map((i) => [i.code, i.pointer]).sort();
}

void describe('TLS fields of the app object', () => {
  void it('leaves edge_tls absent and the TLVs off by default', () => {
    const app = ok({ ...base, tls: 'flexible' });
    assert.equal(app.edgeTls, undefined);
    assert.equal(app.proxyProtocolTlvs, false);
  });

  void it('reads certificate files and the origin server name, and echoes them in the normalised object', () => {
    const app = ok({ ...base, tls: 'strict', edge_tls: { cert: 'a.pem', key: 'a-key.pem', origin_server_name: 'Origin.Example.com.' } });
    assert.deepEqual(app.edgeTls, { certFile: 'a.pem', keyFile: 'a-key.pem', originServerName: 'origin.example.com' });
    assert.deepEqual(app.spec['edge_tls'], { cert: 'a.pem', key: 'a-key.pem', origin_server_name: 'origin.example.com' });
  });

  void it('refuses edge_tls on an app with tls off', () => {
    assert.deepEqual(problems({ ...base, edge_tls: { cert: 'a.pem', key: 'b.pem' } }), [['E_CONFIG_SCHEMA', '/edge_tls']]);
  });

  void it('refuses a certificate without its key, and a key without its certificate', () => {
    assert.deepEqual(problems({ ...base, tls: 'flexible', edge_tls: { cert: 'a.pem' } }), [['E_CONFIG_SCHEMA', '/edge_tls/key']]);
    assert.deepEqual(problems({ ...base, tls: 'flexible', edge_tls: { key: 'a.pem' } }), [['E_CONFIG_SCHEMA', '/edge_tls/cert']]);
  });

  void it('refuses origin_server_name when no TLS goes to the origin (flexible)', () => {
    assert.deepEqual(problems({ ...base, tls: 'flexible', edge_tls: { origin_server_name: 'o.example.com' } }), [
      ['E_CONFIG_SCHEMA', '/edge_tls/origin_server_name'],
    ]);
  });

  void it('refuses unknown keys in edge_tls (a typo is not ignored)', () => {
    assert.deepEqual(problems({ ...base, tls: 'full', edge_tls: { certificate: 'a.pem' } }), [['E_CONFIG_SCHEMA', '/edge_tls/certificate']]);
  });

  void it('takes proxy_protocol_tlvs only with proxy_protocol v2', () => {
    assert.equal(ok({ ...base, tls: 'flexible', proxy_protocol: 'v2', proxy_protocol_tlvs: true }).proxyProtocolTlvs, true);
    assert.deepEqual(problems({ ...base, tls: 'flexible', proxy_protocol: 'v1', proxy_protocol_tlvs: true }), [
      ['E_CONFIG_PROXY_PROTOCOL', '/proxy_protocol_tlvs'],
    ]);
  });
});

void describe('edge.tls in the node config', () => {
  void it('reads every setting', () => {
    const r = validateConfig({ edge: { tls: { data_dir: '/var/lib/refract', ca_bundle: 'ca.pem', handshake_timeout_ms: 2500, strict_sni: false } } });
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
    assert.deepEqual(r.config.node.tls, { dataDir: '/var/lib/refract', caBundle: 'ca.pem', handshakeTimeoutMs: 2500, strictSni: false });
  });

  void it('refuses unknown keys and out-of-range values with their pointers', () => {
    const r = validateConfig({ edge: { tls: { handshake_timeout_ms: 0, sni: true } } });
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map((i) => [i.code, i.pointer]).sort(), [
      ['E_CONFIG_SCHEMA', '/edge/tls/handshake_timeout_ms'],
      ['E_CONFIG_SCHEMA', '/edge/tls/sni'],
    ]);
  });
});
