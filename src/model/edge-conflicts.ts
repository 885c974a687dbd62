/**
 * Edge bind conflicts: two listeners of one protocol cannot share an address and a port (E_CONFIG_EDGE_CONFLICT).
 * The binders are apps (each on the addresses it actually binds: every `edge.addresses` entry without pools, its
 * own edge IPs with them, `appBindAddresses` in edge-ips.ts) and built-in origins (on their `listen` address).
 *
 * Addresses collide as Linux bind(2) decides for listening sockets, as the simulator does (src/net/sim/host.ts):
 * the same address; `0.0.0.0` and any IPv4 address; `::` and any address at all (Node listens on `::` dual-stack).
 * So two apps with distinct DNS names, each holding its own pool address, may both listen on tcp/22, while an app
 * bound on every edge address still conflicts with any other app on one of its ports. TCP and UDP never conflict.
 *
 * Cost: one sort of the (binder × address) entries per protocol and one pass over them, O(n log n), whatever the
 * port ranges' widths. The pass keeps, per address and per wildcard family, the entry reaching the highest port so
 * far; an entry overlapping any earlier-starting entry on a colliding address overlaps that one too, so every
 * conflict is found. Each issue is reported on the later binder of a pair (in list order), naming the other, at
 * most one per binder: a write that adds one binder to a conflict-free set gets its issue on that binder.
 */
import { configIssue, pointerJoin } from './app.ts';
import { canonicalIp } from './ip.ts';
import { formatProtocol } from './ports.ts';
import type { AppSpec, BuiltinOrigin, ConfigIssue, L4Protocol, PortRange } from './types.ts';

/** Something that listens on edge addresses: an app or a built-in origin. */
export interface EdgeBinder {
  /** Where it sits in the configuration (`/apps/2`, `/origins/0`); its issue goes to `<pointer>/<field>`. */
  readonly pointer: string;
  readonly field: 'protocol' | 'listen';
  /** How a message names it: `app ID (DNS NAME)`, `origin "NAME"`. */
  readonly label: string;
  readonly protocol: L4Protocol;
  readonly ports: PortRange;
  /** IP literals it binds (any form; compared canonically). */
  readonly addresses: readonly string[];
}

/** An app as a binder, on `addresses` (what it binds: `appBindAddresses`, or `edge.addresses` without pools). */
export function appBinder(app: AppSpec, pointer: string, addresses: readonly string[]): EdgeBinder {
  return { pointer, field: 'protocol', label: `app ${app.id} (${app.dns.name})`, protocol: app.protocol, ports: app.edgePorts, addresses };
}

/** A built-in origin as a binder, on its `listen` address. */
export function originBinder(origin: BuiltinOrigin, pointer: string): EdgeBinder {
  return { pointer, field: 'listen', label: `origin "${origin.name}"`, protocol: origin.protocol, ports: origin.ports, addresses: [origin.host] };
}

interface Entry {
  /** Index of the binder. */
  readonly b: number;
  /** Canonical address text. */
  readonly addr: string;
  readonly v4: boolean;
  readonly start: number;
  readonly end: number;
}

const ANY_V4 = '0.0.0.0';
const ANY = '::';

/** `host:port`, IPv6 in brackets. */
function hostPort(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/**
 * E_CONFIG_EDGE_CONFLICT issues for `binders` (see the module comment): at `<pointer>/<field>` of the later binder
 * of each colliding pair, naming the earlier one and the address and first port they share. In binder order.
 */
export function edgeBindConflicts(binders: readonly EdgeBinder[]): ConfigIssue[] {
  const byProtocol = new Map<L4Protocol, Entry[]>();
  // Few distinct addresses, many binders: parse each text once.
  const canon = new Map<string, ReturnType<typeof canonicalIp>>();
  binders.forEach((binder, b) => {
    const seen = new Set<string>();
    for (const raw of binder.addresses) {
      let ip = canon.get(raw);
      if (ip === undefined && !canon.has(raw)) canon.set(raw, (ip = canonicalIp(raw)));
      if (ip === undefined || seen.has(ip.text)) continue;
      seen.add(ip.text);
      let list = byProtocol.get(binder.protocol);
      if (list === undefined) byProtocol.set(binder.protocol, (list = []));
      list.push({ b, addr: ip.text, v4: ip.family === 'IPv4', start: binder.ports.start, end: binder.ports.end });
    }
  });
  const issues = new Map<number, ConfigIssue>();
  for (const entries of byProtocol.values()) {
    entries.sort((x, y) => x.start - y.start || x.b - y.b);
    // The entry reaching the highest port so far: per address, over every IPv4 address, over every address.
    const reach = new Map<string, Entry>();
    let reachV4: Entry | undefined;
    let reachAll: Entry | undefined;
    const higher = (a: Entry | undefined, e: Entry): Entry => (a === undefined || e.end > a.end ? e : a);
    const hits = (c: Entry | undefined, e: Entry): c is Entry => c !== undefined && c.b !== e.b && c.end >= e.start;
    for (const e of entries) {
      let h: Entry | undefined;
      if (e.addr === ANY) {
        if (hits(reachAll, e)) h = reachAll;
      } else {
        const own = e.addr === ANY_V4 ? reachV4 : reach.get(e.addr);
        const v4Wild = e.v4 && e.addr !== ANY_V4 ? reach.get(ANY_V4) : undefined;
        const wild = reach.get(ANY);
        h = hits(own, e) ? own : hits(v4Wild, e) ? v4Wild : hits(wild, e) ? wild : undefined;
      }
      if (h !== undefined) {
        const [later, earlier] = e.b > h.b ? [e, h] : [h, e];
        if (!issues.has(later.b)) issues.set(later.b, conflictIssue(binders, later, earlier, e.start));
      }
      reach.set(e.addr, higher(reach.get(e.addr), e));
      if (e.v4) reachV4 = higher(reachV4, e);
      reachAll = higher(reachAll, e);
    }
  }
  return [...issues.entries()].sort(([a], [b]) => a - b).map(([, i]) => i);
}

function conflictIssue(binders: readonly EdgeBinder[], later: Entry, earlier: Entry, port: number): ConfigIssue {
  const l = binders[later.b]!;
  const e = binders[earlier.b]!;
  // Different addresses collide only through a wildcard: say which.
  const wild = later.addr === ANY || earlier.addr === ANY ? ANY : ANY_V4;
  const covers = later.addr === earlier.addr ? '' : ` (a listener on ${wild} takes the port on every ${wild === ANY ? '' : 'IPv4 '}address)`;
  return configIssue(
    pointerJoin(l.pointer, l.field),
    'E_CONFIG_EDGE_CONFLICT',
    `${formatProtocol(l.protocol, l.ports)} on ${hostPort(later.addr, port)} overlaps ${e.label} at ${e.pointer}, ${formatProtocol(e.protocol, e.ports)} on ${hostPort(earlier.addr, port)}${covers}; one address and port of a protocol serves one listener`,
  );
}
