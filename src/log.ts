/**
 * The root logger, built in one place. Children: edge → app/component → conn (one per connection, created only
 * when that connection logs). Peer-controlled values are nested under keys we own.
 *
 * Errors (`err`) are logged with their type, code, message (with its causes') and details; the stack only when
 * the logger is at `debug` or `trace`, so an operator's warn and error lines stay one readable line.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import type { Clock } from './net/ports.ts';
import { DEFAULTS } from './model/defaults.ts';
import type { OutputStats } from './model/engine-view.ts';

/** What the default stderr destination reports: lines written and dropped since start, bytes held now. */
export type LogOutputStats = OutputStats;

const outputStats = new WeakMap<Logger, () => LogOutputStats>();

/** The stderr destination's figures of a logger built by `createLogger` without a destination of its own. */
export function logOutputStats(log: Logger): LogOutputStats | undefined {
  return outputStats.get(log)?.();
}

export interface LogOptions {
  level: string;
  /**
   * Defaults to stderr, so stdout can carry the event stream: asynchronous, holding at most `maxBufferBytes` while
   * stderr's reader is slow (more lines are dropped and counted: `logOutputStats`).
   */
  destination?: DestinationStream;
  /** Bytes the default stderr destination may hold; default DEFAULTS.logMaxBufferBytes (`log.max_buffer`). */
  maxBufferBytes?: number | undefined;
  /** In the simulator, timestamps come from the virtual clock so logs are identical per seed. */
  clock?: Clock;
  node?: string;
}

/** pino's error serializer, without stacks (also of aggregated errors) unless `withStack()` says otherwise. */
export function errSerializer(withStack: () => boolean): (e: unknown) => unknown {
  const strip = (o: unknown): unknown => {
    if (o === null || typeof o !== 'object') return o;
    const r = o as { stack?: unknown; aggregateErrors?: unknown[] };
    if ('stack' in r) r.stack = undefined;
    if (Array.isArray(r.aggregateErrors)) r.aggregateErrors = r.aggregateErrors.map(strip);
    return r;
  };
  return (e) => {
    const s: unknown = pino.stdSerializers.err(e as Error);
    return withStack() ? s : strip(s);
  };
}

/**
 * Where a secret could sit in a logged object (pino `redact`): an Authorization or API-key header, a token, a
 * private key. No code path logs these today; this is the net under it (test/unit/cli/secrets.test.ts).
 */
export const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'headers["x-auth-key"]',
  '*.authorization',
  '*.headers.authorization',
  '*.headers["x-auth-key"]',
  'token',
  '*.token',
  'key',
  '*.key',
  'privateKey',
  '*.privateKey',
];

export function createLogger(o: LogOptions): Logger {
  const clock = o.clock;
  let dest = o.destination;
  let lines = 0;
  let dropped = 0;
  let episode = 0;
  let boom: ReturnType<typeof pino.destination> | undefined;
  if (dest === undefined) {
    // Asynchronous with a bound: a stalled stderr reader costs at most maxLength bytes, never the data path.
    boom = pino.destination({ dest: 2, sync: false, maxLength: o.maxBufferBytes ?? DEFAULTS.logMaxBufferBytes });
    boom.on('drop', () => {
      dropped++;
      episode++;
    });
    dest = boom;
  }
  // The serializer runs at log time, after `logger` exists; it follows level changes made later.
  const logger: Logger = pino(
    {
      level: o.level,
      base: o.node ? { node: o.node } : null,
      ...(clock ? { timestamp: () => `,"time":${clock.epochMs()}` } : {}),
      serializers: { err: errSerializer(() => logger.isLevelEnabled('debug')) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      ...(boom ? { hooks: { streamWrite: (s: string) => (lines++, s) } } : {}),
    },
    dest,
  );
  if (boom !== undefined) {
    const b = boom;
    // One line per episode, when stderr's reader caught up (the buffer emptied).
    b.on('drain', () => {
      if (episode === 0) return;
      const n = episode;
      episode = 0;
      logger.warn({ event: 'output.dropped', output: 'stderr', dropped: n, totalDropped: dropped }, `${n} log lines dropped: stderr not reading`);
    });
    outputStats.set(logger, () => ({ written: lines - dropped, dropped, bufferedBytes: (b as unknown as { _len: number })._len }));
  }
  return logger;
}
