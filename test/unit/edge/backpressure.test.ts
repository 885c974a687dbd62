/**
 * Memory per connection is bounded on real sockets (docs/hardening.md, "Overload and descriptors"): a fast writer
 * and a slow reader, through a real EdgeNode, in both directions. If the splice ignored backpressure, the proxy
 * would queue what the reader has not taken yet (tens of MB here); with it, the queue stays at the sockets'
 * high-water marks and the rest waits in the kernel and the writer. Measured as the peak `writableLength` (bytes
 * queued in Node, not yet taken by the kernel) of the proxy's two sockets, sampled every millisecond.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { startEdge } from '../../helpers/edge.ts';
import { createNodeNetwork, NodeConn } from '../../../src/net/node/network.ts';
import type { Conn, Network } from '../../../src/net/ports.ts';

const TOTAL = 50 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
/** Queue allowed per socket: the high-water mark (16 KiB; 64 KiB from Node 22) plus the chunk that crossed it (≤ 64 KiB), with room to spare, far below the 50 MB in flight. */
const BOUND = 256 * 1024;

/** Writes TOTAL bytes as fast as `s` takes them (waiting for drain), then ends. */
async function writeFast(s: net.Socket): Promise<void> {
  let sent = 0;
  while (sent < TOTAL) {
    sent += CHUNK.length;
    if (!s.write(CHUNK)) await once(s, 'drain');
  }
  s.end();
}

/** Reads `s` slowly: at most one read per tick of 1 ms. Resolves with the bytes read at end. */
function readSlowly(s: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    let got = 0;
    s.pause();
    const timer = setInterval(() => s.resume(), 1);
    s.on('data', (d: Buffer) => {
      got += d.length;
      s.pause();
    });
    s.on('end', () => {
      clearInterval(timer);
      resolve(got);
    });
    s.on('error', () => {
      clearInterval(timer);
      resolve(got);
    });
  });
}

/** The real network, with every Conn the proxy accepts or dials kept for sampling. */
function watchedNetwork(): { net: Network; conns: NodeConn[] } {
  const inner = createNodeNetwork();
  const conns: NodeConn[] = [];
  const net: Network = {
    ...inner,
    listenTcp: (o, onConnection) =>
      inner.listenTcp(o, (c: Conn) => {
        conns.push(c as NodeConn);
        onConnection(c);
      }),
    connectTcp: (o) => {
      const c = inner.connectTcp(o);
      conns.push(c as NodeConn);
      return c;
    },
  };
  return { net, conns };
}

/** Samples the largest write queue of the proxy's sockets every millisecond until stopped; returns the peak. */
function sampler(conns: readonly NodeConn[]): { stop(): number } {
  let peak = 0;
  const look = (): void => {
    for (const c of conns) peak = Math.max(peak, c.writableLength);
  };
  const t = setInterval(look, 1);
  return {
    stop() {
      clearInterval(t);
      look();
      return peak;
    },
  };
}

/** Peak queues measured, for docs/hardening.md (printed with REFRACT_TEST_FIGURES=1). */
const peaks: number[] = [];
process.on('exit', () => {
  if (process.env.REFRACT_TEST_FIGURES) console.log(`peak writableLength per test: ${peaks.join(', ')} bytes`);
});

const app = (edgePort: number, originPort: number) => ({
  edge: { addresses: ['127.0.0.1'] },
  apps: [{ id: 'bp', dns: { type: 'CNAME', name: 'bp.example.test' }, protocol: `tcp/${edgePort}`, origin_direct: [`tcp://127.0.0.1:${originPort}`] }],
});

test('fast client, slow origin: 50 MB through the proxy, its queues stay bounded', { timeout: 120_000 }, async () => {
  let originRead: Promise<number> = Promise.resolve(0);
  const origin = net.createServer((s) => {
    originRead = readSlowly(s);
    void originRead.then(() => s.end());
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const w = watchedNetwork();
  const e = await startEdge(app(7830, (origin.address() as net.AddressInfo).port), { net: w.net });
  try {
    const mem = sampler(w.conns);
    const c = net.connect(7830, '127.0.0.1');
    await once(c, 'connect');
    c.resume();
    await writeFast(c);
    const got = await new Promise<number>((r) => setImmediate(() => r(originRead))).then((p) => p);
    const grown = mem.stop();
    c.destroy();
    assert.equal(got, TOTAL, 'every byte reached the origin');
    assert.equal(w.conns.length, 2);
    assert.ok(grown > 0, 'the slow reader made the proxy queue something');
    assert.ok(grown < BOUND, `a proxy socket queued ${grown} bytes while 50 MB went to a slow reader`);
    peaks.push(grown);
  } finally {
    await e.close();
    origin.close();
  }
});

test('fast origin, slow client: 50 MB through the proxy, its queues stay bounded', { timeout: 120_000 }, async () => {
  const origin = net.createServer((s) => {
    s.resume();
    void writeFast(s).catch(() => undefined);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const w = watchedNetwork();
  const e = await startEdge(app(7831, (origin.address() as net.AddressInfo).port), { net: w.net });
  try {
    const mem = sampler(w.conns);
    const c = net.connect(7831, '127.0.0.1');
    const got = await readSlowly(c);
    const grown = mem.stop();
    c.destroy();
    assert.equal(got, TOTAL, 'every byte reached the client');
    assert.equal(w.conns.length, 2);
    assert.ok(grown > 0, 'the slow reader made the proxy queue something');
    assert.ok(grown < BOUND, `a proxy socket queued ${grown} bytes while 50 MB went to a slow reader`);
    peaks.push(grown);
  } finally {
    await e.close();
    origin.close();
  }
});
