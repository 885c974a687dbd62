/**
 * UDP apps on real loopback sockets: flows per client, port ranges, PROXY v2 on the first datagram only, Simple
 * Proxy Protocol both ways, idle expiry, the flow cap, oversize datagrams. Edge ports 7900-7949 belong to this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { startEdge, delay } from '../../helpers/edge.ts';
import { decodeProxyHeader } from '../../../src/core/proxy-protocol.ts';
import { decodeSpp, encodeSpp } from '../../../src/core/spp.ts';

/** A UDP origin: records every datagram; `reply` computes the answer (undefined = none). */
async function udpOrigin(port: number, reply: (d: Buffer) => Buffer | undefined = (d) => d) {
  const s = dgram.createSocket('udp4');
  const got: Array<{ data: Buffer; from: string }> = [];
  s.on('message', (d, r) => {
    got.push({ data: d, from: `${r.address}:${r.port}` });
    const out = reply(d);
    if (out) s.send(out, r.port, r.address);
  });
  s.bind(port, '127.0.0.1');
  await once(s, 'listening');
  return { got, close: () => new Promise<void>((r) => s.close(() => r())) };
}

/** A client socket from a given loopback address; `ask` sends and waits for one reply (or undefined on timeout). */
async function udpClient(from = '127.0.0.1') {
  const s = dgram.createSocket('udp4');
  s.bind(0, from);
  await once(s, 'listening');
  const inbox: Buffer[] = [];
  const waiters: Array<(b: Buffer) => void> = [];
  s.on('message', (d) => {
    const w = waiters.shift();
    if (w) w(d);
    else inbox.push(d);
  });
  return {
    port: s.address().port,
    send: (data: string | Buffer, port: number) => s.send(data, port, '127.0.0.1'),
    next: (ms = 2000) =>
      new Promise<Buffer | undefined>((res) => {
        const b = inbox.shift();
        if (b) return res(b);
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          res(undefined);
        }, ms);
        const w = (d: Buffer) => {
          clearTimeout(t);
          res(d);
        };
        waiters.push(w);
      }),
    close: () => s.close(),
  };
}

const udpApp = (over: Record<string, unknown>) => ({ dns: { type: 'CNAME', name: `u${Math.floor(Math.random() * 1e9)}.example.test` }, ...over });

test('udp: datagrams of an edge port range reach the mapped origin port and replies reach the right client', async () => {
  const o0 = await udpOrigin(7930, (d) => Buffer.concat([Buffer.from('o0:'), d]));
  const o2 = await udpOrigin(7932, (d) => Buffer.concat([Buffer.from('o2:'), d]));
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [udpApp({ protocol: 'udp/7900-7902', origin_direct: ['udp://127.0.0.1:7930-7932'] })] });
  const a = await udpClient('127.0.0.2');
  const b = await udpClient('127.0.0.3');
  try {
    a.send('hi from a', 7900);
    b.send('hi from b', 7902);
    assert.equal((await a.next())?.toString(), 'o0:hi from a');
    assert.equal((await b.next())?.toString(), 'o2:hi from b');
    a.send('again', 7900);
    assert.equal((await a.next())?.toString(), 'o0:again');
    assert.equal(e.edge.udp.activeCount, 2, 'one flow per (client, edge port)');
    // Each flow has its own upstream socket: the origin sees two different source ports.
    assert.notEqual(o0.got[0]!.from, o2.got[0]!.from);
  } finally {
    a.close();
    b.close();
    await e.close();
    await o0.close();
    await o2.close();
  }
});

test('udp: proxy_protocol v2 prefixes only the first datagram of a flow with a DGRAM header', async () => {
  const o = await udpOrigin(7933, () => undefined);
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [udpApp({ protocol: 'udp/7905', origin_direct: ['udp://127.0.0.1:7933'], proxy_protocol: 'v2' })] });
  const c = await udpClient('127.0.0.4');
  try {
    c.send('first', 7905);
    c.send('second', 7905);
    for (let i = 0; i < 50 && o.got.length < 2; i++) await delay(20);
    const d = decodeProxyHeader(new Uint8Array(o.got[0]!.data));
    assert.equal(d.kind, 'header');
    if (d.kind !== 'header') return;
    assert.equal(d.header.version, 2);
    assert.equal(d.header.transport, 'dgram');
    assert.deepEqual(d.header.src, { address: '127.0.0.4', port: c.port });
    assert.deepEqual(d.header.dst, { address: '127.0.0.1', port: 7905 });
    assert.equal(Buffer.from(d.rest).toString(), 'first');
    assert.equal(o.got[1]!.data.toString(), 'second', 'no header on later datagrams');
  } finally {
    c.close();
    await e.close();
    await o.close();
  }
});

test('udp: simple proxy protocol goes on every datagram, replies must carry the same header, bad replies are dropped', async () => {
  // The origin decodes SPP, answers with the same header, except for payload 'drop-me' which it answers bare.
  const o = await udpOrigin(7934, (d) => {
    const s = decodeSpp(new Uint8Array(d));
    if (s.kind !== 'ok') return undefined;
    const text = Buffer.from(s.payload).toString();
    if (text === 'drop-me') return Buffer.from('no header');
    return Buffer.from(encodeSpp({ client: s.client, proxy: s.proxy }, Buffer.from(`seen ${s.client.address}:${s.client.port} says ${text}`)));
  });
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [udpApp({ protocol: 'udp/7906', origin_direct: ['udp://127.0.0.1:7934'], proxy_protocol: 'simple' })] });
  const c = await udpClient('127.0.0.5');
  try {
    c.send('ping', 7906);
    assert.equal((await c.next())?.toString(), `seen 127.0.0.5:${c.port} says ping`);
    c.send('drop-me', 7906);
    assert.equal(await c.next(300), undefined, 'a reply without the flow header never reaches the client');
    assert.equal(e.edge.udp.stats.udp_spp_reply_invalid, 1);
    c.send('pong', 7906);
    assert.equal((await c.next())?.toString(), `seen 127.0.0.5:${c.port} says pong`);
    assert.equal(o.got.length, 3);
    assert.ok(o.got.every((g) => decodeSpp(new Uint8Array(g.data)).kind === 'ok'), 'every datagram carried the header');
  } finally {
    c.close();
    await e.close();
    await o.close();
  }
});

test('udp: a flow ends after the idle timeout with a disconnect event counting datagrams both ways', async () => {
  const o = await udpOrigin(7935);
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'], udp_idle_timeout_ms: 200 }, apps: [udpApp({ protocol: 'udp/7907', origin_direct: ['udp://127.0.0.1:7935'] })] });
  const c = await udpClient();
  try {
    c.send('one', 7907);
    await c.next();
    c.send('two', 7907);
    await c.next();
    assert.equal(e.edge.udp.activeCount, 1);
    const ev = await e.closing();
    assert.equal(ev.Event, 'disconnect');
    assert.equal(ev.ClientProto, 'udp');
    assert.equal(ev.CloseReason, 'idle_timeout');
    assert.equal(ev.ClientPackets, 2);
    assert.equal(ev.OriginPackets, 2);
    assert.equal(ev.ClientBytes, 6);
    assert.equal(e.edge.udp.activeCount, 0);
    // A new datagram after expiry opens a new flow.
    c.send('three', 7907);
    assert.equal((await c.next())?.toString(), 'three');
    assert.equal(e.edge.udp.stats.udp_flows_total, 2);
  } finally {
    c.close();
    await e.close();
    await o.close();
  }
});

test('udp: past the flow cap new flows are refused while existing flows keep working', async () => {
  const o = await udpOrigin(7936);
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'], udp_max_flows: 2 }, apps: [udpApp({ protocol: 'udp/7908', origin_direct: ['udp://127.0.0.1:7936'] })] });
  const cs = await Promise.all([udpClient(), udpClient(), udpClient()]);
  try {
    cs[0]!.send('a', 7908);
    assert.equal((await cs[0]!.next())?.toString(), 'a');
    cs[1]!.send('b', 7908);
    assert.equal((await cs[1]!.next())?.toString(), 'b');
    cs[2]!.send('c', 7908);
    assert.equal(await cs[2]!.next(300), undefined);
    assert.equal(e.edge.udp.stats.udp_flows_refused_cap, 1);
    cs[0]!.send('still', 7908);
    assert.equal((await cs[0]!.next())?.toString(), 'still');
  } finally {
    for (const c of cs) c.close();
    await e.close();
    await o.close();
  }
});

test('udp: a datagram that would exceed the maximum size after the header is dropped, never fragmented', async () => {
  const o = await udpOrigin(7937, () => undefined);
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'], udp_max_datagram_bytes: 100 }, apps: [udpApp({ protocol: 'udp/7909', origin_direct: ['udp://127.0.0.1:7937'], proxy_protocol: 'simple' })] });
  const c = await udpClient();
  try {
    c.send(Buffer.alloc(62, 1), 7909); // 62 + 38 = 100: fits
    c.send(Buffer.alloc(63, 2), 7909); // 101: dropped
    for (let i = 0; i < 50 && o.got.length < 1; i++) await delay(20);
    await delay(100);
    assert.equal(o.got.length, 1);
    assert.equal(o.got[0]!.data.length, 100);
    assert.equal(e.edge.udp.stats.udp_dgrams_oversize, 1);
  } finally {
    c.close();
    await e.close();
    await o.close();
  }
});

test('udp: an app-level flow cap refuses new flows of that app while other apps still open flows', async () => {
  const o = await udpOrigin(7938);
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'] },
    apps: [
      udpApp({ protocol: 'udp/7910', origin_direct: ['udp://127.0.0.1:7938'], udp_max_flows: 1 }),
      udpApp({ protocol: 'udp/7911', origin_direct: ['udp://127.0.0.1:7938'] }),
    ],
  });
  const cs = await Promise.all([udpClient(), udpClient(), udpClient()]);
  try {
    cs[0]!.send('a', 7910);
    assert.equal((await cs[0]!.next())?.toString(), 'a');
    cs[1]!.send('b', 7910);
    assert.equal(await cs[1]!.next(300), undefined, 'the capped app refuses a second flow');
    cs[2]!.send('c', 7911);
    assert.equal((await cs[2]!.next())?.toString(), 'c', 'another app is not affected');
    assert.equal(e.edge.udp.stats.udp_flows_refused_cap, 1);
  } finally {
    for (const c of cs) c.close();
    await e.close();
    await o.close();
  }
});
