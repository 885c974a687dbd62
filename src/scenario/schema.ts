/**
 * Scenario files: text → validated `ScenarioFile` (`parseScenario`), object → `ScenarioFile` (`validateScenario`).
 * The format is `types.ts`; docs/scenarios.md is the reader's reference.
 *
 * Like the config file, validation never throws, collects every problem at once, and gives each an RFC 6901 pointer
 * into the input plus a stable code (E_SCENARIO_*; the apps and `edge` sections are checked by the config validator
 * itself, so their problems keep their E_CONFIG_* / E_ORIGIN_* codes and Cloudflare numbers). `parseScenario` adds
 * the YAML line and column of each pointer where the file has one. `null` counts as absent, as in the config file.
 *
 * Checks come in two passes per section: shape (zod, strict: an unknown key is a typo) and meaning (names resolve,
 * addresses are owned, ids are unique, steps come after the connection they act on). A section whose shape is wrong
 * is left out of the meaning checks that depend on it, so one typo does not cascade into a page of errors.
 */
import YAML, { LineCounter } from 'yaml';
import { z } from 'zod';
import { configIssue, pointerJoin } from '../model/app.ts';
import { validateAccessRules } from '../model/access-rules.ts';
import { validateConfig } from '../model/config.ts';
import { LIMITS } from '../model/defaults.ts';
import { isErrorCode, type ErrorCode } from '../model/errors.ts';
import { deepFreeze } from '../model/freeze.ts';
import { inAnyCidr, parseCidr, parseIpLiteral } from '../model/ip.ts';
import { parseHostname, parseOriginUri } from '../model/ports.ts';
import { type ConfigIssue, type RefractConfig, type Zone } from '../model/types.ts';
import { type ScenarioFile, type Topology } from './types.ts';
import { OpenedIds } from './opened-ids.ts';

/** A scenario problem: a ConfigIssue, plus where it is in the file (1-based) when the text is known. */
export interface ScenarioIssue extends ConfigIssue {
  readonly line?: number;
  readonly col?: number;
}

export type ScenarioResult = { readonly ok: true; readonly scenario: ScenarioFile } | { readonly ok: false; readonly issues: readonly ScenarioIssue[] };

/** Default run bound (1 h of virtual time), and the largest one accepted (7 days). */
export const DEFAULT_MAX_TIME_MS = 3_600_000;
export const MAX_TIME_LIMIT_MS = 604_800_000;
/** Defaults of the `load` step. */
export const LOAD_DEFAULT_EVERY_MS = 1;
export const LOAD_DEFAULT_BYTES = 64;
/** Defaults of the `datagram` step. */
export const DATAGRAM_DEFAULT_COUNT = 1;
export const DATAGRAM_DEFAULT_EVERY_MS = 1;
/** Largest `count` of one load step and largest `bytes` of one send (keeps a typo from eating the machine). */
const MAX_LOAD_COUNT = 100_000;
const MAX_SEND_BYTES = 64 * 1024 * 1024;
/** Largest UDP payload over IPv4 (65,535 − 8 − 20): a larger datagram cannot be sent at all. */
export const MAX_DATAGRAM_BYTES = 65_507;
/** A fixed client source port lies below the ephemeral range (49152-65535), so it never meets an ephemeral one. */
const MAX_FROM_PORT = 49_151;

/** Origin behaviours per listener protocol (`echo` is both). */
export const TCP_BEHAVIOURS = ['echo', 'sink', 'banner', 'refuse', 'blackhole', 'reset', 'close'] as const;
export const UDP_BEHAVIOURS = ['echo', 'spp-echo', 'v2-echo', 'silent'] as const;

// ── small parsers shared with the runner ────────────────────────────────────────────────────────────────────────

export interface IpPort {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

/** `192.0.2.1:80` or `[2001:db8::1]:80` (port 1-65535), else undefined. */
export function parseIpPort(text: string): IpPort | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const ip = parseIpLiteral(m[1] ?? '');
  const port = Number(m[2]);
  if (ip === undefined || port < 1 || port > 65_535) return undefined;
  if ((ip.family === 'IPv6') !== text.startsWith('[')) return undefined;
  return { address: ip.address, port, family: ip.family };
}

/** `ip:port`, IPv6 in brackets: how reports and expectations write endpoints. */
export function formatIpPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** An SRV record written `PRIORITY WEIGHT PORT TARGET`, as in a zone file. */
export function parseSrvRecord(text: string): { priority: number; weight: number; port: number; address: string } | undefined {
  const m = /^(\d{1,5}) (\d{1,5}) (\d{1,5}) (\S+)$/.exec(text.trim());
  if (m === null) return undefined;
  const [priority, weight, port] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const target = parseHostname(m[4] ?? '', 'E_SCENARIO_ADDRESS');
  if (!target.ok || priority > 65_535 || weight > 65_535 || port < 1 || port > 65_535) return undefined;
  return { priority, weight, port, address: target.value };
}

/** The id of a load step's `i`-th connection (0-based). */
export function loadId(load: { id_prefix: string }, i: number): string {
  return `${load.id_prefix}${i}`;
}

/** The address a client sends from: `from`, else its first address of `family` (undefined: it has none). */
export function sourceAddressOf(clientAddresses: readonly string[], family: 'IPv4' | 'IPv6', from: string | undefined): string | undefined {
  if (from !== undefined) return from;
  return clientAddresses.find((a) => parseIpLiteral(a)?.family === family);
}

/** The address family a `resolve` step asks for: AAAA → IPv6, A (the default) → IPv4. */
export function resolveFamily(type: 'A' | 'AAAA' | undefined): 'IPv4' | 'IPv6' {
  return type === 'AAAA' ? 'IPv6' : 'IPv4';
}

/** The `listen` addresses of a scenario's `dns` section, as a list (a single string is a list of one). */
export function dnsListens(dns: { listen: string | readonly string[] } | undefined): readonly string[] {
  if (dns === undefined) return [];
  return typeof dns.listen === 'string' ? [dns.listen] : dns.listen;
}

/**
 * Every edge pool block a scenario names (`edge.pools.ipv4`/`ipv6` of the top-level `edge` section and of every
 * `reload.edge`), each once: the edge host owns them whole in the simulated world, so any address allocated from
 * them can be bound there and reached.
 */
export function scenarioPools(edge: Record<string, unknown> | undefined, reloadEdges: ReadonlyArray<Record<string, unknown> | undefined>): string[] {
  const out = new Set<string>();
  for (const e of [edge, ...reloadEdges]) {
    const pools = e?.['pools'];
    if (typeof pools !== 'object' || pools === null) continue;
    for (const family of ['ipv4', 'ipv6']) {
      const list = (pools as Record<string, unknown>)[family];
      if (!Array.isArray(list)) continue;
      for (const b of list) if (typeof b === 'string' && parseCidr(b) !== undefined) out.add(b);
    }
  }
  return [...out];
}

/** Canonical text of an IP literal (so `2001:DB8::1` and `2001:db8:0::1` are one address). */
export function canonicalIp(address: string): string {
  const ip = parseIpLiteral(address);
  if (ip === undefined) return address;
  if (ip.family === 'IPv4') return ip.address;
  // Expand and recompress through URL parsing, which implements RFC 5952's canonical form.
  return new URL(`http://[${ip.address}]/`).hostname.slice(1, -1);
}

/** The zone API apps live in when a scenario lists no `zones` (its id is derived from the name, as in the config file). */
export const DEFAULT_ZONE_NAME = 'example.test';

/**
 * The raw config object one edge node runs: the scenario's `edge` section (addresses default to the edge host's),
 * the apps, the zone's IP Access rules (`access_rules`, top level, when given), the zones (default one,
 * DEFAULT_ZONE_NAME) and `node.id` = the edge's name. Shared by validation and the runner so both see the same config.
 */
export function edgeConfigInput(
  edgeName: string,
  hostAddresses: readonly string[],
  edge: Record<string, unknown> | undefined,
  apps: readonly unknown[],
  accessRules?: readonly unknown[],
  zones?: readonly unknown[],
): Record<string, unknown> {
  return {
    node: { id: edgeName },
    edge: { addresses: [...hostAddresses], ...edge },
    apps: [...apps],
    ...(accessRules === undefined ? {} : { access_rules: [...accessRules] }),
    zones: zones === undefined ? [{ name: DEFAULT_ZONE_NAME }] : [...zones],
  };
}

/** Validates an edge's config; the runner uses it for the initial config and each reload. */
export function edgeConfig(
  edgeName: string,
  hostAddresses: readonly string[],
  edge: Record<string, unknown> | undefined,
  apps: readonly unknown[],
  accessRules?: readonly unknown[],
  zones?: readonly unknown[],
): { ok: true; config: RefractConfig } | { ok: false; issues: readonly ConfigIssue[] } {
  return validateConfig(edgeConfigInput(edgeName, hostAddresses, edge, apps, accessRules, zones));
}

// ── shapes (zod) ────────────────────────────────────────────────────────────────────────────────────────────────

const hostName = z.string().regex(LIMITS.idPattern, 'a host name is 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit');
const connId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'an id is 1-128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit');
const virtualMs = z.number().min(0).max(MAX_TIME_LIMIT_MS);
/** An `api` step's name for an app (an API app's id is made at run time; a file app is named by its `id`). */
const apiRef = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'a ref is 1-128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit');
/** The body of an API write: a Spectrum app object, checked when the step runs (as the API checks it). */
const apiApp = z.record(z.string(), z.unknown(), { error: 'app is a Spectrum app object (a mapping)' });
const probability = z.number().min(0).max(1);
const portNumber = z.number().int().min(1).max(65_535);
const hostOrHosts = z.union([hostName, z.array(hostName).min(1)], { error: 'give a host name or a list of host names' });
const direction = z.enum(['both', 'a->b', 'b->a']);

/** An edge host: its process's file-descriptor limit and the guard's reserve (the simulator's `maxDescriptors`). */
const EDGE_HOST = z.strictObject({
  name: hostName,
  addresses: z.array(z.string()).min(1),
  max_descriptors: z.number().int().min(1).max(1_048_576).optional(),
  descriptor_reserve: z.number().int().min(1).max(1_048_576).optional(),
});
const CLIENT = z.strictObject({
  name: hostName,
  addresses: z.array(z.string()).min(1),
  country: z.string().regex(/^[A-Z]{2}$/, 'country is a two-letter ISO 3166 code in capitals').optional(),
  asn: z.number().int().min(0).max(4_294_967_295).optional(),
});
const TLS_VERSION = z.enum(['TLSv1.1', 'TLSv1.2', 'TLSv1.3']);
const TLS_ENDPOINT = {
  min_version: TLS_VERSION.optional(),
  max_version: TLS_VERSION.optional(),
  ciphers: z.array(z.string()).optional(),
  ciphersuites: z.array(z.string()).optional(),
};
const CERTIFICATE = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'a certificate id is 1-128 of A-Z a-z 0-9 . _ : -'),
  names: z.array(z.string().min(1)).min(1),
  key_type: z.enum(['rsa', 'ecdsa']).optional(),
  validity: z.enum(['valid', 'expired', 'not_yet_valid']).optional(),
  issuer: z.string().min(1).optional(),
});
const LISTENER = z.strictObject({
  listen: z.string(),
  behaviour: z.enum([...new Set([...TCP_BEHAVIOURS, ...UDP_BEHAVIOURS])] as [string, ...string[]]),
  banner: z.string().min(1).optional(),
  parse_proxy: z.union([z.boolean(), z.literal('required')], { error: 'parse_proxy is true, false or "required"' }).optional(),
  wrong_header_for: z.array(z.string()).optional(),
  tls: z.strictObject({ cert: z.string().min(1), ...TLS_ENDPOINT }).optional(),
});
const ORIGIN = z.strictObject({ name: hostName, addresses: z.array(z.string()).min(1), listeners: z.array(LISTENER) });
const LINK_FIELDS = {
  direction: direction.optional(),
  latency_ms: virtualMs.optional(),
  jitter_ms: virtualMs.optional(),
  loss: z.number().min(0).lt(1, 'loss must be < 1 (use a partition for a link that drops everything)').optional(),
  duplicate: probability.optional(),
  reorder: probability.optional(),
  bandwidth_bytes_per_ms: z.number().positive().optional(),
  queue_bytes: z.number().int().min(0).optional(),
  slice_max_bytes: z.number().int().min(1).optional(),
};
const LINK = z.strictObject({ between: z.tuple([hostName, hostName]), ...LINK_FIELDS });
const DNS = z.strictObject({
  name: z.string(),
  type: z.enum(['A', 'AAAA', 'SRV']),
  records: z.array(z.string()),
  ttl: z.number().int().min(0).max(LIMITS.maxTtlSec),
});
/** The topology's lists are checked element by element (see `parseTopology`), so one bad host hides no other. */
const TOPOLOGY_LISTS = z.strictObject({
  edges: z.array(z.unknown()).min(1, 'a scenario needs at least one edge'),
  clients: z.array(z.unknown()).optional(),
  origins: z.array(z.unknown()).optional(),
  links: z.array(z.unknown()).optional(),
  dns: z.array(z.unknown()).optional(),
});
interface ParsedTopology {
  edges: Array<z.output<typeof EDGE_HOST>>;
  clients: Array<z.output<typeof CLIENT>>;
  origins: Array<z.output<typeof ORIGIN>>;
  links: Array<z.output<typeof LINK>> | undefined;
  dns: Array<z.output<typeof DNS>> | undefined;
  /** Names of hosts whose entry is malformed: references to them are not reported again. */
  broken: Set<string>;
  /** Every element parsed: the topology can be run. */
  complete: boolean;
}

/** One schema per timeline action; a step is `{ at, <exactly one of these> }`. */
const ACTIONS = {
  connect: z.strictObject({
    id: connId,
    client: hostName,
    to: z.string().optional(),
    resolved: connId.optional(),
    port: portNumber.optional(),
    from: z.string().optional(),
    half_open: z.boolean().optional(),
    tls: z.strictObject({ sni: z.string().min(1).optional(), verify: z.boolean().optional(), ...TLS_ENDPOINT }).optional(),
  }),
  send: z.strictObject({ id: connId, text: z.string().optional(), bytes: z.number().int().min(0).max(MAX_SEND_BYTES).optional() }),
  end: z.strictObject({ id: connId }),
  reset: z.strictObject({ id: connId }),
  load: z.strictObject({
    id_prefix: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,100}$/, 'id_prefix is 1-101 of A-Z a-z 0-9 . _ : -, starting with a letter or digit'),
    client: hostName,
    to: z.string(),
    count: z.number().int().min(1).max(MAX_LOAD_COUNT),
    every_ms: virtualMs.optional(),
    bytes: z.number().int().min(0).max(MAX_SEND_BYTES).optional(),
    echo_bytes_expected: z.boolean().optional(),
  }),
  partition: z.strictObject({ a: hostOrHosts, b: hostOrHosts, direction: direction.optional() }),
  heal: z.strictObject({ a: hostOrHosts.optional(), b: hostOrHosts.optional() }),
  link: LINK,
  crash: z.strictObject({ host: hostName }),
  restart: z.strictObject({ host: hostName }),
  reload: z.strictObject({ apps: z.array(z.unknown()).optional(), edge: z.record(z.string(), z.unknown()).optional(), access_rules: z.array(z.unknown()).optional() }),
  dns: DNS,
  datagram: z.strictObject({
    id: connId,
    client: hostName,
    to: z.string().optional(),
    resolved: connId.optional(),
    port: portNumber.optional(),
    from: z.string().optional(),
    from_port: z.number().int().min(1).max(MAX_FROM_PORT, `from_port is 1-${MAX_FROM_PORT} (below the ephemeral range); leave it out for an ephemeral port`).optional(),
    text: z.string().optional(),
    bytes: z.number().int().min(0).max(MAX_DATAGRAM_BYTES, `a UDP datagram carries at most ${MAX_DATAGRAM_BYTES} bytes`).optional(),
    count: z.number().int().min(1).max(MAX_LOAD_COUNT).optional(),
    every_ms: virtualMs.optional(),
  }),
  api: z.strictObject({
    create: z.strictObject({ ref: apiRef, zone: z.string().min(1).optional(), app: apiApp }).optional(),
    update: z.strictObject({ ref: apiRef, app: apiApp }).optional(),
    delete: z.strictObject({ ref: apiRef }).optional(),
    rotate: z.strictObject({ ref: apiRef }).optional(),
    expect_error: z.string().regex(/^E[A-Z0-9_]+$/, 'expect_error is a Refract error code such as E_CONFIG_EDGE_CONFLICT, or EHOSTDOWN').optional(),
  }),
  resolve: z.strictObject({
    id: connId,
    client: hostName,
    name: z.string(),
    type: z.enum(['A', 'AAAA']).optional(),
    server: z.string().optional(),
    tcp: z.boolean().optional(),
  }),
} as const;
type ActionName = keyof typeof ACTIONS;
const ACTION_NAMES = Object.keys(ACTIONS) as ActionName[];

const CONN_EXPECT = z.strictObject({
  id: connId,
  status: z.number().int().min(0).max(999).optional(),
  event: z.enum(['disconnect', 'originError', 'resolveOrigin', 'clientFiltered', 'tlsError']).optional(),
  matched: z.enum(['UNKNOWN', 'BLOCK_IP', 'WHITELIST_IP', 'BLOCK_ASN', 'WHITELIST_ASN', 'BLOCK_COUNTRY', 'WHITELIST_COUNTRY']).optional(),
  country: z.string().regex(/^[A-Z0-9]{2}$/, 'country is a two-character code in capitals (XX: unknown)').optional(),
  origin: z.string().optional(),
  client_bytes: z.number().int().min(0).optional(),
  origin_bytes: z.number().int().min(0).optional(),
  received: z.string().optional(),
  proxy_header: z.strictObject({ version: z.union([z.literal(1), z.literal(2)], { error: 'version is 1 or 2' }), src: z.string(), dst: z.string() }).optional(),
  close_reason: z.string().optional(),
  error_code: z.string().regex(/^E_[A-Z0-9_]+$/, 'error_code is a Refract code such as E_TLS_ORIGIN_CERT_NAME').optional(),
  error: z.string().regex(/^(none|E[A-Z0-9_]+)$/, 'error is a socket error code such as ECONNREFUSED, or none').optional(),
  received_bytes: z.number().int().min(0).optional(),
  closed_at_ms: z.tuple([z.number().min(0), z.number().min(0)]).optional(),
  tls: z
    .strictObject({
      client_protocol: z.string().optional(),
      client_cipher: z.string().optional(),
      client_status: z.string().optional(),
      sni: z.string().optional(),
      origin_protocol: z.string().optional(),
      origin_cipher: z.string().optional(),
      origin_status: z.string().optional(),
      origin_fingerprint_of: z.string().optional(),
    })
    .optional(),
  client_tls: z.strictObject({ protocol: z.string().optional(), cipher: z.string().optional(), failure: z.string().optional() }).optional(),
});
const count = z.union([z.number().int().min(0), z.tuple([z.number().int().min(0), z.number().int().min(0)])], {
  error: 'a count is a whole number >= 0, or [min, max]',
});
const FLOW_EXPECT = z.strictObject({
  id: connId,
  status: z.number().int().min(0).max(999).optional(),
  event: z.enum(['disconnect', 'originError', 'resolveOrigin', 'clientFiltered']).optional(),
  close_reason: z.string().optional(),
  client_packets: count.optional(),
  origin_packets: count.optional(),
  client_bytes: count.optional(),
  origin_bytes: count.optional(),
  origin: z.string().optional(),
  edge_flows: z.number().int().min(0).optional(),
  received: z.array(z.string()).optional(),
  received_datagrams: count.optional(),
  received_bytes: count.optional(),
  received_foreign: z.number().int().min(0).optional(),
  origin_datagrams: count.optional(),
  proxy_headers: z.number().int().min(0).optional(),
  origin_client: z.string().optional(),
});
/** `expect.udp` keys: the UDP engine's counters (UdpStats) without their `udp_` prefix. */
export const UDP_COUNTER_KEYS = [
  'flows_total',
  'flows_refused_cap',
  'dgrams_no_app',
  'dgrams_oversize',
  'dgrams_queue_full',
  'dgrams_from_unexpected_source',
  'spp_reply_invalid',
  'dgrams_upstream',
  'dgrams_downstream',
  'dgrams_ip_blocked',
] as const;
const UDP_EXPECT = z.strictObject(Object.fromEntries(UDP_COUNTER_KEYS.map((k) => [k, count.optional()])) as Record<(typeof UDP_COUNTER_KEYS)[number], z.ZodOptional<typeof count>>);
/** The rcodes a `resolve` step can see (the stub sends no EDNS, so no extended rcode). */
export const RESOLVE_RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'] as const;
const RESOLUTION_EXPECT = z.strictObject({
  id: connId,
  rcode: z.enum(RESOLVE_RCODES).optional(),
  addresses: z.array(z.string()).optional(),
  ttl: z.number().int().min(0).optional(),
});
/** Spectrum's event names (src/model/outcome.ts), for `expect.analytics[].event`. */
export const ANALYTICS_EVENTS = ['connect', 'disconnect', 'originError', 'resolveOrigin', 'clientFiltered', 'tlsError'] as const;
const ANALYTICS_EXPECT = z.strictObject({
  app: z.string().min(1),
  event: z.enum(ANALYTICS_EVENTS).optional(),
  count: z.number().int().min(0).optional(),
  bytes_ingress: z.number().int().min(0).optional(),
  bytes_egress: z.number().int().min(0).optional(),
});
const statusCounts = z.record(z.string().regex(/^\d{1,3}$/, 'a status key is a Status number such as "200"'), z.number().int().min(0));
const EXPECT_FIELDS = {
  connections: z.array(CONN_EXPECT).optional(),
  analytics: z.array(ANALYTICS_EXPECT).optional(),
  resolutions: z.array(RESOLUTION_EXPECT).optional(),
  flows: z.array(FLOW_EXPECT).optional(),
  udp: UDP_EXPECT.optional(),
  descriptors: z.strictObject({ accept_refused: count.optional(), upstream_failed: count.optional(), episodes: count.optional(), lost_untraced: count.optional() }).optional(),
  statuses: statusCounts.optional(),
  statuses_at_least: statusCounts.optional(),
  connect_ms: z.strictObject({ p50_max: z.number().min(0).optional(), p99_max: z.number().min(0).optional() }).optional(),
  quiescent: z.boolean().optional(),
} as const;
/** Top-level fields, each parsed on its own (a bad seed does not stop the apps from being checked). */
const TOP_FIELDS = {
  name: z.string().min(1),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  max_time_ms: z.number().int().min(1).max(MAX_TIME_LIMIT_MS).optional(),
  topology: z.unknown(),
  edge: z.record(z.string(), z.unknown()).optional(),
  apps: z.array(z.unknown()),
  access_rules: z.array(z.unknown()).optional(),
  certificates: z.array(CERTIFICATE).optional(),
  zones: z.array(z.unknown()).optional(),
  dns: z
    .strictObject({
      listen: z.union([z.string(), z.array(z.string()).min(1)], { error: 'listen is IP:PORT, or a list of them (one per edge)' }),
      ttl: z.number().int().min(LIMITS.minDnsTtlSec).max(LIMITS.maxDnsTtlSec).optional(),
    })
    .optional(),
  timeline: z.array(z.unknown()),
  expect: z.unknown(),
} as const;

// ── issue helpers ───────────────────────────────────────────────────────────────────────────────────────────────

function issue(pointer: string, code: ErrorCode, message: string): ScenarioIssue {
  return configIssue(pointer, code, message);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/** zod issues → E_SCENARIO_SCHEMA issues under `base`; a missing field says so, an unknown key points at the key. */
function zodIssues(err: z.ZodError, input: unknown, base: string): ScenarioIssue[] {
  const out: ScenarioIssue[] = [];
  for (const i of err.issues) {
    const path = i.path.map((s) => (typeof s === 'symbol' ? String(s.description) : s));
    const at = pointerJoin(base, ...path);
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) out.push(issue(pointerJoin(at, k), 'E_SCENARIO_SCHEMA', `unknown field "${k}"`));
    } else if (i.code === 'invalid_key') {
      out.push(issue(at, 'E_SCENARIO_SCHEMA', i.issues[0]?.message ?? i.message));
    } else if (i.code === 'invalid_type' && valueAt(input, i.path) === undefined) {
      out.push(issue(at, 'E_SCENARIO_SCHEMA', `${String(path.at(-1) ?? 'the value')} is required`));
    } else {
      out.push(issue(at, 'E_SCENARIO_SCHEMA', i.message));
    }
  }
  return out;
}

/**
 * Parses `input`, reporting every issue under `base`. When the only problems are unknown keys (typos), the value is
 * still returned without them, so the meaning checks can run and one typo does not hide everything that depends on it.
 */
function parseWith<T extends z.ZodType>(schema: T, input: unknown, base: string, issues: ScenarioIssue[]): z.output<T> | undefined {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  issues.push(...zodIssues(r.error, input, base));
  if (!r.error.issues.every((i) => i.code === 'unrecognized_keys')) return undefined;
  const cleaned = structuredClone(input);
  for (const i of r.error.issues) {
    const at = valueAt(cleaned, i.path);
    if (i.code === 'unrecognized_keys' && typeof at === 'object' && at !== null) for (const k of i.keys) delete (at as Record<string, unknown>)[k];
  }
  const again = schema.safeParse(cleaned);
  return again.success ? again.data : undefined;
}

type Fields<S extends Record<string, z.ZodType>> = { -readonly [K in keyof S]?: z.output<S[K]> };

/**
 * Parses a mapping field by field (unknown keys reported, each field on its own), so one bad field does not keep
 * the others from being checked. Returns the fields that parsed, or undefined when `raw` is not a mapping.
 */
function parseFieldwise<S extends Record<string, z.ZodType>>(shape: S, raw: unknown, base: string, issues: ScenarioIssue[], what: string): Fields<S> | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    issues.push(issue(base, 'E_SCENARIO_SCHEMA', `${what} is a mapping of ${Object.keys(shape).join(', ')}`));
    return undefined;
  }
  const rec = raw as Record<string, unknown>;
  for (const k of Object.keys(rec)) {
    if (!Object.hasOwn(shape, k)) issues.push(issue(pointerJoin(base, k), 'E_SCENARIO_SCHEMA', `unknown field "${k}"`));
  }
  const out: Fields<S> = {};
  for (const k of Object.keys(shape) as Array<keyof S & string>) {
    const v = rec[k];
    const schema = shape[k]!;
    if (v === undefined) {
      if (!schema.safeParse(undefined).success) issues.push(issue(pointerJoin(base, k), 'E_SCENARIO_SCHEMA', `${k} is required`));
      continue;
    }
    const parsed = parseWith(schema, v, pointerJoin(base, k), issues);
    if (parsed !== undefined) out[k] = parsed;
  }
  return out;
}

/** YAML `key:` with no value is null; null means absent everywhere (so `expect:` alone is no expectations). */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = dropNulls(x);
  return out;
}

// ── meaning ─────────────────────────────────────────────────────────────────────────────────────────────────────

type HostKind = 'edges' | 'clients' | 'origins';
interface KnownHost {
  readonly kind: HostKind;
  readonly addresses: readonly string[];
}

/** What later checks need to know about the topology. */
interface World {
  readonly hosts: ReadonlyMap<string, KnownHost>;
  /** Hosts whose entry is malformed (already reported): references to them pass silently. */
  readonly broken: ReadonlySet<string>;
  /** Canonical address → host name. */
  readonly owner: ReadonlyMap<string, string>;
  /** Edge pool blocks (`scenarioPools`): the edge host owns every address in them. */
  readonly pools: string[];
}

function badHostAddress(text: string): string | undefined {
  const ip = parseIpLiteral(text);
  if (ip === undefined) return `"${text}" is not an IP literal`;
  const canon = canonicalIp(ip.address);
  if (canon === '0.0.0.0' || canon === '::') return `"${text}" is a wildcard, not a host address`;
  if (canon.startsWith('127.') || canon === '::1') return `"${text}" is loopback; every host has its own loopback, give it a unicast address`;
  if (ip.family === 'IPv4' ? Number(canon.split('.')[0]) >= 224 : /^ff/i.test(canon)) return `"${text}" is multicast or broadcast`;
  return undefined;
}

function parseTopology(raw: unknown, issues: ScenarioIssue[]): ParsedTopology | undefined {
  if (raw === undefined) {
    issues.push(issue('/topology', 'E_SCENARIO_SCHEMA', 'topology is required'));
    return undefined;
  }
  const lists = parseWith(TOPOLOGY_LISTS, raw, '/topology', issues);
  if (lists === undefined) return undefined;
  const broken = new Set<string>();
  let complete = true;
  const each = <T extends z.ZodType>(key: keyof typeof lists, schema: T): Array<z.output<T>> => {
    const out: Array<z.output<T>> = [];
    (lists[key] ?? []).forEach((el, i) => {
      const v = parseWith(schema, el, pointerJoin('/topology', key, i), issues);
      if (v !== undefined) out.push(v);
      else {
        complete = false;
        const name = typeof el === 'object' && el !== null ? (el as Record<string, unknown>)['name'] : undefined;
        if (typeof name === 'string') broken.add(name);
      }
    });
    return out;
  };
  const t: ParsedTopology = {
    edges: each('edges', EDGE_HOST),
    clients: each('clients', CLIENT),
    origins: each('origins', ORIGIN),
    links: lists.links === undefined ? undefined : each('links', LINK),
    dns: lists.dns === undefined ? undefined : each('dns', DNS),
    broken,
    complete,
  };
  return t;
}

function checkTopology(t: ParsedTopology, issues: ScenarioIssue[]): World {
  const hosts = new Map<string, KnownHost>();
  const owner = new Map<string, string>();
  const hostPointer = new Map<string, string>();
  const kinds: HostKind[] = ['edges', 'clients', 'origins'];
  for (const kind of kinds) {
    t[kind].forEach((h, i) => {
      const p = pointerJoin('/topology', kind, i);
      const first = hostPointer.get(h.name);
      if (first !== undefined) issues.push(issue(pointerJoin(p, 'name'), 'E_SCENARIO_DUPLICATE', `host name "${h.name}" is already used at ${first}`));
      else {
        hostPointer.set(h.name, p);
        hosts.set(h.name, { kind, addresses: h.addresses });
      }
      h.addresses.forEach((a, k) => {
        const at = pointerJoin(p, 'addresses', k);
        const bad = badHostAddress(a);
        if (bad !== undefined) {
          issues.push(issue(at, 'E_SCENARIO_ADDRESS', bad));
          return;
        }
        const canon = canonicalIp(a);
        const o = owner.get(canon);
        if (o !== undefined) issues.push(issue(at, 'E_SCENARIO_DUPLICATE', `${a} already belongs to host "${o}"`));
        else owner.set(canon, h.name);
      });
    });
  }
  const world: World = { hosts, owner, broken: t.broken, pools: [] };

  t.origins.forEach((o, i) => {
    const p = pointerJoin('/topology/origins', i);
    const own = new Set(o.addresses.map(canonicalIp));
    const bound: Array<{ protocol: 'tcp' | 'udp'; host: string; start: number; end: number; at: string }> = [];
    const behaviours = new Set(o.listeners.map((l) => l.behaviour));
    o.listeners.forEach((l, k) => {
      const lp = pointerJoin(p, 'listeners', k);
      if (l.behaviour === 'banner' && l.banner === undefined) issues.push(issue(pointerJoin(lp, 'banner'), 'E_SCENARIO_SCHEMA', 'behaviour banner needs a banner'));
      if (l.behaviour !== 'banner' && l.banner !== undefined) issues.push(issue(pointerJoin(lp, 'banner'), 'E_SCENARIO_SCHEMA', 'banner is only for behaviour banner'));
      if (l.behaviour !== 'spp-echo' && l.wrong_header_for !== undefined) issues.push(issue(pointerJoin(lp, 'wrong_header_for'), 'E_SCENARIO_SCHEMA', 'wrong_header_for is only for behaviour spp-echo'));
      if (l.behaviour === 'blackhole' && behaviours.size > 1) {
        issues.push(issue(pointerJoin(lp, 'behaviour'), 'E_SCENARIO_UNSUPPORTED', `a black hole cuts the whole host off; give origin "${o.name}" only blackhole listeners, and put the others on another origin`));
      }
      const u = parseOriginUri(l.listen);
      const at = pointerJoin(lp, 'listen');
      if (!u.ok) {
        issues.push(issue(at, 'E_SCENARIO_ADDRESS', `${u.message} (a listener is tcp://IP:PORT, tcp://IP:START-END, or the same with udp://)`));
        return;
      }
      const protocol = u.value.protocol;
      const fits: readonly string[] = protocol === 'tcp' ? TCP_BEHAVIOURS : UDP_BEHAVIOURS;
      if (!fits.includes(l.behaviour)) {
        issues.push(issue(pointerJoin(lp, 'behaviour'), 'E_SCENARIO_UNSUPPORTED', `${l.behaviour} is not a ${protocol.toUpperCase()} behaviour; a ${protocol}:// listener is one of ${fits.join(', ')}`));
        return;
      }
      if (protocol === 'udp' && l.parse_proxy !== undefined) {
        issues.push(issue(pointerJoin(lp, 'parse_proxy'), 'E_SCENARIO_SCHEMA', 'parse_proxy is for TCP listeners; a UDP origin decodes headers by its behaviour (spp-echo, v2-echo)'));
      }
      const host = canonicalIp(u.value.host);
      const wildcard = host === '0.0.0.0' || host === '::';
      if (!wildcard && !own.has(host)) {
        issues.push(issue(at, 'E_SCENARIO_ADDRESS', `${u.value.host} is not an address of origin "${o.name}" (${o.addresses.join(', ')})`));
        return;
      }
      if (l.behaviour === 'refuse' || l.behaviour === 'blackhole') return; // nothing is bound
      const { start, end } = u.value.ports;
      const clash = bound.find((b) => b.protocol === protocol && b.start <= end && start <= b.end && (b.host === host || wildcard || b.host === '0.0.0.0' || b.host === '::'));
      if (clash !== undefined) issues.push(issue(at, 'E_SCENARIO_DUPLICATE', `overlaps the listener at ${clash.at}`));
      else bound.push({ protocol, host, start, end, at });
    });
  });

  t.links?.forEach((l, i) => checkLink(l, pointerJoin('/topology/links', i), world, issues));
  t.dns?.forEach((d, i) => checkDns(d, pointerJoin('/topology/dns', i), issues));
  return world;
}

function checkLink(l: z.output<typeof LINK>, p: string, w: World, issues: ScenarioIssue[]): void {
  l.between.forEach((h, k) => {
    if (!w.hosts.has(h) && !w.broken.has(h)) issues.push(issue(pointerJoin(p, 'between', k), 'E_SCENARIO_REFERENCE', `no host named "${h}" in the topology`));
  });
  if (l.between[0] === l.between[1]) issues.push(issue(pointerJoin(p, 'between'), 'E_SCENARIO_SCHEMA', 'a link joins two different hosts'));
}

function checkDns(d: z.output<typeof DNS>, p: string, issues: ScenarioIssue[]): void {
  const n = parseHostname(d.name, 'E_SCENARIO_ADDRESS');
  if (!n.ok) issues.push(issue(pointerJoin(p, 'name'), 'E_SCENARIO_ADDRESS', n.message));
  d.records.forEach((r, k) => {
    const at = pointerJoin(p, 'records', k);
    if (d.type === 'SRV') {
      if (parseSrvRecord(r) === undefined) issues.push(issue(at, 'E_SCENARIO_ADDRESS', `"${r}" is not "PRIORITY WEIGHT PORT TARGET"`));
      return;
    }
    const ip = parseIpLiteral(r);
    const want = d.type === 'A' ? 'IPv4' : 'IPv6';
    if (ip === undefined || ip.family !== want) issues.push(issue(at, 'E_SCENARIO_ADDRESS', `an ${d.type} record is an ${want} literal, got "${r}"`));
  });
}

function checkHosts(v: string | readonly string[], p: string, w: World, issues: ScenarioIssue[]): void {
  if (typeof v === 'string') {
    if (!w.hosts.has(v) && !w.broken.has(v)) issues.push(issue(p, 'E_SCENARIO_REFERENCE', `no host named "${v}" in the topology`));
    return;
  }
  v.forEach((h, k) => checkHosts(h, pointerJoin(p, k), w, issues));
}

/** `to` is an ip:port of an edge (one of its addresses, or in its pools); `from` (or, without it, some address) of the client has `to`'s family. */
function checkDial(client: string, to: string, from: string | undefined, p: string, w: World, issues: ScenarioIssue[]): void {
  if (w.broken.has(client)) return;
  const dst = parseIpPort(to);
  if (dst === undefined) {
    checkClient(client, p, w, issues);
    issues.push(issue(pointerJoin(p, 'to'), 'E_SCENARIO_ADDRESS', `"${to}" is not IP:PORT ([IPv6]:PORT)`));
    return;
  }
  const owner = w.owner.get(canonicalIp(dst.address));
  if ((owner === undefined || w.hosts.get(owner)?.kind !== 'edges') && !inAnyCidr(w.pools, dst.address)) {
    issues.push(issue(pointerJoin(p, 'to'), 'E_SCENARIO_REFERENCE', `${dst.address} is not an address of any edge (nor in its edge.pools)`));
  }
  checkSource(checkClient(client, p, w, issues), client, dst.family, from, to, pointerJoin(p, 'to'), p, issues);
}

/** `client` is a client host (reported at `p/client` otherwise); returns it. */
function checkClient(client: string, p: string, w: World, issues: ScenarioIssue[]): KnownHost | undefined {
  if (w.broken.has(client)) return undefined;
  const c = w.hosts.get(client);
  if (c === undefined || c.kind !== 'clients') {
    issues.push(issue(pointerJoin(p, 'client'), 'E_SCENARIO_REFERENCE', `no client named "${client}" in topology.clients`));
    return undefined;
  }
  return c;
}

/**
 * Client `c` (named `client`; undefined: not a client, already reported) can send to an address of `family` (`what`
 * names it in messages): `from` is one of its addresses, of that family; without `from`, it has an address of that
 * family (else an issue at `familyPointer`).
 */
function checkSource(c: KnownHost | undefined, client: string, family: 'IPv4' | 'IPv6', from: string | undefined, what: string, familyPointer: string, p: string, issues: ScenarioIssue[]): void {
  if (c === undefined) return;
  if (from !== undefined) {
    const ip = parseIpLiteral(from);
    if (ip === undefined || !c.addresses.some((a) => canonicalIp(a) === canonicalIp(ip.address))) {
      issues.push(issue(pointerJoin(p, 'from'), 'E_SCENARIO_REFERENCE', `"${from}" is not an address of client "${client}"`));
    } else if (ip.family !== family) {
      issues.push(issue(pointerJoin(p, 'from'), 'E_SCENARIO_ADDRESS', `${from} and ${what} are of different families`));
    }
  } else if (!c.addresses.some((a) => parseIpLiteral(a)?.family === family)) {
    issues.push(issue(familyPointer, 'E_SCENARIO_ADDRESS', `client "${client}" has no ${family} address to reach ${what} from`));
  }
}

/** A `resolve` step as later steps see it: when it runs, and which family it asks for. */
interface ResolveInfo {
  readonly at: number;
  readonly pointer: string;
  readonly family: 'IPv4' | 'IPv6';
}

/**
 * Where a `connect` or `datagram` step sends: exactly one of `to` (checked by `checkDial`) and `resolved` (with
 * `port`): the id of a `resolve` step that runs before this step (strictly earlier: its answer needs a round trip),
 * whose family the client can send from.
 */
function checkTarget(
  b: { client: string; to?: string | undefined; resolved?: string | undefined; port?: number | undefined; from?: string | undefined },
  at: number,
  p: string,
  w: World,
  resolves: ReadonlyMap<string, ResolveInfo>,
  resolveIdsKnown: boolean,
  issues: ScenarioIssue[],
): void {
  if ((b.to === undefined) === (b.resolved === undefined)) {
    issues.push(issue(p, 'E_SCENARIO_SCHEMA', 'give exactly one of to (IP:PORT) and resolved (the id of a resolve step, with port)'));
    return;
  }
  if (b.to !== undefined) {
    if (b.port !== undefined) issues.push(issue(pointerJoin(p, 'port'), 'E_SCENARIO_SCHEMA', 'port goes with resolved; to carries its own port'));
    checkDial(b.client, b.to, b.from, p, w, issues);
    return;
  }
  if (b.port === undefined) issues.push(issue(pointerJoin(p, 'port'), 'E_SCENARIO_SCHEMA', 'port is required with resolved'));
  const r = resolves.get(b.resolved!);
  if (r === undefined) {
    if (resolveIdsKnown) issues.push(issue(pointerJoin(p, 'resolved'), 'E_SCENARIO_REFERENCE', `no resolve step has id "${b.resolved!}"`));
    checkClient(b.client, p, w, issues);
    return;
  }
  if (r.at >= at) {
    issues.push(issue(pointerJoin(p, 'resolved'), 'E_SCENARIO_TIMELINE', `resolve "${b.resolved!}" runs at ${r.at} (${r.pointer}); its answer needs a round trip, so resolve before ${at}`));
  }
  checkSource(checkClient(b.client, p, w, issues), b.client, r.family, b.from, `resolve "${b.resolved!}" (${r.family === 'IPv6' ? 'AAAA' : 'A'})`, pointerJoin(p, 'resolved'), p, issues);
}

/** The top-level `dns` section: each listen is IP:PORT on an edge host, at most one per edge. */
function checkDnsSection(listens: readonly string[], base: string, list: boolean, w: World, issues: ScenarioIssue[]): void {
  const byEdge = new Map<string, string>();
  listens.forEach((l, k) => {
    const at = list ? pointerJoin(base, k) : base;
    const ep = parseIpPort(l);
    if (ep === undefined) {
      issues.push(issue(at, 'E_SCENARIO_ADDRESS', `"${l}" is not IP:PORT ([IPv6]:PORT)`));
      return;
    }
    const owner = w.owner.get(canonicalIp(ep.address));
    if (owner === undefined || w.hosts.get(owner)?.kind !== 'edges') {
      issues.push(issue(at, 'E_SCENARIO_REFERENCE', `${ep.address} is not an address of an edge host; the DNS server runs on an edge`));
      return;
    }
    const first = byEdge.get(owner);
    if (first !== undefined) issues.push(issue(at, 'E_SCENARIO_DUPLICATE', `edge "${owner}" already runs the DNS server on ${first}; one listen address per edge`));
    else byEdge.set(owner, l);
  });
}

/**
 * Edge pools in the simulated world: the one edge host owns every pool block whole, so a pool may not hold another
 * host's address or loopback, and several edges cannot share pools (the simulator has no anycast: an address
 * belongs to one host).
 */
function checkPools(edge: Record<string, unknown> | undefined, base: string, edges: number, w: World, issues: ScenarioIssue[]): void {
  const pools = edge?.['pools'];
  if (typeof pools !== 'object' || pools === null) return;
  for (const family of ['ipv4', 'ipv6'] as const) {
    const list = (pools as Record<string, unknown>)[family];
    if (!Array.isArray(list)) continue;
    list.forEach((block, k) => {
      if (typeof block !== 'string' || parseCidr(block) === undefined) return; // the config validator reports it
      const at = pointerJoin(base, 'pools', family, k);
      if (edges > 1) {
        issues.push(issue(at, 'E_SCENARIO_UNSUPPORTED', 'edge.pools with several edges: the simulator has no anycast (an address belongs to one host), so only a one-edge scenario can have pools'));
        return;
      }
      if (inAnyCidr([block], '127.0.0.1') || inAnyCidr(['127.0.0.0/8'], parseCidr(block)!.address.address) || inAnyCidr([block], '::1')) {
        issues.push(issue(at, 'E_SCENARIO_ADDRESS', `${block} holds loopback addresses, which every simulated host has; use a documentation range (203.0.113.0/24, 2001:db8::/32)`));
        return;
      }
      for (const [addr, host] of w.owner) {
        if (w.hosts.get(host)?.kind === 'edges' || !inAnyCidr([block], addr)) continue;
        issues.push(issue(at, 'E_SCENARIO_ADDRESS', `${block} holds ${addr}, an address of "${host}"; the edge host owns every address of its pools`));
        return;
      }
    });
  }
}

/** Validates config sections through the config validator and re-homes its pointers into the scenario. */
function checkConfig(
  edges: ReadonlyArray<{ name: string; addresses: readonly string[] }>,
  edge: Record<string, unknown> | undefined,
  apps: readonly unknown[],
  accessRules: readonly unknown[] | undefined,
  zones: readonly unknown[] | undefined,
  rehome: (pointer: string) => string,
  issues: ScenarioIssue[],
): void {
  const seen = new Set(issues.map((i) => `${i.pointer}|${i.code}`));
  for (const e of edges) {
    const r = edgeConfig(e.name, e.addresses, edge, apps, accessRules, zones);
    if (r.ok) continue;
    for (const i of r.issues) {
      const moved = { ...i, pointer: rehome(i.pointer) };
      const key = `${moved.pointer}|${moved.code}`;
      if (seen.has(key)) continue;
      seen.add(key);
      issues.push(moved);
    }
  }
}

/** `edge.addresses`, when given, must be addresses every edge host owns (each edge binds them all). */
function checkEdgeAddresses(edge: Record<string, unknown> | undefined, base: string, edges: ReadonlyArray<{ addresses: readonly string[] }>, issues: ScenarioIssue[]): void {
  const given = edge?.['addresses'];
  if (!Array.isArray(given)) return;
  given.forEach((a, k) => {
    if (typeof a !== 'string' || parseIpLiteral(a) === undefined) return; // the config validator reports it
    if (!edges.every((e) => e.addresses.some((x) => canonicalIp(x) === canonicalIp(a)))) {
      issues.push(issue(pointerJoin(base, 'addresses', k), 'E_SCENARIO_REFERENCE', `${a} is not an address of every edge host; leave edge.addresses out to bind each edge's own addresses`));
    }
  });
}

/** A `datagram` step's body as validated. */
type DatagramBody = z.output<typeof ACTIONS.datagram>;

const encoder = new TextEncoder();

/** The address a client sends from: `from`, else its first address of `to`'s family (undefined: it has none). */
export function sourceAddress(clientAddresses: readonly string[], to: string, from: string | undefined): string | undefined {
  if (from !== undefined) return from;
  const dst = parseIpPort(to);
  if (dst === undefined) return undefined;
  return clientAddresses.find((a) => parseIpLiteral(a)?.family === dst.family);
}

function checkCount(c: number | readonly [number, number] | undefined, p: string, issues: ScenarioIssue[]): void {
  if (Array.isArray(c) && c[0]! > c[1]!) issues.push(issue(p, 'E_SCENARIO_SCHEMA', 'a range is [min, max] with min <= max'));
}

/** Validates IP Access rules at `pointer` (E_RULE_* and E_CONFIG_SCHEMA codes, as in the config file); true when valid. */
function checkAccessRules(rules: readonly unknown[], pointer: string, issues: ScenarioIssue[]): boolean {
  const r = validateAccessRules(rules, pointer);
  if (!r.ok) issues.push(...r.issues);
  return r.ok;
}

/** The zone `ref` names: by id, or by name as the config file normalises it (lower case, no final dot). */
export function findZone<Z extends { id: string; name: string }>(zones: readonly Z[], ref: string): Z | undefined {
  const name = ref.toLowerCase().replace(/\.$/, '');
  return zones.find((z) => z.id === ref || z.name === name);
}

/** The zones of a scenario as each edge's config has them (`[]` when the section is invalid: already reported). */
function scenarioZones(zones: readonly unknown[] | undefined): readonly Zone[] {
  const r = validateConfig({ zones: zones === undefined ? [{ name: DEFAULT_ZONE_NAME }] : zones });
  return r.ok ? (r.config.zones ?? []) : [];
}

/** The `id`s of app objects (file apps), for api steps that name one. */
function fileAppIds(lists: ReadonlyArray<readonly unknown[] | undefined>): Set<string> {
  const ids = new Set<string>();
  for (const list of lists) {
    for (const a of list ?? []) {
      const id = typeof a === 'object' && a !== null ? (a as Record<string, unknown>)['id'] : undefined;
      if (typeof id === 'string') ids.add(id);
    }
  }
  return ids;
}

/**
 * `api` steps: one write each (create, update, delete or rotate), a known `expect_error` code, a `zone` that the
 * zones list has (by name or id), a create `ref` used once and not an app id of the file, and an update, delete or
 * rotate `ref` made by an earlier create that is expected to succeed (steps in run order: by `at`, then file order)
 * or naming a file app.
 */
function checkApiSteps(
  steps: ReadonlyArray<{ at: number; action: ActionName; body: any } | undefined>,
  zonesInput: readonly unknown[] | undefined,
  apps: readonly unknown[] | undefined,
  issues: ScenarioIssue[],
): void {
  const api = steps.flatMap((s, i) => (s !== undefined && s.action === 'api' ? [{ i, at: s.at, body: s.body as z.output<typeof ACTIONS.api> }] : []));
  if (api.length === 0) return;
  const zones = scenarioZones(zonesInput);
  const fileIds = fileAppIds([apps, ...steps.map((s) => (s?.action === 'reload' ? (s.body as { apps?: unknown[] }).apps : undefined))]);
  const created = new Map<string, string>(); // ref → pointer of the create that makes it (expected to succeed)
  const createdAnywhere = new Map<string, string>();
  for (const { i, body } of [...api].sort((a, b) => a.at - b.at || a.i - b.i)) {
    const p = pointerJoin('/timeline', i, 'api');
    const ops = (['create', 'update', 'delete', 'rotate'] as const).filter((k) => body[k] !== undefined);
    if (ops.length !== 1) {
      issues.push(issue(p, 'E_SCENARIO_SCHEMA', ops.length === 0 ? 'an api step gives one of create, update, delete and rotate' : `one write per api step; this one has ${ops.join(' and ')}`));
      continue;
    }
    if (body.expect_error !== undefined && body.expect_error !== 'EHOSTDOWN' && !isErrorCode(body.expect_error)) {
      issues.push(issue(pointerJoin(p, 'expect_error'), 'E_SCENARIO_SCHEMA', `${body.expect_error} is not a Refract error code (docs/errors.md), nor EHOSTDOWN`));
    }
    const op = ops[0]!;
    const ref = body[op]!.ref;
    if (op === 'create') {
      const c = body.create!;
      if (c.zone !== undefined && zones.length > 0 && findZone(zones, c.zone) === undefined) {
        issues.push(issue(pointerJoin(p, 'create', 'zone'), 'E_SCENARIO_REFERENCE', `no zone named or with id "${c.zone}" (zones: ${zones.map((zn) => zn.name).join(', ')})`));
      }
      const first = createdAnywhere.get(ref);
      if (first !== undefined) issues.push(issue(pointerJoin(p, 'create', 'ref'), 'E_SCENARIO_DUPLICATE', `ref "${ref}" is already created at ${first}; give each create its own ref`));
      else if (fileIds.has(ref)) issues.push(issue(pointerJoin(p, 'create', 'ref'), 'E_SCENARIO_DUPLICATE', `"${ref}" is the id of an app of the file; give the API app another ref`));
      else {
        createdAnywhere.set(ref, pointerJoin(p, 'create'));
        if (body.expect_error === undefined) created.set(ref, pointerJoin(p, 'create'));
      }
    } else if (!created.has(ref) && !fileIds.has(ref)) {
      const later = createdAnywhere.has(ref) ? ` (the create at ${createdAnywhere.get(ref)!} expects an error, so it makes no app)` : '';
      issues.push(issue(pointerJoin(p, op, 'ref'), 'E_SCENARIO_REFERENCE', `no earlier api create makes "${ref}", and no app of the file has that id${later}`));
    }
  }
}

/**
 * `expect.analytics`: each entry gives at least one figure, and its `app` names an app the run can have: a file
 * app's id (the top-level apps or a reload's), an api create's ref, or the DNS name of one of those apps.
 */
function checkAnalyticsExpect(list: ReadonlyArray<{ app: string; count?: number | undefined; bytes_ingress?: number | undefined; bytes_egress?: number | undefined }>, apps: readonly unknown[] | undefined, steps: ReadonlyArray<{ action: ActionName; body: any } | undefined>, issues: ScenarioIssue[]): void {
  const appLists = [apps, ...steps.map((s) => (s?.action === 'reload' ? (s.body as { apps?: unknown[] }).apps : undefined))];
  const known = fileAppIds(appLists);
  const nameOf = (a: unknown): unknown => (typeof a === 'object' && a !== null ? ((a as Record<string, unknown>)['dns'] as Record<string, unknown> | undefined)?.['name'] : undefined);
  for (const list of appLists) for (const a of list ?? []) if (typeof nameOf(a) === 'string') known.add(nameOf(a) as string);
  for (const s of steps) {
    const create = s?.action === 'api' ? (s.body as { create?: { ref: string; app: unknown } }).create : undefined;
    if (create === undefined) continue;
    known.add(create.ref);
    if (typeof nameOf(create.app) === 'string') known.add(nameOf(create.app) as string);
  }
  list.forEach((x, k) => {
    const p = pointerJoin('/expect/analytics', k);
    if (x.count === undefined && x.bytes_ingress === undefined && x.bytes_egress === undefined) {
      issues.push(issue(p, 'E_SCENARIO_SCHEMA', 'an analytics expectation gives at least one of count, bytes_ingress, bytes_egress'));
    }
    if (!known.has(x.app)) issues.push(issue(pointerJoin(p, 'app'), 'E_SCENARIO_REFERENCE', `no app has id, api ref or DNS name "${x.app}"`));
  });
}

// ── entry points ────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Validates a scenario object (from YAML, JSON, or built in code by a property test). Never throws. On success the
 * scenario is deep-frozen and `null`s are gone; on failure every issue found is listed.
 */
export function validateScenario(input: unknown): ScenarioResult {
  const raw = dropNulls(input);
  const issues: ScenarioIssue[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, issues: [issue('', 'E_SCENARIO_SCHEMA', 'a scenario is a mapping: name, seed, topology, apps, timeline, expect')] };
  }
  const rawTop = raw as Record<string, unknown>;
  const { name, seed, max_time_ms: maxTimeMs, edge: edgeSection, apps, access_rules: accessRules, certificates, zones, dns: dnsSection } = parseFieldwise(TOP_FIELDS, raw, '', issues, 'a scenario') ?? {};
  // The rules are checked here, once, with their own codes (E_RULE_*); the edge config then gets only valid ones.
  const rulesOk = accessRules === undefined || checkAccessRules(accessRules, '/access_rules', issues);
  const topology = parseTopology(rawTop['topology'], issues);
  const world = topology === undefined ? undefined : checkTopology(topology, issues);
  const maxTime = maxTimeMs ?? DEFAULT_MAX_TIME_MS;

  // Certificates: ids are unique; TLS listeners name one that exists.
  const certIds = new Set<string>();
  (certificates ?? []).forEach((c, i) => {
    if (certIds.has(c.id)) issues.push(issue(`/certificates/${i}/id`, 'E_SCENARIO_DUPLICATE', `certificate id "${c.id}" is defined twice`));
    certIds.add(c.id);
  });
  topology?.origins.forEach((o, oi) =>
    o.listeners.forEach((l, li) => {
      if (l.tls === undefined) return;
      const lp = `/topology/origins/${oi}/listeners/${li}/tls`;
      if (!certIds.has(l.tls.cert)) issues.push(issue(`${lp}/cert`, 'E_SCENARIO_REFERENCE', `no certificate has id "${l.tls.cert}"; define it under certificates`));
      if (!l.listen.startsWith('tcp://')) issues.push(issue(lp, 'E_SCENARIO_UNSUPPORTED', 'TLS is for tcp:// listeners'));
    }),
  );

  // Apps and the edge section, as each edge node will run them.
  if (topology !== undefined && apps !== undefined && (rawTop['edge'] === undefined || edgeSection !== undefined)) {
    checkEdgeAddresses(edgeSection, '/edge', topology.edges, issues);
    checkConfig(topology.edges, edgeSection, apps, rulesOk ? accessRules : undefined, zones, (p) => p, issues);
  }

  // Timeline: each step's shape, then what it refers to.
  const steps: Array<{ at: number; action: ActionName; body: any } | undefined> = [];
  const rawSteps = Array.isArray(rawTop['timeline']) ? (rawTop['timeline'] as unknown[]) : [];
  rawSteps.forEach((s, i) => {
    const p = pointerJoin('/timeline', i);
    if (typeof s !== 'object' || s === null || Array.isArray(s)) {
      issues.push(issue(p, 'E_SCENARIO_SCHEMA', `a step is a mapping { at, <action> } with one action of ${ACTION_NAMES.join(', ')}`));
      steps.push(undefined);
      return;
    }
    const rec = s as Record<string, unknown>;
    let ok = true;
    const at = rec['at'];
    if (typeof at !== 'number' || !(at >= 0) || !Number.isFinite(at)) {
      issues.push(issue(pointerJoin(p, 'at'), 'E_SCENARIO_SCHEMA', at === undefined ? 'at is required (virtual ms from the start)' : 'at is a number of virtual ms >= 0'));
      ok = false;
    } else if (at > maxTime) {
      issues.push(issue(pointerJoin(p, 'at'), 'E_SCENARIO_TIMELINE', `at ${at} lies beyond max_time_ms ${maxTime}`));
    }
    const keys = Object.keys(rec).filter((k) => k !== 'at');
    const unknown = keys.filter((k) => !(ACTION_NAMES as string[]).includes(k));
    for (const k of unknown) issues.push(issue(pointerJoin(p, k), 'E_SCENARIO_SCHEMA', `unknown action "${k}" (one of ${ACTION_NAMES.join(', ')})`));
    const actions = keys.filter((k) => (ACTION_NAMES as string[]).includes(k)) as ActionName[];
    if (actions.length === 0 && unknown.length === 0) issues.push(issue(p, 'E_SCENARIO_SCHEMA', `a step needs one action: ${ACTION_NAMES.join(', ')}`));
    if (actions.length > 1) issues.push(issue(pointerJoin(p, actions[1]!), 'E_SCENARIO_SCHEMA', `one action per step; this step also has "${actions[0]!}"`));
    if (actions.length !== 1 || unknown.length > 0) ok = false;
    const action = actions[0];
    const body = action === undefined ? undefined : parseWith(ACTIONS[action], rec[action], pointerJoin(p, action), issues);
    steps.push(ok && body !== undefined && action !== undefined ? { at: at as number, action, body } : undefined);
  });

  // Connection ids: every connect and every id a load generates, each once. When a connect or load step is itself
  // malformed, the ids it would open are unknown, and references to ids are not reported (they may be its).
  const opened = new OpenedIds();
  const idsKnown = rawSteps.every((s, i) => steps[i] !== undefined || typeof s !== 'object' || s === null || !('connect' in s || 'load' in s));
  steps.forEach((s, i) => {
    if (s === undefined) return;
    const p = pointerJoin('/timeline', i, s.action);
    if (s.action === 'connect') {
      const first = opened.get(s.body.id);
      if (first !== undefined) issues.push(issue(pointerJoin(p, 'id'), 'E_SCENARIO_DUPLICATE', `connection id "${s.body.id}" is already opened at ${first.pointer}`));
      else opened.set(s.body.id, { at: s.at, pointer: p });
    } else if (s.action === 'load') {
      const every = s.body.every_ms ?? LOAD_DEFAULT_EVERY_MS;
      const clash = opened.openLoad(s.body.id_prefix, s.body.count, s.at, every, p);
      if (clash !== undefined) issues.push(issue(pointerJoin(p, 'id_prefix'), 'E_SCENARIO_DUPLICATE', `the ids this load generates collide: ${clash}`));
    }
  });

  // UDP flow ids: the first datagram step of an id binds the client socket, later ones reuse it, so they must
  // describe the same socket. Flow ids and connection ids share one namespace (expectations name either).
  const flows = new Map<string, { pointer: string; body: DatagramBody }>();
  const flowIdsKnown = rawSteps.every((s, i) => steps[i] !== undefined || typeof s !== 'object' || s === null || !('datagram' in s));
  steps.forEach((s, i) => {
    if (s === undefined || s.action !== 'datagram') return;
    const p = pointerJoin('/timeline', i, 'datagram');
    const b = s.body as DatagramBody;
    const conn = opened.get(b.id);
    if (conn !== undefined) issues.push(issue(pointerJoin(p, 'id'), 'E_SCENARIO_DUPLICATE', `"${b.id}" is already a connection id (${conn.pointer}); give the flow its own id`));
    const first = flows.get(b.id);
    if (first === undefined) {
      flows.set(b.id, { pointer: p, body: b });
      return;
    }
    for (const k of ['client', 'to', 'resolved', 'port', 'from', 'from_port'] as const) {
      if (b[k] !== first.body[k]) {
        issues.push(issue(pointerJoin(p, k), 'E_SCENARIO_DUPLICATE', `flow "${b.id}" opened at ${first.pointer} with ${k} ${JSON.stringify(first.body[k] ?? null)}; a flow keeps one client socket, so give the same ${k} or another id`));
      }
    }
  });
  /** `client|address|port` of each fixed client port → the flow that binds it. */
  const fixedPorts = new Map<string, string>();

  // Resolve ids: each once; connect and datagram steps (and expectations) name them.
  const resolves = new Map<string, ResolveInfo>();
  const resolveIdsKnown = rawSteps.every((s, i) => steps[i] !== undefined || typeof s !== 'object' || s === null || !('resolve' in s));
  steps.forEach((s, i) => {
    if (s === undefined || s.action !== 'resolve') return;
    const p = pointerJoin('/timeline', i, 'resolve');
    const first = resolves.get(s.body.id);
    if (first !== undefined) issues.push(issue(pointerJoin(p, 'id'), 'E_SCENARIO_DUPLICATE', `resolve id "${s.body.id}" is already used at ${first.pointer}`));
    else resolves.set(s.body.id, { at: s.at, pointer: p, family: resolveFamily(s.body.type) });
  });

  if (world !== undefined && topology !== undefined) {
    if (dnsSection !== undefined) checkDnsSection(dnsListens(dnsSection), '/dns/listen', typeof dnsSection.listen !== 'string', world, issues);
    checkPools(edgeSection, '/edge', topology.edges.length, world, issues);
    steps.forEach((s, i) => {
      if (s?.action === 'reload' && s.body.edge !== undefined) checkPools(s.body.edge, pointerJoin('/timeline', i, 'reload', 'edge'), topology.edges.length, world, issues);
    });
    world.pools.push(...scenarioPools(edgeSection, steps.map((s) => (s?.action === 'reload' ? s.body.edge : undefined))));
  }

  if (world !== undefined && topology !== undefined) {
    let appsEdge = edgeSection;
    /** The apps and (valid) rules in force at each reload, as the runner carries them forward. */
    let currentApps: readonly unknown[] | undefined = apps;
    let currentRules: readonly unknown[] | undefined = rulesOk ? accessRules : undefined;
    steps.forEach((s, i) => {
      if (s === undefined) return;
      const p = pointerJoin('/timeline', i, s.action);
      const b = s.body;
      switch (s.action) {
        case 'connect':
          checkTarget(b, s.at, p, world, resolves, resolveIdsKnown, issues);
          break;
        case 'load':
          checkDial(b.client, b.to, undefined, p, world, issues);
          break;
        case 'send':
        case 'end':
        case 'reset': {
          if (s.action === 'send' && (b.text === undefined) === (b.bytes === undefined)) {
            issues.push(issue(p, 'E_SCENARIO_SCHEMA', 'give exactly one of text and bytes'));
          }
          const o = opened.get(b.id);
          if (o === undefined && idsKnown) issues.push(issue(pointerJoin(p, 'id'), 'E_SCENARIO_REFERENCE', `no connect or load step opens "${b.id}"`));
          else if (o !== undefined && o.at > s.at) issues.push(issue(pointerJoin(p, 'id'), 'E_SCENARIO_TIMELINE', `"${b.id}" opens at ${o.at} (${o.pointer}), after this step at ${s.at}`));
          break;
        }
        case 'partition':
          checkHosts(b.a, pointerJoin(p, 'a'), world, issues);
          checkHosts(b.b, pointerJoin(p, 'b'), world, issues);
          break;
        case 'heal':
          if ((b.a === undefined) !== (b.b === undefined)) issues.push(issue(p, 'E_SCENARIO_SCHEMA', 'give both a and b, or neither (heal everything)'));
          if (b.a !== undefined) checkHosts(b.a, pointerJoin(p, 'a'), world, issues);
          if (b.b !== undefined) checkHosts(b.b, pointerJoin(p, 'b'), world, issues);
          break;
        case 'link':
          checkLink(b, p, world, issues);
          break;
        case 'crash':
        case 'restart':
          checkHosts(b.host, pointerJoin(p, 'host'), world, issues);
          break;
        case 'reload': {
          if (b.apps === undefined && b.edge === undefined && b.access_rules === undefined) {
            issues.push(issue(p, 'E_SCENARIO_SCHEMA', 'a reload gives at least one of apps, edge and access_rules'));
          }
          const own = b.edge !== undefined;
          if (own) {
            appsEdge = b.edge;
            checkEdgeAddresses(b.edge, pointerJoin(p, 'edge'), topology.edges, issues);
          }
          const ownApps = b.apps !== undefined;
          if (ownApps) currentApps = b.apps;
          if (b.access_rules !== undefined) currentRules = checkAccessRules(b.access_rules, pointerJoin(p, 'access_rules'), issues) ? b.access_rules : undefined;
          if (ownApps || own) {
            checkConfig(topology.edges, appsEdge, currentApps ?? [], currentRules, zones, (ptr) => ((ownApps && ptr.startsWith('/apps')) || (own && ptr.startsWith('/edge')) ? p + ptr : ptr), issues);
          }
          break;
        }
        case 'dns':
          checkDns(b, p, issues);
          break;
        case 'api':
          break; // checkApiSteps, below: refs resolve in run order
        case 'resolve': {
          const client = checkClient(b.client, p, world, issues);
          const n = parseHostname(b.name, 'E_SCENARIO_ADDRESS');
          if (!n.ok) issues.push(issue(pointerJoin(p, 'name'), 'E_SCENARIO_ADDRESS', n.message));
          if (b.server !== undefined) {
            const srv = parseIpPort(b.server);
            if (srv === undefined) issues.push(issue(pointerJoin(p, 'server'), 'E_SCENARIO_ADDRESS', `"${b.server}" is not IP:PORT ([IPv6]:PORT)`));
            else checkSource(client, b.client, srv.family, undefined, b.server, pointerJoin(p, 'server'), p, issues);
          } else if (dnsSection === undefined) {
            if (rawTop['dns'] === undefined) issues.push(issue(p, 'E_SCENARIO_REFERENCE', 'no DNS server to ask: give server (IP:PORT), or a top-level dns section whose listen the resolve uses'));
          } else {
            const first = dnsListens(dnsSection)[0] ?? '';
            const srv = parseIpPort(first);
            if (srv !== undefined) checkSource(client, b.client, srv.family, undefined, `the DNS server ${first}`, p, p, issues);
          }
          break;
        }
        case 'datagram': {
          checkTarget(b, s.at, p, world, resolves, resolveIdsKnown, issues);
          if ((b.text === undefined) === (b.bytes === undefined)) issues.push(issue(p, 'E_SCENARIO_SCHEMA', 'give exactly one of text and bytes'));
          if (b.text !== undefined && encoder.encode(b.text).byteLength > MAX_DATAGRAM_BYTES) {
            issues.push(issue(pointerJoin(p, 'text'), 'E_SCENARIO_SCHEMA', `a UDP datagram carries at most ${MAX_DATAGRAM_BYTES} bytes`));
          }
          const family = b.to !== undefined ? parseIpPort(b.to)?.family : resolves.get(b.resolved)?.family;
          const src = b.from_port === undefined || flows.get(b.id)?.pointer !== p || family === undefined ? undefined : sourceAddressOf(world.hosts.get(b.client)?.addresses ?? [], family, b.from);
          if (src !== undefined) {
            const key = `${b.client}|${canonicalIp(src)}|${b.from_port}`;
            const other = fixedPorts.get(key);
            if (other !== undefined) issues.push(issue(pointerJoin(p, 'from_port'), 'E_SCENARIO_DUPLICATE', `flow "${other}" binds ${formatIpPort(src, b.from_port)} already`));
            else fixedPorts.set(key, b.id);
          }
          break;
        }
      }
    });
  }

  checkApiSteps(steps, zones, apps, issues);

  // Expectations.
  const expect = rawTop['expect'] === undefined ? undefined : parseFieldwise(EXPECT_FIELDS, rawTop['expect'], '/expect', issues, 'expect');
  expect?.connections?.forEach((c, k) => {
    const p = pointerJoin('/expect/connections', k);
    if (!opened.has(c.id) && idsKnown) issues.push(issue(pointerJoin(p, 'id'), 'E_SCENARIO_REFERENCE', `no connect or load step opens "${c.id}"`));
    if (c.closed_at_ms !== undefined && c.closed_at_ms[0] > c.closed_at_ms[1]) issues.push(issue(pointerJoin(p, 'closed_at_ms'), 'E_SCENARIO_SCHEMA', 'closed_at_ms is [min, max] with min <= max'));
    if (c.origin !== undefined && parseIpPort(c.origin) === undefined) issues.push(issue(pointerJoin(p, 'origin'), 'E_SCENARIO_ADDRESS', `"${c.origin}" is not IP:PORT ([IPv6]:PORT)`));
    for (const side of ['src', 'dst'] as const) {
      const v = c.proxy_header?.[side];
      if (v !== undefined && parseIpPort(v) === undefined) issues.push(issue(pointerJoin(p, 'proxy_header', side), 'E_SCENARIO_ADDRESS', `"${v}" is not IP:PORT ([IPv6]:PORT)`));
    }
  });

  expect?.resolutions?.forEach((r, k) => {
    const p = pointerJoin('/expect/resolutions', k);
    if (!resolves.has(r.id) && resolveIdsKnown) issues.push(issue(pointerJoin(p, 'id'), 'E_SCENARIO_REFERENCE', `no resolve step has id "${r.id}"`));
    r.addresses?.forEach((a, j) => {
      if (parseIpLiteral(a) === undefined) issues.push(issue(pointerJoin(p, 'addresses', j), 'E_SCENARIO_ADDRESS', `"${a}" is not an IP literal`));
    });
  });

  expect?.flows?.forEach((f, k) => {
    const p = pointerJoin('/expect/flows', k);
    if (!flows.has(f.id) && flowIdsKnown) issues.push(issue(pointerJoin(p, 'id'), 'E_SCENARIO_REFERENCE', `no datagram step sends on flow "${f.id}"`));
    for (const field of ['origin', 'origin_client'] as const) {
      const v = f[field];
      if (v !== undefined && parseIpPort(v) === undefined) issues.push(issue(pointerJoin(p, field), 'E_SCENARIO_ADDRESS', `"${v}" is not IP:PORT ([IPv6]:PORT)`));
    }
    for (const field of ['client_packets', 'origin_packets', 'client_bytes', 'origin_bytes', 'received_datagrams', 'received_bytes', 'origin_datagrams'] as const) {
      checkCount(f[field], pointerJoin(p, field), issues);
    }
  });
  for (const key of UDP_COUNTER_KEYS) checkCount(expect?.udp?.[key], pointerJoin('/expect/udp', key), issues);
  for (const key of ['accept_refused', 'upstream_failed', 'episodes', 'lost_untraced'] as const) checkCount(expect?.descriptors?.[key], pointerJoin('/expect/descriptors', key), issues);
  if (expect?.analytics !== undefined) checkAnalyticsExpect(expect.analytics, apps, steps, issues);

  if (issues.length > 0 || name === undefined || seed === undefined || topology === undefined || apps === undefined) {
    if (issues.length === 0) throw new Error('validateScenario: a section failed without an issue');
    return { ok: false, issues };
  }
  const timeline = steps.map((s) => ({ at: s!.at, [s!.action]: s!.body }));
  const { broken: _b, complete: _c, links, dns, ...lists } = topology;
  const topo: Topology = { ...lists, ...(links === undefined ? {} : { links }), ...(dns === undefined ? {} : { dns }) } as Topology;
  const scenario = {
    name,
    seed,
    ...(maxTimeMs === undefined ? {} : { max_time_ms: maxTimeMs }),
    topology: topo,
    ...(edgeSection === undefined ? {} : { edge: edgeSection }),
    apps,
    ...(accessRules === undefined ? {} : { access_rules: accessRules }),
    ...(certificates === undefined ? {} : { certificates }),
    ...(zones === undefined ? {} : { zones }),
    ...(dnsSection === undefined ? {} : { dns: dnsSection }),
    timeline,
    ...(expect === undefined ? {} : { expect }),
  } as ScenarioFile;
  return { ok: true, scenario: deepFreeze(scenario) as ScenarioFile };
}

/**
 * Parses and validates scenario text (YAML 1.2, or JSON). Duplicate keys and several documents are E_SCENARIO_PARSE
 * with the line and column; every other problem carries the line and column of the value its pointer names (or of
 * the nearest enclosing one, for a missing field).
 */
export function parseScenario(text: string, filename: string): ScenarioResult {
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const pos = problem.linePos?.[0];
    const msg = `${filename}: ${problem.message.split('\n')[0] ?? ''}`;
    return { ok: false, issues: [{ ...issue('', 'E_SCENARIO_PARSE', msg), ...(pos === undefined ? {} : { line: pos.line, col: pos.col }) }] };
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (cause) {
    return { ok: false, issues: [issue('', 'E_SCENARIO_PARSE', `${filename}: ${cause instanceof Error ? cause.message : String(cause)}`)] };
  }
  const r = validateScenario(raw);
  if (r.ok) return r;
  return {
    ok: false,
    issues: r.issues.map((i) => {
      const pos = positionOf(doc, lineCounter, i.pointer);
      return pos === undefined ? i : { ...i, line: pos.line, col: pos.col };
    }),
  };
}

/** Line and column of the node a pointer names, or of its nearest existing ancestor. */
function positionOf(doc: YAML.Document, lc: LineCounter, pointer: string): { line: number; col: number } | undefined {
  const tokens = pointer === '' ? [] : pointer.slice(1).split('/').map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
  for (let n = tokens.length; n >= 0; n--) {
    const path = tokens.slice(0, n).map((t) => (/^\d+$/.test(t) ? Number(t) : t));
    const node: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true);
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    if (range !== undefined) return lc.linePos(range[0]);
  }
  return undefined;
}
