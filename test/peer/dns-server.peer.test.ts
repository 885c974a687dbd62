/**
 * Real client: `dig` (BIND 9) against Refract's DNS server on 127.0.0.1 — in this process over real sockets, and as
 * part of `refract serve` (a child process) across a file reload and an API write. dig checks the answer's id and
 * question itself and refuses anything malformed, so a passing query is a well-formed DNS message.
 *
 * Ports: the in-process server binds port 0 (UDP and TCP on the port UDP got); the child's DNS, API and edge ports
 * come from `freePort` (bound on port 0 and released). Each dig run is bounded (+time=2 +tries=1, killed after
 * 10 s); every wait is bounded; the child is killed in `finally`.
 * Needs `dig` on PATH (Debian package `dnsutils`; .ci/run installs it). Without it the suite is skipped, loudly,
 * unless REFRACT_REQUIRE_PEERS=1 (set by .ci/run) makes it fail.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { startDnsServer, type DnsServer } from '../../src/dns/server.ts';
import { dnsViewOf, type DnsView } from '../../src/dns/view.ts';
import { createNodeNetwork } from '../../src/net/node/network.ts';
import { deriveZoneId } from '../../src/model/config.ts';
import { findOnPath, missingPeer, peerSkip } from '../helpers/peers.ts';
import { freePort } from '../unit/api/harness.ts';
import { bigRaw, configOf, fixtureRaw } from '../unit/dns/fixture.ts';

const digBin = findOnPath('dig');
const skipReason = peerSkip('dig', 'dnsutils', digBin);
const HOST = '127.0.0.1';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'refract.js');
const WAIT_MS = 30_000;

function needDig(): string {
  if (digBin === undefined) {
    throw missingPeer('dig', 'dnsutils');
  }
  return digBin;
}

interface Dig {
  readonly code: number;
  readonly out: string;
  readonly status: string | undefined;
  readonly flags: readonly string[];
  /** `name TYPE data` per record (TTL and class dropped), by section. */
  readonly answer: readonly string[];
  readonly authority: readonly string[];
  readonly additional: readonly string[];
  readonly ttls: readonly number[];
}

function section(out: string, title: string): string[] {
  const at = out.indexOf(`;; ${title} SECTION:\n`);
  if (at < 0) return [];
  const lines = out.slice(at).split('\n').slice(1);
  const end = lines.findIndex((l) => l.trim() === '');
  return lines.slice(0, end < 0 ? undefined : end).filter((l) => !l.startsWith(';'));
}

/** Runs dig (asynchronously: the server may run in this process) and parses its answer. */
function dig(port: number, args: readonly string[]): Promise<Dig> {
  const bin = needDig();
  return new Promise((resolve) => {
    execFile(bin, [`@${HOST}`, '-p', String(port), '+time=2', '+tries=1', ...args], { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      const out = stdout + stderr;
      const rec = (l: string): string => {
        const [name, , , type, ...data] = l.split(/\s+/);
        return `${name} ${type} ${data.join(' ')}`;
      };
      const answer = section(out, 'ANSWER');
      resolve({
        code,
        out,
        status: /status: ([A-Z]+)/.exec(out)?.[1],
        flags: (/;; flags: ([a-z ]+);/.exec(out)?.[1] ?? '').trim().split(' '),
        answer: answer.map(rec),
        authority: section(out, 'AUTHORITY').map(rec),
        additional: section(out, 'ADDITIONAL').map(rec),
        ttls: answer.map((l) => Number(l.split(/\s+/)[1])),
      });
    });
  });
}

describe('dig against the DNS server (in-process, real sockets)', { skip: skipReason }, () => {
  let server: DnsServer;
  let view: DnsView;
  let port: number;
  before(async () => {
    needDig();
    view = dnsViewOf(configOf(fixtureRaw()));
    server = await startDnsServer(createNodeNetwork(), { host: HOST, port: 0 }, () => view);
    port = server.address.port;
  });
  after(async () => {
    await server?.close();
  });

  it('A through the CNAME chain, authoritative, TTL from the config', async () => {
    const r = await dig(port, ['game.example.com', 'A']);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.status, 'NOERROR');
    assert.ok(r.flags.includes('aa'), r.out);
    assert.deepEqual(r.answer, ['game.example.com. CNAME game.spectrum.example.com.', 'game.spectrum.example.com. A 127.0.0.1', 'game.spectrum.example.com. A 127.0.0.2']);
    assert.deepEqual(r.ttls, [42, 42, 42]);
  });

  it('AAAA, and a static app answered directly (no CNAME)', async () => {
    assert.deepEqual((await dig(port, ['v6.example.com', 'AAAA'])).answer, ['v6.example.com. CNAME v6.spectrum.example.com.', 'v6.spectrum.example.com. AAAA ::1']);
    assert.deepEqual((await dig(port, ['fixed.example.com', 'A'])).answer, ['fixed.example.com. A 127.0.0.2']);
  });

  it('case-insensitive, question echoed as asked (dig checks the echo itself)', async () => {
    const r = await dig(port, ['FiXeD.ExAmPlE.CoM', 'A']);
    assert.equal(r.status, 'NOERROR', r.out);
    assert.deepEqual(r.answer, ['FiXeD.ExAmPlE.CoM. A 127.0.0.2']);
  });

  it('NXDOMAIN with the SOA in authority; NODATA with the SOA', async () => {
    const nx = await dig(port, ['nope.example.com', 'A']);
    assert.equal(nx.status, 'NXDOMAIN');
    assert.ok(nx.flags.includes('aa'));
    assert.deepEqual(nx.answer, []);
    assert.match(nx.authority[0] ?? '', /^example\.com\. SOA ns\.example\.com\. hostmaster\.example\.com\. \d+ 10000 2400 604800 42$/);
    const nodata = await dig(port, ['fixed.example.com', 'MX']);
    assert.equal(nodata.status, 'NOERROR');
    assert.deepEqual(nodata.answer, []);
    assert.match(nodata.authority[0] ?? '', /^example\.com\. SOA /);
  });

  it('SOA and NS at the apex (NS glue in additional)', async () => {
    const soa = await dig(port, ['example.com', 'SOA']);
    assert.match(soa.answer[0] ?? '', /^example\.com\. SOA ns\.example\.com\. hostmaster\.example\.com\. /);
    const ns = await dig(port, ['example.com', 'NS']);
    assert.deepEqual(ns.answer, ['example.com. NS ns.example.com.']);
    assert.deepEqual(ns.additional, ['ns.example.com. A 127.0.0.1']);
  });

  it('REFUSED outside the zones; PTR REFUSED', async () => {
    const out = await dig(port, ['example.org', 'A']);
    assert.equal(out.status, 'REFUSED');
    assert.ok(!out.flags.includes('aa'));
    assert.equal((await dig(port, ['-x', '127.0.0.1'])).status, 'REFUSED');
  });

  it('+tcp answers the same', async () => {
    const r = await dig(port, ['+tcp', 'game.example.com', 'AAAA']);
    assert.equal(r.status, 'NOERROR', r.out);
    assert.deepEqual(r.answer, ['game.example.com. CNAME game.spectrum.example.com.', 'game.spectrum.example.com. AAAA ::1']);
  });

  it('a large answer is truncated over UDP (tc) and complete over TCP; dig retries over TCP by itself', async () => {
    // big.example.com with 100 addresses, 127.0.0.1-100 (any 127/8 address is local on Linux, though the DNS server
    // binds none of them: it only answers them), on a second server.
    const bigView = dnsViewOf(configOf(bigRaw(100)));
    const bigServer = await startDnsServer(createNodeNetwork(), { host: HOST, port: 0 }, () => bigView);
    try {
      await largeAnswer(bigServer);
    } finally {
      await bigServer.close();
    }
  });
});

async function largeAnswer(server: DnsServer): Promise<void> {
  const port = server.address.port;
  {
    const udp = await dig(port, ['+ignore', '+bufsize=1232', 'big.example.com', 'A']);
    assert.ok(udp.flags.includes('tc'), udp.out);
    assert.deepEqual(udp.answer, []);
    const tcp = await dig(port, ['+tcp', 'big.example.com', 'A']);
    assert.equal(tcp.answer.length, 100);
    assert.ok(!tcp.flags.includes('tc'));
    const retried = await dig(port, ['big.example.com', 'A']);
    assert.match(retried.out, /Truncated, retrying in TCP mode/);
    assert.equal(retried.answer.length, 100);
    assert.equal(server.counters().truncated, 2);
    assert.equal(server.counters().tcpQueries, 2);
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, withinMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Child {
  readonly child: ChildProcess;
  stderr: string;
  stdout: string;
  readonly done: Promise<number | null>;
}

function refract(args: readonly string[]): Child {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const c: Child = { child, stderr: '', stdout: '', done: new Promise((resolve) => child.on('close', (code) => resolve(code))) };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (c.stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (c.stderr += s));
  return c;
}

describe('dig against refract serve (child process)', { skip: skipReason }, () => {
  it('answers follow a file reload and an API create; serve --check binds the DNS port; a taken port is E_LISTEN_* naming the DNS server', { timeout: 180_000 }, async () => {
    needDig();
    const dir = mkdtempSync(join(tmpdir(), 'refract-dns-'));
    const file = join(dir, 'refract.yaml');
    const [dnsPort, apiPort, appPort, apiAppPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const write = (addresses: string[]): void =>
      writeFileSync(
        file,
        YAML.stringify({
          node: { id: 'dns-peer', data_dir: join(dir, 'data') },
          edge: { addresses, drain_timeout_ms: 200 },
          zones: [{ name: 'example.com' }],
          api: { listen: `${HOST}:${apiPort}` },
          dns: { listen: `${HOST}:${dnsPort}`, ttl: 7 },
          apps: [{ id: 'web', protocol: `tcp/${appPort}`, dns: { type: 'CNAME', name: 'web.example.com' }, origin_direct: [`tcp://${HOST}:9`] }],
        }),
      );
    write(['127.0.0.1']);
    let run: Child | undefined;
    try {
      const check = refract(['serve', '--check', '--config', file]);
      assert.equal(await check.done, 0, check.stderr);
      assert.match(check.stdout, new RegExp(`DNS port 127\\.0\\.0\\.1:${dnsPort} \\(udp\\+tcp\\) bound and released`));

      const created = refract(['token', 'create', '--config', file, '--name', 'dns-test']);
      assert.equal(await created.done, 0, created.stderr);
      const token = created.stdout.trim().split('\n').at(-1) ?? '';

      run = refract(['serve', '--config', file]);
      const serving = run;
      await until('the DNS server to start', () => (serving.stderr.includes('refract: DNS server on') ? true : undefined));
      assert.match(serving.stderr, new RegExp(`DNS server on 127\\.0\\.0\\.1:${dnsPort} \\(udp\\+tcp\\), authoritative for example\\.com, ttl 7 s`));
      const first = await dig(dnsPort, ['web.example.com', 'A']);
      assert.deepEqual(first.answer, ['web.example.com. CNAME web.spectrum.example.com.', 'web.spectrum.example.com. A 127.0.0.1']);

      // A second instance cannot take the DNS port: exit 3, E_LISTEN_ADDRESS_IN_USE naming the DNS server.
      const other = join(dir, 'other.yaml');
      writeFileSync(other, YAML.stringify({ node: { data_dir: join(dir, 'other') }, zones: [{ name: 'example.com' }], dns: { listen: `${HOST}:${dnsPort}` } }));
      const second = refract(['serve', '--config', other, '--no-watch']);
      assert.equal(await second.done, 3, second.stderr);
      assert.match(second.stderr, new RegExp(`could not start: E_LISTEN_ADDRESS_IN_USE: 127\\.0\\.0\\.1:${dnsPort} for the DNS server: cannot bind UDP \\(EADDRINUSE\\)`));

      // A file reload (watched file) that adds an edge address: the answer changes.
      write(['127.0.0.1', '127.0.0.2']);
      const after = await until('the answer to change after the reload', async () => {
        const r = await dig(dnsPort, ['web.example.com', 'A']);
        return r.answer.length === 3 ? r : undefined;
      });
      assert.deepEqual(after.answer, ['web.example.com. CNAME web.spectrum.example.com.', 'web.spectrum.example.com. A 127.0.0.1', 'web.spectrum.example.com. A 127.0.0.2']);
      assert.match(serving.stderr, /reloaded/);

      // An API create: the new app's name answers once the create is acknowledged.
      assert.equal((await dig(dnsPort, ['api.example.com', 'A'])).status, 'NXDOMAIN');
      const res = await fetch(`http://${HOST}:${apiPort}/client/v4/zones/${deriveZoneId('example.com')}/spectrum/apps`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ protocol: `tcp/${apiAppPort}`, dns: { type: 'CNAME', name: 'api.example.com' }, origin_direct: [`tcp://${HOST}:9`] }),
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(res.status, 200, await res.text());
      const created2 = await dig(dnsPort, ['api.example.com', 'A']);
      assert.equal(created2.status, 'NOERROR', created2.out);
      assert.equal(created2.answer.length, 3, created2.out);
      assert.match(created2.answer[0] ?? '', /^api\.example\.com\. CNAME [0-9a-f]{32}\.spectrum\.example\.com\.$/);

      serving.child.kill('SIGTERM');
      assert.equal(await serving.done, 0, serving.stderr);
      run = undefined;
      const gone = await dig(dnsPort, ['web.example.com', 'A']);
      assert.notEqual(gone.status, 'NOERROR', 'the DNS server stopped with serve');
    } finally {
      run?.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
