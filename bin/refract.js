#!/usr/bin/env node
// Launcher. An installed package runs the compiled CLI (dist/cli.js) with plain node: one process, no TypeScript
// loader. A source checkout runs src/cli.ts through tsx's loader (a devDependency) when there is no build, or when
// the build is older than a file under src/ (so an edit is never hidden behind a stale dist/; `npm install` and
// `npm run build` refresh it). Either way the CLI runs in this process: signals sent to this PID reach it.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'cli.js');
const source = join(root, 'src', 'cli.ts');

/** The newest modification time of a .ts file under `dir`, in ms. */
function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith('.ts')) continue;
    const m = statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs;
    if (m > newest) newest = m;
  }
  return newest;
}

const hasSource = existsSync(source);
const useBuild = existsSync(built) && (!hasSource || statSync(built).mtimeMs >= newestSource(join(root, 'src')));

if (useBuild) {
  await import(pathToFileURL(built).href);
} else if (hasSource) {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    register = undefined;
  }
  if (register) {
    register();
    await import(pathToFileURL(source).href);
  } else if (existsSync(built)) {
    process.stderr.write('refract: dist/ is older than src/ and tsx is not installed; running the old build (npm run build refreshes it)\n');
    await import(pathToFileURL(built).href);
  } else {
    process.stderr.write('refract: no build (dist/cli.js) and no tsx to run src/ directly: run `npm install` (or `npm run build`)\n');
    process.exit(1);
  }
} else {
  process.stderr.write(`refract: ${built} is missing; this package was published without its build\n`);
  process.exit(1);
}
