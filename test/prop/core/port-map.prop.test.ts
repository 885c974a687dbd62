import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { inRange, mapPort } from '../../../src/core/port-map.ts';
import { type PortRange } from '../../../src/model/types.ts';

/** Two ranges of the same size (1..2000 ports) anywhere in 1-65535. */
const equalRanges = fc.integer({ min: 1, max: 2000 }).chain((size) =>
  fc.tuple(fc.integer({ min: 1, max: 65_536 - size }), fc.integer({ min: 1, max: 65_536 - size })).map(([a, b]): [PortRange, PortRange] => [
    { start: a, end: a + size - 1 },
    { start: b, end: b + size - 1 },
  ]),
);

void describe('port mapping', () => {
  void it('maps by offset, as in the Spectrum docs example', () => {
    assert.equal(mapPort({ start: 1000, end: 2000 }, { start: 3000, end: 4000 }, 1005), 3005);
    assert.equal(mapPort({ start: 22, end: 22 }, { start: 2222, end: 2222 }, 22), 2222);
  });

  void it('sends every edge port to a single origin port', () => {
    fc.assert(
      fc.property(equalRanges, fc.integer({ min: 1, max: 65_535 }), fc.nat(), ([edge], origin, k) => {
        const port = edge.start + (k % (edge.end - edge.start + 1));
        assert.equal(mapPort(edge, { start: origin, end: origin }, port), origin);
      }),
    );
  });

  void it('is a bijection between equal-size ranges, undone by mapping back', () => {
    fc.assert(
      fc.property(equalRanges, ([edge, origin]) => {
        const seen = new Set<number>();
        for (let p = edge.start; p <= edge.end; p++) {
          const q = mapPort(edge, origin, p);
          assert.ok(inRange(origin, q));
          assert.equal(mapPort(origin, edge, q), p);
          seen.add(q);
        }
        assert.equal(seen.size, edge.end - edge.start + 1);
      }),
      { numRuns: 200 },
    );
  });

  void it('refuses a port outside the edge range or ranges of different sizes (a bug upstream)', () => {
    assert.throws(() => mapPort({ start: 10, end: 20 }, { start: 30, end: 40 }, 21));
    assert.throws(() => mapPort({ start: 10, end: 20 }, { start: 30, end: 41 }, 15));
    assert.equal(inRange({ start: 10, end: 20 }, 9), false);
    assert.equal(inRange({ start: 10, end: 20 }, 20), true);
  });
});
