/**
 * How the benchmarks start Refract. By default they run what a user runs: the compiled CLI (`dist/cli.js`, plain
 * `node`, as the installed package's `bin/refract.js` does), built first with `npm run build` when it is missing or
 * older than a file under src/. `refract-tsx` (bench/proxies.ts) runs the same checkout from its TypeScript sources
 * through tsx's loader instead, as `npm run refract` does, to show what the loader costs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** `build`: dist/cli.js with plain node; `tsx`: src/cli.ts through tsx's loader. */
export type RefractLoad = 'build' | 'tsx';

/** Node's arguments that start the CLI of the checkout at `root` (the CLI's own arguments follow). */
export function refractCli(root: string, load: RefractLoad = 'build'): string[] {
  return load === 'tsx' ? ['--import', 'tsx', join(root, 'src/cli.ts')] : [join(root, 'dist/cli.js')];
}

/** Whether a process's command line is a Refract CLI (either way of starting it). */
export function isRefractCli(cmd: string): boolean {
  return cmd.includes('src/cli.ts') || cmd.includes('dist/cli.js');
}

/** The newest modification time (ms) of a .ts file under `dir`. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith('.ts')) continue;
    const m = statSync(join(e.parentPath, e.name)).mtimeMs;
    if (m > newest) newest = m;
  }
  return newest;
}

/** Whether `root`'s dist/cli.js exists and is at least as new as every file under src/. */
export function buildIsFresh(root: string): boolean {
  const built = join(root, 'dist/cli.js');
  return existsSync(built) && statSync(built).mtimeMs >= newestSource(join(root, 'src'));
}

/**
 * Builds `root` (`npm run build`) unless its dist/ is fresh. Returns what it did, for the progress line; throws with
 * the build's output when the build fails.
 */
export function ensureBuild(root: string): 'fresh' | 'built' {
  if (buildIsFresh(root)) return 'fresh';
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`npm run build failed in ${root} (exit ${r.status ?? r.signal}):\n${(r.stdout + r.stderr).trim().slice(-2_000)}`);
  return 'built';
}
