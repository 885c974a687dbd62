/**
 * The management API's HTTP side (fastify): Cloudflare's routes under `/client/v4`, its envelope
 * `{success, errors, messages, result, result_info}` with `content-type: application/json`, page-number paging,
 * and auth on every request (a bearer token, or a global key's X-Auth-Email + X-Auth-Key), with a permission and
 * zone check per route. docs/api.md is the reference.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ERRORS, type ErrorCode, type ErrorSpec } from '../model/errors.ts';
import type { ConfigIssue } from '../model/types.ts';
import { current, parseAnalyticsQuery, query as analyticsQuery } from './analytics-query.ts';
import type { AnalyticsStore } from './analytics-store.ts';
import { auditView, parseAuditFilters } from './audit.ts';
import { ApiWriteError, type Actor, type ApiApp, type ConfigSource } from './config-source.ts';
import { openApiDocument, routeDoc, type RouteKey } from './openapi.ts';
import { parseRuleQuery, RULE_PAGE_SIZES, selectRules } from './rule-list.ts';
import type { EdgeMetrics } from './metrics.ts';
import type { ApiStore } from './store.ts';
import { authenticateKey, authenticateToken, bearerToken, type Permission, type Principal } from './tokens.ts';
import { isPublicRoute, registerDashboard, type BundleResult } from './dashboard.ts';
import { EventStreamClient, matches, type EventFilter } from './event-stream.ts';
import { engineStates, machineGraphs } from '../edge/engine-view.ts';
import type { NodeHealth, OutputStats, RecentError } from '../model/engine-view.ts';
import type { SpectrumEvent } from '../streams/events.ts';

/** How many recent errors the health endpoint keeps. */
const RECENT_ERRORS = 20;

export const API_PREFIX = '/client/v4';
/** The number sent in `errors[].code` for a code without a Cloudflare number. */
export const GENERIC_API_NUMBER = 1000;

const ORDERS = ['protocol', 'app_id', 'created_on', 'modified_on', 'dns'] as const;
type Order = (typeof ORDERS)[number];

interface ApiErrorItem {
  code: number;
  message: string;
  refract_code: ErrorCode;
  source?: { pointer: string };
}

function errorItem(i: ConfigIssue): ApiErrorItem {
  const spec: ErrorSpec = ERRORS[i.code];
  return { code: i.cfCode ?? spec.cfCode ?? GENERIC_API_NUMBER, message: i.message, refract_code: i.code, ...(i.pointer !== '' ? { source: { pointer: i.pointer } } : {}) };
}

function fail(reply: FastifyReply, status: number, issues: readonly ConfigIssue[]): FastifyReply {
  // 409 and 5xx are retried by Cloudflare's SDKs; client mistakes are 400/404 and say not to retry.
  // A 429 is retried after its Retry-After.
  if (status < 500 && status !== 429) void reply.header('x-should-retry', 'false');
  return reply.code(status).type('application/json').send({ success: false, errors: issues.map(errorItem), messages: [], result: null });
}

function problem(code: ErrorCode, message?: string): ConfigIssue {
  return { pointer: '', code, cfCode: undefined, message: message ?? ERRORS[code].message };
}

function ok(reply: FastifyReply, result: unknown, resultInfo?: unknown): FastifyReply {
  return reply
    .code(200)
    .type('application/json')
    .send({ success: true, errors: [], messages: [], result, ...(resultInfo === undefined ? {} : { result_info: resultInfo }) });
}

interface Paging {
  page: number;
  perPage: number;
}

/** Page sizes of the apps list (and zones); the access-rules list takes larger pages (`RULE_PAGE_SIZES`). */
const PAGE_SIZES = { perPage: 20, maxPerPage: 100 };

/** `page` (≥ 1, default 1) and `per_page` (1 to the maximum); an issue when out of range or not an integer. */
function paging(q: Record<string, unknown>, sizes: { perPage: number; maxPerPage: number } = PAGE_SIZES): Paging | ConfigIssue {
  const int = (name: string, dflt: number, min: number, max: number): number | ConfigIssue => {
    const v = q[name];
    if (v === undefined || v === '') return dflt;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      return problem('E_API_BAD_REQUEST', `${name} must be an integer from ${min}${max === Number.MAX_SAFE_INTEGER ? '' : ` to ${max}`}, not ${JSON.stringify(v)}`);
    }
    return n;
  };
  const page = int('page', 1, 1, Number.MAX_SAFE_INTEGER);
  if (typeof page !== 'number') return page;
  const perPage = int('per_page', sizes.perPage, 1, sizes.maxPerPage);
  if (typeof perPage !== 'number') return perPage;
  return { page, perPage };
}

function paged<T>(reply: FastifyReply, items: readonly T[], p: Paging): FastifyReply {
  const start = (p.page - 1) * p.perPage;
  const result = items.slice(start, start + p.perPage);
  return ok(reply, result, { page: p.page, per_page: p.perPage, count: result.length, total_count: items.length, total_pages: Math.ceil(items.length / p.perPage) });
}

function sortKey(app: ApiApp, order: Order): string {
  switch (order) {
    case 'protocol':
      return String(app['protocol']);
    case 'app_id':
      return app.id;
    case 'created_on':
      return app.created_on;
    case 'modified_on':
      return app.modified_on;
    case 'dns':
      return String((app['dns'] as { name?: unknown } | undefined)?.name ?? '');
  }
}

export interface ApiServerDeps {
  readonly source: ConfigSource;
  readonly store: ApiStore;
  /** The access log: one info line per request (`event: "api.request"`); none when undefined. */
  readonly log?: Logger | undefined;
  /** The node's line outputs by name (stderr, stdout, events_file), for the health endpoint's `logs`. */
  readonly outputs?: (() => Readonly<Record<string, OutputStats>>) | undefined;
  /** Requests per token or key per fixed window; default 1,200 per 300 s. */
  readonly rateLimit?: { readonly requests: number; readonly windowSec: number } | undefined;
  /** The clock for the rate limit, monotonic ms (the CLI passes the Clock port's `now`; src/api reads no wall time). */
  readonly nowMs: () => number;
  /**
   * The analytics store the analytics endpoints read, and the wall clock (epoch ms) their default times come from;
   * undefined: those endpoints answer 404 E_API_ANALYTICS_OFF.
   */
  readonly analytics?: { readonly store: AnalyticsStore; readonly epochMs: () => number } | undefined;
  /** Refract's version, for the OpenAPI document's `info.version`. */
  readonly version?: string | undefined;
  /** The node's Prometheus metrics (`metrics:`): served at GET /metrics to tokens with analytics:read, and fed one count per request. */
  readonly metrics?: EdgeMetrics | undefined;
  /** Serve the dashboard under /dashboard/ (api.dashboard; default true). */
  readonly dashboard?: boolean | undefined;
  /** The dashboard bundle (tests pass a failing one); default: built once per process from src/dashboard. */
  readonly dashboardBundle?: (() => Promise<BundleResult>) | undefined;
}

/** The metrics route on the API listener (outside /client/v4: where scrapers look). */
export const METRICS_PATH = '/metrics';

/** The OpenAPI document's route. */
export const OPENAPI_PATH = `${API_PREFIX}/openapi.json`;

/** The response header carrying each request's id (like Cloudflare's `cf-ray`); the access log line has it too. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Builds the server (not listening yet: call `listen({host, port})`). */
export function createApiServer(deps: ApiServerDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1 << 20, requestIdHeader: false, genReqId: () => randomBytes(8).toString('hex') });
  const { source, store, log } = deps;

  // Every route, as registered: the OpenAPI document lists exactly these, and an undocumented one fails here.
  const routes: RouteKey[] = [];
  app.addHook('onRoute', (r) => {
    // The dashboard's static pages (src/api/dashboard.ts) are not API routes: docs/dashboard.md has them.
    if ((r.config as { refractPublic?: boolean } | undefined)?.refractPublic === true) return;
    for (const method of [r.method].flat()) {
      if (method === 'HEAD') continue;
      routeDoc({ method, url: r.url });
      routes.push({ method, url: r.url });
    }
  });
  app.addHook('onRequest', async (req, reply) => {
    void reply.header(REQUEST_ID_HEADER, req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    deps.metrics?.recordApiRequest(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode);
    log?.info(
      {
        event: 'api.request',
        request_id: req.id,
        method: req.method,
        route: req.routeOptions.url ?? null,
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 10) / 10,
        token_id: principals.get(req)?.id ?? null,
      },
      'API request',
    );
  });

  const principals = new WeakMap<FastifyRequest, Principal>();
  const limit = deps.rateLimit ?? { requests: 1200, windowSec: 300 };
  const nowMs = deps.nowMs;
  /** Fixed windows per token or key id, from its first request of the window. */
  const windows = new Map<string, { start: number; count: number }>();
  const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
  app.addHook('onRequest', async (req, reply) => {
    if (isPublicRoute(req)) return;
    const token = bearerToken(req.headers.authorization);
    const email = header(req.headers['x-auth-email']);
    const key = header(req.headers['x-auth-key']);
    // A bearer token wins when both schemes are sent (the SDK sends every header it is configured with).
    const who = token !== undefined ? authenticateToken(store, token) : email !== undefined && key !== undefined ? authenticateKey(store, email, key) : undefined;
    if (who === undefined) return fail(reply, 401, [problem('E_API_AUTH')]);
    principals.set(req, who);
    const t = nowMs();
    let w = windows.get(who.id);
    if (w === undefined || t >= w.start + limit.windowSec * 1000) windows.set(who.id, (w = { start: t, count: 0 }));
    w.count++;
    if (w.count > limit.requests) {
      void reply.header('retry-after', String(Math.max(1, Math.ceil((w.start + limit.windowSec * 1000 - t) / 1000))));
      return fail(reply, 429, [problem('E_API_RATE_LIMITED', `More than ${limit.requests} requests per ${limit.windowSec} seconds reached with this token. Please wait and consider throttling your request speed`)]);
    }
  });

  /** The token or key of an authenticated request, as the audit log records it. */
  const actor = (req: FastifyRequest): Actor => {
    const who = principals.get(req);
    if (who === undefined) throw new Error('API: a route ran without an authenticated principal');
    return { id: who.id, name: who.name, kind: who.kind, email: who.email };
  };

  /** Whether the request's token holds `perm` (undefined: any permission) and `zoneId`; else answers 403. */
  const allowed = (req: FastifyRequest, reply: FastifyReply, perm: Permission | undefined, zoneId?: string): boolean => {
    const who = principals.get(req);
    if (who === undefined) return false;
    if (who.permissions !== undefined && (perm === undefined ? who.permissions.length === 0 : !who.permissions.includes(perm))) {
      void fail(reply, 403, [problem('E_API_FORBIDDEN', `this token lacks the permission ${perm ?? 'any'}`)]);
      return false;
    }
    if (zoneId !== undefined && who.zones !== undefined && !who.zones.includes(zoneId)) {
      void fail(reply, 403, [problem('E_API_FORBIDDEN', `this token may not use zone ${zoneId}`)]);
      return false;
    }
    return true;
  };

  app.setNotFoundHandler((req, reply) => fail(reply, 404, [problem('E_API_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0] ?? ''}`)]));
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    if (err instanceof ApiWriteError) return fail(reply, err.status, err.issues);
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) return fail(reply, 400, [problem('E_API_BAD_REQUEST', err.message)]);
    return fail(reply, 500, [problem('E_INTERNAL')]);
  });

  const zone = (id: string) => source.zones.find((z) => z.id === id);
  const noZone = (reply: FastifyReply, id: string) => fail(reply, 404, [problem('E_API_ZONE_NOT_FOUND', `no zone ${id}`)]);

  let openapi: string | undefined;
  app.get(OPENAPI_PATH, async (_req, reply) => {
    openapi ??= JSON.stringify(openApiDocument(routes, deps.version ?? '0.0.0'));
    return reply.code(200).type('application/json').send(openapi);
  });

  // Prometheus text, not Cloudflare's envelope (errors keep the envelope). analytics:read: the same figures the
  // analytics endpoints give, so a scraper's token needs no write permission.
  app.get(METRICS_PATH, async (req, reply) => {
    if (!allowed(req, reply, 'analytics:read')) return reply;
    if (deps.metrics === undefined) return fail(reply, 404, [problem('E_API_NOT_FOUND', 'metrics are off: add a metrics: section to the config')]);
    const body = await deps.metrics.text();
    return reply.code(200).type(deps.metrics.contentType).send(body);
  });

  app.get(`${API_PREFIX}/user/tokens/verify`, async (req, reply) => {
    return ok(reply, { id: principals.get(req)?.id, status: 'active' });
  });

  app.get(`${API_PREFIX}/zones`, async (req, reply) => {
    if (!allowed(req, reply, undefined)) return reply;
    const zones = principals.get(req)?.zones;
    const q = req.query as Record<string, unknown>;
    const p = paging(q);
    if (!('page' in p)) return fail(reply, 400, [p]);
    const name = typeof q['name'] === 'string' ? q['name'].toLowerCase().replace(/\.$/, '') : undefined;
    const views = source.zoneViews().map((v) => v.zone);
    return paged(reply, views.filter((z) => (name === undefined || z.name === name) && (zones === undefined || zones.includes(z.id))), p);
  });

  app.get<{ Params: { zone: string } }>(`${API_PREFIX}/zones/:zone`, async (req, reply) => {
    if (!allowed(req, reply, undefined, req.params.zone)) return reply;
    const v = source.zoneViews().find((x) => x.zone.id === req.params.zone);
    return v === undefined ? noZone(reply, req.params.zone) : ok(reply, v.zone);
  });

  /** Zone writes need `zones:edit` and a token that is not limited to some zones (a zone is account-wide). */
  const mayWriteZones = (req: FastifyRequest, reply: FastifyReply): boolean => {
    if (!allowed(req, reply, 'zones:edit')) return false;
    if (principals.get(req)?.zones !== undefined) {
      void fail(reply, 403, [problem('E_API_FORBIDDEN', 'a token limited to some zones cannot create or delete zones')]);
      return false;
    }
    return true;
  };

  app.post(`${API_PREFIX}/zones`, async (req, reply) => {
    if (!mayWriteZones(req, reply)) return reply;
    return ok(reply, await source.createZone(req.body, actor(req)));
  });

  app.delete<{ Params: { zone: string } }>(`${API_PREFIX}/zones/:zone`, async (req, reply) => {
    if (!mayWriteZones(req, reply)) return reply;
    await source.deleteZone(req.params.zone, actor(req));
    return ok(reply, { id: req.params.zone });
  });

  app.get<{ Params: { zone: string } }>(`${API_PREFIX}/zones/:zone/spectrum/apps`, async (req, reply) => {
    if (!allowed(req, reply, 'apps:read', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    const q = req.query as Record<string, unknown>;
    const p = paging(q);
    if (!('page' in p)) return fail(reply, 400, [p]);
    const order = (q['order'] ?? 'dns') as Order;
    if (!ORDERS.includes(order)) return fail(reply, 400, [problem('E_API_BAD_REQUEST', `order must be one of ${ORDERS.join(', ')}`)]);
    const direction = q['direction'] ?? 'asc';
    if (direction !== 'asc' && direction !== 'desc') return fail(reply, 400, [problem('E_API_BAD_REQUEST', 'direction must be asc or desc')]);
    const sign = direction === 'asc' ? 1 : -1;
    const apps = source
      .apps(req.params.zone)
      .map((v) => v.app)
      .sort((a, b) => sign * (sortKey(a, order).localeCompare(sortKey(b, order)) || a.id.localeCompare(b.id)));
    return paged(reply, apps, p);
  });

  app.post<{ Params: { zone: string } }>(`${API_PREFIX}/zones/:zone/spectrum/apps`, async (req, reply) => {
    if (!allowed(req, reply, 'apps:edit', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    return ok(reply, await source.create(req.params.zone, req.body, actor(req)));
  });

  app.get<{ Params: { zone: string; app: string } }>(`${API_PREFIX}/zones/:zone/spectrum/apps/:app`, async (req, reply) => {
    if (!allowed(req, reply, 'apps:read', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    const v = source.app(req.params.zone, req.params.app);
    return v === undefined ? fail(reply, 404, [problem('E_API_APP_NOT_FOUND', `no app ${req.params.app} in zone ${req.params.zone}`)]) : ok(reply, v.app);
  });

  app.put<{ Params: { zone: string; app: string } }>(`${API_PREFIX}/zones/:zone/spectrum/apps/:app`, async (req, reply) => {
    if (!allowed(req, reply, 'apps:edit', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    return ok(reply, await source.replace(req.params.zone, req.params.app, req.body, actor(req)));
  });

  app.delete<{ Params: { zone: string; app: string } }>(`${API_PREFIX}/zones/:zone/spectrum/apps/:app`, async (req, reply) => {
    if (!allowed(req, reply, 'apps:edit', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    await source.delete(req.params.zone, req.params.app, actor(req));
    return ok(reply, { id: req.params.app });
  });

  app.post<{ Params: { zone: string; app: string } }>(`${API_PREFIX}/zones/:zone/spectrum/apps/:app/edge_ips/rotate`, async (req, reply) => {
    if (!allowed(req, reply, 'apps:edit', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    return ok(reply, await source.rotateEdgeIps(req.params.zone, req.params.app, actor(req)));
  });

  // ── IP Access rules ───────────────────────────────────────────────────────────────────────────────────────────
  const RULES = `${API_PREFIX}/zones/:zone/firewall/access_rules/rules`;

  app.get<{ Params: { zone: string } }>(RULES, async (req, reply) => {
    if (!allowed(req, reply, 'rules:read', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    const q = req.query as Record<string, unknown>;
    const p = paging(q, RULE_PAGE_SIZES);
    if (!('page' in p)) return fail(reply, 400, [p]);
    const query = parseRuleQuery(q);
    if ('code' in query) return fail(reply, 400, [query]);
    return paged(reply, selectRules(source.rules(req.params.zone).map((v) => v.rule), query), p);
  });

  app.post<{ Params: { zone: string } }>(RULES, async (req, reply) => {
    if (!allowed(req, reply, 'rules:edit', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    return ok(reply, await source.createRule(req.params.zone, req.body, actor(req)));
  });

  app.get<{ Params: { zone: string; rule: string } }>(`${RULES}/:rule`, async (req, reply) => {
    if (!allowed(req, reply, 'rules:read', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    const v = source.rule(req.params.zone, req.params.rule);
    return v === undefined ? fail(reply, 404, [problem('E_API_RULE_NOT_FOUND', `no IP Access rule ${req.params.rule} in zone ${req.params.zone}`)]) : ok(reply, v.rule);
  });

  app.patch<{ Params: { zone: string; rule: string } }>(`${RULES}/:rule`, async (req, reply) => {
    if (!allowed(req, reply, 'rules:edit', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    return ok(reply, await source.editRule(req.params.zone, req.params.rule, req.body, actor(req)));
  });

  app.delete<{ Params: { zone: string; rule: string } }>(`${RULES}/:rule`, async (req, reply) => {
    if (!allowed(req, reply, 'rules:edit', req.params.zone)) return reply;
    if (zone(req.params.zone) === undefined) return noZone(reply, req.params.zone);
    await source.deleteRule(req.params.zone, req.params.rule, actor(req));
    return ok(reply, { id: req.params.rule });
  });

  // ── audit log ─────────────────────────────────────────────────────────────────────────────────────────────────
  app.get<{ Params: { zone: string } }>(`${API_PREFIX}/zones/:zone/audit_logs`, async (req, reply) => {
    if (!allowed(req, reply, 'audit:read', req.params.zone)) return reply;
    // A deleted zone's log stays readable by its id.
    if (zone(req.params.zone) === undefined && !store.hasAudit(req.params.zone)) return noZone(reply, req.params.zone);
    const q = req.query as Record<string, unknown>;
    const p = paging(q);
    if (!('page' in p)) return fail(reply, 400, [p]);
    const f = parseAuditFilters(q);
    if ('code' in f) return fail(reply, 400, [f]);
    const { total, entries } = store.auditLog(req.params.zone, { ...f, limit: p.perPage, offset: (p.page - 1) * p.perPage });
    return ok(reply, entries.map(auditView), { page: p.page, per_page: p.perPage, count: entries.length, total_count: total, total_pages: Math.ceil(total / p.perPage) });
  });

  // ── Refract extensions for the dashboard: the engine live, the event tail, the node's health ────────────────
  registerDashboard(app, { enabled: deps.dashboard ?? true, log, ...(deps.dashboardBundle ? { bundle: deps.dashboardBundle } : {}) });
  const edge = source.edge;
  const startedMs = nowMs();
  let recent: RecentError[] = [];
  const errorsSub = edge.events.events$.subscribe((e) => {
    if (e.Event === 'connect' || e.Status === 200) return;
    const err: RecentError = { at: e.Timestamp, app: e.Application, appName: e.ApplicationName, event: e.Event, status: e.Status, code: e.ErrorCode, client: `${e.ClientIP}:${e.ClientPort}` };
    recent = [err, ...recent].slice(0, RECENT_ERRORS);
  });
  const streams = new Set<EventStreamClient>();
  app.addHook('preClose', async () => {
    errorsSub.unsubscribe();
    for (const s of [...streams]) s.end();
  });

  /** Which apps a request may see: all for a token without a zone list, else the apps of its zones. */
  const appFilter = (req: FastifyRequest): ((app: string | undefined) => boolean) => {
    const zones = principals.get(req)?.zones;
    if (zones === undefined) return () => true;
    let cfg = source.config;
    let inZones = new Set(cfg.apps.filter((a) => a.zoneId !== undefined && zones.includes(a.zoneId)).map((a) => a.id));
    return (id) => {
      if (source.config !== cfg) {
        cfg = source.config;
        inZones = new Set(cfg.apps.filter((a) => a.zoneId !== undefined && zones.includes(a.zoneId)).map((a) => a.id));
      }
      return id !== undefined && inZones.has(id);
    };
  };

  app.get(`${API_PREFIX}/refract/machines`, async (_req, reply) => ok(reply, machineGraphs()));

  app.get(`${API_PREFIX}/refract/engine/states`, async (req, reply) => {
    if (!allowed(req, reply, 'analytics:read')) return reply;
    return ok(reply, engineStates(edge, appFilter(req)));
  });

  app.get(`${API_PREFIX}/refract/health`, async (req, reply) => {
    if (!allowed(req, reply, 'analytics:read')) return reply;
    const keep = appFilter(req);
    const live = engineStates(edge, keep);
    const health: NodeHealth = {
      uptimeSec: Math.max(0, Math.round((nowMs() - startedMs) / 100) / 10),
      version: deps.version ?? '0.0.0',
      listeners: edge
        .listeners()
        .filter((l) => keep(l.app))
        .map((l) => ({ ...l, app: l.app ?? '', name: source.config.apps.find((a) => a.id === l.app)?.dns.name ?? '' })),
      connections: { tcp: live.tcp.active, udp: live.udp.active },
      applies: source.history(),
      errors: recent.filter((e) => keep(e.app)),
      logs: { suppressed: edge.logLimit.suppressed, outputs: Object.entries(deps.outputs?.() ?? {}).map(([output, st]) => ({ output, written: st.written, dropped: st.dropped, bufferedBytes: st.bufferedBytes })) },
    };
    return ok(reply, health);
  });

  app.get(`${API_PREFIX}/refract/events/stream`, async (req, reply) => {
    if (!allowed(req, reply, 'analytics:read')) return reply;
    const q = req.query as Record<string, unknown>;
    const str = (name: string): string => (typeof q[name] === 'string' ? q[name] : '');
    const statusText = str('status');
    if (statusText !== '' && !/^\d{1,3}$/.test(statusText)) return fail(reply, 400, [problem('E_API_BAD_REQUEST', `status must be an event Status number (0, 200, 521, …), not ${JSON.stringify(statusText)}`)]);
    const filter: EventFilter = { app: str('app'), event: str('event'), status: statusText === '' ? undefined : Number(statusText) };
    const keepApp = appFilter(req);
    const keep = (e: SpectrumEvent): boolean => keepApp(e.Application) && matches(e, filter);
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      [REQUEST_ID_HEADER]: req.id,
    });
    const holder: { client?: EventStreamClient } = {};
    holder.client = new EventStreamClient(reply.raw, edge.events.events$, keep, () => void (holder.client && streams.delete(holder.client)));
    streams.add(holder.client);
    return reply;
  });

  // ── Spectrum analytics (src/api/analytics-query.ts) ──────────────────────────────────────────────────────────
  const ANALYTICS = `${API_PREFIX}/zones/:zone/spectrum/analytics`;
  /** The analytics store for an allowed request on a known zone; else answers (403, 404) and returns undefined. */
  const analyticsFor = (req: FastifyRequest<{ Params: { zone: string } }>, reply: FastifyReply): NonNullable<ApiServerDeps['analytics']> | undefined => {
    if (!allowed(req, reply, 'analytics:read', req.params.zone)) return undefined;
    if (zone(req.params.zone) === undefined) {
      void noZone(reply, req.params.zone);
      return undefined;
    }
    if (deps.analytics === undefined) {
      void fail(reply, 404, [problem('E_API_ANALYTICS_OFF')]);
      return undefined;
    }
    return deps.analytics;
  };

  app.get<{ Params: { zone: string } }>(`${ANALYTICS}/aggregate/current`, async (req, reply) => {
    const a = analyticsFor(req, reply);
    if (a === undefined) return reply;
    const q = req.query as Record<string, unknown>;
    const one = (v: unknown): string | undefined => (Array.isArray(v) ? v.join(',') : typeof v === 'string' ? v : undefined);
    const apps = (one(q['appID']) ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
    const colo = one(q['colo_name']);
    return ok(reply, current(a.store, req.params.zone, a.epochMs(), [...new Set(apps)], colo === '' ? undefined : colo));
  });

  for (const kind of ['summary', 'bytime'] as const) {
    app.get<{ Params: { zone: string } }>(`${ANALYTICS}/events/${kind}`, async (req, reply) => {
      const a = analyticsFor(req, reply);
      if (a === undefined) return reply;
      const q = parseAnalyticsQuery(req.params.zone, req.query as Record<string, unknown>, a.epochMs(), kind);
      if ('code' in q) return fail(reply, 400, [q]);
      return ok(reply, analyticsQuery(a.store, q));
    });
  }

  return app;
}
