/**
 * Real TLS over NodeConns (node:tls, OpenSSL 3): edge termination (`server`) and origin re-encryption (`client`).
 *
 * The raw Conn's net.Socket is detached and wrapped by a `tls.TLSSocket`, which takes over its native handle (no JS
 * stream in between, so bulk bytes cost what plain node:tls costs). The server first reads the ClientHello itself
 * to learn the SNI (see `serverHandshake`). The plaintext side is a `NodeConn` over the TLSSocket: paused from the
 * start (the engine resumes it after `onDone`), half-open capable (the TLSSocket inherits `allowHalfOpen` from the
 * raw socket), and its `reset()` sends RST on the TCP connection underneath.
 *
 * Handshakes per second is a measured target, so what can be reused is: SecureContexts are cached per
 * (certificate, parameters) on the server and per (trust, parameters) on the client (measured on loopback, both
 * ends in one process: ~3× the handshake rate without verification, ~15× with the system roots as trust), and
 * peer certificate descriptions per (trust, fingerprint).
 */
import { tlsStatusOf } from '../../model/tls.ts';
import * as tls from 'node:tls';
import * as net from 'node:net';
import type { X509Certificate } from 'node:crypto';
import type {
  CertInfo, Conn, ConnHandlers, SocketAddress, TlsClientParams, TlsFailure, TlsFailureReason, TlsIdentity, TlsInfo, TlsOutcome,
  TlsPort, TlsServerParams, TlsSession, TlsStatus, TlsTrust, TlsVersion,
} from '../ports.ts';
import { HandlerSlots } from '../handler-slots.ts';
import { NodeConn } from './node-conn.ts';
import { HandleConn } from './handle-conn.ts';
import { describeCert } from './x509.ts';
import { failureOfCode, openSslCipherOptions } from './openssl.ts';

/** Entries kept per cache before the oldest is dropped (certificate reloads leave stale entries behind). */
const CONTEXT_CACHE_MAX = 512;
const PEER_CERT_CACHE_MAX = 1_024;

// ── parameters → OpenSSL strings ────────────────────────────────────────────────────────────────────────────────

/**
 * The cipher and version options come from `openSslCipherOptions` (openssl.ts): the contract the TLS
 * model predicts (1.3 suites and ≤1.2 ciphers in one string in the given order — OpenSSL keeps it, as ClientHello
 * order and as server preference; `@SECLEVEL=0` only when TLS 1.1 is allowed, since OpenSSL 3 refuses it otherwise).
 */
interface VersionAndCiphers {
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  readonly ciphers: readonly string[];
  readonly ciphersuites: readonly string[];
}

const signatures = new WeakMap<object, string>();

/** The parameters that shape a SecureContext, as one string (memoised per params object). */
function paramsSignature(p: VersionAndCiphers): string {
  let s = signatures.get(p);
  if (s === undefined) {
    const o = openSslCipherOptions(p);
    s = `${o.minVersion}|${o.maxVersion}|${o.ciphers}`;
    signatures.set(p, s);
  }
  return s;
}

function remember<K, V>(cache: Map<K, V>, key: K, value: V, max: number): V {
  if (cache.size >= max) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(key, value);
  return value;
}

const serverContexts = new Map<string, tls.SecureContext>();

/** A server SecureContext for `identity` (undefined: one without a certificate, which can only fail). Throws on bad PEM. */
function serverContext(identity: TlsIdentity | undefined, p: TlsServerParams): tls.SecureContext {
  const sig = paramsSignature(p);
  const key = identity === undefined ? `-|${sig}` : `${identity.cert.id}|${identity.chain.map((c) => c.id).join(',')}|${sig}`;
  const hit = serverContexts.get(key);
  if (hit !== undefined) return hit;
  const opts: tls.SecureContextOptions = { ...openSslCipherOptions(p), honorCipherOrder: true };
  if (identity?.pem !== undefined) {
    opts.cert = identity.pem.cert;
    opts.key = identity.pem.key;
  }
  return remember(serverContexts, key, tls.createSecureContext(opts), CONTEXT_CACHE_MAX);
}

/** Client contexts: by trust object (identity; `null` when not verifying), then by parameters. */
const NO_TRUST = Object.freeze({});
let clientContexts = new WeakMap<TlsTrust | typeof NO_TRUST, Map<string, tls.SecureContext>>();

function clientContext(p: TlsClientParams): tls.SecureContext {
  const trust = p.verify?.trust;
  let bySig = clientContexts.get(trust ?? NO_TRUST);
  if (bySig === undefined) {
    bySig = new Map();
    clientContexts.set(trust ?? NO_TRUST, bySig);
  }
  const sig = paramsSignature(p);
  const hit = bySig.get(sig);
  if (hit !== undefined) return hit;
  const opts: tls.SecureContextOptions = { ...openSslCipherOptions(p) };
  if (trust !== undefined) {
    const ca: string[] = trust.system ? [...tls.rootCertificates] : [];
    if (trust.pem !== undefined && trust.pem !== '') ca.push(trust.pem);
    // An empty `ca` would mean OpenSSL's default store; an empty trust must trust nothing.
    opts.ca = ca.length > 0 ? ca : [];
  }
  return remember(bySig, sig, tls.createSecureContext(opts), CONTEXT_CACHE_MAX);
}

// ── outcomes ────────────────────────────────────────────────────────────────────────────────────────────────────


/** Bytes that cannot be TLS: OpenSSL's record-layer complaints about the first bytes it read. */
const NOT_TLS = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_HTTPS_PROXY_REQUEST', 'ERR_SSL_UNKNOWN_PROTOCOL',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_RECORD_LENGTH_MISMATCH', 'ERR_SSL_RECORD_LAYER_FAILURE',
  'ERR_SSL_UNEXPECTED_MESSAGE', 'ERR_SSL_UNEXPECTED_RECORD', 'ERR_SSL_LENGTH_MISMATCH', 'ERR_SSL_BAD_PACKET_LENGTH',
]);
const NO_VERSION = new Set([
  'ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_VERSION_TOO_LOW', 'ERR_SSL_VERSION_TOO_HIGH', 'ERR_SSL_NO_PROTOCOLS_AVAILABLE',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_NO_SUITABLE_PROTOCOL_VERSION',
]);
const NO_CIPHER = new Set(['ERR_SSL_NO_SHARED_CIPHER', 'ERR_SSL_NO_CIPHERS_AVAILABLE', 'ERR_SSL_NO_CIPHER_MATCH']);
const CLOSED = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_SOCKET_CLOSED', 'ERR_SSL_UNEXPECTED_EOF_WHILE_READING']);

/**
 * Which check an error from OpenSSL or the socket means: the TLS model's reading of the codes it predicts
 * (`failureOfCode`, so real handshakes report what the model says), then a wider net for the rest.
 */
export function failureOfError(code: string | undefined): { readonly reason: TlsFailureReason; readonly status: TlsStatus } {
  const known = failureOfCode(code);
  if (known.reason !== 'internal') return known;
  const reason = reasonOfError(code);
  return { reason, status: tlsStatusOf(reason) };
}

function reasonOfError(code: string | undefined): TlsFailureReason {
  if (code === undefined) return 'internal';
  if (NOT_TLS.has(code)) return 'not_tls';
  if (NO_VERSION.has(code)) return 'no_shared_version';
  if (NO_CIPHER.has(code)) return 'no_shared_cipher';
  if (CLOSED.has(code)) return 'connection_closed';
  // OpenSSL names received alerts SSLV3_ALERT_* (SSL/TLS_ALERT_* from 3.5 on), TLSV1_ALERT_*, TLSV13_ALERT_* and
  // TLSV1_UNRECOGNIZED_NAME & co.
  if (code.startsWith('ERR_SSL_SSLV3_ALERT_') || code.startsWith('ERR_SSL_SSL/TLS_ALERT_') || code.startsWith('ERR_SSL_TLSV1')) return 'peer_alert';
  return 'internal';
}

/** OpenSSL's X509 verify result (Node's `authorizationError`) → the failed check. */
export function reasonOfVerifyError(code: string): TlsFailureReason {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'cert_expired';
    case 'CERT_NOT_YET_VALID':
      return 'cert_not_yet_valid';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return 'cert_self_signed';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
    case 'HOSTNAME_MISMATCH':
      return 'cert_wrong_name';
    default:
      // UNABLE_TO_GET_ISSUER_CERT(_LOCALLY), UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_UNTRUSTED, CERT_SIGNATURE_FAILURE,
      // INVALID_CA …: the chain does not lead to a trust anchor we accept.
      return 'cert_unknown_ca';
  }
}

function cipherOf(s: tls.TLSSocket, protocol: TlsVersion): string {
  const c = s.getCipher();
  return protocol === 'TLSv1.3' ? c.standardName : c.name;
}

function versionOf(s: tls.TLSSocket): TlsVersion {
  const v = s.getProtocol();
  if (v === 'TLSv1.1' || v === 'TLSv1.2' || v === 'TLSv1.3') return v;
  throw new Error(`node TLS: negotiated an unexpected protocol ${String(v)}`);
}

/** By trust (the issuer id is resolved against its CAs), then by fingerprint. */
let peerCerts = new WeakMap<TlsTrust | typeof NO_TRUST, Map<string, CertInfo>>();

/** The peer's leaf as a CertInfo (cached: the same origin presents the same certificate). */
function describePeer(x: X509Certificate, trust: TlsTrust | undefined): CertInfo {
  let byFp = peerCerts.get(trust ?? NO_TRUST);
  if (byFp === undefined) {
    byFp = new Map();
    peerCerts.set(trust ?? NO_TRUST, byFp);
  }
  const fp = x.fingerprint256;
  const hit = byFp.get(fp);
  if (hit !== undefined) return hit;
  const issuers: Array<X509Certificate | CertInfo> = [];
  if (x.issuerCertificate !== undefined) issuers.push(x.issuerCertificate);
  if (trust !== undefined) issuers.push(...trust.cas);
  return remember(byFp, fp, describeCert(x, issuers), PEER_CERT_CACHE_MAX);
}

// ── the handshake ───────────────────────────────────────────────────────────────────────────────────────────────

function asNodeConn(raw: Conn): NodeConn | HandleConn {
  if (!(raw instanceof NodeConn) && !(raw instanceof HandleConn)) throw new Error('node TLS wraps the Conns of createNodeNetwork only');
  return raw;
}

/**
 * The plaintext Conn over a TLSSocket. `reset()` is replaced on the instance because net.Socket's resetAndDestroy
 * refuses a TLS handle. Resetting the raw socket directly is not safe either: its handle would close under the
 * TLSWrap, which may still have writes in flight on it (TLS 1.3 session tickets right after the handshake: a
 * segfault, seen). So the TLSSocket is destroyed the normal way — it destroys the raw socket, then frees its SSL —
 * with the raw socket flagged as Node's own `Socket._reset` does, so that its handle closes with RST.
 */
function plaintextConn(secure: tls.TLSSocket, raw: net.Socket, remote: SocketAddress): NodeConn {
  secure.pause(); // before NodeConn adds its data listener, which would otherwise start the flow
  const conn = new NodeConn(secure, remote);
  conn.reset = () => {
    if (raw.destroyed) {
      secure.destroy();
      return;
    }
    if (!raw.connecting) (raw as unknown as { resetAndClosing: boolean }).resetAndClosing = true;
    secure.destroy();
  };
  return conn;
}

/** One handshake's bookkeeping: the single outcome, its timer, and the teardown after a failure. */
class Handshake implements TlsSession {
  conn!: Conn;
  /** Extra teardown after a failure (the server's pre-TLS phase). */
  onFail: (() => void) | undefined;
  secure: tls.TLSSocket | undefined;
  /** Server side: the SNI of the ClientHello, once read (reported with a failure). */
  servername: string | undefined;
  readonly #raw: net.Socket;
  #outcome: TlsOutcome | undefined;
  #callbacks: Array<(o: TlsOutcome) => void> = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(raw: net.Socket, timeoutMs: number) {
    this.#raw = raw;
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      this.#timer = setTimeout(() => this.fail('handshake_timeout', `no finished handshake after ${timeoutMs} ms`), timeoutMs);
    }
  }

  get settled(): boolean {
    return this.#outcome !== undefined;
  }

  onDone(cb: (outcome: TlsOutcome) => void): void {
    const o = this.#outcome;
    if (o === undefined) this.#callbacks.push(cb);
    else process.nextTick(cb, o);
  }

  succeed(info: TlsInfo): void {
    this.#settle({ ok: true, info });
  }

  fail(reason: TlsFailureReason, detail: string, peerCert?: CertInfo, status: TlsStatus = tlsStatusOf(reason)): void {
    if (this.#outcome !== undefined) return;
    let failure: TlsFailure = peerCert === undefined ? { status, reason, detail } : { status, reason, detail, peerCert };
    if (this.servername !== undefined) failure = { ...failure, servername: this.servername };
    this.#settle({ ok: false, failure });
    this.secure?.destroy();
    this.#raw.destroy();
    this.onFail?.();
  }

  #settle(o: TlsOutcome): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = o;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const cbs = this.#callbacks;
    this.#callbacks = [];
    // Never synchronously: the outcome may be decided inside the call that started the handshake.
    for (const cb of cbs) process.nextTick(cb, o);
  }
}

function failWith(hs: Handshake, err: Error & { code?: string }): void {
  const f = failureOfError(err.code);
  hs.fail(f.reason, err.code ?? err.message, undefined, f.status);
}

/** Fails the handshake on socket errors, EOF and close until it settles; the listeners are removed once it does. */
function watchHandshake(hs: Handshake, secure: tls.TLSSocket, onError: (err: Error & { code?: string }) => void): () => void {
  const onEnd = (): void => hs.fail('connection_closed', 'the peer closed the connection during the handshake');
  const onClose = (): void => hs.fail('connection_closed', 'the connection closed during the handshake');
  secure.on('error', onError);
  secure.on('end', onEnd);
  secure.on('close', onClose);
  return () => {
    secure.off('error', onError);
    secure.off('end', onEnd);
    secure.off('close', onClose);
  };
}

/** A TLS 1.x alert record: fatal unrecognized_name (112), as nginx's `ssl_reject_handshake` sends. */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x70]);

/** Largest ClientHello we wait for (OpenSSL's own limit on a ClientHello is about this size). */
const MAX_CLIENT_HELLO = 131_072;
/** TLSPlaintext.length may not exceed 2^14 (+ slack some stacks use); more means the bytes are not TLS. */
const MAX_RECORD = 16_384 + 2_048;

export type ClientHelloScan =
  | { readonly kind: 'partial' }
  | { readonly kind: 'not_tls'; readonly detail: string }
  | { readonly kind: 'hello'; readonly servername: string | undefined };

/**
 * Reads the SNI from the first bytes of a TLS connection (the ClientHello, possibly split over several records).
 * `partial`: more bytes are needed. `not_tls`: the record layer is not TLS. A ClientHello whose body cannot be
 * parsed reports no SNI: OpenSSL then rejects it with its own reason.
 */
export function scanClientHello(b: Buffer): ClientHelloScan {
  const hs: Buffer[] = [];
  let hsLen = 0;
  let need = -1; // handshake message length incl. its 4-byte header, once known
  let o = 0;
  while (need < 0 || hsLen < need) {
    if (b.length - o < 5) return { kind: 'partial' };
    const type = b[o]!;
    const major = b[o + 1]!;
    const len = b.readUInt16BE(o + 3);
    if (type !== 0x16 || major !== 3) return { kind: 'not_tls', detail: `first record type ${type}, version major ${major}` };
    if (len === 0 || len > MAX_RECORD) return { kind: 'not_tls', detail: `record length ${len}` };
    if (b.length - o - 5 < len) return { kind: 'partial' };
    hs.push(b.subarray(o + 5, o + 5 + len));
    hsLen += len;
    o += 5 + len;
    if (need < 0 && hsLen >= 4) {
      const h = hs.length === 1 ? hs[0]! : Buffer.concat(hs);
      if (h[0] !== 1) return { kind: 'not_tls', detail: `first handshake message type ${h[0]!}` };
      need = 4 + h.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO) return { kind: 'not_tls', detail: `ClientHello of ${need} bytes` };
    }
  }
  const h = hs.length === 1 ? hs[0]! : Buffer.concat(hs);
  return { kind: 'hello', servername: sniOf(h.subarray(4, need)) };
}

/** The host_name of the server_name extension of a ClientHello body, or undefined (none, or unparsable). */
function sniOf(body: Buffer): string | undefined {
  try {
    let o = 2 + 32; // client_version, random
    o += 1 + body[o]!; // session_id
    o += 2 + body.readUInt16BE(o); // cipher_suites
    o += 1 + body[o]!; // compression_methods
    if (o + 2 > body.length) return undefined;
    const end = Math.min(body.length, o + 2 + body.readUInt16BE(o));
    o += 2;
    while (o + 4 <= end) {
      const type = body.readUInt16BE(o);
      const len = body.readUInt16BE(o + 2);
      o += 4;
      if (type === 0) {
        // ServerNameList: u16 length, then (u8 name_type, u16 length, name)*
        let p = o + 2;
        const listEnd = Math.min(o + len, o + 2 + body.readUInt16BE(o));
        while (p + 3 <= listEnd) {
          const nameType = body[p]!;
          const nameLen = body.readUInt16BE(p + 1);
          if (nameType === 0 && p + 3 + nameLen <= listEnd) return body.toString('latin1', p + 3, p + 3 + nameLen);
          p += 3 + nameLen;
        }
        return undefined;
      }
      o += len;
    }
  } catch {
    // RangeError from a truncated body: no SNI as far as we can tell
  }
  return undefined;
}

/**
 * The server's plaintext Conn exists before its TLSSocket does (that is made once the ClientHello has named the
 * certificate), so it starts as a placeholder that records the owner's handlers and pause state, then delegates
 * everything to the NodeConn over the TLSSocket. Destroying it early aborts the handshake.
 */
class PendingConn implements Conn {
  readonly #raw: Conn;
  readonly #abort: (reset: boolean) => void;
  #inner: NodeConn | undefined;
  /** The caller's handlers until the TLSSocket exists; then the slots themselves are the inner Conn's handlers. */
  readonly #h = new HandlerSlots();
  #flowing: boolean | null = null;
  #closed = false;

  constructor(raw: Conn, abort: (reset: boolean) => void) {
    this.#raw = raw;
    this.#abort = abort;
  }

  attach(inner: NodeConn): void {
    this.#inner = inner;
    if (this.#flowing === false) inner.pause();
    inner.setHandlers(this.#h.handover());
    if (this.#flowing === true) inner.resume();
  }

  /** The handshake failed before a TLSSocket existed: the Conn closes (the raw socket is already destroyed). */
  closeUnattached(): void {
    if (this.#inner !== undefined || this.#closed) return;
    this.#closed = true;
    const h = this.#h;
    process.nextTick(() => h.close(true));
  }

  get local(): SocketAddress {
    return (this.#inner ?? this.#raw).local;
  }
  get remote(): SocketAddress {
    return (this.#inner ?? this.#raw).remote;
  }
  get bytesRead(): number {
    return this.#inner?.bytesRead ?? 0;
  }
  get bytesWritten(): number {
    return this.#inner?.bytesWritten ?? 0;
  }
  get closed(): boolean {
    return this.#inner?.closed ?? this.#closed;
  }
  setHandlers(h: Partial<ConnHandlers>): void {
    if (this.#inner !== undefined) this.#inner.setHandlers(h);
    else {
      this.#h.set(h);
      if (h.data !== undefined && this.#flowing === null) this.#flowing = true;
    }
  }
  write(chunk: Uint8Array): boolean {
    return this.#inner?.write(chunk) ?? false;
  }
  end(): void {
    if (this.#inner !== undefined) this.#inner.end();
    else this.#abort(false);
  }
  destroy(): void {
    if (this.#inner !== undefined) this.#inner.destroy();
    else this.#abort(false);
  }
  reset(): void {
    if (this.#inner !== undefined) this.#inner.reset();
    else this.#abort(true);
  }
  pause(): void {
    if (this.#inner !== undefined) this.#inner.pause();
    else this.#flowing = false;
  }
  resume(): void {
    if (this.#inner !== undefined) this.#inner.resume();
    else this.#flowing = true;
  }
}

/** Where a connection's first bytes land before they are copied out (reads are handled one at a time). */
const HELLO_LANDING = Buffer.allocUnsafeSlow(16_384);

/** net.Socket internals used to move a native handle to a new socket (as cluster does, and network.ts). */
interface SocketInternals {
  _handle: unknown;
  _server: net.Server | null;
  server: net.Server | null;
}

/**
 * Moves a detached socket's native handle to a new socket whose reads go to `onBytes` (until `pause()`). The
 * sockets of network.ts read through their own `onread` callbacks, which detach() silences, so the bytes of a
 * ClientHello can only be seen by taking the handle over. Once paused, the handle is for the TLSSocket alone: it
 * stacks its own stream listener on it and never sees this callback.
 */
function helloReader(detached: net.Socket, onBytes: (chunk: Buffer) => void): net.Socket {
  const old = detached as unknown as SocketInternals;
  const opts = {
    handle: old._handle,
    allowHalfOpen: true,
    pauseOnCreate: true,
    onread: {
      buffer: HELLO_LANDING,
      callback: (n: number): boolean => {
        onBytes(Buffer.from(HELLO_LANDING.subarray(0, n)));
        return true;
      },
    },
  };
  const fresh = new net.Socket(opts as net.SocketConstructorOpts);
  const f = fresh as unknown as SocketInternals;
  f._server = old._server;
  f.server = old.server;
  old._server = null;
  old._handle = null;
  detached.destroy(); // no handle left: only the JS object goes
  return fresh;
}

/**
 * Edge termination. The ClientHello is read (not consumed: it is put back, and the TLSSocket replays a socket's
 * buffered bytes, as for STARTTLS) to learn the SNI first, so the TLSSocket starts with the right certificate's
 * context. Switching contexts in Node's SNICallback would not do: it replaces only the certificate slot of the new
 * key type, so a default ECDSA certificate would still be served to a client that asked for an RSA one.
 */
function serverHandshake(rawConn: Conn, params: TlsServerParams, initial?: readonly Uint8Array[]): TlsSession {
  let buffered: Buffer = Buffer.alloc(0);
  let scanning = true;
  const onBytes = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const scan = scanClientHello(buffered);
    if (scan.kind === 'partial') return;
    scanning = false;
    stopReading();
    raw.pause();
    if (scan.kind === 'not_tls') hs.fail('not_tls', scan.detail);
    else start(scan.servername);
  };
  const node = asNodeConn(rawConn);
  const raw = node.detachReading(onBytes) ?? helloReader(node.detach(), onBytes);
  const hs = new Handshake(raw, params.handshakeTimeoutMs);
  const pending = new PendingConn(rawConn, (reset) => {
    if (reset && !raw.destroyed && !raw.connecting) raw.resetAndDestroy();
    hs.fail('connection_closed', 'closed by its owner during the handshake');
  });
  hs.conn = pending;

  const onEnd = (): void => hs.fail('connection_closed', 'the client closed the connection before its ClientHello');
  const onClose = (): void => hs.fail('connection_closed', 'the connection closed before the ClientHello');
  const onError = (err: Error & { code?: string }): void => failWith(hs, err);
  const stopReading = (): void => {
    raw.off('end', onEnd);
    raw.off('error', onError);
    raw.off('close', onClose);
  };
  hs.onFail = () => {
    stopReading();
    pending.closeUnattached();
  };
  raw.on('end', onEnd);
  raw.on('error', onError);
  raw.on('close', onClose);

  const start = (servername: string | undefined): void => {
    hs.servername = servername;
    const id = params.identity(servername);
    if (id === undefined) {
      raw.write(ALERT_UNRECOGNIZED_NAME);
      hs.fail('unknown_sni', servername === undefined ? 'no SNI and no default certificate' : 'no certificate for the requested server name');
      return;
    }
    let ctx: tls.SecureContext;
    try {
      if (id.pem === undefined) throw new Error('the identity has no PEM (a simulator identity?)');
      ctx = serverContext(id, params);
    } catch (err) {
      hs.fail('no_certificate', `edge certificate unusable: ${(err as Error).message}`);
      return;
    }
    raw.unshift(buffered);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx });
    hs.secure = secure;
    pending.attach(plaintextConn(secure, raw, rawConn.remote));
    const unwatch = watchHandshake(hs, secure, (err) => failWith(hs, err));
    secure.once('secure', () => {
      unwatch();
      if (hs.settled) return;
      const protocol = versionOf(secure);
      hs.succeed({ protocol, cipher: cipherOf(secure, protocol), servername: servername ?? '', peerCert: undefined });
    });
  };

  // Bytes the caller read past an inbound PROXY header come first; they may hold the whole ClientHello.
  if (initial !== undefined && initial.length > 0) onBytes(Buffer.concat(initial.map((c) => (Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength)))));
  if (scanning && !hs.settled) raw.resume();
  return hs;
}

function clientHandshake(rawConn: Conn, params: TlsClientParams): TlsSession {
  const remote = rawConn.remote;
  const raw = asNodeConn(rawConn).detach();
  const hs = new Handshake(raw, params.handshakeTimeoutMs);
  let ctx: tls.SecureContext;
  try {
    ctx = clientContext(params);
  } catch (err) {
    hs.conn = new NodeConn(raw, remote);
    hs.fail('internal', `client TLS parameters unusable: ${(err as Error).message}`);
    return hs;
  }
  const opts: tls.ConnectionOptions = {
    socket: raw,
    secureContext: ctx,
    // We check the chain and the name ourselves after the handshake (to say which check failed); Node's own name
    // check is skipped, it would only duplicate ours at the cost of a full certificate decode.
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  };
  if (params.servername !== undefined) opts.servername = params.servername;
  const secure = tls.connect(opts);
  hs.secure = secure;
  hs.conn = plaintextConn(secure, raw, remote);

  const unwatch = watchHandshake(hs, secure, (err) => failWith(hs, err));
  secure.once('secureConnect', () => {
    unwatch();
    if (hs.settled) return;
    const protocol = versionOf(secure);
    const x = secure.getPeerX509Certificate();
    let peerCert: CertInfo | undefined;
    try {
      peerCert = x === undefined ? undefined : describePeer(x, params.verify?.trust);
    } catch {
      peerCert = undefined;
    }
    const v = params.verify;
    if (v !== undefined) {
      if (x === undefined || peerCert === undefined) {
        hs.fail('cert_unknown_ca', 'the origin presented no usable certificate');
        return;
      }
      const authErr = secure.authorizationError as unknown as string | Error | null | undefined;
      if (authErr !== null && authErr !== undefined) {
        const code = typeof authErr === 'string' ? authErr : ((authErr as { code?: string }).code ?? authErr.message);
        hs.fail(reasonOfVerifyError(code), code, peerCert);
        return;
      }
      // X509Certificate.checkHost/checkIP apply Node's rules (DNS SANs, the CN only without them; IPs against IP
      // SANs). Not tls.checkServerIdentity(getPeerCertificate()): OpenSSL 3 may already have dropped the peer chain
      // that object is built from once TLS 1.3 session tickets arrived in the same read as the Finished.
      const matched = net.isIP(v.checkName) !== 0 ? x.checkIP(v.checkName) : x.checkHost(v.checkName);
      if (matched === undefined) {
        hs.fail('cert_wrong_name', `the certificate does not cover ${v.checkName}`, peerCert);
        return;
      }
    }
    hs.succeed({ protocol, cipher: cipherOf(secure, protocol), servername: params.servername ?? '', peerCert });
  });
  return hs;
}

/** The TlsPort of the real network: one per process (the caches are module-wide). */
export function createNodeTls(): TlsPort {
  return { server: serverHandshake, client: clientHandshake };
}

/** @internal For tests and benchmarks: forgets every cached SecureContext and peer certificate. */
export function clearTlsCaches(): void {
  serverContexts.clear();
  clientContexts = new WeakMap();
  peerCerts = new WeakMap();
}
