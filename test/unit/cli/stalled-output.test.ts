/**
 * Outputs whose reader stalls cost lines, not memory (docs/hardening.md, "Logs and events"), on a real
 * `refract serve` child process:
 * - stdout (`--events stdout`) is a pipe this test stops reading; 2,000 connections later the child holds at most
 *   `log.max_buffer` (+ one line) for stdout, counts the lines it dropped (`refract_output_lines_total{result=
 *   "dropped"}`), and when the test reads again, logs one line with the episode's count;
 * - stderr (the pino log) through the same bound: a child logger writing to a stderr nobody reads holds at most
 *   `maxBufferBytes`, and says how many lines it dropped once stderr is read again.
 *
 * Ports 8820-8822 (this file's block). Every wait is bounded; every child is killed in `finally`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { until } from '../api/processes.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');
const HOST = '127.0.0.1';
/** Ports 8820-8822 belong to this file (the child reads them from its config). */
const EDGE_PORT = 8820;
const ORIGIN_PORT = 8821;
const METRICS_PORT = 8822;
const MAX_BUFFER = 64 * 1024;
const TEST_MS = 120_000;


function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** One connection: send a byte, read the echo, close. */
async function echoOnce(): Promise<void> {
  const s = net.connect({ host: HOST, port: EDGE_PORT });
  s.on('error', () => {});
  await once(s, 'connect');
  s.end('x');
  s.resume();
  await once(s, 'close');
}

async function metric(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? NaN : Number(line.split(' ').at(-1));
}

describe('an output whose reader stalls is bounded', () => {
  it('stdout: 2,000 connections with the events pipe unread hold at most log.max_buffer; drops counted; one line when read again', { timeout: TEST_MS }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-stall-'));
    const file = join(dir, 'refract.yaml');
    writeFileSync(
      file,
      YAML.stringify({
        node: { id: 'stall-test' },
        edge: { addresses: [HOST] },
        log: { level: 'info', max_buffer: '64K' },
        metrics: { listen: `${HOST}:${METRICS_PORT}` },
        origins: [{ name: 'echo', listen: `tcp://${HOST}:${ORIGIN_PORT}`, behaviour: 'echo' }],
        apps: [{ id: 'echo', protocol: `tcp/${EDGE_PORT}`, dns: { name: 'echo.example.test' }, origin_direct: [`tcp://${HOST}:${ORIGIN_PORT}`] }],
      }),
    );
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--events', 'stdout', '--no-watch'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      // Not read: the pipe fills (the kernel's 64 KiB), then the child's writes stop being taken.
      child.stdout!.pause();
      const metricsUrl = await until('the metrics listener', 30_000, () => /metrics on (http:\/\/[^ ]+\/metrics)/.exec(stderr)?.[1]);
      await until('serving', 30_000, () => (stderr.includes('refract: serving') ? true : undefined));
      const pid = child.pid!;
      const rssBefore = rssKb(pid);

      for (let i = 0; i < 2_000; i += 50) await Promise.all(Array.from({ length: 50 }, () => echoOnce()));
      const dropped = await until('drops counted', 10_000, async () => {
        const n = await metric(metricsUrl, 'refract_output_lines_total', 'output="stdout",result="dropped"');
        return n > 0 ? n : undefined;
      });
      const buffered = await metric(metricsUrl, 'refract_output_buffered_bytes', 'output="stdout"');
      const written = await metric(metricsUrl, 'refract_output_lines_total', 'output="stdout",result="written"');
      const rssAfter = rssKb(pid);
      assert.ok(buffered <= MAX_BUFFER + 4096, `stdout holds ${buffered} bytes (bound ${MAX_BUFFER} + one line)`);
      assert.equal(written + dropped, 4_000, 'every event (connect + close, 2,000 connections) was written or dropped');
      assert.ok(rssAfter - rssBefore < 64 * 1024, `RSS grew ${rssAfter - rssBefore} kB`);
      assert.doesNotMatch(stderr, /lines dropped: stdout/, 'no drop line while the reader still stalls');

      // Read again: the child's buffer empties, and one line says how many were dropped in the episode.
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stdout!.resume();
      const line = await until('the drop line', 20_000, () => stderr.split('\n').find((l) => l.includes('lines dropped: stdout not reading')));
      const logged = JSON.parse(line) as { event: string; output: string; dropped: number };
      assert.equal(logged.event, 'output.dropped');
      assert.equal(logged.dropped, dropped);
      assert.equal(stderr.split('\n').filter((l) => l.includes('lines dropped: stdout')).length, 1, 'one line per episode');
      // Whole lines only: everything stdout carried parses as JSON.
      await until('stdout drained', 10_000, () => (out.endsWith('\n') ? true : undefined));
      for (const l of out.split('\n').filter((x) => x !== '')) JSON.parse(l);
      assert.equal(await metric(metricsUrl, 'refract_output_buffered_bytes', 'output="stdout"'), 0);
    } finally {
      child?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stderr: the pino log to an unread pipe holds at most maxBufferBytes, then logs one drop line when read again', { timeout: TEST_MS }, async () => {
    const script = `
      import { createLogger, logOutputStats } from ${JSON.stringify(join(ROOT, 'src', 'log.ts'))};
      const log = createLogger({ level: 'info', maxBufferBytes: 65536 });
      for (let i = 0; i < 20000; i++) log.info({ i, pad: 'x'.repeat(200) }, 'line');
      const s = logOutputStats(log);
      process.stdout.write(JSON.stringify(s) + '\\n');
      process.stdin.once('data', () => process.exit(0));
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      child.stderr.pause();
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      const stats = JSON.parse(await until('the stats line', 30_000, () => (out.includes('\n') ? out.split('\n')[0] : undefined))) as { written: number; dropped: number; bufferedBytes: number };
      assert.ok(stats.dropped > 0, 'lines were dropped');
      assert.equal(stats.written + stats.dropped, 20_000);
      assert.ok(stats.bufferedBytes <= 65_536, `holds ${stats.bufferedBytes} bytes`);
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      child.stderr.resume();
      const line = await until('the drop line', 20_000, () => err.split('\n').find((l) => l.includes('log lines dropped: stderr not reading')));
      assert.equal((JSON.parse(line) as { dropped: number }).dropped, stats.dropped);
      for (const l of err.split('\n').filter((x) => x !== '')) JSON.parse(l);
      child.stdin.write('x');
      await once(child, 'exit');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
