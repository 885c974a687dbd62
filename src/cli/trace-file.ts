/**
 * `serve --trace FILE`: the decision trace appended to a file as JSON lines (docs/replay.md). One process's
 * recording per file; with `--workers` each worker opens its own (workers.ts, `traceFileOf`).
 */
import { createWriteStream } from 'node:fs';
import type { Observable } from 'rxjs';
import type { Logger } from 'pino';
import { traceLine, type TraceRecord } from '../streams/trace.ts';

export interface TraceFile {
  /** Flushes what was written and closes the file; resolves once it is closed (or failed). */
  close(): Promise<void>;
}

/**
 * Appends every record of `records$` to `path`. A file that cannot be opened or written is logged once
 * (`trace.write_failed`) and tracing stops; the proxy goes on.
 */
export function openTraceFile(records$: Observable<TraceRecord>, path: string, log: Logger): TraceFile {
  const out = createWriteStream(path, { flags: 'a' });
  out.on('error', (err) => log.error({ event: 'trace.write_failed', file: path, err }, 'the trace file cannot be written; tracing stops'));
  const sub = records$.subscribe((r) => {
    if (!out.destroyed) out.write(traceLine(r) + '\n');
  });
  return {
    close: () => {
      sub.unsubscribe();
      // 'close' follows the flush, or an error (autoClose): nobody waits on a file for ever.
      return out.closed ? Promise.resolve() : new Promise<void>((r) => (out.once('close', () => r()), out.end()));
    },
  };
}
