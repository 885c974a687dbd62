/**
 * Spectrum analytics through Cloudflare's official SDK: a known load goes through the real edge (connections to a
 * banner+echo origin with known bytes, and connections to an app whose origin refuses), then
 * `analytics.aggregates.currents`, `analytics.events.summaries` and `analytics.events.bytimes` return exactly those
 * counts and bytes, first from the open minute in memory ("current" traffic), then from the database once written.
 * Bad parameters answer 400 with the code naming the bad part.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { delay, exchange, startOrigin } from '../../helpers/edge.ts';
import { freePort, startApi, ZONE, type ApiUnderTest } from './harness.ts';

const BANNER = '220 refract test\r\n';
const GOOD = 6;
const REFUSED = 3;
const payload = (i: number): string => 'x'.repeat(10 * (i + 1));

describe('analytics endpoints with the cloudflare SDK after a known load', () => {
  let api: ApiUnderTest;
  let cf: Cloudflare;
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let good: string;
  let bad: string;
  const sentBytes = Array.from({ length: GOOD }, (_, i) => payload(i).length).reduce((a, b) => a + b, 0);

  before(async () => {
    api = await startApi({ node: { id: 'SFO' }, edge: { addresses: ['127.0.0.1'] } });
    cf = new Cloudflare({ apiToken: api.token, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    origin = await startOrigin({ mode: 'banner', banner: BANNER });
    const refusedPort = await freePort(); // nothing listens there
    const [pg, pb] = [await freePort(), await freePort()];
    good = (await cf.spectrum.apps.create({ zone_id: ZONE.id, dns: { type: 'CNAME', name: 'good.example.com' }, protocol: `tcp/${pg}`, origin_direct: [`tcp://127.0.0.1:${origin.port}`] })).id;
    bad = (await cf.spectrum.apps.create({ zone_id: ZONE.id, dns: { type: 'CNAME', name: 'bad.example.com' }, protocol: `tcp/${pb}`, origin_direct: [`tcp://127.0.0.1:${refusedPort}`] })).id;
    for (let i = 0; i < GOOD; i++) {
      const r = await exchange(pg, payload(i), { timeoutMs: 3000 });
      assert.equal(r.data.toString(), BANNER + payload(i));
    }
    for (let i = 0; i < REFUSED; i++) await exchange(pb, 'hello', { timeoutMs: 3000 });
    // Every connection's two events reach the rollup (the closing one may follow the client's close by a moment).
    for (let i = 0; i < 200 && api.writer.rollup.events < 2 * (GOOD + REFUSED); i++) await delay(10);
    assert.equal(api.writer.rollup.events, 2 * (GOOD + REFUSED));
  });
  after(async () => {
    await api.close();
    await origin.close();
  });

  const checkAll = async (): Promise<void> => {
    const cur = await cf.spectrum.analytics.aggregates.currents.get({ zone_id: ZONE.id, appID: `${good},${bad}` });
    const byApp = Object.fromEntries(cur.map((c) => [c.appID, c]));
    assert.deepEqual(Object.keys(byApp).sort(), [good, bad].sort());
    assert.equal(byApp[good]!.connections, GOOD);
    assert.equal(byApp[good]!.bytesIngress, sentBytes, 'ingress: bytes from the client');
    assert.equal(byApp[good]!.bytesEgress, sentBytes + GOOD * BANNER.length, 'egress: bytes from the origin to the client');
    assert.ok(byApp[good]!.durationAvg > 0);
    assert.equal(byApp[bad]!.connections, REFUSED);
    assert.equal(byApp[bad]!.bytesIngress + byApp[bad]!.bytesEgress, 0);

    // Another colo: nothing.
    assert.deepEqual((await cf.spectrum.analytics.aggregates.currents.get({ zone_id: ZONE.id, colo_name: 'LHR' })).map((c) => c.connections), []);

    // Twelve whole minutes, the last one holding now.
    const start = (Math.floor(Date.now() / 60_000) - 10) * 60_000;
    const since = new Date(start).toISOString();
    const until = new Date(start + 12 * 60_000).toISOString();
    const sum = await cf.spectrum.analytics.events.summaries.get({
      zone_id: ZONE.id,
      metrics: ['count', 'bytesIngress', 'bytesEgress', 'durationMedian'],
      dimensions: ['appID', 'event', 'coloName', 'ipVersion'],
      sort: ['-count', '+event'],
      since,
      until,
    });
    const rows = sum.data.map((d) => [...(d.dimensions ?? []), ...(d.metrics as number[]).slice(0, 3)]);
    const expected = [
      [good, 'connect', 'SFO', '4', GOOD, 0, 0],
      [good, 'disconnect', 'SFO', '4', GOOD, sentBytes, sentBytes + GOOD * BANNER.length],
      [bad, 'connect', 'SFO', '4', REFUSED, 0, 0],
      [bad, 'originError', 'SFO', '4', REFUSED, 0, 0],
    ];
    assert.deepEqual(rows, expected);
    assert.equal(sum.rows, 4);
    assert.equal(sum.totals['count'], 2 * (GOOD + REFUSED));
    assert.equal(sum.max['count'], GOOD);
    assert.equal(sum.min['count'], REFUSED);
    assert.deepEqual(sum.query.metrics, ['count', 'bytesIngress', 'bytesEgress', 'durationMedian']);

    const filtered = await cf.spectrum.analytics.events.summaries.get({ zone_id: ZONE.id, metrics: ['count'], dimensions: ['appID'], filters: `event==originError,event==disconnect;appID==${good}`, since, until });
    assert.deepEqual(filtered.data.map((d) => [d.dimensions?.[0], (d.metrics as number[])[0]]).sort(), [[good, GOOD], [bad, REFUSED]].sort());

    const bt = await cf.spectrum.analytics.events.bytimes.get({ zone_id: ZONE.id, time_delta: 'minute', metrics: ['count', 'bytesIngress'], dimensions: ['event'], since, until });
    assert.equal(bt.time_intervals?.length, 12);
    const series = Object.fromEntries(bt.data.map((d) => [d.dimensions![0], d.metrics as number[][]]));
    const total = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    assert.equal(total(series['connect']![0]!), GOOD + REFUSED);
    assert.equal(total(series['disconnect']![1]!), sentBytes);
    assert.equal(total(series['originError']![0]!), REFUSED);
    for (const s of Object.values(series)) assert.equal((s as number[][])[0]!.length, 12);
  };

  it('counts the traffic that just happened (the open minute, not written yet)', async () => {
    assert.equal(api.analytics.allRows().length, 0, 'nothing written yet');
    await checkAll();
  });

  it('gives the same figures once the minutes are written to the database', async () => {
    assert.ok(api.analytics.write(api.writer.rollup.takeAll()));
    assert.ok(api.analytics.allRows().length >= 4);
    assert.equal(api.analytics.unwritten().length, 0);
    await checkAll();
  });

  it('answers 400 with a code naming the bad parameter', async () => {
    const base = `/zones/${ZONE.id}/spectrum/analytics/events`;
    const cases: Array<[string, string]> = [
      [`${base}/summary?metrics=count&metrics=bogus`, 'E_API_ANALYTICS_METRIC'],
      [`${base}/summary?dimensions=appID,colo`, 'E_API_ANALYTICS_DIMENSION'],
      [`${base}/summary?dimensions=appID&dimensions=appID`, 'E_API_ANALYTICS_DIMENSION'],
      [`${base}/summary?filters=${encodeURIComponent('status==200')}`, 'E_API_ANALYTICS_FILTER'],
      [`${base}/summary?filters=${encodeURIComponent('event=~connect')}`, 'E_API_ANALYTICS_FILTER'],
      [`${base}/summary?filters=${encodeURIComponent('event==connect;ipVersion==four')}`, 'E_API_ANALYTICS_FILTER'],
      [`${base}/summary?filters=${encodeURIComponent('event==')}`, 'E_API_ANALYTICS_FILTER'],
      [`${base}/summary?metrics=count&sort=-bytesIngress`, 'E_API_ANALYTICS_SORT'],
      [`${base}/summary?since=yesterday`, 'E_API_ANALYTICS_TIME'],
      [`${base}/summary?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z`, 'E_API_ANALYTICS_TIME'],
      [`${base}/summary?limit=0`, 'E_API_ANALYTICS_LIMIT'],
      [`${base}/bytime?metrics=count`, 'E_API_ANALYTICS_TIME_DELTA'],
      [`${base}/bytime?time_delta=fortnight`, 'E_API_ANALYTICS_TIME_DELTA'],
      [`${base}/bytime?time_delta=minute&since=2025-01-01T00:00:00Z&until=2026-01-01T00:00:00Z`, 'E_API_ANALYTICS_TIME_DELTA'],
    ];
    for (const [path, code] of cases) {
      const r = await api.call('GET', path);
      assert.equal(r.status, 400, path);
      assert.equal(r.json.success, false);
      assert.equal(r.json.errors[0].refract_code, code, path);
      assert.equal(r.json.errors[0].code, 1000);
    }
    // Through the SDK: a BadRequestError carrying the code.
    await assert.rejects(
      cf.spectrum.analytics.events.summaries.get({ zone_id: ZONE.id, metrics: ['nope' as 'count'] }),
      (e: { status?: number; errors?: Array<{ refract_code?: string }> }) => e.status === 400 && e.errors?.[0]?.refract_code === 'E_API_ANALYTICS_METRIC',
    );
    // An unknown zone is a 404.
    const nz = await api.call('GET', `/zones/${'0'.repeat(32)}/spectrum/analytics/aggregate/current`);
    assert.equal(nz.status, 404);
    assert.equal(nz.json.errors[0].refract_code, 'E_API_ZONE_NOT_FOUND');
  });
});
