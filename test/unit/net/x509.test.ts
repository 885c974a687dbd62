/**
 * X.509 helpers: certificates issueCert makes are accepted by OpenSSL (node:tls on loopback, port 0) for chain
 * and hostname checks, and describeCert reports what the certificate says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { issueCert, describeCert, describeCertPem, splitPemCerts, certOf } from '../../../src/net/node/x509.ts';
import { isRefractError } from '../../../src/model/errors.ts';
import { handshake } from './tls-loopback.ts';

const DAY = 86_400_000;

describe('issueCert', () => {
  it('a leaf issued by a CA verifies against that CA with node:tls, by DNS name and by IP', async () => {
    for (const keyType of ['rsa', 'ecdsa'] as const) {
      const ca = await issueCert({ names: [], isCa: true, commonName: 'Test CA', keyType });
      const leaf = await issueCert({ names: ['a.test', '127.0.0.1'], issuer: ca, keyType });
      const byName = await handshake(leaf, { ca: ca.cert, servername: 'a.test' });
      assert.equal(byName.ok, true, `${keyType} by name: ${JSON.stringify(byName)}`);
      const byIp = await handshake(leaf, { ca: ca.cert });
      assert.equal(byIp.ok, true, `${keyType} by IP: ${JSON.stringify(byIp)}`);
    }
  });

  it('OpenSSL refuses a wrong name, an unknown CA, an expired leaf and a self-signed leaf', async () => {
    const ca = await issueCert({ names: [], isCa: true, commonName: 'Test CA' });
    const other = await issueCert({ names: [], isCa: true, commonName: 'Other CA' });
    const leaf = await issueCert({ names: ['a.test'], issuer: ca });
    const expired = await issueCert({ names: ['a.test'], issuer: ca, notBeforeMs: Date.now() - 10 * DAY, notAfterMs: Date.now() - DAY });
    const self = await issueCert({ names: ['a.test'] });
    assert.deepEqual(await handshake(leaf, { ca: ca.cert, servername: 'b.test' }), { ok: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    assert.deepEqual(await handshake(leaf, { ca: other.cert, servername: 'a.test' }), { ok: false, code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    assert.deepEqual(await handshake(expired, { ca: ca.cert, servername: 'a.test' }), { ok: false, code: 'CERT_HAS_EXPIRED' });
    assert.deepEqual(await handshake(self, { ca: ca.cert, servername: 'a.test' }), { ok: false, code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  it('an intermediate CA chain verifies when the server sends leaf + intermediate', async () => {
    const root = await issueCert({ names: [], isCa: true, commonName: 'Root', keyType: 'rsa' });
    const inter = await issueCert({ names: [], isCa: true, commonName: 'Intermediate', issuer: root });
    const leaf = await issueCert({ names: ['*.w.test'], issuer: inter });
    const r = await handshake({ cert: leaf.cert + inter.cert, key: leaf.key }, { ca: root.cert, servername: 'x.w.test' });
    assert.equal(r.ok, true, JSON.stringify(r));
  });

  it('sets CA and leaf extensions, validity and a positive random serial', async () => {
    const nb = Date.UTC(2030, 0, 1);
    const na = Date.UTC(2031, 0, 1);
    const ca = await issueCert({ names: [], isCa: true, commonName: 'CA', notBeforeMs: nb, notAfterMs: na });
    const a = new X509Certificate(ca.cert);
    assert.equal(a.ca, true);
    assert.equal(Date.parse(a.validFrom), nb);
    assert.equal(Date.parse(a.validTo), na);
    const l1 = new X509Certificate((await issueCert({ names: ['a.test'], issuer: ca })).cert);
    const l2 = new X509Certificate((await issueCert({ names: ['a.test'], issuer: ca })).cert);
    assert.equal(l1.ca, false);
    assert.deepEqual(l1.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.notEqual(l1.serialNumber, l2.serialNumber);
    assert.ok(Number.parseInt(l1.serialNumber.slice(0, 2), 16) < 0x80);
    assert.equal(l1.subject, 'CN=a.test');
  });
});

describe('describeCert', () => {
  it('reports id, fingerprint, names, validity, key type and issuer as the certificate says', async () => {
    const nb = Date.UTC(2030, 0, 1);
    const na = Date.UTC(2030, 6, 1);
    const ca = await issueCert({ names: [], isCa: true, commonName: 'Test CA', keyType: 'rsa' });
    const leaf = await issueCert({ names: ['A.test', '127.0.0.1', '2001:db8:0:0::1'], issuer: ca, notBeforeMs: nb, notAfterMs: na });
    const caInfo = describeCert(ca.cert);
    const info = describeCert(leaf.cert, [caInfo]);
    const x = new X509Certificate(leaf.cert);
    assert.equal(info.fingerprint256, x.fingerprint256);
    assert.match(info.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(info.id, x.fingerprint256.replaceAll(':', ''));
    assert.deepEqual(info.names, ['a.test', '127.0.0.1', '2001:db8::1']);
    assert.equal(info.notBeforeMs, nb);
    assert.equal(info.notAfterMs, na);
    assert.equal(info.keyType, 'ecdsa');
    assert.equal(info.issuer, caInfo.id);
    assert.equal(caInfo.issuer, caInfo.id, 'a self-signed CA is its own issuer');
    assert.equal(caInfo.keyType, 'rsa');
    assert.deepEqual(caInfo.names, ['test ca'], 'CN stands in for names only when there is no SAN');
    assert.equal(certOf(info)?.fingerprint256, x.fingerprint256);
  });

  it('names an issuer it cannot verify unknown:<issuer DN>, also when a same-named CA did not sign it', async () => {
    const ca = await issueCert({ names: [], isCa: true, commonName: 'Test CA' });
    const impostor = await issueCert({ names: [], isCa: true, commonName: 'Test CA' });
    const leaf = await issueCert({ names: ['a.test'], issuer: ca });
    assert.equal(describeCert(leaf.cert).issuer, 'unknown:CN=Test CA');
    assert.equal(describeCert(leaf.cert, [describeCert(impostor.cert)]).issuer, 'unknown:CN=Test CA');
    assert.equal(describeCert(leaf.cert, [impostor.cert, ca.cert]).issuer, describeCert(ca.cert).id, 'PEM candidates work too');
  });

  it('describeCertPem resolves issuers inside a bundle, in order', async () => {
    const root = await issueCert({ names: [], isCa: true, commonName: 'Root' });
    const inter = await issueCert({ names: [], isCa: true, commonName: 'Inter', issuer: root });
    const leaf = await issueCert({ names: ['a.test'], issuer: inter });
    const [l, i, r] = describeCertPem(leaf.cert + inter.cert + root.cert);
    assert.ok(l && i && r);
    assert.equal(l.issuer, i.id);
    assert.equal(i.issuer, r.id);
    assert.equal(r.issuer, r.id);
    assert.equal(splitPemCerts(leaf.cert + leaf.key + inter.cert).length, 2);
  });

  it('rejects text that is not a certificate with E_TLS_CERT_INVALID', () => {
    for (const bad of ['', 'hello', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n']) {
      assert.throws(() => describeCert(bad), (e) => isRefractError(e) && e.code === 'E_TLS_CERT_INVALID');
    }
    assert.throws(() => describeCertPem('no pem here'), (e) => isRefractError(e) && e.code === 'E_TLS_CERT_INVALID');
  });
});

void describe('describeCert of a self-signed leaf', () => {
  void it('names the certificate as its own issuer, as OpenSSL reports DEPTH_ZERO_SELF_SIGNED_CERT', async () => {
    const leaf = await issueCert({ names: ['self.example.test'] });
    const info = describeCert(leaf.cert);
    assert.equal(info.issuer, info.id);
  });
});
