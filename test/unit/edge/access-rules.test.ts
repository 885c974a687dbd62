/**
 * IP Access rules enforced on real loopback sockets: decided right after accept (or after an inbound PROXY header,
 * on the client it names), before any upstream work; country/ASN from geolocation data. Edge ports 7570-7589.
 */
import { test, after } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGeo } from '../../../src/net/node/geo-loader.ts';
import { mmdb } from '../../helpers/mmdb.ts';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { startEdge, startOrigin, delay } from '../../helpers/edge.ts';
import type { GeoLookup } from '../../../src/core/geo.ts';

/**
 * Test geolocation, from MMDB files generated here (GeoLite2-Country / GeoLite2-ASN layout) and read through the
 * real loader: 127.0.0.2-3 are "FR" (AS 64500 and 64501), the rest of 127.0.0.0/8 is "US" AS 64510.
 */
const geoDir = mkdtempSync(join(tmpdir(), 'refract-fw-'));
after(() => rmSync(geoDir, { recursive: true, force: true }));
writeFileSync(join(geoDir, 'country.mmdb'), mmdb(4, [
  ['127.0.0.0/8', { country: { iso_code: 'US' } }],
  ['127.0.0.2/31', { country: { iso_code: 'FR' } }],
]));
writeFileSync(join(geoDir, 'asn.mmdb'), mmdb(4, [
  ['127.0.0.0/8', { autonomous_system_number: 64510, autonomous_system_organization: 'Test US' }],
  ['127.0.0.2/32', { autonomous_system_number: 64500, autonomous_system_organization: 'Test FR 1' }],
  ['127.0.0.3/32', { autonomous_system_number: 64501, autonomous_system_organization: 'Test FR 2' }],
]));
const loaded = await loadGeo({ country: [join(geoDir, 'country.mmdb')], asn: [join(geoDir, 'asn.mmdb')] }, { watch: false });
after(() => loaded.close());
const geo: GeoLookup = loaded;

async function from(port: number, localAddress: string): Promise<{ data: string; closed: boolean }> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress });
  const chunks: Buffer[] = [];
  s.on('data', (d) => chunks.push(d));
  s.on('error', () => {});
  s.on('connect', () => s.end('hello'));
  await new Promise<void>((r) => s.once('close', () => r()));
  return { data: Buffer.concat(chunks).toString(), closed: true };
}

test('a country block with an ASN allow exception: blocked clients never reach the origin, events say why', async () => {
  const o = await startOrigin();
  const e = await startEdge(
    {
      edge: { addresses: ['127.0.0.1'] },
      access_rules: [
        { mode: 'block', configuration: { target: 'country', value: 'FR' } },
        { mode: 'allow', configuration: { target: 'asn', value: 'AS64501' } },
        { mode: 'block', configuration: { target: 'ip', value: '127.0.0.9' } },
      ],
      apps: [
        { protocol: 'tcp/7570', dns: { name: 'fw.example.test' }, origin_direct: [`tcp://127.0.0.1:${o.port}`], ip_firewall: true },
        { protocol: 'tcp/7571', dns: { name: 'open.example.test' }, origin_direct: [`tcp://127.0.0.1:${o.port}`], ip_firewall: false },
      ],
    },
    { geo },
  );
  try {
    assert.equal((await from(7570, '127.0.0.2')).data, '', 'FR, AS64500: blocked by country');
    assert.equal((await from(7570, '127.0.0.3')).data, 'hello', 'FR but AS64501: the ASN allow is more specific');
    assert.equal((await from(7570, '127.0.0.9')).data, '', 'blocked by IP');
    assert.equal((await from(7570, '127.0.0.4')).data, 'hello', 'US: no rule matches');
    assert.equal((await from(7571, '127.0.0.2')).data, 'hello', 'ip_firewall off: rules do not apply');
    await e.closing(5);
    const closes = e.events.filter((x) => x.Event !== 'connect');
    const byClient = (ip: string, port: number) => closes.find((x) => x.ClientIP === ip && x.EdgePort === port)!;
    assert.deepEqual([byClient('127.0.0.2', 7570).Event, byClient('127.0.0.2', 7570).Status, byClient('127.0.0.2', 7570).ClientMatchedIpFirewall], ['clientFiltered', 403, 'BLOCK_COUNTRY']);
    assert.equal(byClient('127.0.0.2', 7570).ErrorCode, 'E_RULE_BLOCKED');
    assert.deepEqual([byClient('127.0.0.3', 7570).Status, byClient('127.0.0.3', 7570).ClientMatchedIpFirewall], [200, 'WHITELIST_ASN']);
    assert.equal(byClient('127.0.0.9', 7570).ClientMatchedIpFirewall, 'BLOCK_IP');
    assert.equal(byClient('127.0.0.4', 7570).ClientMatchedIpFirewall, 'UNKNOWN');
    assert.equal(byClient('127.0.0.2', 7570).ClientCountry, 'FR');
    assert.equal(byClient('127.0.0.2', 7570).ClientAsn, 64500);
    assert.equal(o.received.length, 3, 'only allowed connections reached the origin');
    assert.equal(e.edge.tcp.stats.downstream_cx_ip_blocked, 2);
  } finally {
    await e.close();
    await o.close();
  }
});

test('behind a trusted load balancer, rules apply to the client in the PROXY header, not to the balancer', async () => {
  const o = await startOrigin({ mode: 'sink' });
  const e = await startEdge(
    {
      edge: { addresses: ['127.0.0.1'], accept_proxy: { trusted: ['127.0.0.7/32'], timeout_ms: 1000 } },
      access_rules: [{ mode: 'block', configuration: { target: 'ip_range', value: '203.0.113.0/24' } }],
      apps: [{ protocol: 'tcp/7572', dns: { name: 'lb.example.test' }, origin_direct: [`tcp://127.0.0.1:${o.port}`], ip_firewall: true }],
    },
    { geo },
  );
  try {
    for (const client of ['203.0.113.9', '198.51.100.9']) {
      const lb = net.connect({ port: 7572, host: '127.0.0.1', localAddress: '127.0.0.7' });
      lb.on('error', () => {});
      await once(lb, 'connect');
      lb.end(`PROXY TCP4 ${client} 192.0.2.1 4242 25\r\nbody`);
      await new Promise<void>((r) => lb.once('close', () => r()));
    }
    await e.closing(2);
    const closes = e.events.filter((x) => x.Event !== 'connect');
    assert.deepEqual(closes.map((x) => [x.ClientIP, x.Status]).sort(), [['198.51.100.9', 200], ['203.0.113.9', 403]]);
    assert.equal(o.received.length, 1);
  } finally {
    await e.close();
    await o.close();
  }
});

test('a rule change applies to new connections at once and leaves established ones alone', async () => {
  const o = await startOrigin();
  const cfg = (rules: unknown[]) => ({
    edge: { addresses: ['127.0.0.1'] },
    access_rules: rules,
    apps: [{ protocol: 'tcp/7573', dns: { name: 'chg.example.test' }, origin_direct: [`tcp://127.0.0.1:${o.port}`], ip_firewall: true }],
  });
  const e = await startEdge(cfg([]), { geo });
  try {
    const s = net.connect({ port: 7573, host: '127.0.0.1', localAddress: '127.0.0.5' });
    await once(s, 'connect');
    s.write('a');
    await once(s, 'data');
    const { mustConfig } = await import('../../helpers/edge.ts');
    await e.edge.apply(mustConfig(cfg([{ mode: 'block', configuration: { target: 'ip', value: '127.0.0.5' } }])));
    assert.equal((await from(7573, '127.0.0.5')).data, '', 'new connection from the now-blocked address');
    s.write('b');
    const [d] = (await once(s, 'data')) as [Buffer];
    assert.equal(d.toString(), 'b', 'the established connection keeps working');
    s.end();
    await once(s, 'close');
  } finally {
    await e.close();
    await o.close();
  }
});

test('udp: datagrams from a blocked range are dropped before any flow or upstream socket exists', async () => {
  const origin = dgram.createSocket('udp4');
  let got = 0;
  origin.on('message', (m, r) => {
    got++;
    origin.send(m, r.port, r.address);
  });
  origin.bind(0, '127.0.0.1');
  await once(origin, 'listening');
  const e = await startEdge(
    {
      edge: { addresses: ['127.0.0.1'] },
      access_rules: [{ mode: 'block', configuration: { target: 'ip', value: '127.0.0.2' } }],
      apps: [{ protocol: 'udp/7574', dns: { name: 'udpfw.example.test' }, origin_direct: [`udp://127.0.0.1:${origin.address().port}`], ip_firewall: true }],
    },
    { geo },
  );
  const blocked = dgram.createSocket('udp4');
  const allowed = dgram.createSocket('udp4');
  try {
    blocked.bind(0, '127.0.0.2');
    allowed.bind(0, '127.0.0.4');
    await Promise.all([once(blocked, 'listening'), once(allowed, 'listening')]);
    for (let i = 0; i < 20; i++) blocked.send('flood', 7574, '127.0.0.1');
    allowed.send('ok', 7574, '127.0.0.1');
    const [reply] = (await once(allowed, 'message')) as [Buffer];
    assert.equal(reply.toString(), 'ok');
    await delay(100);
    assert.equal(got, 1);
    assert.equal(e.edge.udp.stats.udp_dgrams_ip_blocked, 20);
    assert.equal(e.edge.udp.activeCount, 1);
  } finally {
    blocked.close();
    allowed.close();
    await e.close();
    origin.close();
  }
});

test('with edge.close_blocked_connections, a new block rule also closes the open connections it matches (403)', async () => {
  const o = await startOrigin();
  const cfg = (rules: unknown[]) => ({
    edge: { addresses: ['127.0.0.1'], close_blocked_connections: true },
    access_rules: rules,
    apps: [{ protocol: 'tcp/7575', dns: { name: 'close.example.test' }, origin_direct: [`tcp://127.0.0.1:${o.port}`], ip_firewall: true }],
  });
  const e = await startEdge(cfg([]), { geo });
  try {
    const open = async (localAddress: string) => {
      const s = net.connect({ port: 7575, host: '127.0.0.1', localAddress });
      s.on('error', () => {});
      await once(s, 'connect');
      s.write('x');
      await once(s, 'data');
      return s;
    };
    const doomed = await open('127.0.0.2');
    const spared = await open('127.0.0.4');
    const { mustConfig } = await import('../../helpers/edge.ts');
    await e.edge.apply(mustConfig(cfg([{ mode: 'block', configuration: { target: 'country', value: 'FR' } }])));
    await new Promise<void>((r) => doomed.once('close', () => r()));
    const ev = await e.closing();
    assert.deepEqual([ev.ClientIP, ev.Status, ev.Event, ev.ClientMatchedIpFirewall], ['127.0.0.2', 403, 'clientFiltered', 'BLOCK_COUNTRY']);
    spared.write('y');
    const [d] = (await once(spared, 'data')) as [Buffer];
    assert.equal(d.toString(), 'y', 'a connection no rule blocks keeps working');
    spared.end();
    await once(spared, 'close');
  } finally {
    await e.close();
    await o.close();
  }
});

test('with edge.close_blocked_connections, a new block rule also closes the open UDP flows it matches (403), and the client stays blocked', async () => {
  const origin = dgram.createSocket('udp4');
  origin.on('message', (m, r) => origin.send(m, r.port, r.address));
  origin.bind(0, '127.0.0.1');
  await once(origin, 'listening');
  const cfg = (rules: unknown[]) => ({
    edge: { addresses: ['127.0.0.1'], close_blocked_connections: true },
    access_rules: rules,
    apps: [{ protocol: 'udp/7576', dns: { name: 'udpclose.example.test' }, origin_direct: [`udp://127.0.0.1:${origin.address().port}`], ip_firewall: true }],
  });
  const e = await startEdge(cfg([]), { geo });
  const doomed = dgram.createSocket('udp4');
  const spared = dgram.createSocket('udp4');
  const echo = async (s: dgram.Socket, text: string): Promise<string> => {
    const reply = once(s, 'message');
    s.send(text, 7576, '127.0.0.1');
    const [m] = (await Promise.race([reply, delay(3_000).then(() => [Buffer.from('(no reply)')])])) as [Buffer];
    return m.toString();
  };
  try {
    doomed.bind(0, '127.0.0.2'); // FR in the test geo data
    spared.bind(0, '127.0.0.4');
    await Promise.all([once(doomed, 'listening'), once(spared, 'listening')]);
    assert.equal(await echo(doomed, 'd1'), 'd1');
    assert.equal(await echo(spared, 's1'), 's1');
    assert.equal(e.edge.udp.activeCount, 2);

    const { mustConfig } = await import('../../helpers/edge.ts');
    await e.edge.apply(mustConfig(cfg([{ mode: 'block', configuration: { target: 'country', value: 'FR' } }])));
    const ev = await e.closing();
    assert.deepEqual(
      [ev.ClientIP, ev.ClientProto, ev.Status, ev.Event, ev.CloseReason, ev.ErrorCode, ev.ClientMatchedIpFirewall],
      ['127.0.0.2', 'udp', 403, 'clientFiltered', 'ip_firewall', 'E_RULE_BLOCKED', 'BLOCK_COUNTRY'],
    );
    assert.equal(e.edge.udp.activeCount, 1, 'only the blocked flow closed');

    assert.equal(await echo(spared, 's2'), 's2', 'a flow no rule blocks keeps working');
    const blockedBefore = e.edge.udp.stats.udp_dgrams_ip_blocked;
    const silence = await Promise.race([once(doomed, 'message').then(() => 'reply'), (doomed.send('d2', 7576, '127.0.0.1'), delay(300).then(() => 'silence'))]);
    assert.equal(silence, 'silence', 'the blocked client gets no new flow');
    assert.equal(e.edge.udp.stats.udp_dgrams_ip_blocked, blockedBefore + 1);
  } finally {
    doomed.close();
    spared.close();
    await e.close();
    origin.close();
  }
});

test("a zone's rules apply only to that zone's ip_firewall apps; node-wide rules to every zone (TCP and UDP)", async () => {
  const ports = await Promise.all([0, 1, 2].map(async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const p = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    return p;
  }));
  const [pa, pb, pu] = ports as [number, number, number];
  const o = await startOrigin();
  const udpOrigin = dgram.createSocket('udp4');
  udpOrigin.on('message', (m, rinfo) => udpOrigin.send(m, rinfo.port, rinfo.address));
  udpOrigin.bind(0, '127.0.0.1');
  await once(udpOrigin, 'listening');
  const e = await startEdge(
    {
      edge: { addresses: ['127.0.0.1'] },
      zones: [{ name: 'a.example.test' }, { name: 'b.example.test' }],
      access_rules: [
        { mode: 'block', configuration: { target: 'ip', value: '127.0.0.2' }, zone: 'a.example.test' },
        { mode: 'block', configuration: { target: 'ip', value: '127.0.0.3' } },
        { mode: 'allow', configuration: { target: 'ip', value: '127.0.0.3' }, zone: 'b.example.test' },
      ],
      apps: [
        { protocol: `tcp/${pa}`, dns: { name: 'ssh.a.example.test' }, origin_direct: [`tcp://127.0.0.1:${o.port}`], ip_firewall: true },
        { protocol: `tcp/${pb}`, dns: { name: 'ssh.b.example.test' }, origin_direct: [`tcp://127.0.0.1:${o.port}`], ip_firewall: true },
        { protocol: `udp/${pu}`, dns: { name: 'dns.b.example.test' }, origin_direct: [`udp://127.0.0.1:${udpOrigin.address().port}`], ip_firewall: true, zone: 'a.example.test' },
      ],
    },
    { geo },
  );
  const client = dgram.createSocket('udp4');
  try {
    assert.equal((await from(pa, '127.0.0.2')).data, '', "zone a's block rule: blocked in zone a");
    assert.equal((await from(pb, '127.0.0.2')).data, 'hello', "zone a's rule does not reach zone b");
    assert.equal((await from(pa, '127.0.0.3')).data, '', 'the node-wide block applies in zone a');
    assert.equal((await from(pb, '127.0.0.3')).data, 'hello', "zone b's allow of the same address wins there (allow over block at equal specificity)");
    assert.equal((await from(pa, '127.0.0.4')).data, 'hello');
    await e.closing(5);
    const blocked = e.events.filter((x) => x.Event === 'clientFiltered');
    assert.deepEqual(blocked.map((x) => [x.ClientIP, x.EdgePort, x.ClientMatchedIpFirewall]).sort(), [['127.0.0.2', pa, 'BLOCK_IP'], ['127.0.0.3', pa, 'BLOCK_IP']]);
    assert.equal(e.events.find((x) => x.Event !== 'connect' && x.ClientIP === '127.0.0.3' && x.EdgePort === pb)?.ClientMatchedIpFirewall, 'WHITELIST_IP');

    // The UDP app names zone a (its DNS name is in b): zone a's block drops the datagram.
    client.bind(0, '127.0.0.2');
    await once(client, 'listening');
    const before = e.edge.udp.stats.udp_dgrams_ip_blocked;
    client.send('x', pu, '127.0.0.1');
    const deadline = Date.now() + 3000;
    while (e.edge.udp.stats.udp_dgrams_ip_blocked === before && Date.now() < deadline) await delay(10);
    assert.equal(e.edge.udp.stats.udp_dgrams_ip_blocked, before + 1);
  } finally {
    client.close();
    await e.close();
    await o.close();
    udpOrigin.close();
  }
});
