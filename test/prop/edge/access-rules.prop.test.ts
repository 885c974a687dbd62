/**
 * IP Access rules on the simulator, under random timelines that replace the rule set while clients come and go.
 *
 * A case: 2-6 client hosts (IPv4 or IPv6, each with a country and an ASN from small pools, served by a GeoLookup
 * built from them), one echo origin, one TCP app with `ip_firewall: true`, an initial rule set and later rule sets
 * (random ip / ip_range / country / asn rules, allow or block, overlapping, some written IPv4-mapped), and a timeline
 * of connects, sends, client closes and `edge.apply` calls at random virtual times.
 *
 * The oracle is a brute-force reading of the precedence in docs/access-rules.md written here from scratch (no code
 * shared with src/core/access-rules.ts): every rule is tested against the client, the most specific match decides
 * (ip > longer prefix > asn > country), allow beats block at equal specificity, no match allows; IPv4-mapped IPv6
 * rule values are IPv4. The rule set "in force" for a connection is the one of the last apply called before the
 * step in which the edge accepted it: the simulator drains microtasks between steps and an apply that binds nothing
 * commits in microtasks, and callbacks never run inside the step that caused them.
 *
 * Seeds: REFRACT_FC_SEED (default a constant, so CI is reproducible).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { pino } from 'pino';
import { createSim } from '../../../src/net/sim/index.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { validateAccessRule } from '../../../src/model/access-rules.ts';
import type { GeoLookup } from '../../../src/core/geo.ts';
import type { Conn } from '../../../src/net/ports.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';
import { mustConfig } from '../../helpers/edge.ts';

const SEED = process.env.REFRACT_FC_SEED !== undefined ? Number(process.env.REFRACT_FC_SEED) : 20_260_101;

const EDGE_V4 = '198.51.100.1';
const EDGE_V6 = '2001:db8:e::1';
const ORIGIN_IP = '198.51.100.2';
const EDGE_PORT = 7000;
const ORIGIN_PORT = 7100;
const COUNTRIES = ['FR', 'US', 'DE'] as const;
const ASNS = [64500, 64501, 64502] as const;
/** Client i's address: 203.0.113.(10+i) or 2001:db8::(10+i in hex), so the ranges below cover some and not others. */
const clientIp = (i: number, v6: boolean): string => (v6 ? `2001:db8::${(10 + i).toString(16)}` : `203.0.113.${10 + i}`);

// ── the case ────────────────────────────────────────────────────────────────────────────────────────────────────

interface ClientSpec {
  readonly v6: boolean;
  readonly country: (typeof COUNTRIES)[number];
  readonly asn: (typeof ASNS)[number];
  readonly latencyMs: number;
}

interface RuleSpec {
  readonly mode: 'allow' | 'block';
  readonly target: 'ip' | 'ip_range' | 'country' | 'asn';
  readonly value: string;
}

interface ConnSpec {
  readonly client: number;
  readonly at: number;
  /** Offsets after `at` of each write (3 bytes each). */
  readonly sends: readonly number[];
  /** Offset after `at` of the client's half-close. */
  readonly closeAfter: number;
}

interface Case {
  readonly seed: number;
  readonly clients: readonly ClientSpec[];
  readonly initial: readonly RuleSpec[];
  readonly changes: ReadonlyArray<{ readonly at: number; readonly rules: readonly RuleSpec[] }>;
  readonly conns: readonly ConnSpec[];
}

/** Rule values: client addresses (plain or IPv4-mapped), an address no client has, nested and disjoint ranges. */
const IP_VALUES = [
  ...Array.from({ length: 6 }, (_, i) => clientIp(i, false)),
  ...Array.from({ length: 6 }, (_, i) => clientIp(i, true)),
  '::ffff:203.0.113.10',
  '::ffff:203.0.113.13',
  '203.0.113.99',
];
const RANGE_VALUES = [
  '0.0.0.0/0',
  '203.0.113.0/24',
  '203.0.113.0/28',
  '203.0.113.8/29',
  '203.0.113.12/30',
  '203.0.113.14/31',
  '::ffff:203.0.113.0/124',
  '::ffff:203.0.113.12/126',
  '::/0',
  '2001:db8::/32',
  '2001:db8::/124',
  '2001:db8::8/125',
  '2001:db8::c/126',
  '198.18.0.0/15',
];

const ruleArb: fc.Arbitrary<RuleSpec> = fc
  .tuple(
    fc.constantFrom('allow' as const, 'block' as const),
    fc.oneof(
      fc.tuple(fc.constant('ip' as const), fc.constantFrom(...IP_VALUES)),
      fc.tuple(fc.constant('ip_range' as const), fc.constantFrom(...RANGE_VALUES)),
      fc.tuple(fc.constant('country' as const), fc.constantFrom(...COUNTRIES)),
      fc.tuple(fc.constant('asn' as const), fc.constantFrom(...ASNS.map((a) => `AS${a}`))),
    ),
  )
  .map(([mode, [target, value]]): RuleSpec => ({ mode, target, value }));

/** The validator refuses two rules with one normalised configuration; keep the first (the key is not the oracle). */
function dedupe(rules: readonly RuleSpec[]): RuleSpec[] {
  const seen = new Set<string>();
  return rules.filter((r) => {
    const v = validateAccessRule({ mode: r.mode, configuration: { target: r.target, value: r.value } });
    if (!v.ok) throw new Error(`generated an invalid rule ${JSON.stringify(r)}`);
    const key = `${v.rule.configuration.target} ${v.rule.configuration.value}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const rulesArb = fc.array(ruleArb, { maxLength: 7 }).map(dedupe);
const TIMELINE_MS = 5_000;

const caseArb: fc.Arbitrary<Case> = fc
  .array(
    fc.record({
      v6: fc.boolean(),
      country: fc.constantFrom(...COUNTRIES),
      asn: fc.constantFrom(...ASNS),
      latencyMs: fc.integer({ min: 0, max: 40 }),
    }),
    { minLength: 2, maxLength: 6 },
  )
  .chain((clients) =>
    fc.record({
      seed: fc.integer({ min: 1, max: 1_000_000 }),
      clients: fc.constant(clients),
      initial: rulesArb,
      changes: fc.array(fc.record({ at: fc.integer({ min: 0, max: TIMELINE_MS }), rules: rulesArb }), { maxLength: 4 }),
      conns: fc.array(
        fc.record({
          client: fc.integer({ min: 0, max: clients.length - 1 }),
          at: fc.integer({ min: 0, max: TIMELINE_MS }),
          sends: fc.array(fc.integer({ min: 0, max: 2_000 }), { maxLength: 3 }),
          closeAfter: fc.integer({ min: 0, max: 3_000 }),
        }),
        { minLength: 1, maxLength: 10 },
      ),
    }),
  );

// ── the oracle ──────────────────────────────────────────────────────────────────────────────────────────────────

interface Verdict {
  readonly allowed: boolean;
  readonly matched: string;
}

/** An address as (family, bit string); IPv4-mapped IPv6 is IPv4. */
function bitsOf(text: string): { v4: boolean; bits: string } {
  let a = ipaddr.parse(text);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  return { v4: a.kind() === 'ipv4', bits: a.toByteArray().map((b) => b.toString(2).padStart(8, '0')).join('') };
}

/** Brute force: every rule against the client; the most specific match decides, allow first among equals. */
function oracle(rules: readonly RuleSpec[], client: { ip: string; country: string; asn: number }): Verdict {
  const c = bitsOf(client.ip);
  let best: { spec: number; allow: boolean; kind: string } | undefined;
  for (const r of rules) {
    let spec = -1;
    let kind = 'IP';
    if (r.target === 'ip') {
      const a = bitsOf(r.value);
      if (a.v4 === c.v4 && a.bits === c.bits) spec = 1_000; // above any prefix, /32 and /128 included
    } else if (r.target === 'ip_range') {
      const [addr = '', len = ''] = r.value.split('/');
      const a = bitsOf(addr);
      // A mapped /n covers IPv4 /(n − 96).
      const prefix = Number(len) - (a.v4 && addr.includes(':') ? 96 : 0);
      if (a.v4 === c.v4 && a.bits.slice(0, prefix) === c.bits.slice(0, prefix)) spec = 100 + prefix;
    } else if (r.target === 'asn') {
      kind = 'ASN';
      if (r.value === `AS${client.asn}`) spec = 50;
    } else {
      kind = 'COUNTRY';
      if (r.value === client.country) spec = 10;
    }
    if (spec < 0) continue;
    const allow = r.mode === 'allow';
    if (best === undefined || spec > best.spec || (spec === best.spec && allow && !best.allow)) best = { spec, allow, kind };
  }
  if (best === undefined) return { allowed: true, matched: 'UNKNOWN' };
  return { allowed: best.allow, matched: `${best.allow ? 'WHITELIST' : 'BLOCK'}_${best.kind}` };
}

// ── the world ───────────────────────────────────────────────────────────────────────────────────────────────────

const configOf = (rules: readonly RuleSpec[]) =>
  mustConfig({
    edge: { addresses: [EDGE_V4, EDGE_V6] },
    access_rules: rules.map((r) => ({ mode: r.mode, configuration: { target: r.target, value: r.value } })),
    apps: [
      {
        protocol: `tcp/${EDGE_PORT}`,
        dns: { name: 'fw.example.test' },
        origin_direct: [`tcp://${ORIGIN_IP}:${ORIGIN_PORT}`],
        ip_firewall: true,
        // Far beyond the timeline: an allowed connection only ends because its client ends it.
        idle_timeout_ms: 600_000,
        connect_timeout_ms: 10_000,
      },
    ],
  });

interface Side {
  readonly spec: ConnSpec;
  readonly conn: Conn;
  readonly local: string;
  sent: number;
  received: number;
  ended: boolean;
  closed: boolean;
}

/** What the runs exercised, summed: a property that never blocks, or never reloads under a live connection, proves little. */
const seen = { blocked: 0, allowed: 0, spanningChange: 0, v6: 0 };

async function check(c: Case): Promise<void> {
  const sim = createSim({ seed: c.seed });
  const edgeHost = sim.host('edge', { addresses: [EDGE_V4, EDGE_V6] });
  const originHost = sim.host('origin', { addresses: [ORIGIN_IP] });
  const hosts = c.clients.map((s, i) => sim.host(`c${i}`, { addresses: [clientIp(i, s.v6)] }));
  c.clients.forEach((s, i) => sim.link(`c${i}`, 'edge', { latencyMs: s.latencyMs }));

  const originRemotes: string[] = [];
  const originListener = await originHost.listenTcp({ host: ORIGIN_IP, port: ORIGIN_PORT }, (conn) => {
    originRemotes.push(`${conn.remote.address}:${conn.remote.port}`);
    conn.setHandlers({ data: (d) => void conn.write(d), end: () => conn.end() });
  });

  const byIp = new Map(c.clients.map((s, i) => [ipaddr.parse(clientIp(i, s.v6)).toString(), s] as const));
  const geo: GeoLookup = {
    country: (ip) => byIp.get(ipaddr.parse(ip).toString())?.country,
    asn: (ip) => {
      const s = byIp.get(ipaddr.parse(ip).toString());
      return s === undefined ? undefined : { asn: s.asn };
    },
  };
  const edge = new EdgeNode({ net: edgeHost, log: pino({ level: 'silent' }), geo }, configOf(c.initial));

  // Rule generation in force, by the step that accepted each edge connection (see the module comment).
  const generations: ReadonlyArray<readonly RuleSpec[]> = [c.initial, ...c.changes.map((x) => x.rules)];
  let called = 0;
  const accepted = new Map<number, { client: string; gen: number; at: number }>();
  const dialled = new Set<number>();
  const dialUpstreams: string[] = [];
  edge.trace.records$.subscribe((r) => {
    if (r.event === 'accept') accepted.set(r.conn, { client: String(r['client']), gen: called, at: r.t });
    if (r.event === 'dial') {
      dialled.add(r.conn);
      dialUpstreams.push(String(r['upstream']));
    }
  });
  const closing = new Map<number, SpectrumEvent[]>();
  edge.events.events$.subscribe((e) => {
    if (e.Event === 'connect') return;
    const id = Number(e.ConnectionID);
    closing.set(id, [...(closing.get(id) ?? []), e]);
  });
  await edge.apply(configOf(c.initial));

  const applies: Array<Promise<unknown>> = [];
  c.changes.forEach((ch, k) => {
    sim.clock.setTimer(ch.at, () => {
      called = k + 1;
      applies.push(edge.apply(configOf(ch.rules)));
    });
  });

  const sides: Side[] = [];
  for (const spec of c.conns) {
    sim.clock.setTimer(spec.at, () => {
      const client = c.clients[spec.client]!;
      const conn = hosts[spec.client]!.connectTcp({ host: client.v6 ? EDGE_V6 : EDGE_V4, port: EDGE_PORT });
      const side: Side = { spec, conn, local: `${conn.local.address}:${conn.local.port}`, sent: 0, received: 0, ended: false, closed: false };
      sides.push(side);
      conn.setHandlers({
        data: (d) => {
          side.received += d.byteLength;
        },
        end: () => {
          if (!side.ended) {
            side.ended = true;
            conn.end();
          }
        },
        close: () => {
          side.closed = true;
        },
      });
      for (const dt of spec.sends) {
        sim.clock.setTimer(dt, () => {
          if (side.ended || side.closed) return;
          side.sent += 3;
          conn.write(new Uint8Array([1, 2, 3]));
        });
      }
      sim.clock.setTimer(spec.closeAfter, () => {
        if (side.ended || side.closed) return;
        side.ended = true;
        conn.end();
      });
    });
  }

  const run = await sim.runUntilIdleAsync({ maxSteps: 500_000 });
  assert.ok(run.idle, 'the timeline ran to quiescence');
  await Promise.all(applies);

  // Every client connection was accepted exactly once and has exactly one closing event.
  assert.equal(sides.length, c.conns.length);
  assert.equal(accepted.size, sides.length, 'one edge connection per client connection');
  const sideOf = new Map(sides.map((s) => [s.local, s]));
  let blocked = 0;
  for (const [id, a] of accepted) {
    const side = sideOf.get(a.client);
    assert.ok(side !== undefined, `edge connection ${id} from ${a.client} matches no client connection`);
    const spec = c.clients[side.spec.client]!;
    const ip = clientIp(side.spec.client, spec.v6);
    const want = oracle(generations[a.gen]!, { ip, country: spec.country, asn: spec.asn });
    const why = `conn ${id} from ${ip} (${spec.country}, AS${spec.asn}) at t=${a.at} under rule set ${a.gen}: ${JSON.stringify(generations[a.gen])}`;
    // (1) The origin was dialled iff the rules in force at accept allow the client.
    assert.equal(dialled.has(id), want.allowed, `dialled: ${why}`);
    const events = closing.get(id) ?? [];
    assert.equal(events.length, 1, `one closing event: ${why}`);
    const ev = events[0]!;
    assert.equal(ev.ClientMatchedIpFirewall, want.matched, `matched: ${why}`);
    if (!want.allowed) {
      // (2) Blocked: 403 clientFiltered, and the client got nothing back.
      blocked++;
      seen.blocked++;
      assert.deepEqual([ev.Event, ev.Status, ev.ErrorCode], ['clientFiltered', 403, 'E_RULE_BLOCKED'], why);
      assert.equal(side.received, 0, why);
    } else {
      // (3) Allowed: ended by its client, whatever rule changes came meanwhile: every byte echoed, status 200.
      assert.deepEqual([ev.Event, ev.Status], ['disconnect', 200], why);
      assert.equal(side.received, side.sent, `echo complete: ${why}`);
      seen.allowed++;
      const end = a.at + ev.DurationMs;
      if (c.changes.some((ch) => ch.at > a.at && ch.at < end)) seen.spanningChange++;
    }
    assert.ok(side.closed, `client side closed: ${why}`);
    if (spec.v6) seen.v6++;
  }
  // The origin saw exactly the dials, and the stats count the blocks.
  assert.equal(originRemotes.length, dialled.size, 'origin accepts = dials');
  assert.ok(dialUpstreams.every((u) => u === `${ORIGIN_IP}:${ORIGIN_PORT}`));
  assert.equal(edge.tcp.stats.downstream_cx_ip_blocked, blocked);

  // (4) Nothing left after shutdown.
  const stopped = edge.shutdown(0);
  await originListener.close();
  await sim.runUntilIdleAsync({ maxSteps: 100_000 });
  await stopped;
  assert.equal(edge.tcp.activeCount, 0);
  assert.equal(sim.clock.pendingTimers(), 0);
}

test('a blocked client never causes an upstream connect, across random timelines with rule changes', async () => {
  // A sanity check of the oracle itself on the documented examples, so a property failure points at the edge.
  const fr = { ip: '203.0.113.10', country: 'FR', asn: 64500 };
  assert.deepEqual(oracle([], fr), { allowed: true, matched: 'UNKNOWN' });
  assert.equal(oracle([{ mode: 'block', target: 'country', value: 'FR' }, { mode: 'allow', target: 'asn', value: 'AS64500' }], fr).matched, 'WHITELIST_ASN');
  assert.equal(oracle([{ mode: 'allow', target: 'ip_range', value: '203.0.113.0/24' }, { mode: 'block', target: 'ip', value: '::ffff:203.0.113.10' }], fr).matched, 'BLOCK_IP');
  assert.equal(oracle([{ mode: 'block', target: 'ip_range', value: '::ffff:203.0.113.0/124' }, { mode: 'allow', target: 'ip_range', value: '203.0.113.0/24' }], fr).matched, 'BLOCK_IP');
  assert.equal(oracle([{ mode: 'block', target: 'ip_range', value: '203.0.113.8/29' }, { mode: 'allow', target: 'ip_range', value: '::ffff:203.0.113.8/125' }], fr).allowed, true);
  assert.equal(oracle([{ mode: 'block', target: 'ip_range', value: '::/0' }], fr).allowed, true, 'IPv6 ranges do not cover IPv4');

  await fc.assert(fc.asyncProperty(caseArb, check), { seed: SEED + 7, numRuns: 100 });
  assert.ok(seen.blocked > 0 && seen.allowed > 0 && seen.spanningChange > 0 && seen.v6 > 0, `runs exercised ${JSON.stringify(seen)}`);
});
