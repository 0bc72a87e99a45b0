/**
 * Simulation sweep for CI, n = 7 with f = 2 liars (behaviour drawn from the catalogue), random
 * crashes, partitions, loss and duplication. Fixed seeds so CI is reproducible; `npm run sim`
 * explores new ones. Any failure names the command that replays it.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/sim/simulation.ts';

const FIRST_SEED = 200_000;
const SEEDS = 100;
const CHUNK = 10;

describe('simulation sweep, 7 replicas, 2 Byzantine', () => {
  for (let chunkStart = FIRST_SEED; chunkStart < FIRST_SEED + SEEDS; chunkStart += CHUNK) {
    it(`seeds ${chunkStart} … ${chunkStart + CHUNK - 1} keep every invariant`, () => {
      for (let seed = chunkStart; seed < chunkStart + CHUNK; seed++) {
        const result = runSimulation({ seed, replicas: 7, byzantine: 2 });
        expect(
          result.violations,
          `replay: npm run sim -- --seeds 1 --first-seed ${seed} --replicas 7 --byzantine 2`,
        ).toEqual([]);
        expect(result.committed).toBe(result.requested);
      }
    });
  }
});
