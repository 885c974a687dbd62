/**
 * Keeps docs/errors.md and the ERRORS table in src/model/errors.ts in sync, both ways (fastify's habit): every code
 * is documented once with the same Cloudflare number, source and retryable flag, and the page names no code that
 * does not exist.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERRORS, isErrorCode, type ErrorSource, type ErrorSpec } from '../../../src/model/errors.ts';

const DOC_PATH = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));
const DOC = readFileSync(DOC_PATH, 'utf8');
const HEADER = ['code', 'Cloudflare code', 'source', 'retryable', 'meaning', 'what to do'];
const SOURCES: readonly ErrorSource[] = ['config', 'downstream', 'upstream', 'internal'];

interface DocRow {
  readonly line: number;
  readonly group: string;
  readonly code: string;
  readonly cfCode: number | undefined;
  readonly source: string;
  readonly retryable: boolean | undefined;
}

/** Cells of a Markdown table row; `\|` inside a cell is not a separator. */
function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

/**
 * Rows of every table whose header is exactly HEADER, with the `##` heading they sit under. Throws on a row
 * that does not have six cells or whose code cell is not one backticked code, so a malformed row cannot slip by
 * unchecked.
 */
function parseErrorTables(text: string): DocRow[] {
  const lines = text.split('\n');
  const rows: DocRow[] = [];
  let group = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('## ')) group = line.slice(3).trim();
    if (!line.startsWith('|') || JSON.stringify(cells(line)) !== JSON.stringify(HEADER)) continue;
    assert.match(lines[i + 1] ?? '', /^\|(\s*-+\s*\|)+$/, `docs/errors.md:${i + 2}: expected the table's separator row`);
    for (let j = i + 2; j < lines.length && (lines[j] ?? '').startsWith('|'); j++) {
      const c = cells(lines[j] ?? '');
      assert.equal(c.length, HEADER.length, `docs/errors.md:${j + 1}: expected ${HEADER.length} cells, got ${c.length}`);
      const [codeCell = '', cfCell = '', source = '', retry = ''] = c;
      const code = /^`([EW]_[A-Z0-9_]+)`$/.exec(codeCell)?.[1];
      assert.ok(code !== undefined, `docs/errors.md:${j + 1}: the code cell must be one backticked code, got "${codeCell}"`);
      assert.match(cfCell, /^(—|\d+)$/, `docs/errors.md:${j + 1}: Cloudflare code must be a number or —`);
      rows.push({
        line: j + 1,
        group,
        code,
        cfCode: cfCell === '—' ? undefined : Number(cfCell),
        source,
        retryable: retry === 'yes' ? true : retry === 'no' ? false : undefined,
      });
      i = j;
    }
  }
  return rows;
}

const ROWS = parseErrorTables(DOC);
const CODES = Object.keys(ERRORS);

void describe('docs/errors.md', () => {
  void it('has one error table per group: config, listen, PROXY/SPP, upstream, downstream, TLS, management API, internal', () => {
    const groups = [...new Set(ROWS.map((r) => r.group))];
    assert.deepEqual(groups, ['Configuration', 'Listening', 'PROXY protocol and Simple Proxy Protocol', 'Upstream (origin)', 'Downstream (client)', 'Limits', 'TLS', 'Management API', 'Internal']);
  });

  void it('documents every code of the ERRORS table exactly once', () => {
    const documented = ROWS.map((r) => r.code);
    const missing = CODES.filter((c) => !documented.includes(c));
    assert.deepEqual(missing, [], `codes in src/model/errors.ts missing from docs/errors.md: ${missing.join(', ')}`);
    const twice = documented.filter((c, i) => documented.indexOf(c) !== i);
    assert.deepEqual(twice, [], `codes documented more than once: ${twice.join(', ')}`);
  });

  void it('documents each code with the source, retryable flag and Cloudflare number of the table', () => {
    const wrong: string[] = [];
    for (const row of ROWS) {
      if (!isErrorCode(row.code)) continue; // reported by the next test
      const spec: ErrorSpec = ERRORS[row.code];
      const where = `docs/errors.md:${row.line} ${row.code}`;
      if (!(SOURCES as readonly string[]).includes(row.source)) wrong.push(`${where}: unknown source "${row.source}"`);
      if (row.source !== spec.source) wrong.push(`${where}: source ${row.source}, table says ${spec.source}`);
      if (row.retryable !== spec.retryable) wrong.push(`${where}: retryable must be ${spec.retryable ? 'yes' : 'no'}`);
      if (row.cfCode !== spec.cfCode) wrong.push(`${where}: Cloudflare code ${row.cfCode ?? '—'}, table says ${spec.cfCode ?? '—'}`);
    }
    assert.deepEqual(wrong, []);
  });

  void it('lists no code in its tables that the ERRORS table lacks', () => {
    const unknown = ROWS.filter((r) => !isErrorCode(r.code)).map((r) => `${r.code} (line ${r.line})`);
    assert.deepEqual(unknown, [], `docs/errors.md lists codes that do not exist: ${unknown.join(', ')}`);
  });

  void it('names only existing codes anywhere on the page, and only prefixes that some code has', () => {
    const stale: string[] = [];
    for (const m of DOC.matchAll(/\b[EW]_[A-Z0-9_]+/g)) {
      const token = m[0];
      const ok = token.endsWith('_') ? CODES.some((c) => c.startsWith(token)) : isErrorCode(token);
      if (!ok) stale.push(token);
    }
    assert.deepEqual([...new Set(stale)], [], 'docs/errors.md mentions codes that do not exist');
  });

  void it('lists the event Status codes Refract emits, each with a Spectrum event name', () => {
    const section = DOC.slice(DOC.indexOf('## Event status codes'));
    assert.ok(section.length < DOC.length, 'docs/errors.md needs a "## Event status codes" section');
    const events = new Set(['connect', 'disconnect', 'originError', 'resolveOrigin', 'clientFiltered', 'tlsError']);
    const statuses = new Set<number>();
    for (const line of section.split('\n')) {
      const c = cells(line);
      if (!line.startsWith('|') || !/^\d+$/.test(c[0] ?? '')) continue;
      statuses.add(Number(c[0]));
      const event = /^`(\w+)`$/.exec(c[1] ?? '')?.[1] ?? '';
      assert.ok(events.has(event), `status ${c[0]}: "${c[1]}" is not a Spectrum event name`);
    }
    assert.deepEqual(
      [...statuses].sort((a, b) => a - b),
      [0, 200, 400, 403, 429, 443, 444, 445, 447, 448, 495, 497, 498, 499, 500, 503, 520, 521, 522, 523, 525, 526, 531, 540],
    );
  });
});
