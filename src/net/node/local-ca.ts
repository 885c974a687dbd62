/**
 * Refract's local CA: a root created once in the data directory (`ca.pem`, `ca-key.pem` mode 0600), loaded on
 * later starts, issuing per-app edge certificates for apps that give no PEM files. Issued leaves are cached in
 * `certs/<appId>.pem` (certificate then key, mode 0600) and re-issued when the names change, the CA changed, or
 * fewer than 30 days of validity remain. Clients trust the root after `refract ca export`.
 *
 * Two processes starting at once on an empty directory: the CA key is published with link(2), which fails when
 * the file exists, so exactly one key wins; the loser drops its own CA and waits (bounded) for the winner's
 * `ca.pem`. Every other file is written to a temp name and renamed into place, so readers never see half a file.
 */
import { X509Certificate, createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { RefractError } from '../../model/errors.ts';
import type { CertInfo } from '../ports.ts';
import { describeCert, issueCert, normalizeName, splitPemCerts, type KeyType } from './x509.ts';
import { assertPrivate } from './key-permissions.ts';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';
export const LEAF_DIR = 'certs';
/** Default data directory name, beside the config file (or in the working directory without one). */
export const DEFAULT_DATA_DIR_NAME = '.refract';

const DAY_MS = 86_400_000;
/** The root lives 10 years: clients that trusted it keep working across many restarts and leaf renewals. */
const CA_LIFETIME_MS = 3650 * DAY_MS;
const LEAF_LIFETIME_MS = 90 * DAY_MS;
/** A cached leaf with less validity left than this is re-issued. */
const LEAF_RENEW_BEFORE_MS = 30 * DAY_MS;
/** How long a process that lost the creation race waits for the winner's ca.pem. */
const CA_RACE_WAIT_MS = 15_000;
const CA_RACE_POLL_MS = 50;
const CA_COMMON_NAME = 'Refract Local CA';

/**
 * The data directory for a config file: `<dir of config>/.refract`, or `<cwd>/.refract` without one. A configured
 * `edge.tls.data_dir` is resolved against the config file's directory the same way (pass it as `dataDir`).
 */
export function defaultDataDir(configFile?: string, dataDir: string = DEFAULT_DATA_DIR_NAME): string {
  return resolve(configFile === undefined ? process.cwd() : dirname(resolve(configFile)), dataDir);
}

export interface LocalCaOptions {
  /** Directory holding ca.pem, ca-key.pem and certs/; created (mode 0700) when missing. */
  dataDir: string;
  log?: Logger;
  /** Wall clock, epoch ms (tests move it to exercise renewal). Default Date.now. */
  now?: () => number;
  /** Key type of issued leaves. Default 'rsa': the edge cipher list includes RSA-only suites (AES128-SHA …). */
  leafKeyType?: KeyType;
}

/** A leaf certificate the local CA issued (or reused from its cache). */
export interface LocalLeaf {
  /** PEM certificate (leaf only: the root is what clients trust, it is not sent). */
  readonly cert: string;
  /** PEM PKCS#8 key. */
  readonly key: string;
  readonly info: CertInfo;
  /** The cache file it lives in. */
  readonly file: string;
  /** True when the cached certificate was still good and no new one was issued. */
  readonly reused: boolean;
}

export interface LocalCa {
  readonly dataDir: string;
  /** Absolute paths of the root certificate and key. */
  readonly certFile: string;
  readonly keyFile: string;
  /** The root certificate, PEM: what `refract ca export` prints. */
  readonly certPem: string;
  readonly info: CertInfo;
  /** True when this call created the CA (false: loaded an existing one). */
  readonly created: boolean;
  /**
   * A leaf for `names` (DNS names or IPs; the first is the CN), cached under certs/<appId>.pem. Rejects with
   * E_TLS_CA when the cache cannot be written; a corrupt cache file is replaced, not an error.
   */
  leafFor(appId: string, names: readonly string[]): Promise<LocalLeaf>;
}

/**
 * Loads the local CA from `dataDir`, creating it (and the directory) when absent. Rejects with RefractError
 * E_TLS_KEY_PERMISSIONS when the directory, `certs/` or the CA key may be accessed by group or others
 * (`key-permissions.ts`), and E_TLS_CA (details: dataDir, file, reason) when the directory cannot be created or written, or the files are
 * unreadable, not a CA, mismatched with their key, or expired (remove the directory to start a new CA; clients
 * must then trust the new root).
 */
export async function openLocalCa(opts: LocalCaOptions): Promise<LocalCa> {
  const dataDir = resolve(opts.dataDir);
  const now = opts.now ?? Date.now;
  const certFile = join(dataDir, CA_CERT_FILE);
  const keyFile = join(dataDir, CA_KEY_FILE);
  const fail = (reason: string, file: string, cause?: unknown): RefractError =>
    new RefractError('E_TLS_CA', { details: { dataDir, file, reason }, ...(cause === undefined ? {} : { cause }) });

  try {
    await mkdir(join(dataDir, LEAF_DIR), { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw fail('mkdir', dataDir, cause);
  }
  // mkdir's mode applies to directories it creates only: one made earlier (by hand, or by an older version) is checked.
  await assertPrivate(dataDir, 'ca_dir');
  await assertPrivate(join(dataDir, LEAF_DIR), 'ca_dir');

  let created = false;
  let pair = await readCaFiles(certFile, keyFile, fail);
  if (pair === undefined) {
    const ca = await issueCert({ names: [], isCa: true, commonName: CA_COMMON_NAME, keyType: 'rsa', notBeforeMs: now() - DAY_MS, notAfterMs: now() + CA_LIFETIME_MS });
    if (await publishKey(keyFile, ca.key, fail)) {
      await writeAtomic(certFile, ca.cert, 0o644).catch((cause: unknown) => {
        throw fail('write', certFile, cause);
      });
      pair = ca;
      created = true;
      opts.log?.info({ dataDir, certFile }, 'created the local CA; clients trust it after `refract ca export`');
    } else {
      pair = await waitForCert(certFile, keyFile, fail);
    }
  }

  await assertPrivate(keyFile, 'key');
  const { cert: certPem, key: keyPem } = pair;
  let x: X509Certificate;
  try {
    x = new X509Certificate(certPem);
    if (!x.checkPrivateKey(createPrivateKey(keyPem))) throw fail('key_mismatch', keyFile);
  } catch (e) {
    throw e instanceof RefractError ? e : fail('invalid', certFile, e);
  }
  if (!x.ca) throw fail('not_a_ca', certFile);
  if (Date.parse(x.validTo) <= now()) throw fail('expired', certFile);
  const info = describeCert(x);
  const issuer = { cert: certPem, key: keyPem };
  const leafKeyType = opts.leafKeyType ?? 'rsa';

  async function leafFor(appId: string, names: readonly string[]): Promise<LocalLeaf> {
    const file = join(dataDir, LEAF_DIR, `${leafFileName(appId)}.pem`);
    await assertPrivate(file, 'key'); // a cached leaf holds its key
    const cached = await readLeaf(file, x);
    const t = now();
    if (cached && sameNames(cached.info.names, names) && cached.info.notBeforeMs <= t && cached.info.notAfterMs - LEAF_RENEW_BEFORE_MS > t) {
      return { ...cached, file, reused: true };
    }
    // A leaf never outlives its root (OpenSSL would reject the chain after the root expires anyway).
    const notAfterMs = Math.min(t + LEAF_LIFETIME_MS, info.notAfterMs);
    const leaf = await issueCert({ names: [...names], issuer, keyType: leafKeyType, notBeforeMs: t - DAY_MS, notAfterMs });
    try {
      await writeAtomic(file, leaf.cert + leaf.key, 0o600);
    } catch (cause) {
      throw fail('write', file, cause);
    }
    opts.log?.info({ appId, names, file }, cached ? 'renewed the local-CA certificate' : 'issued a local-CA certificate');
    return { cert: leaf.cert, key: leaf.key, info: describeCert(leaf.cert, [info]), file, reused: false };
  }

  return { dataDir, certFile, keyFile, certPem, info, created, leafFor };
}

type Fail = (reason: string, file: string, cause?: unknown) => RefractError;

/** Both CA files, or undefined when neither exists yet. A key without its cert is a race in progress (or a crash). */
async function readCaFiles(certFile: string, keyFile: string, fail: Fail): Promise<{ cert: string; key: string } | undefined> {
  const cert = await readOptional(certFile, fail);
  const key = await readOptional(keyFile, fail);
  if (cert !== undefined && key !== undefined) return { cert, key };
  if (cert === undefined && key === undefined) return undefined;
  if (key === undefined) throw fail('key_missing', keyFile);
  return waitForCert(certFile, keyFile, fail);
}

async function readOptional(file: string, fail: Fail): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fail('read', file, e);
  }
}

/** Publishes the CA key unless one exists: true when ours won. */
async function publishKey(keyFile: string, key: string, fail: Fail): Promise<boolean> {
  const tmp = tempName(keyFile);
  try {
    await writeFile(tmp, key, { mode: 0o600, flag: 'wx' });
    await link(tmp, keyFile);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fail('write', keyFile, e);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Another process published the key; its ca.pem follows. A key older than the wait with no cert is left over from a crash. */
async function waitForCert(certFile: string, keyFile: string, fail: Fail): Promise<{ cert: string; key: string }> {
  const deadline = Date.now() + CA_RACE_WAIT_MS;
  for (let i = 0; i <= CA_RACE_WAIT_MS / CA_RACE_POLL_MS; i++) {
    const cert = await readOptional(certFile, fail);
    if (cert !== undefined) {
      const key = await readOptional(keyFile, fail);
      if (key === undefined) throw fail('key_missing', keyFile);
      return { cert, key };
    }
    const age = await stat(keyFile).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > CA_RACE_WAIT_MS || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, CA_RACE_POLL_MS));
  }
  throw fail('cert_missing', certFile);
}

/** The cached leaf when it parses, its key matches and the current root issued it; otherwise undefined (re-issue). */
async function readLeaf(file: string, ca: X509Certificate): Promise<{ cert: string; key: string; info: CertInfo } | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const cert = splitPemCerts(text)[0];
    const keyMatch = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(text);
    if (cert === undefined || keyMatch === null) return undefined;
    const key = keyMatch[0] + '\n';
    const x = new X509Certificate(cert);
    if (!x.checkPrivateKey(createPrivateKey(key)) || !x.checkIssued(ca) || !x.verify(ca.publicKey)) return undefined;
    return { cert, key, info: describeCert(x, [ca]) };
  } catch {
    return undefined;
  }
}

function sameNames(have: readonly string[], want: readonly string[]): boolean {
  // describeCert lowercases DNS names and canonicalises IPs; compare the same way, order-insensitively.
  const norm = (xs: readonly string[]): string => [...new Set(xs.map(normalizeName))].sort().join('\n');
  const first = want[0];
  return first !== undefined && have[0] === normalizeName(first) && norm(have) === norm(want);
}

/** App ids become file names as is when safe; anything else maps to a hash (no path tricks, no collisions). */
function leafFileName(appId: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(appId)) return appId;
  return `app-${createHash('sha256').update(appId).digest('hex').slice(0, 32)}`;
}

function tempName(file: string): string {
  return `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
}

/** Write to a temp file in the same directory, then rename over the target (atomic on POSIX). */
async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = tempName(file);
  try {
    await writeFile(tmp, text, { mode, flag: 'wx' });
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
