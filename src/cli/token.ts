/**
 * `refract token create|list|revoke --config FILE`: the management API's tokens, kept (as SHA-256 hashes) in the
 * database under the config's `node.data_dir`. `create` prints the token once, as the last line of stdout.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseConfigText, validateConfig } from '../model/config.ts';
import { ApiStore } from '../api/store.ts';
import { createGlobalKey, createToken, parsePermissions, PERMISSIONS, type Permission } from '../api/tokens.ts';
import { parseCommand } from './args.ts';

export const API_DB_FILE = 'api.sqlite';

export const TOKEN_USAGE = `Usage: refract token create --config FILE --name NAME [--permissions P,...] [--zones ZONE_ID,...]
       refract token create --config FILE --global --name NAME --email EMAIL
       refract token list --config FILE
       refract token revoke --config FILE (ID | NAME)
  Manage the management API's tokens and global keys (docs/api.md). They live, hashed, in
  node.data_dir/${API_DB_FILE}. create prints the new token (or key) once, as the last line of stdout: store it,
  it cannot be shown again.
  --permissions  a comma-separated subset of ${PERMISSIONS.join(',')} (default: all)
  --zones        the zone ids the token may use (default: all zones)
  --global       a global key, sent as X-Auth-Email + X-Auth-Key: every permission on every zone
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
  const p = parseCommand(`token ${sub}`, rest, {
      config: { type: 'string', short: 'c' },
      name: { type: 'string' },
      permissions: { type: 'string' },
      zones: { type: 'string' },
      global: { type: 'boolean' },
      email: { type: 'string' },
    }, TOKEN_USAGE);
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
  const usage = (why: string): number => {
    process.stderr.write(`refract token ${sub}: ${why}\n\n${TOKEN_USAGE}\n`);
    return 2;
  };
  if (sub !== 'create' && (p.values.permissions !== undefined || p.values.zones !== undefined || p.values.global === true || p.values.email !== undefined)) {
    return usage('--permissions, --zones, --global and --email go with create');
  }
  let permissions: Permission[] | undefined;
  let zones: string[] | undefined;
  if (p.values.global === true) {
    if (p.values.permissions !== undefined || p.values.zones !== undefined) return usage('a global key has every permission on every zone: drop --permissions and --zones');
    if (p.values.email === undefined || !/^[^\s@]+@[^\s@]+$/.test(p.values.email)) return usage('--global needs --email EMAIL');
  } else if (p.values.email !== undefined) {
    return usage('--email goes with --global');
  }
  if (p.values.permissions !== undefined) {
    const r = parsePermissions(p.values.permissions);
    if (!r.ok) return usage(`unknown permission ${JSON.stringify(r.unknown)}; give some of ${PERMISSIONS.join(', ')}`);
    if (r.permissions.length === 0) return usage('--permissions needs at least one permission');
    permissions = r.permissions;
  }
  if (p.values.zones !== undefined) {
    zones = p.values.zones.split(',').map((z) => z.trim().toLowerCase()).filter((z) => z !== '');
    const bad = zones.find((z) => !/^[0-9a-f]{32}$/.test(z));
    if (bad !== undefined) return usage(`${JSON.stringify(bad)} is not a zone id (32 hex characters)`);
    if (zones.length === 0) return usage('--zones needs at least one zone id');
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
    if (sub === 'create' && p.values.global === true) {
      const k = createGlobalKey(store, p.values.name!, p.values.email!, new Date());
      process.stderr.write(`refract token: created global key ${k.id} (${p.values.name!}) for ${p.values.email!}; it is shown once, below\n`);
      process.stdout.write(`${k.key}\n`);
      return 0;
    }
    if (sub === 'create') {
      const t = createToken(store, p.values.name!, new Date(), { permissions, zones });
      process.stderr.write(`refract token: created token ${t.id} (${p.values.name!}); it is shown once, below\n`);
      process.stdout.write(`${t.token}\n`);
      return 0;
    }
    if (sub === 'list') {
      for (const t of store.tokens()) {
        const grants = t.kind === 'key' ? `global key\t${t.email ?? ''}` : `${(t.permissions ?? PERMISSIONS).join(',')}\t${t.zones?.join(',') ?? 'all zones'}`;
        process.stdout.write(`${t.id}\t${t.name}\t${t.status}\t${t.createdOn}\t${grants}\n`);
      }
      return 0;
    }
    const n = store.revokeToken(p.positionals[0]!, new Date().toISOString());
    process.stderr.write(`refract token: revoked ${n} token${n === 1 ? '' : 's'}\n`);
    return n > 0 ? 0 : 1;
  } finally {
    store.close();
  }
}
