/**
 * The decision trace: every decision the proxy makes about a connection, as JSON lines with one schema for
 * production (`refract serve --trace FILE`) and simulation (`refract sim --trace FILE`), so a production trace can be
 * replayed in the simulator and a simulated run compared byte for byte across seeds.
 *
 * A record is `{ t, node, app, conn, event, ...detail }`: `t` is the Clock's monotonic milliseconds (virtual in
 * the simulator, so traces are identical per seed), never wall time. Keys are written in a fixed order.
 */
import { type Observable } from 'rxjs';
import { HotStream } from './hot-stream.ts';

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
  readonly #subject = new HotStream<TraceRecord>();
  readonly records$: Observable<TraceRecord> = this.#subject;

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

/** `"key":` of each key seen, as UTF-8 bytes. */
const keyBytes = new Map<string, Uint8Array>();

function keyBytesOf(k: string): Uint8Array {
  let kb = keyBytes.get(k);
  if (kb === undefined) {
    kb = utf8.encode(`${JSON.stringify(k)}:`);
    keyBytes.set(k, kb);
  }
  return kb;
}

/**
 * True for a plain array whose elements are all strings (no holes): JSON.stringify writes it as its strings, each as
 * JSON writes a string, between brackets. Anything else (a toJSON, another prototype) goes through JSON.stringify.
 */
function plainStrings(v: unknown[]): boolean {
  if (Object.getPrototypeOf(v) !== Array.prototype || (v as { toJSON?: unknown }).toJSON !== undefined) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
}
const utf8 = new TextEncoder();
const TRUE = utf8.encode('true');
const FALSE = utf8.encode('false');
const NULL = utf8.encode('null');

/**
 * Trace lines as UTF-8 bytes, each followed by a newline: exactly the bytes of `traceLine(r) + '\n'`, written into a
 * reused buffer and handed to `sink` in chunks (at most `size` bytes, and any text longer than the buffer on its own),
 * without building each line's string: what a hash of the trace needs (the scenario runner's), at a fraction of the
 * garbage. `sink` must consume its bytes before returning (the buffer is written again afterwards). Call `flush` at
 * the end.
 */
export class TraceLineWriter {
  readonly #sink: (bytes: Uint8Array) => void;
  readonly #buf: Uint8Array;
  #pos = 0;

  constructor(sink: (bytes: Uint8Array) => void, size = 65_536) {
    if (!(size >= 64)) throw new RangeError(`TraceLineWriter: buffer of ${size} bytes is too small`);
    this.#sink = sink;
    this.#buf = new Uint8Array(size);
  }

  /**
   * The keys of the last record of each event name, with their `"key":` bytes: a record's keys are looked up by
   * position (a pointer comparison when they are the same as last time, as they are for records built by the same
   * object literal) instead of in a map by content. Any key that differs is looked up and its slot replaced.
   */
  readonly #shapes = new Map<unknown, { keys: string[]; bytes: Uint8Array[] }>();

  /**
   * Writes `traceLine(r)` and a newline. Most records (strings of plain ASCII, integers, times, booleans, arrays of
   * such strings) are written in one pass with the buffer position in a local (`#fast`); a record with anything else,
   * or one that might not fit in what is left of the buffer, is written again from its start by `#write`, which
   * handles every value and hands full buffers to the sink.
   */
  write(r: TraceRecord): void {
    if (this.#buf.length - this.#pos < FAST_ROOM && this.#pos > 0) this.flush();
    if (!this.#fast(r)) this.#write(r); // #fast moved nothing: #write starts where it started
  }

  /** `write` in one pass, or false (having written nothing that counts) when a value needs `#write`. */
  #fast(r: TraceRecord): boolean {
    const buf = this.#buf;
    const end = buf.length - 2; // room kept for `}` and the newline
    let p = this.#pos;
    if (p >= end) return false;
    buf[p++] = 0x7b; // {
    let first = true;
    const event = r.event;
    const shape = this.#shapes.get(event);
    if (shape === undefined) return false; // a new event name: #write learns its keys
    const keys = shape.keys;
    let slot = 0;
    for (const k in r) {
      if (!hasOwnProperty.call(r, k)) continue;
      if (slot >= keys.length || keys[slot] !== k) return false;
      const kb = shape.bytes[slot++]!;
      const v = r[k];
      if (k === 't' && typeof v !== 'number') return false;
      let n: number;
      switch (typeof v) {
        case 'undefined':
        case 'function':
        case 'symbol':
          continue;
        case 'string':
          n = v.length;
          break;
        case 'number':
          n = 20;
          break;
        case 'boolean':
          n = 5;
          break;
        case 'bigint':
        case 'object':
          if (!Array.isArray(v)) return false;
          n = 0;
          for (let i = 0; i < v.length; i++) {
            const e: unknown = v[i];
            if (typeof e !== 'string') return false;
            n += e.length + 3;
          }
          n += 2;
          break;
      }
      if (p + 1 + kb.length + n + 2 > end) return false;
      if (!first) buf[p++] = 0x2c; // ,
      first = false;
      for (let i = 0; i < kb.length; i++) buf[p++] = kb[i]!;
      if (typeof v === 'string') {
        p = plainAscii(buf, p, v);
        if (p < 0) return false;
      } else if (typeof v === 'number') {
        if (k === 't') {
          const ms = Math.round(v * 1000); // traceLine writes ms / 1000
          if (!(ms >= 0 && ms < 2 ** 42)) return false;
          const whole = Math.floor(ms / 1000);
          let frac = ms - whole * 1000;
          p = digitsAt(buf, p, whole, 0);
          if (frac !== 0) {
            let w = 3;
            while (frac % 10 === 0) {
              frac /= 10;
              w--;
            }
            buf[p++] = 0x2e; // .
            p = digitsAt(buf, p, frac, w);
          }
        } else if (v >= 0 && v <= 0xffff_ffff && v === Math.floor(v)) p = digitsAt(buf, p, v, 0);
        else return false;
      } else if (typeof v === 'boolean') {
        const b = v ? TRUE : FALSE;
        for (let i = 0; i < b.length; i++) buf[p++] = b[i]!;
      } else {
        // An array of strings (checked above): a plain one, as JSON.stringify writes it.
        const a = v as readonly string[];
        if (Object.getPrototypeOf(a) !== Array.prototype || (a as { toJSON?: unknown }).toJSON !== undefined) return false;
        buf[p++] = 0x5b; // [
        for (let i = 0; i < a.length; i++) {
          if (i > 0) buf[p++] = 0x2c;
          p = plainAscii(buf, p, a[i]!);
          if (p < 0) return false;
        }
        buf[p++] = 0x5d; // ]
      }
    }
    buf[p++] = 0x7d; // }
    buf[p++] = 0x0a; // newline
    this.#pos = p;
    return true;
  }

  #write(r: TraceRecord): void {
    this.#room(1);
    this.#buf[this.#pos++] = 0x7b; // {
    let first = true;
    const event = r.event;
    let shape = this.#shapes.get(event);
    if (shape === undefined) {
      shape = { keys: [], bytes: [] };
      if (typeof event === 'string') this.#shapes.set(event, shape); // a record without a string event is looked up anew
    }
    const keys = shape.keys;
    let slot = 0;
    // for…in (own keys only) visits keys in Object.keys' order (integer-like keys ascending, then insertion
    // order) without allocating the keys' array.
    for (const k in r) {
      if (!Object.hasOwn(r, k)) continue;
      let kb: Uint8Array;
      if (slot < keys.length && keys[slot] === k) kb = shape.bytes[slot]!;
      else {
        kb = keyBytesOf(k);
        keys[slot] = k;
        shape.bytes[slot] = kb;
      }
      slot++;
      if (k === 't') {
        const ms = Math.round(r.t * 1000); // traceLine writes ms / 1000
        if (ms >= 0 && ms < 2 ** 42) {
          // Up to ~51 days: the shortest decimal of ms / 1000 (what String writes) is its integer part and up to three
          // decimals (a double there is precise to 1e-6), written without a string.
          if (!first) {
            this.#room(1);
            this.#buf[this.#pos++] = 0x2c;
          }
          first = false;
          this.#bytes(kb);
          this.#millis(ms);
          continue;
        }
      }
      const v = k === 't' ? Math.round(r.t * 1000) / 1000 : r[k];
      let json: string | undefined;
      switch (typeof v) {
        case 'undefined':
        case 'function':
        case 'symbol':
          continue; // JSON.stringify leaves the key out
        case 'bigint':
        case 'object':
          if (Array.isArray(v) && plainStrings(v)) break; // written below, as JSON.stringify writes it
          json = JSON.stringify(v) as string | undefined; // objects, arrays, null (a toJSON may return undefined); a bigint throws
          if (json === undefined) continue;
          break;
        case 'string':
        case 'number':
        case 'boolean':
          break;
      }
      if (!first) {
        this.#room(1);
        this.#buf[this.#pos++] = 0x2c; // ,
      }
      first = false;
      this.#bytes(kb);
      if (json !== undefined) this.#text(json);
      else if (typeof v === 'string') this.#string(v);
      else if (typeof v === 'number') this.#number(v);
      else if (typeof v === 'boolean') this.#bytes(v ? TRUE : FALSE);
      else this.#strings(v as readonly string[]);
    }
    keys.length = slot; // a record with fewer keys than the last of its event: its shape is this one's
    shape.bytes.length = slot;
    this.#room(2);
    this.#buf[this.#pos++] = 0x7d; // }
    this.#buf[this.#pos++] = 0x0a; // newline
  }

  /** An array of strings (`plainStrings`), as JSON.stringify writes it: `["a","b"]`. */
  #strings(a: readonly string[]): void {
    this.#room(1);
    this.#buf[this.#pos++] = 0x5b; // [
    for (let i = 0; i < a.length; i++) {
      if (i > 0) {
        this.#room(1);
        this.#buf[this.#pos++] = 0x2c;
      }
      this.#string(a[i]!);
    }
    this.#room(1);
    this.#buf[this.#pos++] = 0x5d; // ]
  }

  /** Writes an already formatted line (`traceLine`'s) and a newline. */
  writeLine(line: string): void {
    this.#text(line);
    this.#room(1);
    this.#buf[this.#pos++] = 0x0a;
  }

  /** Hands what is buffered to the sink. */
  flush(): void {
    if (this.#pos === 0) return;
    const n = this.#pos;
    this.#pos = 0;
    this.#sink(this.#buf.subarray(0, n));
  }

  /** Makes room for `n` bytes (n ≤ the buffer's size). */
  #room(n: number): void {
    if (this.#pos + n > this.#buf.length) this.flush();
  }

  #bytes(b: Uint8Array): void {
    if (b.length > this.#buf.length) {
      this.flush();
      this.#sink(b);
      return;
    }
    this.#room(b.length);
    const buf = this.#buf;
    let p = this.#pos;
    if (b.length > 32) {
      buf.set(b, p);
      p += b.length;
    } else for (let i = 0; i < b.length; i++) buf[p++] = b[i]!; // keys: a loop beats a `set` call at this size
    this.#pos = p;
  }

  /** A string value: ASCII that JSON writes as is goes straight in; anything else as `traceLine` writes it. */
  #string(s: string): void {
    const n = s.length;
    if (n + 2 <= this.#buf.length) {
      this.#room(n + 2);
      const b = this.#buf;
      let p = this.#pos;
      b[p++] = 0x22;
      let plain = true;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x80) {
          plain = false;
          break;
        }
        b[p++] = c;
      }
      if (plain) {
        b[p++] = 0x22;
        this.#pos = p;
        return;
      }
    }
    this.#text(plainString(s) ? `"${s}"` : JSON.stringify(s));
  }

  #number(v: number): void {
    if (!Number.isFinite(v)) {
      this.#bytes(NULL);
      return;
    }
    // A non-negative integer (-0 included, written 0, as String does): its digits, without a string.
    if (v >= 0 && v <= 0xffff_ffff && v === Math.floor(v)) this.#digits(v, 0);
    else this.#ascii(String(v));
  }

  /** `ms / 1000` as String writes it, for an integer 0 ≤ ms < 2^42: the integer part, then `.` and up to 3 decimals. */
  #millis(ms: number): void {
    const whole = Math.floor(ms / 1000);
    let frac = ms - whole * 1000;
    this.#digits(whole, 0);
    if (frac === 0) return;
    let n = 3;
    while (frac % 10 === 0) {
      frac /= 10;
      n--;
    }
    this.#room(1);
    this.#buf[this.#pos++] = 0x2e; // .
    this.#digits(frac, n);
  }

  /** The decimal digits of the integer `v` ≥ 0, left-padded with zeros to `width`. */
  #digits(v: number, width: number): void {
    let digits = 1;
    for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
    if (digits < width) digits = width;
    this.#room(digits);
    const b = this.#buf;
    let x = v;
    for (let i = this.#pos + digits - 1; i >= this.#pos; i--) {
      const q = Math.floor(x / 10);
      b[i] = 48 + (x - q * 10);
      x = q;
    }
    this.#pos += digits;
  }

  /** Text of ASCII characters only (a number's). */
  #ascii(t: string): void {
    this.#room(t.length);
    const b = this.#buf;
    let p = this.#pos;
    for (let i = 0; i < t.length; i++) b[p++] = t.charCodeAt(i);
    this.#pos = p;
  }

  /** Any text, as UTF-8. */
  #text(t: string): void {
    const max = t.length * 3; // UTF-8 bytes per UTF-16 unit, at most
    if (max > this.#buf.length) {
      this.flush();
      this.#sink(utf8.encode(t));
      return;
    }
    this.#room(max);
    this.#pos += utf8.encodeInto(t, this.#buf.subarray(this.#pos)).written;
  }
}

/** Room a record may take before `write` tries its one-pass path (smaller buffers always take the other). */
const FAST_ROOM = 1_024;

/**
 * Writes `"s"` at `p` when `s` is ASCII that JSON writes as is (the caller made room for it); returns the position
 * after it, or -1 (a character needing more, written in part: the caller starts over).
 */
function plainAscii(buf: Uint8Array, p: number, s: string): number {
  buf[p++] = 0x22;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x80) return -1;
    buf[p++] = c;
  }
  buf[p++] = 0x22;
  return p;
}

/** The decimal digits of the integer `v` ≥ 0 at `p`, left-padded with zeros to `width`; returns the position after. */
function digitsAt(buf: Uint8Array, p: number, v: number, width: number): number {
  let digits = 1;
  for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
  if (digits < width) digits = width;
  let x = v;
  for (let i = p + digits - 1; i >= p; i--) {
    const q = Math.floor(x / 10);
    buf[i] = 48 + (x - q * 10);
    x = q;
  }
  return p + digits;
}

const hasOwnProperty = Object.prototype.hasOwnProperty;

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
