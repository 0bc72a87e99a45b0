/**
 * State transfer and recovery need the replicated state (the application snapshot plus the reply
 * cache) to fit one frame. The ledger caps its accounts for exactly this reason (src/ledger/limits.ts);
 * this checks that the whole replicated state, client table included, stays within that bound.
 *
 * The core is driven directly (signatures are checked at the edge, not here): clients that are not
 * in the genesis cost an attacker nothing but a fresh key pair each, and the edge accepts them.
 */
import { describe, expect, it } from 'vitest';
import { FRAME_SIZE_MAX_BYTES } from '../../../src/codec/cbor.ts';
import { encodeOperation } from '../../../src/ledger/index.ts';
import { DEFAULT_PROTOCOL_CONFIG } from '../../../src/protocol/config.ts';
import {
  decodeMessage,
  encodeMessage,
  type FetchStateBody,
  type RequestBody,
  type Signed,
  SNAPSHOT_SIZE_MAX_BYTES,
  signBody,
} from '../../../src/protocol/messages.ts';
import { Cluster, sentOfType } from './harness.ts';

describe('state size', () => {
  it('the state a lagging replica fetches fits one STATE frame, and a replica restarts from its own checkpoint, however many clients have sent requests', () => {
    // One checkpoint interval of full batches: 44 × 1024 distinct clients, one request each.
    const K = 44;
    const batchSize = 1024;
    const cluster = new Cluster({
      config: {
        checkpointInterval: K,
        watermarkWindow: 2 * K,
        batchSizeMax: batchSize,
        batchBytesMax: 1024 * 1024,
        pipelineDepthMax: 8,
        clientTableMax: DEFAULT_PROTOCOL_CONFIG.clientTableMax,
      },
    }).start();
    const replica = cluster.replica(1);
    const op = encodeOperation({ type: 'transfer', to: cluster.clients[0]!.publicKey, amount: 1 });
    const unverified = new Uint8Array(64);
    let clients = 0;
    for (let seq = 1; seq <= K; seq++) {
      const batch: Signed<RequestBody>[] = [];
      for (let i = 0; i < batchSize; i++) {
        const client = new Uint8Array(32).fill(0x77);
        new DataView(client.buffer).setUint32(0, ++clients);
        batch.push(signBody<RequestBody>({ type: 'request', client, t: 1, op }, () => unverified));
      }
      const prePrepare = cluster.prePrepare(0, 0, seq, batch);
      const digest = prePrepare.prePrepare.body.digest;
      for (const message of [
        prePrepare,
        cluster.prepare(2, 0, seq, digest),
        cluster.commit(2, 0, seq, digest),
        cluster.commit(3, 0, seq, digest),
      ]) {
        cluster.apply(1, replica.step(message));
      }
    }
    expect(replica.lastExecutedSeq).toBe(K);
    // Requests executed (rejected by the ledger: unknown sender) until the reply cache was full;
    // every later new client was refused without executing, so the state stays bounded.
    const { clientTableMax } = DEFAULT_PROTOCOL_CONFIG;
    expect(clients).toBeGreaterThan(clientTableMax);
    expect(cluster.executed[1]!.flatMap((b) => b.requests).filter((r) => r.result !== null)).toHaveLength(
      clientTableMax,
    );
    expect(cluster.events[1]!.filter((event) => event.type === 'request-refused')).toHaveLength(
      clients - clientTableMax,
    );
    expect(cluster.ledgers[1]!.accountCount()).toBe(cluster.clients.length);

    // Checkpoint K becomes stable (the others certify the same digest).
    const taken = cluster.events[1]!.find((event) => event.type === 'checkpoint-taken');
    if (taken?.type !== 'checkpoint-taken') throw new Error('no checkpoint taken at K');
    for (const id of [0, 2]) cluster.apply(1, replica.step(cluster.checkpoint(id, K, taken.stateDigest)));
    expect(replica.stableCheckpointSeq).toBe(K);
    const snapshot = cluster.storage[1]!.stableCheckpoint!.snapshot;

    // A lagging replica asks for the state: the STATE it gets must be a frame it can decode.
    const fetchState = cluster.signAs<FetchStateBody>(3, {
      type: 'fetch-state',
      view: 0,
      lastExecuted: 0,
      replica: 3,
    });
    const state = sentOfType(replica.step({ type: 'fetch-state', fetchState }), 'state')[0]!.message;
    expect.soft(snapshot.length).toBeLessThanOrEqual(SNAPSHOT_SIZE_MAX_BYTES);
    expect.soft(encodeMessage(state).length).toBeLessThanOrEqual(FRAME_SIZE_MAX_BYTES);
    expect.soft(() => decodeMessage(encodeMessage(state))).not.toThrow();

    // The replica itself restarts from its stable checkpoint.
    cluster.crash(1);
    expect.soft(() => cluster.restart(1)).not.toThrow();
  });
});
