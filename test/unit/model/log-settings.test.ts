/** `log.max_buffer` and `log.rate_limit` (docs/configuration.md, `log`): parsed, defaulted, refused with a pointer. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../../src/model/config.ts';

test('log.max_buffer and log.rate_limit are parsed into bytes and ms', () => {
  const r = validateConfig({ log: { max_buffer: '256K', rate_limit: { lines: 0, interval_ms: 1_000 } } });
  assert.ok(r.ok);
  assert.equal(r.config.log.maxBufferBytes, 256 * 1024);
  assert.deepEqual(r.config.log.rateLimit, { lines: 0, intervalMs: 1_000 });
});

test('a buffer under 64K or over 1G, a negative line count, an unknown key: E_CONFIG_SCHEMA at their pointers', () => {
  for (const [log, pointer] of [
    [{ max_buffer: '32K' }, '/log/max_buffer'],
    [{ max_buffer: '2G' }, '/log/max_buffer'],
    [{ max_buffer: 1048576 }, '/log/max_buffer'],
    [{ rate_limit: { lines: -1 } }, '/log/rate_limit/lines'],
    [{ rate_limit: { per_cause: 5 } }, '/log/rate_limit'],
  ] as const) {
    const r = validateConfig({ log });
    assert.equal(r.ok, false, JSON.stringify(log));
    if (r.ok) continue;
    assert.ok(r.issues.some((i) => i.code === 'E_CONFIG_SCHEMA' && i.pointer.startsWith(pointer)), `${JSON.stringify(log)}: ${JSON.stringify(r.issues)}`);
  }
});
