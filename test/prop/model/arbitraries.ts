/**
 * fast-check generators of valid Spectrum app objects and node configs, in every accepted form (legacy booleans,
 * `spp`, numeric-string ports, `A-A` ranges, nulls for absent fields, unknown extra fields). Shared by the model
 * property suites; other suites may use them to build scenarios.
 */
import fc from 'fast-check';

const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/);
/** A DNS name, sometimes upper-cased or with a trailing dot (both normalise away). */
export const hostnameArb: fc.Arbitrary<string> = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('test', 'example'), fc.boolean(), fc.boolean())
  .map(([labels, tld, upper, dot]) => {
    const name = [...labels, tld].join('.');
    return (upper ? name.toUpperCase() : name) + (dot ? '.' : '');
  });

/** A port range text of exactly `size` ports starting at or after `min` (size 1 sometimes written `A-A`). */
function rangeText(size: number, min = 1): fc.Arbitrary<string> {
  return fc.integer({ min, max: 65_535 - size + 1 }).chain((start) =>
    size === 1 ? fc.constantFrom(String(start), `${start}-${start}`) : fc.constant(`${start}-${start + size - 1}`),
  );
}

/** An origin port that fits an edge range of `size` ports: one port, or a range of the same size. */
function originPortsText(size: number): fc.Arbitrary<string> {
  return fc.oneof(rangeText(1), rangeText(size));
}

const appIdArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();

function directTarget(protocol: 'tcp' | 'udp', size: number): fc.Arbitrary<string> {
  return fc
    .tuple(fc.oneof(ipv4, ipv6.map((a) => `[${a}]`)), originPortsText(size))
    .map(([host, ports]) => `${protocol}://${host}:${ports}`);
}

const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined | null> =>
  fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant(null) });

/** Drops keys whose value is undefined (so the object looks like parsed JSON/YAML). */
function clean(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

export interface AppArbOptions {
  /** Edge ports fall in [portMin, portMin + portSpan). */
  readonly portMin?: number;
  readonly portSpan?: number;
  readonly id?: fc.Arbitrary<string | undefined>;
}

/** A valid Spectrum app object (as an operator or SDK would send it). */
export function validAppArb(opts: AppArbOptions = {}): fc.Arbitrary<Record<string, unknown>> {
  const portMin = opts.portMin ?? 1;
  const portSpan = opts.portSpan ?? 65_535;
  return fc
    .record({
      protocol: fc.constantFrom('tcp' as const, 'udp' as const),
      size: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: Math.min(50, portSpan) })),
    })
    .chain(({ protocol, size }) => {
      const edge = fc.integer({ min: portMin, max: portMin + portSpan - size }).chain((start) =>
        size === 1 ? fc.constantFrom(`${protocol}/${start}`, `${protocol}/${start}-${start}`) : fc.constant(`${protocol}/${start}-${start + size - 1}`),
      );
      const direct = fc.record({
        origin_direct: fc.array(directTarget(protocol, size), { minLength: 1, maxLength: 3 }),
        origin_dns: fc.constant(null),
      });
      const viaDns = fc.oneof(
        fc.record({
          origin_dns: fc.record({ name: hostnameArb, ttl: optional(fc.integer({ min: 600, max: 86_400 })), type: optional(fc.constantFrom('', 'A', 'AAAA')) }).map(clean),
          origin_port: fc.oneof(originPortsText(size), fc.integer({ min: 1, max: 65_535 })),
        }),
        fc.record({ origin_dns: fc.record({ name: hostnameArb.map((n) => `_svc._${protocol}.${n}`), type: fc.constant('SRV') }) }),
      );
      const proxy =
        protocol === 'tcp'
          ? fc.oneof(
              fc.record({ proxy_protocol: optional(fc.constantFrom('off', 'v1', 'v2', true, false)) }),
              fc.constant({ spp: false }),
            )
          : fc.oneof(
              fc.record({ proxy_protocol: optional(fc.constantFrom('off', 'v2', 'simple', false)) }),
              fc.constant({ spp: true }),
              fc.constant({ spp: true, proxy_protocol: 'off' }),
            );
      const edgeAndDns = fc.oneof(
        fc.record({
          dns: fc.record({ name: hostnameArb, type: optional(fc.constant('CNAME')) }).map(clean),
          edge_ips: optional(fc.record({ type: optional(fc.constant('dynamic')), connectivity: optional(fc.constantFrom('all', 'ipv4', 'ipv6')) }).map(clean)),
        }),
        fc.record({
          dns: fc.record({ name: hostnameArb, type: fc.constant('ADDRESS') }),
          edge_ips: fc.record({ type: optional(fc.constant('static')), ips: fc.array(fc.oneof(ipv4, ipv6), { minLength: 1, maxLength: 3 }) }).map(clean),
        }),
      );
      return fc
        .record({
          id: opts.id ?? fc.option(appIdArb, { nil: undefined }),
          protocol: edge,
          origin: fc.oneof(direct, viaDns),
          proxy,
          edgeAndDns,
          tls: protocol === 'tcp' ? optional(fc.constantFrom('off', 'flexible', 'full', 'strict')) : optional(fc.constant('off')),
          ip_firewall: optional(fc.boolean()),
          argo_smart_routing: optional(fc.boolean()),
          traffic_type: optional(fc.constant('direct')),
          connect_timeout_ms: fc.option(fc.integer({ min: 1, max: 120_000 }), { nil: undefined }),
          idle_timeout_ms: fc.option(fc.integer({ min: 1, max: 900_000 }), { nil: undefined }),
          extra: fc.option(fc.constantFrom({ ipv4: true }, { created_on: '2014-01-02T02:20:00Z', modified_on: '2014-01-02T02:20:00Z' }, { virtual_network_id: null }), { nil: undefined }),
        })
        .map(({ origin, proxy, edgeAndDns, extra, ...rest }) => clean({ ...rest, ...origin, ...proxy, ...edgeAndDns, ...extra }));
    });
}

/**
 * A valid node config object: apps on disjoint edge blocks (so no edge conflict), unique explicit ids or derived
 * ones, built-in origins on 127.0.0.1 ports 40000+ (above every app's edge ports).
 */
export const validConfigArb: fc.Arbitrary<Record<string, unknown>> = fc
  .integer({ min: 0, max: 4 })
  .chain((n) =>
    fc.record({
      node: fc.option(fc.record({ id: fc.constantFrom('edge-1', 'n.2') }), { nil: undefined }),
      edge: fc.option(
        fc
          .record({
            addresses: fc.option(fc.constantFrom(['127.0.0.1'], ['127.0.0.1', '::1'], ['0.0.0.0']), { nil: undefined }),
            accept_proxy: fc.option(fc.record({ trusted: fc.constantFrom(['127.0.0.0/8'], ['10.0.0.1', '::1/128']), timeout_ms: fc.integer({ min: 1, max: 10_000 }) }), { nil: undefined }),
            connect_timeout_ms: fc.option(fc.integer({ min: 1, max: 60_000 }), { nil: undefined }),
            drain_timeout_ms: fc.option(fc.integer({ min: 0, max: 60_000 }), { nil: undefined }),
            max_connect_attempts: fc.option(fc.integer({ min: 1, max: 16 }), { nil: undefined }),
            dns: fc.option(fc.record({ servers: fc.constantFrom(['127.0.0.1:5353'], [], ['[::1]:53', '127.0.0.1']), min_ttl_sec: fc.integer({ min: 600, max: 3600 }) }), { nil: undefined }),
          })
          .map(clean),
        { nil: undefined },
      ),
      log: fc.option(fc.record({ level: fc.constantFrom('info', 'debug', 'silent'), events: fc.constantFrom('stdout', '/tmp/refract-events.jsonl') }), { nil: undefined }),
      origins: fc.option(
        fc.constantFrom(
          [{ name: 'echo', listen: 'tcp://127.0.0.1:40000-40009', behaviour: 'echo' }],
          [
            { name: 'echo', listen: 'udp://127.0.0.1:40000', behaviour: 'echo' },
            { name: 'hello', listen: 'tcp://[::1]:40001', behaviour: 'banner', banner: '220 hi\r\n' },
          ],
        ),
        { nil: undefined },
      ),
      apps: fc.tuple(
        ...Array.from({ length: n }, (_, i) =>
          validAppArb({ portMin: 1 + i * 1000, portSpan: 1000, id: fc.option(fc.constant(`app-${i}`), { nil: undefined }) }),
        ),
      ),
    }).map(clean),
  );
