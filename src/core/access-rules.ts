/**
 * IP Access rule evaluation, pure. `compileAccessRules` turns a validated rule list (src/model/access-rules.ts) into
 * lookup tables once; `decide` answers one client (address, and optionally ASN and country) with no allocation.
 *
 * Precedence (docs/access-rules.md): the most specific matching rule decides.
 *   1. IP rules: `ip` (one address) over any `ip_range`; a longer prefix over a shorter one.
 *   2. then an `asn` rule, 3. then a `country` rule.
 * Between rules of equal specificity (same address and prefix, same ASN, same country), allow beats block, then the
 * earlier rule. No match → action 'none', matched 'UNKNOWN' (the connection is allowed).
 * IPv4-mapped IPv6 clients (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 peers) are IPv4 clients.
 *
 * How the IP tables work: CIDR blocks nest or are disjoint, so the rules of one family cut the address space into
 * segments, each owned by the most specific rule covering it (or by none). `compile` sweeps the blocks sorted by
 * (start, prefix) with a stack of open blocks and writes each segment's first address and owner into sorted typed
 * arrays (at most 2n+1 segments for n blocks); `decide` finds the segment of an address by binary search:
 * ~15 comparisons for 10,000 rules, whatever their prefixes.
 */
import { isV4MappedWords, parseIpWords } from '../model/ip.ts';
import type { AccessRule, ClientMatchedIpFirewall } from '../model/types.ts';

export type { ClientMatchedIpFirewall } from '../model/types.ts';

/**
 * What rule evaluation can report. Spectrum also logs `ALLOW` and `BLOCK_ERROR` but documents neither's meaning;
 * rule evaluation does not produce them (a range rule reports `*_IP`, no match reports `UNKNOWN`).
 */
export type AccessMatch = Exclude<ClientMatchedIpFirewall, 'ALLOW' | 'BLOCK_ERROR'>;

export interface AccessDecision {
  /** 'none': no rule matched; the connection is allowed. */
  readonly action: 'allow' | 'block' | 'none';
  readonly matched: AccessMatch;
  /** The deciding rule's id; absent when no rule matched. */
  readonly ruleId?: string;
}

export interface AccessQuery {
  /** The client address as the socket (or an inbound PROXY header) reports it; a zone (`%eth0`) is ignored. */
  readonly ip: string;
  /** ISO 3166-1 alpha-2 in upper case (what `GeoLookup.country` returns), XX or T1; absent = not known. */
  readonly country?: string | undefined;
  /** AS number; absent = not known. */
  readonly asn?: number | undefined;
}

/**
 * A compiled rule set. Treat as opaque: the layout is for `decide`. Segment arrays are sorted by first address;
 * `*Owners[i]` is the index in `decisions` of the rule owning segment i, or -1.
 */
export interface CompiledAccessRules {
  /** Number of rules compiled. */
  readonly size: number;
  readonly decisions: readonly AccessDecision[];
  readonly v4Starts: Uint32Array;
  readonly v4Owners: Int32Array;
  /** Four big-endian 32-bit words per segment start. */
  readonly v6Starts: Uint32Array;
  readonly v6Owners: Int32Array;
  /** False when no rule targets an address: `decide` then does not parse the address at all. */
  readonly hasIpRules: boolean;
  readonly asn: ReadonlyMap<number, number>;
  readonly country: ReadonlyMap<string, number>;
}

/** The decision when no rule matches. */
export const NO_MATCH: AccessDecision = Object.freeze({ action: 'none', matched: 'UNKNOWN' });

// ── compile ─────────────────────────────────────────────────────────────────────────────────────────────────────

interface Block {
  readonly start: bigint;
  readonly end: bigint;
  readonly prefix: number;
  /** prefix × 2, + 1 for an `ip` rule: an address rule outranks a /32 (/128) range of the same address. */
  readonly specificity: number;
  readonly rule: number;
}

/** Better of two rules of equal key: higher specificity, then allow over block, then the earlier. */
function better(rules: readonly AccessRule[], a: { specificity: number; rule: number }, b: { specificity: number; rule: number }): boolean {
  if (a.specificity !== b.specificity) return a.specificity > b.specificity;
  const am = rules[a.rule]?.mode;
  const bm = rules[b.rule]?.mode;
  if (am !== bm) return am === 'allow';
  return a.rule < b.rule;
}

function parseBlock(rule: AccessRule, index: number): { family: 4 | 6; block: Block } {
  const { target, value } = rule.configuration;
  const bad = (): Error => new Error(`compileAccessRules: "${value}" is not a normalised ${target} value; validate rules first`);
  const slash = value.indexOf('/');
  if ((slash === -1) !== (target === 'ip')) throw bad();
  const addrText = slash === -1 ? value : value.slice(0, slash);
  const words = new Uint32Array(4);
  const fam = parseIpWords(addrText, words);
  if (fam === 0 || addrText.includes('%')) throw bad();
  let family: 4 | 6 = fam;
  let bits = fam === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(bits) : value.slice(slash + 1);
  let prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > bits) throw bad();
  let n = fam === 4 ? BigInt(words[0] ?? 0) : wordsToBig(words);
  if (fam === 6 && prefix >= 96 && isV4MappedWords(words)) {
    family = 4;
    bits = 32;
    prefix -= 96;
    n = BigInt(words[3] ?? 0);
  }
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const start = n & ~hostMask;
  return {
    family,
    block: { start, end: start | hostMask, prefix, specificity: prefix * 2 + (target === 'ip' ? 1 : 0), rule: index },
  };
}

function wordsToBig(w: Uint32Array): bigint {
  return (BigInt(w[0] ?? 0) << 96n) | (BigInt(w[1] ?? 0) << 64n) | (BigInt(w[2] ?? 0) << 32n) | BigInt(w[3] ?? 0);
}

/** Segments (first address, owner) of one family; the first segment starts at 0. */
function segments(rules: readonly AccessRule[], blocks: readonly Block[], bits: number): { starts: bigint[]; owners: number[] } {
  // One block per (start, prefix): the best rule of equal reach owns it.
  const byKey = new Map<string, Block>();
  for (const b of blocks) {
    const key = `${b.start}/${b.prefix}`;
    const cur = byKey.get(key);
    if (cur === undefined || better(rules, b, cur)) byKey.set(key, b);
  }
  const sorted = [...byKey.values()].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.prefix - b.prefix));
  const max = (1n << BigInt(bits)) - 1n;
  const starts: bigint[] = [0n];
  const owners: number[] = [-1];
  const mark = (at: bigint, owner: number): void => {
    const last = starts.length - 1;
    if (starts[last] === at) owners[last] = owner;
    else if (owners[last] !== owner) {
      starts.push(at);
      owners.push(owner);
    }
  };
  // Invariant: `open` holds nested blocks, outermost first; the innermost owns the addresses being swept.
  const open: Block[] = [];
  const closeBefore = (at: bigint | undefined): void => {
    for (let top = open.at(-1); top !== undefined && (at === undefined || top.end < at); top = open.at(-1)) {
      open.pop();
      if (top.end < max) mark(top.end + 1n, open.at(-1)?.rule ?? -1);
    }
  };
  for (const b of sorted) {
    closeBefore(b.start);
    mark(b.start, b.rule);
    open.push(b);
  }
  closeBefore(undefined);
  return { starts, owners };
}

function decisionOf(rule: AccessRule): AccessDecision {
  const allow = rule.mode === 'allow';
  const kind = rule.configuration.target === 'asn' ? 'ASN' : rule.configuration.target === 'country' ? 'COUNTRY' : 'IP';
  const matched: AccessMatch = allow ? `WHITELIST_${kind}` : `BLOCK_${kind}`;
  return Object.freeze({ action: allow ? 'allow' : 'block', matched, ruleId: rule.id });
}

/**
 * Compiles validated rules (any number, duplicates allowed: they are resolved by the precedence above, so zone and
 * app lists can simply be concatenated). Cost O(n log n); the result is immutable.
 * @throws Error when a rule is not in the normalised form `validateAccessRule` produces (a bug in the caller).
 */
export function compileAccessRules(rules: readonly AccessRule[]): CompiledAccessRules {
  const v4: Block[] = [];
  const v6: Block[] = [];
  const asn = new Map<number, number>();
  const country = new Map<string, number>();
  const keep = <K>(map: Map<K, number>, key: K, i: number): void => {
    const cur = map.get(key);
    if (cur === undefined || better(rules, { specificity: 0, rule: i }, { specificity: 0, rule: cur })) map.set(key, i);
  };
  rules.forEach((rule, i) => {
    const { target, value } = rule.configuration;
    switch (target) {
      case 'ip':
      case 'ip_range': {
        const { family, block } = parseBlock(rule, i);
        (family === 4 ? v4 : v6).push(block);
        break;
      }
      case 'asn': {
        const n = Number(value.slice(2));
        if (!value.startsWith('AS') || !Number.isInteger(n) || n < 1) throw new Error(`compileAccessRules: asn "${value}"; validate rules first`);
        keep(asn, n, i);
        break;
      }
      case 'country':
        keep(country, value, i);
        break;
    }
  });
  const s4 = segments(rules, v4, 32);
  const s6 = segments(rules, v6, 128);
  const v6Starts = new Uint32Array(s6.starts.length * 4);
  s6.starts.forEach((n, i) => {
    for (let k = 0; k < 4; k++) v6Starts[i * 4 + k] = Number((n >> BigInt(96 - 32 * k)) & 0xffffffffn);
  });
  return Object.freeze({
    size: rules.length,
    decisions: Object.freeze(rules.map(decisionOf)),
    v4Starts: Uint32Array.from(s4.starts, Number),
    v4Owners: Int32Array.from(s4.owners),
    v6Starts,
    v6Owners: Int32Array.from(s6.owners),
    hasIpRules: v4.length + v6.length > 0,
    asn,
    country,
  });
}

// ── decide ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** The client address being decided (reused: `decide` is synchronous). */
const ADDR = new Uint32Array(4);

function ownerV4(c: CompiledAccessRules, x: number): number {
  const starts = c.v4Starts;
  let lo = 0;
  let hi = starts.length - 1;
  // Invariant: starts[lo] <= x (starts[0] = 0); find the last such index.
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if ((starts[mid] ?? 0) <= x) lo = mid;
    else hi = mid - 1;
  }
  return c.v4Owners[lo] ?? -1;
}

/** starts[4i..4i+3] <= a, compared word by word. */
function v6AtMost(starts: Uint32Array, i: number, a: Uint32Array): boolean {
  const o = i * 4;
  for (let k = 0; k < 4; k++) {
    const s = starts[o + k] ?? 0;
    const w = a[k] ?? 0;
    if (s !== w) return s < w;
  }
  return true;
}

function ownerV6(c: CompiledAccessRules, a: Uint32Array): number {
  let lo = 0;
  let hi = c.v6Owners.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (v6AtMost(c.v6Starts, mid, a)) lo = mid;
    else hi = mid - 1;
  }
  return c.v6Owners[lo] ?? -1;
}

function hasLowerCase(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 97 && c <= 122) return true;
  }
  return false;
}

/**
 * Decides one client: the most specific IP rule, else the ASN rule, else the country rule, else NO_MATCH.
 * Returns shared frozen objects (one per rule, plus NO_MATCH); never allocates, never throws. An `ip` that is not
 * an address matches no IP rule (ASN and country rules still apply).
 */
export function decide(c: CompiledAccessRules, q: AccessQuery): AccessDecision {
  if (c.hasIpRules) {
    const fam = parseIpWords(q.ip, ADDR);
    let owner = -1;
    if (fam === 4) owner = ownerV4(c, ADDR[0] ?? 0);
    else if (fam === 6) owner = isV4MappedWords(ADDR) ? ownerV4(c, ADDR[3] ?? 0) : ownerV6(c, ADDR);
    if (owner >= 0) return c.decisions[owner] ?? NO_MATCH;
  }
  if (q.asn !== undefined && c.asn.size > 0) {
    const i = c.asn.get(q.asn);
    if (i !== undefined) return c.decisions[i] ?? NO_MATCH;
  }
  if (q.country !== undefined && c.country.size > 0) {
    const i = c.country.get(q.country) ?? (hasLowerCase(q.country) ? c.country.get(q.country.toUpperCase()) : undefined);
    if (i !== undefined) return c.decisions[i] ?? NO_MATCH;
  }
  return NO_MATCH;
}
