/**
 * Simulation sweep for CI, n = 4 with f = 1 liar (behaviour drawn from the catalogue), random
 * crashes, partitions, loss and duplication. Fixed seeds so CI is reproducible; `npm run sim`
 * explores new ones. Any failure names the command that replays it.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/sim/simulation.ts';

const FIRST_SEED = 100_000;
const SEEDS = 200;
const CHUNK = 25;

describe('simulation sweep, 4 replicas, 1 Byzantine', () => {
  for (let chunkStart = FIRST_SEED; chunkStart < FIRST_SEED + SEEDS; chunkStart += CHUNK) {
    it(`seeds ${chunkStart} … ${chunkStart + CHUNK - 1} keep every invariant`, () => {
      for (let seed = chunkStart; seed < chunkStart + CHUNK; seed++) {
        const result = runSimulation({ seed, replicas: 4, byzantine: 1 });
        expect(
          result.violations,
          `replay: npm run sim -- --seeds 1 --first-seed ${seed} --replicas 4 --byzantine 1`,
        ).toEqual([]);
        expect(result.committed).toBe(result.requested);
      }
    });
  }
});
