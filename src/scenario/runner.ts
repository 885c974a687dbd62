/**
 * Runs a scenario in virtual time: one simulated world per run, the real engine (`EdgeNode`) on each edge host,
 * scripted clients and origins around it, then a report and the expectation check.
 *
 * The world: one host per edge, client and origin (`sim.host`), the links and DNS records of the topology, an origin
 * listener per listed port behaving as its `behaviour`, and an `EdgeNode` per edge whose config is
 * `{ node: { id: edge name }, edge: { addresses: the edge host's, ...scenario.edge }, apps, access_rules }`, with a
 * geolocation lookup built from the topology's clients (`topologyGeo`). The timeline runs on
 * the virtual clock; the run ends when nothing is left to do (idle) or at `max_time_ms`.
 *
 * How a timeline connection is followed through the engine (no hooks in the engine, only its two streams):
 * - the client's socket address (`ip:port`, chosen by the client host) is the key; the edge's `accept` trace record
 *   carries the same address as `client`, which ties the edge's connection number to the timeline id;
 * - the edge's other trace records and its Spectrum events carry that number (`conn`, `ConnectionID`);
 * - the origin side: the edge dials through a thin wrapper of its Network that notes which connection's `dial`
 *   record (emitted just before the engine calls `connectTcp`) owns the new upstream socket, so an origin that
 *   accepts it knows which timeline connection it serves (and records the PROXY header it decoded there).
 *
 * UDP flows are followed the same way: the client socket's address ties the edge's `accept` record (`proto: 'udp'`)
 * to the timeline flow id, the flow's number (`conn`, `ConnectionID` `u<n>`) ties the rest, and the upstream socket
 * the engine binds for the flow is noted when the engine sets its handler, immediately before it records
 * `established` for that flow; so an origin knows which flow a datagram belongs to by its source address.
 *
 * Determinism: everything observable comes from the seed and the file. The trace hash covers the decision-trace
 * lines of every edge, in the order they were recorded; wall time appears only in `wallMs`.
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { EdgeNode } from '../edge/edge-node.ts';
import { type GeoLookup } from '../core/geo.ts';
import { RefractError } from '../model/errors.ts';
import { decodeProxyHeader, PROXY_V2_SIGNATURE, ProxyHeaderReader, type ProxyHeader } from '../core/proxy-protocol.ts';
import { decodeSpp, encodeSpp } from '../core/spp.ts';
import { parseOriginUri } from '../model/ports.ts';
import {
  type CertInfo, type Conn, type ConnHandlers, type ConnectTcpOptions, type Network, type SocketAddress, type TlsClientParams, type TlsServerParams, type UdpSocket,
} from '../net/ports.ts';
// eslint-disable-next-line no-restricted-imports -- the runner builds the simulated world, certificates included
import { createSimCertSource, simCert, SIM_LOCAL_CA, SIM_PUBLIC_CA } from '../net/sim/sim-certs.ts';
import { EDGE_CIPHERS } from '../core/tls-ciphers.ts';
// eslint-disable-next-line no-restricted-imports -- the runner is the simulation's composition root: it builds the world
import { createSim, type LinkParams, type SimHost } from '../net/sim/index.ts';
import { traceLine, type TraceRecord } from '../streams/trace.ts';
import { type SpectrumEvent } from '../streams/events.ts';
import {
  DATAGRAM_DEFAULT_COUNT,
  DATAGRAM_DEFAULT_EVERY_MS,
  DEFAULT_MAX_TIME_MS,
  LOAD_DEFAULT_BYTES,
  LOAD_DEFAULT_EVERY_MS,
  UDP_COUNTER_KEYS,
  canonicalIp,
  edgeConfig,
  formatIpPort,
  loadIds,
  parseIpPort,
  parseSrvRecord,
  sourceAddress,
  validateScenario,
} from './schema.ts';
import {
  type ConnExpectation,
  type CountExpectation,
  type DatagramStep,
  type FlowExpectation,
  type OriginBehaviour,
  type ScenarioFile,
  type TimelineStep,
  type Topology,
  type UdpOriginBehaviour,
} from './types.ts';

// ── report ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** One timeline connection as the run saw it, from the client, the edge and the origin. */
export interface ConnectionReport {
  readonly id: string;
  /** The edge that accepted it (null: it never reached one). */
  readonly edge: string | null;
  /** Spectrum Status of its closing event (null: no closing event, e.g. refused by the network or still open). */
  readonly status: number | null;
  readonly event: string | null;
  /** ClientMatchedIpFirewall and ClientCountry of its closing event (null: no closing event; country '' = unknown). */
  readonly matched: string | null;
  readonly country: string | null;
  /** `ip:port` of the origin it was (last) dialled to. */
  readonly origin: string | null;
  /** Bytes the edge read from the client / from the origin. */
  readonly clientBytes: number;
  readonly originBytes: number;
  /** What the client received, as text, cut to 200 characters. */
  readonly received: string;
  readonly receivedBytes: number;
  /** CloseReason of the closing event. */
  readonly reason: string | null;
  /** Accept → origin connected, virtual ms (null: never connected). */
  readonly connectMs: number | null;
  /** The client socket's error code, if it saw one. */
  readonly error: string | null;
  /** The PROXY header the origin decoded, `src`/`dst` as `ip:port`. */
  readonly proxyHeader: { version: 1 | 2; src: string; dst: string } | null;
  /** When the client socket closed, virtual ms (null: still open when the run ended). */
  readonly closedAtMs: number | null;
  /** ErrorCode of the closing event ('' none; null: no closing event). */
  readonly code: string | null;
  /** The edge event's TLS fields (null: no closing event or tls off). */
  readonly tls: Readonly<Record<string, string>> | null;
  /** The client's handshake: version and cipher, or the failure it saw (null: no TLS). */
  readonly clientTls: { protocol: string; cipher: string } | { failure: string } | null;
}

/** One timeline UDP flow (a `datagram` id: one client socket) as the run saw it. */
export interface FlowReport {
  readonly id: string;
  /** The edge that accepted it (null: no datagram reached an edge). */
  readonly edge: string | null;
  /** Flows the edge opened for this client socket / closed (a client that sends after expiry opens another). */
  readonly edgeFlows: number;
  readonly edgeFlowsClosed: number;
  /** The last closing event's Status, Event, CloseReason (null: none closed). */
  readonly status: number | null;
  readonly event: string | null;
  readonly reason: string | null;
  /** `ip:port` of the origin the edge sent to. */
  readonly origin: string | null;
  /** ClientPackets / OriginPackets / ClientBytes / OriginBytes of the last closing event. */
  readonly clientPackets: number;
  readonly originPackets: number;
  readonly clientBytes: number;
  readonly originBytes: number;
  /** Datagrams the client sent. */
  readonly sentDatagrams: number;
  /** Datagrams and payload bytes the client received. */
  readonly receivedDatagrams: number;
  readonly receivedBytes: number;
  /** The first received payloads as text (at most 50, each cut to 200 characters). */
  readonly received: readonly string[];
  /** Received datagrams whose payload this flow never sent. */
  readonly receivedForeign: number;
  /** Datagrams the origin received on this flow, and how many of them began with a PROXY v2 signature. */
  readonly originDatagrams: number;
  readonly proxyHeaders: number;
  /** The client address the origin decoded (SPP, or PROXY v2 on a flow's first datagram), `ip:port`. */
  readonly originClient: string | null;
  /** The client socket's error (`EHOSTDOWN`: its host was down; a bind error code). */
  readonly error: string | null;
}

/** The UDP engines' counters (`udp_` prefix dropped), summed over every edge incarnation. */
export type UdpCounters = Readonly<Record<(typeof UDP_COUNTER_KEYS)[number], number>>;

/** A failed expectation: `path` is a JSON pointer into the scenario (the expectation or the step). */
export interface ExpectationFailure {
  readonly path: string;
  readonly expected: unknown;
  readonly actual: unknown;
}

export interface ScenarioReport {
  readonly name: string;
  readonly seed: number;
  /** Virtual time when the run ended, ms. */
  readonly virtualMs: number;
  /** Wall time the run took, ms (the only non-deterministic field). */
  readonly wallMs: number;
  /** Simulator events fired (timers, packet arrivals, application callbacks). */
  readonly steps: number;
  /** Why the run ended: nothing left to do, `max_time_ms` reached, or the step budget spent. */
  readonly stoppedBy: 'idle' | 'max_time' | 'max_steps';
  readonly connections: readonly ConnectionReport[];
  /** Timeline UDP flows, in the order their ids first sent. */
  readonly flows: readonly FlowReport[];
  readonly udp: UdpCounters;
  /** Closing events (TCP and UDP) by Status, over every edge. */
  readonly byStatus: Readonly<Record<string, number>>;
  readonly failures: readonly ExpectationFailure[];
  /** sha256 (hex) of the decision-trace lines, each followed by a newline. */
  readonly traceHash: string;
  readonly traceLines: number;
  /** After the run: no TCP connection in any host's table and no pending timer. */
  readonly quiescent: boolean;
  /** `host local>remote STATE` of each connection left when not quiescent (at most 20). */
  readonly leftOpen: readonly string[];
  readonly pendingTimers: number;
}

export interface RunOptions {
  /** Overrides the file's seed. */
  readonly seed?: number;
  /** Receives each decision-trace line (JSON, no newline) as it is recorded. */
  readonly onTrace?: (line: string) => void;
  /** Called now and then with the virtual time reached and the run's bound. */
  readonly onProgress?: (virtualMs: number, maxMs: number) => void;
  /** Bound on simulator events (default 50,000,000): a runaway scenario stops with `stoppedBy: 'max_steps'`. */
  readonly maxSteps?: number;
  /**
   * Wall-clock milliseconds, from the caller's real clock, to report `wallMs`. The run itself never reads it;
   * without it `wallMs` is 0 (the simulator has no wall time of its own).
   */
  readonly wallClock?: () => number;
}

// ── internals ───────────────────────────────────────────────────────────────────────────────────────────────────

/** Bytes of received text kept per connection for `received` expectations; beyond it only the count is kept. */
const KEEP_RECEIVED_BYTES = 64 * 1024;
const REPORT_RECEIVED_CHARS = 200;
/** Received payloads kept per flow for `received` expectations, and listed per flow in the report. */
const KEEP_DATAGRAMS = 10_000;
const REPORT_DATAGRAMS = 50;
/** Simulator events per slice between progress reports. */
const SLICE_STEPS = 2_000;
const DEFAULT_MAX_STEPS = 50_000_000;

type Listener = Topology['origins'][number]['listeners'][number];
type LinkSpec = NonNullable<Topology['links']>[number];

/** What the run learns about one timeline connection. */
interface Track {
  readonly id: string;
  readonly halfOpen: boolean;
  conn: Conn | undefined;
  kept: Uint8Array[];
  keptBytes: number;
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
interface FlowTrack {
  readonly id: string;
  readonly step: DatagramStep;
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

/** One incarnation of an EdgeNode (a restarted edge host gets a fresh one). */
interface EdgeRun {
  readonly name: string;
  readonly gen: number;
  readonly node: EdgeNode;
}

const encoder = new TextEncoder();
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

/** An endpoint key as both ends write it: IPv4-mapped IPv6 reduced to IPv4, IPv6 bracketed. */
function endpointKey(address: string, port: number): string {
  // Only an address starting with ':' can be IPv4-mapped (skips the regex for every IPv4 endpoint).
  const v4 = address.startsWith(':') ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address) : null;
  return formatIpPort(v4?.[1] ?? address, port);
}

/** The engine writes endpoints as `address:port` (IPv6 unbracketed): re-key them as `endpointKey` does. */
function splitEndpoint(text: string): string {
  const i = text.lastIndexOf(':');
  return i < 0 ? text : endpointKey(text.slice(0, i), Number(text.slice(i + 1)));
}

function linkParams(l: Omit<LinkSpec, 'between' | 'direction'>): Partial<LinkParams> {
  const p: { -readonly [K in keyof LinkParams]?: LinkParams[K] } = {};
  if (l.latency_ms !== undefined) p.latencyMs = l.latency_ms;
  if (l.jitter_ms !== undefined) p.jitterMs = l.jitter_ms;
  if (l.loss !== undefined) p.loss = l.loss;
  if (l.duplicate !== undefined) p.duplicate = l.duplicate;
  if (l.reorder !== undefined) p.reorder = l.reorder;
  if (l.bandwidth_bytes_per_ms !== undefined) p.bandwidthBytesPerMs = l.bandwidth_bytes_per_ms;
  if (l.queue_bytes !== undefined) p.queueBytes = l.queue_bytes;
  if (l.slice_max_bytes !== undefined) p.slicer = { minBytes: 1, maxBytes: l.slice_max_bytes };
  return p;
}

function headerOf(h: ProxyHeader): { version: 1 | 2; src: string; dst: string } {
  return {
    version: h.version,
    src: h.src ? endpointKey(h.src.address, h.src.port) : '',
    dst: h.dst ? endpointKey(h.dst.address, h.dst.port) : '',
  };
}

/**
 * Serves one accepted origin connection as its listener's behaviour says. With `parse_proxy` (default true) the first
 * bytes are checked for a PROXY header: decoded and reported through `onHeader` if there is one, payload otherwise;
 * `'required'` resets a connection without one and holds a banner until the header is in.
 */
function serveOrigin(conn: Conn, l: Listener, onHeader: (h: ProxyHeader) => void): void {
  const behaviour = l.behaviour as OriginBehaviour; // validation keeps the UDP behaviours off tcp:// listeners
  const mode = l.parse_proxy ?? true;
  const payload = (chunk: Uint8Array): void => originPayload(conn, behaviour, chunk);
  let reader: ProxyHeaderReader | undefined = mode === false ? undefined : new ProxyHeaderReader();
  const held: Uint8Array[] = [];
  // Handlers are methods, not arrow properties: under tsx each named arrow costs an Object.defineProperty.
  conn.setHandlers({
    data(chunk) {
      if (reader === undefined) {
        originPayload(conn, behaviour, chunk);
        return;
      }
      held.push(chunk);
      const r = reader.push(chunk);
      if (r.kind === 'incomplete') return;
      reader = undefined;
      if (r.kind === 'header') {
        onHeader(r.header);
        if (behaviour === 'banner' && mode === 'required') conn.write(encoder.encode(l.banner ?? ''));
        if (r.rest.length > 0) payload(r.rest);
      } else if (mode === 'required') conn.reset(); // a PROXY-aware server drops a connection without a header
      else for (const c of held) payload(c); // not a header: it was all payload
      held.length = 0;
    },
    drain() {
      conn.resume();
    },
    end() {
      conn.end();
    },
    error() {},
  });
  if (behaviour === 'banner' && mode !== 'required') conn.write(encoder.encode(l.banner ?? ''));
  if (behaviour === 'close') conn.end();
  conn.resume();
}

type ListenerTls = NonNullable<Listener['tls']>;
type ConnectTls = NonNullable<Extract<TimelineStep, { connect: unknown }>['connect']['tls']>;

/** A TLS origin's server side: its certificate (and the descriptors it chains through), versions, ciphers. */
function originTlsParams(spec: ListenerTls, certs: ReadonlyMap<string, CertInfo>): TlsServerParams {
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

/** A scenario client's TLS: defaults as a modern client (1.2-1.3, a broad offer); `verify` trusts the sim CAs. */
function clientTlsParams(spec: ConnectTls, dialled: string): TlsClientParams {
  return {
    servername: spec.sni,
    minVersion: spec.min_version ?? 'TLSv1.2',
    maxVersion: spec.max_version ?? 'TLSv1.3',
    ciphers: spec.ciphers ?? EDGE_CIPHERS.ciphers,
    ciphersuites: spec.ciphersuites ?? EDGE_CIPHERS.ciphersuites,
    verify: spec.verify === true ? { trust: { system: false, cas: [SIM_PUBLIC_CA, SIM_LOCAL_CA] }, checkName: spec.sni ?? dialled } : undefined,
    handshakeTimeoutMs: 10_000,
  };
}

/**
 * A TLS origin: a PROXY header, if the first bytes are one, is read in clear (as HAProxy's `accept-proxy ssl` does),
 * then the TLS session starts on what follows, and the listener's behaviour runs on the plaintext.
 */
function serveTlsOrigin(host: SimHost, conn: Conn, l: Listener, params: TlsServerParams, onHeader: (h: ProxyHeader) => void): void {
  let reader: ProxyHeaderReader | undefined = new ProxyHeaderReader();
  const held: Uint8Array[] = [];
  const start = (initial: Uint8Array[]): void => {
    conn.pause();
    const s = host.tls.server(conn, params, initial);
    serveOrigin(s.conn, { ...l, parse_proxy: false }, onHeader);
  };
  conn.setHandlers({
    data(chunk) {
      if (reader === undefined) return;
      held.push(chunk);
      const r = reader.push(chunk);
      if (r.kind === 'incomplete') return;
      reader = undefined;
      if (r.kind === 'header') {
        onHeader(r.header);
        start(r.rest.length > 0 ? [r.rest] : []);
      } else start([...held]);
    },
    error() {},
  });
  conn.resume();
}

const textDecoder = new TextDecoder();

/** A payload as a string key (latin1 keeps every byte), to tell whether a flow sent it. */
function payloadKey(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('latin1');
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
function serveUdpOrigin(sock: UdpSocket, l: Listener, flowOf: (remote: SocketAddress) => FlowTrack | undefined): void {
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

/** Whether `actual` meets an exact count or a `[min, max]` range. */
function countHolds(expected: CountExpectation, actual: number): boolean {
  return typeof expected === 'number' ? actual === expected : actual >= expected[0] && actual <= expected[1];
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  const i = Math.max(0, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.min(i, sorted.length - 1)] ?? 0;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * The edges' geolocation: each client address answers its client's `country` and `asn`. When any client has a
 * country, country data counts as loaded, so an address no client owns (or a client without one) is `XX`, as a real
 * database answers for unknown space; with none, every country answer is undefined (no country rule can match).
 */
export function topologyGeo(clients: Topology['clients']): GeoLookup {
  const byIp = new Map<string, { country: string | undefined; asn: number | undefined }>();
  for (const c of clients) for (const a of c.addresses) byIp.set(canonicalIp(a), { country: c.country, asn: c.asn });
  const anyCountry = clients.some((c) => c.country !== undefined);
  const key = (ip: string): string => canonicalIp(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip);
  return Object.freeze({
    country: (ip: string) => byIp.get(key(ip))?.country ?? (anyCountry ? 'XX' : undefined),
    asn: (ip: string) => {
      const asn = byIp.get(key(ip))?.asn;
      return asn === undefined ? undefined : { asn };
    },
  });
}

// ── the run ─────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Runs `file` (validated first: an invalid scenario throws a RefractError with the first issue's code and every
 * issue in `details.issues`). Resolves with the report; failed expectations are in `report.failures`, never thrown.
 */
export async function runScenario(file: ScenarioFile, opts: RunOptions = {}): Promise<ScenarioReport> {
  const checked = validateScenario(file);
  if (!checked.ok) {
    const first = checked.issues[0]!;
    throw new RefractError(first.code, { message: `invalid scenario: ${first.pointer || '/'}: ${first.message}`, details: { issues: checked.issues } });
  }
  const sc = checked.scenario;
  const wallStart = opts.wallClock?.() ?? 0;
  const seed = opts.seed ?? sc.seed;
  const maxMs = sc.max_time_ms ?? DEFAULT_MAX_TIME_MS;
  const sim = createSim({ seed });
  const log: Logger = pino({ level: 'silent' });
  const failures: ExpectationFailure[] = [];
  const fail = (path: string, expected: unknown, actual: unknown): void => {
    failures.push({ path, expected, actual });
  };

  // ── world ──
  const topo = sc.topology;
  const hosts = new Map<string, SimHost>();
  for (const h of [...topo.edges, ...topo.clients, ...topo.origins]) hosts.set(h.name, sim.host(h.name, { addresses: h.addresses }));
  for (const l of topo.links ?? []) sim.link(l.between[0], l.between[1], linkParams(l), { direction: l.direction ?? 'both' });
  const setDns = (d: NonNullable<Topology['dns']>[number]): void => {
    const records = d.type === 'SRV' ? d.records.map((r) => parseSrvRecord(r)!) : d.records;
    sim.dns.set(d.name, d.type, records, d.ttl);
  };
  for (const d of topo.dns ?? []) setDns(d);
  // Certificates are descriptors anchored at the run's start (validity 'expired' = ended 30 days before it).
  const startEpoch = sim.clock.epochMs();
  const certs = new Map<string, CertInfo>(
    (sc.certificates ?? []).map((c) => [
      c.id,
      simCert({ id: c.id, names: c.names, ...(c.key_type ? { keyType: c.key_type } : {}), ...(c.validity ? { validity: c.validity } : {}), ...(c.issuer ? { issuer: c.issuer } : {}) }, startEpoch),
    ]),
  );

  // ── connection tracking ──
  const tracks = new Map<string, Track>();
  const byClientAddr = new Map<string, Track>();
  const byEdgeConn = new Map<string, Track>();
  /** Upstream socket (edge side `ip:port`) → the timeline connection whose dial opened it. */
  const byUpstream = new Map<string, Track>();
  // UDP flows: by id, by the client socket's address, by the edge's flow number, by the upstream socket.
  const flowTracks = new Map<string, FlowTrack>();
  const byUdpClient = new Map<string, FlowTrack>();
  const byEdgeFlow = new Map<string, FlowTrack>();
  /** `edge host|port` of a flow's upstream socket → its timeline flow. */
  const byUpstreamUdp = new Map<string, FlowTrack>();
  /** An address an origin may see a datagram from → the edge host that owns it. */
  const edgeOfAddress = new Map<string, string>();
  for (const e of topo.edges) for (const a of hosts.get(e.name)!.addresses) edgeOfAddress.set(endpointKey(a, 0), e.name);
  const udpFlowOf = (remote: SocketAddress): FlowTrack | undefined => {
    const edge = edgeOfAddress.get(endpointKey(remote.address, 0));
    return edge === undefined ? undefined : byUpstreamUdp.get(`${edge}|${remote.port}`);
  };
  /** Every EdgeNode the run started (restarts included): UDP counters are summed over them. */
  const allNodes: EdgeNode[] = [];
  const byStatus: Record<string, number> = {};
  const hash = createHash('sha256');
  /** Trace lines not yet hashed: hashing in batches gives the same digest for a fraction of the calls. */
  let unhashed = '';
  let traceLines = 0;

  const originListen = async (name: string): Promise<void> => {
    const o = topo.origins.find((x) => x.name === name)!;
    const host = hosts.get(name)!;
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
        const tlsParams = l.tls === undefined ? undefined : originTlsParams(l.tls, certs);
        await host.listenTcp({ host: uri.value.host, port }, (conn) => {
          const t = byUpstream.get(endpointKey(conn.remote.address, conn.remote.port));
          const onHeader = (h: ProxyHeader): void => {
            if (t !== undefined) t.proxyHeader = headerOf(h);
          };
          if (tlsParams === undefined) serveOrigin(conn, l, onHeader);
          else serveTlsOrigin(host, conn, l, tlsParams, onHeader);
        });
      }
    }
  };
  for (const o of topo.origins) await originListen(o.name);
  // A black hole: the origin host is cut off from everyone, so SYNs to it vanish (the client side sees a connect
  // timeout). A `heal` of everything heals it too.
  for (const o of topo.origins) if (o.listeners.length > 0 && o.listeners.every((l) => l.behaviour === 'blackhole')) sim.isolate(o.name);

  // ── edges ──
  let apps: readonly unknown[] = sc.apps;
  let edgeSection = sc.edge;
  let accessRules: readonly unknown[] | undefined = sc.access_rules;
  const geo = topologyGeo(topo.clients);
  const edgeRuns = new Map<string, EdgeRun>();
  let generation = 0;
  let pendingDial: Track | undefined;
  /** The upstream UDP socket whose handler the engine set last: its flow's `established` record comes next. */
  let pendingUpstream: string | undefined;

  const startEdge = async (name: string, path: string): Promise<void> => {
    const host = hosts.get(name)!;
    const gen = ++generation;
    // The engine records `dial` and then calls connectTcp, synchronously: the wrapper pairs the two.
    const net: Network = {
      clock: host.clock,
      random: host.random,
      tls: host.tls,
      listenTcp: (o, cb) => host.listenTcp(o, cb),
      connectTcp: (o: ConnectTcpOptions) => {
        const c = host.connectTcp(o);
        if (pendingDial !== undefined) byUpstream.set(endpointKey(c.local.address, c.local.port), pendingDial);
        pendingDial = undefined;
        return c;
      },
      resolve: (n, t) => host.resolve(n, t),
      bindUdp: async (o) => {
        const sock = await host.bindUdp(o);
        if (o.port !== 0) return sock; // an edge port; flows' upstream sockets bind port 0
        return {
          get local() {
            return sock.local;
          },
          setHandler(h) {
            // The engine sets an upstream socket's handler and, synchronously after, records the flow's `established`.
            pendingUpstream = `${name}|${sock.local.port}`;
            sock.setHandler(h);
          },
          send: (d, port, address) => sock.send(d, port, address),
          close: () => sock.close(),
        };
      },
    };
    const cfg = edgeConfig(name, host.addresses, edgeSection, apps, accessRules);
    if (!cfg.ok) throw new Error(`edge ${name}: config became invalid: ${cfg.issues.map((i) => `${i.pointer} ${i.code}`).join(', ')}`);
    const node = new EdgeNode({ net, log, geo, certs: createSimCertSource({ epochMs: () => host.clock.epochMs(), certs: [...certs.values()] }) }, cfg.config);
    allNodes.push(node);
    const run: EdgeRun = { name, gen, node };
    const key = (conn: number): string => `${gen}#${conn}`;
    /** UDP flows are numbered apart from TCP connections; their events' ConnectionID is `u<n>`. */
    const flowKey = (connectionId: string): string => `${gen}#${connectionId}`;
    const onUdpTrace = (r: TraceRecord): void => {
      switch (r.event) {
        case 'accept': {
          const f = byUdpClient.get(splitEndpoint(String(r['client'])));
          if (f === undefined) return;
          f.edge = name;
          f.edgeFlows++;
          byEdgeFlow.set(flowKey(`u${r.conn}`), f);
          return;
        }
        case 'established': {
          const f = byEdgeFlow.get(flowKey(`u${r.conn}`));
          if (f !== undefined && pendingUpstream !== undefined) byUpstreamUdp.set(pendingUpstream, f);
          pendingUpstream = undefined;
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
    };
    node.trace.records$.subscribe((r: TraceRecord) => {
      const line = traceLine(r);
      unhashed += `${line}\n`;
      if (unhashed.length >= 65_536) {
        hash.update(unhashed);
        unhashed = '';
      }
      traceLines++;
      opts.onTrace?.(line);
      if (r['proto'] === 'udp') {
        onUdpTrace(r);
        return;
      }
      switch (r.event) {
        case 'accept': {
          const t = byClientAddr.get(splitEndpoint(String(r['client'])));
          if (t === undefined) return;
          t.edge = name;
          t.acceptAt = r.t;
          byEdgeConn.set(key(r.conn), t);
          return;
        }
        case 'dial':
          pendingDial = byEdgeConn.get(key(r.conn));
          return;
        case 'established': {
          const t = byEdgeConn.get(key(r.conn));
          if (t !== undefined) t.establishedAt = r.t;
          return;
        }
        case 'close': {
          const t = byEdgeConn.get(key(r.conn));
          if (t === undefined) return;
          t.status = Number(r['status']);
          t.reason = String(r['reason']);
          t.clientBytes = Number(r['bytes_in']);
          t.originBytes = Number(r['bytes_out']);
          return;
        }
        case 'proxy_in':
        case 'filtered':
        case 'resolved':
        case 'dial_failed':
        case 'c2s_end':
        case 's2c_end':
        case 'tls_client':
        case 'tls_client_failed':
        case 'tls_origin':
        case 'tls_origin_failed':
          return;
      }
    });
    node.events.events$.subscribe((e: SpectrumEvent) => {
      if (e.Event === 'connect') return;
      byStatus[String(e.Status)] = (byStatus[String(e.Status)] ?? 0) + 1;
      if (e.ClientProto === 'udp') {
        const f = byEdgeFlow.get(flowKey(e.ConnectionID));
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
      const t = byEdgeConn.get(key(Number(e.ConnectionID)));
      if (t === undefined) return;
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
      if (e.OriginIP !== '') t.origin = endpointKey(e.OriginIP, e.OriginPort);
    });
    edgeRuns.set(name, run);
    try {
      await node.apply(cfg.config);
    } catch (e) {
      fail(path, 'the edge applies its configuration', `${(e as { code?: string }).code ?? 'error'}: ${(e as Error).message}`);
    }
  };
  for (const e of topo.edges) await startEdge(e.name, '/apps');

  // ── clients ──
  const open = (
    id: string,
    client: string,
    to: string,
    from: string | undefined,
    halfOpen: boolean,
    onConnect?: (c: Conn) => void,
    tlsSpec?: ConnectTls,
  ): void => {
    const t: Track = {
      id,
      halfOpen,
      conn: undefined,
      kept: [],
      keptBytes: 0,
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
      tlsHeld: tlsSpec === undefined ? undefined : [],
    };
    tracks.set(id, t);
    const host = hosts.get(client)!;
    if (!host.up) {
      t.error = 'EHOSTDOWN';
      t.closedAt = sim.clock.now();
      return;
    }
    const dst = parseIpPort(to)!;
    const c = host.connectTcp({ host: dst.address, port: dst.port, ...(from === undefined ? {} : { localAddress: from }) });
    t.conn = c;
    byClientAddr.set(endpointKey(c.local.address, c.local.port), t);
    const handlers: Partial<ConnHandlers> = {
      connect() {
        if (tlsSpec === undefined) {
          onConnect?.(c);
          return;
        }
        // TLS: the session takes the raw socket over; what the timeline wrote meanwhile goes through it.
        const s = host.tls.client(c, clientTlsParams(tlsSpec, dst.address));
        t.conn = s.conn;
        s.conn.setHandlers(handlers);
        s.onDone((o) => {
          t.clientTls = o.ok ? { protocol: o.info.protocol, cipher: o.info.cipher } : { failure: o.failure.reason };
        });
        const held = t.tlsHeld ?? [];
        t.tlsHeld = undefined;
        for (const h of held) {
          if (h === 'end') s.conn.end();
          else s.conn.write(h);
        }
        onConnect?.(s.conn);
        s.conn.resume();
      },
      data(d) {
        t.receivedBytes += d.byteLength;
        if (t.keptBytes < KEEP_RECEIVED_BYTES) {
          const take = d.subarray(0, KEEP_RECEIVED_BYTES - t.keptBytes);
          t.kept.push(take);
          t.keptBytes += take.byteLength;
        }
      },
      end() {
        if (!t.halfOpen) t.conn?.end();
      },
      error(e) {
        t.error ??= e.code;
      },
      close() {
        t.closedAt = sim.clock.now();
      },
    };
    c.setHandlers(handlers);
  };

  /** Binds a flow's client socket (from `from`/`from_port`, or the defaults) and records what it receives. */
  const bindFlow = (f: FlowTrack): Promise<UdpSocket | undefined> => {
    const d = f.step;
    const host = hosts.get(d.client)!;
    f.incarnation = host.incarnation;
    if (!host.up) {
      f.error = 'EHOSTDOWN';
      return Promise.resolve(undefined);
    }
    const from = sourceAddress(host.addresses, d.to, d.from)!;
    return host.bindUdp({ host: from, port: d.from_port ?? 0 }).then(
      (sock) => {
        byUdpClient.set(endpointKey(sock.local.address, sock.local.port), f);
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
  };
  const sendDatagram = (f: FlowTrack, data: Uint8Array): void => {
    const host = hosts.get(f.step.client)!;
    if (!host.up) {
      f.error = 'EHOSTDOWN';
      return;
    }
    // A crash took the socket with it: the restarted client binds a new one (a new ephemeral port), as an app would.
    if (host.incarnation !== f.incarnation) f.sock = bindFlow(f);
    f.sock = f.sock.then((sock) => {
      if (sock === undefined) return undefined;
      f.sent.add(payloadKey(data));
      f.sentDatagrams++;
      const dst = parseIpPort(f.step.to)!;
      sock.send(data, dst.port, dst.address);
      return sock;
    });
  };
  const datagram = (d: DatagramStep): void => {
    let f = flowTracks.get(d.id);
    if (f === undefined) {
      f = {
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
      flowTracks.set(d.id, f);
      f.sock = bindFlow(f);
    }
    const flow = f;
    const data = d.text !== undefined ? encoder.encode(d.text) : filler(d.bytes ?? 0);
    const every = d.every_ms ?? DATAGRAM_DEFAULT_EVERY_MS;
    for (let k = 0; k < (d.count ?? DATAGRAM_DEFAULT_COUNT); k++) {
      if (k === 0) sendDatagram(flow, data);
      else sim.clock.setTimer(k * every, () => sendDatagram(flow, data));
    }
  };

  // ── timeline ──
  const stepPath = (i: number, action: string): string => `/timeline/${i}/${action}`;
  const runStep = async (step: TimelineStep, i: number): Promise<void> => {
    if ('connect' in step) {
      const c = step.connect;
      open(c.id, c.client, c.to, c.from, c.half_open ?? false, undefined, c.tls);
    } else if ('send' in step) {
      const t = tracks.get(step.send.id);
      const data = step.send.text !== undefined ? encoder.encode(step.send.text) : filler(step.send.bytes ?? 0);
      if (t?.tlsHeld !== undefined) t.tlsHeld.push(data); // TLS connect still in progress
      else t?.conn?.write(data); // no conn: its host was down, the track says EHOSTDOWN
    } else if ('end' in step) {
      const t = tracks.get(step.end.id);
      if (t?.tlsHeld !== undefined) t.tlsHeld.push('end');
      else t?.conn?.end();
    } else if ('reset' in step) {
      tracks.get(step.reset.id)?.conn?.reset();
    } else if ('load' in step) {
      const l = step.load;
      const every = l.every_ms ?? LOAD_DEFAULT_EVERY_MS;
      const data = filler(l.bytes ?? LOAD_DEFAULT_BYTES);
      const onConnect = (c: Conn): void => {
        if (data.byteLength > 0) c.write(data);
        c.end();
      };
      loadIds(l).forEach((id, k) => {
        if (k === 0) open(id, l.client, l.to, undefined, false, onConnect);
        else sim.clock.setTimer(k * every, () => open(id, l.client, l.to, undefined, false, onConnect));
      });
    } else if ('partition' in step) {
      sim.partition(step.partition.a, step.partition.b, { direction: step.partition.direction ?? 'both' });
    } else if ('heal' in step) {
      sim.heal(step.heal.a, step.heal.b);
    } else if ('link' in step) {
      const l = step.link;
      sim.link(l.between[0], l.between[1], linkParams(l), { direction: l.direction ?? 'both' });
    } else if ('crash' in step) {
      sim.crash(step.crash.host);
      edgeRuns.delete(step.crash.host);
    } else if ('restart' in step) {
      const name = step.restart.host;
      if (hosts.get(name)!.up) return;
      sim.restart(name);
      if (topo.origins.some((o) => o.name === name)) await originListen(name);
      if (topo.edges.some((e) => e.name === name)) await startEdge(name, stepPath(i, 'restart'));
    } else if ('reload' in step) {
      if (step.reload.apps !== undefined) apps = step.reload.apps;
      if (step.reload.edge !== undefined) edgeSection = step.reload.edge;
      if (step.reload.access_rules !== undefined) accessRules = step.reload.access_rules;
      for (const run of edgeRuns.values()) {
        const cfg = edgeConfig(run.name, hosts.get(run.name)!.addresses, edgeSection, apps, accessRules);
        if (!cfg.ok) {
          fail(stepPath(i, 'reload'), 'a valid configuration', cfg.issues.map((x) => `${x.pointer} ${x.code}`).join(', '));
          continue;
        }
        try {
          await run.node.apply(cfg.config);
        } catch (e) {
          fail(stepPath(i, 'reload'), 'the edge applies the new configuration', `${(e as { code?: string }).code ?? 'error'}: ${(e as Error).message}`);
        }
      }
    } else if ('dns' in step) {
      setDns(step.dns);
    } else if ('datagram' in step) {
      datagram(step.datagram);
    }
  };
  sc.timeline.forEach((step, i) => {
    sim.clock.setTimer(step.at - sim.clock.now(), () => {
      runStep(step, i).catch((e: unknown) => {
        const action = Object.keys(step).find((k) => k !== 'at') ?? '';
        fail(stepPath(i, action), 'the step runs', e instanceof Error ? e.message : String(e));
      });
    });
  });

  // ── run ──
  const maxSteps = opts.maxSteps ?? DEFAULT_MAX_STEPS;
  let steps = 0;
  let stoppedBy: ScenarioReport['stoppedBy'] = 'idle';
  opts.onProgress?.(0, maxMs);
  for (;;) {
    const budget = Math.min(SLICE_STEPS, maxSteps - steps);
    const r = await sim.runUntilIdleAsync({ maxSteps: budget, maxTime: Math.max(0, maxMs - sim.clock.now()) });
    steps += r.steps;
    opts.onProgress?.(sim.clock.now(), maxMs);
    if (r.idle) break;
    const next = sim.clock.nextDeadline();
    if (next === undefined) break;
    if (next > maxMs) {
      stoppedBy = 'max_time';
      break;
    }
    if (steps >= maxSteps) {
      stoppedBy = 'max_steps';
      break;
    }
  }

  // ── report ──
  const netstat = sim.netstat();
  const pendingTimers = sim.clock.pendingTimers();
  const quiescent = netstat.tcp.length === 0 && pendingTimers === 0;
  const leftOpen = netstat.tcp.slice(0, 20).map((c) => `${c.host} ${c.local}>${c.remote} ${c.state}${c.app === 'open' ? ' (app open)' : ''}`);
  const decoder = new TextDecoder();
  // Whole received texts only for the connections an expectation names; the report shows a prefix of every one.
  const texts = new Map<string, string>();
  const expected = new Set((sc.expect?.connections ?? []).map((x) => x.id));
  const connections: ConnectionReport[] = [...tracks.values()].map((t) => {
    if (expected.has(t.id)) texts.set(t.id, decoder.decode(concat(t.kept, t.keptBytes)));
    return {
      id: t.id,
      edge: t.edge ?? null,
      status: t.status ?? null,
      event: t.event ?? null,
      matched: t.matched ?? null,
      country: t.country ?? null,
      origin: t.origin ?? null,
      clientBytes: t.clientBytes,
      originBytes: t.originBytes,
      received: receivedPrefix(decoder, t.kept, t.keptBytes),
      receivedBytes: t.receivedBytes,
      reason: t.reason ?? null,
      connectMs: t.acceptAt !== undefined && t.establishedAt !== undefined ? round3(t.establishedAt - t.acceptAt) : null,
      error: t.error ?? null,
      proxyHeader: t.proxyHeader ?? null,
      closedAtMs: t.closedAt === undefined ? null : round3(t.closedAt),
      code: t.code ?? null,
      tls: t.tls ?? null,
      clientTls: t.clientTls ?? null,
    };
  });

  const flowTexts = new Map<string, readonly string[]>();
  const flows: FlowReport[] = [...flowTracks.values()].map((f) => {
    flowTexts.set(f.id, f.received);
    return {
      id: f.id,
      edge: f.edge ?? null,
      edgeFlows: f.edgeFlows,
      edgeFlowsClosed: f.edgeFlowsClosed,
      status: f.status ?? null,
      event: f.event ?? null,
      reason: f.reason ?? null,
      origin: f.origin ?? null,
      clientPackets: f.clientPackets,
      originPackets: f.originPackets,
      clientBytes: f.clientBytes,
      originBytes: f.originBytes,
      sentDatagrams: f.sentDatagrams,
      receivedDatagrams: f.receivedDatagrams,
      receivedBytes: f.receivedBytes,
      received: f.received.slice(0, REPORT_DATAGRAMS).map((t) => (t.length > REPORT_RECEIVED_CHARS ? `${t.slice(0, REPORT_RECEIVED_CHARS)}…` : t)),
      receivedForeign: f.receivedForeign,
      originDatagrams: f.originDatagrams,
      proxyHeaders: f.proxyHeaders,
      originClient: f.originClient ?? null,
      error: f.error ?? null,
    };
  });
  const udp = Object.fromEntries(UDP_COUNTER_KEYS.map((k) => [k, allNodes.reduce((n, node) => n + node.udp.stats[`udp_${k}`], 0)])) as UdpCounters;

  checkExpectations(sc, connections, texts, byStatus, quiescent, { leftOpen, pendingTimers, stoppedBy }, fail, certs);
  checkFlowExpectations(sc, flows, flowTexts, udp, fail);
  const wallMs = opts.wallClock ? opts.wallClock() - wallStart : 0;
  return {
    name: sc.name,
    seed,
    virtualMs: round3(sim.clock.now()),
    wallMs: round3(wallMs),
    steps,
    stoppedBy,
    connections,
    flows,
    udp,
    byStatus: sortedCounts(byStatus),
    failures,
    traceHash: hash.update(unhashed).digest('hex'),
    traceLines,
    quiescent,
    leftOpen: quiescent ? [] : leftOpen,
    pendingTimers,
  };
}

/**
 * The report's `received`: the text's first REPORT_RECEIVED_CHARS UTF-16 units, then `…` if there is more. Decoding
 * the first 4 units' worth of bytes per unit (plus 4) gives the same prefix as decoding everything: every 3 bytes
 * yield at least one unit, and only an incomplete sequence at the cut (≤ 3 bytes) can decode differently.
 */
function receivedPrefix(decoder: { decode(bytes: Uint8Array): string }, kept: readonly Uint8Array[], keptBytes: number): string {
  const limit = REPORT_RECEIVED_CHARS * 4 + 4;
  const n = keptBytes < limit ? keptBytes : limit;
  const bytes = new Uint8Array(n);
  let at = 0;
  for (let i = 0; i < kept.length && at < n; i++) {
    const c = kept[i]!;
    const take = c.byteLength <= n - at ? c : c.subarray(0, n - at);
    bytes.set(take, at);
    at += take.byteLength;
  }
  const text = decoder.decode(bytes);
  return text.length > REPORT_RECEIVED_CHARS ? `${text.slice(0, REPORT_RECEIVED_CHARS)}…` : text;
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function sortedCounts(m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => Number(a) - Number(b)));
}

// ── expectations ────────────────────────────────────────────────────────────────────────────────────────────────

type Fail = (path: string, expected: unknown, actual: unknown) => void;

function checkConnection(x: ConnExpectation, c: ConnectionReport, fullText: string, base: string, fail: Fail, certs: ReadonlyMap<string, CertInfo>): void {
  const cmp = (field: string, expected: unknown, actual: unknown): void => {
    if (expected !== undefined && JSON.stringify(expected) !== JSON.stringify(actual)) fail(`${base}/${field}`, expected, actual);
  };
  cmp('status', x.status, c.status);
  cmp('event', x.event, c.event);
  cmp('matched', x.matched, c.matched);
  cmp('country', x.country, c.country);
  if (x.origin !== undefined) {
    const o = parseIpPort(x.origin);
    cmp('origin', o === undefined ? x.origin : formatIpPort(o.address, o.port), c.origin);
  }
  cmp('client_bytes', x.client_bytes, c.clientBytes);
  cmp('origin_bytes', x.origin_bytes, c.originBytes);
  cmp('received', x.received, fullText);
  cmp('received_bytes', x.received_bytes, c.receivedBytes);
  cmp('close_reason', x.close_reason, c.reason);
  cmp('error_code', x.error_code, c.code);
  if (x.error !== undefined) cmp('error', x.error, c.error ?? 'none');
  if (x.closed_at_ms !== undefined) {
    const [lo, hi] = x.closed_at_ms;
    if (c.closedAtMs === null || c.closedAtMs < lo || c.closedAtMs > hi) fail(`${base}/closed_at_ms`, `closed between ${lo} and ${hi} ms`, c.closedAtMs === null ? 'still open' : c.closedAtMs);
  }
  if (x.tls !== undefined) {
    const { origin_fingerprint_of: fpOf, ...fields } = x.tls;
    for (const [k, v] of Object.entries(fields)) cmp(`tls/${k}`, v, c.tls?.[k] ?? null);
    if (fpOf !== undefined) cmp('tls/origin_fingerprint_of', certs.get(fpOf)?.fingerprint256 ?? `(no certificate ${fpOf})`, c.tls?.['origin_fingerprint'] ?? null);
  }
  if (x.client_tls !== undefined) {
    const ct = c.clientTls;
    const seen = ct === null ? {} : 'failure' in ct ? { failure: ct.failure } : { protocol: ct.protocol, cipher: ct.cipher, failure: 'none' };
    for (const [k, v] of Object.entries(x.client_tls)) cmp(`client_tls/${k}`, v, (seen as Record<string, string>)[k] ?? null);
  }
  if (x.proxy_header !== undefined) {
    const norm = (s: string): string => {
      const p = parseIpPort(s);
      return p === undefined ? s : formatIpPort(p.address, p.port);
    };
    cmp('proxy_header', { version: x.proxy_header.version, src: norm(x.proxy_header.src), dst: norm(x.proxy_header.dst) }, c.proxyHeader);
  }
}

function checkExpectations(
  sc: ScenarioFile,
  connections: readonly ConnectionReport[],
  texts: ReadonlyMap<string, string>,
  byStatus: Readonly<Record<string, number>>,
  quiescent: boolean,
  end: { leftOpen: readonly string[]; pendingTimers: number; stoppedBy: ScenarioReport['stoppedBy'] },
  fail: Fail,
  certs: ReadonlyMap<string, CertInfo>,
): void {
  const ex = sc.expect ?? {};
  const byId = new Map(connections.map((c) => [c.id, c] as const));
  ex.connections?.forEach((x, k) => {
    const c = byId.get(x.id);
    const base = `/expect/connections/${k}`;
    if (c === undefined) fail(`${base}/id`, `connection ${x.id} was opened`, 'never opened');
    else checkConnection(x, c, texts.get(x.id) ?? '', base, fail, certs);
  });
  if (ex.statuses !== undefined) {
    const keys = new Set([...Object.keys(ex.statuses), ...Object.keys(byStatus)]);
    for (const s of [...keys].sort((a, b) => Number(a) - Number(b))) {
      const want = ex.statuses[s] ?? 0;
      const got = byStatus[s] ?? 0;
      if (want !== got) fail(`/expect/statuses/${s}`, want, got);
    }
  }
  for (const [s, want] of Object.entries(ex.statuses_at_least ?? {})) {
    const got = byStatus[s] ?? 0;
    if (got < want) fail(`/expect/statuses_at_least/${s}`, `>= ${want}`, got);
  }
  if (ex.connect_ms !== undefined) {
    const ms = connections.flatMap((c) => (c.connectMs === null ? [] : [c.connectMs])).sort((a, b) => a - b);
    const check = (key: 'p50_max' | 'p99_max', p: number): void => {
      const max = ex.connect_ms?.[key];
      if (max === undefined) return;
      if (ms.length === 0) fail(`/expect/connect_ms/${key}`, `<= ${max}`, 'no connection reached an origin');
      else if (percentile(ms, p) > max) fail(`/expect/connect_ms/${key}`, `<= ${max}`, percentile(ms, p));
    };
    check('p50_max', 50);
    check('p99_max', 99);
  }
  sc.timeline.forEach((step, i) => {
    if (!('load' in step) || step.load.echo_bytes_expected !== true) return;
    const want = step.load.bytes ?? LOAD_DEFAULT_BYTES;
    const wrong = loadIds(step.load).flatMap((id) => {
      const c = byId.get(id);
      return c === undefined || c.receivedBytes !== want ? [`${id}: ${c?.receivedBytes ?? 0}`] : [];
    });
    if (wrong.length > 0) {
      const shown = wrong.slice(0, 5).join(', ') + (wrong.length > 5 ? `, … (${wrong.length} in all)` : '');
      fail(`/timeline/${i}/load/echo_bytes_expected`, `${want} bytes back on each of ${step.load.count} connections`, shown);
    }
  });
  if ((ex.quiescent ?? true) && !quiescent) {
    const why = end.stoppedBy === 'idle' ? 'connections left open' : `the run stopped at ${end.stoppedBy === 'max_time' ? 'max_time_ms' : 'the step budget'} with work pending`;
    fail('/expect/quiescent', 'no open connection and no pending timer after the run', { why, pendingTimers: end.pendingTimers, open: end.leftOpen });
  }
}

function checkFlow(x: FlowExpectation, f: FlowReport, received: readonly string[], base: string, fail: Fail): void {
  const cmp = (field: string, expected: unknown, actual: unknown): void => {
    if (expected !== undefined && JSON.stringify(expected) !== JSON.stringify(actual)) fail(`${base}/${field}`, expected, actual);
  };
  const count = (field: string, expected: CountExpectation | undefined, actual: number): void => {
    if (expected !== undefined && !countHolds(expected, actual)) fail(`${base}/${field}`, typeof expected === 'number' ? expected : `between ${expected[0]} and ${expected[1]}`, actual);
  };
  const endpoint = (s: string): string => {
    const p = parseIpPort(s);
    return p === undefined ? s : formatIpPort(p.address, p.port);
  };
  cmp('status', x.status, f.status);
  cmp('event', x.event, f.event);
  cmp('close_reason', x.close_reason, f.reason);
  count('client_packets', x.client_packets, f.clientPackets);
  count('origin_packets', x.origin_packets, f.originPackets);
  count('client_bytes', x.client_bytes, f.clientBytes);
  count('origin_bytes', x.origin_bytes, f.originBytes);
  if (x.origin !== undefined) cmp('origin', endpoint(x.origin), f.origin);
  cmp('edge_flows', x.edge_flows, f.edgeFlows);
  cmp('received', x.received, received);
  count('received_datagrams', x.received_datagrams, f.receivedDatagrams);
  count('received_bytes', x.received_bytes, f.receivedBytes);
  cmp('received_foreign', x.received_foreign, f.receivedForeign);
  count('origin_datagrams', x.origin_datagrams, f.originDatagrams);
  cmp('proxy_headers', x.proxy_headers, f.proxyHeaders);
  if (x.origin_client !== undefined) cmp('origin_client', endpoint(x.origin_client), f.originClient);
}

function checkFlowExpectations(sc: ScenarioFile, flows: readonly FlowReport[], received: ReadonlyMap<string, readonly string[]>, udp: UdpCounters, fail: Fail): void {
  const ex = sc.expect ?? {};
  const byId = new Map(flows.map((f) => [f.id, f] as const));
  ex.flows?.forEach((x, k) => {
    const f = byId.get(x.id);
    const base = `/expect/flows/${k}`;
    if (f === undefined) fail(`${base}/id`, `flow ${x.id} sent a datagram`, 'never sent');
    else checkFlow(x, f, received.get(x.id) ?? [], base, fail);
  });
  for (const key of UDP_COUNTER_KEYS) {
    const want = ex.udp?.[key];
    if (want !== undefined && !countHolds(want, udp[key])) fail(`/expect/udp/${key}`, typeof want === 'number' ? want : `between ${want[0]} and ${want[1]}`, udp[key]);
  }
}
