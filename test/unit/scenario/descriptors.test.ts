// Descriptor exhaustion in scenarios: an edge's `max_descriptors`, `expect.descriptors`, the report's counts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { formatSummary } from '../../../src/scenario/report.ts';
import { runScenario } from '../../../src/scenario/runner.ts';
import { parseScenario, validateScenario } from '../../../src/scenario/schema.ts';
import { type ScenarioFile } from '../../../src/scenario/types.ts';
import { scenario } from './helpers.ts';

function file33(): ScenarioFile {
  const parsed = parseScenario(readFileSync(new URL('../../../scenarios/33-descriptor-exhaustion.yaml', import.meta.url), 'utf8'), '33-descriptor-exhaustion.yaml');
  assert.ok(parsed.ok);
  return parsed.scenario;
}

void describe('descriptor exhaustion in scenarios', () => {
  void it('33-descriptor-exhaustion.yaml: every connection is served or counted, none lost without a trace', async () => {
    const r = await runScenario(file33());
    assert.deepEqual(r.failures, []);
    assert.ok(r.descriptors);
    assert.equal(r.descriptors.lostUntraced, 0);
    // Connections without a closing event are exactly the ones the guard reset and counted.
    const noEvent = r.connections.filter((c) => c.status === null);
    assert.equal(noEvent.length, r.descriptors.acceptRefused);
    assert.ok(noEvent.every((c) => c.error === 'ECONNRESET'));
    // Origin-side losses: one 503 E_UPSTREAM_EMFILE per failed connect or bind.
    const upstream = r.connections.filter((c) => c.code === 'E_UPSTREAM_EMFILE').length + r.flows.filter((f) => f.status === 503).length;
    assert.equal(upstream, r.descriptors.upstreamFailed);
    assert.match(formatSummary(r), /descriptors: 3 accepts reset and counted/);
  });

  void it('a wrong expect.descriptors count fails at its pointer with the actual count', async () => {
    const sc = structuredClone(file33()) as ScenarioFile;
    sc.expect!.descriptors = { accept_refused: 2, lost_untraced: [1, 5] };
    const r = await runScenario(sc);
    assert.deepEqual(
      r.failures.map((f) => [f.path, f.actual]),
      [
        ['/expect/descriptors/accept_refused', 3],
        ['/expect/descriptors/lost_untraced', 0],
      ],
    );
  });

  void it('without max_descriptors the report has no descriptors and an expectation reads 0', async () => {
    const r = await runScenario(scenario((s) => (s['expect'].descriptors = { accept_refused: 0, episodes: 1 })));
    assert.equal(r.descriptors, undefined);
    assert.deepEqual(r.failures.map((f) => f.path), ['/expect/descriptors/episodes']);
  });

  void it('validation: max_descriptors is a positive integer, descriptor expectations are counts', () => {
    const bad = validateScenario(scenario((s) => {
      s['topology'].edges[0].max_descriptors = 0;
      s['expect'].descriptors = { accept_refused: -1, surprise: 1 };
    }));
    assert.equal(bad.ok, false);
    const pointers = bad.ok ? [] : bad.issues.map((i) => i.pointer);
    assert.ok(pointers.some((p) => p.startsWith('/topology/edges/0')), pointers.join(' '));
    assert.ok(pointers.some((p) => p.startsWith('/expect/descriptors')), pointers.join(' '));
  });
});
