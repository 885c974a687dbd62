/**
 * Messages between the harness (`run.ts`) and its load generator (`loadgen.ts`, a child process on the
 * load-generator core), plus the wire constants the origin (`origin.ts`) and the load generator share.
 * One request at a time; every request carries a hard time limit so a stuck proxy cannot hang the run.
 */

/** Bytes the cps client writes and expects echoed back on each connection. */
export const CPS_PAYLOAD_BYTES = 64;
/** Throughput streams start with this many bytes: the big-endian uint64 count of bytes that follow. */
export const SINK_HEADER_BYTES = 8;
/** The byte the sink writes once it has received every announced byte. */
export const SINK_ACK = 0x4b; // 'K'

export type LoadgenRequest =
  | {
      readonly id: number;
      readonly cmd: 'cps';
      readonly port: number;
      /** Connections to complete (connect, write 64 B, read the echo, close). */
      readonly count: number;
      /** Connections in flight at once (one loop each). */
      readonly concurrency: number;
      /** Wall-clock cap, ms: the run stops early and reports what completed. */
      readonly maxMs: number;
    }
  | {
      readonly id: number;
      readonly cmd: 'throughput';
      readonly port: number;
      /** Total bytes across all connections, split evenly. */
      readonly totalBytes: number;
      readonly conns: number;
      readonly maxMs: number;
    }
  | {
      readonly id: number;
      readonly cmd: 'open';
      readonly port: number;
      /** Idle connections to open and keep, each confirmed end to end by one 64 B echo. */
      readonly count: number;
      readonly concurrency: number;
      readonly maxMs: number;
    }
  | { readonly id: number; readonly cmd: 'closeAll'; readonly maxMs: number };

export interface CpsResult {
  readonly completed: number;
  readonly errors: number;
  /** First error code seen (e.g. ECONNRESET, TIMEOUT), for the notes column. */
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
  readonly timedOut: boolean;
  /** Connect-to-echo latency percentiles over completed connections, µs. */
  readonly p50Us: number;
  readonly p99Us: number;
}

export interface ThroughputResult {
  /** Bytes acknowledged by the sink (all of them unless timedOut or errors). */
  readonly ackedBytes: number;
  /** Bytes handed to the kernel by the client; the lower-bound basis when the run timed out. */
  readonly writtenBytes: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
  readonly timedOut: boolean;
}

export interface OpenResult {
  readonly opened: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
  readonly timedOut: boolean;
}

export interface CloseResult {
  /** Idle connections that closed on their own before closeAll (the proxy dropped them). */
  readonly droppedBeforeClose: number;
  readonly closed: number;
}

export type LoadgenReply =
  | { readonly id: number; readonly ok: true; readonly result: CpsResult | ThroughputResult | OpenResult | CloseResult }
  | { readonly id: number; readonly ok: false; readonly error: string };
