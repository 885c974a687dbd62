/**
 * Simulated TCP: one `SimConn` is both the application's `Conn` and the kernel's control block (TCB) for one
 * endpoint. The two lifetimes differ and both are modelled: the app side ends with `close`; the TCB lives on while
 * the kernel still has bytes or a FIN to deliver (an orphan after `destroy`), and can die first (an RST the app has
 * not read yet).
 *
 * Model (what Node on Linux shows, with `allowHalfOpen: true`):
 * - Handshake: SYN → SYN-ACK → ACK. The client's `connect` fires when the SYN-ACK arrives (1 RTT); the server's
 *   `onConnection` when the first packet after it arrives (the ACK, 1.5 RTT). No listener: RST → `ECONNREFUSED`.
 *   No answer: SYN retransmitted after 1, 2, 4 … s; after `synRetries` → `ETIMEDOUT` (127 s by default, Linux's).
 * - Data: a write becomes one segment unless the receive window or the link's slicer cuts it (no copy, no per-byte
 *   work). Segments carry a per-direction sequence number; the receiver reassembles in order, so jitter never
 *   reorders bytes. A lost segment (random loss, partition, host down) is retransmitted after an RTO that doubles per
 *   try; after `dataRetries` tries the sender fails with `ETIMEDOUT`. ACKs ride on data sent in the same event.
 * - Flow control: the sender keeps at most `receiveWindowBytes` un-read-by-the-peer bytes in flight; its kernel
 *   buffer holds unsent + unacknowledged bytes up to `sendBufferBytes`; what does not fit waits in Node's writable
 *   buffer, and `write` returns false while that holds ≥ `writableHighWaterMark` bytes, then `drain`.
 * - Close: `end` queues a FIN after the data; the app side closes (`close(false)`) once it has ended, flushed its
 *   writes into the kernel and seen the peer's `end`. `destroy` discards the writable buffer and closes at once; the
 *   kernel still delivers what it holds, then FIN, or sends RST when unread data would be lost. `reset` sends RST.
 * - RST arriving: before `connect` → ECONNREFUSED; while Node is reading → `error` ECONNRESET (syscall read);
 *   after the peer's FIN (CLOSE_WAIT) → the next write fails with EPIPE; while Node is not reading → the next write
 *   fails with ECONNRESET. Data arriving at a destroyed socket, or at a host with no such connection → RST.
 */
import { Buffer } from 'node:buffer';
import { type Conn, type ConnHandlers, type NetError, type SocketAddress, type TcpListener } from '../ports.ts';
import { LOST, type Link } from './fabric.ts';
import { hostPort } from './addr.ts';
import { netError, nodeError, dnsError } from './net-error.ts';
import { type TimerHandle } from './virtual-clock.ts';
import { type TcpKernel, type TcpParams } from './kernel.ts';
import { HandlerSlots } from '../handler-slots.ts';

/** The host kernel as this file sees it (implemented by SimHost). */
type Host = TcpKernel<SimConn, SimListener>;

/** Linux-style state names, for netstat. */
export type TcpState = 'SYN_SENT' | 'SYN_RECEIVED' | 'ESTABLISHED' | 'CLOSED';

/**
 * A data or FIN segment in flight. Taken from a free list (`newSegment`) and given back when its receiver has taken it
 * in order (`onSegmentArrive`): then nothing refers to it any more (a segment that arrived is never retransmitted; its
 * bytes went into the receive queue). A segment lost, kept out of order, or dropped is left to the GC.
 */
class Segment {
  from: SimConn;
  seq: number;
  data: Buffer | null;
  fin: boolean;
  attempt = 0;
  /** Piggybacked acknowledgement, refreshed at each (re)transmission: what `from` has received and read. */
  ackReceived = 0;
  ackConsumed = 0;
  ackFin = false;

  constructor(from: SimConn, seq: number, data: Buffer | null, fin: boolean) {
    this.from = from;
    this.seq = seq;
    this.data = data;
    this.fin = fin;
  }
}

/**
 * A cumulative acknowledgement: what the peer has received and read (consumed), and whether it has our FIN. From a
 * free list too (`newAck`), given back once applied at a live TCB (`onAckArrive`); one re-sent after a loss is not.
 */
class Ack {
  // Set by `refill`, which the constructor calls (one list of the fields for a new ACK and a reused one).
  from!: SimConn;
  received!: number;
  consumed!: number;
  fin!: boolean;
  attempt!: number;
  /** The sending host's incarnation: a lost ACK is re-sent even after its TCB is gone (TIME_WAIT), not after a crash. */
  incarnation!: number;

  constructor(from: SimConn, received: number, consumed: number, fin: boolean, attempt: number, incarnation: number) {
    this.refill(from, received, consumed, fin, attempt, incarnation);
  }

  /** Sets every field: a new ACK, or a free one taken again. */
  refill(from: SimConn, received: number, consumed: number, fin: boolean, attempt: number, incarnation: number): this {
    this.from = from;
    this.received = received;
    this.consumed = consumed;
    this.fin = fin;
    this.attempt = attempt;
    this.incarnation = incarnation;
    return this;
  }
}

/**
 * Free segments and ACKs (at most POOL_MAX each): a lifecycle sends about eight of each, and each would otherwise be
 * a fresh object. Module-wide: an object in a free list holds no connection or bytes, so simulations share them
 * without seeing each other. Counted for the tests (`packetPool`).
 */
const POOL_MAX = 1_024;
/** What a free segment's or ACK's `from` holds (never read: a free one is not in flight). */
const NO_CONN = null as unknown as SimConn;
const freeSegments: Segment[] = [];
const freeAcks: Ack[] = [];
const pool = { segmentsCreated: 0, acksCreated: 0, segmentsReused: 0, acksReused: 0 };

function newSegment(from: SimConn, seq: number, data: Buffer | null, fin: boolean): Segment {
  const seg = freeSegments.pop();
  if (seg === undefined) {
    pool.segmentsCreated++;
    return new Segment(from, seq, data, fin);
  }
  pool.segmentsReused++;
  seg.from = from;
  seg.seq = seq;
  seg.data = data;
  seg.fin = fin;
  seg.attempt = 0;
  seg.ackReceived = 0;
  seg.ackConsumed = 0;
  seg.ackFin = false;
  return seg;
}

/** Gives back a segment nothing refers to any more (its connection and bytes let go). */
function freeSegment(seg: Segment): void {
  seg.from = NO_CONN;
  seg.data = null;
  if (freeSegments.length < POOL_MAX) freeSegments.push(seg);
}

function newAck(from: SimConn, received: number, consumed: number, fin: boolean, attempt: number, incarnation: number): Ack {
  const ack = freeAcks.pop();
  if (ack === undefined) {
    pool.acksCreated++;
    return new Ack(from, received, consumed, fin, attempt, incarnation);
  }
  pool.acksReused++;
  return ack.refill(from, received, consumed, fin, attempt, incarnation);
}

function freeAck(ack: Ack): void {
  ack.from = NO_CONN;
  if (freeAcks.length < POOL_MAX) freeAcks.push(ack);
}

/**
 * @internal The free lists' sizes and how many segments and ACKs were made and reused since the process started
 * (tests check that packets are reused and the lists stay bounded).
 */
export function packetPool(): { freeSegments: number; freeAcks: number; segmentsCreated: number; acksCreated: number; segmentsReused: number; acksReused: number } {
  return { freeSegments: freeSegments.length, freeAcks: freeAcks.length, ...pool };
}

interface Syn {
  readonly conn: SimConn;
  readonly dst: Host;
  readonly link: Link;
}

interface Rst {
  readonly to: SimConn;
  readonly link: Link;
}

const EMPTY = Buffer.alloc(0);

/** A queue that never empties is compacted once its consumed prefix is this long (bounds a busy connection's). */
const COMPACT_AT = 1_024;

/**
 * A FIFO of byte chunks: what a connection's queue holds after its first chunk. A connection's queues mostly hold one
 * chunk at a time, so the first chunk is a field of the connection (`#uFirst`, `#kFirst`, `#rFirst`) and a
 * ChunkQueue exists only once more are queued behind it (invariant: a queue whose first field is null has an empty
 * ChunkQueue or none). Its own first chunk has a field too, and an array (read from a head index, O(1) dequeue)
 * exists only while more are queued: an array, or an object, per queue per connection would be garbage for every
 * connection, and survivors for every open one.
 */
class ChunkQueue {
  #first: Buffer | null = null;
  #rest: Buffer[] | null = null;
  #restHead = 0;

  get empty(): boolean {
    return this.#first === null;
  }

  push(b: Buffer): void {
    if (this.#first === null) {
      this.#first = b;
      return;
    }
    const rest = (this.#rest ??= []);
    if (this.#restHead >= COMPACT_AT) {
      rest.splice(0, this.#restHead);
      this.#restHead = 0;
    }
    rest.push(b);
  }

  /** Removes and returns the first chunk; the queue must not be empty. */
  shift(): Buffer {
    const b = this.#first!;
    const rest = this.#rest;
    if (rest === null || this.#restHead === rest.length) this.#first = null;
    else {
      this.#first = rest[this.#restHead]!;
      rest[this.#restHead++] = EMPTY;
      if (this.#restHead === rest.length) {
        rest.length = 0;
        this.#restHead = 0;
      }
    }
    return b;
  }

  clear(): void {
    this.#first = null;
    this.#rest = null;
    this.#restHead = 0;
  }
}

/** The chunk that comes after a queue's first: the head of its ChunkQueue, or null when it has none. */
function nextChunk(rest: ChunkQueue | null): Buffer | null {
  return rest === null || rest.empty ? null : rest.shift();
}

/**
 * The chunk as a Buffer, without copying (Node delivers Buffers; a Buffer passes through as is). Like Node, which
 * hands the caller's memory to libuv when the kernel cannot take it at once, the simulator keeps a reference until
 * the bytes are delivered: a caller must not modify a chunk after writing it. Copying would be per-byte work.
 */
function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
/** The handlers of a connection that has none yet, or no more (never written to: a connection makes its own). */
const NO_HANDLERS = Object.freeze(new HandlerSlots()) as HandlerSlots;

/** A listening socket. */
export class SimListener implements TcpListener {
  readonly address: SocketAddress;
  readonly host: Host;
  /** The bound address as matched against arrivals: a route address, '0.0.0.0' or '::'. */
  readonly bindAddr: string;
  readonly onConnection: (conn: Conn) => void;
  closed = false;

  constructor(host: Host, address: SocketAddress, bindAddr: string, onConnection: (conn: Conn) => void) {
    this.host = host;
    this.address = address;
    this.bindAddr = bindAddr;
    this.onConnection = onConnection;
  }

  /** Stops accepting (half-open handshakes are reset); accepted connections live on. Node rejects a second close. */
  close(): Promise<void> {
    if (this.closed) return Promise.reject(nodeError('ERR_SERVER_NOT_RUNNING', 'Server is not running.'));
    this.closed = true;
    this.host.removeListener(this);
    return Promise.resolve();
  }
}

export class SimConn implements Conn {
  readonly host: Host;
  readonly outbound: boolean;
  local: SocketAddress;
  remote: SocketAddress;
  /** Key in the host's TCB table (`TcpKernel.tcbKey`). */
  key = 0;
  state: TcpState = 'SYN_SENT';
  /** The TCB exists (in the host's table). */
  alive = false;
  peer: SimConn | null = null;
  /** This endpoint's link towards the peer's host. */
  outLink: Link | null = null;
  listener: SimListener | null = null;
  /** Routing addresses (IPv4 text for mapped addresses). */
  localRoute = '';
  remoteRoute = '';
  /** SYN retry, SYN-ACK wait, or FIN_WAIT2 orphan timer. */
  timer: TimerHandle | null = null;
  synAttempt = 0;

  // ── application side ──
  #h: HandlerSlots = NO_HANDLERS;
  /** The app side is finished: no callback but a pending `close` will fire, and calls are no-ops. */
  destroyed = false;
  #closed = false;
  /** Node's readableFlowing: null until a data handler or resume(), false after pause(). */
  flowing: boolean | null = null;
  /** Node has not started reading from the kernel yet (`tcp.readStartsOnResume`, data not yet let flow). */
  readStopped: boolean;
  /** An RST the application has not observed yet (the TCB is gone). */
  pendingErr: 'ECONNRESET' | 'EPIPE' | null = null;
  #flushScheduled = false;

  // ── send side ──
  /** The writable buffer's first chunk, then the rest (see ChunkQueue). */
  #uFirst: Buffer | null = null;
  #uRest: ChunkQueue | null = null;
  /** Node's writableLength: written but not yet accepted by the kernel. */
  userBytes = 0;
  needDrain = false;
  endCalled = false;
  finQueued = false;
  finSent = false;
  finAcked = false;
  /** The kernel's send queue (unsent bytes): first chunk, then the rest. */
  #kFirst: Buffer | null = null;
  #kRest: ChunkQueue | null = null;
  kqBytes = 0;
  sentBytes = 0;
  ackReceived = 0;
  ackConsumed = 0;
  #sndSeq = 0;
  /** Latest scheduled arrival of a segment of ours (a reset's RST is not allowed to overtake them). */
  #lastArrival = 0;
  /** We owe the peer an ACK; the next segment we send carries it, else a bare ACK goes at the end of the event. */
  #ackPending = false;
  #bytesWritten = 0;
  /** A middlebox cut this direction (`LinkParams.cutAfterBytes`): nothing more is sent. */
  #cut = false;
  /** The last `#transmit` let a swallowing middlebox acknowledge bytes (the send buffer has room again). */
  #swallowedAll = false;

  // ── receive side ──
  #rcvNext = 0;
  #ooo: Map<number, Segment> | null = null;
  /** The receive queue (received, not yet delivered): first chunk, then the rest. */
  #rFirst: Buffer | null = null;
  #rRest: ChunkQueue | null = null;
  rcvBytes = 0;
  receivedBytes = 0;
  consumedBytes = 0;
  finReceived = false;
  endDelivered = false;

  constructor(host: Host, outbound: boolean, local: SocketAddress, remote: SocketAddress) {
    this.host = host;
    this.outbound = outbound;
    this.local = local;
    this.remote = remote;
    this.readStopped = host.sim.tcp.readStartsOnResume;
  }

  // ───────────────────────────── Conn ─────────────────────────────

  get bytesRead(): number {
    return this.receivedBytes;
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Replaces the handler set. A data handler starts the flow of data unless `pause()` was called. */
  setHandlers(handlers: Partial<ConnHandlers>): void {
    if (this.#closed) return;
    // Handlers given replace those of the same name, the others stay (handler-slots.ts).
    let h = this.#h;
    if (h === NO_HANDLERS) h = this.#h = new HandlerSlots();
    h.set(handlers);
    if (handlers.data !== undefined && this.flowing === null) this.flowing = true;
    this.#scheduleFlush();
  }

  write(chunk: Uint8Array): boolean {
    if (this.destroyed) return false;
    if (this.endCalled) {
      this.#failLater(nodeError('ERR_STREAM_WRITE_AFTER_END', 'write after end'));
      return false;
    }
    if (this.pendingErr !== null) {
      this.#failLater(netError(this.pendingErr, 'write'));
      return false;
    }
    const len = chunk.byteLength;
    if (len > 0) {
      const b = asBuffer(chunk);
      if (this.#uFirst === null) this.#uFirst = b;
      else (this.#uRest ??= new ChunkQueue()).push(b);
      this.userBytes += len;
      this.#bytesWritten += len;
      if (this.alive && this.state === 'ESTABLISHED') this.pump();
    }
    const ok = this.userBytes < this.host.sim.tcp.writableHighWaterMark;
    if (!ok) this.needDrain = true;
    return ok;
  }

  end(): void {
    if (this.destroyed || this.endCalled) return;
    this.endCalled = true;
    if (this.alive && this.state === 'ESTABLISHED') this.pump();
    this.maybeClose();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.#appDestroy();
    this.#scheduleClose();
  }

  reset(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#dropAppQueues();
    if (this.alive) {
      if (this.state === 'ESTABLISHED') this.#sendOrderedRst();
      this.kill();
    }
    this.#scheduleClose();
  }

  pause(): void {
    if (!this.destroyed) this.flowing = false;
  }

  resume(): void {
    if (this.destroyed) return;
    this.flowing = true;
    this.#scheduleFlush();
  }

  // ─────────────────────── kernel: sending ───────────────────────

  #kPush(b: Buffer): void {
    if (this.#kFirst === null) this.#kFirst = b;
    else (this.#kRest ??= new ChunkQueue()).push(b);
  }

  #kClear(): void {
    this.#kFirst = null;
    this.#kRest?.clear();
  }

  /** @internal Moves writable-buffer bytes into the kernel as space allows, then transmits what the window allows. */
  pump(): void {
    const tcp = this.host.sim.tcp;
    // One pass, unless a middlebox that acknowledges what it swallows (`LinkParams.swallow`) freed the send buffer.
    for (let pass = 0; pass === 0 || (this.userBytes > 0 && this.#swallowedAll); pass++) {
      this.#swallowedAll = false;
      while (this.userBytes > 0) {
        const space = tcp.sendBufferBytes - (this.kqBytes + this.sentBytes - this.ackReceived);
        if (space <= 0) break;
        const chunk = this.#uFirst!;
        if (chunk.length <= space) {
          this.#uFirst = nextChunk(this.#uRest);
          this.#kPush(chunk);
          this.userBytes -= chunk.length;
          this.kqBytes += chunk.length;
        } else {
          this.#kPush(chunk.subarray(0, space));
          this.#uFirst = chunk.subarray(space);
          this.userBytes -= space;
          this.kqBytes += space;
        }
      }
      if (this.userBytes === 0 && this.endCalled && !this.finQueued && this.pendingErr === null) this.finQueued = true;
      this.#transmit();
    }
  }

  #transmit(): void {
    if (!this.alive || this.state !== 'ESTABLISHED' || this.#cut) return;
    const link = this.outLink!;
    const params = link.params;
    if (params.swallow === 'all') {
      this.#swallowAll();
      return;
    }
    const window = this.host.sim.tcp.receiveWindowBytes;
    const sliced = params.slicer !== null;
    const gap = params.slicer?.delayMs ?? 0;
    const cut = params.cutAfterBytes;
    let departAt = this.host.sim.clock.now();
    while (this.kqBytes > 0) {
      const room = window - (this.sentBytes - this.ackConsumed);
      if (room <= 0) break;
      const chunk = this.#kFirst!;
      let n = chunk.length < room ? chunk.length : room;
      if (sliced) n = link.sliceSize(n);
      if (cut !== null && n > cut.bytes - this.sentBytes) n = cut.bytes > this.sentBytes ? cut.bytes - this.sentBytes : 0;
      let piece: Buffer;
      if (n === chunk.length) {
        piece = chunk;
        this.#kFirst = nextChunk(this.#kRest);
      } else {
        piece = chunk.subarray(0, n);
        this.#kFirst = chunk.subarray(n);
      }
      this.kqBytes -= n;
      this.sentBytes += n;
      if (n > 0) this.#sendSegment(newSegment(this, this.#sndSeq++, piece, false), departAt);
      if (cut !== null && this.sentBytes >= cut.bytes) {
        this.#cutByMiddlebox(cut.with, departAt);
        return;
      }
      if (sliced) departAt += gap;
    }
    if (this.kqBytes === 0 && this.finQueued && !this.finSent) {
      this.finSent = true;
      if (params.swallow === 'fin') {
        this.#swallowFin();
        return;
      }
      this.#sendSegment(newSegment(this, this.#sndSeq++, null, true), departAt + params.finDelayMs);
    }
  }

  /** `swallow: 'fin'`: a middlebox acknowledges our FIN and never delivers it (the peer never sees `end`). */
  #swallowFin(): void {
    this.finAcked = true;
    const sim = this.host.sim;
    if (sim.tracing) sim.emit('tcp.swallow', this.host.name, `${this.label()} FIN`);
  }

  /** `swallow: 'all'`: a middlebox acknowledges every byte and the FIN and delivers none of it. */
  #swallowAll(): void {
    const sim = this.host.sim;
    const n = this.kqBytes;
    if (n > 0) {
      this.#kClear();
      this.kqBytes = 0;
      this.sentBytes += n;
      this.ackReceived = this.sentBytes;
      this.ackConsumed = this.sentBytes;
      this.#swallowedAll = true;
      if (sim.tracing) sim.emit('tcp.swallow', this.host.name, `${this.label()} len=${n}`);
    }
    if (this.finQueued && !this.finSent) {
      this.finSent = true;
      this.#swallowFin();
    }
  }

  /**
   * `cutAfterBytes` reached: the middlebox sends the peer a FIN or an RST behind our segments in flight, and resets
   * us (its side towards us is dropped with our later bytes unread). Nothing more of ours leaves.
   */
  #cutByMiddlebox(how: 'fin' | 'rst', departAt: number): void {
    this.#cut = true;
    this.#kClear();
    this.kqBytes = 0;
    const peer = this.peer!;
    const link = this.outLink!;
    const sim = this.host.sim;
    if (sim.tracing) sim.emit('tcp.cut', this.host.name, `${this.label()} after=${this.sentBytes} ${how === 'fin' ? 'FIN' : 'RST'}`);
    let at = departAt + link.delay();
    if (at < this.#lastArrival) at = this.#lastArrival;
    if (how === 'fin') {
      const fin = newSegment(this, this.#sndSeq++, null, true);
      fin.ackReceived = this.receivedBytes;
      fin.ackConsumed = this.consumedBytes;
      fin.ackFin = this.finReceived;
      sim.clock.postAt(at, onSegmentArrive, fin);
    } else sim.clock.postAt(at, onRstArrive, { to: peer, link });
    const back = peer.outLink ?? peer.host.linkTo(this.host);
    sim.clock.postAt(departAt + back.delay(), onRstArrive, { to: this, link: back });
  }

  #sendSegment(seg: Segment, departAt: number): void {
    const sim = this.host.sim;
    seg.ackReceived = this.receivedBytes;
    seg.ackConsumed = this.consumedBytes;
    seg.ackFin = this.finReceived;
    this.#ackPending = false;
    const at = this.outLink!.send(departAt, seg.data === null ? 0 : seg.data.length, false);
    if (sim.tracing) sim.emit(at === LOST ? 'tcp.lost' : 'tcp.send', this.host.name, `${this.label()} seq=${seg.seq} ${seg.fin ? 'FIN' : `len=${seg.data!.length}`} try=${seg.attempt}`);
    if (at === LOST) {
      sim.clock.postAt(departAt + rto(sim.tcp, seg.attempt), onRetransmit, seg);
    } else {
      sim.clock.postAt(at, onSegmentArrive, seg);
      if (at > this.#lastArrival) this.#lastArrival = at;
    }
  }

  /** @internal A segment of ours did not arrive: retransmit after the RTO (or give up). */
  segmentLost(seg: Segment): void {
    if (!this.alive) return;
    const sim = this.host.sim;
    sim.clock.post(rto(sim.tcp, seg.attempt), onRetransmit, seg);
  }

  /** @internal */
  retransmit(seg: Segment): void {
    if (!this.alive) return;
    seg.attempt++;
    if (seg.attempt > this.host.sim.tcp.dataRetries) {
      // The path to the peer is dead. The peer's own unacknowledged data would be retransmitted in vain against our
      // lost ACKs, so it times out as well.
      const peer = this.peer;
      this.timedOut();
      if (peer !== null && peer.alive && peer.awaitingAck()) peer.timedOut();
      return;
    }
    this.#sendSegment(seg, this.host.sim.clock.now());
  }

  /** @internal Sends an ACK with our current receive state. */
  sendAck(attempt = 0): void {
    this.#ackPending = false;
    if (!this.alive || this.outLink === null) return;
    sendAckPacket(newAck(this, this.receivedBytes, this.consumedBytes, this.finReceived, attempt, this.host.incarnation));
  }

  /** @internal The peer's bare ACK arrived. */
  onAck(ack: Ack): void {
    this.#applyAck(ack.received, ack.consumed, ack.fin);
    this.#afterEvent();
  }

  #applyAck(received: number, consumed: number, fin: boolean): void {
    if (received > this.ackReceived) this.ackReceived = received;
    if (consumed > this.ackConsumed) this.ackConsumed = consumed;
    if (fin && this.finSent) this.finAcked = true;
  }

  /** End of a packet event: send what the window now allows, `drain`, the ACK we owe, then close/remove checks. */
  #afterEvent(): void {
    this.pump();
    if (this.needDrain && this.userBytes === 0 && !this.destroyed) {
      this.needDrain = false;
      this.#h.drain();
    }
    if (this.#ackPending) this.sendAck();
    this.maybeClose();
    this.maybeRemove();
  }

  /** Whether we are waiting for the peer to acknowledge something (so a dead return path is our timeout). */
  awaitingAck(): boolean {
    return this.sentBytes > this.ackReceived || (this.finSent && !this.finAcked);
  }

  // ─────────────────────── kernel: receiving ───────────────────────

  /**
   * @internal A segment from the peer arrived at our (live, established) TCB. Returns true when it was taken in order
   * (nothing refers to it afterwards: the caller may reuse it), false when it is kept (out of order, or for a
   * retransmission) or dropped.
   */
  receive(seg: Segment): boolean {
    if (this.destroyed && seg.data !== null) {
      // Data for a socket the application has closed: Linux answers RST (RFC 1122) and drops the socket. The
      // segment is not acknowledged: if that RST is lost, the sender retransmits and meets no socket (fresh RST).
      sendRst(this.host, seg.from, this.outLink!);
      this.kill();
      seg.from.segmentLost(seg);
      return false;
    }
    this.#applyAck(seg.ackReceived, seg.ackConsumed, seg.ackFin);
    let taken = false;
    if (seg.seq === this.#rcvNext) {
      taken = true;
      this.#take(seg);
      const ooo = this.#ooo;
      if (ooo !== null && ooo.size > 0) {
        for (let next = ooo.get(this.#rcvNext); next !== undefined; next = ooo.get(this.#rcvNext)) {
          ooo.delete(this.#rcvNext);
          this.#take(next);
        }
      }
      this.#ackPending = true;
      this.deliver(); // the app may answer at once; its segment then carries our ACK
    } else if (seg.seq > this.#rcvNext) (this.#ooo ??= new Map()).set(seg.seq, seg);
    this.#afterEvent();
    return taken;
  }

  #take(seg: Segment): void {
    this.#rcvNext++;
    if (seg.data !== null) {
      const len = seg.data.length;
      this.receivedBytes += len;
      if (this.destroyed) this.consumedBytes += len;
      else {
        if (this.#rFirst === null) this.#rFirst = seg.data;
        else (this.#rRest ??= new ChunkQueue()).push(seg.data);
        this.rcvBytes += len;
      }
    }
    if (seg.fin) this.finReceived = true;
  }

  /** @internal Hands buffered bytes (then `end`) to the application while it is flowing. */
  deliver(): void {
    if (this.flowing === true && !this.destroyed) this.readStopped = false;
    while (this.#rFirst !== null) {
      if (this.destroyed || this.flowing !== true) return;
      const chunk = this.#rFirst;
      this.#rFirst = nextChunk(this.#rRest);
      this.rcvBytes -= chunk.length;
      this.consumedBytes += chunk.length;
      this.#ackPending = true; // a window update
      // Flowing without a data handler: Node emits to no listener and the bytes are gone; so are they here.
      this.#h.data(chunk);
    }
    if (this.finReceived && !this.endDelivered && !this.destroyed && this.flowing === true) {
      this.endDelivered = true;
      this.#h.end();
      this.maybeClose();
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.destroyed || this.flowing !== true) return;
    const work = this.readStopped || this.#rFirst !== null || (this.finReceived && !this.endDelivered) || (this.pendingErr === 'ECONNRESET' && !this.finReceived);
    if (!work) return;
    this.#flushScheduled = true;
    this.host.sim.clock.post(0, onFlush, this);
  }

  /** @internal Deferred delivery after resume()/setHandlers() (Node resumes on a later tick). */
  flush(): void {
    this.#flushScheduled = false;
    if (this.destroyed || this.flowing !== true) return;
    this.readStopped = false; // reading starts on the tick after the flow was asked for
    if (this.pendingErr === 'ECONNRESET' && !this.finReceived) {
      this.failNow('ECONNRESET', 'read');
      return;
    }
    this.deliver();
    if (this.alive && this.#ackPending) this.sendAck(); // window update
    this.maybeRemove();
  }

  /** @internal Whether Node would be reading from the kernel now (flowing, or its buffer below the mark). */
  isReading(): boolean {
    return !this.readStopped && (this.flowing === true || this.rcvBytes < this.host.sim.tcp.readableHighWaterMark);
  }

  /** @internal An RST for this connection arrived. */
  onRst(): void {
    if (!this.alive) return;
    const sim = this.host.sim;
    if (sim.tracing) sim.emit('tcp.rst', this.host.name, this.label());
    switch (this.state) {
      case 'SYN_SENT':
        this.failNow('ECONNREFUSED', 'connect');
        return;
      case 'SYN_RECEIVED':
      case 'CLOSED':
        this.kill();
        return;
      case 'ESTABLISHED':
        if (this.destroyed) this.kill();
        else if (this.finReceived) {
          this.pendingErr = 'EPIPE'; // Linux sets EPIPE in CLOSE_WAIT; Node stopped reading at EOF, a write finds it
          this.kill();
        } else if (this.isReading()) this.failNow('ECONNRESET', 'read');
        else {
          this.pendingErr = 'ECONNRESET';
          // Bytes still in the kernel when Node starts reading: libuv takes the short read that comes with the
          // hang-up for EOF, so the app sees the bytes, then `end`, and the reset only at its next write
          // (checked against Node 20 on loopback). libuv 1.52 (Node 24) reads again and sees the reset there; the
          // model keeps the older behaviour on every runtime so that traces do not depend on the Node running them.
          if (this.readStopped && this.rcvBytes > 0) this.finReceived = true;
          this.kill();
        }
        return;
    }
  }

  // ─────────────────────── lifecycle ───────────────────────

  /** @internal Registers the TCB in its host's table. */
  register(): void {
    this.alive = true;
    this.host.tcbs.set(this.key, this);
  }

  /** @internal Removes the TCB (silently: the application side is handled by the caller). */
  kill(): void {
    if (!this.alive) return;
    this.alive = false;
    this.state = 'CLOSED';
    this.host.tcbs.delete(this.key);
    if (this.timer !== null) {
      this.host.sim.clock.cancel(this.timer);
      this.timer = null;
    }
    if (this.outbound) this.host.releaseTcpPort(this.local.port, this.localRoute);
    this.#kClear();
    this.kqBytes = 0;
    this.#ooo = null;
  }

  /**
   * @internal The process holding this socket died (a simulated worker, `workers.ts`): the kernel closes it as
   * `destroy()` does (FIN, or RST with unread bytes), and no callback reaches the dead process.
   */
  processExit(): void {
    this.#h = NO_HANDLERS;
    this.destroy();
  }

  /** @internal The host crashed: everything vanishes, no callback fires (`closed` turns true without `close`). */
  crash(): void {
    this.alive = false;
    this.state = 'CLOSED';
    this.destroyed = true;
    this.#closed = true;
    this.#h = NO_HANDLERS;
    if (this.timer !== null) {
      this.host.sim.clock.cancel(this.timer);
      this.timer = null;
    }
  }

  /** @internal The client's SYN-ACK arrived: the connection is up. */
  established(server: SimConn): void {
    const sim = this.host.sim;
    this.peer = server;
    this.outLink = this.host.linkTo(server.host);
    this.state = 'ESTABLISHED';
    if (this.timer !== null) {
      sim.clock.cancel(this.timer);
      this.timer = null;
    }
    if (sim.tracing) sim.emit('tcp.connect', this.host.name, this.label());
    const resetMs = Math.min(this.outLink.params.resetAfterMs, server.outLink!.params.resetAfterMs);
    if (resetMs !== Infinity) sim.clock.post(resetMs, onMiddleboxReset, this);
    this.#ackPending = true; // the handshake's third packet: rides on the first data segment if `connect` writes
    if (!this.destroyed) this.#h.connect();
    if (this.alive) this.#afterEvent();
    else if (this.#ackPending) this.sendAck();
  }

  /** @internal First packet from the client at a half-open server TCB: accept, unless the listener went away. */
  accept(): boolean {
    const l = this.listener!;
    if (l.closed) {
      sendRst(this.host, this.peer!, this.outLink!);
      this.kill();
      return false;
    }
    const sim = this.host.sim;
    this.state = 'ESTABLISHED';
    if (this.timer !== null) {
      sim.clock.cancel(this.timer);
      this.timer = null;
    }
    // Descriptors (HostOptions.maxDescriptors): none left, the kernel's accept fails and libuv closes the
    // connection unseen; the guard short of its reserve resets it, counted, before the application sees it.
    this.host.appConns.add(this);
    const admitted = this.host.admitAccept();
    if (admitted !== 'ok') {
      if (sim.tracing) sim.emit(admitted === 'lost' ? 'tcp.accept_lost' : 'tcp.accept_refused', this.host.name, this.label());
      if (admitted === 'lost') this.destroy();
      else this.reset();
      return this.alive;
    }
    if (sim.tracing) sim.emit('tcp.accept', this.host.name, this.label());
    l.onConnection(this);
    return this.alive;
  }

  /** @internal Retransmissions ran out. */
  timedOut(): void {
    if (!this.alive) return;
    if (this.destroyed) this.kill();
    else this.failNow('ETIMEDOUT', this.state === 'SYN_SENT' ? 'connect' : 'read');
  }

  /** @internal Fails the connection from inside a simulator event: `error`, then `close(true)`. */
  failNow(code: string, syscall: string): void {
    this.kill();
    if (this.destroyed) return;
    this.destroyed = true;
    this.#dropAppQueues();
    const err = syscall === 'connect' ? netError(code, syscall, this.remote.address, this.remote.port) : netError(code, syscall);
    this.#emitErrorClose(err);
  }

  /** @internal Fails a connection that never got a TCB (lookup or bind error), on a later tick. */
  failBeforeConnect(err: NetError): void {
    this.#failLater(err);
  }

  /** @internal A DNS lookup for the dialled name failed. */
  lookupFailed(name: string): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#emitErrorClose(dnsError('ENOTFOUND', 'getaddrinfo', name));
  }

  #failLater(err: NetError): void {
    this.#appDestroy();
    this.host.sim.clock.post(0, onErrorClose, { conn: this, err });
  }

  /** @internal Emits error then close(true) (used by deferred failures). */
  emitErrorClose(err: NetError): void {
    this.#emitErrorClose(err);
  }

  #emitErrorClose(err: NetError): void {
    if (this.#closed) return;
    const sim = this.host.sim;
    if (sim.tracing) sim.emit('tcp.error', this.host.name, `${this.label()} ${err.code}`);
    this.#h.error(err);
    this.#emitClose(true);
  }

  /** @internal */
  emitClose(hadError: boolean): void {
    this.#emitClose(hadError);
  }

  #emitClose(hadError: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.host.appConns.delete(this);
    const sim = this.host.sim;
    if (sim.tracing) sim.emit('tcp.close', this.host.name, `${this.label()} hadError=${hadError}`);
    const h = this.#h;
    this.#h = NO_HANDLERS;
    h.close(hadError);
  }

  #scheduleClose(): void {
    this.host.sim.clock.post(0, onCloseClean, this);
  }

  /** Node's autoDestroy: ended, flushed into the kernel and the peer's end seen → close(false) on a later tick. */
  maybeClose(): void {
    if (!this.destroyed && this.endCalled && this.userBytes === 0 && this.endDelivered) {
      this.destroyed = true;
      this.#scheduleClose();
    }
  }

  /** @internal Drops the TCB once the app is done and both FINs are through; bounds a FIN_WAIT2 orphan's life. */
  maybeRemove(): void {
    if (!this.alive || !this.destroyed) return;
    if (this.finAcked && this.finReceived) {
      this.kill();
      return;
    }
    if (this.finAcked && this.timer === null) this.timer = this.host.sim.clock.schedule(this.host.sim.tcp.finTimeoutMs, onFinTimeout, this);
  }

  #dropAppQueues(): void {
    this.#uFirst = null;
    this.#uRest?.clear();
    this.userBytes = 0;
    this.needDrain = false;
  }

  /** destroy(): the app side ends now; the kernel sends what it holds then FIN, or RST if unread data is lost. */
  #appDestroy(): void {
    this.destroyed = true;
    this.#dropAppQueues();
    const unread = this.rcvBytes;
    this.#rFirst = null;
    this.#rRest?.clear();
    this.consumedBytes += this.rcvBytes;
    this.rcvBytes = 0;
    if (!this.alive) return;
    if (this.state !== 'ESTABLISHED') {
      this.kill(); // abort a connect in progress
      return;
    }
    // Node reads up to readableHighWaterMark into its own buffer even when paused; beyond that the bytes sit in the
    // kernel, and closing a socket with unread kernel data sends RST (tcp_close).
    if (unread > (this.readStopped ? 0 : this.host.sim.tcp.readableHighWaterMark)) {
      this.#sendOrderedRst();
      this.kill();
      return;
    }
    this.finQueued = true;
    this.#transmit();
    this.maybeRemove();
  }

  /** RST from reset()/close-with-unread: it travels behind our segments already in flight. */
  #sendOrderedRst(): void {
    const peer = this.peer;
    if (peer === null) return;
    const sim = this.host.sim;
    const link = this.outLink!;
    let at = link.send(sim.clock.now(), 0, false);
    if (at === LOST) return; // not retransmitted: the peer's next segment will meet no TCB and draw a fresh RST
    if (at < this.#lastArrival) at = this.#lastArrival;
    sim.clock.postAt(at, onRstArrive, { to: peer, link });
  }

  /** `local>remote` for traces and netstat. */
  label(): string {
    return `${hostPort(this.local.address, this.local.port)}>${hostPort(this.remote.address, this.remote.port)}`;
  }

  /** @internal Snapshot for netstat. */
  stat(): { state: string; sendQueue: number; recvQueue: number } {
    let state: string = this.state;
    if (this.state === 'ESTABLISHED') {
      if (this.finSent && this.finReceived) state = 'LAST_ACK';
      else if (this.finSent) state = this.finAcked ? 'FIN_WAIT2' : 'FIN_WAIT1';
      else if (this.finReceived) state = 'CLOSE_WAIT';
    }
    return { state, sendQueue: this.userBytes + this.kqBytes + (this.sentBytes - this.ackReceived), recvQueue: this.rcvBytes };
  }
}

// ─────────────────────── handshake and packet arrival (scheduler callbacks) ───────────────────────

function rto(tcp: TcpParams, attempt: number): number {
  const t = tcp.rtoMinMs * 2 ** attempt;
  return t < tcp.rtoMaxMs ? t : tcp.rtoMaxMs;
}

/** Sends (or re-sends) the client's SYN and arms the SYN retry timer. */
export function sendSyn(c: SimConn): void {
  const sim = c.host.sim;
  const dst = sim.route(c.host, c.remoteRoute);
  if (sim.tracing) sim.emit('tcp.syn', c.host.name, `${c.label()} try=${c.synAttempt}`);
  if (dst !== undefined) {
    const link = c.host.linkTo(dst);
    const at = link.send(sim.clock.now(), 0, false);
    if (at !== LOST) sim.clock.postAt(at, onSynArrive, { conn: c, dst, link });
  } // else: nobody owns the address; without ICMP the SYN vanishes (black hole)
  c.timer = sim.clock.schedule(sim.tcp.synRtoMs * 2 ** c.synAttempt, onSynTimer, c);
}

function onSynTimer(c: SimConn): void {
  c.timer = null;
  if (!c.alive || c.state !== 'SYN_SENT') return;
  if (c.synAttempt >= c.host.sim.tcp.synRetries) {
    c.timedOut();
    return;
  }
  c.synAttempt++;
  sendSyn(c);
}

function onSynArrive(syn: Syn): void {
  const { conn: c, dst, link } = syn;
  if (link.blocked || !dst.up) {
    link.stats.blockedDrops++;
    return;
  }
  const port = c.remote.port;
  const key = dst.tcbKey(c.remoteRoute, port, c.localRoute, c.local.port);
  const existing = dst.tcbs.get(key);
  if (existing !== undefined) {
    if (existing.state === 'SYN_RECEIVED' && existing.peer === c) sendSynAck(existing); // our SYN-ACK was lost
    return;
  }
  const listener = dst.findListener(c.remoteRoute, port);
  if (listener === undefined) {
    sendRst(dst, c, dst.linkTo(c.host));
    return;
  }
  const s = dst.acceptedConn(listener, c);
  s.key = key;
  s.state = 'SYN_RECEIVED';
  s.peer = c;
  s.outLink = dst.linkTo(c.host);
  s.listener = listener;
  s.register();
  s.timer = dst.sim.clock.schedule(dst.sim.tcp.synAckTimeoutMs, onSynAckTimeout, s);
  sendSynAck(s);
}

function sendSynAck(s: SimConn): void {
  const sim = s.host.sim;
  const at = s.outLink!.send(sim.clock.now(), 0, false);
  if (at !== LOST) sim.clock.postAt(at, onSynAckArrive, s);
}

function onSynAckTimeout(s: SimConn): void {
  s.timer = null;
  if (s.alive && s.state === 'SYN_RECEIVED') s.kill();
}

function onSynAckArrive(s: SimConn): void {
  const c = s.peer!;
  const link = s.outLink!;
  if (link.blocked || !c.host.up) {
    link.stats.blockedDrops++;
    return;
  }
  if (!s.alive) return; // the server gave up on the handshake; the client's next SYN starts over
  if (c.alive && c.state === 'SYN_SENT') {
    c.established(s);
    return;
  }
  if (c.alive && c.peer === s) return; // duplicate SYN-ACK
  sendRst(c.host, s, c.host.linkTo(s.host)); // the client gave up or its host restarted: no such connection
}

function onSegmentArrive(seg: Segment): void {
  const s = seg.from;
  const r = s.peer!;
  const link = s.outLink!;
  if (link.blocked || !r.host.up) {
    link.stats.blockedDrops++;
    s.segmentLost(seg);
    return;
  }
  if (!r.alive) {
    sendRst(r.host, s, r.host.linkTo(s.host)); // no such connection (closed, or the host restarted)
    s.segmentLost(seg); // retransmitted unless the RST gets there first
    return;
  }
  if (r.state === 'SYN_RECEIVED' && !r.accept()) return;
  if (r.receive(seg)) freeSegment(seg); // after everything the arrival set off (that may send new segments) is done
}

function onRetransmit(seg: Segment): void {
  seg.from.retransmit(seg);
}

function onAckArrive(ack: Ack): void {
  const r = ack.from;
  const s = r.peer!;
  const link = r.outLink!;
  if (link.blocked || !s.host.up) {
    link.stats.blockedDrops++;
    r.host.sim.clock.post(rto(r.host.sim.tcp, ack.attempt), onAckRetransmit, ack);
    return;
  }
  if (!s.alive) return;
  if (s.state === 'SYN_RECEIVED' && !s.accept()) return;
  s.onAck(ack);
  freeAck(ack); // applied: nothing refers to it any more
}

function sendAckPacket(ack: Ack): void {
  const r = ack.from;
  const sim = r.host.sim;
  const now = sim.clock.now();
  const at = r.outLink!.send(now, 0, false);
  if (at === LOST) sim.clock.postAt(now + rto(sim.tcp, ack.attempt), onAckRetransmit, ack);
  else sim.clock.postAt(at, onAckArrive, ack);
}

/**
 * Real TCP recovers a lost ACK when the peer retransmits its data and the ACK is sent again. Here the ACK itself is
 * re-sent after an RTO: with fresh values while its TCB lives, with the same values after the TCB is gone (the
 * final ACK, as TIME_WAIT re-sends it), never after its host crashed.
 */
function onAckRetransmit(ack: Ack): void {
  const r = ack.from;
  if (r.host.incarnation !== ack.incarnation || !r.host.up) return;
  if (ack.attempt + 1 > r.host.sim.tcp.dataRetries) {
    // The return path has been dead for the whole retry budget: the data sender, retransmitting in vain, times out.
    const s = r.peer;
    if (s !== null && s.alive && s.awaitingAck()) s.timedOut();
    return;
  }
  if (r.alive) r.sendAck(ack.attempt + 1);
  else sendAckPacket(newAck(r, ack.received, ack.consumed, ack.fin, ack.attempt + 1, ack.incarnation));
}

/** An RST from `from` (a host, possibly with no TCB for the connection) to `to`, over `link`. */
function sendRst(from: Host, to: SimConn, link: Link): void {
  const sim = from.sim;
  const at = link.send(sim.clock.now(), 0, false);
  if (at !== LOST) sim.clock.postAt(at, onRstArrive, { to, link });
}

function onRstArrive(rst: Rst): void {
  if (rst.link.blocked || !rst.to.host.up) {
    rst.link.stats.blockedDrops++;
    return;
  }
  rst.to.onRst();
}

function onFlush(c: SimConn): void {
  c.flush();
}

function onCloseClean(c: SimConn): void {
  c.emitClose(false);
}

function onErrorClose(x: { conn: SimConn; err: NetError }): void {
  x.conn.emitErrorClose(x.err);
}

/** `resetAfterMs`: the middlebox resets both ends of the connection `c` dialled (if they are still there). */
function onMiddleboxReset(c: SimConn): void {
  const s = c.peer!;
  const sim = c.host.sim;
  if (!c.alive && !s.alive) return;
  if (sim.tracing) sim.emit('tcp.cut', c.host.name, `${c.label()} reset_after_ms RST`);
  c.onRst();
  s.onRst();
}

function onFinTimeout(c: SimConn): void {
  c.timer = null;
  c.kill();
}
