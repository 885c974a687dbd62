/**
 * Load generator: a child process of the harness, pinned to the load-generator core, driven over the IPC
 * channel (`protocol.ts`). It keeps its own hot path small (no per-chunk allocation on the throughput path,
 * one Float64Array for latencies) so that, as far as one core of Node allows, the proxy is the bottleneck.
 * The harness reads the load generator's own CPU use and flags runs where this process saturated its core.
 *
 * Every request is bounded: by count, by its `maxMs` cap, and per connection by CONN_TIMEOUT_MS.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  CPS_PAYLOAD_BYTES,
  SINK_ACK,
  SINK_HEADER_BYTES,
  type CloseResult,
  type CpsResult,
  type LoadgenReply,
  type LoadgenRequest,
  type OpenResult,
  type ThroughputResult,
} from './protocol.ts';
import { handleUdp } from './udp-load.ts';
import { isUdpLoadRequest, type UdpLoadRequest } from './udp-protocol.ts';

const HOST = '127.0.0.1';
/** One connection that has not finished its exchange after this long counts as an error (TIMEOUT). */
const CONN_TIMEOUT_MS = 5_000;
const SWEEP_MS = 250;
/** Client write size on the throughput path; reused, never copied. */
const CHUNK = Buffer.alloc(256 * 1024, 0x61);
const PAYLOAD = Buffer.alloc(CPS_PAYLOAD_BYTES, 0x62);
/**
 * Receive buffer shared by every short connection (`onread`: Node reads into it instead of allocating a Buffer
 * per read). Safe to share because each callback consumes it synchronously: it only counts bytes.
 */
const RECV = Buffer.alloc(16 * 1024);

function errCode(e: unknown): string {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'ERROR';
}

/** Nearest-rank percentile of an ascending-sorted array; NaN when empty. */
function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx] ?? Number.NaN;
}

interface InFlight {
  readonly startedAt: number;
  fail(code: string): void;
}

/** Runs `count` connect/write/echo/close exchanges with `concurrency` loops; stops launching at `maxMs`. */
function cps(port: number, count: number, concurrency: number, maxMs: number): Promise<CpsResult> {
  const latMs = new Float64Array(count);
  const inflight = new Set<InFlight>();
  let launched = 0;
  let completed = 0;
  let errors = 0;
  let firstError: string | undefined;
  let timedOut = false;
  const t0 = performance.now();
  const deadline = t0 + maxMs;

  return new Promise((resolve) => {
    let settled = false;
    const maybeFinish = (): void => {
      if (settled || inflight.size > 0) return;
      settled = true;
      clearInterval(sweep);
      const elapsedMs = performance.now() - t0;
      const sorted = latMs.subarray(0, completed).sort();
      resolve({
        completed,
        errors,
        firstError,
        elapsedMs,
        timedOut,
        p50Us: percentile(sorted, 0.5) * 1000,
        p99Us: percentile(sorted, 0.99) * 1000,
      });
    };

    const launch = (): void => {
      if (launched >= count) return maybeFinish();
      const startedAt = performance.now();
      if (startedAt > deadline) {
        timedOut = true;
        return maybeFinish();
      }
      launched++;
      let got = 0;
      // No setNoDelay: the single 64 B write goes out at once anyway, and the syscall would cost on this core.
      const s = net.connect({
        port,
        host: HOST,
        onread: {
          buffer: RECV,
          callback: (n) => {
            got += n;
            if (got >= CPS_PAYLOAD_BYTES) finish(undefined);
            return true;
          },
        },
      });
      const entry: InFlight = {
        startedAt,
        fail: (code) => finish(code),
      };
      inflight.add(entry);
      const finish = (code: string | undefined): void => {
        if (!inflight.delete(entry)) return; // already finished
        if (code === undefined) latMs[completed++] = performance.now() - startedAt;
        else {
          errors++;
          firstError ??= code;
        }
        // All 64 bytes were read, so close() sends FIN (not RST): the proxy sees an orderly close.
        s.destroy();
        launch();
      };
      s.on('connect', () => s.write(PAYLOAD));
      s.on('error', (e) => finish(errCode(e)));
      s.on('close', () => finish('ECLOSED_EARLY'));
    };

    const sweep = setInterval(() => {
      const now = performance.now();
      for (const f of [...inflight]) if (now - f.startedAt > CONN_TIMEOUT_MS) f.fail('TIMEOUT');
    }, SWEEP_MS);
    for (let i = 0; i < Math.min(concurrency, count); i++) launch();
    if (count === 0) maybeFinish();
  });
}

/** Streams `totalBytes` split over `conns` connections into the sink; done when every sink has acked. */
function throughput(port: number, totalBytes: number, conns: number, maxMs: number): Promise<ThroughputResult> {
  const per = Math.floor(totalBytes / conns);
  const t0 = performance.now();
  let ackedBytes = 0;
  let writtenBytes = 0;
  let errors = 0;
  let firstError: string | undefined;
  let open = conns;
  const sockets: net.Socket[] = [];

  return new Promise((resolve) => {
    let settled = false;
    const finish = (timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(cap);
      for (const s of sockets) s.destroy();
      resolve({ ackedBytes, writtenBytes, errors, firstError, elapsedMs: performance.now() - t0, timedOut });
    };
    const cap = setTimeout(() => finish(true), maxMs);

    for (let i = 0; i < conns; i++) {
      let remaining = per;
      let done = false;
      const s = net.connect({ port, host: HOST, noDelay: true });
      sockets.push(s);
      const close = (code: string | undefined): void => {
        if (done) return;
        done = true;
        if (code === undefined) ackedBytes += per;
        else {
          errors++;
          firstError ??= code;
        }
        s.destroy();
        if (--open === 0) finish(false);
      };
      const pump = (): void => {
        while (remaining > 0) {
          const n = Math.min(CHUNK.length, remaining);
          const ok = s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
          remaining -= n;
          writtenBytes += n;
          if (!ok) {
            s.once('drain', pump);
            return;
          }
        }
      };
      s.on('connect', () => {
        const header = Buffer.alloc(SINK_HEADER_BYTES);
        header.writeBigUInt64BE(BigInt(per));
        s.write(header);
        pump();
      });
      s.on('data', (b: Buffer) => {
        if (b.includes(SINK_ACK)) close(undefined);
      });
      s.on('error', (e) => close(errCode(e)));
      s.on('close', () => close('ECLOSED_EARLY'));
    }
  });
}

/** Idle connections held open between `open` and `closeAll`. */
const idle = new Set<net.Socket>();
let droppedBeforeClose = 0;
let closing = false;

function openIdle(port: number, count: number, concurrency: number, maxMs: number): Promise<OpenResult> {
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  const pending = new Set<InFlight>();
  let launched = 0;
  let opened = 0;
  let errors = 0;
  let firstError: string | undefined;
  let timedOut = false;
  closing = false;
  droppedBeforeClose = 0;

  return new Promise((resolve) => {
    let settled = false;
    const maybeFinish = (): void => {
      if (settled || pending.size > 0) return;
      settled = true;
      clearInterval(sweep);
      resolve({ opened, errors, firstError, elapsedMs: performance.now() - t0, timedOut });
    };
    const launch = (): void => {
      if (launched >= count) return maybeFinish();
      const startedAt = performance.now();
      if (startedAt > deadline) {
        timedOut = true;
        return maybeFinish();
      }
      launched++;
      let got = 0;
      const s = net.connect({
        port,
        host: HOST,
        onread: {
          buffer: RECV,
          callback: (n) => {
            got += n;
            if (got >= CPS_PAYLOAD_BYTES) settle(undefined);
            return true;
          },
        },
      });
      const entry: InFlight = { startedAt, fail: (code) => settle(code) };
      pending.add(entry);
      const settle = (code: string | undefined): void => {
        if (!pending.delete(entry)) return;
        if (code === undefined) {
          opened++;
          idle.add(s);
        } else {
          errors++;
          firstError ??= code;
          s.destroy();
        }
        launch();
      };
      s.on('connect', () => s.write(PAYLOAD));
      s.on('error', (e) => settle(errCode(e)));
      s.on('close', () => {
        settle('ECLOSED_EARLY');
        if (idle.delete(s) && !closing) droppedBeforeClose++;
      });
    };
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const p of [...pending]) if (now - p.startedAt > CONN_TIMEOUT_MS) p.fail('TIMEOUT');
    }, SWEEP_MS);
    for (let i = 0; i < Math.min(concurrency, count); i++) launch();
    if (count === 0) maybeFinish();
  });
}

function closeAll(maxMs: number): Promise<CloseResult> {
  closing = true;
  const sockets = [...idle];
  idle.clear();
  let closed = 0;
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(cap);
      resolve({ droppedBeforeClose, closed });
    };
    const cap = setTimeout(done, maxMs);
    if (sockets.length === 0) return done();
    for (const s of sockets) {
      s.once('close', () => {
        if (++closed === sockets.length) done();
      });
      s.destroy();
    }
  });
}

async function handle(req: LoadgenRequest): Promise<LoadgenReply> {
  switch (req.cmd) {
    case 'cps':
      return { id: req.id, ok: true, result: await cps(req.port, req.count, req.concurrency, req.maxMs) };
    case 'throughput':
      return { id: req.id, ok: true, result: await throughput(req.port, req.totalBytes, req.conns, req.maxMs) };
    case 'open':
      return { id: req.id, ok: true, result: await openIdle(req.port, req.count, req.concurrency, req.maxMs) };
    case 'closeAll':
      return { id: req.id, ok: true, result: await closeAll(req.maxMs) };
  }
}

if (process.send === undefined) {
  process.stderr.write('loadgen.ts runs as a child of bench/run.ts (it needs an IPC channel)\n');
  process.exit(2);
}
process.on('message', (msg: LoadgenRequest | UdpLoadRequest) => {
  // UDP commands live in udp-load.ts; the TCP ones here.
  (isUdpLoadRequest(msg) ? handleUdp(msg) : handle(msg)).then(
    (reply) => process.send?.(reply),
    (e: unknown) => process.send?.({ id: msg.id, ok: false, error: String(e) } satisfies LoadgenReply),
  );
});
// The harness going away (normally or not) ends the load generator.
process.on('disconnect', () => process.exit(0));
