/**
 * What `npm run fuzz` (test/fuzz) found in the config loader, each with its minimal input.
 *
 * - Deep nesting. Before the depth bound, a config with a block list nested about 3,000 deep (`- - - …`) overflowed
 *   the YAML parser's stack. Called with little stack left (under the fuzzer), the RangeError came out of
 *   loadConfigText, which promises never to throw; otherwise it was reported as E_CONFIG_PARSE. After one such
 *   overflow (`[` × 20,000), the next deep document in the same process (`[` × 5,000 then `]` × 5,000) aborted it
 *   (V8: "RegExpCompiler Allocation failed - process out of memory"), which a reload would do to a running proxy.
 *   Now all of them are E_CONFIG_TOO_DEEP, found before any recursion goes deep.
 * - A long unknown key. The "did you mean" search computed a full edit-distance table between the key and every
 *   known key: a 15,000-character key took 1.1 s to refuse. Keys whose length differs by more than the distance
 *   that could be suggested are now skipped.
 * - Memory that grew over the run. A mapping key that is itself a collection (`{ [a]: 1 }`) made the `yaml` package
 *   call `process.emitWarning` with the key's text ("Keys with collection values will be stringified ...") on every
 *   load: a warning on the process's stderr outside the log, and, in a synchronous loop such as the fuzzer's, one
 *   Error object with its stack per input held in the nextTick queue until the loop ends. The loader now parses with
 *   `logLevel: 'error'`: no process warning (the key is still refused by validation).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText, parseConfigText } from '../../../src/model/config.ts';
import { isRefractError } from '../../../src/model/errors.ts';
import { MAX_YAML_DEPTH } from '../../../src/model/yaml-depth.ts';
import { validateApp } from '../../../src/model/app.ts';
import { didYouMean, suggestKey } from '../../../src/model/suggest.ts';

function codeOf(text: string): string | undefined {
  const r = loadConfigText(text, 'deep.yaml');
  return r.ok ? undefined : r.issues[0]?.code;
}

describe('config nesting depth', () => {
  it('the two deep documents that aborted the process are refused with E_CONFIG_TOO_DEEP, one after the other', () => {
    assert.equal(codeOf('['.repeat(20_000)), 'E_CONFIG_TOO_DEEP');
    assert.equal(codeOf('['.repeat(5_000) + ']'.repeat(5_000)), 'E_CONFIG_TOO_DEEP');
  });

  it('block lists nested 3,000 deep, as in the fuzz input that threw, are refused', () => {
    assert.equal(codeOf(`${'- '.repeat(3_000)}1`), 'E_CONFIG_TOO_DEEP');
    assert.equal(codeOf(`apps:\n  - ${'- '.repeat(3_000)}x\n`), 'E_CONFIG_TOO_DEEP');
  });

  it('every way of nesting counts: flow lists and maps, block lists, indented maps, JSON', () => {
    const n = 2_000;
    assert.equal(codeOf(`a: ${'{b: '.repeat(n)}1${'}'.repeat(n)}`), 'E_CONFIG_TOO_DEEP');
    assert.equal(codeOf(`${'- '.repeat(n)}1`), 'E_CONFIG_TOO_DEEP');
    assert.equal(codeOf(`${Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}a:`).join('\n')} 1`), 'E_CONFIG_TOO_DEEP');
    assert.equal(codeOf(`{"apps":${'['.repeat(n)}${']'.repeat(n)}}`), 'E_CONFIG_TOO_DEEP');
  });

  it(`${MAX_YAML_DEPTH} levels are read; one more is refused, at the line and column of the collection that passes the bound`, () => {
    const at = (levels: number): string => `apps: []\nx: ${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}\n`;
    assert.equal(codeOf(at(MAX_YAML_DEPTH)), 'E_CONFIG_SCHEMA', 'parsed, then refused for the unknown key x');
    const r = loadConfigText(at(MAX_YAML_DEPTH + 1), 'deep.yaml');
    assert.ok(!r.ok);
    assert.equal(r.issues.length, 1);
    assert.deepEqual([r.issues[0]?.code, r.issues[0]?.line, r.issues[0]?.column], ['E_CONFIG_TOO_DEEP', 2, 4 + MAX_YAML_DEPTH - 1]);
  });

  it('aliases count with what they expand to, and an alias inside its own anchor is refused', () => {
    const inner = `${'['.repeat(40)}1${']'.repeat(40)}`;
    assert.equal(codeOf(`a: &a ${inner}\nb: ${'['.repeat(30)}*a${']'.repeat(30)}\n`), 'E_CONFIG_TOO_DEEP');
    assert.equal(codeOf(`a: &a ${inner}\nb: ${'['.repeat(10)}*a${']'.repeat(10)}\n`), 'E_CONFIG_SCHEMA');
    assert.equal(codeOf('a: &a [*a]\n'), 'E_CONFIG_TOO_DEEP');
    assert.equal(codeOf('a: &a {b: {c: *a}}\n'), 'E_CONFIG_TOO_DEEP');
  });

  it('parseConfigText throws a RefractError E_CONFIG_TOO_DEEP with the position', () => {
    try {
      parseConfigText('['.repeat(100), 'deep.yaml');
      assert.fail('expected a throw');
    } catch (e) {
      assert.ok(isRefractError(e));
      assert.equal(e.code, 'E_CONFIG_TOO_DEEP');
      assert.equal(e.details?.['line'], 1);
    }
  });
});

describe('unknown keys of any length', () => {
  const long = `addre${'[*x, '.repeat(20_000)}sses`;

  it('a 100,000-character unknown key is refused with E_CONFIG_SCHEMA and no suggestion', () => {
    // JSON (a flow mapping): YAML's block mappings cap implicit keys at 1,024 characters.
    const r = loadConfigText(`{"edge": {"${long}": 1}}\n`, 'long.yaml');
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map((i) => [i.code, i.suggestion]), [['E_CONFIG_SCHEMA', undefined]]);
    const app = validateApp({ protocol: 'tcp/22', dns: { type: 'CNAME', name: 'a.example.com' }, origin_direct: ['tcp://192.0.2.1:22'], [long]: 1 });
    assert.ok(app.ok);
    assert.deepEqual(app.warnings.map((w) => [w.code, w.suggestion]), [['W_CONFIG_UNKNOWN_KEY', undefined]]);
  });

  it('suggestions within reach are unchanged: two edits, a swap, a missing letter', () => {
    assert.equal(suggestKey('proxy_protocl', ['proxy_protocol', 'tls']), 'proxy_protocol');
    assert.equal(suggestKey('tsl', ['tls', 'ttl']), 'tls');
    assert.equal(suggestKey('originport', ['origin_port']), 'origin_port');
    assert.equal(didYouMean('valdate', ['validate', 'serve']), 'validate');
    assert.equal(didYouMean('val', ['validate', 'serve']), 'validate');
    assert.equal(suggestKey(long, ['addresses']), undefined);
  });
});

void describe('collection keys', () => {
  void it('loading a config with a collection as a key emits no process warning, and is refused', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w.message);
    };
    process.on('warning', onWarning);
    try {
      for (const text of ['{ [a, b]: 1 }\n', '? { edge: 1 }\n: 2\n', '{ "{ \\"name\\": 1 }": 1, [x]: { y: 1 } }\n']) {
        const r = loadConfigText(text, 'keys.yaml');
        assert.equal(r.ok, false, text);
      }
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings, []);
  });
});
