/**
 * Instructions per TLS handshake at the edge, counted by valgrind (docs/benchmarks.md, "TLS handshakes against bare
 * node:tls, after the SNI fix"): Refract's `flexible` termination against bare node:tls piped to the same origin, a
 * figure a busy machine does not move, where `npm run bench:tls`'s CPU rows scatter by ±20 % between rounds.
 *
 *   node --import tsx bench/micro/tls-instructions.ts [--proxies node-tls,refract] [--count 1200] [--tls 1.3|1.2]
 *                                                     [--warm N] [--port 8905] [--keep DIR]
 *
 * Each proxy runs under `valgrind --tool=cachegrind --cache-sim=no` twice, serving `--count` and then 3 × `--count`
 * handshakes (after the same warm-up: `--warm`, default a fifth of `--count`), so instructions per handshake = (I refs of the second run
 * − I refs of the first) ÷ (2 × `--count`): start-up, warm-up and shutdown cancel, the crypto is included. Each
 * handshake (4 at a time, ECDSA P-256 certificate, SNI sent) carries one request to the origin, an in-process server
 * that answers it and closes; the client reads the answer and closes. Proxies: `node-tls` (`tls.createServer` with the
 * same certificate, versions and cipher list, piped to the origin: the floor for a Node proxy), `refract` (this
 * checkout's build, dist/cli.js, made first when stale; one `tls: flexible` app). `--keep DIR` keeps valgrind's files
 * (`cg.PROXY.N`) for `cg_annotate`. Counts exclude kernel work. Bounded: every run is killed after 900 s.
 */
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../proxies.ts';
import { ensureBuild, refractCli } from '../refract-cli.ts';
import { assertValgrind, instructions, perUnitTable } from './valgrind-count.ts';
import { issueCert } from '../../src/net/node/x509.ts';
import { EDGE_CIPHERS } from '../../src/core/tls-ciphers.ts';

const KNOWN = ['node-tls', 'refract'] as const;
type Proxy = (typeof KNOWN)[number];
const { values: argv } = parseArgs({
  options: {
    proxies: { type: 'string', default: 'node-tls,refract' },
    count: { type: 'string', default: '1200' },
    // Handshakes before the counted ones in both runs (they cancel); more of them let V8 finish tiering up first.
    warm: { type: 'string' },
    tls: { type: 'string', default: '1.3' },
    port: { type: 'string', default: '8905' },
    keep: { type: 'string' },
  },
});
const proxies = argv.proxies.split(',').map((s) => s.trim()) as Proxy[];
for (const p of proxies) if (!KNOWN.includes(p)) throw new Error(`unknown proxy ${p}; choose from ${KNOWN.join(', ')}`);
if (argv.tls !== '1.3' && argv.tls !== '1.2') throw new Error(`--tls is 1.3 or 1.2, not ${argv.tls}`);
const VERSION: tls.SecureVersion = argv.tls === '1.3' ? 'TLSv1.3' : 'TLSv1.2';
const COUNT = Number(argv.count);
const WARM = argv.warm === undefined ? Math.ceil(COUNT / 5) : Number(argv.warm);
if (!Number.isInteger(WARM) || WARM < 0) throw new Error(`--warm must be a whole number, not ${argv.warm}`);
const PORT = Number(argv.port);
const HOST = '127.0.0.1';
const NAME = 'bench-tls.example.test';
const RUN_LIMIT_MS = 900_000;

const origin = net.createServer({ allowHalfOpen: true }, (c) => {
  c.on('error', () => {});
  c.once('data', () => c.end('HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello'));
});
origin.listen(0, HOST);
await new Promise((r) => origin.once('listening', r));
const originPort = (origin.address() as net.AddressInfo).port;
const dir = mkdtempSync(join(tmpdir(), 'refract-tls-instr-'));
const pair = await issueCert({ names: [NAME], keyType: 'ecdsa' });
const certFile = join(dir, 'edge.pem');
const keyFile = join(dir, 'edge-key.pem');
writeFileSync(certFile, pair.cert);
writeFileSync(keyFile, pair.key, { mode: 0o600 });

/** Bare node:tls with the edge's cipher list and versions, piped to the origin (as bench/tls.ts's node-tls). */
const NODE_TLS = `
import tls from 'node:tls'; import net from 'node:net'; import fs from 'node:fs';
const [port, originPort, cert, key, ciphers] = process.argv.slice(1);
const pipe = (a, b) => { a.pipe(b).pipe(a); a.on('error', () => b.destroy()); b.on('error', () => a.destroy()); };
tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), minVersion: 'TLSv1.1', ciphers, honorCipherOrder: true, allowHalfOpen: true, noDelay: true },
  (s) => pipe(s, net.connect({ port: Number(originPort), host: '127.0.0.1', allowHalfOpen: true, noDelay: true }))).listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;

function command(p: Proxy): string[] {
  if (p === 'node-tls') {
    const ciphers = [...EDGE_CIPHERS.ciphersuites, ...EDGE_CIPHERS.ciphers, '@SECLEVEL=0'].join(':');
    return ['--input-type=module', '-e', NODE_TLS, String(PORT), String(originPort), certFile, keyFile, ciphers];
  }
  const cfg = join(dir, 'refract.yaml');
  writeFileSync(
    cfg,
    [
      `edge: { addresses: [${HOST}], tls: { data_dir: ${join(dir, 'data')} } }`,
      'log: { level: warn }',
      'apps:',
      `  - protocol: tcp/${PORT}`,
      `    dns: { type: CNAME, name: ${NAME} }`,
      '    tls: flexible',
      `    edge_tls: { cert: ${certFile}, key: ${keyFile} }`,
      `    origin_direct: ["tcp://${HOST}:${originPort}"]`,
      '',
    ].join('\n'),
  );
  return [...refractCli(REPO_ROOT, 'build'), 'serve', '--config', cfg, '--no-watch', '--access-log', 'off'];
}

/** One handshake, one request, its answer, the close. */
function once(): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port: PORT, host: HOST, servername: NAME, rejectUnauthorized: false, minVersion: VERSION, maxVersion: VERSION });
    let got = 0;
    s.setTimeout(60_000, () => s.destroy(new Error('timeout')));
    s.on('secureConnect', () => s.write('GET / HTTP/1.0\r\n\r\n'));
    s.on('data', (d: Buffer) => (got += d.length));
    s.on('close', () => (got > 0 ? resolve() : reject(new Error('no answer through the proxy'))));
    s.on('error', reject);
  });
}

/** Instructions of one proxy process serving the warm-up and `n` handshakes. */
function count(p: Proxy, n: number): Promise<number> {
  return instructions({ name: p, args: command(p), host: HOST, port: PORT, warm: WARM, count: n, concurrency: 4, once, keep: argv.keep, scratch: dir, limitMs: RUN_LIMIT_MS });
}

if (proxies.includes('refract')) ensureBuild(REPO_ROOT);
assertValgrind();
const per = await perUnitTable(proxies, count, COUNT, 3 * COUNT, `TLS ${argv.tls} handshake`);
const r = per.get('refract');
const n = per.get('node-tls');
if (r !== undefined && n !== undefined) process.stdout.write(`node-tls÷refract: ×${(n / r).toFixed(2)}\n`);
origin.close();
rmSync(dir, { recursive: true, force: true });
