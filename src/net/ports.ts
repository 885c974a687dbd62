/**
 * The seam between Refract's engine and the world. Everything above this file (model, core, machines, streams,
 * edge) is the same code against real sockets (`src/net/node`) and against the simulator (`src/net/sim`).
 * `src/net/README.md` maps each interface to its two implementations.
 *
 * Rules both implementations keep:
 * - Errors carry Node's `code` (`ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`, `EPIPE`, `EADDRINUSE`, …) and are raised
 *   in Node's order: `error` before `close`, never after `close`.
 * - TCP connections are half-open capable: `end` from the peer does not end our side (`allowHalfOpen: true`).
 * - Callbacks never fire synchronously inside the call that caused them (no re-entrancy surprises): like Node,
 *   `connect`, `error` and `close` arrive on a later tick (the simulator's next scheduler step).
 */

/** Cancels a timer; calling it twice, or after the timer fired, is harmless. */
export type Cancel = () => void;

export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin. Virtual in the simulator; never goes backwards. */
  now(): number;
  /** Milliseconds since the Unix epoch, for timestamps in logs and events (sim: a fixed epoch + virtual time). */
  epochMs(): number;
  /** Runs `fn` once after `ms` (≥ 0). Timers due at the same instant run in the order they were set. */
  setTimer(ms: number, fn: () => void): Cancel;
}

export interface Random {
  /** Uniform in [0, 1). Seeded in the simulator. */
  next(): number;
}

export type IpFamily = 'IPv4' | 'IPv6';

export interface SocketAddress {
  readonly address: string;
  readonly port: number;
  readonly family: IpFamily;
}

/** An error as Node raises it from a socket: the `code` is the contract, the message is for humans. */
export interface NetError extends Error {
  code: string;
  syscall?: string;
  address?: string;
  port?: number;
}

/**
 * Lifecycle and data callbacks of a Conn. `Conn.setHandlers` merges: the handlers given replace those of the same
 * name, the others stay. A Conn starts paused (accepted and outbound alike): bytes flow once the owner calls
 * `resume()`, or sets a `data` handler without having called `pause()` (as Node's `on('data')` does).
 */
export interface ConnHandlers {
  /** Outbound connections only: the handshake completed. */
  connect(): void;
  /**
   * Bytes from the peer. Only the splice and header readers listen to this: never turn it into an event.
   * Ownership: a handler may keep a chunk, or pass it to `write` and drop it, but not both: the real adapter reads
   * into reused buffers, and a chunk written whole is its buffer's to reuse for the next read (docs/benchmarks.md,
   * "Bulk throughput: the read path").
   */
  data(chunk: Uint8Array): void;
  /** The write buffer drained after `write` returned false. */
  drain(): void;
  /** The peer half-closed (FIN). Our side stays writable until `end` or `destroy`. */
  end(): void;
  /** A socket error. `close` follows. */
  error(err: NetError): void;
  /** The connection is fully closed; no callback fires after this one. */
  close(hadError: boolean): void;
}

/** A TCP byte stream (downstream: accepted; upstream: dialled). */
export interface Conn {
  readonly local: SocketAddress;
  /** For an outbound Conn still connecting, the address being dialled. */
  readonly remote: SocketAddress;
  setHandlers(handlers: Partial<ConnHandlers>): void;
  /** Queues bytes; returns false when the caller should wait for `drain`. */
  write(chunk: Uint8Array): boolean;
  /** Half-close: sends FIN after queued bytes. */
  end(): void;
  /** Closes at once, discarding queued bytes (the peer sees FIN, or ECONNRESET if it still writes). */
  destroy(): void;
  /** Closes with RST (SO_LINGER 0): the peer sees ECONNRESET. */
  reset(): void;
  pause(): void;
  resume(): void;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** True once `close` fired. */
  readonly closed: boolean;
}

export interface ListenTcpOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  backlog?: number;
}

export interface TcpListener {
  readonly address: SocketAddress;
  /** Stops accepting; connections already accepted are unaffected. Resolves once the port is released. */
  close(): Promise<void>;
}

export interface ConnectTcpOptions {
  host: string;
  port: number;
  /** Source address to bind before connecting. */
  localAddress?: string;
}

export type DnsRecordType = 'A' | 'AAAA' | 'SRV';

export interface DnsAnswer {
  /** Addresses for A/AAAA; for SRV, the target names with their ports (resolve them again for addresses). */
  readonly records: ReadonlyArray<{ address: string; family?: IpFamily; port?: number; priority?: number; weight?: number }>;
  /** Smallest TTL among the answers, seconds. */
  readonly ttlSec: number;
}

export interface Datagram {
  readonly data: Uint8Array;
  readonly remote: SocketAddress;
}

export interface UdpSocket {
  readonly local: SocketAddress;
  setHandler(onMessage: (msg: Datagram) => void): void;
  send(data: Uint8Array, port: number, address: string): void;
  close(): void;
}

export interface Network {
  readonly clock: Clock;
  readonly random: Random;
  /** Binds and starts accepting. Rejects with a NetError (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`). */
  listenTcp(opts: ListenTcpOptions, onConnection: (conn: Conn) => void): Promise<TcpListener>;
  /** Starts a connection; the Conn's `connect` or `error` handler tells how it went. */
  connectTcp(opts: ConnectTcpOptions): Conn;
  /** Resolves a name. Rejects with a NetError (`ENOTFOUND`, `ENODATA`, `ETIMEOUT`, `ESERVFAIL`, `ECONNREFUSED`). */
  resolve(name: string, type: DnsRecordType): Promise<DnsAnswer>;
  bindUdp(opts: { host: string; port: number }): Promise<UdpSocket>;
  /** TLS over Conns (edge termination and origin re-encryption). */
  readonly tls: TlsPort;
}

// ── TLS ─────────────────────────────────────────────────────────────────────────────────────────────────────────
// Real: node:tls wraps the Conn (src/net/node/tls.ts). Sim: the TLS model of src/core/tls-model.ts predicts the
// handshake, played as small records over the simulated Conn (src/net/sim/sim-tls.ts), so it costs round trips,
// can be sliced, lost or reset like any bytes. Both report the same TlsInfo / TlsFailure.

export type TlsVersion = 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/**
 * What a certificate is, as far as a handshake cares. Real mode derives it from the PEM (node:crypto
 * X509Certificate); the simulator uses it as is. `issuer` names the CA that signed it (its `id`), or equals `id`
 * for a self-signed certificate.
 */
export interface CertInfo {
  /** Stable id of this certificate (real: SHA-256 fingerprint of the DER, colon-free upper hex). */
  readonly id: string;
  /** DNS names and IP addresses it is valid for (SAN; CN only when there is no SAN). `*.x.test` wildcards allowed. */
  readonly names: readonly string[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** id of the issuing CA; `=== id` for self-signed. */
  readonly issuer: string;
  readonly keyType: 'rsa' | 'ecdsa';
  /** SHA-256 of the DER, upper hex with colons, as OpenSSL prints it (events: OriginTlsFingerprint). */
  readonly fingerprint256: string;
}

/** A certificate with its key, ready to serve. `pem` is present in real mode only. */
export interface TlsIdentity {
  readonly cert: CertInfo;
  /** Chain after the leaf (intermediates), outermost last. */
  readonly chain: readonly CertInfo[];
  readonly pem?: { readonly cert: string; readonly key: string };
}

/** Trust anchors for verifying a peer: CA ids (sim) and/or PEM bundles (real); `system` adds the OS store. */
export interface TlsTrust {
  readonly system: boolean;
  readonly cas: readonly CertInfo[];
  readonly pem?: string;
}

export interface TlsServerParams {
  /** The identity for a ClientHello's SNI (undefined: no SNI). Undefined result: refuse the handshake (INVALID_SNI). */
  identity(sni: string | undefined): TlsIdentity | undefined;
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  /** TLS ≤1.2 cipher suites, OpenSSL names, server preference order. */
  readonly ciphers: readonly string[];
  /** TLS 1.3 suites, IANA names (TLS_AES_128_GCM_SHA256 …), server preference order. */
  readonly ciphersuites: readonly string[];
  /** Give up after this long without a finished handshake (failure HANDSHAKE_TIMEOUT). */
  readonly handshakeTimeoutMs: number;
}

export interface TlsClientParams {
  /** SNI to send; undefined sends none. */
  readonly servername: string | undefined;
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  /** TLS ≤1.2 suites in ClientHello order (OpenSSL names). */
  readonly ciphers: readonly string[];
  /** TLS 1.3 suites in ClientHello order (IANA names). */
  readonly ciphersuites: readonly string[];
  /** undefined = do not verify (Full); otherwise verify chain against `trust` and the name against `checkName`. */
  readonly verify: { readonly trust: TlsTrust; readonly checkName: string } | undefined;
  readonly handshakeTimeoutMs: number;
}

/** Spectrum's ClientTlsStatus / OriginTlsStatus values (defined with the model, used by events too). */
export type { TlsStatus } from '../model/types.ts';
import type { TlsStatus } from '../model/types.ts';

/** Which check a failed handshake failed: the log line and the error code say it. */
export type TlsFailureReason =
  | 'no_shared_version'
  | 'no_shared_cipher'
  | 'unknown_sni'
  | 'no_certificate'
  | 'cert_expired'
  | 'cert_not_yet_valid'
  | 'cert_wrong_name'
  | 'cert_self_signed'
  | 'cert_unknown_ca'
  | 'peer_alert'
  | 'not_tls'
  | 'handshake_timeout'
  | 'connection_closed'
  | 'internal';

export interface TlsInfo {
  readonly protocol: TlsVersion;
  /** Negotiated suite, OpenSSL name for ≤1.2 (ECDHE-RSA-AES128-GCM-SHA256), IANA name for 1.3 (TLS_AES_128_GCM_SHA256). */
  readonly cipher: string;
  /** SNI the client sent ('' when none). */
  readonly servername: string;
  /** The peer's certificate (client side of a handshake), undefined on the server side. */
  readonly peerCert: CertInfo | undefined;
}

export interface TlsFailure {
  readonly status: TlsStatus;
  readonly reason: TlsFailureReason;
  /** Human detail (OpenSSL's message in real mode). */
  readonly detail: string;
  /** The peer certificate seen, when the failure is about it. */
  readonly peerCert?: CertInfo;
}

export type TlsOutcome = { readonly ok: true; readonly info: TlsInfo } | { readonly ok: false; readonly failure: TlsFailure };

/**
 * A handshake in progress over a Conn. The caller hands the raw Conn over (it must not touch it again) and gets
 * `conn`: the plaintext stream, paused, usable once `done` reported ok. `done` is called exactly once, never
 * synchronously. After a failure the raw Conn is closed by the TLS layer (`conn` closes too).
 */
export interface TlsSession {
  readonly conn: Conn;
  onDone(cb: (outcome: TlsOutcome) => void): void;
}

export interface TlsPort {
  /**
   * `initial`: bytes already read from `raw` that belong to the handshake (read past an inbound PROXY header);
   * they are processed before anything else `raw` delivers.
   */
  server(raw: Conn, params: TlsServerParams, initial?: readonly Uint8Array[]): TlsSession;
  client(raw: Conn, params: TlsClientParams): TlsSession;
}

/** What an app needs a certificate for (edge termination). */
export interface CertRequest {
  readonly appId: string;
  /** Names the certificate must cover when Refract issues it: the app's dns.name first. */
  readonly names: readonly string[];
  /** PEM files given in config (`edge_tls.cert` / `edge_tls.key`); absent = issue one from the local CA. */
  readonly certFile?: string;
  readonly keyFile?: string;
}

/**
 * Where edge certificates and origin trust come from. Real (src/net/node/cert-store.ts): PEM files, else a local
 * CA persisted in the data directory. Sim (src/net/sim/sim-certs.ts): certificate descriptors, no cryptography.
 * Both are called at apply time (before anything is switched), so a bad file rejects the reload whole.
 */
export interface CertSource {
  /** One identity per request, by appId. Rejects with a RefractError (E_TLS_CERT_READ, E_TLS_CERT_INVALID, E_TLS_CA). */
  identities(reqs: readonly CertRequest[]): Promise<ReadonlyMap<string, TlsIdentity>>;
  /** Trust anchors for `strict`: the system store (real) plus an optional PEM bundle file. */
  trust(caBundleFile: string | undefined): Promise<TlsTrust>;
  /** Files whose change should reload certificates (the CLI watches them). */
  watchedFiles(): readonly string[];
}
