/**
 * The access log of `refract serve`: one line per finished connection or UDP flow, built from the closing
 * Spectrum event (`disconnect`, `originError`, `resolveOrigin`, `clientFiltered`; never `connect`). Format in
 * docs/cli.md ("Access log").
 */
import type { SpectrumEvent } from '../streams/events.ts';

export type AccessLogFormat = 'text' | 'json' | 'off';

export const ACCESS_LOG_FORMATS: readonly AccessLogFormat[] = ['text', 'json', 'off'];

/** `--access-log` unset: text on a terminal, JSON lines on a pipe or file; off when the events already go to stdout. */
export function defaultAccessLog(stdoutIsTty: boolean, eventsTarget: string | undefined): AccessLogFormat {
  if (eventsTarget === 'stdout') return 'off';
  return stdoutIsTty ? 'text' : 'json';
}

/** Whether `e` ends a connection (the access log writes one line per connection, at its end). */
export function isClosing(e: SpectrumEvent): boolean {
  return e.Event !== 'connect';
}

function hostPort(ip: string, port: number): string {
  if (ip === '') return '-';
  return `${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

function bytes(n: number): string {
  if (n < 10_000) return `${n} B`;
  if (n < 10_000_000) return `${(n / 1_000).toFixed(1)} kB`;
  return `${(n / 1_000_000).toFixed(1)} MB`;
}

function duration(ms: number): string {
  return ms < 10_000 ? `${Math.round(ms)} ms` : `${(ms / 1_000).toFixed(1)} s`;
}

/**
 * One readable line, e.g.
 * `2025-01-02T10:00:00.123Z echo.example.test [echo] tcp 127.0.0.1:50312 → :7700 → 127.0.0.1:7740 200 normal, 34 B in, 34 B out, 12 ms`
 * ("in": bytes from the client, "out": bytes from the origin back to the client).
 */
export function accessLogText(e: SpectrumEvent, appName: string | undefined): string {
  const time = e.DisconnectTimestamp || e.Timestamp;
  const app = appName ? `${appName} [${e.Application}]` : e.Application;
  const status = `${e.Status} ${e.CloseReason || e.Event}${e.ErrorCode ? ` ${e.ErrorCode}` : ''}`;
  const packets = e.ClientPackets !== undefined ? `, ${e.ClientPackets ?? 0}/${e.OriginPackets ?? 0} datagrams` : '';
  return `${time} ${app} ${e.ClientProto} ${hostPort(e.ClientIP, e.ClientPort)} → ${hostPort(e.EdgeIP, e.EdgePort)} → ${hostPort(e.OriginIP, e.OriginPort)} ${status}, ${bytes(e.ClientBytes)} in, ${bytes(e.OriginBytes)} out${packets}, ${duration(e.DurationMs)}`;
}

/**
 * The same facts as one JSON object (keys documented in docs/cli.md). `idPrefix` goes before the connection id
 * (a `serve --workers` worker's `N.`, as the supervisor writes it in the events).
 *
 * Through an object and `JSON.stringify`, on purpose: the same line written field by field into one template string
 * was 20 % faster alone but 15–50 % slower once the held lines were joined and encoded for the write (the many-piece
 * string costs more to flatten), measured in sessions 11 and 14.
 */
export function accessLogJson(e: SpectrumEvent, appName: string | undefined, idPrefix = ''): string {
  return JSON.stringify({
    time: e.DisconnectTimestamp || e.Timestamp,
    app: e.Application,
    app_name: appName ?? '',
    protocol: e.ClientProto,
    client_ip: e.ClientIP,
    client_port: e.ClientPort,
    edge_ip: e.EdgeIP,
    edge_port: e.EdgePort,
    origin_ip: e.OriginIP,
    origin_port: e.OriginPort,
    event: e.Event,
    status: e.Status,
    close_reason: e.CloseReason,
    error_code: e.ErrorCode,
    bytes_in: e.ClientBytes,
    bytes_out: e.OriginBytes,
    // UDP only: JSON.stringify leaves out a key whose value is undefined (one object shape, no spread per line).
    packets_in: e.ClientPackets,
    packets_out: e.ClientPackets !== undefined ? (e.OriginPackets ?? 0) : undefined,
    duration_ms: e.DurationMs,
    connection_id: idPrefix + e.ConnectionID,
  });
}

/** What AppNames reads of an app (an `AppSpec` has it). */
type NamedApp = { readonly id: string; readonly dns: { readonly name: string } };

/**
 * App id → DNS name (`app_name` of the access log) of the running config's apps: one map lookup per line, the map
 * rebuilt when the app list is replaced (a reload or an API write gives the running config a new array).
 */
export class AppNames {
  #of: readonly NamedApp[] | undefined;
  readonly #names = new Map<string, string>();

  get(apps: readonly NamedApp[] | undefined, id: string): string | undefined {
    if (apps !== this.#of) {
      this.#of = apps;
      this.#names.clear();
      for (const a of apps ?? []) this.#names.set(a.id, a.dns.name);
    }
    return this.#names.get(id);
  }
}

/** The line for `e` in `format`, or undefined when `e` gets no line (a `connect`, or the log is off). */
export function accessLogLine(e: SpectrumEvent, appName: string | undefined, format: AccessLogFormat, idPrefix = ''): string | undefined {
  if (format === 'off' || !isClosing(e)) return undefined;
  return format === 'text' ? accessLogText(e, appName) : accessLogJson(e, appName, idPrefix);
}
