/**
 * `refract serve` with the management API, as a child process: an app created through the API serves at once,
 * survives a reload of the file (which adds a file app) and a restart of the process.
 *
 * Ports come from `freePort` (bound on port 0, released). Every wait is bounded; the child is killed in `finally`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { freePort, ZONE } from './harness.ts';
import { echoThrough, startCli as refract, until as untilWithin, type Proc } from './processes.ts';

const HOST = '127.0.0.1';
const WAIT_MS = 30_000;

const until = <T>(what: string, probe: () => T | undefined): Promise<T> => untilWithin(what, WAIT_MS, probe);

describe('refract serve with the management API', () => {
  it('an API app serves at once, survives a file reload that adds a file app, and a restart', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-serve-api-'));
    const file = join(dir, 'refract.yaml');
    const [apiPort, originPort, filePort, apiAppPort, addedPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const app = (id: string, port: number) => ({ id, protocol: `tcp/${port}`, dns: { name: `${id}.example.com` }, origin_direct: [`tcp://${HOST}:${originPort}`] });
    const write = (apps: unknown[]): void =>
      writeFileSync(
        file,
        YAML.stringify({
          node: { id: 'serve-api', data_dir: join(dir, 'data') },
          edge: { addresses: [HOST], drain_timeout_ms: 500 },
          origins: [{ name: 'echo', listen: `tcp://${HOST}:${originPort}`, behaviour: 'echo' }],
          zones: [ZONE],
          api: { listen: `${HOST}:${apiPort}` },
          apps,
        }),
      );
    write([app('filed', filePort)]);
    let run: Proc | undefined;
    try {
      const created = refract(['token', 'create', '--config', file, '--name', 'test']);
      assert.equal(await created.done, 0, created.stderr);
      const token = created.stdout.trim().split('\n').at(-1) ?? '';
      assert.match(token, /^rfk_/);
      const base = `http://${HOST}:${apiPort}/client/v4`;
      const call = async (method: string, path: string, body?: unknown) => {
        const res = await fetch(base + path, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(5_000),
        });
        return { status: res.status, json: (await res.json()) as { result: any } };
      };

      run = refract(['serve', '--config', file, '--no-watch']);
      const serving = run;
      await until('the API to listen', () => (serving.stderr.includes('management API on') ? true : undefined));
      assert.equal(await echoThrough(HOST, filePort, 'a'), 'a', 'the file app serves');

      const post = await call('POST', `/zones/${ZONE.id}/spectrum/apps`, { protocol: `tcp/${apiAppPort}`, dns: { type: 'CNAME', name: 'api.example.com' }, origin_direct: [`tcp://${HOST}:${originPort}`] });
      assert.equal(post.status, 200, JSON.stringify(post.json));
      const apiAppId = post.json.result.id as string;
      assert.equal(await echoThrough(HOST, apiAppPort, 'b'), 'b', 'the API app serves as soon as the create is acknowledged');

      // A reload (SIGHUP) reads the file once and merges it with the API's apps.
      write([app('filed', filePort), app('added', addedPort)]);
      run.child.kill('SIGHUP');
      await until('the reload', () => (serving.stderr.includes('reloaded') ? true : undefined));
      assert.equal(await echoThrough(HOST, addedPort, 'c'), 'c', 'the added file app serves');
      assert.equal(await echoThrough(HOST, apiAppPort, 'd'), 'd', 'the API app survives the reload');
      const list = await call('GET', `/zones/${ZONE.id}/spectrum/apps?per_page=100`);
      assert.deepEqual(list.json.result.map((a: { id: string }) => a.id).sort(), [apiAppId, 'added', 'filed'].sort());

      run.child.kill('SIGTERM');
      assert.equal(await run.done, 0, run.stderr);
      run = refract(['serve', '--config', file, '--no-watch']);
      const again = run;
      await until('the API to listen again', () => (again.stderr.includes('management API on') ? true : undefined));
      assert.equal(await echoThrough(HOST, apiAppPort, 'e'), 'e', 'the API app survives a restart');
      const got = await call('GET', `/zones/${ZONE.id}/spectrum/apps/${apiAppId}`);
      assert.equal(got.status, 200);
      assert.equal(got.json.result.protocol, `tcp/${apiAppPort}`);
    } finally {
      run?.child.kill('SIGKILL');
      await run?.done;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serve --check opens the database, binds the stored API apps and the API port, and says which port is taken', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-check-api-'));
    const file = join(dir, 'refract.yaml');
    const [apiPort, appPort] = [await freePort(), await freePort()];
    writeFileSync(
      file,
      YAML.stringify({ node: { id: 'check-api', data_dir: join(dir, 'data') }, edge: { addresses: [HOST] }, zones: [ZONE], api: { listen: `${HOST}:${apiPort}` }, apps: [] }),
    );
    const blocker = net.createServer();
    try {
      // An API app stored by an earlier run (written through the store, as the API would).
      const { ApiStore } = await import('../../../src/api/store.ts');
      const store = new ApiStore(join(dir, 'data', 'api.sqlite'));
      store.begin({ put: { zoneId: ZONE.id, appId: 'a'.repeat(32), spec: { protocol: `tcp/${appPort}`, dns: { type: 'CNAME', name: 'stored.example.com' }, origin_direct: [`tcp://${HOST}:9`] }, createdOn: '2026-01-01T00:00:00.000Z', modifiedOn: '2026-01-01T00:00:00.000Z' } });
      store.commit();
      store.close();

      const ok = refract(['serve', '--config', file, '--check']);
      assert.equal(await ok.done, 0, ok.stderr);
      assert.match(ok.stdout, /OK: 0 apps, 1 listener bound and released, .*1 API app from the database, API port 127\.0\.0\.1:\d+ bound and released/);

      await new Promise<void>((resolve) => blocker.listen(apiPort, HOST, resolve));
      const taken = refract(['serve', '--config', file, '--check']);
      assert.equal(await taken.done, 3, taken.stderr);
      assert.match(taken.stderr, new RegExp(`E_LISTEN_ADDRESS_IN_USE: 127\\.0\\.0\\.1:${apiPort} for the management API`));
      assert.equal(taken.stdout, '');
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
