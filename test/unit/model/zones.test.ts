/** Zones in the config: an app's zone (named or by DNS name), zone-scoped IP Access rules, E_CONFIG_ZONE. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deriveZoneId, validateConfig } from '../../../src/model/config.ts';
import { deriveRuleId, validateAccessRules } from '../../../src/model/access-rules.ts';
import { findZone, zoneOfName } from '../../../src/model/zones.ts';

const A = { id: 'a'.repeat(32), name: 'example.com' };
const EU = { name: 'eu.example.com' };
const EU_ID = deriveZoneId('eu.example.com');
const app = (name: string, port: number, extra: Record<string, unknown> = {}) => ({
  protocol: `tcp/${port}`,
  dns: { type: 'CNAME', name },
  origin_direct: ['tcp://192.0.2.1:22'],
  ...extra,
});

describe('zones of apps and rules', () => {
  it('finds a zone by id or by name (any case, final dot), and a DNS name by its longest parent', () => {
    const zones = [A, { id: EU_ID, name: 'eu.example.com' }];
    assert.equal(findZone(A.id, zones), A);
    assert.equal(findZone('EU.Example.com.', zones)?.id, EU_ID);
    assert.equal(findZone('other.example', zones), undefined);
    assert.equal(zoneOfName('ssh.eu.example.com', zones)?.id, EU_ID);
    assert.equal(zoneOfName('ssh.example.com', zones)?.id, A.id);
    assert.equal(zoneOfName('eu.example.com.', zones)?.id, EU_ID);
    assert.equal(zoneOfName('elsewhere.test', zones)?.id, A.id, 'no parent: the first zone');
    assert.equal(zoneOfName('elsewhere.test', []), undefined);
  });

  it('gives each app its named zone, else the zone of its dns.name; spec has no zone field', () => {
    const r = validateConfig({
      zones: [A, EU],
      apps: [app('ssh.eu.example.com', 2201), app('ssh.example.com', 2202), app('ssh.eu.example.com', 2203, { zone: 'example.com' }), app('x.test', 2204, { zone: EU_ID })],
    });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    assert.deepEqual(r.config.apps.map((a) => a.zoneId), [EU_ID, A.id, A.id, EU_ID]);
    assert.equal('zone' in r.config.apps[2]!.spec, false);
    const none = validateConfig({ apps: [app('ssh.example.com', 2201)] });
    assert.ok(none.ok);
    assert.equal(none.config.apps[0]!.zoneId, undefined, 'no zones configured: no zone');
  });

  it('keeps zone-scoped rules apart from node-wide ones: duplicates only within a scope, ids per zone', () => {
    const rule = (extra: Record<string, unknown> = {}) => ({ mode: 'block', configuration: { target: 'ip', value: '192.0.2.1' }, ...extra });
    const r = validateConfig({ zones: [A, EU], access_rules: [rule(), rule({ zone: 'example.com' }), rule({ zone: EU_ID })] });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    assert.deepEqual(r.config.accessRules.map((x) => x.zone), [undefined, A.id, EU_ID]);
    const ids = r.config.accessRules.map((x) => x.id);
    assert.equal(new Set(ids).size, 3);
    assert.equal(ids[0], deriveRuleId('ip', '192.0.2.1'), 'a node-wide rule keeps the id it always had');
    assert.equal(ids[1], deriveRuleId('ip', '192.0.2.1', A.id));
    const dup = validateConfig({ zones: [A], access_rules: [rule({ zone: 'example.com' }), rule({ zone: A.id, notes: 'again' })] });
    assert.deepEqual(dup.ok ? [] : dup.issues.map((i) => [i.pointer, i.code]), [['/access_rules/1/configuration', 'E_RULE_DUPLICATE']]);
  });

  it('refuses a zone that is not configured with E_CONFIG_ZONE at the zone field', () => {
    const r = validateConfig({
      zones: [A],
      apps: [app('ssh.example.com', 2201, { zone: 'nope.example' })],
      access_rules: [{ mode: 'block', configuration: { target: 'country', value: 'FR' }, zone: 'f'.repeat(32) }],
    });
    assert.deepEqual(r.ok ? [] : r.issues.map((i) => [i.pointer, i.code]).sort(), [
      ['/access_rules/0/zone', 'E_CONFIG_ZONE'],
      ['/apps/0/zone', 'E_CONFIG_ZONE'],
    ]);
    const noZones = validateAccessRules([{ mode: 'block', configuration: { target: 'asn', value: 13335 }, zone: 'example.com' }], '/access_rules');
    assert.deepEqual(noZones.ok ? [] : noZones.issues.map((i) => [i.pointer, i.code]), [['/access_rules/0/zone', 'E_CONFIG_ZONE']]);
  });

  it('a validated zone rule validates to itself (its zone is the zone id)', () => {
    const r = validateAccessRules([{ mode: 'whitelist', configuration: { target: 'ip6', value: '2001:DB8::1' }, zone: 'Example.com' }], '', { zones: [A] });
    assert.ok(r.ok);
    const again = validateAccessRules(JSON.parse(JSON.stringify(r.rules)), '', { zones: [A] });
    assert.ok(again.ok);
    assert.deepEqual(again.rules, r.rules);
    assert.equal(r.rules[0]!.zone, A.id);
  });
});

describe('zone lookups by index (issue #16: O(apps × zones) before)', () => {
  // The scans the index replaced, kept here as the specification.
  const naiveFind = (ref: string, zones: readonly { id: string; name: string }[]) =>
    zones.find((z) => z.id === ref) ?? zones.find((z) => z.name === ref.toLowerCase().replace(/\.$/, ''));
  const naiveOf = (dnsName: string, zones: readonly { id: string; name: string }[]) => {
    const name = dnsName.toLowerCase().replace(/\.$/, '');
    let best: { id: string; name: string } | undefined;
    for (const z of zones) if ((name === z.name || name.endsWith(`.${z.name}`)) && (best === undefined || z.name.length > best.name.length)) best = z;
    return best ?? zones[0];
  };
  it('finds what a scan in list order finds, for random zones and names', async () => {
    const fc = (await import('fast-check')).default;
    const label = fc.constantFrom('a', 'b', 'eu', 'example', 'com', 'x-1');
    const dns = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
    const zone = fc.record({ id: fc.constantFrom('1'.repeat(32), '2'.repeat(32), '3'.repeat(32)), name: dns });
    fc.assert(
      fc.property(fc.array(zone, { maxLength: 6 }), dns, fc.boolean(), (zones, name, upper) => {
        const n = upper ? `${name.toUpperCase()}.` : name;
        assert.equal(zoneOfName(n, zones), naiveOf(n, zones));
        assert.equal(findZone(n, zones), naiveFind(n, zones));
        for (const z of zones) assert.equal(findZone(z.id, zones), naiveFind(z.id, zones));
      }),
      { numRuns: 3_000, seed: 16 },
    );
  });
});
