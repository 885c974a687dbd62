/**
 * Who handles each of a Conn's callbacks (the `setHandlers` contract in ports.ts), for every Conn implementation of
 * both worlds.
 *
 * `set(h)` makes `h` the handler of each callback `h` has (its own or inherited: a class instance's methods count),
 * and each callback is later called as a method of the object that gave it (`h.data(chunk)`, `this` being `h`). So
 * a handler set can be a class instance with its callbacks on the prototype: one object per connection instead of
 * a closure per callback (the splice's legs are). The slots are one object per Conn, written in place: no merged copy
 * per `setHandlers` call.
 *
 * The slots are themselves a complete `ConnHandlers` that forwards each call to its handler, so a wrapping Conn (TLS
 * before its handshake is over) can keep its caller's handlers here and hand the slots to the Conn underneath.
 */
import type { ConnHandlers, NetError } from './ports.ts';

const noop = (): void => {};
/** The handler of a callback nobody set. Never written to. */
const NOBODY: ConnHandlers = Object.freeze({ connect: noop, data: noop, drain: noop, end: noop, error: noop, close: noop });

export class HandlerSlots implements ConnHandlers {
  connectBy: ConnHandlers = NOBODY;
  dataBy: ConnHandlers = NOBODY;
  drainBy: ConnHandlers = NOBODY;
  endBy: ConnHandlers = NOBODY;
  errorBy: ConnHandlers = NOBODY;
  closeBy: ConnHandlers = NOBODY;

  /** `h` handles the callbacks it has; the others keep their handler. */
  set(h: Partial<ConnHandlers>): void {
    // A callback present on `h` is one it can be called with: the cast only widens what the checks established.
    const full = h as ConnHandlers;
    if (h.connect !== undefined) this.connectBy = full;
    if (h.data !== undefined) this.dataBy = full;
    if (h.drain !== undefined) this.drainBy = full;
    if (h.end !== undefined) this.endBy = full;
    if (h.error !== undefined) this.errorBy = full;
    if (h.close !== undefined) this.closeBy = full;
  }

  /** Forgets every handler (a closed or detached Conn calls nobody, and keeps nothing alive). */
  clear(): void {
    this.connectBy = this.dataBy = this.drainBy = this.endBy = this.errorBy = this.closeBy = NOBODY;
  }

  /** Whether someone set a `data` handler. */
  get hasData(): boolean {
    return this.dataBy !== NOBODY;
  }

  /**
   * These handlers, to give to the Conn underneath a wrapper: the slots themselves, or, when nobody set a `data`
   * handler, a set without `data` (setting one starts a Conn's flow, which only the wrapper's caller may do).
   */
  handover(): Partial<ConnHandlers> {
    return this.hasData ? this : new WithoutData(this);
  }

  connect(): void {
    this.connectBy.connect();
  }
  data(chunk: Uint8Array): void {
    this.dataBy.data(chunk);
  }
  drain(): void {
    this.drainBy.drain();
  }
  end(): void {
    this.endBy.end();
  }
  error(err: NetError): void {
    this.errorBy.error(err);
  }
  close(hadError: boolean): void {
    this.closeBy.close(hadError);
  }
}

/** `HandlerSlots.handover` when no `data` handler was set: every other callback, forwarded. */
class WithoutData implements Omit<ConnHandlers, 'data'> {
  readonly #s: HandlerSlots;
  constructor(s: HandlerSlots) {
    this.#s = s;
  }
  connect(): void {
    this.#s.connect();
  }
  drain(): void {
    this.#s.drain();
  }
  end(): void {
    this.#s.end();
  }
  error(err: NetError): void {
    this.#s.error(err);
  }
  close(hadError: boolean): void {
    this.#s.close(hadError);
  }
}
