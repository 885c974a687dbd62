/**
 * Where `refract serve` writes the Spectrum events (docs/events.md, "Sinks"): stdout or a file (JSON lines; the
 * file rotated by size with rotating-file-stream when `log.events.rotate` says so), and an HTTP NDJSON push
 * (batched, retried, bounded: src/streams/event-push.ts, over fetch here).
 */
import { createWriteStream } from 'node:fs';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createStream } from 'rotating-file-stream';
import type { Subscription } from 'rxjs';
import type { EventLog } from '../streams/events.ts';
import { NdjsonPush, type PushTransport } from '../streams/event-push.ts';
import type { EventsHttpSink, EventsRotate } from '../model/types.ts';
import type { Clock } from '../net/ports.ts';
import type { EdgeMetrics } from '../api/metrics.ts';
import { DEFAULTS } from '../model/defaults.ts';
import { BoundedLineWriter } from './bounded-output.ts';
import { logOutputStats } from '../log.ts';
import type { OutputStats } from '../model/engine-view.ts';

const gzip = promisify(gzipCb);

export interface EventSinkOptions {
  /** `stdout`, a file path, or undefined (no stream sink). */
  readonly target: string | undefined;
  /** Bytes the file (or stdout, when no `stdout` writer is given) may hold while its reader is slow (`log.max_buffer`). */
  readonly maxBufferBytes?: number | undefined;
  readonly rotate?: EventsRotate | undefined;
  readonly http?: EventsHttpSink | undefined;
}

export interface EventSinks {
  readonly http: NdjsonPush | undefined;
  /** The stdout or file output, bounded (undefined: no stream sink). */
  readonly lines: BoundedLineWriter | undefined;
  /** Stops following the events, delivers what the HTTP sink holds (to its shutdown deadline), closes the file. */
  close(): Promise<void>;
}

/**
 * The node's outputs by name for `/refract/health` (`stdout` as given: under `--workers` the supervisor's own
 * writer plus the workers' access-log writers), stderr (the log) when it is bounded, and the events file.
 */
export function outputsOf(stdout: OutputStats, log: Logger, sinks: Pick<EventSinks, 'lines'>, ownStdout?: BoundedLineWriter): Record<string, OutputStats> {
  const o: Record<string, OutputStats> = { stdout };
  const err = logOutputStats(log);
  if (err !== undefined) o['stderr'] = err;
  if (sinks.lines !== undefined && sinks.lines !== ownStdout) o[sinks.lines.name] = sinks.lines;
  return o;
}

/** The file stream: appended to; with `rotate`, renamed to FILE.1 … FILE.keep as it reaches the size. */
export function openEventFile(file: string, rotate: EventsRotate | undefined): Writable {
  const abs = resolvePath(file);
  if (rotate === undefined) return createWriteStream(abs, { flags: 'a' });
  const name = basename(abs);
  return createStream((index: number | Date | null) => (typeof index === 'number' && index > 0 ? `${name}.${index}` : name), {
    path: dirname(abs),
    size: rotate.size,
    rotate: rotate.keep,
  });
}

/** The real transport: one POST of NDJSON (gzip-compressed when asked), bounded by `timeoutMs`. */
export function fetchTransport(s: EventsHttpSink): PushTransport {
  return async (body) => {
    const headers: Record<string, string> = { ...s.headers, 'content-type': 'application/x-ndjson' };
    let payload: string | Uint8Array<ArrayBuffer> = body;
    if (s.gzip) {
      payload = new Uint8Array(await gzip(body));
      headers['content-encoding'] = 'gzip';
    }
    const res = await fetch(s.url, { method: 'POST', headers, body: payload, signal: AbortSignal.timeout(s.timeoutMs) });
    await res.arrayBuffer().catch(() => undefined);
    return res.status;
  };
}

/** The one log line of a drop episode, when the output's reader caught up. */
export function logDropEpisode(log: Logger): (output: string, dropped: number) => void {
  return (output, dropped) => log.warn({ event: 'output.dropped', output, dropped }, `${dropped} lines dropped: ${output} not reading`);
}

/**
 * `stdout`: the process's bounded stdout writer, shared with the access log (one is made when not given); the
 * file gets a bounded writer of its own. A line that does not fit is dropped whole and counted.
 */
export function openEventSinks(
  events: EventLog,
  o: EventSinkOptions,
  d: { clock: Clock; log: Logger; metrics?: EdgeMetrics | undefined; stdout?: BoundedLineWriter | undefined },
): EventSinks {
  const subs: Subscription[] = [];
  const max = o.maxBufferBytes ?? DEFAULTS.logMaxBufferBytes;
  const stream: Writable | undefined = o.target === undefined || o.target === 'stdout' ? undefined : openEventFile(o.target, o.rotate);
  if (stream !== undefined) {
    stream.on('error', (err) => d.log.error({ event: 'events.file_error', code: 'E_EVENTS_FILE', err }, 'the events file could not be written'));
  }
  const lines =
    o.target === 'stdout'
      ? (d.stdout ?? new BoundedLineWriter('stdout', process.stdout, max, logDropEpisode(d.log)))
      : stream !== undefined
        ? new BoundedLineWriter('events_file', stream, max, logDropEpisode(d.log))
        : undefined;
  if (lines !== undefined) {
    subs.push(events.events$.subscribe((e) => lines.write(JSON.stringify(e) + '\n')));
    if (lines !== d.stdout) d.metrics?.registerOutput(lines.name, () => lines);
  }
  let http: NdjsonPush | undefined;
  const h = o.http;
  if (h !== undefined) {
    const log = d.log.child({ component: 'events-http', url: h.url.replace(/\/\/[^@/]*@/, '//') });
    http = new NdjsonPush(h, d.clock, fetchTransport(h), (n) => {
      if (n.kind === 'retry') log.warn({ event: 'events.push_retry', code: 'E_EVENTS_PUSH_FAILED', ...n }, 'event batch not delivered; retrying');
      else log.error({ event: 'events.dropped', code: n.reason === 'refused' ? 'E_EVENTS_PUSH_REFUSED' : 'E_EVENTS_DROPPED', ...n }, 'events dropped');
    });
    const push = http;
    subs.push(events.events$.subscribe((e) => push.push(JSON.stringify(e))));
    d.metrics?.registerSink('http', () => ({ delivered: push.delivered, dropped: push.dropped, retries: push.retries, buffered: push.buffered }));
  }
  return {
    http,
    lines,
    async close() {
      for (const s of subs) s.unsubscribe();
      if (http !== undefined && h !== undefined) await http.flush(h.shutdownDeadlineMs);
      if (stream !== undefined) await new Promise<void>((r) => stream.end(() => r()));
    },
  };
}
