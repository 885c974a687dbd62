/**
 * Where a TCP connection machine's events come from: five engine-wide RxJS streams, merged into one and routed
 * to the connection they name. This is the whole list; nothing reaches a machine any other way (its `after`
 * timers, `connectTimeout` and `proxyHeaderTimeout`, are the machine's own, as in an XState actor).
 *
 * | stream | what feeds it | events |
 * |---|---|---|
 * | `decisions$` | the pure classifiers of src/core (admission.ts, legs.ts) | CONN.ROUTED, CONN.NO_APP, CONN.FILTERED (at accept or after the header), PROXY.EXPECTED, PROXY.UNTRUSTED, TLS.SKIPPED, UPSTREAM.EXHAUSTED |
 * | `socket$` | the Conns' lifecycle callbacks, the inbound PROXY reader and the splice | DOWNSTREAM.CLOSED, PROXY.DECODED, PROXY.INVALID, UPSTREAM.CONNECTED, UPSTREAM.FAILED, SPLICE.* |
 * | `tls$` | the TLS port's handshake results | TLS.CLIENT_OK, TLS.CLIENT_FAILED, TLS.ORIGIN_OK, TLS.ORIGIN_FAILED |
 * | `resolve$` | the origin resolver's answers (DNS, or the direct list) | ORIGIN.RESOLVED, ORIGIN.RESOLVE_FAILED |
 * | `control$` | the control plane: drain deadlines, re-filtering after a rule change, abort | CONN.DRAIN_DEADLINE, CONN.FILTERED, CONN.ABORT |
 *
 * Bytes are never `next`ed: the splice moves them and reports lifecycle only.
 */
import type { Observable } from 'rxjs';
import { InputStream, machineInputs, type Routed } from '../streams/machine-inputs.ts';
import type { TcpConnEvent } from './tcp-connection.machine.ts';

type Ev<T extends string> = Extract<TcpConnEvent, { type: T }>;

export type DecisionEvent = Ev<'CONN.ROUTED' | 'CONN.NO_APP' | 'CONN.FILTERED' | 'CONN.LIMITED' | 'PROXY.EXPECTED' | 'PROXY.UNTRUSTED' | 'TLS.SKIPPED' | 'UPSTREAM.EXHAUSTED'>;
export type SocketEvent = Ev<'DOWNSTREAM.CLOSED' | 'PROXY.DECODED' | 'PROXY.INVALID' | 'UPSTREAM.CONNECTED' | 'UPSTREAM.FAILED' | `SPLICE.${string}`>;
export type TlsEvent = Ev<`TLS.${'CLIENT' | 'ORIGIN'}_${'OK' | 'FAILED'}`>;
export type ResolveEvent = Ev<'ORIGIN.RESOLVED' | 'ORIGIN.RESOLVE_FAILED'>;
export type ControlEvent = Ev<'CONN.DRAIN_DEADLINE' | 'CONN.FILTERED' | 'CONN.ABORT'>;

/** The input streams of the TCP engine; `R` is its connection record (tcp-env.ts's `ConnRecord`). */
export class TcpInputs<R> {
  readonly decisions$ = new InputStream<R, DecisionEvent>();
  readonly socket$ = new InputStream<R, SocketEvent>();
  readonly tls$ = new InputStream<R, TlsEvent>();
  readonly resolve$ = new InputStream<R, ResolveEvent>();
  readonly control$ = new InputStream<R, ControlEvent>();

  /** Every event of every connection machine, in one stream: what the engine subscribes its executor to. */
  readonly all$: Observable<Routed<R, TcpConnEvent>> = machineInputs<R, TcpConnEvent>(
    this.decisions$,
    this.socket$,
    this.tls$,
    this.resolve$,
    this.control$,
  );

  complete(): void {
    this.decisions$.complete();
    this.socket$.complete();
    this.tls$.complete();
    this.resolve$.complete();
    this.control$.complete();
  }
}
