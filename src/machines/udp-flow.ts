/**
 * The UDP flow engine: demultiplexes datagrams arriving on an edge UDP socket into flows keyed by
 * (client ip, client port, edge ip, edge port), one `udpFlow` machine per flow, each with its own upstream socket
 * (its own ephemeral port, so the origin's replies find the right client).
 *
 * Per datagram the engine does a Map lookup by client port in the edge socket's own index (no string key is built),
 * optional header prepend (PROXY v2 on the first datagram of the flow,
 * SPP on every one), a size check (never fragment) and one send — no machine event, no RxJS `next`. A datagram
 * with no flow goes to `openings$` (udp-inputs.ts), where admission (src/core/admission.ts) decides whether it opens
 * one; the machines hear only the streams of udp-inputs.ts. Outcomes come from src/core/outcomes.ts.
 */
import { Subject, type Observable, type Subscription } from 'rxjs';
import { MachineHost, type HostedInstance } from './host.ts';
import { udpFlowMachine, type UdpFlowActionName, type UdpFlowEvent } from './udp-flow.machine.ts';
import type { Cancel, Datagram, SocketAddress, UdpSocket } from '../net/ports.ts';
import { encodeProxyV2 } from '../core/proxy-protocol.ts';
import { encodeSppHeader, hasSppHeader, SPP_HEADER_LENGTH } from '../core/spp.ts';
import { accessVerdict } from '../core/admission.ts';
import { admitClient, ClientLimiter, releaseClient, type ClientHold } from '../core/client-limits.ts';
import { DEFAULTS } from '../model/defaults.ts';
import { OUTCOMES, udpOpenFailedOutcome, type Outcome } from '../core/outcomes.ts';
import { isRefractError, type ErrorCode } from '../model/errors.ts';
import type { AppSpec, NodeSettings, UpstreamTarget } from '../model/types.ts';
import type { SpectrumEventName } from '../model/outcome.ts';
import { IdleWaiters, NO_TLS_FIELDS } from '../streams/events.ts';
import type { TraceEventName } from '../streams/trace.ts';
import type { ClientMatchedIpFirewall } from '../core/access-rules.ts';
import type { TcpEngineDeps } from './tcp-env.ts';
import { spectrumEvent } from './spectrum-event.ts';
import { UdpInputs, type FlowOpening } from './udp-inputs.ts';
import type { MachineStateChange } from './tcp-connection.ts';

/** Datagrams held per flow while its upstream socket opens; more are dropped (and counted). */
const MAX_QUEUED = 64;

const EV_READY = { type: 'UPSTREAM.READY' } as const;
const EV_IDLE = { type: 'FLOW.IDLE' } as const;
const EV_DRAIN_DEADLINE = { type: 'FLOW.DRAIN_DEADLINE' } as const;
const EV_FILTERED = { type: 'FLOW.FILTERED' } as const;
const EV_ABORT = { type: 'FLOW.ABORT' } as const;

/** The same environment as the TCP engine (see `TcpEngineDeps`). */
export type UdpEngineDeps = TcpEngineDeps;

export interface UdpStats {
  udp_flows_total: number;
  udp_flows_active: number;
  udp_flows_refused_cap: number;
  /** Datagrams that would have opened a flow past the client's `per_ip_connections` / `per_ip_new_per_second`. */
  udp_flows_refused_client_connections: number;
  udp_flows_refused_client_rate: number;
  udp_dgrams_no_app: number;
  udp_dgrams_ip_blocked: number;
  udp_dgrams_oversize: number;
  udp_dgrams_queue_full: number;
  udp_dgrams_from_unexpected_source: number;
  udp_spp_reply_invalid: number;
  udp_dgrams_downstream: number;
  udp_dgrams_upstream: number;
}

/** An edge socket and the app that serves it now (swapped in place on reload). */
export interface UdpSlot {
  app: AppSpec | undefined;
  readonly sock: UdpSocket;
}

/**
 * The open flows of one edge socket (`UdpSlot`), by client port: the edge side of a flow's key is the socket's, so
 * a datagram finds its flow by a number and, for the rare flows of several client addresses on one port, a walk
 * along `samePort` comparing addresses. No key string is built per datagram.
 */
type FlowIndex = Map<number, FlowRecord>;

function findFlow(index: FlowIndex, address: string, port: number): FlowRecord | undefined {
  let r = index.get(port);
  while (r !== undefined && r.client.address !== address) r = r.samePort;
  return r;
}

function addFlow(index: FlowIndex, r: FlowRecord): void {
  r.samePort = index.get(r.client.port);
  index.set(r.client.port, r);
}

function removeFlow(index: FlowIndex, r: FlowRecord): void {
  const head = index.get(r.client.port);
  if (head === r) {
    if (r.samePort === undefined) index.delete(r.client.port);
    else index.set(r.client.port, r.samePort);
    return;
  }
  for (let p = head; p !== undefined; p = p.samePort) {
    if (p.samePort === r) {
      p.samePort = r.samePort;
      return;
    }
  }
}

interface FlowRecord extends HostedInstance<FlowRecord, UdpFlowEvent> {
  readonly id: number;
  /** The edge socket's index the flow is in, and the next flow in it with the same client port. */
  readonly index: FlowIndex;
  samePort: FlowRecord | undefined;
  readonly app: AppSpec;
  readonly slot: UdpSlot;
  readonly client: SocketAddress;
  readonly edge: SocketAddress;
  readonly settings: NodeSettings;
  readonly acceptedAt: number;
  target: UpstreamTarget | undefined;
  up: UdpSocket | undefined;
  /** The access rule kind that closed the flow (refilter); UNKNOWN otherwise. */
  matched: ClientMatchedIpFirewall;
  queue: Uint8Array[] | undefined;
  sppHeader: Uint8Array | undefined;
  sentFirst: boolean;
  last: number;
  idleCancel: Cancel | undefined;
  drainCancel: Cancel | undefined;
  /** Datagrams and payload bytes that came from the client (downstream) and from the origin (upstream). */
  dgramsDownstream: number;
  dgramsUpstream: number;
  bytesDownstream: number;
  bytesUpstream: number;
  /** How the flow ends (set by the action that leads to `closed`). */
  outcome: Outcome;
  code: ErrorCode | '';
  /** What the per-client limiter counts for the flow, given back at close. */
  limitHold: ClientHold | undefined;
}


export class UdpEngine {
  readonly #deps: UdpEngineDeps;
  readonly #limiter: ClientLimiter;
  readonly #host: MachineHost<FlowRecord, UdpFlowEvent>;
  /** Every open flow, in opening order (the order drain, abort and refilter visit them). */
  readonly #flows = new Set<FlowRecord>();
  /** Each edge socket's flows by client port (one index per slot, kept if the slot is attached again). */
  readonly #indexes = new WeakMap<UdpSlot, FlowIndex>();
  /** Open flows per app id (for the per-app cap). */
  readonly #perApp = new Map<string, number>();
  #nextId = 1;
  readonly #idle = new IdleWaiters();
  readonly #inputs = new UdpInputs<FlowRecord, UdpSlot, FlowIndex>();
  readonly #feed: Subscription;
  readonly #open: Subscription;
  readonly #states = new Subject<MachineStateChange>();
  /** Machine state changes of every flow; nothing is built while nobody subscribes. */
  readonly states$: Observable<MachineStateChange> = this.#states.asObservable();
  readonly stats: UdpStats = {
    udp_flows_total: 0,
    udp_flows_active: 0,
    udp_flows_refused_cap: 0,
    udp_flows_refused_client_connections: 0,
    udp_flows_refused_client_rate: 0,
    udp_dgrams_no_app: 0,
    udp_dgrams_ip_blocked: 0,
    udp_dgrams_oversize: 0,
    udp_dgrams_queue_full: 0,
    udp_dgrams_from_unexpected_source: 0,
    udp_spp_reply_invalid: 0,
    udp_dgrams_downstream: 0,
    udp_dgrams_upstream: 0,
  };

  constructor(deps: UdpEngineDeps) {
    this.#deps = deps;
    this.#limiter = deps.limiter ?? new ClientLimiter(DEFAULTS.limitsMaxTrackedClients);
    const impl: Record<UdpFlowActionName, (r: FlowRecord, e: UdpFlowEvent) => void> = {
      openUpstream: (r) => this.#openUpstream(r),
      startRelay: (r) => this.#startRelay(r),
      recordUpstreamFailed: (r, e) => {
        const code = e.type === 'UPSTREAM.FAILED' ? e.code : 'E_UPSTREAM_CONNECT_FAILED';
        this.#end(r, udpOpenFailedOutcome(code), code);
      },
      recordIdle: (r) => this.#end(r, OUTCOMES.idle_timeout),
      recordDrainDeadline: (r) => this.#end(r, OUTCOMES.drain_deadline),
      recordFiltered: (r) => this.#end(r, OUTCOMES.ip_firewall),
      recordAbort: (r) => this.#end(r, OUTCOMES.aborted),
      finish: (r) => this.#finish(r),
    };
    const states = this.#states;
    this.#host = new MachineHost<FlowRecord, UdpFlowEvent>(udpFlowMachine, {
      clock: deps.clock,
      impl,
      delayMs: (_r, name) => {
        throw new Error(`udpFlow: unknown delay ${name}`);
      },
      onTransition: (r, from, to, e) => {
        if (states.observed) states.next({ t: deps.clock.now(), proto: 'udp', conn: r.id, app: r.app.id, from, to, event: e.type });
      },
    });
    // The machines are fed here, and only here; flows are opened here too.
    const host = this.#host;
    this.#feed = this.#inputs.all$.subscribe((input) => host.send(input.rec, input.event));
    this.#open = this.#inputs.openings$.subscribe((o) => this.#onOpening(o));
  }

  /** Stops feeding the machines and completes `states$` (after the last flow closed). */
  dispose(): void {
    this.#feed.unsubscribe();
    this.#open.unsubscribe();
    this.#inputs.complete();
    this.#states.complete();
  }

  get activeCount(): number {
    return this.#flows.size;
  }

  /** State (`stateOf`) and app id of each open flow, for the API's live counts (never per datagram). */
  appStates(): Array<{ readonly app: string | undefined; readonly state: string }> {
    return [...this.#flows.values()].map((r) => ({ app: r.app.id, state: this.#host.stateOf(r) }));
  }

  /** Starts demultiplexing the datagrams of an edge socket. */
  attach(slot: UdpSlot): void {
    let index = this.#indexes.get(slot);
    if (index === undefined) this.#indexes.set(slot, (index = new Map()));
    const idx = index;
    slot.sock.setHandler((msg) => this.#onClientDatagram(slot, idx, msg));
  }

  drain(appIds: ReadonlySet<string> | undefined, deadlineMs: number): void {
    this.#drainWhere((r) => !appIds || appIds.has(r.app.id), deadlineMs);
  }

  /** Starts draining the flows of the given edge sockets, whatever their app (see `TcpEngine.drainListeners`). */
  drainSlots(slots: ReadonlySet<UdpSlot>, deadlineMs: number): void {
    this.#drainWhere((r) => slots.has(r.slot), deadlineMs);
  }

  /** Arms the drain deadline of every flow `which` picks (once: an armed one keeps its deadline). */
  #drainWhere(which: (r: FlowRecord) => boolean, deadlineMs: number): void {
    const control$ = this.#inputs.control$;
    for (const r of this.#flows) {
      if (r.drainCancel || !which(r)) continue;
      r.drainCancel = this.#deps.clock.setTimer(deadlineMs, () => {
        r.drainCancel = undefined;
        control$.signal(r, EV_DRAIN_DEADLINE);
      });
    }
  }

  abortAll(): void {
    for (const r of [...this.#flows.values()]) this.#inputs.control$.signal(r, EV_ABORT);
  }

  /**
   * Re-applies the (new) access rules to the open flows of ip_firewall apps and closes those now blocked
   * (`clientFiltered` 403, `ip_firewall`), as `TcpEngine.refilter` does for connections. Used only when
   * `edge.close_blocked_connections` is on; returns how many were closed. Later datagrams from the client meet the
   * new rules before any flow exists, so they are dropped and counted.
   */
  refilter(): number {
    let n = 0;
    for (const r of [...this.#flows.values()]) {
      if (!r.app.ipFirewall) continue;
      const { rules, geo } = this.#deps.access(r.app);
      if (rules.size === 0) continue;
      const d = accessVerdict(true, rules, geo, r.client.address).decision;
      if (d?.action !== 'block') continue;
      r.matched = d.matched;
      n++;
      this.#trace(r, 'filtered', { matched: d.matched, rule: d.ruleId ?? '' });
      this.#inputs.control$.signal(r, EV_FILTERED);
    }
    return n;
  }

  whenIdle(): Promise<void> {
    return this.#idle.wait(this.#flows.size);
  }

  #trace(r: FlowRecord, event: TraceEventName, detail?: Record<string, unknown>): void {
    const tr = this.#deps.trace;
    if (!tr || !tr.enabled) return;
    tr.record({ t: this.#deps.clock.now(), node: r.settings.id, app: r.app.id, conn: r.id, event, proto: 'udp', ...detail });
  }

  // ── the datagram path ────────────────────────────────────────────────────────────────────────────────────────

  #onClientDatagram(slot: UdpSlot, index: FlowIndex, msg: Datagram): void {
    const r = findFlow(index, msg.remote.address, msg.remote.port);
    if (r) this.#forward(r, msg);
    // Only an admitted datagram becomes a `next`: a flood from a blocked range costs a counter, not a stream value.
    else {
      const hold = this.#admits(slot, msg);
      if (hold !== false) this.#inputs.openings$.next({ slot, index, msg, hold });
    }
  }

  /**
   * Admission of a datagram with no flow: an app, the access rules, the flow caps, the per-client limits. Refusals
   * are counted; an admitted datagram's client is counted by the limiter (the hold, undefined without limits).
   */
  #admits(slot: UdpSlot, msg: Datagram): ClientHold | undefined | false {
    const app = slot.app;
    if (!app) {
      this.stats.udp_dgrams_no_app++;
      return false;
    }
    if (app.ipFirewall) {
      // Rules run before any flow state or upstream work; a blocked client's datagrams are dropped and counted
      // (no event per datagram: a flood from a blocked range must not flood the event log too).
      const { rules, geo } = this.#deps.access(app);
      if (rules.size > 0 && accessVerdict(true, rules, geo, msg.remote.address).blocked) {
        this.stats.udp_dgrams_ip_blocked++;
        return false;
      }
    }
    const settings = this.#deps.settings();
    const appFlows = this.#perApp.get(app.id) ?? 0;
    if (this.#flows.size >= settings.udpMaxFlows || (app.udpMaxFlows !== undefined && appFlows >= app.udpMaxFlows)) {
      // Policy: existing flows keep working; a new flow past the cap is refused (its datagrams dropped).
      if (this.stats.udp_flows_refused_cap++ % 1000 === 0) {
        this.#deps.log.warn(
          { app: app.id, appName: app.dns.name, nodeCap: settings.udpMaxFlows, appCap: app.udpMaxFlows, refused: this.stats.udp_flows_refused_cap },
          'UDP flow cap reached; new flows are refused',
        );
      }
      return false;
    }
    const res = admitClient(this.#limiter, settings.limits, app.limits, app.id, msg.remote.address, this.#deps.clock.now());
    if (res.verdict !== 'ok') {
      const n = res.verdict === 'connections' ? ++this.stats.udp_flows_refused_client_connections : ++this.stats.udp_flows_refused_client_rate;
      if (n % 1000 === 1) {
        this.#deps.log.warn(
          { app: app.id, appName: app.dns.name, limit: res.verdict === 'connections' ? 'per_ip_connections' : 'per_ip_new_per_second', refused: n },
          'per-client limit reached; datagrams that would open a new flow are dropped',
        );
      }
      return false;
    }
    return res.hold;
  }

  /** An admitted datagram opens its flow (`openings$`), which forwards it. */
  #onOpening({ slot, index, msg, hold }: FlowOpening<UdpSlot, FlowIndex>): void {
    const r = this.#newFlow(index, slot, slot.app!, msg.remote, slot.sock.local, this.#deps.settings());
    r.limitHold = hold;
    this.#forward(r, msg);
  }

  #forward(r: FlowRecord, msg: Datagram): void {
    r.last = this.#deps.clock.now();
    r.dgramsDownstream++;
    r.bytesDownstream += msg.data.length;
    if (r.up) this.#sendUpstream(r, msg.data);
    else if (r.queue && r.queue.length < MAX_QUEUED) r.queue.push(msg.data);
    else this.stats.udp_dgrams_queue_full++;
  }

  #newFlow(index: FlowIndex, slot: UdpSlot, app: AppSpec, client: SocketAddress, edge: SocketAddress, settings: NodeSettings): FlowRecord {
    const clock = this.#deps.clock;
    const r: FlowRecord = {
      _node: undefined!,
      _timers: undefined,
      _queue: undefined,
      _busy: false,
      id: this.#nextId++,
      index,
      samePort: undefined,
      app,
      slot,
      client,
      edge,
      settings,
      acceptedAt: clock.now(),
      target: undefined,
      up: undefined,
      matched: 'UNKNOWN',
      queue: [],
      sppHeader:
        app.proxyProtocol === 'simple'
          ? encodeSppHeader({ client: { address: client.address, port: client.port }, proxy: { address: edge.address, port: edge.port } })
          : undefined,
      sentFirst: false,
      last: clock.now(),
      idleCancel: undefined,
      drainCancel: undefined,
      dgramsDownstream: 0,
      dgramsUpstream: 0,
      bytesDownstream: 0,
      bytesUpstream: 0,
      outcome: OUTCOMES.normal,
      code: '',
      limitHold: undefined,
    };
    this.#flows.add(r);
    addFlow(index, r);
    this.#perApp.set(app.id, (this.#perApp.get(app.id) ?? 0) + 1);
    this.stats.udp_flows_total++;
    this.stats.udp_flows_active++;
    this.#trace(r, 'accept', { client: `${client.address}:${client.port}`, edge: `${edge.address}:${edge.port}` });
    this.#emit(r, 'connect', 0);
    this.#host.start(r);
    return r;
  }

  #sendUpstream(r: FlowRecord, data: Uint8Array): void {
    const t = r.target!;
    let out = data;
    if (r.sppHeader) {
      out = new Uint8Array(SPP_HEADER_LENGTH + data.length);
      out.set(r.sppHeader, 0);
      out.set(data, SPP_HEADER_LENGTH);
    } else if (r.app.proxyProtocol === 'v2' && !r.sentFirst) {
      const family = r.client.family === r.edge.family ? r.client.family : 'IPv6';
      const v6 = (a: SocketAddress): string => (a.family === 'IPv4' && family === 'IPv6' ? `::ffff:${a.address}` : a.address);
      const header = encodeProxyV2(
        { family, src: { address: v6(r.client), port: r.client.port }, dst: { address: v6(r.edge), port: r.edge.port } },
        { transport: 'dgram' },
      );
      out = new Uint8Array(header.length + data.length);
      out.set(header, 0);
      out.set(data, header.length);
    }
    if (out.length > r.settings.udpMaxDatagramBytes) {
      this.stats.udp_dgrams_oversize++;
      return; // never fragment; a v2 header not sent yet goes on the next datagram that fits
    }
    r.sentFirst = true;
    this.stats.udp_dgrams_upstream++;
    r.up!.send(out, t.port, t.host);
  }

  #onOriginDatagram(r: FlowRecord, msg: Datagram): void {
    const t = r.target!;
    if (msg.remote.port !== t.port || msg.remote.address !== t.host) {
      this.stats.udp_dgrams_from_unexpected_source++;
      return;
    }
    let payload = msg.data;
    if (r.sppHeader) {
      if (!hasSppHeader(payload, r.sppHeader)) {
        this.stats.udp_spp_reply_invalid++;
        return;
      }
      payload = payload.subarray(SPP_HEADER_LENGTH);
    }
    r.last = this.#deps.clock.now();
    r.dgramsUpstream++;
    r.bytesUpstream += payload.length;
    this.stats.udp_dgrams_downstream++;
    r.slot.sock.send(payload, r.client.port, r.client.address);
  }

  // ── actions ──────────────────────────────────────────────────────────────────────────────────────────────────

  #openUpstream(r: FlowRecord): void {
    const upstream$ = this.#inputs.upstream$;
    const fail = (e: unknown): void => {
      const errno = (e as { code?: unknown } | undefined)?.code;
      const emfile = errno === 'EMFILE' || errno === 'ENFILE';
      const code: ErrorCode = isRefractError(e) ? e.code : emfile ? 'E_UPSTREAM_EMFILE' : 'E_UPSTREAM_CONNECT_FAILED';
      // Out of descriptors: the real network logs one line per episode (src/net/node/descriptors.ts).
      if (emfile) this.#deps.log.debug({ app: r.app.id, appName: r.app.dns.name, flow: r.id, code, err: e }, 'UDP flow could not open its upstream');
      else if (this.#deps.logLimit?.allow('udp.upstream_failed') !== false) {
        this.#deps.log.warn({ app: r.app.id, appName: r.app.dns.name, flow: r.id, code, err: e }, 'UDP flow could not open its upstream');
      }
      upstream$.signal(r, { type: 'UPSTREAM.FAILED', code, detail: e instanceof Error ? e.message : String(e) });
    };
    const bind = (targets: readonly UpstreamTarget[]): void => {
      const t = targets[0];
      if (!t) {
        fail(new Error('no origin target'));
        return;
      }
      r.target = t;
      this.#deps.net.bindUdp({ host: t.family === 'IPv6' ? '::' : '0.0.0.0', port: 0 }).then((sock) => {
        if (this.#host.isDone(r)) {
          sock.close();
          return;
        }
        r.up = sock;
        sock.setHandler((m) => this.#onOriginDatagram(r, m));
        upstream$.signal(r, EV_READY);
      }, fail);
    };
    let res: readonly UpstreamTarget[] | Promise<readonly UpstreamTarget[]>;
    try {
      res = this.#deps.targets(r.app, r.edge.port);
    } catch (e) {
      fail(e);
      return;
    }
    if (Array.isArray(res)) bind(res as readonly UpstreamTarget[]);
    else (res as Promise<readonly UpstreamTarget[]>).then(bind, fail);
  }

  #startRelay(r: FlowRecord): void {
    const t = r.target!;
    this.#trace(r, 'established', { upstream: `${t.host}:${t.port}`, proxy_protocol: r.app.proxyProtocol });
    const q = r.queue ?? [];
    r.queue = undefined;
    for (const d of q) this.#sendUpstream(r, d);
    const idleMs = r.app.idleTimeoutMs ?? r.settings.udpIdleTimeoutMs;
    const check = (): void => {
      r.idleCancel = undefined;
      const remaining = r.last + idleMs - this.#deps.clock.now();
      if (remaining > 0) r.idleCancel = this.#deps.clock.setTimer(remaining, check);
      else this.#inputs.relay$.signal(r, EV_IDLE);
    };
    r.idleCancel = this.#deps.clock.setTimer(idleMs, check);
  }

  /** Records how the flow ends; `finish` (the final state's entry) acts on it. */
  #end(r: FlowRecord, outcome: Outcome, code: ErrorCode | '' = outcome.code): void {
    r.outcome = outcome;
    r.code = code;
  }

  #finish(r: FlowRecord): void {
    r.idleCancel?.();
    r.drainCancel?.();
    r.idleCancel = r.drainCancel = undefined;
    r.up?.close();
    r.queue = undefined;
    this.#flows.delete(r);
    removeFlow(r.index, r);
    if (r.limitHold) {
      releaseClient(this.#limiter, r.limitHold, this.#deps.clock.now());
      r.limitHold = undefined;
    }
    const left = (this.#perApp.get(r.app.id) ?? 1) - 1;
    if (left > 0) this.#perApp.set(r.app.id, left);
    else this.#perApp.delete(r.app.id);
    this.stats.udp_flows_active--;
    const o = r.outcome;
    this.#trace(r, 'close', {
      status: o.status,
      reason: o.reason,
      code: r.code,
      bytes_in: r.bytesDownstream,
      bytes_out: r.bytesUpstream,
      dgrams_in: r.dgramsDownstream,
      dgrams_out: r.dgramsUpstream,
    });
    this.#emit(r, o.event, o.status);
    this.#idle.notify(this.#flows.size);
  }

  #emit(r: FlowRecord, name: SpectrumEventName, status: number): void {
    const events = this.#deps.events;
    if (!events.observedFor(name)) return;
    events.emit(
      spectrumEvent(this.#deps.clock, name, status, {
        proto: 'udp',
        connectionId: `u${r.id}`,
        app: r.app,
        client: r.client,
        edge: r.edge,
        upstream: r.target,
        bytesDownstream: r.bytesDownstream,
        bytesUpstream: r.bytesUpstream,
        matched: r.matched,
        // UDP flows are not looked up in the geo data unless rules need it; their events carry no country or ASN.
        country: '',
        asn: 0,
        acceptedAt: r.acceptedAt,
        connectedEpoch: 0,
        colo: r.settings.id,
        reason: r.outcome.reason,
        code: r.code,
        tls: NO_TLS_FIELDS,
        packets: { downstream: r.dgramsDownstream, upstream: r.dgramsUpstream },
      }),
    );
  }
}
