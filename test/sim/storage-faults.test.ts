/**
 * Storage faults in the simulator: a crashed replica's storage lost, corrupted or rolled back. The
 * simulator restarts it as the node does (damage found, data set aside, empty storage, recovering),
 * and these tests watch it through the trace hook: it signs no vote between its restart and its
 * `recovered`, the run keeps every invariant, and the recovery completes. The same fault restarted
 * plainly from the damaged storage (amnesia) is caught by the checkers, so a simulator that stopped
 * restarting such a replica as recovering would fail here twice over.
 */
import { describe, expect, it } from 'vitest';
import { replayCommand } from '../../scripts/lib/sim-runs.ts';
import type { Message } from '../../src/protocol/messages.ts';
import {
  runSimulation,
  type SimTraceEntry,
  type SimulationOptions,
  STORAGE_FAULT_KINDS,
  type StorageFaultKind,
} from '../../src/sim/simulation.ts';
import { seqOf } from '../unit/protocol/harness.ts';

/** Messages that are votes, or speak for what a replica prepared: none may leave a recovering replica. */
const VOTE_TYPES: ReadonlySet<Message['type']> = new Set([
  'pre-prepare',
  'prepare',
  'commit',
  'checkpoint',
  'view-change',
  'new-view',
]);

/**
 * View 0's primary loses its storage right after proposing past its stable checkpoint (seed 7: it
 * proposed up to seq 23 over a stable checkpoint at 16 by 1,400 ms; the rolled-back copy is from
 * 700 ms): restarted plainly it would propose those sequence numbers again, with other batches.
 */
function scenario(storage: StorageFaultKind): SimulationOptions {
  const atMs = storage === 'rolled-back' ? 1_300 : 1_400;
  return {
    seed: 7,
    replicas: 4,
    byzantine: 0,
    faults: false,
    crashes: [{ replica: 0, atMs, downMs: 200, storage }],
  };
}

/** The replica that signed a vote at its top level (a NEW-VIEW it relays is its signer's, not its own). */
function voteSigner(message: Message): number | null {
  switch (message.type) {
    case 'pre-prepare':
      return message.prePrepare.body.replica;
    case 'prepare':
      return message.prepare.body.replica;
    case 'commit':
      return message.commit.body.replica;
    case 'checkpoint':
      return message.checkpoint.body.replica;
    case 'view-change':
      return message.viewChange.body.replica;
    case 'new-view':
      return message.newView.body.replica;
    default:
      return null;
  }
}

function traced(options: SimulationOptions): {
  result: ReturnType<typeof runSimulation>;
  trace: SimTraceEntry[];
} {
  const trace: SimTraceEntry[] = [];
  const result = runSimulation({ ...options, trace: (entry) => trace.push(entry) });
  return { result, trace };
}

describe('storage faults in the simulator', () => {
  it.each(STORAGE_FAULT_KINDS)(
    'a primary whose storage was %s restarts recovering, signs no vote until it has recovered, and recovers',
    (storage) => {
      const options = scenario(storage);
      const hint = replayCommand(options);
      const { result, trace } = traced(options);
      expect(result.violations, hint).toEqual([]);
      expect(result.committed, hint).toBe(result.requested);
      expect(result.storageFaults, hint).toBe(1);
      expect(result.recoveries, hint).toBe(1);
      const [fault] = result.storageFaultLog;
      expect(fault, hint).toMatchObject({
        replica: 0,
        kind: storage,
        detectedAtMs: options.crashes![0]!.atMs + 200,
      });
      expect(fault!.recovering, hint).toBe(true);
      expect(fault!.recoveredAtMs, hint).not.toBeNull();

      const restart = trace.findIndex(
        (entry) => entry.type === 'restart' && entry.replica === 0 && entry.atMs > 0,
      );
      const recovered = trace.findIndex(
        (entry) => entry.type === 'replica-event' && entry.replica === 0 && entry.event.type === 'recovered',
      );
      expect(trace[restart], hint).toMatchObject({ type: 'restart', recovering: true });
      expect(recovered, hint).toBeGreaterThan(restart);
      const sentBy0 = (from: number, to: number) =>
        trace
          .slice(from, to)
          .flatMap((entry) => (entry.type === 'sent' && entry.replica === 0 ? [entry.message] : []));
      const ownVotes = (messages: Message[]) =>
        messages
          .filter((message) => VOTE_TYPES.has(message.type) && voteSigner(message) === 0)
          .map((m) => m.type);
      // A voter before the fault; while recovering it asks (FETCH-STATE), may relay what others
      // signed (their NEW-VIEW), and signs no vote of its own.
      expect(ownVotes(sentBy0(0, restart)).length, hint).toBeGreaterThan(0);
      const whileRecovering = sentBy0(restart, recovered);
      expect(
        whileRecovering.map((message) => message.type),
        hint,
      ).toContain('fetch-state');
      expect(ownVotes(whileRecovering), hint).toEqual([]);
      // The others replaced it (it proposed nothing), and it recovered past the bound it learnt.
      expect(result.viewChanges, hint).toBeGreaterThanOrEqual(1);
      const bounded = trace.find(
        (entry) =>
          entry.type === 'replica-event' && entry.replica === 0 && entry.event.type === 'recovery-bounded',
      );
      const end = trace[recovered]!;
      if (bounded?.type !== 'replica-event' || bounded.event.type !== 'recovery-bounded')
        throw new Error(hint);
      if (end.type !== 'replica-event' || end.event.type !== 'recovered') throw new Error(hint);
      expect(end.event.seq, hint).toBeGreaterThanOrEqual(bounded.event.untilSeq);
      // Once recovered it may vote again (if the run still has requests), only above the bound.
      const votedSlots = sentBy0(recovered, trace.length).flatMap((message) =>
        voteSigner(message) === 0 && seqOf(message) !== undefined ? [seqOf(message)!] : [],
      );
      const { untilSeq } = bounded.event;
      expect(
        votedSlots.filter((seq) => seq <= untilSeq),
        hint,
      ).toEqual([]);
    },
  );

  it.each(['lost', 'rolled-back'] as const)(
    'the same primary restarted plainly from storage that was %s proposes again what it forgot: the checkers report equivocation',
    (storage) => {
      const result = runSimulation({ ...scenario(storage), recoverFromStorageFaults: false });
      expect(result.recoveries).toBe(0);
      expect(result.storageFaultLog[0]?.recovering).toBe(false);
      expect(result.violations.map((violation) => violation.kind)).toContain('equivocation');
    },
  );

  it('random storage faults hit at most f - byzantine correct replicas, and none when f replicas lie', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const options: SimulationOptions = { seed, replicas: 7, byzantine: 1, storageFaults: true };
      const result = runSimulation(options);
      const hint = replayCommand(options);
      expect(result.violations, hint).toEqual([]);
      const liars = result.byzantine.map((liar) => liar.replica);
      const hit = new Set(result.storageFaultLog.map((fault) => fault.replica));
      expect(hit.size, hint).toBeLessThanOrEqual(1);
      for (const replica of hit) expect(liars, hint).not.toContain(replica);
      for (const fault of result.storageFaultLog)
        expect(fault.recoveredAtMs, `${hint}: ${fault.detail}`).not.toBeNull();
    }
    // With f liars the budget is 0: nothing is drawn, and the run is the one without storage faults.
    const full: SimulationOptions = { seed: 3, replicas: 4, byzantine: 1 };
    expect(runSimulation({ ...full, storageFaults: true })).toEqual(runSimulation(full));
  });

  it('refuses scripted storage faults beyond the model', () => {
    expect(() =>
      runSimulation({
        seed: 1,
        replicas: 4,
        byzantine: 1,
        byzantineReplicas: [3],
        crashes: [{ replica: 1, atMs: 500, downMs: 200, storage: 'lost' }],
      }),
    ).toThrow(RangeError);
    expect(() =>
      runSimulation({
        seed: 1,
        replicas: 7,
        byzantine: 0,
        crashes: [
          { replica: 1, atMs: 500, downMs: 200, storage: 'lost' },
          { replica: 2, atMs: 900, downMs: 200, storage: 'corrupted' },
          { replica: 3, atMs: 1_300, downMs: 200, storage: 'rolled-back' },
        ],
      }),
    ).toThrow(RangeError);
  });
});
