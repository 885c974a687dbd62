/**
 * The shared part of the instruction-count benches (tcp-instructions.ts, tls-instructions.ts): run a proxy under
 * `valgrind --tool=cachegrind --cache-sim=no`, wait until it listens, drive a warm-up and a measured load through it
 * with a fixed concurrency, stop it, and read its total instructions ("I refs"). Bounded: each run is killed after
 * `limitMs`, the listen wait after 300 s.
 */
import net from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../proxies.ts';

export function assertValgrind(): void {
  if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind is not installed (apt-get install -y valgrind)');
}

/** Runs `once` `n` times, `concurrency` at a time. */
export async function load(n: number, concurrency: number, once: () => Promise<void>): Promise<void> {
  let left = n;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        await once();
      }
    }),
  );
}

async function waitListening(host: string, port: number): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = net.connect(port, host);
      s.on('connect', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (up) return;
    await sleep(250);
  }
  throw new Error('the proxy did not listen within 300 s');
}

export interface CountRun {
  /** Names the output file and errors. */
  readonly name: string;
  /** Node arguments of the proxy process (run by this process's Node, from the repository root). */
  readonly args: readonly string[];
  readonly host: string;
  readonly port: number;
  /** Untimed operations first (the same in every run of a pair, so they cancel), then `count` measured ones. */
  readonly warm: number;
  readonly count: number;
  readonly concurrency: number;
  readonly once: () => Promise<void>;
  /** Where valgrind's file goes: `keep` (kept, `cg.NAME.COUNT`) or `scratch` (a unique name). */
  readonly keep: string | undefined;
  readonly scratch: string;
  readonly limitMs: number;
}

/** Instructions (I refs) of one proxy process serving `warm` and then `count` operations. */
export async function instructions(r: CountRun): Promise<number> {
  const out = join(r.keep ?? r.scratch, r.keep !== undefined ? `cg.${r.name}.${r.count}` : `cg.${r.name}.${r.count}.${Date.now()}`);
  const child = spawn('valgrind', ['--tool=cachegrind', '--cache-sim=no', `--cachegrind-out-file=${out}`, process.execPath, ...r.args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stdout.resume();
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const kill = setTimeout(() => child.kill('SIGKILL'), r.limitMs);
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  try {
    await waitListening(r.host, r.port);
    await load(r.warm, r.concurrency, r.once);
    await load(r.count, r.concurrency, r.once);
  } finally {
    child.kill('SIGTERM');
    await exited;
    clearTimeout(kill);
  }
  const m = /I\s+refs:\s+([\d,]+)/.exec(err);
  if (m === null) throw new Error(`no I refs from valgrind for ${r.name}:\n${err.slice(-2_000)}`);
  return Number(m[1]!.replace(/,/g, ''));
}

/**
 * For each proxy: `count(p, small)` and `count(p, big)` (after `prepare(p)`, when given), the difference ÷
 * (big − small) as instructions per `unit`, printed as a Markdown table on stdout (and one line per proxy on stderr
 * as it goes). Returns the per-unit figures by proxy.
 */
export async function perUnitTable<P extends string>(
  proxies: readonly P[],
  count: (p: P, n: number) => Promise<number>,
  small: number,
  big: number,
  unit: string,
  prepare?: (p: P) => Promise<unknown>,
): Promise<Map<P, number>> {
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  const rows: string[] = [];
  const per = new Map<P, number>();
  for (const p of proxies) {
    await prepare?.(p);
    const a = await count(p, small);
    const b = await count(p, big);
    const each = (b - a) / (big - small);
    per.set(p, each);
    rows.push(`| ${p} | ${fmt(a)} | ${fmt(b)} | ${fmt(each)} |`);
    process.stderr.write(`${p}: ${fmt(each)} instructions per ${unit}\n`);
  }
  process.stdout.write(`| proxy | I refs, ${small} ${unit}s | I refs, ${big} ${unit}s | instructions per ${unit} |\n|---|---|---|---|\n${rows.join('\n')}\n`);
  return per;
}
