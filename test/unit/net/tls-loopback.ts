/**
 * Test helper (not a test): one real TLS handshake on loopback (port 0) between a node:tls server presenting
 * `server` and a verifying client trusting `client.ca`. Bounded: the client gives up after 10 s.
 */
import * as tls from 'node:tls';
import { once } from 'node:events';

export type HandshakeResult = { ok: true; peer: tls.PeerCertificate } | { ok: false; code: string };

export async function handshake(
  server: { cert: string; key: string },
  client: { ca: string; servername?: string },
): Promise<HandshakeResult> {
  const srv = tls.createServer({ cert: server.cert, key: server.key }, (s) => s.end());
  srv.on('tlsClientError', () => undefined);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  try {
    return await new Promise<HandshakeResult>((resolve) => {
      const opts: tls.ConnectionOptions = { host: '127.0.0.1', port, ca: client.ca };
      if (client.servername !== undefined) opts.servername = client.servername;
      const sock = tls.connect(opts, () => {
        resolve({ ok: true, peer: sock.getPeerCertificate() });
        sock.destroy();
      });
      sock.setTimeout(10_000, () => sock.destroy(new Error('timeout')));
      sock.on('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, code: e.code ?? e.message }));
    });
  } finally {
    await new Promise((r) => srv.close(r));
  }
}
