/**
 * Cloudflare's official SDK (`cloudflare` 7.3.0), unmodified, driving the IP Access rules endpoints with `zone_id`:
 * create, list with filters and `for await` over pages, edit, delete, error classes; and the rules are live: a block
 * rule of one zone stops new connections to that zone's ip_firewall app on real sockets, not another zone's.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { exchange, startOrigin } from '../../helpers/edge.ts';
import { createToken } from '../../../src/api/tokens.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';
import { freePort, startApi, ZONE, ZONE2, type ApiUnderTest } from './harness.ts';

describe('the cloudflare SDK against the IP Access rules endpoints', () => {
  let api: ApiUnderTest;
  let cf: Cloudflare;
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  const events: SpectrumEvent[] = [];
  before(async () => {
    api = await startApi({ zones: [ZONE, ZONE2], edge: { addresses: ['127.0.0.1'] } });
    api.edge.events.events$.subscribe((e) => events.push(e));
    cf = new Cloudflare({ apiToken: api.token, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    origin = await startOrigin();
  });
  after(async () => {
    await api.close();
    await origin.close();
  });

  it('creates, lists with filters and for-await paging, edits and deletes rules', async () => {
    const made: string[] = [];
    for (const [i, value] of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5'].entries()) {
      const r = await cf.firewall.accessRules.create({ zone_id: ZONE.id, mode: i === 4 ? 'whitelist' : 'block', configuration: { target: 'ip', value }, notes: `sdk ${i}` });
      assert.equal(r.configuration.value, value);
      made.push(r.id);
    }
    const seen: string[] = [];
    for await (const r of cf.firewall.accessRules.list({ zone_id: ZONE.id, per_page: 2 })) seen.push(r.id);
    assert.deepEqual(seen, made, 'three pages of 2, 2 and 1, then an empty page ends the loop');

    const blocks: string[] = [];
    for await (const r of cf.firewall.accessRules.list({ zone_id: ZONE.id, mode: 'block', per_page: 3, order: 'configuration.value', direction: 'desc' })) blocks.push(r.configuration.value ?? '');
    assert.deepEqual(blocks, ['192.0.2.4', '192.0.2.3', '192.0.2.2', '192.0.2.1']);
    const one: string[] = [];
    for await (const r of cf.firewall.accessRules.list({ zone_id: ZONE.id, configuration: { target: 'ip', value: '192.0.2.3' } })) one.push(r.id);
    assert.deepEqual(one, [made[2]]);
    const either: string[] = [];
    for await (const r of cf.firewall.accessRules.list({ zone_id: ZONE.id, match: 'any', mode: 'whitelist', notes: 'SDK 0' })) either.push(r.id);
    assert.deepEqual(either, [made[0], made[4]]);

    const edited = await cf.firewall.accessRules.edit(made[0]!, { zone_id: ZONE.id, mode: 'whitelist', configuration: { target: 'ip', value: '192.0.2.1' }, notes: 'trusted' });
    assert.deepEqual([edited.mode, edited.notes], ['whitelist', 'trusted']);
    const got = await cf.firewall.accessRules.get(made[0]!, { zone_id: ZONE.id });
    assert.equal(got.mode, 'whitelist');

    for (const id of made) {
      const d = await cf.firewall.accessRules.delete(id, { zone_id: ZONE.id });
      assert.equal(d?.id, id);
    }
    const left: string[] = [];
    for await (const r of cf.firewall.accessRules.list({ zone_id: ZONE.id })) left.push(r.id);
    assert.deepEqual(left, []);
  });

  it('bad input throws BadRequestError with errors[0].code; unknown rules NotFoundError; a reader gets PermissionDeniedError', async () => {
    await assert.rejects(cf.firewall.accessRules.create({ zone_id: ZONE.id, mode: 'challenge', configuration: { target: 'ip', value: '192.0.2.1' } }), (e: unknown) => {
      assert.ok(e instanceof Cloudflare.BadRequestError);
      const err = e.errors[0] as { code: number; refract_code: string; source: { pointer: string } };
      assert.deepEqual([err.code, err.refract_code, err.source.pointer], [1000, 'E_RULE_MODE', '/mode']);
      return true;
    });
    await assert.rejects(cf.firewall.accessRules.create({ zone_id: ZONE.id, mode: 'block', configuration: { target: 'country', value: 'Germany' } }), (e: unknown) => {
      assert.ok(e instanceof Cloudflare.BadRequestError);
      assert.equal((e.errors[0] as { refract_code: string }).refract_code, 'E_RULE_COUNTRY');
      return true;
    });
    await assert.rejects(cf.firewall.accessRules.delete('0'.repeat(32), { zone_id: ZONE.id }), (e: unknown) => e instanceof Cloudflare.NotFoundError);

    const { token: reader } = createToken(api.store, 'sdk-rules-reader', new Date(0), { permissions: ['rules:read'] });
    const ro = new Cloudflare({ apiToken: reader, baseURL: api.base, maxRetries: 0, timeout: 5000 });
    for await (const _ of ro.firewall.accessRules.list({ zone_id: ZONE.id })) break;
    await assert.rejects(ro.firewall.accessRules.create({ zone_id: ZONE.id, mode: 'block', configuration: { target: 'ip', value: '192.0.2.9' } }), (e: unknown) => {
      assert.ok(e instanceof Cloudflare.PermissionDeniedError);
      assert.equal(e.status, 403);
      assert.equal((e.errors[0] as { code: number }).code, 10000);
      return true;
    });
    assert.deepEqual(api.store.rules(), []);
  });

  it("a block rule for 127.0.0.1 blocks new connections to its zone's ip_firewall app at once, not another zone's; deleting it lets them through", async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const app = (zone_id: string, port: number, name: string) =>
      cf.spectrum.apps.create({ zone_id, dns: { type: 'CNAME', name }, protocol: `tcp/${port}`, origin_direct: [`tcp://127.0.0.1:${origin.port}`], ip_firewall: true });
    const a1 = await app(ZONE.id, p1, 'fw.example.com');
    const a2 = await app(ZONE2.id, p2, 'fw.example.org');
    assert.equal((await exchange(p1, 'hello', { timeoutMs: 3000 })).data.toString(), 'hello');

    const rule = await cf.firewall.accessRules.create({ zone_id: ZONE.id, mode: 'block', configuration: { target: 'ip', value: '127.0.0.1' }, notes: 'loopback' });
    const blocked = await exchange(p1, 'hello', { timeoutMs: 3000 });
    assert.equal(blocked.data.length, 0, 'nothing came back through the blocked app');
    assert.equal((await exchange(p2, 'hello', { timeoutMs: 3000 })).data.toString(), 'hello', 'the other zone is unaffected');
    const deadline = Date.now() + 3000;
    const filtered = (): SpectrumEvent | undefined => events.find((e) => e.Event === 'clientFiltered' && e.EdgePort === p1);
    while (filtered() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const ev = filtered();
    assert.deepEqual([ev?.Status, ev?.ClientMatchedIpFirewall, ev?.ErrorCode, ev?.IpFirewall], [403, 'BLOCK_IP', 'E_RULE_BLOCKED', true]);
    assert.equal(events.filter((e) => e.Event === 'clientFiltered').length, 1);

    await cf.firewall.accessRules.delete(rule.id, { zone_id: ZONE.id });
    assert.equal((await exchange(p1, 'hello', { timeoutMs: 3000 })).data.toString(), 'hello', 'through again once the rule is gone');
    await cf.spectrum.apps.delete(a1.id, { zone_id: ZONE.id });
    await cf.spectrum.apps.delete(a2.id, { zone_id: ZONE2.id });
  });
});
