/**
 * The UDP flow engine: demultiplexes datagrams arriving on an edge UDP socket into flows keyed by
 * (client ip, client port, edge ip, edge port), one `udpFlow` machine per flow, each with its own upstream socket
 * (its own ephemeral port, so the origin's replies find the right client).
 *
 * Per datagram the engine does a Map lookup, optional header prepend (PROXY v2 on the first datagram of the flow,
 * SPP on every one), a size check (never fragment) and one send — no machine event, no RxJS `next`.
 */
import { MachineHost, type HostedInstance } from './host.ts';
import { udpFlowMachine, type UdpFlowActionName, type UdpFlowEvent } from './udp-flow.machine.ts';
import type { Cancel, Datagram, SocketAddress, UdpSocket } from '../net/ports.ts';
import { encodeProxyV2 } from '../core/proxy-protocol.ts';
import { encodeSppHeader, hasSppHeader, SPP_HEADER_LENGTH } from '../core/spp.ts';
import { isRefractError, type ErrorCode } from '../model/errors.ts';
import type { AppSpec, NodeSettings } from '../model/types.ts';
import { IdleWaiters, NO_TLS_FIELDS, rfc3339, type CloseReason, type SpectrumEvent, type SpectrumEventName } from '../streams/events.ts';
import type { TraceEventName } from '../streams/trace.ts';
import type { TcpEngineDeps, UpstreamTarget } from './tcp-connection.ts';
import { decide, type ClientMatchedIpFirewall } from '../core/access-rules.ts';

/** Datagrams held per flow while its upstream socket opens; more are dropped (and counted). */
const MAX_QUEUED = 64;

/** The same environment as the TCP engine (see `TcpEngineDeps`). */
export type UdpEngineDeps = TcpEngineDeps;

export interface UdpStats {
  udp_flows_total: number;
  udp_flows_active: number;
  udp_flows_refused_cap: number;
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

interface FlowRecord extends HostedInstance<FlowRecord, UdpFlowEvent> {
  readonly id: number;
  readonly key: string;
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
  dgramsIn: number;
  dgramsOut: number;
  bytesIn: number;
  bytesOut: number;
  status: number;
  eventName: SpectrumEventName;
  reason: CloseReason;
  code: ErrorCode | '';
}


export class UdpEngine {
  readonly #deps: UdpEngineDeps;
  readonly #host: MachineHost<FlowRecord, UdpFlowEvent>;
  readonly #flows = new Map<string, FlowRecord>();
  /** Open flows per app id (for the per-app cap). */
  readonly #perApp = new Map<string, number>();
  #nextId = 1;
  readonly #idle = new IdleWaiters();
  readonly stats: UdpStats = {
    udp_flows_total: 0,
    udp_flows_active: 0,
    udp_flows_refused_cap: 0,
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
    const impl: Record<UdpFlowActionName, (r: FlowRecord, e: UdpFlowEvent) => void> = {
      openUpstream: (r) => this.#openUpstream(r),
      startRelay: (r) => this.#startRelay(r),
      recordUpstreamFailed: (r, e) => {
        const code = e.type === 'UPSTREAM.FAILED' ? e.code : 'E_UPSTREAM_CONNECT_FAILED';
        if (code === 'E_UPSTREAM_RESOLVE_FAILED') this.#end(r, 'resolveOrigin', 531, 'resolve_failed', code);
        else this.#end(r, 'originError', 520, 'connect_failed', code);
      },
      recordIdle: (r) => this.#end(r, 'disconnect', 200, 'idle_timeout', 'E_IDLE_TIMEOUT'),
      recordDrainDeadline: (r) => this.#end(r, 'disconnect', 200, 'drain_deadline', 'E_DRAIN_DEADLINE'),
      recordFiltered: (r) => this.#end(r, 'clientFiltered', 403, 'ip_firewall', 'E_RULE_BLOCKED'),
      recordAbort: (r) => this.#end(r, 'disconnect', 500, 'aborted', 'E_INTERNAL'),
      finish: (r) => this.#finish(r),
    };
    this.#host = new MachineHost<FlowRecord, UdpFlowEvent>(udpFlowMachine, {
      clock: deps.clock,
      impl,
      delayMs: (_r, name) => {
        throw new Error(`udpFlow: unknown delay ${name}`);
      },
    });
  }

  get activeCount(): number {
    return this.#flows.size;
  }

  /** Starts demultiplexing the datagrams of an edge socket. */
  attach(slot: UdpSlot): void {
    slot.sock.setHandler((msg) => this.#onClientDatagram(slot, msg));
  }

  drain(appIds: ReadonlySet<string> | undefined, deadlineMs: number): void {
    for (const r of this.#flows.values()) {
      if (appIds && !appIds.has(r.app.id)) continue;
      if (r.drainCancel) continue;
      r.drainCancel = this.#deps.clock.setTimer(deadlineMs, () => {
        r.drainCancel = undefined;
        this.#host.send(r, { type: 'FLOW.DRAIN_DEADLINE' });
      });
    }
  }

  abortAll(): void {
    for (const r of [...this.#flows.values()]) this.#host.send(r, { type: 'FLOW.ABORT' });
  }

  /**
   * Re-applies the (new) access rules to the open flows of ip_firewall apps and closes those now blocked
   * (`clientFiltered` 403, `ip_firewall`), as `TcpEngine.refilter` does for connections. Used only when
   * `edge.close_blocked_connections` is on; returns how many were closed. Later datagrams from the client meet the
   * new rules before any flow exists, so they are dropped and counted.
   */
  refilter(): number {
    const { rules, geo } = this.#deps.access();
    if (rules.size === 0) return 0;
    let n = 0;
    for (const r of [...this.#flows.values()]) {
      if (!r.app.ipFirewall) continue;
      const ip = r.client.address;
      const d = decide(rules, { ip, country: geo.country(ip), asn: geo.asn(ip)?.asn });
      if (d.action !== 'block') continue;
      r.matched = d.matched;
      n++;
      this.#trace(r, 'filtered', { matched: d.matched, rule: d.ruleId ?? '' });
      this.#host.send(r, { type: 'FLOW.FILTERED' });
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

  #onClientDatagram(slot: UdpSlot, msg: Datagram): void {
    const edge = slot.sock.local;
    const key = `${msg.remote.address}|${msg.remote.port}|${edge.address}|${edge.port}`;
    let r = this.#flows.get(key);
    if (!r) {
      const app = slot.app;
      if (!app) {
        this.stats.udp_dgrams_no_app++;
        return;
      }
      if (app.ipFirewall) {
        // Rules run before any flow state or upstream work; a blocked client's datagrams are dropped and counted
        // (no event per datagram: a flood from a blocked range must not flood the event log too).
        const { rules, geo } = this.#deps.access();
        if (rules.size > 0) {
          const ip = msg.remote.address;
          const d = decide(rules, { ip, country: geo.country(ip), asn: geo.asn(ip)?.asn });
          if (d.action === 'block') {
            this.stats.udp_dgrams_ip_blocked++;
            return;
          }
        }
      }
      const settings = this.#deps.settings();
      const appFlows = this.#perApp.get(app.id) ?? 0;
      if (this.#flows.size >= settings.udpMaxFlows || (app.udpMaxFlows !== undefined && appFlows >= app.udpMaxFlows)) {
        // Policy: existing flows keep working; a new flow past the cap is refused (its datagrams dropped).
        if (this.stats.udp_flows_refused_cap++ % 1000 === 0) {
          this.#deps.log.warn(
            { app: app.id, nodeCap: settings.udpMaxFlows, appCap: app.udpMaxFlows, refused: this.stats.udp_flows_refused_cap },
            'UDP flow cap reached; new flows are refused',
          );
        }
        return;
      }
      r = this.#newFlow(key, slot, app, msg.remote, edge, settings);
    }
    r.last = this.#deps.clock.now();
    r.dgramsIn++;
    r.bytesIn += msg.data.length;
    if (r.up) this.#sendUpstream(r, msg.data);
    else if (r.queue && r.queue.length < MAX_QUEUED) r.queue.push(msg.data);
    else this.stats.udp_dgrams_queue_full++;
  }

  #newFlow(key: string, slot: UdpSlot, app: AppSpec, client: SocketAddress, edge: SocketAddress, settings: NodeSettings): FlowRecord {
    const clock = this.#deps.clock;
    const r: FlowRecord = {
      _node: undefined!,
      _timers: undefined,
      _queue: undefined,
      _busy: false,
      id: this.#nextId++,
      key,
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
      dgramsIn: 0,
      dgramsOut: 0,
      bytesIn: 0,
      bytesOut: 0,
      status: 0,
      eventName: 'disconnect',
      reason: 'normal',
      code: '',
    };
    this.#flows.set(key, r);
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
    r.dgramsOut++;
    r.bytesOut += payload.length;
    this.stats.udp_dgrams_downstream++;
    r.slot.sock.send(payload, r.client.port, r.client.address);
  }

  // ── actions ──────────────────────────────────────────────────────────────────────────────────────────────────

  #openUpstream(r: FlowRecord): void {
    const fail = (e: unknown): void => {
      const code: ErrorCode = isRefractError(e) ? e.code : 'E_UPSTREAM_CONNECT_FAILED';
      this.#deps.log.warn({ app: r.app.id, flow: r.id, code, err: e }, 'UDP flow could not open its upstream');
      this.#host.send(r, { type: 'UPSTREAM.FAILED', code, detail: e instanceof Error ? e.message : String(e) });
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
        this.#host.send(r, { type: 'UPSTREAM.READY' });
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
      else this.#host.send(r, { type: 'FLOW.IDLE' });
    };
    r.idleCancel = this.#deps.clock.setTimer(idleMs, check);
  }

  #end(r: FlowRecord, name: SpectrumEventName, status: number, reason: CloseReason, code: ErrorCode | ''): void {
    r.eventName = name;
    r.status = status;
    r.reason = reason;
    r.code = code;
  }

  #finish(r: FlowRecord): void {
    r.idleCancel?.();
    r.drainCancel?.();
    r.idleCancel = r.drainCancel = undefined;
    r.up?.close();
    r.queue = undefined;
    this.#flows.delete(r.key);
    const left = (this.#perApp.get(r.app.id) ?? 1) - 1;
    if (left > 0) this.#perApp.set(r.app.id, left);
    else this.#perApp.delete(r.app.id);
    this.stats.udp_flows_active--;
    this.#trace(r, 'close', {
      status: r.status,
      reason: r.reason,
      code: r.code,
      bytes_in: r.bytesIn,
      bytes_out: r.bytesOut,
      dgrams_in: r.dgramsIn,
      dgrams_out: r.dgramsOut,
    });
    this.#emit(r, r.eventName, r.status);
    this.#idle.notify(this.#flows.size);
  }

  #emit(r: FlowRecord, name: SpectrumEventName, status: number): void {
    const events = this.#deps.events;
    if (!events.observed) return;
    const closing = name !== 'connect';
    const now = this.#deps.clock.epochMs();
    const ev: SpectrumEvent = {
      Event: name,
      Timestamp: rfc3339(now),
      Application: r.app.id,
      ClientIP: r.client.address,
      ClientPort: r.client.port,
      ClientProto: 'udp',
      ClientBytes: r.bytesIn,
      OriginBytes: r.bytesOut,
      OriginIP: r.target?.host ?? '',
      OriginPort: r.target?.port ?? 0,
      OriginProto: 'udp',
      OriginTlsMode: r.app.tls,
      ...NO_TLS_FIELDS,
      ProxyProtocol: r.app.proxyProtocol,
      IpFirewall: r.app.ipFirewall,
      ClientMatchedIpFirewall: r.matched,
      ClientCountry: '',
      ClientAsn: 0,
      Status: status,
      ConnectTimestamp: '',
      DisconnectTimestamp: closing ? rfc3339(now) : '',
      ColoCode: r.settings.id,
      ConnectionID: `u${r.id}`,
      EdgeIP: r.edge.address,
      EdgePort: r.edge.port,
      DurationMs: closing ? Math.round((this.#deps.clock.now() - r.acceptedAt) * 1000) / 1000 : 0,
      CloseReason: closing ? r.reason : '',
      ErrorCode: closing ? r.code : '',
      ClientPackets: r.dgramsIn,
      OriginPackets: r.dgramsOut,
    };
    events.emit(ev);
  }
}
