/**
 * Short version of `npm run soak` part (a) (bench/soak/slow.ts): 200 slow clients (silent, or dribbling a PROXY
 * header or a ClientHello a byte at a time) against real `refract serve` children, garbage on the PROXY and TLS
 * ports, and legitimate clients meanwhile. Every slow connection must be closed by its own timeout with its code,
 * every garbage connection with its code, every legitimate exchange echoed with status 200, and nothing else
 * closed. Latency is reported, never asserted.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { runSlowSoak } from '../../bench/soak/slow.ts';
import { killAll } from '../../bench/soak/procs.ts';

after(killAll);

test('200 slow clients are each closed by their own timeout with its code; garbage closes only its connection; legitimate clients are served meanwhile', { timeout: 120_000 }, async (t) => {
  const r = await runSlowSoak({ slow: 200, timeoutMs: 6_000, dribbleEveryMs: 400, garbagePerKind: 10, legitConcurrency: 2, legitMax: 60, perBatch: 50, batchGapMs: 50, baselineMs: 500 });
  t.diagnostic(`legitimate connect → first byte p99 (ms): ${r.legitRows.map((x) => `${x.kind}${x.slowOpen ? ' among slow' : ' alone'} ${Math.round(x.p99)}`).join(', ')}`);
  assert.deepEqual(r.failures, []);
  assert.deepEqual(r.slowRows.map((x) => x.byTimeout), r.slowRows.map((x) => x.conns));
  assert.equal(r.slowRows.reduce((a, x) => a + x.conns, 0), 200);
  assert.deepEqual(r.garbageRows.map((x) => x.withCode), r.garbageRows.map(() => 10));
  assert.equal(r.legitRows.length, 6, 'three kinds, alone and among the slow clients');
  for (const x of r.legitRows) assert.ok(x.ok > 0 && x.ok === x.exchanges, `${x.kind}: ${x.ok} of ${x.exchanges} exchanges`);
  assert.equal(r.openDuringWindow, 200, 'every slow client was still open while the legitimate clients ran');
});
