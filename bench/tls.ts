/**
 * `npm run bench:tls`: Refract's edge TLS against nginx stream `ssl` termination, side by side on loopback.
 *
 *   node --import tsx bench/tls.ts             3 rounds (about 9 minutes)
 *   node --import tsx bench/tls.ts --quick     1 short round, a smoke run (about 2 minutes)
 *   node --import tsx bench/tls.ts --rounds 5 --keys ecdsa --only handshakes
 *   node --import tsx bench/tls.ts --profile   also writes a --cpu-prof of Refract per round (bench/results/)
 *   node --import tsx bench/tls.ts --cpu-quota 30   every proxy under a 30 %-of-a-core CFS quota: rates at saturation
 *
 * Proxies: nginx, Refract, and node-tls (bare node:tls piped to the origin: the floor for a Node proxy). What is
 * measured, per round, proxies interleaved (the order rotates each round):
 * - **handshakes**: new TLS connections per second at a `flexible` app (nginx: `listen … ssl` + `proxy_pass` to a
 *   plain origin), for TLS 1.3 and TLS 1.2, with an ECDSA P-256 and an RSA 2048 certificate. The load is
 *   `openssl s_time -new -www /` × CLIENTS processes: each connection is a full handshake (no resumption), one
 *   request through the proxy to the origin, its answer, and the close. Also the proxy's CPU per connection
 *   (from /proc), which stays meaningful when the load core, not the proxy, is the limit.
 * - **throughput**: bulk bytes through `full` (client → proxy TLS → origin TLS; nginx: `proxy_ssl on`), MB/s and the
 *   proxy's CPU ms per GB.
 *
 * Both proxies get the same certificate and key files, the same versions (1.1–1.3), Spectrum's edge cipher list
 * (EDGE_CIPHERS, server preference, `@SECLEVEL=0` as Refract sets it for TLS 1.1) on the client side and Spectrum's
 * origin table (originClientCiphers) on the origin side, without origin session reuse (Refract has none). A probe
 * with `openssl s_client` checks that both negotiate the same version and cipher before any figure is taken.
 *
 * Layout as in bench/run.ts: the proxy (one worker) pinned to CPU 0; the load, the origins and this harness on CPU 1.
 * Ports (docs/benchmarks.md): Refract 7140 (flexible, ECDSA), 7141 (flexible, RSA), 7142 (full); nginx 7150, 7151,
 * 7152; node-tls 7170, 7171, 7172; origins 7160 (plain, answers one request and closes), 7161 (TLS sink). Every
 * loop is bounded in count and time, and a hard timeout kills every child process group.
 *
 * The load core saturates before any proxy does here (s_time's client half of a handshake costs about what the
 * server half does): rates are floors, and the proxy CPU per handshake is the comparison (docs/benchmarks.md, TLS).
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, cpus, release } from 'node:os';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  assertPortsFree, canPin, cpuCoreTicks, cpuSeconds, killAllSync, minorFaults, nginxWorker, pinPid, spawnChild, StartError, stopChild, waitForPorts, type Child,
} from './proc.ts';
import { NGINX_STREAM_MODULE, REPO_ROOT } from './proxies.ts';
import { ensureBuild, refractCli } from './refract-cli.ts';
import { fmt, fmtRatio, markdownTable, median, medianRatio } from './stats.ts';
import { issueCert, type KeyType } from '../src/net/node/x509.ts';
import { EDGE_CIPHERS, originClientCiphers } from '../src/core/tls-ciphers.ts';

// ---------------------------------------------------------------------------------------------- plan and flags

type ProxyName = 'nginx' | 'refract' | 'node-tls';
const PROXY_NAMES: readonly ProxyName[] = ['nginx', 'refract', 'node-tls'];
type Version = 'TLSv1.3' | 'TLSv1.2';
type Measure = 'handshakes' | 'throughput';
const PROXY_CPU = 0;
const LOAD_CPU = 1;
const MiB = 1024 * 1024;

const PORTS = {
  refract: { ecdsa: 7140, rsa: 7141, full: 7142 },
  nginx: { ecdsa: 7150, rsa: 7151, full: 7152 },
  'node-tls': { ecdsa: 7170, rsa: 7171, full: 7172 },
  originPlain: 7160,
  originTls: 7161,
} as const;

interface Plan {
  readonly rounds: number;
  /** s_time processes in parallel (each runs its connections one after the other), seconds measured and warm-up. */
  readonly handshakes: { readonly clients: number; readonly seconds: number; readonly warmSeconds: number };
  readonly throughput: { readonly totalBytes: number; readonly conns: number; readonly warmBytes: number; readonly maxMs: number };
  readonly quietMaxMs: number;
  readonly hardTimeoutMs: number;
}
const FULL: Plan = {
  rounds: 3,
  handshakes: { clients: 8, seconds: 5, warmSeconds: 1 },
  throughput: { totalBytes: 1024 * MiB, conns: 4, warmBytes: 64 * MiB, maxMs: 60_000 },
  quietMaxMs: 4_000,
  hardTimeoutMs: 20 * 60_000,
};
const QUICK: Plan = {
  rounds: 1,
  handshakes: { clients: 8, seconds: 2, warmSeconds: 1 },
  throughput: { totalBytes: 256 * MiB, conns: 4, warmBytes: 32 * MiB, maxMs: 20_000 },
  quietMaxMs: 2_000,
  hardTimeoutMs: 4 * 60_000,
};

const { values: argv } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    keys: { type: 'string' },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
    proxies: { type: 'string' },
    'cpu-quota': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (argv.help) {
  process.stdout.write(
    'usage: node --import tsx bench/tls.ts [--quick] [--rounds N] [--keys ecdsa,rsa] [--only handshakes,throughput] [--proxies nginx,refract,node-tls] [--profile] [--cpu-quota PCT]\n',
  );
  process.exit(0);
}
function listArg<T extends string>(raw: string | undefined, allowed: readonly T[], what: string): T[] {
  if (raw === undefined) return [...allowed];
  const items = raw.split(',').map((s) => s.trim());
  for (const i of items) {
    if (!(allowed as readonly string[]).includes(i)) {
      process.stderr.write(`unknown ${what} "${i}"; choose from ${allowed.join(', ')}\n`);
      process.exit(2);
    }
  }
  return allowed.filter((a) => items.includes(a));
}
const keyTypes = listArg<KeyType>(argv.keys, ['ecdsa', 'rsa'], 'key type');
const measures = listArg<Measure>(argv.only, ['handshakes', 'throughput'], 'measurement');
const proxyNames = listArg<ProxyName>(argv.proxies, PROXY_NAMES, 'proxy');
const base = argv.quick ? QUICK : FULL;
const plan: Plan = argv.rounds === undefined ? base : { ...base, rounds: Math.max(1, Math.min(20, Number(argv.rounds) || 1)) };
const VERSIONS: readonly Version[] = ['TLSv1.3', 'TLSv1.2'];
/**
 * `--cpu-quota PCT`: every proxy runs under the same CFS quota (PCT % of one core, cgroup `cpu`), so the load
 * generator can saturate it and the rate column is each proxy's handshakes/s at saturation on an equal CPU budget
 * (without it, s_time saturates its own core first and only CPU per handshake compares).
 */
const cpuQuotaPct = argv['cpu-quota'] === undefined ? undefined : Number(argv['cpu-quota']);
if (cpuQuotaPct !== undefined && !(Number.isInteger(cpuQuotaPct) && cpuQuotaPct >= 5 && cpuQuotaPct <= 95)) {
  process.stderr.write('--cpu-quota takes a whole percentage of one core, 5 to 95\n');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------- CPU quota

interface QuotaGroup {
  add(pid: number): void;
  close(): void;
}

/** A cgroup (v1 `cpu` controller, or v2 with `cpu` enabled) limiting its members to `pct` % of one core. */
function quotaGroup(pct: number): QuotaGroup {
  const periodUs = 10_000; // short periods: throttling in small slices, not 100 ms stalls
  const quotaUs = Math.round((periodUs * pct) / 100);
  const v1 = '/sys/fs/cgroup/cpu';
  const name = `refract-bench-tls-${process.pid}`;
  let dir: string;
  let parentProcs: string;
  if (existsSync(join(v1, 'cpu.cfs_quota_us'))) {
    dir = join(v1, name);
    parentProcs = join(v1, 'cgroup.procs');
    mkdirSync(dir);
    writeFileSync(join(dir, 'cpu.cfs_period_us'), String(periodUs));
    writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quotaUs));
  } else if (existsSync('/sys/fs/cgroup/cgroup.controllers') && readFileSync('/sys/fs/cgroup/cgroup.subtree_control', 'utf8').includes('cpu')) {
    dir = join('/sys/fs/cgroup', name);
    parentProcs = '/sys/fs/cgroup/cgroup.procs';
    mkdirSync(dir);
    writeFileSync(join(dir, 'cpu.max'), `${quotaUs} ${periodUs}`);
  } else {
    throw new Error('--cpu-quota needs a writable cgroup cpu controller (v1 /sys/fs/cgroup/cpu, or v2 with cpu in subtree_control)');
  }
  return {
    add: (pid) => writeFileSync(join(dir, 'cgroup.procs'), String(pid)),
    close: () => {
      try {
        for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) writeFileSync(parentProcs, pid);
        rmdirSync(dir);
      } catch {
        // best effort: an empty group left behind is harmless (rmdir it by hand)
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------- lifecycle

const hardTimer = setTimeout(() => {
  process.stderr.write(`\nbench:tls: hard timeout after ${plan.hardTimeoutMs / 1000} s; killing everything\n`);
  killAllSync();
  process.exit(3);
}, plan.hardTimeoutMs);
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAllSync();
    process.exit(130);
  });
}
const pin = canPin();
const proxyCpu = pin ? PROXY_CPU : undefined;
const loadCpu = pin ? LOAD_CPU : undefined;
if (pin) pinPid(process.pid, LOAD_CPU);
const say = (s: string): void => void process.stderr.write(`${s}\n`);

const runId = `tls-${new Date().toISOString().replace(/[:.]/g, '-')}`;
const resultsDir = join(REPO_ROOT, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const resultsFile = join(resultsDir, `${runId}.jsonl`);
const record = (o: Record<string, unknown>): void => appendFileSync(resultsFile, `${JSON.stringify({ run: runId, ...o })}\n`);

function which(bin: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (d !== '' && existsSync(join(d, bin))) return join(d, bin);
  }
  return undefined;
}
const OPENSSL = which('openssl');
const NGINX = which('nginx');
if (OPENSSL === undefined) {
  say('bench:tls: openssl not installed (apt-get install -y openssl)');
  process.exit(2);
}
if (NGINX === undefined || !existsSync(NGINX_STREAM_MODULE)) {
  say('bench:tls: nginx with the stream module is needed (apt-get install -y nginx libnginx-mod-stream)');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------- certificates

interface Files {
  readonly dir: string;
  readonly edge: Record<KeyType, { cert: string; key: string }>;
  readonly origin: { cert: string; key: string };
}

/** Edge certificates (one per key type, both proxies load the same files) and the origin's (self-signed: `full`). */
async function makeCerts(dir: string): Promise<Files> {
  const write = async (name: string, keyType: KeyType, names: string[]): Promise<{ cert: string; key: string }> => {
    const pair = await issueCert({ names, keyType });
    const cert = join(dir, `${name}.pem`);
    const key = join(dir, `${name}-key.pem`);
    writeFileSync(cert, pair.cert);
    writeFileSync(key, pair.key, { mode: 0o600 });
    return { cert, key };
  };
  return {
    dir,
    edge: { ecdsa: await write('edge-ecdsa', 'ecdsa', ['bench-tls.example.test']), rsa: await write('edge-rsa', 'rsa', ['bench-tls.example.test']) },
    origin: await write('origin', 'ecdsa', ['origin.example.test']),
  };
}

// The same lists both proxies are configured with (what Refract's edge-tls.ts uses).
const EDGE_TLS12 = `${EDGE_CIPHERS.ciphers.join(':')}:@SECLEVEL=0`;
const EDGE_TLS13 = EDGE_CIPHERS.ciphersuites.join(':');
const ORIGIN_OFFER = originClientCiphers('TLSv1.1', 'TLSv1.3');
const ORIGIN_TLS12 = `${ORIGIN_OFFER.ciphers.join(':')}:@SECLEVEL=0`;
const ORIGIN_TLS13 = ORIGIN_OFFER.ciphersuites.join(':');

// ---------------------------------------------------------------------------------------------- origins (in this process, CPU 1)

interface Origins {
  close(): Promise<void>;
  /** Negotiated cipher of the origin leg, per TLS sink connection seen since the last call. */
  takeOriginCiphers(): string[];
}

/**
 * 7160: reads a request (s_time's `GET / HTTP/1.0` + blank line), answers a short fixed response and closes.
 * 7161: TLS sink: reads an 8-byte length (BE), then that many bytes, then answers the count (8 bytes) and waits
 *       for the client to close. No half-close: nginx stream closes both legs on a client FIN unless
 *       `proxy_half_close` is on, so the ack travels on an open connection.
 * The TLS sink follows the client's (the proxy's) cipher order: node:tls servers prefer their own by default.
 */
async function startOrigins(f: Files): Promise<Origins> {
  await assertPortsFree([PORTS.originPlain, PORTS.originTls]);
  const socks = new Set<net.Socket>();
  const answer = Buffer.from('HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const plain = net.createServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    let seen = '';
    s.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.includes('\r\n\r\n')) s.end(answer);
    });
    s.on('end', () => s.end());
  });
  const ciphers: string[] = [];
  const secure = tls.createServer({ cert: readPem(f.origin.cert), key: readPem(f.origin.key), honorCipherOrder: false }, (s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    ciphers.push(s.getCipher()?.name ?? '?');
    let head = Buffer.alloc(0);
    let want = -1;
    let n = 0;
    s.on('data', (d: Buffer) => {
      if (want < 0) {
        head = Buffer.concat([head, d]);
        if (head.length < 8) return;
        want = Number(head.readBigUInt64BE(0));
        n = head.length - 8;
      } else n += d.length;
      if (n >= want) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(BigInt(n));
        s.write(b);
        want = Number.POSITIVE_INFINITY; // answered once
      }
    });
  });
  plain.listen(PORTS.originPlain, '127.0.0.1');
  secure.listen(PORTS.originTls, '127.0.0.1');
  await Promise.all([once(plain, 'listening'), once(secure, 'listening')]);
  return {
    takeOriginCiphers: () => ciphers.splice(0),
    async close() {
      for (const s of socks) s.destroy();
      await Promise.all([new Promise((r) => plain.close(r)), new Promise((r) => secure.close(r))]);
    },
  };
}

const readPem = (p: string): string => readFileSync(p, 'utf8');

// ---------------------------------------------------------------------------------------------- proxies

interface Running {
  readonly name: ProxyName;
  readonly child: Child;
  /** The process whose CPU is measured: nginx's single worker, Refract's node process. */
  readonly measuredPid: number;
  stop(): Promise<void>;
}

function nginxConf(dir: string, f: Files): string {
  const ssl = (k: KeyType): string[] => [
    `    ssl_certificate ${f.edge[k].cert};`,
    `    ssl_certificate_key ${f.edge[k].key};`,
    '    ssl_protocols TLSv1.1 TLSv1.2 TLSv1.3;',
    `    ssl_ciphers '${EDGE_TLS12}';`,
    `    ssl_conf_command Ciphersuites ${EDGE_TLS13};`,
    '    ssl_prefer_server_ciphers on;',
  ];
  return [
    `load_module ${NGINX_STREAM_MODULE};`,
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'nginx-error.log')} warn;`,
    'events { worker_connections 4096; }',
    'stream {',
    `  server {`,
    `    listen 127.0.0.1:${PORTS.nginx.ecdsa} ssl;`,
    ...ssl('ecdsa'),
    `    proxy_pass 127.0.0.1:${PORTS.originPlain};`,
    '  }',
    `  server {`,
    `    listen 127.0.0.1:${PORTS.nginx.rsa} ssl;`,
    ...ssl('rsa'),
    `    proxy_pass 127.0.0.1:${PORTS.originPlain};`,
    '  }',
    `  server {`,
    `    listen 127.0.0.1:${PORTS.nginx.full} ssl;`,
    ...ssl('ecdsa'),
    `    proxy_pass 127.0.0.1:${PORTS.originTls};`,
    '    proxy_ssl on;',
    '    proxy_ssl_protocols TLSv1.1 TLSv1.2 TLSv1.3;',
    `    proxy_ssl_ciphers '${ORIGIN_TLS12}';`,
    `    proxy_ssl_conf_command Ciphersuites ${ORIGIN_TLS13};`,
    // Refract opens every origin session afresh; nginx would otherwise resume them.
    '    proxy_ssl_session_reuse off;',
    '  }',
    '}',
    '',
  ].join('\n');
}

function refractConf(dir: string, f: Files): string {
  const app = (port: number, mode: 'flexible' | 'full', k: KeyType, origin: number): string[] => [
    `  - protocol: tcp/${port}`,
    `    dns: { type: CNAME, name: bench-tls.example.test }`,
    `    tls: ${mode}`,
    `    edge_tls: { cert: ${f.edge[k].cert}, key: ${f.edge[k].key} }`,
    `    origin_direct: ["tcp://127.0.0.1:${origin}"]`,
  ];
  return [
    `edge: { addresses: [127.0.0.1], tls: { data_dir: ${join(dir, 'refract-data')} } }`,
    'log: { level: warn }',
    'apps:',
    ...app(PORTS.refract.ecdsa, 'flexible', 'ecdsa', PORTS.originPlain),
    ...app(PORTS.refract.rsa, 'flexible', 'rsa', PORTS.originPlain),
    ...app(PORTS.refract.full, 'full', 'ecdsa', PORTS.originTls),
    '',
  ].join('\n');
}

/**
 * The floor for a Node proxy: plain node:tls termination piped to the origin, nothing else (no machine, no events,
 * no SNI look-ahead), with the same files, versions and cipher lists, and TCP_NODELAY on both legs as nginx
 * stream (`tcp_nodelay on` by default) and Refract set it. argv: ecdsaPort rsaPort fullPort, then the
 * JSON of `{ certs, originPlain, originTls, edge12, edge13, origin12, origin13 }`.
 */
const NODE_TLS_PROXY = `
import tls from 'node:tls'; import net from 'node:net'; import fs from 'node:fs';
const [ecdsaPort, rsaPort, fullPort] = process.argv.slice(1, 4).map(Number);
const o = JSON.parse(process.argv[4]);
const serverOpts = (k) => ({ cert: fs.readFileSync(o.certs[k].cert), key: fs.readFileSync(o.certs[k].key), minVersion: 'TLSv1.1',
  ciphers: o.edge13 + ':' + o.edge12, honorCipherOrder: true, allowHalfOpen: true, noDelay: true });
const pipe = (a, b) => { a.pipe(b).pipe(a); a.on('error', () => b.destroy()); b.on('error', () => a.destroy()); };
for (const [port, k] of [[ecdsaPort, 'ecdsa'], [rsaPort, 'rsa']]) {
  tls.createServer(serverOpts(k), (s) => pipe(s, net.connect({ port: o.originPlain, host: '127.0.0.1', allowHalfOpen: true, noDelay: true }))).listen(port, '127.0.0.1');
}
tls.createServer(serverOpts('ecdsa'), (s) => pipe(s, tls.connect({ port: o.originTls, host: '127.0.0.1', rejectUnauthorized: false, noDelay: true,
  minVersion: 'TLSv1.1', ciphers: o.origin13 + ':' + o.origin12 }))).listen(fullPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;

async function startProxy(name: ProxyName, f: Files, profileDir: string | undefined): Promise<Running> {
  const ports = [PORTS[name].ecdsa, PORTS[name].rsa, PORTS[name].full];
  await assertPortsFree(ports);
  const dir = mkdtempSync(join(f.dir, `${name}-`));
  if (name === 'nginx') {
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConf(dir, f));
    const child = spawnChild(NGINX!, ['-p', dir, '-e', join(dir, 'nginx-error.log'), '-c', conf, '-g', 'daemon off;'], proxyCpu);
    await started(child, ports, 10_000);
    return { name, child, measuredPid: await nginxWorker(child), stop: () => stopChild(child) };
  }
  if (name === 'node-tls') {
    const cfg = { certs: f.edge, originPlain: PORTS.originPlain, originTls: PORTS.originTls, edge12: EDGE_TLS12, edge13: EDGE_TLS13, origin12: ORIGIN_TLS12, origin13: ORIGIN_TLS13 };
    const child = spawnChild(process.execPath, ['--input-type=module', '-e', NODE_TLS_PROXY, ...ports.map(String), JSON.stringify(cfg)], proxyCpu);
    await started(child, ports, 10_000);
    return { name, child, measuredPid: child.pid, stop: () => stopChild(child) };
  }
  const conf = join(dir, 'refract.yaml');
  writeFileSync(conf, refractConf(dir, f));
  const prof = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir];
  // The build (dist/cli.js), as the installed package runs; made first when older than src/.
  if (ensureBuild(REPO_ROOT) === 'built') process.stderr.write('bench:tls: built dist/ (npm run build): it was older than src/\n');
  const child = spawnChild(process.execPath, [...prof, ...refractCli(REPO_ROOT), 'serve', '--config', conf], proxyCpu, { cwd: REPO_ROOT });
  await started(child, ports, 30_000);
  // SIGTERM drains and exits normally, which is when --cpu-prof writes its file.
  return { name, child, measuredPid: child.pid, stop: () => stopChild(child, 10_000) };
}

async function started(child: Child, ports: readonly number[], ms: number): Promise<void> {
  try {
    await waitForPorts(child, ports, ms);
  } catch (e) {
    await stopChild(child);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------- measurements

interface Sample {
  readonly t: number;
  readonly proxyCpu: number;
  readonly core0: { busy: number; total: number };
  readonly core1: { busy: number; total: number };
}
const sample = (pid: number): Sample => ({ t: performance.now(), proxyCpu: cpuSeconds(pid), core0: cpuCoreTicks(PROXY_CPU), core1: cpuCoreTicks(LOAD_CPU) });
const pct = (a: { busy: number; total: number }, b: { busy: number; total: number }): number => (b.total > a.total ? (100 * (b.busy - a.busy)) / (b.total - a.total) : Number.NaN);

/** Window figures: proxy CPU s, % of one core for the proxy process, each core's busy %, other work on the proxy core. */
function windowOf(a: Sample, b: Sample): Record<string, number> {
  const wall = (b.t - a.t) / 1000;
  const proxyCpuSec = b.proxyCpu - a.proxyCpu;
  const proxyCorePct = pct(a.core0, b.core0);
  const proxyProcPct = (100 * proxyCpuSec) / wall;
  // Busy time on the proxy core not charged to the proxy: other sessions' work and interrupts landing there.
  return { proxyCpuSec, proxyProcPct, proxyCorePct, loadCorePct: pct(a.core1, b.core1), otherOnProxyCorePct: Math.max(0, proxyCorePct - proxyProcPct) };
}

/** Waits (bounded) until both cores are under 10 % busy for two 300 ms samples; returns the last busy %. */
async function waitQuiet(maxMs: number): Promise<number> {
  const both = (): { busy: number; total: number } => {
    const x = cpuCoreTicks(PROXY_CPU);
    const y = cpuCoreTicks(LOAD_CPU);
    return { busy: x.busy + y.busy, total: x.total + y.total };
  };
  const deadline = performance.now() + maxMs;
  let prev = both();
  let calm = 0;
  let last = Number.NaN;
  for (let i = 0; i < 100 && calm < 2 && performance.now() < deadline; i++) {
    await sleep(300);
    const now = both();
    last = pct(prev, now);
    prev = now;
    calm = last < 10 ? calm + 1 : 0;
  }
  return last;
}

/** Runs CLIENTS × `openssl s_time -new -www /` for `seconds` against `port`; connections completed and wall ms. */
async function sTime(port: number, version: Version, seconds: number, clients: number): Promise<{ conns: number; wallMs: number; failed: string[] }> {
  const flag = version === 'TLSv1.3' ? '-tls1_3' : '-tls1_2';
  const t0 = performance.now();
  const kids = Array.from({ length: clients }, () =>
    spawnChild(OPENSSL!, ['s_time', '-connect', `127.0.0.1:${port}`, '-new', '-www', '/', '-time', String(seconds), flag], loadCpu),
  );
  // s_time prints one character per finished connection ('*' for a full handshake at TLS 1.2/1.3) and a summary
  // at the end. Counting the characters keeps the connections of a client that stopped early without a summary
  // (it happens now and then against every proxy: s_time quits silently when a write fails).
  const stars = kids.map(() => 0);
  const tails = kids.map(() => '');
  kids.forEach((k, i) =>
    k.proc.stdout?.on('data', (d: Buffer) => {
      const t = d.toString('latin1');
      for (let j = 0; j < t.length; j++) if (t.charCodeAt(j) === 42) stars[i]! += 1;
      tails[i] = (tails[i] + t).slice(-300);
    }),
  );
  // s_time stops itself after `seconds`; anything still there 15 s later is killed.
  const done = await Promise.race([Promise.all(kids.map((k) => k.exited)).then(() => true), sleep(seconds * 1000 + 15_000).then(() => false)]);
  if (!done) await Promise.all(kids.map((k) => stopChild(k, 500)));
  const wallMs = performance.now() - t0;
  const failed: string[] = [];
  kids.forEach((k, i) => {
    if (!/\d+ connections in \d+ real seconds/.test(tails[i] ?? '')) failed.push(k.tail().trim().split('\n').slice(-1).join('').slice(-120) || 'no summary');
  });
  return { conns: stars.reduce((a, b) => a + b, 0), wallMs, failed };
}

async function measureHandshakes(p: Running, port: number, version: Version): Promise<Record<string, number>> {
  const h = plan.handshakes;
  await sTime(port, version, h.warmSeconds, h.clients);
  const a = sample(p.measuredPid);
  const r = await sTime(port, version, h.seconds, h.clients);
  const b = sample(p.measuredPid);
  if (r.failed.length > 0) say(`    ${r.failed.length} s_time client(s) ended early (their connections still count): ${r.failed[0]}`);
  const w = windowOf(a, b);
  return {
    hsPerSec: r.conns / (r.wallMs / 1000),
    conns: r.conns,
    cpuUsPerHs: r.conns > 0 ? ((w.proxyCpuSec ?? 0) * 1e6) / r.conns : Number.NaN,
    failedClients: r.failed.length,
    ...w,
  };
}

/** Bulk upload through `port` on `conns` TLS connections; the origin confirms each connection's byte count. */
async function bulk(port: number, totalBytes: number, conns: number, maxMs: number): Promise<{ ackedBytes: number; elapsedMs: number; errors: number; cipher: string }> {
  const per = Math.floor(totalBytes / conns);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const t0 = performance.now();
  let errors = 0;
  let cipher = '?';
  const one = (): Promise<number> =>
    new Promise((resolve) => {
      let acked = 0;
      let reply = Buffer.alloc(0);
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      const timer = setTimeout(() => s.destroy(new Error('bulk timeout')), maxMs);
      s.on('secureConnect', () => {
        cipher = s.getCipher()?.name ?? '?';
        const head = Buffer.alloc(8);
        head.writeBigUInt64BE(BigInt(per));
        s.write(head);
        let sent = 0;
        const pump = (): void => {
          while (sent < per) {
            const n = Math.min(chunk.length, per - sent);
            sent += n;
            if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
              s.once('drain', pump);
              return;
            }
          }
        };
        pump();
      });
      s.on('data', (d: Buffer) => {
        reply = Buffer.concat([reply, d]);
        if (reply.length >= 8) {
          acked = Number(reply.readBigUInt64BE(0));
          s.end();
        }
      });
      s.on('error', () => errors++);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(acked);
      });
    });
  const acks = await Promise.all(Array.from({ length: conns }, one));
  return { ackedBytes: acks.reduce((x, y) => x + y, 0), elapsedMs: performance.now() - t0, errors, cipher };
}

async function measureThroughput(p: Running, origins: Origins): Promise<{ metrics: Record<string, number>; clientCipher: string; originCipher: string }> {
  const c = plan.throughput;
  await bulk(PORTS[p.name].full, c.warmBytes, c.conns, c.maxMs);
  origins.takeOriginCiphers();
  const a = sample(p.measuredPid);
  const faultsBefore = minorFaults(p.measuredPid);
  const r = await bulk(PORTS[p.name].full, c.totalBytes, c.conns, c.maxMs);
  const faults = minorFaults(p.measuredPid) - faultsBefore;
  const b = sample(p.measuredPid);
  const w = windowOf(a, b);
  const originCiphers = [...new Set(origins.takeOriginCiphers())];
  return {
    metrics: {
      MBps: r.ackedBytes / 1e6 / (r.elapsedMs / 1000),
      cpuMsPerGB: r.ackedBytes > 0 ? ((w.proxyCpuSec ?? 0) * 1000) / (r.ackedBytes / 1e9) : Number.NaN,
      // Thousands of minor page faults per GB: a read path landing on freshly mapped memory (see bench/run.ts).
      kFaultsPerGB: r.ackedBytes > 0 ? faults / 1000 / (r.ackedBytes / 1e9) : Number.NaN,
      ackedBytes: r.ackedBytes,
      errors: r.errors,
      ...w,
    },
    clientCipher: r.cipher,
    originCipher: originCiphers.join(','),
  };
}

/** What `openssl s_client` negotiates with `port` at `version`: "TLSv1.3 TLS_CHACHA20_POLY1305_SHA256". Bounded 10 s. */
async function probe(port: number, version: Version): Promise<string> {
  const c = spawn(OPENSSL!, ['s_client', '-connect', `127.0.0.1:${port}`, '-brief', '-nocommands', version === 'TLSv1.3' ? '-tls1_3' : '-tls1_2'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (out += d.toString()));
  c.stdin.on('error', () => {});
  c.stdin.end();
  const exited = once(c, 'exit');
  const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
  return `${/^Protocol version: (\S+)/m.exec(out)?.[1] ?? '?'} ${/^Ciphersuite: (\S+)/m.exec(out)?.[1] ?? '?'}`;
}

// ---------------------------------------------------------------------------------------------- main

interface Row {
  readonly round: number;
  readonly proxy: ProxyName;
  readonly case: string;
  readonly metrics: Record<string, number>;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'refract-bench-tls-'));
  const profileDir = argv.profile ? join(resultsDir, `${runId}-prof`) : undefined;
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
  say(`bench:tls ${runId}: ${plan.rounds} round(s), keys ${keyTypes.join(',')}, ${measures.join(',')}; pinning ${pin ? 'proxy→CPU0, load→CPU1' : 'off'}`);
  const env = { cpus: cpus().length, cpu: cpus()[0]?.model, kernel: release(), node: process.version, nginx: spawnVersion(NGINX!, ['-v']), openssl: spawnVersion(OPENSSL!, ['version']) };
  record({ type: 'env', plan, keyTypes, measures, pin, ...env });
  const rows: Row[] = [];
  const notes: string[] = [];
  const quota = cpuQuotaPct === undefined ? undefined : quotaGroup(cpuQuotaPct);
  if (cpuQuotaPct !== undefined) notes.push(`every proxy ran under a CPU quota of ${cpuQuotaPct} % of one core: rates are at saturation on an equal CPU budget`);
  try {
    const f = await makeCerts(work);
    const origins = await startOrigins(f);
    try {
      for (let round = 1; round <= plan.rounds; round++) {
        // Rotate the order each round so no proxy always runs first (or right after another's teardown).
        const order = proxyNames.map((_, i) => proxyNames[(i + round - 1) % proxyNames.length]!);
        for (const name of order) {
          say(`round ${round}: ${name}`);
          const p = await startProxy(name, f, name === 'refract' ? profileDir : undefined);
          quota?.add(p.measuredPid);
          try {
            if (measures.includes('handshakes')) {
              for (const k of keyTypes) {
                for (const v of VERSIONS) {
                  const port = PORTS[name][k];
                  const negotiated = await probe(port, v);
                  const quiet = await waitQuiet(plan.quietMaxMs);
                  const m = await measureHandshakes(p, port, v);
                  const c = `handshakes ${v} ${k}`;
                  rows.push({ round, proxy: name, case: c, metrics: m });
                  record({ type: 'measure', round, proxy: name, case: c, negotiated, busyBeforePct: quiet, metrics: m });
                  say(`  ${c}: ${fmt(m.hsPerSec ?? Number.NaN)}/s, ${fmt(m.cpuUsPerHs ?? Number.NaN)} µs CPU each, proxy core ${fmt(m.proxyCorePct ?? Number.NaN)}%, load core ${fmt(m.loadCorePct ?? Number.NaN)}% (${negotiated})`);
                  noteNegotiated(notes, c, name, negotiated);
                  noteLoadBound(notes, c, name, m);
                }
              }
            }
            if (measures.includes('throughput')) {
              const quiet = await waitQuiet(plan.quietMaxMs);
              const t = await measureThroughput(p, origins);
              const c = 'throughput full';
              rows.push({ round, proxy: name, case: c, metrics: t.metrics });
              record({ type: 'measure', round, proxy: name, case: c, clientCipher: t.clientCipher, originCipher: t.originCipher, busyBeforePct: quiet, metrics: t.metrics });
              say(`  ${c}: ${fmt(t.metrics.MBps ?? Number.NaN)} MB/s, ${fmt(t.metrics.cpuMsPerGB ?? Number.NaN)} CPU ms/GB, ${fmt(t.metrics.kFaultsPerGB ?? Number.NaN, 1)} k faults/GB (client ${t.clientCipher}, origin ${t.originCipher})`);
              noteNegotiated(notes, c, name, `${t.clientCipher} / ${t.originCipher}`);
            }
          } finally {
            await p.stop();
          }
        }
      }
    } finally {
      await origins.close();
    }
  } finally {
    quota?.close();
    rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write(`\n${table(rows)}\n`);
  for (const n of new Set(notes)) process.stdout.write(`\nnote: ${n}\n`);
  if (profileDir !== undefined) process.stdout.write(`\nRefract CPU profiles: ${profileDir}\n`);
  process.stdout.write(`\nraw results: ${resultsFile}\n`);
}

/** First value negotiated per case; a proxy that negotiates differently becomes a note under the table. */
const negotiatedBy = new Map<string, { name: ProxyName; what: string }>();
function noteNegotiated(notes: string[], c: string, name: ProxyName, what: string): void {
  const first = negotiatedBy.get(c);
  if (first === undefined) negotiatedBy.set(c, { name, what });
  else if (first.what !== what) notes.push(`${c}: proxies negotiated differently (${name}: ${what}; ${first.name}: ${first.what})`);
}

/**
 * The load core saturated while the proxy was not: the rate is the load generator's limit, not the proxy's, and
 * only the CPU-per-handshake figure compares the proxies.
 */
function noteLoadBound(notes: string[], c: string, name: ProxyName, m: Record<string, number>): void {
  // Under --cpu-quota a saturated proxy uses its quota, not its core.
  const saturatedPct = cpuQuotaPct === undefined ? 85 : cpuQuotaPct * 0.9;
  if ((m.loadCorePct ?? 0) >= 95 && (m.proxyProcPct ?? 100) < saturatedPct) {
    notes.push(`${c}: ${name} was load-bound in some round (load core ≥ 95 %, proxy < 85 % of its core): its rate is a floor; compare CPU per handshake`);
  }
}

function spawnVersion(bin: string, args: string[]): string {
  const o = spawnSync(bin, args, { encoding: 'utf8' });
  return `${o.stdout ?? ''}${o.stderr ?? ''}`.trim();
}

function table(rows: readonly Row[]): string {
  const cases = [...new Set(rows.map((r) => r.case))];
  const series = (proxy: ProxyName, c: string, key: string): Map<number, number> =>
    new Map(rows.filter((r) => r.proxy === proxy && r.case === c).map((r) => [r.round, r.metrics[key] ?? Number.NaN]));
  const out: string[][] = [];
  for (const c of cases) {
    const [rate, cost, rateUnit, costUnit] = c.startsWith('handshakes') ? ['hsPerSec', 'cpuUsPerHs', '/s', 'µs'] : ['MBps', 'cpuMsPerGB', 'MB/s', 'ms/GB'];
    const med = (p: ProxyName, k: string): number => median([...series(p, c, k).values()]);
    const both = (k: string, unit: string): string => proxyNames.map((p) => fmt(med(p, k))).join(' / ') + ` ${unit}`;
    out.push([
      c,
      both(rate, rateUnit),
      fmtRatio(medianRatio(series('refract', c, rate), series('nginx', c, rate))),
      both(cost, costUnit),
      // Inverse so that, like the rate ratio, above 1 means Refract does better.
      fmtRatio(medianRatio(series('nginx', c, cost), series('refract', c, cost))),
      fmtRatio(medianRatio(series('node-tls', c, cost), series('refract', c, cost))),
      both('proxyProcPct', '%'),
      both('loadCorePct', '%'),
    ]);
  }
  const who = proxyNames.join(' / ');
  return markdownTable(
    ['case', `rate (${who})`, 'rate R÷nginx', `proxy CPU each (${who})`, 'CPU nginx÷R', 'CPU node-tls÷R', `proxy process % of its core (${who})`, 'load core %'],
    out,
  );
}

main()
  .then(() => {
    clearTimeout(hardTimer);
    process.exit(0);
  })
  .catch((e: unknown) => {
    say(`bench:tls failed: ${(e as Error).message}${e instanceof StartError ? `\n${e.output}` : ''}`);
    killAllSync();
    process.exit(1);
  });
