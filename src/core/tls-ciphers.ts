/**
 * Cipher tables for edge TLS, as data (docs/spectrum.md, "Edge TLS"), translated into what the OpenSSL behind
 * node:tls (Node 20: OpenSSL 3.0) accepts, plus what each suite needs (key type, versions).
 *
 * Naming: TLS ≤1.2 suites by their OpenSSL names (ECDHE-RSA-AES128-GCM-SHA256), TLS 1.3 suites by their IANA names
 * (TLS_AES_128_GCM_SHA256), the two forms node:tls takes in its `ciphers` option and reports in
 * `getCipher().name`. Spectrum's logs use BoringSSL names (AEAD-AES128-GCM-SHA256 for 1.3): `spectrumCipherName`.
 *
 * Pure data and functions; used by the TLS model, the real TLS wrapper and the simulator alike. The translation into
 * node:tls options (`openSslCipherOptions`) is the real adapter's: src/net/node/openssl.ts.
 */
import type { TlsVersion } from '../model/tls.ts';

/** Both halves of a cipher configuration, in preference order (ClientHello order for a client). */
export interface CipherLists {
  /** TLS ≤1.2 suites, OpenSSL names. */
  readonly ciphers: readonly string[];
  /** TLS 1.3 suites, IANA names. */
  readonly ciphersuites: readonly string[];
}

/** The certificate key a suite needs: `any` for TLS 1.3 suites (authentication is separate from the suite). */
export type CipherKeyType = 'rsa' | 'ecdsa' | 'any';

/** What the model needs to know about one suite. */
export interface CipherSpec {
  /** OpenSSL name (≤1.2) or IANA name (1.3): the name node:tls takes and reports. */
  readonly name: string;
  /** IANA name, as node:tls reports in `getCipher().standardName`. */
  readonly iana: string;
  /** Name in Spectrum's logs (BoringSSL style). */
  readonly spectrum: string;
  readonly keyType: CipherKeyType;
  /** Lowest and highest protocol version the suite can be negotiated at (floored at TLSv1.1, our lowest). */
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
}

/** Protocol versions in ascending order; `versionRank` indexes it. */
export const TLS_VERSIONS: readonly TlsVersion[] = ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** 0 for TLSv1.1, 1 for TLSv1.2, 2 for TLSv1.3: versions compare by rank. */
export function versionRank(v: TlsVersion): number {
  return TLS_VERSIONS.indexOf(v);
}

function spec(name: string, iana: string, keyType: CipherKeyType, minVersion: TlsVersion, spectrum = name): CipherSpec {
  return { name, iana, spectrum, keyType, minVersion, maxVersion: keyType === 'any' ? 'TLSv1.3' : 'TLSv1.2' };
}

// Versions per OpenSSL's own table (`openssl ciphers -V -s -tls1_2 NAME`): the GCM, CHACHA20 and SHA256/SHA384
// (HMAC) suites exist from TLS 1.2; the plain SHA (SHA-1 HMAC) CBC suites from SSLv3/TLS 1.0, floored here at 1.1.
// No ≤1.2 suite is usable at 1.3, no 1.3 suite below 1.3.
const SPECS: readonly CipherSpec[] = [
  spec('TLS_CHACHA20_POLY1305_SHA256', 'TLS_CHACHA20_POLY1305_SHA256', 'any', 'TLSv1.3', 'AEAD-CHACHA20-POLY1305-SHA256'),
  spec('TLS_AES_128_GCM_SHA256', 'TLS_AES_128_GCM_SHA256', 'any', 'TLSv1.3', 'AEAD-AES128-GCM-SHA256'),
  spec('TLS_AES_256_GCM_SHA384', 'TLS_AES_256_GCM_SHA384', 'any', 'TLSv1.3', 'AEAD-AES256-GCM-SHA384'),
  spec('ECDHE-RSA-CHACHA20-POLY1305', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256', 'rsa', 'TLSv1.2'),
  spec('ECDHE-ECDSA-CHACHA20-POLY1305', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'ecdsa', 'TLSv1.2'),
  spec('ECDHE-RSA-AES128-GCM-SHA256', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'rsa', 'TLSv1.2'),
  spec('ECDHE-ECDSA-AES128-GCM-SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'ecdsa', 'TLSv1.2'),
  spec('ECDHE-RSA-AES256-GCM-SHA384', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'rsa', 'TLSv1.2'),
  spec('ECDHE-ECDSA-AES256-GCM-SHA384', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'ecdsa', 'TLSv1.2'),
  spec('ECDHE-RSA-AES128-SHA256', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256', 'rsa', 'TLSv1.2'),
  spec('ECDHE-RSA-AES128-SHA', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA', 'rsa', 'TLSv1.1'),
  spec('ECDHE-ECDSA-AES128-SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256', 'ecdsa', 'TLSv1.2'),
  spec('ECDHE-ECDSA-AES128-SHA', 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA', 'ecdsa', 'TLSv1.1'),
  spec('ECDHE-RSA-AES256-SHA', 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA', 'rsa', 'TLSv1.1'),
  spec('ECDHE-ECDSA-AES256-SHA', 'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA', 'ecdsa', 'TLSv1.1'),
  // Plain RSA key exchange: the certificate's RSA key encrypts the premaster secret, so RSA certificates only.
  spec('AES128-GCM-SHA256', 'TLS_RSA_WITH_AES_128_GCM_SHA256', 'rsa', 'TLSv1.2'),
  spec('AES256-GCM-SHA384', 'TLS_RSA_WITH_AES_256_GCM_SHA384', 'rsa', 'TLSv1.2'),
  spec('AES128-SHA256', 'TLS_RSA_WITH_AES_128_CBC_SHA256', 'rsa', 'TLSv1.2'),
  spec('AES128-SHA', 'TLS_RSA_WITH_AES_128_CBC_SHA', 'rsa', 'TLSv1.1'),
  spec('AES256-SHA', 'TLS_RSA_WITH_AES_256_CBC_SHA', 'rsa', 'TLSv1.1'),
];

const BY_NAME = new Map<string, CipherSpec>(SPECS.map((s) => [s.name, s]));
const BY_SPECTRUM = new Map<string, CipherSpec>(SPECS.map((s) => [s.spectrum, s]));

/** Every suite this module knows, in the edge list's order. */
export const KNOWN_CIPHERS: readonly CipherSpec[] = SPECS;

/** The spec of a suite by its OpenSSL/IANA name. Throws a plain Error for a name outside these tables (a bug). */
export function cipherSpec(name: string): CipherSpec {
  const s = BY_NAME.get(name);
  if (!s) throw new Error(`tls-ciphers: unknown cipher suite ${name}`);
  return s;
}

/** True for the TLS 1.3 suites (IANA names, `TLS_` prefix), which go in `ciphersuites`, not `ciphers`. */
export function isTls13Suite(name: string): boolean {
  return name.startsWith('TLS_');
}

/** True when `name` can be negotiated at `version` with a certificate of `keyType`. */
export function cipherUsable(name: string, version: TlsVersion, keyType: 'rsa' | 'ecdsa'): boolean {
  const s = cipherSpec(name);
  return cipherUsableAtVersion(name, version) && (s.keyType === 'any' || s.keyType === keyType);
}

/** True when `name` can be negotiated at `version` (any key type). */
export function cipherUsableAtVersion(name: string, version: TlsVersion): boolean {
  const s = cipherSpec(name);
  const r = versionRank(version);
  return versionRank(s.minVersion) <= r && r <= versionRank(s.maxVersion);
}

/**
 * The name Spectrum's logs use for a suite (`ClientTlsCipher`, `OriginTlsCipher`): BoringSSL's `AEAD-…` names
 * for TLS 1.3, OpenSSL names (unchanged) otherwise. Unknown names pass through unchanged.
 */
export function spectrumCipherName(name: string): string {
  return BY_NAME.get(name)?.spectrum ?? name;
}

/**
 * The reverse of `spectrumCipherName`: OpenSSL/IANA name for a Spectrum log name. Also maps the doc's typo
 * `CDHE-ECDSA-AES128-SHA256` to ECDHE-ECDSA-AES128-SHA256. Unknown names pass through unchanged.
 */
export function cipherFromSpectrumName(name: string): string {
  if (name === SPECTRUM_DOC_TYPO) return 'ECDHE-ECDSA-AES128-SHA256';
  return BY_SPECTRUM.get(name)?.name ?? name;
}

/** Spectrum's documentation writes `CDHE-ECDSA-AES128-SHA256` (sic) for ECDHE-ECDSA-AES128-SHA256; kept verbatim below, mapped here. */
const SPECTRUM_DOC_TYPO = 'CDHE-ECDSA-AES128-SHA256';

/** Spectrum's edge (client-facing) cipher list for TCP apps, verbatim, typo included, in the doc's order. */
export const SPECTRUM_EDGE_CIPHER_NAMES: readonly string[] = [
  'AEAD-CHACHA20-POLY1305-SHA256',
  'AEAD-AES128-GCM-SHA256',
  'AEAD-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES128-SHA256',
  'ECDHE-RSA-AES128-SHA',
  SPECTRUM_DOC_TYPO,
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-RSA-AES256-SHA',
  'ECDHE-ECDSA-AES256-SHA',
  'AES128-GCM-SHA256',
  'AES256-GCM-SHA384',
  'AES128-SHA256',
  'AES128-SHA',
  'AES256-SHA',
  'ECDHE-RSA-DES-CBC3-SHA',
  'DES-CBC3-SHA',
];

/**
 * Entries of Spectrum's edge list that this OpenSSL cannot negotiate, with why. Node 20's OpenSSL 3.0 has no 3DES
 * suites at all: `openssl ciphers -V 'ALL:COMPLEMENTOFALL:@SECLEVEL=0'` lists none and `tls.getCiphers()` has no
 * `des-cbc3-sha`, so even lowering the security level (which 3DES's 112-bit strength would also need) cannot
 * bring them back.
 */
export const EDGE_CIPHERS_DROPPED: readonly { readonly name: string; readonly why: string }[] = [
  { name: 'ECDHE-RSA-DES-CBC3-SHA', why: '3DES is not built into OpenSSL 3.0 as shipped with Node 20 (nor allowed at security level ≥ 1)' },
  { name: 'DES-CBC3-SHA', why: '3DES is not built into OpenSSL 3.0 as shipped with Node 20 (nor allowed at security level ≥ 1)' },
];

/**
 * The edge (client-facing) cipher configuration: Spectrum's list in its order, 1.3 suites as IANA names, the typo
 * mapped, 3DES dropped (`EDGE_CIPHERS_DROPPED`). The edge serves it with server preference (honorCipherOrder).
 */
export const EDGE_CIPHERS: CipherLists = (() => {
  const dropped = new Set(EDGE_CIPHERS_DROPPED.map((d) => d.name));
  const names = SPECTRUM_EDGE_CIPHER_NAMES.filter((n) => !dropped.has(n)).map(cipherFromSpectrumName);
  return { ciphers: names.filter((n) => !isTls13Suite(n)), ciphersuites: names.filter(isTls13Suite) };
})();

/** One row of Spectrum's origin table: a suite (OpenSSL/IANA name) and the versions whose ClientHello offers it. */
interface OriginRow {
  readonly name: string;
  readonly versions: readonly TlsVersion[];
}

// Spectrum's origin table, rows in ClientHello order.
const ORIGIN_ROWS: readonly OriginRow[] = [
  { name: 'TLS_AES_128_GCM_SHA256', versions: ['TLSv1.3'] },
  { name: 'TLS_AES_256_GCM_SHA384', versions: ['TLSv1.3'] },
  { name: 'TLS_CHACHA20_POLY1305_SHA256', versions: ['TLSv1.3'] },
  { name: 'ECDHE-ECDSA-AES128-GCM-SHA256', versions: ['TLSv1.2'] },
  { name: 'ECDHE-RSA-AES128-GCM-SHA256', versions: ['TLSv1.2'] },
  { name: 'ECDHE-RSA-AES128-SHA', versions: ['TLSv1.2', 'TLSv1.1'] },
  { name: 'AES128-GCM-SHA256', versions: ['TLSv1.2'] },
  { name: 'AES128-SHA', versions: ['TLSv1.2', 'TLSv1.1'] },
  { name: 'AES256-SHA', versions: ['TLSv1.2', 'TLSv1.1'] },
];

function splitLists(names: readonly string[]): CipherLists {
  return { ciphers: names.filter((n) => !isTls13Suite(n)), ciphersuites: names.filter(isTls13Suite) };
}

/** Spectrum's origin table: per version, the suites a ClientHello for exactly that version offers, in order. */
export const ORIGIN_CIPHERS: Readonly<Record<TlsVersion, CipherLists>> = {
  'TLSv1.3': splitLists(ORIGIN_ROWS.filter((r) => r.versions.includes('TLSv1.3')).map((r) => r.name)),
  'TLSv1.2': splitLists(ORIGIN_ROWS.filter((r) => r.versions.includes('TLSv1.2')).map((r) => r.name)),
  'TLSv1.1': splitLists(ORIGIN_ROWS.filter((r) => r.versions.includes('TLSv1.1')).map((r) => r.name)),
};

/**
 * The suites a ClientHello to an origin offers when it spans `min`..`max`: every row of the table ticked for
 * some version in the range, in the table's order. Throws a plain Error when `min` is above `max`.
 */
export function originClientCiphers(min: TlsVersion, max: TlsVersion): CipherLists {
  const lo = versionRank(min);
  const hi = versionRank(max);
  if (lo > hi) throw new Error(`tls-ciphers: min version ${min} above max ${max}`);
  return splitLists(ORIGIN_ROWS.filter((r) => r.versions.some((v) => versionRank(v) >= lo && versionRank(v) <= hi)).map((r) => r.name));
}
