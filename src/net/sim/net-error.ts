/**
 * Socket errors shaped as Node raises them (`code`, negative `errno`, `syscall`, `address`, `port`, message
 * `"<syscall> <CODE> <address>:<port>"`), so code under test cannot tell the simulator from libuv by the error.
 */
import { type NetError } from '../ports.ts';

/** Linux errno values as libuv reports them (negated), for the codes the simulator raises. */
const ERRNO: Readonly<Record<string, number>> = {
  EPIPE: -32,
  EACCES: -13,
  EADDRINUSE: -98,
  EADDRNOTAVAIL: -99,
  ENETUNREACH: -101,
  ECONNRESET: -104,
  ETIMEDOUT: -110,
  ECONNREFUSED: -111,
  EHOSTUNREACH: -113,
};

/** libuv's descriptions, used where Node puts one in the message (listen/bind errors). */
const DESCRIPTION: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available',
  EACCES: 'permission denied',
};

/** A NetError with Node's fields. `port` is omitted when 0, as Node omits it. */
export function netError(code: string, syscall: string, address?: string, port?: number): NetError {
  const where = address === undefined ? '' : port ? ` ${address}:${port}` : ` ${address}`;
  const desc = DESCRIPTION[code];
  const message = desc !== undefined && (syscall === 'listen' || syscall === 'bind') ? `${syscall} ${code}: ${desc}${where}` : `${syscall} ${code}${where}`;
  const err = new Error(message) as NetError & { errno?: number };
  err.code = code;
  const errno = ERRNO[code];
  if (errno !== undefined) err.errno = errno;
  err.syscall = syscall;
  if (address !== undefined) err.address = address;
  if (port) err.port = port;
  return err;
}

/** A DNS error as `dns.promises.Resolver` raises it: `code`, `syscall` ('queryA', …), `hostname`. */
export function dnsError(code: string, syscall: string, hostname: string): NetError {
  const err = new Error(`${syscall} ${code} ${hostname}`) as NetError & { hostname?: string };
  err.code = code;
  err.syscall = syscall;
  err.hostname = hostname;
  return err;
}

/** A Node internal error (`ERR_*`), which carries a code but no errno/syscall. */
export function nodeError(code: string, message: string, kind: 'Error' | 'RangeError' = 'Error'): NetError {
  const err = (kind === 'RangeError' ? new RangeError(message) : new Error(message)) as NetError;
  err.code = code;
  return err;
}

/** Node's port validation: an integer in 0..65535 (RangeError ERR_SOCKET_BAD_PORT otherwise). */
export function badPort(port: number, allowZero: boolean): NetError | undefined {
  if (Number.isInteger(port) && port >= (allowZero ? 0 : 1) && port <= 65_535) return undefined;
  return nodeError('ERR_SOCKET_BAD_PORT', `Port should be >= 0 and < 65536. Received ${String(port)}.`, 'RangeError');
}
