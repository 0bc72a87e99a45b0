/**
 * Ordering messages for a view a replica has not entered yet (its peers got there first): kept for
 * when it does, but only those that could be valid there, one per (type, view, seq) from each
 * sender, and within a byte budget per sender. A liar that floods the buffer with the largest
 * legal PRE-PREPAREs for every slot of a future view holds no more than that budget.
 */
import { describe, expect, it } from 'vitest';
import {
  OPERATION_SIZE_MAX_BYTES,
  type RequestBody,
  type Signed,
  signBody,
} from '../../../src/protocol/messages.ts';
import { Cluster, rejections } from './harness.ts';

/** Replica 1 is the primary of view 1; replica 2 is still in view 0. */
const LIAR = 1;
const TARGET = 2;

/** A request whose operation is the largest a client may send (it need not decode to execute). */
function largestRequest(cluster: Cluster, index: number, t: number): Signed<RequestBody> {
  const client = cluster.clients[index]!;
  return signBody<RequestBody>(
    { type: 'request', client: client.publicKey, t, op: new Uint8Array(OPERATION_SIZE_MAX_BYTES).fill(t) },
    (bytes) => client.signer.sign(bytes),
  );
}

describe('early ordering messages', () => {
  it('an early PRE-PREPARE is checked before it is buffered: a wrong digest or an oversized batch is never kept', () => {
    const cluster = new Cluster().start();
    const request = cluster.request(0);
    const wrongDigest = cluster.prePrepare(LIAR, 1, 1, [request], new Uint8Array(32).fill(7));
    expect(rejections(cluster.step(TARGET, wrongDigest))).toEqual(['pre-prepare:digest-mismatch']);
    const tooMany = Array.from({ length: cluster.config.batchSizeMax + 1 }, (_, t) => cluster.request(t % 4));
    expect(rejections(cluster.step(TARGET, cluster.prePrepare(LIAR, 1, 2, tooMany)))).toEqual([
      'pre-prepare:batch-too-large',
    ]);
    expect(cluster.replica(TARGET).earlyMessageBytes).toBe(0);
    // A valid one is kept for view 1.
    expect(rejections(cluster.step(TARGET, cluster.prePrepare(LIAR, 1, 1, [request])))).toEqual([]);
    expect(cluster.replica(TARGET).earlyMessageBytes).toBeGreaterThan(0);
  });

  it('only the next view and sequence numbers inside the window are buffered', () => {
    const cluster = new Cluster().start();
    const L = cluster.config.watermarkWindow;
    const digest = new Uint8Array(32).fill(1);
    // Two views ahead: a replica that far behind is brought forward by its peers, not by a buffer.
    cluster.step(TARGET, cluster.prepare(3, 2, 1, digest));
    cluster.step(TARGET, cluster.prePrepare(3, 3, 1, [cluster.request(0)]));
    // Beyond the high watermark.
    cluster.step(TARGET, cluster.prepare(3, 1, L + 1, digest));
    expect(cluster.replica(TARGET).earlyMessageBytes).toBe(0);
    cluster.step(TARGET, cluster.prepare(3, 1, L, digest));
    expect(cluster.replica(TARGET).earlyMessageBytes).toBeGreaterThan(0);
  });

  it('one message per (type, view, seq) from a sender: a repeat or a conflicting PRE-PREPARE adds nothing', () => {
    const cluster = new Cluster().start();
    const target = cluster.replica(TARGET);
    cluster.step(TARGET, cluster.prepare(3, 1, 1, new Uint8Array(32).fill(1)));
    const afterPrepare = target.earlyMessageBytes;
    cluster.step(TARGET, cluster.prepare(3, 1, 1, new Uint8Array(32).fill(2)));
    expect(target.earlyMessageBytes).toBe(afterPrepare);
    cluster.step(TARGET, cluster.prePrepare(LIAR, 1, 1, [cluster.request(0)]));
    const afterPrePrepare = target.earlyMessageBytes;
    expect(afterPrePrepare).toBeGreaterThan(afterPrepare);
    cluster.step(TARGET, cluster.prePrepare(LIAR, 1, 1, [cluster.request(1), cluster.request(2)]));
    expect(target.earlyMessageBytes).toBe(afterPrePrepare);
  });

  it('a liar filling every slot of the next view with the largest legal PRE-PREPAREs holds at most its byte budget', () => {
    const batchBytesMax = 64 * 1024;
    const cluster = new Cluster({ config: { batchSizeMax: 64, batchBytesMax, watermarkWindow: 32 } }).start();
    const L = cluster.config.watermarkWindow;
    let offered = 0;
    let t = 0;
    for (let seq = 1; seq <= L; seq++) {
      // As many of the largest requests as the byte budget of one batch allows.
      const batch: Signed<RequestBody>[] = [];
      for (;;) {
        const request = largestRequest(cluster, seq % 4, ++t);
        if (batch.length === cluster.config.batchSizeMax) break;
        const bytes = [...batch, request].reduce((sum, r) => sum + r.bytes.length + r.signature.length, 0);
        if (bytes > batchBytesMax) break;
        batch.push(request);
      }
      const message = cluster.prePrepare(LIAR, 1, seq, batch);
      offered += batch.reduce((sum, r) => sum + r.bytes.length + r.signature.length, 0);
      expect(rejections(cluster.step(TARGET, message))).toEqual([]);
      // Its votes for the same slots, too.
      cluster.step(TARGET, cluster.prepare(LIAR, 1, seq, message.prePrepare.body.digest));
      cluster.step(TARGET, cluster.commit(LIAR, 1, seq, message.prePrepare.body.digest));
    }
    const held = cluster.replica(TARGET).earlyMessageBytes;
    expect(offered).toBeGreaterThan(L * (batchBytesMax - 2 * OPERATION_SIZE_MAX_BYTES));
    // Two full batches and a window of votes, not a window of batches.
    expect(held).toBeLessThanOrEqual(2 * batchBytesMax + 2 * L * 256);
    expect(held).toBeGreaterThan(batchBytesMax);
  });
});
