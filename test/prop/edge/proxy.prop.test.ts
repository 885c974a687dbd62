/**
 * Model-based properties of the TCP proxy on the simulator: byte integrity both ways, routing to origin start + P − a,
 * exactly one close per connection with a status that fits what happened, nothing left after quiescence, and the
 * same decision trace for the same seed.
 *
 * A case is a world (1-3 TCP apps on disjoint edge port blocks, each with its own origin host that echoes, refuses
 * or swallows SYNs; 1-3 clients; link faults) plus a command sequence (`fc.commands`): connect, send, half-close,
 * reset, wait, change a link. Commands act on a model and write the scenario timeline; the world then runs that
 * timeline (world.ts) and the model is the oracle. Commands build the timeline instead of poking a running world
 * so that the shrunk counterexample *is* a scenario file with the runner's scheduling: on failure it is written to
 * scenarios/regressions/ (to-scenario.ts), and `refract sim` replays it.
 *
 * Seeds: REFRACT_FC_SEED (default a constant, so CI is reproducible; each property adds its own offset),
 * REFRACT_FC_PATH and REFRACT_FC_REPLAY to replay a shrunk case (a failure prints the whole rerun line),
 * REFRACT_FC_RUNS to scale the number of runs, REFRACT_REGRESSIONS_DIR to save failures elsewhere (soak runs).
 */
import test, { type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { validAppArb } from '../model/arbitraries.ts';
import { validateConfig } from '../../../src/model/config.ts';
import { decodeProxyHeader } from '../../../src/core/proxy-protocol.ts';
import type { ConnExpectation } from '../../../src/scenario/types.ts';
import {
  EDGE_IP,
  clientIp,
  clientName,
  expectedOriginPort,
  filler,
  originIp,
  originName,
  runCase,
  type AppCase,
  type CaseStep,
  type ConnOutcome,
  type EdgeCase,
  type LinkSpec,
  type OriginMode,
  type WorldResult,
} from './world.ts';
import { toScenario, writeRegression } from './to-scenario.ts';
import { runScenario } from '../../../src/scenario/runner.ts';

const SEED = process.env.REFRACT_FC_SEED !== undefined ? Number(process.env.REFRACT_FC_SEED) : 20_260_101;
const PATH = process.env.REFRACT_FC_PATH;
/** fc.commands' own replay log (printed as `replayPath` in the counterexample); needed with REFRACT_FC_PATH. */
const COMMANDS_REPLAY = process.env.REFRACT_FC_REPLAY;
const RUN_SCALE = process.env.REFRACT_FC_RUNS !== undefined ? Number(process.env.REFRACT_FC_RUNS) : 1;

/** Edge ports: app i lives in [PORT_BASE + i·SLOT, PORT_BASE + (i+1)·SLOT); the rest of the block is unserved. */
const PORT_BASE = 1_000;
const SLOT = 20;
const MAX_APPS = 3;
const MAX_CONNS = 8;
/** Timeouts well above the longest timeline (24 commands × 2 s waits), so a lossless connection never idles out early. */
const EDGE_SETTINGS = { connect_timeout_ms: 4_000, idle_timeout_ms: 90_000 } as const;

// ── the world ───────────────────────────────────────────────────────────────────────────────────────────────────

interface Setup {
  readonly seed: number;
  readonly apps: readonly AppCase[];
  readonly clients: number;
  readonly links: readonly LinkSpec[];
}

const linkFaultArb: fc.Arbitrary<Omit<LinkSpec, 'between'>> = fc
  .record(
    {
      direction: fc.constantFrom('both' as const, 'a->b' as const, 'b->a' as const),
      latency_ms: fc.integer({ min: 0, max: 30 }),
      jitter_ms: fc.constantFrom(0, 1, 5),
      loss: fc.constantFrom(0, 0.01, 0.05, 0.15),
      // Tiny pieces split PROXY headers across reads but cost a segment per byte or two: kept, but rarer.
      slice_max_bytes: fc.oneof({ weight: 1, arbitrary: fc.integer({ min: 1, max: 16 }) }, { weight: 4, arbitrary: fc.integer({ min: 17, max: 1_500 }) }),
    },
    { requiredKeys: [] },
  );

/** The links a case can fault: each client to the edge, the edge to each origin. */
function linkPairs(apps: number, clients: number): Array<[string, string]> {
  return [
    ...Array.from({ length: clients }, (_, i): [string, string] => [clientName(i), 'edge']),
    ...Array.from({ length: apps }, (_, k): [string, string] => ['edge', originName(k)]),
  ];
}

/** App `i`: a generated Spectrum TCP app object (every accepted form), re-pointed at this world's ports and origin. */
function appArb(i: number): fc.Arbitrary<AppCase> {
  return fc
    .record({
      base: validAppArb({ portMin: 1, portSpan: 100, id: fc.option(fc.constant(`app-${i}`), { nil: undefined }) }).filter(
        (a) => typeof a['protocol'] === 'string' && a['protocol'].startsWith('tcp/'),
      ),
      size: fc.integer({ min: 1, max: 4 }),
      offset: fc.integer({ min: 0, max: SLOT - 4 }),
      originStart: fc.integer({ min: 2_000, max: 60_000 }),
      originSingle: fc.boolean(),
      mode: fc.constantFrom<OriginMode>('echo', 'echo', 'echo', 'echo', 'refuse', 'blackhole'),
    })
    .map(({ base, size, offset, originStart, originSingle, mode }) => {
      const start = PORT_BASE + i * SLOT + offset;
      const edge = { start, end: start + size - 1 };
      const origin = { start: originStart, end: originSingle ? originStart : originStart + size - 1 };
      const raw: Record<string, unknown> = { ...base };
      // Routing, timeouts and TLS are this world's to choose; every other field keeps its generated form.
      for (const k of ['origin_dns', 'origin_port', 'tls', 'connect_timeout_ms', 'idle_timeout_ms']) delete raw[k];
      raw['protocol'] = size === 1 ? `tcp/${start}` : `tcp/${edge.start}-${edge.end}`;
      raw['origin_direct'] = [`tcp://${originIp(i)}:${origin.start === origin.end ? origin.start : `${origin.start}-${origin.end}`}`];
      const v = validateConfig({ edge: { addresses: [EDGE_IP] }, apps: [raw] });
      if (!v.ok) throw new Error(`appArb built an invalid app: ${JSON.stringify(v.issues)}`);
      const spec = v.config.apps[0]!;
      const proxy = spec.proxyProtocol === 'v1' || spec.proxyProtocol === 'v2' ? spec.proxyProtocol : 'off';
      return { raw, id: spec.id, edge, origin, mode, proxy };
    });
}

const setupArb: fc.Arbitrary<Setup> = fc
  .record({ seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }), apps: fc.integer({ min: 1, max: MAX_APPS }), clients: fc.integer({ min: 1, max: 3 }) })
  .chain(({ seed, apps, clients }) =>
    fc.record({
      seed: fc.constant(seed),
      apps: fc.tuple(...Array.from({ length: apps }, (_, i) => appArb(i))),
      clients: fc.constant(clients),
      links: fc.subarray(linkPairs(apps, clients)).chain((pairs) =>
        fc.tuple(...pairs.map((between) => linkFaultArb.map((f): LinkSpec => ({ between, ...f })))),
      ),
    }),
  );

// ── the model and its commands ──────────────────────────────────────────────────────────────────────────────────

interface ModelConn {
  readonly id: string;
  readonly index: number;
  readonly client: number;
  readonly port: number;
  /** Index of the app serving `port`, undefined for an unserved port. */
  readonly app: number | undefined;
  sent: number;
  ended: boolean;
  reset: boolean;
}

class EdgeModel {
  now = 0;
  readonly conns: ModelConn[] = [];
  /** Link pairs (`a|b`) that had loss at any time. */
  readonly lossy = new Set<string>();

  constructor(readonly setup: Setup) {
    for (const l of setup.links) this.noteLink(l);
  }

  noteLink(l: LinkSpec): void {
    if ((l.loss ?? 0) > 0) this.lossy.add(`${l.between[0]}|${l.between[1]}`);
  }

  /** Edge ports of the block that no app serves (never empty: at most 12 of 60 ports are served). */
  unservedPorts(): number[] {
    const out: number[] = [];
    for (let p = PORT_BASE; p < PORT_BASE + MAX_APPS * SLOT; p++) {
      if (!this.setup.apps.some((a) => p >= a.edge.start && p <= a.edge.end)) out.push(p);
    }
    return out;
  }

  clientLossy(c: ModelConn): boolean {
    return this.lossy.has(`${clientName(c.client)}|edge`);
  }

  originLossy(c: ModelConn): boolean {
    return c.app !== undefined && this.lossy.has(`edge|${originName(c.app)}`);
  }
}

interface Timeline {
  readonly steps: CaseStep[];
}

type EdgeCommand = fc.Command<EdgeModel, Timeline>;

const pick = <T>(xs: readonly T[], sel: number): T => xs[sel % xs.length]!;

class Connect implements EdgeCommand {
  constructor(readonly client: number, readonly target: number, readonly unserved: boolean) {}
  check = (m: Readonly<EdgeModel>): boolean => m.conns.length < MAX_CONNS;
  run(m: EdgeModel, t: Timeline): void {
    const client = this.client % m.setup.clients;
    let port: number;
    let app: number | undefined;
    if (this.unserved) port = pick(m.unservedPorts(), this.target);
    else {
      app = this.target % m.setup.apps.length;
      const a = m.setup.apps[app]!;
      port = a.edge.start + (Math.floor(this.target / MAX_APPS) % (a.edge.end - a.edge.start + 1));
    }
    const id = `c${m.conns.length}`;
    m.conns.push({ id, index: m.conns.length, client, port, app, sent: 0, ended: false, reset: false });
    t.steps.push({ at: m.now, connect: { id, client: clientName(client), to: `${EDGE_IP}:${port}` } });
  }
  toString = (): string => `connect(client#${this.client}, ${this.unserved ? 'unserved' : 'served'}#${this.target})`;
}

const sendable = (m: Readonly<EdgeModel>): ModelConn[] => m.conns.filter((c) => !c.ended && !c.reset);

class Send implements EdgeCommand {
  constructor(readonly conn: number, readonly bytes: number) {}
  check = (m: Readonly<EdgeModel>): boolean => sendable(m).length > 0;
  run(m: EdgeModel, t: Timeline): void {
    const c = pick(sendable(m), this.conn);
    c.sent += this.bytes;
    t.steps.push({ at: m.now, send: { id: c.id, bytes: this.bytes } });
  }
  toString = (): string => `send(conn#${this.conn}, ${this.bytes} B)`;
}

class End implements EdgeCommand {
  constructor(readonly conn: number) {}
  check = (m: Readonly<EdgeModel>): boolean => sendable(m).length > 0;
  run(m: EdgeModel, t: Timeline): void {
    const c = pick(sendable(m), this.conn);
    c.ended = true;
    t.steps.push({ at: m.now, end: { id: c.id } });
  }
  toString = (): string => `end(conn#${this.conn})`;
}

class Reset implements EdgeCommand {
  constructor(readonly conn: number) {}
  check = (m: Readonly<EdgeModel>): boolean => m.conns.some((c) => !c.reset);
  run(m: EdgeModel, t: Timeline): void {
    const c = pick(m.conns.filter((x) => !x.reset), this.conn);
    c.reset = true;
    t.steps.push({ at: m.now, reset: { id: c.id } });
  }
  toString = (): string => `reset(conn#${this.conn})`;
}

class Wait implements EdgeCommand {
  constructor(readonly ms: number) {}
  check = (): boolean => true;
  run(m: EdgeModel): void {
    m.now += this.ms;
  }
  toString = (): string => `wait(${this.ms} ms)`;
}

class ChangeLink implements EdgeCommand {
  constructor(readonly which: number, readonly fault: Omit<LinkSpec, 'between'>) {}
  check = (): boolean => true;
  run(m: EdgeModel, t: Timeline): void {
    const link: LinkSpec = { between: pick(linkPairs(m.setup.apps.length, m.setup.clients), this.which), ...this.fault };
    m.noteLink(link);
    t.steps.push({ at: m.now, link });
  }
  toString = (): string => `link(#${this.which}, ${JSON.stringify(this.fault)})`;
}

const sizeArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 64 }) },
  { weight: 3, arbitrary: fc.integer({ min: 65, max: 4_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 4_001, max: 20_000 }) }, // over the 16 KiB watermarks: backpressure
);
const connectArb = fc
  .record({ client: fc.nat(2), target: fc.nat(63), unserved: fc.nat(5).map((n) => n === 0) })
  .map((a) => new Connect(a.client, a.target, a.unserved));
const sendArb = fc.tuple(fc.nat(7), sizeArb).map(([c, n]) => new Send(c, n));

/** Opening connections first, then a command sequence (fc.commands weighs its arbitraries equally: repeats weigh). */
const scriptArb: fc.Arbitrary<Script> = fc.record({
  opening: fc.array(connectArb, { minLength: 1, maxLength: 4 }),
  commands: fc.commands<EdgeModel, Timeline>(
    [
      connectArb,
      sendArb,
      sendArb,
      sendArb,
      fc.nat(7).map((c) => new End(c)),
      fc.nat(7).map((c) => new End(c)),
      fc.nat(7).map((c) => new Reset(c)),
      fc.integer({ min: 1, max: 2_000 }).map((ms) => new Wait(ms)),
      fc.constantFrom(1, 5, 50).map((ms) => new Wait(ms)),
      fc.tuple(fc.nat(5), linkFaultArb).map(([w, f]) => new ChangeLink(w, f)),
    ],
    { maxCommands: 24, size: '+1', ...(COMMANDS_REPLAY !== undefined ? { replayPath: COMMANDS_REPLAY } : {}) },
  ),
});
interface Script {
  readonly opening: readonly Connect[];
  readonly commands: Iterable<EdgeCommand>;
}

function buildCase(setup: Setup, script: Script): { model: EdgeModel; edgeCase: EdgeCase } {
  const model = new EdgeModel(setup);
  const timeline: Timeline = { steps: [] };
  for (const c of script.opening) if (c.check(model)) c.run(model, timeline);
  fc.modelRun(() => ({ model, real: timeline }), script.commands);
  const edgeCase: EdgeCase = { seed: setup.seed, edge: EDGE_SETTINGS, apps: setup.apps, clients: setup.clients, links: setup.links, timeline: timeline.steps };
  return { model, edgeCase };
}

/** What the shrunk script did, for the regression file's comment. */
function describeScript(script: Script): string {
  return [...script.opening.map(String), ...[...script.commands].map(String)].join(', ');
}

// ── the oracle ──────────────────────────────────────────────────────────────────────────────────────────────────

const ERROR_STATUSES_DOWNSTREAM = [495, 497, 498, 499];

/** Statuses the edge may close a served connection with, given its origin and what the client did. */
function allowedStatuses(m: EdgeModel, c: ModelConn): Set<number> {
  const app = m.setup.apps[c.app!]!;
  const s = new Set<number>();
  if (app.mode === 'echo') s.add(200);
  if (app.mode === 'refuse') s.add(521);
  if (app.mode === 'blackhole' || m.originLossy(c)) s.add(522); // lost SYNs (or RSTs) until the connect timeout
  if (c.reset) {
    s.add(200); // the reset may come after the edge closed, or its RST may be lost
    for (const x of ERROR_STATUSES_DOWNSTREAM) s.add(x);
  }
  return s;
}

/** Whether the model says this connection completes cleanly: echo origin, client half-closed, no reset, no loss. */
function mustBeNormal(m: EdgeModel, c: ModelConn): boolean {
  return c.app !== undefined && m.setup.apps[c.app]!.mode === 'echo' && c.ended && !c.reset && !m.clientLossy(c) && !m.originLossy(c);
}

/** Scenario expectations the model is certain of (used in regression files so `refract sim` fails as the test did). */
function scenarioExpectations(m: EdgeModel): ConnExpectation[] {
  const out: ConnExpectation[] = [];
  for (const c of m.conns) {
    if (c.app === undefined || c.reset) continue;
    const app = m.setup.apps[c.app]!;
    const origin = `${originIp(c.app)}:${expectedOriginPort(app, c.port)}`;
    if (mustBeNormal(m, c)) out.push({ id: c.id, status: 200, origin, client_bytes: c.sent, ...(app.proxy === 'off' ? { origin_bytes: c.sent } : {}) });
    else if (app.mode === 'refuse' && !m.originLossy(c)) out.push({ id: c.id, status: 521 });
    else if (app.mode === 'blackhole') out.push({ id: c.id, status: 522 });
  }
  return out;
}

/** Quiescence is certain unless a lost RST can strand a peer's socket (see checkLifecycle): no link ever lossy. */
function certainlyQuiescent(m: EdgeModel): boolean {
  return m.lossy.size === 0;
}

function outcomes(m: EdgeModel, r: WorldResult): Array<[ModelConn, ConnOutcome]> {
  assert.deepEqual(r.strays, [], 'every edge connection, dial and origin connection is explained');
  assert.deepEqual(r.conns.map((o) => o.id), m.conns.map((c) => c.id), 'every timeline connection was made');
  return m.conns.map((c, i) => [c, r.conns[i]!]);
}

const isPrefix = (got: Buffer, whole: Buffer): boolean => got.length <= whole.length && got.equals(whole.subarray(0, got.length));

/** Property 1: bytes arrive in order, exactly once, both ways; completely when the connection closed normally. */
function checkBytes(m: EdgeModel, r: WorldResult): void {
  for (const [c, o] of outcomes(m, r)) {
    const e = o.edge;
    if (c.app === undefined || e === undefined) continue;
    const app = m.setup.apps[c.app]!;
    const label = `${c.id} (${o.clientLocal} → :${c.port}, status ${e.status} ${e.reason})`;
    const normal = e.status === 200 && e.reason === 'normal';
    // A send is skipped only once the client's side is finished or closed, which a normal close never precedes.
    assert.ok(o.clientSent <= c.sent && (o.skipped > 0 || o.clientSent === c.sent), `${label}: the client wrote ${o.clientSent} B of the model's ${c.sent} B`);
    if (normal) assert.equal(o.clientSent, c.sent, `${label}: a send was skipped on a connection that closed normally`);
    const c2s = filler(o.index, 0, o.clientSent);
    assert.ok(e.bytesDownstream !== undefined && e.bytesUpstream !== undefined, `${label}: the close record carries byte counts`);
    assert.ok(e.bytesDownstream <= o.clientSent, `${label}: the edge read ${e.bytesDownstream} B but the client wrote ${o.clientSent} B`);
    assert.ok(e.origins.length <= 1, `${label}: ${e.origins.length} origin connections for one target`);
    const up = e.origins[0];
    if (up === undefined) {
      assert.equal(e.bytesUpstream, 0, `${label}: no origin connection, no origin bytes`);
      assert.equal(o.clientReceived.length, 0, `${label}: no origin connection, nothing for the client`);
      assert.ok(!normal || app.mode !== 'echo', `${label}: a normal close had an origin connection`);
      continue;
    }
    // What reached the origin: the PROXY header (if any), then a prefix of the client's bytes.
    let payload = up.received;
    if (app.proxy !== 'off' && up.received.length > 0) {
      const h = decodeProxyHeader(up.received);
      if (h.kind === 'header') {
        assert.equal(h.header.version, app.proxy === 'v1' ? 1 : 2, `${label}: PROXY v${h.header.version} for ${app.proxy}`);
        assert.deepEqual(h.header.src, { address: clientIp(c.client), port: Number(o.clientLocal.split(':')[1]) }, `${label}: PROXY src is the client`);
        assert.deepEqual(h.header.dst, { address: EDGE_IP, port: c.port }, `${label}: PROXY dst is the edge address`);
        payload = up.received.subarray(h.header.length);
      } else assert.ok(!normal && h.kind === 'incomplete', `${label}: the origin got a broken PROXY header (${h.kind})`);
    }
    assert.ok(isPrefix(payload, c2s), `${label}: the origin's ${payload.length} B are not a prefix of the client's ${c2s.length} B`);
    assert.ok(payload.length <= e.bytesDownstream, `${label}: the origin got more than the edge read`);
    // Return path: the echo sends back what it read; the client gets a prefix of it, no more than the edge read.
    assert.equal(up.sent, up.received.length, `${label}: the echo origin read ${up.received.length} B and wrote ${up.sent} B`);
    assert.ok(e.bytesUpstream <= up.sent, `${label}: the edge read more from the origin than it sent`);
    assert.ok(isPrefix(o.clientReceived, up.received), `${label}: the client's ${o.clientReceived.length} B are not a prefix of the echo`);
    assert.ok(o.clientReceived.length <= e.bytesUpstream, `${label}: the client got more than the edge read from the origin`);
    if (normal) {
      assert.equal(e.bytesDownstream, o.clientSent, `${label}: a normal close read ${e.bytesDownstream} of the client's ${o.clientSent} B`);
      assert.ok(payload.equals(c2s), `${label}: a normal close delivered every client byte to the origin`);
      assert.equal(e.bytesUpstream, up.sent, `${label}: a normal close read ${e.bytesUpstream} of the origin's ${up.sent} B`);
      // The edge's close is normal once its kernel has every byte; a client that resets may not read them all.
      if (!c.reset) assert.ok(o.clientReceived.equals(up.received), `${label}: a normal close delivered every origin byte to the client`);
    }
  }
}

/** Property 2: each connection reaches origin start + P − a of its app; an unserved port never gets as far as a dial. */
function checkRouting(m: EdgeModel, r: WorldResult): void {
  for (const [c, o] of outcomes(m, r)) {
    const e = o.edge;
    if (c.app === undefined) {
      assert.equal(e, undefined, `${c.id}: the edge accepted a connection to unserved port ${c.port}`);
      if (!c.reset) assert.equal(o.clientError, 'ECONNREFUSED', `${c.id}: unserved port ${c.port} gave ${o.clientError ?? 'no error'}, not ECONNREFUSED`);
      continue;
    }
    if (e === undefined) {
      assert.ok(c.reset, `${c.id}: the edge never accepted a connection to served port ${c.port}`);
      continue;
    }
    const app = m.setup.apps[c.app]!;
    const target = `${originIp(c.app)}:${expectedOriginPort(app, c.port)}`;
    assert.equal(e.edgePort, c.port, `${c.id}: accepted on edge port ${e.edgePort}, dialled ${c.port}`);
    assert.equal(e.app, app.id, `${c.id}: port ${c.port} is served by ${app.id}, the edge says ${e.app}`);
    for (const d of e.dials) assert.equal(d, target, `${c.id}: port ${c.port} of ${app.id} dialled ${d}, not ${target}`);
    for (const up of e.origins) assert.equal(up.listen, target, `${c.id}: the origin connection is on ${up.listen}, not ${target}`);
    if (e.status === 200 && e.reason === 'normal') assert.equal(e.origins.length, 1, `${c.id}: a normal close went through the origin`);
    if (app.mode !== 'echo') assert.equal(e.origins.length, 0, `${c.id}: a ${app.mode} origin accepted a connection`);
  }
  const served = new Set(m.setup.apps.flatMap((a) => Array.from({ length: a.edge.end - a.edge.start + 1 }, (_, i) => a.edge.start + i)));
  for (const line of r.trace) {
    const rec = JSON.parse(line) as { event: string; edge?: string };
    if (rec.event === 'accept') assert.ok(served.has(Number(rec.edge!.split(':')[1])), `the edge accepted on an unserved port: ${line}`);
  }
}

/** Property 3: one close per connection with a fitting status, then nothing left: no connection, socket or timer. */
function checkLifecycle(m: EdgeModel, r: WorldResult): void {
  for (const [c, o] of outcomes(m, r)) {
    const e = o.edge;
    if (e === undefined) continue;
    const label = `${c.id} (:${c.port})`;
    const story = `${label}: trace ${e.events.join(' ')}, closing events ${JSON.stringify(e.closingStatuses)}`;
    assert.equal(e.events[0], 'accept', `${story}: starts with accept`);
    assert.equal(e.events.filter((x) => x === 'close').length, 1, `${story}: exactly one close record`);
    assert.equal(e.events.at(-1), 'close', `${story}: close is the last record`);
    assert.deepEqual(e.closingStatuses, [e.status], `${story}: exactly one closing event, with the close record's status`);
    const allowed = allowedStatuses(m, c);
    assert.ok(allowed.has(e.status!), `${label}: status ${e.status} (${e.reason}) is not one of ${[...allowed].join(', ')}`);
    if (mustBeNormal(m, c) && e.status === 200) assert.equal(e.reason, 'normal', `${label}: a clean half-close ended ${e.reason}, not normally`);
    if (!m.clientLossy(c)) assert.ok(o.clientClosed, `${label}: the client side closed`);
  }
  assert.ok(r.idleAfterRun, 'the run reached quiescence within its step bound');
  assert.equal(r.activeAfterRun, 0, `connections still open at quiescence: ${r.statesAfterRun.join(', ')}`);
  // An RST is sent once. When the edge resets a connection (client reset, unread bytes at close) and a lossy link
  // eats the RST, a peer with nothing to send never learns, as with real TCP without keepalive: an ESTABLISHED
  // socket with an empty send queue, behind a lossy link, is the only thing allowed to outlive the run. A socket with
  // bytes or a FIN still unacknowledged must have a retransmission pending, so it never outlives an idle run.
  const byId = new Map(m.conns.map((c) => [c.id, c] as const));
  assert.deepEqual(r.openClientsAfterRun.filter((id) => !m.clientLossy(byId.get(id)!)), [], 'client connections still open at quiescence');
  const lossyToEdge = (host: string): boolean => m.lossy.has(`edge|${host}`) || m.lossy.has(`${host}|edge`);
  const leftover = (n: WorldResult['netstat']): string[] =>
    n.tcp
      .filter((x) => !(lossyToEdge(x.host) && x.state === 'ESTABLISHED' && x.sendQueue === 0))
      .map((x) => `${x.host} ${x.local}>${x.remote} ${x.state} app=${x.app} sendQueue=${x.sendQueue}`);
  assert.deepEqual(leftover(r.netstatAfterRun), [], 'sockets left at quiescence');
  assert.deepEqual(leftover(r.netstat), [], 'sockets left after shutdown');
  assert.deepEqual({ listeners: r.netstat.listeners, udp: r.netstat.udp }, { listeners: [], udp: [] }, 'listeners left after shutdown');
  assert.equal(r.pendingTimers, 0, `${r.pendingTimers} timers left after shutdown`);
}

// ── running a property, saving the shrunk failure ───────────────────────────────────────────────────────────────

/**
 * Runs one property with fast-check on seed REFRACT_FC_SEED + `seedOffset` (each property explores its own cases);
 * on failure writes the shrunk case to scenarios/regressions/ and throws fast-check's report, seed and path.
 */
async function checkProperty(t: TestContext, title: string, seedOffset: number, numRuns: number, body: (m: EdgeModel, c: EdgeCase) => Promise<void>): Promise<void> {
  const prop = fc.asyncProperty(setupArb, scriptArb, async (setup, script) => {
    const { model, edgeCase } = buildCase(setup, script);
    await body(model, edgeCase);
  });
  const details = await fc.check(prop, { seed: SEED + seedOffset, numRuns: Math.max(1, Math.round(numRuns * RUN_SCALE)), ...(PATH !== undefined ? { path: PATH } : {}) });
  if (!details.failed) return;
  const report = fc.defaultReportMessage(details) ?? 'property failed';
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  let saved = '(no counterexample to save)';
  let replay = '';
  if (details.counterexample !== null) {
    replay = /replayPath="([^"]*)"/.exec(String(details.counterexample[1].commands))?.[1] ?? '';
    const [setup, script] = details.counterexample;
    const { model, edgeCase } = buildCase(setup, script);
    const file = toScenario(edgeCase, { name: `regression: ${title}`, expect: scenarioExpectations(model), quiescent: certainlyQuiescent(model) });
    saved = writeRegression(
      file,
      [
        `Shrunk counterexample of test/prop/edge/proxy.prop.test.ts: "${title}".`,
        `fast-check seed ${details.seed}, path "${details.counterexamplePath ?? ''}"`,
        `(rerun: REFRACT_FC_SEED=${details.seed - seedOffset} REFRACT_FC_PATH="${details.counterexamplePath ?? ''}" REFRACT_FC_REPLAY="${replay}").`,
        `Commands: ${describeScript(script)}`,
        `Failure: ${error.split('\n')[0] ?? ''}`,
        'Expectations below are the ones the model is sure of; replay with: refract sim <this file>',
      ].join('\n'),
    );
  }
  const rerun = `REFRACT_FC_SEED=${details.seed - seedOffset} REFRACT_FC_PATH="${details.counterexamplePath ?? ''}" REFRACT_FC_REPLAY="${replay}" node --import tsx --test --test-name-pattern="${t.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" test/prop/edge/proxy.prop.test.ts`;
  throw new Error(`${report}\n\n${error}\n\nrerun: ${rerun}\nshrunk case saved as scenario ${saved} (refract sim ${saved})`);
}

test('every byte a client sends reaches the origin once and in order, and the echo comes back the same way', async (t) => {
  await checkProperty(t, 'byte integrity', 0, 100, async (m, c) => checkBytes(m, await runCase(c)));
});

test('each connection reaches origin port start + P − a of its app; an unserved port is refused and dials nothing', async (t) => {
  await checkProperty(t, 'routing', 1, 100, async (m, c) => checkRouting(m, await runCase(c)));
});

test('every connection closes once with a status that fits its story, and nothing is left after shutdown', async (t) => {
  await checkProperty(t, 'close and quiescence', 2, 100, async (m, c) => checkLifecycle(m, await runCase(c)));
});

test('the same case and seed give a byte-identical decision trace', async (t) => {
  await checkProperty(t, 'determinism', 3, 30, async (_m, c) => {
    const a = await runCase(c);
    const b = await runCase(c);
    if (a.conns.some((o) => o.edge !== undefined)) assert.ok(a.trace.length > 0, 'the trace recorded the run');
    assert.equal(b.trace.join('\n'), a.trace.join('\n'));
    assert.equal(b.endTime, a.endTime);
    // And what the clients saw, byte for byte.
    const seen = (r: WorldResult): string[] => r.conns.map((o) => `${o.id} ${o.clientError ?? '-'} ${createHash('sha256').update(o.clientReceived).digest('hex')}`);
    assert.deepEqual(seen(b), seen(a));
  });
});

test('a generated case written as a scenario file and run by runScenario is the same run as in the harness', async (t) => {
  await checkProperty(t, 'scenario runner equivalence', 4, 30, async (m, c) => {
    const mine = await runCase(c);
    const report = await runScenario(toScenario(c, { expect: scenarioExpectations(m), quiescent: certainlyQuiescent(m) }));
    const hash = createHash('sha256');
    for (const line of mine.trace) hash.update(`${line}\n`);
    assert.equal(report.traceHash, hash.digest('hex'), 'the runner recorded the same decision trace');
    assert.equal(report.traceLines, mine.trace.length);
    assert.equal(report.stoppedBy, 'idle');
    assert.deepEqual(report.failures, [], 'the expectations the model is sure of hold in the runner');
    assert.equal(report.quiescent, mine.netstatAfterRun.tcp.length === 0, `quiescence: the runner left ${report.leftOpen.join('; ')}`);
    assert.deepEqual(report.connections.map((x) => x.id), mine.conns.map((o) => o.id));
    for (const [i, o] of mine.conns.entries()) {
      const x = report.connections[i]!;
      const e = o.edge;
      assert.deepEqual(
        { status: x.status, reason: x.reason, clientBytes: x.clientBytes, originBytes: x.originBytes, origin: x.origin, receivedBytes: x.receivedBytes, error: x.error },
        {
          status: e?.status ?? null,
          reason: e?.reason ?? null,
          clientBytes: e?.bytesDownstream ?? 0,
          originBytes: e?.bytesUpstream ?? 0,
          origin: e?.dials.at(-1) ?? null,
          receivedBytes: o.clientReceived.length,
          error: o.clientError ?? null,
        },
        `${o.id}: the runner's outcome`,
      );
    }
  });
});

test('a failing case is saved as a scenario file that names its seed and keeps its timeline', async () => {
  // The save path of checkProperty, on a case built by hand: what a failure would leave behind.
  const setup = fc.sample(setupArb, { seed: 7, numRuns: 1 })[0]!;
  const script: Script = { opening: [new Connect(0, 0, false)], commands: [new Send(0, 10), new End(0)] };
  const { model, edgeCase } = buildCase(setup, script);
  const file = toScenario(edgeCase, { expect: scenarioExpectations(model) });
  assert.equal(file.seed, setup.seed);
  assert.deepEqual(file.timeline.map((s) => Object.keys(s).filter((k) => k !== 'at')[0]), ['connect', 'send', 'end']);
  assert.equal(file.apps.length, setup.apps.length);
  const dir = mkdtempSync(join(tmpdir(), 'refract-regress-'));
  try {
    const path = writeRegression(file, 'test', dir);
    assert.ok(existsSync(path) && /regress-[0-9a-f]{12}\.yaml$/.test(path));
    assert.equal(writeRegression(file, 'test again', dir), path, 'the name comes from the case, not the comment');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
