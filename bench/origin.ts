/**
 * Benchmark origin: one process, two TCP ports and one UDP port on 127.0.0.1.
 * - echo port: writes back every byte it receives (cps, latency and idle-connection tests);
 * - sink port: reads an 8-byte big-endian length, swallows that many bytes, then writes one ack byte
 *   (throughput test). The ack replaces half-close so the test does not depend on each proxy's FIN handling.
 * - UDP echo port: sends every datagram back to where it came from (UDP tests).
 *
 * Usage: node --import tsx bench/origin.ts --echo-port 7001 --sink-port 7002 --udp-port 7003
 * Prints one JSON line `{"ready":true,...}` on stdout once both ports listen; exits on SIGTERM/SIGINT.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { SINK_ACK, SINK_HEADER_BYTES } from './protocol.ts';

const { values } = parseArgs({
  options: {
    'echo-port': { type: 'string', default: '7001' },
    'sink-port': { type: 'string', default: '7002' },
    'udp-port': { type: 'string', default: '7003' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
const host = values.host;
const echoPort = Number(values['echo-port']);
const sinkPort = Number(values['sink-port']);
const udpPort = Number(values['udp-port']);
const ack = Buffer.from([SINK_ACK]);

// No pipe() and no setNoDelay: each costs per connection on the load-generator core, and the echoed writes are
// small (64 B, well under any socket buffer, so no backpressure to keep) and single (Nagle never holds a lone
// segment). Without allowHalfOpen the socket ends itself when the peer does.
const echo = net.createServer((s) => {
  s.on('data', (d: Buffer) => s.write(d));
  s.on('error', () => s.destroy());
});

const sink = net.createServer({ noDelay: true }, (s) => {
  let header: Buffer | undefined = Buffer.alloc(0);
  let remaining = -1;
  s.on('data', (chunk: Buffer) => {
    if (header !== undefined) {
      header = Buffer.concat([header, chunk]);
      if (header.length < SINK_HEADER_BYTES) return;
      remaining = Number(header.readBigUInt64BE(0)) - (header.length - SINK_HEADER_BYTES);
      header = undefined;
    } else {
      remaining -= chunk.length;
    }
    if (remaining <= 0 && remaining !== -Infinity) {
      remaining = -Infinity; // ack once
      s.write(ack);
    }
  });
  s.on('error', () => s.destroy());
});

function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // A deep backlog so the origin never limits accept rate below the proxies'.
    server.listen({ host, port, backlog: 4096 }, () => resolve());
  });
}

// Bound before the TCP ports listen: the harness waits for those, and then the UDP port is ready too.
const udpEcho = dgram.createSocket('udp4');
udpEcho.on('message', (d: Buffer, r: dgram.RemoteInfo) => udpEcho.send(d, r.port, r.address));
udpEcho.on('error', () => undefined); // an ICMP error for one peer must not end the origin
await new Promise<void>((resolve, reject) => {
  udpEcho.once('error', reject);
  udpEcho.bind(udpPort, host, () => {
    udpEcho.off('error', reject);
    resolve();
  });
});

await Promise.all([listen(echo, echoPort), listen(sink, sinkPort)]);
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, echoPort, sinkPort, udpPort })}\n`);

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => process.exit(0));
}
