/**
 * File reloads never drop a byte or a connection of the apps they leave alone, on the simulator, through the
 * scenario runner's `reload` step (the same EdgeNode apply as `refract serve`'s SIGHUP; the soak's real-socket
 * version is bench/soak/reload.ts).
 *
 * A case: 1-3 stable apps (port 7000 + i, each its own echo origin), 1-3 clients with random latency, jitter and
 * loss (TCP retransmits), 1-6 connections on the stable apps that stream text from before the first reload to after
 * the last, and 1-25 reloads at random gaps (several at one instant sometimes), each to one of three versions of the
 * file that differ only in OTHER apps: one of other-0/other-1/other-2 on port 8000 + k (added and removed), and an
 * app "changed" on port 8100 whose `proxy_protocol` and origin port change. After the last reload a probe dials
 * each other port and the changed app's.
 *
 * The property:
 * - every stream gets back exactly the bytes it sent (compared byte for byte: a lost, doubled or misplaced byte
 *   shows), closes with status 200 and CloseReason normal, once, and not before its own end;
 * - after the last reload the edge serves what the last version says: its other app's port echoes, the other
 *   two refuse (ECONNREFUSED), the changed app reaches the origin port of that version; no other closing event.
 * The case is a scenario file; a failure writes the shrunk one to scenarios/regressions/ (`refract sim` replays it).
 *
 * Seeds: REFRACT_FC_SEED (default a constant), REFRACT_FC_RUNS scales the number of runs.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { runScenario } from '../../../src/scenario/runner.ts';
import { formatFailures } from '../../../src/scenario/report.ts';
import type { ConnExpectation, ScenarioFile, TimelineStep } from '../../../src/scenario/types.ts';
import { checkSavingRegression } from './to-scenario.ts';

const SEED = process.env.REFRACT_FC_SEED !== undefined ? Number(process.env.REFRACT_FC_SEED) : 20_260_101;
const RUN_SCALE = process.env.REFRACT_FC_RUNS !== undefined ? Number(process.env.REFRACT_FC_RUNS) : 1;

const EDGE_IP = '198.51.100.1';
const stablePort = (i: number): number => 7000 + i;
const stableOriginIp = (i: number): string => `192.0.2.${10 + i}`;
const OTHER_ORIGIN_IP = '192.0.2.30';
const otherPort = (k: number): number => 8000 + k;
const CHANGED_PORT = 8100;
/** The changed app's origin port in each version (the other origin listens on all three). */
const changedOriginPort = (v: number): number => 9100 + v;
const clientIp = (i: number): string => `203.0.113.${10 + i}`;
/** The first reload; every stream is established well before (its handshakes take at most a few hundred ms). */
const FIRST_RELOAD_AT = 600;

interface Setup {
  readonly seed: number;
  readonly stableApps: number;
  readonly clients: ReadonlyArray<{ readonly latency: number; readonly jitter: number; readonly loss: number }>;
  readonly originLatency: number;
  readonly conns: ReadonlyArray<{ readonly client: number; readonly app: number; readonly connectAt: number; readonly sends: ReadonlyArray<{ readonly at: number; readonly bytes: number }> }>;
  /** Each reload: the gap since the previous one (ms) and the version it loads. */
  readonly reloads: ReadonlyArray<{ readonly gap: number; readonly version: number }>;
}

const setupArb: fc.Arbitrary<Setup> = fc.record({
  seed: fc.nat(1_000_000),
  stableApps: fc.integer({ min: 1, max: 3 }),
  clients: fc.array(fc.record({ latency: fc.integer({ min: 0, max: 40 }), jitter: fc.constantFrom(0, 1, 5), loss: fc.constantFrom(0, 0, 0.01, 0.05) }), { minLength: 1, maxLength: 3 }),
  originLatency: fc.integer({ min: 0, max: 20 }),
  conns: fc.array(
    fc.record({
      client: fc.nat(2),
      app: fc.nat(2),
      connectAt: fc.integer({ min: 0, max: 100 }),
      sends: fc.array(fc.record({ at: fc.integer({ min: 0, max: 999 }), bytes: fc.integer({ min: 1, max: 4_000 }) }), { minLength: 1, maxLength: 8 }),
    }),
    { minLength: 1, maxLength: 6 },
  ),
  reloads: fc.array(
    fc.record({ gap: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: 1, max: 300 }) }), version: fc.nat(2) }),
    { minLength: 1, maxLength: 25 },
  ),
});

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `n` characters of connection `c`'s stream from `offset`: a pattern of both, so a lost, doubled or misplaced byte shows. */
function streamText(c: number, offset: number, n: number): string {
  let s = '';
  for (let i = offset; i < offset + n; i++) s += ALPHABET[(i * 31 + (i >>> 8) * 7 + c * 101 + 13) % ALPHABET.length];
  return s;
}

/** The apps of file version `v`: the stable apps unchanged, other-`v`, and "changed" in its `v`-th form. */
function appsOf(stableApps: number, v: number): Record<string, unknown>[] {
  return [
    ...Array.from({ length: stableApps }, (_, i) => ({ id: `stable-${i}`, protocol: `tcp/${stablePort(i)}`, dns: { name: `stable-${i}.example.test` }, origin_direct: [`tcp://${stableOriginIp(i)}:7000`] })),
    { id: `other-${v}`, protocol: `tcp/${otherPort(v)}`, dns: { name: `other-${v}.example.test` }, origin_direct: [`tcp://${OTHER_ORIGIN_IP}:9000`] },
    { id: 'changed', protocol: `tcp/${CHANGED_PORT}`, dns: { name: 'changed.example.test' }, origin_direct: [`tcp://${OTHER_ORIGIN_IP}:${changedOriginPort(v)}`], proxy_protocol: v === 1 ? 'v1' : 'off' },
  ];
}

interface Expected {
  readonly streams: ReadonlyArray<{ readonly id: string; readonly sent: string; readonly endAt: number }>;
}

/** The case as a scenario file (the file starts at version 0), and what every stream sent. */
function buildCase(s: Setup): { file: ScenarioFile; expected: Expected } {
  const steps: TimelineStep[] = [];
  let at = FIRST_RELOAD_AT;
  let last = 0;
  s.reloads.forEach((r, j) => {
    if (j > 0) at += r.gap;
    steps.push({ at, reload: { apps: appsOf(s.stableApps, r.version) } });
    last = r.version;
  });
  const probeAt = at + 300;
  const endAt = probeAt + 300;
  const expect: ConnExpectation[] = [];
  const streams: Array<{ id: string; sent: string; endAt: number }> = [];
  const connSteps: TimelineStep[] = [];
  s.conns.forEach((c, k) => {
    const id = `s${k}`;
    const app = c.app % s.stableApps;
    connSteps.push({ at: c.connectAt, connect: { id, client: `client-${c.client % s.clients.length}`, to: `${EDGE_IP}:${stablePort(app)}` } });
    // Sends spread from just after the connect to just before the end: across every reload.
    const first = c.connectAt + 50;
    const span = endAt - 50 - first;
    let sent = '';
    for (const x of [...c.sends].map((x) => ({ ...x, t: first + Math.floor((x.at * span) / 1000) })).sort((a, b) => a.t - b.t)) {
      const text = streamText(k, sent.length, x.bytes);
      connSteps.push({ at: x.t, send: { id, text } });
      sent += text;
    }
    connSteps.push({ at: endAt, end: { id } });
    streams.push({ id, sent, endAt });
    expect.push({ id, status: 200, close_reason: 'normal', error: 'none', origin: `${stableOriginIp(app)}:7000`, received: sent, received_bytes: sent.length, client_bytes: sent.length, origin_bytes: sent.length, closed_at_ms: [endAt, endAt + 60_000] });
  });
  let served = streams.length;
  for (let k = 0; k < 3; k++) {
    const id = `probe-other-${k}`;
    connSteps.push({ at: probeAt, connect: { id, client: 'client-0', to: `${EDGE_IP}:${otherPort(k)}` } }, { at: probeAt + 50, send: { id, text: `probe ${k}` } }, { at: probeAt + 100, end: { id } });
    if (k === last) {
      expect.push({ id, status: 200, origin: `${OTHER_ORIGIN_IP}:9000`, received: `probe ${k}` });
      served++;
    } else expect.push({ id, error: 'ECONNREFUSED' });
  }
  connSteps.push({ at: probeAt, connect: { id: 'probe-changed', client: 'client-0', to: `${EDGE_IP}:${CHANGED_PORT}` } }, { at: probeAt + 100, end: { id: 'probe-changed' } });
  expect.push({ id: 'probe-changed', status: 200, origin: `${OTHER_ORIGIN_IP}:${changedOriginPort(last)}` });
  served++;

  const file: ScenarioFile = {
    name: `File reloads of other apps while stable connections stream (seed ${s.seed})`,
    seed: s.seed,
    topology: {
      edges: [{ name: 'edge', addresses: [EDGE_IP] }],
      clients: s.clients.map((_, i) => ({ name: `client-${i}`, addresses: [clientIp(i)] })),
      origins: [
        ...Array.from({ length: s.stableApps }, (_, i) => ({ name: `stable-origin-${i}`, addresses: [stableOriginIp(i)], listeners: [{ listen: `tcp://${stableOriginIp(i)}:7000`, behaviour: 'echo' as const }] })),
        {
          name: 'other-origin',
          addresses: [OTHER_ORIGIN_IP],
          listeners: [{ listen: `tcp://${OTHER_ORIGIN_IP}:9000`, behaviour: 'echo' as const }, { listen: `tcp://${OTHER_ORIGIN_IP}:9100-9102`, behaviour: 'echo' as const }],
        },
      ],
      links: [
        ...s.clients.map((c, i) => ({ between: [`client-${i}`, 'edge'] as [string, string], latency_ms: c.latency, jitter_ms: c.jitter, loss: c.loss })),
        ...Array.from({ length: s.stableApps }, (_, i) => ({ between: ['edge', `stable-origin-${i}`] as [string, string], latency_ms: s.originLatency })),
        { between: ['edge', 'other-origin'] as [string, string], latency_ms: s.originLatency },
      ],
    },
    // Idle timeouts far above any gap between sends (losses cost retransmissions, not idleness).
    edge: { idle_timeout_ms: 600_000 },
    apps: appsOf(s.stableApps, 0),
    timeline: [...connSteps, ...steps],
    expect: { connections: expect, statuses: { '200': served }, quiescent: true },
  };
  return { file, expected: { streams } };
}

async function check(s: Setup): Promise<void> {
  const { file, expected } = buildCase(s);
  const r = await runScenario(file);
  assert.equal(r.stoppedBy, 'idle');
  assert.deepEqual(r.failures, [], `\n${formatFailures(r.failures)}`);
  // Belt and braces, from the report itself: every byte back, once, after its own end.
  for (const c of expected.streams) {
    const rep = r.connections.find((x) => x.id === c.id);
    assert.ok(rep !== undefined);
    assert.equal(rep.receivedBytes, c.sent.length, `${c.id}: bytes back`);
    assert.equal(rep.status, 200, `${c.id}: status`);
    assert.ok(rep.closedAtMs !== null && rep.closedAtMs >= c.endAt, `${c.id}: closed at ${rep.closedAtMs} before its end at ${c.endAt}`);
  }
}

test('file reloads that add, remove and change other apps never drop a byte or a connection of the apps they leave alone', async () => {
  const prop = fc.asyncProperty(setupArb, check);
  await checkSavingRegression(prop, { seed: SEED + 50, numRuns: Math.max(1, Math.round(60 * RUN_SCALE)) }, 'test/prop/edge/reload-under-load.prop.test.ts', (c) => buildCase(c).file);
});

test('the generator reaches every version last and puts several reloads at one instant', () => {
  // Guards the generator: the property above would say little if the cases never ended on some version or never
  // stacked reloads.
  const lastVersions = new Set<number>();
  let stacked = 0;
  for (const s of fc.sample(setupArb, { seed: SEED + 51, numRuns: 200 })) {
    lastVersions.add(s.reloads.at(-1)!.version);
    if (s.reloads.slice(1).some((r) => r.gap === 0)) stacked++;
  }
  assert.deepEqual([...lastVersions].sort(), [0, 1, 2]);
  assert.ok(stacked > 10, `only ${stacked} of 200 cases stack reloads`);
});
