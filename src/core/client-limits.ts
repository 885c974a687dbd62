/**
 * Per-client limits (`edge.limits`, an app's `limits`): how many connections or flows one client may hold open
 * (`per_ip_connections`) and how fast it may open new ones (a token bucket: `per_ip_new_per_second` tokens a second,
 * at most `per_ip_burst` saved up). Pure: the caller passes the time (Clock.now(), ms); no I/O, no timers.
 *
 * A client is its IPv4 address, or its IPv6 address cut to `ipv6_prefix` bits (one /64 is one subscriber, usually).
 * IPv4-mapped IPv6 (`::ffff:a.b.c.d`, a dual-stack socket's view of an IPv4 peer) is the IPv4 address.
 *
 * Memory is bounded in two tiers:
 * - a key with open connections is *busy*: it lives in a plain Map and is never evicted, so its count is always
 *   right (a close always finds the entry it decrements). There are at most as many busy keys as open
 *   connections and flows, which `max_connections`, `udp_max_flows` and the descriptor limit bound already;
 * - a key with nothing open but a bucket still refilling is *idle*: it lives in an LRU of at most
 *   `maxIdleKeys` entries. When the LRU is full, the least recently used idle key is evicted and forgets its bucket:
 *   its next connection finds a full bucket (up to `per_ip_burst` more than the rate allows, once per eviction).
 *   A key with nothing open and a full bucket is not stored at all (it is the same as a key never seen).
 */
import { LRUCache } from 'lru-cache';
import { isV4MappedWords, parseIpWords } from '../model/ip.ts';
import type { ClientLimitSettings } from '../model/types.ts';

export type { ClientLimitSettings };

/** Why a client is refused: too many open connections, or its bucket is empty. */
export type ClientLimitVerdict = 'ok' | 'connections' | 'rate';

interface Entry {
  /** Connections and flows open now (>= 0). */
  open: number;
  /** Tokens in the bucket as of `last` (0..burst; meaningful when the scope has a rate). */
  tokens: number;
  /** Clock.now() of the last refill, ms. */
  last: number;
}

const WORDS = new Uint32Array(4);

/**
 * The key a client is counted under: its IPv4 address (an IPv4-mapped IPv6 address counts as IPv4), or the first
 * `ipv6Prefix` bits of its IPv6 address in hex words (`2001:db8:0:1::/64`-like, but not RFC 5952 text). Anything
 * that is not an address (it cannot be: sockets and the PROXY decoder give addresses) is its own key.
 */
export function clientKey(ip: string, ipv6Prefix: number): string {
  const family = parseIpWords(ip, WORDS);
  if (family === 4) return ip;
  if (family !== 6) return ip;
  if (isV4MappedWords(WORDS)) {
    const v = WORDS[3] ?? 0;
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  let key = '';
  for (let i = 0; i < 4; i++) {
    const bits = Math.min(32, Math.max(0, ipv6Prefix - 32 * i));
    if (bits === 0) break;
    const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    key += `${(((WORDS[i] ?? 0) & mask) >>> 0).toString(16)}:`;
  }
  return `${key}/${ipv6Prefix}`;
}

/** Counts per client key and token buckets, bounded as the module comment says. */
export class ClientLimiter {
  readonly #busy = new Map<string, Entry>();
  /**
   * Made on first use: lru-cache allocates its index arrays for `max` entries up front, which every edge node (and
   * every scenario run) would pay without a single limit configured.
   */
  #idleCache: LRUCache<string, Entry> | undefined = undefined;
  #maxIdle: number;

  /** @param maxIdleKeys idle keys kept at most (>= 1); busy keys are not counted against it. */
  constructor(maxIdleKeys: number) {
    if (!Number.isInteger(maxIdleKeys) || maxIdleKeys < 1) throw new Error(`ClientLimiter: maxIdleKeys must be a positive integer, not ${maxIdleKeys}`);
    this.#maxIdle = maxIdleKeys;
  }

  get #idle(): LRUCache<string, Entry> {
    return (this.#idleCache ??= new LRUCache<string, Entry>({ max: this.#maxIdle }));
  }

  /** Keys with open connections (never evicted) and idle keys (in the LRU). */
  get size(): { readonly busy: number; readonly idle: number } {
    return { busy: this.#busy.size, idle: this.#idleCache?.size ?? 0 };
  }

  get maxIdleKeys(): number {
    return this.#maxIdle;
  }

  /**
   * Changes the idle bound (a reload). Busy keys are untouched; idle keys beyond the new bound are forgotten, least
   * recently used first.
   */
  resize(maxIdleKeys: number): void {
    if (!Number.isInteger(maxIdleKeys) || maxIdleKeys < 1) throw new Error(`ClientLimiter: maxIdleKeys must be a positive integer, not ${maxIdleKeys}`);
    if (maxIdleKeys === this.#maxIdle) return;
    const old = this.#idleCache;
    this.#maxIdle = maxIdleKeys;
    this.#idleCache = undefined;
    if (old === undefined) return;
    const next = this.#idle;
    // Least recently used first, so the most recent survive and keep their order.
    for (const [k, v] of old.rentries() as Generator<[string, Entry]>) next.set(k, v);
  }

  /** Open connections counted under `key` now (0 for an unknown key). */
  openOf(key: string): number {
    return this.#busy.get(key)?.open ?? 0;
  }

  /** Tokens in `key`'s bucket at `now` under `limits` (burst for an unknown key); for tests and debugging. */
  tokensOf(key: string, limits: ClientLimitSettings, now: number): number {
    const e = this.#busy.get(key) ?? this.#idle.peek(key);
    if (e === undefined) return limits.perIpBurst;
    refill(e, limits, now);
    return e.tokens;
  }

  /**
   * Would a new connection of `key` be admitted under `limits` at `now`? Refills the bucket and changes nothing
   * else (a refused connection takes no token). Check every scope first, then `open` each: nothing half-applied.
   */
  check(key: string, limits: ClientLimitSettings, now: number): ClientLimitVerdict {
    const e = this.#busy.get(key) ?? this.#idle.get(key);
    if (e === undefined) return 'ok'; // nothing open, full bucket; every limit is >= 1
    if (limits.perIpConnections !== undefined && e.open >= limits.perIpConnections) return 'connections';
    if (limits.perIpNewPerSecond !== undefined) {
      refill(e, limits, now);
      if (e.tokens < 1) return 'rate';
    }
    return 'ok';
  }

  /** Counts a connection `check` admitted (same key, limits and time): one more open, one token taken. */
  open(key: string, limits: ClientLimitSettings, now: number): void {
    let e = this.#busy.get(key);
    if (e === undefined) {
      e = this.#idle.get(key);
      if (e !== undefined) this.#idle.delete(key);
      else e = { open: 0, tokens: limits.perIpBurst, last: now };
      this.#busy.set(key, e);
    }
    e.open++;
    if (limits.perIpNewPerSecond !== undefined) {
      refill(e, limits, now);
      e.tokens = Math.max(0, e.tokens - 1);
    }
  }

  /**
   * A connection counted under `key` closed. The last one moves the key to the idle LRU while its bucket refills
   * (`limits`: those it was admitted under), or forgets it when the bucket is full or the scope has no rate.
   * @throws Error when `key` has nothing open (a bug: every close follows an open, and busy keys are never evicted)
   */
  close(key: string, limits: ClientLimitSettings, now: number): void {
    const e = this.#busy.get(key);
    if (e === undefined || e.open <= 0) throw new Error(`ClientLimiter: close of ${key} with nothing open`);
    e.open--;
    if (e.open > 0) return;
    this.#busy.delete(key);
    if (limits.perIpNewPerSecond === undefined) return;
    refill(e, limits, now);
    if (e.tokens < limits.perIpBurst) this.#idle.set(key, e);
  }
}

/** Adds the tokens earned since `e.last`, capped at the burst (a lowered burst caps at once). */
function refill(e: Entry, limits: ClientLimitSettings, now: number): void {
  const rate = limits.perIpNewPerSecond;
  const elapsed = now - e.last;
  if (rate !== undefined && elapsed > 0) e.tokens += (elapsed * rate) / 1000;
  if (e.tokens > limits.perIpBurst) e.tokens = limits.perIpBurst;
  if (elapsed > 0) e.last = now;
}

/**
 * What a connection or flow holds in the limiter, to give back at close: the node scope's key and the app
 * scope's (each undefined when that scope has no limits), with the limits it was admitted under.
 */
export interface ClientHold {
  readonly nodeKey: string | undefined;
  readonly nodeLimits: ClientLimitSettings | undefined;
  readonly appKey: string | undefined;
  readonly appLimits: ClientLimitSettings | undefined;
}

/**
 * Admits a new connection or flow of client `ip` under the node's limits and its app's: both must pass (so the
 * tighter binds); the node scope counts the client over all apps, the app scope within `appId`. On `ok` both are
 * counted and the hold comes back (undefined when neither scope has limits: nothing to give back).
 */
export function admitClient(
  limiter: ClientLimiter,
  nodeLimits: ClientLimitSettings | undefined,
  appLimits: ClientLimitSettings | undefined,
  appId: string,
  ip: string,
  now: number,
): { readonly verdict: 'ok'; readonly hold: ClientHold | undefined } | { readonly verdict: 'connections' | 'rate'; readonly hold?: undefined } {
  if (nodeLimits === undefined && appLimits === undefined) return { verdict: 'ok', hold: undefined };
  const nodeKey = nodeLimits === undefined ? undefined : clientKey(ip, nodeLimits.ipv6Prefix);
  const appKey = appLimits === undefined ? undefined : `${appId} ${clientKey(ip, appLimits.ipv6Prefix)}`;
  if (nodeKey !== undefined) {
    const v = limiter.check(nodeKey, nodeLimits!, now);
    if (v !== 'ok') return { verdict: v };
  }
  if (appKey !== undefined) {
    const v = limiter.check(appKey, appLimits!, now);
    if (v !== 'ok') return { verdict: v };
  }
  if (nodeKey !== undefined) limiter.open(nodeKey, nodeLimits!, now);
  if (appKey !== undefined) limiter.open(appKey, appLimits!, now);
  return { verdict: 'ok', hold: { nodeKey, nodeLimits, appKey, appLimits } };
}

/** Gives back what `admitClient` counted. */
export function releaseClient(limiter: ClientLimiter, hold: ClientHold, now: number): void {
  if (hold.nodeKey !== undefined) limiter.close(hold.nodeKey, hold.nodeLimits!, now);
  if (hold.appKey !== undefined) limiter.close(hold.appKey, hold.appLimits!, now);
}

/** Which connection cap a new connection meets: the node's `max_connections`, its app's, or none. */
export type CapVerdict = 'ok' | 'node_cap' | 'app_cap';

/** `nodeOpen`/`appOpen`: connections already counted (this one excluded); a cap of undefined is no cap. */
export function capVerdict(nodeOpen: number, nodeMax: number | undefined, appOpen: number, appMax: number | undefined): CapVerdict {
  if (nodeMax !== undefined && nodeOpen >= nodeMax) return 'node_cap';
  if (appMax !== undefined && appOpen >= appMax) return 'app_cap';
  return 'ok';
}
