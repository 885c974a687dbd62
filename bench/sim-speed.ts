// Micro-benchmark of the simulator (not a test). Run: node --import tsx bench/sim-speed.ts [lifecycles] [idleConns]
//
// 1. Lifecycles: 1,000 concurrent clients against an echo server; each connects, sends 10 KB, reads the 10 KB echo,
//    ends, and is replaced by a new client when it closes. Reports connection lifecycles per wall-clock second.
//    Target: >= 20,000/s.
// 2. Idle: 10,000 established connections held for one virtual hour, each with a server-side 400 s idle timer.
//    Reports virtual seconds per wall second (time compression). Target: >= 1,000x. A second run adds a 64-byte
//    heartbeat every 30 s per connection (echoed, re-arming the idle timer) to show the cost of steady traffic.
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
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = sim.runUntilIdle({ maxSteps: 1e9 });
  const wall = (performance.now() - t0) / 1_000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  if (done !== total || bytes !== total * TEN_KB.length || !r.idle) throw new Error(`incomplete: ${done}/${total}`);
  console.log(
    `lifecycles: ${total} (connect, 10 KB each way, close) with ${concurrency} concurrent in ${wall.toFixed(2)} s wall / ${cpuSec.toFixed(2)} s CPU = ${Math.round(total / wall).toLocaleString('en')} lifecycles/s; ` +
      `${r.steps.toLocaleString('en')} scheduler steps (${Math.round(r.steps / wall).toLocaleString('en')}/s); virtual time ${(sim.clock.now() / 1_000).toFixed(2)} s`,
  );
}

/**
 * 10,000 established connections held for one virtual hour. The server side keeps a 400 s idle timer per
 * connection (re-armed on every read, and on expiry, as a keepalive sweep would). With `heartbeatMs` > 0 each client
 * also sends a 64-byte heartbeat at that period, which the server echoes.
 */
async function idle(conns: number, virtualSeconds: number, heartbeatMs: number): Promise<void> {
  const sim = createSim({ seed: 2 });
  const server = sim.host('server', { addresses: ['10.0.0.2'] });
  const client = sim.host('client', { addresses: ['10.0.1.1'] });
  let expiries = 0;
  await server.listenTcp({ host: '0.0.0.0', port: 7 }, (c) => {
    const expire = (): void => {
      expiries++;
      cancel = server.clock.setTimer(400_000, expire);
    };
    let cancel: Cancel = server.clock.setTimer(400_000, expire);
    c.setHandlers({
      data: (d) => {
        cancel();
        cancel = server.clock.setTimer(400_000, expire);
        c.write(d);
      },
    });
  });
  const open: Conn[] = [];
  for (let i = 0; i < conns; i++) {
    const c = client.connectTcp({ host: '10.0.0.2', port: 7 });
    c.setHandlers({ data: () => {} });
    open.push(c);
    if (heartbeatMs > 0) {
      const beat = (): void => {
        c.write(HEARTBEAT);
        client.clock.setTimer(heartbeatMs, beat);
      };
      client.clock.setTimer(1 + (i * heartbeatMs) / conns, beat); // spread over the period
    }
  }
  sim.clock.advanceBy(100); // handshakes
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const steps = sim.clock.advanceBy(virtualSeconds * 1_000).steps;
  const wall = (performance.now() - t0) / 1_000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  if (sim.netstat().tcp.length !== 2 * conns) throw new Error('connections did not stay up');
  const what = heartbeatMs > 0 ? `${heartbeatMs / 1_000} s heartbeats` : `no traffic, ${expiries.toLocaleString('en')} idle-timer expiries`;
  console.log(
    `idle: ${conns.toLocaleString('en')} connections, ${virtualSeconds} virtual s (${what}) in ${wall.toFixed(3)} s wall / ${cpuSec.toFixed(3)} s CPU = ` +
      `${Math.round(virtualSeconds / wall).toLocaleString('en')}x time compression; ${steps.toLocaleString('en')} steps; heap ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB`,
  );
}

const total = Number(process.argv[2] ?? 100_000);
const idleConns = Number(process.argv[3] ?? 10_000);
await lifecycles(Math.min(10_000, total), 1_000); // warm-up
await lifecycles(total, 1_000);
await idle(idleConns, 3_600, 0);
await idle(idleConns, 3_600, 30_000);
