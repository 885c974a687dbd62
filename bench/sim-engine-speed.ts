/**
 * Simulated lifecycles per wall second through Refract's engine with no runner in between: an EdgeNode on a sim
 * host, clients dialling it (connect, 10 KB up, 10 KB echoed back, close), `concurrency` open at a time, nobody
 * subscribed to events or the trace (as in production without --trace). A first, untimed round of `count / 4`
 * lifecycles (at most 5,000) warms the JIT up, as in bench/sim-speed.ts. Run:
 *   node --import tsx bench/sim-engine-speed.ts [count] [concurrency]
 */
import { pino } from 'pino';
import { createSim } from '../src/net/sim/index.ts';
import { EdgeNode } from '../src/edge/edge-node.ts';
import { serveOrigin } from '../src/edge/builtin-origins.ts';
import { validateConfig } from '../src/model/config.ts';

const count = Number(process.argv[2] ?? 20_000);
const concurrency = Number(process.argv[3] ?? 1_000);
const sim = createSim({ seed: 1 });
const edgeH = sim.host('edge', { addresses: ['198.51.100.1'] });
const originH = sim.host('origin', { addresses: ['192.0.2.10'] });
const clientH = sim.host('client', { addresses: ['203.0.113.10'] });
await originH.listenTcp({ host: '192.0.2.10', port: 7000 }, (c) => serveOrigin(c, { behaviour: 'echo' }));
const cfg = validateConfig({ edge: { addresses: ['198.51.100.1'] }, apps: [{ protocol: 'tcp/7000', dns: { name: 'e.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] }] });
if (!cfg.ok) throw new Error('config');
const edge = new EdgeNode({ net: edgeH, log: pino({ level: 'silent' }) }, cfg.config);
const applied = edge.apply(cfg.config);
await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
await applied;

const payload = new Uint8Array(10_240);

/** Runs `total` lifecycles, `concurrency` at a time; returns how many completed and the bytes echoed back. */
async function round(total: number): Promise<{ done: number; bytesBack: number; steps: number }> {
  let started = 0;
  let done = 0;
  let bytesBack = 0;
  const launch = (): void => {
    if (started >= total) return;
    started++;
    const c = clientH.connectTcp({ host: '198.51.100.1', port: 7000 });
    let got = 0;
    // Methods rather than arrow properties: under tsx each named arrow costs an Object.defineProperty (`__name`).
    c.setHandlers({
      connect() {
        c.write(payload);
        c.end();
      },
      data(d) {
        got += d.length;
      },
      end() {},
      close() {
        done++;
        bytesBack += got;
        launch();
      },
    });
  };
  for (let i = 0; i < concurrency; i++) launch();
  const r = await sim.runUntilIdleAsync({ maxSteps: 100_000_000 });
  return { done, bytesBack, steps: r.steps };
}

await round(Math.min(5_000, Math.floor(count / 4)));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const { done, bytesBack, steps } = await round(count);
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
console.log(
  `${done.toLocaleString('en')} lifecycles through the EdgeNode in the simulator (connect, 10 KB each way, close), ${concurrency} concurrent: ` +
    `${wall.toFixed(2)} s wall / ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU = ${Math.round(done / wall).toLocaleString('en')} lifecycles/s; ` +
    `${steps.toLocaleString('en')} steps; echoed ${bytesBack === done * 10_240 ? 'all' : 'NOT all'} bytes; open after: ${edge.tcp.activeCount}`,
);
