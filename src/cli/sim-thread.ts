/**
 * `refract sim` runs the scenario in a worker thread with a larger young generation than Node's default.
 *
 * Why: with ~1,000 simulated connections open, what each keeps alive is copied by every scavenge; in V8's default
 * 16 MB semi-spaces much of a connection's state is still alive at its first scavenge, so it is copied and then
 * promoted. With 64 MB semi-spaces most of it dies first (docs/benchmarks.md, Simulator, fourth round of the
 * scenario runner). A worker's heap is configured when it starts (`resourceLimits.maxYoungGenerationSizeMb`), so the
 * CLI needs no Node flag and no second process: signals, stdin and the exit code stay the launcher's process's.
 *
 * The worker runs `simCommand` (src/scenario/cli.ts) as the main thread did; its stdout and stderr text comes back
 * as messages, written here in order, and so does its exit code. An error thrown in the worker rejects, like an
 * error thrown in the main thread did (src/cli.ts prints it and exits 1).
 */
import { startWorker } from '../net/node/worker.ts';

/**
 * V8 sizes the young generation as three semi-spaces (two, plus as much again for new large objects), so 192 MB
 * is 64 MB semi-spaces. A `--max-semi-space-size` given to Node (NODE_OPTIONS) takes precedence over this.
 */
export const SIM_YOUNG_GENERATION_MB = 192;

/** What the worker (src/cli/sim-worker.ts) is given. */
export interface SimWorkerData {
  readonly argv: readonly string[];
  /** Whether the launcher's stderr is a terminal (a worker's own stderr never is). */
  readonly tty: boolean;
}

/** A message from the worker: text for stdout or stderr, or the command's exit code (the last message). */
export type SimWorkerMessage = { readonly out: string } | { readonly err: string } | { readonly exit: number };

const processOutput = {
  out: (t: string): void => void process.stdout.write(t),
  err: (t: string): void => void process.stderr.write(t),
};

/** Runs `refract sim` with `argv` in a worker thread; resolves with its exit code. */
export function simInWorker(argv: readonly string[], write: { out(text: string): void; err(text: string): void } = processOutput): Promise<number> {
  const data: SimWorkerData = { argv, tty: process.stderr.isTTY === true };
  const worker = startWorker(new URL('./sim-worker.ts', import.meta.url), data, { maxYoungGenerationSizeMb: SIM_YOUNG_GENERATION_MB });
  return new Promise((resolve, reject) => {
    let settled = false;
    worker.on('message', (m: SimWorkerMessage) => {
      if ('out' in m) write.out(m.out);
      else if ('err' in m) write.err(m.err);
      else {
        settled = true;
        resolve(m.exit);
      }
    });
    worker.on('error', (e) => {
      settled = true;
      reject(e);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`the sim worker thread stopped (code ${code}) before the command finished`));
    });
  });
}
