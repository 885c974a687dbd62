/**
 * `refract serve --workers 2` with `api:` and `metrics:` on real sockets (docs/deploy.md, "Every core: --workers"):
 * the supervisor serves the management API and the metrics over the workers' edge. An app created through the API
 * listens in both workers and echoes; a write one part of which cannot bind changes no worker and leaves nothing in
 * the database, with the code one process answers; DELETE reaches every worker; the metrics count connections
 * summed over the workers and the analytics count every one; a killed worker's replacement serves the API's app.
 * Which process holds a socket is read from `ss -p`. Ports: this file's fixed block, 8980-8999.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import Database from 'better-sqlite3';
import { ZONE } from '../api/harness.ts';
import { apiCall, createTokenCli, echoThrough, killAll, until } from '../api/processes.ts';
import { holders, logged, refused, startServing } from './workers-helpers.ts';

const HOST = '127.0.0.1';
const ORIGIN = 8980;
const API = 8981;
const METRICS = 8982;
const P = 8983;
const BUSY = 8984;
const F = 8985;
const APPS = `/zones/${ZONE.id}/spectrum/apps`;

after(killAll);

const appBody = (port: number, name: string) => ({ protocol: `tcp/${port}`, dns: { type: 'CNAME', name }, origin_direct: [`tcp://${HOST}:${ORIGIN}`] });

/** The value of the sample `name{labels}` in a Prometheus text, or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? '' : `{${labels}}`} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function scrape(): Promise<string> {
  const r = await fetch(`http://${HOST}:${METRICS}/metrics`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(r.status, 200);
  return r.text();
}

void describe('refract serve --workers 2 with api: and metrics:', { timeout: 240_000 }, () => {
  it('applies API writes in every worker all-or-nothing, sums the live state, counts every connection, survives a worker kill', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-workers-api-'));
    const file = join(dir, 'refract.yaml');
    writeFileSync(
      file,
      YAML.stringify({
        node: { id: 'workers-api-test', data_dir: 'data' },
        edge: { addresses: [HOST], drain_timeout_ms: 1_000 },
        api: { listen: `${HOST}:${API}`, rate_limit: { requests: 1_000_000, window_sec: 60 } },
        metrics: { listen: `${HOST}:${METRICS}` },
        zones: [ZONE],
        origins: [{ name: 'echo', listen: `tcp://${HOST}:${ORIGIN}`, behaviour: 'echo' }],
      }),
    );
    const token = await createTokenCli(file, ['--name', 'workers']);
    const p = await startServing(['serve', '--config', file, '--workers', '2', '--access-log', 'json', '--no-watch']);
    assert.match(p.stderr, /management API on http:\/\/127\.0\.0\.1:8981\/client\/v4/);
    const base = `http://${HOST}:${API}/client/v4`;
    const primary = p.child.pid!;
    const workers = new Set(logged(p, 'worker.started').map((o) => o['pid'] as number));
    assert.equal(workers.size, 2);

    // Create: every worker listens on the new port, and it echoes.
    const created = await apiCall(base, token, 'POST', APPS, appBody(P, 'p.example.com'));
    assert.equal(created.status, 200, JSON.stringify(created.json));
    const id = created.json.result.id as string;
    for (const pid of workers) assert.ok(holders(P, 'listening').has(pid), `worker ${pid} listens on ${P}`);
    assert.equal(await echoThrough(HOST, P, 'created'), 'created');
    // The health page lists the listener once per worker holding it (the view sums the workers' snapshots).
    const health = await apiCall(base, token, 'GET', '/refract/health');
    assert.equal(health.status, 200);
    assert.equal(health.json.result.listeners.filter((l: { port: number }) => l.port === P).length, 2);

    // A write that one part cannot bind: the code one process answers, no worker listens, the database has no row.
    const busy = net.createServer().listen({ host: HOST, port: BUSY, exclusive: true });
    await new Promise((r) => busy.once('listening', r));
    const refusedWrite = await apiCall(base, token, 'POST', APPS, appBody(BUSY, 'busy.example.com'));
    assert.equal(refusedWrite.status, 400);
    assert.equal(refusedWrite.json.errors[0].refract_code, 'E_LISTEN_ADDRESS_IN_USE');
    assert.deepEqual([...holders(BUSY, 'listening')], [process.pid], 'only the blocker holds the busy port');
    const listed = await apiCall(base, token, 'GET', APPS);
    assert.deepEqual(listed.json.result.map((a: { id: string }) => a.id), [id]);
    const db = new Database(join(dir, 'data', 'api.sqlite'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT app_id FROM apps').all(), [{ app_id: id }]);
    } finally {
      db.close();
    }
    busy.close();
    assert.equal(await echoThrough(HOST, P, 'still'), 'still');

    // Connections: until both workers handled some (the access log's connection ids name the worker), at most 6
    // rounds of 20; then the metrics and the analytics count all of them.
    let total = 2; // the two echoes above
    const workersSeen = (): Set<string> => new Set(p.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => String((JSON.parse(l) as { connection_id?: string }).connection_id).split('.')[0]!));
    for (let round = 0; round < 6 && workersSeen().size < 2; round++) {
      const got = await Promise.all(Array.from({ length: 20 }, (_, i) => echoThrough(HOST, P, `r${round}.${i}`)));
      assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `r${round}.${i}`));
      total += 20;
      await until('the access log lines', 10_000, () => (p.stdout.trim().split('\n').length >= total ? true : undefined));
    }
    assert.deepEqual([...workersSeen()].sort(), ['1', '2']);
    // Per-app counters come from the merged events; origin connect attempts from the workers' snapshots (≤ 1 s old).
    const text = await until(`the metrics to count ${total} connections`, 10_000, async () => {
      const t = await scrape();
      return sample(t, 'refract_downstream_cx_total', `app="${id}",proto="tcp"`) === total && sample(t, 'refract_upstream_cx_connect_attempts_total') === total ? t : undefined;
    });
    assert.equal(sample(text, 'refract_downstream_cx_closed_total', `app="${id}",proto="tcp",status="200"`), total);
    assert.equal(sample(text, 'refract_listeners', 'proto="tcp"'), 2, 'one listener in each of the two workers');
    const since = new Date(Date.now() - 3_600_000).toISOString();
    const summary = await apiCall(base, token, 'GET', `/zones/${ZONE.id}/spectrum/analytics/events/summary?metrics=count&dimensions=event&since=${since}`);
    assert.equal(summary.status, 200, JSON.stringify(summary.json));
    const counts = Object.fromEntries(summary.json.result.data.map((d: { dimensions: string[]; metrics: number[] }) => [d.dimensions[0], d.metrics[0]]));
    assert.deepEqual(counts, { connect: total, disconnect: total });

    // A killed worker's replacement serves the app the API created.
    const [victim] = [...workers];
    process.kill(victim!, 'SIGKILL');
    await until('the replacement', 60_000, () => (logged(p, 'worker.restarted').length > 0 ? true : undefined));
    const replacement = logged(p, 'worker.restarted')[0]!['pid'] as number;
    assert.ok(!workers.has(replacement));
    assert.ok(holders(P, 'listening').has(replacement), 'the replacement listens on the API app');
    // The counters do not go back when a worker exits: its last snapshot's counters are kept.
    assert.equal(sample(await scrape(), 'refract_upstream_cx_connect_attempts_total'), total);
    assert.equal(await echoThrough(HOST, P, 'replaced'), 'replaced');

    // A file reload goes through the API's ConfigSource: the file's new app is added, the API's app stays.
    const serving = new Set([...workers].filter((pid) => pid !== victim).concat(replacement));
    writeFileSync(file, YAML.stringify({ ...YAML.parse(readFileSync(file, 'utf8')), apps: [{ ...appBody(F, 'f.example.com'), id: 'from-file' }] }));
    process.kill(primary, 'SIGHUP');
    await until('the reload', 30_000, () => (p.stderr.includes('refract: reloaded') ? true : undefined));
    for (const pid of serving) assert.ok(holders(F, 'listening').has(pid) && holders(P, 'listening').has(pid), `worker ${pid} listens on ${F} and ${P}`);
    assert.equal(await echoThrough(HOST, F, 'file app'), 'file app');
    assert.equal(await echoThrough(HOST, P, 'api app'), 'api app');

    // DELETE reaches every worker: nobody listens on the port any more.
    const deleted = await apiCall(base, token, 'DELETE', `${APPS}/${id}`);
    assert.equal(deleted.status, 200, JSON.stringify(deleted.json));
    await until(`no process to listen on ${P}`, 10_000, () => (holders(P, 'listening').size === 0 ? true : undefined));
    assert.ok(await refused(P));

    process.kill(primary, 'SIGTERM');
    assert.equal(await p.done, 0);
  });
});
