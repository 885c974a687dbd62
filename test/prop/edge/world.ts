/**
 * A small simulated world for the edge property suites: one EdgeNode on host `edge`, client hosts, one origin host
 * per app, the links between them, and a timeline of client actions at absolute virtual times. `runCase` executes
 * a case and reports what every party saw, per connection, then shuts everything down and reports what was left.
 *
 * The timeline uses the scenario file's step shapes (src/scenario/types.ts) and a scenario runner's scheduling:
 * every step is armed on the virtual clock before the run starts, in timeline order, so a case run here and the
 * same case written as a scenario file (to-scenario.ts) are the same run.
 *
 * Everything a scenario runner observes is done the same way here (src/scenario/runner.ts): the edge's node id is
 * its host name, clients read everything and end their side when the edge ends its side (`half_open: false`),
 * origins echo every byte (`parse_proxy: false`), a black-hole origin is isolated, and each step makes its call
 * whatever the connection's state. So the decision trace of a case here is byte-identical to the runner's.
 * One difference: `send` writes `filler()`, a pattern keyed by the connection's index and the byte offset (the
 * runner writes a–z), so that loss, duplication or reordering of bytes anywhere shows up as a mismatch.
 *
 * TLS, as the runner does it: certificates are descriptors (`certificates`, anchored at the run's start) served by
 * a sim CertSource; an app's origin with `originTls` reads a PROXY header in clear and then speaks TLS with that
 * listener spec; a `connect` step with `tls` speaks TLS to the edge once connected (writes before that are held).
 */
import { Buffer } from 'node:buffer';
import { pino } from 'pino';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { serveOrigin } from '../../../src/edge/builtin-origins.ts';
import { validateConfig } from '../../../src/model/config.ts';
import type { PortRange } from '../../../src/model/types.ts';
import type { CertInfo, Conn, ConnHandlers, Network, TcpListener, TlsClientParams, TlsServerParams } from '../../../src/net/ports.ts';
import { createSim, type LinkParams, type Netstat, type Sim } from '../../../src/net/sim/index.ts';
import { createSimCertSource, simCert, SIM_LOCAL_CA, SIM_PUBLIC_CA } from '../../../src/net/sim/sim-certs.ts';
import type { SimHost } from '../../../src/net/sim/host.ts';
import { EDGE_CIPHERS } from '../../../src/core/tls-ciphers.ts';
import { ProxyHeaderReader } from '../../../src/core/proxy-protocol.ts';
import { traceLine, type TraceRecord } from '../../../src/streams/trace.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';
import type { CertificateSpec, Topology, TlsEndpointSpec, TimelineStep } from '../../../src/scenario/types.ts';
import { originTlsParams } from '../../../src/scenario/origins.ts';

// ── the world's fixed shape ─────────────────────────────────────────────────────────────────────────────────────

export const EDGE_HOST = 'edge';
export const EDGE_IP = '203.0.113.1';
export const clientName = (i: number): string => `client-${i}`;
export const clientIp = (i: number): string => `192.0.2.${i + 1}`;
export const originName = (k: number): string => `origin-${k}`;
export const originIp = (k: number): string => `198.51.100.${k + 1}`;

/** What an app's origin host does: echo on every origin port, nothing listening (ECONNREFUSED), or SYNs vanish. */
export type OriginMode = 'echo' | 'refuse' | 'blackhole';

export interface AppCase {
  /** The Spectrum app object as an operator writes it; it goes into the scenario file as is. */
  readonly raw: Record<string, unknown>;
  readonly id: string;
  readonly edge: PortRange;
  /** Origin ports on host `originName(k)` for app k: one port (every edge port maps to it) or as many as `edge`. */
  readonly origin: PortRange;
  readonly mode: OriginMode;
  /** The app's PROXY protocol towards the origin, after validation. */
  readonly proxy: 'off' | 'v1' | 'v2';
  /** An `echo` origin that speaks TLS with this listener spec (certificate id in `cert`); absent: plain TCP. */
  readonly originTls?: OriginTlsSpec;
}

export type OriginTlsSpec = TlsEndpointSpec & { cert: string };
/** A `connect` step's `tls`: SNI, versions, ciphers, `verify` (as in a scenario file). */
export type ConnectTlsSpec = NonNullable<Extract<TimelineStep, { connect: unknown }>['connect']['tls']>;

export type LinkSpec = NonNullable<Topology['links']>[number];

export type CaseStep =
  | { at: number; connect: { id: string; client: string; to: string; tls?: ConnectTlsSpec } }
  | { at: number; send: { id: string; bytes: number } }
  | { at: number; end: { id: string } }
  | { at: number; reset: { id: string } }
  | { at: number; link: LinkSpec };

export interface EdgeCase {
  readonly seed: number;
  /** The config file's `edge:` keys besides `addresses` (timeouts). */
  readonly edge: Readonly<Record<string, unknown>>;
  readonly apps: readonly AppCase[];
  readonly clients: number;
  readonly links: readonly LinkSpec[];
  readonly timeline: readonly CaseStep[];
  /** Certificate descriptors (edge_tls.cert, listener tls.cert, edge.tls.ca_bundle name them by id). */
  readonly certificates?: readonly CertificateSpec[];
}

/** The descriptors of `specs`, anchored at `epochMs` (the run's start), as the scenario runner builds them. */
export function certificatesOf(specs: readonly CertificateSpec[] | undefined, epochMs: number): Map<string, CertInfo> {
  return new Map(
    (specs ?? []).map((c) => [
      c.id,
      simCert({ id: c.id, names: c.names, ...(c.key_type ? { keyType: c.key_type } : {}), ...(c.validity ? { validity: c.validity } : {}), ...(c.issuer ? { issuer: c.issuer } : {}) }, epochMs),
    ]),
  );
}

/** A TLS origin's server parameters: the scenario runner's own (its listeners' TLS). */
export function originServerParams(spec: OriginTlsSpec, certs: ReadonlyMap<string, CertInfo>): TlsServerParams {
  return originTlsParams(spec, certs);
}

/** A client's TLS parameters for a `connect` step's `tls`, as the runner builds them (`verify` trusts the sim CAs). */
export function clientParams(spec: ConnectTlsSpec, dialled: string): TlsClientParams {
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

/** The origin port edge port `port` of `app` reaches: origin start + P − a for a range, else the one origin port. */
export function expectedOriginPort(app: Pick<AppCase, 'edge' | 'origin'>, port: number): number {
  return app.origin.start === app.origin.end ? app.origin.start : app.origin.start + port - app.edge.start;
}

/** Byte `offset` of the filler connection `index` sends: varies with both, so misplaced bytes never look right. */
export function fillerByte(index: number, offset: number): number {
  return (offset * 31 + (offset >>> 8) * 7 + index * 101 + 13) & 0xff;
}

export function filler(index: number, offset: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = fillerByte(index, offset + i);
  return b;
}

/** A scenario link entry as simulator link parameters (a slicer cuts pieces of 1..slice_max_bytes). */
export function linkParams(l: LinkSpec): Partial<LinkParams> {
  const p: { -readonly [K in keyof LinkParams]?: LinkParams[K] } = {};
  if (l.latency_ms !== undefined) p.latencyMs = l.latency_ms;
  if (l.jitter_ms !== undefined) p.jitterMs = l.jitter_ms;
  if (l.loss !== undefined) p.loss = l.loss;
  if (l.duplicate !== undefined) p.duplicate = l.duplicate;
  if (l.reorder !== undefined) p.reorder = l.reorder;
  if (l.bandwidth_bytes_per_ms !== undefined) p.bandwidthBytesPerMs = l.bandwidth_bytes_per_ms;
  if (l.queue_bytes !== undefined) p.queueBytes = l.queue_bytes;
  if (l.slice_max_bytes !== undefined) p.slicer = { minBytes: 1, maxBytes: l.slice_max_bytes, delayMs: 0 };
  return p;
}

function applyLink(sim: Sim, l: LinkSpec): void {
  sim.link(l.between[0], l.between[1], linkParams(l), { direction: l.direction ?? 'both' });
}

// ── outcomes ────────────────────────────────────────────────────────────────────────────────────────────────────

/** One connection the origin accepted, paired with the edge connection whose dial it answers. */
export interface OriginView {
  /** `ip:port` the origin accepted on. */
  readonly listen: string;
  readonly received: Buffer;
  /** Bytes the origin wrote back. */
  readonly sent: number;
  /** A TLS origin: the bytes it read in clear before the handshake (a PROXY header), else empty. */
  readonly clear: Buffer;
  /** A TLS origin's handshake: undefined while it never finished (plain origins: undefined too). */
  readonly tls: { ok: boolean; reason?: string } | undefined;
}

/** The edge's view of one connection, from its decision trace and its Spectrum events. */
export interface EdgeView {
  readonly conn: number;
  readonly app: string;
  readonly edgePort: number;
  /** Trace event names in order (`accept`, `resolved`, `dial`, …, `close`). */
  readonly events: readonly string[];
  /** `ip:port` of each dial, in order. */
  readonly dials: readonly string[];
  readonly status: number | undefined;
  readonly reason: string | undefined;
  readonly code: string | undefined;
  readonly bytesDownstream: number | undefined;
  readonly bytesUpstream: number | undefined;
  /** Status of every closing Spectrum event (`disconnect`, `originError`, …) for this connection. */
  readonly closingStatuses: readonly number[];
  /** The last closing Spectrum event (Event, ErrorCode, TLS fields). */
  readonly closingEvent: SpectrumEvent | undefined;
  readonly origins: readonly OriginView[];
}

export interface ConnOutcome {
  readonly id: string;
  /** Position among the timeline's connections (the filler key). */
  readonly index: number;
  readonly client: number;
  readonly port: number;
  /** The client's `ip:port`. */
  readonly clientLocal: string;
  /** Bytes the client wrote (skipped sends excluded). */
  readonly clientSent: number;
  readonly clientReceived: Buffer;
  readonly clientGotEnd: boolean;
  readonly clientError: string | undefined;
  readonly clientClosed: boolean;
  /** A TLS connect: the client's handshake (undefined: plain, or it never finished). */
  readonly clientTls: { ok: true; protocol: string; cipher: string } | { ok: false; reason: string } | undefined;
  /** Timeline steps skipped because the client had already finished or closed the connection. */
  readonly skipped: number;
  /** Undefined when the edge never accepted the connection (unserved port, or the client gave up first). */
  readonly edge: EdgeView | undefined;
}

export interface WorldResult {
  readonly conns: readonly ConnOutcome[];
  /** The decision trace, one `traceLine` per record. */
  readonly trace: readonly string[];
  /** Broken harness invariants: edge connections no client made, origin connections no dial explains, … */
  readonly strays: readonly string[];
  /** The run ended with no timer left (not stopped by the step bound). */
  readonly idleAfterRun: boolean;
  readonly endTime: number;
  readonly activeAfterRun: number;
  readonly statesAfterRun: readonly string[];
  /** Timeline connections whose client side is still open after the run. */
  readonly openClientsAfterRun: readonly string[];
  /** Every host's sockets at quiescence (what the scenario runner's `quiescent` looks at). */
  readonly netstatAfterRun: Netstat;
  /** After edge shutdown, origin listeners closed and the clock run dry. */
  readonly netstat: Netstat;
  readonly pendingTimers: number;
}

interface ClientSide {
  readonly id: string;
  readonly index: number;
  readonly client: number;
  readonly port: number;
  /** The socket, or the TLS session's plaintext side once the handshake started. */
  conn: Conn;
  /** A TLS connect's writes and end before the socket connected (sent through the session, in order). */
  held: Array<Uint8Array | 'end'> | undefined;
  tls: ConnOutcome['clientTls'];
  readonly local: string;
  readonly chunks: Buffer[];
  sent: number;
  gotEnd: boolean;
  ended: boolean;
  reset: boolean;
  error: string | undefined;
  closed: boolean;
  skipped: number;
}

interface OriginConn {
  readonly listen: string;
  readonly remote: string;
  readonly chunks: Buffer[];
  sent: number;
  clear: Buffer[];
  tls: { ok: boolean; reason?: string } | undefined;
}

/**
 * A TLS origin, as the runner serves one: a PROXY header, if the first bytes are one, is read in clear, then the
 * TLS session starts on what follows and the echo runs on the plaintext.
 */
function serveTlsOrigin(host: SimHost, conn: Conn, params: TlsServerParams, rec: OriginConn): void {
  let reader: ProxyHeaderReader | undefined = new ProxyHeaderReader();
  const held: Uint8Array[] = [];
  const start = (initial: Uint8Array[]): void => {
    conn.pause();
    const s = host.tls.server(conn, params, initial);
    s.onDone((o) => {
      rec.tls = o.ok ? { ok: true } : { ok: false, reason: o.failure.reason };
    });
    serveOrigin(tapped(s.conn, rec), { behaviour: 'echo' });
  };
  conn.setHandlers({
    data(chunk) {
      if (reader === undefined) return;
      held.push(chunk);
      const r = reader.push(chunk);
      if (r.kind === 'incomplete') return;
      reader = undefined;
      if (r.kind === 'header') {
        rec.clear.push(Buffer.concat(held).subarray(0, r.header.length));
        start(r.rest.length > 0 ? [r.rest] : []);
      } else start([...held]);
    },
    error() {},
  });
  conn.resume();
}

/** A view of `conn` that records what the origin behaviour reads and writes (serveOrigin owns the handlers). */
function tapped(conn: Conn, rec: OriginConn): Conn {
  return {
    get local() {
      return conn.local;
    },
    get remote() {
      return conn.remote;
    },
    get bytesRead() {
      return conn.bytesRead;
    },
    get bytesWritten() {
      return conn.bytesWritten;
    },
    get closed() {
      return conn.closed;
    },
    setHandlers(h: Partial<ConnHandlers>) {
      conn.setHandlers(h);
      // Recorded on the way: the chunk goes on to `h`'s own data handler, called as its method.
      if (h.data !== undefined) {
        conn.setHandlers({
          data(chunk) {
            rec.chunks.push(Buffer.from(chunk));
            h.data!(chunk);
          },
        });
      }
    },
    write(chunk) {
      if (!conn.closed) rec.sent += chunk.byteLength;
      return conn.write(chunk);
    },
    end: () => conn.end(),
    destroy: () => conn.destroy(),
    reset: () => conn.reset(),
    pause: () => conn.pause(),
    resume: () => conn.resume(),
  };
}

const hostPortOf = (s: string): { host: string; port: number } => {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
};

export interface RunOptions {
  /** Bound on timers fired per phase (run, then shutdown). */
  readonly maxSteps?: number;
  /** Give the edge no certificate source (TLS apps then have no certificate: status 540). No scenario file can say this. */
  readonly noCertificates?: boolean;
}

/** Builds the world of `c`, runs its timeline to quiescence, shuts down, and reports. Throws on an invalid case. */
export async function runCase(c: EdgeCase, opts: RunOptions = {}): Promise<WorldResult> {
  const maxSteps = opts.maxSteps ?? 2_000_000;
  const sim = createSim({ seed: c.seed });
  const edgeHost = sim.host(EDGE_HOST, { addresses: [EDGE_IP] });
  const clients = Array.from({ length: c.clients }, (_, i) => sim.host(clientName(i), { addresses: [clientIp(i)] }));
  const origins = c.apps.map((_, k) => sim.host(originName(k), { addresses: [originIp(k)] }));
  for (const l of c.links) applyLink(sim, l);
  const strays: string[] = [];
  // Certificates are descriptors anchored at the run's start (validity 'expired' = ended 30 days before it).
  const certs = certificatesOf(c.certificates, sim.clock.epochMs());

  // Origins.
  const originConns: OriginConn[] = [];
  const originListeners: TcpListener[] = [];
  for (const [k, app] of c.apps.entries()) {
    if (app.mode !== 'echo') continue; // refuse: nothing listens; blackhole: isolated below
    const tlsParams = app.originTls === undefined ? undefined : originServerParams(app.originTls, certs);
    for (let p = app.origin.start; p <= app.origin.end; p++) {
      const l = await origins[k]!.listenTcp({ host: originIp(k), port: p }, (conn) => {
        const rec: OriginConn = { listen: `${conn.local.address}:${conn.local.port}`, remote: `${conn.remote.address}:${conn.remote.port}`, chunks: [], sent: 0, clear: [], tls: undefined };
        originConns.push(rec);
        if (tlsParams === undefined) serveOrigin(tapped(conn, rec), { behaviour: 'echo' });
        else serveTlsOrigin(origins[k]!, conn, tlsParams, rec);
      });
      originListeners.push(l);
    }
  }

  // A black hole is an origin host cut off from everyone: SYNs to it vanish (as the scenario runner does it).
  for (const [k, app] of c.apps.entries()) if (app.mode === 'blackhole') sim.isolate(originName(k));

  // The edge. Its Network is the edge host's, observed: each dial is tied to the trace's `dial` record that
  // immediately precedes it (the engine records, then connects, in one synchronous step).
  const v = validateConfig({ node: { id: EDGE_HOST }, edge: { addresses: [EDGE_IP], ...c.edge }, apps: c.apps.map((a) => a.raw) });
  if (!v.ok) throw new Error(`edge case has an invalid config: ${JSON.stringify(v.issues)}`);
  const records: TraceRecord[] = [];
  let dialing: number | undefined;
  const dialFrom = new Map<string, number>(); // upstream local ip:port → edge conn
  const net: Network = {
    clock: edgeHost.clock,
    random: edgeHost.random,
    tls: edgeHost.tls,
    listenTcp: (o, cb) => edgeHost.listenTcp(o, cb),
    connectTcp: (o) => {
      const conn = edgeHost.connectTcp(o);
      if (dialing === undefined) strays.push(`edge dialled ${o.host}:${o.port} without a trace 'dial' record`);
      else dialFrom.set(`${conn.local.address}:${conn.local.port}`, dialing);
      dialing = undefined;
      return conn;
    },
    resolve: (n, t) => edgeHost.resolve(n, t),
    bindUdp: (o) => edgeHost.bindUdp(o),
  };
  const certSource = opts.noCertificates === true ? undefined : createSimCertSource({ epochMs: () => edgeHost.clock.epochMs(), certs: [...certs.values()] });
  const edge = new EdgeNode({ net, log: pino({ level: 'silent' }), ...(certSource ? { certs: certSource } : {}) }, v.config);
  edge.trace.records$.subscribe((r) => {
    records.push(r);
    if (r.event === 'dial') dialing = r.conn;
  });
  const closing = new Map<number, number[]>();
  const closingEvents = new Map<number, SpectrumEvent>();
  edge.events.events$.subscribe((e) => {
    if (e.Event === 'connect') return;
    const id = Number(e.ConnectionID);
    closing.set(id, [...(closing.get(id) ?? []), e.Status]);
    closingEvents.set(id, e);
  });
  await edge.apply(v.config);

  // The timeline, armed in order before anything runs.
  const sides = new Map<string, ClientSide>();
  const act = (step: CaseStep): void => {
    if ('connect' in step) {
      const { id, client, to, tls } = step.connect;
      const ci = Number(client.slice(client.lastIndexOf('-') + 1));
      const target = hostPortOf(to);
      const host = clients[ci]!;
      const conn = host.connectTcp({ host: target.host, port: target.port });
      const side: ClientSide = {
        id, index: sides.size, client: ci, port: target.port, conn, local: `${conn.local.address}:${conn.local.port}`, held: tls === undefined ? undefined : [], tls: undefined,
        chunks: [], sent: 0, gotEnd: false, ended: false, reset: false, error: undefined, closed: false, skipped: 0,
      };
      sides.set(id, side);
      const handlers: Partial<ConnHandlers> = {
        connect: () => {
          if (tls === undefined) return;
          // TLS (as the runner): the session takes the raw socket over; what the timeline wrote meanwhile goes through it.
          const s = host.tls.client(conn, clientParams(tls, target.host));
          side.conn = s.conn;
          s.conn.setHandlers(handlers);
          s.onDone((o) => {
            side.tls = o.ok ? { ok: true, protocol: o.info.protocol, cipher: o.info.cipher } : { ok: false, reason: o.failure.reason };
          });
          const held = side.held ?? [];
          side.held = undefined;
          for (const h of held) {
            if (h === 'end') s.conn.end();
            else s.conn.write(h);
          }
          s.conn.resume();
        },
        data: (d) => side.chunks.push(Buffer.from(d)),
        end: () => {
          side.gotEnd = true;
          if (!side.ended && !side.closed) {
            side.ended = true;
            side.conn.end();
          }
        },
        error: (e) => {
          side.error ??= e.code;
        },
        close: () => {
          side.closed = true;
        },
      };
      conn.setHandlers(handlers);
      return;
    }
    if ('link' in step) {
      applyLink(sim, step.link);
      return;
    }
    const id = 'send' in step ? step.send.id : 'end' in step ? step.end.id : step.reset.id;
    const side = sides.get(id);
    if (side === undefined) throw new Error(`edge case: step on unknown connection ${id}`);
    // The calls are made whatever the state, as the scenario runner makes them (a write after end fails the
    // client socket, as in Node); the bookkeeping counts a step on a finished connection as skipped.
    const late = side.closed || side.reset || ('reset' in step ? false : side.ended);
    if (late) side.skipped++;
    if ('send' in step) {
      const data = filler(side.index, side.sent, step.send.bytes);
      if (side.held !== undefined) side.held.push(data); // TLS connect still in progress
      else side.conn.write(data);
      if (!late) side.sent += step.send.bytes;
    } else if ('end' in step) {
      side.ended = true;
      if (side.held !== undefined) side.held.push('end');
      else side.conn.end();
    } else {
      side.reset = true;
      side.conn.reset();
    }
  };
  for (const step of c.timeline) sim.clock.setTimer(step.at, () => act(step)); // times are from now (the start)

  const run = await sim.runUntilIdleAsync({ maxSteps });
  const endTime = sim.clock.now();
  const activeAfterRun = edge.tcp.activeCount;
  const statesAfterRun = edge.tcp.states();
  const openClientsAfterRun = [...sides.values()].filter((s) => !s.closed).map((s) => s.id);
  const netstatAfterRun = sim.netstat();

  // Shutdown: the edge stops, origins stop listening, the kernel finishes its goodbyes.
  const stopped = edge.shutdown(0);
  await Promise.all(originListeners.map((l) => l.close()));
  await sim.runUntilIdleAsync({ maxSteps });
  await stopped;

  // Assemble the per-connection view.
  const byConn = new Map<number, TraceRecord[]>();
  for (const r of records) byConn.set(r.conn, [...(byConn.get(r.conn) ?? []), r]);
  const originsByConn = new Map<number, OriginView[]>();
  for (const o of originConns) {
    const conn = dialFrom.get(o.remote);
    if (conn === undefined) {
      strays.push(`origin accepted ${o.remote}→${o.listen}, which no edge dial explains`);
      continue;
    }
    originsByConn.set(conn, [...(originsByConn.get(conn) ?? []), { listen: o.listen, received: Buffer.concat(o.chunks), sent: o.sent, clear: Buffer.concat(o.clear), tls: o.tls }]);
  }
  const bySide = new Map<string, ClientSide>([...sides.values()].map((s) => [s.local, s]));
  const edgeOf = new Map<string, EdgeView>();
  for (const [conn, rs] of byConn) {
    const accept = rs.find((r) => r.event === 'accept');
    const close = rs.find((r) => r.event === 'close');
    const client = typeof accept?.['client'] === 'string' ? accept['client'] : '';
    const side = bySide.get(client);
    if (accept === undefined || side === undefined) {
      strays.push(`edge connection ${conn} (client ${client || '?'}) matches no timeline connection`);
      continue;
    }
    edgeOf.set(side.id, {
      conn,
      app: accept.app,
      edgePort: hostPortOf(String(accept['edge'])).port,
      events: rs.map((r) => r.event),
      dials: rs.filter((r) => r.event === 'dial').map((r) => String(r['upstream'])),
      status: close?.['status'] as number | undefined,
      reason: close?.['reason'] as string | undefined,
      code: close?.['code'] as string | undefined,
      bytesDownstream: close?.['bytes_in'] as number | undefined,
      bytesUpstream: close?.['bytes_out'] as number | undefined,
      closingStatuses: closing.get(conn) ?? [],
      closingEvent: closingEvents.get(conn),
      origins: originsByConn.get(conn) ?? [],
    });
  }

  const conns: ConnOutcome[] = [...sides.values()].map((s) => ({
    id: s.id,
    index: s.index,
    client: s.client,
    port: s.port,
    clientLocal: s.local,
    clientSent: s.sent,
    clientReceived: Buffer.concat(s.chunks),
    clientGotEnd: s.gotEnd,
    clientError: s.error,
    clientClosed: s.closed,
    clientTls: s.tls,
    skipped: s.skipped,
    edge: edgeOf.get(s.id),
  }));
  return {
    conns,
    trace: records.map(traceLine),
    strays,
    idleAfterRun: run.idle,
    endTime,
    activeAfterRun,
    statesAfterRun,
    openClientsAfterRun,
    netstatAfterRun,
    netstat: sim.netstat(),
    pendingTimers: sim.clock.pendingTimers(),
  };
}
