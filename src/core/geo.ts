/**
 * Geolocation for IP Access rules: which country and which AS a client address belongs to. Pure: text in, tables
 * out. `src/net/node/geo-loader.ts` reads the files (CSV here, MMDB through the `maxmind` package) and reloads them.
 *
 * The CSV forms are those the ip-location-db packages ship (docs/access-rules.md, "Data sources"):
 *   country: `start,end,country`            e.g. `1.0.0.0,1.0.0.255,AU`
 *   ASN:     `start,end,asn,org`            e.g. `1.0.0.0,1.0.0.255,13335,CLOUDFLARENET`
 * `start` and `end` are an inclusive range, as addresses (IPv4 or IPv6) or as integers (the `-num` files). Fields
 * past those are ignored (so city files give their country), fields may be quoted (RFC 4180), a first line that
 * is not data is a header, `#` lines are comments. Rows may come in any order.
 *
 * Ranges may overlap (the shipped files nest single addresses and small blocks inside larger ones, and a few
 * ranges overlap partly): every address gets the value of the **narrowest** range that holds it, as an MMDB lookup
 * gets its most specific network; of two equally wide ranges the later line wins. At `finish()` the ranges are
 * flattened into disjoint segments (a sweep over the sorted starts with a heap of open ranges keyed by width:
 * O(n log n), at most 2n − 1 segments, adjacent segments of one value merged), so a lookup is one binary search,
 * no allocation.
 */
import { isV4MappedWords, parseIpWords, parseIpWordsAt } from '../model/ip.ts';

export interface AsnInfo {
  readonly asn: number;
  readonly org?: string;
}

/** What the access-rule check asks about a client. */
export interface GeoLookup {
  /**
   * ISO 3166-1 alpha-2 (upper case), or a data source's own two-character code (T1 for Tor, if it lists one). `XX`
   * when country data is loaded but no source knows the address (Cloudflare's "unknown/reserved"); undefined when no
   * country data is loaded or `ip` is not an address.
   */
  country(ip: string): string | undefined;
  /** The AS announcing the address; undefined when unknown. */
  asn(ip: string): AsnInfo | undefined;
}

/** Counts of one loaded CSV table (both families), reported in `geo.loaded`. */
export interface GeoTableStats {
  /** Ranges read (rows with data). */
  readonly ranges: number;
  /** Ranges that lie inside another range (an equal range included): they win for the addresses they cover. */
  readonly nested: number;
  /** Ranges that overlap an earlier-starting range without lying inside it: the narrower wins where they overlap. */
  readonly partial: number;
  /** Disjoint segments after flattening: what a lookup searches. */
  readonly segments: number;
}

/** Maps an address to a value: a parsed CSV table here, an MMDB reader in src/net/node. */
export interface RangeSource<V> {
  find(ip: string): V | undefined;
}

export type GeoParseResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: 'E_GEO_FORMAT'; readonly message: string; readonly line: number };

export interface GeoCsvOptions {
  /** Name used in messages (a file path). */
  readonly source?: string;
  /** Family of integer addresses (`-num` files). Default: IPv4 when the number fits 32 bits, else IPv6. */
  readonly numericFamily?: 'IPv4' | 'IPv6' | undefined;
}

/** The lookup with no data: every answer undefined. */
export const NO_GEO: GeoLookup = Object.freeze({ country: () => undefined, asn: () => undefined });

/** The client address being looked up (reused: lookups are synchronous). */
const ADDR = new Uint32Array(4);
const V6_MAX = (1n << 128n) - 1n;

/**
 * Inclusive address ranges of one kind of value, both families, in sorted typed arrays. Values are interned:
 * rows with equal values share one object.
 */
export class RangeTable<V> implements RangeSource<V> {
  /** Number of ranges read (both families; rows without data not counted). */
  readonly size: number;
  /** What loading found: ranges read, how many overlapped others, and the disjoint segments looked up. */
  readonly stats: GeoTableStats;

  /** Segments: disjoint, sorted by start. */
  constructor(
    private readonly v4Start: Uint32Array,
    private readonly v4End: Uint32Array,
    private readonly v4Value: Int32Array,
    /** Four big-endian words per address. */
    private readonly v6Start: Uint32Array,
    private readonly v6End: Uint32Array,
    private readonly v6Value: Int32Array,
    private readonly values: readonly V[],
    counts: { readonly ranges: number; readonly nested: number; readonly partial: number } = { ranges: v4Value.length + v6Value.length, nested: 0, partial: 0 },
  ) {
    this.size = counts.ranges;
    this.stats = Object.freeze({ ...counts, segments: v4Value.length + v6Value.length });
  }

  /** The value of the range holding `ip` (IPv4-mapped IPv6 is looked up as IPv4), or undefined. */
  find(ip: string): V | undefined {
    const fam = parseIpWords(ip, ADDR);
    if (fam === 4 || (fam === 6 && isV4MappedWords(ADDR))) return this.findV4(fam === 4 ? (ADDR[0] ?? 0) : (ADDR[3] ?? 0));
    if (fam === 6) return this.findV6(ADDR);
    return undefined;
  }

  private findV4(x: number): V | undefined {
    const starts = this.v4Start;
    let lo = 0;
    let hi = starts.length - 1;
    if (hi < 0 || (starts[0] ?? 0) > x) return undefined;
    // Invariant: starts[lo] <= x; find the last such index, then check its end.
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((starts[mid] ?? 0) <= x) lo = mid;
      else hi = mid - 1;
    }
    return x <= (this.v4End[lo] ?? 0) ? this.values[this.v4Value[lo] ?? -1] : undefined;
  }

  private findV6(a: Uint32Array): V | undefined {
    let lo = 0;
    let hi = this.v6Value.length - 1;
    if (hi < 0 || compare6(this.v6Start, 0, a) > 0) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (compare6(this.v6Start, mid, a) <= 0) lo = mid;
      else hi = mid - 1;
    }
    return compare6(this.v6End, lo, a) >= 0 ? this.values[this.v6Value[lo] ?? -1] : undefined;
  }
}

/** Sign of words[4i..4i+3] − a. */
function compare6(words: Uint32Array, i: number, a: Uint32Array): number {
  const o = i * 4;
  for (let k = 0; k < 4; k++) {
    const w = words[o + k] ?? 0;
    const x = a[k] ?? 0;
    if (w !== x) return w < x ? -1 : 1;
  }
  return 0;
}

// ── CSV ─────────────────────────────────────────────────────────────────────────────────────────────────────────

/** RFC 4180 fields of one line; undefined for unbalanced or stray quotes. Only lines with a quote come here. */
function quotedFields(line: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let f = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q === -1) return undefined;
        f += line.slice(i, q);
        i = q + 1;
        if (line[i] !== '"') break;
        f += '"';
        i++;
      }
      if (i < line.length && line[i] !== ',') return undefined;
    } else {
      const c = line.indexOf(',', i);
      const end = c === -1 ? line.length : c;
      f = line.slice(i, end);
      if (f.includes('"')) return undefined;
      i = end;
    }
    out.push(f);
    if (i >= line.length) return out;
    i++; // the comma
  }
}

/** Index of the first `"` in text[from, to), or -1 (String.indexOf cannot stop at `to`). */
function quoteIn(text: string, from: number, to: number): number {
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === 34) return i;
  return -1;
}

/** A Uint32Array that grows by doubling. */
class Words {
  a = new Uint32Array(1024);
  n = 0;
  push(x: number): void {
    if (this.n === this.a.length) {
      const b = new Uint32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
  done(): Uint32Array {
    return this.a.slice(0, this.n);
  }
}

/** Rows of one family: `w` words per address (1 or 4), row i's start at start[i*w], end at end[i*w]. */
class Rows {
  readonly start = new Words();
  readonly end = new Words();
  readonly value = new Words();
  readonly line = new Words();
  constructor(readonly w: 1 | 4) {}
  get count(): number {
    return this.value.n;
  }
}

/** The parse of one address field: family and words in `ADDR_A`/`ADDR_B`. */
const ADDR_A = new Uint32Array(4);
const ADDR_B = new Uint32Array(4);
const U32_MAX = 0xffffffff;

/**
 * An address field text[from, to): an IP literal, or a decimal integer (the `-num` files). Writes the words into
 * `out` and returns the family, or 0.
 */
function addressAt(text: string, from: number, to: number, numericFamily: GeoCsvOptions['numericFamily'], out: Uint32Array): 0 | 4 | 6 {
  const fam = parseIpWordsAt(text, from, to, out);
  if (fam !== 0 || from === to) return fam;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return 0;
    n = n * 10 + (c - 48);
  }
  if (to - from <= 15 && n <= U32_MAX && numericFamily !== 'IPv6') {
    out[0] = n;
    return 4;
  }
  if (numericFamily === 'IPv4' || to - from > 39) return 0;
  const big = BigInt(text.slice(from, to)); // exact above 2^53, where `n` is not
  if (big > V6_MAX) return 0;
  for (let k = 0; k < 4; k++) out[k] = Number((big >> BigInt(96 - 32 * k)) & 0xffffffffn);
  return 6;
}

/** Incremental CSV parsing, so a loader can yield to the event loop between pieces of a large file. */
export interface GeoCsvParser<V> {
  /**
   * Parses text[from, to) (default: all of it). The piece must end at a line end or at the end of the file; line
   * numbers in errors count across pieces. Returns the failure, or undefined.
   */
  feed(text: string, from?: number, to?: number): Extract<GeoParseResult<never>, { ok: false }> | undefined;
  /** Sorts, flattens overlapping ranges (the narrowest wins), and builds the table. */
  finish(): GeoParseResult<RangeTable<V>>;
}

type Failure = Extract<GeoParseResult<never>, { ok: false }>;

/** How one row's value fields (from the third on) become a value index; a string is an error, -1 means no data. */
type ValueOf = (text: string, from: number, to: number, fields: readonly string[] | undefined) => number | string;

function csvParser<V>(opts: GeoCsvOptions, what: string, values: V[], valueOf: ValueOf): GeoCsvParser<V> {
  const name = opts.source ?? 'CSV';
  const v4 = new Rows(1);
  const v6 = new Rows(4);
  let lineNo = 0;
  let sawData = false;
  let failed: Failure | undefined;
  let quoteAt = -1;
  let pieceEnd = 0;
  const fail = (line: number, why: string): Failure => (failed = { ok: false, code: 'E_GEO_FORMAT', message: `${name}:${line}: ${why}`, line });

  /** One line, text[ls, le) without its line end. */
  const line = (text: string, ls: number, le: number): Failure | undefined => {
    const c0 = text.charCodeAt(ls);
    if (ls === le || c0 === 35 /* # */ || ((c0 === 32 || c0 === 9) && text.slice(ls, le).trim() === '')) return undefined;
    let f: string[] | undefined;
    let src = text;
    let c1: number;
    let c2: number;
    // The next quote of the piece, found once and again only once passed: searching from every line is O(n²).
    if (quoteAt !== -1 && quoteAt < ls) quoteAt = quoteIn(text, ls, pieceEnd);
    if (quoteAt !== -1 && quoteAt < le) {
      f = quotedFields(text.slice(ls, le));
      if (f === undefined) return fail(lineNo, 'unbalanced quotes');
      // Re-serialise the first two fields so the address parsing below reads them from one string.
      src = `${f[0] ?? ''},${f[1] ?? ''},`;
      ls = 0;
      c1 = (f[0] ?? '').length;
      c2 = src.length - 1;
      if (f.length < 3) return fail(lineNo, `expected ${what}, got ${f.length} field(s)`);
    } else {
      c1 = text.indexOf(',', ls);
      c2 = c1 === -1 || c1 >= le ? -1 : text.indexOf(',', c1 + 1);
      if (c1 === -1 || c1 >= le || c2 === -1 || c2 >= le) {
        if (!sawData && !/\d/.test(text.slice(ls, c1 === -1 || c1 >= le ? le : c1))) {
          sawData = true;
          return undefined;
        }
        return fail(lineNo, `expected ${what}, got ${text.slice(ls, le).split(',').length} field(s)`);
      }
    }
    const fs = addressAt(src, ls, c1, opts.numericFamily, ADDR_A);
    if (fs === 0) {
      if (!sawData && !/\d/.test(src.slice(ls, c1))) {
        sawData = true; // a header line (`ip_range_start,...`): no digit, so never a mistyped address
        return undefined;
      }
      return fail(lineNo, `"${src.slice(ls, c1)}" is not an address`);
    }
    sawData = true;
    const fe = addressAt(src, c1 + 1, c2, opts.numericFamily, ADDR_B);
    if (fe === 0) return fail(lineNo, `"${src.slice(c1 + 1, c2)}" is not an address`);
    if (fe !== fs) return fail(lineNo, 'start and end are of different IP families');
    const w = fs === 4 ? 1 : 4;
    for (let k = 0; k < w; k++) {
      const a = ADDR_A[k] ?? 0;
      const b = ADDR_B[k] ?? 0;
      if (a < b) break;
      if (a > b) return fail(lineNo, 'start is after end');
    }
    const v = f === undefined ? valueOf(text, c2 + 1, le, undefined) : valueOf('', 0, 0, f.slice(2));
    if (typeof v === 'string') return fail(lineNo, v);
    if (v < 0) return undefined;
    const rows = fs === 4 ? v4 : v6;
    for (let k = 0; k < w; k++) {
      rows.start.push(ADDR_A[k] ?? 0);
      rows.end.push(ADDR_B[k] ?? 0);
    }
    rows.value.push(v);
    rows.line.push(lineNo);
    return undefined;
  };

  return {
    feed(text: string, from = 0, to = text.length): Failure | undefined {
      if (failed !== undefined) return failed;
      let ls = from;
      if (lineNo === 0 && text.charCodeAt(ls) === 0xfeff) ls++;
      pieceEnd = to;
      quoteAt = quoteIn(text, ls, to);
      while (ls < to) {
        let nl = text.indexOf('\n', ls);
        if (nl === -1 || nl > to) nl = to;
        const le = nl > ls && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        lineNo++;
        const r = line(text, ls, le);
        if (r !== undefined) return r;
        ls = nl + 1;
      }
      return undefined;
    },
    finish(): GeoParseResult<RangeTable<V>> {
      if (failed !== undefined) return failed;
      const f4 = flatten(v4);
      const f6 = flatten(v6);
      const table = new RangeTable<V>(f4.start, f4.end, f4.value, f6.start, f6.end, f6.value, Object.freeze(values), {
        ranges: v4.count + v6.count,
        nested: f4.nested + f6.nested,
        partial: f4.partial + f6.partial,
      });
      return { ok: true, value: table };
    },
  };
}

// ── flattening overlapping ranges ──────────────────────────────────────────────────────────────────────────────

/** Sign of a[ai*w..] − b[bi*w..], as w-word big-endian numbers. */
function cmpW(a: Uint32Array, ai: number, b: Uint32Array, bi: number, w: number): number {
  for (let k = 0; k < w; k++) {
    const x = a[ai * w + k] ?? 0;
    const y = b[bi * w + k] ?? 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Copies the w words of src[si*w..] into dst[di*w..]. */
function copyW(dst: Uint32Array, di: number, src: Uint32Array, si: number, w: number): void {
  for (let k = 0; k < w; k++) dst[di * w + k] = src[si * w + k] ?? 0;
}

/** Adds `d` (+1 or −1) to the w-word number at a[0..w); true when it wraps (past the last address, or below 0). */
function stepW(a: Uint32Array, w: number, d: 1 | -1): boolean {
  for (let k = w - 1; k >= 0; k--) {
    const x = a[k] ?? 0;
    if (d === 1 ? x !== U32_MAX : x !== 0) {
      a[k] = x + d;
      return false;
    }
    a[k] = d === 1 ? 0 : U32_MAX;
  }
  return true;
}

/** A binary min-heap of row indices under `less`. */
class RowHeap {
  private a = new Int32Array(64);
  n = 0;
  constructor(private readonly less: (x: number, y: number) => boolean) {}
  get top(): number {
    return this.a[0] ?? -1;
  }
  push(x: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    let i = this.n++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const y = this.a[p] ?? 0;
      if (!this.less(x, y)) break;
      this.a[i] = y;
      i = p;
    }
    this.a[i] = x;
  }
  pop(): void {
    const x = this.a[--this.n] ?? 0;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= this.n) break;
      const r = c + 1;
      if (r < this.n && this.less(this.a[r] ?? 0, this.a[c] ?? 0)) c = r;
      const y = this.a[c] ?? 0;
      if (!this.less(y, x)) break;
      this.a[i] = y;
      i = c;
    }
    if (this.n > 0) this.a[i] = x;
  }
}

interface Flat {
  readonly start: Uint32Array;
  readonly end: Uint32Array;
  readonly value: Int32Array;
  readonly nested: number;
  readonly partial: number;
}

/**
 * The ranges of one family as disjoint segments, each address keeping the value of the narrowest range that holds
 * it (equal widths: the later line). Sweeps the rows in order of start with a heap of the ranges open at the
 * current address, narrowest on top; a range that has ended leaves the heap when it reaches the top.
 */
function flatten(rows: Rows): Flat {
  const w = rows.w;
  const n = rows.count;
  const S = rows.start.a;
  const E = rows.end.a;
  const line = rows.line.a;
  // Start ascending, then end descending (a range before those inside it), then line.
  const byStart = (i: number, j: number): number => cmpW(S, i, S, j, w) || cmpW(E, j, E, i, w) || (line[i] ?? 0) - (line[j] ?? 0);
  // An array, not a typed array: its sort (TimSort) is near linear on the nearly sorted rows files hold.
  const idx = Array.from({ length: n }, (_, i) => i);
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = byStart(i - 1, i) < 0;
  if (!sorted) idx.sort(byStart);

  // Widths (end − start, w words) for the heap; overlap counts against the furthest end seen so far.
  const width = new Uint32Array(n * w);
  let nested = 0;
  let partial = 0;
  let reach = -1; // the row with the furthest end so far
  for (let k = 0; k < n; k++) {
    const r = idx[k] ?? 0;
    let borrow = 0;
    for (let j = w - 1; j >= 0; j--) {
      let d = (E[r * w + j] ?? 0) - (S[r * w + j] ?? 0) - borrow;
      borrow = d < 0 ? 1 : 0;
      if (d < 0) d += 0x1_0000_0000;
      width[r * w + j] = d;
    }
    if (reach !== -1 && cmpW(S, r, E, reach, w) <= 0) {
      if (cmpW(E, r, E, reach, w) <= 0) nested++;
      else partial++;
    }
    if (reach === -1 || cmpW(E, r, E, reach, w) > 0) reach = r;
  }

  const heap = new RowHeap((x, y) => {
    const c = cmpW(width, x, width, y, w);
    return c !== 0 ? c < 0 : (line[x] ?? 0) > (line[y] ?? 0);
  });
  const outStart = new Words();
  const outEnd = new Words();
  const outValue: number[] = [];
  const pos = new Uint32Array(w); // the first address not yet given a segment
  const segEnd = new Uint32Array(w);
  if (n > 0) copyW(pos, 0, S, idx[0] ?? 0, w);
  let contiguous = false; // pos follows the last segment directly
  let k = 0;
  while (n > 0) {
    // Fast path, most rows of a file: with no range open, a range that overlaps neither neighbour is a segment as it
    // stands (it starts at or after pos: rows not yet taken start there or later).
    if (heap.n === 0 && k < n) {
      const r = idx[k] ?? 0;
      const next = idx[k + 1];
      if (next === undefined || cmpW(E, r, S, next, w) < 0) {
        const v = rows.value.a[r] ?? 0;
        const last = outValue.length - 1;
        if (contiguous && outValue[last] === v && cmpW(pos, 0, S, r, w) === 0) {
          copyW(outEnd.a, last, E, r, w);
        } else {
          for (let j = 0; j < w; j++) {
            outStart.push(S[r * w + j] ?? 0);
            outEnd.push(E[r * w + j] ?? 0);
          }
          outValue.push(v);
        }
        k++;
        copyW(pos, 0, E, r, w);
        if (stepW(pos, w, 1)) break;
        contiguous = true;
        continue;
      }
    }
    while (k < n && cmpW(S, idx[k] ?? 0, pos, 0, w) <= 0) heap.push(idx[k++] ?? 0);
    while (heap.n > 0 && cmpW(E, heap.top, pos, 0, w) < 0) heap.pop();
    if (heap.n === 0) {
      if (k >= n) break;
      const r = idx[k] ?? 0;
      copyW(pos, 0, S, r, w);
      contiguous = false;
      continue;
    }
    const top = heap.top;
    copyW(segEnd, 0, E, top, w);
    if (k < n && cmpW(S, idx[k] ?? 0, segEnd, 0, w) <= 0) {
      // The next range starts inside this segment (after pos): cut there, it may be narrower.
      copyW(segEnd, 0, S, idx[k] ?? 0, w);
      stepW(segEnd, w, -1);
    }
    const v = rows.value.a[top] ?? 0;
    const last = outValue.length - 1;
    if (contiguous && outValue[last] === v) {
      for (let j = 0; j < w; j++) outEnd.a[last * w + j] = segEnd[j] ?? 0;
    } else {
      for (let j = 0; j < w; j++) {
        outStart.push(pos[j] ?? 0);
        outEnd.push(segEnd[j] ?? 0);
      }
      outValue.push(v);
    }
    copyW(pos, 0, segEnd, 0, w);
    if (stepW(pos, w, 1)) break; // the segment ends at the last address of the family
    contiguous = true;
  }
  return { start: outStart.done(), end: outEnd.done(), value: Int32Array.from(outValue), nested, partial };
}

/** Two letters or digits. */
function isCode(text: string, from: number, to: number): boolean {
  if (to - from !== 2) return false;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122))) return false;
  }
  return true;
}

/**
 * An incremental parser of `start,end,country` CSV. Codes are two letters or digits, upper-cased (`T1`
 * included); rows with an empty country carry no data and are skipped.
 */
export function countryCsvParser(opts: GeoCsvOptions = {}): GeoCsvParser<string> {
  const values: string[] = [];
  const index = new Map<string, number>();
  return csvParser(opts, 'start,end,country', values, (text, from, to, quoted) => {
    let src = text;
    let a = from;
    let b = text.indexOf(',', from);
    if (quoted !== undefined) {
      src = quoted[0] ?? '';
      a = 0;
      b = src.length;
    } else if (b === -1 || b > to) {
      b = to;
    }
    while (a < b && src.charCodeAt(a) === 32) a++;
    while (b > a && src.charCodeAt(b - 1) === 32) b--;
    if (a === b) return -1;
    if (!isCode(src, a, b)) return `"${src.slice(a, b)}" is not a two-character country code`;
    const code = src.slice(a, b).toUpperCase();
    let i = index.get(code);
    if (i === undefined) {
      i = values.length;
      values.push(code);
      index.set(code, i);
    }
    return i;
  });
}

/** A string that shares no memory with the text it was cut from (V8 keeps slices of 13+ characters as views). */
function flatCopy(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

/** `13335`, `AS13335` (any case, spaces around) → 13335; undefined unless 0 to 4294967295. */
function asnNumberOf(text: string): number | undefined {
  let i = 0;
  let j = text.length;
  while (i < j && text.charCodeAt(i) === 32) i++;
  while (j > i && text.charCodeAt(j - 1) === 32) j--;
  if (j - i > 2 && (text.charCodeAt(i) | 32) === 97 && (text.charCodeAt(i + 1) | 32) === 115) i += 2; // "AS"
  if (i === j || j - i > 10) return undefined;
  let n = 0;
  for (let k = i; k < j; k++) {
    const c = text.charCodeAt(k);
    if (c < 48 || c > 57) return undefined;
    n = n * 10 + (c - 48);
  }
  return n <= 4_294_967_295 ? n : undefined;
}

/**
 * An incremental parser of `start,end,asn[,org]` CSV (`AS` before the number is allowed). ASN 0 (unrouted, in some
 * files) carries no data and is skipped; an empty org is absent. Equal (asn, org) rows share one frozen object.
 */
export function asnCsvParser(opts: GeoCsvOptions = {}): GeoCsvParser<AsnInfo> {
  const values: AsnInfo[] = [];
  const index = new Map<number, Map<string, number>>();
  return csvParser(opts, 'start,end,asn[,org]', values, (text, from, to, quoted) => {
    let asnText: string;
    let org: string;
    if (quoted !== undefined) {
      asnText = quoted[0] ?? '';
      org = quoted[1] ?? '';
    } else {
      const c = text.indexOf(',', from);
      const asnEnd = c === -1 || c > to ? to : c;
      asnText = text.slice(from, asnEnd);
      const orgEnd = asnEnd === to ? to : text.indexOf(',', asnEnd + 1);
      org = asnEnd === to ? '' : text.slice(asnEnd + 1, orgEnd === -1 || orgEnd > to ? to : orgEnd);
    }
    const asn = asnNumberOf(asnText);
    if (asn === undefined) return `"${asnText}" is not an AS number`;
    if (asn === 0) return -1;
    let byOrg = index.get(asn);
    if (byOrg === undefined) index.set(asn, (byOrg = new Map()));
    let i = byOrg.get(org);
    if (i === undefined) {
      i = values.length;
      // A copy: a slice of the file text would keep the whole text alive for as long as the table lives.
      values.push(Object.freeze(org === '' ? { asn } : { asn, org: flatCopy(org) }));
      byOrg.set(org, i);
    }
    return i;
  });
}

/** Parses `start,end,country` CSV in one go (see `countryCsvParser`). Never throws. */
export function parseCountryCsv(text: string, opts: GeoCsvOptions = {}): GeoParseResult<RangeTable<string>> {
  const p = countryCsvParser(opts);
  return p.feed(text) ?? p.finish();
}

/** Parses `start,end,asn[,org]` CSV in one go (see `asnCsvParser`). Never throws. */
export function parseAsnCsv(text: string, opts: GeoCsvOptions = {}): GeoParseResult<RangeTable<AsnInfo>> {
  const p = asnCsvParser(opts);
  return p.feed(text) ?? p.finish();
}

// ── combining sources ───────────────────────────────────────────────────────────────────────────────────────────

/**
 * One GeoLookup over ordered sources: the first source that knows an address answers. With at least one country
 * source, an address none of them knows is `XX`; an `ip` that is not an address is undefined either way.
 */
export function combineGeo(sources: { readonly country?: readonly RangeSource<string>[]; readonly asn?: readonly RangeSource<AsnInfo>[] }): GeoLookup {
  const country = sources.country ?? [];
  const asn = sources.asn ?? [];
  return Object.freeze({
    country(ip: string): string | undefined {
      if (country.length === 0) return undefined;
      for (const s of country) {
        const c = s.find(ip);
        if (c !== undefined) return c;
      }
      return parseIpWords(ip, ADDR) === 0 ? undefined : 'XX';
    },
    asn(ip: string): AsnInfo | undefined {
      for (const s of asn) {
        const a = s.find(ip);
        if (a !== undefined) return a;
      }
      return undefined;
    },
  });
}
