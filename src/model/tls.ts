/**
 * TLS data shapes shared by the TLS model (src/core/tls-model.ts), the TLS port's two implementations
 * (src/net/node/tls.ts, src/net/sim/sim-tls.ts), the engine and the certificate sources. Re-exported by
 * src/net/ports.ts, where the TlsPort that uses them is defined.
 */
import type { TlsStatus } from './types.ts';

export type { TlsStatus };

export type TlsVersion = 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/**
 * What a certificate is, as far as a handshake cares. Real mode derives it from the PEM (node:crypto
 * X509Certificate); the simulator uses it as is. `issuer` names the CA that signed it (its `id`), or equals `id`
 * for a self-signed certificate.
 */
export interface CertInfo {
  /** Stable id of this certificate (real: SHA-256 fingerprint of the DER, colon-free upper hex). */
  readonly id: string;
  /** DNS names and IP addresses it is valid for (SAN; CN only when there is no SAN). `*.x.test` wildcards allowed. */
  readonly names: readonly string[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** id of the issuing CA; `=== id` for self-signed. */
  readonly issuer: string;
  readonly keyType: 'rsa' | 'ecdsa';
  /** SHA-256 of the DER, upper hex with colons, as OpenSSL prints it (events: OriginTlsFingerprint). */
  readonly fingerprint256: string;
}

/** A certificate with its key, ready to serve. `pem` is present in real mode only. */
export interface TlsIdentity {
  readonly cert: CertInfo;
  /** Chain after the leaf (intermediates), outermost last. */
  readonly chain: readonly CertInfo[];
  readonly pem?: { readonly cert: string; readonly key: string };
}

/** Trust anchors for verifying a peer: CA ids (sim) and/or PEM bundles (real); `system` adds the OS store. */
export interface TlsTrust {
  readonly system: boolean;
  readonly cas: readonly CertInfo[];
  readonly pem?: string;
}

export interface TlsServerParams {
  /** The identity for a ClientHello's SNI (undefined: no SNI). Undefined result: refuse the handshake (INVALID_SNI). */
  identity(sni: string | undefined): TlsIdentity | undefined;
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  /** TLS ≤1.2 cipher suites, OpenSSL names, server preference order. */
  readonly ciphers: readonly string[];
  /** TLS 1.3 suites, IANA names (TLS_AES_128_GCM_SHA256 …), server preference order. */
  readonly ciphersuites: readonly string[];
  /** Give up after this long without a finished handshake (failure HANDSHAKE_TIMEOUT). */
  readonly handshakeTimeoutMs: number;
}

export interface TlsClientParams {
  /** SNI to send; undefined sends none. */
  readonly servername: string | undefined;
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  /** TLS ≤1.2 suites in ClientHello order (OpenSSL names). */
  readonly ciphers: readonly string[];
  /** TLS 1.3 suites in ClientHello order (IANA names). */
  readonly ciphersuites: readonly string[];
  /** undefined = do not verify (Full); otherwise verify chain against `trust` and the name against `checkName`. */
  readonly verify: { readonly trust: TlsTrust; readonly checkName: string } | undefined;
  readonly handshakeTimeoutMs: number;
}


/** Which check a failed handshake failed: the log line and the error code say it. */
export type TlsFailureReason =
  | 'no_shared_version'
  | 'no_shared_cipher'
  | 'unknown_sni'
  | 'no_certificate'
  | 'cert_expired'
  | 'cert_not_yet_valid'
  | 'cert_wrong_name'
  | 'cert_self_signed'
  | 'cert_unknown_ca'
  | 'peer_alert'
  | 'not_tls'
  | 'handshake_timeout'
  | 'connection_closed'
  | 'internal';

export interface TlsInfo {
  readonly protocol: TlsVersion;
  /** Negotiated suite, OpenSSL name for ≤1.2 (ECDHE-RSA-AES128-GCM-SHA256), IANA name for 1.3 (TLS_AES_128_GCM_SHA256). */
  readonly cipher: string;
  /** SNI the client sent ('' when none). */
  readonly servername: string;
  /** The peer's certificate (client side of a handshake), undefined on the server side. */
  readonly peerCert: CertInfo | undefined;
}

export interface TlsFailure {
  readonly status: TlsStatus;
  readonly reason: TlsFailureReason;
  /** Human detail (OpenSSL's message in real mode). */
  readonly detail: string;
  /** The peer certificate seen, when the failure is about it. */
  readonly peerCert?: CertInfo;
  /**
   * Server side only: the SNI the client's ClientHello asked for, once one was read (absent when the hello never
   * came, was not TLS, or named no server). Lets a `tlsError` event say which name was refused.
   */
  readonly servername?: string;
}

export type TlsOutcome = { readonly ok: true; readonly info: TlsInfo } | { readonly ok: false; readonly failure: TlsFailure };

/** The Spectrum status a failure reason reports (ClientTlsStatus / OriginTlsStatus). */
export function tlsStatusOf(reason: TlsFailureReason): TlsStatus {
  switch (reason) {
    case 'unknown_sni':
      return 'INVALID_SNI';
    case 'no_certificate':
      return 'INVALID_CONFIG';
    case 'internal':
      return 'INTERNAL_ERROR';
    case 'no_shared_version':
    case 'no_shared_cipher':
    case 'cert_expired':
    case 'cert_not_yet_valid':
    case 'cert_wrong_name':
    case 'cert_self_signed':
    case 'cert_unknown_ca':
    case 'peer_alert':
    case 'not_tls':
    case 'handshake_timeout':
    case 'connection_closed':
      return 'HANDSHAKE_FAILED';
  }
}
