/**
 * Certificate files are watched the way operators replace them (src/cli/cert-watch.ts over watchFileChanges):
 * - CertWatch alone: a file renamed over calls back; a file dropped from the list by `update` and every file after
 *   `close` call nothing;
 * - `refract serve` with a flexible TLS app on configured certificate files: a new key renamed over the old one alone
 *   is refused (it does not match the certificate; the old pair stays), then the new certificate makes the pair,
 *   served from the next handshake after a `tls.certificates_reloaded` log line.
 * Ports from the kernel (port 0, released); every child is killed in `finally`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { CertWatch } from '../../../src/cli/cert-watch.ts';
import { describeCert, issueCert } from '../../../src/net/node/x509.ts';
import { freePort } from '../api/harness.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');
const HOST = '127.0.0.1';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, withinMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + withinMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Writes `text` to `file` the way an editor's safe save does: a new file renamed over the old one. */
function renameOver(file: string, text: string, mode = 0o644): void {
  writeFileSync(`${file}.new`, text, { mode });
  renameSync(`${file}.new`, file);
}

/** The SHA-256 fingerprint of the certificate the edge presents on `port`. */
function servedFingerprint(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: HOST, port, servername: 'app.example.test', rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', () => resolve(undefined));
  });
}

describe('certificate files watched for replacement', () => {
  it('CertWatch: a renamed-over file calls back; a file dropped by update, and all after close, call nothing', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-cert-watch-'));
    const [a, b] = [join(dir, 'a.pem'), join(dir, 'b.pem')];
    writeFileSync(a, 'a1');
    writeFileSync(b, 'b1');
    let calls = 0;
    const w = new CertWatch(() => calls++);
    try {
      w.update([a, b]);
      assert.deepEqual([...w.files()].sort(), [a, b]);
      renameOver(a, 'a2');
      await until('a call for a', 10_000, () => (calls >= 1 ? true : undefined));
      w.update([b]);
      assert.deepEqual(w.files(), [b]);
      const before = calls;
      renameOver(a, 'a3');
      await sleep(500);
      assert.equal(calls, before, 'a is no longer watched');
      renameOver(b, 'b2');
      await until('a call for b', 10_000, () => (calls > before ? true : undefined));
      w.close();
      const closed = calls;
      renameOver(b, 'b3');
      await sleep(500);
      assert.equal(calls, closed, 'nothing after close');
    } finally {
      w.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refract serve: a certificate and key renamed over the old ones are served from the next handshake; a new key alone is refused', { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-cert-watch-serve-'));
    const [edgePort, originPort] = [await freePort(), await freePort()];
    const certFile = join(dir, 'app.pem');
    const keyFile = join(dir, 'app-key.pem');
    const first = await issueCert({ names: ['app.example.test'] });
    writeFileSync(certFile, first.cert);
    writeFileSync(keyFile, first.key, { mode: 0o600 });
    const file = join(dir, 'refract.yaml');
    writeFileSync(
      file,
      YAML.stringify({
        node: { id: 'cert-watch-test', data_dir: join(dir, 'data') },
        edge: { addresses: [HOST] },
        log: { level: 'info' },
        origins: [{ name: 'echo', listen: `tcp://${HOST}:${originPort}`, behaviour: 'echo' }],
        apps: [{ id: 'tls-app', protocol: `tcp/${edgePort}`, tls: 'flexible', dns: { name: 'app.example.test' }, origin_direct: [`tcp://${HOST}:${originPort}`], edge_tls: { cert: certFile, key: keyFile } }],
      }),
    );
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--access-log', 'off'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
      await until('serving', 30_000, () => (err.includes('refract: serving') ? true : undefined));
      assert.equal(await servedFingerprint(edgePort), describeCert(first.cert).fingerprint256);
      const second = await issueCert({ names: ['app.example.test'] });
      // The key first, alone: the new key beside the old certificate is refused, and the old pair stays in use.
      renameOver(keyFile, second.key, 0o600); // (0600: a key group or others can read is refused too)
      await until('the mismatched pair refused', 30_000, () => (err.includes('"tls.certificates_rejected"') ? true : undefined));
      assert.match(err, /E_TLS_CERT_INVALID/);
      assert.equal(await servedFingerprint(edgePort), describeCert(first.cert).fingerprint256, 'the running pair stays');
      renameOver(certFile, second.cert);
      const want = describeCert(second.cert).fingerprint256;
      await until('the new certificate served', 30_000, async () => ((await servedFingerprint(edgePort)) === want ? true : undefined)).catch((e: Error) => {
        throw new Error(`${e.message}\n${err}`);
      });
      assert.ok(err.includes('"tls.certificates_reloaded"'), err);
    } finally {
      child?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
