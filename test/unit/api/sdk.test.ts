/**
 * Cloudflare's official TypeScript SDK (`cloudflare` on npm), unmodified, driving Refract's API: only the base URL
 * and the token change. Create, get, list page by page with `for await`, update, delete; error codes; and the
 * apps are live: a TCP connection through a created app reaches an echo origin, and is refused after delete.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { exchange, startOrigin } from '../../helpers/edge.ts';
import { createGlobalKey, createToken } from '../../../src/api/tokens.ts';
import { freePort, startApi, ZONE, type ApiUnderTest } from './harness.ts';

describe('the cloudflare SDK against the API', () => {
  let api: ApiUnderTest;
  let cf: Cloudflare;
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  before(async () => {
    api = await startApi({ edge: { addresses: ['127.0.0.1'] } });
    cf = new Cloudflare({ apiToken: api.token, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    origin = await startOrigin();
  });
  after(async () => {
    await api.close();
    await origin.close();
  });

  it('creates an app that serves at once, reads, lists over pages, updates, deletes', async () => {
    const edgePort = await freePort();
    const created = await cf.spectrum.apps.create({
      zone_id: ZONE.id,
      dns: { type: 'CNAME', name: 'ssh.example.com' },
      protocol: `tcp/${edgePort}`,
      traffic_type: 'direct',
      origin_direct: [`tcp://127.0.0.1:${origin.port}`],
      ip_firewall: false,
      proxy_protocol: 'off',
      tls: 'off',
      edge_ips: { type: 'dynamic', connectivity: 'all' },
      argo_smart_routing: false,
    });
    assert.match(created.id, /^[0-9a-f]{32}$/);
    assert.equal(created.protocol, `tcp/${edgePort}`);
    assert.ok(created.created_on);

    // Live: through the edge to the echo origin.
    const through = await exchange(edgePort, 'hello', { timeoutMs: 3000 });
    assert.equal(through.data.toString(), 'hello');

    const got = await cf.spectrum.apps.get(created.id, { zone_id: ZONE.id });
    assert.equal(got.dns.name, 'ssh.example.com');

    // "Paygo" form (no traffic_type): direct.
    const more: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await freePort();
      const a = await cf.spectrum.apps.create({ zone_id: ZONE.id, dns: { type: 'CNAME', name: `app${i}.example.com` }, protocol: `tcp/${p}`, origin_direct: [`tcp://127.0.0.1:${origin.port}`] });
      assert.equal((a as { traffic_type?: string }).traffic_type, 'direct');
      more.push(a.id);
    }
    const seen: string[] = [];
    for await (const a of cf.spectrum.apps.list({ zone_id: ZONE.id, per_page: 2, order: 'created_on', direction: 'asc' })) seen.push(a.id);
    assert.deepEqual(seen, [created.id, ...more]);

    const updated = await cf.spectrum.apps.update(created.id, {
      zone_id: ZONE.id,
      dns: { type: 'CNAME', name: 'ssh2.example.com' },
      protocol: `tcp/${edgePort}`,
      traffic_type: 'direct',
      origin_direct: [`tcp://127.0.0.1:${origin.port}`],
    });
    assert.equal(updated.dns.name, 'ssh2.example.com');
    assert.equal(updated.created_on, created.created_on);
    assert.notEqual(updated.modified_on, created.modified_on);

    const deleted = await cf.spectrum.apps.delete(created.id, { zone_id: ZONE.id });
    assert.equal(deleted?.id, created.id);
    const after = await exchange(edgePort, 'hello', { timeoutMs: 3000 });
    assert.equal(after.error, 'ECONNREFUSED');
    for (const id of more) await cf.spectrum.apps.delete(id, { zone_id: ZONE.id });
  });

  it('bad input throws BadRequestError with the Cloudflare code in errors[0].code', async () => {
    const p = await freePort();
    await assert.rejects(
      cf.spectrum.apps.create({ zone_id: ZONE.id, dns: { type: 'CNAME', name: 'x.example.com' }, protocol: `tcp/${p}`, traffic_type: 'direct', origin_direct: [`tcp://2001:db8::1:22`] }),
      (e: unknown) => {
        assert.ok(e instanceof Cloudflare.BadRequestError);
        assert.equal(e.status, 400);
        assert.equal((e.errors[0] as { code: number }).code, 11002);
        return true;
      },
    );
    await assert.rejects(cf.spectrum.apps.get('0'.repeat(32), { zone_id: ZONE.id }), (e: unknown) => e instanceof Cloudflare.NotFoundError);
    const bad = new Cloudflare({ apiToken: 'wrong', baseURL: api.base, maxRetries: 0, timeout: 5000 });
    await assert.rejects(bad.user.tokens.verify(), (e: unknown) => e instanceof Cloudflare.AuthenticationError && (e.errors[0] as { code: number }).code === 10000);
    const verified = await cf.user.tokens.verify();
    assert.equal(verified.status, 'active');
  });

  it('a token without the permission or the zone throws PermissionDeniedError (403, code 10000)', async () => {
    const { token: reader } = createToken(api.store, 'sdk-reader', new Date(0), { permissions: ['apps:read'] });
    const ro = new Cloudflare({ apiToken: reader, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    for await (const _ of ro.spectrum.apps.list({ zone_id: ZONE.id })) break;
    const p = await freePort();
    await assert.rejects(ro.spectrum.apps.create({ zone_id: ZONE.id, dns: { type: 'CNAME', name: 'ro.example.com' }, protocol: `tcp/${p}`, origin_direct: ['tcp://127.0.0.1:9'] }), (e: unknown) => {
      assert.ok(e instanceof Cloudflare.PermissionDeniedError);
      assert.equal(e.status, 403);
      assert.equal((e.errors[0] as { code: number }).code, 10000);
      return true;
    });
    const { token: elsewhere } = createToken(api.store, 'sdk-elsewhere', new Date(0), { zones: ['f'.repeat(32)] });
    const other = new Cloudflare({ apiToken: elsewhere, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    await assert.rejects(other.spectrum.apps.get('0'.repeat(32), { zone_id: ZONE.id }), (e: unknown) => e instanceof Cloudflare.PermissionDeniedError && e.status === 403);
  });

  it('drives the API with a global key (apiEmail + apiKey)', async () => {
    const { key } = createGlobalKey(api.store, 'sdk-global', 'ops@example.com', new Date(0));
    const g = new Cloudflare({ apiEmail: 'ops@example.com', apiKey: key, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    const zone = await g.zones.get({ zone_id: ZONE.id });
    assert.equal(zone.id, ZONE.id);
    const wrong = new Cloudflare({ apiEmail: 'someone@example.com', apiKey: key, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    await assert.rejects(wrong.zones.get({ zone_id: ZONE.id }), (e: unknown) => e instanceof Cloudflare.AuthenticationError);
  });
});
