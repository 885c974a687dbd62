/**
 * The docs stand alone. For README.md, docs/*.md and src/**\/README.md: every relative Markdown link resolves to a
 * file or folder inside the repository, and an anchor (`#…`) names a heading of its Markdown target (GitHub's
 * slugs); no link or path mention points outside the repository (`../shared`, `shared/…`, an absolute path, a
 * `file:` URL, a home or work directory). http(s) and mailto links are left alone: nothing is fetched.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** README.md, docs/*.md and every README.md under src/, relative to `root`, sorted. */
function docFiles(root: string): string[] {
  const out: string[] = [];
  if (existsSync(join(root, 'README.md'))) out.push('README.md');
  if (existsSync(join(root, 'docs'))) {
    for (const f of readdirSync(join(root, 'docs'))) if (f.endsWith('.md')) out.push(`docs/${f}`);
  }
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.name === 'README.md') out.push(p);
    }
  };
  if (existsSync(join(root, 'src'))) walk('src');
  return out.sort();
}

/** GitHub's heading anchor: lower case, punctuation dropped (letters, digits, `_`, `-` and spaces kept), each space a `-`. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Heading text as GitHub renders it: images and links become their text; code ticks, emphasis and tags go. */
function headingText(raw: string): string {
  return raw
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`/g, '')
    .replace(/\*+/g, '');
}

/** The text with fenced code blocks blanked (line numbers kept). */
function withoutFences(text: string): string {
  const lines = text.split('\n');
  let fence: string | undefined;
  return lines
    .map((line) => {
      const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
      if (fence === undefined) {
        if (m) {
          fence = m[1]!;
          return '';
        }
        return line;
      }
      if (m && m[1]![0] === fence[0] && m[1]!.length >= fence.length && line.trim() === m[1]) fence = undefined;
      return '';
    })
    .join('\n');
}

/** The anchors a Markdown text defines: its ATX headings' slugs (repeats get -1, -2, …) and `<a id|name="…">`. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFences(text).split('\n')) {
    const h = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(line);
    if (h) {
      const base = slug(headingText(h[1]!));
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(a[1]!);
  }
  return anchors;
}

interface Link {
  readonly line: number;
  readonly target: string;
}

/** Link targets outside code: inline links and images, reference definitions, HTML href/src. */
function linksOf(text: string): Link[] {
  // Code spans are not links: blank them, keeping newlines so line numbers hold.
  const prose = withoutFences(text).replace(/(`+)[\s\S]*?\1/g, (m) => m.replace(/[^\n]/g, ' '));
  const lineAt = (i: number): number => prose.slice(0, i).split('\n').length;
  const out: Link[] = [];
  const inline = /!?\[(?:[^[\]]|\[[^[\]]*\])*\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g;
  for (const m of prose.matchAll(inline)) {
    const t = m[1]!.startsWith('<') ? m[1]!.slice(1, -1) : m[1]!;
    out.push({ line: lineAt(m.index), target: t });
  }
  for (const m of prose.matchAll(/^ {0,3}\[[^\]\n]+\]:[ \t]*(<[^>\n]*>|\S+)/gm)) {
    const t = m[1]!.startsWith('<') ? m[1]!.slice(1, -1) : m[1]!;
    out.push({ line: lineAt(m.index), target: t });
  }
  for (const m of prose.matchAll(/\b(?:href|src)="([^"]*)"/g)) out.push({ line: lineAt(m.index), target: m[1]! });
  return out.sort((a, b) => a.line - b.line);
}

/** Text anywhere in a doc (code included) that names a path outside the repository. */
const OUTSIDE_MENTIONS: ReadonlyArray<readonly [RegExp, string]> = [
  [/(?<![\w.-])(?:\.\.\/)+shared\b/g, 'a path into ../shared'],
  [/(?<![\w./-])shared\/[\w.-]/g, 'a path into shared/'],
  [/(?<![\w.-])\/(?:work|home|Users|root)\/[\w.-]/g, 'an absolute path on a developer machine'],
  [/\bfile:\/\//g, 'a file: URL'],
];

/** Every problem of the docs under `root`, one line each: `file:line: what`. */
function docLinkProblems(root: string): string[] {
  const problems: string[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchors = (abs: string): Set<string> => {
    let a = anchorCache.get(abs);
    if (a === undefined) {
      a = anchorsOf(readFileSync(abs, 'utf8'));
      anchorCache.set(abs, a);
    }
    return a;
  };
  for (const file of docFiles(root)) {
    const abs = join(root, file);
    const text = readFileSync(abs, 'utf8');
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      for (const [re, what] of OUTSIDE_MENTIONS) {
        for (const m of line.matchAll(re)) problems.push(`${file}:${i + 1}: ${what}: "${m[0]}…"`);
      }
    });
    for (const { line, target } of linksOf(text)) {
      const at = `${file}:${line}: link (${target})`;
      if (/^(?:https?|mailto):/i.test(target)) continue;
      if (target === '') {
        problems.push(`${at}: empty target`);
        continue;
      }
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
        problems.push(`${at}: not a relative link (scheme)`);
        continue;
      }
      if (target.startsWith('/') || target.startsWith('~') || /^[A-Za-z]:[\\/]/.test(target)) {
        problems.push(`${at}: absolute path; use a path relative to ${file}`);
        continue;
      }
      const hash = target.indexOf('#');
      const pathPart = hash === -1 ? target : target.slice(0, hash);
      const anchor = hash === -1 ? undefined : target.slice(hash + 1);
      let decoded: string;
      try {
        decoded = decodeURIComponent(pathPart);
      } catch {
        problems.push(`${at}: bad percent-encoding`);
        continue;
      }
      const dest = decoded === '' ? abs : resolve(dirname(abs), decoded);
      const rel = relative(root, dest);
      if (rel.startsWith('..') || isAbsolute(rel)) {
        problems.push(`${at}: points outside the repository`);
        continue;
      }
      if (!existsSync(dest)) {
        problems.push(`${at}: no such file in the repository (${rel})`);
        continue;
      }
      if (anchor !== undefined && dest.endsWith('.md') && statSync(dest).isFile()) {
        const a = decodeURIComponent(anchor);
        if (!anchors(dest).has(a)) problems.push(`${at}: no heading with anchor #${a} in ${rel}`);
      }
    }
  }
  return problems;
}

describe('doc links', () => {
  it('GitHub heading slugs', () => {
    assert.equal(slug('PROXY v2 TLVs for TLS (proxy_protocol_tlvs)'), 'proxy-v2-tlvs-for-tls-proxy_protocol_tlvs');
    assert.equal(slug('Spectrum: what Refract reproduces, and where it differs'), 'spectrum-what-refract-reproduces-and-where-it-differs');
    assert.equal(slug('Port ranges cost one listener per port and address'), 'port-ranges-cost-one-listener-per-port-and-address');
    assert.equal(slug('apps: Spectrum app objects'), 'apps-spectrum-app-objects');
    assert.equal(slug('A → B, 1.2'), 'a--b-12');
    assert.equal(headingText('`apps`: Spectrum **app** objects'), 'apps: Spectrum app objects');
    const dup = anchorsOf('# Errors\n## Errors\n```\n# not a heading\n```\n## Errors\n');
    assert.deepEqual([...dup].sort(), ['errors', 'errors-1', 'errors-2']);
  });

  it('finds links outside code and skips links inside it', () => {
    const links = linksOf('a [x](docs/a.md) `[y](no.md)`\n```\n[z](no.md)\n```\n[w](<b c.md#d> "t")\n[ref]: e.md\n');
    assert.deepEqual(links.map((l) => [l.line, l.target]), [[1, 'docs/a.md'], [5, 'b c.md#d'], [6, 'e.md']]);
  });

  it('reports broken links, missing anchors and paths outside the repository', () => {
    const root = mkdtempSync(join(tmpdir(), 'refract-links-'));
    try {
      mkdirSync(join(root, 'docs'));
      mkdirSync(join(root, 'src/core'), { recursive: true });
      writeFileSync(join(root, 'docs/a.md'), '# Title\n\n## Some `code` here\n\n[self](#title) [ok](#some-code-here)\n');
      writeFileSync(
        join(root, 'README.md'),
        [
          '[ok](docs/a.md#some-code-here) [web](https://example.com/x#y) [dir](docs/)',
          '[gone](docs/missing.md)',
          '[bad anchor](docs/a.md#nope)',
          '[up](../shared/DESIGN.md) [abs](/etc/passwd) [file](file:///tmp/x)',
          'see shared/spectrum-reference.md and /work/shared',
        ].join('\n'),
      );
      writeFileSync(join(root, 'src/core/README.md'), '[doc](../../docs/a.md#title) [own](#nothing)\n');
      const problems = docLinkProblems(root);
      assert.deepEqual(
        [...problems].sort(),
        [
          'README.md:2: link (docs/missing.md): no such file in the repository (docs/missing.md)',
          'README.md:3: link (docs/a.md#nope): no heading with anchor #nope in docs/a.md',
          'README.md:4: a file: URL: "file://…"',
          'README.md:4: a path into ../shared: "../shared…"',
          'README.md:4: link (../shared/DESIGN.md): points outside the repository',
          'README.md:4: link (/etc/passwd): absolute path; use a path relative to README.md',
          'README.md:4: link (file:///tmp/x): not a relative link (scheme)',
          'README.md:5: a path into shared/: "shared/s…"',
          'README.md:5: an absolute path on a developer machine: "/work/s…"',
          'src/core/README.md:1: link (#nothing): no heading with anchor #nothing in src/core/README.md',
        ].sort(),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('README.md, docs/*.md and src/**/README.md: every relative link resolves inside the repository', () => {
    const files = docFiles(ROOT);
    assert.ok(files.includes('README.md') && files.some((f) => f.startsWith('docs/')), `found the docs: ${files.join(', ')}`);
    const problems = docLinkProblems(ROOT);
    assert.deepEqual(problems, [], `\n${problems.join('\n')}\n`);
  });
});
