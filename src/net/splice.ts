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
import type { Cancel, Clock, Conn, ConnHandlers, NetError } from './ports.ts';

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

/**
 * Joins `down` and `up` (see the module comment). Writes `opts.upstreamPrefix` upstream first, then lets bytes flow
 * both ways; `cb` hears lifecycle only. The returned handle counts bytes and stops the splice.
 */
export function splice(down: Conn, up: Conn, opts: SpliceOptions, cb: SpliceCallbacks): SpliceHandle {
  return new Splice(down, up, opts, cb);
}

/**
 * One splice's state. A class, and each Conn's handlers a small object with methods (`Leg`, below), rather than a
 * closure per callback: three objects per splice instead of thirteen (the Conn calls a handler as a method of
 * the object it was given on, ports.ts). Under tsx every named function expression is also wrapped in `__name` (an
 * `Object.defineProperty` per closure created), which made closures cost several microseconds per connection.
 */
class Splice implements SpliceHandle {
  bytesDownstream = 0;
  bytesUpstream = 0;
  readonly #down: Conn;
  readonly #up: Conn;
  readonly clock: Clock;
  readonly #idleTimeoutMs: number;
  readonly cb: SpliceCallbacks;
  /** Time of the last byte moved either way (the idle timer re-arms from it). */
  last: number;
  #failed = false;
  #finished = false;
  #cancelIdle: Cancel | undefined = undefined;

  constructor(down: Conn, up: Conn, opts: SpliceOptions, cb: SpliceCallbacks) {
    this.#down = down;
    this.#up = up;
    this.cb = cb;
    const clock = opts.clock;
    this.clock = clock;
    this.#idleTimeoutMs = opts.idleTimeoutMs;
    this.last = clock.now();
    if (this.#idleTimeoutMs > 0 && Number.isFinite(this.#idleTimeoutMs)) this.#armIdle(this.#idleTimeoutMs);

    const prefix = opts.upstreamPrefix;
    if (prefix !== undefined) for (let i = 0; i < prefix.length; i++) up.write(prefix[i]!);

    down.setHandlers(new Leg(this, down, up, 'downstream'));
    up.setHandlers(new Leg(this, up, down, 'upstream'));
    if (opts.downstreamEnded) {
      up.end();
      cb.c2sEnd();
    } else down.resume();
    up.resume();
  }

  /** Stops the idle timer and destroys both Conns. Safe to call more than once. */
  stop(): void {
    this.#stopIdle();
    this.#down.destroy();
    this.#up.destroy();
  }

  #armIdle(ms: number): void {
    this.#cancelIdle = this.clock.setTimer(ms, () => {
      this.#onIdleTimer();
    });
  }

  #stopIdle(): void {
    const cancel = this.#cancelIdle;
    if (cancel === undefined) return;
    this.#cancelIdle = undefined;
    cancel();
  }

  #onIdleTimer(): void {
    this.#cancelIdle = undefined;
    if (this.#finished) return;
    const remaining = this.last + this.#idleTimeoutMs - this.clock.now();
    if (remaining > 0) this.#armIdle(remaining);
    else this.cb.idle();
  }

  fail(side: SpliceSide, err: NetError): void {
    if (this.#failed || this.#finished) return;
    this.#failed = true;
    (side === 'downstream' ? this.#up : this.#down).reset();
    this.cb.error(side, err);
  }

  maybeClosed(): void {
    if (this.#finished || !this.#down.closed || !this.#up.closed) return;
    this.#finished = true;
    this.#stopIdle();
    this.cb.closed();
  }
}

/**
 * One Conn's handlers in a splice: its bytes go to the other Conn, its FIN is forwarded, its error and close are the
 * splice's business. One class for both legs (the client's, `downstream`, and the origin's), so the Conns call
 * handlers of one shape.
 */
class Leg implements Omit<ConnHandlers, 'connect'> {
  readonly #s: Splice;
  readonly #from: Conn;
  readonly #to: Conn;
  readonly #side: SpliceSide;
  constructor(s: Splice, from: Conn, to: Conn, side: SpliceSide) {
    this.#s = s;
    this.#from = from;
    this.#to = to;
    this.#side = side;
  }
  data(chunk: Uint8Array): void {
    const s = this.#s;
    if (this.#side === 'downstream') s.bytesDownstream += chunk.length;
    else s.bytesUpstream += chunk.length;
    s.last = s.clock.now();
    // A closed receiver can take nothing more; the bytes are dropped and this side is ended when it closes.
    const to = this.#to;
    if (!to.closed && !to.write(chunk)) this.#from.pause();
  }
  drain(): void {
    this.#to.resume();
  }
  end(): void {
    this.#to.end();
    if (this.#side === 'downstream') this.#s.cb.c2sEnd();
    else this.#s.cb.s2cEnd();
  }
  error(e: NetError): void {
    this.#s.fail(this.#side, e);
  }
  close(): void {
    // This side is gone both ways: nothing the other sends can be delivered any more.
    if (!this.#to.closed) this.#to.end();
    this.#s.maybeClosed();
  }
}
