/** The config file limits of `refract serve` and `refract validate` (docs/configuration.md, "Limits"). */
import { CONFIG_FILE_LIMITS, type ConfigFileLimits } from '../model/config-file.ts';

/** The two flags, for parseCommand's option table. */
export const CONFIG_LIMIT_FLAGS = { 'max-config-bytes': { type: 'string' }, 'max-config-nodes': { type: 'string' } } as const;

/**
 * `--max-config-bytes N` / `--max-config-nodes N` (positive integers; a K, M or G suffix on bytes) over the
 * defaults, or the message for a bad value.
 */
export function configLimits(values: { 'max-config-bytes'?: string; 'max-config-nodes'?: string }): ConfigFileLimits | string {
  const num = (flag: string, text: string | undefined, units: boolean): number | string | undefined => {
    if (text === undefined) return undefined;
    const m = (units ? /^([1-9][0-9]{0,12})([KMG]?)$/ : /^([1-9][0-9]{0,12})()$/).exec(text);
    if (m === null) return `--${flag} is a positive integer${units ? ' (K, M or G for KiB, MiB, GiB)' : ''}, not '${text}'`;
    return Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[m[2] ?? '']!;
  };
  const bytes = num('max-config-bytes', values['max-config-bytes'], true);
  const nodes = num('max-config-nodes', values['max-config-nodes'], false);
  if (typeof bytes === 'string') return bytes;
  if (typeof nodes === 'string') return nodes;
  return { maxBytes: bytes ?? CONFIG_FILE_LIMITS.maxBytes, maxNodes: nodes ?? CONFIG_FILE_LIMITS.maxNodes };
}
