/**
 * Recovery from storage that could not be trusted (the `Recovery` rules in src/protocol/replica.ts,
 * docs/protocol.md "Recovering replicas"): a replica that lost what it signed votes on nothing until
 * the cluster's stable checkpoint has passed every sequence number it may have voted on.
 */
import { describe, expect, it } from 'vitest';
import type { CheckpointBody, Message, StateBody } from '../../../src/protocol/messages.ts';
import { Cluster, type Envelope } from './harness.ts';

/** Messages that are votes, or speak for what a replica prepared: none may leave a recovering replica. */
const VOTE_TYPES: ReadonlySet<Message['type']> = new Set([
  'pre-prepare',
  'prepare',
  'commit',
  'checkpoint',
  'view-change',
  'new-view',
]);

function votesFrom(envelopes: readonly Envelope[], replica: number): Envelope[] {
  return envelopes.filter((envelope) => envelope.from === replica && VOTE_TYPES.has(envelope.message.type));
}

/** The stable checkpoint's window bound the tests' config gives: 2L. */
function twoWindows(cluster: Cluster): number {
  return 2 * cluster.config.watermarkWindow;
}

/** A cluster that executed `batches` batches, then lost replica `amnesic`'s storage and restarted it. */
function clusterWithAmnesic(batches: number, amnesic: number): Cluster {
  const cluster = new Cluster().start();
  for (let i = 0; i < batches; i++) cluster.run(i % 3);
  cluster.crash(amnesic);
  // Time passes while it is down: peers answer a restarted replica once per retransmission interval.
  cluster.tickAll(cluster.config.retransmitIntervalTicks);
  cluster.deliverAll();
  cluster.restart(amnesic, { lostStorage: true });
  return cluster;
}

describe('recovery from storage that could not be trusted', () => {
  it('a recovering replica sends no PREPARE, COMMIT, CHECKPOINT or VIEW-CHANGE until its stable checkpoint reaches the bound', () => {
    const cluster = clusterWithAmnesic(6, 3);
    const sentAtRestart = cluster.sent.length;
    expect(cluster.replica(3).recovering).toBe(true);
    expect(cluster.events[3]).toContainEqual({ type: 'recovery-started' });
    cluster.deliverAll();
    // The others' stable checkpoint is at 4 (K = 4): votes resume above 4 + 2L.
    const untilSeq = 4 + twoWindows(cluster);
    expect(cluster.replica(3).recoveryUntilSeq).toBe(untilSeq);
    expect(cluster.events[3]).toContainEqual({ type: 'recovery-bounded', untilSeq, reports: 3 });

    let recoveredAt = -1;
    for (let i = 0; recoveredAt < 0 && i < 3 * untilSeq; i++) {
      cluster.run(i % 3);
      if (!cluster.replica(3).recovering) recoveredAt = cluster.sent.length;
    }
    expect(recoveredAt).toBeGreaterThan(0);
    expect(cluster.replica(3).stableCheckpointSeq).toBeGreaterThanOrEqual(untilSeq);
    // It followed all along: it executed what the others committed, in order, without voting.
    expect(cluster.replica(3).lastExecutedSeq).toBe(cluster.replica(0).lastExecutedSeq);
    expect(votesFrom(cluster.sent.slice(sentAtRestart, recoveredAt), 3)).toEqual([]);

    // Recovered, it votes again, and only above the bound.
    for (let i = 0; i < 3; i++) cluster.run(i);
    const votesAfter = votesFrom(cluster.sent.slice(recoveredAt), 3);
    expect(votesAfter.filter((envelope) => envelope.message.type === 'prepare').length).toBeGreaterThan(0);
    for (const { message } of votesAfter) {
      if (message.type === 'prepare') expect(message.prepare.body.seq).toBeGreaterThan(untilSeq);
      if (message.type === 'commit') expect(message.commit.body.seq).toBeGreaterThan(untilSeq);
      if (message.type === 'checkpoint') expect(message.checkpoint.body.seq).toBeGreaterThan(untilSeq);
    }
    expect(cluster.events[3]).toContainEqual({
      type: 'recovered',
      seq: cluster.replica(3).stableCheckpointSeq,
    });
  });

  it('the bound is the highest checkpoint 2f+1 others certified plus 2L: a liar can neither forge nor lower it', () => {
    const cluster = clusterWithAmnesic(10, 3);
    // Replica 0 lies first: a STATE claiming a checkpoint at 400 that only it signed.
    const forgedVote = cluster.signAs<CheckpointBody>(0, {
      type: 'checkpoint',
      seq: 400,
      stateDigest: new Uint8Array(32),
      replica: 0,
    });
    const forged = cluster.signAs<StateBody>(0, {
      type: 'state',
      checkpointProof: [forgedVote],
      snapshot: new Uint8Array(0),
      replica: 0,
    });
    cluster.step(3, { type: 'state', state: forged });
    // ...and then its genesis "checkpoint", as if it had certified nothing.
    const genesis = cluster.signAs<StateBody>(0, {
      type: 'state',
      checkpointProof: [],
      snapshot: new Uint8Array(0),
      replica: 0,
    });
    cluster.step(3, { type: 'state', state: genesis });
    expect(cluster.replica(3).recoveryUntilSeq).toBeNull();
    cluster.deliverAll();
    // The others certified 8 (K = 4, 10 executed): the forged 400 counted for nothing.
    expect(cluster.replica(3).recoveryUntilSeq).toBe(8 + twoWindows(cluster));
  });

  it('an idle cluster pads until a recovering replica has recovered', () => {
    const cluster = clusterWithAmnesic(5, 2);
    const executedBefore = cluster.replica(0).lastExecutedSeq;
    let ticks = 0;
    while (cluster.replica(2).recovering && ticks < 2_000) {
      cluster.tickAll();
      cluster.deliverAll();
      ticks++;
    }
    expect(cluster.replica(2).recovering).toBe(false);
    const untilSeq = 4 + twoWindows(cluster);
    expect(cluster.replica(2).stableCheckpointSeq).toBeGreaterThanOrEqual(untilSeq);
    // Every slot after the last request is a null request (an empty batch) the primary padded.
    const padded = cluster.executed[0]!.filter((batch) => batch.seq > executedBefore);
    expect(padded.length).toBeGreaterThanOrEqual(untilSeq - executedBefore);
    expect(padded.every((batch) => batch.requests.length === 0)).toBe(true);
  });

  it('a replica that crashes while recovering is still recovering after the restart, with the same bound', () => {
    const cluster = clusterWithAmnesic(6, 1);
    cluster.deliverAll();
    const untilSeq = cluster.replica(1).recoveryUntilSeq;
    expect(untilSeq).toBe(4 + twoWindows(cluster));
    cluster.crash(1);
    const sentAtRestart = cluster.sent.length;
    cluster.restart(1);
    expect(cluster.replica(1).recovering).toBe(true);
    expect(cluster.replica(1).recoveryUntilSeq).toBe(untilSeq);
    cluster.run(0);
    cluster.deliverAll();
    expect(votesFrom(cluster.sent.slice(sentAtRestart), 1)).toEqual([]);
    expect(cluster.replica(1).lastExecutedSeq).toBe(cluster.replica(0).lastExecutedSeq);
  });

  it('a recovering primary proposes nothing: the others replace it, and it follows them into the new view', () => {
    const cluster = clusterWithAmnesic(3, 0);
    cluster.deliverAll();
    const sentAtRestart = cluster.sent.length;
    const request = cluster.request(1);
    cluster.submit(request, 'all');
    for (let i = 0; i < 200 && cluster.repliesFor(1, request).length === 0; i++) {
      cluster.tickAll();
      cluster.deliverAll();
    }
    expect(cluster.repliesFor(1, request)).toHaveLength(1);
    expect(cluster.replica(1).currentView).toBeGreaterThanOrEqual(1);
    expect(cluster.replica(0).currentView).toBe(cluster.replica(1).currentView);
    expect(cluster.replica(0).recovering).toBe(true);
    expect(votesFrom(cluster.sent.slice(sentAtRestart), 0)).toEqual([]);
    expect(cluster.replica(0).lastExecutedSeq).toBe(cluster.replica(1).lastExecutedSeq);
  });
});
