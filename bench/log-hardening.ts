/**
 * The figures of docs/hardening.md, "Logs and events", on loopback:
 * 1. `refract serve --events stdout` with a stdout pipe nobody reads: RSS before and after N connections (default
 *    50,000, 100 at a time; each sends a byte, reads the echo, closes);
 * 2. garbage on a TLS port: log lines on stderr per M connections (default 10,000; each sends an HTTP request to
 *    a `tls: flexible` app), at log level info, access log off.
 *
 * Usage: node --import tsx bench/log-hardening.ts [--root DIR] [--conns N] [--garbage M]
 * `--root` runs another checkout's bin/refract.js (for a before/after comparison); the config uses no key that
 * is newer than the measured code. Ports 8827-8830. Every child is killed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { root: { type: 'string' }, conns: { type: 'string' }, garbage: { type: 'string' } } });
const ROOT = resolve(values.root ?? '.');
const CONNS = Number(values.conns ?? 50_000);
const GARBAGE = Number(values.garbage ?? 10_000);
const HOST = '127.0.0.1';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function mem(pid: number): { rssMb: number; hwmMb: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { rssMb: Math.round(kb('VmRSS') / 1024), hwmMb: Math.round(kb('VmHWM') / 1024) };
}

function serve(dir: string, yaml: string, args: string[], stdout: 'pipe' | 'ignore'): { child: ChildProcess; stderr: () => string; ready: Promise<void> } {
  const file = join(dir, 'refract.yaml');
  writeFileSync(file, yaml);
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'refract.js'), 'serve', '--config', file, '--no-watch', ...args], { cwd: dir, stdio: ['ignore', stdout, 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const ready = (async () => {
    for (let i = 0; i < 600 && !err.includes('refract: serving'); i++) await sleep(50);
    if (!err.includes('refract: serving')) throw new Error(`serve did not start:\n${err}`);
  })();
  return { child, stderr: () => err, ready };
}

async function conn(port: number, payload: string): Promise<void> {
  const s = net.connect({ host: HOST, port });
  s.on('error', () => {});
  s.setTimeout(10_000, () => s.destroy());
  await once(s, 'connect').catch(() => undefined);
  s.end(payload);
  s.resume();
  await once(s, 'close');
}

async function many(n: number, port: number, payload: string): Promise<void> {
  for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => conn(port, payload)));
}

const dir = mkdtempSync(join(tmpdir(), 'refract-logbench-'));
const children: ChildProcess[] = [];
try {
  // 1. stdout not read.
  {
    const yaml = [
      'node: { id: bench }',
      `edge: { addresses: [${HOST}] }`,
      'log: { level: info }',
      `origins: [{ name: echo, listen: "tcp://${HOST}:8828", behaviour: echo }]`,
      `apps: [{ id: echo, protocol: tcp/8827, dns: { name: echo.example.test }, origin_direct: ["tcp://${HOST}:8828"] }]`,
    ].join('\n');
    const s = serve(dir, yaml, ['--events', 'stdout'], 'pipe');
    children.push(s.child);
    s.child.stdout!.pause();
    await s.ready;
    await sleep(500);
    const before = mem(s.child.pid!);
    const t0 = Date.now();
    await many(CONNS, 8827, 'x');
    await sleep(500);
    const after = mem(s.child.pid!);
    console.log(`stalled stdout, ${CONNS} connections in ${((Date.now() - t0) / 1000).toFixed(1)} s: RSS ${before.rssMb} → ${after.rssMb} MB (peak ${after.hwmMb} MB)`);
    s.child.stdout!.resume();
    s.child.stdout!.on('data', () => {});
    await sleep(1_000);
    const drop = s.stderr().split('\n').find((l) => l.includes('lines dropped'));
    console.log(`  after reading again: ${drop ? JSON.parse(drop).msg : 'no drop line'}`);
    s.child.kill('SIGKILL');
  }
  // 2. garbage on a TLS port.
  {
    const yaml = [
      `node: { id: bench, data_dir: ${JSON.stringify(join(dir, 'data'))} }`,
      `edge: { addresses: [${HOST}] }`,
      'log: { level: info }',
      `origins: [{ name: echo, listen: "tcp://${HOST}:8830", behaviour: echo }]`,
      `apps: [{ id: tls, protocol: tcp/8829, tls: flexible, dns: { name: tls.example.test }, origin_direct: ["tcp://${HOST}:8830"] }]`,
    ].join('\n');
    const s = serve(dir, yaml, ['--access-log', 'off'], 'ignore');
    children.push(s.child);
    await s.ready;
    const startLines = s.stderr().split('\n').filter((l) => l.startsWith('{')).length;
    await many(GARBAGE, 8829, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(1_000);
    const lines = s.stderr().split('\n').filter((l) => l.startsWith('{'));
    const during = lines.length - startLines;
    const bytes = lines.slice(startLines).reduce((n, l) => n + l.length + 1, 0);
    console.log(`garbage TLS, ${GARBAGE} connections: ${during} log lines (${(bytes / 1024).toFixed(1)} KiB) on stderr`);
    s.child.kill('SIGKILL');
  }
} finally {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
