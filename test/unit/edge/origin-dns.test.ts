/**
 * origin_dns end to end on loopback: Refract resolves the origin with a DNS server the test runs, follows TTL
 * expiry to a new address, and reports 531 when the name does not resolve. Edge ports 7550-7569.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEdge, startOrigin, exchange, delay } from '../../helpers/edge.ts';
import { startDnsServer } from '../../helpers/dns-server.ts';

test('origin_dns: connections follow the A record, and a changed record is used after its TTL', async () => {
  const dns = await startDnsServer();
  // Two origins on the same port, different loopback addresses.
  const first = await startOrigin({ host: '127.0.0.21', port: 7560, mode: 'banner', banner: 'first' });
  const second = await startOrigin({ host: '127.0.0.22', port: 7560, mode: 'banner', banner: 'second' });
  dns.set('origin.example.test', 'A', ['127.0.0.21'], 1);
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'], dns: { servers: [`127.0.0.1:${dns.port}`], min_ttl_sec: 1 } },
    apps: [{ protocol: 'tcp/7550', dns: { type: 'CNAME', name: 'dns.example.test' }, origin_dns: { name: 'origin.example.test', ttl: 1, type: 'A' }, origin_port: 7560 }],
  });
  try {
    assert.equal((await exchange(7550, undefined)).data.toString(), 'first');
    dns.set('origin.example.test', 'A', ['127.0.0.22'], 1);
    assert.equal((await exchange(7550, undefined)).data.toString(), 'first', 'cached until the TTL expires');
    // After the TTL the background refresh picks up the new address (stale-while-revalidate: allow one more).
    let got = '';
    for (let i = 0; i < 30 && got !== 'second'; i++) {
      await delay(200);
      got = (await exchange(7550, undefined)).data.toString();
    }
    assert.equal(got, 'second');
    const last = e.events.filter((x) => x.Event === 'disconnect').at(-1)!;
    assert.equal(last.OriginIP, '127.0.0.22');
  } finally {
    await e.close();
    await first.close();
    await second.close();
    await dns.close();
  }
});

test('origin_dns: a name that does not resolve gives resolveOrigin 531 and no origin connection', async () => {
  const dns = await startDnsServer();
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'], dns: { servers: [`127.0.0.1:${dns.port}`], min_ttl_sec: 1 } },
    apps: [{ protocol: 'tcp/7551', dns: { type: 'CNAME', name: 'nx.example.test' }, origin_dns: { name: 'missing.example.test', ttl: 1 }, origin_port: 7561 }],
  });
  try {
    const r = await exchange(7551, 'hello', { end: false });
    assert.equal(r.data.length, 0);
    const ev = await e.closing();
    assert.equal(ev.Event, 'resolveOrigin');
    assert.equal(ev.Status, 531);
    assert.equal(ev.ErrorCode, 'E_UPSTREAM_RESOLVE_FAILED');
    assert.equal(e.edge.tcp.stats.upstream_cx_total, 0);
  } finally {
    await e.close();
    await dns.close();
  }
});
