/**
 * The audit log (`GET /zones/{zone_id}/audit_logs`): every committed write of apps and rules is recorded in its own
 * transaction with the actor and the object before and after; a refused write leaves nothing; newest first, paged,
 * filtered by time; `audit:read`; no secret ever appears.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { createGlobalKey, createToken } from '../../../src/api/tokens.ts';
import { freePort, startApi, ZONE, ZONE2, type ApiUnderTest } from './harness.ts';

const Z = `/zones/${ZONE.id}`;
const app = (port: number, name: string) => ({ protocol: `tcp/${port}`, dns: { type: 'CNAME', name }, origin_direct: ['tcp://127.0.0.1:9'] });

describe('the audit log', () => {
  let api: ApiUnderTest;
  let tokenId: string;
  let token: string;
  let key: { id: string; key: string };
  before(async () => {
    api = await startApi({ zones: [ZONE, ZONE2], edge: { addresses: ['127.0.0.1'] }, apps: [{ id: 'from-file', ...app(await freePort(), 'file.example.com') }] });
    ({ id: tokenId, token } = createToken(api.store, 'ci-writer', new Date(0)));
    key = createGlobalKey(api.store, 'ops-key', 'Ops@Example.com', new Date(0));
  });
  after(() => api.close());

  const log = async (q = '', zone = ZONE.id) => {
    const r = await api.call('GET', `/zones/${zone}/audit_logs${q === '' ? '' : `?${q}`}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json;
  };
  const keyCall = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(api.base + path, {
      method,
      headers: { 'x-auth-email': 'ops@example.com', 'x-auth-key': key.key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(5000),
    });
    return { status: res.status, json: (await res.json()) as any };
  };

  it('records app and rule writes with actor, resource, time and the API objects before and after, newest first', async () => {
    const p = await freePort();
    const created = (await api.call('POST', `${Z}/spectrum/apps`, app(p, 'a.example.com'), { auth: token })).json.result;
    const updated = (await api.call('PUT', `${Z}/spectrum/apps/${created.id}`, app(p, 'b.example.com'), { auth: token })).json.result;
    const rule = (await keyCall('POST', `${Z}/firewall/access_rules/rules`, { mode: 'block', configuration: { target: 'ip', value: '192.0.2.7' } })).json.result;
    const edited = (await api.call('PATCH', `${Z}/firewall/access_rules/rules/${rule.id}`, { mode: 'whitelist', notes: 'ok' }, { auth: token })).json.result;
    assert.equal((await api.call('DELETE', `${Z}/firewall/access_rules/rules/${rule.id}`, undefined, { auth: token })).status, 200);
    assert.equal((await api.call('DELETE', `${Z}/spectrum/apps/${created.id}`, undefined, { auth: token })).status, 200);

    const body = await log();
    assert.deepEqual(body.result_info, { page: 1, per_page: 20, count: 6, total_count: 6, total_pages: 1 });
    const entries = body.result;
    assert.deepEqual(
      entries.map((e: any) => [e.action.type, e.resource.type, e.resource.id, e.actor.type, e.actor.name]),
      [
        ['delete', 'spectrum_app', created.id, 'token', 'ci-writer'],
        ['delete', 'access_rule', rule.id, 'token', 'ci-writer'],
        ['update', 'access_rule', rule.id, 'token', 'ci-writer'],
        ['create', 'access_rule', rule.id, 'key', 'ops-key'],
        ['update', 'spectrum_app', created.id, 'token', 'ci-writer'],
        ['create', 'spectrum_app', created.id, 'token', 'ci-writer'],
      ],
    );
    const [delApp, delRule, editRule, makeRule, putApp, makeApp] = entries;
    for (const e of entries) {
      assert.match(e.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(e.action.result, true);
      assert.equal(e.interface, 'API');
      assert.deepEqual(e.zone, { id: ZONE.id });
      assert.deepEqual(e.oldValue === null ? null : JSON.parse(e.oldValue), e.oldValueJson);
      assert.deepEqual(e.newValue === null ? null : JSON.parse(e.newValue), e.newValueJson);
    }
    assert.equal(makeApp.actor.id, tokenId);
    assert.deepEqual([makeApp.oldValueJson, makeApp.newValueJson], [null, created]);
    assert.equal(makeApp.when, created.created_on, 'the write time, from the ConfigSource clock');
    assert.deepEqual([putApp.oldValueJson, putApp.newValueJson], [created, updated]);
    assert.equal(putApp.when, updated.modified_on);
    assert.deepEqual([makeRule.oldValueJson, makeRule.newValueJson], [null, rule]);
    assert.deepEqual(makeRule.actor, { id: key.id, type: 'key', name: 'ops-key', email: 'ops@example.com' });
    assert.deepEqual([editRule.oldValueJson, editRule.newValueJson], [rule, edited]);
    assert.deepEqual([delRule.oldValueJson, delRule.newValueJson], [edited, null]);
    assert.deepEqual([delApp.oldValueJson, delApp.newValueJson], [updated, null]);
    assert.ok(delApp.when > makeApp.when);

    const text = JSON.stringify(body);
    assert.ok(!text.includes(token) && !text.includes(key.key) && !text.includes(api.token), 'no token or key in the log');
    assert.deepEqual((await log('', ZONE2.id)).result, [], "another zone's log is its own");
  });

  it('a refused write leaves no audit entry: invalid, unbindable, read-only, unknown, forbidden', async () => {
    const before = (await log()).result_info.total_count;
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    try {
      const taken = (blocker.address() as net.AddressInfo).port;
      const { token: reader } = createToken(api.store, 'reader', new Date(0), { permissions: ['apps:read', 'rules:read'] });
      const refused = [
        await api.call('POST', `${Z}/spectrum/apps`, { protocol: 'tcp/22', dns: { name: 'x.example.com' } }),
        await api.call('POST', `${Z}/spectrum/apps`, app(taken, 'taken.example.com')),
        await api.call('DELETE', `${Z}/spectrum/apps/from-file`),
        await api.call('POST', `${Z}/firewall/access_rules/rules`, { mode: 'challenge', configuration: { target: 'ip', value: '192.0.2.1' } }),
        await api.call('PATCH', `${Z}/firewall/access_rules/rules/${'0'.repeat(32)}`, { notes: 'x' }),
        await api.call('POST', `${Z}/firewall/access_rules/rules`, { mode: 'block', configuration: { target: 'ip', value: '192.0.2.1' } }, { auth: reader }),
      ];
      assert.deepEqual(refused.map((r) => r.status), [400, 400, 400, 400, 404, 403]);
      assert.equal(refused[1]!.json.errors[0].refract_code, 'E_LISTEN_ADDRESS_IN_USE', 'refused after validation, by the edge: rolled back');
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
    assert.equal((await log()).result_info.total_count, before);
  });

  it('pages newest first, filters with since (inclusive) and before (exclusive), direction=asc; bad values are 400', async () => {
    const all = (await log('per_page=100')).result as any[];
    assert.ok(all.length >= 6);
    const whens = all.map((e) => e.when);
    assert.deepEqual(whens, [...whens].sort().reverse());
    const page2 = await log('page=2&per_page=2');
    assert.deepEqual(page2.result.map((e: any) => e.id), all.slice(2, 4).map((e) => e.id));
    assert.deepEqual(page2.result_info, { page: 2, per_page: 2, count: 2, total_count: all.length, total_pages: Math.ceil(all.length / 2) });
    const past = await log(`page=${all.length + 1}&per_page=1`);
    assert.deepEqual(past.result, []);
    assert.equal(past.result_info.total_count, all.length);
    assert.deepEqual((await log('direction=asc&per_page=100')).result.map((e: any) => e.id), [...all].reverse().map((e) => e.id));

    const pivot = all[2].when as string;
    const since = (await log(`since=${encodeURIComponent(pivot)}&per_page=100`)).result.map((e: any) => e.id);
    assert.deepEqual(since, all.filter((e) => e.when >= pivot).map((e) => e.id));
    const beforeIt = (await log(`before=${encodeURIComponent(pivot)}&per_page=100`)).result.map((e: any) => e.id);
    assert.deepEqual(beforeIt, all.filter((e) => e.when < pivot).map((e) => e.id));
    const offset = pivot.replace('Z', '-02:00'); // the same wall time two hours west: two hours after pivot
    assert.deepEqual((await log(`before=${encodeURIComponent(offset)}&since=${encodeURIComponent(pivot)}`)).result.length, since.length);
    assert.deepEqual((await log('since=2099-01-01')).result, []);
    for (const q of ['since=yesterday', 'before=2026-13-01T00:00:00Z', 'direction=up', 'per_page=101', 'page=0']) {
      const r = await api.call('GET', `${Z}/audit_logs?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.errors[0].refract_code, 'E_API_BAD_REQUEST', q);
    }
  });

  it('needs audit:read and the zone', async () => {
    const { token: apps } = createToken(api.store, 'apps-all', new Date(0), { permissions: ['apps:read', 'apps:edit', 'rules:read', 'rules:edit'] });
    const r = await api.call('GET', `${Z}/audit_logs`, undefined, { auth: apps });
    assert.equal(r.status, 403);
    assert.match(r.json.errors[0].message, /audit:read/);
    const { token: other } = createToken(api.store, 'auditor-elsewhere', new Date(0), { permissions: ['audit:read'], zones: [ZONE2.id] });
    assert.equal((await api.call('GET', `${Z}/audit_logs`, undefined, { auth: other })).status, 403);
    assert.equal((await api.call('GET', `/zones/${ZONE2.id}/audit_logs`, undefined, { auth: other })).status, 200);
    assert.equal((await api.call('GET', `/zones/${'c'.repeat(32)}/audit_logs`)).json.errors[0].refract_code, 'E_API_ZONE_NOT_FOUND');
  });
});
