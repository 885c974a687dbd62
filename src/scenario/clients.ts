/**
 * The scripted clients: TCP connections (plain or TLS) that the timeline opens, writes to, ends and resets, load
 * bursts, and UDP flows (one client socket per `datagram` id). What each client sees (bytes, datagrams, errors,
 * its TLS handshake, when it closed) is written to its tracker entry.
 */
import { Buffer } from 'node:buffer';
import { EDGE_CIPHERS } from '../core/tls-ciphers.ts';
import { type CertInfo, type Conn, type ConnectTcpOptions, type NetError, type TlsClientParams, type TlsOutcome, type UdpSocket } from '../net/ports.ts';
import { DATAGRAM_DEFAULT_COUNT, DATAGRAM_DEFAULT_EVERY_MS, LOAD_DEFAULT_BYTES, LOAD_DEFAULT_EVERY_MS, loadId, parseIpPort, sourceAddress, type IpPort } from './schema.ts';
import { REPORT_PREFIX_BYTES, reportReceived } from './results.ts';
import { NO_CHUNKS, type DialledDatagram, type FlowTrack, type Track, type Tracker } from './tracker.ts';
import { type TimelineStep } from './types.ts';
import { type World } from './world.ts';
import type { SimHost } from '../net/sim/index.ts';

type ConnectTls = NonNullable<Extract<TimelineStep, { connect: unknown }>['connect']['tls']>;
type LoadStep = Extract<TimelineStep, { load: unknown }>['load'];

/** Bytes of received text kept per connection for `received` expectations; beyond it only the count is kept. */
const KEEP_RECEIVED_BYTES = 64 * 1024;
/** Received payloads kept per flow for `received` expectations. */
const KEEP_DATAGRAMS = 10_000;

const encoder = new TextEncoder();
const textDecoder = new TextDecoder();
const fillers = new Map<number, Uint8Array>();

/** `n` bytes of a–z, shared per size (the simulator keeps a reference to written chunks: never modified). */
function filler(n: number): Uint8Array {
  let f = fillers.get(n);
  if (f === undefined) {
    f = new Uint8Array(n);
    for (let i = 0; i < n; i++) f[i] = 97 + (i % 26);
    fillers.set(n, f);
  }
  return f;
}

/** A step's payload: its `text`, or `bytes` of filler. */
function payloadOf(p: { text?: string; bytes?: number }): Uint8Array {
  return p.text !== undefined ? encoder.encode(p.text) : filler(p.bytes ?? 0);
}

/** A payload as a string key (latin1 keeps every byte), to tell whether a flow sent it. */
function payloadKey(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('latin1');
}

/** A scenario client's TLS: defaults as a modern client (1.2-1.3, a broad offer); `verify` trusts `cas` (the sim CAs). */
function clientTlsParams(spec: ConnectTls, dialled: string, cas: readonly CertInfo[]): TlsClientParams {
  return {
    servername: spec.sni,
    minVersion: spec.min_version ?? 'TLSv1.2',
    maxVersion: spec.max_version ?? 'TLSv1.3',
    ciphers: spec.ciphers ?? EDGE_CIPHERS.ciphers,
    ciphersuites: spec.ciphersuites ?? EDGE_CIPHERS.ciphersuites,
    verify: spec.verify === true ? { trust: { system: false, cas }, checkName: spec.sni ?? dialled } : undefined,
    handshakeTimeoutMs: 10_000,
  };
}

/** Opens, drives and records the timeline's client connections and flows. */
export class Clients {
  readonly #world: World;
  readonly #tracker: Tracker;
  /** Each `to` a connection dialled, parsed, with its connect options (a load step dials the same one count times). */
  readonly #dialled = new Map<string, { dst: IpPort; opts: ConnectTcpOptions }>();

  /** Connection ids that `send`, `end` or `reset` steps name: only those need their socket once it has closed. */
  readonly #addressed: ReadonlySet<string>;
  /**
   * Connection ids whose whole received text (up to KEEP_RECEIVED_BYTES) an expectation compares (undefined: every
   * id). The others keep only what the report's `received` prefix decodes (REPORT_PREFIX_BYTES).
   */
  readonly #expected: ReadonlySet<string> | undefined;

  constructor(world: World, tracker: Tracker, timeline: readonly TimelineStep[] = [], expected?: ReadonlySet<string>) {
    this.#world = world;
    this.#tracker = tracker;
    this.#addressed = new Set(timeline.flatMap((s) => ('send' in s ? [s.send.id] : 'end' in s ? [s.end.id] : 'reset' in s ? [s.reset.id] : [])));
    this.#expected = expected;
  }

  /**
   * Opens timeline connection `id` from host `client` (source address `from`, default the host's choice) to `to`.
   * `onConnect` runs once the connection (and its TLS session, with `tlsSpec`) is up. A down host: EHOSTDOWN at once.
   */
  open(id: string, client: string, to: string, from: string | undefined, halfOpen: boolean, onConnect?: (c: Conn) => void, tlsSpec?: ConnectTls): void {
    const t = this.#tracker.addConnection(id, halfOpen, tlsSpec !== undefined);
    const release = !this.#addressed.has(id);
    const keep = this.#expected === undefined || this.#expected.has(id) ? KEEP_RECEIVED_BYTES : REPORT_PREFIX_BYTES;
    const world = this.#world;
    const sim = world.sim;
    const host = world.host(client);
    if (!host.up) {
      t.error = 'EHOSTDOWN';
      t.closedAt = sim.clock.now();
      return;
    }
    let dialled = this.#dialled.get(to);
    if (dialled === undefined) {
      const p = parseIpPort(to)!;
      // Shared by every connection to `to` without `from` (connectTcp only reads its options).
      dialled = { dst: p, opts: Object.freeze({ host: p.address, port: p.port }) };
      this.#dialled.set(to, dialled);
    }
    const dst = dialled.dst;
    const c = host.connectTcp(from === undefined ? dialled.opts : { host: dst.address, port: dst.port, localAddress: from });
    t.conn = c;
    this.#tracker.clientSocket(t, c.local);
    c.setHandlers(new ClientConn(t, c, world, host, dst.address, keep, release, onConnect, tlsSpec));
  }

  /** Writes a `send` step's payload on connection `id` (held while its TLS handshake is in progress). */
  send(id: string, p: { text?: string; bytes?: number }): void {
    const t = this.#tracker.connections.get(id);
    const data = payloadOf(p);
    if (t?.tlsHeld !== undefined) t.tlsHeld.push(data); // TLS connect still in progress
    else t?.conn?.write(data); // no conn: its host was down, the track says EHOSTDOWN
  }

  /** Half-closes connection `id` (after its TLS handshake, if one is in progress). */
  end(id: string): void {
    const t = this.#tracker.connections.get(id);
    if (t?.tlsHeld !== undefined) t.tlsHeld.push('end');
    else t?.conn?.end();
  }

  reset(id: string): void {
    this.#tracker.connections.get(id)?.conn?.reset();
  }

  /** A load step: `count` connections `every_ms` apart, each writing its bytes and ending once connected. */
  load(l: LoadStep): void {
    const every = l.every_ms ?? LOAD_DEFAULT_EVERY_MS;
    const data = filler(l.bytes ?? LOAD_DEFAULT_BYTES);
    const onConnect = (c: Conn): void => {
      if (data.byteLength > 0) c.write(data);
      c.end();
    };
    const count = l.count;
    if (count <= 0) return;
    this.open(loadId(l, 0), l.client, l.to, undefined, false, onConnect);
    if (count === 1) return;
    // Connection k opens at start + k × every, in the (deadline, seq) order it would have had with all its timers set
    // now: their sequence numbers are reserved now, and each timer sets the next (one timer in the clock, not count).
    const clock = this.#world.sim.clock;
    const start = clock.now();
    const base = clock.reserve(count - 1);
    const atOf = (k: number): number => {
      const ms = k * every;
      return ms > 0 ? start + ms : start; // as VirtualClock.schedule computes a deadline
    };
    const next = (k: number): void => {
      if (k + 1 < count) clock.postReserved(atOf(k + 1), base + k, next, k + 1);
      this.open(loadId(l, k), l.client, l.to, undefined, false, onConnect);
    };
    clock.postReserved(atOf(1), base, next, 1);
  }

  /** The destination of flow `id` (its first datagram step's), or undefined before that step ran. */
  flowDestination(id: string): string | undefined {
    return this.#tracker.flows.get(id)?.step.to;
  }

  /**
   * A datagram step (its destination known: `to`, or what `resolved` answered): flow `d.id` (its socket bound on its
   * first step) sends `count` datagrams `every_ms` apart.
   */
  datagram(d: DialledDatagram): void {
    let f = this.#tracker.flows.get(d.id);
    if (f === undefined) {
      f = this.#tracker.addFlow(d);
      f.sock = this.#bindFlow(f);
    }
    const flow = f;
    const data = payloadOf(d);
    const every = d.every_ms ?? DATAGRAM_DEFAULT_EVERY_MS;
    for (let k = 0; k < (d.count ?? DATAGRAM_DEFAULT_COUNT); k++) {
      if (k === 0) this.#sendDatagram(flow, data);
      else this.#world.sim.clock.setTimer(k * every, () => this.#sendDatagram(flow, data));
    }
  }

  /** Binds a flow's client socket (from `from`/`from_port`, or the defaults) and records what it receives. */
  #bindFlow(f: FlowTrack): Promise<UdpSocket | undefined> {
    const d = f.step;
    const host = this.#world.host(d.client);
    f.incarnation = host.incarnation;
    if (!host.up) {
      f.error = 'EHOSTDOWN';
      return Promise.resolve(undefined);
    }
    const from = sourceAddress(host.addresses, d.to, d.from)!;
    return host.bindUdp({ host: from, port: d.from_port ?? 0 }).then(
      (sock) => {
        this.#tracker.flowSocket(f, sock.local);
        sock.setHandler((m) => {
          f.receivedDatagrams++;
          f.receivedBytes += m.data.byteLength;
          if (!f.sent.has(payloadKey(m.data))) f.receivedForeign++;
          if (f.received.length < KEEP_DATAGRAMS) f.received.push(textDecoder.decode(m.data));
        });
        return sock;
      },
      (e: unknown) => {
        f.error = (e as { code?: string }).code ?? 'error';
        return undefined;
      },
    );
  }

  #sendDatagram(f: FlowTrack, data: Uint8Array): void {
    const host = this.#world.host(f.step.client);
    if (!host.up) {
      f.error = 'EHOSTDOWN';
      return;
    }
    // A crash took the socket with it: the restarted client binds a new one (a new ephemeral port), as an app would.
    if (host.incarnation !== f.incarnation) f.sock = this.#bindFlow(f);
    f.sock = f.sock.then((sock) => {
      if (sock === undefined) return undefined;
      f.sent.add(payloadKey(data));
      f.sentDatagrams++;
      const dst = parseIpPort(f.step.to)!;
      sock.send(data, dst.port, dst.address);
      return sock;
    });
  }
}

/**
 * One timeline connection's handlers (one object per connection, its callbacks methods): records what arrives,
 * ends after the server does unless half-open, and with TLS hands the socket to a client session once connected.
 */
class ClientConn {
  readonly #t: Track;
  readonly #c: Conn;
  readonly #world: World;
  readonly #host: SimHost;
  readonly #dstAddress: string;
  readonly #keep: number;
  readonly #release: boolean;
  readonly #onConnect: ((c: Conn) => void) | undefined;
  readonly #tlsSpec: ConnectTls | undefined;

  constructor(t: Track, c: Conn, world: World, host: SimHost, dstAddress: string, keep: number, release: boolean, onConnect: ((c: Conn) => void) | undefined, tlsSpec: ConnectTls | undefined) {
    this.#t = t;
    this.#c = c;
    this.#world = world;
    this.#host = host;
    this.#dstAddress = dstAddress;
    this.#keep = keep;
    this.#release = release;
    this.#onConnect = onConnect;
    this.#tlsSpec = tlsSpec;
  }

  connect(): void {
    const tlsSpec = this.#tlsSpec;
    if (tlsSpec === undefined) {
      this.#onConnect?.(this.#c);
      return;
    }
    // TLS: the session takes the raw socket over; what the timeline wrote meanwhile goes through it.
    const t = this.#t;
    const s = this.#host.tls.client(this.#c, clientTlsParams(tlsSpec, this.#dstAddress, this.#world.simCas()));
    t.conn = s.conn;
    s.conn.setHandlers(this);
    s.onDone((o: TlsOutcome) => {
      t.clientTls = o.ok ? { protocol: o.info.protocol, cipher: o.info.cipher } : { failure: o.failure.reason };
    });
    const held = t.tlsHeld ?? [];
    t.tlsHeld = undefined;
    for (const h of held) {
      if (h === 'end') s.conn.end();
      else s.conn.write(h);
    }
    this.#onConnect?.(s.conn);
    s.conn.resume();
  }

  data(d: Uint8Array): void {
    const t = this.#t;
    const keep = this.#keep;
    t.receivedBytes += d.byteLength;
    const room = keep - t.keptBytes;
    if (room > 0) {
      // The chunk itself when it fits (a view of the same bytes either way: no copy, and no view object more).
      const take = d.byteLength <= room ? d : d.subarray(0, room);
      if (t.kept === NO_CHUNKS) t.kept = [take];
      else t.kept.push(take);
      t.keptBytes += take.byteLength;
      // All the report reads is kept and nothing compares more: its `received` now, and the chunks let go.
      if (t.keptBytes === REPORT_PREFIX_BYTES && keep === REPORT_PREFIX_BYTES) {
        t.received = reportReceived(t.kept, t.keptBytes);
        t.kept = NO_CHUNKS;
      }
    }
  }

  end(): void {
    if (!this.#t.halfOpen) this.#t.conn?.end();
  }

  error(e: NetError): void {
    this.#t.error ??= e.code;
  }

  close(): void {
    this.#t.closedAt = this.#world.sim.clock.now();
    // A closed socket no step will touch: let it go (thousands of load connections would otherwise stay in memory).
    if (this.#release) this.#t.conn = undefined;
  }
}
