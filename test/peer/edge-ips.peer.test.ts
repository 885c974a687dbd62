/**
 * Edge IPs from a pool on real sockets: `refract serve` (a child process) with `edge.pools.ipv4: [127.0.10.0/24]`
 * (Linux routes all of 127/8 to lo, so these addresses bind with no setup), the DNS server, and `dig`:
 * - with `api:`: an app created through the API gets a pool address (`ips` in the answer), `dig` answers it, a TCP
 *   client reaches the origin through it, the app does not listen on the other edge address, a second name gets
 *   another address, and a restart keeps both;
 * - without `api:`: the allocation is kept in `data/edge-ips.json`, and a restart with a new app whose name sorts
 *   first keeps the old app's address (without the file it would take the lowest one).
 * IPv6 pools on sockets need a network namespace (lo carries only ::1): test/peer/edge-ips-netns.peer.test.ts.
 *
 * Ports come from `freePort` (bound on port 0 and released). Every wait is bounded; dig runs are bounded
 * (+time=2 +tries=1, killed after 10 s); children are killed in `finally`/`after`. Needs `dig` on PATH (dnsutils;
 * .ci/run installs it); skipped loudly without it, unless REFRACT_REQUIRE_PEERS=1 makes that a failure.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { findOnPath, missingPeer, peerSkip } from '../helpers/peers.ts';
import { freePort, ZONE } from '../unit/api/harness.ts';
import { apiCall, createTokenCli, echoThrough as echo, killAll, startCli, startServe, until, writeApiConfig } from '../unit/api/processes.ts';

const digBin = findOnPath('dig');
const skipReason = peerSkip('dig', 'dnsutils', digBin);
const HOST = '127.0.0.1';
const POOL = '127.0.10.0/24';

/** The A records dig gets for `name` (through the CNAME), in order. */
function digA(port: number, name: string): Promise<string[]> {
  if (digBin === undefined) throw missingPeer('dig', 'dnsutils');
  return new Promise((resolve, reject) => {
    execFile(digBin, [`@${HOST}`, '-p', String(port), '+time=2', '+tries=1', '+noall', '+answer', name, 'A'], { encoding: 'utf8', timeout: 10_000 }, (err, stdout) => {
      if (err !== null) return reject(err);
      resolve(
        stdout
          .split('\n')
          .map((l) => l.split(/\s+/))
          .filter((f) => f[3] === 'A')
          .map((f) => f[4]!),
      );
    });
  });
}

/** The error code of a TCP connect to host:port (ECONNREFUSED expected), or 'connected'. */
function connectResult(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, 2_000);
    s.on('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? 'error');
    });
  });
}

after(() => killAll());

describe('edge IPs from a loopback pool (refract serve, dig, real sockets)', { skip: skipReason }, () => {
  it('with api: a created app gets a pool address that DNS answers and that alone serves it; a restart keeps it', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-edge-ips-'));
    const [apiPort, dnsPort, originPort, portA, portB] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const file = writeApiConfig(dir, apiPort, {
      edge: { addresses: [HOST], drain_timeout_ms: 200, pools: { ipv4: [POOL] } },
      dns: { listen: `${HOST}:${dnsPort}` },
      origins: [{ name: 'echo', listen: `tcp://${HOST}:${originPort}`, behaviour: 'echo' }],
    });
    const token = await createTokenCli(file, ['--name', 'edge-ips']);
    const app = (name: string, port: number) => ({
      protocol: `tcp/${port}`,
      dns: { type: 'CNAME', name },
      edge_ips: { type: 'dynamic', connectivity: 'ipv4' },
      origin_direct: [`tcp://${HOST}:${originPort}`],
    });
    let served = await startServe(file, apiPort);
    try {
      const made = await apiCall(served.base, token, 'POST', `/zones/${ZONE.id}/spectrum/apps`, app('game.example.com', portA));
      assert.equal(made.status, 200, JSON.stringify(made.json));
      assert.deepEqual(made.json.result.ips, ['127.0.10.1']);
      assert.deepEqual(await digA(dnsPort, 'game.example.com'), ['127.0.10.1']);
      assert.equal(await echo('127.0.10.1', portA, 'through the pool'), 'through the pool');
      assert.equal(await connectResult(HOST, portA), 'ECONNREFUSED', 'the app does not listen on edge.addresses');

      const other = await apiCall(served.base, token, 'POST', `/zones/${ZONE.id}/spectrum/apps`, app('chat.example.com', portB));
      assert.equal(other.status, 200, JSON.stringify(other.json));
      assert.deepEqual(other.json.result.ips, ['127.0.10.2'], 'another name, another address');
      assert.deepEqual(await digA(dnsPort, 'chat.example.com'), ['127.0.10.2']);
      assert.equal(await connectResult('127.0.10.1', portB), 'ECONNREFUSED', "not on the other name's address");
      // `ips` is read-only: sent back in a PUT body it is ignored, and the address stays.
      const put = await apiCall(served.base, token, 'PUT', `/zones/${ZONE.id}/spectrum/apps/${made.json.result.id}`, { ...made.json.result, ips: ['127.0.10.9'] });
      assert.equal(put.status, 200, JSON.stringify(put.json));
      assert.deepEqual(put.json.result.ips, ['127.0.10.1']);

      assert.equal(await served.kill('SIGTERM'), 0, served.stderr);
      served = await startServe(file, apiPort);
      const got = await apiCall(served.base, token, 'GET', `/zones/${ZONE.id}/spectrum/apps/${made.json.result.id}`);
      assert.deepEqual(got.json.result.ips, ['127.0.10.1'], 'a restart keeps the address');
      assert.deepEqual(await digA(dnsPort, 'game.example.com'), ['127.0.10.1']);
      assert.deepEqual(await digA(dnsPort, 'chat.example.com'), ['127.0.10.2']);
      assert.equal(await echo('127.0.10.1', portA, 'after the restart'), 'after the restart');

      // Rotation through the CLI (which calls the node's API): dig answers the new address, which serves; the old
      // one refuses new connections; the other name keeps its address.
      const rotate = startCli(['edge-ips', 'rotate', '--config', file, '--token', token, 'game.example.com']);
      assert.equal(await rotate.done, 0, rotate.stderr);
      assert.equal(rotate.stdout, `${made.json.result.id}\t127.0.10.3\n`);
      assert.deepEqual(await digA(dnsPort, 'game.example.com'), ['127.0.10.3']);
      assert.deepEqual(await digA(dnsPort, 'chat.example.com'), ['127.0.10.2']);
      assert.equal(await echo('127.0.10.3', portA, 'rotated'), 'rotated');
      assert.equal(await connectResult('127.0.10.1', portA), 'ECONNREFUSED', 'the old address takes no new connection');
    } finally {
      await served.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without api: the state file keeps an app on its address across a restart that adds a name sorting first', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-edge-ips-file-'));
    const file = join(dir, 'refract.yaml');
    const [dnsPort, originPort, portWeb, portAaa] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const app = (name: string, port: number) => ({ protocol: `tcp/${port}`, dns: { name }, edge_ips: { connectivity: 'ipv4' }, origin_direct: [`tcp://${HOST}:${originPort}`] });
    const write = (apps: unknown[]): void =>
      writeFileSync(
        file,
        YAML.stringify({
          node: { id: 'edge-ips-file', data_dir: 'data' },
          edge: { addresses: [HOST], drain_timeout_ms: 200, pools: { ipv4: [POOL] } },
          log: { level: 'warn' },
          zones: [{ name: 'example.com' }],
          dns: { listen: `${HOST}:${dnsPort}` },
          origins: [{ name: 'echo', listen: `tcp://${HOST}:${originPort}`, behaviour: 'echo' }],
          apps,
        }),
      );
    const serve = async () => {
      const p = startCli(['serve', '--config', file, '--no-watch', '--access-log', 'off']);
      await until('refract serve to start', 30_000, () => (p.stderr.includes('DNS server on') && p.stderr.includes('refract: serving') ? true : undefined));
      return p;
    };
    write([app('web.example.com', portWeb)]);
    let p = await serve();
    try {
      assert.match(p.stderr, /app \S+ \(web\.example\.com\) tcp\/\d+ on 127\.0\.10\.1 →/);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'data', 'edge-ips.json'), 'utf8')), { version: 1, names: { 'web.example.com': { ipv4: '127.0.10.1' } } });
      assert.deepEqual(await digA(dnsPort, 'web.example.com'), ['127.0.10.1']);
      assert.equal(await echo('127.0.10.1', portWeb, 'file only'), 'file only');
      p.child.kill('SIGTERM');
      assert.equal(await p.done, 0, p.stderr);

      write([app('web.example.com', portWeb), app('aaa.example.com', portAaa)]);
      p = await serve();
      assert.deepEqual(await digA(dnsPort, 'web.example.com'), ['127.0.10.1'], 'web keeps its address');
      assert.deepEqual(await digA(dnsPort, 'aaa.example.com'), ['127.0.10.2'], 'the new name takes the next free one');
      assert.equal(await echo('127.0.10.1', portWeb, 'kept'), 'kept');
      assert.equal(await echo('127.0.10.2', portAaa, 'new'), 'new');
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'data', 'edge-ips.json'), 'utf8')).names, { 'aaa.example.com': { ipv4: '127.0.10.2' }, 'web.example.com': { ipv4: '127.0.10.1' } });
    } finally {
      p.child.kill('SIGKILL');
      await p.done;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
