/**
 * Real peer: HAProxy as the ORIGIN behind Refract, with `accept-proxy` on its bind line. HAProxy decodes the PROXY
 * header Refract sends and answers an HTTP request with the addresses it learned, so this checks our v1/v2 bytes
 * against an independent implementation of the spec, not against our own decoder.
 *
 * Ports 7600-7649 belong to this file: edge ports 7600-7609, HAProxy binds 7640-7649.
 * Needs `haproxy` on PATH (Debian package `haproxy`; .ci/run installs it). Without it the suite is skipped, loudly,
 * unless REFRACT_REQUIRE_PEERS=1 (set by .ci/run) makes it fail.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { startEdge, delay } from '../helpers/edge.ts';
import { findOnPath, missingPeer, peerSkip } from '../helpers/peers.ts';

const HAPROXY_PORT = 7640;
/** The client dials from its own loopback address, so "src" cannot be confused with the edge's 127.0.0.1. */
const CLIENT_ADDR = '127.0.0.9';
const EDGE_ADDR = '127.0.0.1';

/** Absolute path of `haproxy` found on PATH, or undefined. */

const haproxyBin = findOnPath('haproxy');
const skipReason = peerSkip('haproxy', 'haproxy', haproxyBin);

/**
 * HTTP mode so HAProxy can answer by itself with what it decoded: `src`/`dst` are the PROXY header's addresses once
 * `accept-proxy` has consumed it. `http-request return ... lf-string` exists since HAProxy 2.2.
 */
const haproxyConfig = (port: number): string => `global
  log stderr format raw local0 info
defaults
  mode http
  log global
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend fe
  bind 127.0.0.1:${port} accept-proxy
  http-request return status 200 content-type text/plain lf-string "src=%[src] src_port=%[src_port] dst=%[dst] dst_port=%[dst_port]\\n"
`;

interface RunningHaproxy {
  /** Everything HAProxy wrote to stdout/stderr so far (its log goes to stderr). */
  output(): string;
  stop(): Promise<void>;
}

/** True if `p` settles within `ms`; the timer is cleared either way, so it never holds the process open. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((res) => (t = setTimeout(() => res(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(t);
  }
}

/** Resolves true once something accepts on 127.0.0.1:port; each probe bounded by 500 ms. */
function probe(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const t = setTimeout(() => {
      s.destroy();
      res(false);
    }, 500);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      res(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      res(false);
    });
  });
}

async function startHaproxy(bin: string, port: number): Promise<RunningHaproxy> {
  // A listener already there would answer our readiness probe in HAProxy's place.
  if (await probe(port)) throw new Error(`127.0.0.1:${port} is already in use; ports 7600-7649 belong to this test file`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'refract-haproxy-'));
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, haproxyConfig(port));
  // -db: stay in the foreground, no daemon, so killing this child ends HAProxy.
  const child: ChildProcess = spawn(bin, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  let exited: string | undefined;
  const exit = new Promise<void>((res) => {
    child.once('exit', (code, sig) => {
      exited = `code ${code} signal ${sig}`;
      res();
    });
  });
  child.once('error', (err) => (exited = `spawn error ${err.message}`));
  const stop = async (): Promise<void> => {
    if (exited === undefined) {
      child.kill('SIGTERM');
      if (!(await within(exit, 3000))) {
        child.kill('SIGKILL');
        await within(exit, 2000);
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Bounded wait for the listener: at most 50 probes, at most ~10 s.
  const deadline = Date.now() + 10_000;
  for (let i = 0; i < 50 && Date.now() < deadline; i++) {
    if (exited !== undefined) break;
    if (await probe(port)) return { output: () => out, stop };
    await delay(100);
  }
  await stop();
  throw new Error(`haproxy did not listen on 127.0.0.1:${port} (${exited ?? 'still running'}); output:\n${out}`);
}

/**
 * Connects to the edge from CLIENT_ADDR, sends `data`, and reads until the connection closes (bounded by
 * `timeoutMs`). Returns the client's source port so the test can compare it with what the origin saw.
 */
async function clientExchange(port: number, data: string, timeoutMs = 5000): Promise<{ clientPort: number; data: string; error: string | undefined }> {
  const s = net.connect({ port, host: EDGE_ADDR, localAddress: CLIENT_ADDR, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let error: string | undefined;
  let clientPort = 0;
  s.on('data', (d: Buffer) => chunks.push(d));
  s.on('end', () => s.end());
  s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  s.on('connect', () => {
    clientPort = s.localPort ?? 0;
    s.write(data);
  });
  const timer = setTimeout(() => s.destroy(new Error('client exchange timeout')), timeoutMs);
  await new Promise<void>((res) => s.once('close', () => res()));
  clearTimeout(timer);
  return { clientPort, data: Buffer.concat(chunks).toString('latin1'), error };
}

const app = (name: string, edgePort: number, proxyProtocol: 'off' | 'v1' | 'v2') => ({
  dns: { type: 'CNAME', name: `${name}.peer.test` },
  protocol: `tcp/${edgePort}`,
  origin_direct: [`tcp://127.0.0.1:${HAPROXY_PORT}`],
  proxy_protocol: proxyProtocol,
});

const REQUEST = 'GET /whoami HTTP/1.1\r\nHost: origin.peer.test\r\nConnection: close\r\n\r\n';

describe('HAProxy (accept-proxy) as the origin behind Refract', { skip: skipReason, timeout: 60_000 }, () => {
  let haproxy: RunningHaproxy | undefined;

  // A missing binary fails every test (counted as failures, not as cancelled by a failing hook) with how to fix it.
  const needHaproxy = (): RunningHaproxy => {
    if (haproxyBin === undefined) {
      throw missingPeer('haproxy', 'haproxy');
    }
    assert.ok(haproxy, 'haproxy did not start (see the before hook)');
    return haproxy;
  };

  before(async () => {
    if (haproxyBin !== undefined) haproxy = await startHaproxy(haproxyBin, HAPROXY_PORT);
  });

  after(async () => {
    await haproxy?.stop();
  });

  for (const [i, version] of (['v1', 'v2'] as const).entries()) {
    test(`PROXY ${version}: HAProxy learns the client's real address and port and the edge address it reached`, { timeout: 15_000 }, async () => {
      needHaproxy();
      const edgePort = 7600 + i;
      const e = await startEdge({ edge: { addresses: [EDGE_ADDR] }, apps: [app(`pp-${version}`, edgePort, version)] });
      try {
        const r = await clientExchange(edgePort, REQUEST);
        assert.equal(r.error, undefined);
        assert.ok(r.clientPort > 0);
        const [head = '', body] = r.data.split('\r\n\r\n', 2);
        assert.match(head, /^HTTP\/1\.1 200 /, `HAProxy answered: ${JSON.stringify(r.data)}`);
        assert.equal(body, `src=${CLIENT_ADDR} src_port=${r.clientPort} dst=${EDGE_ADDR} dst_port=${edgePort}\n`);
        const ev = await e.closing();
        assert.equal(ev.Event, 'disconnect');
        assert.equal(ev.Status, 200);
        assert.equal(ev.ProxyProtocol, version);
        assert.equal(ev.ClientIP, CLIENT_ADDR);
        assert.equal(ev.ClientPort, r.clientPort);
        assert.equal(ev.OriginPort, HAPROXY_PORT);
      } finally {
        await e.close();
      }
    });
  }

  test('proxy_protocol off: HAProxy with accept-proxy resets the connection and Refract reports an upstream reset (444)', { timeout: 15_000 }, async () => {
    // What happens, observed with HAProxy 2.6: the first bytes HAProxy reads are "GET ...", not a PROXY signature,
    // so it logs "Received something which does not look like a PROXY protocol header" and closes with a RST
    // (it aborts the handshake, never answers). Refract sees ECONNRESET on the established upstream, passes the
    // reset on to the client, and records disconnect / 444 / upstream_reset (docs/events.md).
    const hp = needHaproxy();
    const edgePort = 7602;
    const e = await startEdge({ edge: { addresses: [EDGE_ADDR] }, apps: [app('pp-off', edgePort, 'off')] });
    const logFrom = hp.output().length;
    try {
      const r = await clientExchange(edgePort, REQUEST);
      assert.equal(r.data, '', 'HAProxy must not answer a connection without a PROXY header');
      assert.equal(r.error, 'ECONNRESET');
      const ev = await e.closing();
      assert.equal(ev.Event, 'disconnect');
      assert.equal(ev.Status, 444);
      assert.equal(ev.CloseReason, 'upstream_reset');
      assert.equal(ev.ErrorCode, 'E_UPSTREAM_RESET');
      assert.equal(ev.ProxyProtocol, 'off');
      // Evidence that the PROXY check, not something else, made HAProxy refuse (peer log text, not ours). The log
      // line travels through a pipe and may land a moment after the reset: poll, bounded (20 × 50 ms).
      const refusedForProxy = () => /PROXY protocol header/.test(hp.output().slice(logFrom));
      for (let i = 0; i < 20 && !refusedForProxy(); i++) await delay(50);
      assert.ok(refusedForProxy(), `HAProxy log since this test:\n${hp.output().slice(logFrom)}`);
    } finally {
      await e.close();
    }
  });
});
