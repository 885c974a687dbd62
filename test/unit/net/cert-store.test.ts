/**
 * The real CertSource: identities from PEM files (checked: PEM, key match, chain) or from the local CA, trust
 * from a PEM bundle, and the files to watch. Temp directories per test; handshakes on loopback, port 0.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeCertSource } from '../../../src/net/node/cert-store.ts';
import { CA_CERT_FILE } from '../../../src/net/node/local-ca.ts';
import { describeCert, issueCert } from '../../../src/net/node/x509.ts';
import { isRefractError } from '../../../src/model/errors.ts';
import type { TlsIdentity } from '../../../src/net/ports.ts';
import { handshake } from './tls-loopback.ts';

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-certs-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** Asserts a RefractError with `code` whose details.file is `file`. */
const codeAndFile = (code: string, file: string) => (e: unknown) => {
  assert.ok(isRefractError(e), String(e));
  assert.equal(e.code, code);
  assert.equal(e.details?.['file'], file);
  return true;
};

function pemOf(id: TlsIdentity | undefined): { cert: string; key: string } {
  assert.ok(id?.pem, 'identity carries PEM');
  return { cert: id.pem.cert, key: id.pem.key };
}

describe('node CertSource: identities', () => {
  it('loads a certificate file with its chain and key, and a client trusting the root accepts it', () =>
    withDir(async (dir) => {
      const root = await issueCert({ names: [], isCa: true, commonName: 'Root' });
      const inter = await issueCert({ names: [], isCa: true, commonName: 'Inter', issuer: root });
      const leaf = await issueCert({ names: ['a.test'], issuer: inter, keyType: 'rsa' });
      writeFileSync(join(dir, 'a.pem'), `# edge cert\n${leaf.cert}${inter.cert}`);
      writeFileSync(join(dir, 'a-key.pem'), leaf.key, { mode: 0o600 });
      const src = createNodeCertSource({ dataDir: join(dir, 'data') });
      const ids = await src.identities([{ appId: 'a', names: ['a.test'], certFile: join(dir, 'a.pem'), keyFile: join(dir, 'a-key.pem') }]);
      const id = ids.get('a');
      assert.ok(id);
      assert.equal(id.cert.id, describeCert(leaf.cert).id);
      assert.deepEqual(id.cert.names, ['a.test']);
      assert.equal(id.cert.keyType, 'rsa');
      assert.deepEqual(id.chain.map((c) => c.id), [describeCert(inter.cert).id]);
      assert.equal(id.cert.issuer, id.chain[0]?.id, 'the leaf names the intermediate from its file as issuer');
      assert.equal(pemOf(id).cert, leaf.cert + inter.cert, 'only certificate blocks are kept');
      assert.equal((await handshake(pemOf(id), { ca: root.cert, servername: 'a.test' })).ok, true);
      assert.deepEqual([...src.watchedFiles()].sort(), [join(dir, 'a-key.pem'), join(dir, 'a.pem')]);
    }));

  it('issues from the local CA when no files are given, persisting the CA in the data directory', () =>
    withDir(async (dir) => {
      const dataDir = join(dir, 'data');
      const src = createNodeCertSource({ dataDir });
      const ids = await src.identities([
        { appId: 'one', names: ['one.test'] },
        { appId: 'two', names: ['two.test', '127.0.0.1'] },
      ]);
      const root = readFileSync(join(dataDir, CA_CERT_FILE), 'utf8');
      const rootId = describeCert(root).id;
      for (const [appId, name] of [['one', 'one.test'], ['two', 'two.test']] as const) {
        const id = ids.get(appId);
        assert.ok(id);
        assert.equal(id.cert.issuer, rootId);
        assert.deepEqual(id.chain, []);
        assert.equal((await handshake(pemOf(id), { ca: root, servername: name })).ok, true, appId);
      }
      // A second source (a restart) reuses both the CA and the cached leaf.
      const again = await createNodeCertSource({ dataDir }).identities([{ appId: 'two', names: ['two.test', '127.0.0.1'] }]);
      assert.equal(again.get('two')?.cert.id, ids.get('two')?.cert.id);
      assert.deepEqual(src.watchedFiles(), []);
    }));

  it('refuses a missing file with E_TLS_CERT_READ naming it', () =>
    withDir(async (dir) => {
      const leaf = await issueCert({ names: ['a.test'] });
      writeFileSync(join(dir, 'key.pem'), leaf.key, { mode: 0o600 });
      const src = createNodeCertSource({ dataDir: join(dir, 'data') });
      const missing = join(dir, 'nope.pem');
      await assert.rejects(src.identities([{ appId: 'a', names: ['a.test'], certFile: missing, keyFile: join(dir, 'key.pem') }]), codeAndFile('E_TLS_CERT_READ', missing));
      assert.ok(src.watchedFiles().includes(missing), 'a file that failed is still watched, so fixing it reloads');
    }));

  it('refuses bad PEM, a bad key, a key that does not match and a cert without key with E_TLS_CERT_INVALID', () =>
    withDir(async (dir) => {
      const leaf = await issueCert({ names: ['a.test'] });
      const other = await issueCert({ names: ['a.test'] });
      const f = (name: string, text: string): string => {
        writeFileSync(join(dir, name), text, { mode: 0o600 }); // any of them may be given as the key
        return join(dir, name);
      };
      const cert = f('cert.pem', leaf.cert);
      const key = f('key.pem', leaf.key);
      const garbage = f('garbage.pem', 'hello, not PEM\n');
      const broken = f('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      const otherKey = f('other-key.pem', other.key);
      const src = createNodeCertSource({ dataDir: join(dir, 'data') });
      const req = (certFile: string, keyFile: string) => [{ appId: 'a', names: ['a.test'], certFile, keyFile }];
      await assert.rejects(src.identities(req(garbage, key)), codeAndFile('E_TLS_CERT_INVALID', garbage));
      await assert.rejects(src.identities(req(broken, key)), codeAndFile('E_TLS_CERT_INVALID', broken));
      await assert.rejects(src.identities(req(cert, garbage)), codeAndFile('E_TLS_CERT_INVALID', garbage));
      await assert.rejects(src.identities(req(cert, otherKey)), codeAndFile('E_TLS_CERT_INVALID', otherKey));
      await assert.rejects(src.identities([{ appId: 'a', names: ['a.test'], certFile: cert }]), codeAndFile('E_TLS_CERT_INVALID', cert));
      // The good pair still loads after the failures.
      assert.equal((await src.identities(req(cert, key))).get('a')?.cert.id, describeCert(leaf.cert).id);
    }));

  it('refuses an app with neither files nor names with E_TLS_NO_CERTIFICATE', () =>
    withDir(async (dir) => {
      const src = createNodeCertSource({ dataDir: join(dir, 'data') });
      await assert.rejects(src.identities([{ appId: 'a', names: [] }]), (e) => isRefractError(e) && e.code === 'E_TLS_NO_CERTIFICATE');
    }));

  it('reports E_TLS_CA when the data directory cannot be used', () =>
    withDir(async (dir) => {
      writeFileSync(join(dir, 'file'), '');
      const src = createNodeCertSource({ dataDir: join(dir, 'file', 'data') });
      await assert.rejects(src.identities([{ appId: 'a', names: ['a.test'] }]), (e) => isRefractError(e) && e.code === 'E_TLS_CA');
    }));
});

describe('node CertSource: trust', () => {
  it('adds the bundle CAs to the system store, and without a bundle trusts the system store alone', () =>
    withDir(async (dir) => {
      const a = await issueCert({ names: [], isCa: true, commonName: 'A' });
      const b = await issueCert({ names: [], isCa: true, commonName: 'B', keyType: 'rsa' });
      const bundle = join(dir, 'bundle.pem');
      writeFileSync(bundle, a.cert + '\n' + b.cert);
      const src = createNodeCertSource({ dataDir: join(dir, 'data') });
      const t = await src.trust(bundle);
      assert.equal(t.system, true);
      assert.deepEqual(t.cas.map((c) => c.id), [describeCert(a.cert).id, describeCert(b.cert).id]);
      assert.equal(t.pem, a.cert + b.cert);
      assert.deepEqual(src.watchedFiles(), [bundle]);
      assert.deepEqual(await src.trust(undefined), { system: true, cas: [] });
      assert.deepEqual(src.watchedFiles(), []);
    }));

  it('refuses a bundle that is missing (E_TLS_CERT_READ) or holds no certificate (E_TLS_CERT_INVALID)', () =>
    withDir(async (dir) => {
      const src = createNodeCertSource({ dataDir: join(dir, 'data') });
      const missing = join(dir, 'missing.pem');
      await assert.rejects(src.trust(missing), codeAndFile('E_TLS_CERT_READ', missing));
      const bad = join(dir, 'bad.pem');
      writeFileSync(bad, 'nothing here');
      await assert.rejects(src.trust(bad), codeAndFile('E_TLS_CERT_INVALID', bad));
    }));
});
