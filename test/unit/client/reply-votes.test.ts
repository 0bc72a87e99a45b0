/**
 * How a client counts replies, against hand-made replicas on real libp2p streams: f+1 replies must
 * match in sequence number and result, and a lone liar's view cannot decide where the next request
 * goes first.
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

const LIAR = 3;
/** Replica 1 is the primary of this view (1001 mod 4): where the liar would send requests. */
const LIAR_VIEW = 1_001;
const HONEST_SEQ = 7;

let dir = '';
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('needs f+1 replies matching in seq and result, and takes the lowest view among them', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-reply-votes-'));
  const firstRecipients: number[] = [];
  const seen = new Set<number>();
  let answering = new Set([0, 1, 2, LIAR]);
  // Replicas 0-2 answer honestly in view 0; the liar claims a far-off view and another seq.
  const answer = (id: number, session: ClientSession, frame: Uint8Array): void => {
    const input = decodeClientToReplica(frame);
    if (input.type !== 'request') return;
    const { client, t } = input.request.body;
    if (!seen.has(t)) {
      seen.add(t);
      firstRecipients.push(id);
    }
    if (!answering.has(id)) return;
    const liar = id === LIAR;
    const reply = {
      type: 'reply' as const,
      view: liar ? LIAR_VIEW : 0,
      seq: liar ? HONEST_SEQ + 1 : HONEST_SEQ,
      t,
      client,
      replica: id,
      result: encodeResult({ status: 'ok', type: 'transfer', balance: 5 }),
    };
    // Every replica answers, the liar first: its vote is counted before the honest ones arrive.
    setTimeout(() => session.send(encodeClientFrame({ type: 'reply', reply })), liar ? 0 : 50);
  };
  const { connection, stop } = await handMadeReplicas('votes', dir, answer);
  try {
    const client = await PbftClient.connect({
      connection,
      key: KeyPair.generate(),
      counterFile: join(dir, 'client.counter'),
      timeoutMs: 5_000,
    });
    const first = await client.transfer('ab'.repeat(32), 1);
    // The liar's reply matched the result but not the seq, so it was not one of the f+1.
    expect(first).toMatchObject({ seq: HONEST_SEQ, view: 0, balance: 5 });
    await client.transfer('ab'.repeat(32), 1);
    // Both requests went first to the primary of view 0, never to the liar's choice (replica 1).
    expect(firstRecipients).toEqual([0, 0]);
    // One honest reply and the liar's agree on the result but not the seq: no f+1, no answer.
    answering = new Set([0, LIAR]);
    const impatient = await PbftClient.connect({
      connection,
      key: KeyPair.generate(),
      counterFile: join(dir, 'impatient.counter'),
      timeoutMs: 1_500,
    });
    await expect(impatient.transfer('ab'.repeat(32), 1)).rejects.toMatchObject({ code: 'TIMEOUT' });
  } finally {
    await stop();
  }
}, 30_000);
