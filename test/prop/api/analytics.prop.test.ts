/**
 * The analytics rollup and query against a brute-force computation over the raw events: random event sets (some
 * minutes written to the database, the rest still open in memory) and random queries (metrics, dimensions, filters,
 * since/until, time_delta). Counts and bytes are exact, durationAvg equal up to float rounding, and the duration
 * quantiles within the sketch's relative accuracy of the exact quantile (the value at rank ⌊q·(n−1)⌋).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ApiStore } from '../../../src/api/store.ts';
import { AnalyticsStore } from '../../../src/api/analytics-store.ts';
import { matches, query, type Dimension, type Filter, type FilterTerm, type Metric, type TimeDelta } from '../../../src/api/analytics-query.ts';
import { MinuteRollup, SKETCH_RELATIVE_ACCURACY } from '../../../src/streams/analytics.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';

const T0 = Date.UTC(2026, 0, 1);
const ZONES = ['z1', 'z2'];
const APPS = ['a1', 'a2', 'a3'];
const EVENTS = ['connect', 'disconnect', 'originError', 'clientFiltered'] as const;
const COLOS = ['SFO', 'LHR'];
const IPS = ['192.0.2.1', '2001:db8::1', '::ffff:192.0.2.9'];
const SPAN_MIN = 180;

interface Raw {
  zone: string;
  ms: number;
  app: string;
  event: (typeof EVENTS)[number];
  ip: string;
  colo: string;
  cb: number;
  ob: number;
  dur: number;
}

const rawEvent = fc.record({
  zone: fc.constantFrom(...ZONES),
  ms: fc.integer({ min: 0, max: SPAN_MIN * 60_000 - 1 }).map((x) => T0 + x),
  app: fc.constantFrom(...APPS),
  event: fc.constantFrom(...EVENTS),
  ip: fc.constantFrom(...IPS),
  colo: fc.constantFrom(...COLOS),
  cb: fc.integer({ min: 0, max: 100_000 }),
  ob: fc.integer({ min: 0, max: 100_000 }),
  dur: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3_600_000 }).map((x) => x / 8)),
});

const DIMS: readonly Dimension[] = ['event', 'appID', 'coloName', 'ipVersion'];
const METRIC_LIST: readonly Metric[] = ['count', 'bytesIngress', 'bytesEgress', 'durationAvg', 'durationMedian', 'duration90th', 'duration99th'];

const term: fc.Arbitrary<FilterTerm> = fc.oneof(
  fc.record({ dimension: fc.constant<Dimension>('event'), op: fc.constantFrom('==' as const, '!=' as const), value: fc.constantFrom(...EVENTS) }),
  fc.record({ dimension: fc.constant<Dimension>('appID'), op: fc.constantFrom('==' as const, '!=' as const, '<' as const, '>=' as const), value: fc.constantFrom(...APPS) }),
  fc.record({ dimension: fc.constant<Dimension>('coloName'), op: fc.constantFrom('==' as const, '!=' as const), value: fc.constantFrom(...COLOS) }),
  fc.record({ dimension: fc.constant<Dimension>('ipVersion'), op: fc.constantFrom('==' as const, '!=' as const, '>' as const, '<=' as const), value: fc.constantFrom('4', '6') }),
);

const queryArb = fc.record({
  zone: fc.constantFrom(...ZONES),
  metrics: fc.subarray([...METRIC_LIST], { minLength: 1 }),
  dimensions: fc.shuffledSubarray([...DIMS]),
  filters: fc.array(fc.array(term, { minLength: 1, maxLength: 2 }), { maxLength: 2 }),
  fromMin: fc.integer({ min: 0, max: SPAN_MIN - 1 }),
  lenMin: fc.integer({ min: 1, max: SPAN_MIN }),
  timeDelta: fc.constantFrom<TimeDelta | undefined>(undefined, 'minute', 'dekaminute', 'hour'),
});

const WIDTH_MS: Record<string, number> = { minute: 60_000, dekaminute: 600_000, hour: 3_600_000 };

function toEvent(r: Raw): SpectrumEvent {
  return {
    Event: r.event,
    Timestamp: new Date(r.ms).toISOString(),
    Application: r.app,
    ClientIP: r.ip,
    ColoCode: r.colo,
    ClientBytes: r.event === 'connect' ? 0 : r.cb,
    OriginBytes: r.event === 'connect' ? 0 : r.ob,
    DurationMs: r.event === 'connect' ? 0 : r.dur,
  } as SpectrumEvent;
}

function dimOf(r: Raw, d: Dimension): string {
  switch (d) {
    case 'event':
      return r.event;
    case 'appID':
      return r.app;
    case 'coloName':
      return r.colo;
    case 'ipVersion':
      return r.ip.includes(':') && !r.ip.startsWith('::ffff:') ? '6' : '4';
  }
}

function exact(events: Raw[], m: Metric): number {
  const closing = events.filter((e) => e.event !== 'connect');
  const durs = closing.map((e) => e.dur).sort((a, b) => a - b);
  const q = (p: number): number => (durs.length === 0 ? 0 : durs[Math.floor(p * (durs.length - 1))]!);
  switch (m) {
    case 'count':
      return events.length;
    case 'bytesIngress':
      return closing.reduce((a, e) => a + e.cb, 0);
    case 'bytesEgress':
      return closing.reduce((a, e) => a + e.ob, 0);
    case 'durationAvg':
      return durs.length === 0 ? 0 : durs.reduce((a, b) => a + b, 0) / durs.length;
    case 'durationMedian':
      return q(0.5);
    case 'duration90th':
      return q(0.9);
    case 'duration99th':
      return q(0.99);
  }
}

function close(m: Metric, got: number, want: number, where: string): void {
  if (m === 'count' || m === 'bytesIngress' || m === 'bytesEgress') assert.equal(got, want, where);
  else if (m === 'durationAvg') assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(1, want), `${where}: ${got} vs ${want}`);
  else assert.ok(Math.abs(got - want) <= SKETCH_RELATIVE_ACCURACY * want + 1e-9, `${where}: ${got} vs exact ${want}`);
}

describe('analytics rollup + query vs brute force (property)', () => {
  it('matches a brute-force computation over the raw events for random queries', () => {
    fc.assert(
      fc.property(fc.array(rawEvent, { maxLength: 150 }), fc.integer({ min: 0, max: SPAN_MIN }), fc.array(queryArb, { minLength: 1, maxLength: 4 }), (raws, writtenMin, queries) => {
        const api = new ApiStore(':memory:');
        try {
          const store = new AnalyticsStore(api);
          const rollup = new MinuteRollup();
          for (const r of raws) rollup.add(toEvent(r), r.zone);
          // The minutes before the cut are written (in two batches, so rows merge); the rest stays in memory.
          const cut = (T0 + writtenMin * 60_000) / 1000;
          const early = rollup.takeBefore(cut);
          assert.ok(store.write(early.slice(0, early.length >> 1)));
          assert.ok(store.write(early.slice(early.length >> 1)));
          store.pending = () => rollup.pending();

          for (const qa of queries) {
            const since = T0 + qa.fromMin * 60_000;
            const until = Math.min(T0 + SPAN_MIN * 60_000, since + qa.lenMin * 60_000);
            const filters: Filter = qa.filters;
            const res = query(store, { zone: qa.zone, metrics: qa.metrics, dimensions: qa.dimensions, filters, since, until, sort: [], limit: 10_000, timeDelta: qa.timeDelta });

            const inRange = raws.filter((r) => {
              const bucket = Math.floor(r.ms / 60_000) * 60_000;
              const dims = { event: r.event, app: r.app, colo: r.colo, ipVersion: Number(dimOf(r, 'ipVersion')) };
              return r.zone === qa.zone && bucket >= since && bucket < until && matches(dims, filters);
            });
            const groups = new Map<string, Raw[]>();
            for (const r of inRange) {
              const k = JSON.stringify(qa.dimensions.map((d) => dimOf(r, d)));
              groups.set(k, [...(groups.get(k) ?? []), r]);
            }
            assert.equal(res.data.length, groups.size, 'one row per group');
            for (const m of qa.metrics) close(m, res.totals[m]!, exact(inRange, m), `totals.${m}`);
            for (const row of res.data) {
              const evs = groups.get(JSON.stringify(row.dimensions));
              assert.ok(evs !== undefined, `unexpected row ${JSON.stringify(row.dimensions)}`);
              if (qa.timeDelta === undefined) {
                qa.metrics.forEach((m, i) => close(m, (row.metrics as number[])[i]!, exact(evs, m), `${row.dimensions}.${m}`));
                continue;
              }
              const w = WIDTH_MS[qa.timeDelta]!;
              const first = Math.floor(since / w);
              const slots = res.time_intervals!.length;
              assert.equal(slots, Math.ceil(until / w) - first);
              qa.metrics.forEach((m, i) => {
                const series = (row.metrics as number[][])[i]!;
                assert.equal(series.length, slots);
                series.forEach((v, j) => close(m, v, exact(evs.filter((e) => Math.floor(Math.floor(e.ms / 60_000) * 60_000 / w) - first === j), m), `${row.dimensions}.${m}[${j}]`));
              });
            }
          }
        } finally {
          api.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
