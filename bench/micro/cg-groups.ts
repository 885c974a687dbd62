/**
 * Instructions per unit (connection, datagram, handshake) by group, from the pairs of cachegrind files that
 * `tcp-instructions.ts --keep DIR` (and the other instruction benches) leave: the file of the shorter run and of the
 * longer one, and how many more units the longer one served. With a second pair (a before and an after), also the
 * functions whose count moved most.
 *
 *   node --import tsx bench/micro/cg-groups.ts SHORT LONG COUNT [SHORT2 LONG2]
 *
 * Groups: V8's optimising compilers, garbage collection, JSON, JIT-compiled JavaScript (no symbol), builtins, Node's
 * C++ and libuv, libc, and the rest of V8. The compiler and GC groups move between runs of one build (where that work
 * lands depends on timing); the others agree between runs, so a before/after reads them.
 */
import { readFileSync } from 'node:fs';

type Counts = Map<string, number>;

/** Instructions per function (`fn @file`) of one cachegrind output file. */
function parse(file: string): Counts {
  const m: Counts = new Map();
  let fn = '';
  let fl = '';
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('fl=')) fl = line.slice(3);
    else if (line.startsWith('fn=')) fn = line.slice(3);
    else if (/^\d/.test(line)) {
      const k = `${fn} @${fl.split('/').pop()}`;
      m.set(k, (m.get(k) ?? 0) + Number(line.split(' ')[1]));
    }
  }
  return m;
}

export function groupOf(fn: string): string {
  if (/Scaveng|heap::|Heap::|BodyDescriptor|Pretenur|Evacuat|MarkCompact|Sweeper|NewSpace|MemoryChunk|ShouldBePromoted|SizeFromMap|Marking|GetHeaderSize/.test(fn)) return 'gc';
  if (/Json/.test(fn)) return 'json';
  if (/compiler::|maglev|Maglev|Turbofan|turboshaft|Zone/.test(fn)) return 'compiler';
  if (fn.startsWith('??? ')) return 'jit';
  if (fn.startsWith('Builtins_')) return 'builtins';
  if (/node::|uv_|uv__/.test(fn)) return 'node+uv';
  if (/libc|malloc|@.*\.S$|@.*\.c$/.test(fn)) return 'libc';
  return 'v8 other';
}

/** Per-unit instructions of each function: (long − short) ÷ count. */
function perUnit(short: string, long: string, count: number): Counts {
  const a = parse(short);
  const d: Counts = new Map();
  for (const [k, v] of parse(long)) d.set(k, (v - (a.get(k) ?? 0)) / count);
  return d;
}

function summary(name: string, d: Counts): void {
  const g = new Map<string, number>();
  let total = 0;
  for (const [k, v] of d) {
    g.set(groupOf(k), (g.get(groupOf(k)) ?? 0) + v);
    total += v;
  }
  const rows = [...g].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${Math.round(v).toLocaleString('en-US')}`);
  process.stdout.write(`${name}: ${Math.round(total).toLocaleString('en-US')} per unit (${rows.join(', ')})\n`);
}

const [short, long, countArg, short2, long2] = process.argv.slice(2);
const count = Number(countArg);
if (short === undefined || long === undefined || !(count > 0)) {
  process.stderr.write('usage: cg-groups.ts SHORT LONG COUNT [SHORT2 LONG2]\n');
  process.exit(2);
}
const a = perUnit(short, long, count);
summary('first', a);
if (short2 !== undefined && long2 !== undefined) {
  const b = perUnit(short2, long2, count);
  summary('second', b);
  const moved = [...new Set([...a.keys(), ...b.keys()])].map((k) => [k, (b.get(k) ?? 0) - (a.get(k) ?? 0)] as const).sort((x, y) => x[1] - y[1]);
  process.stdout.write('most reduced (second − first, per unit):\n');
  for (const [k, v] of moved.slice(0, 20)) process.stdout.write(`${String(Math.round(v)).padStart(8)}  ${groupOf(k).padEnd(9)} ${k.slice(0, 120)}\n`);
  process.stdout.write('most increased:\n');
  for (const [k, v] of moved.slice(-10).reverse()) process.stdout.write(`${String(Math.round(v)).padStart(8)}  ${groupOf(k).padEnd(9)} ${k.slice(0, 120)}\n`);
}
