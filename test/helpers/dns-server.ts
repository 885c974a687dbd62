/**
 * A tiny authoritative DNS server on loopback UDP for tests (node:dgram, an ephemeral port, dns-packet codec).
 *
 * - A known name answers NOERROR with its records of the asked type (AA set), or NOERROR with no answers when it
 *   has none of that type; an unknown name answers NXDOMAIN.
 * - A name with a CNAME answers the CNAME and, when the target is known here, the target's records (one level of
 *   chasing per hop, at most 8 hops), as a recursive server would.
 * - `misbehave(name, how)` makes a name fail on purpose: SERVFAIL, REFUSED, a truncated (TC) empty answer, or no
 *   answer at all (`drop`, for timeouts). `set` and `remove` clear it.
 * - `queries` counts every datagram received, decodable or not.
 */
import { createSocket } from 'node:dgram';
import { decode, encode, type Answer, type DecodedPacket, type SrvData } from 'dns-packet';

export type TestRecordType = 'A' | 'AAAA' | 'SRV' | 'CNAME';
export type Misbehaviour = 'servfail' | 'refused' | 'truncate' | 'drop';

export interface TestDnsServer {
  readonly port: number;
  /** Replaces the records of `type` at `name` (case-insensitive, trailing dot optional). TTL in seconds. */
  set(name: string, type: 'A' | 'AAAA', addresses: readonly string[], ttl: number): void;
  set(name: string, type: 'SRV', records: readonly SrvData[], ttl: number): void;
  set(name: string, type: 'CNAME', target: readonly [string], ttl: number): void;
  /** Forgets the name: it answers NXDOMAIN from now on. */
  remove(name: string): void;
  misbehave(name: string, how: Misbehaviour): void;
  /** Datagrams received so far. */
  readonly queries: number;
  close(): Promise<void>;
}

interface Zone {
  readonly rrsets: Map<TestRecordType, { readonly data: readonly (string | SrvData)[]; readonly ttl: number }>;
  misbehaviour: Misbehaviour | undefined;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
const FLAG_AA = 1 << 10;
const FLAG_TC = 1 << 9;
const FLAG_RD = 1 << 8;

/** Starts the server on 127.0.0.1 and an ephemeral port. */
export async function startDnsServer(): Promise<TestDnsServer> {
  const zones = new Map<string, Zone>();
  const key = (name: string): string => (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
  let queries = 0;

  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    queries++;
    let query: DecodedPacket;
    try {
      query = decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (query.flag_qr || !q) return;
    const zone = zones.get(key(q.name));
    if (zone?.misbehaviour === 'drop') return;

    let rcode: number = RCODE.NOERROR;
    let flags = FLAG_AA | ((query.flags ?? 0) & FLAG_RD);
    const answers: Answer[] = [];
    if (zone === undefined) rcode = RCODE.NXDOMAIN;
    else if (zone.misbehaviour === 'servfail') rcode = RCODE.SERVFAIL;
    else if (zone.misbehaviour === 'refused') rcode = RCODE.REFUSED;
    else if (zone.misbehaviour === 'truncate') flags |= FLAG_TC;
    else {
      let owner = key(q.name);
      for (let hop = 0; hop < 8; hop++) {
        const z = zones.get(owner);
        if (!z) break;
        const cname = z.rrsets.get('CNAME');
        if (cname && q.type !== 'CNAME') {
          const target = cname.data[0] as string;
          answers.push({ type: 'CNAME', name: owner, ttl: cname.ttl, data: target });
          owner = key(target);
          continue;
        }
        const rrset = z.rrsets.get(q.type as TestRecordType);
        for (const data of rrset?.data ?? []) {
          if (q.type === 'SRV') answers.push({ type: 'SRV', name: owner, ttl: rrset?.ttl ?? 0, data: data as SrvData });
          else answers.push({ type: q.type as 'A' | 'AAAA' | 'CNAME', name: owner, ttl: rrset?.ttl ?? 0, data: data as string });
        }
        break;
      }
    }
    const response = encode({ type: 'response', id: query.id ?? 0, flags: flags | rcode, questions: [q], answers });
    socket.send(response, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });

  const zoneFor = (name: string): Zone => {
    let z = zones.get(key(name));
    if (!z) zones.set(key(name), (z = { rrsets: new Map(), misbehaviour: undefined }));
    return z;
  };

  return {
    port: socket.address().port,
    set(name: string, type: TestRecordType, data: readonly (string | SrvData)[], ttl: number): void {
      const z = zoneFor(name);
      z.misbehaviour = undefined;
      z.rrsets.set(type, { data: [...data], ttl });
    },
    remove(name) {
      zones.delete(key(name));
    },
    misbehave(name, how) {
      zoneFor(name).misbehaviour = how;
    },
    get queries() {
      return queries;
    },
    close() {
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
