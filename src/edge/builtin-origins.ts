/**
 * Demo origins that `refract serve` can start itself (config `origins:`), so the example config shows bytes
 * flowing on a fresh machine with nothing else installed. They run over the Network port, so the simulator can
 * host the same origins.
 */
import type { Logger } from 'pino';
import type { Conn, Network, TcpListener } from '../net/ports.ts';
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

export interface RunningOrigins {
  readonly listeners: ReadonlyArray<{ name: string; host: string; port: number }>;
  close(): Promise<void>;
}

export async function startBuiltinOrigins(net: Network, origins: readonly BuiltinOrigin[], log: Logger): Promise<RunningOrigins> {
  const started: Array<{ name: string; host: string; port: number; l: TcpListener }> = [];
  try {
    for (const o of origins) {
      if (o.protocol !== 'tcp') continue; // UDP demo origins arrive with UDP apps
      for (let p = o.ports.start; p <= o.ports.end; p++) {
        try {
          const l = await net.listenTcp({ host: o.host, port: p }, (c) => serveOrigin(c, o));
          started.push({ name: o.name, host: o.host, port: l.address.port, l });
        } catch (e) {
          throw new RefractError(listenErrorCode((e as { code?: string }).code), {
            message: `builtin origin '${o.name}' could not listen on ${o.host}:${p}: ${(e as Error).message}`,
            details: { origin: o.name, address: o.host, port: p },
            cause: e,
          });
        }
      }
      log.info({ origin: o.name, behaviour: o.behaviour, listen: `${o.host}:${o.ports.start}-${o.ports.end}` }, 'builtin origin started');
    }
  } catch (e) {
    await Promise.all(started.map((s) => s.l.close()));
    throw e;
  }
  return {
    listeners: started.map(({ name, host, port }) => ({ name, host, port })),
    close: async () => {
      await Promise.all(started.map((s) => s.l.close()));
    },
  };
}
