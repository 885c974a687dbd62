/**
 * `refract token create|list|revoke` as child processes (`node --import tsx src/cli.ts token …`), against a real
 * `refract serve` with the API: a bad command line exits 2 with one line naming the problem (then the usage) and
 * writes nothing; the token is the last line of stdout; `list` never prints a secret; the grants given at create
 * are the ones the running API enforces; a revoked token or key gets 401 on its next request.
 *
 * The token command's usage errors carry no E_ code (like every refract command's: docs/cli.md): the stable parts
 * are the exit code and the flag or value the line names, which is what these tests assert. The table of bad
 * command lines runs `tokenCommand` in this process (its output captured), a few of them also as processes, to
 * see the exit code leave through src/cli.ts; everything else runs as processes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tokenCommand } from '../../../src/cli/token.ts';
import { PERMISSIONS } from '../../../src/api/tokens.ts';
import { freePort, ZONE } from './harness.ts';
import { apiCall, killAll, runCli, startServe, writeApiConfig } from './processes.ts';

const APPS = `/zones/${ZONE.id}/spectrum/apps`;
const SECRET = /rf[kg]_[A-Za-z0-9_-]{20,}/;

/** `refract token ARGS` in this process: the exit code and what it wrote (synchronous, so nothing else writes meanwhile). */
function tokenInProcess(args: readonly string[]): { code: number | string; stdout: string; stderr: string } {
  const out = { stdout: '', stderr: '' };
  const write = { stdout: process.stdout.write, stderr: process.stderr.write };
  process.stdout.write = ((chunk: string | Uint8Array) => ((out.stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((out.stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    return { code: tokenCommand(args), ...out };
  } finally {
    process.stdout.write = write.stdout;
    process.stderr.write = write.stderr;
  }
}

/** Runs `items` through `f`, `n` at a time (the CLI costs a Node start each; the machine has two cores). */
async function inBatches<T, R>(items: readonly T[], n: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n) out.push(...(await Promise.all(items.slice(i, i + n).map(f))));
  return out;
}

describe('refract token create|list|revoke', () => {
  let dir: string;
  let file: string;
  let apiPort: number;
  const db = (): string => join(dir, 'data', 'api.sqlite');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'refract-token-'));
    apiPort = await freePort();
    file = writeApiConfig(dir, apiPort);
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a bad command line exits 2 (1 for an unreadable or invalid config) naming the problem, and creates nothing', { timeout: 90_000 }, async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apps: 3\n');
    const F = ['--config', file];
    const create = ['create', ...F, '--name', 'x'];
    const cases: Array<{ args: string[]; code: number; line: RegExp }> = [
      { args: [], code: 2, line: /^refract token: give create, list or revoke$/ },
      { args: ['bogus'], code: 2, line: /^refract token: give create, list or revoke$/ },
      { args: ['create', '--name', 'x'], code: 2, line: /^refract token create: give --config FILE$/ },
      { args: ['create', ...F], code: 2, line: /^refract token create: give --name NAME/ },
      { args: ['create', ...F, '--name', ''], code: 2, line: /^refract token create: give --name NAME/ },
      { args: [...create, 'extra'], code: 2, line: /^refract token create: give --name NAME \(and nothing else\)$/ },
      { args: [...create, '--permissions', 'apps:read,apps:destroy'], code: 2, line: /^refract token create: unknown permission "apps:destroy"/ },
      { args: [...create, '--permissions', ' , '], code: 2, line: /^refract token create: --permissions needs at least one permission$/ },
      { args: [...create, '--permissions'], code: 2, line: /^refract token create: --permissions needs a value$/ },
      { args: [...create, '--zones', 'not-a-zone'], code: 2, line: /^refract token create: "not-a-zone" is not a zone id/ },
      { args: [...create, '--zones', `${ZONE.id},${ZONE.id.slice(1)}`], code: 2, line: new RegExp(`^refract token create: "${ZONE.id.slice(1)}" is not a zone id`) },
      { args: [...create, '--zones', ','], code: 2, line: /^refract token create: --zones needs at least one zone id$/ },
      { args: [...create, '--global'], code: 2, line: /^refract token create: --global needs --email EMAIL$/ },
      { args: [...create, '--global', '--email', 'not-an-email'], code: 2, line: /^refract token create: --global needs --email EMAIL$/ },
      { args: [...create, '--global', '--email', 'ops@example.com', '--permissions', 'apps:read'], code: 2, line: /^refract token create: a global key has every permission/ },
      { args: [...create, '--global', '--email', 'ops@example.com', '--zones', ZONE.id], code: 2, line: /^refract token create: a global key has every permission/ },
      { args: [...create, '--email', 'ops@example.com'], code: 2, line: /^refract token create: --email goes with --global$/ },
      { args: [...create, '--permision', 'apps:read'], code: 2, line: /^refract token create: unknown flag --permision \(did you mean --permissions\?\)$/ },
      { args: ['list', ...F, '--permissions', 'apps:read'], code: 2, line: /^refract token list: --permissions, --zones, --global and --email go with create$/ },
      { args: ['revoke', ...F], code: 2, line: /^refract token revoke: give one token id or name$/ },
      { args: ['revoke', ...F, 'a', 'b'], code: 2, line: /^refract token revoke: give one token id or name$/ },
      { args: ['list', '--config', join(dir, 'missing.yaml')], code: 1, line: /^refract token: cannot read .*missing\.yaml/ },
      { args: ['create', '--config', bad, '--name', 'x'], code: 1, line: /^refract token: .*bad\.yaml is invalid; run refract validate/ },
    ];
    // As processes too, for three of them: the exit code leaves through src/cli.ts.
    const asProcess = new Set([0, 6, 21]);
    const results = await Promise.all(cases.map((c, i) => (asProcess.has(i) ? runCli(['token', ...c.args]) : tokenInProcess(c.args))));
    const inProcess = [...asProcess].map((i) => tokenInProcess(cases[i]!.args));
    for (const [k, i] of [...asProcess].entries()) assert.deepEqual(results[i], inProcess[k], `token ${cases[i]!.args.join(' ')}: the process and the function agree`);
    for (const [i, c] of cases.entries()) {
      const r = results[i]!;
      const what = `token ${c.args.join(' ')}`;
      assert.equal(r.code, c.code, `${what}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr.split('\n')[0]!, c.line, what);
      assert.equal(r.stdout, '', `${what}: nothing on stdout`);
      if (c.code === 2) assert.match(r.stderr, /\nUsage: refract token create /, `${what}: the usage follows`);
    }
    assert.equal(existsSync(db()), false, 'no database was created by a refused command');
  });

  it('creates tokens and a global key (the last stdout line), lists them without secrets, and the running API enforces and revokes them', { timeout: 120_000 }, async () => {
    const create = async (args: string[]): Promise<{ id: string; secret: string; stdout: string; stderr: string }> => {
      const r = await runCli(['token', 'create', '--config', file, ...args]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      const id = /created (?:token|global key) ([0-9a-f]{32}) /.exec(r.stderr)?.[1];
      assert.ok(id, r.stderr);
      return { id, secret: lines.at(-1)!, stdout: r.stdout, stderr: r.stderr };
    };
    // Zone ids are case-insensitive on the command line (stored lower-case).
    const [ci, ro, ops] = await inBatches(
      [['--name', 'ci'], ['--name', 'ro', '--permissions', 'apps:read', '--zones', ZONE.id.toUpperCase()], ['--global', '--name', 'ops', '--email', 'Ops@Example.com']],
      2,
      create,
    );
    assert.match(ci!.secret, /^rfk_[A-Za-z0-9_-]{40}$/);
    assert.match(ro!.secret, /^rfk_[A-Za-z0-9_-]{40}$/);
    assert.match(ops!.secret, /^rfg_[A-Za-z0-9_-]{40}$/);
    for (const t of [ci!, ro!, ops!]) assert.ok(!t.stderr.includes(t.secret), 'the secret is on stdout only');

    const list = async (): Promise<string[][]> => {
      const r = await runCli(['token', 'list', '--config', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, SECRET, 'list never prints a secret');
      for (const t of [ci!, ro!, ops!]) assert.ok(!(r.stdout + r.stderr).includes(t.secret.slice(4)));
      return r.stdout.trimEnd().split('\n').map((l) => l.split('\t'));
    };
    const rows = await list();
    const row = (id: string) => rows.find((r) => r[0] === id);
    assert.equal(rows.length, 3);
    assert.deepEqual(row(ci!.id)?.filter((_, i) => i !== 3), [ci!.id, 'ci', 'active', PERMISSIONS.join(','), 'all zones']);
    assert.deepEqual(row(ro!.id)?.filter((_, i) => i !== 3), [ro!.id, 'ro', 'active', 'apps:read', ZONE.id]);
    assert.deepEqual(row(ops!.id)?.filter((_, i) => i !== 3), [ops!.id, 'ops', 'active', 'global key', 'ops@example.com']);
    for (const r of rows) assert.ok(!Number.isNaN(Date.parse(r[3]!)), `created time ${r[3]}`);

    const served = await startServe(file, apiPort);
    const key = (email: string, k: string) =>
      fetch(`${served.base}/zones/${ZONE.id}`, { headers: { 'x-auth-email': email, 'x-auth-key': k }, signal: AbortSignal.timeout(5000) }).then(async (r) => ({ status: r.status, json: (await r.json()) as any }));
    try {
      assert.equal((await apiCall(served.base, ci!.secret, 'GET', '/user/tokens/verify')).json.result.id, ci!.id);
      assert.equal((await apiCall(served.base, ro!.secret, 'GET', APPS)).status, 200);
      const denied = await apiCall(served.base, ro!.secret, 'POST', APPS, { protocol: 'tcp/1', dns: { name: 'ro.example.com' }, origin_direct: ['tcp://127.0.0.1:9'] });
      assert.equal(denied.status, 403);
      assert.equal(denied.json.errors[0].refract_code, 'E_API_FORBIDDEN');
      assert.equal((await key('ops@example.com', ops!.secret)).status, 200);

      // A token created while serve runs works at once.
      const late = await create(['--name', 'late']);
      assert.equal((await apiCall(served.base, late.secret, 'GET', APPS)).status, 200);

      // Revoked by name: the next request is 401, code 10000; the other tokens are untouched.
      const byName = await runCli(['token', 'revoke', '--config', file, 'ci']);
      assert.equal(byName.code, 0, byName.stderr);
      assert.match(byName.stderr, /revoked 1 token\b/);
      const refused = await apiCall(served.base, ci!.secret, 'GET', APPS);
      assert.equal(refused.status, 401);
      assert.equal(refused.json.errors[0].code, 10000);
      assert.equal(refused.json.errors[0].refract_code, 'E_API_AUTH');
      assert.equal((await apiCall(served.base, ro!.secret, 'GET', APPS)).status, 200);

      // Revoked by id: the global key too.
      const byId = await runCli(['token', 'revoke', '--config', file, ops!.id]);
      assert.equal(byId.code, 0, byId.stderr);
      const keyRefused = await key('ops@example.com', ops!.secret);
      assert.equal(keyRefused.status, 401);
      assert.equal(keyRefused.json.errors[0].refract_code, 'E_API_AUTH');

      // Nothing left to revoke under that name: exit 1.
      const again = await runCli(['token', 'revoke', '--config', file, 'ci']);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /revoked 0 tokens/);
    } finally {
      assert.equal(await served.kill('SIGTERM'), 0);
    }
    const after = await list();
    assert.deepEqual(
      after.map((r) => [r[1], r[2]]).sort(),
      [['ci', 'revoked'], ['late', 'active'], ['ops', 'revoked'], ['ro', 'active']],
    );
  });
});
