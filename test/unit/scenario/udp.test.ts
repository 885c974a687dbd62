/**
 * UDP in scenario files: `udp://` origin listeners, the `datagram` step, `expect.flows` and `expect.udp`, checked by
 * the validator (codes and pointers) and followed by the runner (client, edge and origin side of each flow).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateScenario } from '../../../src/scenario/schema.ts';
import { runScenario } from '../../../src/scenario/runner.ts';
import { formatFailures, formatSummary } from '../../../src/scenario/report.ts';
import { parseTrace } from '../../../src/streams/trace.ts';
import { type ScenarioFile } from '../../../src/scenario/types.ts';

const PP2_SIGNATURE = '\r\n\r\n\u0000\r\nQUIT\n';

/** One edge, two clients, a UDP origin on 192.0.2.10:5000 (`behaviour`), an app on udp/53, alice sends once. */
function udpScenario(behaviour = 'echo', app: Record<string, unknown> = {}): Record<string, any> {
  return {
    name: 'udp',
    seed: 1,
    topology: {
      edges: [{ name: 'edge', addresses: ['198.51.100.1'] }],
      clients: [
        { name: 'alice', addresses: ['203.0.113.10'] },
        { name: 'bob', addresses: ['203.0.113.20'] },
      ],
      origins: [{ name: 'o', addresses: ['192.0.2.10'], listeners: [{ listen: 'udp://192.0.2.10:5000', behaviour }] }],
      links: [{ between: ['alice', 'edge'], latency_ms: 5 }],
    },
    edge: { udp_idle_timeout_ms: 1000 },
    apps: [{ id: 'u', protocol: 'udp/53', dns: { name: 'u.example.test' }, origin_direct: ['udp://192.0.2.10:5000'], ...app }],
    timeline: [{ at: 0, datagram: { id: 'a', client: 'alice', to: '198.51.100.1:53', text: 'hello' } }],
  };
}

function codes(edit: (s: Record<string, any>) => void): string[] {
  const s = udpScenario();
  edit(s);
  const r = validateScenario(s);
  assert.ok(!r.ok, 'expected the scenario to be invalid');
  return r.issues.map((i) => `${i.pointer} ${i.code}`);
}

void describe('UDP scenario validation', () => {
  void it('accepts UDP listeners of every UDP behaviour, datagram steps and flow and counter expectations', () => {
    const s = udpScenario();
    s['topology'].origins[0].listeners = [
      { listen: 'udp://192.0.2.10:5000', behaviour: 'echo' },
      { listen: 'udp://192.0.2.10:5001', behaviour: 'spp-echo', wrong_header_for: ['x'] },
      { listen: 'udp://192.0.2.10:5002-5003', behaviour: 'v2-echo' },
      { listen: 'udp://0.0.0.0:5004', behaviour: 'silent' },
      { listen: 'tcp://192.0.2.10:5000', behaviour: 'echo' }, // TCP and UDP ports are apart
    ];
    s['timeline'].push({ at: 5, datagram: { id: 'a', client: 'alice', to: '198.51.100.1:53', bytes: 100, count: 3, every_ms: 10 } });
    s['timeline'].push({ at: 5, datagram: { id: 'b', client: 'bob', to: '198.51.100.1:53', from_port: 4000, text: 'x' } });
    s['expect'] = {
      flows: [{ id: 'a', received: ['hello'], client_packets: [1, 4], origin_client: '203.0.113.10:49152', proxy_headers: 0, edge_flows: 1 }],
      udp: { flows_total: 2, spp_reply_invalid: [0, 0] },
    };
    const r = validateScenario(s);
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  });

  void it('refuses a behaviour of the other protocol, parse_proxy on UDP, wrong_header_for off spp-echo, and overlapping UDP ports', () => {
    const got = codes((s) => {
      s['topology'].origins[0].listeners = [
        { listen: 'udp://192.0.2.10:1', behaviour: 'reset' },
        { listen: 'tcp://192.0.2.10:2', behaviour: 'spp-echo' },
        { listen: 'udp://192.0.2.10:3', behaviour: 'echo', parse_proxy: true },
        { listen: 'udp://192.0.2.10:4', behaviour: 'echo', wrong_header_for: ['x'] },
        { listen: 'udp://192.0.2.10:10-20', behaviour: 'silent' },
        { listen: 'udp://0.0.0.0:15', behaviour: 'echo' },
      ];
    });
    assert.deepEqual(got, [
      '/topology/origins/0/listeners/0/behaviour E_SCENARIO_UNSUPPORTED',
      '/topology/origins/0/listeners/1/behaviour E_SCENARIO_UNSUPPORTED',
      '/topology/origins/0/listeners/2/parse_proxy E_SCENARIO_SCHEMA',
      '/topology/origins/0/listeners/3/wrong_header_for E_SCENARIO_SCHEMA',
      '/topology/origins/0/listeners/5/listen E_SCENARIO_DUPLICATE',
    ]);
  });

  void it('checks datagram steps: one payload, datagram size, edge address, fixed port range, one socket per flow id', () => {
    const got = codes((s) => {
      s['timeline'] = [
        { at: 0, connect: { id: 'c', client: 'alice', to: '198.51.100.1:53' } },
        { at: 0, datagram: { id: 'a', client: 'alice', to: '198.51.100.1:53', text: 'x', bytes: 1 } },
        { at: 0, datagram: { id: 'b', client: 'alice', to: '198.51.100.1:53' } },
        { at: 0, datagram: { id: 'd', client: 'alice', to: '192.0.2.10:53', bytes: 65_508 } },
        { at: 0, datagram: { id: 'e', client: 'alice', to: '198.51.100.1:53', text: 'x', from_port: 49_152 } },
        { at: 1, datagram: { id: 'a', client: 'bob', to: '198.51.100.1:54', text: 'x' } },
        { at: 1, datagram: { id: 'c', client: 'alice', to: '198.51.100.1:53', text: 'x' } },
        { at: 1, datagram: { id: 'f', client: 'bob', to: '198.51.100.1:53', text: 'x', from_port: 4000 } },
        { at: 1, datagram: { id: 'g', client: 'bob', to: '198.51.100.1:53', text: 'x', from_port: 4000 } },
        { at: 1, datagram: { id: 'h', client: 'nobody', to: '198.51.100.1:53', text: 'x' } },
      ];
    });
    assert.deepEqual(got, [
      '/timeline/3/datagram/bytes E_SCENARIO_SCHEMA',
      '/timeline/4/datagram/from_port E_SCENARIO_SCHEMA',
      '/timeline/5/datagram/client E_SCENARIO_DUPLICATE',
      '/timeline/5/datagram/to E_SCENARIO_DUPLICATE',
      '/timeline/6/datagram/id E_SCENARIO_DUPLICATE',
      '/timeline/1/datagram E_SCENARIO_SCHEMA',
      '/timeline/2/datagram E_SCENARIO_SCHEMA',
      '/timeline/8/datagram/from_port E_SCENARIO_DUPLICATE',
      '/timeline/9/datagram/client E_SCENARIO_REFERENCE',
    ]);
  });

  void it('checks flow and counter expectations: known flow ids, ip:port fields, [min, max] ranges, known counters', () => {
    const got = codes((s) => {
      s['expect'] = {
        flows: [{ id: 'zz' }, { id: 'a', origin_client: 'nope', origin: '1.2.3.4', client_packets: [5, 1] }],
        udp: { flows_total: [3, 2], flows_exploded: 1 },
      };
    });
    assert.deepEqual(got, [
      '/expect/udp/flows_exploded E_SCENARIO_SCHEMA',
      '/expect/flows/0/id E_SCENARIO_REFERENCE',
      '/expect/flows/1/origin E_SCENARIO_ADDRESS',
      '/expect/flows/1/origin_client E_SCENARIO_ADDRESS',
      '/expect/flows/1/client_packets E_SCENARIO_SCHEMA',
      '/expect/udp/flows_total E_SCENARIO_SCHEMA',
    ]);
  });

  void it('refuses shapes that are not a UDP behaviour or a count', () => {
    const got = codes((s) => {
      s['topology'].origins[0].listeners[0].behaviour = 'juggle';
      s['expect'] = { flows: [{ id: 'a', received_bytes: [1, 2, 3], received: 'hello' }] };
    });
    assert.deepEqual(got, [
      '/topology/origins/0/listeners/0/behaviour E_SCENARIO_SCHEMA',
      '/expect/flows/0/received E_SCENARIO_SCHEMA',
      '/expect/flows/0/received_bytes E_SCENARIO_SCHEMA',
    ]);
  });
});

void describe('UDP scenario runs', () => {
  void it('follows a flow from the client through the edge to the origin and back, apart from a TCP connection numbered alike', async () => {
    const s = udpScenario();
    // A TCP app alongside: the TCP connection and the UDP flow are both number 1 at the edge, and both use the
    // client's first ephemeral port 49152: the report must not mix them up.
    s['topology'].origins[0].listeners.push({ listen: 'tcp://192.0.2.10:7000', behaviour: 'echo' });
    s['apps'].push({ id: 't', protocol: 'tcp/7000', dns: { name: 't.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] });
    s['timeline'].push({ at: 0, connect: { id: 'c', client: 'alice', to: '198.51.100.1:7000' } });
    s['timeline'].push({ at: 10, send: { id: 'c', text: 'over tcp' } });
    s['timeline'].push({ at: 20, end: { id: 'c' } });
    s['timeline'].push({ at: 300, datagram: { id: 'a', client: 'alice', to: '198.51.100.1:53', text: 'again', count: 2, every_ms: 100 } });
    const lines: string[] = [];
    const r = await runScenario(s as ScenarioFile, { onTrace: (l) => lines.push(l) });
    assert.deepEqual(r.failures, []);
    assert.equal(r.flows.length, 1);
    const f = r.flows[0]!;
    assert.deepEqual(
      { ...f },
      {
        id: 'a',
        edge: 'edge',
        edgeFlows: 1,
        edgeFlowsClosed: 1,
        status: 200,
        event: 'disconnect',
        reason: 'idle_timeout',
        origin: '192.0.2.10:5000',
        clientPackets: 3,
        originPackets: 3,
        clientBytes: 15,
        originBytes: 15,
        sentDatagrams: 3,
        receivedDatagrams: 3,
        receivedBytes: 15,
        received: ['hello', 'again', 'again'],
        receivedForeign: 0,
        originDatagrams: 3,
        proxyHeaders: 0,
        originClient: null,
        error: null,
      },
    );
    assert.equal(r.connections[0]!.received, 'over tcp');
    assert.equal(r.connections[0]!.clientBytes, 8);
    assert.deepEqual(r.byStatus, { '200': 2 });
    assert.equal(r.udp.flows_total, 1);
    assert.equal(r.udp.dgrams_upstream, 3);
    const udp = parseTrace(lines.join('\n')).records.filter((x) => x['proto'] === 'udp');
    assert.deepEqual(udp.map((x) => x.event), ['accept', 'established', 'close']);
    assert.ok(r.quiescent);
  });

  void it('shows a silent origin: the origin counts the datagrams, the client receives nothing, the flow expires', async () => {
    const s = udpScenario('silent');
    s['timeline'][0].datagram.count = 4;
    const r = await runScenario(s as ScenarioFile);
    assert.deepEqual(r.failures, []);
    const f = r.flows[0]!;
    assert.deepEqual([f.originDatagrams, f.receivedDatagrams, f.clientPackets, f.originPackets, f.reason], [4, 0, 4, 0, 'idle_timeout']);
  });

  void it('lets received show a PROXY v2 header that an origin echoed, and counts it in proxy_headers', async () => {
    const r = await runScenario(udpScenario('echo', { proxy_protocol: 'v2' }) as ScenarioFile);
    const f = r.flows[0]!;
    assert.equal(f.proxyHeaders, 1);
    assert.ok(f.received[0]!.startsWith(PP2_SIGNATURE));
    assert.ok(f.received[0]!.endsWith('hello'));
    assert.ok(f.originBytes > 5, 'the edge counted the header-laden reply as origin bytes');
  });

  void it('counts as foreign a datagram a flow receives that it never sent', async () => {
    // The app's origin is bob's own socket: alice's datagram lands there, a payload bob never sent.
    const s = udpScenario('echo', { origin_direct: ['udp://203.0.113.20:4000'] });
    s['timeline'] = [
      { at: 0, datagram: { id: 'b', client: 'bob', to: '198.51.100.1:53', from_port: 4000, text: 'from bob' } },
      { at: 50, datagram: { id: 'a', client: 'alice', to: '198.51.100.1:53', text: 'from alice' } },
    ];
    s['expect'] = { flows: [{ id: 'b', received_foreign: 0 }] };
    const r = await runScenario(s as ScenarioFile);
    const b = r.flows.find((x) => x.id === 'b')!;
    assert.deepEqual([b.received, b.receivedForeign], [['from bob', 'from alice'], 1]);
    assert.deepEqual(r.failures.map((x) => [x.path, x.expected, x.actual]), [['/expect/flows/0/received_foreign', 0, 1]]);
  });

  void it('records a datagram from a crashed client host as EHOSTDOWN and sends nothing', async () => {
    const s = udpScenario();
    s['timeline'] = [
      { at: 0, crash: { host: 'bob' } },
      { at: 10, datagram: { id: 'b', client: 'bob', to: '198.51.100.1:53', text: 'x' } },
    ];
    const r = await runScenario(s as ScenarioFile);
    assert.deepEqual([r.flows[0]!.error, r.flows[0]!.sentDatagrams, r.flows[0]!.edge], ['EHOSTDOWN', 0, null]);
  });

  void it('reports failed flow and counter expectations with their pointer, the expected count or range, and the actual value', async () => {
    const s = udpScenario('silent');
    s['expect'] = {
      flows: [{ id: 'a', received: ['hello'], client_packets: [2, 5], origin_packets: 0, received_foreign: 0, origin_client: '203.0.113.10:49152', edge_flows: 2 }],
      udp: { flows_total: 1, spp_reply_invalid: 1 },
    };
    const r = await runScenario(s as ScenarioFile);
    assert.deepEqual(
      r.failures.map((x) => [x.path, x.expected, x.actual]),
      [
        ['/expect/flows/0/client_packets', 'between 2 and 5', 1],
        ['/expect/flows/0/edge_flows', 2, 1],
        ['/expect/flows/0/received', ['hello'], []],
        ['/expect/flows/0/origin_client', '203.0.113.10:49152', null],
        ['/expect/udp/spp_reply_invalid', 1, 0],
      ],
    );
    assert.match(formatFailures(r.failures), /\/expect\/flows\/0\/client_packets/);
  });

  void it('summarises UDP flows one row each, with the non-zero UDP counters', async () => {
    const r = await runScenario(udpScenario('spp-echo', { proxy_protocol: 'simple' }) as ScenarioFile);
    const text = formatSummary(r);
    assert.match(text, /^a +200 +idle_timeout +192\.0\.2\.10:5000 +1 +1 +1 +1 +0 +203\.0\.113\.10:49152$/m);
    assert.match(text, /udp counters: flows_total 1, dgrams_upstream 1, dgrams_downstream 1/);
  });
});
