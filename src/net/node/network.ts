/**
 * The real implementation of the ports over node:net / node:dgram and the wall clock. This folder is the only
 * place in src/ allowed to touch real sockets, timers and time (see eslint.config.js).
 */
import { createNodeTls } from './tls.ts';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type {
  Cancel, Clock, Conn, ConnHandlers, ConnectTcpOptions, Datagram, DnsAnswer, DnsRecordType, IpFamily,
  ListenTcpOptions, NetError, Network, Random, SocketAddress, TcpListener, UdpSocket,
} from '../ports.ts';
import { createNodeResolver } from './resolver.ts';

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

/** Strips the IPv4-mapped prefix Node reports for IPv4 peers on dual-stack sockets. */
export function normaliseAddress(address: string | undefined): { address: string; family: IpFamily } {
  const a = address ?? '';
  if (a.startsWith('::ffff:') && a.includes('.')) return { address: a.slice(7), family: 'IPv4' };
  return { address: a, family: a.includes(':') ? 'IPv6' : 'IPv4' };
}

function sockAddr(address: string | undefined, port: number | undefined): SocketAddress {
  const n = normaliseAddress(address);
  return { address: n.address, port: port ?? 0, family: n.family };
}

/**
 * A Conn over a net.Socket. Handlers are plain fields (not EventEmitter listeners we add per use) so the data path
 * costs one indirect call per chunk.
 */
export class NodeConn implements Conn {
  readonly #s: net.Socket;
  #h: ConnHandlers = { connect: noop, data: noop, drain: noop, end: noop, error: noop, close: noop };
  #local: SocketAddress | undefined;
  #remote: SocketAddress;
  #closed = false;
  /** null: never paused or resumed by the owner — setting a data handler starts the flow (as `on('data')` does). */
  #flowing: boolean | null = null;

  constructor(socket: net.Socket, remote?: SocketAddress) {
    this.#s = socket;
    this.#remote = remote ?? sockAddr(socket.remoteAddress, socket.remotePort);
    socket.on('data', (b: Buffer) => this.#h.data(b));
    socket.on('drain', () => this.#h.drain());
    socket.on('end', () => this.#h.end());
    socket.on('error', (e: Error) => this.#h.error(e as NetError));
    socket.on('close', (hadError: boolean) => {
      this.#closed = true;
      this.#h.close(hadError);
    });
    if (remote) {
      socket.once('connect', () => {
        this.#local = undefined;
        this.#h.connect();
      });
    }
  }

  get local(): SocketAddress {
    return (this.#local ??= sockAddr(this.#s.localAddress, this.#s.localPort));
  }

  get remote(): SocketAddress {
    return this.#remote;
  }

  get bytesRead(): number {
    return this.#s.bytesRead;
  }

  get bytesWritten(): number {
    return this.#s.bytesWritten;
  }

  get closed(): boolean {
    return this.#closed;
  }

  setHandlers(h: Partial<ConnHandlers>): void {
    this.#h = { ...this.#h, ...h };
    if (h.data !== undefined && this.#flowing === null) this.resume();
  }

  write(chunk: Uint8Array): boolean {
    if (this.#s.destroyed || this.#s.writableEnded) return false;
    return this.#s.write(chunk);
  }

  end(): void {
    if (!this.#s.destroyed && !this.#s.writableEnded) this.#s.end();
  }

  destroy(): void {
    this.#s.destroy();
  }

  reset(): void {
    if (this.#s.destroyed) return;
    // resetAndDestroy needs a connected handle; a still-connecting socket is just destroyed.
    if (this.#s.connecting) this.#s.destroy();
    else this.#s.resetAndDestroy();
  }

  pause(): void {
    this.#flowing = false;
    this.#s.pause();
  }

  resume(): void {
    this.#flowing = true;
    this.#s.resume();
  }

  /**
   * Hands the socket over to a wrapper (TLS): removes this Conn's listeners and returns the socket, paused. The
   * Conn must not be used afterwards; the wrapper's own Conn takes its place.
   */
  detach(): net.Socket {
    const s = this.#s;
    s.removeAllListeners('data');
    s.removeAllListeners('drain');
    s.removeAllListeners('end');
    s.removeAllListeners('error');
    s.removeAllListeners('close');
    s.removeAllListeners('connect');
    s.pause();
    this.#h = { connect: noop, data: noop, drain: noop, end: noop, error: noop, close: noop };
    return s;
  }
}

class NodeUdpSocket implements UdpSocket {
  readonly #s: dgram.Socket;
  #onMessage: (m: Datagram) => void = noop;
  /** Cached: dgram's address() is a getsockname syscall, and the engine reads it per datagram. */
  #local: SocketAddress | undefined;
  constructor(s: dgram.Socket) {
    this.#s = s;
    s.on('message', (data: Buffer, rinfo: dgram.RemoteInfo) => {
      this.#onMessage({ data, remote: sockAddr(rinfo.address, rinfo.port) });
    });
    s.on('error', noop);
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
}

export function createNodeNetwork(opts: NodeNetworkOptions = {}): Network {
  const resolver = createNodeResolver({ servers: opts.dnsServers ?? [] });
  return {
    clock: nodeClock,
    random: nodeRandom,
    tls: createNodeTls(),

    listenTcp(o: ListenTcpOptions, onConnection: (conn: Conn) => void): Promise<TcpListener> {
      return new Promise((resolve, reject) => {
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
          onConnection(new NodeConn(socket));
        });
        server.once('error', reject);
        server.listen({ host: o.host, port: o.port, backlog: o.backlog ?? 511, exclusive: true }, () => {
          server.off('error', reject);
          server.on('error', noop);
          const a = server.address() as net.AddressInfo;
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
      const socket = new net.Socket({ allowHalfOpen: true });
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

    bindUdp(o: { host: string; port: number }): Promise<UdpSocket> {
      return new Promise((resolve, reject) => {
        const s = dgram.createSocket({ type: net.isIPv6(o.host) ? 'udp6' : 'udp4' });
        s.once('error', reject);
        s.bind(o.port, o.host, () => {
          s.off('error', reject);
          resolve(new NodeUdpSocket(s));
        });
      });
    },
  };
}
