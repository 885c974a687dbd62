/**
 * A minimal MMDB writer for tests, following the MaxMind DB format spec (search tree, data section, metadata), so
 * the `maxmind` reader is exercised on real files without shipping a database.
 */
import ipaddr from 'ipaddr.js';

export type MmdbValue = string | number | { u16: number } | { u64: number } | readonly MmdbValue[] | { readonly [k: string]: MmdbValue };

function control(type: number, size: number): number[] {
  const ext = type > 7 ? [type - 7] : [];
  const first = (type > 7 ? 0 : type) << 5;
  if (size < 29) return [first | size, ...ext];
  if (size < 285) return [first | 29, ...ext, size - 29];
  return [first | 30, ...ext, (size - 285) >> 8, (size - 285) & 255];
}

function uint(type: number, n: number): number[] {
  const bytes: number[] = [];
  for (let v = BigInt(n); v > 0n; v >>= 8n) bytes.unshift(Number(v & 255n));
  return [...control(type, bytes.length), ...bytes];
}

function encode(v: MmdbValue): number[] {
  if (typeof v === 'string') {
    const b = [...Buffer.from(v, 'utf8')];
    return [...control(2, b.length), ...b];
  }
  if (typeof v === 'number') return uint(6, v);
  if (Array.isArray(v)) return [...control(11, v.length), ...v.flatMap(encode)];
  if ('u16' in v && typeof v.u16 === 'number') return uint(5, v.u16);
  if ('u64' in v && typeof v.u64 === 'number') return uint(9, v.u64);
  const entries = Object.entries(v as Record<string, MmdbValue>);
  return [...control(7, entries.length), ...entries.flatMap(([k, x]) => [...encode(k), ...encode(x)])];
}

type Rec = { k: 'empty' } | { k: 'node'; i: number } | { k: 'data'; off: number };

/** An MMDB with 32-bit records. `networks` are CIDRs (IPv4 goes under ::/96 in an IPv6 tree), broadest first. */
export function mmdb(ipVersion: 4 | 6, networks: readonly [string, MmdbValue][]): Buffer {
  const bits = ipVersion === 4 ? 32 : 128;
  const nodes: [Rec, Rec][] = [[{ k: 'empty' }, { k: 'empty' }]];
  const data: number[] = [];
  for (const [cidr, value] of networks) {
    const [a, p] = ipaddr.parseCIDR(cidr);
    const isV4 = a.kind() === 'ipv4';
    const addr = a.toByteArray().reduce((n, b) => (n << 8n) | BigInt(b), 0n);
    const prefix = p + (isV4 && bits === 128 ? 96 : 0);
    const off = data.length;
    data.push(...encode(value));
    const lead = prefix - p; // the ::/96 lead-in of IPv4 in an IPv6 tree: all zero bits
    const width = isV4 ? 32 : 128;
    let node = 0;
    for (let depth = 0; depth < prefix; depth++) {
      const pair = nodes[node] as [Rec, Rec];
      const b = depth < lead ? 0 : (Number((addr >> BigInt(width - 1 - (depth - lead))) & 1n) as 0 | 1);
      if (depth === prefix - 1) {
        pair[b] = { k: 'data', off };
        break;
      }
      const rec = pair[b];
      if (rec.k === 'node') {
        node = rec.i;
      } else {
        nodes.push([rec, rec]); // a broader network's data is pushed down to both halves
        pair[b] = { k: 'node', i: nodes.length - 1 };
        node = nodes.length - 1;
      }
    }
  }
  const n = nodes.length;
  const tree = Buffer.alloc(n * 8);
  const recValue = (r: Rec): number => (r.k === 'node' ? r.i : r.k === 'empty' ? n : n + 16 + r.off);
  nodes.forEach(([l, r], i) => {
    tree.writeUInt32BE(recValue(l), i * 8);
    tree.writeUInt32BE(recValue(r), i * 8 + 4);
  });
  const meta = encode({
    node_count: n, record_size: { u16: 32 }, ip_version: { u16: ipVersion }, database_type: 'Refract-Test', languages: ['en'],
    binary_format_major_version: { u16: 2 }, binary_format_minor_version: { u16: 0 }, build_epoch: { u64: 1_700_000_000 }, description: { en: 'test' },
  });
  return Buffer.concat([tree, Buffer.alloc(16), Buffer.from(data), Buffer.from('abcdef4d61784d696e642e636f6d', 'hex'), Buffer.from(meta)]);
}

