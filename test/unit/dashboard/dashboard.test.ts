/**
 * The dashboard's server side without a browser: the bundle builds, every API route the browser code calls is a
 * documented route (ROUTE_DOCS), the static pages are served without credentials with a CSP naming no external
 * origin and revalidation headers, a failed bundle or `api.dashboard: false` leaves the API working, and the live
 * endpoints (engine states, event stream, health) report what the engine does on real loopback sockets.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Subject } from 'rxjs';
import { buildDashboard, DASHBOARD_CSP } from '../../../src/api/dashboard.ts';
import { EventStreamClient, STREAM_QUEUE } from '../../../src/api/event-stream.ts';
import { ROUTE_DOCS } from '../../../src/api/openapi.ts';
import { createToken } from '../../../src/api/tokens.ts';
import { ANALYTICS_ENDPOINTS, ENDPOINTS } from '../../../src/dashboard/api.ts';
import { bytimeQuery, CHARTS, toColumns, type Bytime } from '../../../src/dashboard/analytics-data.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';
import { freePort, startApi, ZONE, ZONE2 } from '../api/harness.ts';

async function echoServer(): Promise<net.Server> {
  const s = net.createServer((c) => c.pipe(c));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return s;
}

async function echoed(port: number): Promise<net.Socket> {
  const sock = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.once('data', () => resolve());
    sock.write('x');
  });
  return sock;
}

/** Polls `probe` every 20 ms until it returns true (a bound of 5 s, not a speed assertion). */
async function until(what: string, probe: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`not within 5 s: ${what}`);
}

describe('dashboard bundle and routes', () => {
  it('bundles src/dashboard (JS and CSS, uPlot styles included)', async () => {
    const r = await buildDashboard();
    assert.ok(r.ok, r.ok ? '' : r.message);
    assert.ok(r.bundle.js.length > 10_000);
    assert.match(r.bundle.css, /\.uplot/, "uPlot's CSS is in app.css");
    assert.match(r.bundle.css, /\.diagram/, "the dashboard's own CSS is in app.css");
  });

  it('a missing entry is a failed build, not a throw', async () => {
    const r = await buildDashboard('/nonexistent/main.tsx');
    assert.equal(r.ok, false);
  });

  it('calls only documented API routes', () => {
    for (const route of [...Object.values(ENDPOINTS), ...Object.values(ANALYTICS_ENDPOINTS)]) assert.ok(ROUTE_DOCS[route] !== undefined, `${route} is in ROUTE_DOCS`);
  });

  it('serves the pages without credentials, with a CSP of no external origin and revalidation', async () => {
    const api = await startApi();
    try {
      const root = api.base.replace('/client/v4', '');
      const html = await fetch(`${root}/dashboard/`);
      assert.equal(html.status, 200);
      assert.match(html.headers.get('content-type') ?? '', /^text\/html/);
      const csp = html.headers.get('content-security-policy') ?? '';
      assert.equal(csp, DASHBOARD_CSP);
      for (const directive of csp.split(';')) {
        for (const source of directive.trim().split(/\s+/).slice(1)) assert.ok(["'self'", "'none'", 'data:'].includes(source), `${directive}: ${source}`);
      }
      const text = await html.text();
      assert.match(text, /src="app\.js"/);
      assert.doesNotMatch(text, /https?:\/\//, 'nothing loaded from elsewhere');
      const js = await fetch(`${root}/dashboard/app.js`);
      assert.equal(js.status, 200);
      assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
      assert.equal(js.headers.get('cache-control'), 'no-cache');
      const tag = js.headers.get('etag');
      assert.ok(tag);
      await js.text();
      const again = await fetch(`${root}/dashboard/app.js`, { headers: { 'if-none-match': tag } });
      assert.equal(again.status, 304);
      const css = await fetch(`${root}/dashboard/app.css`);
      assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
      await css.text();
      const bare = await fetch(`${root}/dashboard`, { redirect: 'manual' });
      assert.equal(bare.status, 301);
      assert.equal(bare.headers.get('location'), '/dashboard/');
      // The API itself still wants a token.
      assert.equal((await api.call('GET', '/zones', undefined, { auth: false })).status, 401);
    } finally {
      await api.close();
    }
  });

  it('a failed bundle answers 503 E_DASHBOARD_BUILD and the API keeps working', async () => {
    const api = await startApi({}, { dashboardBundle: async () => ({ ok: false, message: 'broken on purpose' }) });
    try {
      const r = await fetch(api.base.replace('/client/v4', '/dashboard/app.js'));
      assert.equal(r.status, 503);
      const body = (await r.json()) as { errors: Array<{ refract_code: string; message: string }> };
      assert.equal(body.errors[0]?.refract_code, 'E_DASHBOARD_BUILD');
      assert.match(body.errors[0]?.message ?? '', /broken on purpose/);
      assert.equal((await api.call('GET', '/zones')).status, 200);
    } finally {
      await api.close();
    }
  });

  it('api.dashboard: false answers 404 E_DASHBOARD_DISABLED', async () => {
    const api = await startApi({}, { dashboard: false });
    try {
      const r = await fetch(api.base.replace('/client/v4', '/dashboard/'));
      assert.equal(r.status, 404);
      assert.equal(((await r.json()) as { errors: Array<{ refract_code: string }> }).errors[0]?.refract_code, 'E_DASHBOARD_DISABLED');
    } finally {
      await api.close();
    }
  });
});

describe('analytics charts', () => {
  it("the charts' bytime queries are answered by the real endpoint and their columns hold the traffic", async () => {
    // An echo origin and an app that refuses (port 1): 3 echoed connections of 4 bytes each way, 1 origin error.
    const echo = await echoServer();
    const [port, deadPort] = [await freePort(), await freePort()];
    const api = await startApi({
      edge: { addresses: ['127.0.0.1'] },
      apps: [
        { id: 'echo', protocol: `tcp/${port}`, dns: { type: 'CNAME', name: 'echo.example.com' }, origin_direct: [`tcp://127.0.0.1:${(echo.address() as AddressInfo).port}`] },
        { id: 'dead', protocol: `tcp/${deadPort}`, dns: { type: 'CNAME', name: 'dead.example.com' }, origin_direct: ['tcp://127.0.0.1:1'] },
      ],
    });
    try {
      for (let i = 0; i < 3; i++) {
        const s = await echoed(port);
        s.write('abc');
        await new Promise<void>((r) => s.once('data', () => r()));
        s.end();
        await new Promise<void>((r) => s.on('close', () => r()));
      }
      const dead = net.connect({ host: '127.0.0.1', port: deadPort });
      await new Promise<void>((r) => dead.on('close', () => r()).on('error', () => undefined));
      await until('4 closing events are in the rollup', () => api.writer.rollup.events === 8);
      const answers = new Map<string, ReturnType<typeof toColumns>>();
      for (const spec of CHARTS) {
        const r = await api.call('GET', `/zones/${ZONE.id}/spectrum/analytics/events/bytime?${bytimeQuery(spec, Date.now() + 1000)}`);
        assert.equal(r.status, 200, JSON.stringify(r.json));
        const result = r.json.result as Bytime;
        assert.ok((result.time_intervals?.length ?? 0) >= 60, 'an hour of minutes');
        const cols = toColumns(result, spec.metrics, (id) => (id === 'echo' ? 'echo.example.com' : id));
        assert.ok(cols.series.every((s) => s.values.length === cols.x.length));
        answers.set(spec.id, cols);
      }
      const sum = (id: string, label: string): number => answers.get(id)!.series.find((s) => s.label === label)?.values.reduce((a, b) => a + b, 0) ?? -1;
      assert.equal(sum('connections', 'echo.example.com'), 3);
      assert.equal(sum('connections', 'dead'), 1);
      assert.equal(sum('bytes', 'echo.example.com in'), 12, "the client's 4 bytes (x, abc) per connection");
      assert.equal(sum('bytes', 'echo.example.com out'), 12, "the origin's echo");
      assert.equal(sum('statuses', 'disconnect'), 3);
      assert.equal(sum('statuses', 'originError'), 1);
      assert.equal(answers.get('statuses')!.series.some((s) => s.label === 'connect'), false, 'connect is filtered out');
    } finally {
      await api.close();
      await new Promise<void>((r) => echo.close(() => r()));
    }
  });
});

describe('live endpoints', () => {
  it('counts open connections per state, limited to the apps of a zone-limited token', async () => {
    const echo = await echoServer();
    const port = await freePort();
    const api = await startApi({
      zones: [ZONE, ZONE2],
      edge: { addresses: ['127.0.0.1'] },
      apps: [{ id: 'echo', protocol: `tcp/${port}`, dns: { type: 'CNAME', name: 'echo.example.com' }, origin_direct: [`tcp://127.0.0.1:${(echo.address() as AddressInfo).port}`] }],
    });
    const socks: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) socks.push(await echoed(port));
      const r = await api.call('GET', '/refract/engine/states');
      assert.equal(r.status, 200);
      assert.equal(r.json.result.tcp.active, 3);
      assert.equal(r.json.result.tcp.states['established'], 3);
      assert.equal(r.json.result.tcp.states['established.c2s.open'], 3);
      assert.equal(r.json.result.udp.active, 0);
      socks[0]!.end();
      await until('one side half-closed or closed', async () => {
        const s = (await api.call('GET', '/refract/engine/states')).json.result.tcp.states as Record<string, number>;
        return (s['established.c2s.open'] ?? 0) === 2;
      });
      const other = createToken(api.store, 'other zone', new Date(0), { permissions: ['analytics:read'], zones: [ZONE2.id] }).token;
      const limited = await api.call('GET', '/refract/engine/states', undefined, { auth: other });
      assert.equal(limited.json.result.tcp.active, 0, 'a token of another zone sees none of these');
      const noPerm = createToken(api.store, 'apps only', new Date(0), { permissions: ['apps:read'] }).token;
      assert.equal((await api.call('GET', '/refract/engine/states', undefined, { auth: noPerm })).status, 403);
      const machines = await api.call('GET', '/refract/machines');
      const tcp = (machines.json.result as Array<{ id: string; states: Array<{ id: string }> }>).find((m) => m.id === 'tcpConnection');
      assert.ok(tcp?.states.some((s) => s.id === 'established.c2s.open'));
    } finally {
      for (const s of socks) s.destroy();
      await api.close();
      await new Promise<void>((r) => echo.close(() => r()));
    }
  });

  it('streams events as SSE with server-side filters, and health lists applies, listeners and errors', async () => {
    const echo = await echoServer();
    const port = await freePort();
    const deadPort = await freePort();
    const api = await startApi({
      edge: { addresses: ['127.0.0.1'] },
      apps: [
        { id: 'echo', protocol: `tcp/${port}`, dns: { type: 'CNAME', name: 'echo.example.com' }, origin_direct: [`tcp://127.0.0.1:${(echo.address() as AddressInfo).port}`] },
      ],
    });
    const ctl = new AbortController();
    try {
      assert.equal((await api.call('GET', '/refract/events/stream?status=abc')).status, 400);
      const res = await fetch(`${api.base}/refract/events/stream?event=disconnect`, { headers: { authorization: `Bearer ${api.token}` }, signal: ctl.signal });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      const first = await reader.read();
      text += first.value ?? '';
      assert.match(text, /^: refract event stream/);
      const s = await echoed(port);
      s.end();
      while (!/event: spectrum\ndata: .*\n\n/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      const data = /event: spectrum\ndata: (.*)\n\n/.exec(text)?.[1];
      const ev = JSON.parse(data ?? '{}') as SpectrumEvent;
      assert.equal(ev.Event, 'disconnect', 'the connect event was filtered out by the server');
      assert.equal(ev.ApplicationName, 'echo.example.com');
      ctl.abort();
      // An API write and a refused origin (521) show on the health page.
      const created = await api.call('POST', `/zones/${ZONE.id}/spectrum/apps`, { protocol: `tcp/${deadPort}`, dns: { type: 'CNAME', name: 'dead.example.com' }, origin_direct: ['tcp://127.0.0.1:1'] });
      assert.equal(created.status, 200);
      const dead = net.connect({ host: '127.0.0.1', port: deadPort });
      await new Promise<void>((r) => dead.on('close', () => r()).on('error', () => undefined));
      await until('the refused connection is in recent errors', async () => (await api.call('GET', '/refract/health')).json.result.errors.length > 0);
      const h = (await api.call('GET', '/refract/health')).json.result;
      assert.deepEqual(h.applies.map((a: { trigger: string; ok: boolean }) => `${a.trigger}:${a.ok}`), ['api:true', 'start:true']);
      assert.equal(h.applies[0].added, 1);
      assert.deepEqual(h.listeners.map((l: { port: number }) => l.port).sort(), [port, deadPort].sort());
      assert.equal(h.errors[0].appName, 'dead.example.com');
      assert.ok(h.errors[0].status >= 500, `status ${h.errors[0].status}`);
      assert.ok(h.uptimeSec >= 0);
    } finally {
      ctl.abort();
      await api.close();
      await new Promise<void>((r) => echo.close(() => r()));
    }
  });

  it('a slow reader gets a bounded queue: events past it are dropped and counted', () => {
    const writes: string[] = [];
    let accept = true;
    const res = Object.assign(new EventEmitter(), {
      writableEnded: false,
      write(t: string) {
        writes.push(t);
        return accept;
      },
      end() {
        this.writableEnded = true;
      },
    }) as unknown as ServerResponse;
    const events = new Subject<SpectrumEvent>();
    const ev = (i: number) => ({ Event: 'connect', Application: 'a', ApplicationName: 'a', Status: 0, ConnectionID: String(i) }) as SpectrumEvent;
    let ended = 0;
    const client = new EventStreamClient(res, events, () => true, () => ended++);
    accept = false; // the socket's buffer is full from the next write on
    events.next(ev(0)); // written, and now the client waits for 'drain'
    const extra = 10;
    for (let i = 1; i <= STREAM_QUEUE + extra; i++) events.next(ev(i));
    assert.equal(writes.length, 2, 'the opening comment and one event; the rest wait');
    assert.equal(client.dropped, extra);
    accept = true;
    res.emit('drain');
    assert.equal(writes.length, 2 + STREAM_QUEUE);
    assert.match(writes[2] ?? '', new RegExp(`^event: dropped\\ndata: \\{"dropped":${extra}\\}`));
    res.emit('close');
    assert.equal(ended, 1);
    assert.equal(events.observed, false, 'unsubscribed when the client went away');
  });
});
