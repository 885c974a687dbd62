/**
 * The running configuration = the config file + the apps created through the API. This is the one place the two
 * are merged, for API writes and for file reloads alike, and the one place either is applied to the edge.
 *
 * All changes run one at a time (a queue). An API write:
 *   1. opens its database transaction and makes the change;
 *   2. merges the file with every API app (the changed one included) and validates the whole result with
 *      `validateConfig`, the validator `refract validate` uses;
 *   3. applies it with `EdgeNode.apply` (all-or-nothing: a port in use leaves the edge as it was);
 *   4. commits only if 2 and 3 succeeded, otherwise rolls back and reports the problem with its code (a commit that
 *      fails after 3 gives the edge back the previous configuration first).
 * A file reload merges the new file with the stored API apps the same way; API apps survive reloads.
 */
import { randomBytes } from 'node:crypto';
import { concatMap, from, type Observable } from 'rxjs';
import { validateConfig } from '../model/config.ts';
import { RefractError } from '../model/errors.ts';
import type { AppSpec, ConfigIssue, RefractConfig, Zone } from '../model/types.ts';
import type { ApplyResult, EdgeNode, FollowResult } from '../edge/edge-node.ts';
import type { ApiStore, StoredApp } from './store.ts';

/** An app as the API returns it: the normalised object plus id, created_on, modified_on. */
export type ApiApp = Readonly<Record<string, unknown>> & { readonly id: string; readonly created_on: string; readonly modified_on: string };

export interface AppView {
  readonly zoneId: string;
  readonly app: ApiApp;
  /** From the config file (read-only through the API). */
  readonly fromFile: boolean;
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

const READ_ONLY_FIELDS = ['id', 'created_on', 'modified_on'];

export interface ConfigSourceDeps {
  readonly edge: EdgeNode;
  readonly store: ApiStore;
  /** The config file's name (named in the read-only error) and its parsed object (before validation). */
  readonly file: string;
  readonly fileRaw: unknown;
  /** Wall clock for created_on / modified_on. */
  readonly now: () => Date;
  /** A new app's id (32 hex characters); default 16 random bytes. The simulator passes a seeded one (replays stay identical). */
  readonly newAppId?: () => string;
  /** Called after every successful API write with the new running configuration (not for start or file reloads). */
  readonly onApplied?: (config: RefractConfig, result: ApplyResult) => void;
}

export class ConfigSource {
  readonly #d: ConfigSourceDeps;
  #fileRaw: unknown;
  #fileLoadedOn: string;
  #config: RefractConfig | undefined;
  #fileAppIds = new Set<string>();
  /** The API apps as last committed (reads never see a write in flight). */
  #committed: StoredApp[] = [];
  #queue: Promise<unknown> = Promise.resolve();

  constructor(deps: ConfigSourceDeps) {
    this.#d = deps;
    this.#fileRaw = deps.fileRaw;
    this.#fileLoadedOn = deps.now().toISOString();
  }

  /** The running configuration (after `start`). */
  get config(): RefractConfig {
    if (this.#config === undefined) throw new RefractError('E_INTERNAL', { message: 'ConfigSource: not started' });
    return this.#config;
  }

  get zones(): readonly Zone[] {
    return this.config.zones ?? [];
  }

  /** Merges the file with the stored apps, validates and applies. Rejects with the issues or the apply error. */
  start(): Promise<ApplyResult> {
    return this.#serial(async () => {
      const merged = this.#merge(this.#fileRaw, this.#d.store.apps());
      if (!merged.ok) throw new ApiWriteError(400, merged.issues);
      const result = await this.#d.edge.apply(merged.config);
      this.#adopt(merged.config, this.#fileRaw, result);
      return result;
    });
  }

  /** Like `EdgeNode.follow`, for file reloads: each new file object is merged with the API apps and applied in turn. */
  follow(fileRaws$: Observable<unknown>): Observable<FollowResult> {
    return fileRaws$.pipe(
      concatMap((raw) =>
        from(
          this.#serial(async (): Promise<FollowResult> => {
            const merged = this.#merge(raw, this.#d.store.apps());
            if (!merged.ok) return { ok: false, config: this.config, error: new ApiWriteError(400, merged.issues) };
            try {
              const result = await this.#d.edge.apply(merged.config);
              this.#fileLoadedOn = this.#d.now().toISOString();
              this.#adopt(merged.config, raw, result);
              return { ok: true, config: merged.config, result };
            } catch (error) {
              return { ok: false, config: this.config, error };
            }
          }),
        ),
      ),
    );
  }

  /** Every app of a zone, file apps first then API apps, unsorted. */
  apps(zoneId: string): AppView[] {
    const cfg = this.config;
    const out: AppView[] = [];
    for (const a of cfg.apps) {
      if (!this.#fileAppIds.has(a.id) || this.#zoneOfFileApp(a) !== zoneId) continue;
      out.push({ zoneId, fromFile: true, app: { ...(a.spec as Record<string, unknown>), id: a.id, created_on: this.#fileLoadedOn, modified_on: this.#fileLoadedOn } });
    }
    for (const s of this.#committed) {
      if (s.zoneId !== zoneId) continue;
      const running = cfg.apps.find((a) => a.id === s.appId);
      out.push({ zoneId, fromFile: false, app: view(s, running) });
    }
    return out;
  }

  app(zoneId: string, appId: string): AppView | undefined {
    return this.apps(zoneId).find((v) => v.app.id === appId);
  }

  /** POST: a new app in the zone, with a fresh id. */
  create(zoneId: string, body: unknown): Promise<ApiApp> {
    return this.#serial(async () => {
      const now = this.#d.now().toISOString();
      const appId = this.#d.newAppId?.() ?? randomBytes(16).toString('hex');
      return this.#write({ put: { zoneId, appId, spec: bodyObject(body), createdOn: now, modifiedOn: now } });
    });
  }

  /** PUT: replaces the whole app. */
  replace(zoneId: string, appId: string, body: unknown): Promise<ApiApp> {
    return this.#serial(async () => {
      const old = this.#writable(zoneId, appId);
      return this.#write({ put: { zoneId, appId, spec: bodyObject(body), createdOn: old.createdOn, modifiedOn: this.#d.now().toISOString() } });
    });
  }

  delete(zoneId: string, appId: string): Promise<void> {
    return this.#serial(async () => {
      this.#writable(zoneId, appId);
      await this.#write({ delete: appId });
    });
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────────────────────

  #serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(f);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #adopt(config: RefractConfig, fileRaw: unknown, result: ApplyResult, notify = false): void {
    this.#committed = this.#d.store.apps();
    const apiIds = new Set(this.#committed.map((a) => a.appId));
    this.#config = config;
    this.#fileRaw = fileRaw;
    this.#fileAppIds = new Set(config.apps.map((a) => a.id).filter((id) => !apiIds.has(id)));
    if (notify) this.#d.onApplied?.(config, result);
  }

  /** The stored API app, or the reason it cannot be written (404 unknown, 400 from the file). */
  #writable(zoneId: string, appId: string): StoredApp {
    const stored = this.#committed.find((a) => a.appId === appId);
    if (stored !== undefined && stored.zoneId === zoneId) return stored;
    const fileApp = this.config.apps.find((a) => a.id === appId && this.#fileAppIds.has(a.id));
    if (fileApp !== undefined && this.#zoneOfFileApp(fileApp) === zoneId) {
      throw new ApiWriteError(400, [issue('', 'E_API_FILE_APP', `app ${appId} is defined in ${this.#d.file} and is read-only through the API; edit that file`)]);
    }
    throw new ApiWriteError(404, [issue('', 'E_API_APP_NOT_FOUND', `no app ${appId} in zone ${zoneId}`)]);
  }

  async #write(change: { readonly put: StoredApp } | { readonly delete: string }): Promise<ApiApp> {
    // Validate the whole resulting config first (in memory), then store the normalised app and apply.
    const id = 'put' in change ? change.put.appId : change.delete;
    const apps = this.#committed.filter((a) => a.appId !== id);
    const index = 'put' in change ? apps.push(change.put) - 1 : -1;
    const merged = this.#merge(this.#fileRaw, apps);
    if (!merged.ok) throw new ApiWriteError(400, bodyIssues(merged.issues, this.#fileAppCount(), index));
    const running = merged.config.apps.find((a) => a.id === id);
    const store = this.#d.store;
    if ('put' in change) {
      const { id: _id, ...normalised } = (running?.spec ?? change.put.spec) as Record<string, unknown>;
      store.begin({ put: { ...change.put, spec: normalised } });
    } else {
      store.begin(change);
    }
    try {
      let result: ApplyResult;
      try {
        result = await this.#d.edge.apply(merged.config);
      } catch (e) {
        const code = e instanceof RefractError ? e.code : 'E_INTERNAL';
        const message = e instanceof Error ? e.message : String(e);
        const details = e instanceof RefractError && e.details !== undefined && typeof e.details['port'] === 'number' ? ` (${String(e.details['address'])}:${e.details['port']})` : '';
        throw new ApiWriteError(code === 'E_INTERNAL' ? 500 : 400, [issue('', code, message + details)]);
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
      if ('delete' in change) return { id, created_on: '', modified_on: '' };
      return view(store.app(id)!, running);
    } finally {
      store.rollback(); // a no-op after the commit
    }
  }

  #fileAppCount(): number {
    const apps = isRecord(this.#fileRaw) ? this.#fileRaw['apps'] : undefined;
    return Array.isArray(apps) ? apps.length : 0;
  }

  /** The file object with the API apps appended to `apps`, validated as one config. */
  #merge(fileRaw: unknown, apiApps: readonly StoredApp[]) {
    const base = isRecord(fileRaw) ? fileRaw : {};
    const fileApps = Array.isArray(base['apps']) ? (base['apps'] as unknown[]) : [];
    const raw = { ...base, apps: [...fileApps, ...apiApps.map((a) => ({ ...a.spec, id: a.appId }))] };
    return validateConfig(raw);
  }

  /**
   * The zone a file app belongs to: the zone whose name is its dns.name or a parent of it (the longest such name),
   * else the first zone.
   */
  #zoneOfFileApp(app: AppSpec): string | undefined {
    const zones = this.zones;
    const name = app.dns.name.toLowerCase().replace(/\.$/, '');
    let best: Zone | undefined;
    for (const z of zones) {
      if ((name === z.name || name.endsWith(`.${z.name}`)) && (best === undefined || z.name.length > best.name.length)) best = z;
    }
    return (best ?? zones[0])?.id;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function issue(pointer: string, code: ConfigIssue['code'], message: string): ConfigIssue {
  return { pointer, code, cfCode: undefined, message };
}

/** The request body as an app object without its read-only fields (id, created_on, modified_on). */
function bodyObject(body: unknown): Record<string, unknown> {
  if (!isRecord(body)) throw new ApiWriteError(400, [issue('', 'E_API_BAD_REQUEST', 'the body must be a JSON object (a Spectrum app)')]);
  return Object.fromEntries(Object.entries(body).filter(([k]) => !READ_ONLY_FIELDS.includes(k)));
}

/**
 * Issues of the merged config, as seen from the request: pointers into the written app (`/apps/N/x` → `/x`) lose
 * their prefix; issues elsewhere (another app it overlaps) keep theirs.
 */
function bodyIssues(issues: readonly ConfigIssue[], fileApps: number, apiIndex: number): ConfigIssue[] {
  const prefix = apiIndex < 0 ? undefined : `/apps/${fileApps + apiIndex}`;
  return issues.map((i) => (prefix !== undefined && (i.pointer === prefix || i.pointer.startsWith(`${prefix}/`)) ? { ...i, pointer: i.pointer.slice(prefix.length) } : i));
}

/** A stored app as the API returns it: the normalised object when it is running, else what was stored. */
function view(s: StoredApp, running: AppSpec | undefined): ApiApp {
  const spec = running !== undefined ? (running.spec as Record<string, unknown>) : s.spec;
  return { ...spec, id: s.appId, created_on: s.createdOn, modified_on: s.modifiedOn };
}
