/**
 * The API's OpenAPI 3.1 document, served at `GET /client/v4/openapi.json` to any valid token or key.
 *
 * Built from the same sources the server uses, so it cannot drift:
 * - the paths and methods are the routes the fastify instance actually registered (collected by its `onRoute` hook);
 * - the request bodies are JSON Schemas generated (`z.toJSONSchema`) from the zod field schemas the validator runs
 *   (`APP_FIELDS`, `ACCESS_RULE_FIELDS`), and the error codes are `ERRORS`' keys;
 * - what each route needs (summary, permission, query, body, result) comes from `ROUTE_DOCS`, and a route without
 *   an entry there is a startup error (`routeDoc` throws), so a new route cannot go undocumented.
 */
import { z } from 'zod';
import { APP_FIELDS } from '../model/app.ts';
import { ACCESS_RULE_CONFIGURATION_FIELDS, ACCESS_RULE_FIELDS } from '../model/access-rules.ts';
import { ERRORS, RefractError } from '../model/errors.ts';
import { DEFAULT_LIMIT, DIMENSIONS, METRICS, TIME_DELTAS } from './analytics-query.ts';
import { RULE_PAGE_SIZES } from './rule-list.ts';
import type { Permission } from './tokens.ts';

type JsonSchema = Record<string, unknown>;

/** A registered route: method and fastify URL pattern (`/client/v4/zones/:zone`). */
export interface RouteKey {
  readonly method: string;
  readonly url: string;
}

interface QueryParam {
  readonly name: string;
  readonly schema: JsonSchema;
  readonly description: string;
}

export interface RouteDoc {
  readonly summary: string;
  /** The permission the route checks; 'any' = any one permission; 'none' = any valid credentials. */
  readonly permission: Permission | 'any' | 'none';
  readonly query?: readonly QueryParam[];
  /** A component schema name for the JSON body. */
  readonly body?: string;
  /** A component schema name for `result` (suffix `[]` for a list with `result_info`). */
  readonly result: string;
  /** A 200 answer that is not the JSON envelope: its content type (the body is text). */
  readonly text?: string;
  /** The answer is a Server-Sent Events stream (`text/event-stream`), not the JSON envelope. */
  readonly stream?: true;
}

/** `page` and `per_page` (1 to `maxPerPage`, default 20). */
function paging(maxPerPage: number): QueryParam[] {
  return [
    { name: 'page', schema: { type: 'integer', minimum: 1, default: 1 }, description: 'Page number (a page past the end is empty, not an error).' },
    { name: 'per_page', schema: { type: 'integer', minimum: 1, maximum: maxPerPage, default: 20 }, description: 'Items per page.' },
  ];
}
const PAGE = paging(100);

/** The query of events/summary and events/bytime (src/api/analytics-query.ts). */
const ANALYTICS_QUERY: readonly QueryParam[] = [
  { name: 'metrics', schema: { type: 'array', items: { type: 'string', enum: [...METRICS] } }, description: 'Metrics to compute (repeat the key or use commas); default count.' },
  { name: 'dimensions', schema: { type: 'array', items: { type: 'string', enum: [...DIMENSIONS] } }, description: 'Dimensions to group by.' },
  { name: 'filters', schema: { type: 'string' }, description: 'DIMENSION OP VALUE terms (== != > < >= <=) joined by ; or AND, then by , or OR.' },
  { name: 'since', schema: { type: 'string', format: 'date-time' }, description: 'Start (RFC 3339); default until − 6 h.' },
  { name: 'until', schema: { type: 'string', format: 'date-time' }, description: 'End (RFC 3339); default now.' },
  { name: 'sort', schema: { type: 'array', items: { type: 'string' } }, description: '-FIELD or +FIELD, among the metrics and dimensions.' },
  { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: DEFAULT_LIMIT, default: DEFAULT_LIMIT }, description: 'Most rows of data (a Refract extension).' },
];

/** What the server's routes are, keyed `METHOD URL` with fastify's `:param` syntax. */
export const ROUTE_DOCS: Readonly<Record<string, RouteDoc>> = {
  'GET /metrics': {
    summary: "Refract extension: the node's Prometheus metrics in the text exposition format (docs/metrics.md); 404 unless the config has a metrics: section.",
    permission: 'analytics:read',
    result: 'Metrics',
    text: 'text/plain; version=0.0.4',
  },
  'GET /client/v4/openapi.json': { summary: 'This document.', permission: 'none', result: 'OpenApi' },
  'GET /client/v4/user/tokens/verify': { summary: 'Verify the token or key the request carries.', permission: 'none', result: 'TokenStatus' },
  'GET /client/v4/zones': {
    summary: 'List the zones the token may use.',
    permission: 'any',
    query: [...PAGE, { name: 'name', schema: { type: 'string' }, description: 'Only the zone with this name.' }],
    result: 'Zone[]',
  },
  'GET /client/v4/zones/:zone': { summary: 'Get a zone.', permission: 'any', result: 'Zone' },
  'GET /client/v4/zones/:zone/spectrum/apps': {
    summary: 'List the Spectrum apps of a zone (from the config file and from the API).',
    permission: 'apps:read',
    query: [
      ...PAGE,
      { name: 'order', schema: { type: 'string', enum: ['protocol', 'app_id', 'created_on', 'modified_on', 'dns'], default: 'dns' }, description: 'Sort key.' },
      { name: 'direction', schema: { type: 'string', enum: ['asc', 'desc'], default: 'asc' }, description: 'Sort direction.' },
    ],
    result: 'App[]',
  },
  'POST /client/v4/zones/:zone/spectrum/apps': { summary: 'Create an app; it serves when the answer arrives.', permission: 'apps:edit', body: 'AppInput', result: 'App' },
  'GET /client/v4/zones/:zone/spectrum/apps/:app': { summary: 'Get an app.', permission: 'apps:read', result: 'App' },
  'PUT /client/v4/zones/:zone/spectrum/apps/:app': { summary: 'Replace an app (the whole object).', permission: 'apps:edit', body: 'AppInput', result: 'App' },
  'DELETE /client/v4/zones/:zone/spectrum/apps/:app': { summary: "Delete an app; its open connections drain.", permission: 'apps:edit', result: 'Deleted' },
  'POST /client/v4/zones/:zone/spectrum/apps/:app/edge_ips/rotate': {
    summary: "Refract extension: move the app's DNS name to fresh edge IPs (new ones answered and listening; old ones stop accepting and drain).",
    permission: 'apps:edit',
    result: 'App',
  },
  'POST /client/v4/zones': { summary: 'Create a zone (needs zones:edit on a token not limited to zones).', permission: 'zones:edit', body: 'ZoneInput', result: 'Zone' },
  'DELETE /client/v4/zones/:zone': { summary: "Delete a zone created through the API, with its apps (which drain) and rules.", permission: 'zones:edit', result: 'Deleted' },
  'GET /client/v4/zones/:zone/firewall/access_rules/rules': {
    summary: "List the IP Access rules that apply to the zone's apps (the file's node-wide and zone rules, then the API's).",
    permission: 'rules:read',
    query: [
      ...paging(RULE_PAGE_SIZES.maxPerPage),
      { name: 'mode', schema: { type: 'string', enum: ['block', 'whitelist', 'allow', 'challenge', 'js_challenge', 'managed_challenge'] }, description: 'Only rules of this mode (repeatable).' },
      { name: 'notes', schema: { type: 'string' }, description: 'Only rules whose notes contain this text, case-insensitively.' },
      { name: 'configuration.target', schema: { type: 'string', enum: ['ip', 'ip6', 'ip_range', 'asn', 'country'] }, description: 'Only rules of this target.' },
      { name: 'configuration.value', schema: { type: 'string' }, description: "Only rules of this value (compared in the target's canonical form)." },
      { name: 'match', schema: { type: 'string', enum: ['all', 'any'], default: 'all' }, description: 'Whether a rule must pass every filter or any one.' },
      { name: 'order', schema: { type: 'string', enum: ['configuration.target', 'configuration.value', 'mode'] }, description: 'Sort key (default: precedence order).' },
      { name: 'direction', schema: { type: 'string', enum: ['asc', 'desc'], default: 'asc' }, description: 'Sort direction.' },
    ],
    result: 'AccessRule[]',
  },
  'POST /client/v4/zones/:zone/firewall/access_rules/rules': { summary: "Create an IP Access rule for the zone's apps with ip_firewall; it applies to new connections at once.", permission: 'rules:edit', body: 'AccessRuleInput', result: 'AccessRule' },
  'GET /client/v4/zones/:zone/firewall/access_rules/rules/:rule': { summary: 'Get an IP Access rule.', permission: 'rules:read', result: 'AccessRule' },
  'PATCH /client/v4/zones/:zone/firewall/access_rules/rules/:rule': { summary: "Change a rule's mode and notes (configuration may be sent but not changed).", permission: 'rules:edit', body: 'AccessRuleInput', result: 'AccessRule' },
  'DELETE /client/v4/zones/:zone/firewall/access_rules/rules/:rule': { summary: 'Delete an IP Access rule.', permission: 'rules:edit', result: 'Deleted' },
  'GET /client/v4/zones/:zone/audit_logs': {
    summary: "The zone's audit log: every committed API write, newest first.",
    permission: 'audit:read',
    query: [
      ...PAGE,
      { name: 'since', schema: { type: 'string' }, description: 'Entries at or after this RFC 3339 time or date.' },
      { name: 'before', schema: { type: 'string' }, description: 'Entries before this RFC 3339 time or date.' },
      { name: 'direction', schema: { type: 'string', enum: ['desc', 'asc'], default: 'desc' }, description: 'desc: newest first.' },
    ],
    result: 'AuditEntry[]',
  },
  // Refract extensions for the dashboard (docs/dashboard.md).
  'GET /client/v4/refract/machines': {
    summary: "Refract extension: the engine's state machines as graphs (states and transitions), drawn from their XState definitions like `refract machines`.",
    permission: 'none',
    result: 'MachineGraphs',
  },
  'GET /client/v4/refract/engine/states': {
    summary: 'Refract extension: how many open TCP connections and UDP flows are in each machine state now (a token limited to zones counts only their apps).',
    permission: 'analytics:read',
    result: 'EngineStates',
  },
  'GET /client/v4/refract/health': {
    summary: "Refract extension: the node's uptime, listeners, open connections, latest configuration applies and recent connection errors.",
    permission: 'analytics:read',
    result: 'NodeHealth',
  },
  'GET /client/v4/refract/events/stream': {
    summary: "Refract extension: the node's Spectrum events as Server-Sent Events (`event: spectrum`, JSON data), as they happen; a slow reader loses events (`event: dropped` says how many).",
    permission: 'analytics:read',
    query: [
      { name: 'app', schema: { type: 'string' }, description: 'Only events of this app (id or DNS name).' },
      { name: 'event', schema: { type: 'string', enum: ['connect', 'disconnect', 'originError', 'resolveOrigin', 'clientFiltered', 'tlsError'] }, description: 'Only events of this name.' },
      { name: 'status', schema: { type: 'integer', minimum: 0, maximum: 999 }, description: 'Only events with this Status.' },
    ],
    result: 'SpectrumEvent',
    stream: true,
  },
  'GET /client/v4/zones/:zone/spectrum/analytics/aggregate/current': {
    summary: "Per app: connections, bytes each way and average duration over the current minute and the one before it (unwritten traffic included).",
    permission: 'analytics:read',
    query: [
      { name: 'appID', schema: { type: 'string' }, description: 'Comma-separated app ids: only these apps (each listed, with zeros when idle).' },
      { name: 'colo_name', schema: { type: 'string' }, description: 'Only this colo (the node id).' },
    ],
    result: 'AnalyticsCurrent',
  },
  'GET /client/v4/zones/:zone/spectrum/analytics/events/summary': {
    summary: 'Metrics of the zone\'s connection events between since and until, grouped by dimensions.',
    permission: 'analytics:read',
    query: ANALYTICS_QUERY,
    result: 'AnalyticsReport',
  },
  'GET /client/v4/zones/:zone/spectrum/analytics/events/bytime': {
    summary: 'Metrics of the zone\'s connection events grouped by dimensions, one value per time interval.',
    permission: 'analytics:read',
    query: [...ANALYTICS_QUERY, { name: 'time_delta', schema: { type: 'string', enum: [...TIME_DELTAS] }, description: 'Interval width (required).' }],
    result: 'AnalyticsReport',
  },
};

/** The entry of a registered route; throws E_INTERNAL for a route nobody documented. */
export function routeDoc(r: RouteKey): RouteDoc {
  const doc = ROUTE_DOCS[`${r.method} ${r.url}`];
  if (doc === undefined) throw new RefractError('E_INTERNAL', { message: `route ${r.method} ${r.url} has no entry in ROUTE_DOCS (src/api/openapi.ts)` });
  return doc;
}

/** A zod schema as a JSON Schema of its input (what a client sends), without the `$schema` key. */
function inputSchema(schema: z.ZodType): JsonSchema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function components(): Record<string, JsonSchema> {
  const appInput = inputSchema(z.object(APP_FIELDS).partial());
  const readOnly = {
    id: { type: 'string', readOnly: true },
    created_on: { type: 'string', format: 'date-time', readOnly: true },
    modified_on: { type: 'string', format: 'date-time', readOnly: true },
  };
  const ruleInput = inputSchema(z.object({ ...ACCESS_RULE_FIELDS, configuration: z.object(ACCESS_RULE_CONFIGURATION_FIELDS) }).partial());
  return {
    AppInput: {
      ...appInput,
      required: ['protocol', 'dns'],
      description: 'A Spectrum app. Unknown fields are ignored; null counts as absent. Either origin_direct or origin_dns with origin_port.',
    },
    App: { ...appInput, properties: { ...(appInput['properties'] as JsonSchema), ...readOnly }, required: ['id', 'protocol', 'dns', 'created_on', 'modified_on'] },
    AccessRuleInput: { ...ruleInput, required: ['mode', 'configuration'] },
    Zone: {
      type: 'object',
      properties: { id: { type: 'string', pattern: '^[0-9a-f]{32}$' }, name: { type: 'string' }, status: { type: 'string' }, paused: { type: 'boolean' }, type: { type: 'string' } },
      required: ['id', 'name'],
    },
    ZoneInput: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'], description: 'Other fields (account, type) are ignored.' },
    AccessRule: {
      type: 'object',
      properties: {
        id: { type: 'string' },
        mode: { type: 'string', enum: ['block', 'whitelist'] },
        configuration: { type: 'object', properties: { target: { type: 'string' }, value: { type: 'string' } }, required: ['target', 'value'] },
        notes: { type: 'string' },
        allowed_modes: { type: 'array', items: { type: 'string' } },
        scope: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, type: { type: 'string', enum: ['zone', 'node'] } } },
        created_on: { type: 'string', format: 'date-time' },
        modified_on: { type: 'string', format: 'date-time' },
      },
      required: ['id', 'mode', 'configuration'],
    },
    AuditEntry: {
      type: 'object',
      properties: {
        id: { type: 'string' },
        action: { type: 'object', properties: { type: { type: 'string' }, result: { type: 'boolean' } } },
        actor: { type: 'object', properties: { id: { type: 'string' }, type: { type: 'string', enum: ['token', 'key'] }, name: { type: 'string' }, email: { type: 'string' } } },
        interface: { type: 'string' },
        zone: { type: 'object', properties: { id: { type: 'string' } } },
        resource: { type: 'object', properties: { id: { type: 'string' }, type: { type: 'string', enum: ['spectrum_app', 'access_rule', 'zone'] } } },
        when: { type: 'string', format: 'date-time' },
        oldValue: { type: ['string', 'null'] },
        newValue: { type: ['string', 'null'] },
        oldValueJson: {},
        newValueJson: {},
        metadata: { type: 'object' },
      },
      required: ['id', 'action', 'actor', 'resource', 'when'],
    },
    MachineGraphs: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          proto: { type: 'string', enum: ['tcp', 'udp'] },
          states: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, key: { type: 'string' }, parent: { type: 'string' }, type: { type: 'string' }, initial: { type: 'boolean' } } } },
          transitions: { type: 'array', items: { type: 'object', properties: { from: { type: 'string' }, to: { type: 'string' }, event: { type: 'string' }, guard: { type: 'string' } } } },
          anyState: { type: 'array', items: { type: 'object' } },
        },
        required: ['id', 'proto', 'states', 'transitions', 'anyState'],
      },
    },
    EngineStates: {
      type: 'object',
      description: 'Per engine: open instances, and the count in each state id (a nested state counts in its parents too).',
      properties: Object.fromEntries(
        ['tcp', 'udp'].map((k) => [k, { type: 'object', properties: { active: { type: 'integer' }, states: { type: 'object', additionalProperties: { type: 'integer' } } }, required: ['active', 'states'] }]),
      ),
      required: ['tcp', 'udp'],
    },
    NodeHealth: {
      type: 'object',
      properties: {
        uptimeSec: { type: 'number' },
        version: { type: 'string' },
        listeners: { type: 'array', items: { type: 'object', properties: { protocol: { type: 'string' }, host: { type: 'string' }, port: { type: 'integer' }, app: { type: 'string' } } } },
        connections: { type: 'object', properties: { tcp: { type: 'integer' }, udp: { type: 'integer' } } },
        applies: { type: 'array', items: { type: 'object' } },
        errors: { type: 'array', items: { type: 'object' } },
        logs: {
          type: 'object',
          description: 'Connection-path log lines suppressed by log.rate_limit, and each output (stderr, stdout, events_file) with the lines it wrote and dropped.',
          properties: {
            suppressed: { type: 'integer' },
            outputs: { type: 'array', items: { type: 'object', properties: { output: { type: 'string' }, written: { type: 'integer' }, dropped: { type: 'integer' }, bufferedBytes: { type: 'integer' } } } },
          },
        },
      },
      required: ['uptimeSec', 'listeners', 'connections', 'applies', 'errors', 'logs'],
    },
    SpectrumEvent: { type: 'object', description: 'One event of docs/events.md.' },
    AnalyticsCurrent: {
      type: 'array',
      items: {
        type: 'object',
        properties: { appID: { type: 'string' }, bytesEgress: { type: 'number' }, bytesIngress: { type: 'number' }, connections: { type: 'number' }, durationAvg: { type: 'number', description: 'ms' } },
        required: ['appID', 'bytesEgress', 'bytesIngress', 'connections', 'durationAvg'],
      },
    },
    AnalyticsReport: {
      type: 'object',
      properties: {
        data: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              dimensions: { type: 'array', items: { type: 'string' } },
              metrics: { type: 'array', items: { anyOf: [{ type: 'number' }, { type: 'array', items: { type: 'number' } }] }, description: 'One value per metric (bytime: one array per metric, a value per interval).' },
            },
          },
        },
        data_lag: { type: 'number' },
        max: { type: 'object', additionalProperties: { type: 'number' } },
        min: { type: 'object', additionalProperties: { type: 'number' } },
        totals: { type: 'object', additionalProperties: { type: 'number' } },
        rows: { type: 'integer' },
        query: { type: 'object' },
        time_intervals: { type: 'array', items: { type: 'array', items: { type: 'string', format: 'date-time' } } },
      },
      required: ['data', 'data_lag', 'max', 'min', 'totals', 'rows', 'query'],
    },
    TokenStatus: { type: 'object', properties: { id: { type: 'string' }, status: { type: 'string', enum: ['active'] } }, required: ['id', 'status'] },
    Deleted: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
    OpenApi: { type: 'object', description: 'An OpenAPI 3.1 document.' },
    Error: {
      type: 'object',
      properties: {
        code: { type: 'integer', description: "Cloudflare's number for the error where it has one, else 1000." },
        message: { type: 'string' },
        refract_code: { type: 'string', enum: Object.keys(ERRORS) },
        source: { type: 'object', properties: { pointer: { type: 'string', description: 'RFC 6901 pointer into the request body.' } } },
      },
      required: ['code', 'message', 'refract_code'],
    },
    ResultInfo: {
      type: 'object',
      properties: { page: { type: 'integer' }, per_page: { type: 'integer' }, count: { type: 'integer' }, total_count: { type: 'integer' }, total_pages: { type: 'integer' } },
      required: ['page', 'per_page', 'count', 'total_count', 'total_pages'],
    },
    Failure: {
      type: 'object',
      properties: {
        success: { const: false },
        errors: { type: 'array', items: { $ref: '#/components/schemas/Error' } },
        messages: { type: 'array', items: {} },
        result: { type: 'null' },
      },
      required: ['success', 'errors', 'messages', 'result'],
    },
  };
}

function envelope(result: string): JsonSchema {
  const list = result.endsWith('[]');
  const ref = { $ref: `#/components/schemas/${list ? result.slice(0, -2) : result}` };
  return {
    type: 'object',
    properties: {
      success: { const: true },
      errors: { type: 'array', maxItems: 0 },
      messages: { type: 'array' },
      result: list ? { type: 'array', items: ref } : ref,
      ...(list ? { result_info: { $ref: '#/components/schemas/ResultInfo' } } : {}),
    },
    required: ['success', 'errors', 'messages', 'result', ...(list ? ['result_info'] : [])],
  };
}

const FAILURES: Readonly<Record<string, string>> = {
  '400': 'Invalid request (errors[].code and refract_code say why; the change was not made).',
  '401': 'Missing or invalid credentials (code 10000).',
  '403': 'The token lacks the permission or the zone (code 10000).',
  '404': 'Unknown zone, app or route.',
  '429': 'Rate limited: wait Retry-After seconds.',
};

/** The document for these registered routes (fastify's URL patterns become OpenAPI path templates). */
export function openApiDocument(routes: readonly RouteKey[], version: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const r of routes) {
    const doc = routeDoc(r);
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    const params = [...r.url.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const failure = { content: { 'application/json': { schema: { $ref: '#/components/schemas/Failure' } } } };
    const op: JsonSchema = {
      summary: doc.summary,
      operationId: `${r.method.toLowerCase()}${path.replace(/\{(\w+)\}/g, 'By_$1').replace(/[^A-Za-z0-9]+(\w)/g, (_, c: string) => c.toUpperCase())}`,
      'x-refract-permission': doc.permission,
      parameters: [...params, ...(doc.query ?? []).map((q) => ({ name: q.name, in: 'query', required: false, schema: q.schema, description: q.description }))],
      ...(doc.body === undefined ? {} : { requestBody: { required: true, content: { 'application/json': { schema: { $ref: `#/components/schemas/${doc.body}` } } } } }),
      responses: {
        '200': doc.stream
          ? { description: 'A stream of Server-Sent Events.', content: { 'text/event-stream': { schema: { $ref: `#/components/schemas/${doc.result}` } } } }
          : doc.text !== undefined
            ? { description: 'Success.', content: { [doc.text]: { schema: { type: 'string' } } } }
            : { description: 'Success.', content: { 'application/json': { schema: envelope(doc.result) } } },
        ...Object.fromEntries(Object.entries(FAILURES).map(([status, description]) => [status, { description, ...failure }])),
      },
    };
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Refract management API',
      version,
      description: "Cloudflare's v4 API for Spectrum apps, IP Access rules and zones, as served by a Refract node. Every answer uses Cloudflare's envelope.",
    },
    servers: [{ url: '/', description: 'The node serving this document (every path but /metrics starts with /client/v4).' }],
    security: [{ bearer: [] }, { authEmail: [], authKey: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API token from `refract token create`.' },
        authEmail: { type: 'apiKey', in: 'header', name: 'X-Auth-Email' },
        authKey: { type: 'apiKey', in: 'header', name: 'X-Auth-Key', description: 'A global key from `refract token create --global`.' },
      },
      schemas: components(),
    },
  };
}
