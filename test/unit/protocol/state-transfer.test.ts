/** State transfer (Castro & Liskov §4.3; Castro's thesis §5.3.2). */
import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../../src/codec/cbor.ts';
import { Ledger } from '../../../src/ledger/index.ts';
import type { Message, StateBody } from '../../../src/protocol/messages.ts';
import { Cluster, isType, rejections, sentOfType, sha256 } from './harness.ts';

type StateMessage = Extract<Message, { type: 'state' }>;

/** A cluster where replica 3 missed seqs 1..K while the others made checkpoint K stable. */
function laggingReplica(): Cluster {
  const cluster = new Cluster().start();
  const K = cluster.config.checkpointInterval;
  for (let i = 0; i < K; i++) {
    cluster.submit(cluster.request(i % 3));
    cluster.deliverAll({ drop: (e) => e.to === 3 });
  }
  for (const id of [0, 1, 2]) expect(cluster.replica(id).stableCheckpointSeq).toBe(K);
  expect(cluster.replica(3).lastExecutedSeq).toBe(0);
  return cluster;
}

describe('state transfer', () => {
  it('a replica behind a stable checkpoint fetches the state and accepts it only if its digest matches 2f+1 signed CHECKPOINTs', () => {
    const cluster = laggingReplica();
    const K = cluster.config.checkpointInterval;
    const lagging = cluster.replica(3);
    const proof = cluster.storage[0]!.stableCheckpoint!.proof;
    const trueDigest = proof[0]!.body.stateDigest;

    // It learns of the stable checkpoint from the 2f+1 CHECKPOINTs and asks for the state.
    let fetchSent = false;
    for (const checkpoint of proof) {
      const ready = cluster.step(3, { type: 'checkpoint', checkpoint });
      fetchSent ||= sentOfType(ready, 'fetch-state').length > 0;
    }
    expect(fetchSent).toBe(true);
    expect(lagging.awaitingStateTransfer).toBe(true);
    expect(lagging.lowWatermark).toBe(K);
    expect(lagging.lastExecutedSeq).toBe(0);
    expect(cluster.events[3]).toContainEqual({ type: 'state-transfer-requested', seq: K });

    // Up-to-date replicas answer FETCH-STATE with STATE.
    cluster.deliverWhere(isType('fetch-state'));
    const answers = cluster.peek((e) => e.to === 3 && e.message.type === 'state');
    expect(answers.map((e) => e.from).sort()).toEqual([0, 1, 2]);
    const genuine = answers[0]!.message as StateMessage;
    const server = answers[0]!.from;

    // A STATE whose snapshot was replaced (the server gives client 0 a fortune) is rejected.
    const richLedger = Ledger.fromGenesis({
      accounts: cluster.clients.map((client, index) => ({
        address: client.publicKey,
        balance: index === 0 ? 1_000_000 : 1_000,
      })),
    });
    const forgedSnapshot = encodeCanonical({ app: richLedger.snapshot(), clients: [] });
    const forgeries: Array<{ body: StateBody; reason: string }> = [
      {
        body: { ...genuine.state.body, snapshot: forgedSnapshot },
        reason: 'state:snapshot-digest-mismatch',
      },
      // f+1 CHECKPOINTs signed for the forged state are not a certificate.
      {
        body: {
          ...genuine.state.body,
          snapshot: forgedSnapshot,
          checkpointProof: [0, 1].map((id) => cluster.checkpoint(id, K, sha256(forgedSnapshot)).checkpoint),
        },
        reason: 'state:checkpoint-proof-too-small',
      },
      // 2f+1 CHECKPOINTs that do not all certify the same digest are not a certificate.
      {
        body: {
          ...genuine.state.body,
          snapshot: forgedSnapshot,
          checkpointProof: [
            ...[0, 1].map((id) => cluster.checkpoint(id, K, sha256(forgedSnapshot)).checkpoint),
            proof[2]!,
          ],
        },
        reason: 'state:checkpoint-proof-mismatch',
      },
      // The same signer counted twice is not 2f+1 replicas.
      {
        body: {
          ...genuine.state.body,
          snapshot: forgedSnapshot,
          checkpointProof: [0, 1, 1].map(
            (id) => cluster.checkpoint(id, K, sha256(forgedSnapshot)).checkpoint,
          ),
        },
        reason: 'state:checkpoint-proof-duplicate-signer',
      },
    ];
    for (const { body, reason } of forgeries) {
      const ready = cluster.step(3, { type: 'state', state: cluster.signAs(server, body) });
      expect(rejections(ready)).toEqual([reason]);
      expect(ready.persist).toEqual([]);
      expect(lagging.lastExecutedSeq).toBe(0);
      expect(lagging.awaitingStateTransfer).toBe(true);
      expect(cluster.ledgers[3]!.balanceOf(cluster.clients[0]!.publicKey)).toBe(1_000);
    }

    // The genuine STATE is accepted: lastExecutedSeq jumps to the checkpoint.
    const ready = cluster.step(3, genuine);
    expect(rejections(ready)).toEqual([]);
    expect(ready.events).toContainEqual({ type: 'state-transferred', seq: K });
    expect(lagging.lastExecutedSeq).toBe(K);
    expect(lagging.awaitingStateTransfer).toBe(false);
    expect(lagging.stableStateDigest).toEqual(trueDigest);
    expect(cluster.ledgers[3]!.snapshot()).toEqual(cluster.ledgers[0]!.snapshot());
    expect(cluster.storage[3]!.stableCheckpoint?.seq).toBe(K);

    // It takes part in ordering again: the next request executes everywhere at K + 1.
    cluster.deliverAll();
    const next = cluster.run(0);
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.replica(id).lastExecutedSeq).toBe(K + 1);
      expect(cluster.repliesFor(id, next)).toHaveLength(1);
      expect(cluster.ledgers[id]!.snapshot()).toEqual(cluster.ledgers[0]!.snapshot());
    }
  });

  it('the exactly-once reply cache travels with the state', () => {
    const cluster = laggingReplica();
    const proof = cluster.storage[0]!.stableCheckpoint!.proof;
    for (const checkpoint of proof) cluster.step(3, { type: 'checkpoint', checkpoint });
    cluster.deliverAll();
    expect(cluster.replica(3).lastExecutedSeq).toBe(cluster.config.checkpointInterval);
    // Client 0's last executed request (t = 2 at seq 4) is answered from the transferred cache.
    const last = cluster.request(0, { t: 2 });
    const [ready] = cluster.submit(last, 3);
    expect(ready!.executed).toEqual([]);
    expect(ready!.replies.map((r) => r.reply.t)).toEqual([2]);
    expect(ready!.replies[0]!.reply.result).toEqual(
      cluster.replies[0]!.find((r) => r.reply.t === 2 && r.reply.seq === 4)!.reply.result,
    );
  });

  it('a replica whose log still covers a stable checkpoint keeps executing instead of fetching state', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    // Replica 3 gets every PRE-PREPARE and PREPARE for 1..K; the COMMITs to it are delayed.
    for (let i = 0; i < K; i++) {
      cluster.submit(cluster.request(i % 3));
      cluster.deliverAll({ hold: (e) => e.to === 3 && e.message.type === 'commit' });
    }
    expect(cluster.replica(3).lastExecutedSeq).toBe(0);
    // The CHECKPOINTs of the others certify K, but it does not jump: it can still get there.
    expect(cluster.delivered.filter((e) => e.to === 3 && e.message.type === 'checkpoint')).toHaveLength(3);
    expect(cluster.events[3]!.map((event) => event.type)).not.toContain('state-transfer-requested');
    expect(cluster.replica(3).awaitingStateTransfer).toBe(false);
    expect(cluster.replica(3).stableCheckpointSeq).toBe(0);

    // The delayed COMMITs arrive: it executes 1..K itself and the checkpoint becomes stable.
    cluster.deliverAll();
    expect(cluster.executedSeqs(3)).toEqual([1, 2, 3, 4]);
    expect(cluster.replica(3).stableCheckpointSeq).toBe(K);
    expect(cluster.events[3]!.map((event) => event.type)).not.toContain('state-transfer-requested');
  });

  it('a replica whose execution stalls below a stable checkpoint fetches the state within two retransmission intervals', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    const R = cluster.config.retransmitIntervalTicks;
    for (let i = 0; i < K; i++) {
      cluster.submit(cluster.request(i % 3));
      cluster.deliverAll({ drop: (e) => e.to === 3 && e.message.type === 'commit' });
    }
    // Once the others' checkpoint is stable their log is gone: its retransmissions go unanswered.
    // The peers' CHECKPOINTs show it is behind, so it asks (FETCH-STATE) and is sent the state.
    let ticks = 0;
    while (ticks < 10 * R && cluster.replica(3).lastExecutedSeq < K) {
      cluster.tick(3);
      ticks++;
      cluster.deliverAll();
    }
    expect(ticks).toBeLessThanOrEqual(2 * R);
    expect(cluster.events[3]).toContainEqual({ type: 'state-transferred', seq: K });
    expect(cluster.replica(3).lastExecutedSeq).toBe(K);
    expect(cluster.ledgers[3]!.snapshot()).toEqual(cluster.ledgers[0]!.snapshot());
  });

  it('a replica that sees a CHECKPOINT beyond its execution asks for what it missed at the next retransmission, even in an idle cluster', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    const R = cluster.config.retransmitIntervalTicks;
    // Replica 3 misses everything of the first K requests; then the cluster is idle.
    for (let i = 0; i < K; i++) {
      cluster.submit(cluster.request(i % 3));
      cluster.deliverAll({ drop: (e) => e.to === 3 });
    }
    expect(cluster.replica(3).lastExecutedSeq).toBe(0);
    // The others resend their latest CHECKPOINT every interval; replica 3 hears one.
    for (let i = 0; i < R; i++) cluster.tick(0);
    cluster.deliverWhere((e) => e.to === 3 && e.message.type === 'checkpoint');
    let asked: unknown[] = [];
    for (let i = 0; i < R; i++) asked = asked.concat(sentOfType(cluster.tick(3), 'fetch-state'));
    expect(asked.length).toBeGreaterThan(0);
    cluster.deliverAll();
    expect(cluster.replica(3).lastExecutedSeq).toBe(K);
  });

  it('a pending request that completes through state transfer does not trigger a view change', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    // Replica 3 is cut off, except that the client also sent it its last request.
    for (let i = 0; i < K; i++) {
      const request = cluster.request(i % 3);
      cluster.submit(request, i === K - 1 ? [0, 3] : 0);
      cluster.deliverAll({ drop: (e) => e.to === 3 || e.from === 3 });
    }
    expect(cluster.replica(3).pendingRequestCount).toBe(1);
    for (const checkpoint of cluster.storage[0]!.stableCheckpoint!.proof) {
      cluster.step(3, { type: 'checkpoint', checkpoint });
    }
    cluster.deliverAll();
    expect(cluster.replica(3).lastExecutedSeq).toBe(K);
    expect(cluster.replica(3).pendingRequestCount).toBe(0);
    // Its view-change timer, started for that request, expires with nothing pending.
    for (let i = 0; i < 2 * cluster.config.viewChangeTimeoutMaxTicks; i++) {
      cluster.tick(3);
      cluster.deliverAll();
    }
    expect(cluster.replica(3).currentView).toBe(0);
    expect(cluster.replica(3).currentStatus).toBe('normal');
    expect(cluster.sent.filter((e) => e.message.type === 'view-change')).toEqual([]);
  });
});

describe('catching up a replica stuck alone in a newer view', () => {
  it('an idle primary pads to the next checkpoint with null requests when a lagging replica asks for a newer view, so the laggard catches up by state transfer', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    // Replicas 0-2 execute two requests that replica 3 never hears of.
    for (let i = 0; i < 2; i++) {
      cluster.submit(cluster.request(i));
      cluster.deliverAll({ drop: (e) => e.to === 3 });
    }
    expect(cluster.replica(0).lastExecutedSeq).toBe(2);
    expect(cluster.replica(3).lastExecutedSeq).toBe(0);

    // Replica 3 alone times out on a request and moves to view 1; nobody else follows (f+1 rule).
    cluster.submit(cluster.request(2), 3);
    for (let i = 0; i < cluster.config.viewChangeTimeoutTicks; i++) cluster.tick(3);
    expect(cluster.replica(3).currentStatus).toBe('view-change');
    cluster.drop((e) => e.message.type === 'request');
    cluster.deliverAll();
    expect(cluster.replica(0).currentView).toBe(0);

    // The others are idle. After a retransmission interval the primary fills seqs 3..K with empty
    // batches; checkpoint K becomes stable and replica 3, still in its view change, fetches it.
    let padded = 0;
    for (let round = 0; round < 4 * cluster.config.retransmitIntervalTicks; round++) {
      for (const id of [0, 1, 2, 3]) {
        const ready = cluster.tick(id);
        if (id === 0)
          padded += sentOfType(ready, 'pre-prepare').filter((m) => m.message.batch.length === 0).length;
      }
      cluster.deliverAll();
    }
    expect(padded).toBe(K - 2);
    for (const id of [0, 1, 2]) expect(cluster.replica(id).stableCheckpointSeq).toBe(K);
    expect(cluster.replica(3).lastExecutedSeq).toBe(K);
    expect(cluster.replica(3).stableStateDigest).toEqual(cluster.replica(0).stableStateDigest);
    expect(cluster.events[3]).toContainEqual({ type: 'state-transferred', seq: K });
  });

  it('a primary pads nothing while no replica lags, and never beyond the next checkpoint', () => {
    const cluster = new Cluster().start();
    cluster.submit(cluster.request(0));
    cluster.deliverAll();
    for (let round = 0; round < 10 * cluster.config.retransmitIntervalTicks; round++) {
      const ready = cluster.tick(0);
      expect(sentOfType(ready, 'pre-prepare')).toEqual([]);
      cluster.deliverAll();
    }
    expect(cluster.replica(0).lastExecutedSeq).toBe(1);
  });
});

describe('executing what a view this replica left committed', () => {
  /** Replicas 0-2 execute seq 1 in view 0 without replica 3, which then times out alone into view 1. */
  function leftBehindInANewerView() {
    const cluster = new Cluster().start();
    const request = cluster.request(0);
    cluster.submit(request);
    cluster.deliverAll({ drop: (e) => e.to === 3 });
    expect(cluster.replica(0).lastExecutedSeq).toBe(1);
    const seqOne = cluster.sent.filter(
      (e) =>
        e.to === 1 &&
        (e.message.type === 'pre-prepare' || e.message.type === 'commit') &&
        (e.message.type === 'pre-prepare' ? e.message.prePrepare.body.seq : e.message.commit.body.seq) === 1,
    );
    cluster.submit(cluster.request(1), 3);
    for (let i = 0; i < cluster.config.viewChangeTimeoutTicks; i++) cluster.tick(3);
    expect(cluster.replica(3).currentView).toBe(1);
    expect(cluster.replica(3).currentStatus).toBe('view-change');
    cluster.drop(() => true);
    return { cluster, request, seqOne };
  }

  it('a replica that left view v executes a slot of v from 2f+1 matching COMMITs and its batch, without voting in v', () => {
    const { cluster, seqOne } = leftBehindInANewerView();
    const prePrepare = seqOne.find((e) => e.message.type === 'pre-prepare')!.message;
    const commits = [0, 2].map(
      (id) => seqOne.find((e) => e.message.type === 'commit' && e.from === id)!.message,
    );
    const digest = prePrepare.type === 'pre-prepare' ? prePrepare.prePrepare.body.digest : new Uint8Array();
    const sentBefore = cluster.sent.length;

    // The batch and two COMMITs are not a certificate.
    expect(rejections(cluster.step(3, prePrepare))).toEqual(['pre-prepare:old-view']);
    for (const commit of commits) expect(cluster.step(3, commit).executed).toEqual([]);
    expect(cluster.replica(3).lastExecutedSeq).toBe(0);
    // A COMMIT of a third replica for the digest is: seq 1 executes, in view 0's order.
    const ready = cluster.step(3, cluster.commit(2, 0, 1, digest));
    expect(ready.executed).toEqual([]); // replica 2's again: one COMMIT per sender
    const third = cluster.step(3, cluster.commit(1, 0, 1, digest));
    expect(third.executed.map((batch) => [batch.seq, batch.view])).toEqual([[1, 0]]);
    expect(cluster.replica(3).lastExecutedSeq).toBe(1);
    expect(sha256(cluster.ledgers[3]!.snapshot())).toEqual(sha256(cluster.ledgers[0]!.snapshot()));
    // It signed nothing for view 0: it is still in its view change for view 1.
    const signedSince = cluster.sent.slice(sentBefore).filter((e) => e.from === 3);
    for (const { message } of signedSince) {
      expect(['pre-prepare', 'prepare', 'commit']).not.toContain(message.type);
    }
    expect(cluster.replica(3).currentView).toBe(1);
    expect(cluster.replica(3).currentStatus).toBe('view-change');
  });

  it('a FETCH-STATE is answered, for each committed slot, with the whole commit certificate, so the asker catches up even if other signers left the view too', () => {
    const { cluster } = leftBehindInANewerView();
    // Replica 3 asks (a peer's CHECKPOINT or FETCH-STATE would make it); only replica 1 answers.
    cluster.step(3, cluster.checkpoint(1, cluster.config.checkpointInterval, sha256(new Uint8Array())));
    // (Peers answer each replica at most once per retransmission interval: let one pass.)
    for (let i = 0; i < cluster.config.retransmitIntervalTicks; i++)
      for (const id of [0, 1, 2, 3]) cluster.tick(id);
    cluster.drop((e) => !(e.from === 3 && e.message.type === 'fetch-state'));
    const fetchStates = cluster.peek((e) => e.from === 3 && e.message.type === 'fetch-state');
    expect(fetchStates.length).toBeGreaterThan(0);
    cluster.deliverWhere(
      (e) => e.from === 3 && e.message.type === 'fetch-state' && (e.to === 0 || e.to === 1),
    );
    const answer = cluster.peek((e) => e.from === 1 && e.to === 3);
    // Replica 1's own COMMIT and 2f of the others' for seq 1.
    const commitSigners = answer
      .filter((e) => e.message.type === 'commit')
      .map((e) => (e.message.type === 'commit' ? e.message.commit.body.replica : -1))
      .sort();
    expect(commitSigners).toEqual([0, 1, 2]);
    // The batch comes from the primary's answer (its PRE-PREPARE); replica 1's answer has the rest.
    const batch = cluster.peek((e) => e.from === 0 && e.to === 3 && e.message.type === 'pre-prepare');
    expect(batch).toHaveLength(1);
    cluster.drop(() => true);
    cluster.step(3, batch[0]!.message);
    expect(cluster.replica(3).lastExecutedSeq).toBe(0);
    for (const envelope of answer) cluster.step(3, envelope.message);
    expect(cluster.replica(3).lastExecutedSeq).toBe(1);
  });
});
