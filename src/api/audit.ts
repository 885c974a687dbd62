/**
 * The audit log as the API returns it (`GET /zones/{zone_id}/audit_logs`), shaped after the entries of Cloudflare's
 * account audit log: `{id, action {type, result}, actor {id, type, …}, interface, resource {id, type}, when,
 * oldValue, newValue, …}`. docs/api.md is the reference. The entries are written by src/api/config-source.ts, in the
 * transaction of the write they record.
 */
import { configIssue } from '../model/app.ts';
import type { ConfigIssue } from '../model/types.ts';
import type { AuditEntry, AuditQuery } from './store.ts';

/** One entry as the API returns it. */
export interface ApiAuditEntry {
  readonly id: string;
  /** What was done (`create`, `update`, `delete`); `result` is always true: refused writes are not recorded. */
  readonly action: { readonly type: string; readonly result: true };
  /** The token or global key that made the write: its id, `token` or `key`, its name, and a key's email. */
  readonly actor: { readonly id: string; readonly type: 'token' | 'key'; readonly name: string; readonly email?: string };
  readonly interface: 'API';
  readonly zone: { readonly id: string };
  readonly resource: { readonly id: string; readonly type: string };
  /** RFC 3339, UTC. */
  readonly when: string;
  /** The object before and after, as JSON text (Cloudflare's form) and as JSON; null when there is none. */
  readonly oldValue: string | null;
  readonly newValue: string | null;
  readonly oldValueJson: unknown;
  readonly newValueJson: unknown;
  readonly metadata: Readonly<Record<string, unknown>>;
}

export function auditView(e: AuditEntry): ApiAuditEntry {
  const text = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
  return {
    id: e.id,
    action: { type: e.action, result: true },
    actor: { id: e.actor.id, type: e.actor.kind, name: e.actor.name, ...(e.actor.email === undefined ? {} : { email: e.actor.email }) },
    interface: 'API',
    zone: { id: e.zoneId },
    resource: { id: e.resourceId, type: e.resourceType },
    when: e.when,
    oldValue: text(e.before),
    newValue: text(e.after),
    oldValueJson: e.before ?? null,
    newValueJson: e.after ?? null,
    metadata: e.metadata ?? {},
  };
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}(?:[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2}))?$/;

/**
 * `since` (inclusive) and `before` (exclusive): an RFC 3339 date-time (`2026-01-01T00:00:00Z`, any offset) or a date
 * (midnight UTC); `direction` `desc` (default: newest first) or `asc`. Returned as `toISOString` text, which compares
 * as the stored times do.
 */
export function parseAuditFilters(q: Record<string, unknown>): Pick<AuditQuery, 'since' | 'before' | 'newestFirst'> | ConfigIssue {
  const time = (name: string): string | undefined | ConfigIssue => {
    const v = q[name];
    if (v === undefined || v === '') return undefined;
    const ms = typeof v === 'string' && RFC3339.test(v) ? Date.parse(v.length === 10 ? `${v}T00:00:00Z` : v) : NaN;
    if (Number.isNaN(ms)) return configIssue('', 'E_API_BAD_REQUEST', `${name} must be an RFC 3339 time (2026-01-01T00:00:00Z) or a date, not ${JSON.stringify(v)}`);
    return new Date(ms).toISOString();
  };
  const since = time('since');
  if (typeof since === 'object') return since;
  const before = time('before');
  if (typeof before === 'object') return before;
  const direction = q['direction'] ?? 'desc';
  if (direction !== 'asc' && direction !== 'desc') return configIssue('', 'E_API_BAD_REQUEST', 'direction must be asc or desc');
  return { since, before, newestFirst: direction === 'desc' };
}
