import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Tracker } from '../../../src/scenario/tracker.ts';
import { type TraceRecord } from '../../../src/streams/trace.ts';

const rec = (conn: number, event: TraceRecord['event'], detail: Record<string, unknown> = {}): TraceRecord => ({ t: 5, node: 'edge', app: 'a', conn, event, ...detail });

void describe('Tracker', () => {
  void it('ties an accept to the timeline connection by client address, IPv4-mapped or not', () => {
    const tr = new Tracker([{ name: 'edge', addresses: ['198.51.100.1'] }]);
    const t = tr.addConnection('c', false, false);
    tr.clientSocket(t, { address: '203.0.113.10', port: 40000, family: 'IPv4' });
    tr.onTrace('edge', 1, rec(7, 'accept', { client: '::ffff:203.0.113.10:40000' }));
    assert.equal(t.edge, 'edge');
    assert.equal(t.acceptAt, 5);
    tr.onTrace('edge', 1, rec(7, 'close', { status: 200, reason: 'normal', bytes_in: 3, bytes_out: 4 }));
    assert.deepEqual([t.status, t.reason, t.clientBytes, t.originBytes], [200, 'normal', 3, 4]);
  });

  void it('gives the upstream socket opened right after a dial to that connection, and the next one to none', () => {
    const tr = new Tracker([{ name: 'edge', addresses: ['198.51.100.1'] }]);
    const t = tr.addConnection('c', false, false);
    tr.clientSocket(t, { address: '203.0.113.10', port: 40000, family: 'IPv4' });
    tr.onTrace('edge', 1, rec(1, 'accept', { client: '203.0.113.10:40000' }));
    tr.onTrace('edge', 1, rec(1, 'dial'));
    tr.upstreamOpened({ address: '198.51.100.1', port: 50000, family: 'IPv4' });
    tr.upstreamOpened({ address: '198.51.100.1', port: 50001, family: 'IPv4' });
    assert.equal(tr.connectionOfUpstream({ address: '198.51.100.1', port: 50000, family: 'IPv4' }), t);
    assert.equal(tr.connectionOfUpstream({ address: '198.51.100.1', port: 50001, family: 'IPv4' }), undefined);
    // As a dual-stack origin sees it (IPv4-mapped); and once only (an origin accepts a socket once).
    tr.onTrace('edge', 1, rec(1, 'dial'));
    tr.upstreamOpened({ address: '198.51.100.1', port: 50002, family: 'IPv4' });
    assert.equal(tr.connectionOfUpstream({ address: '::ffff:198.51.100.1', port: 50002, family: 'IPv6' }), t);
    assert.equal(tr.connectionOfUpstream({ address: '198.51.100.1', port: 50002, family: 'IPv4' }), undefined);
  });

  void it('ties accepts to client sockets on several addresses, IPv6 too, each socket once', () => {
    const tr = new Tracker([{ name: 'edge', addresses: ['198.51.100.1'] }]);
    const socks = [
      ['203.0.113.10', 40000, '203.0.113.10:40000'],
      ['203.0.113.11', 40000, '::ffff:203.0.113.11:40000'],
      ['2001:db8::10', 40000, '2001:db8::10:40000'],
      ['203.0.113.10', 40001, '203.0.113.10:40001'],
      ['2001:db8::1', 40002, '2001:db8::1:40002'],
      ['203.0.113.1', 40003, '203.0.113.1:40003'],
    ] as const;
    const tracks = socks.map(([address, port], i) => {
      const t = tr.addConnection(`c${i}`, false, false);
      tr.clientSocket(t, { address, port, family: address.includes(':') ? 'IPv6' : 'IPv4' });
      return t;
    });
    // A client text that names no socket (another port, another address, no port) ties nothing.
    for (const client of ['203.0.113.10:40002', '203.0.113.100:40000', '203.0.113.10', '2001:db8::10:40001']) tr.onTrace('edge', 1, rec(99, 'accept', { client }));
    socks.forEach(([, , client], i) => tr.onTrace('edge', 1, rec(i + 1, 'accept', { client })));
    assert.deepEqual(tracks.map((t) => t.edge), socks.map(() => 'edge'));
    for (const [i, t] of tracks.entries()) {
      tr.onTrace('edge', 1, rec(i + 1, 'close', { status: 200 + i, reason: 'r', bytes_in: 0, bytes_out: 0 }));
      assert.equal(t.status, 200 + i);
    }
    // Each socket is tied once: the same client text again (another connection number) ties nothing.
    tr.onTrace('edge', 1, rec(50, 'accept', { client: '203.0.113.10:40000' }));
    tr.onTrace('edge', 1, rec(50, 'close', { status: 502, reason: 'x', bytes_in: 0, bytes_out: 0 }));
    assert.equal(tracks[0]!.status, 200);
  });

  void it('keeps a restarted edge\'s connection numbers apart from the previous incarnation\'s', () => {
    const tr = new Tracker([{ name: 'edge', addresses: ['198.51.100.1'] }]);
    const a = tr.addConnection('a', false, false);
    const b = tr.addConnection('b', false, false);
    tr.clientSocket(a, { address: '203.0.113.10', port: 40000, family: 'IPv4' });
    tr.clientSocket(b, { address: '203.0.113.10', port: 40001, family: 'IPv4' });
    tr.onTrace('edge', 1, rec(1, 'accept', { client: '203.0.113.10:40000' }));
    tr.onTrace('edge', 2, rec(1, 'accept', { client: '203.0.113.10:40001' }));
    tr.onTrace('edge', 2, rec(1, 'close', { status: 502, reason: 'x', bytes_in: 0, bytes_out: 0 }));
    assert.equal(a.status, undefined);
    assert.equal(b.status, 502);
  });

  void it('knows a UDP flow by the upstream socket the engine armed just before the flow\'s established record', () => {
    const tr = new Tracker([{ name: 'edge', addresses: ['198.51.100.1'] }]);
    const f = tr.addFlow({ id: 'f', client: 'alice', to: '198.51.100.1:53', text: 'q' });
    tr.flowSocket(f, { address: '203.0.113.10', port: 40000, family: 'IPv4' });
    tr.onTrace('edge', 1, rec(1, 'accept', { proto: 'udp', client: '203.0.113.10:40000' }));
    tr.udpUpstreamArmed('edge', 50000);
    tr.onTrace('edge', 1, rec(1, 'established', { proto: 'udp' }));
    assert.equal(f.edgeFlows, 1);
    assert.equal(tr.flowOfUpstream({ address: '198.51.100.1', port: 50000, family: 'IPv4' }), f);
    assert.equal(tr.flowOfUpstream({ address: '198.51.100.2', port: 50000, family: 'IPv4' }), undefined);
  });
});
