/**
 * The API's state: SQLite through better-sqlite3 (synchronous), in WAL mode, schema versioned by `user_version`
 * (each migration runs once, in a transaction). Tables: the zones, apps and IP Access rules created through the API,
 * the audit log of API writes, the API tokens and keys (SHA-256 of the secret only), and the edge-IP allocation
 * (`edge_ips`, and `edge_ip_holds` for addresses held until their drain deadline).
 *
 * Every change is one transaction. A write is two-phase so the edge can be changed in between: `begin` opens the
 * transaction, the `put…`/`delete…` methods make the change inside it, the caller applies the resulting
 * configuration, then `commit` or `rollback` (src/api/config-source.ts).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { edgeIpStateFrom, type EdgeIpState } from '../model/edge-ips.ts';

export interface StoredApp {
  readonly zoneId: string;
  readonly appId: string;
  /** The normalised app object (AppSpec.spec) without id, created_on and modified_on. */
  readonly spec: Readonly<Record<string, unknown>>;
  readonly createdOn: string;
  readonly modifiedOn: string;
}

export interface StoredZone {
  readonly zoneId: string;
  /** Normalised: lowercase, no final dot. */
  readonly name: string;
  readonly createdOn: string;
}

export interface StoredRule {
  readonly zoneId: string;
  readonly ruleId: string;
  /** The normalised rule `{mode, configuration: {target, value}, notes}` (src/model/access-rules.ts) without id and zone. */
  readonly rule: Readonly<Record<string, unknown>>;
  readonly createdOn: string;
  readonly modifiedOn: string;
}

/** One committed API write (src/api/audit.ts shapes it for the API). */
export interface AuditEntry {
  /** A UUID. */
  readonly id: string;
  readonly zoneId: string;
  /** RFC 3339, UTC (the ConfigSource clock). */
  readonly when: string;
  readonly actor: { readonly id: string; readonly name: string; readonly kind: 'token' | 'key'; readonly email: string | undefined };
  /** `create`, `update` or `delete`. */
  readonly action: string;
  readonly resourceType: string;
  readonly resourceId: string;
  /** The API's object before and after (null: none). */
  readonly before: unknown;
  readonly after: unknown;
  readonly metadata: Readonly<Record<string, unknown>> | undefined;
}

/** What to read of a zone's audit log: `since` inclusive, `before` exclusive (RFC 3339 as `toISOString` writes it). */
export interface AuditQuery {
  readonly since?: string | undefined;
  readonly before?: string | undefined;
  readonly newestFirst: boolean;
  readonly limit: number;
  readonly offset: number;
}

export interface StoredToken {
  readonly id: string;
  readonly name: string;
  readonly createdOn: string;
  readonly status: 'active' | 'revoked';
  /** 'token' (Authorization: Bearer) or 'key' (a global key: X-Auth-Email + X-Auth-Key). */
  readonly kind: 'token' | 'key';
  /** The global key's email; undefined for a token. */
  readonly email: string | undefined;
  /** The permissions granted; undefined: all. */
  readonly permissions: readonly string[] | undefined;
  /** The zone ids it may use; undefined: all. */
  readonly zones: readonly string[] | undefined;
}

/** An active token's or key's hash and grants (the caller compares hashes in constant time). */
export interface ActiveToken {
  readonly id: string;
  readonly name: string;
  readonly sha256: string;
  readonly kind: 'token' | 'key';
  readonly email: string | undefined;
  readonly permissions: readonly string[] | undefined;
  readonly zones: readonly string[] | undefined;
}

interface TokenRow {
  id: string;
  name: string;
  sha256: string;
  created_on: string;
  revoked_on: string | null;
  permissions: string | null;
  zones: string | null;
  kind: string;
  email: string | null;
}

const list = (s: string | null): readonly string[] | undefined => (s === null ? undefined : (JSON.parse(s) as string[]));

/** Migrations, in order; `user_version` is how many have run. Append only: never edit one that has shipped. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE apps (
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
   );`,
  // Token permissions and zones (JSON arrays; NULL: all), and global keys (kind 'key', used with an email).
  `ALTER TABLE tokens ADD COLUMN permissions TEXT;
   ALTER TABLE tokens ADD COLUMN zones TEXT;
   ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'token';
   ALTER TABLE tokens ADD COLUMN email TEXT;`,
  // IP Access rules created through the API, one zone each.
  `CREATE TABLE rules (
     zone_id TEXT NOT NULL,
     rule_id TEXT NOT NULL PRIMARY KEY,
     rule TEXT NOT NULL,
     created_on TEXT NOT NULL,
     modified_on TEXT NOT NULL
   );
   CREATE INDEX rules_zone ON rules (zone_id);`,
  // The audit log: one row per committed API write, written in the write's own transaction.
  `CREATE TABLE audit_log (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     zone_id TEXT NOT NULL,
     at TEXT NOT NULL,
     actor_id TEXT NOT NULL,
     actor_name TEXT NOT NULL,
     actor_kind TEXT NOT NULL,
     actor_email TEXT,
     action TEXT NOT NULL,
     resource_type TEXT NOT NULL,
     resource_id TEXT NOT NULL,
     old_value TEXT,
     new_value TEXT,
     metadata TEXT
   );
   CREATE INDEX audit_log_zone_at ON audit_log (zone_id, at);`,
  // Zones created through the API (the config file's zones are not stored).
  `CREATE TABLE zones (
     zone_id TEXT NOT NULL PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     created_on TEXT NOT NULL
   );`,
  // Edge IPs allocated from edge.pools (src/model/edge-ips.ts): a DNS name's dynamic addresses, written in the
  // transaction of the write that caused them.
  `CREATE TABLE edge_ips (
     name TEXT NOT NULL PRIMARY KEY,
     ipv4 TEXT,
     ipv6 TEXT
   );`,
  // Addresses given back and held until their drain deadline (EdgeIpState.held): free_after is epoch ms.
  `CREATE TABLE edge_ip_holds (
     ip TEXT NOT NULL PRIMARY KEY,
     free_after INTEGER NOT NULL
   );`,
  // Spectrum analytics rollups (src/api/analytics-store.ts): one row per bucket (res 60: a minute, 3600: an hour,
  // t: its start in epoch seconds) and (zone, app, event, ip version, colo); sketch is a DDSketch of the durations.
  `CREATE TABLE analytics (
     res INTEGER NOT NULL,
     t INTEGER NOT NULL,
     zone_id TEXT NOT NULL,
     app_id TEXT NOT NULL,
     event TEXT NOT NULL,
     ip_version INTEGER NOT NULL,
     colo TEXT NOT NULL,
     count INTEGER NOT NULL,
     bytes_ingress INTEGER NOT NULL,
     bytes_egress INTEGER NOT NULL,
     dur_n INTEGER NOT NULL,
     dur_sum REAL NOT NULL,
     sketch BLOB,
     PRIMARY KEY (zone_id, t, res, app_id, event, ip_version, colo)
   ) WITHOUT ROWID;
   CREATE INDEX analytics_res_t ON analytics (res, t);`,
];

interface AppRow {
  zone_id: string;
  app_id: string;
  spec: string;
  created_on: string;
  modified_on: string;
}

function fromRow(r: AppRow): StoredApp {
  return { zoneId: r.zone_id, appId: r.app_id, spec: JSON.parse(r.spec) as Record<string, unknown>, createdOn: r.created_on, modifiedOn: r.modified_on };
}

interface RuleRow {
  zone_id: string;
  rule_id: string;
  rule: string;
  created_on: string;
  modified_on: string;
}

function ruleFromRow(r: RuleRow): StoredRule {
  return { zoneId: r.zone_id, ruleId: r.rule_id, rule: JSON.parse(r.rule) as Record<string, unknown>, createdOn: r.created_on, modifiedOn: r.modified_on };
}

interface AuditRow {
  id: string;
  zone_id: string;
  at: string;
  actor_id: string;
  actor_name: string;
  actor_kind: string;
  actor_email: string | null;
  action: string;
  resource_type: string;
  resource_id: string;
  old_value: string | null;
  new_value: string | null;
  metadata: string | null;
}

function auditFromRow(r: AuditRow): AuditEntry {
  const json = (s: string | null): unknown => (s === null ? null : (JSON.parse(s) as unknown));
  return {
    id: r.id,
    zoneId: r.zone_id,
    when: r.at,
    actor: { id: r.actor_id, name: r.actor_name, kind: r.actor_kind === 'key' ? 'key' : 'token', email: r.actor_email ?? undefined },
    action: r.action,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    before: json(r.old_value),
    after: json(r.new_value),
    metadata: r.metadata === null ? undefined : (JSON.parse(r.metadata) as Record<string, unknown>),
  };
}

/** An app change, as `begin` takes it. */
export type AppChange = { readonly put: StoredApp } | { readonly delete: string };

/**
 * Puts the database in WAL mode (kept in the file, so a second open finds it so). Two processes switching a new file at
 * once can both hold the read lock and want the write lock; SQLite then refuses one of them at once, SQLITE_BUSY without
 * waiting out the busy timeout (its deadlock avoidance). That one waits for the other's lock through the busy timeout
 * (an empty write transaction) and looks again: a few rounds at most, then the error stands.
 */
export function enableWal(db: Pick<Database.Database, 'pragma' | 'exec'>): void {
  for (let attempt = 1; ; attempt++) {
    try {
      if (db.pragma('journal_mode', { simple: true }) !== 'wal') db.pragma('journal_mode = WAL');
      return;
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'SQLITE_BUSY' || attempt >= 5) throw e;
      db.exec('BEGIN IMMEDIATE; COMMIT');
    }
  }
}

export class ApiStore {
  readonly #db: Database.Database;
  #open = false;

  /** Opens (creating the file and folder if needed) and migrates. `:memory:` for a throwaway store. */
  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 }); // the data directory: private (the local CA may live here too)
    this.#db = new Database(file);
    // Two processes may open a new database at once (`refract token create` twice, or beside `serve`): the busy
    // timeout comes first so every step below waits for the other instead of failing with SQLITE_BUSY.
    this.#db.pragma('busy_timeout = 2000');
    enableWal(this.#db);
    this.#db.pragma('foreign_keys = ON');
    // The migrations run in one write transaction taken at once (BEGIN IMMEDIATE), reading the version inside it,
    // so two processes never apply the same migration.
    this.#db
      .transaction(() => {
        const version = this.#db.pragma('user_version', { simple: true }) as number;
        for (let v = version; v < MIGRATIONS.length; v++) {
          this.#db.exec(MIGRATIONS[v]!);
          this.#db.pragma(`user_version = ${v + 1}`);
        }
      })
      .immediate();
  }

  get schemaVersion(): number {
    return this.#db.pragma('user_version', { simple: true }) as number;
  }

  apps(): StoredApp[] {
    return (this.#db.prepare('SELECT * FROM apps ORDER BY created_on, app_id').all() as AppRow[]).map(fromRow);
  }

  app(appId: string): StoredApp | undefined {
    const r = this.#db.prepare('SELECT * FROM apps WHERE app_id = ?').get(appId) as AppRow | undefined;
    return r === undefined ? undefined : fromRow(r);
  }

  zones(): StoredZone[] {
    const rows = this.#db.prepare('SELECT * FROM zones ORDER BY created_on, zone_id').all() as Array<{ zone_id: string; name: string; created_on: string }>;
    return rows.map((r) => ({ zoneId: r.zone_id, name: r.name, createdOn: r.created_on }));
  }

  rules(): StoredRule[] {
    return (this.#db.prepare('SELECT * FROM rules ORDER BY created_on, rule_id').all() as RuleRow[]).map(ruleFromRow);
  }

  rule(ruleId: string): StoredRule | undefined {
    const r = this.#db.prepare('SELECT * FROM rules WHERE rule_id = ?').get(ruleId) as RuleRow | undefined;
    return r === undefined ? undefined : ruleFromRow(r);
  }

  /**
   * Starts a write's transaction (`BEGIN IMMEDIATE`) and makes `change` in it when given. Make further changes with
   * the `put…`/`delete…` methods, then `commit()` or `rollback()`; nothing else may use the store in between (the
   * API serialises writes). A change that fails rolls the whole transaction back and throws.
   */
  begin(change?: AppChange): void {
    if (this.#open) throw new Error('ApiStore: a write is already open');
    this.#db.exec('BEGIN IMMEDIATE');
    this.#open = true;
    if (change === undefined) return;
    if ('put' in change) this.putApp(change.put);
    else this.deleteApp(change.delete);
  }

  putApp(a: StoredApp): void {
    this.#inWrite(() =>
      this.#db
        .prepare('INSERT OR REPLACE INTO apps (zone_id, app_id, spec, created_on, modified_on) VALUES (?, ?, ?, ?, ?)')
        .run(a.zoneId, a.appId, JSON.stringify(a.spec), a.createdOn, a.modifiedOn),
    );
  }

  deleteApp(appId: string): void {
    this.#inWrite(() => this.#db.prepare('DELETE FROM apps WHERE app_id = ?').run(appId));
  }

  /** The edge-IP allocation: every DNS name's dynamic addresses, and the addresses held until a drain deadline. */
  edgeIps(): EdgeIpState {
    const rows = this.#db.prepare('SELECT * FROM edge_ips ORDER BY name').all() as Array<{ name: string; ipv4: string | null; ipv6: string | null }>;
    const holds = this.#db.prepare('SELECT * FROM edge_ip_holds ORDER BY ip').all() as Array<{ ip: string; free_after: number }>;
    return edgeIpStateFrom({
      names: Object.fromEntries(rows.map((r) => [r.name, { ipv4: r.ipv4 ?? undefined, ipv6: r.ipv6 ?? undefined }])),
      held: Object.fromEntries(holds.map((h) => [h.ip, Number(h.free_after)])),
    });
  }

  /**
   * Replaces the allocation with `state` (rows of names it no longer holds are deleted), in the open write; without
   * one open, in a transaction of its own.
   */
  putEdgeIps(state: EdgeIpState): void {
    const write = (): void => {
      this.#db.exec('DELETE FROM edge_ips');
      const put = this.#db.prepare('INSERT INTO edge_ips (name, ipv4, ipv6) VALUES (?, ?, ?)');
      for (const [name, v] of Object.entries(state.names)) put.run(name, v.ipv4 ?? null, v.ipv6 ?? null);
      this.#db.exec('DELETE FROM edge_ip_holds');
      const hold = this.#db.prepare('INSERT INTO edge_ip_holds (ip, free_after) VALUES (?, ?)');
      for (const [ip, freeAfter] of Object.entries(state.held ?? {})) hold.run(ip, Math.round(freeAfter));
    };
    if (this.#open) this.#inWrite(write);
    else this.#db.transaction(write)();
  }

  putZone(z: StoredZone): void {
    this.#inWrite(() => this.#db.prepare('INSERT INTO zones (zone_id, name, created_on) VALUES (?, ?, ?)').run(z.zoneId, z.name, z.createdOn));
  }

  deleteZone(zoneId: string): void {
    this.#inWrite(() => this.#db.prepare('DELETE FROM zones WHERE zone_id = ?').run(zoneId));
  }

  putRule(r: StoredRule): void {
    this.#inWrite(() =>
      this.#db
        .prepare('INSERT OR REPLACE INTO rules (zone_id, rule_id, rule, created_on, modified_on) VALUES (?, ?, ?, ?, ?)')
        .run(r.zoneId, r.ruleId, JSON.stringify(r.rule), r.createdOn, r.modifiedOn),
    );
  }

  deleteRule(ruleId: string): void {
    this.#inWrite(() => this.#db.prepare('DELETE FROM rules WHERE rule_id = ?').run(ruleId));
  }

  /** Records a write in the audit log, inside the write's transaction (a rollback removes it too). */
  addAudit(e: AuditEntry): void {
    const text = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
    this.#inWrite(() =>
      this.#db
        .prepare(
          `INSERT INTO audit_log (id, zone_id, at, actor_id, actor_name, actor_kind, actor_email, action, resource_type, resource_id, old_value, new_value, metadata)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(e.id, e.zoneId, e.when, e.actor.id, e.actor.name, e.actor.kind, e.actor.email ?? null, e.action, e.resourceType, e.resourceId, text(e.before), text(e.after), text(e.metadata)),
    );
  }

  /** A zone's audit entries matching `q` (newest or oldest first, ties by insertion order), and how many match in all. */
  auditLog(zoneId: string, q: AuditQuery): { total: number; entries: AuditEntry[] } {
    const where = ['zone_id = ?'];
    const args: unknown[] = [zoneId];
    if (q.since !== undefined) {
      where.push('at >= ?');
      args.push(q.since);
    }
    if (q.before !== undefined) {
      where.push('at < ?');
      args.push(q.before);
    }
    const cond = where.join(' AND ');
    const total = (this.#db.prepare(`SELECT COUNT(*) AS n FROM audit_log WHERE ${cond}`).get(...args) as { n: number }).n;
    if (q.offset >= total) return { total, entries: [] }; // also keeps a huge page number out of SQL
    const dir = q.newestFirst ? 'DESC' : 'ASC';
    const rows = this.#db.prepare(`SELECT * FROM audit_log WHERE ${cond} ORDER BY at ${dir}, seq ${dir} LIMIT ? OFFSET ?`).all(...args, q.limit, q.offset) as AuditRow[];
    return { total, entries: rows.map(auditFromRow) };
  }

  /** Whether the zone has any audit entry (a deleted zone's log stays readable). */
  hasAudit(zoneId: string): boolean {
    return this.#db.prepare('SELECT 1 FROM audit_log WHERE zone_id = ? LIMIT 1').get(zoneId) !== undefined;
  }

  /** Runs a statement of the open write; a failure rolls the write back and is rethrown. */
  #inWrite(f: () => unknown): void {
    if (!this.#open) throw new Error('ApiStore: no write is open (call begin first)');
    try {
      f();
    } catch (e) {
      this.rollback();
      throw e;
    }
  }

  commit(): void {
    if (!this.#open) return;
    this.#db.exec('COMMIT');
    this.#open = false;
  }

  rollback(): void {
    if (!this.#open) return;
    this.#db.exec('ROLLBACK');
    this.#open = false;
  }

  // ── tokens ──────────────────────────────────────────────────────────────────────────────────────────────────

  addToken(t: {
    id: string;
    name: string;
    sha256: string;
    createdOn: string;
    kind?: 'token' | 'key';
    email?: string | undefined;
    permissions?: readonly string[] | undefined;
    zones?: readonly string[] | undefined;
  }): void {
    this.#db
      .prepare('INSERT INTO tokens (id, name, sha256, created_on, kind, email, permissions, zones) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(
        t.id,
        t.name,
        t.sha256,
        t.createdOn,
        t.kind ?? 'token',
        t.email ?? null,
        t.permissions === undefined ? null : JSON.stringify(t.permissions),
        t.zones === undefined ? null : JSON.stringify(t.zones),
      );
  }

  tokens(): StoredToken[] {
    const rows = this.#db.prepare('SELECT * FROM tokens ORDER BY created_on, id').all() as TokenRow[];
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      createdOn: r.created_on,
      status: r.revoked_on === null ? 'active' : 'revoked',
      kind: r.kind === 'key' ? 'key' : 'token',
      email: r.email ?? undefined,
      permissions: list(r.permissions),
      zones: list(r.zones),
    }));
  }

  /** The active tokens and keys, with their hashes (the caller compares in constant time). */
  activeTokenHashes(): ActiveToken[] {
    const rows = this.#db.prepare('SELECT * FROM tokens WHERE revoked_on IS NULL').all() as TokenRow[];
    return rows.map((r) => ({ id: r.id, name: r.name, sha256: r.sha256, kind: r.kind === 'key' ? 'key' : 'token', email: r.email ?? undefined, permissions: list(r.permissions), zones: list(r.zones) }));
  }

  /** Revokes by id or name; how many tokens it revoked. */
  revokeToken(idOrName: string, at: string): number {
    return this.#db.prepare('UPDATE tokens SET revoked_on = ? WHERE revoked_on IS NULL AND (id = ? OR name = ?)').run(at, idOrName, idOrName).changes;
  }

  /**
   * Runs `f` on the database in a transaction of its own, unless an API write is open (its transaction spans the
   * edge's apply, so another statement now would join it and share its fate): then returns false and runs nothing,
   * and the caller tries again later. The analytics writer uses this (src/api/analytics-store.ts).
   */
  runAside(f: (db: Database.Database) => void): boolean {
    if (this.#open || !this.#db.open) return false;
    this.#db.transaction(() => f(this.#db)).immediate();
    return true;
  }

  /** Runs a read on the database (any time: reads see the last committed state, or the open write's). */
  read<T>(f: (db: Database.Database) => T): T {
    return f(this.#db);
  }

  close(): void {
    this.rollback();
    this.#db.close();
  }
}
