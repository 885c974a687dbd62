/**
 * The proxies under test, each started with ONE worker process/thread (or N: `setWorkers`, the harness's
 * `--workers N`), pinned to the proxy core(s), listening on
 * 127.0.0.1 with one port in front of the origin's echo port and one in front of its sink port. Configs are
 * generated into a temp dir per start and stay at each tool's defaults apart from what one-worker operation and
 * ~10k concurrent connections need (worker/thread count, connection and fd limits, timeouts HAProxy requires).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeFileSync } from 'node:fs';
import type { SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertUdpPortsFree } from './udp-measure.ts';
import { assertPortsFree, childWorkers, cmdline, spawnChild, stopChild, waitForPorts, type Child } from './proc.ts';
import { isRefractCli, refractCli, type RefractLoad } from './refract-cli.ts';

export type ProxyName = 'nginx' | 'haproxy' | 'node-pipe' | 'refract' | 'refract-base' | 'refract-analytics' | 'refract-api' | 'refract-node' | 'refract-tsx' | 'node-raw';
export const ALL_PROXIES: readonly ProxyName[] = ['nginx', 'haproxy', 'node-pipe', 'refract'];
/**
 * Every proxy `--proxies` may name; opt-in: `refract-base` (Refract from another checkout: `--baseline DIR`) and
 * `refract-analytics` (this checkout with `api:`, so the analytics store is fed: compare with `refract`), `refract-api`
 * (the same with `analytics: { enabled: false }`: against `refract-analytics`, the cost of writing analytics alone),
 * `refract-node` (this checkout on another Node binary: `--node PATH`; against `refract`, one runtime against another),
 * `refract-tsx` (this checkout from its TypeScript sources through tsx's loader, as `npm run refract` runs it; every
 * other Refract variant runs the build, dist/cli.js, as the installed package does: bench/refract-cli.ts), `node-raw`
 * (node-pipe's pipe on the runtime's socket handles, below net.Socket: bench/raw-proxy.ts).
 */
export const KNOWN_PROXIES: readonly ProxyName[] = [...ALL_PROXIES, 'refract-base', 'refract-analytics', 'refract-api', 'refract-node', 'refract-tsx', 'node-raw'];

/** The checkouts whose build (dist/) the Refract variants among `names` run: build them before the run (bench/refract-cli.ts). */
export function buildRoots(names: readonly ProxyName[]): string[] {
  const roots = new Set<string>();
  for (const n of names) {
    if (n === 'refract-base') {
      if (baselineRoot !== undefined) roots.add(baselineRoot);
    } else if (n.startsWith('refract') && n !== 'refract-tsx') roots.add(REPO_ROOT);
  }
  return [...roots];
}

/** The checkout `refract-base` runs (`--baseline DIR` sets it), for before/after comparisons in one run. */
let baselineRoot: string | undefined;
export function setBaseline(dir: string): void {
  baselineRoot = dir;
}

/** The Node binary `refract-node` runs this checkout on (`--node PATH` sets it), e.g. Node 24 beside the machine's. */
let altNode: string | undefined;
export function setAltNode(path: string): void {
  altNode = path;
}

/**
 * Workers per proxy (`--workers N` of bench/run.ts): nginx `worker_processes N`, HAProxy `nbthread N`, Refract
 * `serve --workers N`. node-pipe and node-raw are one process and are not run with N > 1.
 */
let workers = 1;
export function setWorkers(n: number): void {
  workers = n;
}

/**
 * Whether every proxy writes a line per finished connection to its stdout, a file in the run's folder (`--access-log
 * on|off` of bench/run.ts, default on), so all do the same work: nginx a JSON `access_log` of its stream module
 * (one `write` per session, its default: no `buffer=`), HAProxy its `option tcplog` line (`log stdout`), Refract
 * its JSON access log (`--access-log json`), each through `spawnLogging`. Off: none of them logs (`--access-log off`
 * for Refract). node-pipe and node-raw never log: they are the runtime's floor, not proxies an operator runs.
 */
let accessLog = true;
export function setAccessLog(on: boolean): void {
  accessLog = on;
}

/**
 * Whether nginx relays a client's FIN to the origin and keeps the connection until the origin's FIN
 * (`proxy_half_close on`; `--half-close on|off` of bench/run.ts, default on), as HAProxy (its default), node-raw
 * and Refract do, so all do the same work per connection. Off: nginx's default, which closes both legs as soon as
 * either side's FIN is read (no `shutdown`, no wait for the origin's FIN): fewer system calls and packets, and a
 * client that half-closes and then waits for the answer loses it.
 */
let halfClose = true;
export function setHalfClose(on: boolean): void {
  halfClose = on;
}

/**
 * `spawnChild` with the child's stdout on a file of the run's folder (`NAME.access.log`) when access logs are on:
 * nginx's `access_log /dev/stdout` needs a stdout it can open again (Node's `stdio: 'pipe'` is a socket pair, which
 * /dev/stdout cannot open), and a file is where an operator's access log goes. Every logging proxy writes there.
 */
function spawnLogging(dir: string, name: string, cmd: string, args: readonly string[], cpu: number | string | undefined, opts: SpawnOptions = {}): Child {
  if (!accessLog) return spawnChild(cmd, args, cpu, opts);
  const fd = openSync(join(dir, `${name}.access.log`), 'w');
  try {
    return spawnChild(cmd, args, cpu, { ...opts, stdio: ['ignore', fd, 'pipe'] });
  } finally {
    closeSync(fd);
  }
}

/** nginx's stream access log in the bench: the facts of Refract's JSON line, as nginx's stream variables give them. */
const NGINX_LOG_FORMAT =
  `log_format refract escape=json '{"time":"$time_iso8601","protocol":"$protocol","client_ip":"$remote_addr","client_port":$remote_port,` +
  `"edge_ip":"$server_addr","edge_port":$server_port,"origin":"$upstream_addr","status":$status,` +
  `"bytes_in":$bytes_received,"bytes_out":$bytes_sent,"duration_s":$session_time,"connection_id":$connection}';`;

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
/**
 * Connection limit for nginx and HAProxy: room for the idle-connection test (9,000 client + 9,000 upstream
 * sockets). HAProxy sizes its fd limit as 2 × maxconn + a few and refuses to start when it cannot raise
 * RLIMIT_NOFILE that far (a container's hard limit here is 20,000), so 9,900 keeps it under the limit.
 */
const MAX_CONNS = 9_900;
/**
 * UDP flows nginx must hold at once: the 10,000 of the UDP memory test, its warm-up and the rate loops. nginx
 * takes two connection slots per UDP session (the client side has no fd of its own, the upstream side has one).
 */
const MAX_UDP_SESSIONS = 12_000;
const NGINX_UDP = { port: 7113, keptPort: 7114 } as const;
const REFRACT_UDP = { port: 7103, keptPort: 7103 } as const;
const REFRACT_BASE_UDP = { port: 7183, keptPort: 7183 } as const;
const REFRACT_ANALYTICS_UDP = { port: 7143, keptPort: 7143 } as const;
const REFRACT_API_UDP = { port: 7153, keptPort: 7153 } as const;
const REFRACT_NODE_UDP = { port: 7187, keptPort: 7187 } as const;
const REFRACT_TSX_UDP = { port: 7197, keptPort: 7197 } as const;

export interface OriginPorts {
  readonly echo: number;
  readonly sink: number;
  /** The origin's UDP echo port. */
  readonly udp: number;
}

export interface RunningProxy {
  readonly child: Child;
  /**
   * The processes whose CPU and RSS are measured (summed): nginx's worker(s); Refract's process, or with
   * `--workers N` its supervisor (it writes the logs and events) and its N workers; otherwise the spawned process.
   */
  readonly measuredPids: readonly number[];
  stop(): Promise<void>;
}

export interface ProxyDef {
  readonly name: ProxyName;
  /** Listen ports in front of the origin's echo and sink ports. */
  readonly echoPort: number;
  readonly sinkPort: number;
  /**
   * UDP listen ports in front of the origin's UDP echo port, or undefined for a proxy without UDP proxying (then
   * `udpMissing` says why). `port` is how the proxy is usually deployed for UDP; `keptPort` keeps a session per
   * client address and port until it idles out, as Refract's flows do (the same port when that is all it does).
   */
  readonly udp?: { readonly port: number; readonly keptPort: number };
  readonly udpMissing?: string;
  /** Why this proxy cannot run here (binary or module missing), or undefined. */
  missing(): string | undefined;
  /** `version` line for the results file. */
  version(): string;
  /** `cpu`: a CPU number or a `taskset -c` list (`0,1` when the proxy has two workers on two cores). */
  start(dir: string, cpu: string | undefined, origin: OriginPorts): Promise<RunningProxy>;
}

function run(cmd: string, args: readonly string[]): string {
  // nginx -v and haproxy -v print to stderr and stdout respectively, both exiting 0: take both streams.
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, bin);
    if (dir !== '' && existsSync(p)) return p;
  }
  return undefined;
}

/** Waits for `child` to listen on `ports`; stops it on failure. Callers check the ports are free first. */
async function started(child: Child, ports: readonly number[], timeoutMs: number): Promise<void> {
  try {
    await waitForPorts(child, ports, timeoutMs);
  } catch (e) {
    await stopChild(child);
    throw e;
  }
}

const STARTUP_MS_NATIVE = 10_000;
/** Node proxies load TypeScript through tsx at start-up. */
const STARTUP_MS_NODE = 30_000;

const nginx: ProxyDef = {
  name: 'nginx',
  echoPort: 7111,
  sinkPort: 7112,
  udp: NGINX_UDP,
  missing() {
    if (which('nginx') === undefined) return 'nginx not installed (apt-get install -y nginx libnginx-mod-stream)';
    if (!existsSync(NGINX_STREAM_MODULE)) return `no ${NGINX_STREAM_MODULE} (apt-get install -y libnginx-mod-stream)`;
    return undefined;
  },
  version: () => run(which('nginx') ?? 'nginx', ['-v']),
  async start(dir, cpu, origin) {
    await assertPortsFree([this.echoPort, this.sinkPort]);
    await assertUdpPortsFree([NGINX_UDP.port, NGINX_UDP.keptPort]);
    const conf = join(dir, 'nginx.conf');
    const udpReuse = workers > 1 ? ' reuseport' : '';
    writeFileSync(
      conf,
      [
        `load_module ${NGINX_STREAM_MODULE};`,
        `worker_processes ${workers};`,
        `worker_rlimit_nofile ${2 * MAX_CONNS + 100};`,
        `pid ${join(dir, 'nginx.pid')};`,
        `error_log ${join(dir, 'nginx-error.log')} warn;`,
        // nginx counts both legs of a proxied connection (or UDP session) against worker_connections.
        `events { worker_connections ${2 * Math.max(MAX_CONNS, MAX_UDP_SESSIONS)}; }`,
        'stream {',
        ...(accessLog ? [`  ${NGINX_LOG_FORMAT}`, '  access_log /dev/stdout refract;'] : []),
        ...(halfClose ? ['  proxy_half_close on;'] : []),
        `  server { listen 127.0.0.1:${this.echoPort}; proxy_pass 127.0.0.1:${origin.echo}; }`,
        `  server { listen 127.0.0.1:${this.sinkPort}; proxy_pass 127.0.0.1:${origin.sink}; }`,
        // UDP as nginx documents it for request/response protocols (DNS): the session ends after one answer.
        // With several workers, `reuseport` gives each worker its own UDP socket and the kernel keeps a client's
        // datagrams on one worker (nginx's documented way; a shared UDP socket would split a session's datagrams).
        `  server { listen 127.0.0.1:${NGINX_UDP.port} udp${udpReuse}; proxy_pass 127.0.0.1:${origin.udp}; proxy_responses 1; }`,
        // UDP with sessions kept until proxy_timeout (10 min by default) of silence: one per client port, like a flow.
        `  server { listen 127.0.0.1:${NGINX_UDP.keptPort} udp${udpReuse}; proxy_pass 127.0.0.1:${origin.udp}; }`,
        '}',
        '',
      ].join('\n'),
    );
    const bin = which('nginx') ?? 'nginx';
    const child = spawnLogging(dir, this.name, bin, ['-p', dir, '-e', join(dir, 'nginx-error.log'), '-c', conf, '-g', 'daemon off;'], cpu);
    await started(child, [this.echoPort, this.sinkPort], STARTUP_MS_NATIVE);
    // A stream-only config: the master's children are the workers that do the work.
    return { child, measuredPids: await childWorkers(child, workers, 'nginx worker'), stop: () => stopChild(child) };
  },
};

const haproxy: ProxyDef = {
  name: 'haproxy',
  echoPort: 7121,
  sinkPort: 7122,
  udpMissing: 'n/a: HAProxy has no UDP proxying (only syslog forwarding and QUIC)',
  missing: () => (which('haproxy') === undefined ? 'haproxy not installed (apt-get install -y haproxy)' : undefined),
  version: () => run(which('haproxy') ?? 'haproxy', ['-v']).split('\n')[0] ?? '',
  async start(dir, cpu, origin) {
    await assertPortsFree([this.echoPort, this.sinkPort]);
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        `  nbthread ${workers}`,
        `  maxconn ${MAX_CONNS}`,
        ...(accessLog ? ['  log stdout format raw local0 info'] : []),
        'defaults',
        '  mode tcp',
        ...(accessLog ? ['  log global', '  option tcplog'] : []),
        `  maxconn ${MAX_CONNS}`,
        // HAProxy refuses to run without timeouts; these match nginx's stream defaults (60 s connect, 10 min idle).
        '  timeout connect 60s',
        '  timeout client 600s',
        '  timeout server 600s',
        'frontend fe_echo',
        `  bind 127.0.0.1:${this.echoPort}`,
        '  default_backend be_echo',
        'backend be_echo',
        `  server origin 127.0.0.1:${origin.echo}`,
        'frontend fe_sink',
        `  bind 127.0.0.1:${this.sinkPort}`,
        '  default_backend be_sink',
        'backend be_sink',
        `  server origin 127.0.0.1:${origin.sink}`,
        '',
      ].join('\n'),
    );
    // -db: foreground, no master-worker: the spawned process is the one doing the work.
    const child = spawnLogging(dir, this.name, which('haproxy') ?? 'haproxy', ['-f', cfg, '-db'], cpu);
    await started(child, [this.echoPort, this.sinkPort], STARTUP_MS_NATIVE);
    return { child, measuredPids: [child.pid], stop: () => stopChild(child) };
  },
};

/** A one-process Node pipe proxy run from `script` (argv: LISTEN=ORIGIN pairs), not run with `--workers` above 1. */
function pipeProxy(name: 'node-pipe' | 'node-raw', ports: { echo: number; sink: number }, script: string, version: string): ProxyDef {
  return {
    name,
    echoPort: ports.echo,
    sinkPort: ports.sink,
    udpMissing: 'n/a: a TCP pipe',
    missing: () => (workers > 1 ? 'one process only: not run with --workers above 1' : undefined),
    version: () => `node ${process.version} ${version}`,
    async start(_dir, cpu, origin) {
      await assertPortsFree([this.echoPort, this.sinkPort]);
      const child = spawnChild(process.execPath, ['--import', 'tsx', join(REPO_ROOT, script), `${this.echoPort}=${origin.echo}`, `${this.sinkPort}=${origin.sink}`], cpu, { cwd: REPO_ROOT });
      await started(child, [this.echoPort, this.sinkPort], STARTUP_MS_NODE);
      return { child, measuredPids: [child.pid], stop: () => stopChild(child) };
    },
  };
}

const nodePipe = pipeProxy('node-pipe', { echo: 7131, sink: 7132 }, 'bench/naive-proxy.ts', 'net.Socket.pipe');
/** The same pipe on the runtime's socket handles, below net.Socket (bench/raw-proxy.ts): what `net`/`stream` cost. */
const nodeRaw = pipeProxy('node-raw', { echo: 7177, sink: 7178 }, 'bench/raw-proxy.ts', 'tcp_wrap handles');

/**
 * The YAML `refract serve` reads: two TCP apps in front of the origin's echo and sink ports and, with `udpPort`,
 * a UDP app in front of its UDP echo port. UDP flows idle out after 10 min, nginx's proxy_timeout default, so
 * neither proxy expires flows during a measurement.
 */
export function refractConfig(echoPort: number, sinkPort: number, origin: OriginPorts, udpPort?: number): string {
  const udpApp =
    udpPort === undefined
      ? []
      : [`  - protocol: udp/${udpPort}`, '    dns: { type: CNAME, name: bench-udp.example.test }', `    origin_direct: ["udp://127.0.0.1:${origin.udp}"]`];
  return [
    'edge: { addresses: [127.0.0.1], udp_idle_timeout_ms: 600000 }',
    'log: { level: warn }',
    'apps:',
    `  - protocol: tcp/${echoPort}`,
    '    dns: { type: CNAME, name: bench-echo.example.test }',
    `    origin_direct: ["tcp://127.0.0.1:${origin.echo}"]`,
    `  - protocol: tcp/${sinkPort}`,
    '    dns: { type: CNAME, name: bench-sink.example.test }',
    `    origin_direct: ["tcp://127.0.0.1:${origin.sink}"]`,
    ...udpApp,
    '',
  ].join('\n');
}

/** This checkout's Refract on `ports`, started as `load` says (the build, or the sources through tsx). */
function thisCheckout(name: 'refract' | 'refract-tsx', ports: { echo: number; sink: number }, udp: { port: number; keptPort: number }, load: RefractLoad): ProxyDef {
  return {
    name,
    echoPort: ports.echo,
    sinkPort: ports.sink,
    udp,
    missing: () => (existsSync(join(REPO_ROOT, 'src/cli.ts')) ? undefined : 'src/cli.ts does not exist yet'),
    version: () => {
      const rev = run('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']);
      return `refract ${/^[0-9a-f]+$/.test(rev) ? rev : '(no commit)'} on node ${process.version}${load === 'tsx' ? ' (sources through tsx)' : ''}`;
    },
    async start(dir, cpu, origin) {
      await assertPortsFree([this.echoPort, this.sinkPort]);
      await assertUdpPortsFree([udp.port]);
      const cfg = join(dir, `${name}.yaml`);
      writeFileSync(cfg, refractConfig(this.echoPort, this.sinkPort, origin, udp.port));
      const child = spawnLogging(dir, name, process.execPath, [...refractCli(REPO_ROOT, load), 'serve', '--config', cfg, ...serveArgs()], cpu, {
        cwd: REPO_ROOT,
      });
      await started(child, [this.echoPort, this.sinkPort], STARTUP_MS_NODE);
      return { child, measuredPids: await refractPids(child), stop: () => stopChild(child) };
    },
  };
}

const refract = thisCheckout('refract', { echo: 7101, sink: 7102 }, REFRACT_UDP, 'build');
const refractTsx = thisCheckout('refract-tsx', { echo: 7195, sink: 7196 }, REFRACT_TSX_UDP, 'tsx');

/** `serve`'s `--workers N` when the run asks for more than one, and its access log as `--access-log` says. */
const serveArgs = (): string[] => [...(workers > 1 ? ['--workers', String(workers)] : []), '--access-log', accessLog ? 'json' : 'off'];

/** The Refract process, and with `--workers N` its N workers too (the supervisor is measured with them). */
async function refractPids(child: Child): Promise<number[]> {
  // Under tsx its esbuild service is a child too: the workers are the children running the CLI.
  return workers > 1 ? [child.pid, ...(await childWorkers(child, workers, 'Refract worker', (pid) => isRefractCli(cmdline(pid))))] : [child.pid];
}

/** Refract from another checkout (`--baseline DIR`, e.g. a `git worktree` of main before a change), same config. */
const refractBase: ProxyDef = {
  name: 'refract-base',
  echoPort: 7181,
  sinkPort: 7182,
  udp: REFRACT_BASE_UDP,
  missing: () =>
    baselineRoot === undefined ? 'give --baseline DIR (a checkout to compare against)' : existsSync(join(baselineRoot, 'src/cli.ts')) ? undefined : `${baselineRoot}/src/cli.ts does not exist`,
  version: () => {
    const rev = run('git', ['-C', baselineRoot ?? '.', 'rev-parse', '--short', 'HEAD']);
    return `refract ${/^[0-9a-f]+$/.test(rev) ? rev : '(no commit)'} (baseline ${baselineRoot}) on node ${process.version}`;
  },
  async start(dir, cpu, origin) {
    const root = baselineRoot!;
    await assertPortsFree([this.echoPort, this.sinkPort]);
    await assertUdpPortsFree([REFRACT_BASE_UDP.port]);
    const cfg = join(dir, 'refract-base.yaml');
    writeFileSync(cfg, refractConfig(this.echoPort, this.sinkPort, origin, REFRACT_BASE_UDP.port));
    const child = spawnLogging(dir, this.name, process.execPath, [...refractCli(root), 'serve', '--config', cfg, ...serveArgs()], cpu, { cwd: root });
    await started(child, [this.echoPort, this.sinkPort], STARTUP_MS_NODE);
    return { child, measuredPids: await refractPids(child), stop: () => stopChild(child) };
  },
};

/**
 * This checkout with the management API on 127.0.0.1:7146 (database in the run's folder), so every connection's
 * events feed the analytics store (docs/api.md, "Analytics"): against `refract` in the same run, the cost of
 * analytics on the connection rate.
 */
const refractAnalytics: ProxyDef = {
  name: 'refract-analytics',
  echoPort: 7141,
  sinkPort: 7142,
  udp: REFRACT_ANALYTICS_UDP,
  missing: () => refract.missing(),
  version: () => `${refract.version()} with api: (analytics on)`,
  async start(dir, cpu, origin) {
    await assertPortsFree([this.echoPort, this.sinkPort, 7146]);
    await assertUdpPortsFree([REFRACT_ANALYTICS_UDP.port]);
    const cfg = join(dir, 'refract-analytics.yaml');
    const api = ['api: { listen: 127.0.0.1:7146 }', 'zones: [{ name: example.test }]', 'node: { data_dir: refract-analytics-data }', ''].join('\n');
    writeFileSync(cfg, api + refractConfig(this.echoPort, this.sinkPort, origin, REFRACT_ANALYTICS_UDP.port));
    const child = spawnLogging(dir, this.name, process.execPath, [...refractCli(REPO_ROOT), 'serve', '--config', cfg, ...serveArgs()], cpu, {
      cwd: REPO_ROOT,
    });
    await started(child, [this.echoPort, this.sinkPort], STARTUP_MS_NODE);
    return { child, measuredPids: await refractPids(child), stop: () => stopChild(child) };
  },
};

/** `refract-analytics` with `analytics: { enabled: false }` (API on 127.0.0.1:7156): the API without the analytics store. */
const refractApi: ProxyDef = {
  name: 'refract-api',
  echoPort: 7151,
  sinkPort: 7152,
  udp: REFRACT_API_UDP,
  missing: () => refract.missing(),
  version: () => `${refract.version()} with api: and analytics off`,
  async start(dir, cpu, origin) {
    await assertPortsFree([this.echoPort, this.sinkPort, 7156]);
    await assertUdpPortsFree([REFRACT_API_UDP.port]);
    const cfg = join(dir, 'refract-api.yaml');
    const api = ['api: { listen: 127.0.0.1:7156 }', 'analytics: { enabled: false }', 'zones: [{ name: example.test }]', 'node: { data_dir: refract-api-data }', ''].join('\n');
    writeFileSync(cfg, api + refractConfig(this.echoPort, this.sinkPort, origin, REFRACT_API_UDP.port));
    const child = spawnLogging(dir, this.name, process.execPath, [...refractCli(REPO_ROOT), 'serve', '--config', cfg, ...serveArgs()], cpu, {
      cwd: REPO_ROOT,
    });
    await started(child, [this.echoPort, this.sinkPort], STARTUP_MS_NODE);
    return { child, measuredPids: await refractPids(child), stop: () => stopChild(child) };
  },
};

/**
 * This checkout, same config as `refract`, run by the Node binary given with `--node PATH` (the bench itself, the
 * load generator and the other Node proxies stay on the machine's Node). Only `serve` without `api:` runs, so no
 * native addon is loaded and the checkout's node_modules serves both runtimes.
 */
const refractNode: ProxyDef = {
  name: 'refract-node',
  echoPort: 7185,
  sinkPort: 7186,
  udp: REFRACT_NODE_UDP,
  missing: () =>
    altNode === undefined ? 'give --node PATH (a node binary to run this checkout on)' : existsSync(altNode) ? refract.missing() : `${altNode} does not exist`,
  version: () => `${refract.version().replace(/ on node \S+$/, '')} on node ${run(altNode ?? 'node', ['--version'])} (${altNode})`,
  async start(dir, cpu, origin) {
    await assertPortsFree([this.echoPort, this.sinkPort]);
    await assertUdpPortsFree([REFRACT_NODE_UDP.port]);
    const cfg = join(dir, 'refract-node.yaml');
    writeFileSync(cfg, refractConfig(this.echoPort, this.sinkPort, origin, REFRACT_NODE_UDP.port));
    const child = spawnLogging(dir, this.name, altNode!, [...refractCli(REPO_ROOT), 'serve', '--config', cfg, ...serveArgs()], cpu, { cwd: REPO_ROOT });
    await started(child, [this.echoPort, this.sinkPort], STARTUP_MS_NODE);
    return { child, measuredPids: await refractPids(child), stop: () => stopChild(child) };
  },
};

export const PROXIES: Readonly<Record<ProxyName, ProxyDef>> = {
  nginx,
  haproxy,
  'node-pipe': nodePipe,
  refract,
  'refract-base': refractBase,
  'refract-analytics': refractAnalytics,
  'refract-api': refractApi,
  'refract-node': refractNode,
  'refract-tsx': refractTsx,
  'node-raw': nodeRaw,
};
