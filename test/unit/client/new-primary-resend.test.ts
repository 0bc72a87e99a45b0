/**
 * A request sent to a primary that then crashed: once the connection learns (from f+1 matching
 * replies to another request) that the view moved to another primary, the request goes to that
 * primary at once instead of waiting for its retransmission timeout, which under heavy load
 * follows the long latencies and runs to seconds.
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

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('a request waiting on a crashed primary is sent to the new primary as soon as the view moves on', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-new-primary-'));
  /** Copies of the second request (t = 2) each replica received. */
  const copies = [0, 0, 0, 0];
  let firstCopyToReplica1: number[] | null = null;
  let primaryCrashed = false;
  const answer = (id: number, session: ClientSession, frame: Uint8Array): void => {
    const input = decodeClientToReplica(frame);
    if (input.type !== 'request') return;
    const { client, t } = input.request.body;
    if (t === 2) {
      copies[id]!++;
      if (id === 1 && firstCopyToReplica1 === null) firstCopyToReplica1 = [...copies];
    }
    if (id === 0 && primaryCrashed) return;
    const result = encodeResult({ status: 'ok', type: 'transfer', balance: 9 });
    const view = primaryCrashed ? 1 : 0;
    session.send(
      encodeClientFrame({
        type: 'reply',
        reply: { type: 'reply', view, seq: 6 + t, t, client, replica: id, result },
      }),
    );
  };
  const { connection, stop } = await handMadeReplicas('new-primary', dir, answer);
  try {
    const client = await PbftClient.connect({
      connection,
      key: KeyPair.generate(),
      counterFile: join(dir, 'client.counter'),
      timeoutMs: 20_000,
    });
    // The account's first request goes to every replica (each learns the session to answer).
    await expect(client.transfer('ab'.repeat(32), 1)).resolves.toMatchObject({ seq: 7, view: 0 });
    primaryCrashed = true;
    const transfer = client.transfer('ab'.repeat(32), 1);
    await until(() => copies[0] === 1);
    // Another account's request on this connection was answered by f+1 replicas in view 1.
    connection.noteView(1);
    const receipt = await transfer;
    expect(receipt).toMatchObject({ status: 'ok', seq: 8, view: 1 });
    // The first copy of the second request that replica 1 (primary of view 1) received was the
    // resend to it alone, not the retransmission to everyone: replicas 2 and 3 had none yet, the
    // old primary only the first send (a retransmission reaches replica 0 before replica 1).
    expect(firstCopyToReplica1).toEqual([1, 1, 0, 0]);
  } finally {
    await stop();
  }
}, 30_000);
