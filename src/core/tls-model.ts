/**
 * The TLS model: predicts what a handshake between a client's offer and a server's configuration does, without
 * any cryptography, exactly as OpenSSL 3.0 behind node:tls does it when each side is configured through
 * `openSslCipherOptions` (src/net/node/openssl.ts) and the server prefers its own order (honorCipherOrder).
 * The simulator plays TLS with it (src/net/sim/sim-tls.ts); a differential property test
 * (test/prop/core/tls-model.diff.prop.test.ts) holds it to real handshakes on loopback.
 *
 * What OpenSSL does, as found by experiment (and encoded below):
 * 1. Each side first checks its own configuration: an empty version range fails (NO_PROTOCOLS_AVAILABLE), and so
 *    does having no suite usable at its own highest version (NO_CIPHERS_AVAILABLE); the client fails before
 *    sending anything, the server on receiving the ClientHello. Status INVALID_CONFIG.
 * 2. The version is chosen first, alone: the highest both allow. With a 1.3-capable client (supported_versions
 *    carries its whole range) the server picks the highest common version or fails. With a client capped at ≤1.2
 *    (legacy version field only) the server picks min(client max, server max), fails if that is below its own
 *    minimum, and the *client* refuses it if it is below the client's minimum.
 * 3. No fallback: if the chosen version has no usable shared suite the handshake fails (no_shared_cipher); OpenSSL
 *    never retries a lower version.
 * 4. SNI is resolved after the version (Node's SNICallback runs from OpenSSL's certificate callback). At ≤1.2 it
 *    comes before the suite, whose choice depends on the certificate's key type; at 1.3 OpenSSL picks the suite
 *    while reading the ClientHello, so a missing shared 1.3 suite is reported before an unknown SNI.
 * 5. Suite: the first of the server's list (server preference) that the client offers, that exists at the chosen
 *    version and that fits the certificate's key type (1.3 suites fit any key).
 * 6. Chain verification (client, only when it verifies) keeps going after an error and reports the *last* one
 *    (Node's verify callback accepts everything and reads the final result): trust problems (self-signed,
 *    unknown CA) are found while building the chain, validity dates afterwards, so an expired self-signed
 *    certificate reports CERT_HAS_EXPIRED. The name is checked (Node's checkServerIdentity) only when the chain
 *    passed.
 * 7. TLS 1.1 needs `@SECLEVEL=0` (at least on the server); the model assumes `openSslCipherOptions` set it and
 *    takes version ranges as given.
 */
import type { CertInfo, TlsClientParams, TlsFailure, TlsFailureReason, TlsIdentity, TlsInfo, TlsServerParams, TlsStatus, TlsTrust, TlsVersion } from '../model/tls.ts';
import ipaddr from 'ipaddr.js';
import { isFourPartDecimalV4 } from '../model/ip.ts';
import { TLS_VERSIONS, cipherSpec, cipherUsable, cipherUsableAtVersion, versionRank } from './tls-ciphers.ts';

/** What the client's ClientHello carries. */
export interface ClientHello {
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  readonly ciphers: readonly string[];
  readonly ciphersuites: readonly string[];
  readonly servername: string | undefined;
}

/** A side's version range after Node's and our configuration rules; `min` above `max` means empty. */
export interface VersionRange {
  readonly min: TlsVersion;
  readonly max: TlsVersion;
}

/**
 * The versions a side can actually use given its suites (the contract of `openSslCipherOptions`): no 1.3 suite
 * caps the range at TLSv1.2; no ≤1.2 suite raises its floor to TLSv1.3 when it spans 1.2 and 1.3 (Node's rule),
 * and otherwise from TLSv1.1 to TLSv1.2 (`openSslCipherOptions`' rule, so that OpenSSL 3.0 and 3.5 agree).
 */
export function effectiveVersions(p: { readonly minVersion: TlsVersion; readonly maxVersion: TlsVersion; readonly ciphers: readonly string[]; readonly ciphersuites: readonly string[] }): VersionRange {
  const max: TlsVersion = p.ciphersuites.length === 0 && p.maxVersion === 'TLSv1.3' ? 'TLSv1.2' : p.maxVersion;
  const noLegacy = p.ciphers.length === 0;
  const min: TlsVersion =
    noLegacy && versionRank(p.minVersion) < 2 && versionRank(max) > 1 ? 'TLSv1.3' : noLegacy && p.minVersion === 'TLSv1.1' ? 'TLSv1.2' : p.minVersion;
  return { min, max };
}

/**
 * The ClientHello a client sends: its effective version range and only the suites usable within it (OpenSSL
 * leaves out the others).
 */
export function helloOf(p: TlsClientParams): ClientHello {
  const r = effectiveVersions(p);
  const inRange = (n: string): boolean => versionsOf(r).some((v) => cipherUsableAtVersion(n, v));
  return { minVersion: r.min, maxVersion: r.max, ciphers: p.ciphers.filter(inRange), ciphersuites: p.ciphersuites.filter(inRange), servername: p.servername };
}

/** The server's answer to a ClientHello: version, cipher and the identity it presents, or why it refuses. */
export type ServerDecision =
  | { readonly ok: true; readonly version: TlsVersion; readonly cipher: string; readonly identity: TlsIdentity }
  | { readonly ok: false; readonly failure: TlsFailure };

type ServerConfig = Omit<TlsServerParams, 'handshakeTimeoutMs'>;

function failure(status: TlsStatus, reason: TlsFailureReason, detail: string, peerCert?: CertInfo): TlsFailure {
  return peerCert ? { status, reason, detail, peerCert } : { status, reason, detail };
}

function versionsOf(r: VersionRange): TlsVersion[] {
  return TLS_VERSIONS.filter((v) => versionRank(v) >= versionRank(r.min) && versionRank(v) <= versionRank(r.max));
}

/**
 * OpenSSL's own-configuration check, done by each side before negotiating: a non-empty range, and some suite
 * usable at the side's highest version (1.3 suites count only at 1.3, ≤1.2 suites only below).
 */
export function configFailure(p: { readonly minVersion: TlsVersion; readonly maxVersion: TlsVersion; readonly ciphers: readonly string[]; readonly ciphersuites: readonly string[] }): TlsFailure | undefined {
  const r = effectiveVersions(p);
  if (versionRank(r.min) > versionRank(r.max)) {
    return failure('INVALID_CONFIG', 'no_shared_version', `no protocol version available (${r.min}..${r.max} after suite rules)`);
  }
  const atMax = [...p.ciphersuites, ...p.ciphers].some((n) => cipherUsableAtVersion(n, r.max));
  if (!atMax) return failure('INVALID_CONFIG', 'no_shared_cipher', `no cipher suite enabled for the highest version ${r.max}`);
  return undefined;
}

/**
 * What the server does with a ClientHello (already shaped by `helloOf`): own-config check, version, SNI →
 * identity, suite; the first failure wins. In the legacy case (client max ≤1.2) the server does not know the
 * client's minimum: it may decide a version the client then refuses (see `predict`).
 */
export function serverDecide(hello: ClientHello, server: ServerConfig): ServerDecision {
  const bad = configFailure(server);
  if (bad) return { ok: false, failure: bad };
  const sr = effectiveVersions(server);
  let version: TlsVersion | undefined;
  if (hello.maxVersion === 'TLSv1.3') {
    // supported_versions: the client's whole range; the highest common one.
    const common = versionsOf(sr).filter((v) => versionRank(v) >= versionRank(hello.minVersion) && versionRank(v) <= versionRank(hello.maxVersion));
    version = common[common.length - 1];
  } else {
    const v = versionRank(hello.maxVersion) < versionRank(sr.max) ? hello.maxVersion : sr.max;
    version = versionRank(v) >= versionRank(sr.min) ? v : undefined;
  }
  if (version === undefined) {
    return { ok: false, failure: failure('HANDSHAKE_FAILED', 'no_shared_version', `client ${hello.minVersion}..${hello.maxVersion}, server ${sr.min}..${sr.max}`) };
  }
  const v = version;
  const noCipher = (why: string): ServerDecision => ({ ok: false, failure: failure('HANDSHAKE_FAILED', 'no_shared_cipher', `no shared cipher suite at ${v}${why}`) });
  const noIdentity: ServerDecision = { ok: false, failure: failure('INVALID_SNI', 'unknown_sni', `no certificate for SNI ${hello.servername ?? '(none)'}`) };
  if (v === 'TLSv1.3') {
    // 1.3: OpenSSL picks the suite while reading the ClientHello, before the certificate (SNI) callback; no
    // key-type constraint.
    const offered = new Set(hello.ciphersuites);
    const cipher = server.ciphersuites.find((n) => offered.has(n));
    if (cipher === undefined) return noCipher('');
    const identity = server.identity(hello.servername);
    return identity ? { ok: true, version: v, cipher, identity } : noIdentity;
  }
  // ≤1.2: the certificate (SNI) first, then the suite, which must fit the certificate's key type.
  const identity = server.identity(hello.servername);
  if (!identity) return noIdentity;
  const keyType = identity.cert.keyType;
  const offered = new Set(hello.ciphers);
  const cipher = server.ciphers.find((n) => offered.has(n) && cipherUsable(n, v, keyType));
  return cipher === undefined ? noCipher(` for a ${keyType} certificate`) : { ok: true, version: v, cipher, identity };
}

/**
 * The client's check of the presented chain (only when it verifies): undefined when it accepts. `chain` holds
 * the intermediates the server sent, leaf excluded. Trust anchors are `verify.trust.cas` (self-signed CAs, by
 * id); `trust.system` is ignored (nothing the model sees is in the OS store).
 *
 * Order (OpenSSL keeps the last error): the path is built leaf upward, through `trust.cas` first, then the sent
 * chain; an untrusted self-signed certificate gives cert_self_signed, a missing issuer cert_unknown_ca. Then
 * every certificate on the (possibly partial) path is date-checked from the top down, so a date problem
 * overrides a trust problem, and the one nearest the leaf wins (expired over not-yet-valid for the same one).
 * Only a clean chain gets the name check (cert_wrong_name).
 */
export function clientVerify(
  leaf: CertInfo,
  chain: readonly CertInfo[],
  verify: { readonly trust: TlsTrust; readonly checkName: string },
  nowMs: number,
): TlsFailure | undefined {
  const fail = (reason: TlsFailureReason, detail: string): TlsFailure => failure('HANDSHAKE_FAILED', reason, detail, leaf);
  const path: CertInfo[] = [leaf];
  let trustError: TlsFailure | undefined;
  const anchors = new Map(verify.trust.cas.map((c) => [c.id, c]));
  const sent = new Map(chain.map((c) => [c.id, c]));
  for (let cur = leaf; ;) {
    if (cur.issuer === cur.id) {
      if (!anchors.has(cur.id)) trustError = fail('cert_self_signed', path.length === 1 ? 'DEPTH_ZERO_SELF_SIGNED_CERT' : 'SELF_SIGNED_CERT_IN_CHAIN');
      break;
    }
    const next = anchors.get(cur.issuer) ?? sent.get(cur.issuer);
    // A repeat means a loop in the sent chain: OpenSSL gives up on it as an unknown issuer too.
    if (!next || path.includes(next) || path.length > 10) {
      trustError = fail('cert_unknown_ca', path.length === 1 ? 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' : 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
      break;
    }
    path.push(next);
    cur = next;
  }
  for (const c of path) {
    if (nowMs > c.notAfterMs) return fail('cert_expired', c === leaf ? 'CERT_HAS_EXPIRED' : 'CERT_HAS_EXPIRED (issuer)');
    if (nowMs < c.notBeforeMs) return fail('cert_not_yet_valid', c === leaf ? 'CERT_NOT_YET_VALID' : 'CERT_NOT_YET_VALID (issuer)');
  }
  if (trustError) return trustError;
  if (!nameMatches(leaf.names, verify.checkName)) return fail('cert_wrong_name', `ERR_TLS_CERT_ALTNAME_INVALID: ${verify.checkName} not in ${leaf.names.join(', ')}`);
  return undefined;
}

function canonicalIp(s: string): string | undefined {
  if (isFourPartDecimalV4(s)) return s;
  if (!s.includes(':') || !ipaddr.IPv6.isValid(s)) return undefined;
  return ipaddr.IPv6.parse(s).toString();
}

/** Node's hostname rule (tls.checkServerIdentity): lower case, trailing dot dropped, labels. */
function labels(host: string): string[] {
  return (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase().split('.');
}

/** One name pattern against a host, as Node's checkServerIdentity matches DNS names (wildcards allowed). */
function dnsMatch(hostParts: readonly string[], pattern: string): boolean {
  if (!pattern) return false;
  const pat = labels(pattern);
  if (hostParts.length !== pat.length || pat.includes('')) return false;
  if (pat.some((p) => /[^\u0021-\u007F]/u.test(p))) return false;
  for (let i = hostParts.length - 1; i > 0; i -= 1) if (hostParts[i] !== pat[i]) return false;
  const host0 = hostParts[0] ?? '';
  const pat0 = pat[0] ?? '';
  const star = pat0.split('*');
  if (star.length === 1 || pat0.includes('xn--')) return host0 === pat0;
  // One wildcard, in the first label only, never directly under a TLD (*.test).
  if (star.length > 2 || pat.length <= 2) return false;
  const [prefix = '', suffix = ''] = star;
  return prefix.length + suffix.length <= host0.length && host0.startsWith(prefix) && host0.endsWith(suffix);
}

/**
 * Whether a certificate's names cover `host`, as Node's `tls.checkServerIdentity` decides: an IP address
 * matches IP entries only (canonical form), a DNS name matches DNS entries with a one-label `*` wildcard.
 * (CertInfo.names folds the CN in only when there is no SAN, as Node falls back to the CN.)
 */
export function nameMatches(names: readonly string[], host: string): boolean {
  const ip = canonicalIp(host);
  if (ip !== undefined) return names.some((n) => canonicalIp(n) === ip);
  const hostParts = labels(host);
  return names.some((n) => canonicalIp(n) === undefined && dnsMatch(hostParts, n));
}

/** Whether `cert` covers `name` (SNI selection, strict name checks): `nameMatches` over the certificate's names. */
export function certCoversName(cert: CertInfo, name: string): boolean {
  return nameMatches(cert.names, name);
}

/** A predicted handshake outcome as the client sees it; `side` says which end detected a failure. */
export type Prediction =
  | { readonly ok: true; readonly info: TlsInfo }
  | { readonly ok: false; readonly failure: TlsFailure; readonly side: 'client' | 'server' };

/**
 * Whole-handshake prediction, as the client sees it (server failures surface as the client's failure too, with
 * `side: 'server'`). Order: client config, server (config, version, SNI, suite), client's version check
 * (legacy negotiation), client's chain and name check. `nowMs`: epoch ms for certificate dates.
 */
export function predict(client: TlsClientParams, server: ServerConfig, nowMs: number): Prediction {
  const own = configFailure(client);
  if (own) return { ok: false, failure: own, side: 'client' };
  const hello = helloOf(client);
  const d = serverDecide(hello, server);
  if (!d.ok) return { ok: false, failure: d.failure, side: 'server' };
  if (versionRank(d.version) < versionRank(hello.minVersion)) {
    return { ok: false, side: 'client', failure: failure('HANDSHAKE_FAILED', 'no_shared_version', `server chose ${d.version}, below the client's ${hello.minVersion}`) };
  }
  if (client.verify) {
    const bad = clientVerify(d.identity.cert, d.identity.chain, client.verify, nowMs);
    if (bad) return { ok: false, failure: bad, side: 'client' };
  }
  // A decided suite is known to the tables (cipherUsable checked it); keep the name node:tls reports.
  cipherSpec(d.cipher);
  return { ok: true, info: { protocol: d.version, cipher: d.cipher, servername: client.servername ?? '', peerCert: d.identity.cert } };
}
