/**
 * The two TLS legs of a connection: the client leg (edge termination for flexible, full and strict) and the origin
 * leg (re-encryption for full and strict). Whether a leg needs a handshake is src/core/legs.ts's call
 * (`TLS.SKIPPED` on `decisions$` otherwise); handshake results arrive from the TLS port on `tls$`.
 */
import type { TlsFailure } from '../net/ports.ts';
import { clientLegNeedsTls, originLegNeedsTls } from '../core/legs.ts';
import { EV, type ConnRecord, type TcpEnv } from './tcp-env.ts';
import { proxyHeaderFor } from './tcp-upstream.ts';

/** Entry of `clientTls`. */
export function startClientTls(env: TcpEnv, r: ConnRecord): void {
  const app = r.app!;
  if (!clientLegNeedsTls(app.tls)) {
    env.inputs.decisions$.signal(r, EV.TLS_SKIPPED);
    return;
  }
  env.stats.tls_client_handshakes++;
  const params = env.deps.tls?.serverParams(app, r.edge);
  if (!params) {
    clientTlsFailed(env, r, { status: 'INVALID_CONFIG', reason: 'no_certificate', detail: 'no certificate for this app' });
    return;
  }
  // The TLS layer takes the raw socket over; from here on the connection's client stream is the plaintext side.
  const session = env.deps.net.tls.server(r.down, params, r.prefix);
  r.prefix = undefined;
  r.down = session.conn;
  r.down.setHandlers(env.downWatch(r));
  session.onDone((o) => {
    if (!o.ok) {
      clientTlsFailed(env, r, o.failure);
      return;
    }
    r.clientTls = o.info;
    r.clientTlsStatus = 'OK';
    env.trace(r, 'tls_client', { version: o.info.protocol, cipher: o.info.cipher, sni: o.info.servername });
    env.inputs.tls$.signal(r, EV.TLS_CLIENT_OK);
  });
}

function clientTlsFailed(env: TcpEnv, r: ConnRecord, f: TlsFailure): void {
  env.stats.tls_client_failed++;
  r.tlsFailure = f;
  r.clientTlsStatus = f.status;
  env.trace(r, 'tls_client_failed', { reason: f.reason });
  env.lineOf(r, 'info', 'tls.client_failed')?.info({ reason: f.reason, tlsStatus: f.status, detail: f.detail, sni: f.servername }, 'client TLS handshake failed');
  env.inputs.tls$.signal(r, EV.TLS_CLIENT_FAILED);
}

/** Entry of `originTls`. */
export function startOriginTls(env: TcpEnv, r: ConnRecord): void {
  const app = r.app!;
  if (!originLegNeedsTls(app.tls)) {
    env.inputs.decisions$.signal(r, EV.TLS_SKIPPED);
    return;
  }
  env.stats.tls_origin_handshakes++;
  // The PROXY header precedes the ClientHello, in clear (what HAProxy's `accept-proxy ssl` expects).
  const header = proxyHeaderFor(r);
  if (header) {
    r.up!.write(header);
    r.headerSent = true;
  }
  const tlsDeps = env.deps.tls;
  if (!tlsDeps) {
    originTlsFailed(env, r, { status: 'INTERNAL_ERROR', reason: 'internal', detail: 'no TLS support configured' });
    return;
  }
  const session = env.deps.net.tls.client(r.up!, tlsDeps.clientParams(app, r.current!));
  r.up = session.conn;
  session.onDone((o) => {
    if (!o.ok) {
      r.originCert = o.failure.peerCert;
      originTlsFailed(env, r, o.failure);
      return;
    }
    r.originTls = o.info;
    r.originCert = o.info.peerCert;
    r.originTlsStatus = 'OK';
    env.trace(r, 'tls_origin', { version: o.info.protocol, cipher: o.info.cipher });
    env.inputs.tls$.signal(r, EV.TLS_ORIGIN_OK);
  });
}

function originTlsFailed(env: TcpEnv, r: ConnRecord, f: TlsFailure): void {
  env.stats.tls_origin_failed++;
  r.tlsFailure = f;
  r.originTlsStatus = f.status;
  const t = r.current;
  env.trace(r, 'tls_origin_failed', { reason: f.reason });
  env.lineOf(r, 'warn', 'tls.origin_failed')?.warn(
    { upstream: t && `${t.host}:${t.port}`, reason: f.reason, tlsStatus: f.status, detail: f.detail, fingerprint: f.peerCert?.fingerprint256 },
    `origin TLS handshake failed: ${f.reason}`,
  );
  env.inputs.tls$.signal(r, EV.TLS_ORIGIN_FAILED);
}
