import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { runScenario } from '../../../src/scenario/runner.ts';
import { isRefractError } from '../../../src/model/errors.ts';
import { parseTrace } from '../../../src/streams/trace.ts';
import { scenario } from './helpers.ts';

const PP2_SIGNATURE = '\r\n\r\n\u0000\r\nQUIT\n';

void describe('runScenario', () => {
  void it('reports a connection from the client, the edge and the origin side', async () => {
    const r = await runScenario(scenario());
    assert.deepEqual(r.failures, []);
    const c = r.connections[0]!;
    assert.equal(c.id, 'c');
    assert.equal(c.edge, 'edge');
    assert.equal(c.status, 200);
    assert.equal(c.event, 'disconnect');
    assert.equal(c.reason, 'normal');
    assert.equal(c.origin, '192.0.2.10:7000');
    assert.equal(c.received, 'hi');
    assert.equal(c.clientBytes, 2);
    assert.equal(c.originBytes, 2);
    assert.equal(c.error, null);
    assert.equal(typeof c.connectMs, 'number');
    assert.deepEqual(r.byStatus, { '200': 1 });
    assert.equal(r.quiescent, true);
    assert.equal(r.stoppedBy, 'idle');
    assert.ok(r.steps > 0);
  });

  void it('gives the same trace for the same seed, and another trace for another seed over a jittery link', async () => {
    const s = scenario((x) => {
      x['topology'].links = [{ between: ['alice', 'edge'], latency_ms: 10, jitter_ms: 5 }];
    });
    const a = await runScenario(s);
    const b = await runScenario(s);
    const c = await runScenario(s, { seed: 99 });
    assert.equal(a.traceHash, b.traceHash);
    assert.equal(c.seed, 99);
    assert.notEqual(a.traceHash, c.traceHash);
  });

  void it('hashes exactly the trace lines it hands to onTrace, each a decision-trace record', async () => {
    const lines: string[] = [];
    const r = await runScenario(scenario(), { onTrace: (l) => lines.push(l) });
    assert.equal(lines.length, r.traceLines);
    assert.equal(createHash('sha256').update(lines.map((l) => l + '\n').join('')).digest('hex'), r.traceHash);
    const parsed = parseTrace(lines.join('\n'));
    assert.deepEqual(parsed.errors, []);
    assert.deepEqual(parsed.records.map((x) => x.event), ['accept', 'resolved', 'dial', 'established', 'c2s_end', 's2c_end', 'close']);
    assert.ok(parsed.records.every((x) => x.node === 'edge'));
  });

  void it('reports failed expectations with their pointer, expected and actual value, without throwing', async () => {
    const r = await runScenario(
      scenario((x) => {
        x['expect'] = { connections: [{ id: 'c', status: 521, received: 'ho', closed_at_ms: [0, 1] }], statuses: { '200': 2 }, statuses_at_least: { '521': 1 }, connect_ms: { p50_max: 0 } };
      }),
    );
    assert.deepEqual(
      r.failures.map((f) => f.path),
      ['/expect/connections/0/status', '/expect/connections/0/received', '/expect/connections/0/closed_at_ms', '/expect/statuses/200', '/expect/statuses_at_least/521', '/expect/connect_ms/p50_max'],
    );
    assert.deepEqual(r.failures[0], { path: '/expect/connections/0/status', expected: 521, actual: 200 });
    assert.deepEqual(r.failures[1], { path: '/expect/connections/0/received', expected: 'ho', actual: 'hi' });
  });

  void it('finds a client that keeps its half open forever, and accepts it when quiescent: false is expected', async () => {
    const edit = (x: Record<string, any>): void => {
      x['topology'].origins[0].listeners[0].behaviour = 'close';
      x['timeline'] = [{ at: 0, connect: { id: 'c', client: 'alice', to: '198.51.100.1:7000', half_open: true } }];
      x['expect'] = {};
    };
    const r = await runScenario(scenario(edit));
    assert.equal(r.quiescent, false);
    assert.equal(r.stoppedBy, 'idle');
    assert.deepEqual(r.failures.map((f) => f.path), ['/expect/quiescent']);
    assert.ok(r.leftOpen.some((l) => l.startsWith('alice ')), r.leftOpen.join('\n'));
    const accepted = await runScenario(scenario((x) => {
      edit(x);
      x['expect'] = { quiescent: false };
    }));
    assert.deepEqual(accepted.failures, []);
  });

  void it('stops at max_time_ms with work pending', async () => {
    const r = await runScenario(scenario((x) => {
      x['max_time_ms'] = 1_000;
      x['timeline'] = [{ at: 0, connect: { id: 'c', client: 'alice', to: '198.51.100.1:7000' } }];
      x['expect'] = { quiescent: false };
    }));
    assert.equal(r.stoppedBy, 'max_time');
    assert.ok(r.virtualMs <= 1_000);
    assert.equal(r.connections[0]?.status, null);
    assert.deepEqual(r.failures, []);
  });

  void it('refuses an invalid scenario object with a RefractError listing every issue', async () => {
    await assert.rejects(
      runScenario(scenario((x) => {
        x['seed'] = -1;
        x['timeline'][0].connect.client = 'nobody';
      })),
      (e: unknown) => isRefractError(e) && e.code === 'E_SCENARIO_SCHEMA' && (e.details?.['issues'] as unknown[]).length === 2,
    );
  });

  void it('records the PROXY header an origin decodes and treats the bytes after it as payload', async () => {
    const r = await runScenario(scenario((x) => {
      x['apps'][0].proxy_protocol = 'v2';
      x['expect'] = {};
    }));
    const c = r.connections[0]!;
    assert.deepEqual(c.proxyHeader, { version: 2, src: '203.0.113.10:49152', dst: '198.51.100.1:7000' });
    assert.equal(c.received, 'hi');
  });

  void it('with parse_proxy false an origin treats the header as payload (the echo returns it)', async () => {
    const r = await runScenario(scenario((x) => {
      x['apps'][0].proxy_protocol = 'v2';
      x['topology'].origins[0].listeners[0].parse_proxy = false;
      x['expect'] = {};
    }));
    const c = r.connections[0]!;
    assert.equal(c.proxyHeader, null);
    assert.ok(c.received.startsWith(PP2_SIGNATURE), JSON.stringify(c.received));
    assert.equal(c.receivedBytes, 28 + 2);
  });

  void it('with parse_proxy required an origin resets a connection that starts without a header', async () => {
    const r = await runScenario(scenario((x) => {
      x['topology'].origins[0].listeners[0].parse_proxy = 'required';
      x['expect'] = { connections: [{ id: 'c', status: 444, error: 'ECONNRESET', received: '' }] };
    }));
    assert.deepEqual(r.failures, []);
  });

  void it('attributes each connection to the edge that accepted it when there are several', async () => {
    const r = await runScenario(scenario((x) => {
      x['topology'].edges.push({ name: 'edge2', addresses: ['198.51.100.2'] });
      x['timeline'].push(
        { at: 0, connect: { id: 'd', client: 'alice', to: '198.51.100.2:7000' } },
        { at: 10, send: { id: 'd', text: 'yo' } },
        { at: 20, end: { id: 'd' } },
      );
    }));
    assert.deepEqual(r.failures, []);
    assert.deepEqual(r.connections.map((c) => [c.id, c.edge, c.received]), [['c', 'edge', 'hi'], ['d', 'edge2', 'yo']]);
    assert.deepEqual(r.byStatus, { '200': 2 });
  });

  void it('serves origin_dns SRV apps from the topology DNS records', async () => {
    const r = await runScenario(scenario((x) => {
      x['edge'] = { dns: { min_ttl_sec: 1 } };
      x['apps'] = [{ id: 'srv', protocol: 'tcp/7000', dns: { name: 'srv.example.test' }, origin_dns: { name: '_echo._tcp.example.test', type: 'SRV', ttl: 30 } }];
      x['topology'].dns = [
        { name: '_echo._tcp.example.test', type: 'SRV', records: ['10 5 7000 echo.example.test'], ttl: 30 },
        { name: 'echo.example.test', type: 'A', records: ['192.0.2.10'], ttl: 30 },
      ];
    }));
    assert.deepEqual(r.failures, []);
    assert.equal(r.connections[0]?.origin, '192.0.2.10:7000');
  });

  void it('opens load connections named prefix + index, every_ms apart, each sending and ending', async () => {
    const r = await runScenario(scenario((x) => {
      x['timeline'] = [{ at: 100, load: { id_prefix: 'l-', client: 'alice', to: '198.51.100.1:7000', count: 3, every_ms: 50, bytes: 10, echo_bytes_expected: true } }];
      x['expect'] = { statuses: { '200': 3 } };
    }));
    assert.deepEqual(r.failures, []);
    assert.deepEqual(r.connections.map((c) => [c.id, c.received]), [['l-0', 'abcdefghij'], ['l-1', 'abcdefghij'], ['l-2', 'abcdefghij']]);
    const closed = r.connections.map((c) => c.closedAtMs!);
    assert.ok(closed[0]! >= 100 && closed[1]! >= 150 && closed[2]! >= 200, String(closed));
  });

  void it('checks echo_bytes_expected on every load connection', async () => {
    const r = await runScenario(scenario((x) => {
      x['topology'].origins[0].listeners[0].behaviour = 'sink';
      x['timeline'] = [{ at: 0, load: { id_prefix: 'l-', client: 'alice', to: '198.51.100.1:7000', count: 2, echo_bytes_expected: true } }];
      x['expect'] = {};
    }));
    assert.deepEqual(r.failures.map((f) => f.path), ['/timeline/0/load/echo_bytes_expected']);
  });

  void it('a client on a crashed host cannot dial (EHOSTDOWN), and can again after a restart', async () => {
    const r = await runScenario(scenario((x) => {
      x['timeline'] = [
        { at: 0, crash: { host: 'alice' } },
        { at: 5, connect: { id: 'down', client: 'alice', to: '198.51.100.1:7000' } },
        { at: 10, restart: { host: 'alice' } },
        { at: 15, connect: { id: 'up', client: 'alice', to: '198.51.100.1:7000' } },
        { at: 20, end: { id: 'up' } },
      ];
      x['expect'] = { connections: [{ id: 'down', error: 'EHOSTDOWN' }, { id: 'up', status: 200, error: 'none' }] };
    }));
    assert.deepEqual(r.failures, []);
  });

  void it('reports progress in non-decreasing virtual time against the bound', async () => {
    const seen: Array<[number, number]> = [];
    await runScenario(scenario(), { onProgress: (v, max) => seen.push([v, max]) });
    assert.ok(seen.length >= 2);
    assert.ok(seen.every(([, max]) => max === 3_600_000));
    assert.ok(seen.every(([v], i) => i === 0 || v >= seen[i - 1]![0]));
  });

  void it('stops a runaway run at the step budget', async () => {
    const r = await runScenario(scenario((x) => (x['expect'] = { quiescent: false })), { maxSteps: 5 });
    assert.equal(r.stoppedBy, 'max_steps');
    assert.equal(r.steps, 5);
  });
});
