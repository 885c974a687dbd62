/**
 * The first hour of an operator, as child processes: `--help` and bad flags for every command, `--version`,
 * a mistyped command, output piped whole, the access log, start errors, the PID file, signals and `serve --check`.
 *
 * Ports are fixed in 7750-7769 (this file's block). Every wait is bounded; every child is killed in `finally`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');
const HOST = '127.0.0.1';
const START_MS = 30_000;
const STEP_MS = 5_000;
const TEST_MS = 120_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, withinMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

interface Run {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: number | null | undefined;
  readonly done: Promise<number | null>;
}

/** Starts `refract ARGS`, collecting its output. */
function start(args: readonly string[]): Run {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = {
    child,
    stdout: '',
    stderr: '',
    exit: undefined,
    done: new Promise((resolve) => child.on('close', (code) => resolve(code))),
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (run.stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (run.stderr += s));
  void run.done.then((code) => (run.exit = code));
  return run;
}

/** Runs `refract ARGS` to completion within `withinMs` (killed and failed otherwise). */
async function cli(args: readonly string[], withinMs = START_MS): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = start(args);
  const timer = setTimeout(() => r.child.kill('SIGKILL'), withinMs);
  const code = await r.done;
  clearTimeout(timer);
  assert.notEqual(code, null, `refract ${args.join(' ')} did not exit within ${withinMs} ms\n${r.stderr}`);
  return { code, stdout: r.stdout, stderr: r.stderr };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'refract-op-'));
}

function config(apps: ReadonlyArray<{ id: string; port: number }>, originPort: number, extra: Record<string, unknown> = {}): string {
  return YAML.stringify({
    node: { id: 'op-test' },
    edge: { addresses: [HOST], drain_timeout_ms: 1_000 },
    origins: [{ name: 'echo', listen: `tcp://${HOST}:${originPort}`, behaviour: 'echo' }],
    apps: apps.map((a) => ({ id: a.id, protocol: `tcp/${a.port}`, dns: { name: `${a.id}.example.test` }, origin_direct: [`tcp://${HOST}:${originPort}`] })),
    ...extra,
  });
}

/** Opens a connection, sends `text`, waits for the echo, half-closes and waits for the close. */
async function echoOnce(port: number, text: string): Promise<number> {
  const s = net.connect({ host: HOST, port });
  s.on('error', () => {});
  let rx = '';
  let closed = false;
  s.setEncoding('utf8').on('data', (d: string) => (rx += d));
  s.on('close', () => (closed = true));
  await until(`connect to ${port}`, STEP_MS, () => (s.readyState === 'open' ? true : undefined));
  s.write(text);
  await until('the echo', STEP_MS, () => (rx.length >= text.length ? true : undefined));
  const local = s.localPort!;
  s.end();
  await until('the close', STEP_MS, () => (closed ? true : undefined));
  return local;
}

/** Holds a TCP port like another process would. */
async function occupy(port: number): Promise<net.Server> {
  const srv = net.createServer((c) => c.destroy());
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, HOST, resolve);
  });
  return srv;
}

const COMMANDS = ['serve', 'validate', 'connect', 'sim', 'replay', 'ca', 'machines', 'edge-ips'];

void describe('refract flags', () => {
  void it('COMMAND --help prints that command’s usage on stdout and exits 0, for every command', { timeout: TEST_MS * 2 }, async () => {
    for (const cmd of COMMANDS) {
      const r = await cli([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: refract ${cmd}\\b`), cmd);
      assert.equal(r.stderr, '', cmd);
    }
  });

  void it('an unknown flag gets one line naming it, then the usage, on stderr, and exit 2, for every command', { timeout: TEST_MS * 2 }, async () => {
    for (const cmd of COMMANDS) {
      const r = await cli([cmd, '--no-such-flag']);
      assert.equal(r.code, 2, `${cmd}: ${r.stderr}`);
      const [first, second, third] = r.stderr.split('\n');
      assert.match(first!, new RegExp(`^refract ${cmd}: .*--no-such-flag`), cmd);
      assert.equal(second, '', `${cmd}: one line, then a blank line`);
      assert.match(third!, /^Usage: refract /, cmd);
      assert.doesNotMatch(r.stderr, /ERR_PARSE_ARGS|\n\s+at /, `${cmd}: no stack trace`);
      assert.equal(r.stdout, '');
    }
  });

  void it('--version and -v print the version from package.json', { timeout: TEST_MS }, async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const r = await cli([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `refract ${pkg.version}\n`);
    }
  });

  void it('a mistyped command gets "did you mean" and exit 2', { timeout: TEST_MS }, async () => {
    const r = await cli(['serv', '--config', 'x.yaml']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.split('\n')[0], "refract: unknown command 'serv'; did you mean `serve`?");
  });
});

void describe('output arrives whole', () => {
  void it('validate output far beyond a pipe buffer reaches a slow reader complete', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'big.json');
      const apps = Array.from({ length: 3_000 }, (_, i) => ({ id: `app-${i}`, protocol: 'tcp/0', dns: { name: `a${i}.example.test` }, origin_direct: ['tcp://127.0.0.1:7769'] }));
      writeFileSync(file, JSON.stringify({ apps }));
      // A reader that starts late, as `less` might: by then the child has long filled the 64 KiB pipe. The exit
      // status is refract's (pipefail is not portable, so the shell reports it on fd 3).
      const script = `{ "$0" "$1" validate "$2"; echo $? >&3; } 3>&2 | { sleep 3; cat; }`;
      const r = await new Promise<{ code: string; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn('/bin/sh', ['-c', script, process.execPath, BIN, file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), START_MS);
        child.on('error', reject);
        child.on('close', () => {
          clearTimeout(timer);
          resolve({ code: stderr.trim().split('\n').at(-1) ?? '', stdout, stderr });
        });
      });
      assert.equal(r.code, '1', r.stderr);
      assert.ok(r.stdout.length > 200_000, `got ${r.stdout.length} bytes; stderr: ${r.stderr}`);
      assert.ok(r.stdout.endsWith('\n'));
      const lines = r.stdout.trimEnd().split('\n');
      assert.match(lines.at(-1)!, /^\S+big\.json:\d+:\d+: E_CONFIG_PORT_ZERO: .+ \(at \/apps\/2999\/protocol\)$/);
      assert.equal(lines.filter((l) => l.includes('E_CONFIG_PORT_ZERO')).length, 3_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

void describe('refract serve, as an operator runs it', () => {
  void it('prints the PID, writes the access log as JSON on a pipe, keeps --pid-file, and exits 0 after SIGINT', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    let run: Run | undefined;
    try {
      const file = join(dir, 'refract.yaml');
      const pidFile = join(dir, 'refract.pid');
      writeFileSync(file, config([{ id: 'web', port: 7750 }], 7751));
      run = start(['serve', '--config', file, '--pid-file', pidFile]);
      const r = run;
      const startLine = await until('the start line', START_MS, () => {
        if (r.exit !== undefined) throw new Error(`exited: ${r.stderr}`);
        return r.stderr.split('\n').find((l) => l.startsWith('refract: serving '));
      });
      assert.match(startLine, new RegExp(`\\(pid ${r.child.pid}\\)`));
      // The app line is a write of its own after the start line: it may reach the pipe a moment later.
      await until('the app line', START_MS, () => /refract: app web \(web\.example\.test\) tcp\/7750/.exec(r.stderr) ?? undefined);
      assert.equal(readFileSync(pidFile, 'utf8'), `${r.child.pid}\n`);

      // A second server with the same PID file refuses to start.
      const second = await cli(['serve', '--config', file, '--pid-file', pidFile]);
      assert.equal(second.code, 3);
      assert.match(second.stderr, /could not start: E_PID_FILE_IN_USE: .*PID \d+/);

      const clientPort = await echoOnce(7750, 'hello\n');
      const line = await until('the access log line', STEP_MS, () => r.stdout.split('\n').find((l) => l.includes(`"client_port":${clientPort}`)));
      const j = JSON.parse(line) as Record<string, unknown>;
      assert.equal(j['app'], 'web');
      assert.equal(j['app_name'], 'web.example.test');
      assert.equal(j['edge_port'], 7750);
      assert.equal(j['origin_port'], 7751);
      assert.equal(j['status'], 200);
      assert.equal(j['close_reason'], 'normal');
      assert.equal(j['bytes_in'], 6);
      assert.equal(j['bytes_out'], 6);

      r.child.kill('SIGINT');
      const timer = setTimeout(() => r.child.kill('SIGKILL'), STEP_MS);
      assert.equal(await r.done, 0, r.stderr);
      clearTimeout(timer);
      assert.equal(existsSync(pidFile), false, 'the PID file is removed at exit');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack traces');
    } finally {
      run?.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('--access-log text writes one readable line per connection; SIGTERM exits 0', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    let run: Run | undefined;
    try {
      const file = join(dir, 'refract.yaml');
      writeFileSync(file, config([{ id: 'web', port: 7752 }], 7753));
      run = start(['serve', file, '--access-log', 'text']);
      const r = run;
      await until('the start line', START_MS, () => {
        if (r.exit !== undefined) throw new Error(`exited: ${r.stderr}`);
        return r.stderr.includes('refract: serving ') ? true : undefined;
      });
      const clientPort = await echoOnce(7752, 'hello, text\n');
      const line = await until('the access log line', STEP_MS, () => r.stdout.split('\n').find((l) => l.includes(`:${clientPort} `)));
      assert.match(line, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z web\\.example\\.test \\[web\\] tcp 127\\.0\\.0\\.1:${clientPort} → 127\\.0\\.0\\.1:7752 → 127\\.0\\.0\\.1:7753 200 normal, 12 B in, 12 B out, \\d+ ms$`));
      r.child.kill('SIGTERM');
      const timer = setTimeout(() => r.child.kill('SIGKILL'), STEP_MS);
      assert.equal(await r.done, 0, r.stderr);
      clearTimeout(timer);
    } finally {
      run?.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('a port in use: "could not start" names the address, port and app, and exits 3', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    const held = await occupy(7754);
    try {
      const file = join(dir, 'refract.yaml');
      writeFileSync(file, config([{ id: 'web', port: 7754 }], 7755));
      const r = await cli(['serve', '--config', file]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /^refract: could not start: E_LISTEN_ADDRESS_IN_USE: tcp 127\.0\.0\.1:7754 for app web \(web\.example\.test\): .*\(EADDRINUSE\)$/m);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack traces');
    } finally {
      held.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('--check exits 0 when everything binds (and releases it), 1 for an invalid config, 3 when a port is in use', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'refract.yaml');
      writeFileSync(file, config([{ id: 'a', port: 7756 }, { id: 'b', port: 7757 }], 7758));
      const ok = await cli(['serve', '--config', file, '--check']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /: OK: 2 apps, 2 listeners bound and released, 1 builtin origin\n$/);
      // Released: the ports can be bound again at once.
      for (const p of [7756, 7757, 7758]) (await occupy(p)).close();

      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, config([{ id: 'a', port: 0 }], 7758));
      const invalid = await cli(['serve', '--config', bad, '--check']);
      assert.equal(invalid.code, 1);
      assert.match(invalid.stderr, /E_CONFIG_PORT_ZERO/);

      const held = await occupy(7757);
      try {
        const busy = await cli(['serve', '--config', file, '--check']);
        assert.equal(busy.code, 3, busy.stderr);
        assert.match(busy.stderr, /E_LISTEN_ADDRESS_IN_USE: tcp 127\.0\.0\.1:7757 for app b \(b\.example\.test\)/);
      } finally {
        held.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
