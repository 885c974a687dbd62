/**
 * Real peer: `dig` (BIND 9's DNS client) as the CLIENT of a UDP app, a DNS server as the origin. dig builds its
 * own queries, matches the answer's id and question and fails on anything malformed, so this checks that a real
 * UDP client gets a real answer back through Refract, byte for byte, from the port it asked from.
 *
 * What dig 9.18 does that the tests rely on (observed, and stated so a different dig that changes it fails loudly):
 * each query goes out from a fresh ephemeral source port — even two names in one run — unless `-b addr#port` pins
 * the port, in which case every query of the run comes from that port.
 *
 * Ports 7950-7969 belong to this file: the edge listens on 7950-7951; dig's pinned source ports are 7960-7961. The
 * DNS origin binds 127.0.0.1 on an ephemeral port.
 * Needs `dig` on PATH (Debian package `dnsutils`; .ci/run installs it). Without it the suite is skipped, loudly,
 * unless REFRACT_REQUIRE_PEERS=1 (set by .ci/run) makes it fail.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { encode } from 'dns-packet';
import { startEdge, delay, type EdgeUnderTest } from '../helpers/edge.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import type { SpectrumEvent } from '../../src/streams/events.ts';
import { findOnPath, missingPeer, peerSkip } from '../helpers/peers.ts';

/**
 * Flows idle this long end: short so the tests see the closing events soon, long enough that the flows of three
 * consecutive dig runs are all still alive together on a busy machine (a dig run takes ~20-100 ms here).
 */
const IDLE_MS = 1_500;


const digBin = findOnPath('dig');
const skipReason = peerSkip('dig', 'dnsutils', digBin);

function needDig(): string {
  if (digBin === undefined) {
    throw missingPeer('dig', 'dnsutils');
  }
  return digBin;
}

/**
 * Runs dig (asynchronously: the edge runs in this process) and returns its exit code and output. `+time=2
 * +tries=1` bounds each query to 2 s; the process is killed after 10 s whatever happens.
 */
function dig(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = needDig();
  return new Promise((resolve) => {
    execFile(bin, [...args], { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const udpApp = (name: string, port: number, dnsPort: number) => ({
  dns: { type: 'CNAME', name: `${name}.peer.test` },
  protocol: `udp/${port}`,
  origin_direct: [`udp://127.0.0.1:${dnsPort}`],
});

const startDnsEdge = (port: number, dnsPort: number): Promise<EdgeUnderTest> =>
  startEdge({ edge: { addresses: ['127.0.0.1'], udp_idle_timeout_ms: IDLE_MS }, apps: [udpApp(`dig-${port}`, port, dnsPort)] });

/** The size of the answer test/helpers/dns-server.ts sends for one A record (names uncompressed, no OPT). */
function answerBytes(name: string, address: string): number {
  return encode({
    type: 'response',
    id: 0,
    flags: 0,
    questions: [{ type: 'A', name, class: 'IN' }],
    answers: [{ type: 'A', name, ttl: 300, data: address }],
  }).length;
}

const closings = (e: EdgeUnderTest): SpectrumEvent[] => e.events.filter((x) => x.Event !== 'connect');

/** Checks the fields every flow in these tests shares: a UDP flow of this app that ended idle, status 200. */
function assertIdleUdpFlow(ev: SpectrumEvent, edgePort: number, dnsPort: number): void {
  assert.equal(ev.Event, 'disconnect');
  assert.equal(ev.ClientProto, 'udp');
  assert.equal(ev.OriginProto, 'udp');
  assert.equal(ev.Status, 200);
  assert.equal(ev.CloseReason, 'idle_timeout');
  assert.equal(ev.ErrorCode, 'E_IDLE_TIMEOUT');
  assert.equal(ev.ClientIP, '127.0.0.1');
  assert.equal(ev.EdgePort, edgePort);
  assert.equal(ev.OriginIP, '127.0.0.1');
  assert.equal(ev.OriginPort, dnsPort);
  assert.ok(ev.DurationMs >= IDLE_MS, `flow ${ev.ConnectionID} lasted ${ev.DurationMs} ms, less than the ${IDLE_MS} ms idle timeout`);
}

describe('dig through a UDP app to a DNS origin', { skip: skipReason, timeout: 60_000 }, () => {
  let dns: TestDnsServer | undefined;

  before(async () => {
    dns = await startDnsServer();
    dns.set('www.example.test', 'A', ['192.0.2.10'], 300);
    dns.set('mail.example.test', 'A', ['192.0.2.25'], 300);
  });

  after(async () => {
    await dns?.close();
  });

  test('dig gets the answer through Refract, and the flow ends idle with one datagram each way', { timeout: 20_000 }, async () => {
    needDig();
    const server = dns!;
    const e = await startDnsEdge(7950, server.port);
    const queriesBefore = server.queries;
    try {
      const r = await dig(['@127.0.0.1', '-p', '7950', '+short', '+time=2', '+tries=1', 'www.example.test', 'A']);
      assert.equal(r.code, 0, `dig failed: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '192.0.2.10\n');
      assert.equal(server.queries - queriesBefore, 1, 'exactly one query reached the origin');

      const ev = await e.closing(1);
      assertIdleUdpFlow(ev, 7950, server.port);
      assert.equal(ev.ClientPackets, 1);
      assert.equal(ev.OriginPackets, 1);
      // The origin's answer arrives whole and bare: exactly the bytes the DNS server encodes for it (dig's query
      // size depends on its EDNS options, so only its 12-byte DNS header is a floor).
      assert.equal(ev.OriginBytes, answerBytes('www.example.test', '192.0.2.10'));
      assert.ok(ev.ClientBytes > 12, `query of ${ev.ClientBytes} bytes`);
      const connects = e.events.filter((x) => x.Event === 'connect');
      assert.equal(connects.length, 1);
      assert.equal(connects[0]!.ConnectionID, ev.ConnectionID);
      assert.equal(connects[0]!.ClientPort, ev.ClientPort);
      assert.equal(e.edge.udp.activeCount, 0);
      await e.close();
      assert.equal(e.edge.udp.activeCount, 0, 'no flow left after shutdown');
    } finally {
      await e.close();
    }
  });

  test('two dig runs come from two source ports and make two flows; two queries from one pinned port share one flow', { timeout: 20_000 }, async () => {
    needDig();
    const server = dns!;
    const e = await startDnsEdge(7951, server.port);
    const queriesBefore = server.queries;
    try {
      // Two runs back to back, well within the idle timeout of each other: the flows overlap in time, so only the
      // source port keeps them apart. (The kernel picks dig's ports at random: the two coincide about once in
      // 28,000 runs, and then this test fails on the activeCount line with one flow of two datagrams.)
      const a = await dig(['@127.0.0.1', '-p', '7951', '+short', '+time=2', '+tries=1', 'www.example.test', 'A']);
      const b = await dig(['@127.0.0.1', '-p', '7951', '+short', '+time=2', '+tries=1', 'mail.example.test', 'A']);
      assert.equal(a.code, 0, `dig failed: ${a.stdout}${a.stderr}`);
      assert.equal(b.code, 0, `dig failed: ${b.stdout}${b.stderr}`);
      assert.equal(a.stdout, '192.0.2.10\n');
      assert.equal(b.stdout, '192.0.2.25\n');
      assert.equal(e.edge.udp.activeCount, 2, 'one live flow per dig source port');

      // One run, two names, source port pinned: both queries belong to one flow (the same 4-tuple).
      const pinned = await dig(['@127.0.0.1', '-p', '7951', '-b', '127.0.0.1#7960', '+short', '+time=2', '+tries=1', 'www.example.test', 'A', 'mail.example.test', 'A']);
      assert.equal(pinned.code, 0, `dig failed: ${pinned.stdout}${pinned.stderr}`);
      assert.equal(pinned.stdout, '192.0.2.10\n192.0.2.25\n');
      assert.equal(server.queries - queriesBefore, 4);

      await e.closing(3);
      const done = closings(e);
      assert.equal(done.length, 3);
      for (const ev of done) assertIdleUdpFlow(ev, 7951, server.port);
      const [first, second, shared] = [...done].sort((x, y) => Number(x.ConnectionID.slice(1)) - Number(y.ConnectionID.slice(1)));
      assert.notEqual(first!.ClientPort, second!.ClientPort, 'each dig run used its own source port');
      assert.deepEqual([first!.ClientPackets, first!.OriginPackets, second!.ClientPackets, second!.OriginPackets], [1, 1, 1, 1]);
      assert.equal(shared!.ClientPort, 7960);
      assert.equal(shared!.ClientPackets, 2);
      assert.equal(shared!.OriginPackets, 2);
      assert.equal(shared!.OriginBytes, answerBytes('www.example.test', '192.0.2.10') + answerBytes('mail.example.test', '192.0.2.25'));
      // Nothing further arrives: no fourth flow appears after the others ended.
      await delay(50);
      assert.equal(closings(e).length, 3);
      assert.equal(e.events.filter((x) => x.Event === 'connect').length, 3);
      await e.close();
      assert.equal(e.edge.udp.activeCount, 0, 'no flow left after shutdown');
    } finally {
      await e.close();
    }
  });
});
