import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type CertInfo, type TlsClientParams, type TlsIdentity, type TlsServerParams } from '../../../src/net/ports.ts';
import {
  EDGE_CIPHERS,
  EDGE_CIPHERS_DROPPED,
  ORIGIN_CIPHERS,
  SPECTRUM_EDGE_CIPHER_NAMES,
  cipherFromSpectrumName,
  cipherUsable,
  originClientCiphers,
  spectrumCipherName,
} from '../../../src/core/tls-ciphers.ts';
import { certCoversName, clientVerify, effectiveVersions, helloOf, nameMatches, predict, serverDecide } from '../../../src/core/tls-model.ts';
import { failureOfCode, openSslCipherOptions } from '../../../src/net/node/openssl.ts';

const NOW = Date.UTC(2025, 0, 15);
const DAY = 86_400_000;

function cert(id: string, over: Partial<CertInfo> = {}): CertInfo {
  return { id, names: ['a.test'], notBeforeMs: NOW - 10 * DAY, notAfterMs: NOW + 10 * DAY, issuer: 'CA', keyType: 'rsa', fingerprint256: `FP:${id}`, ...over };
}
const CA = cert('CA', { names: [], issuer: 'CA' });
const trust = { system: false, cas: [CA] };

type Server = Omit<TlsServerParams, 'handshakeTimeoutMs'>;
function server(over: Partial<Server> = {}, id: TlsIdentity = { cert: cert('leaf'), chain: [] }): Server {
  return { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, identity: () => id, ...over };
}
function client(over: Partial<TlsClientParams> = {}): TlsClientParams {
  return { servername: 'a.test', minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ...originClientCiphers('TLSv1.1', 'TLSv1.3'), verify: { trust, checkName: 'a.test' }, handshakeTimeoutMs: 10_000, ...over };
}

function reasonOf(p: ReturnType<typeof predict>): string {
  return p.ok ? `ok ${p.info.protocol} ${p.info.cipher}` : `${p.side} ${p.failure.status} ${p.failure.reason}`;
}

void describe('cipher tables', () => {
  void it('the edge list keeps the doc order, maps the CDHE typo and the AEAD names, and drops only 3DES', () => {
    assert.deepEqual(EDGE_CIPHERS.ciphersuites, ['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384']);
    assert.equal(EDGE_CIPHERS.ciphers.length, SPECTRUM_EDGE_CIPHER_NAMES.length - 3 - EDGE_CIPHERS_DROPPED.length);
    assert.equal(EDGE_CIPHERS.ciphers[0], 'ECDHE-RSA-CHACHA20-POLY1305');
    assert.equal(EDGE_CIPHERS.ciphers[8], 'ECDHE-ECDSA-AES128-SHA256');
    assert.ok(SPECTRUM_EDGE_CIPHER_NAMES.includes('CDHE-ECDSA-AES128-SHA256'));
    assert.deepEqual(EDGE_CIPHERS_DROPPED.map((d) => d.name), ['ECDHE-RSA-DES-CBC3-SHA', 'DES-CBC3-SHA']);
    assert.ok(!EDGE_CIPHERS.ciphers.some((c) => c.includes('DES')));
  });

  void it('the origin table gives each version its suites in ClientHello order', () => {
    assert.deepEqual(ORIGIN_CIPHERS['TLSv1.3'], { ciphers: [], ciphersuites: ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] });
    assert.deepEqual(ORIGIN_CIPHERS['TLSv1.1'].ciphers, ['ECDHE-RSA-AES128-SHA', 'AES128-SHA', 'AES256-SHA']);
    assert.deepEqual(ORIGIN_CIPHERS['TLSv1.2'].ciphers, ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA', 'AES128-GCM-SHA256', 'AES128-SHA', 'AES256-SHA']);
  });

  void it('a ClientHello spanning versions offers the union in table order', () => {
    assert.deepEqual(originClientCiphers('TLSv1.1', 'TLSv1.3'), { ciphersuites: ORIGIN_CIPHERS['TLSv1.3'].ciphersuites, ciphers: ORIGIN_CIPHERS['TLSv1.2'].ciphers });
    assert.deepEqual(originClientCiphers('TLSv1.1', 'TLSv1.1'), ORIGIN_CIPHERS['TLSv1.1']);
    assert.throws(() => originClientCiphers('TLSv1.3', 'TLSv1.2'));
  });

  void it('Spectrum log names are BoringSSL names for 1.3 suites and OpenSSL names otherwise, both ways', () => {
    assert.equal(spectrumCipherName('TLS_AES_128_GCM_SHA256'), 'AEAD-AES128-GCM-SHA256');
    assert.equal(spectrumCipherName('ECDHE-RSA-AES128-SHA'), 'ECDHE-RSA-AES128-SHA');
    assert.equal(cipherFromSpectrumName('AEAD-CHACHA20-POLY1305-SHA256'), 'TLS_CHACHA20_POLY1305_SHA256');
    assert.equal(cipherFromSpectrumName('CDHE-ECDSA-AES128-SHA256'), 'ECDHE-ECDSA-AES128-SHA256');
  });

  void it('a suite needs its key type and its versions', () => {
    assert.equal(cipherUsable('ECDHE-ECDSA-AES128-SHA', 'TLSv1.1', 'ecdsa'), true);
    assert.equal(cipherUsable('ECDHE-ECDSA-AES128-SHA', 'TLSv1.1', 'rsa'), false);
    assert.equal(cipherUsable('AES128-SHA', 'TLSv1.2', 'ecdsa'), false);
    assert.equal(cipherUsable('AES128-SHA256', 'TLSv1.1', 'rsa'), false);
    assert.equal(cipherUsable('ECDHE-RSA-CHACHA20-POLY1305', 'TLSv1.3', 'rsa'), false);
    assert.equal(cipherUsable('TLS_AES_128_GCM_SHA256', 'TLSv1.3', 'ecdsa'), true);
    assert.equal(cipherUsable('TLS_AES_128_GCM_SHA256', 'TLSv1.2', 'rsa'), false);
    assert.throws(() => cipherUsable('RC4-MD5', 'TLSv1.2', 'rsa'));
  });

  void it('node options lower the security level only with TLS 1.1 in range and switch 1.3 off without 1.3 suites', () => {
    assert.equal(openSslCipherOptions({ ...ORIGIN_CIPHERS['TLSv1.1'], minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3' }).ciphers, 'ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA:@SECLEVEL=0');
    assert.equal(openSslCipherOptions({ ...ORIGIN_CIPHERS['TLSv1.1'], minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3' }).maxVersion, 'TLSv1.2');
    assert.equal(openSslCipherOptions({ ...ORIGIN_CIPHERS['TLSv1.3'], minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3' }).ciphers, 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256');
    assert.ok(!openSslCipherOptions({ ...EDGE_CIPHERS, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' }).ciphers.includes('SECLEVEL'));
    assert.throws(() => openSslCipherOptions({ ciphers: [], ciphersuites: [], minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' }));
  });
});

void describe('TLS model: negotiation', () => {
  void it('the highest common version wins and the server picks its own first shared suite', () => {
    const p = predict(client(), server(), NOW);
    assert.equal(reasonOf(p), 'ok TLSv1.3 TLS_CHACHA20_POLY1305_SHA256');
    assert.ok(p.ok && p.info.peerCert?.id === 'leaf' && p.info.servername === 'a.test');
  });

  void it('an ECDSA certificate skips the RSA suites the server prefers', () => {
    const ecdsa = { cert: cert('leaf', { keyType: 'ecdsa' }), chain: [] };
    assert.equal(reasonOf(predict(client({ maxVersion: 'TLSv1.2' }), server({}, ecdsa), NOW)), 'ok TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256');
    assert.equal(reasonOf(predict(client({ maxVersion: 'TLSv1.2' }), server({}), NOW)), 'ok TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
  });

  void it('TLS 1.1 gets only the SHA-1 suites', () => {
    assert.equal(reasonOf(predict(client({ maxVersion: 'TLSv1.1' }), server(), NOW)), 'ok TLSv1.1 ECDHE-RSA-AES128-SHA');
  });

  void it('no shared suite at the chosen version fails without falling back to a lower version', () => {
    const p = predict(client({ ciphersuites: ['TLS_AES_256_GCM_SHA384'] }), server({ ciphersuites: ['TLS_AES_128_GCM_SHA256'] }), NOW);
    assert.equal(reasonOf(p), 'server HANDSHAKE_FAILED no_shared_cipher');
  });

  void it('an RSA-only offer to an ECDSA certificate finds no shared suite', () => {
    const ecdsa = { cert: cert('leaf', { keyType: 'ecdsa' }), chain: [] };
    assert.equal(reasonOf(predict(client({ maxVersion: 'TLSv1.2', ...ORIGIN_CIPHERS['TLSv1.1'] }), server({}, ecdsa), NOW)), 'server HANDSHAKE_FAILED no_shared_cipher');
  });

  void it('disjoint version ranges fail on the server for a 1.3-capable client', () => {
    assert.equal(reasonOf(predict(client({ minVersion: 'TLSv1.3' }), server({ maxVersion: 'TLSv1.2' }), NOW)), 'server HANDSHAKE_FAILED no_shared_version');
  });

  void it('a legacy client refuses a version below its minimum that the server chose', () => {
    const p = predict(client({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), server({ maxVersion: 'TLSv1.1' }), NOW);
    assert.equal(reasonOf(p), 'client HANDSHAKE_FAILED no_shared_version');
    const hello = helloOf(client({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }));
    const d = serverDecide(hello, server({ maxVersion: 'TLSv1.1' }));
    assert.equal(d.ok && d.version, 'TLSv1.1');
  });

  void it('an SNI no certificate covers is refused with INVALID_SNI', () => {
    const p = predict(client({ servername: 'nope.test' }), server({ identity: (sni) => (sni === 'nope.test' ? undefined : { cert: cert('leaf'), chain: [] }) }), NOW);
    assert.equal(reasonOf(p), 'server INVALID_SNI unknown_sni');
  });

  void it('at 1.3 a missing shared suite is reported before an unknown SNI, at 1.2 after it', () => {
    const noId = server({ identity: () => undefined, ciphersuites: ['TLS_AES_128_GCM_SHA256'], ciphers: ['AES128-SHA'] });
    assert.equal(reasonOf(predict(client({ ciphersuites: ['TLS_AES_256_GCM_SHA384'] }), noId, NOW)), 'server HANDSHAKE_FAILED no_shared_cipher');
    assert.equal(reasonOf(predict(client({ maxVersion: 'TLSv1.2', ciphers: ['AES256-SHA'] }), noId, NOW)), 'server INVALID_SNI unknown_sni');
  });

  void it('a side with no suite at its own highest version fails on its own configuration', () => {
    assert.equal(reasonOf(predict(client({ maxVersion: 'TLSv1.1', ciphers: ['AES128-SHA256'] }), server(), NOW)), 'client INVALID_CONFIG no_shared_cipher');
    assert.equal(reasonOf(predict(client(), server({ maxVersion: 'TLSv1.1', ciphers: ['AES128-GCM-SHA256'] }), NOW)), 'server INVALID_CONFIG no_shared_cipher');
    assert.equal(reasonOf(predict(client({ minVersion: 'TLSv1.3', ciphersuites: [] }), server(), NOW)), 'client INVALID_CONFIG no_shared_version');
  });

  void it('no 1.3 suites caps a side at 1.2 and no 1.2 suites lifts it to 1.3', () => {
    assert.deepEqual(effectiveVersions({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ciphers: ['AES128-SHA'], ciphersuites: [] }), { min: 'TLSv1.1', max: 'TLSv1.2' });
    assert.deepEqual(effectiveVersions({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ciphers: [], ciphersuites: ['TLS_AES_128_GCM_SHA256'] }), { min: 'TLSv1.3', max: 'TLSv1.3' });
    assert.equal(reasonOf(predict(client({ ciphersuites: [] }), server(), NOW)), 'ok TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
  });

  void it('a client that does not verify accepts any certificate', () => {
    const p = predict(client({ verify: undefined, servername: undefined }), server({}, { cert: cert('self', { issuer: 'self', notAfterMs: NOW - DAY }), chain: [] }), NOW);
    assert.ok(p.ok && p.info.servername === '');
  });
});

void describe('TLS model: certificate checks', () => {
  const verify = (name = 'a.test') => ({ trust, checkName: name });
  const check = (leaf: CertInfo, chain: CertInfo[] = [], name = 'a.test') => clientVerify(leaf, chain, verify(name), NOW)?.reason ?? 'ok';

  void it('a valid certificate from a trusted CA is accepted', () => {
    assert.equal(check(cert('leaf')), 'ok');
  });

  void it('each single problem gives its reason', () => {
    assert.equal(check(cert('leaf', { notAfterMs: NOW - DAY })), 'cert_expired');
    assert.equal(check(cert('leaf', { notBeforeMs: NOW + DAY })), 'cert_not_yet_valid');
    assert.equal(check(cert('leaf', { issuer: 'leaf' })), 'cert_self_signed');
    assert.equal(check(cert('leaf', { issuer: 'OTHER' })), 'cert_unknown_ca');
    assert.equal(check(cert('leaf', { names: ['b.test'] })), 'cert_wrong_name');
  });

  void it('a date problem overrides a trust problem and the name is checked last', () => {
    assert.equal(check(cert('leaf', { issuer: 'leaf', notAfterMs: NOW - DAY })), 'cert_expired');
    assert.equal(check(cert('leaf', { issuer: 'OTHER', notBeforeMs: NOW + DAY })), 'cert_not_yet_valid');
    assert.equal(check(cert('leaf', { names: ['b.test'], notAfterMs: NOW - DAY })), 'cert_expired');
    assert.equal(check(cert('leaf', { issuer: 'leaf', names: ['b.test'] })), 'cert_self_signed');
  });

  void it('a self-signed certificate among the trusted CAs is accepted', () => {
    const self = cert('self', { issuer: 'self' });
    assert.equal(clientVerify(self, [], { trust: { system: false, cas: [self] }, checkName: 'a.test' }, NOW), undefined);
  });

  void it('a chain through an intermediate verifies, and an expired intermediate fails it', () => {
    const inter = cert('INT', { names: [] });
    assert.equal(check(cert('leaf', { issuer: 'INT' }), [inter]), 'ok');
    assert.equal(check(cert('leaf', { issuer: 'INT' })), 'cert_unknown_ca');
    assert.equal(check(cert('leaf', { issuer: 'INT' }), [cert('INT', { names: [], notAfterMs: NOW - DAY })]), 'cert_expired');
  });

  void it('names match as Node does: one-label wildcards, IPs only against IP entries', () => {
    const names = ['a.test', '*.w.test', '127.0.0.1', '2001:db8::1'];
    assert.equal(nameMatches(names, 'A.TEST.'), true);
    assert.equal(nameMatches(names, 'x.w.test'), true);
    assert.equal(nameMatches(names, 'y.x.w.test'), false);
    assert.equal(nameMatches(names, 'w.test'), false);
    assert.equal(nameMatches(names, '127.0.0.1'), true);
    assert.equal(nameMatches(names, '2001:0db8:0:0::1'), true);
    assert.equal(nameMatches(['a.test'], '127.0.0.1'), false);
    assert.equal(nameMatches(['*.test'], 'a.test'), false);
    assert.equal(nameMatches(['b*z.test.x'], 'buzz.test.x'), true);
    assert.equal(certCoversName(cert('leaf', { names }), 'x.w.test'), true);
  });
});

void describe('TLS model: node error codes', () => {
  void it('maps what node:tls reports to the reasons the model predicts', () => {
    assert.deepEqual(failureOfCode('ERR_SSL_NO_SHARED_CIPHER'), { reason: 'no_shared_cipher', status: 'HANDSHAKE_FAILED' });
    assert.deepEqual(failureOfCode('ERR_SSL_NO_CIPHERS_AVAILABLE'), { reason: 'no_shared_cipher', status: 'INVALID_CONFIG' });
    assert.equal(failureOfCode('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION').reason, 'no_shared_version');
    assert.equal(failureOfCode('DEPTH_ZERO_SELF_SIGNED_CERT').reason, 'cert_self_signed');
    assert.equal(failureOfCode('UNABLE_TO_VERIFY_LEAF_SIGNATURE').reason, 'cert_unknown_ca');
    assert.equal(failureOfCode('ERR_TLS_CERT_ALTNAME_INVALID').reason, 'cert_wrong_name');
    assert.deepEqual(failureOfCode(undefined), { reason: 'internal', status: 'INTERNAL_ERROR' });
  });
});
