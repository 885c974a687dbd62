/**
 * Instructions per proxied TCP connection, counted by valgrind (docs/benchmarks.md, "Below net.Socket"): a figure
 * that a busy machine does not move, for before/after decisions where `npm run bench`'s CPU-per-connection rows are
 * too noisy.
 *
 *   node --import tsx bench/micro/tcp-instructions.ts [--proxies node-pipe,node-raw,refract] [--count 1000] [--port 8905] [--keep DIR]
 *
 * Each proxy runs under `valgrind --tool=cachegrind --cache-sim=no` twice, serving `--count` and then 2 × `--count`
 * connections (after the same warm-up of a fifth as many), each connection as in `npm run bench`'s cps run: connect,
 * write 64 B, read the 64 B echo, close; 50 at a time. Instructions per connection = (I refs of the second run − I
 * refs of the first) ÷ `--count`, so start-up, warm-up and shutdown cancel. The origin is an echo server in this
 * process. Proxies: `node-pipe` (bench/naive-proxy.ts), `node-raw` (bench/raw-proxy.ts), `refract` (this checkout's
 * build, dist/cli.js, made first when stale; one `tcp/PORT` app, the default access log to a pipe, as in the bench),
 * `refract-tsx` (the same from src/ through tsx). A first, discarded run fills tsx's compile cache where tsx is used.
 * Counts exclude kernel work (system calls run in the kernel): they measure the proxy's user-space code.
 * `--keep DIR` keeps valgrind's output files there (`cg.PROXY.N`), for `cg_annotate` function by function.
 * Bounded: every run is killed after 600 s.
 */
import net from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../proxies.ts';
import { ensureBuild, refractCli } from '../refract-cli.ts';

const KNOWN = ['node-pipe', 'node-raw', 'refract', 'refract-tsx'] as const;
type Proxy = (typeof KNOWN)[number];
const { values: argv } = parseArgs({ options: { proxies: { type: 'string', default: 'node-pipe,node-raw,refract' }, count: { type: 'string', default: '1000' }, port: { type: 'string', default: '8905' }, keep: { type: 'string' } } });
const proxies = argv.proxies.split(',').map((s) => s.trim()) as Proxy[];
for (const p of proxies) if (!KNOWN.includes(p)) throw new Error(`unknown proxy ${p}; choose from ${KNOWN.join(', ')}`);
const COUNT = Number(argv.count);
const PORT = Number(argv.port);
const HOST = '127.0.0.1';
const RUN_LIMIT_MS = 600_000;

const origin = net.createServer({ noDelay: true }, (c) => c.pipe(c)).listen(0, HOST);
await new Promise((r) => origin.once('listening', r));
const originPort = (origin.address() as net.AddressInfo).port;
const dir = mkdtempSync(join(tmpdir(), 'refract-tcp-instr-'));

function command(p: Proxy): string[] {
  if (p === 'node-pipe' || p === 'node-raw') return ['--import', 'tsx', join(REPO_ROOT, p === 'node-pipe' ? 'bench/naive-proxy.ts' : 'bench/raw-proxy.ts'), `${PORT}=${originPort}`];
  const cfg = join(dir, 'refract.yaml');
  writeFileSync(cfg, ['edge: { addresses: [127.0.0.1] }', 'log: { level: warn }', 'apps:', `  - protocol: tcp/${PORT}`, '    dns: { type: CNAME, name: bench.example.test }', `    origin_direct: ["tcp://${HOST}:${originPort}"]`, ''].join('\n'));
  return [...refractCli(REPO_ROOT, p === 'refract' ? 'build' : 'tsx'), 'serve', '--config', cfg, '--no-watch'];
}

/** One connection as the bench's cps run makes it. */
function once(): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: PORT, host: HOST, noDelay: true });
    let got = 0;
    s.setTimeout(60_000, () => s.destroy(new Error('timeout')));
    s.on('connect', () => s.write(Buffer.alloc(64, 7)));
    s.on('data', (d) => {
      got += d.length;
      if (got >= 64) s.end();
    });
    s.on('close', () => (got >= 64 ? resolve() : reject(new Error(`short echo: ${got} B`))));
    s.on('error', reject);
  });
}

async function load(n: number): Promise<void> {
  let left = n;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (left > 0) {
        left--;
        await once();
      }
    }),
  );
}

async function waitListening(): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = net.connect(PORT, HOST);
      s.on('connect', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (up) return;
    await sleep(250);
  }
  throw new Error('the proxy did not listen within 300 s');
}

/** Instructions (I refs) of one proxy process serving a warm-up and `n` connections. */
async function instructions(p: Proxy, n: number): Promise<number> {
  const out = join(argv.keep ?? dir, argv.keep !== undefined ? `cg.${p}.${n}` : `cg.${p}.${n}.${Date.now()}`);
  const child = spawn('valgrind', ['--tool=cachegrind', '--cache-sim=no', `--cachegrind-out-file=${out}`, process.execPath, ...command(p)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stdout.resume();
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const kill = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  try {
    await waitListening();
    await load(Math.ceil(COUNT / 5));
    await load(n);
  } finally {
    child.kill('SIGTERM');
    await exited;
    clearTimeout(kill);
  }
  const m = /I\s+refs:\s+([\d,]+)/.exec(err);
  if (m === null) throw new Error(`no I refs from valgrind for ${p}:\n${err.slice(-2_000)}`);
  return Number(m[1]!.replace(/,/g, ''));
}

if (proxies.includes('refract')) ensureBuild(REPO_ROOT);
if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind is not installed (apt-get install -y valgrind)');
const rows: string[] = [];
for (const p of proxies) {
  if (p !== 'refract') await instructions(p, 10); // fills tsx's compile cache
  const a = await instructions(p, COUNT);
  const b = await instructions(p, 2 * COUNT);
  const per = (b - a) / COUNT;
  rows.push(`| ${p} | ${a.toLocaleString('en-US')} | ${b.toLocaleString('en-US')} | ${Math.round(per).toLocaleString('en-US')} |`);
  process.stderr.write(`${p}: ${Math.round(per).toLocaleString('en-US')} instructions per connection\n`);
}
process.stdout.write(`| proxy | I refs, ${COUNT} connections | I refs, ${2 * COUNT} connections | instructions per connection |\n|---|---|---|---|\n${rows.join('\n')}\n`);
origin.close();
rmSync(dir, { recursive: true, force: true });
