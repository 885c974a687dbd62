/**
 * `NodeConn`, the Conn over a net.Socket, with the read path that reuses buffers; shared by the plain network
 * (network.ts) and TLS (tls.ts), which wraps NodeConns. Its own file so that neither of those imports the other.
 */
import * as net from 'node:net';
import { HandlerSlots } from '../handler-slots.ts';
import type { Conn, ConnHandlers, IpFamily, NetError, SocketAddress } from '../ports.ts';

const noop = (): void => {};

/** Strips the IPv4-mapped prefix Node reports for IPv4 peers on dual-stack sockets. */
export function normaliseAddress(address: string | undefined): { address: string; family: IpFamily } {
  const a = address ?? '';
  if (a.startsWith('::ffff:') && a.includes('.')) return { address: a.slice(7), family: 'IPv4' };
  return { address: a, family: a.includes(':') ? 'IPv6' : 'IPv4' };
}

export function sockAddr(address: string | undefined, port: number | undefined): SocketAddress {
  const n = normaliseAddress(address);
  return { address: n.address, port: port ?? 0, family: n.family };
}

// ── reads without a fresh buffer per read ────────────────────────────────────────────────────────────────────
//
// Node's default read path allocates a 64 KiB buffer (malloc) for every read and shrinks it to the bytes read.
// At bulk rates that churn makes glibc trim the top of its heap and grow it again, so every read lands on freshly
// mapped pages: measured on the bench VM at ~180,000 minor page faults per GB proxied (≈ 26 µs of kernel time
// each there), 70 % of the proxy's CPU. Sockets made here read instead into buffers we reuse (net.Socket's
// `onread`): small reads land in one shared buffer and are copied out (cheap: Node's 8 KiB Buffer pool), large
// reads land in a buffer owned by the connection and are handed to the data handler as a view, zero-copy. The
// owned buffer is read into again only when the handler passed that very view to `NodeConn.write` and the write
// went to the kernel at once (nothing queued); in every other case (the handler kept it, the write was queued, or
// it was not written) the view is the handler's to keep and the next read gets another buffer.
//
// Contract for data handlers (the splice, header readers, echo origins): a chunk handed to `write` is not kept
// afterwards by the same handler. Keeping a chunk without writing it, or writing it and dropping it, are both fine.

/** Size of one read, as Node's own default read buffer. */
const READ_BYTES = 64 * 1024;
/**
 * Reads smaller than this are copied out of the shared buffer: `Buffer.allocUnsafe` serves them from its pool
 * without a malloc. Larger reads switch the connection to a buffer of its own.
 */
const COPY_MAX = Buffer.poolSize >>> 1;
/** The landing buffer of every connection not moving bulk data. Never handed out: its bytes are copied. */
const SHARED = Buffer.allocUnsafeSlow(READ_BYTES);
/** Owned buffers given back (connection closed or gone quiet), kept for the next bulk connection. Bounded. */
const spare: Buffer[] = [];
const SPARE_MAX = 64; // 4 MiB

/** The view most recently handed to a data handler, and whether a write flushed it before the handler returned. */
let lent: Uint8Array | null = null;
let lentFlushed = false;
/** The lent view was written already: a second write of it (breaking "write it and drop it") forbids reuse. */
let lentWritten = false;

/**
 * After `chunk` was handed to a socket write: `flushed` when the kernel took all of it at once (nothing queued). A
 * lent read buffer may be read into again only then, and only if it was written once.
 */
export function wroteChunk(chunk: Uint8Array, flushed: boolean): void {
  if (chunk !== lent) return;
  lentFlushed = !lentWritten && flushed;
  lentWritten = true;
}

/** Where a Reader's chunks go: a Conn's handler slots, or a function's `{ data }`. */
export interface ReadSink {
  data(chunk: Buffer): void;
}
const NO_SINK: ReadSink = { data: noop };

/** The reading half of a socket made with our `onread` (or a HandleConn): chooses the buffer each read lands in. */
export class Reader {
  /** Where the next read lands (the socket's current user buffer). */
  buf: Buffer = SHARED;
  /** Called as `sink.data(chunk)` for every read. */
  sink: ReadSink = NO_SINK;

  /** A read of `n` bytes landed in `buf` (net.Socket's `onread.callback`, or a HandleConn's read callback). */
  onRead(n: number, buf: Uint8Array): boolean {
    const b = buf as Buffer;
    if (b === SHARED) {
      const copy = Buffer.allocUnsafe(n);
      SHARED.copy(copy, 0, 0, n);
      if (n > COPY_MAX) this.buf = spare.pop() ?? Buffer.allocUnsafeSlow(READ_BYTES);
      this.sink.data(copy);
      return true;
    }
    const view = b.subarray(0, n);
    lent = view;
    lentFlushed = false;
    lentWritten = false;
    try {
      this.sink.data(view);
    } finally {
      const reusable = lent === view && lentFlushed;
      lent = null;
      if (!reusable) this.buf = n > COPY_MAX ? (spare.pop() ?? Buffer.allocUnsafeSlow(READ_BYTES)) : SHARED;
      else if (n <= COPY_MAX) this.release();
    }
    return true;
  }

  /** The socket is done reading: its own buffer, if still ours, goes back to the spares. */
  release(): void {
    const b = this.buf;
    this.buf = SHARED;
    if (b !== SHARED && spare.length < SPARE_MAX) spare.push(b);
  }
}

export const readers = new WeakMap<net.Socket, Reader>();

/** net.Socket's undocumented-but-stable pieces used to re-wrap an accepted handle (as cluster does). */
interface SocketInternals {
  _handle: unknown;
  _server: net.Server | null;
  server: net.Server | null;
}

/** A socket reading through a Reader. `handle`: an accepted connection's native handle, taken over. */
export function readingSocket(handle?: unknown): net.Socket {
  const reader = new Reader();
  const opts = { allowHalfOpen: true, onread: { buffer: (): Buffer => reader.buf, callback: (n: number, buf: Uint8Array): boolean => reader.onRead(n, buf) } };
  const socket = handle === undefined ? new net.Socket(opts) : new net.Socket({ ...opts, handle, pauseOnCreate: true } as net.SocketConstructorOpts);
  readers.set(socket, reader);
  return socket;
}

/**
 * net.Server has no `onread` option: the accepted socket (created paused, so nothing was read yet) gives its native
 * handle to a new socket that has one. The server's connection count moves with it. (Setting the `onread` slots on
 * the accepted socket in place instead saves that second socket, but measured no faster on the cps bench, within
 * its ±15 % noise, and leans on three more Node internals; not kept.)
 */
export function rewrapAccepted(accepted: net.Socket): net.Socket {
  const old = accepted as unknown as SocketInternals;
  const socket = readingSocket(old._handle);
  const s = socket as unknown as SocketInternals;
  s._server = old._server;
  s.server = old.server;
  old._server = null;
  old._handle = null;
  accepted.destroy(); // no handle: only the JS object goes
  return socket;
}

/**
 * A Conn over a net.Socket. Handlers are plain fields (not EventEmitter listeners we add per use) so the data path
 * costs one indirect call per chunk. Sockets made by createNodeNetwork read into reused buffers (see above); any
 * other socket (a TLSSocket from tls.ts) is read through its `data` events.
 */
export class NodeConn implements Conn {
  readonly #s: net.Socket;
  readonly #reader: Reader | undefined;
  readonly #h = new HandlerSlots();
  #local: SocketAddress | undefined;
  #remote: SocketAddress;
  #closed = false;
  /** null: never paused or resumed by the owner — setting a data handler starts the flow (as `on('data')` does). */
  #flowing: boolean | null = null;

  /** `local`: the local address when already known (an accepted socket of a listener bound to one address). */
  constructor(socket: net.Socket, remote?: SocketAddress, local?: SocketAddress) {
    this.#s = socket;
    this.#local = local;
    this.#remote = remote ?? sockAddr(socket.remoteAddress, socket.remotePort);
    const reader = readers.get(socket);
    this.#reader = reader;
    if (reader) reader.sink = this.#h;
    else socket.on('data', (b: Buffer) => this.#h.data(b));
    socket.on('drain', () => this.#h.drain());
    socket.on('end', () => this.#h.end());
    socket.on('error', (e: Error) => this.#h.error(e as NetError));
    socket.on('close', (hadError: boolean) => {
      this.#closed = true;
      this.#reader?.release();
      this.#h.close(hadError);
    });
    if (remote) {
      socket.once('connect', () => {
        this.#local = undefined;
        this.#h.connect();
      });
    }
  }

  get local(): SocketAddress {
    return (this.#local ??= sockAddr(this.#s.localAddress, this.#s.localPort));
  }

  get remote(): SocketAddress {
    return this.#remote;
  }

  get bytesRead(): number {
    return this.#s.bytesRead;
  }

  get bytesWritten(): number {
    return this.#s.bytesWritten;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes queued in Node for this socket, not yet taken by the kernel (tests check it stays near the high-water mark). */
  get writableLength(): number {
    return this.#s.writableLength;
  }

  setHandlers(h: Partial<ConnHandlers>): void {
    this.#h.set(h);
    if (h.data !== undefined && this.#flowing === null) this.resume();
  }

  write(chunk: Uint8Array): boolean {
    const s = this.#s;
    if (s.destroyed || s.writableEnded) return false;
    const ok = s.write(chunk);
    // A lent read buffer may be read into again only if the kernel has its bytes (nothing left queued).
    // Written twice (to this socket or another): one write may still hold it, so never reuse.
    wroteChunk(chunk, s.writableLength === 0);
    return ok;
  }

  end(): void {
    if (!this.#s.destroyed && !this.#s.writableEnded) this.#s.end();
  }

  destroy(): void {
    this.#s.destroy();
  }

  reset(): void {
    if (this.#s.destroyed) return;
    // resetAndDestroy needs a connected handle; a still-connecting socket is just destroyed.
    if (this.#s.connecting) this.#s.destroy();
    else this.#s.resetAndDestroy();
  }

  pause(): void {
    this.#flowing = false;
    this.#s.pause();
  }

  resume(): void {
    this.#flowing = true;
    this.#s.resume();
  }

  /**
   * Like `detach()`, but the socket keeps reading, into `onBytes`, until its new owner pauses it: a ClientHello
   * reader that then hands the socket to a TLSSocket (which reads the handle through its own listener from then on).
   * Saves moving the handle to yet another socket. Undefined for a socket that does not read through our `onread`
   * (the caller then uses `detach()`). Chunks may be kept (they are not written here, so never reused).
   */
  detachReading(onBytes: (chunk: Buffer) => void): net.Socket | undefined {
    const reader = this.#reader;
    if (!reader) return undefined;
    const s = this.detach();
    reader.sink = { data: onBytes };
    return s;
  }

  /**
   * Hands the socket over to a wrapper (TLS): removes this Conn's listeners and returns the socket, paused. The
   * Conn must not be used afterwards; the wrapper's own Conn takes its place, so this one reports `closed` from
   * now on (its owner is done with it; the socket's life is the wrapper's). (A wrapper that takes the native
   * handle, as tls.TLSSocket does, reads through it from then on; our reused buffer is no longer read into.)
   */
  detach(): net.Socket {
    const s = this.#s;
    this.#closed = true;
    s.removeAllListeners('data');
    s.removeAllListeners('drain');
    s.removeAllListeners('end');
    s.removeAllListeners('error');
    s.removeAllListeners('close');
    s.removeAllListeners('connect');
    s.pause();
    if (this.#reader) this.#reader.sink = NO_SINK;
    this.#h.clear();
    return s;
  }
}
