/**
 * The one byte mover: joins a downstream and an upstream Conn, for both worlds (real and simulated).
 *
 * Invariants:
 * - Bytes never become events: each chunk costs one write and one counter update. The connection machine hears
 *   only lifecycle: each direction's end, the first error, idleness, and the moment both Conns are closed.
 * - Backpressure: when a write returns false the source is paused until the sink drains, so memory per
 *   connection stays bounded by the sockets' buffers whatever the speed difference between the two sides.
 * - Half-close: FIN from one side is forwarded as FIN to the other while the other direction keeps flowing.
 * - Reset: an error on one side resets the other (RST in, RST out), then `error` is reported once.
 * - Idle: detected with one coarse timer re-armed from the last activity time (no per-chunk timer work).
 */
import type { Cancel, Clock, Conn, NetError } from './ports.ts';

export type SpliceSide = 'downstream' | 'upstream';

export interface SpliceCallbacks {
  /** The client half-closed and the FIN was forwarded upstream. */
  c2sEnd(): void;
  /** The origin half-closed and the FIN was forwarded downstream. */
  s2cEnd(): void;
  /** First error on either side; the other side has been reset. */
  error(side: SpliceSide, err: NetError): void;
  /** No byte moved either way for `idleTimeoutMs`. */
  idle(): void;
  /** Both Conns are closed. Fires once, last. */
  closed(): void;
}

export interface SpliceOptions {
  clock: Clock;
  idleTimeoutMs: number;
  /** Bytes to send upstream before any client byte (a PROXY header; client bytes read while reading an inbound header). */
  upstreamPrefix?: readonly Uint8Array[];
  /** The client's FIN was already read (e.g. while reading an inbound PROXY header): forward it after the prefix. */
  downstreamEnded?: boolean;
}

export interface SpliceHandle {
  /** Bytes read from the client (ClientBytes). */
  readonly bytesDownstream: number;
  /** Bytes read from the origin (OriginBytes). */
  readonly bytesUpstream: number;
  /** Stops the idle timer and destroys both Conns. Safe to call more than once. */
  stop(): void;
}

export function splice(down: Conn, up: Conn, opts: SpliceOptions, cb: SpliceCallbacks): SpliceHandle {
  const { clock, idleTimeoutMs } = opts;
  let fromDown = 0;
  let fromUp = 0;
  let last = clock.now();
  let failed = false;
  let finished = false;
  let cancelIdle: Cancel | undefined;

  const onIdleTimer = (): void => {
    cancelIdle = undefined;
    if (finished) return;
    const remaining = last + idleTimeoutMs - clock.now();
    if (remaining > 0) cancelIdle = clock.setTimer(remaining, onIdleTimer);
    else cb.idle();
  };
  if (idleTimeoutMs > 0 && Number.isFinite(idleTimeoutMs)) cancelIdle = clock.setTimer(idleTimeoutMs, onIdleTimer);

  const fail = (side: SpliceSide, err: NetError): void => {
    if (failed || finished) return;
    failed = true;
    (side === 'downstream' ? up : down).reset();
    cb.error(side, err);
  };
  const maybeClosed = (): void => {
    if (finished || !down.closed || !up.closed) return;
    finished = true;
    cancelIdle?.();
    cancelIdle = undefined;
    cb.closed();
  };

  for (const b of opts.upstreamPrefix ?? []) up.write(b);

  down.setHandlers({
    data(chunk) {
      fromDown += chunk.length;
      last = clock.now();
      // A closed upstream can take nothing more; the bytes are dropped and downstream is ended below.
      if (!up.closed && !up.write(chunk)) down.pause();
    },
    drain: () => up.resume(),
    end() {
      up.end();
      cb.c2sEnd();
    },
    error: (e) => fail('downstream', e),
    close() {
      // The client is gone both ways: nothing the origin sends can be delivered any more.
      if (!up.closed) up.end();
      maybeClosed();
    },
  });
  up.setHandlers({
    data(chunk) {
      fromUp += chunk.length;
      last = clock.now();
      if (!down.closed && !down.write(chunk)) up.pause();
    },
    drain: () => down.resume(),
    end() {
      down.end();
      cb.s2cEnd();
    },
    error: (e) => fail('upstream', e),
    close() {
      if (!down.closed) down.end();
      maybeClosed();
    },
  });
  if (opts.downstreamEnded) {
    up.end();
    cb.c2sEnd();
  } else down.resume();
  up.resume();

  return {
    get bytesDownstream() {
      return fromDown;
    },
    get bytesUpstream() {
      return fromUp;
    },
    stop() {
      cancelIdle?.();
      cancelIdle = undefined;
      down.destroy();
      up.destroy();
    },
  };
}
