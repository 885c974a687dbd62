/**
 * A fault injector for tests: a TCP proxy on loopback (port 0) placed between Refract and an origin, speaking
 * Toxiproxy's vocabulary. Each accepted connection is dialled through to `target`; the two directions are piped
 * with the configured toxics. `stream` names the direction a toxic acts on, as in Toxiproxy: `downstream` is
 * origin → Refract (the default), `upstream` is Refract → origin.
 *
 * | toxic | attributes | does |
 * |---|---|---|
 * | `latency` | `latency` ms, `jitter` ms | delays each chunk by latency ± jitter (uniform, from a seeded PRNG); order kept |
 * | `bandwidth` | `rate` KB/s (1 KB = 1,000 B) | releases bytes no faster than `rate` (each chunk waits `len / rate` ms) |
 * | `reset_peer` | `bytes`, or `timeout` ms | after `bytes` bytes forwarded in the stream: RST to the sender at once, to the receiver after those bytes; after `timeout` ms from accept: RST to both ends |
 * | `timeout` | `timeout` ms (0 = never) | black hole: the stream's bytes and FIN are read and dropped; with `timeout` > 0 both ends are closed then |
 * | `slow_close` | `delay` ms | the stream's FIN is forwarded `delay` ms after it arrived (after the bytes before it) |
 * | `half_open` | — | the stream's FIN is read and never forwarded; the other direction stays as it is |
 * | `limit_data` | `bytes` | after `bytes` bytes forwarded in the stream: FIN to the receiver, RST to the sender |
 *
 * Deterministic where it can be: jitter comes from `seed`, a cut happens at an exact byte count, every delay is a
 * computed release time (one timer per direction, for the head of its queue). Bounded: a direction stops reading
 * while 1 MiB waits in its queue or its receiver's buffer is full; `close()` destroys every socket and timer.
 * `reset_peer` waits until the bytes before the cut have left Node's buffer, plus `RESET_GRACE_MS`, so that they are
 * on the wire before the RST (a close with SO_LINGER 0 discards unsent bytes).
 *
 * `simLinkFaults` gives the simulator's equivalent of a toxic list: link parameters for each direction between the
 * edge and the origin (src/net/sim/fabric.ts, `LinkParams`).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { LinkParams } from '../../src/net/sim/index.ts';

export type FaultStream = 'upstream' | 'downstream';

export type Toxic =
  | { readonly type: 'latency'; readonly stream?: FaultStream; readonly latency: number; readonly jitter?: number }
  | { readonly type: 'bandwidth'; readonly stream?: FaultStream; readonly rate: number }
  | { readonly type: 'reset_peer'; readonly stream?: FaultStream; readonly bytes?: number; readonly timeout?: number }
  | { readonly type: 'timeout'; readonly stream?: FaultStream; readonly timeout?: number }
  | { readonly type: 'slow_close'; readonly stream?: FaultStream; readonly delay: number }
  | { readonly type: 'half_open'; readonly stream?: FaultStream }
  | { readonly type: 'limit_data'; readonly stream?: FaultStream; readonly bytes: number };

/** Time left after the bytes before a `reset_peer` cut have left Node's buffer, before the RST goes. */
export const RESET_GRACE_MS = 10;
/** A direction stops reading while this many bytes wait in its queue. */
const QUEUE_HIGH = 1 << 20;

export interface FaultCounts {
  /** Bytes written to the receiver. */
  forwarded: number;
  /** Bytes read and dropped (black hole, or past a cut). */
  dropped: number;
  /** FINs read and never forwarded (`half_open`, `timeout`). */
  finsSwallowed: number;
  /** `reset_peer` / `limit_data` cuts done. */
  cuts: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Per direction, over all connections. */
  readonly counts: Readonly<Record<FaultStream, Readonly<FaultCounts>>>;
  /** Stops listening and destroys every socket and timer. Idempotent. */
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  readonly target: { readonly host: string; readonly port: number };
  readonly toxics: readonly Toxic[];
  /** Seed of the jitter PRNG (default 1). */
  readonly seed?: number;
}

/** mulberry32: a small seeded PRNG in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What one direction does, folded from the toxics on its stream. */
interface StreamFaults {
  latency: number;
  jitter: number;
  /** Bytes per ms; Infinity = unlimited. */
  rate: number;
  blackHole: boolean;
  finDelay: number;
  swallowFin: boolean;
  /** Cut after this many bytes (Infinity = never) with FIN (limit_data) or RST (reset_peer). */
  cutAt: number;
  cutWith: 'fin' | 'rst';
}

function validate(t: Toxic): void {
  const num = (name: string, v: unknown, min = 0): void => {
    if (typeof v !== 'number' || !(v >= min) || !Number.isFinite(v)) throw new RangeError(`toxic ${t.type}: ${name} must be a finite number >= ${min}, got ${String(v)}`);
  };
  if (t.stream !== undefined && t.stream !== 'upstream' && t.stream !== 'downstream') throw new RangeError(`toxic ${t.type}: stream must be upstream or downstream`);
  switch (t.type) {
    case 'latency':
      num('latency', t.latency);
      if (t.jitter !== undefined) num('jitter', t.jitter);
      return;
    case 'bandwidth':
      num('rate', t.rate, 1);
      return;
    case 'reset_peer':
      if ((t.bytes === undefined) === (t.timeout === undefined)) throw new RangeError('toxic reset_peer: give exactly one of bytes and timeout');
      if (t.bytes !== undefined) num('bytes', t.bytes);
      if (t.timeout !== undefined) num('timeout', t.timeout);
      return;
    case 'timeout':
      if (t.timeout !== undefined) num('timeout', t.timeout);
      return;
    case 'slow_close':
      num('delay', t.delay);
      return;
    case 'half_open':
      return;
    case 'limit_data':
      num('bytes', t.bytes);
      return;
    default:
      throw new RangeError(`unknown toxic ${(t as { type: string }).type}`);
  }
}

function fold(toxics: readonly Toxic[], stream: FaultStream): StreamFaults {
  const f: StreamFaults = { latency: 0, jitter: 0, rate: Infinity, blackHole: false, finDelay: 0, swallowFin: false, cutAt: Infinity, cutWith: 'fin' };
  for (const t of toxics) {
    if ((t.stream ?? 'downstream') !== stream) continue;
    switch (t.type) {
      case 'latency':
        f.latency += t.latency;
        f.jitter += t.jitter ?? 0;
        break;
      case 'bandwidth':
        f.rate = Math.min(f.rate, t.rate); // KB/s = bytes/ms
        break;
      case 'reset_peer':
        if (t.bytes !== undefined && t.bytes < f.cutAt) [f.cutAt, f.cutWith] = [t.bytes, 'rst'];
        break;
      case 'timeout':
        f.blackHole = true;
        break;
      case 'slow_close':
        f.finDelay += t.delay;
        break;
      case 'half_open':
        f.swallowFin = true;
        break;
      case 'limit_data':
        if (t.bytes < f.cutAt) [f.cutAt, f.cutWith] = [t.bytes, 'fin'];
        break;
    }
  }
  return f;
}

type Item = { at: number; kind: 'data'; buf: Buffer } | { at: number; kind: 'end' } | { at: number; kind: 'cut' };

/** One direction of one connection: reads `src`, applies its faults, writes `dst`. */
class Pipe {
  readonly #src: net.Socket;
  readonly #dst: net.Socket;
  readonly #f: StreamFaults;
  readonly #counts: FaultCounts;
  readonly #random: () => number;
  readonly #conn: Connection;
  readonly #queue: Item[] = [];
  #queuedBytes = 0;
  /** Bytes let through so far (counted when queued, so a cut lands at an exact byte). */
  #admitted = 0;
  /** When the serialiser is free again (bandwidth). */
  #busyUntil = 0;
  /** Release time of the last queued item (order is kept). */
  #lastAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #cut = false;

  constructor(conn: Connection, src: net.Socket, dst: net.Socket, f: StreamFaults, counts: FaultCounts, random: () => number) {
    this.#conn = conn;
    this.#src = src;
    this.#dst = dst;
    this.#f = f;
    this.#counts = counts;
    this.#random = random;
    src.on('data', (chunk: Buffer) => this.#onData(chunk));
    src.on('end', () => this.#onEnd());
  }

  #delay(): number {
    const f = this.#f;
    const d = f.jitter === 0 ? f.latency : f.latency + (this.#random() * 2 - 1) * f.jitter;
    return d > 0 ? d : 0;
  }

  #onData(chunk: Buffer): void {
    const f = this.#f;
    if (f.blackHole || this.#cut || this.#admitted >= f.cutAt) {
      this.#counts.dropped += chunk.length;
      return;
    }
    let buf = chunk;
    const left = f.cutAt - this.#admitted;
    if (buf.length > left) {
      this.#counts.dropped += buf.length - left;
      buf = buf.subarray(0, left);
    }
    this.#admitted += buf.length;
    const now = performance.now();
    let leaves = now;
    if (f.rate !== Infinity) {
      leaves = (this.#busyUntil > now ? this.#busyUntil : now) + buf.length / f.rate;
      this.#busyUntil = leaves;
    }
    let at = leaves + this.#delay();
    if (at < this.#lastAt) at = this.#lastAt;
    this.#lastAt = at;
    if (buf.length > 0) this.#push({ at, kind: 'data', buf });
    if (this.#admitted >= f.cutAt) {
      this.#cut = true;
      this.#push({ at, kind: 'cut' });
    }
    if (this.#queuedBytes > QUEUE_HIGH) this.#src.pause();
    this.#run();
  }

  #onEnd(): void {
    const f = this.#f;
    if (f.blackHole || f.swallowFin || this.#cut) {
      this.#counts.finsSwallowed++;
      return;
    }
    let at = performance.now() + this.#delay();
    if (at < this.#lastAt) at = this.#lastAt;
    at += f.finDelay;
    this.#lastAt = at;
    this.#push({ at, kind: 'end' });
    this.#run();
  }

  #push(item: Item): void {
    this.#queue.push(item);
    if (item.kind === 'data') this.#queuedBytes += item.buf.length;
  }

  /** Performs every item due, then arms one timer for the next. */
  #run(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const now = performance.now();
    while (this.#queue.length > 0 && this.#queue[0]!.at <= now) {
      const item = this.#queue.shift()!;
      this.#perform(item);
    }
    if (this.#queue.length > 0) this.#timer = setTimeout(() => this.#run(), Math.ceil(this.#queue[0]!.at - now));
  }

  #perform(item: Item): void {
    const dst = this.#dst;
    switch (item.kind) {
      case 'data': {
        this.#queuedBytes -= item.buf.length;
        if (this.#queuedBytes <= QUEUE_HIGH / 4 && !this.#cut) this.#src.resume();
        if (dst.destroyed) {
          this.#counts.dropped += item.buf.length;
          return;
        }
        this.#counts.forwarded += item.buf.length;
        if (!dst.write(item.buf)) {
          this.#src.pause();
          dst.once('drain', () => {
            if (!this.#cut) this.#src.resume();
          });
        }
        return;
      }
      case 'end':
        if (!dst.destroyed) dst.end();
        return;
      case 'cut':
        this.#counts.cuts++;
        if (this.#f.cutWith === 'fin') {
          // limit_data: the receiver gets a FIN after the bytes; the sender is dropped with what it sends next unread.
          if (!dst.destroyed) dst.end();
          this.#src.resetAndDestroy();
        } else {
          // reset_peer: the sender is reset at once, the receiver once the bytes before the cut are on the wire.
          this.#src.resetAndDestroy();
          this.#conn.resetBoth(dst);
        }
        return;
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
  }
}

/** One proxied connection: the accepted socket (Refract's side) and the dialled one (the origin's side). */
class Connection {
  readonly down: net.Socket;
  readonly up: net.Socket;
  readonly #pipes: Pipe[];
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(down: net.Socket, up: net.Socket, toxics: readonly Toxic[], counts: Record<FaultStream, FaultCounts>, random: () => number) {
    this.down = down;
    this.up = up;
    this.#pipes = [
      new Pipe(this, down, up, fold(toxics, 'upstream'), counts.upstream, random),
      new Pipe(this, up, down, fold(toxics, 'downstream'), counts.downstream, random),
    ];
    // A reset on one side is passed on as a reset (what a middlebox that loses its peer shows).
    down.on('error', () => {
      if (!up.destroyed && !up.connecting) up.resetAndDestroy();
      else up.destroy();
    });
    up.on('error', () => {
      if (!down.destroyed) down.resetAndDestroy();
    });
    for (const t of toxics) {
      if (t.type === 'reset_peer' && t.timeout !== undefined) this.#timers.push(setTimeout(() => this.resetBoth(), t.timeout));
      if (t.type === 'timeout' && t.timeout !== undefined && t.timeout > 0) {
        this.#timers.push(
          setTimeout(() => {
            down.destroy();
            up.destroy();
          }, t.timeout),
        );
      }
    }
  }

  /** RST to both ends, once the bytes already written to `flushFirst` have left Node's buffer (plus a grace). */
  resetBoth(flushFirst?: net.Socket): void {
    const go = (): void => {
      this.#timers.push(
        setTimeout(() => {
          for (const s of [this.down, this.up]) {
            if (s.destroyed) continue;
            if (s.connecting) s.destroy();
            else s.resetAndDestroy();
          }
        }, RESET_GRACE_MS),
      );
    };
    if (flushFirst !== undefined && !flushFirst.destroyed && flushFirst.writableLength > 0) flushFirst.once('drain', go);
    else go();
  }

  stop(): void {
    for (const t of this.#timers) clearTimeout(t);
    for (const p of this.#pipes) p.stop();
    this.down.destroy();
    this.up.destroy();
  }
}

/** Starts the injector on 127.0.0.1, port 0, in front of `opts.target`. */
export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  for (const t of opts.toxics) validate(t);
  const random = prng(opts.seed ?? 1);
  const counts: Record<FaultStream, FaultCounts> = {
    upstream: { forwarded: 0, dropped: 0, finsSwallowed: 0, cuts: 0 },
    downstream: { forwarded: 0, dropped: 0, finsSwallowed: 0, cuts: 0 },
  };
  const conns = new Set<Connection>();
  let accepted = 0;
  const server = net.createServer({ allowHalfOpen: true }, (down) => {
    accepted++;
    const up = net.connect({ host: opts.target.host, port: opts.target.port, allowHalfOpen: true });
    const c = new Connection(down, up, opts.toxics, counts, random);
    conns.add(c);
    let closed = 0;
    const onClose = (): void => {
      if (++closed === 2) conns.delete(c);
    };
    down.on('close', onClose);
    up.on('close', onClose);
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen({ host: '127.0.0.1', port: 0 }, () => res());
  });
  const port = (server.address() as net.AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    get accepted() {
      return accepted;
    },
    counts,
    close() {
      closing ??= new Promise<void>((res) => {
        for (const c of conns) c.stop();
        conns.clear();
        server.close(() => res());
      });
      return closing;
    },
  };
}

/** Per direction between the edge and the origin: the simulator's link parameters for a toxic list. */
export interface SimLinkFaults {
  readonly 'edge->origin': Partial<LinkParams>;
  readonly 'origin->edge': Partial<LinkParams>;
}

/**
 * The simulator's equivalent of `toxics` (upstream = the edge → origin link, downstream = origin → edge). Throws for
 * a toxic the simulator has no equivalent of (`timeout` with a close time).
 */
export function simLinkFaults(toxics: readonly Toxic[]): SimLinkFaults {
  const out: Record<FaultStream, { -readonly [K in keyof LinkParams]?: LinkParams[K] }> = { upstream: {}, downstream: {} };
  for (const t of toxics) {
    validate(t);
    const p = out[t.stream ?? 'downstream'];
    switch (t.type) {
      case 'latency':
        p.latencyMs = (p.latencyMs ?? 0) + t.latency;
        if (t.jitter !== undefined) p.jitterMs = (p.jitterMs ?? 0) + t.jitter;
        break;
      case 'bandwidth':
        p.bandwidthBytesPerMs = Math.min(p.bandwidthBytesPerMs ?? Infinity, t.rate);
        break;
      case 'reset_peer':
        if (t.bytes !== undefined) p.cutAfterBytes = { bytes: t.bytes, with: 'rst' };
        else p.resetAfterMs = Math.min(p.resetAfterMs ?? Infinity, t.timeout!);
        break;
      case 'timeout':
        if ((t.timeout ?? 0) > 0) throw new RangeError('simLinkFaults: the simulator has no equivalent of a timeout toxic that closes (timeout > 0)');
        p.swallow = 'all';
        break;
      case 'slow_close':
        p.finDelayMs = (p.finDelayMs ?? 0) + t.delay;
        break;
      case 'half_open':
        if (p.swallow !== 'all') p.swallow = 'fin';
        break;
      case 'limit_data':
        p.cutAfterBytes = { bytes: t.bytes, with: 'fin' };
        break;
    }
  }
  return { 'edge->origin': out.upstream, 'origin->edge': out.downstream };
}
