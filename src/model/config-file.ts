/**
 * Limits on a config file's bytes before they cost memory or time (issue #16): the size (E_CONFIG_TOO_LARGE, checked
 * by the reader before reading: src/net/node/config-file.ts), the encoding (E_CONFIG_ENCODING: UTF-8, refused at
 * the first invalid byte, never replaced), and the node count (E_CONFIG_TOO_COMPLEX: counted by the YAML lexer,
 * which holds no tree, before the document is composed). Then `loadConfigText` as before.
 *
 * Pure: bytes in, a ConfigResult out; no I/O.
 */
import YAML from 'yaml';
import { configIssue } from './app.ts';
import { loadConfigText, type ConfigResult } from './config.ts';
import type { ConfigIssue } from './types.ts';

export interface ConfigFileLimits {
  /** Largest file read, bytes. */
  readonly maxBytes: number;
  /** Most YAML nodes (as `countYamlNodes` counts them) parsed into a document. */
  readonly maxNodes: number;
}

/** The defaults (`refract serve|validate --max-config-bytes / --max-config-nodes` change them). */
export const CONFIG_FILE_LIMITS: ConfigFileLimits = Object.freeze({
  maxBytes: 4 * 1024 * 1024, // 4 MiB
  maxNodes: 500_000,
});

/** A result that is one issue. */
export function fileIssue(issue: ConfigIssue): ConfigResult {
  return { ok: false, issues: [issue], warnings: [] };
}

/** E_CONFIG_TOO_LARGE for a file of `size` bytes (or more: `atLeast`) over `maxBytes`. */
export function tooLargeIssue(filename: string, size: number, maxBytes: number, atLeast = false): ConfigIssue {
  return configIssue('', 'E_CONFIG_TOO_LARGE', `${filename}: ${atLeast ? 'more than ' : ''}${size} bytes, over the limit of ${maxBytes} bytes (--max-config-bytes); nothing was parsed`);
}

/**
 * Offset of the first byte that is not part of well-formed UTF-8 (WHATWG's decoder: no overlong forms, no
 * surrogates, nothing above U+10FFFF, no truncated sequence), or -1 when all of `bytes` is well formed.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b === 0xe0) [need, lo] = [2, 0xa0];
    else if (b === 0xed) [need, hi] = [2, 0x9f];
    else if (b >= 0xe1 && b <= 0xef) need = 2;
    else if (b === 0xf0) [need, lo] = [3, 0x90];
    else if (b === 0xf4) [need, hi] = [3, 0x8f];
    else if (b >= 0xf1 && b <= 0xf3) need = 3;
    else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** 1-based line and column (in bytes) of `offset`. */
function bytePosition(bytes: Uint8Array, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * The text of `bytes` (UTF-8; a leading byte-order mark is dropped), or E_CONFIG_ENCODING at the first byte that is
 * not UTF-8, with its line and column (column in bytes) and the byte's offset and value in the message.
 */
export function decodeConfigBytes(bytes: Uint8Array, filename: string): { ok: true; text: string } | { ok: false; issue: ConfigIssue } {
  try {
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    const at = Math.max(0, firstInvalidUtf8(bytes));
    const { line, column } = bytePosition(bytes, at);
    const hex = (bytes[at] ?? 0).toString(16).padStart(2, '0');
    return {
      ok: false,
      issue: { ...configIssue('', 'E_CONFIG_ENCODING', `${filename}: line ${line}: byte 0x${hex} at offset ${at} is not UTF-8; save the file as UTF-8`), line, column },
    };
  }
}

/** Lexer tokens that make (or may make) a node: scalars of every style, aliases, flow collections, `-`, `?` and `:`. */
const NODE_TOKENS = new Set(['scalar', 'single-quoted-scalar', 'double-quoted-scalar', 'block-scalar-header', 'alias', 'flow-map-start', 'flow-seq-start', 'seq-item-ind', 'explicit-key-ind', 'map-value-ind']);

/**
 * An upper bound on the nodes of the YAML `text` would compose to: the lexer's scalars (keys too), aliases, flow
 * collection starts, list-item dashes and key markers (`?`, `:`), so `- a` counts 2 and `k: v` 3. The lexer keeps no
 * tree, so this costs time linear in the text and little memory. Stops counting past `stopAfter`.
 */
export function countYamlNodes(text: string, stopAfter = Number.POSITIVE_INFINITY): number {
  let n = 0;
  for (const token of new YAML.Lexer().lex(text)) {
    const t = YAML.CST.tokenType(token) as string | null | undefined;
    if (t != null && NODE_TOKENS.has(t) && ++n > stopAfter) break;
  }
  return n;
}

/**
 * A config file's bytes → ConfigResult, refusing what is over `limits` before it is parsed: E_CONFIG_TOO_LARGE
 * (more than maxBytes), E_CONFIG_ENCODING (not UTF-8), E_CONFIG_TOO_COMPLEX (more than maxNodes nodes, or aliases
 * that expand past the parser's alias limit). Never throws.
 */
export function loadConfigBytes(bytes: Uint8Array, filename: string, limits: ConfigFileLimits = CONFIG_FILE_LIMITS): ConfigResult {
  if (bytes.length > limits.maxBytes) return fileIssue(tooLargeIssue(filename, bytes.length, limits.maxBytes));
  const decoded = decodeConfigBytes(bytes, filename);
  if (!decoded.ok) return fileIssue(decoded.issue);
  const nodes = countYamlNodes(decoded.text, limits.maxNodes);
  if (nodes > limits.maxNodes) {
    return fileIssue(configIssue('', 'E_CONFIG_TOO_COMPLEX', `${filename}: more than ${limits.maxNodes} YAML nodes (--max-config-nodes); nothing was parsed`));
  }
  const r = loadConfigText(decoded.text, filename);
  // The parser's alias limit (an alias bomb: a few lines that expand exponentially) is a complexity limit too.
  if (!r.ok && r.issues.length === 1 && r.issues[0]!.code === 'E_CONFIG_PARSE' && /alias count/i.test(r.issues[0]!.message)) {
    return fileIssue(configIssue('', 'E_CONFIG_TOO_COMPLEX', `${filename}: aliases expand to more nodes than the parser allows (an alias bomb?); write the values out`));
  }
  return r;
}
