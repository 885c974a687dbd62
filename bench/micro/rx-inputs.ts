/**
 * Micro-benchmark: what feeding the machines through RxJS costs, per connection.
 * Run: node --expose-gc --import tsx bench/micro/rx-inputs.ts [N]
 *
 * Three ways to deliver the same 7 lifecycle events (start + routed, TLS skipped ×2, resolved, connected, both FINs,
 * closed) to the real tcpConnection machine on the memoised executor, with no-op actions:
 * - direct: `host.send(rec, event)` (what the engine did before its inputs became streams);
 * - engine-wide streams (what the engine does): five `InputStream`s merged into one subscription, routed by record;
 * - a stream per connection (the alternative): a Subject per connection, merged and subscribed at accept.
 * For each: µs per lifecycle (best of 5 rounds), and heap retained per open connection (10,000 connections held
 * in `established`, after a full GC) above the direct way's.
 */
import { Subject, merge, type Subscription } from 'rxjs';
import { MachineHost, type HostedInstance } from '../../src/machines/host.ts';
import { tcpConnectionMachine, type TcpConnEvent } from '../../src/machines/tcp-connection.machine.ts';
import { InputStream, machineInputs } from '../../src/streams/machine-inputs.ts';
import type { Cancel } from '../../src/net/ports.ts';

const N = Number(process.argv[2] ?? 200_000);
const OPEN = 10_000;
const gc = (globalThis as { gc?: () => void }).gc;
const names = Object.keys(tcpConnectionMachine.implementations.actions);
const noopCancel: Cancel = () => {};
const clock = { now: () => 0, epochMs: () => 0, setTimer: (): Cancel => noopCancel };
const toEstablished: TcpConnEvent[] = [{ type: 'CONN.ROUTED' }, { type: 'TLS.SKIPPED' }, { type: 'ORIGIN.RESOLVED' }, { type: 'UPSTREAM.CONNECTED' }, { type: 'TLS.SKIPPED' }];
const toClosed: TcpConnEvent[] = [{ type: 'SPLICE.C2S_END' }, { type: 'SPLICE.S2C_END' }, { type: 'SPLICE.CLOSED' }];

interface Rec extends HostedInstance<Rec, TcpConnEvent> {
  n: number;
  sub?: Subscription;
  in$?: Subject<TcpConnEvent>;
}
const host = new MachineHost<Rec, TcpConnEvent>(tcpConnectionMachine, {
  clock,
  impl: Object.fromEntries(names.map((n) => [n, (r: Rec) => void r.n++])),
  delayMs: () => 15_000,
});
const newRec = (): Rec => ({ n: 0 }) as Rec;

// Engine-wide: five streams, one merged subscription for all connections.
const decisions$ = new InputStream<Rec, TcpConnEvent>();
const socket$ = new InputStream<Rec, TcpConnEvent>();
const tls$ = new InputStream<Rec, TcpConnEvent>();
const resolve$ = new InputStream<Rec, TcpConnEvent>();
const control$ = new InputStream<Rec, TcpConnEvent>();
machineInputs(decisions$, socket$, tls$, resolve$, control$).subscribe((i) => host.send(i.rec, i.event));
const streamOf: Record<string, InputStream<Rec, TcpConnEvent>> = {
  'CONN.ROUTED': decisions$,
  'TLS.SKIPPED': decisions$,
  'ORIGIN.RESOLVED': resolve$,
  'UPSTREAM.CONNECTED': socket$,
  'SPLICE.C2S_END': socket$,
  'SPLICE.S2C_END': socket$,
  'SPLICE.CLOSED': socket$,
};

type Way = { open(): Rec; send(r: Rec, e: TcpConnEvent): void; close(r: Rec): void };
const ways: Record<string, Way> = {
  direct: { open: () => host.start(newRec()), send: (r, e) => host.send(r, e), close: () => {} },
  'engine-wide streams': { open: () => host.start(newRec()), send: (r, e) => streamOf[e.type]!.signal(r, e), close: () => {} },
  'stream per connection': {
    open: () => {
      const r = newRec();
      const in$ = new Subject<TcpConnEvent>();
      const ctl$ = new Subject<TcpConnEvent>();
      r.in$ = in$;
      r.sub = merge(in$, ctl$).subscribe((e) => host.send(r, e));
      return host.start(r);
    },
    send: (r, e) => r.in$!.next(e),
    close: (r) => r.sub!.unsubscribe(),
  },
};

function lifecycle(w: Way): number {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const r = w.open();
      for (const e of toEstablished) w.send(r, e);
      for (const e of toClosed) w.send(r, e);
      w.close(r);
    }
    best = Math.min(best, ((performance.now() - t0) * 1000) / N);
  }
  return best;
}

function retained(w: Way): number {
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const held: Rec[] = [];
  for (let i = 0; i < OPEN; i++) {
    const r = w.open();
    for (const e of toEstablished) w.send(r, e);
    held.push(r);
  }
  gc?.();
  const bytes = (process.memoryUsage().heapUsed - before) / OPEN;
  for (const r of held) {
    for (const e of toClosed) w.send(r, e);
    w.close(r);
  }
  return bytes;
}

if (!gc) console.log('(run with --expose-gc for the memory column)');
for (const w of Object.values(ways)) lifecycle(w); // warm up
const base = retained(ways.direct!);
console.log('| feeding | µs per lifecycle (8 events) | heap per open connection above direct |');
console.log('|---|---|---|');
for (const [name, w] of Object.entries(ways)) {
  const us = lifecycle(w);
  const b = retained(w) - base;
  console.log(`| ${name} | ${us.toFixed(3)} | ${gc ? `${Math.round(b)} B` : 'n/a'} |`);
}
