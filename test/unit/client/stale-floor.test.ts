/**
 * A request refused as stale by f+1 replicas with a floor above its t was never executed (this
 * process sends one request at a time): the client signs it again above the floor, as a new
 * account's first request must (its floor is derived from the sequence number that created it). A floor equal to
 * t means the request executed and its reply left the cache: that refusal is final. Against
 * hand-made replicas on real libp2p streams; one of them lies about the floor.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { PbftClient, RequestRefusedError } from '../../../src/client/client.ts';
import { KeyPair } from '../../../src/crypto/keys.ts';
import { encodeResult } from '../../../src/ledger/index.ts';
import {
  decodeClientToReplica,
  encodeClientFrame,
  type RequestErrorFrame,
} from '../../../src/protocol/client-protocol.ts';
import type { ClientSession } from '../../../src/transport/index.ts';
import { handMadeReplicas } from './hand-made-replicas.ts';

let dir = '';
afterEach(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** Replicas whose floor for every client is `floor`; replica 3 claims a far higher one. */
function floorAnswers(floor: number, received: number[]) {
  return (id: number, session: ClientSession, frame: Uint8Array): void => {
    const input = decodeClientToReplica(frame);
    if (input.type !== 'request') return;
    const { client, t } = input.request.body;
    received.push(t);
    if (t <= floor) {
      const claimed = id === 3 ? 1_000_000_000 : floor;
      const error: RequestErrorFrame = {
        type: 'request-error',
        replica: id,
        client,
        t,
        reason: 'stale-request',
        lastExecutedT: claimed,
      };
      session.send(encodeClientFrame(error));
      return;
    }
    const result = encodeResult({ status: 'ok', type: 'transfer', balance: 9 });
    session.send(
      encodeClientFrame({
        type: 'reply',
        reply: { type: 'reply', view: 0, seq: 42, t, client, replica: id, result },
      }),
    );
  };
}

/** Hand-made replicas whose floor is `floor`, and a client with a fresh key and counter. */
async function freshClientAgainst(floor: number, received: number[]) {
  dir = await mkdtemp(join(tmpdir(), 'pbft-floor-'));
  const { connection, stop } = await handMadeReplicas('floor', dir, floorAnswers(floor, received));
  const client = await PbftClient.connect({
    connection,
    key: KeyPair.generate(),
    counterFile: join(dir, 'client.counter'),
    timeoutMs: 20_000,
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return { client, stop };
}

it("a new account's first request, stale below the floor its creation set, is signed again just above the floor (not above a liar's)", async () => {
  const received: number[] = [];
  const { client, stop } = await freshClientAgainst(40, received);
  try {
    const receipt = await client.transfer('ab'.repeat(32), 1);
    expect(receipt).toMatchObject({ status: 'ok', seq: 42, t: 41 });
    expect(new Set(received)).toEqual(new Set([1, 41]));
  } finally {
    await stop();
  }
}, 30_000);

it('a stale refusal whose floor is the request itself is final: it executed, and it is not sent again under a new number', async () => {
  const received: number[] = [];
  const { client, stop } = await freshClientAgainst(1, received);
  try {
    const refusal = client.transfer('ab'.repeat(32), 1);
    await expect(refusal).rejects.toBeInstanceOf(RequestRefusedError);
    await expect(refusal).rejects.toMatchObject({ reason: 'stale-request', t: 1, floor: 1 });
    expect(new Set(received)).toEqual(new Set([1]));
  } finally {
    await stop();
  }
}, 30_000);
