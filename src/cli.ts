/**
 * `refract serve | connect | validate | sim | replay | ca | machines`. Wiring only: process signals, files and
 * the real network live here; the engine is in src/edge and below.
 */
import { parseArgs } from 'node:util';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { readFileSync, watchFile, unwatchFile, createWriteStream, type WriteStream } from 'node:fs';
import { watchFileChanges, type FileWatch } from './net/node/file-watch.ts';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { createNodeCertSource } from './net/node/cert-store.ts';
import type { CertSource } from './net/ports.ts';
import { connect as netConnect } from 'node:net';
import { Subject, concatMap, debounceTime, map, filter, type Observable } from 'rxjs';
import { createNodeNetwork } from './net/node/network.ts';
import { EdgeNode } from './edge/edge-node.ts';
import { startBuiltinOrigins, type RunningOrigins } from './edge/builtin-origins.ts';
import { createLogger } from './log.ts';
import { traceLine } from './streams/trace.ts';
import { loadGeo, type LoadedGeo } from './net/node/geo-loader.ts';
import { loadConfigText } from './model/config.ts';
import { formatPortRange } from './model/ports.ts';
import { isRefractError, RefractError } from './model/errors.ts';
import type { ConfigIssue, RefractConfig } from './model/types.ts';
import type { Logger } from 'pino';

const USAGE = `refract — L4 edge proxy (Spectrum-style apps) with a deterministic network simulator

Usage:
  refract serve --config FILE [--events FILE|stdout] [--trace FILE] [--log-level LEVEL] [--no-watch]
      Proxy the apps in FILE (YAML or JSON). Reloads on SIGHUP and when FILE changes (edited, renamed over, or
      swapped through a symlink as Kubernetes does; --no-watch: on SIGHUP only); SIGTERM/SIGINT drain and exit.
  refract connect HOST:PORT [--tls [--ca FILE] [--servername NAME] [--insecure]]
      A tiny netcat: stdin goes to HOST:PORT, what comes back goes to stdout (for trying the example without nc).
      --tls speaks TLS, verifying the server against --ca (e.g. the output of \`refract ca export\`) for NAME.
  refract validate FILE
      Print every problem in FILE with its code and location; exit 1 if there is any.
  refract sim FILE [--seed N] [--trace FILE] [--check-determinism] [--json]
      Run the scenario FILE in virtual time (docs/scenarios.md); exit 1 if an expectation fails.
  refract replay TRACE --config FILE [--seed N] [--scenario OUT] [--json]
      Replay a serve --trace recording in the simulator (docs/replay.md); exit 1 if a connection ends differently.
  refract ca export [--data-dir DIR | --config FILE] [--out FILE]
      Print the local CA's root certificate (PEM) for clients to trust, creating the CA if needed (docs/tls.md).
  refract machines [--machine tcpConnection|udpFlow] [--write FILE]
      Print the connection and flow state machines as Mermaid diagrams drawn from their XState definitions
      (docs/architecture.md); --write rewrites the diagrams embedded in FILE.

Docs: docs/configuration.md, docs/errors.md, docs/architecture.md`;

type Loaded = { ok: true; config: RefractConfig } | { ok: false; issues: readonly ConfigIssue[] };

function load(file: string): Loaded {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = new RefractError('E_CONFIG_READ', { message: `cannot read ${file}: ${(e as Error).message}`, cause: e });
    return { ok: false, issues: [{ pointer: '', code: err.code, cfCode: undefined, message: err.message }], warnings: [] } as Loaded;
  }
  // A ConfigResult: issues and warnings carry line and column; `warnings` is there on both branches.
  return loadConfigText(text, file);
}

/**
 * One line per issue: `FILE:LINE:COLUMN: CODE: message (at POINTER)` when the issue has a position, else
 * `  POINTER: CODE: message`. Warnings (W_ codes) come after the errors, marked `warning:`.
 */
function formatIssues(file: string, issues: readonly ConfigIssue[]): string {
  const line = (i: ConfigIssue): string => {
    const warn = i.code.startsWith('W_') ? 'warning: ' : '';
    const what = `${warn}${i.code}${i.cfCode ? ` (${i.cfCode})` : ''}: ${i.message}`;
    return i.line === undefined ? `  ${i.pointer || '/'}: ${what}` : `${file}:${i.line}:${i.column ?? 1}: ${what} (at ${i.pointer || '/'})`;
  };
  const errors = issues.filter((i) => !i.code.startsWith('W_'));
  const warnings = issues.filter((i) => i.code.startsWith('W_'));
  const counts = [
    ...(errors.length > 0 ? [`${errors.length} problem${errors.length === 1 ? '' : 's'}`] : []),
    ...(warnings.length > 0 ? [`${warnings.length} warning${warnings.length === 1 ? '' : 's'}`] : []),
  ];
  return `${file}: ${counts.join(', ')}\n${[...errors, ...warnings].map(line).join('\n')}`;
}

function validateCommand(file: string | undefined): number {
  if (!file) {
    process.stderr.write(`refract validate: give a config file\n\n${USAGE}\n`);
    return 2;
  }
  // load() returns a ConfigResult (warnings on both branches); `Loaded` does not name them yet.
  const r = load(file) as Loaded & { readonly warnings?: readonly ConfigIssue[] };
  const warnings = r.warnings ?? [];
  if (!r.ok) {
    process.stdout.write(formatIssues(file, [...r.issues, ...warnings]) + '\n');
    return 1;
  }
  const tcpPorts = r.config.apps.reduce((n, a) => n + (a.edgePorts.end - a.edgePorts.start + 1), 0);
  const w = warnings.length === 0 ? '' : `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`;
  process.stdout.write(`${file}: OK (${r.config.apps.length} apps, ${tcpPorts} edge ports, ${r.config.origins.length} builtin origins${w})\n`);
  if (warnings.length > 0) process.stdout.write(formatIssues(file, warnings).split('\n').slice(1).join('\n') + '\n');
  return 0;
}

function eventSink(target: string | undefined, edge: EdgeNode): WriteStream | NodeJS.WriteStream | undefined {
  if (!target) return undefined;
  const out = target === 'stdout' ? process.stdout : createWriteStream(resolvePath(target), { flags: 'a' });
  edge.events.events$.subscribe((e) => out.write(JSON.stringify(e) + '\n'));
  return out;
}

/** Resolves relative certificate and CA-bundle paths against `base` (the config file's folder). */
function relativeCertSource(base: string, inner: CertSource): CertSource {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolvePath(base, p));
  return {
    identities: (reqs) =>
      inner.identities(
        reqs.map((r) => ({
          ...r,
          ...(r.certFile !== undefined ? { certFile: abs(r.certFile) } : {}),
          ...(r.keyFile !== undefined ? { keyFile: abs(r.keyFile) } : {}),
        })),
      ),
    trust: (f) => inner.trust(f === undefined ? undefined : abs(f)),
    watchedFiles: () => inner.watchedFiles(),
  };
}

/** Settings `serve` reads once at start; a reload that changes them says so instead of ignoring it silently. */
function restartOnlyChanges(running: RefractConfig, next: RefractConfig): string[] {
  const out: string[] = [];
  if (JSON.stringify(running.geo) !== JSON.stringify(next.geo)) out.push('geo');
  if (running.node.tls.dataDir !== next.node.tls.dataDir) out.push('edge.tls.data_dir');
  return out;
}

async function serveCommand(file: string | undefined, opts: { events?: string; logLevel?: string; trace?: string; watch?: boolean }): Promise<number> {
  if (!file) {
    process.stderr.write(`refract serve: --config FILE is required\n\n${USAGE}\n`);
    return 2;
  }
  const first = load(file);
  if (!first.ok) {
    process.stderr.write(formatIssues(file, first.issues) + '\n');
    return 1;
  }
  let config = first.config;
  const log: Logger = createLogger({ level: opts.logLevel ?? config.log.level, node: config.node.id });
  const net = createNodeNetwork({ dnsServers: config.node.dnsServers });
  let geo: LoadedGeo | undefined;
  if (config.geo.country.length > 0 || config.geo.asn.length > 0) {
    try {
      geo = await loadGeo(
        { country: config.geo.country, asn: config.geo.asn },
        { watch: true, onEvent: (e) => log.info({ geo: e }, 'geolocation data') },
      );
    } catch (e) {
      process.stderr.write(`refract: could not load geo data: ${isRefractError(e) ? `${e.code}: ` : ''}${(e as Error).message}\n`);
      return 1;
    }
  }
  // Certificate paths and the data directory are relative to the config file's folder, like every other path.
  const baseDir = dirname(resolvePath(file));
  const certs = relativeCertSource(baseDir, createNodeCertSource({ dataDir: resolvePath(baseDir, config.node.tls.dataDir), log: log.child({ component: 'certs' }) }));
  const edge = new EdgeNode(geo ? { net, log, geo, certs } : { net, log, certs }, config);
  const sink = eventSink(opts.events ?? config.log.events, edge);
  const traceOut = opts.trace ? createWriteStream(resolvePath(opts.trace), { flags: 'a' }) : undefined;
  if (traceOut) edge.trace.records$.subscribe((r) => traceOut.write(traceLine(r) + '\n'));

  let origins: RunningOrigins | undefined;
  try {
    origins = await startBuiltinOrigins(net, config.origins, log);
    const r = await edge.apply(config);
    log.info({ event: 'serve.started', config: file, ...r }, 'refract is serving');
    for (const app of config.apps) {
      const o = app.origin.kind === 'direct'
        ? app.origin.targets.map((t) => `${t.protocol}://${t.host.includes(':') ? `[${t.host}]` : t.host}:${formatPortRange(t.ports)}`).join(',')
        : `dns:${app.origin.name}`;
      process.stderr.write(`refract: app ${app.id} (${app.dns.name}) ${app.protocol}/${formatPortRange(app.edgePorts)} on ${config.node.addresses.join(',')} → ${o}\n`);
    }
  } catch (e) {
    log.fatal({ err: e }, 'refract could not start');
    process.stderr.write(`refract: could not start: ${isRefractError(e) ? `${e.code}: ` : ''}${(e as Error).message}\n`);
    await origins?.close();
    await edge.shutdown(0);
    return 1;
  }

  // Reload: SIGHUP or a change of the file, debounced; an invalid file is rejected whole.
  const triggers = new Subject<string>();
  process.on('SIGHUP', () => triggers.next('SIGHUP'));
  let watcher: FileWatch | undefined;
  if (opts.watch !== false) {
    try {
      // Edits in place, renames over the file and Kubernetes' ConfigMap symlink swaps (src/net/node/file-watch.ts).
      watcher = watchFileChanges(file, () => triggers.next('file change'), { debounceMs: 50, persistent: true });
    } catch (e) {
      log.warn({ err: e }, 'cannot watch the config file; reload with SIGHUP');
    }
  }
  const snapshots: Observable<RefractConfig> = triggers.pipe(
    debounceTime(150),
    map((why) => {
      const r = load(file);
      if (!r.ok) log.error({ event: 'config.rejected', trigger: why, issues: r.issues }, 'new configuration is invalid; keeping the running one');
      else log.info({ event: 'config.reload', trigger: why }, 'reloading configuration');
      return r;
    }),
    filter((r): r is { ok: true; config: RefractConfig } => r.ok),
    map((r) => r.config),
  );
  // Certificate files: polled (a watch on an inode misses rename-saves and Kubernetes symlink swaps), and
  // re-listed after every apply since the config names them.
  let certFiles: readonly string[] = [];
  const certReload = (): void => {
    edge.reloadCertificates().then(
      () => log.info({ event: 'tls.certificates_reloaded' }, 'certificates reloaded'),
      (err: unknown) => log.error({ event: 'tls.certificates_rejected', err }, 'certificate reload failed; the running certificates stay'),
    );
  };
  const watchCerts = (): void => {
    for (const f of certFiles) unwatchFile(f, certReload);
    certFiles = edge.tlsWatchedFiles();
    for (const f of certFiles) watchFile(f, { interval: 2_000, persistent: false }, certReload);
  };
  watchCerts();
  // EdgeNode.follow applies each snapshot in turn and logs config.applied / config.rejected; what follows is the
  // CLI's own part of a successful reload, one at a time, in order.
  const reloaded = async (next: RefractConfig): Promise<void> => {
    const restartOnly = restartOnlyChanges(config, next);
    if (restartOnly.length > 0) {
      log.warn(
        { event: 'config.restart_needed', fields: restartOnly },
        `changed settings that take effect only on restart (the running values stay): ${restartOnly.join(', ')}`,
      );
    }
    watchCerts();
    if (JSON.stringify(next.origins) !== JSON.stringify(config.origins)) {
      await origins?.close().catch(() => undefined);
      origins = await startBuiltinOrigins(net, next.origins, log).catch((err: unknown) => {
        log.error({ err }, 'builtin origins could not restart');
        return undefined;
      });
    }
    config = next;
  };
  edge
    .follow(snapshots)
    .pipe(concatMap((o) => (o.ok ? reloaded(o.config) : Promise.resolve())))
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
      for (const f of certFiles) unwatchFile(f, certReload);
      triggers.complete();
      edge
        .shutdown(config.node.drainTimeoutMs)
        .then(() => origins?.close())
        .then(() => {
          log.info({ event: 'serve.stopped' }, 'stopped');
          if (sink && sink !== process.stdout) (sink as WriteStream).end();
          traceOut?.end();
          geo?.close();
          resolveExit(0);
        })
        .catch((err: unknown) => {
          log.error({ err }, 'shutdown failed');
          resolveExit(1);
        });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

interface ConnectTlsOptions {
  ca?: string;
  servername?: string;
  insecure: boolean;
}

/**
 * stdin → socket, socket → stdout; half-closes when stdin ends and exits when the server closes. With `tls`, the
 * handshake's outcome (version, cipher, who the certificate is for) goes to stderr first.
 */
function connectCommand(target: string | undefined, tls?: ConnectTlsOptions): Promise<number> {
  const m = target ? /^\[?([^\]]+?)\]?:(\d+)$/.exec(target) : null;
  if (!m) {
    process.stderr.write('refract connect: give HOST:PORT, e.g. 127.0.0.1:6100 or [::1]:6100\n');
    return Promise.resolve(2);
  }
  let ca: string | undefined;
  if (tls?.ca !== undefined) {
    try {
      ca = readFileSync(tls.ca, 'utf8');
    } catch (e) {
      process.stderr.write(`refract connect: cannot read --ca ${tls.ca}: ${(e as Error).message}\n`);
      return Promise.resolve(2);
    }
  }
  return new Promise((done) => {
    const host = m[1]!;
    const port = Number(m[2]);
    const s = tls
      ? tlsConnect({
          host,
          port,
          ...(ca === undefined ? {} : { ca }),
          ...(tls.servername === undefined ? {} : { servername: tls.servername }),
          rejectUnauthorized: !tls.insecure,
          minVersion: 'TLSv1.1',
        })
      : netConnect({ host, port, allowHalfOpen: true });
    if (tls) {
      const t = s as TLSSocket;
      t.on('secureConnect', () => {
        const subject = t.getPeerX509Certificate()?.subject.replaceAll('\n', ', ') ?? '?';
        process.stderr.write(`refract connect: ${t.getProtocol() ?? '?'} ${t.getCipher().standardName} certificate ${subject}${t.authorized ? '' : ` (not verified: ${String(t.authorizationError)})`}\n`);
        process.stdin.pipe(s);
      });
    } else s.on('connect', () => process.stdin.pipe(s));
    s.pipe(process.stdout);
    s.on('error', (e: NodeJS.ErrnoException) => {
      process.stderr.write(`refract connect: ${e.code ?? e.message}\n`);
      done(1);
    });
    s.on('close', (hadError) => done(hadError ? 1 : 0));
  });
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return cmd ? 0 : 2;
  }
  // Parsed per command: other commands (sim, replay) have flags of their own that this parser would refuse.
  const args = () =>
    parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        events: { type: 'string' },
        trace: { type: 'string' },
        'log-level': { type: 'string' },
        'no-watch': { type: 'boolean' },
      },
    });
  switch (cmd) {
    case 'serve': {
      const { values, positionals } = args();
      const o: { events?: string; logLevel?: string; trace?: string; watch?: boolean } = {};
      if (values['no-watch'] === true) o.watch = false;
      if (values.events !== undefined) o.events = values.events;
      if (values.trace !== undefined) o.trace = values.trace;
      if (values['log-level'] !== undefined) o.logLevel = values['log-level'];
      return serveCommand(values.config ?? positionals[0], o);
    }
    case 'connect': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { tls: { type: 'boolean' }, ca: { type: 'string' }, servername: { type: 'string' }, insecure: { type: 'boolean' } },
      });
      const tls: ConnectTlsOptions | undefined = values.tls
        ? { insecure: values.insecure === true, ...(values.ca === undefined ? {} : { ca: values.ca }), ...(values.servername === undefined ? {} : { servername: values.servername }) }
        : undefined;
      return connectCommand(positionals[0], tls);
    }
    case 'validate': {
      const { values, positionals } = args();
      return validateCommand(values.config ?? positionals[0]);
    }
    case 'sim': {
      const sim = await import('./scenario/cli.ts');
      return sim.simCommand(rest, sim.processSimIo(() => performance.now()));
    }
    case 'replay':
      return (await import('./scenario/replay.ts')).replayCommand(rest);
    case 'ca':
      return (await import('./cli/ca.ts')).caCommand(rest);
    case 'machines':
      return (await import('./cli/machines.ts')).machinesCommand(rest);
    default:
      process.stderr.write(`refract: unknown command '${cmd}'\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Let stdout/stderr flush, then leave even if a stray handle (a watcher, a timer) remains.
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`refract: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
