/**
 * `refract serve | connect | validate | sim | replay | ca | token | machines`. Wiring only: process signals, files and
 * the real network live here; the engine is in src/edge and below.
 */
import type { ConfigResult } from './model/config.ts';
import type { ConfigFileLimits } from './model/config-file.ts';
import type { ConfigIssue } from './model/types.ts';
import { didYouMean, parseCommand, refractVersion } from './cli/args.ts';
import { exitAfterFlush, quietOnClosedPipe } from './cli/output.ts';

const USAGE = `refract — L4 edge proxy (Spectrum-style apps) with a deterministic network simulator

Usage:
  refract serve --config FILE [--access-log text|json|off] [--events FILE|stdout] [--trace FILE]
                [--log-level LEVEL] [--no-watch] [--pid-file FILE] [--check]
      Proxy the apps in FILE (YAML or JSON), one access-log line per connection on stdout. Reloads on SIGHUP and
      when FILE changes; SIGTERM/SIGINT drain and exit 0. --check: load and bind everything, then exit.
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
  refract token create --config FILE --name NAME | token list --config FILE | token revoke --config FILE ID|NAME
      Tokens for the management API (docs/api.md); create prints the new token once, as the last stdout line.
  refract edge-ips rotate --config FILE [--token TOKEN] APP
      Move APP (id or dns.name) to fresh edge IPs through the running node's API (docs/api.md); the old ones drain.
  refract machines [--machine tcpConnection|udpFlow] [--write FILE]
      Print the connection and flow state machines as Mermaid diagrams drawn from their XState definitions
      (docs/architecture.md); --write rewrites the diagrams embedded in FILE.
  refract COMMAND --help    the usage of one command
  refract --version         the version

Docs: docs/cli.md, docs/configuration.md, docs/errors.md, docs/architecture.md`;

const VALIDATE_USAGE = `Usage: refract validate FILE [--max-config-bytes N] [--max-config-nodes N]
  Print every problem in the configuration FILE (YAML or JSON) with its code and location (docs/errors.md).
  -c, --config FILE        the same as giving FILE
  --max-config-bytes N     refuse a larger file before reading it (E_CONFIG_TOO_LARGE; default 4M; K, M, G)
  --max-config-nodes N     refuse a file of more YAML nodes before parsing it (E_CONFIG_TOO_COMPLEX; default 500000)
Exit: 0 the file is valid, 1 it has a problem (each is printed on stdout), 2 invalid command line.`;

const COMMANDS = ['serve', 'connect', 'validate', 'sim', 'replay', 'ca', 'machines', 'token', 'edge-ips', 'help'];

type Loaded = ConfigResult;

interface ConfigReaders {
  /**
   * Reads and checks FILE within `limits` (size before reading, UTF-8, node count: src/model/config-file.ts). A
   * ConfigResult: issues and warnings carry line and column; `warnings` is there on both branches.
   */
  load(file: string, limits?: ConfigFileLimits): Loaded;
  /** `load` in a worker thread, so parsing never stalls the thread that serves connections (`refract serve`). */
  loadOffThread(file: string, opts?: { limits?: ConfigFileLimits | undefined; raw?: boolean }): Promise<Loaded>;
}

/**
 * The config readers, imported by the commands that read a config only (the schema and the YAML parser behind them
 * take a quarter of a second to load): `refract sim` loads its own copy in its worker thread (src/cli/sim-thread.ts).
 */
async function configReaders(): Promise<ConfigReaders> {
  const [{ loadConfigFileOffThread, readConfigFile }, { CONFIG_FILE_LIMITS }] = await Promise.all([import('./net/node/config-file.ts'), import('./model/config-file.ts')]);
  return {
    load: (file, limits = CONFIG_FILE_LIMITS) => readConfigFile(file, limits),
    loadOffThread: (file, opts = {}) => loadConfigFileOffThread(file, { raw: opts.raw ?? true, ...(opts.limits ? { limits: opts.limits } : {}) }),
  };
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

function validateCommand(file: string | undefined, limits: ConfigFileLimits, load: ConfigReaders['load']): number {
  if (!file) {
    process.stderr.write(`refract validate: give a config file\n\n${USAGE}\n`);
    return 2;
  }
  const r = load(file, limits);
  const warnings = r.warnings;
  if (!r.ok) {
    process.stdout.write(formatIssues(file, [...r.issues, ...warnings]) + '\n');
    return 1;
  }
  const tcpPorts = r.config.apps.reduce((n, a) => n + (a.edgePorts.end - a.edgePorts.start + 1), 0);
  const w = warnings.length === 0 ? '' : `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`;
  const n = (k: number, what: string): string => `${k} ${what}${k === 1 ? '' : 's'}`;
  process.stdout.write(`${file}: OK (${n(r.config.apps.length, 'app')}, ${n(tcpPorts, 'edge port')}, ${n(r.config.origins.length, 'builtin origin')}${w})\n`);
  if (warnings.length > 0) process.stdout.write(formatIssues(file, warnings).split('\n').slice(1).join('\n') + '\n');
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    if (cmd) process.stdout.write(USAGE + '\n');
    else process.stderr.write(USAGE + '\n');
    return cmd ? 0 : 2;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    process.stdout.write(`refract ${refractVersion()}\n`);
    return 0;
  }
  switch (cmd) {
    case 'serve':
      return (await import('./cli/serve.ts')).serveMain(rest, { ...(await configReaders()), formatIssues });
    case 'connect':
      return (await import('./cli/connect.ts')).connectCommand(rest);
    case 'validate': {
      const p = parseCommand('validate', rest, { config: { type: 'string', short: 'c' }, 'max-config-bytes': { type: 'string' }, 'max-config-nodes': { type: 'string' } }, VALIDATE_USAGE);
      if (!p.ok) return p.code;
      if (p.positionals.length + (p.values.config === undefined ? 0 : 1) > 1) {
        process.stderr.write(`refract validate: give one config file\n\n${VALIDATE_USAGE}\n`);
        return 2;
      }
      const limits = (await import('./cli/config-limits.ts')).configLimits(p.values);
      if (typeof limits === 'string') {
        process.stderr.write(`refract validate: ${limits}\n\n${VALIDATE_USAGE}\n`);
        return 2;
      }
      return validateCommand(p.values.config ?? p.positionals[0], limits, (await configReaders()).load);
    }
    case 'sim':
      // In a worker thread with a larger young generation (src/cli/sim-thread.ts says why).
      return (await import('./cli/sim-thread.ts')).simInWorker(rest);
    case 'replay':
      return (await import('./scenario/replay.ts')).replayCommand(rest);
    case 'ca':
      return (await import('./cli/ca.ts')).caCommand(rest);
    case 'machines':
      return (await import('./cli/machines.ts')).machinesCommand(rest);
    case 'token':
      return (await import('./cli/token.ts')).tokenCommand(rest);
    case 'edge-ips':
      return (await import('./cli/edge-ips.ts')).edgeIpsCommand(rest);
    default: {
      const guess = cmd.startsWith('-') ? undefined : didYouMean(cmd, COMMANDS);
      const what = cmd.startsWith('-') ? `unknown flag ${cmd} (flags go after the command)` : `unknown command '${cmd}'`;
      process.stderr.write(`refract: ${what}${guess ? `; did you mean \`${guess}\`?` : ''}\n\n${USAGE}\n`);
      return 2;
    }
  }
}

quietOnClosedPipe();
main(process.argv.slice(2)).then(
  // Every command returns its exit code; the process leaves once stdout and stderr have flushed (src/cli/output.ts).
  (code) => exitAfterFlush(code),
  (err: unknown) => {
    process.stderr.write(`refract: ${(err as Error).stack ?? String(err)}\n`);
    return exitAfterFlush(1);
  },
);
