/**
 * Analytics in the simulator: every edge's Spectrum events (each incarnation's) folded into the same per-minute
 * rollup `refract serve` writes (src/streams/analytics.ts, buckets from the events' own virtual Timestamps), and the
 * bytime table read from it with the API's own query (src/api/analytics-query.ts) over a throwaway `:memory:`
 * store: per minute, app and event, the count and bytes each way.
 *
 * The rollup (two folds per connection) and the table run, and the table goes in the report, only when asked
 * (`refract sim` asks; a scenario with `expect.analytics` asks), so reports of scenarios that do not ask keep their
 * pinned digests and their runs skip the work. Zones play no part: every app is rolled up under one key.
 */
import { ApiStore } from '../api/store.ts';
import { AnalyticsStore } from '../api/analytics-store.ts';
import { DEFAULT_LIMIT, query } from '../api/analytics-query.ts';
import { MINUTE_SEC, MinuteRollup } from '../streams/analytics.ts';
import type { SpectrumEvent } from '../streams/events.ts';

/** One line of the bytime table: a minute (its start, RFC 3339), an app, an event. */
export interface AnalyticsRow {
  readonly minute: string;
  /** The app id ('' for events of no app). */
  readonly app: string;
  /** The app's DNS name, as its last event gave it. */
  readonly name: string;
  readonly event: string;
  readonly count: number;
  /** Bytes from clients (the closing events' ClientBytes). */
  readonly bytesIngress: number;
  /** Bytes to clients (the closing events' OriginBytes). */
  readonly bytesEgress: number;
}

/** The zone key every simulated app is rolled up under. */
const SIM_ZONE = '';

export class SimAnalytics {
  readonly rollup = new MinuteRollup();
  readonly #names = new Map<string, string>();

  /** Folds one event of any edge. */
  add(e: SpectrumEvent): void {
    this.#names.set(e.Application, e.ApplicationName);
    this.rollup.add(e, SIM_ZONE);
  }

  /**
   * The bytime table: `events/bytime` with metrics count, bytesIngress, bytesEgress, dimensions appID and event,
   * time_delta minute, from the first minute with an event to the end of the last; only the non-empty cells, by
   * minute, then DNS name, then event.
   */
  table(): AnalyticsRow[] {
    const pending = this.rollup.pending();
    if (pending.length === 0) return [];
    const first = Math.min(...pending.map((r) => r.t));
    const last = Math.max(...pending.map((r) => r.t));
    const api = new ApiStore(':memory:');
    try {
      const store = new AnalyticsStore(api);
      store.pending = () => this.rollup.pending();
      const r = query(store, {
        zone: SIM_ZONE,
        metrics: ['count', 'bytesIngress', 'bytesEgress'],
        dimensions: ['appID', 'event'],
        filters: [],
        since: first * 1000,
        until: (last + MINUTE_SEC) * 1000,
        sort: [],
        limit: DEFAULT_LIMIT,
        timeDelta: 'minute',
      });
      const rows: AnalyticsRow[] = [];
      for (const d of r.data) {
        const [app = '', event = ''] = d.dimensions;
        const [count = [], bi = [], be = []] = d.metrics as number[][];
        (r.time_intervals ?? []).forEach(([start = ''], i) => {
          if ((count[i] ?? 0) === 0) return;
          rows.push({ minute: start, app, name: this.#names.get(app) ?? app, event, count: count[i] ?? 0, bytesIngress: bi[i] ?? 0, bytesEgress: be[i] ?? 0 });
        });
      }
      const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
      return rows.sort((a, b) => cmp(a.minute, b.minute) || cmp(a.name, b.name) || cmp(a.app, b.app) || cmp(a.event, b.event));
    } finally {
      api.close();
    }
  }
}
