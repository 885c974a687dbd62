import test from 'node:test';
import assert from 'node:assert/strict';
import { packetPool } from '../../../src/net/sim/sim-conn.ts';
import { assertNoLeaks, bytes, closeListeners, echo, listen, record, settle, world } from './harness.ts';

// Segments and ACKs come from free lists (sim-conn.ts): one reused while still in flight, or handed out twice,
// would deliver someone else's bytes or acknowledgements; one never given back would make every packet a new object.

/** `conns` echo round trips of `size` bytes each, all at once (`parallel`) or each opened when the one before closed. */
async function echoMany(opts: Parameters<typeof world>[0], conns: number, size: number, parallel = true): Promise<void> {
  const { sim, client, server } = world(opts);
  await listen(server, 7, echo);
  const recs: Array<{ payload: Uint8Array; r: ReturnType<typeof record> }> = [];
  const open = (i: number): void => {
    const payload = bytes(size, i);
    const c = client.connectTcp({ host: '10.0.0.2', port: 7 });
    const r = record(c, sim, {
      onConnect: () => {
        c.write(payload);
        c.end();
      },
    });
    recs.push({ payload, r });
    if (!parallel && i + 1 < conns) {
      // The next one once this one has closed: chained on its close handler (record's runs first).
      const closed = (): void => open(i + 1);
      c.setHandlers({ close: (hadError) => (r.events.push(`close:${hadError}`), closed()) });
    }
  };
  if (parallel) for (let i = 0; i < conns; i++) open(i);
  else open(0);
  settle(sim);
  assert.equal(recs.length, conns);
  for (const { payload, r } of recs) {
    assert.deepEqual(r.received(), Buffer.from(payload), 'each connection gets its own bytes back');
    assert.equal(r.events.at(-1), 'close:false');
  }
  await closeListeners(sim);
  assertNoLeaks(sim);
}

test('segments and ACKs are reused once delivered, and the free lists stay bounded', async () => {
  const before = packetPool();
  // Small slices: thousands of segments in flight at once, more than a free list keeps.
  await echoMany({ defaultLink: { latencyMs: 1, slicer: { minBytes: 40, maxBytes: 120 } } }, 30, 60_000);
  const after = packetPool();
  assert.ok(after.segmentsReused > before.segmentsReused, 'segments reused');
  // Far more than 1,024 were in flight at once and then delivered: the free list is full, and no fuller.
  assert.equal(after.freeSegments, 1_024);
  assert.ok(after.freeAcks <= 1_024, `ACK free list bounded (${after.freeAcks})`);
});

test('one connection after another makes almost no new segments or ACKs', async () => {
  const before = packetPool();
  await echoMany({ defaultLink: { latencyMs: 1 } }, 200, 20_000, false);
  const after = packetPool();
  const reused = after.segmentsReused - before.segmentsReused + (after.acksReused - before.acksReused);
  const created = after.segmentsCreated - before.segmentsCreated + (after.acksCreated - before.acksCreated);
  assert.ok(reused > 1_000 && after.acksReused > before.acksReused, `packets reused: ${reused}`);
  assert.ok(created < 50, `packets made: ${created}`);
});

test('with loss and jitter (retransmitted, out-of-order segments), reused packets still carry the right bytes', async () => {
  const before = packetPool();
  await echoMany({ defaultLink: { latencyMs: 2, jitterMs: 1.5, loss: 0.05, slicer: { minBytes: 200, maxBytes: 3_000 } } }, 40, 30_000);
  assert.ok(packetPool().segmentsReused > before.segmentsReused);
});
