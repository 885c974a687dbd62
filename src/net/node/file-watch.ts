/**
 * Watching one file for changes the way operators replace files, for the config file and the geo databases.
 *
 * Three ways a file gets replaced, and what sees each:
 * - **written in place** (`>` or an editor that rewrites): an inotify event on the file's directory;
 * - **renamed over** (`mv new old`, most editors' safe save): an event on the directory, never on the old inode,
 *   which is why the directory is watched and not the file;
 * - **a symlink swap** (Kubernetes ConfigMap and Secret volumes: `file → ..data/file`, `..data → ..<timestamp>/`;
 *   an update makes a new timestamped directory, renames a new `..data` link over the old one and deletes the old
 *   directory). The real file's directory is deleted, so a watch on it fires once and then never again.
 *
 * So the real file's directory is watched, and so is every symlink met on the way to it (in its own directory: that
 * is where a swap renames it), and after every event the chain is resolved again and the watches moved.
 * A slow `stat` poll of the path as given backs all of this up (it follows symlinks, so any replacement shows as a
 * new inode, size or mtime) for file systems without inotify. Events are debounced into one `onChange` call.
 *
 * One change, one call: every path above may see the same change (the watcher at once, the poll up to 2 s later,
 * a rename as two events), so `onChange` runs only when the file's identity (device, inode, size, mtime, ctime, as
 * `stat` of the path sees it through its links) differs from what it was at the previous call (or at the start).
 */
import { watch, lstatSync, readlinkSync, stat, statSync, type BigIntStats, type FSWatcher } from 'node:fs';
import { basename, dirname, isAbsolute, parse, resolve, sep } from 'node:path';

export interface FileWatchOptions {
  /** Quiet time after the last event before `onChange` runs (default 150 ms). */
  readonly debounceMs?: number;
  /** Interval of the backup stat poll (default 2,000 ms; 0: no poll). */
  readonly pollMs?: number;
  /** Keep the process alive while watching (default false). */
  readonly persistent?: boolean;
  /**
   * The file's `fileIdentity` from before the caller last read it. A change made between that read and the start
   * of the watch is otherwise never reported (the watch would take the changed file as its starting point); with
   * it, a file that differs at the start gets one `onChange` (debounced) at once.
   */
  readonly baseline?: string;
}

/**
 * What tells one version of a file from another, as `stat` of the path sees it through its links: device, inode,
 * size, mtime and ctime (ctime moves on every write, rename-over and chmod); `missing:CODE` when it cannot be read.
 */
export function fileIdentity(file: string): string {
  try {
    return identityOf(statSync(file, { bigint: true }));
  } catch (e) {
    return missing(e);
  }
}

const identityOf = (st: BigIntStats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
const missing = (e: unknown): string => `missing:${String((e as { code?: unknown }).code)}`;

export interface FileWatch {
  /** The directories watched right now (for tests and logs). */
  readonly watching: () => readonly string[];
  /**
   * `fs.watch`'s error when no directory of the path could be watched at the start (no inotify, or its watch limit
   * reached: ENOSPC): changes are then seen by the stat poll alone, up to `pollMs` late. Undefined otherwise.
   */
  readonly watchError: unknown;
  close(): void;
}

/**
 * Calls `onChange` (debounced) whenever `file` may have changed: written, renamed over, or swapped through a
 * symlink. It does not read the file; the caller re-reads it and decides whether anything changed. When no directory
 * of the path can be watched, the stat poll carries on alone (`FileWatch.watchError` says so; each change it sees
 * also tries the watches again).
 * @throws the error of `fs.watch` when no directory of the path could be watched and there is no poll (`pollMs: 0`).
 */
export function watchFileChanges(file: string, onChange: () => void, opts: FileWatchOptions = {}): FileWatch {
  const debounceMs = opts.debounceMs ?? 150;
  const pollMs = opts.pollMs ?? 2_000;
  const persistent = opts.persistent ?? false;
  const given = resolve(file);
  const watchers = new Map<string, FSWatcher>();
  /** Per watched directory, the entry names that matter there. */
  let names = new Map<string, Set<string>>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const identity = (): string => fileIdentity(given);
  /** The file as it was at the last `onChange` (or as the caller read it, or at the start). */
  let seen = opts.baseline ?? identity();

  const fire = (): void => {
    if (closed) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (closed) return;
      arm(); // the real path may have moved (a symlink swap): follow it before the caller re-reads
      const now = identity();
      if (now === seen) return; // already reported (the poll seeing what the watcher saw), or nothing changed
      seen = now;
      onChange();
    }, debounceMs);
  };

  /**
   * The (directory, names) to watch: every symlink met while resolving the path (at any component, as realpath
   * walks it: a linked file such as Kubernetes' `file → ..data/file`, a linked directory such as `..data → ..v2`
   * or `/etc/refract → /opt/refract-v2`), each in its real directory, and the real file itself.
   */
  const targets = (): Map<string, Set<string>> => {
    const out = new Map<string, Set<string>>();
    const add = (d: string, name: string): void => {
      const set = out.get(d) ?? new Set<string>();
      set.add(name);
      out.set(d, set);
    };
    let cur = parse(given).root;
    let pending = given.slice(cur.length).split(sep).filter((c) => c !== '' && c !== '.');
    let hops = 0;
    while (pending.length > 0) {
      const c = pending.shift()!;
      const next = resolve(cur, c);
      if (c !== '..' && hops < 40) {
        try {
          if (lstatSync(next).isSymbolicLink()) {
            hops++;
            add(cur, c);
            const target = readlinkSync(next);
            if (isAbsolute(target)) cur = parse(target).root;
            pending = [...target.slice(isAbsolute(target) ? parse(target).root.length : 0).split(sep).filter((x) => x !== '' && x !== '.'), ...pending];
            continue;
          }
        } catch {
          // missing right now (mid-swap, or deleted): watch what exists; the watches re-arm when it comes back
        }
      }
      cur = next;
    }
    add(dirname(cur), basename(cur));
    return out;
  };

  /** Moves the watches to the current chain. Returns the first error of a directory that could not be watched. */
  const arm = (): unknown => {
    let failed: unknown;
    const want = targets();
    names = want;
    for (const [dir, w] of watchers) {
      if (!want.has(dir)) {
        w.close();
        watchers.delete(dir);
      }
    }
    for (const dir of want.keys()) {
      if (watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent }, (_event, name) => {
          if (name === null || names.get(dir)?.has(name) === true) fire();
        });
        w.on('error', () => {
          // the directory went away (the old timestamped directory of a swap): re-arm from the current chain
          w.close();
          watchers.delete(dir);
          fire();
        });
        watchers.set(dir, w);
      } catch (e) {
        failed ??= e; // gone again already (mid-swap): the other watches and the poll see what comes next
      }
    }
    return failed;
  };

  const failed = arm();
  const watchError = watchers.size === 0 && failed !== undefined ? failed : undefined;
  if (watchError !== undefined && pollMs <= 0) throw watchError;
  // The poll compares the file's identity with `seen` (what the last call reported), not with its own previous look:
  // `fs.watchFile` takes its first stat, made on the thread pool after the start, as its baseline, so a file
  // created or changed in between (a path whose directory appears and is written at once) was never reported.
  let pollTimer: ReturnType<typeof setTimeout> | undefined;
  const poll = (): void => {
    pollTimer = setTimeout(() => {
      pollTimer = undefined;
      stat(given, { bigint: true }, (err, st) => {
        if (closed) return;
        if ((err ? missing(err) : identityOf(st)) !== seen) fire();
        poll();
      });
    }, pollMs);
    if (!persistent) pollTimer.unref();
  };
  if (pollMs > 0) poll();
  if (opts.baseline !== undefined && opts.baseline !== identity()) fire(); // changed since the caller read it

  return {
    watching: () => [...watchers.keys()],
    watchError,
    close: () => {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      for (const w of watchers.values()) w.close();
      watchers.clear();
      if (pollTimer !== undefined) clearTimeout(pollTimer);
    },
  };
}
