/**
 * The `api` timeline step: its checks (E_SCENARIO_* with pointers), and runs that write apps through each edge's
 * ConfigSource: ids from the seed, outcomes in the report, expect_error, zones, restarts and reloads.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deriveZoneId } from '../../../src/model/config.ts';
import { parseScenario, validateScenario, type ScenarioIssue } from '../../../src/scenario/schema.ts';
import { runScenario } from '../../../src/scenario/runner.ts';
import { minimal, scenario, yamlOf } from './helpers.ts';

/** An app on `port` of the minimal scenario's echo origin. */
const app = (port: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  protocol: `tcp/${port}`,
  dns: { type: 'CNAME', name: `p${port}.example.test` },
  origin_direct: ['tcp://192.0.2.10:7000'],
  ...extra,
});

function codes(edit: (s: Record<string, any>) => void): string[] {
  const s = minimal();
  edit(s);
  const r = validateScenario(s);
  assert.ok(!r.ok, 'expected the scenario to be invalid');
  return r.issues.map((i: ScenarioIssue) => `${i.pointer} ${i.code}`);
}

void describe('the api step: checks', () => {
  void it('accepts create, update and delete, by ref, with the default zone', () => {
    const s = minimal();
    s['timeline'].push(
      { at: 30, api: { create: { ref: 'web', app: app(8000) } } },
      { at: 40, api: { update: { ref: 'web', app: app(8001) } } },
      { at: 50, api: { delete: { ref: 'web' } } },
      { at: 50, api: { update: { ref: 'echo', app: app(7000) }, expect_error: 'E_API_FILE_APP' } },
    );
    const r = validateScenario(s);
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  });

  void it('wants exactly one write per step, and points at unknown fields and a non-mapping app', () => {
    const got = codes((s) => {
      s['timeline'].push(
        { at: 30, api: {} },
        { at: 30, api: { create: { ref: 'x', app: app(8000) }, delete: { ref: 'x' } } },
        { at: 30, api: { create: { ref: 'y', app: app(8001), colour: 'red' } } },
        { at: 30, api: { create: { ref: 'z', app: 'tcp/8002' } } },
      );
    });
    assert.deepEqual(got.sort(), [
      '/timeline/3/api E_SCENARIO_SCHEMA',
      '/timeline/4/api E_SCENARIO_SCHEMA',
      '/timeline/5/api/create/colour E_SCENARIO_SCHEMA',
      '/timeline/6/api/create/app E_SCENARIO_SCHEMA',
    ]);
  });

  void it('refuses an expect_error that is no Refract code, and accepts EHOSTDOWN', () => {
    const got = codes((s) => {
      s['timeline'].push({ at: 30, api: { create: { ref: 'a', app: app(8000) }, expect_error: 'E_NO_SUCH_THING' } });
      s['timeline'].push({ at: 30, api: { create: { ref: 'b', app: app(8001) }, expect_error: 'EHOSTDOWN' } });
      s['timeline'].push({ at: 30, api: { create: { ref: 'c', app: app(8002) }, expect_error: 'conflict' } });
    });
    assert.deepEqual(got, ['/timeline/5/api/expect_error E_SCENARIO_SCHEMA', '/timeline/3/api/expect_error E_SCENARIO_SCHEMA']);
  });

  void it('resolves refs in run order (by at, then file order): an update before its create, or of a refused create, is a reference error', () => {
    const got = codes((s) => {
      s['timeline'].push(
        { at: 40, api: { update: { ref: 'web', app: app(8001) } } }, // runs before the create at 50
        { at: 50, api: { create: { ref: 'web', app: app(8000) } } },
        { at: 60, api: { create: { ref: 'bad', app: app(7000) }, expect_error: 'E_CONFIG_EDGE_CONFLICT' } },
        { at: 70, api: { delete: { ref: 'bad' } } },
        { at: 70, api: { delete: { ref: 'nobody' } } },
      );
    });
    assert.deepEqual(got, ['/timeline/3/api/update/ref E_SCENARIO_REFERENCE', '/timeline/6/api/delete/ref E_SCENARIO_REFERENCE', '/timeline/7/api/delete/ref E_SCENARIO_REFERENCE']);
  });

  void it('wants each create ref once, and not the id of a file app', () => {
    const got = codes((s) => {
      s['timeline'].push({ at: 30, api: { create: { ref: 'web', app: app(8000) } } }, { at: 40, api: { create: { ref: 'web', app: app(8001) } } }, { at: 50, api: { create: { ref: 'echo', app: app(8002) } } });
    });
    assert.deepEqual(got, ['/timeline/4/api/create/ref E_SCENARIO_DUPLICATE', '/timeline/5/api/create/ref E_SCENARIO_DUPLICATE']);
  });

  void it('resolves zone by name or id among the scenario zones; an unknown zone is a reference error; zones keep the config codes', () => {
    const zones = [{ name: 'example.test' }, { id: '023e105f4ecef8ad9ca31a8372d0c353', name: 'other.test' }];
    const ok = minimal();
    ok['zones'] = zones;
    ok['timeline'].push({ at: 30, api: { create: { ref: 'a', zone: 'Other.Test.', app: app(8000) } } }, { at: 30, api: { create: { ref: 'b', zone: '023e105f4ecef8ad9ca31a8372d0c353', app: app(8001) } } });
    assert.ok(validateScenario(ok).ok);
    assert.deepEqual(
      codes((s) => {
        s['timeline'].push({ at: 30, api: { create: { ref: 'a', zone: 'other.test', app: app(8000) } } }); // only example.test by default
      }),
      ['/timeline/3/api/create/zone E_SCENARIO_REFERENCE'],
    );
    assert.deepEqual(
      codes((s) => {
        s['zones'] = [{ name: 'example.test' }, { name: 'example.test' }];
      }),
      ['/zones/1/name E_CONFIG_DUPLICATE_ID'],
    );
  });

  void it('gives the line and column of a bad api field', () => {
    const s = minimal();
    s['timeline'].push({ at: 30, api: { delete: { ref: 'ghost' } } });
    const r = parseScenario(yamlOf(s), 'x.yaml');
    assert.ok(!r.ok);
    assert.equal(r.issues[0]!.pointer, '/timeline/3/api/delete/ref');
    assert.equal(typeof r.issues[0]!.line, 'number');
  });
});

void describe('the api step: runs', () => {
  /** minimal() plus a connection to port 8000 after `steps` (which create something there, or not). */
  const withApp = (steps: unknown[], extra: (s: Record<string, any>) => void = () => {}) =>
    scenario((s) => {
      s['timeline'].push(...steps, { at: 100, connect: { id: 'n', client: 'alice', to: '198.51.100.1:8000' } }, { at: 110, send: { id: 'n', text: 'new' } }, { at: 120, end: { id: 'n' } });
      extra(s);
    });

  void it('creates an app that accepts connections, records the outcome with an id from the seed', async () => {
    const sc = withApp([{ at: 30, api: { create: { ref: 'web', app: app(8000) } } }], (s) => s['expect'].connections.push({ id: 'n', status: 200, received: 'new' }));
    const r = await runScenario(sc);
    assert.deepEqual(r.failures, []);
    assert.equal(r.api?.length, 1);
    const o = r.api[0]!;
    assert.deepEqual({ ...o, id: undefined }, { step: 3, at: 30, edge: 'edge', op: 'create', ref: 'web', id: undefined, code: null, message: null });
    assert.match(o.id ?? '', /^[0-9a-f]{32}$/);
    const again = await runScenario(sc);
    assert.equal(again.api?.[0]?.id, o.id, 'same seed, same id');
    assert.equal(again.traceHash, r.traceHash);
    const other = await runScenario(sc, { seed: 2 });
    assert.notEqual(other.api?.[0]?.id, o.id, 'another seed, another id');
  });

  void it('a report without api steps has no api key (so runs without them are unchanged)', async () => {
    const r = await runScenario(scenario());
    assert.equal('api' in r, false);
  });

  void it('fails a refused write that was expected to succeed, and an applied write that was expected to be refused', async () => {
    const refused = await runScenario(withApp([{ at: 30, api: { create: { ref: 'clash', app: app(7000) } } }], (s) => (s['expect'].quiescent = true)));
    assert.deepEqual(
      refused.failures.filter((f) => f.path.startsWith('/timeline')).map((f) => [f.path, f.expected, (f.actual as { code: string }).code]),
      [['/timeline/3/api', { applied: true }, 'E_CONFIG_EDGE_CONFLICT']],
    );
    assert.equal(refused.api?.[0]?.code, 'E_CONFIG_EDGE_CONFLICT');
    const applied = await runScenario(withApp([{ at: 30, api: { create: { ref: 'web', app: app(8000) }, expect_error: 'E_CONFIG_EDGE_CONFLICT' } }]));
    assert.deepEqual(applied.failures.map((f) => [f.path, f.expected]), [['/timeline/3/api/expect_error', { code: 'E_CONFIG_EDGE_CONFLICT' }]]);
  });

  void it('a refused create binds nothing and changes nothing: the port stays closed', async () => {
    const r = await runScenario(
      withApp([{ at: 30, api: { create: { ref: 'bad', app: app(8000, { origin_direct: ['udp://192.0.2.10:7000'] }) }, expect_error: 'E_CONFIG_PROTOCOL_MISMATCH' } }], (s) =>
        s['expect'].connections.push({ id: 'n', error: 'ECONNREFUSED' }),
      ),
    );
    assert.deepEqual(r.failures, []);
    assert.equal(r.api?.[0]?.id, null);
  });

  void it('creates in the zone the step names (by name), and a delete then closes the port', async () => {
    const r = await runScenario(
      withApp([{ at: 30, api: { create: { ref: 'web', zone: 'other.test', app: app(8000) } } }, { at: 60, api: { delete: { ref: 'web' } } }], (s) => {
        s['zones'] = [{ name: 'example.test' }, { name: 'other.test' }];
        s['expect'].connections.push({ id: 'n', error: 'ECONNREFUSED' });
      }),
    );
    assert.deepEqual(r.failures, []);
    assert.deepEqual(r.api?.map((a) => [a.op, a.code]), [['create', null], ['delete', null]]);
    assert.equal(r.api?.[1]?.id, r.api?.[0]?.id);
    assert.notEqual(deriveZoneId('other.test'), deriveZoneId('example.test'));
  });

  void it('a deleted app is gone for the API: a second delete is refused with E_API_APP_NOT_FOUND', async () => {
    const r = await runScenario(
      scenario((s) =>
        s['timeline'].push(
          { at: 30, api: { create: { ref: 'web', app: app(8000) } } },
          { at: 40, api: { delete: { ref: 'web' } } },
          { at: 50, api: { delete: { ref: 'web' }, expect_error: 'E_API_APP_NOT_FOUND' } },
          { at: 50, api: { update: { ref: 'web', app: app(8000) }, expect_error: 'E_API_APP_NOT_FOUND' } },
        ),
      ),
    );
    assert.deepEqual(r.failures, []);
    assert.deepEqual(r.api?.map((a) => a.code), [null, null, 'E_API_APP_NOT_FOUND', 'E_API_APP_NOT_FOUND']);
  });

  void it('API apps survive a reload; a reload whose apps overlap an API app is refused whole', async () => {
    const r = await runScenario(
      withApp(
        [
          { at: 30, api: { create: { ref: 'web', app: app(8000) } } },
          { at: 50, reload: { apps: [{ id: 'echo', protocol: 'tcp/7000', dns: { name: 'echo.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] }, { id: 'late', protocol: 'tcp/8000', dns: { name: 'l.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] }] } },
        ],
        (s) => s['expect'].connections.push({ id: 'n', status: 200, received: 'new' }),
      ),
    );
    assert.deepEqual(r.failures.map((f) => [f.path, f.expected]), [['/timeline/4/reload', 'a valid configuration']]);
    assert.match(String(r.failures[0]!.actual), /E_CONFIG_EDGE_CONFLICT/);
  });

  void it('an edge that is down refuses with EHOSTDOWN; after a restart it serves the apps created before the crash', async () => {
    const r = await runScenario(
      withApp(
        [
          { at: 30, api: { create: { ref: 'web', app: app(8000) } } },
          { at: 40, crash: { host: 'edge' } },
          { at: 50, api: { create: { ref: 'while-down', app: app(8001) }, expect_error: 'EHOSTDOWN' } },
          { at: 60, restart: { host: 'edge' } },
        ],
        (s) => {
          s['timeline'][0].at = 70;
          s['timeline'][1].at = 80;
          s['timeline'][2].at = 90;
          s['expect'].connections.push({ id: 'n', status: 200, received: 'new' });
        },
      ),
    );
    assert.deepEqual(r.failures, []);
    assert.deepEqual(r.api?.map((a) => [a.ref, a.code]), [['web', null], ['while-down', 'EHOSTDOWN']]);
  });

  void it('writes on every edge, each with its own store and ids', async () => {
    const r = await runScenario(
      withApp([{ at: 30, api: { create: { ref: 'web', app: app(8000) } } }], (s) => {
        s['topology'].edges.push({ name: 'edge2', addresses: ['198.51.100.2'] });
        s['timeline'].push({ at: 100, connect: { id: 'n2', client: 'alice', to: '198.51.100.2:8000' } }, { at: 110, send: { id: 'n2', text: 'two' } }, { at: 120, end: { id: 'n2' } });
        s['expect'].connections.push({ id: 'n', status: 200, received: 'new' }, { id: 'n2', status: 200, received: 'two' });
      }),
    );
    assert.deepEqual(r.failures, []);
    assert.deepEqual(r.api?.map((a) => a.edge), ['edge', 'edge2']);
    assert.notEqual(r.api?.[0]?.id, r.api?.[1]?.id);
  });
});
