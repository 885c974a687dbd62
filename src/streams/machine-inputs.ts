/**
 * How machines are fed: engine-wide RxJS streams of lifecycle inputs, each value routed to the machine instance it
 * is for. An engine keeps one hot stream (`InputStream`) per kind of source (socket signals, TLS results, DNS
 * answers, control plane…), merges them, and delivers every value to its executor. The sources `next` only
 * lifecycle: a handful per connection, never a byte or a chunk.
 *
 * Why engine-wide streams rather than an Observable per connection: measured with
 * `node --import tsx bench/micro/rx-inputs.ts` (docs/architecture.md, "How a machine is fed"), a routed `next`
 * through a merge costs tens of nanoseconds and an idle connection costs nothing, where an Observable pipeline
 * per connection costs kilobytes and microseconds at accept.
 */
import { Subject, merge, type Observable } from 'rxjs';
import { HotStream } from './hot-stream.ts';

/** One machine input: the event, and the instance record it is for. */
export interface Routed<R, E> {
  readonly rec: R;
  readonly event: E;
}

/**
 * An engine-wide input stream of one kind, routed by record: a HotStream (a Subject's hot semantics without the
 * objects the ES5 build of `Subject.next` allocates per value; see hot-stream.ts).
 */
export class InputStream<R, E> extends HotStream<Routed<R, E>> {
  /** Sends `event` to the machine of `rec` (through the merged stream the engine subscribed to). */
  signal(rec: R, event: E): void {
    this.next({ rec, event });
  }
}

/** The merge of an engine's input streams: what its machines receive, in one place. */
export function machineInputs<R, E>(...sources: ReadonlyArray<Observable<Routed<R, E>>>): Observable<Routed<R, E>> {
  return merge(...sources);
}

/**
 * A listener's accepted connections as a stream. The Network port reports accepts through a callback; this
 * turns them into `accepted$` (one `next` per accepted socket) for the engine to subscribe to.
 */
export class AcceptStream<C> extends Subject<C> {
  /** The callback to hand to `Network.listenTcp`. */
  readonly onConnection = (conn: C): void => {
    this.next(conn);
  };
}
