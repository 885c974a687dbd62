/**
 * Private keys and the directory of Refract's local CA must be accessible to their owner only, as OpenSSH demands of
 * its keys: a key file (PEM files named by `tls.key_file`, the CA's `ca-key.pem`, the cached leaves in `certs/`)
 * or the CA directory with any group or other permission bit (`mode & 0o077`) is refused with
 * `E_TLS_KEY_PERMISSIONS`, naming the file and its mode. There is no override: `chmod 600` the key (`700` the
 * directory), or give the process's user its own copy. Refract creates them 0600 / 0700 itself.
 *
 * Checked on POSIX only: Windows has no such mode bits (Node reports 0o666 for every writable file there).
 */
import { stat } from 'node:fs/promises';
import { RefractError } from '../../model/errors.ts';

export type PrivatePathKind = 'key' | 'ca_dir';

/** `0o644` → `'0644'`. */
export function formatMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/**
 * Resolves when `path` is private to its owner, or does not exist / cannot be stat'ed (reading it reports that, with
 * its own code). Follows symlinks: the mode of the file the link leads to is what protects the key.
 * @throws RefractError E_TLS_KEY_PERMISSIONS (details: file, mode, kind, and `extra`)
 */
export async function assertPrivate(path: string, kind: PrivatePathKind, extra: Record<string, unknown> = {}): Promise<void> {
  if (process.platform === 'win32') return;
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch {
    return;
  }
  if ((mode & 0o077) === 0) return;
  const m = formatMode(mode);
  const fix = kind === 'key' ? `chmod 600 ${path}` : `chmod 700 ${path}`;
  throw new RefractError('E_TLS_KEY_PERMISSIONS', {
    message: `${kind === 'key' ? 'private key' : 'local CA directory'} ${path} is mode ${m}: group or others may access it (${fix})`,
    details: { ...extra, file: path, mode: m, kind },
  });
}
