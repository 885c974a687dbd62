/**
 * The batching and retry logic of the HTTP NDJSON event sink (docs/events.md, "Sinks"), apart from any I/O: the
 * POST itself is a `PushTransport` and time is a `PushTimers` (the Clock port's `setTimer`), so the logic runs
 * the same under a fake clock in tests. The real transport (fetch, gzip) is in src/cli/event-sinks.ts.
 *
 * Contract:
 * - events are kept in arrival order and sent as batches of at most `batchSize` lines, one POST at a time (so the
 *   receiver sees them in order); a batch leaves when it is full, or `batchIntervalMs` after its first event;
 * - a 2xx answer delivers the batch; a 5xx, a 429, a network error or a timeout (the transport rejects) retries the
 *   same batch after a doubling delay (`retryInitialMs`, capped at `retryMaxMs`); any other status drops the batch
 *   (the receiver refused it: sending it again cannot help), counted and reported;
 * - at most `bufferEvents` events are held (queued and in flight); an event past that is dropped and counted;
 * - `flush(deadlineMs)` sends what is held without waiting for the batch interval and resolves when all of it was
 *   delivered or dropped, or when the deadline passes (what is left then is counted as dropped).
 */

/** One POST: resolves with the HTTP status, rejects on a network error or timeout. */
export type PushTransport = (body: string) => Promise<number>;

/** `Clock.setTimer`'s shape (src/net/ports.ts), without importing the port into this layer. */
export interface PushTimers {
  setTimer(ms: number, fn: () => void): () => void;
}

export interface PushSettings {
  readonly batchSize: number;
  readonly batchIntervalMs: number;
  readonly bufferEvents: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

/** What the sink reports (the caller logs it): a drop (with why and how many), a retry, a refused batch. */
export type PushNotice =
  | { readonly kind: 'dropped'; readonly reason: 'buffer_full' | 'refused' | 'shutdown'; readonly events: number; readonly status?: number; readonly totalDropped: number }
  | { readonly kind: 'retry'; readonly attempt: number; readonly delayMs: number; readonly status?: number; readonly error?: string };

export class NdjsonPush {
  readonly #s: PushSettings;
  readonly #timers: PushTimers;
  readonly #send: PushTransport;
  readonly #notify: (n: PushNotice) => void;
  #queue: string[] = [];
  #inflight: string[] | undefined;
  #batchTimer: (() => void) | undefined;
  #retryTimer: (() => void) | undefined;
  #attempt = 0;
  #flushing = false;
  #closed = false;
  #idle: Array<() => void> = [];
  delivered = 0;
  dropped = 0;
  retries = 0;

  constructor(settings: PushSettings, timers: PushTimers, send: PushTransport, notify: (n: PushNotice) => void = () => {}) {
    this.#s = settings;
    this.#timers = timers;
    this.#send = send;
    this.#notify = notify;
  }

  /** Events held now: queued and in flight. */
  get buffered(): number {
    return this.#queue.length + (this.#inflight?.length ?? 0);
  }

  /** Takes one event as its JSON line (without the newline). */
  push(line: string): void {
    if (this.#closed || this.buffered >= this.#s.bufferEvents) {
      this.dropped++;
      // Reported on the first drop and every 1,000th: a flood of drops must not become a flood of log lines.
      if (this.dropped % 1000 === 1) this.#notify({ kind: 'dropped', reason: this.#closed ? 'shutdown' : 'buffer_full', events: 1, totalDropped: this.dropped });
      return;
    }
    this.#queue.push(line);
    if (this.#inflight !== undefined) return;
    if (this.#queue.length >= this.#s.batchSize) this.#next();
    else this.#batchTimer ??= this.#timers.setTimer(this.#s.batchIntervalMs, () => {
      this.#batchTimer = undefined;
      this.#next();
    });
  }

  /** Sends the next batch if nothing is in flight and something is queued. */
  #next(): void {
    if (this.#inflight !== undefined || this.#retryTimer !== undefined) return;
    this.#batchTimer?.();
    this.#batchTimer = undefined;
    if (this.#queue.length === 0) {
      this.#settle();
      return;
    }
    this.#inflight = this.#queue.splice(0, this.#s.batchSize);
    this.#attempt = 0;
    this.#post();
  }

  #post(): void {
    const batch = this.#inflight!;
    this.#send(batch.join('\n') + '\n').then(
      (status) => {
        // An answer after the flush deadline gave the batch up is ignored (it was counted as dropped then).
        if (this.#inflight !== batch) return;
        if (status >= 200 && status < 300) return this.#done(batch.length, true);
        if (status >= 500 || status === 429) return this.#retry(status, undefined);
        this.#notify({ kind: 'dropped', reason: 'refused', events: batch.length, status, totalDropped: this.dropped + batch.length });
        this.#done(batch.length, false);
      },
      (err: unknown) => {
        if (this.#inflight === batch) this.#retry(undefined, (err as { code?: string }).code ?? (err as Error).name ?? String(err));
      },
    );
  }

  #retry(status: number | undefined, error: string | undefined): void {
    if (this.#closed) return;
    this.retries++;
    const delayMs = Math.min(this.#s.retryMaxMs, this.#s.retryInitialMs * 2 ** this.#attempt);
    this.#attempt++;
    this.#notify({ kind: 'retry', attempt: this.#attempt, delayMs, ...(status !== undefined ? { status } : {}), ...(error !== undefined ? { error } : {}) });
    this.#retryTimer = this.#timers.setTimer(delayMs, () => {
      this.#retryTimer = undefined;
      this.#post();
    });
  }

  #done(n: number, ok: boolean): void {
    if (ok) this.delivered += n;
    else this.dropped += n;
    this.#inflight = undefined;
    if (this.#closed) return;
    // A full batch (or a flush) goes at once; a partial one waits for its interval.
    if (this.#queue.length >= this.#s.batchSize || (this.#flushing && this.#queue.length > 0)) this.#next();
    else if (this.#queue.length > 0) this.#batchTimer ??= this.#timers.setTimer(this.#s.batchIntervalMs, () => {
      this.#batchTimer = undefined;
      this.#next();
    });
    else this.#settle();
  }

  #settle(): void {
    if (this.buffered !== 0) return;
    for (const f of this.#idle.splice(0)) f();
  }

  /**
   * Sends everything held, batch after batch without waiting for the interval, and stops taking events; resolves
   * when all was delivered or dropped, or at `deadlineMs` (what is left then is dropped and counted).
   */
  flush(deadlineMs: number): Promise<void> {
    this.#flushing = true;
    return new Promise<void>((resolve) => {
      let cancelDeadline: (() => void) | undefined;
      const finish = (): void => {
        cancelDeadline?.();
        this.#close();
        resolve();
      };
      if (this.buffered === 0) return finish();
      this.#idle.push(finish);
      cancelDeadline = this.#timers.setTimer(deadlineMs, () => {
        cancelDeadline = undefined;
        const left = this.buffered;
        this.#idle = this.#idle.filter((f) => f !== finish);
        if (left > 0) {
          this.dropped += left;
          this.#notify({ kind: 'dropped', reason: 'shutdown', events: left, totalDropped: this.dropped });
        }
        this.#queue = [];
        this.#inflight = undefined;
        finish();
      });
      this.#next();
    });
  }

  #close(): void {
    this.#closed = true;
    this.#batchTimer?.();
    this.#retryTimer?.();
    this.#batchTimer = undefined;
    this.#retryTimer = undefined;
  }
}
