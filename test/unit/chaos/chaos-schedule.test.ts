/** The chaos runner's seeded fault schedule: reproducible, within PBFT's fault bound, every class covered. */
import { describe, expect, it } from 'vitest';
import {
  chooseLiars,
  episodeSpanMs,
  FAULT_CLASSES,
  faultCount,
  generateSchedule,
  PRIMARY_FAULT_CLASSES,
  resolveTargets,
  type ScheduleOptions,
  THROUGHPUT_WINDOW_MS,
  unavailableReason,
} from '../../../scripts/lib/chaos-schedule.ts';
import type { NetnsSupport } from '../../../scripts/lib/netns.ts';

const VIEW_CHANGE_TIMEOUT_MS = 2_000;

function options(overrides: Partial<ScheduleOptions> = {}): ScheduleOptions {
  const replicas = overrides.replicas ?? 7;
  return {
    seed: 42,
    replicas,
    classes: FAULT_CLASSES,
    durationMs: 60_000,
    viewChangeTimeoutMs: VIEW_CHANGE_TIMEOUT_MS,
    liars: chooseLiars(42, replicas),
    ...overrides,
  };
}

describe('chaos schedule', () => {
  it('is the same for the same seed and differs for another', () => {
    expect(generateSchedule(options())).toEqual(generateSchedule(options()));
    expect(generateSchedule(options())).not.toEqual(generateSchedule(options({ seed: 43 })));
  });

  it('never puts more than f replicas at fault in one episode, and liars are one per f', () => {
    for (const replicas of [4, 7, 10]) {
      const f = faultCount(replicas);
      expect(chooseLiars(5, replicas)).toHaveLength(f);
      for (let seed = 0; seed < 50; seed++) {
        for (const episode of generateSchedule(
          options({ seed, replicas, liars: chooseLiars(seed, replicas) }),
        )) {
          // A hostile client hits no replica; every other fault hits at least one.
          expect(episode.targets.length).toBeGreaterThanOrEqual(episode.fault === 'hostile-client' ? 0 : 1);
          if (episode.fault === 'hostile-client') expect(episode.targets).toEqual([]);
          expect(episode.targets.length).toBeLessThanOrEqual(f);
          const resolved = resolveTargets(episode.targets, seed % replicas, replicas);
          expect(new Set(resolved).size).toBe(resolved.length);
          for (const id of resolved) expect(id).toBeLessThan(replicas);
        }
      }
    }
  });

  it('covers every requested class, and runs at least as long as asked', () => {
    const episodes = generateSchedule(options({ durationMs: 1 }));
    expect(new Set(episodes.map((episode) => episode.fault))).toEqual(new Set(FAULT_CLASSES));
    const long = generateSchedule(options({ durationMs: 120_000 }));
    const totalMs = long.reduce((sum, episode) => sum + episodeSpanMs(episode), 0);
    expect(totalMs).toBeGreaterThanOrEqual(120_000);
    // A primary fault takes its quiet windows, before and after, on top of its gap and duration.
    const primary = generateSchedule(options({ classes: ['primary-kill'], durationMs: 1 }))[0]!;
    expect(episodeSpanMs(primary)).toBe(primary.gapMs + primary.durationMs + 2 * THROUGHPUT_WINDOW_MS);
  });

  it('aims the primary classes at exactly the primary, for longer than the view-change timeout', () => {
    for (const fault of PRIMARY_FAULT_CLASSES) {
      for (let seed = 0; seed < 20; seed++) {
        for (const episode of generateSchedule(options({ seed, classes: [fault], durationMs: 100_000 }))) {
          expect(episode.targets).toEqual(['primary']);
          expect(episode.durationMs).toBeGreaterThan(VIEW_CHANGE_TIMEOUT_MS);
          expect(resolveTargets(episode.targets, seed % 7, 7)).toEqual([seed % 7]);
        }
      }
    }
  });

  it('pauses a replica for longer than the view-change timeout, so it wakes up into a newer view', () => {
    const pauses = generateSchedule(options({ classes: ['pause'], durationMs: 200_000 }));
    expect(pauses.length).toBeGreaterThan(10);
    for (const pause of pauses) expect(pause.durationMs).toBeGreaterThan(VIEW_CHANGE_TIMEOUT_MS);
    expect(pauses.some((pause) => pause.targets[0] === 'primary')).toBe(true);
  });

  it('makes the liars lie with a named behaviour', () => {
    const liars = [2, 5];
    for (const episode of generateSchedule(options({ classes: ['byzantine'], liars }))) {
      expect(episode.targets).toEqual(liars);
      expect(episode.behaviour).toMatch(/^[a-z-]+$/);
    }
  });

  it('resolves the primary target and never picks a replica twice', () => {
    expect(resolveTargets(['primary', 1], 1, 4)).toEqual([1, 2]);
    expect(resolveTargets([3, 'primary'], 3, 4)).toEqual([3, 0]);
  });

  it('says why a network class cannot be injected, and never blames the process classes', () => {
    const everything: NetnsSupport = {
      available: { namespaces: true, netem: true, nftables: true },
      missing: {},
    };
    const noNetem: NetnsSupport = {
      available: { namespaces: true, netem: false, nftables: true },
      missing: {
        netem: 'tc netem is unavailable (Error: Specified qdisc kind is unknown.): delay faults are skipped',
      },
    };
    const noRoot: NetnsSupport = {
      available: { namespaces: false, netem: false, nftables: false },
      missing: { namespaces: 'network faults need root (ip netns, tc, nft)' },
    };
    for (const fault of FAULT_CLASSES) expect(unavailableReason(fault, everything)).toBeUndefined();
    expect(unavailableReason('delay', noNetem)).toMatch(/netem/);
    expect(unavailableReason('loss', noNetem)).toBeUndefined();
    expect(unavailableReason('partition', noNetem)).toBeUndefined();
    for (const fault of ['partition', 'throttle', 'delay', 'loss'] as const)
      expect(unavailableReason(fault, noRoot)).toMatch(/root/);
    for (const fault of ['kill', 'pause', 'primary-kill', 'primary-pause', 'byzantine'] as const)
      expect(unavailableReason(fault, noRoot)).toBeUndefined();
  });
});
