/**
 * The soak's IPC between the runner (bench/soak/slow.ts, reload.ts) and its load child (bench/soak/load.ts): one
 * request, one answer, matched by `id`. Everything here is plain data (structured clone).
 */

/** How a slow client misbehaves: nothing at all, or one byte of `bytes` every `everyMs`. */
export interface SlowSpec {
  readonly kind: string;
  readonly port: number;
  readonly count: number;
  /** Bytes to dribble one at a time; absent: the client sends nothing. */
  readonly dribble?: Uint8Array;
  readonly everyMs?: number;
  /** Source addresses (127.0.0.0/8), used in turn. */
  readonly sources: readonly string[];
}

export interface SlowConn {
  readonly kind: string;
  readonly local: string;
  /** performance.now() of the connect call and of the `connect` event; -1 if it never connected. */
  readonly startedAt: number;
  readonly connectedAt: number;
  /** When the socket closed, -1 if still open when reported. */
  readonly closedAt: number;
  /** Bytes written (dribbled) before the close. */
  readonly written: number;
  /** Whether the server ended or reset it (as opposed to our own destroy at the report). */
  readonly closedByPeer: boolean;
  readonly error: string | undefined;
}

/** One legitimate kind of client: plain TCP, an inbound PROXY v1 header first, or TLS. */
export interface LegitTarget {
  readonly kind: 'plain' | 'proxy' | 'tls';
  readonly port: number;
  readonly servername?: string;
}

export interface LegitResult {
  readonly kind: LegitTarget['kind'];
  /** Connect call → first echoed byte, ms, per completed exchange. */
  readonly firstByteMs: number[];
  readonly ok: number;
  readonly failures: string[];
  /** Local `ip:port` of every exchange, to find its closing event. */
  readonly locals: string[];
}

export interface GarbageSpec {
  readonly kind: string;
  readonly port: number;
  readonly count: number;
  readonly bytes: Uint8Array;
  readonly sources: readonly string[];
}

export interface GarbageConn {
  readonly kind: string;
  readonly local: string;
  readonly closedByPeer: boolean;
  readonly lifetimeMs: number;
  readonly error: string | undefined;
}

export interface StreamReport {
  readonly local: string;
  readonly sent: number;
  readonly received: number;
  /** Offset of the first echoed byte that differs from what was sent there; -1 when none. */
  readonly mismatchAt: number;
  readonly gotEnd: boolean;
  /** The socket closed (or errored) before we ended our side. */
  readonly droppedEarly: boolean;
  readonly error: string | undefined;
}

export type Request =
  | { readonly id: number; readonly cmd: 'slow'; readonly host: string; readonly specs: readonly SlowSpec[]; readonly perBatch: number; readonly batchGapMs: number }
  | { readonly id: number; readonly cmd: 'slowReport'; readonly waitMs: number }
  | { readonly id: number; readonly cmd: 'legit'; readonly host: string; readonly targets: readonly LegitTarget[]; readonly concurrency: number; readonly durationMs: number; readonly maxPerTarget: number }
  | { readonly id: number; readonly cmd: 'garbage'; readonly host: string; readonly specs: readonly GarbageSpec[]; readonly timeoutMs: number }
  | { readonly id: number; readonly cmd: 'streams'; readonly host: string; readonly port: number; readonly count: number; readonly chunkBytes: number; readonly everyMs: number; readonly sources: readonly string[] }
  | { readonly id: number; readonly cmd: 'streamsProgress' }
  | { readonly id: number; readonly cmd: 'streamsStop'; readonly timeoutMs: number };

/** A request without its id (the client numbers them). */
export type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

export type Answer = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string };

/** Byte `offset` of stream `index`: varies with both, so a lost, doubled or misplaced byte never looks right. */
export function streamByte(index: number, offset: number): number {
  return (offset * 31 + (offset >>> 8) * 7 + index * 101 + 13) & 0xff;
}
