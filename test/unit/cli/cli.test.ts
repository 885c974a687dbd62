/**
 * The CLI as users run it: `node bin/refract.js validate|serve …` as a child process, over loopback.
 *
 * Edge and origin ports are fixed in 7700-7749 (this file's block; each test uses its own ports so a slow
 * release by one test cannot disturb the next). Config files live in a fresh temp dir per test. Every wait is
 * bounded in time, and every child is killed in `finally`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');
const HOST = '127.0.0.1';
/** A cold start compiles the CLI through tsx (about 3 s on a 2-vCPU box); allow for a loaded machine. */
const START_MS = 30_000;
const STEP_MS = 5_000;
const TEST_MS = 90_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `everyMs` until it returns a value other than undefined; fails after `withinMs`. */
async function until<T>(what: string, withinMs: number, probe: () => T | undefined | Promise<T | undefined>, everyMs = 25): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (let i = 0; i < Math.ceil(withinMs / everyMs) + 1; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'refract-cli-'));
}

// ── running the CLI ─────────────────────────────────────────────────────────────────────────────────────────────

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `refract ARGS` to completion (killed, and the test failed, if it takes longer than `withinMs`). */
function runCli(args: readonly string[], withinMs = START_MS): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`refract ${args.join(' ')} did not exit within ${withinMs} ms\n${stderr}`));
    }, withinMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * `POINTER: CODE` pairs of `refract validate` problem lines: `FILE:LINE:COL: E_CONFIG_PORT_ZERO: … (at /apps/0/protocol)`,
 * or `  /: E_CONFIG_READ: …` for a problem with no place in the text.
 */
function problems(out: string): string[] {
  const placed = [...out.matchAll(/^\S+:\d+:\d+: (E_[A-Z0-9_]+)\b.* \(at (\/\S*)\)$/gm)].map((m) => `${m[2]} ${m[1]}`);
  const unplaced = [...out.matchAll(/^ +(\/\S*): (E_[A-Z0-9_]+)\b/gm)].map((m) => `${m[1]} ${m[2]}`);
  return [...placed, ...unplaced].sort();
}

type Json = Record<string, unknown>;

/** A running `refract serve`: its stdout JSON lines (events), its stderr JSON lines (logs), its exit. */
class Serve {
  readonly child: ChildProcess;
  readonly events: Json[] = [];
  readonly logs: Json[] = [];
  stdoutOther = '';
  stderr = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(configPath: string, extra: readonly string[] = []) {
    this.child = spawn(process.execPath, [BIN, 'serve', '--config', configPath, ...extra], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    lines(this.child.stdout!, (line) => {
      const json = parseJsonLine(line);
      if (json) this.events.push(json);
      else this.stdoutOther += line + '\n';
    });
    lines(this.child.stderr!, (line) => {
      this.stderr += line + '\n';
      const json = parseJsonLine(line);
      if (json) this.logs.push(json);
    });
  }

  /** Throws (with the child's stderr) if the process has exited: a dead server fails fast, not by timeout. */
  alive(): void {
    if (this.exit) throw new Error(`refract serve exited early (${JSON.stringify(this.exit)})\n${this.stderr}`);
  }

  /** The first log line (from index `from` on) with this `event` that satisfies `pred`. */
  async log(event: string, from = 0, pred: (l: Json) => boolean = () => true, withinMs = STEP_MS): Promise<Json> {
    try {
      return await until(`log event ${event}`, withinMs, () => {
        const hit = this.logs.slice(from).find((l) => l['event'] === event && pred(l));
        if (!hit) this.alive();
        return hit;
      });
    } catch (e) {
      // What the server said meanwhile, so that a failure in CI tells what happened instead.
      const said = this.logs.slice(from).map((l) => JSON.stringify(l)).join('\n');
      throw new Error(`${(e as Error).message}; the log since then:\n${said === '' ? '(nothing)' : said}`, { cause: e });
    }
  }

  /** The closing event (not `connect`) of the connection from this client port. */
  async closing(clientPort: number, withinMs = STEP_MS): Promise<Json> {
    return until(`closing event for client port ${clientPort}`, withinMs, () =>
      this.events.find((e) => e['ClientPort'] === clientPort && e['Event'] !== 'connect'),
    );
  }

  async stopped(withinMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return until('refract serve to exit', withinMs, () => this.exit);
  }

  kill(): void {
    if (!this.exit) this.child.kill('SIGKILL');
  }
}

function parseJsonLine(line: string): Json | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Json;
  } catch {
    return undefined;
  }
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (s: string) => {
    buf += s;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}

// ── loopback clients ────────────────────────────────────────────────────────────────────────────────────────────

/** True when a TCP connect to the port succeeds (the probe is closed at once), false when it is refused. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 1_000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

async function waitAccepting(serve: Serve, port: number, withinMs = STEP_MS): Promise<void> {
  await until(`port ${port} to accept`, withinMs, async () => {
    serve.alive();
    return (await accepts(port)) ? true : undefined;
  }, 50);
}

async function waitRefusing(port: number, withinMs = STEP_MS): Promise<void> {
  await until(`port ${port} to refuse`, withinMs, async () => ((await accepts(port)) ? undefined : true), 50);
}

/** A client connection through the proxy to the echo origin. */
class Client {
  readonly socket: net.Socket;
  rx = '';
  ended = false;
  closed = false;
  readonly closedP: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (s: string) => (this.rx += s));
    socket.on('end', () => (this.ended = true));
    socket.on('error', () => {});
    this.closedP = new Promise((r) =>
      socket.on('close', () => {
        this.closed = true;
        r();
      }),
    );
  }

  static open(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: HOST, port, allowHalfOpen: true });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${port} timed out`));
      }, STEP_MS);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(new Client(s));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  /** Writes `text` and waits until exactly it comes back. */
  async echo(text: string, withinMs = STEP_MS): Promise<void> {
    const start = this.rx.length;
    this.socket.write(text);
    await until(`echo of "${text}"`, withinMs, () => {
      if (this.closed) throw new Error(`connection closed before the echo of "${text}"`);
      return this.rx.length >= start + text.length ? true : undefined;
    });
    assert.equal(this.rx.slice(start), text);
  }

  /** Half-closes and waits for the proxy to finish the connection (the echo origin answers our FIN with its own). */
  async close(withinMs = STEP_MS): Promise<void> {
    this.socket.end();
    await until('the connection to close', withinMs, () => (this.closed ? true : undefined));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ── configs ─────────────────────────────────────────────────────────────────────────────────────────────────────

interface ServeConfig {
  readonly originPort: number;
  readonly apps: ReadonlyArray<{ id: string; port: number }>;
  readonly drainMs: number;
}

function serveYaml(c: ServeConfig): string {
  return YAML.stringify({
    node: { id: 'cli-test' },
    edge: { addresses: [HOST], drain_timeout_ms: c.drainMs },
    log: { level: 'info', events: 'stdout' },
    origins: [{ name: 'echo', listen: `tcp://${HOST}:${c.originPort}`, behaviour: 'echo' }],
    apps: c.apps.map((a) => ({
      id: a.id,
      protocol: `tcp/${a.port}`,
      dns: { name: `${a.id}.example.test` },
      origin_direct: [`tcp://${HOST}:${c.originPort}`],
    })),
  });
}

/** Starts `refract serve` on `file` and waits until every app port accepts. */
async function startServe(file: string, ports: readonly number[], extra: readonly string[] = []): Promise<Serve> {
  const serve = new Serve(file, extra);
  try {
    for (const p of ports) await waitAccepting(serve, p, START_MS);
  } catch (e) {
    serve.kill();
    throw e;
  }
  return serve;
}

// ── validate ────────────────────────────────────────────────────────────────────────────────────────────────────

void describe('refract validate', () => {
  void it('exits 0 for a valid file and prints nothing on stderr', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'good.yaml');
      writeFileSync(
        file,
        [
          'edge: { addresses: [127.0.0.1], drain_timeout_ms: 1000 }',
          'origins:',
          '  - { name: echo, listen: "tcp://127.0.0.1:7745-7746", behaviour: echo }',
          'apps:',
          '  - protocol: tcp/7720-7721',
          '    dns: { name: range.example.test }',
          '    origin_direct: ["tcp://127.0.0.1:7745-7746"]',
          '    proxy_protocol: v2',
          '',
        ].join('\n'),
      );
      const r = await runCli(['validate', file]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(r.stderr, '');
      assert.deepEqual(problems(r.stdout), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('exits 1 and prints every problem of an invalid file with its code and JSON pointer', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'bad.yaml');
      writeFileSync(
        file,
        [
          'apps:',
          '  - protocol: tcp/7720-7724', // 5 edge ports, 3 origin ports
          '    dns: { name: a.example.test }',
          '    origin_direct: ["tcp://127.0.0.1:7745-7747"]',
          '  - protocol: tcp/0',
          '    dns: { name: b.example.test }',
          '    origin_direct: ["tcp://127.0.0.1:7745"]',
          '  - protocol: tcp/7730',
          '    dns: { name: c.example.test }',
          '    origin_direct: ["udp://127.0.0.1:7745"]',
          '',
        ].join('\n'),
      );
      const r = await runCli(['validate', file]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(problems(r.stdout), [
        '/apps/0/origin_direct/0 E_CONFIG_PORT_RANGE_MISMATCH',
        '/apps/1/protocol E_CONFIG_PORT_ZERO',
        '/apps/2/origin_direct/0 E_CONFIG_PROTOCOL_MISMATCH',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('reports a YAML syntax error as E_CONFIG_PARSE and exits 1', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'broken.yaml');
      writeFileSync(file, 'apps: [\n  - protocol: tcp/7720\n');
      const r = await runCli(['validate', file]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(problems(r.stdout), ['/ E_CONFIG_PARSE']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('reports a missing file as E_CONFIG_READ and exits 1', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    try {
      const r = await runCli(['validate', join(dir, 'absent.yaml')]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(problems(r.stdout), ['/ E_CONFIG_READ']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('accepts the shipped example examples/refract.yaml', { timeout: TEST_MS }, async () => {
    const r = await runCli(['validate', 'examples/refract.yaml']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
});

// ── serve ───────────────────────────────────────────────────────────────────────────────────────────────────────

void describe('refract serve', () => {
  void it('proxies bytes to a builtin echo origin and writes connect/disconnect events as JSON lines on stdout', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    let serve: Serve | undefined;
    let client: Client | undefined;
    try {
      const file = join(dir, 'refract.yaml');
      writeFileSync(file, serveYaml({ originPort: 7740, apps: [{ id: 'echo-app', port: 7700 }], drainMs: 1_000 }));
      serve = await startServe(file, [7700]);
      client = await Client.open(7700);
      await client.echo('hello through refract\n');
      await client.echo('second line\n');
      const port = client.localPort;
      await client.close();

      const closing = await serve.closing(port);
      const connect = serve.events.find((e) => e['ClientPort'] === port && e['Event'] === 'connect');
      assert.ok(connect, 'a connect event for the client');
      assert.equal(connect['Status'], 0);
      assert.equal(connect['Application'], 'echo-app');
      assert.equal(connect['EdgePort'], 7700);
      assert.ok(serve.events.indexOf(connect) < serve.events.indexOf(closing), 'connect comes before the closing event');
      assert.equal(closing['Event'], 'disconnect');
      assert.equal(closing['Status'], 200);
      assert.equal(closing['CloseReason'], 'normal');
      assert.equal(closing['OriginPort'], 7740);
      const sent = 'hello through refract\nsecond line\n'.length;
      assert.equal(closing['ClientBytes'], sent);
      assert.equal(closing['OriginBytes'], sent);
      assert.equal(serve.stdoutOther, '', 'stdout carries only JSON event lines');

      serve.child.kill('SIGTERM');
      assert.deepEqual(await serve.stopped(STEP_MS), { code: 0, signal: null });
    } finally {
      client?.destroy();
      serve?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * One reload story, driven by writing the file in place (the watcher), by a Kubernetes-style swap (the file is
   * reached through a directory symlink that is replaced atomically; the watcher follows it), or by SIGHUP (the
   * same swap, with `--no-watch`, so only the signal can cause the reload).
   */
  async function reloadStory(trigger: 'file' | 'swap' | 'SIGHUP', p: { a: number; b: number; c: number; origin: number }): Promise<void> {
    const dir = tempDir();
    let serve: Serve | undefined;
    const clients: Client[] = [];
    try {
      let file: string;
      let version = 0;
      let write: (text: string) => void;
      if (trigger === 'file') {
        file = join(dir, 'refract.yaml');
        write = (text) => writeFileSync(file, text);
      } else {
        file = join(dir, 'conf', 'refract.yaml');
        write = (text) => {
          const v = `v${++version}`;
          mkdirSync(join(dir, v));
          writeFileSync(join(dir, v, 'refract.yaml'), text);
          symlinkSync(v, join(dir, 'conf.next'));
          renameSync(join(dir, 'conf.next'), join(dir, 'conf'));
        };
      }
      const reload = (text: string): void => {
        write(text);
        if (trigger === 'SIGHUP') serve!.child.kill('SIGHUP');
      };
      const drainMs = 600_000; // removed apps' connections must end by themselves here, never at the deadline
      write(serveYaml({ originPort: p.origin, apps: [{ id: 'a', port: p.a }, { id: 'b', port: p.b }], drainMs }));
      serve = await startServe(file, [p.a, p.b], trigger === 'SIGHUP' ? ['--no-watch'] : []);

      const ca = await Client.open(p.a);
      const cb = await Client.open(p.b);
      clients.push(ca, cb);
      await ca.echo('a before\n');
      await cb.echo('b before\n');

      // Add c, remove b, keep a unchanged.
      let mark = serve.logs.length;
      reload(serveYaml({ originPort: p.origin, apps: [{ id: 'a', port: p.a }, { id: 'c', port: p.c }], drainMs }));
      const applied = await serve.log('config.applied', mark);
      assert.deepEqual({ added: applied['added'], removed: applied['removed'], unchanged: applied['unchanged'] }, { added: ['c'], removed: ['b'], unchanged: ['a'] });
      assert.equal((await serve.log('config.reload', mark))['trigger'], trigger === 'SIGHUP' ? 'SIGHUP' : 'file change');

      await waitAccepting(serve, p.c);
      const cc = await Client.open(p.c);
      clients.push(cc);
      await cc.echo('c is new\n');
      await cc.close();

      await ca.echo('a after the reload\n');

      await waitRefusing(p.b);
      await cb.echo('b still draining\n');
      const bPort = cb.localPort;
      await cb.close();
      const bClosed = await serve.closing(bPort);
      assert.equal(bClosed['Status'], 200);
      assert.equal(bClosed['CloseReason'], 'normal', 'the removed app’s connection ended by itself, not at the drain deadline');

      // An invalid file is rejected whole; the running apps keep serving.
      mark = serve.logs.length;
      const expected = trigger === 'file' ? 'E_CONFIG_PORT_ZERO' : 'E_CONFIG_PARSE';
      reload(
        trigger === 'file'
          ? serveYaml({ originPort: p.origin, apps: [{ id: 'a', port: p.a }, { id: 'z', port: 0 }], drainMs })
          : 'apps: [\n  - protocol: tcp/1\n',
      );
      const rejected = await serve.log('config.rejected', mark);
      const codes = ((rejected['issues'] ?? []) as Json[]).map((i) => i['code']);
      assert.ok(codes.includes(expected), `config.rejected names ${expected}; got ${JSON.stringify(codes)}`);
      await sleep(300); // past the reload debounce: nothing else may follow the rejection
      assert.equal(serve.logs.slice(mark).filter((l) => l['event'] === 'config.applied').length, 0);

      await ca.echo('a after the rejected file\n');
      for (const port of [p.a, p.c]) {
        const c = await Client.open(port);
        clients.push(c);
        await c.echo(`new connection on ${port}\n`);
        await c.close();
      }
      assert.equal(await accepts(p.b), false, 'the removed app stays removed');
      await ca.close();

      serve.child.kill('SIGTERM');
      assert.deepEqual(await serve.stopped(STEP_MS), { code: 0, signal: null });
    } finally {
      for (const c of clients) c.destroy();
      serve?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  void it('reloads when the file changes: adds and removes apps, keeps and drains connections, rejects an invalid file', { timeout: TEST_MS }, () =>
    reloadStory('file', { a: 7701, b: 7702, c: 7703, origin: 7741 }),
  );

  void it('reloads on SIGHUP: adds and removes apps, keeps and drains connections, rejects an invalid file', { timeout: TEST_MS }, () =>
    reloadStory('SIGHUP', { a: 7704, b: 7705, c: 7706, origin: 7742 }),
  );

  void it('reloads when a directory symlink over the file is swapped (Kubernetes ConfigMap style), every time', { timeout: TEST_MS }, () =>
    reloadStory('swap', { a: 7712, b: 7713, c: 7714, origin: 7748 }),
  );

  void it('says which changed settings need a restart (geo, edge.tls.data_dir) and keeps serving', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    let serve: Serve | undefined;
    try {
      const file = join(dir, 'refract.yaml');
      const base = YAML.parse(serveYaml({ originPort: 7739, apps: [{ id: 'a', port: 7715 }], drainMs: 1_000 })) as Record<string, Record<string, unknown>>;
      writeFileSync(file, YAML.stringify(base));
      serve = await startServe(file, [7715]);
      const mark = serve.logs.length;
      writeFileSync(file, YAML.stringify({ ...base, edge: { ...base['edge'], tls: { data_dir: join(dir, 'elsewhere') } } }));
      const warned = await serve.log('config.restart_needed', mark);
      assert.deepEqual(warned['fields'], ['edge.tls.data_dir']);
      const c = await Client.open(7715);
      await c.echo('still serving\n');
      await c.close();
      serve.child.kill('SIGTERM');
      assert.deepEqual(await serve.stopped(STEP_MS), { code: 0, signal: null });
    } finally {
      serve?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('keeps following the file after an editor saves it by renaming a new file over it', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    let serve: Serve | undefined;
    try {
      const file = join(dir, 'refract.yaml');
      const save = (text: string): void => {
        writeFileSync(`${file}.tmp`, text);
        renameSync(`${file}.tmp`, file);
      };
      const apps = [{ id: 'a', port: 7709 }];
      save(serveYaml({ originPort: 7743, apps, drainMs: 1_000 }));
      serve = await startServe(file, [7709]);
      for (const [id, port] of [['b', 7710], ['c', 7711]] as const) {
        apps.push({ id, port });
        const mark = serve.logs.length;
        save(serveYaml({ originPort: 7743, apps, drainMs: 1_000 }));
        // A rename may land while the watcher re-arms on the new inode; the 2 s stat poll then sees it. Three poll
        // periods of slack for a loaded machine (a CI run with other work on both cores took over 5 s once).
        const applied = await serve.log('config.applied', mark, () => true, 3 * STEP_MS);
        assert.deepEqual(applied['added'], [id]);
        await waitAccepting(serve, port);
      }
      serve.child.kill('SIGTERM');
      assert.deepEqual(await serve.stopped(STEP_MS), { code: 0, signal: null });
    } finally {
      serve?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('on SIGTERM stops accepting, lets an open connection finish, and exits 0 as soon as it closes', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    let serve: Serve | undefined;
    let client: Client | undefined;
    try {
      const file = join(dir, 'refract.yaml');
      const drainMs = 8_000; // far enough that a prompt exit cannot be the deadline's doing
      writeFileSync(file, serveYaml({ originPort: 7744, apps: [{ id: 'a', port: 7707 }], drainMs }));
      serve = await startServe(file, [7707]);
      client = await Client.open(7707);
      await client.echo('before SIGTERM\n');

      serve.child.kill('SIGTERM');
      await waitRefusing(7707);
      await client.echo('after SIGTERM\n');
      assert.equal(serve.exit, undefined, 'still running while the connection is open');
      const port = client.localPort;
      const closedAt = Date.now();
      await client.close();
      assert.deepEqual(await serve.stopped(drainMs / 2), { code: 0, signal: null });
      assert.ok(Date.now() - closedAt < drainMs / 2, 'exited promptly after the last connection closed');
      const closing = await serve.closing(port);
      assert.equal(closing['CloseReason'], 'normal');
      assert.equal(closing['Status'], 200);
    } finally {
      client?.destroy();
      serve?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('on SIGTERM closes a connection still open at drain_timeout_ms and then exits 0', { timeout: TEST_MS }, async () => {
    const dir = tempDir();
    let serve: Serve | undefined;
    let client: Client | undefined;
    try {
      const file = join(dir, 'refract.yaml');
      const drainMs = 1_500;
      writeFileSync(file, serveYaml({ originPort: 7746, apps: [{ id: 'a', port: 7708 }], drainMs }));
      serve = await startServe(file, [7708]);
      client = await Client.open(7708);
      await client.echo('before SIGTERM\n');
      const port = client.localPort;

      const signalledAt = Date.now();
      serve.child.kill('SIGTERM');
      await waitRefusing(7708);
      await client.echo('during the drain\n');
      // The client is half-open capable, so the proxy's close shows as an end of stream (FIN) first.
      await until('the proxy to close the connection', drainMs + STEP_MS, () => (client!.ended || client!.closed ? true : undefined));
      const closedAfter = Date.now() - signalledAt;
      assert.ok(closedAfter >= drainMs - 100, `closed at the deadline, not before (after ${closedAfter} ms)`);
      assert.deepEqual(await serve.stopped(STEP_MS), { code: 0, signal: null });
      const closing = await serve.closing(port);
      assert.equal(closing['CloseReason'], 'drain_deadline');
      assert.equal(closing['ErrorCode'], 'E_DRAIN_DEADLINE');
    } finally {
      client?.destroy();
      serve?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
