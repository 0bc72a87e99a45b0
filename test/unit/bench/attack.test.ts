/**
 * The pure parts of `npm run bench -- --attack BEHAVIOUR` (scripts/lib/attack.ts): the argument,
 * which replica lies, reading a view from /metrics, when a lying primary counts as replaced, the
 * view changes of a phase, and R with the goals.
 */
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_ATTACKS,
  defaultLiarRole,
  judgeAttack,
  LIAR_ROLES,
  liarReplacedAtMs,
  liarReplica,
  parseAttackBehaviour,
  parseViewMetrics,
  type ViewReading,
  type ViewSample,
  viewChangesDuring,
} from '../../../scripts/lib/attack.ts';
import { BYZANTINE_BEHAVIOURS } from '../../../src/byzantine/strategies.ts';

function reading(view: number, replicas: number, fields: Partial<ViewReading> = {}): ViewReading {
  return { view, primary: view % replicas, viewChangeInProgress: false, viewChangesStarted: 0, ...fields };
}

/** A sample at `atMs` with every replica of a 4-replica cluster in the given views (null: no answer). */
function sample(atMs: number, views: Array<number | null>, fields: Partial<ViewReading> = {}): ViewSample {
  return { atMs, replicas: views.map((view) => (view === null ? null : reading(view, 4, fields))) };
}

describe('bench --attack: the argument', () => {
  it('takes every behaviour of BYZANTINE_BEHAVIOURS', () => {
    for (const behaviour of BYZANTINE_BEHAVIOURS) expect(parseAttackBehaviour(behaviour)).toBe(behaviour);
  });

  it('takes the client attacks, which run as a client, not as a replica', () => {
    for (const attack of CLIENT_ATTACKS) {
      expect(parseAttackBehaviour(attack)).toBe(attack);
      expect(defaultLiarRole(attack)).toBe('client');
    }
  });

  it('refuses an unknown behaviour with one line that lists the valid ones', () => {
    expect(() => parseAttackBehaviour('lie-a-lot')).toThrow(InvalidArgumentError);
    try {
      parseAttackBehaviour('lie-a-lot');
    } catch (error) {
      const message = (error as Error).message;
      expect(message).not.toContain('\n');
      for (const behaviour of [...BYZANTINE_BEHAVIOURS, ...CLIENT_ATTACKS])
        expect(message).toContain(behaviour);
    }
  });

  it('runs primary-side behaviours as the primary of view 0 and the others as the last backup', () => {
    expect(defaultLiarRole('silent')).toBe('primary');
    expect(defaultLiarRole('censor')).toBe('primary');
    expect(defaultLiarRole('equivocate')).toBe('primary');
    expect(defaultLiarRole('flood')).toBe('backup');
    expect(defaultLiarRole('forged-replies')).toBe('backup');
    for (const behaviour of BYZANTINE_BEHAVIOURS) expect(LIAR_ROLES).toContain(defaultLiarRole(behaviour));
    expect(liarReplica('primary', 4)).toBe(0);
    expect(liarReplica('backup', 4)).toBe(3);
    expect(liarReplica('backup', 7)).toBe(6);
  });
});

describe('bench --attack: views from /metrics', () => {
  const metrics = [
    '# HELP pbft_view Current view',
    '# TYPE pbft_view gauge',
    'pbft_view 5',
    'pbft_primary 1',
    'pbft_view_change_in_progress 1',
    'pbft_view_changes_total{reason="timeout"} 2',
    'pbft_view_changes_total{reason="joined"} 3',
    'pbft_view_changes_total{reason="behind"} 0',
    'pbft_last_executed_seq 99',
  ].join('\n');

  it('reads the view, its primary, whether a view change is running and the view changes started', () => {
    expect(parseViewMetrics(metrics)).toEqual({
      view: 5,
      primary: 1,
      viewChangeInProgress: true,
      viewChangesStarted: 5,
    });
  });

  it('is null when a metric is missing', () => {
    expect(parseViewMetrics(metrics.replace('pbft_primary 1', ''))).toBeNull();
    expect(parseViewMetrics(metrics.replace(/^pbft_view_changes_total.*$/gm, ''))).toBeNull();
    expect(parseViewMetrics('')).toBeNull();
  });
});

describe('bench --attack: when the lying primary was replaced', () => {
  const f = 1;

  it('is the first sample with 2f+1 correct replicas settled in a view whose primary is another', () => {
    const samples = [
      sample(-100, [0, 0, 0, 0]),
      sample(1_000, [0, 1, 1, 0], {}),
      sample(2_000, [0, 1, 1, 1]),
      sample(3_000, [0, 1, 1, 1]),
    ];
    expect(liarReplacedAtMs(samples, 0, f)).toBe(2_000);
  });

  it('does not count replicas still changing views, the liar itself, or unanswered reads', () => {
    const changing = sample(1_000, [1, 1, 1, 1], { viewChangeInProgress: true });
    const liarOnly: ViewSample = {
      atMs: 2_000,
      replicas: [reading(1, 4), reading(0, 4), reading(0, 4), null],
    };
    const silentOne = sample(3_000, [1, 1, 1, null]);
    expect(liarReplacedAtMs([changing, liarOnly, silentOne], 0, f)).toBeNull();
  });

  it('does not count a view the liar is primary of again', () => {
    // View 4 at n = 4 is replica 0's again.
    expect(liarReplacedAtMs([sample(1_000, [4, 4, 4, 4])], 0, f)).toBeNull();
  });

  it('is null when the liar stays the primary', () => {
    expect(liarReplacedAtMs([sample(0, [0, 0, 0, 0]), sample(500, [0, 0, 0, 0])], 0, f)).toBeNull();
  });
});

describe('bench --attack: view changes in a phase', () => {
  it('is the most view changes any correct replica started between its first and last reading', () => {
    const counted = (counts: Array<number | null>, atMs: number): ViewSample => ({
      atMs,
      replicas: counts.map((count) => (count === null ? null : reading(0, 4, { viewChangesStarted: count }))),
    });
    const samples = [
      counted([9, 1, 0, null], 0),
      counted([20, 2, 2, 4], 500),
      counted([30, null, 3, 5], 900),
    ];
    // Replica 0 lies (its 21 do not count); replica 2 started 3, replica 3 1 since its first answer.
    expect(viewChangesDuring(samples, 0)).toBe(3);
    expect(viewChangesDuring(samples, -1)).toBe(21);
    expect(viewChangesDuring([], 0)).toBe(0);
  });
});

describe('bench --attack: R and the goals', () => {
  const primary = { role: 'primary' as const, replacementBoundS: 6 };

  it('a lying backup: R >= 0.8', () => {
    const pass = judgeAttack({
      role: 'backup',
      txPerSecFaultFree: 1_000,
      txPerSecUnderAttack: 800,
      replacedAfterS: null,
      replacementBoundS: 6,
    });
    expect(pass).toEqual({ R: 0.8, goals: [{ name: 'R >= 0.8', pass: true }], pass: true });
    const fail = judgeAttack({
      role: 'backup',
      txPerSecFaultFree: 1_000,
      txPerSecUnderAttack: 799,
      replacedAfterS: null,
      replacementBoundS: 6,
    });
    expect(fail.R).toBe(0.799);
    expect(fail.pass).toBe(false);
  });

  it('a hostile client: R >= 0.8 only, nothing to replace', () => {
    const figures = { role: 'client', replacedAfterS: null, replacementBoundS: 6 } as const;
    const pass = judgeAttack({ ...figures, txPerSecFaultFree: 1_000, txPerSecUnderAttack: 800 });
    expect(pass).toEqual({ R: 0.8, goals: [{ name: 'R >= 0.8', pass: true }], pass: true });
    const fail = judgeAttack({ ...figures, txPerSecFaultFree: 1_000, txPerSecUnderAttack: 222 });
    expect(fail).toEqual({ R: 0.222, goals: [{ name: 'R >= 0.8', pass: false }], pass: false });
  });

  it('a lying primary: replaced within the bound, and R >= 0.5', () => {
    const judged = judgeAttack({
      ...primary,
      txPerSecFaultFree: 1_000,
      txPerSecUnderAttack: 500,
      replacedAfterS: 6,
    });
    expect(judged.goals).toEqual([
      { name: 'replaced within 6 s', pass: true },
      { name: 'R >= 0.5', pass: true },
    ]);
    expect(judged.pass).toBe(true);
  });

  it('a lying primary never replaced, or replaced late, fails that goal whatever R is', () => {
    for (const replacedAfterS of [null, 6.01]) {
      const judged = judgeAttack({
        ...primary,
        txPerSecFaultFree: 100,
        txPerSecUnderAttack: 100,
        replacedAfterS,
      });
      expect(judged.goals.map((goal) => goal.pass)).toEqual([false, true]);
      expect(judged.pass).toBe(false);
    }
  });

  it('a lying primary replaced in time but costing more than half fails on R', () => {
    const judged = judgeAttack({
      ...primary,
      txPerSecFaultFree: 100,
      txPerSecUnderAttack: 49,
      replacedAfterS: 2,
    });
    expect(judged.goals.map((goal) => goal.pass)).toEqual([true, false]);
  });

  it('R is 0 when nothing committed fault-free', () => {
    expect(
      judgeAttack({ ...primary, txPerSecFaultFree: 0, txPerSecUnderAttack: 0, replacedAfterS: 1 }).R,
    ).toBe(0);
  });
});
