/**
 * Edge TLS, one body per case, on real loopback sockets (node:tls, the local CA) and on the simulator (the TLS
 * model over simulated TCP, certificate descriptors): the client's handshake result, the bytes, the events' TLS
 * fields and the trace must agree. Edge ports 7860-7869 of this suite's block belong to this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { EDGE_CIPHERS } from '../../src/core/tls-ciphers.ts';
import type { TlsClientParams, TlsOutcome, TlsVersion } from '../../src/net/ports.ts';
import { eventView, parity, probe, startEchoOrigin, traceEvents, type ArmRun, type ArmSetup, type Origin, type Probe } from './harness.ts';

function config(s: ArmSetup, port: number, originPort: number, app: Record<string, unknown> = {}): unknown {
  return {
    node: { id: 'parity' },
    edge: { addresses: [s.edgeHost], tls: { handshake_timeout_ms: 3_000 } },
    apps: [{ id: 'tls', protocol: `tcp/${port}`, dns: { name: 'tls.parity.test' }, origin_direct: [`tcp://${s.originHost}:${originPort}`], tls: 'flexible', ...app }],
  };
}

function clientParams(maxVersion: TlsVersion, servername: string | undefined): TlsClientParams {
  return {
    servername,
    minVersion: 'TLSv1.2',
    maxVersion,
    ciphers: EDGE_CIPHERS.ciphers,
    ciphersuites: EDGE_CIPHERS.ciphersuites,
    verify: undefined,
    handshakeTimeoutMs: 3_000,
  };
}

/** Dials the edge, speaks TLS, and once the handshake is done sends `text` and FIN. */
function tlsDial(run: ArmRun, port: number, params: TlsClientParams, text: string): { outcome: Promise<TlsOutcome>; plain: Promise<Probe> } {
  const raw = run.clientNet.connectTcp({ host: run.edgeHost, port });
  let resolvePlain!: (p: Probe) => void;
  const plain = new Promise<Probe>((r) => (resolvePlain = r));
  const outcome = new Promise<TlsOutcome>((resolveOutcome) => {
    raw.setHandlers({
      connect() {
        const s = run.clientNet.tls.client(raw, params);
        const p = probe(s.conn, { accepted: true });
        resolvePlain(p);
        s.onDone((o) => {
          if (o.ok) {
            s.conn.write(Buffer.from(text));
            s.conn.end();
          }
          resolveOutcome(o);
        });
        s.conn.resume();
      },
    });
  });
  return { outcome, plain };
}

/** The TLS fields of a closing event. */
function tlsView(run: ArmRun): Record<string, unknown> {
  const e = run.events.find((x) => x.Event !== 'connect')!;
  return {
    ClientTlsProtocol: e.ClientTlsProtocol,
    ClientTlsCipher: e.ClientTlsCipher,
    ClientTlsStatus: e.ClientTlsStatus,
    ClientTlsClientHelloServerName: e.ClientTlsClientHelloServerName,
    OriginTlsMode: e.OriginTlsMode,
    OriginTlsProtocol: e.OriginTlsProtocol,
  };
}

for (const [port, version, seed] of [
  [7860, 'TLSv1.3', 161],
  [7861, 'TLSv1.2', 162],
] as const) {
  test(`flexible: a ${version} client is terminated at the edge and its plain bytes are echoed (status 200)`, async () => {
    let origin!: Origin;
    const out = await parity(
      seed,
      async (s) => {
        origin = await startEchoOrigin(s.originNet, s.originHost);
        return config(s, port, origin.port);
      },
      async (run) => {
        const c = tlsDial(run, port, clientParams(version, 'tls.parity.test'), 'hello through tls');
        const o = await run.settle(c.outcome, 'client handshake');
        const p = await c.plain;
        await run.settle(p.until('close'), 'client close');
        await run.settle(run.closings(1), 'closing event');
        return {
          handshake: o.ok ? { protocol: o.info.protocol, cipher: o.info.cipher } : { failure: o.failure.reason },
          received: p.bytes().toString(),
          events: run.events.map((e) => eventView(run, e, { echo: origin.port })),
          tls: tlsView(run),
          trace: traceEvents(run),
        };
      },
    );
    assert.equal(out.handshake.protocol, version);
    assert.equal(out.received, 'hello through tls');
    assert.equal(out.events.at(-1)?.['Status'], 200);
    assert.equal(out.tls['ClientTlsStatus'], 'OK');
    assert.equal(out.tls['ClientTlsProtocol'], version);
    assert.deepEqual(out.trace, ['accept', 'tls_client', 'resolved', 'dial', 'established', 'c2s_end', 's2c_end', 'close']);
  });
}

test('flexible: an SNI no certificate covers is refused with 400 INVALID_SNI before any origin work', async () => {
  let origin!: Origin;
  const out = await parity(
    163,
    async (s) => {
      origin = await startEchoOrigin(s.originNet, s.originHost);
      return config(s, 7862, origin.port);
    },
    async (run) => {
      const c = tlsDial(run, 7862, clientParams('TLSv1.3', 'elsewhere.parity.test'), 'x');
      const o = await run.settle(c.outcome, 'client handshake');
      await run.settle(run.closings(1), 'closing event');
      return {
        clientFailed: !o.ok,
        events: run.events.map((e) => eventView(run, e, { echo: origin.port })),
        tls: tlsView(run),
        trace: traceEvents(run),
      };
    },
  );
  assert.equal(out.clientFailed, true);
  assert.equal(out.events.at(-1)?.['Status'], 400);
  assert.equal(out.events.at(-1)?.['ErrorCode'], 'E_TLS_CLIENT_SNI');
  assert.equal(out.tls['ClientTlsStatus'], 'INVALID_SNI');
  assert.equal(out.tls['ClientTlsClientHelloServerName'], 'elsewhere.parity.test', 'the event names the refused SNI');
  assert.deepEqual(out.trace, ['accept', 'tls_client_failed', 'close']);
});
