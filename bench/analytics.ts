/**
 * `npm run bench:analytics`: the analytics store (src/api/analytics-store.ts) and queries (src/api/analytics-query.ts)
 * on a synthetic feed, in this process, on a fresh SQLite file in a temporary directory.
 *
 *   npm run bench:analytics               1,000,000 events; a day of minutes for 100 apps; 5 runs per query
 *   npm run bench:analytics -- --quick    100,000 events; 2 hours of minutes; 2 runs per query
 *
 * 1. **Store size per million events**: N events (half `connect`, half `disconnect` with random bytes and a
 *    log-normal duration) spread evenly over K apps (10 and 100) and 60 minutes, through `MinuteRollup` and the
 *    writer's batch (`AnalyticsStore.write`, one transaction per minute); then the database file size after a WAL
 *    checkpoint, rows written, rows per minute, and the time to fold the events and write the batches.
 * 2. **Query latency**: a day (1,440 minutes) of per-minute rows for 100 apps (connect and disconnect rows, one
 *    colo, IPv4; each disconnect row with a sketch of 20 durations), written directly as rows; then the median time
 *    of `events/summary` (by appID: count and bytes; and with the three quantiles), `events/bytime` (hour, by appID)
 *    and `events/bytime` (minute, one app by filter).
 *
 * Figures are printed as a table and appended to bench/results/analytics-<time>.jsonl. Every loop is bounded.
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ApiStore } from '../src/api/store.ts';
import { AnalyticsStore } from '../src/api/analytics-store.ts';
import { parseAnalyticsQuery, query } from '../src/api/analytics-query.ts';
import { MinuteRollup, newSketch, type RollupRow } from '../src/streams/analytics.ts';
import type { SpectrumEvent } from '../src/streams/events.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const quick = values.quick === true;
const EVENTS = quick ? 100_000 : 1_000_000;
const DAY_MIN = quick ? 120 : 1440;
const RUNS = quick ? 2 : 5;
const ZONE = 'z';
const T0 = Date.UTC(2026, 0, 1);

/** A small deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(42);
const duration = (): number => Math.round(Math.exp(Math.log(2000) + 1.5 * (rand() + rand() + rand() - 1.5)) * 1000) / 1000;

const dir = mkdtempSync(join(tmpdir(), 'refract-bench-analytics-'));
const results: Array<Record<string, unknown>> = [];
const fileSize = (f: string): number => ['', '-wal', '-shm'].reduce((a, s) => a + (statSync(f + s, { throwIfNoEntry: false })?.size ?? 0), 0);

try {
  // ── 1. store size per million events ──────────────────────────────────────────────────────────────────────────
  for (const apps of [10, 100]) {
    const f = join(dir, `size-${apps}.sqlite`);
    const api = new ApiStore(f);
    const empty = fileSize(f);
    const store = new AnalyticsStore(api);
    const rollup = new MinuteRollup();
    const minutes = 60;
    const perMinute = EVENTS / minutes;
    let foldMs = 0;
    let writeMs = 0;
    let rows = 0;
    for (let m = 0; m < minutes; m++) {
      const t0 = performance.now();
      for (let i = 0; i < perMinute; i++) {
        const connect = i % 2 === 0;
        const e = {
          Event: connect ? 'connect' : 'disconnect',
          Timestamp: new Date(T0 + m * 60_000 + Math.floor((i / perMinute) * 60_000)).toISOString(),
          Application: `app${(i >> 1) % apps}`,
          ClientIP: '192.0.2.1',
          ColoCode: 'SFO',
          ClientBytes: connect ? 0 : Math.floor(rand() * 10_000),
          OriginBytes: connect ? 0 : Math.floor(rand() * 100_000),
          DurationMs: connect ? 0 : duration(),
        } as SpectrumEvent;
        rollup.add(e, ZONE);
      }
      const t1 = performance.now();
      const batch = rollup.takeBefore((T0 + (m + 1) * 60_000) / 1000);
      rows += batch.length;
      if (!store.write(batch)) throw new Error('write deferred');
      writeMs += performance.now() - t1;
      foldMs += t1 - t0;
    }
    api.read((db) => db.pragma('wal_checkpoint(TRUNCATE)'));
    const bytes = fileSize(f) - empty;
    api.close();
    const r = { phase: 'size', apps, events: EVENTS, minutes, rows, rowsPerMinute: rows / minutes, bytes, bytesPerMillionEvents: Math.round((bytes / EVENTS) * 1e6), bytesPerRow: Math.round(bytes / rows), foldNsPerEvent: Math.round((foldMs * 1e6) / EVENTS), writeMsPerMinute: +(writeMs / minutes).toFixed(2) };
    results.push(r);
    console.log(`size  ${apps} apps: ${EVENTS} events → ${rows} rows (${r.rowsPerMinute}/min), ${(bytes / 1e6).toFixed(2)} MB (${r.bytesPerRow} B/row; ${(r.bytesPerMillionEvents / 1e6).toFixed(2)} MB per million events); fold ${r.foldNsPerEvent} ns/event, write ${r.writeMsPerMinute} ms/minute batch`);
  }

  // ── 2. query latency over a day of minutes for 100 apps ───────────────────────────────────────────────────────
  const f = join(dir, 'day.sqlite');
  const api = new ApiStore(f);
  const store = new AnalyticsStore(api);
  const APPS = 100;
  const t0 = performance.now();
  for (let m = 0; m < DAY_MIN; m++) {
    const batch: RollupRow[] = [];
    const t = T0 / 1000 + m * 60;
    for (let a = 0; a < APPS; a++) {
      const base = { res: 60, t, zone: ZONE, app: `app${a}`, ipVersion: 4 as const, colo: 'SFO' };
      batch.push({ ...base, event: 'connect', count: 20, bytesIngress: 0, bytesEgress: 0, durN: 0, durSum: 0, sketch: undefined });
      const sketch = newSketch();
      let sum = 0;
      for (let i = 0; i < 20; i++) {
        const d = duration();
        sketch.accept(d);
        sum += d;
      }
      batch.push({ ...base, event: 'disconnect', count: 20, bytesIngress: 20_000, bytesEgress: 200_000, durN: 20, durSum: sum, sketch });
    }
    if (!store.write(batch)) throw new Error('write deferred');
  }
  const fillMs = performance.now() - t0;
  api.read((db) => db.pragma('wal_checkpoint(TRUNCATE)'));
  const dayRows = DAY_MIN * APPS * 2;
  console.log(`fill  ${DAY_MIN} minutes × ${APPS} apps: ${dayRows} rows, ${(fileSize(f) / 1e6).toFixed(1)} MB, ${(fillMs / 1000).toFixed(1)} s`);
  const until = new Date(T0 + DAY_MIN * 60_000).toISOString();
  const since = new Date(T0).toISOString();
  const cases: Array<[string, 'summary' | 'bytime', Record<string, unknown>]> = [
    ['summary by appID: count, bytes', 'summary', { metrics: ['count', 'bytesIngress', 'bytesEgress', 'durationAvg'], dimensions: ['appID'] }],
    ['summary by appID: + median, 90th, 99th', 'summary', { metrics: ['count', 'durationMedian', 'duration90th', 'duration99th'], dimensions: ['appID'] }],
    ['bytime hour by appID, event: count, bytes', 'bytime', { metrics: ['count', 'bytesEgress'], dimensions: ['appID', 'event'], time_delta: 'hour' }],
    ['bytime minute, one app (filter): count, 99th', 'bytime', { metrics: ['count', 'duration99th'], filters: 'appID==app7', time_delta: 'minute' }],
  ];
  for (const [name, kind, params] of cases) {
    const q = parseAnalyticsQuery(ZONE, { ...params, since, until }, T0 + DAY_MIN * 60_000, kind);
    if ('code' in q) throw new Error(`${name}: ${q.message}`);
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < RUNS; i++) {
      const s = performance.now();
      rows = query(store, q).rows;
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    results.push({ phase: 'query', name, minutes: DAY_MIN, apps: APPS, storedRows: dayRows, resultRows: rows, medianMs: +median.toFixed(1), runs: RUNS });
    console.log(`query ${name}: ${median.toFixed(1)} ms median of ${RUNS} (${rows} result rows)`);
  }
  api.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
mkdirSync('bench/results', { recursive: true });
const out = `bench/results/analytics-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`;
for (const r of results) appendFileSync(out, JSON.stringify({ ...r, quick, node: process.version }) + '\n');
console.log(`raw figures: ${out}`);
