/**
 * The inbound PROXY header (`edge.accept_proxy`: a trusted load balancer in front of the edge): reads it off the
 * client stream with the bounded `ProxyHeaderReader`, takes the client address it names, and re-runs the access
 * rules on that client. Verdicts go to the machine on `socket$` (PROXY.DECODED / PROXY.INVALID) and `decisions$`
 * (CONN.FILTERED); the header timeout is the machine's own `after`.
 */
import { ProxyHeaderReader } from '../core/proxy-protocol.ts';
import { blockedByRules, limitedClient } from './tcp-admission.ts';
import { EV, type ConnRecord, type TcpEnv } from './tcp-env.ts';

/** Entry of `readingProxyHeader`. */
export function readInboundProxyHeader(env: TcpEnv, r: ConnRecord): void {
  const reader = new ProxyHeaderReader();
  const socket$ = env.inputs.socket$;
  let done = false;
  r.down.setHandlers({
    data: (chunk) => {
      if (done) {
        // Bytes that raced the pause: keep them, in order, for the origin.
        (r.prefix ??= []).push(chunk);
        return;
      }
      const res = reader.push(chunk);
      if (res.kind === 'incomplete') return;
      done = true;
      r.down.pause();
      if (res.kind === 'error') {
        socket$.signal(r, { type: 'PROXY.INVALID', code: res.code, detail: res.detail });
        return;
      }
      const h = res.header;
      if (h.command === 'proxy' && h.src && h.dst && (h.family === 'IPv4' || h.family === 'IPv6')) {
        r.client = { address: h.src.address, port: h.src.port, family: h.family };
        r.proxyDst = { address: h.dst.address, port: h.dst.port, family: h.family };
        r.log = undefined;
      }
      if (res.rest.length > 0) r.prefix = [res.rest];
      env.trace(r, 'proxy_in', { version: h.version, command: h.command, client: `${r.client.address}:${r.client.port}` });
      // Rules apply to the client the header names, never to the load balancer.
      if (blockedByRules(env, r)) {
        env.inputs.decisions$.signal(r, EV.FILTERED);
        return;
      }
      // Per-client limits count the client the header names too (the load balancer only meets max_connections).
      if (limitedClient(env, r)) return;
      env.announce(r);
      socket$.signal(r, { type: 'PROXY.DECODED', header: h, rest: res.rest });
    },
    end: () => {
      if (done) r.downEnded = true;
      else {
        done = true;
        socket$.signal(r, { type: 'PROXY.INVALID', code: 'E_PP_BAD_SIGNATURE', detail: 'connection ended before a complete PROXY header' });
      }
    },
  });
  r.down.resume();
}
