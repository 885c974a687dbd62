/**
 * `refract serve --workers N` (docs/deploy.md, "Every core: --workers"): a supervisor (the cluster primary) and N
 * worker processes.
 *
 * The supervisor owns what there is one of: the config file (read, validated, watched, SIGHUP), the edge-IP
 * allocation and its state file, the builtin origins, the DNS server, the access log and event sinks (fed by the
 * workers' events), the PID file, and with `api:` and `metrics:` the management API and the metrics listener over a
 * view of the workers' edge (src/cli/workers-edge.ts). It binds no edge port. Each worker runs an EdgeNode with every
 * edge listener:
 * - TCP: with `reusePort` (Node 22.12+, 23.1+) each worker has its own listening socket and the kernel hashes each
 *   connection to one; on older runtimes the workers share the supervisor's listening socket (cluster, SCHED_NONE)
 *   and the kernel hands each accept to one of them;
 * - UDP: with `reusePort` each worker binds the port too and the kernel hashes each datagram's 4-tuple, so one flow
 *   stays on one worker; without it only worker 1 binds UDP ports (a shared UDP socket would hand one flow's
 *   datagrams to any worker), logged once at start.
 * A change (start, reload) is applied in two phases: every worker prepares it (certificates, new ports bound), then,
 * only if all succeeded, every worker commits it; one failure aborts it in all (the new ports released), and the
 * running configuration stays everywhere. A worker that exits is started again (with the running configuration)
 * after a backoff; the others keep serving. SIGTERM/SIGINT drain every worker, then the supervisor exits.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { dirname, resolve as resolvePath } from 'node:path';
import { concatMap, debounceTime, filter, map, type Observable } from 'rxjs';
import type { Logger } from 'pino';
import { EdgeNode, type ApplyResult, type PreparedApply } from '../edge/edge-node.ts';
import { startBuiltinOrigins, type RunningOrigins } from '../edge/builtin-origins.ts';
import { createLogger, logOutputStats } from '../log.ts';
import type { OutputStats } from '../model/engine-view.ts';
import { ApiWriteError } from '../api/config-source.ts';
import type { MetricsServer } from './metrics-server.ts';
import { RefractError, isRefractError, type ErrorCode } from '../model/errors.ts';
import type { RefractConfig } from '../model/types.ts';
import type { ConfigResult } from '../model/config.ts';
import { allocateEdgeIps, EMPTY_EDGE_IPS, poolsConfigured, type EdgeIpState } from '../model/edge-ips.ts';
import { createNodeCertSource } from '../net/node/cert-store.ts';
import { reloadTriggers } from './reload-triggers.ts';
import { loadGeo, type LoadedGeo } from '../net/node/geo-loader.ts';
import { createNodeNetwork, nodeClock, reusePortSupported } from '../net/node/network.ts';
import { startDnsServer, type DnsServer } from '../dns/server.ts';
import { dnsViewOf, type DnsView } from '../dns/view.ts';
import { EventLog, type SpectrumEvent } from '../streams/events.ts';
import { logDropEpisode, openEventSinks, outputsOf } from './event-sinks.ts';
import { openTraceFile, type TraceFile } from './trace-file.ts';
import { BoundedLineWriter, STDOUT_HOLD_MS } from './bounded-output.ts';
import { DEFAULTS } from '../model/defaults.ts';
import { CertWatch } from './cert-watch.ts';
import { accessLogLine, AppNames, defaultAccessLog, type AccessLogFormat } from './access-log.ts';
import { edgeIpFilePath, readEdgeIpFile, writeEdgeIpFile } from './edge-ip-file.ts';
import type { ConfigFns, ServeOptions } from './serve-types.ts';
import { relativeCertSource } from './cert-paths.ts';
import { SNAPSHOT_EVERY_MS, snapshotOf, WorkersEdge, type WorkerSnapshot } from './workers-edge.ts';
import { hostPort, listenApi, openApi, type RunningApi } from './serve-api.ts';

/** Linux's PIPE_BUF: a write to a pipe of at most this many bytes is never interleaved with other writers'. */
const PIPE_BUF = 4096;

/** The most `--workers` accepts. */
export const WORKERS_MAX = 256;

/** `--workers` as a count: a whole number from 1 to WORKERS_MAX, or `auto` (the cores); undefined when invalid. */
export function parseWorkers(value: string, cores: number = availableParallelism()): number | undefined {
  if (value === 'auto') return Math.max(1, Math.min(WORKERS_MAX, cores));
  if (!/^[0-9]+$/.test(value)) return undefined;
  const n = Number(value);
  return n >= 1 && n <= WORKERS_MAX ? n : undefined;
}

/** What a configuration uses that `--workers` above 1 does not support yet (E_WORKERS_UNSUPPORTED), or []. */
export function workersUnsupported(config: RefractConfig): string[] {
  const out: string[] = [];
  if (config.node.user !== undefined || config.node.group !== undefined) out.push('node.user');
  return out;
}

/**
 * The trace file of one worker process with `--trace FILE`: `FILE.W.PID` (worker number, process id). Each process
 * numbers its own connections and has its own clock, so each file is one engine's recording, which `refract replay`
 * takes on its own; a restarted worker starts a new file.
 */
export function traceFileOf(base: string, worker: number, pid: number): string {
  return `${base}.${worker}.${pid}`;
}

/** Whether this process is a worker started by `serveWorkers` (it then runs `runWorker`, not the supervisor). */
export function isServeWorker(): boolean {
  return cluster.isWorker && process.env['REFRACT_WORKER'] !== undefined;
}

// ── messages ──────────────────────────────────────────────────────────────────────────────────────────────────
type ToWorker =
  | { t: 'init'; file: string; config: RefractConfig; logLevel: string; forward: boolean; snapshots: boolean; accessLog: AccessLogFormat; trace: string | undefined }
  | { t: 'prepare'; id: number; config: RefractConfig }
  | { t: 'commit'; id: number }
  | { t: 'abort'; id: number }
  | { t: 'drain'; deadlineMs: number }
  | { t: 'abort-all' };

interface WireError {
  code?: string;
  message: string;
  details?: Record<string, unknown>;
}

type FromWorker =
  | { t: 'hello' }
  | { t: 'ready' }
  | { t: 'prepared'; id: number }
  | { t: 'failed'; id: number; error: WireError }
  | { t: 'committed'; id: number; result: ApplyResult }
  | { t: 'aborted'; id: number }
  | { t: 'events'; events: SpectrumEvent[] }
  | { t: 'snapshot'; snapshot: WorkerSnapshot };

function wireError(e: unknown): WireError {
  if (isRefractError(e)) return { code: e.code, message: e.message, ...(e.details ? { details: { ...e.details } } : {}) };
  return { message: (e as Error)?.message ?? String(e) };
}

function fromWire(e: WireError): Error {
  return e.code !== undefined ? new RefractError(e.code as ErrorCode, { message: e.message, ...(e.details ? { details: e.details } : {}) }) : new Error(e.message);
}

// ── the worker ────────────────────────────────────────────────────────────────────────────────────────────────

/** A worker process: waits for `init`, then applies what the supervisor sends until told to drain. */
export function runWorker(): Promise<number> {
  const index = Number(process.env['REFRACT_WORKER']);
  const share = process.env['REFRACT_WORKER_SHARE'] === 'reusePort' ? 'reusePort' : 'cluster';
  const udp = process.env['REFRACT_WORKER_UDP'] !== '0';
  const send = (m: FromWorker): void => {
    if (process.connected) process.send!(m);
  };
  return new Promise<number>((resolveExit) => {
    let edge: EdgeNode | undefined;
    let log: Logger | undefined;
    let geo: LoadedGeo | undefined;
    let draining = false;
    const prepared = new Map<number, PreparedApply>();
    let buffer: SpectrumEvent[] = [];
    // With api: or metrics:, the supervisor's view of the edge (src/cli/workers-edge.ts) is fed from these.
    let snapshots: (() => void) | undefined;
    let snapshotTimer: ReturnType<typeof setInterval> | undefined;
    let flushTimer: ReturnType<typeof setTimeout> | undefined;
    const flush = (): void => {
      if (flushTimer !== undefined) clearTimeout(flushTimer);
      flushTimer = undefined;
      if (buffer.length === 0) return;
      send({ t: 'events', events: buffer });
      buffer = [];
    };
    // --trace: this process's own file (traceFileOf), closed (and flushed) before the process exits.
    let traceOut: TraceFile | undefined;
    const certReload = (): void => {
      edge?.reloadCertificates().then(
        () => log?.info({ event: 'tls.certificates_reloaded' }, 'certificates reloaded'),
        (err: unknown) => log?.error({ event: 'tls.certificates_rejected', err }, 'certificate reload failed; the running certificates stay'),
      );
    };
    const certWatch = new CertWatch(certReload);
    const watchCerts = (): void => certWatch.update(edge?.tlsWatchedFiles() ?? []);
    const drain = (deadlineMs: number): void => {
      if (draining) return;
      draining = true;
      if (snapshotTimer !== undefined) clearInterval(snapshotTimer);
      certWatch.close();
      for (const p of prepared.values()) void p.abort();
      prepared.clear();
      const done = (edge?.shutdown(deadlineMs) ?? Promise.resolve()).catch((err: unknown) => log?.error({ err }, 'shutdown failed'));
      void done.then(async () => {
        if (flushTimer !== undefined) clearTimeout(flushTimer);
        geo?.close();
        await traceOut?.close();
        log?.info({ event: 'worker.stopped' }, 'worker drained');
        // The last events reach the supervisor before this process exits.
        if (buffer.length > 0 && process.connected) process.send!({ t: 'events', events: buffer } satisfies FromWorker, undefined, {}, () => resolveExit(0));
        else resolveExit(0);
        buffer = [];
      });
    };
    // The supervisor decides: a terminal's Ctrl-C reaches the whole process group, and the drain comes from it.
    process.on('SIGINT', () => undefined);
    process.on('SIGHUP', () => undefined);
    process.on('SIGTERM', () => drain(edge?.config?.node.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs));
    // The supervisor is gone (killed): drain and exit rather than serve a configuration nobody manages.
    process.on('disconnect', () => drain(edge?.config?.node.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs));
    process.on('message', (m: ToWorker) => {
      switch (m.t) {
        case 'init': {
          const config = m.config;
          log = createLogger({ level: m.logLevel, node: config.node.id, maxBufferBytes: config.log.maxBufferBytes }).child({ worker: index });
          const l = log;
          const net = createNodeNetwork({ dnsServers: config.node.dnsServers, log: l.child({ component: 'descriptors' }), share });
          const baseDir = dirname(resolvePath(m.file));
          const certs = relativeCertSource(baseDir, createNodeCertSource({ dataDir: resolvePath(baseDir, config.node.tls.dataDir), log: l.child({ component: 'certs' }) }));
          const start = async (): Promise<void> => {
            if (config.geo.country.length > 0 || config.geo.asn.length > 0) {
              geo = await loadGeo({ country: config.geo.country, asn: config.geo.asn }, { watch: true, onEvent: (e) => (e.event === 'geo.loaded' ? l.info({ geo: e }, 'geolocation data') : l.warn({ geo: e }, 'geolocation data')) });
            }
            const e = (edge = new EdgeNode({ net, log: l, certs, udp, ...(geo ? { geo } : {}) }, config));
            if (m.trace !== undefined) traceOut = openTraceFile(e.trace.records$, traceFileOf(m.trace, index, process.pid), l);
            // The access log: each worker writes its own lines to stdout (inherited from the supervisor), so the
            // events need not travel to the supervisor for it. One write per 10 ms batch (STDOUT_HOLD_MS), at most PIPE_BUF
            // bytes (a pipe keeps such writes whole: lines of different workers never interleave).
            let out: BoundedLineWriter | undefined;
            if (m.accessLog !== 'off') {
              const w = (out = new BoundedLineWriter('stdout', process.stdout, config.log.maxBufferBytes ?? DEFAULTS.logMaxBufferBytes, logDropEpisode(l), { coalesce: true, maxWriteBytes: PIPE_BUF, holdMs: STDOUT_HOLD_MS }));
              const format = m.accessLog;
              const idPrefix = `${index}.`;
              const names = new AppNames();
              e.events.closings$.subscribe((ev) => {
                const line = accessLogLine(ev, names.get(e.config?.apps, ev.Application), format, idPrefix);
                if (line !== undefined) w.write(line + '\n');
              });
            }
            if (m.snapshots) {
              snapshots = () => send({ t: 'snapshot', snapshot: snapshotOf(e, net.descriptors.stats(), out) });
              snapshotTimer = setInterval(snapshots, SNAPSHOT_EVERY_MS).unref();
            }
            if (m.forward) {
              edge.events.events$.subscribe((e) => {
                buffer.push(e);
                if (buffer.length >= 256) flush();
                else flushTimer ??= setTimeout(flush, 20);
              });
            }
          };
          start().then(
            () => send({ t: 'ready' }),
            (err: unknown) => {
              send({ t: 'failed', id: 0, error: wireError(err) });
              resolveExit(3);
            },
          );
          return;
        }
        case 'prepare':
          if (edge === undefined || draining) {
            send({ t: 'failed', id: m.id, error: { code: 'E_INTERNAL', message: 'the worker is not serving' } });
            return;
          }
          edge.prepare(m.config).then(
            (p) => {
              prepared.set(m.id, p);
              send({ t: 'prepared', id: m.id });
            },
            (err: unknown) => send({ t: 'failed', id: m.id, error: wireError(err) }),
          );
          return;
        case 'commit': {
          const p = prepared.get(m.id);
          prepared.delete(m.id);
          if (p === undefined) {
            send({ t: 'failed', id: m.id, error: { code: 'E_INTERNAL', message: `no prepared change ${m.id}` } });
            return;
          }
          p.commit().then(
            (result) => {
              watchCerts();
              // The supervisor's view has this change's listeners when the commit is answered (same channel, in order).
              snapshots?.();
              send({ t: 'committed', id: m.id, result });
            },
            (err: unknown) => send({ t: 'failed', id: m.id, error: wireError(err) }),
          );
          return;
        }
        case 'abort': {
          const p = prepared.get(m.id);
          prepared.delete(m.id);
          void (p?.abort() ?? Promise.resolve()).then(() => send({ t: 'aborted', id: m.id }));
          return;
        }
        case 'drain':
          drain(m.deadlineMs);
          return;
        case 'abort-all':
          edge?.tcp.abortAll();
          return;
      }
    });
    // Messages that arrive before a listener exists are lost: the supervisor sends `init` on this.
    send({ t: 'hello' });
  });
}

// ── the supervisor ────────────────────────────────────────────────────────────────────────────────────────────

interface Pending {
  readonly expect: FromWorker['t'];
  resolve(m: FromWorker): void;
  reject(e: Error): void;
}

/** One worker slot (1..N): the process now in it, and its restart state. */
class Slot {
  readonly index: number;
  worker: Worker | undefined;
  /** Serving: initialised and the running configuration committed; only these take part in a change. */
  serving = false;
  readonly pending = new Map<number, Pending>();
  startedAt = 0;
  crashes = 0;
  restart: ReturnType<typeof setTimeout> | undefined;
  constructor(index: number) {
    this.index = index;
  }
}

/** The restart delay after `crashes` exits in a row: 100 ms doubling, at most 10 s. */
export function restartDelayMs(crashes: number): number {
  return Math.min(10_000, 100 * 2 ** Math.max(0, crashes - 1));
}

/** A worker that lived this long before exiting starts its backoff over. */
const STABLE_MS = 10_000;

export interface WorkersContext {
  readonly file: string;
  readonly opts: ServeOptions;
  readonly fns: ConfigFns;
  readonly config: RefractConfig;
  readonly log: Logger;
  readonly logLevel: string;
  readonly count: number;
  readonly exitCleanup: () => void;
  /** serve.ts' helpers, passed in (serve.ts imports this module). */
  readonly restartOnlyChanges: (running: RefractConfig, next: RefractConfig) => string[];
  readonly appLabel: (config: RefractConfig, id: string) => string;
  readonly describeStartError: (e: unknown, config: RefractConfig) => string;
  readonly oneAtATime: <T, R>(source: Observable<T>, run: (v: T) => Promise<R>) => Observable<R>;
  /** The config file's parsed object: with `api:`, the ConfigSource merges it with the API's stored objects. */
  readonly fileRaw: unknown;
  /** The file's `fileIdentity` from before that read (the watch's starting point, see reload-triggers.ts). */
  readonly baseline: string;
}

/** The supervisor: resolves with the exit code (0 after a drain, 3 when the workers could not start). */
export async function serveWorkers(ctx: WorkersContext): Promise<number> {
  const { file, opts, fns, log, count } = ctx;
  let config = ctx.config;
  // Read at start, as one process reads them.
  const apiAt = config.api;
  const metricsAt = config.metrics;
  const reusePort = reusePortSupported();
  const net = createNodeNetwork({ dnsServers: config.node.dnsServers, log: log.child({ component: 'descriptors' }) });

  // Edge IPs: allocated here once per change, so every worker binds the same addresses. With api:, the ConfigSource
  // allocates them and keeps them in the API's database instead of the state file.
  const edgeIpFile = edgeIpFilePath(file, config.node.dataDir ?? '.refract');
  let edgeIpsWritten = readEdgeIpFile(edgeIpFile, (err) => log.warn({ event: 'edge_ips.state_unreadable', file: edgeIpFile, err }, 'edge-IP state file unreadable; names take fresh addresses'));
  let running: RefractConfig | undefined;
  const allocate = (c: RefractConfig): RefractConfig => {
    if (c.edgeIps !== undefined || !poolsConfigured(c)) return c;
    const r = allocateEdgeIps(c, running?.edgeIps ?? edgeIpsWritten, Date.now());
    if (!r.ok) {
      const first = r.issues[0]!;
      throw new RefractError(first.code, { message: r.issues.map((i) => `${i.message} (at ${i.pointer || '/'})`).join('; '), details: { issues: r.issues } });
    }
    for (const m of r.moved) log.warn({ event: 'edge_ips.moved', ...m }, `${m.name}: ${m.from} is in no pool any more; now ${m.to ?? 'none'}`);
    return r.config;
  };
  const saveEdgeIps = (): void => {
    if (apiAt !== undefined) return;
    const state: EdgeIpState = running?.edgeIps ?? EMPTY_EDGE_IPS;
    if (JSON.stringify(state) === JSON.stringify(edgeIpsWritten)) return;
    try {
      writeEdgeIpFile(edgeIpFile, state);
      edgeIpsWritten = state;
    } catch (err) {
      log.error({ event: 'edge_ips.state_write_failed', file: edgeIpFile, err }, 'could not write the edge-IP state file; a restart may move addresses');
    }
  };

  // The workers' events, merged: the access log, the sinks, the API and the metrics read them here.
  const events = new EventLog();
  // The workers' edge as one view (src/cli/workers-edge.ts) for the API and the metrics; `applyToWorkers` below.
  let applyToWorkers: (next: RefractConfig) => Promise<ApplyResult> = () => Promise.reject(new Error('not started'));
  const view = new WorkersEdge({ events, apply: (c) => applyToWorkers(c), config: () => running });
  const stdout = new BoundedLineWriter('stdout', process.stdout, config.log.maxBufferBytes ?? DEFAULTS.logMaxBufferBytes, logDropEpisode(log), { coalesce: true });
  const metrics = metricsAt === undefined ? undefined : new (await import('../api/metrics.ts')).EdgeMetrics(view, { maxApps: metricsAt.maxApps });
  metrics?.registerDescriptors(() => view.descriptors());
  metrics?.registerOutput('stdout', () => view.stdout(stdout));
  metrics?.registerOutput('stderr', () => logOutputStats(log) ?? { written: 0, dropped: 0, bufferedBytes: 0 });
  // The access log is written by the workers themselves (runWorker): no event travels here for it.
  const accessLog = opts.accessLog ?? defaultAccessLog(process.stdout.isTTY === true, opts.events ?? config.log.events);
  const sinks = openEventSinks(
    events,
    { target: opts.events ?? config.log.events, rotate: config.log.eventsRotate, http: config.log.eventsHttp, maxBufferBytes: config.log.maxBufferBytes },
    { clock: nodeClock, log, metrics, stdout },
  );
  const outputs = (): Record<string, OutputStats> => outputsOf(view.stdout(stdout), log, sinks, stdout);
  const snapshots = apiAt !== undefined || metricsAt !== undefined;

  // ── workers ──
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ exec: process.argv[1]!, args: process.argv.slice(2), serialization: 'advanced' });
  const slots = Array.from({ length: count }, (_, i) => new Slot(i + 1));
  let nextId = 1;
  let stopping = false;
  const request = (slot: Slot, m: ToWorker & { id: number }, expect: FromWorker['t']): Promise<FromWorker> =>
    new Promise((resolve, reject) => {
      const w = slot.worker;
      if (w === undefined || !w.isConnected()) {
        reject(new Error(`worker ${slot.index} is not running`));
        return;
      }
      slot.pending.set(m.id, { expect, resolve, reject });
      w.send(m);
    });
  const failAll = (slot: Slot, why: string): void => {
    for (const p of slot.pending.values()) p.reject(new Error(why));
    slot.pending.clear();
  };
  /** Forks the slot's process and waits for it to be ready (initialised with `init`). */
  const fork = (slot: Slot): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const w = cluster.fork({
        REFRACT_WORKER: String(slot.index),
        REFRACT_WORKER_SHARE: reusePort ? 'reusePort' : 'cluster',
        REFRACT_WORKER_UDP: reusePort || slot.index === 1 ? '1' : '0',
      });
      slot.worker = w;
      slot.serving = false;
      slot.startedAt = Date.now();
      slot.pending.set(0, { expect: 'ready', resolve: () => resolve(), reject });
      w.on('message', (m: FromWorker) => {
        if (m.t === 'events') {
          for (const e of m.events) {
            // Each worker numbers its own connections: the id says which worker's it is.
            e.ConnectionID = `${slot.index}.${e.ConnectionID}`;
            events.emit(e);
          }
          return;
        }
        if (m.t === 'snapshot') {
          if (slot.worker === w) view.update(slot.index, m.snapshot);
          return;
        }
        if (m.t === 'hello') return;
        const id = m.t === 'ready' ? 0 : m.id;
        const p = slot.pending.get(id);
        if (p === undefined) return;
        slot.pending.delete(id);
        if (m.t === 'failed') p.reject(fromWire(m.error));
        else p.resolve(m);
      });
      w.on('message', (m: FromWorker) => {
        if (m.t !== 'hello') return;
        // Events are forwarded when something reads them here (access log, sinks, API, metrics).
        w.send({ t: 'init', file, config: running ?? config, logLevel: ctx.logLevel, forward: events.observed, snapshots, accessLog, trace: opts.trace === undefined ? undefined : resolvePath(opts.trace) } satisfies ToWorker);
      });
      w.on('exit', (code, signal) => {
        if (slot.worker !== w) return;
        slot.worker = undefined;
        slot.serving = false;
        view.exited(slot.index);
        failAll(slot, `worker ${slot.index} exited (${signal ?? code})`);
        if (stopping) return;
        const lived = Date.now() - slot.startedAt;
        slot.crashes = lived >= STABLE_MS ? 1 : slot.crashes + 1;
        const delay = restartDelayMs(slot.crashes);
        log.error({ event: 'worker.exited', slot: slot.index, pid: w.process.pid, code, signal, restartInMs: delay }, `worker ${slot.index} exited; restarting it in ${delay} ms`);
        slot.restart = setTimeout(() => {
          slot.restart = undefined;
          void serial(() => restartSlot(slot));
        }, delay);
      });
      log.info({ event: 'worker.started', slot: slot.index, pid: w.process.pid, share: reusePort ? 'reusePort' : 'cluster', udp: reusePort || slot.index === 1 }, `worker ${slot.index} started (pid ${w.process.pid})`);
    });

  /** Two phases over `targets`: all prepare, then all commit; any failure aborts all. Workers that exit meanwhile drop out. */
  const transaction = async (targets: readonly Slot[], next: RefractConfig): Promise<ApplyResult | undefined> => {
    const id = nextId++;
    const prep = await Promise.allSettled(targets.map((s) => request(s, { t: 'prepare', id, config: next }, 'prepared')));
    const live = targets.filter((s, i) => prep[i]!.status === 'fulfilled' || s.worker !== undefined);
    const failure = prep.find((r, i): r is PromiseRejectedResult => r.status === 'rejected' && targets[i]!.worker !== undefined);
    if (failure !== undefined) {
      await Promise.allSettled(live.map((s) => request(s, { t: 'abort', id }, 'aborted')));
      throw failure.reason;
    }
    const done = await Promise.allSettled(live.map((s) => request(s, { t: 'commit', id }, 'committed')));
    let result: ApplyResult | undefined;
    for (const r of done) if (r.status === 'fulfilled' && r.value.t === 'committed') result ??= r.value.result;
    return result;
  };

  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const run = chain.then(f);
    chain = run.catch(() => undefined);
    return run;
  };

  const restartSlot = async (slot: Slot): Promise<void> => {
    if (stopping || (slot.worker as Worker | undefined) !== undefined) return;
    // A SIGTERM that arrives while the replacement starts: it may have found the new process before its IPC
    // channel was up (so no drain reached it); it drains as soon as it can hear, instead of serving on.
    const drainIfStopping = (): boolean => {
      if (!stopping) return false;
      if (slot.worker?.isConnected()) slot.worker.send({ t: 'drain', deadlineMs: config.node.drainTimeoutMs } satisfies ToWorker);
      return true;
    };
    try {
      await fork(slot);
      if (drainIfStopping()) return;
      await transaction([slot], running!);
      if (drainIfStopping()) return;
      slot.serving = true;
      log.info({ event: 'worker.restarted', slot: slot.index, pid: slot.worker?.process.pid }, `worker ${slot.index} restarted`);
    } catch (err) {
      // Stopping: the drain reached the replacement before it was ready (it exits 0 without serving), not a failure.
      if (stopping) log.info({ event: 'worker.start_cancelled', slot: slot.index, reason: (err as Error).message }, `worker ${slot.index} stopped while it was starting (the edge is draining)`);
      else log.error({ event: 'worker.start_failed', slot: slot.index, err }, `worker ${slot.index} could not start again`);
      slot.worker?.kill();
    }
  };

  const killAll = (): void => {
    for (const s of slots) {
      if (s.restart !== undefined) clearTimeout(s.restart);
      s.worker?.process.kill('SIGKILL');
    }
  };

  let origins: RunningOrigins | undefined;
  let originsRunning = config.origins;
  let dns: DnsServer | undefined;
  const dnsAt = config.dns;
  const viewOf = (c: RefractConfig): DnsView => dnsViewOf(c, { ttlSec: c.dns?.ttlSec ?? dnsAt?.ttlSec, listenHost: dnsAt?.listen.host });
  let dnsView: DnsView | undefined;
  /** The running configuration before the latest change (for the reload line's removed apps). */
  let previous: RefractConfig | undefined;
  let started = false;

  /**
   * Every change (the start, file reloads, API writes, through the ConfigSource with api:) in one queue with the
   * restarts: the two-phase transaction over the serving workers (at start, all of them), then it is the running
   * configuration, which a restarted worker is given.
   */
  applyToWorkers = (next: RefractConfig): Promise<ApplyResult> =>
    serial(async () => {
      const c = allocate(next);
      const targets = started ? slots.filter((s) => s.serving) : slots;
      if (targets.length === 0) throw new RefractError('E_WORKER_START', { message: 'no worker is serving now (every worker is restarting); try again' });
      const res = await transaction(targets, c);
      if (!started) {
        if (slots.some((s) => s.worker === undefined)) throw new RefractError('E_WORKER_START', { message: 'a worker exited during start' });
        for (const s of slots) s.serving = true;
        started = true;
      }
      previous = running;
      running = c;
      config = c;
      if (dnsAt !== undefined) dnsView = viewOf(c);
      return res ?? { added: [], removed: [], changed: [], unchanged: [], listeners: 0 };
    });

  // ── start: the API's database, fork all, apply the configuration to all (two phases) ──
  let api: RunningApi | undefined;
  let metricsServer: MetricsServer | undefined;
  let result: ApplyResult | undefined;
  try {
    origins = await startBuiltinOrigins(net, config.origins, log);
    // Opened before the workers start: it reads their events (analytics, the live endpoints), so they forward them.
    if (apiAt !== undefined) api = await openApi(file, config, ctx.fileRaw, view, log, () => undefined, metrics, outputs);
    await Promise.all(
      slots.map((s) =>
        fork(s).catch((err: unknown) => {
          throw new RefractError('E_WORKER_START', { message: `worker ${s.index} could not start: ${(err as Error).message}`, details: { worker: s.index }, cause: err });
        }),
      ),
    );
    if (api !== undefined) {
      // The file merged with the API's stored objects, applied to every worker through the view.
      result = await api.source.start();
      await listenApi(api, apiAt!.listen);
      process.stderr.write(`refract: management API on http://${hostPort(apiAt!.listen.host, apiAt!.listen.port)}/client/v4 (in the supervisor)\n`);
    } else {
      result = await applyToWorkers(config);
      saveEdgeIps();
    }
    if (metrics !== undefined && metricsAt?.listen !== undefined) {
      const { startMetricsServer } = await import('./metrics-server.ts');
      metricsServer = await startMetricsServer(metrics, metricsAt.listen);
      process.stderr.write(`refract: metrics on http://${hostPort(metricsServer.address.address, metricsServer.address.port)}/metrics (no auth; summed over the workers)\n`);
    }
    if (dnsAt !== undefined) {
      dnsView = viewOf(config);
      dns = await startDnsServer(net, dnsAt.listen, () => dnsView!);
      process.stderr.write(`refract: DNS server on ${dns.address.address}:${dns.address.port} (udp+tcp), authoritative for ${dnsView.zones.map((z) => z.name).join(', ')}\n`);
    }
  } catch (e) {
    stopping = true;
    log.fatal({ err: e }, 'refract could not start');
    const why = e instanceof ApiWriteError ? e.issues.map((i) => `${i.code}: ${i.message} (at ${i.pointer || '/'})`).join('; ') : ctx.describeStartError(e, config);
    process.stderr.write(`refract: could not start: ${why}\n`);
    killAll();
    await dns?.close().catch(() => undefined);
    await metricsServer?.close().catch(() => undefined);
    await api?.server.close().catch(() => undefined);
    api?.writer.close();
    api?.store.close();
    metrics?.dispose();
    await origins?.close().catch(() => undefined);
    ctx.exitCleanup();
    return 3;
  }
  const listeners = result?.listeners ?? 0;
  const udpApps = config.apps.some((a) => a.protocol === 'udp');
  if (udpApps && !reusePort) {
    log.warn({ event: 'workers.udp_one_worker', runtime: process.versions.node }, 'UDP apps are served by worker 1 only: this runtime has no reusePort (Node 22.12+), and a shared UDP socket would split flows across workers');
  }
  log.info({ event: 'serve.started', config: file, pid: process.pid, workers: count, share: reusePort ? 'reusePort' : 'cluster', ...result }, 'refract is serving');
  process.stderr.write(
    `refract: serving ${file} (pid ${process.pid}, ${count} workers, ${reusePort ? 'reusePort' : 'shared listeners'}): ${config.apps.length} app${config.apps.length === 1 ? '' : 's'}, ${listeners} listener${listeners === 1 ? '' : 's'} per worker, access log ${accessLog}\n`,
  );
  if (udpApps && !reusePort) process.stderr.write(`refract: UDP apps run on worker 1 only (Node ${process.versions.node} has no reusePort; Node 22.12+ spreads UDP flows too)\n`);

  // ── reloads: SIGHUP and file changes, applied to every worker in two phases ──
  /** The CLI's part of an applied reload: the line on stderr, restart-only settings, builtin origins, edge IPs. */
  const reloaded = async (prev: RefractConfig, next: RefractConfig, res: ApplyResult): Promise<void> => {
    log.info({ event: 'config.applied', workers: slots.filter((s) => s.serving).length, ...res }, 'configuration applied in every worker');
    const restartOnly = ctx.restartOnlyChanges(prev, next);
    if (restartOnly.length > 0) log.warn({ event: 'config.restart_needed', fields: restartOnly }, `changed settings that take effect only on restart (the running values stay): ${restartOnly.join(', ')}`);
    const parts = [...res.added.map((id) => `added ${ctx.appLabel(next, id)}`), ...res.changed.map((id) => `changed ${ctx.appLabel(next, id)}`), ...res.removed.map((id) => `removed ${ctx.appLabel(prev, id)}`)];
    process.stderr.write(`refract: reloaded ${file}: ${parts.length > 0 ? parts.join(', ') : 'no app changed'}\n`);
    if (JSON.stringify(next.origins) !== JSON.stringify(originsRunning)) {
      originsRunning = next.origins;
      await origins?.close().catch(() => undefined);
      origins = await startBuiltinOrigins(net, next.origins, log).catch((err: unknown) => {
        log.error({ err }, 'builtin origins could not restart');
        return undefined;
      });
    }
    saveEdgeIps();
  };
  const rejected = (err: unknown): void => {
    metrics?.recordReload('file', false);
    log.error({ event: 'config.rejected', err }, 'configuration rejected; no worker changed, the running configuration stays');
  };
  const { triggers, watcher } = reloadTriggers(file, opts.watch !== false, log, ctx.baseline);
  const loads = ctx.oneAtATime(triggers.pipe(debounceTime(150)), (why: string) =>
    fns.loadOffThread(file, { limits: opts.limits, raw: api !== undefined }).then((r: ConfigResult) => {
      if (!r.ok) {
        metrics?.recordReload('file', false);
        log.error({ event: 'config.rejected', trigger: why, issues: r.issues.slice(0, 20) }, 'new configuration is invalid; keeping the running one');
      } else log.info({ event: 'config.reload', trigger: why }, 'reloading configuration');
      return r;
    }),
  );
  const okLoads = loads.pipe(filter((r): r is Extract<ConfigResult, { ok: true }> => r.ok && !stopping));
  // With the API, a reload goes through its ConfigSource (the file merged with the API's objects, in the same queue
  // as API writes); without, straight to the workers.
  const applied: Observable<void> =
    api !== undefined
      ? api.source.follow(okLoads.pipe(map((r) => r.raw))).pipe(
          concatMap(async (o) => {
            if (!o.ok) return rejected(o.error);
            metrics?.recordReload('file', true);
            await reloaded(previous ?? o.config, o.config, o.result);
          }),
        )
      : okLoads.pipe(
          concatMap(async (r) => {
            const prev = config;
            let res: ApplyResult;
            try {
              res = await applyToWorkers(r.config);
            } catch (err) {
              return rejected(err);
            }
            metrics?.recordReload('file', true);
            await reloaded(prev, running!, res);
          }),
        );
  applied.subscribe({ error: (err: unknown) => log.error({ err }, 'reload pipeline failed; reload with a restart') });

  // ── stop: drain every worker, then the supervisor's own parts ──
  return new Promise<number>((resolveExit) => {
    const stop = (sig: string): void => {
      if (stopping) {
        log.warn({ signal: sig }, 'second signal: closing all connections now');
        for (const s of slots) if (s.worker?.isConnected()) s.worker.send({ t: 'abort-all' } satisfies ToWorker);
        return;
      }
      stopping = true;
      const deadlineMs = config.node.drainTimeoutMs;
      log.info({ event: 'serve.draining', signal: sig, workers: slots.filter((s) => s.worker !== undefined).length, deadlineMs }, 'draining every worker');
      watcher?.close();
      triggers.complete();
      void api?.server.close();
      const exits: Promise<void>[] = [];
      for (const s of slots) {
        if (s.restart !== undefined) clearTimeout(s.restart);
        const w = s.worker;
        if (w === undefined) continue;
        exits.push(new Promise<void>((r) => w.once('exit', () => r())));
        if (w.isConnected()) w.send({ t: 'drain', deadlineMs } satisfies ToWorker);
        // A worker that outlives its drain deadline by 5 s is killed.
        setTimeout(() => w.process.kill('SIGKILL'), deadlineMs + 5_000).unref();
      }
      const dnsClosed = dns?.close().catch((err: unknown) => log.error({ err }, 'DNS server close failed'));
      Promise.all(exits)
        .then(() => dnsClosed)
        .then(() => origins?.close())
        .then(() => sinks.close())
        // The metrics listener stays until the drain is over (scrapes watch it).
        .then(() => metricsServer?.close())
        .then(() => {
          events.complete();
          metrics?.dispose();
          api?.writer.close();
          api?.store.close();
          log.info({ event: 'serve.stopped', signal: sig }, 'stopped');
          ctx.exitCleanup();
          resolveExit(0);
        })
        .catch((err: unknown) => {
          log.error({ err }, 'shutdown failed');
          ctx.exitCleanup();
          resolveExit(1);
        });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
