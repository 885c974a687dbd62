/**
 * `refract serve --workers 2` on real sockets (docs/deploy.md, "Every core: --workers"): connections spread over the
 * workers, a reload reaches every worker (and a reload one part of which fails changes none), a killed worker is
 * replaced while the other's held connections keep flowing, one UDP flow stays on one worker, SIGTERM drains all.
 * Which process holds a socket is read from `ss -p`. Ports: this file's fixed block, 8870-8889. With --trace, each worker's
 * trace file replays on its own.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { killAll, runCli, until } from '../api/processes.ts';
import { parseWorkers, restartDelayMs } from '../../../src/cli/workers.ts';
import { holders, logged, refused, startServing } from './workers-helpers.ts';
import { parseTrace } from '../../../src/streams/trace.ts';

const HOST = '127.0.0.1';
const ORIGIN = 8870;
const A = 8871;
const B = 8872;
const C = 8873;
const BUSY = 8874;
const UDP_ORIGIN = 8875;
const U = 8876;
const TRACED = 8877;

after(killAll);

function config(apps: ReadonlyArray<{ id: string; port: number; udp?: boolean }>): string {
  return YAML.stringify({
    node: { id: 'workers-test' },
    edge: { addresses: [HOST], drain_timeout_ms: 1_500 },
    origins: [
      { name: 'echo', listen: `tcp://${HOST}:${ORIGIN}`, behaviour: 'echo' },
      { name: 'uecho', listen: `udp://${HOST}:${UDP_ORIGIN}`, behaviour: 'echo' },
    ],
    apps: apps.map((a) =>
      a.udp === true
        ? { id: a.id, protocol: `udp/${a.port}`, dns: { name: `${a.id}.example.test` }, origin_direct: [`udp://${HOST}:${UDP_ORIGIN}`] }
        : { id: a.id, protocol: `tcp/${a.port}`, dns: { name: `${a.id}.example.test` }, origin_direct: [`tcp://${HOST}:${ORIGIN}`] },
    ),
  });
}

/** A held connection: `echo(text)` writes and waits for the echo. */
interface Held {
  readonly sock: net.Socket;
  echo(text: string): Promise<void>;
}

async function hold(port: number): Promise<Held> {
  const sock = net.connect({ host: HOST, port });
  sock.setEncoding('utf8');
  sock.on('error', () => {});
  let rx = '';
  sock.on('data', (d: string) => (rx += d));
  await new Promise<void>((res, rej) => {
    sock.once('connect', () => res());
    sock.once('error', rej);
  });
  const h: Held = {
    sock,
    echo: async (text) => {
      rx = '';
      sock.write(text);
      await until(`echo of ${text} on ${port}`, 10_000, () => (rx === text ? true : sock.destroyed ? Promise.reject(new Error('closed')) : undefined));
    },
  };
  await h.echo('hello');
  return h;
}

void describe('--workers values', () => {
  it('accepts 1..256 and auto, and refuses anything else with E_WORKERS_INVALID', async () => {
    assert.equal(parseWorkers('2'), 2);
    assert.equal(parseWorkers('auto', 6), 6);
    assert.equal(parseWorkers('256'), 256);
    for (const bad of ['0', '257', '-1', '1.5', 'two', '']) assert.equal(parseWorkers(bad), undefined, bad);
    const r = await runCli(['serve', '--workers', 'many', 'x.yaml']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^refract serve: E_WORKERS_INVALID: --workers is a whole number from 1 to 256 or auto, not 'many'/);
  });

  it('restart backoff doubles from 100 ms up to 10 s', () => {
    assert.deepEqual([1, 2, 3, 8, 20].map(restartDelayMs), [100, 200, 400, 10_000, 10_000]);
  });

  it('refuses node.user with more than one worker (E_WORKERS_UNSUPPORTED)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-workers-'));
    const file = join(dir, 'c.yaml');
    const c = YAML.parse(config([{ id: 'a', port: A }])) as { node: Record<string, unknown> };
    c.node['user'] = 'nobody';
    writeFileSync(file, YAML.stringify(c));
    const r = await runCli(['serve', '--workers', '2', file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /E_WORKERS_UNSUPPORTED: --workers 2 does not support node\.user yet/);
  });
});

void describe('refract serve --workers 2 on real sockets', { timeout: 240_000 }, () => {
  it('spreads connections, reloads every worker all-or-nothing, replaces a killed worker, drains on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-workers-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, config([{ id: 'a', port: A }]));
    const p = await startServing(['serve', '--config', file, '--workers', '2', '--access-log', 'json', '--no-watch']);
    const workerPids = (): Set<number> => new Set(logged(p, 'worker.started').map((o) => o['pid'] as number));
    const first = workerPids();
    assert.equal(first.size, 2);
    const primary = p.child.pid!;

    // Spread: held connections land on both workers (at most 3 batches of 30).
    const held: Held[] = [];
    let owners = new Set<number>();
    for (let batch = 0; batch < 3 && owners.size < 2; batch++) {
      held.push(...(await Promise.all(Array.from({ length: 30 }, () => hold(A)))));
      owners = holders(A, 'established');
    }
    assert.equal(owners.size, 2, `connections on ${[...owners].join(',')}`);
    for (const pid of owners) assert.ok(first.has(pid), `a connection is held by ${pid}, not a worker`);

    // A reload reaches every worker: b's port is listened on in each worker process.
    writeFileSync(file, config([{ id: 'a', port: A }, { id: 'b', port: B }]));
    process.kill(primary, 'SIGHUP');
    await until('the reload', 30_000, () => (p.stderr.includes('reloaded') ? true : undefined));
    for (const pid of first) assert.ok(holders(B, 'listening').has(pid), `worker ${pid} listens on ${B}`);
    await (await hold(B)).echo('b works');

    // All-or-nothing: c's port is free but d's is taken; the reload is rejected and no worker listens on c.
    const busy = net.createServer().listen({ host: HOST, port: BUSY, exclusive: true });
    await new Promise((r) => busy.once('listening', r));
    writeFileSync(file, config([{ id: 'a', port: A }, { id: 'b', port: B }, { id: 'c', port: C }, { id: 'd', port: BUSY }]));
    process.kill(primary, 'SIGHUP');
    await until('the rejection', 30_000, () => (logged(p, 'config.rejected').length > 0 ? true : undefined));
    assert.equal(holders(C, 'listening').size, 0);
    assert.ok(await refused(C));
    busy.close();

    // A killed worker is replaced; the other worker's held connections keep flowing meanwhile.
    const [victim, survivor] = [...first];
    const ownerOf = (h: Held): number => {
      const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( sport = :${A} and dport = :${h.sock.localPort} )`], { encoding: 'utf8' });
      return Number(/pid=(\d+)/.exec(out)?.[1]);
    };
    const owner = new Map(held.map((h) => [h, ownerOf(h)] as const));
    const victims = held.filter((h) => owner.get(h) === victim);
    const others = held.filter((h) => owner.get(h) === survivor);
    assert.ok(victims.length > 0 && others.length > 0);
    assert.equal(victims.length + others.length, held.length);
    process.kill(victim!, 'SIGKILL');
    await until("the killed worker's connections to close", 10_000, () => (victims.every((h) => h.sock.destroyed || h.sock.readableEnded) ? true : undefined));
    // The survivor's connections flow while the replacement starts, and after.
    for (const h of others) await h.echo('meanwhile');
    await until('the replacement', 60_000, () => (logged(p, 'worker.restarted').length > 0 ? true : undefined));
    const replacement = logged(p, 'worker.restarted')[0]!['pid'] as number;
    assert.ok(!first.has(replacement));
    // The replacement runs the running configuration (a and b).
    assert.ok(holders(A, 'listening').has(replacement));
    assert.ok(holders(B, 'listening').has(replacement));
    for (const h of others) await h.echo('still here');
    await (await hold(A)).echo('after the restart');

    // SIGTERM drains every worker: a held connection works during the drain, then everything exits 0.
    const last = others[0]!;
    process.kill(primary, 'SIGTERM');
    await until('draining', 10_000, () => (logged(p, 'serve.draining').length > 0 ? true : undefined));
    await last.echo('during the drain');
    for (const h of held) h.sock.end();
    assert.equal(await p.done, 0);
    for (const pid of [survivor!, replacement]) assert.throws(() => process.kill(pid, 0), `worker ${pid} is gone`);
    // Each worker writes its own access-log lines: every line is whole (JSON.parse would throw on two lines
    // mixed) and its connection id names its worker.
    const lines = p.stdout.trim().split('\n').map((l) => JSON.parse(l) as { connection_id?: string });
    assert.ok(lines.length > 0);
    for (const l of lines) assert.match(l.connection_id ?? '', /^[0-9]+\.[0-9]+$/);
  });

  it('a SIGTERM while a killed worker is being replaced drains the replacement too (none serves on)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-workers-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, config([{ id: 'a', port: A }]));
    const p = await startServing(['serve', '--config', file, '--workers', '2', '--access-log', 'off', '--no-watch']);
    const [victim] = logged(p, 'worker.started').map((o) => o['pid'] as number);
    process.kill(victim!, 'SIGKILL');
    // The replacement is forked 100 ms after the exit (logged then) and takes far longer to load and initialise:
    // the SIGTERM lands while it starts.
    await until('the replacement to be forked', 10_000, () => (logged(p, 'worker.started').length === 3 ? true : undefined));
    const pids = logged(p, 'worker.started').map((o) => o['pid'] as number);
    process.kill(p.child.pid!, 'SIGTERM');
    assert.equal(await p.done, 0);
    // Before the fix the replacement came up after the drain began, served on, and was SIGKILLed at the drain
    // deadline without a word. Now: the survivor drained and said so; the replacement either drained after its
    // init (it says so too) or heard the drain before it (the supervisor says it stopped while starting). Which
    // one depends on where the SIGTERM lands in its start; neither is a failure, and none serves on.
    for (const slot of [1, 2]) {
      const said = logged(p, 'worker.stopped').some((o) => o['worker'] === slot) || logged(p, 'worker.start_cancelled').some((o) => o['slot'] === slot);
      assert.ok(said, `worker ${slot} drained or stopped while starting\n${p.stderr}`);
    }
    assert.equal(logged(p, 'worker.start_failed').length, 0, p.stderr);
    assert.equal(logged(p, 'worker.restarted').length, 0, 'a replacement that starts during the drain is not put to serving');
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), `worker ${pid} is gone`);
  });

  it('--trace: each worker process writes its own trace file, and each one replays as recorded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-workers-'));
    const file = join(dir, 'c.yaml');
    const trace = join(dir, 't.jsonl');
    writeFileSync(file, config([{ id: 'a', port: TRACED }]));
    const p = await startServing(['serve', '--config', file, '--workers', '2', '--access-log', 'off', '--no-watch', '--trace', trace]);
    const pids = new Map(logged(p, 'worker.started').map((o) => [o['pid'] as number, o['slot'] as number] as const));
    const COUNT = 24;
    for (let i = 0; i < COUNT; i++) {
      const h = await hold(TRACED);
      await h.echo(`traced ${i}`);
      h.sock.end();
      await new Promise<void>((r) => h.sock.once('close', () => r()));
    }
    process.kill(p.child.pid!, 'SIGTERM');
    assert.equal(await p.done, 0, p.stderr);
    assert.ok(!existsSync(trace), 'no file at the bare name: each worker writes FILE.W.PID');
    const files = readdirSync(dir).filter((f) => f.startsWith('t.jsonl.'));
    assert.ok(files.length >= 1 && files.length <= 2, files.join(', '));
    let accepts = 0;
    for (const f of files) {
      const m = /^t\.jsonl\.([12])\.([0-9]+)$/.exec(f);
      assert.ok(m !== null, f);
      assert.equal(pids.get(Number(m[2])), Number(m[1]), `${f}: written by worker ${m[1]}'s process`);
      const { records, errors } = parseTrace(readFileSync(join(dir, f), 'utf8'));
      assert.deepEqual(errors, []);
      const mine = records.filter((r) => r.event === 'accept');
      // One engine per file: its connection numbers are its own, each accepted once.
      assert.equal(new Set(mine.map((r) => r.conn)).size, mine.length);
      accepts += mine.length;
      const r = await runCli(['replay', join(dir, f), '--config', file], 120_000);
      assert.equal(r.code, 0, `${f}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`${mine.length} connections? replayed`));
    }
    assert.equal(accepts, COUNT, 'every connection is in exactly one worker\'s trace');
  });

  it('keeps every datagram of one UDP flow on one worker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-workers-'));
    const file = join(dir, 'c.yaml');
    const events = join(dir, 'events.jsonl');
    writeFileSync(file, config([{ id: 'u', port: U, udp: true }]));
    const p = await startServing(['serve', '--config', file, '--workers', '2', '--events', events, '--no-watch']);
    const FLOWS = 12;
    const PER = 5;
    const clients = await Promise.all(
      Array.from({ length: FLOWS }, async () => {
        const s = dgram.createSocket('udp4');
        let got = 0;
        s.on('message', () => got++);
        await new Promise<void>((r) => s.bind(0, HOST, () => r()));
        return { s, got: () => got };
      }),
    );
    for (let i = 0; i < PER; i++) {
      for (const c of clients) c.s.send(`d${i}`, U, HOST);
      await until(`echoes of round ${i}`, 10_000, () => (clients.every((c) => c.got() >= i + 1) ? true : undefined));
    }
    const ports = clients.map((c) => c.s.address().port);
    process.kill(p.child.pid!, 'SIGTERM');
    assert.equal(await p.done, 0);
    for (const c of clients) c.s.close();
    const closes = readFileSync(events, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { Event: string; ClientPort: number; ClientPackets?: number; ConnectionID: string })
      .filter((e) => e.Event !== 'connect');
    for (const port of ports) {
      const mine = closes.filter((e) => e.ClientPort === port);
      assert.equal(mine.length, 1, `flow from ${port}: ${JSON.stringify(mine)}`);
      assert.equal(mine[0]!.ClientPackets, PER);
      assert.match(mine[0]!.ConnectionID, /^[12]\.u\d+$/);
    }
  });
});
