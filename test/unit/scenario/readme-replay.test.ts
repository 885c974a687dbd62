/**
 * The README's own replay story, end to end on real sockets: `refract serve --config examples/refract.yaml --trace
 * trace.jsonl`, a line through the port range (6105), a line to the PROXY v1 banner origin (6025), a line over TLS
 * (6443, verified against the CA that `refract ca export` prints), SIGTERM, then `refract replay trace.jsonl --config
 * …` must exit 0. Runs in a temporary directory holding a copy of the example config (its local CA and the trace go
 * there). The example's ports are fixed: 6025, 6100-6109, 6200-6209, 6325, 6443 must be free.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { once } from 'node:events';

const ROOT = resolve(import.meta.dirname, '../../..');
const CLI = ['--import', 'tsx', join(ROOT, 'src', 'cli.ts')];

/** Rejects after `ms` with `what`, so every wait in this file is bounded. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Runs the CLI to its end; resolves with exit code, stdout and stderr. */
function run(args: string[], ms: number): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [...CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return within(
    ms,
    `refract ${args.join(' ')}`,
    new Promise<{ code: number | null; out: string; err: string }>((res) => child.on('close', (code) => res({ code, out, err }))),
  ).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
}

/** Sends `data` over `s`, half-closes, and resolves with everything received until the server closed. */
async function exchange(s: net.Socket, data: string): Promise<string> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  s.end(data);
  await once(s, 'close');
  return Buffer.concat(chunks).toString();
}

test('README replay: serve the example with --trace, three connections, replay exits 0', { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'refract-readme-'));
  const config = join(dir, 'refract.yaml');
  const trace = join(dir, 'trace.jsonl');
  copyFileSync(join(ROOT, 'examples', 'refract.yaml'), config);
  let serve: ChildProcess | undefined;
  try {
    serve = spawn(process.execPath, [...CLI, 'serve', '--config', config, '--trace', trace, '--no-watch'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const exited = new Promise<number | null>((res) => serve!.on('close', (code) => res(code)));
    // `refract: app …` is printed once per app after the edge applied the config: three apps, then it serves.
    await within(
      30_000,
      'refract serve to start',
      new Promise<void>((res, rej) => {
        serve!.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          if ((err.match(/^refract: app /gm) ?? []).length === 3) res();
        });
        void exited.then((code) => rej(new Error(`refract serve exited (${code}) before serving:\n${err}`)));
      }),
    );
    serve.stdout!.resume(); // Spectrum events: not checked here

    assert.equal(await within(5_000, 'range app', exchange(net.connect(6105, '127.0.0.1'), 'hello\n')), 'hello\n');
    const smtp = await within(5_000, 'smtp app', exchange(net.connect(6025, '127.0.0.1'), 'EHLO me\n'));
    const header = /^220 origin\.example\.test ESMTP refract-demo\r\n(PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ 6025\r\n)EHLO me\n$/.exec(smtp);
    assert.ok(header, `the banner origin echoes the PROXY header it got: ${JSON.stringify(smtp)}`);

    const ca = await run(['ca', 'export', '--config', config], 20_000);
    assert.equal(ca.code, 0, ca.err);
    const t = tls.connect({ host: '127.0.0.1', port: 6443, servername: 'tls.example.test', ca: ca.out });
    await within(5_000, 'TLS handshake', once(t, 'secureConnect'));
    assert.equal(t.authorized, true);
    assert.equal(await within(5_000, 'tls app', exchange(t, 'hi\n')), 'hi\n');

    serve.kill('SIGTERM');
    assert.equal(await within(15_000, 'refract serve to drain and exit', exited), 0);
    serve = undefined;

    const lines = readFileSync(trace, 'utf8').trim().split('\n');
    assert.equal(lines.filter((l) => l.includes('"event":"close"')).length, 3, 'three connections recorded');

    const replay = await run(['replay', trace, '--config', config], 30_000);
    assert.equal(replay.code, 0, `replay exit ${replay.code}\n${replay.out}\n${replay.err}`);
    assert.match(replay.out, /3 connections replayed, 0 skipped/);
    assert.match(replay.out, /tls +c3: the client speaks TLS with the recorded version and SNI/);
    assert.ok(replay.out.includes(`c2: bytes_out compared without the ${header[1]!.length}-byte PROXY header the builtin origin echoed back`), replay.out);
    assert.match(replay.out, /differences: none; all 3 compared connections ended as recorded/);
  } finally {
    serve?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
