import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadConfigText, parseConfigText, validateConfig } from '../../../src/model/config.ts';
import { isRefractError, type RefractError } from '../../../src/model/errors.ts';
import { DEFAULTS } from '../../../src/model/defaults.ts';
import { type RefractConfig } from '../../../src/model/types.ts';

/** The example from the task brief and docs/configuration.md. */
const EXAMPLE = `
node: { id: edge-1 }
edge:
  addresses: [127.0.0.1, "::1"]
  accept_proxy:
    trusted: [127.0.0.0/8]
    timeout_ms: 3000
  connect_timeout_ms: 15000
  idle_timeout_ms: 400000
  drain_timeout_ms: 30000
  max_connect_attempts: 3
  dns: { servers: ["127.0.0.1:5353"], min_ttl_sec: 30 }
log: { level: info, events: stdout }
origins:
  - { name: echo, listen: "tcp://127.0.0.1:6200-6209", behaviour: echo }
  - { name: hello, listen: "tcp://127.0.0.1:6300", behaviour: banner, banner: "220 hi\\r\\n" }
apps:
  - protocol: tcp/6100-6109
    dns: { type: CNAME, name: range.example.test }
    origin_direct: ["tcp://127.0.0.1:6200-6209"]
    proxy_protocol: v2
  - id: smtp
    protocol: tcp/6110
    dns: { name: smtp.example.test }
    origin_dns: { name: origin.example.test, ttl: 5 }
    origin_port: "6300"
    idle_timeout_ms: 60000
`;

function ok(raw: unknown): RefractConfig {
  const r = validateConfig(raw);
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  return r.config;
}
function problems(raw: unknown): string[][] {
  const r = validateConfig(raw);
  assert.ok(!r.ok, 'expected validation to fail');
  return r.issues.map((i) => [i.code, i.pointer]).sort();
}
function parseError(text: string): RefractError {
  try {
    parseConfigText(text, 'refract.yaml');
  } catch (e) {
    assert.ok(isRefractError(e));
    return e;
  }
  assert.fail('expected E_CONFIG_PARSE');
}

const app = { protocol: 'tcp/6100', dns: { name: 'a.example.test' }, origin_direct: ['tcp://127.0.0.1:6200'] };

void describe('the config file', () => {
  void it('validates the full example config', () => {
    const c = ok(parseConfigText(EXAMPLE, 'refract.yaml'));
    assert.equal(c.node.id, 'edge-1');
    assert.deepEqual(c.node.addresses, ['127.0.0.1', '::1']);
    assert.deepEqual(c.node.acceptProxy, { trusted: ['127.0.0.0/8'], timeoutMs: 3000 });
    assert.deepEqual(c.node.dnsServers, ['127.0.0.1:5353']);
    assert.equal(c.node.dnsMinTtlSec, 30);
    assert.deepEqual(c.log, { level: 'info', events: 'stdout', maxBufferBytes: 1024 * 1024, rateLimit: { lines: 10, intervalMs: 10_000 } });
    assert.equal(c.origins.length, 2);
    assert.equal(c.origins[1]?.banner, '220 hi\r\n');
    assert.deepEqual(c.apps.map((a) => a.id), [c.apps[0]?.id, 'smtp']);
    assert.equal(c.apps[1]?.idleTimeoutMs, 60000);
    assert.equal(c.apps[1]?.origin.kind === 'dns' ? c.apps[1].origin.ttlSec : 0, 5);
  });

  void it('validates the example at the top of docs/configuration.md', () => {
    const doc = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(yaml !== undefined);
    const c = ok(parseConfigText(yaml, 'docs/configuration.md'));
    assert.equal(c.apps.length, 2);
    assert.equal(c.origins.length, 2);
  });

  void it('fills every default for an empty mapping', () => {
    const c = ok({});
    assert.deepEqual(c.node, {
      id: DEFAULTS.nodeId,
      dataDir: '.refract',
      addresses: ['127.0.0.1'],
      acceptProxy: undefined,
      connectTimeoutMs: 15_000,
      idleTimeoutMs: 400_000,
      udpIdleTimeoutMs: 60_000,
      closeBlockedConnections: false,
      udpMaxFlows: 100_000,
      udpMaxDatagramBytes: 1_472,
      udpReceiveBufferBytes: 4 * 1024 * 1024,
      drainTimeoutMs: 30_000,
      dnsServers: [],
      dnsMinTtlSec: 600,
      maxConnectAttempts: 3,
      pools: { ipv4: [], ipv6: [] },
      ipv4Quota: 10,
      tls: { dataDir: '.refract', caBundle: undefined, handshakeTimeoutMs: 10_000, strictSni: true },
    });
    assert.deepEqual(c.log, { level: 'info', events: undefined, maxBufferBytes: 1024 * 1024, rateLimit: { lines: 10, intervalMs: 10_000 } });
    assert.deepEqual(c.apps, []);
    assert.deepEqual(c.origins, []);
    assert.deepEqual(c.zones, []);
    assert.equal(c.api, undefined);
  });

  void it('reads empty YAML sections (null) as absent', () => {
    ok(parseConfigText('node:\nedge:\nlog:\norigins:\napps:\n', 'x.yaml'));
  });

  void it('returns a deep-frozen config', () => {
    const c = ok(parseConfigText(EXAMPLE, 'refract.yaml'));
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.node.addresses) && Object.isFrozen(c.apps[0]?.spec['dns']));
  });

  void it('reads JSON too', () => {
    ok(parseConfigText(JSON.stringify({ apps: [app] }), 'refract.json'));
  });

  void it('gives E_CONFIG_PARSE with the line and column of a YAML error', () => {
    const e = parseError('apps:\n  - protocol: tcp/22\n    dns: [unclosed\n');
    assert.equal(e.code, 'E_CONFIG_PARSE');
    assert.equal(typeof e.details?.['line'], 'number');
    assert.ok((e.details?.['line'] as number) >= 3);
    assert.equal(typeof e.details?.['col'], 'number');
    assert.equal(e.details?.['filename'], 'refract.yaml');
  });

  void it('gives E_CONFIG_PARSE for duplicate keys, several documents, unknown tags and dangling aliases', () => {
    assert.equal(parseError('log: {}\nlog: {}\n').details?.['line'], 2);
    assert.equal(parseError('apps: []\n---\napps: []\n').code, 'E_CONFIG_PARSE');
    assert.equal(parseError('apps: !shell ls\n').code, 'E_CONFIG_PARSE');
    assert.equal(parseError('apps: *nowhere\n').code, 'E_CONFIG_PARSE');
  });

  void it('rejects a document that is not a mapping', () => {
    assert.deepEqual(problems(parseConfigText('', 'x.yaml')), [['E_CONFIG_SCHEMA', '']]);
    assert.deepEqual(problems([1]), [['E_CONFIG_SCHEMA', '']]);
  });

  void it('loadConfigText returns the issues (a syntax error as E_CONFIG_PARSE) and never throws', () => {
    const bad = loadConfigText('apps: [{protocol: tcp/0}]\n', 'x.yaml');
    assert.ok(!bad.ok);
    assert.ok(bad.issues.some((i) => i.code === 'E_CONFIG_PORT_ZERO'));
    const broken = loadConfigText('apps: [\n  - protocol: tcp/7720\n', 'x.yaml');
    assert.ok(!broken.ok);
    assert.deepEqual(broken.issues.map((i) => [i.code, i.pointer, typeof i.line]), [['E_CONFIG_PARSE', '', 'number']]);
    const good = loadConfigText(EXAMPLE, 'x.yaml');
    assert.ok(good.ok);
    assert.equal(good.config.node.id, 'edge-1');
    assert.deepEqual(good.warnings, []);
  });
});

void describe('config problems', () => {
  void it('gives E_CONFIG_SCHEMA for unknown top-level, node and edge keys', () => {
    assert.deepEqual(problems({ nodes: {}, node: { name: 'x' }, edge: { dns: { server: [] } } }), [
      ['E_CONFIG_SCHEMA', '/edge/dns/server'],
      ['E_CONFIG_SCHEMA', '/node/name'],
      ['E_CONFIG_SCHEMA', '/nodes'],
    ]);
  });
  void it('gives E_CONFIG_SCHEMA for wrong types and out-of-range settings', () => {
    assert.deepEqual(problems({ edge: { connect_timeout_ms: '15s', max_connect_attempts: 0, drain_timeout_ms: -1 }, log: { level: 'loud' }, apps: {} }), [
      ['E_CONFIG_SCHEMA', '/apps'],
      ['E_CONFIG_SCHEMA', '/edge/connect_timeout_ms'],
      ['E_CONFIG_SCHEMA', '/edge/drain_timeout_ms'],
      ['E_CONFIG_SCHEMA', '/edge/max_connect_attempts'],
      ['E_CONFIG_SCHEMA', '/log/level'],
    ]);
    assert.deepEqual(problems({ edge: 'fast' }), [['E_CONFIG_SCHEMA', '/edge']]);
  });
  void it('gives E_CONFIG_CIDR for bad trusted blocks, edge addresses and DNS servers', () => {
    assert.deepEqual(problems({ edge: { addresses: ['127.0.0.1', 'localhost'], accept_proxy: { trusted: ['10.0.0.0/33'] }, dns: { servers: ['dns.local:53'] } } }), [
      ['E_CONFIG_CIDR', '/edge/accept_proxy/trusted/0'],
      ['E_CONFIG_CIDR', '/edge/addresses/1'],
      ['E_CONFIG_CIDR', '/edge/dns/servers/0'],
    ]);
  });
  void it('rejects repeated edge addresses and an empty trusted list', () => {
    assert.deepEqual(problems({ edge: { addresses: ['127.0.0.1', '127.0.0.1'], accept_proxy: { trusted: [] } } }), [
      ['E_CONFIG_SCHEMA', '/edge/accept_proxy/trusted'],
      ['E_CONFIG_SCHEMA', '/edge/addresses/1'],
    ]);
  });
  void it('normalises DNS servers to IP:PORT', () => {
    assert.deepEqual(ok({ edge: { dns: { servers: ['127.0.0.1', '[::1]:5353'] } } }).node.dnsServers, ['127.0.0.1:53', '[::1]:5353']);
  });
  void it('collects problems from every app, with pointers into the apps list', () => {
    assert.deepEqual(problems({ apps: [app, { ...app, protocol: 'tcp/7000', origin_direct: ['udp://127.0.0.1:1'] }, 5, { ...app, protocol: 'tcp/0' }] }), [
      ['E_CONFIG_PORT_ZERO', '/apps/3/protocol'],
      ['E_CONFIG_PROTOCOL_MISMATCH', '/apps/1/origin_direct/0'],
      ['E_CONFIG_SCHEMA', '/apps/2'],
    ]);
  });
  void it('gives E_CONFIG_EDGE_CONFLICT for apps whose edge ranges overlap on one protocol', () => {
    assert.deepEqual(problems({ apps: [{ ...app, protocol: 'tcp/6000-6100' }, { ...app, protocol: 'tcp/6100', dns: { name: 'b.example.test' } }] }), [
      ['E_CONFIG_EDGE_CONFLICT', '/apps/1/protocol'],
    ]);
  });
  void it('gives E_CONFIG_DUPLICATE_ID for two apps with one id', () => {
    assert.deepEqual(problems({ apps: [{ ...app, id: 'x' }, { ...app, id: 'x', protocol: 'tcp/6101' }] }), [['E_CONFIG_DUPLICATE_ID', '/apps/1/id']]);
  });
  void it('holds origin_dns.ttl to 600 s unless edge.dns.min_ttl_sec is lower', () => {
    const dnsApp = { protocol: 'tcp/22', dns: { name: 'a.example.test' }, origin_dns: { name: 'o.example.test', ttl: 1 }, origin_port: 22 };
    assert.deepEqual(problems({ apps: [dnsApp] }), [['E_ORIGIN_DNS_INVALID', '/apps/0/origin_dns/ttl']]);
    assert.deepEqual(problems({ edge: { dns: { min_ttl_sec: 600 } }, apps: [dnsApp] }), [['E_ORIGIN_DNS_INVALID', '/apps/0/origin_dns/ttl']]);
    ok({ edge: { dns: { min_ttl_sec: 30 } }, apps: [dnsApp] });
    // A typo elsewhere in edge does not hide the lowered floor.
    assert.deepEqual(problems({ edge: { typo: 1, dns: { min_ttl_sec: 30 } }, apps: [dnsApp] }), [['E_CONFIG_SCHEMA', '/edge/typo']]);
  });
});

void describe('built-in origins', () => {
  const echo = { name: 'echo', listen: 'tcp://127.0.0.1:6200', behaviour: 'echo' };
  void it('defaults behaviour to echo', () => {
    assert.equal(ok({ origins: [{ name: 'e', listen: 'udp://127.0.0.1:6200' }] }).origins[0]?.behaviour, 'echo');
  });
  void it('requires name and listen, and a banner exactly for behaviour banner', () => {
    assert.deepEqual(problems({ origins: [{ behaviour: 'banner' }, { ...echo, banner: 'x' }] }), [
      ['E_CONFIG_SCHEMA', '/origins/0/banner'],
      ['E_CONFIG_SCHEMA', '/origins/0/listen'],
      ['E_CONFIG_SCHEMA', '/origins/0/name'],
      ['E_CONFIG_SCHEMA', '/origins/1/banner'],
    ]);
  });
  void it('rejects a banner origin on UDP, unknown keys, bad listen URIs and repeated names', () => {
    assert.deepEqual(
      problems({ origins: [{ name: 'b', listen: 'udp://127.0.0.1:1', behaviour: 'banner', banner: 'hi' }, { ...echo, port: 1 }, { ...echo, listen: 'tcp://localhost:1' }, { ...echo, listen: 'tcp://127.0.0.1:7000' }] }),
      [
        ['E_CONFIG_DUPLICATE_ID', '/origins/2/name'],
        ['E_CONFIG_DUPLICATE_ID', '/origins/3/name'],
        ['E_CONFIG_SCHEMA', '/origins/1/port'],
        ['E_CONFIG_UNSUPPORTED', '/origins/0/behaviour'],
        ['E_ORIGIN_ADDRESS_INVALID', '/origins/2/listen'],
      ],
    );
  });
  void it('gives E_CONFIG_EDGE_CONFLICT when origins overlap each other or an app port on an edge address', () => {
    assert.deepEqual(problems({ origins: [echo, { ...echo, name: 'e2', listen: 'tcp://0.0.0.0:6190-6200' }] }), [['E_CONFIG_EDGE_CONFLICT', '/origins/1/listen']]);
    assert.deepEqual(problems({ origins: [{ ...echo, listen: 'tcp://127.0.0.1:6100' }], apps: [app] }), [['E_CONFIG_EDGE_CONFLICT', '/origins/0/listen']]);
    // Same port on a host that is not an edge address, or on the other protocol, is fine.
    ok({ origins: [{ ...echo, listen: 'tcp://127.0.0.2:6100' }, { ...echo, name: 'u', listen: 'udp://127.0.0.1:6100' }], apps: [app] });
  });
});
