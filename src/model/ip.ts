/**
 * IP addresses: the one place that parses, classifies and compares them. Built on ipaddr.js, with Refract's rules
 * on top:
 * - IPv4 is dotted four-part decimal only (ipaddr.js alone also takes `127.1` and `0x7f.0.0.1`, which Node's
 *   sockets read differently from what an operator expects);
 * - IPv6 has no zone (`%eth0`) in configuration; a peer address with one is read without it where noted;
 * - the deprecated IPv4-compatible form `::a.b.c.d` is `::XXXX:XXXX`, as RFC 4291, Node and the word parser read it
 *   (ipaddr.js would read it as IPv4-mapped);
 * - IPv4-mapped IPv6 (`::ffff:a.b.c.d`, how a dual-stack socket reports an IPv4 peer) is the IPv4 address wherever
 *   addresses are matched (CIDR membership, access rules, geolocation).
 *
 * The word parser at the end (`parseIpWords`) allocates nothing: access rules and geolocation run it per connection.
 * Everything here is total (returns undefined / false / 0 on bad input) unless a doc says it throws.
 */
import ipaddr from 'ipaddr.js';

export type IpFamily = 'IPv4' | 'IPv6';

// ── literals and CIDR blocks ─────────────────────────────────────────────────────────────────────────────────

export interface IpLiteral {
  /** Lower-cased, without brackets, otherwise as written (so a normalised spec prints what the operator wrote). */
  readonly address: string;
  readonly family: IpFamily;
}

/**
 * An IP literal: IPv4 in dotted four-part decimal only (ipaddr.js alone also takes `127.1` and `0x7f.0.0.1`, which
 * Node's sockets read differently from what an operator expects), or IPv6 without a zone id (`%eth0`).
 */
export function parseIpLiteral(text: string): IpLiteral | undefined {
  if (isFourPartDecimalV4(text)) return { address: text, family: 'IPv4' };
  if (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text)) {
    return { address: text.toLowerCase(), family: 'IPv6' };
  }
  return undefined;
}

/** ipaddr.js's own pattern for a four-part decimal IPv4 address (its `isValidFourPartDecimal`). */
const FOUR_PART_DECIMAL = /^(0|[1-9]\d*)(\.(0|[1-9]\d*)){3}$/;

/**
 * `ipaddr.IPv4.isValidFourPartDecimal`, with its two tests in the other order: the pattern first. ipaddr.js's
 * `isValid` detects a bad address by catching the TypeError its parser's null result raises; V8 builds that error's
 * message by re-parsing the function's source and captures a stack, ~10⁴–10⁵ instructions. A TLS ClientHello's SNI
 * (a host name) went through here on every handshake: names now fail on the pattern.
 */
export function isFourPartDecimalV4(text: string): boolean {
  return FOUR_PART_DECIMAL.test(text) && ipaddr.IPv4.isValid(text);
}

/** True for `0.0.0.0` and `::` (and their long forms): a bind on it covers every address of the family. */
export function isUnspecified(ip: IpLiteral): boolean {
  try {
    return ipaddr.parse(ip.address).range() === 'unspecified';
  } catch {
    return false;
  }
}

export interface Cidr {
  readonly address: IpLiteral;
  readonly prefix: number;
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a bare IP (a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const ip = parseIpLiteral(slash === -1 ? text : text.slice(0, slash));
  if (ip === undefined) return undefined;
  const max = ip.family === 'IPv4' ? 32 : 128;
  if (slash === -1) return { address: ip, prefix: max };
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  return prefix <= max ? { address: ip, prefix } : undefined;
}

// ── canonical forms ─────────────────────────────────────────────────────────────────────────────────────────────

/**
 * ipaddr.js reads the deprecated IPv4-compatible form `::a.b.c.d` as IPv4-mapped (`::ffff:a.b.c.d`). RFC 4291 (and
 * Node, and src/core) read it as `::XXXX:XXXX`, so it is rewritten in hex before ipaddr.js sees it.
 */
export function withoutCompatForm(text: string): string {
  const m = /^::(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(\/\d+)?$/.exec(text);
  if (m === null || !isFourPartDecimalV4(m[1] ?? '')) return text;
  const [a = 0, b = 0, c = 0, d = 0] = ipaddr.IPv4.parse(m[1] ?? '').octets;
  return `::${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}${m[2] ?? ''}`;
}

/** Canonical text of an address: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 in RFC 5952 form. */
export function canonicalAddress(text: string, family: IpFamily): { text: string; family: IpFamily } {
  if (family === 'IPv4') return { text, family };
  const a = ipaddr.IPv6.parse(withoutCompatForm(text));
  if (a.isIPv4MappedAddress()) return { text: a.toIPv4Address().toString(), family: 'IPv4' };
  return { text: a.toRFC5952String(), family };
}

/** The canonical form (as `canonicalAddress`) of an IP literal `parseIpLiteral` accepts, or undefined. */
export function canonicalIp(text: string): { text: string; family: IpFamily } | undefined {
  const ip = parseIpLiteral(text);
  return ip === undefined ? undefined : canonicalAddress(ip.address, ip.family);
}

/** The IPv4 address (dotted quad) inside an IPv4-mapped IPv6 literal, else undefined. */
export function unmappedV4(text: string): string | undefined {
  const ip = parseIpLiteral(text);
  if (ip === undefined || ip.family === 'IPv4') return undefined;
  const a = ipaddr.IPv6.parse(withoutCompatForm(ip.address));
  return a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : undefined;
}

/** True for 127.0.0.0/8 and ::1 (an IPv4-mapped address: by its IPv4 address). */
export function isLoopback(ip: IpLiteral): boolean {
  const v4 = ip.family === 'IPv6' ? unmappedV4(ip.address) : ip.address;
  if (v4 !== undefined) return ipaddr.IPv4.parse(v4).range() === 'loopback';
  return ipaddr.IPv6.parse(ip.address).range() === 'loopback';
}

// ── CIDR membership ─────────────────────────────────────────────────────────────────────────────────────────────

type Address = ipaddr.IPv4 | ipaddr.IPv6;
/** Parsed blocks by text: callers pass the same few configured blocks over and over. */
const blocks = new Map<string, [Address, number] | null>();
const BLOCK_CACHE_LIMIT = 4_096;

function block(text: string): [Address, number] | undefined {
  let b = blocks.get(text);
  if (b === undefined) {
    const c = parseCidr(withoutCompatForm(text));
    if (c === undefined) b = null;
    else {
      const a = ipaddr.parse(c.address.address);
      b = a.kind() === 'ipv6' && c.prefix >= 96 && (a as ipaddr.IPv6).isIPv4MappedAddress() ? [(a as ipaddr.IPv6).toIPv4Address(), c.prefix - 96] : [a, c.prefix];
    }
    if (blocks.size >= BLOCK_CACHE_LIMIT) blocks.clear();
    blocks.set(text, b);
  }
  return b ?? undefined;
}

/**
 * True when `address` lies in one of `cidrs` (each a CIDR block or a single address, as `parseCidr` reads them).
 * An IPv4-mapped address matches IPv4 blocks; a zone on `address` is ignored. Invalid address or block → no match.
 */
export function inAnyCidr(cidrs: readonly string[], address: string): boolean {
  const zone = address.indexOf('%');
  const ip = parseIpLiteral(zone === -1 ? address : address.slice(0, zone));
  if (ip === undefined) return false;
  let a: Address = ipaddr.parse(withoutCompatForm(ip.address));
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  for (const c of cidrs) {
    const b = block(c);
    if (b !== undefined && b[0].kind() === a.kind() && a.match(b[0], b[1])) return true;
  }
  return false;
}

// ── allocation-free word parser ───────────────────────────────────────────────────────────────────────────────────────────────────

/** 4 = IPv4, 6 = IPv6, 0 = not an address. */
export type IpFamilyCode = 0 | 4 | 6;

/** Dotted-quad decimal in s[from, to), no leading zeros → 0..2^32-1, or -1. */
function v4At(s: string, from: number, to: number): number {
  let acc = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return -1; // leading zero: other parsers read it as octal
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      acc = acc * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  return digits > 0 && dots === 3 ? acc * 256 + octet : -1;
}

/** Value of each ASCII hex digit, -1 for every other code unit below 128. */
const HEX = new Int8Array(128).fill(-1);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) HEX[65 + c] = HEX[97 + c] = 10 + c;

function hexValue(c: number): number {
  return c < 128 ? (HEX[c] ?? -1) : -1;
}

/** Groups of the IPv6 address being parsed (reused: parsing is synchronous). */
const GROUPS = new Uint16Array(8);

/** RFC 4291 text form in s[from, to) (hex groups, one `::`, an optional dotted IPv4 tail) → out[0..3], or false. */
function v6Into(s: string, from: number, to: number, out: Uint32Array): boolean {
  let i = from;
  let g = 0;
  let gap = -1;
  if (to - from >= 2 && s.charCodeAt(from) === 58) {
    if (s.charCodeAt(from + 1) !== 58) return false;
    gap = 0;
    i = from + 2;
  }
  while (i < to) {
    if (g === 8) return false;
    const start = i;
    let v = 0;
    let d = 0;
    for (; i < to; i++) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      if (++d > 4) return false;
      v = v * 16 + h;
    }
    if (i < to && s.charCodeAt(i) === 46) {
      // A dotted IPv4 tail is the last 32 bits.
      if (g > 6) return false;
      const x = v4At(s, start, to);
      if (x < 0) return false;
      GROUPS[g++] = x >>> 16;
      GROUPS[g++] = x & 0xffff;
      i = to;
      break;
    }
    if (d === 0) return false;
    GROUPS[g++] = v;
    if (i === to) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < to && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = g;
      i++;
    } else if (i === to) {
      return false; // a single trailing colon
    }
  }
  if (gap < 0) {
    if (g !== 8) return false;
  } else {
    if (g > 7) return false; // `::` stands for at least one group
    const tail = g - gap;
    for (let k = 0; k < tail; k++) GROUPS[7 - k] = GROUPS[g - 1 - k] ?? 0;
    for (let k = gap; k < 8 - tail; k++) GROUPS[k] = 0;
  }
  for (let k = 0; k < 4; k++) out[k] = (((GROUPS[2 * k] ?? 0) << 16) | (GROUPS[2 * k + 1] ?? 0)) >>> 0;
  return true;
}

/**
 * Parses the address in text[from, to) into `out` without allocating: IPv4 → out[0]; IPv6 → out[0..3] as
 * big-endian 32-bit words. IPv4 is dotted-quad decimal without leading zeros; IPv6 is any RFC 4291 text form
 * without a zone. IPv4-mapped IPv6 comes back as 6 (see `isV4MappedWords`). Returns 0 for anything else.
 */
export function parseIpWordsAt(text: string, from: number, to: number, out: Uint32Array): IpFamilyCode {
  // IPv4 has a dot within its first 4 characters, IPv6 a colon within its first 5: the first one seen decides.
  const look = Math.min(to, from + 5);
  for (let i = from; i < look; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      const x = v4At(text, from, to);
      if (x < 0) return 0;
      out[0] = x;
      return 4;
    }
    if (c === 58) return v6Into(text, from, to, out) ? 6 : 0;
  }
  return 0;
}

/**
 * Parses an IP literal (as `parseIpWordsAt`), ignoring an IPv6 zone (`fe80::1%eth0`, as Node reports link-local
 * peers).
 */
export function parseIpWords(text: string, out: Uint32Array): IpFamilyCode {
  const zone = text.indexOf('%');
  if (zone === -1) return parseIpWordsAt(text, 0, text.length, out);
  if (zone === 0 || zone === text.length - 1 || text.lastIndexOf(':', zone) === -1) return 0;
  return parseIpWordsAt(text, 0, zone, out);
}

/** True when out[0..3] is ::ffff:0:0/96, whose IPv4 address is out[3]. */
export function isV4MappedWords(words: Uint32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}
