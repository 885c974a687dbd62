/**
 * Properties of the per-client limiter on random timelines of opens, closes and clock steps (virtual time), with
 * a memory bound small enough that idle keys are evicted all the time: no key's count ever exceeds its limit or
 * goes negative, every close finds what its open counted (busy keys are never evicted), tokens never exceed the
 * burst, memory stays within (open keys + the bound), and without evictions the bucket's rate bound holds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { admitClient, ClientLimiter, releaseClient, type ClientHold, type ClientLimitSettings } from '../../../src/core/client-limits.ts';

const CLIENTS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '2001:db8:0:1::1', '2001:db8:0:1::2', '2001:db8:0:2::1'];

const scope = fc.record({
  perIpConnections: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  perIpNewPerSecond: fc.option(fc.constantFrom(0.5, 1, 3, 10), { nil: undefined }),
  perIpBurst: fc.integer({ min: 1, max: 5 }),
  ipv6Prefix: fc.constantFrom(48, 64, 128),
});

type Step = { kind: 'open'; client: number; app: number } | { kind: 'close'; which: number } | { kind: 'wait'; ms: number };
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('open' as const), client: fc.nat(CLIENTS.length - 1), app: fc.nat(1) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('close' as const), which: fc.nat(1000) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 2_000 }) }) },
);

interface Held {
  readonly hold: ClientHold;
  readonly client: string;
  readonly app: number;
}

function run(node: ClientLimitSettings, app: ClientLimitSettings | undefined, steps: readonly Step[], maxIdle: number) {
  const lim = new ClientLimiter(maxIdle);
  const held: Held[] = [];
  const admitted: Array<{ t: number; client: string; app: number }> = [];
  let now = 0;
  for (const s of steps) {
    if (s.kind === 'wait') now += s.ms;
    else if (s.kind === 'close') {
      if (held.length === 0) continue;
      const [h] = held.splice(s.which % held.length, 1);
      releaseClient(lim, h!.hold, now); // throws if the count was lost
    } else {
      const client = CLIENTS[s.client]!;
      const r = admitClient(lim, node, app, `app${s.app}`, client, now);
      if (r.verdict === 'ok') {
        held.push({ hold: r.hold!, client, app: s.app });
        admitted.push({ t: now, client, app: s.app });
      }
    }
    // Invariants after every step.
    const byNodeKey = new Map<string, number>();
    const byAppKey = new Map<string, number>();
    for (const h of held) {
      byNodeKey.set(h.hold.nodeKey!, (byNodeKey.get(h.hold.nodeKey!) ?? 0) + 1);
      if (h.hold.appKey !== undefined) byAppKey.set(h.hold.appKey, (byAppKey.get(h.hold.appKey) ?? 0) + 1);
    }
    for (const [k, n] of byNodeKey) {
      assert.equal(lim.openOf(k), n, `node key ${k}: the limiter's count is what is held`);
      if (node.perIpConnections !== undefined) assert.ok(n <= node.perIpConnections, `node key ${k}: ${n} open > ${node.perIpConnections}`);
      assert.ok(lim.tokensOf(k, node, now) <= node.perIpBurst && lim.tokensOf(k, node, now) >= 0);
    }
    for (const [k, n] of byAppKey) {
      assert.equal(lim.openOf(k), n);
      if (app?.perIpConnections !== undefined) assert.ok(n <= app.perIpConnections, `app key ${k}: ${n} open > ${app.perIpConnections}`);
      assert.ok(lim.tokensOf(k, app!, now) <= app!.perIpBurst);
    }
    const size = lim.size;
    assert.equal(size.busy, byNodeKey.size + byAppKey.size, 'busy keys are exactly the keys with something open');
    assert.ok(size.idle <= maxIdle, `idle ${size.idle} > bound ${maxIdle}`);
  }
  for (const h of held.splice(0)) releaseClient(lim, h.hold, now);
  assert.equal(lim.size.busy, 0, 'everything given back');
  return admitted;
}

void describe('per-client limiter properties', () => {
  void it('counts never exceed the limit nor go negative, tokens never exceed the burst, memory stays bounded (with evictions)', () => {
    fc.assert(
      fc.property(scope, fc.option(scope, { nil: undefined }), fc.array(step, { maxLength: 200 }), fc.integer({ min: 1, max: 3 }), (node, app, steps, maxIdle) => {
        run(node, app, steps, maxIdle);
      }),
      { numRuns: 300 },
    );
  });

  void it('without evictions, a client is admitted at most burst + rate × elapsed times in any window', () => {
    fc.assert(
      fc.property(
        scope.filter((s) => s.perIpNewPerSecond !== undefined),
        fc.array(step, { maxLength: 200 }),
        (node, steps) => {
          const admitted = run(node, undefined, steps, 1_000);
          const rate = node.perIpNewPerSecond!;
          for (const client of CLIENTS) {
            // IPv4 clients only: IPv6 ones may share a key (their prefix), so their bound is per prefix, not per address.
            if (client.includes(':')) continue;
            const ts = admitted.filter((a) => a.client === client).map((a) => a.t);
            for (let i = 0; i < ts.length; i++) {
              for (let j = i; j < ts.length; j++) {
                const n = j - i + 1;
                const bound = node.perIpBurst + (rate * (ts[j]! - ts[i]!)) / 1000;
                assert.ok(n <= bound + 1e-9, `${client}: ${n} admitted in [${ts[i]}, ${ts[j]}] > ${bound}`);
              }
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
