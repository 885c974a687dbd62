/**
 * The report's `received` of a connection: the first 200 UTF-16 units of what it received, then `…` if there is
 * more. `connectionReports` decodes only a prefix (and ASCII without a decoder pass over it); compared here with
 * decoding everything, for byte strings of every kind (ASCII, multi-byte, invalid, a BOM) cut into chunks anywhere.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { connectionReports, reportReceived } from '../../../src/scenario/results.ts';
import { Tracker } from '../../../src/scenario/tracker.ts';

function reference(bytes: Uint8Array): string {
  const text = new TextDecoder().decode(bytes);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function received(chunks: Uint8Array[]): string {
  const t = new Tracker([]).addConnection('x', false, false);
  t.kept = chunks;
  t.keptBytes = chunks.reduce((n, c) => n + c.byteLength, 0);
  return connectionReports([t], new Set()).connections[0]!.received;
}

function cut(bytes: Uint8Array, at: readonly number[]): Uint8Array[] {
  const points = [...new Set(at.map((a) => a % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    if (p > from) out.push(bytes.subarray(from, p));
    from = Math.max(from, p);
  }
  return out;
}

test('received: the first 200 units of the whole text, then … when there is more, however it arrived', () => {
  const enc = new TextEncoder();
  const texts = ['', 'a', 'x'.repeat(199), 'x'.repeat(200), 'x'.repeat(201), 'x'.repeat(10_240), `${'x'.repeat(199)}é${'y'.repeat(10)}`, `${'x'.repeat(200)}é`, '😀'.repeat(150), `\ufeff${'x'.repeat(300)}`];
  for (const s of texts) {
    const b = enc.encode(s);
    for (const at of [[], [1], [100, 200], [199, 200, 201, 202]]) assert.equal(received(cut(b, at)), reference(b), `${s.slice(0, 20)} cut at ${at.join(',')}`);
  }
  const byte = fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0, max: 255 }));
  fc.assert(
    fc.property(fc.array(byte, { maxLength: 900 }), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), (xs, at, ascii) => {
      const b = Uint8Array.from(ascii ? xs.map((x) => x & 0x7f) : xs);
      assert.equal(received(cut(b, at)), reference(b));
    }),
    { numRuns: 1500 },
  );
});

test('received: many connections in one report, each its own prefix (a head like the previous one shares its string), made during the run or at the report', () => {
  const enc = new TextEncoder();
  const pool = ['x'.repeat(10_240), 'x'.repeat(10_240), 'x'.repeat(200), 'x'.repeat(201), 'y'.repeat(300), `${'x'.repeat(150)}é${'x'.repeat(100)}`, 'x'.repeat(300), '', 'abc', 'abc', 'abd', '😀'.repeat(150), 'x'.repeat(300)];
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat({ max: pool.length - 1 }), fc.boolean()), { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 3 }), (picks, at) => {
      const tracker = new Tracker([]);
      const bytes = picks.map(([p, early], i) => {
        const b = enc.encode(pool[p]!);
        const t = tracker.addConnection(`c${i}`, false, false);
        t.kept = cut(b, at);
        t.keptBytes = b.byteLength;
        // As the clients do once a connection keeps no more bytes: `received` made during the run.
        if (early) t.received = reportReceived(t.kept, t.keptBytes);
        return b;
      });
      const { connections } = connectionReports(tracker.connections.values(), new Set());
      assert.deepEqual(connections.map((c) => c.received), bytes.map(reference));
    }),
    { numRuns: 500 },
  );
});
