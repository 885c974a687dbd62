/**
 * A scenario from a decision trace: the pure half of `refract replay` (replay.ts runs the scenario and compares).
 * Input: the trace records of `refract serve --trace` and the config that was running; output: a scenario file
 * that replays the recorded connections against the same apps in the simulator.
 *
 * What the scenario keeps from the recording (docs/replay.md has the full list and the limits):
 * - one client host per distinct client IP; each connection opens at its recorded accept time (relative to the
 *   first), sends `bytes_in` bytes at once, half-closes when the trace's `c2s_end` came, and resets at its close
 *   time when the recording says the client reset or vanished (status 495/497/498/499);
 * - one edge host per node (named after it), holding the edge addresses the clients reached; the config's timeouts
 *   and connect attempts as the `edge:` section;
 * - one origin host per origin IP dialled, a listener per origin port dialled, whose behaviour is the one that
 *   explains most recorded connections there: `echo` (bytes_out = bytes_in), `sink` (nothing back), `close`
 *   (nothing back, origin FIN first), `banner` (a constant k bytes more than the client sent), `reset` (444), or,
 *   when none connected, `refuse` / `blackhole` after the recorded dial errors;
 * - `origin_dns` A/AAAA names answered with the origin addresses dialled for them;
 * - as expectations, the recorded status of each connection.
 *
 * Addresses the simulator cannot own (loopback, wildcard, link-local, multicast), and an address that two roles
 * share (a laptop's 127.0.0.1 is client, edge and origin at once), are replaced by documentation addresses
 * (edges 203.0.113.0/24, clients 192.0.2.0/24 then 198.18.0.0/16, origins 198.51.100.0/24 then 198.19.0.0/16,
 * IPv6 2001:db8:e::/48, 2001:db8:c::/48, 2001:db8:a::/48); the plan lists every replacement.
 */
import ipaddr from 'ipaddr.js';
import { canonicalIp } from '../model/ip.ts';
import { validateConfig } from '../model/config.ts';
import { RefractError } from '../model/errors.ts';
import { LIMITS } from '../model/defaults.ts';
import { formatOriginUri } from '../model/ports.ts';
import type { AppSpec, BuiltinOrigin, RefractConfig } from '../model/types.ts';
import { encodeProxyV1, encodeProxyV2, tlsProxyTlvs, toProxyAddresses } from '../core/proxy-protocol.ts';
import { spectrumCipherName } from '../core/tls-ciphers.ts';
import type { TraceRecord } from '../streams/trace.ts';
import { DEFAULT_MAX_TIME_MS, MAX_TIME_LIMIT_MS, formatIpPort } from './schema.ts';
import type { ConnExpectation, OriginBehaviour, ScenarioFile, TimelineStep, TlsVersionName, Topology } from './types.ts';

/** One recorded connection that the scenario replays, with what the recording says about its end. */
export interface RecordedConn {
  /** The connection's id in the scenario (`c<conn>`, or `<node>.c<conn>` when the trace has several nodes). */
  readonly id: string;
  readonly node: string;
  readonly conn: number;
  /** `ip:port` as recorded. */
  readonly client: string;
  readonly edge: string;
  /** The upstream it was last dialled to, as recorded (`ip:port`), if any. */
  readonly upstream: string | undefined;
  /** Undefined when the trace ended before the connection closed. */
  readonly status: number | undefined;
  readonly reason: string | undefined;
  readonly bytesDownstream: number | undefined;
  readonly bytesUpstream: number | undefined;
  /**
   * Bytes of the recorded `bytes_out` that were the PROXY header echoed back by a builtin origin (which does not
   * parse headers): the header's length depends on the recorded addresses, which the replay replaces, so the
   * replay's builtin origin reads the header instead and `bytes_out` is compared without these bytes. 0: none.
   */
  readonly headerEchoBytes: number;
  /** How the replay's client speaks to a TLS app: `tls` (the recorded version and SNI), `plain` (the recording
   * says the client did not speak TLS, or never finished its hello), or `off` (the app has no edge TLS). */
  readonly clientTls: 'off' | 'tls' | 'plain';
}

/** A recorded connection the scenario leaves out, and why. */
export interface SkippedConn {
  readonly node: string;
  /** The trace's `conn` (a UDP flow's number when `why` says so). */
  readonly conn: number;
  readonly why: string;
}

export type AddressRole = 'edge' | 'client' | 'origin';

export interface ReplayPlan {
  readonly scenario: ScenarioFile;
  /** The replayed connections, in timeline order. */
  readonly recorded: readonly RecordedConn[];
  readonly skipped: readonly SkippedConn[];
  /** Recorded addresses that the scenario had to replace. */
  readonly remapped: ReadonlyArray<{ readonly role: AddressRole; readonly from: string; readonly to: string }>;
}

export interface FromTraceOptions {
  /** The scenario's seed (default 1). */
  readonly seed?: number;
  readonly name?: string;
}

/** Close reasons that mean the client went away (reset, vanished or failed): replayed as a client reset. */
const CLIENT_GONE = new Set(['downstream_reset', 'downstream_gone', 'downstream_error']);
/** The most filler a `banner` may carry; beyond it the listener falls back to the next best behaviour. */
const MAX_BANNER_BYTES = 64 * 1024;
/** Headroom after the last recorded event before the run is cut, ms. */
const TAIL_MS = 120_000;

// ── addresses ───────────────────────────────────────────────────────────────────────────────────────────────────

/** `ip:port` as the trace writes it (IPv6 unbracketed) → parts, IPv4-mapped IPv6 reduced to IPv4. */
function splitEndpoint(text: unknown): { ip: string; port: number } | undefined {
  if (typeof text !== 'string') return undefined;
  const unbracketed = /^\[(.+)\]:(\d+)$/.exec(text);
  const i = text.lastIndexOf(':');
  const host = unbracketed?.[1] ?? text.slice(0, i);
  const port = Number(unbracketed?.[2] ?? text.slice(i + 1));
  const ip = canonicalIp(host)?.text;
  if (ip === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { ip, port };
}

/** Whether a simulated host can own `ip` (the scenario schema's rule, plus link-local and reserved). */
function ownable(ip: string): boolean {
  const range = ipaddr.parse(ip).range();
  return !['unspecified', 'loopback', 'multicast', 'broadcast', 'linkLocal', 'reserved'].includes(range);
}

const POOLS: Record<AddressRole, { v4: readonly string[]; v6: string }> = {
  edge: { v4: ['203.0.113.'], v6: '2001:db8:e::' },
  client: { v4: ['192.0.2.', ...Array.from({ length: 256 }, (_, i) => `198.18.${i}.`)], v6: '2001:db8:c::' },
  origin: { v4: ['198.51.100.', ...Array.from({ length: 256 }, (_, i) => `198.19.${i}.`)], v6: '2001:db8:a::' },
};

/**
 * Gives every (role, key, recorded IP) a simulated address: the recorded one when a host can own it and no other
 * role claimed it first (edges, then origins, then clients), else the next free documentation address.
 */
class AddressBook {
  readonly #used = new Set<string>();
  readonly #map = new Map<string, string>();
  readonly #wanted: Array<{ role: AddressRole; key: string; ip: string }> = [];
  readonly remapped: Array<{ role: AddressRole; from: string; to: string }> = [];
  #next: Record<AddressRole, { v4: number; v6: number }> = { edge: { v4: 0, v6: 0 }, client: { v4: 0, v6: 0 }, origin: { v4: 0, v6: 0 } };

  want(role: AddressRole, key: string, ip: string): void {
    this.#wanted.push({ role, key, ip });
  }

  assign(): void {
    const order: AddressRole[] = ['edge', 'origin', 'client'];
    for (const role of order) {
      for (const w of this.#wanted) {
        const k = `${w.role}|${w.key}|${w.ip}`;
        if (w.role !== role || this.#map.has(k) || !ownable(w.ip) || this.#used.has(w.ip)) continue;
        this.#map.set(k, w.ip);
        this.#used.add(w.ip);
      }
    }
    for (const role of order) {
      for (const w of this.#wanted) {
        const k = `${w.role}|${w.key}|${w.ip}`;
        if (w.role !== role || this.#map.has(k)) continue;
        const to = this.#allocate(role, w.ip.includes(':'));
        this.#map.set(k, to);
        this.#used.add(to);
        this.remapped.push({ role, from: w.ip, to });
      }
    }
  }

  get(role: AddressRole, key: string, ip: string): string {
    const to = this.#map.get(`${role}|${key}|${ip}`);
    if (to === undefined) throw new Error(`from-trace: address ${ip} (${role}) was not registered`);
    return to;
  }

  #allocate(role: AddressRole, v6: boolean): string {
    const pool = POOLS[role];
    const n = this.#next[role];
    for (;;) {
      let candidate: string;
      if (v6) candidate = `${pool.v6}${(++n.v6).toString(16)}`;
      else {
        const i = n.v4++;
        const prefix = pool.v4[Math.floor(i / 254)];
        if (prefix === undefined) throw new RefractError('E_SCENARIO_UNSUPPORTED', { message: `the trace has more ${role} addresses than replay can map` });
        candidate = `${prefix}${(i % 254) + 1}`;
      }
      candidate = canonicalIp(candidate)!.text;
      if (!this.#used.has(candidate)) return candidate;
    }
  }
}

// ── config ──────────────────────────────────────────────────────────────────────────────────────────────────────

function isRefractConfig(x: unknown): x is RefractConfig {
  if (typeof x !== 'object' || x === null) return false;
  const c = x as Partial<RefractConfig>;
  return typeof c.node === 'object' && c.node !== null && Array.isArray(c.node.addresses) && Array.isArray(c.apps) && Array.isArray(c.origins) && c.apps.every((a) => typeof a === 'object' && a !== null && 'edgePorts' in a && 'spec' in a);
}

/** A validated config, or the raw one validated. @throws RefractError E_CONFIG_INVALID with `details.issues`. */
function asConfig(config: unknown): RefractConfig {
  if (isRefractConfig(config)) return config;
  const r = validateConfig(config);
  if (!r.ok) throw new RefractError('E_CONFIG_INVALID', { details: { issues: r.issues } });
  return r.config;
}

// ── the plan ────────────────────────────────────────────────────────────────────────────────────────────────────

interface Gathered {
  readonly node: string;
  readonly conn: number;
  /** UDP flows are numbered apart from TCP connections (records with `proto: 'udp'`). */
  readonly udp: boolean;
  readonly records: TraceRecord[];
}

const groupKey = (r: TraceRecord): string => `${r.node}\u0000${r['proto'] === 'udp' ? 'udp' : 'tcp'}\u0000${r.conn}`;

interface Replayable {
  readonly rec: RecordedConn;
  readonly app: AppSpec;
  readonly acceptT: number;
  readonly client: { ip: string; port: number };
  readonly edge: { ip: string; port: number };
  readonly c2sEndT: number | undefined;
  readonly s2cEndT: number | undefined;
  readonly closeT: number | undefined;
  /** Upstream of the last `established`, parsed. */
  readonly established: { ip: string; port: number } | undefined;
  readonly dials: ReadonlyArray<{ ip: string; port: number }>;
  readonly dialFailures: ReadonlyArray<{ ip: string; port: number; code: string }>;
  /** Time of its last record. */
  readonly lastT: number;
  /** The PROXY version of the last `established` ('off' when none was sent). */
  readonly proxy: string;
  /** The client TLS the connection is replayed with (TLS apps that finished the handshake). */
  readonly tls: { readonly version: TlsVersionName | undefined; readonly sni: string } | undefined;
}

/** Client TLS failures that a client speaking no TLS at all reproduces (the trace does not record a hello). */
const PLAIN_TLS_FAILURES = new Set(['not_tls', 'handshake_timeout']);
const TLS_VERSIONS: readonly string[] = ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** The builtin TCP origin (config `origins:`) that served `ip:port`, if one did. */
function builtinAt(cfg: RefractConfig, ip: string, port: number): BuiltinOrigin | undefined {
  return cfg.origins.find((o) => {
    if (o.protocol !== 'tcp' || port < o.ports.start || port > o.ports.end) return false;
    const host = canonicalIp(o.host)?.text ?? o.host;
    return host === ip || host === '0.0.0.0' || host === '::';
  });
}

/** The length of the PROXY header the edge sent for a connection (as tcp-upstream.ts builds it), 0 when none. */
function proxyHeaderLength(version: string, client: { ip: string; port: number }, edge: { ip: string; port: number }, tls: TraceRecord | undefined, app: AppSpec): number {
  if (version !== 'v1' && version !== 'v2') return 0;
  const a = toProxyAddresses({ address: client.ip, port: client.port }, { address: edge.ip, port: edge.port });
  if (version === 'v1') return encodeProxyV1(a).length;
  const tlvs = app.proxyProtocolTlvs && tls !== undefined
    ? tlsProxyTlvs({ version: String(tls['version'] ?? ''), cipher: spectrumCipherName(String(tls['cipher'] ?? '')), sni: String(tls['sni'] ?? '') })
    : undefined;
  return encodeProxyV2(a, tlvs ? { transport: 'stream', tlvs } : { transport: 'stream' }).length;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
/** The last element matching `p` (Array.prototype.findLast is ES2023, past this project's lib). */
function findLast<T>(xs: readonly T[], p: (x: T) => boolean): T | undefined {
  for (let i = xs.length - 1; i >= 0; i--) if (p(xs[i]!)) return xs[i];
  return undefined;
}
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Builds the replay scenario of `records` (a whole trace, any order of nodes) run under `config` (a validated
 * RefractConfig, or the raw config object, validated here).
 * @throws RefractError E_CONFIG_INVALID when the raw config is invalid; E_SCENARIO_UNSUPPORTED when the trace has
 *   more addresses of one role than the documentation ranges hold (about 65,000).
 */
export function planReplay(records: readonly TraceRecord[], config: unknown, opts: FromTraceOptions = {}): ReplayPlan {
  const cfg = asConfig(config);
  const appsById = new Map(cfg.apps.map((a) => [a.id, a] as const));

  // Records per connection, in order of first appearance.
  const groups = new Map<string, Gathered>();
  for (const r of records) {
    const key = groupKey(r);
    let g = groups.get(key);
    if (g === undefined) {
      g = { node: r.node, conn: r.conn, udp: r['proto'] === 'udp', records: [] };
      groups.set(key, g);
    }
    g.records.push(r);
  }
  const nodes = [...new Set([...groups.values()].map((g) => g.node))];
  const idOf = (node: string, conn: number): string => (nodes.length > 1 ? `${node}.c${conn}` : `c${conn}`);

  const skipped: SkippedConn[] = [];
  const replayable: Replayable[] = [];
  for (const g of groups.values()) {
    const skip = (why: string): void => void skipped.push({ node: g.node, conn: g.conn, why });
    if (g.udp) {
      skip('a UDP flow: scenarios replay TCP connections only');
      continue;
    }
    const accept = g.records.find((r) => r.event === 'accept');
    if (accept === undefined) {
      skip('no accept record: the connection began before the trace');
      continue;
    }
    if (g.records.some((r) => r.event === 'proxy_in')) {
      skip('it began with an inbound PROXY header (edge.accept_proxy), which replay does not send');
      continue;
    }
    const client = splitEndpoint(accept['client']);
    const edge = splitEndpoint(accept['edge']);
    if (client === undefined || edge === undefined) {
      skip('its accept record has no valid client and edge ip:port');
      continue;
    }
    const app = appsById.get(accept.app);
    if (app === undefined) {
      skip(accept.app === '' ? 'no app served its port' : `app ${accept.app} is not in the config`);
      continue;
    }
    if (app.origin.kind === 'dns' && app.origin.type === 'SRV') {
      skip(`app ${app.id} has an SRV origin_dns, which replay does not rebuild`);
      continue;
    }
    const tlsOk = g.records.find((r) => r.event === 'tls_client');
    const tlsFailed = g.records.find((r) => r.event === 'tls_client_failed');
    let clientTls: RecordedConn['clientTls'] = 'off';
    if (app.tls !== 'off') {
      const reason = String(tlsFailed?.['reason'] ?? '');
      if (tlsOk !== undefined) clientTls = 'tls';
      else if (tlsFailed !== undefined && !PLAIN_TLS_FAILURES.has(reason)) {
        skip(`its client TLS handshake failed (${reason}): the trace does not record the client's hello, so replay cannot offer the same one`);
        continue;
      } else clientTls = 'plain'; // not TLS, a hello that never came, or no handshake before the trace ended
    }
    const close = findLast(g.records, (r) => r.event === 'close');
    const established = findLast(g.records, (r) => r.event === 'established');
    const dials = g.records.filter((r) => r.event === 'dial').flatMap((r) => splitEndpoint(r['upstream']) ?? []);
    const dialFailures = g.records
      .filter((r) => r.event === 'dial_failed')
      .flatMap((r) => {
        const u = splitEndpoint(r['upstream']);
        return u === undefined ? [] : [{ ...u, code: String(r['code'] ?? '') }];
      });
    const lastDial = findLast(g.records, (r) => r.event === 'dial');
    const upstream = established?.['upstream'] ?? lastDial?.['upstream'];
    const up = established === undefined ? undefined : splitEndpoint(established['upstream']);
    const proxy = String(established?.['proxy_protocol'] ?? 'off');
    const builtin = up === undefined ? undefined : builtinAt(cfg, up.ip, up.port);
    const echoes = builtin !== undefined && builtin.behaviour !== 'discard';
    const headerEchoBytes = echoes ? proxyHeaderLength(proxy, client, edge, tlsOk, app) : 0;
    const version = String(tlsOk?.['version'] ?? '');
    replayable.push({
      rec: {
        id: idOf(g.node, g.conn),
        node: g.node,
        conn: g.conn,
        client: String(accept['client']),
        edge: String(accept['edge']),
        upstream: typeof upstream === 'string' ? upstream : undefined,
        status: num(close?.['status']),
        reason: typeof close?.['reason'] === 'string' ? close['reason'] : undefined,
        bytesDownstream: num(close?.['bytes_in']),
        bytesUpstream: num(close?.['bytes_out']),
        headerEchoBytes,
        clientTls,
      },
      app,
      acceptT: accept.t,
      client,
      edge,
      c2sEndT: g.records.find((r) => r.event === 'c2s_end')?.t,
      s2cEndT: g.records.find((r) => r.event === 's2c_end')?.t,
      closeT: close?.t,
      established: up,
      dials,
      dialFailures,
      lastT: Math.max(...g.records.map((r) => r.t)),
      proxy,
      tls: clientTls === 'tls' ? { version: TLS_VERSIONS.includes(version) ? (version as TlsVersionName) : undefined, sni: String(tlsOk?.['sni'] ?? '') } : undefined,
    });
  }
  replayable.sort((a, b) => a.acceptT - b.acceptT); // stable: ties keep trace order

  // Addresses.
  const book = new AddressBook();
  for (const r of replayable) book.want('edge', r.rec.node, r.edge.ip);
  for (const app of cfg.apps) if (app.origin.kind === 'direct') for (const t of app.origin.targets) book.want('origin', '', canonicalIp(t.host)?.text ?? t.host);
  for (const r of replayable) for (const d of r.dials) book.want('origin', '', d.ip);
  for (const r of replayable) book.want('client', '', r.client.ip);
  book.assign();

  // Hosts.
  const taken = new Set<string>();
  const hostName = (want: string, fallback: string): string => {
    const name = LIMITS.idPattern.test(want) && !taken.has(want) ? want : fallback;
    taken.add(name);
    return name;
  };
  const edgeHosts = new Map<string, { name: string; addresses: string[] }>();
  for (const [i, node] of nodes.entries()) {
    if (!replayable.some((r) => r.rec.node === node)) continue;
    edgeHosts.set(node, { name: hostName(node, `edge-${i + 1}`), addresses: [] });
  }
  for (const r of replayable) {
    const h = edgeHosts.get(r.rec.node)!;
    const a = book.get('edge', r.rec.node, r.edge.ip);
    if (!h.addresses.includes(a)) h.addresses.push(a);
  }
  const clients = new Map<string, { name: string; addresses: string[] }>();
  for (const r of replayable) {
    const a = book.get('client', '', r.client.ip);
    if (!clients.has(a)) clients.set(a, { name: hostName(`client-${clients.size + 1}`, `client-${clients.size + 1}-${taken.size}`), addresses: [a] });
  }
  const origins = originHosts(replayable, book, hostName, cfg);

  // Apps, with origin addresses as the simulator knows them, and the DNS answers of origin_dns names.
  const apps = cfg.apps.map((app) => {
    const spec: Record<string, unknown> = structuredClone({ ...app.spec });
    if (app.origin.kind === 'direct') {
      spec['origin_direct'] = app.origin.targets.map((t) => formatOriginUri({ ...t, host: book.get('origin', '', canonicalIp(t.host)?.text ?? t.host) }));
    }
    return spec;
  });
  const dns = dnsRecords(cfg, replayable, book);

  // Timeline and expectations.
  const t0 = replayable[0]?.acceptT ?? 0;
  const at = (t: number): number => Math.max(0, round3(t - t0));
  const timeline: TimelineStep[] = [];
  const expectations: ConnExpectation[] = [];
  let lastT = t0;
  for (const r of replayable) {
    const { id } = r.rec;
    const start = at(r.acceptT);
    const to = formatIpPort(book.get('edge', r.rec.node, r.edge.ip), r.edge.port);
    const tls = r.tls === undefined
      ? undefined
      : { ...(r.tls.sni !== '' ? { sni: r.tls.sni } : {}), ...(r.tls.version !== undefined ? { min_version: r.tls.version, max_version: r.tls.version } : {}), verify: false };
    timeline.push({ at: start, connect: { id, client: clients.get(book.get('client', '', r.client.ip))!.name, to, ...(tls !== undefined ? { tls } : {}) } });
    if ((r.rec.bytesDownstream ?? 0) > 0) timeline.push({ at: start, send: { id, bytes: r.rec.bytesDownstream! } });
    if (r.c2sEndT !== undefined) timeline.push({ at: Math.max(start, at(r.c2sEndT)), end: { id } });
    if (r.closeT !== undefined && r.rec.reason !== undefined && CLIENT_GONE.has(r.rec.reason)) {
      timeline.push({ at: Math.max(start, at(r.closeT)), reset: { id } });
    }
    if (r.rec.status !== undefined) expectations.push({ id, status: r.rec.status });
    lastT = Math.max(lastT, r.lastT);
  }
  timeline.sort((a, b) => a.at - b.at);

  const node = cfg.node;
  const budget = lastT - t0 + node.idleTimeoutMs + node.connectTimeoutMs * node.maxConnectAttempts + TAIL_MS;
  const maxTime = Math.min(MAX_TIME_LIMIT_MS, Math.ceil(budget));
  const topology: Topology = {
    edges: [...edgeHosts.values()],
    clients: [...clients.values()],
    origins,
    ...(dns.length > 0 ? { dns } : {}),
  };
  const scenario: ScenarioFile = {
    name: opts.name ?? `replay of ${replayable.length} recorded connection${replayable.length === 1 ? '' : 's'}`,
    seed: opts.seed ?? 1,
    ...(maxTime > DEFAULT_MAX_TIME_MS ? { max_time_ms: maxTime } : {}),
    topology,
    edge: {
      connect_timeout_ms: node.connectTimeoutMs,
      idle_timeout_ms: node.idleTimeoutMs,
      udp_idle_timeout_ms: node.udpIdleTimeoutMs,
      drain_timeout_ms: node.drainTimeoutMs,
      max_connect_attempts: node.maxConnectAttempts,
      dns: { min_ttl_sec: node.dnsMinTtlSec },
    },
    apps,
    timeline,
    // The recording says how each connection ended, nothing about sockets left behind.
    expect: { ...(expectations.length > 0 ? { connections: expectations } : {}), quiescent: false },
  };
  return { scenario, recorded: replayable.map((r) => r.rec), skipped, remapped: book.remapped };
}

/** The scenario of `planReplay` alone. Same contract. */
export function fromTrace(records: readonly TraceRecord[], config: unknown, opts: FromTraceOptions = {}): ScenarioFile {
  return planReplay(records, config, opts).scenario;
}

// ── origins ─────────────────────────────────────────────────────────────────────────────────────────────────────

type Fit = { behaviour: OriginBehaviour; banner?: string };

/** The behaviours that explain one established connection's recorded bytes and ends. */
function fits(r: Replayable): Fit[] {
  const inB = r.rec.bytesDownstream;
  const outB = r.rec.bytesUpstream;
  if (r.rec.status === 444) return [{ behaviour: 'reset' }];
  if (inB === undefined || outB === undefined) return [];
  const out: Fit[] = [];
  if (outB === inB) out.push({ behaviour: 'echo' });
  if (outB === 0) {
    const originFirst = r.s2cEndT !== undefined && (r.c2sEndT === undefined || r.s2cEndT < r.c2sEndT);
    out.push({ behaviour: originFirst ? 'close' : 'sink' });
  }
  const extra = outB - inB;
  if (extra > 0 && extra <= MAX_BANNER_BYTES) out.push({ behaviour: 'banner', banner: 'x'.repeat(extra) });
  return out;
}

const FIT_ORDER: OriginBehaviour[] = ['echo', 'sink', 'close', 'banner', 'reset'];

/** A builtin origin as the scenario's listener behaviour: what it does, not what the recording suggests. */
function builtinFit(o: BuiltinOrigin): Fit {
  if (o.behaviour === 'banner') return { behaviour: 'banner', banner: o.banner ?? 'refract builtin origin\r\n' };
  return { behaviour: o.behaviour === 'discard' ? 'sink' : 'echo' };
}

function originHosts(rs: readonly Replayable[], book: AddressBook, hostName: (want: string, fallback: string) => string, cfg: RefractConfig): Topology['origins'] {
  // Per recorded upstream ip:port: the connections established there, and the dial errors seen there.
  const ports = new Map<string, { ip: string; port: number; established: Replayable[]; codes: string[] }>();
  const slot = (ip: string, port: number) => {
    const k = formatIpPort(ip, port);
    let s = ports.get(k);
    if (s === undefined) {
      s = { ip, port, established: [], codes: [] };
      ports.set(k, s);
    }
    return s;
  };
  for (const r of rs) {
    for (const d of r.dials) slot(d.ip, d.port);
    for (const f of r.dialFailures) slot(f.ip, f.port).codes.push(f.code);
    if (r.established !== undefined) slot(r.established.ip, r.established.port).established.push(r);
  }
  const hosts = new Map<string, { name: string; addresses: string[]; listeners: Topology['origins'][number]['listeners'] }>();
  for (const s of ports.values()) {
    const address = book.get('origin', '', s.ip);
    let h = hosts.get(address);
    if (h === undefined) {
      h = { name: hostName(`origin-${hosts.size + 1}`, `origin-${hosts.size + 1}-${ports.size}`), addresses: [address], listeners: [] };
      hosts.set(address, h);
    }
    const listen = `tcp://${address.includes(':') ? `[${address}]` : address}:${s.port}`;
    const builtin = builtinAt(cfg, s.ip, s.port);
    if (builtin !== undefined) {
      // A builtin origin echoes a PROXY header it does not parse; the replay's one reads it (its length differs
      // with the replaced addresses) and the comparison leaves the recorded header out (RecordedConn.headerEchoBytes).
      h.listeners.push({ listen, ...builtinFit(builtin), parse_proxy: s.established.some((r) => r.proxy === 'v1' || r.proxy === 'v2') });
      continue;
    }
    h.listeners.push({ listen, ...chooseBehaviour(s.established, s.codes), parse_proxy: false });
  }
  // A black hole cuts off the whole host: a host with other listeners refuses instead (the status differs: 521).
  for (const h of hosts.values()) {
    if (h.listeners.some((l) => l.behaviour !== 'blackhole')) for (const l of h.listeners) if (l.behaviour === 'blackhole') l.behaviour = 'refuse';
  }
  return [...hosts.values()];
}

function chooseBehaviour(established: readonly Replayable[], codes: readonly string[]): Fit {
  if (established.length === 0) {
    const timeouts = codes.filter((c) => c === 'ETIMEDOUT').length;
    return { behaviour: timeouts > codes.length - timeouts ? 'blackhole' : 'refuse' };
  }
  const votes = new Map<string, { fit: Fit; n: number; rank: number }>();
  for (const r of established) {
    for (const f of fits(r)) {
      const k = `${f.behaviour}|${f.banner ?? ''}`;
      const v = votes.get(k) ?? { fit: f, n: 0, rank: FIT_ORDER.indexOf(f.behaviour) };
      v.n++;
      votes.set(k, v);
    }
  }
  const best = [...votes.values()].sort((a, b) => b.n - a.n || a.rank - b.rank)[0];
  return best?.fit ?? { behaviour: 'echo' };
}

// ── origin_dns ──────────────────────────────────────────────────────────────────────────────────────────────────

function dnsRecords(cfg: RefractConfig, rs: readonly Replayable[], book: AddressBook): NonNullable<Topology['dns']> {
  const out: NonNullable<Topology['dns']> = [];
  for (const app of cfg.apps) {
    if (app.origin.kind !== 'dns' || app.origin.type === 'SRV') continue;
    const seen: string[] = [];
    for (const r of rs) {
      if (r.app.id !== app.id) continue;
      for (const d of r.dials) {
        const a = book.get('origin', '', d.ip);
        if (!seen.includes(a)) seen.push(a);
      }
    }
    const ttl = app.origin.ttlSec ?? cfg.node.dnsMinTtlSec;
    const v4 = seen.filter((a) => !a.includes(':'));
    const v6 = seen.filter((a) => a.includes(':'));
    if (v4.length > 0) out.push({ name: app.origin.name, type: 'A', records: v4, ttl });
    if (v6.length > 0) out.push({ name: app.origin.name, type: 'AAAA', records: v6, ttl });
  }
  return out;
}
