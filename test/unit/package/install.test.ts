/**
 * The package as an operator installs it: `npm pack` (which builds dist/ through the `prepare` script), then
 * `npm install -g --prefix TMP ./refract-*.tgz` from the npm registry, then the installed `refract` run with plain
 * node from a directory outside the checkout.
 *
 * Needs the npm registry (production dependencies are downloaded): when `npm ping` gets no answer the tests are
 * skipped and say so. Pack and install together are bounded by 480 s (better-sqlite3 is compiled from source). Ports 7380-7389 belong to this file (edge
 * 7380, its builtin echo origin 7381). The process checks read /proc, so they run on Linux only.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const INSTALL_MS = 480_000; // better-sqlite3 compiles from source on install (about 2 minutes on 2 cores)
const PING_MS = 30_000;
const START_MS = 30_000;
const EDGE_PORT = 7380;
const ORIGIN_PORT = 7381;
/** Packages that would mean a TypeScript toolchain or loader ships in the installed tree. */
const TS_TOOLING = ['tsx', 'typescript', 'esbuild', 'ts-node', '@swc/core', '@esbuild-kit/esm-loader'];

/**
 * The environment for npm and the installed CLI: this test's node first on PATH (the bin's `#!/usr/bin/env node`
 * finds it), no NODE_OPTIONS/NODE_PATH (no loader or module path may sneak in), and none of the settings the npm
 * running `npm test` exports for its own project.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_(lifecycle|package)_|npm_config_(prefix|global|local_prefix|global_prefix)$|NODE_OPTIONS$|NODE_PATH$)/i.test(k)) continue;
    env[k] = v;
  }
  env['PATH'] = [dirname(process.execPath), process.env['PATH'] ?? ''].join(delimiter);
  return env;
}

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs a command to completion; killed (code null, signal SIGKILL) after `withinMs`. */
function run(cmd: string, args: readonly string[], opts: { cwd: string; withinMs: number }): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.withinMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

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

/** Every package directory in a node_modules tree (scoped ones as `@scope/name`), nested ones included. */
function packagesUnder(nodeModules: string, out: { name: string; dir: string }[] = []): { name: string; dir: string }[] {
  if (!existsSync(nodeModules)) return out;
  for (const e of readdirSync(nodeModules, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const dirs = e.name.startsWith('@')
      ? readdirSync(join(nodeModules, e.name), { withFileTypes: true }).filter((s) => s.isDirectory()).map((s) => ({ name: `${e.name}/${s.name}`, dir: join(nodeModules, e.name, s.name) }))
      : [{ name: e.name, dir: join(nodeModules, e.name) }];
    for (const d of dirs) {
      out.push(d);
      packagesUnder(join(d.dir, 'node_modules'), out);
    }
  }
  return out;
}

/** The PIDs whose parent is `pid`: from /proc/PID/task/TID/children where the kernel has it, and from every /proc/N/stat. */
function childrenOf(pid: number): number[] {
  const kids = new Set<number>();
  const tasks = join('/proc', String(pid), 'task');
  for (const tid of readdirSync(tasks)) {
    const f = join(tasks, tid, 'children');
    if (existsSync(f)) for (const k of readFileSync(f, 'utf8').trim().split(/\s+/).filter(Boolean)) kids.add(Number(k));
  }
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    let stat: string;
    try {
      stat = readFileSync(join('/proc', n, 'stat'), 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid …; comm may hold spaces and parentheses, so parse after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) kids.add(Number(n));
  }
  return [...kids];
}

interface Installed {
  readonly dir: string;
  readonly prefix: string;
  /** `<prefix>/bin/refract`, the command npm put on the PATH. */
  readonly bin: string;
  /** `<prefix>/lib/node_modules/refract`, the installed package. */
  readonly pkg: string;
}

/** Packs and installs once for every test of this file: an Installed, or why the tests are skipped. */
let setup: Promise<Installed | { skip: string }> | undefined;
let work: string | undefined;

function install(diag: (msg: string) => void): Promise<Installed | { skip: string }> {
  setup ??= (async () => {
    const ping = await run('npm', ['ping'], { cwd: ROOT, withinMs: PING_MS });
    if (ping.code !== 0) {
      const why = (ping.stderr.split('\n').find((l) => /ERR|error/i.test(l)) ?? `npm ping: ${ping.signal ?? `exit ${String(ping.code)}`}`).trim();
      return { skip: `the npm registry is unreachable (${why}); installing the tarball needs its production dependencies` };
    }
    const dir = mkdtempSync(join(tmpdir(), 'refract-pkg-'));
    work = dir;
    const deadline = Date.now() + INSTALL_MS;
    const pack = await run('npm', ['pack', '--pack-destination', dir, '--json'], { cwd: ROOT, withinMs: INSTALL_MS });
    assert.equal(pack.code, 0, `npm pack failed (${pack.signal ?? pack.code})\n${pack.stderr}`);
    const tgz = (JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string }[])[0]!.filename;
    diag(`npm pack (builds dist/ through prepare): ${pack.ms} ms → ${tgz}`);
    const prefix = join(dir, 'prefix');
    const inst = await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', join(dir, basename(tgz))], {
      cwd: dir,
      withinMs: Math.max(1_000, deadline - Date.now()),
    });
    assert.equal(inst.code, 0, `npm install -g --prefix failed or took longer than ${INSTALL_MS} ms with pack (${inst.signal ?? inst.code})\n${inst.stderr}`);
    diag(`npm install -g --prefix TMP ./${basename(tgz)}: ${inst.ms} ms`);
    return { dir, prefix, bin: join(prefix, 'bin', 'refract'), pkg: join(prefix, 'lib', 'node_modules', 'refract') };
  })();
  return setup;
}

describe('the installed package (npm pack, npm install -g --prefix)', { timeout: INSTALL_MS + 120_000 }, () => {
  let installed: Installed | undefined;
  let skip: string | undefined;
  const timings: string[] = [];

  before(async () => {
    const r = await install((m) => timings.push(m));
    if ('skip' in r) skip = r.skip;
    else installed = r;
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships the compiled CLI and no TypeScript: dist/cli.js, no src/, no tsx/typescript/esbuild in its dependency tree', (t) => {
    if (skip) return t.skip(skip);
    for (const m of timings) t.diagnostic(m);
    const { pkg } = installed!;
    assert.ok(existsSync(join(pkg, 'dist', 'cli.js')), 'dist/cli.js is in the package');
    assert.ok(!existsSync(join(pkg, 'src')), 'src/ is not shipped');
    const ts = readdirSync(pkg, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('node_modules'));
    assert.deepEqual(ts, [], 'no TypeScript source in the package');
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const name of TS_TOOLING) assert.ok(!(name in (manifest.dependencies ?? {})), `${name} is not a production dependency`);
    const tooling = packagesUnder(join(pkg, 'node_modules')).filter((p) => TS_TOOLING.includes(p.name) || p.name.startsWith('@esbuild/'));
    assert.deepEqual(tooling.map((p) => p.name), [], 'no TypeScript loader or compiler installed with the package');
    assert.ok(!existsSync(join(installed!.prefix, 'lib', 'node_modules', 'tsx')), 'no tsx beside it either');
  });

  it('`refract validate` on a copy of examples/refract.yaml exits 0', async (t) => {
    if (skip) return t.skip(skip);
    const cfg = join(installed!.dir, 'refract.yaml');
    copyFileSync(join(ROOT, 'examples', 'refract.yaml'), cfg);
    const r = await run(installed!.bin, ['validate', cfg], { cwd: installed!.dir, withinMs: START_MS });
    assert.equal(r.code, 0, `exit ${String(r.code)} ${r.signal ?? ''}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /OK \(3 apps/);
  });

  it('`refract serve` is one node process running the bin, proxies, and exits 0 on SIGTERM', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
    if (skip) return t.skip(skip);
    const { dir, bin, pkg } = installed!;
    const cfg = join(dir, 'serve.yaml');
    writeFileSync(
      cfg,
      [
        'edge:',
        '  addresses: [127.0.0.1]',
        '  drain_timeout_ms: 1000',
        'log: { level: info, events: stdout }',
        'origins:',
        `  - { name: echo, listen: "tcp://127.0.0.1:${ORIGIN_PORT}", behaviour: echo }`,
        'apps:',
        `  - protocol: tcp/${EDGE_PORT}`,
        '    dns: { type: CNAME, name: pkg.example.test }',
        `    origin_direct: ["tcp://127.0.0.1:${ORIGIN_PORT}"]`,
        '',
      ].join('\n'),
    );
    const child: ChildProcess = spawn(bin, ['serve', '--config', cfg, '--no-watch'], { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdout!.resume();
    const exited = new Promise<void>((r) => child.on('exit', (code, signal) => ((exit = { code, signal }), r())));
    try {
      await until('refract serve to listen', START_MS, () => {
        if (exit) throw new Error(`refract serve exited early (${JSON.stringify(exit)})\n${stderr}`);
        return stderr.includes(`tcp/${EDGE_PORT}`) ? true : undefined;
      });
      const pid = child.pid!;

      // One process: no wrapper, supervisor or fork between the operator's signal and the proxy.
      assert.deepEqual(childrenOf(pid), [], `refract serve (pid ${pid}) has no child processes`);
      // …and it is node running the installed bin, with no loader flags (--import/--loader/--require). That no
      // TypeScript loader can be registered from inside is the first test's part: none is installed.
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      assert.match(basename(argv[0]!), /^node(\d+)?$/, `argv[0] is node: ${argv.join(' ')}`);
      assert.equal(realpathSync(argv[1]!), realpathSync(join(pkg, 'bin', 'refract.js')), `argv[1] is the installed bin: ${argv.join(' ')}`);
      assert.deepEqual(argv.slice(2), ['serve', '--config', cfg, '--no-watch']);
      assert.match(basename(realpathSync(`/proc/${pid}/exe`)), /^node/, 'the executable is node');

      // It proxies: a line through the edge comes back from the echo origin.
      const echoed = await new Promise<string>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: EDGE_PORT }, () => s.end('hello refract\n'));
        let got = '';
        s.setEncoding('utf8').on('data', (d: string) => (got += d));
        s.on('close', () => resolve(got));
        s.on('error', reject);
        s.setTimeout(10_000, () => s.destroy(new Error('no echo within 10 s')));
      });
      assert.equal(echoed, 'hello refract\n');

      child.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
      assert.deepEqual(exit, { code: 0, signal: null }, `SIGTERM drains and exits 0\n${stderr}`);
    } finally {
      if (!exit) child.kill('SIGKILL');
    }
  });
});
