/**
 * The edge bind check (src/model/edge-conflicts.ts, one sort and one pass) against the obvious all-pairs reference,
 * over random binders (TCP or UDP, ranges within 1-40, addresses from a small set with both wildcards and an
 * IPv6 address in two spellings):
 * - it reports an issue exactly when some pair collides (same protocol, overlapping ranges, colliding addresses);
 * - every issue sits on a binder that collides with an earlier one, and no binder gets two;
 * - when all binders but the last are free of conflicts and the last collides, the issue is on the last (an API
 *   write adds the last app: it gets the error).
 * 2,000 runs; REFRACT_FC_RUNS scales them, REFRACT_FC_SEED changes the seed (default 20261214).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { edgeBindConflicts, type EdgeBinder } from '../../../src/model/edge-conflicts.ts';

const SEED = process.env.REFRACT_FC_SEED !== undefined ? Number(process.env.REFRACT_FC_SEED) : 20_261_214;
const RUN_SCALE = process.env.REFRACT_FC_RUNS !== undefined ? Number(process.env.REFRACT_FC_RUNS) : 1;

/** Canonical address of each spelling the generator uses. */
const ADDRESSES: Record<string, string> = {
  '127.0.10.1': '127.0.10.1',
  '127.0.10.2': '127.0.10.2',
  'fd00:10::1': 'fd00:10::1',
  'fd00:10:0:0:0:0:0:1': 'fd00:10::1',
  'fd00:10::2': 'fd00:10::2',
  '0.0.0.0': '0.0.0.0',
  '::': '::',
};

/** Linux bind rules for listeners, written out plainly. */
function addressesCollide(a: string, b: string): boolean {
  const [x, y] = [ADDRESSES[a]!, ADDRESSES[b]!];
  const v4 = (s: string) => !s.includes(':');
  return x === y || x === '::' || y === '::' || (x === '0.0.0.0' && v4(y)) || (y === '0.0.0.0' && v4(x));
}

function collide(a: EdgeBinder, b: EdgeBinder): boolean {
  return (
    a.protocol === b.protocol &&
    a.ports.start <= b.ports.end &&
    b.ports.start <= a.ports.end &&
    a.addresses.some((x) => b.addresses.some((y) => addressesCollide(x, y)))
  );
}

// A binder's own addresses never collide with each other (an app binding 0.0.0.0 and 127.0.0.1 cannot start).
const addressSetArb = fc.oneof(
  fc.constant(['0.0.0.0']),
  fc.constant(['::']),
  fc.subarray(['127.0.10.1', '127.0.10.2', 'fd00:10::2'], { minLength: 0, maxLength: 3 }).chain((base) =>
    fc.constantFrom('fd00:10::1', 'fd00:10:0:0:0:0:0:1', undefined).map((v6) => (v6 === undefined ? base : [...base, v6])),
  ),
).filter((a) => a.length > 0);

const binderArb = fc
  .record({
    protocol: fc.constantFrom('tcp' as const, 'udp' as const),
    start: fc.integer({ min: 1, max: 40 }),
    width: fc.integer({ min: 0, max: 8 }),
    addresses: addressSetArb,
  })
  .map(({ protocol, start, width, addresses }) => ({ protocol, ports: { start, end: Math.min(40, start + width) }, addresses }));

const bindersArb = fc.array(binderArb, { minLength: 1, maxLength: 12 }).map((list) =>
  list.map((b, i): EdgeBinder => ({ ...b, pointer: `/apps/${i}`, field: 'protocol', label: `app ${i}` })),
);

const indexOf = (pointer: string): number => Number(pointer.split('/')[2]);

describe('edgeBindConflicts (property)', () => {
  it('agrees with the all-pairs reference; issues sit on later colliding binders, one each; a last binder that alone collides gets it', () => {
    let conflicting = 0;
    fc.assert(
      fc.property(bindersArb, (binders) => {
        const issues = edgeBindConflicts(binders);
        const pairs: Array<[number, number]> = [];
        for (let j = 0; j < binders.length; j++) for (let i = 0; i < j; i++) if (collide(binders[i]!, binders[j]!)) pairs.push([i, j]);
        assert.equal(issues.length > 0, pairs.length > 0, `reference pairs ${JSON.stringify(pairs)}, issues ${JSON.stringify(issues)}`);
        if (pairs.length > 0) conflicting++;
        const on = issues.map((i) => indexOf(i.pointer));
        assert.equal(new Set(on).size, on.length, 'one issue per binder');
        for (const k of on) assert.ok(pairs.some(([, j]) => j === k), `binder ${k} collides with no earlier binder`);
        for (const i of issues) assert.equal(i.code, 'E_CONFIG_EDGE_CONFLICT');
        const last = binders.length - 1;
        if (pairs.length > 0 && pairs.every(([, j]) => j === last)) assert.deepEqual(on, [last]);
      }),
      { seed: SEED, numRuns: Math.max(1, Math.round(2_000 * RUN_SCALE)) },
    );
    assert.ok(conflicting > 0, 'the generator made conflicting sets');
  });
});
