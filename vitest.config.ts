import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // `import … from 'pbft'` in a test means the sources, as in tsconfig.json (package.json "exports";
  // consumers of the package get the compiled dist/).
  ssr: { resolve: { conditions: ['pbft-source', ...defaultServerConditions] } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // This file is loaded by the vitest process itself: replica processes that tests start (and
    // the scripts they run, which start replicas of their own) exit once it is gone, even after a
    // SIGKILL of the run (src/cli/process-groups.ts).
    env: { PBFT_EXIT_WITH_PARENT: String(process.pid) },
  },
});
