/**
 * The query of `GET /zones/{zone_id}/firewall/access_rules/rules`, as Cloudflare's SDKs send it: filters `mode`,
 * `notes`, `configuration.target`, `configuration.value` combined by `match` (all | any), ordered by `order` and
 * `direction`. Nested keys come dotted (`configuration.target`, the TypeScript SDK) or bracketed
 * (`configuration[target]`); a key sent more than once matches any of its values. docs/api.md is the reference.
 */
import { parseRuleAsn, parseRuleCountry, parseRuleIp, parseRuleRange } from '../model/access-rules.ts';
import { configIssue } from '../model/app.ts';
import type { ConfigIssue } from '../model/types.ts';
import type { ApiRule } from './config-source.ts';

/**
 * Page sizes of the access-rules list: Cloudflare documents 20 as its default page size and 1,000 as the largest
 * page of its firewall lists.
 */
export const RULE_PAGE_SIZES = { perPage: 20, maxPerPage: 1000 };

const MODES = ['block', 'whitelist', 'allow', 'challenge', 'js_challenge', 'managed_challenge'] as const;
const TARGETS = ['ip', 'ip6', 'ip_range', 'asn', 'country'] as const;
const ORDERS = ['configuration.target', 'configuration.value', 'mode'] as const;
type Order = (typeof ORDERS)[number];

export interface RuleQuery {
  readonly modes: readonly string[] | undefined;
  readonly notes: readonly string[] | undefined;
  readonly targets: readonly string[] | undefined;
  readonly values: readonly string[] | undefined;
  readonly match: 'all' | 'any';
  readonly order: Order | undefined;
  readonly direction: 'asc' | 'desc';
}

const bad = (message: string): ConfigIssue => configIssue('', 'E_API_BAD_REQUEST', message);

/** The values of a query key, dotted or bracketed (`a.b` or `a[b]`); undefined when absent or empty. */
function values(q: Record<string, unknown>, key: string): string[] | undefined {
  const dot = key.indexOf('.');
  const names = dot < 0 ? [key] : [key, `${key.slice(0, dot)}[${key.slice(dot + 1)}]`];
  const out: string[] = [];
  for (const n of names) {
    const v = q[n];
    for (const x of Array.isArray(v) ? v : v === undefined ? [] : [v]) if (typeof x === 'string' && x !== '') out.push(x);
  }
  return out.length === 0 ? undefined : out;
}

function oneOf<T extends string>(q: Record<string, unknown>, key: string, allowed: readonly T[], dflt: T): T | ConfigIssue;
function oneOf<T extends string>(q: Record<string, unknown>, key: string, allowed: readonly T[], dflt: undefined): T | undefined | ConfigIssue;
function oneOf<T extends string>(q: Record<string, unknown>, key: string, allowed: readonly T[], dflt: T | undefined): T | undefined | ConfigIssue {
  const v = values(q, key);
  if (v === undefined) return dflt;
  if (v.length > 1 || !(allowed as readonly string[]).includes(v[0]!)) return bad(`${key} must be one of ${allowed.join(', ')}`);
  return v[0] as T;
}

/** The filters and order of a list request, or the problem with them (E_API_BAD_REQUEST). */
export function parseRuleQuery(q: Record<string, unknown>): RuleQuery | ConfigIssue {
  const modes = values(q, 'mode');
  const badMode = modes?.find((m) => !(MODES as readonly string[]).includes(m));
  if (badMode !== undefined) return bad(`mode must be one of ${MODES.join(', ')}, not ${JSON.stringify(badMode)}`);
  const targets = values(q, 'configuration.target');
  const badTarget = targets?.find((t) => !(TARGETS as readonly string[]).includes(t));
  if (badTarget !== undefined) return bad(`configuration.target must be one of ${TARGETS.join(', ')}, not ${JSON.stringify(badTarget)}`);
  const match = oneOf(q, 'match', ['all', 'any'] as const, 'all');
  if (typeof match !== 'string') return match;
  const order = oneOf(q, 'order', ORDERS, undefined);
  if (order !== undefined && typeof order !== 'string') return order;
  const direction = oneOf(q, 'direction', ['asc', 'desc'] as const, 'asc');
  if (typeof direction !== 'string') return direction;
  return { modes, notes: values(q, 'notes'), targets, values: values(q, 'configuration.value'), match, order, direction };
}

/** `value` written in the canonical form of the rule's target equals the rule's value (`de` finds `DE`). */
function sameValue(rule: ApiRule, value: string): boolean {
  const { target, value: have } = rule.configuration;
  const parsed = target === 'ip' ? parseRuleIp(value) : target === 'ip6' ? parseRuleIp(value, true) : target === 'ip_range' ? parseRuleRange(value) : target === 'asn' ? parseRuleAsn(value) : parseRuleCountry(value);
  return parsed.ok ? parsed.value === have : value === have;
}

/**
 * The rules the query selects, in its order. Each filter given is one test: `mode` (`allow` and `whitelist` are the
 * same), `notes` (a case-insensitive substring), `configuration.target` (`ip` also finds IPv6 addresses, which the API
 * shows as `ip6`), `configuration.value` (compared in the rule's canonical form); `match=all` keeps rules passing
 * every test, `match=any` rules passing one. Without filters every rule is kept. Ties keep the listing order, and
 * `direction=desc` reverses the whole order, ties included.
 */
export function selectRules(rules: readonly ApiRule[], q: RuleQuery): ApiRule[] {
  const tests: Array<(r: ApiRule) => boolean> = [];
  if (q.modes !== undefined) {
    const modes = q.modes.map((m) => (m === 'allow' ? 'whitelist' : m));
    tests.push((r) => modes.includes(r.mode));
  }
  if (q.notes !== undefined) {
    const notes = q.notes.map((n) => n.toLowerCase());
    tests.push((r) => notes.some((n) => r.notes.toLowerCase().includes(n)));
  }
  if (q.targets !== undefined) {
    const targets = q.targets;
    tests.push((r) => targets.includes(r.configuration.target) || (r.configuration.target === 'ip6' && targets.includes('ip')));
  }
  if (q.values !== undefined) {
    const vs = q.values;
    tests.push((r) => vs.some((v) => sameValue(r, v)));
  }
  const kept = tests.length === 0 ? [...rules] : rules.filter((r) => (q.match === 'all' ? tests.every((t) => t(r)) : tests.some((t) => t(r))));
  const key = (r: ApiRule): string => (q.order === 'configuration.target' ? r.configuration.target : q.order === 'configuration.value' ? r.configuration.value : q.order === 'mode' ? r.mode : '');
  const sign = q.direction === 'asc' ? 1 : -1;
  const position = new Map(rules.map((r, i) => [r, i] as const));
  return kept.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    const byKey = ka < kb ? -1 : ka > kb ? 1 : 0;
    return sign * (byKey !== 0 ? byKey : (position.get(a) ?? 0) - (position.get(b) ?? 0));
  });
}
