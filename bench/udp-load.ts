/**
 * The load generator's UDP commands (run inside `loadgen.ts`, on the load-generator core):
 * - `udpRate`: closed-loop round trips through a UDP proxy to the echo origin, `concurrency` client sockets with
 *   one datagram in flight each; counts round trips, losses, and round-trip latency;
 * - `udpOpen`: `count` client sockets, each from its own source port, each sending one datagram and awaiting the
 *   echo, then held open (each is one flow in the proxy) until `udpCloseAll`.
 *
 * Client sockets are `connect()`ed to the proxy: sends carry no address, and only the proxy's port can answer.
 * Every request is bounded by its count, its `maxMs` cap and a per-datagram timeout.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { UdpCloseResult, UdpLoadReply, UdpLoadRequest, UdpOpenResult, UdpRateResult } from './udp-protocol.ts';

const HOST = '127.0.0.1';
const SWEEP_MS = 50;
/** Bytes of the datagram each `udpOpen` socket sends (the echo confirms its flow end to end). */
const OPEN_PAYLOAD = Buffer.alloc(64, 0x75);

function errCode(e: unknown): string {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'ERROR';
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx] ?? Number.NaN;
}

/** A UDP socket bound to an ephemeral loopback port and connected to `port`. */
function connectedSocket(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.connect(port, HOST, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

function closeQuietly(s: dgram.Socket): void {
  try {
    s.close();
  } catch {
    // already closed
  }
}

async function udpRate(port: number, payloadBytes: number, count: number, concurrency: number, maxMs: number, timeoutMs: number): Promise<UdpRateResult> {
  const latMs = new Float64Array(count);
  let launched = 0;
  let completed = 0;
  let lost = 0;
  let errors = 0;
  let firstError: string | undefined;
  let timedOut = false;
  const n = Math.max(1, Math.min(concurrency, count));
  const sockets = await Promise.all(Array.from({ length: n }, () => connectedSocket(port)));
  const t0 = performance.now();
  const deadline = t0 + maxMs;

  interface Loop {
    readonly s: dgram.Socket;
    readonly buf: Buffer;
    seq: number;
    /** When the datagram in flight was sent; NaN when none is. */
    sentAt: number;
  }
  return new Promise((resolve) => {
    let active = n;
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearInterval(sweep);
      for (const s of sockets) closeQuietly(s);
      const sorted = latMs.subarray(0, completed).sort();
      resolve({ completed, lost, errors, firstError, elapsedMs: performance.now() - t0, timedOut, p50Us: percentile(sorted, 0.5) * 1000, p99Us: percentile(sorted, 0.99) * 1000 });
    };
    const next = (l: Loop): void => {
      const now = performance.now();
      if (launched >= count || now > deadline) {
        if (launched < count) timedOut = true;
        l.sentAt = Number.NaN;
        if (--active === 0) finish();
        return;
      }
      launched++;
      l.seq = (l.seq + 1) >>> 0;
      // Safe to rewrite: the previous datagram was echoed or timed out, so the kernel has long copied it.
      l.buf.writeUInt32BE(l.seq, 0);
      l.sentAt = now;
      l.s.send(l.buf);
    };
    const loops: Loop[] = sockets.map((s) => {
      const l: Loop = { s, buf: Buffer.alloc(Math.max(8, payloadBytes), 0x61), seq: 0, sentAt: Number.NaN };
      s.on('message', (msg: Buffer) => {
        // A late echo of a datagram already counted lost carries an older sequence number: ignore it.
        if (Number.isNaN(l.sentAt) || msg.length < 4 || msg.readUInt32BE(0) !== l.seq) return;
        latMs[completed++] = performance.now() - l.sentAt;
        next(l);
      });
      s.on('error', (e) => {
        errors++;
        firstError ??= errCode(e);
      });
      return l;
    });
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const l of loops) {
        if (!Number.isNaN(l.sentAt) && now - l.sentAt > timeoutMs) {
          lost++;
          next(l);
        }
      }
    }, SWEEP_MS);
    for (const l of loops) next(l);
  });
}

/** Sockets opened by `udpOpen`, held until `udpCloseAll`: each keeps one flow alive in the proxy. */
const held = new Set<dgram.Socket>();

function udpOpen(port: number, count: number, concurrency: number, maxMs: number, timeoutMs: number): Promise<UdpOpenResult> {
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  let launched = 0;
  let opened = 0;
  let unanswered = 0;
  let errors = 0;
  let firstError: string | undefined;
  let timedOut = false;
  let inFlight = 0;

  return new Promise((resolve) => {
    let settled = false;
    const maybeFinish = (): void => {
      if (settled || inFlight > 0) return;
      settled = true;
      resolve({ opened, unanswered, errors, firstError, elapsedMs: performance.now() - t0, timedOut });
    };
    const launch = (): void => {
      if (launched >= count) return maybeFinish();
      if (performance.now() > deadline) {
        timedOut = true;
        return maybeFinish();
      }
      launched++;
      inFlight++;
      let tries = 0;
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const settle = (ok: boolean, s: dgram.Socket | undefined, code?: string): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (ok) opened++;
        else if (code !== undefined) {
          errors++;
          firstError ??= code;
        } else unanswered++;
        // Unanswered sockets stay open too: the proxy may hold a flow for them all the same.
        if (s) held.add(s);
        inFlight--;
        launch();
      };
      connectedSocket(port).then(
        (s) => {
          const send = (): void => {
            tries++;
            s.send(OPEN_PAYLOAD);
            timer = setTimeout(() => (tries < 2 ? send() : settle(false, s)), timeoutMs);
          };
          s.once('message', () => settle(true, s));
          s.on('error', (e) => settle(false, s, errCode(e)));
          send();
        },
        (e: unknown) => settle(false, undefined, errCode(e)),
      );
    };
    for (let i = 0; i < Math.min(concurrency, count); i++) launch();
    if (count === 0) maybeFinish();
  });
}

function udpCloseAll(): UdpCloseResult {
  const closed = held.size;
  for (const s of held) closeQuietly(s);
  held.clear();
  return { closed };
}

/** Serves one UDP request (the load generator dispatches here for `isUdpLoadRequest` messages). */
export async function handleUdp(req: UdpLoadRequest): Promise<UdpLoadReply> {
  switch (req.cmd) {
    case 'udpRate':
      return { id: req.id, ok: true, result: await udpRate(req.port, req.payloadBytes, req.count, req.concurrency, req.maxMs, req.timeoutMs) };
    case 'udpOpen':
      return { id: req.id, ok: true, result: await udpOpen(req.port, req.count, req.concurrency, req.maxMs, req.timeoutMs) };
    case 'udpCloseAll':
      return { id: req.id, ok: true, result: udpCloseAll() };
  }
}
