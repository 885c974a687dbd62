/**
 * The simulation's DNS: one world-wide zone that every host's `resolve` consults after a fixed latency. Records can
 * change mid-run (a TTL test flips an A record and checks the cache honours ttlSec). Failures can be injected per
 * name. The resolver itself is an oracle: it is not a host, so partitions and crashes do not reach it.
 */
import { type DnsAnswer, type DnsRecordType, type NetError } from '../ports.ts';
import { parseIp } from './addr.ts';
import { dnsError } from './net-error.ts';

/** An A/AAAA record is an IP literal; an SRV record names a target and its port. */
export type DnsRecordInput = string | { readonly address: string; readonly port?: number; readonly priority?: number; readonly weight?: number };

/** Failure codes `fail` can inject, as Node's resolver reports them. */
export type DnsFailure = 'ENOTFOUND' | 'ENODATA' | 'ESERVFAIL' | 'ETIMEOUT' | 'ECONNREFUSED' | 'EREFUSED';

type Records = DnsAnswer['records'];

const SYSCALL: Record<DnsRecordType, string> = { A: 'queryA', AAAA: 'queryAaaa', SRV: 'querySrv' };

/** @internal What a query returns: an answer or an error, and when. */
export type DnsResult = { readonly delayMs: number; readonly answer: DnsAnswer } | { readonly delayMs: number; readonly error: NetError };

export class SimDns {
  /** Time from query to answer, ms. */
  latencyMs: number;
  /** Time after which an injected ETIMEOUT is reported, ms (c-ares: 5 s per try). */
  timeoutMs: number;
  readonly #zone = new Map<string, Map<DnsRecordType, DnsAnswer>>();
  readonly #failures = new Map<string, DnsFailure>();

  constructor(opts: { latencyMs?: number; timeoutMs?: number } = {}) {
    this.latencyMs = opts.latencyMs ?? 1;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
  }

  /** Sets (replaces) the `type` records of `name`. Throws RangeError on an address of the wrong family. */
  set(name: string, type: DnsRecordType, records: readonly DnsRecordInput[], ttlSec = 300): void {
    if (!(Number.isInteger(ttlSec) && ttlSec >= 0)) throw new RangeError(`dns ttlSec must be an integer >= 0, got ${ttlSec}`);
    const out: Records[number][] = records.map((r) => {
      const rec = typeof r === 'string' ? { address: r } : r;
      if (type === 'SRV') {
        if (rec.port === undefined) throw new RangeError(`dns SRV record for ${name} needs a port`);
        return Object.freeze({ address: normalise(rec.address), port: rec.port, priority: rec.priority ?? 0, weight: rec.weight ?? 0 });
      }
      const ip = parseIp(rec.address);
      const want = type === 'A' ? 'IPv4' : 'IPv6';
      if (ip === undefined || ip.family !== want) throw new RangeError(`dns ${type} record for ${name} must be an ${want} literal, got ${rec.address}`);
      return Object.freeze({ address: ip.address, family: ip.family });
    });
    const key = normalise(name);
    let types = this.#zone.get(key);
    if (types === undefined) this.#zone.set(key, (types = new Map()));
    types.set(type, Object.freeze({ records: Object.freeze(out), ttlSec }));
  }

  /** Removes `name` (all types, or one). */
  delete(name: string, type?: DnsRecordType): void {
    const key = normalise(name);
    if (type === undefined) this.#zone.delete(key);
    else this.#zone.get(key)?.delete(type);
  }

  /** Makes every query for `name` fail with `code` (null clears it). */
  fail(name: string, code: DnsFailure | null): void {
    if (code === null) this.#failures.delete(normalise(name));
    else this.#failures.set(normalise(name), code);
  }

  /** @internal The result of a query, as Node's `dns.promises.Resolver` would give it. */
  query(name: string, type: DnsRecordType): DnsResult {
    const key = normalise(name);
    const syscall = SYSCALL[type];
    const failure = this.#failures.get(key);
    if (failure !== undefined) return { delayMs: failure === 'ETIMEOUT' ? this.timeoutMs : this.latencyMs, error: dnsError(failure, syscall, name) };
    const types = this.#zone.get(key);
    const answer = types?.get(type);
    if (answer !== undefined && answer.records.length > 0) return { delayMs: this.latencyMs, answer };
    return { delayMs: this.latencyMs, error: dnsError(types === undefined ? 'ENOTFOUND' : 'ENODATA', syscall, name) };
  }

  /** @internal getaddrinfo stand-in for `connectTcp` by name: the first A record, else the first AAAA. */
  lookup(name: string): string | undefined {
    const types = this.#zone.get(normalise(name));
    return types?.get('A')?.records[0]?.address ?? types?.get('AAAA')?.records[0]?.address;
  }
}

function normalise(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}
