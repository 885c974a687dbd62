import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { CertSource } from '../net/ports.ts';

/** Resolves relative certificate and CA-bundle paths against `base` (the config file's folder). */
export function relativeCertSource(base: string, inner: CertSource): CertSource {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolvePath(base, p));
  return {
    identities: (reqs) =>
      inner.identities(
        reqs.map((r) => ({
          ...r,
          ...(r.certFile !== undefined ? { certFile: abs(r.certFile) } : {}),
          ...(r.keyFile !== undefined ? { keyFile: abs(r.keyFile) } : {}),
        })),
      ),
    trust: (f) => inner.trust(f === undefined ? undefined : abs(f)),
    watchedFiles: () => inner.watchedFiles(),
  };
}
