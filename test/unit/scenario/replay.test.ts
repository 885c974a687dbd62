/**
 * `refract replay`: a decision trace recorded from a real EdgeNode on loopback, turned into a scenario
 * (from-trace.ts) and run in the simulator (replay.ts). Edge ports 7970-7989 belong to this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEdge, startOrigin, exchange } from '../../helpers/edge.ts';
import { parseTrace, traceLine, type TraceRecord } from '../../../src/streams/trace.ts';
import { planReplay } from '../../../src/scenario/from-trace.ts';
import { replayCommand, replayTrace } from '../../../src/scenario/replay.ts';
import { parseScenario } from '../../../src/scenario/schema.ts';
import type { TimelineStep } from '../../../src/scenario/types.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A port nothing listens on: bound by the kernel, then released. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Runs a real edge on loopback with the trace subscribed, as `serve --trace` does, and makes three connections:
 * two echoed (5 B and 100 kB), one to an origin that refuses. Returns the trace as its file would read back.
 */
async function recordOnLoopback(): Promise<{ records: TraceRecord[]; config: Record<string, unknown> }> {
  const echo = await startOrigin({ mode: 'echo' });
  const refused = await closedPort();
  const config = {
    node: { id: 'lab-1' },
    edge: { addresses: ['127.0.0.1'] },
    apps: [
      { id: 'echo', protocol: 'tcp/7970-7971', origin_direct: [`tcp://127.0.0.1:${echo.port}`], dns: { type: 'CNAME', name: 'echo.example.test' } },
      { id: 'gone', protocol: 'tcp/7972', origin_direct: [`tcp://127.0.0.1:${refused}`], dns: { type: 'CNAME', name: 'gone.example.test' } },
    ],
  };
  const e = await startEdge(config);
  const lines: string[] = [];
  e.edge.trace.records$.subscribe((r) => lines.push(traceLine(r)));
  try {
    assert.equal((await exchange(7970, 'hello')).data.toString(), 'hello');
    assert.equal((await exchange(7971, Buffer.alloc(100_000, 7))).data.length, 100_000);
    await exchange(7972, 'anyone?');
    await e.closing(3);
  } finally {
    await e.close();
    await echo.close();
  }
  const parsed = parseTrace(lines.join('\n'));
  assert.deepEqual(parsed.errors, []);
  return { records: parsed.records, config };
}

test('a trace recorded from a real edge on loopback replays in the simulator with no difference', async () => {
  const { records, config } = await recordOnLoopback();
  const res = await replayTrace(records, config);
  assert.equal(res.compared, 3);
  assert.deepEqual(res.differences, []);
  assert.deepEqual(res.plan.skipped, []);
  assert.deepEqual(res.report.connections.map((c) => c.status), [200, 200, 521]);
  assert.deepEqual(res.report.connections.map((c) => c.clientBytes), [5, 100_000, 0]);
  // 127.0.0.1 was the edge, the origins and the client at once: each role got its own simulated address.
  assert.deepEqual(res.plan.remapped.map((m) => [m.role, m.from]).sort(), [['client', '127.0.0.1'], ['edge', '127.0.0.1'], ['origin', '127.0.0.1']]);
  assert.equal(res.plan.scenario.topology.edges[0]!.name, 'lab-1', 'the edge host is named after the recorded node');
});

test('a recorded status the simulation does not reproduce is reported as a difference', async () => {
  const { records, config } = await recordOnLoopback();
  const refusedClose = records.find((r) => r.event === 'close' && r['status'] === 521)!;
  const mutated = records.map((r) => (r === refusedClose ? { ...r, status: 200 } : r));
  const res = await replayTrace(mutated, config);
  assert.deepEqual(res.differences.map((d) => [d.id, d.fields, d.recorded.status, d.simulated.status]), [[`c${refusedClose.conn}`, ['status'], 200, 521]]);
});

// ── the scenario built from a trace ───────────────────────────────────────────────────────────────────────────

const rec = (t: number, conn: number, event: TraceRecord['event'], detail: Record<string, unknown> = {}, app = 'web'): TraceRecord => ({ t, node: 'pop-1', app, conn, event, ...detail });

/** A hand-written trace: echo, refused, timed out, client reset, a banner origin, plus records replay must skip. */
const SYNTHETIC: TraceRecord[] = [
  rec(1_000, 1, 'accept', { client: '10.1.1.1:50000', edge: '127.0.0.1:8000' }),
  rec(1_000, 1, 'dial', { upstream: '10.9.9.1:9000', attempt: 1 }),
  rec(1_001, 1, 'established', { upstream: '10.9.9.1:9000', proxy_protocol: 'off' }),
  rec(1_040, 1, 'c2s_end'),
  rec(1_041, 1, 's2c_end'),
  rec(1_041, 1, 'close', { status: 200, reason: 'normal', code: '', bytes_in: 12, bytes_out: 12 }),
  rec(1_500, 2, 'accept', { client: '10.1.1.2:50001', edge: '127.0.0.1:8001' }),
  rec(1_500, 2, 'dial', { upstream: '10.9.9.1:9001', attempt: 1 }),
  rec(1_500.5, 2, 'dial_failed', { upstream: '10.9.9.1:9001', code: 'ECONNREFUSED' }),
  rec(1_500.5, 2, 'close', { status: 521, reason: 'connect_refused', code: 'E_UPSTREAM_CONNECT_REFUSED', bytes_in: 0, bytes_out: 0 }),
  rec(2_500, 3, 'accept', { client: '10.1.1.1:50002', edge: '127.0.0.1:8000' }),
  rec(2_500, 3, 'dial', { upstream: '10.9.9.1:9000', attempt: 1 }),
  rec(2_501, 3, 'established', { upstream: '10.9.9.1:9000', proxy_protocol: 'off' }),
  rec(2_900, 3, 'close', { status: 499, reason: 'downstream_reset', code: 'E_DOWNSTREAM_RESET', bytes_in: 30, bytes_out: 30 }),
  rec(3_000, 4, 'accept', { client: '10.1.1.3:50003', edge: '127.0.0.1:8100' }, 'mail'),
  rec(3_000, 4, 'dial', { upstream: '10.9.9.2:25', attempt: 1 }, 'mail'),
  rec(3_001, 4, 'established', { upstream: '10.9.9.2:25', proxy_protocol: 'off' }, 'mail'),
  rec(3_100, 4, 'c2s_end', {}, 'mail'),
  rec(3_101, 4, 's2c_end', {}, 'mail'),
  rec(3_101, 4, 'close', { status: 200, reason: 'normal', code: '', bytes_in: 6, bytes_out: 16 }, 'mail'),
  rec(3_500, 5, 'accept', { client: '10.1.1.4:50004', edge: '127.0.0.1:8200' }, 'slow'),
  rec(3_500, 5, 'dial', { upstream: '10.9.9.3:7000', attempt: 1 }, 'slow'),
  rec(8_500, 5, 'dial_failed', { upstream: '10.9.9.3:7000', code: 'ETIMEDOUT' }, 'slow'),
  rec(8_500, 5, 'close', { status: 522, reason: 'connect_timeout', code: 'E_UPSTREAM_CONNECT_TIMEOUT', bytes_in: 0, bytes_out: 0 }, 'slow'),
  rec(900, 9, 'close', { status: 200, reason: 'normal', code: '', bytes_in: 1, bytes_out: 1 }), // began before the trace
  { ...rec(1_200, 1, 'accept', { client: '10.1.1.1:40000', edge: '127.0.0.1:8000' }), proto: 'udp' }, // a UDP flow, numbered apart
];

const SYNTHETIC_CONFIG = {
  node: { id: 'pop-1' },
  edge: { addresses: ['127.0.0.1'], connect_timeout_ms: 5_000, idle_timeout_ms: 60_000 },
  apps: [
    { id: 'web', protocol: 'tcp/8000-8001', origin_direct: ['tcp://10.9.9.1:9000-9001'], dns: { type: 'CNAME', name: 'web.example.test' } },
    { id: 'mail', protocol: 'tcp/8100', origin_direct: ['tcp://10.9.9.2:25'], dns: { type: 'CNAME', name: 'mail.example.test' } },
    { id: 'slow', protocol: 'tcp/8200', origin_direct: ['tcp://10.9.9.3:7000'], dns: { type: 'CNAME', name: 'slow.example.test' } },
  ],
};

const stepsOf = (timeline: readonly TimelineStep[], id: string): string[] =>
  timeline.flatMap((s) => {
    const [kind, body] = Object.entries(s).find(([k]) => k !== 'at')! as [string, { id?: string; bytes?: number }];
    return body.id === id ? [`${s.at} ${kind}${body.bytes === undefined ? '' : ` ${body.bytes}`}`] : [];
  });

test('the scenario has one client per client IP, arrivals relative to the first, bytes_in sent, half-close at c2s_end and the recorded statuses', () => {
  const plan = planReplay(SYNTHETIC, SYNTHETIC_CONFIG, { seed: 7 });
  const sc = plan.scenario;
  assert.equal(sc.seed, 7);
  assert.ok(parseScenario(JSON.stringify(sc), 'replay.json').ok, 'the scenario passes the scenario schema');
  assert.deepEqual(sc.topology.clients.map((c) => c.addresses), [['10.1.1.1'], ['10.1.1.2'], ['10.1.1.3'], ['10.1.1.4']]);
  assert.deepEqual(stepsOf(sc.timeline, 'c1'), ['0 connect', '0 send 12', '40 end']);
  assert.deepEqual(stepsOf(sc.timeline, 'c2'), ['500 connect']);
  assert.deepEqual(stepsOf(sc.timeline, 'c3'), ['1500 connect', '1500 send 30', '1900 reset'], 'a client reset is replayed at its close time');
  assert.deepEqual(sc.expect?.connections, [
    { id: 'c1', status: 200 },
    { id: 'c2', status: 521 },
    { id: 'c3', status: 499 },
    { id: 'c4', status: 200 },
    { id: 'c5', status: 522 },
  ]);
  assert.deepEqual(plan.skipped.map((s) => s.conn), [9, 1], 'the connection without accept and the UDP flow are skipped');
  assert.deepEqual(sc.edge, { connect_timeout_ms: 5_000, idle_timeout_ms: 60_000, udp_idle_timeout_ms: 60_000, drain_timeout_ms: 30_000, max_connect_attempts: 3, dns: { min_ttl_sec: 600 } });
});

test('each origin port gets the behaviour that explains its recorded bytes and dial errors', () => {
  const sc = planReplay(SYNTHETIC, SYNTHETIC_CONFIG).scenario;
  const listeners = sc.topology.origins.flatMap((o) => o.listeners.map((l) => [l.listen, l.behaviour, l.banner?.length]));
  assert.deepEqual(listeners, [
    ['tcp://10.9.9.1:9000', 'echo', undefined],
    ['tcp://10.9.9.1:9001', 'refuse', undefined],
    ['tcp://10.9.9.2:25', 'banner', 10],
    ['tcp://10.9.9.3:7000', 'blackhole', undefined],
  ]);
  assert.deepEqual(sc.apps.map((a) => (a as { origin_direct: string[] }).origin_direct), [['tcp://10.9.9.1:9000-9001'], ['tcp://10.9.9.2:25'], ['tcp://10.9.9.3:7000']]);
});

test('the hand-written trace replays with every status, bytes in and bytes out as recorded', async () => {
  const res = await replayTrace(SYNTHETIC, SYNTHETIC_CONFIG);
  assert.deepEqual(res.differences, []);
  assert.equal(res.compared, 5);
});

test('a raw config that does not validate is refused with E_CONFIG_INVALID', () => {
  assert.throws(() => planReplay(SYNTHETIC, { apps: [{ protocol: 'tcp/0' }] }), { code: 'E_CONFIG_INVALID' });
});

// ── the command ───────────────────────────────────────────────────────────────────────────────────────────────

function io(): { out: string[]; err: string[]; io: { out(t: string): void; err(t: string): void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t) => void out.push(t), err: (t) => void err.push(t) } };
}

test('refract replay exits 0 when every connection ends as recorded, 1 when one differs, 2 on bad input', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'refract-replay-'));
  try {
    const trace = join(dir, 'trace.jsonl');
    const config = join(dir, 'config.json');
    const out = join(dir, 'replay.yaml');
    writeFileSync(trace, SYNTHETIC.map(traceLine).join('\n') + '\n');
    writeFileSync(config, JSON.stringify(SYNTHETIC_CONFIG));

    let c = io();
    assert.equal(await replayCommand([trace, '--config', config, '--scenario', out], c.io), 0, c.err.join(''));
    assert.match(c.out.join(''), /differences: none/);
    assert.ok(parseScenario(readFileSync(out, 'utf8'), out).ok, '--scenario writes a valid scenario file');

    // c1 and c3 share an echo origin; one byte more back on c1 is something no origin behaviour there explains.
    const changed = SYNTHETIC.map((r) => (r.conn === 1 && r.event === 'close' && r.proto === undefined ? { ...r, bytes_out: 13 } : r));
    writeFileSync(trace, changed.map(traceLine).join('\n'));
    c = io();
    assert.equal(await replayCommand([trace, '--config', config, '--json'], c.io), 1);
    const json = JSON.parse(c.out.join('')) as { differences: Array<{ id: string; fields: string[] }> };
    assert.deepEqual(json.differences.map((d) => [d.id, d.fields]), [['c1', ['bytes_out']]]);
    c = io();
    assert.equal(await replayCommand([trace, '--config', config], c.io), 1);
    assert.match(c.out.join(''), /differences: 1 of 5 compared connections\n\s+id\s+recorded\s+simulated\s+differs in\n\s+c1\s+200 in 12 out 13\s+200 in 12 out 12\s+bytes_out/);

    writeFileSync(trace, '{"t":1}\nnot json\n');
    for (const argv of [[trace, '--config', config], [trace], [trace, '--config', config, '--seed', 'x'], [join(dir, 'missing'), '--config', config]]) {
      c = io();
      assert.equal(await replayCommand(argv, c.io), 2, `argv ${argv.join(' ')}`);
    }
    writeFileSync(trace, '');
    assert.equal(await replayCommand([trace, '--config', config], io().io), 2, 'an empty trace');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('refract replay is a command of the CLI', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'replay', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /refract replay TRACE --config FILE/);
});
