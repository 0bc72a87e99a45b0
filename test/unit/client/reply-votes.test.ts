/**
 * How a client counts replies, against hand-made replicas on real libp2p streams: f+1 replies must
 * match in sequence number and result, so a liar's forged result (the `forged-replies` strategy's)
 * is outvoted, and a lone liar's view cannot decide where the next request goes first.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createStrategy } from '../../../src/byzantine/strategies.ts';
import { PbftClient } from '../../../src/client/client.ts';
import { KeyPair } from '../../../src/crypto/keys.ts';
import { decodeResult, encodeResult } from '../../../src/ledger/index.ts';
import { decodeClientToReplica, encodeClientFrame } from '../../../src/protocol/client-protocol.ts';
import type { ReplyBody } from '../../../src/protocol/messages.ts';
import type { ClientSession } from '../../../src/transport/index.ts';
import { toHex } from '../../../src/util/bytes.ts';
import { handMadeReplicas, liarSays } from './hand-made-replicas.ts';

const LIAR = 3;
/** Replica 1 is the primary of this view (1001 mod 4): where the liar would send requests. */
const LIAR_VIEW = 1_001;
const HONEST_SEQ = 7;
const HONEST_BALANCE = 5;

/**
 * What the liar says, beside the honest replicas: a forged result (the strategy's) in a far-off
 * view; the honest result at another sequence number; or the honest reply in a far-off view.
 */
type Lie = 'forged-result' | 'other-seq' | 'far-view';

let dir = '';
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('needs f+1 replies matching in seq and result, and takes the lowest view among them', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-reply-votes-'));
  const forger = createStrategy('forged-replies');
  const firstRecipients: number[] = [];
  const seen = new Set<string>();
  let answering = new Set([0, 1, 2, LIAR]);
  let lie: Lie = 'forged-result';
  const liarResults: Uint8Array[] = [];
  // Each replica's session to the client's connection, learnt from a status probe.
  const sessions = new Map<number, ClientSession>();
  const answer = (id: number, session: ClientSession, frame: Uint8Array): void => {
    sessions.set(id, session);
    const input = decodeClientToReplica(frame);
    if (input.type !== 'request') return;
    const { client, t } = input.request.body;
    const key = `${toHex(client)}:${t}`;
    if (seen.has(key)) return; // a retransmission: every replica has answered already
    seen.add(key);
    firstRecipients.push(id);
    // As if the request had been ordered: every answering replica replies, the liar first, so
    // that its vote is counted before the honest ones arrive.
    for (const replica of answering) {
      const reply =
        replica === LIAR ? liarReply(honestReply(replica, client, t)) : honestReply(replica, client, t);
      setTimeout(
        () => sessions.get(replica)?.send(encodeClientFrame({ type: 'reply', reply })),
        replica === LIAR ? 0 : 50,
      );
    }
  };
  const honestReply = (replica: number, client: Uint8Array, t: number): ReplyBody => ({
    type: 'reply',
    view: 0,
    seq: HONEST_SEQ,
    t,
    client,
    replica,
    result: encodeResult({ status: 'ok', type: 'transfer', balance: HONEST_BALANCE }),
  });
  const liarReply = (honest: ReplyBody): ReplyBody => {
    let reply: ReplyBody;
    if (lie === 'forged-result')
      reply = { ...liarSays(forger, { type: 'reply', reply: honest }).reply, view: LIAR_VIEW };
    else if (lie === 'other-seq') reply = { ...honest, seq: HONEST_SEQ + 1 };
    else reply = { ...honest, view: LIAR_VIEW };
    liarResults.push(reply.result);
    return reply;
  };
  const { connection, stop } = await handMadeReplicas('votes', dir, answer);
  const connect = async (name: string, timeoutMs: number): Promise<PbftClient> =>
    PbftClient.connect({
      connection,
      key: KeyPair.generate(),
      counterFile: join(dir, `${name}.counter`),
      timeoutMs,
    });
  try {
    const client = await connect('client', 5_000);
    await client.status(500);
    expect([...sessions.keys()].sort()).toEqual([0, 1, 2, LIAR]);
    const first = await client.transfer('ab'.repeat(32), 1);
    // The liar's reply carried another result (t = 1: "insufficient funds"), so it was not one of
    // the f+1, and its far-off view was not taken either.
    expect(decodeResult(liarResults[0]!)).toMatchObject({ status: 'rejected', reason: 'insufficient-funds' });
    expect(first).toMatchObject({ seq: HONEST_SEQ, view: 0, balance: HONEST_BALANCE });
    const second = await client.transfer('ab'.repeat(32), 1);
    // t = 2: a balance one higher than the truth, outvoted again.
    expect(decodeResult(liarResults[1]!)).toMatchObject({ status: 'ok', balance: HONEST_BALANCE + 1 });
    expect(second).toMatchObject({ seq: HONEST_SEQ, balance: HONEST_BALANCE });

    // The liar's reply matches but claims a far-off view: the lowest view of the f+1 is taken.
    answering = new Set([0, LIAR]);
    lie = 'far-view';
    const third = await client.transfer('ab'.repeat(32), 1);
    expect(third).toMatchObject({ seq: HONEST_SEQ, view: 0, balance: HONEST_BALANCE });
    answering = new Set([0, 1, 2, LIAR]);
    await client.transfer('ab'.repeat(32), 1);
    // Every request went first to the primary of view 0, never to the liar's choice (replica 1).
    expect(firstRecipients).toEqual([0, 0, 0, 0]);
    expect(liarResults).toHaveLength(4);

    // One honest reply and the liar's, without f+1 matching in both seq and result: no answer.
    answering = new Set([0, LIAR]);
    for (const without of ['forged-result', 'other-seq'] as const) {
      lie = without;
      const impatient = await connect(`impatient-${without}`, 1_500);
      await expect(impatient.transfer('ab'.repeat(32), 1), without).rejects.toMatchObject({
        code: 'TIMEOUT',
      });
    }
  } finally {
    await stop();
  }
}, 30_000);
