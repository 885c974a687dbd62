/** A file reload through ConfigSource keeps the API's apps; a reload that conflicts with one is rejected whole. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { firstValueFrom, of, toArray } from 'rxjs';
import { freePort, startApi, ZONE } from './harness.ts';

describe('file reloads with API apps', () => {
  it('keeps API apps, and rejects a file app that overlaps one (running config unchanged)', async () => {
    const api = await startApi({ edge: { addresses: ['127.0.0.1'] } });
    try {
      const [p1, p2] = [await freePort(), await freePort()];
      const created = await api.call('POST', `/zones/${ZONE.id}/spectrum/apps`, { protocol: `tcp/${p1}`, dns: { type: 'CNAME', name: 'api.example.com' }, origin_direct: ['tcp://127.0.0.1:9'] });
      assert.equal(created.status, 200);
      const fileApp = (port: number) => ({ id: 'filed', protocol: `tcp/${port}`, dns: { type: 'CNAME', name: 'file.example.com' }, origin_direct: ['tcp://127.0.0.1:9'] });
      const results = await firstValueFrom(
        api.source
          .follow(of({ zones: [ZONE], edge: { addresses: ['127.0.0.1'] }, apps: [fileApp(p2)] }, { zones: [ZONE], edge: { addresses: ['127.0.0.1'] }, apps: [fileApp(p1)] }))
          .pipe(toArray()),
      );
      assert.deepEqual(results.map((r) => r.ok), [true, false]);
      assert.deepEqual(api.source.config.apps.map((a) => a.id).sort(), [created.json.result.id, 'filed'].sort());
      const list = await api.call('GET', `/zones/${ZONE.id}/spectrum/apps`);
      assert.equal(list.json.result_info.total_count, 2);
      assert.deepEqual(api.edge.listeners().map((l) => l.port).sort(), [p1, p2].sort());
    } finally {
      await api.close();
    }
  });
});

describe('file reloads with API apps and edge pools', () => {
  it('accepts a file app on an API app\'s port under another name (its own address); rejects one under the same name', async () => {
    const edge = { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/24'] } };
    const api = await startApi({ edge });
    try {
      const port = await freePort();
      const app = (name: string) => ({ protocol: `tcp/${port}`, dns: { type: 'CNAME', name }, edge_ips: { type: 'dynamic', connectivity: 'ipv4' }, origin_direct: ['tcp://127.0.0.1:9'] });
      const created = await api.call('POST', `/zones/${ZONE.id}/spectrum/apps`, app('api.example.com'));
      assert.equal(created.status, 200, JSON.stringify(created.json));
      const results = await firstValueFrom(
        api.source
          .follow(of({ zones: [ZONE], edge, apps: [{ id: 'filed', ...app('file.example.com') }] }, { zones: [ZONE], edge, apps: [{ id: 'filed', ...app('API.example.com') }] }))
          .pipe(toArray()),
      );
      assert.deepEqual(results.map((r) => (r.ok ? 'ok' : (r.error as { issues?: Array<{ code: string }> }).issues?.[0]?.code ?? String(r.error))), ['ok', 'E_CONFIG_EDGE_CONFLICT']);
      assert.deepEqual(
        api.edge.listeners().map((l) => `${l.host}:${l.port} ${l.app}`).sort(),
        [`127.0.10.1:${port} ${created.json.result.id}`, `127.0.10.2:${port} filed`].sort(),
        'the rejected reload left both apps on their addresses',
      );
    } finally {
      await api.close();
    }
  });
});

describe('file reloads with API rules', () => {
  it('keeps API rules, and rejects a file rule that duplicates one in its zone', async () => {
    const api = await startApi({});
    try {
      const created = await api.call('POST', `/zones/${ZONE.id}/firewall/access_rules/rules`, { mode: 'block', configuration: { target: 'asn', value: 'AS64500' } });
      assert.equal(created.status, 200);
      const fileRule = (zone?: string) => ({ mode: 'block', configuration: { target: 'asn', value: 64500 }, ...(zone === undefined ? {} : { zone }) });
      const results = await firstValueFrom(
        api.source.follow(of({ zones: [ZONE], access_rules: [fileRule()] }, { zones: [ZONE], access_rules: [fileRule(ZONE.name)] })).pipe(toArray()),
      );
      assert.deepEqual(results.map((r) => r.ok), [true, false], 'a node-wide file rule may repeat it; a rule of the same zone may not');
      assert.deepEqual(api.source.config.accessRules.map((r) => r.zone ?? 'node'), ['node', ZONE.id]);
      const list = await api.call('GET', `/zones/${ZONE.id}/firewall/access_rules/rules`);
      assert.deepEqual(list.json.result.map((r: { scope: { type: string } }) => r.scope.type), ['node', 'zone']);
    } finally {
      await api.close();
    }
  });
});
