/**
 * Attackers do not set the log volume (docs/hardening.md, "Logs and events"): on the simulator, in virtual time,
 * a flood of hostile connections (garbage instead of a PROXY header, connections to a dead origin) writes at most
 * `log.rate_limit.lines` lines per cause per interval, then one summary line per cause and window; the events keep
 * every connection.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/log.ts';
import type { Clock } from '../../../src/net/ports.ts';
import { createSim } from '../../../src/net/sim/index.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { LogLimiter } from '../../../src/streams/log-limit.ts';
import type { SpectrumEvent } from '../../../src/streams/events.ts';
import { mustConfig } from '../../helpers/edge.ts';
import { createManualClock } from '../../helpers/manual-clock.ts';

const EDGE_IP = '10.9.0.1';
const enc = new TextEncoder();

type Line = { msg: string; cause?: string; suppressed?: number; intervalMs?: number; time: number; status?: number };

function memoryLog(clock: Clock): { log: ReturnType<typeof createLogger>; lines: Line[] } {
  const lines: Line[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Line);
      cb();
    },
  });
  // Timestamps from the virtual clock, so the windows can be checked in virtual time.
  return { log: createLogger({ level: 'info', destination: dest, clock }), lines };
}

describe('LogLimiter', () => {
  it('allows the first K lines of a cause per window, counts the rest, and sums them up once at the window end', () => {
    const clock = createManualClock();
    const summaries: Array<[string, number, number, number]> = [];
    const l = new LogLimiter({ lines: 3, intervalMs: 1_000 }, clock, (c, n, ms) => summaries.push([c, n, ms, clock.now()]));
    const allowed = (cause: string, n: number): number => Array.from({ length: n }, () => l.allow(cause)).filter(Boolean).length;
    assert.equal(allowed('a', 10), 3);
    assert.equal(allowed('b', 2), 2);
    clock.advance(500);
    assert.equal(allowed('a', 5), 0);
    assert.deepEqual(summaries, []);
    clock.advance(500);
    assert.deepEqual(summaries, [['a', 12, 1_000, 1_000]]);
    // A new window: K more, and b (which suppressed nothing) ended without a summary.
    assert.equal(allowed('a', 4), 3);
    clock.advance(2_000);
    assert.deepEqual(summaries, [['a', 12, 1_000, 1_000], ['a', 1, 1_000, 2_000]]);
    assert.equal(l.suppressed, 13);
    assert.equal(clock.pending, 0);
  });

  it('lines: 0 allows everything; flush() sums up open windows at once', () => {
    const clock = createManualClock();
    const summaries: string[] = [];
    const l = new LogLimiter({ lines: 0, intervalMs: 1_000 }, clock, (c, n) => summaries.push(`${c}:${n}`));
    for (let i = 0; i < 100; i++) assert.equal(l.allow('x'), true);
    l.configure({ lines: 1, intervalMs: 1_000 });
    for (let i = 0; i < 5; i++) l.allow('x');
    l.flush();
    assert.deepEqual(summaries, ['x:4']);
    assert.equal(clock.pending, 0);
  });
});

describe('the connection path logs at most K lines per cause per interval (simulator, virtual time)', () => {
  it('1,000 garbage PROXY headers and 1,000 dead-origin connections: every event kept, log lines bounded, summaries exact', async () => {
    const sim = createSim({ seed: 16 });
    const edgeH = sim.host('edge', { addresses: [EDGE_IP] });
    sim.host('origin', { addresses: ['198.51.100.2'] });
    const clientH = sim.host('client', { addresses: ['203.0.113.5'] });
    sim.link('client', 'edge', { latencyMs: 1 });
    sim.link('edge', 'origin', { latencyMs: 1 });
    const cfg = mustConfig({
      edge: { addresses: [EDGE_IP], accept_proxy: { trusted: ['203.0.113.0/24'], timeout_ms: 1_000 }, connect_timeout_ms: 500, max_connect_attempts: 1 },
      log: { rate_limit: { lines: 5, interval_ms: 10_000 } },
      apps: [
        { id: 'pp', protocol: 'tcp/80', dns: { name: 'pp.example.test' }, origin_direct: ['tcp://198.51.100.2:7000'], proxy_protocol: 'v1' },
        // accept_proxy covers every port: these clients send a valid header, then find no origin.
        { id: 'dead', protocol: 'tcp/81', dns: { name: 'dead.example.test' }, origin_direct: ['tcp://198.51.100.2:7001'] },
      ],
    });
    const { log, lines } = memoryLog(sim.clock);
    const edge = new EdgeNode({ net: edgeH, log }, cfg);
    const events: SpectrumEvent[] = [];
    edge.events.events$.subscribe((e) => events.push(e));
    const run = (ms: number) => sim.runUntilIdleAsync({ maxSteps: 10_000_000, maxTime: ms });
    const applied = edge.apply(cfg);
    await run(100);
    await applied;

    // 1,000 of each over 20 s of virtual time: two full windows of 10 s.
    const N = 1_000;
    for (let i = 0; i < N; i++) {
      sim.clock.setTimer(i * 20, () => {
        const bad = clientH.connectTcp({ host: EDGE_IP, port: 80 });
        bad.setHandlers({ connect: () => bad.write(enc.encode('GET / HTTP/1.1\r\n\r\n')), close: () => {}, error: () => {} });
        const dead = clientH.connectTcp({ host: EDGE_IP, port: 81 });
        dead.setHandlers({ connect: () => dead.write(enc.encode('PROXY TCP4 203.0.113.9 10.9.0.1 4242 81\r\nhello')), close: () => {}, error: () => {} });
      });
    }
    await run(40_000);

    const closing = events.filter((e) => e.Event !== 'connect');
    assert.equal(closing.filter((e) => e.Application === 'pp').length, N, 'every garbage connection has its event');
    assert.equal(closing.filter((e) => e.Application === 'dead').length, N, 'every dead-origin connection has its event');

    // Per cause: the lines written and the summary lines' counts add up to the connections, and no 10 s window has
    // more than 5 lines of a cause.
    const perCause = new Map<string, { written: number[]; suppressed: number }>();
    const causeOf = (l: Line): string | undefined =>
      l.msg === 'connection closed' ? `conn.closed.${l.status}` : l.msg === 'origin connect failed' ? 'origin.connect_failed' : l.msg === 'origin connect timed out' ? 'origin.connect_timeout' : undefined;
    for (const l of lines) {
      const cause = l.cause ?? causeOf(l);
      if (cause === undefined) continue;
      const c = perCause.get(cause) ?? { written: [], suppressed: 0 };
      perCause.set(cause, c);
      if (l.suppressed !== undefined) {
        assert.equal(l.msg, `${cause}: ${l.suppressed} more in the last 10 s`);
        c.suppressed += l.suppressed;
      } else {
        c.written.push(l.time);
      }
    }
    const garbageCause = `conn.closed.${closing.find((e) => e.Application === 'pp')!.Status}`;
    const deadCause = `conn.closed.${closing.find((e) => e.Application === 'dead')!.Status}`;
    assert.notEqual(garbageCause, deadCause);
    for (const cause of [garbageCause, deadCause]) {
      const c = perCause.get(cause);
      assert.ok(c, `lines of ${cause}`);
      assert.equal(c.written.length + c.suppressed, N, `${cause}: written + summed up = connections`);
      assert.ok(c.written.length <= 5 * 3, `${cause}: ${c.written.length} lines over at most 3 windows`);
      // Windows open at a cause's first line and last 10 s; the next opens at the first line after that.
      for (let i = 0; i < c.written.length; ) {
        const start = c.written[i]!;
        const inWindow = c.written.filter((u) => u >= start && u < start + 10_000).length;
        assert.ok(inWindow <= 5, `${cause}: ${inWindow} lines in the window opened at ${start}`);
        i += inWindow;
      }
    }
    const dial = perCause.get('origin.connect_failed') ?? perCause.get('origin.connect_timeout');
    assert.ok(dial);
    assert.equal(dial.written.length + dial.suppressed, N);
    assert.ok(lines.length < 60, `${lines.length} log lines for ${2 * N} hostile connections`);
    assert.equal(edge.logLimit.suppressed, [...perCause.values()].reduce((n, c) => n + c.suppressed, 0));

    const stopped = edge.shutdown(0);
    await run(1_000);
    await stopped;
  });
});
