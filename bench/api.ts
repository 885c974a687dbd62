/**
 * `npm run bench:api`: the management API of a real `refract serve` (docs/api.md), on loopback.
 *
 *   npm run bench:api                 3 rounds
 *   npm run bench:api -- --quick      1 round with small counts, a smoke run
 *   npm run bench:api -- --rounds 5 --no-pin
 *
 * Each round starts `node dist/cli.js serve` (the build, made first when older than src/) on a fresh data directory (API on 127.0.0.1:7190; a token
 * from `refract token create`), pinned to CPU 0 when there are two CPUs and `taskset`; this harness (the HTTP
 * client, and an echo origin on 7191) runs on CPU 1. Then, one phase after another:
 *
 * - **create on an empty node**: 100 creates, one client (edge ports 9100-9199; 0 to 99 apps present).
 * - **list**: those 100 apps, `GET /zones/Z/spectrum/apps?per_page=100` (all of them in one answer, about 40 kB),
 *   sent N times by C clients in closed loops (each sends its next request when the last answer is read), after a
 *   warm-up: requests/s and per-request latency p50/p99, for C = 1 and C = 8.
 * - **create**: 100 creates of new apps (edge ports 9200-9299) with the 100 list apps present, C = 1, then the 100
 *   deletes; then the same with C = 8: requests/s and latency p50/p99 of creates and of deletes.
 * - **create → accept, create → DNS answer**: 100 creates (edge ports 9300-9399), one at a time; when the 200 answer
 *   has been read the harness also asks the DNS server (127.0.0.1:7192, UDP) for the new name's A record, every 1 ms
 *   until it has one; and it
 *   connects to the new app's port at once and, if refused, again every 1 ms: the time from the answer to
 *   the first accepted connection, p50/p99, and how many creates needed more than one attempt. The resolution is
 *   the 1 ms retry interval when a retry was needed; otherwise it is the connect itself (a loopback round trip).
 *
 * Also Refract's CPU time per request in each phase (utime + stime from /proc; 10 ms ticks), and the CPU that
 * other processes used meanwhile (a shared machine skews the figures). Figures are medians over rounds. Requests use one keep-alive connection per client (node:http). Every loop is bounded in count and
 * in time (10 s per request), and a hard timeout kills every child. Raw figures: bench/results/api-<time>.jsonl.
 */
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dgram from 'node:dgram';
import * as http from 'node:http';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';
import YAML from 'yaml';
import { assertPortsFree, canPin, CLK_TCK, cpuCoreTicks, cpuSeconds, killAllSync, pinPid, spawnChild, StartError, stopChild, waitForPorts, type Child } from './proc.ts';
import { REPO_ROOT } from './proxies.ts';
import { ensureBuild, refractCli } from './refract-cli.ts';
import { fmt, markdownTable, median } from './stats.ts';

const API_PORT = 7190;
const ORIGIN_PORT = 7191;
const DNS_PORT = 7192;
const LIST_PORTS = 9100;
const CREATE_PORTS = 9200;
const ACCEPT_PORTS = 9300;
const APPS_FOR_LIST = 100;
const ZONE = { id: '023e105f4ecef8ad9ca31a8372d0c353', name: 'example.com' };
const PATH = `/client/v4/zones/${ZONE.id}/spectrum/apps`;
const REFRACT_CPU = 0;
const HARNESS_CPU = 1;
const REQUEST_TIMEOUT_MS = 10_000;
const RETRY_MS = 1;

interface Plan {
  readonly rounds: number;
  readonly listWarm: number;
  readonly listCount: number;
  readonly creates: number;
  readonly acceptCreates: number;
  readonly hardTimeoutMs: number;
}
const FULL: Plan = { rounds: 3, listWarm: 300, listCount: 2000, creates: 100, acceptCreates: 100, hardTimeoutMs: 10 * 60_000 };
const QUICK: Plan = { rounds: 1, listWarm: 50, listCount: 300, creates: 30, acceptCreates: 30, hardTimeoutMs: 3 * 60_000 };

const { values: argv } = parseArgs({
  options: { quick: { type: 'boolean' }, rounds: { type: 'string' }, 'no-pin': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  strict: true,
});
if (argv.help === true) {
  process.stdout.write('Usage: npm run bench:api [-- --quick] [--rounds N] [--no-pin]\n  The management API of refract serve on loopback (docs/benchmarks.md, "Management API").\n');
  process.exit(0);
}
const plan: Plan = { ...(argv.quick === true ? QUICK : FULL), ...(argv.rounds !== undefined ? { rounds: Math.max(1, Number(argv.rounds)) } : {}) };

const hardTimer = setTimeout(() => {
  process.stderr.write(`\nbench:api: hard timeout after ${plan.hardTimeoutMs / 1000} s; killing everything\n`);
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
const pin = argv['no-pin'] !== true && canPin();
if (pin) pinPid(process.pid, HARNESS_CPU);
const say = (s: string): void => void process.stderr.write(`${s}\n`);

const runId = `api-${new Date().toISOString().replace(/[:.]/g, '-')}`;
const resultsDir = join(REPO_ROOT, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const resultsFile = join(resultsDir, `${runId}.jsonl`);
const record = (o: Record<string, unknown>): void => appendFileSync(resultsFile, `${JSON.stringify({ run: runId, ...o })}\n`);

/** Nearest-rank percentile of an ascending-sorted array; NaN when empty. */
function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

// ---------------------------------------------------------------------------------------------- HTTP client

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** One request on `agent` (keep-alive); rejects after REQUEST_TIMEOUT_MS. */
function request(agent: http.Agent, token: string, method: string, path: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port: API_PORT,
        method,
        path,
        agent,
        headers: { authorization: `Bearer ${token}`, ...(data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

interface LoadResult {
  readonly count: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpuMsPerRequest: number;
  /** CPU used during the window by neither Refract, this harness nor interrupts, % of one core: other work. */
  readonly otherPct: number;
}

/** Busy and interrupt ticks of every CPU, summed (from /proc/stat). */
function machineTicks(): { busy: number; irq: number } {
  let busy = 0;
  let irq = 0;
  for (let c = 0; c < cpus().length; c++) {
    const t = cpuCoreTicks(c);
    busy += t.busy;
    irq += t.irq;
  }
  return { busy, irq };
}

/**
 * Sends the requests `make(0..count-1)` with `concurrency` closed-loop clients (one keep-alive connection each);
 * `ok` says whether an answer is right. Latency: request written → answer read.
 */
async function load(
  pid: number,
  token: string,
  count: number,
  concurrency: number,
  make: (i: number) => { method: string; path: string; body?: unknown },
  ok: (a: Answer, i: number) => boolean,
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = cpuSeconds(pid);
  const self0 = cpuSeconds(process.pid);
  const m0 = machineTicks();
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const r = make(i);
      const start = performance.now();
      try {
        const a = await request(agent, token, r.method, r.path, r.body);
        latencies.push(performance.now() - start);
        if (!ok(a, i)) {
          errors++;
          firstError ??= `HTTP ${a.status}: ${a.body.slice(0, 200)}`;
        }
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => client()));
  const elapsedMs = performance.now() - t0;
  const cpuMs = (cpuSeconds(pid) - cpu0) * 1000;
  const selfMs = (cpuSeconds(process.pid) - self0) * 1000;
  const m1 = machineTicks();
  const otherMs = ((m1.busy - m0.busy - (m1.irq - m0.irq)) / CLK_TCK) * 1000 - cpuMs - selfMs;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    count,
    errors,
    firstError,
    elapsedMs,
    rps: (count / elapsedMs) * 1000,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    cpuMsPerRequest: cpuMs / count,
    otherPct: Math.max(0, (100 * otherMs) / elapsedMs),
  };
}

/**
 * Asks the DNS server for `name`'s A record over UDP until it answers one (every RETRY_MS, at most 5 s): ms from the
 * call to that answer, attempts.
 */
async function firstDnsAnswer(name: string): Promise<{ ms: number; attempts: number }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  const t0 = performance.now();
  try {
    for (let attempts = 1; ; attempts++) {
      const id = attempts & 0xffff;
      const answered = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => done(false), 200);
        const done = (v: boolean): void => {
          clearTimeout(timer);
          sock.removeListener('message', onMessage);
          resolve(v);
        };
        const onMessage = (msg: Buffer): void => {
          const r = dnsPacket.decode(msg);
          if (r.id !== id) return;
          done((r as { rcode?: string }).rcode === 'NOERROR' && (r.answers ?? []).some((a) => a.type === 'A'));
        };
        sock.on('message', onMessage);
        sock.send(dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type: 'A', name }] }), DNS_PORT, '127.0.0.1');
      });
      if (answered) return { ms: performance.now() - t0, attempts };
      if (performance.now() - t0 > 5000) throw new Error(`${name}: no DNS answer within 5 s of the create's answer`);
      await sleep(RETRY_MS);
    }
  } finally {
    sock.close();
  }
}

/** Connects to 127.0.0.1:port until accepted (every RETRY_MS, at most 5 s): ms from the call to the accept, attempts. */
async function firstAccept(port: number): Promise<{ ms: number; attempts: number }> {
  const t0 = performance.now();
  for (let attempts = 1; ; attempts++) {
    const accepted = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (accepted) return { ms: performance.now() - t0, attempts };
    if (performance.now() - t0 > 5000) throw new Error(`port ${port}: no accepted connection within 5 s of the create's answer`);
    await sleep(RETRY_MS);
  }
}

// ---------------------------------------------------------------------------------------------- one round

const app = (port: number, name: string): Record<string, unknown> => ({
  protocol: `tcp/${port}`,
  dns: { type: 'CNAME', name },
  origin_direct: [`tcp://127.0.0.1:${ORIGIN_PORT}`],
});
const isOk = (a: Answer): boolean => a.status === 200;

async function round(n: number): Promise<Record<string, number | string | undefined>> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-bench-api-'));
  const file = join(dir, 'refract.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      node: { id: 'bench-api', data_dir: 'data' },
      edge: { addresses: ['127.0.0.1'], drain_timeout_ms: 1000 },
      log: { level: 'warn' },
      api: { listen: `127.0.0.1:${API_PORT}`, rate_limit: { requests: 1_000_000, window_sec: 60 } },
      zones: [ZONE],
      dns: { listen: `127.0.0.1:${DNS_PORT}`, ttl: 30 },
    }),
  );
  // The build (dist/cli.js), as the installed package runs; made first when older than src/.
  ensureBuild(REPO_ROOT);
  const cli = refractCli(REPO_ROOT);
  const made = spawnSync(process.execPath, [...cli, 'token', 'create', '--config', file, '--name', 'bench'], { encoding: 'utf8', timeout: 30_000 });
  if (made.status !== 0) throw new StartError('refract token create failed', made.stderr);
  const token = made.stdout.trimEnd().split('\n').at(-1)!;

  let child: Child | undefined;
  try {
    child = spawnChild(process.execPath, [...cli, 'serve', '--config', file, '--no-watch', '--access-log', 'off'], pin ? REFRACT_CPU : undefined, { cwd: REPO_ROOT });
    await waitForPorts(child, [API_PORT], 30_000);
    const pid = child.pid;
    const out: Record<string, number | string | undefined> = {};
    const put = (prefix: string, r: LoadResult): void => {
      out[`${prefix}.rps`] = r.rps;
      out[`${prefix}.p50Ms`] = r.p50Ms;
      out[`${prefix}.p99Ms`] = r.p99Ms;
      out[`${prefix}.cpuMsPerRequest`] = r.cpuMsPerRequest;
      out[`${prefix}.errors`] = r.errors;
      out[`${prefix}.otherPct`] = r.otherPct;
      if (r.firstError !== undefined) out[`${prefix}.firstError`] = r.firstError;
      say(`  round ${n} ${prefix}: ${fmt(r.rps)} req/s, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, ${fmt(r.cpuMsPerRequest, 2)} ms CPU/req, ${r.errors} errors${r.firstError ? ` (${r.firstError})` : ''}, other load ${fmt(r.otherPct)}% of a core`);
    };

    // Creates on an empty node; they are the list's 100 apps.
    const setup = await load(pid, token, APPS_FOR_LIST, 1, (i) => ({ method: 'POST', path: PATH, body: app(LIST_PORTS + i, `list${i}.example.com`) }), isOk);
    if (setup.errors > 0) throw new Error(`creating the list apps: ${setup.firstError ?? ''}`);
    put('create0.c1', setup);
    const listOk = (a: Answer): boolean => a.status === 200 && (JSON.parse(a.body) as { result: unknown[] }).result.length === APPS_FOR_LIST;
    const list = { method: 'GET', path: `${PATH}?per_page=100` };
    const sample = await request(new http.Agent(), token, 'GET', list.path);
    out['list.answerBytes'] = Buffer.byteLength(sample.body);
    await load(pid, token, plan.listWarm, 4, () => list, listOk);
    put('list.c1', await load(pid, token, plan.listCount, 1, () => list, listOk));
    put('list.c8', await load(pid, token, plan.listCount, 8, () => list, listOk));

    // create and delete, with the 100 list apps present.
    for (const c of [1, 8]) {
      const ids: string[] = [];
      const created = await load(pid, token, plan.creates, c, (i) => ({ method: 'POST', path: PATH, body: app(CREATE_PORTS + i, `create${i}.example.com`) }), (a) => {
        if (a.status !== 200) return false;
        ids.push((JSON.parse(a.body) as { result: { id: string } }).result.id);
        return true;
      });
      put(`create.c${c}`, created);
      put(`delete.c${c}`, await load(pid, token, ids.length, c, (i) => ({ method: 'DELETE', path: `${PATH}/${ids[i]!}` }), isOk));
    }

    // create → first accepted connection.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const waits: number[] = [];
    let retried = 0;
    const dnsWaits: number[] = [];
    let dnsRetried = 0;
    for (let i = 0; i < plan.acceptCreates; i++) {
      const port = ACCEPT_PORTS + i;
      const a = await request(agent, token, 'POST', PATH, app(port, `accept${i}.example.com`));
      if (a.status !== 200) throw new Error(`create for the accept test: HTTP ${a.status} ${a.body.slice(0, 200)}`);
      // Both from the moment the answer was read: the new port accepting, and the DNS server answering the name.
      const [r, d] = await Promise.all([firstAccept(port), firstDnsAnswer(`accept${i}.example.com`)]);
      waits.push(r.ms);
      dnsWaits.push(d.ms);
      if (r.attempts > 1) retried++;
      if (d.attempts > 1) dnsRetried++;
    }
    agent.destroy();
    waits.sort((x, y) => x - y);
    out['accept.p50Ms'] = percentile(waits, 0.5);
    out['accept.p99Ms'] = percentile(waits, 0.99);
    out['accept.maxMs'] = waits.at(-1);
    out['accept.retried'] = retried;
    dnsWaits.sort((x, y) => x - y);
    out['dns.p50Ms'] = percentile(dnsWaits, 0.5);
    out['dns.p99Ms'] = percentile(dnsWaits, 0.99);
    out['dns.maxMs'] = dnsWaits.at(-1);
    out['dns.retried'] = dnsRetried;
    say(`  round ${n} create→DNS answer: p50 ${fmt(out['dns.p50Ms'] as number, 3)} ms, p99 ${fmt(out['dns.p99Ms'] as number, 3)} ms, ${dnsRetried} of ${plan.acceptCreates} needed a retry`);
    say(`  round ${n} create→accept: p50 ${fmt(out['accept.p50Ms'] as number, 3)} ms, p99 ${fmt(out['accept.p99Ms'] as number, 3)} ms, ${retried} of ${plan.acceptCreates} needed a retry`);
    out['refractRssMiB'] = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN) / 1024;
    return out;
  } finally {
    if (child !== undefined) await stopChild(child, 5000);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const origin = net.createServer((s) => s.pipe(s).on('error', () => s.destroy()));
  await assertPortsFree([API_PORT, ORIGIN_PORT, DNS_PORT]);
  await new Promise<void>((r) => origin.listen(ORIGIN_PORT, '127.0.0.1', () => r()));
  const env = {
    type: 'env',
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    kernel: release(),
    pinned: pin,
    plan,
    loadavg: readFileSync('/proc/loadavg', 'utf8').trim(),
  };
  record(env);
  say(`bench:api: ${plan.rounds} round(s), ${pin ? 'refract on CPU 0, harness on CPU 1' : 'not pinned'}; load ${env.loadavg}`);
  const rounds: Array<Record<string, number | string | undefined>> = [];
  for (let n = 1; n <= plan.rounds; n++) {
    const r = await round(n);
    record({ type: 'round', round: n, ...r });
    rounds.push(r);
  }
  origin.close();
  const m = (key: string): number => median(rounds.map((r) => Number(r[key])));
  const row = (what: string, prefix: string): string[] => [
    what,
    fmt(m(`${prefix}.rps`)),
    fmt(m(`${prefix}.p50Ms`), 2),
    fmt(m(`${prefix}.p99Ms`), 2),
    fmt(m(`${prefix}.cpuMsPerRequest`), 2),
    String(rounds.reduce((s, r) => s + Number(r[`${prefix}.errors`] ?? 0), 0)),
    fmt(Math.max(...rounds.map((r) => Number(r[`${prefix}.otherPct`])))),
  ];
  const table = markdownTable(
    ['request', 'requests/s', 'p50 ms', 'p99 ms', 'Refract CPU ms/request', 'errors', 'other load, max % of a core'],
    [
      row('create (0-99 apps present), 1 client', 'create0.c1'),
      row(`list 100 apps (per_page=100, ${fmt(m('list.answerBytes') / 1000)} kB), 1 client`, 'list.c1'),
      row('list 100 apps, 8 clients', 'list.c8'),
      row('create (100-199 apps present), 1 client', 'create.c1'),
      row('create, 8 clients', 'create.c8'),
      row('delete, 1 client', 'delete.c1'),
      row('delete, 8 clients', 'delete.c8'),
    ],
  );
  const accept = markdownTable(
    ['create answered → first accepted connection', 'p50 ms', 'p99 ms', 'max ms', 'creates that needed a retry'],
    [
      [`${plan.acceptCreates} creates, one at a time`, fmt(m('accept.p50Ms'), 3), fmt(m('accept.p99Ms'), 3), fmt(m('accept.maxMs'), 3), rounds.map((r) => String(r['accept.retried'])).join(', ')],
      ['the same creates → first DNS answer of the name (A, UDP)', fmt(m('dns.p50Ms'), 3), fmt(m('dns.p99Ms'), 3), fmt(m('dns.maxMs'), 3), rounds.map((r) => String(r['dns.retried'])).join(', ')],
    ],
  );
  const summary = `${table}\n\n${accept}\n\nmedians over ${plan.rounds} round(s); Refract RSS at the end ${fmt(m('refractRssMiB'))} MiB\n`;
  record({ type: 'summary', table: summary });
  process.stdout.write(`${summary}\nraw results: ${resultsFile}\n`);
}

main()
  .then(() => {
    clearTimeout(hardTimer);
    process.exit(0);
  })
  .catch((e: unknown) => {
    say(`bench:api failed: ${(e as Error).message}${e instanceof StartError ? `\n${e.output}` : ''}`);
    killAllSync();
    process.exit(1);
  });
