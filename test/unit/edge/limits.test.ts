/**
 * Per-client limits and connection caps on real loopback sockets: several client addresses from 127.0.0.0/8 (the
 * client socket bound to 127.0.0.2, .3, …) and clients named by inbound PROXY headers. A connection over a limit
 * is closed at once, before any origin work, with its own status and code; a UDP datagram over a limit opens no
 * flow and is counted. Edge ports 8810-8819 belong to this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { startEdge, startOrigin, delay } from '../../helpers/edge.ts';

const tcpApp = (port: number, origin: number, extra: Record<string, unknown> = {}) => ({
  protocol: `tcp/${port}`,
  dns: { name: `l${port}.example.test` },
  origin_direct: [`tcp://127.0.0.1:${origin}`],
  ...extra,
});

/** A connection from `localAddress` that is established end to end (its first bytes came back), kept open. */
async function held(port: number, localAddress: string, first = 'x'): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(first);
  const [d] = (await once(s, 'data')) as [Buffer];
  assert.equal(d.toString(), first, `${localAddress}: echoed through the edge`);
  return s;
}

/** Connects from `localAddress`, writes `hello` and collects what comes back until the edge closes. */
async function attempt(port: number, localAddress: string, prefix = ''): Promise<string> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on('data', (d) => chunks.push(d));
  s.on('end', () => s.end());
  s.on('error', () => {});
  s.on('connect', () => s.end(`${prefix}hello`));
  const timer = setTimeout(() => s.destroy(), 5_000);
  await new Promise<void>((r) => s.once('close', () => r()));
  clearTimeout(timer);
  return Buffer.concat(chunks).toString();
}

async function closeAll(socks: net.Socket[]): Promise<void> {
  await Promise.all(socks.map((s) => (s.destroyed ? undefined : (s.destroy(), once(s, 'close')))));
}

test('per_ip_connections: a client past its count is closed at once (429, E_LIMIT_CLIENT_CONNECTIONS); others are served', async () => {
  const o = await startOrigin();
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'], limits: { per_ip_connections: 2 } }, apps: [tcpApp(8810, o.port)] });
  const open: net.Socket[] = [];
  try {
    open.push(await held(8810, '127.0.0.2'), await held(8810, '127.0.0.2'));
    const received = o.received.length;
    assert.equal(await attempt(8810, '127.0.0.2'), '', 'the third connection of 127.0.0.2 gets nothing back');
    assert.equal(o.received.length, received, 'and never reached the origin');
    assert.equal(await attempt(8810, '127.0.0.3'), 'hello', 'another client is served meanwhile');
    const refused = e.events.find((x) => x.Event !== 'connect' && x.Status === 429)!;
    assert.deepEqual([refused.Event, refused.ClientIP, refused.CloseReason, refused.ErrorCode, refused.OriginIP], ['clientFiltered', '127.0.0.2', 'client_limit', 'E_LIMIT_CLIENT_CONNECTIONS', '']);
    assert.equal(e.edge.tcp.stats.downstream_cx_refused_client_connections, 1);
    // One of the two closes: the client gets a slot back.
    const first = open.shift()!;
    first.destroy();
    await once(first, 'close');
    for (let i = 0; i < 50 && e.edge.tcp.activeCount > 1; i++) await delay(10);
    assert.equal(await attempt(8810, '127.0.0.2'), 'hello', 'a closed connection gives its slot back');
  } finally {
    await closeAll(open);
    await e.close();
    await o.close();
  }
});

test('per_ip_new_per_second: a client past its burst is refused (429, E_LIMIT_CLIENT_RATE); another client still has its own', async () => {
  const o = await startOrigin();
  // 0.001/s: no token comes back during the test, so the burst of 2 is all a client gets.
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [tcpApp(8811, o.port, { limits: { per_ip_new_per_second: 0.001, per_ip_burst: 2 } })] });
  try {
    assert.deepEqual([await attempt(8811, '127.0.0.4'), await attempt(8811, '127.0.0.4'), await attempt(8811, '127.0.0.4')], ['hello', 'hello', '']);
    assert.equal(await attempt(8811, '127.0.0.5'), 'hello');
    await e.closing(4);
    const refused = e.events.filter((x) => x.Status === 429);
    assert.deepEqual(refused.map((x) => [x.ClientIP, x.ErrorCode]), [['127.0.0.4', 'E_LIMIT_CLIENT_RATE']]);
    assert.equal(e.edge.tcp.stats.downstream_cx_refused_client_rate, 1);
  } finally {
    await e.close();
    await o.close();
  }
});

test('behind a trusted load balancer the limits count the client each PROXY header names (IPv6 by its /64)', async () => {
  const o = await startOrigin();
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'], accept_proxy: { trusted: ['127.0.0.7/32'] }, limits: { per_ip_connections: 1 } },
    apps: [tcpApp(8812, o.port)],
  });
  const v1 = (client: string, family: 'TCP4' | 'TCP6' = 'TCP4'): string => `PROXY ${family} ${client} ${family === 'TCP4' ? '198.51.100.1' : '2001:db8::1'} 4242 8812\r\n`;
  const open: net.Socket[] = [];
  try {
    // Every connection comes from the same balancer address; only the header tells the clients apart.
    const lb = async (header: string): Promise<net.Socket> => {
      const s = net.connect({ port: 8812, host: '127.0.0.1', localAddress: '127.0.0.7' });
      s.on('error', () => {});
      await once(s, 'connect');
      s.write(`${header}x`);
      const [d] = (await once(s, 'data')) as [Buffer];
      assert.equal(d.toString(), 'x');
      return s;
    };
    open.push(await lb(v1('203.0.113.9')));
    assert.equal(await attempt(8812, '127.0.0.7', v1('203.0.113.9')), '', 'the same client again: refused');
    open.push(await lb(v1('203.0.113.10')));
    open.push(await lb(v1('2001:db8:1:2::1', 'TCP6')));
    assert.equal(await attempt(8812, '127.0.0.7', v1('2001:db8:1:2::ffff', 'TCP6')), '', 'same /64: the same client');
    open.push(await lb(v1('2001:db8:1:3::1', 'TCP6')));
    const refused = e.events.filter((x) => x.Status === 429);
    assert.deepEqual(refused.map((x) => [x.ClientIP, x.ErrorCode]), [['203.0.113.9', 'E_LIMIT_CLIENT_CONNECTIONS'], ['2001:db8:1:2::ffff', 'E_LIMIT_CLIENT_CONNECTIONS']]);
    assert.equal(o.received.length, 4, 'refused connections never reached the origin');
  } finally {
    await closeAll(open);
    await e.close();
    await o.close();
  }
});

test('max_connections: past the node cap or the app cap a new connection is closed at once (503) and counted', async () => {
  const o = await startOrigin();
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'], max_connections: 3 },
    apps: [tcpApp(8813, o.port, { max_connections: 1 }), tcpApp(8814, o.port)],
  });
  const open: net.Socket[] = [];
  try {
    open.push(await held(8813, '127.0.0.2'));
    assert.equal(await attempt(8813, '127.0.0.3'), '', 'the app holds its one connection');
    open.push(await held(8814, '127.0.0.2'), await held(8814, '127.0.0.3'));
    assert.equal(await attempt(8814, '127.0.0.4'), '', 'the node holds its three');
    const refused = e.events.filter((x) => x.Status === 503);
    assert.deepEqual(refused.map((x) => [x.Event, x.CloseReason, x.ErrorCode, x.EdgePort]), [
      ['disconnect', 'max_connections', 'E_LIMIT_APP_CONNECTIONS', 8813],
      ['disconnect', 'max_connections', 'E_LIMIT_NODE_CONNECTIONS', 8814],
    ]);
    assert.deepEqual([e.edge.tcp.stats.downstream_cx_refused_app_cap, e.edge.tcp.stats.downstream_cx_refused_node_cap], [1, 1]);
    const last = open.pop()!;
    last.destroy();
    await once(last, 'close');
    for (let i = 0; i < 50 && e.edge.tcp.activeCount > 2; i++) await delay(10);
    assert.equal(await attempt(8814, '127.0.0.4'), 'hello', 'a slot freed: served again');
  } finally {
    await closeAll(open);
    await e.close();
    await o.close();
  }
});

test('udp: a datagram that would open a flow past a per-client limit is dropped and counted; open flows and other clients go on', async () => {
  const origin = dgram.createSocket('udp4');
  origin.on('message', (m, r) => origin.send(m, r.port, r.address));
  origin.bind(0, '127.0.0.1');
  await once(origin, 'listening');
  const oport = origin.address().port;
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'], udp_idle_timeout_ms: 10_000 },
    apps: [{ protocol: 'udp/8815', dns: { name: 'u.example.test' }, origin_direct: [`udp://127.0.0.1:${oport}`], limits: { per_ip_connections: 1 } }],
  });
  const clients: dgram.Socket[] = [];
  const client = async (address: string) => {
    const s = dgram.createSocket('udp4');
    clients.push(s);
    s.bind(0, address);
    await once(s, 'listening');
    const inbox: string[] = [];
    s.on('message', (m) => inbox.push(m.toString()));
    return {
      inbox,
      send: (text: string) => s.send(text, 8815, '127.0.0.1'),
    };
  };
  const settle = async (cond: () => boolean) => {
    for (let i = 0; i < 100 && !cond(); i++) await delay(10);
  };
  try {
    const a1 = await client('127.0.0.2');
    const a2 = await client('127.0.0.2');
    const b = await client('127.0.0.3');
    a1.send('a1');
    await settle(() => a1.inbox.length === 1);
    a2.send('a2');
    a2.send('a2');
    b.send('b');
    await settle(() => b.inbox.length === 1);
    a1.send('a1 again');
    await settle(() => a1.inbox.length === 2);
    await delay(100);
    assert.deepEqual([a1.inbox, a2.inbox, b.inbox], [['a1', 'a1 again'], [], ['b']]);
    assert.equal(e.edge.udp.stats.udp_flows_refused_client_connections, 2, 'each datagram that would have opened a flow');
    assert.equal(e.edge.udp.stats.udp_flows_total, 2);
  } finally {
    for (const s of clients) s.close();
    await e.close();
    origin.close();
  }
});
