/**
 * `refract serve`: proxies the apps of a config file on the real network, reloads it on SIGHUP and file changes,
 * drains on SIGTERM/SIGINT. `--check` (like `nginx -t`) does everything up to serving and stops there.
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT after the drain (or `--check` passed); 1 the config is invalid;
 * 2 bad command line; 3 something the config names could not be loaded or bound (a port in use, a certificate, a
 * geolocation file, the --pid-file).
 *
 * Output: stderr carries the start lines (one with the PID, one per app) and the JSON log; stdout carries the
 * access log (docs/cli.md) and, with `--events stdout`, the Spectrum events.
 */
import { dirname, resolve as resolvePath } from 'node:path';
import { Observable, concatMap, debounceTime, filter, map, tap } from 'rxjs';
import type { Logger } from 'pino';
import { EdgeNode } from '../edge/edge-node.ts';
import { startBuiltinOrigins, type RunningOrigins } from '../edge/builtin-origins.ts';
import { createLogger, logOutputStats } from '../log.ts';
import { formatPortRange } from '../model/ports.ts';
import { ERRORS, isRefractError } from '../model/errors.ts';
import type { AppSpec, ConfigIssue, RefractConfig } from '../model/types.ts';
import type { ConfigResult } from '../model/config.ts';
import { ApiWriteError } from '../api/config-source.ts';
import { hostPort, listenApi, openApi, type RunningApi } from './serve-api.ts';
import { edgeIpFilePath, readEdgeIpFile, writeEdgeIpFile } from './edge-ip-file.ts';
import { appBindAddresses, EMPTY_EDGE_IPS } from '../model/edge-ips.ts';
import { createNodeCertSource } from '../net/node/cert-store.ts';
import { reloadTriggers } from './reload-triggers.ts';
import { fileIdentity } from '../net/node/file-watch.ts';
import { CertWatch } from './cert-watch.ts';
import { loadGeo, type LoadedGeo } from '../net/node/geo-loader.ts';
import { createNodeNetwork, nodeClock } from '../net/node/network.ts';
import { checkNofile } from '../net/node/descriptors.ts';
import { startDnsServer, type DnsServer } from '../dns/server.ts';
import { dnsViewOf, type DnsView } from '../dns/view.ts';
import { openTraceFile } from './trace-file.ts';
import { logDropEpisode, openEventSinks, outputsOf } from './event-sinks.ts';
import { BoundedLineWriter, STDOUT_HOLD_MS } from './bounded-output.ts';
import { DEFAULTS } from '../model/defaults.ts';
import type { OutputStats } from '../model/engine-view.ts';
import type { MetricsServer } from './metrics-server.ts';
import { ACCESS_LOG_FORMATS, accessLogLine, AppNames, defaultAccessLog, type AccessLogFormat } from './access-log.ts';
import { parseCommand, processIo, type CliIo } from './args.ts';
import { CONFIG_LIMIT_FLAGS, configLimits } from './config-limits.ts';
import { claimPidFile, type PidFile } from './pid-file.ts';
import { relativeCertSource } from './cert-paths.ts';
import type { ConfigFns, ServeOptions } from './serve-types.ts';
import { isServeWorker, parseWorkers, runWorker, serveWorkers, workersUnsupported, WORKERS_MAX } from './workers.ts';

export const SERVE_USAGE = `Usage: refract serve --config FILE [--access-log text|json|off] [--events FILE|stdout] [--trace FILE]
                     [--log-level LEVEL] [--no-watch] [--pid-file FILE] [--check]
                     [--max-config-bytes N] [--max-config-nodes N] [--workers N|auto]
  Proxy the apps in FILE (YAML or JSON). Reloads on SIGHUP and when FILE changes (edited, renamed over, or swapped
  through a symlink as Kubernetes does); SIGTERM or SIGINT stop accepting, drain open connections and exit 0.
  -c, --config FILE     the configuration (docs/configuration.md); may also be given as the only argument
  --access-log FORMAT   one line per finished connection on stdout: text, json or off (default: text on a
                        terminal, json otherwise; off when the events go to stdout)
  --events FILE|stdout  also write every Spectrum event (connect and close) as JSON lines (docs/events.md);
                        overrides log.events
  --trace FILE          append the decision trace (JSON lines) for refract replay (docs/replay.md)
  --log-level LEVEL     trace, debug, info, warn, error, fatal or silent (default: log.level, else info); stacks of
                        logged errors appear at debug and trace only
  --no-watch            reload on SIGHUP only, not when FILE changes
  --pid-file FILE       write the PID to FILE at start, remove it at exit; refuse to start if FILE names a
                        running process (E_PID_FILE_IN_USE)
  --check               validate FILE, load certificates and geolocation data, bind every listener and release it,
                        print a summary and exit, without serving
  --max-config-bytes N  refuse (at start and on reload) a FILE larger than N bytes before reading it (default 4M;
                        K, M, G); --max-config-nodes N: more YAML nodes than N before parsing it (default 500000)
  --workers N|auto      N worker processes share the edge ports (default 1: one process; auto: one per core);
                        docs/deploy.md, "Every core: --workers"
Exit: 0 stopped after a drain (or --check passed), 1 invalid config, 2 invalid command line, 3 could not load or bind.
Docs: docs/cli.md`;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];


export type { ConfigFns, ServeOptions } from './serve-types.ts';

/** Parses `refract serve ARGS` and runs it; resolves with the exit code. */
export function serveMain(argv: readonly string[], fns: ConfigFns, io: CliIo = processIo): Promise<number> {
  const p = parseCommand(
    'serve',
    argv,
    {
      config: { type: 'string', short: 'c' },
      events: { type: 'string' },
      trace: { type: 'string' },
      'log-level': { type: 'string' },
      'no-watch': { type: 'boolean' },
      'access-log': { type: 'string' },
      'pid-file': { type: 'string' },
      check: { type: 'boolean' },
      workers: { type: 'string' },
      ...CONFIG_LIMIT_FLAGS,
    },
    SERVE_USAGE,
    io,
  );
  if (!p.ok) return Promise.resolve(p.code);
  const { values, positionals } = p;
  const file = values.config ?? positionals[0];
  if (file === undefined || positionals.length > (values.config === undefined ? 1 : 0)) {
    io.err(`refract serve: ${file === undefined ? 'give --config FILE' : `unexpected argument ${positionals.at(-1)}`}\n\n${SERVE_USAGE}\n`);
    return Promise.resolve(2);
  }
  const accessLog = values['access-log'];
  if (accessLog !== undefined && !(ACCESS_LOG_FORMATS as readonly string[]).includes(accessLog)) {
    io.err(`refract serve: --access-log is text, json or off, not '${accessLog}'\n\n${SERVE_USAGE}\n`);
    return Promise.resolve(2);
  }
  const level = values['log-level'];
  if (level !== undefined && !LOG_LEVELS.includes(level)) {
    io.err(`refract serve: --log-level is one of ${LOG_LEVELS.join(', ')}, not '${level}'\n\n${SERVE_USAGE}\n`);
    return Promise.resolve(2);
  }
  const limits = configLimits(values);
  if (typeof limits === 'string') {
    io.err(`refract serve: ${limits}\n\n${SERVE_USAGE}\n`);
    return Promise.resolve(2);
  }
  const workers = values.workers === undefined ? 1 : parseWorkers(values.workers);
  if (workers === undefined) {
    io.err(`refract serve: E_WORKERS_INVALID: --workers is a whole number from 1 to ${WORKERS_MAX} or auto, not '${values.workers}'\n\n${SERVE_USAGE}\n`);
    return Promise.resolve(2);
  }
  const o: ServeOptions = { limits };
  if (workers > 1) o.workers = workers;
  if (values['no-watch'] === true) o.watch = false;
  if (values.events !== undefined) o.events = values.events;
  if (values.trace !== undefined) o.trace = values.trace;
  if (level !== undefined) o.logLevel = level;
  if (accessLog !== undefined) o.accessLog = accessLog as AccessLogFormat;
  if (values['pid-file'] !== undefined) o.pidFile = values['pid-file'];
  if (values.check === true) o.check = true;
  return serveCommand(file, o, fns);
}

/** Settings `serve` reads once at start; a reload that changes them says so instead of ignoring it silently. */
export function restartOnlyChanges(running: RefractConfig, next: RefractConfig): string[] {
  const out: string[] = [];
  if (JSON.stringify(running.geo) !== JSON.stringify(next.geo)) out.push('geo');
  if (running.node.tls.dataDir !== next.node.tls.dataDir) out.push('edge.tls.data_dir');
  if (running.node.dataDir !== next.node.dataDir) out.push('node.data_dir');
  if (running.node.user !== next.node.user || running.node.group !== next.node.group) out.push('node.user');
  if (JSON.stringify(running.api) !== JSON.stringify(next.api)) out.push('api');
  if (JSON.stringify(running.metrics) !== JSON.stringify(next.metrics)) out.push('metrics');
  if (JSON.stringify([running.log.events, running.log.eventsRotate, running.log.eventsHttp]) !== JSON.stringify([next.log.events, next.log.eventsRotate, next.log.eventsHttp])) out.push('log.events');
  if (JSON.stringify(running.analytics) !== JSON.stringify(next.analytics)) out.push('analytics');
  if (running.log.maxBufferBytes !== next.log.maxBufferBytes) out.push('log.max_buffer');
  if (running.dns === undefined || next.dns === undefined) {
    if (running.dns !== next.dns) out.push('dns');
  } else if (JSON.stringify(running.dns.listen) !== JSON.stringify(next.dns.listen)) {
    out.push('dns.listen');
  }
  return out;
}

/** `id (dns.name)` of the app with this id in `config`, or the id alone. */
export function appLabel(config: RefractConfig, id: string): string {
  const app = config.apps.find((a) => a.id === id);
  return app ? `${id} (${app.dns.name})` : id;
}

/**
 * A start failure in a person's words: the code, then what it is about (for a listen failure: address, port and
 * app or builtin origin), then the message.
 */
export function describeStartError(e: unknown, config: RefractConfig): string {
  if (!isRefractError(e)) return (e as Error).message ?? String(e);
  const d = e.details ?? {};
  const about: string[] = [];
  if (typeof d['address'] === 'string' && typeof d['port'] === 'number') {
    const app = typeof d['app'] === 'string' ? config.apps.find((a) => a.id === d['app']) : undefined;
    const what = app
      ? `${app.protocol} ${hostPort(d['address'], d['port'])} for app ${appLabel(config, app.id)}`
      : typeof d['origin'] === 'string'
        ? `${hostPort(d['address'], d['port'])} for builtin origin '${d['origin']}'`
        : d['api'] === true
          ? `${hostPort(d['address'], d['port'])} for the management API`
          : d['dns'] === true
            ? `${hostPort(d['address'], d['port'])} for the DNS server`
            : d['metrics'] === true
              ? `${hostPort(d['address'], d['port'])} for the metrics listener`
              : hostPort(d['address'], d['port']);
    about.push(what);
  }
  if (typeof d['file'] === 'string' && about.length === 0 && !e.message.includes(d['file'])) about.push(d['file']);
  const causeCode = typeof d['cause'] === 'string' ? d['cause'] : (e.cause as { code?: unknown } | undefined)?.code;
  const cause = typeof causeCode === 'string' ? ` (${causeCode})` : '';
  // A listen failure is said in the table's sentence (a builtin origin's message repeats Node's, address and all).
  const msg =
    d['dns'] === true
      ? `cannot bind ${String(d['transport']).toUpperCase()}`
      : about.length > 0 && e.code.startsWith('E_LISTEN_') && d['api'] !== true && d['metrics'] !== true
        ? ERRORS[e.code].message
        : e.message;
  return `${e.code}: ${about.length > 0 ? `${about.join(', ')}: ` : ''}${msg}${cause}`;
}

function originText(app: AppSpec): string {
  return app.origin.kind === 'direct'
    ? app.origin.targets.map((t) => `${t.protocol}://${hostPort(t.host, 0).replace(/:0$/, '')}:${formatPortRange(t.ports)}`).join(',')
    : `dns:${app.origin.name}`;
}

function appLine(config: RefractConfig, app: AppSpec): string {
  return `refract: app ${app.id} (${app.dns.name}) ${app.protocol}/${formatPortRange(app.edgePorts)} on ${appBindAddresses(config, app).join(',')} → ${originText(app)}\n`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function serveCommand(file: string, opts: ServeOptions, fns: ConfigFns): Promise<number> {
  // A worker process of --workers (src/cli/workers.ts): the supervisor sends it the configuration.
  if (isServeWorker()) return runWorker();
  // Read and parsed in a worker thread, like every reload: the parser's garbage never lands on the serving heap.
  // The file's identity before that read is the watch's starting point: a save while the edge starts still reloads.
  const baseline = fileIdentity(file);
  const first = await fns.loadOffThread(file, { limits: opts.limits });
  if (!first.ok) {
    process.stderr.write(fns.formatIssues(file, [...first.issues, ...first.warnings]) + '\n');
    return 1;
  }
  // Warnings (a misspelt key, rules no app applies) do not stop the start; they are printed, as validate does.
  if (first.warnings.length > 0) process.stderr.write(fns.formatIssues(file, first.warnings) + '\n');
  let config = first.config;
  const log: Logger = createLogger({ level: opts.logLevel ?? config.log.level, node: config.node.id, maxBufferBytes: config.log.maxBufferBytes });
  const unsupported = opts.workers !== undefined && opts.check !== true ? workersUnsupported(config) : [];
  if (unsupported.length > 0) {
    process.stderr.write(`refract serve: E_WORKERS_UNSUPPORTED: --workers ${opts.workers} does not support ${unsupported.join(', ')} yet; run with one worker\n`);
    return 2;
  }

  let pidFile: PidFile | undefined;
  if (opts.pidFile !== undefined && opts.check !== true) {
    try {
      pidFile = claimPidFile(opts.pidFile);
    } catch (e) {
      process.stderr.write(`refract: could not start: ${isRefractError(e) ? describeStartError(e, config) : `cannot write --pid-file ${opts.pidFile}: ${(e as Error).message}`}\n`);
      return 3;
    }
  }
  const cleanup: Array<() => void> = [() => pidFile?.remove()];
  const exitCleanup = (): void => {
    for (const f of cleanup.splice(0)) f();
  };
  // Also on an unexpected exit (a thrown error): the PID file must not outlive the process.
  process.once('exit', exitCleanup);
  if (opts.workers !== undefined && opts.check !== true) {
    const level = opts.logLevel ?? config.log.level;
    return serveWorkers({
      file, opts, fns, config, log: log.child({ worker: 0 }), logLevel: level, count: opts.workers, exitCleanup,
      restartOnlyChanges, appLabel, describeStartError, oneAtATime, fileRaw: first.raw, baseline,
    });
  }

  const net = createNodeNetwork({ dnsServers: config.node.dnsServers, log: log.child({ component: 'descriptors' }) });
  let geo: LoadedGeo | undefined;
  if (config.geo.country.length > 0 || config.geo.asn.length > 0) {
    try {
      geo = await loadGeo(
        { country: config.geo.country, asn: config.geo.asn },
        { watch: opts.check !== true, onEvent: (e) => (e.event === 'geo.loaded' ? log.info({ geo: e }, 'geolocation data') : log.warn({ geo: e }, 'geolocation data')) },
      );
    } catch (e) {
      process.stderr.write(`refract: could not load geo data: ${isRefractError(e) ? `${e.code}: ` : ''}${(e as Error).message}\n`);
      exitCleanup();
      return 3;
    }
  }
  // Certificate paths and the data directory are relative to the config file's folder, like every other path.
  const baseDir = dirname(resolvePath(file));
  const certs = relativeCertSource(baseDir, createNodeCertSource({ dataDir: resolvePath(baseDir, config.node.tls.dataDir), log: log.child({ component: 'certs' }) }));
  // Edge IPs without api: the state file keeps every name's addresses across restarts (with api: the database);
  // serve --check reads it too, so it binds the addresses serve would.
  const edgeIpFile = config.api === undefined ? edgeIpFilePath(file, config.node.dataDir ?? '.refract') : undefined;
  let edgeIpsWritten = edgeIpFile === undefined ? EMPTY_EDGE_IPS : readEdgeIpFile(edgeIpFile, (err) => log.warn({ event: 'edge_ips.state_unreadable', file: edgeIpFile, err }, 'edge-IP state file unreadable; names take fresh addresses'));
  const edge = new EdgeNode({ net, log, certs, edgeIps: edgeIpsWritten, ...(geo ? { geo } : {}) }, config);
  /** After an applied change without api:, saves the allocation when it changed. */
  const saveEdgeIps = (): void => {
    const state = edge.config?.edgeIps ?? EMPTY_EDGE_IPS;
    if (edgeIpFile === undefined || JSON.stringify(state) === JSON.stringify(edgeIpsWritten)) return;
    try {
      writeEdgeIpFile(edgeIpFile, state);
      edgeIpsWritten = state;
    } catch (err) {
      log.error({ event: 'edge_ips.state_write_failed', file: edgeIpFile, err }, 'could not write the edge-IP state file; a restart may move addresses');
    }
  };

  if (opts.check === true) return checkCommand(file, config, first.raw, { edge, net, log, geo });

  // Metrics (docs/metrics.md): a registry of this node's, fed from its events; served on its own listener and on
  // the API's. Settings are read at start.
  // Loaded only with metrics: (prom-client costs start-up time otherwise).
  const metrics = config.metrics === undefined ? undefined : new (await import('../api/metrics.ts')).EdgeMetrics(edge, { maxApps: config.metrics.maxApps });
  let metricsServer: MetricsServer | undefined;

  // Access log and events: the app's name is looked up in the running config when the connection closes.
  // stdout and stderr are bounded (log.max_buffer, docs/hardening.md): a reader that stalls costs lines, not memory.
  const stdout = new BoundedLineWriter('stdout', process.stdout, config.log.maxBufferBytes ?? DEFAULTS.logMaxBufferBytes, logDropEpisode(log), { coalesce: true, holdMs: STDOUT_HOLD_MS });
  const outputs = (): Record<string, OutputStats> => outputsOf(stdout, log, sinks, stdout);
  metrics?.registerDescriptors(() => net.descriptors.stats());
  metrics?.registerOutput('stdout', () => stdout);
  metrics?.registerOutput('stderr', () => logOutputStats(log) ?? { written: 0, dropped: 0, bufferedBytes: 0 });
  const accessLog = opts.accessLog ?? defaultAccessLog(process.stdout.isTTY === true, opts.events ?? config.log.events);
  if (accessLog !== 'off') {
    // Closing events only: no `connect` event is built for the access log (it writes none).
    const names = new AppNames();
    edge.events.closings$.subscribe((e) => {
      const line = accessLogLine(e, names.get(config.apps, e.Application), accessLog);
      if (line !== undefined) stdout.write(line + '\n');
    });
  }
  // Event sinks (docs/events.md, "Sinks"): --events replaces log.events' stdout-or-file target; rotation and the
  // HTTP push come from the config.
  const sinks = openEventSinks(
    edge.events,
    { target: opts.events ?? config.log.events, rotate: config.log.eventsRotate, http: config.log.eventsHttp, maxBufferBytes: config.log.maxBufferBytes },
    { clock: nodeClock, log, metrics, stdout },
  );
  const traceOut = opts.trace ? openTraceFile(edge.trace.records$, resolvePath(opts.trace), log) : undefined;

  // The management API (docs/api.md): the running config is the file plus the API's apps, merged in ConfigSource.
  let api: RunningApi | undefined;
  let origins: RunningOrigins | undefined;
  // The DNS server (docs/dns.md) answers from a view of the running config, rebuilt on every applied change (file
  // reloads below, API writes through `adopt`). Its listen address is read at start.
  let dns: DnsServer | undefined;
  const dnsAt = config.dns;
  const viewOf = (c: RefractConfig): DnsView => dnsViewOf(c, { ttlSec: c.dns?.ttlSec ?? dnsAt?.ttlSec, listenHost: dnsAt?.listen.host });
  let dnsView: DnsView | undefined;
  const adopt = (c: RefractConfig): void => {
    config = c;
    if (dnsAt !== undefined) dnsView = viewOf(c);
  };
  try {
    origins = await startBuiltinOrigins(net, config.origins, log);
    let r;
    if (config.api !== undefined) {
      api = await openApi(file, config, first.raw, edge, log, adopt, metrics, outputs);
      r = await api.source.start();
      config = api.source.config;
      await listenApi(api, config.api!.listen);
      process.stderr.write(`refract: management API on http://${hostPort(config.api!.listen.host, config.api!.listen.port)}/client/v4\n`);
    } else {
      r = await edge.apply(config);
      config = edge.config ?? config;
      saveEdgeIps();
    }
    if (metrics !== undefined && config.metrics?.listen !== undefined) {
      const { startMetricsServer } = await import('./metrics-server.ts');
      metricsServer = await startMetricsServer(metrics, config.metrics.listen);
      process.stderr.write(`refract: metrics on http://${hostPort(metricsServer.address.address, metricsServer.address.port)}/metrics (no auth)\n`);
    }
    if (dnsAt !== undefined) {
      dnsView = viewOf(config);
      dns = await startDnsServer(net, dnsAt.listen, () => dnsView!);
      const zones = dnsView.zones.map((z) => z.name);
      log.info({ event: 'dns.started', listen: hostPort(dns.address.address, dns.address.port), zones }, 'DNS server started');
      process.stderr.write(`refract: DNS server on ${hostPort(dns.address.address, dns.address.port)} (udp+tcp), authoritative for ${zones.join(', ')}, ttl ${dnsView.ttlSec} s\n`);
    }
    // Every listener is bound: drop root now (node.user; docs/deploy.md, "Dropping root"). A failure stops the start.
    if (config.node.user !== undefined || config.node.group !== undefined) {
      const { assertWritableAfterDrop, dropPrivileges, handOver } = await import('./privileges.ts');
      const dataDirs = [resolvePath(baseDir, config.node.dataDir ?? '.refract'), resolvePath(baseDir, config.node.tls.dataDir)];
      const ids = dropPrivileges({ user: config.node.user, group: config.node.group }, undefined, undefined, () => handOver(dataDirs, config.node.user ?? '', config.node.group));
      const events = opts.events ?? config.log.events;
      assertWritableAfterDrop(
        [
          ...dataDirs,
          ...(opts.pidFile !== undefined ? [dirname(resolvePath(opts.pidFile))] : []),
          ...(events !== undefined && events !== 'stdout' ? [dirname(resolvePath(events))] : []),
        ],
        config.node.user ?? '',
      );
      log.info({ event: 'serve.privileges_dropped', user: config.node.user, group: config.node.group, ...ids }, 'dropped root after binding');
    }
    log.info({ event: 'serve.started', config: file, pid: process.pid, ...r }, 'refract is serving');
    // One write: a reader that sees the "serving" line has the app lines too.
    process.stderr.write(
      `refract: serving ${file} (pid ${process.pid}): ${plural(config.apps.length, 'app')}, ${plural(r.listeners, 'listener')}, access log ${accessLog}\n` +
        config.apps.map((app) => appLine(config, app)).join(''),
    );
    warnLowNofile(config, r.listeners, log);
  } catch (e) {
    log.fatal({ err: e }, 'refract could not start');
    const why = e instanceof ApiWriteError ? e.issues.map((i) => `${i.code}: ${i.message} (at ${i.pointer || '/'})`).join('; ') : describeStartError(e, config);
    process.stderr.write(`refract: could not start: ${why}\n`);
    await dns?.close().catch(() => undefined);
    await metricsServer?.close().catch(() => undefined);
    await api?.server.close().catch(() => undefined);
    api?.writer.close();
    api?.store.close();
    await origins?.close();
    await edge.shutdown(0);
    geo?.close();
    exitCleanup();
    return 3;
  }

  // Reload: SIGHUP or a change of the file, debounced; an invalid file is rejected whole.
  const { triggers, watcher } = reloadTriggers(file, opts.watch !== false, log, baseline);
  // Each reload reads and parses the file once; with the API, ConfigSource merges that same object with its apps.
  // The file is read and parsed in a worker thread (src/net/node/config-file.ts), so a large file never stalls
  // connections; one load runs at a time, and triggers during it make exactly one more.
  const loads: Observable<Extract<ConfigResult, { ok: true }>> = oneAtATime(triggers.pipe(debounceTime(150)), (why) => {
    log.debug({ event: 'config.loading', trigger: why }, 'reading the configuration (in a worker thread)');
    return fns.loadOffThread(file, { limits: opts.limits, raw: api !== undefined }).then((r) => {
      if (!r.ok) metrics?.recordReload('file', false);
      if (!r.ok) log.error({ event: 'config.rejected', trigger: why, ...boundedIssues(r.issues) }, 'new configuration is invalid; keeping the running one');
      else log.info({ event: 'config.reload', trigger: why, ...(r.warnings.length > 0 ? boundedIssues(r.warnings, 'warnings') : {}) }, 'reloading configuration');
      return r;
    });
  }).pipe(filter((r): r is Extract<ConfigResult, { ok: true }> => r.ok));
  // Certificate files: watched like the config file (CertWatch: directories, symlinks on the way, a 2 s poll), and
  // re-listed after every apply since the config names them.
  const certReload = (): void => {
    edge.reloadCertificates().then(
      () => log.info({ event: 'tls.certificates_reloaded' }, 'certificates reloaded'),
      (err: unknown) => log.error({ event: 'tls.certificates_rejected', err }, 'certificate reload failed; the running certificates stay'),
    );
  };
  const certWatch = new CertWatch(certReload);
  const watchCerts = (): void => certWatch.update(edge.tlsWatchedFiles());
  watchCerts();
  // EdgeNode.follow applies each snapshot in turn and logs config.applied / config.rejected; what follows is the
  // CLI's own part of a successful reload, one at a time, in order.
  const reloaded = async (next: RefractConfig, result: { added: string[]; removed: string[]; changed: string[] }): Promise<void> => {
    const restartOnly = restartOnlyChanges(config, next);
    if (restartOnly.length > 0) {
      log.warn(
        { event: 'config.restart_needed', fields: restartOnly },
        `changed settings that take effect only on restart (the running values stay): ${restartOnly.join(', ')}`,
      );
    }
    const parts = [
      ...result.added.map((id) => `added ${appLabel(next, id)}`),
      ...result.changed.map((id) => `changed ${appLabel(next, id)}`),
      ...result.removed.map((id) => `removed ${appLabel(config, id)}`),
    ];
    process.stderr.write(`refract: reloaded ${file}: ${parts.length > 0 ? parts.join(', ') : 'no app changed'}\n`);
    watchCerts();
    if (JSON.stringify(next.origins) !== JSON.stringify(config.origins)) {
      await origins?.close().catch(() => undefined);
      origins = await startBuiltinOrigins(net, next.origins, log).catch((err: unknown) => {
        log.error({ err }, 'builtin origins could not restart');
        return undefined;
      });
    }
    adopt(next);
    saveEdgeIps();
  };
  // With the API, a reload goes through ConfigSource (file + API apps, in the same queue as API writes).
  const followed = api === undefined
    ? edge.follow(loads.pipe(map((r) => r.config)))
    : api.source.follow(loads.pipe(map((r) => r.raw))).pipe(
        tap((o) => {
          if (o.ok) log.info({ event: 'config.applied', ...o.result }, 'configuration applied');
          else log.error({ event: 'config.rejected', err: o.error }, 'configuration rejected; the running configuration stays');
        }),
      );
  followed
    .pipe(
      tap((o) => metrics?.recordReload('file', o.ok)),
      concatMap((o) => (o.ok ? reloaded(o.config, o.result) : Promise.resolve())),
    )
    .subscribe({ error: (err: unknown) => log.error({ err }, 'reload pipeline failed; reload with a restart') });

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) {
        log.warn({ signal: sig }, 'second signal: closing all connections now');
        edge.tcp.abortAll();
        return;
      }
      stopping = true;
      log.info({ event: 'serve.draining', signal: sig, open: edge.tcp.activeCount, deadlineMs: config.node.drainTimeoutMs }, 'draining');
      watcher?.close();
      certWatch.close();
      triggers.complete();
      void api?.server.close();
      // The metrics listener stays until the drain is over (scrapes watch it), then closes below.
      const dnsClosed = dns?.close().catch((err: unknown) => log.error({ err }, 'DNS server close failed'));
      edge
        .shutdown(config.node.drainTimeoutMs)
        .then(() => dnsClosed)
        .then(() => origins?.close())
        // The HTTP sink delivers what it holds (to its shutdown deadline) before the metrics listener goes.
        .then(() => sinks.close())
        .then(() => metricsServer?.close())
        // The trace's last lines reach the file before the process exits.
        .then(() => traceOut?.close())
        .then(() => {
          metrics?.dispose();
          log.info({ event: 'serve.stopped', signal: sig }, 'stopped');
          api?.writer.close();
          api?.store.close();
          geo?.close();
          exitCleanup();
          resolveExit(0);
        })
        .catch((err: unknown) => {
          log.error({ err }, 'shutdown failed');
          exitCleanup();
          resolveExit(1);
        });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

/** Issues in one log line: at most this many, then a count (`refract validate` prints them all). */
export const LOGGED_ISSUES = 20;

/** `{ issues: first LOGGED_ISSUES, issueCount, issuesOmitted }`: a file with 10,000 problems logs a short line. */
export function boundedIssues<K extends string = 'issues'>(issues: readonly ConfigIssue[], key?: K): Record<string, unknown> {
  const k = key ?? 'issues';
  const count = k === 'issues' ? 'issueCount' : 'warningCount';
  return issues.length <= LOGGED_ISSUES ? { [k]: issues } : { [k]: issues.slice(0, LOGGED_ISSUES), [count]: issues.length, [`${k}Omitted`]: issues.length - LOGGED_ISSUES };
}

/**
 * `run` for each value of `source`, one at a time, results in order; values that arrive while one runs collapse
 * into one run after it (the latest value), so a burst of triggers during a long load costs one more load, not many.
 */
export function oneAtATime<T, R>(source: Observable<T>, run: (v: T) => Promise<R>): Observable<R> {
  return new Observable<R>((sub) => {
    let running = false;
    let pending: { v: T } | undefined;
    let sourceDone = false;
    const next = (v: T): void => {
      running = true;
      run(v).then(
        (r) => sub.next(r),
        (err: unknown) => sub.error(err),
      ).finally(() => {
        running = false;
        const p = pending;
        pending = undefined;
        if (p !== undefined) next(p.v);
        else if (sourceDone) sub.complete();
      });
    };
    const s = source.subscribe({
      next: (v) => {
        if (running) pending = { v };
        else next(v);
      },
      error: (e: unknown) => sub.error(e),
      complete: () => {
        sourceDone = true;
        if (!running) sub.complete();
      },
    });
    return () => s.unsubscribe();
  });
}

/**
 * The start-up warning (W_NOFILE_LOW) when RLIMIT_NOFILE cannot hold the listeners, the connection limit and the
 * UDP flow cap (docs/hardening.md, "Overload and descriptors"). `edge.max_connections` is read when the config has it.
 */
function warnLowNofile(config: RefractConfig, listeners: number, log: Logger): void {
  const maxConnections = config.node.maxConnections;
  const c = checkNofile({
    listeners,
    maxConnections,
    udpMaxFlows: config.node.udpMaxFlows,
    tcpApps: config.apps.some((a) => a.protocol === 'tcp'),
    udpApps: config.apps.some((a) => a.protocol === 'udp'),
  });
  if (c === undefined) return;
  const what = `${c.listeners} listeners + 2 × ${c.maxConnections} connections${c.assumed ? ' (assumed: no edge.max_connections)' : ''} + ${c.udpFlows} UDP flows + margin`;
  log.warn({ event: 'descriptors.limit_low', code: 'W_NOFILE_LOW', ...c }, `RLIMIT_NOFILE ${c.soft} is below the ${c.needed} descriptors the configuration may need`);
  process.stderr.write(`refract: warning W_NOFILE_LOW: open-file limit ${c.soft} (hard ${Number.isFinite(c.hard) ? c.hard : 'unlimited'}) < ${c.needed} needed (${what}); raise it (ulimit -n, systemd LimitNOFILE=; docs/deploy.md)\n`);
}

/**
 * `serve --check`: certificates, builtin origins and every edge listener (with `api:`, the API's stored apps too,
 * and the API's own port), bound and released at once; nothing is served. Exit 0 when all of it worked, 3 when
 * something could not be loaded, opened or bound.
 */
async function checkCommand(
  file: string,
  config: RefractConfig,
  fileRaw: unknown,
  d: { edge: EdgeNode; net: ReturnType<typeof createNodeNetwork>; log: Logger; geo: LoadedGeo | undefined },
): Promise<number> {
  let origins: RunningOrigins | undefined;
  let api: RunningApi | undefined;
  let dns: DnsServer | undefined;
  try {
    origins = await startBuiltinOrigins(d.net, config.origins, d.log);
    let r;
    let apiText = '';
    if (config.api !== undefined) {
      api = await openApi(file, config, fileRaw, d.edge, d.log, () => undefined);
      r = await api.source.start();
      const apiApps = api.source.config.apps.length - config.apps.length;
      await listenApi(api, config.api.listen);
      await api.server.close();
      api.writer.close();
      api.store.close();
      api = undefined;
      apiText = `, ${plural(apiApps, 'API app')} from the database, API port ${hostPort(config.api.listen.host, config.api.listen.port)} bound and released`;
    } else {
      r = await d.edge.apply(config);
    }
    let metricsText = '';
    if (config.metrics?.listen !== undefined) {
      const [{ EdgeMetrics }, { startMetricsServer }] = await Promise.all([import('../api/metrics.ts'), import('./metrics-server.ts')]);
      const registry = new EdgeMetrics(d.edge, { defaultMetrics: false });
      try {
        await (await startMetricsServer(registry, config.metrics.listen)).close();
      } finally {
        registry.dispose();
      }
      metricsText = `, metrics port ${hostPort(config.metrics.listen.host, config.metrics.listen.port)} bound and released`;
    }
    let dnsText = '';
    if (config.dns !== undefined) {
      dns = await startDnsServer(d.net, config.dns.listen, () => dnsViewOf(config));
      await dns.close();
      dns = undefined;
      dnsText = `, DNS port ${hostPort(config.dns.listen.host, config.dns.listen.port)} (udp+tcp) bound and released`;
    }
    await origins.close();
    origins = undefined;
    await d.edge.shutdown(0);
    d.geo?.close();
    const geoText = config.geo.country.length + config.geo.asn.length > 0 ? `, ${plural(config.geo.country.length + config.geo.asn.length, 'geolocation file')} loaded` : '';
    const tlsApps = config.apps.filter((a) => a.tls !== 'off').length;
    process.stdout.write(
      `${file}: OK: ${plural(config.apps.length, 'app')}, ${plural(r.listeners, 'listener')} bound and released` +
        `, ${plural(config.origins.length, 'builtin origin')}${tlsApps > 0 ? `, certificates ready for ${plural(tlsApps, 'TLS app')}` : ''}${geoText}${apiText}${metricsText}${dnsText}\n`,
    );
    return 0;
  } catch (e) {
    await dns?.close().catch(() => undefined);
    await api?.server.close().catch(() => undefined);
    api?.writer.close();
    api?.store.close();
    await origins?.close().catch(() => undefined);
    await d.edge.shutdown(0).catch(() => undefined);
    d.geo?.close();
    const why = e instanceof ApiWriteError ? e.issues.map((i) => `${i.code}: ${i.message} (at ${i.pointer || '/'})`).join('; ') : describeStartError(e, config);
    process.stderr.write(`refract serve --check: ${file}: ${why}\n`);
    return 3;
  }
}
