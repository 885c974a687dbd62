/**
 * The local CA: created once in a data directory, persisted and reused, issuing cached per-app leaves that real
 * TLS clients (node:tls on loopback) accept when they trust the root. Each test uses a fresh temp directory.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CA_CERT_FILE, CA_KEY_FILE, defaultDataDir, openLocalCa } from '../../../src/net/node/local-ca.ts';
import { issueCert } from '../../../src/net/node/x509.ts';
import { isRefractError } from '../../../src/model/errors.ts';
import { handshake } from './tls-loopback.ts';

const DAY = 86_400_000;

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-ca-'));
  return fn(join(dir, 'data')).finally(() => rmSync(dir, { recursive: true, force: true }));
}

const isCode = (code: string) => (e: unknown) => isRefractError(e) && e.code === code;

describe('local CA', () => {
  it('is created once with a private key file of mode 0600, then loaded unchanged', () =>
    withDir(async (dir) => {
      const first = await openLocalCa({ dataDir: dir });
      assert.equal(first.created, true);
      assert.equal(statSync(join(dir, CA_KEY_FILE)).mode & 0o777, 0o600);
      assert.equal(readFileSync(join(dir, CA_CERT_FILE), 'utf8'), first.certPem);
      assert.equal(first.info.issuer, first.info.id, 'the root is self-signed');
      const again = await openLocalCa({ dataDir: dir });
      assert.equal(again.created, false);
      assert.equal(again.info.id, first.info.id);
      assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp files left behind');
    }));

  it('two openings racing on an empty directory end with one CA', () =>
    withDir(async (dir) => {
      const [a, b, c] = await Promise.all([openLocalCa({ dataDir: dir }), openLocalCa({ dataDir: dir }), openLocalCa({ dataDir: dir })]);
      assert.equal(a.info.id, b.info.id);
      assert.equal(b.info.id, c.info.id);
      assert.equal([a, b, c].filter((x) => x.created).length, 1);
      const leaf = await b.leafFor('app1', ['a.test']);
      assert.equal(leaf.info.issuer, a.info.id);
    }));

  it('issues a leaf that node:tls accepts for its DNS name and IP when the root is trusted', () =>
    withDir(async (dir) => {
      const ca = await openLocalCa({ dataDir: dir });
      const leaf = await ca.leafFor('app1', ['edge.a.test', '127.0.0.1']);
      assert.deepEqual(leaf.info.names, ['edge.a.test', '127.0.0.1']);
      assert.equal(leaf.info.issuer, ca.info.id);
      assert.equal(leaf.info.keyType, 'rsa');
      assert.equal((await handshake(leaf, { ca: ca.certPem, servername: 'edge.a.test' })).ok, true);
      assert.equal((await handshake(leaf, { ca: ca.certPem })).ok, true);
      assert.deepEqual(await handshake(leaf, { ca: ca.certPem, servername: 'other.test' }), { ok: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      assert.equal(statSync(leaf.file).mode & 0o777, 0o600);
    }));

  it('reuses a cached leaf, and re-issues it when names change, near expiry, or the cache is corrupt', () =>
    withDir(async (dir) => {
      let now = Date.now();
      const ca = await openLocalCa({ dataDir: dir, now: () => now, leafKeyType: 'ecdsa' });
      const a = await ca.leafFor('app1', ['a.test', 'b.test']);
      assert.equal(a.reused, false);
      const same = await (await openLocalCa({ dataDir: dir, now: () => now })).leafFor('app1', ['a.test', 'b.test']);
      assert.equal(same.reused, true, 'reused across restarts');
      assert.equal(same.info.id, a.info.id);
      const renamed = await ca.leafFor('app1', ['a.test', 'c.test']);
      assert.equal(renamed.reused, false);
      assert.notEqual(renamed.info.id, a.info.id);
      now += 59 * DAY; // 31 days left of 90: still kept
      assert.equal((await ca.leafFor('app1', ['a.test', 'c.test'])).info.id, renamed.info.id);
      now += 2 * DAY; // 29 days left: renewed
      const renewed = await ca.leafFor('app1', ['a.test', 'c.test']);
      assert.equal(renewed.reused, false);
      assert.ok(renewed.info.notAfterMs > renamed.info.notAfterMs);
      writeFileSync(renewed.file, 'garbage');
      const fresh = await ca.leafFor('app1', ['a.test', 'c.test']);
      assert.equal(fresh.reused, false);
    }));

  it('re-issues cached leaves when the CA was replaced', () =>
    withDir(async (dir) => {
      const leaf = await (await openLocalCa({ dataDir: dir })).leafFor('app1', ['a.test']);
      rmSync(join(dir, CA_CERT_FILE));
      rmSync(join(dir, CA_KEY_FILE));
      const ca2 = await openLocalCa({ dataDir: dir });
      assert.equal(ca2.created, true);
      const leaf2 = await ca2.leafFor('app1', ['a.test']);
      assert.equal(leaf2.reused, false);
      assert.equal(leaf2.info.issuer, ca2.info.id);
      assert.notEqual(leaf2.info.id, leaf.info.id);
    }));

  it('keeps app ids that are not safe file names inside certs/', () =>
    withDir(async (dir) => {
      const ca = await openLocalCa({ dataDir: dir });
      const leaf = await ca.leafFor('../../escape', ['a.test']);
      assert.equal(join(leaf.file, '..'), join(dir, 'certs'));
    }));

  it('refuses unusable CA files and directories with E_TLS_CA', () =>
    withDir(async (dir) => {
      await openLocalCa({ dataDir: dir });
      const caPem = readFileSync(join(dir, CA_CERT_FILE), 'utf8');
      writeFileSync(join(dir, CA_CERT_FILE), 'not a certificate');
      await assert.rejects(openLocalCa({ dataDir: dir }), isCode('E_TLS_CA'));
      // A key that is not the CA's.
      const other = await issueCert({ names: [], isCa: true, commonName: 'Other' });
      writeFileSync(join(dir, CA_CERT_FILE), caPem);
      writeFileSync(join(dir, CA_KEY_FILE), other.key, { mode: 0o600 });
      await assert.rejects(openLocalCa({ dataDir: dir }), isCode('E_TLS_CA'));
      // A leaf where the CA should be.
      const notCa = await issueCert({ names: ['a.test'] });
      writeFileSync(join(dir, CA_CERT_FILE), notCa.cert);
      writeFileSync(join(dir, CA_KEY_FILE), notCa.key, { mode: 0o600 });
      await assert.rejects(openLocalCa({ dataDir: dir }), (e) => isCode('E_TLS_CA')(e) && (e as { details: { reason: string } }).details.reason === 'not_a_ca');
      // An expired root.
      const old = await issueCert({ names: [], isCa: true, commonName: 'Old', notBeforeMs: Date.now() - 20 * DAY, notAfterMs: Date.now() - DAY });
      writeFileSync(join(dir, CA_CERT_FILE), old.cert);
      writeFileSync(join(dir, CA_KEY_FILE), old.key, { mode: 0o600 });
      await assert.rejects(openLocalCa({ dataDir: dir }), isCode('E_TLS_CA'));
      // A key left without its certificate by a crash long ago.
      rmSync(join(dir, CA_CERT_FILE));
      const past = new Date(Date.now() - DAY);
      utimesSync(join(dir, CA_KEY_FILE), past, past);
      await assert.rejects(openLocalCa({ dataDir: dir }), isCode('E_TLS_CA'));
      // The data directory path is a file.
      const file = join(dir, 'plain-file');
      writeFileSync(file, '');
      await assert.rejects(openLocalCa({ dataDir: file }), isCode('E_TLS_CA'));
    }));

  it('defaults the data directory to .refract beside the config file, else in the working directory', () => {
    assert.equal(defaultDataDir('/etc/refract/refract.yaml'), '/etc/refract/.refract');
    assert.equal(defaultDataDir('/etc/refract/refract.yaml', 'state'), '/etc/refract/state');
    assert.equal(defaultDataDir('/etc/refract/refract.yaml', '/var/lib/refract'), '/var/lib/refract');
    assert.equal(defaultDataDir(), join(process.cwd(), '.refract'));
  });
});
