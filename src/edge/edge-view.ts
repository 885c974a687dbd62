/**
 * `EdgeView`: what the management API, its live endpoints and the metrics read of an edge and how they change it.
 * `EdgeNode` is one (a single process serves the edge); `serve --workers N` gives the API a view summed over its
 * worker processes (src/cli/workers-edge.ts), each of which runs an EdgeNode.
 */
import type { Observable } from 'rxjs';
import type { RefractConfig } from '../model/types.ts';
import type { SpectrumEvent } from '../streams/events.ts';
import type { TcpStats } from '../machines/tcp-env.ts';
import type { UdpStats } from '../machines/udp-flow.ts';
import type { ApplyResult, EdgeNode } from './edge-node.ts';

/**
 * Open connections or flows of one app in one machine state (its state value's JSON): one each from an EdgeNode,
 * `n` of them (default 1) from a view that counts them elsewhere.
 */
export interface OpenInstance {
  readonly app: string | undefined;
  readonly state: string;
  readonly n?: number;
}

/** A bound edge address and the app it serves. */
export interface EdgeListener {
  readonly protocol: 'tcp' | 'udp';
  readonly host: string;
  readonly port: number;
  readonly app: string | undefined;
}

/** One engine (TCP or UDP): its counters, a live object read at any time, and its open instances now. */
export interface EngineView<S> {
  readonly stats: Readonly<S>;
  appStates(): ReadonlyArray<OpenInstance>;
}

export interface EdgeView {
  /** The running configuration (undefined before the first apply). */
  readonly config: RefractConfig | undefined;
  /** Applies a validated configuration all-or-nothing: it rejects (E_LISTEN_*, …) and changes nothing, or runs it. */
  apply(config: RefractConfig): Promise<ApplyResult>;
  /** Bound edge listeners. */
  listeners(): ReadonlyArray<EdgeListener>;
  /** The Spectrum events (one `connect` and one closing event per connection or flow). */
  readonly events: { readonly events$: Observable<SpectrumEvent> };
  readonly tcp: EngineView<TcpStats>;
  readonly udp: EngineView<UdpStats>;
  /** Connection-path log lines suppressed by `log.rate_limit`, since start. */
  readonly logLimit: { readonly suppressed: number; readonly suppressedByCause: ReadonlyMap<string, number> };
}

/** EdgeNode is an EdgeView as it stands (a compile-time check). */
export const edgeNodeIsAView = (e: EdgeNode): EdgeView => e;
