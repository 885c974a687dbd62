/**
 * EdgeNode.apply as a reload: added apps listen, removed apps drain, changed apps apply to new connections,
 * unchanged apps and their connections are untouched, and a failed apply changes nothing. Edge ports 7500-7549.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { startEdge, startOrigin, exchange, mustConfig, delay } from '../../helpers/edge.ts';

const appOn = (port: number, origin: number, name: string, extra: Record<string, unknown> = {}) => ({
  protocol: `tcp/${port}`,
  dns: { type: 'CNAME', name },
  origin_direct: [`tcp://127.0.0.1:${origin}`],
  ...extra,
});

async function openEcho(port: number): Promise<{ s: net.Socket; roundTrip(msg: string): Promise<string> }> {
  const s = net.connect({ port, host: '127.0.0.1' });
  await once(s, 'connect');
  return {
    s,
    async roundTrip(msg: string) {
      s.write(msg);
      const [d] = (await once(s, 'data')) as [Buffer];
      return d.toString();
    },
  };
}

test('reload: an added app listens, an unchanged app keeps its connection, a removed app drains', async () => {
  const o = await startOrigin();
  const base = { edge: { addresses: ['127.0.0.1'], drain_timeout_ms: 60_000 } };
  const e = await startEdge({ ...base, apps: [appOn(7500, o.port, 'keep.example.test'), appOn(7501, o.port, 'gone.example.test')] });
  try {
    const kept = await openEcho(7500);
    const draining = await openEcho(7501);
    assert.equal(await kept.roundTrip('a'), 'a');
    assert.equal(await draining.roundTrip('b'), 'b');

    const r = await e.edge.apply(mustConfig({ ...base, apps: [appOn(7500, o.port, 'keep.example.test'), appOn(7502, o.port, 'new.example.test')] }));
    assert.equal(r.added.length, 1);
    assert.equal(r.removed.length, 1);
    assert.equal(r.unchanged.length, 1);

    // The new app accepts; the removed port no longer does.
    assert.equal((await exchange(7502, 'new')).data.toString(), 'new');
    const refused = await exchange(7501, 'x', { timeoutMs: 2000 });
    assert.equal(refused.error, 'ECONNREFUSED');
    // Both established connections still work.
    assert.equal(await kept.roundTrip('c'), 'c');
    assert.equal(await draining.roundTrip('d'), 'd');
    kept.s.end();
    draining.s.end();
    await Promise.all([once(kept.s, 'close'), once(draining.s, 'close')]);
  } finally {
    await e.close();
    await o.close();
  }
});

test('reload: connections of a removed app are closed at the drain deadline', async () => {
  const o = await startOrigin();
  const cfg = (apps: unknown[]) => ({ edge: { addresses: ['127.0.0.1'], drain_timeout_ms: 200 }, apps });
  const e = await startEdge(cfg([appOn(7505, o.port, 'drain.example.test')]));
  try {
    const c = await openEcho(7505);
    c.s.on('end', () => c.s.end());
    assert.equal(await c.roundTrip('x'), 'x');
    const t0 = Date.now();
    await e.edge.apply(mustConfig(cfg([appOn(7506, o.port, 'other.example.test')])));
    await once(c.s, 'close');
    const ev = await e.closing();
    assert.equal(ev.CloseReason, 'drain_deadline');
    assert.ok(Date.now() - t0 >= 150, 'closed no earlier than the deadline');
  } finally {
    await e.close();
    await o.close();
  }
});

test('reload: a changed app applies to new connections only', async () => {
  const a = await startOrigin({ mode: 'banner', banner: 'A' });
  const b = await startOrigin({ mode: 'banner', banner: 'B' });
  const cfg = (origin: number) => ({ edge: { addresses: ['127.0.0.1'] }, apps: [appOn(7510, origin, 'chg.example.test')] });
  const e = await startEdge(cfg(a.port));
  try {
    const old = net.connect({ port: 7510, host: '127.0.0.1' });
    const [first] = (await once(old, 'data')) as [Buffer];
    assert.equal(first.toString(), 'A');
    const r = await e.edge.apply(mustConfig(cfg(b.port)));
    assert.deepEqual([r.changed.length, r.added.length, r.removed.length], [1, 0, 0]);
    const fresh = await exchange(7510, undefined);
    assert.equal(fresh.data.toString(), 'B');
    // The old connection still talks to A.
    old.write('still A?');
    const [echo] = (await once(old, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'still A?');
    old.end();
    await once(old, 'close');
  } finally {
    await e.close();
    await a.close();
    await b.close();
  }
});

test('reload: a port that cannot be bound rejects the whole apply and the running config stays', async () => {
  const o = await startOrigin();
  const squatter = net.createServer();
  squatter.listen(7521, '127.0.0.1');
  await once(squatter, 'listening');
  const cfg = (apps: unknown[]) => ({ edge: { addresses: ['127.0.0.1'] }, apps });
  const e = await startEdge(cfg([appOn(7520, o.port, 'stay.example.test')]));
  try {
    const before = e.edge.config;
    await assert.rejects(
      e.edge.apply(mustConfig(cfg([appOn(7522, o.port, 'ok.example.test'), appOn(7521, o.port, 'taken.example.test')]))),
      (err: { code?: string }) => err.code === 'E_LISTEN_ADDRESS_IN_USE',
    );
    assert.equal(e.edge.config, before);
    // 7520 still serves; 7522 was released again (nothing half-applied).
    assert.equal((await exchange(7520, 'still')).data.toString(), 'still');
    assert.equal((await exchange(7522, 'x', { timeoutMs: 2000 })).error, 'ECONNREFUSED');
    await delay(10);
  } finally {
    await e.close();
    await o.close();
    squatter.close();
  }
});
