/**
 * The DNS answer function never throws, whatever the bytes: random bytes, and valid queries with bytes flipped,
 * cut or appended. Every answer decodes (dns-packet), echoes the query's id, has QR set and fits the transport.
 *
 * Runs: 2,000 per property by default; REFRACT_FC_RUNS scales them (REFRACT_FC_RUNS=50: 100,000 each, the long
 * mode of docs/testing.md). REFRACT_FC_SEED changes the seed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode } from 'dns-packet';
import { answerQuery, DNS_UDP_MAX } from '../../../src/dns/answer.ts';
import { dnsViewOf } from '../../../src/dns/view.ts';
import { bigRaw, configOf, fixtureRaw, query } from '../../unit/dns/fixture.ts';

const SEED = process.env.REFRACT_FC_SEED !== undefined ? Number(process.env.REFRACT_FC_SEED) : 20_260_314;
const SCALE = process.env.REFRACT_FC_RUNS !== undefined ? Number(process.env.REFRACT_FC_RUNS) : 1;
const RUNS = Math.max(1, Math.round(2_000 * SCALE));

const views = [dnsViewOf(configOf(fixtureRaw())), dnsViewOf(configOf(bigRaw(60)))];

function check(bytes: Uint8Array, transport: 'udp' | 'tcp', v: number): void {
  const out = answerQuery(bytes, transport, views[v]!);
  if (out.kind === 'drop') {
    assert.ok(bytes.length < 12 || (bytes[2]! & 0x80) !== 0, 'only short queries and responses are dropped');
    return;
  }
  assert.equal(out.bytes[0], bytes[0]);
  assert.equal(out.bytes[1], bytes[1]);
  assert.equal(out.bytes[2]! & 0x80, 0x80, 'QR set');
  if (transport === 'udp') assert.ok(out.bytes.length <= DNS_UDP_MAX);
  decode(Buffer.from(out.bytes));
}

const seeds = [
  query('game.example.com', 'A'),
  query('GAME.example.com', 'AAAA', { edns: 1232 }),
  query('big.example.com', 'A', { edns: 4096 }),
  query('example.com', 'NS'),
  query('nope.example.com', 'TXT', { edns: 512, ednsFlags: 0x8000 }),
  query('1.0.0.127.in-addr.arpa', 'PTR'),
];

describe('DNS answer function: never throws', () => {
  it(`random bytes (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.constantFrom('udp' as const, 'tcp' as const), fc.nat(1), (bytes, t, v) => check(bytes, t, v)),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`valid queries with bytes flipped, cut or appended (${RUNS} runs)`, () => {
    const mutated = fc
      .tuple(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.uint8Array({ maxLength: 40 }),
      )
      .map(([q, flips, cut, tail]) => {
        const b = Buffer.from(q);
        for (const [at, v] of flips) b[at % b.length] = v;
        const kept = cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
        // Never a response: those are dropped before anything is read, which would hide the rest.
        if (kept.length > 2) kept[2] = kept[2]! & 0x7f;
        return Buffer.concat([kept, tail]);
      });
    fc.assert(
      fc.property(mutated, fc.constantFrom('udp' as const, 'tcp' as const), fc.nat(1), (bytes, t, v) => check(bytes, t, v)),
      { seed: SEED + 1, numRuns: RUNS },
    );
  });
});
