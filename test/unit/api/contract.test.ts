/**
 * The management API's contract: envelope, auth, paging edges, ordering, file apps read-only, rollback when the
 * edge cannot apply a write.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createGlobalKey, createToken } from '../../../src/api/tokens.ts';
import { freePort, startApi, ZONE, type ApiUnderTest } from './harness.ts';

const Z = `/zones/${ZONE.id}`;

function app(port: number, name: string, originPort = 9): Record<string, unknown> {
  return { protocol: `tcp/${port}`, dns: { type: 'CNAME', name }, origin_direct: [`tcp://127.0.0.1:${originPort}`] };
}

describe('management API contract', () => {
  let api: ApiUnderTest;
  let filePort: number;
  before(async () => {
    filePort = await freePort();
    api = await startApi({ edge: { addresses: ['127.0.0.1'] }, apps: [{ id: 'from-file', ...app(filePort, 'file.example.com') }] });
  });
  after(() => api.close());

  it('answers 401 with code 10000 without a token, or with a wrong one', async () => {
    for (const auth of [false, 'rfk_not-a-token'] as const) {
      const r = await api.call('GET', '/zones', undefined, { auth });
      assert.equal(r.status, 401);
      assert.equal(r.json.success, false);
      assert.equal(r.json.errors[0].code, 10000);
      assert.equal(r.json.errors[0].refract_code, 'E_API_AUTH');
      assert.equal(r.json.result, null);
    }
    const unknownRoute = await api.call('GET', '/nope', undefined, { auth: false });
    assert.equal(unknownRoute.status, 401, 'auth comes before routing');
  });

  it('verifies the token and lists zones in the envelope, as application/json', async () => {
    const v = await api.call('GET', '/user/tokens/verify');
    assert.equal(v.status, 200);
    assert.equal(v.json.result.status, 'active');
    const z = await api.call('GET', '/zones');
    assert.match(z.type ?? '', /^application\/json/);
    assert.deepEqual(Object.keys(z.json).sort(), ['errors', 'messages', 'result', 'result_info', 'success']);
    assert.equal(z.json.result[0].id, ZONE.id);
    assert.deepEqual(z.json.result_info, { page: 1, per_page: 20, count: 1, total_count: 1, total_pages: 1 });
    const one = await api.call('GET', Z);
    assert.equal(one.json.result.name, 'example.com');
    // ?name= matches as DNS names do: any case, with or without the root's trailing dot.
    for (const name of ['example.com', 'Example.COM', 'example.com.']) {
      assert.deepEqual((await api.call('GET', `/zones?name=${encodeURIComponent(name)}`)).json.result.map((r: { id: string }) => r.id), [ZONE.id], name);
    }
    assert.deepEqual((await api.call('GET', '/zones?name=other.com')).json.result, []);
    const missing = await api.call('GET', '/zones/0123456789abcdef0123456789abcdef/spectrum/apps');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.errors[0].refract_code, 'E_API_ZONE_NOT_FOUND');
  });

  it('pages: bad page and per_page are 400, a page past the end is 200 with result []', async () => {
    for (const q of ['page=0', 'per_page=0', 'per_page=101', 'page=x', 'order=size', 'direction=up']) {
      const r = await api.call('GET', `${Z}/spectrum/apps?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.errors[0].refract_code, 'E_API_BAD_REQUEST', q);
    }
    const past = await api.call('GET', `${Z}/spectrum/apps?page=9&per_page=5`);
    assert.equal(past.status, 200);
    assert.deepEqual(past.json.result, []);
    assert.deepEqual(past.json.result_info, { page: 9, per_page: 5, count: 0, total_count: 1, total_pages: 1 });
  });

  it('orders by any of the five keys, both directions', async () => {
    const ports = [await freePort(), await freePort()];
    const created: string[] = [];
    for (const [i, p] of ports.entries()) {
      const r = await api.call('POST', `${Z}/spectrum/apps`, app(p, `z${i}.example.com`));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      created.push(r.json.result.id);
    }
    const names = async (q: string) => (await api.call('GET', `${Z}/spectrum/apps?${q}`)).json.result.map((a: any) => a.dns.name);
    assert.deepEqual(await names('order=dns'), ['file.example.com', 'z0.example.com', 'z1.example.com']);
    assert.deepEqual(await names('order=dns&direction=desc'), ['z1.example.com', 'z0.example.com', 'file.example.com']);
    assert.deepEqual((await names('order=created_on&direction=desc')).slice(0, 2), ['z1.example.com', 'z0.example.com']);
    const ids = (await api.call('GET', `${Z}/spectrum/apps?order=app_id`)).json.result.map((a: any) => a.id);
    assert.deepEqual(ids, [...ids].sort());
    for (const id of created) assert.equal((await api.call('DELETE', `${Z}/spectrum/apps/${id}`)).status, 200);
  });

  it('file apps are listed but read-only: PUT and DELETE answer 400 naming the file', async () => {
    const got = await api.call('GET', `${Z}/spectrum/apps/from-file`);
    assert.equal(got.status, 200);
    const put = await api.call('PUT', `${Z}/spectrum/apps/from-file`, app(filePort, 'file.example.com'));
    assert.equal(put.status, 400);
    assert.equal(put.json.errors[0].refract_code, 'E_API_FILE_APP');
    assert.match(put.json.errors[0].message, /refract\.yaml/);
    const del = await api.call('DELETE', `${Z}/spectrum/apps/from-file`);
    assert.equal(del.status, 400);
    assert.equal((await api.call('GET', `${Z}/spectrum/apps/from-file`)).status, 200);
  });

  it('rejects an app overlapping another app (validation of the whole config), nothing stored', async () => {
    const r = await api.call('POST', `${Z}/spectrum/apps`, app(filePort, 'dup.example.com'));
    assert.equal(r.status, 400);
    assert.equal(r.json.errors[0].refract_code, 'E_CONFIG_EDGE_CONFLICT');
    assert.equal(api.store.apps().length, 0);
  });

  it('refuses a PUT that changes dns.type: 400 code 11004 at /dns/type, the app unchanged, no audit entry', async () => {
    const port = await freePort();
    const created = await api.call('POST', `${Z}/spectrum/apps`, app(port, 'typed.example.com'));
    assert.equal(created.status, 200);
    const id = created.json.result.id as string;
    const audited = api.store.auditLog(ZONE.id, { limit: 100, offset: 0, newestFirst: true }).total;
    const body = { ...app(port, 'typed.example.com'), dns: { type: 'ADDRESS', name: 'typed.example.com' }, edge_ips: { type: 'static', ips: ['127.0.0.1'] } };
    const r = await api.call('PUT', `${Z}/spectrum/apps/${id}`, body);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.errors[0].code, 11004);
    assert.equal(r.json.errors[0].refract_code, 'E_DNS_TYPE_MISMATCH');
    assert.equal(r.json.errors[0].source.pointer, '/dns/type');
    assert.equal((await api.call('GET', `${Z}/spectrum/apps/${id}`)).json.result.dns.type, 'CNAME');
    assert.equal(api.store.auditLog(ZONE.id, { limit: 100, offset: 0, newestFirst: true }).total, audited);
    // The same type with another name is an ordinary update.
    const renamed = await api.call('PUT', `${Z}/spectrum/apps/${id}`, app(port, 'renamed.example.com'));
    assert.equal(renamed.status, 200);
    assert.equal((await api.call('DELETE', `${Z}/spectrum/apps/${id}`)).status, 200);
  });

  it('rolls back when the edge cannot bind the port: 400 E_LISTEN_ADDRESS_IN_USE, nothing stored or listening', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const before = api.edge.listeners().length;
      const r = await api.call('POST', `${Z}/spectrum/apps`, app(taken, 'taken.example.com'));
      assert.equal(r.status, 400);
      assert.equal(r.json.errors[0].refract_code, 'E_LISTEN_ADDRESS_IN_USE');
      assert.equal(api.store.apps().length, 0);
      assert.equal(api.edge.listeners().length, before);
      const list = await api.call('GET', `${Z}/spectrum/apps`);
      assert.equal(list.json.result_info.total_count, 1);
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it("an app's zone is the one in the path: a zone field in the body is ignored", async () => {
    const r = await api.call('POST', `${Z}/spectrum/apps`, { ...app(await freePort(), 'zoned.example.org'), zone: 'f'.repeat(32) });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal('zone' in r.json.result, false);
    assert.equal(api.source.config.apps.find((a) => a.id === r.json.result.id)?.zoneId, ZONE.id);
    assert.equal((await api.call('DELETE', `${Z}/spectrum/apps/${r.json.result.id}`)).status, 200);
  });

  it('a body that is not an app object is 400', async () => {
    const r = await api.call('POST', `${Z}/spectrum/apps`, [1, 2]);
    assert.equal(r.status, 400);
    assert.equal(r.json.errors[0].refract_code, 'E_API_BAD_REQUEST');
    const bad = await api.call('POST', `${Z}/spectrum/apps`, { protocol: 'tcp/22', dns: { type: 'CNAME', name: 'x.example.com' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errors[0].code, 11000);
  });
});

describe('management API permissions and global keys', () => {
  let api: ApiUnderTest;
  before(async () => {
    api = await startApi({ edge: { addresses: ['127.0.0.1'] } });
  });
  after(() => api.close());

  it('answers 403 code 10000 naming the missing permission, or the zone outside the token', async () => {
    const { token: reader } = createToken(api.store, 'reader', new Date(0), { permissions: ['apps:read'] });
    const list = await api.call('GET', `${Z}/spectrum/apps`, undefined, { auth: reader });
    assert.equal(list.status, 200);
    const write = await api.call('POST', `${Z}/spectrum/apps`, app(await freePort(), 'w.example.com'), { auth: reader });
    assert.equal(write.status, 403);
    assert.equal(write.json.success, false);
    assert.equal(write.json.errors[0].code, 10000);
    assert.equal(write.json.errors[0].refract_code, 'E_API_FORBIDDEN');
    assert.match(write.json.errors[0].message, /apps:edit/);
    const del = await api.call('DELETE', `${Z}/spectrum/apps/${'0'.repeat(32)}`, undefined, { auth: reader });
    assert.equal(del.status, 403);

    const { token: rules } = createToken(api.store, 'rules', new Date(0), { permissions: ['rules:read'] });
    const get = await api.call('GET', `${Z}/spectrum/apps`, undefined, { auth: rules });
    assert.equal(get.status, 403);
    assert.match(get.json.errors[0].message, /apps:read/);
    assert.equal((await api.call('GET', '/zones', undefined, { auth: rules })).status, 200, 'zones need any permission');

    const other = 'f'.repeat(32);
    const { token: elsewhere } = createToken(api.store, 'elsewhere', new Date(0), { zones: [other] });
    const wrongZone = await api.call('GET', `${Z}/spectrum/apps`, undefined, { auth: elsewhere });
    assert.equal(wrongZone.status, 403);
    assert.equal(wrongZone.json.errors[0].code, 10000);
    assert.match(wrongZone.json.errors[0].message, new RegExp(ZONE.id));
    assert.equal((await api.call('GET', Z, undefined, { auth: elsewhere })).status, 403);
    const zones = await api.call('GET', '/zones', undefined, { auth: elsewhere });
    assert.deepEqual(zones.json.result, [], 'GET /zones lists only the token\'s zones');
    const { token: here } = createToken(api.store, 'here', new Date(0), { zones: [ZONE.id] });
    assert.equal((await api.call('GET', `${Z}/spectrum/apps`, undefined, { auth: here })).status, 200);
  });

  it('accepts a global key as X-Auth-Email + X-Auth-Key, only with its email', async () => {
    const { id, key } = createGlobalKey(api.store, 'global', 'Ops@Example.com', new Date(0));
    const call = async (email: string, k: string) =>
      fetch(`${api.base}/user/tokens/verify`, { headers: { 'x-auth-email': email, 'x-auth-key': k }, signal: AbortSignal.timeout(5000) });
    const good = await call('ops@example.com', key);
    assert.equal(good.status, 200);
    assert.equal(((await good.json()) as { result: { id: string } }).result.id, id);
    assert.equal((await call('other@example.com', key)).status, 401);
    assert.equal((await call('ops@example.com', `${key}x`)).status, 401);
    assert.equal((await call('ops@example.com', api.token)).status, 401, 'a bearer token is not a key');
    const asBearer = await api.call('GET', '/zones', undefined, { auth: key });
    assert.equal(asBearer.status, 401, 'a key is not a bearer token');
  });
});

describe('management API request ids and access log', () => {
  const lines: Array<Record<string, unknown>> = [];
  let api: ApiUnderTest;
  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    api = await startApi({}, { log: pino({ level: 'info' }, sink) });
  });
  after(() => api.close());

  it('sends x-request-id on every answer and logs one info line per request, never the token', async () => {
    const ids: string[] = [];
    for (const auth of [undefined, false] as const) {
      const res = await fetch(`${api.base}/zones/${ZONE.id}/spectrum/apps`, { headers: auth === false ? {} : { authorization: `Bearer ${api.token}` }, signal: AbortSignal.timeout(5000) });
      await res.text();
      const id = res.headers.get('x-request-id');
      assert.match(id ?? '', /^[0-9a-f]{16}$/);
      ids.push(id!);
    }
    assert.notEqual(ids[0], ids[1]);
    const deadline = Date.now() + 2000;
    while (lines.filter((l) => l['event'] === 'api.request').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const logged = lines.filter((l) => l['event'] === 'api.request');
    assert.equal(logged.length, 2);
    const [ok, denied] = logged;
    assert.equal(ok!['level'], 30);
    assert.equal(ok!['request_id'], ids[0]);
    assert.equal(ok!['method'], 'GET');
    assert.equal(ok!['route'], '/client/v4/zones/:zone/spectrum/apps');
    assert.equal(ok!['status'], 200);
    assert.equal(typeof ok!['duration_ms'], 'number');
    assert.match(String(ok!['token_id']), /^[0-9a-f]{32}$/);
    assert.equal(denied!['status'], 401);
    assert.equal(denied!['token_id'], null);
    assert.ok(!JSON.stringify(lines).includes(api.token), 'the token is never logged');
  });
});

describe('management API rate limit', () => {
  let api: ApiUnderTest;
  let t = 0;
  before(async () => {
    api = await startApi({}, { rateLimit: { requests: 2, windowSec: 10 }, nowMs: () => t });
  });
  after(() => api.close());

  it('answers 429 with Retry-After past the limit, per token, until the window ends', async () => {
    assert.equal((await api.call('GET', '/zones')).status, 200);
    t = 3000;
    assert.equal((await api.call('GET', '/zones')).status, 200);
    const res = await fetch(`${api.base}/zones`, { headers: { authorization: `Bearer ${api.token}` }, signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '7');
    assert.equal(res.headers.get('x-should-retry'), null);
    const body = (await res.json()) as { success: boolean; errors: Array<{ code: number; refract_code: string }>; result: unknown };
    assert.equal(body.success, false);
    assert.equal(body.errors[0]!.refract_code, 'E_API_RATE_LIMITED');
    assert.equal(body.errors[0]!.code, 971);
    assert.equal(body.result, null);
    const { token: other } = createToken(api.store, 'other', new Date(0));
    assert.equal((await api.call('GET', '/zones', undefined, { auth: other })).status, 200, 'another token has its own budget');
    t = 10_000;
    assert.equal((await api.call('GET', '/zones')).status, 200, 'a new window');
  });
});
