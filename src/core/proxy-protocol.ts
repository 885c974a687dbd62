/**
 * PROXY protocol v1 (text) and v2 (binary) codecs: pure, sans-IO.
 *
 * Outbound (edge → origin) Refract sends one header before any payload (docs/proxy-protocol.md).
 * Inbound (load balancer → edge, `node.acceptProxy`) it decodes one from a trusted sender. The byte layouts, the
 * strictness rules and the error codes are written up in docs/proxy-protocol.md; HAProxy's doc/proxy-protocol.txt
 * is the specification.
 *
 * Invariants the decoder keeps (the streaming reader and the property tests rely on them):
 * - Prefix-monotone: if `decodeProxyHeader(p)` is an error, every `p + more` is the same error; if it is a header,
 *   every `p + more` is the same header with `more` appended to `rest`. `incomplete` is returned only while some
 *   continuation of the bytes could still be a valid header.
 * - A v1 result depends only on the first 107 bytes, a v2 result only on the first 16 + len bytes.
 * - It never throws on any input.
 */
import ipaddr from 'ipaddr.js';
import { type ErrorCode } from '../model/errors.ts';
import { isFourPartDecimalV4 } from '../model/ip.ts';

// ── public types ──────────────────────────────────────────────────────────────────────────────────────────────

export interface ProxyEndpoint {
  /** IPv4 dotted quad, IPv6 in RFC 5952 form, or (v2 AF_UNIX only) a socket path; abstract sockets as `@name`. */
  readonly address: string;
  /** 0-65535; always 0 for AF_UNIX. */
  readonly port: number;
}

/** What an encoder needs: the client (`src`) and the address/port it reached (`dst`, the edge), same family. */
export interface ProxyAddresses {
  src: { address: string; port: number };
  dst: { address: string; port: number };
  family: 'IPv4' | 'IPv6';
}

export interface ProxyTlv {
  /** 0-255; see {@link PP2_TYPE}. */
  readonly type: number;
  readonly value: Uint8Array;
}

/**
 * A decoded header. Invariant: `src` and `dst` are present exactly when `family` is not `'unspec'`, which implies
 * `command === 'proxy'`. `'local'` (v2 LOCAL, or v1 `UNKNOWN`) means: use the real connection's endpoints.
 */
export interface ProxyHeader {
  version: 1 | 2;
  command: 'proxy' | 'local';
  transport: 'stream' | 'dgram' | 'unspec';
  family: 'IPv4' | 'IPv6' | 'unspec' | 'unix';
  src?: ProxyEndpoint;
  dst?: ProxyEndpoint;
  /** v2 TLVs in wire order, unknown types included; values are copies (they do not alias the input). Empty for v1. */
  tlvs: ProxyTlv[];
  /** Header size in bytes (v1: the line with its CRLF; v2: 16 + len). */
  length: number;
}

/** The codes {@link decodeProxyHeader} returns; each is a row of src/model/errors.ts. */
export type ProxyDecodeErrorCode = Extract<
  ErrorCode,
  | 'E_PP_BAD_SIGNATURE'
  | 'E_PP_V1_MALFORMED'
  | 'E_PP_V1_TOO_LONG'
  | 'E_PP_V2_BAD_VERSION'
  | 'E_PP_V2_BAD_COMMAND'
  | 'E_PP_V2_BAD_FAMILY'
  | 'E_PP_V2_BAD_LENGTH'
  | 'E_PP_V2_BAD_TLV'
>;

export type DecodeResult =
  | { kind: 'incomplete' }
  | { kind: 'header'; header: ProxyHeader; rest: Uint8Array }
  | { kind: 'error'; code: ProxyDecodeErrorCode; detail: string };

// ── constants ─────────────────────────────────────────────────────────────────────────────────────────────────

/** The longest valid v1 line, CRLF included (`PROXY UNKNOWN <ipv6> <ipv6> 65535 65535\r\n`). */
export const PROXY_V1_MAX_LENGTH = 107;
/** The fixed part of a v2 header: signature, ver/cmd, fam, len. */
export const PROXY_V2_FIXED_LENGTH = 16;
/** The 12-byte v2 signature (shared: do not mutate). */
export const PROXY_V2_SIGNATURE: Readonly<Uint8Array> = Uint8Array.of(
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
);

/** Registered v2 TLV types (HAProxy doc/proxy-protocol.txt §2.2). 0xE0-0xEF custom, 0xF0-0xF7 experimental. */
export const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  SSL_VERSION: 0x21,
  SSL_CN: 0x22,
  SSL_CIPHER: 0x23,
  SSL_SIG_ALG: 0x24,
  SSL_KEY_ALG: 0x25,
  NETNS: 0x30,
} as const;

const CR = 0x0d;
const LF = 0x0a;
const V1_PREFIX = 'PROXY';
const ADDR_LEN_INET = 12; // 2×4 address + 2×2 port
const ADDR_LEN_INET6 = 36; // 2×16 address + 2×2 port
const ADDR_LEN_UNIX = 216; // 2×108 path
const UNIX_PATH_LEN = 108;
const MAX_U16 = 0xffff;

const textEncoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8');

// ── addresses (shared by the encoders and the normaliser) ─────────────────────────────────────────────────────

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > MAX_U16) {
    throw new RangeError(`${what} port must be an integer 0-65535, got ${String(port)}`);
  }
}

/** Parses `address` as the given family, strictly (four-part decimal IPv4; IPv6 without a zone); throws on a bug. */
function parseFamily(address: string, family: 'IPv4' | 'IPv6', what: string): ipaddr.IPv4 | ipaddr.IPv6 {
  if (family === 'IPv4') {
    if (!isFourPartDecimalV4(address)) throw new TypeError(`${what} is not a dotted-quad IPv4 address: ${address}`);
    return ipaddr.IPv4.parse(address);
  }
  const v6 = parseIpv6(address);
  if (v6 === undefined) throw new TypeError(`${what} is not an IPv6 address without zone: ${address}`);
  return v6;
}

function ipv6FromBytes(b: Uint8Array, at: number): ipaddr.IPv6 {
  const parts: number[] = new Array<number>(8);
  for (let i = 0; i < 8; i++) parts[i] = ((b[at + 2 * i] ?? 0) << 8) | (b[at + 2 * i + 1] ?? 0);
  return new ipaddr.IPv6(parts);
}

function ipv4FromBytes(b: Uint8Array, at: number): string {
  return `${b[at] ?? 0}.${b[at + 1] ?? 0}.${b[at + 2] ?? 0}.${b[at + 3] ?? 0}`;
}

/**
 * Builds encoder input from two socket endpoints. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack Node
 * socket reports) becomes IPv4; zone ids (`%eth0`) are dropped, since PROXY cannot carry them. If one side is
 * IPv4 and the other IPv6, the IPv4 side is mapped to IPv6 so both share a family. Throws TypeError/RangeError
 * on an address that is not an IP literal or a port outside 0-65535.
 */
export function toProxyAddresses(
  src: { address: string; port: number },
  dst: { address: string; port: number },
): ProxyAddresses {
  checkPort(src.port, 'source');
  checkPort(dst.port, 'destination');
  let s = parseAny(src.address, 'source');
  let d = parseAny(dst.address, 'destination');
  if (s.kind() !== d.kind()) {
    if (s.kind() === 'ipv4') s = (s as ipaddr.IPv4).toIPv4MappedAddress();
    else d = (d as ipaddr.IPv4).toIPv4MappedAddress();
  }
  const family = s.kind() === 'ipv4' ? 'IPv4' : 'IPv6';
  return {
    src: { address: formatIp(s), port: src.port },
    dst: { address: formatIp(d), port: dst.port },
    family,
  };
}

function parseAny(address: string, what: string): ipaddr.IPv4 | ipaddr.IPv6 {
  if (isFourPartDecimalV4(address)) return ipaddr.IPv4.parse(address);
  const v6 = parseIpv6(address.replace(/%.*$/, ''));
  if (v6 === undefined) throw new TypeError(`${what} is not an IP address: ${address}`);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

function formatIp(a: ipaddr.IPv4 | ipaddr.IPv6): string {
  return a.kind() === 'ipv4' ? a.toString() : (a as ipaddr.IPv6).toRFC5952String();
}

// ── v1 encoder ────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * The v1 line for a TCP connection, e.g. `PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n`. IPv6 addresses are
 * written in RFC 5952 form whatever form they were given in. Throws TypeError/RangeError when an address does not
 * parse as `a.family` or a port is outside 0-65535 (a bug in the caller: see {@link toProxyAddresses}).
 */
export function encodeProxyV1(a: ProxyAddresses): Uint8Array {
  checkPort(a.src.port, 'source');
  checkPort(a.dst.port, 'destination');
  const s = parseFamily(a.src.address, a.family, 'source');
  const d = parseFamily(a.dst.address, a.family, 'destination');
  const proto = a.family === 'IPv4' ? 'TCP4' : 'TCP6';
  return textEncoder.encode(`PROXY ${proto} ${formatIp(s)} ${formatIp(d)} ${a.src.port} ${a.dst.port}\r\n`);
}

// ── v2 TLVs for a TLS-terminated connection ─────────────────────────────────────────────────────────────────

/** PP2_CLIENT_SSL: the client connected over SSL/TLS (the SSL TLV's `client` bit field). */
export const PP2_CLIENT_SSL = 0x01;

/**
 * The TLVs a TLS-terminating proxy adds (HAProxy doc/proxy-protocol.txt §2.2.5 and §2.2.2): PP2_TYPE_SSL with
 * `client` = PP2_CLIENT_SSL, `verify` = 0 (no client certificate was asked for, so none failed verification: what
 * HAProxy sends in that case), and the sub-TLVs SSL_VERSION ("TLSv1.3") and SSL_CIPHER; then AUTHORITY = the SNI
 * the client sent, when it sent one.
 */
export function tlsProxyTlvs(info: { readonly version: string; readonly cipher: string; readonly sni: string }): Array<{ type: number; value: Uint8Array }> {
  const sub = (type: number, text: string): Uint8Array => {
    const v = textEncoder.encode(text);
    const out = new Uint8Array(3 + v.length);
    out[0] = type;
    out[1] = v.length >> 8;
    out[2] = v.length & 0xff;
    out.set(v, 3);
    return out;
  };
  const version = sub(PP2_TYPE.SSL_VERSION, info.version);
  const cipher = sub(PP2_TYPE.SSL_CIPHER, info.cipher);
  const ssl = new Uint8Array(5 + version.length + cipher.length);
  ssl[0] = PP2_CLIENT_SSL; // client; bytes 1-4: verify = 0
  ssl.set(version, 5);
  ssl.set(cipher, 5 + version.length);
  const tlvs: Array<{ type: number; value: Uint8Array }> = [{ type: PP2_TYPE.SSL, value: ssl }];
  if (info.sni !== '') tlvs.push({ type: PP2_TYPE.AUTHORITY, value: textEncoder.encode(info.sni) });
  return tlvs;
}

// ── v2 encoder ────────────────────────────────────────────────────────────────────────────────────────────────

export interface ProxyV2EncodeOptions {
  /** `'stream'` (TCP, the default) or `'dgram'` (UDP). */
  transport?: 'stream' | 'dgram';
  /** `'proxy'` (default) or `'local'`: a LOCAL header carries family UNSPEC and no addresses (`a` is ignored). */
  command?: 'proxy' | 'local';
  /** Appended in order after the address block. */
  tlvs?: ReadonlyArray<{ type: number; value: Uint8Array }>;
}

/**
 * The binary v2 header: signature, `0x21` (v2 PROXY) or `0x20` (v2 LOCAL), family/transport (`0x11` TCP4,
 * `0x12` UDP4, `0x21` TCP6, `0x22` UDP6, `0x00` for LOCAL), big-endian length, address block, TLVs. Throws
 * TypeError/RangeError on a bad address or port, a TLV type outside 0-255, or a header longer than 16 + 65535.
 */
export function encodeProxyV2(a: ProxyAddresses, opts: ProxyV2EncodeOptions = {}): Uint8Array {
  const local = opts.command === 'local';
  const tlvs = opts.tlvs ?? [];
  let addrLen = 0;
  let famByte = 0x00;
  let s: ipaddr.IPv4 | ipaddr.IPv6 | undefined;
  let d: ipaddr.IPv4 | ipaddr.IPv6 | undefined;
  if (!local) {
    checkPort(a.src.port, 'source');
    checkPort(a.dst.port, 'destination');
    s = parseFamily(a.src.address, a.family, 'source');
    d = parseFamily(a.dst.address, a.family, 'destination');
    addrLen = a.family === 'IPv4' ? ADDR_LEN_INET : ADDR_LEN_INET6;
    famByte = (a.family === 'IPv4' ? 0x10 : 0x20) | (opts.transport === 'dgram' ? 0x02 : 0x01);
  }
  let len = addrLen;
  for (const t of tlvs) {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 0xff) throw new RangeError(`TLV type must be 0-255, got ${String(t.type)}`);
    len += 3 + t.value.length;
  }
  if (len > MAX_U16) throw new RangeError(`PROXY v2 header body is ${len} bytes; the limit is 65535`);

  const out = new Uint8Array(PROXY_V2_FIXED_LENGTH + len);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = local ? 0x20 : 0x21;
  out[13] = famByte;
  out[14] = len >>> 8;
  out[15] = len & 0xff;
  let at = PROXY_V2_FIXED_LENGTH;
  if (s !== undefined && d !== undefined) {
    const sb = s.toByteArray();
    const db = d.toByteArray();
    out.set(sb, at);
    out.set(db, at + sb.length);
    at += sb.length + db.length;
    out[at++] = a.src.port >>> 8;
    out[at++] = a.src.port & 0xff;
    out[at++] = a.dst.port >>> 8;
    out[at++] = a.dst.port & 0xff;
  }
  for (const t of tlvs) {
    out[at++] = t.type;
    out[at++] = t.value.length >>> 8;
    out[at++] = t.value.length & 0xff;
    out.set(t.value, at);
    at += t.value.length;
  }
  return out;
}

// ── decoder ───────────────────────────────────────────────────────────────────────────────────────────────────

function fail(code: ProxyDecodeErrorCode, detail: string): DecodeResult {
  return { kind: 'error', code, detail };
}

const INCOMPLETE: DecodeResult = Object.freeze({ kind: 'incomplete' });

/**
 * Decodes a PROXY v1 or v2 header at the start of `buf`. Detection (HAProxy §2.2): bytes matching the v2
 * signature → v2; bytes starting `PROXY` → v1; anything else → `E_PP_BAD_SIGNATURE`, decided as early as the
 * first byte that cannot match either. `rest` is `buf` past the header (a view, not a copy). Never throws.
 */
export function decodeProxyHeader(buf: Uint8Array): DecodeResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === PROXY_V2_SIGNATURE[0]) return decodeV2(buf);
  const n = Math.min(buf.length, V1_PREFIX.length);
  for (let i = 0; i < n; i++) {
    if (buf[i] !== V1_PREFIX.charCodeAt(i)) return fail('E_PP_BAD_SIGNATURE', 'neither the v1 "PROXY" nor the v2 signature');
  }
  return n < V1_PREFIX.length ? INCOMPLETE : decodeV1(buf);
}

/**
 * The total v2 header length (16 + len) once 16 bytes starting with the v2 signature are present, else undefined.
 * Lets a streaming reader size its buffer exactly; it says nothing about the header's validity.
 */
export function proxyV2HeaderLength(buf: Uint8Array): number | undefined {
  if (buf.length < PROXY_V2_FIXED_LENGTH) return undefined;
  for (let i = 0; i < PROXY_V2_SIGNATURE.length; i++) if (buf[i] !== PROXY_V2_SIGNATURE[i]) return undefined;
  return PROXY_V2_FIXED_LENGTH + (((buf[14] ?? 0) << 8) | (buf[15] ?? 0));
}

// v1 ───────────────────────────────────────────────────────────────────────────────────────────────────────────

function decodeV1(buf: Uint8Array): DecodeResult {
  // Only the first 107 bytes matter: the CR of the CRLF must sit at index ≤ 105, so 106 bytes without one
  // already decide E_PP_V1_TOO_LONG.
  const crLast = PROXY_V1_MAX_LENGTH - 2;
  let stop = Math.min(buf.length, crLast + 1); // end of the line content seen so far
  let terminated = false;
  let bareEnding = false;
  let pending = false; // a CR is the last byte so far: the next byte decides
  for (let i = 0; i < stop; i++) {
    const b = buf[i];
    if (b === LF) {
      stop = i;
      bareEnding = true;
      break;
    }
    if (b === CR) {
      stop = i;
      if (i + 1 >= buf.length) pending = true;
      else if (buf[i + 1] === LF) terminated = true;
      else bareEnding = true;
      break;
    }
  }
  let line = '';
  for (let i = 0; i < stop; i++) line += String.fromCharCode(buf[i] ?? 0);

  // Grammar first (on the prefix if the line is not complete), so that an error found early is the same error
  // that the full line gets: see the prefix-monotone invariant at the top of this file.
  const parsed = parseV1Line(line, terminated);
  if (parsed === undefined) return fail('E_PP_V1_MALFORMED', 'the v1 line does not match the grammar');
  if (bareEnding) return fail('E_PP_V1_MALFORMED', 'a bare CR or LF ends the v1 line');
  if (!terminated) {
    return pending || stop <= crLast ? INCOMPLETE : fail('E_PP_V1_TOO_LONG', 'no CRLF in the first 107 bytes');
  }
  if (parsed === 'prefix') return fail('E_PP_V1_MALFORMED', 'the v1 line is incomplete'); // unreachable: complete lines parse fully
  const length = stop + 2;
  const header: ProxyHeader = { version: 1, ...parsed, tlvs: [], length };
  return { kind: 'header', header, rest: buf.subarray(length) };
}

type V1Fields = Pick<ProxyHeader, 'command' | 'transport' | 'family' | 'src' | 'dst'>;

/**
 * Checks `line` (without CRLF) against the v1 grammar. Complete: the fields, or undefined if invalid. Not
 * complete: `'prefix'` if some continuation could be valid, else undefined. Every field check below is
 * closed under extension (once a prefix fails, longer ones fail too), which keeps the decoder prefix-monotone.
 */
function parseV1Line(line: string, complete: boolean): V1Fields | 'prefix' | undefined {
  const unknown = 'PROXY UNKNOWN';
  // UNKNOWN: "the receiver must ignore anything presented before the CRLF".
  if (line === unknown || line.startsWith(`${unknown} `)) {
    return complete ? { command: 'local', transport: 'unspec', family: 'unspec' } : 'prefix';
  }
  const tok = line.split(' ');
  if (tok.length > 6) return undefined;
  if (!complete) {
    if (tok.length === 1) return V1_PREFIX.startsWith(line) ? 'prefix' : undefined;
    if (tok[0] !== V1_PREFIX) return undefined;
    const proto = tok[1] ?? '';
    if (tok.length === 2) return ['TCP4', 'TCP6', 'UNKNOWN'].some((p) => p.startsWith(proto)) ? 'prefix' : undefined;
    if (proto !== 'TCP4' && proto !== 'TCP6') return undefined;
    const addrOk = proto === 'TCP4' ? ipv4Prefix : ipv6Prefix;
    const checks = [addrOk, addrOk, portPrefix, portPrefix];
    for (let k = 2; k < tok.length; k++) {
      const t = tok[k] ?? '';
      const last = k === tok.length - 1;
      const check = checks[k - 2];
      if (check === undefined) return undefined;
      // A finished field (a space follows it) must be whole; the field being typed need only be a valid start.
      if (last ? !check(t) : !wholeField(proto, k, t)) return undefined;
    }
    return 'prefix';
  }
  if (tok.length !== 6 || tok[0] !== V1_PREFIX) return undefined;
  const [, proto, s, d, sp, dp] = tok as [string, string, string, string, string, string];
  if (proto !== 'TCP4' && proto !== 'TCP6') return undefined;
  if (!wholeField(proto, 4, sp) || !wholeField(proto, 5, dp)) return undefined;
  if (proto === 'TCP4') {
    if (!isFourPartDecimalV4(s) || !isFourPartDecimalV4(d)) return undefined;
    return {
      command: 'proxy', transport: 'stream', family: 'IPv4',
      src: { address: s, port: Number(sp) }, dst: { address: d, port: Number(dp) },
    };
  }
  const sa = parseIpv6(s);
  const da = parseIpv6(d);
  if (sa === undefined || da === undefined) return undefined;
  return {
    command: 'proxy', transport: 'stream', family: 'IPv6',
    src: { address: sa.toRFC5952String(), port: Number(sp) }, dst: { address: da.toRFC5952String(), port: Number(dp) },
  };
}

function wholeField(proto: 'TCP4' | 'TCP6', index: number, t: string): boolean {
  if (index >= 4) return /^(?:0|[1-9]\d{0,4})$/.test(t) && Number(t) <= MAX_U16;
  return proto === 'TCP4' ? isFourPartDecimalV4(t) : parseIpv6(t) !== undefined;
}

function portPrefix(t: string): boolean {
  return t === '' || (/^(?:0|[1-9]\d{0,4})$/.test(t) && Number(t) <= MAX_U16);
}

function ipv4Prefix(t: string): boolean {
  const parts = t.split('.');
  if (parts.length > 4) return false;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] ?? '';
    if (p === '') {
      if (i !== parts.length - 1) return false;
    } else if (!/^(?:0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) {
      return false;
    }
  }
  return true;
}

// 45 = the longest textual IPv6 (six hex groups plus a dotted quad).
function ipv6Prefix(t: string): boolean {
  return t.length <= 45 && /^[0-9A-Fa-f:.]*$/.test(t) && !t.includes(':::');
}

/**
 * IPv6 text, strictly: hex groups with at most one `::` (HAProxy §2.1), or with a trailing dotted quad as
 * inet_pton accepts (what a Node sender with a dual-stack socket writes); no zone id. The dotted quad is converted
 * to two hex groups here rather than by ipaddr.js, which reads the deprecated `::a.b.c.d` as IPv4-mapped.
 */
export function parseIpv6(t: string): ipaddr.IPv6 | undefined {
  if (!ipv6Prefix(t) || t === '') return undefined;
  let hex = t;
  const dot = t.indexOf('.');
  if (dot !== -1) {
    const colon = t.lastIndexOf(':');
    if (colon === -1 || colon > dot) return undefined;
    const quad = t.slice(colon + 1);
    if (!isFourPartDecimalV4(quad)) return undefined;
    const o = ipaddr.IPv4.parse(quad).octets;
    const g1 = (((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16);
    const g2 = (((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16);
    hex = `${t.slice(0, colon + 1)}${g1}:${g2}`;
  }
  return ipaddr.IPv6.isValid(hex) ? ipaddr.IPv6.parse(hex) : undefined;
}

// v2 ───────────────────────────────────────────────────────────────────────────────────────────────────────────

function decodeV2(buf: Uint8Array): DecodeResult {
  const sigLen = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < sigLen; i++) {
    if (buf[i] !== PROXY_V2_SIGNATURE[i]) return fail('E_PP_BAD_SIGNATURE', 'neither the v1 "PROXY" nor the v2 signature');
  }
  // Each check needs only the bytes before it, so a short buffer fails with the same code a full one would.
  if (buf.length < 13) return INCOMPLETE;
  const verCmd = buf[12] ?? 0;
  if (verCmd >> 4 !== 0x2) return fail('E_PP_V2_BAD_VERSION', `version nibble ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 0x1) return fail('E_PP_V2_BAD_COMMAND', `command nibble ${cmd}`);
  const local = cmd === 0x0;
  if (buf.length < 14) return INCOMPLETE;
  const fam = buf[13] ?? 0;
  const afNibble = fam >> 4;
  const trNibble = fam & 0x0f;
  // LOCAL ignores the family byte entirely (HAProxy §2.2: "discard the protocol block including the family").
  if (!local && (afNibble > 0x3 || trNibble > 0x2)) return fail('E_PP_V2_BAD_FAMILY', `family byte 0x${fam.toString(16)}`);
  if (buf.length < PROXY_V2_FIXED_LENGTH) return INCOMPLETE;
  const len = ((buf[14] ?? 0) << 8) | (buf[15] ?? 0);

  // Address block size when its layout is known: 0x00 has an empty block; the six "in practice" bytes have
  // fixed sizes. Other valid combinations (one nibble UNSPEC) fall back to UNSPEC with the block left opaque.
  const addrLen =
    fam === 0x00 ? 0
    : fam === 0x11 || fam === 0x12 ? ADDR_LEN_INET
    : fam === 0x21 || fam === 0x22 ? ADDR_LEN_INET6
    : fam === 0x31 || fam === 0x32 ? ADDR_LEN_UNIX
    : undefined;
  if (!local && addrLen !== undefined && len < addrLen) {
    return fail('E_PP_V2_BAD_LENGTH', `length ${len} < ${addrLen} for family byte 0x${fam.toString(16)}`);
  }
  const total = PROXY_V2_FIXED_LENGTH + len;
  if (buf.length < total) return INCOMPLETE;

  // A LOCAL header whose block is shorter than its family's addresses is still accepted: it is ignored anyway.
  const tlvStart = addrLen !== undefined && len >= addrLen ? PROXY_V2_FIXED_LENGTH + addrLen : undefined;
  let tlvs: ProxyTlv[] = [];
  if (tlvStart !== undefined) {
    const parsed = parseTlvs(buf, tlvStart, total);
    if (typeof parsed === 'string') return fail('E_PP_V2_BAD_TLV', parsed);
    tlvs = parsed;
  }

  let header: ProxyHeader;
  if (local) {
    header = { version: 2, command: 'local', transport: 'unspec', family: 'unspec', tlvs, length: total };
  } else if (addrLen === undefined || addrLen === 0) {
    header = { version: 2, command: 'proxy', transport: 'unspec', family: 'unspec', tlvs, length: total };
  } else {
    const a = PROXY_V2_FIXED_LENGTH;
    const transport = trNibble === 0x1 ? 'stream' : 'dgram';
    if (afNibble === 0x1) {
      header = {
        version: 2, command: 'proxy', transport, family: 'IPv4',
        src: { address: ipv4FromBytes(buf, a), port: u16(buf, a + 8) },
        dst: { address: ipv4FromBytes(buf, a + 4), port: u16(buf, a + 10) },
        tlvs, length: total,
      };
    } else if (afNibble === 0x2) {
      header = {
        version: 2, command: 'proxy', transport, family: 'IPv6',
        src: { address: ipv6FromBytes(buf, a).toRFC5952String(), port: u16(buf, a + 32) },
        dst: { address: ipv6FromBytes(buf, a + 16).toRFC5952String(), port: u16(buf, a + 34) },
        tlvs, length: total,
      };
    } else {
      header = {
        version: 2, command: 'proxy', transport, family: 'unix',
        src: { address: unixPath(buf, a), port: 0 },
        dst: { address: unixPath(buf, a + UNIX_PATH_LEN), port: 0 },
        tlvs, length: total,
      };
    }
  }
  return { kind: 'header', header, rest: buf.subarray(total) };
}

function u16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}

/** A 108-byte sun_path: NUL-terminated; a leading NUL marks a Linux abstract socket, shown as `@name`. */
function unixPath(b: Uint8Array, at: number): string {
  const field = b.subarray(at, at + UNIX_PATH_LEN);
  if (field[0] === 0) {
    let end = field.length;
    while (end > 1 && field[end - 1] === 0) end--;
    return end > 1 ? `@${utf8.decode(field.subarray(1, end))}` : '';
  }
  const nul = field.indexOf(0);
  return utf8.decode(nul === -1 ? field : field.subarray(0, nul));
}

/**
 * Parses TLVs in `b[start, end)`: each `type:u8 len:u16be value`, and the last one must end exactly at `end`.
 * Returns the TLVs (values copied) or a string describing the first bound violation.
 */
export function parseTlvs(b: Uint8Array, start: number, end: number): ProxyTlv[] | string {
  const out: ProxyTlv[] = [];
  let at = start;
  while (at < end) {
    if (end - at < 3) return `${end - at} trailing byte(s) cannot hold a TLV header at offset ${at}`;
    const type = b[at] ?? 0;
    const len = u16(b, at + 1);
    const valueAt = at + 3;
    if (valueAt + len > end) return `TLV 0x${type.toString(16)} at offset ${at} claims ${len} bytes, ${end - valueAt} remain`;
    out.push({ type, value: b.slice(valueAt, valueAt + len) });
    at = valueAt + len;
  }
  return out;
}

// ── streaming reader ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * Accumulates the first bytes of a connection until one PROXY header is decoded. Chunks may be split anywhere
 * (one byte at a time works); the result is the same as {@link decodeProxyHeader} on the concatenation. Memory
 * is bounded: at most 107 bytes are buffered for v1, exactly 16 + len (≤ 65551) for v2; bytes after the header
 * are never copied. On `'header'`, `rest` is a view into the last chunk pushed. One reader per connection: after
 * a `'header'` or `'error'` result, `push` throws (a caller bug).
 */
export class ProxyHeaderReader {
  #buf = new Uint8Array(PROXY_V1_MAX_LENGTH);
  #filled = 0;
  #done = false;

  push(chunk: Uint8Array): DecodeResult {
    if (this.#done) throw new Error('ProxyHeaderReader.push after the header was decoded or rejected');
    const before = this.#filled;
    let used = 0;
    for (;;) {
      const take = Math.min(chunk.length - used, this.#buf.length - this.#filled);
      this.#buf.set(chunk.subarray(used, used + take), this.#filled);
      this.#filled += take;
      used += take;
      const r = decodeProxyHeader(this.#buf.subarray(0, this.#filled));
      if (r.kind === 'incomplete') {
        const need = proxyV2HeaderLength(this.#buf.subarray(0, this.#filled));
        if (need !== undefined && need > this.#buf.length) {
          const grown = new Uint8Array(need);
          grown.set(this.#buf.subarray(0, this.#filled));
          this.#buf = grown;
          continue;
        }
        // Incomplete means the buffer is not yet full (a full buffer always decides), so the chunk is used up.
        if (used !== chunk.length) throw new Error('ProxyHeaderReader: incomplete with unread input (bug)');
        return r;
      }
      this.#done = true;
      this.#buf = new Uint8Array(0);
      if (r.kind === 'error') return r;
      // The header ends inside this chunk: an earlier push would otherwise have decided.
      return { kind: 'header', header: r.header, rest: chunk.subarray(r.header.length - before) };
    }
  }
}
