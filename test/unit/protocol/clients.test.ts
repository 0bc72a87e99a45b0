/** Clients (Castro & Liskov §4.1): requests reach the primary, replies come from the reply cache. */
import { describe, expect, it } from 'vitest';
import { Cluster, dropViewZeroCommits, preparedButNotCommitted, rejections } from './harness.ts';

describe('clients', () => {
  it('a backup forwards a request to the primary', () => {
    const cluster = new Cluster().start();
    const request = cluster.request(0);
    for (const backup of [1, 2, 3]) {
      const [ready] = cluster.submit(request, backup);
      expect(ready!.send).toEqual([{ to: 0, message: { type: 'request', request } }]);
    }
    // The primary proposes it once, however many backups forwarded it.
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) expect(cluster.executedSeqs(id)).toEqual([1]);
    expect(cluster.sent.filter((e) => e.message.type === 'pre-prepare')).toHaveLength(cluster.n - 1);
  });

  it('a replica holds at most pendingRequestsMax pending requests and answers the next client busy, keeping nothing of it', () => {
    const cluster = new Cluster({ clients: 4, config: { pendingRequestsMax: 2 } }).start();
    cluster.submit(cluster.request(0), 1);
    cluster.submit(cluster.request(1), 1);
    const turnedAway = cluster.request(2);
    const [full] = cluster.submit(turnedAway, 1);
    expect(full!.events).toEqual([
      { type: 'request-busy', client: turnedAway.body.client, t: turnedAway.body.t },
    ]);
    expect(full!.send).toEqual([]);
    expect(cluster.replica(1).pendingRequestCount).toBe(2);
    // A newer request from a client already pending replaces its old one.
    const [newer] = cluster.submit(cluster.request(0), 1);
    expect(rejections(newer!)).toEqual([]);
    expect(cluster.replica(1).pendingRequestCount).toBe(2);
  });

  it('after a view change a backup forwards requests to the new primary', () => {
    const cluster = new Cluster().start();
    preparedButNotCommitted(cluster);
    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    cluster.deliverAll({ drop: dropViewZeroCommits });
    expect(cluster.replica(2).primary).toBe(1);
    const request = cluster.request(2);
    const [ready] = cluster.submit(request, 2);
    expect(ready!.send).toEqual([{ to: 1, message: { type: 'request', request } }]);
    // The old primary is a backup now and forwards too.
    const [fromOld] = cluster.submit(request, 0);
    expect(fromOld!.send).toEqual([{ to: 1, message: { type: 'request', request } }]);
    cluster.deliverAll();
    for (let id = 0; id < cluster.n; id++) expect(cluster.repliesFor(id, request)).toHaveLength(1);
  });

  it('a backup relays a request to the primary once per view, however often the client retries (entering a view counts as the relay)', () => {
    const cluster = new Cluster().start();
    preparedButNotCommitted(cluster);
    const request = cluster.request(2);
    const [first] = cluster.submit(request, 2);
    expect(first!.send).toEqual([{ to: 0, message: { type: 'request', request } }]);
    // The client's retries reach every replica; relaying each copy would multiply the primary's load.
    for (let retry = 0; retry < 3; retry++) {
      const [again] = cluster.submit(request, 2);
      expect(again!.send).toEqual([]);
    }
    // The relay is lost with the old primary's view; the new primary has not seen the request, so
    // entering the new view hands it over once, and the client's retries in that view are not
    // relayed again.
    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    const forwarded = cluster.sent.length;
    cluster.deliverAll({ drop: (e) => dropViewZeroCommits(e) || e.message.type === 'request' });
    expect(cluster.replica(2).primary).toBe(1);
    const handedOver = cluster.sent
      .slice(forwarded)
      .filter((e) => e.from === 2 && e.message.type === 'request' && e.message.request === request);
    expect(handedOver.map((e) => e.to)).toEqual([1]);
    for (let retry = 0; retry < 3; retry++) {
      const [again] = cluster.submit(request, 2);
      expect(again!.send).toEqual([]);
    }
  });
});
