/**
 * The running configuration = the config file + what was created through the API (zones, apps, IP Access rules). This is
 * the one place the two are merged, for API writes and for file reloads alike, and the one place either is applied to
 * the edge.
 *
 * All changes run one at a time (a queue). An API write:
 *   1. merges the file with every API object (the change included) and validates the whole result with
 *      `validateConfig`, the validator `refract validate` uses;
 *   2. opens its database transaction, makes the change and records it in the audit log (who, when, the object
 *      before and after);
 *   3. applies the configuration with `edge.apply` (an EdgeView: one EdgeNode, or every worker of
 *      `serve --workers`; all-or-nothing: a port in use leaves the edge as it was);
 *   4. commits only if 1 and 3 succeeded, otherwise rolls back and reports the problem with its code (a commit that
 *      fails after 3 gives the edge back the previous configuration first).
 * A file reload merges the new file with the stored API objects the same way; API objects survive reloads.
 *
 * In the merged object, API zones follow the file's `zones`, API apps and rules carry the Refract extension field
 * `zone` (their zone's id), and each file app that names no zone is given the file zone its dns.name falls in, so a
 * file app never moves into a zone created through the API.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { concatMap, from, type Observable } from 'rxjs';
import { toCloudflareRule, validateAccessRule } from '../model/access-rules.ts';
import { configIssue } from '../model/app.ts';
import { parseZones, validateConfig, type ConfigResult } from '../model/config.ts';
import { RefractError } from '../model/errors.ts';
import type { AccessRule, AppSpec, ConfigIssue, RefractConfig, Zone } from '../model/types.ts';
import { allocateEdgeIps, appBindAddresses, EMPTY_EDGE_IPS, poolsConfigured, type EdgeIpMove, type EdgeIpState } from '../model/edge-ips.ts';
import { findZone, zoneNameKey, zoneOfName } from '../model/zones.ts';
import type { ApplyResult, FollowResult } from '../edge/edge-node.ts';
import type { EdgeView } from '../edge/edge-view.ts';
import type { ApiStore, StoredApp, StoredRule, StoredZone } from './store.ts';
import type { ApplyRecord } from '../model/engine-view.ts';

/** How many applies `history()` keeps. */
export const APPLY_HISTORY = 20;

/** An app as the API returns it: the normalised object plus id, created_on, modified_on. */
export type ApiApp = Readonly<Record<string, unknown>> & { readonly id: string; readonly created_on: string; readonly modified_on: string };

export interface AppView {
  readonly zoneId: string;
  readonly app: ApiApp;
  /** From the config file (read-only through the API). */
  readonly fromFile: boolean;
}

/**
 * Who a rule applies to: the apps of one zone (`type: "zone"`), or every app of the node (`type: "node"`, the config
 * file's rules that name no zone).
 */
export type RuleScope = { readonly id: string; readonly name: string; readonly type: 'zone' } | { readonly id: string; readonly type: 'node' };

/** An IP Access rule as the API returns it (Cloudflare's shape; allow is written `whitelist`). */
export interface ApiRule {
  readonly id: string;
  readonly mode: 'whitelist' | 'block';
  readonly configuration: { readonly target: string; readonly value: string };
  readonly notes: string;
  readonly allowed_modes: readonly ('whitelist' | 'block')[];
  readonly scope: RuleScope;
  readonly created_on: string;
  readonly modified_on: string;
}

export interface RuleView {
  readonly zoneId: string;
  readonly rule: ApiRule;
  /** From the config file (read-only through the API). */
  readonly fromFile: boolean;
}

/** Who makes a write (the request's token or global key), as the audit log records it. Never the secret. */
export interface Actor {
  readonly id: string;
  readonly name: string;
  readonly kind: 'token' | 'key';
  readonly email: string | undefined;
}

/** The kinds of object the audit log records, as `resource.type`. */
export type AuditResource = 'spectrum_app' | 'access_rule' | 'zone';

/** A zone as the API returns it. */
export interface ApiZone {
  readonly id: string;
  readonly name: string;
  readonly status: 'active';
  readonly paused: false;
  readonly type: 'full';
  readonly created_on: string;
  readonly modified_on: string;
}

export interface ZoneView {
  readonly zone: ApiZone;
  /** From the config file (read-only through the API). */
  readonly fromFile: boolean;
}

/** One audit entry of a write, before the ConfigSource adds id, time and actor. */
interface AuditRecord {
  readonly zoneId: string;
  readonly action: 'create' | 'update' | 'delete' | 'rotate';
  readonly resourceType: AuditResource;
  readonly resourceId: string;
  readonly before: unknown;
  readonly after: unknown;
  readonly metadata?: Record<string, unknown>;
}

/** A write the API refused: HTTP status, and the issues (code, Cloudflare number, pointer into the request body). */
export class ApiWriteError extends Error {
  constructor(
    readonly status: number,
    readonly issues: readonly ConfigIssue[],
  ) {
    super(issues.map((i) => `${i.code}: ${i.message}`).join('; '));
  }
}

/** Fields of a request body that the API sets itself and ignores when sent. */
const READ_ONLY_APP_FIELDS = ['id', 'created_on', 'modified_on', 'zone', 'ips'];
const READ_ONLY_RULE_FIELDS = ['id', 'created_on', 'modified_on', 'zone', 'scope', 'allowed_modes'];

/** The modes a rule can have in Refract, as the API writes them (Spectrum honours only these two). */
export const RULE_MODES: readonly ('whitelist' | 'block')[] = Object.freeze(['block', 'whitelist']);

export interface ConfigSourceDeps {
  /** The edge: an EdgeNode, or the view of `serve --workers` over its worker processes. */
  readonly edge: EdgeView;
  readonly store: ApiStore;
  /** The config file's name (named in the read-only errors) and its parsed object (before validation). */
  readonly file: string;
  readonly fileRaw: unknown;
  /** Wall clock for created_on / modified_on. */
  readonly now: () => Date;
  /** A new app's id (32 hex characters); default 16 random bytes. The simulator passes a seeded one (replays stay identical). */
  readonly newAppId?: () => string;
  /** Called after every successful API write with the new running configuration (not for start or file reloads). */
  readonly onApplied?: (config: RefractConfig, result: ApplyResult) => void;
  /** Told when an allocated edge IP had to move (it lies in no pool any more); the CLI logs it. */
  readonly onEdgeIpMoved?: (move: EdgeIpMove) => void;
}

/** What the API has created, as stored. */
interface ApiData {
  readonly zones: readonly StoredZone[];
  readonly apps: readonly StoredApp[];
  readonly rules: readonly StoredRule[];
}

/** A write: the API data after it, where its object sits in the merged config, and its database side. */
interface Change<T> {
  readonly next: ApiData;
  /** Pointer of the written object in the merged config object; its issues are reported relative to the body. */
  readonly focus: string | undefined;
  /** Who writes, and when (the ConfigSource clock, as created_on / modified_on). */
  readonly actor: Actor;
  readonly at: string;
  /** A rule of the API beyond the validator's, on the validated merged configuration: throws ApiWriteError to refuse. */
  readonly check?: (config: RefractConfig) => void;
  /** A DNS name whose edge IPs this write rotates (allocateEdgeIps' `rotate`). */
  readonly rotate?: string;
  /** Makes the change in the open transaction, given the validated merged configuration; returns its audit entries. */
  readonly store: (config: RefractConfig) => readonly AuditRecord[];
  /** The answer, once committed. */
  readonly result: () => T;
}

export class ConfigSource {
  readonly #d: ConfigSourceDeps;
  #fileRaw: unknown;
  #fileLoadedOn: string;
  #config: RefractConfig | undefined;
  /** The running apps and rules by id (so a listing is one pass, not a search per item). */
  #appSpecs = new Map<string, Readonly<Record<string, unknown>>>();
  #runningRules = new Map<string, AccessRule>();
  /** The running apps by id, for the addresses each listens on (`ips` in responses). */
  #runningApps = new Map<string, AppSpec>();
  /** The edge-IP allocation as last committed (the database's); each merge allocates from it. */
  #edgeIps: EdgeIpState = EMPTY_EDGE_IPS;
  /** The API's objects as last committed (reads never see a write in flight). */
  #committed: ApiData = { zones: [], apps: [], rules: [] };
  #queue: Promise<unknown> = Promise.resolve();
  /** The latest applies, newest first (the dashboard's health page). */
  #history: ApplyRecord[] = [];

  constructor(deps: ConfigSourceDeps) {
    this.#d = deps;
    this.#fileRaw = deps.fileRaw;
    this.#fileLoadedOn = deps.now().toISOString();
  }

  /** The latest applies (start, file reloads applied or rejected, API writes), newest first, at most APPLY_HISTORY. */
  history(): readonly ApplyRecord[] {
    return this.#history;
  }

  #record(trigger: ApplyRecord['trigger'], outcome: { result: ApplyResult } | { error: unknown }): void {
    const at = this.#d.now().toISOString();
    const rec: ApplyRecord =
      'result' in outcome
        ? { at, trigger, ok: true, added: outcome.result.added.length, removed: outcome.result.removed.length, changed: outcome.result.changed.length, code: '', message: '' }
        : { at, trigger, ok: false, added: 0, removed: 0, changed: 0, ...describeFailure(outcome.error) };
    this.#history = [rec, ...this.#history].slice(0, APPLY_HISTORY);
  }

  /** The edge node the configuration is applied to (the API's live endpoints read its engines and events). */
  get edge(): EdgeView {
    return this.#d.edge;
  }

  /** The running configuration (after `start`). */
  get config(): RefractConfig {
    if (this.#config === undefined) throw new RefractError('E_INTERNAL', { message: 'ConfigSource: not started' });
    return this.#config;
  }

  get zones(): readonly Zone[] {
    return this.config.zones ?? [];
  }

  // ── zones ───────────────────────────────────────────────────────────────────────────────────────────────────

  /** Every zone: the file's, then those created through the API, in the order they were created. */
  zoneViews(): ZoneView[] {
    const stored = new Map(this.#committed.zones.map((z) => [z.zoneId, z] as const));
    return this.zones.map((z) => {
      const s = stored.get(z.id);
      return { fromFile: s === undefined, zone: zoneView(z, s?.createdOn ?? this.#fileLoadedOn) };
    });
  }

  /**
   * POST /zones: a zone named `body.name` (other fields, such as the SDK's `account`, are ignored), its id derived
   * from the name as for file zones.
   */
  createZone(body: unknown, actor: Actor): Promise<ApiZone> {
    return this.#serial(async () => {
      const b = bodyObject(body, 'a zone {name}', []);
      const name = b['name'];
      const existing = typeof name === 'string' ? this.zones.find((z) => z.name === zoneNameKey(name)) : undefined;
      if (existing !== undefined) {
        throw new ApiWriteError(400, [configIssue('/name', 'E_API_ZONE_EXISTS', `${existing.name} already exists (zone ${existing.id})`)]);
      }
      const at = this.#d.now().toISOString();
      const index = this.#committed.zones.length;
      const probe: StoredZone = { zoneId: '', name: name as string, createdOn: at };
      let made: StoredZone | undefined;
      const zonePointer = `/zones/${listLength(this.#fileRaw, 'zones') + index}`;
      return this.#write({
        next: { ...this.#committed, zones: [...this.#committed.zones, probe] },
        focus: zonePointer,
        actor,
        at,
        store: (config) => {
          const z = config.zones?.[listLength(this.#fileRaw, 'zones') + index];
          if (z === undefined) throw new Error('ConfigSource: a validated zone is missing from the configuration');
          made = { zoneId: z.id, name: z.name, createdOn: at };
          this.#d.store.putZone(made);
          return [{ zoneId: z.id, action: 'create', resourceType: 'zone', resourceId: z.id, before: null, after: zoneView(z, at) }];
        },
        result: () => zoneView({ id: made!.zoneId, name: made!.name }, at),
      });
    });
  }

  /** DELETE /zones/{id}: the zone with its API apps and rules, in one transaction; the apps drain. */
  deleteZone(zoneId: string, actor: Actor): Promise<void> {
    return this.#serial(async () => {
      const stored = this.#committed.zones.find((z) => z.zoneId === zoneId);
      if (stored === undefined) {
        if (this.zones.some((z) => z.id === zoneId)) {
          throw new ApiWriteError(400, [configIssue('', 'E_API_FILE_ZONE', `zone ${zoneId} is defined in ${this.#d.file} and is read-only through the API; edit that file`)]);
        }
        throw new ApiWriteError(404, [configIssue('', 'E_API_ZONE_NOT_FOUND', `no zone ${zoneId}`)]);
      }
      const apps = this.apps(zoneId).filter((v) => !v.fromFile);
      const rules = this.rules(zoneId).filter((v) => !v.fromFile);
      const before = this.zoneViews().find((v) => v.zone.id === zoneId)?.zone;
      const { zones: allZones, apps: allApps, rules: allRules } = this.#committed;
      const via = { via: 'zone.delete' };
      await this.#write({
        next: { zones: allZones.filter((z) => z.zoneId !== zoneId), apps: allApps.filter((a) => a.zoneId !== zoneId), rules: allRules.filter((r) => r.zoneId !== zoneId) },
        focus: undefined,
        actor,
        at: this.#d.now().toISOString(),
        store: () => {
          const store = this.#d.store;
          for (const v of apps) store.deleteApp(v.app.id);
          for (const v of rules) store.deleteRule(v.rule.id);
          store.deleteZone(zoneId);
          return [
            ...apps.map((v): AuditRecord => ({ zoneId, action: 'delete', resourceType: 'spectrum_app', resourceId: v.app.id, before: v.app, after: null, metadata: via })),
            ...rules.map((v): AuditRecord => ({ zoneId, action: 'delete', resourceType: 'access_rule', resourceId: v.rule.id, before: v.rule, after: null, metadata: via })),
            { zoneId, action: 'delete', resourceType: 'zone', resourceId: zoneId, before: before ?? null, after: null },
          ];
        },
        result: () => undefined,
      });
    });
  }

  /** Merges the file with the stored API objects, validates and applies. Rejects with the issues or the apply error. */
  start(): Promise<ApplyResult> {
    return this.#serial(async () => {
      this.#edgeIps = this.#d.store.edgeIps();
      const merged = this.#merge(this.#fileRaw, this.#stored());
      if (!merged.ok) throw new ApiWriteError(400, merged.issues);
      const result = await this.#d.edge.apply(merged.config);
      this.#storeEdgeIps(merged.config);
      this.#adopt(merged.config, this.#fileRaw, result);
      this.#record('start', { result });
      return result;
    });
  }

  /** Like `EdgeNode.follow`, for file reloads: each new file object is merged with the API objects and applied in turn. */
  follow(fileRaws$: Observable<unknown>): Observable<FollowResult> {
    return fileRaws$.pipe(
      concatMap((raw) =>
        from(
          this.#serial(async (): Promise<FollowResult> => {
            const merged = this.#merge(raw, this.#stored());
            if (!merged.ok) {
              const error = new ApiWriteError(400, merged.issues);
              this.#record('file', { error });
              return { ok: false, config: this.config, error };
            }
            try {
              const result = await this.#d.edge.apply(merged.config);
              try {
                this.#storeEdgeIps(merged.config);
              } catch (e) {
                await this.#d.edge.apply(this.config).catch(() => undefined);
                throw e;
              }
              this.#fileLoadedOn = this.#d.now().toISOString();
              this.#adopt(merged.config, raw, result);
              this.#record('file', { result });
              return { ok: true, config: merged.config, result };
            } catch (error) {
              this.#record('file', { error });
              return { ok: false, config: this.config, error };
            }
          }),
        ),
      ),
    );
  }

  // ── apps ────────────────────────────────────────────────────────────────────────────────────────────────────

  /** Every app of a zone, file apps first then API apps, unsorted. */
  apps(zoneId: string): AppView[] {
    const cfg = this.config;
    const apiIds = new Set(this.#committed.apps.map((a) => a.appId));
    const out: AppView[] = [];
    for (const a of cfg.apps) {
      if (apiIds.has(a.id) || a.zoneId !== zoneId) continue;
      out.push({ zoneId, fromFile: true, app: { ...(a.spec as Record<string, unknown>), id: a.id, created_on: this.#fileLoadedOn, modified_on: this.#fileLoadedOn, ...this.#ips(a.id) } });
    }
    for (const s of this.#committed.apps) {
      if (s.zoneId !== zoneId) continue;
      out.push({ zoneId, fromFile: false, app: { ...appView(s, this.#appSpecs.get(s.appId)), ...this.#ips(s.appId) } });
    }
    return out;
  }

  app(zoneId: string, appId: string): AppView | undefined {
    return this.apps(zoneId).find((v) => v.app.id === appId);
  }

  /** POST: a new app in the zone, with a fresh id. */
  create(zoneId: string, body: unknown, actor: Actor): Promise<ApiApp> {
    return this.#serial(async () => {
      const now = this.#d.now().toISOString();
      const spec = bodyObject(body, 'a Spectrum app', READ_ONLY_APP_FIELDS);
      return this.#putApp({ zoneId, appId: this.#d.newAppId?.() ?? randomBytes(16).toString('hex'), spec, createdOn: now, modifiedOn: now }, undefined, actor);
    });
  }

  /** PUT: replaces the whole app. */
  replace(zoneId: string, appId: string, body: unknown, actor: Actor): Promise<ApiApp> {
    return this.#serial(async () => {
      const old = this.#writableApp(zoneId, appId);
      const spec = bodyObject(body, 'a Spectrum app', READ_ONLY_APP_FIELDS);
      const before = this.app(zoneId, appId)?.app;
      return this.#putApp({ zoneId, appId, spec, createdOn: old.createdOn, modifiedOn: this.#d.now().toISOString() }, before, actor);
    });
  }

  delete(zoneId: string, appId: string, actor: Actor): Promise<void> {
    return this.#serial(async () => {
      this.#writableApp(zoneId, appId);
      const before = this.app(zoneId, appId)?.app;
      await this.#write({
        next: { ...this.#committed, apps: this.#committed.apps.filter((a) => a.appId !== appId) },
        focus: undefined,
        actor,
        at: this.#d.now().toISOString(),
        store: () => {
          this.#d.store.deleteApp(appId);
          return [{ zoneId, action: 'delete', resourceType: 'spectrum_app', resourceId: appId, before, after: null }];
        },
        result: () => undefined,
      });
    });
  }

  /**
   * Refract's extension: moves the app's DNS name (and so every app sharing it) to fresh edge IPs; the old ones
   * stop accepting, drain, and stay held until the drain deadline. File apps too: their addresses live in the
   * database like the API's. 400 E_EDGE_IP_NOT_ROTATABLE (static app, no pools) or E_EDGE_POOL_EXHAUSTED.
   */
  rotateEdgeIps(zoneId: string, appId: string, actor: Actor): Promise<ApiApp> {
    return this.#serial(async () => {
      const before = this.app(zoneId, appId)?.app;
      if (before === undefined) throw new ApiWriteError(404, [configIssue('', 'E_API_APP_NOT_FOUND', `no app ${appId} in zone ${zoneId}`)]);
      const running = this.#runningApps.get(appId);
      if (running === undefined || running.edgeIps.type !== 'dynamic') {
        throw new ApiWriteError(400, [configIssue('', 'E_EDGE_IP_NOT_ROTATABLE', `app ${appId} has static edge IPs; change them by editing edge_ips.ips`)]);
      }
      return this.#write({
        next: this.#committed,
        focus: undefined,
        rotate: running.dns.name,
        actor,
        at: this.#d.now().toISOString(),
        store: (config) => {
          const app = config.apps.find((a) => a.id === appId);
          const after = { ...before, ...(app === undefined ? {} : { ips: appBindAddresses(config, app) }) };
          return [{ zoneId, action: 'rotate', resourceType: 'spectrum_app', resourceId: appId, before, after }];
        },
        result: () => {
          const v = this.app(zoneId, appId);
          if (v === undefined) throw new Error('ConfigSource: a rotated app is missing');
          return v.app;
        },
      });
    });
  }

  // ── IP Access rules ─────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The rules that apply to a zone's apps: the file's node-wide rules, then the file's rules of the zone, in file
   * order, then the zone's API rules in the order they were created.
   */
  rules(zoneId: string): RuleView[] {
    const cfg = this.config;
    const zone = this.zones.find((z) => z.id === zoneId);
    if (zone === undefined) return [];
    const apiIds = new Set(this.#committed.rules.map((r) => r.ruleId));
    const out: RuleView[] = [];
    const nodeScope: RuleScope = { id: cfg.node.id, type: 'node' };
    const zoneScope: RuleScope = { id: zone.id, name: zone.name, type: 'zone' };
    for (const r of cfg.accessRules) {
      if (apiIds.has(r.id) || (r.zone !== undefined && r.zone !== zoneId)) continue;
      out.push({ zoneId, fromFile: true, rule: ruleView(r, r.zone === undefined ? nodeScope : zoneScope, this.#fileLoadedOn, this.#fileLoadedOn) });
    }
    for (const s of this.#committed.rules) {
      if (s.zoneId !== zoneId) continue;
      const running = this.#runningRules.get(s.ruleId);
      if (running !== undefined) out.push({ zoneId, fromFile: false, rule: ruleView(running, zoneScope, s.createdOn, s.modifiedOn) });
    }
    return out;
  }

  rule(zoneId: string, ruleId: string): RuleView | undefined {
    return this.rules(zoneId).find((v) => v.rule.id === ruleId);
  }

  /** POST: a new rule of the zone, with a fresh id. */
  createRule(zoneId: string, body: unknown, actor: Actor): Promise<ApiRule> {
    return this.#serial(async () => {
      const now = this.#d.now().toISOString();
      const rule = bodyObject(body, 'an IP Access rule {mode, configuration, notes}', READ_ONLY_RULE_FIELDS);
      return this.#putRule({ zoneId, ruleId: randomBytes(16).toString('hex'), rule, createdOn: now, modifiedOn: now }, undefined, actor);
    });
  }

  /**
   * PATCH: changes a rule's mode and notes (what Cloudflare lets one edit). `configuration` may be sent, as the SDK
   * does, but must equal the rule's own (after normalisation); the whole rule is validated again.
   */
  editRule(zoneId: string, ruleId: string, body: unknown, actor: Actor): Promise<ApiRule> {
    return this.#serial(async () => {
      const old = this.#writableRule(zoneId, ruleId);
      const patch = bodyObject(body, 'an IP Access rule {mode, notes}', READ_ONLY_RULE_FIELDS);
      const oldConf = old.rule['configuration'] as { target: string; value: string };
      if (patch['configuration'] != null) {
        const r = validateAccessRule({ mode: 'block', configuration: patch['configuration'] });
        if (!r.ok) throw new ApiWriteError(400, r.issues);
        const c = r.rule.configuration;
        if (c.target !== oldConf.target || c.value !== oldConf.value) {
          throw new ApiWriteError(400, [
            configIssue('/configuration', 'E_API_RULE_CONFIGURATION', `a rule's configuration cannot change (${oldConf.target} ${oldConf.value}); delete the rule and create a new one`),
          ]);
        }
      }
      const rule: Record<string, unknown> = { ...old.rule };
      for (const k of ['mode', 'notes']) if (Object.hasOwn(patch, k)) rule[k] = patch[k];
      return this.#putRule({ ...old, rule, modifiedOn: this.#d.now().toISOString() }, this.rule(zoneId, ruleId)?.rule, actor);
    });
  }

  deleteRule(zoneId: string, ruleId: string, actor: Actor): Promise<void> {
    return this.#serial(async () => {
      this.#writableRule(zoneId, ruleId);
      const before = this.rule(zoneId, ruleId)?.rule;
      await this.#write({
        next: { ...this.#committed, rules: this.#committed.rules.filter((r) => r.ruleId !== ruleId) },
        focus: undefined,
        actor,
        at: this.#d.now().toISOString(),
        store: () => {
          this.#d.store.deleteRule(ruleId);
          return [{ zoneId, action: 'delete', resourceType: 'access_rule', resourceId: ruleId, before, after: null }];
        },
        result: () => undefined,
      });
    });
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────────────────────

  #serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(f);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #stored(): ApiData {
    return { zones: this.#d.store.zones(), apps: this.#d.store.apps(), rules: this.#d.store.rules() };
  }

  /** `{ips}`: the addresses a running app listens on, when edge.pools are configured (docs/api.md); else nothing. */
  #ips(appId: string): { ips?: readonly string[] } {
    const app = this.#runningApps.get(appId);
    if (app === undefined || this.#config === undefined || !poolsConfigured(this.#config)) return {};
    return { ips: appBindAddresses(this.#config, app) };
  }

  /** Writes the allocation of an applied config to the database when it changed (in the open write, if any). */
  #storeEdgeIps(config: RefractConfig): void {
    const next = config.edgeIps ?? EMPTY_EDGE_IPS;
    if (JSON.stringify(next) !== JSON.stringify(this.#edgeIps)) this.#d.store.putEdgeIps(next);
  }

  #adopt(config: RefractConfig, fileRaw: unknown, result: ApplyResult, notify = false): void {
    this.#committed = this.#stored();
    this.#config = config;
    this.#edgeIps = config.edgeIps ?? EMPTY_EDGE_IPS;
    this.#runningApps = new Map(config.apps.map((a) => [a.id, a] as const));
    this.#appSpecs = new Map(config.apps.map((a) => [a.id, a.spec] as const));
    this.#runningRules = new Map(config.accessRules.map((r) => [r.id, r] as const));
    this.#fileRaw = fileRaw;
    if (notify) this.#d.onApplied?.(config, result);
  }

  /** The stored API app, or the reason it cannot be written (404 unknown, 400 from the file). */
  #writableApp(zoneId: string, appId: string): StoredApp {
    const stored = this.#committed.apps.find((a) => a.appId === appId);
    if (stored !== undefined && stored.zoneId === zoneId) return stored;
    if (this.app(zoneId, appId)?.fromFile === true) {
      throw new ApiWriteError(400, [configIssue('', 'E_API_FILE_APP', `app ${appId} is defined in ${this.#d.file} and is read-only through the API; edit that file`)]);
    }
    throw new ApiWriteError(404, [configIssue('', 'E_API_APP_NOT_FOUND', `no app ${appId} in zone ${zoneId}`)]);
  }

  /** The stored API rule, or the reason it cannot be written (404 unknown, 400 from the file). */
  #writableRule(zoneId: string, ruleId: string): StoredRule {
    const stored = this.#committed.rules.find((r) => r.ruleId === ruleId);
    if (stored !== undefined && stored.zoneId === zoneId) return stored;
    if (this.rule(zoneId, ruleId)?.fromFile === true) {
      throw new ApiWriteError(400, [configIssue('', 'E_API_FILE_RULE', `rule ${ruleId} is defined in ${this.#d.file} and is read-only through the API; edit that file`)]);
    }
    throw new ApiWriteError(404, [configIssue('', 'E_API_RULE_NOT_FOUND', `no IP Access rule ${ruleId} in zone ${zoneId}`)]);
  }

  /** Stores the app (new, or replacing `before`) as the validated configuration normalised it. */
  #putApp(app: StoredApp, before: ApiApp | undefined, actor: Actor): Promise<ApiApp> {
    const apps = this.#committed.apps.filter((a) => a.appId !== app.appId);
    const index = apps.push(app) - 1;
    let spec: Record<string, unknown> = app.spec;
    return this.#write({
      next: { ...this.#committed, apps },
      focus: `/apps/${listLength(this.#fileRaw, 'apps') + index}`,
      actor,
      at: app.modifiedOn,
      // Spectrum: an app's DNS type cannot change on update (Cloudflare's 11004); delete and create it instead.
      check: (config) => {
        const was = (before?.['dns'] as { type?: unknown } | undefined)?.type;
        const now = config.apps.find((a) => a.id === app.appId)?.dns.type;
        if (was !== undefined && now !== undefined && was !== now) {
          throw new ApiWriteError(400, [
            { pointer: '/dns/type', code: 'E_DNS_TYPE_MISMATCH', cfCode: undefined, message: `dns.type cannot change on update (${String(was)} → ${now}); delete the app and create it again` },
          ]);
        }
      },
      store: (config) => {
        const { id: _id, ...normalised } = (config.apps.find((a) => a.id === app.appId)?.spec ?? app.spec) as Record<string, unknown>;
        spec = normalised;
        this.#d.store.putApp({ ...app, spec });
        const after = appView({ ...app, spec }, undefined);
        return [{ zoneId: app.zoneId, action: before === undefined ? 'create' : 'update', resourceType: 'spectrum_app', resourceId: app.appId, before: before ?? null, after }];
      },
      result: () => ({ ...appView({ ...app, spec }, this.#appSpecs.get(app.appId)), ...this.#ips(app.appId) }),
    });
  }

  /** Stores the rule (new, or replacing `before`) as the validated configuration normalised it. */
  #putRule(rule: StoredRule, before: ApiRule | undefined, actor: Actor): Promise<ApiRule> {
    const rules = this.#committed.rules.filter((r) => r.ruleId !== rule.ruleId);
    const index = rules.push(rule) - 1;
    return this.#write({
      next: { ...this.#committed, rules },
      focus: `/access_rules/${listLength(this.#fileRaw, 'access_rules') + index}`,
      actor,
      at: rule.modifiedOn,
      store: (config) => {
        const running = config.accessRules.find((r) => r.id === rule.ruleId);
        const zone = config.zones?.find((z) => z.id === rule.zoneId);
        if (running === undefined || zone === undefined) throw new Error('ConfigSource: a validated rule or its zone is missing from the configuration');
        this.#d.store.putRule({ ...rule, rule: storedRule(running) });
        const after = ruleView(running, { id: zone.id, name: zone.name, type: 'zone' }, rule.createdOn, rule.modifiedOn);
        return [{ zoneId: rule.zoneId, action: before === undefined ? 'create' : 'update', resourceType: 'access_rule', resourceId: rule.ruleId, before: before ?? null, after }];
      },
      result: () => {
        const v = this.rule(rule.zoneId, rule.ruleId);
        if (v === undefined) throw new Error('ConfigSource: a committed rule is missing');
        return v.rule;
      },
    });
  }

  /** Steps 1-4 of the module comment. */
  async #write<T>(change: Change<T>): Promise<T> {
    const merged = this.#merge(this.#fileRaw, change.next, change.rotate);
    if (!merged.ok) throw new ApiWriteError(400, bodyIssues(merged.issues, change.focus));
    change.check?.(merged.config);
    const store = this.#d.store;
    store.begin();
    try {
      for (const r of change.store(merged.config)) {
        store.addAudit({ id: randomUUID(), when: change.at, actor: change.actor, metadata: undefined, ...r, before: r.before ?? null, after: r.after ?? null });
      }
      this.#storeEdgeIps(merged.config);
      let result: ApplyResult;
      try {
        result = await this.#d.edge.apply(merged.config);
      } catch (e) {
        throw applyError(e);
      }
      try {
        store.commit();
      } catch (e) {
        // The edge runs the change but the database refused it (disk full, I/O error): put the edge back as the
        // store is, so nothing is half-applied; the caller gets the error (500).
        await this.#d.edge.apply(this.config).catch(() => undefined);
        throw e;
      }
      this.#adopt(merged.config, this.#fileRaw, result, true);
      this.#record('api', { result });
      return change.result();
    } finally {
      store.rollback(); // a no-op after the commit
    }
  }

  /**
   * The file object with the API's objects added: API apps appended to `apps`, API rules to `access_rules`, each
   * with its `zone`; file apps that name no zone get the file zone their dns.name falls in. Validated as one config.
   */
  #merge(fileRaw: unknown, data: ApiData, rotate?: string): ConfigResult {
    const base = isRecord(fileRaw) ? fileRaw : {};
    const fileZones = parseZones(base['zones']).zones;
    const zoneRefIssues: ConfigIssue[] = [];
    const raw: Record<string, unknown> = { ...base };
    const fileZonesRaw = (base['zones'] === undefined ? [] : base['zones']) as unknown;
    if (Array.isArray(fileZonesRaw) && (fileZonesRaw.length > 0 || data.zones.length > 0)) {
      // An API zone's id was derived from its name at creation; it is pinned so a later change of derivation cannot move it.
      raw['zones'] = [...fileZonesRaw, ...data.zones.map((z) => (z.zoneId === '' ? { name: z.name } : { id: z.zoneId, name: z.name }))];
    }
    const fileApps = (base['apps'] === undefined ? [] : base['apps']) as unknown;
    const fileRules = (base['access_rules'] === undefined ? [] : base['access_rules']) as unknown;
    if (Array.isArray(fileApps)) {
      raw['apps'] = [
        ...fileApps.map((a: unknown, i) => pinFileApp(a, fileZones, `/apps/${i}`, zoneRefIssues)),
        ...data.apps.map((a) => ({ ...a.spec, id: a.appId, zone: a.zoneId })),
      ];
    }
    if (Array.isArray(fileRules)) {
      fileRules.forEach((r: unknown, i) => checkFileZoneRef(r, fileZones, `/access_rules/${i}`, zoneRefIssues));
      const all = [...fileRules, ...data.rules.map((r) => ({ ...r.rule, id: r.ruleId, zone: r.zoneId }))];
      if (all.length > 0 || base['access_rules'] !== undefined) raw['access_rules'] = all;
    }
    const r = validateConfig(raw);
    if (zoneRefIssues.length > 0) return { ok: false, issues: [...zoneRefIssues, ...(r.ok ? [] : r.issues)], warnings: r.warnings };
    if (!r.ok) return r;
    // Edge IPs from the pools, keeping the committed allocation (src/model/edge-ips.ts); nothing when no pool is set.
    const allocated = allocateEdgeIps(r.config, this.#edgeIps, this.#d.now().getTime(), rotate);
    if (!allocated.ok) return { ok: false, issues: [...allocated.issues], warnings: r.warnings };
    for (const m of allocated.moved) this.#d.onEdgeIpMoved?.(m);
    return { ...r, config: allocated.config };
  }
}

/** A rejected apply's first code and its message. */
function describeFailure(e: unknown): { code: string; message: string } {
  if (e instanceof ApiWriteError) return { code: e.issues[0]?.code ?? 'E_INTERNAL', message: e.message };
  if (e instanceof RefractError) return { code: e.code, message: e.message };
  return { code: 'E_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

function zoneView(z: Zone, createdOn: string): ApiZone {
  return { id: z.id, name: z.name, status: 'active', paused: false, type: 'full', created_on: createdOn, modified_on: createdOn };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function listLength(raw: unknown, key: string): number {
  const v = isRecord(raw) ? raw[key] : undefined;
  return Array.isArray(v) ? v.length : 0;
}

/**
 * A file app or rule may name only a zone of the file's `zones` (the file must stand on its own: `refract validate`
 * and a restart read it without the API's zones). A name that is no file zone is reported here when it would
 * otherwise resolve to an API zone; an unknown name is left to the validator.
 */
function checkFileZoneRef(item: unknown, fileZones: readonly Zone[], pointer: string, issues: ConfigIssue[]): void {
  const ref = isRecord(item) ? item['zone'] : undefined;
  if (typeof ref !== 'string' || ref === '' || findZone(ref, fileZones) !== undefined) return;
  issues.push(configIssue(`${pointer}/zone`, 'E_CONFIG_ZONE', `zone "${ref}" is not one of the file's zones; a file app or rule names only zones listed in the file`));
}

/** A file app with its zone made explicit (the file zone its dns.name falls in) when it names none. */
function pinFileApp(app: unknown, fileZones: readonly Zone[], pointer: string, issues: ConfigIssue[]): unknown {
  if (!isRecord(app)) return app;
  if (app['zone'] != null) {
    checkFileZoneRef(app, fileZones, pointer, issues);
    return app;
  }
  const dns = app['dns'];
  const name = isRecord(dns) ? dns['name'] : undefined;
  const zone = typeof name === 'string' ? zoneOfName(name, fileZones) : undefined;
  return zone === undefined ? app : { ...app, zone: zone.id };
}

/** The request body as an object without the fields the API sets itself. */
function bodyObject(body: unknown, what: string, readOnly: readonly string[]): Record<string, unknown> {
  if (!isRecord(body)) throw new ApiWriteError(400, [configIssue('', 'E_API_BAD_REQUEST', `the body must be a JSON object (${what})`)]);
  return Object.fromEntries(Object.entries(body).filter(([k]) => !readOnly.includes(k)));
}

/**
 * Issues of the merged config, as seen from the request: pointers into the written object (`/apps/N/x` → `/x`) lose
 * their prefix; issues elsewhere (another app it overlaps) keep theirs.
 */
function bodyIssues(issues: readonly ConfigIssue[], focus: string | undefined): ConfigIssue[] {
  if (focus === undefined) return [...issues];
  return issues.map((i) => (i.pointer === focus || i.pointer.startsWith(`${focus}/`) ? { ...i, pointer: i.pointer.slice(focus.length) } : i));
}

/** An apply failure as the API reports it: its code (400; a bug is 500), with the address and port when bound. */
function applyError(e: unknown): ApiWriteError {
  const code = e instanceof RefractError ? e.code : 'E_INTERNAL';
  const message = e instanceof Error ? e.message : String(e);
  const details = e instanceof RefractError && e.details !== undefined && typeof e.details['port'] === 'number' ? ` (${String(e.details['address'])}:${e.details['port']})` : '';
  return new ApiWriteError(code === 'E_INTERNAL' ? 500 : 400, [configIssue('', code, message + details)]);
}

/** A stored app as the API returns it: the normalised object when it is running, else what was stored. */
function appView(s: StoredApp, running: Readonly<Record<string, unknown>> | undefined): ApiApp {
  const spec = running ?? s.spec;
  return { ...spec, id: s.appId, created_on: s.createdOn, modified_on: s.modifiedOn };
}

/** What the store keeps of a validated rule: the rule without its id and zone. */
function storedRule(r: AccessRule): Record<string, unknown> {
  return { mode: r.mode, configuration: { target: r.configuration.target, value: r.configuration.value }, notes: r.notes };
}

function ruleView(r: AccessRule, scope: RuleScope, createdOn: string, modifiedOn: string): ApiRule {
  const cf = toCloudflareRule(r);
  return { id: r.id, mode: cf.mode, configuration: cf.configuration, notes: r.notes, allowed_modes: RULE_MODES, scope, created_on: createdOn, modified_on: modifiedOn };
}
