import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { CertInfo, Conn, TlsClientParams, TlsIdentity, TlsOutcome, TlsServerParams, TlsSession, TlsTrust } from '../../../src/net/ports.ts';
import { createNodeNetwork } from '../../../src/net/node/network.ts';
import { failureOfError, scanClientHello } from '../../../src/net/node/tls.ts';
import { describeCert, issueCert, type IssuedCert } from '../../../src/net/node/x509.ts';

const network = createNodeNetwork();
const DAY = 86_400_000;

const SUITES_13 = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
/** Spectrum's origin-side ≤1.2 list, in ClientHello order (docs/spectrum.md, "Edge TLS"). */
const ORIGIN_CIPHERS = ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA', 'AES128-GCM-SHA256', 'AES128-SHA', 'AES256-SHA'];
const EDGE_CIPHERS = [
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305', 'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-SHA', 'ECDHE-RSA-AES128-SHA', 'AES128-SHA',
];

interface Issued extends IssuedCert {
  info: CertInfo;
}

let ca: Issued;
const certs: Record<'a' | 'b' | 'rsa' | 'expired' | 'future' | 'selfSigned' | 'otherCa', Issued> = {} as never;

function identity(c: Issued): TlsIdentity {
  return { cert: c.info, chain: [], pem: { cert: c.cert, key: c.key } };
}

function trust(): TlsTrust {
  return { system: false, cas: [ca.info], pem: ca.cert };
}

function serverParams(over: Partial<TlsServerParams> = {}): TlsServerParams {
  const byName = new Map([['a.test', identity(certs.a)], ['b.test', identity(certs.b)], ['rsa.test', identity(certs.rsa)]]);
  return {
    identity: (sni) => (sni === undefined ? byName.get('a.test') : byName.get(sni)),
    minVersion: 'TLSv1.1',
    maxVersion: 'TLSv1.3',
    ciphers: EDGE_CIPHERS,
    ciphersuites: SUITES_13,
    handshakeTimeoutMs: 5_000,
    ...over,
  };
}

function clientParams(over: Partial<TlsClientParams> = {}): TlsClientParams {
  return {
    servername: 'a.test',
    minVersion: 'TLSv1.1',
    maxVersion: 'TLSv1.3',
    ciphers: ORIGIN_CIPHERS,
    ciphersuites: SUITES_13,
    verify: undefined,
    handshakeTimeoutMs: 5_000,
    ...over,
  };
}

function outcome(s: TlsSession): Promise<TlsOutcome> {
  return new Promise((resolve) => s.onDone(resolve));
}

interface Pair {
  server: TlsSession;
  client: TlsSession;
  serverOutcome: TlsOutcome;
  clientOutcome: TlsOutcome;
  close(): Promise<void>;
}

/** A TLS server session and a TLS client session over real loopback TCP, both through the Network port. */
async function pair(sp: TlsServerParams, cp: TlsClientParams): Promise<Pair> {
  let onServer!: (s: TlsSession) => void;
  const serverSession = new Promise<TlsSession>((r) => (onServer = r));
  const listener = await network.listenTcp({ host: '127.0.0.1', port: 0 }, (raw) => onServer(network.tls.server(raw, sp)));
  const raw = network.connectTcp({ host: '127.0.0.1', port: listener.address.port });
  const client = await new Promise<TlsSession>((resolve, reject) => {
    raw.setHandlers({ connect: () => resolve(network.tls.client(raw, cp)), error: reject });
  });
  const server = await serverSession;
  const [serverOutcome, clientOutcome] = await Promise.all([outcome(server), outcome(client)]);
  return { server, client, serverOutcome, clientOutcome, close: () => listener.close() };
}

function failureOf(o: TlsOutcome): { status: string; reason: string; peerCert?: CertInfo; servername?: string } {
  assert.equal(o.ok, false, 'the handshake was expected to fail');
  return o.ok ? { status: '', reason: '' } : o.failure;
}

function infoOf(o: TlsOutcome): Extract<TlsOutcome, { ok: true }>['info'] {
  if (!o.ok) assert.fail(`handshake failed: ${o.failure.reason} (${o.failure.detail})`);
  return o.info;
}

/** Collects a Conn's bytes and lifecycle until close. */
function collect(c: Conn, onEnd?: () => void): { text: () => string; events: string[]; closed: Promise<void> } {
  const chunks: Buffer[] = [];
  const events: string[] = [];
  let closed!: () => void;
  const p = new Promise<void>((r) => (closed = r));
  c.setHandlers({
    data: (d) => chunks.push(Buffer.from(d)),
    end: () => {
      events.push('end');
      onEnd?.();
    },
    error: (e) => events.push(`error:${e.code}`),
    close: (hadError) => {
      events.push(`close:${hadError}`);
      closed();
    },
  });
  return { text: () => Buffer.concat(chunks).toString(), events, closed: p };
}

/** Destroys both plaintext Conns and waits for both to close. */
async function shut(p: Pair): Promise<void> {
  p.client.conn.destroy();
  p.server.conn.destroy();
  await Promise.all([closedOf(p.client.conn), closedOf(p.server.conn)]);
}

function closedOf(c: Conn): Promise<void> {
  return new Promise((r) => (c.closed ? r() : c.setHandlers({ close: () => r() })));
}

before(async () => {
  const now = Date.now();
  const caPem = await issueCert({ names: [], isCa: true, commonName: 'Refract test CA' });
  ca = { ...caPem, info: describeCert(caPem.cert) };
  const leaf = async (opts: Parameters<typeof issueCert>[0]): Promise<Issued> => {
    const c = await issueCert(opts);
    return { ...c, info: describeCert(c.cert, [ca.cert]) };
  };
  const otherCa = await issueCert({ names: [], isCa: true, commonName: 'Somebody else' });
  certs.a = await leaf({ names: ['a.test'], issuer: caPem });
  certs.b = await leaf({ names: ['b.test'], issuer: caPem });
  certs.rsa = await leaf({ names: ['rsa.test'], keyType: 'rsa', issuer: caPem });
  certs.expired = await leaf({ names: ['a.test'], issuer: caPem, notBeforeMs: now - 30 * DAY, notAfterMs: now - DAY });
  certs.future = await leaf({ names: ['a.test'], issuer: caPem, notBeforeMs: now + DAY, notAfterMs: now + 30 * DAY });
  certs.selfSigned = await leaf({ names: ['a.test'] });
  certs.otherCa = await leaf({ names: ['a.test'], issuer: otherCa });
});

describe('node TLS handshakes', () => {
  test('TLS 1.3: both sides agree on the server-preferred suite, the client sees the server certificate, bytes flow both ways', async () => {
    const p = await pair(
      serverParams({ ciphersuites: ['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'] }),
      clientParams({ ciphersuites: ['TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256'] }),
    );
    const s = infoOf(p.serverOutcome);
    const c = infoOf(p.clientOutcome);
    assert.deepEqual({ ...s }, { protocol: 'TLSv1.3', cipher: 'TLS_CHACHA20_POLY1305_SHA256', servername: 'a.test', peerCert: undefined });
    assert.equal(c.protocol, 'TLSv1.3');
    assert.equal(c.cipher, 'TLS_CHACHA20_POLY1305_SHA256');
    assert.equal(c.servername, 'a.test');
    assert.equal(c.peerCert?.id, certs.a.info.id);

    const srv = collect(p.server.conn, () => p.server.conn.end());
    const cli = collect(p.client.conn);
    p.server.conn.resume();
    p.client.conn.resume();
    p.client.conn.write(Buffer.from('hello origin'));
    p.server.conn.write(Buffer.from('hello client'));
    p.client.conn.end();
    await Promise.all([srv.closed, cli.closed]);
    assert.equal(srv.text(), 'hello origin');
    assert.equal(cli.text(), 'hello client');
    assert.deepEqual(srv.events, ['end', 'close:false']);
    assert.deepEqual(cli.events, ['end', 'close:false']);
    assert.equal(p.client.conn.bytesWritten, 12, 'counters count plaintext');
    await p.close();
  });

  test('TLS 1.2: the server preference picks the cipher, reported by its OpenSSL name', async () => {
    const p = await pair(
      serverParams({ ciphers: ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-GCM-SHA256'] }),
      clientParams({ maxVersion: 'TLSv1.2', ciphers: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384'] }),
    );
    assert.equal(infoOf(p.serverOutcome).protocol, 'TLSv1.2');
    assert.equal(infoOf(p.serverOutcome).cipher, 'ECDHE-ECDSA-AES256-GCM-SHA384');
    assert.equal(infoOf(p.clientOutcome).cipher, 'ECDHE-ECDSA-AES256-GCM-SHA384');
    await shut(p);
    await p.close();
  });

  test('TLS 1.1 works when the server allows it (security level lowered for it only)', async () => {
    const p = await pair(serverParams(), clientParams({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: ['ECDHE-ECDSA-AES128-SHA'] }));
    assert.equal(infoOf(p.serverOutcome).protocol, 'TLSv1.1');
    assert.equal(infoOf(p.clientOutcome).cipher, 'ECDHE-ECDSA-AES128-SHA');
    await shut(p);
    await p.close();
  });

  test('an RSA certificate serves ECDHE-RSA suites', async () => {
    const p = await pair(serverParams(), clientParams({ servername: 'rsa.test', maxVersion: 'TLSv1.2' }));
    assert.equal(infoOf(p.clientOutcome).cipher, 'ECDHE-RSA-AES128-GCM-SHA256');
    assert.equal(infoOf(p.clientOutcome).peerCert?.keyType, 'rsa');
    await shut(p);
    await p.close();
  });

  test('a TLS 1.1 client against a 1.2+ server fails with no_shared_version on both sides, and both Conns close', async () => {
    const p = await pair(serverParams({ minVersion: 'TLSv1.2' }), clientParams({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' }));
    assert.deepEqual({ ...failureOf(p.serverOutcome), detail: '' }, { status: 'HANDSHAKE_FAILED', reason: 'no_shared_version', detail: '', servername: 'a.test' });
    assert.equal(failureOf(p.clientOutcome).reason, 'no_shared_version');
    await Promise.all([closedOf(p.server.conn), closedOf(p.client.conn)]);
    await p.close();
  });

  test('no common ≤1.2 cipher: the server fails with no_shared_cipher', async () => {
    const p = await pair(serverParams({ ciphers: ['ECDHE-ECDSA-AES256-GCM-SHA384'] }), clientParams({ maxVersion: 'TLSv1.2', ciphers: ['ECDHE-ECDSA-AES128-GCM-SHA256'] }));
    assert.equal(failureOf(p.serverOutcome).reason, 'no_shared_cipher');
    assert.equal(failureOf(p.clientOutcome).reason, 'peer_alert');
    await p.close();
  });
});

describe('node TLS server: certificate selection by SNI', () => {
  test('the SNI picks the certificate, and the server reports the name', async () => {
    const p = await pair(serverParams(), clientParams({ servername: 'b.test' }));
    assert.equal(infoOf(p.serverOutcome).servername, 'b.test');
    assert.equal(infoOf(p.clientOutcome).peerCert?.id, certs.b.info.id);
    await shut(p);
    await p.close();
  });

  test('a ClientHello without SNI gets identity(undefined) and servername ""', async () => {
    const asked: Array<string | undefined> = [];
    const base = serverParams();
    const p = await pair({ ...base, identity: (sni) => (asked.push(sni), base.identity(sni)) }, clientParams({ servername: undefined }));
    assert.equal(infoOf(p.serverOutcome).servername, '');
    assert.equal(infoOf(p.clientOutcome).servername, '');
    assert.equal(infoOf(p.clientOutcome).peerCert?.id, certs.a.info.id);
    assert.deepEqual(asked, [undefined]);
    await shut(p);
    await p.close();
  });

  test('an SNI no certificate covers fails with unknown_sni / INVALID_SNI, and the client gets an alert', async () => {
    const p = await pair(serverParams(), clientParams({ servername: 'nobody.test' }));
    const f = failureOf(p.serverOutcome);
    assert.equal(f.reason, 'unknown_sni');
    assert.equal(f.status, 'INVALID_SNI');
    assert.equal(f.servername, 'nobody.test', 'the failure names the SNI the ClientHello asked for');
    assert.equal(failureOf(p.clientOutcome).reason, 'peer_alert');
    await Promise.all([closedOf(p.server.conn), closedOf(p.client.conn)]);
    await p.close();
  });

  test('no SNI and no default identity fails with unknown_sni', async () => {
    const base = serverParams();
    const p = await pair({ ...base, identity: (sni) => (sni === undefined ? undefined : base.identity(sni)) }, clientParams({ servername: undefined }));
    assert.equal(failureOf(p.serverOutcome).reason, 'unknown_sni');
    assert.equal(failureOf(p.serverOutcome).servername, undefined, 'no SNI, none reported');
    assert.equal(p.clientOutcome.ok, false);
    await p.close();
  });

  test('an identity without PEM fails with no_certificate / INVALID_CONFIG', async () => {
    const p = await pair(serverParams({ identity: () => ({ cert: certs.a.info, chain: [] }) }), clientParams());
    assert.deepEqual([failureOf(p.serverOutcome).reason, failureOf(p.serverOutcome).status], ['no_certificate', 'INVALID_CONFIG']);
    assert.equal(p.clientOutcome.ok, false);
    await p.close();
  });
});

describe('node TLS: peers that do not speak TLS, and time', () => {
  test('plain text to the TLS server fails with not_tls', async () => {
    let session!: Promise<TlsOutcome>;
    const listener = await network.listenTcp({ host: '127.0.0.1', port: 0 }, (raw) => (session = outcome(network.tls.server(raw, serverParams()))));
    const sock = net.connect(listener.address.port, '127.0.0.1', () => sock.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n'));
    sock.on('error', () => {});
    sock.resume();
    await new Promise((r) => sock.on('close', r));
    assert.equal(failureOf(await session).reason, 'not_tls');
    await listener.close();
  });

  test('a client that closes before its ClientHello fails the server with connection_closed', async () => {
    let session!: Promise<TlsOutcome>;
    const listener = await network.listenTcp({ host: '127.0.0.1', port: 0 }, (raw) => (session = outcome(network.tls.server(raw, serverParams()))));
    const sock = net.connect(listener.address.port, '127.0.0.1', () => sock.end());
    sock.on('error', () => {});
    sock.resume();
    await new Promise((r) => sock.on('close', r));
    assert.equal(failureOf(await session).reason, 'connection_closed');
    await listener.close();
  });

  test('a ClientHello split into one-byte TCP writes is still read whole', async () => {
    let server!: TlsSession;
    const asked: Array<string | undefined> = [];
    const base = serverParams();
    const sp = { ...base, identity: (sni: string | undefined) => (asked.push(sni), base.identity(sni)) };
    const listener = await network.listenTcp({ host: '127.0.0.1', port: 0 }, (raw) => (server = network.tls.server(raw, sp)));
    // A real ClientHello, captured from our own client against a raw socket, replayed a byte at a time.
    const captured = await new Promise<Buffer>((resolve) => {
      const cap = net.createServer((s) => {
        s.once('data', (d: Buffer) => {
          resolve(d);
          s.destroy();
          cap.close();
        });
      });
      cap.listen(0, '127.0.0.1', () => {
        const raw = network.connectTcp({ host: '127.0.0.1', port: (cap.address() as net.AddressInfo).port });
        raw.setHandlers({ connect: () => void network.tls.client(raw, clientParams({ servername: 'b.test' })) });
      });
    });
    const sock = net.connect(listener.address.port, '127.0.0.1');
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.resume();
    await new Promise((r) => sock.on('connect', r));
    for (let i = 0; i < captured.length; i++) {
      sock.write(captured.subarray(i, i + 1));
      if (i % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 50));
    sock.destroy();
    const o = await outcome(server);
    // The handshake cannot finish (the replayed client has no keys), but the whole ClientHello was read.
    assert.deepEqual(asked, ['b.test']);
    assert.notEqual(failureOf(o).reason, 'not_tls');
    await listener.close();
  });

  test('bytes read before tls.server (past a PROXY header) are handed in and used first', async () => {
    let server!: Promise<TlsSession>;
    const listener = await network.listenTcp({ host: '127.0.0.1', port: 0 }, (raw) => {
      server = new Promise((resolve) => {
        raw.setHandlers({
          data: (chunk) => {
            raw.pause();
            const c = Buffer.from(chunk);
            resolve(network.tls.server(raw, serverParams(), [c.subarray(0, 3), c.subarray(3)]));
          },
        });
      });
    });
    const raw = network.connectTcp({ host: '127.0.0.1', port: listener.address.port });
    const client = await new Promise<TlsSession>((r) => raw.setHandlers({ connect: () => r(network.tls.client(raw, clientParams({ servername: 'b.test' }))) }));
    const s = await server;
    const [so, co] = await Promise.all([outcome(s), outcome(client)]);
    assert.equal(infoOf(so).servername, 'b.test');
    assert.equal(infoOf(co).peerCert?.id, certs.b.info.id);
    await shut({ server: s, client, serverOutcome: so, clientOutcome: co, close: () => listener.close() });
    await listener.close();
  });

  test('a client whose origin answers with a plain-text banner fails with not_tls', async () => {
    const plain = net.createServer((s) => {
      s.on('error', () => {});
      s.resume(); // reads, so it sees our FIN and closes
      s.end('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n');
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const raw = network.connectTcp({ host: '127.0.0.1', port: (plain.address() as net.AddressInfo).port });
    const session = await new Promise<TlsSession>((r) => raw.setHandlers({ connect: () => r(network.tls.client(raw, clientParams())) }));
    assert.equal(failureOf(await outcome(session)).reason, 'not_tls');
    await closedOf(session.conn);
    await new Promise((r) => plain.close(r));
  });

  test('an origin that closes before answering fails the client with connection_closed', async () => {
    const plain = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const raw = network.connectTcp({ host: '127.0.0.1', port: (plain.address() as net.AddressInfo).port });
    const session = await new Promise<TlsSession>((r) => raw.setHandlers({ connect: () => r(network.tls.client(raw, clientParams())) }));
    assert.equal(failureOf(await outcome(session)).reason, 'connection_closed');
    await new Promise((r) => plain.close(r));
  });

  test('a silent client fails the server with handshake_timeout after handshakeTimeoutMs, and the socket is closed', async () => {
    let session!: TlsSession;
    const listener = await network.listenTcp({ host: '127.0.0.1', port: 0 }, (raw) => (session = network.tls.server(raw, serverParams({ handshakeTimeoutMs: 80 }))));
    const sock = net.connect(listener.address.port, '127.0.0.1');
    sock.on('error', () => {});
    sock.resume();
    const t0 = Date.now();
    const closed = new Promise((r) => sock.on('close', r));
    await new Promise((r) => sock.on('connect', r));
    await new Promise((r) => setTimeout(r, 10));
    const o = await outcome(session);
    const elapsed = Date.now() - t0;
    assert.equal(failureOf(o).reason, 'handshake_timeout');
    assert.ok(elapsed >= 70 && elapsed < 2_000, `timed out after ${elapsed} ms`);
    await closed;
    await listener.close();
  });

  test('onDone is never synchronous and reports once, even when registered after the outcome', async () => {
    const p = await pair(serverParams(), clientParams());
    let calls = 0;
    let sync = true;
    p.client.onDone(() => calls++);
    sync = false;
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 1);
    assert.equal(sync, false);
    await shut(p);
    await p.close();
  });
});

describe('node TLS client: verification (strict)', () => {
  /** A server presenting `c` for every name. */
  function presenting(c: Issued): TlsServerParams {
    return serverParams({ identity: () => identity(c) });
  }
  const strict = (checkName = 'a.test'): Partial<TlsClientParams> => ({ verify: { trust: trust(), checkName } });

  test('a valid chain and name pass', async () => {
    const p = await pair(presenting(certs.a), clientParams(strict()));
    assert.equal(infoOf(p.clientOutcome).peerCert?.id, certs.a.info.id);
    assert.equal(infoOf(p.clientOutcome).peerCert?.issuer, ca.info.id, 'the issuer is resolved against the trust anchors');
    await shut(p);
    await p.close();
  });

  const cases: Array<[string, () => Issued, string, string]> = [
    ['an expired certificate fails with cert_expired', () => certs.expired, 'a.test', 'cert_expired'],
    ['a not-yet-valid certificate fails with cert_not_yet_valid', () => certs.future, 'a.test', 'cert_not_yet_valid'],
    ['a certificate for another name fails with cert_wrong_name', () => certs.b, 'a.test', 'cert_wrong_name'],
    ['a self-signed certificate fails with cert_self_signed', () => certs.selfSigned, 'a.test', 'cert_self_signed'],
    ['a certificate from an untrusted CA fails with cert_unknown_ca', () => certs.otherCa, 'a.test', 'cert_unknown_ca'],
  ];
  for (const [name, cert, checkName, reason] of cases) {
    test(`${name}, reporting the peer certificate, and the connection is closed`, async () => {
      const p = await pair(presenting(cert()), clientParams(strict(checkName)));
      const f = failureOf(p.clientOutcome);
      assert.equal(f.reason, reason);
      assert.equal(f.status, 'HANDSHAKE_FAILED');
      assert.equal(f.peerCert?.id, cert().info.id);
      await Promise.all([closedOf(p.client.conn), closedOf(p.server.conn)]);
      await p.close();
    });
  }

  test('without verify (full), a self-signed certificate is accepted', async () => {
    const p = await pair(presenting(certs.selfSigned), clientParams());
    assert.equal(infoOf(p.clientOutcome).peerCert?.issuer, certs.selfSigned.info.id);
    await shut(p);
    await p.close();
  });
});

/** Parses a ClientHello record: its cipher suite code points, in order. */
function clientHelloSuites(b: Buffer): number[] | undefined {
  if (b.length < 5 || b[0] !== 0x16) return undefined;
  const recLen = b.readUInt16BE(3);
  if (b.length < 5 + recLen) return undefined;
  let o = 5 + 4 + 2 + 32; // handshake header, client_version, random
  o += 1 + b[o]!; // session id
  const n = b.readUInt16BE(o);
  const suites: number[] = [];
  for (let i = 0; i < n; i += 2) suites.push(b.readUInt16BE(o + 2 + i));
  return suites;
}

describe('node TLS client: the ClientHello', () => {
  let server: net.Server;
  let hellos: Array<(b: Buffer) => void>;
  before(async () => {
    hellos = [];
    server = net.createServer((s) => {
      let buf = Buffer.alloc(0);
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (clientHelloSuites(buf) !== undefined) {
          hellos.shift()?.(buf);
          s.destroy();
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  async function offered(cp: TlsClientParams): Promise<number[]> {
    const hello = new Promise<Buffer>((r) => hellos.push(r));
    const raw = network.connectTcp({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    const session = await new Promise<TlsSession>((r) => raw.setHandlers({ connect: () => r(network.tls.client(raw, cp)) }));
    const suites = clientHelloSuites(await hello)!;
    await outcome(session);
    return suites;
  }

  const IANA: Record<string, number> = {
    TLS_AES_128_GCM_SHA256: 0x1301, TLS_AES_256_GCM_SHA384: 0x1302, TLS_CHACHA20_POLY1305_SHA256: 0x1303,
    'ECDHE-ECDSA-AES128-GCM-SHA256': 0xc02b, 'ECDHE-RSA-AES128-GCM-SHA256': 0xc02f, 'ECDHE-RSA-AES128-SHA': 0xc013,
    'AES128-GCM-SHA256': 0x009c, 'AES128-SHA': 0x002f, 'AES256-SHA': 0x0035,
  };
  // TLS_EMPTY_RENEGOTIATION_INFO_SCSV: OpenSSL 3.0 (Node 20's) appends it to the suites; OpenSSL 3.5 (Node 24's) does not.
  const SCSV: number[] = process.versions.openssl.startsWith('3.0.') ? [0x00ff] : [];

  test('offers exactly the 1.3 suites then the ≤1.2 ciphers, in the given order', async () => {
    const suites = await offered(clientParams());
    assert.deepEqual(suites, [...SUITES_13, ...ORIGIN_CIPHERS].map((n) => IANA[n]).concat(SCSV));
  });

  test('a different order is kept as given', async () => {
    const ciphers = ['AES256-SHA', 'ECDHE-RSA-AES128-SHA', 'ECDHE-ECDSA-AES128-GCM-SHA256'];
    const suites = await offered(clientParams({ ciphers, ciphersuites: ['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'], minVersion: 'TLSv1.2' }));
    assert.deepEqual(suites, ['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256', ...ciphers].map((n) => IANA[n]).concat(SCSV));
  });

  test('a TLS 1.1-only client offers only the ciphers 1.1 can use', async () => {
    const suites = await offered(clientParams({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' }));
    assert.deepEqual(suites, ['ECDHE-RSA-AES128-SHA', 'AES128-SHA', 'AES256-SHA'].map((n) => IANA[n]).concat(SCSV));
  });
});

describe('node TLS: the plaintext Conn', () => {
  test('half-close: the server can answer after the client ends, then both close cleanly', async () => {
    const p = await pair(serverParams(), clientParams());
    const srv = collect(p.server.conn, () => {
      p.server.conn.write(Buffer.from('late answer'));
      p.server.conn.end();
    });
    const cli = collect(p.client.conn);
    p.client.conn.write(Buffer.from('question'));
    p.client.conn.end();
    await Promise.all([srv.closed, cli.closed]);
    assert.equal(srv.text(), 'question');
    assert.equal(cli.text(), 'late answer');
    assert.deepEqual(srv.events, ['end', 'close:false']);
    assert.deepEqual(cli.events, ['end', 'close:false']);
    await p.close();
  });

  test('bytes sent by the client right after its handshake wait for the server to resume', async () => {
    const p = await pair(serverParams(), clientParams());
    p.client.conn.write(Buffer.from('early'));
    await new Promise((r) => setTimeout(r, 30));
    const srv = collect(p.server.conn, () => p.server.conn.end());
    p.server.conn.pause();
    assert.equal(srv.text(), '', 'nothing before resume');
    p.server.conn.resume();
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(srv.text(), 'early');
    p.client.conn.destroy();
    await srv.closed;
    await p.close();
  });

  test('reset on the plaintext Conn resets the TCP connection: the peer sees ECONNRESET', async () => {
    const p = await pair(serverParams(), clientParams());
    const cli = collect(p.client.conn);
    const srv = collect(p.server.conn);
    p.server.conn.reset();
    await Promise.all([cli.closed, srv.closed]);
    assert.deepEqual(cli.events, ['error:ECONNRESET', 'close:true']);
    assert.equal(p.server.conn.closed, true);
    await p.close();
  });

  test('many bytes pass both ways intact', async () => {
    const p = await pair(serverParams(), clientParams());
    const big = Buffer.alloc(2_000_000, 7);
    for (let i = 0; i < big.length; i += 997) big[i] = i & 0xff;
    const srv = collect(p.server.conn, () => p.server.conn.end());
    const cli = collect(p.client.conn);
    p.server.conn.setHandlers({ data: (d) => p.server.conn.write(d) }); // echo
    p.client.conn.write(big);
    p.client.conn.end();
    const chunks: Buffer[] = [];
    p.client.conn.setHandlers({ data: (d) => chunks.push(Buffer.from(d)) });
    await Promise.all([srv.closed, cli.closed]);
    assert.ok(Buffer.concat(chunks).equals(big));
    await p.close();
  });
});

describe('node TLS: reading the ClientHello and error codes', () => {
  /** A ClientHello record with an SNI extension, hand-built. */
  function hello(sni: string | undefined): Buffer {
    const ext: Buffer[] = [];
    if (sni !== undefined) {
      const name = Buffer.from(sni, 'latin1');
      const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
      const list = Buffer.concat([u16(entry.length), entry]);
      ext.push(Buffer.concat([u16(0), u16(list.length), list]));
    }
    ext.push(Buffer.concat([u16(0x000b), u16(2), Buffer.from([1, 0])])); // ec_point_formats
    const exts = Buffer.concat(ext);
    const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 9), Buffer.from([0]), u16(2), u16(0x1301), Buffer.from([1, 0]), u16(exts.length), exts]);
    const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
    return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
  }
  function u16(n: number): Buffer {
    return Buffer.from([n >> 8, n & 0xff]);
  }

  test('the SNI is found in a whole ClientHello, and its absence reported', () => {
    assert.deepEqual(scanClientHello(hello('a.test')), { kind: 'hello', servername: 'a.test' });
    assert.deepEqual(scanClientHello(hello(undefined)), { kind: 'hello', servername: undefined });
  });

  test('a ClientHello cut anywhere is partial until its last byte, also when split over two records', () => {
    const h = hello('split.test');
    for (let i = 0; i < h.length; i++) assert.equal(scanClientHello(h.subarray(0, i)).kind, 'partial', `cut at ${i}`);
    // The same handshake message fragmented into two records.
    const msg = h.subarray(5);
    const cut = 20;
    const two = Buffer.concat([Buffer.from([0x16, 3, 1]), u16(cut), msg.subarray(0, cut), Buffer.from([0x16, 3, 1]), u16(msg.length - cut), msg.subarray(cut)]);
    assert.deepEqual(scanClientHello(two), { kind: 'hello', servername: 'split.test' });
  });

  test('bytes that are not a TLS handshake record are not_tls at once', () => {
    assert.equal(scanClientHello(Buffer.from('GET / HTTP/1.1\r\n')).kind, 'not_tls');
    assert.equal(scanClientHello(Buffer.from([0x16, 3, 1, 0, 5, 2, 0, 0, 1, 0])).kind, 'not_tls', 'a ServerHello first');
  });

  test('OpenSSL codes map to the reasons and statuses the TLS model uses', () => {
    assert.deepEqual(failureOfError('ERR_SSL_NO_SHARED_CIPHER'), { reason: 'no_shared_cipher', status: 'HANDSHAKE_FAILED' });
    assert.deepEqual(failureOfError('ERR_SSL_NO_PROTOCOLS_AVAILABLE'), { reason: 'no_shared_version', status: 'INVALID_CONFIG' });
    assert.deepEqual(failureOfError('ERR_SSL_HTTP_REQUEST'), { reason: 'not_tls', status: 'HANDSHAKE_FAILED' });
    assert.deepEqual(failureOfError('ERR_SSL_TLSV1_UNRECOGNIZED_NAME'), { reason: 'peer_alert', status: 'HANDSHAKE_FAILED' });
    assert.deepEqual(failureOfError('ECONNRESET'), { reason: 'connection_closed', status: 'HANDSHAKE_FAILED' });
    assert.deepEqual(failureOfError('ERR_SOMETHING_NEW'), { reason: 'internal', status: 'INTERNAL_ERROR' });
  });
});
