import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { type Conn } from '../../../src/net/ports.ts';
import { createSim, type LinkParams } from '../../../src/net/sim/index.ts';

const linkArb: fc.Arbitrary<Partial<LinkParams>> = fc.record(
  {
    latencyMs: fc.double({ min: 0, max: 40, noNaN: true }),
    jitterMs: fc.double({ min: 0, max: 20, noNaN: true }),
    jitterDistribution: fc.constantFrom('uniform' as const, 'normal' as const, 'exponential' as const),
    loss: fc.double({ min: 0, max: 0.3, noNaN: true }),
    bandwidthBytesPerMs: fc.oneof(fc.constant(Infinity), fc.integer({ min: 50, max: 5_000 })),
    slicer: fc.option(
      fc.integer({ min: 1, max: 64 }).chain((min) => fc.record({ minBytes: fc.constant(min), maxBytes: fc.integer({ min, max: 2_000 }), delayMs: fc.double({ min: 0, max: 2, noNaN: true }) })),
      { nil: null },
    ),
  },
  { requiredKeys: [] },
);

const scenarioArb = fc.record({
  seed: fc.integer(),
  up: linkArb,
  down: linkArb,
  writes: fc.array(fc.record({ size: fc.integer({ min: 1, max: 30_000 }), gapMs: fc.integer({ min: 0, max: 50 }) }), { minLength: 1, maxLength: 12 }),
  /** Server pauses at these times for these durations (backpressure end to end). */
  pauses: fc.array(fc.record({ at: fc.integer({ min: 0, max: 500 }), forMs: fc.integer({ min: 1, max: 2_000 }) }), { maxLength: 3 }),
  clientEndsFirst: fc.boolean(),
});

function pattern(n: number, salt: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + salt * 17 + (i >>> 9)) & 0xff;
  return b;
}

test('under random latency, jitter, loss, bandwidth, slicing and pauses, each side receives exactly the bytes the other wrote', async () => {
  await fc.assert(
    fc.asyncProperty(scenarioArb, async (sc) => {
      const sim = createSim({ seed: sc.seed });
      const client = sim.host('client', { addresses: ['10.0.0.1'] });
      const server = sim.host('server', { addresses: ['10.0.0.2'] });
      sim.link('client', 'server', sc.up, { direction: 'a->b' });
      sim.link('client', 'server', sc.down, { direction: 'b->a' });

      const serverGot: Uint8Array[] = [];
      const serverSent: Uint8Array[] = [];
      const clientGot: Uint8Array[] = [];
      const events: string[] = [];
      let srv: Conn | undefined;
      const listener = await server.listenTcp({ host: '0.0.0.0', port: 80 }, (c) => {
        srv = c;
        c.setHandlers({
          data: (d) => {
            serverGot.push(d);
            const reply = pattern(d.length, serverSent.length);
            serverSent.push(reply);
            c.write(reply); // an echo of the same size with different bytes
          },
          end: () => {
            events.push('server:end');
            if (!sc.clientEndsFirst) return;
            c.end();
          },
          error: (e) => events.push(`server:error:${e.code}`),
          close: (h) => events.push(`server:close:${h}`),
        });
        for (const p of sc.pauses) {
          sim.clock.setTimer(p.at, () => c.pause());
          sim.clock.setTimer(p.at + p.forMs, () => c.resume());
        }
      });

      const conn = client.connectTcp({ host: '10.0.0.2', port: 80 });
      const sent = sc.writes.map((w, i) => pattern(w.size, 1_000 + i));
      conn.setHandlers({
        connect: () => {
          let t = 0;
          sent.forEach((b, i) => {
            t += sc.writes[i]!.gapMs;
            sim.clock.setTimer(t, () => {
              conn.write(b);
              if (i === sent.length - 1 && sc.clientEndsFirst) conn.end();
            });
          });
        },
        data: (d) => clientGot.push(d),
        end: () => events.push('client:end'),
        error: (e) => events.push(`client:error:${e.code}`),
        close: (h) => events.push(`client:close:${h}`),
      });
      // When the server ends first it does so once it has everything (it knows the total).
      const total = sent.reduce((s, b) => s + b.length, 0);
      if (!sc.clientEndsFirst) {
        const check = (): void => {
          if (serverGot.reduce((s, b) => s + b.length, 0) === total) {
            srv!.end();
            sim.clock.setTimer(0, () => conn.end());
          } else if (sim.clock.now() < 600_000) sim.clock.setTimer(10, check); // bounded: a bug must not spin forever
        };
        sim.clock.setTimer(10, check);
      }

      const run = sim.runUntilIdle({ maxSteps: 1_000_000 });
      assert.ok(run.idle, 'the run reaches quiescence');
      assert.deepEqual(Buffer.concat(serverGot), Buffer.concat(sent));
      assert.deepEqual(Buffer.concat(clientGot), Buffer.concat(serverSent));
      assert.ok(!events.some((e) => e.includes('error')), `no errors: ${events.join(' ')}`);
      assert.ok(events.includes('client:close:false') && events.includes('server:close:false'), events.join(' '));
      await listener.close();
      assert.deepEqual(sim.netstat().tcp, []);
      assert.equal(sim.clock.pendingTimers(), 0);
    }),
    { numRuns: 100 },
  );
});
