/**
 * `refract connect HOST:PORT [--tls …]`: a tiny netcat. stdin goes to HOST:PORT, what comes back goes to stdout;
 * it half-closes when stdin ends and exits when the server closes. With `--tls`, the handshake's outcome (version,
 * cipher, who the certificate is for) goes to stderr first, and a failed verification is explained in words.
 *
 * Exit codes: 0 the server closed the connection; 1 the connection or handshake failed; 2 bad command line.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { parseCommand, processIo, type CliIo } from './args.ts';

export const CONNECT_USAGE = `Usage: refract connect HOST:PORT [--tls [--ca FILE] [--servername NAME] [--insecure]]
  A tiny netcat: stdin goes to HOST:PORT, what comes back goes to stdout (IPv6: [::1]:6100).
  --tls              speak TLS and print the negotiated version, cipher and certificate subject on stderr
  --ca FILE          trust the CA certificates in FILE (PEM), e.g. from refract ca export; default: Node's CAs
  --servername NAME  the name sent as SNI and checked against the certificate (default: HOST)
  --insecure         do not verify the certificate (it is still printed, marked "not verified")
Exit: 0 the server closed the connection, 1 the connection or TLS handshake failed, 2 invalid command line.`;

export interface ConnectTlsOptions {
  ca?: string;
  servername?: string;
  insecure: boolean;
}

/** Node's error codes for failed connections and certificate checks, in words, with what to do. */
const EXPLAIN: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is not signed by a CA you trust: pass --ca FILE with the CA that issued it (for a Refract edge with the local CA: refract ca export --out ca.pem), or --insecure to look anyway",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the server's certificate is signed by a CA you do not trust: pass --ca FILE with that CA (for a Refract edge with the local CA: refract ca export --out ca.pem), or --insecure to look anyway",
  UNABLE_TO_GET_ISSUER_CERT: "the issuer of the server's certificate is not among the CAs you trust: pass --ca FILE with it",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate chain ends in a CA you do not trust: pass --ca FILE with that CA (refract ca export for Refract's local CA), or --insecure",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed: pass --ca FILE with that very certificate, or --insecure",
  CERT_HAS_EXPIRED: "the server's certificate has expired (check its notAfter, and this machine's clock)",
  CERT_NOT_YET_VALID: "the server's certificate is not valid yet (check its notBefore, and this machine's clock)",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate is not for the name you asked for: pass --servername NAME with a name the certificate covers",
  ECONNREFUSED: 'nothing accepts connections on that address and port (is refract serve running, and is the app on this port?)',
  ECONNRESET: 'the server closed the connection abruptly (for --tls: is the port speaking TLS, and does the app have tls set?)',
  ETIMEDOUT: 'the server did not answer in time',
  ENOTFOUND: 'the host name does not resolve',
  EHOSTUNREACH: 'no route to that host',
  EPROTO: 'the TLS handshake failed (is the port speaking TLS?)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the server does not speak TLS on this port (drop --tls, or set tls on the app)',
};

/** `CODE: explanation` for a connection or certificate error (the code alone when there is nothing to add). */
export function explainConnectError(e: { code?: string | undefined; message: string }): string {
  const code = e.code ?? '';
  const words = EXPLAIN[code] ?? (/wrong version number/i.test(e.message) ? EXPLAIN['ERR_SSL_WRONG_VERSION_NUMBER'] : undefined);
  if (!code) return words ?? e.message;
  return words ? `${code}: ${words}` : `${code}: ${e.message}`;
}

export function connectCommand(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const p = parseCommand('connect', argv, { tls: { type: 'boolean' }, ca: { type: 'string' }, servername: { type: 'string' }, insecure: { type: 'boolean' } }, CONNECT_USAGE, io);
  if (!p.ok) return Promise.resolve(p.code);
  const { values, positionals } = p;
  if (!values.tls && (values.ca !== undefined || values.servername !== undefined || values.insecure === true)) {
    io.err(`refract connect: --ca, --servername and --insecure go with --tls\n\n${CONNECT_USAGE}\n`);
    return Promise.resolve(2);
  }
  const tls: ConnectTlsOptions | undefined = values.tls
    ? { insecure: values.insecure === true, ...(values.ca === undefined ? {} : { ca: values.ca }), ...(values.servername === undefined ? {} : { servername: values.servername }) }
    : undefined;
  const target = positionals[0];
  const m = target && positionals.length === 1 ? /^\[?([^\]]+?)\]?:(\d+)$/.exec(target) : null;
  if (!m) {
    io.err(`refract connect: give HOST:PORT, e.g. 127.0.0.1:6100 or [::1]:6100\n\n${CONNECT_USAGE}\n`);
    return Promise.resolve(2);
  }
  let ca: string | undefined;
  if (tls?.ca !== undefined) {
    try {
      ca = readFileSync(tls.ca, 'utf8');
    } catch (e) {
      io.err(`refract connect: cannot read --ca ${tls.ca}: ${(e as Error).message}\n`);
      return Promise.resolve(2);
    }
  }
  return new Promise((done) => {
    const host = m[1]!;
    const port = Number(m[2]);
    const s = tls
      ? tlsConnect({
          host,
          port,
          ...(ca === undefined ? {} : { ca }),
          ...(tls.servername === undefined ? {} : { servername: tls.servername }),
          rejectUnauthorized: !tls.insecure,
          minVersion: 'TLSv1.1',
        })
      : netConnect({ host, port, allowHalfOpen: true });
    if (tls) {
      const t = s as TLSSocket;
      t.on('secureConnect', () => {
        const subject = t.getPeerX509Certificate()?.subject.replaceAll('\n', ', ') ?? '?';
        const unverified = t.authorized ? '' : ` (not verified: ${explainConnectError({ code: String(t.authorizationError), message: '' })})`;
        io.err(`refract connect: ${t.getProtocol() ?? '?'} ${t.getCipher().standardName} certificate ${subject}${unverified}\n`);
        process.stdin.pipe(s);
      });
    } else s.on('connect', () => process.stdin.pipe(s));
    s.pipe(process.stdout);
    s.on('error', (e: NodeJS.ErrnoException) => {
      io.err(`refract connect: ${explainConnectError(e)}\n`);
      done(1);
    });
    s.on('close', (hadError) => done(hadError ? 1 : 0));
  });
}
