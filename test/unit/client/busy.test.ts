/**
 * Admission control seen from the client, against hand-made replicas on real libp2p streams: a
 * "busy" answer is not a refusal. The client keeps its request number, sends again later, and the
 * transfer completes once the replicas take it; f+1 busy answers never fail it.
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

it('a client answered "busy" by every replica retries the same request later instead of failing', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-busy-'));
  /** Frames each replica received per request number t. */
  const copies = new Map<number, number>();
  const answer = (id: number, session: ClientSession, frame: Uint8Array): void => {
    const input = decodeClientToReplica(frame);
    if (input.type !== 'request') return;
    const { client, t } = input.request.body;
    const copy = (copies.get(t) ?? 0) + 1;
    copies.set(t, copy);
    // Every replica is full for the first copies it sees (all four say so: f+1 and more).
    if (copy <= 4) {
      session.send(
        encodeClientFrame({
          type: 'request-error',
          replica: id,
          client,
          t,
          reason: 'busy',
          lastExecutedT: 0,
        }),
      );
      return;
    }
    const reply = {
      type: 'reply' as const,
      view: 0,
      seq: 3,
      t,
      client,
      replica: id,
      result: encodeResult({ status: 'ok', type: 'transfer', balance: 9 }),
    };
    session.send(encodeClientFrame({ type: 'reply', reply }));
  };
  const { connection, stop } = await handMadeReplicas('busy', dir, answer);
  try {
    const client = await PbftClient.connect({
      connection,
      key: KeyPair.generate(),
      counterFile: join(dir, 'client.counter'),
      timeoutMs: 20_000,
    });
    const receipt = await client.transfer('ab'.repeat(32), 1);
    expect(receipt).toMatchObject({ status: 'ok', seq: 3, balance: 9, t: 1 });
    // The same request (t = 1) was sent again after the busy answers: first to the primary, then
    // to everyone, until the replicas took it.
    expect(copies.get(1)).toBeGreaterThan(4);
  } finally {
    await stop();
  }
}, 30_000);
