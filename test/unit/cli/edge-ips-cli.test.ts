/**
 * `refract edge-ips rotate` as a child process against a running management API (the API test harness on loopback;
 * the config file given to the command points api.listen at it): by app id and by dns.name, the token from --token or
 * REFRACT_API_TOKEN, and coded failures (no api:, a node that does not answer, a refused rotation, an unknown app).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startApi, ZONE } from '../api/harness.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, REFRACT_API_TOKEN: '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

test('edge-ips rotate through the API: by id and by name, token from flag or env, coded failures', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'refract-rotate-'));
  const api = await startApi({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/24'] }, drain_timeout_ms: 600_000 } });
  try {
    const apiPort = Number(new URL(api.base).port);
    const cfg = join(dir, 'refract.yaml');
    writeFileSync(cfg, JSON.stringify({ zones: [ZONE], api: { listen: `127.0.0.1:${apiPort}` } }));
    const noApi = join(dir, 'no-api.yaml');
    writeFileSync(noApi, JSON.stringify({ zones: [ZONE] }));
    const a = await api.call('POST', `/zones/${ZONE.id}/spectrum/apps`, { protocol: `tcp/${await freePort()}`, dns: { type: 'CNAME', name: 'rot.example.com' }, edge_ips: { type: 'dynamic', connectivity: 'ipv4' }, origin_direct: ['tcp://127.0.0.1:9'] });
    assert.deepEqual(a.json.result.ips, ['127.0.10.1']);
    const id = a.json.result.id as string;

    const byId = await run(['edge-ips', 'rotate', '--config', cfg, '--token', api.token, id]);
    assert.equal(byId.code, 0, byId.stderr);
    assert.equal(byId.stdout, `${id}\t127.0.10.2\n`);
    const byName = await run(['edge-ips', 'rotate', '--config', cfg, 'ROT.example.com.'], { REFRACT_API_TOKEN: api.token });
    assert.equal(byName.code, 0, byName.stderr);
    assert.equal(byName.stdout, `${id}\t127.0.10.3\n`);
    assert.deepEqual(api.edge.listeners().map((l) => l.host), ['127.0.10.3']);

    const needsApi = await run(['edge-ips', 'rotate', '--config', noApi, '--token', 'x', id]);
    assert.equal(needsApi.code, 1);
    assert.match(needsApi.stderr, /E_EDGE_IP_ROTATE_NEEDS_API/);
    const unknown = await run(['edge-ips', 'rotate', '--config', cfg, '--token', api.token, 'nope.example.com']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /E_API_APP_NOT_FOUND/);
    const badToken = await run(['edge-ips', 'rotate', '--config', cfg, '--token', 'wrong', id]);
    assert.equal(badToken.code, 1);
    assert.match(badToken.stderr, /E_API_AUTH/);
    const noToken = await run(['edge-ips', 'rotate', '--config', cfg, id]);
    assert.equal(noToken.code, 2);
    const deadPort = await freePort();
    const dead = join(dir, 'dead.yaml');
    writeFileSync(dead, JSON.stringify({ zones: [ZONE], api: { listen: `127.0.0.1:${deadPort}` } }));
    const unreachable = await run(['edge-ips', 'rotate', '--config', dead, '--token', api.token, id]);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /E_API_UNREACHABLE/);
    assert.deepEqual(api.edge.listeners().map((l) => l.host), ['127.0.10.3'], 'failures changed nothing');
  } finally {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
