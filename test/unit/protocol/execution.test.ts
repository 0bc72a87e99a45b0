/** Execution order, exactly-once replies, batching and pipelining (Castro & Liskov §4.2, §5.1). */
import { describe, expect, it } from 'vitest';
import { Cluster, sentOfType, seqOf } from './harness.ts';

describe('execution', () => {
  it('batches execute strictly in sequence order', () => {
    const cluster = new Cluster().start();
    const first = cluster.request(0);
    const second = cluster.request(1);
    cluster.submit(first);
    cluster.submit(second);
    expect(cluster.peek((e) => e.message.type === 'pre-prepare').map((e) => seqOf(e.message))).toEqual([
      1, 1, 1, 2, 2, 2,
    ]);

    // Everything for seq 2 goes through while seq 1 is held back: seq 2 commits but does not execute.
    cluster.deliverAll({ hold: (e) => seqOf(e.message) === 1 });
    expect(cluster.sent.filter((e) => e.message.type === 'commit' && seqOf(e.message) === 2)).toHaveLength(
      cluster.n * (cluster.n - 1),
    );
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.executed[id]).toEqual([]);
      expect(cluster.replica(id).lastExecutedSeq).toBe(0);
    }

    // Once seq 1 commits, both execute, 1 before 2.
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.executedSeqs(id)).toEqual([1, 2]);
      expect(cluster.executed[id]![0]!.requests[0]!.request).toEqual(first);
      expect(cluster.executed[id]![1]!.requests[0]!.request).toEqual(second);
    }
  });

  it('a retransmitted request whose t already executed gets the cached reply and is not executed again', () => {
    const cluster = new Cluster().start();
    cluster.run(0, { amount: 5 });
    const request = cluster.run(0, { amount: 7 });
    const balances = cluster.ledgers.map((ledger) => ledger.balanceOf(cluster.clients[0]!.publicKey));
    expect(balances).toEqual([988, 988, 988, 988]);
    const cached = cluster.replies.map((replies) => replies.at(-1)!.reply);

    // The client retransmits t = 2 to every replica (e.g. it missed replies).
    const readies = cluster.submit(request, 'all');
    readies.forEach((ready, id) => {
      expect(ready.executed).toEqual([]);
      expect(ready.send).toEqual([]);
      expect(ready.replies).toHaveLength(1);
      expect(ready.replies[0]!.reply).toMatchObject({
        t: 2,
        seq: cached[id]!.seq,
        result: cached[id]!.result,
      });
    });
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.executedSeqs(id)).toEqual([1, 2]);
      expect(cluster.ledgers[id]!.balanceOf(cluster.clients[0]!.publicKey)).toBe(988);
    }
    // An older t gets nothing at all.
    const older = cluster.request(0, { t: 1, amount: 5 });
    for (const ready of cluster.submit(older, 'all')) {
      expect(ready.replies).toEqual([]);
      expect(ready.send).toEqual([]);
      expect(ready.executed).toEqual([]);
    }
  });

  it('a request re-proposed in a later slot after it executed is skipped, not executed twice', () => {
    const cluster = new Cluster().start();
    const request = cluster.run(0, { amount: 5 });
    // A faulty primary proposes the same request again at seq 2.
    const again = cluster.prePrepare(0, 0, 2, [request]);
    for (let id = 1; id < cluster.n; id++) cluster.step(id, again);
    cluster.deliverAll();
    for (let id = 1; id < cluster.n; id++) {
      const batch = cluster.executed[id]!.find((b) => b.seq === 2)!;
      expect(batch.requests).toEqual([{ request, result: null }]);
      expect(cluster.ledgers[id]!.balanceOf(cluster.clients[0]!.publicKey)).toBe(995);
      expect(cluster.repliesFor(id, request)).toHaveLength(1);
    }
  });

  it('pipelining: several sequence numbers are in flight at once, up to the pipeline depth', () => {
    const cluster = new Cluster({ clients: 6 }).start();
    const depth = cluster.config.pipelineDepthMax;
    const proposed: number[] = [];
    for (let i = 0; i < depth; i++) {
      const [ready] = cluster.submit(cluster.request(i));
      proposed.push(...sentOfType(ready!, 'pre-prepare').map((s) => s.message.prePrepare.body.seq));
    }
    // Each request got its own sequence number before any of them committed.
    expect(proposed).toEqual([1, 2, 3, 4]);
    // Backups prepare all of them concurrently.
    cluster.deliverAll({ hold: (e) => e.message.type === 'commit' });
    for (let id = 0; id < cluster.n; id++) expect(cluster.replica(id).lastExecutedSeq).toBe(0);
    const commitSeqs = new Set(cluster.peek((e) => e.message.type === 'commit').map((e) => seqOf(e.message)));
    expect([...commitSeqs].sort()).toEqual([1, 2, 3, 4]);
    // The pipeline is full: the next request waits.
    const [full] = cluster.submit(cluster.request(depth));
    expect(sentOfType(full!, 'pre-prepare')).toEqual([]);
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) expect(cluster.executedSeqs(id)).toEqual([1, 2, 3, 4, 5]);
  });

  it('batching: queued requests share one PRE-PREPARE when the pipeline is full', () => {
    const cluster = new Cluster({ clients: 10 }).start();
    const { pipelineDepthMax: depth, batchSizeMax } = cluster.config;
    const requests = cluster.clients.map((client) => cluster.request(client.index));
    const proposedPerRequest = requests.map((request) => {
      const [ready] = cluster.submit(request);
      return sentOfType(ready!, 'pre-prepare').length;
    });
    // The first `depth` requests fill the pipeline one per slot; the rest queue at the primary.
    expect(proposedPerRequest).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) {
      const sizes = cluster.executed[id]!.map((batch) => batch.requests.length);
      // The 6 queued requests went out in batches of at most batchSizeMax, the first one full.
      expect(sizes.slice(0, depth)).toEqual([1, 1, 1, 1]);
      expect(sizes[depth]).toBe(batchSizeMax);
      expect(sizes.every((size) => size <= batchSizeMax)).toBe(true);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(requests.length);
      const executed = cluster.executed[id]!.flatMap((batch) => batch.requests.map((r) => r.request));
      expect(new Set(executed)).toEqual(new Set(requests));
    }
    for (const request of requests) expect(cluster.repliesFor(0, request)).toHaveLength(1);
  });

  it('adaptive batching: requests stepped together (stepAll) share one PRE-PREPARE', () => {
    const cluster = new Cluster({ clients: 3 }).start();
    const requests = cluster.clients.map((client) => cluster.request(client.index));
    const primary = cluster.primaryId();
    const ready = cluster.apply(
      primary,
      cluster.replica(primary).stepAll(requests.map((request) => ({ type: 'request', request }))),
    );
    // One step per request would have taken three sequence numbers (see the pipelining test).
    const prePrepares = sentOfType(ready, 'pre-prepare');
    expect(new Set(prePrepares.map((s) => s.message.prePrepare.body.seq))).toEqual(new Set([1]));
    expect(prePrepares[0]!.message.batch).toEqual(requests);
    // Persisted before anything is sent, in the same Ready.
    expect(ready.persist.filter((op) => op.type === 'log')).toHaveLength(1);
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.executedSeqs(id)).toEqual([1]);
      for (const request of requests) expect(cluster.repliesFor(id, request)).toHaveLength(1);
    }
  });

  it('stepAll of replica messages is the same as stepping them one by one', () => {
    const oneByOne = new Cluster().start();
    const together = new Cluster().start();
    for (const cluster of [oneByOne, together]) cluster.submit(cluster.request(0));
    // Hand each backup its whole inbox at once in `together`, one message at a time in `oneByOne`.
    for (let round = 0; round < 10 && oneByOne.peek().length > 0; round++) {
      const envelopes = oneByOne.drop(() => true);
      together.drop(() => true);
      for (const envelope of envelopes) oneByOne.step(envelope.to, envelope.message);
      for (let id = 0; id < together.n; id++) {
        const messages = envelopes.filter((e) => e.to === id).map((e) => e.message);
        if (messages.length > 0) together.apply(id, together.replica(id).stepAll(messages));
      }
    }
    for (let id = 0; id < oneByOne.n; id++) {
      expect(together.executedSeqs(id)).toEqual(oneByOne.executedSeqs(id));
      expect(together.executedSeqs(id)).toEqual([1]);
      expect(together.storage[id]).toEqual(oneByOne.storage[id]);
    }
  });
});
