/**
 * `refract validate FILE` output for warnings and positions (docs/configuration.md "Warnings"): problems as
 * `FILE:LINE:COLUMN: CODE: message (at POINTER)`, warnings after them marked `warning:`, exit 0 with warnings alone
 * (`OK (…, N warnings)`), exit 1 with any error. Runs `node --import tsx src/cli.ts` as a child process; no ports.
 * Asserts codes, positions and the suggested key, not message prose.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** A cold start compiles the CLI through tsx; allow for a loaded machine. */
const RUN_MS = 60_000;

function validate(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'validate', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`refract validate ${file} did not exit within ${RUN_MS} ms\n${stderr}`));
    }, RUN_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `LINE:COL [warning] CODE POINTER` of each placed line, in output order. */
function placed(out: string, file: string): string[] {
  return out
    .split('\n')
    .filter((l) => l.startsWith(`${file}:`) && /^\d+:\d+: /.test(l.slice(file.length + 1)))
    .map((l) => {
      const m = /^(\d+):(\d+): (warning: )?([EW]_[A-Z0-9_]+)\b.* \(at (\S+)\)$/.exec(l.slice(file.length + 1));
      assert.ok(m !== null, `unexpected line: ${l}`);
      return `${m[1]}:${m[2]} ${m[3] === undefined ? '' : 'warning '}${m[4]} ${m[5]}`;
    });
}

async function withFile(name: string, text: string, body: (file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-validate-'));
  try {
    const file = join(dir, name);
    writeFileSync(file, text);
    await body(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const APP = ['  - protocol: tcp/7720', '    dns: { name: a.example.test }', '    origin_direct: ["tcp://127.0.0.1:7745"]'];

void describe('refract validate: warnings and positions', () => {
  void it('a valid file with a misspelt app key exits 0, says OK with the warning count, and prints the warning with its position and suggestion', { timeout: RUN_MS }, async () => {
    await withFile('w.yaml', ['apps:', ...APP, '    proxy_protocl: v2', '    created_on: "2014-01-02T02:20:00Z"', ''].join('\n'), async (file) => {
      const r = await validate(file);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /: OK \(.*, 1 warning\)\n/);
      assert.deepEqual(placed(r.stdout, file), ['5:5 warning W_CONFIG_UNKNOWN_KEY /apps/0/proxy_protocl']);
      assert.match(r.stdout, /"proxy_protocol"/);
    });
  });

  void it('errors come first with FILE:LINE:COLUMN, warnings after them, and the exit status is 1', { timeout: RUN_MS }, async () => {
    const text = [
      'access_rules:', // 1
      '  - { mode: block, configuration: { target: ip, value: 192.0.2.1 } }', // 2
      'apps:', // 3
      '  - protocol: tcp/7720', // 4
      '    dns: { name: a.example.test }', // 5
      '    origin_direct: ["tcp://127.0.0.1:7745"]', // 6
      '    tls: FULL', // 7
      '    ip_firewal: true', // 8
      '',
    ].join('\n');
    await withFile('bad.yaml', text, async (file) => {
      const r = await validate(file);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(placed(r.stdout, file), [
        '7:10 E_CONFIG_SCHEMA /apps/0/tls',
        '1:1 warning W_ACCESS_RULES_UNUSED /access_rules',
        '8:5 warning W_CONFIG_UNKNOWN_KEY /apps/0/ip_firewal',
      ]);
      assert.match(r.stdout, /"ip_firewall"/);
    });
  });

  void it('a JSON file gets positions too', { timeout: RUN_MS }, async () => {
    const text = '{\n  "apps": [\n    {\n      "protocol": "tcp/0",\n      "dns": { "name": "a.example.test" },\n      "origin_direct": ["tcp://127.0.0.1:7745"]\n    }\n  ]\n}\n';
    await withFile('bad.json', text, async (file) => {
      const r = await validate(file);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(placed(r.stdout, file), ['4:19 E_CONFIG_PORT_ZERO /apps/0/protocol']);
    });
  });
});
