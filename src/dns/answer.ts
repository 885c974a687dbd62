/**
 * The DNS answer function: query bytes + transport + view → response bytes, or a drop. Pure (no I/O, no clock)
 * and total: it never throws, whatever the bytes (an unexpected fault inside becomes SERVFAIL, counted apart).
 *
 * Decoding and encoding go through `dns-packet`, with one exception: the question is echoed from the query's own
 * bytes (copied after the header), so a resolver that randomises the case of the name (0x20) or sends bytes
 * dns-packet cannot round-trip gets its question back exactly. dns-packet writes names uncompressed, so no offset
 * in the rest of the message depends on the question's length.
 *
 * Behaviour (docs/dns.md is the operator's version):
 * - fewer than 12 bytes, or the QR bit set (a response, never answered: no loops): dropped;
 * - opcode other than QUERY: NOTIMP; bytes that do not decode, record counts the bytes cannot hold, a question
 *   count other than 1, a malformed question or OPT, two OPTs: FORMERR; EDNS version above 0: BADVERS;
 * - class other than IN, PTR (no reverse DNS, as Spectrum), zone transfers (AXFR/IXFR), names outside the
 *   served zones: REFUSED;
 * - inside a zone: SOA and NS at the apex, A/AAAA (and ANY: both) of a name, a CNAME followed to its target in the
 *   same answer, NXDOMAIN with the zone's SOA in authority for a name that does not exist, NODATA (NOERROR, no
 *   answer, SOA in authority) for a type the name does not hold. AA is set on these.
 * - EDNS0: the client's UDP size, clamped to 512-1232 (512 without OPT), bounds a UDP answer; one that does not fit
 *   is sent empty with TC set (the client retries over TCP, where up to 65535 bytes fit). The answer carries an OPT
 *   (our size 1232, the client's DO bit copied) when the query had one.
 */
import { decode, encode, type Answer, type DecodedPacket, type Packet } from 'dns-packet';
import type { DnsView, DnsZone } from './view.ts';

export type DnsTransport = 'udp' | 'tcp';
export type DnsRcode = 'NOERROR' | 'FORMERR' | 'SERVFAIL' | 'NXDOMAIN' | 'NOTIMP' | 'REFUSED' | 'BADVERS';

export type DnsOutcome =
  | {
      readonly kind: 'answer';
      readonly bytes: Uint8Array;
      readonly rcode: DnsRcode;
      /** TC was set: the answer did not fit the transport's size. */
      readonly truncated: boolean;
      /** The query could not be read (FORMERR for bytes that do not decode, or a malformed question). */
      readonly malformed: boolean;
    }
  | { readonly kind: 'drop'; readonly reason: 'short' | 'response' };

/** Smallest and largest UDP answer, bytes (RFC 1035's 512; 1232, the DNS Flag Day 2020 figure that avoids fragments). */
export const DNS_UDP_MIN = 512;
export const DNS_UDP_MAX = 1232;
const TCP_MAX = 65_535;

const RCODE_NUM: Record<DnsRcode, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 };
const T = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;
const CLASS_IN = 1;
const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const CD = 0x0010;
const DO = 0x8000;
/** Longest CNAME chain followed inside the view. */
const MAX_CHAIN = 8;

interface RawQuestion {
  /** The question's bytes, name through class. */
  readonly bytes: Uint8Array;
  /** The labels as asked (case kept), one character per byte. */
  readonly labels: readonly string[];
  /** Index of the first label from which on every label is plain (bytes a served name may hold: no dot, no space, ASCII). */
  readonly plainFrom: number;
  readonly qtype: number;
  readonly qclass: number;
}

/** Reads the first question from the query's bytes (offset 12). Undefined: malformed (a pointer, a label past 63, past the end). */
function readQuestion(q: Uint8Array): RawQuestion | undefined {
  let off = 12;
  const labels: string[] = [];
  let plainFrom = 0;
  let wire = 1;
  for (;;) {
    if (off >= q.length) return undefined;
    const len = q[off]!;
    off++;
    if (len === 0) break;
    if (len > 63) return undefined;
    if (off + len > q.length) return undefined;
    wire += len + 1;
    if (wire > 255) return undefined;
    let label = '';
    for (let i = off; i < off + len; i++) {
      const b = q[i]!;
      if (b <= 0x20 || b >= 0x7f || b === 0x2e || b === 0x5c) plainFrom = labels.length + 1;
      label += String.fromCharCode(b);
    }
    labels.push(label);
    off += len;
  }
  if (off + 4 > q.length) return undefined;
  const qtype = (q[off]! << 8) | q[off + 1]!;
  const qclass = (q[off + 2]! << 8) | q[off + 3]!;
  return { bytes: q.subarray(12, off + 4), labels, plainFrom, qtype, qclass };
}

/** The served zone the name lies in (longest suffix), found label by label. */
function zoneOf(view: DnsView, name: string): DnsZone | undefined {
  if (name === '') return undefined;
  for (let n = name; ; ) {
    const z = view.zone(n);
    if (z !== undefined) return z;
    const dot = n.indexOf('.');
    if (dot < 0) return undefined;
    n = n.slice(dot + 1);
  }
}

interface Reply {
  rcode: DnsRcode;
  aa: boolean;
  question: Uint8Array | undefined;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

/** Answers one query. Never throws. */
export function answerQuery(query: Uint8Array, transport: DnsTransport, view: DnsView): DnsOutcome {
  if (query.length < 12) return { kind: 'drop', reason: 'short' };
  const flags = (query[2]! << 8) | query[3]!;
  if ((flags & QR) !== 0) return { kind: 'drop', reason: 'response' };
  try {
    return respond(query, transport, view, flags);
  } catch {
    // A fault of ours (never of the query's bytes, which are checked above): SERVFAIL, header only.
    const out = new Uint8Array(12);
    out.set(query.subarray(0, 2), 0);
    out[2] = (QR | (flags & (0xf << 11)) | (flags & RD)) >> 8;
    out[3] = (flags & CD) | RCODE_NUM.SERVFAIL;
    return { kind: 'answer', bytes: out, rcode: 'SERVFAIL', truncated: false, malformed: false };
  }
}

function respond(query: Uint8Array, transport: DnsTransport, view: DnsView, flags: number): DnsOutcome {
  const reply = (rcode: DnsRcode, question: Uint8Array | undefined, aa = false): Reply => ({ rcode, aa, question, answers: [], authorities: [], additionals: [] });
  const qdcount = (query[4]! << 8) | query[5]!;
  const opcode = (flags >> 11) & 0xf;
  const raw = readQuestion(query);
  if (opcode !== 0) return finish(query, flags, reply('NOTIMP', qdcount === 1 ? raw?.bytes : undefined), undefined, transport, false);

  // dns-packet decodes as many records as the counts claim, reading past the end: 3 × 65,535 records from a query
  // of a few bytes cost seconds of CPU (found by npm run fuzz). A question takes at least 5 bytes and a record 11 (a
  // one-byte root name), so counts that the bytes cannot hold are FORMERR before decoding.
  const rrcount = ((query[6]! << 8) | query[7]!) + ((query[8]! << 8) | query[9]!) + ((query[10]! << 8) | query[11]!);
  if (12 + 5 * qdcount + 11 * rrcount > query.length) return finish(query, flags, reply('FORMERR', undefined), undefined, transport, true);

  let packet: DecodedPacket;
  try {
    packet = decode(Buffer.from(query.buffer, query.byteOffset, query.length));
  } catch {
    return finish(query, flags, reply('FORMERR', undefined), undefined, transport, true);
  }
  if (qdcount !== 1 || raw === undefined) return finish(query, flags, reply('FORMERR', undefined), undefined, transport, true);
  const opts = (packet.additionals ?? []).filter((r) => r.type === 'OPT');
  if (opts.length > 1 || (opts[0] !== undefined && opts[0].name !== '.')) return finish(query, flags, reply('FORMERR', raw.bytes), undefined, transport, true);
  const opt = opts[0] as { udpPayloadSize?: number; ednsVersion?: number; flags?: number } | undefined;
  const edns = opt === undefined ? undefined : { size: opt.udpPayloadSize ?? DNS_UDP_MIN, version: opt.ednsVersion ?? 0, do: ((opt.flags ?? 0) & DO) !== 0 };
  if (edns !== undefined && edns.version > 0) return finish(query, flags, reply('BADVERS', raw.bytes), edns, transport, false);

  if (raw.qtype === T.OPT) return finish(query, flags, reply('FORMERR', raw.bytes), edns, transport, true);
  if (raw.qclass !== CLASS_IN || raw.qtype === T.PTR || raw.qtype === T.AXFR || raw.qtype === T.IXFR) {
    return finish(query, flags, reply('REFUSED', raw.bytes), edns, transport, false);
  }
  // Only the plain trailing labels can name a zone; a name with any other byte exists nowhere (NXDOMAIN in a zone).
  const tail = raw.labels.slice(raw.plainFrom).join('.').toLowerCase();
  const zone = zoneOf(view, tail);
  if (zone === undefined) return finish(query, flags, reply('REFUSED', raw.bytes), edns, transport, false);

  const r = reply('NOERROR', raw.bytes, true);
  const ttl = view.ttlSec;
  const want = raw.qtype;
  let name = raw.plainFrom === 0 ? tail : undefined;
  let owner = raw.labels.join('.');
  /** Records of the wanted type were found at the end of the chain (or the CNAME itself was asked for). */
  let found = false;
  /** The chain ended at a CNAME it did not follow (a loop, too long, or a target outside the served zones). */
  let dangling = false;
  const seen = new Set<string>();
  for (let hop = 0; ; hop++) {
    const data = name === undefined ? undefined : view.lookup(name);
    if (name === undefined || data === undefined) {
      r.rcode = 'NXDOMAIN';
      break;
    }
    const apex = view.zone(name);
    if (apex !== undefined) {
      if (want === T.SOA || want === T.ANY) r.answers.push(soaRecord(apex, view, owner));
      if (want === T.NS || want === T.ANY) {
        for (const ns of apex.ns) {
          r.answers.push({ name: owner, type: 'NS', class: 'IN', ttl, data: ns });
          const glue = view.lookup(ns);
          for (const ip of glue?.a ?? []) r.additionals.push({ name: ns, type: 'A', class: 'IN', ttl, data: ip });
          for (const ip of glue?.aaaa ?? []) r.additionals.push({ name: ns, type: 'AAAA', class: 'IN', ttl, data: ip });
        }
      }
      if (want === T.SOA || want === T.NS || want === T.ANY) found = true;
    }
    if (data.cname !== undefined) {
      r.answers.push({ name: owner, type: 'CNAME', class: 'IN', ttl, data: data.cname });
      seen.add(name);
      const next = data.cname;
      if (want === T.CNAME) {
        found = true;
        break;
      }
      // Follow inside the view only (the target must lie in a served zone), a bounded number of hops.
      if (seen.has(next) || hop + 1 >= MAX_CHAIN || zoneOf(view, next) === undefined) {
        dangling = true;
        break;
      }
      name = next;
      owner = next;
      continue;
    }
    if (want === T.A || want === T.ANY) for (const ip of data.a) r.answers.push({ name: owner, type: 'A', class: 'IN', ttl, data: ip });
    if (want === T.AAAA || want === T.ANY) for (const ip of data.aaaa) r.answers.push({ name: owner, type: 'AAAA', class: 'IN', ttl, data: ip });
    if ((want === T.A || want === T.ANY) && data.a.length > 0) found = true;
    if ((want === T.AAAA || want === T.ANY) && data.aaaa.length > 0) found = true;
    break;
  }
  // NXDOMAIN, or NODATA at the end of the chain: the zone's SOA tells resolvers how long to cache the absence.
  if (!found && !dangling) r.authorities.push(soaRecord((name === undefined ? undefined : zoneOf(view, name)) ?? zone, view));
  return finish(query, flags, r, edns, transport, false);
}

function soaRecord(zone: DnsZone, view: DnsView, owner: string = zone.name): Answer {
  const s = zone.soa;
  return {
    name: owner,
    type: 'SOA',
    class: 'IN',
    ttl: Math.min(view.ttlSec, s.minimum),
    data: { mname: s.mname, rname: s.rname, serial: s.serial, refresh: s.refresh, retry: s.retry, expire: s.expire, minimum: s.minimum },
  };
}

/** Encodes the reply (question spliced from the query), truncating to the transport's size. */
function finish(
  query: Uint8Array,
  qflags: number,
  r: Reply,
  edns: { size: number; version: number; do: boolean } | undefined,
  transport: DnsTransport,
  malformed: boolean,
): DnsOutcome {
  const limit = transport === 'tcp' ? TCP_MAX : edns === undefined ? DNS_UDP_MIN : Math.min(DNS_UDP_MAX, Math.max(DNS_UDP_MIN, edns.size));
  const rc = RCODE_NUM[r.rcode];
  const opt: Answer[] =
    edns === undefined ? [] : [{ name: '.', type: 'OPT', udpPayloadSize: DNS_UDP_MAX, extendedRcode: rc >> 4, ednsVersion: 0, flags: edns.do ? DO : 0, options: [] } as unknown as Answer];
  const base = QR | (qflags & (0xf << 11)) | (qflags & (RD | CD)) | (r.aa ? AA : 0) | (rc & 0xf);
  const build = (truncated: boolean): Uint8Array => {
    const packet: Packet = {
      id: (query[0]! << 8) | query[1]!,
      type: 'response',
      flags: (base | (truncated ? TC : 0)) & 0x7fff,
      questions: [],
      answers: truncated ? [] : r.answers,
      authorities: truncated ? [] : r.authorities,
      additionals: truncated ? opt : [...r.additionals, ...opt],
    };
    const body = encode(packet);
    const q = r.question;
    if (q === undefined) return new Uint8Array(body.buffer, body.byteOffset, body.length);
    const out = new Uint8Array(body.length + q.length);
    out.set(body.subarray(0, 12), 0);
    out[4] = 0;
    out[5] = 1;
    out.set(q, 12);
    out.set(body.subarray(12), 12 + q.length);
    return out;
  };
  let bytes = build(false);
  let truncated = false;
  if (bytes.length > limit) {
    bytes = build(true);
    truncated = true;
  }
  return { kind: 'answer', bytes, rcode: r.rcode, truncated, malformed };
}
