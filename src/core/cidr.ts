/**
 * CIDR membership, pure. Used for `edge.accept_proxy.trusted` (which senders may prefix a PROXY header).
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match IPv4 blocks.
 */
import ipaddr from 'ipaddr.js';

type Parsed = ReturnType<typeof ipaddr.parse>;
const cache = new Map<string, [Parsed, number]>();

function parseCidr(cidr: string): [Parsed, number] {
  let c = cache.get(cidr);
  if (!c) {
    c = cidr.includes('/') ? ipaddr.parseCIDR(cidr) : (() => {
      const a = ipaddr.parse(cidr);
      return [a, a.kind() === 'ipv4' ? 32 : 128] as [Parsed, number];
    })();
    cache.set(cidr, c);
  }
  return c;
}

function normalise(address: string): Parsed {
  const a = ipaddr.parse(address);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address();
  return a;
}

/** True when `address` lies in one of `cidrs` (each a CIDR block or a single address). Invalid input → false. */
export function isTrustedSource(cidrs: readonly string[], address: string): boolean {
  let a: Parsed;
  try {
    a = normalise(address);
  } catch {
    return false;
  }
  for (const c of cidrs) {
    const [net, bits] = parseCidr(c);
    if (net.kind() === a.kind() && a.match(net, bits)) return true;
  }
  return false;
}
