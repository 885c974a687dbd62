/**
 * Simulated TLS: the TLS model of src/core/tls-model.ts played over simulated Conns. No cryptography; what the
 * handshake decides comes from the model (`helloOf`, `serverDecide`, `clientVerify`), and what it costs in time
 * comes from playing it as small records over the raw Conn, so it takes real round trips and can be sliced, lost or
 * reset like any bytes.
 *
 * Record: magic `RTLS`, u16 length, JSON. Flights (as real TLS):
 * - TLS 1.3: client `hello` → server `server` (version, cipher, leaf + chain) → client `finished`. The client is
 *   done when it sends `finished` (1 RTT), the server when it receives it.
 * - TLS ≤1.2: one more round trip: client `hello` → server `server` → client `kex` → server `finished`. The server
 *   is done when it sends `finished`, the client when it receives it (2 RTT).
 * - A refusal is an `alert` record (the sender's failure reason), after which the sender closes.
 * Bytes after the last handshake record (in the same chunk) are application data and reach `session.conn` first.
 *
 * Failure reasons mirror what node:tls reports (src/net/node/tls.ts): the side that detects a problem reports the
 * model's failure; the side that receives an alert reports `no_shared_version` for a version refusal (OpenSSL's
 * protocol_version alert) and `peer_alert` otherwise. Deterministic: time only from the host clock.
 */
import { tlsStatusOf } from '../../model/tls.ts';
import { Buffer } from 'node:buffer';
import type {
  CertInfo, Conn, ConnHandlers, NetError, SocketAddress, TlsClientParams, TlsFailure, TlsFailureReason, TlsInfo,
  TlsOutcome, TlsPort, TlsServerParams, TlsSession, TlsStatus, TlsVersion,
} from '../ports.ts';
import { clientVerify, configFailure, helloOf, serverDecide, type ClientHello } from '../../core/tls-model.ts';
import type { TlsKernel } from './kernel.ts';
import { HandlerSlots } from '../handler-slots.ts';

const MAGIC = Buffer.from('RTLS', 'latin1');
const HEADER = MAGIC.length + 2;

type Message =
  | { readonly t: 'hello'; readonly hello: ClientHello }
  | { readonly t: 'server'; readonly version: TlsVersion; readonly cipher: string; readonly cert: CertInfo; readonly chain: readonly CertInfo[] }
  | { readonly t: 'kex' }
  | { readonly t: 'finished' }
  | { readonly t: 'alert'; readonly reason: TlsFailureReason; readonly detail: string };

/** Encodes one handshake record. */
export function encodeRecord(m: Message): Buffer {
  const json = Buffer.from(JSON.stringify(m), 'utf8');
  if (json.length > 0xffff) throw new Error(`sim TLS: record of ${json.length} bytes is too large`);
  const b = Buffer.allocUnsafe(HEADER + json.length);
  MAGIC.copy(b, 0);
  b.writeUInt16BE(json.length, MAGIC.length);
  json.copy(b, HEADER);
  return b;
}

type Read = { readonly kind: 'record'; readonly msg: Message } | { readonly kind: 'need' } | { readonly kind: 'bad'; readonly detail: string };

/** Accumulates bytes across chunks and cuts records off the front; what follows the last record stays in `rest`. */
class RecordReader {
  #buf: Buffer = Buffer.alloc(0);
  /** Bytes taken by complete records so far (handshake overhead, not application data). */
  consumed = 0;

  push(chunk: Uint8Array): void {
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.#buf = this.#buf.length === 0 ? c : Buffer.concat([this.#buf, c]);
  }

  next(): Read {
    const b = this.#buf;
    const n = Math.min(b.length, MAGIC.length);
    if (b.subarray(0, n).compare(MAGIC, 0, n) !== 0) return { kind: 'bad', detail: 'bytes that are not a handshake record' };
    if (b.length < HEADER) return { kind: 'need' };
    const len = b.readUInt16BE(MAGIC.length);
    if (b.length < HEADER + len) return { kind: 'need' };
    let msg: Message;
    try {
      msg = JSON.parse(b.toString('utf8', HEADER, HEADER + len)) as Message;
    } catch {
      return { kind: 'bad', detail: 'a handshake record that does not parse' };
    }
    this.#buf = b.subarray(HEADER + len);
    this.consumed += HEADER + len;
    return { kind: 'record', msg };
  }

  /** The bytes after the records read so far. */
  rest(): Buffer {
    const r = this.#buf;
    this.#buf = Buffer.alloc(0);
    return r;
  }
}

const noop = (): void => {};

function versionRank(v: TlsVersion): number {
  return v === 'TLSv1.1' ? 1 : v === 'TLSv1.2' ? 2 : 3;
}

/**
 * One end of a simulated handshake, and the plaintext Conn the caller gets (`session.conn` is this object). While
 * the handshake runs, the raw Conn's callbacks come here; once it is done they are handed to the caller's handlers
 * directly, so the data path costs nothing more than the raw Conn.
 */
abstract class SimTlsEnd implements TlsSession, Conn {
  readonly conn: Conn = this;
  protected readonly raw: Conn;
  protected readonly host: TlsKernel;
  protected readonly reader = new RecordReader();
  /** 'handshake' → 'open' (done ok) or 'failed'. */
  #phase: 'handshake' | 'open' | 'failed' = 'handshake';
  #outcome: TlsOutcome | undefined;
  #callbacks: Array<(o: TlsOutcome) => void> = [];
  #cancelTimer: () => void = noop;
  /** The caller's handlers (called through these slots until the handshake is over, and after a failure). */
  readonly #user = new HandlerSlots();
  /** The caller's flow state (Node's readableFlowing): null until it resumes or sets a data handler. */
  #userFlowing: boolean | null = null;
  /** Application bytes that arrived with the last handshake record, delivered before anything newer. */
  #leftover: Buffer | null = null;
  #flushScheduled = false;
  /** Writes (and end) made before the handshake finished, sent once it has. */
  #queued: Uint8Array[] = [];
  #endQueued = false;
  #recordBytesWritten = 0;
  #recordBytesRead = 0;

  constructor(raw: Conn, host: TlsKernel, timeoutMs: number) {
    this.raw = raw;
    this.host = host;
    raw.setHandlers({
      data: (chunk) => this.onData(chunk),
      end: () => this.fail('connection_closed', 'the peer closed the connection during the handshake'),
      error: (err: NetError) => this.fail('connection_closed', err.code),
      close: () => this.fail('connection_closed', 'the connection closed during the handshake'),
      drain: noop,
    });
    raw.resume();
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      this.#cancelTimer = host.clock.setTimer(timeoutMs, () => this.fail('handshake_timeout', `no finished handshake after ${timeoutMs} ms`));
    }
  }

  /** Handles one handshake record (the phase tells whether more records are expected). */
  protected abstract onRecord(msg: Message): void;

  protected get inHandshake(): boolean {
    return this.#phase === 'handshake';
  }

  /** Handshake bytes from the raw Conn (or handed over by the caller as already read). */
  protected onData(chunk: Uint8Array): void {
    if (this.#phase !== 'handshake') return;
    this.reader.push(chunk);
    for (;;) {
      const r = this.reader.next();
      if (r.kind === 'need') return;
      if (r.kind === 'bad') {
        this.fail('not_tls', r.detail);
        return;
      }
      this.onRecord(r.msg);
      if (this.#phase !== 'handshake') return;
    }
  }

  protected send(m: Message): void {
    const rec = encodeRecord(m);
    this.#recordBytesWritten += rec.length;
    this.raw.write(rec);
  }

  /** Sends an alert for `failure` and fails with it (the alert reaches the peer before our FIN). */
  protected refuse(failure: TlsFailure): void {
    this.send({ t: 'alert', reason: failure.reason, detail: failure.detail });
    this.failWith(failure);
  }

  protected succeed(info: TlsInfo): void {
    if (this.#phase !== 'handshake') return;
    this.#phase = 'open';
    this.#recordBytesRead = this.reader.consumed;
    const rest = this.reader.rest();
    if (rest.length > 0) this.#leftover = rest;
    this.#handOver();
    this.#settle({ ok: true, info });
    for (const c of this.#queued) this.raw.write(c);
    this.#queued = [];
    if (this.#endQueued) this.raw.end();
  }

  protected fail(reason: TlsFailureReason, detail: string, status?: TlsStatus): void {
    this.failWith({ status: status ?? tlsStatusOf(reason), reason, detail });
  }

  /** Server side: the SNI of the ClientHello, once read (reported with a failure, as the real TLS layer does). */
  protected servername: string | undefined;

  protected failWith(failure: TlsFailure, close: 'destroy' | 'reset' = 'destroy'): void {
    if (this.#phase !== 'handshake') return;
    if (this.servername !== undefined && failure.servername === undefined) failure = { ...failure, servername: this.servername };
    this.#phase = 'failed';
    this.#queued = [];
    this.#leftover = null;
    // The caller's close handler (if any) hears the raw Conn's close; nothing else of its is called.
    const u = this.#user;
    this.raw.setHandlers({ data: noop, end: noop, error: noop, drain: noop, close: (hadError) => u.close(hadError) });
    this.#settle({ ok: false, failure });
    if (close === 'reset') this.raw.reset();
    else this.raw.destroy();
  }

  #settle(o: TlsOutcome): void {
    this.#outcome = o;
    this.#cancelTimer();
    const cbs = this.#callbacks;
    this.#callbacks = [];
    for (const cb of cbs) this.host.clock.setTimer(0, () => cb(o));
  }

  onDone(cb: (outcome: TlsOutcome) => void): void {
    const o = this.#outcome;
    if (o === undefined) this.#callbacks.push(cb);
    else this.host.clock.setTimer(0, () => cb(o)); // never synchronously
  }

  /** The handshake is over: the raw Conn's callbacks go to the caller, and its flow follows the caller's. */
  #handOver(): void {
    this.raw.pause();
    this.raw.setHandlers(this.#user);
    if (this.#userFlowing === true) this.#scheduleFlush();
  }

  /** Delivers the leftover application bytes (on a later tick, as Node resumes), then lets the raw Conn flow. */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    if (this.#leftover === null) {
      this.raw.resume();
      return;
    }
    this.#flushScheduled = true;
    this.host.clock.setTimer(0, () => {
      this.#flushScheduled = false;
      if (this.#userFlowing !== true || this.raw.closed) return;
      const l = this.#leftover;
      this.#leftover = null;
      if (l !== null) this.#user.data(l);
      if (this.#userFlowing === true) this.raw.resume();
    });
  }

  // ── Conn (the plaintext side) ──

  get local(): SocketAddress {
    return this.raw.local;
  }
  get remote(): SocketAddress {
    return this.raw.remote;
  }
  /** Plaintext bytes, as node:tls counts them: the handshake records are not counted. */
  get bytesRead(): number {
    return this.#phase === 'open' ? this.raw.bytesRead - this.#recordBytesRead : 0;
  }
  get bytesWritten(): number {
    return Math.max(0, this.raw.bytesWritten - this.#recordBytesWritten) + this.#queued.reduce((n, c) => n + c.byteLength, 0);
  }
  get closed(): boolean {
    return this.raw.closed;
  }
  setHandlers(h: Partial<ConnHandlers>): void {
    this.#user.set(h);
    // Open: straight to the raw Conn. Failed: its close handler calls the slots' close, which `set` just updated.
    if (this.#phase === 'open') this.raw.setHandlers(h);
    if (h.data !== undefined && this.#userFlowing === null) this.resume();
  }
  /** Before the handshake is done, bytes are queued and sent after it (as a TLSSocket does). */
  write(chunk: Uint8Array): boolean {
    if (this.#phase === 'open') return this.raw.write(chunk);
    if (this.#phase === 'failed' || this.#endQueued) return false;
    this.#queued.push(chunk);
    return true;
  }
  end(): void {
    if (this.#phase === 'open') this.raw.end();
    else if (this.#phase === 'handshake') this.#endQueued = true;
  }
  destroy(): void {
    if (this.#phase === 'open') this.raw.destroy();
    else if (this.#phase === 'handshake') this.fail('connection_closed', 'closed by its owner during the handshake');
  }
  reset(): void {
    if (this.#phase === 'open') this.raw.reset();
    else if (this.#phase === 'handshake') this.failWith({ status: 'HANDSHAKE_FAILED', reason: 'connection_closed', detail: 'reset by its owner during the handshake' }, 'reset');
  }
  pause(): void {
    this.#userFlowing = false;
    if (this.#phase === 'open') this.raw.pause();
  }
  resume(): void {
    this.#userFlowing = true;
    if (this.#phase === 'open') this.#scheduleFlush();
  }
}


/** What the receiver of an alert reports, as OpenSSL reads the alert the sender's failure produces. */
function alertReceived(m: { reason: TlsFailureReason; detail: string }): { reason: TlsFailureReason; detail: string } {
  const reason: TlsFailureReason = m.reason === 'no_shared_version' ? 'no_shared_version' : 'peer_alert';
  return { reason, detail: `alert from the peer: ${m.reason} (${m.detail})` };
}

class SimTlsServer extends SimTlsEnd {
  readonly #params: TlsServerParams;
  #decided: { version: TlsVersion; cipher: string; servername: string } | undefined;

  constructor(raw: Conn, host: TlsKernel, params: TlsServerParams, initial: readonly Uint8Array[] | undefined) {
    super(raw, host, params.handshakeTimeoutMs);
    this.#params = params;
    // Bytes the caller read past an inbound PROXY header: before anything the raw Conn delivers (on a later tick).
    for (const c of initial ?? []) this.onData(c);
  }

  protected onRecord(m: Message): void {
    switch (m.t) {
      case 'hello': {
        if (this.#decided !== undefined) return this.fail('not_tls', 'a second ClientHello');
        this.servername = m.hello.servername;
        const d = serverDecide(m.hello, this.#params);
        if (!d.ok) return this.refuse(d.failure);
        this.#decided = { version: d.version, cipher: d.cipher, servername: m.hello.servername ?? '' };
        this.send({ t: 'server', version: d.version, cipher: d.cipher, cert: d.identity.cert, chain: d.identity.chain });
        return;
      }
      case 'finished':
      case 'kex': {
        const d = this.#decided;
        if (d === undefined || (m.t === 'finished') !== (d.version === 'TLSv1.3')) return this.fail('not_tls', `unexpected ${m.t}`);
        if (m.t === 'kex') this.send({ t: 'finished' });
        return this.succeed({ protocol: d.version, cipher: d.cipher, servername: d.servername, peerCert: undefined });
      }
      case 'alert': {
        const a = alertReceived(m);
        return this.fail(a.reason, a.detail);
      }
      case 'server':
        return this.fail('not_tls', 'a ServerHello sent to a server');
    }
  }
}

class SimTlsClient extends SimTlsEnd {
  readonly #params: TlsClientParams;
  readonly #hello: ClientHello;
  #pending: TlsInfo | undefined;

  constructor(raw: Conn, host: TlsKernel, params: TlsClientParams) {
    super(raw, host, params.handshakeTimeoutMs);
    this.#params = params;
    this.#hello = helloOf(params);
    // OpenSSL checks its own configuration before sending anything.
    const own = configFailure(params);
    if (own !== undefined) this.failWith(own);
    else this.send({ t: 'hello', hello: this.#hello });
  }

  protected onRecord(m: Message): void {
    switch (m.t) {
      case 'server': {
        if (this.#pending !== undefined) return this.fail('not_tls', 'a second ServerHello');
        if (versionRank(m.version) < versionRank(this.#hello.minVersion) || versionRank(m.version) > versionRank(this.#hello.maxVersion)) {
          return this.refuse({ status: 'HANDSHAKE_FAILED', reason: 'no_shared_version', detail: `server chose ${m.version}, outside ${this.#hello.minVersion}..${this.#hello.maxVersion}` });
        }
        const v = this.#params.verify;
        if (v !== undefined) {
          const bad = clientVerify(m.cert, m.chain, v, this.host.clock.epochMs());
          if (bad !== undefined) return this.refuse(bad.peerCert === undefined ? { ...bad, peerCert: m.cert } : bad);
        }
        const info: TlsInfo = { protocol: m.version, cipher: m.cipher, servername: this.#params.servername ?? '', peerCert: m.cert };
        if (m.version === 'TLSv1.3') {
          this.send({ t: 'finished' });
          return this.succeed(info);
        }
        this.#pending = info;
        this.send({ t: 'kex' });
        return;
      }
      case 'finished': {
        const info = this.#pending;
        if (info === undefined) return this.fail('not_tls', 'finished before ServerHello');
        return this.succeed(info);
      }
      case 'alert': {
        const a = alertReceived(m);
        return this.fail(a.reason, a.detail);
      }
      case 'hello':
      case 'kex':
        return this.fail('not_tls', `a client's ${m.t} sent to a client (an echoing origin?)`);
    }
  }
}

/** The TlsPort of one simulated host. */
export function createSimTls(host: TlsKernel): TlsPort {
  return {
    server: (raw, params, initial) => new SimTlsServer(raw, host, params, initial),
    client: (raw, params) => new SimTlsClient(raw, host, params),
  };
}
