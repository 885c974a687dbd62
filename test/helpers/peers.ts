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

/** Set by .ci/run: a missing peer program fails its suite instead of skipping it. */
export const PEERS_REQUIRED = process.env.REFRACT_REQUIRE_PEERS === '1';

/**
 * Whether a suite that needs the program `bin` (Debian package `pkg`) runs: `false` (run) when it is on PATH or
 * when REFRACT_REQUIRE_PEERS=1 (then the suite runs and its tests fail with how to install it); else the skip
 * reason, also written to stderr at once so that a skipped peer suite is loud in `npm test`'s output.
 */
export function peerSkip(bin: string, pkg: string, found: string | undefined = findOnPath(bin)): string | false {
  if (found !== undefined || PEERS_REQUIRED) return false;
  const reason = `${bin} is not installed (Debian/Ubuntu: apt-get install -y ${pkg}); REFRACT_REQUIRE_PEERS=1 makes this a failure`;
  process.stderr.write(`\n*** SKIPPING a real-peer suite: ${reason} ***\n\n`);
  return reason;
}

/** The error a test of a required-but-missing peer fails with. */
export function missingPeer(bin: string, pkg: string): Error {
  return new Error(`${bin} is not on PATH: install it (Debian/Ubuntu: \`apt-get install -y ${pkg}\`; .ci/run does this)`);
}
