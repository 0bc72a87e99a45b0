/** Simulation runs shared by `npm run sim` and the sweeps in test/sim, so a failure's replay command runs the same thing. */
import { DEFAULT_CLUSTER_PROTOCOL } from '../../src/node/cluster-config.ts';
import type { SimulationOptions } from '../../src/sim/simulation.ts';

/** What --shipped-defaults changes: the settings, load and fault that make messages largest. */
export const SHIPPED_DEFAULTS_RUN = {
  protocol: DEFAULT_CLUSTER_PROTOCOL,
  clients: 300,
  requestsPerClient: 3,
  largeOperationShare: 0.5,
  crashes: [{ replica: 0, atMs: 400, downMs: 4_000 }],
} as const satisfies Partial<SimulationOptions>;
