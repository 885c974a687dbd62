/**
 * node:tls (OpenSSL 3) in the TLS model's terms, both ways: the options that make a side offer exactly a cipher
 * configuration (`openSslCipherOptions`), and the failure a node:tls error code stands for (`failureOfCode`). Kept
 * in the real adapter because both encode Node's and OpenSSL's behaviour; `test/prop/core/tls-model.diff.prop.test.ts`
 * holds them, with src/core/tls-model.ts, to real handshakes.
 */
import type { TlsFailureReason, TlsStatus, TlsVersion } from '../../model/tls.ts';

/** What node:tls needs for one side: its `ciphers` string and version bounds. */
export interface OpenSslCipherOptions {
  readonly ciphers: string;
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
}

/**
 * The node:tls options that make a side offer exactly `lists` over `minVersion`..`maxVersion`, the contract the
 * TLS model predicts (src/core/tls-model.ts `effectiveVersions`). Node's quirks handled here:
 * - No 1.3 suites: Node would keep OpenSSL's default 1.3 suites, so TLS 1.3 is switched off instead
 *   (`maxVersion` capped at TLSv1.2; the range may come out empty, which OpenSSL then refuses at handshake time).
 * - No ≤1.2 suites: Node itself raises the minimum to TLSv1.3 when the range spans 1.2 and 1.3.
 * - TLSv1.1 in range (and some ≤1.2 suite): `@SECLEVEL=0` is appended, because OpenSSL 3.0 at its default level 1
 *   cannot sign a TLS 1.1 handshake (the server fails with no suitable signature algorithm). Only such configs
 *   get it: it also allows weak keys and SHA-1 signatures.
 * - No ≤1.2 suites and TLSv1.1 as the minimum: the minimum is raised to TLSv1.2 (no TLS 1.1 handshake is possible
 *   without a ≤1.2 suite). A TLSv1.1-only range so becomes empty: OpenSSL 3.5 (Node 24's) drops TLS 1.1 at the
 *   default security level and reports no protocol available, where OpenSSL 3.0 (Node 20's) would report no cipher;
 *   now both report no protocol, as the model predicts.
 * Throws a plain Error when both lists are empty (a config with no suite is a bug upstream).
 */
export function openSslCipherOptions(p: {
  /** TLS ≤1.2 suites, OpenSSL names, in preference order. */
  readonly ciphers: readonly string[];
  /** TLS 1.3 suites, IANA names, in preference order. */
  readonly ciphersuites: readonly string[];
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
}): OpenSslCipherOptions {
  if (p.ciphers.length === 0 && p.ciphersuites.length === 0) throw new Error('openssl: no cipher suites');
  const maxVersion: TlsVersion = p.ciphersuites.length === 0 && p.maxVersion === 'TLSv1.3' ? 'TLSv1.2' : p.maxVersion;
  const minVersion: TlsVersion = p.ciphers.length === 0 && p.minVersion === 'TLSv1.1' ? 'TLSv1.2' : p.minVersion;
  const parts = [...p.ciphersuites, ...p.ciphers];
  if (p.ciphers.length > 0 && p.minVersion === 'TLSv1.1') parts.push('@SECLEVEL=0');
  return { ciphers: parts.join(':'), minVersion, maxVersion };
}

/**
 * The failure a node:tls error or verification code stands for, so real handshakes report what the model
 * predicts. `code`: an `err.code` from a TLS socket or `tlsClientError`, or `socket.authorizationError`'s code.
 * Alerts received from the peer keep the peer's meaning where the alert carries one (protocol_version), else
 * `peer_alert`. Unknown codes: `internal`.
 */
export function failureOfCode(code: string | undefined): { readonly reason: TlsFailureReason; readonly status: TlsStatus } {
  switch (code ?? '') {
    case 'ERR_SSL_NO_SHARED_CIPHER':
      return { reason: 'no_shared_cipher', status: 'HANDSHAKE_FAILED' };
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION':
      return { reason: 'no_shared_version', status: 'HANDSHAKE_FAILED' };
    case 'ERR_SSL_NO_PROTOCOLS_AVAILABLE':
      return { reason: 'no_shared_version', status: 'INVALID_CONFIG' };
    case 'ERR_SSL_NO_CIPHERS_AVAILABLE':
      return { reason: 'no_shared_cipher', status: 'INVALID_CONFIG' };
    case 'CERT_HAS_EXPIRED':
      return { reason: 'cert_expired', status: 'HANDSHAKE_FAILED' };
    case 'CERT_NOT_YET_VALID':
      return { reason: 'cert_not_yet_valid', status: 'HANDSHAKE_FAILED' };
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return { reason: 'cert_self_signed', status: 'HANDSHAKE_FAILED' };
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_GET_ISSUER_CERT':
      return { reason: 'cert_unknown_ca', status: 'HANDSHAKE_FAILED' };
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return { reason: 'cert_wrong_name', status: 'HANDSHAKE_FAILED' };
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return { reason: 'not_tls', status: 'HANDSHAKE_FAILED' };
    case 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE':
    case 'ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE': // OpenSSL 3.5's (Node 24's) name of 3.0's SSLV3_ALERT_HANDSHAKE_FAILURE
    case 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR':
    case 'ERR_SSL_TLSV1_ALERT_DECODE_ERROR':
    case 'ERR_SSL_TLSV1_ALERT_UNRECOGNIZED_NAME':
      return { reason: 'peer_alert', status: 'HANDSHAKE_FAILED' };
    case 'ECONNRESET':
    case 'EPIPE':
      return { reason: 'connection_closed', status: 'HANDSHAKE_FAILED' };
    default:
      return { reason: 'internal', status: 'INTERNAL_ERROR' };
  }
}
