/**
 * One line for a command-line flag error from node:util's `parseArgs`: the flag it is about and what is wrong, with
 * a suggestion for a mistyped flag. Shared by every `refract` subcommand (src/cli, and sim/replay in src/scenario).
 */
import type { ParseArgsConfig } from 'node:util';
import { didYouMean } from './suggest.ts';

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

