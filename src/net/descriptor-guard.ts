/**
 * The descriptor guard, pure: it keeps a reserve of file descriptors free so that accept() never runs dry, pauses
 * accepting for an episode when they run short, and counts every connection lost to it (docs/hardening.md,
 * "Overload and descriptors"). The limit, the count of descriptors in use, time and timers are injected: the real
 * network (src/net/node/descriptors.ts) gives it RLIMIT_NOFILE and /proc/self/fd, the simulator's hosts
 * (src/net/sim/host.ts, `HostOptions.maxDescriptors`) their own table of sockets and the virtual clock, so both
 * refuse the same connections the same way.
 *
 * Why a guard: when accept() fails with EMFILE/ENFILE, libuv closes a spare descriptor it keeps, accepts every
 * pending connection and closes it at once, then reopens the spare. Node's server hears nothing of it (no
 * `connection`, no `error`; in the libuv of older Node lines an `error` with code EMFILE reaches the server only
 * when the spare could not be reopened, once per failed accept): those connections leave no trace. So Refract
 * never lets accept() get there. Every accepted socket first asks `admit()`; while fewer than `reserve`
 * descriptors are free, the connection is reset at once, before any engine work, and counted (E_ACCEPT_EMFILE).
 * The descriptors in use are read only near the limit: between two readings the guard adds the descriptors the
 * network opened since (an upper bound, closes are not tracked).
 *
 * An episode: the first refusal (or an origin connect / UDP bind failing with EMFILE or ENFILE) pauses accepting
 * and logs one warning; a timer re-reads the descriptors with backoff (50 ms doubling to 2 s) and resumes once
 * `2 × reserve` are free, logging one line with what the episode cost. While paused, refusing costs one counter
 * increment: no reading, no timer per connection, no log line per connection.
 */

/** Minimal logger (pino's Logger fits). */
export interface GuardLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface DescriptorStats {
  /** Soft RLIMIT_NOFILE (Infinity when unknown: the guard is off). */
  readonly limit: number;
  /** Descriptors kept free: below this, accepted connections are refused. */
  readonly reserve: number;
  /** Accepted connections reset at once because descriptors ran short (E_ACCEPT_EMFILE). */
  readonly acceptRefused: number;
  /** Origin connects and UDP upstream binds that failed with EMFILE or ENFILE (E_UPSTREAM_EMFILE). */
  readonly upstreamFailed: number;
  /** Episodes so far (each logged once when it starts and once when it ends). */
  readonly episodes: number;
  /** Accepting is paused now. */
  readonly paused: boolean;
}

export interface DescriptorGuardOptions {
  /** Soft limit (Infinity: the guard admits everything). */
  limit: number;
  /** Free descriptors to keep; default: 2 % of the limit, between 16 and 1,024. */
  reserve?: number;
  /** Reads the descriptors in use (undefined: unknown, the last reading stands). */
  count: () => number | undefined;
  log?: GuardLog;
  now: () => number;
  setTimer: (ms: number, fn: () => void) => void;
}

const PROBE_FIRST_MS = 50;
const PROBE_MAX_MS = 2_000;
/** Within this long of a reading, the guard estimates instead of reading /proc again. */
const READ_EVERY_MS = 10;

export class DescriptorGuard {
  readonly limit: number;
  readonly reserve: number;
  readonly #count: () => number | undefined;
  readonly #log: GuardLog | undefined;
  readonly #now: () => number;
  readonly #setTimer: (ms: number, fn: () => void) => void;
  /** Descriptors the network opened (accepts, connects, binds), ever. */
  #opened = 0;
  /** The last reading, when, and `#opened` then. */
  #inUse = 0;
  #readAt = Number.NEGATIVE_INFINITY;
  #openedAtRead = 0;
  #paused = false;
  #probeMs = PROBE_FIRST_MS;
  #episodeStart = 0;
  #episodeRefused = 0;
  #episodeUpstream = 0;
  acceptRefused = 0;
  upstreamFailed = 0;
  episodes = 0;

  constructor(o: DescriptorGuardOptions) {
    this.limit = o.limit;
    this.reserve = o.reserve ?? Math.min(1_024, Math.max(16, Math.floor(this.limit * 0.02)));
    this.#count = o.count;
    this.#log = o.log;
    this.#now = o.now;
    this.#setTimer = o.setTimer;
    if (Number.isFinite(this.limit)) this.#read();
  }

  stats(): DescriptorStats {
    return { limit: this.limit, reserve: this.reserve, acceptRefused: this.acceptRefused, upstreamFailed: this.upstreamFailed, episodes: this.episodes, paused: this.#paused };
  }

  /** The network opened a descriptor (an accepted or outbound socket, a UDP socket). */
  opened(): void {
    this.#opened++;
  }

  /**
   * An accepted connection (already holding its descriptor, counted with `opened`): false = reset it now; the
   * refusal is counted here.
   */
  admit(): boolean {
    if (this.#paused) {
      this.#refuse();
      return false;
    }
    if (!Number.isFinite(this.limit)) return true;
    // Far from the limit by the estimate: no reading.
    if (this.#estimate() < this.limit - 2 * this.reserve) return true;
    if (this.#now() - this.#readAt >= READ_EVERY_MS) this.#read();
    if (this.#estimate() <= this.limit - this.reserve) return true;
    this.#pause({ open: this.#estimate() });
    this.#refuse();
    return false;
  }

  /** An origin connect or UDP bind failed with `code`: counted when it is EMFILE/ENFILE, which also pauses accepting. */
  upstreamError(code: string | undefined): void {
    if (code !== 'EMFILE' && code !== 'ENFILE') return;
    this.upstreamFailed++;
    this.#episodeUpstream++;
    if (!this.#paused) this.#pause({ cause: code });
  }

  /**
   * The server reported an accept error (libuv's spare descriptor was gone, so it could not shed the connection):
   * EMFILE/ENFILE count as a refused connection and pause accepting like a refusal of the guard's own.
   */
  acceptError(code: string | undefined): void {
    if (code !== 'EMFILE' && code !== 'ENFILE') return;
    if (!this.#paused) this.#pause({ cause: code });
    this.#refuse();
  }

  get paused(): boolean {
    return this.#paused;
  }

  #estimate(): number {
    return this.#inUse + (this.#opened - this.#openedAtRead);
  }

  #read(): void {
    const n = this.#count();
    this.#readAt = this.#now();
    this.#openedAtRead = this.#opened;
    if (n !== undefined) this.#inUse = n;
  }

  #refuse(): void {
    this.acceptRefused++;
    this.#episodeRefused++;
  }

  #pause(detail: object): void {
    this.#paused = true;
    this.episodes++;
    this.#episodeStart = this.#now();
    this.#episodeRefused = 0;
    this.#probeMs = PROBE_FIRST_MS;
    this.#log?.warn(
      { event: 'descriptors.exhausted', code: 'E_ACCEPT_EMFILE', limit: this.limit, reserve: this.reserve, ...detail },
      'file descriptors nearly exhausted: new connections are refused until some are free (raise LimitNOFILE / ulimit -n)',
    );
    this.#setTimer(this.#probeMs, () => this.#probe());
  }

  #probe(): void {
    this.#read();
    const free = this.limit - this.#inUse;
    if (free >= 2 * this.reserve) {
      this.#paused = false;
      this.#log?.warn(
        {
          event: 'descriptors.recovered',
          code: 'E_ACCEPT_EMFILE',
          refused: this.#episodeRefused,
          upstreamFailed: this.#episodeUpstream,
          durationMs: Math.round(this.#now() - this.#episodeStart),
          open: this.#inUse,
          limit: this.limit,
        },
        `file descriptors available again: accepting (${this.#episodeRefused} connections refused during the episode)`,
      );
      this.#episodeRefused = 0;
      this.#episodeUpstream = 0;
      return;
    }
    this.#probeMs = Math.min(PROBE_MAX_MS, this.#probeMs * 2);
    this.#setTimer(this.#probeMs, () => this.#probe());
  }
}
