/**
 * Simple Proxy Protocol (SPP): Cloudflare's fixed 38-byte header on every proxied UDP datagram
 * (docs/proxy-protocol.md). Pure, sans-IO.
 *
 * ```
 * offset size field
 * 0      2    magic        0x56EC, big-endian
 * 2      16   client_addr  IPv6, or IPv4-mapped IPv6 (::ffff:a.b.c.d) for an IPv4 client
 * 18     16   proxy_addr   the address the proxy received the datagram on (same encoding)
 * 34     2    client_port  big-endian
 * 36     2    proxy_port   big-endian
 * 38     …    payload
 * ```
 * Origins prepend the same header (the original client's details) to replies; whether a reply matches its flow
 * is the UDP flow's decision, not this codec's.
 */
import ipaddr from 'ipaddr.js';
import { type ErrorCode } from '../model/errors.ts';
import { isFourPartDecimalV4 } from '../model/ip.ts';
import { parseIpv6 } from './proxy-protocol.ts';

export const SPP_MAGIC = 0x56ec;
export const SPP_HEADER_LENGTH = 38;

export interface SppEndpoint {
  /** IPv4 dotted quad (decoded from IPv4-mapped IPv6) or IPv6 in RFC 5952 form. */
  address: string;
  /** 0-65535. */
  port: number;
}

export interface SppHeader {
  client: SppEndpoint;
  proxy: SppEndpoint;
}

export type SppErrorCode = Extract<ErrorCode, 'E_SPP_TOO_SHORT' | 'E_SPP_BAD_MAGIC'>;

export type SppDecodeResult =
  | { kind: 'ok'; client: SppEndpoint; proxy: SppEndpoint; payload: Uint8Array }
  | { kind: 'error'; code: SppErrorCode; detail: string };

/** The 16 wire bytes of an address: IPv6 as is, IPv4 as ::ffff:a.b.c.d. Throws TypeError on a non-IP literal. */
function addressBytes(address: string, what: string): number[] {
  if (isFourPartDecimalV4(address)) return ipaddr.IPv4.parse(address).toIPv4MappedAddress().toByteArray();
  const v6 = parseIpv6(address);
  if (v6 !== undefined) return v6.toByteArray();
  throw new TypeError(`${what} is not an IPv4 or IPv6 address without zone: ${address}`);
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`${what} port must be an integer 0-65535, got ${String(port)}`);
  }
}

/**
 * The 38-byte header alone. A UDP flow's header never changes, so build it once per flow and send each datagram
 * with {@link prependSppHeader}; address parsing costs microseconds, the copy does not. An IPv4 address is written
 * IPv4-mapped, so `1.2.3.4` and `::ffff:1.2.3.4` give the same bytes. Throws TypeError/RangeError on an address
 * that is not an IP literal (or carries a zone id) or a port outside 0-65535: a bug in the caller.
 */
export function encodeSppHeader(h: SppHeader): Uint8Array {
  checkPort(h.client.port, 'client');
  checkPort(h.proxy.port, 'proxy');
  const out = new Uint8Array(SPP_HEADER_LENGTH);
  out[0] = SPP_MAGIC >>> 8;
  out[1] = SPP_MAGIC & 0xff;
  out.set(addressBytes(h.client.address, 'client address'), 2);
  out.set(addressBytes(h.proxy.address, 'proxy address'), 18);
  out[34] = h.client.port >>> 8;
  out[35] = h.client.port & 0xff;
  out[36] = h.proxy.port >>> 8;
  out[37] = h.proxy.port & 0xff;
  return out;
}

/** `header` (from {@link encodeSppHeader}) followed by a copy of `payload`, in one new buffer. */
export function prependSppHeader(header: Uint8Array, payload: Uint8Array): Uint8Array {
  if (header.length !== SPP_HEADER_LENGTH) throw new RangeError(`an SPP header is ${SPP_HEADER_LENGTH} bytes, got ${header.length}`);
  const out = new Uint8Array(SPP_HEADER_LENGTH + payload.length);
  out.set(header, 0);
  out.set(payload, SPP_HEADER_LENGTH);
  return out;
}

/** One datagram: the 38-byte header for `h`, then a copy of `payload`. Throws as {@link encodeSppHeader}. */
export function encodeSpp(h: SppHeader, payload: Uint8Array): Uint8Array {
  return prependSppHeader(encodeSppHeader(h), payload);
}

/**
 * True when `datagram` starts with exactly the 38 bytes of `header`: the cheap test that an origin's reply carries
 * its flow's header unchanged (Spectrum: replies repeat "the same header"). No allocation, no address parsing.
 */
export function hasSppHeader(datagram: Uint8Array, header: Uint8Array): boolean {
  if (header.length !== SPP_HEADER_LENGTH || datagram.length < SPP_HEADER_LENGTH) return false;
  for (let i = 0; i < SPP_HEADER_LENGTH; i++) if (datagram[i] !== header[i]) return false;
  return true;
}

function addressAt(b: Uint8Array, at: number): string {
  const parts: number[] = new Array<number>(8);
  for (let i = 0; i < 8; i++) parts[i] = ((b[at + 2 * i] ?? 0) << 8) | (b[at + 2 * i + 1] ?? 0);
  const v6 = new ipaddr.IPv6(parts);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toRFC5952String();
}

/**
 * Splits a datagram into its SPP header and payload. `payload` is a view into `datagram` (not a copy) and may
 * be empty. Any 16 bytes are a valid address, so the only failures are a short datagram and a wrong magic.
 * Never throws.
 */
export function decodeSpp(datagram: Uint8Array): SppDecodeResult {
  if (datagram.length < SPP_HEADER_LENGTH) {
    return { kind: 'error', code: 'E_SPP_TOO_SHORT', detail: `${datagram.length} bytes < ${SPP_HEADER_LENGTH}` };
  }
  const magic = ((datagram[0] ?? 0) << 8) | (datagram[1] ?? 0);
  if (magic !== SPP_MAGIC) {
    return { kind: 'error', code: 'E_SPP_BAD_MAGIC', detail: `magic 0x${magic.toString(16).padStart(4, '0')}` };
  }
  return {
    kind: 'ok',
    client: { address: addressAt(datagram, 2), port: ((datagram[34] ?? 0) << 8) | (datagram[35] ?? 0) },
    proxy: { address: addressAt(datagram, 18), port: ((datagram[36] ?? 0) << 8) | (datagram[37] ?? 0) },
    payload: datagram.subarray(SPP_HEADER_LENGTH),
  };
}
