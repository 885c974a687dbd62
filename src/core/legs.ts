/**
 * The small decisions between a connection's legs, as pure functions, so each branch the engine takes is an
 * event the machine names (docs/architecture.md draws them): does the client leg need a TLS handshake
 * (`TLS.SKIPPED` otherwise), does the origin leg, and is there another origin address to dial
 * (`UPSTREAM.EXHAUSTED` otherwise).
 */
import type { TlsMode } from '../model/types.ts';

/** `flexible`, `full` and `strict` terminate TLS at the edge; `off` passes the client's bytes through. */
export function clientLegNeedsTls(mode: TlsMode): boolean {
  return mode !== 'off';
}

/** `full` and `strict` re-encrypt to the origin; `flexible` and `off` send plain TCP. */
export function originLegNeedsTls(mode: TlsMode): boolean {
  return mode === 'full' || mode === 'strict';
}

/**
 * Index of the next origin address to dial, or -1 when the attempts are used up: at most `maxAttempts`
 * connect attempts per connection, one per address in order, never the same address twice.
 */
export function nextDialIndex(attempt: number, targetCount: number, maxAttempts: number): number {
  return attempt < Math.min(targetCount, maxAttempts) ? attempt : -1;
}
