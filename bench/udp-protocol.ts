/**
 * The UDP half of the harness ↔ load-generator protocol (the TCP half is `protocol.ts`): requests that drive
 * `udp-load.ts` inside the load-generator child, and what each answers. Same rules: one request at a time, every
 * request bounded by a count and a wall-clock cap `maxMs`, every datagram by `timeoutMs`.
 */

export type UdpLoadRequest =
  | {
      readonly id: number;
      readonly cmd: 'udpRate';
      readonly port: number;
      /** Bytes per datagram (≥ 8: the first 4 carry a sequence number so a late echo is never taken for a new one). */
      readonly payloadBytes: number;
      /** Round trips to complete (send one datagram, receive its echo). */
      readonly count: number;
      /** Client sockets, each with one datagram in flight at a time (closed loop). */
      readonly concurrency: number;
      readonly maxMs: number;
      /** A datagram with no echo after this long counts as lost; its loop sends the next one. */
      readonly timeoutMs: number;
    }
  | {
      readonly id: number;
      readonly cmd: 'udpOpen';
      readonly port: number;
      /** Client sockets to open, each from its own source port, each sending one 64 B datagram and awaiting its echo. */
      readonly count: number;
      /** Sockets awaiting their echo at once. */
      readonly concurrency: number;
      readonly maxMs: number;
      /** Wait per datagram; an unanswered one is sent once more, then counted unanswered (the socket stays open). */
      readonly timeoutMs: number;
    }
  | { readonly id: number; readonly cmd: 'udpCloseAll'; readonly maxMs: number };

export interface UdpRateResult {
  readonly completed: number;
  /** Datagrams with no echo within timeoutMs (dropped by a socket buffer or the proxy). */
  readonly lost: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
  readonly timedOut: boolean;
  /** Send-to-echo round trip percentiles over completed round trips, µs (nearest rank). */
  readonly p50Us: number;
  readonly p99Us: number;
}

export interface UdpOpenResult {
  /** Sockets whose datagram was echoed: flows confirmed end to end. */
  readonly opened: number;
  readonly unanswered: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
  readonly timedOut: boolean;
}

export interface UdpCloseResult {
  readonly closed: number;
}

export type UdpLoadReply =
  | { readonly id: number; readonly ok: true; readonly result: UdpRateResult | UdpOpenResult | UdpCloseResult }
  | { readonly id: number; readonly ok: false; readonly error: string };

/** True for the messages `udp-load.ts` serves. */
export function isUdpLoadRequest(m: { readonly cmd: string }): m is UdpLoadRequest {
  return m.cmd === 'udpRate' || m.cmd === 'udpOpen' || m.cmd === 'udpCloseAll';
}
