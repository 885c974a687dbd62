/**
 * `refract sim`: in process through `simCommand` with captured output, in its worker thread (`simInWorker`, what
 * src/cli.ts runs) against the same, and once as users run it (`node bin/refract.js sim …`) to check the wiring in
 * src/cli.ts. Files live in a fresh temp dir per test.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { simCommand, type SimIo } from '../../../src/scenario/cli.ts';
import { simInWorker } from '../../../src/cli/sim-thread.ts';
import { parseTrace } from '../../../src/streams/trace.ts';
import { minimal, yamlOf } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Captured extends SimIo {
  stdout: string;
  stderr: string;
}

/** Output captured in memory; `now` advances 200 ms per call so the progress bar's throttle can be exercised. */
function io(tty = false): Captured {
  let t = 0;
  const c: Captured = {
    stdout: '',
    stderr: '',
    tty,
    out: (s) => void (c.stdout += s),
    err: (s) => void (c.stderr += s),
    now: () => (t += 200),
  };
  return c;
}

function file(content: Record<string, any> | string): string {
  const dir = mkdtempSync(join(tmpdir(), 'refract-sim-'));
  const p = join(dir, 'scenario.yaml');
  writeFileSync(p, typeof content === 'string' ? content : yamlOf(content));
  return p;
}

void describe('refract sim', () => {
  void it('exits 0 and prints the summary when every expectation holds', async () => {
    const o = io();
    assert.equal(await simCommand([file(minimal())], o), 0);
    assert.match(o.stdout, /^scenario {2}minimal$/m);
    assert.match(o.stdout, /expectations: all held/);
    assert.equal(o.stderr, '');
  });

  void it('exits 1 with a readable diff when an expectation fails', async () => {
    const s = minimal();
    s['expect'].connections[0].received = 'ho';
    const o = io();
    assert.equal(await simCommand([file(s)], o), 1);
    assert.match(o.stdout, /1 expectation failed:\n {2}\/expect\/connections\/0\/received\n {4}expected: "ho"\n {4}actual: {3}"hi"/);
  });

  void it('exits 2 and prints every problem with its line when the file is invalid', async () => {
    const s = minimal();
    s['seed'] = 'one';
    s['timeline'][1].send.id = 'ghost';
    const o = io();
    assert.equal(await simCommand([file(s)], o), 2);
    assert.match(o.stderr, /2 problems/);
    assert.match(o.stderr, /scenario\.yaml:2:7: \/seed: E_SCENARIO_SCHEMA/);
    assert.match(o.stderr, /scenario\.yaml:\d+:\d+: \/timeline\/1\/send\/id: E_SCENARIO_REFERENCE/);
    assert.equal(o.stdout, '');
  });

  void it('exits 2 on an unreadable file, a bad flag, a bad seed, or no file', async () => {
    for (const argv of [['/nonexistent/s.yaml'], [file(minimal()), '--frobnicate'], [file(minimal()), '--seed', '-3'], []]) {
      const o = io();
      assert.equal(await simCommand(argv, o), 2, argv.join(' '));
      assert.ok(o.stderr.length > 0);
    }
  });

  void it('--seed overrides the file seed and --json prints the report', async () => {
    const o = io();
    assert.equal(await simCommand([file(minimal()), '--seed', '42', '--json'], o), 0);
    const r = JSON.parse(o.stdout) as { seed: number; failures: unknown[]; connections: Array<{ id: string }> };
    assert.equal(r.seed, 42);
    assert.deepEqual(r.failures, []);
    assert.equal(r.connections[0]?.id, 'c');
  });

  void it('--trace writes the decision trace as JSON lines', async () => {
    const p = file(minimal());
    const out = join(p, '..', 'trace.jsonl');
    const o = io();
    assert.equal(await simCommand([p, '--trace', out, '--json'], o), 0);
    const report = JSON.parse(o.stdout) as { traceLines: number };
    const parsed = parseTrace(readFileSync(out, 'utf8'));
    assert.deepEqual(parsed.errors, []);
    assert.equal(parsed.records.length, report.traceLines);
  });

  void it('--check-determinism runs twice and reports the same hash', async () => {
    const o = io();
    assert.equal(await simCommand([file(minimal()), '--check-determinism'], o), 0);
    assert.match(o.stdout, /determinism: ok, two runs with seed 1 gave the same trace/);
    const j = io();
    assert.equal(await simCommand([file(minimal()), '--check-determinism', '--json'], j), 0);
    const r = JSON.parse(j.stdout) as { determinism: { same: boolean; hashes: string[] } };
    assert.equal(r.determinism.same, true);
    assert.equal(r.determinism.hashes[0], r.determinism.hashes[1]);
  });

  void it('draws a progress bar on a terminal only, and clears it', async () => {
    const s = minimal();
    s['timeline'] = [{ at: 0, load: { id_prefix: 'l', client: 'alice', to: '198.51.100.1:7000', count: 300, bytes: 8 } }];
    s['expect'] = {};
    const tty = io(true);
    assert.equal(await simCommand([file(s)], tty), 0);
    assert.match(tty.stderr, /\r\[[#-]{30}\] [\d.]+ s of at most 3600 s virtual/);
    assert.ok(tty.stderr.endsWith('\r\u001b[2K'));
    const pipe = io(false);
    assert.equal(await simCommand([file(s)], pipe), 0);
    assert.equal(pipe.stderr, '');
  });

  void it('in its worker thread prints the same and exits with the same code as in process', async () => {
    const failing = minimal();
    failing['expect'].connections[0].received = 'ho';
    const invalid = minimal();
    invalid['seed'] = 'one';
    const traced = file(minimal());
    const cases = [[file(minimal())], [file(failing)], [file(invalid)], [file(minimal()), '--frobnicate'], [traced, '--json', '--seed', '7', '--trace', join(traced, '..', 'trace.jsonl')]];
    // The wall-clock figures are the only thing that may differ between two runs.
    const steady = (out: string): string => out.replace(/"wallMs": [\d.]+/g, '"wallMs": 0').replace(/ms virtual, .* wall/, 'ms virtual, wall').replace(/, [\d,]+ events\/s/, '');
    for (const argv of cases) {
      const here = io();
      const code = await simCommand([...argv], here);
      const inProcessTrace = argv.includes('--trace') ? readFileSync(join(traced, '..', 'trace.jsonl'), 'utf8') : '';
      const there = { stdout: '', stderr: '' };
      assert.equal(await simInWorker(argv, { out: (t) => void (there.stdout += t), err: (t) => void (there.stderr += t) }), code, argv.join(' '));
      assert.equal(steady(there.stdout), steady(here.stdout), argv.join(' '));
      assert.equal(there.stderr, here.stderr, argv.join(' '));
      if (argv.includes('--trace')) assert.equal(readFileSync(join(traced, '..', 'trace.jsonl'), 'utf8'), inProcessTrace);
    }
  });

  void it('runs as `refract sim` from the command line', async () => {
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'refract.js'), 'sim', join(ROOT, 'scenarios', '01-port-range.yaml'), '--seed', '1'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('refract sim did not finish within 60 s'));
      }, 60_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout });
      });
    });
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /expectations: all held/);
  });
});
