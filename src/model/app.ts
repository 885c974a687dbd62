/**
 * The Spectrum app object: zod field schemas (shape, legacy forms) plus the cross-field rules Spectrum enforces,
 * normalised to an `AppSpec`. Used by the node config (`config.ts`) and, later, the REST API.
 *
 * Validation never throws and reports every problem it can find at once, each as a `ConfigIssue` whose `pointer`
 * (RFC 6901) names the offending field, or the nearest object that exists when the field is missing.
 *
 * Following Enterprise Spectrum, unknown fields are ignored (never copied into the AppSpec), each with a warning
 * (W_CONFIG_UNKNOWN_KEY, suggesting the known key when one is close) unless it is a Spectrum field Refract ignores
 * on purpose (IGNORED_APP_FIELDS). `null` counts as absent for optional fields, as SDKs and Terraform send it.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DEFAULTS, LIMITS } from './defaults.ts';
import { ERRORS, isErrorCode, type ErrorCode } from './errors.ts';
import { deepFreeze } from './freeze.ts';
import { suggestKey } from './suggest.ts';
import {
  formatOriginUri,
  formatPortRange,
  formatProtocol,
  parseHostname,
  parseOriginUri,
  parsePortRange,
  parseProtocol,
  portCount,
  portFromNumber,
  type Parsed,
  type EdgeProtocol,
} from './ports.ts';
import { parseIpLiteral } from './ip.ts';
import { appLimitsSchema, normaliseLimits } from './client-limits.ts';
import {
  type AppSpec,
  type ConfigIssue,
  type OriginSpec,
  type PortRange,
  type ProxyProtocolMode,
  type Zone,
} from './types.ts';
import { findZone, unknownZoneMessage, zoneOfName } from './zones.ts';

// ── issues and pointers (shared with config.ts) ─────────────────────────────────────────────────────────────────

/** Appends reference tokens to an RFC 6901 pointer, escaping `~` as `~0` and `/` as `~1`. */
export function pointerJoin(base: string, ...tokens: readonly (string | number)[]): string {
  let p = base;
  for (const t of tokens) p += '/' + String(t).replaceAll('~', '~0').replaceAll('/', '~1');
  return p;
}

/** Builds a ConfigIssue; `cfCode` comes from the error table, `message` defaults to the table's. */
export function configIssue(pointer: string, code: ErrorCode, message?: string): ConfigIssue {
  const spec: { readonly message: string; readonly cfCode?: number } = ERRORS[code];
  return { pointer, code, cfCode: spec.cfCode, message: message ?? spec.message };
}

/**
 * Turns zod issues into ConfigIssues under `base`. A custom issue raised by `decode` keeps its Refract code;
 * every other zod issue (wrong type, bad enum value, out of range) gets `fallback`. Unknown keys (strict objects)
 * become one E_CONFIG_SCHEMA issue per key, pointing at the key, with a suggestion when `schema` (the schema that
 * produced the issues) knows a close key. An enum miss names the value given and the allowed ones (this needs
 * the issue's `input`: parse with `reportInput: true`).
 */
export function fromZodIssues(issues: readonly z.core.$ZodIssue[], base: string, fallback: ErrorCode, schema?: z.ZodType): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const i of issues) {
    const path = i.path.map((s) => (typeof s === 'symbol' ? String(s.description) : s));
    const at = pointerJoin(base, ...path);
    if (i.code === 'unrecognized_keys') {
      const known = schema === undefined ? [] : objectKeysAt(schema, path);
      for (const k of i.keys) out.push(unknownKeyIssue(pointerJoin(at, k), k, known, 'error'));
    } else if (i.code === 'custom' && isErrorCode(i.params?.['refract'])) {
      out.push(configIssue(at, i.params['refract'], i.message));
    } else {
      const field = path.length > 0 ? String(path[path.length - 1]) : lastToken(base);
      const allowed = enumMiss(i);
      out.push(configIssue(at, fallback, allowed === undefined ? i.message : enumMessage(field, allowed.input, allowed.values)));
    }
  }
  return out;
}

/** The last reference token of a pointer, unescaped. */
function lastToken(pointer: string): string {
  return (pointer.split('/').pop() ?? '').replaceAll('~1', '/').replaceAll('~0', '~');
}

/** A value outside an enum: directly, or in a union one of whose branches is that enum (`proxy_protocol`). */
function enumMiss(i: z.core.$ZodIssue): { input: unknown; values: readonly unknown[] } | undefined {
  if (i.code === 'invalid_value') return { input: i.input, values: i.values };
  if (i.code === 'invalid_union') {
    for (const branch of i.errors) {
      const hit = branch.find((b) => b.code === 'invalid_value' && b.path.length === 0);
      if (hit !== undefined && hit.code === 'invalid_value') return { input: i.input, values: hit.values };
    }
  }
  return undefined;
}

/** `proxy_protocol: "V2" is not one of off, v1, v2, simple; did you mean v2?` (the hint only for a case slip). */
export function enumMessage(field: string, input: unknown, values: readonly unknown[]): string {
  const shown = values.map((v) => (v === '' ? '""' : String(v))).join(', ');
  const given = input === undefined ? 'the value' : JSON.stringify(input);
  const near = typeof input === 'string' ? values.find((v) => typeof v === 'string' && v !== '' && v.toLowerCase() === input.toLowerCase()) : undefined;
  return `${field}: ${given} is not one of ${shown}${near === undefined ? '' : `; did you mean ${String(near)}?`}`;
}

/** The keys of the object schema at `path` inside `schema` (through optional, nullable and arrays); [] if none. */
function objectKeysAt(schema: z.ZodType, path: readonly (string | number)[]): string[] {
  let s: unknown = schema;
  for (let n = 0; ; n++) {
    while (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = (s as z.ZodOptional<z.ZodType>).unwrap();
    if (n === path.length) return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
    const t = path[n];
    if (s instanceof z.ZodObject && typeof t === 'string') s = (s.shape as Record<string, unknown>)[t];
    else if (s instanceof z.ZodArray && typeof t === 'number') s = s.element;
    else return [];
  }
}

// ── unknown keys: did you mean …? (src/model/suggest.ts) ─────────────────────────────────────────────────────────

/**
 * An unknown key: an error (E_CONFIG_SCHEMA) in Refract's strict sections, a warning (W_CONFIG_UNKNOWN_KEY) where
 * Spectrum compatibility makes us ignore unknown fields; with a suggestion when a known key is close.
 */
export function unknownKeyIssue(pointer: string, key: string, known: readonly string[], severity: 'error' | 'warning'): ConfigIssue {
  const suggestion = suggestKey(key, known);
  const hint = suggestion === undefined ? '' : `; did you mean "${suggestion}"?`;
  const issue =
    severity === 'error'
      ? configIssue(pointer, 'E_CONFIG_SCHEMA', `unknown field "${key}"${hint}`)
      : configIssue(pointer, 'W_CONFIG_UNKNOWN_KEY', `unknown field "${key}" is ignored${hint}`);
  return suggestion === undefined ? issue : { ...issue, suggestion };
}

/**
 * Warnings for the keys of a loose mapping that are neither `known` nor `ignored` (fields Spectrum or Cloudflare's
 * API has that Refract ignores on purpose, such as `created_on`: silent). Not a mapping: no warnings.
 */
export function unknownKeyWarnings(raw: unknown, known: readonly string[], ignored: readonly string[], base: string): ConfigIssue[] {
  if (!isRecord(raw)) return [];
  return Object.keys(raw)
    .filter((k) => !known.includes(k) && !ignored.includes(k))
    .map((k) => unknownKeyIssue(pointerJoin(base, k), k, known, 'warning'));
}

/**
 * Inside a zod transform: returns the parsed value, or records the failure (with its code) and returns NEVER.
 * Return its result as is: on failure it is not a T (it is zod's NEVER sentinel), so never read from it.
 */
export function decode<T>(r: Parsed<T>, ctx: z.core.$RefinementCtx): T {
  if (r.ok) return r.value;
  ctx.addIssue({ code: 'custom', message: r.message, params: { refract: r.code } });
  return z.NEVER;
}

/** A non-null, non-array object (JSON's "object"). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

type Shape = Record<string, z.ZodType>;
export type ParsedFields<S extends Shape> = { -readonly [K in keyof S]?: z.output<S[K]> };

export interface FieldsResult<S extends Shape> {
  /** Fields that were present and parsed; a field that failed is absent here and has issues below. */
  readonly values: ParsedFields<S>;
  /** Fields present in the input (non-null when `nullIsAbsent`), parsed or not. */
  readonly present: ReadonlySet<keyof S & string>;
  readonly issues: ConfigIssue[];
  /** Not strict: one W_CONFIG_UNKNOWN_KEY per unknown key (except `ignore`d ones). */
  readonly warnings: ConfigIssue[];
}

/**
 * Parses each field of `raw` with its own schema, so one bad field never hides the others and cross-field rules
 * can still run on the fields that parsed. Reads own properties only. An unknown key is an issue when `strict`,
 * else a warning unless listed in `ignore`; either way with a suggestion when a known key is close.
 */
export function parseFields<S extends Shape>(
  raw: Record<string, unknown>,
  shape: S,
  base: string,
  opts: {
    readonly strict: boolean;
    readonly nullIsAbsent: boolean;
    readonly fallback?: Partial<Record<keyof S, ErrorCode>>;
    readonly ignore?: readonly string[];
  },
): FieldsResult<S> {
  const values: ParsedFields<S> = {};
  const present = new Set<keyof S & string>();
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const known = Object.keys(shape);
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(shape, key)) {
      if (opts.strict) issues.push(unknownKeyIssue(pointerJoin(base, key), key, known, 'error'));
      else if (!(opts.ignore ?? []).includes(key)) warnings.push(unknownKeyIssue(pointerJoin(base, key), key, known, 'warning'));
      continue;
    }
    const k = key as keyof S & string;
    const value = raw[key];
    if (value === undefined || (opts.nullIsAbsent && value === null)) continue;
    present.add(k);
    const schema = shape[k] as z.ZodType;
    const r = schema.safeParse(value, { reportInput: true });
    if (r.success) values[k] = r.data as z.output<S[typeof k]>;
    else issues.push(...fromZodIssues(r.error.issues, pointerJoin(base, key), opts.fallback?.[k] ?? 'E_CONFIG_SCHEMA', schema));
  }
  return { values, present, issues, warnings };
}

// ── the app object's fields ─────────────────────────────────────────────────────────────────────────────────────

const msSetting = z.number().int().min(1).max(LIMITS.maxTimerMs);

const originPort = z.union([z.number(), z.string()]).transform((v, ctx) =>
  decode(typeof v === 'number' ? portFromNumber(v) : parsePortRange(v, 'E_CONFIG_SCHEMA'), ctx),
);

/**
 * Field schemas of the Spectrum app object (docs/spectrum.md, "The app object"), each turning its raw JSON value into
 * a normalised value. `id`, `created_on` and `modified_on` are read-only in Spectrum: `id` is honoured (a config
 * file may pin it), the dates are ignored silently (IGNORED_APP_FIELDS). Cross-field rules live in `validateApp`.
 */
export const APP_FIELDS = {
  id: z.string().regex(LIMITS.idPattern, 'id must be 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit'),
  protocol: z.string().transform((s, ctx) => decode(parseProtocol(s), ctx)),
  dns: z.looseObject({
    name: z.string().transform((s, ctx) => decode(parseHostname(s, 'E_CONFIG_SCHEMA'), ctx)),
    type: z.enum(['CNAME', 'ADDRESS']).nullish(),
  }),
  traffic_type: z.enum(['direct', 'http', 'https']),
  ip_firewall: z.boolean(),
  /** Legacy boolean form: true → 'v1', false → 'off' (cloudflare-go decodes it the same way). */
  proxy_protocol: z.union([z.enum(['off', 'v1', 'v2', 'simple']), z.boolean()]),
  /** Legacy: `spp: true` → proxy_protocol 'simple'. */
  spp: z.boolean(),
  tls: z.enum(['off', 'flexible', 'full', 'strict']),
  argo_smart_routing: z.boolean(),
  edge_ips: z.looseObject({
    type: z.enum(['dynamic', 'static']).nullish(),
    connectivity: z.enum(['all', 'ipv4', 'ipv6']).nullish(),
    ips: z
      .array(
        z.string().transform((s, ctx) => {
          const ip = parseIpLiteral(s);
          return decode(
            ip === undefined ? { ok: false, code: 'E_CONFIG_CIDR', message: `"${s}" is not an IP address` } : { ok: true, value: ip.address },
            ctx,
          );
        }),
      )
      .nullish(),
  }),
  origin_direct: z.array(z.string().transform((s, ctx) => decode(parseOriginUri(s), ctx))),
  origin_dns: z.looseObject({
    name: z.string().transform((s, ctx) => decode(parseHostname(s, 'E_ORIGIN_DNS_INVALID'), ctx)),
    type: z.enum(['', 'A', 'AAAA', 'SRV']).nullish(),
    ttl: z.number().int().min(1).max(LIMITS.maxTtlSec).nullish(),
  }),
  origin_port: originPort,
  /** Accepted by Spectrum, not by this Refract version: presence alone gives E_CONFIG_UNSUPPORTED. */
  virtual_network_id: z.unknown(),
  // Refract extensions: per-app overrides of the node's timeouts (idle applies to TCP or UDP per the app).
  connect_timeout_ms: msSetting,
  idle_timeout_ms: msSetting,
  /** Refract extension, UDP apps: concurrent flows of this app; a new flow past it is refused (counted). */
  udp_max_flows: z.number().int().min(1).max(10_000_000),
  /** Refract extension: per-client limits of this app (src/model/client-limits.ts); the node's apply too. */
  limits: appLimitsSchema,
  /** Refract extension, TCP apps: open connections of this app at most; a new one past it is closed (503). */
  max_connections: z.number().int().min(1).max(10_000_000),
  /**
   * Refract extension, TCP apps with tls != off: the edge certificate (PEM files; without them Refract's local CA
   * issues one for dns.name) and, for full/strict, the name sent as SNI to the origin and checked in strict.
   */
  edge_tls: z.strictObject({
    cert: z.string().min(1).nullish(),
    key: z.string().min(1).nullish(),
    origin_server_name: z.string().transform((s, ctx) => decode(parseHostname(s, 'E_CONFIG_SCHEMA'), ctx)).nullish(),
  }),
  /** Refract extension: with proxy_protocol v2 and edge TLS, the header carries the SSL TLV and SNI as AUTHORITY. */
  proxy_protocol_tlvs: z.boolean(),
  /**
   * Refract extension: the zone the app belongs to, by id or name (src/model/zones.ts). Resolved to `AppSpec.zoneId`
   * and not part of `spec` (Spectrum's app object has no such field).
   */
  zone: z.string().min(1),
} as const;

/** Field names the validator reads; anything else in an app object is ignored (with W_CONFIG_UNKNOWN_KEY). */
export const KNOWN_APP_FIELDS: readonly string[] = Object.keys(APP_FIELDS);

/**
 * Fields of Spectrum's app object that Refract ignores on purpose, silently: the read-only dates of an API response
 * and the legacy `ipv4` flag of 2018-era responses, and Refract's read-only `ips` (the addresses allocated from
 * `edge.pools`), so an app copied from `GET /spectrum/apps` validates without warnings. (`id` is honoured, not
 * ignored.)
 */
export const IGNORED_APP_FIELDS: readonly string[] = ['created_on', 'modified_on', 'ipv4', 'ips'];

/** The loose sub-objects of an app (unknown keys ignored, as Spectrum does) and the keys each one knows. */
const LOOSE_APP_OBJECTS = {
  dns: Object.keys(APP_FIELDS.dns.shape),
  edge_ips: Object.keys(APP_FIELDS.edge_ips.shape),
  origin_dns: Object.keys(APP_FIELDS.origin_dns.shape),
} as const;

/** The input shape of an app object as an operator writes it (all Spectrum forms, legacy included). */
export type SpectrumAppInput = { [K in keyof typeof APP_FIELDS]?: z.input<(typeof APP_FIELDS)[K]> | null } & {
  protocol: string;
  dns: { name: string; type?: 'CNAME' | 'ADDRESS' | null };
};

// ── validation ──────────────────────────────────────────────────────────────────────────────────────────────────

export interface AppValidationOptions {
  /**
   * Smallest `origin_dns.ttl` accepted, seconds. Spectrum's floor is 600 (the default); `validateConfig` passes 1
   * when the node sets `edge.dns.min_ttl_sec` below 600, so tests can use short TTLs.
   */
  readonly originDnsMinTtlSec?: number;
  /** The configured zones, for the app's `zone` field and its zone by DNS name (none: the app has no zone). */
  readonly zones?: readonly Zone[];
}

/** `warnings` (W_ codes: unknown keys, each with a suggestion when one is close) come on both branches. */
export type AppResult =
  | { readonly ok: true; readonly app: AppSpec; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

/**
 * Validates one Spectrum app object and normalises it. `pointerPrefix` is prepended to every issue pointer
 * (`/apps/2` in a config file, `` for a REST request body). Never throws; the AppSpec is deep-frozen.
 */
export function validateApp(raw: unknown, pointerPrefix = '', options: AppValidationOptions = {}): AppResult {
  if (!isRecord(raw)) return { ok: false, issues: [configIssue(pointerPrefix, 'E_CONFIG_SCHEMA', 'an app must be an object')], warnings: [] };
  const base = pointerPrefix;
  const at = (...tokens: (string | number)[]): string => pointerJoin(base, ...tokens);
  const { values: v, present, issues, warnings } = parseFields(raw, APP_FIELDS, base, {
    strict: false,
    nullIsAbsent: true,
    fallback: { origin_dns: 'E_ORIGIN_DNS_INVALID' },
    ignore: IGNORED_APP_FIELDS,
  });
  for (const [field, known] of Object.entries(LOOSE_APP_OBJECTS)) {
    if (Object.hasOwn(raw, field)) warnings.push(...unknownKeyWarnings(raw[field], known, [], at(field)));
  }
  const add = (pointer: string, code: ErrorCode, message?: string): void => {
    issues.push(configIssue(pointer, code, message));
  };

  if (!present.has('protocol')) add(at('protocol'), 'E_CONFIG_SCHEMA', 'protocol is required, e.g. tcp/22');
  if (!present.has('dns')) add(at('dns'), 'E_CONFIG_SCHEMA', 'dns is required, e.g. {type: CNAME, name: ssh.example.com}');
  const edge: EdgeProtocol | undefined = v.protocol;

  // proxy_protocol, with the legacy boolean and `spp` forms.
  let proxyProtocol: ProxyProtocolMode = DEFAULTS.proxyProtocol;
  let ppPointer = at('proxy_protocol');
  if (typeof v.proxy_protocol === 'boolean') proxyProtocol = v.proxy_protocol ? 'v1' : 'off';
  else if (v.proxy_protocol !== undefined) proxyProtocol = v.proxy_protocol;
  if (v.spp === true) {
    if (proxyProtocol === 'off' || proxyProtocol === 'simple') {
      proxyProtocol = 'simple';
      ppPointer = at('spp');
    } else {
      add(at('spp'), 'E_CONFIG_PROXY_PROTOCOL', `spp: true (simple) conflicts with proxy_protocol "${proxyProtocol}"`);
    }
  }
  if (edge?.protocol === 'udp' && proxyProtocol === 'v1') add(ppPointer, 'E_CONFIG_PROXY_PROTOCOL', 'PROXY v1 is TCP only; use v2 or simple for UDP');
  if (edge?.protocol === 'tcp' && proxyProtocol === 'simple') add(ppPointer, 'E_CONFIG_PROXY_PROTOCOL', 'simple (SPP) is UDP only; use v1 or v2 for TCP');

  const tls = v.tls ?? DEFAULTS.tls;
  if (edge?.protocol === 'udp' && tls !== 'off') add(at('tls'), 'E_CONFIG_SCHEMA', 'edge TLS is for TCP apps only; use tls: off');
  if (edge?.protocol === 'udp' && v.max_connections !== undefined) add(at('max_connections'), 'E_CONFIG_SCHEMA', 'max_connections caps TCP connections; cap a UDP app\'s flows with udp_max_flows');
  const et = v.edge_tls;
  if (et !== undefined) {
    if (tls === 'off') add(at('edge_tls'), 'E_CONFIG_SCHEMA', 'edge_tls applies to apps with tls flexible, full or strict');
    if ((et.cert == null) !== (et.key == null)) add(at('edge_tls', et.cert == null ? 'cert' : 'key'), 'E_CONFIG_SCHEMA', 'give both edge_tls.cert and edge_tls.key, or neither (the local CA issues one)');
    if (et.origin_server_name != null && tls !== 'full' && tls !== 'strict') {
      add(at('edge_tls', 'origin_server_name'), 'E_CONFIG_SCHEMA', 'origin_server_name is for tls full or strict (TLS to the origin)');
    }
  }
  const proxyProtocolTlvs = v.proxy_protocol_tlvs ?? false;
  if (proxyProtocolTlvs && proxyProtocol !== 'v2') add(at('proxy_protocol_tlvs'), 'E_CONFIG_PROXY_PROTOCOL', 'proxy_protocol_tlvs needs proxy_protocol v2');
  const trafficType = v.traffic_type ?? DEFAULTS.trafficType;
  if (trafficType !== 'direct') add(at('traffic_type'), 'E_CONFIG_UNSUPPORTED', `traffic_type "${trafficType}" (the L7 pipeline) is not supported; use direct`);
  if (present.has('virtual_network_id')) add(at('virtual_network_id'), 'E_CONFIG_UNSUPPORTED', 'virtual-network origins are not supported');

  // dns and edge_ips: dynamic ⇔ CNAME, static ⇔ ADDRESS (Spectrum 11004).
  const dnsType = v.dns?.type ?? DEFAULTS.dnsType;
  let edgeIps: AppSpec['edgeIps'] | undefined = DEFAULTS.edgeIps;
  if (present.has('edge_ips')) {
    const e = v.edge_ips;
    edgeIps = undefined;
    if (e !== undefined) {
      const type = e.type ?? (e.ips != null ? 'static' : 'dynamic');
      if (type === 'dynamic') {
        if (e.ips != null) add(at('edge_ips', 'ips'), 'E_CONFIG_SCHEMA', 'ips is only for edge_ips type static');
        else edgeIps = { type, connectivity: e.connectivity ?? DEFAULTS.edgeIps.connectivity };
      } else if (e.connectivity != null) {
        add(at('edge_ips', 'connectivity'), 'E_CONFIG_SCHEMA', 'connectivity is only for edge_ips type dynamic');
      } else if (e.ips == null || e.ips.length === 0) {
        add(at('edge_ips', 'ips'), 'E_CONFIG_SCHEMA', 'static edge_ips needs at least one IP');
      } else {
        edgeIps = { type, ips: e.ips };
      }
    }
  }
  if (v.dns !== undefined && edgeIps !== undefined && (edgeIps.type === 'dynamic') !== (dnsType === 'CNAME')) {
    add(
      present.has('edge_ips') ? at('edge_ips') : at('dns', 'type'),
      'E_DNS_TYPE_MISMATCH',
      `edge_ips ${edgeIps.type} needs dns.type ${edgeIps.type === 'dynamic' ? 'CNAME' : 'ADDRESS'}`,
    );
  }

  // Origins: exactly one of origin_direct / origin_dns (11000).
  const checkSize = (r: PortRange, pointer: string): void => {
    if (edge === undefined || r.start === r.end) return; // a single origin port takes every edge port
    if (portCount(r) !== portCount(edge.ports)) {
      add(pointer, 'E_CONFIG_PORT_RANGE_MISMATCH', `origin range ${formatPortRange(r)} has ${portCount(r)} ports, edge ${formatPortRange(edge.ports)} has ${portCount(edge.ports)}`);
    }
  };
  const hasDirect = present.has('origin_direct');
  const hasDns = present.has('origin_dns');
  let origin: OriginSpec | undefined;
  if (hasDirect === hasDns) {
    add(hasDirect ? at('origin_dns') : base, 'E_ORIGIN_CONFIG_INVALID', hasDirect ? 'give origin_direct or origin_dns, not both' : 'give origin_direct or origin_dns');
  } else if (hasDirect) {
    if (present.has('origin_port')) add(at('origin_port'), 'E_ORIGIN_CONFIG_INVALID', 'origin_port goes with origin_dns; put the port in each origin_direct URI');
    const targets = v.origin_direct;
    if (targets !== undefined) {
      if (targets.length === 0) add(at('origin_direct'), 'E_ORIGIN_CONFIG_INVALID', 'origin_direct needs at least one address');
      targets.forEach((t, i) => {
        if (edge !== undefined && t.protocol !== edge.protocol) {
          add(at('origin_direct', i), 'E_CONFIG_PROTOCOL_MISMATCH', `a ${t.protocol}:// origin cannot serve a ${edge.protocol} app`);
        }
        checkSize(t.ports, at('origin_direct', i));
      });
      origin = { kind: 'direct', targets };
    }
  } else {
    const d = v.origin_dns;
    const ttlFloor = options.originDnsMinTtlSec ?? LIMITS.originDnsMinTtlSec;
    if (d !== undefined) {
      const type = d.type ?? DEFAULTS.originDnsType;
      if (d.ttl != null && d.ttl < ttlFloor) add(at('origin_dns', 'ttl'), 'E_ORIGIN_DNS_INVALID', `origin_dns.ttl must be at least ${ttlFloor} s`);
      if (type === 'SRV' && present.has('origin_port')) {
        add(at('origin_port'), 'E_ORIGIN_DNS_INVALID', 'an SRV origin takes its port from the record; drop origin_port');
      } else if (type !== 'SRV' && !present.has('origin_port')) {
        add(at('origin_port'), 'E_ORIGIN_DNS_INVALID', `origin_dns type "${type}" needs origin_port`);
      }
      if (v.origin_port !== undefined) checkSize(v.origin_port, at('origin_port'));
      origin = { kind: 'dns', name: d.name, type, ttlSec: d.ttl ?? undefined, ports: type === 'SRV' ? undefined : v.origin_port };
    }
  }

  // The zone: named, or the one dns.name falls in.
  const zones = options.zones ?? [];
  let zoneId: string | undefined;
  if (v.zone !== undefined) {
    zoneId = findZone(v.zone, zones)?.id;
    if (zoneId === undefined) add(at('zone'), 'E_CONFIG_ZONE', unknownZoneMessage(v.zone, zones));
  } else if (v.dns !== undefined) {
    zoneId = zoneOfName(v.dns.name, zones)?.id;
  }

  if (issues.length > 0) return { ok: false, issues, warnings };
  const dns = v.dns;
  if (edge === undefined || dns === undefined || origin === undefined || edgeIps === undefined) {
    throw new Error('validateApp: a required part is missing although no issue was recorded');
  }
  const id = v.id ?? deriveAppId(edge, dns.name);

  const spec: Record<string, unknown> = {
    id,
    protocol: formatProtocol(edge.protocol, edge.ports),
    dns: { type: dnsType, name: dns.name },
  };
  if (origin.kind === 'direct') {
    spec['origin_direct'] = origin.targets.map(formatOriginUri);
  } else {
    spec['origin_dns'] = { name: origin.name, type: origin.type, ...(origin.ttlSec === undefined ? {} : { ttl: origin.ttlSec }) };
    if (origin.ports !== undefined) {
      spec['origin_port'] = origin.ports.start === origin.ports.end ? origin.ports.start : formatPortRange(origin.ports);
    }
  }
  const ipFirewall = v.ip_firewall ?? DEFAULTS.ipFirewall;
  const argo = v.argo_smart_routing ?? DEFAULTS.argoSmartRouting;
  Object.assign(spec, {
    proxy_protocol: proxyProtocol,
    ip_firewall: ipFirewall,
    tls,
    edge_ips: { ...edgeIps },
    traffic_type: trafficType,
    argo_smart_routing: argo,
  });
  if (v.connect_timeout_ms !== undefined) spec['connect_timeout_ms'] = v.connect_timeout_ms;
  if (v.idle_timeout_ms !== undefined) spec['idle_timeout_ms'] = v.idle_timeout_ms;
  if (v.udp_max_flows !== undefined) spec['udp_max_flows'] = v.udp_max_flows;
  const limits = normaliseLimits(v.limits);
  if (v.limits !== undefined) spec['limits'] = Object.fromEntries(Object.entries(v.limits).filter(([, x]) => x != null));
  if (v.max_connections !== undefined) spec['max_connections'] = v.max_connections;
  const edgeTls: AppSpec['edgeTls'] =
    et === undefined
      ? undefined
      : {
          certFile: et.cert ?? undefined,
          keyFile: et.key ?? undefined,
          originServerName: et.origin_server_name ?? undefined,
        };
  if (et !== undefined) {
    spec['edge_tls'] = Object.fromEntries(Object.entries({ cert: et.cert, key: et.key, origin_server_name: et.origin_server_name }).filter(([, x]) => x != null));
  }
  if (proxyProtocolTlvs) spec['proxy_protocol_tlvs'] = true;

  const app: AppSpec = {
    id,
    protocol: edge.protocol,
    edgePorts: edge.ports,
    origin,
    proxyProtocol,
    tls,
    ipFirewall,
    argoSmartRouting: argo,
    trafficType,
    dns: { type: dnsType, name: dns.name },
    edgeIps,
    connectTimeoutMs: v.connect_timeout_ms,
    idleTimeoutMs: v.idle_timeout_ms,
    udpMaxFlows: v.udp_max_flows,
    ...(limits === undefined ? {} : { limits }),
    ...(v.max_connections === undefined ? {} : { maxConnections: v.max_connections }),
    edgeTls,
    proxyProtocolTlvs,
    zoneId,
    spec,
  };
  return { ok: true, app: deepFreeze(app), warnings };
}

/**
 * The id of an app that does not pin one: 32 hex characters of SHA-256 over the normalised protocol and DNS name,
 * so it is the same on every reload and every node. Two apps share it only if they share protocol, ports and
 * name, which is an edge conflict anyway.
 */
export function deriveAppId(edge: EdgeProtocol, dnsName: string): string {
  return createHash('sha256')
    .update(`refract-app\0${formatProtocol(edge.protocol, edge.ports)}\0${dnsName}`)
    .digest('hex')
    .slice(0, LIMITS.derivedIdLength);
}

/**
 * Rules across a set of valid apps: ids are unique (E_CONFIG_DUPLICATE_ID at `<p>/id`, on the later app, naming the
 * earlier one). `pointers[i]` is where `apps[i]` came from. Whether two apps share an edge address and port depends
 * on the addresses each binds: src/model/edge-conflicts.ts.
 */
export function crossAppIssues(apps: readonly AppSpec[], pointers: readonly string[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const firstById = new Map<string, number>();
  apps.forEach((app, j) => {
    const p = pointers[j] ?? '';
    const dup = firstById.get(app.id);
    if (dup === undefined) firstById.set(app.id, j);
    else out.push(configIssue(pointerJoin(p, 'id'), 'E_CONFIG_DUPLICATE_ID', `id "${app.id}" is already used by ${pointers[dup] ?? ''}`));
  });
  return out;
}
