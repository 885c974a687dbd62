/**
 * Micro-benchmark: the proxy's CPU per datagram on Refract's UDP path (docs/benchmarks.md, "UDP"), before/after.
 *
 *   node --import tsx bench/micro/udp-path.ts [--baseline DIR] [--flows 1,100] [--count 40000] [--rounds 5]
 *        [--inflight N] [--cpu-prof DIR] [--cachegrind] [--port 8920] [--wrap 'strace -c -f -o FILE']
 *
 * The proxy (an EdgeNode on real sockets with one UDP app, `udp_idle_timeout_ms` 600000 as in `npm run bench`) runs
 * in a child process pinned to CPU 0; this process is the UDP echo origin and the clients, pinned to CPU 1 (when
 * `taskset` exists). `--flows F`: F client sockets (F flows through the proxy), each with `--inflight` datagrams in
 * flight (closed loop; default: 32 in all, at least 1 per socket), `--count` round trips in all after a warm-up of a fifth as many. Reported per run: round
 * trips/s and the proxy's CPU (process.cpuUsage, user + system) per datagram through the proxy (a round trip is two:
 * client → origin and back). With `--baseline DIR` (a checkout of another commit) the two proxies alternate,
 * A then B then B then A…, `--rounds` times each, and the report gives medians and every round.
 *
 * `--naive` adds a bare dgram relay (no checks, no counters): what Node's public dgram API costs per datagram.
 *
 * `--cachegrind`: runs each proxy under `valgrind --tool=cachegrind` three times: once to fill tsx's compile cache
 * (discarded), then with `--count` and 2 × `--count` round trips (after the same warm-up), and reports (I refs of the second − I refs of the first) ÷ (count × 2): instructions
 * per datagram, repeatable on a busy machine. Bounded: every run stops at 120 s (600 s under valgrind).
 */
import dgram from 'node:dgram';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

if (process.argv[2] === '--naive') {
  // Node's floor with its public API: the least a dgram relay does per datagram. One upstream socket per client
  // (address, port), plain `send(data, port, address)` both ways, no checks, no counters.
  const a = JSON.parse(process.argv[3]!) as { originPort: number; edgePort: number };
  const edge = dgram.createSocket('udp4');
  const ups = new Map<string, dgram.Socket>();
  edge.on('message', (data, rinfo) => {
    const key = `${rinfo.address}|${rinfo.port}`;
    let up = ups.get(key);
    if (!up) {
      const u = dgram.createSocket('udp4');
      const { address, port } = rinfo;
      u.on('message', (d) => edge.send(d, port, address));
      u.bind(0, '0.0.0.0');
      ups.set(key, (up = u));
    }
    up.send(data, a.originPort, '127.0.0.1');
  });
  await new Promise<void>((r) => edge.bind(a.edgePort, '127.0.0.1', r));
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'cpu') process.stdout.write(JSON.stringify(process.cpuUsage()) + '\n');
    if (line === 'exit') process.exit(0);
  }
}

if (process.argv[2] === '--child') {
  const a = JSON.parse(process.argv[3]!) as { root: string; originPort: number; edgePort: number; profDir?: string };
  const { EdgeNode } = await import(`${a.root}/src/edge/edge-node.ts`);
  const { createNodeNetwork } = await import(`${a.root}/src/net/node/network.ts`);
  const { validateConfig } = await import(`${a.root}/src/model/config.ts`);
  const { pino } = await import('pino');
  const r = validateConfig({
    edge: { addresses: ['127.0.0.1'], udp_idle_timeout_ms: 600_000 },
    apps: [{ id: 'u', dns: { type: 'CNAME', name: 'u.example.test' }, protocol: `udp/${a.edgePort}`, origin_direct: [`udp://127.0.0.1:${a.originPort}`] }],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const edge = new EdgeNode({ net: createNodeNetwork(), log: pino({ level: 'warn' }, process.stderr) }, r.config);
  await edge.apply(r.config);
  process.stdout.write('ready\n');
  // --cpu-prof: a profile of the measured window only (between the two 'cpu' asks), through the inspector.
  const { Session } = await import('node:inspector/promises');
  const session = a.profDir ? new Session() : undefined;
  let profiling = false;
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'cpu' && session) {
      if (!profiling) {
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
      } else {
        const { profile } = await session.post('Profiler.stop');
        const { writeFileSync } = await import('node:fs');
        writeFileSync(`${a.profDir}/udp-path.${process.pid}.cpuprofile`, JSON.stringify(profile));
      }
      profiling = !profiling;
    }
    if (line === 'cpu') process.stdout.write(JSON.stringify(process.cpuUsage()) + '\n');
    if (line === 'exit') {
      await edge.shutdown(10);
      process.exit(0);
    }
  }
}

const { values: o } = parseArgs({
  options: {
    baseline: { type: 'string' },
    flows: { type: 'string', default: '1,100' },
    count: { type: 'string', default: '40000' },
    rounds: { type: 'string', default: '5' },
    inflight: { type: 'string' },
    'cpu-prof': { type: 'string' },
    cachegrind: { type: 'boolean', default: false },
    port: { type: 'string', default: '8920' },
    // A command line put before the proxy's node (split on spaces), e.g. 'strace -c -f -o FILE' or 'perf record -g -o FILE'.
    wrap: { type: 'string' },
    // Also run the bare dgram relay (`--naive` above): Node's floor.
    naive: { type: 'boolean', default: false },
  },
});
const count = Number(o.count);
const rounds = Number(o.rounds);
/** Datagrams in flight per client socket: default 32 in all (as `npm run bench`), at least 1 per socket. */
const inflightFor = (flows: number): number => (o.inflight ? Number(o.inflight) : Math.max(1, Math.ceil(32 / flows)));
const flowsList = o.flows.split(',').map(Number);
const here = resolve(new URL('../..', import.meta.url).pathname);
const roots: Array<{ name: string; root: string; port: number }> = [{ name: 'after', root: here, port: Number(o.port) }];
if (o.baseline) roots.push({ name: 'before', root: resolve(o.baseline), port: Number(o.port) + 1 });
if (o.naive) roots.push({ name: 'naive', root: 'naive', port: Number(o.port) + 2 });
const hasTaskset = spawnSync('taskset', ['-p', String(process.pid)]).status === 0;
if (hasTaskset) spawnSync('taskset', ['-pc', '1', String(process.pid)]);

const origin = dgram.createSocket('udp4');
origin.on('message', (m, r) => origin.send(m, r.port, r.address));
await new Promise<void>((r) => origin.bind(0, '127.0.0.1', r));
origin.setRecvBufferSize(4 * 1024 * 1024);

interface Proxy {
  child: ChildProcess;
  ask(cmd: string): Promise<string>;
  stderr: string[];
}

async function startProxy(root: string, edgePort: number, valgrindOut?: string): Promise<Proxy> {
  const arg = JSON.stringify({ root, originPort: origin.address().port, edgePort, ...(o['cpu-prof'] ? { profDir: resolve(o['cpu-prof']) } : {}) });
  const nodeArgs = ['--import', 'tsx', new URL(import.meta.url).pathname, root === 'naive' ? '--naive' : '--child', arg];
  let cmd = process.execPath;
  let args = nodeArgs;
  if (valgrindOut) {
    cmd = 'valgrind';
    args = ['--tool=cachegrind', '--cache-sim=no', `--cachegrind-out-file=${valgrindOut}`, process.execPath, ...nodeArgs];
  }
  if (o.wrap) {
    const w = o.wrap.split(' ').filter((x) => x !== '');
    args = [...w.slice(1), cmd, ...args];
    cmd = w[0]!;
  }
  if (hasTaskset) {
    args = ['-c', '0', cmd, ...args];
    cmd = 'taskset';
  }
  const child = spawn(cmd, args, { cwd: root === 'naive' ? here : root, stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(String(d)));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.value !== 'ready') throw new Error(`proxy did not start: ${stderr.join('')}`);
  return {
    child,
    stderr,
    ask: async (c: string) => {
      child.stdin!.write(c + '\n');
      return String((await lines.next()).value);
    },
  };
}

async function stopProxy(p: Proxy): Promise<void> {
  const done = new Promise<void>((r) => p.child.once('exit', () => r()));
  p.child.stdin!.write('exit\n');
  await done;
}

/** Closed-loop round trips through `port` on the given sockets; resolves with the elapsed ms. */
function load(socks: dgram.Socket[], port: number, n: number, maxMs: number): Promise<{ ms: number; done: number }> {
  const inflight = inflightFor(socks.length);
  const payload = Buffer.alloc(64, 0x75);
  return new Promise((res) => {
    let sent = 0;
    let done = 0;
    const t0 = performance.now();
    const finish = (): void => {
      clearTimeout(timer);
      for (const s of socks) s.removeAllListeners('message');
      res({ ms: performance.now() - t0, done });
    };
    const timer = setTimeout(finish, maxMs);
    for (const s of socks) {
      s.on('message', () => {
        done++;
        if (sent < n) {
          sent++;
          s.send(payload, port, '127.0.0.1');
        } else if (done >= n) finish();
      });
    }
    for (let k = 0; k < inflight; k++) {
      for (const s of socks) {
        if (sent < n) {
          sent++;
          s.send(payload, port, '127.0.0.1');
        }
      }
    }
  });
}

async function clients(flows: number): Promise<dgram.Socket[]> {
  const socks: dgram.Socket[] = [];
  for (let i = 0; i < flows; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    socks.push(s);
  }
  return socks;
}

const cpuUs = (j: string): number => {
  const c = JSON.parse(j) as { user: number; system: number };
  return c.user + c.system;
};

async function timedRun(root: string, port: number, flows: number): Promise<{ usPerDgram: number; rtPerSec: number; done: number }> {
  const p = await startProxy(root, port);
  const socks = await clients(flows);
  await load(socks, port, Math.ceil(count / 5), 60_000);
  const c0 = cpuUs(await p.ask('cpu'));
  const r = await load(socks, port, count, 120_000);
  const c1 = cpuUs(await p.ask('cpu'));
  for (const s of socks) s.close();
  await stopProxy(p);
  return { usPerDgram: (c1 - c0) / (r.done * 2), rtPerSec: (r.done * 1000) / r.ms, done: r.done };
}

async function irefs(root: string, port: number, flows: number, n: number): Promise<number> {
  const out = `/tmp/udp-path-cg.${process.pid}.${port}`;
  const p = await startProxy(root, port, out);
  const socks = await clients(flows);
  await load(socks, port, 2_000, 600_000);
  const r = await load(socks, port, n, 600_000);
  if (r.done < n) throw new Error(`only ${r.done}/${n} round trips under valgrind`);
  for (const s of socks) s.close();
  await stopProxy(p);
  const m = /I\s+refs:\s+([\d,]+)/.exec(p.stderr.join(''));
  if (!m) throw new Error(`no I refs in: ${p.stderr.join('').slice(-500)}`);
  return Number(m[1]!.replace(/,/g, ''));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

for (const flows of flowsList) {
  if (o.cachegrind) {
    for (const { name, root, port } of roots) {
      await irefs(root, port, flows, count); // discarded: fills tsx's compile cache after a change
      const i1 = await irefs(root, port, flows, count);
      const i2 = await irefs(root, port, flows, 2 * count);
      console.log(JSON.stringify({ flows, proxy: name, irefs: [i1, i2], instrPerDgram: Math.round((i2 - i1) / (count * 2)) }));
    }
    continue;
  }
  const res = new Map<string, Array<{ usPerDgram: number; rtPerSec: number }>>(roots.map((r) => [r.name, []]));
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? roots : [...roots].reverse();
    for (const { name, root, port } of order) {
      const r = await timedRun(root, port, flows);
      res.get(name)!.push(r);
      console.log(JSON.stringify({ flows, round: i + 1, proxy: name, usPerDgram: +r.usPerDgram.toFixed(2), rtPerSec: Math.round(r.rtPerSec), done: r.done }));
    }
  }
  const summary: Record<string, unknown> = { flows, load: (await import('node:os')).loadavg().map((x) => +x.toFixed(1)) };
  for (const [name, rs] of res) {
    summary[`${name}UsPerDgram`] = +median(rs.map((r) => r.usPerDgram)).toFixed(2);
    summary[`${name}RtPerSec`] = Math.round(median(rs.map((r) => r.rtPerSec)));
  }
  const a = res.get('after')!;
  for (const other of ['before', 'naive']) {
    const b = res.get(other);
    if (b) summary[`ratioAfter_${other}`] = +median(a.map((x, i) => x.usPerDgram / b[i]!.usPerDgram)).toFixed(3);
  }
  console.log(JSON.stringify(summary));
}
origin.close();
