/**
 * Slow and hostile clients are closed by their own timeouts, with their codes, while other clients are served, on
 * the simulator through the scenario runner (the soak's real-socket version is bench/soak/slow.ts).
 *
 * A case is one of two worlds, with a random timeline of clients:
 * - `proxy`: `edge.accept_proxy` trusts the clients; app "proxied" on 7000. Slow clients connect and send nothing,
 *   or dribble a PROXY v1 header one byte every `every` ms (never complete in time): E_PP_TIMEOUT, closed
 *   `timeout` ms after the accept. Garbage senders send an HTTP request: E_PP_BAD_SIGNATURE at once. Legitimate
 *   clients send a header and text and end: the text comes back, status 200.
 * - `tls`: app "tls" (`tls: flexible`) on 7000 and app "plain" on 7001. Slow clients connect to the TLS app and send
 *   nothing, or dribble the start of a handshake record one byte at a time: E_TLS_HANDSHAKE_TIMEOUT; or connect to
 *   the plain app and send nothing: E_IDLE_TIMEOUT. Garbage on the TLS port: E_TLS_CLIENT_HANDSHAKE at once.
 *   Legitimate clients speak TLS (or plain TCP to the plain app), send text and end: echoed, status 200.
 * Timeouts (PROXY header, TLS handshake, idle: one value per case) are 300-3000 ms; links have latency and jitter
 * but no loss (a retransmission would move a close by a whole RTO).
 *
 * The property: each slow client is closed with its code between `timeout` and `timeout` + a few link delays after
 * its connect, never earlier; each garbage connection with its code within a few link delays; each legitimate
 * client gets exactly its text back with status 200; the closing statuses are exactly these, nothing else.
 * A failure writes the shrunk case to scenarios/regressions/ (`refract sim` replays it).
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
const ORIGIN_IP = '192.0.2.10';
const clientIp = (i: number): string => `203.0.113.${10 + i}`;
const HEADER = `PROXY TCP4 192.0.2.200 ${EDGE_IP} 40000 7000\r\n`;
/** The start of a simulated TLS record (src/net/sim/sim-tls.ts: "RTLS", a 16-bit length, JSON) that never completes. */
const PARTIAL_RECORD = 'RTLS\u0001\u0000{"t":"hello","hello":{';

type Kind = 'silent' | 'dribble' | 'idle' | 'garbage' | 'legit' | 'legit-plain';

interface ClientGen {
  readonly client: number;
  readonly kind: Kind;
  readonly at: number;
  /** A dribbler's gap between bytes, ms. */
  readonly every: number;
  readonly bytes: number;
}

interface Setup {
  readonly seed: number;
  readonly world: 'proxy' | 'tls';
  readonly timeoutMs: number;
  readonly clients: ReadonlyArray<{ readonly latency: number; readonly jitter: number }>;
  readonly originLatency: number;
  readonly conns: readonly ClientGen[];
}

const setupArb: fc.Arbitrary<Setup> = fc.record({
  seed: fc.nat(1_000_000),
  world: fc.constantFrom('proxy' as const, 'tls' as const),
  timeoutMs: fc.integer({ min: 300, max: 3_000 }),
  clients: fc.array(fc.record({ latency: fc.integer({ min: 0, max: 40 }), jitter: fc.constantFrom(0, 1, 5) }), { minLength: 1, maxLength: 3 }),
  originLatency: fc.integer({ min: 0, max: 20 }),
  conns: fc.array(
    fc.record({
      client: fc.nat(2),
      kind: fc.constantFrom<Kind>('silent', 'dribble', 'idle', 'garbage', 'legit', 'legit', 'legit-plain'),
      at: fc.integer({ min: 0, max: 4_000 }),
      every: fc.integer({ min: 20, max: 400 }),
      bytes: fc.integer({ min: 1, max: 3_000 }),
    }),
    { minLength: 1, maxLength: 12 },
  ),
});

/** Slack after a deadline for the close to reach the client: link delays (≤ 40 ms ± 5 each way) and handshakes. */
const SLACK_MS = 200;

interface Built {
  readonly file: ScenarioFile;
  /** Per connection id: the code and the close window expected, or the text to get back. */
  readonly expected: ReadonlyArray<{ readonly id: string; readonly code?: string; readonly window?: readonly [number, number]; readonly text?: string }>;
}

function buildCase(s: Setup): Built {
  const steps: TimelineStep[] = [];
  const expect: ConnExpectation[] = [];
  const expected: Array<{ id: string; code?: string; window?: [number, number]; text?: string }> = [];
  const statuses = new Map<string, number>();
  const count = (status: number): void => {
    statuses.set(String(status), (statuses.get(String(status)) ?? 0) + 1);
  };
  const T = s.timeoutMs;
  s.conns.forEach((c, k) => {
    const id = `c${k}-${c.kind}`;
    const client = `client-${c.client % s.clients.length}`;
    // In the TLS world "idle" and "legit-plain" go to the plain app; everything else to 7000.
    const plain = s.world === 'tls' && (c.kind === 'idle' || c.kind === 'legit-plain');
    const port = plain ? 7001 : 7000;
    const tlsClient = s.world === 'tls' && c.kind === 'legit';
    steps.push({ at: c.at, connect: { id, client, to: `${EDGE_IP}:${port}`, ...(tlsClient ? { tls: { sni: 'tls.example.test' } } : {}) } });
    switch (c.kind) {
      case 'silent':
      case 'idle': {
        // In the PROXY world an idle client is a silent one (no app without a header); in the TLS world it idles on plain.
        const code = s.world === 'proxy' ? 'E_PP_TIMEOUT' : c.kind === 'idle' ? 'E_IDLE_TIMEOUT' : 'E_TLS_HANDSHAKE_TIMEOUT';
        const window: [number, number] = [c.at + T, c.at + T + SLACK_MS];
        expect.push({ id, error_code: code, closed_at_ms: window });
        expected.push({ id, code, window });
        count(code === 'E_PP_TIMEOUT' ? 400 : code === 'E_IDLE_TIMEOUT' ? 200 : 443);
        return;
      }
      case 'dribble': {
        // One byte every `every` ms from just after the connect, while the deadline has not passed, and never the
        // whole of it: the header (or record) stays incomplete.
        const whole = s.world === 'proxy' ? HEADER : PARTIAL_RECORD;
        const n = Math.min(whole.length - 1, Math.floor((T + SLACK_MS) / c.every));
        for (let i = 0; i < n; i++) steps.push({ at: c.at + 10 + i * c.every, send: { id, text: whole[i]! } });
        const code = s.world === 'proxy' ? 'E_PP_TIMEOUT' : 'E_TLS_HANDSHAKE_TIMEOUT';
        const window: [number, number] = [c.at + T, c.at + T + SLACK_MS];
        expect.push({ id, error_code: code, closed_at_ms: window });
        expected.push({ id, code, window });
        count(s.world === 'proxy' ? 400 : 443);
        return;
      }
      case 'garbage': {
        steps.push({ at: c.at + 10, send: { id, text: 'GET / HTTP/1.0\r\n\r\n' } });
        const code = s.world === 'proxy' ? 'E_PP_BAD_SIGNATURE' : 'E_TLS_CLIENT_HANDSHAKE';
        const window: [number, number] = [c.at, c.at + 10 + SLACK_MS];
        expect.push({ id, error_code: code, closed_at_ms: window });
        expected.push({ id, code, window });
        count(s.world === 'proxy' ? 400 : 443);
        return;
      }
      case 'legit':
      case 'legit-plain': {
        const text = `hello ${id} `.padEnd(Math.min(c.bytes, 3_000), '.');
        steps.push({ at: c.at + 10, send: { id, text: s.world === 'proxy' ? HEADER + text : text } }, { at: c.at + 100, end: { id } });
        expect.push({ id, status: 200, error: 'none', received: text });
        expected.push({ id, text });
        count(200);
        return;
      }
    }
  });
  const edge: Record<string, unknown> =
    s.world === 'proxy'
      ? { accept_proxy: { trusted: ['203.0.113.0/24'], timeout_ms: T }, idle_timeout_ms: 600_000 }
      : { idle_timeout_ms: T, tls: { handshake_timeout_ms: T } };
  const apps =
    s.world === 'proxy'
      ? [{ id: 'proxied', protocol: 'tcp/7000', dns: { name: 'proxied.example.test' }, origin_direct: [`tcp://${ORIGIN_IP}:7000`] }]
      : [
          { id: 'tls', protocol: 'tcp/7000', dns: { name: 'tls.example.test' }, tls: 'flexible', origin_direct: [`tcp://${ORIGIN_IP}:7000`] },
          { id: 'plain', protocol: 'tcp/7001', dns: { name: 'plain.example.test' }, origin_direct: [`tcp://${ORIGIN_IP}:7000`] },
        ];
  const file: ScenarioFile = {
    name: `Slow and hostile clients among legitimate ones, ${s.world} world (seed ${s.seed})`,
    seed: s.seed,
    topology: {
      edges: [{ name: 'edge', addresses: [EDGE_IP] }],
      clients: s.clients.map((_, i) => ({ name: `client-${i}`, addresses: [clientIp(i)] })),
      origins: [{ name: 'origin', addresses: [ORIGIN_IP], listeners: [{ listen: `tcp://${ORIGIN_IP}:7000`, behaviour: 'echo' as const }] }],
      links: [
        ...s.clients.map((c, i) => ({ between: [`client-${i}`, 'edge'] as [string, string], latency_ms: c.latency, jitter_ms: c.jitter })),
        { between: ['edge', 'origin'] as [string, string], latency_ms: s.originLatency },
      ],
    },
    edge,
    apps,
    timeline: steps.sort((a, b) => a.at - b.at),
    expect: { connections: expect, statuses: Object.fromEntries(statuses), quiescent: true },
  };
  return { file, expected };
}

async function check(s: Setup): Promise<void> {
  const { file, expected } = buildCase(s);
  const r = await runScenario(file);
  assert.equal(r.stoppedBy, 'idle');
  assert.deepEqual(r.failures, [], `\n${formatFailures(r.failures)}`);
  for (const e of expected) {
    const rep = r.connections.find((x) => x.id === e.id);
    assert.ok(rep !== undefined, e.id);
    if (e.window !== undefined) assert.ok(rep.closedAtMs !== null && rep.closedAtMs >= e.window[0], `${e.id}: closed at ${rep.closedAtMs}, before ${e.window[0]}`);
    if (e.text !== undefined) assert.equal(rep.receivedBytes, Buffer.byteLength(e.text), `${e.id}: bytes back`);
  }
}

test('slow clients (silent, dribbling a PROXY header or a handshake, idle) are each closed by their own timeout with its code, garbage at once with its code, and legitimate clients are served meanwhile', async () => {
  const prop = fc.asyncProperty(setupArb, check);
  await checkSavingRegression(prop, { seed: SEED + 60, numRuns: Math.max(1, Math.round(80 * RUN_SCALE)) }, 'test/prop/edge/slow-clients.prop.test.ts', (c) => buildCase(c).file);
});

test('the generator mixes slow, hostile and legitimate clients in both worlds', () => {
  const seen = new Set<string>();
  for (const s of fc.sample(setupArb, { seed: SEED + 61, numRuns: 200 })) {
    const kinds = new Set(s.conns.map((c) => c.kind));
    for (const k of kinds) seen.add(`${s.world} ${k}`);
    if ((kinds.has('silent') || kinds.has('dribble')) && kinds.has('legit')) seen.add(`${s.world} mixed`);
  }
  for (const w of ['proxy', 'tls']) for (const k of ['silent', 'dribble', 'idle', 'garbage', 'legit', 'legit-plain', 'mixed']) assert.ok(seen.has(`${w} ${k}`), `no sampled case has ${w} ${k}`);
});
