import test from 'node:test';
import assert from 'node:assert/strict';
import { type Conn } from '../../../src/net/ports.ts';
import { NamedWatcher } from '../../helpers/method-handlers.ts';
import { assertNoLeaks, bytes, closeListeners, echo, listen, record, settle, world } from './harness.ts';

test('an echo round trip delivers the bytes in order, then end and close(false) on both sides', async () => {
  const { sim, client, server } = world({ defaultLink: { latencyMs: 2 } });
  let srv: ReturnType<typeof record> | undefined;
  const accepted = await listen(server, 7, (c) => {
    srv = record(c, sim, { onData: (d) => c.write(d), onEnd: () => c.end() });
  });
  const payload = bytes(100_000);
  const conn = client.connectTcp({ host: '10.0.0.2', port: 7 });
  const r = record(conn, sim, {
    onConnect: () => {
      conn.write(payload);
      conn.end();
    },
  });
  settle(sim);
  assert.deepEqual(r.received(), Buffer.from(payload));
  assert.deepEqual(
    r.events.filter((e) => e !== 'data'),
    ['connect', 'drain', 'end', 'close:false'],
    '100 KB is more than the high-water mark: write returned false, then drain',
  );
  assert.deepEqual(srv!.events.filter((e) => e !== 'data' && e !== 'drain'), ['end', 'close:false']);
  assert.equal(conn.bytesWritten, 100_000);
  assert.equal(conn.bytesRead, 100_000);
  assert.equal(accepted[0]!.bytesRead, 100_000);
  assert.equal(accepted[0]!.closed, true);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('after the client half-closes, the server can still send, and both close once the server ends too', async () => {
  const { sim, client, server } = world();
  let srv: Conn | undefined;
  await listen(server, 80, (c) => {
    srv = c;
    c.setHandlers({ data: () => {}, end: () => c.write(Buffer.from('late reply')) });
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim, { onConnect: () => conn.end() });
  settle(sim);
  assert.equal(r.received().toString(), 'late reply');
  assert.deepEqual(r.events, ['connect', 'data'], 'the client stays open: its peer has not ended');
  assert.equal(conn.closed, false);
  srv!.end();
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'data', 'end', 'close:false']);
  assert.equal(srv!.closed, true);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('after the server half-closes, the client can still send until it ends', async () => {
  const { sim, client, server } = world();
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => {
    srv = record(c, sim);
    c.end();
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim, { onEnd: () => conn.write(Buffer.from('after your FIN')) });
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'end']);
  assert.equal(srv!.received().toString(), 'after your FIN');
  conn.end();
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'end', 'close:false']);
  assert.deepEqual(srv!.events, ['data', 'end', 'close:false']);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('reset gives the peer ECONNRESET (read) then close(true), and the resetting side close(false)', async () => {
  const { sim, client, server } = world();
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => (srv = record(c, sim)));
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim, {
    onConnect: () => {
      conn.write(Buffer.from('bytes before the reset still arrive'));
      conn.reset();
    },
  });
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'close:false']);
  assert.deepEqual(srv!.events, ['data', 'error:ECONNRESET', 'close:true']);
  assert.equal(srv!.errors[0]!.syscall, 'read');
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('writing to a peer that destroyed its socket: the first write is accepted, the next fails with EPIPE', async () => {
  const { sim, client, server } = world({ defaultLink: { latencyMs: 1 } });
  await listen(server, 80, (c) => c.destroy());
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const writes: boolean[] = [];
  const r = record(conn, sim, { onEnd: () => writes.push(conn.write(Buffer.from('a'))) });
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'end'], 'the RST does not surface while nothing is written');
  writes.push(conn.write(Buffer.from('b')));
  assert.deepEqual(writes, [true, false]);
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'end', 'error:EPIPE', 'close:true']);
  assert.equal(r.errors[0]!.syscall, 'write');
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('writing after end fails with ERR_STREAM_WRITE_AFTER_END then close(true); the peer still sees end', async () => {
  const { sim, client, server } = world();
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => (srv = record(c, sim)));
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  let ret: boolean | undefined;
  const r = record(conn, sim, {
    onConnect: () => {
      conn.end();
      ret = conn.write(Buffer.from('x'));
    },
  });
  settle(sim);
  assert.equal(ret, false);
  assert.deepEqual(r.events, ['connect', 'error:ERR_STREAM_WRITE_AFTER_END', 'close:true']);
  assert.deepEqual(srv!.events, ['end']);
});

test('writing after destroy returns false and raises nothing', async () => {
  const { sim, client, server } = world();
  await listen(server, 80, echo);
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  let ret: boolean | undefined;
  const r = record(conn, sim, {
    onConnect: () => {
      conn.destroy();
      ret = conn.write(Buffer.from('x'));
    },
  });
  settle(sim);
  assert.equal(ret, false);
  assert.deepEqual(r.events, ['connect', 'close:false']);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('backpressure: a paused reader fills its window, write returns false, and drain comes after resume', async () => {
  const { sim, client, server } = world();
  let srv: Conn | undefined;
  let srvRec: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => {
    srv = c;
    srvRec = record(c, sim);
    c.pause();
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const chunk = bytes(16_384);
  let written = 0;
  let blocked = false;
  const pumpWrites = (): void => {
    for (let i = 0; i < 1_000; i++) {
      written += chunk.length;
      if (!conn.write(chunk)) {
        blocked = true;
        return;
      }
    }
  };
  const r = record(conn, sim, {
    onConnect: pumpWrites,
    onDrain: () => {
      blocked = false;
      if (written < 400_000) pumpWrites();
      else conn.end();
    },
  });
  settle(sim);
  assert.equal(blocked, true, 'the writer is stuck behind the paused reader');
  const stuckAt = written;
  assert.ok(stuckAt < 200_000, `only window + send buffer + high-water mark fit: ${stuckAt}`);
  const srvStat = sim.netstat().tcp.find((c) => c.host === 'server')!;
  assert.equal(srvStat.recvQueue, 65_536, 'the receive window is full');
  assert.deepEqual(srvRec!.events, []);
  srv!.resume();
  settle(sim);
  assert.ok(r.events.includes('drain'));
  assert.ok(written >= 400_000);
  assert.equal(srvRec!.received().length, written);
  assert.deepEqual(srvRec!.events, ['data', 'end']);
});

test('write returns false for 20 KB queued before connect, as Node does, and drain follows the connect', async () => {
  const { sim, client, server } = world();
  await listen(server, 80, (c) => c.setHandlers({ data: () => {} }));
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  assert.equal(conn.write(bytes(20_000)), false);
  assert.equal(conn.write(bytes(100)), false);
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'drain']);
  const conn2 = client.connectTcp({ host: '10.0.0.2', port: 80 });
  assert.equal(conn2.write(bytes(100)), true);
});

test('a slicer on the link delivers writes in small odd pieces that concatenate to the original', async () => {
  const { sim, client, server } = world();
  sim.link('client', 'server', { slicer: { minBytes: 1, maxBytes: 7 } });
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => (srv = record(c, sim, { onEnd: () => c.end() })));
  const payload = bytes(3_000, 3);
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  record(conn, sim, {
    onConnect: () => {
      conn.write(payload.subarray(0, 1_000));
      conn.write(payload.subarray(1_000));
      conn.end();
    },
  });
  settle(sim);
  assert.deepEqual(srv!.received(), Buffer.from(payload));
  assert.ok(srv!.chunks.length >= 3_000 / 7);
  assert.ok(srv!.chunks.every((c) => c.length >= 1 && c.length <= 7));
  assert.ok(new Set(srv!.chunks.map((c) => c.length)).size > 3, 'sizes vary');
});

test('destroying a socket with more unread data than Node buffers sends RST: the peer gets ECONNRESET', async () => {
  const { sim, client, server } = world();
  let srv: Conn | undefined;
  await listen(server, 80, (c) => {
    srv = c;
    c.pause();
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim, { onConnect: () => conn.write(bytes(40_000)) });
  settle(sim);
  srv!.destroy();
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'error:ECONNRESET', 'close:true']);
});

test('destroying a never-resumed socket with unread data sends RST, as Node does (it read nothing): the peer gets ECONNRESET', async () => {
  const { sim, client, server } = world();
  let srv: Conn | undefined;
  await listen(server, 80, (c) => {
    srv = c;
    c.pause();
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim, { onConnect: () => conn.write(bytes(4_000)) });
  settle(sim);
  srv!.destroy();
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'error:ECONNRESET', 'close:true']);
  await closeListeners(sim);
  assertNoLeaks(sim);
});

test('without a data handler bytes wait in the buffer; resume() makes them flow and end follow', async () => {
  const { sim, client, server } = world();
  let srv: Conn | undefined;
  const seen: string[] = [];
  await listen(server, 80, (c) => {
    srv = c;
    c.setHandlers({ end: () => seen.push('end') });
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  conn.setHandlers({
    connect: () => {
      conn.write(Buffer.from('hello'));
      conn.end();
    },
  });
  settle(sim);
  assert.equal(seen.length, 0, 'a stream that is not flowing never ends');
  assert.equal(sim.netstat().tcp.find((c) => c.host === 'server')!.recvQueue, 5);
  let data = '';
  srv!.setHandlers({ data: (d) => (data += Buffer.from(d).toString()), end: () => seen.push('end') });
  assert.equal(data, '', 'data does not arrive synchronously inside setHandlers');
  settle(sim);
  assert.equal(data, 'hello');
  assert.deepEqual(seen, ['end']);
});

test('callbacks never fire inside the call that caused them', async () => {
  const { sim, client, server } = world();
  await listen(server, 80, echo);
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim);
  settle(sim);
  conn.end();
  conn.write(Buffer.from('x')); // error path
  assert.deepEqual(r.events, ['connect'], 'nothing synchronous');
  settle(sim);
  assert.deepEqual(r.events, ['connect', 'error:ERR_STREAM_WRITE_AFTER_END', 'close:true']);
});

test('a lossy, jittery link delays TCP bytes but delivers each exactly once, in order', async () => {
  const { sim, client, server } = world();
  sim.link('client', 'server', { latencyMs: 5, jitterMs: 4, jitterDistribution: 'normal', loss: 0.3 });
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => (srv = record(c, sim, { onData: (d) => c.write(d), onEnd: () => c.end() })));
  const payload = bytes(200_000, 9);
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  const r = record(conn, sim, {
    onConnect: () => {
      for (let off = 0; off < payload.length; off += 5_000) conn.write(payload.subarray(off, off + 5_000));
      conn.end();
    },
  });
  settle(sim);
  assert.deepEqual(srv!.received(), Buffer.from(payload));
  assert.deepEqual(r.received(), Buffer.from(payload));
  assert.ok(sim.link('client', 'server').stats.lost > 0, 'losses happened');
  assert.ok(r.times.at(-1)! > 200, 'retransmissions took time');
});

test('bandwidth serialises bytes: 100 KB over a 100 bytes/ms link takes at least a second', async () => {
  const { sim, client, server } = world();
  sim.link('client', 'server', { bandwidthBytesPerMs: 100 }, { direction: 'a->b' });
  let doneAt = -1;
  await listen(server, 80, (c) =>
    c.setHandlers({
      data: () => {},
      end: () => {
        doneAt = sim.clock.now();
        c.end();
      },
    }),
  );
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  record(conn, sim, {
    onConnect: () => {
      conn.write(bytes(100_000));
      conn.end();
    },
  });
  settle(sim);
  assert.ok(doneAt >= 1_000 && doneAt < 1_100, `finished at ${doneAt}`);
});

test('a reset behind unread bytes is not seen by a reader that never resumed, as in Node', async () => {
  const { sim, client, server } = world();
  let srv: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => {
    srv = record(c, sim);
    c.pause();
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  record(conn, sim, {
    onConnect: () => {
      conn.write(bytes(1_000));
      conn.reset();
    },
  });
  settle(sim);
  assert.deepEqual(srv!.events, [], 'Node has not read from the kernel, so neither the bytes nor the reset surface');
});

test('a reset behind a full read buffer surfaces on the next write (ECONNRESET, syscall write)', async () => {
  const { sim, client, server } = world();
  let srv: Conn | undefined;
  let srvRec: ReturnType<typeof record> | undefined;
  await listen(server, 80, (c) => {
    srv = c;
    srvRec = record(c, sim);
    c.pause();
  });
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  record(conn, sim, { onConnect: () => conn.write(bytes(40_000)) });
  settle(sim);
  conn.reset();
  settle(sim);
  assert.deepEqual(srvRec!.events, [], 'Node stopped reading at the high-water mark, so it has not seen the RST');
  assert.equal(srv!.write(Buffer.from('x')), false);
  settle(sim);
  assert.deepEqual(srvRec!.events, ['error:ECONNRESET', 'close:true']);
  assert.equal(srvRec!.errors[0]!.syscall, 'write');
});

test('handlers given as a class instance are called as its methods; a later set replaces only what it names', async () => {
  const { sim, client, server } = world();
  await listen(server, 80, (c) => {
    c.write(Buffer.from('hello'));
    c.end();
    c.resume(); // reads the client's FIN, so the server's side closes too
  });
  const log: string[] = [];
  const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
  conn.setHandlers(new NamedWatcher('w', log)); // callbacks on the prototype: `this` must be the object given
  const other = { name: 'o', end(this: { name: string }) { log.push(`${this.name}.end`); conn.end(); } };
  conn.setHandlers(other);
  settle(sim);
  assert.deepEqual(log, ['w.connect', 'w.data hello', 'o.end', 'w.close false']);
  await closeListeners(sim);
  assertNoLeaks(sim);
});
