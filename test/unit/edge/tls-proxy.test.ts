/**
 * Edge TLS through the whole engine on real loopback sockets: flexible, full and strict, the event fields, the
 * failure statuses (400 bad SNI, 443 failed handshake, 525/526 origin), PROXY headers with TLS, certificate reload.
 * Ports 7200-7249 belong to this file (edge ports); origins bind port 0.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEdge, type EdgeUnderTest } from '../../helpers/edge.ts';
import { createNodeCertSource } from '../../../src/net/node/cert-store.ts';
import { openLocalCa } from '../../../src/net/node/local-ca.ts';
import { issueCert, describeCert } from '../../../src/net/node/x509.ts';
import { decodeProxyHeader, PP2_TYPE } from '../../../src/core/proxy-protocol.ts';
import type { CertSource } from '../../../src/net/ports.ts';

const HOUR = 3_600_000;
let dir: string;
let certs: CertSource;
let localRoot: string;
/** A test CA that strict origins chain to (given to the edge as ca_bundle). */
let testCa: { cert: string; key: string };
let caBundle: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'refract-tls-proxy-'));
  certs = createNodeCertSource({ dataDir: join(dir, 'data') });
  localRoot = (await openLocalCa({ dataDir: join(dir, 'data') })).certPem;
  testCa = await issueCert({ names: ['Refract Test CA'], isCa: true, commonName: 'Refract Test CA' });
  caBundle = join(dir, 'ca.pem');
  writeFileSync(caBundle, testCa.cert);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A TLS origin: echoes, and records the bytes that arrived before the TLS handshake (a clear PROXY header). */
async function startTlsOrigin(pair: { cert: string; key: string }): Promise<{ port: number; fingerprint: string; clear: Buffer[]; close(): Promise<void> }> {
  const ctx = tls.createSecureContext({ cert: pair.cert, key: pair.key });
  const clear: Buffer[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer((raw) => {
    socks.add(raw);
    raw.on('error', () => {});
    // Read a PROXY header in clear, if one comes (it may arrive in several reads, apart from the ClientHello, and
    // its binary fields may hold 0x16), plus anything else before the ClientHello (0x16); then hand the socket to TLS.
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      let headerLength = 0;
      if (got[0] !== 0x16) {
        const d = decodeProxyHeader(new Uint8Array(got));
        if (d.kind === 'incomplete') return;
        headerLength = d.kind === 'header' ? d.header.length : got.length;
        if (d.kind === 'error') {
          clear.push(got);
          raw.destroy();
          return;
        }
      }
      const at = got.indexOf(0x16, headerLength);
      if (at < 0) return; // no ClientHello yet
      raw.off('data', onData);
      raw.pause();
      clear.push(Buffer.from(got.subarray(0, at)));
      raw.unshift(got.subarray(at));
      startTls();
    };
    raw.on('data', onData);
    const startTls = (): void => {
      const s = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx });
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => {});
    };
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    fingerprint: describeCert(pair.cert).fingerprint256,
    clear,
    async close() {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A plain origin that records what it receives and echoes. */
async function startPlainOrigin(): Promise<{ port: number; received: Buffer[]; close(): Promise<void> }> {
  const received: Buffer[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    const i = received.push(Buffer.alloc(0)) - 1;
    s.on('data', (d) => {
      received[i] = Buffer.concat([received[i]!, d]);
      s.write(d);
    });
    s.on('end', () => s.end());
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    async close() {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface TlsExchange {
  data: string;
  protocol: string | null;
  cipher: string | undefined;
  fingerprint: string | undefined;
  error: string | undefined;
}

/** TLS client: handshake, send `msg`, half-close, read to the end. Bounded by 5 s. */
async function tlsExchange(port: number, msg: string, opts: tls.ConnectionOptions = {}): Promise<TlsExchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let info: Omit<TlsExchange, 'data' | 'error'> = { protocol: null, cipher: undefined, fingerprint: undefined };
    const s = tls.connect({ host: '127.0.0.1', port, ca: localRoot, servername: 'app.example.test', ...opts }, () => {
      info = { protocol: s.getProtocol(), cipher: s.getCipher()?.name, fingerprint: s.getPeerCertificate().fingerprint256 };
      s.write(msg);
      s.end();
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => s.end());
    s.on('error', (e: NodeJS.ErrnoException) => {
      error ??= e.code ?? e.message;
    });
    const timer = setTimeout(() => s.destroy(new Error('timeout')), 5_000);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks).toString(), ...info, error });
    });
  });
}

function config(port: number, app: Record<string, unknown>, edgeTls: Record<string, unknown> = {}): unknown {
  return {
    edge: { addresses: ['127.0.0.1'], tls: { handshake_timeout_ms: 2_000, ca_bundle: caBundle, ...edgeTls } },
    apps: [{ id: 'app', protocol: `tcp/${port}`, dns: { name: 'app.example.test' }, ...app }],
  };
}

async function withEdge(cfg: unknown, body: (e: EdgeUnderTest) => Promise<void>): Promise<void> {
  const e = await startEdge(cfg, { certs });
  try {
    await body(e);
  } finally {
    await e.close();
  }
}

void describe('edge TLS on real sockets', () => {
  void it('flexible: terminates TLS 1.3 from the client with a local-CA certificate and sends plain bytes to the origin', async () => {
    const origin = await startPlainOrigin();
    await withEdge(config(7200, { tls: 'flexible', origin_direct: [`tcp://127.0.0.1:${origin.port}`] }), async (e) => {
      const r = await tlsExchange(7200, 'hello over tls');
      assert.equal(r.error, undefined);
      assert.equal(r.data, 'hello over tls');
      assert.equal(r.protocol, 'TLSv1.3');
      assert.equal(origin.received[0]?.toString(), 'hello over tls');
      const ev = await e.closing();
      assert.equal(ev.Status, 200);
      assert.equal(ev.ClientTlsStatus, 'OK');
      assert.equal(ev.ClientTlsProtocol, 'TLSv1.3');
      assert.match(ev.ClientTlsCipher, /^AEAD-/);
      assert.equal(ev.ClientTlsClientHelloServerName, 'app.example.test');
      assert.equal(ev.OriginTlsMode, 'flexible');
      assert.equal(ev.OriginTlsProtocol, 'none');
    });
    await origin.close();
  });

  void it('flexible: accepts TLS 1.2 and TLS 1.1 clients (security level lowered for TLS apps only)', async () => {
    const origin = await startPlainOrigin();
    await withEdge(config(7201, { tls: 'flexible', origin_direct: [`tcp://127.0.0.1:${origin.port}`] }), async (e) => {
      const r12 = await tlsExchange(7201, 'v12', { maxVersion: 'TLSv1.2' });
      assert.equal(r12.protocol, 'TLSv1.2');
      assert.equal(r12.data, 'v12');
      const r11 = await tlsExchange(7201, 'v11', { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
      assert.equal(r11.error, undefined);
      assert.equal(r11.protocol, 'TLSv1.1');
      assert.equal(r11.data, 'v11');
      const evs = [await e.closing(1), await e.closing(2)];
      assert.deepEqual(evs.map((x) => x.ClientTlsProtocol), ['TLSv1.2', 'TLSv1.1']);
    });
    await origin.close();
  });

  void it('refuses a client SNI that no certificate on the address covers with 400 INVALID_SNI', async () => {
    const origin = await startPlainOrigin();
    await withEdge(config(7202, { tls: 'flexible', origin_direct: [`tcp://127.0.0.1:${origin.port}`] }), async (e) => {
      const r = await tlsExchange(7202, 'x', { servername: 'other.example.test', rejectUnauthorized: false });
      assert.notEqual(r.error, undefined);
      const ev = await e.closing();
      assert.equal(ev.Event, 'tlsError');
      assert.equal(ev.Status, 400);
      assert.equal(ev.ClientTlsStatus, 'INVALID_SNI');
      assert.equal(ev.ClientTlsClientHelloServerName, 'other.example.test', 'the event names the refused SNI');
      assert.equal(ev.ErrorCode, 'E_TLS_CLIENT_SNI');
      assert.equal(origin.received.length, 0, 'no origin connection for a refused handshake');
    });
    await origin.close();
  });

  void it('ends plain text sent to a TLS port with 443 HANDSHAKE_FAILED and no origin connection', async () => {
    const origin = await startPlainOrigin();
    await withEdge(config(7203, { tls: 'flexible', origin_direct: [`tcp://127.0.0.1:${origin.port}`] }), async (e) => {
      const s = net.connect({ host: '127.0.0.1', port: 7203 });
      s.on('error', () => {});
      s.write('GET / HTTP/1.0\r\n\r\n');
      const ev = await e.closing();
      s.destroy();
      assert.equal(ev.Event, 'tlsError');
      assert.equal(ev.Status, 443);
      assert.equal(ev.ClientTlsStatus, 'HANDSHAKE_FAILED');
      assert.equal(origin.received.length, 0);
    });
    await origin.close();
  });

  void it('full: re-encrypts to a self-signed origin and logs its certificate fingerprint', async () => {
    const origin = await startTlsOrigin(await issueCert({ names: ['origin.example.test'] }));
    await withEdge(config(7204, { tls: 'full', origin_direct: [`tcp://127.0.0.1:${origin.port}`] }), async (e) => {
      const r = await tlsExchange(7204, 'through full');
      assert.equal(r.error, undefined);
      assert.equal(r.data, 'through full');
      const ev = await e.closing();
      assert.equal(ev.Status, 200);
      assert.equal(ev.OriginTlsStatus, 'OK');
      assert.equal(ev.OriginTlsProtocol, 'TLSv1.3');
      assert.equal(ev.OriginTlsCipher, 'AEAD-AES128-GCM-SHA256', 'first suite of the origin table');
      assert.equal(ev.OriginTlsFingerprint, origin.fingerprint);
    });
    await origin.close();
  });

  void it('strict: refuses a self-signed origin with 526 and accepts one chained to ca_bundle with the right name', async () => {
    const bad = await startTlsOrigin(await issueCert({ names: ['origin.example.test'] }));
    const good = await startTlsOrigin(await issueCert({ names: ['origin.example.test'], issuer: testCa }));
    const cfg = (port: number, originPort: number): unknown =>
      config(port, { tls: 'strict', origin_direct: [`tcp://127.0.0.1:${originPort}`], edge_tls: { origin_server_name: 'origin.example.test' } });
    await withEdge(cfg(7205, bad.port), async (e) => {
      await tlsExchange(7205, 'x');
      const ev = await e.closing();
      assert.equal(ev.Event, 'originError');
      assert.equal(ev.Status, 526);
      assert.equal(ev.ErrorCode, 'E_TLS_ORIGIN_CERT_SELF_SIGNED');
      assert.equal(ev.OriginTlsStatus, 'HANDSHAKE_FAILED');
      assert.equal(ev.OriginTlsFingerprint, bad.fingerprint);
    });
    await withEdge(cfg(7206, good.port), async (e) => {
      const r = await tlsExchange(7206, 'strict ok');
      assert.equal(r.data, 'strict ok');
      const ev = await e.closing();
      assert.equal(ev.Status, 200);
      assert.equal(ev.OriginTlsStatus, 'OK');
    });
    await bad.close();
    await good.close();
  });

  void it('strict: refuses an expired origin certificate and a wrong name, each with its code', async () => {
    const expired = await startTlsOrigin(
      await issueCert({ names: ['origin.example.test'], issuer: testCa, notBeforeMs: Date.now() - 48 * HOUR, notAfterMs: Date.now() - 24 * HOUR }),
    );
    const wrong = await startTlsOrigin(await issueCert({ names: ['elsewhere.example.test'], issuer: testCa }));
    const cases: Array<[number, number, string]> = [
      [7207, expired.port, 'E_TLS_ORIGIN_CERT_EXPIRED'],
      [7208, wrong.port, 'E_TLS_ORIGIN_CERT_NAME'],
    ];
    for (const [port, originPort, code] of cases) {
      await withEdge(config(port, { tls: 'strict', origin_direct: [`tcp://127.0.0.1:${originPort}`], edge_tls: { origin_server_name: 'origin.example.test' } }), async (e) => {
        await tlsExchange(port, 'x');
        const ev = await e.closing();
        assert.equal(ev.Status, 526);
        assert.equal(ev.ErrorCode, code);
      });
    }
    await expired.close();
    await wrong.close();
  });

  void it('full with PROXY v2: the header goes to the origin in clear before the ClientHello, with the SSL TLV when asked', async () => {
    const origin = await startTlsOrigin(await issueCert({ names: ['origin.example.test'] }));
    try {
      await withEdge(
        config(7209, { tls: 'full', proxy_protocol: 'v2', proxy_protocol_tlvs: true, origin_direct: [`tcp://127.0.0.1:${origin.port}`] }),
        async (e) => {
          const r = await tlsExchange(7209, 'pp');
          assert.equal(r.data, 'pp');
          await e.closing();
        },
      );
      const d = decodeProxyHeader(new Uint8Array(origin.clear[0]!));
      assert.equal(d.kind, 'header');
      if (d.kind === 'header') {
        assert.equal(d.header.length, origin.clear[0]!.length, 'nothing but the header precedes the ClientHello');
        assert.equal(d.header.src?.address, '127.0.0.1');
        assert.deepEqual(d.header.tlvs.map((t) => t.type), [PP2_TYPE.SSL, PP2_TYPE.AUTHORITY]);
        assert.equal(Buffer.from(d.header.tlvs[1]!.value).toString(), 'app.example.test');
      }
    } finally {
      await origin.close(); // also when an assertion fails: an open server would keep the test process alive
    }
  });

  void it('serves a configured certificate and picks up a replaced one on reloadCertificates', async () => {
    const origin = await startPlainOrigin();
    const certFile = join(dir, 'app.pem');
    const keyFile = join(dir, 'app-key.pem');
    const first = await issueCert({ names: ['app.example.test'], issuer: testCa });
    writeFileSync(certFile, first.cert);
    writeFileSync(keyFile, first.key, { mode: 0o600 });
    await withEdge(
      config(7210, { tls: 'flexible', origin_direct: [`tcp://127.0.0.1:${origin.port}`], edge_tls: { cert: certFile, key: keyFile } }),
      async (e) => {
        const a = await tlsExchange(7210, 'a', { ca: testCa.cert });
        assert.equal(a.fingerprint, describeCert(first.cert).fingerprint256);
        const second = await issueCert({ names: ['app.example.test'], issuer: testCa });
        writeFileSync(certFile, second.cert);
        writeFileSync(keyFile, second.key);
        await e.edge.reloadCertificates();
        const b = await tlsExchange(7210, 'b', { ca: testCa.cert });
        assert.equal(b.fingerprint, describeCert(second.cert).fingerprint256);
        assert.ok(e.edge.tlsWatchedFiles().includes(certFile));
        // A broken file is refused and the running certificate stays.
        writeFileSync(keyFile, 'not a key');
        await assert.rejects(e.edge.reloadCertificates(), (err: { code?: string }) => err.code === 'E_TLS_CERT_INVALID');
        const c = await tlsExchange(7210, 'c', { ca: testCa.cert });
        assert.equal(c.fingerprint, describeCert(second.cert).fingerprint256);
      },
    );
    await origin.close();
  });

  void it('picks the certificate by SNI among the TLS apps of the edge address, and falls back to the port\'s app without SNI', async () => {
    const origin = await startPlainOrigin();
    const a = await issueCert({ names: ['a.example.test'], issuer: testCa });
    const b = await issueCert({ names: ['b.example.test'], issuer: testCa, keyType: 'rsa' });
    const files = (n: string, pair: { cert: string; key: string }): { cert: string; key: string } => {
      writeFileSync(join(dir, `${n}.pem`), pair.cert);
      writeFileSync(join(dir, `${n}-key.pem`), pair.key, { mode: 0o600 });
      return { cert: join(dir, `${n}.pem`), key: join(dir, `${n}-key.pem`) };
    };
    const cfg = {
      edge: { addresses: ['127.0.0.1'], tls: { handshake_timeout_ms: 2_000 } },
      apps: [
        { id: 'a', protocol: 'tcp/7212', dns: { name: 'a.example.test' }, origin_direct: [`tcp://127.0.0.1:${origin.port}`], tls: 'flexible', edge_tls: files('sni-a', a) },
        { id: 'b', protocol: 'tcp/7213', dns: { name: 'b.example.test' }, origin_direct: [`tcp://127.0.0.1:${origin.port}`], tls: 'flexible', edge_tls: files('sni-b', b) },
      ],
    };
    await withEdge(cfg, async () => {
      const viaSni = await tlsExchange(7212, 'x', { ca: testCa.cert, servername: 'b.example.test' });
      assert.equal(viaSni.error, undefined);
      assert.equal(viaSni.fingerprint, describeCert(b.cert).fingerprint256, 'SNI b on a\'s port gets b\'s (RSA) certificate');
      const noSni = await tlsExchange(7212, 'y', { ca: testCa.cert, servername: '', checkServerIdentity: () => undefined });
      assert.equal(noSni.fingerprint, describeCert(a.cert).fingerprint256, 'no SNI: the port\'s app');
    });
    await origin.close();
  });

  void it('refuses a config whose certificate file is missing, keeping nothing half-applied', async () => {
    await assert.rejects(
      startEdge(config(7211, { tls: 'flexible', origin_direct: ['tcp://127.0.0.1:9'], edge_tls: { cert: join(dir, 'nope.pem'), key: join(dir, 'nope-key.pem') } }), { certs }),
      (err: { code?: string }) => err.code === 'E_TLS_CERT_READ',
    );
    // Nothing listens on the port.
    const s = net.connect({ host: '127.0.0.1', port: 7211 });
    const [err] = (await once(s, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
  });
});
