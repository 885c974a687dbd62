/**
 * The node config file (YAML or JSON): text → object (`parseConfigText`), object → `RefractConfig`
 * (`validateConfig`). docs/configuration.md is the operator's reference for every field below.
 *
 * `validateConfig` never throws, reports every problem at once (each with an RFC 6901 pointer into the input),
 * plus warnings (W_ codes) that do not make the config invalid, and returns a deep-frozen config. Unlike app
 * objects (where Spectrum ignores unknown fields: a warning, W_CONFIG_UNKNOWN_KEY), Refract's own sections are
 * strict: an unknown key is a typo until proven otherwise (E_CONFIG_SCHEMA). `null` counts as absent everywhere
 * (YAML writes an empty value, `apps:`, as null). `loadConfigText` does both steps and places each issue at its
 * line and column.
 */
import { createHash } from 'node:crypto';
import YAML, { LineCounter } from 'yaml';
import { z } from 'zod';
import { configIssue, crossAppIssues, decode, isRecord, parseFields, pointerJoin, validateApp } from './app.ts';
import { validateAccessRules, type AccessRule } from './access-rules.ts';
import { DEFAULTS, LIMITS } from './defaults.ts';
import { RefractError } from './errors.ts';
import { appBinder, edgeBindConflicts, originBinder } from './edge-conflicts.ts';
import { allocateEdgeIps } from './edge-ips.ts';
import { inAnyZone } from './zones.ts';
import { deepFreeze } from './freeze.ts';
import { edgeLimitsSchema, normaliseLimits } from './client-limits.ts';
import { parseYamlBounded } from './yaml-depth.ts';
import { parseHostPort, parseOriginUri, type Parsed } from './ports.ts';
import { isLoopback, isUnspecified, parseCidr, parseIpLiteral, type IpLiteral } from './ip.ts';
import {
  type AcceptProxySettings,
  type AppSpec,
  type BuiltinOrigin,
  type ConfigIssue,
  type LogSettings,
  type NodeSettings,
  type RefractConfig,
  type Zone,
} from './types.ts';

/**
 * `warnings` (W_ codes) come on both branches: the file runs, but probably not as meant (a misspelt app key, access
 * rules no app applies). They never make a config invalid.
 */
export type ConfigResult =
  | {
      readonly ok: true;
      readonly config: RefractConfig;
      readonly warnings: readonly ConfigIssue[];
      /** The object that was validated (the parsed file), for callers that merge it with more (src/api/config-source.ts). */
      readonly raw: unknown;
    }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

// ── text → object ───────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Parses config text. YAML 1.2 (core schema, so `off` and `yes` stay strings), which also reads JSON. Duplicate
 * keys, several documents, unknown tags and aliases to missing anchors are errors.
 * @throws RefractError E_CONFIG_PARSE with `details: { filename, line, col, reason }` (1-based line and column;
 *   absent when the parser cannot place the problem); E_CONFIG_TOO_DEEP (same details) when collections nest more
 *   than 64 levels deep, aliases expanded (src/model/yaml-depth.ts).
 */
export function parseConfigText(text: string, filename: string): unknown {
  const r = parseText(text);
  if (r.ok) return r.value;
  throw new RefractError(r.code, {
    message: r.at === undefined ? `${filename}: ${r.message}` : `${filename}:${r.at.line}:${r.at.col}: ${r.message}`,
    details: { filename, line: r.at?.line, col: r.at?.col, reason: r.reason },
    cause: r.cause,
  });
}

type ParsedText =
  | { readonly ok: true; readonly value: unknown; readonly doc: YAML.Document; readonly lineCounter: LineCounter }
  | {
      readonly ok: false;
      readonly code: 'E_CONFIG_PARSE' | 'E_CONFIG_TOO_DEEP';
      readonly message: string;
      readonly reason: string;
      readonly at: { line: number; col: number } | undefined;
      readonly cause?: unknown;
    };

/** The YAML document (with source positions) and its value, or the first syntax problem. */
function parseText(text: string): ParsedText {
  const lineCounter = new LineCounter();
  const bounded = parseYamlBounded(text, lineCounter);
  if (!bounded.ok) {
    return { ok: false, code: 'E_CONFIG_TOO_DEEP', message: bounded.message, reason: 'TOO_DEEP', at: lineCounter.linePos(bounded.offset) };
  }
  const doc = bounded.doc;
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const message = (problem.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    return { ok: false, code: 'E_CONFIG_PARSE', message, reason: problem.code, at: problem.linePos?.[0] };
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: 1000 }), doc, lineCounter };
  } catch (cause) {
    // Unresolved aliases and alias bombs surface only here, without a position.
    const reason = cause instanceof Error ? cause.message : String(cause);
    return { ok: false, code: 'E_CONFIG_PARSE', message: reason, reason, at: undefined, cause };
  }
}

/**
 * Parses and validates config text in one step (what `refract serve` and `refract validate` do), placing every
 * issue and warning in the file: `line` and `column` (1-based) of the node its pointer names, or of the deepest
 * node on that path that exists (the app, for a missing required field). A syntax error is one E_CONFIG_PARSE
 * issue at pointer "" (with its position when the parser gives one). Never throws.
 */
export function loadConfigText(text: string, filename: string): ConfigResult {
  const parsed = parseText(text);
  if (!parsed.ok) {
    // With a position the caller prints `file:line:column:` before the message; without one, the message names the file.
    const issue =
      parsed.at === undefined
        ? configIssue('', parsed.code, `${filename}: ${parsed.message}`)
        : { ...configIssue('', parsed.code, parsed.message), line: parsed.at.line, column: parsed.at.col };
    return { ok: false, issues: [issue], warnings: [] };
  }
  const r = validateConfig(parsed.value);
  const place = (i: ConfigIssue): ConfigIssue => {
    const atKey = i.code === 'W_CONFIG_UNKNOWN_KEY' || i.message.startsWith('unknown field');
    const at = sourcePosition(parsed.doc, parsed.lineCounter, i.pointer, atKey);
    return at === undefined ? i : { ...i, line: at.line, column: at.col };
  };
  const warnings = inFileOrder(r.warnings.map(place));
  return r.ok ? { ok: true, config: r.config, warnings, raw: r.raw } : { ok: false, issues: inFileOrder(r.issues.map(place)), warnings };
}

/** Issues sorted by line and column (stable; unplaced ones last, in their order). */
function inFileOrder(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const key = (i: ConfigIssue): number => (i.line === undefined ? Number.MAX_SAFE_INTEGER : i.line * 1_000_000 + (i.column ?? 0));
  return [...issues].sort((a, b) => key(a) - key(b));
}

/**
 * Where `pointer` sits in `doc`: the deepest node on its path that exists. A key's own position is given for an
 * unknown key (`atKey`) and for a mapping or list value (the line that names it); a scalar value's otherwise.
 */
function sourcePosition(doc: YAML.Document, lc: LineCounter, pointer: string, atKey: boolean): { line: number; col: number } | undefined {
  const tokens = pointer === '' ? [] : pointer.slice(1).split('/').map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  for (const [n, t] of tokens.entries()) {
    if (YAML.isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    let keyNode: unknown;
    if (YAML.isMap(node)) {
      const pair = node.items.find((p) => (YAML.isScalar(p.key) ? String(p.key.value) : String(p.key)) === t);
      if (pair === undefined) break;
      keyNode = pair.key;
      next = pair.value;
    } else if (YAML.isSeq(node) && /^(0|[1-9]\d*)$/.test(t)) {
      next = node.items[Number(t)];
      if (next === undefined) break;
    } else {
      break;
    }
    const last = n === tokens.length - 1;
    const useKey = keyNode !== undefined && (next == null || (last && (atKey || !YAML.isScalar(next))));
    offset = (useKey ? rangeStart(keyNode) : rangeStart(next)) ?? offset;
    node = next;
    if (useKey) break;
  }
  return offset === undefined ? undefined : lc.linePos(offset);
}

function rangeStart(node: unknown): number | undefined {
  return YAML.isNode(node) && node.range != null ? node.range[0] : undefined;
}

// ── schemas of Refract's own sections ───────────────────────────────────────────────────────────────────────────

const parsedOf = <T>(value: T | undefined, code: 'E_CONFIG_CIDR', message: string): Parsed<T> =>
  value === undefined ? { ok: false, code, message } : { ok: true, value };

const msSetting = z.number().int().min(1).max(LIMITS.maxTimerMs).nullish();
const ipLiteral = z.string().transform((s, ctx) => decode(parsedOf(parseIpLiteral(s), 'E_CONFIG_CIDR', `"${s}" is not an IP address`), ctx));
const cidr = z.string().transform((s, ctx) => {
  decode(parsedOf(parseCidr(s), 'E_CONFIG_CIDR', `"${s}" is not an IP address or CIDR block`), ctx);
  return s;
});
/** `IP:PORT` / `[IPv6]:PORT`, the form node:dns `Resolver.setServers` takes. */
const dnsServer = z.string().transform((s, ctx) => {
  const r = parseHostPort(s, DEFAULTS.dnsServerPort);
  if (!r.ok) return decode<string>(r, ctx);
  const { address: a, port } = r.value;
  return a.family === 'IPv6' ? `[${a.address}]:${port}` : `${a.address}:${port}`;
});

const TOP_FIELDS = {
  node: z.unknown(),
  edge: z.unknown(),
  log: z.unknown(),
  origins: z.unknown(),
  apps: z.unknown(),
  access_rules: z.unknown(),
  geo: z.unknown(),
  api: z.unknown(),
  zones: z.unknown(),
  dns: z.unknown(),
  metrics: z.unknown(),
  analytics: z.unknown(),
};

const DNS_FIELDS = {
  listen: z.string().transform((s, ctx) => {
    const r = parseHostPort(s, DEFAULTS.dnsListenPort);
    if (!r.ok) return decode<{ host: string; port: number }>(r, ctx);
    return { host: r.value.address.address, port: r.value.port };
  }),
  ttl: z.number().int().min(LIMITS.minDnsTtlSec).max(LIMITS.maxDnsTtlSec),
};

const API_FIELDS = {
  listen: z.string().transform((s, ctx) => {
    const r = parseHostPort(s, DEFAULTS.apiPort);
    if (!r.ok) return decode<{ host: string; port: number }>(r, ctx);
    return { host: r.value.address.address, port: r.value.port };
  }),
  rate_limit: z
    .object({ requests: z.number().int().min(1).max(1_000_000), window_sec: z.number().int().min(1).max(86_400) })
    .strict(),
  dashboard: z.boolean(),
};

const ANALYTICS_FIELDS = {
  enabled: z.boolean(),
  retention_days: z.number().int().min(1).max(LIMITS.maxAnalyticsRetentionDays),
};

const ZONE_FIELDS = {
  id: z.string().regex(/^[0-9a-f]{32}$/, 'a zone id is 32 lowercase hex characters'),
  name: z
    .string()
    .transform((s) => s.toLowerCase().replace(/\.$/, ''))
    .pipe(z.string().regex(/^(?=.{1,253}$)([a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'a zone name is a DNS name such as example.com')),
};

const GEO_FIELDS = {
  country: z.array(z.string().min(1)),
  asn: z.array(z.string().min(1)),
};

const NODE_FIELDS = {
  id: z.string().regex(LIMITS.idPattern, 'node.id must be 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit'),
  data_dir: z.string().min(1),
  user: z.string().min(1),
  group: z.string().min(1),
};

const EDGE_FIELDS = {
  addresses: z.array(ipLiteral).min(1),
  pools: z.strictObject({ ipv4: z.array(cidr).nullish(), ipv6: z.array(cidr).nullish() }),
  ipv4_quota: z.number().int().min(0).max(1_000_000),
  accept_proxy: z.strictObject({ trusted: z.array(cidr).min(1), timeout_ms: msSetting }),
  connect_timeout_ms: msSetting,
  idle_timeout_ms: msSetting,
  udp_idle_timeout_ms: msSetting,
  udp_max_flows: z.number().int().min(1).max(10_000_000),
  limits: edgeLimitsSchema,
  max_connections: z.number().int().min(1).max(10_000_000),
  close_blocked_connections: z.boolean(),
  udp_max_datagram_bytes: z.number().int().min(64).max(65_507),
  udp_receive_buffer: z.number().int().min(4_096).max(1_073_741_824),
  drain_timeout_ms: z.number().int().min(0).max(LIMITS.maxTimerMs),
  max_connect_attempts: z.number().int().min(1).max(LIMITS.maxConnectAttempts),
  tls: z.strictObject({
    data_dir: z.string().min(1).nullish(),
    ca_bundle: z.string().min(1).nullish(),
    handshake_timeout_ms: msSetting,
    strict_sni: z.boolean().nullish(),
  }),
  dns: z.strictObject({
    servers: z.array(dnsServer).nullish(),
    min_ttl_sec: z.number().int().min(1).max(LIMITS.maxTtlSec).nullish(),
  }),
};

const LOG_FIELDS = {
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  // A string (stdout or a file path), or the mapping of EVENTS_FIELDS: checked in `eventSinks`.
  events: z.unknown(),
  // Bytes each output (stderr log, stdout, events file) may hold while its reader is slow; past it, lines are dropped.
  max_buffer: z.string().regex(/^[1-9][0-9]{0,5}[BKMG]$/, 'a size is a number and a unit B, K, M or G, such as 1M').refine((s) => sizeBytes(s) >= 64 * 1024 && sizeBytes(s) <= 1024 ** 3, 'max_buffer is between 64K and 1G').nullish(),
  // Per-cause limit of the connection path's log lines.
  rate_limit: z.strictObject({ lines: z.number().int().min(0).max(1_000_000).nullish(), interval_ms: msSetting }).nullish(),
};

function sizeBytes(s: string): number {
  return Number(s.slice(0, -1)) * SIZE_UNITS[s.slice(-1)]!;
}

/** `100M`, `512K`, `1G`, `4096B` (rotating-file-stream's units; K = 1024 bytes). */
const SIZE_UNITS: Readonly<Record<string, number>> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
const sizeText = z
  .string()
  .regex(/^[1-9][0-9]{0,5}[BKMG]$/, 'a size is a number and a unit B, K, M or G, such as 100M')
  .refine((s) => !/^[0-9]+[BKMG]$/.test(s) || Number(s.slice(0, -1)) * SIZE_UNITS[s.slice(-1)]! >= 1024, 'rotate at 1K or more');

const EVENTS_FIELDS = {
  file: z.string().min(1),
  rotate: z.strictObject({ size: sizeText, keep: z.number().int().min(1).max(1_000).nullish() }),
  http: z.strictObject({
    url: z.url({ protocol: /^https?$/, error: 'url must be an http:// or https:// URL' }),
    headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'a header name is a token such as authorization'), z.string()).nullish(),
    batch_size: z.number().int().min(1).max(100_000).nullish(),
    batch_interval_ms: msSetting,
    buffer: z.number().int().min(1).max(10_000_000).nullish(),
    gzip: z.boolean().nullish(),
    retry: z.strictObject({ initial_ms: msSetting, max_ms: msSetting }).nullish(),
    timeout_ms: msSetting,
    shutdown_deadline_ms: z.number().int().min(0).max(LIMITS.maxTimerMs).nullish(),
  }),
};

const METRICS_FIELDS = {
  listen: z.string().transform((s, ctx) => {
    if (s === 'off') return undefined;
    const r = parseHostPort(s, DEFAULTS.metricsPort);
    if (!r.ok) return decode<{ host: string; port: number }>(r, ctx);
    return { host: r.value.address.address, port: r.value.port };
  }),
  max_apps: z.number().int().min(1).max(100_000),
};

/** `log.events` as LogSettings' three fields; issues (E_CONFIG_SCHEMA with pointers) go to `issues`. */
function eventSinks(raw: unknown, issues: ConfigIssue[]): Pick<LogSettings, 'events' | 'eventsRotate' | 'eventsHttp'> {
  if (raw === undefined || raw === null) return { events: undefined };
  if (typeof raw === 'string') {
    if (raw === '') issues.push(configIssue('/log/events', 'E_CONFIG_SCHEMA', 'log.events is stdout, a file path, or a mapping (file, rotate, http)'));
    return { events: raw === '' ? undefined : raw };
  }
  if (!isRecord(raw)) {
    issues.push(configIssue('/log/events', 'E_CONFIG_SCHEMA', 'log.events is stdout, a file path, or a mapping (file, rotate, http)'));
    return { events: undefined };
  }
  const r = parseFields(raw, EVENTS_FIELDS, '/log/events', { strict: true, nullIsAbsent: true });
  issues.push(...r.issues);
  const v = r.values;
  if (v.file === undefined && v.http === undefined && r.issues.length === 0) {
    issues.push(configIssue('/log/events', 'E_CONFIG_SCHEMA', 'log.events needs file (a path or stdout), http, or both'));
  }
  if (v.rotate !== undefined && (v.file === undefined || v.file === 'stdout')) {
    issues.push(configIssue('/log/events/rotate', 'E_CONFIG_SCHEMA', 'rotate applies to a file: set log.events.file to a path'));
  }
  const h = v.http;
  const retryInitialMs = h?.retry?.initial_ms ?? DEFAULTS.eventsHttpRetryInitialMs;
  const retryMaxMs = h?.retry?.max_ms ?? DEFAULTS.eventsHttpRetryMaxMs;
  if (h !== undefined && retryMaxMs < retryInitialMs) {
    issues.push(configIssue('/log/events/http/retry/max_ms', 'E_CONFIG_SCHEMA', `retry.max_ms (${retryMaxMs}) must be at least retry.initial_ms (${retryInitialMs})`));
  }
  return {
    events: v.file,
    eventsRotate:
      v.rotate === undefined
        ? undefined
        : { size: v.rotate.size, sizeBytes: Number(v.rotate.size.slice(0, -1)) * SIZE_UNITS[v.rotate.size.slice(-1)]!, keep: v.rotate.keep ?? DEFAULTS.eventsRotateKeep },
    eventsHttp:
      h === undefined
        ? undefined
        : {
            url: h.url,
            headers: h.headers ?? {},
            batchSize: h.batch_size ?? DEFAULTS.eventsHttpBatchSize,
            batchIntervalMs: h.batch_interval_ms ?? DEFAULTS.eventsHttpBatchIntervalMs,
            bufferEvents: h.buffer ?? DEFAULTS.eventsHttpBuffer,
            gzip: h.gzip ?? false,
            retryInitialMs,
            retryMaxMs,
            timeoutMs: h.timeout_ms ?? DEFAULTS.eventsHttpTimeoutMs,
            shutdownDeadlineMs: h.shutdown_deadline_ms ?? DEFAULTS.eventsHttpShutdownDeadlineMs,
          },
  };
}

const ORIGIN_FIELDS = {
  name: z.string().regex(LIMITS.idPattern, 'name must be 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit'),
  listen: z.string().transform((s, ctx) => decode(parseOriginUri(s), ctx)),
  behaviour: z.enum(['echo', 'banner', 'discard']),
  banner: z.string().min(1),
};

// ── object → RefractConfig ──────────────────────────────────────────────────────────────────────────────────────

/**
 * Validates a parsed config object. Never throws, whatever `raw` is. On success the config is deep-frozen; on
 * failure every issue found is listed (pointer, code, cfCode, message).
 */
export function validateConfig(raw: unknown): ConfigResult {
  if (!isRecord(raw)) return { ok: false, issues: [configIssue('', 'E_CONFIG_SCHEMA', 'the config must be a mapping (node, edge, log, origins, apps)')], warnings: [] };
  const top = parseFields(raw, TOP_FIELDS, '', { strict: true, nullIsAbsent: true });
  const issues: ConfigIssue[] = [...top.issues];
  const warnings: ConfigIssue[] = [];
  const section = <S extends Record<string, z.ZodType>>(key: keyof typeof TOP_FIELDS, shape: S) => {
    const value = top.values[key];
    if (value === undefined) return parseFields({}, shape, '', { strict: true, nullIsAbsent: true }).values;
    if (!isRecord(value)) {
      issues.push(configIssue(pointerJoin('', key), 'E_CONFIG_SCHEMA', `${key} must be a mapping`));
      return undefined;
    }
    const r = parseFields(value, shape, pointerJoin('', key), { strict: true, nullIsAbsent: true });
    issues.push(...r.issues);
    return r.values;
  };

  const nodeV = section('node', NODE_FIELDS);
  const edgeV = section('edge', EDGE_FIELDS);
  const logV = section('log', LOG_FIELDS);
  const geoV = section('geo', GEO_FIELDS);
  const apiV = top.values.api === undefined ? undefined : section('api', API_FIELDS);
  const zones = validateZones(top.values.zones, issues);
  if (apiV !== undefined && zones.length === 0) {
    issues.push(configIssue('/zones', 'E_CONFIG_SCHEMA', 'api needs at least one zone: zones: [{ name: example.com }]'));
  }
  const dnsV = top.values.dns === undefined ? undefined : section('dns', DNS_FIELDS);
  const metricsV = top.values.metrics === undefined ? undefined : section('metrics', METRICS_FIELDS);
  const metricsListen = metricsV === undefined ? undefined : 'listen' in metricsV ? metricsV.listen : { host: DEFAULTS.metricsHost, port: DEFAULTS.metricsPort };
  if (metricsListen !== undefined) {
    const at = parseIpLiteral(metricsListen.host);
    if (at !== undefined && !isLoopback(at)) {
      warnings.push(configIssue('/metrics/listen', 'W_METRICS_NOT_LOOPBACK', `the metrics listener ${metricsListen.host} has no authentication and is reachable beyond this host; bind it to loopback, or firewall it to the Prometheus servers`));
    }
  }
  const sinks = eventSinks(logV?.events, issues);
  const analyticsV = top.values.analytics === undefined ? undefined : section('analytics', ANALYTICS_FIELDS);
  if (dnsV !== undefined && zones.length === 0 && apiV === undefined) {
    issues.push(configIssue('/zones', 'E_CONFIG_SCHEMA', 'dns serves the zones listed under zones; list at least one: zones: [{ name: example.com }]'));
  }

  // The zone's IP Access rules (apply to apps with ip_firewall: true).
  let accessRules: readonly AccessRule[] = [];
  if (top.values.access_rules !== undefined) {
    const r = validateAccessRules(top.values.access_rules, '/access_rules', { zones });
    warnings.push(...r.warnings);
    if (r.ok) accessRules = r.rules;
    else issues.push(...r.issues);
  }

  // edge.addresses must not repeat (each is bound once per app port).
  const addresses: readonly IpLiteral[] = edgeV?.addresses ?? DEFAULTS.edgeAddresses.map((a) => ({ address: a, family: 'IPv4' as const }));
  const seen = new Set<string>();
  addresses.forEach((a, i) => {
    if (seen.has(a.address)) issues.push(configIssue(pointerJoin('/edge/addresses', i), 'E_CONFIG_SCHEMA', `${a.address} is listed twice`));
    seen.add(a.address);
  });

  // edge.pools: CIDR blocks of the family their key names.
  for (const family of ['ipv4', 'ipv6'] as const) {
    (edgeV?.pools?.[family] ?? []).forEach((block, i) => {
      const c = parseCidr(block);
      if (c !== undefined && c.address.family !== (family === 'ipv4' ? 'IPv4' : 'IPv6')) {
        issues.push(configIssue(pointerJoin('/edge/pools', family, i), 'E_CONFIG_CIDR', `${block} is not an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} block`));
      }
    });
  }

  const minTtlSec = readMinTtl(raw);
  const originDnsMinTtlSec = minTtlSec !== undefined && minTtlSec < LIMITS.originDnsMinTtlSec ? LIMITS.originDnsTtlFloorLowered : LIMITS.originDnsMinTtlSec;

  // apps
  const apps: AppSpec[] = [];
  const appPointers: string[] = [];
  const rawApps = top.values.apps;
  if (rawApps !== undefined && !Array.isArray(rawApps)) {
    issues.push(configIssue('/apps', 'E_CONFIG_SCHEMA', 'apps must be a list of Spectrum app objects'));
  } else if (rawApps !== undefined) {
    (rawApps as readonly unknown[]).forEach((a, i) => {
      const p = pointerJoin('/apps', i);
      const r = validateApp(a, p, { originDnsMinTtlSec, zones });
      warnings.push(...r.warnings);
      if (r.ok) {
        apps.push(r.app);
        appPointers.push(p);
      } else {
        issues.push(...r.issues);
      }
    });
  }
  issues.push(...crossAppIssues(apps, appPointers));

  // Rules apply only to apps with ip_firewall: true (read from the input, so an app that failed still counts).
  const rawRules = top.values.access_rules;
  const firewalled = Array.isArray(rawApps) && (rawApps as readonly unknown[]).some((a) => isRecord(a) && a['ip_firewall'] === true);
  if (Array.isArray(rawRules) && rawRules.length > 0 && !firewalled) {
    warnings.push(configIssue('/access_rules', 'W_ACCESS_RULES_UNUSED', 'no app has ip_firewall: true, so these access rules never apply; set it on the apps they should guard'));
  }

  const withPools = (edgeV?.pools?.ipv4?.length ?? 0) + (edgeV?.pools?.ipv6?.length ?? 0) > 0;
  if (dnsV !== undefined) warnings.push(...dnsWarnings(apps, appPointers, zones, withPools ? undefined : addresses));

  // Listeners sharing a protocol, address and port (E_CONFIG_EDGE_CONFLICT). Without pools every app binds every
  // edge address, known now, so the apps are checked with everything else; with pools an app binds its own edge
  // IPs, known once allocated, so the allocation below checks the apps (src/model/edge-conflicts.ts).
  const origins = validateOrigins(top.values.origins, issues);
  const edgeAddressTexts = addresses.map((a) => a.address);
  issues.push(
    ...edgeBindConflicts([
      ...(withPools ? [] : apps.map((app, i) => appBinder(app, appPointers[i] ?? '/apps', edgeAddressTexts))),
      ...origins.map((o) => originBinder(o.origin, o.pointer)),
    ]),
  );

  if (issues.length > 0 || nodeV === undefined || edgeV === undefined || logV === undefined) {
    if (issues.length === 0) throw new Error('validateConfig: a section failed without an issue');
    return { ok: false, issues, warnings };
  }

  const acceptProxy: AcceptProxySettings | undefined =
    edgeV.accept_proxy === undefined
      ? undefined
      : { trusted: edgeV.accept_proxy.trusted, timeoutMs: edgeV.accept_proxy.timeout_ms ?? DEFAULTS.acceptProxyTimeoutMs };
  const dataDir = nodeV.data_dir ?? DEFAULTS.dataDir;
  const node: NodeSettings = {
    id: nodeV.id ?? DEFAULTS.nodeId,
    dataDir,
    addresses: addresses.map((a) => a.address),
    pools: { ipv4: edgeV.pools?.ipv4 ?? [], ipv6: edgeV.pools?.ipv6 ?? [] },
    ipv4Quota: edgeV.ipv4_quota ?? DEFAULTS.ipv4Quota,
    acceptProxy,
    connectTimeoutMs: edgeV.connect_timeout_ms ?? DEFAULTS.connectTimeoutMs,
    idleTimeoutMs: edgeV.idle_timeout_ms ?? DEFAULTS.idleTimeoutMs,
    udpIdleTimeoutMs: edgeV.udp_idle_timeout_ms ?? DEFAULTS.udpIdleTimeoutMs,
    udpMaxFlows: edgeV.udp_max_flows ?? DEFAULTS.udpMaxFlows,
    ...nodeLimits(edgeV.limits, edgeV.max_connections),
    closeBlockedConnections: edgeV.close_blocked_connections ?? DEFAULTS.closeBlockedConnections,
    udpMaxDatagramBytes: edgeV.udp_max_datagram_bytes ?? DEFAULTS.udpMaxDatagramBytes,
    udpReceiveBufferBytes: edgeV.udp_receive_buffer ?? DEFAULTS.udpReceiveBufferBytes,
    drainTimeoutMs: edgeV.drain_timeout_ms ?? DEFAULTS.drainTimeoutMs,
    dnsServers: edgeV.dns?.servers ?? DEFAULTS.dnsServers,
    dnsMinTtlSec: edgeV.dns?.min_ttl_sec ?? DEFAULTS.dnsMinTtlSec,
    maxConnectAttempts: edgeV.max_connect_attempts ?? DEFAULTS.maxConnectAttempts,
    tls: {
      dataDir: edgeV.tls?.data_dir ?? dataDir,
      caBundle: edgeV.tls?.ca_bundle ?? undefined,
      handshakeTimeoutMs: edgeV.tls?.handshake_timeout_ms ?? DEFAULTS.tlsHandshakeTimeoutMs,
      strictSni: edgeV.tls?.strict_sni ?? DEFAULTS.tlsStrictSni,
    },
    ...(nodeV.user !== undefined ? { user: nodeV.user } : {}),
    ...(nodeV.group !== undefined ? { group: nodeV.group } : {}),
  };
  const log: LogSettings = {
    level: logV.level ?? DEFAULTS.logLevel,
    ...sinks,
    maxBufferBytes: logV.max_buffer ? sizeBytes(logV.max_buffer) : DEFAULTS.logMaxBufferBytes,
    rateLimit: { lines: logV.rate_limit?.lines ?? DEFAULTS.logRateLimitLines, intervalMs: logV.rate_limit?.interval_ms ?? DEFAULTS.logRateLimitIntervalMs },
  };
  const config: RefractConfig = {
    node,
    log,
    origins: origins.map((o) => o.origin),
    apps,
    accessRules,
    geo: { country: geoV?.country ?? [], asn: geoV?.asn ?? [] },
    zones,
    api:
      apiV === undefined
        ? undefined
        : {
            listen: apiV.listen ?? { host: DEFAULTS.apiHost, port: DEFAULTS.apiPort },
            rateLimit: apiV.rate_limit === undefined ? { requests: 1200, windowSec: 300 } : { requests: apiV.rate_limit.requests, windowSec: apiV.rate_limit.window_sec },
            dashboard: apiV.dashboard ?? true,
          },
    metrics: metricsV === undefined ? undefined : { listen: metricsListen, maxApps: metricsV.max_apps ?? DEFAULTS.metricsMaxApps },
    dns:
      dnsV === undefined
        ? undefined
        : { listen: dnsV.listen ?? { host: DEFAULTS.dnsListenHost, port: DEFAULTS.dnsListenPort }, ttlSec: dnsV.ttl ?? DEFAULTS.dnsTtlSec },
    analytics: analyticsV === undefined ? undefined : { enabled: analyticsV.enabled ?? true, retentionDays: analyticsV.retention_days ?? DEFAULTS.analyticsRetentionDays },
  };
  // With pools, what allocation refuses whatever the previous state (static IPs outside the pools, the quota, a
  // family without a pool, two apps on one address and port) is an error of the file; allocation itself runs on the
  // apply path (src/model/edge-ips.ts).
  const allocated = allocateEdgeIps(config, undefined, 0);
  if (!allocated.ok) return { ok: false, issues: [...allocated.issues], warnings };
  return { ok: true, config: deepFreeze(config), warnings, raw };
}

/** `edge.limits` and `edge.max_connections` as NodeSettings fields (absent ones left out). */
function nodeLimits(limits: z.output<typeof edgeLimitsSchema> | undefined, maxConnections: number | undefined): Pick<NodeSettings, 'limits' | 'limitsMaxTrackedClients' | 'maxConnections'> {
  const l = normaliseLimits(limits ?? undefined);
  return {
    ...(l === undefined ? {} : { limits: l }),
    ...(limits?.max_tracked_clients == null ? {} : { limitsMaxTrackedClients: limits.max_tracked_clients }),
    ...(maxConnections === undefined ? {} : { maxConnections }),
  };
}

/**
 * With `dns:`, what the DNS server will not answer although the operator probably expects it to: an app whose
 * dns.name lies in no zone (W_DNS_NAME_OUTSIDE_ZONES), a static edge IP the edge does not bind
 * (W_DNS_STATIC_IP_UNBOUND). The rules mirror src/dns/view.ts.
 */
function dnsWarnings(apps: readonly AppSpec[], pointers: readonly string[], zones: readonly Zone[], addresses: readonly IpLiteral[] | undefined): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  apps.forEach((app, i) => {
    const p = pointers[i] ?? '/apps';
    const name = app.dns.name;
    if (!inAnyZone(name, zones)) {
      out.push(configIssue(pointerJoin(p, 'dns', 'name'), 'W_DNS_NAME_OUTSIDE_ZONES', `${name} is in none of the zones (${zones.map((z) => z.name).join(', ')}), so the DNS server does not answer for it`));
    }
    // With pools, a static IP outside them and edge.addresses is an error (E_EDGE_IP_NOT_IN_POOL), not a warning.
    if (app.edgeIps.type !== 'static' || addresses === undefined) return;
    app.edgeIps.ips.forEach((ip, j) => {
      const family = ip.includes(':') ? 'IPv6' : 'IPv4';
      // A wildcard bind covers its family; `::` is dual-stack (Node's default), so it covers IPv4 too.
      if (addresses.some((a) => a.address === ip || (isUnspecified(a) && (a.family === family || a.family === 'IPv6')))) return;
      out.push(configIssue(pointerJoin(p, 'edge_ips', 'ips', j), 'W_DNS_STATIC_IP_UNBOUND', `${ip} is not in edge.addresses, so the app is not reachable there and the DNS server does not answer it`));
    });
  });
  return out;
}

/**
 * edge.dns.min_ttl_sec read on its own, so a typo elsewhere in `edge` does not make every short origin_dns.ttl
 * an error too. Undefined when absent or invalid (the edge section reports the latter).
 */
function readMinTtl(raw: Record<string, unknown>): number | undefined {
  const edge = Object.hasOwn(raw, 'edge') ? raw['edge'] : undefined;
  const dns = isRecord(edge) && Object.hasOwn(edge, 'dns') ? edge['dns'] : undefined;
  const v = isRecord(dns) && Object.hasOwn(dns, 'min_ttl_sec') ? dns['min_ttl_sec'] : undefined;
  const r = EDGE_FIELDS.dns.shape.min_ttl_sec.safeParse(v);
  return r.success ? (r.data ?? undefined) : undefined;
}

/**
 * The id of a zone that does not pin one: 32 hex characters of SHA-256 over its (lowercase) name, so it is the same
 * on every start and every node.
 */
export function deriveZoneId(name: string): string {
  return createHash('sha256').update(`refract-zone\0${name}`).digest('hex').slice(0, 32);
}

/**
 * The zones of a config object's `zones:` alone (what `validateConfig` reads), with their issues. The management API
 * uses it to tell the file's zones from its own.
 */
export function parseZones(raw: unknown): { zones: Zone[]; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const zones = validateZones(raw, issues);
  return { zones, issues };
}

/** `zones:` — ids and names unique (E_CONFIG_DUPLICATE_ID). */
function validateZones(raw: unknown, issues: ConfigIssue[]): Zone[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    issues.push(configIssue('/zones', 'E_CONFIG_SCHEMA', 'zones must be a list of {id?, name}'));
    return [];
  }
  const out: Zone[] = [];
  const seenIds = new Map<string, string>();
  const seenNames = new Map<string, string>();
  (raw as readonly unknown[]).forEach((item, i) => {
    const p = pointerJoin('/zones', i);
    if (!isRecord(item)) {
      issues.push(configIssue(p, 'E_CONFIG_SCHEMA', 'a zone must be a mapping {id?, name}'));
      return;
    }
    const r = parseFields(item, ZONE_FIELDS, p, { strict: true, nullIsAbsent: true });
    issues.push(...r.issues);
    if (!r.present.has('name')) issues.push(configIssue(pointerJoin(p, 'name'), 'E_CONFIG_SCHEMA', 'name is required'));
    const name = r.values.name;
    if (name === undefined || r.issues.length > 0) return;
    const id = r.values.id ?? deriveZoneId(name);
    const dupName = seenNames.get(name);
    const dupId = seenIds.get(id);
    if (dupName !== undefined) issues.push(configIssue(pointerJoin(p, 'name'), 'E_CONFIG_DUPLICATE_ID', `zone "${name}" is already listed at ${dupName}`));
    else if (dupId !== undefined) issues.push(configIssue(pointerJoin(p, 'id'), 'E_CONFIG_DUPLICATE_ID', `zone id ${id} is already used at ${dupId}`));
    else out.push({ id, name });
    seenNames.set(name, p);
    seenIds.set(id, p);
  });
  return out;
}

interface PlacedOrigin {
  readonly origin: BuiltinOrigin;
  readonly pointer: string;
}

function validateOrigins(raw: unknown, issues: ConfigIssue[]): PlacedOrigin[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    issues.push(configIssue('/origins', 'E_CONFIG_SCHEMA', 'origins must be a list'));
    return [];
  }
  const out: PlacedOrigin[] = [];
  const names = new Map<string, string>();
  (raw as readonly unknown[]).forEach((item, i) => {
    const p = pointerJoin('/origins', i);
    if (!isRecord(item)) {
      issues.push(configIssue(p, 'E_CONFIG_SCHEMA', 'an origin must be a mapping {name, listen, behaviour}'));
      return;
    }
    const r = parseFields(item, ORIGIN_FIELDS, p, { strict: true, nullIsAbsent: true });
    const before = issues.length;
    issues.push(...r.issues);
    const v = r.values;
    if (!r.present.has('name')) issues.push(configIssue(pointerJoin(p, 'name'), 'E_CONFIG_SCHEMA', 'name is required'));
    if (!r.present.has('listen')) issues.push(configIssue(pointerJoin(p, 'listen'), 'E_CONFIG_SCHEMA', 'listen is required, e.g. tcp://127.0.0.1:6200'));
    const behaviour = v.behaviour ?? DEFAULTS.builtinOriginBehaviour;
    if (behaviour === 'banner' && !r.present.has('banner')) {
      issues.push(configIssue(pointerJoin(p, 'banner'), 'E_CONFIG_SCHEMA', 'behaviour banner needs a banner'));
    }
    if (behaviour !== 'banner' && r.present.has('banner')) {
      issues.push(configIssue(pointerJoin(p, 'banner'), 'E_CONFIG_SCHEMA', 'banner is only for behaviour banner'));
    }
    if (behaviour === 'banner' && v.listen?.protocol === 'udp') {
      issues.push(configIssue(pointerJoin(p, 'behaviour'), 'E_CONFIG_UNSUPPORTED', 'a UDP origin cannot speak first; use echo or discard'));
    }
    if (v.name !== undefined) {
      const first = names.get(v.name);
      if (first !== undefined) issues.push(configIssue(pointerJoin(p, 'name'), 'E_CONFIG_DUPLICATE_ID', `origin name "${v.name}" is already used by ${first}`));
      else names.set(v.name, p);
    }
    if (issues.length > before || v.name === undefined || v.listen === undefined) return;
    out.push({
      pointer: p,
      origin: {
        name: v.name,
        protocol: v.listen.protocol,
        host: v.listen.host,
        ports: v.listen.ports,
        behaviour,
        banner: v.banner,
      },
    });
  });
  return out;
}
