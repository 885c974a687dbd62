/**
 * The reference floor for a Node proxy: `net.createServer(c => c.pipe(net.connect(origin)).pipe(c))`, with just
 * enough error handling that a reset on one side tears down the other. Refract should cost little more than this.
 *
 * Usage: node --import tsx bench/naive-proxy.ts 7131=7001 7132=7002   (listen port = origin port, on 127.0.0.1)
 */
import net from 'node:net';

const HOST = '127.0.0.1';
const pairs = process.argv.slice(2).map((arg) => {
  const [listen, origin] = arg.split('=').map(Number);
  if (listen === undefined || origin === undefined || !Number.isInteger(listen) || !Number.isInteger(origin)) {
    throw new Error(`bad pair "${arg}": expected LISTEN_PORT=ORIGIN_PORT`);
  }
  return { listen, origin };
});
if (pairs.length === 0) throw new Error('usage: naive-proxy.ts LISTEN_PORT=ORIGIN_PORT ...');

for (const { listen, origin } of pairs) {
  net
    .createServer({ noDelay: true }, (c) => {
      const u = net.connect({ port: origin, host: HOST, noDelay: true });
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    })
    .listen({ port: listen, host: HOST });
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
