/**
 * YAML parsing with a bound on nesting depth, for the config file. The `yaml` package composes documents and
 * converts them to JavaScript recursively: a few thousand nested collections (`[[[[…`, `- - - -…`, or aliases that
 * each add a level) exhaust the call stack, and after one such overflow a second deep document has aborted the
 * whole process (V8 "RegExpCompiler Allocation failed", found by `npm run fuzz`). Its CST parser also takes time
 * quadratic in the depth (10,000 `[` cost about half a second). So the depth is checked twice, before any recursion
 * can go deep: while the CST is built (its parser keeps an explicit stack, so it stops as soon as the stack passes
 * the bound), and on the composed document with aliases expanded (recursion there is bounded by the first check).
 */
import { Composer, Lexer, LineCounter, Parser, YAMLParseError, isAlias, isMap, isPair, isScalar, isSeq, type CST, type Document, type Node } from 'yaml';

/** A config nests about 6 collections deep (apps → app → edge_ips → ips); this leaves ample room. */
export const MAX_YAML_DEPTH = 64;

export type BoundedParse =
  | { readonly ok: true; readonly doc: Document.Parsed }
  | { readonly ok: false; readonly offset: number; readonly message: string };

/**
 * `YAML.parseDocument(text, { uniqueKeys: true, keepSourceTokens: true })`, with the positions of its errors and
 * warnings in `lineCounter` (as `prettyErrors` would set them), refused once collections nest deeper than `maxDepth`
 * (aliases expanded). Never throws for any text.
 */
export function parseYamlBounded(text: string, lineCounter: LineCounter, maxDepth = MAX_YAML_DEPTH): BoundedParse {
  const parser = new Parser(lineCounter.addNewLine);
  const lexer = new Lexer();
  let deepAt: number | undefined;
  // What Parser#parse does, with a look at the parser's stack after each token.
  function* tokens(): Generator<CST.Token> {
    lineCounter.addNewLine(0);
    for (const lexeme of lexer.lex(text)) {
      yield* parser.next(lexeme);
      // The stack holds the document and each open collection (and at most a scalar or two being read).
      if (parser.stack.length > maxDepth + 3) {
        deepAt = parser.offset;
        return;
      }
    }
    yield* parser.end();
  }
  const composer = new Composer({ uniqueKeys: true, keepSourceTokens: true, logLevel: 'error' });
  let doc: Document.Parsed | undefined;
  for (const d of composer.compose(tokens(), true, text.length)) {
    if (doc === undefined) {
      doc = d;
    } else {
      doc.errors.push(new YAMLParseError([d.range[0], d.range[1]], 'MULTIPLE_DOCS', 'Source contains multiple documents; please use YAML.parseAllDocuments()'));
      break;
    }
  }
  const tooDeep = (offset: number, why = ''): BoundedParse => ({ ok: false, offset, message: `lists and mappings nest more than ${maxDepth} levels deep${why}` });
  if (deepAt !== undefined) return tooDeep(deepAt);
  if (doc === undefined) return tooDeep(0); // unreachable: compose(…, forceDoc = true) always ends with a document
  for (const e of [...doc.errors, ...doc.warnings]) {
    if (e.pos[0] !== -1) e.linePos = [lineCounter.linePos(e.pos[0]), lineCounter.linePos(e.pos[1])];
  }
  if (doc.errors.length === 0) {
    const deep = expandedDepth(doc, maxDepth);
    if (deep !== undefined) {
      return tooDeep(deep.offset, deep.why === 'cycle' ? ' (an alias refers to a collection that contains it)' : deep.why === 'alias' ? ' once aliases are expanded' : '');
    }
  }
  return { ok: true, doc };
}

/**
 * Where a node's collections, aliases expanded, nest deeper than `max` (the offset, and whether an alias took it there
 * or refers to a node containing it: a cycle), or undefined when none does. Memoised per node, so shared anchors cost
 * one visit; anchors are looked up as the document defines them (the latest one before the alias).
 */
function expandedDepth(doc: Document.Parsed, max: number): { offset: number; why: 'depth' | 'alias' | 'cycle' } | undefined {
  const anchors = new Map<string, Node>();
  const memo = new Map<Node, number>();
  const open = new Set<Node>();
  let badAt: { offset: number; why: 'depth' | 'alias' | 'cycle' } | undefined;
  const visit = (node: unknown, level: number): number => {
    if (badAt !== undefined) return Infinity;
    if (isPair(node)) return Math.max(visit(node.key, level), visit(node.value, level));
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target === undefined) return 0; // a dangling alias is the composer's error
      const d = memo.get(target);
      if (d === undefined || open.has(target) || level + d > max) {
        badAt = { offset: node.range?.[0] ?? 0, why: d === undefined ? 'cycle' : 'alias' };
        return Infinity;
      }
      return d;
    }
    if (!isMap(node) && !isSeq(node)) {
      if (isScalar(node) && node.anchor !== undefined) anchors.set(node.anchor, node);
      return 0;
    }
    if (level + 1 > max) {
      badAt = { offset: node.range?.[0] ?? 0, why: 'depth' };
      return Infinity;
    }
    open.add(node);
    if (node.anchor !== undefined) anchors.set(node.anchor, node);
    let deepest = 0;
    for (const item of node.items) deepest = Math.max(deepest, visit(item, level + 1));
    open.delete(node);
    memo.set(node, deepest + 1);
    return deepest + 1;
  };
  visit(doc.contents, 0);
  return badAt;
}
