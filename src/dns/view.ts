/**
 * What the DNS server answers, as data: `DnsView` (the served zones with their SOA data, and name → A/AAAA/CNAME),
 * and `dnsViewOf(config)`, which builds it from a running configuration. The answer function (`answer.ts`) reads a
 * view and nothing else, so edge-IP allocation (a later step) only changes how the view is built.
 *
 * How a config becomes a view (docs/dns.md says the same for operators):
 * - Zones are `config.zones`. An app belongs to the zone whose name is the longest suffix of its `dns.name`; an app
 *   in no zone is not answered (validation warns: W_DNS_NAME_OUTSIDE_ZONES).
 * - With `edge.pools`, an app's addresses are exactly those the edge binds for it (`appBindAddresses` in
 *   src/model/edge-ips.ts: its dynamic allocation, or its static `ips`). Without pools:
 * - An app's addresses are the edge addresses it is reachable on: every `edge.addresses` entry except the
 *   wildcards (0.0.0.0, ::), which are nobody's address; `connectivity: ipv4` / `ipv6` keeps one family. A static
 *   app (`edge_ips: {type: static, ips}`) answers those of its `ips` the edge binds: listed in `edge.addresses`, or
 *   covered by a wildcard there (0.0.0.0 covers IPv4, :: both families); the others are left out
 *   (W_DNS_STATIC_IP_UNBOUND).
 * - Apps sharing one `dns.name` (different ports) make one name whose addresses are the union of theirs.
 * - A name whose apps are all `dns.type: CNAME` is a CNAME to an app-specific target inside its zone,
 *   `<label>.spectrum.<zone>`, which holds the addresses (label: the app id lower-cased when that is a DNS label
 *   unique in the zone, else `app-` and 24 hex of SHA-256 over the id; the target of the app with the smallest id
 *   is the one the name points at; every CNAME app's target resolves). A name with an ADDRESS app, the zone apex
 *   (no CNAME may sit beside the SOA), and a name whose target would pass 253 characters hold the addresses
 *   themselves.
 * - Every zone has one NS, `ns.<zone>`, which holds the server's listen address when that is not a wildcard (glue),
 *   unless an app uses that name. SOA: `ns.<zone>`, `hostmaster.<zone>`, a serial that is a 32-bit hash of the
 *   zone's records (it changes when they change; no zone transfer is served, so it needs no order), refresh 10000,
 *   retry 2400, expire 604800, minimum = the TTL.
 * - Names that exist only because names below them do (`spectrum.<zone>`) are empty non-terminals: NODATA, not
 *   NXDOMAIN (RFC 8020).
 */
import { createHash } from 'node:crypto';
import { DEFAULTS } from '../model/defaults.ts';
import { appBindAddresses, poolsConfigured } from '../model/edge-ips.ts';
import type { AppSpec, RefractConfig } from '../model/types.ts';

/** The records of one name. Empty lists and no CNAME: the name exists but holds nothing (an empty non-terminal). */
export interface DnsNameData {
  readonly a: readonly string[];
  readonly aaaa: readonly string[];
  /** A CNAME target (lower-case, no final dot); a name with a CNAME holds nothing else. */
  readonly cname: string | undefined;
}

export interface DnsSoa {
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minimum: number;
}

export interface DnsZone {
  /** Lower-case, no final dot. */
  readonly name: string;
  readonly soa: DnsSoa;
  readonly ns: readonly string[];
}

/** What the answer function reads. Names are lower-case ASCII without a final dot. */
export interface DnsView {
  /** TTL of every answered record, seconds. */
  readonly ttlSec: number;
  /** The zone whose apex is exactly `name`, if one is served. */
  zone(name: string): DnsZone | undefined;
  /** The records of `name`, or undefined when no such name exists (in any served zone). */
  lookup(name: string): DnsNameData | undefined;
  /** Every served zone (for logs and tests). */
  readonly zones: readonly DnsZone[];
}

/** Host of the DNS listener: its address is the NS's glue unless it is a wildcard. */
export interface DnsViewOptions {
  readonly ttlSec?: number | undefined;
  readonly listenHost?: string | undefined;
}

const EMPTY: DnsNameData = Object.freeze({ a: Object.freeze([]), aaaa: Object.freeze([]), cname: undefined });
const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const MAX_NAME = 253;

function isWildcard(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}

function familyOf(ip: string): 'IPv4' | 'IPv6' {
  return ip.includes(':') ? 'IPv6' : 'IPv4';
}

/**
 * The addresses `app` is reachable on and answered with, in `edge.addresses` order (static: in `ips` order), A and
 * AAAA apart. See the module comment for the rules.
 */
export function appAddresses(app: AppSpec, edgeAddresses: readonly string[]): { readonly a: string[]; readonly aaaa: string[] } {
  let ips: string[];
  if (app.edgeIps.type === 'static') {
    ips = app.edgeIps.ips.filter((ip) => edgeAddresses.some((e) => e === ip || e === '::' || (e === '0.0.0.0' && familyOf(ip) === 'IPv4')));
  } else {
    const c = app.edgeIps.connectivity;
    ips = edgeAddresses.filter((e) => !isWildcard(e) && (c === 'all' || (c === 'ipv4') === (familyOf(e) === 'IPv4')));
  }
  const uniq = [...new Set(ips)];
  return { a: uniq.filter((ip) => familyOf(ip) === 'IPv4'), aaaa: uniq.filter((ip) => familyOf(ip) === 'IPv6') };
}

/** Addresses split into A and AAAA, first occurrence kept. */
function byFamily(ips: readonly string[]): { readonly a: string[]; readonly aaaa: string[] } {
  const uniq = [...new Set(ips)];
  return { a: uniq.filter((ip) => familyOf(ip) === 'IPv4'), aaaa: uniq.filter((ip) => familyOf(ip) === 'IPv6') };
}

/** The zone (longest suffix) a lower-case name lies in. */
function zoneOfName(name: string, zones: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const z of zones) {
    if ((name === z || name.endsWith(`.${z}`)) && (best === undefined || z.length > best.length)) best = z;
  }
  return best;
}

/** 32-bit FNV-1a over text; never 0 (a zero serial reads as "unset" to some tools). */
function serialOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h === 0 ? 1 : h;
}

function union(into: string[], more: readonly string[]): void {
  for (const x of more) if (!into.includes(x)) into.push(x);
}

/** Builds the view of a configuration (pure: the same config gives the same view). */
export function dnsViewOf(config: RefractConfig, opts: DnsViewOptions = {}): DnsView {
  const ttlSec = opts.ttlSec ?? config.dns?.ttlSec ?? DEFAULTS.dnsTtlSec;
  const listenHost = opts.listenHost ?? config.dns?.listen.host;
  const zoneNames = (config.zones ?? []).map((z) => z.name);
  const names = new Map<string, DnsNameData>();

  // Apps grouped by (lower-case) name, in config order, for the apps whose name lies in a served zone.
  const groups = new Map<string, { zone: string; apps: AppSpec[]; a: string[]; aaaa: string[] }>();
  for (const app of config.apps) {
    const name = app.dns.name.toLowerCase();
    const zone = zoneOfName(name, zoneNames);
    if (zone === undefined) continue;
    const g = groups.get(name) ?? { zone, apps: [], a: [], aaaa: [] };
    const addr = poolsConfigured(config) ? byFamily(appBindAddresses(config, app)) : appAddresses(app, config.node.addresses);
    g.apps.push(app);
    union(g.a, addr.a);
    union(g.aaaa, addr.aaaa);
    groups.set(name, g);
  }
  for (const [name, g] of groups) names.set(name, { a: g.a, aaaa: g.aaaa, cname: undefined });

  // CNAME targets: one per CNAME app, inside the app's zone, never on a name an app uses.
  const taken = new Set(names.keys());
  const labelCount = new Map<string, number>();
  for (const g of groups.values()) {
    for (const app of g.apps) if (app.dns.type === 'CNAME') labelCount.set(`${g.zone}|${app.id.toLowerCase()}`, (labelCount.get(`${g.zone}|${app.id.toLowerCase()}`) ?? 0) + 1);
  }
  for (const [name, g] of groups) {
    const cnameApps = g.apps.filter((a) => a.dns.type === 'CNAME');
    if (cnameApps.length === 0) continue;
    const data: DnsNameData = { a: g.a, aaaa: g.aaaa, cname: undefined };
    const targets = new Map<string, string>();
    for (const app of cnameApps) {
      const id = app.id.toLowerCase();
      const plain = LABEL_RE.test(id) && labelCount.get(`${g.zone}|${id}`) === 1 ? `${id}.spectrum.${g.zone}` : undefined;
      const hashed = `app-${createHash('sha256').update(app.id).digest('hex').slice(0, 24)}.spectrum.${g.zone}`;
      const target = [plain, hashed].find((t) => t !== undefined && t.length <= MAX_NAME && !taken.has(t));
      if (target === undefined) continue;
      taken.add(target);
      targets.set(app.id, target);
      names.set(target, data);
    }
    const allCname = cnameApps.length === g.apps.length && name !== g.zone;
    const first = [...targets.keys()].sort()[0];
    if (allCname && first !== undefined) names.set(name, { a: [], aaaa: [], cname: targets.get(first) });
  }

  // Zones: NS with glue, SOA with a serial over the zone's records.
  const zones = new Map<string, DnsZone>();
  for (const z of zoneNames) {
    const ns = `ns.${z}`;
    if (!names.has(ns) && listenHost !== undefined && !isWildcard(listenHost)) {
      names.set(ns, familyOf(listenHost) === 'IPv4' ? { a: [listenHost], aaaa: [], cname: undefined } : { a: [], aaaa: [listenHost], cname: undefined });
    }
  }
  const zoneText = new Map<string, string[]>();
  for (const [name, d] of [...names].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
    const z = zoneOfName(name, zoneNames);
    if (z === undefined) continue;
    const lines = zoneText.get(z) ?? [];
    lines.push(`${name} ${d.a.join(',')} ${d.aaaa.join(',')} ${d.cname ?? ''}`);
    zoneText.set(z, lines);
  }
  for (const z of zoneNames) {
    zones.set(z, {
      name: z,
      ns: [`ns.${z}`],
      soa: {
        mname: `ns.${z}`,
        rname: `hostmaster.${z}`,
        serial: serialOf(`${ttlSec}\n${(zoneText.get(z) ?? []).join('\n')}`),
        refresh: 10_000,
        retry: 2_400,
        expire: 604_800,
        minimum: ttlSec,
      },
    });
  }

  // Empty non-terminals: every ancestor of a name, below its zone's apex.
  const ents = new Set<string>();
  for (const name of names.keys()) {
    const z = zoneOfName(name, zoneNames);
    if (z === undefined) continue;
    let n = name;
    for (let dot = n.indexOf('.'); dot >= 0 && n !== z; dot = n.indexOf('.')) {
      n = n.slice(dot + 1);
      if (n === z || n.length < z.length) break;
      if (!names.has(n)) ents.add(n);
    }
  }

  const zoneList = [...zones.values()];
  return {
    ttlSec,
    zones: zoneList,
    zone: (name) => zones.get(name),
    lookup: (name) => names.get(name) ?? (ents.has(name) || zones.has(name) ? EMPTY : undefined),
  };
}
