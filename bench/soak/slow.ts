/**
 * Soak (a): slow and hostile clients against two `refract serve` children, the load in a third process.
 *
 * Node "proxy" expects an inbound PROXY header from 127.0.0.0/8 (`edge.accept_proxy`); node "tls" serves a plain
 * TCP app and a TLS app (`tls: flexible`, local-CA certificate). Slow clients connect from 127.0.1.0/24 and send
 * nothing, or dribble a PROXY v1 header or a real ClientHello one byte per `dribbleEveryMs`; while every one of them
 * is open, garbage senders hit the PROXY and TLS ports and legitimate clients (plain, PROXY header first, TLS) connect,
 * send 64 bytes and read them back, timed from the connect call to the first echoed byte.
 *
 * Then every slow connection must have been closed by the server, by its own timeout (DurationMs ≥ the timeout) with
 * its code (E_PP_TIMEOUT, E_TLS_HANDSHAKE_TIMEOUT, E_IDLE_TIMEOUT), every garbage connection closed with its code,
 * every legitimate exchange echoed and closed 200, and no other closing event happened.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { ClosingEvents, fdCount, fdLimit, freePorts, HOST, listenOverflows, percentile, readEvents, rssKiB, startEcho, startLoad, startServe, raisePriority } from './procs.ts';
import type { GarbageConn, GarbageSpec, LegitResult, LegitTarget, SlowConn, SlowSpec } from './protocol.ts';
import { cpuSeconds } from '../proc.ts';

export interface SlowOptions {
  /** Slow clients in all (split evenly over the five kinds). */
  readonly slow: number;
  /** Every timeout under test (PROXY header, TLS handshake, idle), ms. */
  readonly timeoutMs: number;
  readonly dribbleEveryMs: number;
  /** Garbage connections per garbage kind. */
  readonly garbagePerKind: number;
  /** Concurrent legitimate clients per kind, and a cap on their exchanges per kind. */
  readonly legitConcurrency: number;
  readonly legitMax: number;
  /** Slow connections opened per batch, and the pause between batches (ms). */
  readonly perBatch: number;
  /** Legitimate clients alone before the slow ones, ms. */
  readonly baselineMs: number;
  readonly batchGapMs: number;
  readonly log?: (line: string) => void;
  /** Run the children and the runner at nice −10 (see `raisePriority`): `npm run soak` does, the tests do not. */
  readonly priority?: boolean;
}

export interface SlowResult {
  readonly failures: string[];
  readonly slowRows: Array<{ kind: string; conns: number; byTimeout: number; code: string; lifetimeP50Ms: number; lifetimeMaxMs: number }>;
  readonly garbageRows: Array<{ kind: string; conns: number; withCode: number; code: string; lifetimeP99Ms: number }>;
  /** Legitimate clients alone (`slowOpen` false: the baseline just before) and among the slow ones. */
  readonly legitRows: Array<{ kind: string; slowOpen: boolean; exchanges: number; ok: number; p50: number; p99: number; max: number }>;
  readonly fds: Array<{ process: string; peak: number; limit: number; rssMiB: number }>;
  /** CPU time of the two refract children over the ramp and the window, as a share of one core. */
  readonly cpuShare: number[];
  readonly rampMs: number;
  readonly windowMs: number;
  /** Slow clients still open when the legitimate clients' window ended (all of them, when all is well). */
  readonly openDuringWindow: number;
  /** TcpExt ListenOverflows during the run (the whole network namespace: other processes' listeners count too). */
  readonly listenOverflows: number;
}

const SLOW_SOURCES = Array.from({ length: 16 }, (_, i) => `127.0.1.${i + 1}`);
const GARBAGE_SOURCES = Array.from({ length: 4 }, (_, i) => `127.0.2.${i + 1}`);

/** The first flight of a real TLS client (a ClientHello with SNI), captured from node:tls against a mute server. */
export async function captureClientHello(servername: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => {
      s.once('data', (d) => {
        resolve(Buffer.from(d));
        s.destroy();
        server.close();
      });
    });
    server.listen(0, HOST, () => {
      const c = tls.connect({ host: HOST, port: (server.address() as net.AddressInfo).port, servername, rejectUnauthorized: false });
      c.on('error', () => undefined);
      setTimeout(() => {
        c.destroy();
        reject(new Error('no ClientHello captured'));
      }, 5_000).unref();
    });
  });
}

/** PROXY v2 signature with version nibble 1: a v2 header from a broken sender. */
const V2_BAD_VERSION = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x11, 0x11, 0x00, 0x0c]), Buffer.alloc(12, 1)]);

/** Deterministic pseudo-random bytes (xorshift), starting with a TLS handshake record type so it looks like one. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  // A complete record (its length says the rest), so the server has all of it and must judge it at once.
  b[0] = 0x16;
  b[1] = 0x03;
  b[2] = 0x01;
  b.writeUInt16BE(n - 5, 3);
  return b;
}

export async function runSlowSoak(o: SlowOptions): Promise<SlowResult> {
  const say = o.log ?? ((): void => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'refract-soak-slow-'));
  const echo = await startEcho();
  const [portProxy, portPlain, portTls] = (await freePorts(3)) as [number, number, number];
  const origin = [`tcp://${HOST}:${echo.port}`];
  const app = (id: string, port: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id, protocol: `tcp/${port}`, dns: { type: 'CNAME', name: `${id}.example.com` }, origin_direct: origin, ...extra });
  const fileProxy = join(dir, 'proxy.yaml');
  writeFileSync(fileProxy, YAML.stringify({
    node: { id: 'soak-proxy', data_dir: join(dir, 'proxy-data') },
    edge: { addresses: [HOST], accept_proxy: { trusted: ['127.0.0.0/8'], timeout_ms: o.timeoutMs }, drain_timeout_ms: 1_000 },
    log: { level: 'warn' },
    apps: [app('proxied', portProxy)],
  }));
  const fileTls = join(dir, 'tls.yaml');
  writeFileSync(fileTls, YAML.stringify({
    node: { id: 'soak-tls', data_dir: join(dir, 'tls-data') },
    edge: { addresses: [HOST], idle_timeout_ms: o.timeoutMs, tls: { handshake_timeout_ms: o.timeoutMs }, drain_timeout_ms: 1_000 },
    log: { level: 'warn' },
    apps: [app('plain', portPlain), app('tls', portTls, { tls: 'flexible' })],
  }));
  const eventsProxy = join(dir, 'proxy-events.ndjson');
  const eventsTls = join(dir, 'tls-events.ndjson');
  const failures: string[] = [];
  const load = startLoad();
  const nodeProxy = await startServe(fileProxy, ['--events', eventsProxy]);
  const nodeTls = await startServe(fileTls, ['--events', eventsTls]);
  if (o.priority === true) raisePriority([nodeProxy.pid, nodeTls.pid, load.pid, process.pid]);
  try {
    const hello = await captureClientHello('tls.example.com');
    const legitTargets: LegitTarget[] = [{ kind: 'plain', port: portPlain }, { kind: 'proxy', port: portProxy }, { kind: 'tls', port: portTls, servername: 'tls.example.com' }];
    const header = Buffer.from(`PROXY TCP4 198.51.100.7 ${HOST} 40000 ${portProxy}\r\n`);
    const per = Math.floor(o.slow / 5);
    const expectSlow: Record<string, string> = {
      'proxy, silent': 'E_PP_TIMEOUT',
      'proxy, dribbled header': 'E_PP_TIMEOUT',
      'tls, silent': 'E_TLS_HANDSHAKE_TIMEOUT',
      'tls, dribbled ClientHello': 'E_TLS_HANDSHAKE_TIMEOUT',
      'plain, silent': 'E_IDLE_TIMEOUT',
    };
    const specs: SlowSpec[] = [
      { kind: 'proxy, silent', port: portProxy, count: per, sources: SLOW_SOURCES },
      { kind: 'proxy, dribbled header', port: portProxy, count: per, dribble: header, everyMs: o.dribbleEveryMs, sources: SLOW_SOURCES },
      { kind: 'tls, silent', port: portTls, count: per, sources: SLOW_SOURCES },
      { kind: 'tls, dribbled ClientHello', port: portTls, count: per, dribble: hello, everyMs: o.dribbleEveryMs, sources: SLOW_SOURCES },
      { kind: 'plain, silent', port: portPlain, count: o.slow - 4 * per, sources: SLOW_SOURCES },
    ];
    // The dribbled bytes must not complete within the timeout, or the client would not be slow.
    if (header.length * o.dribbleEveryMs <= o.timeoutMs) throw new Error('dribble too fast: the PROXY header would complete before the timeout');
    // Baseline: the same legitimate clients with no slow client open, just before, on the same (shared) machine.
    say(`baseline: legitimate clients alone for ${o.baselineMs} ms`);
    const baseline = (await load.call<{ results: LegitResult[] }>({ cmd: 'legit', host: HOST, targets: legitTargets, concurrency: o.legitConcurrency, durationMs: o.baselineMs, maxPerTarget: o.legitMax })).results;
    say(`opening ${o.slow} slow clients`);
    const overflowsBefore = listenOverflows();
    const cpuBefore = new Map([nodeProxy.pid, nodeTls.pid].map((pid) => [pid, cpuSeconds(pid)]));
    const opened = await load.call<{ opened: number; connected: number; rampMs: number }>({ cmd: 'slow', host: HOST, specs, perBatch: o.perBatch, batchGapMs: o.batchGapMs });
    if (opened.connected !== o.slow) failures.push(`only ${opened.connected} of ${o.slow} slow clients connected`);
    // Legitimate clients and garbage while every slow client is still open: the window ends well before the first
    // slow client's timeout (it connected at the start of the ramp).
    const windowMs = Math.max(500, o.timeoutMs - opened.rampMs - 2_500);
    say(`ramp ${Math.round(opened.rampMs)} ms; legitimate clients and garbage for ${Math.round(windowMs)} ms`);
    const garbageSpecs: Array<GarbageSpec & { code: string }> = [
      { kind: 'proxy port, HTTP request', port: portProxy, count: o.garbagePerKind, bytes: Buffer.from('GET / HTTP/1.0\r\n\r\n'), sources: GARBAGE_SOURCES, code: 'E_PP_BAD_SIGNATURE' },
      { kind: 'proxy port, malformed v1', port: portProxy, count: o.garbagePerKind, bytes: Buffer.from('PROXY TCP4 not-an-address\r\n'), sources: GARBAGE_SOURCES, code: 'E_PP_V1_MALFORMED' },
      { kind: 'proxy port, v1 without CRLF', port: portProxy, count: o.garbagePerKind, bytes: Buffer.from(`PROXY UNKNOWN ${'A'.repeat(120)}`), sources: GARBAGE_SOURCES, code: 'E_PP_V1_TOO_LONG' },
      { kind: 'proxy port, v2 bad version', port: portProxy, count: o.garbagePerKind, bytes: V2_BAD_VERSION, sources: GARBAGE_SOURCES, code: 'E_PP_V2_BAD_VERSION' },
      { kind: 'tls port, HTTP request', port: portTls, count: o.garbagePerKind, bytes: Buffer.from('GET / HTTP/1.0\r\n\r\n'), sources: GARBAGE_SOURCES, code: 'E_TLS_CLIENT_HANDSHAKE' },
      { kind: 'tls port, random record', port: portTls, count: o.garbagePerKind, bytes: noise(512, 7), sources: GARBAGE_SOURCES, code: 'E_TLS_CLIENT_HANDSHAKE' },
    ];
    const windowStart = Date.now();
    const fdPeak = new Map<string, { pid: number; peak: number }>([
      ['refract serve (proxy)', { pid: nodeProxy.pid, peak: 0 }],
      ['refract serve (tls, plain)', { pid: nodeTls.pid, peak: 0 }],
      ['load', { pid: load.pid, peak: 0 }],
      ['runner + origin', { pid: process.pid, peak: 0 }],
    ]);
    const sample = (): void => {
      for (const v of fdPeak.values()) v.peak = Math.max(v.peak, fdCount(v.pid));
    };
    sample();
    const sampler = setInterval(sample, 250);
    const [{ results: legit, slowOpenAtEnd: openDuringWindow }, garbage] = await Promise.all([
      load.call<{ results: LegitResult[]; slowOpenAtEnd: number }>({ cmd: 'legit', host: HOST, targets: legitTargets, concurrency: o.legitConcurrency, durationMs: windowMs, maxPerTarget: o.legitMax }),
      load.call<GarbageConn[]>({ cmd: 'garbage', host: HOST, specs: garbageSpecs, timeoutMs: 15_000 }),
    ]);
    clearInterval(sampler);
    // CPU share of each refract child from the ramp's start to the window's end (ramp + window).
    const cpuShare = [nodeProxy.pid, nodeTls.pid].map((pid) => (cpuSeconds(pid) - cpuBefore.get(pid)!) / ((Date.now() - windowStart + opened.rampMs) / 1_000));
    if (openDuringWindow !== o.slow) failures.push(`only ${openDuringWindow} of ${o.slow} slow clients were still open when the window ended (a timeout fired early, or the window was too long)`);
    const rss = new Map([...fdPeak].map(([k, v]) => [k, rssKiB(v.pid)]));
    say('waiting for the slow clients to be closed by their timeouts');
    const slow = await load.call<SlowConn[]>({ cmd: 'slowReport', waitMs: o.timeoutMs + 15_000 });
    await nodeProxy.stop();
    await nodeTls.stop();

    // ── checks ──────────────────────────────────────────────────────────────────────────────────────────────────
    // Each node's events apart: the two nodes' edge ports differ, but a client port may recur across them.
    const closing = new ClosingEvents([...readEvents(eventsProxy), ...readEvents(eventsTls)]);
    const slowRows: SlowResult['slowRows'] = [];
    for (const spec of specs) {
      const code = expectSlow[spec.kind]!;
      const conns = slow.filter((s) => s.kind === spec.kind);
      let byTimeout = 0;
      const lifetimes: number[] = [];
      for (const c of conns) {
        const e = c.local === '' ? undefined : closing.claim(c.local, spec.port, code);
        const why =
          e === undefined ? `no closing event${c.closedByPeer ? '' : `, and still open ${o.timeoutMs + 15_000} ms after the window (never accepted?)`}`
            : !c.closedByPeer ? `closed with ${e.ErrorCode ?? e.Status} but the client never saw the close (${c.error ?? 'no error'})`
              : e.ErrorCode !== code ? `closed with ${e.ErrorCode ?? e.Status}, not ${code}`
                // Node arms a timer from the event loop's cached time, so it may fire up to ~1 ms before its delay
                // counted from the connection's own start: a 2 ms allowance, not more.
                : e.DurationMs < o.timeoutMs - 2 ? `closed after ${e.DurationMs} ms, before its ${o.timeoutMs} ms timeout`
                  : undefined;
        if (why === undefined) {
          byTimeout++;
          lifetimes.push(e!.DurationMs);
        } else if (failures.length < 30) failures.push(`slow ${spec.kind} ${c.local}: ${why}`);
      }
      if (byTimeout !== conns.length) failures.push(`slow ${spec.kind}: ${conns.length - byTimeout} of ${conns.length} not closed by their timeout with ${code}`);
      slowRows.push({ kind: spec.kind, conns: conns.length, byTimeout, code, lifetimeP50Ms: percentile(lifetimes, 50), lifetimeMaxMs: percentile(lifetimes, 100) });
    }
    const garbageRows: SlowResult['garbageRows'] = [];
    for (const spec of garbageSpecs) {
      const conns = garbage.filter((g) => g.kind === spec.kind);
      let withCode = 0;
      for (const g of conns) {
        const e = g.local === '' ? undefined : closing.claim(g.local, spec.port, spec.code);
        if (g.closedByPeer && e?.ErrorCode === spec.code) withCode++;
        else if (failures.length < 40) failures.push(`garbage ${spec.kind} ${g.local}: ${g.closedByPeer ? '' : `not closed by the server (${g.error ?? 'no error'}); `}event ${e?.ErrorCode ?? e?.Status ?? 'none'}, expected ${spec.code}`);
      }
      if (withCode !== conns.length) failures.push(`garbage ${spec.kind}: ${conns.length - withCode} of ${conns.length} not closed with ${spec.code}`);
      garbageRows.push({ kind: spec.kind, conns: conns.length, withCode, code: spec.code, lifetimeP99Ms: percentile(conns.map((g) => g.lifetimeMs), 99) });
    }
    const row = (r: LegitResult, slowOpen: boolean): SlowResult['legitRows'][number] => ({ kind: r.kind, slowOpen, exchanges: r.ok + r.failures.length, ok: r.ok, p50: percentile(r.firstByteMs, 50), p99: percentile(r.firstByteMs, 99), max: percentile(r.firstByteMs, 100) });
    const legitRows: SlowResult['legitRows'] = [...baseline.map((r) => row(r, false)), ...legit.map((r) => row(r, true))];
    for (const r of baseline) {
      for (const f of r.failures.slice(0, 5)) failures.push(`baseline legitimate ${f}`);
      const appId = r.kind === 'proxy' ? 'proxied' : r.kind;
      const ok200 = closing.unclaimed().filter((e) => e.Application === appId && e.Status === 200).slice(0, r.ok);
      for (const e of ok200) closing.take(e);
    }
    for (const r of legit) {
      for (const f of r.failures.slice(0, 10)) failures.push(`legitimate ${f}`);
      if (r.failures.length > 10) failures.push(`legitimate ${r.kind}: ${r.failures.length} failures in all`);
      if (r.ok === 0) failures.push(`legitimate ${r.kind}: no exchange completed`);
      // Their closing events: status 200 on their app, one per exchange (a PROXY client's event names the client
      // of its header, so these are counted rather than matched).
      const appId = r.kind === 'proxy' ? 'proxied' : r.kind;
      const ok200 = closing.unclaimed().filter((e) => e.Application === appId && e.Status === 200);
      for (const e of ok200) closing.take(e);
      if (ok200.length !== r.ok) failures.push(`legitimate ${r.kind}: ${ok200.length} status-200 events for ${r.ok} exchanges`);
    }
    const stray = closing.unclaimed();
    if (stray.length > 0) failures.push(`${stray.length} closing events no client explains, e.g. ${JSON.stringify(stray[0])}`);
    const overflows = listenOverflows() - overflowsBefore;
    if (overflows > 0 && failures.length > 0) failures.push(`the kernel counted ${overflows} accept-queue overflows (TcpExt ListenOverflows, this network namespace) during the run: connections dropped before any process accepted them`);
    const fds = [...fdPeak].map(([name, v]) => ({ process: name, peak: v.peak, limit: fdLimit(v.pid) > 0 ? fdLimit(v.pid) : fdLimit(process.pid), rssMiB: Math.round((rss.get(name) ?? -1) / 1024) }));
    return { failures, slowRows, garbageRows, legitRows, fds, cpuShare, rampMs: opened.rampMs, windowMs, openDuringWindow, listenOverflows: overflows };
  } finally {
    await nodeProxy.stop();
    await nodeTls.stop();
    load.close();
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
