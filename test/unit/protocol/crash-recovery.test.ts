/** Crash recovery from the persisted state (Castro & Liskov §4; durable.ts). */
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../../src/crypto/index.ts';
import { batchDigest } from '../../../src/protocol/certificates.ts';
import {
  applyPersistOps,
  logMessageReplica,
  mustSyncBeforeSending,
  type PersistOp,
} from '../../../src/protocol/durable.ts';
import type { Message } from '../../../src/protocol/messages.ts';
import { toHex } from '../../../src/util/bytes.ts';
import { Cluster, rejections, sentOfType } from './harness.ts';

function prepareDigests(messages: Message[]): string[] {
  return messages.flatMap((message) =>
    message.type === 'prepare' ? [toHex(message.prepare.body.digest)] : [],
  );
}

describe('crash recovery', () => {
  it('after a restart from persisted state a replica never signs a conflicting message', () => {
    const cluster = new Cluster().start();
    const a = cluster.request(0);
    const b = cluster.request(1);
    const [primaryReady] = cluster.submit(a, 0);
    const prePrepare = sentOfType(primaryReady!, 'pre-prepare')[0]!.message;
    const digest = toHex(prePrepare.prePrepare.body.digest);

    // Backup 1 accepts (0, 1, d) and sends PREPARE, then crashes.
    cluster.deliverWhere((e) => e.to === 1 && e.message.type === 'pre-prepare');
    expect(prepareDigests(cluster.sent.filter((e) => e.from === 1).map((e) => e.message))).toEqual([
      digest,
      digest,
      digest,
    ]);
    cluster.crash(1);

    // Restarted from its storage alone, it resends only what it already signed.
    const started = cluster.restart(1);
    expect(prepareDigests(started.send.map((s) => s.message)).every((d) => d === digest)).toBe(true);
    // A conflicting PRE-PREPARE (0, 1, d') from a faulty primary: no PREPARE for d'.
    const conflicting = cluster.prePrepare(0, 0, 1, [b]);
    const ready = cluster.step(1, conflicting);
    expect(sentOfType(ready, 'prepare')).toEqual([]);
    expect(rejections(ready)).toEqual(['pre-prepare:conflicting-pre-prepare']);
    const everSigned = prepareDigests(cluster.sent.filter((e) => e.from === 1).map((e) => e.message));
    expect(new Set(everSigned)).toEqual(new Set([digest]));

    // And it still completes the original request with the others.
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.executed[id]!.map((batch) => batch.requests[0]!.request)).toEqual([a]);
    }
  });

  it('after a restart a replica that sent VIEW-CHANGE for v+1 stays in v+1 and rejects view-v messages', () => {
    const cluster = new Cluster().start();
    const request = cluster.request(0);
    cluster.submit(request, 2);
    cluster.drop(() => true);
    for (let i = 0; i < cluster.config.viewChangeTimeoutTicks; i++) cluster.tick(2);
    expect(cluster.replica(2).currentView).toBe(1);
    const viewChange = cluster.sent.find((e) => e.from === 2 && e.message.type === 'view-change')!.message;
    cluster.crash(2);

    const started = cluster.restart(2);
    expect(cluster.replica(2).currentView).toBe(1);
    expect(cluster.replica(2).currentStatus).toBe('view-change');
    // It resends its VIEW-CHANGE byte for byte rather than signing a new one.
    const resent = sentOfType(started, 'view-change').map((s) => s.message);
    for (let i = 0; i < 3 * cluster.config.retransmitIntervalTicks; i++) {
      resent.push(...sentOfType(cluster.tick(2), 'view-change').map((s) => s.message));
    }
    expect(resent.length).toBeGreaterThan(0);
    for (const message of resent) expect(message).toEqual(viewChange);
    // View-0 ordering messages are refused.
    const ready = cluster.step(2, cluster.prePrepare(0, 0, 1, [request]));
    expect(rejections(ready)).toEqual(['pre-prepare:old-view']);
    expect(ready.send.filter((s) => s.message.type === 'prepare')).toEqual([]);
  });

  it('a restarted replica re-executes committed batches from its stable checkpoint', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    for (let i = 0; i < K + 2; i++) cluster.run(i % 4);
    expect(cluster.storage[2]!.stableCheckpoint?.seq).toBe(K);
    const before = cluster.ledgers[2]!.snapshot();
    cluster.crash(2);

    const started = cluster.restart(2);
    const replica = cluster.replica(2);
    expect(replica.stableCheckpointSeq).toBe(K);
    // Seqs up to K come from the checkpoint; K+1 and K+2 are re-executed from the log.
    expect(started.executed.map((batch) => batch.seq)).toEqual([K + 1, K + 2]);
    expect(replica.lastExecutedSeq).toBe(K + 2);
    expect(cluster.ledgers[2]!.snapshot()).toEqual(before);
    expect(cluster.ledgers[2]!.snapshot()).toEqual(cluster.ledgers[0]!.snapshot());

    // It keeps going with the others.
    cluster.deliverAll();
    cluster.run(0);
    expect(replica.lastExecutedSeq).toBe(K + 3);
    expect(cluster.ledgers[2]!.snapshot()).toEqual(cluster.ledgers[0]!.snapshot());
  });

  it('a restarted replica without a stable checkpoint re-executes from genesis', () => {
    const cluster = new Cluster().start();
    cluster.run(0);
    cluster.run(1);
    cluster.crash(3);
    const started = cluster.restart(3);
    expect(started.executed.map((batch) => batch.seq)).toEqual([1, 2]);
    expect(cluster.ledgers[3]!.snapshot()).toEqual(cluster.ledgers[0]!.snapshot());
    // Re-execution answers the same (cached) results, so clients see consistent replies.
    expect(started.replies.map((r) => r.reply.result)).toEqual(
      cluster.replies[0]!.slice(0, 2).map((r) => r.reply.result),
    );
  });

  it('a replica that crashed after persisting but before sending resends exactly what it persisted', () => {
    const cluster = new Cluster().start();
    const [primaryReady] = cluster.submit(cluster.request(0), 0);
    const prePrepare = sentOfType(primaryReady!, 'pre-prepare')[0]!.message;
    cluster.drop((e) => e.to === 1);
    // The step's persist ops reach storage, then the process dies before sending anything.
    const lost = cluster.replica(1).step(prePrepare);
    applyPersistOps(cluster.storage[1]!, lost.persist);
    const unsent = sentOfType(lost, 'prepare')[0]!.message;
    cluster.crash(1);

    const started = cluster.restart(1);
    expect(sentOfType(started, 'prepare').map((s) => s.message)).toEqual([unsent]);
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) expect(cluster.executedSeqs(id)).toEqual([1]);
  });

  it('a restarted primary never assigns a sequence number twice', () => {
    const cluster = new Cluster().start();
    const a = cluster.request(0);
    const b = cluster.request(1);
    cluster.submit(a, 0);
    cluster.submit(b, 0);
    cluster.crash(0);
    const started = cluster.restart(0);
    // It resends its PRE-PREPAREs for seqs 1 and 2 unchanged.
    expect(sentOfType(started, 'pre-prepare').map((s) => s.message.batch)).toEqual([[a], [b]]);
    const c = cluster.request(2);
    const [ready] = cluster.submit(c, 0);
    expect(sentOfType(ready!, 'pre-prepare').map((s) => s.message.prePrepare.body.seq)).toEqual([3]);
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.executed[id]!.map((batch) => [batch.seq, batch.requests[0]!.request])).toEqual([
        [1, a],
        [2, b],
        [3, c],
      ]);
    }
  });

  it('prepared certificates survive a restart and go into the next VIEW-CHANGE', () => {
    const cluster = new Cluster().start();
    const request = cluster.request(0);
    cluster.submit(request, 'all');
    cluster.deliverAll({ drop: (e) => e.message.type === 'commit' });
    cluster.crash(2);
    cluster.restart(2);
    cluster.deliverAll({ drop: (e) => e.message.type === 'commit' });
    // The others time out; replica 2 (nothing pending after the restart) joins them.
    for (const id of [0, 1, 3])
      for (let i = 0; i < cluster.config.viewChangeTimeoutTicks; i++) cluster.tick(id);
    cluster.deliverAll({ drop: (e) => e.message.type === 'commit' && e.message.commit.body.view === 0 });
    const viewChange = cluster.sent.find((e) => e.from === 2 && e.message.type === 'view-change')!.message;
    if (viewChange.type !== 'view-change') throw new Error('unreachable');
    expect(
      viewChange.viewChange.body.prepared.map((c) => [
        c.prePrepare.body.seq,
        toHex(c.prePrepare.body.digest),
      ]),
    ).toEqual([[1, toHex(batchDigest([request], sha256))]]);
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.replica(id).currentView).toBe(1);
      expect(cluster.executed[id]!.map((batch) => [batch.seq, batch.view])).toEqual([[1, 1]]);
    }
  });

  it('a new primary restarted after sending NEW-VIEW keeps that NEW-VIEW and does not sign another', () => {
    const cluster = new Cluster().start();
    const request = cluster.request(0);
    cluster.submit(request, 'all');
    cluster.deliverAll({ drop: (e) => e.message.type === 'commit' });
    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    // Replica 1 (primary of view 1) collects the VIEW-CHANGEs and sends NEW-VIEW, which is lost.
    cluster.deliverAll({
      drop: (e) => e.message.type === 'commit' || e.message.type === 'new-view' || e.to !== 1,
    });
    const first = cluster.sent.filter((e) => e.message.type === 'new-view');
    expect(first.length).toBeGreaterThanOrEqual(cluster.n - 1);
    for (const envelope of first) expect(envelope.message).toEqual(first[0]!.message);
    cluster.crash(1);
    cluster.restart(1);
    expect(cluster.replica(1).currentView).toBe(1);
    expect(cluster.replica(1).currentStatus).toBe('normal');
    // The others' VIEW-CHANGEs for view 1 reach it again: it answers with the same NEW-VIEW.
    cluster.tickAll(cluster.config.retransmitIntervalTicks);
    cluster.deliverAll({ drop: (e) => e.message.type === 'commit' && e.message.commit.body.view === 0 });
    const newViews = cluster.sent.filter((e) => e.message.type === 'new-view').map((e) => e.message);
    expect(newViews.length).toBeGreaterThan(first.length);
    for (const message of newViews) expect(message).toEqual(first[0]!.message);
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.replica(id).currentView).toBe(1);
      expect(cluster.repliesFor(id, request)).toHaveLength(1);
    }
  });

  it("a step that persists what the replica signed is synced before sending; one that only stores peers' ordering messages need not be", () => {
    const cluster = new Cluster().start();
    const synced = (id: number, ready: { persist: PersistOp[] }) =>
      ready.persist.some((op) => mustSyncBeforeSending(op, id));

    // The primary's PRE-PREPARE, and a backup's step that stores it and signs its PREPARE: synced.
    const [primaryReady] = cluster.submit(cluster.request(0), 0);
    expect(sentOfType(primaryReady!, 'pre-prepare')).toHaveLength(1);
    expect(synced(0, primaryReady!)).toBe(true);
    const [prePrepare] = cluster.drop((e) => e.to === 1 && e.message.type === 'pre-prepare');
    const backupReady = cluster.step(1, prePrepare!.message);
    expect(sentOfType(backupReady, 'prepare')).toHaveLength(1);
    expect(synced(1, backupReady)).toBe(true);

    // Backup 2's PREPARE reaching backup 3 before the PRE-PREPARE is stored and answered by nothing
    // this replica signs: that step may skip the fsync.
    cluster.deliverWhere((e) => e.to === 2 && e.message.type === 'pre-prepare');
    const [peerPrepare] = cluster.drop((e) => e.from === 2 && e.to === 3 && e.message.type === 'prepare');
    const storeOnly = cluster.step(3, peerPrepare!.message);
    expect(storeOnly.persist.length).toBeGreaterThan(0);
    expect(storeOnly.send).toEqual([]);
    expect(synced(3, storeOnly)).toBe(false);

    // Over a run through a checkpoint: every op is synced except peers' ordering messages.
    const persisted: Array<{ id: number; op: PersistOp }> = [];
    const apply = cluster.apply.bind(cluster);
    cluster.apply = (id, ready) => {
      for (const op of ready.persist) persisted.push({ id, op });
      return apply(id, ready);
    };
    cluster.deliverAll();
    for (let i = 1; i < cluster.config.checkpointInterval; i++) {
      cluster.submit(cluster.request(i % 3));
      cluster.deliverAll();
    }
    expect(cluster.replica(1).stableCheckpointSeq).toBe(cluster.config.checkpointInterval);
    const types = new Set(persisted.map(({ op }) => op.type));
    expect(types).toEqual(new Set(['log', 'prepared', 'stable-checkpoint']));
    for (const { id, op } of persisted) {
      const ownMessage = op.type === 'log' && logMessageReplica(op.message) === id;
      expect(mustSyncBeforeSending(op, id)).toBe(op.type !== 'log' || ownMessage);
    }
    expect(persisted.some(({ id, op }) => op.type === 'log' && !mustSyncBeforeSending(op, id))).toBe(true);
  });
});
