/**
 * The origins: each listener of an origin host serves its ports as its `behaviour` says (TCP: echo, banner, sink,
 * close, reset, refuse, blackhole, optionally behind TLS and a PROXY header; UDP: echo, silent, spp-echo, v2-echo).
 * What an origin decodes (a PROXY header, an SPP or PROXY v2 client address) and counts is written to the timeline
 * connection or flow the tracker attributes its socket to.
 */
import { decodeProxyHeader, PROXY_V2_SIGNATURE, ProxyHeaderReader, type ProxyHeader } from '../core/proxy-protocol.ts';
import { decodeSpp, encodeSpp } from '../core/spp.ts';
import { EDGE_CIPHERS } from '../core/tls-ciphers.ts';
import { parseOriginUri } from '../model/ports.ts';
import { type CertInfo, type Conn, type TlsPort, type TlsServerParams, type UdpSocket } from '../net/ports.ts';
import { endpointKey, type Track, type Tracker } from './tracker.ts';
import { type OriginBehaviour, type Topology, type UdpOriginBehaviour } from './types.ts';
import { type World } from './world.ts';

type Listener = Topology['origins'][number]['listeners'][number];
type ListenerTls = NonNullable<Listener['tls']>;

const encoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** Starts and restarts the origin hosts' listeners. */
export class Origins {
  readonly #world: World;
  readonly #tracker: Tracker;

  constructor(world: World, tracker: Tracker) {
    this.#world = world;
    this.#tracker = tracker;
  }

  /**
   * Every origin listens; then a black hole (an origin whose listeners are all `blackhole`) is cut off from everyone,
   * so SYNs to it vanish (the client side sees a connect timeout). A `heal` of everything heals it too.
   */
  async start(): Promise<void> {
    const origins = this.#world.topo.origins;
    for (const o of origins) await this.listen(o.name);
    for (const o of origins) if (o.listeners.length > 0 && o.listeners.every((l) => l.behaviour === 'blackhole')) this.#world.sim.isolate(o.name);
  }

  /** Opens every listener of origin host `name` (at the start, and again when the host restarts). */
  async listen(name: string): Promise<void> {
    const world = this.#world;
    const tracker = this.#tracker;
    const o = world.topo.origins.find((x) => x.name === name)!;
    const host = world.host(name);
    const udpFlowOf = tracker.flowOfUpstream.bind(tracker);
    for (const l of o.listeners) {
      if (l.behaviour === 'refuse' || l.behaviour === 'blackhole') continue;
      const uri = parseOriginUri(l.listen);
      if (!uri.ok) throw new Error(`validated listener ${l.listen} does not parse`);
      const { start, end } = uri.value.ports;
      for (let port = start; port <= end; port++) {
        if (uri.value.protocol === 'udp') {
          serveUdpOrigin(await host.bindUdp({ host: uri.value.host, port }), l, udpFlowOf);
          continue;
        }
        const tlsParams = l.tls === undefined ? undefined : originTlsParams(l.tls, world.certs);
        await host.listenTcp({ host: uri.value.host, port }, (conn) => {
          // The timeline connection this socket serves gets the PROXY header the origin decodes (no closure per
          // connection: under tsx each named arrow costs an Object.defineProperty).
          const t = tracker.connectionOfUpstream(conn.remote);
          if (tlsParams === undefined) serveOrigin(conn, l, t);
          else serveTlsOrigin(host.tls, conn, l, tlsParams, t);
        });
      }
    }
  }
}

/** An origin decoded PROXY header `h` on a socket of timeline connection `t` (undefined: not a timeline connection's). */
function recordHeader(t: Track | undefined, h: ProxyHeader): void {
  if (t !== undefined) t.proxyHeader = headerOf(h);
}

function headerOf(h: ProxyHeader): { version: 1 | 2; src: string; dst: string } {
  return {
    version: h.version,
    src: h.src ? endpointKey(h.src.address, h.src.port) : '',
    dst: h.dst ? endpointKey(h.dst.address, h.dst.port) : '',
  };
}

/** What an origin listener does with payload bytes. */
function originPayload(conn: Conn, behaviour: OriginBehaviour, chunk: Uint8Array): void {
  switch (behaviour) {
    case 'echo':
    case 'banner':
      if (!conn.write(chunk)) conn.pause();
      return;
    case 'reset':
      conn.reset();
      return;
    case 'sink':
    case 'close':
    case 'refuse':
    case 'blackhole':
      return;
  }
}

/**
 * Serves one accepted origin connection as its listener's behaviour says. With `parse_proxy` (default true) the first
 * bytes are checked for a PROXY header: decoded and recorded on `track` if there is one, payload otherwise;
 * `'required'` resets a connection without one and holds a banner until the header is in.
 */
function serveOrigin(conn: Conn, l: Listener, track: Track | undefined): void {
  const behaviour = l.behaviour as OriginBehaviour; // validation keeps the UDP behaviours off tcp:// listeners
  const mode = l.parse_proxy ?? true;
  conn.setHandlers(new OriginConn(conn, l, behaviour, mode, track));
  if (behaviour === 'banner' && mode !== 'required') conn.write(encoder.encode(l.banner ?? ''));
  if (behaviour === 'close') conn.end();
  conn.resume();
}

/**
 * A TLS origin's server side: its certificate (and the descriptors it chains through), versions, ciphers. Exported
 * for the TLS property tests, whose origins must be the runner's.
 */
export function originTlsParams(spec: Pick<ListenerTls, 'cert' | 'min_version' | 'max_version' | 'ciphers' | 'ciphersuites'>, certs: ReadonlyMap<string, CertInfo>): TlsServerParams {
  const cert = certs.get(spec.cert)!; // validation checked the reference
  const chain: CertInfo[] = [];
  for (let c = certs.get(cert.issuer); c !== undefined && c.id !== cert.id && !chain.includes(c) && c.issuer !== c.id; c = certs.get(c.issuer)) chain.push(c);
  const identity = { cert, chain };
  return {
    identity: () => identity,
    minVersion: spec.min_version ?? 'TLSv1.2',
    maxVersion: spec.max_version ?? 'TLSv1.3',
    ciphers: spec.ciphers ?? EDGE_CIPHERS.ciphers,
    ciphersuites: spec.ciphersuites ?? EDGE_CIPHERS.ciphersuites,
    handshakeTimeoutMs: 10_000,
  };
}

/**
 * A TLS origin: a PROXY header, if the first bytes are one, is read in clear (as HAProxy's `accept-proxy ssl` does),
 * then the TLS session starts on what follows, and the listener's behaviour runs on the plaintext.
 */
function serveTlsOrigin(tls: TlsPort, conn: Conn, l: Listener, params: TlsServerParams, track: Track | undefined): void {
  let reader: ProxyHeaderReader | undefined = new ProxyHeaderReader();
  const held: Uint8Array[] = [];
  const start = (initial: Uint8Array[]): void => {
    conn.pause();
    const s = tls.server(conn, params, initial);
    serveOrigin(s.conn, { ...l, parse_proxy: false }, track);
  };
  conn.setHandlers({
    data(chunk) {
      if (reader === undefined) return;
      held.push(chunk);
      const r = reader.push(chunk);
      if (r.kind === 'incomplete') return;
      reader = undefined;
      if (r.kind === 'header') {
        recordHeader(track, r.header);
        start(r.rest.length > 0 ? [r.rest] : []);
      } else start([...held]);
    },
    error() {},
  });
  conn.resume();
}

/** One accepted origin connection's handlers (one object per connection, its callbacks methods): see `serveOrigin`. */
class OriginConn {
  readonly #conn: Conn;
  readonly #l: Listener;
  readonly #behaviour: OriginBehaviour;
  readonly #mode: boolean | 'required';
  readonly #track: Track | undefined;
  #reader: ProxyHeaderReader | undefined;
  /** The chunks read while looking for a PROXY header (payload if there is none). */
  #held: Uint8Array[] | undefined;

  constructor(conn: Conn, l: Listener, behaviour: OriginBehaviour, mode: boolean | 'required', track: Track | undefined) {
    this.#conn = conn;
    this.#l = l;
    this.#behaviour = behaviour;
    this.#mode = mode;
    this.#track = track;
    this.#reader = mode === false ? undefined : new ProxyHeaderReader();
  }

  data(chunk: Uint8Array): void {
    const reader = this.#reader;
    const conn = this.#conn;
    const behaviour = this.#behaviour;
    if (reader === undefined) {
      originPayload(conn, behaviour, chunk);
      return;
    }
    const held = (this.#held ??= []);
    held.push(chunk);
    const r = reader.push(chunk);
    if (r.kind === 'incomplete') return;
    this.#reader = undefined;
    this.#held = undefined;
    if (r.kind === 'header') {
      recordHeader(this.#track, r.header);
      if (behaviour === 'banner' && this.#mode === 'required') conn.write(encoder.encode(this.#l.banner ?? ''));
      if (r.rest.length > 0) originPayload(conn, behaviour, r.rest);
    } else if (this.#mode === 'required') conn.reset(); // a PROXY-aware server drops a connection without a header
    else for (const c of held) originPayload(conn, behaviour, c); // not a header: it was all payload
  }

  drain(): void {
    this.#conn.resume();
  }

  end(): void {
    this.#conn.end();
  }

  error(): void {}
}

function startsWithV2Signature(d: Uint8Array): boolean {
  if (d.byteLength < PROXY_V2_SIGNATURE.length) return false;
  for (let i = 0; i < PROXY_V2_SIGNATURE.length; i++) if (d[i] !== PROXY_V2_SIGNATURE[i]) return false;
  return true;
}

/**
 * Serves one bound `udp://` origin port as its listener's behaviour says (see `UdpOriginBehaviour`). `flowOf` names
 * the timeline flow a datagram's source (the edge's upstream socket for that flow) belongs to, when known; what the
 * origin received and decoded is recorded there.
 */
function serveUdpOrigin(sock: UdpSocket, l: Listener, flowOf: Tracker['flowOfUpstream']): void {
  const behaviour = l.behaviour as UdpOriginBehaviour; // validation keeps the TCP behaviours off udp:// listeners
  const wrong = new Set(l.wrong_header_for ?? []);
  /** v2-echo: sources whose first datagram has come (one source = one edge flow, its own upstream socket). */
  const seen = new Set<string>();
  sock.setHandler((m) => {
    const f = flowOf(m.remote);
    if (f !== undefined) {
      f.originDatagrams++;
      if (startsWithV2Signature(m.data)) f.proxyHeaders++;
    }
    const reply = (d: Uint8Array): void => sock.send(d, m.remote.port, m.remote.address);
    switch (behaviour) {
      case 'echo':
        reply(m.data);
        return;
      case 'silent':
        return;
      case 'spp-echo': {
        const d = decodeSpp(m.data);
        if (d.kind !== 'ok') return; // an SPP server drops what it cannot attribute
        if (f !== undefined) f.originClient = endpointKey(d.client.address, d.client.port);
        // The reply names the same client, unless the payload asks for a wrong header (the edge must drop it).
        const client = wrong.has(textDecoder.decode(d.payload)) ? { address: d.client.address, port: (d.client.port + 1) % 65_536 } : d.client;
        reply(encodeSpp({ client, proxy: d.proxy }, d.payload));
        return;
      }
      case 'v2-echo': {
        const source = endpointKey(m.remote.address, m.remote.port);
        if (!seen.has(source)) {
          seen.add(source);
          const h = decodeProxyHeader(m.data);
          if (h.kind === 'header') {
            if (f !== undefined && h.header.src !== undefined) f.originClient = endpointKey(h.header.src.address, h.header.src.port);
            reply(h.rest);
            return;
          }
        }
        reply(m.data); // later datagrams are payload, header or not: a stray header would reach the client
        return;
      }
    }
  });
}
