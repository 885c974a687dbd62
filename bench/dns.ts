/**
 * `npm run bench:dns`: Refract's DNS server (src/dns) answering a fixed zone of 1,000 names over UDP on loopback.
 *
 *   node --import tsx bench/dns.ts              3 rounds of 5 s per load level (about 1 minute)
 *   node --import tsx bench/dns.ts --quick      1 round of 2 s per level (a smoke run)
 *   node --import tsx bench/dns.ts --rounds 5 --seconds 10
 *
 * The server runs in a child process (this file with `--serve`): `startDnsServer` over the real Network port
 * (src/net/node), with the view of a config of 1,000 apps `app0.bench.test` … `app999.bench.test` (dns.type CNAME,
 * edge addresses 127.0.0.1 and ::1; so an A query is answered with the CNAME and the target's A record, 2 records).
 * It binds 127.0.0.1 on port 0 and prints the port. With taskset and two CPUs, the server is pinned to CPU 0 and
 * this driver to CPU 1.
 *
 * The driver: one UDP socket, queries for A of a name drawn from the 1,000 in a fixed pseudo-random order, with at
 * most W queries in flight (each answer frees its slot for the next query; an answer not back within 1 s counts as
 * lost and frees its slot). W = 1 gives the latency of one query at a time, W = 32 and W = 128 load the server.
 * Every answer's header is checked (id, QR, rcode NOERROR, two answer records): a wrong one fails the run.
 * Figures per level: answers per second, latency p50 / p99 / max (send to receive, this process's clock), lost,
 * and the server's CPU per answer (from /proc). Two more figures: `answerQuery` alone in this process (no sockets),
 * and the time to build the 1,000-name view (what `refract serve` does after every applied change).
 *
 * Every loop is bounded in count (2,000,000 queries per level) and time (`--seconds`); the child is killed at the
 * end, and on a hard timeout.
 */
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { encode } from 'dns-packet';
import { startDnsServer } from '../src/dns/server.ts';
import { answerQuery } from '../src/dns/answer.ts';
import { dnsViewOf } from '../src/dns/view.ts';
import { validateConfig } from '../src/model/config.ts';
import { createNodeNetwork } from '../src/net/node/network.ts';
import type { RefractConfig } from '../src/model/types.ts';
import { canPin, cpuSeconds, pinPid, spawnChild, stopChild, type Child } from './proc.ts';
import { fmt, markdownTable, median } from './stats.ts';

const NAMES = 1_000;
const MAX_QUERIES = 2_000_000;
const LOSS_MS = 1_000;
const HARD_TIMEOUT_MS = 10 * 60_000;

function benchConfig(): RefractConfig {
  const apps = Array.from({ length: NAMES }, (_, i) => ({
    id: `app${i}`,
    protocol: `tcp/${10_000 + i}`,
    dns: { type: 'CNAME', name: `app${i}.bench.test` },
    origin_direct: ['tcp://127.0.0.1:9'],
  }));
  const r = validateConfig({ edge: { addresses: ['127.0.0.1', '::1'] }, zones: [{ name: 'bench.test' }], dns: { listen: '127.0.0.1:5300', ttl: 30 }, apps });
  if (!r.ok) throw new Error(JSON.stringify(r.issues.slice(0, 3)));
  return r.config;
}

/** 1,000 encoded queries (A of each name), in a fixed shuffled order (a small LCG: the same on every run). */
function queries(): Buffer[] {
  const order = Array.from({ length: NAMES }, (_, i) => i);
  let s = 12_345;
  for (let i = order.length - 1; i > 0; i--) {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.map((i) => encode({ id: 0, type: 'query', flags: 0, questions: [{ name: `app${i}.bench.test`, type: 'A' }] }));
}

// ── the server child ────────────────────────────────────────────────────────────────────────────────────────────

async function serve(): Promise<void> {
  const view = dnsViewOf(benchConfig());
  const server = await startDnsServer(createNodeNetwork(), { host: '127.0.0.1', port: 0 }, () => view);
  process.stdout.write(`port ${server.address.port}\n`);
  const stop = (): void => {
    const c = server.counters();
    process.stdout.write(`counters ${JSON.stringify(c)}\n`);
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// ── the driver ──────────────────────────────────────────────────────────────────────────────────────────────────

interface LevelResult {
  readonly window: number;
  readonly answers: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly lost: number;
  readonly serverCpuUsPerAnswer: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function level(port: number, serverPid: number, window: number, seconds: number, qs: readonly Buffer[]): Promise<LevelResult> {
  const sock: Socket = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const sentAt = new Float64Array(65_536).fill(-1);
  const latencies: number[] = [];
  let next = 0;
  let sent = 0;
  let answers = 0;
  let lost = 0;
  let bad: string | undefined;
  let inFlight = 0;
  let stopping = false;
  let idSeq = 0;
  const cpu0 = cpuSeconds(serverPid);
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;

  const send = (): void => {
    if (stopping || sent >= MAX_QUERIES) return;
    // The next free id (with W ≤ 128 in flight a slot is found at once).
    let id = idSeq;
    for (let k = 0; k < 65_536 && sentAt[id]! >= 0; k++) id = (id + 1) & 0xffff;
    idSeq = (id + 1) & 0xffff;
    const q = qs[next]!;
    next = (next + 1) % qs.length;
    q.writeUInt16BE(id, 0);
    sentAt[id] = performance.now();
    inFlight++;
    sent++;
    sock.send(q, port, '127.0.0.1');
  };

  sock.on('message', (msg: Buffer) => {
    const now = performance.now();
    const id = msg.readUInt16BE(0);
    const at = sentAt[id]!;
    if (at < 0) return; // late answer to a query already counted lost
    sentAt[id] = -1;
    inFlight--;
    const flags = msg.readUInt16BE(2);
    if ((flags & 0x8000) === 0 || (flags & 0xf) !== 0 || msg.readUInt16BE(6) !== 2) bad ??= `bad answer: flags ${flags.toString(16)}, ancount ${msg.readUInt16BE(6)}`;
    answers++;
    latencies.push(now - at);
    if (now < deadline) send();
  });

  for (let i = 0; i < window; i++) send();
  // Loss sweep: an answer not back within LOSS_MS frees its slot.
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = performance.now();
      for (let id = 0; id < 65_536; id++) {
        if (sentAt[id]! >= 0 && now - sentAt[id]! > LOSS_MS) {
          sentAt[id] = -1;
          inFlight--;
          lost++;
          if (now < deadline) send();
        }
      }
      if (now >= deadline || sent >= MAX_QUERIES) {
        stopping = true;
        if (inFlight === 0 || now >= deadline + LOSS_MS) {
          clearInterval(tick);
          resolve();
        }
      }
    }, 50);
  });
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(serverPid) - cpu0;
  sock.close();
  if (bad !== undefined) throw new Error(bad);
  const sorted = Float64Array.from(latencies).sort();
  return {
    window,
    answers,
    seconds: elapsed,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN,
    lost,
    serverCpuUsPerAnswer: answers > 0 ? (cpu * 1e6) / answers : NaN,
  };
}

/** answerQuery alone: answers per second in this process, over the 1,000 queries in turn, for about `ms`. */
function answerFunctionRate(qs: readonly Buffer[], ms: number): number {
  const view = dnsViewOf(benchConfig());
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms && n < 5_000_000) {
    for (let i = 0; i < 1000; i++) {
      const out = answerQuery(qs[(n + i) % qs.length]!, 'udp', view);
      if (out.kind !== 'answer' || out.rcode !== 'NOERROR') throw new Error('answerQuery: unexpected outcome');
    }
    n += 1000;
  }
  return n / ((performance.now() - t0) / 1000);
}

/** Building the view of 1,000 apps: median ms over `runs`. */
function viewBuildMs(runs: number): number {
  const cfg = benchConfig();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    dnsViewOf(cfg);
    times.push(performance.now() - t0);
  }
  return median(times);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { serve: { type: 'boolean' }, quick: { type: 'boolean' }, rounds: { type: 'string' }, seconds: { type: 'string' } },
  });
  if (values.serve === true) return serve();
  const quick = values.quick === true;
  const rounds = Number(values.rounds ?? (quick ? 1 : 3));
  const seconds = Number(values.seconds ?? (quick ? 2 : 5));
  const windows = [1, 32, 128];
  const hard = setTimeout(() => {
    process.stderr.write('bench:dns: hard timeout\n');
    process.exit(2);
  }, HARD_TIMEOUT_MS);
  hard.unref();

  const pin = canPin();
  if (pin) pinPid(process.pid, 1);
  const child: Child = spawnChild(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--serve'], pin ? 0 : undefined);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`server did not start: ${child.tail()}`)), 30_000);
      child.proc.stdout!.on('data', (d: Buffer) => {
        const m = /port (\d+)/.exec(child.tail());
        if (m !== null) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
        void d;
      });
    });
    const qs = queries();
    process.stdout.write(`bench:dns: server pid ${child.pid} on 127.0.0.1:${port}${pin ? ' (server on CPU 0, driver on CPU 1)' : ' (not pinned)'}; ${rounds} rounds × ${seconds} s per level\n`);
    // Warm-up: the JIT and the socket buffers.
    await level(port, child.pid, 32, 1, qs);
    const byWindow = new Map<number, LevelResult[]>();
    for (let r = 0; r < rounds; r++) {
      for (const w of windows) {
        const res = await level(port, child.pid, w, seconds, qs);
        byWindow.set(w, [...(byWindow.get(w) ?? []), res]);
        process.stdout.write(
          `round ${r + 1} W=${w}: ${fmt(res.answers / res.seconds)} answers/s, p50 ${fmt(res.p50 * 1000)} µs, p99 ${fmt(res.p99 * 1000)} µs, max ${fmt(res.max, 1)} ms, lost ${res.lost}, server ${fmt(res.serverCpuUsPerAnswer, 1)} µs CPU/answer\n`,
        );
      }
    }
    const rows = windows.map((w) => {
      const rs = byWindow.get(w) ?? [];
      return [
        String(w),
        fmt(median(rs.map((x) => x.answers / x.seconds))),
        fmt(median(rs.map((x) => x.p50 * 1000))),
        fmt(median(rs.map((x) => x.p99 * 1000))),
        fmt(Math.max(...rs.map((x) => x.max)), 1),
        String(rs.reduce((a, x) => a + x.lost, 0)),
        fmt(median(rs.map((x) => x.serverCpuUsPerAnswer)), 1),
      ];
    });
    process.stdout.write(`\nMedian of ${rounds} round(s), ${seconds} s each:\n\n`);
    process.stdout.write(markdownTable(['in flight', 'answers/s', 'p50 µs', 'p99 µs', 'max ms', 'lost', 'server µs CPU/answer'], rows) + '\n');
    process.stdout.write(`\nanswerQuery alone (no sockets, this process): ${fmt(answerFunctionRate(qs, quick ? 500 : 2000))} answers/s\n`);
    process.stdout.write(`view of ${NAMES} names built in ${fmt(viewBuildMs(quick ? 5 : 21), 1)} ms (median)\n`);
  } finally {
    await stopChild(child);
  }
}

await main();
