/**
 * The live event tail: the EventLog's Spectrum events (one per connection step, never per byte) streamed to one
 * HTTP client as Server-Sent Events. Each client has a bounded queue: while its socket does not take more (a slow
 * reader), new events wait in the queue, and once the queue is full further events are dropped and counted; the
 * count goes out with the next event that fits (`dropped` in an SSE `event: dropped` message).
 */
import type { ServerResponse } from 'node:http';
import type { Observable, Subscription } from 'rxjs';
import type { SpectrumEvent } from '../streams/events.ts';

/** Events one client may have waiting before more are dropped. */
export const STREAM_QUEUE = 256;

/** Filters of the tail (query `app`, `event`, `status`): each empty = any. */
export interface EventFilter {
  /** App id or DNS name. */
  readonly app: string;
  readonly event: string;
  readonly status: number | undefined;
}

export function matches(e: SpectrumEvent, f: EventFilter): boolean {
  return (f.app === '' || e.Application === f.app || e.ApplicationName === f.app) && (f.event === '' || e.Event === f.event) && (f.status === undefined || e.Status === f.status);
}

export class EventStreamClient {
  readonly #res: ServerResponse;
  readonly #queue: string[] = [];
  #waiting = false;
  #dropped = 0;
  #sub: Subscription | undefined;
  #ended = false;

  constructor(res: ServerResponse, events$: Observable<SpectrumEvent>, keep: (e: SpectrumEvent) => boolean, onEnd: () => void) {
    this.#res = res;
    res.on('drain', () => {
      this.#waiting = false;
      this.#flush();
    });
    res.on('close', () => this.end(onEnd));
    // A first comment line so the client knows the stream is open before any event arrives.
    this.#write(': refract event stream\n\n');
    this.#sub = events$.subscribe({ next: (e) => (keep(e) ? this.#push(e) : undefined), complete: () => this.end(onEnd) });
  }

  /** Events dropped so far because this client read too slowly. */
  get dropped(): number {
    return this.#dropped;
  }

  #push(e: SpectrumEvent): void {
    if (this.#queue.length >= STREAM_QUEUE) {
      this.#dropped++;
      return;
    }
    this.#queue.push(`event: spectrum\ndata: ${JSON.stringify(e)}\n\n`);
    this.#flush();
  }

  #flush(): void {
    while (!this.#waiting && !this.#ended && this.#queue.length > 0) {
      const chunk = this.#queue.shift()!;
      const dropped = this.#dropped > 0 ? `event: dropped\ndata: ${JSON.stringify({ dropped: this.#dropped })}\n\n` : '';
      this.#write(dropped + chunk);
    }
  }

  #write(text: string): void {
    if (!this.#res.write(text)) this.#waiting = true;
  }

  /** Stops the subscription and ends the response (idempotent). */
  end(onEnd?: () => void): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#sub?.unsubscribe();
    this.#queue.length = 0;
    if (!this.#res.writableEnded) this.#res.end();
    onEnd?.();
  }
}
