// IP Access rules in scenarios: validation of `access_rules` (top level and in reload), the geolocation the runner
// builds from topology clients, and the `matched`/`country`/`dgrams_ip_blocked` expectations.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateScenario } from '../../../src/scenario/schema.ts';
import { runScenario, topologyGeo } from '../../../src/scenario/runner.ts';
import { minimal, scenario } from './helpers.ts';

function codes(edit: (s: Record<string, any>) => void): string[] {
  const s = minimal();
  edit(s);
  const r = validateScenario(s);
  assert.ok(!r.ok, 'expected the scenario to be invalid');
  return r.issues.map((i) => `${i.pointer} ${i.code}`);
}

const blockAlice = { mode: 'block', configuration: { target: 'ip', value: '203.0.113.10' } };

void describe('scenario access_rules', () => {
  void it('refuses bad top-level rules with E_RULE_* codes and pointers under /access_rules', () => {
    assert.deepEqual(
      codes((s) => {
        s['access_rules'] = [
          { mode: 'challenge', configuration: { target: 'ip', value: '203.0.113.10' } },
          { mode: 'block', configuration: { target: 'country', value: 'germany' } },
        ];
      }),
      ['/access_rules/0/mode E_RULE_MODE', '/access_rules/1/configuration/value E_RULE_COUNTRY'],
    );
  });

  void it('refuses bad rules in a reload under the step, and a reload that gives nothing', () => {
    assert.deepEqual(
      codes((s) => {
        s['timeline'].push({ at: 30, reload: { access_rules: [blockAlice, blockAlice] } });
        s['timeline'].push({ at: 40, reload: {} });
      }),
      ['/timeline/3/reload/access_rules/1/configuration E_RULE_DUPLICATE', '/timeline/4/reload E_SCENARIO_SCHEMA'],
    );
  });

  void it('accepts a reload of access_rules alone and keeps the rules in the validated scenario', () => {
    const s = minimal();
    s['access_rules'] = [blockAlice];
    s['timeline'].push({ at: 30, reload: { access_rules: [] } });
    const r = validateScenario(s);
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
    assert.equal(r.scenario.access_rules?.length, 1);
  });

  void it('geolocates each client address, XX for unknown addresses once any client has a country', () => {
    const geo = topologyGeo([
      { name: 'a', addresses: ['203.0.113.1', '2001:DB8::1'], country: 'FR', asn: 64500 },
      { name: 'b', addresses: ['203.0.113.2'] },
    ]);
    assert.equal(geo.country('203.0.113.1'), 'FR');
    assert.equal(geo.country('2001:db8:0::1'), 'FR');
    assert.equal(geo.country('::ffff:203.0.113.1'), 'FR');
    assert.equal(geo.asn('203.0.113.1')?.asn, 64500);
    assert.equal(geo.country('203.0.113.2'), 'XX');
    assert.equal(geo.asn('203.0.113.2'), undefined);
    assert.equal(topologyGeo([{ name: 'b', addresses: ['203.0.113.2'] }]).country('203.0.113.2'), undefined);
  });

  void it('a blocked client on an ip_firewall app is 403 clientFiltered and a wrong matched expectation fails', async () => {
    const r = await runScenario(
      scenario((s) => {
        s['topology'].clients[0].country = 'DE';
        s['apps'][0].ip_firewall = true;
        s['access_rules'] = [blockAlice];
        s['expect'] = { connections: [{ id: 'c', status: 403, event: 'clientFiltered', matched: 'BLOCK_COUNTRY', country: 'DE' }] };
      }),
    );
    assert.deepEqual(r.failures.map((f) => [f.path, f.expected, f.actual]), [['/expect/connections/0/matched', 'BLOCK_COUNTRY', 'BLOCK_IP']]);
    assert.equal(r.connections[0]?.origin, null);
  });

  void it('the rules survive an edge restart', async () => {
    const r = await runScenario(
      scenario((s) => {
        s['apps'][0].ip_firewall = true;
        s['access_rules'] = [blockAlice];
        s['timeline'] = [
          { at: 0, crash: { host: 'edge' } },
          { at: 10, restart: { host: 'edge' } },
          { at: 20, connect: { id: 'c', client: 'alice', to: '198.51.100.1:7000' } },
        ];
        s['expect'] = { connections: [{ id: 'c', status: 403, matched: 'BLOCK_IP' }] };
      }),
    );
    assert.deepEqual(r.failures, []);
  });
});
