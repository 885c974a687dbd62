import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { pino } from 'pino';
import { createOriginResolver, type OriginResolver, type UpstreamTarget } from '../../../src/edge/origin-resolver.ts';
import { isRefractError } from '../../../src/model/errors.ts';
import type { AppSpec, DirectOrigin, OriginSpec, PortRange } from '../../../src/model/types.ts';
import { createNodeResolver } from '../../../src/net/node/resolver.ts';
import type { Network } from '../../../src/net/ports.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { createManualClock, type ManualClock } from '../../helpers/manual-clock.ts';

// Real DNS over loopback (the test server), virtual time (the manual clock): lookups are real I/O, expiry and
// refresh timers move only when a test advances the clock.

function app(id: string, edgePorts: PortRange, origin: OriginSpec): AppSpec {
  return {
    id,
    protocol: 'tcp',
    edgePorts,
    origin,
    proxyProtocol: 'off',
    tls: 'off',
    ipFirewall: false,
    argoSmartRouting: false,
    trafficType: 'direct',
    dns: { type: 'CNAME', name: `${id}.example.com` },
    edgeIps: { type: 'dynamic', connectivity: 'all' },
    connectTimeoutMs: undefined,
    idleTimeoutMs: undefined,
    udpMaxFlows: undefined,
    edgeTls: undefined,
    proxyProtocolTlvs: false,
    zoneId: undefined,
    spec: {},
  };
}

const port = (start: number, end = start): PortRange => ({ start, end });
const dnsOrigin = (name: string, type: '' | 'A' | 'AAAA' | 'SRV', ports: PortRange | undefined, ttlSec?: number): OriginSpec => ({
  kind: 'dns',
  name,
  type,
  ttlSec,
  ports,
});
const direct = (host: string, ports: PortRange): DirectOrigin => ({
  protocol: 'tcp',
  host,
  family: host.includes(':') ? 'IPv6' : 'IPv4',
  ports,
});
const hosts = (ts: readonly UpstreamTarget[] | undefined): string[] => (ts ?? []).map((t) => `${t.host}:${t.port}`);

interface Harness {
  readonly resolver: OriginResolver;
  readonly clock: ManualClock;
  readonly logs: Array<Record<string, unknown>>;
}

function network(dnsPort: number, clock: ManualClock): Network {
  const resolve = createNodeResolver({ servers: [`127.0.0.1:${dnsPort}`], timeoutMs: 300, tries: 1 });
  const unused = (): never => {
    throw new Error('not used by the origin resolver');
  };
  return { clock, random: { next: () => 0.5 }, resolve, listenTcp: unused, connectTcp: unused, bindUdp: unused, tls: { server: unused, client: unused } };
}

async function rejectsWithResolveFailed(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isRefractError(err));
    assert.equal(err.code, 'E_UPSTREAM_RESOLVE_FAILED');
    assert.equal(err.details?.['code'], code);
    return true;
  });
}

describe('origin resolver', () => {
  let dns: TestDnsServer;
  let h: Harness;
  const live: OriginResolver[] = [];

  const harness = (minTtlSec = 1): Harness => {
    const clock = createManualClock();
    const logs: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    const resolver = createOriginResolver({ net: network(dns.port, clock), clock, minTtlSec, log });
    live.push(resolver);
    return { resolver, clock, logs };
  };

  before(async () => {
    dns = await startDnsServer();
  });
  beforeEach(() => {
    h = harness();
  });
  after(async () => {
    for (const r of live) {
      await r.whenIdle();
      r.dispose();
    }
    await dns.close();
  });

  describe('origin_direct', () => {
    test('maps the edge port into each origin range and answers synchronously without DNS', () => {
      const a = app('d1', port(1000, 1010), { kind: 'direct', targets: [direct('192.0.2.1', port(3000, 3010)), direct('2001:db8::1', port(22))] });
      const before = dns.queries;
      const first = h.resolver.targetsSync(a, 1004);
      assert.deepEqual(first, [
        { host: '192.0.2.1', port: 3004, family: 'IPv4' },
        { host: '2001:db8::1', port: 22, family: 'IPv6' },
      ]);
      assert.equal(dns.queries, before);
      assert.equal(h.clock.pending, 0);
    });

    test('rotates the first address on every new connection', async () => {
      const a = app('d2', port(80), { kind: 'direct', targets: ['192.0.2.1', '192.0.2.2', '192.0.2.3'].map((ip) => direct(ip, port(8080))) });
      const firsts = [0, 1, 2, 3].map(() => h.resolver.targetsSync(a, 80)?.[0]?.host);
      assert.deepEqual(firsts, ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.1']);
      assert.deepEqual(hosts(await h.resolver.targets(a, 80)), ['192.0.2.2:8080', '192.0.2.3:8080', '192.0.2.1:8080']);
    });

    test('an edge port outside the app range is a caller bug and throws RangeError', async () => {
      const a = app('d3', port(80), { kind: 'direct', targets: [direct('192.0.2.1', port(8080))] });
      assert.throws(() => h.resolver.targetsSync(a, 81), RangeError);
      await assert.rejects(h.resolver.targets(a, 79), RangeError);
    });
  });

  describe('origin_dns types', () => {
    test('type A resolves IPv4 addresses, maps the edge port onto origin_port and rotates per call', async () => {
      dns.set('a.origin.test', 'A', ['192.0.2.1', '192.0.2.2'], 60);
      const a = app('n1', port(2000, 2009), dnsOrigin('a.origin.test', 'A', port(5000, 5009)));
      assert.equal(h.resolver.targetsSync(a, 2003), undefined, 'nothing cached yet');
      assert.deepEqual(await h.resolver.targets(a, 2003), [
        { host: '192.0.2.1', port: 5003, family: 'IPv4' },
        { host: '192.0.2.2', port: 5003, family: 'IPv4' },
      ]);
      assert.deepEqual(hosts(h.resolver.targetsSync(a, 2009)), ['192.0.2.2:5009', '192.0.2.1:5009']);
      assert.deepEqual(hosts(await h.resolver.targets(a, 2000)), ['192.0.2.1:5000', '192.0.2.2:5000']);
    });

    test('type AAAA resolves IPv6 addresses', async () => {
      dns.set('aaaa.origin.test', 'AAAA', ['2001:db8::10'], 60);
      const a = app('n2', port(443), dnsOrigin('aaaa.origin.test', 'AAAA', port(8443)));
      assert.deepEqual(await h.resolver.targets(a, 443), [{ host: '2001:db8::10', port: 8443, family: 'IPv6' }]);
    });

    test('type "" puts IPv4 before IPv6 and rotates within each family', async () => {
      dns.set('both.origin.test', 'A', ['192.0.2.1', '192.0.2.2'], 60);
      dns.set('both.origin.test', 'AAAA', ['2001:db8::1', '2001:db8::2'], 60);
      const a = app('n3', port(22), dnsOrigin('both.origin.test', '', port(2222)));
      assert.deepEqual(hosts(await h.resolver.targets(a, 22)), ['192.0.2.1:2222', '192.0.2.2:2222', '2001:db8::1:2222', '2001:db8::2:2222']);
      assert.deepEqual(hosts(h.resolver.targetsSync(a, 22)), ['192.0.2.2:2222', '192.0.2.1:2222', '2001:db8::2:2222', '2001:db8::1:2222']);
    });

    test('type "" works when the name has only one family', async () => {
      dns.set('v6only.origin.test', 'AAAA', ['2001:db8::5'], 60);
      const a = app('n4', port(22), dnsOrigin('v6only.origin.test', '', port(22)));
      assert.deepEqual(hosts(await h.resolver.targets(a, 22)), ['2001:db8::5:22']);
    });

    test('SRV takes the port from the record, adds the edge offset over a range and orders by priority', async () => {
      dns.set(
        '_app._tcp.srv.test',
        'SRV',
        [
          { target: 'backup.srv.test', port: 4000, priority: 20, weight: 1 },
          { target: 'main.srv.test', port: 3000, priority: 10, weight: 1 },
          { target: 'missing.srv.test', port: 3500, priority: 10, weight: 9 },
        ],
        60,
      );
      dns.set('main.srv.test', 'A', ['192.0.2.1'], 60);
      dns.set('backup.srv.test', 'A', ['192.0.2.2'], 60);
      dns.set('backup.srv.test', 'AAAA', ['2001:db8::2'], 60);
      const a = app('n5', port(1000, 1010), dnsOrigin('_app._tcp.srv.test', 'SRV', undefined));
      // missing.srv.test has no addresses (NXDOMAIN) and is skipped; the others answer.
      assert.deepEqual(await h.resolver.targets(a, 1004), [
        { host: '192.0.2.1', port: 3004, family: 'IPv4' },
        { host: '192.0.2.2', port: 4004, family: 'IPv4' },
        { host: '2001:db8::2', port: 4004, family: 'IPv6' },
      ]);
    });

    test('SRV ports pushed past 65535 by the edge offset are dropped, and none left is a resolve failure', async () => {
      dns.set('_hi._tcp.srv.test', 'SRV', [{ target: 'main.srv.test', port: 65530, priority: 0, weight: 0 }], 60);
      dns.set('main.srv.test', 'A', ['192.0.2.1'], 60);
      const a = app('n6', port(1000, 1010), dnsOrigin('_hi._tcp.srv.test', 'SRV', undefined));
      assert.deepEqual(hosts(await h.resolver.targets(a, 1005)), ['192.0.2.1:65535']);
      assert.equal(h.resolver.targetsSync(a, 1006), undefined);
      await rejectsWithResolveFailed(h.resolver.targets(a, 1006), 'EPORTRANGE');
    });
  });

  describe('failures', () => {
    test('NXDOMAIN rejects with E_UPSTREAM_RESOLVE_FAILED naming the name, type and ENOTFOUND, and logs a warning', async () => {
      const a = app('f1', port(80), dnsOrigin('nxdomain.origin.test', 'A', port(80)));
      await assert.rejects(h.resolver.targets(a, 80), (err: unknown) => {
        assert.ok(isRefractError(err));
        assert.equal(err.code, 'E_UPSTREAM_RESOLVE_FAILED');
        assert.deepEqual(err.details, { app: 'f1', name: 'nxdomain.origin.test', type: 'A', code: 'ENOTFOUND' });
        return true;
      });
      assert.ok(h.logs.some((l) => l['level'] === 40 && l['app'] === 'f1' && l['code'] === 'ENOTFOUND'));
    });

    test('a failure is remembered for the back-off, then the name is asked again', async () => {
      const a = app('f2', port(80), dnsOrigin('late.origin.test', 'A', port(80)));
      await rejectsWithResolveFailed(h.resolver.targets(a, 80), 'ENOTFOUND');
      const asked = dns.queries;
      dns.set('late.origin.test', 'A', ['192.0.2.44'], 60);
      await rejectsWithResolveFailed(h.resolver.targets(a, 80), 'ENOTFOUND');
      assert.equal(dns.queries, asked, 'no query during the back-off');
      h.clock.advance(1000); // back-off = min(5 s, floor of 1 s)
      assert.deepEqual(hosts(await h.resolver.targets(a, 80)), ['192.0.2.44:80']);
      assert.equal(dns.queries, asked + 1);
    });

    test('type "" fails as a whole when one family times out, even if the other answers', async () => {
      dns.set('half.origin.test', 'A', ['192.0.2.1'], 60);
      dns.misbehave('silent-aaaa.test', 'drop');
      const clock = createManualClock();
      const base = network(dns.port, clock);
      // Send the AAAA query to a name the server never answers: A succeeds, AAAA times out.
      const net: Network = { ...base, resolve: (name, type) => base.resolve(type === 'AAAA' ? 'silent-aaaa.test' : name, type) };
      const r = createOriginResolver({ net, clock, minTtlSec: 1, log: pino({ level: 'silent' }) });
      live.push(r);
      await rejectsWithResolveFailed(r.targets(app('f3', port(80), dnsOrigin('half.origin.test', '', port(80))), 80), 'ETIMEOUT');
    });
  });

  describe('cache and refresh', () => {
    test('a fresh answer is served synchronously with no further query', async () => {
      dns.set('cached.origin.test', 'A', ['192.0.2.1'], 60);
      const a = app('c1', port(80), dnsOrigin('cached.origin.test', 'A', port(80)));
      await h.resolver.targets(a, 80);
      const asked = dns.queries;
      h.clock.advance(59_000);
      for (let i = 0; i < 5; i++) assert.deepEqual(hosts(h.resolver.targetsSync(a, 80)), ['192.0.2.1:80']);
      assert.deepEqual(hosts(await h.resolver.targets(a, 80)), ['192.0.2.1:80']);
      assert.equal(dns.queries, asked);
    });

    test('when the TTL of an app in use expires, the name is resolved again and the new address is used', async () => {
      dns.set('moving.origin.test', 'A', ['192.0.2.1'], 2);
      const a = app('c2', port(80), dnsOrigin('moving.origin.test', 'A', port(80)));
      assert.deepEqual(hosts(await h.resolver.targets(a, 80)), ['192.0.2.1:80']);
      dns.set('moving.origin.test', 'A', ['192.0.2.9'], 2);
      const asked = dns.queries;
      h.clock.advance(1_999);
      assert.equal(dns.queries, asked, 'not before the TTL');
      h.clock.advance(1);
      await h.resolver.whenIdle();
      assert.equal(dns.queries, asked + 1);
      assert.deepEqual(hosts(h.resolver.targetsSync(a, 80)), ['192.0.2.9:80']);
      assert.ok(h.logs.some((l) => l['app'] === 'c2' && Array.isArray(l['after']) && (l['after'] as unknown[])[0] === '192.0.2.9'));
    });

    test('minTtlSec floors a shorter record TTL', async () => {
      const slow = harness(30);
      dns.set('short.origin.test', 'A', ['192.0.2.1'], 1);
      const a = app('c3', port(80), dnsOrigin('short.origin.test', 'A', port(80)));
      await slow.resolver.targets(a, 80);
      dns.set('short.origin.test', 'A', ['192.0.2.2'], 1);
      const asked = dns.queries;
      slow.clock.advance(29_999);
      await slow.resolver.whenIdle();
      assert.equal(dns.queries, asked);
      assert.deepEqual(hosts(slow.resolver.targetsSync(a, 80)), ['192.0.2.1:80']);
      slow.clock.advance(1);
      await slow.resolver.whenIdle();
      assert.equal(dns.queries, asked + 1);
      assert.deepEqual(hosts(slow.resolver.targetsSync(a, 80)), ['192.0.2.2:80']);
    });

    test('origin_dns.ttl overrides the record TTL', async () => {
      dns.set('ttl.origin.test', 'A', ['192.0.2.1'], 3600);
      const a = app('c4', port(80), dnsOrigin('ttl.origin.test', 'A', port(80), 5));
      await h.resolver.targets(a, 80);
      const asked = dns.queries;
      h.clock.advance(5_000);
      await h.resolver.whenIdle();
      assert.equal(dns.queries, asked + 1);
    });

    test('a failed refresh keeps serving the old answer for one more TTL with a warning, then fails', async () => {
      dns.set('flaky.origin.test', 'A', ['192.0.2.1'], 10);
      const a = app('c5', port(80), dnsOrigin('flaky.origin.test', 'A', port(80)));
      await h.resolver.targets(a, 80);
      dns.misbehave('flaky.origin.test', 'servfail');
      h.clock.advance(10_000); // expiry: background refresh, which fails
      await h.resolver.whenIdle();
      assert.ok(h.logs.some((l) => l['level'] === 40 && l['app'] === 'c5' && l['code'] === 'ESERVFAIL'));
      h.clock.advance(9_999);
      assert.deepEqual(hosts(h.resolver.targetsSync(a, 80)), ['192.0.2.1:80'], 'stale answer still served');
      assert.deepEqual(hosts(await h.resolver.targets(a, 80)), ['192.0.2.1:80']);
      await h.resolver.whenIdle(); // the retry a stale hit starts after the back-off
      h.clock.advance(1);
      assert.equal(h.resolver.targetsSync(a, 80), undefined);
      await rejectsWithResolveFailed(h.resolver.targets(a, 80), 'ESERVFAIL');
    });

    test('a refresh that succeeds after a failure replaces the stale answer', async () => {
      dns.set('recovering.origin.test', 'A', ['192.0.2.1'], 10);
      const a = app('c6', port(80), dnsOrigin('recovering.origin.test', 'A', port(80)));
      await h.resolver.targets(a, 80);
      dns.misbehave('recovering.origin.test', 'servfail');
      h.clock.advance(10_000);
      await h.resolver.whenIdle();
      dns.set('recovering.origin.test', 'A', ['192.0.2.2'], 10);
      h.clock.advance(1_000); // past the back-off: the next stale hit starts a refresh and is served the old answer
      assert.deepEqual(hosts(h.resolver.targetsSync(a, 80)), ['192.0.2.1:80']);
      await h.resolver.whenIdle();
      assert.deepEqual(hosts(h.resolver.targetsSync(a, 80)), ['192.0.2.2:80']);
    });

    test('an app not asked for during its TTL arms no timer, and its next call serves the old answer while refreshing', async () => {
      dns.set('idle.origin.test', 'A', ['192.0.2.1'], 10);
      const a = app('c7', port(80), dnsOrigin('idle.origin.test', 'A', port(80)));
      await h.resolver.targets(a, 80);
      h.clock.advance(10_000); // in use during the first TTL: refreshed
      await h.resolver.whenIdle();
      const asked = dns.queries;
      h.clock.advance(10_000); // not asked during the second: no refresh, no timer
      await h.resolver.whenIdle();
      assert.equal(dns.queries, asked);
      assert.equal(h.clock.pending, 0);
      dns.set('idle.origin.test', 'A', ['192.0.2.3'], 10);
      assert.deepEqual(hosts(h.resolver.targetsSync(a, 80)), ['192.0.2.1:80']);
      await h.resolver.whenIdle();
      assert.equal(dns.queries, asked + 1);
      assert.deepEqual(hosts(h.resolver.targetsSync(a, 80)), ['192.0.2.3:80']);
    });

    test('an answer idle past one more TTL is not served: the caller waits for a new lookup', async () => {
      dns.set('old.origin.test', 'A', ['192.0.2.1'], 10);
      const a = app('c8', port(80), dnsOrigin('old.origin.test', 'A', port(80)));
      await h.resolver.targets(a, 80);
      h.clock.advance(10_000);
      await h.resolver.whenIdle(); // refreshed at 10 s, unused since
      dns.set('old.origin.test', 'A', ['192.0.2.4'], 10);
      h.clock.advance(20_000);
      assert.equal(h.resolver.targetsSync(a, 80), undefined);
      assert.deepEqual(hosts(await h.resolver.targets(a, 80)), ['192.0.2.4:80']);
    });

    test('concurrent callers share one lookup', async () => {
      dns.set('busy.origin.test', 'A', ['192.0.2.1', '192.0.2.2'], 60);
      const a = app('c9', port(80), dnsOrigin('busy.origin.test', 'A', port(80)));
      const asked = dns.queries;
      const all = await Promise.all(Array.from({ length: 10 }, () => h.resolver.targets(a, 80)));
      assert.equal(dns.queries, asked + 1);
      // Each caller still got its own rotation.
      assert.deepEqual(
        all.map((t) => t[0]?.host),
        ['192.0.2.1', '192.0.2.2', '192.0.2.1', '192.0.2.2', '192.0.2.1', '192.0.2.2', '192.0.2.1', '192.0.2.2', '192.0.2.1', '192.0.2.2'],
      );
    });

    test('a reload that renames the origin resolves the new name, not the cached one', async () => {
      dns.set('first.origin.test', 'A', ['192.0.2.1'], 60);
      dns.set('second.origin.test', 'A', ['192.0.2.2'], 60);
      await h.resolver.targets(app('c10', port(80), dnsOrigin('first.origin.test', 'A', port(80))), 80);
      const renamed = app('c10', port(80), dnsOrigin('second.origin.test', 'A', port(80)));
      assert.equal(h.resolver.targetsSync(renamed, 80), undefined);
      assert.deepEqual(hosts(await h.resolver.targets(renamed, 80)), ['192.0.2.2:80']);
      assert.equal(h.clock.pending, 1, 'the old entry timer was cancelled');
    });
  });

  describe('lifecycle', () => {
    test('retain drops the entries of removed apps and cancels their timers', async () => {
      dns.set('keep.origin.test', 'A', ['192.0.2.1'], 60);
      dns.set('drop.origin.test', 'A', ['192.0.2.2'], 60);
      const keep = app('l1', port(80), dnsOrigin('keep.origin.test', 'A', port(80)));
      const drop = app('l2', port(80), dnsOrigin('drop.origin.test', 'A', port(80)));
      await h.resolver.targets(keep, 80);
      await h.resolver.targets(drop, 80);
      assert.equal(h.clock.pending, 2);
      h.resolver.retain(new Set(['l1']));
      assert.equal(h.clock.pending, 1);
      assert.ok(h.resolver.targetsSync(keep, 80));
      assert.equal(h.resolver.targetsSync(drop, 80), undefined, 'dropped: a new lookup is needed');
    });

    test('an entry removed while its lookup is in flight arms no timer when the answer arrives', async () => {
      dns.set('racing.origin.test', 'A', ['192.0.2.1'], 60);
      const a = app('l3', port(80), dnsOrigin('racing.origin.test', 'A', port(80)));
      const pending = h.resolver.targets(a, 80);
      h.resolver.retain(new Set());
      assert.deepEqual(hosts(await pending), ['192.0.2.1:80']);
      assert.equal(h.clock.pending, 0);
    });

    test('dispose leaves no timers, and later answers arm none', async () => {
      dns.set('d.origin.test', 'A', ['192.0.2.1'], 60);
      dns.set('e.origin.test', 'A', ['192.0.2.2'], 60);
      await h.resolver.targets(app('l4', port(80), dnsOrigin('d.origin.test', 'A', port(80))), 80);
      const late = h.resolver.targets(app('l5', port(80), dnsOrigin('e.origin.test', 'A', port(80))), 80);
      h.resolver.dispose();
      await late;
      await h.resolver.whenIdle();
      assert.equal(h.clock.pending, 0);
    });
  });
});
