/**
 * The simulated world: hosts, the links between them, faults, DNS, and the one virtual clock. `createSim({ seed })`
 * builds it; `sim.host(name, { addresses })` gives each machine its `Network`.
 */
import { VirtualClock, type RunLimits, type RunResult } from './virtual-clock.ts';
import { Prng } from './prng.ts';
import { DEFAULT_LINK, Link, resolveLinkParams, type LinkParams } from './fabric.ts';
import { DEFAULT_TCP, type SimWorld, type TcpParams } from './kernel.ts';
import { SimDns } from './sim-dns.ts';
import { SimHost, type HostOptions } from './host.ts';
import { parseIp, hostPort, type IpInfo } from './addr.ts';
import { inAnyCidr, parseCidr } from '../../model/ip.ts';

export interface SimOptions {
  /** Everything random derives from this (a number is keyed by its decimal text). */
  readonly seed: number | string;
  /** Wall-clock origin, ms since the Unix epoch (default 2026-01-01T00:00:00Z). */
  readonly epochMs?: number;
  /** Parameters of every link not configured with `sim.link` (default: 0.1 ms, lossless, unlimited). */
  readonly defaultLink?: Partial<LinkParams>;
  /** TCP timers and buffer sizes (defaults: Linux and Node 20). */
  readonly tcp?: Partial<TcpParams>;
  /** DNS answer latency (default 1 ms) and injected-timeout delay (default 5 s). */
  readonly dns?: { readonly latencyMs?: number; readonly timeoutMs?: number };
  /** Receives every simulator event, in order (for traces and determinism checks). Costs nothing when absent. */
  readonly onEvent?: (event: SimEvent) => void;
}

/** One simulator event. `detail` is a compact, deterministic description (`10.0.0.1:49152>10.0.0.2:80 len=5`). */
export interface SimEvent {
  /** Virtual time, ms. */
  readonly t: number;
  readonly type: string;
  readonly host: string;
  readonly detail: string;
}

/** Which way a partition (or heal) applies: both ways, or only packets from `a` to `b` (or `b` to `a`). */
export type Direction = 'both' | 'a->b' | 'b->a';

export interface NetstatConn {
  readonly host: string;
  readonly local: string;
  readonly remote: string;
  /** Kernel state (`SYN_SENT`, `ESTABLISHED`, `FIN_WAIT1`, …; `CLOSED` = the app holds a reset connection). */
  readonly state: string;
  /** `open`: the application has not seen `close`; `closed`: only the kernel is finishing; `none`: half-open. */
  readonly app: 'open' | 'closed' | 'none';
  readonly sendQueue: number;
  readonly recvQueue: number;
}

export interface Netstat {
  readonly tcp: readonly NetstatConn[];
  readonly listeners: readonly { readonly host: string; readonly local: string }[];
  readonly udp: readonly { readonly host: string; readonly local: string }[];
}

export class Sim implements SimWorld<SimHost> {
  readonly clock: VirtualClock;
  /** The root random stream; hosts and links use `split` streams of it. */
  readonly random: Prng;
  readonly dns: SimDns;
  readonly tcp: TcpParams;
  /** @internal Whether `emit` has a listener (callers skip building event text otherwise). */
  readonly tracing: boolean;
  readonly #onEvent: ((e: SimEvent) => void) | undefined;
  readonly #defaultLink: LinkParams;
  readonly #hosts = new Map<string, SimHost>();
  readonly #byRoute = new Map<string, SimHost>();
  /** Hosts that own whole address blocks (`HostOptions.prefixes`), and the routes found in them so far. */
  readonly #prefixHosts: SimHost[] = [];
  readonly #prefixRoutes = new Map<string, SimHost | null>();
  readonly #links = new Map<string, Link>();

  constructor(opts: SimOptions) {
    this.clock = new VirtualClock(opts.epochMs === undefined ? {} : { epochMs: opts.epochMs });
    this.random = new Prng(opts.seed);
    this.dns = new SimDns(opts.dns ?? {});
    this.tcp = Object.freeze({ ...DEFAULT_TCP, ...opts.tcp });
    this.#defaultLink = resolveLinkParams(DEFAULT_LINK, opts.defaultLink ?? {});
    this.#onEvent = opts.onEvent;
    this.tracing = opts.onEvent !== undefined;
  }

  /**
   * Creates host `name` with `opts.addresses` (and the whole blocks `opts.prefixes`), or returns the existing one when
   * `opts` is omitted. Throws when the name exists and `opts` is given, when it does not exist and `opts` is missing,
   * or when an address or block is invalid or overlaps what another host owns.
   */
  host(name: string, opts?: HostOptions): SimHost {
    const existing = this.#hosts.get(name);
    if (opts === undefined) {
      if (existing === undefined) throw new Error(`sim: no host '${name}' (create it with addresses first)`);
      return existing;
    }
    if (existing !== undefined) throw new Error(`sim: host '${name}' already exists`);
    const infos: IpInfo[] = opts.addresses.map((a) => {
      const ip = parseIp(a);
      if (ip === undefined || ip.wildcard || ip.loopback) throw new Error(`sim: host '${name}' address '${a}' must be a unicast IP literal`);
      const owner = this.#byRoute.get(ip.route) ?? this.#prefixOwner(ip.route);
      if (owner !== undefined) throw new Error(`sim: address ${ip.route} of '${name}' already belongs to '${owner.name}'`);
      return ip;
    });
    for (const block of opts.prefixes ?? []) {
      const c = parseCidr(block);
      if (c === undefined) throw new Error(`sim: host '${name}' prefix '${block}' must be a CIDR block (or one address)`);
      const probe = parseIp(c.address.address);
      const loopback = probe === undefined || probe.loopback || inAnyCidr([block], '127.0.0.1') || inAnyCidr([block], '::1');
      if (probe === undefined || loopback || probe.wildcard || probe.mapped) throw new Error(`sim: host '${name}' prefix '${block}' must be a unicast block (no loopback, no wildcard)`);
      for (const [route, h] of this.#byRoute) {
        if (inAnyCidr([block], route)) throw new Error(`sim: prefix ${block} of '${name}' contains ${route}, an address of '${h.name}'`);
      }
      for (const h of this.#prefixHosts) {
        for (const other of h.prefixes) {
          const o = parseCidr(other)!;
          if (inAnyCidr([block], o.address.address) || inAnyCidr([other], c.address.address)) throw new Error(`sim: prefix ${block} of '${name}' overlaps ${other} of '${h.name}'`);
        }
      }
    }
    const h = new SimHost(this, name, infos, opts, this.random.split(`host:${name}`));
    this.#hosts.set(name, h);
    for (const ip of infos) this.#byRoute.set(ip.route, h);
    if (h.prefixes.length > 0) {
      this.#prefixHosts.push(h);
      this.#prefixRoutes.clear();
    }
    return h;
  }

  /** All hosts, in creation order. */
  hosts(): readonly SimHost[] {
    return [...this.#hosts.values()];
  }

  /**
   * The link from host `a` to host `b` (created with the default parameters on first use). With `params`, updates
   * it — both directions unless `opts.direction` says otherwise — and returns the `a → b` link. Changes apply to
   * packets sent from now on; packets in flight keep their arrival times (but a partition still drops them).
   */
  link(a: string, b: string, params?: Partial<LinkParams>, opts: { direction?: Direction } = {}): Link {
    const forward = this.#link(a, b);
    if (params !== undefined) {
      const dir = opts.direction ?? 'both';
      if (dir !== 'b->a') forward.params = resolveLinkParams(forward.params, params);
      if (dir !== 'a->b') {
        const back = this.#link(b, a);
        back.params = resolveLinkParams(back.params, params);
      }
    }
    return forward;
  }

  /** Every link used or configured so far (for stats). */
  links(): readonly Link[] {
    return [...this.#links.values()];
  }

  /**
   * Cuts the links between every host of `a` and every host of `b`. Packets already in flight are dropped when they
   * would arrive. TCP retransmits across a partition until it heals or the retries run out.
   */
  partition(a: string | readonly string[], b: string | readonly string[], opts: { direction?: Direction } = {}): void {
    this.#setBlocked(a, b, opts.direction ?? 'both', true);
  }

  /** Undoes `partition` between `a` and `b`; with no arguments, heals every link. */
  heal(a?: string | readonly string[], b?: string | readonly string[], opts: { direction?: Direction } = {}): void {
    if (a === undefined || b === undefined) {
      for (const l of this.#links.values()) l.blocked = false;
      this.emit('link.heal', '*', 'all');
      return;
    }
    this.#setBlocked(a, b, opts.direction ?? 'both', false);
  }

  /** Partitions `name` from every other host (both ways). */
  isolate(name: string): void {
    this.#requireHost(name);
    const others = [...this.#hosts.keys()].filter((n) => n !== name);
    if (others.length > 0) this.partition(name, others);
  }

  /**
   * Crashes a host: its connections, listeners and UDP sockets vanish without a callback and its pending timers
   * never fire. Peers notice only when they send (retransmissions, then ETIMEDOUT) or, after `restart`, by RST.
   */
  crash(name: string): void {
    const h = this.#requireHost(name);
    if (!h.up) return;
    h.crash();
    this.emit('host.crash', name, '');
  }

  /** Brings a crashed host back with no sockets; the application must listen again. */
  restart(name: string): void {
    const h = this.#requireHost(name);
    if (h.up) return;
    h.up = true;
    this.emit('host.restart', name, '');
  }

  /** Sets host `name`'s wall-clock offset (its `clock.epochMs()`); may step backwards, like an NTP step. */
  setClockSkew(name: string, ms: number): void {
    if (!Number.isFinite(ms)) throw new RangeError(`clock skew must be finite, got ${ms}`);
    this.#requireHost(name).skewMs = ms;
  }

  /** A snapshot of every socket on every host, in a deterministic order. */
  netstat(): Netstat {
    const tcp: NetstatConn[] = [];
    const listeners: { host: string; local: string }[] = [];
    const udp: { host: string; local: string }[] = [];
    for (const h of this.#hosts.values()) {
      for (const c of h.tcbs.values()) {
        const st = c.stat();
        const app = c.listener !== null && c.state === 'SYN_RECEIVED' ? 'none' : c.destroyed ? 'closed' : 'open';
        tcp.push({ host: h.name, local: hostPort(c.local.address, c.local.port), remote: hostPort(c.remote.address, c.remote.port), state: st.state, app, ...queues(st) });
      }
      for (const c of h.appConns) {
        if (c.alive) continue;
        tcp.push({ host: h.name, local: hostPort(c.local.address, c.local.port), remote: hostPort(c.remote.address, c.remote.port), state: 'CLOSED', app: 'open', sendQueue: c.userBytes, recvQueue: c.rcvBytes });
      }
      for (const l of h.listeners.values()) listeners.push({ host: h.name, local: hostPort(l.address.address, l.address.port) });
      for (const u of h.udp.values()) udp.push({ host: h.name, local: hostPort(u.local.address, u.local.port) });
    }
    return { tcp, listeners, udp };
  }

  /** Runs the clock until no timer is left (or a limit is hit). See `VirtualClock.runUntilIdle`. */
  runUntilIdle(limits?: RunLimits): RunResult {
    return this.clock.runUntilIdle(limits);
  }

  /** `runUntilIdle` that drains promise continuations between timers. */
  runUntilIdleAsync(limits?: RunLimits): Promise<RunResult> {
    return this.clock.runUntilIdleAsync(limits);
  }

  /** @internal The host that owns `route` as seen from `from` (loopback is `from` itself). */
  route(from: SimHost, route: string): SimHost | undefined {
    const h = this.#byRoute.get(route) ?? this.#prefixOwner(route);
    if (h !== undefined) return h;
    return parseIp(route)?.loopback === true ? from : undefined;
  }

  /** The host whose `prefixes` hold `route` (looked up once per route: a handful of pool addresses are used). */
  #prefixOwner(route: string): SimHost | undefined {
    if (this.#prefixHosts.length === 0) return undefined;
    let h = this.#prefixRoutes.get(route);
    if (h === undefined) {
      h = this.#prefixHosts.find((x) => x.inPrefixes(route)) ?? null;
      if (this.#prefixRoutes.size >= 65_536) this.#prefixRoutes.clear();
      this.#prefixRoutes.set(route, h);
    }
    return h ?? undefined;
  }

  /** @internal Emits a simulator event to `onEvent`. */
  emit(type: string, host: string, detail: string): void {
    this.#onEvent?.({ t: this.clock.now(), type, host, detail });
  }

  #link(a: string, b: string): Link {
    this.#requireHost(a);
    this.#requireHost(b);
    const key = `${a}\u0000${b}`;
    let link = this.#links.get(key);
    if (link === undefined) {
      link = new Link(a, b, this.#defaultLink, this.random.split(`link:${a}->${b}`));
      this.#links.set(key, link);
    }
    return link;
  }

  #setBlocked(a: string | readonly string[], b: string | readonly string[], dir: Direction, blocked: boolean): void {
    const as = typeof a === 'string' ? [a] : a;
    const bs = typeof b === 'string' ? [b] : b;
    for (const x of as) {
      for (const y of bs) {
        if (x === y) continue;
        if (dir !== 'b->a') this.#link(x, y).blocked = blocked;
        if (dir !== 'a->b') this.#link(y, x).blocked = blocked;
        this.emit(blocked ? 'link.partition' : 'link.heal', x, `${x}${dir === 'both' ? '<->' : dir === 'a->b' ? '->' : '<-'}${y}`);
      }
    }
  }

  #requireHost(name: string): SimHost {
    const h = this.#hosts.get(name);
    if (h === undefined) throw new Error(`sim: no host '${name}'`);
    return h;
  }
}

function queues(st: { sendQueue: number; recvQueue: number }): { sendQueue: number; recvQueue: number } {
  return { sendQueue: st.sendQueue, recvQueue: st.recvQueue };
}

/** Creates a simulated world. Same options (seed included) and same workload → the same run, event for event. */
export function createSim(opts: SimOptions): Sim {
  return new Sim(opts);
}
