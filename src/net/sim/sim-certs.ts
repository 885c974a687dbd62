/**
 * The simulator's CertSource: certificate descriptors (CertInfo), no cryptography. What the real source reads from
 * PEM files, scenarios declare by name with `simCert`; what the real local CA issues, a sim local CA "issues" as a
 * descriptor. Everything is a pure function of its inputs (fingerprints hash the descriptor), so the same scenario
 * and seed give the same certificates, ids and fingerprints.
 *
 * Trust: `sim-public-ca` plays the OS store (public CAs), `sim-local-ca` Refract's local CA. Origin certificates a
 * scenario marks `issuer: 'sim-public-ca'` verify in strict; `self` and `unknown` do not.
 */
import { createHash } from 'node:crypto';
import { RefractError } from '../../model/errors.ts';
import type { CertInfo, CertRequest, CertSource, TlsIdentity, TlsTrust } from '../ports.ts';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const YEAR_MS = 365 * DAY_MS;
/** A local leaf with less validity left than this is re-issued (as the real local CA does). */
const LEAF_RENEW_BEFORE_MS = 30 * DAY_MS;

export const SIM_PUBLIC_CA_ID = 'sim-public-ca';
export const SIM_LOCAL_CA_ID = 'sim-local-ca';
/** The issuer string of a certificate whose CA nobody knows, shaped as the real describeCert's `unknown:<DN>`. */
export const SIM_UNKNOWN_ISSUER = 'unknown:CN=Sim Unknown CA';

/** Fixed validity for the sim CAs (2000-01-01 to 2100-01-01 UTC): wide enough for any scenario epoch. */
const CA_NOT_BEFORE_MS = Date.UTC(2000, 0, 1);
const CA_NOT_AFTER_MS = Date.UTC(2100, 0, 1);

/** How a scenario describes a certificate. */
export interface SimCertSpec {
  /** The certificate's id (CertInfo.id); also the name `certFile`/`keyFile`/`ca_bundle` use to refer to it. */
  readonly id: string;
  /** DNS names / IPs it covers (`*.x.test` wildcards allowed). */
  readonly names: readonly string[];
  /** Default 'rsa'. */
  readonly keyType?: 'rsa' | 'ecdsa';
  /**
   * Relative to `epochMs`: 'valid' = from a day before to a year after (default); 'expired' = ended 30 days
   * before; 'not_yet_valid' = starts 30 days after.
   */
  readonly validity?: 'valid' | 'expired' | 'not_yet_valid';
  /**
   * Who signed it: 'sim-public-ca' (default; trusted like a public CA), 'sim-local-ca', 'self' (self-signed),
   * 'unknown' (a CA no trust store holds), or the id of another descriptor (an intermediate or a custom CA).
   */
  readonly issuer?: string;
}

/** A deterministic fingerprint: SHA-256 of the descriptor's fields, upper hex with colons (OpenSSL's shape). */
function fingerprintOf(fields: Omit<CertInfo, 'fingerprint256'>): string {
  const h = createHash('sha256').update(JSON.stringify(['sim-cert', fields.id, fields.names, fields.notBeforeMs, fields.notAfterMs, fields.issuer, fields.keyType])).digest('hex').toUpperCase();
  return h.match(/../g)?.join(':') ?? h;
}

function freezeInfo(fields: Omit<CertInfo, 'fingerprint256'>): CertInfo {
  return Object.freeze({ ...fields, names: Object.freeze([...fields.names]), fingerprint256: fingerprintOf(fields) });
}

/** The sim "system store" CA: issuer of scenario certificates marked sim-public-ca. */
export const SIM_PUBLIC_CA: CertInfo = freezeInfo({
  id: SIM_PUBLIC_CA_ID, names: ['sim public ca'], notBeforeMs: CA_NOT_BEFORE_MS, notAfterMs: CA_NOT_AFTER_MS, issuer: SIM_PUBLIC_CA_ID, keyType: 'rsa',
});

/** The sim local CA: issuer of edge certificates for apps without `certFile`. */
export const SIM_LOCAL_CA: CertInfo = freezeInfo({
  id: SIM_LOCAL_CA_ID, names: ['refract local ca'], notBeforeMs: CA_NOT_BEFORE_MS, notAfterMs: CA_NOT_AFTER_MS, issuer: SIM_LOCAL_CA_ID, keyType: 'rsa',
});

/** A certificate descriptor from a scenario's spec; `epochMs` anchors `validity`. Pure. */
export function simCert(spec: SimCertSpec, epochMs: number): CertInfo {
  const validity = spec.validity ?? 'valid';
  let notBeforeMs: number;
  let notAfterMs: number;
  switch (validity) {
    case 'valid':
      notBeforeMs = epochMs - DAY_MS;
      notAfterMs = epochMs + YEAR_MS;
      break;
    case 'expired':
      notBeforeMs = epochMs - YEAR_MS;
      notAfterMs = epochMs - 30 * DAY_MS;
      break;
    case 'not_yet_valid':
      notBeforeMs = epochMs + 30 * DAY_MS;
      notAfterMs = epochMs + YEAR_MS;
      break;
  }
  const issuerSpec = spec.issuer ?? SIM_PUBLIC_CA_ID;
  const issuer = issuerSpec === 'self' ? spec.id : issuerSpec === 'unknown' ? SIM_UNKNOWN_ISSUER : issuerSpec;
  return freezeInfo({ id: spec.id, names: spec.names, notBeforeMs, notAfterMs, issuer, keyType: spec.keyType ?? 'rsa' });
}

export interface SimCertSourceOptions {
  /** The simulated wall clock (Clock.epochMs): anchors the validity of issued local certificates. */
  epochMs: () => number;
  /**
   * Named descriptors: a request's `certFile` / `keyFile` and `trust(caBundleFile)` refer to them by id. A key
   * "file" matches the certificate with the same id.
   */
  certs?: readonly CertInfo[];
}

/**
 * Builds the simulator's CertSource.
 * - `identities`: with `certFile`, the named descriptor (E_TLS_CERT_READ when no descriptor has that id; with a
 *   `keyFile` naming another descriptor, E_TLS_CERT_INVALID key_mismatch); its chain follows `issuer` through the
 *   other descriptors (intermediates), stopping at a CA, a self-signed or an unknown issuer. Without, a
 *   descriptor `sim-local:<appId>` issued by sim-local-ca for `names`, valid from 1 h before `epochMs()` for a
 *   year; kept while the names are the same and more than 30 days remain. No `pem`.
 * - `trust`: `{ system: false, cas: [sim-public-ca] }`, plus the descriptor named by the bundle: like the real
 *   source, which trusts the system store and the bundle, never the edge's own local CA (it signs client-facing
 *   certificates, not origins').
 * - `watchedFiles`: always empty (nothing on disk).
 */
export function createSimCertSource(opts: SimCertSourceOptions): CertSource {
  const named = new Map<string, CertInfo>();
  for (const c of opts.certs ?? []) {
    if (named.has(c.id)) throw new Error(`sim-certs: two descriptors have id ${c.id}`);
    named.set(c.id, c);
  }
  const issued = new Map<string, CertInfo>();
  const anchors = new Set([SIM_PUBLIC_CA_ID, SIM_LOCAL_CA_ID]);

  function lookup(file: string, appId: string | undefined): CertInfo {
    const c = named.get(file);
    if (c === undefined) throw new RefractError('E_TLS_CERT_READ', { details: { file, errno: 'ENOENT', ...(appId === undefined ? {} : { appId }) } });
    return c;
  }

  function chainOf(leaf: CertInfo): CertInfo[] {
    const chain: CertInfo[] = [];
    let cur = leaf;
    // Bounded by the number of descriptors: a cycle cannot loop.
    for (let i = 0; i < named.size; i++) {
      if (cur.issuer === cur.id || anchors.has(cur.issuer)) break;
      const next = named.get(cur.issuer);
      if (next === undefined || next.issuer === next.id || chain.includes(next)) break;
      chain.push(next);
      cur = next;
    }
    return chain;
  }

  function identityFor(req: CertRequest): TlsIdentity {
    const { appId, certFile, keyFile } = req;
    if (certFile !== undefined) {
      const cert = lookup(certFile, appId);
      if (keyFile !== undefined && lookup(keyFile, appId).id !== cert.id) {
        throw new RefractError('E_TLS_CERT_INVALID', { details: { appId, file: keyFile, certFile, reason: 'key_mismatch' } });
      }
      return Object.freeze({ cert, chain: Object.freeze(chainOf(cert)) });
    }
    if (keyFile !== undefined) throw new RefractError('E_TLS_CERT_INVALID', { details: { appId, file: keyFile, reason: 'cert_and_key_needed' } });
    if (req.names.length === 0) throw new RefractError('E_TLS_NO_CERTIFICATE', { details: { appId, reason: 'no_names' } });
    const now = opts.epochMs();
    const have = issued.get(appId);
    if (have && sameList(have.names, req.names) && have.notBeforeMs <= now && have.notAfterMs - LEAF_RENEW_BEFORE_MS > now) {
      return Object.freeze({ cert: have, chain: Object.freeze([]) });
    }
    const cert = freezeInfo({
      id: `sim-local:${appId}`, names: req.names, notBeforeMs: now - HOUR_MS, notAfterMs: now + YEAR_MS, issuer: SIM_LOCAL_CA_ID, keyType: 'rsa',
    });
    issued.set(appId, cert);
    return Object.freeze({ cert, chain: Object.freeze([]) });
  }

  return {
    identities(reqs) {
      // A bad request rejects the whole batch, as the real source does.
      try {
        return Promise.resolve(new Map(reqs.map((r) => [r.appId, identityFor(r)] as const)));
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    },
    trust(caBundleFile) {
      try {
        const cas = [SIM_PUBLIC_CA];
        if (caBundleFile !== undefined) cas.push(lookup(caBundleFile, undefined));
        const t: TlsTrust = Object.freeze({ system: false, cas: Object.freeze(cas) });
        return Promise.resolve(t);
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    },
    watchedFiles: () => [],
  };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
