/**
 * The DNS answer function (src/dns/answer.ts) over the view of a fixed config (fixture.ts): every rule of
 * docs/dns.md, with queries built by dns-packet and answers decoded by it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from 'dns-packet';
import { answerQuery, type DnsOutcome } from '../../../src/dns/answer.ts';
import { dnsViewOf, type DnsView } from '../../../src/dns/view.ts';
import { bigRaw, configOf, decoded, fixtureRaw, query, rdata } from './fixture.ts';

const view: DnsView = dnsViewOf(configOf(fixtureRaw()));
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;

function answer(bytes: Uint8Array, v: DnsView = view, transport: 'udp' | 'tcp' = 'udp'): Extract<DnsOutcome, { kind: 'answer' }> {
  const out = answerQuery(bytes, transport, v);
  assert.equal(out.kind, 'answer');
  return out as Extract<DnsOutcome, { kind: 'answer' }>;
}

function ask(name: string, type: Parameters<typeof query>[1], o: Parameters<typeof query>[2] = {}, v: DnsView = view) {
  const out = answer(query(name, type, o), v);
  return { out, p: decoded(out.bytes) };
}

describe('DNS answers: records', () => {
  it('A of a CNAME app: the CNAME to its target in the zone, then the target A records, in one answer; AA set, id and RD echoed', () => {
    const { out, p } = ask('game.example.com', 'A', { id: 777 });
    assert.equal(out.rcode, 'NOERROR');
    assert.equal(p.id, 777);
    assert.equal(p.flags & AA, AA);
    assert.equal(p.flags & RD, RD);
    assert.equal(p.flags & TC, 0);
    assert.deepEqual(rdata(p.answers), ['CNAME game.spectrum.example.com', 'A 127.0.0.1', 'A 127.0.0.2']);
    assert.deepEqual(
      (p.answers ?? []).map((a) => [a.name, a.ttl]),
      [
        ['game.example.com', 42],
        ['game.spectrum.example.com', 42],
        ['game.spectrum.example.com', 42],
      ],
    );
    assert.deepEqual(p.authorities, []);
  });

  it('AAAA follows the same CNAME to the IPv6 edge address', () => {
    const { p } = ask('game.example.com', 'AAAA');
    assert.deepEqual(rdata(p.answers), ['CNAME game.spectrum.example.com', 'AAAA ::1']);
  });

  it('the CNAME target itself resolves, and so does the target of the other app sharing the name (the union of both)', () => {
    assert.deepEqual(rdata(ask('game.spectrum.example.com', 'A').p.answers), ['A 127.0.0.1', 'A 127.0.0.2']);
    assert.deepEqual(rdata(ask('game-udp.spectrum.example.com', 'AAAA').p.answers), ['AAAA ::1']);
  });

  it('a CNAME query gets the CNAME alone', () => {
    const { out, p } = ask('game.example.com', 'CNAME');
    assert.equal(out.rcode, 'NOERROR');
    assert.deepEqual(rdata(p.answers), ['CNAME game.spectrum.example.com']);
    assert.deepEqual(p.authorities, []);
  });

  it('connectivity ipv6: no A at the end of the chain (NODATA with the SOA), AAAA answered', () => {
    const a = ask('v6.example.com', 'A');
    assert.equal(a.out.rcode, 'NOERROR');
    assert.deepEqual(rdata(a.p.answers), ['CNAME v6.spectrum.example.com']);
    assert.deepEqual(rdata(a.p.authorities).map((r) => r.split(' ')[0]), ['SOA']);
    assert.deepEqual(rdata(ask('v6.example.com', 'AAAA').p.answers), ['CNAME v6.spectrum.example.com', 'AAAA ::1']);
    assert.deepEqual(rdata(ask('v4.example.com', 'AAAA').p.answers), ['CNAME v4.spectrum.example.com']);
    assert.deepEqual(rdata(ask('v4.example.com', 'A').p.answers), ['CNAME v4.spectrum.example.com', 'A 127.0.0.1', 'A 127.0.0.2']);
  });

  it('a static app answers its ips the edge binds, directly (ADDRESS: no CNAME), and not the unbound one', () => {
    const { p } = ask('fixed.example.com', 'A');
    assert.deepEqual(rdata(p.answers), ['A 127.0.0.2']);
  });

  it('an app at the zone apex is answered with addresses, beside the SOA and NS', () => {
    assert.deepEqual(rdata(ask('example.com', 'A').p.answers), ['A 127.0.0.1', 'A 127.0.0.2']);
    assert.deepEqual(rdata(ask('example.com', 'AAAA').p.answers), ['AAAA ::1']);
  });

  it('ANY at a name answers its A and AAAA records', () => {
    assert.deepEqual(rdata(ask('fixed.example.com', 'ANY').p.answers), ['A 127.0.0.2']);
    assert.deepEqual(rdata(ask('game.spectrum.example.com', 'ANY').p.answers), ['A 127.0.0.1', 'A 127.0.0.2', 'AAAA ::1']);
  });

  it('TTLs come from dns.ttl', () => {
    const v = dnsViewOf(configOf(fixtureRaw({ dns: { ttl: 5 } })));
    const { p } = ask('fixed.example.com', 'A', {}, v);
    assert.deepEqual((p.answers ?? []).map((a) => a.ttl), [5]);
    const nx = ask('nope.example.com', 'A', {}, v).p;
    assert.equal(nx.authorities?.[0]?.ttl, 5);
    assert.equal((nx.authorities?.[0] as { data: { minimum: number } }).data.minimum, 5);
  });
});

describe('DNS answers: the zone apex', () => {
  it('SOA at the apex', () => {
    const { out, p } = ask('example.com', 'SOA');
    assert.equal(out.rcode, 'NOERROR');
    assert.equal(p.answers?.length, 1);
    const soa = p.answers![0] as { type: string; name: string; data: Record<string, number | string> };
    assert.equal(soa.type, 'SOA');
    assert.equal(soa.name, 'example.com');
    assert.equal(soa.data['mname'], 'ns.example.com');
    assert.equal(soa.data['rname'], 'hostmaster.example.com');
    assert.equal(soa.data['minimum'], 42);
    assert.ok(Number(soa.data['serial']) > 0);
  });

  it('NS at the apex, with the listen address as glue', () => {
    const { p } = ask('example.com', 'NS');
    assert.deepEqual(rdata(p.answers), ['NS ns.example.com']);
    assert.deepEqual(rdata((p.additionals ?? []).filter((r) => r.type !== 'OPT')), ['A 127.0.0.1']);
    assert.deepEqual(rdata(ask('ns.example.com', 'A').p.answers), ['A 127.0.0.1']);
  });

  it('the SOA serial changes when the zone changes, and not otherwise', () => {
    const serial = (v: DnsView): number => v.zone('example.com')!.soa.serial;
    const again = dnsViewOf(configOf(fixtureRaw()));
    assert.equal(serial(again), serial(view));
    const fewer = dnsViewOf(configOf(fixtureRaw({ edge: { addresses: ['127.0.0.1', '::1'] } })));
    assert.notEqual(serial(fewer), serial(view));
  });
});

describe('DNS answers: negative answers', () => {
  it('NXDOMAIN with the zone SOA in authority for an unknown name inside the zone; AA set', () => {
    const { out, p } = ask('nope.example.com', 'A');
    assert.equal(out.rcode, 'NXDOMAIN');
    assert.equal(p.rcode, 'NXDOMAIN');
    assert.equal(p.flags & AA, AA);
    assert.deepEqual(p.answers, []);
    assert.equal(p.authorities?.length, 1);
    assert.equal(p.authorities![0]!.type, 'SOA');
    assert.equal(p.authorities![0]!.name, 'example.com');
  });

  it('NODATA (NOERROR, no answer, SOA in authority) for a type the name does not hold', () => {
    for (const [name, type] of [
      ['fixed.example.com', 'MX'],
      ['fixed.example.com', 'AAAA'],
      ['example.com', 'TXT'],
      ['game.spectrum.example.com', 'TXT'],
    ] as const) {
      const { out, p } = ask(name, type);
      assert.equal(out.rcode, 'NOERROR', `${name} ${type}`);
      assert.deepEqual(p.answers, [], `${name} ${type}`);
      assert.deepEqual(rdata(p.authorities).map((r) => r.split(' ')[0]), ['SOA'], `${name} ${type}`);
    }
  });

  it('a TXT query at a CNAME name gets the CNAME and then NODATA at the target', () => {
    const { out, p } = ask('game.example.com', 'TXT');
    assert.equal(out.rcode, 'NOERROR');
    assert.deepEqual(rdata(p.answers), ['CNAME game.spectrum.example.com']);
    assert.equal(p.authorities?.[0]?.type, 'SOA');
  });

  it('an empty non-terminal (spectrum.example.com) is NODATA, not NXDOMAIN', () => {
    const { out, p } = ask('spectrum.example.com', 'A');
    assert.equal(out.rcode, 'NOERROR');
    assert.deepEqual(p.answers, []);
    assert.equal(p.authorities?.[0]?.type, 'SOA');
    assert.equal(ask('x.spectrum.example.com', 'A').out.rcode, 'NXDOMAIN');
  });

  it('REFUSED outside the served zones (AA clear), including an app whose name lies in no zone', () => {
    for (const name of ['example.org', 'app.outside.test', 'com', 'xexample.com']) {
      const { out, p } = ask(name, 'A');
      assert.equal(out.rcode, 'REFUSED', name);
      assert.equal(p.flags & AA, 0, name);
      assert.deepEqual(p.answers, [], name);
      assert.deepEqual(p.authorities, [], name);
    }
  });

  it('PTR is REFUSED, for a reverse name and for a name inside the zone alike (no reverse DNS, as Spectrum)', () => {
    assert.equal(ask('1.0.0.127.in-addr.arpa', 'PTR').out.rcode, 'REFUSED');
    assert.equal(ask('game.example.com', 'PTR').out.rcode, 'REFUSED');
  });

  it('zone transfers and classes other than IN are REFUSED', () => {
    assert.equal(ask('example.com', 'AXFR').out.rcode, 'REFUSED');
    assert.equal(ask('example.com', 'IXFR').out.rcode, 'REFUSED');
    assert.equal(ask('game.example.com', 'A', { cls: 'CH' }).out.rcode, 'REFUSED');
  });

  it('a view with no zone refuses everything', () => {
    const none = dnsViewOf(configOf({ apps: [] }));
    assert.equal(ask('game.example.com', 'A', {}, none).out.rcode, 'REFUSED');
  });
});

describe('DNS answers: names', () => {
  it('names are case-insensitive and the question is echoed exactly as asked (0x20)', () => {
    const q = query('GaMe.ExAmPlE.cOm', 'A');
    const out = answer(q);
    const p = decoded(out.bytes);
    assert.equal(out.rcode, 'NOERROR');
    assert.deepEqual(p.questions, [{ name: 'GaMe.ExAmPlE.cOm', type: 'A', class: 'IN' }]);
    assert.deepEqual(Buffer.from(out.bytes.subarray(12, q.length)), q.subarray(12), 'the question bytes are the query bytes');
    assert.equal(p.answers?.[0]?.name, 'GaMe.ExAmPlE.cOm');
    assert.deepEqual(rdata(p.answers), ['CNAME game.spectrum.example.com', 'A 127.0.0.1', 'A 127.0.0.2']);
  });

  it('a trailing dot makes no difference; a name with a byte no served name has is NXDOMAIN inside a zone, REFUSED outside', () => {
    assert.equal(ask('fixed.example.com.', 'A').out.rcode, 'NOERROR');
    // A label holding a dot byte ("a.b" as one label) and one with a space.
    const weird = (labels: string[]): Buffer => {
      const parts = labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
      const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
      return Buffer.concat([header, ...parts, Buffer.from([0, 0, 1, 0, 1])]);
    };
    const inZone = answer(weird(['fixed.example', 'example', 'com']));
    assert.equal(inZone.rcode, 'NXDOMAIN');
    assert.deepEqual(Buffer.from(inZone.bytes.subarray(12, 12 + 28)), weird(['fixed.example', 'example', 'com']).subarray(12, 12 + 28));
    assert.equal(answer(weird(['a b', 'example', 'com'])).rcode, 'NXDOMAIN');
    assert.equal(answer(weird(['fixed', 'example.com'])).rcode, 'REFUSED', '"example.com" as one label is no zone');
    assert.equal(answer(weird(['\xff', 'example', 'org'])).rcode, 'REFUSED');
  });
});

describe('DNS answers: EDNS0 and truncation', () => {
  it('an OPT in the query gets an OPT back (size 1232, the DO bit copied); none without', () => {
    const withOpt = ask('fixed.example.com', 'A', { edns: 4096, ednsFlags: 0x8000 }).p;
    const opt = (withOpt.additionals ?? []).find((r) => r.type === 'OPT') as { udpPayloadSize: number; flags: number } | undefined;
    assert.ok(opt);
    assert.equal(opt.udpPayloadSize, 1232);
    assert.equal(opt.flags & 0x8000, 0x8000);
    const plain = ask('fixed.example.com', 'A').p;
    assert.deepEqual(plain.additionals, []);
  });

  it('EDNS version 1 is BADVERS (extended rcode 16) with an OPT', () => {
    const { out, p } = ask('fixed.example.com', 'A', { edns: 1232, ednsVersion: 1 });
    assert.equal(out.rcode, 'BADVERS');
    assert.equal(p.flags & 0xf, 0);
    const opt = (p.additionals ?? []).find((r) => r.type === 'OPT') as { extendedRcode: number } | undefined;
    assert.equal(opt?.extendedRcode, 1);
    assert.deepEqual(p.answers, []);
  });

  // 30 A records of big.example.com: about 960 bytes, over 512 and under 1232.
  const mid = dnsViewOf(configOf(bigRaw(30)));
  it('a UDP answer larger than 512 bytes without EDNS is sent empty with TC; over TCP it is complete', () => {
    const udp = answer(query('big.example.com', 'A'), mid);
    assert.equal(udp.truncated, true);
    assert.ok(udp.bytes.length <= 512);
    const p = decoded(udp.bytes);
    assert.equal(p.flags & TC, TC);
    assert.deepEqual(p.answers, []);
    assert.deepEqual(p.questions, [{ name: 'big.example.com', type: 'A', class: 'IN' }]);
    const tcp = answer(query('big.example.com', 'A'), mid, 'tcp');
    assert.equal(tcp.truncated, false);
    assert.ok(tcp.bytes.length > 512);
    assert.equal(decoded(tcp.bytes).answers?.length, 30);
  });

  it('the EDNS size bounds a UDP answer, clamped to 512-1232', () => {
    assert.equal(answer(query('big.example.com', 'A', { edns: 1232 }), mid).truncated, false);
    assert.equal(answer(query('big.example.com', 'A', { edns: 65_000 }), mid).truncated, false, 'clamped down to 1232: fits');
    assert.equal(answer(query('big.example.com', 'A', { edns: 700 }), mid).truncated, true);
    assert.equal(answer(query('big.example.com', 'A', { edns: 100 }), mid).truncated, true, 'clamped up to 512: still too big');
    const big = dnsViewOf(configOf(bigRaw(100)));
    const t = answer(query('big.example.com', 'A', { edns: 4096 }), big);
    assert.equal(t.truncated, true);
    assert.ok(t.bytes.length <= 1232);
    assert.ok((decoded(t.bytes).additionals ?? []).some((r) => r.type === 'OPT'), 'a truncated answer keeps its OPT');
    assert.equal(decoded(answer(query('big.example.com', 'A', { edns: 4096 }), big, 'tcp').bytes).answers?.length, 100);
  });
});

describe('DNS answers: malformed and unusual queries', () => {
  it('fewer than 12 bytes: dropped; a response (QR set): dropped', () => {
    assert.deepEqual(answerQuery(new Uint8Array(11), 'udp', view), { kind: 'drop', reason: 'short' });
    const resp = encode({ id: 5, type: 'response', questions: [{ name: 'fixed.example.com', type: 'A' }] });
    assert.deepEqual(answerQuery(resp, 'udp', view), { kind: 'drop', reason: 'response' });
  });

  it('a readable header with bytes that do not decode: FORMERR, id echoed, counted as malformed', () => {
    const q = Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x61]);
    const out = answer(q);
    assert.equal(out.rcode, 'FORMERR');
    assert.equal(out.malformed, true);
    const p = decoded(out.bytes);
    assert.equal(p.id, 0xabcd);
    assert.equal(p.rcode, 'FORMERR');
    assert.deepEqual(p.questions, []);
  });

  it('two questions, or none: FORMERR', () => {
    const two = encode({ id: 1, type: 'query', questions: [{ name: 'a.example.com', type: 'A' }, { name: 'b.example.com', type: 'A' }] });
    assert.equal(answer(two).rcode, 'FORMERR');
    const none = encode({ id: 1, type: 'query', questions: [] });
    assert.equal(answer(none).rcode, 'FORMERR');
  });

  it('an opcode other than QUERY: NOTIMP, question echoed', () => {
    const q = query('fixed.example.com', 'A', { flags: 2 << 11 });
    const out = answer(q);
    assert.equal(out.rcode, 'NOTIMP');
    const p = decoded(out.bytes);
    assert.equal(p.opcode, 'STATUS');
    assert.deepEqual(p.questions, [{ name: 'fixed.example.com', type: 'A', class: 'IN' }]);
  });

  it('two OPT records: FORMERR', () => {
    const q = encode({
      id: 9,
      type: 'query',
      questions: [{ name: 'fixed.example.com', type: 'A' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as never, { type: 'OPT', name: '.', udpPayloadSize: 1232 } as never],
    });
    assert.equal(answer(q).rcode, 'FORMERR');
  });
});
