/**
 * State transfer and recovery need the replicated state (the application snapshot plus the reply
 * cache) to fit one frame. The ledger caps its accounts for exactly this reason (src/ledger/limits.ts);
 * this checks that the whole replicated state, reply cache included, stays within that bound at its
 * worst: a ledger with every account it may hold, and a reply cache full of their replies.
 *
 * The core is driven directly (signatures are checked at the edge, not here).
 */
import { describe, expect, it } from 'vitest';
import { decodeCanonical, encodeCanonical, FRAME_SIZE_MAX_BYTES } from '../../../src/codec/cbor.ts';
import { ACCOUNT_COUNT_MAX, encodeOperation, SNAPSHOT_FORMAT_VERSION } from '../../../src/ledger/index.ts';
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
import { toHex } from '../../../src/util/bytes.ts';
import { Cluster, sentOfType } from './harness.ts';

describe('state size', () => {
  it('the state a lagging replica fetches fits one STATE frame, and a replica restarts from its own checkpoint, with every account the ledger holds and a full reply cache', () => {
    // One checkpoint interval of full batches: 44 × 1024 requests from the ledger's accounts.
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
    // Replica 1's ledger holds as many accounts as it ever may, each with 1 unit.
    const accounts = Array.from({ length: ACCOUNT_COUNT_MAX - cluster.clients.length }, (_, index) => {
      const address = new Uint8Array(32).fill(0x77);
      new DataView(address.buffer).setUint32(0, index + 1);
      return address;
    });
    const entries = [...cluster.clients.map((client) => client.publicKey), ...accounts]
      .map((address) => [address, 1, 0] as const)
      .sort((a, b) => (toHex(a[0]) < toHex(b[0]) ? -1 : 1));
    cluster.ledgers[1]!.restore(encodeCanonical({ version: SNAPSHOT_FORMAT_VERSION, accounts: entries }));
    const op = encodeOperation({ type: 'transfer', to: cluster.clients[0]!.publicKey, amount: 1 });
    const unverified = new Uint8Array(64);
    let sent = 0;
    for (let seq = 1; seq <= K; seq++) {
      const batch: Signed<RequestBody>[] = [];
      for (let i = 0; i < batchSize; i++, sent++) {
        // Each account sends once, then the first ones again (refused for insufficient funds: a
        // longer result than a success).
        const client = accounts[sent % accounts.length]!;
        const t = Math.floor(sent / accounts.length) + 1;
        batch.push(signBody<RequestBody>({ type: 'request', client, t, op }, () => unverified));
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
    expect(cluster.executed[1]!.flatMap((b) => b.requests).filter((r) => r.result === null)).toEqual([]);
    expect(cluster.ledgers[1]!.accountCount()).toBe(ACCOUNT_COUNT_MAX);

    // Checkpoint K becomes stable (the others certify the same digest).
    const taken = cluster.events[1]!.find((event) => event.type === 'checkpoint-taken');
    if (taken?.type !== 'checkpoint-taken') throw new Error('no checkpoint taken at K');
    for (const id of [0, 2]) cluster.apply(1, replica.step(cluster.checkpoint(id, K, taken.stateDigest)));
    expect(replica.stableCheckpointSeq).toBe(K);
    const snapshot = cluster.storage[1]!.stableCheckpoint!.snapshot;
    // The reply cache is full: the least recently executed replies were evicted.
    const state = decodeCanonical(snapshot, SNAPSHOT_SIZE_MAX_BYTES) as { clients: unknown[] };
    expect(state.clients).toHaveLength(DEFAULT_PROTOCOL_CONFIG.clientTableMax);

    // A lagging replica asks for the state: the STATE it gets must be a frame it can decode.
    const fetchState = cluster.signAs<FetchStateBody>(3, {
      type: 'fetch-state',
      view: 0,
      lastExecuted: 0,
      recovering: false,
      replica: 3,
    });
    const answer = sentOfType(replica.step({ type: 'fetch-state', fetchState }), 'state')[0]!.message;
    expect.soft(snapshot.length).toBeLessThanOrEqual(SNAPSHOT_SIZE_MAX_BYTES);
    expect.soft(encodeMessage(answer).length).toBeLessThanOrEqual(FRAME_SIZE_MAX_BYTES);
    expect.soft(() => decodeMessage(encodeMessage(answer))).not.toThrow();

    // The replica itself restarts from its stable checkpoint.
    cluster.crash(1);
    expect.soft(() => cluster.restart(1)).not.toThrow();
  });
});
