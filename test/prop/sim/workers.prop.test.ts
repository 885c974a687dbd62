/**
 * N workers on one simulated edge host (src/net/sim/workers.ts: SO_REUSEPORT groups, 4-tuple hash), each running
 * its own EdgeNode, reloaded the way `serve --workers` does it (src/cli/workers.ts' transaction: every live worker
 * prepares, all commit only if every live worker prepared; a worker that dies meanwhile drops out). One worker is
 * killed at some point of the reload, and one worker may fail to prepare. Properties:
 * - every TCP connection held by a surviving worker keeps working (its next bytes come back, nothing closes it);
 *   the dead worker's connections, and only those, are closed;
 * - every UDP flow still gets answers; a flow whose worker did not change keeps its flow (the same upstream port);
 * - the survivors' reload is all-or-nothing: all of them run the new app or none does, and it is committed exactly
 *   when no surviving worker failed to prepare;
 * - new connections to the old app work afterwards, and to the new app exactly when the reload committed.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { createSim } from '../../../src/net/sim/index.ts';
import { SimWorkers, type SimWorker } from '../../../src/net/sim/workers.ts';
import { EdgeNode, type PreparedApply } from '../../../src/edge/edge-node.ts';
import type { Conn, Network, NetError } from '../../../src/net/ports.ts';
import type { RefractConfig } from '../../../src/model/types.ts';
import { mustConfig } from '../../helpers/edge.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const EDGE = '10.0.0.1';
const ORIGIN = '10.0.0.2';
const OLD_PORT = 5000;
const NEW_PORT = 5001;
const UDP_PORT = 5300;

const config = (withNew: boolean): RefractConfig =>
  mustConfig({
    edge: { addresses: [EDGE], udp_idle_timeout_ms: 600_000 },
    apps: [
      { id: 'old', protocol: `tcp/${OLD_PORT}`, dns: { name: 'old.example.test' }, origin_direct: [`tcp://${ORIGIN}:7000`] },
      { id: 'dns', protocol: `udp/${UDP_PORT}`, dns: { name: 'dns.example.test' }, origin_direct: [`udp://${ORIGIN}:7053`] },
      ...(withNew ? [{ id: 'new', protocol: `tcp/${NEW_PORT}`, dns: { name: 'new.example.test' }, origin_direct: [`tcp://${ORIGIN}:7000`] }] : []),
    ],
  });

type KillAt = 'prepare-sent' | 'prepared' | 'commit-sent';

interface Case {
  readonly workers: number;
  readonly conns: number;
  readonly flows: number;
  readonly victim: number;
  readonly killAt: KillAt;
  /** A worker whose prepare fails (its new port "in use"), or -1. */
  readonly failing: number;
  readonly seed: number;
}

/** A worker's Network that refuses NEW_PORT, as if that port were taken where only this worker looks. */
function refusingNewPort(w: SimWorker): Network {
  return {
    clock: w.clock,
    random: w.random,
    tls: w.tls,
    listenTcp: (o, cb) => {
      if (o.port !== NEW_PORT) return w.listenTcp(o, cb);
      const e = Object.assign(new Error(`listen EADDRINUSE: address already in use ${o.host}:${o.port}`), { code: 'EADDRINUSE', syscall: 'listen', address: o.host, port: o.port }) as NetError;
      return Promise.reject(e);
    },
    connectTcp: (o) => w.connectTcp(o),
    resolve: (n, t) => w.resolve(n, t),
    bindUdp: (o) => w.bindUdp(o),
  };
}

interface Worker {
  readonly net: SimWorker;
  readonly edge: EdgeNode;
  /** Rejects when the worker is killed (the supervisor's 'exit'). */
  readonly exited: Promise<never>;
  kill(): void;
}

async function runCase(c: Case): Promise<void> {
  const sim = createSim({ seed: c.seed });
  const edgeH = sim.host('edge', { addresses: [EDGE] });
  const originH = sim.host('origin', { addresses: [ORIGIN] });
  const clientH = sim.host('client', { addresses: ['192.0.2.7'] });
  sim.link('client', 'edge', { latencyMs: 2 });
  sim.link('edge', 'origin', { latencyMs: 1 });
  const settle = async (): Promise<void> => {
    await sim.runUntilIdleAsync({ maxSteps: 1_000_000, maxTime: 2_000 });
  };

  await originH.listenTcp({ host: ORIGIN, port: 7000 }, (conn) => conn.setHandlers({ data: (d) => conn.write(d), end: () => conn.end() }));
  const originUdp = await originH.bindUdp({ host: ORIGIN, port: 7053 });
  // Each answer names the upstream port it came from: a flow that keeps its upstream socket is the same flow.
  originUdp.setHandler((m) => originUdp.send(enc.encode(`${dec.decode(m.data)}@${m.remote.port}`), m.remote.port, m.remote.address));

  const group = new SimWorkers(edgeH);
  const workers: Worker[] = [];
  const log = pino({ level: 'silent' });
  for (let i = 0; i < c.workers; i++) {
    const net = group.spawn(i + 1);
    let die!: (e: Error) => void;
    const exited = new Promise<never>((_, reject) => (die = reject));
    exited.catch(() => undefined);
    const edge = new EdgeNode({ net: i === c.failing ? refusingNewPort(net) : net, log }, config(false));
    workers.push({ net, edge, exited, kill: () => (net.exit(), die(new Error(`worker ${i + 1} exited`))) });
  }
  const request = <T>(w: Worker, op: () => Promise<T>): Promise<T> => (w.net.alive ? Promise.race([op(), w.exited]) : Promise.reject(new Error('not running')));

  /** workers.ts' transaction, with the victim killed at `killAt` (or never). */
  const transaction = async (next: RefractConfig, killAt: KillAt | undefined): Promise<boolean> => {
    const victim = workers[c.victim]!;
    const preps = workers.map((w) => request(w, () => w.edge.prepare(next)));
    if (killAt === 'prepare-sent') victim.kill();
    const prep = await Promise.allSettled(preps);
    const live = workers.filter((w, i) => prep[i]!.status === 'fulfilled' || w.net.alive);
    const failure = prep.some((r, i) => r.status === 'rejected' && workers[i]!.net.alive);
    const prepared = (w: Worker): PreparedApply | undefined => {
      const r = prep[workers.indexOf(w)]!;
      return r.status === 'fulfilled' ? r.value : undefined;
    };
    if (failure) {
      await Promise.allSettled(live.map((w) => request(w, () => prepared(w)?.abort() ?? Promise.resolve())));
      if (killAt === 'prepared' || killAt === 'commit-sent') victim.kill();
      return false;
    }
    if (killAt === 'prepared') victim.kill();
    const commits = live.map((w) => request(w, () => prepared(w)!.commit()));
    if (killAt === 'commit-sent') victim.kill();
    await Promise.allSettled(commits);
    return true;
  };
  const inSim = async <T>(p: Promise<T>): Promise<T> => {
    await settle();
    return p;
  };

  assert.equal(await inSim(transaction(config(false), undefined)), true, 'the start commits everywhere');

  // TCP connections through the edge, each one echoing once.
  interface Client {
    readonly conn: Conn;
    owner: SimWorker | undefined;
    got: string;
    ended: boolean;
  }
  const clients: Client[] = [];
  for (let i = 0; i < c.conns; i++) {
    const conn = clientH.connectTcp({ host: EDGE, port: OLD_PORT });
    const cl: Client = { conn, owner: undefined, got: '', ended: false };
    conn.setHandlers({ data: (d) => void (cl.got += dec.decode(d)), end: () => void (cl.ended = true), close: () => void (cl.ended = true), error: () => void (cl.ended = true) });
    conn.write(enc.encode(`a${i};`));
    clients.push(cl);
  }
  // UDP flows, one per client port.
  interface Flow {
    readonly sock: Awaited<ReturnType<typeof clientH.bindUdp>>;
    readonly answers: string[];
  }
  const flows: Flow[] = [];
  for (let i = 0; i < c.flows; i++) {
    const sock = await clientH.bindUdp({ host: '192.0.2.7', port: 0 });
    const f: Flow = { sock, answers: [] };
    sock.setHandler((m) => f.answers.push(dec.decode(m.data)));
    sock.send(enc.encode(`f${i}`), UDP_PORT, EDGE);
    flows.push(f);
  }
  await settle();
  for (const [i, cl] of clients.entries()) {
    assert.equal(cl.got, `a${i};`, `connection ${i} echoes before the reload`);
    const owner = group.ownerOf('tcp', cl.conn.local, { address: EDGE, port: OLD_PORT, family: 'IPv4' }, { host: EDGE, port: OLD_PORT });
    assert.ok(owner !== undefined);
    cl.owner = owner;
  }
  const flowOwner = (f: Flow): SimWorker | undefined => group.ownerOf('udp', f.sock.local, { address: EDGE, port: UDP_PORT, family: 'IPv4' }, { host: EDGE, port: UDP_PORT });
  const ownersBefore = flows.map(flowOwner);
  const upstreamBefore = flows.map((f, i) => {
    assert.equal(f.answers.length, 1, `flow ${i} answered before the reload`);
    return f.answers[0]!.split('@')[1];
  });

  // The reload, with the victim killed mid-way.
  const committed = await inSim(transaction(config(true), c.killAt));
  const victim = workers[c.victim]!;
  assert.equal(victim.net.alive, false);
  const survivors = workers.filter((w) => w.net.alive);
  const failingSurvives = c.failing >= 0 && (c.failing !== c.victim || c.killAt !== 'prepare-sent');
  assert.equal(committed, !failingSurvives, 'committed exactly when no live worker failed to prepare');

  // All-or-nothing among the survivors.
  const views = survivors.map((w) => JSON.stringify(w.edge.listeners().map((l) => `${l.protocol ?? ''} ${l.host} ${l.port} ${l.app}`).sort()));
  assert.equal(new Set(views).size, 1, `survivors disagree: ${views.join(' | ')}`);
  for (const w of survivors) assert.equal(w.edge.listeners().some((l) => l.port === NEW_PORT), committed);
  const hostListens = sim.netstat().listeners.filter((t) => t.host === 'edge' && t.local.endsWith(`:${NEW_PORT}`)).length;
  assert.equal(hostListens, committed ? 1 : 0, 'the new port is bound on the host exactly when committed');

  // Existing connections: the survivors' keep working, the victim's are closed.
  for (const [i, cl] of clients.entries()) if (!cl.ended) cl.conn.write(enc.encode(`b${i};`));
  for (const [i, f] of flows.entries()) f.sock.send(enc.encode(`g${i}`), UDP_PORT, EDGE);
  await settle();
  for (const [i, cl] of clients.entries()) {
    if (cl.owner === victim.net) assert.equal(cl.ended, true, `connection ${i} of the dead worker is closed`);
    else {
      assert.equal(cl.ended, false, `connection ${i} of worker ${cl.owner?.index} survived`);
      assert.equal(cl.got, `a${i};b${i};`, `connection ${i} of worker ${cl.owner?.index} still echoes`);
    }
  }
  for (const [i, f] of flows.entries()) {
    assert.equal(f.answers.length, 2, `flow ${i} is answered after the kill`);
    const owner = flowOwner(f);
    assert.ok(owner !== undefined && owner.alive, `flow ${i} goes to a live worker`);
    if (owner === ownersBefore[i]) assert.equal(f.answers[1]!.split('@')[1], upstreamBefore[i], `flow ${i} kept its worker and its upstream`);
  }

  // New connections: the old app everywhere; the new one exactly when committed.
  const probe = (port: number, tag: string): Promise<string> => {
    const conn = clientH.connectTcp({ host: EDGE, port });
    let got = '';
    let err = '';
    conn.setHandlers({ data: (d) => void (got += dec.decode(d)), error: (e) => void (err = e.code) });
    conn.write(enc.encode(tag));
    return inSim(Promise.resolve()).then(() => {
      conn.destroy();
      return err === '' ? got : err;
    });
  };
  for (let i = 0; i < 4; i++) assert.equal(await probe(OLD_PORT, `n${i}`), `n${i}`);
  for (let i = 0; i < 4; i++) assert.equal(await probe(NEW_PORT, `m${i}`), committed ? `m${i}` : 'ECONNREFUSED');

  // Shut the survivors down; nothing is left on the edge host.
  for (const f of flows) f.sock.close();
  for (const cl of clients) cl.conn.destroy();
  await inSim(Promise.all(survivors.map((w) => w.edge.shutdown(0))));
  await settle();
  assert.deepEqual(sim.netstat().listeners.filter((t) => t.host === 'edge'), []);
}

test('workers on a sim host: a worker dying mid-reload loses only its own connections; the survivors reload all-or-nothing', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc
        .record({
          workers: fc.integer({ min: 2, max: 4 }),
          conns: fc.integer({ min: 1, max: 8 }),
          flows: fc.integer({ min: 1, max: 5 }),
          victim: fc.nat(3),
          killAt: fc.constantFrom<KillAt>('prepare-sent', 'prepared', 'commit-sent'),
          failing: fc.integer({ min: -1, max: 3 }),
          seed: fc.nat(1_000_000),
        })
        .map((c) => ({ ...c, victim: c.victim % c.workers, failing: c.failing >= c.workers ? -1 : c.failing })),
      (c) => runCase(c),
    ),
    { numRuns: 40 },
  );
});

test('the 4-tuple hash spreads connections over the workers and a flow stays on one worker', async () => {
  const sim = createSim({ seed: 5 });
  const edgeH = sim.host('edge', { addresses: [EDGE] });
  const clientH = sim.host('client', { addresses: ['192.0.2.7'] });
  const group = new SimWorkers(edgeH);
  const seen = new Map<number, number>();
  const workers = [1, 2, 3].map((i) => group.spawn(i));
  for (const w of workers) await w.listenTcp({ host: EDGE, port: OLD_PORT }, (conn) => (seen.set(w.index, (seen.get(w.index) ?? 0) + 1), conn.destroy()));
  const udpSeen: Array<Array<number>> = [];
  for (const w of workers) {
    const s = await w.bindUdp({ host: EDGE, port: UDP_PORT });
    s.setHandler((m) => (udpSeen[m.remote.port] ??= []).push(w.index));
  }
  for (let i = 0; i < 60; i++) clientH.connectTcp({ host: EDGE, port: OLD_PORT }).setHandlers({ error: () => undefined });
  const socks = await Promise.all([0, 1, 2, 3, 4, 5].map(() => clientH.bindUdp({ host: '192.0.2.7', port: 0 })));
  for (let k = 0; k < 5; k++) for (const s of socks) s.send(enc.encode('x'), UDP_PORT, EDGE);
  await sim.runUntilIdleAsync({ maxSteps: 1_000_000 });
  assert.deepEqual([...seen.keys()].sort(), [1, 2, 3], `every worker accepted some of 60 connections: ${JSON.stringify([...seen])}`);
  assert.equal([...seen.values()].reduce((a, b) => a + b, 0), 60);
  for (const s of socks) {
    const got = udpSeen[s.local.port] ?? [];
    assert.equal(got.length, 5);
    assert.equal(new Set(got).size, 1, 'one flow, one worker');
  }
  // A worker that dies leaves its slot to the last one; the host socket closes with the last member.
  workers[0]!.exit();
  assert.equal(sim.netstat().listeners.length, 1);
  workers[1]!.exit();
  workers[2]!.exit();
  assert.equal(sim.netstat().listeners.length, 0);
  assert.deepEqual(sim.netstat().udp.filter((u) => u.host === 'edge'), []);
});
