/**
 * Per-cause rate limiting of log lines on the connection path (docs/hardening.md, "Logs and events"): a client
 * decides how many connections fail and how, so it must not decide how many lines the log gets. The events are not
 * limited (every connection keeps its closing event); only log lines are.
 *
 * Contract:
 * - a cause is one of our own names (`tls.client_failed`, `conn.closed.400`, …), never a peer-controlled value,
 *   so the set of causes is bounded by the code;
 * - per cause, a window opens at its first line and lasts `intervalMs`; the first `lines` lines of a window are
 *   allowed, the rest are suppressed and counted;
 * - when a window that suppressed lines ends, `summary(cause, suppressed, intervalMs)` is called once (the caller
 *   logs "cause X: N more in the last T s"), at the window's end, by a timer of the Clock port, so the summary
 *   comes even if the cause never happens again; a window that suppressed nothing ends silently;
 * - `lines: 0` turns the limit off (every line allowed).
 */

/** `Clock.setTimer`'s shape (src/net/ports.ts), without importing the port into this layer. */
export interface LimitTimers {
  setTimer(ms: number, fn: () => void): () => void;
  now(): number;
}

export interface LogLimitSettings {
  /** Lines allowed per cause per window; 0: no limit. */
  readonly lines: number;
  /** Window length, ms. */
  readonly intervalMs: number;
}

interface Window {
  readonly start: number;
  count: number;
  suppressed: number;
  cancel: (() => void) | undefined;
}

export class LogLimiter {
  #s: LogLimitSettings;
  readonly #timers: LimitTimers;
  readonly #summary: (cause: string, suppressed: number, intervalMs: number) => void;
  readonly #windows = new Map<string, Window>();
  /** Lines suppressed since start, per cause (for metrics and health). */
  readonly suppressedByCause = new Map<string, number>();

  constructor(settings: LogLimitSettings, timers: LimitTimers, summary: (cause: string, suppressed: number, intervalMs: number) => void) {
    this.#s = settings;
    this.#timers = timers;
    this.#summary = summary;
  }

  get settings(): LogLimitSettings {
    return this.#s;
  }

  /** New settings apply to windows opened from now on (a reload); open windows end as they were set up. */
  configure(settings: LogLimitSettings): void {
    this.#s = settings;
  }

  /** Lines suppressed since start, all causes. */
  get suppressed(): number {
    let n = 0;
    for (const v of this.suppressedByCause.values()) n += v;
    return n;
  }

  /** Whether a line of `cause` may be written now; a suppressed one is counted. */
  allow(cause: string): boolean {
    const s = this.#s;
    if (s.lines <= 0) return true;
    const now = this.#timers.now();
    let w = this.#windows.get(cause);
    if (w !== undefined && now >= w.start + s.intervalMs && w.cancel === undefined) w = undefined;
    if (w === undefined) {
      w = { start: now, count: 0, suppressed: 0, cancel: undefined };
      this.#windows.set(cause, w);
    }
    if (w.count < s.lines) {
      w.count++;
      return true;
    }
    w.suppressed++;
    this.suppressedByCause.set(cause, (this.suppressedByCause.get(cause) ?? 0) + 1);
    if (w.cancel === undefined) {
      const win = w;
      const intervalMs = s.intervalMs;
      win.cancel = this.#timers.setTimer(Math.max(0, win.start + intervalMs - now), () => {
        win.cancel = undefined;
        if (this.#windows.get(cause) === win) this.#windows.delete(cause);
        this.#summary(cause, win.suppressed, intervalMs);
      });
    }
    return false;
  }

  /** Ends every open window now, calling `summary` for those that suppressed lines (at shutdown). */
  flush(): void {
    for (const [cause, w] of [...this.#windows]) {
      this.#windows.delete(cause);
      if (w.cancel === undefined) continue;
      w.cancel();
      w.cancel = undefined;
      this.#summary(cause, w.suppressed, this.#timers.now() - w.start);
    }
  }
}
