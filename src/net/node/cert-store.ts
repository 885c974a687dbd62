/**
 * The real CertSource: edge identities from PEM files given in config, else from the local CA (local-ca.ts), and
 * origin trust (system store + an optional PEM bundle). Called at apply time, before anything switches, so one bad
 * file rejects the whole reload with a RefractError that names the file (`details.file`).
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { RefractError, isRefractError } from '../../model/errors.ts';
import { assertPrivate } from './key-permissions.ts';
import type { CertInfo, CertRequest, CertSource, TlsIdentity, TlsTrust } from '../ports.ts';
import { openLocalCa, type LocalCa } from './local-ca.ts';
import { describeCert, splitPemCerts, type KeyType } from './x509.ts';

export interface NodeCertSourceOptions {
  /** The local CA's data directory (absolute, or relative to the working directory). Opened only when needed. */
  dataDir: string;
  log?: Logger;
  /** Wall clock for the local CA's renewal decisions, epoch ms. Default Date.now. */
  now?: () => number;
  /** Key type of leaves the local CA issues. Default 'rsa'. */
  leafKeyType?: KeyType;
}

/**
 * Builds the real CertSource.
 * - `identities`: per request, `certFile` + `keyFile` (both or neither) are read and checked: the cert file holds
 *   the leaf then its intermediates (the chain), the key must match the leaf. Without files the local CA issues
 *   (or reuses) a leaf for `names`. Errors: E_TLS_CERT_READ (unreadable file), E_TLS_CERT_INVALID (no/bad PEM,
 *   unsupported key type, key mismatch, only one of the two files), E_TLS_KEY_PERMISSIONS (a key file group- or
 *   world-accessible: key-permissions.ts), E_TLS_NO_CERTIFICATE (no files and no names),
 *   E_TLS_CA (local CA). `details` carry `appId` and `file`.
 * - `trust`: `{ system: true, cas, pem }` from the bundle (E_TLS_CERT_READ / E_TLS_CERT_INVALID), or
 *   `{ system: true, cas: [] }` without one.
 * - `watchedFiles`: the PEM files of the last successful and of the last attempted `identities`, plus the last
 *   bundle, so fixing a file that made a reload fail triggers the next reload.
 */
export function createNodeCertSource(opts: NodeCertSourceOptions): CertSource {
  let ca: Promise<LocalCa> | undefined;
  let lastOkFiles: readonly string[] = [];
  let lastTriedFiles: readonly string[] = [];
  let bundleFile: string | undefined;

  function localCa(): Promise<LocalCa> {
    if (ca === undefined) {
      const caOpts = { dataDir: opts.dataDir, ...(opts.log ? { log: opts.log } : {}), ...(opts.now ? { now: opts.now } : {}), ...(opts.leafKeyType ? { leafKeyType: opts.leafKeyType } : {}) };
      ca = openLocalCa(caOpts);
      // A failed open is retried at the next apply (the operator may fix permissions meanwhile).
      void ca.catch(() => (ca = undefined));
    }
    return ca;
  }

  async function identities(reqs: readonly CertRequest[]): Promise<ReadonlyMap<string, TlsIdentity>> {
    const files = [...new Set(reqs.flatMap((r) => [r.certFile, r.keyFile].filter((f): f is string => f !== undefined).map((f) => resolve(f))))];
    lastTriedFiles = files;
    // One read per file per call: apps sharing a certificate see the same bytes.
    const reads = new Map<string, Promise<string>>();
    const read = (file: string, appId: string): Promise<string> => {
      const abs = resolve(file);
      let p = reads.get(abs);
      if (p === undefined) {
        p = readPem(abs, appId);
        reads.set(abs, p);
      }
      return p;
    };
    const out = new Map<string, TlsIdentity>();
    for (const req of reqs) {
      out.set(req.appId, await identityFor(req, read));
    }
    lastOkFiles = files;
    return out;
  }

  async function identityFor(req: CertRequest, read: (file: string, appId: string) => Promise<string>): Promise<TlsIdentity> {
    const { appId, certFile, keyFile } = req;
    if (certFile !== undefined && keyFile !== undefined) {
      await assertPrivate(resolve(keyFile), 'key', { appId });
      const [certText, keyText] = await Promise.all([read(certFile, appId), read(keyFile, appId)]);
      return fromFiles(appId, resolve(certFile), certText, resolve(keyFile), keyText);
    }
    if (certFile !== undefined || keyFile !== undefined) {
      throw new RefractError('E_TLS_CERT_INVALID', { details: { appId, file: resolve(certFile ?? keyFile ?? ''), reason: 'cert_and_key_needed' } });
    }
    if (req.names.length === 0) throw new RefractError('E_TLS_NO_CERTIFICATE', { details: { appId, reason: 'no_names' } });
    const leaf = await (await localCa()).leafFor(appId, req.names);
    return Object.freeze({ cert: leaf.info, chain: Object.freeze([]), pem: Object.freeze({ cert: leaf.cert, key: leaf.key }) });
  }

  async function trust(caBundleFile: string | undefined): Promise<TlsTrust> {
    if (caBundleFile === undefined) {
      bundleFile = undefined;
      return Object.freeze({ system: true, cas: Object.freeze([]) });
    }
    const file = resolve(caBundleFile);
    bundleFile = file;
    const text = await readPem(file, undefined);
    const blocks = splitPemCerts(text);
    if (blocks.length === 0) throw invalid(file, undefined, 'no_certificate');
    const cas = blocks.map((b) => {
      try {
        return describeCert(b, blocks);
      } catch (e) {
        throw invalid(file, undefined, 'bad_certificate', e);
      }
    });
    return Object.freeze({ system: true, cas: Object.freeze(cas), pem: blocks.join('') });
  }

  return {
    identities,
    trust,
    watchedFiles: () => [...new Set([...lastOkFiles, ...lastTriedFiles, ...(bundleFile === undefined ? [] : [bundleFile])])],
  };
}

function fromFiles(appId: string, certFile: string, certText: string, keyFile: string, keyText: string): TlsIdentity {
  const blocks = splitPemCerts(certText);
  if (blocks.length === 0) throw invalid(certFile, appId, 'no_certificate');
  let certs: X509Certificate[];
  try {
    certs = blocks.map((b) => new X509Certificate(b));
  } catch (e) {
    throw invalid(certFile, appId, 'bad_certificate', e);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch (e) {
    throw invalid(keyFile, appId, 'bad_key', e);
  }
  const [leaf, ...rest] = certs;
  if (leaf === undefined) throw invalid(certFile, appId, 'no_certificate');
  if (!leaf.checkPrivateKey(key)) throw new RefractError('E_TLS_CERT_INVALID', { details: { appId, file: keyFile, certFile, reason: 'key_mismatch' } });
  let infos: CertInfo[];
  try {
    // Each certificate's issuer is looked up among the others in the file (leaf → intermediates).
    infos = certs.map((c) => describeCert(c, certs.filter((o) => o !== c)));
  } catch (e) {
    if (isRefractError(e)) throw new RefractError(e.code, { details: { ...e.details, appId, file: certFile }, cause: e });
    throw e;
  }
  const [leafInfo, ...chain] = infos;
  if (leafInfo === undefined || chain.length !== rest.length) throw new Error('cert-store: chain/description length mismatch');
  return Object.freeze({
    cert: leafInfo,
    chain: Object.freeze(chain),
    // Only the certificate blocks, in file order: comments or a stray key in the cert file are not sent.
    pem: Object.freeze({ cert: blocks.join(''), key: keyText }),
  });
}

async function readPem(file: string, appId: string | undefined): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw new RefractError('E_TLS_CERT_READ', { details: { file, ...(appId === undefined ? {} : { appId }), errno: (cause as NodeJS.ErrnoException).code }, cause });
  }
}

function invalid(file: string, appId: string | undefined, reason: string, cause?: unknown): RefractError {
  return new RefractError('E_TLS_CERT_INVALID', {
    details: { file, reason, ...(appId === undefined ? {} : { appId }) },
    ...(cause === undefined ? {} : { cause }),
  });
}
