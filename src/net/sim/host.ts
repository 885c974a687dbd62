/**
 * A simulated host: the `Network` port as one machine sees it (its addresses, sockets and ports, its view of the
 * shared virtual clock), plus the kernel tables the simulator needs (TCBs, listeners, UDP sockets, bound ports).
 */
import { createSimTls } from './sim-tls.ts';
import type { TlsPort } from '../ports.ts';
import { type Clock, type Conn, type ConnectTcpOptions, type DnsAnswer, type DnsRecordType, type IpFamily, type ListenTcpOptions, type NetError, type Network, type SocketAddress, type TcpListener, type UdpSocket, type Cancel } from '../ports.ts';
import { type Prng } from './prng.ts';
import { type Link } from './fabric.ts';
import { parseIp, mapV4, type IpInfo } from './addr.ts';
import { badPort, netError } from './net-error.ts';
import { inAnyCidr } from '../../model/ip.ts';
import { SimConn, SimListener, sendSyn } from './sim-conn.ts';
import { SimUdpSocket } from './sim-udp.ts';
import { type SimWorld, type TcpKernel, type UdpKernel } from './kernel.ts';
import { DescriptorGuard } from '../descriptor-guard.ts';

export interface HostOptions {
  /** The host's IP addresses (IPv4 and/or IPv6). 127.0.0.1 and ::1 are always local too. */
  readonly addresses: readonly string[];
  /** Offset of this host's wall clock (`epochMs`) from the simulation's, ms. Monotonic `now()` is shared. */
  readonly clockSkewMs?: number;
  /** Refuse binds below port 1024 with EACCES, as for an unprivileged process (default false: ports are free). */
  readonly unprivileged?: boolean;
  /**
   * Address blocks (CIDR) the host owns whole, as Linux's local routes make every address of a block bindable
   * (`ip route add local 203.0.113.0/24 dev lo`, "AnyIP"): packets to any address of a block reach this host, and it
   * may bind any of them. They are never chosen as a source address (that is `addresses`' first of the family).
   */
  readonly prefixes?: readonly string[];
  /**
   * The process's file-descriptor limit (RLIMIT_NOFILE), counting the host's listeners, open connections (accepted
   * and dialled, until their `close`) and UDP sockets. Unset: no limit. Set, the host runs the real network's
   * descriptor guard (src/net/descriptor-guard.ts) over that count: an accepted connection is reset at once and
   * counted while fewer than `descriptorReserve` are free, an episode pauses accepting and probes on the virtual
   * clock; a connect, bind or listen past the limit fails with EMFILE (and counts as `upstreamFailed`). An accept
   * the kernel takes past the limit is closed at once without a trace, as libuv does (`DescriptorTotals.lostUntraced`).
   */
  readonly maxDescriptors?: number;
  /** Descriptors the guard keeps free; default as on a real machine: 2 % of the limit, between 16 and 1,024. */
  readonly descriptorReserve?: number;
}

/** What a host's descriptor guard counted, over every incarnation of the host (a restart starts a new guard). */
export interface DescriptorTotals {
  readonly limit: number;
  readonly reserve: number;
  /** Accepted connections reset by the guard (E_ACCEPT_EMFILE). */
  readonly acceptRefused: number;
  /** Connects, binds and listens that failed with EMFILE (E_UPSTREAM_EMFILE for origin connects and UDP binds). */
  readonly upstreamFailed: number;
  readonly episodes: number;
  /** Connections the kernel accepted past the limit and closed with no trace (the guard exists so this stays 0). */
  readonly lostUntraced: number;
}

const EPHEMERAL_LOW = 49_152;
const EPHEMERAL_HIGH = 65_535;
/** TCB keys are `pair * 2^32 + lport * 2^16 + rport`: address-pair numbers must stay below 2^21 to be exact. */
const MAX_ADDRESS_PAIRS = 2 ** 21;

/** One bound address on a port: a route address, '0.0.0.0' (all IPv4) or '::' (all, dual-stack). */
interface PortUse {
  readonly addr: string;
  readonly kind: 'listen' | 'conn' | 'udp';
}

/** The uses of one port: mostly a single one (a dialled connection's ephemeral port), so no array for that. */
type PortUses = PortUse | PortUse[];

/** A dialled connection's local address until it is bound (shared: a Conn's addresses are read-only). */
const UNBOUND_V4: SocketAddress = Object.freeze({ address: '0.0.0.0', port: 0, family: 'IPv4' });
const UNBOUND_V6: SocketAddress = Object.freeze({ address: '::', port: 0, family: 'IPv6' });

function isV4(addr: string): boolean {
  return !addr.includes(':');
}

/** Linux bind rules as Node shows them: same address, or a wildcard covering the other address, conflicts. */
function overlaps(a: string, b: string): boolean {
  if (a === b || a === '::' || b === '::') return true;
  return (a === '0.0.0.0' && isV4(b)) || (b === '0.0.0.0' && isV4(a));
}

/** The host's view of the virtual clock: shared monotonic time, skewed wall time, timers that die with the host. */
class HostClock implements Clock {
  readonly #host: SimHost;

  constructor(host: SimHost) {
    this.#host = host;
  }

  now(): number {
    return this.#host.sim.clock.now();
  }

  epochMs(): number {
    return this.#host.sim.clock.epochMs() + this.#host.skewMs;
  }

  /** Timers set before a crash never fire: the process that set them is gone. */
  setTimer(ms: number, fn: () => void): Cancel {
    const host = this.#host;
    const clock = host.sim.clock;
    const handle = clock.schedule(ms, fireHostTimer, { host, incarnation: host.incarnation, fn });
    return () => clock.cancel(handle);
  }
}

function fireHostTimer(t: { host: SimHost; incarnation: number; fn: () => void }): void {
  if (t.host.incarnation === t.incarnation && t.host.up) t.fn();
}

export class SimHost implements Network, TcpKernel<SimConn, SimListener>, UdpKernel<SimUdpSocket> {
  readonly name: string;
  readonly sim: SimWorld<SimHost>;
  readonly clock: Clock;
  readonly random: Prng;
  readonly tls: TlsPort;
  /** Canonical addresses, in the order given. */
  readonly addresses: readonly string[];
  readonly unprivileged: boolean;
  /** Address blocks the host owns whole (`HostOptions.prefixes`), as given. */
  readonly prefixes: readonly string[];
  /** @internal The descriptor guard of this incarnation (undefined: no `maxDescriptors`). */
  descriptors: DescriptorGuard | undefined;
  readonly #descriptorOpts: { limit: number; reserve: number | undefined } | undefined;
  /** Counts of earlier incarnations' guards, and silent accept losses. */
  #descriptorsBefore = { acceptRefused: 0, upstreamFailed: 0, episodes: 0 };
  #lostUntraced = 0;
  skewMs: number;
  up = true;
  /** Bumped by each crash; work scheduled by an earlier incarnation is void. */
  incarnation = 0;

  /** @internal TCBs by `tcbKey(localRoute, lport, remoteRoute, rport)`. */
  readonly tcbs = new Map<number, SimConn>();
  /** @internal Connections whose application side is open (close not yet emitted). */
  readonly appConns = new Set<SimConn>();
  /** @internal Listeners by `bindAddr|port`. */
  readonly listeners = new Map<string, SimListener>();
  /** @internal UDP sockets by `bindAddr|port`. */
  readonly udp = new Map<string, SimUdpSocket>();

  readonly #routes: Set<string>;
  readonly #v4: string[] = [];
  readonly #v6: string[] = [];
  readonly #tcpPorts = new Map<number, PortUses>();
  readonly #udpPorts = new Map<number, PortUses>();
  /** The `conn` use of each source address (uses are immutable, so one object serves every connection). */
  readonly #connUses = new Map<string, PortUse>();
  /** Lookup view of `listeners` and `udp`: port → bind address → socket (no key string built per packet). */
  readonly #listenersByPort = new Map<number, Map<string, SimListener>>();
  readonly #udpByPort = new Map<number, Map<string, SimUdpSocket>>();
  /** Numbers of the (local route, remote route) pairs seen, for TCB keys. */
  readonly #pairs = new Map<string, Map<string, number>>();
  #nextPair = 0;
  #nextTcp = EPHEMERAL_LOW;
  #nextUdp = EPHEMERAL_LOW;
  readonly #links = new Map<SimHost, Link>();

  constructor(sim: SimWorld<SimHost>, name: string, addresses: readonly IpInfo[], opts: HostOptions, random: Prng) {
    this.sim = sim;
    this.name = name;
    this.random = random;
    this.addresses = addresses.map((a) => a.route);
    this.#routes = new Set(this.addresses);
    for (const a of addresses) (a.routeFamily === 'IPv4' ? this.#v4 : this.#v6).push(a.route);
    this.skewMs = opts.clockSkewMs ?? 0;
    this.unprivileged = opts.unprivileged ?? false;
    this.prefixes = [...(opts.prefixes ?? [])];
    this.tls = createSimTls(this);
    this.clock = new HostClock(this);
    this.#descriptorOpts = opts.maxDescriptors === undefined ? undefined : { limit: opts.maxDescriptors, reserve: opts.descriptorReserve };
    this.descriptors = this.#newGuard();
  }

  // ───────────────────────────── descriptors ─────────────────────────────

  /**
   * Descriptors in use: listeners, UDP sockets and connections whose application side is open and not destroyed
   * (Node closes the descriptor in `destroy()`, before `close` is emitted). One pass over the open connections.
   */
  descriptorsInUse(): number {
    let conns = 0;
    for (const c of this.appConns) if (!c.destroyed) conns++;
    return this.listeners.size + conns + this.udp.size;
  }

  /** What the descriptor guard counted (undefined: the host has no `maxDescriptors`). */
  descriptorTotals(): DescriptorTotals | undefined {
    const g = this.descriptors;
    if (g === undefined) return undefined;
    const b = this.#descriptorsBefore;
    return {
      limit: g.limit,
      reserve: g.reserve,
      acceptRefused: b.acceptRefused + g.acceptRefused,
      upstreamFailed: b.upstreamFailed + g.upstreamFailed,
      episodes: b.episodes + g.episodes,
      lostUntraced: this.#lostUntraced,
    };
  }

  /** @internal A new socket would take a descriptor past the limit (`extra`: 1 when it is already counted). */
  descriptorsFull(extra = 0): boolean {
    const o = this.#descriptorOpts;
    return o !== undefined && this.descriptorsInUse() - extra >= o.limit;
  }

  /**
   * @internal A connection arrives at accept (already in `appConns`, as its descriptor is in /proc/self/fd when
   * the real guard reads it): 'lost' when the kernel had no descriptor for it (libuv accepts and closes it, nobody
   * hears), 'refused' when the guard resets it, else 'ok'.
   */
  admitAccept(): 'ok' | 'refused' | 'lost' {
    const g = this.descriptors;
    if (g === undefined) return 'ok';
    if (this.descriptorsFull(1)) {
      this.#lostUntraced++;
      return 'lost';
    }
    g.opened();
    return g.admit() ? 'ok' : 'refused';
  }

  /** @internal A connect, bind or listen failed for want of a descriptor. */
  descriptorFailed(): void {
    this.descriptors?.upstreamError('EMFILE');
  }

  #newGuard(): DescriptorGuard | undefined {
    const o = this.#descriptorOpts;
    if (o === undefined) return undefined;
    const sim = this.sim;
    const name = this.name;
    const trace = (_obj: object, msg: string): void => {
      if (sim.tracing) sim.emit('descriptors', name, msg);
    };
    return new DescriptorGuard({
      limit: o.limit,
      ...(o.reserve === undefined ? {} : { reserve: o.reserve }),
      count: () => this.descriptorsInUse(),
      log: { warn: trace, info: trace },
      now: () => this.clock.now(),
      setTimer: (ms, fn) => {
        this.clock.setTimer(ms, fn);
      },
    });
  }

  // ───────────────────────────── Network ─────────────────────────────

  listenTcp(opts: ListenTcpOptions, onConnection: (conn: Conn) => void): Promise<TcpListener> {
    this.#assertUp();
    const bad = badPort(opts.port, true);
    if (bad !== undefined) return Promise.reject(bad);
    const ip = parseIp(opts.host === 'localhost' ? '127.0.0.1' : opts.host);
    if (ip === undefined) return Promise.reject(netError('ENOTFOUND', 'getaddrinfo', opts.host));
    const bindAddr = ip.wildcard ? ip.address : ip.route;
    const err = this.#bindCheck('listen', ip, opts.port);
    if (err !== undefined) return Promise.reject(err);
    if (this.descriptorsFull()) {
      this.descriptorFailed();
      return Promise.reject(netError('EMFILE', 'listen', ip.address, opts.port));
    }
    const port = opts.port === 0 ? this.#ephemeral('tcp') : opts.port;
    if (port < 0) return Promise.reject(netError('EADDRINUSE', 'listen', ip.address, 0));
    if (this.#conflicts(this.#tcpPorts, port, bindAddr, true)) return Promise.reject(netError('EADDRINUSE', 'listen', ip.address, port));
    const listener = new SimListener(this, { address: ip.address, port, family: ip.family }, bindAddr, onConnection);
    this.listeners.set(`${bindAddr}|${port}`, listener);
    byPort(this.#listenersByPort, port).set(bindAddr, listener);
    this.#use(this.#tcpPorts, port, { addr: bindAddr, kind: 'listen' });
    this.descriptors?.opened();
    if (this.sim.tracing) this.sim.emit('tcp.listen', this.name, `${ip.address}:${port}`);
    return Promise.resolve(listener);
  }

  connectTcp(opts: ConnectTcpOptions): Conn {
    this.#assertUp();
    const bad = badPort(opts.port, true);
    if (bad !== undefined) throw bad; // Node throws ERR_SOCKET_BAD_PORT synchronously
    const ip = parseIp(opts.host === 'localhost' ? '127.0.0.1' : opts.host);
    const remote: SocketAddress = { address: ip?.address ?? opts.host, port: opts.port, family: ip?.family ?? 'IPv4' };
    const conn = new SimConn(this, true, remote.family === 'IPv6' ? UNBOUND_V6 : UNBOUND_V4, remote);
    this.appConns.add(conn);
    if (ip !== undefined) {
      this.#startConnect(conn, ip, opts.port, opts.localAddress);
      return conn;
    }
    // A hostname: Node looks it up (getaddrinfo) first. The simulation's zone stands in for the resolver.
    const name = opts.host;
    const incarnation = this.incarnation;
    this.sim.clock.schedule(this.sim.dns.latencyMs, () => {
      if (this.incarnation !== incarnation || conn.destroyed) return;
      const addr = this.sim.dns.lookup(name);
      const resolved = addr === undefined ? undefined : parseIp(addr);
      if (resolved === undefined) conn.lookupFailed(name);
      else this.#startConnect(conn, resolved, opts.port, opts.localAddress);
    }, undefined);
    return conn;
  }

  resolve(name: string, type: DnsRecordType): Promise<DnsAnswer> {
    this.#assertUp();
    const result = this.sim.dns.query(name, type);
    const incarnation = this.incarnation;
    return new Promise<DnsAnswer>((resolve, reject) => {
      this.sim.clock.schedule(result.delayMs, () => {
        if (this.incarnation !== incarnation) return; // the asking process died
        if ('answer' in result) resolve(result.answer);
        else reject(result.error);
      }, undefined);
    });
  }

  bindUdp(opts: { host: string; port: number }): Promise<UdpSocket> {
    this.#assertUp();
    const bad = badPort(opts.port, true);
    if (bad !== undefined) return Promise.reject(bad);
    const ip = parseIp(opts.host === 'localhost' ? '127.0.0.1' : opts.host);
    if (ip === undefined) return Promise.reject(netError('ENOTFOUND', 'getaddrinfo', opts.host));
    const bindAddr = ip.wildcard ? ip.address : ip.route;
    const err = this.#bindCheck('bind', ip, opts.port);
    if (err !== undefined) return Promise.reject(err);
    if (this.descriptorsFull()) {
      this.descriptorFailed();
      return Promise.reject(netError('EMFILE', 'bind', ip.address, opts.port));
    }
    const port = opts.port === 0 ? this.#ephemeral('udp') : opts.port;
    if (port < 0 || this.#conflicts(this.#udpPorts, port, bindAddr, false)) return Promise.reject(netError('EADDRINUSE', 'bind', ip.address, port < 0 ? 0 : port));
    const sock = new SimUdpSocket(this, { address: ip.address, port, family: ip.family }, bindAddr);
    this.udp.set(`${bindAddr}|${port}`, sock);
    byPort(this.#udpByPort, port).set(bindAddr, sock);
    this.#use(this.#udpPorts, port, { addr: bindAddr, kind: 'udp' });
    this.descriptors?.opened();
    return Promise.resolve(sock);
  }

  // ───────────────────────────── kernel helpers ─────────────────────────────

  /** @internal Whether `route` is one of this host's addresses (loopback included). */
  owns(route: string): boolean {
    return this.#routes.has(route) || (parseIp(route)?.loopback ?? false) || this.inPrefixes(route);
  }

  /** @internal Whether `route` lies in one of the blocks this host owns whole (`HostOptions.prefixes`). */
  inPrefixes(route: string): boolean {
    return this.prefixes.length > 0 && inAnyCidr(this.prefixes, route);
  }

  /** @internal The source address for a packet to `dst`, or undefined when the host has none of that family. */
  sourceFor(dst: IpInfo): string | undefined {
    if (dst.loopback) return dst.routeFamily === 'IPv4' ? dst.route : '::1';
    if (this.#routes.has(dst.route) || this.inPrefixes(dst.route)) return dst.route;
    return dst.routeFamily === 'IPv4' ? this.#v4[0] : this.#v6[0];
  }

  /** @internal This host's link towards `other` (cached; parameters can change in place). */
  linkTo(other: SimHost): Link {
    let link = this.#links.get(other);
    if (link === undefined) {
      link = this.sim.link(this.name, other.name);
      this.#links.set(other, link);
    }
    return link;
  }

  /** @internal The listener that takes a SYN for `route:port`: exact address, then the wildcards. */
  findListener(route: string, port: number): SimListener | undefined {
    const l = this.#listenersByPort.get(port);
    if (l === undefined) return undefined;
    return l.get(route) ?? (isV4(route) ? l.get('0.0.0.0') : undefined) ?? l.get('::');
  }

  /** @internal Same lookup for UDP sockets. */
  findUdp(route: string, port: number): SimUdpSocket | undefined {
    const u = this.#udpByPort.get(port);
    if (u === undefined) return undefined;
    return u.get(route) ?? (isV4(route) ? u.get('0.0.0.0') : undefined) ?? u.get('::');
  }

  /**
   * @internal The key of a connection in `tcbs`: a number, so that no string is built and hashed per connection.
   * Address pairs are numbered on first sight (at most 2^21 per host, far beyond any simulation's).
   */
  tcbKey(localRoute: string, lport: number, remoteRoute: string, rport: number): number {
    let byRemote = this.#pairs.get(localRoute);
    if (byRemote === undefined) this.#pairs.set(localRoute, (byRemote = new Map()));
    let pair = byRemote.get(remoteRoute);
    if (pair === undefined) {
      if (this.#nextPair >= MAX_ADDRESS_PAIRS) throw new Error(`sim host '${this.name}': more than ${MAX_ADDRESS_PAIRS} address pairs`);
      pair = this.#nextPair++;
      byRemote.set(remoteRoute, pair);
    }
    return pair * 4_294_967_296 + lport * 65_536 + rport;
  }

  /** @internal The server-side Conn for a SYN from `client`, addressed as the listener's socket family sees it. */
  acceptedConn(listener: SimListener, client: SimConn): SimConn {
    const dual = listener.bindAddr === '::' && isV4(client.remoteRoute);
    const fam: IpFamily = dual ? 'IPv6' : isV4(client.remoteRoute) ? 'IPv4' : 'IPv6';
    // The client's own address objects when they read the same (SocketAddress is immutable): two objects less per
    // connection, alive as long as it.
    const cr = client.remote;
    const cl = client.local;
    const local = !dual && cr.address === client.remoteRoute && cr.family === fam ? cr : { address: dual ? mapV4(client.remoteRoute) : client.remoteRoute, port: cr.port, family: fam };
    const remote = !dual && cl.address === client.localRoute && cl.family === fam ? cl : { address: dual ? mapV4(client.localRoute) : client.localRoute, port: cl.port, family: fam };
    const s = new SimConn(this, false, local, remote);
    s.localRoute = client.remoteRoute;
    s.remoteRoute = client.localRoute;
    return s;
  }

  /** @internal */
  removeListener(l: SimListener): void {
    const key = `${l.bindAddr}|${l.address.port}`;
    if (this.listeners.get(key) === l) {
      this.listeners.delete(key);
      unbyPort(this.#listenersByPort, l.address.port, l.bindAddr);
    }
    this.#release(this.#tcpPorts, l.address.port, l.bindAddr, 'listen');
  }

  /** @internal */
  releaseTcpPort(port: number, addr: string): void {
    this.#release(this.#tcpPorts, port, addr, 'conn');
  }

  /** @internal */
  removeUdp(sock: SimUdpSocket): void {
    const key = `${sock.bindAddr}|${sock.local.port}`;
    if (this.udp.get(key) === sock) {
      this.udp.delete(key);
      unbyPort(this.#udpByPort, sock.local.port, sock.bindAddr);
    }
    this.#release(this.#udpPorts, sock.local.port, sock.bindAddr, 'udp');
  }

  /** @internal Crash: every socket vanishes without a callback; listeners must be re-created after restart. */
  crash(): void {
    this.up = false;
    this.incarnation++;
    const g = this.descriptors;
    if (g !== undefined) {
      const b = this.#descriptorsBefore;
      this.#descriptorsBefore = { acceptRefused: b.acceptRefused + g.acceptRefused, upstreamFailed: b.upstreamFailed + g.upstreamFailed, episodes: b.episodes + g.episodes };
      this.descriptors = this.#newGuard();
    }
    for (const c of this.tcbs.values()) c.crash();
    for (const c of this.appConns) c.crash();
    for (const l of this.listeners.values()) l.closed = true;
    for (const u of this.udp.values()) u.crash();
    this.tcbs.clear();
    this.appConns.clear();
    this.listeners.clear();
    this.udp.clear();
    this.#listenersByPort.clear();
    this.#udpByPort.clear();
    this.#tcpPorts.clear();
    this.#udpPorts.clear();
  }

  #startConnect(conn: SimConn, ip: IpInfo, port: number, localAddress: string | undefined): void {
    // The socket is created here (after the name's lookup), so this is where it finds no descriptor (the
    // connection itself is already in appConns).
    if (this.descriptorsFull(1)) {
      this.descriptorFailed();
      conn.failBeforeConnect(netError('EMFILE', 'connect', ip.address, port));
      return;
    }
    this.descriptors?.opened();
    let src: string | undefined;
    if (localAddress !== undefined) {
      const la = parseIp(localAddress);
      if (la === undefined || la.routeFamily !== ip.routeFamily || !(la.wildcard || this.owns(la.route))) {
        conn.failBeforeConnect(netError('EADDRNOTAVAIL', 'bind', localAddress));
        return;
      }
      src = la.wildcard ? this.sourceFor(ip) : la.route;
    } else src = this.sourceFor(ip);
    if (src === undefined) {
      conn.failBeforeConnect(netError('ENETUNREACH', 'connect', ip.address, port));
      return;
    }
    const lport = this.#ephemeral('tcp');
    if (lport < 0) {
      conn.failBeforeConnect(netError('EADDRNOTAVAIL', 'connect', ip.address, port));
      return;
    }
    conn.local = { address: ip.mapped ? mapV4(src) : src, port: lport, family: ip.family };
    const r = conn.remote;
    if (r.address !== ip.address || r.port !== port || r.family !== ip.family) conn.remote = { address: ip.address, port, family: ip.family };
    conn.localRoute = src;
    conn.remoteRoute = ip.route;
    conn.key = this.tcbKey(src, lport, ip.route, port);
    conn.register();
    let use = this.#connUses.get(src);
    if (use === undefined) this.#connUses.set(src, (use = Object.freeze({ addr: src, kind: 'conn' })));
    this.#use(this.#tcpPorts, lport, use);
    sendSyn(conn);
  }

  #bindCheck(syscall: 'listen' | 'bind', ip: IpInfo, port: number): NetError | undefined {
    if (!ip.wildcard && !this.owns(ip.route)) return netError('EADDRNOTAVAIL', syscall, ip.address, port);
    if (this.unprivileged && port > 0 && port < 1024) return netError('EACCES', syscall, ip.address, port);
    return undefined;
  }

  #conflicts(table: Map<number, PortUses>, port: number, addr: string, tcp: boolean): boolean {
    const uses = table.get(port);
    if (uses === undefined) return false;
    // TCP: a listener conflicts with listeners and with dialled connections bound to the port (no SO_REUSEADDR on
    // the client socket); accepted connections share the listener's port and never conflict.
    const conflict = (u: PortUse): boolean => (tcp ? u.kind === 'listen' || u.kind === 'conn' : true) && overlaps(u.addr, addr);
    return Array.isArray(uses) ? uses.some(conflict) : conflict(uses);
  }

  /** Next free ephemeral port (49152–65535, round robin, deterministic), or -1 when all are taken. */
  #ephemeral(kind: 'tcp' | 'udp'): number {
    const table = kind === 'tcp' ? this.#tcpPorts : this.#udpPorts;
    let next = kind === 'tcp' ? this.#nextTcp : this.#nextUdp;
    for (let i = 0; i <= EPHEMERAL_HIGH - EPHEMERAL_LOW; i++) {
      const p = next;
      next = next === EPHEMERAL_HIGH ? EPHEMERAL_LOW : next + 1;
      if (!table.has(p)) {
        if (kind === 'tcp') this.#nextTcp = next;
        else this.#nextUdp = next;
        return p;
      }
    }
    return -1;
  }

  #use(table: Map<number, PortUses>, port: number, use: PortUse): void {
    const uses = table.get(port);
    if (uses === undefined) table.set(port, use);
    else if (Array.isArray(uses)) uses.push(use);
    else table.set(port, [uses, use]);
  }

  #release(table: Map<number, PortUses>, port: number, addr: string, kind: PortUse['kind']): void {
    const uses = table.get(port);
    if (uses === undefined) return;
    if (!Array.isArray(uses)) {
      if (uses.addr === addr && uses.kind === kind) table.delete(port);
      return;
    }
    const i = uses.findIndex((u) => u.addr === addr && u.kind === kind);
    if (i >= 0) uses.splice(i, 1);
    if (uses.length === 0) table.delete(port);
  }

  #assertUp(): void {
    if (!this.up) throw new Error(`sim host '${this.name}' is down: restart it before using its Network`);
  }
}

function byPort<T>(index: Map<number, Map<string, T>>, port: number): Map<string, T> {
  let m = index.get(port);
  if (m === undefined) index.set(port, (m = new Map()));
  return m;
}

function unbyPort<T>(index: Map<number, Map<string, T>>, port: number, addr: string): void {
  const m = index.get(port);
  if (m === undefined) return;
  m.delete(addr);
  if (m.size === 0) index.delete(port);
}
