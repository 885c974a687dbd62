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
import type { IpFamily } from '../model/ip.ts';

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

export type { IpFamily } from '../model/ip.ts';

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
 * name, the others stay. Each callback is called as a method of the object it was given on (`h.data(chunk)`, with
 * `this` being `h`), and inherited methods count: a handler set may be a class instance whose callbacks live on its
 * prototype (src/net/handler-slots.ts). A Conn starts paused (accepted and outbound alike): bytes flow once the owner calls
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

export interface BindUdpOptions {
  host: string;
  port: number;
  /**
   * SO_RCVBUF to ask for, bytes (edge sockets: `edge.udp_receive_buffer`); absent = the system default. The real
   * network reports what the kernel granted in `UdpSocket.receiveBufferBytes`; the simulator ignores it.
   */
  receiveBufferBytes?: number;
}

export interface UdpSocket {
  readonly local: SocketAddress;
  /** The receive buffer the kernel granted, bytes (real sockets bound with `receiveBufferBytes`; Linux caps it at net.core.rmem_max); undefined otherwise and in the simulator. */
  readonly receiveBufferBytes?: number | undefined;
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
  bindUdp(opts: BindUdpOptions): Promise<UdpSocket>;
  /** TLS over Conns (edge termination and origin re-encryption). */
  readonly tls: TlsPort;
}

// ── TLS ─────────────────────────────────────────────────────────────────────────────────────────────────────────
// Real: node:tls wraps the Conn (src/net/node/tls.ts). Sim: the TLS model of src/core/tls-model.ts predicts the
// handshake, played as small records over the simulated Conn (src/net/sim/sim-tls.ts), so it costs round trips,
// can be sliced, lost or reset like any bytes. Both report the same TlsInfo / TlsFailure.

export type { TlsStatus } from '../model/types.ts';
export type { CertInfo, TlsClientParams, TlsFailure, TlsFailureReason, TlsIdentity, TlsInfo, TlsOutcome, TlsServerParams, TlsTrust, TlsVersion } from '../model/tls.ts';
import type { TlsClientParams, TlsIdentity, TlsOutcome, TlsServerParams, TlsTrust } from '../model/tls.ts';

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
