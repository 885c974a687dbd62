/**
 * The certificate and key files that the running config names, watched for replacement (written in place, renamed
 * over, swapped through a symlink: `watchFileChanges`, with its 2 s stat poll as the backstop). Any change calls
 * `onChange` (the caller reloads the edge's certificates, which is all-or-nothing: a bad file keeps the running
 * ones). `update` takes the list again after every applied change, since the config names the files.
 *
 * Shared by `refract serve` and each `--workers` worker.
 */
import { watchFileChanges, type FileWatch } from '../net/node/file-watch.ts';

export class CertWatch {
  readonly #watches = new Map<string, FileWatch>();
  readonly #onChange: () => void;

  constructor(onChange: () => void) {
    this.#onChange = onChange;
  }

  /** Watches exactly `files` from now on: new ones start (their state now is the starting point), gone ones stop. */
  update(files: readonly string[]): void {
    const want = new Set(files);
    for (const [file, w] of this.#watches) {
      if (!want.has(file)) {
        w.close();
        this.#watches.delete(file);
      }
    }
    for (const file of want) {
      // With a poll, watchFileChanges does not throw: a file whose directory cannot be watched is polled alone.
      if (!this.#watches.has(file)) this.#watches.set(file, watchFileChanges(file, this.#onChange, { debounceMs: 150, pollMs: 2_000 }));
    }
  }

  /** The files watched now (for tests). */
  files(): readonly string[] {
    return [...this.#watches.keys()];
  }

  close(): void {
    for (const w of this.#watches.values()) w.close();
    this.#watches.clear();
  }
}
