/**
 * Links: the one-way path from one simulated host to another, and the faults on it. A `Link` is clock-free (the
 * caller passes the departure time) and decides, per packet, when it arrives or that it is lost; the TCP and UDP
 * layers turn that into scheduled arrivals or retransmissions.
 *
 * Every random draw comes from the link's own stream (`seed/link:A->B`), so configuring one link never changes
 * what happens on another.
 */
import { type Prng } from './prng.ts';

export type JitterDistribution = 'uniform' | 'normal' | 'exponential';

/** Splits TCP writes into small random pieces so that reads arrive in odd chunks (Toxiproxy's `slicer`). */
export interface SlicerParams {
  /** Smallest piece, bytes (≥ 1). */
  readonly minBytes: number;
  /** Largest piece, bytes (≥ minBytes). */
  readonly maxBytes: number;
  /** Gap between consecutive pieces leaving the sender, ms (default 0). */
  readonly delayMs?: number;
}

/**
 * A middlebox cutting each TCP connection after its first `bytes` payload bytes in this direction (Toxiproxy's
 * `limit_data` with `fin`, `reset_peer` after N bytes with `rst`): the receiver gets those bytes, then a FIN or an RST
 * from the middlebox; the sender is reset (the middlebox dropped its side with data unread).
 */
export interface CutParams {
  readonly bytes: number;
  readonly with: 'fin' | 'rst';
}

/** The behaviour of one direction of a link. All times in milliseconds, sizes in bytes. */
export interface LinkParams {
  /** One-way propagation delay. */
  readonly latencyMs: number;
  /** Spread of the delay: uniform ±jitter, normal with σ = jitter, or exponential with mean = jitter (added). */
  readonly jitterMs: number;
  readonly jitterDistribution: JitterDistribution;
  /** Probability that a packet is lost. TCP turns a loss into a retransmission after an RTO; UDP loses the datagram. */
  readonly loss: number;
  /** UDP only: probability that a datagram is delivered twice (TCP discards duplicates). */
  readonly duplicate: number;
  /** UDP only: probability that a datagram is held back by `reorderDelayMs` (TCP reassembles in order anyway). */
  readonly reorder: number;
  readonly reorderDelayMs: number;
  /** Serialisation rate in bytes per ms (1 byte/ms = 1 kB/s = 8 kbit/s); Infinity = no limit. */
  readonly bandwidthBytesPerMs: number;
  /** Bytes that may wait for serialisation; a UDP datagram that does not fit is dropped (TCP is window-limited). */
  readonly queueBytes: number;
  /** TCP only: split each segment into small pieces; null = off. */
  readonly slicer: SlicerParams | null;
  /**
   * TCP middlebox faults (the fault injector's vocabulary, test/helpers/faults.ts), per connection, in this direction:
   * - `finDelayMs`: a FIN leaves this much later than it would (Toxiproxy's `slow_close`);
   * - `swallow`: `fin` = the middlebox acknowledges the FIN and never delivers it (the connection stays half-open);
   *   `all` = it acknowledges every byte and the FIN and delivers nothing (Toxiproxy's `timeout` with 0: the
   *   handshake completes, then a black hole);
   * - `cutAfterBytes`: see `CutParams` (null = off);
   * - `resetAfterMs`: the middlebox resets both ends this long after the handshake (Toxiproxy's `reset_peer` with a
   *   timeout; Infinity = off). A connection takes the smaller of its two directions' values.
   */
  readonly finDelayMs: number;
  readonly swallow: 'none' | 'fin' | 'all';
  readonly cutAfterBytes: CutParams | null;
  readonly resetAfterMs: number;
}

/** The default link: 0.1 ms one way, no jitter, no loss, unlimited bandwidth. */
export const DEFAULT_LINK: LinkParams = Object.freeze({
  latencyMs: 0.1,
  jitterMs: 0,
  jitterDistribution: 'uniform',
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderDelayMs: 1,
  bandwidthBytesPerMs: Infinity,
  queueBytes: Infinity,
  slicer: null,
  finDelayMs: 0,
  swallow: 'none',
  cutAfterBytes: null,
  resetAfterMs: Infinity,
});

/** Per-link counters (packets include TCP segments, ACKs, SYNs, RSTs and UDP datagrams). */
export interface LinkStats {
  packets: number;
  bytes: number;
  /** Lost to random loss. */
  lost: number;
  /** Dropped because the queue was full (UDP). */
  queueDrops: number;
  /** Dropped on arrival because of a partition or a host that was down. */
  blockedDrops: number;
  duplicated: number;
  reordered: number;
}

/** Returned by `Link.send` when the packet will not arrive. */
export const LOST = -1;

/** Validates and completes link parameters; throws RangeError naming the bad field. */
export function resolveLinkParams(base: LinkParams, patch: Partial<LinkParams>): LinkParams {
  const p: LinkParams = { ...base, ...patch };
  const nonNeg = (name: keyof LinkParams, v: number): void => {
    if (!(v >= 0)) throw new RangeError(`link ${name} must be a number >= 0, got ${v}`);
  };
  const prob = (name: keyof LinkParams, v: number): void => {
    if (!(v >= 0 && v <= 1)) throw new RangeError(`link ${name} must be a probability in [0, 1], got ${v}`);
  };
  nonNeg('latencyMs', p.latencyMs);
  nonNeg('jitterMs', p.jitterMs);
  nonNeg('reorderDelayMs', p.reorderDelayMs);
  prob('loss', p.loss);
  prob('duplicate', p.duplicate);
  prob('reorder', p.reorder);
  if (!(p.bandwidthBytesPerMs > 0)) throw new RangeError(`link bandwidthBytesPerMs must be > 0 (Infinity = unlimited), got ${p.bandwidthBytesPerMs}`);
  nonNeg('queueBytes', p.queueBytes);
  if (p.loss === 1) throw new RangeError('link loss must be < 1 (use sim.partition for a link that drops everything)');
  if (p.slicer !== null) {
    const s = p.slicer;
    if (!(Number.isInteger(s.minBytes) && s.minBytes >= 1 && Number.isInteger(s.maxBytes) && s.maxBytes >= s.minBytes)) {
      throw new RangeError(`link slicer needs integers 1 <= minBytes <= maxBytes, got ${s.minBytes}..${s.maxBytes}`);
    }
    nonNeg('slicer', s.delayMs ?? 0);
  }
  if (!(p.finDelayMs >= 0 && Number.isFinite(p.finDelayMs))) throw new RangeError(`link finDelayMs must be a finite number >= 0, got ${p.finDelayMs}`);
  if (p.swallow !== 'none' && p.swallow !== 'fin' && p.swallow !== 'all') throw new RangeError(`link swallow must be 'none', 'fin' or 'all', got ${String(p.swallow)}`);
  if (p.cutAfterBytes !== null) {
    const c = p.cutAfterBytes;
    if (!(Number.isInteger(c.bytes) && c.bytes >= 0) || (c.with !== 'fin' && c.with !== 'rst')) {
      throw new RangeError(`link cutAfterBytes needs an integer bytes >= 0 and with 'fin' or 'rst', got ${JSON.stringify(c)}`);
    }
  }
  if (!(p.resetAfterMs >= 0)) throw new RangeError(`link resetAfterMs must be a number >= 0 (Infinity = off), got ${p.resetAfterMs}`);
  return Object.freeze(p);
}

/** One direction between two hosts (a host's path to itself is a link too). */
export class Link {
  readonly from: string;
  readonly to: string;
  params: LinkParams;
  /** Partitioned: every packet arriving over this link is dropped. */
  blocked = false;
  readonly stats: LinkStats = { packets: 0, bytes: 0, lost: 0, queueDrops: 0, blockedDrops: 0, duplicated: 0, reordered: 0 };
  readonly #rng: Prng;
  /** When the serialiser is free again (bandwidth model). */
  #busyUntil = 0;

  constructor(from: string, to: string, params: LinkParams, rng: Prng) {
    this.from = from;
    this.to = to;
    this.params = params;
    this.#rng = rng;
  }

  /**
   * A packet of `bytes` payload leaves at `departAt`. Returns its arrival time, or `LOST`. `dropWhenFull` applies
   * the queue limit (UDP); TCP traffic is never tail-dropped because its window bounds what it puts in flight.
   */
  send(departAt: number, bytes: number, dropWhenFull: boolean): number {
    const p = this.params;
    const st = this.stats;
    st.packets++;
    st.bytes += bytes;
    let leaves = departAt;
    if (p.bandwidthBytesPerMs !== Infinity) {
      const start = this.#busyUntil > departAt ? this.#busyUntil : departAt;
      if (dropWhenFull && (start - departAt) * p.bandwidthBytesPerMs + bytes > p.queueBytes) {
        st.queueDrops++;
        return LOST;
      }
      leaves = start + bytes / p.bandwidthBytesPerMs;
      this.#busyUntil = leaves;
    }
    if (p.loss > 0 && this.#rng.next() < p.loss) {
      st.lost++;
      return LOST;
    }
    return leaves + this.delay();
  }

  /** A fresh propagation delay: latency plus jitter, never negative. */
  delay(): number {
    const p = this.params;
    if (p.jitterMs === 0) return p.latencyMs;
    let d: number;
    switch (p.jitterDistribution) {
      case 'uniform':
        d = p.latencyMs + (this.#rng.next() * 2 - 1) * p.jitterMs;
        break;
      case 'normal':
        d = p.latencyMs + this.#rng.normal() * p.jitterMs;
        break;
      case 'exponential':
        d = p.latencyMs + this.#rng.exponential(p.jitterMs);
        break;
    }
    return d > 0 ? d : 0;
  }

  /** UDP: the extra copy's arrival time if this datagram is duplicated, else LOST. Call after a successful `send`. */
  duplicateArrival(departAt: number): number {
    if (!this.#rng.chance(this.params.duplicate)) return LOST;
    this.stats.duplicated++;
    return departAt + this.delay();
  }

  /** UDP: extra hold-back for this datagram (0 when not reordered). */
  reorderDelay(): number {
    if (!this.#rng.chance(this.params.reorder)) return 0;
    this.stats.reordered++;
    return this.params.reorderDelayMs;
  }

  /** TCP slicer: the size of the next piece, at most `available`. */
  sliceSize(available: number): number {
    const s = this.params.slicer;
    if (s === null) return available;
    const n = this.#rng.int(s.minBytes, s.maxBytes);
    return n < available ? n : available;
  }
}
