/**
 * The IP Access rules endpoints' contract (`/zones/{zone_id}/firewall/access_rules/rules`): the rule object,
 * validation through the model with pointers into the body, PATCH limits, file rules read-only with their scope,
 * every list filter, order and paging edge, permissions.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createToken } from '../../../src/api/tokens.ts';
import { startApi, ZONE, ZONE2, type ApiUnderTest } from './harness.ts';

const R = `/zones/${ZONE.id}/firewall/access_rules/rules`;
const R2 = `/zones/${ZONE2.id}/firewall/access_rules/rules`;
const rule = (mode: string, target: string, value: string | number, notes?: string) => ({ mode, configuration: { target, value }, ...(notes === undefined ? {} : { notes }) });

describe('IP Access rules: create, read, edit, delete', () => {
  let api: ApiUnderTest;
  before(async () => {
    api = await startApi({ zones: [ZONE, ZONE2] });
  });
  after(() => api.close());

  it("creates a rule in Cloudflare's shape: whitelist for allow, ip6 for an IPv6 address, the zone as scope", async () => {
    const r = await api.call('POST', R, { ...rule('allow', 'ip', '2001:DB8:0:0::7', 'office'), id: 'ignored', zone: ZONE2.id, scope: { type: 'user' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const got = r.json.result;
    assert.match(got.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      { ...got, id: 'ID', created_on: 'C', modified_on: 'M' },
      {
        id: 'ID',
        mode: 'whitelist',
        configuration: { target: 'ip6', value: '2001:db8::7' },
        notes: 'office',
        allowed_modes: ['block', 'whitelist'],
        scope: { id: ZONE.id, name: ZONE.name, type: 'zone' },
        created_on: 'C',
        modified_on: 'M',
      },
    );
    assert.equal(got.created_on, got.modified_on);
    assert.deepEqual(api.store.rules().map((s) => [s.zoneId, s.ruleId, s.rule]), [[ZONE.id, got.id, { mode: 'allow', configuration: { target: 'ip', value: '2001:db8::7' }, notes: 'office' }]]);
    assert.equal((await api.call('GET', `${R}/${got.id}`)).json.result.id, got.id);
    assert.equal((await api.call('GET', `${R2}/${got.id}`)).status, 404, 'a zone rule belongs to its zone only');
    assert.equal((await api.call('DELETE', `${R}/${got.id}`)).json.result.id, got.id);
    assert.deepEqual(api.store.rules(), []);
  });

  it('validates with the model: codes, pointers into the body, nothing stored', async () => {
    const cases: Array<[unknown, string, string | undefined]> = [
      [rule('challenge', 'ip', '192.0.2.1'), 'E_RULE_MODE', '/mode'],
      [rule('block', 'ip', '192.0.2.0/24'), 'E_RULE_IP', '/configuration/value'],
      [rule('block', 'ip_range', '192.0.2.5/24'), 'E_RULE_CIDR', '/configuration/value'],
      [rule('block', 'country', 'germany'), 'E_RULE_COUNTRY', '/configuration/value'],
      [rule('block', 'asn', 'AS0'), 'E_RULE_ASN', '/configuration/value'],
      [rule('block', 'hostname', 'x'), 'E_CONFIG_SCHEMA', '/configuration/target'],
      [{ mode: 'block' }, 'E_CONFIG_SCHEMA', '/configuration'],
      [[rule('block', 'ip', '192.0.2.1')], 'E_API_BAD_REQUEST', undefined],
    ];
    for (const [body, code, pointer] of cases) {
      const r = await api.call('POST', R, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.errors[0].refract_code, code, JSON.stringify(body));
      assert.equal(r.json.errors[0].source?.pointer, pointer, JSON.stringify(body));
    }
    assert.deepEqual(api.store.rules(), []);
  });

  it('refuses a second rule with the same configuration in a zone (E_RULE_DUPLICATE), not in another zone', async () => {
    const first = await api.call('POST', R, rule('block', 'country', 'FR'));
    assert.equal(first.status, 200);
    const again = await api.call('POST', R, rule('whitelist', 'country', 'fr'));
    assert.equal(again.status, 400);
    assert.equal(again.json.errors[0].refract_code, 'E_RULE_DUPLICATE');
    assert.equal(again.json.errors[0].source.pointer, '/configuration');
    const elsewhere = await api.call('POST', R2, rule('block', 'country', 'FR'));
    assert.equal(elsewhere.status, 200);
    for (const id of [first.json.result.id]) await api.call('DELETE', `${R}/${id}`);
    await api.call('DELETE', `${R2}/${elsewhere.json.result.id}`);
  });

  it('PATCH changes mode and notes only, validates the whole rule, keeps created_on', async () => {
    const c = (await api.call('POST', R, rule('block', 'asn', 13335, 'bad'))).json.result;
    const p = await api.call('PATCH', `${R}/${c.id}`, { mode: 'whitelist', configuration: { target: 'asn', value: 'as13335' }, notes: 'fine now' });
    assert.equal(p.status, 200, JSON.stringify(p.json));
    assert.deepEqual([p.json.result.mode, p.json.result.notes, p.json.result.configuration], ['whitelist', 'fine now', { target: 'asn', value: 'AS13335' }]);
    assert.equal(p.json.result.created_on, c.created_on);
    assert.notEqual(p.json.result.modified_on, c.modified_on);
    const onlyNotes = await api.call('PATCH', `${R}/${c.id}`, { notes: 'n' });
    assert.deepEqual([onlyNotes.json.result.mode, onlyNotes.json.result.notes], ['whitelist', 'n']);

    const moved = await api.call('PATCH', `${R}/${c.id}`, { mode: 'block', configuration: { target: 'asn', value: 'AS64500' } });
    assert.equal(moved.status, 400);
    assert.equal(moved.json.errors[0].refract_code, 'E_API_RULE_CONFIGURATION');
    assert.equal(moved.json.errors[0].source.pointer, '/configuration');
    const badValue = await api.call('PATCH', `${R}/${c.id}`, { configuration: { target: 'asn', value: 'x' } });
    assert.equal(badValue.json.errors[0].refract_code, 'E_RULE_ASN');
    const badMode = await api.call('PATCH', `${R}/${c.id}`, { mode: 'js_challenge' });
    assert.equal(badMode.status, 400);
    assert.equal(badMode.json.errors[0].refract_code, 'E_RULE_MODE');
    assert.equal(badMode.json.errors[0].source.pointer, '/mode');
    assert.equal(api.store.rule(c.id)?.rule['mode'], 'allow', 'refused edits left the rule as it was');

    for (const [method, path] of [['PATCH', `${R}/${'0'.repeat(32)}`], ['DELETE', `${R}/${'0'.repeat(32)}`], ['GET', `${R}/${'0'.repeat(32)}`], ['PATCH', `${R2}/${c.id}`]] as const) {
      const r = await api.call(method, path, method === 'PATCH' ? { notes: 'x' } : undefined);
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal(r.json.errors[0].refract_code, 'E_API_RULE_NOT_FOUND');
    }
    const missingZone = await api.call('GET', `/zones/${'e'.repeat(32)}/firewall/access_rules/rules`);
    assert.equal(missingZone.json.errors[0].refract_code, 'E_API_ZONE_NOT_FOUND');
    await api.call('DELETE', `${R}/${c.id}`);
  });
});

describe('IP Access rules from the config file', () => {
  let api: ApiUnderTest;
  before(async () => {
    api = await startApi({
      zones: [ZONE, ZONE2],
      access_rules: [
        { id: 'node-wide', mode: 'block', configuration: { target: 'country', value: 'T1' }, notes: 'Tor' },
        { id: 'org-only', mode: 'block', configuration: { target: 'ip_range', value: '198.51.100.0/24' }, zone: ZONE2.name },
      ],
    });
  });
  after(() => api.close());

  it('are listed with their scope (node-wide in every zone, a zone rule in its zone) and are read-only', async () => {
    const one = (await api.call('GET', R)).json.result;
    assert.deepEqual(one.map((r: any) => [r.id, r.scope]), [['node-wide', { id: 'refract-1', type: 'node' }]]);
    const two = (await api.call('GET', R2)).json.result;
    assert.deepEqual(two.map((r: any) => [r.id, r.scope]), [
      ['node-wide', { id: 'refract-1', type: 'node' }],
      ['org-only', { id: ZONE2.id, name: ZONE2.name, type: 'zone' }],
    ]);
    for (const [method, path] of [['PATCH', `${R}/node-wide`], ['DELETE', `${R}/node-wide`], ['DELETE', `${R2}/org-only`]] as const) {
      const r = await api.call(method, path, method === 'PATCH' ? { notes: 'x' } : undefined);
      assert.equal(r.status, 400, `${method} ${path}`);
      assert.equal(r.json.errors[0].refract_code, 'E_API_FILE_RULE');
      assert.match(r.json.errors[0].message, /refract\.yaml/);
    }
    assert.equal((await api.call('DELETE', `${R}/org-only`)).status, 404, "another zone's file rule is not found here");
    assert.equal(api.source.config.accessRules.length, 2);
  });

  it('an API rule may repeat a node-wide file rule in its zone (another scope)', async () => {
    const r = await api.call('POST', R, rule('whitelist', 'country', 'T1'));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await api.call('DELETE', `${R}/${r.json.result.id}`);
  });
});

describe('IP Access rules: list filters, order and paging', () => {
  let api: ApiUnderTest;
  const ids: Record<string, string> = {};
  before(async () => {
    api = await startApi({ zones: [ZONE, ZONE2] });
    const bodies: Record<string, unknown> = {
      ip4: rule('block', 'ip', '203.0.113.9', 'Attack 26/02'),
      ip6: rule('whitelist', 'ip6', '2001:db8::9', 'office v6'),
      range: rule('block', 'ip_range', '203.0.113.0/24', 'attack 27/02'),
      asn: rule('whitelist', 'asn', 'AS64500', 'partner'),
      de: rule('block', 'country', 'DE', ''),
    };
    for (const [k, body] of Object.entries(bodies)) {
      const r = await api.call('POST', R, body);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      ids[k] = r.json.result.id;
    }
    await api.call('POST', R2, rule('block', 'country', 'FR'));
  });
  after(() => api.close());

  const list = async (q: string): Promise<string[]> => {
    const r = await api.call('GET', `${R}?${q}`);
    assert.equal(r.status, 200, `${q}: ${JSON.stringify(r.json)}`);
    const byId = Object.fromEntries(Object.entries(ids).map(([k, v]) => [v, k]));
    return r.json.result.map((x: any) => byId[x.id] ?? x.id);
  };

  it("filters by mode (whitelist or allow), notes (case-insensitive substring), target (ip finds ip6 too) and value (canonical form)", async () => {
    assert.deepEqual(await list(''), ['ip4', 'ip6', 'range', 'asn', 'de'], 'creation order; only this zone');
    assert.deepEqual(await list('mode=whitelist'), ['ip6', 'asn']);
    assert.deepEqual(await list('mode=allow'), ['ip6', 'asn']);
    assert.deepEqual(await list('mode=challenge'), [], 'a mode Refract never stores matches nothing');
    assert.deepEqual(await list('notes=ATTACK'), ['ip4', 'range']);
    assert.deepEqual(await list('configuration.target=ip'), ['ip4', 'ip6']);
    assert.deepEqual(await list('configuration.target=ip6'), ['ip6']);
    assert.deepEqual(await list('configuration[target]=country'), ['de'], 'bracketed nested keys');
    assert.deepEqual(await list('configuration.value=de'), ['de']);
    assert.deepEqual(await list('configuration.value=2001:DB8:0::9'), ['ip6']);
    assert.deepEqual(await list('configuration.value=64500'), ['asn']);
    assert.deepEqual(await list('configuration.target=ip&configuration.value=203.0.113.9'), ['ip4']);
    assert.deepEqual(await list('configuration.target=ip_range&configuration.value=203.0.113.9'), [], 'a value is compared in full, not as membership');
  });

  it('combines filters with match=all (default) or match=any; a repeated key matches any of its values', async () => {
    assert.deepEqual(await list('mode=block&notes=attack'), ['ip4', 'range']);
    assert.deepEqual(await list('mode=whitelist&notes=attack'), []);
    assert.deepEqual(await list('mode=whitelist&notes=attack&match=any'), ['ip4', 'ip6', 'range', 'asn']);
    assert.deepEqual(await list('configuration.target=asn&configuration.target=country'), ['asn', 'de']);
    assert.deepEqual(await list('mode=whitelist&mode=block&notes=v6'), ['ip6']);
  });

  it('orders by configuration.target, configuration.value or mode, both directions; ties keep creation order', async () => {
    assert.deepEqual(await list('order=configuration.target'), ['asn', 'de', 'ip4', 'ip6', 'range']);
    assert.deepEqual(await list('order=configuration.value'), ['ip6', 'range', 'ip4', 'asn', 'de']);
    assert.deepEqual(await list('order=mode'), ['ip4', 'range', 'de', 'ip6', 'asn']);
    assert.deepEqual(await list('order=mode&direction=desc'), ['asn', 'ip6', 'de', 'range', 'ip4']);
    assert.deepEqual(await list('direction=desc'), ['de', 'asn', 'range', 'ip6', 'ip4']);
  });

  it('pages: per_page up to 1000 (default 20), a page past the end is 200 with result [], bad values are 400', async () => {
    const all = await api.call('GET', R);
    assert.deepEqual(all.json.result_info, { page: 1, per_page: 20, count: 5, total_count: 5, total_pages: 1 });
    const p2 = await api.call('GET', `${R}?page=2&per_page=2`);
    assert.deepEqual(p2.json.result_info, { page: 2, per_page: 2, count: 2, total_count: 5, total_pages: 3 });
    assert.equal((await api.call('GET', `${R}?per_page=1000`)).status, 200);
    const past = await api.call('GET', `${R}?page=4&per_page=2`);
    assert.equal(past.status, 200);
    assert.deepEqual(past.json.result, []);
    assert.deepEqual(past.json.result_info, { page: 4, per_page: 2, count: 0, total_count: 5, total_pages: 3 });
    for (const q of ['page=0', 'per_page=0', 'per_page=1001', 'mode=deny', 'configuration.target=hostname', 'match=some', 'order=id', 'direction=up', 'match=any&match=all']) {
      const r = await api.call('GET', `${R}?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.errors[0].refract_code, 'E_API_BAD_REQUEST', q);
    }
  });
});

describe('IP Access rules: permissions', () => {
  let api: ApiUnderTest;
  before(async () => {
    api = await startApi({ zones: [ZONE, ZONE2] });
  });
  after(() => api.close());

  it('GET needs rules:read, writes rules:edit, and the zone must be one of the token\'s', async () => {
    const { token: reader } = createToken(api.store, 'rules-reader', new Date(0), { permissions: ['rules:read'] });
    assert.equal((await api.call('GET', R, undefined, { auth: reader })).status, 200);
    const denied = await api.call('POST', R, rule('block', 'ip', '192.0.2.1'), { auth: reader });
    assert.equal(denied.status, 403);
    assert.equal(denied.json.errors[0].code, 10000);
    assert.match(denied.json.errors[0].message, /rules:edit/);
    const { token: apps } = createToken(api.store, 'apps-only', new Date(0), { permissions: ['apps:read', 'apps:edit'] });
    const noRead = await api.call('GET', R, undefined, { auth: apps });
    assert.equal(noRead.status, 403);
    assert.match(noRead.json.errors[0].message, /rules:read/);
    const { token: editor } = createToken(api.store, 'rules-editor', new Date(0), { permissions: ['rules:edit'], zones: [ZONE.id] });
    const made = await api.call('POST', R, rule('block', 'ip', '192.0.2.1'), { auth: editor });
    assert.equal(made.status, 200);
    assert.equal((await api.call('POST', R2, rule('block', 'ip', '192.0.2.1'), { auth: editor })).status, 403, 'not its zone');
    for (const method of ['PATCH', 'DELETE'] as const) {
      assert.equal((await api.call(method, `${R}/${made.json.result.id}`, method === 'PATCH' ? { notes: 'x' } : undefined, { auth: reader })).status, 403, method);
    }
    assert.equal((await api.call('DELETE', `${R}/${made.json.result.id}`, undefined, { auth: editor })).status, 200);
  });
});
