import test from 'node:test';
import assert from 'node:assert/strict';
import { type DnsAnswer } from '../../../src/net/ports.ts';
import { world } from './harness.ts';

test('resolve answers from the zone after the configured latency, with records and TTL', async () => {
  const { sim, client } = world({ dns: { latencyMs: 3 } });
  sim.dns.set('Origin.Example.', 'A', ['10.0.0.2', '10.0.0.3'], 60);
  let answer: DnsAnswer | undefined;
  const p = client.resolve('origin.example', 'A').then((a) => (answer = a));
  await sim.clock.advanceByAsync(2);
  assert.equal(answer, undefined);
  await sim.clock.advanceByAsync(1);
  await p;
  assert.deepEqual(answer, {
    records: [
      { address: '10.0.0.2', family: 'IPv4' },
      { address: '10.0.0.3', family: 'IPv4' },
    ],
    ttlSec: 60,
  });
});

test('an unknown name is ENOTFOUND and a known name without that type is ENODATA', async () => {
  const { sim, client } = world();
  sim.dns.set('v4only.example', 'A', ['10.0.0.2']);
  const unknown = client.resolve('nope.example', 'A');
  const nodata = client.resolve('v4only.example', 'AAAA');
  await sim.runUntilIdleAsync();
  await assert.rejects(unknown, { code: 'ENOTFOUND', syscall: 'queryA', hostname: 'nope.example' });
  await assert.rejects(nodata, { code: 'ENODATA', syscall: 'queryAaaa' });
});

test('records can change mid-run and the next query sees the change', async () => {
  const { sim, client } = world();
  sim.dns.set('flip.example', 'AAAA', ['fd00::2'], 5);
  const first = client.resolve('flip.example', 'AAAA');
  await sim.runUntilIdleAsync();
  sim.dns.set('flip.example', 'AAAA', ['FD00::0003'], 5);
  const second = client.resolve('flip.example', 'AAAA');
  await sim.runUntilIdleAsync();
  assert.equal((await first).records[0]!.address, 'fd00::2');
  assert.deepEqual((await second).records[0], { address: 'fd00::3', family: 'IPv6' });
  sim.dns.delete('flip.example');
  const gone = client.resolve('flip.example', 'AAAA');
  await sim.runUntilIdleAsync();
  await assert.rejects(gone, { code: 'ENOTFOUND' });
});

test('SRV records carry target names and ports', async () => {
  const { sim, client } = world();
  sim.dns.set('_game._udp.example', 'SRV', [{ address: 'origin.example', port: 27015, priority: 10, weight: 5 }], 30);
  const p = client.resolve('_game._udp.example', 'SRV');
  await sim.runUntilIdleAsync();
  assert.deepEqual(await p, { records: [{ address: 'origin.example', port: 27015, priority: 10, weight: 5 }], ttlSec: 30 });
});

test('injected failures answer with their code; ETIMEOUT only after the resolver timeout', async () => {
  const { sim, client } = world({ dns: { latencyMs: 1, timeoutMs: 5_000 } });
  sim.dns.set('flaky.example', 'A', ['10.0.0.2']);
  sim.dns.fail('flaky.example', 'ESERVFAIL');
  const servfail = client.resolve('flaky.example', 'A');
  await sim.runUntilIdleAsync();
  await assert.rejects(servfail, { code: 'ESERVFAIL' });
  sim.dns.fail('flaky.example', 'ETIMEOUT');
  const t0 = sim.clock.now();
  const timeout = client.resolve('flaky.example', 'A').catch((e: { code: string }) => ({ code: e.code, at: sim.clock.now() - t0 }));
  await sim.runUntilIdleAsync();
  assert.deepEqual(await timeout, { code: 'ETIMEOUT', at: 5_000 });
  sim.dns.fail('flaky.example', null);
  const ok = client.resolve('flaky.example', 'A');
  await sim.runUntilIdleAsync();
  assert.equal((await ok).records.length, 1);
});

test('records of the wrong family are refused when set', () => {
  const { sim } = world();
  assert.throws(() => sim.dns.set('x.example', 'A', ['fd00::1']), RangeError);
  assert.throws(() => sim.dns.set('x.example', 'AAAA', ['10.0.0.1']), RangeError);
  assert.throws(() => sim.dns.set('x.example', 'SRV', ['target.example']), RangeError);
});
