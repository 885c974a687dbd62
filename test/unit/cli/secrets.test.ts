/**
 * No secret in a log line or an event (issue #16 item 9; docs/hardening.md, "Logs and events"):
 * - the management API driven with a good token, a bad one, and an email + API key: no token or key value appears
 *   in any log line (trace level) or event;
 * - `refract serve` with a TLS app on the local CA, at trace level, with TLS clients and garbage: neither the CA's
 *   private key nor the app's leaf key appears on stdout (events) or stderr (log);
 * - a config whose certificate file is a private key (a config error near key files): the start error names the
 *   file and the code, never the key.
 *
 * Ports 8823-8826 (this file's block; 8820-8822 are stalled-output.test.ts's). Every child is killed in `finally`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import YAML from 'yaml';
import { createLogger } from '../../../src/log.ts';
import { startApi } from '../api/harness.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');
const HOST = '127.0.0.1';
const TEST_MS = 90_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, withinMs: number, probe: () => T | undefined): Promise<T> {
  for (let i = 0; i < withinMs / 50; i++) {
    const v = probe();
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
}

/** The base64 lines of a PEM private key (its secret part), and a run of them as one string. */
function keyFragments(pem: string): string[] {
  const m = /-----BEGIN [A-Z ]*PRIVATE KEY-----([\s\S]*?)-----END/.exec(pem);
  assert.ok(m, 'a private key in the file');
  const body = m[1]!.split('\n').map((l) => l.trim()).filter((l) => l.length >= 16);
  assert.ok(body.length > 0);
  // Each line on its own (as PEM), and the body joined (as a JSON value might carry it without newlines).
  return [...body, body.join('').slice(0, 64)];
}

function assertNoneIn(text: string, secrets: readonly string[], where: string): void {
  for (const s of secrets) assert.ok(!text.includes(s), `${where} contains a secret (${s.slice(0, 8)}…)`);
}

describe('no secret in a log line or an event', () => {
  it('API: good and bad tokens and API keys never reach the log or the events', { timeout: TEST_MS }, async () => {
    let text = '';
    const log = createLogger({ level: 'trace', destination: new Writable({ write: (c: Buffer, _e, cb) => ((text += c.toString()), cb()) }) });
    const api = await startApi({}, { log });
    let events = '';
    api.edge.events.events$.subscribe((e) => (events += JSON.stringify(e) + '\n'));
    try {
      const bad = randomBytes(30).toString('base64url');
      const key = randomBytes(20).toString('hex');
      assert.equal((await api.call('GET', '/user/tokens/verify')).status, 200);
      assert.equal((await api.call('GET', '/user/tokens/verify', undefined, { auth: bad })).status, 401);
      const res = await fetch(`${api.base}/zones`, { headers: { 'x-auth-email': 'ops@example.com', 'x-auth-key': key } });
      assert.equal(res.status, 401);
      await res.arrayBuffer();
      // The log has the requests (so the check below looks at real lines), and none of the secrets.
      assert.ok(text.split('\n').filter((l) => l.includes('"api.request"')).length >= 3, text);
      assertNoneIn(text + events, [api.token, bad, key], 'the API log');
      // The redact net: an object that carries a secret where one could sit is censored.
      log.info({ headers: { authorization: `Bearer ${bad}` }, token: bad, tls: { key } }, 'probe');
      assertNoneIn(text, [bad, key], 'a redacted line');
      assert.match(text, /\[redacted\]/);
    } finally {
      await api.close();
    }
  });

  it('serve with TLS on the local CA at trace level: no private key on stdout (events) or stderr (log)', { timeout: TEST_MS }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-secrets-'));
    const file = join(dir, 'refract.yaml');
    const EDGE = 8823;
    const ORIGIN = 8824;
    writeFileSync(
      file,
      YAML.stringify({
        node: { id: 'secrets-test', data_dir: join(dir, 'data') },
        edge: { addresses: [HOST] },
        log: { level: 'trace', rate_limit: { lines: 0 } },
        origins: [{ name: 'echo', listen: `tcp://${HOST}:${ORIGIN}`, behaviour: 'echo' }],
        apps: [{ id: 'tls-echo', protocol: `tcp/${EDGE}`, tls: 'flexible', dns: { name: 'secret.example.test' }, origin_direct: [`tcp://${HOST}:${ORIGIN}`] }],
      }),
    );
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--events', 'stdout', '--no-watch'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
      await until('serving', 30_000, () => (err.includes('refract: serving') ? true : undefined));
      // A TLS client that completes, one with a wrong SNI, and garbage.
      for (const servername of ['secret.example.test', 'other.example.test']) {
        const s = tls.connect({ host: HOST, port: EDGE, servername, rejectUnauthorized: false });
        s.on('error', () => {});
        s.resume();
        s.end('ping');
        await new Promise((r) => s.once('close', r));
      }
      const g = net.connect({ host: HOST, port: EDGE });
      g.on('error', () => {});
      g.resume();
      g.end('GET / HTTP/1.1\r\n\r\n');
      await new Promise((r) => g.once('close', r));
      await until('three closing events', 10_000, () => (out.split('\n').filter((l) => l.includes('"Event"') && !l.includes('"connect"')).length >= 3 ? true : undefined));
      const dataDir = join(dir, 'data');
      const caKey = readFileSync(join(dataDir, 'ca-key.pem'), 'utf8');
      const leaves = readdirSync(join(dataDir, 'certs')).map((f) => readFileSync(join(dataDir, 'certs', f), 'utf8'));
      assert.ok(leaves.length > 0, 'the local CA issued a leaf');
      const secrets = [caKey, ...leaves].flatMap(keyFragments);
      assert.ok(err.split('\n').length > 5, 'trace level wrote lines');
      assertNoneIn(out, secrets, 'stdout (events)');
      assertNoneIn(err, secrets, 'stderr (log)');
    } finally {
      child?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a certificate file that holds a private key: the start error names the code and file, never the key', { timeout: TEST_MS }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-secrets-'));
    const file = join(dir, 'refract.yaml');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeFileSync(join(dir, 'key.pem'), pem, { mode: 0o600 });
    writeFileSync(
      file,
      YAML.stringify({
        node: { id: 'secrets-test', data_dir: join(dir, 'data') },
        edge: { addresses: [HOST] },
        log: { level: 'trace' },
        apps: [{ id: 'bad-tls', protocol: 'tcp/8825', tls: 'flexible', dns: { name: 'bad.example.test' }, origin_direct: [`tcp://${HOST}:8826`], edge_tls: { cert: 'key.pem', key: 'key.pem' } }],
      }),
    );
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--check'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 3, out);
      assert.match(out, /E_TLS_CERT_INVALID/);
      assert.match(out, /key\.pem/);
      assertNoneIn(out, keyFragments(pem), 'the start error');
    } finally {
      child?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
