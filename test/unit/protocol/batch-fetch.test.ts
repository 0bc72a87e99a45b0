/**
 * Digest-only certificates (Castro's thesis, ch. 6): VIEW-CHANGE and NEW-VIEW carry PRE-PREPARE
 * headers and PREPAREs, never batches; a replica that must prepare a digest whose batch it lacks
 * fetches the batch from the replicas that vouched for it, and the digest authenticates the bytes.
 */
import { describe, expect, it } from 'vitest';
import { REQUEST_WIRE_BYTES_MAX } from '../../../src/protocol/message-bounds.ts';
import {
  type Message,
  type RequestBody,
  requestWireBytes,
  type Signed,
  signBody,
} from '../../../src/protocol/messages.ts';
import { signedParts } from '../../../src/protocol/verify.ts';
import { toHex } from '../../../src/util/bytes.ts';
import {
  batchDigest,
  Cluster,
  isType,
  preparedButNotCommitted,
  primaryEquivocatesAtSeqOne,
  rejections,
  sentOfType,
  sha256,
} from './harness.ts';

/**
 * Replica 0, the primary of view 0, is faulty: it pre-prepares request a at seq 1 for replicas 1
 * and 2, and request b for replica 3. 1 and 2 prepare a; 3 never sees a's batch. They all time out
 * and move to view 1, whose NEW-VIEW re-proposes a's digest at seq 1: replica 3 must fetch a.
 */
function replicaThreeLacksTheBatch(options: { holdBatches: boolean }) {
  const cluster = new Cluster().start();
  const { a, b } = primaryEquivocatesAtSeqOne(cluster);
  cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
  cluster.deliverAll(options.holdBatches ? { hold: isType('batch') } : {});
  return { cluster, a, b, digestOfA: batchDigest([a], sha256) };
}

/** Distinct PREPAREs `replica` signed for (view, seq) (a broadcast is one, whatever its fan-out). */
function preparesFrom(cluster: Cluster, replica: number, view: number, seq: number): number {
  const signed = new Set<string>();
  for (const e of cluster.sent) {
    if (e.from !== replica || e.message.type !== 'prepare') continue;
    const { body, bytes } = e.message.prepare;
    if (body.view === view && body.seq === seq) signed.add(toHex(bytes));
  }
  return signed.size;
}

/** A signed request of client `index` with an operation of `opBytes` bytes (the ledger rejects it; it is still ordered). */
function largeRequest(cluster: Cluster, index: number, opBytes: number): Signed<RequestBody> {
  const client = cluster.clients[index]!;
  client.t++;
  const body: RequestBody = {
    type: 'request',
    client: client.publicKey,
    t: client.t,
    op: new Uint8Array(opBytes),
  };
  return signBody(body, (bytes) => client.signer.sign(bytes));
}

describe('digest-only certificates', () => {
  it('a VIEW-CHANGE carries PRE-PREPARE headers and PREPAREs of its prepared slots, never their batches', () => {
    const cluster = new Cluster().start();
    const request = preparedButNotCommitted(cluster);
    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    const sent = cluster.sent.find((e) => e.from === 1 && e.message.type === 'view-change');
    if (sent?.message.type !== 'view-change') throw new Error('replica 1 sent no VIEW-CHANGE');
    const message = sent.message;
    const certificates = message.viewChange.body.prepared;
    expect(certificates.map((c) => toHex(c.prePrepare.body.digest))).toEqual([
      toHex(batchDigest([request], sha256)),
    ]);
    const signedTypes = new Set([...signedParts(message)].map((part) => part.body.type));
    expect(signedTypes).toEqual(new Set(['view-change', 'pre-prepare', 'prepare']));
  });

  it('a replica lacking the batch of a NEW-VIEW slot sends no PREPARE for it until it has fetched the batch from the replicas that vouched for it', () => {
    const { cluster, a, digestOfA } = replicaThreeLacksTheBatch({ holdBatches: true });
    for (const id of [1, 2, 3]) expect(cluster.replica(id).currentView).toBe(1);
    expect(cluster.replica(3).awaitedBatchCount).toBe(1);
    // It asked f+1 vouchers (replicas whose VIEW-CHANGE or certificate names the digest) at once.
    const asked = cluster.sent.filter((e) => e.from === 3 && e.message.type === 'fetch-batch');
    expect(asked.length).toBe(cluster.q.weak);
    for (const { message } of asked) {
      if (message.type !== 'fetch-batch') throw new Error('unreachable');
      expect(message.fetchBatch.body.seq).toBe(1);
      expect(toHex(message.fetchBatch.body.digest)).toBe(toHex(digestOfA));
    }
    expect(preparesFrom(cluster, 3, 1, 1)).toBe(0);
    for (const id of [1, 2, 3]) expect(cluster.replica(id).lastExecutedSeq).toBe(0);

    // A batch with another digest is not taken, whoever sends it.
    const forged = cluster.step(3, { type: 'batch', seq: 1, batch: [cluster.request(2)] });
    expect(rejections(forged)).toEqual(['batch:digest-mismatch']);
    expect(preparesFrom(cluster, 3, 1, 1)).toBe(0);

    // The vouchers' answers carry a's batch: replica 3 prepares, and the slot commits everywhere.
    cluster.deliverAll();
    expect(cluster.replica(3).awaitedBatchCount).toBe(0);
    expect(preparesFrom(cluster, 3, 1, 1)).toBe(1);
    expect(cluster.events[3]).toContainEqual({ type: 'batch-fetched', seq: 1 });
    for (const id of [1, 2, 3]) {
      const first = cluster.executed[id]![0]!;
      expect([first.seq, first.view, first.requests.map((r) => r.request)]).toEqual([1, 1, [a]]);
    }
  });

  it('unanswered FETCH-BATCHes are repeated every retransmission interval, to the next vouchers in turn', () => {
    const { cluster } = replicaThreeLacksTheBatch({ holdBatches: true });
    cluster.drop(isType('batch'));
    const askedBefore = cluster.sent.filter((e) => e.from === 3 && e.message.type === 'fetch-batch');
    for (let i = 0; i < cluster.config.retransmitIntervalTicks; i++) cluster.tick(3);
    const askedAfter = cluster.sent.filter((e) => e.from === 3 && e.message.type === 'fetch-batch');
    const second = askedAfter.slice(askedBefore.length).map((e) => e.to);
    expect(second).toHaveLength(cluster.q.weak);
    // Rotation: the second round does not ask exactly the replicas of the first.
    expect(new Set(second)).not.toEqual(new Set(askedBefore.map((e) => e.to)));
    cluster.deliverAll();
    expect(cluster.replica(3).lastExecutedSeq).toBe(2);
  });

  it('a voucher that answers FETCH-BATCH with other requests is ignored; the next round asks other vouchers and gets the batch', () => {
    const { cluster, a } = replicaThreeLacksTheBatch({ holdBatches: true });
    // Every BATCH on its way to replica 3 is replaced by a liar's: the same slot, other requests.
    const answers = cluster.drop((e) => e.to === 3 && e.message.type === 'batch');
    expect(answers.length).toBeGreaterThan(0);
    for (const answer of answers) {
      const forged = cluster.step(3, { type: 'batch', seq: 1, batch: [cluster.request(3)] });
      expect(rejections(forged), `forged answer in place of ${answer.from}'s`).toEqual([
        'batch:digest-mismatch',
      ]);
    }
    expect(preparesFrom(cluster, 3, 1, 1)).toBe(0);
    // The next round goes to the next vouchers; an honest answer completes the slot.
    for (let i = 0; i < cluster.config.retransmitIntervalTicks; i++) cluster.tick(3);
    cluster.deliverAll();
    expect(preparesFrom(cluster, 3, 1, 1)).toBe(1);
    expect(cluster.executed[3]![0]!.requests.map((r) => r.request)).toEqual([a]);
  });

  it('a replica that restarts before the batch of a NEW-VIEW slot arrived fetches it again', () => {
    const { cluster, a } = replicaThreeLacksTheBatch({ holdBatches: true });
    cluster.crash(3);
    cluster.drop(isType('batch'));
    const restarted = cluster.restart(3);
    expect(cluster.replica(3).awaitedBatchCount).toBe(1);
    expect(sentOfType(restarted, 'fetch-batch').length).toBeGreaterThan(0);
    cluster.deliverAll();
    expect(cluster.replica(3).awaitedBatchCount).toBe(0);
    expect(cluster.executed[3]!.map((batch) => batch.requests.map((r) => r.request))[0]).toEqual([a]);
  });

  it('FETCH-BATCH is answered only with a batch the replica holds, at most once per retransmission interval per replica and slot', () => {
    const { cluster, digestOfA } = replicaThreeLacksTheBatch({ holdBatches: true });
    cluster.drop(() => true);
    const fetch = (digest: Uint8Array): Message => ({
      type: 'fetch-batch',
      fetchBatch: cluster.signAs(3, { type: 'fetch-batch', seq: 1, digest, replica: 3 }),
    });
    // Replica 2 was not in replica 3's first round of vouchers, so it has answered nothing yet.
    expect(sentOfType(cluster.step(2, fetch(digestOfA)), 'batch')).toHaveLength(1);
    expect(sentOfType(cluster.step(2, fetch(digestOfA)), 'batch')).toHaveLength(0);
    expect(sentOfType(cluster.step(2, fetch(sha256(new Uint8Array([1])))), 'batch')).toHaveLength(0);
    for (let i = 0; i < cluster.config.retransmitIntervalTicks; i++) cluster.tick(2);
    cluster.drop(() => true);
    const again = sentOfType(cluster.step(2, fetch(digestOfA)), 'batch');
    expect(again.map(({ to, message }) => [to, toHex(batchDigest(message.batch, sha256))])).toEqual([
      [3, toHex(digestOfA)],
    ]);
  });
});

describe('batch byte budget', () => {
  it('the primary closes a batch before it exceeds batchBytesMax, and backups reject a PRE-PREPARE whose batch exceeds it', () => {
    // The smallest budget a configuration may have: one request of the largest size.
    const budget = REQUEST_WIRE_BYTES_MAX;
    const cluster = new Cluster({ config: { batchBytesMax: budget, batchSizeMax: 4 } }).start();
    const requests = [0, 1, 2, 3].map((index) => largeRequest(cluster, index, 400));
    const perRequest = requestWireBytes(requests[0]!);
    const perBatch = Math.floor(budget / perRequest);
    expect(perBatch).toBe(2);
    const ready = cluster.apply(
      0,
      cluster.replica(0).stepAll(requests.map((request) => ({ type: 'request', request }))),
    );
    const batches = sentOfType(ready, 'pre-prepare')
      .filter(({ to }) => to === 'all')
      .map(({ message }) => message.batch.length);
    expect(batches).toEqual([2, 2]);

    const tooMany = requests.slice(0, perBatch + 1);
    expect(rejections(cluster.step(1, cluster.prePrepare(0, 0, 3, tooMany)))).toEqual([
      'pre-prepare:batch-too-many-bytes',
    ]);
  });
});
