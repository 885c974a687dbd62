/**
 * `traceLine` and `rfc3339` write their text by hand for speed; the traces' hashes and the events' timestamps must
 * stay what `JSON.stringify({ ...r, t })` and `Date.prototype.toISOString` give. Compared on awkward values and on
 * many generated ones.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { traceLine, type TraceRecord } from '../../../src/streams/trace.ts';
import { rfc3339 } from '../../../src/streams/events.ts';

const reference = (r: TraceRecord): string => JSON.stringify({ ...r, t: Math.round(r.t * 1000) / 1000 });

const awkward: unknown[] = [
  '', 'plain', 'a"b', 'back\\slash', 'line\nbreak', '\u0001', '\u001f', '\u007f', 'é', '\ud800', 'x\udfff', '\ud83d\ude00',
  0, -0, 1.5, 1e21, 1e-7, -3, NaN, Infinity, -Infinity, true, false, null, undefined,
  ['a', 1, undefined, null], { nested: 'x', skip: undefined }, new Date(0), () => 1, Symbol('s'), { toJSON: () => undefined },
];

test('traceLine writes what JSON.stringify of the record with t rounded writes', () => {
  const base = { t: 12.3456789, node: 'edge', app: 'app-1', conn: 7, event: 'close' as const };
  assert.equal(traceLine(base), reference(base));
  for (const v of awkward) {
    const r = { ...base, detail: v, '2': v, 'quo"te': 'x', after: 1 } as unknown as TraceRecord;
    assert.equal(traceLine(r), reference(r), `value ${String(typeof v === 'symbol' ? 'symbol' : v)}`);
  }
  for (const t of [NaN, -0.0004, 1e300, 0.0005, 2.0000005]) assert.equal(traceLine({ ...base, t }), reference({ ...base, t }));
});

test('traceLine agrees with JSON.stringify on generated records', () => {
  const value = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.array(fc.oneof(fc.string(), fc.integer())));
  fc.assert(
    fc.property(fc.double(), fc.dictionary(fc.string({ maxLength: 6 }), value, { maxKeys: 6 }), (t, detail) => {
      const r = { t, node: 'n', app: '', conn: 1, event: 'dial', ...detail } as TraceRecord;
      assert.equal(traceLine(r), reference(r));
    }),
    { numRuns: 2000 },
  );
});

test('rfc3339 writes what toISOString writes', () => {
  const fixed = [0, 0.4, 999.999, 59_999.9, 60_000, 1_767_225_600_000, 1_767_225_600_000 + 0.0021, 253_402_300_799_999, 253_402_300_800_000, 8.64e15, -1, -1.5, -62_198_755_200_000];
  for (const ms of fixed) assert.equal(rfc3339(ms), new Date(ms).toISOString(), String(ms));
  fc.assert(
    fc.property(fc.double({ min: -1e13, max: 8.64e15, noNaN: true }), (ms) => {
      assert.equal(rfc3339(ms), new Date(ms).toISOString());
    }),
    { numRuns: 5000 },
  );
  // In time order, as the engine calls it (the cached minute changes under it).
  for (let ms = 1_767_225_599_000; ms < 1_767_225_725_000; ms += 333.3) assert.equal(rfc3339(ms), new Date(ms).toISOString());
});

test('rfc3339 throws for what toISOString throws for', () => {
  assert.throws(() => rfc3339(NaN), RangeError);
  assert.throws(() => rfc3339(8.64e15 + 1), RangeError);
});
