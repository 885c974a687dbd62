/**
 * Prometheus metrics over a real edge on loopback: the counters equal the event counts of a known run, the output
 * stays parseable under concurrent scrapes while traffic flows, the active gauge follows held connections, and the
 * app label set shrinks when apps are deleted. Edge ports 8760-8779 belong to this file; origins and the metrics
 * listener bind port 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startEdge, startOrigin, exchange, mustConfig, delay } from '../../helpers/edge.ts';
import { EdgeMetrics, OTHER_APP, engineState } from '../../../src/api/metrics.ts';
import { startMetricsServer } from '../../../src/cli/metrics-server.ts';
import { startApi } from './harness.ts';
import { createToken } from '../../../src/api/tokens.ts';
import { validateConfig } from '../../../src/model/config.ts';

interface Family {
  name: string;
  type: string;
  metrics: Array<{ labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

function parse(text: string): Map<string, Family> {
  return new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
}

/** The value of the series of `name` whose labels include `match` (0 when there is none). */
function value(m: Map<string, Family>, name: string, match: Record<string, string> = {}): number {
  const f = m.get(name);
  assert.notEqual(f?.type, 'HISTOGRAM', 'histograms: use histCount');
  const s = f?.metrics.filter((x) => Object.entries(match).every(([k, v]) => x.labels?.[k] === v)) ?? [];
  return s.reduce((a, x) => a + Number(x.value), 0);
}

/**
 * The `_count` of a histogram's series with this app, read from the text: parse-prometheus-text-format 1.1.1 folds
 * labelled histograms into one label-less entry (its flattening keeps `le` only), so their series are read here.
 */
function histCount(text: string, name: string, app: string): number {
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^${name}_count\\{([^}]*)\\} (\\S+)$`, 'gm'))) if (m[1]!.includes(`app="${app}"`)) n += Number(m[2]);
  return n;
}

function appLabels(m: Map<string, Family>): Set<string> {
  const out = new Set<string>();
  for (const f of m.values()) for (const s of f.metrics) if (s.labels?.['app'] !== undefined) out.add(s.labels['app']);
  return out;
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
}

const app = (id: string, over: Record<string, unknown>) => ({ id, dns: { type: 'CNAME', name: `${id}.example.test` }, ...over });

/** A port on 127.0.0.1 that refuses connections (bound, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

test('after N proxied and M refused connections the counters equal the event counts', async () => {
  const origin = await startOrigin();
  const refused = await closedPort();
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'], max_connect_attempts: 1 },
    apps: [app('ok', { protocol: 'tcp/8760', origin_direct: [`tcp://127.0.0.1:${origin.port}`] }), app('down', { protocol: 'tcp/8761', origin_direct: [`tcp://127.0.0.1:${refused}`] })],
  });
  const metrics = new EdgeMetrics(e.edge);
  const server = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
  const N = 7;
  const M = 3;
  try {
    for (let i = 0; i < N; i++) assert.equal((await exchange(8760, `hello ${i}`)).data.toString(), `hello ${i}`);
    for (let i = 0; i < M; i++) await exchange(8761, 'x');
    await e.closing(N + M);
    const text = await scrape(`http://127.0.0.1:${server.address.port}/metrics`);
    const m = parse(text);
    const closing = e.events.filter((x) => x.Event !== 'connect');
    const count = (f: (x: (typeof e.events)[number]) => boolean): number => e.events.filter(f).length;
    assert.equal(value(m, 'refract_downstream_cx_total', { app: 'ok', proto: 'tcp' }), count((x) => x.Event === 'connect' && x.Application === 'ok'));
    assert.equal(value(m, 'refract_downstream_cx_total', { app: 'down' }), count((x) => x.Event === 'connect' && x.Application === 'down'));
    assert.equal(value(m, 'refract_downstream_cx_total', { app: 'ok' }), N);
    assert.equal(value(m, 'refract_downstream_cx_closed_total', { app: 'ok', status: '200' }), count((x) => x.Event === 'disconnect' && x.Status === 200));
    assert.equal(value(m, 'refract_downstream_cx_closed_total', { app: 'down', status: '521' }), count((x) => x.Status === 521));
    assert.equal(value(m, 'refract_downstream_cx_closed_total', { app: 'down', status: '521' }), M);
    assert.equal(value(m, 'refract_upstream_cx_connect_fail_total', { app: 'down', status: '521' }), M);
    assert.equal(value(m, 'refract_upstream_cx_established_total', { app: 'ok' }), N);
    assert.equal(value(m, 'refract_downstream_bytes_received_total', { app: 'ok' }), closing.filter((x) => x.Application === 'ok').reduce((a, x) => a + x.ClientBytes, 0));
    assert.equal(value(m, 'refract_downstream_bytes_sent_total', { app: 'ok' }), closing.filter((x) => x.Application === 'ok').reduce((a, x) => a + x.OriginBytes, 0));
    assert.ok(value(m, 'refract_downstream_bytes_sent_total', { app: 'ok' }) > 0);
    assert.equal(m.get('refract_downstream_cx_duration_seconds')?.type, 'HISTOGRAM');
    assert.equal(histCount(text, 'refract_downstream_cx_duration_seconds', 'ok'), N);
    assert.equal(histCount(text, 'refract_downstream_cx_duration_seconds', 'down'), M);
    assert.equal(histCount(text, 'refract_upstream_cx_connect_duration_seconds', 'ok'), N);
    assert.equal(histCount(text, 'refract_upstream_cx_connect_duration_seconds', 'down'), 0);
    assert.equal(value(m, 'refract_upstream_cx_connect_attempts_total'), N + M);
    assert.equal(value(m, 'refract_upstream_cx_connect_attempt_failures_total', { reason: 'error' }), M);
    assert.equal(value(m, 'refract_downstream_cx_active'), 0);
    assert.equal(value(m, 'refract_app_info', { app: 'ok', app_name: 'ok.example.test', proto: 'tcp' }), 1);
    assert.equal(value(m, 'refract_listeners', { proto: 'tcp' }), 2);
    assert.ok(m.has('process_cpu_user_seconds_total'), "prom-client's default process metrics are in the registry");
    assert.deepEqual([...appLabels(m)].sort(), ['down', 'ok'], 'labels name apps, never clients');
  } finally {
    await server.close();
    metrics.dispose();
    await e.close();
    await origin.close();
  }
});

test('20 parallel scrapes while traffic flows each parse whole, and the active gauge counts held connections', async () => {
  const origin = await startOrigin();
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app('held', { protocol: 'tcp/8762', origin_direct: [`tcp://127.0.0.1:${origin.port}`] })] });
  const metrics = new EdgeMetrics(e.edge);
  const server = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${server.address.port}/metrics`;
  const held: net.Socket[] = [];
  try {
    // Five connections held open, each proven established by an echo.
    for (let i = 0; i < 5; i++) {
      const s = net.connect(8762, '127.0.0.1');
      held.push(s);
      s.write('ping');
      await once(s, 'data');
    }
    let m = parse(await scrape(url));
    assert.equal(value(m, 'refract_downstream_cx_active', { app: 'held', proto: 'tcp' }), 5);
    assert.equal(value(m, 'refract_connections', { proto: 'tcp', state: 'established' }), 5);
    assert.equal(engineState(e.edge).tcp.byApp.get('held'), 5);

    // Traffic (bounded: 30 exchanges) and 20 concurrent scrapes at once.
    const traffic = (async () => {
      for (let i = 0; i < 30; i++) await exchange(8762, `t${i}`);
    })();
    const texts = await Promise.all(Array.from({ length: 20 }, () => scrape(url)));
    await traffic;
    for (const t of texts) {
      const p = parse(t);
      assert.ok(p.has('refract_downstream_cx_total'));
      const total = value(p, 'refract_downstream_cx_total', { app: 'held' });
      assert.ok(total >= 5 && total <= 35, `cx_total ${total} within the run's bounds`);
      // Within one scrape, each closed connection was opened.
      assert.ok(value(p, 'refract_downstream_cx_closed_total', { app: 'held' }) <= total);
    }
    await e.closing(30);
    for (const s of held.splice(0)) s.end();
    await e.closing(35);
    m = parse(await scrape(url));
    assert.equal(value(m, 'refract_downstream_cx_active', { app: 'held' }), 0);
    assert.equal(value(m, 'refract_downstream_cx_total', { app: 'held' }), 35);
    assert.equal(value(m, 'refract_downstream_cx_closed_total', { app: 'held' }), 35);
  } finally {
    for (const s of held) s.destroy();
    await server.close();
    metrics.dispose();
    await e.close();
    await origin.close();
  }
});

test('deleted apps lose their series; apps past max_apps share app="_other"', async () => {
  const origin = await startOrigin();
  const apps = [0, 1, 2, 3].map((i) => app(`a${i}`, { protocol: `tcp/${8770 + i}`, origin_direct: [`tcp://127.0.0.1:${origin.port}`] }));
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps });
  const metrics = new EdgeMetrics(e.edge, { maxApps: 2, defaultMetrics: false });
  const server = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${server.address.port}/metrics`;
  try {
    for (let i = 0; i < 4; i++) await exchange(8770 + i, 'x');
    await e.closing(4);
    let m = parse(await scrape(url));
    assert.deepEqual([...appLabels(m)].sort(), ['_other', 'a0', 'a1'].sort());
    assert.equal(value(m, 'refract_downstream_cx_total', { app: OTHER_APP }), 2);
    assert.equal(value(m, 'refract_downstream_cx_total'), 4);

    // Delete a0 and a1: their series go at the next scrape, and the remaining apps take the freed label slots
    // (their earlier counts stay under _other).
    await e.edge.apply(mustConfig({ edge: { addresses: ['127.0.0.1'] }, apps: apps.slice(2) }));
    const text = await scrape(url);
    m = parse(text);
    assert.ok(!appLabels(m).has('a0') && !appLabels(m).has('a1'));
    assert.equal(value(m, 'refract_downstream_cx_total', { app: 'a0' }), 0);
    assert.doesNotMatch(text, /app="a[01]"/, 'no series of a deleted app, histograms included');
    await exchange(8772, 'y');
    await e.closing(5);
    m = parse(await scrape(url));
    assert.deepEqual([...appLabels(m)].sort(), ['_other', 'a2', 'a3'].sort());
    assert.equal(value(m, 'refract_downstream_cx_total', { app: 'a2' }), 1);
    assert.equal(value(m, 'refract_downstream_cx_total', { app: OTHER_APP }), 2);
  } finally {
    await server.close();
    metrics.dispose();
    await e.close();
    await origin.close();
  }
});

test('GET /metrics on the API listener needs analytics:read, and counts API requests and writes', async () => {
  const api = await startApi({ metrics: {} });
  // startApi builds its server without metrics; this one has them (same store, same edge).
  const { createApiServer } = await import('../../../src/api/server.ts');
  const metrics = new EdgeMetrics(api.edge, { defaultMetrics: false });
  const server = createApiServer({ source: api.source, store: api.store, nowMs: () => performance.now(), metrics });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const root = `http://127.0.0.1:${(server.server.address() as net.AddressInfo).port}`;
  const get = (path: string, token?: string) => fetch(root + path, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
  try {
    assert.equal((await get('/metrics')).status, 401);
    const rulesOnly = createToken(api.store, 'rules', new Date(0), { permissions: ['rules:read'] }).token;
    assert.equal((await get('/metrics', rulesOnly)).status, 403);
    const scraper = createToken(api.store, 'scraper', new Date(0), { permissions: ['analytics:read'] }).token;
    const bad = await fetch(`${root}/client/v4/zones/${'0'.repeat(32)}/spectrum/apps`, { method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(bad.status, 404);
    const res = await get('/metrics', scraper);
    assert.equal(res.status, 200);
    const m = parse(await res.text());
    assert.equal(value(m, 'refract_api_requests_total', { route: '/metrics', method: 'GET', code: '401' }), 1);
    assert.equal(value(m, 'refract_api_requests_total', { route: '/metrics', method: 'GET', code: '403' }), 1);
    assert.equal(value(m, 'refract_config_reloads_total', { source: 'api', result: 'failure' }), 1);
    assert.equal(value(m, 'refract_config_reloads_total', { source: 'api', result: 'success' }), 0);
  } finally {
    await server.close();
    metrics.dispose();
    await api.close();
  }
});

test('metrics: validates listen and max_apps with coded issues, and warns off loopback', () => {
  const bad = validateConfig({ apps: [], metrics: { listen: 'nowhere', max_apps: 0, extra: 1 } });
  assert.equal(bad.ok, false);
  assert.deepEqual(
    (bad.ok ? [] : bad.issues).map((i) => [i.pointer, i.code]).sort(),
    [['/metrics/extra', 'E_CONFIG_SCHEMA'], ['/metrics/listen', 'E_CONFIG_SCHEMA'], ['/metrics/max_apps', 'E_CONFIG_SCHEMA']].sort(),
  );
  const open = validateConfig({ apps: [], metrics: { listen: '0.0.0.0' } });
  assert.ok(open.ok);
  assert.deepEqual(open.warnings.map((w) => w.code), ['W_METRICS_NOT_LOOPBACK']);
  assert.deepEqual(open.config.metrics, { listen: { host: '0.0.0.0', port: 9464 }, maxApps: 1000 });
  const off = validateConfig({ apps: [], metrics: { listen: 'off' } });
  assert.ok(off.ok);
  assert.equal(off.config.metrics?.listen, undefined);
});

test('a metrics port in use fails with E_LISTEN_ADDRESS_IN_USE naming the metrics listener', async () => {
  const e = await startEdge({ apps: [] });
  const metrics = new EdgeMetrics(e.edge, { defaultMetrics: false });
  const first = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
  try {
    await assert.rejects(startMetricsServer(metrics, { host: '127.0.0.1', port: first.address.port }), (err: { code?: string; details?: Record<string, unknown> }) => {
      assert.equal(err.code, 'E_LISTEN_ADDRESS_IN_USE');
      assert.equal(err.details?.['metrics'], true);
      return true;
    });
    const { describeStartError } = await import('../../../src/cli/serve.ts');
    const text = describeStartError(
      await startMetricsServer(metrics, { host: '127.0.0.1', port: first.address.port }).catch((x: unknown) => x),
      mustConfig({ apps: [] }),
    );
    assert.match(text, /^E_LISTEN_ADDRESS_IN_USE: 127\.0\.0\.1:\d+ for the metrics listener/);
  } finally {
    await first.close();
    metrics.dispose();
    await e.close();
    await delay(0);
  }
});
