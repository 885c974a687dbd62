import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { decode, encode } from 'dns-packet';
import { createNodeResolver, parseDnsServer } from '../../../src/net/node/resolver.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

/** A UDP port that nobody listens on: bound once, then released. */
async function closedUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A hand-driven server: `reply` decides what to send back for each query (several datagrams allowed). */
async function startScriptedServer(reply: (query: ReturnType<typeof decode>) => Buffer[]): Promise<{ port: number; socket: Socket }> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    for (const out of reply(decode(msg))) socket.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, socket };
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, code);
    return true;
  });
}

describe('node resolver over configured servers', () => {
  let dns: TestDnsServer;
  let resolve: ReturnType<typeof createNodeResolver>;

  before(async () => {
    dns = await startDnsServer();
    resolve = createNodeResolver({ servers: [`127.0.0.1:${dns.port}`], timeoutMs: 300, tries: 1 });
  });
  after(async () => {
    await dns.close();
  });

  test('an A query returns IPv4 addresses with the record TTL', async () => {
    dns.set('web.test', 'A', ['192.0.2.1', '192.0.2.2'], 120);
    const answer = await resolve('web.test', 'A');
    assert.deepEqual(answer, {
      records: [
        { address: '192.0.2.1', family: 'IPv4' },
        { address: '192.0.2.2', family: 'IPv4' },
      ],
      ttlSec: 120,
    });
  });

  test('an AAAA query returns IPv6 addresses, and a trailing dot or other case names the same record', async () => {
    dns.set('v6.test', 'AAAA', ['2001:db8::1'], 60);
    assert.deepEqual(await resolve('V6.Test.', 'AAAA'), { records: [{ address: '2001:db8::1', family: 'IPv6' }], ttlSec: 60 });
  });

  test('SRV answers carry target, port, priority and weight, sorted by priority then weight descending', async () => {
    dns.set(
      '_game._udp.srv.test',
      'SRV',
      [
        { target: 'c.srv.test', port: 3002, priority: 20, weight: 1 },
        { target: 'a.srv.test', port: 3000, priority: 10, weight: 1 },
        { target: 'b.srv.test', port: 3001, priority: 10, weight: 50 },
      ],
      45,
    );
    const answer = await resolve('_game._udp.srv.test', 'SRV');
    assert.deepEqual(answer, {
      records: [
        { address: 'b.srv.test', port: 3001, priority: 10, weight: 50 },
        { address: 'a.srv.test', port: 3000, priority: 10, weight: 1 },
        { address: 'c.srv.test', port: 3002, priority: 20, weight: 1 },
      ],
      ttlSec: 45,
    });
  });

  test('a CNAME chain is followed and the smallest TTL on it bounds the answer', async () => {
    dns.set('alias.test', 'CNAME', ['real.test'], 30);
    dns.set('real.test', 'A', ['192.0.2.7'], 300);
    assert.deepEqual(await resolve('alias.test', 'A'), { records: [{ address: '192.0.2.7', family: 'IPv4' }], ttlSec: 30 });
  });

  test('an unknown name rejects with ENOTFOUND', async () => {
    await rejectsWithCode(resolve('nowhere.test', 'A'), 'ENOTFOUND');
  });

  test('a known name without records of the asked type rejects with ENODATA', async () => {
    dns.set('only-v4.test', 'A', ['192.0.2.3'], 60);
    await rejectsWithCode(resolve('only-v4.test', 'AAAA'), 'ENODATA');
  });

  test('SERVFAIL from the only server rejects with ESERVFAIL', async () => {
    dns.misbehave('broken.test', 'servfail');
    await rejectsWithCode(resolve('broken.test', 'A'), 'ESERVFAIL');
  });

  test('a truncated answer rejects with EBADRESP, as there is no TCP fallback', async () => {
    dns.misbehave('big.test', 'truncate');
    await rejectsWithCode(resolve('big.test', 'A'), 'EBADRESP');
  });

  test('a server that never answers rejects with ETIMEOUT after the timeout', async () => {
    dns.misbehave('silent.test', 'drop');
    const before = dns.queries;
    await rejectsWithCode(resolve('silent.test', 'A'), 'ETIMEOUT');
    assert.equal(dns.queries - before, 1);
  });

  test('tries sets how many times each server is asked', async () => {
    dns.misbehave('silent2.test', 'drop');
    const twice = createNodeResolver({ servers: [`127.0.0.1:${dns.port}`], timeoutMs: 100, tries: 2 });
    const before = dns.queries;
    await rejectsWithCode(twice('silent2.test', 'A'), 'ETIMEOUT');
    assert.equal(dns.queries - before, 2);
  });
});

describe('node resolver with several servers', () => {
  test('a silent or closed server is skipped and the next one answers', async () => {
    const silent = await startDnsServer();
    const good = await startDnsServer();
    try {
      silent.misbehave('svc.test', 'drop');
      good.set('svc.test', 'A', ['192.0.2.10'], 60);
      const closed = await closedUdpPort();
      const resolve = createNodeResolver({
        servers: [`127.0.0.1:${closed}`, `127.0.0.1:${silent.port}`, `127.0.0.1:${good.port}`],
        timeoutMs: 200,
        tries: 1,
      });
      assert.deepEqual((await resolve('svc.test', 'A')).records, [{ address: '192.0.2.10', family: 'IPv4' }]);
      assert.equal(silent.queries, 1);
      assert.equal(good.queries, 1);
    } finally {
      await silent.close();
      await good.close();
    }
  });

  test('only closed servers reject with ECONNREFUSED; SERVFAIL outranks a refusal', async () => {
    const closed = await closedUdpPort();
    await rejectsWithCode(createNodeResolver({ servers: [`127.0.0.1:${closed}`], timeoutMs: 500, tries: 1 })('x.test', 'A'), 'ECONNREFUSED');

    const failing = await startDnsServer();
    try {
      failing.misbehave('x.test', 'servfail');
      const resolve = createNodeResolver({ servers: [`127.0.0.1:${failing.port}`, `127.0.0.1:${closed}`], timeoutMs: 500, tries: 1 });
      await rejectsWithCode(resolve('x.test', 'A'), 'ESERVFAIL');
    } finally {
      await failing.close();
    }
  });

  test('NXDOMAIN from the first server is final: the next server is not asked', async () => {
    const first = await startDnsServer();
    const second = await startDnsServer();
    try {
      second.set('gone.test', 'A', ['192.0.2.11'], 60);
      const resolve = createNodeResolver({ servers: [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`], timeoutMs: 300 });
      await rejectsWithCode(resolve('gone.test', 'A'), 'ENOTFOUND');
      assert.equal(second.queries, 0);
    } finally {
      await first.close();
      await second.close();
    }
  });
});

describe('node resolver against a scripted server', () => {
  test('responses with a wrong id or a different question are ignored until the matching one arrives', async () => {
    const answerFor = (q: ReturnType<typeof decode>, id: number, name: string, address: string): Buffer =>
      encode({
        type: 'response',
        id,
        flags: 0,
        questions: [{ type: 'A', name }],
        answers: [{ type: 'A', name, ttl: 60, data: address }],
      });
    const server = await startScriptedServer((q) => {
      const id = q.id ?? 0;
      const name = q.questions?.[0]?.name ?? '';
      return [
        answerFor(q, (id + 1) & 0xffff, name, '198.51.100.66'), // spoofed id
        answerFor(q, id, 'other.test', '198.51.100.67'), // wrong question
        Buffer.from('not dns at all'),
        answerFor(q, id, name, '192.0.2.20'),
      ];
    });
    try {
      const resolve = createNodeResolver({ servers: [`127.0.0.1:${server.port}`], timeoutMs: 500, tries: 1 });
      assert.deepEqual((await resolve('match.test', 'A')).records, [{ address: '192.0.2.20', family: 'IPv4' }]);
    } finally {
      await new Promise<void>((resolve) => server.socket.close(() => resolve()));
    }
  });

  test('a server that answers FORMERR to EDNS is asked again without the OPT record', async () => {
    let withOpt = 0;
    let withoutOpt = 0;
    const server = await startScriptedServer((q) => {
      const hasOpt = (q.additionals ?? []).some((a) => a.type === 'OPT');
      if (hasOpt) withOpt++;
      else withoutOpt++;
      const name = q.questions?.[0]?.name ?? '';
      return [
        encode({
          type: 'response',
          id: q.id ?? 0,
          flags: hasOpt ? 1 : 0, // rcode FORMERR
          questions: [{ type: 'A', name }],
          answers: hasOpt ? [] : [{ type: 'A', name, ttl: 60, data: '192.0.2.30' }],
        }),
      ];
    });
    try {
      const resolve = createNodeResolver({ servers: [`127.0.0.1:${server.port}`], timeoutMs: 500, tries: 1 });
      assert.deepEqual((await resolve('old.test', 'A')).records, [{ address: '192.0.2.30', family: 'IPv4' }]);
      assert.deepEqual([withOpt, withoutOpt], [1, 1]);
    } finally {
      await new Promise<void>((resolve) => server.socket.close(() => resolve()));
    }
  });
});

describe('DNS server strings', () => {
  test('IPv4, IPv4:port, bare IPv6 and [IPv6]:port parse, with port 53 by default', () => {
    assert.deepEqual(parseDnsServer('10.0.0.1'), { host: '10.0.0.1', port: 53, family: 'IPv4' });
    assert.deepEqual(parseDnsServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353, family: 'IPv4' });
    assert.deepEqual(parseDnsServer('::1'), { host: '::1', port: 53, family: 'IPv6' });
    assert.deepEqual(parseDnsServer('[::1]:53'), { host: '::1', port: 53, family: 'IPv6' });
    assert.deepEqual(parseDnsServer('[2001:db8::53]'), { host: '2001:db8::53', port: 53, family: 'IPv6' });
  });

  test('host names, empty or out-of-range ports and bracketed IPv4 are refused with E_CONFIG_SCHEMA', () => {
    for (const bad of ['dns.example', 'dns.example:53', '10.0.0.1:', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.1:5x', '[10.0.0.1]:53', '[::1]:', '']) {
      assert.throws(() => parseDnsServer(bad), { code: 'E_CONFIG_SCHEMA' }, bad);
    }
    assert.throws(() => createNodeResolver({ servers: ['resolver.local'] }), { code: 'E_CONFIG_SCHEMA' });
  });
});

test('no UDP socket stays open once every lookup and server is done', async () => {
  // A closed dgram handle leaves the active list a loop turn or two after its close callback: poll, bounded.
  const open = (): string[] => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap');
  for (let i = 0; i < 50 && open().length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(open(), []);
});
