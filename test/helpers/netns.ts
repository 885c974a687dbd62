/**
 * A private network namespace for a test (Linux): `unshare -rn` makes a user and network namespace (no root needed
 * where unprivileged user namespaces are allowed; as root it always works), whose only interface is its own `lo`.
 * The test then owns every address and port in it: it can route a whole IPv6 prefix to `lo` and let processes
 * bind any address of it, which the host's `lo` (only ::1) cannot offer.
 *
 * - `openNetns(setup)` starts the namespace's first process: a shell that runs `setup` (commands such as
 *   `ip -6 route add local fd00:10::/64 dev lo`), then becomes test/helpers/netns-agent.ts, which keeps the
 *   namespace alive and relays TCP connections from the test (outside) to addresses inside over a Unix socket.
 * - `ns.prefix` is the command prefix that runs a program inside (`nsenter -t PID -U -n --preserve-credentials`):
 *   for `refract serve`, `dig`, `refract edge-ips rotate`.
 * - `ns.connect(host, port)` opens a TCP connection inside the namespace, through the agent.
 * - `ns.close()` kills the agent; the namespace goes when its last process exits.
 *
 * `netnsUnavailable()` says why a namespace cannot be made here (no `unshare`, `nsenter` or `ip`, or the kernel or
 * a sandbox refuses user namespaces), or undefined when it can.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOnPath } from './peers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AGENT = fileURLToPath(new URL('./netns-agent.ts', import.meta.url));

/** `name` on PATH or in the sbin folders (`ip` lives in /usr/sbin, which a non-root PATH may lack). */
export function findTool(name: string): string | undefined {
  return findOnPath(name) ?? ['/usr/sbin', '/sbin'].map((d) => join(d, name)).find(isExecutable);
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Why no namespace can be made here, or undefined when one can (tried once: `unshare -rn true`). */
export function netnsUnavailable(): string | undefined {
  for (const tool of ['unshare', 'nsenter', 'ip']) {
    if (findTool(tool) === undefined) return `${tool} is not installed (util-linux, iproute2)`;
  }
  try {
    execFileSync(findTool('unshare')!, ['-rn', 'true'], { stdio: 'pipe', timeout: 10_000 });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    return `unshare -rn is refused here (${stderr || String(e)}): user namespaces are off or blocked by a sandbox`;
  }
  return undefined;
}

export interface Netns {
  /** Runs a program inside the namespace: `[...ns.prefix, program, ...args]`. */
  readonly prefix: readonly string[];
  /** A TCP connection to host:port from inside the namespace, paused (attach a reader, then resume); rejects with an Error whose `code` is the errno. */
  connect(host: string, port: number): Promise<net.Socket>;
  close(): Promise<void>;
}

/**
 * Creates the namespace: `lo` up, then `setup` (shell commands run as root of the namespace, `&&`-joined), then the
 * agent. Resolves when the agent listens (bounded: 30 s).
 */
export async function openNetns(setup: readonly string[]): Promise<Netns> {
  const dir = mkdtempSync(join(tmpdir(), 'refract-netns-'));
  const sock = join(dir, 'agent.sock');
  const script = ['ip link set lo up', ...setup, 'exec "$@"'].join(' && ');
  const child: ChildProcess = spawn(findTool('unshare')!, ['-rn', 'sh', '-c', script, 'sh', process.execPath, '--import', 'tsx', AGENT, sock], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` },
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`the namespace agent did not start within 30 s: ${err}`)), 30_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    const early = (code: number | null): void => fail(new Error(`the namespace setup exited (${code}): ${err}`));
    child.once('exit', early);
    child.stdout!.on('data', () => {
      if (!out.includes('ready')) return;
      clearTimeout(timer);
      child.off('exit', early);
      resolve();
    });
  });
  const prefix = [findTool('nsenter')!, '-t', String(child.pid), '-U', '-n', '--preserve-credentials', '--'];
  return {
    prefix,
    connect(host, port) {
      return new Promise((resolve, reject) => {
        const s = net.connect(sock);
        let head = Buffer.alloc(0);
        const onData = (d: Buffer): void => {
          head = Buffer.concat([head, d]);
          const nl = head.indexOf(10);
          if (nl === -1) return;
          s.off('data', onData);
          const line = head.subarray(0, nl).toString('utf8');
          const rest = head.subarray(nl + 1);
          if (line === 'ok') {
            // Paused until the caller reads: bytes that came with "ok" (an origin's banner, when the agent is slow)
            // would otherwise flow to no listener and be lost. The caller attaches 'data' and calls resume().
            s.pause();
            if (rest.length > 0) s.unshift(rest);
            resolve(s);
            return;
          }
          s.destroy();
          reject(Object.assign(new Error(`connect ${host}:${port} in the namespace: ${line}`), { code: line.replace(/^error /, '') }));
        };
        s.on('data', onData);
        s.once('error', reject);
        s.write(`${JSON.stringify({ host, port })}\n`);
      });
    },
    async close() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
