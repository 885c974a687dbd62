import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import type { CertInfo, Conn, TlsClientParams, TlsIdentity, TlsOutcome, TlsServerParams, TlsSession } from '../../../src/net/ports.ts';
import { SIM_EPOCH_MS, type Sim, type SimHost } from '../../../src/net/sim/index.ts';
import { assertNoLeaks, closeListeners, settle, world } from './harness.ts';

const DAY = 86_400_000;

function cert(id: string, names: string[], over: Partial<CertInfo> = {}): CertInfo {
  return { id, names, notBeforeMs: SIM_EPOCH_MS - 30 * DAY, notAfterMs: SIM_EPOCH_MS + 30 * DAY, issuer: 'CA', keyType: 'ecdsa', fingerprint256: id, ...over };
}
const CA = cert('CA', [], { issuer: 'CA' });
const A = cert('A', ['a.test']);
const B = cert('B', ['b.test']);
const EXPIRED = cert('EXPIRED', ['a.test'], { notBeforeMs: SIM_EPOCH_MS - 30 * DAY, notAfterMs: SIM_EPOCH_MS - DAY });
const SELF = cert('SELF', ['a.test'], { issuer: 'SELF' });
const OTHER_CA = cert('OTHER', ['a.test'], { issuer: 'SOMEONE' });
const id = (c: CertInfo): TlsIdentity => ({ cert: c, chain: [] });

const SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
const CIPHERS = ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-SHA'];

function serverParams(over: Partial<TlsServerParams> = {}): TlsServerParams {
  const byName = new Map([['a.test', id(A)], ['b.test', id(B)]]);
  return {
    identity: (sni) => byName.get(sni ?? 'a.test'),
    minVersion: 'TLSv1.1',
    maxVersion: 'TLSv1.3',
    ciphers: CIPHERS,
    ciphersuites: SUITES,
    handshakeTimeoutMs: 10_000,
    ...over,
  };
}

function clientParams(over: Partial<TlsClientParams> = {}): TlsClientParams {
  return { servername: 'a.test', minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3', ciphers: CIPHERS, ciphersuites: SUITES, verify: undefined, handshakeTimeoutMs: 10_000, ...over };
}

interface Run {
  sim: Sim;
  server?: TlsSession;
  client?: TlsSession;
  serverOutcome?: TlsOutcome;
  clientOutcome?: TlsOutcome;
  /** Virtual times: client() called, client done, server done. */
  t: { start: number; clientDone: number; serverDone: number };
}

/** A TLS handshake between 'client' and 'server' through the simulator; runs until idle unless `idle` is false. */
async function handshake(sp: TlsServerParams, cp: TlsClientParams, opts: { latencyMs?: number; setup?: (sim: Sim, c: SimHost, s: SimHost) => void; run?: boolean } = {}): Promise<Run> {
  const { sim, client, server } = world({ defaultLink: { latencyMs: opts.latencyMs ?? 1 } });
  opts.setup?.(sim, client, server);
  const r: Run = { sim, t: { start: -1, clientDone: -1, serverDone: -1 } };
  await server.listenTcp({ host: '0.0.0.0', port: 443 }, (raw) => {
    r.server = server.tls.server(raw, sp);
    r.server.onDone((o) => {
      r.serverOutcome = o;
      r.t.serverDone = sim.clock.now();
    });
  });
  const raw = client.connectTcp({ host: '10.0.0.2', port: 443 });
  raw.setHandlers({
    connect: () => {
      r.t.start = sim.clock.now();
      r.client = client.tls.client(raw, cp);
      r.client.onDone((o) => {
        r.clientOutcome = o;
        r.t.clientDone = sim.clock.now();
      });
    },
  });
  if (opts.run !== false) settle(sim);
  return r;
}

function ok(o: TlsOutcome | undefined): Extract<TlsOutcome, { ok: true }>['info'] {
  assert.ok(o !== undefined, 'no outcome');
  if (!o.ok) assert.fail(`handshake failed: ${o.failure.reason} (${o.failure.detail})`);
  return o.info;
}

function failed(o: TlsOutcome | undefined): { status: string; reason: string; peerCert?: CertInfo; servername?: string } {
  assert.ok(o !== undefined, 'no outcome');
  if (o.ok) assert.fail('the handshake was expected to fail');
  return o.failure;
}

function collect(c: Conn, onEnd?: () => void): { text: () => string; events: string[] } {
  const chunks: Buffer[] = [];
  const events: string[] = [];
  c.setHandlers({
    data: (d) => chunks.push(Buffer.from(d)),
    end: () => {
      events.push('end');
      onEnd?.();
    },
    error: (e) => events.push(`error:${e.code}`),
    close: (h) => events.push(`close:${h}`),
  });
  return { text: () => Buffer.concat(chunks).toString(), events };
}

async function finish(r: Run): Promise<void> {
  r.client?.conn.destroy();
  r.server?.conn.destroy();
  settle(r.sim);
  await closeListeners(r.sim);
  assertNoLeaks(r.sim);
}

describe('simulated TLS handshakes', () => {
  test('TLS 1.3: the server-preferred suite, SNI and the server certificate; bytes and half-close through the plaintext Conns', async () => {
    const r = await handshake(serverParams({ ciphersuites: ['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'] }), clientParams());
    assert.deepEqual({ ...ok(r.serverOutcome) }, { protocol: 'TLSv1.3', cipher: 'TLS_CHACHA20_POLY1305_SHA256', servername: 'a.test', peerCert: undefined });
    const c = ok(r.clientOutcome);
    assert.equal(c.cipher, 'TLS_CHACHA20_POLY1305_SHA256');
    assert.deepEqual(c.peerCert, A);
    const srv = collect(r.server!.conn, () => {
      r.server!.conn.write(Buffer.from('pong after your end'));
      r.server!.conn.end();
    });
    const cli = collect(r.client!.conn);
    r.client!.conn.write(Buffer.from('ping'));
    r.client!.conn.end();
    settle(r.sim);
    assert.equal(srv.text(), 'ping');
    assert.equal(cli.text(), 'pong after your end');
    assert.deepEqual(srv.events, ['end', 'close:false']);
    assert.deepEqual(cli.events, ['end', 'close:false']);
    assert.equal(r.client!.conn.bytesWritten, 4, 'plaintext counters leave the handshake records out');
    assert.equal(r.server!.conn.bytesRead, 4);
    await finish(r);
  });

  test('TLS 1.2 and 1.1 negotiate with the server preference and report OpenSSL names', async () => {
    const r12 = await handshake(serverParams({ ciphers: ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-GCM-SHA256'] }), clientParams({ maxVersion: 'TLSv1.2' }));
    assert.equal(ok(r12.clientOutcome).protocol, 'TLSv1.2');
    assert.equal(ok(r12.serverOutcome).cipher, 'ECDHE-ECDSA-AES256-GCM-SHA384');
    await finish(r12);
    const r11 = await handshake(serverParams(), clientParams({ maxVersion: 'TLSv1.1', ciphers: ['ECDHE-ECDSA-AES128-SHA'] }));
    assert.equal(ok(r11.serverOutcome).protocol, 'TLSv1.1');
    assert.equal(ok(r11.clientOutcome).cipher, 'ECDHE-ECDSA-AES128-SHA');
    await finish(r11);
  });

  test('TLS 1.3 costs one round trip less than TLS 1.2 in virtual time', async () => {
    const r13 = await handshake(serverParams(), clientParams(), { latencyMs: 10 });
    const r12 = await handshake(serverParams(), clientParams({ maxVersion: 'TLSv1.2' }), { latencyMs: 10 });
    ok(r13.clientOutcome);
    ok(r12.clientOutcome);
    assert.equal(r13.t.clientDone - r13.t.start, 20, 'TLS 1.3: one RTT for the client');
    assert.equal(r12.t.clientDone - r12.t.start, 40, 'TLS 1.2: two RTTs for the client');
    assert.equal(r13.t.serverDone - r13.t.start, 30, 'the server is done when the client Finished arrives');
    await finish(r13);
    await finish(r12);
  });

  test('no shared version: both sides fail, the server with no_shared_version, and both Conns close', async () => {
    const r = await handshake(serverParams({ minVersion: 'TLSv1.2' }), clientParams({ maxVersion: 'TLSv1.1', ciphers: ['ECDHE-ECDSA-AES128-SHA'] }));
    assert.equal(failed(r.serverOutcome).reason, 'no_shared_version');
    assert.equal(failed(r.clientOutcome).reason, 'no_shared_version');
    assert.equal(r.client!.conn.closed, true);
    assert.equal(r.server!.conn.closed, true);
    await finish(r);
  });

  test('no shared cipher: the server fails with no_shared_cipher, the client hears an alert', async () => {
    const r = await handshake(serverParams({ ciphers: ['ECDHE-ECDSA-AES256-GCM-SHA384'] }), clientParams({ maxVersion: 'TLSv1.2', ciphers: ['ECDHE-ECDSA-AES128-GCM-SHA256'] }));
    assert.equal(failed(r.serverOutcome).reason, 'no_shared_cipher');
    assert.equal(failed(r.clientOutcome).reason, 'peer_alert');
    await finish(r);
  });
});

describe('simulated TLS: certificates', () => {
  test('the SNI picks the certificate; no SNI gets identity(undefined)', async () => {
    const r = await handshake(serverParams(), clientParams({ servername: 'b.test' }));
    assert.equal(ok(r.clientOutcome).peerCert?.id, 'B');
    assert.equal(ok(r.serverOutcome).servername, 'b.test');
    await finish(r);
    const r2 = await handshake(serverParams(), clientParams({ servername: undefined }));
    assert.equal(ok(r2.clientOutcome).peerCert?.id, 'A');
    assert.equal(ok(r2.serverOutcome).servername, '');
    await finish(r2);
  });

  test('an unknown SNI fails the server with unknown_sni / INVALID_SNI', async () => {
    const r = await handshake(serverParams(), clientParams({ servername: 'nobody.test' }));
    assert.deepEqual([failed(r.serverOutcome).reason, failed(r.serverOutcome).status], ['unknown_sni', 'INVALID_SNI']);
    assert.equal(failed(r.serverOutcome).servername, 'nobody.test', 'the failure names the SNI the ClientHello asked for');
    assert.equal(failed(r.clientOutcome).reason, 'peer_alert');
    await finish(r);
  });

  const trust = { system: false, cas: [CA] };
  const cases: Array<[string, CertInfo, string]> = [
    ['expired', EXPIRED, 'cert_expired'],
    ['for another name', B, 'cert_wrong_name'],
    ['self-signed', SELF, 'cert_self_signed'],
    ['from an unknown CA', OTHER_CA, 'cert_unknown_ca'],
  ];
  for (const [what, c, reason] of cases) {
    test(`strict: a certificate ${what} fails the client with ${reason}, reporting it; the server hears an alert`, async () => {
      const r = await handshake(serverParams({ identity: () => id(c) }), clientParams({ verify: { trust, checkName: 'a.test' } }));
      const f = failed(r.clientOutcome);
      assert.equal(f.reason, reason);
      assert.equal(f.status, 'HANDSHAKE_FAILED');
      assert.equal(f.peerCert?.id, c.id);
      assert.equal(failed(r.serverOutcome).reason, 'peer_alert');
      await finish(r);
    });
  }

  test('strict: a valid chain and name pass', async () => {
    const r = await handshake(serverParams(), clientParams({ verify: { trust, checkName: 'a.test' } }));
    assert.equal(ok(r.clientOutcome).peerCert?.id, 'A');
    await finish(r);
  });
});

describe('simulated TLS: faults and peers that do not speak TLS', () => {
  test('records sliced into 1–3 byte pieces both ways still make a handshake, and bytes pass after it', async () => {
    const r = await handshake(serverParams(), clientParams({ maxVersion: 'TLSv1.2' }), {
      setup: (sim) => sim.link('client', 'server', { slicer: { minBytes: 1, maxBytes: 3 } }),
    });
    ok(r.clientOutcome);
    ok(r.serverOutcome);
    const srv = collect(r.server!.conn);
    r.client!.conn.write(Buffer.from('after the handshake'));
    settle(r.sim);
    assert.equal(srv.text(), 'after the handshake');
    await finish(r);
  });

  test('bytes the client sends with its Finished reach the server Conn first, once it resumes', async () => {
    const { sim, client, server } = world({ defaultLink: { latencyMs: 1 } });
    let srv: TlsSession | undefined;
    await server.listenTcp({ host: '0.0.0.0', port: 443 }, (raw) => (srv = server.tls.server(raw, serverParams())));
    const raw = client.connectTcp({ host: '10.0.0.2', port: 443 });
    let cli: TlsSession | undefined;
    raw.setHandlers({
      connect: () => {
        cli = client.tls.client(raw, clientParams());
        cli.conn.write(Buffer.from('early '));
        cli.onDone(() => cli!.conn.write(Buffer.from('then more')));
      },
    });
    settle(sim);
    const s = collect(srv!.conn);
    srv!.conn.pause();
    settle(sim);
    assert.equal(s.text(), '', 'paused: nothing delivered');
    srv!.conn.resume();
    settle(sim);
    assert.equal(s.text(), 'early then more');
    cli!.conn.destroy();
    srv!.conn.destroy();
    settle(sim);
    await closeListeners(sim);
    assertNoLeaks(sim);
  });

  test('a partition during the handshake ends both sides with handshake_timeout', async () => {
    const r = await handshake(serverParams({ handshakeTimeoutMs: 3_000 }), clientParams({ handshakeTimeoutMs: 3_000 }), {
      latencyMs: 5,
      // connect at 10 ms, the ClientHello reaches the server at 15 ms; its answer is cut off.
      setup: (sim) => sim.clock.setTimer(17, () => sim.partition('client', 'server')),
    });
    assert.equal(failed(r.clientOutcome).reason, 'handshake_timeout');
    assert.equal(failed(r.serverOutcome).reason, 'handshake_timeout');
    r.sim.heal();
    await finish(r);
  });

  test('a server that resets its Conn mid-handshake fails itself and the client with connection_closed', async () => {
    const { sim, client, server } = world({ defaultLink: { latencyMs: 1 } });
    let srv: TlsSession | undefined;
    await server.listenTcp({ host: '0.0.0.0', port: 443 }, (raw) => {
      srv = server.tls.server(raw, serverParams());
      srv.conn.reset();
    });
    const raw = client.connectTcp({ host: '10.0.0.2', port: 443 });
    let cli: TlsSession | undefined;
    raw.setHandlers({ connect: () => (cli = client.tls.client(raw, clientParams())) });
    const outcomes: Record<string, TlsOutcome> = {};
    settle(sim);
    srv!.onDone((o) => (outcomes.server = o));
    cli!.onDone((o) => (outcomes.client = o));
    settle(sim);
    assert.equal(failed(outcomes.server).reason, 'connection_closed');
    assert.equal(failed(outcomes.client).reason, 'connection_closed');
    await closeListeners(sim);
    assertNoLeaks(sim);
  });

  test('plain bytes to the server fail it with not_tls; a banner to the client fails it with not_tls', async () => {
    const { sim, client, server } = world();
    let srv: TlsSession | undefined;
    await server.listenTcp({ host: '0.0.0.0', port: 443 }, (raw) => (srv = server.tls.server(raw, serverParams())));
    await server.listenTcp({ host: '0.0.0.0', port: 22 }, (raw) => {
      raw.setHandlers({ data: () => {}, end: () => raw.end() });
      raw.write(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'));
    });
    const plain = client.connectTcp({ host: '10.0.0.2', port: 443 });
    plain.setHandlers({ connect: () => plain.write(Buffer.from('GET / HTTP/1.1\r\n\r\n')), data: () => {}, end: () => plain.end() });
    const raw = client.connectTcp({ host: '10.0.0.2', port: 22 });
    let cli: TlsSession | undefined;
    raw.setHandlers({ connect: () => (cli = client.tls.client(raw, clientParams())) });
    const outcomes: Record<string, TlsOutcome> = {};
    settle(sim);
    srv!.onDone((o) => (outcomes.server = o));
    cli!.onDone((o) => (outcomes.client = o));
    settle(sim);
    assert.equal(failed(outcomes.server).reason, 'not_tls');
    assert.equal(failed(outcomes.client).reason, 'not_tls');
    await closeListeners(sim);
    assertNoLeaks(sim);
  });

  test('the same seed plays the same handshake at the same virtual times', async () => {
    const times = async (): Promise<number[]> => {
      const r = await handshake(serverParams(), clientParams(), { setup: (sim) => sim.link('client', 'server', { latencyMs: 3, jitterMs: 2, slicer: { minBytes: 2, maxBytes: 40 } }) });
      ok(r.clientOutcome);
      const t = [r.t.start, r.t.clientDone, r.t.serverDone];
      await finish(r);
      return t;
    };
    assert.deepEqual(await times(), await times());
  });
});

describe('simulated TLS: bytes the caller already read', () => {
  test('handshake bytes read before tls.server (past a PROXY header) are used first, even when they are only a piece', async () => {
    const { sim, client, server } = world({ defaultLink: { latencyMs: 1 } });
    sim.link('client', 'server', { slicer: { minBytes: 1, maxBytes: 4 } });
    let srv: TlsSession | undefined;
    await server.listenTcp({ host: '0.0.0.0', port: 443 }, (raw) => {
      let taken = false;
      raw.setHandlers({
        data: (chunk) => {
          if (taken) assert.fail('the raw Conn was handed over');
          taken = true;
          raw.pause();
          const c = Buffer.from(chunk);
          srv = server.tls.server(raw, serverParams(), [c.subarray(0, 1), c.subarray(1)]);
        },
      });
    });
    const raw = client.connectTcp({ host: '10.0.0.2', port: 443 });
    let cli: TlsSession | undefined;
    raw.setHandlers({ connect: () => (cli = client.tls.client(raw, clientParams())) });
    settle(sim);
    const outcomes: Record<string, TlsOutcome> = {};
    srv!.onDone((o) => (outcomes.server = o));
    cli!.onDone((o) => (outcomes.client = o));
    settle(sim);
    assert.equal(ok(outcomes.server).servername, 'a.test');
    ok(outcomes.client);
    cli!.conn.destroy();
    srv!.conn.destroy();
    settle(sim);
    await closeListeners(sim);
    assertNoLeaks(sim);
  });
});
