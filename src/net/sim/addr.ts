/**
 * IP address parsing for the simulator: canonical text (so '10.0.0.1' and 'FD00::01' compare as strings) and the
 * routing view of an address (an IPv4-mapped IPv6 address routes to its IPv4 host, as on a dual-stack kernel).
 */
import { canonicalAddress, isLoopback, isUnspecified, parseIpLiteral, unmappedV4 } from '../../model/ip.ts';
import { type IpFamily } from '../ports.ts';

export interface IpInfo {
  /** Canonical text: dotted quad, compressed lower-case IPv6, IPv4-mapped as `::ffff:a.b.c.d` (as Node prints it). */
  readonly address: string;
  readonly family: IpFamily;
  /** The address packets are routed by: the IPv4 text for IPv4 and IPv4-mapped IPv6, else `address`. */
  readonly route: string;
  readonly routeFamily: IpFamily;
  /** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`). */
  readonly mapped: boolean;
  /** 127.0.0.0/8 or ::1 (after unmapping). */
  readonly loopback: boolean;
  /** 0.0.0.0 or ::. */
  readonly wildcard: boolean;
}

const cache = new Map<string, IpInfo | null>();
const CACHE_LIMIT = 65_536;

/** Parses an IP literal; undefined when `text` is not one (hostnames, zone ids, shorthand IPv4 like '1.2.3'). */
export function parseIp(text: string): IpInfo | undefined {
  const hit = cache.get(text);
  if (hit !== undefined) return hit ?? undefined;
  const info = parseUncached(text);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(text, info ?? null);
  return info;
}

function parseUncached(text: string): IpInfo | undefined {
  const ip = parseIpLiteral(text);
  if (ip === undefined) return undefined;
  const loopback = isLoopback(ip);
  const wildcard = isUnspecified(ip);
  if (ip.family === 'IPv4') return { address: ip.address, family: 'IPv4', route: ip.address, routeFamily: 'IPv4', mapped: false, loopback, wildcard };
  const v4 = unmappedV4(ip.address);
  if (v4 !== undefined) return { address: mapV4(v4), family: 'IPv6', route: v4, routeFamily: 'IPv4', mapped: true, loopback, wildcard: false };
  const s = canonicalAddress(ip.address, 'IPv6').text;
  return { address: s, family: 'IPv6', route: s, routeFamily: 'IPv6', mapped: false, loopback, wildcard };
}

/** The IPv4-mapped IPv6 form of a dotted quad, as a dual-stack socket reports IPv4 peers. */
export function mapV4(v4: string): string {
  return `::ffff:${v4}`;
}

/** `ip:port`, with brackets for IPv6 (for keys, messages and netstat). */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
