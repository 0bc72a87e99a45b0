/** Checkpoints (Castro & Liskov §4.3). */
import { describe, expect, it } from 'vitest';
import type { CheckpointBody, Signed } from '../../../src/protocol/messages.ts';
import { Cluster, isType, rejections, sha256 } from './harness.ts';

function sentCheckpoints(cluster: Cluster, from: number): Signed<CheckpointBody>[] {
  const seen = new Set<Signed<CheckpointBody>>();
  for (const envelope of cluster.sent) {
    if (envelope.from === from && envelope.message.type === 'checkpoint')
      seen.add(envelope.message.checkpoint);
  }
  return [...seen];
}

describe('checkpoints', () => {
  it('every K executed sequence numbers a replica sends CHECKPOINT', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    for (let seq = 1; seq <= 2 * K; seq++) {
      cluster.run(seq % 4);
      for (let id = 0; id < cluster.n; id++) {
        expect(cluster.replica(id).lastExecutedSeq).toBe(seq);
        expect(sentCheckpoints(cluster, id).map((c) => c.body.seq)).toEqual(
          seq < K ? [] : seq < 2 * K ? [K] : [K, 2 * K],
        );
      }
    }
    // Every replica certified the same state, and the digest is that of the state it stored.
    for (const seq of [K, 2 * K]) {
      const digests = cluster.replicas.map(
        (_, id) => sentCheckpoints(cluster, id).find((c) => c.body.seq === seq)!.body.stateDigest,
      );
      for (const digest of digests) expect(digest).toEqual(digests[0]);
    }
    for (let id = 0; id < cluster.n; id++) {
      const stable = cluster.storage[id]!.stableCheckpoint!;
      expect(stable.seq).toBe(2 * K);
      expect(sha256(stable.snapshot)).toEqual(stable.stateDigest);
      // Each CHECKPOINT was multicast to every other replica.
      const to = cluster.sent
        .filter((e) => e.from === id && e.message.type === 'checkpoint')
        .map((e) => e.to);
      expect(to.sort()).toEqual(
        [...Array(cluster.n).keys()]
          .filter((other) => other !== id)
          .flatMap((other) => [other, other])
          .sort(),
      );
    }
  });

  it.each([4, 7])('2f+1 matching CHECKPOINTs make it stable (n = %i)', (n) => {
    const cluster = new Cluster({ n }).start();
    const K = cluster.config.checkpointInterval;
    for (let i = 0; i < K; i++) {
      cluster.submit(cluster.request(i % 4));
      cluster.deliverAll({ hold: isType('checkpoint') });
    }
    const target = 1;
    expect(cluster.replica(target).lastExecutedSeq).toBe(K);
    expect(cluster.replica(target).stableCheckpointSeq).toBe(0);

    // Its own CHECKPOINT plus 2f-1 others: 2f, not yet stable.
    const others = [...Array(n).keys()].filter((id) => id !== target);
    const toTarget = (from: number) => (e: { from: number; to: number; message: { type: string } }) =>
      e.to === target && e.from === from && e.message.type === 'checkpoint';
    for (const from of others.slice(0, 2 * cluster.q.f - 1)) cluster.deliverWhere(toTarget(from));
    expect(cluster.replica(target).stableCheckpointSeq).toBe(0);
    expect(cluster.replica(target).lowWatermark).toBe(0);

    // The (2f+1)-th.
    const last = others[2 * cluster.q.f - 1]!;
    const ready = cluster.step(target, cluster.peek(toTarget(last))[0]!.message);
    expect(cluster.replica(target).stableCheckpointSeq).toBe(K);
    expect(cluster.replica(target).lowWatermark).toBe(K);
    expect(ready.events).toContainEqual(expect.objectContaining({ type: 'checkpoint-stable', seq: K }));
    const persisted = ready.persist.find((op) => op.type === 'stable-checkpoint');
    expect(persisted?.type).toBe('stable-checkpoint');
    if (persisted?.type === 'stable-checkpoint') {
      const signers = persisted.checkpoint.proof.map((c) => c.body.replica);
      expect(new Set(signers).size).toBe(cluster.q.quorum);
      for (const c of persisted.checkpoint.proof)
        expect(c.body.stateDigest).toEqual(persisted.checkpoint.stateDigest);
    }
  });

  it('f+1 lying CHECKPOINTs do not make a checkpoint stable', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    // Replica 3 hears nothing; replica 2 executes but gets no CHECKPOINTs.
    for (let i = 0; i < K; i++) {
      cluster.submit(cluster.request(i % 4));
      cluster.deliverAll({ drop: (e) => e.to === 3 || e.message.type === 'checkpoint' });
    }
    expect(cluster.replica(2).lastExecutedSeq).toBe(K);
    expect(cluster.replica(3).lastExecutedSeq).toBe(0);
    const lie = sha256(new TextEncoder().encode('a state nobody has'));

    // f+1 = 2 replicas sign a checkpoint for a state that does not exist.
    for (const target of [2, 3]) {
      for (const liar of [0, 1]) {
        const ready = cluster.step(target, cluster.checkpoint(liar, K, lie));
        expect(ready.persist).toEqual([]);
        expect(ready.send).toEqual([]);
      }
      const replica = cluster.replica(target);
      expect(replica.stableCheckpointSeq).toBe(0);
      expect(replica.lowWatermark).toBe(0);
      expect(replica.awaitingStateTransfer).toBe(false);
      expect(cluster.events[target]!.map((event) => event.type)).not.toContain('state-transfer-requested');
      expect(cluster.events[target]!.map((event) => event.type)).not.toContain('checkpoint-stable');
    }
    // A third vote for a different (the true) digest does not complete the liars' quorum either.
    const truth = sentCheckpoints(cluster, 2)[0]!;
    expect(truth.body.stateDigest).not.toEqual(lie);
    cluster.step(3, { type: 'checkpoint', checkpoint: truth });
    expect(cluster.replica(3).stableCheckpointSeq).toBe(0);
    expect(cluster.replica(3).awaitingStateTransfer).toBe(false);
  });

  it('a lying CHECKPOINT from one faulty replica is outvoted by 2f+1 matching ones', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    for (let i = 0; i < K; i++) {
      cluster.submit(cluster.request(i % 4));
      cluster.deliverAll({ hold: isType('checkpoint') });
    }
    const target = 2;
    const lie = sha256(new TextEncoder().encode('lie'));
    cluster.step(target, cluster.checkpoint(0, K, lie));
    cluster.deliverWhere((e) => e.to === target && e.from === 1);
    expect(cluster.replica(target).stableCheckpointSeq).toBe(0);
    cluster.deliverWhere((e) => e.to === target && e.from === 3);
    expect(cluster.replica(target).stableCheckpointSeq).toBe(K);
    expect(cluster.replica(target).stableStateDigest).not.toEqual(lie);
    expect(cluster.replica(target).stableStateDigest).toEqual(
      sentCheckpoints(cluster, target)[0]!.body.stateDigest,
    );
  });

  it('a CHECKPOINT whose state digest differs from the replica’s own at that seq is rejected, whether it comes before or after its own', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    const lie = sha256(new Uint8Array([6, 6, 6]));
    // Before replica 1 has executed seq K it cannot tell: the vote is kept.
    expect(rejections(cluster.step(1, cluster.checkpoint(3, K, lie)))).toEqual([]);
    // Executing seq K takes replica 1's own checkpoint, which shows the kept vote for a lie. (The
    // others' CHECKPOINTs are held back from it, so that it is not stable yet.)
    const toReplica1 = (envelope: { to: number; message: { type: string } }) =>
      envelope.to === 1 && envelope.message.type === 'checkpoint';
    for (let seq = 1; seq <= K; seq++) {
      cluster.submit(cluster.request(seq % 4));
      cluster.deliverAll({ hold: toReplica1 });
    }
    expect(cluster.replica(1).lastExecutedSeq).toBe(K);
    const rejected = cluster.events[1]!.flatMap((event) =>
      event.type === 'message-rejected' ? [`${event.messageType}:${event.reason}`] : [],
    );
    expect(rejected).toEqual(['checkpoint:checkpoint-state-mismatch']);
    // Once its own is there, a later lie is rejected as it arrives.
    expect(rejections(cluster.step(1, cluster.checkpoint(2, K, lie)))).toEqual([
      'checkpoint:checkpoint-state-mismatch',
    ]);
    // The honest CHECKPOINTs still make it stable: replica 3's honest one took its lie's place.
    cluster.deliverAll();
    expect(cluster.storage[1]!.stableCheckpoint?.seq).toBe(K);
  });

  it('a CHECKPOINT for the stable seq that arrives after the certificate is complete is judged against the stable digest', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    for (let seq = 1; seq <= K; seq++) {
      cluster.submit(cluster.request(seq % 4));
      cluster.deliverAll();
    }
    expect(cluster.replica(1).stableCheckpointSeq).toBe(K);
    const stableDigest = cluster.replica(1).stableStateDigest;
    // The liar (or the slowest voter) speaks last: the lie is still shown, the truth is not.
    expect(rejections(cluster.step(1, cluster.checkpoint(3, K, sha256(new Uint8Array([6, 6, 6])))))).toEqual([
      'checkpoint:checkpoint-state-mismatch',
    ]);
    expect(rejections(cluster.step(1, cluster.checkpoint(3, K, stableDigest)))).toEqual([]);
    expect(cluster.replica(1).stableStateDigest).toEqual(stableDigest);
  });

  it('CHECKPOINTs for sequence numbers that are not multiples of K are rejected', () => {
    const cluster = new Cluster().start();
    const ready = cluster.step(1, cluster.checkpoint(0, 3, sha256(new Uint8Array())));
    expect(rejections(ready)).toEqual(['checkpoint:checkpoint-not-on-interval']);
  });
});
