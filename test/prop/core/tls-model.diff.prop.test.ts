/**
 * Differential property test: the TLS model (src/core/tls-model.ts) against real node:tls (OpenSSL 3.0)
 * handshakes on loopback. fast-check draws a client offer and a server configuration; both sides are configured
 * through `openSslCipherOptions` (what the real TLS wrapper does), the server with honorCipherOrder, the client
 * with rejectUnauthorized false and the verification done here (authorizationError, then checkServerIdentity),
 * so the exact reason is visible. The observed outcome (version, suite, peer certificate, or which side failed
 * and why) must equal `predict`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import fc from 'fast-check';
import { type CertInfo, type TlsClientParams, type TlsIdentity, type TlsServerParams, type TlsVersion } from '../../../src/net/ports.ts';
import { describeCert, issueCert } from '../../../src/net/node/x509.ts';
import { EDGE_CIPHERS, TLS_VERSIONS, cipherSpec, originClientCiphers } from '../../../src/core/tls-ciphers.ts';
import { predict, type Prediction } from '../../../src/core/tls-model.ts';
import { failureOfCode, openSslCipherOptions } from '../../../src/net/node/openssl.ts';

const DAY_MS = 86_400_000;
const HANDSHAKE_TIMEOUT_MS = 4_000;
/** Runs per test; TLS_DIFF_RUNS raises it for a longer hunt. */
const NUM_RUNS = Number(process.env.TLS_DIFF_RUNS ?? 150);

type Variant = 'valid' | 'expired' | 'notYetValid' | 'wrongName' | 'selfSigned' | 'unknownCa' | 'selfSignedExpired' | 'unknownCaExpired' | 'selfSignedTrusted' | 'viaIntermediate' | 'expiredIntermediate';
const VARIANTS: readonly Variant[] = ['valid', 'expired', 'notYetValid', 'wrongName', 'selfSigned', 'unknownCa', 'selfSignedExpired', 'unknownCaExpired', 'selfSignedTrusted', 'viaIntermediate', 'expiredIntermediate'];
type KeyType = 'rsa' | 'ecdsa';

interface TestCert {
  readonly pem: { cert: string; key: string };
  readonly identity: TlsIdentity;
}

/** Certificates, made once: every variant for both key types, one test CA trusted by clients, one not. */
let certs: Map<string, TestCert>;
let trustPems: string[];
let trustInfos: CertInfo[];

const NAMES = ['a.test', '*.w.test', '127.0.0.1'];

before(async () => {
  const now = Date.now();
  const ca = await issueCert({ names: [], isCa: true, commonName: 'Refract Diff Test CA', keyType: 'rsa' });
  const otherCa = await issueCert({ names: [], isCa: true, commonName: 'Untrusted Test CA' });
  const caInfo = describeCert(ca.cert);
  trustPems = [ca.cert];
  trustInfos = [caInfo];
  certs = new Map();
  for (const keyType of ['rsa', 'ecdsa'] as const) {
    const past = { notBeforeMs: now - 10 * DAY_MS, notAfterMs: now - DAY_MS };
    const inter = await issueCert({ names: [], isCa: true, commonName: `Intermediate ${keyType}`, issuer: ca });
    const interExpired = await issueCert({ names: [], isCa: true, commonName: `Expired intermediate ${keyType}`, issuer: ca, ...past });
    const make: Record<Variant, () => Promise<{ cert: string; key: string; chain?: string }>> = {
      valid: () => issueCert({ names: NAMES, keyType, issuer: ca }),
      expired: () => issueCert({ names: NAMES, keyType, issuer: ca, ...past }),
      notYetValid: () => issueCert({ names: NAMES, keyType, issuer: ca, notBeforeMs: now + DAY_MS, notAfterMs: now + 10 * DAY_MS }),
      wrongName: () => issueCert({ names: ['b.test'], keyType, issuer: ca }),
      selfSigned: () => issueCert({ names: NAMES, keyType }),
      unknownCa: () => issueCert({ names: NAMES, keyType, issuer: otherCa }),
      selfSignedExpired: () => issueCert({ names: NAMES, keyType, ...past }),
      unknownCaExpired: () => issueCert({ names: NAMES, keyType, issuer: otherCa, ...past }),
      selfSignedTrusted: () => issueCert({ names: NAMES, keyType }),
      viaIntermediate: async () => ({ ...(await issueCert({ names: NAMES, keyType, issuer: inter })), chain: inter.cert }),
      expiredIntermediate: async () => ({ ...(await issueCert({ names: NAMES, keyType, issuer: interExpired })), chain: interExpired.cert }),
    };
    for (const v of VARIANTS) {
      const c = await make[v]();
      const chain = c.chain === undefined ? [] : [describeCert(c.chain, [ca.cert])];
      const described = describeCert(c.cert, [ca.cert, ...(c.chain === undefined ? [] : [c.chain])]);
      // describeCert calls a self-signed *leaf* (no keyCertSign) issued by `unknown:…` (node's checkIssued applies
      // key usage), while OpenSSL's verifier calls it self-signed (DEPTH_ZERO_SELF_SIGNED_CERT): say what it is.
      const leaf: CertInfo = v.startsWith('selfSigned') ? { ...described, issuer: described.id } : described;
      if (v === 'selfSignedTrusted') {
        trustPems.push(c.cert);
        trustInfos.push(leaf);
      }
      certs.set(`${v}/${keyType}`, { pem: { cert: c.cert + (c.chain ?? ''), key: c.key }, identity: { cert: leaf, chain } });
    }
  }
});

// ── generators ─────────────────────────────────────────────────────────────────────────────────────────────────

const ALL_CIPHERS = EDGE_CIPHERS.ciphers;
const ALL_SUITES = EDGE_CIPHERS.ciphersuites;
const UNKNOWN_SNI = 'unknown.test';

const range = fc.tuple(fc.constantFrom(...TLS_VERSIONS), fc.constantFrom(...TLS_VERSIONS)).map(([a, b]) => (TLS_VERSIONS.indexOf(a) <= TLS_VERSIONS.indexOf(b) ? { minVersion: a, maxVersion: b } : { minVersion: b, maxVersion: a }));

/** Small random subsets in random order (so misses happen), or the real tables. */
const cipherLists = (table: fc.Arbitrary<{ ciphers: readonly string[]; ciphersuites: readonly string[] }>) =>
  fc
    .oneof(
      { arbitrary: table, weight: 2 },
      { arbitrary: fc.record({ ciphers: fc.shuffledSubarray([...ALL_CIPHERS], { maxLength: 8 }), ciphersuites: fc.shuffledSubarray([...ALL_SUITES], { maxLength: 3 }) }), weight: 3 },
    )
    .filter((l) => l.ciphers.length + l.ciphersuites.length > 0);

interface Case {
  readonly server: { minVersion: TlsVersion; maxVersion: TlsVersion; ciphers: readonly string[]; ciphersuites: readonly string[]; variant: Variant; keyType: KeyType };
  readonly client: { minVersion: TlsVersion; maxVersion: TlsVersion; ciphers: readonly string[]; ciphersuites: readonly string[]; sni: string | undefined; checkName: string | undefined };
}

const serverArb = fc
  .record({ r: range, l: cipherLists(fc.constant(EDGE_CIPHERS)), variant: fc.constantFrom(...VARIANTS), keyType: fc.constantFrom<KeyType>('rsa', 'ecdsa') })
  .map(({ r, l, variant, keyType }) => ({ ...r, ...l, variant, keyType }));
const clientArb = fc
  .record({
    r: range,
    l: cipherLists(range.map((r) => originClientCiphers(r.minVersion, r.maxVersion))),
    sni: fc.oneof({ arbitrary: fc.constantFrom(undefined, 'a.test', 'x.w.test'), weight: 6 }, { arbitrary: fc.constant(UNKNOWN_SNI), weight: 1 }),
    checkName: fc.option(fc.constantFrom('a.test', 'x.w.test', 'w.test', '127.0.0.1', 'b.test'), { nil: undefined }),
  })
  .map(({ r, l, sni, checkName }) => ({ ...r, ...l, sni, checkName }));

/** Hand-picked cases, labelled with the outcome they exhibit, run before the random ones. */
const EXAMPLES: readonly (readonly [string, Case])[] = [
  // No version fallback: 1.3 is chosen, no common 1.3 suite, yet a common 1.2 suite exists.
  ['server no_shared_cipher', { server: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: ['AES128-SHA'], ciphersuites: ['TLS_AES_128_GCM_SHA256'], variant: 'valid', keyType: 'rsa' }, client: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: ['AES128-SHA'], ciphersuites: ['TLS_AES_256_GCM_SHA384'], sni: 'a.test', checkName: 'a.test' } }],
  // Legacy client (max 1.2) whose minimum is above the server's maximum: the client refuses.
  ['client no_shared_version', { server: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: ['AES128-SHA'], ciphersuites: [], variant: 'valid', keyType: 'rsa' }, client: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: ['AES128-SHA'], ciphersuites: [], sni: undefined, checkName: undefined } }],
  // TLS 1.1 (SECLEVEL=0 on both sides), with the origin table and RSA, and with an ECDSA certificate.
  ['ok TLSv1.1', { server: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'valid', keyType: 'rsa' }, client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ...originClientCiphers('TLSv1.1', 'TLSv1.1'), sni: 'a.test', checkName: 'a.test' } }],
  ['ok TLSv1.1', { server: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'valid', keyType: 'ecdsa' }, client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: ['ECDHE-ECDSA-AES128-SHA', 'AES128-SHA'], ciphersuites: [], sni: 'a.test', checkName: 'a.test' } }],
  // Key type: the origin table's RSA-only 1.1 offer to an ECDSA certificate.
  ['server no_shared_cipher', { server: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...EDGE_CIPHERS, variant: 'valid', keyType: 'ecdsa' }, client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.2', ...originClientCiphers('TLSv1.1', 'TLSv1.1'), sni: 'a.test', checkName: undefined } }],
  // Error order: self-signed + expired + wrong name reports expired; unknown CA + expired reports expired.
  ['client cert_expired', { server: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'selfSignedExpired', keyType: 'rsa' }, client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ...originClientCiphers('TLSv1.1', 'TLSv1.3'), sni: 'a.test', checkName: 'b.test' } }],
  ['client cert_expired', { server: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'unknownCaExpired', keyType: 'ecdsa' }, client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ...originClientCiphers('TLSv1.1', 'TLSv1.3'), sni: 'a.test', checkName: 'a.test' } }],
  // Wildcard name through an intermediate.
  ['ok TLSv1.3', { server: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'viaIntermediate', keyType: 'rsa' }, client: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ...originClientCiphers('TLSv1.2', 'TLSv1.3'), sni: 'x.w.test', checkName: 'x.w.test' } }],
  // SNI no certificate covers.
  ['server unknown_sni', { server: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'valid', keyType: 'rsa' }, client: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ...originClientCiphers('TLSv1.2', 'TLSv1.3'), sni: UNKNOWN_SNI, checkName: 'a.test' } }],
  // TLS 1.2 by server preference; a certificate for another name; versions that do not meet.
  ['ok TLSv1.2', { server: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.2', ...EDGE_CIPHERS, variant: 'valid', keyType: 'rsa' }, client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ...originClientCiphers('TLSv1.1', 'TLSv1.3'), sni: 'a.test', checkName: 'a.test' } }],
  ['client cert_wrong_name', { server: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'wrongName', keyType: 'ecdsa' }, client: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ...originClientCiphers('TLSv1.2', 'TLSv1.3'), sni: 'a.test', checkName: 'a.test' } }],
  ['server no_shared_version', { server: { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'valid', keyType: 'rsa' }, client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.2', ...originClientCiphers('TLSv1.1', 'TLSv1.2'), sni: 'a.test', checkName: 'a.test' } }],
  // Client configuration with no suite usable at its own highest version.
  ['client no_shared_cipher', { server: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ...EDGE_CIPHERS, variant: 'valid', keyType: 'rsa' }, client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: ['AES128-SHA256'], ciphersuites: [], sni: undefined, checkName: undefined } }],
];

// ── the two worlds ─────────────────────────────────────────────────────────────────────────────────────────────

function modelParams(c: Case): { client: TlsClientParams; server: Omit<TlsServerParams, 'handshakeTimeoutMs'> } {
  const cert = certs.get(`${c.server.variant}/${c.server.keyType}`);
  if (!cert) throw new Error('test: missing certificate');
  return {
    server: {
      minVersion: c.server.minVersion,
      maxVersion: c.server.maxVersion,
      ciphers: c.server.ciphers,
      ciphersuites: c.server.ciphersuites,
      identity: (sni) => (sni === UNKNOWN_SNI ? undefined : cert.identity),
    },
    client: {
      servername: c.client.sni,
      minVersion: c.client.minVersion,
      maxVersion: c.client.maxVersion,
      ciphers: c.client.ciphers,
      ciphersuites: c.client.ciphersuites,
      verify: c.client.checkName === undefined ? undefined : { trust: { system: false, cas: trustInfos }, checkName: c.client.checkName },
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    },
  };
}

/** What a real handshake did, in the model's terms. */
type Observed =
  | { ok: true; protocol: string | null; cipher: string; standardName: string; fingerprint256: string; serverCipher: string | undefined; serverSni: string | false | undefined }
  | { ok: false; side: 'client' | 'server'; reason: string; status: string; codes: { client?: string | undefined; server?: string | undefined } };

// Codes a side raises about its own decision; anything else (alerts from the peer, resets, a peer's garbage)
// is a consequence of the other side's failure.
const OWN_CODES = new Set(['ERR_SSL_NO_SHARED_CIPHER', 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_NO_CIPHERS_AVAILABLE', 'ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'E_TEST_UNKNOWN_SNI']);

function codeOf(e: unknown): string | undefined {
  return e && typeof e === 'object' && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

let openSockets = 0;

async function realHandshake(c: Case): Promise<Observed> {
  const cert = certs.get(`${c.server.variant}/${c.server.keyType}`);
  if (!cert) throw new Error('test: missing certificate');
  const serverOpts = openSslCipherOptions(c.server);
  const clientOpts = openSslCipherOptions(c.client);
  const server = tls.createServer({
    key: cert.pem.key,
    cert: cert.pem.cert,
    ...serverOpts,
    honorCipherOrder: true,
    SNICallback: (name, cb) => {
      if (name === UNKNOWN_SNI) cb(Object.assign(new Error('no certificate for this name'), { code: 'E_TEST_UNKNOWN_SNI' }), undefined);
      else cb(null, undefined); // default context: the test certificate
    },
  });
  let serverCode: string | undefined;
  let serverSide: { cipher: string | undefined; sni: string | false | undefined } | undefined;
  let serverDone!: () => void;
  const serverSettled = new Promise<void>((r) => (serverDone = r));
  server.on('tlsClientError', (e) => {
    serverCode = codeOf(e) ?? e.message;
    serverDone();
  });
  const serverSockets: tls.TLSSocket[] = [];
  server.on('secureConnection', (s) => {
    openSockets += 1;
    serverSockets.push(s);
    serverSide = { cipher: s.getCipher()?.name, sni: s.servername ?? undefined };
    s.on('error', () => {});
    s.on('close', () => (openSockets -= 1));
    s.end();
    serverDone();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('test: no port');
  try {
    return await new Promise<Observed>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`handshake timed out: ${JSON.stringify(c)}`)), HANDSHAKE_TIMEOUT_MS);
      let clientCode: string | undefined;
      let result: Observed | undefined;
      const sock = tls.connect({
        host: '127.0.0.1',
        port: address.port,
        ...(c.client.sni === undefined ? {} : { servername: c.client.sni }),
        ...clientOpts,
        ca: trustPems,
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      });
      openSockets += 1;
      sock.on('secureConnect', () => {
        const cipher = sock.getCipher();
        const peer = sock.getPeerCertificate();
        let verifyCode: string | undefined;
        if (c.client.checkName !== undefined) {
          const authErr = sock.authorizationError as unknown;
          verifyCode = typeof authErr === 'string' ? authErr : codeOf(authErr);
          verifyCode ??= codeOf(tls.checkServerIdentity(c.client.checkName, peer));
        }
        if (verifyCode !== undefined) {
          const f = failureOfCode(verifyCode);
          result = { ok: false, side: 'client', reason: f.reason, status: f.status, codes: { client: verifyCode } };
        } else {
          result = { ok: true, protocol: sock.getProtocol(), cipher: cipher.name, standardName: cipher.standardName, fingerprint256: peer.fingerprint256, serverCipher: undefined, serverSni: undefined };
        }
        sock.end();
      });
      sock.on('error', (e) => {
        clientCode = codeOf(e) ?? e.message;
      });
      sock.on('close', () => {
        openSockets -= 1;
        // The server's view (its error or its socket) may land just after the client's close.
        const settle = setTimeout(serverDone, 500);
        void serverSettled.then(() => {
          clearTimeout(settle);
          clearTimeout(timer);
          if (result?.ok === true) {
            resolve({ ...result, serverCipher: serverSide?.cipher, serverSni: serverSide?.sni });
          } else if (result) {
            resolve(result);
          } else {
            // The client's own failure comes first (it fails before or on reading the ServerHello); both can
            // fail on their own config, each refusing independently.
            const side = clientCode === undefined || !OWN_CODES.has(clientCode) ? (serverCode !== undefined && OWN_CODES.has(serverCode) ? 'server' : 'client') : 'client';
            const code = side === 'server' ? serverCode : clientCode;
            const f = code === 'E_TEST_UNKNOWN_SNI' ? { reason: 'unknown_sni', status: 'INVALID_SNI' } : failureOfCode(code);
            resolve({ ok: false, side, reason: f.reason, status: f.status, codes: { client: clientCode, server: serverCode } });
          }
        });
      });
    });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    // A TLS socket may report 'close' a little after its server does: wait for it, bounded.
    await Promise.all(serverSockets.map((s) => (s.closed ? undefined : new Promise<void>((r) => {
      const t = setTimeout(r, 1_000);
      s.once('close', () => { clearTimeout(t); r(); });
    }))));
  }
}

function expected(p: Prediction): unknown {
  if (!p.ok) return { ok: false, side: p.side, reason: p.failure.reason, status: p.failure.status };
  return { ok: true, protocol: p.info.protocol, cipher: p.info.cipher, standardName: cipherSpec(p.info.cipher).iana, fingerprint256: p.info.peerCert?.fingerprint256, serverCipher: p.info.cipher, serverSni: p.info.servername === '' ? false : p.info.servername };
}

function label(p: Prediction): string {
  return p.ok ? `ok ${p.info.protocol}` : `${p.side} ${p.failure.reason}`;
}

function comparable(o: Observed): unknown {
  if (o.ok) return o;
  return { ok: false, side: o.side, reason: o.reason, status: o.status };
}

void describe('TLS model against real node:tls handshakes (differential)', () => {
  const seen = new Map<string, number>();

  after(async () => {
    // A destroyed socket's 'close' comes a few event-loop turns later: wait for it, bounded.
    const deadline = Date.now() + 3_000;
    while (openSockets > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(openSockets, 0, 'every socket closed');
  });

  void it('each hand-picked example is predicted to show the outcome it is labelled with', () => {
    for (const [want, c] of EXAMPLES) {
      const { client, server } = modelParams(c);
      assert.equal(label(predict(client, server, Date.now())), want, JSON.stringify(c));
    }
  });

  void it('predicts the version, suite and certificate of every handshake, or which side fails and why', async () => {
    await fc.assert(
      fc.asyncProperty(fc.record({ server: serverArb, client: clientArb }), async (c: Case) => {
        const { client, server } = modelParams(c);
        const p = predict(client, server, Date.now());
        const o = await realHandshake(c);
        seen.set(label(p), (seen.get(label(p)) ?? 0) + 1);
        assert.deepEqual(comparable(o), expected(p), `real codes: ${JSON.stringify(o.ok ? {} : o.codes)}`);
      }),
      { numRuns: NUM_RUNS, examples: EXAMPLES.map(([, e]) => [e]), includeErrorInReport: true },
    );
    // The run is only worth something if it met the outcomes the model distinguishes (the examples guarantee it).
    const missing = [...new Set(EXAMPLES.map(([want]) => want))].filter((k) => !seen.has(k));
    assert.deepEqual(missing, [], `outcomes never met: ${JSON.stringify(Object.fromEntries(seen))}`);
  });
});
