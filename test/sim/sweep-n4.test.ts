/**
 * Simulation sweep for CI, n = 4 with f = 1 liar, random crashes, partitions, loss and duplication:
 * seeds 100000 … 100149 (fixed, coverage asserted over them) and a chunk of random seeds
 * (printed; PBFT_SWEEP_RANDOM_SEED=S repeats it). See sweep-harness.ts.
 */
import { describe } from 'vitest';
import { defineSweep } from './sweep-harness.ts';

describe('simulation sweep, 4 replicas, 1 Byzantine', () => {
  defineSweep({
    replicas: 4,
    firstSeed: 100_000,
    seeds: 150,
    chunk: 25,
    randomSeeds: 20,
    coverageMin: {
      viewChange: 0.3,
      twoViewChanges: 0.1,
      stateTransfer: 0.3,
      partition: 0.5,
      crash: 0.6,
      storageFault: 0.15,
    },
  });
});
