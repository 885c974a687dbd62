/**
 * Validation that catches typos (docs/configuration.md "Warnings"): unknown keys where Spectrum compatibility makes
 * Refract ignore them give W_CONFIG_UNKNOWN_KEY with a suggestion, known-ignored API fields stay silent, enum
 * errors echo the value and the allowed ones, rules no app applies give W_ACCESS_RULES_UNUSED, and
 * `loadConfigText` places every issue at its line and column. Codes, pointers, positions and the suggested key are
 * asserted; message prose is not, except that an enum message names the bad value and every allowed one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { editDistance, suggestKey } from '../../../src/model/suggest.ts';
import { validateApp } from '../../../src/model/app.ts';
import { validateAccessRules } from '../../../src/model/access-rules.ts';
import { loadConfigText, validateConfig } from '../../../src/model/config.ts';
import { type ConfigIssue } from '../../../src/model/types.ts';

const app = { protocol: 'tcp/6100', dns: { name: 'a.example.test' }, origin_direct: ['tcp://127.0.0.1:6200'] };
const rule = { mode: 'block', configuration: { target: 'ip', value: '192.0.2.1' } };

const brief = (ws: readonly ConfigIssue[]): (string | undefined)[][] => ws.map((w) => [w.code, w.pointer, w.suggestion]);

void describe('unknown keys: did you mean', () => {
  void it('edit distance counts a swap of neighbours as one edit', () => {
    assert.equal(editDistance('tsl', 'tls'), 1);
    assert.equal(editDistance('proxy_protocl', 'proxy_protocol'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });

  void it('suggests the known key within two edits, or differing only in case, - or _', () => {
    const known = ['proxy_protocol', 'ip_firewall', 'tls', 'argo_smart_routing', 'origin_dns', 'origin_direct'];
    assert.equal(suggestKey('proxy_protocl', known), 'proxy_protocol');
    assert.equal(suggestKey('ip_firwal', known), 'ip_firewall');
    assert.equal(suggestKey('tsl', known), 'tls');
    assert.equal(suggestKey('argoSmartRouting', known), 'argo_smart_routing');
    assert.equal(suggestKey('IP-Firewall', known), 'ip_firewall');
    assert.equal(suggestKey('ttl', known), undefined, 'a 3-letter key gets one edit at most');
    assert.equal(suggestKey('virtual_network', known), undefined);
    assert.equal(suggestKey('description', known), undefined);
  });

  void it('an app with a misspelt key is still valid, with a W_CONFIG_UNKNOWN_KEY warning naming the key it meant', () => {
    const r = validateApp({ ...app, proxy_protocl: 'v2' }, '/apps/0');
    assert.ok(r.ok);
    assert.equal(r.app.proxyProtocol, 'off', 'the misspelt key is ignored, as Spectrum ignores it');
    assert.deepEqual(brief(r.warnings), [['W_CONFIG_UNKNOWN_KEY', '/apps/0/proxy_protocl', 'proxy_protocol']]);
    assert.match(r.warnings[0]?.message ?? '', /proxy_protocol/);
  });

  void it('a key far from every known one still warns, without a suggestion', () => {
    const r = validateApp({ ...app, description: 'ssh' });
    assert.ok(r.ok);
    assert.deepEqual(brief(r.warnings), [['W_CONFIG_UNKNOWN_KEY', '/description', undefined]]);
  });

  void it('the Spectrum fields Refract ignores on purpose give no warning (an app copied from the API)', () => {
    const r = validateApp({ ...app, id: 'ea95132c15732412d22c1476fa83f27a', created_on: '2014-01-02T02:20:00Z', modified_on: '2014-01-02T02:20:00Z', ipv4: true });
    assert.ok(r.ok);
    assert.deepEqual(r.warnings, []);
    const rules = validateAccessRules(
      [{ ...rule, id: 'r1', notes: '', scope: { type: 'zone' }, allowed_modes: ['block'], paused: false, created_on: 'x', modified_on: 'y' }],
      '/access_rules',
    );
    assert.ok(rules.ok);
    assert.deepEqual(rules.warnings, []);
  });

  void it('warns for unknown keys in the loose sub-objects dns, edge_ips and origin_dns', () => {
    const r = validateApp(
      { protocol: 'tcp/6100', dns: { name: 'a.example.test', tpye: 'CNAME' }, edge_ips: { type: 'dynamic', conectivity: 'all' }, origin_dns: { name: 'o.example.test', ttll: 600 }, origin_port: 22 },
      '/apps/3',
    );
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(brief(r.warnings), [
      ['W_CONFIG_UNKNOWN_KEY', '/apps/3/dns/tpye', 'type'],
      ['W_CONFIG_UNKNOWN_KEY', '/apps/3/edge_ips/conectivity', 'connectivity'],
      ['W_CONFIG_UNKNOWN_KEY', '/apps/3/origin_dns/ttll', 'ttl'],
    ]);
  });

  void it('warns for unknown keys in access rules and their configuration', () => {
    const r = validateAccessRules([{ mode: 'block', configuration: { target: 'ip', value: '192.0.2.1', vaule: 'x' }, note: 'x' }], '/access_rules');
    assert.ok(r.ok);
    assert.deepEqual(brief(r.warnings).sort(), [
      ['W_CONFIG_UNKNOWN_KEY', '/access_rules/0/configuration/vaule', 'value'],
      ['W_CONFIG_UNKNOWN_KEY', '/access_rules/0/note', 'notes'],
    ]);
  });

  void it("in Refract's strict sections an unknown key stays an error, now with the suggestion", () => {
    const r = validateConfig({ edge: { conect_timeout_ms: 5, tls: { strict_sin: true } }, apps: [{ ...app, edge_tls: { certt: 'a.pem' }, tls: 'full' }] });
    assert.ok(!r.ok);
    assert.deepEqual(brief(r.issues).sort(), [
      ['E_CONFIG_SCHEMA', '/apps/0/edge_tls/certt', 'cert'],
      ['E_CONFIG_SCHEMA', '/edge/conect_timeout_ms', 'connect_timeout_ms'],
      ['E_CONFIG_SCHEMA', '/edge/tls/strict_sin', 'strict_sni'],
    ]);
  });

  void it('warnings come on the ok branch and on the failed one', () => {
    const good = validateConfig({ apps: [{ ...app, ip_firewal: true }] });
    assert.ok(good.ok);
    assert.deepEqual(brief(good.warnings), [['W_CONFIG_UNKNOWN_KEY', '/apps/0/ip_firewal', 'ip_firewall']]);
    const bad = validateConfig({ apps: [{ ...app, ip_firewal: true, protocol: 'tcp/0' }] });
    assert.ok(!bad.ok);
    assert.deepEqual(brief(bad.warnings), [['W_CONFIG_UNKNOWN_KEY', '/apps/0/ip_firewal', 'ip_firewall']]);
  });
});

void describe('enum errors name the value given and the allowed ones', () => {
  const cases: [string, unknown, string, string, readonly string[]][] = [
    ['proxy_protocol', { apps: [{ ...app, proxy_protocol: 'V2' }] }, '/apps/0/proxy_protocol', 'V2', ['off', 'v1', 'v2', 'simple']],
    ['tls', { apps: [{ ...app, tls: 'ful' }] }, '/apps/0/tls', 'ful', ['off', 'flexible', 'full', 'strict']],
    ['traffic_type', { apps: [{ ...app, traffic_type: 'tcp' }] }, '/apps/0/traffic_type', 'tcp', ['direct', 'http', 'https']],
    ['edge_ips.type', { apps: [{ ...app, edge_ips: { type: 'dyn' } }] }, '/apps/0/edge_ips/type', 'dyn', ['dynamic', 'static']],
    ['edge_ips.connectivity', { apps: [{ ...app, edge_ips: { connectivity: 'v4' } }] }, '/apps/0/edge_ips/connectivity', 'v4', ['all', 'ipv4', 'ipv6']],
    ['dns.type', { apps: [{ ...app, dns: { name: 'a.example.test', type: 'A' } }] }, '/apps/0/dns/type', 'A', ['CNAME', 'ADDRESS']],
    ['origin_dns.type', { apps: [{ protocol: 'tcp/1', dns: { name: 'a.example.test' }, origin_dns: { name: 'o.example.test', type: 'MX' }, origin_port: 1 }] }, '/apps/0/origin_dns/type', 'MX', ['A', 'AAAA', 'SRV']],
    ['access rule mode', { access_rules: [{ ...rule, mode: 'blok' }] }, '/access_rules/0/mode', 'blok', ['allow', 'block']],
    ['access rule target', { access_rules: [{ mode: 'block', configuration: { target: 'ipv4', value: '192.0.2.1' } }] }, '/access_rules/0/configuration/target', 'ipv4', ['ip', 'ip6', 'ip_range', 'country', 'asn']],
    ['log level', { log: { level: 'verbose' } }, '/log/level', 'verbose', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']],
    ['origin behaviour', { origins: [{ name: 'o', listen: 'tcp://127.0.0.1:6200', behaviour: 'mirror' }] }, '/origins/0/behaviour', 'mirror', ['echo', 'banner', 'discard']],
  ];
  for (const [name, raw, pointer, bad, allowed] of cases) {
    void it(name, () => {
      const r = validateConfig(raw);
      assert.ok(!r.ok);
      const issue = r.issues.find((i) => i.pointer === pointer);
      assert.ok(issue !== undefined, JSON.stringify(r.issues));
      assert.ok(issue.message.includes(`"${bad}"`), issue.message);
      for (const a of allowed) assert.match(issue.message, new RegExp(`\\b${a}\\b`), `${issue.message} should name ${a}`);
    });
  }
});

void describe('access rules that no app applies', () => {
  void it('warn W_ACCESS_RULES_UNUSED at /access_rules when no app has ip_firewall: true', () => {
    const r = validateConfig({ access_rules: [rule], apps: [app] });
    assert.ok(r.ok);
    assert.deepEqual(brief(r.warnings), [['W_ACCESS_RULES_UNUSED', '/access_rules', undefined]]);
    const none = validateConfig({ access_rules: [rule] });
    assert.ok(none.ok);
    assert.deepEqual(none.warnings.map((w) => w.code), ['W_ACCESS_RULES_UNUSED']);
  });

  void it('stay silent when an app has ip_firewall: true (even one that fails), or when there are no rules', () => {
    const used = validateConfig({ access_rules: [rule], apps: [app, { ...app, protocol: 'tcp/6101', ip_firewall: true }] });
    assert.ok(used.ok);
    assert.deepEqual(used.warnings, []);
    const failing = validateConfig({ access_rules: [rule], apps: [{ ...app, ip_firewall: true, protocol: 'tcp/0' }] });
    assert.ok(!failing.ok);
    assert.deepEqual(failing.warnings, []);
    const empty = validateConfig({ access_rules: [], apps: [app] });
    assert.ok(empty.ok);
    assert.deepEqual(empty.warnings, []);
  });
});

void describe('loadConfigText: line and column of each issue', () => {
  const placed = (issues: readonly ConfigIssue[]): (string | number | undefined)[][] => issues.map((i) => [i.code, i.pointer, i.line, i.column]);

  void it('YAML: an error deep in an app at its value, a misspelt key at the key, a missing field at its app', () => {
    const text = [
      'edge: { addresses: [127.0.0.1] }', // 1
      'apps:', // 2
      '  - protocol: tcp/6100', // 3
      '    dns: { name: a.example.test }', // 4
      '    origin_direct:', // 5
      '      - tcp://127.0.0.1:6200', // 6
      '      - tcp://127.0.0.1:0', // 7
      '    proxy_protocl: v2', // 8
      '  - dns: { name: b.example.test }', // 9
      '    origin_direct: ["tcp://127.0.0.1:6201"]', // 10
      '',
    ].join('\n');
    const r = loadConfigText(text, 'refract.yaml');
    assert.ok(!r.ok);
    assert.deepEqual(placed(r.issues), [
      ['E_CONFIG_PORT_ZERO', '/apps/0/origin_direct/1', 7, 9],
      ['E_CONFIG_SCHEMA', '/apps/1/protocol', 9, 5],
    ]);
    assert.deepEqual(placed(r.warnings), [['W_CONFIG_UNKNOWN_KEY', '/apps/0/proxy_protocl', 8, 5]]);
  });

  void it('JSON: the same, through the YAML parser', () => {
    const text = [
      '{',
      '  "apps": [',
      '    {',
      '      "protocol": "tcp/6100",',
      '      "dns": { "name": "a.example.test", "type": "A" },',
      '      "origin_direct": ["tcp://127.0.0.1:6200"],',
      '      "ip_firewal": true',
      '    }',
      '  ]',
      '}',
      '',
    ].join('\n');
    const r = loadConfigText(text, 'refract.json');
    assert.ok(!r.ok);
    assert.deepEqual(placed(r.issues), [['E_CONFIG_SCHEMA', '/apps/0/dns/type', 5, 50]]);
    assert.deepEqual(placed(r.warnings), [['W_CONFIG_UNKNOWN_KEY', '/apps/0/ip_firewal', 7, 7]]);
  });

  void it('a mapping-valued field is placed at its key; the whole-file issue at the start', () => {
    const r = loadConfigText('apps:\n  - protocol: tcp/6100\n    dns: { name: a.example.test }\n    origin_direct: ["tcp://127.0.0.1:6200"]\n    edge_ips:\n      type: static\n      ips: [192.0.2.1]\n', 'x.yaml');
    assert.ok(!r.ok);
    assert.deepEqual(placed(r.issues), [['E_DNS_TYPE_MISMATCH', '/apps/0/edge_ips', 5, 5]]);
    const top = loadConfigText('- 1\n', 'x.yaml');
    assert.ok(!top.ok);
    assert.deepEqual(placed(top.issues), [['E_CONFIG_SCHEMA', '', 1, 1]]);
  });

  void it('warnings on a valid file carry positions too; a syntax error is E_CONFIG_PARSE with its position', () => {
    const r = loadConfigText('access_rules:\n  - { mode: block, configuration: { target: ip, value: 192.0.2.1 } }\n', 'x.yaml');
    assert.ok(r.ok);
    assert.deepEqual(placed(r.warnings), [['W_ACCESS_RULES_UNUSED', '/access_rules', 1, 1]]);
    const broken = loadConfigText('apps:\n  - protocol: tcp/1\n   dns: x\n', 'x.yaml');
    assert.ok(!broken.ok);
    assert.equal(broken.issues[0]?.code, 'E_CONFIG_PARSE');
    assert.equal(broken.issues[0]?.line, 3);
  });
});
