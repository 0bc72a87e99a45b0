/**
 * Liars that lie to clients, at n = 4 (f = 1) and n = 7 (f = 2) with real ed25519: f replicas forge
 * REPLY results or query answers (plausible ones: same view, seq and t, another balance or status),
 * or answer clients not at all. Clients never accept a lie, and every request and read completes;
 * each scenario shows that the lie was told (forged or withheld answers counted as they were sent)
 * and that clients outvoted it. The same liars against clients that trust too few replicas (f
 * matching replies, f matching query answers) make the checkers report a violation: the checkers
 * see what clients accept, so a client that takes a lie cannot pass.
 */
import { describe, expect, it } from 'vitest';
import type { ByzantineBehaviour } from '../../src/byzantine/strategies.ts';
import { runSimulation, type SimulationOptions, type SimulationResult } from '../../src/sim/simulation.ts';

interface Scenario {
  name: string;
  behaviour: ByzantineBehaviour;
  /** Liar ids for n = 4 and n = 7 (replica 0 is the primary of view 0); drawn from the seed if absent. */
  liars?: { 4: number[]; 7: number[] };
  /** Seeds for n = 4 and n = 7 (default SEEDS). */
  seeds?: { 4: number[]; 7: number[] };
  options?: Partial<SimulationOptions>;
  evidence: (result: SimulationResult) => void;
  /** Votes a too-trusting client takes, and the violation the checkers must then report. */
  trusting?: { votes: (f: number) => SimulationOptions['clientVotes']; kind: string };
}

const SCENARIOS: Scenario[] = [
  {
    name: 'forged replies (a lying primary and backup)',
    behaviour: 'forged-replies',
    liars: { 4: [0], 7: [0, 4] },
    evidence: (result) => {
      expect(result.clientLies.forged).toBeGreaterThan(0);
      expect(result.clientLies.outvoted).toBeGreaterThan(0);
    },
    trusting: { votes: (f) => ({ reply: f }), kind: 'client-result' },
  },
  {
    name: 'forged query answers',
    behaviour: 'forged-reads',
    liars: { 4: [3], 7: [5, 6] },
    options: { readShare: 0.5 },
    evidence: (result) => {
      expect(result.clientLies.forged).toBeGreaterThan(0);
      expect(result.clientLies.outvoted).toBeGreaterThan(0);
      expect(result.reads.query).toBeGreaterThan(0);
    },
    trusting: { votes: (f) => ({ read: f }), kind: 'client-read' },
  },
  {
    // With a correct replica down, the correct answers alone cannot make 2f+1: every read then
    // needs the ordered fallback, whose reply the liar cannot forge into f+1 either.
    name: 'forged query answers while a correct replica is down (the ordered fallback)',
    behaviour: 'forged-reads',
    liars: { 4: [3], 7: [5, 6] },
    options: { readShare: 0.5, crashes: [{ replica: 1, atMs: 200, downMs: 3_000 }] },
    evidence: (result) => {
      expect(result.clientLies.forged).toBeGreaterThan(0);
      expect(result.reads.ordered).toBeGreaterThan(0);
    },
  },
  {
    // The seed's faults (loss, partitions, crashes) leave correct replicas behind the clients'
    // writes, still answering queries from older states, where the liar's stale answers meet
    // them. The n = 4 seeds are ones where a client that counted such answers (2f+1 of them)
    // accepted a stale balance: found by taking the lastExecuted check out of the simulator's
    // client and running seeds 1-150 of this scenario (re-found when strangers stopped taking
    // reply-cache slots; none of 1-150 does it at n = 7, whose seeds show lagging answers only).
    // A change to the simulator can move such meetings to other seeds; the evidence at least
    // checks that lagging answers came.
    name: 'stale query answers meeting lagging correct replicas under faults',
    behaviour: 'forged-reads',
    seeds: { 4: [65, 143], 7: [3, 5] },
    options: {
      faults: true,
      crypto: 'simulated',
      requestsPerClient: 12,
      safetyPhaseMs: 6_000,
      readShare: 0.5,
    },
    evidence: (result) => {
      expect(result.clientLies.forged).toBeGreaterThan(0);
      expect(result.reads.query).toBeGreaterThan(0);
      expect(result.reads.behindWrites).toBeGreaterThan(0);
    },
  },
  {
    name: 'silent towards clients too',
    behaviour: 'silent',
    liars: { 4: [3], 7: [5, 6] },
    evidence: (result) => {
      expect(result.clientLies.withheld).toBeGreaterThan(0);
      expect(result.clientLies.forged).toBe(0);
    },
  },
];

const SEEDS = [11, 12];

function run(scenario: Scenario, replicas: 4 | 7, seed: number, extra: Partial<SimulationOptions> = {}) {
  return runSimulation({
    seed,
    replicas,
    byzantine: (replicas - 1) / 3,
    ...(scenario.liars === undefined ? {} : { byzantineReplicas: scenario.liars[replicas] }),
    behaviours: [scenario.behaviour],
    faults: false,
    crypto: 'ed25519',
    clients: 3,
    requestsPerClient: 8,
    safetyPhaseMs: 4_000,
    ...scenario.options,
    ...extra,
  });
}

describe.each([4, 7] as const)('n = %i replicas with f replicas lying to clients', (replicas) => {
  const f = (replicas - 1) / 3;
  it.each(SCENARIOS.map((scenario) => [scenario.name, scenario] as const))(
    'clients accept no lie: %s',
    (_name, scenario) => {
      for (const seed of scenario.seeds?.[replicas] ?? SEEDS) {
        const result = run(scenario, replicas, seed);
        const replay = `seed ${seed} (${scenario.behaviour}, n=${replicas})`;
        expect(result.violations, replay).toEqual([]);
        expect(result.byzantine.map((liar) => liar.behaviour)).toEqual(Array(f).fill(scenario.behaviour));
        expect(result.committed, replay).toBe(result.requested);
        scenario.evidence(result);
      }
    },
  );

  const caught = SCENARIOS.filter((scenario) => scenario.trusting !== undefined);
  it.each(caught.map((scenario) => [scenario.name, scenario] as const))(
    'a client that trusts f replicas is caught: %s',
    (_name, scenario) => {
      const { votes, kind } = scenario.trusting!;
      for (const seed of scenario.seeds?.[replicas] ?? SEEDS) {
        const result = run(scenario, replicas, seed, { clientVotes: votes(f) });
        expect(
          result.violations.map((violation) => violation.kind),
          `seed ${seed} (${scenario.behaviour}, n=${replicas})`,
        ).toContain(kind);
      }
    },
  );
});
