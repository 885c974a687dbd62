import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { createNodeNetwork, reusePortSupported } from '../../../src/net/node/network.ts';
import type { UdpSocket } from '../../../src/net/ports.ts';

/**
 * With `share: 'reusePort'` (workers on Node 22.12+), only the edge's named-port sockets take SO_REUSEPORT. A flow's
 * socket towards its origin binds port 0: with SO_REUSEPORT there, Linux may give it an ephemeral port another such
 * socket already holds, and the origin's answers then go to either one. Seen as ~13 % of 10,000 new UDP flows never
 * answered through two workers.
 */
describe('node network: UDP sockets with share reusePort', { skip: !reusePortSupported() && `Node ${process.versions.node} has no reusePort` }, () => {
  it('gives every port-0 socket a port of its own, and the named port to every worker socket', async () => {
    const net = createNodeNetwork({ share: 'reusePort' });
    const socks: UdpSocket[] = [];
    try {
      // Two "workers'" edge sockets on one named port: both bind (SO_REUSEPORT).
      const probe = dgram.createSocket('udp4');
      await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
      const port = probe.address().port;
      probe.close();
      socks.push(await net.bindUdp({ host: '127.0.0.1', port }));
      socks.push(await net.bindUdp({ host: '127.0.0.1', port }));
      assert.equal(socks[0]!.local.port, port);
      assert.equal(socks[1]!.local.port, port);
      // Flow sockets: 1,500 port-0 binds, each on a port no other socket holds.
      const seen = new Map<number, number>();
      for (let i = 0; i < 1_500; i++) {
        const s = await net.bindUdp({ host: '0.0.0.0', port: 0 });
        socks.push(s);
        seen.set(s.local.port, (seen.get(s.local.port) ?? 0) + 1);
      }
      const shared = [...seen].filter(([, n]) => n > 1);
      assert.deepEqual(shared, [], `ports handed to more than one socket: ${shared.length}`);
      assert.ok(!seen.has(port));
    } finally {
      for (const s of socks) s.close();
    }
  });
});
