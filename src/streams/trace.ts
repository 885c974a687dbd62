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

/** `"key":` of each key seen, as JSON.stringify writes it. */
const keyText = new Map<string, string>();

/**
 * One JSON line; `t` rounded to microseconds so real-mode floats stay readable. The same bytes as
 * `JSON.stringify({ ...r, t: rounded })` (the traces' hashes depend on it), written field by field: no copy of the
 * record, and the common values (strings, numbers, booleans) without a JSON.stringify call each.
 */
export function traceLine(r: TraceRecord): string {
  let out = '{';
  // Object.keys gives the order JSON.stringify (and the spread) uses: integer-like keys ascending, then insertion order.
  const keys = Object.keys(r);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = k === 't' ? Math.round(r.t * 1000) / 1000 : r[k];
    let text: string;
    switch (typeof v) {
      case 'string':
        text = plainString(v) ? `"${v}"` : JSON.stringify(v);
        break;
      case 'number':
        text = Number.isFinite(v) ? String(v) : 'null';
        break;
      case 'boolean':
        text = v ? 'true' : 'false';
        break;
      case 'undefined':
      case 'function':
      case 'symbol':
        continue; // JSON.stringify leaves the key out
      case 'bigint':
      case 'object': {
        const json = JSON.stringify(v) as string | undefined; // objects, arrays, null (a toJSON may return undefined); a bigint throws
        if (json === undefined) continue;
        text = json;
      }
    }
    let kt = keyText.get(k);
    if (kt === undefined) {
      kt = `${JSON.stringify(k)}:`;
      keyText.set(k, kt);
    }
    out += out.length === 1 ? kt + text : `,${kt}${text}`;
  }
  return `${out}}`;
}

/** True when JSON writes `s` as is between quotes: no `"`, `\`, control character or surrogate. */
function plainString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
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
