/**
 * Seeded pseudo-random numbers for the simulator: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator,
 * 128-bit state, passes PractRand to many TB; the counter word rules out short cycles), keyed by a string.
 *
 * `split(label)` derives a sub-stream from the *key* (seed + label path), never from the parent's current state, so
 * a stream's draws depend only on its own key: adding a host, a link or a draw elsewhere does not shift them
 * (TigerBeetle/turmoil practice of one seed split into per-component streams).
 */
import { type Random } from '../ports.ts';

/** Draws discarded after seeding so that similar keys diverge before the first visible draw. */
const WARMUP_DRAWS = 15;
const TWO_POW_32 = 4_294_967_296;

export class Prng implements Random {
  /** The derivation path: `String(seed)` then `/label` per split. Equal keys give equal streams. */
  readonly key: string;
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spareNormal: number | undefined;

  /** A stream for `seed` (a number is keyed by its decimal form, so `7` and `'7'` are the same stream). */
  constructor(seed: number | string) {
    this.key = String(seed);
    const h1 = hash32(this.key, 0x9e3779b9);
    const h2 = hash32(this.key, 0x85ebca6b);
    const h3 = hash32(this.key, 0xc2b2ae35);
    this.#a = h1;
    this.#b = h2;
    this.#c = h3;
    this.#d = 1;
    for (let i = 0; i < WARMUP_DRAWS; i++) this.nextU32();
  }

  /** An independent stream derived from this stream's key and `label`; does not consume draws from this one. */
  split(label: string): Prng {
    return new Prng(`${this.key}/${label}`);
  }

  /** Uniform integer in [0, 2^32). */
  nextU32(): number {
    const a = this.#a;
    const b = this.#b;
    const c = this.#c;
    const d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = (((c << 21) | (c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** Uniform integer in [lo, hi] (inclusive); `hi >= lo`. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability `p`. Draws nothing when p <= 0 or p >= 1. */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  /** Standard normal deviate (Box–Muller; the second deviate of each pair is kept for the next call). */
  normal(): number {
    const spare = this.#spareNormal;
    if (spare !== undefined) {
      this.#spareNormal = undefined;
      return spare;
    }
    const u1 = 1 - this.next(); // (0, 1]: log(0) would be -Infinity
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.#spareNormal = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Exponential deviate with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }
}

/** A 32-bit string hash (multiply-xorshift per UTF-16 unit, murmur3's finaliser at the end), salted by `seed`. */
function hash32(s: string, seed: number): number {
  let h = (seed ^ s.length) | 0;
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x5bd1e995);
    h ^= h >>> 15;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
