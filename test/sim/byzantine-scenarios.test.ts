/**
 * One scenario per Byzantine behaviour the project claims to survive, at n = 4 (f = 1) and n = 7
 * (f = 2): f replicas lie in that way, and every request still completes with no violation.
 *
 * Each scenario also runs a control: the same seed, keys and scripted crashes with the liars honest
 * (`liarsHonest`). Its evidence is what differs between the two runs and only that lie produces:
 * rejections of the liars' messages for a reason only the lie gives (counted per sender), a lying
 * primary replaced (the view moved past it, which the control's did not), lies a tap on the wire
 * sees delivered (votes for digests nobody proposed, false checkpoints). A strategy that does
 * nothing makes the two runs alike, and every scenario fails.
 *
 * These use real ed25519 signatures end to end; the sweeps use the simulator's stand-in scheme.
 * Liveness for behaviours that lie only to clients (forged replies and reads) is in
 * lying-to-clients.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { replayCommand, type ScriptedCrash } from '../../scripts/lib/sim-runs.ts';
import { BYZANTINE_BEHAVIOURS, type ByzantineBehaviour } from '../../src/byzantine/strategies.ts';
import { primaryOf } from '../../src/protocol/config.ts';
import {
  type RejectionCount,
  runSimulation,
  type SimulationOptions,
  type SimulationResult,
} from '../../src/sim/simulation.ts';

type Size = 4 | 7;

interface Run {
  replicas: Size;
  liars: number[];
  lie: SimulationResult;
  control: SimulationResult;
  /** Replay commands of the two runs, for failure messages. */
  hint: string;
}

interface Scenario {
  behaviour: ByzantineBehaviour;
  /** Liar ids per size; primaries of views 0, 1, 2 … are replicas 0, 1, 2 … */
  liars: Record<Size, number[]>;
  /** Scripted crashes of correct replicas per size (view 0's primary: a view change happens anyway). */
  crashes: Record<Size, ScriptedCrash[]>;
  /** What the lie alone produces: asserted present in `lie` and absent from `control`. */
  evidence: (run: Run) => void;
}

/** Behaviours that lie only to clients: their scenarios are in lying-to-clients.test.ts. */
/** Behaviours whose scenarios live in files of their own (lying-to-clients, censor). */
/** Covered by lying-to-clients.test.ts, censor.test.ts and smart-liars.test.ts. */
const SCENARIOS_ELSEWHERE = [
  'forged-replies',
  'forged-reads',
  'censor',
  'empty-batches',
  'big-batches',
  'flood-future-views',
  'selective-commit',
  'slow-primary',
];

const CRASH_PRIMARY: ScriptedCrash[] = [{ replica: 0, atMs: 300, downMs: 3_000 }];
const NO_CRASH: Record<Size, ScriptedCrash[]> = { 4: [], 7: [] };

/** Rejections by correct replicas of messages that `senders` delivered, matching `match`. */
function rejectedFrom(
  result: SimulationResult,
  senders: readonly number[],
  match: (rejection: RejectionCount) => boolean,
): number {
  return result.rejectionsBySender
    .filter((rejection) => senders.includes(rejection.from) && match(rejection))
    .reduce((sum, rejection) => sum + rejection.count, 0);
}

const everyone = (run: Run): number[] => [...Array(run.replicas).keys()];

/** Each liar's messages were rejected for `match`; in the control nobody's were. */
function rejectedOnlyForTheLie(run: Run, what: string, match: (rejection: RejectionCount) => boolean): void {
  for (const liar of run.liars) {
    expect(rejectedFrom(run.lie, [liar], match), `${what} from liar ${liar}; ${run.hint}`).toBeGreaterThan(0);
  }
  expect(rejectedFrom(run.control, everyone(run), match), `${what} in the control; ${run.hint}`).toBe(0);
}

/** The tap saw each liar's lie delivered to correct replicas, and nobody's in the control. */
function tappedOnlyForTheLie(
  run: Run,
  what: string,
  tapped: (result: SimulationResult) => Record<number, number>,
): void {
  for (const liar of run.liars) {
    expect(tapped(run.lie)[liar] ?? 0, `${what} from liar ${liar}; ${run.hint}`).toBeGreaterThan(0);
  }
  expect(tapped(run.control), `${what} in the control; ${run.hint}`).toEqual({});
}

/**
 * The lie got its liar out of the primary's seat: the view moved further than in the control, and
 * the view the correct replicas ended in has a correct primary.
 */
function primaryReplaced(run: Run): void {
  expect(run.lie.viewChanges, `views beyond the control's; ${run.hint}`).toBeGreaterThan(
    run.control.viewChanges,
  );
  expect(run.liars, `the last view's primary is correct; ${run.hint}`).not.toContain(
    primaryOf(run.lie.viewChanges, run.replicas),
  );
}

/** The liar of view 0 lied as primary (its core led view 0): the scenario tested the role it claims. */
function liedAsPrimary(run: Run, liar: number): void {
  expect(run.lie.byzantinePrimaries, `liar ${liar} was a primary; ${run.hint}`).toContain(liar);
}

const edgeRejection = (rejection: RejectionCount): boolean =>
  rejection.reason === 'bad-signature' ||
  rejection.reason === 'unknown-replica' ||
  rejection.reason === 'undecodable';

const SCENARIOS: Scenario[] = [
  {
    behaviour: 'silent',
    liars: { 4: [0], 7: [0, 1] },
    crashes: NO_CRASH,
    evidence: (run) => {
      liedAsPrimary(run, 0);
      primaryReplaced(run);
    },
  },
  {
    behaviour: 'equivocate',
    // At n = 7 a second equivocating primary in view 1 would still gather 2f matching PREPAREs
    // from its even-numbered backups and never be replaced: replica 2 lies as a backup instead.
    liars: { 4: [0], 7: [0, 2] },
    crashes: NO_CRASH,
    evidence: (run) => {
      liedAsPrimary(run, 0);
      primaryReplaced(run);
    },
  },
  {
    behaviour: 'bad-digest',
    liars: { 4: [0], 7: [0, 1] },
    crashes: NO_CRASH,
    evidence: (run) => {
      rejectedOnlyForTheLie(
        run,
        'PRE-PREPAREs rejected for digest-mismatch',
        (rejection) => rejection.messageType === 'pre-prepare' && rejection.reason === 'digest-mismatch',
      );
      primaryReplaced(run);
    },
  },
  {
    behaviour: 'bad-signature',
    liars: { 4: [0], 7: [0, 3] },
    crashes: NO_CRASH,
    evidence: (run) => {
      rejectedOnlyForTheLie(run, 'messages dropped at the edge (signature, signer, encoding)', edgeRejection);
      liedAsPrimary(run, 0);
      primaryReplaced(run);
    },
  },
  {
    behaviour: 'replay',
    liars: { 4: [3], 7: [5, 6] },
    crashes: { 4: CRASH_PRIMARY, 7: CRASH_PRIMARY },
    evidence: (run) => {
      // Honest replicas also send messages of a view that others have left (old-view), but only
      // their own: a rejected ordering message signed by someone else than its sender is a replay.
      rejectedOnlyForTheLie(
        run,
        "others' ordering messages of old views, rejected",
        (rejection) =>
          rejection.relayed &&
          rejection.reason === 'old-view' &&
          ['pre-prepare', 'prepare', 'commit'].includes(rejection.messageType),
      );
    },
  },
  {
    behaviour: 'unprepared-votes',
    liars: { 4: [2], 7: [2, 4] },
    crashes: NO_CRASH,
    evidence: (run) => {
      tappedOnlyForTheLie(run, 'votes for digests no primary proposed', (result) => result.unbackedVotes);
      rejectedOnlyForTheLie(
        run,
        'votes for another digest than the slot’s PRE-PREPARE, rejected',
        (rejection) => rejection.reason === 'vote-for-other-digest',
      );
    },
  },
  {
    behaviour: 'fake-checkpoint',
    liars: { 4: [1], 7: [1, 2] },
    crashes: NO_CRASH,
    evidence: (run) => {
      tappedOnlyForTheLie(run, 'CHECKPOINTs with false state digests', (result) => result.falseCheckpoints);
      rejectedOnlyForTheLie(
        run,
        'CHECKPOINTs that differ from the receiver’s own state, rejected',
        (rejection) => rejection.reason === 'checkpoint-state-mismatch',
      );
      // Stable checkpoints still form from the honest majority: the log is garbage-collected.
      expect(run.lie.executedSeq, run.hint).toBeGreaterThanOrEqual(8);
    },
  },
  {
    behaviour: 'fake-view-change',
    liars: { 4: [2], 7: [2, 3] },
    crashes: { 4: CRASH_PRIMARY, 7: CRASH_PRIMARY },
    evidence: (run) => {
      // Fabricated prepared certificates carry PREPAREs under others' names: the edge rejects them.
      rejectedOnlyForTheLie(
        run,
        'VIEW-CHANGEs with forged certificates, rejected',
        (rejection) => rejection.messageType === 'view-change' && rejection.reason === 'bad-signature',
      );
      expect(run.lie.viewChanges, run.hint).toBeGreaterThanOrEqual(1);
    },
  },
  {
    behaviour: 'bad-new-view',
    liars: { 4: [1], 7: [1, 2] },
    crashes: { 4: CRASH_PRIMARY, 7: CRASH_PRIMARY },
    evidence: (run) => {
      rejectedOnlyForTheLie(
        run,
        'NEW-VIEWs rejected for wrong-pre-prepares',
        (rejection) => rejection.messageType === 'new-view' && rejection.reason === 'wrong-pre-prepares',
      );
      liedAsPrimary(run, 1);
      primaryReplaced(run);
    },
  },
  {
    behaviour: 'flood',
    liars: { 4: [3], 7: [3, 6] },
    crashes: NO_CRASH,
    evidence: (run) => {
      rejectedOnlyForTheLie(run, 'garbage frames', (rejection) => rejection.reason === 'undecodable');
      const far = (result: SimulationResult): number =>
        rejectedFrom(result, run.liars, (rejection) => rejection.reason === 'outside-watermarks');
      // Honest replicas' late votes fall outside a window now and then; the flood's by thousands.
      expect(far(run.lie), `messages outside the watermarks; ${run.hint}`).toBeGreaterThan(
        10 * Math.max(1, far(run.control)),
      );
      // Nor did VIEW-CHANGEs for huge views move anyone: the view stayed 0.
      expect(run.lie.viewChanges, run.hint).toBe(0);
      expect(run.control.viewChanges, run.hint).toBe(0);
    },
  },
  {
    behaviour: 'wrong-batches',
    // A backup that was down while view 0 prepared its last slots lacks their batches after the
    // view change and fetches them, from the lowest-numbered vouchers first: the liars.
    liars: { 4: [1], 7: [1, 2] },
    crashes: {
      4: [
        { replica: 3, atMs: 200, downMs: 300 },
        { replica: 0, atMs: 400, downMs: 3_000 },
      ],
      7: [
        { replica: 5, atMs: 200, downMs: 300 },
        { replica: 6, atMs: 200, downMs: 300 },
        { replica: 0, atMs: 400, downMs: 3_000 },
      ],
    },
    evidence: (run) =>
      rejectedOnlyForTheLie(
        run,
        'BATCH answers rejected for digest-mismatch',
        (rejection) => rejection.messageType === 'batch' && rejection.reason === 'digest-mismatch',
      ),
  },
];

const SEEDS = [11, 12];

function runBoth(scenario: Scenario, replicas: Size, seed: number): Run {
  const f = (replicas - 1) / 3;
  const options: SimulationOptions = {
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
    crashes: scenario.crashes[replicas],
  };
  const control = { ...options, liarsHonest: true };
  const hint = `scenario ${scenario.behaviour}, n = ${replicas}, seed ${seed}; replay: ${replayCommand(options)}; control: ${replayCommand(control)}`;
  return {
    replicas,
    liars: scenario.liars[replicas],
    lie: runSimulation(options),
    control: runSimulation(control),
    hint,
  };
}

describe.each([4, 7] as const)('n = %i replicas with f Byzantine replicas', (replicas) => {
  const f = (replicas - 1) / 3;
  it.each(SCENARIOS.map((scenario) => [scenario.behaviour, scenario] as const))(
    'survives %s, and shows what the lie did against a liar-free control run',
    (_name, scenario) => {
      for (const seed of SEEDS) {
        const run = runBoth(scenario, replicas, seed);
        for (const result of [run.lie, run.control]) {
          expect(result.violations, run.hint).toEqual([]);
          expect(result.committed, run.hint).toBe(result.requested);
          expect(result.laggards, run.hint).toBeNull();
        }
        expect(run.lie.byzantine.map((liar) => liar.behaviour)).toEqual(Array(f).fill(scenario.behaviour));
        expect(run.control.byzantine).toEqual([]);
        expect(run.control.byzantinePrimaries).toEqual([]);
        scenario.evidence(run);
      }
    },
  );
});

describe('the scenarios', () => {
  it('cover every behaviour of the catalogue that lies to replicas', () => {
    const covered = [...SCENARIOS.map((scenario) => scenario.behaviour), ...SCENARIOS_ELSEWHERE];
    expect([...covered].sort()).toEqual([...BYZANTINE_BEHAVIOURS].sort());
  });
});
