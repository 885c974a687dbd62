/**
 * The real DNS client behind `Network.resolve` (src/net/node). Two modes:
 *
 * - **Configured servers** (`node.dnsServers` non-empty): a small stub resolver over UDP with the `dns-packet`
 *   codec. One socket per query (a fresh random source port) connected to the server, so the kernel drops datagrams
 *   from anyone else and an ICMP port-unreachable surfaces as `ECONNREFUSED`. Each query carries a random 16-bit id
 *   (node:crypto); only a response with our id and our exact question is accepted, anything else is ignored.
 *   Servers are tried in order, `tries` rounds over the list; a timeout, refusal, SERVFAIL/REFUSED/NOTIMP/FORMERR
 *   moves on to the next server; NXDOMAIN, an empty NOERROR answer and a truncated (TC) answer end the lookup at
 *   once (they are answers, not outages). There is no TCP fallback: a TC answer rejects with `EBADRESP` whose
 *   message says so. Queries carry an EDNS0 OPT record (1232-byte UDP payload, the DNS flag day 2020 value) so large
 *   SRV sets rarely truncate; a server that answers FORMERR to EDNS is asked again without it.
 * - **System resolver** (`servers` empty): node:dns `Resolver`, i.e. c-ares with the servers of /etc/resolv.conf
 *   (not getaddrinfo: /etc/hosts does not apply). `resolve4`/`resolve6` give TTLs; `resolveSrv` does not, so SRV
 *   answers from the system resolver carry {@link SYSTEM_SRV_TTL_SEC}.
 *
 * Errors are NetError-shaped with Node's dns codes: `ENOTFOUND` (NXDOMAIN), `ENODATA` (name exists, no record of
 * that type), `ESERVFAIL`, `EREFUSED`, `ENOTIMP`, `EFORMERR`, `EBADRESP` (truncated or unusable answer),
 * `ETIMEOUT`, `ECONNREFUSED`.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { decode, encode, type DecodedPacket } from 'dns-packet';
import { RefractError } from '../../model/errors.ts';
import type { DnsAnswer, DnsRecordType, IpFamily, NetError } from '../ports.ts';

/** TTL reported for SRV answers from the system resolver, whose `resolveSrv` does not expose record TTLs. Seconds. */
export const SYSTEM_SRV_TTL_SEC = 60;

const DEFAULTS = {
  timeoutMs: 2_000, // per query to one server
  tries: 2, // rounds over the server list
  ednsPayload: 1_232, // bytes; DNS flag day 2020
} as const;

export interface NodeResolverOptions {
  /** `IPv4`, `IPv4:port`, `IPv6` or `[IPv6]:port`; the port defaults to 53. Empty = the system resolver. */
  readonly servers: readonly string[];
  /** How long to wait for one server's answer before moving on, ms. Default 2000. */
  readonly timeoutMs?: number;
  /** Rounds over the server list (each server is asked at most this many times). Default 2. */
  readonly tries?: number;
}

export interface DnsServerAddress {
  readonly host: string;
  readonly port: number;
  readonly family: IpFamily;
}

/**
 * Parses one configured DNS server. Throws RefractError `E_CONFIG_SCHEMA` for anything but an IP address with an
 * optional port (a server given by name would need a resolver to find the resolver).
 */
export function parseDnsServer(spec: string): DnsServerAddress {
  const bad = (): RefractError =>
    new RefractError('E_CONFIG_SCHEMA', {
      message: `DNS server "${spec}" must be an IP address with an optional port, e.g. 10.0.0.1, 127.0.0.1:5353, [::1]:53.`,
      details: { server: spec },
    });
  const s = spec.trim();
  let host = s;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
    if (isIP(host) !== 6) throw bad();
  } else if (isIP(s) === 0) {
    const colon = s.lastIndexOf(':');
    if (colon < 0) throw bad();
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (isIP(host) !== 4) throw bad();
  }
  const port = portText === undefined ? 53 : Number(portText);
  if (!/^\d*$/.test(portText ?? '') || !Number.isInteger(port) || port < 1 || port > 65535) throw bad();
  return { host, port, family: isIP(host) === 6 ? 'IPv6' : 'IPv4' };
}

/**
 * Builds the resolver `Network.resolve` delegates to. A/AAAA answers list addresses with their family; SRV answers
 * list targets (`address` = target name) with port, priority and weight, sorted by priority ascending then weight
 * descending. `ttlSec` is the smallest TTL of the records used (CNAMEs followed included). Rejects with a NetError.
 * Throws RefractError `E_CONFIG_SCHEMA` at once for a malformed server.
 */
export function createNodeResolver(opts: NodeResolverOptions): (name: string, type: DnsRecordType) => Promise<DnsAnswer> {
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.timeoutMs;
  const tries = Math.max(1, opts.tries ?? DEFAULTS.tries);
  if (opts.servers.length === 0) return systemResolver(timeoutMs, tries);
  const servers = opts.servers.map(parseDnsServer);
  return (name, type) => queryServers(servers, stripDot(name), type, timeoutMs, tries);
}

// ── configured servers over UDP ──────────────────────────────────────────────────────────────────────────────────

/** A server's verdict: an answer, or an error that is `final` (an answer about the name) or not (try elsewhere). */
type Verdict = { readonly ok: true; readonly answer: DnsAnswer } | { readonly ok: false; readonly final: boolean; readonly error: NetError };

async function queryServers(
  servers: readonly DnsServerAddress[],
  name: string,
  type: DnsRecordType,
  timeoutMs: number,
  tries: number,
): Promise<DnsAnswer> {
  let worst: NetError | undefined;
  for (let round = 0; round < tries; round++) {
    for (const server of servers) {
      let verdict: Verdict;
      try {
        let response = await exchange(server, name, type, timeoutMs, true);
        // RFC 6891 §7: a FORMERR to a query with OPT may mean the server predates EDNS; ask once more without it.
        if (rcodeOf(response) === 1) response = await exchange(server, name, type, timeoutMs, false);
        verdict = interpret(response, name, type);
      } catch (e) {
        verdict = { ok: false, final: false, error: e as NetError };
      }
      if (verdict.ok) return verdict.answer;
      if (verdict.final) throw verdict.error;
      worst = moreTelling(worst, verdict.error);
    }
  }
  // Unreachable with ≥ 1 server and ≥ 1 round, but keeps the type honest.
  throw worst ?? netError('ETIMEOUT', name, type);
}

/** Which error to report when every server failed: a DNS answer beats a refusal, which beats a timeout. */
function moreTelling(a: NetError | undefined, b: NetError): NetError {
  const rank = (e: NetError): number => (e.code === 'ETIMEOUT' ? 0 : e.code === 'ECONNREFUSED' ? 1 : 2);
  return a === undefined || rank(b) > rank(a) ? b : a;
}

/** Sends one query to one server and resolves with the first response that matches id and question. */
function exchange(server: DnsServerAddress, name: string, type: DnsRecordType, timeoutMs: number, edns: boolean): Promise<DecodedPacket> {
  return new Promise((resolve, reject) => {
    const id = randomInt(0, 0x1_0000);
    const query = encode({
      type: 'query',
      id,
      flags: 1 << 8, // RD: a configured server is usually a recursive resolver
      questions: [{ type, name, class: 'IN' }],
      additionals: edns
        ? [{ type: 'OPT', name: '.', udpPayloadSize: DEFAULTS.ednsPayload, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }]
        : [],
    });
    const socket = createSocket(server.family === 'IPv6' ? 'udp6' : 'udp4');
    let settled = false;
    const finish = (err: NetError | undefined, packet?: DecodedPacket): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // ERR_SOCKET_DGRAM_NOT_RUNNING: already closed after an error; nothing left to release.
      }
      if (err) reject(err);
      else if (packet) resolve(packet);
    };
    const timer = setTimeout(() => finish(netError('ETIMEOUT', name, type, server)), timeoutMs);
    socket.on('error', (e: NodeJS.ErrnoException) => finish(netError(e.code ?? 'ECONNREFUSED', name, type, server)));
    socket.on('message', (msg) => {
      let packet: DecodedPacket;
      try {
        packet = decode(msg);
      } catch {
        return; // garbage: keep waiting for the real answer until the timeout
      }
      if (packet.id !== id || !packet.flag_qr) return;
      const q = packet.questions?.[0];
      if (packet.questions?.length !== 1 || !q || q.type !== type || stripDot(q.name).toLowerCase() !== name.toLowerCase()) return;
      finish(undefined, packet);
    });
    // With a callback, dgram hands a connect failure (EADDRNOTAVAIL: no IPv6 on this host, …) to it, not to 'error'.
    socket.connect(server.port, server.host, (connectErr?: Error) => {
      if (connectErr) {
        finish(netError((connectErr as NodeJS.ErrnoException).code ?? 'ECONNREFUSED', name, type, server));
        return;
      }
      socket.send(query, (err) => {
        if (err) finish(netError((err as NodeJS.ErrnoException).code ?? 'ECONNREFUSED', name, type, server));
      });
    });
  });
}

function rcodeOf(p: DecodedPacket): number {
  return (p.flags ?? 0) & 0xf;
}

function interpret(p: DecodedPacket, name: string, type: DnsRecordType): Verdict {
  if (p.flag_tc) {
    return {
      ok: false,
      final: true,
      error: netError('EBADRESP', name, type, undefined, 'the answer was truncated (TC bit set) and Refract has no TCP fallback for DNS'),
    };
  }
  switch (rcodeOf(p)) {
    case 0:
      break;
    case 3:
      return { ok: false, final: true, error: netError('ENOTFOUND', name, type) };
    case 2:
      return { ok: false, final: false, error: netError('ESERVFAIL', name, type) };
    case 5:
      return { ok: false, final: false, error: netError('EREFUSED', name, type) };
    case 4:
      return { ok: false, final: false, error: netError('ENOTIMP', name, type) };
    case 1:
      return { ok: false, final: false, error: netError('EFORMERR', name, type) };
    default:
      return { ok: false, final: false, error: netError('EBADRESP', name, type) };
  }

  // Follow the CNAME chain from the question name (a recursive server puts it in the same answer); accept records
  // of the asked type owned by any name on the chain. The chain's CNAME TTLs bound the answer's lifetime too.
  const answers = p.answers ?? [];
  const chain = new Set([name.toLowerCase()]);
  let ttl = Infinity;
  for (let grew = true, rounds = 0; grew && rounds < answers.length; rounds++) {
    grew = false;
    for (const a of answers) {
      if (a.type === 'CNAME' && chain.has(stripDot(a.name).toLowerCase())) {
        const target = stripDot(a.data).toLowerCase();
        if (!chain.has(target)) {
          chain.add(target);
          ttl = Math.min(ttl, a.ttl ?? 0);
          grew = true;
        }
      }
    }
  }

  const records: Array<DnsAnswer['records'][number]> = [];
  for (const a of answers) {
    if (!chain.has(stripDot(a.name).toLowerCase())) continue;
    if (type === 'A' && a.type === 'A') records.push({ address: a.data, family: 'IPv4' });
    else if (type === 'AAAA' && a.type === 'AAAA') records.push({ address: a.data, family: 'IPv6' });
    else if (type === 'SRV' && a.type === 'SRV') {
      const target = stripDot(a.data.target);
      if (target === '') continue; // RFC 2782: target "." = the service is decidedly not available at this name
      records.push({ address: target, port: a.data.port, priority: a.data.priority ?? 0, weight: a.data.weight ?? 0 });
    } else continue;
    ttl = Math.min(ttl, a.ttl ?? 0);
  }
  if (records.length === 0) return { ok: false, final: true, error: netError('ENODATA', name, type) };
  if (type === 'SRV') records.sort(bySrvOrder);
  return { ok: true, answer: { records, ttlSec: ttl } };
}

// ── system resolver (c-ares) ─────────────────────────────────────────────────────────────────────────────────────

function systemResolver(timeoutMs: number, tries: number): (name: string, type: DnsRecordType) => Promise<DnsAnswer> {
  const resolver = new Resolver({ timeout: timeoutMs, tries });
  return async (name, type) => {
    try {
      switch (type) {
        case 'A': {
          const rs = await resolver.resolve4(name, { ttl: true });
          return withTtl(name, type, rs.map((r) => ({ address: r.address, family: 'IPv4' as const })), rs.map((r) => r.ttl));
        }
        case 'AAAA': {
          const rs = await resolver.resolve6(name, { ttl: true });
          return withTtl(name, type, rs.map((r) => ({ address: r.address, family: 'IPv6' as const })), rs.map((r) => r.ttl));
        }
        case 'SRV': {
          const rs = await resolver.resolveSrv(name);
          const records = rs
            .filter((r) => stripDot(r.name) !== '')
            .map((r) => ({ address: stripDot(r.name), port: r.port, priority: r.priority, weight: r.weight }))
            .sort(bySrvOrder);
          return withTtl(name, type, records, [SYSTEM_SRV_TTL_SEC]);
        }
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (typeof err.code === 'string' && err.code !== '') throw err as NetError;
      throw netError('EBADRESP', name, type, undefined, err.message);
    }
  };
}

function withTtl(name: string, type: DnsRecordType, records: DnsAnswer['records'], ttls: readonly number[]): DnsAnswer {
  if (records.length === 0) throw netError('ENODATA', name, type);
  return { records, ttlSec: Math.min(...ttls) };
}

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────────

function bySrvOrder(a: DnsAnswer['records'][number], b: DnsAnswer['records'][number]): number {
  return (a.priority ?? 0) - (b.priority ?? 0) || (b.weight ?? 0) - (a.weight ?? 0);
}

function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** Node's shape for dns errors: `queryA ENOTFOUND example.com`, with `code`, `syscall` and `hostname`. */
function netError(code: string, name: string, type: DnsRecordType, server?: DnsServerAddress, why?: string): NetError {
  const syscall = `query${type === 'A' ? 'A' : type === 'AAAA' ? 'Aaaa' : 'Srv'}`;
  const err = new Error(`${syscall} ${code} ${name}${why === undefined ? '' : `: ${why}`}`) as NetError & { hostname: string };
  err.code = code;
  err.syscall = syscall;
  err.hostname = name;
  if (server) {
    err.address = server.host;
    err.port = server.port;
  }
  return err;
}
