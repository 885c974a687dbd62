/**
 * The root logger, built in one place. Children: edge → app/component → conn (one per connection, created only
 * when that connection logs). Peer-controlled values are nested under keys we own.
 *
 * Errors (`err`) are logged with their type, code, message (with its causes') and details; the stack only when
 * the logger is at `debug` or `trace`, so an operator's warn and error lines stay one readable line.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import type { Clock } from './net/ports.ts';

export interface LogOptions {
  level: string;
  /** Defaults to stderr, so stdout can carry the event stream. */
  destination?: DestinationStream;
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

export function createLogger(o: LogOptions): Logger {
  const clock = o.clock;
  // The serializer runs at log time, after `logger` exists; it follows level changes made later.
  const logger: Logger = pino(
    {
      level: o.level,
      base: o.node ? { node: o.node } : null,
      ...(clock ? { timestamp: () => `,"time":${clock.epochMs()}` } : {}),
      serializers: { err: errSerializer(() => logger.isLevelEnabled('debug')) },
    },
    o.destination ?? pino.destination(2),
  );
  return logger;
}
