import test from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../../src/net/sim/index.ts';

const draws = (r: Prng, n: number): number[] => Array.from({ length: n }, () => r.nextU32());

test('the same seed gives the same stream, and a numeric seed equals its decimal string', () => {
  assert.deepEqual(draws(new Prng(42), 100), draws(new Prng(42), 100));
  assert.deepEqual(draws(new Prng(42), 10), draws(new Prng('42'), 10));
});

test('different seeds give different streams', () => {
  assert.notDeepEqual(draws(new Prng(1), 8), draws(new Prng(2), 8));
  assert.notDeepEqual(draws(new Prng('a'), 8), draws(new Prng('b'), 8));
});

test('split streams depend on seed and label only, not on draws made elsewhere', () => {
  const fresh = new Prng(7).split('link:a->b');
  const root = new Prng(7);
  draws(root, 1_000);
  draws(root.split('host:x'), 1_000);
  const late = root.split('link:a->b');
  assert.deepEqual(draws(late, 50), draws(fresh, 50));
  assert.equal(late.key, '7/link:a->b');
});

test('split streams with different labels or seeds are independent of each other', () => {
  const root = new Prng(7);
  assert.notDeepEqual(draws(root.split('a'), 8), draws(root.split('b'), 8));
  assert.notDeepEqual(draws(root.split('a'), 8), draws(new Prng(8).split('a'), 8));
  // Paired draws of two sibling streams are uncorrelated.
  const x = root.split('x');
  const y = root.split('y');
  const n = 20_000;
  let sxy = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const a = x.next();
    const b = y.next();
    sx += a;
    sy += b;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  const corr = (n * sxy - sx * sy) / Math.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy));
  assert.ok(Math.abs(corr) < 0.03, `correlation ${corr}`);
});

test('next() is uniform on [0, 1)', () => {
  const r = new Prng('uniform');
  const buckets = new Array<number>(20).fill(0);
  const n = 100_000;
  let min = 1;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const v = r.next();
    min = Math.min(min, v);
    max = Math.max(max, v);
    buckets[Math.floor(v * 20)]!++;
  }
  assert.ok(min >= 0 && max < 1);
  const expected = n / 20;
  const chi2 = buckets.reduce((s, o) => s + (o - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 43.8, `chi-square ${chi2} over 19 degrees of freedom (p = 0.001 bound 43.8)`);
});

test('int is inclusive at both ends and chance(0)/chance(1) consume no draws', () => {
  const r = new Prng(3);
  const seen = new Set<number>();
  for (let i = 0; i < 1_000; i++) seen.add(r.int(2, 5));
  assert.deepEqual([...seen].sort(), [2, 3, 4, 5]);
  const a = new Prng(9);
  const b = new Prng(9);
  assert.equal(a.chance(0), false);
  assert.equal(a.chance(1), true);
  assert.equal(a.nextU32(), b.nextU32());
});

test('normal deviates have mean 0 and standard deviation 1; exponential ones the given mean', () => {
  const r = new Prng('gauss');
  const n = 50_000;
  let s = 0;
  let ss = 0;
  let e = 0;
  for (let i = 0; i < n; i++) {
    const v = r.normal();
    s += v;
    ss += v * v;
    e += r.exponential(3);
  }
  const mean = s / n;
  const sd = Math.sqrt(ss / n - mean * mean);
  assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
  assert.ok(Math.abs(sd - 1) < 0.03, `sd ${sd}`);
  assert.ok(Math.abs(e / n - 3) < 0.1, `exponential mean ${e / n}`);
});
