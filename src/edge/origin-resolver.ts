/**
 * Where a new upstream connection goes: the ordered origin addresses for one edge port of one app.
 *
 * - `origin_direct`: the configured addresses, each port mapped from the edge port (no I/O).
 * - `origin_dns`: the name resolved through `Network.resolve` and cached per app.
 *   - type `''`: A and AAAA; IPv4 addresses first, then IPv6 (an IPv6 address is tried only after the IPv4 ones).
 *     One family answering NXDOMAIN/NODATA is fine when the other has addresses.
 *   - `'A'` / `'AAAA'`: that family only.
 *   - `'SRV'`: the SRV set, then each target's A and AAAA. Lower priority first; at equal priority higher weight
 *     first (weights order, they do not apportion). The port comes from the record; with an edge port range the SRV
 *     port stands for the origin's first port and the edge offset is added (edge 1000-1010 → SRV port 3000: edge
 *     1004 → 3004); a mapped port above 65535 is dropped. A target without addresses is skipped.
 *   - Any other failure of a sub-query (timeout, SERVFAIL, …) fails the whole lookup, so a half answer never
 *     replaces a whole one.
 * - Rotation: each call rotates the list by one per app (within each group: address family for `''`, priority for
 *   SRV; over the whole list for direct), so new connections spread over the addresses while the order of
 *   preference between groups holds.
 *
 * Cache (per app; invariant: at most one lookup in flight per entry, shared by every caller):
 * - lifetime = `origin_dns.ttl` when set, else the answer's TTL; never below `max(minTtlSec, 1)` seconds.
 * - an app that asked for targets during the lifetime is refreshed when it ends (one clock timer per entry); the
 *   old answer is served until the new one arrives (stale-while-revalidate). An idle app arms no timer: its expired
 *   answer is served once more while a refresh starts.
 * - a failed refresh (any error, NXDOMAIN included) keeps the old answer for at most one more lifetime past expiry
 *   and logs a warning with the error code; after that, callers get `E_UPSTREAM_RESOLVE_FAILED`.
 * - after a failure no new lookup starts for `min(5 s, floor)`: a broken name under load costs one query per
 *   back-off, not one per connection; callers without a usable answer get the remembered error meanwhile.
 *
 * Time comes only from the Clock port; nothing here touches real sockets or timers.
 */
import type { Logger } from 'pino';
import { RefractError } from '../model/errors.ts';
import { inRange, mapPort } from '../core/port-map.ts';
import type { AppSpec, OriginDnsType, PortRange, UpstreamTarget } from '../model/types.ts';
import type { Cancel, Clock, DnsAnswer, DnsRecordType, IpFamily, NetError, Network } from '../net/ports.ts';

export type { UpstreamTarget } from '../model/types.ts';

export interface OriginResolver {
  /**
   * The answer when it needs no I/O: always for `origin_direct`, and for `origin_dns` while a cached answer is
   * usable (fresh, or stale with a refresh under way). `undefined` means: call {@link targets}. Advances the
   * rotation like `targets`. Throws RangeError when `edgePort` is outside `app.edgePorts` (a bug in the caller).
   */
  targetsSync(app: AppSpec, edgePort: number): readonly UpstreamTarget[] | undefined;
  /**
   * Targets for a new connection to `edgePort` of `app`, in the order to try them: rotated round-robin per app so
   * new connections spread over the addresses. Rejects with RefractError('E_UPSTREAM_RESOLVE_FAILED',
   * { details: { app, name, type, code } }) when an origin_dns name cannot be resolved and nothing usable is cached
   * (`code` is the resolver's NetError code, or `EPORTRANGE` when every SRV port maps past 65535).
   */
  targets(app: AppSpec, edgePort: number): Promise<readonly UpstreamTarget[]>;
  /** Drops cache entries (and their timers) of apps no longer configured (called on config reload). */
  retain(appIds: ReadonlySet<string>): void;
  /** Resolves once no lookup is in flight (tests, orderly shutdown). */
  whenIdle(): Promise<void>;
  /** Cancels refresh timers; lookups still in flight finish but arm none. */
  dispose(): void;
}

export interface OriginResolverDeps {
  readonly net: Network;
  readonly clock: Clock;
  /** Floor on how long an answer is cached, seconds (`node.dnsMinTtlSec`); 1 s is the hard floor below it. */
  readonly minTtlSec: number;
  /** Where resolve failures and address changes are logged; the caller binds the component (a pino child). */
  readonly log: Logger;
}

/** The longest back-off after a failed lookup, ms (shorter when the TTL floor is shorter). */
const MAX_RETRY_BACKOFF_MS = 5_000;

/** A resolved address before port mapping. `group` orders preference (family for '', priority for SRV). */
interface ResolvedAddr {
  readonly host: string;
  readonly family: IpFamily;
  /** The SRV record's port; undefined for A/AAAA. */
  readonly srvPort: number | undefined;
}

interface Resolution {
  /** Non-empty groups in order of preference; rotation happens inside each. */
  readonly groups: readonly (readonly ResolvedAddr[])[];
  readonly ttlMs: number;
  readonly expiresAt: number;
  /** After a failed refresh the answer stays usable until here (expiry + one more lifetime). */
  readonly staleUntil: number;
}

interface DnsEntry {
  readonly appId: string;
  readonly name: string;
  readonly type: OriginDnsType;
  readonly ttlSec: number | undefined;
  res: Resolution | undefined;
  inflight: Promise<Resolution> | undefined;
  lastError: RefractError | undefined;
  /** No demand-driven lookup before this instant (back-off after a failure). */
  retryAt: number;
  /** Someone asked for targets since `res` was stored: refresh when it expires. */
  used: boolean;
  timer: Cancel | undefined;
}

interface AppState {
  /** Rotation counter; advances once per call. */
  rr: number;
  dns: DnsEntry | undefined;
}

/** Creates the resolver. See the file comment for the cache and ordering rules. */
export function createOriginResolver(deps: OriginResolverDeps): OriginResolver {
  const { net, clock } = deps;
  const log = deps.log;
  const floorMs = Math.max(deps.minTtlSec, 1) * 1000;
  const retryBackoffMs = Math.min(MAX_RETRY_BACKOFF_MS, floorMs);
  const states = new Map<string, AppState>();
  const inflight = new Set<Promise<unknown>>();
  let disposed = false;

  const stateOf = (appId: string): AppState => {
    let s = states.get(appId);
    if (!s) states.set(appId, (s = { rr: 0, dns: undefined }));
    return s;
  };

  const turn = (s: AppState): number => {
    const r = s.rr;
    s.rr = r >= 0x3fff_ffff ? 0 : r + 1;
    return r;
  };

  const dropEntry = (s: AppState): void => {
    s.dns?.timer?.();
    s.dns = undefined;
  };

  /** The app's DNS entry, replaced when the origin it was made for changed (a reload kept the id). */
  const entryOf = (s: AppState, app: AppSpec, origin: Extract<AppSpec['origin'], { kind: 'dns' }>): DnsEntry => {
    const e = s.dns;
    if (e && e.name === origin.name && e.type === origin.type && e.ttlSec === origin.ttlSec) return e;
    dropEntry(s);
    const fresh: DnsEntry = {
      appId: app.id,
      name: origin.name,
      type: origin.type,
      ttlSec: origin.ttlSec,
      res: undefined,
      inflight: undefined,
      lastError: undefined,
      retryAt: -Infinity,
      used: false,
      timer: undefined,
    };
    s.dns = fresh;
    return fresh;
  };

  const isCurrent = (e: DnsEntry): boolean => states.get(e.appId)?.dns === e;

  /** Starts (or joins) the entry's lookup. The promise rejects with E_UPSTREAM_RESOLVE_FAILED. */
  const lookup = (e: DnsEntry): Promise<Resolution> => {
    if (e.inflight) return e.inflight;
    const p = resolveAll(net, e.name, e.type).then(
      ({ groups, ttlSec }) => store(e, groups, ttlSec),
      (err: unknown) => {
        throw fail(e, err as NetError);
      },
    );
    e.inflight = p;
    inflight.add(p);
    const settle = (): void => {
      inflight.delete(p);
      if (e.inflight === p) e.inflight = undefined;
    };
    void p.then(settle, settle);
    return p;
  };

  const refreshInBackground = (e: DnsEntry): void => {
    lookup(e).catch(() => {
      // Logged by `fail`; the stale answer (if any) keeps serving.
    });
  };

  const store = (e: DnsEntry, groups: readonly (readonly ResolvedAddr[])[], recordTtlSec: number): Resolution => {
    const now = clock.now();
    const ttlMs = Math.max((e.ttlSec ?? recordTtlSec) * 1000, floorMs);
    const res: Resolution = { groups, ttlMs, expiresAt: now + ttlMs, staleUntil: now + 2 * ttlMs };
    if (!isCurrent(e)) return res; // the app was reloaded or removed meanwhile: answer the waiters, cache nothing
    const before = e.res ? describe(e.res.groups) : undefined;
    const after = describe(groups);
    if (before === undefined) {
      log.info({ app: e.appId, name: e.name, type: e.type || 'A+AAAA', addresses: after, ttlSec: ttlMs / 1000 }, 'origin resolved');
    } else if (before.join() !== after.join()) {
      log.info({ app: e.appId, name: e.name, type: e.type || 'A+AAAA', before, after, ttlSec: ttlMs / 1000 }, 'origin addresses changed');
    }
    if (e.lastError) log.info({ app: e.appId, name: e.name, type: e.type || 'A+AAAA' }, 'origin resolves again');
    e.res = res;
    e.lastError = undefined;
    e.retryAt = -Infinity;
    e.used = false;
    e.timer?.();
    e.timer = disposed ? undefined : clock.setTimer(ttlMs, () => onExpiry(e));
    return res;
  };

  const onExpiry = (e: DnsEntry): void => {
    e.timer = undefined;
    if (isCurrent(e) && e.used) refreshInBackground(e);
  };

  const fail = (e: DnsEntry, cause: NetError): RefractError => {
    const code = typeof cause?.code === 'string' ? cause.code : 'EUNKNOWN';
    const err = new RefractError('E_UPSTREAM_RESOLVE_FAILED', {
      details: { app: e.appId, name: e.name, type: e.type, code },
      cause,
    });
    if (!isCurrent(e)) return err;
    const now = clock.now();
    e.lastError = err;
    e.retryAt = now + retryBackoffMs;
    const staleUntil = e.res && now < e.res.staleUntil ? e.res.staleUntil : undefined;
    const fields = { app: e.appId, name: e.name, type: e.type || 'A+AAAA', code };
    if (staleUntil !== undefined) {
      log.warn({ ...fields, staleForMs: staleUntil - now }, 'origin refresh failed; serving the previous addresses');
    } else {
      log.warn(fields, 'origin resolve failed');
    }
    return err;
  };

  /** Orders one app's answer for `edgePort`: rotated inside each group, groups in order, ports mapped. */
  const pick = (s: AppState, app: AppSpec, res: Resolution, edgePort: number): UpstreamTarget[] => {
    const origin = app.origin;
    if (origin.kind !== 'dns') throw new Error('pick: not a DNS origin');
    const offset = edgePort - app.edgePorts.start;
    const fixedPort = origin.type === 'SRV' ? undefined : mapPort(app.edgePorts, requirePorts(app, origin.ports), edgePort);
    const r = turn(s);
    const out: UpstreamTarget[] = [];
    for (const group of res.groups) {
      const n = group.length;
      for (let i = 0; i < n; i++) {
        const a = group[(r + i) % n];
        if (!a) continue;
        const port = fixedPort ?? (a.srvPort ?? 0) + offset;
        if (port < 1 || port > 65535) continue;
        out.push({ host: a.host, port, family: a.family });
      }
    }
    return out;
  };

  const portRangeError = (app: AppSpec, e: DnsEntry, edgePort: number): RefractError =>
    new RefractError('E_UPSTREAM_RESOLVE_FAILED', {
      message: 'Every SRV port of the origin, offset by the edge port, lies past 65535.',
      details: { app: app.id, name: e.name, type: e.type, code: 'EPORTRANGE', edgePort },
    });

  const targetsSync = (app: AppSpec, edgePort: number): readonly UpstreamTarget[] | undefined => {
    checkEdgePort(app, edgePort);
    const s = stateOf(app.id);
    const origin = app.origin;
    if (origin.kind === 'direct') {
      if (s.dns) dropEntry(s); // the app switched from origin_dns to origin_direct
      const n = origin.targets.length;
      const r = turn(s);
      const out: UpstreamTarget[] = new Array<UpstreamTarget>(n);
      for (let i = 0; i < n; i++) {
        const t = origin.targets[(r + i) % n];
        if (!t) throw new Error('origin_direct target index out of range');
        out[i] = { host: t.host, port: mapPort(app.edgePorts, t.ports, edgePort), family: t.family };
      }
      return out;
    }
    const e = entryOf(s, app, origin);
    const res = e.res;
    if (!res) return undefined;
    const now = clock.now();
    if (now >= res.staleUntil) return undefined;
    if (now >= res.expiresAt && !e.inflight && now >= e.retryAt) refreshInBackground(e);
    const out = pick(s, app, res, edgePort);
    if (out.length === 0) return undefined; // let `targets` report it
    e.used = true;
    return out;
  };

  return {
    targetsSync,

    async targets(app, edgePort) {
      const sync = targetsSync(app, edgePort);
      if (sync) return sync;
      const origin = app.origin;
      if (origin.kind !== 'dns') throw new Error('origin_direct produced no targets'); // validation forbids it
      const s = stateOf(app.id);
      const e = entryOf(s, app, origin);
      let res = e.res;
      if (!res || clock.now() >= res.staleUntil) {
        if (!e.inflight && e.lastError && clock.now() < e.retryAt) throw e.lastError;
        res = await lookup(e);
      }
      const out = pick(s, app, res, edgePort);
      if (out.length === 0) throw portRangeError(app, e, edgePort);
      e.used = true;
      return out;
    },

    retain(appIds) {
      for (const [id, s] of states) {
        if (appIds.has(id)) continue;
        dropEntry(s);
        states.delete(id);
      }
    },

    async whenIdle() {
      // Bounded: each round waits for the lookups in flight at its start; a settled lookup starts no new one.
      for (let round = 0; round < 100 && inflight.size > 0; round++) {
        await Promise.allSettled([...inflight]);
      }
    },

    dispose() {
      disposed = true;
      for (const s of states.values()) {
        s.dns?.timer?.();
        if (s.dns) s.dns.timer = undefined;
      }
    },
  };
}

// ── lookups (pure apart from `net.resolve`) ──────────────────────────────────────────────────────────────────────

/** NXDOMAIN / NODATA: an answer about the name, not an outage. */
function isNegative(err: unknown): boolean {
  const code = (err as NetError | undefined)?.code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

function noData(name: string, type: DnsRecordType): NetError {
  return Object.assign(new Error(`query ENODATA ${name} (${type})`), { code: 'ENODATA' });
}

async function resolveFamily(net: Network, name: string, type: 'A' | 'AAAA'): Promise<{ addrs: ResolvedAddr[]; ttlSec: number }> {
  const answer: DnsAnswer = await net.resolve(name, type);
  const family: IpFamily = type === 'A' ? 'IPv4' : 'IPv6';
  const addrs: ResolvedAddr[] = [];
  const seen = new Set<string>();
  for (const r of answer.records) {
    if (seen.has(r.address)) continue;
    seen.add(r.address);
    addrs.push({ host: r.address, family: r.family ?? family, srvPort: undefined });
  }
  if (addrs.length === 0) throw noData(name, type);
  return { addrs, ttlSec: answer.ttlSec };
}

/** A and AAAA together: IPv4 then IPv6. Rejects when neither has addresses, or when either failed other than negatively. */
async function resolveBoth(net: Network, name: string): Promise<{ v4: ResolvedAddr[]; v6: ResolvedAddr[]; ttlSec: number }> {
  const [a, aaaa] = await Promise.allSettled([resolveFamily(net, name, 'A'), resolveFamily(net, name, 'AAAA')]);
  if (a.status === 'rejected' && !isNegative(a.reason)) throw a.reason;
  if (aaaa.status === 'rejected' && !isNegative(aaaa.reason)) throw aaaa.reason;
  if (a.status === 'rejected' && aaaa.status === 'rejected') {
    // Prefer NXDOMAIN: it says more than "no record of this type".
    throw (aaaa.reason as NetError).code === 'ENOTFOUND' ? aaaa.reason : a.reason;
  }
  const v4 = a.status === 'fulfilled' ? a.value : undefined;
  const v6 = aaaa.status === 'fulfilled' ? aaaa.value : undefined;
  return { v4: v4?.addrs ?? [], v6: v6?.addrs ?? [], ttlSec: Math.min(v4?.ttlSec ?? Infinity, v6?.ttlSec ?? Infinity) };
}

async function resolveAll(net: Network, name: string, type: OriginDnsType): Promise<{ groups: ResolvedAddr[][]; ttlSec: number }> {
  switch (type) {
    case 'A':
    case 'AAAA': {
      const { addrs, ttlSec } = await resolveFamily(net, name, type);
      return { groups: [addrs], ttlSec };
    }
    case '': {
      const { v4, v6, ttlSec } = await resolveBoth(net, name);
      return { groups: [v4, v6].filter((g) => g.length > 0), ttlSec };
    }
    case 'SRV':
      return resolveSrv(net, name);
  }
}

async function resolveSrv(net: Network, name: string): Promise<{ groups: ResolvedAddr[][]; ttlSec: number }> {
  const srv = await net.resolve(name, 'SRV');
  // Sort here too: the simulator's answers need not come sorted. Stable, so equal records keep the server's order.
  const records = [...srv.records]
    .filter((r) => r.port !== undefined && r.address !== '' && r.address !== '.')
    .sort((x, y) => (x.priority ?? 0) - (y.priority ?? 0) || (y.weight ?? 0) - (x.weight ?? 0));
  if (records.length === 0) throw noData(name, 'SRV');

  const targets = [...new Set(records.map((r) => r.address.toLowerCase()))];
  const settled = await Promise.allSettled(targets.map((t) => resolveBoth(net, t)));
  const byTarget = new Map<string, { v4: ResolvedAddr[]; v6: ResolvedAddr[]; ttlSec: number }>();
  let negative: unknown;
  for (const [i, r] of settled.entries()) {
    const t = targets[i];
    if (t === undefined) continue;
    if (r.status === 'fulfilled') byTarget.set(t, r.value);
    else if (isNegative(r.reason)) negative ??= r.reason;
    else throw r.reason; // an outage on one target fails the lookup (see file comment)
  }
  if (byTarget.size === 0) throw negative ?? noData(name, 'SRV');

  let ttlSec = srv.ttlSec;
  const groups: ResolvedAddr[][] = [];
  let current: ResolvedAddr[] = [];
  let currentPriority: number | undefined;
  const seen = new Set<string>();
  for (const rec of records) {
    const found = byTarget.get(rec.address.toLowerCase());
    if (!found) continue;
    ttlSec = Math.min(ttlSec, found.ttlSec);
    const priority = rec.priority ?? 0;
    if (priority !== currentPriority && current.length > 0) {
      groups.push(current);
      current = [];
    }
    currentPriority = priority;
    for (const a of [...found.v4, ...found.v6]) {
      const key = `${a.host}|${rec.port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      current.push({ ...a, srvPort: rec.port });
    }
  }
  if (current.length > 0) groups.push(current);
  return { groups, ttlSec };
}

// ── ports and small helpers ──────────────────────────────────────────────────────────────────────────────────────

function requirePorts(app: AppSpec, ports: PortRange | undefined): PortRange {
  if (!ports) throw new Error(`app ${app.id}: origin_dns without SRV has no origin port (validation should refuse it)`);
  return ports;
}

function checkEdgePort(app: AppSpec, edgePort: number): void {
  if (!inRange(app.edgePorts, edgePort)) {
    throw new RangeError(`edge port ${edgePort} is outside app ${app.id}'s range ${app.edgePorts.start}-${app.edgePorts.end}`);
  }
}

/** Addresses as log strings, in answer order: `10.0.0.1`, `[2001:db8::1]`, with `:port` for SRV. */
function describe(groups: readonly (readonly ResolvedAddr[])[]): string[] {
  return groups.flatMap((g) =>
    g.map((a) => {
      const host = a.family === 'IPv6' ? `[${a.host}]` : a.host;
      return a.srvPort === undefined ? a.host : `${host}:${a.srvPort}`;
    }),
  );
}
