/**
 * Demo origins that `refract serve` can start itself (config `origins:`), so the example config shows bytes
 * flowing on a fresh machine with nothing else installed. They run over the Network port, so the simulator can
 * host the same origins. TCP: echo, banner or discard. UDP: echo (each datagram back to its sender) or discard
 * (validation refuses a UDP banner: a UDP origin cannot speak first).
 */
import type { Logger } from 'pino';
import type { Conn, Datagram, Network, UdpSocket } from '../net/ports.ts';
import type { BuiltinOrigin } from '../model/types.ts';
import { RefractError } from '../model/errors.ts';
import { listenErrorCode } from './edge-node.ts';

const encoder = new TextEncoder();

/** Wires one accepted connection to a behaviour: echo, banner (speak first, then echo) or discard. */
export function serveOrigin(conn: Conn, o: { behaviour: BuiltinOrigin['behaviour']; banner?: string | undefined }): void {
  const echo = o.behaviour !== 'discard';
  conn.setHandlers({
    data(chunk) {
      if (echo && !conn.write(chunk)) conn.pause();
    },
    // Methods, not arrows: tsx's keepNames wraps named arrows at a cost per connection (see tcp-connection.ts).
    drain() {
      conn.resume();
    },
    end() {
      conn.end();
    },
    error() {},
  });
  if (o.behaviour === 'banner') conn.write(encoder.encode(o.banner ?? 'refract builtin origin\r\n'));
  conn.resume();
}

/** Wires one bound UDP socket to a behaviour: echo sends each datagram back to its sender; discard drops it. */
export function serveUdpOrigin(sock: UdpSocket, o: { behaviour: BuiltinOrigin['behaviour'] }): void {
  if (o.behaviour === 'discard') {
    sock.setHandler(() => undefined);
    return;
  }
  sock.setHandler((m: Datagram) => sock.send(m.data, m.remote.port, m.remote.address));
}

export interface RunningOrigins {
  readonly listeners: ReadonlyArray<{ name: string; protocol: BuiltinOrigin['protocol']; host: string; port: number }>;
  close(): Promise<void>;
}

interface Started {
  readonly name: string;
  readonly protocol: BuiltinOrigin['protocol'];
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startBuiltinOrigins(net: Network, origins: readonly BuiltinOrigin[], log: Logger): Promise<RunningOrigins> {
  const started: Started[] = [];
  try {
    for (const o of origins) {
      for (let p = o.ports.start; p <= o.ports.end; p++) {
        try {
          if (o.protocol === 'udp') {
            const sock = await net.bindUdp({ host: o.host, port: p });
            serveUdpOrigin(sock, o);
            started.push({ name: o.name, protocol: 'udp', host: o.host, port: sock.local.port, close: () => Promise.resolve(sock.close()) });
          } else {
            const l = await net.listenTcp({ host: o.host, port: p }, (c) => serveOrigin(c, o));
            started.push({ name: o.name, protocol: 'tcp', host: o.host, port: l.address.port, close: () => l.close() });
          }
        } catch (e) {
          throw new RefractError(listenErrorCode((e as { code?: string }).code), {
            message: `builtin origin '${o.name}' could not listen on ${o.host}:${p}: ${(e as Error).message}`,
            details: { origin: o.name, address: o.host, port: p },
            cause: e,
          });
        }
      }
      log.info({ origin: o.name, behaviour: o.behaviour, listen: `${o.protocol}://${o.host}:${o.ports.start}-${o.ports.end}` }, 'builtin origin started');
    }
  } catch (e) {
    await Promise.all(started.map((s) => s.close()));
    throw e;
  }
  return {
    listeners: started.map(({ name, protocol, host, port }) => ({ name, protocol, host, port })),
    close: async () => {
      await Promise.all(started.map((s) => s.close()));
    },
  };
}
