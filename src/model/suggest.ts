/**
 * "Did you mean …?" for people's typos: config keys (validation warnings), commands and flags (the CLI). Pure.
 */

/** Optimal string alignment distance: Levenshtein plus the swap of two adjacent characters (`tsl` → `tls`). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, ((d[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = v;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

const squash = (k: string): string => k.toLowerCase().replace(/[-_\s]/g, '');

/**
 * The known key an unknown `key` probably meant: the same but for case, `-`, `_` or spaces (`proxyProtocol`,
 * `IP_Firewall`), else the nearest within 2 edits (1 for keys of up to 3 characters, so `ttl` is not taken for
 * `tls`). Ties go to the first in `known`. Undefined when nothing is that close.
 */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const exact = known.find((k) => squash(k) === squash(key));
  if (exact !== undefined) return exact;
  const limit = key.length <= 3 ? 1 : 2;
  let best: string | undefined;
  let bestD = limit + 1;
  for (const k of known) {
    // The distance is at least the difference in length: skipping costs nothing, and keeps a 1 MB key cheap.
    if (Math.abs(key.length - k.length) > limit) continue;
    const dist = editDistance(key.toLowerCase(), k.toLowerCase());
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best;
}

/**
 * The candidate closest to `word` by edit distance, if it is close enough to be a plausible typo (at most 2 edits,
 * and fewer than half the word's length), or one that starts with `word` (`refract val` → `validate`).
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    if (Math.abs(word.length - c.length) > 2) continue; // farther than any suggestion below
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  if (best !== undefined && bestD <= Math.min(2, Math.ceil(word.length / 2))) return best;
  if (word.length >= 2) return candidates.find((c) => c.startsWith(word.toLowerCase()));
  return undefined;
}

