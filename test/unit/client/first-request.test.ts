/**
 * A replica answers an account on the streams that presented its requests. So an account's first
 * request on a connection goes to every replica (each then answers it directly, without waiting
 * for a retransmission), and its later requests to the primary only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { PbftClient } from '../../../src/client/client.ts';
import { KeyPair } from '../../../src/crypto/keys.ts';
import { encodeResult } from '../../../src/ledger/index.ts';
import { decodeClientToReplica, encodeClientFrame } from '../../../src/protocol/client-protocol.ts';
import type { ClientSession } from '../../../src/transport/index.ts';
import { handMadeReplicas } from './hand-made-replicas.ts';

let dir = '';
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it("an account's first request goes to every replica, its later ones to the primary only", async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-first-request-'));
  /** Per request number t, the replicas that received it, in order. */
  const receivedBy = new Map<number, number[]>();
  /** Per replica, the session the account presented a request on (a real replica's binding). */
  const sessions = new Map<number, ClientSession>();
  // A request that reaches any replica is ordered; each replica answers on the session it knows.
  const answer = (id: number, session: ClientSession, frame: Uint8Array): void => {
    const input = decodeClientToReplica(frame);
    if (input.type !== 'request') return;
    const { client, t } = input.request.body;
    receivedBy.set(t, [...(receivedBy.get(t) ?? []), id]);
    sessions.set(id, session);
    const result = encodeResult({ status: 'ok', type: 'transfer', balance: 9 });
    for (const [replica, known] of sessions) {
      known.send(
        encodeClientFrame({
          type: 'reply',
          reply: { type: 'reply', view: 0, seq: t, t, client, replica, result },
        }),
      );
    }
  };
  const { connection, stop } = await handMadeReplicas('first-request', dir, answer);
  try {
    const client = await PbftClient.connect({
      connection,
      key: KeyPair.generate(),
      counterFile: join(dir, 'client.counter'),
      timeoutMs: 20_000,
    });
    await client.transfer('ab'.repeat(32), 1);
    await client.transfer('ab'.repeat(32), 1);
    await client.transfer('ab'.repeat(32), 1);
    // Before any retransmission could have been due, every replica had the first request.
    expect([...(receivedBy.get(1) ?? [])].sort()).toEqual([0, 1, 2, 3]);
    expect(receivedBy.get(2)).toEqual([0]);
    expect(receivedBy.get(3)).toEqual([0]);
  } finally {
    await stop();
  }
}, 30_000);
