/**
 * Starting a worker thread from a module next to the caller, from the TypeScript sources or the build alike.
 */
import { Worker, type ResourceLimits } from 'node:worker_threads';

/**
 * A worker running `entry` (a `.ts` URL next to the caller's module). From the built package (the caller's own URL
 * ends in .js) it runs the compiled `.js`; from the TypeScript sources (a checkout run through tsx) the worker
 * registers tsx's loader itself first, as bin/refract.js does for the main thread, with no inherited execArgv (so
 * an inherited `--import tsx` does not register the loader twice, and test runner flags stay out).
 */
export function startWorker(entry: URL, workerData: unknown, resourceLimits: ResourceLimits = {}): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  if (!fromSource) return new Worker(new URL(entry.href.replace(/\.ts$/, '.js')), { workerData, resourceLimits });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData, resourceLimits, execArgv: [] });
}
