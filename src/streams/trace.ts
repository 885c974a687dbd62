/**
 * The decision trace: every decision the proxy makes about a connection, as JSON lines with one schema for
 * production (`refract serve --trace FILE`) and simulation (`refract sim --trace FILE`), so a production trace can be
 * replayed in the simulator and a simulated run compared byte for byte across seeds.
 *
 * A record is `{ t, node, app, conn, event, ...detail }`: `t` is the Clock's monotonic milliseconds (virtual in
 * the simulator, so traces are identical per seed), never wall time. Keys are written in a fixed order.
 */
import { Subject, type Observable } from 'rxjs';

export type TraceEventName =
  | 'accept' // downstream accepted: client, edge
  | 'proxy_in' // inbound PROXY header decoded: client as the header says
  | 'filtered' // blocked by an IP Access rule: matched, rule
  | 'resolved' // origin targets known: targets
  | 'dial' // one upstream connect attempt: upstream, attempt
  | 'dial_failed' // that attempt failed: upstream, code
  | 'tls_client' // edge TLS handshake done: version, cipher, sni
  | 'tls_client_failed' // edge TLS handshake failed: reason
  | 'tls_origin' // origin TLS handshake done (full, strict): version, cipher
  | 'tls_origin_failed' // origin TLS handshake failed: reason
  | 'established' // upstream connected, splice started: upstream, proxy_protocol
  | 'c2s_end' // client FIN forwarded upstream
  | 's2c_end' // origin FIN forwarded downstream
  | 'close'; // final: status, reason, code, bytes_in (from client), bytes_out (from origin)

export interface TraceRecord {
  readonly t: number;
  readonly node: string;
  readonly app: string;
  readonly conn: number;
  readonly event: TraceEventName;
  readonly [detail: string]: unknown;
}

export class Trace {
  readonly #subject = new Subject<TraceRecord>();
  readonly records$: Observable<TraceRecord> = this.#subject.asObservable();

  /** False when nobody listens: the engine then builds no records. */
  get enabled(): boolean {
    return this.#subject.observed;
  }

  record(r: TraceRecord): void {
    this.#subject.next(r);
  }

  complete(): void {
    this.#subject.complete();
  }
}

/** One JSON line; `t` rounded to microseconds so real-mode floats stay readable. */
export function traceLine(r: TraceRecord): string {
  return JSON.stringify({ ...r, t: Math.round(r.t * 1000) / 1000 });
}

/** Parses a trace file's text; malformed lines are reported with their line number, never skipped silently. */
export function parseTrace(text: string): { records: TraceRecord[]; errors: Array<{ line: number; message: string }> } {
  const records: TraceRecord[] = [];
  const errors: Array<{ line: number; message: string }> = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      const r = JSON.parse(line) as TraceRecord;
      if (typeof r.t !== 'number' || typeof r.event !== 'string' || typeof r.conn !== 'number') {
        errors.push({ line: i + 1, message: 'not a trace record (needs numeric t and conn, string event)' });
      } else records.push(r);
    } catch (e) {
      errors.push({ line: i + 1, message: (e as Error).message });
    }
  });
  return { records, errors };
}
