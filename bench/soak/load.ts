/**
 * The soak's load child (forked by bench/soak/client.ts, driven over IPC: bench/soak/protocol.ts). It holds the
 * client side of every connection: slow and hostile clients, legitimate clients timed from connect to first byte,
 * garbage senders, and long checksummed streams. Every wait here is bounded.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { streamByte, type Answer, type GarbageConn, type GarbageSpec, type LegitResult, type LegitTarget, type Request, type SlowConn, type SlowSpec, type StreamReport } from './protocol.ts';

const localOf = (s: net.Socket): string => `${s.localAddress ?? '?'}:${s.localPort ?? 0}`;

// ── slow clients ────────────────────────────────────────────────────────────────────────────────────────────────

interface SlowState {
  kind: string;
  sock: net.Socket;
  local: string;
  startedAt: number;
  connectedAt: number;
  closedAt: number;
  written: number;
  closedByPeer: boolean;
  destroying: boolean;
  error: string | undefined;
  dribble: Uint8Array | undefined;
}

const slow: SlowState[] = [];
let dribbleTimers: NodeJS.Timeout[] = [];

async function openSlow(host: string, specs: readonly SlowSpec[], perBatch: number, batchGapMs: number): Promise<{ opened: number; connected: number; rampMs: number }> {
  const t0 = performance.now();
  // Interleave the kinds, so every kind is spread over the ramp.
  const queue: Array<{ spec: SlowSpec; i: number }> = [];
  const max = Math.max(...specs.map((s) => s.count));
  for (let i = 0; i < max; i++) for (const spec of specs) if (i < spec.count) queue.push({ spec, i });
  const pending: Array<Promise<void>> = [];
  for (let b = 0; b < queue.length; b += perBatch) {
    for (const { spec, i } of queue.slice(b, b + perBatch)) {
      const st: SlowState = { kind: spec.kind, sock: undefined as unknown as net.Socket, local: '', startedAt: performance.now(), connectedAt: -1, closedAt: -1, written: 0, closedByPeer: false, destroying: false, error: undefined, dribble: spec.dribble };
      const sock = net.connect({ host, port: spec.port, localAddress: spec.sources[i % spec.sources.length] });
      st.sock = sock;
      slow.push(st);
      sock.on('data', () => undefined); // a TLS server's alert, say: read and ignored
      sock.on('end', () => {
        st.closedByPeer = true;
      });
      sock.on('error', (e: NodeJS.ErrnoException) => {
        st.error ??= e.code ?? e.message;
        if (!st.destroying) st.closedByPeer = true;
      });
      sock.on('close', () => {
        st.closedAt = performance.now();
      });
      pending.push(
        new Promise<void>((resolve) => {
          sock.once('connect', () => {
            st.connectedAt = performance.now();
            st.local = localOf(sock);
            resolve();
          });
          sock.once('close', () => resolve());
        }),
      );
    }
    await sleep(batchGapMs);
  }
  await Promise.race([Promise.all(pending), sleep(30_000)]);
  // Dribblers: one timer per spec interval, each tick writes the next byte of every dribbler.
  const byInterval = new Map<number, SlowState[]>();
  for (const spec of specs) {
    if (spec.dribble === undefined) continue;
    const every = spec.everyMs ?? 1_000;
    byInterval.set(every, [...(byInterval.get(every) ?? []), ...slow.filter((s) => s.kind === spec.kind)]);
  }
  for (const [every, list] of byInterval) {
    dribbleTimers.push(
      setInterval(() => {
        for (const s of list) {
          if (s.closedAt >= 0 || s.connectedAt < 0 || s.dribble === undefined || s.written >= s.dribble.length) continue;
          s.sock.write(s.dribble.subarray(s.written, s.written + 1));
          s.written++;
        }
      }, every),
    );
  }
  return { opened: slow.length, connected: slow.filter((s) => s.connectedAt >= 0).length, rampMs: performance.now() - t0 };
}

async function slowReport(waitMs: number): Promise<SlowConn[]> {
  const deadline = performance.now() + waitMs;
  while (performance.now() < deadline && slow.some((s) => s.closedAt < 0)) await sleep(100);
  for (const t of dribbleTimers) clearInterval(t);
  dribbleTimers = [];
  const out = slow.map((s): SlowConn => ({ kind: s.kind, local: s.local, startedAt: s.startedAt, connectedAt: s.connectedAt, closedAt: s.closedAt, written: s.written, closedByPeer: s.closedByPeer, error: s.error }));
  for (const s of slow) {
    if (s.closedAt < 0) {
      s.destroying = true;
      s.sock.destroy();
    }
  }
  slow.length = 0;
  return out;
}

// ── legitimate clients ──────────────────────────────────────────────────────────────────────────────────────────

/** One exchange: connect, send 64 bytes (after a PROXY v1 header for `proxy`), read them back, end. */
function exchange(host: string, t: LegitTarget, n: number): Promise<{ firstByteMs: number; local: string } | string> {
  return new Promise((resolve) => {
    const payload = Buffer.from(`legit ${t.kind} ${n} `.padEnd(64, '.'));
    const t0 = performance.now();
    let first = -1;
    let got = Buffer.alloc(0);
    let local = '';
    let settled = false;
    const done = (v: { firstByteMs: number; local: string } | string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const sock: net.Socket =
      t.kind === 'tls'
        ? tls.connect({ host, port: t.port, servername: t.servername, rejectUnauthorized: false })
        : net.connect({ host, port: t.port });
    const timer = setTimeout(() => {
      sock.destroy();
      done(`${t.kind} #${n}: no echo within 10 s (got ${got.length} bytes)`);
    }, 10_000);
    sock.once(t.kind === 'tls' ? 'secureConnect' : 'connect', () => {
      local = localOf(sock);
      if (t.kind === 'proxy') {
        // The load balancer's header: a client address of our own choosing, unique per exchange.
        const src = `192.0.2.${1 + (n % 250)}`;
        sock.write(`PROXY TCP4 ${src} 127.0.0.1 ${10_000 + (n % 50_000)} ${t.port}\r\n`);
      }
      sock.write(payload);
    });
    sock.on('data', (d: Buffer) => {
      if (first < 0) first = performance.now();
      got = Buffer.concat([got, d]);
      if (got.length >= payload.length) {
        if (!got.equals(payload)) {
          sock.destroy();
          done(`${t.kind} #${n}: echo differs`);
          return;
        }
        sock.end();
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      done(`${t.kind} #${n}: ${e.code ?? e.message}`);
    });
    sock.on('close', () => {
      if (got.length === payload.length && got.equals(payload)) done({ firstByteMs: first - t0, local });
      else done(`${t.kind} #${n}: closed after ${got.length} of ${payload.length} bytes`);
    });
  });
}

async function legit(host: string, targets: readonly LegitTarget[], concurrency: number, durationMs: number, maxPerTarget: number): Promise<{ results: LegitResult[]; slowOpenAtEnd: number }> {
  const end = performance.now() + durationMs;
  // The slow clients still open when the window closes (exchanges in flight may finish a little later).
  let slowOpenAtEnd = -1;
  const atEnd = setTimeout(() => {
    slowOpenAtEnd = slow.filter((s) => s.closedAt < 0).length;
  }, durationMs);
  const results = await Promise.all(
    targets.map(async (t) => {
      const r: { -readonly [K in keyof LegitResult]: LegitResult[K] } = { kind: t.kind, firstByteMs: [], ok: 0, failures: [], locals: [] };
      let n = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < end && n < maxPerTarget) {
            const v = await exchange(host, t, n++);
            if (typeof v === 'string') r.failures.push(v);
            else {
              r.ok++;
              r.firstByteMs.push(v.firstByteMs);
              r.locals.push(v.local);
            }
          }
        }),
      );
      return r;
    }),
  );
  if (slowOpenAtEnd < 0) {
    clearTimeout(atEnd);
    slowOpenAtEnd = slow.filter((s) => s.closedAt < 0).length;
  }
  return { results, slowOpenAtEnd };
}

// ── garbage ─────────────────────────────────────────────────────────────────────────────────────────────────────

async function garbage(host: string, specs: readonly GarbageSpec[], timeoutMs: number): Promise<GarbageConn[]> {
  const one = (spec: GarbageSpec, i: number): Promise<GarbageConn> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      let local = '';
      let byPeer = false;
      let error: string | undefined;
      const sock = net.connect({ host, port: spec.port, localAddress: spec.sources[i % spec.sources.length] });
      const timer = setTimeout(() => sock.destroy(), timeoutMs);
      sock.once('connect', () => {
        local = localOf(sock);
        sock.write(spec.bytes);
      });
      sock.on('data', () => undefined);
      sock.on('end', () => {
        byPeer = true;
        sock.end();
      });
      sock.on('error', (e: NodeJS.ErrnoException) => {
        error ??= e.code ?? e.message;
        if (e.code === 'ECONNRESET') byPeer = true;
      });
      sock.on('close', () => {
        clearTimeout(timer);
        resolve({ kind: spec.kind, local, closedByPeer: byPeer, lifetimeMs: performance.now() - t0, error });
      });
    });
  const out: GarbageConn[] = [];
  // A few at a time per spec: garbage keeps arriving while legitimate clients are served.
  await Promise.all(
    specs.map(async (spec) => {
      for (let i = 0; i < spec.count; i += 10) {
        out.push(...(await Promise.all(Array.from({ length: Math.min(10, spec.count - i) }, (_, k) => one(spec, i + k)))));
      }
    }),
  );
  return out;
}

// ── checksummed streams ─────────────────────────────────────────────────────────────────────────────────────────

interface StreamState {
  readonly index: number;
  readonly sock: net.Socket;
  local: string;
  sent: number;
  received: number;
  mismatchAt: number;
  gotEnd: boolean;
  ending: boolean;
  closed: boolean;
  droppedEarly: boolean;
  blocked: boolean;
  error: string | undefined;
}

let streams: StreamState[] = [];
let streamTimer: NodeJS.Timeout | undefined;

async function openStreams(host: string, port: number, count: number, chunkBytes: number, everyMs: number, sources: readonly string[]): Promise<{ connected: number }> {
  streams = [];
  const ready: Array<Promise<void>> = [];
  for (let index = 0; index < count; index++) {
    const sock = net.connect({ host, port, localAddress: sources[index % sources.length], allowHalfOpen: true });
    const st: StreamState = { index, sock, local: '', sent: 0, received: 0, mismatchAt: -1, gotEnd: false, ending: false, closed: false, droppedEarly: false, blocked: false, error: undefined };
    streams.push(st);
    sock.on('data', (d: Buffer) => {
      if (st.mismatchAt < 0) {
        for (let i = 0; i < d.length; i++) {
          if (d[i] !== streamByte(index, st.received + i)) {
            st.mismatchAt = st.received + i;
            break;
          }
        }
      }
      st.received += d.length;
    });
    sock.on('drain', () => {
      st.blocked = false;
    });
    sock.on('end', () => {
      st.gotEnd = true;
      if (!st.ending) st.droppedEarly = true;
      sock.end();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      st.error ??= e.code ?? e.message;
    });
    sock.on('close', () => {
      st.closed = true;
      if (!st.ending) st.droppedEarly = true;
    });
    ready.push(
      new Promise<void>((resolve) => {
        sock.once('connect', () => {
          st.local = localOf(sock);
          resolve();
        });
        sock.once('close', () => resolve());
      }),
    );
    if (index % 50 === 49) await sleep(20);
  }
  await Promise.race([Promise.all(ready), sleep(20_000)]);
  const chunk = (st: StreamState): Buffer => {
    const b = Buffer.allocUnsafe(chunkBytes);
    for (let i = 0; i < chunkBytes; i++) b[i] = streamByte(st.index, st.sent + i);
    return b;
  };
  streamTimer = setInterval(() => {
    for (const st of streams) {
      if (st.closed || st.ending || st.blocked || st.local === '') continue;
      const b = chunk(st);
      st.sent += b.length;
      if (!st.sock.write(b)) st.blocked = true;
    }
  }, everyMs);
  return { connected: streams.filter((s) => s.local !== '').length };
}

function streamsProgress(): { sent: number; received: number; open: number; dropped: number } {
  return {
    sent: streams.reduce((a, s) => a + s.sent, 0),
    received: streams.reduce((a, s) => a + s.received, 0),
    open: streams.filter((s) => !s.closed).length,
    dropped: streams.filter((s) => s.droppedEarly).length,
  };
}

async function streamsStop(timeoutMs: number): Promise<StreamReport[]> {
  if (streamTimer !== undefined) clearInterval(streamTimer);
  streamTimer = undefined;
  for (const st of streams) {
    if (st.closed) continue;
    st.ending = true;
    st.sock.end();
  }
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && streams.some((s) => !s.closed)) await sleep(50);
  const out = streams.map((s): StreamReport => ({ local: s.local, sent: s.sent, received: s.received, mismatchAt: s.mismatchAt, gotEnd: s.gotEnd, droppedEarly: s.droppedEarly, error: s.error }));
  for (const s of streams) if (!s.closed) s.sock.destroy();
  streams = [];
  return out;
}

// ── IPC ─────────────────────────────────────────────────────────────────────────────────────────────────────────

async function handle(req: Request): Promise<unknown> {
  switch (req.cmd) {
    case 'slow':
      return openSlow(req.host, req.specs, req.perBatch, req.batchGapMs);
    case 'slowReport':
      return slowReport(req.waitMs);
    case 'legit':
      return legit(req.host, req.targets, req.concurrency, req.durationMs, req.maxPerTarget);
    case 'garbage':
      return garbage(req.host, req.specs, req.timeoutMs);
    case 'streams':
      return openStreams(req.host, req.port, req.count, req.chunkBytes, req.everyMs, req.sources);
    case 'streamsProgress':
      return streamsProgress();
    case 'streamsStop':
      return streamsStop(req.timeoutMs);
  }
}

process.on('message', (req: Request) => {
  handle(req).then(
    (value) => process.send!({ id: req.id, ok: true, value } satisfies Answer),
    (e: unknown) => process.send!({ id: req.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) } satisfies Answer),
  );
});
process.on('disconnect', () => process.exit(0));
