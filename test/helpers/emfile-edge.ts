/**
 * Child process for test/unit/net/descriptors.test.ts: an EdgeNode on real loopback sockets, run under a low
 * `ulimit -n` by the test. Argument: a JSON object { originPort, edgePort, guard: 'on' | 'off' } ('off': the guard's limit is
 * set far above the real one, so it never refuses: what libuv and the origin side do on their own).
 * Prints one JSON line { port } when listening. Commands on stdin: "fill N" opens /dev/null until EMFILE, then closes
 * N of those (N descriptors left free), answering { free: N }; "stats" prints { stats, events, logs } and exits.
 */
import { createInterface } from 'node:readline';
import { closeSync, openSync } from 'node:fs';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { EdgeNode } from '../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../src/net/node/network.ts';
import { DescriptorGuard } from '../../src/net/node/descriptors.ts';
import { validateConfig } from '../../src/model/config.ts';
import type { SpectrumEvent } from '../../src/streams/events.ts';
import { EdgeMetrics } from '../../src/api/metrics.ts';
import { startMetricsServer } from '../../src/cli/metrics-server.ts';

const arg = JSON.parse(process.argv[2] ?? '{}') as { originPort: number; edgePort: number; guard: 'on' | 'off'; metrics?: boolean };
const logs: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
    cb();
  },
});
const log = pino({ level: 'info' }, sink);
const guard = new DescriptorGuard({
  ...(arg.guard === 'off' ? { limit: 1_000_000 } : {}),
  log: log.child({ component: 'descriptors' }),
  now: () => performance.now(),
  setTimer: (ms, fn) => {
    setTimeout(fn, ms);
  },
});
const net = createNodeNetwork({ descriptors: guard });
const r = validateConfig({
  edge: { addresses: ['127.0.0.1'], connect_timeout_ms: 2_000 },
  apps: [{ id: 'a', dns: { type: 'CNAME', name: 'a.example.test' }, protocol: `tcp/${arg.edgePort}`, origin_direct: [`tcp://127.0.0.1:${arg.originPort}`] }],
});
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const edge = new EdgeNode({ net, log }, r.config);
const events: SpectrumEvent[] = [];
edge.events.events$.subscribe((e) => events.push(e));
await edge.apply(r.config);
let metricsPort: number | undefined;
if (arg.metrics === true) {
  const metrics = new EdgeMetrics(edge, { defaultMetrics: false });
  metrics.registerDescriptors(() => guard.stats());
  metricsPort = (await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 })).address.port;
}
process.stdout.write(JSON.stringify({ port: edge.listeners()[0]!.port, ...(metricsPort === undefined ? {} : { metricsPort }) }) + '\n');
const filler: number[] = [];
for await (const line of createInterface({ input: process.stdin })) {
  const fill = /^fill (\d+)$/.exec(line.trim());
  if (fill) {
    for (;;) {
      try {
        filler.push(openSync('/dev/null', 'r'));
      } catch {
        break;
      }
    }
    for (let i = 0; i < Number(fill[1]); i++) closeSync(filler.pop()!);
    process.stdout.write(JSON.stringify({ free: Number(fill[1]) }) + '\n');
  }
  if (line.trim() === 'stats') {
    const closing = events.filter((e) => e.Event !== 'connect');
    process.stdout.write(
      JSON.stringify({
        stats: guard.stats(),
        connects: events.length - closing.length,
        closing: closing.map((e) => ({ status: e.Status, code: e.ErrorCode })),
        logs: logs.filter((l) => typeof l['event'] === 'string' && String(l['event']).startsWith('descriptors.')),
        originFailLogs: logs.filter((l) => l['msg'] === 'origin connect failed').length,
      }) + '\n',
    );
    process.exit(0);
  }
}
