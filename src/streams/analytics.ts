/**
 * Spectrum analytics rollups (docs/api.md, "Analytics"): the engine's connection events folded into one row per
 * (bucket, zone, app, event, client IP version, colo) holding the event count, bytes each way, and the duration sum
 * and a DDSketch of the durations (mergeable, ~1 % relative accuracy) for the quantiles.
 *
 * The fold runs on `EventLog.events$` (one `connect` and one closing event per connection or flow, never per
 * chunk). It keeps only the open minutes in memory; the writer (src/api/analytics-store.ts) takes each completed
 * minute (`takeBefore`) and stores it in one transaction. Buckets come from the events' own `Timestamp`, so the
 * same fold runs in virtual time in the simulator.
 *
 * Meaning of the figures (Spectrum's names, seen from the edge):
 * - `bytesIngress` = ClientBytes (bytes received from the client, that the edge carries towards the origin);
 * - `bytesEgress`  = OriginBytes (bytes received from the origin, that the edge sends to the client);
 * - durations (ms) are those of closing events (`connect` events carry none): `durN` counts them.
 */
import type { Observable, Subscription } from 'rxjs';
import { DDSketch } from '@datadog/sketches-js';
import type { SpectrumEvent } from './events.ts';

/** Relative accuracy of the duration quantiles (DDSketch's guarantee: within 1 % of the true value). */
export const SKETCH_RELATIVE_ACCURACY = 0.01;
/** Width of a minute bucket and of an hour bucket (downsampled rows), seconds. */
export const MINUTE_SEC = 60;
export const HOUR_SEC = 3600;

/** The dimensions a row is keyed by, besides its bucket. */
export interface RollupKey {
  readonly zone: string;
  readonly app: string;
  /** The Spectrum event name: connect, disconnect, originError, clientFiltered, … */
  readonly event: string;
  readonly ipVersion: 4 | 6;
  /** The edge node id (Spectrum's ColoCode / coloName). */
  readonly colo: string;
}

/** One rollup row: a bucket of `res` seconds starting at `t` (epoch seconds). */
/** The figures of a row, or of any sum of rows (the analytics queries add rows into these). */
export interface RollupFigures {
  count: number;
  bytesIngress: number;
  bytesEgress: number;
  /** How many of the events carry a duration (the closing ones). */
  durN: number;
  /** Sum of their durations, ms. */
  durSum: number;
  /** Their durations; undefined when durN is 0. */
  sketch: DDSketch | undefined;
}

export interface RollupRow extends RollupKey, RollupFigures {
  readonly res: number;
  readonly t: number;
}

export function newSketch(): DDSketch {
  return new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
}

/**
 * A sketch as bytes (the `sketch` BLOB): version 1, then sum, min and max (float64 LE), then varints: the zero
 * count, the number of non-empty bins, and per bin the key (zigzag delta from the previous key) and its count.
 * Only what durations need: no negative values (DDSketch's own `toProto` needs protobufjs, which the package does
 * not declare), and integer counts (every value is accepted with weight 1).
 */
export function sketchToBytes(s: DDSketch): Uint8Array {
  const out: number[] = [];
  const varint = (n: number): void => {
    let v = Math.round(n);
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
  };
  const bins: Array<[number, number]> = [];
  const store = s.store;
  for (let i = 0; i < store.bins.length; i++) {
    const c = store.bins[i] ?? 0;
    if (c > 0) bins.push([i + store.offset, c]);
  }
  const head = new DataView(new ArrayBuffer(25));
  head.setUint8(0, 1);
  head.setFloat64(1, s.sum, true);
  head.setFloat64(9, s.count === 0 ? 0 : s.min, true);
  head.setFloat64(17, s.count === 0 ? 0 : s.max, true);
  varint(s.zeroCount);
  varint(bins.length);
  let prev = 0;
  for (const [key, count] of bins) {
    const d = key - prev;
    varint(d >= 0 ? d * 2 : -d * 2 - 1);
    varint(count);
    prev = key;
  }
  const bytes = new Uint8Array(25 + out.length);
  bytes.set(new Uint8Array(head.buffer), 0);
  bytes.set(out, 25);
  return bytes;
}

/** The sketch `sketchToBytes` wrote; throws on bytes it did not write. */
export function sketchFromBytes(b: Uint8Array): DDSketch {
  const s = newSketch();
  mergeBytesInto(s, b);
  return s;
}

/**
 * Adds the sketch `sketchToBytes` wrote into `into` (as `into.merge(sketchFromBytes(b))` would, without building
 * the second sketch: only the non-empty bins are touched, which is what makes a quantile query over many rows
 * cheaper); throws on bytes it did not write, leaving `into` unchanged.
 */
export function mergeBytesInto(into: DDSketch, b: Uint8Array): void {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.byteLength < 25 || view.getUint8(0) !== 1) throw new Error('analytics: not a sketch of version 1');
  let at = 25;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      if (at >= b.byteLength) throw new Error('analytics: truncated sketch');
      const x = b[at++]!;
      v += (x & 0x7f) * mul;
      if (x < 0x80) return v;
      mul *= 0x80;
    }
  };
  const zero = varint();
  const n = varint();
  // Read every bin first, so bytes that end early change nothing.
  const bins: number[] = [];
  let key = 0;
  let count = zero;
  for (let i = 0; i < n; i++) {
    const z = varint();
    key += z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    const c = varint();
    bins.push(key, c);
    count += c;
  }
  if (count === 0) return;
  for (let i = 0; i < bins.length; i += 2) into.store.add(bins[i]!, bins[i + 1]!);
  into.zeroCount += zero;
  into.count += count;
  into.sum += view.getFloat64(1, true);
  into.min = Math.min(into.min, view.getFloat64(9, true));
  into.max = Math.max(into.max, view.getFloat64(17, true));
}

/** 4 or 6: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is IPv4. */
export function ipVersionOf(ip: string): 4 | 6 {
  if (!ip.includes(':')) return 4;
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip) ? 4 : 6;
}

export function rowKey(k: RollupKey & { readonly res: number; readonly t: number }): string {
  return `${k.res}\u0000${k.t}\u0000${k.zone}\u0000${k.app}\u0000${k.event}\u0000${k.ipVersion}\u0000${k.colo}`;
}

/** Adds `b`'s figures into `a` (same key); `a`'s sketch is changed in place (or becomes a copy of `b`'s). */
export function mergeInto(a: RollupFigures, b: RollupFigures): void {
  a.count += b.count;
  a.bytesIngress += b.bytesIngress;
  a.bytesEgress += b.bytesEgress;
  a.durN += b.durN;
  a.durSum += b.durSum;
  if (b.sketch !== undefined) {
    if (a.sketch === undefined) a.sketch = newSketch();
    a.sketch.merge(b.sketch);
  }
}

/** Folds one event into a row's figures. */
export function addEvent(row: RollupRow, e: SpectrumEvent): void {
  row.count += 1;
  if (e.Event === 'connect') return;
  row.bytesIngress += e.ClientBytes;
  row.bytesEgress += e.OriginBytes;
  row.durN += 1;
  row.durSum += Math.max(0, e.DurationMs);
  (row.sketch ??= newSketch()).accept(Math.max(0, e.DurationMs));
}

/**
 * The open minutes, in memory. No timer of its own: `add` folds an event, `takeBefore` hands over
 * the minutes that ended (to be written), `pending` shows what is not written yet (the analytics queries merge it,
 * so "current" figures include the traffic of the last seconds).
 */
export class MinuteRollup {
  readonly #rows = new Map<string, RollupRow>();
  /** Events folded since creation (for tests and the benchmark). */
  events = 0;

  /** The last minute parsed: an RFC 3339 timestamp's first 16 characters (`2026-01-01T00:00`) and its epoch second. */
  #minuteText = '';
  #minuteSec = 0;

  /** Folds `e` (of `zone`) into its minute. */
  add(e: SpectrumEvent, zone: string): void {
    const t = this.#minuteOf(e.Timestamp);
    if (t === undefined) return;
    const ipVersion = ipVersionOf(e.ClientIP);
    // The key is built without an object per event (this runs twice per connection).
    const key = `${MINUTE_SEC}\u0000${t}\u0000${zone}\u0000${e.Application}\u0000${e.Event}\u0000${ipVersion}\u0000${e.ColoCode}`;
    let row = this.#rows.get(key);
    if (row === undefined) {
      row = { res: MINUTE_SEC, t, zone, app: e.Application, event: e.Event, ipVersion, colo: e.ColoCode, count: 0, bytesIngress: 0, bytesEgress: 0, durN: 0, durSum: 0, sketch: undefined };
      this.#rows.set(key, row);
    }
    addEvent(row, e);
    this.events++;
  }

  /**
   * The epoch second of the minute `stamp` falls in. Events arrive in time order, so most share the last one's minute:
   * that one is compared as text and parsed only when it changes (this runs twice per connection). A stamp that is
   * not in the engine's UTC form (`…Z`) is parsed whole.
   */
  #minuteOf(stamp: string): number | undefined {
    if (stamp.length >= 17 && stamp.endsWith('Z') && stamp.startsWith(this.#minuteText) && this.#minuteText !== '') return this.#minuteSec;
    const ms = Date.parse(stamp);
    if (!Number.isFinite(ms)) return undefined;
    const t = Math.floor(ms / 1000 / MINUTE_SEC) * MINUTE_SEC;
    if (stamp.endsWith('Z') && stamp.length >= 17) {
      this.#minuteText = stamp.slice(0, 16);
      this.#minuteSec = t;
    }
    return t;
  }

  /** Removes and returns the rows of minutes that start before `tSec` (epoch seconds). */
  takeBefore(tSec: number): RollupRow[] {
    const out: RollupRow[] = [];
    for (const [key, row] of this.#rows) {
      if (row.t < tSec) {
        out.push(row);
        this.#rows.delete(key);
      }
    }
    return out;
  }

  /** Removes and returns every row (shutdown). */
  takeAll(): RollupRow[] {
    const out = [...this.#rows.values()];
    this.#rows.clear();
    return out;
  }

  /** The rows not handed over yet (read-only views: do not change them). */
  pending(): readonly RollupRow[] {
    return [...this.#rows.values()];
  }
}

/**
 * Feeds `events$` into `rollup`; `zoneOf` names an app's zone ('' when it has none). The caller unsubscribes.
 */
export function feedRollup(events$: Observable<SpectrumEvent>, rollup: MinuteRollup, zoneOf: (appId: string) => string): Subscription {
  return events$.subscribe((e) => rollup.add(e, zoneOf(e.Application)));
}
