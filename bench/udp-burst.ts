/**
 * UDP bursts of new flows (docs/hardening.md, "Overload and descriptors"): datagram loss at the edge socket when
 * `--rate` new sources per second each send their first datagram. Bounded: `--flows` sources, one datagram each.
 *
 *   node --import tsx bench/udp-burst.ts [--rate 3000] [--flows 6000] [--buffer BYTES] [--cpu-prof DIR]
 *
 * The proxy (an EdgeNode on real sockets, `edge.udp_receive_buffer` = --buffer, default: Refract's) runs in a child
 * process; this process is the echo origin and the clients: `--flows` sockets on 127.0.0.1, bound before the
 * run, sending 64 bytes each, paced per millisecond, then waits until no echo came for 500 ms (at most 50 s). Reported: datagrams sent, echoes received, flows the proxy
 * opened, and the kernel's UDP receive-buffer drops over the run (RcvbufErrors, /proc/net/snmp; host-wide, so run
 * it on a quiet machine).
 */
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

if (process.argv[2] === '--child') {
  const { EdgeNode } = await import('../src/edge/edge-node.ts');
  const { createNodeNetwork } = await import('../src/net/node/network.ts');
  const { validateConfig } = await import('../src/model/config.ts');
  const { pino } = await import('pino');
  const a = JSON.parse(process.argv[3]!) as { originPort: number; edgePort: number; buffer?: number };
  const r = validateConfig({
    edge: { addresses: ['127.0.0.1'], ...(a.buffer ? { udp_receive_buffer: a.buffer } : {}) },
    apps: [{ id: 'u', dns: { type: 'CNAME', name: 'u.example.test' }, protocol: `udp/${a.edgePort}`, origin_direct: [`udp://127.0.0.1:${a.originPort}`] }],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const edge = new EdgeNode({ net: createNodeNetwork(), log: pino({ level: 'warn' }, process.stderr) }, r.config);
  await edge.apply(r.config);
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'stats') {
      process.stdout.write(JSON.stringify({ flows: edge.udp.stats.udp_flows_total, cpu: process.cpuUsage() }) + '\n');
      await edge.shutdown(10);
      process.exit(0);
    }
  }
}

function rcvbufErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf('RcvbufErrors')]);
}

const { values: o } = parseArgs({
  options: { rate: { type: 'string', default: '3000' }, flows: { type: 'string', default: '6000' }, buffer: { type: 'string' }, 'cpu-prof': { type: 'string' }, 'edge-port': { type: 'string', default: '7851' } },
});
const rate = Number(o.rate);
const flows = Number(o.flows);

const origin = dgram.createSocket('udp4');
origin.on('message', (m, r) => origin.send(m, r.port, r.address));
await new Promise<void>((r) => origin.bind(0, '127.0.0.1', r));
origin.setRecvBufferSize(8 * 1024 * 1024);

const edgePort = Number(o['edge-port']);
const childArgs = JSON.stringify({ originPort: origin.address().port, edgePort, ...(o.buffer ? { buffer: Number(o.buffer) } : {}) });
const execArgv = ['--import', 'tsx', ...(o['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', o['cpu-prof']] : [])];
const child = spawn(process.execPath, [...execArgv, new URL(import.meta.url).pathname, '--child', childArgs], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
await lines.next();

const socks: dgram.Socket[] = [];
for (let i = 0; i < flows; i++) {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  socks.push(s);
}
let echoes = 0;
for (const s of socks) s.on('message', () => echoes++);
const payload = Buffer.alloc(64, 0x75);
const drops0 = rcvbufErrors();
const t0 = performance.now();
let sent = 0;
while (sent < flows) {
  const due = Math.min(flows, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
  while (sent < due) socks[sent++]!.send(payload, edgePort, '127.0.0.1');
  await sleep(1);
}
const sendMs = performance.now() - t0;
// Wait for the proxy to work through its queue: until no echo arrived for 500 ms (at most 10 s).
for (let last = -1, i = 0; i < 100 && echoes !== last; i++) {
  last = echoes;
  await sleep(500);
}
const drops = rcvbufErrors() - drops0;
child.stdin!.write('stats\n');
const stats = JSON.parse(String((await lines.next()).value)) as { flows: number; cpu: { user: number; system: number } };
const wallS = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    rate,
    flows,
    buffer: o.buffer ?? 'default (4 MiB)',
    sendMs: Math.round(sendMs),
    sent,
    echoes,
    lostPct: +((100 * (sent - echoes)) / sent).toFixed(2),
    proxyFlows: stats.flows,
    rcvbufErrors: drops,
    proxyCpuPct: +((100 * (stats.cpu.user + stats.cpu.system)) / 1e6 / wallS).toFixed(1),
  }),
);
for (const s of socks) s.close();
origin.close();
