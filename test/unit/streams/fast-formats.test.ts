/**
 * `traceLine`, `TraceLineWriter` and `rfc3339` write their text by hand for speed; the traces' hashes and the events'
 * timestamps must stay what `JSON.stringify({ ...r, t })` (as UTF-8, for the writer) and `Date.prototype.toISOString`
 * give. Compared on awkward values and on many generated ones.
 */
import { Buffer } from 'node:buffer';
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { traceLine, TraceLineWriter, type TraceRecord } from '../../../src/streams/trace.ts';
import { rfc3339 } from '../../../src/streams/events.ts';

const reference = (r: TraceRecord): string => JSON.stringify({ ...r, t: Math.round(r.t * 1000) / 1000 });

const awkward: unknown[] = [
  '', 'plain', 'a"b', 'back\\slash', 'line\nbreak', '\u0001', '\u001f', '\u007f', 'é', '\ud800', 'x\udfff', '\ud83d\ude00',
  0, -0, 1.5, 1e21, 1e-7, -3, NaN, Infinity, -Infinity, true, false, null, undefined,
  ['a', 1, undefined, null], { nested: 'x', skip: undefined }, new Date(0), () => 1, Symbol('s'), { toJSON: () => undefined },
  // Arrays of strings are written by hand by the writer: these must still read as JSON.stringify reads them.
  [], ['192.0.2.1:80'], ['a"b', 'é', '\ud800', 'line\nbreak'], Object.assign(new Array<string>(2), { 1: 'hole' }), Object.assign(['a'], { toJSON: () => 'own' }), Object.assign(['a'], { extra: 'x' }),
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

/** What a TraceLineWriter with a `size`-byte buffer hands its sink for `records`, joined (and how many chunks). */
function written(records: readonly TraceRecord[], size: number): { bytes: Buffer; chunks: number } {
  const chunks: Buffer[] = [];
  const w = new TraceLineWriter((b) => chunks.push(Buffer.from(b)), size); // copied: the writer reuses its buffer
  for (const r of records) w.write(r);
  w.flush();
  return { bytes: Buffer.concat(chunks), chunks: chunks.length };
}

const referenceBytes = (records: readonly TraceRecord[]): Buffer => Buffer.from(records.map((r) => `${reference(r)}\n`).join(''), 'utf8');

test('TraceLineWriter writes the UTF-8 of each traceLine and a newline, whatever its buffer size', () => {
  const base = { t: 12.3456789, node: 'edge', app: 'app-1', conn: 7, event: 'close' as const };
  const records: TraceRecord[] = [base];
  for (const v of awkward) records.push({ ...base, detail: v, '2': v, 'quo"te': 'x', after: 1 } as unknown as TraceRecord);
  for (const t of [NaN, -0.0004, 1e300, 0.0005, 2.0000005]) records.push({ ...base, t });
  for (const n of [0, -0, 9, 10, 99, 100, 4_294_967_295, 4_294_967_296, 2 ** 53, -1, 0.5, 1e21]) records.push({ ...base, conn: n, n });
  // Times as the simulator writes them (fractions of a ms), up to and past where the writer's digit path ends (2^42 µs).
  for (let k = 0; k < 5_000; k += 7) records.push({ ...base, t: k / 1000 + (k % 3) * 0.0003 });
  for (const t of [0.0004, 0.0005, 1.05, 10.5, 100.007, 4_398_046_511.103, 4_398_046_511.104, 4_398_046_511.1049, 1e10 + 0.001, -0]) records.push({ ...base, t });
  records.push({ ...base, long: 'é'.repeat(100), ascii: 'x'.repeat(300), targets: ['192.0.2.1:80', '[2001:db8::1]:443'] } as unknown as TraceRecord);
  // Records of one event whose keys change from one to the next (the writer remembers each event's last keys).
  records.push({ ...base, a: 1, b: 2 }, { ...base, b: 2, a: 1 }, { ...base, a: 1 }, { ...base, a: 1, b: 2, c: 3 }, { ...base, '7': 'x', a: 1 }, base);
  records.push({ t: 1, node: 'n', app: 'a', conn: 1 } as TraceRecord, { event: 'close', t: 2, node: 'n', app: 'a', conn: 1 });
  records.push({ ...base, t: '12.5' } as unknown as TraceRecord, { ...base, t: true } as unknown as TraceRecord, base);
  const want = referenceBytes(records);
  for (const size of [64, 65, 100, 257, 1024, 65_536]) {
    const got = written(records, size);
    assert.deepEqual(got.bytes, want, `buffer of ${size} bytes`);
    if (size === 64) assert.ok(got.chunks > 1, 'a small buffer is handed over in several chunks');
  }
  // A line given as text (what the runner does when someone also wants the lines) gives the same bytes.
  const chunks: Buffer[] = [];
  const w = new TraceLineWriter((b) => chunks.push(Buffer.from(b)), 64);
  for (const r of records) w.writeLine(traceLine(r));
  w.flush();
  assert.deepEqual(Buffer.concat(chunks), want);
  assert.throws(() => new TraceLineWriter(() => {}, 10), RangeError);
});

test('TraceLineWriter agrees with JSON.stringify on generated records', () => {
  const value = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.double(), fc.integer(), fc.nat(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.array(fc.oneof(fc.string(), fc.integer())));
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.double(), fc.dictionary(fc.string({ maxLength: 6 }), value, { maxKeys: 6 })), { maxLength: 8 }), fc.oneof(fc.integer({ min: 64, max: 400 }), fc.constant(65_536)), (rows, size) => {
      const records = rows.map(([t, detail]) => ({ t, node: 'n', app: '', conn: 1, event: 'dial', ...detail }) as TraceRecord);
      assert.deepEqual(written(records, size).bytes, referenceBytes(records));
    }),
    { numRuns: 1000 },
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
