/**
 * Zone writes: POST /zones and DELETE /zones/{id}, stored in the API database and merged with the file's zones
 * (read-only); deleting a zone deletes its API apps and rules in one transaction and applies it live (open
 * connections drain); `zones:edit` on a token not limited to zones; the SDK's zones.create/delete; file reloads.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, of, toArray } from 'rxjs';
import Cloudflare from 'cloudflare';
import { deriveZoneId } from '../../../src/model/config.ts';
import { createGlobalKey, createToken } from '../../../src/api/tokens.ts';
import { exchange, startOrigin } from '../../helpers/edge.ts';
import { freePort, startApi, ZONE, type ApiUnderTest } from './harness.ts';

const app = (port: number, name: string, originPort: number, extra: Record<string, unknown> = {}) => ({
  protocol: `tcp/${port}`,
  dns: { type: 'CNAME', name },
  origin_direct: [`tcp://127.0.0.1:${originPort}`],
  ...extra,
});

describe('zone writes', () => {
  let api: ApiUnderTest;
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  before(async () => {
    api = await startApi({ edge: { addresses: ['127.0.0.1'] } });
    origin = await startOrigin();
  });
  after(async () => {
    await api.close();
    await origin.close();
  });

  it('creates a zone with the id a file zone of that name would have, lists it, stores it, records it', async () => {
    const r = await api.call('POST', '/zones', { name: 'New.Example.', account: { id: 'ignored' }, type: 'full' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const id = deriveZoneId('new.example');
    assert.deepEqual({ ...r.json.result, created_on: 'C', modified_on: 'M' }, { id, name: 'new.example', status: 'active', paused: false, type: 'full', created_on: 'C', modified_on: 'M' });
    assert.deepEqual((await api.call('GET', '/zones')).json.result.map((z: any) => z.name), ['example.com', 'new.example']);
    assert.equal((await api.call('GET', `/zones/${id}`)).json.result.name, 'new.example');
    assert.deepEqual(api.store.zones().map((z) => [z.zoneId, z.name]), [[id, 'new.example']]);
    const log = (await api.call('GET', `/zones/${id}/audit_logs`)).json.result;
    assert.deepEqual(log.map((e: any) => [e.action.type, e.resource.type, e.resource.id, e.oldValueJson, e.newValueJson]), [['create', 'zone', id, null, r.json.result]]);
    assert.equal((await api.call('DELETE', `/zones/${id}`)).status, 200);
  });

  it('refuses a name that exists (1061), a bad or missing name, a non-object body; nothing stored', async () => {
    const made = await api.call('POST', '/zones', { name: 'dup.example' });
    assert.equal(made.status, 200);
    for (const name of ['example.com', 'EXAMPLE.com.', 'dup.example']) {
      const r = await api.call('POST', '/zones', { name });
      assert.equal(r.status, 400, name);
      assert.deepEqual([r.json.errors[0].code, r.json.errors[0].refract_code, r.json.errors[0].source.pointer], [1061, 'E_API_ZONE_EXISTS', '/name']);
    }
    for (const [body, code, pointer] of [[{ name: 'bad name' }, 'E_CONFIG_SCHEMA', '/name'], [{}, 'E_CONFIG_SCHEMA', '/name'], [{ name: 7 }, 'E_CONFIG_SCHEMA', '/name'], [['x'], 'E_API_BAD_REQUEST', undefined]] as const) {
      const r = await api.call('POST', '/zones', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.errors[0].refract_code, code, JSON.stringify(body));
      assert.equal(r.json.errors[0].source?.pointer, pointer, JSON.stringify(body));
    }
    assert.deepEqual(api.store.zones().map((z) => z.name), ['dup.example']);
    await api.call('DELETE', `/zones/${made.json.result.id}`);
  });

  it('a file zone cannot be deleted (E_API_FILE_ZONE, naming the file); an unknown one is 404', async () => {
    const r = await api.call('DELETE', `/zones/${ZONE.id}`);
    assert.equal(r.status, 400);
    assert.equal(r.json.errors[0].refract_code, 'E_API_FILE_ZONE');
    assert.match(r.json.errors[0].message, /refract\.yaml/);
    const none = await api.call('DELETE', `/zones/${'d'.repeat(32)}`);
    assert.equal(none.status, 404);
    assert.equal(none.json.errors[0].refract_code, 'E_API_ZONE_NOT_FOUND');
  });

  it('deleting a zone deletes its apps and rules in one write, live: the port closes, an open connection drains', async () => {
    const z = (await api.call('POST', '/zones', { name: 'gone.example' })).json.result;
    const [p1, p2] = [await freePort(), await freePort()];
    const a1 = (await api.call('POST', `/zones/${z.id}/spectrum/apps`, app(p1, 'ssh.gone.example', origin.port, { ip_firewall: true }))).json.result;
    const a2 = (await api.call('POST', `/zones/${z.id}/spectrum/apps`, app(p2, 'db.gone.example', origin.port))).json.result;
    const rule = (await api.call('POST', `/zones/${z.id}/firewall/access_rules/rules`, { mode: 'block', configuration: { target: 'country', value: 'FR' } })).json.result;
    const kept = (await api.call('POST', `/zones/${ZONE.id}/firewall/access_rules/rules`, { mode: 'block', configuration: { target: 'country', value: 'FR' } })).json.result;

    // A connection open through the zone's app before the delete.
    const open = net.connect({ port: p1, host: '127.0.0.1' });
    await once(open, 'connect');
    open.write('before');
    await once(open, 'data');

    const d = await api.call('DELETE', `/zones/${z.id}`);
    assert.deepEqual([d.status, d.json.result], [200, { id: z.id }]);
    assert.deepEqual(api.store.zones(), []);
    assert.deepEqual(api.store.apps(), []);
    assert.deepEqual(api.store.rules().map((r) => r.ruleId), [kept.id], "another zone's rule stays");
    assert.equal(api.source.config.apps.length, 0);
    assert.equal((await exchange(p1, 'x', { timeoutMs: 3000 })).error, 'ECONNREFUSED', 'the port is closed at once');
    assert.equal((await exchange(p2, 'x', { timeoutMs: 3000 })).error, 'ECONNREFUSED');
    const echoed = once(open, 'data');
    open.write('after');
    assert.equal(String((await echoed)[0]), 'after', 'the open connection drains: it still reaches the origin');
    open.end();
    await once(open, 'close');

    assert.equal((await api.call('GET', `/zones/${z.id}`)).status, 404);
    const log = (await api.call('GET', `/zones/${z.id}/audit_logs?per_page=100`)).json.result;
    assert.deepEqual(
      log.slice(0, 4).map((e: any) => [e.action.type, e.resource.type, e.resource.id, e.newValueJson, e.metadata]),
      [
        ['delete', 'zone', z.id, null, {}],
        ['delete', 'access_rule', rule.id, null, { via: 'zone.delete' }],
        ['delete', 'spectrum_app', a2.id, null, { via: 'zone.delete' }],
        ['delete', 'spectrum_app', a1.id, null, { via: 'zone.delete' }],
      ],
      "the deleted zone's log stays readable, with one entry per deleted object",
    );
    assert.deepEqual(log[3].oldValueJson, a1);
    assert.equal(new Set(log.slice(0, 4).map((e: any) => e.when)).size, 1, 'one write, one time');
    await api.call('DELETE', `/zones/${ZONE.id}/firewall/access_rules/rules/${kept.id}`);
  });

  it('needs zones:edit and a token not limited to zones; a global key may', async () => {
    const { token: noZones } = createToken(api.store, 'no-zones-edit', new Date(0), { permissions: ['apps:read', 'apps:edit', 'rules:read', 'rules:edit', 'audit:read'] });
    const r = await api.call('POST', '/zones', { name: 'p.example' }, { auth: noZones });
    assert.equal(r.status, 403);
    assert.match(r.json.errors[0].message, /zones:edit/);
    const { token: limited } = createToken(api.store, 'limited', new Date(0), { permissions: ['zones:edit'], zones: [ZONE.id] });
    const l = await api.call('POST', '/zones', { name: 'p.example' }, { auth: limited });
    assert.equal(l.status, 403);
    assert.equal(l.json.errors[0].refract_code, 'E_API_FORBIDDEN');
    assert.equal((await api.call('DELETE', `/zones/${ZONE.id}`, undefined, { auth: limited })).status, 403);
    const { key } = createGlobalKey(api.store, 'zones-key', 'ops@example.com', new Date(0));
    const g = new Cloudflare({ apiEmail: 'ops@example.com', apiKey: key, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    const made = await g.zones.create({ account: { id: 'acct' }, name: 'sdk.example' });
    assert.equal(made.id, deriveZoneId('sdk.example'));
    assert.equal((await g.zones.get({ zone_id: made.id })).name, 'sdk.example');
    const gone = await g.zones.delete({ zone_id: made.id });
    assert.equal(gone?.id, made.id);
    await assert.rejects(g.zones.create({ account: { id: 'acct' }, name: 'example.com' }), (e: unknown) => e instanceof Cloudflare.BadRequestError && (e.errors[0] as { code: number }).code === 1061);
    assert.deepEqual(api.store.zones(), []);
  });
});

describe('API zones across restarts and file reloads', () => {
  it('are loaded again at start; a file cannot take their name, drop a zone holding API rules, or put its apps in them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-zones-'));
    const storeFile = join(dir, 'api.sqlite');
    const origin = await startOrigin();
    const file = { edge: { addresses: ['127.0.0.1'] } };
    try {
      const p = await freePort();
      let api = await startApi(file, { storeFile });
      const z = (await api.call('POST', '/zones', { name: 'api.example' })).json.result;
      const a = await api.call('POST', `/zones/${z.id}/spectrum/apps`, app(p, 'ssh.api.example', origin.port));
      assert.equal(a.status, 200);
      const inFileZone = await api.call('POST', `/zones/${ZONE.id}/firewall/access_rules/rules`, { mode: 'block', configuration: { target: 'asn', value: 'AS64500' } });
      assert.equal(inFileZone.status, 200);
      await api.close();

      api = await startApi(file, { storeFile });
      try {
        assert.deepEqual((await api.call('GET', '/zones')).json.result.map((x: any) => x.name), ['example.com', 'api.example']);
        assert.deepEqual((await api.call('GET', `/zones/${z.id}/spectrum/apps`)).json.result.map((x: any) => x.id), [a.json.result.id]);
        assert.equal((await exchange(p, 'hi', { timeoutMs: 3000 })).data.toString(), 'hi');

        const other = await freePort();
        const results = await firstValueFrom(
          api.source
            .follow(
              of(
                { ...file, zones: [ZONE, { name: 'API.example' }] },
                { ...file, zones: [{ name: 'example.net' }] },
                { ...file, zones: [ZONE], apps: [app(other, 'x.example.com', origin.port, { zone: 'api.example' })] },
                { ...file, zones: [ZONE], apps: [{ id: 'under-api', ...app(other, 'www.api.example', origin.port) }] },
              ),
            )
            .pipe(toArray()),
        );
        const codes = results.map((r) => (r.ok ? 'ok' : (r.error as { issues: Array<{ code: string }> }).issues.map((i) => i.code).join(',')));
        assert.deepEqual(codes, ['E_CONFIG_DUPLICATE_ID', 'E_CONFIG_ZONE', 'E_CONFIG_ZONE', 'ok']);
        const fileApp = api.source.config.apps.find((x) => x.id === 'under-api');
        assert.equal(fileApp?.zoneId, ZONE.id, "a file app stays in the file's zones even under an API zone's name");
      } finally {
        await api.close();
      }
    } finally {
      await origin.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
