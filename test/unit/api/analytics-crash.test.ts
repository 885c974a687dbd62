/**
 * Analytics across stops and crashes of the real `refract serve` (child processes): a known load, SIGTERM, restart:
 * every event is there (the open minute is written on stop). Then load again, SIGKILL during it, restart: the
 * database is intact (`PRAGMA integrity_check`), the API answers, and only events of the minutes open at the kill
 * (the last minute) may be missing: all the earlier ones are there, and nothing is counted twice. Then a load across a
 * minute boundary and a SIGKILL 3 s after it: the finished minute is whole. And with `analytics: { enabled: false }`
 * nothing is stored and the endpoints say so.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startOrigin } from '../../helpers/edge.ts';
import { freePort, ZONE } from './harness.ts';
import { apiCall, createTokenCli, echoThrough, killAll, startServe, writeApiConfig } from './processes.ts';

const HOST = '127.0.0.1';

describe('analytics crash safety (refract serve, SIGTERM and SIGKILL, restart)', () => {
  let dir: string;
  let file: string;
  let apiPort: number;
  let edgePort: number;
  let token: string;
  let origin: Awaited<ReturnType<typeof startOrigin>>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'refract-analytics-crash-'));
    apiPort = await freePort();
    edgePort = await freePort();
    origin = await startOrigin();
    file = writeApiConfig(dir, apiPort, {
      apps: [{ protocol: `tcp/${edgePort}`, dns: { type: 'CNAME', name: 'echo.example.com' }, origin_direct: [`tcp://${HOST}:${origin.port}`] }],
    });
    token = await createTokenCli(file, ['--name', 'crash']);
  });
  after(async () => {
    killAll();
    await origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Events by name in the store, through the API. */
  const counts = async (base: string): Promise<Record<string, number>> => {
    const since = new Date(Date.now() - 3_600_000).toISOString();
    const r = await apiCall(base, token, 'GET', `/zones/${ZONE.id}/spectrum/analytics/events/summary?metrics=count&dimensions=event&since=${since}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return Object.fromEntries(r.json.result.data.map((d: { dimensions: string[]; metrics: number[] }) => [d.dimensions[0], d.metrics[0]]));
  };
  const load = async (n: number, onEach?: (i: number) => void): Promise<number> => {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      if ((await echoThrough(HOST, edgePort, `ping ${i}`)) === `ping ${i}`) ok++;
      onEach?.(i);
    }
    return ok;
  };
  const integrity = (): void => {
    const db = new Database(join(dir, 'data', 'api.sqlite'), { readonly: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }
  };

  it('keeps every event over a stop, and at most loses the open minutes over a SIGKILL', { timeout: 120_000 }, async () => {
    let s = await startServe(file, apiPort);
    const first = await load(20);
    assert.equal(first, 20);
    // The closing events follow the client's close by a moment.
    for (let i = 0; i < 100 && (await counts(s.base))['disconnect'] !== 20; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await counts(s.base), { connect: 20, disconnect: 20 });
    assert.equal(await s.kill('SIGTERM'), 0);
    integrity();

    s = await startServe(file, apiPort);
    assert.deepEqual(await counts(s.base), { connect: 20, disconnect: 20 }, 'a stop writes the open minute');
    const killMinute = { at: 0 };
    let served = 0;
    const loading = load(200, (i) => {
      if (i === 40) {
        killMinute.at = Math.floor(Date.now() / 60_000);
        void s.kill('SIGKILL');
      }
    }).then((n) => (served = n));
    await loading;
    assert.equal(await s.kill('SIGKILL'), 'SIGKILL');
    assert.ok(served >= 40 && served <= 41, `served ${served} before the kill`);
    integrity();

    s = await startServe(file, apiPort);
    const after = await counts(s.base);
    // Stored rows are whole minutes: the 20 of the first run are there; of the second run's, only rows of minutes
    // that ended before the kill could have been written (and then all of them).
    const rows = new Database(join(dir, 'data', 'api.sqlite'), { readonly: true });
    try {
      const byMinute = rows.prepare('SELECT t, event, count FROM analytics ORDER BY t').all() as Array<{ t: number; event: string; count: number }>;
      assert.ok(!byMinute.some((r) => r.t / 60 > killMinute.at), 'no minute after the kill was written');
    } finally {
      rows.close();
    }
    assert.ok((after['connect'] ?? 0) >= 20 && (after['connect'] ?? 0) <= 20 + served, JSON.stringify(after));
    assert.ok((after['disconnect'] ?? 0) >= 20 && (after['disconnect'] ?? 0) <= 20 + served, JSON.stringify(after));
    // The node counts new traffic after the restart.
    assert.equal(await load(5), 5);
    for (let i = 0; i < 100 && (await counts(s.base))['disconnect'] !== (after['disconnect'] ?? 0) + 5; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await counts(s.base))['disconnect'], (after['disconnect'] ?? 0) + 5);
    assert.equal(await s.kill('SIGTERM'), 0);
  });

  // The load crosses a minute boundary and the kill comes 3 s into the new minute: the minute that ended before the
  // kill must be stored whole (the writer flushes it 50 ms after the boundary), and only the open minute may be lost.
  // Waits for the wall clock to reach 5 s before a boundary (at most a minute).
  it('over a SIGKILL after a minute boundary, the minute before it is whole: only the open minute is lost', { timeout: 150_000 }, async () => {
    let s = await startServe(file, apiPort);
    const before = (await counts(s.base))['disconnect'] ?? 0;
    const toBoundary = (): number => 60_000 - (Date.now() % 60_000);
    if (toBoundary() < 6_000) await new Promise((r) => setTimeout(r, toBoundary() + 200));
    await new Promise((r) => setTimeout(r, toBoundary() - 5_000));
    const boundary = Date.now() + toBoundary();
    // Client-side: every exchange completed well before the boundary (300 ms margin for the server's close event).
    let served = 0;
    let beforeBoundary = 0;
    for (let i = 0; Date.now() < boundary + 3_000 && i < 100_000; i++) {
      assert.equal(await echoThrough(HOST, edgePort, `m ${i}`), `m ${i}`);
      served++;
      if (Date.now() < boundary - 300) beforeBoundary++;
    }
    assert.equal(await s.kill('SIGKILL'), 'SIGKILL');
    integrity();
    s = await startServe(file, apiPort);
    const stored = ((await counts(s.base))['disconnect'] ?? 0) - before;
    assert.ok(beforeBoundary > 0, 'load ran before the boundary');
    assert.ok(stored >= beforeBoundary, `the finished minute is whole: ${stored} stored, ${beforeBoundary} closed before the boundary`);
    assert.ok(stored <= served, `nothing counted twice: ${stored} stored of ${served}`);
    const rows = new Database(join(dir, 'data', 'api.sqlite'), { readonly: true });
    try {
      const late = rows.prepare('SELECT count(*) AS n FROM analytics WHERE t * 1000 >= ?').get(boundary) as { n: number };
      assert.equal(late.n, 0, 'the minute open at the kill was not written');
    } finally {
      rows.close();
    }
    assert.equal(await s.kill('SIGTERM'), 0);
  });
});

describe('analytics: { enabled: false } (refract serve)', () => {
  it('keeps no rows, and the analytics endpoints answer 404 E_API_ANALYTICS_OFF', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-analytics-off-'));
    const origin = await startOrigin();
    try {
      const apiPort = await freePort();
      const edgePort = await freePort();
      const file = writeApiConfig(dir, apiPort, {
        analytics: { enabled: false },
        apps: [{ protocol: `tcp/${edgePort}`, dns: { type: 'CNAME', name: 'echo.example.com' }, origin_direct: [`tcp://${HOST}:${origin.port}`] }],
      });
      const token = await createTokenCli(file, ['--name', 'off']);
      const s = await startServe(file, apiPort);
      for (let i = 0; i < 5; i++) assert.equal(await echoThrough(HOST, edgePort, `x ${i}`), `x ${i}`);
      const r = await apiCall(s.base, token, 'GET', `/zones/${ZONE.id}/spectrum/analytics/events/summary?metrics=count`);
      assert.equal(r.status, 404);
      assert.equal(r.json.errors[0].refract_code, 'E_API_ANALYTICS_OFF', JSON.stringify(r.json));
      assert.equal(await s.kill('SIGTERM'), 0, 'a stop writes nothing');
      const db = new Database(join(dir, 'data', 'api.sqlite'), { readonly: true });
      try {
        assert.equal((db.prepare('SELECT count(*) AS n FROM analytics').get() as { n: number }).n, 0);
      } finally {
        db.close();
      }
    } finally {
      killAll();
      await origin.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
