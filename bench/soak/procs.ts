/**
 * The soak's process plumbing: `refract serve` as a child (started, waited for, signalled, stopped), the load
 * child over IPC, an echo origin in this process, free loopback ports, a process's open descriptors, and the
 * Spectrum events a child wrote. Every wait is bounded; `killAll` ends every child started here.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Answer, Request, RequestBody } from './protocol.ts';
import { CAN_NICE } from '../proc.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'src', 'cli.ts');
export const HOST = '127.0.0.1';

const live = new Set<ChildProcess>();

/** SIGKILLs every child still running (for exit paths and test `after` hooks). */
export function killAll(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  live.clear();
}

/** A port the kernel handed out for port 0 just now (released again; the caller binds it soon after). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, HOST, () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

/** Open descriptors of process `pid` (from /proc), or -1 when unreadable. */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** The soft RLIMIT_NOFILE of process `pid` (from /proc), or -1 when unreadable. */
export function fdLimit(pid: number): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m?.[1] === undefined ? -1 : Number(m[1]);
  } catch {
    return -1;
  }
}

/** Resident set size, KiB, or -1. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? -1 : Number(m[1]);
  } catch {
    return -1;
  }
}

/**
 * Runs `pids` at nice −10 and raises their autogroup's nice to −10 too (the runner's children share its session,
 * hence its autogroup), as bench/proc.ts does for the benchmark: on a shared machine other sessions then take less
 * of the measured cores. A no-op without the privilege (root or CAP_SYS_NICE). Returns whether it did it.
 */
export function raisePriority(pids: readonly number[]): boolean {
  if (!CAN_NICE) return false;
  for (const pid of pids) {
    try {
      execFileSync('renice', ['-n', '-10', '-p', String(pid)], { stdio: 'ignore' });
      writeFileSync(`/proc/${pid}/autogroup`, '-10');
    } catch {
      // gone, or no autogroup support: plain nice is all we get
    }
  }
  return true;
}

/** Gives the runner's autogroup (its session) back its ordinary nice 0, at the end of a run. */
export function restorePriority(): void {
  try {
    writeFileSync('/proc/self/autogroup', '0');
  } catch {
    // nothing was raised
  }
}

/** A running `refract serve`. */
export interface Serve {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** How many times `text` occurs in stderr so far. */
  count(text: string): number;
  /** Lines starting with "refract: reloaded" so far (one per applied file reload), and the last of them. */
  reloads(): { count: number; last: string };
  /** Sends SIGTERM and waits (up to `withinMs`, then SIGKILL) for the exit; resolves with the exit code or signal. */
  stop(withinMs?: number): Promise<number | string>;
}

/**
 * Starts `refract serve --config FILE --no-watch --access-log off ARGS` from the sources and waits (up to 60 s) for
 * its "refract: serving" line. Throws with its stderr when it exits first.
 */
export async function startServe(file: string, args: readonly string[] = []): Promise<Serve> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', file, '--no-watch', '--access-log', 'off', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let err = '';
  let partial = '';
  const reloads = { count: 0, last: '' };
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    if (err.length < 1_000_000) err += s;
    const lines = (partial + s).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.startsWith('refract: reloaded')) continue;
      reloads.count++;
      reloads.last = l;
    }
  });
  child.stdout!.resume();
  const done = new Promise<number | string>((resolve) =>
    child.on('close', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    }),
  );
  let exited: number | string | undefined;
  void done.then((c) => (exited = c));
  const deadline = Date.now() + 60_000;
  while (!err.includes('refract: serving')) {
    if (exited !== undefined) throw new Error(`refract serve exited (${exited}) before serving:\n${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`refract serve did not start within 60 s:\n${err}`);
    }
    await sleep(20);
  }
  return {
    child,
    pid: child.pid!,
    stderr: () => err,
    count: (text) => err.split(text).length - 1,
    reloads: () => ({ ...reloads }),
    async stop(withinMs = 15_000) {
      if (exited !== undefined) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), withinMs);
      const code = await done;
      clearTimeout(t);
      return code;
    },
  };
}

/** Waits until `probe()` is true, polling every 10 ms; false after `withinMs`. */
export async function waitFor(probe: () => boolean, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (!probe()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** The load child: one request at a time or several, each answered by id. */
export interface Load {
  readonly pid: number;
  call<T>(req: RequestBody): Promise<T>;
  close(): void;
}

export function startLoad(): Load {
  const child = fork(join(ROOT, 'bench', 'soak', 'load.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  live.add(child);
  child.on('exit', () => live.delete(child));
  let next = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (a: Answer) => {
    const w = waiting.get(a.id);
    if (w === undefined) return;
    waiting.delete(a.id);
    if (a.ok) w.resolve(a.value);
    else w.reject(new Error(`load child: ${a.error}`));
  });
  child.on('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`load child exited (${code ?? signal})`));
    waiting.clear();
  });
  return {
    pid: child.pid!,
    call<T>(req: RequestBody): Promise<T> {
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ ...req, id } as Request);
      });
    },
    close() {
      child.disconnect();
    },
  };
}

/** An echo origin on loopback port 0 (FIN answered with FIN), in this process. */
export async function startEcho(): Promise<{ port: number; connections(): number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  let total = 0;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    total++;
    socks.add(s);
    s.on('data', (d) => {
      if (!s.write(d)) {
        s.pause();
        s.once('drain', () => s.resume());
      }
    });
    s.on('end', () => s.end());
    s.on('error', () => undefined);
    s.on('close', () => socks.delete(s));
  });
  server.listen({ port: 0, host: HOST, backlog: 4096 });
  await new Promise<void>((r) => server.once('listening', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => total,
    async close() {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A Spectrum event as `serve --events FILE` writes it (the fields the soak reads). */
export interface EventLine {
  readonly Event: string;
  readonly Status: number;
  readonly ClientIP: string;
  readonly ClientPort: number;
  readonly EdgePort: number;
  readonly ClientBytes: number;
  readonly OriginBytes: number;
  readonly DurationMs: number;
  readonly CloseReason: string;
  readonly ErrorCode?: string;
  readonly Application: string;
}

/** Every event in `file` (JSON lines); [] when it does not exist. */
export function readEvents(file: string): EventLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as EventLine);
}

/**
 * Closing events (not `connect`), to be claimed one by one by the clients that caused them, found by the client's
 * `ip:port` and the edge port. A client port may be reused over a run (one after another, never at once), so a key
 * can hold several events: a claim takes the first unclaimed one that has the code asked for, else the first one.
 */
export class ClosingEvents {
  readonly #byKey = new Map<string, EventLine[]>();
  readonly #claimed = new Set<EventLine>();
  readonly all: readonly EventLine[];

  constructor(events: readonly EventLine[]) {
    this.all = events.filter((e) => e.Event !== 'connect');
    for (const e of this.all) {
      const k = `${e.ClientIP}:${e.ClientPort}>${e.EdgePort}`;
      this.#byKey.set(k, [...(this.#byKey.get(k) ?? []), e]);
    }
  }

  /** Claims the closing event of the connection from `local` (`ip:port`) to `edgePort`; undefined when none is left. */
  claim(local: string, edgePort: number, code?: string): EventLine | undefined {
    const free = (this.#byKey.get(`${local}>${edgePort}`) ?? []).filter((e) => !this.#claimed.has(e));
    const e = free.find((x) => code === undefined || x.ErrorCode === code) ?? free[0];
    if (e !== undefined) this.#claimed.add(e);
    return e;
  }

  /** Claims `e` itself (found by other means). */
  take(e: EventLine): void {
    this.#claimed.add(e);
  }

  isClaimed(e: EventLine): boolean {
    return this.#claimed.has(e);
  }

  unclaimed(): EventLine[] {
    return this.all.filter((e) => !this.#claimed.has(e));
  }
}

/** TcpExt ListenOverflows of this network namespace (/proc/net/netstat): SYNs or ACKs dropped for a full accept queue. */
export function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const keys = lines[0]?.split(/\s+/) ?? [];
    const vals = lines[1]?.split(/\s+/) ?? [];
    const i = keys.indexOf('ListenOverflows');
    return i < 0 ? -1 : Number(vals[i]);
  } catch {
    return -1;
  }
}

/** Nearest-rank percentile of `xs` (p in 0..100); NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
