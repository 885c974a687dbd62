/**
 * Simulated connection lifecycles per wall second THROUGH Refract's engine (EdgeNode on the simulator): clients
 * connect, send 10 KB, the origin echoes 10 KB, both close; `concurrency` at a time. Run:
 *   node --import tsx bench/sim-edge-speed.ts [count] [concurrency]
 */
import { runScenario } from '../src/scenario/runner.ts';
import type { ScenarioFile } from '../src/scenario/types.ts';

const count = Number(process.argv[2] ?? 10_000);
const concurrency = Number(process.argv[3] ?? 1_000);
// `load` spaces connections `every_ms` apart; with ~2 ms lifecycles (1 ms links) this keeps ~concurrency open.
const every = 2 / concurrency;
const scenario = {
  name: 'edge speed',
  seed: 1,
  topology: {
    edges: [{ name: 'edge', addresses: ['198.51.100.1'] }],
    clients: [{ name: 'c', addresses: ['203.0.113.10'] }],
    origins: [{ name: 'o', addresses: ['192.0.2.10'], listeners: [{ listen: 'tcp://192.0.2.10:7000', behaviour: 'echo', parse_proxy: false }] }],
    links: [{ between: ['c', 'edge'], latency_ms: 0.5 }, { between: ['edge', 'o'], latency_ms: 0.5 }],
  },
  apps: [{ id: 'echo', protocol: 'tcp/7000', dns: { name: 'echo.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] }],
  timeline: [{ at: 0, load: { id_prefix: 'c-', client: 'c', to: '198.51.100.1:7000', count, every_ms: every, bytes: 10_240, echo_bytes_expected: true } }],
  expect: { statuses: { '200': count } },
} as unknown as ScenarioFile;

const t0 = performance.now();
const r = await runScenario(scenario);
const wall = (performance.now() - t0) / 1000;
console.log(
  `${count} lifecycles through the EdgeNode (connect, 10 KB each way, close), ~${concurrency} concurrent: ` +
    `${wall.toFixed(2)} s wall = ${Math.round(count / wall).toLocaleString('en')} lifecycles/s; ` +
    `${r.steps.toLocaleString('en')} sim steps (${Math.round(r.steps / wall).toLocaleString('en')}/s); virtual ${(r.virtualMs / 1000).toFixed(2)} s; ` +
    `failures: ${r.failures.length}`,
);
