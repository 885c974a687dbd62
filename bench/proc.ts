/**
 * Process plumbing for the harness: spawn pinned to a core (taskset), keep the tail of a child's output for error
 * reports, wait for a TCP port, stop a whole process group, and read CPU time and RSS from /proc.
 *
 * Every child is spawned `detached` (its own process group) and registered, so `killAllSync` on any exit path
 * (normal end, error, SIGINT, the hard timeout) leaves nothing running.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const live = new Set<ChildProcess>();

/** Kills every registered child's process group with SIGKILL. Safe to call from an 'exit' handler. */
export function killAllSync(): void {
  for (const c of live) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

/** True when `taskset` exists and the machine has at least two CPUs to split proxy and load generator. */
export function canPin(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return (readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? 1) >= 2;
  } catch {
    return false;
  }
}

const NICE = -10;
/**
 * True when we may raise priority (root or CAP_SYS_NICE). On a shared machine the benchmark's processes then run
 * at nice −10, so other work (type-checkers, test runs) takes less of the measured cores.
 */
export const CAN_NICE = ((): boolean => {
  try {
    execFileSync('nice', ['-n', String(NICE), 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * With CONFIG_SCHED_AUTOGROUP (on by default on desktop-style kernels) the scheduler shares CPU fairly between
 * sessions first and applies nice only inside a session; a detached child is a new session, so its plain nice
 * value would buy nothing against other sessions. Raising the session's autogroup nice does. uv_spawn returns
 * after the child's setsid() and exec, so the pid's autogroup is already the child's own.
 */
function raiseAutogroup(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(NICE));
  } catch {
    // no autogroup support or not permitted: plain nice is all we get
  }
}

/** Pins every thread of an already running process (e.g. the harness itself) to `cpu` (a number or a list). */
export function pinPid(pid: number, cpu: number | string): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

/** A child whose last output bytes are kept for error messages. */
export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the child has exited. */
  readonly exited: Promise<string>;
  /** Last few KB of stdout+stderr, as text. */
  tail(): string;
}

const TAIL_BYTES = 4096;

/**
 * Spawns `cmd args` in its own process group, pinned to `cpu` (a CPU number or a `taskset -c` list such as `0,1`)
 * when `cpu` is defined, at raised priority when CAN_NICE.
 */
export function spawnChild(cmd: string, args: readonly string[], cpu: number | string | undefined, opts: SpawnOptions = {}): Child {
  // nice and taskset both exec the next program, so the spawned pid is the command's own pid.
  const pinned = cpu === undefined ? [cmd, ...args] : ['taskset', '-c', String(cpu), cmd, ...args];
  const full = CAN_NICE ? ['nice', '-n', String(NICE), ...pinned] : pinned;
  const [file, ...argv] = full as [string, ...string[]];
  const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts, detached: true });
  if (proc.pid === undefined) throw new Error(`could not spawn ${cmd}`);
  live.add(proc);
  if (CAN_NICE) raiseAutogroup(proc.pid);
  let buf = '';
  const keep = (d: Buffer): void => {
    buf = (buf + d.toString('utf8')).slice(-TAIL_BYTES);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<string>((resolve) => {
    proc.on('exit', (code, signal) => {
      live.delete(proc);
      resolve(signal ?? String(code));
    });
    proc.on('error', (e) => {
      live.delete(proc);
      keep(Buffer.from(`spawn error: ${e.message}\n`));
      resolve('spawn-error');
    });
  });
  return { proc, pid: proc.pid, exited, tail: () => buf };
}

/** SIGTERM to the child's process group, then SIGKILL after `graceMs`. Resolves once it has exited. */
export async function stopChild(c: Child, graceMs = 3000): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  try {
    process.kill(-c.pid, 'SIGTERM');
  } catch {
    return;
  }
  const killed = await Promise.race([c.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!killed) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    await c.exited;
  }
}

/** One TCP connect attempt to 127.0.0.1:port; true when it was accepted. */
export function tryConnect(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const t = setTimeout(() => done(false), timeoutMs);
    const done = (ok: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** A process that did not come up: `message` is one line, `output` the tail of what it printed. */
export class StartError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

/** Throws StartError when any port is already bound on 127.0.0.1 (a leftover would answer our readiness probe). */
export async function assertPortsFree(ports: readonly number[]): Promise<void> {
  for (const port of ports) {
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const srv = net.createServer();
      srv.once('error', (e) => resolve(e));
      srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(undefined)));
    });
    if (err !== undefined) throw new StartError(`port ${port} is not free (${err.code ?? err.message})`, '');
  }
}

/**
 * Waits until every port accepts a connection. Throws StartError (with the child's output tail) when the child
 * exits first or `timeoutMs` passes.
 */
export async function waitForPorts(c: Child, ports: readonly number[], timeoutMs: number): Promise<void> {
  let exited: string | undefined;
  void c.exited.then((how) => {
    exited = how;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited !== undefined) throw new StartError(`exited (${exited}) before listening`, c.tail());
    const ok = await Promise.all(ports.map((p) => tryConnect(p)));
    // The child may have died between the probe and now, with something else answering on its ports.
    if (ok.every(Boolean) && exited === undefined) return;
    if (Date.now() > deadline) throw new StartError(`not listening on ${ports.join(',')} after ${timeoutMs} ms`, c.tail());
    await sleep(100);
  }
}

/** Clock ticks per second for /proc/<pid>/stat (getconf CLK_TCK; 100 on Linux x86/arm). */
export const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of the whole process (all threads), seconds. Throws if the process is gone. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised comm (which may contain spaces): state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / CLK_TCK;
}

/**
 * Minor page faults of the whole process so far (`minflt`, field 10 of /proc/<pid>/stat). A proxy whose reads land
 * on freshly mapped memory shows it here: one fault per 4 KiB page touched for the first time.
 */
export function minorFaults(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}

/** Resident set size of the process, KiB (VmRSS in /proc/<pid>/status). */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m?.[1] === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** Direct children of `pid` (needs /proc/<pid>/task/<pid>/children, present on Linux ≥ 3.5 kernels). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * The single worker of an nginx master started with `worker_processes 1` (waits up to 1 s for it to appear). The
 * worker is the process that does the work, so it is the one measured. Stops the master and throws StartError if
 * there is not exactly one.
 */
export async function nginxWorker(master: Child): Promise<number> {
  return (await childWorkers(master, 1, 'nginx worker'))[0]!;
}

/**
 * The `n` child processes of `parent` (nginx's workers under its master, Refract's workers under its supervisor),
 * waiting up to 5 s for all of them to appear; `keep` picks the workers among the children. Stops the parent and
 * throws StartError if the count is not `n`.
 */
export async function childWorkers(parent: Child, n: number, what: string, keep: (pid: number) => boolean = () => true): Promise<number[]> {
  let kids: number[] = [];
  for (let i = 0; i < 250 && kids.length < n; i++) {
    kids = childPids(parent.pid).filter(keep);
    if (kids.length < n) await sleep(20);
  }
  if (kids.length !== n) {
    await stopChild(parent);
    throw new StartError(`expected ${n} ${what}(s) under ${parent.pid}, found ${kids.length}`, parent.tail());
  }
  return kids;
}

/** A process's command line, arguments joined by spaces ('' when it is gone). */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** utime + stime of several processes (a proxy's workers), seconds. */
export function cpuSecondsOf(pids: readonly number[]): number {
  return pids.reduce((a, p) => a + cpuSeconds(p), 0);
}

/** Summed VmRSS of several processes, KiB. */
export function rssKiBOf(pids: readonly number[]): number {
  return pids.reduce((a, p) => a + rssKiB(p), 0);
}

/** Summed minor page faults of several processes. */
export function minorFaultsOf(pids: readonly number[]): number {
  return pids.reduce((a, p) => a + minorFaults(p), 0);
}

/**
 * Clock ticks of one CPU since boot, from /proc/stat: busy = total − idle − iowait; irq = hard + soft interrupt
 * time, which the kernel charges to no process (loopback packet processing lands there in part).
 */
export function cpuCoreTicks(cpu: number): { busy: number; irq: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `));
  if (line === undefined) throw new Error(`no cpu${cpu} in /proc/stat`);
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), irq: (f[5] ?? 0) + (f[6] ?? 0), total };
}

/** TCP sockets in TIME_WAIT on this host (/proc/net/sockstat `tw`); many of them make connect() slower. */
export function timeWaitCount(): number {
  const m = /^TCP:.*\btw (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  return m?.[1] === undefined ? Number.NaN : Number(m[1]);
}
