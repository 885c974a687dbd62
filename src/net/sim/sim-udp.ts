/**
 * Simulated UDP: each datagram crosses the link on its own, so loss, duplication, reordering, jitter, bandwidth and
 * queue drops apply per datagram. Nothing is retransmitted and nothing reports a loss, as with real UDP (no ICMP:
 * a datagram to a closed port vanishes).
 */
import { Buffer } from 'node:buffer';
import { type Datagram, type SocketAddress, type UdpSocket } from '../ports.ts';
import { LOST, type Link } from './fabric.ts';
import { parseIp, mapV4, hostPort } from './addr.ts';
import { badPort, nodeError } from './net-error.ts';
import { type UdpKernel } from './kernel.ts';

/** The host kernel as this file sees it (implemented by SimHost). */
type Host = UdpKernel<SimUdpSocket>;

/** Largest UDP payload: 65,535 − 8 (UDP header) − 20 (IPv4 header); IPv6 (40-byte header, no options): 65,527. */
const MAX_UDP_V4 = 65_507;
const MAX_UDP_V6 = 65_527;

interface InFlight {
  readonly link: Link;
  readonly dst: Host;
  readonly dstRoute: string;
  readonly dstPort: number;
  readonly srcRoute: string;
  readonly srcPort: number;
  readonly data: Buffer;
}

export class SimUdpSocket implements UdpSocket {
  readonly local: SocketAddress;
  readonly host: Host;
  /** @internal '0.0.0.0', '::' or a route address. */
  readonly bindAddr: string;
  #handler: ((msg: Datagram) => void) | undefined;
  #closed = false;

  constructor(host: Host, local: SocketAddress, bindAddr: string) {
    this.host = host;
    this.local = local;
    this.bindAddr = bindAddr;
  }

  setHandler(onMessage: (msg: Datagram) => void): void {
    this.#handler = onMessage;
  }

  /**
   * Sends one datagram. Throws like Node's dgram for a closed socket (ERR_SOCKET_DGRAM_NOT_RUNNING) or a bad port
   * (ERR_SOCKET_BAD_PORT). Datagrams Node would fail asynchronously (oversize, wrong family, hostname) are dropped.
   */
  send(data: Uint8Array, port: number, address: string): void {
    if (this.#closed) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    const bad = badPort(port, false);
    if (bad !== undefined) throw bad;
    const host = this.host;
    const sim = host.sim;
    const dst = parseIp(address);
    const v6Socket = this.local.family === 'IPv6';
    const max = v6Socket ? MAX_UDP_V6 : MAX_UDP_V4;
    if (dst === undefined || (dst.family === 'IPv6' && !v6Socket) || data.byteLength > max) {
      if (sim.tracing) sim.emit('udp.drop', host.name, `${hostPort(this.local.address, this.local.port)}>${address}:${port} len=${data.byteLength} invalid`);
      return;
    }
    const src = this.bindAddr === '0.0.0.0' || this.bindAddr === '::' ? host.sourceFor(dst) : this.bindAddr;
    const dstHost = src === undefined ? undefined : sim.route(host, dst.route);
    if (sim.tracing) sim.emit('udp.send', host.name, `${hostPort(src ?? this.bindAddr, this.local.port)}>${hostPort(dst.route, port)} len=${data.byteLength}`);
    if (src === undefined || dstHost === undefined) return; // no route: vanishes
    const link = host.linkTo(dstHost);
    const now = sim.clock.now();
    let at = link.send(now, data.byteLength, true);
    if (at === LOST) return;
    at += link.reorderDelay();
    const pkt: InFlight = { link, dst: dstHost, dstRoute: dst.route, dstPort: port, srcRoute: src, srcPort: this.local.port, data: Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
    sim.clock.postAt(at, onDatagramArrive, pkt);
    const dup = link.duplicateArrival(now);
    if (dup !== LOST) sim.clock.postAt(dup, onDatagramArrive, { ...pkt, data: Buffer.from(pkt.data) });
  }

  /** Closes the socket. Like Node, closing twice throws ERR_SOCKET_DGRAM_NOT_RUNNING. */
  close(): void {
    if (this.#closed) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    this.#closed = true;
    this.host.removeUdp(this);
  }

  /** @internal */
  crash(): void {
    this.#closed = true;
    this.#handler = undefined;
  }

  /** @internal */
  deliver(pkt: InFlight): void {
    if (this.#closed) return;
    const sim = this.host.sim;
    const fromV4 = !pkt.srcRoute.includes(':');
    // A dual-stack socket sees IPv4 peers as IPv4-mapped IPv6 addresses, as Node reports them.
    const remote: SocketAddress =
      this.bindAddr === '::' && fromV4 ? { address: mapV4(pkt.srcRoute), port: pkt.srcPort, family: 'IPv6' } : { address: pkt.srcRoute, port: pkt.srcPort, family: fromV4 ? 'IPv4' : 'IPv6' };
    if (sim.tracing) sim.emit('udp.recv', this.host.name, `${hostPort(remote.address, remote.port)}>${hostPort(this.local.address, this.local.port)} len=${pkt.data.length}`);
    this.#handler?.({ data: pkt.data, remote });
  }
}

function onDatagramArrive(pkt: InFlight): void {
  if (pkt.link.blocked || !pkt.dst.up) {
    pkt.link.stats.blockedDrops++;
    return;
  }
  pkt.dst.findUdp(pkt.dstRoute, pkt.dstPort)?.deliver(pkt);
}
