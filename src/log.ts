/**
 * The root logger, built in one place. Children: edge → app/component → conn (one per connection, created only
 * when that connection logs). Peer-controlled values are nested under keys we own.
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

export function createLogger(o: LogOptions): Logger {
  const clock = o.clock;
  return pino(
    {
      level: o.level,
      base: o.node ? { node: o.node } : null,
      ...(clock ? { timestamp: () => `,"time":${clock.epochMs()}` } : {}),
      serializers: { err: pino.stdSerializers.err },
    },
    o.destination ?? pino.destination(2),
  );
}
