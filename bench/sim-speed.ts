// Micro-benchmark of the simulator (not a test). Run: node --import tsx bench/sim-speed.ts [lifecycles] [idleConns]
//
// 1. Lifecycles: 1,000 concurrent clients against an echo server; each connects, sends 10 KB, reads the 10 KB echo,
//    ends, and is replaced by a new client when it closes. Reports connection lifecycles per wall-clock second.
//    Target: >= 20,000/s.
// 2. Idle: 10,000 established connections kept alive for one virtual hour. Each client sends a 64-byte heartbeat
//    every 30 s (echoed) and the server re-arms a 400 s idle timer per connection on every read, as the proxy does.
//    Reports virtual seconds per wall second (time compression). Target: >= 1,000x.
import { performance } from 'node:perf_hooks';
import { type Cancel, type Conn } from '../src/net/ports.ts';
import { createSim } from '../src/net/sim/index.ts';

const TEN_KB = new Uint8Array(10_240).fill(7);
const HEARTBEAT = new Uint8Array(64).fill(1);

async function lifecycles(total: number, concurrency: number): Promise<void> {
  const sim = createSim({ seed: 1 });
  const server = sim.host('server', { addresses: ['10.0.0.2'] });
  const clients = Array.from({ length: 4 }, (_, i) => sim.host(`client${i}`, { addresses: [`10.0.1.${i + 1}`] }));
  await server.listenTcp({ host: '0.0.0.0', port: 7 }, (c) => c.setHandlers({ data: (d) => c.write(d), end: () => c.end() }));
  let started = 0;
  let done = 0;
  let bytes = 0;
  const start = (): void => {
    const host = clients[started++ % clients.length]!;
    const c = host.connectTcp({ host: '10.0.0.2', port: 7 });
    let got = 0;
    c.setHandlers({
      connect: () => c.write(TEN_KB),
      data: (d) => {
        got += d.length;
        if (got === TEN_KB.length) c.end();
      },
      close: (hadError) => {
        if (hadError) throw new Error('unexpected error');
        done++;
        bytes += got;
        if (started < total) start();
      },
    });
  };
  for (let i = 0; i < concurrency; i++) start();
  const t0 = performance.now();
  const r = sim.runUntilIdle({ maxSteps: 1e9 });
  const wall = (performance.now() - t0) / 1_000;
  if (done !== total || bytes !== total * TEN_KB.length || !r.idle) throw new Error(`incomplete: ${done}/${total}`);
  console.log(
    `lifecycles: ${total} (connect, 10 KB each way, close) with ${concurrency} concurrent in ${wall.toFixed(2)} s wall = ${Math.round(total / wall).toLocaleString('en')} lifecycles/s; ` +
      `${r.steps.toLocaleString('en')} scheduler steps (${Math.round(r.steps / wall).toLocaleString('en')}/s); virtual time ${(sim.clock.now() / 1_000).toFixed(2)} s`,
  );
}

async function idle(conns: number, virtualSeconds: number): Promise<void> {
  const sim = createSim({ seed: 2 });
  const server = sim.host('server', { addresses: ['10.0.0.2'] });
  const client = sim.host('client', { addresses: ['10.0.1.1'] });
  let idleTimeouts = 0;
  await server.listenTcp({ host: '0.0.0.0', port: 7 }, (c) => {
    let cancel: Cancel = server.clock.setTimer(400_000, () => idleTimeouts++);
    c.setHandlers({
      data: (d) => {
        cancel();
        cancel = server.clock.setTimer(400_000, () => idleTimeouts++);
        c.write(d);
      },
    });
  });
  const open: Conn[] = [];
  for (let i = 0; i < conns; i++) {
    const c = client.connectTcp({ host: '10.0.0.2', port: 7 });
    c.setHandlers({ data: () => {} });
    open.push(c);
    // Heartbeats spread over the 30 s period so they do not all land on the same instant.
    const beat = (): void => {
      c.write(HEARTBEAT);
      client.clock.setTimer(30_000, beat);
    };
    client.clock.setTimer(1 + ((i * 30_000) / conns), beat);
  }
  sim.clock.advanceBy(100); // handshakes
  const t0 = performance.now();
  const steps = sim.clock.advanceBy(virtualSeconds * 1_000).steps;
  const wall = (performance.now() - t0) / 1_000;
  if (idleTimeouts !== 0 || sim.netstat().tcp.length !== 2 * conns) throw new Error('connections did not stay up');
  console.log(
    `idle: ${conns.toLocaleString('en')} connections, ${virtualSeconds} virtual s with 30 s heartbeats in ${wall.toFixed(2)} s wall = ` +
      `${Math.round(virtualSeconds / wall).toLocaleString('en')}x time compression; ${steps.toLocaleString('en')} steps; ` +
      `heap ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB`,
  );
}

const total = Number(process.argv[2] ?? 100_000);
const idleConns = Number(process.argv[3] ?? 10_000);
await lifecycles(Math.min(10_000, total), 1_000); // warm-up
await lifecycles(total, 1_000);
await idle(idleConns, 3_600);
