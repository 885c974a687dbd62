/**
 * Config files cannot hurt the data path (issue #16), on a real `refract serve` child process: one change is one
 * reload (written in place, renamed over, swapped through a symlink); echo round trips keep completing while a large
 * legal file is parsed; a file with thousands of problems is rejected with a short log line; and `refract validate`
 * refuses a 50 MB file by its size.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');
const HOST = '127.0.0.1';
const TEST_MS = 120_000;
const dir = mkdtempSync(join(tmpdir(), 'refract-config-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, withinMs: number, probe: () => T | undefined): Promise<T> {
  const end = Date.now() + withinMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

type Json = Record<string, unknown>;

class Serve {
  readonly child: ChildProcess;
  readonly logs: Json[] = [];
  readonly lines: string[] = [];
  /** The process exited and its stderr is read to the end. */
  closed = false;
  constructor(file: string, extra: readonly string[] = []) {
    this.child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--access-log', 'off', ...extra], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.on('close', () => (this.closed = true));
    let buf = '';
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        if (line.startsWith('{')) this.logs.push(JSON.parse(line) as Json);
      }
    });
  }
  count(event: string): number {
    return this.logs.filter((l) => l['event'] === event).length;
  }
  log(event: string, withinMs = 60_000): Promise<Json> {
    return until(event, withinMs, () => {
      const found = this.logs.find((l) => l['event'] === event);
      // An exit (a port taken by another program, say) fails at once, with what serve said, not after the wait.
      if (found === undefined && this.closed) throw new Error(`serve exited ${this.child.exitCode} before ${event}:\n${this.lines.join('\n')}`);
      return found;
    });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

function yaml(port: number, origin: number, name: string, extra = ''): string {
  return [
    'edge: { addresses: [127.0.0.1], drain_timeout_ms: 500 }',
    'origins:',
    `  - { name: echo, listen: "tcp://${HOST}:${origin}", behaviour: echo }`,
    'apps:',
    `  - protocol: tcp/${port}`,
    `    dns: { name: ${name}.example.test }`,
    `    origin_direct: ["tcp://${HOST}:${origin}"]`,
    extra,
    '',
  ].join('\n');
}

/** A connection that echoes a line, again and again, counting round trips, until stopped. */
function echoLoop(port: number): Promise<{ readonly trips: () => number; stop(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port });
    let trips = 0;
    let got = '';
    let stopped = false;
    s.setEncoding('utf8');
    s.once('error', reject);
    s.on('data', (d: string) => {
      got += d;
      if (got.endsWith('\n')) {
        trips++;
        got = '';
        if (!stopped) s.write('ping\n');
      }
    });
    s.once('connect', () => {
      s.write('ping\n');
      resolve({
        trips: () => trips,
        stop: async () => {
          stopped = true;
          s.end();
          await new Promise((r) => s.once('close', r));
        },
      });
    });
  });
}

describe('refract serve: config files', () => {
  for (const [how, port] of [['written in place', 7830], ['renamed over', 7832], ['swapped through a directory symlink', 7834]] as const) {
    it(`reloads once for one change ${how}`, { timeout: TEST_MS }, async () => {
      const d = mkdtempSync(join(dir, 'once-'));
      let file = join(d, 'refract.yaml');
      let change: (text: string) => void;
      if (how === 'swapped through a directory symlink') {
        mkdirSync(join(d, 'v1'));
        writeFileSync(join(d, 'v1', 'refract.yaml'), yaml(port, port + 1, 'a'));
        symlinkSync('v1', join(d, 'conf'));
        file = join(d, 'conf', 'refract.yaml');
        change = (text) => {
          mkdirSync(join(d, 'v2'));
          writeFileSync(join(d, 'v2', 'refract.yaml'), text);
          symlinkSync('v2', join(d, 'conf.next'));
          renameSync(join(d, 'conf.next'), join(d, 'conf'));
        };
      } else {
        writeFileSync(file, yaml(port, port + 1, 'a'));
        change =
          how === 'written in place'
            ? (text) => writeFileSync(file, text)
            : (text) => {
                writeFileSync(join(d, '.tmp'), text);
                renameSync(join(d, '.tmp'), file);
              };
      }
      const serve = new Serve(file);
      try {
        await serve.log('serve.started');
        change(yaml(port, port + 1, 'b'));
        await serve.log('config.applied');
        await sleep(3_000); // past the 2 s stat poll, which used to reload a second time
        assert.equal(serve.count('config.reload'), 1);
        assert.equal(serve.count('config.applied'), 1);
      } finally {
        await serve.stop();
      }
    });
  }

  it('keeps echoing while a large legal file is parsed (the parse is off the data path)', { timeout: TEST_MS }, async () => {
    const file = join(mkdtempSync(join(dir, 'stall-')), 'refract.yaml');
    writeFileSync(file, yaml(7836, 7837, 'a'));
    const serve = new Serve(file, ['--log-level', 'debug']);
    let loop: Awaited<ReturnType<typeof echoLoop>> | undefined;
    try {
      await serve.log('serve.started');
      loop = await echoLoop(7836);
      await until('first round trips', 10_000, () => (loop!.trips() > 10 ? true : undefined));
      // ~3 MB, 300,000 nodes: seconds of parsing. Round trips are counted from the start of the load (a debug line
      // logged just before) to its end (config.reload): a parse on the serving thread would allow none in between.
      writeFileSync(file, `${yaml(7836, 7837, 'b')}    ignored_list:\n${'      - a long enough list item\n'.repeat(100_000)}`);
      await serve.log('config.loading');
      const before = loop.trips();
      const reload = await serve.log('config.reload');
      const during = loop.trips() - before;
      assert.ok(during >= 20, `round trips while the file was parsed: ${during}`);
      assert.equal(reload['trigger'], 'file change');
      await serve.log('config.applied');
    } finally {
      await loop?.stop();
      await serve.stop();
    }
  });

  it('rejects a file with 10,000 problems in one short log line: 20 issues and the count', { timeout: TEST_MS }, async () => {
    const file = join(mkdtempSync(join(dir, 'issues-')), 'refract.yaml');
    writeFileSync(file, yaml(7838, 7839, 'a'));
    const serve = new Serve(file);
    try {
      await serve.log('serve.started');
      const bad = Array.from({ length: 10_000 }, (_, i) => `  - { protocol: tcp/0, dns: { name: x${i}.example.test }, origin_direct: ["tcp://${HOST}:1"] }`).join('\n');
      writeFileSync(file, `edge: { addresses: [127.0.0.1] }\napps:\n${bad}\n`);
      const rejected = await serve.log('config.rejected');
      assert.equal((rejected['issues'] as unknown[]).length, 20);
      assert.equal(rejected['issueCount'], 10_000);
      assert.equal(rejected['issuesOmitted'], 9_980);
      const line = serve.lines.find((l) => l.includes('"config.rejected"'))!;
      assert.ok(line.length < 20_000, `the line is ${line.length} bytes`);
    } finally {
      await serve.stop();
    }
  });
});

describe('refract validate: limits', () => {
  it('refuses a 50 MB file with E_CONFIG_TOO_LARGE and exit 1; a bad --max-config-bytes is exit 2', { timeout: TEST_MS }, async () => {
    const file = join(dir, 'big.yaml');
    writeFileSync(file, '');
    truncateSync(file, 50 * 1024 * 1024); // sparse: 50 MB of NUL bytes, never written
    const run = (args: string[]): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve) => {
        const c = spawn(process.execPath, [BIN, 'validate', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        c.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
        c.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
        const t = setTimeout(() => c.kill('SIGKILL'), 60_000);
        c.on('close', (code) => {
          clearTimeout(t);
          resolve({ code, out });
        });
      });
    const r = await run([file]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /E_CONFIG_TOO_LARGE/);
    const bad = await run([file, '--max-config-bytes', '4X']);
    assert.equal(bad.code, 2, bad.out);
  });
});
