/**
 * A write whose database commit fails after the edge applied it (disk full, an I/O error) is undone on the edge
 * too: the answer is a 500 E_INTERNAL, and the edge, the stored apps and the API's answers stay as before the
 * write, so a retry can succeed. Real loopback sockets; the store's commit is made to fail once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../../src/net/node/network.ts';
import { ApiStore } from '../../../src/api/store.ts';
import { ConfigSource } from '../../../src/api/config-source.ts';
import { createApiServer, API_PREFIX } from '../../../src/api/server.ts';
import { createToken } from '../../../src/api/tokens.ts';
import { validateConfig } from '../../../src/model/config.ts';
import { ZONE } from './harness.ts';
import { freeRanges } from './processes.ts';

/** A store whose next `commit` throws as SQLite does when the disk is full (the transaction stays open). */
class FailingStore extends ApiStore {
  failNext = false;
  override commit(): void {
    if (this.failNext) {
      this.failNext = false;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    }
    super.commit();
  }
}

function connectOnce(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve('accepted');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('management API: a commit that fails after the edge applied the write', () => {
  const raw = { zones: [ZONE], edge: { addresses: ['127.0.0.1'], drain_timeout_ms: 0 } };
  const store = new FailingStore(':memory:');
  let edge: EdgeNode;
  let server: ReturnType<typeof createApiServer>;
  let base: string;
  let token: string;
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(5000),
    });
    return { status: res.status, json: await res.json() };
  };
  const listeners = (): string[] => edge.listeners().map((l) => `${l.protocol}|${l.port}`).sort();
  const APPS = `/zones/${ZONE.id}/spectrum/apps`;

  before(async () => {
    const first = validateConfig(raw);
    assert.ok(first.ok);
    const log = pino({ level: 'silent' });
    edge = new EdgeNode({ net: createNodeNetwork({ dnsServers: first.config.node.dnsServers }), log }, first.config);
    let tick = 0;
    const source = new ConfigSource({ edge, store, file: 'refract.yaml', fileRaw: raw, now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, tick++)) });
    await source.start();
    server = createApiServer({ source, store, nowMs: () => performance.now() });
    await server.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}${API_PREFIX}`;
    token = createToken(store, 'test', new Date(0)).token;
  });
  after(async () => {
    await server.close();
    await edge.shutdown(50);
    store.close();
  });

  it('create, update and delete: 500, and the edge, the store and the API are as before; the retry succeeds', async () => {
    const [p1, p2, p3] = (await freeRanges(3, 1)) as [number, number, number];
    const body = (port: number, name: string) => ({ protocol: `tcp/${port}`, dns: { name }, origin_direct: ['tcp://127.0.0.1:9'] });
    const kept = await call('POST', APPS, body(p1, 'kept.example.com'));
    assert.equal(kept.status, 200);
    const id = kept.json.result.id as string;

    const check = async (what: string): Promise<void> => {
      assert.deepEqual(listeners(), [`tcp|${p1}`], `${what}: the edge listens as before`);
      assert.equal(await connectOnce(p1), 'accepted', what);
      assert.equal(await connectOnce(p2), 'ECONNREFUSED', what);
      assert.deepEqual(store.apps().map((a) => [a.appId, a.spec['protocol'], (a.spec['dns'] as { name: string }).name]), [[id, `tcp/${p1}`, 'kept.example.com']], what);
      const list = await call('GET', `${APPS}?per_page=100`);
      assert.deepEqual(list.json.result, [kept.json.result], `${what}: the API answers as before`);
    };

    store.failNext = true;
    const create = await call('POST', APPS, body(p2, 'new.example.com'));
    assert.equal(create.status, 500);
    assert.equal(create.json.errors[0].refract_code, 'E_INTERNAL');
    await check('after a failed create');

    store.failNext = true;
    const update = await call('PUT', `${APPS}/${id}`, body(p2, 'moved.example.com'));
    assert.equal(update.status, 500);
    await check('after a failed update');

    store.failNext = true;
    const del = await call('DELETE', `${APPS}/${id}`);
    assert.equal(del.status, 500);
    await check('after a failed delete');

    // The same writes, retried, succeed.
    const again = await call('POST', APPS, body(p3, 'new.example.com'));
    assert.equal(again.status, 200);
    assert.equal((await call('PUT', `${APPS}/${id}`, body(p2, 'moved.example.com'))).status, 200);
    assert.deepEqual(listeners(), [`tcp|${p2}`, `tcp|${p3}`].sort());
    assert.equal((await call('DELETE', `${APPS}/${id}`)).status, 200);
    assert.deepEqual(listeners(), [`tcp|${p3}`]);
  });
});
