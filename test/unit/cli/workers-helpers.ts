/**
 * Helpers of the `serve --workers` tests (workers.test.ts, workers-api.test.ts): which processes hold a socket
 * (`ss -p`), whether a port refuses, the JSON log lines of a run's stderr.
 */
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import type { Proc } from '../api/processes.ts';

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
