/**
 * Schema migrations of the API database: a database written by the first schema (user_version 1, built here by
 * hand with that migration's SQL, as the first release wrote it) opens with ApiStore at the latest version, its rows
 * intact, the added token columns at their defaults (kind 'token', no email, all permissions, all zones), and its
 * tokens still authenticate (or stay revoked).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { ApiStore } from '../../../src/api/store.ts';
import { authenticateKey, authenticateToken } from '../../../src/api/tokens.ts';

/** The first migration, verbatim: the schema at user_version 1. */
const SCHEMA_V1 = `CREATE TABLE apps (
     zone_id TEXT NOT NULL,
     app_id TEXT NOT NULL PRIMARY KEY,
     spec TEXT NOT NULL,
     created_on TEXT NOT NULL,
     modified_on TEXT NOT NULL
   );
   CREATE INDEX apps_zone ON apps (zone_id);
   CREATE TABLE tokens (
     id TEXT NOT NULL PRIMARY KEY,
     name TEXT NOT NULL,
     sha256 TEXT NOT NULL UNIQUE,
     created_on TEXT NOT NULL,
     revoked_on TEXT
   );`;

const ZONE_ID = '023e105f4ecef8ad9ca31a8372d0c353';
const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

const APPS = [
  {
    zone_id: ZONE_ID,
    app_id: 'a'.repeat(32),
    spec: { protocol: 'tcp/22', dns: { type: 'CNAME', name: 'ssh.example.com' }, origin_direct: ['tcp://192.0.2.1:22'], proxy_protocol: 'off', ip_firewall: false, tls: 'off', edge_ips: { type: 'dynamic', connectivity: 'all' }, traffic_type: 'direct', argo_smart_routing: false },
    created_on: '2026-01-01T00:00:00.000Z',
    modified_on: '2026-01-02T00:00:00.000Z',
  },
  {
    zone_id: 'f'.repeat(32),
    app_id: 'b'.repeat(32),
    spec: { protocol: 'udp/5000-5009', dns: { type: 'ADDRESS', name: 'game.example.org' }, origin_dns: { name: 'origin.example.org', type: '' }, origin_port: '6000-6009', proxy_protocol: 'simple', ip_firewall: true, tls: 'off', edge_ips: { type: 'static', ips: ['192.0.2.7'] }, traffic_type: 'direct', argo_smart_routing: false },
    created_on: '2026-01-03T00:00:00.000Z',
    modified_on: '2026-01-03T00:00:00.000Z',
  },
];
const TOKENS = [
  { id: '1'.repeat(32), name: 'ci', secret: `rfk_${'A'.repeat(40)}`, created_on: '2026-01-01T00:00:00.000Z', revoked_on: null },
  { id: '2'.repeat(32), name: 'old', secret: `rfk_${'B'.repeat(40)}`, created_on: '2026-01-01T00:00:01.000Z', revoked_on: '2026-01-05T00:00:00.000Z' },
];

/** A database file at user_version 1 with the rows above, written without ApiStore. */
function buildV1(file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(SCHEMA_V1);
  const app = db.prepare('INSERT INTO apps (zone_id, app_id, spec, created_on, modified_on) VALUES (?, ?, ?, ?, ?)');
  for (const a of APPS) app.run(a.zone_id, a.app_id, JSON.stringify(a.spec), a.created_on, a.modified_on);
  const token = db.prepare('INSERT INTO tokens (id, name, sha256, created_on, revoked_on) VALUES (?, ?, ?, ?, ?)');
  for (const t of TOKENS) token.run(t.id, t.name, sha256(t.secret), t.created_on, t.revoked_on);
  db.pragma('user_version = 1');
  db.close();
}

describe('API database migrations', () => {
  it('opens a version-1 database at the latest version, rows intact, new token columns at their defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-migrate-'));
    try {
      const file = join(dir, 'api.sqlite');
      buildV1(file);
      const latest = new ApiStore(':memory:');
      const latestVersion = latest.schemaVersion;
      latest.close();
      assert.ok(latestVersion > 1, 'there is a migration after the first');

      const store = new ApiStore(file);
      try {
        assert.equal(store.schemaVersion, latestVersion);
        assert.deepEqual(
          store.apps().map((a) => ({ zone_id: a.zoneId, app_id: a.appId, spec: a.spec, created_on: a.createdOn, modified_on: a.modifiedOn })),
          APPS,
        );
        assert.deepEqual(store.tokens(), [
          { id: TOKENS[0]!.id, name: 'ci', createdOn: TOKENS[0]!.created_on, status: 'active', kind: 'token', email: undefined, permissions: undefined, zones: undefined },
          { id: TOKENS[1]!.id, name: 'old', createdOn: TOKENS[1]!.created_on, status: 'revoked', kind: 'token', email: undefined, permissions: undefined, zones: undefined },
        ]);
        // The old active token still works, with every permission on every zone; the revoked one does not; neither
        // is a global key.
        assert.deepEqual(authenticateToken(store, TOKENS[0]!.secret), { id: TOKENS[0]!.id, name: TOKENS[0]!.name, kind: 'token', email: undefined, permissions: undefined, zones: undefined });
        assert.equal(authenticateToken(store, TOKENS[1]!.secret), undefined);
        assert.equal(authenticateKey(store, 'ops@example.com', TOKENS[0]!.secret), undefined);
        // Writes work on the migrated schema.
        store.begin({ delete: APPS[0]!.app_id });
        store.commit();
        assert.deepEqual(store.apps().map((a) => a.appId), [APPS[1]!.app_id]);
      } finally {
        store.close();
      }

      // The migrated file, read directly: the added columns hold their defaults, and reopening migrates nothing.
      const raw = new Database(file, { readonly: true });
      try {
        assert.deepEqual(raw.prepare('SELECT id, kind, email, permissions, zones FROM tokens ORDER BY id').all(), [
          { id: TOKENS[0]!.id, kind: 'token', email: null, permissions: null, zones: null },
          { id: TOKENS[1]!.id, kind: 'token', email: null, permissions: null, zones: null },
        ]);
        assert.deepEqual(raw.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
      } finally {
        raw.close();
      }
      const again = new ApiStore(file);
      assert.equal(again.schemaVersion, latestVersion);
      assert.equal(again.tokens().length, 2);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('migrates a version-1 database while another connection holds rows only in the write-ahead log', () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-migrate-'));
    try {
      const file = join(dir, 'api.sqlite');
      buildV1(file);
      // A writer that never closes cleanly: rows committed to the WAL only.
      const db = new Database(file);
      db.pragma('wal_autocheckpoint = 0');
      db.prepare('INSERT INTO apps (zone_id, app_id, spec, created_on, modified_on) VALUES (?, ?, ?, ?, ?)').run(ZONE_ID, 'c'.repeat(32), '{"protocol":"tcp/2222"}', '2026-01-04T00:00:00.000Z', '2026-01-04T00:00:00.000Z');
      const store = new ApiStore(file);
      try {
        assert.ok(store.schemaVersion > 1);
        assert.deepEqual(store.apps().map((a) => a.appId), [APPS[0]!.app_id, APPS[1]!.app_id, 'c'.repeat(32)]);
      } finally {
        store.close();
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
