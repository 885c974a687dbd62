/**
 * The UDP measurements of `npm run bench -- --only udp` (harness side; the load generator's half is
 * `udp-load.ts`). Two measurements, each on a freshly started proxy:
 *
 * - `udp`: for each payload size (64 B and 1,200 B), closed-loop round trips through the proxy to the UDP echo
 *   origin: echoed datagrams per second, round-trip p50/p99 under that load, p50/p99 one at a time, and the
 *   proxy's CPU per round trip (each round trip is two datagrams through the proxy). Then the 64 B run once more
 *   on the proxy's `keptPort` (nginx: a server without `proxy_responses`, sessions kept like Refract's flows).
 * - `udp-memory`: 10,000 client sockets (quick: 2,000), each from its own source port, each sending one datagram
 *   and receiving its echo, all held open: (proxy RSS after − before) ÷ flows confirmed.
 *
 * What the figures mean and how to read them: docs/benchmarks.md, section "UDP".
 */
import dgram from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import { StartError } from './proc.ts';
import type { UdpCloseResult, UdpOpenResult, UdpRateResult } from './udp-protocol.ts';

export interface UdpPlan {
  /** Datagram sizes measured, bytes of UDP payload. */
  readonly payloads: readonly number[];
  readonly rate: {
    /** Round trips in the measured window, per payload size. */
    readonly count: number;
    /** Client sockets, one datagram in flight each. */
    readonly concurrency: number;
    /** Round trips before the window (JIT, socket buffers, the proxy's flows). */
    readonly warm: number;
    /** Round trips one at a time after the window: latency without queueing. */
    readonly serial: number;
    readonly maxMs: number;
    readonly timeoutMs: number;
  };
  readonly memory: {
    readonly flows: number;
    readonly concurrency: number;
    readonly warm: number;
    readonly settleMs: number;
    readonly maxMs: number;
    readonly timeoutMs: number;
  };
}

export const UDP_FULL: UdpPlan = {
  payloads: [64, 1_200],
  rate: { count: 100_000, concurrency: 32, warm: 10_000, serial: 2_000, maxMs: 30_000, timeoutMs: 1_000 },
  memory: { flows: 10_000, concurrency: 200, warm: 1_000, settleMs: 1_000, maxMs: 60_000, timeoutMs: 1_000 },
};

export const UDP_QUICK: UdpPlan = {
  payloads: [64, 1_200],
  rate: { count: 10_000, concurrency: 32, warm: 2_000, serial: 300, maxMs: 15_000, timeoutMs: 1_000 },
  memory: { flows: 2_000, concurrency: 200, warm: 200, settleMs: 500, maxMs: 15_000, timeoutMs: 1_000 },
};

/** The load generator's UDP commands, as the harness calls them. */
export interface UdpLoad {
  rate(port: number, payloadBytes: number, count: number, concurrency: number, maxMs: number, timeoutMs: number): Promise<UdpRateResult>;
  open(port: number, count: number, concurrency: number, maxMs: number, timeoutMs: number): Promise<UdpOpenResult>;
  closeAll(maxMs: number): Promise<UdpCloseResult>;
}

/** The harness's view of the proxy process: a CPU window (start returns the finisher) and its RSS. */
export interface ProxyProbe {
  startWindow(): () => Record<string, number>;
  rssKiB(): number;
}

export interface UdpOutcome {
  readonly metrics: Record<string, number>;
  readonly notes: string[];
}

/**
 * Sends single datagrams until one comes back through `port` (the proxy has bound it and reaches the origin), at
 * most `maxMs`. Needed because the harness's readiness probe is TCP only.
 */
export async function waitForUdp(load: UdpLoad, port: number, maxMs: number): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const r = await load.rate(port, 64, 1, 1, 1_000, 300);
    if (r.completed === 1) return true;
    await sleep(100);
  }
  return false;
}

const key = (bytes: number, what: string): string => `u${bytes}${what}`;

function rateNotes(tag: string, r: UdpRateResult, wanted: number, maxMs: number): string[] {
  const notes: string[] = [];
  if (r.timedOut) notes.push(`${tag}: stopped at the ${maxMs / 1000} s cap after ${r.completed}/${wanted} round trips`);
  if (r.lost > 0) notes.push(`${tag}: ${r.lost} datagrams unanswered`);
  if (r.errors > 0) notes.push(`${tag}: ${r.errors} socket errors (${r.firstError ?? '?'})`);
  return notes;
}

/** The `udp` measurement: rate and latency per payload size, then 64 B on the kept-session port. */
export async function measureUdpRate(load: UdpLoad, probe: ProxyProbe, plan: UdpPlan, ports: { readonly port: number; readonly keptPort: number }): Promise<UdpOutcome> {
  const c = plan.rate;
  const metrics: Record<string, number> = {};
  const notes: string[] = [];
  let otherPct = 0;
  const run = async (port: number, bytes: number, prefix: string): Promise<void> => {
    await load.rate(port, bytes, c.warm, c.concurrency, c.maxMs, c.timeoutMs);
    const end = probe.startWindow();
    const r = await load.rate(port, bytes, c.count, c.concurrency, c.maxMs, c.timeoutMs);
    const w = end();
    metrics[`${prefix}Dps`] = r.completed / (r.elapsedMs / 1000);
    metrics[`${prefix}P50Us`] = r.p50Us;
    metrics[`${prefix}P99Us`] = r.p99Us;
    metrics[`${prefix}CpuUsPerRt`] = r.completed > 0 ? ((w.proxyCpuSec ?? Number.NaN) * 1e6) / r.completed : Number.NaN;
    metrics[`${prefix}ProxyProcPct`] = w.proxyProcPct ?? Number.NaN;
    metrics[`${prefix}GenCorePct`] = w.genCorePct ?? Number.NaN;
    metrics[`${prefix}Lost`] = r.lost;
    otherPct = Math.max(otherPct, w.otherPct ?? 0);
    notes.push(...rateNotes(`${prefix}`, r, c.count, c.maxMs));
  };
  for (const bytes of plan.payloads) {
    const prefix = key(bytes, '');
    await run(ports.port, bytes, prefix);
    const s = await load.rate(ports.port, bytes, c.serial, 1, c.maxMs, c.timeoutMs);
    metrics[`${prefix}SerialP50Us`] = s.p50Us;
    metrics[`${prefix}SerialP99Us`] = s.p99Us;
    notes.push(...rateNotes(`${prefix} serial`, s, c.serial, c.maxMs));
  }
  await run(ports.keptPort, 64, key(64, 'Kept'));
  metrics.otherPct = otherPct;
  return { metrics, notes };
}

/** The `udp-memory` measurement: RSS per active flow. */
export async function measureUdpMemory(load: UdpLoad, probe: ProxyProbe, plan: UdpPlan, port: number): Promise<UdpOutcome> {
  const c = plan.memory;
  // Warm-up flows first, so lazily grown tables and JIT state are not charged to the measured flows. Their client
  // sockets close, but the proxy keeps the flows (UDP has no close): they are part of the baseline.
  await load.open(port, c.warm, c.concurrency, c.maxMs, c.timeoutMs);
  await load.closeAll(10_000);
  await sleep(c.settleMs);
  const before = probe.rssKiB();
  const opened = await load.open(port, c.flows, c.concurrency, c.maxMs, c.timeoutMs);
  await sleep(c.settleMs);
  const after = probe.rssKiB();
  await load.closeAll(10_000);
  const notes: string[] = [];
  if (opened.opened < c.flows) notes.push(`confirmed ${opened.opened}/${c.flows} flows (${opened.unanswered} unanswered, ${opened.errors} errors ${opened.firstError ?? ''})`.trim());
  return {
    metrics: {
      udpKiBPerFlow: opened.opened > 0 ? (after - before) / opened.opened : Number.NaN,
      udpRssBeforeKiB: before,
      udpRssAfterKiB: after,
      udpFlowsOpened: opened.opened,
      udpOpenMs: opened.elapsedMs,
    },
    notes,
  };
}

/** A table row: which metric, from which measurement, and (rate rows) which window keys give the CPU columns. */
export interface UdpMetricDef {
  readonly key: string;
  readonly measure: 'udp' | 'udp-memory';
  readonly label: string;
  readonly digits: number;
  readonly cores?: readonly [string, string];
  readonly notes?: boolean;
}

function rateRows(bytes: number, kept: boolean): UdpMetricDef[] {
  const p = key(bytes, kept ? 'Kept' : '');
  const size = `${bytes.toLocaleString('en-US')} B${kept ? ', sessions kept' : ''}`;
  const rows: UdpMetricDef[] = [
    { key: `${p}Dps`, measure: 'udp', label: `UDP echoed datagrams/s, ${size} ↑`, digits: 0, cores: [`${p}ProxyProcPct`, `${p}GenCorePct`], notes: true },
    { key: `${p}P50Us`, measure: 'udp', label: `UDP round trip p50 µs, ${size} ↓`, digits: 0 },
    { key: `${p}P99Us`, measure: 'udp', label: `UDP round trip p99 µs, ${size} ↓`, digits: 0 },
  ];
  if (!kept) {
    rows.push(
      { key: `${p}SerialP50Us`, measure: 'udp', label: `UDP round trip p50 µs, ${size}, 1 at a time ↓`, digits: 0 },
      { key: `${p}SerialP99Us`, measure: 'udp', label: `UDP round trip p99 µs, ${size}, 1 at a time ↓`, digits: 0 },
    );
  }
  rows.push({ key: `${p}CpuUsPerRt`, measure: 'udp', label: `proxy CPU µs/round trip, ${size} ↓`, digits: 1 });
  return rows;
}

export function udpMetricDefs(plan: UdpPlan): UdpMetricDef[] {
  return [
    ...plan.payloads.flatMap((b) => rateRows(b, false)),
    ...rateRows(64, true),
    { key: 'udpKiBPerFlow', measure: 'udp-memory', label: `RSS KiB/active UDP flow ↓`, digits: 2, notes: true },
  ];
}

/** Throws StartError when a UDP port on 127.0.0.1 is already bound (a leftover proxy would answer in its place). */
export async function assertUdpPortsFree(ports: readonly number[]): Promise<void> {
  for (const port of ports) {
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const s = dgram.createSocket({ type: 'udp4', reuseAddr: false });
      s.once('error', (e) => resolve(e));
      s.bind({ port, address: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(undefined)));
    });
    if (err !== undefined) throw new StartError(`UDP port ${port} is not free (${err.code ?? err.message})`, '');
  }
}
