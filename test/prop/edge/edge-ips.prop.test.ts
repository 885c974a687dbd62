/**
 * Edge-IP allocation on the API's apply path (ConfigSource → allocation → EdgeNode on a simulated network), over
 * random sequences of app creates, updates and deletes (names shared or not, every connectivity, static IPs):
 * - no IPv4 address ever serves two DNS names, and the IPv4 quota holds;
 * - the addresses of apps the operation did not touch never change;
 * - every app listens exactly on the addresses `appBindAddresses` gives it, and every name's DNS answer
 *   (`dnsViewOf`) equals the set of addresses the edge listens on for that name's apps;
 * - apps share edge ports (six slots on three ports): two apps of one protocol, address and port are refused
 *   (E_CONFIG_EDGE_CONFLICT), and only apps of one DNS name can be (distinct names never share an address);
 * - a refused operation (quota, pool exhausted, address taken, edge conflict) changes nothing;
 * - a restart over the same database (a new ConfigSource and EdgeNode) gives every app the same addresses.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { ApiStore } from '../../../src/api/store.ts';
import { ApiWriteError, ConfigSource, type Actor } from '../../../src/api/config-source.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { dnsViewOf } from '../../../src/dns/view.ts';
import { appBindAddresses } from '../../../src/model/edge-ips.ts';
import { validateConfig } from '../../../src/model/config.ts';
import type { RefractConfig } from '../../../src/model/types.ts';
import { createSim } from '../../../src/net/sim/index.ts';

const SEED = process.env.REFRACT_FC_SEED !== undefined ? Number(process.env.REFRACT_FC_SEED) : 20_261_206;
const RUN_SCALE = process.env.REFRACT_FC_RUNS !== undefined ? Number(process.env.REFRACT_FC_RUNS) : 1;
const ZONE = { id: '023e105f4ecef8ad9ca31a8372d0c353', name: 'example.com' };
const NAMES = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => `${n}.example.com`);
const QUOTA = 3;
// 10.1.0.0/29: six usable IPv4 addresses. The edge host has all of them but 10.1.0.6, so a bind there fails
// (E_LISTEN_ADDRESS_UNAVAILABLE), which must change nothing either.
const FILE = {
  zones: [ZONE],
  edge: { addresses: ['203.0.113.1'], pools: { ipv4: ['10.1.0.0/29'], ipv6: ['fd00::/125'] }, ipv4_quota: QUOTA },
  dns: {},
};
const ACTOR: Actor = { id: 'prop', name: 'prop', kind: 'token', email: undefined };
const STATIC_IPS = ['10.1.0.5', '10.1.0.6', '203.0.113.1', 'fd00::7'];
const REFUSALS = new Set(['E_EDGE_IP_QUOTA', 'E_EDGE_POOL_EXHAUSTED', 'E_EDGE_IP_TAKEN', 'E_LISTEN_ADDRESS_UNAVAILABLE', 'E_CONFIG_EDGE_CONFLICT']);
const HOST_ADDRESSES = ['203.0.113.1', '10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5', ...[1, 2, 3, 4, 5, 6, 7].map((i) => `fd00::${i}`)];

type Shape = { name: string; connectivity: 'all' | 'ipv4' | 'ipv6' } | { name: string; ips: string[] };
type Op = { kind: 'create'; slot: number; shape: Shape } | { kind: 'update'; slot: number; shape: Shape } | { kind: 'delete'; slot: number } | { kind: 'restart' };

const shapeArb: fc.Arbitrary<Shape> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ name: fc.constantFrom(...NAMES), connectivity: fc.constantFrom('all' as const, 'ipv4' as const, 'ipv6' as const) }) },
  { weight: 1, arbitrary: fc.record({ name: fc.constantFrom(...NAMES), ips: fc.subarray(STATIC_IPS, { minLength: 1, maxLength: 2 }) }) },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('create' as const), slot: fc.nat(5), shape: shapeArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('update' as const), slot: fc.nat(5), shape: shapeArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), slot: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

/** Slots 0 and 3, 1 and 4, 2 and 5 share an edge port. */
const portOf = (slot: number): number => 2000 + (slot % 3);

function body(slot: number, shape: Shape): Record<string, unknown> {
  const isStatic = 'ips' in shape;
  return {
    protocol: `tcp/${portOf(slot)}`,
    dns: { type: isStatic ? 'ADDRESS' : 'CNAME', name: shape.name },
    edge_ips: isStatic ? { type: 'static', ips: shape.ips } : { type: 'dynamic', connectivity: shape.connectivity },
    origin_direct: ['tcp://198.51.100.1:9000'],
  };
}

interface Node {
  edge: EdgeNode;
  source: ConfigSource;
}

async function open(store: ApiStore): Promise<Node> {
  const first = validateConfig(FILE);
  if (!first.ok) throw new Error(JSON.stringify(first.issues));
  const sim = createSim({ seed: 1 });
  const host = sim.host('edge', { addresses: HOST_ADDRESSES });
  const edge = new EdgeNode({ net: host, log: pino({ level: 'silent' }) }, first.config);
  let tick = 0;
  const source = new ConfigSource({ edge, store, file: 'refract.yaml', fileRaw: FILE, now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, tick++)) });
  await source.start();
  return { edge, source };
}

/** Every app's listened addresses (host set per app id), read from the edge. */
function listened(edge: EdgeNode): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const l of edge.listeners()) {
    if (l.app === undefined) continue;
    const s = out.get(l.app) ?? new Set<string>();
    s.add(l.host);
    out.set(l.app, s);
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort()]));
}

function answer(config: RefractConfig, name: string): string[] {
  const view = dnsViewOf(config);
  let d = view.lookup(name);
  for (let hops = 0; d?.cname !== undefined && hops < 4; hops++) d = view.lookup(d.cname);
  return [...(d?.a ?? []), ...(d?.aaaa ?? [])].sort();
}

function check(node: Node): void {
  const config = node.source.config;
  const byApp = listened(node.edge);
  const namesOf = new Map<string, Set<string>>();
  const v4Dynamic = new Set<string>();
  for (const app of config.apps) {
    const want = [...appBindAddresses(config, app)].sort();
    assert.deepEqual(byApp.get(app.id) ?? [], want, `app ${app.id} listens on what it was given`);
    for (const ip of want) {
      const s = namesOf.get(ip) ?? new Set<string>();
      s.add(app.dns.name.toLowerCase());
      namesOf.set(ip, s);
      if (!ip.includes(':') && app.edgeIps.type === 'dynamic') v4Dynamic.add(ip);
    }
  }
  for (const [ip, names] of namesOf) if (!ip.includes(':')) assert.equal(names.size, 1, `${ip} serves ${[...names].join(', ')}`);
  assert.ok(v4Dynamic.size <= QUOTA, `${v4Dynamic.size} dynamic IPv4 addresses, quota ${QUOTA}`);
  for (const name of new Set(config.apps.map((a) => a.dns.name.toLowerCase()))) {
    const hosts = new Set<string>();
    for (const app of config.apps) if (app.dns.name.toLowerCase() === name) for (const h of byApp.get(app.id) ?? []) hosts.add(h);
    assert.deepEqual(answer(config, name), [...hosts].sort(), `DNS answer of ${name}`);
  }
}

function addresses(node: Node): Map<string, string[]> {
  const c = node.source.config;
  return new Map(c.apps.map((a) => [a.id, [...appBindAddresses(c, a)]]));
}

describe('edge IPs over random API writes (property)', () => {
  it('one name per IPv4 address, quota, untouched apps stable, DNS = listeners, refusals change nothing, restarts keep addresses', async () => {
    // How often the runs met what this test is about: conflicts refused, distinct names sharing a port.
    const seen = { conflicts: 0, sharedPorts: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 14 }), async (ops) => {
        const store = new ApiStore(':memory:');
        let node = await open(store);
        const ids = new Map<number, { id: string; isStatic: boolean }>();
        try {
          for (const op of ops) {
            const before = addresses(node);
            const listenedBefore = listened(node.edge);
            let touched: string | undefined;
            const held = op.kind === 'restart' ? undefined : ids.get(op.slot);
            try {
              if (op.kind === 'restart') {
                await node.edge.shutdown(0);
                node = await open(store);
                assert.deepEqual(addresses(node), before, 'a restart keeps every address');
                continue;
              }
              if (op.kind === 'create') {
                if (held !== undefined) continue;
                const made = await node.source.create(ZONE.id, body(op.slot, op.shape), ACTOR);
                ids.set(op.slot, { id: made.id, isStatic: 'ips' in op.shape });
                touched = made.id;
              } else if (op.kind === 'update') {
                if (held === undefined || held.isStatic !== 'ips' in op.shape) continue;
                touched = held.id;
                await node.source.replace(ZONE.id, held.id, body(op.slot, op.shape), ACTOR);
              } else {
                if (held === undefined) continue;
                touched = held.id;
                await node.source.delete(ZONE.id, held.id, ACTOR);
                ids.delete(op.slot);
              }
            } catch (e) {
              if (!(e instanceof ApiWriteError) || !e.issues.every((i) => REFUSALS.has(i.code))) throw e;
              if (e.issues.some((i) => i.code === 'E_CONFIG_EDGE_CONFLICT')) {
                // Only another app of the same name holds the same addresses: it must be on this port.
                assert.ok(op.kind === 'create' || op.kind === 'update', 'only a create or update can conflict');
                const name = op.shape.name.toLowerCase();
                const rival = node.source.config.apps.find((a) => a.id !== held?.id && a.edgePorts.start === portOf(op.slot) && a.dns.name.toLowerCase() === name);
                assert.ok(rival !== undefined, `conflict refused for ${name} on ${portOf(op.slot)} with no app of that name there`);
                seen.conflicts++;
              }
              assert.deepEqual(addresses(node), before, 'a refused write changes no address');
              assert.deepEqual(listened(node.edge), listenedBefore, 'a refused write changes no listener');
              touched = undefined;
            }
            const after = addresses(node);
            for (const [id, ips] of before) if (id !== touched && after.has(id)) assert.deepEqual(after.get(id), ips, `untouched app ${id} keeps its addresses`);
            check(node);
            const onPort = new Map<number, Set<string>>();
            for (const a of node.source.config.apps) onPort.set(a.edgePorts.start, (onPort.get(a.edgePorts.start) ?? new Set()).add(a.dns.name.toLowerCase()));
            if ([...onPort.values()].some((names) => names.size > 1)) seen.sharedPorts++;
          }
        } finally {
          await node.edge.shutdown(0);
          store.close();
        }
      }),
      { seed: SEED, numRuns: Math.max(1, Math.round(60 * RUN_SCALE)) },
    );
    assert.ok(seen.conflicts > 0 && seen.sharedPorts > 0, `the runs met ${seen.conflicts} conflicts and ${seen.sharedPorts} states with distinct names on one port`);
  });
});
