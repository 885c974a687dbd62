/**
 * Private keys and the local CA directory must be private to their owner (mode & 0o077 == 0), as OpenSSH demands:
 * anything else is refused with E_TLS_KEY_PERMISSIONS naming the file and its mode. Temp files, chmod.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPrivate, formatMode } from '../../../src/net/node/key-permissions.ts';
import { CA_KEY_FILE, LEAF_DIR, openLocalCa } from '../../../src/net/node/local-ca.ts';
import { createNodeCertSource } from '../../../src/net/node/cert-store.ts';
import { issueCert } from '../../../src/net/node/x509.ts';
import { isRefractError } from '../../../src/model/errors.ts';

const posix = process.platform !== 'win32';

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-keyperm-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** A RefractError E_TLS_KEY_PERMISSIONS naming `file` and `mode`, in its details and its message. */
const refused = (file: string, mode: string) => (e: unknown) => {
  assert.ok(isRefractError(e), String(e));
  assert.equal(e.code, 'E_TLS_KEY_PERMISSIONS');
  assert.equal(e.details?.['file'], file);
  assert.equal(e.details?.['mode'], mode);
  assert.ok(e.message.includes(file) && e.message.includes(mode), e.message);
  return true;
};

void describe('key and CA directory permissions', { skip: posix ? false : 'no POSIX mode bits on Windows' }, () => {
  void it('formats modes as four octal digits', () => {
    assert.equal(formatMode(0o100644), '0644');
    assert.equal(formatMode(0o40700), '0700');
    assert.equal(formatMode(0o600), '0600');
  });

  void it('accepts owner-only files and refuses any group or other bit, following symlinks; a missing file is left to the reader', () =>
    withDir(async (dir) => {
      const key = join(dir, 'k.pem');
      writeFileSync(key, 'x', { mode: 0o600 });
      await assertPrivate(key, 'key');
      chmodSync(key, 0o400);
      await assertPrivate(key, 'key');
      for (const m of [0o640, 0o604, 0o620, 0o602, 0o610, 0o644]) {
        chmodSync(key, m);
        await assert.rejects(assertPrivate(key, 'key'), refused(key, formatMode(m)));
      }
      const link = join(dir, 'link.pem'); // certbot's live/ links: the target's mode is what counts
      symlinkSync(key, link);
      await assert.rejects(assertPrivate(link, 'key'), refused(link, '0644'));
      chmodSync(key, 0o600);
      await assertPrivate(link, 'key');
      await assertPrivate(join(dir, 'missing.pem'), 'key');
    }));

  void it('creates the CA directory, certs/ and the keys owner-only, and refuses a CA directory, certs/ or CA key opened up later', () =>
    withDir(async (root) => {
      const dir = join(root, 'data');
      const ca = await openLocalCa({ dataDir: dir });
      const leaf = await ca.leafFor('app1', ['a.test']);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.equal(statSync(join(dir, LEAF_DIR)).mode & 0o777, 0o700);
      assert.equal(statSync(join(dir, CA_KEY_FILE)).mode & 0o777, 0o600);
      assert.equal(statSync(leaf.file).mode & 0o777, 0o600);

      chmodSync(dir, 0o755);
      await assert.rejects(openLocalCa({ dataDir: dir }), refused(dir, '0755'));
      chmodSync(dir, 0o700);
      chmodSync(join(dir, LEAF_DIR), 0o750);
      await assert.rejects(openLocalCa({ dataDir: dir }), refused(join(dir, LEAF_DIR), '0750'));
      chmodSync(join(dir, LEAF_DIR), 0o700);
      chmodSync(join(dir, CA_KEY_FILE), 0o640);
      await assert.rejects(openLocalCa({ dataDir: dir }), refused(join(dir, CA_KEY_FILE), '0640'));
      chmodSync(join(dir, CA_KEY_FILE), 0o600);
      const again = await openLocalCa({ dataDir: dir });
      chmodSync(leaf.file, 0o644);
      await assert.rejects(again.leafFor('app1', ['a.test']), refused(leaf.file, '0644'));
    }));

  void it('refuses a data directory made group-readable before the CA was created in it', () =>
    withDir(async (root) => {
      const dir = join(root, 'made-by-hand');
      mkdirSync(dir, { mode: 0o755 });
      chmodSync(dir, 0o755); // whatever the umask
      await assert.rejects(openLocalCa({ dataDir: dir }), refused(dir, '0755'));
    }));

  void it("refuses an app's key_file readable by group or others, naming the app, and loads it once chmod 600", () =>
    withDir(async (dir) => {
      const leaf = await issueCert({ names: ['a.test'] });
      const certFile = join(dir, 'a.pem');
      const keyFile = join(dir, 'a-key.pem');
      writeFileSync(certFile, leaf.cert);
      writeFileSync(keyFile, leaf.key);
      chmodSync(keyFile, 0o644);
      const src = createNodeCertSource({ dataDir: join(dir, 'data') });
      const req = [{ appId: 'a', names: ['a.test'], certFile, keyFile }];
      await assert.rejects(src.identities(req), (e) => refused(keyFile, '0644')(e) && (e as { details: Record<string, unknown> }).details['appId'] === 'a');
      chmodSync(keyFile, 0o600);
      assert.ok((await src.identities(req)).get('a'));
    }));
});
