/**
 * OpenedIds (src/scenario/opened-ids.ts) against the map of every id that the schema check kept before: the same
 * clash for every step and the same answer for every id, over random timelines of connects and loads whose prefixes
 * overlap (`c`, `c1`, `c10`, digits only, empty).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OpenedIds, type OpenedConn } from '../../../src/scenario/opened-ids.ts';
import { loadId } from '../../../src/scenario/schema.ts';

type Step = { kind: 'connect'; id: string; at: number } | { kind: 'load'; prefix: string; count: number; at: number; every: number };

/** What schema.ts did before: every id in one map, a load's one by one. */
function reference(steps: readonly Step[]): { clashes: Array<string | undefined>; opened: Map<string, OpenedConn> } {
  const opened = new Map<string, OpenedConn>();
  const clashes: Array<string | undefined> = [];
  steps.forEach((s, i) => {
    const p = `/timeline/${i}`;
    if (s.kind === 'connect') {
      const first = opened.get(s.id);
      clashes.push(first === undefined ? undefined : first.pointer);
      if (first === undefined) opened.set(s.id, { at: s.at, pointer: p });
      return;
    }
    let clash: string | undefined;
    for (let k = 0; k < s.count; k++) {
      const id = loadId({ id_prefix: s.prefix }, k);
      const first = opened.get(id);
      if (first !== undefined) clash ??= `"${id}" is already opened at ${first.pointer}`;
      else opened.set(id, { at: s.at + k * s.every, pointer: p });
    }
    clashes.push(clash);
  });
  return { clashes, opened };
}

const prefix = fc.constantFrom('c', 'c1', 'c10', 'c-', 'd', '1', '10', '');
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('connect' as const), id: fc.oneof(fc.tuple(prefix, fc.nat(40)).map(([p, n]) => `${p}${n}`), fc.constantFrom('c01', 'c-0', 'x', 'c', '')), at: fc.nat(100) }),
  fc.record({ kind: fc.constant('load' as const), prefix, count: fc.nat(30), at: fc.nat(100), every: fc.constantFrom(0, 0.004, 1, 2.5) }),
);

void describe('OpenedIds', () => {
  void it('reports the same clashes and opens the same ids as a map of every id', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 8 }), fc.array(fc.string({ maxLength: 5 }), { maxLength: 10 }), (steps, extra) => {
        const ref = reference(steps);
        const ids = new OpenedIds();
        const clashes = steps.map((s, i) => {
          const p = `/timeline/${i}`;
          if (s.kind === 'load') return ids.openLoad(s.prefix, s.count, s.at, s.every, p);
          const first = ids.get(s.id);
          if (first === undefined) ids.set(s.id, { at: s.at, pointer: p });
          return first?.pointer;
        });
        assert.deepEqual(clashes, ref.clashes);
        for (const [id, o] of ref.opened) assert.deepEqual(ids.get(id), o, id);
        const probes = [...extra, 'c00', 'c1 ', 'c1e1', 'c1.0', '-1', 'c-1', 'c999999999999999999', ...[...ref.opened.keys()].map((id) => `${id}0`)];
        for (const id of probes) {
          assert.deepEqual(ids.get(id), ref.opened.get(id), id);
          assert.equal(ids.has(id), ref.opened.has(id), id);
        }
      }),
      { numRuns: 500 },
    );
  });

  void it('keeps a load that nothing else can clash with as one range', () => {
    const ids = new OpenedIds();
    ids.set('a', { at: 0, pointer: '/timeline/0' });
    assert.equal(ids.openLoad('c-', 100_000, 5, 0.5, '/timeline/1'), undefined);
    assert.deepEqual(ids.get('c-99999'), { at: 5 + 99_999 * 0.5, pointer: '/timeline/1' });
    assert.equal(ids.get('c-100000'), undefined);
    assert.equal(ids.get('c-007'), undefined);
    assert.equal(ids.openLoad('c-1', 3, 0, 1, '/timeline/2'), '"c-10" is already opened at /timeline/1');
    assert.deepEqual(ids.get('c-12'), { at: 5 + 12 * 0.5, pointer: '/timeline/1' });
  });
});
