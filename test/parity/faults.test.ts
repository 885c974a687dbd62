/**
 * Faults between Refract and the origin, on real loopback sockets and in the simulator (issue #16, item 6). Each
 * case dials the origin through `s.faulty(origin, toxics)`: on the node arm a Toxiproxy-style injector
 * (test/helpers/faults.ts) sits between the edge and the origin; on the sim arm the links edge ↔ origin carry the
 * same faults (`simLinkFaults`). `parity` asserts that both arms show the same outcome field by field: the closing
 * event's Event, Status, ErrorCode, CloseReason and byte counts, what the client saw, the decision trace.
 *
 * Timing fields are the one tolerance: `DurationMs` is not compared between the arms (real and virtual time differ,
 * and the injector's latency does not delay the handshake as the simulated link's does). Each case instead checks,
 * on each arm, that it lies in [lo − 2 ms, lo + 2,000 ms], lo being what the fault forces (the 2 ms: the event's
 * millisecond timestamps round; the 2 s: a loaded machine, and a bound on a fault that did not act).
 *
 * Edge ports 7330-7349 belong to this file (7330-7342 in use); origins and the injector bind port 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import type { Toxic } from '../helpers/faults.ts';
import { eventView, parity, probe, startEchoOrigin, startOrigin, traceEvents, type ArmRun, type ArmSetup, type Origin, type Probe, type ProbeOptions } from './harness.ts';

/** Below the lower bound by the event's ms rounding; above it by a loaded machine's delay (see the module comment). */
const ROUNDING_MS = 2;
const SLACK_MS = 2_000;

function config(s: ArmSetup, app: Record<string, unknown>, edge: Record<string, unknown> = {}): unknown {
  return {
    node: { id: 'parity-faults' },
    edge: { addresses: [s.edgeHost], ...edge },
    apps: [{ id: 'app', dns: { type: 'CNAME', name: 'parity-faults.example.test' }, ...app }],
  };
}

function dial(run: ArmRun, port: number, opts: ProbeOptions = {}): Probe {
  return probe(run.clientNet.connectTcp({ host: run.edgeHost, port }), opts);
}

function sendOnConnect(data: string | Buffer, end: boolean): NonNullable<ProbeOptions['on']> {
  return {
    connect: (p) => {
      p.conn.write(typeof data === 'string' ? Buffer.from(data) : data);
      if (end) p.conn.end();
    },
  };
}

/** An origin that writes `bytes` bytes as soon as it accepts, then waits (a banner larger than the cut). */
function startBannerOrigin(s: ArmSetup, bytes: number): Promise<Origin> {
  return startOrigin(s.originNet, s.originHost, 0, (p) => void p.conn.write(Buffer.alloc(bytes, 0x61)));
}

interface FaultCase {
  readonly seed: number;
  readonly port: number;
  readonly toxics: readonly Toxic[];
  /** Edge settings (idle_timeout_ms, …). */
  readonly edge?: Record<string, unknown>;
  /** The origin (default: echo). */
  readonly origin?: (s: ArmSetup) => Promise<Origin>;
  /** The client's behaviour. */
  readonly client: ProbeOptions;
  /** The fault's lower bound on DurationMs. */
  readonly minDurationMs: number;
  /** The fault leaves the origin's connection open for good: the test ends it after the closing event. */
  readonly endOrigin?: boolean;
  /** Whether the origin's own log is part of the outcome (not when the fault races the origin's close). */
  readonly originLog?: boolean;
}

/** Runs one fault case on both arms and returns the common outcome. */
async function faultCase(c: FaultCase): Promise<Record<string, unknown>> {
  let origin!: Origin;
  let dialled = 0;
  return parity(
    c.seed,
    async (s) => {
      origin = await (c.origin ?? ((x: ArmSetup) => startEchoOrigin(x.originNet, x.originHost)))(s);
      const target = await s.faulty({ host: s.originHost, port: origin.port }, c.toxics);
      dialled = target.port;
      return config(s, { protocol: `tcp/${c.port}`, origin_direct: [`tcp://${target.host}:${target.port}`] }, c.edge);
    },
    async (run) => {
      const cl = dial(run, c.port, c.client);
      await run.settle(cl.until('close'), 'client close');
      const closed = await run.settle(run.closings(1), 'closing event');
      const ev = closed[0]!;
      const o = await run.settle(origin.nth(0), 'origin accept');
      // A black hole leaves the origin's connection open: end it, as a test must. Every other case waits for the
      // origin's own close (a reset from the injector can come a little after the edge's closing event).
      if (c.endOrigin === true && !o.conn.closed) o.conn.destroy();
      await run.settle(o.until('close'), 'origin close');
      return {
        // When 'drain' fires between two reads differs between the worlds: left out, and the data runs merged.
        client: { log: cl.log.filter((x) => x !== 'drain').filter((x, i, all) => !(x === 'data' && all[i - 1] === 'data')), bytes: cl.bytes().length },
        origin: c.originLog === false ? undefined : o.log,
        events: run.events.map((e) => eventView(run, e, { origin: dialled })),
        trace: traceEvents(run),
        durationInWindow: ev.DurationMs >= c.minDurationMs - ROUNDING_MS && ev.DurationMs <= c.minDurationMs + SLACK_MS ? true : ev.DurationMs,
      };
    },
  );
}

/** The event view's closing event as [Event, Status, ErrorCode, CloseReason, ClientBytes, OriginBytes]. */
function closing(out: Record<string, unknown>): unknown[] {
  const events = out['events'] as Array<Record<string, unknown>>;
  assert.equal(events.length, 2, 'one connect and one closing event');
  assert.deepEqual([events[0]!['Event'], events[0]!['Status']], ['connect', 0]);
  const e = events[1]!;
  assert.equal(e['Origin'], 'origin:origin', 'the closing event names the origin the edge dialled');
  return [e['Event'], e['Status'], e['ErrorCode'], e['CloseReason'], e['ClientBytes'], e['OriginBytes']];
}

const FULL_LIFE = ['accept', 'resolved', 'dial', 'established', 'c2s_end', 's2c_end', 'close'];

test('latency (40 ± 10 ms each way): the bytes arrive late and the connection closes normally (200)', async () => {
  const out = await faultCase({
    seed: 301,
    port: 7330,
    toxics: [
      { type: 'latency', stream: 'upstream', latency: 40, jitter: 10 },
      { type: 'latency', stream: 'downstream', latency: 40, jitter: 10 },
    ],
    client: { on: sendOnConnect('hello latency', true) },
    minDurationMs: 60, // the echo crosses each direction once, each at least 30 ms
  });
  assert.deepEqual(closing(out), ['disconnect', 200, '', 'normal', 13, 13]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'end', 'close:false'], bytes: 13 });
  assert.deepEqual(out['origin'], ['data', 'end', 'close:false']);
  assert.deepEqual(out['trace'], FULL_LIFE);
  assert.equal(out['durationInWindow'], true);
});

test('latency longer than the idle timeout: the echo never arrives in time (200 idle_timeout, OriginBytes 0)', async () => {
  const out = await faultCase({
    seed: 302,
    port: 7331,
    toxics: [{ type: 'latency', stream: 'downstream', latency: 600 }],
    edge: { idle_timeout_ms: 150 },
    client: { on: sendOnConnect('ping', false) },
    minDurationMs: 150,
    originLog: false, // the late echo meets a closed socket: RST or FIN at the origin depends on the race
  });
  assert.deepEqual(closing(out), ['disconnect', 200, 'E_IDLE_TIMEOUT', 'idle_timeout', 4, 0]);
  assert.deepEqual(out['client'], { log: ['connect', 'end', 'close:false'], bytes: 0 });
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('bandwidth (100 KB/s toward the edge): 20,000 bytes echoed in no less than 200 ms, every byte counted (200)', async () => {
  const upload = Buffer.alloc(20_000, 0x42);
  const out = await faultCase({
    seed: 303,
    port: 7332,
    toxics: [{ type: 'bandwidth', stream: 'downstream', rate: 100 }],
    client: { on: sendOnConnect(upload, true) },
    minDurationMs: 200,
  });
  assert.deepEqual(closing(out), ['disconnect', 200, '', 'normal', 20_000, 20_000]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'end', 'close:false'], bytes: 20_000 });
  assert.deepEqual(out['origin'], ['data', 'end', 'close:false']);
  assert.deepEqual(out['trace'], FULL_LIFE);
  assert.equal(out['durationInWindow'], true);
});

test('reset_peer after 4,000 bytes toward the edge: 444 upstream_reset with OriginBytes 4000, the client reset', async () => {
  const out = await faultCase({
    seed: 304,
    port: 7333,
    toxics: [{ type: 'reset_peer', stream: 'downstream', bytes: 4_000 }],
    origin: (s) => startBannerOrigin(s, 10_000),
    client: {},
    minDurationMs: 0,
  });
  assert.deepEqual(closing(out), ['disconnect', 444, 'E_UPSTREAM_RESET', 'upstream_reset', 0, 4_000]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'error:ECONNRESET', 'close:true'], bytes: 4_000 });
  assert.deepEqual(out['origin'], ['error:ECONNRESET', 'close:true']);
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('reset_peer 200 ms after the connection opened: 444 upstream_reset after the echo (2 bytes each way)', async () => {
  const out = await faultCase({
    seed: 305,
    port: 7334,
    toxics: [{ type: 'reset_peer', stream: 'downstream', timeout: 200 }],
    client: { on: sendOnConnect('hi', false) },
    minDurationMs: 200,
  });
  assert.deepEqual(closing(out), ['disconnect', 444, 'E_UPSTREAM_RESET', 'upstream_reset', 2, 2]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'error:ECONNRESET', 'close:true'], bytes: 2 });
  assert.deepEqual(out['origin'], ['data', 'error:ECONNRESET', 'close:true']);
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('timeout (black hole both ways): the connect succeeds, nothing comes back, the idle timeout ends it (200, OriginBytes 0)', async () => {
  const out = await faultCase({
    seed: 306,
    port: 7335,
    toxics: [
      { type: 'timeout', stream: 'upstream', timeout: 0 },
      { type: 'timeout', stream: 'downstream', timeout: 0 },
    ],
    edge: { idle_timeout_ms: 200 },
    client: { on: sendOnConnect('into the void', false) },
    endOrigin: true,
    minDurationMs: 200,
  });
  assert.deepEqual(closing(out), ['disconnect', 200, 'E_IDLE_TIMEOUT', 'idle_timeout', 13, 0]);
  assert.deepEqual(out['client'], { log: ['connect', 'end', 'close:false'], bytes: 0 });
  assert.deepEqual(out['origin'], ['close:false']); // it never received a byte; the test ended it
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('slow_close (the origin FIN held 300 ms): a normal close, no sooner than the FIN (200)', async () => {
  const out = await faultCase({
    seed: 307,
    port: 7336,
    toxics: [{ type: 'slow_close', stream: 'downstream', delay: 300 }],
    client: { on: sendOnConnect('hello', true) },
    minDurationMs: 300,
  });
  assert.deepEqual(closing(out), ['disconnect', 200, '', 'normal', 5, 5]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'end', 'close:false'], bytes: 5 });
  assert.deepEqual(out['origin'], ['data', 'end', 'close:false']);
  assert.deepEqual(out['trace'], FULL_LIFE);
  assert.equal(out['durationInWindow'], true);
});

test('slow_close longer than the idle timeout: the idle timeout ends it before the FIN (200 idle_timeout, bytes both ways)', async () => {
  const out = await faultCase({
    seed: 308,
    port: 7337,
    toxics: [{ type: 'slow_close', stream: 'downstream', delay: 600 }],
    edge: { idle_timeout_ms: 150 },
    client: { on: sendOnConnect('hello', true) },
    minDurationMs: 150,
  });
  assert.deepEqual(closing(out), ['disconnect', 200, 'E_IDLE_TIMEOUT', 'idle_timeout', 5, 5]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'end', 'close:false'], bytes: 5 });
  assert.deepEqual(out['origin'], ['data', 'end', 'close:false']);
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 'c2s_end', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('half-open (the origin FIN never forwarded): the edge waits for it until the idle timeout (200 idle_timeout)', async () => {
  const out = await faultCase({
    seed: 309,
    port: 7338,
    toxics: [{ type: 'half_open', stream: 'downstream' }],
    edge: { idle_timeout_ms: 200 },
    client: { on: sendOnConnect('hello', true) },
    minDurationMs: 200,
  });
  assert.deepEqual(closing(out), ['disconnect', 200, 'E_IDLE_TIMEOUT', 'idle_timeout', 5, 5]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'end', 'close:false'], bytes: 5 });
  assert.deepEqual(out['origin'], ['data', 'end', 'close:false']);
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 'c2s_end', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('limit_data (1,000 bytes toward the edge): the edge sees a FIN after 1,000 bytes and closes normally (200), the origin is reset', async () => {
  const out = await faultCase({
    seed: 310,
    port: 7339,
    toxics: [{ type: 'limit_data', stream: 'downstream', bytes: 1_000 }],
    origin: (s) => startBannerOrigin(s, 10_000),
    client: {},
    minDurationMs: 0,
  });
  assert.deepEqual(closing(out), ['disconnect', 200, '', 'normal', 0, 1_000]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'end', 'close:false'], bytes: 1_000 });
  assert.deepEqual(out['origin'], ['error:ECONNRESET', 'close:true']);
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 's2c_end', 'c2s_end', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('reset_peer after 1,000 bytes toward the origin: the edge is reset as it writes (444), having read all 10,000 client bytes', async () => {
  const out = await faultCase({
    seed: 311,
    port: 7340,
    toxics: [{ type: 'reset_peer', stream: 'upstream', bytes: 1_000 }],
    client: { on: sendOnConnect(Buffer.alloc(10_000, 0x43), false) },
    minDurationMs: 0,
  });
  assert.deepEqual(closing(out), ['disconnect', 444, 'E_UPSTREAM_RESET', 'upstream_reset', 10_000, 0]);
  assert.deepEqual(out['client'], { log: ['connect', 'error:ECONNRESET', 'close:true'], bytes: 0 });
  assert.deepEqual(out['origin'], ['data', 'error:ECONNRESET', 'close:true']);
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('limit_data (1,000 bytes toward the origin): the origin gets 1,000 bytes and a FIN, the edge is reset (444)', async () => {
  const out = await faultCase({
    seed: 312,
    port: 7341,
    toxics: [{ type: 'limit_data', stream: 'upstream', bytes: 1_000 }],
    client: { on: sendOnConnect(Buffer.alloc(10_000, 0x44), false) },
    minDurationMs: 0,
  });
  assert.deepEqual(closing(out), ['disconnect', 444, 'E_UPSTREAM_RESET', 'upstream_reset', 10_000, 0]);
  assert.deepEqual(out['client'], { log: ['connect', 'error:ECONNRESET', 'close:true'], bytes: 0 });
  assert.deepEqual(out['origin'], ['data', 'end', 'close:false']);
  assert.deepEqual(out['trace'], ['accept', 'resolved', 'dial', 'established', 'close']);
  assert.equal(out['durationInWindow'], true);
});

test('bandwidth (1,000 KB/s both ways) under backpressure: 300,000 bytes echoed whole, in no less than 300 ms (200)', async () => {
  const out = await faultCase({
    seed: 313,
    port: 7342,
    toxics: [
      { type: 'bandwidth', stream: 'upstream', rate: 1_000 },
      { type: 'bandwidth', stream: 'downstream', rate: 1_000 },
    ],
    client: { on: sendOnConnect(Buffer.alloc(300_000, 0x45), true) },
    minDurationMs: 300,
  });
  assert.deepEqual(closing(out), ['disconnect', 200, '', 'normal', 300_000, 300_000]);
  assert.deepEqual(out['client'], { log: ['connect', 'data', 'end', 'close:false'], bytes: 300_000 });
  assert.deepEqual(out['origin'], ['data', 'end', 'close:false']);
  assert.deepEqual(out['trace'], FULL_LIFE);
  assert.equal(out['durationInWindow'], true);
});
