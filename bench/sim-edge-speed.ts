/**
 * Simulated connection lifecycles per second THROUGH the scenario runner (`runScenario`, as `refract sim` runs a
 * file): an EdgeNode on the simulator, clients that connect, send 10 KB, read the 10 KB echo, and close; the decision
 * trace recorded and hashed, the report built. A first, untimed run of `count / 4` lifecycles (at most 5,000) warms
 * the JIT up. Run:
 *   node --import tsx bench/sim-edge-speed.ts [count] [concurrency] [--runs R] [--vs DIR] [--thread worker|main] [--analytics]
 *
 * `--thread worker` (the default) runs the scenarios in a worker thread with the young generation `refract sim`
 * gives its worker (src/cli/sim-thread.ts: 64 MB semi-spaces), so the figure is what users get; `--thread main`
 * runs them on the main thread with Node's default heap (the setup of the first three rounds in docs/benchmarks.md).
 * `--analytics` also builds the report's analytics table, as `refract sim` asks (`RunOptions.analytics`): the engine
 * then builds a `connect` event per connection too, and every event is folded into the per-minute rollup.
 *
 * `--runs R` runs the timed scenario R times in this process and prints each and the median. `--vs DIR` measures
 * against another checkout (say `git worktree add /tmp/base <commit>` with a node_modules symlink): R rounds, each
 * a fresh process of this bench on this checkout's runner and one on DIR's (`--runner DIR`), alternating which goes
 * first, then the medians of both and their ratio. The figures: wall lifecycles/s, and per CPU second of the process
 * (user + system, `process.cpuUsage`), which moves less when other work shares the machine. Node flags given to this
 * process (`node --max-semi-space-size=64 --import tsx bench/sim-edge-speed.ts … --vs DIR`) are passed to both sides.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ScenarioFile } from '../src/scenario/types.ts';
import type { runScenario as RunScenario } from '../src/scenario/runner.ts';
import { isMainThread, workerData } from 'node:worker_threads';
import { startWorker } from '../src/net/node/worker.ts';
import { SIM_YOUNG_GENERATION_MB } from '../src/cli/sim-thread.ts';

const args = isMainThread ? process.argv.slice(2) : [...(workerData as { args: string[] }).args];
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const runs = Number(flag('--runs') ?? 1);
const vs = flag('--vs');
const runnerDir = flag('--runner');
const thread = flag('--thread') ?? 'worker';
const analyticsAt = args.indexOf('--analytics');
const analytics = analyticsAt >= 0;
if (analytics) args.splice(analyticsAt, 1);
if (thread !== 'worker' && thread !== 'main') throw new Error(`--thread takes worker or main, got ${thread}`);
const count = Number(args[0] ?? 10_000);
const concurrency = Number(args[1] ?? 1_000);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

if (vs !== undefined) {
  // A/B: fresh processes, alternating order; each prints one JSON line last.
  const self = fileURLToPath(import.meta.url);
  // Node's own flags given to this process (say --max-semi-space-size=64) go to both sides' processes too.
  const nodeFlags = process.execArgv.filter((a, i, all) => a !== '--import' && all[i - 1] !== '--import' && !a.startsWith('--import='));
  const here = resolve(fileURLToPath(new URL('../', import.meta.url)));
  const one = (dir: string): { wall: number; cpu: number; hash: string } => {
    const out = execFileSync(process.execPath, [...nodeFlags, '--import', 'tsx', self, String(count), String(concurrency), '--runner', dir, '--thread', thread, ...(analytics ? ['--analytics'] : [])], { cwd: here, encoding: 'utf8' });
    const last = out.trim().split('\n').at(-1)!;
    return JSON.parse(last) as { wall: number; cpu: number; hash: string };
  };
  const a: Array<{ wall: number; cpu: number; hash: string }> = [];
  const b: Array<{ wall: number; cpu: number; hash: string }> = [];
  for (let r = 0; r < runs; r++) {
    if (r % 2 === 0) {
      a.push(one(here));
      b.push(one(resolve(vs)));
    } else {
      b.push(one(resolve(vs)));
      a.push(one(here));
    }
    const fmt = (x: { wall: number; cpu: number }): string => `${Math.round(x.wall).toLocaleString('en')}/s wall, ${Math.round(x.cpu).toLocaleString('en')}/CPU-s`;
    console.log(`round ${r + 1}: this ${fmt(a.at(-1)!)} | ${vs} ${fmt(b.at(-1)!)}`);
  }
  const ma = { wall: median(a.map((x) => x.wall)), cpu: median(a.map((x) => x.cpu)) };
  const mb = { wall: median(b.map((x) => x.wall)), cpu: median(b.map((x) => x.cpu)) };
  console.log(
    `median of ${runs}: this ${Math.round(ma.wall).toLocaleString('en')}/s wall, ${Math.round(ma.cpu).toLocaleString('en')}/CPU-s; ` +
      `${vs} ${Math.round(mb.wall).toLocaleString('en')}/s wall, ${Math.round(mb.cpu).toLocaleString('en')}/CPU-s; ` +
      `ratio ×${(ma.wall / mb.wall).toFixed(2)} wall, ×${(ma.cpu / mb.cpu).toFixed(2)} CPU; trace hashes ${a.every((x, i) => x.hash === b[i]!.hash) ? 'identical' : 'DIFFER'} (${thread} thread${analytics ? ', analytics' : ''})`,
  );
  process.exit(0);
}

if (thread === 'worker' && isMainThread) {
  // The measurement runs in a worker with refract sim's young generation; its console output comes through ours.
  const w = startWorker(new URL(import.meta.url), { args: process.argv.slice(2) }, { maxYoungGenerationSizeMb: SIM_YOUNG_GENERATION_MB });
  const code = await new Promise<number>((resolve, reject) => {
    w.on('error', reject);
    w.on('exit', resolve);
  });
  process.exit(code);
}

const runnerUrl = runnerDir === undefined ? '../src/scenario/runner.ts' : new URL('src/scenario/runner.ts', `file://${resolve(runnerDir)}/`).href;
const { runScenario } = (await import(runnerUrl)) as { runScenario: typeof RunScenario };

function scenarioOf(n: number): ScenarioFile {
  // `load` spaces connections `every_ms` apart; a lifecycle takes ~4 virtual ms (two 0.5 ms links: the client's
  // handshake, the dial, 10 KB each way, the FINs), so this keeps ~concurrency open, as bench/sim-engine-speed.ts does.
  const every = 4 / concurrency;
  return {
    name: 'edge speed',
    seed: 1,
    topology: {
      edges: [{ name: 'edge', addresses: ['198.51.100.1'] }],
      clients: [{ name: 'c', addresses: ['203.0.113.10'] }],
      origins: [{ name: 'o', addresses: ['192.0.2.10'], listeners: [{ listen: 'tcp://192.0.2.10:7000', behaviour: 'echo', parse_proxy: false }] }],
      links: [{ between: ['c', 'edge'], latency_ms: 0.5 }, { between: ['edge', 'o'], latency_ms: 0.5 }],
    },
    apps: [{ id: 'echo', protocol: 'tcp/7000', dns: { name: 'echo.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] }],
    timeline: [{ at: 0, load: { id_prefix: 'c-', client: 'c', to: '198.51.100.1:7000', count: n, every_ms: every, bytes: 10_240, echo_bytes_expected: true } }],
    expect: { statuses: { '200': n } },
  } as unknown as ScenarioFile;
}

await runScenario(scenarioOf(Math.min(5_000, Math.floor(count / 4))), { analytics });
const walls: number[] = [];
const cpus: number[] = [];
let hash = '';
for (let i = 0; i < runs; i++) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await runScenario(scenarioOf(count), { analytics });
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(cpu0);
  const cpu = (c.user + c.system) / 1e6;
  if (r.failures.length > 0) throw new Error(`failures: ${JSON.stringify(r.failures.slice(0, 3))}`);
  hash = r.traceHash;
  walls.push(count / wall);
  cpus.push(count / cpu);
  console.log(
    `${count.toLocaleString('en')} lifecycles through the scenario runner (connect, 10 KB each way, close; trace hashed, report built), ~${concurrency} concurrent: ` +
      `${wall.toFixed(2)} s wall / ${cpu.toFixed(2)} s CPU = ${Math.round(count / wall).toLocaleString('en')} lifecycles/s (${Math.round(count / cpu).toLocaleString('en')} per CPU second); ` +
      `${r.steps.toLocaleString('en')} sim steps; ${r.traceLines.toLocaleString('en')} trace lines, sha256 ${r.traceHash.slice(0, 16)}…; virtual ${(r.virtualMs / 1000).toFixed(3)} s`,
  );
}
if (runs > 1) console.log(`median of ${runs}: ${Math.round(median(walls)).toLocaleString('en')} lifecycles/s wall, ${Math.round(median(cpus)).toLocaleString('en')} per CPU second`);
if (runnerDir !== undefined) console.log(JSON.stringify({ wall: median(walls), cpu: median(cpus), hash }));
