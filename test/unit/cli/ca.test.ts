/**
 * `refract ca export|path`: prints or writes the local CA root, creating the CA once; finds the data directory
 * from --data-dir, --config or the working directory. Mostly in-process (caCommand with captured output); one
 * run through bin/refract.js checks the dispatch. No ports.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { caCommand, type CaIo } from '../../../src/cli/ca.ts';
import { describeCert } from '../../../src/net/node/x509.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');

function capture(): CaIo & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-ca-cli-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

describe('refract ca', () => {
  it('export creates the CA on first use and prints the same root every time after', () =>
    withDir(async (dir) => {
      const dataDir = join(dir, 'data');
      const first = capture();
      assert.equal(await caCommand(['export', '--data-dir', dataDir], first), 0);
      const root = describeCert(first.stdout);
      assert.equal(root.issuer, root.id, 'a self-signed root');
      assert.equal(first.stdout, readFileSync(join(dataDir, 'ca.pem'), 'utf8'));
      assert.match(first.stderr, /created/);
      const second = capture();
      assert.equal(await caCommand(['export', '--data-dir', dataDir], second), 0);
      assert.equal(second.stdout, first.stdout);
      assert.equal(second.stderr, '');
    }));

  it('export --out writes the root to a file and nothing to stdout', () =>
    withDir(async (dir) => {
      const io = capture();
      const out = join(dir, 'refract-root.crt');
      assert.equal(await caCommand(['export', '--data-dir', join(dir, 'data'), '--out', out], io), 0);
      assert.equal(io.stdout, '');
      assert.equal(readFileSync(out, 'utf8'), readFileSync(join(dir, 'data', 'ca.pem'), 'utf8'));
      assert.equal(statSync(out).mode & 0o777 & ~0o022, 0o644 & ~0o022);
    }));

  it('uses the data directory of --config (edge.tls.data_dir, relative to the config file)', () =>
    withDir(async (dir) => {
      const config = join(dir, 'refract.yaml');
      writeFileSync(config, 'edge:\n  tls:\n    data_dir: state\napps: []\n');
      const path = capture();
      assert.equal(await caCommand(['path', '--config', config], path), 0);
      assert.equal(path.stdout, join(dir, 'state', 'ca.pem') + '\n');
      assert.equal(existsSync(join(dir, 'state')), false, 'path creates nothing');
      assert.equal(await caCommand(['export', '--config', config], capture()), 0);
      assert.equal(existsSync(join(dir, 'state', 'ca.pem')), true);
    }));

  it('exits 2 on a bad command line or an invalid config, 1 when the CA cannot be created', () =>
    withDir(async (dir) => {
      assert.equal(await caCommand([], capture()), 2);
      assert.equal(await caCommand(['frobnicate'], capture()), 2);
      assert.equal(await caCommand(['export', '--bogus'], capture()), 2);
      assert.equal(await caCommand(['export', '--data-dir', dir, '--config', 'x.yaml'], capture()), 2);
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'edge: [unclosed\n');
      assert.equal(await caCommand(['export', '--config', bad], capture()), 2);
      writeFileSync(join(dir, 'file'), '');
      const io = capture();
      assert.equal(await caCommand(['export', '--data-dir', join(dir, 'file', 'data')], io), 1);
      assert.match(io.stderr, /E_TLS_CA/);
    }));

  it('is dispatched by bin/refract.js: `refract ca export` prints a PEM root', () =>
    withDir(async (dir) => {
      const res = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, 'ca', 'export', '--data-dir', join(dir, 'data')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
        child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`refract ca export did not finish in 60 s: ${stderr}`));
        }, 60_000);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
      assert.equal(res.stdout, readFileSync(join(dir, 'data', 'ca.pem'), 'utf8'));
    }));
});
