/**
 * `refract ca export|path`: the local CA's root certificate, for clients to trust (docs/tls.md, "Certificates and
 * the local CA").
 *
 * The data directory is, in order: `--data-dir DIR` (relative to the working directory); with `--config FILE`, the
 * config's `edge.tls.data_dir` (default `.refract`) relative to the config file's folder, as `refract serve` uses
 * it; else `./.refract`.
 *
 * Exit codes: 0 done; 1 the CA could not be created or loaded (E_TLS_CA), or --out could not be written; 2 bad
 * command line or config file.
 */
import { parseArgs } from 'node:util';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isRefractError } from '../model/errors.ts';
import { flagProblem } from './args.ts';
import { parseConfigText, validateConfig } from '../model/config.ts';
import { CA_CERT_FILE, defaultDataDir, openLocalCa } from '../net/node/local-ca.ts';

export const CA_USAGE = `Usage: refract ca export [--data-dir DIR | --config FILE] [--out FILE]
       refract ca path [--data-dir DIR | --config FILE]
  export   print the local CA's root certificate (PEM), creating the CA if there is none yet; --out writes it to FILE
  path     print where the root certificate is (or will be) kept
  --data-dir DIR   the data directory (default: edge.tls.data_dir of --config, else ./.refract)
Trusting the root: docs/tls.md`;

/** Where the command writes (tests pass their own). */
export interface CaIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CaIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

const CA_OPTIONS = { 'data-dir': { type: 'string' }, config: { type: 'string', short: 'c' }, out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } } as const;

/** Runs `refract ca ARGS`; resolves with the exit code. */
export async function caCommand(argv: readonly string[], io: CaIo = processIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: CA_OPTIONS,
    });
  } catch (e) {
    io.err(`refract ca: ${flagProblem(e, CA_OPTIONS)}\n\n${CA_USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [sub, ...extra] = positionals;
  if (values.help) {
    io.out(CA_USAGE + '\n');
    return 0;
  }
  if ((sub !== 'export' && sub !== 'path') || extra.length > 0 || (sub === 'path' && values.out !== undefined)) {
    io.err(`refract ca: ${sub === undefined ? 'give a subcommand' : `unexpected '${[sub, ...extra].join(' ')}'`}\n\n${CA_USAGE}\n`);
    return 2;
  }
  if (values['data-dir'] !== undefined && values.config !== undefined) {
    io.err(`refract ca: give --data-dir or --config, not both\n\n${CA_USAGE}\n`);
    return 2;
  }

  let dataDir: string;
  if (values['data-dir'] !== undefined) {
    dataDir = resolve(values['data-dir']);
  } else if (values.config !== undefined) {
    const fromConfig = configDataDir(values.config, io);
    if (fromConfig === undefined) return 2;
    dataDir = fromConfig;
  } else {
    dataDir = defaultDataDir();
  }

  if (sub === 'path') {
    io.out(join(dataDir, CA_CERT_FILE) + '\n');
    return 0;
  }

  let ca;
  try {
    ca = await openLocalCa({ dataDir });
  } catch (e) {
    if (!isRefractError(e)) throw e;
    const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
    io.err(`refract ca: ${e.code}: ${e.message} (${JSON.stringify(e.details ?? {})})${cause}\n`);
    return 1;
  }
  if (ca.created) io.err(`refract ca: created a new local CA in ${dataDir}\n`);
  if (values.out === undefined) {
    io.out(ca.certPem);
    return 0;
  }
  const out = resolve(values.out);
  try {
    // Temp + rename: a reader (a provisioning script) never sees half a certificate.
    const tmp = join(dirname(out), `.${process.pid}.refract-ca.tmp`);
    writeFileSync(tmp, ca.certPem, { mode: 0o644 });
    renameSync(tmp, out);
  } catch (e) {
    io.err(`refract ca: cannot write ${out}: ${(e as Error).message}\n`);
    return 1;
  }
  io.err(`refract ca: wrote the root certificate (SHA-256 ${ca.info.fingerprint256}) to ${out}\n`);
  return 0;
}

/** The data directory `refract serve --config FILE` would use; undefined (problems printed) when FILE is unusable. */
function configDataDir(file: string, io: CaIo): string | undefined {
  let raw: unknown;
  try {
    raw = parseConfigText(readFileSync(file, 'utf8'), file);
  } catch (e) {
    io.err(`refract ca: cannot read ${file}: ${isRefractError(e) ? `${e.code}: ` : ''}${(e as Error).message}\n`);
    return undefined;
  }
  const v = validateConfig(raw);
  if (!v.ok) {
    io.err(`refract ca: ${file} is not a valid config:\n${v.issues.map((i) => `  ${i.pointer || '/'}: ${i.code}: ${i.message}`).join('\n')}\n`);
    return undefined;
  }
  return defaultDataDir(file, v.config.node.tls.dataDir);
}
