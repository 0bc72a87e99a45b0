/**
 * The CI sweeps (sweep-n4, sweep-n7): fixed seed ranges, so CI is reproducible and coverage can be
 * asserted over them, plus a chunk of random seeds per run, so CI also explores. The random chunk's
 * first seed is printed (and in the test's name); PBFT_SWEEP_RANDOM_SEED=S runs that chunk again
 * from S. Every failure names the `npm run sim` command that replays its seed.
 *
 * Liars come from sweepLiars (scripts/lib/sim-runs.ts): behaviour × role rotated over the seeds,
 * so any 2 × |BYZANTINE_BEHAVIOURS| consecutive seeds give every behaviour to view 0's primary and
 * to a backup. The coverage test then checks what the runs actually did: each behaviour lied as a
 * primary and as a backup, and enough seeds went through view changes, state transfers,
 * partitions, crashes and storage faults. A share of the seeds (sweepChoices) runs storage faults
 * with one liar fewer; each ends only once every recovering replica has recovered.
 */
import { randomInt } from 'node:crypto';
import { expect, it } from 'vitest';
import { replayCommand, sweepRun } from '../../scripts/lib/sim-runs.ts';
import { BYZANTINE_BEHAVIOURS, type ByzantineBehaviour } from '../../src/byzantine/strategies.ts';
import { runSimulation } from '../../src/sim/simulation.ts';

export const RANDOM_SEED_ENV = 'PBFT_SWEEP_RANDOM_SEED';
const RANDOM_FIRST_SEED_MAX = 2 ** 40;

/** What one sweep run did, for the coverage check. */
export interface RunStatistics {
  seed: number;
  viewChanges: number;
  stateTransfers: number;
  partitions: number;
  crashes: number;
  storageFaults: number;
  recoveries: number;
  /** Requests the liveness phase sent to end a stalled recovery in the idle cluster (a known limit). */
  recoveryNudges: number;
  liars: Array<{ behaviour: ByzantineBehaviour; asPrimary: boolean }>;
}

/** Shares of the fixed seeds that must show each fault or recovery (set well below what the draws give today). */
export interface CoverageMin {
  viewChange: number;
  twoViewChanges: number;
  stateTransfer: number;
  partition: number;
  crash: number;
  storageFault: number;
}

export interface Sweep {
  replicas: 4 | 7;
  firstSeed: number;
  seeds: number;
  chunk: number;
  randomSeeds: number;
  coverageMin: CoverageMin;
}

/** The first seed of the random chunk: PBFT_SWEEP_RANDOM_SEED when set, else random. */
export function randomFirstSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env[RANDOM_SEED_ENV];
  if (given === undefined || given === '') return randomInt(0, RANDOM_FIRST_SEED_MAX);
  if (!/^\d+$/.test(given) || !Number.isSafeInteger(Number(given)))
    throw new RangeError(`${RANDOM_SEED_ENV} must be a non-negative integer, got "${given}"`);
  return Number(given);
}

/** Run one sweep seed, assert its invariants, and return what it did. */
export function runSweepSeed(seed: number, replicas: number, note = ''): RunStatistics {
  const options = sweepRun(seed, replicas);
  const result = runSimulation(options);
  const hint = `seed ${seed}${note}; replay: ${replayCommand(options)}`;
  expect(result.violations, hint).toEqual([]);
  expect(result.committed, hint).toBe(result.requested);
  // Every replica that restarted recovering recovered before the run ended (else: a liveness violation).
  for (const fault of result.storageFaultLog)
    if (fault.recovering) expect(fault.recoveredAtMs, `${hint}: ${fault.detail}`).not.toBeNull();
  return {
    seed,
    viewChanges: result.viewChanges,
    stateTransfers: result.stateTransfers,
    partitions: result.partitions,
    crashes: result.crashes,
    storageFaults: result.storageFaults,
    recoveries: result.recoveries,
    recoveryNudges: result.recoveryNudges,
    liars: result.byzantine.map(({ replica, behaviour }) => ({
      behaviour,
      asPrimary: result.byzantinePrimaries.includes(replica),
    })),
  };
}

/** Where the fixed seeds fall short of coverage (empty: covered), with the numbers for the log. */
export function coverageGaps(
  runs: readonly RunStatistics[],
  min: CoverageMin,
): { gaps: string[]; summary: string } {
  const gaps: string[] = [];
  const share = (name: keyof CoverageMin, count: number): string => {
    if (count < min[name] * runs.length)
      gaps.push(
        `${name}: ${count} of ${runs.length} seeds, want at least ${Math.ceil(min[name] * runs.length)}`,
      );
    return `${name} ${count}`;
  };
  const parts = [
    share('viewChange', runs.filter((run) => run.viewChanges >= 1).length),
    share('twoViewChanges', runs.filter((run) => run.viewChanges >= 2).length),
    share('stateTransfer', runs.filter((run) => run.stateTransfers >= 1).length),
    share('partition', runs.filter((run) => run.partitions >= 1).length),
    share('crash', runs.filter((run) => run.crashes >= 1).length),
    share('storageFault', runs.filter((run) => run.storageFaults >= 1).length),
  ];
  const storageFaults = runs.reduce((sum, run) => sum + run.storageFaults, 0);
  const recoveries = runs.reduce((sum, run) => sum + run.recoveries, 0);
  const nudged = runs.filter((run) => run.recoveryNudges > 0).map((run) => run.seed);
  parts.push(
    `${storageFaults} storage faults, ${recoveries} recoveries completed, load resumed for a stalled recovery on ${nudged.length} seeds${nudged.length > 0 ? ` (${nudged.join(', ')})` : ''}`,
  );
  const roles: string[] = [];
  for (const behaviour of BYZANTINE_BEHAVIOURS) {
    const liars = runs.flatMap((run) => run.liars.filter((liar) => liar.behaviour === behaviour));
    const asPrimary = liars.filter((liar) => liar.asPrimary).length;
    const asBackup = liars.length - asPrimary;
    if (asPrimary === 0) gaps.push(`${behaviour} never lied as a primary`);
    if (asBackup === 0) gaps.push(`${behaviour} never lied as a backup only`);
    roles.push(`${behaviour} ${asPrimary}/${asBackup}`);
  }
  return {
    gaps,
    summary: `${runs.length} seeds: ${parts.join(', ')}; liars as primary/backup: ${roles.join(', ')}`,
  };
}

/** The tests of one sweep: its fixed chunks, its random chunk, and coverage over the fixed seeds. */
export function defineSweep(sweep: Sweep): void {
  const { replicas, firstSeed, seeds, chunk } = sweep;
  const fixed: RunStatistics[] = [];
  for (let chunkStart = firstSeed; chunkStart < firstSeed + seeds; chunkStart += chunk) {
    it(`seeds ${chunkStart} … ${chunkStart + chunk - 1} keep every invariant`, () => {
      for (let seed = chunkStart; seed < chunkStart + chunk; seed++) fixed.push(runSweepSeed(seed, replicas));
    });
  }

  const randomFirst = randomFirstSeed();
  const randomLast = randomFirst + sweep.randomSeeds - 1;
  const again = `${RANDOM_SEED_ENV}=${randomFirst} repeats this chunk`;
  it(`random seeds ${randomFirst} … ${randomLast} keep every invariant (${again})`, () => {
    console.log(`n = ${replicas} sweep: random seeds ${randomFirst} … ${randomLast} (${again})`);
    for (let seed = randomFirst; seed <= randomLast; seed++) runSweepSeed(seed, replicas, ` (${again})`);
  });

  it(`the fixed seeds cover view changes, state transfers, partitions, crashes, storage faults and every behaviour as primary and as backup`, () => {
    expect(fixed.length, 'every fixed chunk ran (run the whole file)').toBe(seeds);
    const { gaps, summary } = coverageGaps(fixed, sweep.coverageMin);
    console.log(`n = ${replicas} sweep coverage: ${summary}`);
    expect(gaps, summary).toEqual([]);
  });
}
