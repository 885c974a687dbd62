/**
 * API tokens and global keys: a random secret shown once; the database keeps only its SHA-256. A presented secret
 * is hashed and compared with every active hash in constant time (`timingSafeEqual`), so neither the secret nor
 * the comparison leaks through timing. Secrets are never logged.
 *
 * A token (`Authorization: Bearer`) carries permissions and zones; a global key (Cloudflare's `X-Auth-Email` +
 * `X-Auth-Key` pair) has every permission on every zone.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ActiveToken, ApiStore } from './store.ts';

const PREFIX = 'rfk_';
const KEY_PREFIX = 'rfg_';

/** Every permission a token can hold (docs/api.md). */
export const PERMISSIONS = ['apps:read', 'apps:edit', 'rules:read', 'rules:edit', 'analytics:read', 'audit:read', 'zones:edit'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/**
 * Who made a request: the token's or key's id, name and kind (and a key's email), and what it may do (undefined:
 * everything, every zone).
 */
export interface Principal {
  readonly id: string;
  readonly name: string;
  readonly kind: 'token' | 'key';
  readonly email: string | undefined;
  readonly permissions: readonly string[] | undefined;
  readonly zones: readonly string[] | undefined;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function equalHash(storedHex: string, h: Buffer): boolean {
  const stored = Buffer.from(storedHex, 'hex');
  return stored.length === h.length && timingSafeEqual(stored, h);
}

/**
 * Creates and stores a token; returns its id and the secret (to print once). `permissions` and `zones` undefined:
 * all.
 */
export function createToken(
  store: ApiStore,
  name: string,
  now: Date,
  grants: { permissions?: readonly Permission[] | undefined; zones?: readonly string[] | undefined } = {},
): { id: string; token: string } {
  const id = randomBytes(16).toString('hex');
  const token = PREFIX + randomBytes(30).toString('base64url');
  store.addToken({ id, name, sha256: sha256(token).toString('hex'), createdOn: now.toISOString(), permissions: grants.permissions, zones: grants.zones });
  return { id, token };
}

/** Creates and stores a global key for `email` (every permission, every zone); returns its id and the key. */
export function createGlobalKey(store: ApiStore, name: string, email: string, now: Date): { id: string; key: string } {
  const id = randomBytes(16).toString('hex');
  const key = KEY_PREFIX + randomBytes(30).toString('base64url');
  store.addToken({ id, name, sha256: sha256(key).toString('hex'), createdOn: now.toISOString(), kind: 'key', email: email.toLowerCase() });
  return { id, key };
}

function principal(t: ActiveToken): Principal {
  return { id: t.id, name: t.name, kind: t.kind, email: t.email, permissions: t.permissions, zones: t.zones };
}

/** The active token `presented` is, or undefined. Looks at every active token (no early exit). */
export function authenticateToken(store: ApiStore, presented: string): Principal | undefined {
  const h = sha256(presented);
  let found: Principal | undefined;
  for (const t of store.activeTokenHashes()) {
    if (t.kind === 'token' && equalHash(t.sha256, h) && found === undefined) found = principal(t);
  }
  return found;
}

/** The active global key of `email` that `presented` is, or undefined. Compares every key's hash (no early exit). */
export function authenticateKey(store: ApiStore, email: string, presented: string): Principal | undefined {
  const h = sha256(presented);
  const e = email.trim().toLowerCase();
  let found: Principal | undefined;
  for (const t of store.activeTokenHashes()) {
    const match = t.kind === 'key' && equalHash(t.sha256, h);
    if (match && t.email === e && found === undefined) found = principal(t);
  }
  return found;
}

/** The id of the active token `presented` is, or undefined. */
export function verifyToken(store: ApiStore, presented: string): string | undefined {
  return authenticateToken(store, presented)?.id;
}

/** The token of an `Authorization: Bearer TOKEN` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/** Parses `apps:read,apps:edit`: the permissions, or the first unknown name. */
export function parsePermissions(text: string): { ok: true; permissions: Permission[] } | { ok: false; unknown: string } {
  const out: Permission[] = [];
  for (const raw of text.split(',')) {
    const p = raw.trim();
    if (p === '') continue;
    if (!(PERMISSIONS as readonly string[]).includes(p)) return { ok: false, unknown: p };
    if (!out.includes(p as Permission)) out.push(p as Permission);
  }
  return { ok: true, permissions: out };
}
