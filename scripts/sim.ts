/**
 * npm run sim -- --seeds N [--first-seed S] [--replicas 4|7|10] [--byzantine K] [--shipped-defaults] [--json]
 *
 * --shipped-defaults runs the protocol settings a real cluster ships with (K = 64, L = 256, batches of
 * 256 requests or 256 KiB) under 300 clients, half of whose operations are 1 KiB (the largest), and
 * kills view 0's primary after 0.4 s: messages reach the sizes where the real transport drops frames.
 *
 * Runs seeds S … S+N-1 through the deterministic simulator. S is random (and printed) when omitted;
 * `--seeds 1 --first-seed S` replays one seed exactly. Any violation prints its seed and the exit
 * code is non-zero: 1 for a safety violation, 2 for liveness only, 64 for bad arguments.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import {
  BYZANTINE_BEHAVIOURS,
  type ByzantineBehaviour,
  isByzantineBehaviour,
} from '../src/byzantine/strategies.ts';
import { runSimulation, type SimulationResult } from '../src/sim/simulation.ts';
import { integerOption } from './lib/options.ts';
import { SHIPPED_DEFAULTS_RUN } from './lib/sim-runs.ts';

const EXIT_SAFETY = 1;
const EXIT_LIVENESS = 2;
const EXIT_USAGE = 64;
const FIRST_SEED_RANDOM_MAX = 2 ** 40;

function usage(message: string): never {
  console.error(`pbft sim: ${message}`);
  console.error(
    'usage: npm run sim -- --seeds N [--first-seed S] [--replicas 4|7|10] [--byzantine K] [--behaviour NAME] [--shipped-defaults] [--json]',
  );
  process.exit(EXIT_USAGE);
}

let parsed: ReturnType<typeof parseOptions>;
function parseOptions() {
  return parseArgs({
    options: {
      seeds: { type: 'string' },
      'first-seed': { type: 'string' },
      replicas: { type: 'string' },
      byzantine: { type: 'string' },
      behaviour: { type: 'string', multiple: true },
      crypto: { type: 'string', default: 'simulated' },
      'shipped-defaults': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
}
try {
  parsed = parseOptions();
} catch (error) {
  usage((error as Error).message);
}
const { values } = parsed;
if (values.help) {
  console.log(
    'usage: npm run sim -- --seeds N [--first-seed S] [--replicas 4|7|10] [--byzantine K] [--behaviour NAME] [--shipped-defaults] [--json]',
  );
  console.log(`behaviours: ${BYZANTINE_BEHAVIOURS.join(', ')}`);
  process.exit(0);
}
const seeds = integerOption(values.seeds, 'seeds', 100, 1, usage);
const firstSeed = integerOption(
  values['first-seed'],
  'first-seed',
  randomInt(0, FIRST_SEED_RANDOM_MAX),
  0,
  usage,
);
const replicas = integerOption(values.replicas, 'replicas', 4, 4, usage);
if (![4, 7, 10].includes(replicas)) usage('--replicas must be 4, 7 or 10');
const f = (replicas - 1) / 3;
const byzantine = integerOption(values.byzantine, 'byzantine', f, 0, usage);
if (byzantine > f) usage(`--byzantine must be at most f = ${f} for ${replicas} replicas`);
if (values.crypto !== 'simulated' && values.crypto !== 'ed25519')
  usage('--crypto must be simulated or ed25519');
const crypto = values.crypto;
const behaviours: ByzantineBehaviour[] = [];
for (const name of values.behaviour ?? []) {
  if (!isByzantineBehaviour(name))
    usage(`unknown --behaviour "${name}"; one of ${BYZANTINE_BEHAVIOURS.join(', ')}`);
  behaviours.push(name);
}

if (!values.json) {
  console.log(
    `simulating seeds ${firstSeed} … ${firstSeed + seeds - 1}: ${replicas} replicas, ${byzantine} Byzantine`,
  );
}
const started = performance.now();
const failures: SimulationResult[] = [];
let committed = 0;
let viewChanges = 0;
let crashes = 0;
let stateTransfers = 0;
const lagging: number[] = [];
let safetyFailure = false;
for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
  const result = runSimulation({
    seed,
    replicas,
    byzantine,
    crypto,
    ...(behaviours.length > 0 ? { behaviours } : {}),
    ...(values['shipped-defaults'] ? SHIPPED_DEFAULTS_RUN : {}),
  });
  committed += result.committed;
  viewChanges += result.viewChanges;
  crashes += result.crashes;
  stateTransfers += result.stateTransfers;
  if (result.laggards !== null) {
    lagging.push(seed);
    if (!values.json) console.log(`seed ${seed}: correct replicas did not converge: ${result.laggards}`);
  }
  if (result.violations.length > 0) {
    failures.push(result);
    if (result.violations.some((violation) => violation.kind !== 'liveness')) safetyFailure = true;
    const liars = result.byzantine.map((b) => `${b.replica}:${b.behaviour}`).join(',') || 'none';
    const defaults = values['shipped-defaults'] ? ' --shipped-defaults' : '';
    console.error(
      `seed ${seed} FAILED (byzantine ${liars}); replay: npm run sim -- --seeds 1 --first-seed ${seed} --replicas ${replicas} --byzantine ${byzantine}${defaults}`,
    );
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
  stateTransfers,
  /** Seeds that ended with every client done but correct replicas at different points (liveness failures). */
  laggingSeeds: lagging,
  elapsedMs,
};
if (values.json) {
  console.log(JSON.stringify(summary));
} else {
  console.log(
    `${seeds} seeds, ${summary.violations} violations, ${committed} requests committed, ${viewChanges} view changes, ` +
      `${crashes} crashes, ${stateTransfers} state transfers, ${lagging.length} seeds with a correct replica left behind, ${(elapsedMs / 1000).toFixed(1)} s`,
  );
}
process.exit(failures.length === 0 ? 0 : safetyFailure ? EXIT_SAFETY : EXIT_LIVENESS);
