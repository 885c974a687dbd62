/**
 * The two real Conn implementations behind createNodeNetwork (`sockets: 'handles'`, HandleConn on the runtime's TCP
 * handles, the default; `sockets: 'net'`, NodeConn on net.Socket) keep the same contract (src/net/ports.ts): every
 * case below runs on both and expects the same handler calls in the same order. Loopback, port 0, every wait
 * bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createNodeNetwork } from '../../../src/net/node/network.ts';
import { HandleConn, handleBindings } from '../../../src/net/node/handle-conn.ts';
import { NodeConn } from '../../../src/net/node/node-conn.ts';
import type { Conn, NetError, TcpListener } from '../../../src/net/ports.ts';
import { NamedWatcher } from '../../helpers/method-handlers.ts';

const HOST = '127.0.0.1';
const WAIT_MS = 10_000;

async function within<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), WAIT_MS)))]);
  } finally {
    clearTimeout(t);
  }
}

/** Records a Conn's handler calls as short strings; `closed` resolves on `close`. */
function record(conn: Conn, opts: { onData?: (c: Uint8Array) => void } = {}): { log: string[]; bytes: Buffer[]; errors: NetError[]; closed: Promise<void> } {
  const log: string[] = [];
  const bytes: Buffer[] = [];
  const errors: NetError[] = [];
  let done!: () => void;
  const closed = new Promise<void>((r) => (done = r));
  conn.setHandlers({
    connect: () => log.push('connect'),
    data: (c) => {
      if (log.at(-1) !== 'data') log.push('data');
      bytes.push(Buffer.from(c));
      opts.onData?.(c);
    },
    drain: () => log.push('drain'),
    end: () => log.push('end'),
    error: (e) => {
      log.push(`error ${e.code}`);
      errors.push(e);
    },
    close: (hadError) => {
      log.push(`close ${hadError}`);
      done();
    },
  });
  return { log, bytes, errors, closed };
}

/** A port with nothing listening (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, HOST);
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

for (const sockets of ['handles', 'net'] as const) {
  const skip = sockets === 'handles' && handleBindings === undefined ? 'this runtime has no usable TCP handles' : false;
  const network = (): ReturnType<typeof createNodeNetwork> => createNodeNetwork({ sockets });
  const impl = sockets === 'handles' ? HandleConn : NodeConn;

  test(`${sockets}: a refused dial reports error (code, syscall, address, port), then close(true)`, { skip }, async () => {
    const port = await freePort();
    const conn = network().connectTcp({ host: HOST, port });
    assert.ok(conn instanceof impl);
    const r = record(conn);
    await within(r.closed, 'close');
    assert.deepEqual(r.log, ['error ECONNREFUSED', 'close true']);
    assert.equal(r.errors[0]!.syscall, 'connect');
    assert.equal(r.errors[0]!.address, HOST);
    assert.equal(r.errors[0]!.port, port);
    assert.equal(conn.closed, true);
  });

  for (const [host, localAddress] of [['::1', undefined], ['::1', '::1'], [HOST, HOST]] as const) {
    test(`${sockets}: dials ${host}${localAddress === undefined ? '' : ` from ${localAddress}`} and echoes`, { skip }, async (t) => {
      const server = net.createServer((c) => c.pipe(c));
      try {
        server.listen(0, host);
        await once(server, 'listening');
      } catch (e) {
        t.skip(`no ${host} here (${(e as Error).message})`);
        return;
      }
      try {
        const conn = network().connectTcp({ host, port: (server.address() as net.AddressInfo).port, ...(localAddress === undefined ? {} : { localAddress }) });
        assert.ok(conn instanceof impl);
        const r = record(conn, { onData: () => conn.end() });
        conn.write(Buffer.from('over v6?'));
        await within(r.closed, 'close');
        assert.deepEqual(r.log, ['connect', 'data', 'end', 'close false']);
        assert.equal(Buffer.concat(r.bytes).toString(), 'over v6?');
        assert.equal(conn.remote.address, host);
      } finally {
        server.close();
      }
    });
  }

  test(`${sockets}: handlers given as a class instance are called as its methods; a later set replaces only what it names`, { skip }, async () => {
    const server = net.createServer((c) => c.end('hello'));
    server.listen(0, HOST);
    await once(server, 'listening');
    try {
      const log: string[] = [];
      let closed!: () => void;
      const done = new Promise<void>((r) => (closed = r));
      const conn = network().connectTcp({ host: HOST, port: (server.address() as net.AddressInfo).port });
      conn.setHandlers(new NamedWatcher('w', log, closed)); // callbacks on the prototype: `this` must be the object given
      const other = { name: 'o', end(this: { name: string }) { log.push(`${this.name}.end`); conn.end(); } };
      conn.setHandlers(other);
      await within(done, 'close');
      assert.deepEqual(log, ['w.connect', 'w.data hello', 'o.end', 'w.close false']);
    } finally {
      server.close();
    }
  });

  for (const when of ['inside connect', 'well after connect'] as const) {
    test(`${sockets}: a dialled Conn resumed ${when} gets every byte a server sent at once, in order, then end`, { skip }, async () => {
      // HandleConn registers reading while dialling (one epoll registration fewer); nothing may be read, and so lost,
      // before the owner asks for data, however late that is.
      const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => i & 0xff));
      const server = net.createServer((c) => c.end(payload));
      server.listen(0, HOST);
      await once(server, 'listening');
      try {
        const conn = network().connectTcp({ host: HOST, port: (server.address() as net.AddressInfo).port });
        const log: string[] = [];
        const bytes: Buffer[] = [];
        let closed!: () => void;
        const done = new Promise<void>((r) => (closed = r));
        const handlers = {
          data: (c: Uint8Array) => bytes.push(Buffer.from(c)),
          end: () => log.push('end'),
          error: (e: NetError) => log.push(`error ${e.code}`),
          close: (hadError: boolean) => {
            log.push(`close ${hadError}`);
            closed();
          },
        };
        let connected!: () => void;
        const up = new Promise<void>((r) => (connected = r));
        conn.setHandlers({
          connect: () => {
            log.push('connect');
            if (when === 'inside connect') conn.setHandlers(handlers);
            connected();
          },
        });
        await within(up, 'connect');
        if (when === 'well after connect') {
          await new Promise((r) => setTimeout(r, 100)); // the payload and the FIN wait in the kernel meanwhile
          assert.equal(conn.bytesRead, 0, 'nothing read before the owner asked');
          conn.setHandlers(handlers);
        }
        conn.end();
        await within(done, 'close');
        assert.deepEqual(log, ['connect', 'end', 'close false']);
        assert.deepEqual(Buffer.concat(bytes), payload);
      } finally {
        server.close();
      }
    });
  }

  test(`${sockets}: a chunk whose write the kernel could not take at once stays alive until written (GC between)`, { skip }, async () => {
    // The writer drops every chunk after write(); the reader does not read until all are queued. A write that waits
    // in libuv's queue must keep its chunk's memory alive (net.Socket keeps `req.buffer`): otherwise a GC frees it
    // and the bytes sent are whatever took that memory next (seen as corrupted splices under load).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const CHUNK = 64 * 1024;
    const COUNT = 192;
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let gotBytes = 0;
    let reader: net.Socket | undefined;
    const done = new Promise<void>((resolve) => {
      const server = net.createServer((c) => {
        reader = c;
        c.pause();
        c.on('data', (d: Buffer) => {
          got.update(d);
          gotBytes += d.length;
        });
        c.on('end', () => {
          server.close();
          resolve();
        });
      });
      server.listen(0, HOST, () => {
        const conn = network().connectTcp({ host: HOST, port: (server.address() as net.AddressInfo).port });
        conn.setHandlers({
          connect: () => {
            for (let i = 0; i < COUNT; i++) {
              const b = Buffer.allocUnsafeSlow(CHUNK).fill(i & 0xff);
              sent.update(b);
              conn.write(b);
            }
            conn.end();
          },
        });
      });
    });
    await within(
      (async () => {
        while (reader === undefined) await new Promise((r) => setTimeout(r, 5));
      })(),
      'the reader',
    );
    await new Promise((r) => setTimeout(r, 50));
    // Free what nothing references, and reuse that memory with other bytes, before anything more is sent.
    for (let round = 0; round < 3; round++) {
      gc();
      const junk = Array.from({ length: COUNT }, () => Buffer.allocUnsafeSlow(CHUNK).fill(0xee));
      assert.equal(junk.length, COUNT);
    }
    reader!.resume();
    await within(done, 'everything read');
    assert.equal(gotBytes, CHUNK * COUNT);
    assert.equal(got.digest('hex'), sent.digest('hex'), 'the bytes read are the bytes written');
  });

  test(`${sockets}: writes and end() made while dialling go out once connected; the echo and FIN come back`, { skip }, async () => {
    const origin = net.createServer({ allowHalfOpen: true }, (c) => c.pipe(c)).listen(0, HOST);
    await once(origin, 'listening');
    try {
      const port = (origin.address() as net.AddressInfo).port;
      const conn = network().connectTcp({ host: HOST, port });
      const r = record(conn);
      let local = '';
      conn.setHandlers({
        connect: () => {
          r.log.push('connect');
          local = conn.local.address;
        },
      });
      assert.equal(conn.write(Buffer.from('hello ')), true);
      assert.equal(conn.write(Buffer.from('world')), true);
      conn.end();
      conn.resume();
      await within(r.closed, 'close');
      assert.deepEqual(r.log, ['connect', 'data', 'end', 'close false']);
      assert.equal(Buffer.concat(r.bytes).toString(), 'hello world');
      assert.equal(conn.bytesWritten, 11);
      assert.equal(conn.bytesRead, 11);
      assert.equal(conn.remote.port, port);
      assert.equal(local, HOST);
    } finally {
      origin.close();
    }
  });

  test(`${sockets}: an accepted Conn stays paused until resumed, relays a half-close, and closes once both sides ended`, { skip }, async () => {
    const net0 = network();
    const accepted: Conn[] = [];
    const listener: TcpListener = await net0.listenTcp({ host: HOST, port: 0 }, (c) => accepted.push(c));
    try {
      const client = net.connect({ host: HOST, port: listener.address.port, allowHalfOpen: true });
      await once(client, 'connect');
      client.end('abc');
      const got: Buffer[] = [];
      client.on('data', (d: Buffer) => got.push(d));
      const clientEnded = once(client, 'end');
      for (let i = 0; i < 200 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      const conn = accepted[0]!;
      assert.ok(conn instanceof impl);
      assert.equal(conn.remote.port, client.localPort);
      assert.equal(conn.local.port, listener.address.port);
      conn.pause();
      const r = record(conn);
      await new Promise((res) => setTimeout(res, 50));
      assert.equal(r.log.length, 0, 'nothing is read while paused');
      conn.resume();
      for (let i = 0; i < 200 && !r.log.includes('end'); i++) await new Promise((res) => setTimeout(res, 10));
      assert.deepEqual(r.log, ['data', 'end']);
      assert.equal(Buffer.concat(r.bytes).toString(), 'abc');
      conn.write(Buffer.from('xyz'));
      conn.end();
      await within(clientEnded, 'client end');
      await within(r.closed, 'close');
      assert.deepEqual(r.log, ['data', 'end', 'close false']);
      assert.equal(Buffer.concat(got).toString(), 'xyz');
      client.destroy();
    } finally {
      await listener.close();
    }
  });

  test(`${sockets}: Conns destroyed in one turn each get close(false) once, after destroy() returns; each peer sees its FIN`, { skip }, async () => {
    const server = net.createServer((c) => c.resume());
    server.listen(0, HOST);
    await once(server, 'listening');
    const peers: net.Socket[] = [];
    server.on('connection', (c) => peers.push(c));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const conns = Array.from({ length: 20 }, () => network().connectTcp({ host: HOST, port }));
      const recs = conns.map((c) => record(c));
      const connected = (): boolean => recs.every((r) => r.log.includes('connect')) && peers.length === conns.length;
      for (let i = 0; i < 500 && !connected(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(connected(), 'every Conn connected and accepted');
      const peerEnds = peers.map((p) => once(p, 'end'));
      for (const c of conns) c.destroy();
      assert.ok(recs.every((r) => !r.log.includes('close false')), 'close is never told inside destroy()');
      await within(Promise.all(recs.map((r) => r.closed)), 'close of every Conn');
      await within(Promise.all(peerEnds), 'every peer sees the FIN');
      await new Promise((r) => setImmediate(r));
      for (const [i, r] of recs.entries()) {
        assert.deepEqual(r.log, ['connect', 'close false'], `Conn ${i}`);
        assert.equal(conns[i]!.closed, true);
      }
    } finally {
      for (const p of peers) p.destroy();
      server.close();
    }
  });

  test(`${sockets}: reset() closes with RST (the peer sees ECONNRESET); a peer's reset is error ECONNRESET, then close(true)`, { skip }, async () => {
    const net0 = network();
    const accepted: Conn[] = [];
    const listener = await net0.listenTcp({ host: HOST, port: 0 }, (c) => accepted.push(c));
    try {
      // Our reset.
      const a = net.connect({ host: HOST, port: listener.address.port });
      await once(a, 'connect');
      for (let i = 0; i < 200 && accepted.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      const ra = record(accepted[0]!);
      const aErr = once(a, 'error');
      accepted[0]!.reset();
      const [e] = (await within(aErr, 'client error')) as [NodeJS.ErrnoException];
      assert.equal(e.code, 'ECONNRESET');
      await within(ra.closed, 'close');
      assert.deepEqual(ra.log, ['close false']);
      // The peer's reset.
      const b = net.connect({ host: HOST, port: listener.address.port });
      await once(b, 'connect');
      for (let i = 0; i < 200 && accepted.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      const rb = record(accepted[1]!);
      accepted[1]!.resume();
      b.resetAndDestroy();
      await within(rb.closed, 'close');
      assert.deepEqual(rb.log, ['error ECONNRESET', 'close true']);
      assert.equal(rb.errors[0]!.syscall, 'read');
    } finally {
      await listener.close();
    }
  });

  test(`${sockets}: write() returns false once 16 KiB or more wait, and drain follows when the peer has read it all`, { skip }, async () => {
    const net0 = network();
    const accepted: Conn[] = [];
    const listener = await net0.listenTcp({ host: HOST, port: 0 }, (c) => accepted.push(c));
    try {
      const client = net.connect({ host: HOST, port: listener.address.port });
      await once(client, 'connect');
      client.pause();
      for (let i = 0; i < 200 && accepted.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      const conn = accepted[0]!;
      const r = record(conn);
      const chunk = Buffer.alloc(256 * 1024, 7);
      let written = 0;
      let ok = true;
      // Bounded: the kernel's buffers hold a few MiB at most on loopback.
      for (let i = 0; i < 400 && ok; i++) {
        ok = conn.write(chunk);
        written += chunk.length;
      }
      assert.equal(ok, false, 'a peer that reads nothing makes write() return false');
      const drained = new Promise<void>((res) => conn.setHandlers({ drain: () => res() }));
      let received = 0;
      client.on('data', (d: Buffer) => (received += d.length));
      client.resume();
      await within(drained, 'drain');
      for (let i = 0; i < 500 && received < written; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(received, written);
      assert.equal(conn.bytesWritten, written);
      assert.deepEqual(r.log, []);
      conn.destroy();
      await within(r.closed, 'close');
      assert.deepEqual(r.log, ['close false']);
      client.destroy();
    } finally {
      await listener.close();
    }
  });
}
