/**
 * The DNS server over the simulated network: the same `startDnsServer` that `refract serve` runs on real sockets,
 * bound on a simulated host, answering a simulated client over UDP and over TCP (framing, several queries on one
 * connection, the idle timeout), with its counters.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer } from '../../../src/dns/server.ts';
import { dnsViewOf, type DnsView } from '../../../src/dns/view.ts';
import type { Datagram } from '../../../src/net/ports.ts';
import { assertNoLeaks, closeListeners, record, settle, world } from '../sim/harness.ts';
import { bigRaw, configOf, decoded as decode, fixtureRaw, query } from './fixture.ts';

function frame(b: Uint8Array): Buffer {
  const out = Buffer.alloc(b.length + 2);
  out.writeUInt16BE(b.length, 0);
  Buffer.from(b).copy(out, 2);
  return out;
}

/** Splits a TCP byte stream into its 2-byte-length-framed messages. */
function unframe(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off + 2 <= b.length) {
    const len = b.readUInt16BE(off);
    out.push(b.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  assert.equal(off, b.length, 'whole frames only');
  return out;
}

describe('DNS server in the simulator', () => {
  it('answers a simulated UDP client, and a new view takes effect on the next query', async () => {
    const { sim, client, server } = world({ defaultLink: { latencyMs: 5 } });
    let view: DnsView = dnsViewOf(configOf(fixtureRaw()));
    const dns = await startDnsServer(server, { host: '10.0.0.2', port: 53 }, () => view);
    assert.deepEqual(dns.address, { address: '10.0.0.2', port: 53, family: 'IPv4' });
    const cli = await client.bindUdp({ host: '0.0.0.0', port: 0 });
    const got: Array<{ at: number; msg: Datagram }> = [];
    cli.setHandler((msg) => got.push({ at: sim.clock.now(), msg }));

    cli.send(query('fixed.example.com', 'A', { id: 1 }), 53, '10.0.0.2');
    settle(sim);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.at, 10, 'one round trip of the 5 ms link');
    assert.deepEqual(got[0]!.msg.remote, { address: '10.0.0.2', port: 53, family: 'IPv4' });
    const p = decode((got[0]!.msg.data));
    assert.equal(p.id, 1);
    assert.deepEqual((p.answers ?? []).map((a) => a.data), ['127.0.0.2']);

    view = dnsViewOf(configOf(fixtureRaw({ edge: { addresses: ['127.0.0.1', '127.0.0.3', '::1'] } })));
    cli.send(query('game.example.com', 'A', { id: 2 }), 53, '10.0.0.2');
    cli.send(query('nope.example.com', 'A', { id: 3 }), 53, '10.0.0.2');
    cli.send(new Uint8Array([1, 2, 3]), 53, '10.0.0.2');
    settle(sim);
    assert.equal(got.length, 3, 'the 3-byte datagram is dropped');
    const second = decode((got[1]!.msg.data));
    assert.deepEqual((second.answers ?? []).map((a) => a.data), ['game.spectrum.example.com', '127.0.0.1', '127.0.0.3']);
    assert.equal(decode((got[2]!.msg.data)).rcode, 'NXDOMAIN');

    const c = dns.counters();
    assert.equal(c.udpQueries, 4);
    assert.equal(c.rcodes.NOERROR, 2);
    assert.equal(c.rcodes.NXDOMAIN, 1);
    assert.equal(c.dropped, 1);
    assert.equal(c.malformed, 1);
    cli.close();
    await dns.close();
    settle(sim);
    assertNoLeaks(sim);
  });

  it('TCP: several framed queries on one connection, answered in order and complete; closed after the idle timeout', async () => {
    const { sim, client, server } = world({ defaultLink: { latencyMs: 2 } });
    const view = dnsViewOf(configOf(bigRaw(100)));
    const dns = await startDnsServer(server, { host: '0.0.0.0', port: 53 }, () => view, { tcpIdleTimeoutMs: 3_000 });
    const conn = client.connectTcp({ host: '10.0.0.2', port: 53 });
    const rec = record(conn, sim, {
      onConnect: () => {
        // Two queries in one write, the second split from a third across writes.
        conn.write(Buffer.concat([frame(query('big.example.com', 'A', { id: 10 })), frame(query('nope.example.com', 'A', { id: 11 }))]));
        const third = frame(query('example.com', 'SOA', { id: 12 }));
        conn.write(third.subarray(0, 5));
        conn.write(third.subarray(5));
      },
    });
    conn.resume();
    settle(sim);
    const msgs = unframe(rec.received()).map((m) => decode(m));
    assert.deepEqual(msgs.map((m) => m.id), [10, 11, 12]);
    assert.equal(msgs[0]!.answers?.length, 100, 'complete over TCP: no truncation');
    assert.equal(msgs[0]!.flags & 0x0200, 0);
    assert.equal(msgs[1]!.rcode, 'NXDOMAIN');
    assert.equal(msgs[2]!.answers?.[0]?.type, 'SOA');
    assert.ok(rec.events.includes('end'), 'the server ended the idle connection');
    const endAt = rec.times[rec.events.indexOf('end')]!;
    assert.ok(endAt >= 3_000, `ended at ${endAt} ms, after the 3 s idle timeout`);
    conn.end();
    settle(sim);
    const c = dns.counters();
    assert.equal(c.tcpQueries, 3);
    assert.equal(c.tcpConnections, 1);
    await dns.close();
    await closeListeners(sim);
    settle(sim);
    assertNoLeaks(sim);
  });

  it('over UDP the same large answer is truncated (TC), and the client completes it over TCP', async () => {
    const { sim, client, server } = world();
    const view = dnsViewOf(configOf(bigRaw(100)));
    const dns = await startDnsServer(server, { host: '10.0.0.2', port: 0 }, () => view);
    const port = dns.address.port;
    assert.ok(port > 0);
    const cli = await client.bindUdp({ host: '0.0.0.0', port: 0 });
    const got: Uint8Array[] = [];
    cli.setHandler((m) => got.push(m.data));
    cli.send(query('big.example.com', 'A', { edns: 1232 }), port, '10.0.0.2');
    settle(sim);
    const udp = decode((got[0]!));
    assert.equal(udp.flags & 0x0200, 0x0200);
    assert.deepEqual(udp.answers, []);
    const conn = client.connectTcp({ host: '10.0.0.2', port });
    const rec = record(conn, sim, { onConnect: () => conn.write(frame(query('big.example.com', 'A', { edns: 1232 }))) });
    conn.resume();
    settle(sim);
    assert.equal(decode(unframe(rec.received())[0]!).answers?.length, 100);
    assert.equal(dns.counters().truncated, 1);
    cli.close();
    conn.destroy();
    await dns.close();
    settle(sim);
    assertNoLeaks(sim);
  });

  it('a bind failure is E_LISTEN_* naming the DNS server, and nothing stays bound', async () => {
    const { sim, server } = world();
    const view = dnsViewOf(configOf(fixtureRaw()));
    const taken = await server.listenTcp({ host: '10.0.0.2', port: 53 }, () => undefined);
    await assert.rejects(startDnsServer(server, { host: '10.0.0.2', port: 53 }, () => view), (e: unknown) => {
      const err = e as { code: string; details: Record<string, unknown> };
      assert.equal(err.code, 'E_LISTEN_ADDRESS_IN_USE');
      assert.equal(err.details['dns'], true);
      assert.equal(err.details['transport'], 'tcp');
      return true;
    });
    await taken.close();
    settle(sim);
    assertNoLeaks(sim);
  });
});
