/**
 * The `resolve` steps: a scripted stub resolver on a client host that sends a real DNS query (dns-packet) over the
 * simulated network and records the answer: rcode, the A or AAAA addresses, their TTL. The server is whatever
 * listens at the address asked (the edges' `startDnsServer`, edges.ts), so a resolve sees what the edge's DNS answers
 * at that moment, rotations included.
 *
 * How it asks, as a system stub resolver does (glibc's defaults: `timeout:5 attempts:2`): over UDP, a query without
 * EDNS and with RD set, from an ephemeral port on the client's first address of the server's family; no answer in
 * 5 s → the same query again; no answer again → `error: ETIMEOUT`. An answer with TC set is asked again over TCP
 * (2-byte length framing, RFC 7766). With `tcp: true` it asks over TCP at once. A TCP exchange that gets no answer
 * in 5 s is destroyed (`ETIMEOUT`); a refused or reset one records the socket's code. Query ids come from a stream of
 * the run's seed per resolve id, so they replay and shift no other randomness.
 *
 * `connect` and `datagram` steps with `resolved` dial the first address of the answer (answer order), as Node's
 * `connect` by name takes the first record.
 */
import { decode, encode, RECURSION_DESIRED, type Answer } from 'dns-packet';
import { type Conn, type UdpSocket } from '../net/ports.ts';
import { canonicalIp, dnsListens, formatIpPort, parseIpPort, sourceAddressOf } from './schema.ts';
import { type ResolveStep, type ScenarioFile } from './types.ts';
import { type World } from './world.ts';

/** How long one attempt waits for an answer, virtual ms (glibc's `timeout:5`). */
export const RESOLVE_TIMEOUT_MS = 5_000;
/** UDP attempts before giving up (glibc's `attempts:2`). */
export const RESOLVE_UDP_ATTEMPTS = 2;

/** One resolve step as the run saw it. */
export interface ResolutionTrack {
  readonly id: string;
  readonly client: string;
  readonly name: string;
  readonly type: 'A' | 'AAAA';
  /** `IP:PORT` asked. */
  readonly server: string;
  /** The transport of the last exchange: `tcp` after a truncated UDP answer, or with `tcp: true`. */
  transport: 'udp' | 'tcp';
  /** A UDP answer came back truncated (TC) and the question was asked again over TCP. */
  truncated: boolean;
  readonly sentAt: number;
  answeredAt: number | undefined;
  /** The answer's rcode (undefined: no answer). */
  rcode: string | undefined;
  /** The answer's records of the type asked (A or AAAA), canonical text, in answer order. */
  addresses: string[];
  /** The smallest TTL of those records, seconds (undefined: none). */
  ttl: number | undefined;
  /** Why there is no answer: ETIMEOUT, EHOSTDOWN (the client's host is down), or the TCP socket's error code. */
  error: string | undefined;
  /** The connection and flow ids that dialled its answer (`resolved`), in the order they did. */
  readonly dialledBy: string[];
}

/** Header RCODE values by number (RFC 1035 §4.1.1). */
const RCODES: Readonly<Record<number, string>> = { 0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED' };

/** A DNS message in TCP framing: a 2-byte length, then the message. */
function framed(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(msg.length + 2);
  out[0] = msg.length >> 8;
  out[1] = msg.length & 0xff;
  out.set(msg, 2);
  return out;
}

/** Runs the resolve steps and keeps their answers. */
export class Resolutions {
  /** By id, in the order the steps ran. */
  readonly tracks = new Map<string, ResolutionTrack>();
  readonly #world: World;
  /** The first `dns.listen`: where a resolve without `server` asks. */
  readonly #defaultServer: string | undefined;

  constructor(world: World, sc: ScenarioFile) {
    this.#world = world;
    this.#defaultServer = dnsListens(sc.dns)[0];
  }

  /** Runs a `resolve` step: the query leaves now; the answer is recorded when it arrives. */
  resolve(step: ResolveStep): void {
    const world = this.#world;
    const server = step.server ?? this.#defaultServer!;
    const srv = parseIpPort(server)!;
    const type = step.type ?? 'A';
    const t: ResolutionTrack = {
      id: step.id,
      client: step.client,
      name: step.name,
      type,
      server: formatIpPort(srv.address, srv.port),
      transport: step.tcp === true ? 'tcp' : 'udp',
      truncated: false,
      sentAt: world.sim.clock.now(),
      answeredAt: undefined,
      rcode: undefined,
      addresses: [],
      ttl: undefined,
      error: undefined,
      dialledBy: [],
    };
    this.tracks.set(step.id, t);
    const host = world.host(step.client);
    if (!host.up) {
      t.error = 'EHOSTDOWN';
      return;
    }
    const query = encode({ type: 'query', id: world.dnsQueryId(step.id), flags: RECURSION_DESIRED, questions: [{ type, class: 'IN', name: step.name }] });
    if (step.tcp === true) this.#tcp(t, query, srv);
    else this.#udp(t, query, srv);
  }

  /**
   * The first address answered to resolve `id`, or why there is none (no answer yet, an error, an rcode other than
   * NOERROR, no record of the type asked).
   */
  /** Notes that connection or flow `by` dials the answer of resolve `id` (for the report). */
  dialled(id: string, by: string): void {
    const t = this.tracks.get(id);
    if (t !== undefined && !t.dialledBy.includes(by)) t.dialledBy.push(by);
  }

  address(id: string): { ok: true; address: string } | { ok: false; why: string } {
    const t = this.tracks.get(id);
    if (t === undefined) return { ok: false, why: `resolve ${id} has not run` };
    if (t.error !== undefined) return { ok: false, why: `resolve ${id} got no answer (${t.error})` };
    if (t.rcode === undefined) return { ok: false, why: `resolve ${id} has no answer yet (asked at ${t.sentAt} ms)` };
    const first = t.addresses[0];
    if (first === undefined) return { ok: false, why: `resolve ${id} answered ${t.rcode} with no ${t.type} record` };
    return { ok: true, address: first };
  }

  #record(t: ResolutionTrack, message: Uint8Array): boolean {
    let p;
    try {
      p = decode(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
    } catch {
      return false; // not a DNS message: a stub ignores it and keeps waiting
    }
    if (p.type !== 'response') return false;
    t.answeredAt = this.#world.sim.clock.now();
    const rcode = message[3]! & 0x0f; // the header's RCODE (no EDNS was sent, so no extended bits)
    t.rcode = RCODES[rcode] ?? `RCODE${rcode}`;
    const records = (p.answers ?? []).filter((a: Answer): a is Answer & { data: string; ttl?: number } => a.type === t.type && typeof a.data === 'string');
    t.addresses = records.map((a) => canonicalIp(a.data));
    t.ttl = records.length === 0 ? undefined : Math.min(...records.map((a) => a.ttl ?? 0));
    return true;
  }

  #udp(t: ResolutionTrack, query: Uint8Array, srv: { address: string; port: number; family: 'IPv4' | 'IPv6' }): void {
    const host = this.#world.host(t.client);
    const from = sourceAddressOf(host.addresses, srv.family, undefined)!;
    const id = (query[0]! << 8) | query[1]!;
    host.bindUdp({ host: from, port: 0 }).then((sock: UdpSocket) => {
      let attempts = 0;
      let done = false;
      let cancel: (() => void) | undefined;
      const finish = (): void => {
        done = true;
        cancel?.();
        sock.close();
      };
      const ask = (): void => {
        attempts++;
        sock.send(query, srv.port, srv.address);
        cancel = host.clock.setTimer(RESOLVE_TIMEOUT_MS, () => {
          if (done) return;
          if (attempts < RESOLVE_UDP_ATTEMPTS) return ask();
          t.error = 'ETIMEOUT';
          finish();
        });
      };
      sock.setHandler((m) => {
        if (done || canonicalIp(m.remote.address) !== canonicalIp(srv.address) || m.remote.port !== srv.port) return;
        if (m.data.byteLength < 12 || ((m.data[0]! << 8) | m.data[1]!) !== id) return;
        const tc = (m.data[2]! & 0x02) !== 0;
        if (tc) {
          finish();
          t.truncated = true;
          t.transport = 'tcp';
          this.#tcp(t, query, srv);
          return;
        }
        if (this.#record(t, m.data)) finish();
      });
      ask();
    }, (e: unknown) => {
      t.error = (e as { code?: string }).code ?? 'error';
    });
  }

  #tcp(t: ResolutionTrack, query: Uint8Array, srv: { address: string; port: number }): void {
    const host = this.#world.host(t.client);
    const conn: Conn = host.connectTcp({ host: srv.address, port: srv.port });
    let buf = new Uint8Array(0);
    let answered = false;
    const cancel = host.clock.setTimer(RESOLVE_TIMEOUT_MS, () => {
      if (answered) return;
      t.error ??= 'ETIMEOUT';
      conn.destroy();
    });
    conn.setHandlers({
      connect() {
        conn.write(framed(query));
      },
      data: (d) => {
        if (answered) return;
        const next = new Uint8Array(buf.length + d.length);
        next.set(buf, 0);
        next.set(d, buf.length);
        buf = next;
        if (buf.length < 2) return;
        const len = (buf[0]! << 8) | buf[1]!;
        if (buf.length < 2 + len) return;
        answered = this.#record(t, buf.subarray(2, 2 + len));
        if (answered) {
          cancel();
          conn.end();
        }
      },
      end() {
        conn.end();
      },
      error(e) {
        if (!answered) t.error ??= e.code;
      },
      close() {
        if (answered) return;
        cancel();
        t.error ??= 'ECONNRESET'; // the server closed without an answer
      },
    });
  }
}
