/** Edge-IP allocation over random sequences of name changes and clock steps: holds until the drain deadline. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { validateConfig } from '../../../src/model/config.ts';
import { allocateEdgeIps, EMPTY_EDGE_IPS, type EdgeIpState } from '../../../src/model/edge-ips.ts';
import type { RefractConfig } from '../../../src/model/types.ts';

const NAMES = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => `${n}.example.com`);
const DRAIN_MS = 1000;

function cfg(names: readonly string[], connectivity: readonly string[]): RefractConfig {
  const r = validateConfig({
    edge: { drain_timeout_ms: DRAIN_MS, pools: { ipv4: ['10.1.0.0/28'], ipv6: ['fd00::/124'] } },
    apps: names.map((name, i) => ({ protocol: `tcp/${7000 + i}`, dns: { type: 'CNAME', name }, edge_ips: { type: 'dynamic', connectivity: connectivity[i] }, origin_direct: ['tcp://127.0.0.1:9000'] })),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

const stepArb = fc.record({
  names: fc.subarray(NAMES),
  connectivity: fc.array(fc.constantFrom('all', 'ipv4', 'ipv6'), { minLength: NAMES.length, maxLength: NAMES.length }),
  advanceMs: fc.integer({ min: 0, max: 1500 }),
});

describe('edge-IP holds (property)', () => {
  it('an address given back serves no name until its drain deadline; no address serves two names', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), (steps) => {
        let state: EdgeIpState = EMPTY_EDGE_IPS;
        let now = 0;
        // When each address was last given back (the time its old name stopped holding it).
        const givenBackAt = new Map<string, number>();
        for (const step of steps) {
          now += step.advanceMs;
          const r = allocateEdgeIps(cfg(step.names, step.connectivity), state, now);
          if (!r.ok) {
            // Only running out of addresses (holds count) may refuse; the state stays.
            assert.deepEqual([...new Set(r.issues.map((i) => i.code))], ['E_EDGE_POOL_EXHAUSTED']);
            continue;
          }
          const owner = new Map<string, string>();
          for (const [name, s] of Object.entries(r.state.names)) {
            for (const ip of [s.ipv4, s.ipv6]) {
              if (ip === undefined) continue;
              assert.equal(owner.get(ip), undefined, `${ip} serves ${owner.get(ip)} and ${name}`);
              owner.set(ip, name);
              const prevOwner = Object.entries(state.names).find(([, p]) => p.ipv4 === ip || p.ipv6 === ip)?.[0];
              const back = givenBackAt.get(ip);
              if (prevOwner !== name && back !== undefined) assert.ok(now >= back + DRAIN_MS, `${ip} went to ${name} at ${now}, given back at ${back}`);
            }
            assert.ok(!Object.hasOwn(r.state.held ?? {}, s.ipv4 ?? '') && !Object.hasOwn(r.state.held ?? {}, s.ipv6 ?? ''), 'a held address is not assigned');
          }
          for (const [name, s] of Object.entries(state.names)) {
            for (const ip of [s.ipv4, s.ipv6]) if (ip !== undefined && owner.get(ip) !== name) givenBackAt.set(ip, now);
          }
          for (const [ip, freeAfter] of Object.entries(r.state.held ?? {})) assert.ok(freeAfter > now && freeAfter <= now + DRAIN_MS, `${ip} held until ${freeAfter} at ${now}`);
          state = r.state;
        }
      }),
      { numRuns: 300 },
    );
  });
});
