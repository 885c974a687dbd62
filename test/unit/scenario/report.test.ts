import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatFailures, formatIssues, formatSummary } from '../../../src/scenario/report.ts';
import { runScenario } from '../../../src/scenario/runner.ts';
import { configIssue } from '../../../src/model/app.ts';
import { scenario } from './helpers.ts';

void describe('report text', () => {
  void it('formatDuration picks a readable unit', () => {
    assert.equal(formatDuration(0.2), '0.2 ms');
    assert.equal(formatDuration(850), '850 ms');
    assert.equal(formatDuration(1_500), '1.5 s');
    assert.equal(formatDuration(31_010), '31 s');
    assert.equal(formatDuration(926_460), '15 min 26 s');
    assert.equal(formatDuration(7_200_000), '2 h 0 min');
  });

  void it('the summary gives times, event rate, connections by status with bytes, the hash and quiescence', async () => {
    const r = await runScenario(scenario((x) => {
      x['timeline'].push({ at: 0, connect: { id: 'refused', client: 'alice', to: '198.51.100.1:7001' } });
    }));
    const text = formatSummary(r);
    assert.match(text, /virtual, .* wall \(ran until idle\)/);
    assert.match(text, /simulator events, [\d,]+ events\/s/);
    assert.match(text, new RegExp(`sha256 ${r.traceHash}`));
    assert.match(text, /^200\s+1\s+2\s+2\s+normal$/m);
    assert.match(text, /^— \(ECONNREFUSED\)\s+1\s+0\s+0$/m);
    assert.match(text, /^total\s+2\s+2\s+2$/m);
    assert.match(text, /^refused\s+—\s+not accepted/m);
    assert.match(text, /quiescent: yes/);
  });

  void it('the summary of a load run lists totals, not a row per connection', async () => {
    const r = await runScenario(scenario((x) => {
      x['timeline'] = [{ at: 0, load: { id_prefix: 'l', client: 'alice', to: '198.51.100.1:7000', count: 25, bytes: 4 } }];
      x['expect'] = {};
    }));
    const text = formatSummary(r);
    assert.match(text, /^200\s+25\s+100\s+100\s+normal$/m);
    assert.doesNotMatch(text, /^l0\s/m);
  });

  void it('the failure diff shows each pointer with expected and actual, and where two texts first differ', () => {
    const text = formatFailures([
      { path: '/expect/connections/0/received', expected: '220 mx.example.test ESMTP\r\n', actual: '220 mx.example.test SMTP\r\n' },
      { path: '/expect/statuses/200', expected: 1000, actual: 998 },
    ]);
    assert.match(text, /^2 expectations failed:/);
    assert.match(text, /\/expect\/connections\/0\/received\n {4}expected: "220 mx.example.test ESMTP\\r\\n"\n {4}actual: {3}"220 mx.example.test SMTP\\r\\n"/);
    assert.match(text, /first difference at character 20/);
    assert.match(text, /\/expect\/statuses\/200\n {4}expected: 1000\n {4}actual: {3}998/);
    assert.equal(formatFailures([]), '');
  });

  void it('the failure diff lists the connections left open when a run is not quiescent', () => {
    const text = formatFailures([{ path: '/expect/quiescent', expected: 'x', actual: { why: 'connections left open', pendingTimers: 0, open: ['alice 203.0.113.10:49152>198.51.100.1:7000 CLOSE_WAIT (app open)'] } }]);
    assert.match(text, /actual: {3}connections left open; 0 timer\(s\) pending\n\s+alice 203\.0\.113\.10:49152>198\.51\.100\.1:7000 CLOSE_WAIT/);
  });

  void it('issues print as FILE:LINE:COL: POINTER: CODE (cfCode): message', () => {
    const text = formatIssues('s.yaml', [
      { ...configIssue('/apps/0', 'E_ORIGIN_CONFIG_INVALID', 'give one'), line: 12, col: 5 },
      configIssue('', 'E_SCENARIO_READ', 'cannot read'),
    ]);
    assert.equal(text, 's.yaml: 2 problems\n  s.yaml:12:5: /apps/0: E_ORIGIN_CONFIG_INVALID (11000): give one\n  s.yaml: /: E_SCENARIO_READ: cannot read');
  });
});
