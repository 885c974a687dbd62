/**
 * Edge-IP allocation: which addresses each app is bound on and answered with. Pure and deterministic (no I/O): the
 * same configuration and previous state always give the same allocation.
 *
 * Without `edge.pools` nothing is allocated: every app binds every `edge.addresses` entry (Refract's behaviour
 * before pools existed). With pools (docs/dns.md, "Edge IPs"):
 * - a dynamic app (`edge_ips: {type: dynamic}`, Spectrum's default) takes its DNS name's addresses: one IPv4 address
 *   per DNS name (apps sharing a name share it; distinct names never share one) when the app's connectivity is
 *   `all` or `ipv4`, and one IPv6 address per DNS name when it is `all` or `ipv6`; `all` takes only the families
 *   that have a pool. The number of names holding a dynamic IPv4 address is capped by `edge.ipv4_quota`
 *   (E_EDGE_IP_QUOTA, Cloudflare's 12005); IPv6-only names do not count;
 * - a static app binds its `ips`, each of which must lie in a pool or be listed in `edge.addresses`
 *   (E_EDGE_IP_NOT_IN_POOL); a static address serves one DNS name, and is never handed out dynamically
 *   (E_EDGE_IP_TAKEN when another name holds it);
 * - a name keeps the addresses it had in the previous state while they still lie in a pool; an address no longer in
 *   any pool is replaced (reported in `moved`); names no app uses any more give theirs back (reported in
 *   `released`), and so does a name for a family it no longer needs;
 * - an address given back is held (`state.held`) until `edge.drain_timeout_ms` after the allocation that gave it
 *   back, measured on the clock time passed in: no name takes it, dynamically or as a static IP (E_EDGE_IP_TAKEN),
 *   while the old app's connections on it may still be draining; the first allocation at or after that time drops
 *   the hold;
 * - rotating a name (`rotate`) gives it fresh addresses in every family it holds: not its current ones (which are
 *   given back and held as above) and not held ones; E_EDGE_POOL_EXHAUSTED when no other address is free,
 *   E_EDGE_IP_NOT_ROTATABLE when the name holds no dynamic address (its apps are static, or no pool is set);
 * - new names take the lowest free address, pools in the order listed, names in sorted order. IPv4 blocks of /30 or
 *   wider skip their first and last address (network, broadcast); IPv6 blocks of /127 or wider skip their first
 *   (the subnet-router anycast address);
 * - an allocation whose apps (on the addresses each binds) or built-in origins would share a protocol, address and
 *   port is refused (E_CONFIG_EDGE_CONFLICT, src/model/edge-conflicts.ts), with pools or without.
 */
import ipaddr from 'ipaddr.js';
import { configIssue, pointerJoin } from './app.ts';
import { appBinder, edgeBindConflicts, originBinder } from './edge-conflicts.ts';
import { deepFreeze } from './freeze.ts';
import { canonicalIp, inAnyCidr, parseCidr } from './ip.ts';
import type { AppSpec, ConfigIssue, EdgeIpNameState, EdgeIpState, RefractConfig } from './types.ts';

export type { EdgeIpNameState, EdgeIpState };

export const EMPTY_EDGE_IPS: EdgeIpState = Object.freeze({ names: Object.freeze({}) });

export interface EdgeIpMove {
  readonly name: string;
  readonly from: string;
  readonly to: string | undefined;
  /** `not-in-pool`: the pools were edited; `rotated`: asked for (`rotate`). */
  readonly reason: 'not-in-pool' | 'rotated';
}

export type EdgeIpResult =
  | {
      readonly ok: true;
      /** The configuration with `edgeIps` set (unchanged when no pool is configured). */
      readonly config: RefractConfig;
      readonly state: EdgeIpState;
      /** Addresses of the previous state that were replaced, and why. */
      readonly moved: readonly EdgeIpMove[];
      /** Names of the previous state that no app uses any more (their addresses are free again). */
      readonly released: readonly string[];
    }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/** True when the configuration has at least one pool, so allocation decides what apps bind. */
export function poolsConfigured(config: RefractConfig): boolean {
  const p = config.node.pools;
  return p.ipv4.length > 0 || p.ipv6.length > 0;
}

function nameOf(app: AppSpec): string {
  return app.dns.name.toLowerCase().replace(/\.$/, '');
}

/** Canonical text of an IP (RFC 5952 for IPv6), or the input when it is not one. */
function canon(ip: string): string {
  return canonicalIp(ip)?.text ?? ip;
}

/** Addresses as numbers, by canonical text: each API write checks every held address against the pools again. */
const values = new Map<string, bigint>();
const VALUE_CACHE_LIMIT = 65_536;

function valueOf(ip: string): bigint {
  let v = values.get(ip);
  if (v === undefined) {
    v = 0n;
    for (const b of ipaddr.parse(ip).toByteArray()) v = (v << 8n) | BigInt(b);
    if (values.size >= VALUE_CACHE_LIMIT) values.clear();
    values.set(ip, v);
  }
  return v;
}

/** The first and last address of a block, as numbers. */
function rangeOf(block: string): [bigint, bigint] | undefined {
  const c = parseCidr(block);
  if (c === undefined) return undefined;
  const hostBits = BigInt((c.address.family === 'IPv4' ? 32 : 128) - c.prefix);
  const lo = (valueOf(canon(c.address.address)) >> hostBits) << hostBits;
  return [lo, lo + (1n << hostBits) - 1n];
}

/** True when the canonical address `ip` (of the ranges' family) lies in one of `ranges`. */
function inRanges(ranges: readonly (readonly [bigint, bigint])[], ip: string): boolean {
  let v: bigint;
  try {
    v = valueOf(ip);
  } catch {
    return false;
  }
  return ranges.some(([lo, hi]) => v >= lo && v <= hi);
}

/** The candidate addresses of one pool block, lowest first, as a lazy sequence. */
function* poolAddresses(block: string): Generator<string> {
  const c = parseCidr(block);
  if (c === undefined) return;
  const bytes = ipaddr.parse(c.address.address).toByteArray();
  const bits = bytes.length * 8;
  let base = 0n;
  for (const b of bytes) base = (base << 8n) | BigInt(b);
  const hostBits = BigInt(bits - c.prefix);
  base = (base >> hostBits) << hostBits;
  const size = 1n << hostBits;
  let first = 0n;
  let last = size - 1n;
  if (bits === 32 && c.prefix <= 30) {
    first = 1n;
    last = size - 2n;
  } else if (bits === 128 && c.prefix <= 127) {
    first = 1n;
  }
  for (let i = first; i <= last; i++) {
    const n = base + i;
    if (bits === 32) {
      const v = Number(n);
      yield `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
      continue;
    }
    const out: number[] = [];
    for (let k = bytes.length - 1; k >= 0; k--) out[k] = Number((n >> BigInt((bytes.length - 1 - k) * 8)) & 0xffn);
    yield (ipaddr.fromByteArray(out) as ipaddr.IPv6).toRFC5952String();
  }
}

/**
 * The pools' addresses in order, handed out lowest free first. Within one allocation `used` only grows, so an
 * address skipped once is never free later and the cursor never goes back: a whole allocation scans each pool
 * address at most once.
 */
class PoolCursor {
  readonly #blocks: readonly string[];
  #next = 0;
  #current: Generator<string> | undefined;

  constructor(blocks: readonly string[]) {
    this.#blocks = blocks;
  }

  /** The lowest address not in `used`, or undefined when every one is used. */
  take(used: ReadonlySet<string>): string | undefined {
    for (;;) {
      if (this.#current === undefined) {
        const block = this.#blocks[this.#next++];
        if (block === undefined) return undefined;
        this.#current = poolAddresses(block);
      }
      const r = this.#current.next();
      if (r.done === true) this.#current = undefined;
      else if (!used.has(r.value)) return r.value;
    }
  }
}

/**
 * Allocates edge IPs for `config` (validated), keeping what `prev` holds where it can. `nowMs` is the caller's clock
 * (epoch ms: the edge node's clock, or the API's; a hold outlives a restart): holds end, and addresses given back now are held until `nowMs` plus the drain
 * timeout. Issues point into the configuration (`/apps/N/...`, `/edge/ipv4_quota`), as the validator's do.
 */
export function allocateEdgeIps(config: RefractConfig, prev: EdgeIpState | undefined, nowMs: number, rotate?: string): EdgeIpResult {
  const before = prev ?? EMPTY_EDGE_IPS;
  const rotateName = rotate?.toLowerCase().replace(/\.$/, '');
  if (rotateName !== undefined && (!poolsConfigured(config) || before.names[rotateName] === undefined)) {
    return { ok: false, issues: [configIssue('', 'E_EDGE_IP_NOT_ROTATABLE', `${rotateName} holds no dynamic edge address to rotate (its apps are static, or no edge.pools is configured)`)] };
  }
  // Holds still running at `nowMs` (an address of the previous state held past its drain deadline is free again).
  const stillHeld = new Map(Object.entries(before.held ?? {}).filter(([, freeAfter]) => freeAfter > nowMs));
  if (!poolsConfigured(config)) {
    const conflicts = bindConflicts(config);
    return conflicts.length > 0 ? { ok: false, issues: conflicts } : { ok: true, config, state: EMPTY_EDGE_IPS, moved: [], released: [] };
  }
  const pools = config.node.pools;
  const issues: ConfigIssue[] = [];
  const edgeAddresses = new Set(config.node.addresses.map(canon));
  const at = (i: number, ...tokens: (string | number)[]): string => pointerJoin(pointerJoin('/apps', i), ...tokens.map(String));

  // Static addresses: in a pool or in edge.addresses; one DNS name each.
  const staticOwner = new Map<string, { name: string; pointer: string }>();
  config.apps.forEach((app, i) => {
    if (app.edgeIps.type !== 'static') return;
    const name = nameOf(app);
    app.edgeIps.ips.forEach((raw, j) => {
      const ip = canon(raw);
      const family = ip.includes(':') ? 'ipv6' : 'ipv4';
      if (!edgeAddresses.has(ip) && !inAnyCidr(pools[family], ip)) {
        issues.push(configIssue(at(i, 'edge_ips', 'ips', j), 'E_EDGE_IP_NOT_IN_POOL', `${raw} lies in no edge.pools.${family} block and is not listed in edge.addresses`));
        return;
      }
      const owner = staticOwner.get(ip);
      if (owner !== undefined && owner.name !== name) {
        issues.push(configIssue(at(i, 'edge_ips', 'ips', j), 'E_EDGE_IP_TAKEN', `${raw} is already the static address of ${owner.name} (${owner.pointer}); an edge address serves one DNS name`));
        return;
      }
      const freeAfter = stillHeld.get(ip);
      if (freeAfter !== undefined) {
        issues.push(configIssue(at(i, 'edge_ips', 'ips', j), 'E_EDGE_IP_TAKEN', `${raw} was given back by another DNS name and is held while its connections drain, for ${freeAfter - nowMs} ms more`));
        return;
      }
      staticOwner.set(ip, { name, pointer: at(i, 'edge_ips', 'ips', j) });
    });
  });

  // What each dynamic name needs: the union over its apps' connectivity, limited to the families with a pool.
  const needs = new Map<string, { v4: boolean; v6: boolean; firstApp: number }>();
  config.apps.forEach((app, i) => {
    if (app.edgeIps.type !== 'dynamic') return;
    const c = app.edgeIps.connectivity;
    const v4 = c !== 'ipv6' && pools.ipv4.length > 0;
    const v6 = c !== 'ipv4' && pools.ipv6.length > 0;
    if (!v4 && !v6) {
      const family = c === 'ipv6' ? 'ipv6' : 'ipv4';
      issues.push(configIssue(at(i, 'edge_ips', 'connectivity'), 'E_EDGE_POOL_EXHAUSTED', `connectivity ${c} needs an edge.pools.${family} block, and none is configured`));
      return;
    }
    const name = nameOf(app);
    const n = needs.get(name) ?? { v4: false, v6: false, firstApp: i };
    needs.set(name, { v4: n.v4 || v4, v6: n.v6 || v6, firstApp: n.firstApp });
  });
  if (issues.length > 0) return { ok: false, issues };

  const names = [...needs.keys()].sort();
  const v4Names = names.filter((n) => needs.get(n)!.v4);
  if (v4Names.length > config.node.ipv4Quota) {
    // Blame the name without an address whose first app comes last (an API write's app is the last one).
    const fresh = v4Names.filter((n) => before.names[n]?.ipv4 === undefined).map((n) => needs.get(n)!.firstApp);
    const pointer = fresh.length === 0 ? '/edge/ipv4_quota' : at(Math.max(...fresh), 'dns', 'name');
    return {
      ok: false,
      issues: [configIssue(pointer, 'E_EDGE_IP_QUOTA', `${v4Names.length} DNS names need a dynamic IPv4 address, over edge.ipv4_quota (${config.node.ipv4Quota})`)],
    };
  }

  // Keep what the previous state holds when it is still valid; otherwise mark it for a fresh address.
  const used = new Set<string>([...edgeAddresses, ...staticOwner.keys()]);
  const rangesOf = (blocks: readonly string[]) => blocks.map(rangeOf).filter((r) => r !== undefined);
  const ranges = { ipv4: rangesOf(pools.ipv4), ipv6: rangesOf(pools.ipv6) };
  const out: Record<string, { ipv4?: string; ipv6?: string }> = {};
  const moved: EdgeIpMove[] = [];
  const movedFrom = new Map<string, string>();
  for (const name of names) {
    const n = needs.get(name)!;
    const old = before.names[name];
    const slot: { ipv4?: string; ipv6?: string } = {};
    for (const [family, want] of [['ipv4', n.v4], ['ipv6', n.v6]] as const) {
      const had = old?.[family];
      if (!want || had === undefined) continue;
      const ip = had; // canonical: made here, or read by edgeIpStateFrom
      const owner = staticOwner.get(ip);
      if (name === rotateName) {
        movedFrom.set(`${name}|${family}`, ip);
      } else if (owner !== undefined && owner.name !== name) {
        issues.push(configIssue(owner.pointer, 'E_EDGE_IP_TAKEN', `${ip} is the dynamic address of ${name}; an edge address serves one DNS name`));
      } else if (!inRanges(ranges[family], ip) || edgeAddresses.has(ip) || used.has(ip)) {
        movedFrom.set(`${name}|${family}`, ip);
      } else {
        slot[family] = ip;
        used.add(ip);
      }
    }
    out[name] = slot;
  }
  if (issues.length > 0) return { ok: false, issues };
  // Held addresses stay out of the pool (a hold on an address a kept name still has is dropped: it is not draining).
  for (const ip of [...stillHeld.keys()]) {
    if (used.has(ip)) stillHeld.delete(ip);
    else used.add(ip);
  }
  // Addresses the previous state had and no name keeps are given back now: held until the drain deadline.
  const drainMs = config.node.drainTimeoutMs;
  for (const old of Object.values(before.names)) {
    for (const ip of [old.ipv4, old.ipv6]) {
      if (ip === undefined || used.has(ip) || drainMs <= 0) continue;
      stillHeld.set(ip, nowMs + drainMs);
      used.add(ip);
    }
  }
  // A rotated name never gets its old addresses back, even when they are not held (drain_timeout_ms 0).
  const rotatedOld = rotateName === undefined ? {} : (before.names[rotateName] ?? {});
  for (const ip of [rotatedOld.ipv4, rotatedOld.ipv6]) if (ip !== undefined) used.add(ip);

  // New names (and moved addresses) take the lowest free address.
  const cursors = { ipv4: new PoolCursor(pools.ipv4), ipv6: new PoolCursor(pools.ipv6) };
  for (const name of names) {
    const n = needs.get(name)!;
    const slot = out[name]!;
    for (const [family, want] of [['ipv4', n.v4], ['ipv6', n.v6]] as const) {
      if (!want || slot[family] !== undefined) continue;
      const ip = cursors[family].take(used);
      if (ip === undefined) {
        return { ok: false, issues: [configIssue(at(n.firstApp, 'edge_ips'), 'E_EDGE_POOL_EXHAUSTED', `no free address is left in edge.pools.${family} for ${name}`)] };
      }
      used.add(ip);
      slot[family] = ip;
      const from = movedFrom.get(`${name}|${family}`);
      if (from !== undefined) moved.push({ name, from, to: ip, reason: name === rotateName ? 'rotated' : 'not-in-pool' });
    }
  }
  const released = Object.keys(before.names)
    .filter((n) => !needs.has(n))
    .sort();
  const held = Object.fromEntries([...stillHeld].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const state: EdgeIpState = deepFreeze(stillHeld.size === 0 ? { names: out } : { names: out, held });
  const allocated: RefractConfig = Object.freeze({ ...config, edgeIps: state });
  const conflicts = bindConflicts(allocated);
  if (conflicts.length > 0) return { ok: false, issues: conflicts };
  return { ok: true, config: allocated, state, moved, released };
}

/**
 * E_CONFIG_EDGE_CONFLICT for an allocated config: apps on the addresses they bind, and built-in origins. Which apps
 * share an address does not depend on the previous state (two names never share a dynamic address, a static one
 * is never handed out), so a config the validator accepts (allocated from an empty state) never conflicts here;
 * checking every allocation keeps that true by construction, not by argument.
 */
function bindConflicts(config: RefractConfig): ConfigIssue[] {
  return edgeBindConflicts([
    ...config.apps.map((app, i) => appBinder(app, pointerJoin('/apps', i), appBindAddresses(config, app))),
    ...config.origins.map((o, j) => originBinder(o, pointerJoin('/origins', j))),
  ]);
}

/**
 * The addresses an app is bound on, IPv4 and IPv6 apart (without pools: every `edge.addresses` entry, wildcards
 * included). With pools, from `config.edgeIps` (a config that has none is allocated from an empty state here, so
 * callers that skip allocation still see a consistent answer).
 */
export function appBindAddresses(config: RefractConfig, app: AppSpec): readonly string[] {
  if (!poolsConfigured(config)) return config.node.addresses;
  if (app.edgeIps.type === 'static') return [...new Set(app.edgeIps.ips.map(canon))];
  const state = config.edgeIps ?? fallbackState(config);
  const held = state.names[nameOf(app)];
  if (held === undefined) return [];
  const c = app.edgeIps.connectivity;
  const out: string[] = [];
  if (c !== 'ipv6' && held.ipv4 !== undefined) out.push(held.ipv4);
  if (c !== 'ipv4' && held.ipv6 !== undefined) out.push(held.ipv6);
  return out;
}

const fallbacks = new WeakMap<RefractConfig, EdgeIpState>();

function fallbackState(config: RefractConfig): EdgeIpState {
  let s = fallbacks.get(config);
  if (s === undefined) {
    const r = allocateEdgeIps(config, undefined, 0);
    s = r.ok ? r.state : EMPTY_EDGE_IPS;
    fallbacks.set(config, s);
  }
  return s;
}

/** Reads a state from JSON data (the state file, a database row); anything malformed is left out. */
export function edgeIpStateFrom(data: unknown): EdgeIpState {
  const names: Record<string, EdgeIpNameState> = {};
  const src = typeof data === 'object' && data !== null ? (data as { names?: unknown }).names : undefined;
  if (typeof src !== 'object' || src === null) return EMPTY_EDGE_IPS;
  for (const [name, v] of Object.entries(src as Record<string, unknown>)) {
    if (typeof v !== 'object' || v === null) continue;
    const r = v as Record<string, unknown>;
    const ipv4 = typeof r['ipv4'] === 'string' && canonicalIp(r['ipv4'])?.family === 'IPv4' ? canon(r['ipv4']) : undefined;
    const ipv6 = typeof r['ipv6'] === 'string' && canonicalIp(r['ipv6'])?.family === 'IPv6' ? canon(r['ipv6']) : undefined;
    if (ipv4 === undefined && ipv6 === undefined) continue;
    names[name] = { ...(ipv4 === undefined ? {} : { ipv4 }), ...(ipv6 === undefined ? {} : { ipv6 }) };
  }
  const held: Record<string, number> = {};
  const heldSrc = (data as { held?: unknown }).held;
  if (typeof heldSrc === 'object' && heldSrc !== null) {
    for (const [ip, at] of Object.entries(heldSrc as Record<string, unknown>)) {
      if (canonicalIp(ip) === undefined || typeof at !== 'number' || !Number.isFinite(at)) continue;
      held[canon(ip)] = at;
    }
  }
  return Object.keys(held).length === 0 ? { names } : { names, held };
}
