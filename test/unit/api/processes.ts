/**
 * Helpers for the API tests that run the real CLI as child processes (`refract serve` with an `api:` section,
 * `refract token …`), and for finding free loopback port ranges. Every wait is bounded; every child started here
 * is killed by `killAll` (call it in `after`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { ZONE } from './harness.ts';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'src', 'cli.ts');
const HOST = '127.0.0.1';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 20 ms until it returns a value; throws naming `what` after `withinMs`. */
export async function until<T>(what: string, withinMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Whether `port` on 127.0.0.1 can be bound now for `protocol` (bound and released at once). */
function canBind(protocol: 'tcp' | 'udp', port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (protocol === 'tcp') {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ port, host: HOST, exclusive: true }, () => s.close(() => resolve(true)));
    } else {
      const s = dgram.createSocket('udp4');
      s.once('error', () => {
        s.close();
        resolve(false);
      });
      s.bind({ port, address: HOST, exclusive: true }, () => s.close(() => resolve(true)));
    }
  });
}

/**
 * The lower end of the kernel's ephemeral port range (Linux: /proc/sys/net/ipv4/ip_local_port_range), else 32768.
 * Ranges are looked for below it: inside it, every local port of a client connection in TIME_WAIT (thousands after
 * the soak tests, and Linux hands even ports to connect()) refuses a listener, so 4 consecutive free ports can be
 * missing for a minute.
 */
function ephemeralLow(): number {
  try {
    const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(lo) && lo > 12_000 ? lo : 32_768;
  } catch {
    return 32_768;
  }
}
const RANGE_LOW = 10_000;
const RANGE_HIGH = ephemeralLow();

/**
 * The first port of `size` consecutive ports that are free on 127.0.0.1 now, for TCP and (with `udp`) UDP too,
 * probed (bound and released) at random starts between 10000 and the ephemeral range. At most 50 tries.
 */
export async function freeRange(size: number, opts: { udp?: boolean } = {}): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const start = RANGE_LOW + Math.floor(Math.random() * (RANGE_HIGH - RANGE_LOW - size));
    if (start + size - 1 > 65_535) continue;
    let ok = true;
    for (let p = start; p < start + size && ok; p++) {
      ok = (await canBind('tcp', p)) && (opts.udp !== true || (await canBind('udp', p)));
    }
    if (ok) return start;
  }
  throw new Error(`no ${size} consecutive free ports found`);
}

/**
 * `n` ranges of `size` free ports (as `freeRange`), pairwise disjoint and disjoint from `avoid` (found one after
 * another: ranges found in parallel could coincide, a port being released by one probe and handed to the next).
 */
export async function freeRanges(n: number, size: number, opts: { udp?: boolean; avoid?: Set<number> } = {}): Promise<number[]> {
  const taken = opts.avoid ?? new Set<number>();
  const out: number[] = [];
  for (let attempt = 0; out.length < n && attempt < n * 20; attempt++) {
    const start = await freeRange(size, opts);
    const ports = Array.from({ length: size }, (_, i) => start + i);
    if (ports.some((p) => taken.has(p))) continue;
    for (const p of ports) taken.add(p);
    out.push(start);
  }
  if (out.length < n) throw new Error(`found only ${out.length} of ${n} disjoint free ranges`);
  return out;
}

/** A child process whose output is collected. */
export interface Proc {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code, or the signal's name. */
  readonly done: Promise<number | string>;
}

const live = new Set<ChildProcess>();

/**
 * Starts `node --import tsx src/cli.ts ARGS` in the repository root; with `prefix`, through that command (such as
 * test/helpers/netns.ts's `nsenter …`, to run it inside a network namespace).
 */
export function startCli(args: readonly string[], opts: { prefix?: readonly string[] } = {}): Proc {
  const argv = [process.execPath, '--import', 'tsx', CLI, ...args];
  const [cmd, ...rest] = [...(opts.prefix ?? []), ...argv] as [string, ...string[]];
  const child = spawn(cmd, rest, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const p: Proc = {
    child,
    stdout: '',
    stderr: '',
    done: new Promise((resolve) =>
      child.on('close', (code, signal) => {
        live.delete(child);
        resolve(code ?? signal ?? 'unknown');
      }),
    ),
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (p.stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (p.stderr += s));
  return p;
}

/** Runs `refract ARGS` to its end (SIGKILLed and failed after `withinMs`). */
export async function runCli(args: readonly string[], withinMs = 30_000): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = startCli(args);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), withinMs);
  const code = await p.done;
  clearTimeout(timer);
  if (code === 'SIGKILL') throw new Error(`refract ${args.join(' ')} did not finish within ${withinMs} ms\n${p.stderr}`);
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** SIGKILLs every child still running (for `after`). */
export function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
}

/** A config file for `serve` with the API on `apiPort`, one zone (harness ZONE), the data directory `data/`. */
export function writeApiConfig(dir: string, apiPort: number, extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'refract.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      node: { id: 'api-test', data_dir: 'data' },
      edge: { addresses: [HOST], drain_timeout_ms: 200 },
      log: { level: 'warn' },
      api: { listen: `${HOST}:${apiPort}`, rate_limit: { requests: 1_000_000, window_sec: 60 } },
      zones: [ZONE],
      ...extra,
    }),
  );
  return file;
}

/** `refract token create --config FILE ARGS`: the token (the last stdout line). Fails the test on a non-zero exit. */
export async function createTokenCli(file: string, args: readonly string[]): Promise<string> {
  const r = await runCli(['token', 'create', '--config', file, ...args]);
  if (r.code !== 0) throw new Error(`token create exited ${r.code}: ${r.stderr}`);
  return r.stdout.trimEnd().split('\n').at(-1)!;
}

/** A running `refract serve`; `kill` sends a signal and waits for the exit. */
export interface Served extends Proc {
  readonly base: string;
  kill(signal: NodeJS.Signals): Promise<number | string>;
}

/** Starts `refract serve --config FILE` and waits (up to 30 s) until the API answers on `apiPort`. */
export async function startServe(file: string, apiPort: number): Promise<Served> {
  const p = startCli(['serve', '--config', file, '--no-watch', '--access-log', 'off']);
  let exited: number | string | undefined;
  void p.done.then((c) => (exited = c));
  const base = `http://${HOST}:${apiPort}/client/v4`;
  await until(`refract serve to answer on ${apiPort}`, 30_000, async () => {
    if (exited !== undefined) throw new Error(`refract serve exited (${exited}) before the API answered\n${p.stderr}`);
    if (!p.stderr.includes('management API on')) return undefined;
    try {
      const r = await fetch(`${base}/user/tokens/verify`, { signal: AbortSignal.timeout(2000) });
      await r.arrayBuffer();
      return true;
    } catch {
      return undefined;
    }
  });
  return {
    ...p,
    get stdout() {
      return p.stdout;
    },
    get stderr() {
      return p.stderr;
    },
    base,
    async kill(signal) {
      if (exited === undefined) p.child.kill(signal);
      return p.done;
    },
  };
}

/** A JSON request to the API with a bearer token; `json` is undefined when the body is empty. */
export async function apiCall(base: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
}

/** The echo of `text` through host:port, or undefined when it refuses or no echo comes within 2 s. */
export function echoThrough(host: string, port: number, text: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let rx = '';
    const done = (v: string | undefined): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), 2_000);
    s.on('error', () => done(undefined));
    s.setEncoding('utf8').on('data', (d: string) => {
      rx += d;
      if (rx.length >= text.length) done(rx);
    });
    s.on('connect', () => s.write(text));
  });
}
