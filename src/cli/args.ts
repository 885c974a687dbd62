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

type Options = NonNullable<ParseArgsConfig['options']>;

export { didYouMean, editDistance } from '../model/suggest.ts';
export { flagProblem } from '../model/flags.ts';
import { flagProblem } from '../model/flags.ts';

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
