/**
 * Every scenario file in `scenarios/` (and `scenarios/regressions/`, where property tests save shrunk failures) runs
 * on its own fixed seed and must meet all its expectations. A few run twice to show the trace is byte-identical per
 * seed. Each file must start with a comment telling its story (what happens and what it proves).
 *
 * Each run is also held to the trace hash and report digest pinned in `test/scenario-hashes.json`, so a change
 * meant to be behaviour-neutral (a refactor of the runner, the engine or the simulator) proves it is. A change that
 * alters a run on purpose re-pins them: `REFRACT_PIN_HASHES=1 node --import tsx --test test/scenarios.test.ts`
 * rewrites the file, and the diff shows which scenarios moved.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenario } from '../src/scenario/schema.ts';
import { runScenario } from '../src/scenario/runner.ts';
import { formatFailures } from '../src/scenario/report.ts';
import { type ScenarioReport } from '../src/scenario/runner.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DIRS = ['scenarios', join('scenarios', 'regressions')];
/**
 * Run twice each; chosen to cover loss and jitter, crashes, partitions with long TCP retries, sliced writes, UDP
 * (SPP with jitter; loss, duplication and reordering per datagram), and DNS answers that follow an edge-IP rotation
 * (query ids from the seed, api writes).
 */
const TWICE = new Set([
  '04-partition-mid-stream.yaml',
  '11-thousand-lossy-clients.yaml',
  '12-origin-crash-restart.yaml',
  '13-proxy-v2-sliced.yaml',
  '17-udp-game-server-spp.yaml',
  '19-udp-lossy-link.yaml',
  '30-dns-rotation.yaml',
]);

/** What a run is pinned to: its trace, how long it ran, and everything it reported but wall time. */
interface Pin {
  readonly traceHash: string;
  readonly traceLines: number;
  readonly steps: number;
  /** sha256 (hex) of the report as JSON, `wallMs` left out. */
  readonly report: string;
}
const PINS_PATH = join(fileURLToPath(new URL('./', import.meta.url)), 'scenario-hashes.json');
const REPIN = process.env['REFRACT_PIN_HASHES'] === '1';
const pins = existsSync(PINS_PATH) ? (JSON.parse(readFileSync(PINS_PATH, 'utf8')) as Record<string, Pin>) : {};
const seen: Record<string, Pin> = {};

function pinOf(r: ScenarioReport): Pin {
  const { wallMs: _wall, ...rest } = r;
  return { traceHash: r.traceHash, traceLines: r.traceLines, steps: r.steps, report: createHash('sha256').update(JSON.stringify(rest)).digest('hex') };
}

const files = DIRS.flatMap((d) => {
  const dir = join(ROOT, d);
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => ({ dir: d, name: f, path: join(dir, f) })) : [];
});

void describe('scenario files', () => {
  after(() => {
    if (REPIN) writeFileSync(PINS_PATH, `${JSON.stringify(Object.fromEntries(Object.entries(seen).sort(([a], [b]) => a.localeCompare(b))), null, 2)}\n`);
  });

  void it('there are at least 12 scenarios, numbered, each opening with a story comment', () => {
    const top = files.filter((f) => f.dir === 'scenarios');
    assert.ok(top.length >= 12, `only ${top.length} scenarios`);
    for (const f of top) {
      assert.match(f.name, /^\d{2}-[a-z0-9-]+\.yaml$/, `${f.name}: name it NN-what-it-shows.yaml`);
      const text = readFileSync(f.path, 'utf8');
      const comment = text.split('\n').filter((l, i, all) => all.slice(0, i + 1).every((x) => x.startsWith('#')));
      assert.ok(comment.length >= 4, `${f.name}: start with a comment of a few lines telling the story`);
      assert.ok(comment.some((l) => /proves/i.test(l)), `${f.name}: the top comment should say what it proves`);
    }
  });

  for (const f of files) {
    void it(`${f.dir}/${f.name} meets its expectations on its seed`, async () => {
      const parsed = parseScenario(readFileSync(f.path, 'utf8'), f.name);
      assert.ok(parsed.ok, parsed.ok ? '' : JSON.stringify(parsed.issues, null, 2));
      const report = await runScenario(parsed.scenario);
      assert.equal(report.failures.length, 0, `\n${formatFailures(report.failures)}`);
      assert.equal(report.stoppedBy, 'idle');
      assert.ok(report.connections.length + report.flows.length > 0);
      const key = `${f.dir}/${f.name}`.replaceAll('\\', '/');
      seen[key] = pinOf(report);
      if (!REPIN) assert.deepEqual(seen[key], pins[key], `${key}: the run differs from its pinned hashes (re-pin with REFRACT_PIN_HASHES=1 if the change is meant)`);
      if (TWICE.has(f.name)) {
        const again = await runScenario(parsed.scenario);
        assert.equal(again.traceHash, report.traceHash, 'same seed, different trace');
        assert.equal(again.steps, report.steps);
        assert.deepEqual(again.connections, report.connections);
        assert.deepEqual(again.flows, report.flows);
        assert.deepEqual(again.udp, report.udp);
        assert.deepEqual(again.resolutions, report.resolutions);
        assert.deepEqual(again.api, report.api);
      }
    });
  }

  void it('UDP over lossy links: what must hold holds on other seeds too, and the seed does change the run', async () => {
    const f = files.find((x) => x.name === '19-udp-lossy-link.yaml');
    assert.ok(f !== undefined);
    const parsed = parseScenario(readFileSync(f.path, 'utf8'), f.name);
    assert.ok(parsed.ok);
    const hashes = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5]) {
      const report = await runScenario(parsed.scenario, { seed });
      assert.equal(report.failures.length, 0, `seed ${seed}:\n${formatFailures(report.failures)}`);
      // The links did lose and duplicate: not every flow got exactly its 20 echoes.
      assert.ok(report.flows.some((x) => x.receivedDatagrams !== 20), `seed ${seed}: no loss or duplication happened`);
      hashes.add(report.traceHash);
    }
    assert.equal(hashes.size, 5, 'five seeds, five different runs');
  });

  void it('1,000 clients over lossy links all complete with status 200 (speed is measured in bench/, not here)', async () => {
    const f = files.find((x) => x.name === '11-thousand-lossy-clients.yaml');
    assert.ok(f !== undefined);
    const parsed = parseScenario(readFileSync(f.path, 'utf8'), f.name);
    assert.ok(parsed.ok);
    const report = await runScenario(parsed.scenario);
    assert.equal(report.connections.length, 1000);
    assert.deepEqual(report.byStatus, { '200': 1000 });
  });
});
