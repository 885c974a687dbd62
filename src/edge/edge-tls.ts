/**
 * Edge TLS state of a node: the certificate each TLS app presents, the trust anchors for `strict` origins, and the
 * handshake parameters the TCP engine asks for per connection (cached: one params object per app and edge
 * address, so a handshake allocates nothing here).
 *
 * Two-phase like the rest of a reload: `prepare` loads or issues every certificate and the CA bundle (it may fail,
 * and then nothing changed); `commit` swaps the prepared state in. New handshakes use it at once; established
 * connections keep the session they have.
 */
import type { CertRequest, CertSource, SocketAddress, TlsClientParams, TlsIdentity, TlsServerParams, TlsTrust } from '../net/ports.ts';
import type { AppSpec, RefractConfig } from '../model/types.ts';
import type { TcpTlsDeps, UpstreamTarget } from '../machines/tcp-connection.ts';
import { EDGE_CIPHERS, originClientCiphers } from '../core/tls-ciphers.ts';
import { certCoversName } from '../core/tls-model.ts';
import { parseIpLiteral } from '../model/ip.ts';

/** Spectrum's versions for TCP apps: minimum fixed at TLS 1.1 (docs/spectrum.md, "Edge TLS"). */
const MIN_VERSION = 'TLSv1.1';
const MAX_VERSION = 'TLSv1.3';

export interface PreparedTls {
  readonly identities: ReadonlyMap<string, TlsIdentity>;
  readonly trust: TlsTrust | undefined;
  readonly config: RefractConfig;
}

const NO_TRUST: TlsTrust = { system: true, cas: [] };

/** The certificate requests of a config: one per app that terminates TLS. */
export function certRequests(config: RefractConfig): CertRequest[] {
  const out: CertRequest[] = [];
  for (const app of config.apps) {
    if (app.protocol !== 'tcp' || app.tls === 'off') continue;
    const t = app.edgeTls;
    out.push({
      appId: app.id,
      names: [app.dns.name],
      ...(t?.certFile !== undefined ? { certFile: t.certFile } : {}),
      ...(t?.keyFile !== undefined ? { keyFile: t.keyFile } : {}),
    });
  }
  return out;
}

export class EdgeTls implements TcpTlsDeps {
  readonly #certs: CertSource | undefined;
  #state: PreparedTls | undefined;
  /** Apps terminating TLS per edge address, for SNI selection among an address's apps. */
  #byAddress = new Map<string, AppSpec[]>();
  #serverParams = new Map<string, TlsServerParams>();
  #clientParams = new Map<string, TlsClientParams>();

  constructor(certs: CertSource | undefined) {
    this.#certs = certs;
  }

  /** Loads or issues every certificate the config needs; rejects (RefractError E_TLS_*) without changing anything. */
  async prepare(config: RefractConfig): Promise<PreparedTls> {
    const reqs = certRequests(config);
    if (reqs.length === 0 || !this.#certs) return { identities: new Map(), trust: undefined, config };
    const needsTrust = config.apps.some((a) => a.tls === 'strict');
    const [identities, trust] = await Promise.all([
      this.#certs.identities(reqs),
      needsTrust ? this.#certs.trust(config.node.tls.caBundle) : Promise.resolve(undefined),
    ]);
    return { identities, trust, config };
  }

  commit(p: PreparedTls): void {
    this.#state = p;
    const byAddress = new Map<string, AppSpec[]>();
    for (const app of p.config.apps) {
      if (app.protocol !== 'tcp' || app.tls === 'off') continue;
      for (const host of p.config.node.addresses) {
        let list = byAddress.get(host);
        if (!list) byAddress.set(host, (list = []));
        list.push(app);
      }
    }
    this.#byAddress = byAddress;
    this.#serverParams = new Map();
    this.#clientParams = new Map();
  }

  /** Files whose change should reload certificates (PEMs given in config, the CA bundle). */
  watchedFiles(): readonly string[] {
    return this.#certs?.watchedFiles() ?? [];
  }

  serverParams(app: AppSpec, edge: SocketAddress): TlsServerParams | undefined {
    const key = `${app.id}|${edge.address}`;
    const cached = this.#serverParams.get(key);
    if (cached) return cached;
    const st = this.#state;
    const own = st?.identities.get(app.id);
    if (!st || !own) return undefined;
    const peers = this.#byAddress.get(edge.address) ?? [app];
    const strictSni = st.config.node.tls.strictSni;
    const identities = st.identities;
    const params: TlsServerParams = {
      // SNI picks among the apps on this edge address; no SNI (or a bare IP) gets the app of the port.
      identity(sni) {
        if (sni === undefined || sni === '' || parseIpLiteral(sni) !== undefined || certCoversName(own.cert, sni)) return own;
        for (const other of peers) {
          const id = identities.get(other.id);
          if (id && certCoversName(id.cert, sni)) return id;
        }
        return strictSni ? undefined : own;
      },
      minVersion: MIN_VERSION,
      maxVersion: MAX_VERSION,
      ciphers: EDGE_CIPHERS.ciphers,
      ciphersuites: EDGE_CIPHERS.ciphersuites,
      handshakeTimeoutMs: st.config.node.tls.handshakeTimeoutMs,
    };
    this.#serverParams.set(key, params);
    return params;
  }

  clientParams(app: AppSpec, target: UpstreamTarget): TlsClientParams {
    // SNI: the configured origin name, else the origin_dns name; a bare IP origin gets no SNI (RFC 6066 §3).
    const name = app.edgeTls?.originServerName ?? (app.origin.kind === 'dns' ? app.origin.name : undefined);
    const key = name === undefined ? `${app.id}|${target.host}` : app.id;
    const cached = this.#clientParams.get(key);
    if (cached) return cached;
    const st = this.#state;
    const offer = originClientCiphers(MIN_VERSION, MAX_VERSION);
    const params: TlsClientParams = {
      servername: name,
      minVersion: MIN_VERSION,
      maxVersion: MAX_VERSION,
      ciphers: offer.ciphers,
      ciphersuites: offer.ciphersuites,
      verify: app.tls === 'strict' ? { trust: st?.trust ?? NO_TRUST, checkName: name ?? target.host } : undefined,
      handshakeTimeoutMs: st?.config.node.tls.handshakeTimeoutMs ?? 10_000,
    };
    this.#clientParams.set(key, params);
    return params;
  }
}
