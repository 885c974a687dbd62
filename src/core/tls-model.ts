/**
 * The TLS model: predicts what a handshake between a client's offer and a server's configuration does, without
 * any cryptography. The simulator plays TLS with it (src/net/sim/sim-tls.ts); a differential property test holds
 * it to what real node:tls/OpenSSL handshakes do on loopback.
 *
 * PLACEHOLDER: signatures fixed, bodies to be written.
 */
import type { CertInfo, TlsClientParams, TlsFailure, TlsIdentity, TlsInfo, TlsServerParams, TlsTrust, TlsVersion } from '../net/ports.ts';

/** What the client's ClientHello carries. */
export interface ClientHello {
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  readonly ciphers: readonly string[];
  readonly ciphersuites: readonly string[];
  readonly servername: string | undefined;
}

export function helloOf(p: TlsClientParams): ClientHello {
  return { minVersion: p.minVersion, maxVersion: p.maxVersion, ciphers: p.ciphers, ciphersuites: p.ciphersuites, servername: p.servername };
}

/** The server's answer to a ClientHello: version, cipher and the identity it presents, or why it refuses. */
export type ServerDecision =
  | { readonly ok: true; readonly version: TlsVersion; readonly cipher: string; readonly identity: TlsIdentity }
  | { readonly ok: false; readonly failure: TlsFailure };

export function serverDecide(_hello: ClientHello, _server: Omit<TlsServerParams, 'handshakeTimeoutMs'>): ServerDecision {
  throw new Error('tls-model: not implemented');
}

/** The client's check of the presented chain (only when it verifies): undefined when it accepts. */
export function clientVerify(
  _leaf: CertInfo,
  _chain: readonly CertInfo[],
  _verify: { readonly trust: TlsTrust; readonly checkName: string },
  _nowMs: number,
): TlsFailure | undefined {
  throw new Error('tls-model: not implemented');
}

/** Whole-handshake prediction, as the client sees it (server failures surface as the client's failure too). */
export function predict(
  _client: TlsClientParams,
  _server: Omit<TlsServerParams, 'handshakeTimeoutMs'>,
  _nowMs: number,
): { readonly ok: true; readonly info: TlsInfo } | { readonly ok: false; readonly failure: TlsFailure; readonly side: 'client' | 'server' } {
  throw new Error('tls-model: not implemented');
}
