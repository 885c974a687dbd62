/**
 * The DNS server: `answerQuery` over UDP and TCP on one address and port, through the Network port only, so the
 * same server runs on real sockets (`refract serve`) and in the simulator.
 *
 * - UDP: one answer datagram per query datagram, sent back to the sender's address and port.
 * - TCP (RFC 7766): messages framed by a 2-byte length, several queries per connection answered in order; a
 *   connection idle for `tcpIdleTimeoutMs` (default 10 s) is closed, and so is one whose client sends a 0-length
 *   frame. At most `maxTcpConnections` (default 256) are open at once; one more is closed at once.
 * - Counters (`counters()`): queries received per transport, answers per rcode, dropped, truncated, malformed.
 * - `view()` is called once per query, so a new view (after a config apply) takes effect on the next query.
 */
import type { Cancel, Conn, Network, SocketAddress, TcpListener, UdpSocket } from '../net/ports.ts';
import { RefractError, listenErrorCode } from '../model/errors.ts';
import { answerQuery, type DnsRcode, type DnsTransport } from './answer.ts';
import type { DnsView } from './view.ts';

export interface DnsCounters {
  /** Queries received (datagrams over UDP, frames over TCP). */
  readonly udpQueries: number;
  readonly tcpQueries: number;
  /** Answers sent, by rcode. */
  readonly rcodes: Readonly<Record<DnsRcode, number>>;
  /** Queries not answered: shorter than a header, or a response (QR set). */
  readonly dropped: number;
  /** UDP answers that did not fit and were sent empty with TC set. */
  readonly truncated: number;
  /** Queries that could not be read: dropped for a short header, FORMERR for the rest. */
  readonly malformed: number;
  /** TCP connections accepted, and refused past `maxTcpConnections`. */
  readonly tcpConnections: number;
  readonly tcpRefused: number;
}

export interface DnsServerOptions {
  readonly tcpIdleTimeoutMs?: number;
  readonly maxTcpConnections?: number;
}

export interface DnsServer {
  /** The bound address (UDP and TCP share it; with port 0, the port both got). */
  readonly address: SocketAddress;
  counters(): DnsCounters;
  /** Stops both listeners and closes open TCP connections. Resolves once the ports are released. */
  close(): Promise<void>;
}

const DEFAULT_TCP_IDLE_MS = 10_000;
const DEFAULT_MAX_TCP = 256;
/** Port-0 binds: how often to retry when the TCP port the UDP bind got is taken. */
const PORT_ZERO_TRIES = 8;

function zeroRcodes(): Record<DnsRcode, number> {
  return { NOERROR: 0, FORMERR: 0, SERVFAIL: 0, NXDOMAIN: 0, NOTIMP: 0, REFUSED: 0, BADVERS: 0 };
}

/**
 * Binds UDP and TCP on `listen` (port 0: any port free for both) and starts answering from `view()`.
 * Rejects with a RefractError E_LISTEN_* (`details: { address, port, dns: true, cause }`) when a bind fails.
 */
export async function startDnsServer(
  net: Network,
  listen: { readonly host: string; readonly port: number },
  view: () => DnsView,
  opts: DnsServerOptions = {},
): Promise<DnsServer> {
  const idleMs = opts.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_MS;
  const maxTcp = opts.maxTcpConnections ?? DEFAULT_MAX_TCP;
  const c = { udpQueries: 0, tcpQueries: 0, rcodes: zeroRcodes(), dropped: 0, truncated: 0, malformed: 0, tcpConnections: 0, tcpRefused: 0 };
  const open = new Set<TcpClient>();
  let closed = false;

  /** One query through the answer function, counted; the bytes to send back, if any. */
  const handle = (query: Uint8Array, transport: DnsTransport): Uint8Array | undefined => {
    if (transport === 'udp') c.udpQueries++;
    else c.tcpQueries++;
    const out = answerQuery(query, transport, view());
    if (out.kind === 'drop') {
      c.dropped++;
      if (out.reason === 'short') c.malformed++;
      return undefined;
    }
    c.rcodes[out.rcode]++;
    if (out.truncated) c.truncated++;
    if (out.malformed) c.malformed++;
    return out.bytes;
  };

  const onUdp = (sock: UdpSocket) => (msg: { data: Uint8Array; remote: SocketAddress }) => {
    if (closed) return;
    const bytes = handle(msg.data, 'udp');
    if (bytes === undefined) return;
    try {
      sock.send(bytes, msg.remote.port, msg.remote.address);
    } catch {
      // The socket closed under us (shutdown) or the address is unusable: the client retries.
    }
  };

  const onTcp = (conn: Conn): void => {
    if (closed || open.size >= maxTcp) {
      c.tcpRefused++;
      conn.destroy();
      return;
    }
    c.tcpConnections++;
    const client = new TcpClient(conn, net, idleMs, (q) => handle(q, 'tcp'), () => open.delete(client));
    open.add(client);
  };

  let udp: UdpSocket | undefined;
  let tcp: TcpListener | undefined;
  const tries = listen.port === 0 ? PORT_ZERO_TRIES : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      udp = await net.bindUdp({ host: listen.host, port: listen.port });
    } catch (e) {
      throw bindError(e, listen.host, listen.port, 'udp');
    }
    try {
      tcp = await net.listenTcp({ host: listen.host, port: udp.local.port }, onTcp);
      break;
    } catch (e) {
      const port = udp.local.port;
      udp.close();
      udp = undefined;
      if (attempt >= tries || (e as { code?: string }).code !== 'EADDRINUSE') throw bindError(e, listen.host, port, 'tcp');
    }
  }
  const sock = udp;
  sock.setHandler(onUdp(sock));

  return {
    address: sock.local,
    counters: () => ({ ...c, rcodes: { ...c.rcodes } }),
    close: async () => {
      if (closed) return;
      closed = true;
      for (const cl of [...open]) cl.destroy();
      open.clear();
      try {
        sock.close();
      } catch {
        // already closed
      }
      await tcp.close();
    },
  };
}

function bindError(e: unknown, host: string, port: number, transport: 'udp' | 'tcp'): RefractError {
  const code = (e as { code?: string }).code;
  return new RefractError(listenErrorCode(code), {
    message: `the DNS server cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port} (${transport}): ${code ?? (e as Error).message}`,
    details: { address: host, port, dns: true, transport, cause: code },
    cause: e,
  });
}

/** One TCP client: reads length-framed queries, writes framed answers in order, closes when idle. */
class TcpClient {
  readonly #conn: Conn;
  readonly #net: Network;
  readonly #idleMs: number;
  readonly #answer: (q: Uint8Array) => Uint8Array | undefined;
  readonly #gone: () => void;
  #buf: Uint8Array = new Uint8Array(0);
  #last: number;
  #timer: Cancel | undefined;
  #done = false;

  constructor(conn: Conn, net: Network, idleMs: number, answer: (q: Uint8Array) => Uint8Array | undefined, gone: () => void) {
    this.#conn = conn;
    this.#net = net;
    this.#idleMs = idleMs;
    this.#answer = answer;
    this.#gone = gone;
    this.#last = net.clock.now();
    conn.setHandlers({
      data: (chunk) => this.#data(chunk),
      drain: () => conn.resume(),
      end: () => this.#finish(() => conn.end()),
      error: () => undefined,
      close: () => this.#finish(() => undefined),
    });
    this.#arm(idleMs);
    conn.resume();
  }

  destroy(): void {
    this.#finish(() => this.#conn.destroy());
  }

  #arm(ms: number): void {
    this.#timer = this.#net.clock.setTimer(ms, () => {
      const idle = this.#net.clock.now() - this.#last;
      if (idle >= this.#idleMs) this.#finish(() => this.#conn.end());
      else this.#arm(this.#idleMs - idle);
    });
  }

  #finish(then: () => void): void {
    if (this.#done) return;
    this.#done = true;
    this.#timer?.();
    this.#gone();
    then();
  }

  #data(chunk: Uint8Array): void {
    if (this.#done) return;
    this.#last = this.#net.clock.now();
    // The chunk may be a reused read buffer (ports.ts): copy what is kept.
    const buf = new Uint8Array(this.#buf.length + chunk.length);
    buf.set(this.#buf, 0);
    buf.set(chunk, this.#buf.length);
    let off = 0;
    while (buf.length - off >= 2) {
      const len = (buf[off]! << 8) | buf[off + 1]!;
      if (len === 0) {
        this.#finish(() => this.#conn.end());
        return;
      }
      if (buf.length - off - 2 < len) break;
      const reply = this.#answer(buf.subarray(off + 2, off + 2 + len));
      off += 2 + len;
      if (reply === undefined) continue;
      const framed = new Uint8Array(reply.length + 2);
      framed[0] = reply.length >> 8;
      framed[1] = reply.length & 0xff;
      framed.set(reply, 2);
      if (!this.#conn.write(framed)) this.#conn.pause();
    }
    this.#buf = buf.slice(off);
  }
}
