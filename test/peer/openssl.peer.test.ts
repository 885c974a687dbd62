/**
 * Real peer: the `openssl` command line (Debian package `openssl`, OpenSSL 3) on both sides of Refract's edge TLS.
 * `openssl s_client` is the client for every mode and version; `openssl s_server` is the origin for `full` and
 * `strict`. OpenSSL decodes what Refract sends on its own terms, so this checks our TLS against an independent
 * implementation (and an independent command-line stack), not against node:tls talking to itself.
 *
 * - s_client `-tls1_1`, `-tls1_2`, `-tls1_3` against flexible, full and strict apps: the handshake verifies against
 *   the local CA's root, s_client reports the version it asked for, bytes go through to the origin and back.
 * - The ClientHello the edge sends to an s_server origin offers exactly Spectrum's origin table, in order: read from
 *   s_server's "Client cipher list" line (its print of SSL_get0_raw_cipherlist: the raw list, in wire order,
 *   unknown codes as 0xNNNN), compared with a literal copy of the table and with ORIGIN_CIPHERS.
 * - strict refuses an expired, a wrong-name, a self-signed and an unknown-CA certificate from s_server with 526
 *   and the matching E_TLS_ORIGIN_CERT_* code, and accepts one chained to the test CA given as ca_bundle.
 *
 * Ports 7650-7699 belong to this file: edge apps 7650-7669, s_server origins 7680-7689 (plain origins bind port 0).
 * Needs `openssl` on PATH (.ci/run installs it). Without it the suite is skipped, loudly,
 * unless REFRACT_REQUIRE_PEERS=1 (set by .ci/run) makes it fail.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEdge, startOrigin, type EdgeUnderTest } from '../helpers/edge.ts';
import { findOnPath, missingPeer, peerSkip } from '../helpers/peers.ts';
import { createNodeCertSource } from '../../src/net/node/cert-store.ts';
import { openLocalCa } from '../../src/net/node/local-ca.ts';
import { describeCert, issueCert, type KeyType } from '../../src/net/node/x509.ts';
import { ORIGIN_CIPHERS, originClientCiphers } from '../../src/core/tls-ciphers.ts';
import type { CertSource } from '../../src/net/ports.ts';

const opensslBin = findOnPath('openssl');
const skipReason = peerSkip('openssl', 'openssl', opensslBin);

const HOST = '127.0.0.1';
const APP_NAME = 'app.example.test';
const ORIGIN_NAME = 'origin.example.test';
const HOUR = 3_600_000;

/**
 * Spectrum's origin table in ClientHello order, written out here (not derived from src/) so that a drift of
 * ORIGIN_CIPHERS from the reference fails this test too. OpenSSL names, as s_server prints them.
 */
const ORIGIN_TABLE = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-SHA',
  'AES128-GCM-SHA256',
  'AES128-SHA',
  'AES256-SHA',
];
/**
 * The renegotiation SCSV (RFC 5746; not a suite). OpenSSL 3.0 (Node 20's) ends every initial ClientHello's suites
 * with it; OpenSSL 3.5 (Node 24's) leaves it out.
 */
const SCSV = 'TLS_EMPTY_RENEGOTIATION_INFO_SCSV';

type Version = 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
const VERSIONS: readonly Version[] = ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const VERSION_FLAG: Record<Version, string> = { 'TLSv1.1': '-tls1_1', 'TLSv1.2': '-tls1_2', 'TLSv1.3': '-tls1_3' };

function needOpenssl(): string {
  if (opensslBin === undefined) {
    throw missingPeer('openssl', 'openssl');
  }
  return opensslBin;
}

/** True if `p` settles within `ms`; the timer is cleared either way. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((res) => (t = setTimeout(() => res(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(t);
  }
}

/** A polled condition, bounded: at most `tries` × 50 ms. */
async function eventually(cond: () => boolean, tries = 60): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

interface SClientResult {
  /** stdout + stderr (-brief prints the summary on stderr, the data on stdout). */
  out: string;
  /** The data s_client received (stdout only). */
  data: string;
  /** `Protocol version: …` from the -brief summary, or undefined when no handshake finished. */
  version: string | undefined;
  verified: boolean;
  timedOut: boolean;
}

/**
 * `openssl s_client` to the edge: verifies the chain against `caFile` and the name APP_NAME (failing the handshake
 * otherwise), sends `payload` + newline, waits until `expect` arrives, then closes its stdin, which makes s_client
 * send close_notify and exit. Without `expect`, it waits for the server to close. Bounded by `timeoutMs` (SIGKILL).
 */
async function sClient(
  port: number,
  version: Version,
  caFile: string,
  payload: string,
  expect: string | undefined,
  timeoutMs = 10_000,
  extra: readonly string[] = [],
): Promise<SClientResult> {
  const args = [
    's_client', '-connect', `${HOST}:${port}`, '-servername', APP_NAME, '-verify_hostname', APP_NAME,
    '-CAfile', caFile, '-verify_return_error', '-nocommands', VERSION_FLAG[version],
    // -brief prints the version line parsed below; without it (extra has '-no-brief'), s_client says New/Reused.
    ...(extra.includes('-no-brief') ? extra.filter((a) => a !== '-no-brief') : ['-brief', ...extra]),
  ];
  // OpenSSL 3's default security level 1 refuses TLS 1.1 (no SHA-1 signatures): the client must lower it as well.
  if (version === 'TLSv1.1') args.push('-cipher', 'DEFAULT@SECLEVEL=0');
  const child = spawn(needOpenssl(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let data = '';
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  child.stdout.on('data', (d: Buffer) => {
    data += d.toString();
    out += d.toString();
    if (expect !== undefined && data.includes(expect)) child.stdin.end();
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.on('error', () => {}); // s_client may exit (server closed) before we end its stdin
  child.stdin.write(`${payload}\n`);
  const timedOut = !(await within(exited, timeoutMs));
  if (timedOut) {
    child.kill('SIGKILL');
    await within(exited, 2_000);
  }
  return { out, data, version: /^Protocol version: (\S+)/m.exec(out)?.[1], verified: /^Verification: OK$/m.test(out), timedOut };
}

interface SServer {
  readonly port: number;
  /** Everything s_server printed (in -rev mode its per-connection summary, with "Client cipher list", goes to stderr). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * `openssl s_server -rev` on HOST:port with `pair` as its certificate: answers each line with the line reversed,
 * one connection at a time, and prints per connection the client's raw cipher list. `extra` restricts it
 * (e.g. `-tls1_2`). Ready once it printed ACCEPT (bounded, 10 s).
 */
async function startSServer(dir: string, port: number, pair: { cert: string; key: string }, extra: readonly string[] = []): Promise<SServer> {
  const certFile = join(dir, `s_server-${port}.pem`);
  const keyFile = join(dir, `s_server-${port}-key.pem`);
  writeFileSync(certFile, pair.cert);
  writeFileSync(keyFile, pair.key, { mode: 0o600 });
  const child = spawn(needOpenssl(), ['s_server', '-accept', `${HOST}:${port}`, '-cert', certFile, '-key', keyFile, '-rev', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let exited: string | undefined;
  const exit = new Promise<void>((res) =>
    child.once('exit', (code, sig) => {
      exited = `code ${code} signal ${sig}`;
      res();
    }),
  );
  child.once('error', (e) => (exited = `spawn error ${e.message}`));
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const stop = async (): Promise<void> => {
    if (exited !== undefined) return;
    child.kill('SIGTERM');
    if (!(await within(exit, 3_000))) {
      child.kill('SIGKILL');
      await within(exit, 2_000);
    }
  };
  // s_server flushes "ACCEPT" as soon as it listens (a TCP probe would count as a connection and print noise).
  if (!(await eventually(() => /^ACCEPT$/m.test(out) || exited !== undefined, 200))) {
    await stop();
    throw new Error(`s_server on ${port} did not print ACCEPT within 10 s; output:\n${out}`);
  }
  if (exited !== undefined) throw new Error(`s_server on ${port} exited (${exited}); output:\n${out}`);
  return { port, output: () => out, stop };
}

/** The suites of every "Client cipher list:" line s_server printed after offset `from`. */
function offeredLists(server: SServer, from: number): string[][] {
  return [...server.output().slice(from).matchAll(/^Client cipher list: (.*)$/gm)].map((m) => (m[1] ?? '').split(':'));
}

let dir: string;
let certs: CertSource;
/** The local CA's root: what s_client trusts (-CAfile), as `refract ca export` would give it. */
let rootFile: string;
/** The test CA that strict origins chain to, given to the edge as edge.tls.ca_bundle. */
let testCa: { cert: string; key: string };
let caBundle: string;

const originCert = (opts: { names?: string[]; keyType?: KeyType; issuer?: { cert: string; key: string }; notBeforeMs?: number; notAfterMs?: number } = {}) =>
  issueCert({ names: opts.names ?? [ORIGIN_NAME], ...opts });

function edgeConfig(apps: readonly Record<string, unknown>[]): unknown {
  return {
    edge: { addresses: [HOST], tls: { handshake_timeout_ms: 5_000, ca_bundle: caBundle } },
    apps: apps.map((a) => ({ dns: { name: APP_NAME }, ...a })),
  };
}

describe('openssl s_client and s_server around the edge', { skip: skipReason, timeout: 120_000 }, () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'refract-openssl-peer-'));
    certs = createNodeCertSource({ dataDir: join(dir, 'data') });
    rootFile = join(dir, 'refract-root.crt');
    writeFileSync(rootFile, (await openLocalCa({ dataDir: join(dir, 'data') })).certPem);
    testCa = await issueCert({ names: [], isCa: true, commonName: 'Refract Peer Test CA' });
    caBundle = join(dir, 'origin-ca.pem');
    writeFileSync(caBundle, testCa.cert);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('flexible: s_client to the edge, plain echo origin', () => {
    let edge: EdgeUnderTest | undefined;
    let origin: Awaited<ReturnType<typeof startOrigin>> | undefined;
    before(async () => {
      if (opensslBin === undefined) return;
      origin = await startOrigin();
      edge = await startEdge(edgeConfig([{ id: 'flex', protocol: 'tcp/7650', tls: 'flexible', origin_direct: [`tcp://${HOST}:${origin.port}`] }]), { certs });
    });
    after(async () => {
      await edge?.close();
      await origin?.close();
    });

    for (const v of VERSIONS) {
      test(`s_client ${VERSION_FLAG[v]} verifies the local-CA certificate, negotiates ${v} and its bytes reach the origin and come back`, { timeout: 20_000 }, async () => {
        needOpenssl();
        const payload = `flexible over ${v}`;
        const r = await sClient(7650, v, rootFile, payload, payload);
        assert.equal(r.timedOut, false, r.out);
        assert.equal(r.verified, true, r.out);
        assert.equal(r.version, v, r.out);
        assert.equal(r.data, `${payload}\n`);
        const ev = await edge!.closing();
        assert.equal(ev.Status, 200);
        assert.equal(ev.ClientTlsStatus, 'OK');
        assert.equal(ev.ClientTlsProtocol, v);
        assert.equal(ev.ClientTlsClientHelloServerName, APP_NAME);
        assert.equal(ev.OriginTlsProtocol, 'none');
      });
    }
  });

  describe('flexible: session resumption', () => {
    let edge: EdgeUnderTest | undefined;
    let origin: Awaited<ReturnType<typeof startOrigin>> | undefined;
    before(async () => {
      if (opensslBin === undefined) return;
      origin = await startOrigin();
      edge = await startEdge(edgeConfig([{ id: 'resume', protocol: 'tcp/7659', tls: 'flexible', origin_direct: [`tcp://${HOST}:${origin.port}`] }]), { certs });
    });
    after(async () => {
      await edge?.close();
      await origin?.close();
    });

    for (const v of ['TLSv1.3', 'TLSv1.2'] as const) {
      test(`a ${v} client resumes its session on its next connection (ticket), and the bytes still flow`, { timeout: 20_000 }, async () => {
        needOpenssl();
        const sess = join(dir, `session-${v}.pem`);
        const first = await sClient(7659, v, rootFile, 'resume-one', 'resume-one', 10_000, ['-no-brief', '-sess_out', sess]);
        assert.equal(first.timedOut, false, first.out);
        assert.match(first.out, new RegExp(`^New, ${v.replace('.', '\\.')}`, 'm'), first.out);
        const second = await sClient(7659, v, rootFile, 'resume-two', 'resume-two', 10_000, ['-no-brief', '-sess_in', sess]);
        assert.equal(second.timedOut, false, second.out);
        assert.match(second.out, new RegExp(`^Reused, ${v.replace('.', '\\.')}`, 'm'), 'the second handshake resumed');
        assert.ok(second.data.includes('resume-two\n'), `the resumed connection still reaches the origin: ${second.out}`);
        for (let i = 0; i < 2; i++) {
          const ev = await edge!.closing();
          assert.equal(ev.Status, 200);
          assert.equal(ev.ClientTlsProtocol, v);
        }
      });
    }
  });

  for (const [mode, edgePort, originPort] of [['full', 7651, 7680], ['strict', 7652, 7681]] as const) {
    describe(`${mode}: s_client to the edge, s_server as the origin`, () => {
      let edge: EdgeUnderTest | undefined;
      let origin: SServer | undefined;
      before(async () => {
        if (opensslBin === undefined) return;
        // full accepts anything: give it a self-signed certificate. strict needs one chained to ca_bundle.
        const pair = mode === 'full' ? await originCert() : await originCert({ issuer: testCa });
        origin = await startSServer(dir, originPort, pair);
        edge = await startEdge(
          edgeConfig([{ id: mode, protocol: `tcp/${edgePort}`, tls: mode, origin_direct: [`tcp://${HOST}:${originPort}`], edge_tls: { origin_server_name: ORIGIN_NAME } }]),
          { certs },
        );
      });
      after(async () => {
        await edge?.close();
        await origin?.stop();
      });

      for (const v of VERSIONS) {
        test(`s_client ${VERSION_FLAG[v]} negotiates ${v} at the edge and the s_server origin answers through the re-encrypted leg`, { timeout: 20_000 }, async () => {
          needOpenssl();
          const payload = `${mode} over ${v}`;
          const reversed = [...payload].reverse().join('');
          const r = await sClient(edgePort, v, rootFile, payload, reversed);
          assert.equal(r.timedOut, false, r.out);
          assert.equal(r.verified, true, r.out);
          assert.equal(r.version, v, r.out);
          assert.equal(r.data, `${reversed}\n`, 's_server -rev answers the line reversed');
          const ev = await edge!.closing();
          assert.equal(ev.Status, 200);
          assert.equal(ev.ClientTlsProtocol, v);
          assert.equal(ev.OriginTlsMode, mode);
          assert.equal(ev.OriginTlsStatus, 'OK');
          assert.equal(ev.OriginTlsProtocol, 'TLSv1.3');
          assert.equal(ev.OriginTlsCipher, 'AEAD-AES128-GCM-SHA256', 'the first suite of the table, s_server following the client order');
        });
      }

      test('the ClientHello s_server received offers exactly the origin cipher table of Spectrum documentation, in its order', { timeout: 20_000 }, async () => {
        needOpenssl();
        const from = origin!.output().length;
        const r = await sClient(edgePort, 'TLSv1.3', rootFile, 'order', 'redro');
        assert.equal(r.data, 'redro\n', r.out);
        await edge!.closing();
        assert.ok(await eventually(() => offeredLists(origin!, from).length === 1), `s_server output:\n${origin!.output().slice(from)}`);
        const offered = offeredLists(origin!, from)[0]!;
        const suites = offered.at(-1) === SCSV ? offered.slice(0, -1) : offered;
        assert.ok(!suites.includes(SCSV), 'the renegotiation SCSV, when OpenSSL sends it, comes last');
        if (process.versions.openssl.startsWith('3.0.')) assert.equal(offered.at(-1), SCSV, 'OpenSSL 3.0 appends the renegotiation SCSV');
        assert.deepEqual(suites, ORIGIN_TABLE, 'no suite added, none missing, table order');
        // The same list, per version, from the table's source of truth: 1.3 rows, then the ≤1.2 rows, and the
        // TLS 1.1 rows in the same relative order.
        assert.deepEqual(suites, [...ORIGIN_CIPHERS['TLSv1.3'].ciphersuites, ...ORIGIN_CIPHERS['TLSv1.2'].ciphers]);
        const c = originClientCiphers('TLSv1.1', 'TLSv1.3');
        assert.deepEqual(suites, [...c.ciphersuites, ...c.ciphers]);
        assert.deepEqual(suites.filter((s) => ORIGIN_CIPHERS['TLSv1.1'].ciphers.includes(s)), ORIGIN_CIPHERS['TLSv1.1'].ciphers);
      });
    });
  }

  describe('full: an s_server origin limited to an older version gets the first table suite of that version', () => {
    // TLS 1.1 rows of the table are all RSA suites: a TLS 1.1 origin needs an RSA certificate.
    const cases = [
      { edgePort: 7653, originPort: 7682, version: 'TLSv1.2', keyType: 'ecdsa', extra: ['-tls1_2'], cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' },
      { edgePort: 7654, originPort: 7683, version: 'TLSv1.2', keyType: 'rsa', extra: ['-tls1_2'], cipher: 'ECDHE-RSA-AES128-GCM-SHA256' },
      { edgePort: 7655, originPort: 7684, version: 'TLSv1.1', keyType: 'rsa', extra: ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'], cipher: 'ECDHE-RSA-AES128-SHA' },
    ] as const;
    for (const c of cases) {
      test(`${c.version} origin with an ${c.keyType.toUpperCase()} certificate: ${c.cipher}`, { timeout: 20_000 }, async () => {
        needOpenssl();
        const origin = await startSServer(dir, c.originPort, await originCert({ keyType: c.keyType }), c.extra);
        const e = await startEdge(edgeConfig([{ id: 'old', protocol: `tcp/${c.edgePort}`, tls: 'full', origin_direct: [`tcp://${HOST}:${c.originPort}`] }]), { certs });
        try {
          const r = await sClient(c.edgePort, 'TLSv1.3', rootFile, 'older', 'redlo');
          assert.equal(r.data, 'redlo\n', r.out);
          const ev = await e.closing();
          assert.equal(ev.Status, 200);
          assert.equal(ev.OriginTlsProtocol, c.version);
          assert.equal(ev.OriginTlsCipher, c.cipher);
          assert.match(origin.output(), new RegExp(`^Protocol version: ${c.version.replace('.', '\\.')}$`, 'm'));
        } finally {
          await e.close();
          await origin.stop();
        }
      });
    }
  });

  describe('strict: s_server presenting a bad certificate is refused with 526', () => {
    const HOUR_AGO = (h: number): number => Date.now() - h * HOUR;
    const cases = [
      { what: 'an expired certificate', edgePort: 7660, originPort: 7685, code: 'E_TLS_ORIGIN_CERT_EXPIRED', make: () => originCert({ issuer: testCa, notBeforeMs: HOUR_AGO(48), notAfterMs: HOUR_AGO(24) }) },
      { what: 'a certificate for another name', edgePort: 7661, originPort: 7686, code: 'E_TLS_ORIGIN_CERT_NAME', make: () => originCert({ issuer: testCa, names: ['elsewhere.example.test'] }) },
      { what: 'a self-signed certificate', edgePort: 7662, originPort: 7687, code: 'E_TLS_ORIGIN_CERT_SELF_SIGNED', make: () => originCert() },
      {
        what: 'a certificate from a CA outside ca_bundle',
        edgePort: 7663,
        originPort: 7688,
        code: 'E_TLS_ORIGIN_CERT_UNTRUSTED',
        make: async () => originCert({ issuer: await issueCert({ names: [], isCa: true, commonName: 'Stranger CA' }) }),
      },
    ] as const;
    for (const c of cases) {
      test(`${c.what}: originError 526 ${c.code}, and the client gets no data`, { timeout: 20_000 }, async () => {
        needOpenssl();
        const pair = await c.make();
        const origin = await startSServer(dir, c.originPort, pair);
        const e = await startEdge(
          edgeConfig([{ id: 'strict-bad', protocol: `tcp/${c.edgePort}`, tls: 'strict', origin_direct: [`tcp://${HOST}:${c.originPort}`], edge_tls: { origin_server_name: ORIGIN_NAME } }]),
          { certs },
        );
        try {
          const r = await sClient(c.edgePort, 'TLSv1.3', rootFile, 'refused', undefined);
          assert.equal(r.timedOut, false, 'the edge closes the client once the origin is refused');
          assert.equal(r.verified, true, 'the client side handshake itself succeeds');
          assert.equal(r.data, '');
          const ev = await e.closing();
          assert.equal(ev.Event, 'originError');
          assert.equal(ev.Status, 526);
          assert.equal(ev.ErrorCode, c.code);
          assert.equal(ev.OriginTlsStatus, 'HANDSHAKE_FAILED');
          assert.equal(ev.ClientTlsStatus, 'OK');
          // The refusal is about the certificate s_server presented: the edge received it and logged its fingerprint.
          assert.equal(ev.OriginTlsFingerprint, describeCert(pair.cert).fingerprint256);
        } finally {
          await e.close();
          await origin.stop();
        }
      });
    }
  });
});
