/**
 * How a client reads a balance, against hand-made replicas on real libp2p streams, one of them a
 * liar that tells the lies of the `forged-reads` strategy (a balance that was true before the last
 * change, while claiming to be up to date) and of `forged-replies`. A query needs 2f+1 matching
 * answers from replicas that have executed the client's last write (read-your-writes); anything
 * less makes the client order the read, and the ordered read needs f+1 matching replies.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStrategy } from '../../../src/byzantine/strategies.ts';
import { PbftClient } from '../../../src/client/client.ts';
import { KeyPair } from '../../../src/crypto/keys.ts';
import { decodeOperation, decodeResult, encodeResult } from '../../../src/ledger/index.ts';
import {
  decodeClientToReplica,
  encodeClientFrame,
  type QueryResultFrame,
} from '../../../src/protocol/client-protocol.ts';
import type { ReplyBody } from '../../../src/protocol/messages.ts';
import type { ClientSession } from '../../../src/transport/index.ts';
import { fromHex } from '../../../src/util/bytes.ts';
import { handMadeReplicas, liarSays } from './hand-made-replicas.ts';

const LIAR = 3;
const BOB = 'cd'.repeat(32);
/** The sequence number of the client's transfer: its last write before it reads. */
const WRITE_SEQ = 7;
/** Bob's balance before the transfer, after it, and when the ordered read executes (later still). */
const STALE = 1_000;
const FRESH = 1_005;
const ORDERED = 1_012;
/** An honest answer arrives this long after the liar's, so that the liar's is always counted first. */
const HONEST_DELAY_MS = 30;

function balanceOf(balance: number): Uint8Array {
  return encodeResult({ status: 'ok', type: 'balance', address: fromHex(BOB), balance, exists: true });
}

let dir = '';
/** Correct replicas that have not executed the client's transfer yet (they answer STALE). */
let lagging = new Set<number>();
/** What the liar sent, in order. */
const liarSaid: Array<{ type: 'query-result' | 'reply'; result: Uint8Array }> = [];
let queries = 0;
let orderedReads = 0;
let client: PbftClient;
let stop: () => Promise<void>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-balance-reads-'));
  const readLiar = createStrategy('forged-reads');
  const replyLiar = createStrategy('forged-replies');
  // The liar answered a query before the transfer: it remembers STALE, now stale.
  const before: QueryResultFrame = {
    type: 'query-result',
    id: 0,
    replica: LIAR,
    view: 0,
    lastExecuted: WRITE_SEQ - 1,
    result: balanceOf(STALE),
  };
  liarSays(readLiar, before);
  const sessions = new Map<number, ClientSession>();
  const seenRequests = new Set<number>();
  const send = (replica: number, frame: Uint8Array): void => {
    setTimeout(() => sessions.get(replica)?.send(frame), replica === LIAR ? 0 : HONEST_DELAY_MS);
  };
  const answer = (id: number, session: ClientSession, frame: Uint8Array): void => {
    sessions.set(id, session);
    const input = decodeClientToReplica(frame);
    if (input.type === 'query') {
      if (id === 0) queries++;
      const up = id === LIAR || !lagging.has(id);
      let told: QueryResultFrame = {
        type: 'query-result',
        id: input.id,
        replica: id,
        view: 0,
        lastExecuted: up ? WRITE_SEQ : WRITE_SEQ - 1,
        result: balanceOf(up ? FRESH : STALE),
      };
      if (id === LIAR) {
        told = liarSays(readLiar, told);
        liarSaid.push({ type: 'query-result', result: told.result });
      }
      send(id, encodeClientFrame(told));
      return;
    }
    if (input.type !== 'request') return;
    // As if the request had been ordered: every replica replies once, the liar first.
    const { client: key, t, op } = input.request.body;
    if (seenRequests.has(t)) return;
    seenRequests.add(t);
    const read = decodeOperation(op).type === 'balance';
    if (read) orderedReads++;
    for (const replica of [0, 1, 2, LIAR]) {
      let reply: ReplyBody = {
        type: 'reply',
        view: 0,
        seq: read ? WRITE_SEQ + 3 : WRITE_SEQ,
        t,
        client: key,
        replica,
        result: read ? balanceOf(ORDERED) : encodeResult({ status: 'ok', type: 'transfer', balance: 88 }),
      };
      if (replica === LIAR) {
        reply = liarSays(replyLiar, { type: 'reply', reply }).reply;
        liarSaid.push({ type: 'reply', result: reply.result });
      }
      send(replica, encodeClientFrame({ type: 'reply', reply }));
    }
  };
  const replicas = await handMadeReplicas('reads', dir, answer);
  stop = replicas.stop;
  client = await PbftClient.connect({
    connection: replicas.connection,
    key: KeyPair.generate(),
    counterFile: join(dir, 'client.counter'),
    timeoutMs: 5_000,
  });
  await client.status(500);
  expect([...sessions.keys()].sort()).toEqual([0, 1, 2, LIAR]);
  // The client's write, committed at WRITE_SEQ.
  await expect(client.transfer(BOB, 5)).resolves.toMatchObject({ seq: WRITE_SEQ, balance: 88 });
}, 30_000);

afterAll(async () => {
  await stop?.();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** Read Bob's balance; returns it with what the liar said meanwhile. */
async function read(laggingReplicas: number[], options: { linearizable?: boolean } = {}) {
  lagging = new Set(laggingReplicas);
  const said = liarSaid.length;
  const [queriesBefore, orderedBefore] = [queries, orderedReads];
  const answer = await client.balance(BOB, options);
  return {
    answer,
    lies: liarSaid.slice(said).map(({ type, result }) => ({ type, result: decodeResult(result) })),
    queried: queries - queriesBefore,
    ordered: orderedReads - orderedBefore,
  };
}

describe('a balance read against a liar', () => {
  it('takes 2f+1 matching answers from up-to-date replicas, outvoting the liar’s stale one', async () => {
    const { answer, lies } = await read([]);
    expect(lies).toMatchObject([{ type: 'query-result', result: { balance: STALE } }]);
    expect(answer).toMatchObject({ balance: FRESH, via: 'query' });
  });

  it('orders the read when only f+1 answers match: the liar and a lagging replica on the stale balance', async () => {
    const { answer, lies, ordered } = await read([2]);
    // The liar said STALE to the query, then forged the ordered read's reply (one more than the truth).
    expect(lies).toMatchObject([
      { type: 'query-result', result: { balance: STALE } },
      { type: 'reply', result: { balance: ORDERED + 1 } },
    ]);
    expect(ordered).toBe(1);
    expect(answer).toMatchObject({ balance: ORDERED, via: 'ordered' });
  });

  it('does not count answers from before its own write, though 2f+1 of them match', async () => {
    // The liar and two lagging correct replicas agree on STALE: 2f+1 matching answers, but only
    // the liar claims to have executed the client's transfer.
    const { answer, queried, ordered } = await read([1, 2]);
    expect(queried).toBe(1);
    expect(ordered).toBe(1);
    expect(answer).toMatchObject({ balance: ORDERED, via: 'ordered' });
  });

  it('a linearizable read is always ordered, even when every replica would answer the query alike', async () => {
    const { answer, queried, ordered } = await read([], { linearizable: true });
    expect(queried).toBe(0);
    expect(ordered).toBe(1);
    expect(answer).toMatchObject({ balance: ORDERED, via: 'ordered' });
  });
});
