/**
 * Dropping root after binding (`node.user`, `node.group`): `refract serve` started as root binds every listener
 * (edge ports below 1024, DNS on 53), then becomes the configured user for the rest of its life. Order, as every
 * daemon does it: supplementary groups (initgroups), then the group, then the user; after setuid root cannot come
 * back. Refused with a code, before anything changes, when the process is not root or the user or group does not
 * exist. After the switch, the directories the process writes later (data directories, the PID file's folder, the
 * events file's folder) must be writable by the new user: one that is not stops the start with a code naming it.
 */
import { accessSync, chownSync, constants, existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { RefractError } from '../model/errors.ts';

export interface PrivilegeTarget {
  readonly user?: string | undefined;
  readonly group?: string | undefined;
}

/** The process calls used (a stand-in in tests). */
export interface PrivilegeProcess {
  getuid(): number;
  getgid(): number;
  setuid(id: string | number): void;
  setgid(id: string | number): void;
  initgroups(user: string | number, extraGroup: string | number): void;
}

/** A name, or a decimal id (`65534`). */
const idOf = (s: string): string | number => (/^\d+$/.test(s) ? Number(s) : s);

/** The primary group of `user` (`id -g`, which asks NSS like every tool does), or undefined when there is no such user. */
export function primaryGroupOf(user: string): number | undefined {
  try {
    const out = execFileSync('id', ['-g', '--', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return /^\d+$/.test(out) ? Number(out) : undefined;
  } catch {
    return undefined;
  }
}

/** The uid of `user` (`id -u`), or undefined when there is no such user. */
function uidOf(user: string): number | undefined {
  try {
    const out = execFileSync('id', ['-u', '--', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return /^\d+$/.test(out) ? Number(out) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Hands Refract's own directories to the user it is about to become: each existing directory in `dirs` and what it
 * holds (two levels: the data directory, and the CA's `certs/` in it), so that files created as root at start (the
 * local CA, the API database, the edge-IP state) stay writable. Symlinks are not followed. Call as root, before
 * `dropPrivileges`.
 */
export function handOver(dirs: readonly string[], user: string, group: string | undefined): void {
  const uid = /^\d+$/.test(user) ? Number(user) : uidOf(user);
  if (uid === undefined) throw new RefractError('E_PRIVILEGES_UNKNOWN', { message: `node.user: no user ${user} on this host`, details: { user } });
  const gid = group === undefined ? primaryGroupOf(user) : /^\d+$/.test(group) ? Number(group) : groupIdOf(group);
  if (gid === undefined) throw new RefractError('E_PRIVILEGES_UNKNOWN', { message: `node.group: no group ${group ?? user} on this host`, details: { group: group ?? user } });
  const walk = (path: string, depth: number): void => {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined || st.isSymbolicLink()) return;
    chownSync(path, uid, gid);
    if (st.isDirectory() && depth > 0) for (const name of readdirSync(path)) walk(join(path, name), depth - 1);
  };
  for (const d of new Set(dirs)) walk(d, 2);
}

/** The gid of a group name (`getent group`), or undefined. */
function groupIdOf(group: string): number | undefined {
  try {
    const out = execFileSync('getent', ['group', '--', group], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const gid = out.split(':')[2] ?? '';
    return /^\d+$/.test(gid) ? Number(gid) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Becomes `target.user` (and `target.group`, default: the user's primary group). Nothing to do without a user.
 * @returns the new uid and gid, or undefined when no user is configured
 * @throws RefractError E_PRIVILEGES_NOT_ROOT (set, but not running as root), E_PRIVILEGES_UNKNOWN (details.user or
 *   details.group: no such user or group); the process is unchanged then
 */
export function dropPrivileges(
  target: PrivilegeTarget,
  proc: PrivilegeProcess = process as unknown as PrivilegeProcess,
  groupOf: (user: string) => number | undefined = primaryGroupOf,
  /** Runs as root after the checks, before the switch (serve: `handOver` of the data directories). */
  beforeSwitch: () => void = () => {},
): { uid: number; gid: number } | undefined {
  const { user, group } = target;
  if (user === undefined) {
    if (group !== undefined) throw new RefractError('E_PRIVILEGES_UNKNOWN', { message: 'node.group needs node.user', details: { group } });
    return undefined;
  }
  if (typeof proc.getuid !== 'function' || proc.getuid() !== 0) {
    throw new RefractError('E_PRIVILEGES_NOT_ROOT', {
      message: `node.user is ${user}, but refract is not running as root (uid ${typeof proc.getuid === 'function' ? proc.getuid() : 'unknown'}): start it as root, or remove node.user and grant CAP_NET_BIND_SERVICE instead`,
      details: { user },
    });
  }
  const primary = groupOf(user);
  if (primary === undefined) throw new RefractError('E_PRIVILEGES_UNKNOWN', { message: `node.user: no user ${user} on this host`, details: { user } });
  const gid = group === undefined ? primary : idOf(group);
  beforeSwitch();
  try {
    proc.initgroups(idOf(user), gid);
    proc.setgid(gid);
  } catch (cause) {
    throw new RefractError('E_PRIVILEGES_UNKNOWN', { message: `node.group: cannot become group ${String(gid)}: ${(cause as Error).message}`, details: { user, group: String(gid) }, cause });
  }
  try {
    proc.setuid(idOf(user));
  } catch (cause) {
    throw new RefractError('E_PRIVILEGES_UNKNOWN', { message: `node.user: cannot become ${user}: ${(cause as Error).message}`, details: { user }, cause });
  }
  return { uid: proc.getuid(), gid: proc.getgid() };
}

/**
 * After the switch: each existing directory in `dirs` must be writable (and searchable) by the new user.
 * @throws RefractError E_PRIVILEGES_UNWRITABLE (details: path, user)
 */
export function assertWritableAfterDrop(dirs: readonly string[], user: string): void {
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch {
      throw new RefractError('E_PRIVILEGES_UNWRITABLE', {
        message: `${dir} is not writable by ${user} (node.user): chown ${user} ${dir}`,
        details: { path: dir, user },
      });
    }
  }
}
