import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { type Conn, type UdpSocket } from '../../../src/net/ports.ts';
import { createSim, type SimHost } from '../../../src/net/sim/index.ts';

type Op =
  | { kind: 'connect'; at: number; from: number }
  | { kind: 'write' | 'end' | 'reset' | 'destroy' | 'pause' | 'resume'; at: number; conn: number; size: number }
  | { kind: 'partition' | 'heal'; at: number; from: number }
  | { kind: 'crash-restart'; at: number }
  | { kind: 'udp'; at: number; from: number; size: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('connect' as const), at: fc.integer({ min: 0, max: 3_000 }), from: fc.nat(2) }),
  fc.record({ kind: fc.constantFrom('write' as const, 'end' as const, 'reset' as const, 'destroy' as const, 'pause' as const, 'resume' as const), at: fc.integer({ min: 0, max: 3_000 }), conn: fc.nat(7), size: fc.integer({ min: 1, max: 40_000 }) }),
  fc.record({ kind: fc.constantFrom('partition' as const, 'heal' as const), at: fc.integer({ min: 0, max: 3_000 }), from: fc.nat(2) }),
  fc.record({ kind: fc.constant('crash-restart' as const), at: fc.integer({ min: 0, max: 3_000 }) }),
  fc.record({ kind: fc.constant('udp' as const), at: fc.integer({ min: 0, max: 3_000 }), from: fc.nat(2), size: fc.integer({ min: 1, max: 1_400 }) }),
);

/** A few connections early on, so that most later operations have a connection to act on. */
const connectsArb: fc.Arbitrary<Op[]> = fc.array(fc.record({ kind: fc.constant('connect' as const), at: fc.integer({ min: 0, max: 200 }), from: fc.nat(2) }), { minLength: 1, maxLength: 6 });

/**
 * Runs a workload and returns a hash of everything observable: simulator events and every app callback. Along the
 * way it checks the callback contract: nothing after `close`, an `error` is followed by `close(true)`.
 */
async function run(seed: number, ops: readonly Op[]): Promise<{ hash: string; lines: number; idle: boolean }> {
  const h = createHash('sha256');
  let lines = 0;
  const sim = createSim({
    seed,
    defaultLink: { latencyMs: 3, jitterMs: 2, loss: 0.05, duplicate: 0.05, reorder: 0.1 },
    tcp: { dataRetries: 4, synRetries: 2 },
    onEvent: (e) => {
      h.update(`${e.t} ${e.type} ${e.host} ${e.detail}\n`);
      lines++;
    },
  });
  const log = (s: string): void => {
    h.update(`${sim.clock.now()} app ${s}\n`);
    lines++;
  };
  const clients: SimHost[] = [0, 1, 2].map((i) => sim.host(`c${i}`, { addresses: [`10.0.1.${i + 1}`] }));
  const server = sim.host('srv', { addresses: ['10.0.0.2'] });
  const attach = (c: Conn, name: string): void => {
    let closed = false;
    let errored = false;
    const alive = (what: string): void => assert.ok(!closed, `${name}: ${what} after close`);
    c.setHandlers({
      connect: () => {
        alive('connect');
        log(`${name} connect`);
      },
      data: (d) => {
        alive('data');
        log(`${name} data ${d.length} ${d[0] ?? -1}`);
        if (name.startsWith('s')) c.write(d);
      },
      drain: () => {
        alive('drain');
        log(`${name} drain`);
      },
      end: () => {
        alive('end');
        log(`${name} end`);
        if (name.startsWith('s')) c.end();
      },
      error: (e) => {
        alive('error');
        errored = true;
        log(`${name} error ${e.code}`);
      },
      close: (he) => {
        alive('close');
        assert.equal(he, errored, `${name}: close(hadError) matches whether error fired`);
        closed = true;
        log(`${name} close ${he}`);
      },
    });
  };
  let accepted = 0;
  const serve = async (): Promise<void> => {
    await server.listenTcp({ host: '0.0.0.0', port: 80 }, (c) => attach(c, `s${accepted++}`));
    const u = await server.bindUdp({ host: '0.0.0.0', port: 53 });
    u.setHandler((m) => log(`udp ${m.remote.address}:${m.remote.port} ${m.data.length}`));
  };
  await serve();
  const udps: UdpSocket[] = await Promise.all(clients.map((c) => c.bindUdp({ host: '0.0.0.0', port: 0 })));
  const conns: Conn[] = [];
  for (const op of ops) {
    sim.clock.setTimer(op.at, () => {
      switch (op.kind) {
        case 'connect': {
          const c = clients[op.from]!.connectTcp({ host: '10.0.0.2', port: 80 });
          attach(c, `c${conns.length}`);
          conns.push(c);
          return;
        }
        case 'write':
        case 'end':
        case 'reset':
        case 'destroy':
        case 'pause':
        case 'resume': {
          const c = conns[op.conn % Math.max(1, conns.length)];
          if (c === undefined) return;
          if (op.kind === 'write') log(`write ${c.write(new Uint8Array(op.size).fill(op.size & 0xff))}`);
          else c[op.kind]();
          return;
        }
        case 'partition':
          sim.partition(`c${op.from}`, 'srv');
          return;
        case 'heal':
          sim.heal(`c${op.from}`, 'srv');
          return;
        case 'crash-restart':
          if (!server.up) return;
          sim.crash('srv');
          sim.clock.setTimer(500, () => {
            sim.restart('srv');
            void serve();
          });
          return;
        case 'udp':
          udps[op.from]!.send(new Uint8Array(op.size), 53, '10.0.0.2');
          return;
      }
    });
  }
  const r = await sim.runUntilIdleAsync({ maxSteps: 500_000 });
  log(`idle=${r.idle} netstat=${JSON.stringify(sim.netstat())}`);
  return { hash: h.digest('hex'), lines, idle: r.idle };
}

test('the same seed and workload give a byte-identical event trace', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer(), connectsArb, fc.array(opArb, { minLength: 1, maxLength: 60 }), async (seed, connects, rest) => {
      const ops = [...connects, ...rest];
      const a = await run(seed, ops);
      const b = await run(seed, ops);
      assert.equal(a.hash, b.hash);
      assert.equal(a.lines, b.lines);
      assert.ok(a.idle, 'every workload comes to rest (all timers are bounded)');
    }),
    { numRuns: 50 },
  );
});

test('a different seed changes the trace of a workload that draws randomness', async () => {
  const ops: Op[] = [
    { kind: 'connect', at: 0, from: 0 },
    { kind: 'write', at: 10, conn: 0, size: 30_000 },
    { kind: 'udp', at: 20, from: 1, size: 100 },
    { kind: 'end', at: 50, conn: 0, size: 1 },
  ];
  const a = await run(1, ops);
  const b = await run(2, ops);
  assert.notEqual(a.hash, b.hash);
});
