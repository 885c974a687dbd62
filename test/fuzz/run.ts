/**
 * `npm run fuzz`: every target of test/fuzz/targets.ts, one after another, 10^6 fast-check inputs each by default.
 * For each target it prints the seed first (so a crash or a hang can be replayed), then a table row: inputs, time,
 * inputs/s, the slowest input (µs, and its fast-check path), heap used at start, end and its largest sample.
 *
 *   npm run fuzz                                  all targets, 10^6 inputs each, a fresh seed per target
 *   npm run fuzz -- --runs 10000 --only dns,spp   fewer inputs, some targets
 *   npm run fuzz -- --only config --seed S --path P          replay one input (prints it and the outcome)
 *
 * A failure (a throw, a broken contract) is shrunk by fast-check, printed with its seed and path, and makes the
 * exit code 1. So does a slow input: the slowest input of each target is run again (best of 5, which tells a slow
 * input from a GC pause or a busy machine), and over --slow-ms (default 500) the row says SLOW. A hang (one input running past --hang-ms, default 10,000) is caught by a watchdog thread, which
 * prints the target, seed and path of the input and kills the process (exit by SIGKILL). Heap figures are
 * `process.memoryUsage().heapUsed`: start and end after a full GC (run with --expose-gc, as the npm script does),
 * max over samples taken every --heap-every inputs (default 10,000) without GC.
 */
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { TARGETS, type FuzzTarget } from './targets.ts';
import { show } from './mutate.ts';

interface Options {
  runs: number;
  only: string[] | undefined;
  seed: number | undefined;
  path: string | undefined;
  hangMs: number;
  slowMs: number;
  heapEvery: number;
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: npm run fuzz -- [--runs N] [--only a,b] [--seed S [--path P]] [--hang-ms MS] [--slow-ms MS] [--heap-every N]\ntargets: ${TARGETS.map((t) => t.name).join(', ')}\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { runs: 1_000_000, only: undefined, seed: undefined, path: undefined, hangMs: 10_000, slowMs: 500, heapEvery: 10_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    const int = (): number => {
      if (v === undefined || !/^-?\d+$/.test(v)) usage(`${a} takes an integer`);
      i++;
      return Number(v);
    };
    if (a === '--runs') o.runs = int();
    else if (a === '--seed') o.seed = int();
    else if (a === '--hang-ms') o.hangMs = int();
    else if (a === '--slow-ms') o.slowMs = int();
    else if (a === '--heap-every') o.heapEvery = int();
    else if (a === '--path') {
      if (v === undefined || !/^\d+(:\d+)*$/.test(v)) usage('--path takes a fast-check path such as 12 or 12:0:3');
      o.path = v;
      i++;
    } else if (a === '--only') {
      if (v === undefined) usage('--only takes target names');
      o.only = v.split(',').filter((s) => s !== '');
      i++;
    } else usage(`unknown argument ${String(a)}`);
  }
  if (o.path !== undefined && o.seed === undefined) usage('--path needs --seed');
  if (o.runs < 1 || o.heapEvery < 1 || o.hangMs < 1) usage('--runs, --heap-every and --hang-ms must be positive');
  for (const n of o.only ?? []) if (!TARGETS.some((t) => t.name === n)) usage(`no target ${n}`);
  return o;
}

// ── the watchdog: a thread that sees a stuck input even while the main thread is blocked in a parser ──────────

/** Shared words: [0] inputs started, [1] 1 while an input runs, [2] seed, [3] target index. */
const state = new Int32Array(new SharedArrayBuffer(16));

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const s = new Int32Array(workerData.sab);
let last = -1;
let since = Date.now();
setInterval(() => {
  const n = Atomics.load(s, 0);
  if (Atomics.load(s, 1) === 0 || n !== last) { last = n; since = Date.now(); return; }
  if (Date.now() - since < workerData.hangMs) return;
  const name = workerData.names[Atomics.load(s, 3)];
  writeSync(2, '\\nHANG: ' + name + ': input ' + (n - 1) + ' has run for more than ' + workerData.hangMs + ' ms\\n' +
    'replay: npm run fuzz -- --only ' + name + ' --seed ' + Atomics.load(s, 2) + ' --path ' + (n - 1 + workerData.offset) + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, Math.max(10, Math.min(500, workerData.hangMs / 4)));
`;

function startWatchdog(hangMs: number, offset: number): Worker {
  const w = new Worker(WATCHDOG, { eval: true, workerData: { sab: state.buffer, hangMs, names: TARGETS.map((t) => t.name), offset } });
  w.unref();
  return w;
}

// ── one target ───────────────────────────────────────────────────────────────────────────────────────────────

interface Row {
  name: string;
  inputs: number;
  seconds: number;
  /** Of `seconds`, the time inside the parser and its checks (the rest is input generation). */
  parserSeconds: number;
  slowestUs: number;
  /** The slowest input run again, best of 5 (µs): tells a slow input from a GC pause or a busy machine. */
  retimedUs: number | undefined;
  slowestPath: number;
  heapStart: number;
  heapEnd: number;
  heapMax: number;
  failed: boolean;
  /** The re-timed slowest input took longer than --slow-ms. */
  slow: boolean;
}

const gc = (globalThis as { gc?: () => void }).gc;
const heap = (): number => process.memoryUsage().heapUsed;
const mb = (b: number): string => (b / 1_048_576).toFixed(1);

function fuzzOne(t: FuzzTarget<unknown>, index: number, o: Options): Row {
  const seed = o.seed ?? (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
  const replay = o.path !== undefined;
  const offset = o.path !== undefined && !o.path.includes(':') ? Number(o.path) : 0;
  process.stdout.write(`${t.name}: ${t.parser}\n  seed ${seed}${replay ? ` path ${o.path}` : ''}, ${replay ? 1 : o.runs} input(s)\n`);
  Atomics.store(state, 0, 0);
  Atomics.store(state, 2, seed);
  Atomics.store(state, 3, index);

  gc?.();
  const heapStart = heap();
  let heapMax = heapStart;
  let inputs = 0;
  let slowest = 0n;
  let inParser = 0n;
  let slowestPath = -1;
  const started = process.hrtime.bigint();
  const result = fc.check(
    fc.property(t.input, (input) => {
      Atomics.store(state, 0, inputs + 1);
      Atomics.store(state, 1, 1);
      const t0 = process.hrtime.bigint();
      try {
        t.run(input);
      } finally {
        const dt = process.hrtime.bigint() - t0;
        inParser += dt;
        Atomics.store(state, 1, 0);
        if (dt > slowest) {
          slowest = dt;
          slowestPath = inputs + offset;
        }
        inputs++;
        if (inputs % o.heapEvery === 0) heapMax = Math.max(heapMax, heap());
        if (replay) process.stdout.write(`  input: ${show(input)}\n`);
      }
    }),
    { seed, numRuns: replay ? 1 : o.runs, ...(o.path === undefined ? {} : { path: o.path }) },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  gc?.();
  const heapEnd = heap();
  const retimedUs = result.failed || slowestPath < 0 ? undefined : retime(t, seed, o.path !== undefined && o.path.includes(':') ? o.path : String(slowestPath));
  heapMax = Math.max(heapMax, heapEnd);
  if (result.failed) {
    process.stdout.write(`  FAILED after ${result.numRuns} input(s), shrunk ${result.numShrinks} time(s)\n`);
    process.stdout.write(`  counterexample: ${show(result.counterexample?.[0])}\n`);
    process.stdout.write(`  error: ${result.errorInstance instanceof Error ? (result.errorInstance.stack ?? result.errorInstance.message) : String(result.errorInstance)}\n`);
    process.stdout.write(`  replay: npm run fuzz -- --only ${t.name} --seed ${result.seed} --path ${result.counterexamplePath ?? ''}\n`);
  } else if (replay) {
    process.stdout.write('  passed\n');
  }
  const slow = retimedUs !== undefined && retimedUs > o.slowMs * 1000;
  if (slow) {
    process.stdout.write(`  SLOW: the slowest input takes ${(retimedUs / 1000).toFixed(0)} ms (over --slow-ms ${o.slowMs})\n`);
    process.stdout.write(`  replay: npm run fuzz -- --only ${t.name} --seed ${seed} --path ${slowestPath}\n`);
  }
  return { name: t.name, inputs, seconds, parserSeconds: Number(inParser) / 1e9, retimedUs, slow, slowestUs: Number(slowest) / 1000, slowestPath, heapStart, heapEnd, heapMax, failed: result.failed };
}

/** The input at `path` of `seed`, run 5 times: the fastest time in µs. */
function retime(t: FuzzTarget<unknown>, seed: number, path: string): number | undefined {
  let input: { v: unknown } | undefined;
  fc.check(fc.property(t.input, (v) => {
    input = { v };
  }), { seed, numRuns: 1, path });
  if (input === undefined) return undefined;
  let best = Infinity;
  for (let k = 0; k < 5; k++) {
    const t0 = process.hrtime.bigint();
    try {
      t.run(input.v);
    } catch {
      return undefined;
    }
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1000);
  }
  return best;
}

// ── main ─────────────────────────────────────────────────────────────────────────────────────────────────────

function table(rows: readonly Row[]): string {
  const head = ['parser', 'inputs', 'time s', 'in parser s', 'inputs/s', 'slowest µs', 'slowest at', 're-timed µs', 'heap start MB', 'heap end MB', 'heap max MB', 'result'];
  const body = rows.map((r) => [
    r.name,
    r.inputs.toLocaleString('en-US'),
    r.seconds.toFixed(1),
    r.parserSeconds.toFixed(1),
    Math.round(r.inputs / r.seconds).toLocaleString('en-US'),
    r.slowestUs.toFixed(0),
    `path ${r.slowestPath}`,
    r.retimedUs === undefined ? '-' : r.retimedUs.toFixed(0),
    mb(r.heapStart),
    mb(r.heapEnd),
    mb(r.heapMax),
    r.failed ? 'FAILED' : r.slow ? 'SLOW' : 'ok',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => (i === 0 || i === 6 || i === 11 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i === 0 || i === 6 || i === 11 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...body.map(line)].join('\n');
}

const o = parseArgs(process.argv.slice(2));
if (gc === undefined) process.stdout.write('note: run with node --expose-gc for heap figures after a full GC\n');
const offset = o.path !== undefined && !o.path.includes(':') ? Number(o.path) : 0;
const watchdog = startWatchdog(o.hangMs, offset);
const rows: Row[] = [];
for (const [i, t] of TARGETS.entries()) {
  if (o.only !== undefined && !o.only.includes(t.name)) continue;
  rows.push(fuzzOne(t, i, o));
}
await watchdog.terminate();
process.stdout.write(`\nnode ${process.version}, ${new Date().toISOString()}\n${table(rows)}\n`);
process.exitCode = rows.some((r) => r.failed || r.slow) ? 1 : 0;
