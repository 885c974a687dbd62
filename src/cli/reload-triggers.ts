import { Subject } from 'rxjs';
import type { Logger } from 'pino';
import { watchFileChanges, type FileWatch } from '../net/node/file-watch.ts';

/**
 * What asks `serve` (one process or the workers' supervisor) to reload: SIGHUP, and with `watch` a change of the
 * config file (edits in place, renames over it, Kubernetes' ConfigMap symlink swaps: src/net/node/file-watch.ts).
 * Each `next` names the cause; the caller debounces and closes `watcher` when it stops. `baseline`: the file's
 * `fileIdentity` from before the running configuration was read, so that a change made since (while the edge was
 * starting) reloads at once instead of going unseen.
 */
export function reloadTriggers(file: string, watch: boolean, log: Logger, baseline: string): { readonly triggers: Subject<string>; readonly watcher: FileWatch | undefined } {
  const triggers = new Subject<string>();
  process.on('SIGHUP', () => triggers.next('SIGHUP'));
  let watcher: FileWatch | undefined;
  if (watch) {
    try {
      watcher = watchFileChanges(file, () => triggers.next('file change'), { debounceMs: 50, persistent: true, baseline });
      if (watcher.watchError !== undefined) log.warn({ err: watcher.watchError }, 'cannot watch the config file\'s directory; checking the file every 2 s instead (SIGHUP reloads at once)');
    } catch (e) {
      log.warn({ err: e }, 'cannot watch the config file; reload with SIGHUP');
    }
  }
  return { triggers, watcher };
}
