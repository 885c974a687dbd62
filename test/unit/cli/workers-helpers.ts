/**
 * Helpers of the `serve --workers` tests (workers.test.ts, workers-api.test.ts): which processes hold a socket
 * (`ss -p`), whether a port refuses, the JSON log lines of a run's stderr, a `serve` started and waited for.
 */
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import { startCli, until, type Proc } from '../api/processes.ts';

const HOST = '127.0.0.1';

/** PIDs of the processes holding a socket with local port `port` in `state` (ss -p). */
export function holders(port: number, state: 'listening' | 'established'): Set<number> {
  const out = execFileSync('ss', ['-tnpH', 'state', state, `( sport = :${port} )`], { encoding: 'utf8' });
  return new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}

/** Whether a connection to `port` is refused. */
export function refused(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect({ host: HOST, port });
    s.once('connect', () => {
      s.destroy();
      res(false);
    });
    s.once('error', () => res(true));
  });
}

/** The JSON log lines of stderr with this event. */
export function logged(p: Proc, event: string): Array<Record<string, unknown>> {
  return p.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((o) => o['event'] === event);
}

/** `refract ARGS` (a `serve --workers …`) started, once it says it is serving (60 s at most; its exit before fails). */
export async function startServing(args: readonly string[]): Promise<Proc> {
  const p = startCli(args);
  let exited: number | string | undefined;
  void p.done.then((c) => (exited = c));
  await until('the workers serving', 60_000, () => {
    if (exited !== undefined) throw new Error(`serve exited ${exited}\n${p.stderr}`);
    return p.stderr.includes('refract: serving') ? true : undefined;
  });
  return p;
}
