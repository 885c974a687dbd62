/**
 * IP Access rules in Cloudflare's shape (`POST /zones/{zone}/firewall/access_rules/rules`):
 * `{ id?, mode, configuration: { target, value }, notes? }`, validated and normalised for `src/core/access-rules.ts`.
 * docs/access-rules.md is the operator's reference (shape, precedence, codes).
 *
 * Spectrum honours only rules that target an IP, an IP range, a country or an ASN, with mode allow or block
 * (docs/spectrum.md, "IP Access rules"). Everything else is refused here, with a code:
 * - mode: `allow`, or `whitelist` (the Cloudflare API's own spelling of allow, still current), or `block`;
 *   `challenge`, `js_challenge`, `managed_challenge` are HTTP interstitials a TCP/UDP proxy cannot show → E_RULE_MODE.
 * - target: `ip` (IPv4 or IPv6), `ip6` (the API's IPv6 target, normalised to `ip`), `ip_range`, `country`, `asn`.
 *
 * - zone (Refract extension): the zone the rule belongs to, by id or name; it then applies only to that zone's apps.
 *   Without it the rule is node-wide. Resolved against the zones given in the options (the config's `zones`).
 *
 * Like app objects, unknown fields are ignored and `null` is absent. The fields of an API response Refract does not
 * read (`scope`, `allowed_modes`, `paused`, the dates) are ignored silently; any other unknown key gives a
 * warning (W_CONFIG_UNKNOWN_KEY, with a suggestion when a known key is close). Validation never throws, reports every problem with an RFC 6901 pointer, and deep-freezes the result.
 * A normalised rule validates to itself again.
 */
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { configIssue, decode, isRecord, parseFields, pointerJoin } from './app.ts';
import { LIMITS } from './defaults.ts';
import { type ErrorCode } from './errors.ts';
import { deepFreeze } from './freeze.ts';
import { canonicalAddress, parseCidr, parseIpLiteral, withoutCompatForm } from './ip.ts';
import { type Parsed } from './ports.ts';
import { type AccessRule, type AccessRuleMode, type AccessRuleTarget, type ConfigIssue, type Zone } from './types.ts';
import { findZone, unknownZoneMessage } from './zones.ts';

export type { AccessRule, AccessRuleMode, AccessRuleTarget } from './types.ts';

/** ISO 3166-1 alpha-2, the 249 officially assigned codes. */
export const ISO_COUNTRY_CODES: readonly string[] = Object.freeze(
  (
    'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ ' +
    'CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR ' +
    'GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP ' +
    'KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS ' +
    'MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS ' +
    'RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW ' +
    'TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW'
  ).split(' '),
);

/** Cloudflare's codes outside ISO 3166-1: XX = unknown or reserved, T1 = Tor exit nodes. */
export const SPECIAL_COUNTRY_CODES: readonly string[] = Object.freeze(['XX', 'T1']);

const COUNTRIES: ReadonlySet<string> = new Set([...ISO_COUNTRY_CODES, ...SPECIAL_COUNTRY_CODES]);

/** Largest AS number (32-bit ASNs, RFC 6793). */
export const MAX_ASN = 4_294_967_295;

/** Modes Cloudflare's API knows that Spectrum does not honour. */
const REFUSED_MODES: ReadonlySet<string> = new Set(['challenge', 'js_challenge', 'managed_challenge']);

const fail = <T>(code: ErrorCode, message: string): Parsed<T> => ({ ok: false, code, message });
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });

// ── values ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** `allow`/`whitelist` → allow, `block` → block; anything else E_RULE_MODE (naming the two supported modes). */
export function parseRuleMode(text: string): Parsed<AccessRuleMode> {
  if (text === 'allow' || text === 'whitelist') return ok('allow');
  if (text === 'block') return ok('block');
  const why = REFUSED_MODES.has(text) ? `"${text}" is an HTTP challenge, which Spectrum apps cannot show; use` : `${JSON.stringify(text)} is not one of`;
  return fail('E_RULE_MODE', `mode: ${why} allow, block (or whitelist, the API's spelling of allow)`);
}

/** The value of an `ip` rule (`ip6` when `v6Only`): one address, canonical. */
export function parseRuleIp(text: string, v6Only = false): Parsed<string> {
  const ip = parseIpLiteral(text);
  if (ip === undefined) {
    const hint = text.includes('/') ? '; a block goes in target ip_range' : '';
    return fail('E_RULE_IP', `"${text}" is not an IP address${hint}`);
  }
  if (v6Only && ip.family !== 'IPv6') return fail('E_RULE_IP', `"${text}" is not an IPv6 address; use target ip`);
  return ok(canonicalAddress(ip.address, ip.family).text);
}

/**
 * The value of an `ip_range` rule: `ADDRESS/PREFIX` with no bits set past the prefix, canonical. Any prefix length
 * is accepted (Cloudflare's API takes only /16 and /24 for IPv4, /32, /48, /64 and /128 for IPv6). An IPv4-mapped
 * range of prefix 96 or more becomes the IPv4 range it covers.
 */
export function parseRuleRange(input: string): Parsed<string> {
  const text = withoutCompatForm(input);
  if (!text.includes('/')) return fail('E_RULE_CIDR', `"${input}" has no /PREFIX; write ADDRESS/PREFIX, or use target ip for one address`);
  const c = parseCidr(text);
  if (c === undefined) return fail('E_RULE_CIDR', `"${input}" is not ADDRESS/PREFIX (prefix up to 32 for IPv4, 128 for IPv6)`);
  const addr = ipaddr.parse(c.address.address);
  const network = c.address.family === 'IPv4' ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
  if (network.toNormalizedString() !== addr.toNormalizedString()) {
    const suggestion = c.address.family === 'IPv4' ? network.toString() : (network as ipaddr.IPv6).toRFC5952String();
    return fail('E_RULE_CIDR', `"${input}" has bits set past /${c.prefix}; did you mean ${suggestion}/${c.prefix}?`);
  }
  if (c.address.family === 'IPv6' && c.prefix >= 96 && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return ok(`${(addr as ipaddr.IPv6).toIPv4Address().toString()}/${c.prefix - 96}`);
  }
  return ok(`${canonicalAddress(c.address.address, c.address.family).text}/${c.prefix}`);
}

/** The value of a `country` rule: an ISO 3166-1 alpha-2 code, XX or T1, any case → upper case. */
export function parseRuleCountry(text: string): Parsed<string> {
  const code = text.toUpperCase();
  if (COUNTRIES.has(code)) return ok(code);
  return fail('E_RULE_COUNTRY', `"${text}" is not an ISO 3166-1 alpha-2 country code (nor XX for unknown, T1 for Tor)`);
}

/** The value of an `asn` rule: `AS13335`, `as13335`, `13335` or the number 13335 → `AS13335`; 1 to 4294967295. */
export function parseRuleAsn(value: string | number): Parsed<string> {
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else {
    const m = /^(?:AS)?0*(\d{1,10})$/i.exec(value);
    if (m === null) return fail('E_RULE_ASN', `"${value}" is not an AS number (AS13335 or 13335)`);
    n = Number(m[1]);
  }
  if (!Number.isInteger(n) || n < 1 || n > MAX_ASN) return fail('E_RULE_ASN', `${String(value)} is outside AS1 to AS${MAX_ASN}`);
  return ok(`AS${n}`);
}

// ── the rule object ─────────────────────────────────────────────────────────────────────────────────────────────

/** Field schemas of an access rule; cross-field work (the value by target, the derived id) is in `validateAccessRule`. */
export const ACCESS_RULE_FIELDS = {
  id: z.string().regex(LIMITS.idPattern, 'id must be 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit'),
  mode: z.string().transform((s, ctx) => decode(parseRuleMode(s), ctx)),
  configuration: z.unknown(),
  notes: z.string(),
  zone: z.string().min(1),
} as const;

/** Fields of `configuration`. `value` is a string, or a number for `asn`. */
export const ACCESS_RULE_CONFIGURATION_FIELDS = {
  target: z.enum(['ip', 'ip6', 'ip_range', 'country', 'asn']),
  value: z.union([z.string(), z.number()]),
} as const;

/** The input shape, as an operator (or Cloudflare's API) writes it. */
export interface AccessRuleInput {
  id?: string | null;
  mode: string;
  configuration: { target: 'ip' | 'ip6' | 'ip_range' | 'country' | 'asn'; value: string | number };
  notes?: string | null;
  /** Refract extension: the zone's id or name (absent: node-wide). */
  zone?: string | null;
}

export interface AccessRuleOptions {
  /** The configured zones, for the rules' `zone` field (none: a rule that names a zone is E_CONFIG_ZONE). */
  readonly zones?: readonly Zone[];
}

/** Fields of a Cloudflare API access rule that Refract does not read and ignores without a warning. */
export const IGNORED_ACCESS_RULE_FIELDS: readonly string[] = ['scope', 'allowed_modes', 'paused', 'created_on', 'modified_on'];

/** `warnings` (W_CONFIG_UNKNOWN_KEY) come on both branches. */
export type AccessRuleResult =
  | { readonly ok: true; readonly rule: AccessRule; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };
export type AccessRulesResult =
  | { readonly ok: true; readonly rules: readonly AccessRule[]; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

/**
 * The id of a rule that gives none: 32 hex of SHA-256 over the normalised target and value, and the zone id for a
 * zone's rule. Two rules share it only when they share a configuration and a zone, which a list refuses anyway
 * (E_RULE_DUPLICATE).
 */
export function deriveRuleId(target: AccessRuleTarget, value: string, zone?: string): string {
  const zonePart = zone === undefined ? '' : `\0zone\0${zone}`;
  return createHash('sha256').update(`refract-access-rule\0${target}\0${value}${zonePart}`).digest('hex').slice(0, LIMITS.derivedIdLength);
}

/**
 * Validates one rule and normalises it. `pointerPrefix` is prepended to every issue pointer. Never throws; the rule
 * is deep-frozen.
 */
export function validateAccessRule(raw: unknown, pointerPrefix = '', options: AccessRuleOptions = {}): AccessRuleResult {
  if (!isRecord(raw)) return { ok: false, issues: [configIssue(pointerPrefix, 'E_CONFIG_SCHEMA', 'an access rule must be an object {mode, configuration}')], warnings: [] };
  const { values: v, present, issues, warnings } = parseFields(raw, ACCESS_RULE_FIELDS, pointerPrefix, {
    strict: false,
    nullIsAbsent: true,
    ignore: IGNORED_ACCESS_RULE_FIELDS,
  });
  const at = (...tokens: string[]): string => pointerJoin(pointerPrefix, ...tokens);
  if (!present.has('mode')) issues.push(configIssue(at('mode'), 'E_CONFIG_SCHEMA', 'mode is required: allow or block'));

  let target: AccessRuleTarget | undefined;
  let value: string | undefined;
  const conf = v.configuration;
  if (!present.has('configuration')) {
    issues.push(configIssue(at('configuration'), 'E_CONFIG_SCHEMA', 'configuration is required, e.g. {target: ip_range, value: 192.0.2.0/24}'));
  } else if (!isRecord(conf)) {
    issues.push(configIssue(at('configuration'), 'E_CONFIG_SCHEMA', 'configuration must be an object {target, value}'));
  } else {
    const base = at('configuration');
    const c = parseFields(conf, ACCESS_RULE_CONFIGURATION_FIELDS, base, { strict: false, nullIsAbsent: true });
    issues.push(...c.issues);
    warnings.push(...c.warnings);
    if (!c.present.has('target')) issues.push(configIssue(pointerJoin(base, 'target'), 'E_CONFIG_SCHEMA', 'target is required: ip, ip_range, country or asn'));
    if (!c.present.has('value')) issues.push(configIssue(pointerJoin(base, 'value'), 'E_CONFIG_SCHEMA', 'value is required'));
    const t = c.values.target;
    const raw = c.values.value;
    if (t !== undefined && raw !== undefined) {
      const r = parseValue(t, raw);
      if (r.ok) {
        target = t === 'ip6' ? 'ip' : t;
        value = r.value;
      } else {
        issues.push(configIssue(pointerJoin(base, 'value'), r.code, r.message));
      }
    }
  }

  let zone: string | undefined;
  if (v.zone !== undefined) {
    const zones = options.zones ?? [];
    zone = findZone(v.zone, zones)?.id;
    if (zone === undefined) issues.push(configIssue(at('zone'), 'E_CONFIG_ZONE', unknownZoneMessage(v.zone, zones)));
  }

  if (issues.length > 0) return { ok: false, issues, warnings };
  if (v.mode === undefined || target === undefined || value === undefined) {
    throw new Error('validateAccessRule: a required part is missing although no issue was recorded');
  }
  const rule: AccessRule = {
    id: v.id ?? deriveRuleId(target, value, zone),
    mode: v.mode,
    configuration: { target, value },
    notes: v.notes ?? '',
    ...(zone === undefined ? {} : { zone }),
  };
  return { ok: true, rule: deepFreeze(rule), warnings };
}

function parseValue(target: 'ip' | 'ip6' | 'ip_range' | 'country' | 'asn', raw: string | number): Parsed<string> {
  if (target === 'asn') return parseRuleAsn(raw);
  if (typeof raw !== 'string') {
    const code: ErrorCode = target === 'ip_range' ? 'E_RULE_CIDR' : target === 'country' ? 'E_RULE_COUNTRY' : 'E_RULE_IP';
    return fail(code, `a ${target} value must be a string, got ${String(raw)}`);
  }
  switch (target) {
    case 'ip':
      return parseRuleIp(raw);
    case 'ip6':
      return parseRuleIp(raw, true);
    case 'ip_range':
      return parseRuleRange(raw);
    case 'country':
      return parseRuleCountry(raw);
  }
}

/**
 * Validates a list of rules (`pointerPrefix` is where the list sits, e.g. `/access_rules`). Besides each rule's own
 * problems, a later rule with the same normalised configuration in the same scope (node-wide, or one zone), or the
 * same id anywhere, as an earlier one is E_RULE_DUPLICATE (naming the earlier). Never throws; the list is
 * deep-frozen.
 */
export function validateAccessRules(raw: unknown, pointerPrefix = '', options: AccessRuleOptions = {}): AccessRulesResult {
  if (!Array.isArray(raw)) return { ok: false, issues: [configIssue(pointerPrefix, 'E_CONFIG_SCHEMA', 'access rules must be a list')], warnings: [] };
  const rules: AccessRule[] = [];
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const byConfig = new Map<string, string>();
  const byId = new Map<string, string>();
  (raw as readonly unknown[]).forEach((item, i) => {
    const p = pointerJoin(pointerPrefix, i);
    const r = validateAccessRule(item, p, options);
    warnings.push(...r.warnings);
    if (!r.ok) {
      issues.push(...r.issues);
      return;
    }
    const { target, value } = r.rule.configuration;
    const key = `${r.rule.zone ?? ''} ${target} ${value}`;
    const sameConfig = byConfig.get(key);
    const sameId = byId.get(r.rule.id);
    if (sameConfig !== undefined) {
      const scope = r.rule.zone === undefined ? '' : ` in zone ${r.rule.zone}`;
      issues.push(configIssue(pointerJoin(p, 'configuration'), 'E_RULE_DUPLICATE', `${target} ${value} is already the configuration of ${sameConfig}${scope}`));
    } else if (sameId !== undefined) {
      issues.push(configIssue(pointerJoin(p, 'id'), 'E_RULE_DUPLICATE', `id "${r.rule.id}" is already used by ${sameId}`));
    }
    byConfig.set(key, sameConfig ?? p);
    byId.set(r.rule.id, sameId ?? p);
    rules.push(r.rule);
  });
  if (issues.length > 0) return { ok: false, issues, warnings };
  return { ok: true, rules: deepFreeze(rules), warnings };
}

/** The rule as Cloudflare's API would accept it back (`mode` allow is written `whitelist` there). */
export function toCloudflareRule(rule: AccessRule): { id: string; mode: 'whitelist' | 'block'; configuration: { target: string; value: string }; notes: string } {
  const { target, value } = rule.configuration;
  const apiTarget = target === 'ip' && value.includes(':') ? 'ip6' : target;
  return { id: rule.id, mode: rule.mode === 'allow' ? 'whitelist' : 'block', configuration: { target: apiTarget, value }, notes: rule.notes };
}
