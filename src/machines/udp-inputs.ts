/**
 * Where UDP flows come from and what their machines hear: engine-wide RxJS streams, as for TCP (tcp-inputs.ts).
 *
 * | stream | what feeds it | carries |
 * |---|---|---|
 * | `openings$` | a datagram from a (client, edge) pair with no flow yet | the datagram that may open a flow (admission runs on it) |
 * | `upstream$` | the origin resolver and the upstream socket's bind | UPSTREAM.READY, UPSTREAM.FAILED |
 * | `relay$` | the flow's idle check | FLOW.IDLE |
 * | `control$` | the control plane: drain deadlines, re-filtering after a rule change, abort | FLOW.DRAIN_DEADLINE, FLOW.FILTERED, FLOW.ABORT |
 *
 * Datagrams of an open flow never become `next`s: the engine forwards each with one Map lookup and one send.
 */
import type { ClientHold } from '../core/client-limits.ts';
import { Subject, type Observable } from 'rxjs';
import type { Datagram } from '../net/ports.ts';
import { InputStream, machineInputs, type Routed } from '../streams/machine-inputs.ts';
import type { UdpFlowEvent } from './udp-flow.machine.ts';

type Ev<T extends string> = Extract<UdpFlowEvent, { type: T }>;

/** A datagram whose (client, edge) pair has no flow: the slot it arrived on, the slot's flow index, the datagram. */
export interface FlowOpening<S, I = unknown> {
  readonly slot: S;
  readonly index: I;
  readonly msg: Datagram;
  /** What the per-client limiter counted for the flow (given back when it closes). */
  readonly hold: ClientHold | undefined;
}

export class UdpInputs<R, S, I = unknown> {
  readonly openings$ = new Subject<FlowOpening<S, I>>();
  readonly upstream$ = new InputStream<R, Ev<'UPSTREAM.READY' | 'UPSTREAM.FAILED'>>();
  readonly relay$ = new InputStream<R, Ev<'FLOW.IDLE'>>();
  readonly control$ = new InputStream<R, Ev<'FLOW.DRAIN_DEADLINE' | 'FLOW.FILTERED' | 'FLOW.ABORT'>>();

  /** Every event of every flow machine, in one stream. */
  readonly all$: Observable<Routed<R, UdpFlowEvent>> = machineInputs<R, UdpFlowEvent>(this.upstream$, this.relay$, this.control$);

  complete(): void {
    this.openings$.complete();
    this.upstream$.complete();
    this.relay$.complete();
    this.control$.complete();
  }
}
