/**
 * Follows each timeline connection and UDP flow through the engine, from the client, the edge and the origin side.
 * The engine has no hooks for this: only its two streams, and the order in which it records and acts.
 *
 * A TCP connection:
 * - the client's socket address (address and port, chosen by the client host) is the key; the edge's `accept` trace
 *   record carries the same address as `client` (`ip:port` text), which ties the edge's connection number to the
 *   timeline id;
 * - the edge's other trace records and its Spectrum events carry that number (`conn`, `ConnectionID`), prefixed here
 *   with the edge incarnation's generation (`<gen>#<n>`: a restarted edge numbers from 1 again);
 * - the origin side: the edge dials through a thin wrapper of its Network (`edges.ts`) that reports the new upstream
 *   socket (`upstreamOpened`) right after the engine records `dial`, synchronously, so the socket is owned by the
 *   connection whose `dial` came last; an origin that accepts it asks `connectionOfUpstream` which timeline
 *   connection it serves (and records the PROXY header it decoded there).
 *
 * A UDP flow (a `datagram` id: one client socket): the client socket's address ties the edge's `accept` record
 * (`proto: 'udp'`) to the flow, the flow's number (`conn`, `ConnectionID` `u<n>`) ties the rest; the upstream socket
 * the engine binds for the flow is reported when the engine sets its handler (`udpUpstreamArmed`), immediately
 * before it records `established` for that flow; so an origin knows a datagram's flow by its source address
 * (`flowOfUpstream`).
 */
import { type TraceRecord } from '../streams/trace.ts';
import { type SpectrumEvent } from '../streams/events.ts';
import { type Conn, type SocketAddress, type UdpSocket } from '../net/ports.ts';
import { formatIpPort } from './schema.ts';
import { type DatagramStep } from './types.ts';

/** A `datagram` step with its destination known: its `to`, or the address its `resolved` answered and its `port`. */
export type DialledDatagram = DatagramStep & { readonly to: string };

/** A connection's `kept` while it holds no chunk (shared: replaced by an array at the first, never pushed to). */
export const NO_CHUNKS: Uint8Array[] = Object.freeze([]) as unknown as Uint8Array[];

/** What the run learns about one timeline connection. */
export interface Track {
  readonly id: string;
  /** Position among the tracker's connections (the order they opened). */
  readonly index: number;
  readonly halfOpen: boolean;
  conn: Conn | undefined;
  /** Received chunks kept (NO_CHUNKS before the first, and after `received` was made from them). */
  kept: Uint8Array[];
  keptBytes: number;
  /** The report's `received`, once made before the report (the connection keeps no more bytes). */
  received: string | undefined;
  receivedBytes: number;
  error: string | undefined;
  closedAt: number | undefined;
  edge: string | undefined;
  acceptAt: number | undefined;
  establishedAt: number | undefined;
  status: number | undefined;
  reason: string | undefined;
  clientBytes: number;
  originBytes: number;
  event: string | undefined;
  matched: string | undefined;
  country: string | undefined;
  origin: string | undefined;
  proxyHeader: { version: 1 | 2; src: string; dst: string } | undefined;
  /** TLS fields of the edge's closing event (ClientTls*, OriginTls*), when the app terminates TLS. */
  tls: Record<string, string> | undefined;
  /** ErrorCode of the closing event. */
  code: string | undefined;
  /** The client's own handshake (TLS connects): outcome, and writes held until the session exists. */
  clientTls: { protocol: string; cipher: string } | { failure: string } | undefined;
  tlsHeld: Array<Uint8Array | 'end'> | undefined;
}

/** What the run learns about one timeline UDP flow (one client socket). */
export interface FlowTrack {
  readonly id: string;
  readonly step: DialledDatagram;
  /** The client socket once bound (undefined: its host was down or the bind failed), and its host's incarnation. */
  sock: Promise<UdpSocket | undefined>;
  incarnation: number;
  /** Payloads sent, as latin1 keys (to tell foreign datagrams). */
  readonly sent: Set<string>;
  sentDatagrams: number;
  received: string[];
  receivedDatagrams: number;
  receivedBytes: number;
  receivedForeign: number;
  error: string | undefined;
  edge: string | undefined;
  edgeFlows: number;
  edgeFlowsClosed: number;
  status: number | undefined;
  event: string | undefined;
  reason: string | undefined;
  origin: string | undefined;
  clientPackets: number;
  originPackets: number;
  clientBytes: number;
  originBytes: number;
  originDatagrams: number;
  proxyHeaders: number;
  originClient: string | undefined;
}

/** An endpoint key as both ends write it: IPv4-mapped IPv6 reduced to IPv4, IPv6 bracketed. */
export function endpointKey(address: string, port: number): string {
  if (address.indexOf(':') < 0) return `${address}:${port}`; // IPv4 (what formatIpPort writes), the common case
  // Only an address starting with ':' can be IPv4-mapped (skips the regex for every IPv4 endpoint).
  const v4 = address.startsWith(':') ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address) : null;
  return formatIpPort(v4?.[1] ?? address, port);
}

/** The address part of `endpointKey` (`endpointKey(a, p)` is `${addressKey(a)}:${p}`); an IPv4 address is itself. */
export function addressKey(address: string): string {
  if (address.indexOf(':') < 0) return address;
  const v4 = address.startsWith(':') ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address) : null;
  return v4 !== null ? v4[1]! : `[${address}]`;
}

/**
 * TCP sockets by address, then port: what `endpointKey` keys, without an `ip:port` string per socket (an IPv4
 * address is its own key, so a host's address string is looked up as it is, its hash computed once). An entry is
 * taken out when it is found: each socket is looked up once, and the maps hold only the sockets in flight.
 */
class SocketIndex<T> {
  readonly #byAddress = new Map<string, Map<number, T>>();

  set(address: string, port: number, v: T): void {
    const key = addressKey(address);
    let ports = this.#byAddress.get(key);
    if (ports === undefined) this.#byAddress.set(key, (ports = new Map()));
    ports.set(port, v);
  }

  /** The entry at (`addressKey` `key`, `port`), removed. */
  take(key: string, port: number): T | undefined {
    const ports = this.#byAddress.get(key);
    if (ports === undefined) return undefined;
    const v = ports.get(port);
    if (v !== undefined) ports.delete(port);
    return v;
  }

  /** The entry of the engine's endpoint text (`address:port`, IPv6 unbracketed), removed. */
  takeText(text: string): T | undefined {
    const i = text.lastIndexOf(':');
    if (i < 0 || !isDigits(text, i + 1) || text.length - i > 6) return undefined;
    let port = 0;
    for (let j = i + 1; j < text.length; j++) port = port * 10 + text.charCodeAt(j) - 48;
    // The address part: the last one seen when the text starts with it (no slice per record), else sliced.
    const last = this.#lastText;
    const address = last !== undefined && last.length === i && text.startsWith(last) ? last : (this.#lastText = text.slice(0, i));
    return this.take(address.indexOf(':') < 0 ? address : addressKey(address), port);
  }

  #lastText: string | undefined = undefined;
}

/** The engine writes endpoints as `address:port` (IPv6 unbracketed): re-key them as `endpointKey` does. */
function splitEndpoint(text: string): string {
  const i = text.lastIndexOf(':');
  if (i >= 0 && text.indexOf(':') === i && isDigits(text, i + 1)) return text; // IPv4 `a.b.c.d:port`: already the key
  return i < 0 ? text : endpointKey(text.slice(0, i), Number(text.slice(i + 1)));
}

/** True when `text` from `from` on is a decimal number without a leading zero (as the engine writes a port). */
function isDigits(text: string, from: number): boolean {
  if (from >= text.length || (text.charCodeAt(from) === 48 && text.length - from > 1)) return false;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Every timeline connection and flow, and the indexes that tie the edge's and the origins' view of them to their ids. */
export class Tracker {
  /** Timeline connections by id, in the order they opened. */
  readonly connections = new Map<string, Track>();
  /** Timeline UDP flows by id, in the order their ids first sent. */
  readonly flows = new Map<string, FlowTrack>();
  /** Closing events (TCP and UDP) by Status, over every edge. */
  readonly byStatus: Record<string, number> = {};
  /** Client sockets (their local address) → the timeline connection (taken out at the edge's `accept`). */
  readonly #byClientAddr = new SocketIndex<Track>();
  /** Edge incarnation (generation) → its connection numbers → timeline connections (number keys: no string per lookup). */
  readonly #byEdgeConn = new Map<number, Map<number, Track>>();
  /** Upstream socket (edge side) → the timeline connection whose dial opened it (taken out when an origin accepts it). */
  readonly #byUpstream = new SocketIndex<Track>();
  readonly #byUdpClient = new Map<string, FlowTrack>();
  readonly #byEdgeFlow = new Map<string, FlowTrack>();
  /** `edge host|port` of a flow's upstream socket → its timeline flow. */
  readonly #byUpstreamUdp = new Map<string, FlowTrack>();
  /** An address an origin may see a datagram from → the edge host that owns it. */
  readonly #edgeOfAddress = new Map<string, string>();
  /** The connection whose `dial` the engine recorded last: the next upstream socket is its. */
  #pendingDial: Track | undefined;
  /** The upstream UDP socket whose handler the engine set last: its flow's `established` record comes next. */
  #pendingUpstream: string | undefined;

  /** `edges`: each edge host's name and addresses (to tell which edge an origin's datagram came from). */
  constructor(edges: Iterable<{ name: string; addresses: readonly string[] }>) {
    for (const e of edges) for (const a of e.addresses) this.#edgeOfAddress.set(endpointKey(a, 0), e.name);
  }

  // ── the client side ──

  /** A new timeline connection (registered before its socket exists: a client whose host is down is reported too). */
  addConnection(id: string, halfOpen: boolean, tls: boolean): Track {
    const t: Track = {
      id,
      index: this.connections.size,
      halfOpen,
      conn: undefined,
      kept: NO_CHUNKS,
      keptBytes: 0,
      received: undefined,
      receivedBytes: 0,
      error: undefined,
      closedAt: undefined,
      edge: undefined,
      acceptAt: undefined,
      establishedAt: undefined,
      status: undefined,
      reason: undefined,
      clientBytes: 0,
      originBytes: 0,
      event: undefined,
      matched: undefined,
      country: undefined,
      origin: undefined,
      proxyHeader: undefined,
      tls: undefined,
      code: undefined,
      clientTls: undefined,
      tlsHeld: tls ? [] : undefined,
    };
    this.connections.set(id, t);
    return t;
  }

  /** The client socket of `t` is bound at `local`: the edge's `accept` will name that address. */
  clientSocket(t: Track, local: SocketAddress): void {
    this.#byClientAddr.set(local.address, local.port, t);
  }

  /** A new timeline flow; its client socket is bound by the caller. */
  addFlow(d: DialledDatagram): FlowTrack {
    const f: FlowTrack = {
      id: d.id,
      step: d,
      sock: Promise.resolve(undefined),
      incarnation: 0,
      sent: new Set(),
      sentDatagrams: 0,
      received: [],
      receivedDatagrams: 0,
      receivedBytes: 0,
      receivedForeign: 0,
      error: undefined,
      edge: undefined,
      edgeFlows: 0,
      edgeFlowsClosed: 0,
      status: undefined,
      event: undefined,
      reason: undefined,
      origin: undefined,
      clientPackets: 0,
      originPackets: 0,
      clientBytes: 0,
      originBytes: 0,
      originDatagrams: 0,
      proxyHeaders: 0,
      originClient: undefined,
    };
    this.flows.set(d.id, f);
    return f;
  }

  /** The client socket of flow `f` is bound at `local` (again, after its host restarted). */
  flowSocket(f: FlowTrack, local: SocketAddress): void {
    this.#byUdpClient.set(endpointKey(local.address, local.port), f);
  }

  // ── the edge side ──

  /** The engine opened an upstream TCP socket at `local`: it serves the connection whose `dial` came last. */
  upstreamOpened(local: SocketAddress): void {
    if (this.#pendingDial !== undefined) this.#byUpstream.set(local.address, local.port, this.#pendingDial);
    this.#pendingDial = undefined;
  }

  /** The engine set the handler of its upstream UDP socket on `edge` at `port`: the flow it records `established` next owns it. */
  udpUpstreamArmed(edge: string, port: number): void {
    this.#pendingUpstream = `${edge}|${port}`;
  }

  /** A decision-trace record of incarnation `gen` of edge `edge`. */
  onTrace(edge: string, gen: number, r: TraceRecord): void {
    const event = r.event;
    // Records neither side reads skip the `proto` lookup (a miss on every TCP record's shape: the slowest load).
    if (event !== 'accept' && event !== 'dial' && event !== 'established' && event !== 'close') return;
    if (r['proto'] === 'udp') {
      this.#onUdpTrace(edge, gen, r);
      return;
    }
    switch (event) {
      case 'accept': {
        const t = this.#byClientAddr.takeText(String(r['client']));
        if (t === undefined) return;
        t.edge = edge;
        t.acceptAt = r.t;
        let conns = this.#connsOf(gen);
        if (conns === undefined) this.#byEdgeConn.set(gen, (conns = new Map()));
        conns.set(r.conn, t);
        return;
      }
      case 'dial':
        this.#pendingDial = this.#connsOf(gen)?.get(r.conn);
        return;
      case 'established': {
        const t = this.#connsOf(gen)?.get(r.conn);
        if (t !== undefined) t.establishedAt = r.t;
        return;
      }
      case 'close': {
        const t = this.#connsOf(gen)?.get(r.conn);
        if (t === undefined) return;
        t.status = Number(r['status']);
        t.reason = String(r['reason']);
        t.clientBytes = Number(r['bytes_in']);
        t.originBytes = Number(r['bytes_out']);
        return;
      }
    }
  }

  /** UDP flows are numbered apart from TCP connections; their events' ConnectionID is `u<n>`. */
  #onUdpTrace(edge: string, gen: number, r: TraceRecord): void {
    switch (r.event) {
      case 'accept': {
        const f = this.#byUdpClient.get(splitEndpoint(String(r['client'])));
        if (f === undefined) return;
        f.edge = edge;
        f.edgeFlows++;
        this.#byEdgeFlow.set(`${gen}#u${r.conn}`, f);
        return;
      }
      case 'established': {
        const f = this.#byEdgeFlow.get(`${gen}#u${r.conn}`);
        if (f !== undefined && this.#pendingUpstream !== undefined) this.#byUpstreamUdp.set(this.#pendingUpstream, f);
        this.#pendingUpstream = undefined;
        return;
      }
      case 'close':
      case 'proxy_in':
      case 'filtered':
      case 'resolved':
      case 'dial':
      case 'dial_failed':
      case 'c2s_end':
      case 's2c_end':
      case 'tls_client':
      case 'tls_client_failed':
      case 'tls_origin':
      case 'tls_origin_failed':
        return; // the closing event carries what the report needs
    }
  }

  /** A Spectrum event of incarnation `gen` of an edge: closing events are counted and fill in their connection or flow. */
  onEvent(gen: number, e: SpectrumEvent): void {
    if (e.Event === 'connect') return;
    // A numeric key names the same property as its string (no string built per event).
    this.byStatus[e.Status] = (this.byStatus[e.Status] ?? 0) + 1;
    if (e.ClientProto === 'udp') {
      const f = this.#byEdgeFlow.get(`${gen}#${e.ConnectionID}`);
      if (f === undefined) return;
      f.edgeFlowsClosed++;
      f.status = e.Status;
      f.event = e.Event;
      f.reason = e.CloseReason;
      f.clientPackets = e.ClientPackets ?? 0;
      f.originPackets = e.OriginPackets ?? 0;
      f.clientBytes = e.ClientBytes;
      f.originBytes = e.OriginBytes;
      if (e.OriginIP !== '') f.origin = endpointKey(e.OriginIP, e.OriginPort);
      return;
    }
    const conns = this.#connsOf(gen);
    const n = Number(e.ConnectionID);
    const t = conns?.get(n);
    if (t === undefined) return;
    conns!.delete(n); // the closing event is the connection's last word: nothing looks it up after
    t.event = e.Event;
    t.matched = e.ClientMatchedIpFirewall;
    t.country = e.ClientCountry;
    t.code = e.ErrorCode;
    if (e.OriginTlsMode !== 'off') {
      t.tls = {
        client_protocol: e.ClientTlsProtocol,
        client_cipher: e.ClientTlsCipher,
        client_status: e.ClientTlsStatus,
        sni: e.ClientTlsClientHelloServerName,
        origin_protocol: e.OriginTlsProtocol,
        origin_cipher: e.OriginTlsCipher,
        origin_status: e.OriginTlsStatus,
        origin_fingerprint: e.OriginTlsFingerprint,
      };
    }
    if (e.OriginIP !== '') t.origin = this.#originKey(e.OriginIP, e.OriginPort);
  }

  /** Incarnation `gen`'s connection numbers (the last incarnation asked for is remembered: mostly the same one). */
  #connsOf(gen: number): Map<number, Track> | undefined {
    if (gen === this.#lastGen && this.#lastConns !== undefined) return this.#lastConns;
    const conns = this.#byEdgeConn.get(gen);
    if (conns !== undefined) {
      this.#lastGen = gen;
      this.#lastConns = conns;
    }
    return conns;
  }

  #lastGen = -1;
  #lastConns: Map<number, Track> | undefined = undefined;

  /** `endpointKey` of a closing event's origin: the previous event's string again when it names the same origin. */
  #originKey(ip: string, port: number): string {
    const last = this.#lastOrigin;
    if (last !== undefined && last.ip === ip && last.port === port) return last.key;
    const key = endpointKey(ip, port);
    this.#lastOrigin = { ip, port, key };
    return key;
  }

  #lastOrigin: { ip: string; port: number; key: string } | undefined = undefined;

  // ── the origin side ──

  /** The timeline connection an origin's accepted socket serves, by its remote (the edge's upstream socket). */
  connectionOfUpstream(remote: SocketAddress): Track | undefined {
    return this.#byUpstream.take(addressKey(remote.address), remote.port);
  }

  /** The timeline flow a datagram an origin received belongs to, by its source (the edge's upstream socket for it). */
  flowOfUpstream(remote: SocketAddress): FlowTrack | undefined {
    const edge = this.#edgeOfAddress.get(endpointKey(remote.address, 0));
    return edge === undefined ? undefined : this.#byUpstreamUdp.get(`${edge}|${remote.port}`);
  }
}
