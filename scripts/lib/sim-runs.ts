/**
 * Simulation runs shared by `npm run sim` and the tests in test/sim: the options behind each flag,
 * the liars a sweep seed gets, and the command line that replays a run. A failure's hint is built
 * from the very options that ran (replayCommand), and `npm run sim` reads it back with the same
 * parser (parseSimArgs), so a printed hint runs exactly the same thing.
 */
import { parseArgs } from 'node:util';
import {
  BYZANTINE_BEHAVIOURS,
  type ByzantineBehaviour,
  isByzantineBehaviour,
} from '../../src/byzantine/strategies.ts';
import { DEFAULT_CLUSTER_PROTOCOL } from '../../src/node/cluster-config.ts';
import { isStorageFaultKind, type SimulatedCrash, type SimulationOptions } from '../../src/sim/simulation.ts';
import { Random } from '../../src/util/random.ts';
import { parseIntegerAtLeast } from './options.ts';

/** What --shipped-defaults changes: the settings, load and fault that make messages largest. */
export const SHIPPED_DEFAULTS_RUN = {
  protocol: DEFAULT_CLUSTER_PROTOCOL,
  clients: 300,
  requestsPerClient: 3,
  largeOperationShare: 0.5,
  crashes: [{ replica: 0, atMs: 400, downMs: 4_000 }],
} as const satisfies Partial<SimulationOptions>;

export type ScriptedCrash = SimulatedCrash;

/**
 * The share of sweep seeds that run storage faults. Such a seed gives up one liar for them: a
 * replica recovering from a storage fault is one of the f faults until it has recovered, so with f
 * liars the model leaves no room for one (the simulator's scheduleStorageFaults says why).
 */
export const SWEEP_STORAGE_FAULT_SHARE = 0.25;

/**
 * The liars of sweep seed `seed` (--sweep): f replicas, rotated through behaviour × role so that
 * any 2 × BYZANTINE_BEHAVIOURS.length consecutive seeds give every behaviour once to the primary of
 * view 0 and once to a backup among the highest f + 1 ids (the last to become primary after view
 * changes). The other f − 1 liars (never replica 0), their behaviours and which backup are drawn
 * from the seed. The catalogue is read at run time: a behaviour added to it joins the rotation.
 */
export function sweepLiars(
  seed: number,
  replicas: number,
): { byzantine: number; byzantineReplicas: number[]; liarBehaviours: ByzantineBehaviour[] } {
  const byzantine = (replicas - 1) / 3;
  const count = BYZANTINE_BEHAVIOURS.length;
  const asPrimary = Math.floor(seed / count) % 2 === 0;
  const random = new Random(seed);
  const first = asPrimary ? 0 : replicas - 1 - random.int(0, byzantine);
  const others = random
    .shuffle([...Array(replicas).keys()].filter((id) => id !== 0 && id !== first))
    .slice(0, byzantine - 1);
  return {
    byzantine,
    byzantineReplicas: [first, ...others],
    liarBehaviours: [
      BYZANTINE_BEHAVIOURS[seed % count]!,
      ...others.map(() => random.pick(BYZANTINE_BEHAVIOURS)),
    ],
  };
}

/** Whether sweep seed `seed` runs storage faults (a draw of its own, apart from the liars' draws). */
export function sweepStorageFaultSeed(seed: number): boolean {
  return new Random(seed).fork().chance(SWEEP_STORAGE_FAULT_SHARE);
}

/**
 * What the sweep draws for seed `seed` besides the simulator's defaults: its liars, and on a share
 * of seeds storage faults with one liar fewer (the rotated liar stays when f > 1, so the rotation's
 * coverage thins only at n = 4, where such a seed has no liar; the simulator then draws the empty
 * set of liars itself, as `--byzantine 0` replays it).
 */
export function sweepChoices(seed: number, replicas: number): Omit<SimulationOptions, 'seed' | 'replicas'> {
  const liars = sweepLiars(seed, replicas);
  if (!sweepStorageFaultSeed(seed)) return liars;
  const kept = liars.byzantine - 1;
  if (kept === 0) return { byzantine: 0, storageFaults: true };
  return {
    byzantine: kept,
    byzantineReplicas: liars.byzantineReplicas.slice(0, kept),
    liarBehaviours: liars.liarBehaviours.slice(0, kept),
    storageFaults: true,
  };
}

/** One sweep run: the simulator's default faults and load, with the sweep's liars and storage faults. */
export function sweepRun(seed: number, replicas: number): SimulationOptions {
  return { seed, replicas, ...sweepChoices(seed, replicas) };
}

export class SimUsageError extends Error {
  override name = 'SimUsageError';
}

/** A parsed `npm run sim` command line. */
export interface SimCommand {
  seeds: number;
  /** Absent: the script draws one at random (and prints it). */
  firstSeed?: number;
  /** Liars and storage faults per seed as the CI sweeps draw them (sweepChoices). */
  sweep: boolean;
  json: boolean;
  help: boolean;
  /** Everything but the seed; runOptions adds it. */
  base: Omit<SimulationOptions, 'seed'>;
}

export const SIM_USAGE =
  'usage: npm run sim -- --seeds N [--first-seed S] [--replicas 4|7|10] [--byzantine K] [--behaviour NAME]...\n' +
  '       [--liars ID[:BEHAVIOUR],...] [--liars-honest] [--sweep] [--no-faults] [--storage-faults]\n' +
  '       [--crash REPLICA@MS+DOWNMS[:lost|corrupted|rolled-back]]...\n' +
  '       [--crypto simulated|ed25519] [--clients N] [--requests N] [--safety-ms MS] [--liveness-ms MS]\n' +
  '       [--shipped-defaults] [--json]';

const REPLICA_COUNTS = [4, 7, 10];

/** Parse the arguments of `npm run sim` (after the `--`); throws SimUsageError with a one-line reason. */
export function parseSimArgs(args: readonly string[]): SimCommand {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(args).values;
  } catch (error) {
    throw new SimUsageError((error as Error).message);
  }
  const integer = (name: keyof typeof values, min: number): number | undefined => {
    const value = values[name];
    if (value === undefined) return undefined;
    const parsed = typeof value === 'string' ? parseIntegerAtLeast(value, min) : null;
    if (parsed === null) throw new SimUsageError(`--${name} must be an integer >= ${min}, got "${value}"`);
    return parsed;
  };
  const replicas = integer('replicas', 4) ?? 4;
  if (!REPLICA_COUNTS.includes(replicas)) throw new SimUsageError('--replicas must be 4, 7 or 10');
  const f = (replicas - 1) / 3;
  if (values.crypto !== 'simulated' && values.crypto !== 'ed25519')
    throw new SimUsageError('--crypto must be simulated or ed25519');

  const behaviours: ByzantineBehaviour[] = [];
  for (const name of values.behaviour ?? []) behaviours.push(behaviourNamed(name, '--behaviour'));
  const liars = values.liars === undefined ? undefined : parseLiars(values.liars, replicas);
  if (liars !== undefined && values.sweep) throw new SimUsageError('--liars and --sweep choose liars both');
  const byzantine = integer('byzantine', 0) ?? liars?.ids.length ?? f;
  if (byzantine > f) throw new SimUsageError(`--byzantine must be at most f = ${f} for ${replicas} replicas`);
  if (liars !== undefined && liars.ids.length !== byzantine)
    throw new SimUsageError(`--liars lists ${liars.ids.length} replicas but --byzantine is ${byzantine}`);
  if (values.sweep && byzantine !== f) throw new SimUsageError(`--sweep runs f = ${f} liars`);
  const crashes = (values.crash ?? []).map((crash) => parseCrash(crash, replicas));

  const base: Omit<SimulationOptions, 'seed'> = {
    replicas,
    byzantine,
    ...(values['shipped-defaults'] ? SHIPPED_DEFAULTS_RUN : {}),
    ...(values.crypto === 'ed25519' ? { crypto: 'ed25519' as const } : {}),
    ...(behaviours.length > 0 ? { behaviours } : {}),
    ...(liars !== undefined ? { byzantineReplicas: liars.ids } : {}),
    ...(liars?.behaviours !== undefined ? { liarBehaviours: liars.behaviours } : {}),
    ...(values['liars-honest'] ? { liarsHonest: true } : {}),
    ...(values['no-faults'] ? { faults: false } : {}),
    ...(values['storage-faults'] ? { storageFaults: true } : {}),
    ...(crashes.length > 0 ? { crashes } : {}),
  };
  const clients = integer('clients', 1);
  const requests = integer('requests', 1);
  const safetyMs = integer('safety-ms', 1);
  const livenessMs = integer('liveness-ms', 1);
  if (clients !== undefined) base.clients = clients;
  if (requests !== undefined) base.requestsPerClient = requests;
  if (safetyMs !== undefined) base.safetyPhaseMs = safetyMs;
  if (livenessMs !== undefined) base.livenessPhaseMs = livenessMs;
  const firstSeed = integer('first-seed', 0);
  return {
    seeds: integer('seeds', 1) ?? 100,
    ...(firstSeed !== undefined ? { firstSeed } : {}),
    sweep: values.sweep ?? false,
    json: values.json ?? false,
    help: values.help ?? false,
    base,
  };
}

/** The options of one seed of a parsed command. */
export function runOptions(command: SimCommand, seed: number): SimulationOptions {
  const sweep = command.sweep ? sweepChoices(seed, command.base.replicas) : {};
  return { ...command.base, ...sweep, seed };
}

function parse(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    options: {
      seeds: { type: 'string' },
      'first-seed': { type: 'string' },
      replicas: { type: 'string' },
      byzantine: { type: 'string' },
      behaviour: { type: 'string', multiple: true },
      liars: { type: 'string' },
      'liars-honest': { type: 'boolean' },
      sweep: { type: 'boolean' },
      'no-faults': { type: 'boolean' },
      'storage-faults': { type: 'boolean' },
      crash: { type: 'string', multiple: true },
      crypto: { type: 'string', default: 'simulated' },
      clients: { type: 'string' },
      requests: { type: 'string' },
      'safety-ms': { type: 'string' },
      'liveness-ms': { type: 'string' },
      'shipped-defaults': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: false,
  });
}

function behaviourNamed(name: string, flag: string): ByzantineBehaviour {
  if (!isByzantineBehaviour(name))
    throw new SimUsageError(`unknown ${flag} behaviour "${name}"; one of ${BYZANTINE_BEHAVIOURS.join(', ')}`);
  return name;
}

/** `0,3` (behaviours drawn) or `0:equivocate,3:flood` (each named; all or none). */
function parseLiars(
  value: string,
  replicas: number,
): { ids: number[]; behaviours: ByzantineBehaviour[] | undefined } {
  const ids: number[] = [];
  const behaviours: ByzantineBehaviour[] = [];
  for (const item of value.split(',')) {
    const [id, name, extra] = item.split(':');
    const replica = parseIntegerAtLeast(id ?? '', 0);
    if (replica === null || replica >= replicas || ids.includes(replica) || extra !== undefined)
      throw new SimUsageError(
        `--liars takes distinct replica ids below ${replicas}, each optionally :BEHAVIOUR, got "${value}"`,
      );
    ids.push(replica);
    if (name !== undefined) behaviours.push(behaviourNamed(name, '--liars'));
  }
  if (behaviours.length !== 0 && behaviours.length !== ids.length)
    throw new SimUsageError('--liars names a behaviour for every liar or for none');
  return { ids, behaviours: behaviours.length > 0 ? behaviours : undefined };
}

function parseCrash(value: string, replicas: number): ScriptedCrash {
  const match = /^(\d+)@(\d+)\+(\d+)(?::([a-z-]+))?$/.exec(value);
  const storage = match?.[4];
  if (
    match === null ||
    Number(match[1]) >= replicas ||
    (storage !== undefined && !isStorageFaultKind(storage))
  )
    throw new SimUsageError(
      `--crash takes REPLICA@MS+DOWNMS[:lost|corrupted|rolled-back] with a replica below ${replicas}, got "${value}"`,
    );
  const crash: ScriptedCrash = {
    replica: Number(match[1]),
    atMs: Number(match[2]),
    downMs: Number(match[3]),
  };
  if (storage !== undefined && isStorageFaultKind(storage)) crash.storage = storage;
  return crash;
}

function crashFlag(crash: ScriptedCrash): string {
  return `${crash.replica}@${crash.atMs}+${crash.downMs}${crash.storage === undefined ? '' : `:${crash.storage}`}`;
}

/**
 * The `npm run sim` command that replays the run of `options`, seed included. Throws for options
 * no flag expresses (other protocol settings, onPersist, another frame limit), so no hint can lie.
 */
export function replayCommand(options: SimulationOptions): string {
  const shipped = options.protocol === SHIPPED_DEFAULTS_RUN.protocol;
  const base: Partial<SimulationOptions> = shipped ? SHIPPED_DEFAULTS_RUN : {};
  if (options.protocol !== undefined && !shipped && Object.keys(options.protocol).length > 0)
    throw new RangeError(
      'replayCommand: only the shipped protocol settings have a flag (--shipped-defaults)',
    );
  if (
    options.onPersist !== undefined ||
    options.frameSizeMaxBytes !== undefined ||
    options.trace !== undefined
  )
    throw new RangeError('replayCommand: onPersist, trace and frameSizeMaxBytes have no flag');
  if (options.recoverFromStorageFaults === false)
    throw new RangeError('replayCommand: restarting without recovery after a storage fault has no flag');
  if ((options.largeOperationShare ?? 0) !== (base.largeOperationShare ?? 0))
    throw new RangeError('replayCommand: largeOperationShare has a flag only as part of --shipped-defaults');
  if (
    shipped &&
    (options.clients === undefined || options.requestsPerClient === undefined || !options.crashes)
  )
    throw new RangeError('replayCommand: --shipped-defaults brings its clients, requests and crashes');

  const flags = [
    `--seeds 1 --first-seed ${options.seed}`,
    `--replicas ${options.replicas}`,
    `--byzantine ${options.byzantine}`,
  ];
  if (shipped) flags.push('--shipped-defaults');
  if (options.behaviours !== undefined && options.behaviours.join() !== BYZANTINE_BEHAVIOURS.join())
    for (const behaviour of options.behaviours) flags.push(`--behaviour ${behaviour}`);
  if (options.byzantineReplicas !== undefined) {
    const named = options.liarBehaviours;
    flags.push(
      `--liars ${options.byzantineReplicas.map((id, index) => (named ? `${id}:${named[index]}` : `${id}`)).join(',')}`,
    );
  } else if (options.liarBehaviours !== undefined) {
    throw new RangeError('replayCommand: liarBehaviours without byzantineReplicas');
  }
  if (options.liarsHonest) flags.push('--liars-honest');
  if (options.faults === false) flags.push('--no-faults');
  if (options.storageFaults === true) flags.push('--storage-faults');
  const crashes = options.crashes ?? [];
  if (crashes.map(crashFlag).join() !== (base.crashes ?? []).map(crashFlag).join()) {
    if (crashes.length === 0) throw new RangeError('replayCommand: no flag removes the shipped crash');
    for (const crash of crashes) flags.push(`--crash ${crashFlag(crash)}`);
  }
  if (options.crypto === 'ed25519') flags.push('--crypto ed25519');
  const numbers: Array<[keyof SimulationOptions, string]> = [
    ['clients', '--clients'],
    ['requestsPerClient', '--requests'],
    ['safetyPhaseMs', '--safety-ms'],
    ['livenessPhaseMs', '--liveness-ms'],
  ];
  for (const [key, flag] of numbers) {
    const value = options[key];
    if (value !== undefined && value !== base[key]) flags.push(`${flag} ${value}`);
  }
  return `npm run sim -- ${flags.join(' ')}`;
}

/** The arguments of a replay command (what follows `npm run sim --`). */
export function replayArgs(command: string): string[] {
  const prefix = 'npm run sim -- ';
  if (!command.startsWith(prefix)) throw new RangeError(`not an npm run sim command: ${command}`);
  return command.slice(prefix.length).split(' ');
}
