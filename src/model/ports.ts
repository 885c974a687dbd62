/**
 * Text forms of ports and addresses, parsed and printed: `protocol` (`tcp/22`, `udp/1000-2000`), port ranges
 * (`origin_port`), `origin_direct` URIs (`tcp://[2001:db8::1]:443`) and `host:port`. IP literals and CIDR blocks
 * are `ip.ts`'s.
 *
 * Every parser is total: it returns a `Parsed` result and never throws, whatever the string. Each format `f` obeys
 * `parse(format(parse(s).value)) ≡ parse(s).value`, so a normalised app object validates to the same thing again.
 */
import { type ErrorCode } from './errors.ts';
import { LIMITS } from './defaults.ts';
import { parseIpLiteral, type IpLiteral } from './ip.ts';
import { type DirectOrigin, type L4Protocol, type PortRange } from './types.ts';

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(code: ErrorCode, message: string): Parsed<T> => ({ ok: false, code, message });

// ── port ranges ─────────────────────────────────────────────────────────────────────────────────────────────────

/** Number of ports in an inclusive range (≥ 1 for a valid range). */
export function portCount(r: PortRange): number {
  return r.end - r.start + 1;
}

/** True when the inclusive ranges share at least one port. */
export function rangesOverlap(a: PortRange, b: PortRange): boolean {
  return a.start <= b.end && b.start <= a.end;
}

/** `22` for a single port, `1000-2000` for a range. */
export function formatPortRange(r: PortRange): string {
  return r.start === r.end ? String(r.start) : `${r.start}-${r.end}`;
}

const PORT_RANGE_RE = /^(\d+)(?:-(\d+))?$/;

/**
 * Parses `N` or `A-B` (decimal digits only: no sign, space or `0x`). `A-A` is the single port A: Spectrum's legacy
 * Go parser rejects it, Refract reads it as what it plainly means. Port 0 gives E_CONFIG_PORT_ZERO, `A-B` with
 * A > B gives E_CONFIG_PORT_RANGE_ORDER, anything else malformed or above 65535 gives `syntaxCode` (the caller's
 * context decides: E_CONFIG_PROTOCOL inside `protocol`, E_ORIGIN_ADDRESS_INVALID inside a URI, …).
 */
export function parsePortRange(text: string, syntaxCode: ErrorCode): Parsed<PortRange> {
  const m = PORT_RANGE_RE.exec(text);
  if (m === null) return fail(syntaxCode, `"${text}" is not a port (1-65535) or a port range START-END`);
  const startText = m[1] ?? '';
  const endText = m[2] ?? startText;
  const start = portNumber(startText);
  const end = portNumber(endText);
  if (start === undefined || end === undefined) return fail(syntaxCode, `"${text}": ports are 1-65535`);
  if (start === 0 || end === 0) return fail('E_CONFIG_PORT_ZERO', `"${text}": port 0 is not a valid port`);
  if (start > end) return fail('E_CONFIG_PORT_RANGE_ORDER', `"${text}": the range must be START-END with START <= END`);
  return ok({ start, end });
}

/** Digits → port number, or undefined above 65535 (long digit strings never reach Number's imprecision). */
function portNumber(digits: string): number | undefined {
  const trimmed = digits.replace(/^0+(?=\d)/, '');
  if (trimmed.length > 5) return undefined;
  const n = Number(trimmed);
  return n <= LIMITS.maxPort ? n : undefined;
}

/** Validates a port given as a JSON number (Spectrum's integer `origin_port`). */
export function portFromNumber(n: number): Parsed<PortRange> {
  if (!Number.isInteger(n)) return fail('E_CONFIG_SCHEMA', `${n} is not an integer port`);
  if (n === 0) return fail('E_CONFIG_PORT_ZERO', 'port 0 is not a valid port');
  if (n < LIMITS.minPort || n > LIMITS.maxPort) return fail('E_CONFIG_SCHEMA', `${n} is outside 1-65535`);
  return ok({ start: n, end: n });
}

// ── protocol ────────────────────────────────────────────────────────────────────────────────────────────────────

export interface EdgeProtocol {
  readonly protocol: L4Protocol;
  readonly ports: PortRange;
}

const PROTOCOL_RE = /^(tcp|udp)\/(.*)$/;

/** Parses Spectrum's `protocol`: `tcp/22`, `udp/1000-2000` (lower case, as the API writes it). */
export function parseProtocol(text: string): Parsed<EdgeProtocol> {
  const m = PROTOCOL_RE.exec(text);
  if (m === null) return fail('E_CONFIG_PROTOCOL', `"${text}" must be tcp/PORT, tcp/START-END, udp/PORT or udp/START-END`);
  const ports = parsePortRange(m[2] ?? '', 'E_CONFIG_PROTOCOL');
  if (!ports.ok) return ports;
  return ok({ protocol: m[1] === 'udp' ? 'udp' : 'tcp', ports: ports.value });
}

/** `tcp/22`, `udp/1000-2000`. */
export function formatProtocol(protocol: L4Protocol, ports: PortRange): string {
  return `${protocol}/${formatPortRange(ports)}`;
}

// ── origin_direct URIs ──────────────────────────────────────────────────────────────────────────────────────────

const URI_RE = /^(tcp|udp):\/\/(.*)$/;
const BRACKETED_RE = /^\[([^\]]*)\]:(.*)$/;
const PLAIN_RE = /^([^:[\]]*):(.*)$/;

/**
 * Parses an `origin_direct` entry: `tcp://192.0.2.1:22`, `udp://[2001:db8::1]:53`, `tcp://192.0.2.1:3000-4000`.
 * Host must be an IP literal (a name belongs in `origin_dns`), IPv6 must be bracketed. Malformed entries give
 * E_ORIGIN_ADDRESS_INVALID (Spectrum 11002); port 0 and reversed ranges give their port codes.
 */
export function parseOriginUri(text: string): Parsed<DirectOrigin> {
  const bad = (why: string): Parsed<DirectOrigin> => fail('E_ORIGIN_ADDRESS_INVALID', `"${text}": ${why}`);
  const m = URI_RE.exec(text);
  if (m === null) return bad('must be tcp://IP:PORT or udp://IP:PORT (IPv6 as [IP])');
  const protocol: L4Protocol = m[1] === 'udp' ? 'udp' : 'tcp';
  const rest = m[2] ?? '';
  let hostText: string;
  let portText: string;
  let family: 'IPv4' | 'IPv6';
  const b = BRACKETED_RE.exec(rest);
  if (b !== null) {
    hostText = b[1] ?? '';
    portText = b[2] ?? '';
    const ip = parseIpLiteral(hostText);
    if (ip === undefined || ip.family !== 'IPv6') return bad('brackets must hold an IPv6 address');
    hostText = ip.address;
    family = 'IPv6';
  } else {
    if (rest.split(':').length > 2) return bad('IPv6 origins must be bracketed, e.g. tcp://[2001:db8::1]:443');
    const p = PLAIN_RE.exec(rest);
    if (p === null) return bad('a port is required, e.g. tcp://192.0.2.1:22');
    hostText = p[1] ?? '';
    portText = p[2] ?? '';
    const ip = parseIpLiteral(hostText);
    if (ip === undefined || ip.family !== 'IPv4') {
      return bad('the host must be an IPv4 address or a bracketed IPv6 address; use origin_dns for a hostname');
    }
    family = 'IPv4';
  }
  const ports = parsePortRange(portText, 'E_ORIGIN_ADDRESS_INVALID');
  if (!ports.ok) return fail(ports.code, `"${text}": ${ports.message}`);
  return ok({ protocol, host: hostText, family, ports: ports.value });
}

/** Prints a DirectOrigin in the form `parseOriginUri` reads. */
export function formatOriginUri(o: DirectOrigin): string {
  const host = o.family === 'IPv6' ? `[${o.host}]` : o.host;
  return `${o.protocol}://${host}:${formatPortRange(o.ports)}`;
}

// ── host:port (DNS servers) ─────────────────────────────────────────────────────────────────────────────────────

export interface HostPort {
  readonly address: IpLiteral;
  readonly port: number;
}

/**
 * `127.0.0.1:5353`, `[::1]:5353`, or a bare IP (port `defaultPort`). A bare IPv6 is read as an address, never as
 * address + port (`::1:53` is itself a valid IPv6 address): write `[::1]:53` to give a port.
 */
export function parseHostPort(text: string, defaultPort: number): Parsed<HostPort> {
  const bare = parseIpLiteral(text);
  if (bare !== undefined) return ok({ address: bare, port: defaultPort });
  const b = BRACKETED_RE.exec(text);
  const p = b === null ? PLAIN_RE.exec(text) : null;
  const hostText = b?.[1] ?? p?.[1];
  const portText = b?.[2] ?? p?.[2];
  if (hostText === undefined || portText === undefined) {
    return fail('E_CONFIG_SCHEMA', `"${text}" must be IP, IP:PORT or [IPv6]:PORT`);
  }
  const ip = parseIpLiteral(hostText);
  if (ip === undefined || (b !== null) !== (ip.family === 'IPv6')) {
    return fail('E_CONFIG_CIDR', `"${text}": "${hostText}" is not an IP address (IPv6 goes in brackets)`);
  }
  const port = parsePortRange(portText, 'E_CONFIG_SCHEMA');
  if (!port.ok) return port;
  if (port.value.start !== port.value.end) return fail('E_CONFIG_SCHEMA', `"${text}": give one port, not a range`);
  return ok({ address: ip, port: port.value.start });
}

// ── hostnames ───────────────────────────────────────────────────────────────────────────────────────────────────

const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A DNS name (`dns.name`, `origin_dns.name`): labels of letters, digits, `-` and `_` (SRV owner names such as
 * `_minecraft._tcp.example.com` need `_`), no label starting or ending with `-`, 1-63 characters per label, 253 in
 * all. Returned lower-cased without a trailing dot. An IP literal is not a name. Failures carry `code`.
 */
export function parseHostname(text: string, code: ErrorCode): Parsed<string> {
  const name = (text.endsWith('.') ? text.slice(0, -1) : text).toLowerCase();
  if (name.length === 0 || name.length > 253) return fail(code, `"${text}" is not a DNS name (1-253 characters)`);
  const labels = name.split('.');
  if (!labels.every((l) => LABEL_RE.test(l))) {
    return fail(code, `"${text}" is not a DNS name (labels of a-z, 0-9, - and _, 1-63 characters)`);
  }
  if (parseIpLiteral(name) !== undefined || /^[\d.]+$/.test(name)) return fail(code, `"${text}" is an IP address, not a name`);
  return ok(name);
}
