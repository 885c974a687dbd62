/**
 * The analytics store on a fake clock: the writer writes each minute once it has ended (one batch per minute, not
 * per event) and the open minutes on close; an API write in progress defers it; retention deletes old rows;
 * minute rows older than a day become hour rows with the same counts, bytes and merged duration sketches.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Subject } from 'rxjs';
import { ApiStore } from '../../../src/api/store.ts';
import { AnalyticsStore, AnalyticsWriter, type AnalyticsClock } from '../../../src/api/analytics-store.ts';
import { query } from '../../../src/api/analytics-query.ts';
import { HOUR_SEC, mergeBytesInto, MINUTE_SEC, MinuteRollup, newSketch, sketchFromBytes, sketchToBytes } from '../../../src/streams/analytics.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';

const T0 = Date.UTC(2026, 0, 10); // a midnight

class FakeClock implements AnalyticsClock {
  t = T0;
  timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
  epochMs(): number {
    return this.t;
  }
  setTimer(ms: number, fn: () => void): () => void {
    const timer = { at: this.t + ms, fn, live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.live = false;
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
  get pending(): number {
    return this.timers.filter((x) => x.live).length;
  }
}

function ev(ms: number, o: Partial<SpectrumEvent> = {}): SpectrumEvent {
  return { Event: 'disconnect', Timestamp: new Date(ms).toISOString(), Application: 'app', ClientIP: '192.0.2.1', ColoCode: 'SFO', ClientBytes: 10, OriginBytes: 20, DurationMs: 100, ...o } as SpectrumEvent;
}

const ZONE = 'z';

describe('analytics store', () => {
  it('writes a minute once it has ended, in one batch, and the open minute on close', () => {
    const api = new ApiStore(':memory:');
    const store = new AnalyticsStore(api);
    const clock = new FakeClock();
    const events = new Subject<SpectrumEvent>();
    const w = new AnalyticsWriter({ store, clock, events$: events, zoneOf: () => ZONE });
    clock.advance(5_000);
    for (let i = 0; i < 50; i++) events.next(ev(clock.t + i));
    assert.equal(store.allRows().length, 0, 'nothing written during the minute');
    // The open minute already answers queries.
    const q = { zone: ZONE, metrics: ['count' as const], dimensions: [], filters: [], since: T0, until: T0 + 3_600_000, sort: [], limit: 10 };
    assert.equal(query(store, q).totals['count'], 50);
    clock.advance(60_000);
    const rows = store.allRows();
    assert.equal(rows.length, 1, 'one row for the minute');
    assert.equal(rows[0]!.count, 50);
    assert.equal(rows[0]!.t, T0 / 1000);
    // The next minute stays open until close().
    events.next(ev(clock.t));
    assert.equal(store.allRows().length, 1);
    assert.equal(query(store, q).totals['count'], 51);
    assert.ok(w.close());
    assert.equal(store.allRows().length, 2);
    assert.equal(query(store, q).totals['count'], 51, 'nothing counted twice');
    assert.equal(clock.pending, 0, 'no timer left armed');
    events.next(ev(clock.t)); // after close: not fed
    assert.equal(query(store, q).totals['count'], 51);
    api.close();
  });

  it('defers a write while an API write holds the database, then writes it with the next batch', () => {
    const api = new ApiStore(':memory:');
    const store = new AnalyticsStore(api);
    const clock = new FakeClock();
    const events = new Subject<SpectrumEvent>();
    const w = new AnalyticsWriter({ store, clock, events$: events, zoneOf: () => ZONE });
    events.next(ev(clock.t));
    api.begin();
    clock.advance(61_000);
    assert.equal(store.unwritten().length, 1, 'kept in the backlog');
    api.rollback(); // the API write fails: the analytics rows were not part of it
    clock.advance(1_000);
    assert.equal(store.allRows().length, 1);
    assert.equal(store.unwritten().length, 0);
    w.close();
    api.close();
  });

  it('deletes rows past retention and downsamples minute rows older than a day into hour rows', () => {
    const api = new ApiStore(':memory:');
    const store = new AnalyticsStore(api, { retentionDays: 3 });
    const rollup = new MinuteRollup();
    const day = 86_400_000;
    // Four days ago (past retention), two days ago (to downsample: 3 minutes of one hour), and now.
    rollup.add(ev(T0 - 4 * day), ZONE);
    const old = T0 - 2 * day + 5 * 3_600_000;
    const durations = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000];
    durations.forEach((d, i) => rollup.add(ev(old + (i % 3) * 60_000 + i, { DurationMs: d, ClientBytes: i }), ZONE));
    rollup.add(ev(old, { Event: 'connect', ClientBytes: 0, OriginBytes: 0, DurationMs: 0 }), ZONE);
    rollup.add(ev(T0 - 60_000), ZONE);
    assert.ok(store.write(rollup.takeAll()));
    const q = { zone: ZONE, metrics: ['count', 'bytesIngress', 'durationAvg', 'durationMedian', 'duration99th'] as const, dimensions: ['event' as const], filters: [], since: old - 3_600_000, until: old + 3_600_000, sort: [], limit: 10 };
    const before = query(store, { ...q, metrics: [...q.metrics] });
    assert.equal(store.allRows().filter((r) => r.res === MINUTE_SEC).length, 6);

    assert.ok(store.maintain(T0 / 1000));
    const rows = store.allRows();
    assert.ok(!rows.some((r) => r.t < T0 / 1000 - 3 * 86_400), 'rows past retention deleted');
    const hours = rows.filter((r) => r.res === HOUR_SEC);
    assert.deepEqual(hours.map((r) => [r.t, r.event, r.count]).sort(), [[Math.floor(old / 3_600_000) * 3600, 'connect', 1], [Math.floor(old / 3_600_000) * 3600, 'disconnect', 10]].sort());
    assert.deepEqual(rows.filter((r) => r.res === MINUTE_SEC).map((r) => r.t), [(T0 - 60_000) / 1000], 'the last day stays per minute');
    // The same figures from the hour rows (the merged sketch gives the same quantiles).
    assert.deepEqual(query(store, { ...q, metrics: [...q.metrics] }).data, before.data);
    // Idempotent.
    assert.ok(store.maintain(T0 / 1000));
    assert.deepEqual(store.allRows(), rows);
    api.close();
  });
});

describe('stored sketches', () => {
  it('mergeBytesInto gives the sketch of all the values, as decoding and merging did; bad bytes change nothing', () => {
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 20; round++) {
      const all = newSketch();
      const viaBytes = newSketch();
      const viaMerge = newSketch();
      const parts = 1 + Math.floor(rand() * 30);
      for (let p = 0; p < parts; p++) {
        const part = newSketch();
        const n = Math.floor(rand() * 25); // some parts are empty
        for (let i = 0; i < n; i++) {
          // Durations: zeros, sub-millisecond, up to an hour.
          const v = rand() < 0.1 ? 0 : Math.round(rand() ** 3 * 3_600_000 * 1000) / 1000;
          part.accept(v);
          all.accept(v);
        }
        const bytes = sketchToBytes(part);
        mergeBytesInto(viaBytes, bytes);
        viaMerge.merge(sketchFromBytes(bytes));
      }
      for (const s of [viaBytes, viaMerge]) {
        assert.equal(s.count, all.count);
        assert.equal(s.zeroCount, all.zeroCount);
        assert.ok(Math.abs(s.sum - all.sum) <= 1e-6 * Math.max(1, all.sum));
        if (all.count > 0) {
          assert.equal(s.min, all.min);
          assert.equal(s.max, all.max);
          for (const q of [0, 0.5, 0.9, 0.99, 1]) assert.equal(s.getValueAtQuantile(q), all.getValueAtQuantile(q), `q ${q}, round ${round}`);
        }
      }
    }
    const into = newSketch();
    into.accept(5);
    const good = sketchToBytes(into);
    assert.throws(() => mergeBytesInto(into, good.subarray(0, good.length - 1)), /truncated/);
    assert.throws(() => mergeBytesInto(into, new Uint8Array(30)), /version 1/);
    assert.equal(into.count, 1);
    assert.equal(into.getValueAtQuantile(0.5), sketchFromBytes(good).getValueAtQuantile(0.5));
  });
});

describe('the minute rollup', () => {
  it('puts each event in its own minute when minutes alternate, and parses a non-UTC stamp whole', () => {
    const r = new MinuteRollup();
    const base = Date.UTC(2026, 0, 1, 12, 0, 0);
    // 12:00:59.999, 12:01:00.000, back to 12:00, then 12:01 again, and 12:00:30 written with an offset (= 12:00:30Z).
    for (const ms of [base + 59_999, base + 60_000, base + 1, base + 60_001]) r.add(ev(ms), 'z');
    r.add({ ...ev(base), Timestamp: '2026-01-01T13:00:30.000+01:00' }, 'z');
    const byMinute = new Map<number, number>();
    for (const row of r.pending()) byMinute.set(row.t, (byMinute.get(row.t) ?? 0) + row.count);
    assert.deepEqual([...byMinute].sort((a, b) => a[0] - b[0]), [
      [base / 1000, 3],
      [base / 1000 + MINUTE_SEC, 2],
    ]);
  });
});
