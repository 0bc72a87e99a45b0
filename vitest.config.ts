import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

/**
 * Tests whose outcome cannot depend on how busy the machine is: the simulator (virtual time), the
 * pure protocol core, the ledger, the codec and the crypto. They run first, two files at a time.
 * Everything else starts real processes, sockets or timers (replicas, clients, chaos, benchmarks)
 * and runs afterwards one file at a time, so that no simulator competes with a cluster for the
 * two cores a CI machine has.
 */
const DETERMINISTIC = [
  'test/sim/**/*.test.ts',
  'test/unit/protocol/**/*.test.ts',
  'test/unit/ledger/**/*.test.ts',
  'test/unit/codec/**/*.test.ts',
  'test/unit/crypto/**/*.test.ts',
];

export default defineConfig({
  // `import … from 'pbft'` in a test means the sources, as in tsconfig.json (package.json "exports";
  // consumers of the package get the compiled dist/).
  ssr: { resolve: { conditions: ['pbft-source', ...defaultServerConditions] } },
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // This file is loaded by the vitest process itself: replica processes that tests start (and
    // the scripts they run, which start replicas of their own) exit once it is gone, even after a
    // SIGKILL of the run (src/cli/process-groups.ts).
    env: { PBFT_EXIT_WITH_PARENT: String(process.pid) },
    projects: [
      {
        extends: true,
        test: { name: 'deterministic', include: DETERMINISTIC, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: 'processes',
          include: ['test/**/*.test.ts'],
          exclude: DETERMINISTIC,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
