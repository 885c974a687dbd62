/**
 * Config file limits before cost (issue #16): size, UTF-8, node count and alias bombs, each refused with its code
 * before the document is parsed; a file within the limits loads exactly as loadConfigText does.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { countYamlNodes, decodeConfigBytes, firstInvalidUtf8, loadConfigBytes, CONFIG_FILE_LIMITS } from '../../../src/model/config-file.ts';
import { loadConfigText } from '../../../src/model/config.ts';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const EXAMPLE = readFileSync(new URL('../../../examples/refract.yaml', import.meta.url), 'utf8');
const codes = (r: ReturnType<typeof loadConfigBytes>): string[] => (r.ok ? [] : r.issues.map((i) => i.code));

describe('firstInvalidUtf8', () => {
  it("agrees with the WHATWG decoder (TextDecoder fatal) on random bytes: valid exactly when it finds nothing", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        let valid = true;
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        } catch {
          valid = false;
        }
        const at = firstInvalidUtf8(bytes);
        assert.equal(at === -1, valid);
        // Everything before the offset is well formed.
        if (at >= 0) new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, at));
      }),
      { numRuns: 5_000, seed: 16 },
    );
  });

  it('finds nothing in any well-formed text, astral characters included', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => firstInvalidUtf8(utf8(s)) === -1), { numRuns: 2_000, seed: 17 });
  });

  it('refuses overlong forms, surrogates and code points past U+10FFFF', () => {
    for (const bad of [[0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xe2, 0x82]]) {
      assert.equal(firstInvalidUtf8(Uint8Array.from([0x61, ...bad])), 1, bad.map((b) => b.toString(16)).join(' '));
    }
  });
});

describe('decodeConfigBytes', () => {
  it('names the line and column of the first byte that is not UTF-8 (Latin-1 é on line 3)', () => {
    const bytes = Uint8Array.from([...utf8('apps:\n  - protocol: tcp/1\n    dns: { name: caf'), 0xe9, ...utf8('.example }\n')]);
    const r = decodeConfigBytes(bytes, 'x.yaml');
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.issue.code, 'E_CONFIG_ENCODING');
    assert.equal(r.issue.line, 3);
    assert.equal(r.issue.column, 21); // 4 spaces, "dns: { name: caf" is 16 bytes, then the byte
    assert.match(r.issue.message, /line 3/);
  });

  it('drops a byte-order mark and decodes the rest', () => {
    const r = decodeConfigBytes(Uint8Array.from([0xef, 0xbb, 0xbf, ...utf8('a: é\n')]), 'x');
    assert.deepEqual(r, { ok: true, text: 'a: é\n' });
  });
});

describe('countYamlNodes', () => {
  it('counts scalars, flow collections, list dashes and key markers', () => {
    assert.equal(countYamlNodes('- a\n- b\n'), 4);
    assert.equal(countYamlNodes('k: v\n'), 3);
    assert.equal(countYamlNodes('{a: [1, 2]}'), 6);
    assert.equal(countYamlNodes('-\n-\n-\n'), 3, 'empty list items count too');
  });

  it('stops just past the bound', () => {
    assert.equal(countYamlNodes('- a\n'.repeat(1000), 10), 11);
  });
});

describe('loadConfigBytes', () => {
  it('loads the example exactly as loadConfigText does', () => {
    assert.deepEqual(loadConfigBytes(utf8(EXAMPLE), 'example.yaml'), loadConfigText(EXAMPLE, 'example.yaml'));
  });

  it('refuses more bytes than the limit with E_CONFIG_TOO_LARGE, before decoding them', () => {
    const r = loadConfigBytes(Uint8Array.from([0xff, ...utf8(EXAMPLE)]), 'x', { ...CONFIG_FILE_LIMITS, maxBytes: 100 });
    assert.deepEqual(codes(r), ['E_CONFIG_TOO_LARGE']);
  });

  it('refuses invalid UTF-8 with E_CONFIG_ENCODING (never replaced by U+FFFD)', () => {
    assert.deepEqual(codes(loadConfigBytes(Uint8Array.from([...utf8('node: { id: a'), 0xff, 0x62, ...utf8(' }\n')]), 'x')), ['E_CONFIG_ENCODING']);
  });

  it('refuses more nodes than the limit with E_CONFIG_TOO_COMPLEX, naming the limit', () => {
    const text = `${EXAMPLE}\nignored:\n${'  - x\n'.repeat(5_000)}`;
    const r = loadConfigBytes(utf8(text), 'x', { ...CONFIG_FILE_LIMITS, maxNodes: 1_000 });
    assert.deepEqual(codes(r), ['E_CONFIG_TOO_COMPLEX']);
    assert.match(r.ok ? '' : r.issues[0]!.message, /1000 YAML nodes/);
  });

  it('refuses an alias bomb (a few lines that expand exponentially) with E_CONFIG_TOO_COMPLEX', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    const r = loadConfigBytes(utf8(`${levels.join('\n')}\n`), 'bomb.yaml');
    assert.deepEqual(codes(r), ['E_CONFIG_TOO_COMPLEX']);
  });
});
