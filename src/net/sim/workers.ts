/**
 * Worker processes on one simulated host, as `refract serve --workers N` runs them (docs/deploy.md, "Every core"):
 * each worker is a `Network` of its own over the host (`SimWorkers.spawn`), with its own timers and sockets, and the
 * edge ports are shared the way SO_REUSEPORT shares them on Linux:
 *
 * - the first worker to listen on (host, port) binds the host's socket; the others join its group;
 * - each accepted connection goes to the group member picked by a hash of its 4-tuple (client address and port,
 *   local address and port), scaled over the live members as the kernel does (`reciprocal_scale`); each datagram
 *   of a UDP socket group by the same hash, so one flow stays with one worker while the group is unchanged;
 * - a member that leaves (its listener closed, or its worker dead) is replaced in its slot by the last member, as
 *   Linux's `reuseport_detach_sock` does: the hash is recomputed over fewer members and some flows of the other
 *   workers move (there they start as new flows).
 *
 * `SimWorker.exit()` is a worker's death (crash, `kill -9`): its timers never fire, its pending name lookups never
 * settle, its listeners and UDP sockets leave their groups (the last one out closes the host's socket), and every
 * connection it held is closed by the kernel as `destroy()` does (FIN, or RST with unread bytes) with no callback to
 * the dead worker. The other workers, and their connections, are untouched. The hash is deterministic (FNV-1a), so a
 * seed replays the same spread. Nothing here changes a host used without workers.
 */
import type { BindUdpOptions, Cancel, Clock, Conn, ConnectTcpOptions, Datagram, DnsAnswer, DnsRecordType, ListenTcpOptions, Network, SocketAddress, TcpListener, TlsPort, UdpSocket } from '../ports.ts';
import type { SimHost } from './host.ts';
import { Prng } from './prng.ts';
import { createSimTls } from './sim-tls.ts';
import { SimConn } from './sim-conn.ts';
import { nodeError } from './net-error.ts';

/** FNV-1a over the 4-tuple's text: the same connection or datagram source always hashes the same. */
export function tupleHash(remote: SocketAddress, local: SocketAddress): number {
  const s = `${remote.address}|${remote.port}|${local.address}|${local.port}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Linux's `reciprocal_scale`: a 32-bit hash onto `n` slots. */
export function slotOf(hash: number, n: number): number {
  return Math.floor((hash * n) / 4_294_967_296);
}

interface TcpMember {
  readonly worker: SimWorker;
  readonly onConnection: (conn: Conn) => void;
}

interface UdpMember {
  readonly worker: SimWorker;
  handler: ((msg: Datagram) => void) | undefined;
}

/** One shared port: the host's socket (once bound) and its members in slot order. */
interface Group<M, S> {
  readonly members: M[];
  /** The host's socket; rejects when binding failed (then the group is gone). */
  readonly socket: Promise<S>;
}

/** Removes `m` as Linux does: the last member takes its slot. Returns whether the group is now empty. */
function detach<M>(members: M[], m: M): boolean {
  const i = members.indexOf(m);
  if (i < 0) return members.length === 0;
  const last = members.pop()!;
  if (i < members.length) members[i] = last;
  return members.length === 0;
}

/** The worker processes of one host. */
export class SimWorkers {
  readonly host: SimHost;
  readonly #tcp = new Map<string, Group<TcpMember, TcpListener>>();
  readonly #udp = new Map<string, Group<UdpMember, UdpSocket>>();
  readonly #workers: SimWorker[] = [];

  constructor(host: SimHost) {
    this.host = host;
  }

  /** Starts worker `index` (a label: its random stream is the host's split by `worker:<index>`). */
  spawn(index: number): SimWorker {
    const w = new SimWorker(this, index);
    this.#workers.push(w);
    return w;
  }

  /** The workers spawned so far, dead ones included. */
  get workers(): readonly SimWorker[] {
    return this.#workers;
  }

  /** Which worker a connection or flow from `remote` to `local` goes to now (undefined: nobody listens there). */
  ownerOf(protocol: 'tcp' | 'udp', remote: SocketAddress, local: SocketAddress, key: { host: string; port: number }): SimWorker | undefined {
    const g = (protocol === 'tcp' ? this.#tcp : this.#udp).get(`${key.host}|${key.port}`);
    if (g === undefined || g.members.length === 0) return undefined;
    return g.members[slotOf(tupleHash(remote, local), g.members.length)]!.worker;
  }

  /** @internal */
  listenTcp(worker: SimWorker, opts: ListenTcpOptions, onConnection: (conn: Conn) => void): Promise<TcpListener> {
    if (opts.port === 0) return this.host.listenTcp(opts, (c) => onConnection(worker.adopt(c)));
    const key = `${opts.host}|${opts.port}`;
    let g = this.#tcp.get(key);
    if (g === undefined) {
      const members: TcpMember[] = [];
      const socket = this.host.listenTcp(opts, (conn) => {
        // The kernel's pick: a hash of the 4-tuple over the members now in the group.
        if (members.length === 0) {
          conn.destroy();
          return;
        }
        const m = members[slotOf(tupleHash(conn.remote, conn.local), members.length)]!;
        m.onConnection(m.worker.adopt(conn));
      });
      const group: Group<TcpMember, TcpListener> = { members, socket };
      g = group;
      this.#tcp.set(key, group);
      socket.catch(() => {
        if (this.#tcp.get(key) === group) this.#tcp.delete(key);
      });
    }
    const group = g;
    return group.socket.then((sock) => {
      const m: TcpMember = { worker, onConnection };
      group.members.push(m);
      let closed = false;
      const leave = (): Promise<void> => {
        if (closed) return Promise.resolve();
        closed = true;
        if (!detach(group.members, m)) return Promise.resolve();
        if (this.#tcp.get(key) === group) this.#tcp.delete(key);
        return sock.close();
      };
      worker.onExit(() => void leave());
      return {
        address: sock.address,
        close: () => (closed ? Promise.reject(nodeError('ERR_SERVER_NOT_RUNNING', 'Server is not running.')) : leave()),
      };
    });
  }

  /** @internal */
  bindUdp(worker: SimWorker, opts: BindUdpOptions): Promise<UdpSocket> {
    if (opts.port === 0) {
      return this.host.bindUdp(opts).then((s) => {
        worker.onExit(() => {
          s.setHandler(() => undefined);
          try {
            s.close();
          } catch {
            // closed by the worker already
          }
        });
        return s;
      });
    }
    const key = `${opts.host}|${opts.port}`;
    let g = this.#udp.get(key);
    if (g === undefined) {
      const members: UdpMember[] = [];
      const socket = this.host.bindUdp(opts).then((s) => {
        s.setHandler((msg) => {
          if (members.length === 0) return;
          const m = members[slotOf(tupleHash(msg.remote, s.local), members.length)]!;
          m.handler?.(msg);
        });
        return s;
      });
      const group: Group<UdpMember, UdpSocket> = { members, socket };
      g = group;
      this.#udp.set(key, group);
      socket.catch(() => {
        if (this.#udp.get(key) === group) this.#udp.delete(key);
      });
    }
    const group = g;
    return group.socket.then((sock) => {
      const m: UdpMember = { worker, handler: undefined };
      group.members.push(m);
      let closed = false;
      const leave = (): void => {
        if (closed) return;
        closed = true;
        m.handler = undefined;
        if (!detach(group.members, m)) return;
        if (this.#udp.get(key) === group) this.#udp.delete(key);
        sock.close();
      };
      worker.onExit(leave);
      const member: UdpSocket = {
        local: sock.local,
        setHandler: (h) => {
          if (!closed) m.handler = h;
        },
        send: (data, port, address) => {
          if (closed) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
          sock.send(data, port, address);
        },
        close: () => {
          if (closed) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
          leave();
        },
      };
      return member;
    });
  }
}

/** The clock a worker sees: the host's, with timers that never fire once the worker is dead. */
class WorkerClock implements Clock {
  readonly #worker: SimWorker;
  readonly #host: Clock;
  constructor(worker: SimWorker, host: Clock) {
    this.#worker = worker;
    this.#host = host;
  }
  now(): number {
    return this.#host.now();
  }
  epochMs(): number {
    return this.#host.epochMs();
  }
  setTimer(ms: number, fn: () => void): Cancel {
    const w = this.#worker;
    return this.#host.setTimer(ms, () => {
      if (w.alive) fn();
    });
  }
}

/** One worker process: a `Network` over its host, whose ports are shared with the other workers (SO_REUSEPORT). */
export class SimWorker implements Network {
  readonly index: number;
  readonly clock: Clock;
  readonly random: Prng;
  readonly tls: TlsPort;
  readonly #group: SimWorkers;
  #alive = true;
  readonly #onExit: Array<() => void> = [];
  /** Connections this worker accepted or dialled (closed ones pruned now and then). */
  #conns = new Set<SimConn>();
  #pruneAt = 64;

  constructor(group: SimWorkers, index: number) {
    this.#group = group;
    this.index = index;
    this.clock = new WorkerClock(this, group.host.clock);
    this.random = group.host.random.split(`worker:${index}`);
    this.tls = createSimTls({ clock: this.clock });
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** Connections this worker holds that are not closed. */
  get openConns(): number {
    let n = 0;
    for (const c of this.#conns) if (!c.closed) n++;
    return n;
  }

  listenTcp(opts: ListenTcpOptions, onConnection: (conn: Conn) => void): Promise<TcpListener> {
    this.#assertAlive();
    return this.#settleWhileAlive(this.#group.listenTcp(this, opts, onConnection));
  }

  connectTcp(opts: ConnectTcpOptions): Conn {
    this.#assertAlive();
    return this.adopt(this.#group.host.connectTcp(opts));
  }

  resolve(name: string, type: DnsRecordType): Promise<DnsAnswer> {
    this.#assertAlive();
    return this.#settleWhileAlive(this.#group.host.resolve(name, type));
  }

  bindUdp(opts: BindUdpOptions): Promise<UdpSocket> {
    this.#assertAlive();
    return this.#settleWhileAlive(this.#group.bindUdp(this, opts));
  }

  /** The worker dies: see the module comment. Idempotent. */
  exit(): void {
    if (!this.#alive) return;
    this.#alive = false;
    for (const f of this.#onExit.splice(0)) f();
    for (const c of this.#conns) if (!c.closed) c.processExit();
    this.#conns.clear();
  }

  /** @internal Runs `f` when the worker dies (at once if it is dead). */
  onExit(f: () => void): void {
    if (this.#alive) this.#onExit.push(f);
    else f();
  }

  /** @internal Records a connection as this worker's. */
  adopt(c: Conn): Conn {
    if (!(c instanceof SimConn)) return c;
    if (!this.#alive) {
      c.processExit();
      return c;
    }
    this.#conns.add(c);
    if (this.#conns.size >= this.#pruneAt) {
      for (const x of this.#conns) if (x.closed) this.#conns.delete(x);
      this.#pruneAt = Math.max(64, 2 * this.#conns.size);
    }
    return c;
  }

  /** A promise that settles only while the worker lives (a dead process sees nothing). */
  #settleWhileAlive<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      p.then(
        (v) => {
          if (this.#alive) resolve(v);
        },
        (e: unknown) => {
          if (this.#alive) reject(e as Error);
        },
      );
    });
  }

  #assertAlive(): void {
    if (!this.#alive) throw new Error(`sim worker ${this.index} on '${this.#group.host.name}' is dead`);
  }
}
