/**
 * Instructions per proxied TCP connection, counted by valgrind (docs/benchmarks.md, "Below net.Socket"): a figure
 * that a busy machine does not move, for before/after decisions where `npm run bench`'s CPU-per-connection rows are
 * too noisy.
 *
 *   node --import tsx bench/micro/tcp-instructions.ts [--proxies node-pipe,node-raw,refract] [--count 1000] [--port 8905] [--keep DIR] [--node-flags=--single-threaded]
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
 * `--node-flags=...` gives every proxy's Node those flags (space-separated), e.g. `--single-threaded`.
 * The total moves between runs of one build, because where V8's compiler and GC work lands depends on timing: two
 * runs of the same build counted 184,491 and 72,512 instructions per connection at `--count 6000`, and 162,308 and
 * 145,542 with `--single-threaded` at `--count 3000`. For a before/after, compare the functions other than V8's
 * compiler and GC (`--keep`, then `bench/micro/cg-groups.ts`), which agree between runs.
 * Bounded: every run is killed after 600 s.
 */
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../proxies.ts';
import { ensureBuild, refractCli } from '../refract-cli.ts';
import { assertValgrind, instructions, perUnitTable } from './valgrind-count.ts';

const KNOWN = ['node-pipe', 'node-raw', 'refract', 'refract-tsx'] as const;
type Proxy = (typeof KNOWN)[number];
const { values: argv } = parseArgs({ options: { proxies: { type: 'string', default: 'node-pipe,node-raw,refract' }, count: { type: 'string', default: '1000' }, port: { type: 'string', default: '8905' }, keep: { type: 'string' }, 'node-flags': { type: 'string', default: '' } } });
const NODE_FLAGS = argv['node-flags'].split(' ').filter((f) => f !== '');
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
  return [...NODE_FLAGS, ...proxyArgs(p)];
}

function proxyArgs(p: Proxy): string[] {
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

/** Instructions of one proxy process serving the warm-up and `n` connections. */
function count(p: Proxy, n: number): Promise<number> {
  return instructions({ name: p, args: command(p), host: HOST, port: PORT, warm: Math.ceil(COUNT / 5), count: n, concurrency: 50, once, keep: argv.keep, scratch: dir, limitMs: RUN_LIMIT_MS });
}

if (proxies.includes('refract')) ensureBuild(REPO_ROOT);
assertValgrind();
await perUnitTable(proxies, count, COUNT, 2 * COUNT, 'connection', (p) => (p !== 'refract' ? count(p, 10) : Promise.resolve())); // fills tsx's compile cache
origin.close();
rmSync(dir, { recursive: true, force: true });
