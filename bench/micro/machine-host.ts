/**
 * Micro-benchmark: cost of one connection lifecycle through the tcpConnection machine: the memoised executor (without
 * and with an `onTransition` hook) and a root actor per connection.
 * Run: node --import tsx bench/micro/machine-host.ts [N]
 */
import { createActor } from 'xstate';
import { MachineHost, type HostedInstance } from '../../src/machines/host.ts';
import { tcpConnectionMachine, type TcpConnEvent } from '../../src/machines/tcp-connection.machine.ts';
import type { Cancel } from '../../src/net/ports.ts';

const N = Number(process.argv[2] ?? 100_000);
const names = Object.keys(tcpConnectionMachine.implementations.actions);
const noopCancel: Cancel = () => {};
const clock = { now: () => 0, epochMs: () => 0, setTimer: (): Cancel => noopCancel };
const life: TcpConnEvent[] = [{ type: 'CONN.ROUTED' }, { type: 'ORIGIN.RESOLVED' }, { type: 'UPSTREAM.CONNECTED' }, { type: 'SPLICE.C2S_END' }, { type: 'SPLICE.S2C_END' }, { type: 'SPLICE.CLOSED' }];

interface Rec extends HostedInstance<Rec, TcpConnEvent> { n: number }
const opts = {
  clock,
  impl: Object.fromEntries(names.map((n) => [n, (r: Rec) => void r.n++])),
  delayMs: () => 15_000,
};
const plainHost = new MachineHost<Rec, TcpConnEvent>(tcpConnectionMachine, opts);
const hookedHost = new MachineHost<Rec, TcpConnEvent>(tcpConnectionMachine, { ...opts, onTransition: (r) => void r.n++ });
function runHost(host: MachineHost<Rec, TcpConnEvent>): number {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const r = host.start({ n: 0 } as Rec);
    for (const e of life) host.send(r, e);
  }
  return ((performance.now() - t0) * 1000) / N;
}
function runActor(): number {
  const m = tcpConnectionMachine.provide({ actions: Object.fromEntries(names.map((n) => [n, () => {}])) });
  const xclock = { setTimeout: () => 0, clearTimeout: () => {} };
  const n = Math.min(N, 20_000);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const a = createActor(m, { clock: xclock }).start();
    for (const e of life) a.send(e);
    a.stop();
  }
  return ((performance.now() - t0) * 1000) / n;
}
runHost(plainHost);
runHost(hookedHost);
runActor();
console.log(`memoised executor:                ${runHost(plainHost).toFixed(2)} µs per lifecycle (6 events)`);
console.log(`memoised executor + onTransition: ${runHost(hookedHost).toFixed(2)} µs per lifecycle (6 events, 7 calls)`);
console.log(`createActor:                      ${runActor().toFixed(2)} µs per lifecycle (6 events)`);
