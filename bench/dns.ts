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
 * The peer: when NSD (`apt-get install -y nsd`) is installed, the same zone is served by NSD too (one server
 * process, `server-count: 1`, pinned to CPU 0 like Refract's child; a zone file written from the same 1,000 names:
 * each `appN.bench.test` a CNAME to `appN.spectrum.bench.test` with an A record 127.0.0.1, the exact records Refract
 * answers), and each round runs every level against Refract then NSD, so both see the same machine. The table gains
 * NSD's rows and the ratio Refract/NSD of answers per second. `--no-peer` skips it; without NSD it is skipped with a
 * note.
 *
 * Every loop is bounded in count (2,000,000 queries per level) and time (`--seconds`); the children are killed at
 * the end, and on a hard timeout.
 */
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { encode } from 'dns-packet';
import { startDnsServer } from '../src/dns/server.ts';
import { answerQuery } from '../src/dns/answer.ts';
import { dnsViewOf } from '../src/dns/view.ts';
import { validateConfig } from '../src/model/config.ts';
import { createNodeNetwork } from '../src/net/node/network.ts';
import type { RefractConfig } from '../src/model/types.ts';
import { canPin, pinPid, spawnChild, stopChild, type Child } from './proc.ts';
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

/** CPU seconds of every process in a process group (NSD serves from a child of its main process). */
function groupCpuSeconds(pgid: number): number {
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Field 5 is the process group; utime and stime are fields 14 and 15.
      if (Number(rest[2]) === pgid) total += Number(rest[11]) + Number(rest[12]);
    } catch {
      // the process ended while we looked
    }
  }
  return total / CLK_TCK;
}

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

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
  const cpu0 = groupCpuSeconds(serverPid);
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
  const cpu = groupCpuSeconds(serverPid) - cpu0;
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

// ── the peer: NSD ───────────────────────────────────────────────────────────────────────────────────────────────

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    try {
      execFileSync('test', ['-x', join(dir, bin)]);
      return join(dir, bin);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The zone Refract answers for the bench config, as a zone file: SOA, NS, and per name a CNAME and the target's A. */
function nsdZone(): string {
  const lines = [
    '$ORIGIN bench.test.',
    '$TTL 30',
    '@ IN SOA ns.bench.test. hostmaster.bench.test. 1 10000 2400 604800 30',
    '@ IN NS ns.bench.test.',
    'ns IN A 127.0.0.1',
  ];
  for (let i = 0; i < NAMES; i++) lines.push(`app${i} IN CNAME app${i}.spectrum.bench.test.`, `app${i}.spectrum IN A 127.0.0.1`);
  return lines.join('\n') + '\n';
}

/** A free UDP port on 127.0.0.1 (bound and released; NSD binds it next). */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function startNsd(bin: string, cpu: number | undefined): Promise<{ child: Child; port: number; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-bench-nsd-'));
  const port = await freeUdpPort();
  writeFileSync(join(dir, 'bench.test.zone'), nsdZone());
  writeFileSync(
    join(dir, 'nsd.conf'),
    [
      'server:',
      `  ip-address: 127.0.0.1@${port}`,
      '  do-ip6: no',
      '  server-count: 1',
      '  username: ""',
      `  zonesdir: "${dir}"`,
      `  pidfile: "${join(dir, 'nsd.pid')}"`,
      `  xfrdfile: "${join(dir, 'xfrd.state')}"`,
      `  zonelistfile: "${join(dir, 'zone.list')}"`,
      '  database: ""',
      '  verbosity: 0',
      '  hide-version: yes',
      'remote-control:',
      '  control-enable: no',
      'zone:',
      '  name: bench.test',
      '  zonefile: bench.test.zone',
      '',
    ].join('\n'),
  );
  const child = spawnChild(bin, ['-d', '-c', join(dir, 'nsd.conf')], cpu);
  // Ready when it answers a query.
  const probe = createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
  try {
    const q = encode({ id: 7, type: 'query', flags: 0, questions: [{ name: 'app0.bench.test', type: 'A' }] });
    const t0 = performance.now();
    for (;;) {
      if (performance.now() - t0 > 30_000) throw new Error(`nsd did not answer: ${child.tail()}`);
      const got = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 200);
        probe.once('message', () => {
          clearTimeout(t);
          resolve(true);
        });
        probe.send(q, port, '127.0.0.1');
      });
      if (got) break;
    }
  } finally {
    probe.close();
  }
  return { child, port, dir };
}

interface Server {
  readonly name: 'refract' | 'nsd';
  readonly child: Child;
  readonly port: number;
}

async function startRefract(cpu: number | undefined): Promise<Server> {
  const child: Child = spawnChild(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--serve'], cpu);
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${child.tail()}`)), 30_000);
    child.proc.stdout!.on('data', () => {
      const m = /port (\d+)/.exec(child.tail());
      if (m !== null) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  return { name: 'refract', child, port };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      serve: { type: 'boolean' },
      quick: { type: 'boolean' },
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      'no-peer': { type: 'boolean' },
    },
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
  const servers: Server[] = [];
  let nsdDir: string | undefined;
  try {
    servers.push(await startRefract(pin ? 0 : undefined));
    const nsdBin = values['no-peer'] === true ? undefined : which('nsd');
    if (nsdBin !== undefined) {
      const n = await startNsd(nsdBin, pin ? 0 : undefined);
      nsdDir = n.dir;
      servers.push({ name: 'nsd', child: n.child, port: n.port });
    } else if (values['no-peer'] !== true) {
      process.stdout.write('bench:dns: NSD is not installed (apt-get install -y nsd): Refract alone, no ratio\n');
    }
    const qs = queries();
    process.stdout.write(
      `bench:dns: ${servers.map((s) => `${s.name} pid ${s.child.pid} on 127.0.0.1:${s.port}`).join(', ')}` +
        `${pin ? ' (servers on CPU 0, driver on CPU 1)' : ' (not pinned)'}; ${rounds} rounds × ${seconds} s per level\n`,
    );
    // Warm-up: the JIT and the socket buffers.
    for (const sv of servers) await level(sv.port, sv.child.pid, 32, 1, qs);
    const results = new Map<string, LevelResult[]>();
    const key = (name: string, w: number): string => `${name}/${w}`;
    for (let r = 0; r < rounds; r++) {
      for (const sv of servers) {
        for (const w of windows) {
          const res = await level(sv.port, sv.child.pid, w, seconds, qs);
          results.set(key(sv.name, w), [...(results.get(key(sv.name, w)) ?? []), res]);
          process.stdout.write(
            `round ${r + 1} ${sv.name} W=${w}: ${fmt(res.answers / res.seconds)} answers/s, p50 ${fmt(res.p50 * 1000)} µs, p99 ${fmt(res.p99 * 1000)} µs, max ${fmt(res.max, 1)} ms, lost ${res.lost}, server ${fmt(res.serverCpuUsPerAnswer, 1)} µs CPU/answer\n`,
          );
        }
      }
    }
    const rate = (name: string, w: number): number => median((results.get(key(name, w)) ?? []).map((x) => x.answers / x.seconds));
    const rows: string[][] = [];
    for (const sv of servers) {
      for (const w of windows) {
        const rs = results.get(key(sv.name, w)) ?? [];
        rows.push([
          sv.name,
          String(w),
          fmt(rate(sv.name, w)),
          fmt(median(rs.map((x) => x.p50 * 1000))),
          fmt(median(rs.map((x) => x.p99 * 1000))),
          fmt(Math.max(...rs.map((x) => x.max)), 1),
          String(rs.reduce((a, x) => a + x.lost, 0)),
          fmt(median(rs.map((x) => x.serverCpuUsPerAnswer)), 1),
        ]);
      }
    }
    process.stdout.write(`\nMedian of ${rounds} round(s), ${seconds} s each:\n\n`);
    process.stdout.write(markdownTable(['server', 'in flight', 'answers/s', 'p50 µs', 'p99 µs', 'max ms', 'lost', 'server µs CPU/answer'], rows) + '\n');
    if (servers.some((s) => s.name === 'nsd')) {
      process.stdout.write(
        `\nRefract/NSD answers per second: ${windows.map((w) => `W=${w} ${(rate('refract', w) / rate('nsd', w)).toFixed(2)}`).join(', ')}\n`,
      );
    }
    process.stdout.write(`\nanswerQuery alone (no sockets, this process): ${fmt(answerFunctionRate(qs, quick ? 500 : 2000))} answers/s\n`);
    process.stdout.write(`view of ${NAMES} names built in ${fmt(viewBuildMs(quick ? 5 : 21), 1)} ms (median)\n`);
  } finally {
    for (const sv of servers) await stopChild(sv.child);
    if (nsdDir !== undefined) rmSync(nsdDir, { recursive: true, force: true });
  }
}

await main();
