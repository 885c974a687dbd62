/**
 * Crash safety of the management API: the real `refract serve` (a child process) takes a burst of writes from
 * several clients at once (creates, updates, deletes), is SIGKILLed in the middle of it, and is restarted on the
 * same data directory, at four kill points.
 *
 * After each restart: every acknowledged write (HTTP 200 received) is there exactly as acknowledged, unless the
 * app's one write still in flight at the kill took effect (committed, but its answer never arrived: then the app
 * is exactly that write's normalised body); no other app exists; every database row is complete and valid
 * (`PRAGMA integrity_check` ok, each spec the model's normalisation); and the node serves every app it lists
 * (bytes echo through each one to the origin).
 *
 * Each client owns the apps it writes to while the write is in flight, so an app has at most one write in flight.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { validateApp } from '../../../src/model/app.ts';
import { exchange, startOrigin } from '../../helpers/edge.ts';
import { freePort, ZONE } from './harness.ts';
import { apiCall, createTokenCli, freeRanges, killAll, startServe, writeApiConfig, type Served } from './processes.ts';

const APPS = `/zones/${ZONE.id}/spectrum/apps`;
/**
 * Kill points: the process is SIGKILLed `delayMs` after the `acks`-th acknowledged write that arrives while at least
 * two more writes are in flight (a delay lets writes commit whose answers the kill then loses).
 */
const KILL_POINTS = [
  { acks: 3, delayMs: 0 },
  { acks: 10, delayMs: 2 },
  { acks: 20, delayMs: 5 },
  { acks: 30, delayMs: 9 },
] as const;
const WRITERS = 6;

/** A small deterministic generator (mulberry32), so the operations are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normalised(body: Record<string, unknown>): Record<string, unknown> {
  const r = validateApp(body);
  assert.ok(r.ok, JSON.stringify(r.ok ? [] : r.issues));
  const { id: _id, ...spec } = r.app.spec as Record<string, unknown>;
  return spec;
}

function withoutReadOnly(app: Record<string, unknown>): Record<string, unknown> {
  const { id: _i, created_on: _c, modified_on: _m, ...rest } = app;
  return rest;
}

type Pending = { kind: 'put'; spec: Record<string, unknown> } | { kind: 'delete' };

describe('management API crash safety (refract serve, SIGKILL mid-burst, restart)', () => {
  let dir: string;
  let file: string;
  let apiPort: number;
  let token: string;
  let origin: Awaited<ReturnType<typeof startOrigin>>;
  let served: Served | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'refract-crash-'));
    apiPort = await freePort();
    file = writeApiConfig(dir, apiPort);
    token = await createTokenCli(file, ['--name', 'crash']);
    origin = await startOrigin();
  });
  after(async () => {
    killAll();
    await origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged write and nothing half-written, at four kill points', { timeout: 150_000 }, async (t) => {
    /** Acknowledged state: the app as last acknowledged, or null once its delete was acknowledged. */
    const known = new Map<string, Record<string, any> | null>();
    /** Writes in flight (or lost) at the kill, per app id; and creates, by edge port. */
    let pendingById = new Map<string, Pending>();
    let pendingCreates = new Map<string, Record<string, unknown>>();
    let counter = 0;

    const list = async (s: Served): Promise<Map<string, any>> => {
      const out = new Map<string, any>();
      for (let page = 1; page <= 10; page++) {
        const r = await apiCall(s.base, token, 'GET', `${APPS}?per_page=100&page=${page}&order=app_id`);
        assert.equal(r.status, 200);
        for (const a of r.json.result) out.set(a.id, a);
        if (page >= r.json.result_info.total_pages) break;
      }
      return out;
    };

    /** The checks after a restart; then the listed state becomes the acknowledged one. */
    const verify = async (s: Served, label: string): Promise<void> => {
      const listed = await list(s);
      const unanswered = pendingById.size + pendingCreates.size;
      let tookEffect = 0;
      for (const [id, state] of known) {
        const now = listed.get(id);
        const p = pendingById.get(id);
        if (p === undefined) {
          if (state === null) assert.equal(now, undefined, `${label}: deleted app ${id} came back`);
          else assert.deepEqual(now, state, `${label}: app ${id} is not as acknowledged`);
        } else if (p.kind === 'delete') {
          assert.ok(now === undefined || JSON.stringify(now) === JSON.stringify(state), `${label}: app ${id} neither deleted nor as acknowledged`);
          if (now === undefined) tookEffect++;
        } else {
          assert.ok(now !== undefined, `${label}: app ${id} vanished with only an update in flight`);
          const asAcked = JSON.stringify(now) === JSON.stringify(state);
          const asPending = JSON.stringify(withoutReadOnly(now)) === JSON.stringify(p.spec) && now.created_on === state!['created_on'] && now.modified_on >= state!['modified_on'];
          assert.ok(asAcked || asPending, `${label}: app ${id} is neither as acknowledged nor as the update in flight: ${JSON.stringify(now)}`);
          if (!asAcked) tookEffect++;
        }
      }
      for (const [id, now] of listed) {
        if (known.has(id)) continue;
        // An app nobody saw acknowledged: a create in flight at the kill that committed, exactly as sent.
        const spec = pendingCreates.get(now.protocol);
        assert.ok(spec !== undefined, `${label}: app ${id} (${now.protocol}) was never written`);
        assert.deepEqual(withoutReadOnly(now), spec, `${label}: app ${id} is not its create's body`);
        assert.equal(now.created_on, now.modified_on);
        pendingCreates.delete(now.protocol);
        tookEffect++;
      }
      t.diagnostic(`${label}: ${listed.size} apps; ${unanswered} writes unanswered at the kill, ${tookEffect} of them took effect`);

      // The rows themselves: an intact database whose every row is a complete, valid, normalised app.
      const db = new Database(join(dir, 'data', 'api.sqlite'), { readonly: true });
      try {
        assert.deepEqual(db.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
        const rows = db.prepare('SELECT * FROM apps').all() as Array<{ zone_id: string; app_id: string; spec: string; created_on: string; modified_on: string }>;
        assert.deepEqual(new Set(rows.map((r) => r.app_id)), new Set(listed.keys()), `${label}: rows and listed apps differ`);
        for (const r of rows) {
          assert.equal(r.zone_id, ZONE.id);
          assert.match(r.app_id, /^[0-9a-f]{32}$/);
          const spec = JSON.parse(r.spec) as Record<string, unknown>;
          assert.deepEqual(spec, normalised(spec), `${label}: row ${r.app_id} is not a normalised app`);
          assert.deepEqual(spec, withoutReadOnly(listed.get(r.app_id)));
          assert.ok(!Number.isNaN(Date.parse(r.created_on)) && r.modified_on >= r.created_on);
        }
      } finally {
        db.close();
      }

      // The node serves what it lists: bytes echo through every app.
      for (const a of listed.values()) {
        const port = Number(String(a.protocol).split('/')[1]);
        const r = await exchange(port, `ping ${a.id}`, { timeoutMs: 5000 });
        assert.equal(r.data.toString(), `ping ${a.id}`, `${label}: through ${a.protocol}: ${r.error ?? ''}`);
      }

      known.clear();
      for (const [id, a] of listed) known.set(id, a);
      pendingById = new Map();
      pendingCreates = new Map();
    };

    served = await startServe(file, apiPort);
    for (const [round, { acks: killAfter, delayMs }] of KILL_POINTS.entries()) {
      const s: Served = served;
      const random = rng(round + 1);
      const ports = await freeRanges(60, 1);
      const busy = new Set<string>();
      let acks = 0;
      let inFlight = 0;
      let stop = false;
      let killed = false;
      let ops = 0;
      const unexpected: string[] = [];
      const kill = (): void => {
        if (killed) return;
        killed = true;
        s.child.kill('SIGKILL');
        stop = true;
      };
      const body = (port: number, name: string): Record<string, unknown> => ({
        protocol: `tcp/${port}`,
        dns: { type: 'CNAME', name },
        origin_direct: [`tcp://127.0.0.1:${origin.port}`],
        ...(random() < 0.5 ? { argo_smart_routing: random() < 0.5, ip_firewall: random() < 0.5 } : {}),
        ...(random() < 0.3 ? { proxy_protocol: 'off', tls: 'off', edge_ips: { type: 'dynamic', connectivity: 'all' } } : {}),
      });

      const writer = async (): Promise<void> => {
        while (!stop && ops < 400) {
          ops++;
          const idle = [...known].filter(([id, a]) => a !== null && !busy.has(id)).map(([id]) => id);
          const r = random();
          let id: string | undefined;
          let send: () => Promise<{ status: number; json: any }>;
          let onAck: (json: any) => void;
          if (idle.length < 3 || r < 0.5) {
            const port = ports.pop();
            if (port === undefined) break;
            const b = body(port, `c${counter++}.example.com`);
            const key = `tcp/${port}`;
            pendingCreates.set(key, normalised(b));
            send = () => apiCall(s.base, token, 'POST', APPS, b);
            onAck = (json) => {
              pendingCreates.delete(key);
              known.set(json.result.id, json.result);
            };
          } else {
            const target = idle[Math.floor(random() * idle.length)]!;
            id = target;
            busy.add(target);
            if (r < 0.8) {
              const port = Number(String(known.get(target)!['protocol']).split('/')[1]);
              const b = body(port, `u${counter++}.example.com`);
              pendingById.set(target, { kind: 'put', spec: normalised(b) });
              send = () => apiCall(s.base, token, 'PUT', `${APPS}/${target}`, b);
              onAck = (json) => known.set(target, json.result);
            } else {
              pendingById.set(target, { kind: 'delete' });
              send = () => apiCall(s.base, token, 'DELETE', `${APPS}/${target}`);
              onAck = () => known.set(target, null);
            }
          }
          inFlight++;
          try {
            const res = await send();
            if (res.status === 200) {
              onAck(res.json);
              if (id !== undefined) pendingById.delete(id);
              acks++;
              if (acks >= killAfter && inFlight >= 3 && !killed) setTimeout(kill, delayMs);
            } else {
              unexpected.push(`HTTP ${res.status}: ${JSON.stringify(res.json)}`);
            }
          } catch {
            // No answer: the process is gone (or going). The write stays pending: it may or may not have committed.
          } finally {
            inFlight--;
            if (id !== undefined) busy.delete(id);
          }
        }
      };
      await Promise.all(Array.from({ length: WRITERS }, () => writer()));
      kill();
      assert.deepEqual(unexpected, [], `round ${round}: every write was valid`);
      assert.equal(await s.done, 'SIGKILL', `round ${round}: the process died by SIGKILL`);
      assert.ok(acks >= killAfter, `round ${round}: ${acks} acknowledged writes before the kill`);
      await new Promise((r) => setTimeout(r, delayMs + 1)); // any kill timer still pending has fired (a no-op)

      served = await startServe(file, apiPort);
      await verify(served, `round ${round} (killed after ${acks} acknowledged writes)`);
    }
    assert.ok(known.size > 0, 'some apps survived the rounds');
    // And it still stops cleanly.
    assert.equal(await served.kill('SIGTERM'), 0);
  });
});
