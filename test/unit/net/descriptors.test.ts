/**
 * Descriptor exhaustion on real sockets (docs/hardening.md, "Overload and descriptors"): an EdgeNode in a child
 * process under `ulimit -n 96`, clients and origin in this process (no such limit). Every client connection must be
 * either served (its bytes echoed) or counted by the guard; origin-side EMFILE gets its own status and code; each
 * episode is logged once, not once per connection. Also the guard's arithmetic and the start-up check, in-process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkNofile, countOpenDescriptors, DescriptorGuard, readNofileLimit } from '../../../src/net/node/descriptors.ts';

const LIMIT = 96;
const CLIENTS = 300;

interface ChildReport {
  stats: { limit: number; reserve: number; acceptRefused: number; upstreamFailed: number; episodes: number; paused: boolean };
  connects: number;
  closing: Array<{ status: number; code: string }>;
  logs: Array<Record<string, unknown>>;
  originFailLogs: number;
}

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

/** Starts the child under the low limit; returns its edge port, a way to ask for its report, and a kill. */
async function startChild(
  originPort: number,
  guard: 'on' | 'off',
  metrics = false,
): Promise<{ port: number; metricsPort: number | undefined; fill(free: number): Promise<void>; report(): Promise<ChildReport>; kill(): void }> {
  const edgePort = await freePort();
  const arg = JSON.stringify({ originPort, edgePort, guard, metrics });
  const child = spawn('sh', ['-c', `ulimit -n ${LIMIT} && exec "$0" --import tsx test/helpers/emfile-edge.ts "$1"`, process.execPath, arg], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  const { port, metricsPort } = JSON.parse(String(first.value)) as { port: number; metricsPort?: number };
  return {
    port,
    metricsPort,
    async fill(free: number) {
      child.stdin!.write(`fill ${free}\n`);
      await lines.next();
    },
    async report() {
      child.stdin!.write('stats\n');
      const l = await lines.next();
      return JSON.parse(String(l.value)) as ChildReport;
    },
    kill() {
      child.kill('SIGKILL');
    },
  };
}

/** An echo origin that holds every connection open. */
async function holdingOrigin(): Promise<{ port: number; close(): void }> {
  const socks: net.Socket[] = [];
  const srv = net.createServer((s) => {
    socks.push(s);
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close() {
      for (const s of socks) s.destroy();
      srv.close();
    },
  };
}

/** Opens `n` client connections (all at once), each sends 4 bytes; resolves with how many got them back, held open. */
async function clients(port: number, n: number): Promise<{ served: number; failed: number; close(): void }> {
  const socks: net.Socket[] = [];
  const results = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<boolean>((res) => {
          const c = net.connect(port, '127.0.0.1');
          socks.push(c);
          let got = 0;
          c.on('data', (d) => {
            got += d.length;
            if (got >= 4) res(true);
          });
          c.on('error', () => res(false));
          c.on('close', () => res(false));
          c.on('connect', () => c.write('ping'));
          setTimeout(() => res(false), 8_000).unref();
        }),
    ),
  );
  const served = results.filter(Boolean).length;
  return { served, failed: n - served, close: () => socks.forEach((s) => s.destroy()) };
}

test('accept side: under a low ulimit every connection is served or counted, one episode logged', { timeout: 60_000 }, async () => {
  const origin = await holdingOrigin();
  const child = await startChild(origin.port, 'on');
  try {
    const c = await clients(child.port, CLIENTS);
    const rep = await child.report();
    c.close();
    if (process.env.REFRACT_TEST_FIGURES) console.log(`served ${c.served}, failed ${c.failed}, refused ${rep.stats.acceptRefused}, episodes ${rep.stats.episodes}`);
    assert.ok(c.served > 0, 'some connections are served');
    assert.ok(c.failed > 0, `the limit must bite (served ${c.served} of ${CLIENTS})`);
    // Nothing hidden: each connection not served was refused by the guard and counted.
    assert.equal(rep.stats.acceptRefused, c.failed, `refused ${rep.stats.acceptRefused}, failed ${c.failed}`);
    // The refused never reached the engine: events only for the served.
    assert.equal(rep.connects, c.served);
    assert.equal(rep.stats.upstreamFailed, 0);
    const exhausted = rep.logs.filter((l) => l['event'] === 'descriptors.exhausted');
    assert.equal(exhausted.length, rep.stats.episodes);
    assert.ok(rep.stats.episodes >= 1 && rep.stats.episodes < c.failed, `one line per episode, not per connection (${rep.stats.episodes} episodes)`);
    assert.equal(exhausted[0]!['code'], 'E_ACCEPT_EMFILE');
  } finally {
    child.kill();
    origin.close();
  }
});

/** GET /metrics on loopback; undefined when the connection fails (the child may still be short of descriptors). */
async function scrape(port: number): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2_000) });
    return res.status === 200 ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

/** The value of one sample (`name{labels} value`) in Prometheus text; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('after an episode, accepting resumes once descriptors are free; /metrics reports what the guard counted', { timeout: 60_000 }, async () => {
  const origin = await holdingOrigin();
  const child = await startChild(origin.port, 'on', true);
  try {
    const first = await clients(child.port, 120);
    assert.ok(first.failed > 0);
    first.close();
    // Give the guard's probe (50 ms doubling) time to see the freed descriptors; bounded by the attempts.
    let again = { served: 0, failed: 0, close() {} };
    for (let i = 0; i < 40 && again.served === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      again.close();
      again = await clients(child.port, 1);
    }
    again.close();
    // The metrics listener, after the run (bounded retries: a scrape's own connection needs a descriptor too).
    let text: string | undefined;
    for (let i = 0; i < 20 && text === undefined; i++) {
      text = await scrape(child.metricsPort!);
      if (text === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    const rep = await child.report();
    assert.equal(again.served, 1, 'a connection is served again after the episode');
    assert.ok(rep.logs.some((l) => l['event'] === 'descriptors.recovered'), 'the end of the episode is logged');
    assert.ok(text !== undefined, '/metrics answered');
    assert.ok(rep.stats.acceptRefused > 0);
    assert.equal(sample(text, 'refract_descriptor_exhaustion_connections_total{side="accept"}'), rep.stats.acceptRefused);
    assert.equal(sample(text, 'refract_descriptor_exhaustion_connections_total{side="upstream"}'), rep.stats.upstreamFailed);
    assert.equal(sample(text, 'refract_descriptor_exhaustion_episodes_total'), rep.stats.episodes);
    assert.equal(sample(text, 'refract_descriptor_accept_paused'), 0);
    assert.equal(sample(text, 'refract_descriptor_limit{kind="limit"}'), LIMIT);
    assert.equal(sample(text, 'refract_descriptor_limit{kind="reserve"}'), rep.stats.reserve);
  } finally {
    child.kill();
    origin.close();
  }
});

test('origin side: EMFILE on the origin connect is 503 E_UPSTREAM_EMFILE, counted, logged per episode', { timeout: 60_000 }, async () => {
  const origin = await holdingOrigin();
  // Guard off (its limit far above the real one), and the child's descriptors filled but for a few: each accept
  // takes one, and the origin connects that follow find none.
  const child = await startChild(origin.port, 'off');
  try {
    for (let round = 0; round < 3; round++) {
      await child.fill(3);
      const c = await clients(child.port, 3);
      c.close();
    }
    const rep = await child.report();
    const emfile = rep.closing.filter((e) => e.code === 'E_UPSTREAM_EMFILE');
    assert.ok(emfile.length > 0, `some origin connects hit EMFILE: ${JSON.stringify(rep.closing.slice(0, 5))}`);
    assert.ok(emfile.every((e) => e.status === 503));
    assert.equal(rep.closing.filter((e) => e.status === 520).length, 0, 'no generic 520');
    // Counted by the network; connects with several attempts may fail more than once per connection.
    assert.ok(rep.stats.upstreamFailed >= emfile.length);
    assert.equal(rep.originFailLogs, 0, 'no info line per connection');
    assert.equal(rep.logs.filter((l) => l['event'] === 'descriptors.exhausted').length, rep.stats.episodes);
    assert.ok(rep.stats.episodes >= 1);
  } finally {
    child.kill();
    origin.close();
  }
});

test('guard: admits far from the limit without reading, refuses inside the reserve, probes back with backoff', () => {
  let open = 10;
  let reads = 0;
  let t = 0;
  const timers: Array<{ at: number; fn: () => void }> = [];
  const lines: string[] = [];
  const g = new DescriptorGuard({
    limit: 100,
    reserve: 10,
    count: () => {
      reads++;
      return open;
    },
    log: { warn: (o) => lines.push((o as { event: string }).event), info: (o) => lines.push((o as { event: string }).event) },
    now: () => t,
    setTimer: (ms, fn) => timers.push({ at: t + ms, fn }),
  });
  assert.equal(reads, 1);
  for (let i = 0; i < 50; i++) {
    g.opened();
    assert.equal(g.admit(), true);
  }
  assert.equal(reads, 1, 'no reading while the estimate is far from the limit');
  open = 95; // something else took descriptors
  t += 20;
  for (let i = 0; i < 30 && g.admit(); i++) g.opened();
  assert.equal(g.paused, true);
  const refusedBefore = g.acceptRefused;
  for (let i = 0; i < 100; i++) assert.equal(g.admit(), false);
  assert.equal(g.acceptRefused, refusedBefore + 100);
  assert.deepEqual(lines, ['descriptors.exhausted'], 'one line for the whole episode');
  // Probes back off while still short.
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    const next = timers.shift()!;
    delays.push(next.at - t);
    t = next.at;
    next.fn();
  }
  assert.deepEqual(delays, [50, 100, 200]);
  open = 30;
  const next = timers.shift()!;
  t = next.at;
  next.fn();
  assert.equal(g.paused, false);
  assert.deepEqual(lines, ['descriptors.exhausted', 'descriptors.recovered']);
  g.opened();
  assert.equal(g.admit(), true);
  g.upstreamError('ECONNREFUSED');
  assert.equal(g.upstreamFailed, 0);
  g.upstreamError('EMFILE');
  assert.equal(g.upstreamFailed, 1);
  assert.equal(g.paused, true, 'an origin EMFILE pauses accepting too');
});

test('limits from /proc: the soft and hard RLIMIT_NOFILE, the descriptors open', () => {
  const dir = mkdtempSync(join(tmpdir(), 'refract-limits-'));
  const f = join(dir, 'limits');
  writeFileSync(f, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n');
  assert.deepEqual(readNofileLimit(f), { soft: 1024, hard: 524288 });
  writeFileSync(f, 'Max open files            unlimited            unlimited            files\n');
  assert.deepEqual(readNofileLimit(f), { soft: Infinity, hard: Infinity });
  assert.equal(readNofileLimit(join(dir, 'missing')), undefined);
  const fds = join(dir, 'fd');
  mkdirSync(fds);
  for (let i = 0; i < 5; i++) writeFileSync(join(fds, String(i)), '');
  assert.equal(countOpenDescriptors(fds), 4);
  if (process.platform === 'linux') assert.ok((countOpenDescriptors() ?? 0) > 3);
});

test('start-up check: warns when the soft limit cannot hold listeners, connections and flows', () => {
  const limit = { soft: 1024, hard: 524288 };
  const low = checkNofile({ listeners: 4, maxConnections: undefined, udpMaxFlows: 100_000, tcpApps: true, udpApps: false, limit });
  assert.ok(low);
  assert.equal(low.assumed, true);
  assert.equal(low.needed, 4 + 2 * 4096 + 64);
  assert.equal(checkNofile({ listeners: 4, maxConnections: 400, udpMaxFlows: 100_000, tcpApps: true, udpApps: false, limit }), undefined);
  const udp = checkNofile({ listeners: 4, maxConnections: 400, udpMaxFlows: 100_000, tcpApps: true, udpApps: true, limit });
  assert.equal(udp?.needed, 4 + 800 + 100_000 + 64);
  assert.equal(checkNofile({ listeners: 4, maxConnections: undefined, udpMaxFlows: 1, tcpApps: true, udpApps: false, limit: { soft: Infinity, hard: Infinity } }), undefined);
});
