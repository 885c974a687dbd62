/**
 * The TCP proxy on real loopback sockets: port ranges, half-close, refusal, connect timeout, failover, resets,
 * unconfigured ports, PROXY headers. Edge ports 7400-7499 belong to this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { startEdge, startOrigin, exchange, delay } from '../../helpers/edge.ts';
import { decodeProxyHeader } from '../../../src/core/proxy-protocol.ts';

const app = (over: Record<string, unknown>) => ({
  dns: { type: 'CNAME', name: `t${Math.floor(Math.random() * 1e9)}.example.test` },
  ...over,
});

test('edge port P of a range reaches origin port start + P − a, bytes echo back intact', async () => {
  const origins = await Promise.all([0, 1, 2, 3, 4].map((i) => startOrigin({ port: 7450 + i })));
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: 'tcp/7400-7404', origin_direct: ['tcp://127.0.0.1:7450-7454'] })] });
  try {
    for (const i of [0, 3, 4]) {
      const r = await exchange(7400 + i, `hello ${i}`);
      assert.equal(r.data.toString(), `hello ${i}`);
      assert.equal(origins[i]!.received.at(-1)!.toString(), `hello ${i}`, `origin ${7450 + i} got the bytes`);
    }
    assert.equal(origins[1]!.received.length, 0);
    const closes = e.events.filter((x) => x.Event !== 'connect');
    await e.closing(3);
    assert.deepEqual(e.events.filter((x) => x.Event === 'disconnect').map((x) => [x.EdgePort, x.OriginPort, x.Status]).sort(), [
      [7400, 7450, 200], [7403, 7453, 200], [7404, 7454, 200],
    ]);
    assert.ok(closes.length <= 3);
  } finally {
    await e.close();
    await Promise.all(origins.map((o) => o.close()));
  }
});

test('client half-close is forwarded while the origin keeps sending', async () => {
  // Origin: waits for the client's FIN, then sends a reply and closes.
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('end', () => {
      s.write(`got ${Buffer.concat(got).length} bytes after FIN`);
      s.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const oport = (server.address() as net.AddressInfo).port;
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: 'tcp/7410', origin_direct: [`tcp://127.0.0.1:${oport}`] })] });
  try {
    const r = await exchange(7410, Buffer.alloc(100_000, 7));
    assert.equal(r.data.toString(), 'got 100000 bytes after FIN');
    const ev = await e.closing();
    assert.equal(ev.Status, 200);
    assert.equal(ev.ClientBytes, 100_000);
    assert.equal(ev.OriginBytes, 'got 100000 bytes after FIN'.length);
  } finally {
    await e.close();
    server.close();
  }
});

test('origin half-close is forwarded while the client keeps sending', async () => {
  // Origin: speaks, half-closes at once, then counts what the client still sends.
  let originGot = 0;
  const done = new Promise<void>((res) => {
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.end('bye first\n');
      s.on('data', (d) => (originGot += d.length));
      s.on('end', () => res());
    });
    server.listen(7461, '127.0.0.1');
    server.unref();
  });
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: 'tcp/7411', origin_direct: ['tcp://127.0.0.1:7461'] })] });
  try {
    const s = net.connect({ port: 7411, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    await once(s, 'end'); // origin's FIN arrived through the proxy
    assert.equal(Buffer.concat(chunks).toString(), 'bye first\n');
    s.write(Buffer.alloc(5000, 1)); // our direction is still open
    s.end();
    await done;
    assert.equal(originGot, 5000);
    assert.equal((await e.closing()).Status, 200);
  } finally {
    await e.close();
  }
});

test('origin refusal closes the client and logs originError 521', async () => {
  const free = await startOrigin();
  const port = free.port;
  await free.close(); // nothing listens there now
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: 'tcp/7412', origin_direct: [`tcp://127.0.0.1:${port}`] })] });
  try {
    const r = await exchange(7412, 'x', { end: false });
    assert.equal(r.data.length, 0);
    const ev = await e.closing();
    assert.equal(ev.Event, 'originError');
    assert.equal(ev.Status, 521);
    assert.equal(ev.ErrorCode, 'E_UPSTREAM_CONNECT_REFUSED');
    assert.deepEqual(e.events.map((x) => x.Event), ['connect', 'originError']);
  } finally {
    await e.close();
  }
});

/** A listener whose accept queue is full: further SYNs are dropped, so connects hang (a loopback black hole). */
async function blackHole(): Promise<{ port: number; close(): void }> {
  const py = spawn('python3', ['-c', `
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
print(s.getsockname()[1], flush=True)
fill = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', s.getsockname()[1]))
    except BlockingIOError: pass
    fill.append(c)
time.sleep(60)
`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(py.stdout!, 'data')) as [Buffer];
  await delay(100);
  return { port: Number(line.toString().trim()), close: () => py.kill() };
}

test('a black-holed origin gives originError 522 after the connect timeout', async () => {
  const hole = await blackHole();
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'], connect_timeout_ms: 300 },
    apps: [app({ protocol: 'tcp/7413', origin_direct: [`tcp://127.0.0.1:${hole.port}`] })],
  });
  try {
    const t0 = Date.now();
    await exchange(7413, undefined, { end: false });
    const ev = await e.closing();
    const took = Date.now() - t0;
    assert.equal(ev.Status, 522);
    assert.equal(ev.ErrorCode, 'E_UPSTREAM_CONNECT_TIMEOUT');
    assert.ok(took >= 250, `closed after ${took} ms, before the timeout`);
  } finally {
    await e.close();
    hole.close();
  }
});

test('a refused first origin address moves on to the second before the client is told', async () => {
  const good = await startOrigin();
  const dead = await startOrigin();
  const deadPort = dead.port;
  await dead.close();
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'] },
    apps: [app({ protocol: 'tcp/7414', origin_direct: [`tcp://127.0.0.1:${deadPort}`, `tcp://127.0.0.1:${good.port}`] })],
  });
  try {
    // Round-robin starts connections at different addresses; every one must still reach the good origin.
    for (let i = 0; i < 4; i++) {
      const r = await exchange(7414, `try ${i}`);
      assert.equal(r.data.toString(), `try ${i}`);
    }
    await e.closing(4);
    assert.ok(e.events.filter((x) => x.Event === 'disconnect').every((x) => x.Status === 200 && x.OriginPort === good.port));
    assert.ok(e.edge.tcp.stats.upstream_cx_connect_fail >= 1, 'the dead address was tried');
  } finally {
    await e.close();
    await good.close();
  }
});

test('an origin reset is passed to the client as a reset (status 444)', async () => {
  const server = net.createServer((s) => {
    s.once('data', () => s.resetAndDestroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: 'tcp/7415', origin_direct: [`tcp://127.0.0.1:${port}`] })] });
  try {
    const r = await exchange(7415, 'boom', { end: false });
    assert.equal(r.error, 'ECONNRESET');
    const ev = await e.closing();
    assert.equal(ev.Status, 444);
  } finally {
    await e.close();
    server.close();
  }
});

test('a client reset is passed to the origin as a reset (status 499)', async () => {
  let originError: string | undefined;
  const seen = new Promise<void>((res) => {
    const server = net.createServer((s) => {
      s.on('error', (err: NodeJS.ErrnoException) => {
        originError = err.code;
        res();
      });
      s.on('close', () => res());
    });
    server.listen(7465, '127.0.0.1');
    server.unref();
  });
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: 'tcp/7416', origin_direct: ['tcp://127.0.0.1:7465'] })] });
  try {
    const s = net.connect({ port: 7416, host: '127.0.0.1' });
    await once(s, 'connect');
    s.write('hi');
    await delay(100);
    s.resetAndDestroy();
    await seen;
    assert.equal(originError, 'ECONNRESET');
    assert.equal((await e.closing()).Status, 499);
  } finally {
    await e.close();
  }
});

test('a port no app serves is closed at once and no origin is dialled', async () => {
  const o = await startOrigin();
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: 'tcp/7417', origin_direct: [`tcp://127.0.0.1:${o.port}`] })] });
  try {
    const t0 = Date.now();
    const r = await exchange(7418, 'anyone?', { end: false, timeoutMs: 2000 });
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(r.data.length, 0);
    assert.equal(o.received.length, 0);
    assert.equal(e.edge.tcp.stats.upstream_cx_total, 0);
  } finally {
    await e.close();
    await o.close();
  }
});

test('PROXY v1 and v2 headers reach the origin before any client byte, with the client and edge addresses', async () => {
  for (const [i, version] of (['v1', 'v2'] as const).entries()) {
    const o = await startOrigin({ mode: 'sink' });
    const port = 7420 + i;
    const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: `tcp/${port}`, origin_direct: [`tcp://127.0.0.1:${o.port}`], proxy_protocol: version })] });
    try {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.5' });
      await once(s, 'connect');
      const clientPort = s.localPort!;
      s.end('payload');
      await once(s, 'close');
      await e.closing();
      const got = o.received[0]!;
      const d = decodeProxyHeader(new Uint8Array(got));
      assert.equal(d.kind, 'header');
      if (d.kind !== 'header') return;
      assert.equal(d.header.version, version === 'v1' ? 1 : 2);
      assert.deepEqual(d.header.src, { address: '127.0.0.5', port: clientPort });
      assert.deepEqual(d.header.dst, { address: '127.0.0.1', port });
      assert.equal(Buffer.from(d.rest).toString(), 'payload');
    } finally {
      await e.close();
      await o.close();
    }
  }
});

test('inbound PROXY from a trusted balancer sets the client address; an untrusted sender is refused', async () => {
  const o = await startOrigin({ mode: 'sink' });
  const e = await startEdge({
    edge: { addresses: ['127.0.0.1'], accept_proxy: { trusted: ['127.0.0.7/32'], timeout_ms: 1000 } },
    apps: [app({ protocol: 'tcp/7425', origin_direct: [`tcp://127.0.0.1:${o.port}`], proxy_protocol: 'v1' })],
  });
  try {
    // Trusted: the balancer at 127.0.0.7 says the client is 203.0.113.9:4242.
    const lb = net.connect({ port: 7425, host: '127.0.0.1', localAddress: '127.0.0.7' });
    await once(lb, 'connect');
    lb.write('PROXY TCP4 203.0.113.9 198.51.100.1 4242 25\r\n');
    lb.end('EHLO x\r\n');
    await once(lb, 'close');
    const ev = await e.closing();
    assert.equal(ev.Status, 200);
    assert.equal(ev.ClientIP, '203.0.113.9');
    assert.equal(o.received[0]!.toString(), 'PROXY TCP4 203.0.113.9 198.51.100.1 4242 25\r\nEHLO x\r\n');

    // Untrusted sender: refused, the origin never sees it.
    const r = await exchange(7425, 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', { end: false });
    assert.equal(r.data.length, 0);
    const ev2 = await e.closing(2);
    assert.equal(ev2.Event, 'clientFiltered');
    assert.equal(ev2.ErrorCode, 'E_PP_UNTRUSTED');
    assert.equal(o.received.length, 1);

    // Trusted sender with garbage: refused with the decoder's code.
    const bad = net.connect({ port: 7425, host: '127.0.0.1', localAddress: '127.0.0.7' });
    await once(bad, 'connect');
    bad.write('GET / HTTP/1.1\r\n\r\n');
    bad.on('error', () => {});
    await once(bad, 'close');
    const ev3 = await e.closing(3);
    assert.equal(ev3.ErrorCode, 'E_PP_BAD_SIGNATURE');
    assert.equal(o.received.length, 1);
  } finally {
    await e.close();
    await o.close();
  }
});

test('an idle connection is closed after the idle timeout', async () => {
  const o = await startOrigin();
  // A 1 s timeout and a tick every 150 ms: the gaps stay far below the timeout even on a loaded machine (CI runs
  // other work beside the tests), while the activity lasts past one timeout period.
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'], idle_timeout_ms: 1_000 }, apps: [app({ protocol: 'tcp/7426', origin_direct: [`tcp://127.0.0.1:${o.port}`] })] });
  try {
    const s = net.connect({ port: 7426, host: '127.0.0.1' });
    s.resume(); // read the echoes, or 'end' (and 'close') never come
    await once(s, 'connect');
    // Activity for ~1.2 s keeps it open past one timeout period.
    for (let i = 0; i < 8; i++) {
      s.write('tick');
      await delay(150);
    }
    assert.equal(e.edge.tcp.activeCount, 1);
    const t0 = Date.now();
    await once(s, 'close');
    const ev = await e.closing();
    assert.equal(ev.CloseReason, 'idle_timeout');
    assert.ok(Date.now() - t0 >= 100);
  } finally {
    await e.close();
    await o.close();
  }
});

test('the decision trace records each step of a connection in order, with bytes and status at close', async () => {
  const o = await startOrigin();
  const e = await startEdge({ edge: { addresses: ['127.0.0.1'] }, apps: [app({ protocol: 'tcp/7427', origin_direct: [`tcp://127.0.0.1:${o.port}`] })] });
  const records: Array<Record<string, unknown>> = [];
  e.edge.trace.records$.subscribe((r) => records.push(r));
  try {
    await exchange(7427, 'traced');
    await e.closing();
    assert.deepEqual(records.map((r) => r.event), ['accept', 'resolved', 'dial', 'established', 'c2s_end', 's2c_end', 'close']);
    const close = records.at(-1)!;
    assert.equal(close.status, 200);
    assert.equal(close.bytes_in, 6);
    assert.equal(close.bytes_out, 6);
    assert.ok(records.every((r, i) => i === 0 || (r.t as number) >= (records[i - 1]!.t as number)), 'times never go backwards');
  } finally {
    await e.close();
    await o.close();
  }
});
