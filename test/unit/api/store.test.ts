/** The API's SQLite store and tokens: WAL, user_version migrations, one transaction per change, hashed tokens. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ApiStore, enableWal, MIGRATIONS, type AuditEntry } from '../../../src/api/store.ts';
import { bearerToken, createToken, verifyToken } from '../../../src/api/tokens.ts';

const app = (appId: string) => ({ zoneId: 'z'.repeat(32), appId, spec: { protocol: 'tcp/22' }, createdOn: '2026-01-01T00:00:00.000Z', modifiedOn: '2026-01-01T00:00:00.000Z' });

describe('ApiStore', () => {
  it('creates the schema once (user_version), in WAL mode, and keeps data across opens', () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-store-'));
    try {
      const file = join(dir, 'sub', 'api.sqlite');
      const a = new ApiStore(file);
      assert.equal(a.schemaVersion, MIGRATIONS.length);
      a.begin({ put: app('a1') });
      a.commit();
      a.close();
      const b = new ApiStore(file);
      assert.equal(b.schemaVersion, MIGRATIONS.length);
      assert.deepEqual(b.apps().map((x) => x.appId), ['a1']);
      b.close();
      assert.equal(readFileSync(file).subarray(18, 20).toString('hex'), '0202', 'WAL mode is recorded in the header');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('switching to WAL: a busy refusal waits for the other lock (an empty write transaction) and looks again; other errors and a fifth refusal stand', () => {
    const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    // A database whose WAL switch is refused `refusals` times, then finds WAL (the other process switched it).
    const stub = (refusals: number, error: Error = busy) => {
      const calls: string[] = [];
      let mode = 'delete';
      return {
        calls,
        pragma: ((source: string) => {
          calls.push(source);
          if (source === 'journal_mode') return mode;
          if (source === 'journal_mode = WAL') {
            if (refusals-- > 0) throw error;
            mode = 'wal';
            return 'wal';
          }
          throw new Error(`unexpected pragma ${source}`);
        }) as Database.Database['pragma'],
        exec: ((source: string) => {
          calls.push(source);
        }) as unknown as Database.Database['exec'],
      };
    };
    const once = stub(1);
    enableWal(once);
    assert.deepEqual(once.calls, ['journal_mode', 'journal_mode = WAL', 'BEGIN IMMEDIATE; COMMIT', 'journal_mode', 'journal_mode = WAL']);
    const four = stub(4);
    enableWal(four);
    assert.equal(four.calls.filter((c) => c === 'BEGIN IMMEDIATE; COMMIT').length, 4);
    assert.throws(() => enableWal(stub(5)), /database is locked/);
    const other = stub(1, Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' }));
    assert.throws(() => enableWal(other), /disk I\/O error/);
    assert.ok(!other.calls.includes('BEGIN IMMEDIATE; COMMIT'), 'only SQLITE_BUSY is waited out');
  });

  it('a rolled-back write leaves nothing', () => {
    const s = new ApiStore(':memory:');
    s.begin({ put: app('a1') });
    s.rollback();
    assert.deepEqual(s.apps(), []);
    s.begin({ put: app('a2') });
    s.commit();
    s.begin({ delete: 'a2' });
    s.rollback();
    assert.equal(s.apps().length, 1);
    assert.throws(() => {
      s.begin({ put: app('a3') });
      s.begin({ put: app('a4') });
    });
    s.close();
  });

  it('upgrades a database at an earlier schema version in place, keeping its apps and tokens', () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-store-'));
    try {
      const file = join(dir, 'api.sqlite');
      // The schema as the first release with token permissions left it (user_version 2), with a row in each table.
      const old = new Database(file);
      old.pragma('journal_mode = WAL');
      for (const [v, sql] of MIGRATIONS.slice(0, 2).entries()) {
        old.exec(sql);
        old.pragma(`user_version = ${v + 1}`);
      }
      old.prepare('INSERT INTO apps (zone_id, app_id, spec, created_on, modified_on) VALUES (?, ?, ?, ?, ?)').run('z'.repeat(32), 'old-app', '{"protocol":"tcp/22"}', '2025-01-01T00:00:00.000Z', '2025-01-02T00:00:00.000Z');
      old.prepare("INSERT INTO tokens (id, name, sha256, created_on, permissions, kind) VALUES ('t1', 'old', 'ab', '2025-01-01T00:00:00.000Z', '[\"apps:read\"]', 'token')").run();
      old.close();

      const s = new ApiStore(file);
      assert.equal(s.schemaVersion, MIGRATIONS.length);
      assert.deepEqual(s.apps(), [{ zoneId: 'z'.repeat(32), appId: 'old-app', spec: { protocol: 'tcp/22' }, createdOn: '2025-01-01T00:00:00.000Z', modifiedOn: '2025-01-02T00:00:00.000Z' }]);
      assert.deepEqual(s.tokens().map((t) => [t.id, t.name, t.permissions]), [['t1', 'old', ['apps:read']]]);
      // The new tables work.
      s.begin();
      s.putRule({ zoneId: 'z'.repeat(32), ruleId: 'r1', rule: { mode: 'block' }, createdOn: 'c', modifiedOn: 'm' });
      s.commit();
      assert.equal(s.rules().length, 1);
      s.close();
      const again = new ApiStore(file);
      assert.equal(again.schemaVersion, MIGRATIONS.length, 'migrations run once');
      assert.equal(again.apps().length, 1);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes audit entries inside the write: a rollback removes them with the change', () => {
    const s = new ApiStore(':memory:');
    const entry = (id: string, when: string): AuditEntry => ({
      id,
      zoneId: 'z'.repeat(32),
      when,
      actor: { id: 't', name: 'ci', kind: 'token', email: undefined },
      action: 'create',
      resourceType: 'spectrum_app',
      resourceId: 'a1',
      before: null,
      after: { id: 'a1' },
      metadata: undefined,
    });
    s.begin({ put: app('a1') });
    s.addAudit(entry('e1', '2026-01-01T00:00:01.000Z'));
    s.rollback();
    assert.equal(s.auditLog('z'.repeat(32), { newestFirst: true, limit: 10, offset: 0 }).total, 0);
    s.begin({ put: app('a1') });
    s.addAudit(entry('e2', '2026-01-01T00:00:02.000Z'));
    s.addAudit(entry('e3', '2026-01-01T00:00:02.000Z'));
    s.commit();
    const got = s.auditLog('z'.repeat(32), { newestFirst: true, limit: 10, offset: 0 });
    assert.deepEqual(got.entries.map((e) => e.id), ['e3', 'e2'], 'same time: the later write first');
    assert.deepEqual(got.entries[0]?.after, { id: 'a1' });
    assert.equal(got.entries[0]?.before, null);
    assert.equal(s.auditLog('z'.repeat(32), { newestFirst: true, limit: 10, offset: 9e15 }).entries.length, 0);
    assert.throws(() => s.addAudit(entry('e4', 'x')), /no write is open/);
    s.close();
  });

  it('stores only a hash of each token, verifies and revokes', () => {
    const s = new ApiStore(':memory:');
    const t = createToken(s, 'ci', new Date(0));
    assert.match(t.token, /^rfk_[A-Za-z0-9_-]{40}$/);
    assert.equal(verifyToken(s, t.token), t.id);
    assert.equal(verifyToken(s, `${t.token}x`), undefined);
    assert.equal(bearerToken(`Bearer ${t.token}`), t.token);
    assert.equal(bearerToken(`Basic ${t.token}`), undefined);
    assert.deepEqual(s.tokens().map((x) => [x.name, x.status]), [['ci', 'active']]);
    assert.equal(s.revokeToken('ci', new Date(1).toISOString()), 1);
    assert.equal(verifyToken(s, t.token), undefined);
    assert.equal(s.tokens()[0]?.status, 'revoked');
    s.close();
  });
});
