/**
 * `refract serve --pid-file FILE`: the server's PID, written at start and removed at exit, for init scripts and
 * `kill -HUP $(cat FILE)`. A file that names a running process is refused (E_PID_FILE_IN_USE); one left behind by
 * a process that has ended is replaced.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { RefractError } from '../model/errors.ts';

/** Whether a process with this PID exists (EPERM: it exists but belongs to someone else). */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface PidFile {
  readonly path: string;
  /** Removes the file if it still holds our PID. Never throws. */
  remove(): void;
}

/**
 * Writes `pid` to `file` (temp file + rename, so a reader never sees a partial number). Throws
 * E_PID_FILE_IN_USE when the file holds the PID of another running process; other failures (a missing directory,
 * no permission) throw the file system's error.
 */
export function claimPidFile(file: string, pid: number = process.pid): PidFile {
  const path = resolve(file);
  let old: string | undefined;
  try {
    old = readFileSync(path, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (old !== undefined && /^\d+$/.test(old)) {
    const other = Number(old);
    if (other !== pid && processRunning(other)) {
      throw new RefractError('E_PID_FILE_IN_USE', {
        message: `${path} holds PID ${other}, a process that is still running`,
        details: { file: path, pid: other },
      });
    }
  }
  const tmp = join(dirname(path), `.${basename(path)}.${pid}.tmp`);
  writeFileSync(tmp, `${pid}\n`);
  renameSync(tmp, path);
  return {
    path,
    remove() {
      try {
        if (readFileSync(path, 'utf8').trim() === String(pid)) rmSync(path, { force: true });
      } catch {
        // already gone, or unreadable: nothing of ours to remove
      }
    },
  };
}
