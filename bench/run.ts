/**
 * `npm run bench`: Refract against nginx (stream) and HAProxy (mode tcp), plus a naive Node pipe proxy, side by
 * side on loopback in one run. Every proxy runs with one worker on the proxy core (CPU 0); the origin, the load
 * generator and this harness share the other core (CPU 1). With `--workers N`, N workers on CPUs 0..N-1 (see
 * PROXY_CPUS below). Rounds interleave the proxies (nginx, haproxy,
 * node-pipe, refract, then haproxy, node-pipe, refract, nginx, …: each round starts one later), each proxy freshly
 * started per measurement; figures are medians over rounds and ratios are medians of same-round ratios. Prints
 * one Markdown table; raw results go to bench/results/<run>.jsonl. docs/benchmarks.md explains every figure.
 *
 *   npm run bench                        full run (3 rounds; about 10–15 minutes)
 *   npm run bench -- --quick             one small round, a smoke run (< 2 minutes)
 *   npm run bench -- --only cps,memory   a subset of: throughput, cps, memory, udp (= udp-rate + udp-memory)
 *   npm run bench -- --rounds 5 --proxies nginx,refract
 *   npm run bench -- --node /path/to/node24/bin/node   adds `refract-node`: this checkout on that Node binary
 *   npm run bench -- --proxies nginx,refract,refract-tsx   Refract's build (dist/, built first when stale) against
 *                                        its sources through tsx's loader
 *   npm run bench -- --workers 2         every proxy with 2 workers (nginx worker_processes, HAProxy nbthread,
 *                                        refract serve --workers), pinned to CPUs 0-1; see docs/benchmarks.md
 *   npm run bench -- --workers 2 --proxy-cores 1   both workers of each proxy share CPU 0, the load generator
 *                                        has CPU 1 to itself (a 2-core machine's way to keep them apart)
 *   npm run bench -- --access-log off    no proxy writes an access log (default on: nginx, HAProxy and Refract
 *                                        each write a line per connection to a file; see docs/benchmarks.md)
 *   npm run bench -- --half-close off    nginx closes both legs at the first FIN, its default (default on: nginx
 *                                        relays it with proxy_half_close, as HAProxy and Refract do)
 *
 * Everything is bounded: counts, a per-request cap, a per-connection timeout, and a hard timeout for the whole
 * run that kills every child process group.
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  CLK_TCK,
  canPin,
  cpuCoreTicks,
  cpuSecondsOf,
  killAllSync,
  minorFaultsOf,
  pinPid,
  rssKiBOf,
  spawnChild,
  StartError,
  stopChild,
  timeWaitCount,
  waitForPorts,
  type Child,
} from './proc.ts';
import type { CloseResult, CpsResult, LoadgenReply, LoadgenRequest, OpenResult, ThroughputResult } from './protocol.ts';
import { ALL_PROXIES, KNOWN_PROXIES, PROXIES, REPO_ROOT, buildRoots, setAccessLog, setAltNode, setHalfClose, setBaseline, setWorkers, type ProxyName, type RunningProxy } from './proxies.ts';
import { ensureBuild } from './refract-cli.ts';
import { fmt, fmtRatio, headline, markdownTable, median, medianRatio } from './stats.ts';
import type { UdpLoadRequest, UdpCloseResult, UdpOpenResult, UdpRateResult } from './udp-protocol.ts';
import { measureUdpMemory, measureUdpRate, udpMetricDefs, UDP_FULL, UDP_QUICK, waitForUdp, type UdpLoad, type UdpPlan } from './udp-measure.ts';

type Measure = 'throughput' | 'cps' | 'memory' | 'udp' | 'udp-memory';
const ALL_MEASURES: readonly Measure[] = ['throughput', 'cps', 'memory', 'udp', 'udp-memory'];
const isUdpMeasure = (m: Measure): m is 'udp' | 'udp-memory' => m === 'udp' || m === 'udp-memory';

const ORIGIN = { echo: 7001, sink: 7002, udp: 7003 } as const;
const MiB = 1024 * 1024;

interface Plan {
  readonly rounds: number;
  readonly throughput: { readonly totalBytes: number; readonly conns: number; readonly warmBytes: number; readonly maxMs: number };
  /** `serial`: connections run one at a time after the main run, for latency without queueing. */
  readonly cps: { readonly count: number; readonly concurrency: number; readonly warm: number; readonly serial: number; readonly maxMs: number };
  readonly memory: { readonly count: number; readonly concurrency: number; readonly warm: number; readonly settleMs: number; readonly maxMs: number };
  readonly udp: UdpPlan;
  /** Longest wait, before each start, for the machine to go quiet (other work on a shared box skews figures). */
  readonly quietMaxMs: number;
  /** The whole run is killed after this long. */
  readonly hardTimeoutMs: number;
}

const FULL: Plan = {
  rounds: 3,
  throughput: { totalBytes: 2048 * MiB, conns: 4, warmBytes: 128 * MiB, maxMs: 120_000 },
  // 6,000 warm-up connections per worker: Refract's JIT is still optimising its per-connection code until about
  // 4,000 (docs/benchmarks.md, "Steady state: the cps warm-up"); a C proxy and node-raw are flat from the start.
  cps: { count: 20_000, concurrency: 50, warm: 6_000, serial: 2_000, maxMs: 60_000 },
  memory: { count: 9_000, concurrency: 100, warm: 500, settleMs: 1_000, maxMs: 60_000 },
  udp: UDP_FULL,
  quietMaxMs: 5_000,
  hardTimeoutMs: 40 * 60_000,
};

const QUICK: Plan = {
  rounds: 1,
  throughput: { totalBytes: 256 * MiB, conns: 4, warmBytes: 32 * MiB, maxMs: 20_000 },
  cps: { count: 3_000, concurrency: 50, warm: 500, serial: 300, maxMs: 15_000 },
  memory: { count: 2_000, concurrency: 100, warm: 200, settleMs: 500, maxMs: 15_000 },
  udp: UDP_QUICK,
  quietMaxMs: 3_000,
  hardTimeoutMs: 4 * 60_000,
};

// ---------------------------------------------------------------------------------------------- arguments

const { values: argv } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    rounds: { type: 'string' },
    proxies: { type: 'string' },
    // A second Refract checkout, run as proxy `refract-base` beside this one (before/after in one interleaved run).
    baseline: { type: 'string' },
    // Another Node binary, run as proxy `refract-node` (this checkout, same config) beside `refract`.
    node: { type: 'string' },
    // Unpinned runs show what the proxy costs when the scheduler may move it (and the load) across both cores.
    'no-pin': { type: 'boolean', default: false },
    // Workers per proxy: nginx worker_processes, HAProxy nbthread, refract serve --workers (node-pipe: 1 only).
    workers: { type: 'string', default: '1' },
    // Every proxy writes an access log line per connection (on), or none does (off): the same work either way.
    'access-log': { type: 'string', default: 'on' },
    'half-close': { type: 'string', default: 'on' },
    'proxy-cores': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (argv.help) {
  process.stdout.write(
    'usage: npm run bench -- [--quick] [--only throughput,cps,memory,udp,udp-memory] [--rounds N] [--proxies nginx,haproxy,node-pipe,refract,refract-base,refract-node,refract-tsx,refract-api,refract-analytics,node-raw] [--baseline DIR] [--node PATH] [--no-pin] [--workers N] [--proxy-cores K] [--access-log on|off] [--half-close on|off]\n' +
      '       (udp selects udp-memory too)\n',
  );
  process.exit(0);
}
function listArg<T extends string>(raw: string | undefined, allowed: readonly T[], what: string): T[] {
  if (raw === undefined) return [...allowed];
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const i of items) {
    if (!(allowed as readonly string[]).includes(i)) {
      process.stderr.write(`unknown ${what} "${i}"; choose from ${allowed.join(', ')}\n`);
      process.exit(2);
    }
  }
  return allowed.filter((a) => items.includes(a));
}
// `udp` names the whole UDP comparison: rate/latency and memory per flow.
const measures = listArg(argv.only?.replace(/(^|,)\s*udp\s*(?=,|$)/, '$1udp,udp-memory'), ALL_MEASURES, 'measurement');
if (argv.baseline !== undefined) setBaseline(argv.baseline);
if (argv.node !== undefined) setAltNode(argv.node);
const proxyNames =
  argv.proxies === undefined && (argv.baseline !== undefined || argv.node !== undefined)
    ? [...ALL_PROXIES, ...(argv.baseline !== undefined ? (['refract-base'] as const) : []), ...(argv.node !== undefined ? (['refract-node'] as const) : [])]
    : listArg(argv.proxies, KNOWN_PROXIES, 'proxy');
const workers = Number(argv.workers);
if (!Number.isInteger(workers) || workers < 1 || workers > 16) {
  process.stderr.write(`--workers must be a whole number from 1 to 16, not "${argv.workers}"\n`);
  process.exit(2);
}
setWorkers(workers);
/** An on|off flag's value as a boolean; anything else ends the run with exit code 2. */
function onOff(flag: 'access-log' | 'half-close'): boolean {
  const v = argv[flag];
  if (v !== 'on' && v !== 'off') {
    process.stderr.write(`--${flag} is on or off, not "${v}"\n`);
    process.exit(2);
  }
  return v === 'on';
}
setAccessLog(onOff('access-log'));
setHalfClose(onOff('half-close'));
const basePlan = argv.quick ? QUICK : FULL;
const plan: Plan = argv.rounds === undefined ? basePlan : { ...basePlan, rounds: Math.max(1, Math.min(20, Number(argv.rounds) || 1)) };

// ---------------------------------------------------------------------------------------------- lifecycle

const hardTimer = setTimeout(() => {
  process.stderr.write(`\nbench: hard timeout after ${plan.hardTimeoutMs / 1000} s; killing everything\n`);
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

/**
 * Cores: the proxy's N workers get CPUs 0..N-1 (`--proxy-cores K`: CPUs 0..K-1, so that N workers can share fewer
 * cores than N); the load generator, the origin and this harness the CPUs after them. When the machine has no CPU
 * left over (2 workers on 2 cores), the proxy is pinned to all of them and the load generator shares them
 * (`coresShared`): rates are then the machine's, and the CPU-per-unit figures are what compare (docs/benchmarks.md,
 * "Two workers").
 */
const NCPU = cpus().length;
const proxyCores = argv['proxy-cores'] === undefined ? Math.min(workers, NCPU) : Number(argv['proxy-cores']);
if (!Number.isInteger(proxyCores) || proxyCores < 1 || proxyCores > NCPU) {
  process.stderr.write(`--proxy-cores must be a whole number from 1 to ${NCPU} (this machine's CPUs), not "${argv['proxy-cores']}"\n`);
  process.exit(2);
}
const PROXY_CPUS = Array.from({ length: proxyCores }, (_, i) => i);
const coresShared = NCPU <= proxyCores;
const LOADGEN_CPUS = coresShared ? Array.from({ length: NCPU }, (_, i) => i) : Array.from({ length: NCPU - proxyCores }, (_, i) => proxyCores + i);
const ALL_CPUS = [...new Set([...PROXY_CPUS, ...LOADGEN_CPUS])];
const pin = !argv['no-pin'] && canPin();
const proxyCpu = pin ? PROXY_CPUS.join(',') : undefined;
const genCpu = pin ? LOADGEN_CPUS.join(',') : undefined;
if (genCpu !== undefined) pinPid(process.pid, genCpu);

const runId = new Date().toISOString().replace(/[:.]/g, '-');
const resultsDir = join(REPO_ROOT, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const resultsFile = join(resultsDir, `${runId}.jsonl`);
const record = (obj: Record<string, unknown>): void => appendFileSync(resultsFile, `${JSON.stringify({ run: runId, ...obj })}\n`);
const say = (s: string): void => void process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------------------------- load generator

/** The load generator child and its request/response channel. Restarted if a request exceeds its hard limit. */
class Loadgen {
  private child!: Child;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: LoadgenReply) => void>();

  async start(): Promise<void> {
    this.child = spawnChild(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench/loadgen.ts')], genCpu, {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child.proc.on('message', (m: LoadgenReply) => {
      this.waiting.get(m.id)?.(m);
      this.waiting.delete(m.id);
    });
    // One tiny request proves the child is up (tsx start-up takes a moment).
    await this.request({ cmd: 'closeAll', maxMs: 1000 }, 30_000);
  }

  get pid(): number {
    return this.child.pid;
  }

  async restart(): Promise<void> {
    await stopChild(this.child, 500);
    this.waiting.clear();
    await this.start();
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 1000);
  }

  request(req: Omit<Extract<LoadgenRequest, { cmd: 'cps' }>, 'id'>, hardMs?: number): Promise<CpsResult>;
  request(req: Omit<Extract<LoadgenRequest, { cmd: 'throughput' }>, 'id'>, hardMs?: number): Promise<ThroughputResult>;
  request(req: Omit<Extract<LoadgenRequest, { cmd: 'open' }>, 'id'>, hardMs?: number): Promise<OpenResult>;
  request(req: Omit<Extract<LoadgenRequest, { cmd: 'closeAll' }>, 'id'>, hardMs?: number): Promise<CloseResult>;
  request(req: Omit<Extract<UdpLoadRequest, { cmd: 'udpRate' }>, 'id'>, hardMs?: number): Promise<UdpRateResult>;
  request(req: Omit<Extract<UdpLoadRequest, { cmd: 'udpOpen' }>, 'id'>, hardMs?: number): Promise<UdpOpenResult>;
  request(req: Omit<Extract<UdpLoadRequest, { cmd: 'udpCloseAll' }>, 'id'>, hardMs?: number): Promise<UdpCloseResult>;
  request(req: Omit<LoadgenRequest | UdpLoadRequest, 'id'>, hardMs?: number): Promise<unknown> {
    const id = this.nextId++;
    const limit = hardMs ?? req.maxMs + 15_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`load generator gave no answer to ${req.cmd} within ${limit} ms`));
      }, limit);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.ok) resolve(reply.result);
        else reject(new Error(`load generator: ${reply.error}`));
      });
      void this.child.exited.then((how) => {
        if (!this.waiting.has(id)) return;
        this.waiting.delete(id);
        clearTimeout(timer);
        reject(new Error(`load generator exited (${how}): ${this.child.tail().trim()}`));
      });
      this.child.proc.send({ ...req, id } as LoadgenRequest | UdpLoadRequest);
    });
  }

  /** The UDP commands in the shape `udp-measure.ts` uses. */
  get udp(): UdpLoad {
    return {
      rate: (port, payloadBytes, count, concurrency, maxMs, timeoutMs) => this.request({ cmd: 'udpRate', port, payloadBytes, count, concurrency, maxMs, timeoutMs }),
      open: (port, count, concurrency, maxMs, timeoutMs) => this.request({ cmd: 'udpOpen', port, count, concurrency, maxMs, timeoutMs }),
      closeAll: (maxMs) => this.request({ cmd: 'udpCloseAll', maxMs }),
    };
  }
}

// ---------------------------------------------------------------------------------------------- measurements

/** CPU state sampled at both ends of a measured window. */
interface Ticks {
  busy: number;
  irq: number;
  total: number;
}
interface Sample {
  readonly t: number;
  readonly proxyCpu: number;
  /** The same per measured process (Refract with workers: supervisor first, then the workers). */
  readonly proxyCpus: readonly number[];
  readonly genCpu: number;
  /** The proxy's CPUs, the load generator's CPUs, and every CPU either uses, summed. */
  readonly proxyCores: Ticks;
  readonly genCores: Ticks;
  readonly allCores: Ticks;
}

/** Clock ticks of several CPUs, summed. */
function coreTicks(list: readonly number[]): Ticks {
  const out = { busy: 0, irq: 0, total: 0 };
  for (const c of list) {
    const t = cpuCoreTicks(c);
    out.busy += t.busy;
    out.irq += t.irq;
    out.total += t.total;
  }
  return out;
}

function sample(proxyPids: readonly number[], genPids: readonly number[]): Sample {
  return {
    t: performance.now(),
    proxyCpu: cpuSecondsOf(proxyPids),
    proxyCpus: proxyPids.map((p) => cpuSecondsOf([p])),
    genCpu: cpuSecondsOf(genPids),
    proxyCores: coreTicks(PROXY_CPUS),
    genCores: coreTicks(LOADGEN_CPUS),
    allCores: coreTicks(ALL_CPUS),
  };
}

/**
 * Window figures: proxy CPU seconds; how busy our process sets were (% of one core) and the proxy's and the load
 * generator's CPUs (% of those CPUs; with shared cores the proxy's is NaN and the load generator's is every
 * core's); interrupt
 * time (`irqPct`); and the CPU that neither the proxy, the load generator, the origin nor interrupts used
 * (`otherPct`, % of one core): other work on a shared machine.
 */
function window(a: Sample, b: Sample): Record<string, number> {
  const wall = (b.t - a.t) / 1000;
  const pct = (x: { busy: number; total: number }, y: { busy: number; total: number }): number =>
    y.total > x.total ? (100 * (y.busy - x.busy)) / (y.total - x.total) : Number.NaN;
  const busySec = (b.allCores.busy - a.allCores.busy) / CLK_TCK;
  const irqSec = (b.allCores.irq - a.allCores.irq) / CLK_TCK;
  const oursSec = b.proxyCpu - a.proxyCpu + (b.genCpu - a.genCpu);
  // Per process, when there are several (results file only): which of them did the work.
  const perProcess = a.proxyCpus.length > 1 ? Object.fromEntries(b.proxyCpus.map((x, i) => [`proxyCpuSecP${i}`, x - (a.proxyCpus[i] ?? 0)])) : {};
  return {
    ...perProcess,
    proxyCpuSec: b.proxyCpu - a.proxyCpu,
    proxyProcPct: (100 * (b.proxyCpu - a.proxyCpu)) / wall,
    genProcPct: (100 * (b.genCpu - a.genCpu)) / wall,
    proxyCorePct: pin && !coresShared ? pct(a.proxyCores, b.proxyCores) : Number.NaN,
    genCorePct: pin ? pct(a.genCores, b.genCores) : Number.NaN,
    irqPct: (100 * irqSec) / wall,
    otherPct: Math.max(0, (100 * (busySec - irqSec - oursSec)) / wall),
  };
}

/**
 * Waits until both cores are nearly idle (under QUIET_PCT for two samples in a row) or `maxMs` passes.
 * Returns the last busy figure, % of all cores.
 */
async function waitQuiet(maxMs: number): Promise<number> {
  const both = (): { busy: number; total: number } => coreTicks(ALL_CPUS);
  const deadline = performance.now() + maxMs;
  let prev = both();
  let calm = 0;
  let last = Number.NaN;
  do {
    await sleep(QUIET_SAMPLE_MS);
    const now = both();
    last = now.total > prev.total ? (100 * (now.busy - prev.busy)) / (now.total - prev.total) : 0;
    prev = now;
    calm = last < QUIET_PCT ? calm + 1 : 0;
  } while (calm < 2 && performance.now() < deadline);
  return last;
}
const QUIET_PCT = 10;
const QUIET_SAMPLE_MS = 300;
/** Other work above this (% of one core) during a window earns a note in the table. */
const OTHER_LOAD_NOTE_PCT = 15;

type Metrics = Record<string, number>;
interface MeasureOutcome {
  readonly metrics: Metrics;
  readonly notes: string[];
}

async function measureThroughput(lg: Loadgen, p: RunningProxy, port: number, genPids: number[]): Promise<MeasureOutcome> {
  const c = plan.throughput;
  await lg.request({ cmd: 'throughput', port, totalBytes: c.warmBytes, conns: c.conns, maxMs: c.maxMs });
  const a = sample(p.measuredPids, genPids);
  const faultsBefore = minorFaultsOf(p.measuredPids);
  const r = await lg.request({ cmd: 'throughput', port, totalBytes: c.totalBytes, conns: c.conns, maxMs: c.maxMs });
  const b = sample(p.measuredPids, genPids);
  const faults = minorFaultsOf(p.measuredPids) - faultsBefore;
  const rssAfterKiB = rssKiBOf(p.measuredPids);
  const notes: string[] = [];
  let bytes = r.ackedBytes;
  if (r.timedOut) {
    notes.push(`timed out after ${fmt(r.elapsedMs / 1000, 1)} s; figure from bytes written (upper bound)`);
    bytes = r.writtenBytes;
  }
  if (r.errors > 0) notes.push(`${r.errors} conn errors (${r.firstError ?? '?'})`);
  const w = window(a, b);
  return {
    metrics: {
      throughputMBps: bytes / 1e6 / (r.elapsedMs / 1000),
      // Acked bytes only: a timed-out run's CPU is not divided by bytes the sink never confirmed.
      cpuMsPerGB: r.ackedBytes > 0 ? ((w.proxyCpuSec ?? Number.NaN) * 1000) / (r.ackedBytes / 1e9) : Number.NaN,
      // Thousands of minor page faults per GB: the fingerprint of a read path that lands on fresh memory.
      kFaultsPerGB: r.ackedBytes > 0 ? faults / 1000 / (r.ackedBytes / 1e9) : Number.NaN,
      rssAfterMiB: rssAfterKiB / 1024,
      bytes,
      elapsedMs: r.elapsedMs,
      errors: r.errors,
      ...w,
    },
    notes,
  };
}

async function measureCps(lg: Loadgen, p: RunningProxy, port: number, genPids: number[]): Promise<MeasureOutcome> {
  const c = plan.cps;
  // The kernel spreads connections over the workers: each gets its share of the warm-up.
  await lg.request({ cmd: 'cps', port, count: c.warm * workers, concurrency: c.concurrency, maxMs: c.maxMs });
  const timeWaitBefore = timeWaitCount();
  const a = sample(p.measuredPids, genPids);
  const r = await lg.request({ cmd: 'cps', port, count: c.count, concurrency: c.concurrency, maxMs: c.maxMs });
  const b = sample(p.measuredPids, genPids);
  const w = window(a, b);
  const serial = await lg.request({ cmd: 'cps', port, count: c.serial, concurrency: 1, maxMs: c.maxMs });
  const notes: string[] = [];
  if (r.timedOut) notes.push(`stopped at the ${c.maxMs / 1000} s cap after ${r.completed} conns`);
  if (r.errors + serial.errors > 0) notes.push(`${r.errors + serial.errors} conn errors (${r.firstError ?? serial.firstError ?? '?'})`);
  const completed = r.completed;
  return {
    metrics: {
      cps: completed / (r.elapsedMs / 1000),
      p50Us: r.p50Us,
      p99Us: r.p99Us,
      serialP50Us: serial.p50Us,
      serialP99Us: serial.p99Us,
      cpuUsPerConn: completed > 0 ? ((w.proxyCpuSec ?? Number.NaN) * 1e6) / completed : Number.NaN,
      completed,
      timeWaitBefore,
      errors: r.errors,
      elapsedMs: r.elapsedMs,
      ...w,
    },
    notes,
  };
}

async function measureMemory(lg: Loadgen, p: RunningProxy, port: number): Promise<MeasureOutcome> {
  const c = plan.memory;
  // A warm-up open/close first, so lazily grown pools and JIT state are not charged to the measured connections.
  await lg.request({ cmd: 'open', port, count: c.warm, concurrency: c.concurrency, maxMs: c.maxMs });
  await lg.request({ cmd: 'closeAll', maxMs: 10_000 });
  await sleep(c.settleMs);
  const before = rssKiBOf(p.measuredPids);
  const opened = await lg.request({ cmd: 'open', port, count: c.count, concurrency: c.concurrency, maxMs: c.maxMs });
  await sleep(c.settleMs);
  const after = rssKiBOf(p.measuredPids);
  const closed = await lg.request({ cmd: 'closeAll', maxMs: 10_000 });
  const notes: string[] = [];
  if (opened.opened < c.count) notes.push(`opened ${opened.opened}/${c.count} (${opened.firstError ?? 'timeout'})`);
  if (closed.droppedBeforeClose > 0) notes.push(`proxy dropped ${closed.droppedBeforeClose} idle conns`);
  return {
    metrics: {
      rssKiBPerConn: opened.opened > 0 ? (after - before) / opened.opened : Number.NaN,
      rssBeforeKiB: before,
      rssAfterKiB: after,
      opened: opened.opened,
      openMs: opened.elapsedMs,
      dropped: closed.droppedBeforeClose,
    },
    notes,
  };
}

/** Runs one UDP measurement (udp-measure.ts) against a started proxy, after checking its UDP port answers. */
async function measureUdp(lg: Loadgen, p: RunningProxy, measure: 'udp' | 'udp-memory', ports: { port: number; keptPort: number }, genPids: number[]): Promise<MeasureOutcome> {
  for (const port of new Set([ports.port, ports.keptPort])) {
    if (!(await waitForUdp(lg.udp, port, 10_000))) return { metrics: {}, notes: [`no UDP echo through port ${port} within 10 s`] };
  }
  const probe = {
    startWindow: () => {
      const a = sample(p.measuredPids, genPids);
      return () => window(a, sample(p.measuredPids, genPids));
    },
    rssKiB: () => rssKiBOf(p.measuredPids),
  };
  return measure === 'udp' ? measureUdpRate(lg.udp, probe, plan.udp, ports) : measureUdpMemory(lg.udp, probe, plan.udp, ports.keptPort);
}

// ---------------------------------------------------------------------------------------------- main

interface Row {
  readonly round: number;
  readonly proxy: ProxyName;
  readonly measure: Measure;
  readonly metrics: Metrics;
  readonly notes: readonly string[];
}
const rows: Row[] = [];
/** Proxies that will not be run: the one-line reason for the table and, if it crashed, its output tail. */
const unavailable = new Map<ProxyName, { readonly line: string; readonly output: string }>();

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-bench-'));
  const env = {
    type: 'env',
    node: process.version,
    kernel: release(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    pinned: pin,
    workers,
    accessLog: argv['access-log'],
    halfClose: argv['half-close'],
    proxyCpus: PROXY_CPUS,
    loadgenCpus: LOADGEN_CPUS,
    coresShared,
    quick: argv.quick,
    plan,
    measures,
    versions: Object.fromEntries(proxyNames.map((n) => [n, PROXIES[n].missing() ?? PROXIES[n].version()])),
  };
  record(env);
  say(`bench: ${argv.quick ? 'quick' : 'full'} run, ${plan.rounds} round(s), ${measures.join('+')}, ${workers} worker(s) per proxy, access logs ${argv['access-log']}, nginx half-close ${argv['half-close']}; results → ${resultsFile}`);
  if (pin && coresShared) say(`bench: ${workers} workers on ${NCPU} cores: proxy pinned to CPUs ${proxyCpu}, load generator and origin share them`);
  if (pin && !coresShared && workers > proxyCores) say(`bench: ${workers} workers per proxy share CPUs ${proxyCpu}; load generator and origin on CPUs ${genCpu}`);
  if (!pin) say(argv['no-pin'] ? 'bench: --no-pin: proxy and load generator are NOT pinned apart' : 'bench: WARNING taskset unavailable or one CPU: proxy and load generator are NOT pinned apart');

  for (const name of proxyNames) {
    const why = PROXIES[name].missing();
    if (why !== undefined) unavailable.set(name, { line: why, output: '' });
  }
  // Refract runs its build (dist/cli.js), as the installed package does; a stale or missing build is made now.
  for (const root of buildRoots(proxyNames.filter((n) => !unavailable.has(n)))) {
    try {
      if (ensureBuild(root) === 'built') say(`bench: built ${root} (npm run build): its dist/ was older than src/`);
    } catch (e) {
      const hit = (n: ProxyName): boolean => (root === REPO_ROOT ? n.startsWith('refract') && n !== 'refract-tsx' && n !== 'refract-base' : n === 'refract-base');
      for (const n of proxyNames) if (hit(n)) unavailable.set(n, { line: `npm run build failed in ${root}`, output: (e as Error).message });
    }
  }

  const origin = spawnChild(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'bench/origin.ts'), '--echo-port', String(ORIGIN.echo), '--sink-port', String(ORIGIN.sink)],
    genCpu,
    { cwd: REPO_ROOT },
  );
  await waitForPorts(origin, [ORIGIN.echo, ORIGIN.sink], 30_000);
  const lg = new Loadgen();
  await lg.start();
  await warmUp(lg);

  try {
    for (let round = 1; round <= plan.rounds; round++) {
      for (const measure of measures) {
        // Each round starts one proxy later, so no proxy always inherits the previous one's TIME_WAIT sockets
        // or always runs first after the quiet wait.
        const order = proxyNames.map((_, i) => proxyNames[(i + round - 1) % proxyNames.length] as ProxyName);
        for (const name of order) {
          if (unavailable.has(name)) continue;
          const def = PROXIES[name];
          if (isUdpMeasure(measure) && def.udp === undefined) continue; // an n/a row in the table
          const port = measure === 'throughput' ? def.sinkPort : def.echoPort;
          const busyPct = await waitQuiet(plan.quietMaxMs);
          let running: RunningProxy;
          try {
            running = await def.start(dir, proxyCpu, ORIGIN);
          } catch (e) {
            const output = e instanceof StartError ? e.output : '';
            const line = `${name} failed to start: ${(e as Error).message}${output.trim() === '' ? '' : `: ${headline(output)}`}`;
            unavailable.set(name, { line, output });
            record({ type: 'start-failed', round, proxy: name, measure, error: line, output });
            say(`bench: ${line}`);
            continue;
          }
          if (origin.proc.exitCode !== null || origin.proc.signalCode !== null) throw new Error(`the origin exited: ${origin.tail().trim().slice(-500)}`);
          const genPids = [lg.pid, origin.pid];
          let outcome: MeasureOutcome;
          try {
            outcome =
              measure === 'throughput'
                ? await measureThroughput(lg, running, port, genPids)
                : measure === 'cps'
                  ? await measureCps(lg, running, port, genPids)
                  : measure === 'memory'
                    ? await measureMemory(lg, running, port)
                    : await measureUdp(lg, running, measure, def.udp!, genPids);
          } catch (e) {
            const msg = (e as Error).message;
            outcome = { metrics: {}, notes: [msg] };
            if (msg.startsWith('load generator')) await lg.restart();
          }
          if (running.child.proc.exitCode !== null || running.child.proc.signalCode !== null) {
            outcome.notes.push(`${name} exited during ${measure}: ${running.child.tail().trim().slice(-300)}`);
          }
          await running.stop();
          // Workers may outlive their parent by a moment (a draining Refract worker holds its UDP port): the next
          // start waits for them, or it would find its ports taken.
          await waitGone(running.measuredPids, 5_000);
          const row: Row = { round, proxy: name, measure, metrics: { ...outcome.metrics, busyBeforePct: busyPct }, notes: outcome.notes };
          rows.push(row);
          record({ type: 'measure', ...row });
          say(`  round ${round} ${measure.padEnd(10)} ${name.padEnd(9)} ${summarise(row)}`);
        }
      }
    }
  } finally {
    await lg.stop();
    await stopChild(origin);
    rmSync(dir, { recursive: true, force: true });
  }

  const table = renderTable();
  record({ type: 'summary', table });
  process.stdout.write(`\n${table}\n\n`);
  process.stdout.write(
    `${workers} worker(s) per proxy${pin ? `, proxy on CPU ${proxyCpu}, load generator on CPU ${genCpu}` : ', unpinned'}, ` +
      `access logs ${argv['access-log'] === 'on' ? 'on (nginx, HAProxy and Refract write a line per connection)' : 'off'}, ` +
      `half-close ${argv['half-close'] === 'on' ? 'relayed by every proxy (nginx: proxy_half_close on)' : 'relayed by all but nginx (its default: both legs close at the first FIN)'}. ` +
    `${plan.rounds} round(s); figures are medians, ×nginx/×haproxy are medians of same-round ratios (>1 means larger).` +
      ` Raw results: ${resultsFile}\n`,
  );
  for (const [name, { line, output }] of unavailable) {
    if (output.trim() !== '') process.stdout.write(`\n${line}\n--- last output of ${name} ---\n${output.trimEnd()}\n`);
  }
}

/**
 * Warms the load generator's and the origin's JIT straight against the origin, so the first proxy measured does
 * not pay for it. (That direct path is no ceiling for the proxied figures: without a proxy both ends of every
 * connection, and all their kernel work, sit on the load-generator core.)
 */
async function warmUp(lg: Loadgen): Promise<void> {
  const c = plan.cps;
  const t = plan.throughput;
  await lg.request({ cmd: 'cps', port: ORIGIN.echo, count: 2 * c.warm, concurrency: c.concurrency, maxMs: c.maxMs });
  await lg.request({ cmd: 'throughput', port: ORIGIN.sink, totalBytes: 2 * t.warmBytes, conns: t.conns, maxMs: t.maxMs });
  await lg.request({ cmd: 'open', port: ORIGIN.echo, count: plan.memory.warm, concurrency: plan.memory.concurrency, maxMs: plan.memory.maxMs });
  await lg.request({ cmd: 'closeAll', maxMs: 10_000 });
  if (measures.some(isUdpMeasure)) await lg.udp.rate(ORIGIN.udp, 64, plan.udp.rate.warm, plan.udp.rate.concurrency, plan.udp.rate.maxMs, plan.udp.rate.timeoutMs);
}

/** Waits until none of `pids` exists any more, at most `maxMs`. */
async function waitGone(pids: readonly number[], maxMs: number): Promise<void> {
  const deadline = performance.now() + maxMs;
  while (pids.some((p) => existsSync(`/proc/${p}`)) && performance.now() < deadline) await sleep(50);
}

function summarise(r: Row): string {
  const m = r.metrics;
  const parts =
    r.measure === 'throughput'
      ? [`${fmt(m.throughputMBps ?? NaN)} MB/s`, `${fmt(m.cpuMsPerGB ?? NaN)} CPU ms/GB`, `${fmt(m.kFaultsPerGB ?? NaN, 1)} k faults/GB`, `RSS ${fmt(m.rssAfterMiB ?? NaN)} MiB`]
      : r.measure === 'cps'
        ? [
            `${fmt(m.cps ?? NaN)} conn/s`,
            `p50/p99 ${fmt(m.p50Us ?? NaN)}/${fmt(m.p99Us ?? NaN)} µs`,
            `serial ${fmt(m.serialP50Us ?? NaN)}/${fmt(m.serialP99Us ?? NaN)} µs`,
            `${fmt(m.cpuUsPerConn ?? NaN, 1)} µs CPU/conn`,
          ]
        : r.measure === 'memory'
          ? [`${fmt(m.rssKiBPerConn ?? NaN, 2)} KiB/conn`]
          : r.measure === 'udp'
            ? [
                ...plan.udp.payloads.map((b) => `${b} B ${fmt(m[`u${b}Dps`] ?? NaN)} dgram/s p99 ${fmt(m[`u${b}P99Us`] ?? NaN)} µs ${fmt(m[`u${b}CpuUsPerRt`] ?? NaN, 1)} µs CPU/rt`),
                `kept 64 B ${fmt(m.u64KeptDps ?? NaN)} dgram/s`,
              ]
            : [`${fmt(m.udpKiBPerFlow ?? NaN, 2)} KiB/flow`];
  if (m.proxyProcPct !== undefined) parts.push(`proxy ${fmt(m.proxyProcPct)}% CPU, loadgen core ${fmt(m.genCorePct ?? NaN)}%`);
  if (m.otherPct !== undefined && m.otherPct > OTHER_LOAD_NOTE_PCT) parts.push(`other load ${fmt(m.otherPct)}%`);
  if ((m.busyBeforePct ?? 0) >= QUIET_PCT) parts.push(`not quiet before start (${fmt(m.busyBeforePct ?? NaN)}%)`);
  return [...parts, ...r.notes].join('  ');
}

interface MetricDef {
  readonly key: string;
  readonly measure: Measure;
  readonly label: string;
  readonly digits: number;
  /** Rate rows: the keys of the proxy-CPU and load-generator-core figures of the same window. */
  readonly cores?: readonly [string, string];
  /** Whether the row carries the measurement's notes. */
  readonly notes?: boolean;
}
const CORES = ['proxyProcPct', 'genCorePct'] as const;
const METRICS: readonly MetricDef[] = [
  { key: 'throughputMBps', measure: 'throughput', label: 'throughput MB/s ↑', digits: 0, cores: CORES, notes: true },
  { key: 'cpuMsPerGB', measure: 'throughput', label: 'proxy CPU ms/GB ↓', digits: 0 },
  { key: 'kFaultsPerGB', measure: 'throughput', label: 'proxy page faults k/GB ↓', digits: 1 },
  { key: 'rssAfterMiB', measure: 'throughput', label: 'proxy RSS MiB after bulk ↓', digits: 0 },
  { key: 'cps', measure: 'cps', label: 'connections/s ↑', digits: 0, cores: CORES, notes: true },
  { key: 'p50Us', measure: 'cps', label: 'latency p50 µs ↓', digits: 0 },
  { key: 'p99Us', measure: 'cps', label: 'latency p99 µs ↓', digits: 0 },
  { key: 'serialP50Us', measure: 'cps', label: 'latency p50 µs, 1 at a time ↓', digits: 0 },
  { key: 'serialP99Us', measure: 'cps', label: 'latency p99 µs, 1 at a time ↓', digits: 0 },
  { key: 'cpuUsPerConn', measure: 'cps', label: 'proxy CPU µs/conn ↓', digits: 1 },
  { key: 'rssKiBPerConn', measure: 'memory', label: 'RSS KiB/idle conn ↓', digits: 2, notes: true },
  ...udpMetricDefs(plan.udp),
];
/**
 * A load-generator core this busy while the proxy process used less than PROXY_SATURATED_PCT of its core means
 * the rate figure is capped by the load generator (the CPU-per-unit figures stay comparable).
 */
const GEN_SATURATED_PCT = 95;
const PROXY_SATURATED_PCT = 90;

function byRound(proxy: ProxyName, measure: Measure, key: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const r of rows) {
    const v = r.metrics[key];
    if (r.proxy === proxy && r.measure === measure && v !== undefined && Number.isFinite(v)) m.set(r.round, v);
  }
  return m;
}

function renderTable(): string {
  const header = ['metric', 'proxy', 'median', 'vs nginx', 'vs haproxy', 'proxy CPU %', 'loadgen core %', 'rounds', 'notes'];
  const out: string[][] = [];
  for (const def of METRICS) {
    if (!measures.includes(def.measure)) continue;
    let first = true;
    for (const name of proxyNames) {
      const vals = byRound(name, def.measure, def.key);
      const mine = rows.filter((r) => r.proxy === name && r.measure === def.measure);
      if (mine.length === 0) continue;
      const showCores = def.cores !== undefined;
      const proxyCore = def.cores ? median([...byRound(name, def.measure, def.cores[0]).values()]) : Number.NaN;
      const genCore = def.cores ? median([...byRound(name, def.measure, def.cores[1]).values()]) : Number.NaN;
      const notes = [...new Set(mine.flatMap((r) => r.notes))];
      const other = Math.max(...mine.map((r) => r.metrics.otherPct ?? 0));
      if (other > OTHER_LOAD_NOTE_PCT) notes.push(`other load up to ${fmt(other)}% of a core`);
      if (showCores && !coresShared && genCore >= GEN_SATURATED_PCT && proxyCore < PROXY_SATURATED_PCT) notes.unshift('load-generator bound');
      if (showCores && coresShared && genCore >= GEN_SATURATED_PCT) notes.unshift('machine bound (proxy and load generator share every core)');
      out.push([
        first ? def.label : '',
        name,
        fmt(median([...vals.values()]), def.digits),
        name === 'nginx' ? '' : fmtRatio(medianRatio(vals, byRound('nginx', def.measure, def.key))),
        name === 'haproxy' ? '' : fmtRatio(medianRatio(vals, byRound('haproxy', def.measure, def.key))),
        showCores ? fmt(proxyCore) : '',
        showCores ? fmt(genCore) : '',
        String(vals.size),
        def.notes === true ? notes.join('; ') : '',
      ]);
      first = false;
    }
  }
  if (measures.some(isUdpMeasure)) {
    for (const name of proxyNames) {
      const why = PROXIES[name].udpMissing;
      if (PROXIES[name].udp === undefined && why !== undefined) out.push(['(UDP rows)', name, 'n/a', '', '', '', '', '0', why]);
    }
  }
  for (const [name, { line }] of unavailable) {
    const ran = rows.some((r) => r.proxy === name);
    out.push([ran ? '(stopped)' : '(not run)', name, '', '', '', '', '', ran ? '' : '0', line]);
  }
  return markdownTable(header, out);
}


try {
  await main();
} catch (e) {
  say(`bench: ${(e as Error).stack ?? String(e)}`);
  killAllSync();
  process.exitCode = 1;
} finally {
  clearTimeout(hardTimer);
}
