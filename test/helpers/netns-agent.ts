/**
 * The first process of a test's network namespace (test/helpers/netns.ts starts it with `unshare -rn`): it keeps
 * the namespace alive and lets the test, outside, open TCP connections inside it. The file system is shared and the
 * network is not, so it listens on the Unix socket named by argv[2]; on each connection it reads one line of JSON,
 * `{"host": "...", "port": N}`, connects there from inside the namespace, answers `ok\n` (then relays bytes both
 * ways, half-closes included) or `error CODE\n` (then closes). Prints `ready` once listening; exits on SIGTERM.
 */
import * as net from 'node:net';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: netns-agent.ts SOCKET_PATH');

const server = net.createServer({ allowHalfOpen: true }, (client) => {
  let head = Buffer.alloc(0);
  let up: net.Socket | undefined;
  client.on('error', () => up?.destroy());
  const onHead = (d: Buffer): void => {
    head = Buffer.concat([head, d]);
    const nl = head.indexOf(10);
    if (nl === -1) return;
    client.off('data', onHead);
    client.pause();
    const rest = head.subarray(nl + 1);
    let target: { host: string; port: number };
    try {
      target = JSON.parse(head.subarray(0, nl).toString('utf8')) as { host: string; port: number };
    } catch {
      client.end('error EINVAL\n');
      return;
    }
    const conn = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    up = conn;
    conn.once('error', (e: NodeJS.ErrnoException) => client.end(`error ${e.code ?? 'EIO'}\n`));
    conn.once('connect', () => {
      conn.removeAllListeners('error');
      conn.on('error', () => client.destroy());
      client.on('close', () => conn.destroy());
      conn.on('close', () => client.destroy());
      client.write('ok\n');
      if (rest.length > 0) conn.write(rest);
      client.pipe(conn);
      conn.pipe(client);
      client.resume();
    });
  };
  client.on('data', onHead);
});
server.listen(path, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
