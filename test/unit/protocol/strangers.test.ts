/**
 * Strangers and the reply cache. Exactly-once rests on the application's request floor (an
 * account's last executed t, or 2s + 1 for the sequence number s that created it), not on the core's bounded
 * reply cache; a key without an account keeps nothing anywhere, so no number of fresh keys can use
 * up what an honest client needs, and no request refused to a stranger can execute later.
 */
import { describe, expect, it } from 'vitest';
import { decodeResult, encodeOperation } from '../../../src/ledger/index.ts';
import { type RequestBody, type Signed, signBody } from '../../../src/protocol/messages.ts';
import { toHex } from '../../../src/util/bytes.ts';
import { CLIENT_BALANCE, Cluster } from './harness.ts';

/** A signed transfer from client `from` numbered t (no bookkeeping: tests choose t themselves). */
function transfer(cluster: Cluster, from: number, to: number, t: number, amount = 1): Signed<RequestBody> {
  const client = cluster.clients[from]!;
  const op = encodeOperation({ type: 'transfer', to: cluster.clients[to]!.publicKey, amount });
  return signBody<RequestBody>({ type: 'request', client: client.publicKey, t, op }, (bytes) =>
    client.signer.sign(bytes),
  );
}

function eventsOf(cluster: Cluster, replica: number, type: string) {
  return cluster.events[replica]!.filter((event) => event.type === type);
}

describe('strangers: keys without an account', () => {
  it("a stranger's request executes as a rejection and leaves nothing behind: no account, no reply-cache entry", () => {
    const cluster = new Cluster({ clients: 3, strangers: 1, config: { clientTableMax: 1 } }).start();
    const stranger = transfer(cluster, 2, 0, 1);
    cluster.submit(stranger);
    cluster.deliverAll();
    expect(cluster.repliesFor(1, stranger)).toMatchObject([{ status: 'rejected', reason: 'unknown-sender' }]);
    expect(cluster.ledgers[1]!.requestFloor(cluster.clients[2]!.publicKey)).toBeNull();
    // The cache (one entry) still holds client 0's reply: the stranger took no slot. A retry of
    // client 0's executed request is answered from it, not executed again.
    const honest = transfer(cluster, 0, 1, 1);
    cluster.submit(honest);
    cluster.deliverAll();
    for (let i = 0; i < 3; i++) {
      cluster.submit(transfer(cluster, 2, 0, 1));
      cluster.deliverAll();
    }
    const before = cluster.replies[1]!.length;
    cluster.submit(honest, 1);
    expect(cluster.replies[1]!.length).toBe(before + 1);
    expect(cluster.ledgers[1]!.balanceOf(cluster.clients[1]!.publicKey)).toBe(CLIENT_BALANCE + 1);
  });

  it("a request refused for unknown-sender never executes after its key is funded: the new account's floor voids it", () => {
    const cluster = new Cluster({ clients: 3, strangers: 1 }).start();
    const refused = transfer(cluster, 2, 0, 1, 5);
    cluster.submit(refused);
    cluster.deliverAll();
    expect(cluster.repliesFor(1, refused)).toMatchObject([{ status: 'rejected', reason: 'unknown-sender' }]);
    // Someone funds the key; then the old signed request is replayed, to every replica.
    const funding = transfer(cluster, 1, 2, 1, 100);
    cluster.submit(funding);
    cluster.deliverAll();
    const floor = cluster.ledgers[1]!.requestFloor(cluster.clients[2]!.publicKey)!;
    expect(floor).toBe(2 * cluster.replica(1).lastExecutedSeq + 1);
    expect(floor).toBeGreaterThanOrEqual(refused.body.t);
    const ready = cluster.submit(refused, 'all');
    cluster.deliverAll();
    expect(cluster.ledgers[1]!.balanceOf(cluster.clients[2]!.publicKey)).toBe(100);
    expect(cluster.ledgers[1]!.balanceOf(cluster.clients[0]!.publicKey)).toBe(CLIENT_BALANCE);
    expect(ready[1]!.events).toEqual([
      { type: 'request-stale', client: refused.body.client, t: 1, lastExecutedT: floor },
    ]);
    // Signed again above the floor (what PbftClient does on such an answer), the transfer executes.
    const fresh = transfer(cluster, 2, 0, floor + 1, 5);
    cluster.submit(fresh);
    cluster.deliverAll();
    expect(cluster.repliesFor(1, fresh)).toMatchObject([{ status: 'ok', balance: 95 }]);
  });

  it("a key funded by the cluster's very first batch gets a floor above its first request number, never equal to it", () => {
    const cluster = new Cluster({ clients: 3, strangers: 1 }).start();
    cluster.submit(transfer(cluster, 1, 2, 1, 100));
    cluster.deliverAll();
    expect(cluster.replica(1).lastExecutedSeq).toBe(1);
    // A client numbering from 1 sends t = 1: the stale answer's floor is above it (PbftClient
    // skips past it), not equal to it (which would read "executed, reply no longer cached").
    const first = transfer(cluster, 2, 0, 1, 5);
    const [ready] = cluster.submit(first, 1);
    const stale = ready!.events.find((event) => event.type === 'request-stale');
    expect(stale).toMatchObject({ t: 1 });
    expect(stale?.type === 'request-stale' && stale.lastExecutedT).toBeGreaterThan(1);
  });

  it("a stranger's request numbered above its sequence number is refused without executing (unknown-client)", () => {
    const cluster = new Cluster({ clients: 3, strangers: 1 }).start();
    const ahead = transfer(cluster, 2, 0, 50);
    cluster.submit(ahead);
    cluster.deliverAll();
    expect(cluster.replica(1).lastExecutedSeq).toBe(1);
    expect(cluster.repliesFor(1, ahead)).toEqual([]);
    expect(eventsOf(cluster, 1, 'request-refused')).toEqual([
      { type: 'request-refused', client: ahead.body.client, t: 50, reason: 'unknown-client' },
    ]);
  });

  it('the reply cache evicts the least recently executed client, in (seq, client) order; an evicted client still executes exactly once', () => {
    const cluster = new Cluster({ clients: 4, config: { clientTableMax: 2 } }).start();
    const first = transfer(cluster, 0, 1, 1);
    cluster.submit(first);
    cluster.deliverAll();
    for (const index of [1, 2]) {
      cluster.submit(transfer(cluster, index, 3, 1));
      cluster.deliverAll();
    }
    // Client 0's entry was evicted: its retry is not executed again but answered stale at its t.
    const [retry] = cluster.submit(first, 1);
    cluster.deliverAll();
    expect(retry!.replies).toEqual([]);
    expect(retry!.events).toEqual([
      { type: 'request-stale', client: first.body.client, t: 1, lastExecutedT: 1 },
    ]);
    expect(cluster.executedSeqs(1)).toEqual([1, 2, 3]);
    expect(cluster.ledgers[1]!.balanceOf(cluster.clients[0]!.publicKey)).toBe(CLIENT_BALANCE - 1);
    // Client 2's entry (the newest) is still there: its retry gets the cached reply.
    const [cachedRetry] = cluster.submit(transfer(cluster, 2, 3, 1), 1);
    expect(cachedRetry!.replies.map((reply) => decodeResult(reply.reply.result))).toMatchObject([
      { status: 'ok' },
    ]);
  });

  it('within one batch, the reply cache evicts in client-key order, the order a restored replica rebuilds', () => {
    const cluster = new Cluster({ clients: 5, config: { clientTableMax: 2, pipelineDepthMax: 1 } }).start();
    cluster.submit(transfer(cluster, 0, 4, 1));
    // Queued behind seq 1 (one slot in flight), these three share the batch at seq 2.
    const shared = [3, 1, 2].map((index) => transfer(cluster, index, 4, 1));
    for (const request of shared) cluster.submit(request);
    cluster.deliverAll();
    expect(cluster.executed[1]!.map((batch) => batch.requests.length)).toEqual([1, 3]);
    const byKey = [...shared].sort((a, b) => (toHex(a.body.client) < toHex(b.body.client) ? -1 : 1));
    // Kept: the two highest (seq, client); evicted: client 0 (seq 1) and the lowest key at seq 2.
    const [evicted] = cluster.submit(byKey[0]!, 1);
    expect(evicted!.replies).toEqual([]);
    expect(evicted!.events).toMatchObject([{ type: 'request-stale', lastExecutedT: 1 }]);
    for (const kept of byKey.slice(1)) expect(cluster.submit(kept, 1)[0]!.replies).toHaveLength(1);
  });
});
