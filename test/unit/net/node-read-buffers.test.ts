/**
 * The real adapter's reused read buffers (src/net/node/network.ts, "reads without a fresh buffer per read"), on real
 * loopback sockets through the public API only. The contract under test (ports.ts, `ConnHandlers.data`): a data
 * handler may keep a chunk, or pass it to `write` and drop it; a buffer is read into again only when the chunk was
 * written whole with nothing left queued. Every oracle compares SHA-256 of what was sent with what was kept or
 * received, computed once the transfer is over, so a kept chunk overwritten by a later read is caught.
 * Ports: 0 only. Every wait is bounded by `within`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { createNodeNetwork } from '../../../src/net/node/network.ts';
import { splice } from '../../../src/net/splice.ts';
import type { Conn, TcpListener } from '../../../src/net/ports.ts';

const HOST = '127.0.0.1';
const KiB = 1024;
const MiB = 1024 * KiB;
/** Reads up to this size are copied out of the adapter's shared buffer (network.ts COPY_MAX). */
const SMALL = 4 * KiB;
/** Bound on any single wait in this file. */
const WAIT_MS = 10_000;

/** Rejects if `p` has not settled within `ms`: no wait in this file is unbounded. */
async function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function sha(chunks: Iterable<Uint8Array>): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

/** Small seeded PRNG (mulberry32) for chunk sizes, so a failing run can be replayed. */
function prng(seed: number): (lo: number, hi: number) => number {
  let a = seed >>> 0;
  return (lo, hi) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return lo + Math.floor(u * (hi - lo + 1));
  };
}

/** Kept chunks must not share memory: two overlapping views would mean a buffer was read into while still held. */
function assertDisjoint(chunks: readonly Uint8Array[]): void {
  const byBuffer = new Map<ArrayBufferLike, Array<[number, number]>>();
  for (const c of chunks) {
    if (c.byteLength === 0) continue;
    let ranges = byBuffer.get(c.buffer);
    if (!ranges) byBuffer.set(c.buffer, (ranges = []));
    ranges.push([c.byteOffset, c.byteOffset + c.byteLength]);
  }
  for (const ranges of byBuffer.values()) {
    ranges.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < ranges.length; i++) {
      assert.ok(ranges[i]![0] >= ranges[i - 1]![1], `two kept chunks share bytes [${ranges[i - 1]!.join(',')}) and [${ranges[i]!.join(',')})`);
    }
  }
}

/** Writes `data` in slices of `slice` bytes, waiting for `drain` whenever the socket asks to. */
async function writeAll(s: net.Socket, data: Uint8Array, slice: number): Promise<void> {
  for (let off = 0; off < data.length; off += slice) {
    if (!s.write(data.subarray(off, Math.min(off + slice, data.length)))) await within(once(s, 'drain'), 'client drain');
  }
}

async function rawConnect(port: number, opts: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  const s = net.connect({ host: HOST, port, allowHalfOpen: opts.allowHalfOpen ?? false, noDelay: true });
  await within(once(s, 'connect'), 'raw client connect');
  return s;
}

/** A raw socket's incoming bytes, with a promise for "at least n bytes arrived" and one for the peer's FIN. */
function collect(s: net.Socket): { chunks: Buffer[]; bytes: () => number; atLeast: (n: number) => Promise<void>; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let waiter: { n: number; res: () => void } | undefined;
  s.on('data', (d: Buffer) => {
    chunks.push(d);
    bytes += d.length;
    if (waiter && bytes >= waiter.n) {
      const w = waiter;
      waiter = undefined;
      w.res();
    }
  });
  return {
    chunks,
    bytes: () => bytes,
    atLeast: (n) => (bytes >= n ? Promise.resolve() : new Promise<void>((res) => (waiter = { n, res }))),
    ended: once(s, 'end').then(() => undefined),
  };
}

/**
 * An echo origin over the adapter: each chunk is written back whole and dropped (backpressure: pause until drain).
 * Records each chunk's length, and how often each 64 KiB read buffer was delivered (more than once = reused).
 */
async function startEcho(network: ReturnType<typeof createNodeNetwork>): Promise<{ listener: TcpListener; lens: number[]; deliveries: Map<ArrayBufferLike, number> }> {
  const lens: number[] = [];
  const deliveries = new Map<ArrayBufferLike, number>();
  const listener = await network.listenTcp({ host: HOST, port: 0 }, (conn) => {
    conn.setHandlers({
      data(c) {
        lens.push(c.length);
        if (c.buffer.byteLength === 64 * KiB) deliveries.set(c.buffer, (deliveries.get(c.buffer) ?? 0) + 1);
        if (!conn.write(c)) conn.pause();
      },
      drain: () => conn.resume(),
      end: () => conn.end(),
    });
  });
  return { listener, lens, deliveries };
}

/** Ping-pong of `count` small writes (1 .. SMALL − 1 bytes): each waits for its echo, so each server read is small. */
async function smallPingPong(client: net.Socket, rx: ReturnType<typeof collect>, sent: Buffer[], count: number, rnd: (lo: number, hi: number) => number): Promise<void> {
  let expected = rx.bytes();
  for (let i = 0; i < count; i++) {
    const b = randomBytes(rnd(1, SMALL - 1));
    sent.push(b);
    expected += b.length;
    client.write(b);
    await within(rx.atLeast(expected), `echo of small write ${i}`);
  }
}

test('an accepted Conn whose handler keeps every chunk receives exactly the 8 MiB sent, kept chunks never overwritten', async () => {
  const network = createNodeNetwork();
  const payload = randomBytes(8 * MiB);
  const kept: Uint8Array[] = [];
  let serverConn: Conn | undefined;
  let ended!: () => void;
  const end = new Promise<void>((r) => (ended = r));
  const listener = await network.listenTcp({ host: HOST, port: 0 }, (conn) => {
    serverConn = conn;
    conn.setHandlers({ data: (c) => kept.push(c), end: () => { conn.end(); ended(); } });
  });
  const client = await rawConnect(listener.address.port);
  try {
    // Small spaced writes (shared-buffer copies), bulk (owned buffers), small again (a small read may land in an
    // owned buffer), bulk again: every buffer transition of the reader while every chunk is kept.
    let off = 0;
    for (let i = 0; i < 16; i++, off += 100) {
      client.write(payload.subarray(off, off + 100));
      await delay(1);
    }
    await writeAll(client, payload.subarray(off, (off = 4 * MiB)), 256 * KiB);
    await delay(5);
    for (let i = 0; i < 16; i++, off += 333) {
      client.write(payload.subarray(off, off + 333));
      await delay(1);
    }
    await writeAll(client, payload.subarray(off), 1 * MiB);
    client.end();
    await within(end, 'server end');
    assert.ok(kept.some((c) => c.length > SMALL), 'bulk reads reached the handler as large chunks');
    assert.equal(kept.reduce((n, c) => n + c.length, 0), payload.length);
    assertDisjoint(kept);
    assert.equal(sha(kept), sha([payload]));
    assert.equal(serverConn?.bytesRead, payload.length);
  } finally {
    client.destroy();
    await listener.close();
  }
});

test('a dialled Conn whose handler keeps every chunk receives exactly the 8 MiB the origin sent', async () => {
  const network = createNodeNetwork();
  const payload = randomBytes(8 * MiB);
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    void writeAll(s, payload, 512 * KiB).then(() => s.end());
  });
  server.listen(0, HOST);
  await within(once(server, 'listening'), 'origin listening');
  const kept: Uint8Array[] = [];
  const conn = network.connectTcp({ host: HOST, port: (server.address() as net.AddressInfo).port });
  try {
    await within(new Promise<void>((res, rej) => conn.setHandlers({ data: (c) => kept.push(c), end: res, error: rej })), 'origin FIN');
    assert.ok(kept.some((c) => c.length > SMALL), 'bulk reads reached the handler as large chunks');
    assertDisjoint(kept);
    assert.equal(sha(kept), sha([payload]));
  } finally {
    conn.destroy();
    server.close();
  }
});

test('a splice into slow readers that keep pausing delivers 32 MiB up and 16 MiB down intact, and forwards both FINs', async () => {
  const network = createNodeNetwork();
  const up = randomBytes(32 * MiB);
  const down = randomBytes(16 * MiB);
  /** A raw socket's reader that pauses for `ms` after every `every` bytes: the sender meets backpressure often. */
  const slowReader = (s: net.Socket, every: number, ms: number): { hash: ReturnType<typeof createHash>; bytes: () => number; pauses: () => number } => {
    const hash = createHash('sha256');
    let bytes = 0;
    let since = 0;
    let pauses = 0;
    s.on('data', (d: Buffer) => {
      hash.update(d); // raw node:net chunks are fresh buffers: hashing on arrival is sound here
      bytes += d.length;
      since += d.length;
      if (since >= every) {
        since = 0;
        pauses++;
        s.pause();
        setTimeout(() => s.resume(), ms);
      }
    });
    return { hash, bytes: () => bytes, pauses: () => pauses };
  };

  // The sink (origin): reads slowly; sends half its bytes at once and the other half only after the client's FIN.
  let sinkResult: Promise<{ digest: string; bytes: number; pauses: number }> | undefined;
  const sink = net.createServer({ allowHalfOpen: true }, (s) => {
    const r = slowReader(s, 512 * KiB, 3);
    sinkResult = (async () => {
      await writeAll(s, down.subarray(0, 8 * MiB), 256 * KiB);
      await within(once(s, 'end'), 'client FIN at the sink');
      const res = { digest: r.hash.digest('hex'), bytes: r.bytes(), pauses: r.pauses() };
      await writeAll(s, down.subarray(8 * MiB), 256 * KiB);
      s.end();
      return res;
    })();
  });
  sink.listen(0, HOST);
  await within(once(sink, 'listening'), 'sink listening');

  const seen = { c2sEnd: 0, s2cEnd: 0, errors: [] as string[] };
  let closed!: () => void;
  const allClosed = new Promise<void>((r) => (closed = r));
  const listener = await network.listenTcp({ host: HOST, port: 0 }, (downConn) => {
    const upConn = network.connectTcp({ host: HOST, port: (sink.address() as net.AddressInfo).port });
    splice(downConn, upConn, { clock: network.clock, idleTimeoutMs: 0 }, {
      c2sEnd: () => seen.c2sEnd++,
      s2cEnd: () => seen.s2cEnd++,
      error: (side, e) => seen.errors.push(`${side}:${e.code}`),
      idle: () => seen.errors.push('idle'),
      closed: () => closed(),
    });
  });

  const client = await rawConnect(listener.address.port, { allowHalfOpen: true });
  try {
    const rx = slowReader(client, 256 * KiB, 2);
    const clientFin = once(client, 'end');
    await within(writeAll(client, up, 1 * MiB), 'client upload');
    client.end();
    const atSink = await within((async () => {
      while (!sinkResult) await delay(1);
      return sinkResult;
    })(), 'sink result');
    assert.equal(atSink.bytes, up.length);
    assert.equal(atSink.digest, sha([up]), 'client → origin bytes intact');
    await within(clientFin, 'origin FIN at the client');
    assert.equal(rx.bytes(), down.length);
    assert.equal(rx.hash.digest('hex'), sha([down]), 'origin → client bytes intact');
    assert.ok(atSink.pauses > 0 && rx.pauses() > 0, 'both readers paused');
    await within(allClosed, 'splice closed');
    assert.deepEqual(seen, { c2sEnd: 1, s2cEnd: 1, errors: [] });
  } finally {
    client.destroy();
    await listener.close();
    sink.close();
  }
});

test('an echo handler that writes each chunk whole and drops it returns many small chunks intact', async () => {
  const network = createNodeNetwork();
  const echo = await startEcho(network);
  const client = await rawConnect(echo.listener.address.port);
  try {
    const rx = collect(client);
    const sent: Buffer[] = [];
    await smallPingPong(client, rx, sent, 400, prng(1));
    client.end();
    await within(rx.ended, 'echo FIN');
    assert.ok(echo.lens.every((n) => n < SMALL), 'every server read was small');
    assert.equal(sha(rx.chunks), sha(sent));
  } finally {
    client.destroy();
    await echo.listener.close();
  }
});

test('an echo handler that writes each chunk whole and drops it returns 16 MiB of large chunks intact', async () => {
  const network = createNodeNetwork();
  const echo = await startEcho(network);
  const client = await rawConnect(echo.listener.address.port);
  try {
    const rx = collect(client);
    const payload = randomBytes(16 * MiB);
    await within(writeAll(client, payload, 1 * MiB), 'upload');
    client.end();
    await within(rx.ended, 'echo FIN');
    assert.ok(echo.lens.some((n) => n > SMALL), 'bulk reads reached the handler as large chunks');
    assert.ok([...echo.deliveries.values()].some((n) => n > 1), 'a read buffer was reused after a flushed write');
    assert.equal(rx.bytes(), payload.length);
    assert.equal(sha(rx.chunks), sha([payload]));
  } finally {
    client.destroy();
    await echo.listener.close();
  }
});

test('an echo handler that ignores backpressure returns 8 MiB intact to a client that reads late (queued chunks are never read into)', async () => {
  // Writing and dropping is allowed without pausing: the writes then queue in the socket, which holds the chunks.
  // A handler that pauses on `false` hides a reuse of a queued buffer (no read happens before `drain`); this one does not.
  const network = createNodeNetwork();
  let queuedWrites = 0;
  const lens: number[] = [];
  const listener = await network.listenTcp({ host: HOST, port: 0 }, (conn) => {
    conn.setHandlers({
      data(c) {
        lens.push(c.length);
        if (!conn.write(c)) queuedWrites++;
      },
      end: () => conn.end(),
    });
  });
  const client = await rawConnect(listener.address.port);
  try {
    const payload = randomBytes(8 * MiB);
    const rx = collect(client);
    // The client reads nothing until its upload is done, so the server's echo writes pile up in its socket.
    client.pause();
    await within(writeAll(client, payload, 256 * KiB), 'upload');
    client.end();
    client.resume();
    await within(rx.ended, 'echo FIN');
    assert.ok(queuedWrites > 0, 'some echo writes were queued');
    assert.ok(lens.some((n) => n > SMALL), 'bulk reads reached the handler as large chunks');
    assert.equal(sha(rx.chunks), sha([payload]));
  } finally {
    client.destroy();
    await listener.close();
  }
});

test('an echo handler returns intact a stream that alternates small ping-pong writes and bulk bursts', async () => {
  const network = createNodeNetwork();
  const echo = await startEcho(network);
  const client = await rawConnect(echo.listener.address.port);
  const rnd = prng(7);
  try {
    const rx = collect(client);
    const sent: Buffer[] = [];
    for (let round = 0; round < 4; round++) {
      await smallPingPong(client, rx, sent, 40, rnd);
      const bulk = randomBytes(rnd(1 * MiB, 3 * MiB));
      sent.push(bulk);
      await within(writeAll(client, bulk, rnd(64 * KiB, 512 * KiB)), 'bulk upload');
      await within(rx.atLeast(sent.reduce((n, b) => n + b.length, 0)), 'bulk echo');
    }
    await smallPingPong(client, rx, sent, 40, rnd);
    client.end();
    await within(rx.ended, 'echo FIN');
    const firstLarge = echo.lens.findIndex((n) => n > SMALL);
    assert.ok(firstLarge >= 0 && echo.lens.slice(firstLarge).some((n) => n <= SMALL), 'small reads followed large ones');
    assert.equal(sha(rx.chunks), sha(sent));
  } finally {
    client.destroy();
    await echo.listener.close();
  }
});

test('chunks kept by a handler that writes every other chunk stay intact while the written ones echo intact', async () => {
  const network = createNodeNetwork();
  const lens: number[] = [];
  const kept: Uint8Array[] = [];
  /** Kept chunks that landed in a buffer an earlier written chunk had been read into (the reuse under test). */
  let keptInReused = 0;
  const written = new Set<ArrayBufferLike>();
  const listener = await network.listenTcp({ host: HOST, port: 0 }, (conn) => {
    conn.setHandlers({
      data(c) {
        const i = lens.push(c.length) - 1;
        if (i % 2 === 0) {
          written.add(c.buffer);
          if (!conn.write(c)) conn.pause();
        } else {
          if (written.has(c.buffer)) keptInReused++;
          kept.push(c);
        }
      },
      drain: () => conn.resume(),
      end: () => conn.end(),
    });
  });
  const client = await rawConnect(listener.address.port);
  const rnd = prng(42);
  try {
    const rx = collect(client);
    const sent: Buffer[] = [];
    // Bulk (large reads), then spaced small writes (small reads, some into an owned buffer), then bulk again.
    for (let round = 0; round < 3; round++) {
      const bulk = randomBytes(3 * MiB);
      sent.push(bulk);
      await within(writeAll(client, bulk, rnd(128 * KiB, 1 * MiB)), 'bulk upload');
      for (let i = 0; i < 20; i++) {
        const b = randomBytes(rnd(1, SMALL - 1));
        sent.push(b);
        client.write(b);
        await delay(1);
      }
    }
    client.end();
    await within(rx.ended, 'echo FIN');
    // Rebuild the stream: even chunks from the echo (in order), odd chunks from the handler's keepings.
    const echoed = Buffer.concat(rx.chunks);
    const parts: Uint8Array[] = [];
    let pos = 0;
    let k = 0;
    for (let i = 0; i < lens.length; i++) {
      if (i % 2 === 0) {
        parts.push(echoed.subarray(pos, pos + lens[i]!));
        pos += lens[i]!;
      } else parts.push(kept[k++]!);
    }
    assert.equal(pos, echoed.length, 'the echo carried exactly the written chunks');
    assert.ok(lens.some((n) => n > SMALL), 'bulk reads reached the handler as large chunks');
    assert.ok(keptInReused > 0, 'some kept chunks were read into a buffer reused after a flushed write');
    assertDisjoint(kept);
    assert.equal(sha(parts), sha(sent));
  } finally {
    client.destroy();
    await listener.close();
  }
});

test('concurrent keeping and echoing connections do not corrupt each other through the shared and spare buffers', async () => {
  const network = createNodeNetwork();
  const echo = await startEcho(network);
  const kept: Uint8Array[][] = [[], []];
  const ends: Array<Promise<void>> = [];
  const keeper = await network.listenTcp({ host: HOST, port: 0 }, (conn) => {
    const mine = kept[ends.length]!;
    ends.push(new Promise<void>((res) => conn.setHandlers({ data: (c) => mine.push(c), end: () => { conn.end(); res(); } })));
  });
  const payloads = [randomBytes(6 * MiB), randomBytes(6 * MiB), randomBytes(6 * MiB), randomBytes(6 * MiB)];
  const sockets: net.Socket[] = [];
  try {
    // Two keepers, two echoes, all at once: echo connections that close hand their buffers to the spares, which
    // the keepers (taking a fresh buffer after every kept large read) then draw from.
    const k0 = await rawConnect(keeper.address.port);
    const k1 = await rawConnect(keeper.address.port);
    const e0 = await rawConnect(echo.listener.address.port);
    const e1 = await rawConnect(echo.listener.address.port);
    sockets.push(k0, k1, e0, e1);
    const rx = [collect(e0), collect(e1)];
    const echoes = [e0, e1].map(async (s, i) => {
      await writeAll(s, payloads[2 + i]!, 256 * KiB);
      s.end();
      await within(rx[i]!.ended, `echo ${i} FIN`);
    });
    const keeps = [k0, k1].map(async (s, i) => {
      await writeAll(s, payloads[i]!.subarray(0, 3 * MiB), 128 * KiB);
      await delay(20);
      await writeAll(s, payloads[i]!.subarray(3 * MiB), 512 * KiB);
      s.end();
    });
    await within(Promise.all([...echoes, ...keeps]), 'all transfers');
    await within(Promise.all(ends), 'keepers end');
    for (let i = 0; i < 2; i++) {
      assert.equal(sha(rx[i]!.chunks), sha([payloads[2 + i]!]), `echo ${i} intact`);
      assertDisjoint(kept[i]!);
    }
    // Accept order need not follow connect order: match the keepers' streams as a set.
    assert.deepEqual(kept.map((k) => sha(k)).sort(), [sha([payloads[0]!]), sha([payloads[1]!])].sort(), 'keepers intact');
  } finally {
    for (const s of sockets) s.destroy();
    await keeper.close();
    await echo.listener.close();
  }
});

test("an accepted Conn's local address is the one the client connected to, for a one-address and a wildcard listener", async () => {
  const network = createNodeNetwork();
  // The one-address listener knows its connections' local side without a getsockname(); the wildcard one asks.
  for (const [host, target] of [['127.0.0.1', '127.0.0.1'], ['0.0.0.0', '127.0.0.2']] as const) {
    let accepted!: (c: Conn) => void;
    const got = new Promise<Conn>((r) => (accepted = r));
    const listener = await network.listenTcp({ host, port: 0 }, (c) => accepted(c));
    const client = net.connect({ host: target, port: listener.address.port });
    client.on('error', () => {});
    try {
      const conn = await within(got, `an accepted connection on ${host}`);
      assert.deepEqual(conn.local, { address: target, port: listener.address.port, family: 'IPv4' });
      assert.equal(conn.remote.port, (await within(once(client, 'connect').then(() => client.localPort), 'the client connect')));
      conn.destroy();
    } finally {
      client.destroy();
      await listener.close();
    }
  }
});
