/**
 * Config files and the data path (issue #16; docs/hardening.md, "Config and geo files"). Bounded, loopback only.
 *
 *   node --import tsx bench/config-files.ts reload [--bin PATH/bin/refract.js] [--sizes 5M,3.9M,50M]
 *     starts `refract serve` (the given launcher: another checkout's for a before/after), keeps one TCP echo stream
 *     going through it, replaces the config with a file of each size (a valid app plus a long list in an ignored
 *     field, as the issue's probe did), and reports, per size: the longest gap between echo round trips from the
 *     write until the reload is logged (or 60 s), the reloads logged, and the server's RSS 3 s after.
 *   node --import tsx bench/config-files.ts scale [--apps 10000,50000]
 *     validateConfig time for N apps (in 1 zone, and each in its own zone).
 *   node --import tsx bench/config-files.ts validate [--bin ...]
 *     `refract validate` on a 50 MB file: wall time, exit code and peak RSS (VmHWM).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { positionals, values } = parseArgs({ allowPositionals: true, options: { bin: { type: 'string' }, sizes: { type: 'string' }, apps: { type: 'string' } } });
const BIN = values.bin ?? join(ROOT, 'bin', 'refract.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const bytes = (s: string): number => Math.round(Number.parseFloat(s) * (s.endsWith('M') ? 1024 * 1024 : s.endsWith('K') ? 1024 : 1));
const mb = (kb: number): string => `${(kb / 1024).toFixed(0)} MB`;

/** VmRSS and VmHWM of a process, kB (Linux). */
function memOf(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

const PORT = 7870;
const ORIGIN = 7871;
function head(name: string): string {
  return [
    'edge: { addresses: [127.0.0.1], drain_timeout_ms: 500 }',
    `origins: [{ name: echo, listen: "tcp://127.0.0.1:${ORIGIN}", behaviour: echo }]`,
    'apps:',
    `  - protocol: tcp/${PORT}`,
    `    dns: { name: ${name}.example.test }`,
    `    origin_direct: ["tcp://127.0.0.1:${ORIGIN}"]`,
    '',
  ].join('\n');
}
/** The probe's file: a valid app plus a long list in an ignored field, `size` bytes. */
function bigConfig(size: number, name: string): string {
  const h = `${head(name)}    ignored_field:\n`;
  const item = '      - item of a long list\n';
  return h + item.repeat(Math.max(0, Math.floor((size - h.length) / item.length)));
}

async function reload(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-bench-config-'));
  const file = join(dir, 'refract.yaml');
  writeFileSync(file, head('a'));
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--access-log', 'off'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs: string[] = [];
  child.stderr.setEncoding('utf8').on('data', (s: string) => logs.push(...s.split('\n')));
  const count = (ev: string): number => logs.filter((l) => l.includes(`"event":"${ev}"`)).length;
  try {
    for (let i = 0; i < 600 && count('serve.started') === 0; i++) await sleep(100);
    await sleep(500);
    const sock = net.connect({ host: '127.0.0.1', port: PORT });
    await new Promise((r) => sock.once('connect', r));
    let last = performance.now();
    let maxGap = 0;
    let trips = 0;
    sock.on('data', () => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      trips++;
      sock.write('x');
    });
    sock.on('error', (e) => console.log(`echo stream: ${e.message}`));
    sock.write('x');
    await sleep(3_000);
    console.log(`no reload (3 s): longest echo gap ${Math.round(maxGap)} ms; RSS ${mb(memOf(child.pid!).rss)}`);
    let v = 0;
    for (const s of (values.sizes ?? '5M,3.9M,50M').split(',')) {
      const seen = { reload: count('config.reload'), rejected: count('config.rejected'), applied: count('config.applied') };
      const text = bigConfig(bytes(s) + ++v, 'a'); // the same app every time: the echo stream is never drained away
      await sleep(300);
      // Written before the window opens: writing 50 MB stalls this process, not the server.
      writeFileSync(file, text);
      maxGap = 0;
      last = performance.now();
      const t0 = performance.now();
      const done = (): boolean => count('config.reload') > seen.reload || count('config.rejected') > seen.rejected;
      while (!done() && performance.now() - t0 < 60_000 && child.exitCode === null) await sleep(20);
      const tookMs = performance.now() - t0;
      maxGap = Math.max(maxGap, performance.now() - last); // a stream still stalled at the window's end
      await sleep(3_000); // the 2 s stat poll, then RSS
      const m = memOf(child.pid!);
      console.log(
        `${s}: ${child.exitCode !== null ? `server exited (${child.exitCode})` : ''} reload logged after ${Math.round(tookMs)} ms; longest echo gap ${Math.round(maxGap)} ms; ` +
          `reloads ${count('config.reload') - seen.reload}, applied ${count('config.applied') - seen.applied}, rejected ${count('config.rejected') - seen.rejected}; RSS ${mb(m.rss)} (peak ${mb(m.hwm)}); ${trips} round trips so far`,
      );
      if (child.exitCode !== null) break;
    }
    sock.destroy();
  } finally {
    child.kill('SIGTERM');
    await sleep(500);
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function scale(): Promise<void> {
  const { validateConfig } = await import('../src/model/config.ts');
  for (const n of (values.apps ?? '10000,50000').split(',').map(Number)) {
    for (const zonesN of [1, n]) {
      const apps = Array.from({ length: n }, (_, i) => ({
        protocol: `tcp/${10000 + i}`,
        dns: { type: 'CNAME', name: `app${i}.z${i % zonesN}.example.test` },
        origin_direct: [`tcp://127.0.0.1:${1000 + (i % 50000)}`],
      }));
      const zones = Array.from({ length: zonesN }, (_, i) => ({ name: `z${i}.example.test` }));
      const t0 = performance.now();
      const r = validateConfig({ zones, apps, dns: { listen: '127.0.0.1:5300' } });
      console.log(`${n} apps in ${zonesN} zone(s): ${r.ok ? 'valid' : 'INVALID'} in ${Math.round(performance.now() - t0)} ms`);
    }
  }
}

async function validate(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-bench-validate-'));
  const file = join(dir, 'big.yaml');
  writeFileSync(file, bigConfig(50 * 1024 * 1024, 'big'));
  try {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, 'validate', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    let hwm = 0;
    const iv = setInterval(() => (hwm = Math.max(hwm, memOf(child.pid!).hwm)), 20);
    const killer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    clearInterval(iv);
    clearTimeout(killer);
    console.log(`validate 50 MB: exit ${code} in ${Math.round(performance.now() - t0)} ms, peak RSS ≥ ${mb(hwm)}: ${out.split('\n').slice(0, 2).join(' | ').slice(0, 200)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const what = positionals[0] ?? 'reload';
if (what === 'reload') await reload();
else if (what === 'scale') await scale();
else if (what === 'validate') await validate();
else console.error('usage: bench/config-files.ts reload|scale|validate');
