/** The API's SQLite store and tokens: WAL, user_version migrations, one transaction per change, hashed tokens. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiStore, MIGRATIONS } from '../../../src/api/store.ts';
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
