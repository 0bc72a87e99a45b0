/**
 * The replay hints that sweeps and scenarios print: each is an `npm run sim` command line that,
 * read back by the script's own parser, gives the same options and so the same run, in-process
 * and as a real `npm run sim` process. Also the sweeps' liar rotation and their known-limit filter.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  parseSimArgs,
  replayArgs,
  replayCommand,
  runOptions,
  SHIPPED_DEFAULTS_RUN,
  SimUsageError,
  sweepLiars,
  sweepRun,
  sweepStorageFaultSeed,
} from '../../scripts/lib/sim-runs.ts';
import { BYZANTINE_BEHAVIOURS } from '../../src/byzantine/strategies.ts';
import { runSimulation, type SimulationOptions, type SimulationResult } from '../../src/sim/simulation.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The project's Node (the scripts need type stripping, which the system Node may lack). */
const NODE = `${ROOT}node_modules/.bin/node`;

/** The options the printed hint for `options` stands for, read back by npm run sim's parser. */
function replayed(options: SimulationOptions): SimulationOptions {
  const command = parseSimArgs(replayArgs(replayCommand(options)));
  expect(command.seeds).toBe(1);
  expect(command.firstSeed).toBe(options.seed);
  return runOptions(command, options.seed);
}

const SCENARIO: SimulationOptions = {
  seed: 11,
  replicas: 4,
  byzantine: 1,
  byzantineReplicas: [2],
  behaviours: ['fake-view-change'],
  faults: false,
  crypto: 'ed25519',
  clients: 3,
  requestsPerClient: 8,
  safetyPhaseMs: 4_000,
  crashes: [{ replica: 0, atMs: 300, downMs: 3_000 }],
};

/** The first sweep seed from `from` on that runs storage faults. */
function firstStorageSeed(from: number): number {
  let seed = from;
  while (!sweepStorageFaultSeed(seed)) seed++;
  return seed;
}

describe('replay hints', () => {
  it.each([
    ['a sweep seed at n = 4', sweepRun(100_007, 4)],
    ['a sweep seed at n = 7', sweepRun(200_003, 7)],
    ['a scenario', SCENARIO],
    ['a scenario control run', { ...SCENARIO, liarsHonest: true }],
    [
      'a shipped-defaults run',
      { seed: 5, replicas: 4, byzantine: 1, behaviours: ['wrong-batches'], ...SHIPPED_DEFAULTS_RUN },
    ],
    ['the simulator drawing the liars', { seed: 3, replicas: 10, byzantine: 2, livenessPhaseMs: 30_000 }],
    ['a sweep seed with storage faults at n = 4', sweepRun(firstStorageSeed(100_000), 4)],
    ['a sweep seed with storage faults at n = 7', sweepRun(firstStorageSeed(200_000), 7)],
    [
      'a scripted storage fault',
      {
        seed: 7,
        replicas: 4,
        byzantine: 0,
        faults: false,
        storageFaults: true,
        crashes: [{ replica: 0, atMs: 1_400, downMs: 200, storage: 'lost' }],
      },
    ],
  ] as Array<[string, SimulationOptions]>)(
    '%s: the command reads back as the same options',
    (_name, options) => {
      expect(replayed(options)).toEqual(options);
    },
  );

  it('a sweep seed replayed from its hint runs the same simulation', () => {
    const options = sweepRun(100_011, 4);
    const result = runSimulation(options);
    expect(result.byzantine.length).toBe(1);
    expect(runSimulation(replayed(options))).toEqual(result);
  });

  it('a scenario and its control replayed from their hints run the same simulations', () => {
    for (const options of [SCENARIO, { ...SCENARIO, liarsHonest: true }]) {
      const result = runSimulation(options);
      expect(runSimulation(replayed(options))).toEqual(result);
    }
    // The two differ where the lie does: the control has no liar and no forged VIEW-CHANGE.
    expect(runSimulation({ ...SCENARIO, liarsHonest: true }).byzantine).toEqual([]);
  });

  it('npm run sim given the printed hint reports the run the test saw', () => {
    const options: SimulationOptions = { ...sweepRun(100_019, 4), requestsPerClient: 6 };
    const result: SimulationResult = runSimulation(options);
    const summary = JSON.parse(
      execFileSync(NODE, ['scripts/sim.ts', ...replayArgs(replayCommand(options)), '--json'], {
        cwd: ROOT,
        encoding: 'utf8',
      })
        .trim()
        .split('\n')
        .at(-1)!,
    );
    expect(summary).toMatchObject({
      seeds: 1,
      firstSeed: options.seed,
      violations: result.violations.length,
      committed: result.committed,
      viewChanges: result.viewChanges,
      crashes: result.crashes,
      partitions: result.partitions,
      stateTransfers: result.stateTransfers,
    });
  });

  it('--sweep draws the liars as the CI sweeps do', () => {
    const command = parseSimArgs(['--seeds', '1', '--first-seed', '200042', '--replicas', '7', '--sweep']);
    expect(runOptions(command, 200_042)).toEqual(sweepRun(200_042, 7));
    const storage = firstStorageSeed(200_000);
    expect(runOptions(command, storage)).toEqual(sweepRun(storage, 7));
    expect(sweepRun(storage, 7)).toMatchObject({ byzantine: 1, storageFaults: true });
  });

  it('a sweep seed with storage faults gives up one liar: the rest of its faults stay within f', () => {
    for (const replicas of [4, 7, 10]) {
      const f = (replicas - 1) / 3;
      let storageSeeds = 0;
      for (let seed = 0; seed < 200; seed++) {
        const run = sweepRun(seed, replicas);
        if (run.storageFaults !== true) {
          expect(run.byzantine).toBe(f);
          continue;
        }
        storageSeeds++;
        expect(run.byzantine).toBe(f - 1);
        // The rotated liar stays where there is room for it.
        if (f > 1)
          expect(run.byzantineReplicas).toEqual(sweepLiars(seed, replicas).byzantineReplicas.slice(0, f - 1));
      }
      expect(storageSeeds).toBeGreaterThan(20);
      expect(storageSeeds).toBeLessThan(80);
    }
  });

  it('refuses what it cannot replay and arguments that make no run', () => {
    expect(() =>
      replayCommand({ seed: 1, replicas: 4, byzantine: 1, protocol: { checkpointInterval: 4 } }),
    ).toThrow(RangeError);
    expect(() => replayCommand({ seed: 1, replicas: 4, byzantine: 1, onPersist: () => {} })).toThrow(
      RangeError,
    );
    for (const args of [
      ['--liars', '0,0'],
      ['--liars', '4'],
      ['--liars', '0:equivocate,1'],
      ['--liars', '0,1'],
      ['--liars', '0', '--byzantine', '0'],
      ['--liars', '0:lying'],
      ['--crash', '0@100'],
      ['--crash', '7@100+200'],
      ['--crash', '0@100+200:erased'],
      ['--replicas', '5'],
      ['--liars', '0', '--sweep'],
      ['--clients', '0'],
      ['--unknown'],
    ]) {
      expect(() => parseSimArgs(args), args.join(' ')).toThrow(SimUsageError);
    }
  });
});

describe('the sweeps’ liars', () => {
  it.each([4, 7, 10])(
    'n = %i: any 2 × |catalogue| consecutive seeds give every behaviour once to view 0’s primary and once to a high backup',
    (replicas) => {
      const count = BYZANTINE_BEHAVIOURS.length;
      const f = (replicas - 1) / 3;
      for (const start of [0, 100_000, 123_457]) {
        const asPrimary: string[] = [];
        const asBackup: string[] = [];
        for (let seed = start; seed < start + 2 * count; seed++) {
          const { byzantine, byzantineReplicas, liarBehaviours } = sweepLiars(seed, replicas);
          expect(byzantine).toBe(f);
          expect(new Set(byzantineReplicas).size).toBe(f);
          expect(byzantineReplicas.slice(1)).not.toContain(0);
          const [first] = byzantineReplicas;
          if (first === 0) asPrimary.push(liarBehaviours[0]!);
          else {
            expect(first).toBeGreaterThanOrEqual(replicas - 1 - f);
            asBackup.push(liarBehaviours[0]!);
          }
        }
        expect(asPrimary.sort()).toEqual([...BYZANTINE_BEHAVIOURS].sort());
        expect(asBackup.sort()).toEqual([...BYZANTINE_BEHAVIOURS].sort());
      }
    },
  );
});
