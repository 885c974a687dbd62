import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpPort, parseIpPort, parseScenario, parseSrvRecord, validateScenario, type ScenarioIssue } from '../../../src/scenario/schema.ts';
import { minimal, yamlOf } from './helpers.ts';

function issuesOf(edit: (s: Record<string, any>) => void): ScenarioIssue[] {
  const s = minimal();
  edit(s);
  const r = validateScenario(s);
  assert.ok(!r.ok, 'expected the scenario to be invalid');
  return [...r.issues];
}

/** The issues as `pointer code` strings, for compact assertions. */
function codes(edit: (s: Record<string, any>) => void): string[] {
  return issuesOf(edit).map((i) => `${i.pointer} ${i.code}`);
}

void describe('validateScenario', () => {
  void it('accepts the minimal scenario and returns it deep-frozen', () => {
    const r = validateScenario(minimal());
    assert.ok(r.ok);
    assert.ok(Object.isFrozen(r.scenario));
    assert.ok(Object.isFrozen(r.scenario.topology.edges[0]));
    assert.equal(r.scenario.timeline.length, 3);
  });

  void it('treats null as absent, so an empty expect section is no expectations', () => {
    const s = minimal();
    s['expect'] = null;
    s['topology'].clients[0].country = null;
    const r = validateScenario(s);
    assert.ok(r.ok);
    assert.equal(r.scenario.expect, undefined);
  });

  void it('refuses a document that is not a mapping, at pointer ""', () => {
    const r = validateScenario([1, 2]);
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map((i) => `${i.pointer} ${i.code}`), [' E_SCENARIO_SCHEMA']);
  });

  void it('reports every missing required field at once', () => {
    const r = validateScenario({ name: 'x' });
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map((i) => i.pointer).sort(), ['/apps', '/seed', '/timeline', '/topology']);
    assert.ok(r.issues.every((i) => i.code === 'E_SCENARIO_SCHEMA'));
  });

  void it('points at an unknown key, and still checks what depends on the section holding it', () => {
    const got = codes((s) => {
      s['topology'].clients[0].colour = 'red';
      s['timeline'][0].connect.to = '198.51.100.99:7000';
    });
    assert.deepEqual(got, ['/topology/clients/0/colour E_SCENARIO_SCHEMA', '/timeline/0/connect/to E_SCENARIO_REFERENCE']);
  });

  void it('refuses loopback, wildcard and multicast host addresses, and an address owned twice', () => {
    const got = codes((s) => {
      s['topology'].edges[0].addresses = ['127.0.0.1', '198.51.100.1'];
      s['topology'].clients[0].addresses = ['0.0.0.0', '224.0.0.1', '198.51.100.1'];
    });
    assert.deepEqual(got, [
      '/topology/edges/0/addresses/0 E_SCENARIO_ADDRESS',
      '/topology/clients/0/addresses/0 E_SCENARIO_ADDRESS',
      '/topology/clients/0/addresses/1 E_SCENARIO_ADDRESS',
      '/topology/clients/0/addresses/2 E_SCENARIO_DUPLICATE',
    ]);
  });

  void it('refuses a host name used twice across edges, clients and origins', () => {
    assert.deepEqual(codes((s) => (s['topology'].origins[0].name = 'alice')), ['/topology/origins/0/name E_SCENARIO_DUPLICATE']);
  });

  void it('checks origin listeners: own address, a behaviour of the listener protocol, banner text, no overlap, black holes alone', () => {
    const got = codes((s) => {
      s['topology'].origins[0].listeners = [
        { listen: 'tcp://192.0.2.99:1', behaviour: 'echo' },
        { listen: 'udp://192.0.2.10:2', behaviour: 'sink' },
        { listen: 'tcp://192.0.2.10:3', behaviour: 'banner' },
        { listen: 'tcp://192.0.2.10:7000-7010', behaviour: 'echo' },
        { listen: 'tcp://0.0.0.0:7005', behaviour: 'sink' },
        { listen: 'tcp://192.0.2.10:9', behaviour: 'blackhole' },
        { listen: 'not a uri', behaviour: 'refuse' },
      ];
    });
    assert.deepEqual(got, [
      '/topology/origins/0/listeners/0/listen E_SCENARIO_ADDRESS',
      '/topology/origins/0/listeners/1/behaviour E_SCENARIO_UNSUPPORTED',
      '/topology/origins/0/listeners/2/banner E_SCENARIO_SCHEMA',
      '/topology/origins/0/listeners/4/listen E_SCENARIO_DUPLICATE',
      '/topology/origins/0/listeners/5/behaviour E_SCENARIO_UNSUPPORTED',
      '/topology/origins/0/listeners/6/listen E_SCENARIO_ADDRESS',
    ]);
  });

  void it('checks links and DNS records', () => {
    const got = codes((s) => {
      s['topology'].links = [{ between: ['alice', 'nobody'], loss: 1 }];
      s['topology'].dns = [
        { name: 'a.example.test', type: 'A', records: ['2001:db8::1'], ttl: 5 },
        { name: 'srv.example.test', type: 'SRV', records: ['10 5 7000 echo.example.test', '10 5 0 x'], ttl: 5 },
        { name: 'not a name', type: 'AAAA', records: [], ttl: 5 },
      ];
    });
    assert.deepEqual(got, [
      '/topology/links/0/loss E_SCENARIO_SCHEMA',
      '/topology/dns/0/records/0 E_SCENARIO_ADDRESS',
      '/topology/dns/1/records/1 E_SCENARIO_ADDRESS',
      '/topology/dns/2/name E_SCENARIO_ADDRESS',
    ]);
  });

  void it('keeps the config validator codes for apps, with pointers into the scenario', () => {
    const got = issuesOf((s) => {
      s['apps'][0].protocol = 'tcp/0';
      s['edge'] = { idle_timeout_ms: -1 };
    });
    assert.deepEqual(got.map((i) => `${i.pointer} ${i.code}`), ['/edge/idle_timeout_ms E_CONFIG_SCHEMA', '/apps/0/protocol E_CONFIG_PORT_ZERO']);
  });

  void it('requires edge.addresses, when given, to be owned by every edge host (top level and reload)', () => {
    const got = codes((s) => {
      s['edge'] = { addresses: ['198.51.100.1', '198.51.100.7'] };
      s['timeline'].push({ at: 30, reload: { apps: s['apps'], edge: { addresses: ['192.0.2.10'] } } });
    });
    assert.deepEqual(got, ['/edge/addresses/1 E_SCENARIO_REFERENCE', '/timeline/3/reload/edge/addresses/0 E_SCENARIO_REFERENCE']);
  });

  void it('validates reload apps under the step pointer, with Cloudflare numbers', () => {
    const got = issuesOf((s) => {
      s['timeline'].push({ at: 30, reload: { apps: [{ protocol: 'tcp/80', dns: { name: 'x.example.test' } }] } });
    });
    assert.deepEqual(got.map((i) => `${i.pointer} ${i.code} ${i.cfCode}`), ['/timeline/3/reload/apps/0 E_ORIGIN_CONFIG_INVALID 11000']);
  });

  void it('requires one action per step and knows every action name', () => {
    const got = codes((s) => {
      s['timeline'].push({ at: 1, send: { id: 'c', text: 'x' }, end: { id: 'c' } }, { at: 2, jump: {} }, { at: 3 }, { connect: { id: 'd', client: 'alice', to: '198.51.100.1:7000' } }, 'x');
    });
    assert.deepEqual(got, [
      '/timeline/3/end E_SCENARIO_SCHEMA',
      '/timeline/4/jump E_SCENARIO_SCHEMA',
      '/timeline/5 E_SCENARIO_SCHEMA',
      '/timeline/6/at E_SCENARIO_SCHEMA',
      '/timeline/7 E_SCENARIO_SCHEMA',
    ]);
  });

  void it('checks connection ids: unique, including the ids a load generates, and opened before use', () => {
    const got = codes((s) => {
      s['timeline'].push(
        { at: 0, connect: { id: 'c', client: 'alice', to: '198.51.100.1:7000' } },
        { at: 0, load: { id_prefix: 'l', client: 'alice', to: '198.51.100.1:7000', count: 3 } },
        { at: 0, connect: { id: 'l2', client: 'alice', to: '198.51.100.1:7000' } },
        { at: 5, send: { id: 'late', bytes: 1 } },
        { at: 50, connect: { id: 'late', client: 'alice', to: '198.51.100.1:7000' } },
        { at: 6, end: { id: 'ghost' } },
      );
    });
    assert.deepEqual(got, [
      '/timeline/3/connect/id E_SCENARIO_DUPLICATE',
      '/timeline/5/connect/id E_SCENARIO_DUPLICATE',
      '/timeline/6/send/id E_SCENARIO_TIMELINE',
      '/timeline/8/end/id E_SCENARIO_REFERENCE',
    ]);
  });

  void it('checks dials: a client host, an edge ip:port, a source address of the right family', () => {
    const got = codes((s) => {
      s['topology'].clients[0].addresses = ['203.0.113.10', '2001:db8::10'];
      s['timeline'][0].connect.from = '2001:db8::10';
      s['timeline'].push(
        { at: 0, connect: { id: 'd', client: 'echo', to: '198.51.100.1' } },
        { at: 0, connect: { id: 'e', client: 'alice', to: '192.0.2.10:7000', from: '203.0.113.99' } },
      );
    });
    assert.deepEqual(got, [
      '/timeline/0/connect/from E_SCENARIO_ADDRESS',
      '/timeline/3/connect/client E_SCENARIO_REFERENCE',
      '/timeline/3/connect/to E_SCENARIO_ADDRESS',
      '/timeline/4/connect/to E_SCENARIO_REFERENCE',
      '/timeline/4/connect/from E_SCENARIO_REFERENCE',
    ]);
  });

  void it('refuses a step beyond max_time_ms, and heal with only one side', () => {
    const got = codes((s) => {
      s['max_time_ms'] = 100;
      s['timeline'].push({ at: 200, heal: { a: 'edge' } }, { at: 1, partition: { a: ['edge', 'nobody'], b: 'echo' } });
    });
    assert.deepEqual(got, ['/timeline/3/at E_SCENARIO_TIMELINE', '/timeline/3/heal E_SCENARIO_SCHEMA', '/timeline/4/partition/a/1 E_SCENARIO_REFERENCE']);
  });

  void it('checks expectations: known ids, ip:port forms, closed_at_ms order, status keys', () => {
    const got = codes((s) => {
      s['expect'] = {
        connections: [{ id: 'zz' }, { id: 'c', origin: 'nope', proxy_header: { version: 3, src: '1.2.3.4:5', dst: '1.2.3.4' }, closed_at_ms: [5, 1] }],
        statuses: { abc: 1 },
      };
    });
    assert.deepEqual(got, [
      '/expect/connections/1/proxy_header/version E_SCENARIO_SCHEMA',
      '/expect/statuses/abc E_SCENARIO_SCHEMA',
    ]);
    const deeper = codes((s) => {
      s['expect'] = { connections: [{ id: 'zz' }, { id: 'c', origin: 'nope', proxy_header: { version: 1, src: '1.2.3.4:5', dst: '1.2.3.4' }, closed_at_ms: [5, 1] }] };
    });
    assert.deepEqual(deeper, [
      '/expect/connections/0/id E_SCENARIO_REFERENCE',
      '/expect/connections/1/closed_at_ms E_SCENARIO_SCHEMA',
      '/expect/connections/1/origin E_SCENARIO_ADDRESS',
      '/expect/connections/1/proxy_header/dst E_SCENARIO_ADDRESS',
    ]);
  });
});

void describe('parseScenario', () => {
  void it('gives YAML syntax errors E_SCENARIO_PARSE with a line and column', () => {
    const r = parseScenario('name: x\nname: y\n', 'dup.yaml');
    assert.ok(!r.ok);
    assert.equal(r.issues[0]?.code, 'E_SCENARIO_PARSE');
    assert.equal(r.issues[0]?.line, 2);
  });

  void it('places each problem on the line of the value its pointer names', () => {
    const s = minimal();
    s['timeline'][1].send.id = 'nobody';
    const text = yamlOf(s);
    const r = parseScenario(text, 's.yaml');
    assert.ok(!r.ok);
    const i = r.issues[0]!;
    assert.equal(i.pointer, '/timeline/1/send/id');
    assert.match(text.split('\n')[i.line! - 1] ?? '', /id: nobody/);
  });

  void it('places a missing field on its enclosing mapping', () => {
    const text = 'name: x\nseed: 1\ntopology:\n  clients: []\napps: []\ntimeline: []\n';
    const r = parseScenario(text, 's.yaml');
    assert.ok(!r.ok);
    const i = r.issues.find((x) => x.pointer === '/topology/edges');
    assert.equal(i?.line, 4); // the topology mapping starts on line 4
  });

  void it('reads JSON as well', () => {
    const r = parseScenario(JSON.stringify(minimal()), 's.json');
    assert.ok(r.ok);
  });
});

void describe('small parsers', () => {
  void it('parseIpPort reads IPv4 and bracketed IPv6, and refuses the rest', () => {
    assert.deepEqual(parseIpPort('192.0.2.1:80'), { address: '192.0.2.1', port: 80, family: 'IPv4' });
    assert.deepEqual(parseIpPort('[2001:DB8::1]:443'), { address: '2001:db8::1', port: 443, family: 'IPv6' });
    for (const bad of ['192.0.2.1', '2001:db8::1:80', '[192.0.2.1]:80', 'host:80', '192.0.2.1:0', '192.0.2.1:65536']) assert.equal(parseIpPort(bad), undefined, bad);
  });

  void it('formatIpPort brackets IPv6 only', () => {
    assert.equal(formatIpPort('192.0.2.1', 1), '192.0.2.1:1');
    assert.equal(formatIpPort('2001:db8::1', 1), '[2001:db8::1]:1');
  });

  void it('parseSrvRecord reads zone-file order', () => {
    assert.deepEqual(parseSrvRecord('10 5 7000 Origin.Example.Test.'), { priority: 10, weight: 5, port: 7000, address: 'origin.example.test' });
    assert.equal(parseSrvRecord('10 5 7000'), undefined);
  });
});
