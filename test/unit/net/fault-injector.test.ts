/**
 * The test fault injector itself (test/helpers/faults.ts), on loopback with plain node:net sockets: what the parity
 * suite (test/parity/faults.test.ts) does not show on its own. Every wait is bounded; every socket binds port 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { simLinkFaults, startFaultProxy, type FaultProxy, type Toxic } from '../../helpers/faults.ts';

/** An echo server on loopback (ends when its peer ends). */
async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
    s.pipe(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise((r) => srv.close(() => r()));
    },
  };
}

/** What a client saw: bytes, and whether it ended / was reset, in order; resolves on close (bounded). */
async function client(p: FaultProxy, send: (s: net.Socket) => void, timeoutMs = 5_000): Promise<{ bytes: Buffer; log: string[] }> {
  const s = net.connect({ host: p.host, port: p.port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  const log: string[] = [];
  s.on('connect', () => send(s));
  s.on('data', (d: Buffer) => {
    chunks.push(d);
    if (log.at(-1) !== 'data') log.push('data');
  });
  s.on('end', () => {
    log.push('end');
    s.end();
  });
  s.on('error', (e: NodeJS.ErrnoException) => log.push(`error:${e.code}`));
  const timer = setTimeout(() => s.destroy(), timeoutMs);
  await once(s, 'close');
  clearTimeout(timer);
  return { bytes: Buffer.concat(chunks), log };
}

test('toxics are validated with errors that name the toxic and the field; the simulator refuses what it cannot model', async () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ type: 'latency', latency: -1 }, /latency: latency/],
    [{ type: 'bandwidth', rate: 0 }, /bandwidth: rate/],
    [{ type: 'reset_peer' }, /exactly one of bytes and timeout/],
    [{ type: 'reset_peer', bytes: 1, timeout: 1 }, /exactly one of bytes and timeout/],
    [{ type: 'limit_data', bytes: Number.NaN }, /limit_data: bytes/],
    [{ type: 'latency', latency: 1, stream: 'sideways' }, /stream/],
    [{ type: 'flood' }, /unknown toxic flood/],
  ];
  for (const [t, re] of bad) {
    await assert.rejects(startFaultProxy({ target: { host: '127.0.0.1', port: 9 }, toxics: [t as Toxic] }), re);
    assert.throws(() => simLinkFaults([t as Toxic]), re);
  }
  assert.throws(() => simLinkFaults([{ type: 'timeout', timeout: 100 }]), /no equivalent/);
});

test('simLinkFaults maps each toxic to the link of its stream (downstream = origin → edge by default)', () => {
  assert.deepEqual(
    simLinkFaults([
      { type: 'latency', latency: 40, jitter: 10 },
      { type: 'bandwidth', stream: 'upstream', rate: 100 },
      { type: 'slow_close', delay: 300 },
      { type: 'limit_data', stream: 'upstream', bytes: 5 },
      { type: 'reset_peer', timeout: 250 },
    ]),
    {
      'edge->origin': { bandwidthBytesPerMs: 100, cutAfterBytes: { bytes: 5, with: 'fin' } },
      'origin->edge': { latencyMs: 40, jitterMs: 10, finDelayMs: 300, resetAfterMs: 250 },
    },
  );
  assert.deepEqual(simLinkFaults([{ type: 'half_open' }, { type: 'timeout', stream: 'upstream' }, { type: 'reset_peer', bytes: 7 }]), {
    'edge->origin': { swallow: 'all' },
    'origin->edge': { swallow: 'fin', cutAfterBytes: { bytes: 7, with: 'rst' } },
  });
});

test('latency with jitter keeps the order of the bytes; limit_data cuts at the exact byte and counts it', async () => {
  const echo = await echoServer();
  const slow = await startFaultProxy({ target: { host: '127.0.0.1', port: echo.port }, toxics: [{ type: 'latency', latency: 20, jitter: 15 }], seed: 7 });
  const sent = Buffer.from(Array.from({ length: 40 }, (_, i) => `<${i}>`).join(''));
  const a = await client(slow, (s) => {
    // Forty small writes, each a separate chunk at the injector: jitter must not reorder them.
    let i = 0;
    const next = (): void => {
      if (i >= 40) {
        s.end();
        return;
      }
      s.write(`<${i++}>`);
      setTimeout(next, 1);
    };
    next();
  });
  assert.deepEqual(a.bytes.toString(), sent.toString());
  assert.deepEqual(a.log, ['data', 'end']);
  assert.equal(slow.counts.downstream.forwarded, sent.length);
  await slow.close();

  const limited = await startFaultProxy({ target: { host: '127.0.0.1', port: echo.port }, toxics: [{ type: 'limit_data', bytes: 1_234 }] });
  const b = await client(limited, (s) => s.write(Buffer.alloc(5_000, 1)));
  assert.equal(b.bytes.length, 1_234);
  assert.deepEqual(b.log, ['data', 'end']);
  assert.deepEqual(limited.counts.downstream, { forwarded: 1_234, dropped: 5_000 - 1_234, finsSwallowed: 0, cuts: 1 });
  await limited.close();
  await echo.close();
});

test('timeout with a close time: bytes vanish, then both ends are closed after that time; close() ends everything', async () => {
  const echo = await echoServer();
  const p = await startFaultProxy({ target: { host: '127.0.0.1', port: echo.port }, toxics: [{ type: 'timeout', stream: 'upstream', timeout: 150 }] });
  const t0 = performance.now();
  const r = await client(p, (s) => s.write('lost'));
  const waited = performance.now() - t0;
  assert.deepEqual(r, { bytes: Buffer.alloc(0), log: ['end'] });
  assert.ok(waited >= 140, `closed after ${waited} ms, before the toxic's 150 ms`);
  assert.deepEqual(p.counts.upstream, { forwarded: 0, dropped: 4, finsSwallowed: 0, cuts: 0 });
  assert.equal(p.accepted, 1);
  await p.close();
  await p.close(); // idempotent
  await sleep(10);
  await echo.close();
});
