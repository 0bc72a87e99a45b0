/**
 * One scenario per Byzantine behaviour the project claims to survive, at n = 4 (f = 1) and n = 7
 * (f = 2): f replicas lie in that way, and every request still completes with no violation. Each
 * scenario also checks that the lie actually happened and was noticed, so none passes vacuously.
 * These use real ed25519 signatures end to end; the sweeps use the simulator's stand-in scheme.
 */
import { describe, expect, it } from 'vitest';
import type { ByzantineBehaviour } from '../../src/byzantine/strategies.ts';
import { runSimulation, type SimulationResult } from '../../src/sim/simulation.ts';

interface Scenario {
  behaviour: ByzantineBehaviour;
  /** Liar ids for n = 4 and n = 7; primaries of views 0, 1, 2 … are replicas 0, 1, 2 … */
  liars: { 4: number[]; 7: number[] };
  /** Crash the (correct) primary of view 0 so that a view change happens. */
  crashPrimary: boolean;
  evidence: (result: SimulationResult) => void;
}

const rejected = (result: SimulationResult, reason: string): number => result.rejections[reason] ?? 0;

const SCENARIOS: Scenario[] = [
  {
    behaviour: 'silent',
    liars: { 4: [0], 7: [0, 1] },
    crashPrimary: false,
    evidence: (result) => expect(result.viewChanges).toBeGreaterThanOrEqual(1),
  },
  {
    behaviour: 'equivocate',
    liars: { 4: [0], 7: [0, 1] },
    crashPrimary: false,
    evidence: (result) => expect(result.viewChanges).toBeGreaterThanOrEqual(1),
  },
  {
    behaviour: 'bad-digest',
    liars: { 4: [0], 7: [0, 1] },
    crashPrimary: false,
    evidence: (result) => {
      expect(rejected(result, 'digest-mismatch')).toBeGreaterThan(0);
      expect(result.viewChanges).toBeGreaterThanOrEqual(1);
    },
  },
  {
    behaviour: 'bad-signature',
    liars: { 4: [0], 7: [0, 3] },
    crashPrimary: false,
    evidence: (result) =>
      expect(rejected(result, 'bad-signature') + rejected(result, 'undecodable')).toBeGreaterThan(0),
  },
  {
    behaviour: 'replay',
    liars: { 4: [3], 7: [5, 6] },
    crashPrimary: true,
    evidence: (result) => expect(rejected(result, 'old-view')).toBeGreaterThan(0),
  },
  {
    behaviour: 'unprepared-votes',
    liars: { 4: [2], 7: [2, 4] },
    crashPrimary: false,
    evidence: (result) => expect(result.executedSeq).toBeGreaterThan(0),
  },
  {
    behaviour: 'fake-checkpoint',
    liars: { 4: [1], 7: [1, 2] },
    crashPrimary: false,
    // Stable checkpoints still form from the honest majority: the log is garbage-collected.
    evidence: (result) => expect(result.executedSeq).toBeGreaterThanOrEqual(8),
  },
  {
    behaviour: 'fake-view-change',
    liars: { 4: [2], 7: [2, 3] },
    crashPrimary: true,
    evidence: (result) => expect(result.viewChanges).toBeGreaterThanOrEqual(1),
  },
  {
    behaviour: 'bad-new-view',
    liars: { 4: [1], 7: [1, 2] },
    crashPrimary: true,
    evidence: (result) => {
      expect(rejected(result, 'wrong-pre-prepares')).toBeGreaterThan(0);
      expect(result.viewChanges).toBeGreaterThanOrEqual(2);
    },
  },
  {
    behaviour: 'flood',
    liars: { 4: [3], 7: [3, 6] },
    crashPrimary: false,
    evidence: (result) => {
      expect(rejected(result, 'undecodable')).toBeGreaterThan(0);
      expect(rejected(result, 'outside-watermarks')).toBeGreaterThan(0);
    },
  },
];

const SEEDS = [11, 12];

describe.each([4, 7] as const)('n = %i replicas with f Byzantine replicas', (replicas) => {
  const f = (replicas - 1) / 3;
  it.each(SCENARIOS.map((scenario) => [scenario.behaviour, scenario] as const))(
    'survives %s',
    (_name, scenario) => {
      for (const seed of SEEDS) {
        const result = runSimulation({
          seed,
          replicas,
          byzantine: f,
          byzantineReplicas: scenario.liars[replicas],
          behaviours: [scenario.behaviour],
          faults: false,
          crypto: 'ed25519',
          clients: 3,
          requestsPerClient: 8,
          safetyPhaseMs: 4_000,
          crashes: scenario.crashPrimary ? [{ replica: 0, atMs: 300, downMs: 3_000 }] : [],
        });
        const replay = `seed ${seed}: npm run sim -- --seeds 1 --first-seed ${seed} (scenario ${scenario.behaviour}, n=${replicas})`;
        expect(result.violations, replay).toEqual([]);
        expect(result.byzantine.map((liar) => liar.behaviour)).toEqual(Array(f).fill(scenario.behaviour));
        expect(result.committed, replay).toBe(result.requested);
        scenario.evidence(result);
      }
    },
  );
});
