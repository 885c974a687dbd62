/**
 * Soak (b): configuration changes under load. One `refract serve` child; the load child opens `streams`
 * connections to the "stream" app, each sending a pattern keyed by its index and byte offset through an echo
 * origin and checking every echoed byte as it arrives; meanwhile the configuration changes `changes` times:
 *
 * - `file`: the config file alternates between two versions that differ in OTHER apps only (one app added and
 *   another removed each time, a third changed: `proxy_protocol` on and off), each applied by SIGHUP and awaited
 *   (its "refract: reloaded" line) before the next;
 * - `api`: with `api:` on, an app is created and deleted in turn through the management API (each write answered
 *   before the next).
 *
 * Every `probeEvery` changes, the app just added must echo and the one just removed must refuse. At the end every
 * stream ends its side and must have got back exactly the bytes it sent (no loss, no duplicate, no reorder), the
 * edge's FIN, and no error; the edge's events must show each stream closed once, status 200, `normal`, with the
 * stream's byte count.
 */
import * as net from 'node:net';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import YAML from 'yaml';
import { ClosingEvents, fdCount, freePorts, HOST, percentile, readEvents, ROOT, rssKiB, startEcho, startLoad, startServe, waitFor, raisePriority } from './procs.ts';
import type { StreamReport } from './protocol.ts';

export interface ReloadOptions {
  readonly mode: 'file' | 'api';
  readonly changes: number;
  readonly streams: number;
  /** Each stream writes `chunkBytes` every `everyMs`. */
  readonly chunkBytes: number;
  readonly everyMs: number;
  readonly probeEvery: number;
  readonly log?: (line: string) => void;
  /** Run the children and the runner at nice −10 (see `raisePriority`): `npm run soak` does, the tests do not. */
  readonly priority?: boolean;
}

export interface ReloadResult {
  readonly failures: string[];
  readonly mode: 'file' | 'api';
  readonly changes: number;
  readonly applied: number;
  readonly streams: number;
  readonly dropped: number;
  readonly bytesSent: number;
  readonly bytesLost: number;
  readonly bytesCorrupt: number;
  /** Per change: trigger (SIGHUP sent / API request sent) → applied (reloaded line / API answer), ms. */
  readonly applyP50Ms: number;
  readonly applyP99Ms: number;
  readonly durationS: number;
  readonly probes: number;
  readonly peakFds: number;
  readonly rssMiB: number;
}

const ZONE = { id: '023e105f4ecef8ad9ca31a8372d0c353', name: 'example.com' };
const STREAM_SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.3.${i + 1}`);

/** Echo of a short text through `port`, or an error code (ECONNREFUSED when nothing listens). Bounded: 5 s. */
export function probe(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    let rx = '';
    const done = (v: string): void => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done('timeout'), 5_000);
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.setEncoding('utf8').on('data', (d: string) => {
      rx += d;
      if (rx.length >= text.length) done(rx);
    });
    s.on('connect', () => s.write(text));
  });
}

async function api(base: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
}

export async function runReloadSoak(o: ReloadOptions): Promise<ReloadResult> {
  const say = o.log ?? ((): void => undefined);
  const dir = mkdtempSync(join(tmpdir(), `refract-soak-${o.mode}-`));
  const echo = await startEcho();
  const [portStream, portA, portB, portChanged, portApi] = (await freePorts(5)) as [number, number, number, number, number];
  const origin = [`tcp://${HOST}:${echo.port}`];
  const app = (id: string, port: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id, protocol: `tcp/${port}`, dns: { type: 'CNAME', name: `${id}.example.com` }, origin_direct: origin, ...extra });
  const file = join(dir, 'refract.yaml');
  const base = {
    node: { id: `soak-${o.mode}`, data_dir: join(dir, 'data') },
    // The streams run for the whole soak: no idle timeout may end them (they never pause anyway).
    edge: { addresses: [HOST], drain_timeout_ms: 2_000 },
    log: { level: 'warn' },
  };
  /** Version 0 and 1 of the file: the stream app in both; other-a or other-b; "changed" with and without PROXY v1. */
  const version = (v: 0 | 1): Record<string, unknown> => ({
    ...base,
    apps: [app('stream', portStream), v === 0 ? app('other-a', portA) : app('other-b', portB), app('changed', portChanged, v === 0 ? {} : { proxy_protocol: 'v1' })],
  });
  const write = (content: Record<string, unknown>): void => {
    // Written whole and renamed over, as an editor or a deploy tool does: a reload never reads half a file.
    writeFileSync(`${file}.tmp`, YAML.stringify(content));
    renameSync(`${file}.tmp`, file);
  };
  let token = '';
  const apiBase = `http://${HOST}:${portApi}/client/v4`;
  if (o.mode === 'file') write(version(0));
  else {
    write({ ...base, zones: [ZONE], api: { listen: `${HOST}:${portApi}`, rate_limit: { requests: 1_000_000, window_sec: 60 } }, apps: [app('stream', portStream)] });
    const t = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'token', 'create', '--config', file, '--name', 'soak'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    if (t.status !== 0) throw new Error(`refract token create failed: ${t.stderr}`);
    token = t.stdout.trimEnd().split('\n').at(-1)!;
  }
  const events = join(dir, 'events.ndjson');
  const failures: string[] = [];
  const load = startLoad();
  const serve = await startServe(file, ['--events', events]);
  if (o.priority === true) raisePriority([serve.pid, load.pid, process.pid]);
  try {
    say(`opening ${o.streams} streams`);
    const opened = await load.call<{ connected: number }>({ cmd: 'streams', host: HOST, port: portStream, count: o.streams, chunkBytes: o.chunkBytes, everyMs: o.everyMs, sources: STREAM_SOURCES });
    if (opened.connected !== o.streams) failures.push(`only ${opened.connected} of ${o.streams} streams connected`);
    const applyMs: number[] = [];
    let applied = 0;
    let probes = 0;
    let peakFds = 0;
    let apiAppId: string | undefined;
    const t0 = performance.now();
    for (let i = 1; i <= o.changes; i++) {
      const start = performance.now();
      // Odd changes: to version 1 (other-b up, other-a gone) / create the API app; even: back / delete it.
      const up = i % 2 === 1 ? portB : portA;
      const down = i % 2 === 1 ? portA : portB;
      if (o.mode === 'file') {
        write(version(i % 2 === 1 ? 1 : 0));
        serve.child.kill('SIGHUP');
        if (!(await waitFor(() => serve.reloads().count >= i, 15_000))) {
          failures.push(`reload ${i}: no "refract: reloaded" line within 15 s`);
          break;
        }
        const line = serve.reloads().last;
        if (!line.includes(i % 2 === 1 ? 'added other-b' : 'added other-a')) failures.push(`reload ${i}: ${line}`);
      } else if (i % 2 === 1) {
        const r = await api(apiBase, token, 'POST', `/zones/${ZONE.id}/spectrum/apps`, { protocol: `tcp/${portA}`, dns: { type: 'CNAME', name: 'api-app.example.com' }, origin_direct: origin });
        if (r.status !== 200) {
          failures.push(`change ${i}: create answered ${r.status} ${JSON.stringify(r.json?.errors)}`);
          break;
        }
        apiAppId = r.json.result.id as string;
      } else {
        const r = await api(apiBase, token, 'DELETE', `/zones/${ZONE.id}/spectrum/apps/${apiAppId}`);
        if (r.status !== 200) {
          failures.push(`change ${i}: delete answered ${r.status} ${JSON.stringify(r.json?.errors)}`);
          break;
        }
      }
      applyMs.push(performance.now() - start);
      applied++;
      if (i % o.probeEvery === 0 || i === o.changes) {
        probes++;
        peakFds = Math.max(peakFds, fdCount(serve.pid));
        const [live, dead] = o.mode === 'file' ? [up, down] : i % 2 === 1 ? [portA, undefined] : [undefined, portA];
        if (live !== undefined) {
          const got = await probe(live, `probe ${i}`);
          if (got !== `probe ${i}`) failures.push(`change ${i}: the app just added on ${live} answered ${JSON.stringify(got)}`);
        }
        if (dead !== undefined) {
          const got = await probe(dead, `probe ${i}`);
          if (got !== 'ECONNREFUSED') failures.push(`change ${i}: the app just removed on ${dead} answered ${JSON.stringify(got)}`);
        }
        const p = await load.call<{ sent: number; received: number; open: number; dropped: number }>({ cmd: 'streamsProgress' });
        say(`${i}/${o.changes} changes; streams open ${p.open}, dropped ${p.dropped}; ${(p.sent / 1e6).toFixed(1)} MB sent, ${(p.received / 1e6).toFixed(1)} MB back`);
        if (p.dropped > 0) failures.push(`after change ${i}: ${p.dropped} streams dropped`);
      }
    }
    const durationS = (performance.now() - t0) / 1_000;
    const rss = rssKiB(serve.pid);
    say('ending the streams');
    const reports = await load.call<StreamReport[]>({ cmd: 'streamsStop', timeoutMs: 30_000 });
    const code = await serve.stop();
    if (code !== 0) failures.push(`refract serve exited ${code}`);

    let dropped = 0;
    let bytesSent = 0;
    let bytesLost = 0;
    let bytesCorrupt = 0;
    const closing = new ClosingEvents(readEvents(events).filter((e) => e.Application === 'stream'));
    for (const r of reports) {
      bytesSent += r.sent;
      bytesLost += Math.max(0, r.sent - r.received);
      const bad = r.droppedEarly || !r.gotEnd || r.error !== undefined || r.received !== r.sent || r.mismatchAt >= 0;
      if (r.mismatchAt >= 0) bytesCorrupt += r.received - r.mismatchAt;
      if (bad) {
        dropped++;
        if (failures.length < 40) failures.push(`stream ${r.local}: sent ${r.sent}, got back ${r.received}${r.mismatchAt >= 0 ? `, first wrong byte at ${r.mismatchAt}` : ''}${r.droppedEarly ? ', closed before its end' : ''}${r.gotEnd ? '' : ', no FIN'}${r.error ? `, ${r.error}` : ''}`);
      }
      const e = closing.claim(r.local, portStream);
      if (e === undefined || e.Status !== 200 || e.CloseReason !== 'normal' || e.ClientBytes !== r.sent || e.OriginBytes !== r.sent) {
        if (failures.length < 60) failures.push(`stream ${r.local}: closing event ${JSON.stringify(e && { Status: e.Status, CloseReason: e.CloseReason, ClientBytes: e.ClientBytes, OriginBytes: e.OriginBytes })}, expected 200 normal with ${r.sent} bytes each way`);
      }
    }
    const extra = closing.unclaimed();
    if (extra.length > 0) failures.push(`${extra.length} more closing events on the stream app than streams, e.g. ${JSON.stringify(extra[0])}`);
    if (reports.length !== o.streams) failures.push(`${reports.length} stream reports for ${o.streams} streams`);
    if (applied !== o.changes) failures.push(`${applied} of ${o.changes} changes applied`);
    return {
      failures,
      mode: o.mode,
      changes: o.changes,
      applied,
      streams: reports.length,
      dropped,
      bytesSent,
      bytesLost,
      bytesCorrupt,
      applyP50Ms: percentile(applyMs, 50),
      applyP99Ms: percentile(applyMs, 99),
      durationS,
      probes,
      peakFds,
      rssMiB: Math.round(rss / 1024),
    };
  } finally {
    await serve.stop();
    load.close();
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
