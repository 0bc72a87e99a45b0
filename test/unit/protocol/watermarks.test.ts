/** Watermarks and garbage collection (Castro & Liskov §4.2, §4.3). */
import { describe, expect, it } from 'vitest';
import { logMessageSeq } from '../../../src/protocol/durable.ts';
import { Cluster, isType, rejections, sentOfType, seqOf } from './harness.ts';

describe('watermarks', () => {
  it('sequence numbers outside h < n <= h + L are rejected', () => {
    const cluster = new Cluster().start();
    const backup = cluster.replica(1);
    expect(backup.lowWatermark).toBe(0);
    const L = cluster.config.watermarkWindow;
    const request = cluster.request(0);

    for (const seq of [0, L + 1, L + 100]) {
      const prePrepare = cluster.prePrepare(0, 0, seq, [request]);
      const ready = cluster.step(1, prePrepare);
      expect(rejections(ready)).toEqual(['pre-prepare:outside-watermarks']);
      expect(ready.send).toEqual([]);
      expect(ready.persist).toEqual([]);
      const digest = prePrepare.prePrepare.body.digest;
      expect(rejections(cluster.step(1, cluster.prepare(2, 0, seq, digest)))).toEqual([
        'prepare:outside-watermarks',
      ]);
      expect(rejections(cluster.step(1, cluster.commit(2, 0, seq, digest)))).toEqual([
        'commit:outside-watermarks',
      ]);
    }
    // h + L itself is inside the window.
    const atTop = cluster.step(1, cluster.prePrepare(0, 0, L, [request]));
    expect(rejections(atTop)).toEqual([]);
    expect(sentOfType(atTop, 'prepare').map((s) => s.message.prepare.body.seq)).toEqual([L]);
  });

  it('the low watermark advances when a checkpoint becomes stable and the log below it is discarded', () => {
    const cluster = new Cluster().start();
    const { checkpointInterval: K, watermarkWindow: L } = cluster.config;
    // Before: h = 0, so h + L + K is out of range.
    const probe = cluster.request(3, { t: 99 });
    expect(rejections(cluster.step(2, cluster.prePrepare(0, 0, L + K, [probe])))).toEqual([
      'pre-prepare:outside-watermarks',
    ]);

    for (let i = 0; i < K; i++) cluster.run(i % 3);
    for (let id = 0; id < cluster.n; id++) {
      const replica = cluster.replica(id);
      expect(replica.lastExecutedSeq).toBe(K);
      expect(replica.stableCheckpointSeq).toBe(K);
      expect(replica.lowWatermark).toBe(K);
      expect(cluster.events[id]).toContainEqual(
        expect.objectContaining({ type: 'checkpoint-stable', seq: K }),
      );
      // Storage dropped every log message and prepared certificate at or below h.
      const stored = cluster.storage[id]!;
      expect(stored.stableCheckpoint?.seq).toBe(K);
      expect(stored.stableCheckpoint?.proof).toHaveLength(cluster.q.quorum);
      expect(stored.log.filter((message) => logMessageSeq(message) <= K)).toEqual([]);
      expect(stored.prepared.filter((slot) => slot.certificate.prePrepare.body.seq <= K)).toEqual([]);
    }

    // The window moved: (K, K + L] is accepted, K + L + 1 is not.
    const accepted = cluster.step(2, cluster.prePrepare(0, 0, L + K, [probe]));
    expect(sentOfType(accepted, 'prepare')).toHaveLength(1);
    const beyond = cluster.step(2, cluster.prePrepare(0, 0, L + K + 1, [cluster.request(3, { t: 100 })]));
    expect(rejections(beyond)).toEqual(['pre-prepare:outside-watermarks']);
    // The discarded slots are below h: their messages are now rejected, not logged.
    const digest = cluster.executed[2]![0]!.digest;
    const old = cluster.step(2, cluster.commit(3, 0, 1, digest));
    expect(rejections(old)).toEqual(['commit:outside-watermarks']);
    expect(old.persist).toEqual([]);
  });

  it('the primary does not assign sequence numbers above h + L until a checkpoint becomes stable', () => {
    // A pipeline as deep as the window, so only the watermark stops the primary.
    const cluster = new Cluster({ config: { pipelineDepthMax: 8 } }).start();
    const L = cluster.config.watermarkWindow;
    const holdCheckpoints = { hold: isType('checkpoint') };
    for (let i = 0; i < L; i++) {
      cluster.submit(cluster.request(i % 4));
      cluster.deliverAll(holdCheckpoints);
    }
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.replica(id).lastExecutedSeq).toBe(L);
      expect(cluster.replica(id).lowWatermark).toBe(0);
    }
    const [ready] = cluster.submit(cluster.request(0));
    expect(sentOfType(ready!, 'pre-prepare')).toEqual([]);

    // CHECKPOINTs get through: h advances and the queued request gets seq L + 1.
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.replica(id).lowWatermark).toBe(L);
      expect(cluster.replica(id).lastExecutedSeq).toBe(L + 1);
    }
  });

  it('a replica votes no further than two pipelines past its execution, and casts the withheld votes as execution gets there', () => {
    // A liar primary leaves slot 1 out and proposes every slot after it up to the end of the window.
    const cluster = new Cluster({
      config: { watermarkWindow: 16, checkpointInterval: 8, pipelineDepthMax: 2 },
    });
    cluster.start();
    const L = cluster.config.watermarkWindow;
    const horizon = 2 * cluster.config.pipelineDepthMax;
    const requests = Array.from({ length: L }, (_, i) =>
      cluster.request(i % 4, { t: Math.floor(i / 4) + 1 }),
    );
    const prepared: number[] = [];
    const committed: number[] = [];
    for (let seq = 2; seq <= L; seq++) {
      const ready = cluster.step(1, cluster.prePrepare(0, 0, seq, [requests[seq - 1]!]));
      prepared.push(...sentOfType(ready, 'prepare').map((sent) => sent.message.prepare.body.seq));
      // The other backups prepare every slot: backup 1 prepares the slots it votes for on theirs.
      const digest =
        ready.persist.length > 0
          ? cluster.prePrepare(0, 0, seq, [requests[seq - 1]!]).prePrepare.body.digest
          : null;
      if (digest === null) continue;
      for (const other of [2, 3]) {
        const vote = cluster.step(1, cluster.prepare(other, 0, seq, digest));
        committed.push(...sentOfType(vote, 'commit').map((sent) => sent.message.commit.body.seq));
      }
    }
    const withinHorizon = Array.from({ length: horizon - 1 }, (_, i) => i + 2);
    expect(prepared).toEqual(withinHorizon);
    expect(committed).toEqual(withinHorizon);
    // Slots past the horizon still prepared here (on the others' votes), without a vote of its own.
    expect(cluster.replica(1).lastExecutedSeq).toBe(0);

    // Slot 1 arrives and commits: execution runs to the horizon, which moves, and the withheld
    // votes for the slots it now covers go out.
    const first = cluster.prePrepare(0, 0, 1, [requests[0]!]);
    const digest = first.prePrepare.body.digest;
    cluster.step(1, first);
    for (const other of [2, 3]) cluster.step(1, cluster.prepare(other, 0, 1, digest));
    const sent: Array<{ type: string; seq: number }> = [];
    for (const other of [0, 2, 3]) {
      for (let seq = 1; seq <= horizon; seq++) {
        const slotDigest = cluster.prePrepare(0, 0, seq, [requests[seq - 1]!]).prePrepare.body.digest;
        const ready = cluster.step(1, cluster.commit(other, 0, seq, slotDigest));
        for (const type of ['prepare', 'commit'] as const)
          for (const out of sentOfType(ready, type)) sent.push({ type, seq: seqOf(out.message)! });
      }
    }
    expect(cluster.replica(1).lastExecutedSeq).toBeGreaterThanOrEqual(horizon - 1);
    const lastExecuted = cluster.replica(1).lastExecutedSeq;
    const released = sent.filter((vote) => vote.seq > horizon).map((vote) => vote.seq);
    // Every slot up to the new horizon got its PREPARE and its COMMIT, once; none beyond.
    const newlyCovered = Array.from({ length: lastExecuted }, (_, i) => horizon + 1 + i).filter(
      (seq) => seq <= L,
    );
    expect([...new Set(released)].sort((a, b) => a - b)).toEqual(newlyCovered);
    expect(
      sent
        .filter((vote) => vote.type === 'prepare')
        .map((vote) => vote.seq)
        .sort((a, b) => a - b),
    ).toEqual(newlyCovered);
  });
});
