/**
 * `npm run soak`: slow and hostile clients (bench/soak/slow.ts), then configuration changes under load by file
 * reload and by the management API (bench/soak/reload.ts), each against `refract serve` children on loopback, with
 * the load in its own process. Prints one table per part and exits 1 when any check failed. Bounded: every count
 * is fixed by a flag, every wait has a deadline, and a hard timeout (`--max-minutes`, default 45) kills the run.
 *
 *   --slow N            slow clients (default 5000), split over five kinds
 *   --timeout-ms MS     the PROXY-header, TLS-handshake and idle timeouts under test (default 20000)
 *   --reloads N         file reloads (default 1000)
 *   --api-changes N     API creates + deletes (default 1000)
 *   --streams N         checksummed streams during the changes (default 500)
 *   --only slow|file|api   one part only
 *
 * With the privilege (root or CAP_SYS_NICE) the children and the runner run at nice −10, as `npm run bench` does.
 * Figures from a run are in docs/hardening.md, "Soak".
 */
import { parseArgs } from 'node:util';
import { availableParallelism, loadavg } from 'node:os';
import { runSlowSoak, type SlowResult } from './slow.ts';
import { runReloadSoak, type ReloadResult } from './reload.ts';
import { killAll, restorePriority } from './procs.ts';

const { values } = parseArgs({
  options: {
    slow: { type: 'string', default: '5000' },
    'timeout-ms': { type: 'string', default: '20000' },
    reloads: { type: 'string', default: '1000' },
    'api-changes': { type: 'string', default: '1000' },
    streams: { type: 'string', default: '500' },
    only: { type: 'string' },
    'max-minutes': { type: 'string', default: '45' },
  },
});
const num = (k: keyof typeof values): number => {
  const n = Number(values[k]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} takes a positive integer`);
  return n;
};

const hard = setTimeout(() => {
  process.stderr.write(`soak: still running after --max-minutes ${values['max-minutes']}; killed\n`);
  killAll();
  process.exit(2);
}, num('max-minutes') * 60_000);
hard.unref();
process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});

const say = (s: string): void => {
  process.stderr.write(`soak: ${s}\n`);
};
const ms = (x: number): string => (Number.isNaN(x) ? '–' : x < 10 ? x.toFixed(1) : String(Math.round(x)));

function slowTable(r: SlowResult, timeoutMs: number): string {
  const out = [
    `### Slow and hostile clients (timeouts ${timeoutMs} ms; ramp ${ms(r.rampMs)} ms; ${r.openDuringWindow} slow clients open through the ${ms(r.windowMs)} ms window; ${r.listenOverflows} accept-queue overflows in the namespace)`,
    '',
    '| slow client | conns | closed by its timeout, with its code | code | lifetime p50 / max (ms) |',
    '|---|---:|---:|---|---:|',
    ...r.slowRows.map((x) => `| ${x.kind} | ${x.conns} | ${x.byTimeout} | ${x.code} | ${ms(x.lifetimeP50Ms)} / ${ms(x.lifetimeMaxMs)} |`),
    '',
    '| garbage | conns | closed with its code | code | lifetime p99 (ms) |',
    '|---|---:|---:|---|---:|',
    ...r.garbageRows.map((x) => `| ${x.kind} | ${x.conns} | ${x.withCode} | ${x.code} | ${ms(x.lifetimeP99Ms)} |`),
    '',
    '| legitimate client | slow clients open | exchanges | echoed, 200 | connect → first byte p50 / p99 / max (ms) |',
    '|---|---:|---:|---:|---:|',
    ...r.legitRows.map((x) => `| ${x.kind} | ${x.slowOpen ? r.openDuringWindow : 0} | ${x.exchanges} | ${x.ok} | ${ms(x.p50)} / ${ms(x.p99)} / ${ms(x.max)} |`),
    '',
    `CPU of the refract children over the ramp and the window: ${r.cpuShare.map((x) => `${Math.round(x * 100)} %`).join(' (proxy), ')} (tls, plain) of one core.`,
    '',
    '| process | peak open descriptors | RLIMIT_NOFILE | RSS at the window end (MiB) |',
    '|---|---:|---:|---:|',
    ...r.fds.map((x) => `| ${x.process} | ${x.peak} | ${x.limit} | ${x.rssMiB} |`),
  ];
  return out.join('\n');
}

function reloadTable(rs: readonly ReloadResult[]): string {
  return [
    '### Configuration changes under load',
    '',
    '| changes | applied | streams | dropped | MB sent | bytes lost | bytes wrong | trigger → applied p50 / p99 (ms) | wall (s) | peak fds | RSS (MiB) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rs.map((r) => `| ${r.mode === 'file' ? 'file reloads (SIGHUP)' : 'API creates + deletes'} | ${r.applied} / ${r.changes} | ${r.streams} | ${r.dropped} | ${(r.bytesSent / 1e6).toFixed(1)} | ${r.bytesLost} | ${r.bytesCorrupt} | ${ms(r.applyP50Ms)} / ${ms(r.applyP99Ms)} | ${r.durationS.toFixed(0)} | ${r.peakFds} | ${r.rssMiB} |`),
  ].join('\n');
}

async function main(): Promise<number> {
  const only = values.only;
  if (only !== undefined && !['slow', 'file', 'api'].includes(only)) throw new Error('--only is slow, file or api');
  say(`${availableParallelism()} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const failures: string[] = [];
  const tables: string[] = [];
  if (only === undefined || only === 'slow') {
    const timeoutMs = num('timeout-ms');
    const r = await runSlowSoak({ slow: num('slow'), timeoutMs, dribbleEveryMs: 1_000, garbagePerKind: 100, legitConcurrency: 4, legitMax: 100_000, perBatch: 100, batchGapMs: 100, baselineMs: 5_000, priority: true, log: say });
    tables.push(slowTable(r, timeoutMs));
    failures.push(...r.failures.map((f) => `slow: ${f}`));
    process.stdout.write(`${tables.at(-1)}\n\n`);
  }
  const reloads: ReloadResult[] = [];
  for (const mode of ['file', 'api'] as const) {
    if (only !== undefined && only !== mode) continue;
    const r = await runReloadSoak({ mode, changes: num(mode === 'file' ? 'reloads' : 'api-changes'), streams: num('streams'), chunkBytes: 2_048, everyMs: 250, probeEvery: 100, priority: true, log: say });
    reloads.push(r);
    failures.push(...r.failures.map((f) => `${mode}: ${f}`));
  }
  if (reloads.length > 0) process.stdout.write(`${reloadTable(reloads)}\n\n`);
  say(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (failures.length > 0) {
    process.stdout.write(`FAILED (${failures.length}):\n${failures.map((f) => `- ${f}`).join('\n')}\n`);
    return 1;
  }
  process.stdout.write('every check passed\n');
  return 0;
}

main().then(
  (code) => {
    killAll();
    restorePriority();
    process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`soak: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    killAll();
    restorePriority();
    process.exit(2);
  },
);
