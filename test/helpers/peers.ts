/** Finding real-peer binaries (haproxy, dig, nginx, openssl) for test/peer: a missing one fails, unless skipped. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The executable `name` on PATH, or undefined. */
export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here; try the next directory
    }
  }
  return undefined;
}
