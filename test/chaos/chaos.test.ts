/**
 * Real-process chaos runs (`npm run chaos` runs all classes together and longer):
 *
 *   - short runs on a 4-replica cluster under load, each with one fault class and the classes
 *     that ride along with it (CO_CLASSES): every class is injected at least once and healed, nothing acknowledged is lost or executed twice, the correct replicas
 *     agree, supply is unchanged and committing resumed; for the primary classes also within 3
 *     base view-change timeouts of the fault's start, with throughput back to at least half. A
 *     class this machine cannot inject (network faults without root or namespaces, delay without
 *     tc netem, loss without nftables) is skipped, visibly: the test calls ctx.skip().
 *     The kill run also has a storage fault (class storage: a killed replica restarted on damaged
 *     LevelDB storage must notice, recover before it votes, and recover within the bound).
 *   - a run that asks only for a class this machine cannot inject must say so and not pass.
 *   - a heavy-load primary kill at n = 7 (128 clients on shared connections).
 *
 * Seeds are drawn afresh on every run and printed, so that over time each class hits primaries
 * as well as backups; a failure's message carries the seed that replays its schedule.
 */
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { THROUGHPUT_RECOVERED_FRACTION } from '../../scripts/lib/chaos-recovery.ts';
import {
  FAULT_CLASSES,
  type FaultClass,
  isPrimaryFault,
  unavailableReason,
} from '../../scripts/lib/chaos-schedule.ts';
import { probeNetns } from '../../scripts/lib/netns.ts';
import { basePortFor } from '../e2e/helpers.ts';

const run = promisify(execFile);
const SCRIPT = join(import.meta.dirname, '..', '..', 'scripts', 'chaos.ts');
/** Each run is a cluster of up to 10 replicas (a port and a metrics port each) in this file's range. */
const CLUSTER_REPLICAS_MAX = 10;
/** One run per fault class, then the n = 7 heavy-load run. */
const basePortOfRun = (run: number): number =>
  basePortFor('test/chaos/chaos.test.ts', {
    clusters: CLASS_RUNS.length + 1,
    replicas: CLUSTER_REPLICAS_MAX,
    cluster: run,
  });
const SEED_MAX = 2 ** 40;
const RUN_TIMEOUT_MS = 240_000;
/** The project's target for a primary fault: committing again within this many base view-change timeouts. */
const PRIMARY_RECOVERY_TIMEOUTS = 3;
const EXIT_NOTHING_INJECTED = 2;

/**
 * Classes that ride along in another class's run (each schedule injects every class it is given
 * once, in a seeded order, and the runner judges every episode on its own), to spare CI a
 * cluster's start-up, warm-up and audit per class: storage with kill, the second primary fault
 * with the first, the hostile client with a pause, throttling and loss with a partition.
 */
const CO_CLASSES: Partial<Record<FaultClass, FaultClass[]>> = {
  kill: ['storage'],
  'primary-kill': ['primary-pause'],
  pause: ['hostile-client'],
  partition: ['throttle', 'loss'],
};
/** The classes with a run of their own. */
const CLASS_RUNS = FAULT_CLASSES.filter(
  (fault) => !Object.values(CO_CLASSES).some((riders) => riders.includes(fault)),
);

interface EpisodeSummary {
  index: number;
  fault: string;
  replicas: number[];
  view: number;
  recoveryFromStartMs: number | null;
  txPerSecBefore: number | null;
  txPerSecAfter: number | null;
  droppedPackets?: number;
  storage?: { damage: string; detected: string | null; recoveredAfterMs: number | null };
}

interface ChaosSummary {
  ok: boolean;
  verdict: 'passed' | 'failed' | 'nothing-injected';
  seed: number;
  viewChangeTimeoutMs: number;
  faultsByClass: Record<string, number>;
  storageFaults: number;
  storageRecoveries: number;
  skipped: Array<{ fault: string; reason: string }>;
  acknowledged: number;
  executed: number;
  lost: number;
  duplicated: number;
  recoveryAfterLastFaultMs: number | null;
  finalView: number;
  episodes: EpisodeSummary[];
  problems: string[];
}

async function chaos(args: string[]): Promise<{ exitCode: number; summary: ChaosSummary }> {
  const { exitCode, stdout } = await run(process.execPath, [SCRIPT, ...args, '--json'], {
    timeout: RUN_TIMEOUT_MS,
    maxBuffer: 16 * 1024 * 1024,
  })
    .then(({ stdout }) => ({ exitCode: 0, stdout }))
    .catch((error: { code?: number; stdout?: string; stderr?: string }) => {
      // A failed run exits non-zero but still prints its summary; show its narration if there is none.
      if (error.stdout?.trim()) return { exitCode: error.code ?? -1, stdout: error.stdout };
      throw new Error(`chaos ${args.join(' ')} printed no summary:\n${error.stderr ?? ''}`);
    });
  return { exitCode, summary: JSON.parse(stdout.trim().split('\n').at(-1)!) as ChaosSummary };
}

function describeEpisodes(summary: ChaosSummary): string {
  return summary.episodes
    .map(
      (episode) =>
        `#${episode.index} ${episode.fault} on ${episode.replicas.join(',')} (view ${episode.view}): first commit ${episode.recoveryFromStartMs} ms after the start, ${episode.txPerSecBefore} -> ${episode.txPerSecAfter} tx/s`,
    )
    .join('; ');
}

/** What every run that injected something must show. */
function expectExact(summary: ChaosSummary): void {
  const context = `seed ${summary.seed}`;
  expect(summary.lost, context).toBe(0);
  expect(summary.duplicated, context).toBe(0);
  expect(summary.acknowledged, context).toBeGreaterThan(0);
  expect(summary.executed, context).toBeGreaterThanOrEqual(summary.acknowledged);
}

/** A primary fault's recovery against the project's target, whatever bound the runner applied. */
function expectPrimaryRecovery(summary: ChaosSummary, fault: FaultClass): void {
  const context = `seed ${summary.seed}: ${describeEpisodes(summary)}`;
  const episodes = summary.episodes.filter((episode) => episode.fault === fault);
  expect(episodes.length, context).toBeGreaterThanOrEqual(1);
  // Each one outlasts the view-change timeout, so each forces at least one view change.
  expect(summary.finalView, context).toBeGreaterThanOrEqual(episodes.length);
  for (const episode of episodes) {
    expect.soft(episode.recoveryFromStartMs, context).not.toBeNull();
    expect
      .soft(episode.recoveryFromStartMs ?? Number.POSITIVE_INFINITY, context)
      .toBeLessThanOrEqual(PRIMARY_RECOVERY_TIMEOUTS * summary.viewChangeTimeoutMs);
    expect.soft(episode.txPerSecBefore, context).toBeGreaterThan(0);
    expect
      .soft(episode.txPerSecAfter ?? 0, context)
      .toBeGreaterThanOrEqual(THROUGHPUT_RECOVERED_FRACTION * (episode.txPerSecBefore ?? 0));
  }
}

describe('chaos on a real 4-replica cluster, one fault class at a time', () => {
  it.for(CLASS_RUNS.map((fault, index) => [fault, index] as const))(
    'loses and duplicates nothing under %s',
    { timeout: RUN_TIMEOUT_MS },
    async ([fault, index], ctx) => {
      const classes = [fault, ...(CO_CLASSES[fault] ?? [])];
      const seed = randomInt(0, SEED_MAX);
      console.log(`chaos --faults ${classes.join(',')}: seed ${seed}`);
      const { summary } = await chaos([
        ...['--replicas', '4', '--clients', '3', '--duration', '1', '--faults', classes.join(',')],
        ...['--seed', String(seed), '--base-port', String(basePortOfRun(index))],
      ]);
      const skip = summary.skipped.find((entry) => entry.fault === fault);
      if (skip !== undefined) {
        // This machine cannot inject it: the runner must say why and not claim a pass.
        expect(skip.reason).toMatch(/root|namespaces|netem|nft/);
        expect(summary.faultsByClass[fault]).toBeUndefined();
        expect(summary.verdict).toBe('nothing-injected');
        ctx.skip(`${fault} cannot be injected here: ${skip.reason}`);
      }
      expect(summary.faultsByClass[fault], `seed ${seed}`).toBeGreaterThanOrEqual(1);
      expect(summary.recoveryAfterLastFaultMs, `seed ${seed}`).not.toBeNull();
      expectExact(summary);
      for (const injected of classes) {
        if (summary.faultsByClass[injected] === undefined) {
          // A rider this machine cannot inject (loss without nftables): the runner listed it.
          expect(
            summary.skipped.map((entry) => entry.fault),
            `seed ${seed}`,
          ).toContain(injected);
          console.log(`chaos --faults ${classes.join(',')}: ${injected} not injected here`);
          continue;
        }
        if (isPrimaryFault(injected)) expectPrimaryRecovery(summary, injected);
      }
      if (classes.includes('storage')) {
        // The killed replica found its damaged storage, recovered before voting, and recovered.
        const context = `seed ${seed}: ${JSON.stringify(summary.episodes.map((episode) => episode.storage ?? null))}`;
        expect(summary.faultsByClass['storage'], context).toBe(1);
        expect(summary.storageRecoveries, context).toBe(summary.storageFaults);
        for (const episode of summary.episodes.filter((each) => each.fault === 'storage')) {
          expect(episode.storage?.detected, context).toMatch(/^(damaged|missing)$/);
          expect(episode.storage?.recoveredAfterMs, context).not.toBeNull();
        }
      }
      // The nftables rules really dropped packets while a loss fault lasted.
      for (const episode of summary.episodes.filter((each) => each.fault === 'loss'))
        expect(episode.droppedPackets, `seed ${seed}`).toBeGreaterThan(0);
      expect(summary.problems.join('\n'), `seed ${seed}`).toBe('');
      expect(summary.verdict).toBe('passed');
    },
  );

  it('reports a fault class it cannot inject as skipped, and does not pass', async (ctx) => {
    const reason = unavailableReason('delay', probeNetns());
    if (reason === undefined) ctx.skip('tc netem works here, so delay can be injected: nothing to check');
    const { exitCode, summary } = await chaos(['--replicas', '4', '--faults', 'delay']);
    expect(exitCode).toBe(EXIT_NOTHING_INJECTED);
    expect(summary.verdict).toBe('nothing-injected');
    expect(summary.ok).toBe(false);
    expect(summary.skipped).toEqual([{ fault: 'delay', reason }]);
    expect(summary.faultsByClass).toEqual({});
  });
});

describe('a killed primary under heavy load at n = 7', () => {
  it('commits again within 3 view-change timeouts of the kill, at half the throughput or more, losing nothing', {
    timeout: RUN_TIMEOUT_MS,
  }, async () => {
    const seed = randomInt(0, SEED_MAX);
    console.log(`chaos --replicas 7 --clients 128 --faults primary-kill: seed ${seed}`);
    const { summary } = await chaos([
      ...['--replicas', '7', '--clients', '128', '--duration', '1', '--faults', 'primary-kill'],
      ...['--seed', String(seed), '--base-port', String(basePortOfRun(CLASS_RUNS.length))],
    ]);
    console.log(
      `n = 7, 128 clients, seed ${seed}: ${describeEpisodes(summary)}; problems: ${summary.problems.join(' | ') || 'none'}`,
    );
    expect(summary.faultsByClass['primary-kill'], `seed ${seed}`).toBe(1);
    expectExact(summary);
    expectPrimaryRecovery(summary, 'primary-kill');
    expect(summary.problems.join('\n'), `seed ${seed}`).toBe('');
  });
});
