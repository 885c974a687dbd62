/**
 * Analytics in the simulator (src/scenario/analytics.ts): the bytime table is in the report only when asked, its
 * figures agree with the run's own connection lines, `expect.analytics` holds or fails at the entry's pointer, and
 * its bad entries are refused with E_SCENARIO_* codes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { formatSummary } from '../../../src/scenario/report.ts';
import { runScenario } from '../../../src/scenario/runner.ts';
import { parseScenario, validateScenario } from '../../../src/scenario/schema.ts';
import { minimal, scenario } from './helpers.ts';

/** Five echoed connections of 2, 4, …, 10 bytes, one every 25 s (so over three minutes), and a refused one. */
function fiveAndARefusal(s: Record<string, any>): void {
  s['timeline'] = [];
  for (let i = 0; i < 5; i++) {
    const id = `c${i}`;
    s['timeline'].push({ at: i * 25_000, connect: { id, client: 'alice', to: '198.51.100.1:7000' } }, { at: i * 25_000 + 10, send: { id, text: 'x'.repeat(2 * (i + 1)) } }, { at: i * 25_000 + 20, end: { id } });
  }
  s['apps'].push({ id: 'dead', protocol: 'tcp/7100', dns: { name: 'dead.example.test' }, origin_direct: ['tcp://192.0.2.10:9'] });
  s['timeline'].push({ at: 30_000, connect: { id: 'refused', client: 'alice', to: '198.51.100.1:7100' } });
  s['expect'] = {};
}

void describe('analytics in the simulator', () => {
  void it('the report has no analytics unless asked, and the run is the same either way', async () => {
    const plain = await runScenario(scenario(fiveAndARefusal));
    assert.equal('analytics' in plain, false);
    const asked = await runScenario(scenario(fiveAndARefusal), { analytics: true });
    assert.equal(asked.traceHash, plain.traceHash);
    assert.deepEqual(asked.connections, plain.connections);
    assert.ok(asked.analytics !== undefined && asked.analytics.length > 0);
  });

  void it("the bytime table agrees with the run's connection lines, per minute of virtual time", async () => {
    const r = await runScenario(scenario(fiveAndARefusal), { analytics: true });
    const rows = r.analytics!;
    const sum = (f: (x: (typeof rows)[number]) => boolean, k: 'count' | 'bytesIngress' | 'bytesEgress'): number => rows.filter(f).reduce((n, x) => n + x[k], 0);
    const served = r.connections.filter((c) => c.status === 200);
    assert.equal(sum((x) => x.app === 'echo' && x.event === 'connect', 'count'), 5);
    assert.equal(sum((x) => x.app === 'echo' && x.event === 'disconnect', 'count'), served.length);
    assert.equal(sum((x) => x.app === 'echo', 'bytesIngress'), served.reduce((n, c) => n + c.clientBytes, 0));
    assert.equal(sum((x) => x.app === 'echo', 'bytesEgress'), served.reduce((n, c) => n + c.originBytes, 0));
    assert.equal(sum((x) => x.app === 'echo', 'bytesIngress'), 2 + 4 + 6 + 8 + 10);
    assert.equal(sum((x) => x.name === 'dead.example.test' && x.event === 'originError', 'count'), 1);
    // c0, c1, c2 at 0, 25, 50 s; c3, c4 at 75, 100 s: minutes 00:00 and 00:01 (simulated time starts at 2026-01-01).
    assert.deepEqual([...new Set(rows.map((x) => x.minute))], ['2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z']);
    assert.equal(sum((x) => x.minute === '2026-01-01T00:00:00Z' && x.app === 'echo' && x.event === 'connect', 'count'), 3);
    assert.ok(rows.every((x) => x.count > 0), 'only cells with events');
    const text = formatSummary(r);
    assert.match(text, /^analytics \(events\/bytime per minute/m);
    assert.match(text, /^00:01\s+echo\.example\.test\s+disconnect\s+2\s+18\s+18$/m);
    assert.match(text, /^run\s+echo\.example\.test\s+disconnect\s+5\s+30\s+30$/m);
  });

  void it('expect.analytics holds, and a wrong figure fails at its pointer with both values', async () => {
    const good = await runScenario(scenario((s) => {
      fiveAndARefusal(s);
      s['expect'] = { analytics: [{ app: 'echo', event: 'disconnect', count: 5, bytes_ingress: 30, bytes_egress: 30 }, { app: 'dead.example.test', count: 2 }] };
    }));
    assert.deepEqual(good.failures, []);
    assert.ok(good.analytics !== undefined, 'asked by the scenario');
    const bad = await runScenario(scenario((s) => {
      fiveAndARefusal(s);
      s['expect'] = { analytics: [{ app: 'echo', count: 10 }, { app: 'echo', event: 'disconnect', bytes_egress: 31 }] };
    }));
    assert.deepEqual(bad.failures, [{ path: '/expect/analytics/1/bytes_egress', expected: 31, actual: 30 }]);
  });

  void it('scenarios/31-analytics.yaml: by id, DNS name and api ref', async () => {
    const parsed = parseScenario(readFileSync(new URL('../../../scenarios/31-analytics.yaml', import.meta.url), 'utf8'), '31-analytics.yaml');
    assert.ok(parsed.ok);
    const r = await runScenario(parsed.scenario);
    assert.deepEqual(r.failures, []);
    const apiId = r.api?.find((o) => o.ref === 'api')?.id;
    assert.ok(apiId);
    assert.equal(r.analytics!.filter((x) => x.app === apiId).reduce((n, x) => n + x.count, 0), 4);
  });

  void it('bad entries are refused with E_SCENARIO_* codes at their pointers', () => {
    const codes = (analytics: unknown[]): string[] => {
      const s = minimal();
      s['expect'] = { analytics };
      const r = validateScenario(s);
      assert.equal(r.ok, false);
      return r.ok ? [] : r.issues.map((i) => `${i.pointer} ${i.code}`);
    };
    // Shapes (zod): an unknown event, a negative figure, an unknown key.
    assert.deepEqual(codes([{ app: 'echo', event: 'progress', count: 1 }, { app: 'echo', count: -1 }, { app: 'echo', count: 1, colour: 'red' }]), [
      '/expect/analytics/0/event E_SCENARIO_SCHEMA',
      '/expect/analytics/1/count E_SCENARIO_SCHEMA',
      '/expect/analytics/2/colour E_SCENARIO_SCHEMA',
    ]);
    // Meaning: an app nobody defines, an entry with no figure.
    assert.deepEqual(codes([{ app: 'nope', count: 1 }, { app: 'echo' }]), ['/expect/analytics/0/app E_SCENARIO_REFERENCE', '/expect/analytics/1 E_SCENARIO_SCHEMA']);
    // A DNS name and an api create's ref are names of apps too.
    const ok = minimal();
    ok['timeline'].push({ at: 30, api: { create: { ref: 'later', app: { protocol: 'tcp/7100', dns: { type: 'CNAME', name: 'later.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] } } } });
    ok['expect'] = { analytics: [{ app: 'echo.example.test', count: 2 }, { app: 'later', count: 0 }, { app: 'later.example.test', count: 0 }] };
    const v = validateScenario(ok);
    assert.ok(v.ok, v.ok ? '' : JSON.stringify(v.issues));
  });
});
