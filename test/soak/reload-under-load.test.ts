/**
 * Short version of `npm run soak` part (b) (bench/soak/reload.ts): 50 file reloads (SIGHUP, alternating between two
 * files that differ in other apps) while 50 connections stream checksummed data through a real `refract serve`,
 * then 20 API creates and deletes of another app under the same load. No stream may be dropped, lose, duplicate or
 * reorder a byte, and each must close once with status 200 and its byte counts; each change must take effect (the
 * added app echoes, the removed one refuses).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { runReloadSoak } from '../../bench/soak/reload.ts';
import { killAll } from '../../bench/soak/procs.ts';

after(killAll);

for (const [mode, changes] of [['file', 50], ['api', 20]] as const) {
  test(`${changes} ${mode === 'file' ? 'file reloads' : 'API app creates and deletes'} under 50 checksummed streams drop no connection and lose or duplicate no byte`, { timeout: 180_000 }, async () => {
    const r = await runReloadSoak({ mode, changes, streams: 50, chunkBytes: 1_024, everyMs: 50, probeEvery: 10 });
    assert.deepEqual(r.failures, []);
    assert.equal(r.applied, changes);
    assert.equal(r.streams, 50);
    assert.equal(r.dropped, 0);
    assert.equal(r.bytesLost, 0);
    assert.equal(r.bytesCorrupt, 0);
    assert.ok(r.bytesSent > 0, 'the streams carried data');
    assert.equal(r.probes, changes / 10);
  });
}
