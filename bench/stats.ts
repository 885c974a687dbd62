/**
 * Aggregation and the one results table. A figure is the median over rounds; a ratio is the median over rounds
 * of (this proxy ÷ the reference proxy) *in the same round*, so slow drift of the machine between rounds cancels.
 */

/** Median of the finite values; NaN when there are none. */
export function median(values: readonly number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] ?? Number.NaN) : ((v[mid - 1] ?? 0) + (v[mid] ?? 0)) / 2;
}

/** Median over rounds of a[r] / b[r], using only rounds where both are finite and b is non-zero. */
export function medianRatio(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): number {
  const ratios: number[] = [];
  for (const [round, x] of a) {
    const y = b.get(round);
    if (y !== undefined && Number.isFinite(x) && Number.isFinite(y) && y !== 0) ratios.push(x / y);
  }
  return median(ratios);
}

/** Formats with `digits` decimals and thin grouping of thousands; '–' for NaN. */
export function fmt(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A ratio as `×1.23`; '–' for NaN. */
export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `×${x.toFixed(2)}` : '–';
}

/** Renders a Markdown table with columns padded for reading in a terminal. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const clean = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ⏎ ');
  const all = [header, ...rows].map((r) => r.map(clean));
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: readonly string[]): string =>
    `| ${widths.map((w, i) => (r[i] ?? '') + ' '.repeat(w - [...(r[i] ?? '')].length)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(all[0] ?? []), rule, ...all.slice(1).map(line)].join('\n');
}

/**
 * The most telling line of a crashed process's output, for the table: the last plain-text line naming an error
 * (Node's `SyntaxError: …` sits below a file:line and above the stack; nginx says `[emerg]`, HAProxy `[ALERT]`),
 * else the last plain-text line. JSON log lines are the fallback only: they are long and the CLI restates them.
 */
export function headline(output: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^Node\.js v\d/.test(l) && !/^at /.test(l));
  const plain = lines.filter((l) => !l.startsWith('{'));
  const names = (l: string): boolean => /\b(\w*Error|ERR_\w+|E_[A-Z_]+|ALERT|emerg|crit)\b/.test(l);
  const last = (xs: readonly string[], ok: (l: string) => boolean): string | undefined => [...xs].reverse().find(ok);
  const pick = last(plain, names) ?? plain.at(-1) ?? last(lines, names) ?? lines.at(-1) ?? '';
  return pick.length > 300 ? `${pick.slice(0, 300)}…` : pick;
}
