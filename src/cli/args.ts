/**
 * Command-line parsing shared by every `refract` subcommand: `--help`, one-line errors for unknown or malformed
 * flags (never Node's ERR_PARSE_ARGS_* stack trace), "did you mean" suggestions for commands and flags, and the
 * version from package.json.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where a command writes (tests pass their own). */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

/** Levenshtein distance between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The candidate closest to `word` by edit distance, if it is close enough to be a plausible typo (at most 2 edits,
 * and fewer than half the word's length), or one that starts with `word` (`refract val` → `validate`).
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  if (best !== undefined && bestD <= Math.min(2, Math.ceil(word.length / 2))) return best;
  if (word.length >= 2) return candidates.find((c) => c.startsWith(word.toLowerCase()));
  return undefined;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** The flag names (`--config`, `-c`) a parseArgs options table accepts. */
function flagNames(options: Options): string[] {
  return Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short === undefined ? [] : [`-${o.short}`])]);
}

/**
 * One line for a parseArgs error: the flag it is about and what is wrong, with a suggestion for a mistyped flag.
 * parseArgs' own messages are long and mention its internals; the flag is always quoted in them.
 */
export function flagProblem(e: unknown, options: Options): string {
  const err = e as { code?: string; message?: string };
  const quoted = /'([^']+)'/.exec(err.message ?? '')?.[1];
  switch (err.code ?? '') {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const flag = quoted ?? '?';
      const name = flag.replace(/=.*$/, '');
      const guess = name.startsWith('--') ? didYouMean(name, flagNames(options).filter((f) => f.startsWith('--'))) : undefined;
      return `unknown flag ${name}${guess ? ` (did you mean ${guess}?)` : ''}`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      // "Option '-c, --config <value>' argument missing": name the long form.
      const flag = /--[\w-]+/.exec(quoted ?? '')?.[0] ?? (quoted ?? '').split(/[ ,]/)[0] ?? '';
      const o = options[flag.replace(/^-+/, '')] ?? Object.entries(options).find(([, v]) => `-${v.short}` === flag)?.[1];
      return o?.type === 'boolean' ? `${flag} takes no value` : `${flag || 'a flag'} needs a value`;
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${quoted ?? ''}`.trimEnd();
    default:
      return (err.message ?? String(e)).split('\n')[0]!;
  }
}

export type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>;

/**
 * Parses `argv` (the words after the command) with a `--help`/`-h` flag added. Returns the parsed values, or the
 * exit code after printing: usage on stdout and 0 for `--help`; one line naming the flag, then the usage, on stderr
 * and 2 for a flag that is unknown or lacks its value.
 */
export function parseCommand<O extends Options>(
  command: string,
  argv: readonly string[],
  options: O,
  usage: string,
  io: CliIo = processIo,
): { ok: true; values: Parsed<O>['values']; positionals: string[] } | { ok: false; code: number } {
  const all = { ...options, help: { type: 'boolean', short: 'h' } } as const satisfies Options;
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: all, allowPositionals: true, strict: true });
  } catch (e) {
    io.err(`refract ${command}: ${flagProblem(e, all)}\n\n${usage}\n`);
    return { ok: false, code: 2 };
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    io.out(usage + '\n');
    return { ok: false, code: 0 };
  }
  return { ok: true, values: parsed.values as Parsed<O>['values'], positionals: parsed.positionals };
}

/** Refract's version: the `version` of the package.json above this file (src/ or a built dist/). */
export function refractVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'refract' && typeof pkg.version === 'string') return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return 'unknown';
}
