/**
 * Simulation sweep for CI, n = 7 with f = 2 liars, random crashes, partitions, loss and
 * duplication: seeds 200000 … 200059 (fixed, coverage asserted over them) and a chunk of random
 * seeds (printed; PBFT_SWEEP_RANDOM_SEED=S repeats it). See sweep-harness.ts.
 */
import { describe } from 'vitest';
import { defineSweep } from './sweep-harness.ts';

describe('simulation sweep, 7 replicas, 2 Byzantine', () => {
  defineSweep({
    replicas: 7,
    firstSeed: 200_000,
    seeds: 60,
    chunk: 10,
    randomSeeds: 6,
    coverageMin: {
      viewChange: 0.25,
      twoViewChanges: 0.05,
      stateTransfer: 0.3,
      partition: 0.5,
      crash: 0.6,
      storageFault: 0.15,
    },
  });
});
