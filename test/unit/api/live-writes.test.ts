/**
 * Live API writes on real sockets: an established loopback connection through a file app keeps echoing, byte for
 * byte, while 20 API writes to other apps go through HTTP (8 creates, 4 updates, 4 deletes, and 4 creates refused
 * for a port clash), with a round trip on the connection after each.
 * The simulated counterpart, with random sequences, is test/prop/edge/api-live-change.prop.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { freePort, startApi, ZONE } from './harness.ts';

const Z = `/zones/${ZONE.id}`;

function app(port: number, name: string, originPort = 9): Record<string, unknown> {
  return { protocol: `tcp/${port}`, dns: { type: 'CNAME', name }, origin_direct: [`tcp://127.0.0.1:${originPort}`] };
}

/** An echo server on 127.0.0.1, port 0. */
async function echoServer(): Promise<net.Server> {
  const s = net.createServer((c) => c.pipe(c));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return s;
}

/** Reads from `sock` until `n` more bytes arrived (or fails after 5 s, a bound, not an assertion on speed). */
function readBytes(sock: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let have = 0;
    const onData = (d: Buffer): void => {
      got.push(d);
      have += d.length;
      if (have >= n) done(undefined);
    };
    const onClose = (): void => done(new Error(`the connection closed after ${have} of ${n} bytes`));
    const timer = setTimeout(() => done(new Error(`only ${have} of ${n} bytes within 5 s`)), 5_000);
    const done = (e: Error | undefined): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      if (e !== undefined) reject(e);
      else resolve(Buffer.concat(got));
    };
    sock.on('data', onData);
    sock.on('close', onClose);
  });
}

describe('API writes while a file app streams (real sockets)', () => {
  it('an established connection keeps echoing every byte while 20 writes to other apps are applied', async () => {
    const echo = await echoServer();
    const echoPort = (echo.address() as AddressInfo).port;
    const stablePort = await freePort();
    const api = await startApi({ edge: { addresses: ['127.0.0.1'] }, apps: [{ id: 'stable', ...app(stablePort, 'stable.example.com', echoPort) }] });
    const sock = net.connect({ host: '127.0.0.1', port: stablePort });
    let closed = false;
    sock.on('close', () => (closed = true));
    try {
      await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
      const sent: Buffer[] = [];
      const received: Buffer[] = [];
      const roundTrip = async (): Promise<void> => {
        const chunk = randomBytes(1 + randomBytes(1)[0]! * 64); // 1 B to 16 KiB
        const back = readBytes(sock, chunk.length);
        sock.write(chunk);
        sent.push(chunk);
        received.push(await back);
      };
      await roundTrip();

      // 20 writes: each creates an app, updates the newest (new port and origin), deletes the oldest, or is refused.
      const live = new Map<string, number>(); // id → edge port
      const outcomes: string[] = [];
      for (let i = 0; i < 20; i++) {
        const ids = [...live.keys()];
        const kind = i % 5;
        if (kind === 0 || kind === 1 || ids.length === 0) {
          const port = await freePort();
          const r = await api.call('POST', `${Z}/spectrum/apps`, app(port, `a${i}.example.com`, echoPort));
          assert.equal(r.status, 200, JSON.stringify(r.json));
          live.set(r.json.result.id, port);
          outcomes.push('created');
        } else if (kind === 2) {
          const id = ids.at(-1)!;
          const port = await freePort();
          const r = await api.call('PUT', `${Z}/spectrum/apps/${id}`, app(port, `u${i}.example.com`));
          assert.equal(r.status, 200, JSON.stringify(r.json));
          live.set(id, port);
          outcomes.push('updated');
        } else if (kind === 3) {
          const id = ids[0]!;
          const r = await api.call('DELETE', `${Z}/spectrum/apps/${id}`);
          assert.equal(r.status, 200, JSON.stringify(r.json));
          live.delete(id);
          outcomes.push('deleted');
        } else {
          // Refused: a create on the file app's port. Nothing changes.
          const clash = await api.call('POST', `${Z}/spectrum/apps`, app(stablePort, `clash${i}.example.com`));
          assert.equal(clash.status, 400);
          assert.equal(clash.json.errors[0].refract_code, 'E_CONFIG_EDGE_CONFLICT');
          outcomes.push('refused');
        }
        await roundTrip();
      }
      assert.deepEqual(new Set(outcomes), new Set(['created', 'updated', 'deleted', 'refused']));

      // Every byte came back in order, the connection is still open, and the edge listens on exactly the
      // file app's port and the live API apps' ports.
      assert.ok(Buffer.concat(received).equals(Buffer.concat(sent)), 'the echo is byte-identical');
      assert.equal(closed, false);
      assert.equal(sock.destroyed, false);
      assert.deepEqual(api.edge.listeners().map((l) => l.port).sort((a, b) => a - b), [stablePort, ...live.values()].sort((a, b) => a - b));
      const list = await api.call('GET', `${Z}/spectrum/apps?per_page=50`);
      assert.deepEqual(new Set(list.json.result.map((a: { id: string }) => a.id)), new Set(['stable', ...live.keys()]));
      // The app the connection uses is still the file's, with its origin.
      const stable = await api.call('GET', `${Z}/spectrum/apps/stable`);
      assert.deepEqual(stable.json.result.origin_direct, [`tcp://127.0.0.1:${echoPort}`]);

      // And it ends normally: our FIN reaches the origin, whose FIN comes back.
      const ended = new Promise<void>((r) => sock.once('end', () => r()));
      sock.end();
      await ended;
    } finally {
      sock.destroy();
      await api.close();
      await new Promise<void>((r) => echo.close(() => r()));
    }
  });
});
