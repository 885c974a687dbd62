/**
 * Properties of the management API over real loopback sockets (harness.ts: the API on port 0 over a real EdgeNode).
 *
 * "Normalisation" is the model's: `validateApp` (src/model/app.ts, the validator `validateConfig` runs on every app
 * of a config file) turns an app object into `AppSpec.spec`: the protocol written `tcp/P` or `tcp/A-B`, DNS names
 * lower-cased without a trailing dot, origin URIs re-formatted, legacy forms (`proxy_protocol: true`, `spp`)
 * rewritten, defaults filled in (proxy_protocol, ip_firewall, tls, edge_ips, traffic_type, argo_smart_routing,
 * dns.type), `null` fields dropped, unknown and read-only fields (`id`, `created_on`, `modified_on`, `ipv4`)
 * dropped. The API must answer a valid body with exactly that spec plus its own `id`, `created_on` and
 * `modified_on`, and listen on exactly the app's edge ports.
 *
 * Invalid bodies (each mutation below is invalid by construction, with the code and pointer it must produce) and
 * junk requests (not an object, malformed JSON, wrong content type, oversized, unknown zone or app) must get a 4xx
 * in the envelope with a coded `errors[0]` (never a 500), and change nothing: the stored apps and the edge's
 * listeners are exactly as before.
 *
 * REFRACT_FC_RUNS scales the run counts (as in test/prop).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import fc from 'fast-check';
import { validateApp } from '../../../src/model/app.ts';
import { ERRORS, type ErrorCode, type ErrorSpec } from '../../../src/model/errors.ts';
import { hostnameArb } from '../../prop/model/arbitraries.ts';
import { startApi, ZONE, type ApiUnderTest } from './harness.ts';
import { freeRange } from './processes.ts';

const RUN_SCALE = process.env.REFRACT_FC_RUNS !== undefined ? Number(process.env.REFRACT_FC_RUNS) : 1;
// A failure's report carries the assertion that failed (node's test reporter shows only the message, not its cause).
fc.configureGlobal({ ...fc.readConfigureGlobal(), includeErrorInReport: true });
const runs = (n: number): number => Math.max(1, Math.round(n * RUN_SCALE));
const APPS = `/zones/${ZONE.id}/spectrum/apps`;
const READ_ONLY = ['id', 'created_on', 'modified_on'];

type Proto = 'tcp' | 'udp';

/** A valid app object without its `protocol`, which is written once the edge ports are known (`build`). */
interface Shape {
  readonly proto: Proto;
  /** Edge ports: 1-4. */
  readonly size: number;
  /** A single port written `P-P` instead of `P`. */
  readonly pairForm: boolean;
  readonly body: Readonly<Record<string, unknown>>;
}

function build(s: Shape, start: number): Record<string, unknown> {
  const end = start + s.size - 1;
  const ports = s.size === 1 && !s.pairForm ? String(start) : `${start}-${end}`;
  return { protocol: `${s.proto}/${ports}`, ...s.body };
}

/** `undefined` (absent), `null` (absent, as SDKs send it) or a value. */
const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined | null> =>
  fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant(null) });

function clean(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** Origin port text for an edge range of `size` ports: one port (serves every edge port) or a range as long. */
const originPorts = (size: number): fc.Arbitrary<string> =>
  fc.integer({ min: 1, max: 60_000 }).chain((p) => (size === 1 ? fc.constantFrom(String(p), `${p}-${p}`) : fc.constantFrom(String(p), `${p}-${p + size - 1}`)));

function originArb(proto: Proto, size: number): fc.Arbitrary<Record<string, unknown>> {
  const host = fc.oneof(fc.constant('127.0.0.1'), fc.constant('[::1]'), fc.ipV4(), fc.ipV6().map((a) => `[${a}]`));
  const direct = fc.record({ origin_direct: fc.array(fc.tuple(host, originPorts(size)).map(([h, p]) => `${proto}://${h}:${p}`), { minLength: 1, maxLength: 3 }) });
  const dnsAddress = fc.record({
    origin_dns: fc.record({ name: hostnameArb, type: optional(fc.constantFrom('', 'A', 'AAAA')), ttl: optional(fc.integer({ min: 600, max: 86_400 })) }).map(clean),
    origin_port: fc.oneof(originPorts(size), fc.integer({ min: 1, max: 60_000 })),
  });
  const dnsSrv = fc.record({ origin_dns: fc.record({ name: hostnameArb.map((n) => `_svc._${proto}.${n}`), type: fc.constant('SRV') }) });
  return fc.oneof({ weight: 3, arbitrary: direct }, { weight: 2, arbitrary: dnsAddress }, { weight: 1, arbitrary: dnsSrv });
}

/** proxy_protocol (with the legacy boolean and `spp` forms), tls and the fields that depend on them. */
function protocolFieldsArb(proto: Proto): fc.Arbitrary<Record<string, unknown>> {
  if (proto === 'udp') {
    return fc.record({
      pp: fc.oneof(
        fc.record({ proxy_protocol: optional(fc.constantFrom('off', 'v2', 'simple', false)) }),
        fc.constant({ spp: true }),
        fc.constant({ spp: false, proxy_protocol: 'v2' }),
      ),
      tls: optional(fc.constant('off')),
      udp_max_flows: optional(fc.integer({ min: 1, max: 1_000_000 })),
    }).map(({ pp, ...rest }) => clean({ ...pp, ...rest }));
  }
  return fc
    .record({
      proxy_protocol: optional(fc.constantFrom('off', 'v1', 'v2', true, false)),
      tls: optional(fc.constantFrom('off', 'flexible', 'full', 'strict')),
      tlvs: fc.boolean(),
      sni: fc.option(hostnameArb, { nil: undefined }),
    })
    .map(({ tlvs, sni, ...rest }) =>
      clean({
        ...rest,
        ...(tlvs && rest.proxy_protocol === 'v2' ? { proxy_protocol_tlvs: true } : {}),
        ...(sni !== undefined && (rest.tls === 'full' || rest.tls === 'strict') ? { edge_tls: { origin_server_name: sni } } : {}),
      }),
    );
}

const dnsAndEdgeIpsArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({
    dns: fc.record({ name: hostnameArb, type: optional(fc.constant('CNAME')) }).map(clean),
    edge_ips: optional(fc.record({ type: optional(fc.constant('dynamic')), connectivity: optional(fc.constantFrom('all', 'ipv4', 'ipv6')) }).map(clean)),
  }).map(clean),
  fc.record({
    dns: fc.record({ name: hostnameArb, type: fc.constant('ADDRESS') }),
    edge_ips: fc.record({ type: optional(fc.constant('static')), ips: fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { minLength: 1, maxLength: 3 }) }).map(clean),
  }),
);

/** Random valid app shapes: every field the brief lists, optional ones absent, null or set, plus ignored fields. */
const shapeArb: fc.Arbitrary<Shape> = fc
  .record({ proto: fc.constantFrom<Proto>('tcp', 'udp'), size: fc.integer({ min: 1, max: 4 }), pairForm: fc.boolean() })
  .chain(({ proto, size, pairForm }) =>
    fc
      .record({
        origin: originArb(proto, size),
        protocolFields: protocolFieldsArb(proto),
        dnsAndEdgeIps: dnsAndEdgeIpsArb,
        ip_firewall: optional(fc.boolean()),
        argo_smart_routing: optional(fc.boolean()),
        traffic_type: optional(fc.constant('direct')),
        connect_timeout_ms: optional(fc.integer({ min: 1, max: 120_000 })),
        idle_timeout_ms: optional(fc.integer({ min: 1, max: 900_000 })),
        extra: fc.option(
          fc.constantFrom<Record<string, unknown>>(
            { ipv4: true },
            { created_on: '2014-01-02T02:20:00Z', modified_on: '2014-01-02T02:20:00Z' },
            { id: 'chosen-by-the-client' },
            { virtual_network_id: null },
            { unknown_field: { nested: [1, 2] } },
          ),
          { nil: undefined },
        ),
      })
      .map(({ origin, protocolFields, dnsAndEdgeIps, extra, ...rest }): Shape => ({
        proto,
        size,
        pairForm,
        body: clean({ ...rest, ...origin, ...protocolFields, ...dnsAndEdgeIps, ...extra }),
      })),
  );

/** The model's normalisation of a body, without `id` (the API chooses it). */
function normalised(body: Record<string, unknown>): Record<string, unknown> {
  const r = validateApp(Object.fromEntries(Object.entries(body).filter(([k]) => !READ_ONLY.includes(k))));
  assert.ok(r.ok, `the generator made an invalid app: ${JSON.stringify(r.ok ? [] : r.issues)}`);
  const { id: _id, ...spec } = r.app.spec as Record<string, unknown>;
  return spec;
}

function withoutReadOnly(app: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(app).filter(([k]) => !READ_ONLY.includes(k)));
}

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

function listenerKeys(api: ApiUnderTest): string[] {
  return api.edge.listeners().map((l) => `${l.protocol}|${l.host}|${l.port}`).sort();
}

/** One TCP connect to 127.0.0.1:port: 'accepted' or the error code. */
function connectOnce(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const t = setTimeout(() => s.destroy(new Error('timeout')), 3000);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve('accepted');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code ?? e.message);
    });
  });
}

/** A coded failure in Cloudflare's envelope: success false, result null, errors[0] with a number and a known code. */
function assertCodedFailure(status: number, type: string | null, json: any, what: string): void {
  assert.ok(status >= 400 && status < 500, `${what}: HTTP ${status} ${JSON.stringify(json)}`);
  assert.match(type ?? '', /^application\/json/, what);
  assert.equal(json.success, false, what);
  assert.equal(json.result, null, what);
  assert.ok(Array.isArray(json.errors) && json.errors.length > 0, what);
  const e = json.errors[0];
  assert.equal(typeof e.code, 'number', what);
  assert.ok(Object.hasOwn(ERRORS, e.refract_code), `${what}: unknown refract_code ${e.refract_code}`);
  assert.equal(typeof e.message, 'string', what);
  assert.notEqual(e.message, '', what);
}

// ── invalid app objects, each invalid by construction ──────────────────────────────────────────────────────────

interface Mutation {
  readonly name: string;
  /** The mutated body, from a valid shape whose edge ports start at `start`. */
  apply(s: Shape, start: number): unknown;
  /** The code (and pointer into the body, '' for the body itself) an error must carry. */
  readonly code: ErrorCode;
  readonly pointer: string;
}

const other = (p: Proto): Proto => (p === 'tcp' ? 'udp' : 'tcp');
const set = (s: Shape, start: number, fields: Record<string, unknown>): Record<string, unknown> => ({ ...build(s, start), ...fields });
function drop(o: Record<string, unknown>, ...keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}
/** The shape with a plain direct origin (so a mutation elsewhere is the only problem). */
const direct = (s: Shape, start: number): Record<string, unknown> => ({ ...drop(build(s, start), 'origin_dns', 'origin_port'), origin_direct: [`${s.proto}://127.0.0.1:9`] });

const MUTATIONS: readonly Mutation[] = [
  { name: 'protocol is a number', apply: (s, p) => set(s, p, { protocol: p }), code: 'E_CONFIG_SCHEMA', pointer: '/protocol' },
  { name: 'protocol sctp', apply: (s, p) => set(s, p, { protocol: `sctp/${p}` }), code: 'E_CONFIG_PROTOCOL', pointer: '/protocol' },
  { name: 'edge port 0', apply: (s, p) => set(s, p, { protocol: `${s.proto}/0` }), code: 'E_CONFIG_PORT_ZERO', pointer: '/protocol' },
  { name: 'edge port above 65535', apply: (s, p) => set(s, p, { protocol: `${s.proto}/70000` }), code: 'E_CONFIG_PROTOCOL', pointer: '/protocol' },
  { name: 'edge range backwards', apply: (s, p) => set(s, p, { protocol: `${s.proto}/${p + 1}-${p}` }), code: 'E_CONFIG_PORT_RANGE_ORDER', pointer: '/protocol' },
  { name: 'no protocol', apply: (s, p) => drop(build(s, p), 'protocol'), code: 'E_CONFIG_SCHEMA', pointer: '/protocol' },
  { name: 'no dns', apply: (s, p) => drop(build(s, p), 'dns'), code: 'E_CONFIG_SCHEMA', pointer: '/dns' },
  { name: 'dns null', apply: (s, p) => set(s, p, { dns: null }), code: 'E_CONFIG_SCHEMA', pointer: '/dns' },
  { name: 'dns a string', apply: (s, p) => set(s, p, { dns: 'ssh.example.com' }), code: 'E_CONFIG_SCHEMA', pointer: '/dns' },
  { name: 'dns.type MX', apply: (s, p) => set(s, p, { dns: { type: 'MX', name: 'a.example.com' } }), code: 'E_CONFIG_SCHEMA', pointer: '/dns/type' },
  { name: 'dns.name 100,000 characters', apply: (s, p) => set(s, p, { dns: { name: 'a'.repeat(100_000) }, edge_ips: null }), code: 'E_CONFIG_SCHEMA', pointer: '/dns/name' },
  { name: 'dns.name with a space', apply: (s, p) => set(s, p, { dns: { name: 'bad name.example.com' }, edge_ips: null }), code: 'E_CONFIG_SCHEMA', pointer: '/dns/name' },
  { name: 'tls not an enum value', apply: (s, p) => set(s, p, { tls: 'maybe' }), code: 'E_CONFIG_SCHEMA', pointer: '/tls' },
  { name: 'tls on a UDP app', apply: (s, p) => ({ ...direct({ ...s, proto: 'udp', body: drop(s.body, 'proxy_protocol', 'spp', 'proxy_protocol_tlvs', 'edge_tls') }, p), tls: 'full' }), code: 'E_CONFIG_SCHEMA', pointer: '/tls' },
  { name: 'proxy_protocol v3', apply: (s, p) => set(s, p, { proxy_protocol: 'v3', spp: null }), code: 'E_CONFIG_SCHEMA', pointer: '/proxy_protocol' },
  {
    name: 'proxy_protocol for the other protocol',
    apply: (s, p) => ({ ...drop(build(s, p), 'spp', 'proxy_protocol_tlvs'), proxy_protocol: s.proto === 'tcp' ? 'simple' : 'v1' }),
    code: 'E_CONFIG_PROXY_PROTOCOL',
    pointer: '/proxy_protocol',
  },
  { name: 'proxy_protocol_tlvs without v2', apply: (s, p) => ({ ...drop(build(s, p), 'spp'), proxy_protocol: 'off', proxy_protocol_tlvs: true }), code: 'E_CONFIG_PROXY_PROTOCOL', pointer: '/proxy_protocol_tlvs' },
  {
    name: 'origin_direct and origin_dns',
    apply: (s, p) => ({ ...direct(s, p), origin_dns: { name: 'origin.example.com' }, origin_port: 22 }),
    code: 'E_ORIGIN_CONFIG_INVALID',
    pointer: '/origin_dns',
  },
  { name: 'no origin', apply: (s, p) => drop(build(s, p), 'origin_direct', 'origin_dns', 'origin_port'), code: 'E_ORIGIN_CONFIG_INVALID', pointer: '' },
  { name: 'origin_direct empty', apply: (s, p) => ({ ...direct(s, p), origin_direct: [] }), code: 'E_ORIGIN_CONFIG_INVALID', pointer: '/origin_direct' },
  { name: 'origin_direct IPv6 without brackets', apply: (s, p) => ({ ...direct(s, p), origin_direct: [`${s.proto}://2001:db8::1:22`] }), code: 'E_ORIGIN_ADDRESS_INVALID', pointer: '/origin_direct/0' },
  { name: 'origin_direct without a port', apply: (s, p) => ({ ...direct(s, p), origin_direct: [`${s.proto}://127.0.0.1`] }), code: 'E_ORIGIN_ADDRESS_INVALID', pointer: '/origin_direct/0' },
  { name: 'origin_direct of the other protocol', apply: (s, p) => ({ ...direct(s, p), origin_direct: [`${other(s.proto)}://127.0.0.1:9`] }), code: 'E_CONFIG_PROTOCOL_MISMATCH', pointer: '/origin_direct/0' },
  { name: 'origin_direct a number', apply: (s, p) => ({ ...direct(s, p), origin_direct: [42] }), code: 'E_CONFIG_SCHEMA', pointer: '/origin_direct/0' },
  {
    name: 'origin range longer than the edge range',
    apply: (s, p) => ({ ...direct(s, p), origin_direct: [`${s.proto}://127.0.0.1:9000-${9000 + s.size}`] }),
    code: 'E_CONFIG_PORT_RANGE_MISMATCH',
    pointer: '/origin_direct/0',
  },
  { name: 'origin_port with origin_direct', apply: (s, p) => ({ ...direct(s, p), origin_port: 22 }), code: 'E_ORIGIN_CONFIG_INVALID', pointer: '/origin_port' },
  {
    name: 'origin_dns A without origin_port',
    apply: (s, p) => ({ ...drop(build(s, p), 'origin_direct', 'origin_port'), origin_dns: { name: 'origin.example.com', type: 'A' } }),
    code: 'E_ORIGIN_DNS_INVALID',
    pointer: '/origin_port',
  },
  {
    name: 'origin_dns SRV with origin_port',
    apply: (s, p) => ({ ...drop(build(s, p), 'origin_direct'), origin_dns: { name: '_x._tcp.origin.example.com', type: 'SRV' }, origin_port: 22 }),
    code: 'E_ORIGIN_DNS_INVALID',
    pointer: '/origin_port',
  },
  {
    name: 'origin_dns ttl below 600',
    apply: (s, p) => ({ ...drop(build(s, p), 'origin_direct'), origin_dns: { name: 'origin.example.com', ttl: 10 }, origin_port: 22 }),
    code: 'E_ORIGIN_DNS_INVALID',
    pointer: '/origin_dns/ttl',
  },
  { name: 'traffic_type http (unsupported)', apply: (s, p) => set(s, p, { traffic_type: 'http' }), code: 'E_CONFIG_UNSUPPORTED', pointer: '/traffic_type' },
  { name: 'traffic_type not an enum value', apply: (s, p) => set(s, p, { traffic_type: 'ftp' }), code: 'E_CONFIG_SCHEMA', pointer: '/traffic_type' },
  { name: 'ip_firewall a string', apply: (s, p) => set(s, p, { ip_firewall: 'yes' }), code: 'E_CONFIG_SCHEMA', pointer: '/ip_firewall' },
  { name: 'argo_smart_routing a number', apply: (s, p) => set(s, p, { argo_smart_routing: 1 }), code: 'E_CONFIG_SCHEMA', pointer: '/argo_smart_routing' },
  {
    name: 'static edge_ips with a CNAME',
    apply: (s, p) => set(s, p, { dns: { type: 'CNAME', name: 'a.example.com' }, edge_ips: { type: 'static', ips: ['192.0.2.1'] } }),
    code: 'E_DNS_TYPE_MISMATCH',
    pointer: '/edge_ips',
  },
  { name: 'edge_ips a string', apply: (s, p) => set(s, p, { edge_ips: 'dynamic' }), code: 'E_CONFIG_SCHEMA', pointer: '/edge_ips' },
  { name: 'connect_timeout_ms 0', apply: (s, p) => set(s, p, { connect_timeout_ms: 0 }), code: 'E_CONFIG_SCHEMA', pointer: '/connect_timeout_ms' },
  { name: 'idle_timeout_ms a fraction', apply: (s, p) => set(s, p, { idle_timeout_ms: 1.5 }), code: 'E_CONFIG_SCHEMA', pointer: '/idle_timeout_ms' },
  { name: 'udp_max_flows a string', apply: (s, p) => set(s, p, { udp_max_flows: '10' }), code: 'E_CONFIG_SCHEMA', pointer: '/udp_max_flows' },
  { name: 'virtual_network_id (unsupported)', apply: (s, p) => set(s, p, { virtual_network_id: 'vnet-1' }), code: 'E_CONFIG_UNSUPPORTED', pointer: '/virtual_network_id' },
  { name: 'edge_tls unknown key', apply: (s, p) => set(s, p, { edge_tls: { certificate: 'x.pem' } }), code: 'E_CONFIG_SCHEMA', pointer: '/edge_tls/certificate' },
];

describe('management API properties', () => {
  let api: ApiUnderTest;
  /** Two apps that exist throughout: `victim` (PUT target of invalid bodies) and `blocker` (its ports are taken). */
  let victim: { id: string; port: number };
  const blocker = { tcp: 0, udp: 0 };

  before(async () => {
    api = await startApi({ edge: { addresses: ['127.0.0.1'], drain_timeout_ms: 0 } }, { rateLimit: { requests: 1_000_000, windowSec: 60 } });
    const vp = await freeRange(1);
    const v = await api.call('POST', APPS, { protocol: `tcp/${vp}`, dns: { name: 'victim.example.com' }, origin_direct: ['tcp://127.0.0.1:9'] });
    assert.equal(v.status, 200, JSON.stringify(v.json));
    victim = { id: v.json.result.id, port: vp };
    blocker.tcp = await freeRange(1);
    blocker.udp = await freeRange(1, { udp: true });
    for (const proto of ['tcp', 'udp'] as const) {
      const b = await api.call('POST', APPS, { protocol: `${proto}/${blocker[proto]}`, dns: { name: `blocker-${proto}.example.com` }, origin_direct: [`${proto}://127.0.0.1:9`] });
      assert.equal(b.status, 200, JSON.stringify(b.json));
    }
  });
  after(() => api.close());

  it('a valid app round-trips: POST and GET answer the model\'s normalisation, PUT of the answer changes nothing, DELETE releases the ports', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb, async (shape) => {
        const start = await freeRange(shape.size, { udp: shape.proto === 'udp' });
        const body = build(shape, start);
        const spec = normalised(body);
        const listenersBefore = listenerKeys(api);
        const storedBefore = api.store.apps().length;

        const created = await api.call('POST', APPS, body);
        assert.equal(created.status, 200, JSON.stringify(created.json));
        const app = created.json.result;
        assert.match(app.id, /^[0-9a-f]{32}$/);
        assert.match(app.created_on, RFC3339);
        assert.equal(app.modified_on, app.created_on);
        assert.deepEqual(withoutReadOnly(app), spec);
        // Independent of the model: the protocol as written by Cloudflare, one port or A-B.
        assert.equal(app.protocol, shape.size === 1 ? `${shape.proto}/${start}` : `${shape.proto}/${start}-${start + shape.size - 1}`);

        const got = await api.call('GET', `${APPS}/${app.id}`);
        assert.equal(got.status, 200);
        assert.deepEqual(got.json.result, app);
        assert.equal(api.store.apps().length, storedBefore + 1);

        // Listening on exactly the app's edge ports, on the edge address.
        const ports = Array.from({ length: shape.size }, (_, i) => `${shape.proto}|127.0.0.1|${start + i}`);
        assert.deepEqual(listenerKeys(api), [...listenersBefore, ...ports].sort());
        if (shape.proto === 'tcp' && Array.isArray(body['origin_direct'])) assert.equal(await connectOnce(start + shape.size - 1), 'accepted');

        // The API's own answer is a fixed point: PUT it back and only modified_on moves.
        const put = await api.call('PUT', `${APPS}/${app.id}`, app);
        assert.equal(put.status, 200, JSON.stringify(put.json));
        assert.deepEqual(withoutReadOnly(put.json.result), spec);
        assert.equal(put.json.result.created_on, app.created_on);
        assert.ok(put.json.result.modified_on > app.modified_on);

        const del = await api.call('DELETE', `${APPS}/${app.id}`);
        assert.equal(del.status, 200);
        assert.deepEqual(del.json.result, { id: app.id });
        assert.equal((await api.call('GET', `${APPS}/${app.id}`)).status, 404);
        assert.deepEqual(listenerKeys(api), listenersBefore);
        assert.equal(api.store.apps().length, storedBefore);
      }),
      { numRuns: runs(100) },
    );
  });

  it('an invalid app object is 400 with its code and pointer, by POST or by PUT over an app; nothing changes', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb, fc.constantFrom(...MUTATIONS), fc.constantFrom('POST', 'PUT'), async (shape, mutation, method) => {
        const start = await freeRange(Math.max(2, shape.size), { udp: true });
        const body = mutation.apply(shape, start);
        // The model agrees that the body is invalid, with this code (a check on the mutation table itself).
        const model = validateApp(body);
        assert.ok(!model.ok && model.issues.some((i) => i.code === mutation.code), `${mutation.name}: ${JSON.stringify(model)}`);

        const storedBefore = api.store.apps();
        const listenersBefore = listenerKeys(api);
        const r = await api.call(method, method === 'POST' ? APPS : `${APPS}/${victim.id}`, body);
        assert.equal(r.status, 400, `${mutation.name}: ${JSON.stringify(r.json)}`);
        assertCodedFailure(r.status, r.type, r.json, mutation.name);
        const hit = r.json.errors.find((e: any) => e.refract_code === mutation.code && (e.source?.pointer ?? '') === mutation.pointer);
        assert.ok(hit, `${mutation.name}: no ${mutation.code} at "${mutation.pointer}" in ${JSON.stringify(r.json.errors)}`);
        const spec: ErrorSpec = ERRORS[mutation.code];
        if (spec.cfCode !== undefined) assert.equal(hit.code, spec.cfCode);

        assert.deepEqual(api.store.apps(), storedBefore);
        assert.deepEqual(listenerKeys(api), listenersBefore);
        assert.equal(await connectOnce(start), 'ECONNREFUSED');
      }),
      { numRuns: runs(150) },
    );
  });

  it('an app whose edge ports overlap an existing app is 400 E_CONFIG_EDGE_CONFLICT; nothing changes', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<Proto>('tcp', 'udp'), fc.integer({ min: 0, max: 2 }), fc.constantFrom('POST', 'PUT'), async (proto, below, method) => {
        const taken = blocker[proto];
        // A range that ends on the taken port, or the port alone; the origin's single port serves every edge port.
        const body = { protocol: below === 0 ? `${proto}/${taken}` : `${proto}/${taken - below}-${taken}`, dns: { name: 'overlap.example.com' }, origin_direct: [`${proto}://127.0.0.1:9`] };
        const storedBefore = api.store.apps();
        const listenersBefore = listenerKeys(api);
        const r = await api.call(method, method === 'POST' ? APPS : `${APPS}/${victim.id}`, body);
        assert.equal(r.status, 400, JSON.stringify(r.json));
        assertCodedFailure(r.status, r.type, r.json, 'overlap');
        assert.equal(r.json.errors[0].refract_code, 'E_CONFIG_EDGE_CONFLICT');
        assert.deepEqual(api.store.apps(), storedBefore);
        assert.deepEqual(listenerKeys(api), listenersBefore);
      }),
      { numRuns: runs(20) },
    );
  });

  it('junk requests (not an object, malformed JSON, wrong content type, oversized, unknown zone or app) are coded 4xx; nothing changes', { timeout: 120_000 }, async () => {
    const validBody = (start: number): Record<string, unknown> => ({ protocol: `tcp/${start}`, dns: { name: 'junk.example.com' }, origin_direct: ['tcp://127.0.0.1:9'] });
    type Junk = { name: string; method: string; path: (start: number) => string; type: string | undefined; body: (start: number) => string | undefined; status: number; code: ErrorCode };
    const hex32 = fc.stringMatching(/^[0-9a-f]{32}$/);
    const junkArb: fc.Arbitrary<Junk> = fc.oneof(
      fc.oneof(fc.array(fc.jsonValue(), { maxLength: 3 }), fc.integer(), fc.string(), fc.constant(null), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true })).map((v) => ({
        name: `not an object: ${JSON.stringify(v)}`,
        method: 'POST',
        path: () => APPS,
        type: 'application/json',
        body: () => JSON.stringify(v),
        status: 400,
        code: 'E_API_BAD_REQUEST' as const,
      })),
      fc.double({ min: 0.05, max: 0.95, noNaN: true }).map((cut) => ({
        name: `JSON cut at ${cut.toFixed(2)}`,
        method: 'POST',
        path: () => APPS,
        type: 'application/json',
        body: (start: number) => {
          const text = JSON.stringify(validBody(start));
          return text.slice(0, Math.max(1, Math.floor(text.length * cut)));
        },
        status: 400,
        code: 'E_API_BAD_REQUEST' as const,
      })),
      fc.string({ minLength: 1, maxLength: 40 })
        .filter((s) => {
          try {
            JSON.parse(s);
            return false;
          } catch {
            return true;
          }
        })
        .map((s) => ({ name: `malformed JSON ${JSON.stringify(s)}`, method: 'POST', path: () => APPS, type: 'application/json', body: () => s, status: 400, code: 'E_API_BAD_REQUEST' as const })),
      fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'application/octet-stream', 'multipart/form-data; boundary=x', 'text/html').map((type) => ({
        name: `content-type ${type}`,
        method: 'POST',
        path: () => APPS,
        type,
        body: (start: number) => JSON.stringify(validBody(start)),
        status: 400,
        code: 'E_API_BAD_REQUEST' as const,
      })),
      fc.constant<Junk>({ name: 'a valid body sent as fetch sends a string (text/plain)', method: 'POST', path: () => APPS, type: undefined, body: (start) => JSON.stringify(validBody(start)), status: 400, code: 'E_API_BAD_REQUEST' }),
      fc.constant<Junk>({ name: 'an empty JSON body', method: 'POST', path: () => APPS, type: 'application/json', body: () => '', status: 400, code: 'E_API_BAD_REQUEST' }),
      fc.integer({ min: 0, max: 4096 }).map((extra) => ({
        name: `a body of 1 MiB + ${extra + 64} bytes`,
        method: 'POST',
        path: () => APPS,
        type: 'application/json',
        body: (start: number) => JSON.stringify({ ...validBody(start), pad: 'x'.repeat((1 << 20) + extra) }),
        status: 400,
        code: 'E_API_BAD_REQUEST' as const,
      })),
      fc.constantFrom('{"__proto__":{"protocol":"tcp/1"}}', '{"constructor":{"prototype":{"tls":"full"}}}').map((text) => ({
        name: `prototype poisoning ${text}`,
        method: 'POST',
        path: () => APPS,
        type: 'application/json',
        body: () => text,
        status: 400,
        code: 'E_API_BAD_REQUEST' as const,
      })),
      fc.oneof(hex32.filter((z) => z !== ZONE.id), fc.constantFrom('nope', 'ZONE', '-')).map((zone) => ({
        name: `unknown zone ${zone}`,
        method: 'POST',
        path: () => `/zones/${zone}/spectrum/apps`,
        type: 'application/json',
        body: (start: number) => JSON.stringify(validBody(start)),
        status: 404,
        code: 'E_API_ZONE_NOT_FOUND' as const,
      })),
      fc.tuple(fc.oneof(hex32, fc.constantFrom('x', 'from-file', '0')), fc.constantFrom('PUT', 'DELETE', 'GET')).map(([id, method]) => ({
        name: `${method} unknown app ${id}`,
        method,
        path: () => `${APPS}/${id}`,
        type: method === 'PUT' ? 'application/json' : undefined,
        body: (start: number) => (method === 'PUT' ? JSON.stringify(validBody(start)) : undefined),
        status: 404,
        code: 'E_API_APP_NOT_FOUND' as const,
      })),
    );
    await fc.assert(
      fc.asyncProperty(junkArb, async (junk) => {
        const start = await freeRange(1);
        const storedBefore = api.store.apps();
        const listenersBefore = listenerKeys(api);
        const headers: Record<string, string> = { authorization: `Bearer ${api.token}` };
        if (junk.type !== undefined) headers['content-type'] = junk.type;
        const body = junk.body(start);
        const res = await fetch(api.base + junk.path(start), { method: junk.method, headers, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(10_000) });
        const json = JSON.parse(await res.text());
        assert.equal(res.status, junk.status, `${junk.name}: ${JSON.stringify(json)}`);
        assertCodedFailure(res.status, res.headers.get('content-type'), json, junk.name);
        assert.equal(json.errors[0].refract_code, junk.code, junk.name);
        assert.equal(res.headers.get('x-should-retry'), 'false', junk.name);
        assert.deepEqual(api.store.apps(), storedBefore);
        assert.deepEqual(listenerKeys(api), listenersBefore);
        assert.equal(await connectOnce(start), 'ECONNREFUSED', junk.name);
      }),
      { numRuns: runs(80) },
    );
  });

  it('the victim and blocker apps are exactly as created after all of the above', async () => {
    const list = await api.call('GET', `${APPS}?per_page=100`);
    assert.equal(list.json.result_info.total_count, 3);
    const v = list.json.result.find((a: any) => a.id === victim.id);
    assert.equal(v.protocol, `tcp/${victim.port}`);
    assert.equal(v.modified_on, v.created_on);
    assert.equal(await connectOnce(victim.port), 'accepted');
  });
});
