/**
 * Properties of UDP apps on the simulator: many clients, each with several source ports, sending datagrams over
 * lossy, duplicating, reordering links to a UDP app on an edge port range, through Refract, to an origin port
 * range; the origin answers every datagram with a reply that names the flow it saw.
 *
 * Invariants checked on every case:
 * 1. Routing to the origin: a datagram a client sent to edge port P arrives only at origin port O + P − A (A, O:
 *    the ranges' starts), from an upstream socket that carries one (client address, client port, edge address,
 *    edge port) flow only; nothing the edge sends upstream goes anywhere but the origin range; nothing larger than
 *    udp_max_datagram_bytes reaches the origin (no fragmentation).
 * 2. What the origin learns is true: SPP on every datagram names the client and the edge address/port it reached;
 *    PROXY v2 (DGRAM) names the same, on at most one distinct datagram per upstream socket.
 * 3. Routing back: every datagram a client receives comes from an edge address/port it sent to and answers one of
 *    its own datagrams sent there; the flow the origin named in it (by its SPP/v2 client, or for `off` by the
 *    upstream socket the origin saw) is that client's.
 * 4. Flow lifecycle: each flow closes with idle_timeout/200, exactly `idle` after its last datagram either way
 *    (so DurationMs ≥ idle, and the app's idle_timeout_ms wins over the edge's when set); its ClientPackets and
 *    OriginPackets equal the datagrams the simulator delivered to / sent from the edge socket for that flow.
 * 5. After quiescence and shutdown: no flow (edge.udp.activeCount), no UDP socket on the edge host, no timer.
 *
 * Seeds: REFRACT_FC_SEED (default a constant, so CI is reproducible), REFRACT_FC_RUNS to scale the number of runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { createSim, type Sim } from '../../../src/net/sim/index.ts';
import type { UdpSocket } from '../../../src/net/ports.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { validateConfig } from '../../../src/model/config.ts';
import { DEFAULTS } from '../../../src/model/defaults.ts';
import { decodeProxyHeader } from '../../../src/core/proxy-protocol.ts';
import { decodeSpp, encodeSpp } from '../../../src/core/spp.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';

const SEED = process.env.REFRACT_FC_SEED !== undefined ? Number(process.env.REFRACT_FC_SEED) : 20_260_311;
const RUN_SCALE = process.env.REFRACT_FC_RUNS !== undefined ? Number(process.env.REFRACT_FC_RUNS) : 1;
const NUM_RUNS = Math.max(1, Math.round(200 * RUN_SCALE));

const EDGE_V4 = '198.51.100.1';
const EDGE_V6 = '2001:db8:e::1';
const ORIGIN_IP = '198.51.100.2';
const MAX_DGRAM = DEFAULTS.udpMaxDatagramBytes;
const enc = new TextEncoder();
const dec = new TextDecoder();

// ── the case ───────────────────────────────────────────────────────────────────────────────────────────────────

type Pp = 'off' | 'v2' | 'simple';

interface LinkCase {
  readonly latencyMs: number;
  readonly jitterMs: number;
  readonly loss: number;
  readonly duplicate: number;
  readonly reorder: number;
  readonly reorderDelayMs: number;
}

interface SendCase {
  /** When, in 1/100ths of the idle timeout after the start (0 .. 4 idle timeouts: flows expire and reopen). */
  readonly atCenti: number;
  /** Which edge port of the range, as an offset from its start. */
  readonly portOffset: number;
  /** Filler bytes after the token; large ones make some datagrams too big once a header is added. */
  readonly pad: number;
}

interface ClientCase {
  readonly v6: boolean;
  readonly sockets: ReadonlyArray<{ readonly port: number; readonly sends: readonly SendCase[] }>;
  readonly link: LinkCase;
}

interface Case {
  readonly simSeed: number;
  readonly pp: Pp;
  readonly idleMs: number;
  /** Where the idle timeout is configured: the edge's udp_idle_timeout_ms, or the app's idle_timeout_ms. */
  readonly idleOn: 'edge' | 'app';
  readonly edgeStart: number;
  readonly len: number;
  readonly originStart: number;
  readonly clients: readonly ClientCase[];
  readonly originLink: LinkCase;
}

const linkArb: fc.Arbitrary<LinkCase> = fc.record({
  latencyMs: fc.integer({ min: 0, max: 40 }),
  jitterMs: fc.constantFrom(0, 0, 2, 15),
  loss: fc.constantFrom(0, 0, 0.05, 0.3),
  duplicate: fc.constantFrom(0, 0, 0.1, 0.3),
  reorder: fc.constantFrom(0, 0, 0.1, 0.4),
  reorderDelayMs: fc.integer({ min: 1, max: 60 }),
});

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    simSeed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    pp: fc.constantFrom<Pp>('off', 'v2', 'simple'),
    idleMs: fc.integer({ min: 100, max: 5_000 }),
    idleOn: fc.constantFrom('edge' as const, 'app' as const),
    edgeStart: fc.integer({ min: 1_000, max: 9_000 }),
    len: fc.integer({ min: 1, max: 4 }),
    originStart: fc.integer({ min: 1, max: 65_000 }),
    originLink: linkArb,
  })
  .chain((base) =>
    fc
      .array(
        fc.record({
          v6: fc.boolean(),
          sockets: fc
            .uniqueArray(fc.integer({ min: 1_024, max: 65_535 }), { minLength: 1, maxLength: 3 })
            .chain((ports) =>
              fc.tuple(
                ...ports.map((port) =>
                  fc.record({
                    port: fc.constant(port),
                    sends: fc.array(
                      fc.record({
                        atCenti: fc.integer({ min: 0, max: 400 }),
                        portOffset: fc.integer({ min: 0, max: base.len - 1 }),
                        pad: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 64 }) }, { weight: 1, arbitrary: fc.integer({ min: 1_390, max: 1_470 }) }),
                      }),
                      { minLength: 1, maxLength: 5 },
                    ),
                  }),
                ),
              ),
            ),
          link: linkArb,
        }),
        { minLength: 1, maxLength: 20 },
      )
      .map((clients): Case => ({ ...base, clients })),
  );

// ── running a case ─────────────────────────────────────────────────────────────────────────────────────────────

const clientIp = (i: number, v6: boolean): string => (v6 ? `2001:db8:c::${(i + 1).toString(16)}` : `203.0.113.${i + 1}`);
const hostPort = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/** One datagram a client sent: who, from where, to which edge address and port. */
interface Sent {
  readonly token: string;
  readonly clientAddr: string;
  readonly clientPort: number;
  readonly edgeAddr: string;
  readonly edgePort: number;
  readonly bytes: number;
}
/** A flow's identity as the edge keys it. */
const flowKey = (clientAddr: string, clientPort: number, edgeAddr: string, edgePort: number): string =>
  `${hostPort(clientAddr, clientPort)}>${hostPort(edgeAddr, edgePort)}`;
const sentKey = (s: Sent): string => flowKey(s.clientAddr, s.clientPort, s.edgeAddr, s.edgePort);

/** What the origin puts in each reply: the token it answers and the flow it believes it came from. */
interface Reply {
  readonly token: string;
  /** The origin port that received it. */
  readonly o: number;
  /** The upstream source (the edge's per-flow socket) it came from. */
  readonly u: string;
  /** The client named by SPP or PROXY v2 (for v2 learned from the upstream socket's first header), or null. */
  readonly c: string | null;
  /** The edge address:port named by SPP or PROXY v2, or null. */
  readonly e: string | null;
}

interface Timed<T> {
  readonly t: number;
  readonly v: T;
}

/** A parsed simulator udp.send / udp.recv event: `src>dst len=N`. */
interface Hop {
  readonly t: number;
  readonly type: 'udp.send' | 'udp.recv';
  readonly src: string;
  readonly dst: string;
}
const HOP = /^(\S+)>(\S+) len=\d+/;

function linkParams(l: LinkCase) {
  return { latencyMs: l.latencyMs, jitterMs: l.jitterMs, loss: l.loss, duplicate: l.duplicate, reorder: l.reorder, reorderDelayMs: l.reorderDelayMs };
}

/** Runs one case to quiescence and shutdown; returns every violated invariant as a line of text (empty: all held). */
async function runCase(c: Case): Promise<string[]> {
  const bad: string[] = [];
  const edgeHops: Hop[] = [];
  const sim: Sim = createSim({
    seed: c.simSeed,
    onEvent: (ev) => {
      if (ev.host !== 'edge' || (ev.type !== 'udp.send' && ev.type !== 'udp.recv')) return;
      const m = HOP.exec(ev.detail);
      if (m) edgeHops.push({ t: ev.t, type: ev.type, src: m[1]!, dst: m[2]! });
    },
  });
  const edgeH = sim.host('edge', { addresses: [EDGE_V4, EDGE_V6] });
  const originH = sim.host('origin', { addresses: [ORIGIN_IP] });
  sim.link('edge', 'origin', linkParams(c.originLink));
  const clientHosts = c.clients.map((cl, i) => {
    const h = sim.host(`c${i}`, { addresses: [clientIp(i, cl.v6)] });
    sim.link(`c${i}`, 'edge', linkParams(cl.link));
    return h;
  });

  // ── the origin: one socket per origin port, each answering every datagram with what it saw ──
  const originEnd = c.originStart + c.len - 1;
  const sentBy = new Map<string, Sent>();
  /** Upstream socket → the flow key of its first datagram (by token), and the header-bearing tokens it sent. */
  const upstreamFlow = new Map<string, string>();
  const v2Learned = new Map<string, { c: string; e: string }>();
  const v2HeaderTokens = new Map<string, Set<string>>();
  const originSockets: UdpSocket[] = [];
  for (let q = c.originStart; q <= originEnd; q++) {
    const sock = await originH.bindUdp({ host: ORIGIN_IP, port: q });
    originSockets.push(sock);
    sock.setHandler((m) => {
      const u = hostPort(m.remote.address, m.remote.port);
      if (m.data.length > MAX_DGRAM) bad.push(`origin :${q} received ${m.data.length} B from ${u}, more than udp_max_datagram_bytes ${MAX_DGRAM}`);
      let payload: Uint8Array = m.data;
      let named: { c: string; e: string } | null = null;
      let sppHeader: { client: { address: string; port: number }; proxy: { address: string; port: number } } | undefined;
      if (c.pp === 'simple') {
        const s = decodeSpp(m.data);
        if (s.kind !== 'ok') {
          bad.push(`origin :${q} got a datagram without a valid SPP header from ${u} (${s.code})`);
          return;
        }
        payload = s.payload;
        sppHeader = { client: s.client, proxy: s.proxy };
        named = { c: hostPort(s.client.address, s.client.port), e: hostPort(s.proxy.address, s.proxy.port) };
      } else {
        const d = decodeProxyHeader(m.data);
        if (d.kind === 'header') {
          if (c.pp !== 'v2') bad.push(`origin :${q} got a PROXY header with proxy_protocol ${c.pp}`);
          const h = d.header;
          if (h.version !== 2 || h.transport !== 'dgram' || h.command !== 'proxy' || !h.src || !h.dst) {
            bad.push(`origin :${q} got a PROXY header that is not v2 PROXY DGRAM with addresses: ${JSON.stringify(h)}`);
            return;
          }
          payload = d.rest;
          named = { c: hostPort(h.src.address, h.src.port), e: hostPort(h.dst.address, h.dst.port) };
          const prev = v2Learned.get(u);
          if (prev && (prev.c !== named.c || prev.e !== named.e)) bad.push(`upstream ${u} sent PROXY v2 headers naming two flows: ${JSON.stringify(prev)} and ${JSON.stringify(named)}`);
          v2Learned.set(u, named);
        } else if (c.pp === 'v2') {
          named = v2Learned.get(u) ?? null; // header lost, reordered behind this one, or not yet sent (oversize)
        }
      }
      const token = dec.decode(payload).split(';', 1)[0]!;
      const s = sentBy.get(token);
      if (!s) {
        bad.push(`origin :${q} got a datagram no client sent (token ${JSON.stringify(token.slice(0, 40))}) from ${u}`);
        return;
      }
      if (c.pp === 'v2' && d2HasHeader(m.data)) {
        const set = v2HeaderTokens.get(u) ?? new Set<string>();
        set.add(token);
        v2HeaderTokens.set(u, set);
        if (set.size > 1) bad.push(`upstream ${u} put a PROXY v2 header on ${set.size} different datagrams (${[...set].join(', ')})`);
      }
      const wantQ = c.originStart + s.edgePort - c.edgeStart;
      if (q !== wantQ) bad.push(`token ${token} sent to edge :${s.edgePort} reached origin :${q}, expected :${wantQ}`);
      const key = sentKey(s);
      const owner = upstreamFlow.get(u);
      if (owner === undefined) upstreamFlow.set(u, key);
      else if (owner !== key) bad.push(`upstream ${u} carried two flows: ${owner} and ${key}`);
      if (named && (named.c !== hostPort(s.clientAddr, s.clientPort) || named.e !== hostPort(s.edgeAddr, s.edgePort))) {
        bad.push(`origin :${q} was told token ${token} came from ${named.c} via ${named.e}; it came from ${key}`);
      }
      const reply: Reply = { token, o: q, u, c: named?.c ?? null, e: named?.e ?? null };
      const body = enc.encode(JSON.stringify(reply));
      sock.send(sppHeader ? encodeSpp(sppHeader, body) : body, m.remote.port, m.remote.address);
    });
  }

  // ── the edge ──
  const raw = {
    edge: { addresses: [EDGE_V4, EDGE_V6], udp_idle_timeout_ms: c.idleOn === 'edge' ? c.idleMs : c.idleMs * 3 + 7 },
    apps: [
      {
        protocol: c.len === 1 ? `udp/${c.edgeStart}` : `udp/${c.edgeStart}-${c.edgeStart + c.len - 1}`,
        dns: { name: 'udp-prop.example.test' },
        origin_direct: [c.len === 1 ? `udp://${ORIGIN_IP}:${c.originStart}` : `udp://${ORIGIN_IP}:${c.originStart}-${originEnd}`],
        proxy_protocol: c.pp,
        ...(c.idleOn === 'app' ? { idle_timeout_ms: c.idleMs } : {}),
      },
    ],
  };
  const v = validateConfig(raw);
  if (!v.ok) throw new Error(`case config invalid: ${JSON.stringify(v.issues)}`);
  const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, v.config);
  const events: Array<Timed<SpectrumEvent>> = [];
  edge.events.events$.subscribe((e) => events.push({ t: sim.clock.now(), v: e }));
  const applied = edge.apply(v.config);
  await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  await applied;

  // ── the clients: each socket sends its datagrams at their times and checks every reply it gets ──
  const clientSockets: UdpSocket[] = [];
  let seq = 0;
  for (const [i, cl] of c.clients.entries()) {
    const addr = clientIp(i, cl.v6);
    const edgeAddr = cl.v6 ? EDGE_V6 : EDGE_V4;
    for (const sc of cl.sockets) {
      const sock = await clientHosts[i]!.bindUdp({ host: addr, port: sc.port });
      clientSockets.push(sock);
      const mine = new Set<string>();
      sock.setHandler((m) => {
        const from = hostPort(m.remote.address, m.remote.port);
        let r: Reply;
        try {
          r = JSON.parse(dec.decode(m.data)) as Reply;
        } catch {
          bad.push(`client ${hostPort(addr, sc.port)} got a datagram that is no reply from ${from} (${m.data.length} B)`);
          return;
        }
        const s = sentBy.get(r.token);
        if (!s || !mine.has(r.token)) {
          bad.push(`client ${hostPort(addr, sc.port)} got the answer to ${s ? `someone else's token ${r.token} (${sentKey(s)})` : `unknown token ${r.token}`}`);
          return;
        }
        if (from !== hostPort(s.edgeAddr, s.edgePort)) bad.push(`the answer to ${r.token} (sent to ${hostPort(s.edgeAddr, s.edgePort)}) came from ${from}`);
        const key = sentKey(s);
        if (r.c !== null && (r.c !== hostPort(addr, sc.port) || r.e !== hostPort(s.edgeAddr, s.edgePort))) bad.push(`the answer to ${r.token} names flow ${r.c} via ${r.e}, not ${key}`);
        if (upstreamFlow.get(r.u) !== key) bad.push(`the answer to ${r.token} came back through upstream ${r.u}, which carries ${upstreamFlow.get(r.u) ?? 'nothing'}, not ${key}`);
      });
      for (const sd of sc.sends) {
        const edgePort = c.edgeStart + sd.portOffset;
        const token = `T${i}.${sc.port}.${seq++}`;
        const data = enc.encode(`${token};${'x'.repeat(sd.pad)}`);
        const s: Sent = { token, clientAddr: addr, clientPort: sc.port, edgeAddr, edgePort, bytes: data.length };
        sentBy.set(token, s);
        mine.add(token);
        sim.clock.setTimer(Math.floor((sd.atCenti * c.idleMs) / 100), () => sock.send(data, edgePort, edgeAddr));
      }
    }
  }
  const run = await sim.runUntilIdleAsync({ maxSteps: 2_000_000 });
  if (!run.idle) bad.push(`the simulation did not go idle within ${run.steps} steps`);
  if (edge.udp.activeCount !== 0) bad.push(`${edge.udp.activeCount} flows still active after quiescence (all should have idled out)`);

  // ── edge-side checks against the simulator's record of what the edge socket received and sent ──
  const inRange = (q: number): boolean => q >= c.originStart && q <= originEnd;
  const edgeListen = new Set<string>();
  for (let p = c.edgeStart; p < c.edgeStart + c.len; p++) for (const a of [EDGE_V4, EDGE_V6]) edgeListen.add(hostPort(a, p));
  /** Per flow key, the times the edge socket received from / sent to that client. */
  const activity = new Map<string, { recv: number[]; sent: number[] }>();
  const act = (k: string) => activity.get(k) ?? (activity.set(k, { recv: [], sent: [] }).get(k) as { recv: number[]; sent: number[] });
  for (const h of edgeHops) {
    if (h.type === 'udp.recv' && edgeListen.has(h.dst)) act(`${h.src}>${h.dst}`).recv.push(h.t);
    else if (h.type === 'udp.send' && edgeListen.has(h.src)) act(`${h.dst}>${h.src}`).sent.push(h.t);
    else if (h.type === 'udp.send') {
      const m = /^(.*):(\d+)$/.exec(h.dst);
      if (!m || m[1] !== ORIGIN_IP || !inRange(Number(m[2]))) bad.push(`the edge sent a datagram upstream to ${h.dst}, outside origin ${ORIGIN_IP}:${c.originStart}-${originEnd}`);
    }
  }

  const opened = new Map<string, number>();
  const closes: Array<Timed<SpectrumEvent>> = [];
  for (const ev of events) {
    if (ev.v.Event === 'connect') {
      if (opened.has(ev.v.ConnectionID)) bad.push(`flow ${ev.v.ConnectionID} connected twice`);
      opened.set(ev.v.ConnectionID, ev.t);
    } else closes.push(ev);
  }
  if (closes.length !== opened.size) bad.push(`${opened.size} flows opened but ${closes.length} closed`);
  for (const { t, v: e } of closes) {
    const id = e.ConnectionID;
    const t0 = opened.get(id);
    const key = flowKey(e.ClientIP, e.ClientPort, e.EdgeIP, e.EdgePort);
    if (t0 === undefined) {
      bad.push(`flow ${id} closed without a connect event`);
      continue;
    }
    if (e.Event !== 'disconnect' || e.Status !== 200 || e.CloseReason !== 'idle_timeout' || e.ErrorCode !== 'E_IDLE_TIMEOUT') {
      bad.push(`flow ${id} (${key}) closed ${e.Event}/${e.Status}/${e.CloseReason}/${e.ErrorCode}, not disconnect/200/idle_timeout`);
    }
    if (e.ClientProto !== 'udp' || e.ProxyProtocol !== c.pp) bad.push(`flow ${id} logged ${e.ClientProto}/${e.ProxyProtocol}`);
    const wantQ = c.originStart + e.EdgePort - c.edgeStart;
    if (e.OriginIP !== ORIGIN_IP || e.OriginPort !== wantQ) bad.push(`flow ${id} logged origin ${e.OriginIP}:${e.OriginPort}, expected ${ORIGIN_IP}:${wantQ}`);
    if (!(e.DurationMs >= c.idleMs - 0.001)) bad.push(`flow ${id} (${key}) lasted ${e.DurationMs} ms, less than the idle timeout ${c.idleMs} ms`);
    // This flow's datagrams are the edge socket's receptions from / sends to its key in [open, close).
    const a = activity.get(key) ?? { recv: [], sent: [] };
    const recv = a.recv.filter((x) => x >= t0 && x < t);
    const sent = a.sent.filter((x) => x >= t0 && x < t);
    if (e.ClientPackets !== recv.length) bad.push(`flow ${id} (${key}) logged ClientPackets ${e.ClientPackets}, the edge received ${recv.length}`);
    if (e.OriginPackets !== sent.length) bad.push(`flow ${id} (${key}) logged OriginPackets ${e.OriginPackets}, the edge sent ${sent.length}`);
    const last = Math.max(t0, ...recv, ...sent);
    if (Math.abs(t - (last + c.idleMs)) > 0.001) bad.push(`flow ${id} (${key}) closed at ${t}, not idle ${c.idleMs} ms after its last datagram at ${last}`);
    if (Math.abs(e.DurationMs - (t - t0)) > 0.001) bad.push(`flow ${id} logged DurationMs ${e.DurationMs}, it lasted ${t - t0}`);
  }
  // Every datagram the edge received on the app's ports belongs to some flow.
  const counted = closes.reduce((n, { v: e }) => n + (e.ClientPackets ?? 0), 0);
  const received = [...activity.values()].reduce((n, x) => n + x.recv.length, 0);
  if (counted !== received) bad.push(`flows counted ${counted} client datagrams, the edge received ${received}`);

  // ── shutdown: nothing may be left ──
  for (const s of [...clientSockets, ...originSockets]) s.close();
  const done = edge.shutdown(0);
  await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  await done;
  if (edge.udp.activeCount !== 0) bad.push(`${edge.udp.activeCount} flows left after shutdown`);
  const leftUdp = sim.netstat().udp.filter((u) => u.host === 'edge');
  if (leftUdp.length > 0) bad.push(`UDP sockets left on the edge after shutdown: ${leftUdp.map((u) => u.local).join(', ')}`);
  if (sim.clock.pendingTimers() !== 0) bad.push(`${sim.clock.pendingTimers()} timers left after shutdown`);
  return bad;
}

/** True when the datagram starts with the 12-byte PROXY v2 signature. */
function d2HasHeader(b: Uint8Array): boolean {
  const sig = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
  return b.length >= 12 && sig.every((x, i) => b[i] === x);
}

/** A case in a few lines, for failure reports. */
function describeCase(c: Case): string {
  const sends = c.clients.reduce((n, cl) => n + cl.sockets.reduce((m, s) => m + s.sends.length, 0), 0);
  return `sim seed ${c.simSeed}: ${c.clients.length} clients, ${sends} datagrams, proxy_protocol ${c.pp}, idle ${c.idleMs} ms on the ${c.idleOn}, edge ${c.edgeStart}+${c.len}, origin ${c.originStart}`;
}

test('udp flows in the simulator: datagrams and replies reach only their own flow, every flow idles out on time, nothing is left', { timeout: 120_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(caseArb, async (c) => {
      const bad = await runCase(c);
      if (bad.length > 0) {
        const shown = bad.slice(0, 12).join('\n  ');
        throw new Error(`${describeCase(c)}: ${bad.length} violations\n  ${shown}${bad.length > 12 ? '\n  …' : ''}`);
      }
    }),
    { seed: SEED, numRuns: NUM_RUNS, endOnFailure: false, verbose: 1 },
  );
});

test('the generated cases exercise every proxy_protocol mode, loss, duplication, reordering and flows reopened after expiry', () => {
  // Guards the property above against a generator that silently stopped producing the interesting cases.
  const cases = fc.sample(caseArb, { seed: SEED, numRuns: NUM_RUNS });
  const modes = new Set(cases.map((c) => c.pp));
  assert.deepEqual([...modes].sort(), ['off', 'simple', 'v2']);
  const links = cases.flatMap((c) => [c.originLink, ...c.clients.map((cl) => cl.link)]);
  assert.ok(links.some((l) => l.loss > 0) && links.some((l) => l.duplicate > 0) && links.some((l) => l.reorder > 0));
  // Two sends of one socket to one port more than an idle timeout apart: the second opens a new flow.
  const reopens = cases.some((c) =>
    c.clients.some((cl) =>
      cl.sockets.some((s) => s.sends.some((a) => s.sends.some((b) => a.portOffset === b.portOffset && b.atCenti - a.atCenti > 150))),
    ),
  );
  assert.ok(reopens);
  assert.ok(cases.some((c) => c.clients.length >= 10));
  assert.ok(cases.some((c) => c.clients.some((cl) => cl.v6)) && cases.some((c) => c.clients.some((cl) => !cl.v6)));
});
