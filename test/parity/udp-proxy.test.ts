/**
 * The UDP proxy, one body per case, on real loopback sockets and on the simulator (see ./harness.ts): flows per
 * client and reply routing, the Simple Proxy Protocol both ways, PROXY v2 on a flow's first datagram only, and idle
 * expiry with its closing event. `parity` asserts both arms showed the same outcome and that two sim runs on one
 * seed agree line for line. Edge ports 7870-7898 (UDP) belong to this file (7870-7873 in use); origins and clients
 * bind port 0.
 *
 * Every case ends by waiting for its flows to expire (real time on the node arm, bounded by the harness's 5 s per
 * wait; virtual time on the sim arm), so the leak check finds no flow open. The idle-expiry case sets
 * `udp_idle_timeout_ms: 200`; the others 500, so that a loaded machine pausing between two datagrams of one
 * exchange does not split a flow on the node arm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { decodeProxyHeader } from '../../src/core/proxy-protocol.ts';
import { decodeSpp, encodeSpp } from '../../src/core/spp.ts';
import type { Datagram } from '../../src/net/ports.ts';
import type { TraceRecord } from '../../src/streams/trace.ts';
import { parity, udpEventView, udpProbe, type ArmRun, type ArmSetup, type UdpProbe } from './harness.ts';

/** The idle-expiry case's timeout, and the others' (ms). */
const IDLE_MS = 200;
const SAFE_IDLE_MS = 500;

/** A raw config: one UDP app on the arm's edge address, flows expiring after `idleMs`. */
function config(s: ArmSetup, app: Record<string, unknown>, idleMs = SAFE_IDLE_MS): unknown {
  return {
    node: { id: 'parity' },
    edge: { addresses: [s.edgeHost], udp_idle_timeout_ms: idleMs },
    apps: [{ id: 'app', dns: { type: 'CNAME', name: 'parity-udp.example.test' }, ...app }],
  };
}

/** A client socket on the arm's client host. */
function client(run: ArmRun): Promise<UdpProbe> {
  return run.settle(udpProbe(run.clientNet, run.clientHost), 'client bind');
}

/** Sends `text` to the edge port and waits for the client's `n`-th datagram. */
async function ask(run: ArmRun, c: UdpProbe, port: number, text: string, n: number): Promise<void> {
  c.send(text, port, run.edgeHost);
  await run.settle(c.untilCount(n), `reply ${n} to ${text}`);
}

/** The decision trace per flow, as event sequences in flow order (two flows' records interleave differently). */
function flowTraces(run: { trace: readonly TraceRecord[] }): string[][] {
  const by = new Map<number, string[]>();
  for (const r of run.trace) {
    if (r['proto'] !== 'udp') continue;
    by.set(r.conn, [...(by.get(r.conn) ?? []), r.event]);
  }
  return [...by.entries()].sort(([a], [b]) => a - b).map(([, v]) => v);
}

const FLOW_LIFE = ['accept', 'established', 'close'];
const text = (d: Uint8Array): string => Buffer.from(d).toString();

test('udp: each client gets its own flow and only its own replies', async () => {
  let origin!: UdpProbe;
  const out = await parity(
    201,
    async (s) => {
      origin = await udpProbe(s.originNet, s.originHost, 0, (d) => Buffer.concat([Buffer.from('echo:'), d.data]));
      return config(s, { protocol: 'udp/7870', origin_direct: [`udp://${s.originHost}:${origin.local.port}`] });
    },
    async (run) => {
      const a = await client(run);
      const b = await client(run);
      await ask(run, a, 7870, 'from a', 1);
      await ask(run, b, 7870, 'from b', 1);
      await ask(run, a, 7870, 'again a', 2);
      const active = run.edge.udp.activeCount;
      const closed = await run.settle(run.closings(2), 'two flows expire');
      const who = (port: number): string => (port === a.local.port ? 'a' : port === b.local.port ? 'b' : `port ${port}`);
      const sources = origin.got.map((d) => `${d.remote.address === run.edgeHost ? 'edge' : d.remote.address}:${d.remote.port}`);
      return {
        a: a.texts(),
        b: b.texts(),
        activeWhileTalking: active,
        // Each flow has its own upstream socket: the origin sees two sources, both the edge, one per client.
        originGot: origin.texts(),
        originSources: new Set(sources).size,
        originSeesEdge: sources.every((x) => x.startsWith('edge:')),
        events: Object.fromEntries(closed.map((e) => [who(e.ClientPort), udpEventView(run, e, { echo: origin.local.port })])),
        stats: { total: run.edge.udp.stats.udp_flows_total, up: run.edge.udp.stats.udp_dgrams_upstream, down: run.edge.udp.stats.udp_dgrams_downstream },
        trace: flowTraces(run),
      };
    },
  );
  assert.deepEqual(out.a, ['echo:from a', 'echo:again a']);
  assert.deepEqual(out.b, ['echo:from b']);
  assert.equal(out.activeWhileTalking, 2);
  assert.deepEqual(out.originGot, ['from a', 'from b', 'again a']);
  assert.equal(out.originSources, 2);
  assert.equal(out.originSeesEdge, true);
  const view = (e: Record<string, unknown> | undefined) => e && [e['Event'], e['Status'], e['CloseReason'], e['ClientProto'], e['Origin'], e['Edge'], e['ClientPackets'], e['OriginPackets'], e['ClientBytes'], e['OriginBytes']];
  assert.deepEqual(view(out.events['a']), ['disconnect', 200, 'idle_timeout', 'udp', 'origin:echo', 'edge:7870', 2, 2, 13, 23]);
  assert.deepEqual(view(out.events['b']), ['disconnect', 200, 'idle_timeout', 'udp', 'origin:echo', 'edge:7870', 1, 1, 6, 11]);
  assert.deepEqual(out.stats, { total: 2, up: 3, down: 3 });
  assert.deepEqual(out.trace, [FLOW_LIFE, FLOW_LIFE]);
});

test('udp: with simple proxy protocol the origin decodes the client, replies carry the header, the client gets bare payloads, a wrong header is dropped', async () => {
  let origin!: UdpProbe;
  const out = await parity(
    202,
    async (s) => {
      // Answers with the same SPP header, except for 'bad', answered with a header naming another client port.
      origin = await udpProbe(s.originNet, s.originHost, 0, (d: Datagram) => {
        const h = decodeSpp(d.data);
        if (h.kind !== 'ok') return undefined;
        const clientPort = text(h.payload) === 'bad' ? (h.client.port + 1) % 65_536 : h.client.port;
        return encodeSpp({ client: { address: h.client.address, port: clientPort }, proxy: h.proxy }, Buffer.concat([Buffer.from('pong:'), h.payload]));
      });
      return config(s, { protocol: 'udp/7871', origin_direct: [`udp://${s.originHost}:${origin.local.port}`], proxy_protocol: 'simple' });
    },
    async (run) => {
      const c = await client(run);
      await ask(run, c, 7871, 'ping', 1);
      c.send('bad', 7871, run.edgeHost);
      await run.settle(origin.untilCount(2), 'origin gets bad');
      await run.sleep(100); // the reply would be back within a millisecond or two on either arm
      const afterBad = c.got.length;
      await ask(run, c, 7871, 'ping2', 2);
      const [ev] = await run.settle(run.closings(1), 'flow expires');
      const decoded = origin.got.map((d) => {
        const h = decodeSpp(d.data);
        if (h.kind !== 'ok') return { error: h.code };
        return {
          client: `${h.client.address === run.clientHost ? 'client' : h.client.address}:${h.client.port === c.local.port ? 'own port' : h.client.port}`,
          proxy: `${h.proxy.address === run.edgeHost ? 'edge' : h.proxy.address}:${h.proxy.port}`,
          payload: text(h.payload),
        };
      });
      return {
        clientGot: c.texts(),
        afterBad,
        originDecoded: decoded,
        sppReplyInvalid: run.edge.udp.stats.udp_spp_reply_invalid,
        event: udpEventView(run, ev!, { spp: origin.local.port }),
        trace: flowTraces(run),
      };
    },
  );
  assert.deepEqual(out.clientGot, ['pong:ping', 'pong:ping2']);
  assert.equal(out.afterBad, 1);
  assert.deepEqual(out.originDecoded, [
    { client: 'client:own port', proxy: 'edge:7871', payload: 'ping' },
    { client: 'client:own port', proxy: 'edge:7871', payload: 'bad' },
    { client: 'client:own port', proxy: 'edge:7871', payload: 'ping2' },
  ]);
  assert.equal(out.sppReplyInvalid, 1);
  assert.deepEqual(
    [out.event['CloseReason'], out.event['ProxyProtocol'], out.event['ClientPackets'], out.event['OriginPackets'], out.event['ClientBytes'], out.event['OriginBytes']],
    ['idle_timeout', 'simple', 3, 2, 12, 19],
  );
  assert.deepEqual(out.trace, [FLOW_LIFE]);
});

test('udp: proxy_protocol v2 puts a DGRAM header on the first datagram of a flow and on no other', async () => {
  let origin!: UdpProbe;
  const out = await parity(
    203,
    async (s) => {
      // Echoes the payload after any PROXY header.
      origin = await udpProbe(s.originNet, s.originHost, 0, (d) => {
        const h = decodeProxyHeader(d.data);
        return h.kind === 'header' ? Buffer.from(h.rest) : Buffer.from(d.data);
      });
      return config(s, { protocol: 'udp/7872', origin_direct: [`udp://${s.originHost}:${origin.local.port}`], proxy_protocol: 'v2' });
    },
    async (run) => {
      const c = await client(run);
      await ask(run, c, 7872, 'first', 1);
      await ask(run, c, 7872, 'second', 2);
      await ask(run, c, 7872, 'third', 3);
      await run.settle(run.closings(1), 'flow expires');
      // After expiry the same socket opens a new flow, whose first datagram has a header again.
      await ask(run, c, 7872, 'fourth', 4);
      await run.settle(run.closings(2), 'second flow expires');
      const seen = origin.got.map((d) => {
        const h = decodeProxyHeader(d.data);
        if (h.kind !== 'header') return { header: null, payload: text(d.data) };
        const { version, transport, src, dst } = h.header;
        return {
          header: {
            version,
            transport,
            src: src && `${src.address === run.clientHost ? 'client' : src.address}:${src.port === c.local.port ? 'own port' : src.port}`,
            dst: dst && `${dst.address === run.edgeHost ? 'edge' : dst.address}:${dst.port}`,
          },
          payload: text(h.rest),
        };
      });
      return { clientGot: c.texts(), seen, trace: flowTraces(run) };
    },
  );
  const header = { version: 2, transport: 'dgram', src: 'client:own port', dst: 'edge:7872' };
  assert.deepEqual(out.clientGot, ['first', 'second', 'third', 'fourth']);
  assert.deepEqual(out.seen, [
    { header, payload: 'first' },
    { header: null, payload: 'second' },
    { header: null, payload: 'third' },
    { header, payload: 'fourth' },
  ]);
  assert.deepEqual(out.trace, [FLOW_LIFE, FLOW_LIFE]);
});

test('udp: an idle flow expires after udp_idle_timeout_ms with a disconnect event counting datagrams both ways', async () => {
  let origin!: UdpProbe;
  const out = await parity(
    204,
    async (s) => {
      origin = await udpProbe(s.originNet, s.originHost, 0, (d) => Buffer.from(d.data));
      return config(s, { protocol: 'udp/7873', origin_direct: [`udp://${s.originHost}:${origin.local.port}`] }, IDLE_MS);
    },
    async (run) => {
      const c = await client(run);
      await ask(run, c, 7873, 'one', 1);
      await ask(run, c, 7873, 'two', 2);
      const activeBefore = run.edge.udp.activeCount;
      const [ev] = await run.settle(run.closings(1), 'flow expires');
      const activeAfter = run.edge.udp.activeCount;
      return {
        activeBefore,
        activeAfter,
        event: udpEventView(run, ev!, { echo: origin.local.port }),
        clientPortInEvent: ev!.ClientPort === c.local.port,
        // Idle for IDLE_MS after the last datagram: no sooner, and not much later (node timers are late, never early).
        waitedIdle: ev!.DurationMs >= IDLE_MS && ev!.DurationMs < 2_000,
        closeTrace: run.trace.filter((r) => r.event === 'close').map((r) => [r['reason'], r['code'], r['dgrams_in'], r['dgrams_out'], r['bytes_in'], r['bytes_out']]),
      };
    },
  );
  assert.equal(out.activeBefore, 1);
  assert.equal(out.activeAfter, 0);
  assert.deepEqual(out.event, {
    Event: 'disconnect',
    Status: 200,
    ErrorCode: 'E_IDLE_TIMEOUT',
    CloseReason: 'idle_timeout',
    ProxyProtocol: 'off',
    Client: 'client',
    Edge: 'edge:7873',
    Origin: 'origin:echo',
    ClientBytes: 6,
    OriginBytes: 6,
    ClientProto: 'udp',
    ClientPackets: 2,
    OriginPackets: 2,
  });
  assert.equal(out.clientPortInEvent, true);
  assert.equal(out.waitedIdle, true);
  assert.deepEqual(out.closeTrace, [['idle_timeout', 'E_IDLE_TIMEOUT', 2, 2, 6, 6]]);
});
