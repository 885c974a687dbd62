/**
 * What `npm run fuzz` (test/fuzz) found in the DNS answer function, with the minimal input. A query header claims
 * how many records follow; dns-packet decoded that many whatever the length, reading past the end, so 57 bytes
 * claiming 108,439 records took 2.3 s of CPU, and 65,535 of each kind 4 s: a few packets a second would have held
 * the event loop. Counts the bytes cannot hold are now FORMERR before any decoding.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { answerQuery } from '../../../src/dns/answer.ts';
import { dnsViewOf } from '../../../src/dns/view.ts';
import { configOf, fixtureRaw, query } from './fixture.ts';

const view = dnsViewOf(configOf(fixtureRaw()));

function outcome(bytes: Uint8Array): [string, boolean] | 'drop' {
  const r = answerQuery(bytes, 'udp', view);
  return r.kind === 'drop' ? 'drop' : [r.rcode, r.malformed];
}

describe('DNS: record counts in the header', () => {
  it('a query claiming 65,535 answer, authority and additional records is FORMERR', () => {
    const q = Buffer.from(query('game.example.com', 'A'));
    q.fill(0xff, 6, 12);
    assert.deepEqual(outcome(q), ['FORMERR', true]);
  });

  it('the fuzz input (57 bytes, 49,011 + 25,380 + 34,048 records claimed) is FORMERR', () => {
    const q = Uint8Array.from([
      16, 146, 1, 0, 0, 1, 191, 115, 99, 36, 133, 0, 0, 0, 0, 0, 1, 4, 110, 111, 112, 101, 7, 101, 120, 97, 109, 112, 108, 101, 3, 99, 111, 109, 0, 0,
      16, 255, 255, 0, 0, 171, 11, 139, 219, 84, 11, 17, 41, 2, 0, 0, 0, 128, 0, 0, 0,
    ]);
    assert.deepEqual(outcome(q), ['FORMERR', true]);
  });

  it('counts the bytes can hold are decoded as before: one OPT record of 11 bytes, and one record too many', () => {
    const withOpt = Buffer.from(query('game.example.com', 'A', { edns: 1232 }));
    assert.deepEqual(outcome(withOpt), ['NOERROR', false]);
    const oneMore = Buffer.from(withOpt);
    oneMore[11] = 2; // two additional records claimed, bytes for one
    assert.deepEqual(outcome(oneMore), ['FORMERR', true]);
  });
});
