/**
 * Line outputs that cannot grow memory without bound when their reader stalls (docs/hardening.md, "Logs and
 * events"): stdout (the access log and `--events stdout`), the events file. A Node stream buffers every write it
 * cannot pass on yet; a pipe nobody reads would hold every line ever written.
 *
 * Contract:
 * - a line is written whole or dropped whole: it is dropped when the stream already holds `maxBufferBytes` or more
 *   (`writableLength`, what the kernel has not taken yet), so the stream holds at most `maxBufferBytes` plus one
 *   line;
 * - drops are counted (`dropped`, since start) and make an episode; when the stream drains (its reader caught up:
 *   Node's 'drain'), `onRecovered(name, n)` is called once with the episode's count, and the count starts again;
 * - nothing here throws on a write; stream errors are the owner's to handle.
 */
import type { Writable } from 'node:stream';
import type { OutputStats } from '../model/engine-view.ts';

export interface LineWriterOptions {
  /**
   * Lines written during one turn of the event loop go out in one write at its end (`setImmediate`; with
   * `holdMs`, after that many milliseconds), not one
   * system call each (the access log at thousands of connections per second); on process exit what is held is
   * written at once. Held bytes count toward `maxBufferBytes`.
   */
  readonly coalesce?: boolean;
  /**
   * With `coalesce`: no write is larger than this many bytes (a line longer than it alone excepted). PIPE_BUF
   * (4,096 on Linux) makes each write to a pipe shared by several processes land whole.
   */
  readonly maxWriteBytes?: number;
  /**
   * With `coalesce`: hold lines up to this many milliseconds after the first held one (one timer per batch, not
   * per line) instead of until the end of the turn, so a busy proxy writes once per batch rather than once per turn
   * of its event loop; a batch also goes out before it would pass `maxWriteBytes` (or else `HOLD_BYTES`), and on exit.
   */
  readonly holdMs?: number;
}

/**
 * How long `refract serve` holds access-log lines (and `--events stdout` lines) on stdout before writing them:
 * long enough that a proxy at thousands of connections per second writes tens of lines per system call, short
 * enough that a line is never noticeably late (docs/cli.md, "Access log").
 */
export const STDOUT_HOLD_MS = 10;

/**
 * With `holdMs`: a batch is written before it would exceed this many characters (UTF-16 units, the bytes of ASCII
 * lines; counted without encoding, unlike `maxWriteBytes`, because it only bounds how much waits).
 */
export const HOLD_BYTES = 64 * 1024;

/** Writers holding lines (`coalesce`): written out by one 'exit' listener, whatever the number of writers. */
const holding = new Set<BoundedLineWriter>();
let exitHooked = false;
function flushAllOnExit(): void {
  for (const w of holding) w.flush();
}

export class BoundedLineWriter implements OutputStats {
  readonly name: string;
  readonly #stream: Writable;
  readonly #max: number;
  readonly #onRecovered: (name: string, dropped: number) => void;
  readonly #coalesce: boolean;
  readonly #maxWrite: number;
  readonly #holdMs: number | undefined;
  /** The batch's timer (`holdMs`), while lines are held. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #heldBytes = 0;
  #episode = 0;
  #waiting = false;
  /** Lines held for the end of this turn of the event loop or the batch's timer (`coalesce`); a flush is due while in `holding`. */
  #held = '';
  written = 0;
  dropped = 0;

  constructor(name: string, stream: Writable, maxBufferBytes: number, onRecovered: (name: string, dropped: number) => void, opts: LineWriterOptions = {}) {
    this.name = name;
    this.#stream = stream;
    this.#max = maxBufferBytes;
    this.#onRecovered = onRecovered;
    this.#coalesce = opts.coalesce === true;
    this.#holdMs = opts.holdMs;
    this.#maxWrite = opts.maxWriteBytes ?? Infinity;
    if (this.#coalesce && !exitHooked) {
      exitHooked = true;
      process.on('exit', flushAllOnExit);
    }
  }

  get bufferedBytes(): number {
    return this.#stream.writableLength + this.#held.length;
  }

  /** Writes what `coalesce` holds now (also at the end of each turn of the event loop or when `holdMs` passed, and on exit). */
  readonly flush = (): void => {
    holding.delete(this);
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const held = this.#held;
    if (held === '') return;
    this.#held = '';
    this.#heldBytes = 0;
    const s = this.#stream;
    if (!s.destroyed && !s.writableEnded) s.write(held);
  };

  /** Writes `line` (with its newline) unless the stream holds `maxBufferBytes` already; false when dropped. */
  write(line: string): boolean {
    const s = this.#stream;
    if (s.destroyed || s.writableEnded) {
      this.dropped++;
      return false;
    }
    // Held lines go to the stream first when they would reach the bound, so the check below sees them.
    if (this.#held !== '' && s.writableLength + this.#held.length >= this.#max) this.flush();
    if (s.writableLength >= this.#max) {
      this.dropped++;
      this.#episode++;
      if (!this.#waiting) {
        this.#waiting = true;
        // The stream is past its high-water mark (a write returned false), so 'drain' comes when it empties.
        s.once('drain', () => {
          this.#waiting = false;
          const n = this.#episode;
          this.#episode = 0;
          if (n > 0) this.#onRecovered(this.name, n);
        });
      }
      return false;
    }
    if (this.#coalesce) {
      if (this.#maxWrite !== Infinity) {
        const bytes = Buffer.byteLength(line);
        if (this.#held !== '' && this.#heldBytes + bytes > this.#maxWrite) this.flush();
        this.#heldBytes += bytes;
      } else if (this.#holdMs !== undefined && this.#held !== '' && this.#held.length + line.length > HOLD_BYTES) this.flush();
      this.#held += line;
      if (!holding.has(this)) {
        holding.add(this);
        // Unref'd: a held batch does not keep the process alive (the 'exit' listener writes it).
        if (this.#holdMs !== undefined) this.#timer = setTimeout(this.flush, this.#holdMs).unref();
        else setImmediate(this.flush);
      }
    } else s.write(line);
    this.written++;
    return true;
  }
}
