// Shared helpers for the simulator tests (not a test file itself).
import assert from 'node:assert/strict';
import { type Conn, type NetError } from '../../../src/net/ports.ts';
import { createSim, type Sim, type SimHost, type SimOptions } from '../../../src/net/sim/index.ts';

export interface World {
  sim: Sim;
  client: SimHost;
  server: SimHost;
}

/** Two hosts, 'client' (10.0.0.1, fd00::1) and 'server' (10.0.0.2, fd00::2). */
export function world(opts: Partial<SimOptions> = {}): World {
  const sim = createSim({ seed: 1, ...opts });
  const client = sim.host('client', { addresses: ['10.0.0.1', 'fd00::1'] });
  const server = sim.host('server', { addresses: ['10.0.0.2', 'fd00::2'] });
  return { sim, client, server };
}

/** What happened on one Conn, in order: `connect`, `data`, `end`, `drain`, `error:CODE`, `close:BOOL`. */
export interface Recorder {
  events: string[];
  errors: NetError[];
  /** Virtual times of the events, same index as `events`. */
  times: number[];
  chunks: Uint8Array[];
  received(): Buffer;
}

/** Attaches handlers that record every callback (and assert nothing fires after close). */
export function record(conn: Conn, sim: Sim, extra: { onData?: (d: Uint8Array) => void; onEnd?: () => void; onConnect?: () => void; onDrain?: () => void } = {}): Recorder {
  const r: Recorder = {
    events: [],
    errors: [],
    times: [],
    chunks: [],
    received: () => Buffer.concat(r.chunks),
  };
  const push = (e: string): void => {
    assert.ok(!r.events.some((x) => x.startsWith('close')), `'${e}' fired after close`);
    r.events.push(e);
    r.times.push(sim.clock.now());
  };
  conn.setHandlers({
    connect: () => {
      push('connect');
      extra.onConnect?.();
    },
    data: (d) => {
      if (r.events.at(-1) !== 'data') push('data');
      r.chunks.push(d);
      extra.onData?.(d);
    },
    drain: () => {
      push('drain');
      extra.onDrain?.();
    },
    end: () => {
      push('end');
      extra.onEnd?.();
    },
    error: (e) => {
      push(`error:${e.code}`);
      r.errors.push(e);
    },
    close: (hadError) => push(`close:${hadError}`),
  });
  return r;
}

/** Listens on `host:port` and hands each accepted Conn to `onConn` (the accepted list is returned). */
export async function listen(h: SimHost, port: number, onConn: (c: Conn) => void = () => {}, host = '0.0.0.0'): Promise<Conn[]> {
  const accepted: Conn[] = [];
  await h.listenTcp({ host, port }, (c) => {
    accepted.push(c);
    onConn(c);
  });
  return accepted;
}

/** An echo server: writes back what it reads, ends when the client ends. */
export function echo(c: Conn): void {
  c.setHandlers({ data: (d) => c.write(d), end: () => c.end() });
}

/** Deterministic test bytes. */
export function bytes(n: number, salt = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + salt * 7 + (i >> 8)) & 0xff;
  return b;
}

/** Runs to quiescence (bounded) and asserts that it got there. */
export function settle(sim: Sim, maxSteps = 2_000_000): void {
  const r = sim.runUntilIdle({ maxSteps });
  assert.ok(r.idle, `simulation not idle after ${r.steps} steps`);
}

/** The leak check every connection test ends with: no sockets, no timers. Listeners are closed first by the caller. */
export function assertNoLeaks(sim: Sim): void {
  const ns = sim.netstat();
  assert.deepEqual(ns.tcp, [], 'TCP connections left');
  assert.deepEqual(ns.udp, [], 'UDP sockets left');
  assert.equal(sim.clock.pendingTimers(), 0, 'timers left');
}

/** Closes every listener of every host (to then check for leaks). */
export async function closeListeners(sim: Sim): Promise<void> {
  for (const h of sim.hosts()) for (const l of [...h.listeners.values()]) await l.close();
}
