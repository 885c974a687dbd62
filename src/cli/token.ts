/**
 * `refract token create|list|revoke --config FILE`: the management API's tokens, kept (as SHA-256 hashes) in the
 * database under the config's `node.data_dir`. `create` prints the token once, as the last line of stdout.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseConfigText, validateConfig } from '../model/config.ts';
import { ApiStore } from '../api/store.ts';
import { createToken } from '../api/tokens.ts';
import { parseCommand } from './args.ts';

export const API_DB_FILE = 'api.sqlite';

export const TOKEN_USAGE = `Usage: refract token create --config FILE --name NAME
       refract token list --config FILE
       refract token revoke --config FILE (ID | NAME)
  Manage the management API's tokens (docs/api.md). They live, hashed, in node.data_dir/${API_DB_FILE}.
  create prints the new token once, as the last line of stdout: store it, it cannot be shown again.
Exit: 0 done, 1 the config could not be read or nothing matched, 2 invalid command line.`;

/** The API database of a config file: node.data_dir (default .refract) beside the file, /api.sqlite. */
export function apiDbPath(configFile: string, dataDir: string): string {
  return join(resolve(dirname(resolve(configFile)), dataDir), API_DB_FILE);
}

export function tokenCommand(argv: readonly string[]): number {
  const [sub, ...rest] = argv;
  if (sub !== 'create' && sub !== 'list' && sub !== 'revoke') {
    if (sub === '--help' || sub === '-h') {
      process.stdout.write(TOKEN_USAGE + '\n');
      return 0;
    }
    process.stderr.write(`refract token: give create, list or revoke\n\n${TOKEN_USAGE}\n`);
    return 2;
  }
  const p = parseCommand(`token ${sub}`, rest, { config: { type: 'string', short: 'c' }, name: { type: 'string' } }, TOKEN_USAGE);
  if (!p.ok) return p.code;
  const file = p.values.config;
  if (file === undefined) {
    process.stderr.write(`refract token ${sub}: give --config FILE\n\n${TOKEN_USAGE}\n`);
    return 2;
  }
  if (sub === 'create' && (p.values.name === undefined || p.values.name === '' || p.positionals.length > 0)) {
    process.stderr.write(`refract token create: give --name NAME (and nothing else)\n\n${TOKEN_USAGE}\n`);
    return 2;
  }
  if (sub === 'revoke' && p.positionals.length !== 1) {
    process.stderr.write(`refract token revoke: give one token id or name\n\n${TOKEN_USAGE}\n`);
    return 2;
  }
  let dataDir: string;
  try {
    const r = validateConfig(parseConfigText(readFileSync(file, 'utf8'), file));
    if (!r.ok) {
      process.stderr.write(`refract token: ${file} is invalid; run refract validate ${file}\n`);
      return 1;
    }
    dataDir = r.config.node.dataDir ?? '.refract';
  } catch (e) {
    process.stderr.write(`refract token: cannot read ${file}: ${(e as Error).message}\n`);
    return 1;
  }
  const store = new ApiStore(apiDbPath(file, dataDir));
  try {
    if (sub === 'create') {
      const t = createToken(store, p.values.name!, new Date());
      process.stderr.write(`refract token: created token ${t.id} (${p.values.name!}); it is shown once, below\n`);
      process.stdout.write(`${t.token}\n`);
      return 0;
    }
    if (sub === 'list') {
      for (const t of store.tokens()) process.stdout.write(`${t.id}\t${t.name}\t${t.status}\t${t.createdOn}\n`);
      return 0;
    }
    const n = store.revokeToken(p.positionals[0]!, new Date().toISOString());
    process.stderr.write(`refract token: revoked ${n} token${n === 1 ? '' : 's'}\n`);
    return n > 0 ? 0 : 1;
  } finally {
    store.close();
  }
}
