// Shared config and query helpers for the DNS tests (not a test file itself).
import assert from 'node:assert/strict';
import { decode, encode, type Question } from 'dns-packet';
import { validateConfig } from '../../../src/model/config.ts';
import type { RefractConfig } from '../../../src/model/types.ts';

const ORIGIN = ['tcp://127.0.0.1:9000'];

/**
 * A zone example.com (TTL 42) over edge addresses 127.0.0.1, 127.0.0.2 and ::1:
 * - game.example.com: two CNAME apps (tcp and udp, one name), ids `game` and `game-udp`;
 * - v6.example.com: CNAME, connectivity ipv6; v4.example.com: connectivity ipv4;
 * - fixed.example.com: ADDRESS, static ips 127.0.0.2 (bound) and 192.0.2.1 (not bound);
 * - example.com (the apex): a CNAME app, answered with addresses (no CNAME beside the SOA);
 * - outside.test: an app in no zone.
 */
export function fixtureRaw(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    edge: { addresses: ['127.0.0.1', '127.0.0.2', '::1'] },
    zones: [{ name: 'example.com' }],
    dns: { listen: '127.0.0.1:5300', ttl: 42 },
    apps: [
      { id: 'game', protocol: 'tcp/7000', dns: { type: 'CNAME', name: 'game.example.com' }, origin_direct: ORIGIN },
      { id: 'game-udp', protocol: 'udp/7000', dns: { type: 'CNAME', name: 'game.example.com' }, origin_direct: ['udp://127.0.0.1:9000'] },
      { id: 'v6', protocol: 'tcp/7001', dns: { type: 'CNAME', name: 'v6.example.com' }, edge_ips: { type: 'dynamic', connectivity: 'ipv6' }, origin_direct: ORIGIN },
      { id: 'v4', protocol: 'tcp/7002', dns: { type: 'CNAME', name: 'v4.example.com' }, edge_ips: { type: 'dynamic', connectivity: 'ipv4' }, origin_direct: ORIGIN },
      { id: 'fixed', protocol: 'tcp/7003', dns: { type: 'ADDRESS', name: 'fixed.example.com' }, edge_ips: { type: 'static', ips: ['127.0.0.2', '192.0.2.1'] }, origin_direct: ORIGIN },
      { id: 'apex', protocol: 'tcp/7004', dns: { type: 'CNAME', name: 'example.com' }, origin_direct: ORIGIN },
      { id: 'outside', protocol: 'tcp/7005', dns: { type: 'CNAME', name: 'app.outside.test' }, origin_direct: ORIGIN },
    ],
    ...over,
  };
}

export function configOf(raw: unknown): RefractConfig {
  const r = validateConfig(raw);
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  return r.config;
}

/** `n` edge addresses 127.0.0.1 … and one app `big.example.com` (a CNAME app) answering all of them. */
export function bigRaw(n: number): Record<string, unknown> {
  const addresses = Array.from({ length: n }, (_, i) => `127.0.${Math.floor((i + 1) / 256)}.${(i + 1) % 256}`);
  return {
    edge: { addresses },
    zones: [{ name: 'example.com' }],
    dns: { listen: '127.0.0.1:5300', ttl: 42 },
    apps: [{ id: 'big', protocol: 'tcp/7100', dns: { type: 'ADDRESS', name: 'big.example.com' }, edge_ips: { type: 'static', ips: addresses }, origin_direct: ORIGIN }],
  };
}

export interface QueryOpts {
  id?: number;
  flags?: number;
  /** EDNS0 UDP size; undefined: no OPT. */
  edns?: number;
  ednsVersion?: number;
  ednsFlags?: number;
  cls?: Question['class'];
}

/** A decoded message, loosely typed for assertions (dns-packet's union types make every field access a narrowing). */
export interface Msg {
  readonly id: number;
  readonly flags: number;
  readonly rcode: string;
  readonly opcode: string;
  readonly questions: any[];
  readonly answers: any[];
  readonly authorities: any[];
  readonly additionals: any[];
}

export function query(name: string, type: Question['type'] | 'ANY' | 'AXFR' | 'IXFR', o: QueryOpts = {}): Buffer {
  return encode({
    id: o.id ?? 4242,
    type: 'query',
    flags: o.flags ?? 0x0100,
    questions: [{ name, type: type as Question['type'], class: o.cls ?? 'IN' }],
    additionals: o.edns === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: o.edns, ednsVersion: o.ednsVersion ?? 0, flags: o.ednsFlags ?? 0 } as never],
  });
}

export function decoded(bytes: Uint8Array): Msg {
  return decode(Buffer.from(bytes)) as unknown as Msg;
}

/** `TYPE data` of each record of a section, in order (owner names apart). */
export function rdata(records: readonly any[] | undefined): string[] {
  return (records ?? []).map((r: { type: string; data?: unknown }) => `${r.type} ${typeof r.data === 'string' ? r.data : JSON.stringify(r.data ?? '')}`);
}
