/**
 * The real implementation of the ports over node:net / node:dgram and the wall clock. This folder is the only
 * place in src/ allowed to touch real sockets, timers and time (see eslint.config.js).
 */
import { createNodeTls } from './tls.ts';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import * as dns from 'node:dns';
import { performance } from 'node:perf_hooks';
import type {
  Cancel, Clock, Conn, ConnectTcpOptions, Datagram, DnsAnswer, DnsRecordType,
  BindUdpOptions, ListenTcpOptions, Network, Random, SocketAddress, TcpListener, UdpSocket,
} from '../ports.ts';
import { NodeConn, readingSocket, rewrapAccepted, sockAddr } from './node-conn.ts';
import { HandleConn, dialHandle, handleBindings, type ListenHandle, type TcpHandle } from './handle-conn.ts';
import { getSystemErrorName } from 'node:util';
import { createNodeResolver } from './resolver.ts';
import { DescriptorGuard, type GuardLog } from './descriptors.ts';

const noop = (): void => {};

export const nodeClock: Clock = {
  now: () => performance.now(),
  epochMs: () => Date.now(),
  setTimer(ms: number, fn: () => void): Cancel {
    const t = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(t);
  },
};

export const nodeRandom: Random = { next: () => Math.random() };

export { NodeConn, normaliseAddress } from './node-conn.ts';

/**
 * dgram's address lookup, without its detour for an IP literal: `dns.lookup` answers a literal on the next tick
 * (a `process.nextTick`, a closure and an async-id scope per datagram sent), this answers it at once, so `send`
 * reaches the socket in the same call, as it does on a connected socket. A name still goes to `dns.lookup`.
 */
function literalLookup(address: string, family: unknown, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const f = net.isIP(address);
  if (f !== 0) cb(null, address, f);
  else dns.lookup(address, family as number, cb);
}

class NodeUdpSocket implements UdpSocket {
  readonly #s: dgram.Socket;
  /** The receive buffer granted: SO_RCVBUF as read back, halved on Linux (which reports twice what it grants). */
  readonly receiveBufferBytes: number | undefined;
  #onMessage: (m: Datagram) => void = noop;
  /** Cached: dgram's address() is a getsockname syscall, and the engine reads it per datagram. */
  #local: SocketAddress | undefined;
  /** `readBuffer`: read the granted receive buffer back (edge sockets that asked for one; a getsockopt per socket). */
  constructor(s: dgram.Socket, readBuffer: boolean, v4: boolean) {
    this.#s = s;
    // An IPv4 socket's peers are IPv4 addresses as they stand: no normalising per datagram.
    s.on(
      'message',
      v4
        ? (data: Buffer, rinfo: dgram.RemoteInfo) => this.#onMessage({ data, remote: { address: rinfo.address, port: rinfo.port, family: 'IPv4' } })
        : (data: Buffer, rinfo: dgram.RemoteInfo) => this.#onMessage({ data, remote: sockAddr(rinfo.address, rinfo.port) }),
    );
    s.on('error', noop);
    let rcv: number | undefined;
    if (readBuffer) {
      try {
        rcv = s.getRecvBufferSize();
        if (process.platform === 'linux') rcv = Math.floor(rcv / 2);
      } catch {
        rcv = undefined;
      }
    }
    this.receiveBufferBytes = rcv;
  }
  get local(): SocketAddress {
    if (!this.#local) {
      const a = this.#s.address();
      this.#local = sockAddr(a.address, a.port);
    }
    return this.#local;
  }
  setHandler(onMessage: (m: Datagram) => void): void {
    this.#onMessage = onMessage;
  }
  send(data: Uint8Array, port: number, address: string): void {
    this.#s.send(data, port, address);
  }
  close(): void {
    this.#s.close();
  }
}

export interface NodeNetworkOptions {
  /** DNS servers (`host:port`) for origin_dns; empty = the system resolver. */
  dnsServers?: readonly string[];
  /**
   * The descriptor guard (descriptors.ts): default one over this process's RLIMIT_NOFILE, logging to `log`.
   * Tests pass their own (a small limit, a fake count).
   */
  descriptors?: DescriptorGuard;
  /** Where the guard logs its episodes (one line when one starts, one when it ends). */
  log?: GuardLog;
  /**
   * How edge listeners share their port with other processes (`serve --workers`): `exclusive` (default) binds
   * alone; `cluster` shares the primary's listening socket among cluster workers (TCP only; the kernel hands each
   * accept to one of them); `reusePort` gives each worker a socket of its own with SO_REUSEPORT (TCP and UDP; the
   * kernel hashes each connection's or datagram's 4-tuple to one socket; Node >= 22.12 / 23.1, see reusePortSupported).
   * A UDP socket is never shared through cluster: it binds in its own process (`exclusive`) or with `reusePort`.
   */
  share?: 'exclusive' | 'cluster' | 'reusePort';
  /**
   * What a TCP connection runs on: `handles` (default where the runtime has them) uses the TCP handles directly
   * (handle-conn.ts, HandleConn), `net` a net.Socket per connection (NodeConn). Same behaviour; `net` costs more.
   */
  sockets?: 'handles' | 'net';
}

/** Whether this runtime has `reusePort` for net.Server.listen and dgram.createSocket (Node 22.12+, 23.1+). */
export function reusePortSupported(version: string = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** The real Network, with its descriptor guard (for metrics and tests). */
export interface NodeNetwork extends Network {
  readonly descriptors: DescriptorGuard;
}

const isDescriptorError = (code: string | undefined): boolean => code === 'EMFILE' || code === 'ENFILE';

export function createNodeNetwork(opts: NodeNetworkOptions = {}): NodeNetwork {
  const resolver = createNodeResolver({ servers: opts.dnsServers ?? [] });
  const guard =
    opts.descriptors ??
    new DescriptorGuard({
      ...(opts.log ? { log: opts.log } : {}),
      now: () => performance.now(),
      setTimer: (ms, fn) => {
        setTimeout(fn, ms).unref();
      },
    });
  const share = opts.share ?? 'exclusive';
  const handles = opts.sockets !== 'net' && handleBindings !== undefined;
  return {
    descriptors: guard,
    clock: nodeClock,
    random: nodeRandom,
    tls: createNodeTls(),

    listenTcp(o: ListenTcpOptions, onConnection: (conn: Conn) => void): Promise<TcpListener> {
      return new Promise((resolve, reject) => {
        // A listener bound to one address accepts only on that address: its connections' local side is known
        // without a getsockname() each (a wildcard listener's connections still ask).
        let local: SocketAddress | undefined;
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
          guard.opened();
          // Short of descriptors: reset at once (the client sees ECONNRESET), counted by the guard, no engine work.
          if (!guard.admit()) {
            socket.resetAndDestroy();
            return;
          }
          onConnection(new NodeConn(rewrapAccepted(socket), undefined, local));
        });
        server.once('error', reject);
        const listen: net.ListenOptions & { reusePort?: boolean } = { host: o.host, port: o.port, backlog: o.backlog ?? 511, exclusive: share !== 'cluster' };
        if (share === 'reusePort') listen.reusePort = true;
        server.listen(listen, () => {
          server.off('error', reject);
          guard.opened(); // the listening socket: the guard's estimate between readings stays an upper bound
          // An accept error reaches here only when libuv could not shed the load itself (descriptors.ts).
          server.on('error', (e: NodeJS.ErrnoException) => guard.acceptError(e.code));
          const a = server.address() as net.AddressInfo;
          const bound = sockAddr(a.address, a.port);
          if (bound.address !== '0.0.0.0' && bound.address !== '::') local = bound;
          // Accepted connections straight on their handles: net.Server would build a net.Socket for each.
          const lh = (server as unknown as { _handle: ListenHandle | null })._handle;
          if (handles && lh !== null) {
            lh.onconnection = (status: number, client?: TcpHandle) => {
              if (status !== 0) {
                guard.acceptError(getSystemErrorName(status));
                return;
              }
              if (client === undefined) return;
              guard.opened();
              if (!guard.admit()) {
                if (client.reset(noop) !== 0) client.close();
                return;
              }
              client.setNoDelay(true);
              onConnection(new HandleConn(client, false, local === undefined ? {} : { local }));
            };
          }
          resolve({
            address: sockAddr(a.address, a.port),
            // server.close's callback waits for every accepted connection to end; the port itself is released
            // at once, which is what callers wait for (draining connections is the engine's business).
            close: () =>
              new Promise<void>((res) => {
                server.close();
                setImmediate(res);
              }),
          });
        });
      });
    },

    connectTcp(o: ConnectTcpOptions): Conn {
      const family = handles ? net.isIP(o.host) : 0;
      if (family !== 0 && (o.localAddress === undefined || net.isIP(o.localAddress) !== 0)) {
        guard.opened();
        return dialHandle(o.host, family === 6, o.port, o.localAddress, (code) => {
          if (isDescriptorError(code)) guard.upstreamError(code);
        });
      }
      const socket = readingSocket();
      guard.opened();
      socket.once('error', (e: NodeJS.ErrnoException) => {
        if (isDescriptorError(e.code)) guard.upstreamError(e.code);
      });
      socket.setNoDelay(true);
      const conn = new NodeConn(socket, sockAddr(o.host, o.port));
      socket.pause(); // like accepted sockets: no byte is read until the owner resumes (see ports.ts)
      const opts: net.TcpNetConnectOpts = { host: o.host, port: o.port };
      if (o.localAddress !== undefined) opts.localAddress = o.localAddress;
      socket.connect(opts);
      return conn;
    },

    resolve(name: string, type: DnsRecordType): Promise<DnsAnswer> {
      return resolver(name, type);
    },

    bindUdp(o: BindUdpOptions): Promise<UdpSocket> {
      return new Promise((resolve, reject) => {
        const v4 = !net.isIPv6(o.host);
        const s = dgram.createSocket({
          type: v4 ? 'udp4' : 'udp6',
          lookup: literalLookup,
          ...(o.receiveBufferBytes === undefined ? {} : { recvBufferSize: o.receiveBufferBytes }),
          // SO_REUSEPORT only where a port is named (the edge's sockets, one per worker). On a port-0 bind (a flow's
          // socket towards its origin) the kernel may hand out an ephemeral port already bound by another
          // SO_REUSEPORT socket of the same user, and the origin's answers are then hashed to either socket.
          ...(share === 'reusePort' && o.port !== 0 ? { reusePort: true } : {}),
        } as dgram.SocketOptions);
        const failed = (e: NodeJS.ErrnoException): void => {
          if (isDescriptorError(e.code)) guard.upstreamError(e.code);
          reject(e);
        };
        s.once('error', failed);
        // exclusive: in a cluster worker, bind here (not through the primary's shared socket, which would hand one
        // flow's datagrams to any worker).
        s.bind({ port: o.port, address: o.host, exclusive: true }, () => {
          s.off('error', failed);
          guard.opened();
          resolve(new NodeUdpSocket(s, o.receiveBufferBytes !== undefined, v4));
        });
      });
    },
  };
}
