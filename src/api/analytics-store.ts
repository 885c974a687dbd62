/**
 * The analytics store: the rollup rows of src/streams/analytics.ts in the API's SQLite database (table `analytics`,
 * migration 8), written a completed minute at a time in one transaction, never per event.
 *
 * - `AnalyticsStore` writes rows (merging into a row that exists: counts add, sketches merge), applies retention
 *   (rows older than `retentionDays` go) and downsampling (minute rows older than a day become hour rows), and
 *   reads grouped figures for the queries (src/api/analytics-query.ts).
 * - `AnalyticsWriter` feeds a `MinuteRollup` from the edge's events and, on the Clock port's timers, hands each
 *   completed minute to the store; `close()` writes the open minutes too (a crash loses at most those).
 */
import type { Observable, Subscription } from 'rxjs';
import type Database from 'better-sqlite3';
import type { SpectrumEvent } from '../streams/events.ts';
import {
  feedRollup,
  HOUR_SEC,
  mergeInto,
  MINUTE_SEC,
  MinuteRollup,
  rowKey,
  sketchFromBytes,
  sketchToBytes,
  type RollupRow,
} from '../streams/analytics.ts';
import type { ApiStore } from './store.ts';

/** Default retention of analytics rows, days (`analytics.retention_days`). */
export const DEFAULT_RETENTION_DAYS = 7;
/** Minute rows older than this become hour rows, seconds. */
export const DOWNSAMPLE_AFTER_SEC = 86_400;

/** The part of the Clock port the writer needs (src/api does not import src/net). */
export interface AnalyticsClock {
  epochMs(): number;
  setTimer(ms: number, fn: () => void): () => void;
}

interface DbRow {
  res: number;
  t: number;
  zone_id: string;
  app_id: string;
  event: string;
  ip_version: number;
  colo: string;
  count: number;
  bytes_ingress: number;
  bytes_egress: number;
  dur_n: number;
  dur_sum: number;
  sketch: Buffer | null;
}

function fromDb(r: DbRow): RollupRow {
  return {
    res: r.res,
    t: r.t,
    zone: r.zone_id,
    app: r.app_id,
    event: r.event,
    ipVersion: r.ip_version === 6 ? 6 : 4,
    colo: r.colo,
    count: r.count,
    bytesIngress: r.bytes_ingress,
    bytesEgress: r.bytes_egress,
    durN: r.dur_n,
    durSum: r.dur_sum,
    sketch: r.sketch === null ? undefined : sketchFromBytes(r.sketch),
  };
}

export class AnalyticsStore {
  readonly #api: ApiStore;
  readonly retentionDays: number;
  /** Rows not written yet (the writer's open minutes); the queries merge them. */
  pending: () => readonly RollupRow[] = () => [];
  /** Rows that could not be written yet because an API write was open; written with the next batch. */
  #backlog: RollupRow[] = [];

  constructor(api: ApiStore, opts: { retentionDays?: number | undefined } = {}) {
    this.#api = api;
    this.retentionDays = opts.retentionDays ?? DEFAULT_RETENTION_DAYS;
  }

  /** Unwritten rows: the backlog and the open minutes. */
  unwritten(): readonly RollupRow[] {
    return this.#backlog.length === 0 ? this.pending() : [...this.#backlog, ...this.pending()];
  }

  /**
   * Writes `rows` (and any backlog) in one transaction; a row whose key exists is merged into it. False when an API
   * write is open: the rows wait in the backlog for the next call.
   */
  write(rows: readonly RollupRow[]): boolean {
    const all = this.#backlog.length === 0 ? rows : [...this.#backlog, ...rows];
    if (all.length === 0) return true;
    const done = this.#api.runAside((db) => writeRows(db, all));
    this.#backlog = done ? [] : [...all];
    return done;
  }

  /**
   * Retention and downsampling at `nowSec` (epoch seconds), in one transaction: rows whose bucket started before
   * now − retention go; minute rows of whole hours older than a day are merged into hour rows. False when an API
   * write was open (nothing done; call again later).
   */
  maintain(nowSec: number): boolean {
    const keepFrom = nowSec - this.retentionDays * 86_400;
    const hourEdge = Math.floor((nowSec - DOWNSAMPLE_AFTER_SEC) / HOUR_SEC) * HOUR_SEC;
    return this.#api.runAside((db) => {
      db.prepare('DELETE FROM analytics WHERE t < ?').run(keepFrom);
      const old = db.prepare('SELECT * FROM analytics WHERE res = ? AND t < ?').all(MINUTE_SEC, hourEdge) as DbRow[];
      if (old.length === 0) return;
      const hours = new Map<string, RollupRow>();
      for (const r of old) {
        const m = fromDb(r);
        const h: RollupRow = { ...m, res: HOUR_SEC, t: Math.floor(m.t / HOUR_SEC) * HOUR_SEC, count: 0, bytesIngress: 0, bytesEgress: 0, durN: 0, durSum: 0, sketch: undefined };
        const key = rowKey(h);
        const into = hours.get(key) ?? h;
        hours.set(key, into);
        mergeInto(into, m);
      }
      db.prepare('DELETE FROM analytics WHERE res = ? AND t < ?').run(MINUTE_SEC, hourEdge);
      writeRows(db, [...hours.values()]);
    });
  }

  /** Every stored row of `zone` whose bucket starts in [sinceSec, untilSec) (tests, the sim summary). */
  rows(zone: string, sinceSec: number, untilSec: number): RollupRow[] {
    return this.#api.read((db) => (db.prepare('SELECT * FROM analytics WHERE zone_id = ? AND t >= ? AND t < ?').all(zone, sinceSec, untilSec) as DbRow[]).map(fromDb));
  }

  /** Every stored row (tests). */
  allRows(): RollupRow[] {
    return this.#api.read((db) => (db.prepare('SELECT * FROM analytics ORDER BY t, res, zone_id, app_id, event, ip_version, colo').all() as DbRow[]).map(fromDb));
  }

  /** Runs a read on the database (the query module builds its SQL there). */
  read<T>(f: (db: Database.Database) => T): T {
    return this.#api.read(f);
  }
}

function writeRows(db: Database.Database, rows: readonly RollupRow[]): void {
  const get = db.prepare('SELECT * FROM analytics WHERE zone_id = ? AND t = ? AND res = ? AND app_id = ? AND event = ? AND ip_version = ? AND colo = ?');
  const put = db.prepare(
    `INSERT OR REPLACE INTO analytics (res, t, zone_id, app_id, event, ip_version, colo, count, bytes_ingress, bytes_egress, dur_n, dur_sum, sketch)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  for (const r0 of rows) {
    let r = r0;
    const had = get.get(r.zone, r.t, r.res, r.app, r.event, r.ipVersion, r.colo) as DbRow | undefined;
    if (had !== undefined) {
      r = fromDb(had);
      mergeInto(r, r0);
    }
    put.run(r.res, r.t, r.zone, r.app, r.event, r.ipVersion, r.colo, r.count, r.bytesIngress, r.bytesEgress, r.durN, r.durSum, r.sketch === undefined ? null : Buffer.from(sketchToBytes(r.sketch)));
  }
}

/**
 * Feeds the edge's events into a rollup and writes each completed minute to the store: a timer fires just after
 * every minute boundary (and retries in a second when an API write held the database); maintenance runs once an
 * hour. `close()` stops the feed and writes the open minutes.
 */
export class AnalyticsWriter {
  readonly rollup = new MinuteRollup();
  readonly #store: AnalyticsStore;
  readonly #clock: AnalyticsClock;
  readonly #sub: Subscription;
  #cancel: (() => void) | undefined;
  #lastMaintainHour = -1;
  #closed = false;

  constructor(deps: { store: AnalyticsStore; clock: AnalyticsClock; events$: Observable<SpectrumEvent>; zoneOf: (appId: string) => string }) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#sub = feedRollup(deps.events$, this.rollup, deps.zoneOf);
    deps.store.pending = () => this.rollup.pending();
    this.#arm();
  }

  #arm(retryMs?: number): void {
    if (this.#closed) return;
    const now = this.#clock.epochMs();
    const next = retryMs ?? MINUTE_SEC * 1000 - (now % (MINUTE_SEC * 1000)) + 50;
    this.#cancel = this.#clock.setTimer(next, () => this.#tick());
  }

  #tick(): void {
    const ok = this.flush();
    this.#arm(ok ? undefined : 1000);
  }

  /** Writes the completed minutes (and runs maintenance once an hour); false when the database was busy. */
  flush(): boolean {
    const nowSec = Math.floor(this.#clock.epochMs() / 1000);
    const done = this.#store.write(this.rollup.takeBefore(Math.floor(nowSec / MINUTE_SEC) * MINUTE_SEC));
    const hour = Math.floor(nowSec / HOUR_SEC);
    if (done && hour !== this.#lastMaintainHour && this.#store.maintain(nowSec)) this.#lastMaintainHour = hour;
    return done;
  }

  /** Stops feeding and writes every open minute (a busy database: the rows stay in the store's backlog). */
  close(): boolean {
    if (this.#closed) return true;
    this.#closed = true;
    this.#cancel?.();
    this.#sub.unsubscribe();
    const rows = this.rollup.takeAll();
    this.#store.pending = () => [];
    return this.#store.write(rows);
  }
}


/**
 * An app id → zone id lookup over the running config (`config()` is read on every call; the map is rebuilt only when
 * the config object changes). An app without a zone, or unknown, maps to ''.
 */
export function zoneOfApp(config: () => { readonly apps: ReadonlyArray<{ readonly id: string; readonly zoneId: string | undefined }> }): (appId: string) => string {
  let seen: unknown;
  let map = new Map<string, string>();
  return (appId) => {
    const c = config();
    if (c !== seen) {
      seen = c;
      map = new Map(c.apps.map((a) => [a.id, a.zoneId ?? '']));
    }
    return map.get(appId) ?? '';
  };
}
