/**
 * The two arms of the parity suite: one test body, written once against the `Network` port, runs on real loopback
 * sockets (`nodeArm`) and on the simulator (`simArm`), and both must show the same observable outcome.
 *
 * - node arm: client, edge and origin all on 127.0.0.1. Origin listeners and UDP sockets bind port 0; edge ports are
 *   fixed and lie in 7800-7899 (this suite's block: TCP cases 7800-7869 and 7899, UDP cases 7870-7898), and in
 *   7330-7349 for the fault cases (faults.test.ts). Waits are
 *   real and bounded (`settle` times out).
 * - sim arm: hosts 'client' 203.0.113.10, 'edge' 198.51.100.1, 'origin' 198.51.100.2 on a fixed seed. `settle`
 *   runs the simulation one timer at a time (draining promise continuations in between) until the promise settles;
 *   a simulation that goes idle first is a failure, not a hang.
 *
 * `close()` ends every run with the leak check: the engine has no open connection and no UDP flow, every Conn the
 * test opened or accepted is closed, and on the sim arm, after running idle, netstat is empty (no TCP connection,
 * listener or UDP socket: the engine closed its flows' upstream sockets and its edge sockets) and no timer is pending.
 * UDP sockets the test bound are closed by `close()` itself (a datagram socket has no peer to wait for).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { pino } from 'pino';
import { EdgeNode } from '../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../src/net/node/network.ts';
import { createSim, DEFAULT_LINK, type Sim } from '../../src/net/sim/index.ts';
import { simLinkFaults, startFaultProxy, type Toxic } from '../helpers/faults.ts';
import type { CertSource, Conn, Datagram, Network, SocketAddress, TcpListener, UdpSocket } from '../../src/net/ports.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeCertSource } from '../../src/net/node/cert-store.ts';
import { createSimCertSource } from '../../src/net/sim/sim-certs.ts';

/** One local-CA data directory per test process for the node arm (the CA is created on first use, then reused). */
let nodeDataDir: string | undefined;
const nodeCerts = (): CertSource => createNodeCertSource({ dataDir: (nodeDataDir ??= mkdtempSync(join(tmpdir(), 'refract-parity-ca-'))) });
import type { SpectrumEvent } from '../../src/streams/events.ts';
import { traceLine, type TraceEventName, type TraceRecord } from '../../src/streams/trace.ts';
import { mustConfig } from '../helpers/edge.ts';

export type ArmName = 'node' | 'sim';

/** Addresses of one arm: where the edge listens, where origins listen, where clients connect from. */
export interface ArmAddresses {
  readonly edgeHost: string;
  readonly originHost: string;
  readonly clientHost: string;
}

/** What a config builder may use: the arm's addresses and the origin side's Network (to start origins first). */
export interface ArmSetup extends ArmAddresses {
  readonly arm: ArmName;
  readonly clientNet: Network;
  readonly originNet: Network;
  /**
   * An origin `host:port` whose connects are never answered (node: a listener with a full accept queue; sim: a
   * listener behind a partition edge ↔ origin). Released by `close()`.
   */
  blackHole(): Promise<{ host: string; port: number }>;
  /**
   * An echo origin that drops handshakes for `delayMs` (node: a full accept queue that a Python helper drains after
   * `delayMs`; sim: a partition edge ↔ origin healed after `delayMs`). A dial made meanwhile connects at its first SYN
   * retransmission, 1 s after it started (Linux and the simulator alike). Released by `close()`.
   */
  slowOrigin(delayMs: number): Promise<{ host: string; port: number }>;
  /**
   * `target` (an origin on this arm) as the edge should dial it with `toxics` between the two (node: the fault
   * injector of test/helpers/faults.ts in front of it on loopback; sim: `target` itself, with the links edge → origin
   * and origin → edge configured with `simLinkFaults(toxics)`). Released by `close()` (node: the injector closes;
   * sim: both links go back to the defaults).
   */
  faulty(target: { host: string; port: number }, toxics: readonly Toxic[]): Promise<{ host: string; port: number }>;
}

/** Builds the raw (unvalidated) config once the arm is up; may start origins through `setup.originNet`. */
export type ConfigBuilder = (setup: ArmSetup) => unknown;

export interface ArmRun extends ArmSetup {
  readonly edge: EdgeNode;
  /** Spectrum events of the edge, in order. */
  readonly events: SpectrumEvent[];
  /** Decision-trace records of the edge, in order. */
  readonly trace: TraceRecord[];
  /**
   * Waits for `p` (node: at most `timeoutMs` real ms; sim: runs the simulation until `p` settles, bounded in steps
   * and virtual time). Rejects with a message naming `what` when the bound is hit first.
   */
  settle<T>(p: Promise<T>, what: string): Promise<T>;
  /** Lets `ms` pass on the arm's clock (node: real time; sim: virtual time, the simulation running meanwhile). */
  sleep(ms: number): Promise<void>;
  /** Resolves once `n` closing events (anything but `connect`) have been emitted in total. */
  closings(n: number): Promise<SpectrumEvent[]>;
  /** Resolves once the decision trace holds `n` records of `event` in total. */
  traced(event: TraceEventName, n?: number): Promise<void>;
  /** Shuts the edge down and checks that nothing leaked. Idempotent. */
  close(): Promise<void>;
}

export interface Arm {
  readonly name: ArmName;
  start(build: ConfigBuilder): Promise<ArmRun>;
}

export const SIM_ADDRESSES: ArmAddresses = Object.freeze({ clientHost: '203.0.113.10', edgeHost: '198.51.100.1', originHost: '198.51.100.2' });
export const NODE_ADDRESSES: ArmAddresses = Object.freeze({ clientHost: '127.0.0.1', edgeHost: '127.0.0.1', originHost: '127.0.0.1' });

/** Bounds of the sim arm's `settle`: timers fired, and virtual ms from the call. */
const SIM_MAX_STEPS = 500_000;
const SIM_MAX_TIME_MS = 600_000; // 10 virtual minutes: far beyond any timeout a case sets
/** Real-time bound of the node arm's waits. */
const NODE_TIMEOUT_MS = 5_000;
/** Real-time bound of the node arm's config builder, which may start a Python helper (slow on a loaded machine). */
const NODE_SETUP_TIMEOUT_MS = 30_000;

// ── Network tracking: the leak check needs every Conn and listener a test body opened ──────────────────────────────

interface Tracked {
  readonly conns: Conn[];
  readonly listeners: Array<{ l: TcpListener; closed: boolean }>;
  readonly udp: Array<{ s: UdpSocket; closed: boolean }>;
}

/**
 * Delegates to `inner`, remembering each Conn (dialled or accepted), each listener and each UDP socket. Listeners and
 * UDP sockets are wrapped only to know whether the body closed them already; Conns are handed out as they are.
 */
function tracking(inner: Network, t: Tracked): Network {
  return {
    get clock() {
      return inner.clock;
    },
    get random() {
      return inner.random;
    },
    get tls() {
      return inner.tls;
    },
    async listenTcp(opts, onConnection) {
      const l = await inner.listenTcp(opts, (c) => {
        t.conns.push(c);
        onConnection(c);
      });
      const entry = { l, closed: false };
      t.listeners.push(entry);
      return {
        address: l.address,
        close() {
          entry.closed = true;
          return l.close();
        },
      };
    },
    connectTcp(opts) {
      const c = inner.connectTcp(opts);
      t.conns.push(c);
      return c;
    },
    resolve: (name, type) => inner.resolve(name, type),
    async bindUdp(opts) {
      const s = await inner.bindUdp(opts);
      const entry = { s, closed: false };
      t.udp.push(entry);
      return {
        get local() {
          return s.local;
        },
        setHandler: (h) => s.setHandler(h),
        send: (data, port, address) => s.send(data, port, address),
        close() {
          entry.closed = true;
          s.close();
        },
      };
    },
  };
}

function openConns(t: Tracked): string[] {
  return t.conns.filter((c) => !c.closed).map((c) => `${c.local.address}:${c.local.port}>${c.remote.address}:${c.remote.port}`);
}

// ── shared run plumbing ─────────────────────────────────────────────────────────────────────────────────────────────

type FixtureMaker = (originNet: Network) => Promise<{ host: string; port: number; release(): Promise<void> | void }>;
type FaultMaker = (target: { host: string; port: number }, toxics: readonly Toxic[]) => ReturnType<FixtureMaker>;

async function buildRun(
  name: ArmName,
  addrs: ArmAddresses,
  nets: { client: Network; edge: Network; origin: Network },
  driver: {
    settle: ArmRun['settle'];
    settleSetup: ArmRun['settle'];
    blackHole: FixtureMaker;
    slowOrigin: (originNet: Network, delayMs: number) => ReturnType<FixtureMaker>;
    faulty: FaultMaker;
    /** Edge certificates: the node arm's local CA in a temp dir, the sim arm's descriptors. */
    certs: CertSource;
  },
  /** The arm's own leak check, after the edge is shut down and every listener closed. */
  afterShutdown: (t: Tracked) => Promise<void>,
  build: ConfigBuilder,
): Promise<ArmRun> {
  const tracked: Tracked = { conns: [], listeners: [], udp: [] };
  const clientNet = tracking(nets.client, tracked);
  const originNet = tracking(nets.origin, tracked);
  const releases: Array<() => Promise<void> | void> = [];
  const setup: ArmSetup = {
    arm: name,
    ...addrs,
    clientNet,
    originNet,
    async blackHole() {
      const h = await driver.blackHole(originNet);
      releases.push(() => h.release());
      return { host: h.host, port: h.port };
    },
    async slowOrigin(delayMs) {
      const h = await driver.slowOrigin(originNet, delayMs);
      releases.push(() => h.release());
      return { host: h.host, port: h.port };
    },
    async faulty(target, toxics) {
      const h = await driver.faulty(target, toxics);
      releases.push(() => h.release());
      return { host: h.host, port: h.port };
    },
  };
  const raw = await driver.settleSetup(Promise.resolve(build(setup)), 'config builder');
  const config = mustConfig(raw);
  const edge = new EdgeNode({ net: nets.edge, log: pino({ level: process.env.REFRACT_TEST_LOG ?? 'silent' }), certs: driver.certs }, config);
  const events: SpectrumEvent[] = [];
  const trace: TraceRecord[] = [];
  const waiters: Array<{ n: number; res: (e: SpectrumEvent[]) => void }> = [];
  const closingEvents = (): SpectrumEvent[] => events.filter((e) => e.Event !== 'connect');
  edge.events.events$.subscribe((e) => {
    events.push(e);
    const closed = closingEvents();
    for (const w of [...waiters]) {
      if (closed.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.res(closed);
      }
    }
  });
  const traceWaiters: Array<{ event: TraceEventName; n: number; res: () => void }> = [];
  const tracedCount = (event: TraceEventName): number => trace.filter((r) => r.event === event).length;
  edge.trace.records$.subscribe((r) => {
    trace.push(r);
    for (const w of [...traceWaiters]) {
      if (tracedCount(w.event) >= w.n) {
        traceWaiters.splice(traceWaiters.indexOf(w), 1);
        w.res();
      }
    }
  });
  await driver.settle(edge.apply(config), 'edge.apply');
  let closing: Promise<void> | undefined;
  return {
    ...setup,
    edge,
    events,
    trace,
    settle: driver.settle,
    sleep: (ms) => driver.settle(new Promise<void>((res) => nets.client.clock.setTimer(ms, res)), `sleep ${ms} ms`),
    closings(n) {
      const closed = closingEvents();
      if (closed.length >= n) return Promise.resolve(closed);
      return new Promise((res) => waiters.push({ n, res }));
    },
    traced(event, n = 1) {
      if (tracedCount(event) >= n) return Promise.resolve();
      return new Promise((res) => traceWaiters.push({ event, n, res }));
    },
    close() {
      closing ??= (async () => {
        try {
          // The leak check proper: a body must leave the engine with nothing open before shutdown forces it.
          assert.deepEqual(edge.tcp.states(), [], `${name} arm: connections still open in the engine before shutdown`);
          assert.equal(edge.udp.activeCount, 0, `${name} arm: UDP flows still open in the engine before shutdown (wait for their idle expiry)`);
          await driver.settle(edge.shutdown(50), 'edge.shutdown');
          assert.equal(edge.tcp.activeCount, 0, `${name} arm: connections left open after shutdown`);
          for (const entry of tracked.listeners) {
            if (entry.closed) continue;
            entry.closed = true;
            await driver.settle(entry.l.close(), 'origin listener close');
          }
          for (const entry of tracked.udp) {
            if (entry.closed) continue;
            entry.closed = true;
            entry.s.close();
          }
        } finally {
          for (const r of releases.splice(0)) await r();
        }
        await afterShutdown(tracked);
      })();
      return closing;
    },
  };
}

// ── node arm ────────────────────────────────────────────────────────────────────────────────────────────────────────

/** Real-time bounded wait. */
function nodeSettle(timeoutMs: number): ArmRun['settle'] {
  return async <T>(p: Promise<T>, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`node arm: ${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([p, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * A loopback black hole: a Python listener with backlog 0 whose accept queue is filled by four unaccepted
 * connections, so the kernel drops further SYNs and a connect hangs (there is no portable way to do this from Node).
 * With `drainAfterMs`, the helper then closes the fillers and accepts and echoes every connection (one thread each).
 */
async function pythonBlackHole(drainAfterMs?: number): Promise<{ host: string; port: number; release(): void }> {
  const py = spawn('python3', ['-c', `
import socket, sys, threading, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
print(s.getsockname()[1], flush=True)
fill = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', s.getsockname()[1]))
    except BlockingIOError: pass
    fill.append(c)
if len(sys.argv) < 2:
    time.sleep(60); sys.exit(0)
time.sleep(float(sys.argv[1]) / 1000)
for c in fill: c.close()
def echo(a):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            a.sendall(d)
    except OSError: pass
    a.close()
s.settimeout(30)
while True:
    a, _ = s.accept()
    threading.Thread(target=echo, args=(a,), daemon=True).start()
`, ...(drainAfterMs === undefined ? [] : [String(drainAfterMs)])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = once(py.stdout!, 'data') as Promise<[Buffer]>;
  const [line] = await nodeSettle(NODE_SETUP_TIMEOUT_MS)(first, 'python3 black hole start (is python3 on PATH?)');
  // The four filler SYNs must be queued before the edge dials; give the kernel a moment.
  await new Promise((r) => setTimeout(r, 100));
  return { host: '127.0.0.1', port: Number(line.toString().trim()), release: () => void py.kill() };
}

/** Real sockets on 127.0.0.1. `timeoutMs` bounds every `settle`. */
export function nodeArm(opts: { timeoutMs?: number } = {}): Arm {
  const timeoutMs = opts.timeoutMs ?? NODE_TIMEOUT_MS;
  const settle = nodeSettle(timeoutMs);
  return {
    name: 'node',
    start(build) {
      // REFRACT_TEST_SOCKETS=net: the edge on net.Socket (NodeConn, the fallback when the runtime's TCP handles are
      // not reachable) instead of HandleConn; .ci/run runs the parity suites once that way.
      const sockets = process.env['REFRACT_TEST_SOCKETS'] === 'net' ? 'net' : 'handles';
      const nets = { client: createNodeNetwork(), edge: createNodeNetwork({ sockets }), origin: createNodeNetwork() };
      const slowOrigin = (_net: Network, delayMs: number): ReturnType<FixtureMaker> => pythonBlackHole(delayMs);
      const faulty: FaultMaker = async (target, toxics) => {
        const p = await startFaultProxy({ target, toxics });
        return { host: p.host, port: p.port, release: () => p.close() };
      };
      const drv = { settle, settleSetup: nodeSettle(NODE_SETUP_TIMEOUT_MS), blackHole: () => pythonBlackHole(), slowOrigin, faulty, certs: nodeCerts() };
      return buildRun('node', NODE_ADDRESSES, nets, drv, async (t) => {
        // Close callbacks of the far ends arrive a few event-loop turns after the near end's: poll, bounded.
        const deadline = Date.now() + 2_000;
        while (openConns(t).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual(openConns(t), [], 'node arm: test Conns left open');
      }, build);
    },
  };
}

// ── sim arm ─────────────────────────────────────────────────────────────────────────────────────────────────────────

/** Resolves after the microtasks queued so far have run (the sim's own async run loop does the same). */
const microtasks = (): Promise<void> => new Promise((r) => process.nextTick(r));

function simSettle(sim: Sim): ArmRun['settle'] {
  return async <T>(p: Promise<T>, what: string): Promise<T> => {
    let state: 'pending' | 'ok' | 'err' = 'pending';
    p.then(
      () => (state = 'ok'),
      () => (state = 'err'),
    );
    await microtasks();
    const until = sim.clock.now() + SIM_MAX_TIME_MS;
    let steps = 0;
    while (state === 'pending' && steps < SIM_MAX_STEPS) {
      const next = sim.clock.nextDeadline();
      if (next === undefined || next > until) break;
      const r = await sim.runUntilIdleAsync({ maxSteps: 1 });
      steps += r.steps;
      if (r.steps === 0) break;
    }
    if (state === 'pending') {
      const why = sim.clock.nextDeadline() === undefined ? 'the simulation went idle' : `the bound was hit (${steps} steps)`;
      throw new Error(`sim arm: ${what} did not settle; ${why} at t=${sim.clock.now()} ms`);
    }
    return p;
  };
}

/** One simulated run's record, for the determinism check (two runs on one seed must produce identical lines). */
export interface SimRecord {
  readonly traceLines: string[];
  readonly simEvents: number;
  readonly simDigest: string;
}

/** Simulated client, edge and origin hosts on `seed`. `record()` is the last closed run's record. */
export function simArm(seed: number): Arm & { readonly record: () => SimRecord | undefined } {
  let record: SimRecord | undefined;
  return {
    name: 'sim',
    record: () => record,
    start(build) {
      // A cheap rolling digest of every simulator event: identical per seed or the simulator is not deterministic.
      let digest = 0;
      let count = 0;
      const sim = createSim({
        seed,
        // The Node adapter's sockets read nothing from the kernel before their owner resumes them (see TcpParams).
        tcp: { readStartsOnResume: true },
        onEvent: (e) => {
          count++;
          const s = `${e.t}|${e.type}|${e.host}|${e.detail}`;
          for (let i = 0; i < s.length; i++) digest = (Math.imul(digest, 31) + s.charCodeAt(i)) | 0;
        },
      });
      const nets = {
        client: sim.host('client', { addresses: [SIM_ADDRESSES.clientHost] }),
        edge: sim.host('edge', { addresses: [SIM_ADDRESSES.edgeHost] }),
        origin: sim.host('origin', { addresses: [SIM_ADDRESSES.originHost] }),
      };
      const settle = simSettle(sim);
      const blackHole = async (originNet: Network): Promise<{ host: string; port: number; release(): void }> => {
        // A live listener that the edge cannot reach: the partition, not a missing listener, makes the connect hang.
        const l = await originNet.listenTcp({ host: SIM_ADDRESSES.originHost, port: 0 }, (c) => c.destroy());
        sim.partition('edge', 'origin');
        return { host: SIM_ADDRESSES.originHost, port: l.address.port, release: () => sim.heal('edge', 'origin') };
      };
      const slowOrigin = async (originNet: Network, delayMs: number): Promise<{ host: string; port: number; release(): void }> => {
        const o = await startEchoOrigin(originNet, SIM_ADDRESSES.originHost);
        sim.partition('edge', 'origin');
        sim.clock.setTimer(delayMs, () => sim.heal('edge', 'origin'));
        return { host: SIM_ADDRESSES.originHost, port: o.port, release: () => sim.heal('edge', 'origin') };
      };
      const faulty: FaultMaker = async (target, toxics) => {
        // The injector's equivalent: the link itself misbehaves, per direction (src/net/sim/fabric.ts, LinkParams).
        const f = simLinkFaults(toxics);
        sim.link('edge', 'origin', f['edge->origin'], { direction: 'a->b' });
        sim.link('origin', 'edge', f['origin->edge'], { direction: 'a->b' });
        return { host: target.host, port: target.port, release: () => void sim.link('edge', 'origin', DEFAULT_LINK) };
      };
      let run: ArmRun | undefined;
      const certs = createSimCertSource({ epochMs: () => sim.clock.epochMs() });
      return buildRun('sim', SIM_ADDRESSES, nets, { settle, settleSetup: settle, blackHole, slowOrigin, faulty, certs }, async (t) => {
        const r = await sim.runUntilIdleAsync({ maxSteps: SIM_MAX_STEPS });
        assert.ok(r.idle, `sim arm: not idle after shutdown (${r.steps} steps)`);
        assert.deepEqual(openConns(t), [], 'sim arm: test Conns left open');
        const ns = sim.netstat();
        assert.deepEqual(ns.tcp, [], 'sim arm: TCP connections left (netstat)');
        assert.deepEqual(ns.listeners, [], 'sim arm: listeners left (netstat)');
        assert.deepEqual(ns.udp, [], 'sim arm: UDP sockets left (netstat)');
        assert.equal(sim.clock.pendingTimers(), 0, 'sim arm: timers left');
        record = { traceLines: run!.trace.map(traceLine), simEvents: count, simDigest: (digest >>> 0).toString(16) };
      }, build).then((r) => (run = r));
    },
  };
}

// ── probes and origins written against the Network port (the same code on both arms) ──────────────────────────────

/** What one Conn showed, in order: `connect`, `data` (runs merged), `end`, `drain`, `error:CODE`, `close:BOOL`. */
export interface Probe {
  readonly conn: Conn;
  readonly log: string[];
  /** The Conn's local address as it was when connected (accepted: at once); node forgets it after close. */
  readonly local: SocketAddress | undefined;
  /** Every byte received, concatenated. */
  bytes(): Buffer;
  /** Resolves when `event` has been logged (`connect`, `data`, `end`, `close`, or a prefix such as `error`). */
  until(event: string): Promise<void>;
  /** Resolves once at least `n` bytes have arrived. */
  untilBytes(n: number): Promise<void>;
}

export interface ProbeOptions {
  /** The Conn was accepted (it is connected already; no `connect` callback comes). */
  accepted?: boolean;
  /** On the peer's FIN, end our side too (as a plain client does). Default true. */
  endOnEnd?: boolean;
  /** Extra behaviour, run after the probe records the callback. */
  on?: {
    connect?(p: Probe): void;
    data?(chunk: Uint8Array, p: Probe): void;
    end?(p: Probe): void;
  };
}

/** Sets all handlers of `conn` once, recording every callback. */
export function probe(conn: Conn, opts: ProbeOptions = {}): Probe {
  const log: string[] = [];
  const chunks: Buffer[] = [];
  // An accepted Conn is connected already; a dialled one learns its local address at `connect`.
  let local: SocketAddress | undefined = opts.accepted === true ? conn.local : undefined;
  let received = 0;
  const waiters: Array<{ ok: () => boolean; res: () => void }> = [];
  const wake = (): void => {
    for (const w of [...waiters]) {
      if (w.ok()) {
        waiters.splice(waiters.indexOf(w), 1);
        w.res();
      }
    }
  };
  const push = (e: string): void => {
    if (e === 'data' && log.at(-1) === 'data') return;
    assert.ok(!log.some((x) => x.startsWith('close')), `'${e}' after close`);
    log.push(e);
  };
  conn.setHandlers({
    connect() {
      local = conn.local;
      push('connect');
      opts.on?.connect?.(self);
      wake();
    },
    data(chunk) {
      push('data');
      chunks.push(Buffer.from(chunk));
      received += chunk.byteLength;
      opts.on?.data?.(chunk, self);
      wake();
    },
    drain: () => push('drain'),
    end() {
      push('end');
      if (opts.endOnEnd !== false) conn.end();
      opts.on?.end?.(self);
      wake();
    },
    error(err) {
      push(`error:${err.code}`);
      wake();
    },
    close(hadError) {
      push(`close:${hadError}`);
      wake();
    },
  });
  const has = (event: string): boolean => log.some((x) => x === event || x.startsWith(`${event}:`));
  const closedWithout = (event: string) => () => log.some((x) => x.startsWith('close')) && !has(event);
  const self: Probe = {
    conn,
    log,
    get local() {
      return local;
    },
    bytes: () => Buffer.concat(chunks),
    until(event) {
      if (has(event)) return Promise.resolve();
      return new Promise((res, rej) => {
        waiters.push({ ok: () => has(event), res });
        waiters.push({ ok: closedWithout(event), res: () => rej(new Error(`closed before '${event}' (log: ${log.join(' ')})`)) });
      });
    },
    untilBytes(n) {
      if (received >= n) return Promise.resolve();
      return new Promise((res, rej) => {
        waiters.push({ ok: () => received >= n, res });
        waiters.push({ ok: () => received < n && log.some((x) => x.startsWith('close')), res: () => rej(new Error(`closed after ${received} of ${n} bytes`)) });
      });
    },
  };
  return self;
}

export interface Origin {
  readonly listener: TcpListener;
  readonly port: number;
  /** One probe per accepted connection, in accept order. */
  readonly accepted: Probe[];
  /** Resolves with the `i`-th accepted connection's probe (0-based). */
  nth(i: number): Promise<Probe>;
}

/**
 * An origin on `net` at `host:port` (0 = any). `onAccept` gets each connection already probed and resumed: the
 * node arm's listeners pause accepted sockets (pauseOnConnect), so reading starts only with `resume()`.
 */
export async function startOrigin(net: Network, host: string, port: number, onAccept: (p: Probe) => void, opts: ProbeOptions = {}): Promise<Origin> {
  const accepted: Probe[] = [];
  const waiters: Array<{ i: number; res: (p: Probe) => void }> = [];
  const listener = await net.listenTcp({ host, port }, (c) => {
    const p = probe(c, { ...opts, accepted: true });
    accepted.push(p);
    onAccept(p);
    c.resume();
    for (const w of [...waiters]) {
      if (accepted[w.i]) {
        waiters.splice(waiters.indexOf(w), 1);
        w.res(accepted[w.i]!);
      }
    }
  });
  return {
    listener,
    port: listener.address.port,
    accepted,
    nth(i) {
      const p = accepted[i];
      if (p) return Promise.resolve(p);
      return new Promise((res) => waiters.push({ i, res }));
    },
  };
}

/** An origin that writes back what it reads and ends when the peer ends. */
export function startEchoOrigin(net: Network, host: string, port = 0): Promise<Origin> {
  return startOrigin(net, host, port, () => {}, { on: { data: (chunk, p) => void p.conn.write(chunk) } });
}

/** A UDP socket that records every datagram it receives, in order; optionally answers each one. */
export interface UdpProbe {
  readonly sock: UdpSocket;
  /** The socket's address (kept: node forgets it after close). */
  readonly local: SocketAddress;
  /** Datagrams received, in arrival order. */
  readonly got: Datagram[];
  /** Payloads received as text, in arrival order. */
  texts(): string[];
  send(data: string | Uint8Array, port: number, address: string): void;
  /** Resolves once `n` datagrams have arrived in total. */
  untilCount(n: number): Promise<void>;
}

/**
 * Binds a UDP socket on `net` at `host:port` (0 = any) that records what it receives; `reply` (if given) computes an
 * answer to each datagram, sent back to its source (undefined: no answer). The run's `close()` closes it.
 */
export async function udpProbe(net: Network, host: string, port = 0, reply?: (d: Datagram) => Uint8Array | undefined): Promise<UdpProbe> {
  const sock = await net.bindUdp({ host, port });
  const got: Datagram[] = [];
  const waiters: Array<{ n: number; res: () => void }> = [];
  sock.setHandler((d) => {
    // Node hands out a Buffer that may be reused by nothing but the caller; copy so a record never changes.
    got.push({ data: Buffer.from(d.data), remote: d.remote });
    const out = reply?.(d);
    if (out !== undefined) sock.send(out, d.remote.port, d.remote.address);
    for (const w of [...waiters]) {
      if (got.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.res();
      }
    }
  });
  return {
    sock,
    local: sock.local,
    got,
    texts: () => got.map((d) => Buffer.from(d.data).toString()),
    send: (data, p, address) => sock.send(typeof data === 'string' ? Buffer.from(data) : data, p, address),
    untilCount(n) {
      if (got.length >= n) return Promise.resolve();
      return new Promise((res) => waiters.push({ n, res }));
    },
  };
}

// ── running one body on both arms ───────────────────────────────────────────────────────────────────────────────────

/** Starts `arm`, runs `fn`, and closes the run (leak check included). A failing body still closes, quietly. */
export async function withRun<T>(arm: Arm, build: ConfigBuilder, fn: (run: ArmRun) => Promise<T>): Promise<T> {
  const run = await arm.start(build);
  let out: T;
  try {
    out = await fn(run);
  } catch (e) {
    await run.close().catch(() => {});
    throw e;
  }
  await run.close();
  return out;
}

/**
 * The parity loop: runs the body on the node arm, then twice on the sim arm with `seed`. Asserts that the sim
 * outcome equals the node outcome, and that the two sim runs agree trace line for line (times included) and
 * simulator event for event. Returns the (common) outcome for the case's own expectations.
 */
export async function parity<T>(seed: number, build: ConfigBuilder, fn: (run: ArmRun) => Promise<T>): Promise<T> {
  const sims = [simArm(seed), simArm(seed)] as const;
  const outcomes: T[] = [];
  for (const arm of [nodeArm(), ...sims]) {
    try {
      outcomes.push(await withRun(arm, build, fn));
    } catch (e) {
      if (e instanceof Error) e.message = `[${arm.name} arm] ${e.message}`;
      throw e;
    }
  }
  const [node, sim, again] = outcomes;
  assert.deepEqual(sim, node, 'the sim arm shows a different outcome than the node arm');
  assert.deepEqual(again, sim, `seed ${seed}: a second sim run shows a different outcome`);
  const [a, b] = [sims[0].record(), sims[1].record()];
  assert.ok(a && b, 'sim runs left no record');
  assert.deepEqual(b.traceLines, a.traceLines, `seed ${seed}: trace lines differ between two runs`);
  assert.deepEqual([b.simEvents, b.simDigest], [a.simEvents, a.simDigest], `seed ${seed}: simulator events differ between two runs`);
  return node!;
}

// ── normalised views (what may legitimately differ between arms: addresses, ephemeral ports, times) ────────────────

/** A Spectrum event without times, with addresses named by role and origin ports by the names the case gives. */
export function eventView(run: ArmAddresses, e: SpectrumEvent, originPorts: Readonly<Record<string, number>> = {}): Record<string, unknown> {
  const role = (ip: string): string => (ip === '' ? '' : ip === run.originHost ? 'origin' : ip === run.edgeHost ? 'edge' : ip === run.clientHost ? 'client' : ip);
  const portName = Object.entries(originPorts).find(([, p]) => p === e.OriginPort)?.[0];
  return {
    Event: e.Event,
    Status: e.Status,
    ErrorCode: e.ErrorCode,
    CloseReason: e.CloseReason,
    ProxyProtocol: e.ProxyProtocol,
    Client: e.ClientIP === run.clientHost ? 'client' : e.ClientIP,
    Edge: `${e.EdgeIP === run.edgeHost ? 'edge' : e.EdgeIP}:${e.EdgePort}`,
    Origin: e.OriginIP === '' ? '' : `${role(e.OriginIP)}:${portName ?? e.OriginPort}`,
    ClientBytes: e.ClientBytes,
    OriginBytes: e.OriginBytes,
  };
}

/** A UDP flow's Spectrum event as `eventView` shows it, with the protocol and the datagram counts. */
export function udpEventView(run: ArmAddresses, e: SpectrumEvent, originPorts: Readonly<Record<string, number>> = {}): Record<string, unknown> {
  return { ...eventView(run, e, originPorts), ClientProto: e.ClientProto, ClientPackets: e.ClientPackets, OriginPackets: e.OriginPackets };
}

/** The decision trace as its event sequence (times and addresses left out). */
export function traceEvents(run: { trace: readonly TraceRecord[] }): string[] {
  return run.trace.map((r) => r.event);
}
