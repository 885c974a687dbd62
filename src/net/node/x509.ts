/**
 * X.509 helpers for edge TLS: issue certificates (the local CA, test CAs, test origins) and describe a PEM
 * certificate as the `CertInfo` the TLS model and events use.
 *
 * Issuing uses @peculiar/x509 over Node's WebCrypto; describing uses node:crypto `X509Certificate` (OpenSSL's view,
 * the same one node:tls verifies with), plus @peculiar/x509 only to read SAN entries structurally (Node exposes
 * them as one escaped string).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { RefractError } from '../../model/errors.ts';
import type { CertInfo } from '../ports.ts';

// Node's WebCrypto is complete but typed apart from the DOM's `Crypto` that @peculiar/x509 names.
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Default validity of an issued certificate: from an hour ago (clock skew) to 90 days ahead. */
const DEFAULT_BACKDATE_MS = HOUR_MS;
const DEFAULT_LIFETIME_MS = 90 * DAY_MS;

export type KeyType = 'rsa' | 'ecdsa';

export interface IssueCertOptions {
  /** DNS names and IP addresses for the SAN; the first is also the CN unless `commonName` is given. May be empty for a CA. */
  names: readonly string[];
  /** Default 'ecdsa' (P-256); 'rsa' is 2048-bit. Both sign with SHA-256. */
  keyType?: KeyType;
  /** Epoch ms; default now − 1 h. */
  notBeforeMs?: number;
  /** Epoch ms; default now + 90 days. */
  notAfterMs?: number;
  /** Signing CA (PEM cert + PEM key). Absent: self-signed. */
  issuer?: { cert: string; key: string };
  /** CA certificate: basicConstraints CA:true, keyCertSign + cRLSign; no serverAuth EKU. */
  isCa?: boolean;
  commonName?: string;
}

export interface IssuedCert {
  /** PEM certificate (one block). */
  cert: string;
  /** PEM PKCS#8 private key. */
  key: string;
}

const ALGS = {
  rsa: {
    gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    imp: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
  ecdsa: {
    gen: { name: 'ECDSA', namedCurve: 'P-256' },
    imp: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' },
  },
} as const;

/**
 * Issues a certificate and a fresh key. Leaves carry serverAuth EKU, digitalSignature (+keyEncipherment for RSA),
 * SAN, subject and authority key identifiers; CAs carry CA:true (critical) and keyCertSign. Serials are 128 random
 * bits (positive). The result verifies under OpenSSL (node:tls) for chain and hostname checks.
 * Throws RefractError E_TLS_CERT_INVALID when the issuer's PEM cannot be used (bad PEM, unsupported key type).
 */
export async function issueCert(opts: IssueCertOptions): Promise<IssuedCert> {
  const keyType: KeyType = opts.keyType ?? 'ecdsa';
  const now = Date.now();
  const notBefore = new Date(opts.notBeforeMs ?? now - DEFAULT_BACKDATE_MS);
  const notAfter = new Date(opts.notAfterMs ?? now + DEFAULT_LIFETIME_MS);
  const alg = ALGS[keyType];
  const keys = (await webcrypto.subtle.generateKey(alg.gen, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;

  const cn = opts.commonName ?? opts.names[0] ?? 'Refract';
  const subject = `CN=${escapeDnValue(cn)}`;
  const extensions: x509.Extension[] = [];
  if (opts.isCa) {
    extensions.push(new x509.BasicConstraintsExtension(true, undefined, true));
    extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true));
  } else {
    extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
    const usage = keyType === 'rsa' ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.digitalSignature;
    extensions.push(new x509.KeyUsagesExtension(usage, true));
    extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]));
  }
  if (opts.names.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(opts.names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))));
  }
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));

  const serialNumber = randomSerial();
  let cert: x509.X509Certificate;
  if (opts.issuer === undefined) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey));
    cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber, name: subject, notBefore, notAfter, keys, extensions, signingAlgorithm: alg.sign,
    });
  } else {
    const { cert: caCert, key: caKey, keyType: caKeyType } = await loadIssuer(opts.issuer);
    const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
    extensions.push(caSki ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId) : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey));
    cert = await x509.X509CertificateGenerator.create({
      serialNumber,
      subject,
      // The issuer's own encoded subject, so name chaining is byte-exact.
      issuer: caCert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKey,
      extensions,
      signingAlgorithm: ALGS[caKeyType].sign,
    });
  }
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { cert: cert.toString('pem') + '\n', key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n' };
}

async function loadIssuer(issuer: { cert: string; key: string }): Promise<{ cert: x509.X509Certificate; key: webcrypto.CryptoKey; keyType: KeyType }> {
  try {
    const cert = new x509.X509Certificate(firstPemBlock(issuer.cert));
    const nodeKey = createPrivateKey(issuer.key);
    const kt = nodeKey.asymmetricKeyType;
    const keyType: KeyType | undefined = kt === 'rsa' ? 'rsa' : kt === 'ec' ? 'ecdsa' : undefined;
    if (keyType === undefined) throw new Error(`unsupported issuer key type ${String(kt)}`);
    const der = nodeKey.export({ format: 'der', type: 'pkcs8' });
    const key = await webcrypto.subtle.importKey('pkcs8', der, ALGS[keyType].imp, false, ['sign']);
    return { cert, key, keyType };
  } catch (cause) {
    throw new RefractError('E_TLS_CERT_INVALID', { details: { what: 'issuer' }, cause });
  }
}

/** 16 random bytes, top bit clear (DER INTEGER stays positive) and non-zero leading byte (no padding ambiguity). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x01;
  return b.toString('hex');
}

/** RFC 4514 escaping for a CN value (names are operator-given; keep a stray comma from splitting the DN). */
function escapeDnValue(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, '\\$1').replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');
}

// ── describing ─────────────────────────────────────────────────────────────────────────────────────────────────

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every CERTIFICATE block of a PEM text, in order (other blocks, e.g. keys, are skipped). */
export function splitPemCerts(pem: string): string[] {
  return [...pem.matchAll(PEM_CERT_RE)].map((m) => m[0] + '\n');
}

function firstPemBlock(pem: string): string {
  const first = splitPemCerts(pem)[0];
  if (first === undefined) throw new Error('no CERTIFICATE block');
  return first;
}

/**
 * Material behind CertInfos this module produced, so `describeCert(pem, issuers)` can verify signatures against a
 * CertInfo (which carries no key). Weak: a CertInfo dropped by its owner costs nothing here.
 */
const material = new WeakMap<CertInfo, X509Certificate>();

/** An issuer candidate: a CertInfo returned by describeCert/describeCertPem, a PEM certificate, or a parsed one. */
export type IssuerCandidate = CertInfo | string | X509Certificate;

/**
 * Describes one certificate (the first CERTIFICATE block of `pem`, or an already parsed X509Certificate).
 * - `id`: SHA-256 of the DER, upper hex without colons; `fingerprint256`: the same with colons (OpenSSL style).
 * - `names`: SAN DNS names and IP addresses (IPv6 in canonical compressed form); the CN only when there is no SAN.
 * - `issuer`: `id` when self-signed (issued by itself and its signature verifies with its own key); else the id of
 *   the first candidate in `issuers` that issued it (name/AKI match and signature verifies); else
 *   `unknown:<issuer DN>`. CertInfo candidates count only when they came from this module (their certificate is
 *   remembered); PEM strings or X509Certificates always work.
 * Throws RefractError E_TLS_CERT_INVALID (details.reason) on unparsable input or a key type other than RSA/EC.
 */
export function describeCert(pem: string | X509Certificate, issuers: readonly IssuerCandidate[] = []): CertInfo {
  const cert = typeof pem === 'string' ? parseCert(pem) : pem;
  const fingerprint256 = cert.fingerprint256.toUpperCase();
  const id = fingerprint256.replaceAll(':', '');
  const kt = cert.publicKey.asymmetricKeyType;
  const keyType = kt === 'rsa' || kt === 'rsa-pss' ? 'rsa' : kt === 'ec' ? 'ecdsa' : undefined;
  if (keyType === undefined) throw new RefractError('E_TLS_CERT_INVALID', { details: { reason: 'unsupported_key_type', keyType: String(kt) } });

  let issuer: string | undefined;
  if (selfSigned(cert)) {
    issuer = id;
  } else {
    for (const cand of issuers) {
      const ca = candidateCert(cand);
      if (ca !== undefined && signedBy(cert, ca)) {
        issuer = typeof cand === 'object' && 'id' in cand ? cand.id : ca.fingerprint256.replaceAll(':', '').toUpperCase();
        break;
      }
    }
  }
  const info: CertInfo = Object.freeze({
    id,
    names: Object.freeze(certNames(cert)),
    notBeforeMs: Date.parse(cert.validFrom),
    notAfterMs: Date.parse(cert.validTo),
    issuer: issuer ?? `unknown:${cert.issuer.replaceAll('\n', ', ')}`,
    keyType,
    fingerprint256,
  });
  material.set(info, cert);
  return info;
}

/**
 * Describes every certificate of a PEM bundle, in order. Each may be issued by any other certificate of the
 * bundle or by one of `issuers` (so a leaf + intermediates chain resolves its issuer ids). Throws
 * E_TLS_CERT_INVALID (details.reason 'no_certificate') when the text holds no certificate.
 */
export function describeCertPem(pem: string, issuers: readonly IssuerCandidate[] = []): CertInfo[] {
  const blocks = splitPemCerts(pem);
  if (blocks.length === 0) throw new RefractError('E_TLS_CERT_INVALID', { details: { reason: 'no_certificate' } });
  const certs = blocks.map(parseCert);
  return certs.map((c) => describeCert(c, [...certs.filter((o) => o !== c), ...issuers]));
}

/** The X509Certificate behind a CertInfo made by this module (undefined for others, e.g. simulator descriptors). */
export function certOf(info: CertInfo): X509Certificate | undefined {
  return material.get(info);
}

function parseCert(pem: string): X509Certificate {
  try {
    return new X509Certificate(firstPemBlock(pem));
  } catch (cause) {
    throw new RefractError('E_TLS_CERT_INVALID', { details: { reason: 'not_a_certificate' }, cause });
  }
}

function candidateCert(c: IssuerCandidate): X509Certificate | undefined {
  if (c instanceof X509Certificate) return c;
  if (typeof c === 'string') {
    try {
      return new X509Certificate(firstPemBlock(c));
    } catch {
      return undefined;
    }
  }
  return material.get(c);
}

/**
 * Self-signed as OpenSSL sees it (DEPTH_ZERO_SELF_SIGNED_CERT): subject = issuer and the signature verifies with
 * its own key. Not `checkIssued(self)`: that also demands keyCertSign, which a self-signed leaf lacks.
 */
function selfSigned(cert: X509Certificate): boolean {
  try {
    return cert.subject === cert.issuer && cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}

function signedBy(cert: X509Certificate, ca: X509Certificate): boolean {
  try {
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

function certNames(cert: X509Certificate): string[] {
  const pc = new x509.X509Certificate(cert.raw);
  const san = pc.getExtension(x509.SubjectAlternativeNameExtension);
  const names: string[] = [];
  if (san) {
    for (const gn of san.names.items) {
      if (gn.type === 'dns') names.push(gn.value.toLowerCase());
      else if (gn.type === 'ip') names.push(canonicalIp(gn.value));
    }
  }
  // OpenSSL and Node fall back to the CN only when the SAN holds no DNS/IP entry.
  if (names.length > 0) return names;
  const cn = pc.subjectName.getField('CN')[0];
  return cn === undefined ? [] : [cn.toLowerCase()];
}

function canonicalIp(v: string): string {
  try {
    return ipaddr.parse(v).toString();
  } catch {
    return v;
  }
}

/** A certificate name as describeCert reports it: DNS names lowercased, IP addresses in canonical form. */
export function normalizeName(name: string): string {
  return isIP(name) ? canonicalIp(name) : name.toLowerCase();
}
