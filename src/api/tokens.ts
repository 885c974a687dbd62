/**
 * API tokens: a random 40-character secret shown once; the database keeps only its SHA-256. A presented token is
 * hashed and compared with every active hash in constant time (`timingSafeEqual`), so neither the secret nor the
 * comparison leaks through timing. Tokens are never logged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiStore } from './store.ts';

const PREFIX = 'rfk_';

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Creates and stores a token; returns its id and the secret (to print once). */
export function createToken(store: ApiStore, name: string, now: Date): { id: string; token: string } {
  const id = randomBytes(16).toString('hex');
  const token = PREFIX + randomBytes(30).toString('base64url');
  store.addToken({ id, name, sha256: sha256(token).toString('hex'), createdOn: now.toISOString() });
  return { id, token };
}

/** The id of the active token `presented` is, or undefined. Looks at every active token (no early exit). */
export function verifyToken(store: ApiStore, presented: string): string | undefined {
  const h = sha256(presented);
  let found: string | undefined;
  for (const t of store.activeTokenHashes()) {
    const stored = Buffer.from(t.sha256, 'hex');
    if (stored.length === h.length && timingSafeEqual(stored, h) && found === undefined) found = t.id;
  }
  return found;
}

/** The token of an `Authorization: Bearer TOKEN` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
