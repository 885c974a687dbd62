/**
 * The kernel of a simulated host as its sockets see it: the narrow interface SimConn, SimListener and SimUdpSocket
 * program against (implemented by SimHost, host.ts), and the world they reach through it (implemented by Sim,
 * sim.ts). Sockets import this file instead of host.ts or sim.ts, so the dependencies run one way:
 * sim.ts → host.ts → sim-conn.ts / sim-udp.ts / sim-tls.ts → kernel.ts.
 */
import type { Clock } from '../ports.ts';
import type { IpInfo } from './addr.ts';
import type { Link } from './fabric.ts';
import type { SimDns } from './sim-dns.ts';
import type { VirtualClock } from './virtual-clock.ts';

/** TCP timing and buffer sizes. Times in ms, sizes in bytes. Defaults are Linux's and Node 20's. */
export interface TcpParams {
  /** SYN retransmissions before `ETIMEDOUT` (net.ipv4.tcp_syn_retries = 6: fails after 127 s). */
  readonly synRetries: number;
  /** First SYN retransmission timeout, doubled per retry (Linux: 1 s). */
  readonly synRtoMs: number;
  /** Retransmission timeout after a lost segment, doubled per retry (Linux TCP_RTO_MIN: 200 ms). */
  readonly rtoMinMs: number;
  /** Ceiling of the doubling RTO (Linux TCP_RTO_MAX: 120 s). */
  readonly rtoMaxMs: number;
  /** Retransmissions of one segment before `ETIMEDOUT` (net.ipv4.tcp_retries2 = 15: ≈ 924.6 s at 200 ms RTO). */
  readonly dataRetries: number;
  /** How long a server-side half-open handshake waits for the client's ACK (tcp_synack_retries = 5: 63 s). */
  readonly synAckTimeoutMs: number;
  /** Lifetime of a destroyed socket whose FIN was acknowledged but whose peer never sends FIN (tcp_fin_timeout). */
  readonly finTimeoutMs: number;
  /** Node's `writableHighWaterMark` (16 KiB on Node 20). */
  readonly writableHighWaterMark: number;
  /** Node's `readableHighWaterMark`: a paused socket keeps reading from the kernel up to this many bytes. */
  readonly readableHighWaterMark: number;
  /**
   * Node reads a socket from the kernel only from the tick after its owner first lets data flow (`resume()`, or a
   * data handler while not paused), as the Node adapter's sockets do (ports.ts: a Conn starts paused; accepted ones
   * via `pauseOnConnect`, dialled ones paused before connect). Until then unread bytes stay in the kernel: `destroy()`
   * sends RST if any byte is unread, and an arriving RST is seen only by the next write. True by default, because
   * that is what Refract's real Conns do; false models a plain `net.Socket`, which reads from connect on, up to
   * `readableHighWaterMark` while paused.
   */
  readonly readStartsOnResume: boolean;
  /** Kernel send buffer: unsent plus unacknowledged bytes. */
  readonly sendBufferBytes: number;
  /** Receive window: bytes in flight plus bytes received but not yet read by the application. */
  readonly receiveWindowBytes: number;
}

export const DEFAULT_TCP: TcpParams = Object.freeze({
  synRetries: 6,
  synRtoMs: 1_000,
  rtoMinMs: 200,
  rtoMaxMs: 120_000,
  dataRetries: 15,
  synAckTimeoutMs: 63_000,
  finTimeoutMs: 60_000,
  writableHighWaterMark: 16_384,
  readableHighWaterMark: 16_384,
  readStartsOnResume: true,
  sendBufferBytes: 65_536,
  receiveWindowBytes: 65_536,
});

/** What a host and its sockets need of the world. `H` is the host type the world routes to. Implemented by Sim. */
export interface SimWorld<H> {
  readonly clock: VirtualClock;
  readonly tcp: TcpParams;
  readonly dns: SimDns;
  /** Whether `emit` has a listener (callers skip building event text otherwise). */
  readonly tracing: boolean;
  emit(type: string, host: string, detail: string): void;
  /** The host that owns `route` as seen from `from` (loopback stays on `from`), or undefined. */
  route(from: H, route: string): H | undefined;
  /** The link from host `a` to host `b` by name. */
  link(a: string, b: string): Link;
}

/** What every socket needs of its host. `H` is the host type on the other end of a link. */
export interface SimKernel<H> {
  readonly name: string;
  readonly sim: SimWorld<H>;
  /** False while crashed. */
  readonly up: boolean;
  /** Bumped by each crash; work scheduled by an earlier incarnation is void. */
  readonly incarnation: number;
  /** This host's link towards `other` (cached; parameters can change in place). */
  linkTo(other: H): Link;
}

/** The TCP half of the kernel: TCB and listener tables, ports. `C` is the TCB (SimConn), `L` the listener. */
export interface TcpKernel<C, L> extends SimKernel<TcpKernel<C, L>> {
  /** TCBs by `tcbKey(localRoute, lport, remoteRoute, rport)`. */
  readonly tcbs: Map<number, C>;
  /** Connections whose application side is open (close not yet emitted). */
  readonly appConns: Set<C>;
  /** The key of a connection in `tcbs`. */
  tcbKey(localRoute: string, lport: number, remoteRoute: string, rport: number): number;
  /** The listener that takes a SYN for `route:port`: exact address, then the wildcards. */
  findListener(route: string, port: number): L | undefined;
  /** The server-side TCB for a SYN from `client`. */
  acceptedConn(listener: L, client: C): C;
  removeListener(listener: L): void;
  releaseTcpPort(port: number, addr: string): void;
  /**
   * A connection arrives at accept (already in `appConns`): 'ok'; 'refused' when the descriptor guard resets it
   * (counted); 'lost' when no descriptor is left and the kernel closes it unseen (HostOptions.maxDescriptors).
   */
  admitAccept(): 'ok' | 'refused' | 'lost';
}

/** The UDP half of the kernel. `U` is the socket (SimUdpSocket). */
export interface UdpKernel<U> extends SimKernel<UdpKernel<U>> {
  findUdp(route: string, port: number): U | undefined;
  removeUdp(sock: U): void;
  /** The source address for a packet to `dst`, or undefined when the host has none of that family. */
  sourceFor(dst: IpInfo): string | undefined;
}

/** What simulated TLS needs of its host: its clock (for the handshake timeout). */
export interface TlsKernel {
  readonly clock: Clock;
}
