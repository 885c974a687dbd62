/**
 * IPv6 edge-IP pools on real sockets, in a network namespace the test makes (test/helpers/netns.ts): the host's `lo`
 * has only ::1, so the namespace routes a whole prefix to its own `lo` and lets processes bind any address of it,
 * which is what an operator with an IPv6 pool does (docs/deploy.md, "Edge IP pools"):
 *   ip -6 route add local fd00:10::/64 dev lo        # packets to any address of the prefix are for this host
 *   sysctl net.ipv6.ip_nonlocal_bind=1               # and a socket may bind one before it is on an interface
 * (127.0.10.0/24 needs nothing: all of 127/8 is local on lo.) Inside the namespace: `refract serve` (a child
 * process entered into it with nsenter) with pools for both families, `api:` and `dns:`, a built-in echo origin and
 * a banner origin, and two apps on tcp/22 with distinct names: `ssh.example.com` (IPv4 and IPv6) and
 * `v6.example.com` (`connectivity: ipv6`). The test checks that:
 * - `dig` answers ssh's A and AAAA from the pools, and v6's AAAA but no A; each address reaches its own app's origin;
 *   v6 listens on its IPv6 address only;
 * - `refract edge-ips rotate ssh.example.com` moves ssh to fresh addresses: dig answers the new AAAA (and A), which
 *   serve; the old IPv6 address refuses new connections; a connection established before the rotation keeps
 *   flowing; v6 keeps its address.
 *
 * Skipped, with the reason, where no namespace can be made (no `unshare`/`nsenter`/`ip`, or user namespaces
 * refused), unless REFRACT_REQUIRE_NETNS=1 (set by .ci/run) makes that a failure. Needs `dig` (dnsutils) like the
 * other peer tests (skipped loudly without it, unless REFRACT_REQUIRE_PEERS=1). Ports inside the namespace are fixed (it is private). Every wait
 * is bounded; dig runs are bounded (+time=2 +tries=1, killed after 10 s); children are killed in `finally`.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type * as net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { findOnPath, missingPeer, peerSkip } from '../helpers/peers.ts';
import { netnsUnavailable, openNetns, type Netns } from '../helpers/netns.ts';
import { createTokenCli, killAll, startCli, until } from '../unit/api/processes.ts';

const digBin = findOnPath('dig');
const noNetns = netnsUnavailable();
const required = process.env.REFRACT_REQUIRE_NETNS === '1';
const skipReason =
  noNetns !== undefined && !required
    ? `no network namespace here: ${noNetns} (REFRACT_REQUIRE_NETNS=1 makes this a failure)`
    : peerSkip('dig', 'dnsutils', digBin);

const HOST = '127.0.0.1';
const V4_POOL = '127.0.10.0/24';
const V6_POOL = 'fd00:10::/64';
const [API_PORT, DNS_PORT, ECHO_PORT, BANNER_PORT] = [8080, 53, 7000, 7001];
const BANNER = 'v6 origin\r\n';

/** The records of `type` that dig, inside the namespace, gets for `name` (through the CNAME), in order. */
function dig(ns: Netns, name: string, type: 'A' | 'AAAA'): Promise<string[]> {
  if (digBin === undefined) throw missingPeer('dig', 'dnsutils');
  const [cmd, ...pre] = ns.prefix as [string, ...string[]];
  return new Promise((resolve, reject) => {
    execFile(cmd, [...pre, digBin, `@${HOST}`, '-p', String(DNS_PORT), '+time=2', '+tries=1', '+noall', '+answer', name, type], { encoding: 'utf8', timeout: 10_000 }, (err, stdout) => {
      if (err !== null) return reject(err);
      resolve(
        stdout
          .split('\n')
          .map((l) => l.split(/\s+/))
          .filter((f) => f[3] === type)
          .map((f) => f[4]!),
      );
    });
  });
}

/** A connection inside the namespace with what it has received so far; `said(text)` waits (≤ 5 s) for it. */
async function open(ns: Netns, host: string, port: number): Promise<{ s: net.Socket; rx: () => string; said(text: string): Promise<string> }> {
  const s = await ns.connect(host, port);
  let rx = '';
  s.setEncoding('utf8').on('data', (d: string) => (rx += d));
  s.resume();
  s.on('error', () => undefined);
  return {
    s,
    rx: () => rx,
    said: (text) => until(`"${text}" from ${host}:${port}`, 5_000, () => (rx.includes(text) ? rx : undefined)),
  };
}

/** The errno of a connection to host:port inside the namespace, or 'connected'. */
async function connectResult(ns: Netns, host: string, port: number): Promise<string> {
  try {
    (await ns.connect(host, port)).destroy();
    return 'connected';
  } catch (e) {
    return (e as { code?: string }).code ?? 'error';
  }
}

after(() => killAll());

describe('IPv6 edge-IP pools on real sockets, in a network namespace (refract serve, dig, rotate)', { skip: skipReason }, () => {
  it('AAAA from the IPv6 pool reaches the origin; an ipv6-only app has no A; rotation moves the AAAA, the old address refuses, an open connection flows', { timeout: 180_000 }, async () => {
    if (noNetns !== undefined) throw new Error(`REFRACT_REQUIRE_NETNS=1 but ${noNetns}`);
    const ns = await openNetns([`ip -6 route add local ${V6_POOL} dev lo`, 'echo 1 > /proc/sys/net/ipv6/ip_nonlocal_bind']);
    const dir = mkdtempSync(join(tmpdir(), 'refract-netns-'));
    const file = join(dir, 'refract.yaml');
    const app = (name: string, originPort: number, edgeIps?: Record<string, unknown>) => ({
      protocol: 'tcp/22',
      dns: { type: 'CNAME', name },
      ...(edgeIps === undefined ? {} : { edge_ips: edgeIps }),
      origin_direct: [`tcp://${HOST}:${originPort}`],
    });
    writeFileSync(
      file,
      YAML.stringify({
        node: { id: 'netns', data_dir: 'data' },
        edge: { addresses: [HOST], drain_timeout_ms: 30_000, pools: { ipv4: [V4_POOL], ipv6: [V6_POOL] } },
        log: { level: 'warn' },
        api: { listen: `${HOST}:${API_PORT}` },
        zones: [{ name: 'example.com' }],
        dns: { listen: `${HOST}:${DNS_PORT}` },
        origins: [
          { name: 'echo', listen: `tcp://${HOST}:${ECHO_PORT}`, behaviour: 'echo' },
          { name: 'banner', listen: `tcp://${HOST}:${BANNER_PORT}`, behaviour: 'banner', banner: BANNER },
        ],
        apps: [app('ssh.example.com', ECHO_PORT), app('v6.example.com', BANNER_PORT, { type: 'dynamic', connectivity: 'ipv6' })],
      }),
    );
    const token = await createTokenCli(file, ['--name', 'netns']);
    const serve = startCli(['serve', '--config', file, '--no-watch', '--access-log', 'off'], { prefix: ns.prefix });
    const conns: net.Socket[] = [];
    try {
      await until('refract serve to start in the namespace', 30_000, () => {
        if (serve.child.exitCode !== null) throw new Error(`refract serve exited (${serve.child.exitCode})\n${serve.stderr}`);
        return serve.stderr.includes('refract: serving') && serve.stderr.includes('DNS server on') && serve.stderr.includes('management API on') ? true : undefined;
      });
      // Each app on its own addresses; the ipv6-only app on its IPv6 address alone.
      assert.match(serve.stderr, /\(ssh\.example\.com\) tcp\/22 on 127\.0\.10\.1,fd00:10::1 →/);
      assert.match(serve.stderr, /\(v6\.example\.com\) tcp\/22 on fd00:10::2 →/);

      assert.deepEqual(await dig(ns, 'ssh.example.com', 'AAAA'), ['fd00:10::1']);
      assert.deepEqual(await dig(ns, 'ssh.example.com', 'A'), ['127.0.10.1']);
      assert.deepEqual(await dig(ns, 'v6.example.com', 'AAAA'), ['fd00:10::2']);
      assert.deepEqual(await dig(ns, 'v6.example.com', 'A'), [], 'an ipv6-only name has no A record');

      // The answered addresses reach their own app's origin: echo behind ssh, the banner behind v6.
      const established = await open(ns, 'fd00:10::1', 22);
      conns.push(established.s);
      established.s.write('before');
      await established.said('before');
      const v4 = await open(ns, '127.0.10.1', 22);
      conns.push(v4.s);
      v4.s.write('over ipv4');
      await v4.said('over ipv4');
      const v6 = await open(ns, 'fd00:10::2', 22);
      conns.push(v6.s);
      v6.s.write('ping');
      assert.equal(await v6.said('ping'), `${BANNER}ping`);
      v4.s.destroy();
      v6.s.destroy();

      // Rotation through the CLI, which calls the node's API inside the namespace.
      const rotate = startCli(['edge-ips', 'rotate', '--config', file, '--token', token, 'ssh.example.com'], { prefix: ns.prefix });
      assert.equal(await rotate.done, 0, rotate.stderr);
      assert.match(rotate.stdout, /^[0-9a-z-]+\t127\.0\.10\.2,fd00:10::3\n$/);
      assert.deepEqual(await dig(ns, 'ssh.example.com', 'AAAA'), ['fd00:10::3']);
      assert.deepEqual(await dig(ns, 'ssh.example.com', 'A'), ['127.0.10.2']);
      assert.deepEqual(await dig(ns, 'v6.example.com', 'AAAA'), ['fd00:10::2'], 'the other name keeps its address');

      const fresh = await open(ns, 'fd00:10::3', 22);
      conns.push(fresh.s);
      fresh.s.write('rotated');
      await fresh.said('rotated');
      assert.equal(await connectResult(ns, 'fd00:10::1', 22), 'ECONNREFUSED', 'the old IPv6 address takes no new connection');
      assert.equal(await connectResult(ns, '127.0.10.1', 22), 'ECONNREFUSED', 'nor the old IPv4 one');
      established.s.write('after');
      assert.equal(await established.said('after'), 'beforeafter', 'the connection made before the rotation still flows');

      for (const c of conns) c.end();
      serve.child.kill('SIGTERM');
      assert.equal(await serve.done, 0, serve.stderr);
    } finally {
      for (const c of conns) c.destroy();
      serve.child.kill('SIGKILL');
      await serve.done;
      await ns.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
