/**
 * npm run sim -- --seeds N [--first-seed S] [--replicas 4|7|10] [--byzantine K] … [--json]
 * (every flag: SIM_USAGE in scripts/lib/sim-runs.ts, and the README's simulator section)
 *
 * Runs seeds S … S+N-1 through the deterministic simulator. S is random (and printed) when omitted;
 * `--seeds 1 --first-seed S` with the same flags replays one seed exactly. The flags that shape a run
 * (--liars, --no-faults, --crash, --clients, --requests, --crypto, …) are the ones the tests' failure
 * hints print, so a hint copied from a failed test replays that run.
 *
 * --shipped-defaults runs the protocol settings a real cluster ships with (K = 64, L = 256, batches of
 * 256 requests or 256 KiB) under 300 clients, half of whose operations are 1 KiB (the largest), and
 * kills view 0's primary after 0.4 s: messages reach the sizes where the real transport drops frames.
 *
 * Any violation prints its seed and the command that replays it; the exit code is non-zero: 1 for a
 * safety violation, 2 for liveness only, 64 for bad arguments.
 */
import { randomInt } from 'node:crypto';
import { BYZANTINE_BEHAVIOURS } from '../src/byzantine/strategies.ts';
import { runSimulation, type SimulationResult } from '../src/sim/simulation.ts';
import {
  parseSimArgs,
  replayCommand,
  runOptions,
  SIM_USAGE,
  type SimCommand,
  SimUsageError,
} from './lib/sim-runs.ts';

const EXIT_SAFETY = 1;
const EXIT_LIVENESS = 2;
const EXIT_USAGE = 64;
const FIRST_SEED_RANDOM_MAX = 2 ** 40;

let command: SimCommand;
try {
  command = parseSimArgs(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof SimUsageError)) throw error;
  console.error(`pbft sim: ${error.message}`);
  console.error(SIM_USAGE);
  process.exit(EXIT_USAGE);
}
if (command.help) {
  console.log(SIM_USAGE);
  console.log(`behaviours: ${BYZANTINE_BEHAVIOURS.join(', ')}`);
  process.exit(0);
}
const { seeds, json } = command;
const { replicas, byzantine } = command.base;
const firstSeed = command.firstSeed ?? randomInt(0, FIRST_SEED_RANDOM_MAX);

if (!json) {
  console.log(
    `simulating seeds ${firstSeed} … ${firstSeed + seeds - 1}: ${replicas} replicas, ${byzantine} Byzantine`,
  );
}
const started = performance.now();
const failures: SimulationResult[] = [];
let committed = 0;
let viewChanges = 0;
let crashes = 0;
let partitions = 0;
let stateTransfers = 0;
let storageFaults = 0;
let recoveries = 0;
const recoveryNudgedSeeds: number[] = [];
const lagging: number[] = [];
let safetyFailure = false;
for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
  const options = runOptions(command, seed);
  const result = runSimulation(options);
  committed += result.committed;
  viewChanges += result.viewChanges;
  crashes += result.crashes;
  partitions += result.partitions;
  stateTransfers += result.stateTransfers;
  storageFaults += result.storageFaults;
  recoveries += result.recoveries;
  if (result.recoveryNudges > 0) recoveryNudgedSeeds.push(seed);
  if (result.laggards !== null) {
    lagging.push(seed);
    if (!json) console.log(`seed ${seed}: correct replicas did not converge: ${result.laggards}`);
  }
  if (result.violations.length > 0) {
    failures.push(result);
    if (result.violations.some((violation) => violation.kind !== 'liveness')) safetyFailure = true;
    const liars = result.byzantine.map((b) => `${b.replica}:${b.behaviour}`).join(',') || 'none';
    console.error(`seed ${seed} FAILED (byzantine ${liars}); replay: ${replayCommand(options)}`);
    for (const violation of result.violations) console.error(`  ${violation.kind}: ${violation.message}`);
  }
}
const elapsedMs = Math.round(performance.now() - started);
const summary = {
  seeds,
  firstSeed,
  replicas,
  byzantine,
  violations: failures.reduce((sum, result) => sum + result.violations.length, 0),
  failedSeeds: failures.map((result) => result.seed),
  committed,
  viewChanges,
  crashes,
  partitions,
  stateTransfers,
  /** Storage faults injected (--storage-faults, --sweep, --crash …:KIND), and recoveries completed. */
  storageFaults,
  recoveries,
  /**
   * Seeds whose clients were done while a recovery stalled in the idle cluster: the simulator resumed
   * the load until it recovered (a known limit; see nudgeStalledRecovery).
   */
  recoveryNudgedSeeds,
  /** Seeds that ended with every client done but correct replicas at different points (liveness failures). */
  laggingSeeds: lagging,
  elapsedMs,
};
if (json) {
  console.log(JSON.stringify(summary));
} else {
  console.log(
    `${seeds} seeds, ${summary.violations} violations, ${committed} requests committed, ${viewChanges} view changes, ` +
      `${crashes} crashes, ${partitions} partitions, ${stateTransfers} state transfers, ` +
      `${storageFaults} storage faults, ${recoveries} recoveries completed` +
      (recoveryNudgedSeeds.length > 0
        ? ` (the load resumed for a recovery stalled in an idle cluster on seeds ${recoveryNudgedSeeds.join(', ')})`
        : '') +
      ', ' +
      `${lagging.length} seeds with a correct replica left behind, ${(elapsedMs / 1000).toFixed(1)} s`,
  );
}
process.exit(failures.length === 0 ? 0 : safetyFailure ? EXIT_SAFETY : EXIT_LIVENESS);
