/**
 * The small slice of `npm run fuzz` that `npm test` runs: every target of test/fuzz/targets.ts, 2,000 inputs each
 * on a fixed seed. REFRACT_FC_RUNS scales the count (as in test/prop), REFRACT_FC_SEED changes the seed; a failure
 * prints fast-check's seed and path, which `npm run fuzz -- --only NAME --seed S --path P` replays.
 */
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TARGETS } from './targets.ts';

const SEED = process.env.REFRACT_FC_SEED !== undefined ? Number(process.env.REFRACT_FC_SEED) : 20_261_216;
const SCALE = process.env.REFRACT_FC_RUNS !== undefined ? Number(process.env.REFRACT_FC_RUNS) : 1;
const RUNS = Math.max(1, Math.round(2_000 * SCALE));

describe('fuzz slice: every parser returns its documented result, whatever the input', () => {
  for (const [i, t] of TARGETS.entries()) {
    it(`${t.name}: ${t.parser} (${RUNS} inputs)`, () => {
      fc.assert(
        fc.property(t.input, (input) => t.run(input)),
        { seed: SEED + i, numRuns: RUNS },
      );
    });
  }
});
