/**
 * DNS in scenarios: the `dns` section (the edge's authoritative DNS server on the simulated network), edge pools the
 * edge host owns, the `resolve` step, `connect`/`datagram` to a resolved address, the api step's `rotate`, and
 * `expect.resolutions`: their checks (E_SCENARIO_* with pointers) and runs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseScenario, validateScenario, type ScenarioIssue } from '../../../src/scenario/schema.ts';
import { runScenario } from '../../../src/scenario/runner.ts';
import { formatSummary } from '../../../src/scenario/report.ts';
import { type ScenarioFile } from '../../../src/scenario/types.ts';
import { yamlOf } from './helpers.ts';

/**
 * One edge with pools and a DNS server on 198.51.100.1:53, alice (IPv4 and IPv6) and bob (IPv4 only), an echo origin
 * (TCP and UDP on 7000), a file app `echo`; alice resolves its name and connects to the answer.
 */
function base(): Record<string, any> {
  return {
    name: 'dns',
    seed: 1,
    topology: {
      edges: [{ name: 'edge', addresses: ['198.51.100.1', '2001:db8::1'] }],
      clients: [
        { name: 'alice', addresses: ['192.0.2.100', '2001:db8:1::100'] },
        { name: 'bob', addresses: ['192.0.2.101'] },
      ],
      origins: [
        {
          name: 'echo',
          addresses: ['192.0.2.10'],
          listeners: [
            { listen: 'tcp://192.0.2.10:7000', behaviour: 'echo' },
            { listen: 'udp://192.0.2.10:7000', behaviour: 'echo' },
          ],
        },
      ],
    },
    edge: { pools: { ipv4: ['203.0.113.0/24'], ipv6: ['2001:db8:10::/64'] }, drain_timeout_ms: 1000 },
    dns: { listen: '198.51.100.1:53' },
    apps: [{ id: 'echo', protocol: 'tcp/7000', dns: { type: 'CNAME', name: 'echo.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] }],
    timeline: [
      { at: 0, resolve: { id: 'r', client: 'alice', name: 'echo.example.test' } },
      { at: 100, connect: { id: 'c', client: 'alice', resolved: 'r', port: 7000 } },
      { at: 110, send: { id: 'c', text: 'hi' } },
      { at: 120, end: { id: 'c' } },
    ],
    expect: {
      resolutions: [{ id: 'r', rcode: 'NOERROR', addresses: ['203.0.113.1'], ttl: 30 }],
      connections: [{ id: 'c', status: 200, received: 'hi', origin: '192.0.2.10:7000' }],
    },
  };
}

function build(edit: (s: Record<string, any>) => void = () => {}): ScenarioFile {
  const s = base();
  edit(s);
  return s as ScenarioFile;
}

function codes(edit: (s: Record<string, any>) => void): string[] {
  const r = validateScenario(build(edit));
  assert.ok(!r.ok, 'expected the scenario to be invalid');
  return r.issues.map((i: ScenarioIssue) => `${i.pointer} ${i.code}`).sort();
}

void describe('DNS in scenarios: checks', () => {
  void it('accepts the dns section, pools, resolve steps, resolved connects and datagrams, rotate and resolution expectations', () => {
    const s = base();
    s['apps'].push({ id: 'game', protocol: 'udp/7000', dns: { type: 'CNAME', name: 'game.example.test' }, origin_direct: ['udp://192.0.2.10:7000'] });
    s['timeline'].push(
      { at: 0, resolve: { id: 'r6', client: 'alice', name: 'echo.example.test', type: 'AAAA', tcp: true, server: '[2001:db8::1]:53' } },
      { at: 200, datagram: { id: 'f', client: 'alice', resolved: 'r6', port: 7000, text: 'x' } },
      { at: 300, datagram: { id: 'f', client: 'alice', resolved: 'r6', port: 7000, text: 'y' } },
      { at: 300, api: { rotate: { ref: 'echo' } } },
      { at: 400, connect: { id: 'direct', client: 'bob', to: '203.0.113.1:7000' } },
    );
    s['expect'].resolutions.push({ id: 'r6', addresses: ['2001:DB8:10::1'] });
    const r = validateScenario(s);
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
    assert.equal(r.scenario.dns?.listen, '198.51.100.1:53');
  });

  void it('dns: listen is IP:PORT of an edge host, one per edge; ttl in range; unknown fields refused', () => {
    assert.deepEqual(
      codes((s) => (s['dns'] = { listen: '198.51.100.1' })),
      ['/dns/listen E_SCENARIO_ADDRESS'],
    );
    assert.deepEqual(
      codes((s) => (s['dns'] = { listen: '198.51.100.1:53', ttl: 0 })),
      ['/dns/ttl E_SCENARIO_SCHEMA'],
    );
    assert.deepEqual(
      codes((s) => (s['dns'] = { listen: ['192.0.2.10:53', '198.51.100.1:53', '[2001:db8::1]:5300'], port: 53 })),
      ['/dns/listen/0 E_SCENARIO_REFERENCE', '/dns/listen/2 E_SCENARIO_DUPLICATE', '/dns/port E_SCENARIO_SCHEMA'],
    );
  });

  void it('resolve: a known client, a host name, a server IP:PORT (or a dns section) the client can reach, each id once', () => {
    assert.deepEqual(
      codes((s) => {
        s['timeline'].push(
          { at: 0, resolve: { id: 'a', client: 'nobody', name: 'echo.example.test' } },
          { at: 0, resolve: { id: 'b', client: 'alice', name: 'not a name' } },
          { at: 0, resolve: { id: 'c', client: 'alice', name: 'echo.example.test', server: '198.51.100.1' } },
          { at: 0, resolve: { id: 'd', client: 'bob', name: 'echo.example.test', server: '[2001:db8::1]:53' } },
          { at: 0, resolve: { id: 'r', client: 'alice', name: 'echo.example.test' } },
          { at: 0, resolve: { id: 'e', client: 'alice', name: 'echo.example.test', type: 'MX' } },
        );
      }),
      [
        '/timeline/4/resolve/client E_SCENARIO_REFERENCE',
        '/timeline/5/resolve/name E_SCENARIO_ADDRESS',
        '/timeline/6/resolve/server E_SCENARIO_ADDRESS',
        '/timeline/7/resolve/server E_SCENARIO_ADDRESS',
        '/timeline/8/resolve/id E_SCENARIO_DUPLICATE',
        '/timeline/9/resolve/type E_SCENARIO_SCHEMA',
      ],
    );
    assert.deepEqual(
      codes((s) => delete s['dns']),
      ['/timeline/0/resolve E_SCENARIO_REFERENCE'],
    );
  });

  void it('connect and datagram: exactly one of to and resolved; resolved needs port, names a resolve that runs earlier, of a family the client has', () => {
    assert.deepEqual(
      codes((s) => {
        s['timeline'].push(
          { at: 200, connect: { id: 'both', client: 'alice', to: '198.51.100.1:7000', resolved: 'r', port: 7000 } },
          { at: 200, connect: { id: 'neither', client: 'alice' } },
          { at: 200, connect: { id: 'noport', client: 'alice', resolved: 'r' } },
          { at: 200, connect: { id: 'toport', client: 'alice', to: '198.51.100.1:7000', port: 7000 } },
          { at: 200, connect: { id: 'ghost', client: 'alice', resolved: 'ghost', port: 7000 } },
          { at: 0, connect: { id: 'early', client: 'alice', resolved: 'r', port: 7000 } },
          { at: 100, resolve: { id: 'r6', client: 'alice', name: 'echo.example.test', type: 'AAAA' } },
          { at: 200, connect: { id: 'v4only', client: 'bob', resolved: 'r6', port: 7000 } },
          { at: 200, connect: { id: 'fromv4', client: 'alice', resolved: 'r6', port: 7000, from: '192.0.2.100' } },
          { at: 200, datagram: { id: 'f', client: 'alice', resolved: 'r', port: 7000, text: 'x' } },
          { at: 300, datagram: { id: 'f', client: 'alice', resolved: 'r6', port: 7000, text: 'y' } },
        );
      }),
      [
        '/timeline/11/connect/resolved E_SCENARIO_ADDRESS',
        '/timeline/12/connect/from E_SCENARIO_ADDRESS',
        '/timeline/14/datagram/resolved E_SCENARIO_DUPLICATE',
        '/timeline/4/connect E_SCENARIO_SCHEMA',
        '/timeline/5/connect E_SCENARIO_SCHEMA',
        '/timeline/6/connect/port E_SCENARIO_SCHEMA',
        '/timeline/7/connect/port E_SCENARIO_SCHEMA',
        '/timeline/8/connect/resolved E_SCENARIO_REFERENCE',
        '/timeline/9/connect/resolved E_SCENARIO_TIMELINE',
      ],
    );
  });

  void it('a resolve at the same time as the connect is too late (its answer needs a round trip)', () => {
    assert.deepEqual(
      codes((s) => (s['timeline'][1].at = 0)),
      ['/timeline/1/connect/resolved E_SCENARIO_TIMELINE'],
    );
  });

  void it('expect.resolutions names a resolve id, IP literals, a known rcode', () => {
    assert.deepEqual(
      codes((s) => s['expect'].resolutions.push({ id: 'ghost' }, { id: 'r', addresses: ['www.example.test'] })),
      ['/expect/resolutions/1/id E_SCENARIO_REFERENCE', '/expect/resolutions/2/addresses/0 E_SCENARIO_ADDRESS'],
    );
    assert.deepEqual(
      codes((s) => s['expect'].resolutions.push({ id: 'r', rcode: 'NOPE' })),
      ['/expect/resolutions/1/rcode E_SCENARIO_SCHEMA'],
    );
  });

  void it('pools: one edge only (no anycast), no other host address and no loopback inside; a dial into a pool is an edge address', () => {
    assert.deepEqual(
      codes((s) => s['topology'].edges.push({ name: 'edge2', addresses: ['198.51.100.2'] })),
      ['/edge/pools/ipv4/0 E_SCENARIO_UNSUPPORTED', '/edge/pools/ipv6/0 E_SCENARIO_UNSUPPORTED'],
    );
    assert.deepEqual(
      codes((s) => (s['edge'].pools = { ipv4: ['192.0.2.0/24'], ipv6: ['2001:db8:10::/64'] })),
      ['/edge/pools/ipv4/0 E_SCENARIO_ADDRESS'],
    );
    assert.deepEqual(
      codes((s) => s['timeline'].push({ at: 50, reload: { edge: { pools: { ipv4: ['127.0.10.0/24'] } } } })),
      ['/timeline/4/reload/edge/pools/ipv4/0 E_SCENARIO_ADDRESS'],
    );
    assert.deepEqual(
      codes((s) => s['timeline'].push({ at: 50, connect: { id: 'x', client: 'bob', to: '203.0.114.1:7000' } })),
      ['/timeline/4/connect/to E_SCENARIO_REFERENCE'],
    );
  });

  void it('api rotate: one write per step, a ref made earlier or a file app id', () => {
    assert.deepEqual(
      codes((s) => s['timeline'].push({ at: 50, api: { rotate: { ref: 'ghost' } } }, { at: 50, api: { rotate: { ref: 'echo' }, delete: { ref: 'echo' } } })),
      ['/timeline/4/api/rotate/ref E_SCENARIO_REFERENCE', '/timeline/5/api E_SCENARIO_SCHEMA'],
    );
  });

  void it('gives the line and column of a bad resolve field', () => {
    const r = parseScenario(yamlOf(build((s) => (s['timeline'][0].resolve.server = 'dns.example:53'))), 'x.yaml');
    assert.ok(!r.ok);
    assert.equal(r.issues[0]!.pointer, '/timeline/0/resolve/server');
    assert.equal(typeof r.issues[0]!.line, 'number');
  });
});

void describe('DNS in scenarios: runs', () => {
  void it('a client resolves a file app of a pool through the edge DNS server and connects to the answer; the summary shows the resolve', async () => {
    const r = await runScenario(build());
    assert.deepEqual(r.failures, []);
    assert.equal(r.resolutions?.length, 1);
    const x = r.resolutions[0]!;
    assert.deepEqual(
      { ...x },
      { id: 'r', client: 'alice', name: 'echo.example.test', type: 'A', server: '198.51.100.1:53', transport: 'udp', truncated: false, sentAtMs: 0, answeredAtMs: x.answeredAtMs, rcode: 'NOERROR', addresses: ['203.0.113.1'], ttl: 30, error: null, dialledBy: ['c'] },
    );
    assert.ok(x.answeredAtMs !== null && x.answeredAtMs > 0);
    const text = formatSummary(r);
    assert.match(text, /^resolve +at +client +question/m);
    assert.match(text, /^r +0 ms +alice +echo\.example\.test A +198\.51\.100\.1:53 udp +NOERROR +203\.0\.113\.1 +30 s +c$/m);
  });

  void it('a report without resolve steps has no resolutions key (runs without them are unchanged)', async () => {
    const r = await runScenario(
      build((s) => {
        s['timeline'] = [{ at: 0, connect: { id: 'c', client: 'alice', to: '198.51.100.1:7000' } }, { at: 10, end: { id: 'c' } }];
        s['expect'] = {};
        delete s['edge'].pools;
      }),
    );
    assert.deepEqual(r.failures, []);
    assert.equal('resolutions' in r, false);
  });

  void it('the expectations compare: another address set, rcode or ttl is a failure at its pointer', async () => {
    const r = await runScenario(build((s) => (s['expect'].resolutions = [{ id: 'r', rcode: 'NXDOMAIN', addresses: ['203.0.113.1', '203.0.113.2'], ttl: 60 }])));
    assert.deepEqual(
      r.failures.map((f) => [f.path, f.expected, f.actual]),
      [
        ['/expect/resolutions/0/rcode', 'NXDOMAIN', 'NOERROR'],
        ['/expect/resolutions/0/addresses', ['203.0.113.1', '203.0.113.2'], ['203.0.113.1']],
        ['/expect/resolutions/0/ttl', 60, 30],
      ],
    );
  });

  void it('NXDOMAIN, then a connect to it: the connect is not made, a failure at its resolved says why', async () => {
    const r = await runScenario(
      build((s) => {
        s['timeline'][0].resolve.name = 'nobody.example.test';
        s['expect'] = { resolutions: [{ id: 'r', rcode: 'NXDOMAIN', addresses: [] }] };
      }),
    );
    assert.deepEqual(
      r.failures.map((f) => [f.path, f.actual]),
      [['/timeline/1/connect/resolved', 'resolve r answered NXDOMAIN with no A record']],
    );
    assert.deepEqual(r.connections, []);
  });

  void it('no server listening: two UDP attempts 5 s apart, then ETIMEOUT; a connect to it fails with the reason', async () => {
    const r = await runScenario(
      build((s) => {
        s['timeline'][0].resolve.server = '192.0.2.10:53';
        s['timeline'][1].at = 20_000;
        s['timeline'].splice(2);
        s['expect'] = { resolutions: [{ id: 'r', rcode: 'NOERROR' }] };
      }),
    );
    assert.deepEqual(
      r.failures.map((f) => [f.path, f.actual]),
      [
        ['/timeline/1/connect/resolved', 'resolve r got no answer (ETIMEOUT)'],
        ['/expect/resolutions/0/rcode', 'no answer (ETIMEOUT)'],
      ],
    );
    assert.equal(r.resolutions?.[0]?.answeredAtMs, null);
    assert.equal(r.resolutions?.[0]?.error, 'ETIMEOUT');
  });

  void it('a connect before the answer arrived fails: the resolution has no answer yet', async () => {
    const r = await runScenario(
      build((s) => {
        s['topology'].links = [{ between: ['alice', 'edge'], latency_ms: 100 }];
        s['timeline'].splice(2);
        s['expect'] = {};
      }),
    );
    assert.deepEqual(
      r.failures.map((f) => [f.path, f.actual]),
      [['/timeline/1/connect/resolved', 'resolve r has no answer yet (asked at 0 ms)']],
    );
  });

  void it('an answer too large for 512 bytes comes back truncated over UDP, and the stub asks again over TCP', async () => {
    const addresses = Array.from({ length: 40 }, (_, i) => `198.51.100.${i + 1}`);
    const r = await runScenario(
      build((s) => {
        s['topology'].edges[0].addresses = addresses;
        delete s['edge'].pools;
        s['timeline'][1].connect.port = 7000;
        s['expect'] = { resolutions: [{ id: 'r', rcode: 'NOERROR', addresses, ttl: 30 }], connections: [{ id: 'c', status: 200, received: 'hi' }] };
      }),
    );
    assert.deepEqual(r.failures, []);
    assert.equal(r.resolutions?.[0]?.truncated, true);
    assert.equal(r.resolutions?.[0]?.transport, 'tcp');
    assert.ok(r.quiescent, 'the TCP exchange closed');
  });

  void it('rotate: the answer follows, the old address refuses new connections; a file app rotates as through the endpoint; a static app is refused', async () => {
    const r = await runScenario(
      build((s) => {
        s['apps'].push({ id: 'fixed', protocol: 'tcp/7100', dns: { type: 'ADDRESS', name: 'fixed.example.test' }, edge_ips: { type: 'static', ips: ['203.0.113.50'] }, origin_direct: ['tcp://192.0.2.10:7000'] });
        s['timeline'].push(
          { at: 200, api: { rotate: { ref: 'echo' } } },
          { at: 200, api: { rotate: { ref: 'fixed' }, expect_error: 'E_EDGE_IP_NOT_ROTATABLE' } },
          { at: 300, resolve: { id: 'r2', client: 'alice', name: 'ECHO.example.test' } },
          { at: 300, resolve: { id: 'f', client: 'alice', name: 'fixed.example.test' } },
          { at: 400, connect: { id: 'new', client: 'alice', resolved: 'r2', port: 7000 } },
          { at: 400, connect: { id: 'old', client: 'alice', resolved: 'r', port: 7000 } },
          { at: 410, send: { id: 'new', text: 'new' } },
          { at: 420, end: { id: 'new' } },
        );
        s['expect'].resolutions.push({ id: 'r2', addresses: ['203.0.113.2'] }, { id: 'f', addresses: ['203.0.113.50'] });
        s['expect'].connections.push({ id: 'new', status: 200, received: 'new' }, { id: 'old', error: 'ECONNREFUSED' });
      }),
    );
    assert.deepEqual(r.failures, []);
    assert.deepEqual(
      r.api?.map((a) => [a.op, a.ref, a.code, a.ips ?? null]),
      [
        ['rotate', 'echo', null, ['203.0.113.2', '2001:db8:10::2']],
        ['rotate', 'fixed', 'E_EDGE_IP_NOT_ROTATABLE', null],
      ],
    );
    assert.match(formatSummary(r), /rotate +echo +edge +applied, app echo now on 203\.0\.113\.2, 2001:db8:10::2/);
  });

  void it('a datagram to a resolved address reaches the UDP app; later steps of the flow keep its socket and destination', async () => {
    const r = await runScenario(
      build((s) => {
        s['apps'] = [{ id: 'game', protocol: 'udp/7000', dns: { type: 'CNAME', name: 'game.example.test' }, origin_direct: ['udp://192.0.2.10:7000'] }];
        s['timeline'] = [
          { at: 0, resolve: { id: 'g', client: 'alice', name: 'game.example.test', type: 'AAAA' } },
          { at: 100, datagram: { id: 'f', client: 'alice', resolved: 'g', port: 7000, text: 'one' } },
          { at: 200, datagram: { id: 'f', client: 'alice', resolved: 'g', port: 7000, text: 'two' } },
        ];
        s['expect'] = {
          resolutions: [{ id: 'g', addresses: ['2001:db8:10::1'] }],
          flows: [{ id: 'f', received: ['one', 'two'], origin: '192.0.2.10:7000', edge_flows: 1 }],
        };
      }),
    );
    assert.deepEqual(r.failures, []);
    assert.deepEqual(r.resolutions?.[0]?.dialledBy, ['f']);
  });

  void it('answers follow a file reload; a crashed edge answers nothing; restarted, it answers the same allocation', async () => {
    const r = await runScenario(
      build((s) => {
        s['timeline'] = [
          { at: 0, reload: { apps: [...s['apps'], { id: 'late', protocol: 'tcp/7100', dns: { type: 'CNAME', name: 'late.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] }] } },
          { at: 100, resolve: { id: 'late', client: 'alice', name: 'late.example.test' } },
          { at: 200, crash: { host: 'edge' } },
          { at: 300, resolve: { id: 'down', client: 'alice', name: 'echo.example.test' } },
          { at: 20_000, restart: { host: 'edge' } },
          { at: 20_100, resolve: { id: 'again', client: 'alice', name: 'echo.example.test' } },
          { at: 20_100, resolve: { id: 'late-again', client: 'alice', name: 'late.example.test' } },
        ];
        s['expect'] = {
          resolutions: [
            { id: 'late', rcode: 'NOERROR', addresses: ['203.0.113.2'] },
            { id: 'again', rcode: 'NOERROR', addresses: ['203.0.113.1'] },
            { id: 'late-again', rcode: 'NOERROR', addresses: ['203.0.113.2'] },
          ],
        };
      }),
    );
    assert.deepEqual(r.failures, []);
    assert.equal(r.resolutions?.find((x) => x.id === 'down')?.error, 'ETIMEOUT');
  });

  void it('a DNS port the edge cannot bind is a failure at the listen address', async () => {
    const r = await runScenario(
      build((s) => {
        delete s['edge'].pools;
        s['apps'].push({ id: 'dns53', protocol: 'udp/53', dns: { type: 'CNAME', name: 'dns53.example.test' }, origin_direct: ['udp://192.0.2.10:7000'] });
        s['dns'] = { listen: ['198.51.100.1:53'] };
        s['timeline'] = [{ at: 0, connect: { id: 'c', client: 'alice', to: '198.51.100.1:7000' } }, { at: 10, end: { id: 'c' } }];
        s['expect'] = {};
      }),
    );
    assert.deepEqual(
      r.failures.map((f) => f.path),
      ['/dns/listen/0'],
    );
    assert.match(String(r.failures[0]?.actual), /E_LISTEN_ADDRESS_IN_USE/);
  });

  void it('the same seed gives the same run, resolutions included', async () => {
    const sc = build();
    const a = await runScenario(sc);
    const b = await runScenario(sc);
    assert.equal(a.traceHash, b.traceHash);
    assert.deepEqual(a.resolutions, b.resolutions);
    assert.equal(a.steps, b.steps);
  });
});
