/**
 * `HandleConn`: the Conn straight on the runtime's TCP handle (Node's `tcp_wrap`), without a `net.Socket` and its
 * stream machinery. A `net.Socket` costs a plain connection most of its user-space work: on the bench VM the
 * naive `c.pipe(net.connect(o)).pipe(c)` proxy executes ~340,000 instructions per proxied connection once warm, the
 * same pipe on handles ~61,000 (docs/benchmarks.md, "Below net.Socket"). Every system call is the same; only the JavaScript
 * around them goes.
 *
 * What it keeps from NodeConn (the contract in ports.ts): paused until resumed; reads land in reused buffers
 * (node-conn.ts's Reader, the same rules for lent views); `write` returns false while 16 KiB or more wait for the
 * kernel (net.Socket's high-water mark) and `drain` follows once all of it went; writes and `end` made while
 * dialling wait for the connection; `end` shuts the write side down after the queued writes; the Conn closes by
 * itself once both directions have ended (net.Socket's autoDestroy with allowHalfOpen); errors carry the code,
 * errno, syscall (and for `connect` the address and port) that Node's own errors carry; `error` comes before
 * `close(true)`; no handler is called from inside a call the owner made (errors of a synchronous system call are
 * delivered on the next tick, as net.Socket does).
 *
 * The handles are Node internals reached through `process.binding` (deprecated in documentation only, DEP0111;
 * no warning). `handleBindings` checks at load that every piece used here exists and otherwise is undefined, and
 * network.ts then uses NodeConn: the same behaviour at net.Socket's cost. TLS still runs on net.Socket: `detach`
 * moves the handle to one (as NodeConn's accepted sockets are re-wrapped).
 */
import * as net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { HandlerSlots } from '../handler-slots.ts';
import type { Conn, ConnHandlers, NetError, SocketAddress } from '../ports.ts';
import { Reader, readers, readingSocket, sockAddr, wroteChunk } from './node-conn.ts';

/** net.Socket's default writableHighWaterMark: `write` returns false from this many bytes waiting. */
const HIGH_WATER = 16 * 1024;
const UV_EOF = -4095;
const UV_ENOTCONN = -107;

/** The methods of a `tcp_wrap` TCP handle used here. */
export interface TcpHandle {
  onread: ((this: TcpHandle) => Uint8Array | undefined) | null;
  /** The HandleConn reading this handle (what `onHandleRead` calls), until it detaches. */
  owner?: HandleConn | undefined;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: WriteReq, buf: Uint8Array): number;
  shutdown(req: ShutdownReq): number;
  close(cb?: () => void): void;
  reset(cb: () => void): number;
  setNoDelay(on: boolean): number;
  getsockname(out: AddressOut): number;
  getpeername(out: AddressOut): number;
  bind(host: string, port: number): number;
  bind6(host: string, port: number, flags: number): number;
  connect(req: ConnectReq, host: string, port: number): number;
  connect6(req: ConnectReq, host: string, port: number): number;
}
/** A listening handle: what net.Server keeps in `_handle`. */
export interface ListenHandle {
  onconnection: ((status: number, client?: TcpHandle) => void) | null;
}
interface AddressOut {
  address?: string;
  port?: number;
}
interface WriteReq {
  handle: TcpHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  conn: HandleConn;
  bytes: number;
  /** The chunk of a write libuv queued: its memory is read until the write completes, so it must stay alive. */
  buffer: Uint8Array | undefined;
}
interface ShutdownReq {
  handle: TcpHandle;
  oncomplete: (this: ShutdownReq, status: number) => void;
  conn: HandleConn;
}
interface ConnectReq {
  oncomplete: (this: ConnectReq, status: number) => void;
  address: string;
  port: number;
  conn: HandleConn;
}

interface HandleBindings {
  readonly TCP: new (kind: number) => TcpHandle;
  readonly TCPConnectWrap: new () => ConnectReq;
  readonly WriteWrap: new () => WriteReq;
  readonly ShutdownWrap: new () => ShutdownReq;
  readonly SOCKET: number;
  readonly state: Int32Array;
  readonly kReadBytesOrError: number;
  readonly kLastWriteWasAsync: number;
}

/** The runtime's handle classes, or undefined when any piece used here is missing (network.ts then uses NodeConn). */
function loadBindings(): HandleBindings | undefined {
  try {
    const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const tcp = binding('tcp_wrap') as { TCP?: { prototype: Record<string, unknown> } & (new (kind: number) => TcpHandle); TCPConnectWrap?: new () => ConnectReq; constants?: { SOCKET?: number } };
    const stream = binding('stream_wrap') as Record<string, unknown>;
    const proto = tcp.TCP?.prototype;
    const methods = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'close', 'reset', 'setNoDelay', 'getsockname', 'getpeername', 'bind', 'bind6', 'connect', 'connect6'];
    if (proto === undefined || methods.some((m) => typeof proto[m] !== 'function')) return undefined;
    const state = stream['streamBaseState'];
    const kRead = stream['kReadBytesOrError'];
    const kAsync = stream['kLastWriteWasAsync'];
    if (!(state instanceof Int32Array) || typeof kRead !== 'number' || typeof kAsync !== 'number') return undefined;
    if (typeof tcp.TCPConnectWrap !== 'function' || typeof stream['WriteWrap'] !== 'function' || typeof stream['ShutdownWrap'] !== 'function') return undefined;
    if (typeof tcp.constants?.SOCKET !== 'number') return undefined;
    return {
      TCP: tcp.TCP!,
      TCPConnectWrap: tcp.TCPConnectWrap,
      WriteWrap: stream['WriteWrap'] as new () => WriteReq,
      ShutdownWrap: stream['ShutdownWrap'] as new () => ShutdownReq,
      SOCKET: tcp.constants.SOCKET,
      state,
      kReadBytesOrError: kRead,
      kLastWriteWasAsync: kAsync,
    };
  } catch {
    return undefined;
  }
}

export const handleBindings: HandleBindings | undefined = loadBindings();
const B = handleBindings;

/** Node's error for a failed system call: `code`, `errno`, `syscall`, and `address`/`port` for connect. */
function netError(errno: number, syscall: string, address?: string, port?: number): NetError {
  let code: string;
  try {
    code = getSystemErrorName(errno);
  } catch {
    code = `Unknown system error ${errno}`;
  }
  const where = address === undefined ? '' : ` ${address}${port === undefined ? '' : `:${port}`}`;
  const e = new Error(`${syscall} ${code}${where}`) as NetError & { errno: number };
  e.errno = errno;
  e.code = code;
  e.syscall = syscall;
  if (address !== undefined) e.address = address;
  if (port !== undefined) e.port = port;
  return e;
}

function afterWrite(this: WriteReq, status: number): void {
  this.buffer = undefined;
  this.conn.written(this.bytes, status);
}
function afterShutdown(this: ShutdownReq): void {
  // As net.Socket: the shutdown's status is not an error of the connection (a reset shows on the read side).
  this.conn.shutDown();
}
/** Every handle's read callback: libuv calls it with the handle as `this` (one function for all, no closure each). */
function onHandleRead(this: TcpHandle): Uint8Array | undefined {
  return this.owner?.readDone();
}
function afterConnect(this: ConnectReq, status: number): void {
  this.conn.connected(status, this.address, this.port);
}

export interface HandleConnOptions {
  /** The peer, when known (an outbound connection: the address dialled). */
  readonly remote?: SocketAddress;
  /** The local address, when known (an accepted connection of a listener bound to one address). */
  readonly local?: SocketAddress;
  /** Called with a failed `connect`'s code (the descriptor guard counts EMFILE/ENFILE there). */
  readonly onConnectError?: (code: string) => void;
}

export class HandleConn implements Conn {
  readonly #h: TcpHandle;
  readonly #reader = new Reader();
  readonly #onConnectError: ((code: string) => void) | undefined;
  readonly #hs = new HandlerSlots();
  #local: SocketAddress | undefined;
  #remote: SocketAddress | undefined;
  #connecting: boolean;
  /** Writes made while dialling, sent once connected. */
  #queue: Uint8Array[] | undefined;
  /** Bytes handed to `write` that the kernel has not taken yet (queued while dialling, or in libuv's queue). */
  #pendingBytes = 0;
  #pendingWrites = 0;
  #needDrain = false;
  /** `end()` was called. */
  #ending = false;
  #shutdownSent = false;
  #writeDone = false;
  #eof = false;
  #reading = false;
  /** null: never paused or resumed by the owner — setting a data handler starts the flow. */
  #flowing: boolean | null = null;
  /** Closing or closed (destroy, reset, an error, both directions ended) or detached: no more I/O. */
  #done = false;
  #closed = false;
  bytesRead = 0;
  bytesWritten = 0;

  /** `h`: an accepted handle (`connecting` false) or a handle being dialled (`connecting` true). */
  constructor(h: TcpHandle, connecting: boolean, opts: HandleConnOptions = {}) {
    this.#h = h;
    this.#connecting = connecting;
    this.#remote = opts.remote;
    this.#local = opts.local;
    this.#onConnectError = opts.onConnectError;
    this.#reader.sink = this.#hs;
    h.owner = this;
    h.onread = onHandleRead;
    h.useUserBuffer(this.#reader.buf);
  }

  get local(): SocketAddress {
    if (this.#local !== undefined) return this.#local;
    const out: AddressOut = {};
    if (this.#done || this.#h.getsockname(out) !== 0) return sockAddr(undefined, undefined);
    return (this.#local = sockAddr(out.address, out.port));
  }

  get remote(): SocketAddress {
    if (this.#remote !== undefined) return this.#remote;
    const out: AddressOut = {};
    if (this.#done || this.#h.getpeername(out) !== 0) return sockAddr(undefined, undefined);
    return (this.#remote = sockAddr(out.address, out.port));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes handed to `write` that the kernel has not taken yet (tests check it stays near the high-water mark). */
  get writableLength(): number {
    return this.#pendingBytes;
  }

  setHandlers(h: Partial<ConnHandlers>): void {
    this.#hs.set(h);
    if (h.data !== undefined && this.#flowing === null) this.resume();
  }

  write(chunk: Uint8Array): boolean {
    if (this.#done || this.#ending) return false;
    if (this.#connecting) {
      (this.#queue ??= []).push(chunk);
      wroteChunk(chunk, false); // held until connected: never read into again
      this.#pendingBytes += chunk.length;
      if (this.#pendingBytes < HIGH_WATER) return true;
      this.#needDrain = true;
      return false;
    }
    return this.#send(chunk);
  }

  end(): void {
    if (this.#done || this.#ending) return;
    this.#ending = true;
    if (!this.#connecting && this.#pendingWrites === 0) this.#finishWriting();
  }

  destroy(): void {
    this.#close(false);
  }

  reset(): void {
    if (this.#done) return;
    if (this.#connecting) {
      this.#close(false);
      return;
    }
    this.#done = true;
    this.#stopReading();
    if (this.#h.reset(() => this.#closedNow(false)) !== 0) this.#h.close(() => this.#closedNow(false));
  }

  pause(): void {
    this.#flowing = false;
    this.#stopReading();
  }

  resume(): void {
    this.#flowing = true;
    this.#startReading();
  }

  /**
   * Hands the handle to a net.Socket (for TLS): paused, reading through its own Reader; this Conn is done and
   * reports `closed`. Only for a connected Conn.
   */
  detach(): net.Socket {
    if (this.#connecting || this.#done) throw new Error('HandleConn.detach() needs a connected, open Conn');
    this.#stopReading();
    this.#local = this.local;
    this.#remote = this.remote;
    this.#done = true;
    this.#closed = true;
    this.#hs.clear();
    this.#reader.release();
    this.#h.owner = undefined;
    return readingSocket(this.#h);
  }

  /** Like `detach()`, with the new socket's reads going to `onBytes` until its new owner pauses it. */
  detachReading(onBytes: (chunk: Buffer) => void): net.Socket {
    const s = this.detach();
    readers.get(s)!.sink = { data: onBytes };
    return s;
  }

  /**
   * Registers reading on a handle being dialled, before the connect completes: libuv then adds the descriptor to
   * epoll once for both the connect and reading. Started only after the connect, reading costs two more `epoll_ctl`
   * (libuv forgets the registration when the connect's write interest ends, so its next start is an ADD that fails
   * with EEXIST and is retried as a MOD). `connected()` stops it again unless the owner resumed by then.
   */
  armReadEarly(): void {
    if (!this.#connecting || this.#reading || this.#done) return;
    this.#reading = true;
    if (this.#h.readStart() !== 0) this.#reading = false; // not fatal: reading then starts after the connect
  }

  // ── called by the request callbacks above ──

  /** A write of `bytes` that libuv had to queue completed. */
  written(bytes: number, status: number): void {
    this.#pendingWrites--;
    this.#pendingBytes -= bytes;
    if (this.#done) return;
    if (status < 0) {
      this.#fail(netError(status, 'write'));
      return;
    }
    if (this.#pendingWrites > 0) return;
    if (this.#ending && !this.#shutdownSent) this.#finishWriting();
    if (this.#needDrain && !this.#done) {
      this.#needDrain = false;
      this.#hs.drain();
    }
  }

  /** A dial that failed at once (no descriptor, a bad address): reported on the tick after `dialHandle`. */
  connectFailed(e: NetError): void {
    this.#fail(e);
  }

  shutDown(): void {
    this.#writeDone = true;
    this.#maybeFinished();
  }

  connected(status: number, address: string, port: number): void {
    if (this.#done) return;
    if (status < 0) {
      const e = netError(status, 'connect', address, port);
      this.#onConnectError?.(e.code);
      this.#fail(e);
      return;
    }
    this.#connecting = false;
    this.#local = undefined;
    this.#h.setNoDelay(true);
    this.#hs.connect();
    if (this.#done) return;
    // Reading was registered at dial time (see `armReadEarly`): keep it only if the owner wants data by now. No byte
    // can have been read yet: libuv handles a connecting socket's first event as the connect and nothing else, and
    // reads only in a later poll, after this callback.
    if (this.#flowing !== true) this.#stopReading();
    const queue = this.#queue;
    this.#queue = undefined;
    if (queue !== undefined) {
      for (const c of queue) this.#pendingBytes -= c.length;
      for (const c of queue) if (!this.#done) this.#send(c);
    }
    if (this.#done) return;
    if (this.#pendingWrites === 0) {
      if (this.#ending) this.#finishWriting();
      if (this.#needDrain) {
        this.#needDrain = false;
        this.#hs.drain();
      }
    }
    if (this.#flowing === true) this.#startReading();
  }

  // ── internals ──

  /** A read completed on the handle (called by its read callback): the landing buffer is the Reader's. */
  readDone(): Uint8Array | undefined {
    const n = B!.state[B!.kReadBytesOrError]!;
    if (n > 0) {
      if (this.#done) return undefined;
      this.bytesRead += n;
      const reader = this.#reader;
      const buf = reader.buf;
      reader.onRead(n, buf);
      return reader.buf !== buf ? reader.buf : undefined;
    }
    if (n === 0 || this.#done) return undefined;
    this.#stopReading();
    if (n === UV_EOF) {
      this.#eof = true;
      this.#hs.end();
      this.#maybeFinished();
    } else this.#fail(netError(n, 'read'));
    return undefined;
  }

  #send(chunk: Uint8Array): boolean {
    const req = new B!.WriteWrap();
    req.handle = this.#h;
    req.oncomplete = afterWrite;
    req.async = false;
    req.conn = this;
    const err = this.#h.writeBuffer(req, chunk);
    if (err !== 0) {
      wroteChunk(chunk, false);
      this.#failSoon(netError(err, 'write'));
      return false;
    }
    this.bytesWritten += chunk.length;
    if (B!.state[B!.kLastWriteWasAsync] === 0) {
      // The kernel took all of it (libuv writes at once only when nothing is queued before it).
      wroteChunk(chunk, true);
      return true;
    }
    wroteChunk(chunk, false);
    // As net.Socket keeps `req.buffer`: libuv writes from this memory later, and nothing else may hold the chunk (a
    // splice drops it after write), so without this reference a GC could free it first and other bytes go out.
    req.buffer = chunk;
    req.bytes = chunk.length;
    this.#pendingWrites++;
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes < HIGH_WATER) return true;
    this.#needDrain = true;
    return false;
  }

  /**
   * The write side is done and nothing waits to be written. When the peer's FIN was read already, `close()` sends
   * the same FIN as `shutdown()` followed by `close()` (nothing unread can follow a FIN, so no RST), one system call
   * fewer per connection; a write error is never hidden by it: with nothing waiting, every write went to the kernel
   * at once, and a failed one has already ended the Conn.
   */
  #finishWriting(): void {
    if (this.#eof) this.#close(false);
    else this.#shutdown();
  }

  #shutdown(): void {
    this.#shutdownSent = true;
    const req = new B!.ShutdownWrap();
    req.handle = this.#h;
    req.oncomplete = afterShutdown;
    req.conn = this;
    const err = this.#h.shutdown(req);
    if (err === 0) return;
    // 1: done at once; ENOTCONN: nothing to shut down. Either way the write side is finished (as net.Socket).
    if (err === 1 || err === UV_ENOTCONN) process.nextTick(() => this.shutDown());
    else this.#failSoon(netError(err, 'shutdown'));
  }

  #startReading(): void {
    if (this.#reading || this.#connecting || this.#eof || this.#done) return;
    this.#reading = true;
    const err = this.#h.readStart();
    if (err !== 0) {
      this.#reading = false;
      this.#failSoon(netError(err, 'read'));
    }
  }

  #stopReading(): void {
    if (!this.#reading) return;
    this.#reading = false;
    this.#h.readStop();
  }

  /** Both directions ended: the Conn closes by itself. */
  #maybeFinished(): void {
    if (this.#eof && this.#writeDone && !this.#done) this.#close(false);
  }

  #fail(e: NetError): void {
    if (this.#done) return;
    this.#close(true);
    this.#hs.error(e);
  }

  /** An error found inside a call the owner made: delivered on the next tick, as net.Socket does. */
  #failSoon(e: NetError): void {
    if (this.#done) return;
    this.#done = true;
    this.#stopReading();
    process.nextTick(() => {
      this.#hs.error(e);
      this.#h.close(() => this.#closedNow(true));
    });
  }

  #close(hadError: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#stopReading();
    this.#h.close(() => this.#closedNow(hadError));
  }

  #closedNow(hadError: boolean): void {
    this.#closed = true;
    this.#reader.release();
    this.#hs.close(hadError);
  }
}

/**
 * Dials `host:port` (an IP literal; `ipv6` says which family, as `net.isIP` found it) on a fresh handle, from
 * `localAddress` (a literal too) when given. Errors (a refused or failed connect, no descriptor left) reach the
 * Conn's `error` handler, then `close(true)`.
 */
export function dialHandle(host: string, ipv6: boolean, port: number, localAddress: string | undefined, onConnectError: (code: string) => void): HandleConn {
  const h = new B!.TCP(B!.SOCKET);
  const conn = new HandleConn(h, true, { remote: sockAddr(host, port), onConnectError });
  let err = 0;
  let syscall = 'connect';
  if (localAddress !== undefined) {
    syscall = 'bind';
    err = localAddress.includes(':') ? h.bind6(localAddress, 0, 0) : h.bind(localAddress, 0);
  }
  if (err === 0) {
    syscall = 'connect';
    const req = new B!.TCPConnectWrap();
    req.oncomplete = afterConnect;
    req.address = host;
    req.port = port;
    req.conn = conn;
    err = ipv6 ? h.connect6(req, host, port) : h.connect(req, host, port);
    if (err === 0) conn.armReadEarly();
  }
  if (err !== 0) {
    const e = netError(err, syscall, syscall === 'connect' ? host : localAddress, syscall === 'connect' ? port : 0);
    onConnectError(e.code);
    process.nextTick(() => conn.connectFailed(e));
  }
  return conn;
}
