/** PBFT normal case (Castro & Liskov §4.2): PRE-PREPARE, PREPARE, COMMIT. */
import { describe, expect, it } from 'vitest';
import { batchDigest, Cluster, isType, rejections, sentOfType, sha256 } from './harness.ts';

describe.each([4, 7])('normal case, n = %i', (n) => {
  it('a request is executed after pre-prepare, 2f prepares and 2f+1 commits', () => {
    const cluster = new Cluster({ n }).start();
    const request = cluster.request(0, { to: 1, amount: 10 });

    // The primary assigns seq 1 and multicasts PRE-PREPARE; it sends no PREPARE itself.
    const [primaryReady] = cluster.submit(request, 0);
    const prePrepares = sentOfType(primaryReady!, 'pre-prepare');
    expect(prePrepares).toHaveLength(1);
    expect(prePrepares[0]!.to).toBe('all');
    expect(prePrepares[0]!.message.prePrepare.body).toMatchObject({ view: 0, seq: 1, replica: 0 });
    expect(prePrepares[0]!.message.batch).toEqual([request]);
    expect(sentOfType(primaryReady!, 'prepare')).toHaveLength(0);

    // Every backup accepts it and multicasts PREPARE.
    cluster.deliverWhere(isType('pre-prepare'));
    expect(cluster.peek(isType('prepare'))).toHaveLength((n - 1) * (n - 1));
    expect(cluster.peek(isType('commit'))).toHaveLength(0);

    // With 2f matching PREPAREs every replica is prepared and multicasts COMMIT; nothing executes yet.
    cluster.deliverWhere(isType('prepare'));
    expect(cluster.peek(isType('commit'))).toHaveLength(n * (n - 1));
    for (let id = 0; id < n; id++) expect(cluster.executed[id]).toEqual([]);

    // With 2f+1 matching COMMITs every replica executes seq 1 and replies.
    cluster.deliverWhere(isType('commit'));
    for (let id = 0; id < n; id++) {
      expect(cluster.executedSeqs(id)).toEqual([1]);
      expect(cluster.executed[id]![0]!.requests.map((r) => r.request)).toEqual([request]);
      expect(cluster.repliesFor(id, request)).toEqual([{ status: 'ok', type: 'transfer', balance: 990 }]);
      expect(cluster.ledgers[id]!.balanceOf(cluster.clients[1]!.publicKey)).toBe(1010);
      expect(cluster.replica(id).lastExecutedSeq).toBe(1);
    }
  });

  it('prepared requires a PRE-PREPARE plus 2f matching PREPAREs from distinct backups', () => {
    const cluster = new Cluster({ n }).start();
    const { f } = cluster.q;
    const request = cluster.request(0);
    const [primaryReady] = cluster.submit(request, 0);
    const prePrepare = sentOfType(primaryReady!, 'pre-prepare')[0]!.message;
    const digest = prePrepare.prePrepare.body.digest;
    const otherDigest = sha256(new Uint8Array([1, 2, 3]));
    const backup = 1;
    const others = [...Array(n).keys()].filter((id) => id !== 0 && id !== backup);

    // Its own PREPARE is the first of the 2f.
    const accepted = cluster.step(backup, prePrepare);
    expect(sentOfType(accepted, 'prepare')).toHaveLength(1);

    // 2f-1 matching PREPAREs (own included): not prepared, no COMMIT.
    for (const id of others.slice(0, 2 * f - 2)) {
      expect(sentOfType(cluster.step(backup, cluster.prepare(id, 0, 1, digest)), 'commit')).toEqual([]);
    }
    // A duplicate from the same backup is not a second vote.
    if (2 * f - 2 > 0) {
      const duplicate = cluster.step(backup, cluster.prepare(others[0]!, 0, 1, digest));
      expect(sentOfType(duplicate, 'commit')).toEqual([]);
    }
    // A PREPARE for another digest does not match.
    const mismatching = cluster.step(backup, cluster.prepare(others[2 * f - 2]!, 0, 1, otherDigest));
    expect(sentOfType(mismatching, 'commit')).toEqual([]);
    expect(cluster.replica(backup).lastExecutedSeq).toBe(0);

    // The 2f-th matching PREPARE from a distinct backup: prepared, COMMIT multicast.
    const last = cluster.step(backup, cluster.prepare(others[2 * f - 1]!, 0, 1, digest));
    const commits = sentOfType(last, 'commit');
    expect(commits).toHaveLength(1);
    expect(commits[0]!.message.commit.body).toMatchObject({ view: 0, seq: 1, digest, replica: backup });
    expect(last.persist.some((op) => op.type === 'prepared')).toBe(true);
  });

  it('PREPAREs without the PRE-PREPARE do not make a replica prepared', () => {
    const cluster = new Cluster({ n }).start();
    const { f } = cluster.q;
    const [primaryReady] = cluster.submit(cluster.request(0), 0);
    const prePrepare = sentOfType(primaryReady!, 'pre-prepare')[0]!.message;
    const digest = prePrepare.prePrepare.body.digest;
    const backup = n - 1;
    // Every other backup's PREPARE (at least 2f) arrives first.
    for (let id = 1; id < n - 1; id++) {
      expect(sentOfType(cluster.step(backup, cluster.prepare(id, 0, 1, digest)), 'commit')).toEqual([]);
    }
    expect(n - 2).toBeGreaterThanOrEqual(2 * f);
    // The PRE-PREPARE completes the certificate: PREPARE and COMMIT in the same step.
    const ready = cluster.step(backup, prePrepare);
    expect(sentOfType(ready, 'prepare')).toHaveLength(1);
    expect(sentOfType(ready, 'commit')).toHaveLength(1);
  });

  it('committed-local requires prepared plus 2f+1 matching COMMITs', () => {
    const cluster = new Cluster({ n }).start();
    const { f } = cluster.q;
    const request = cluster.request(0);
    const [primaryReady] = cluster.submit(request, 0);
    const prePrepare = sentOfType(primaryReady!, 'pre-prepare')[0]!.message;
    const digest = prePrepare.prePrepare.body.digest;
    const backup = 1;
    const others = [...Array(n).keys()].filter((id) => id !== backup);

    // 2f+1 COMMITs arrive before the replica is prepared: not committed-local.
    cluster.step(backup, prePrepare);
    for (const id of others.slice(0, 2 * f + 1)) {
      expect(cluster.step(backup, cluster.commit(id, 0, 1, digest)).executed).toEqual([]);
    }
    expect(cluster.replica(backup).lastExecutedSeq).toBe(0);
    // Once prepared (own COMMIT now counts too), it executes.
    const backups = others.filter((id) => id !== 0);
    let executedAt = -1;
    for (const [index, id] of backups.slice(0, 2 * f - 1).entries()) {
      const ready = cluster.step(backup, cluster.prepare(id, 0, 1, digest));
      if (ready.executed.length > 0) executedAt = index;
    }
    expect(executedAt).toBe(2 * f - 2);
    expect(cluster.replica(backup).lastExecutedSeq).toBe(1);

    // Now a second replica counting COMMITs one by one: 2f matching (own included) are not enough.
    const second = 2;
    cluster.step(second, prePrepare);
    for (const id of backups.filter((id) => id !== second).slice(0, 2 * f - 1)) {
      cluster.step(second, cluster.prepare(id, 0, 1, digest));
    }
    const voters = [...Array(n).keys()].filter((id) => id !== second);
    for (const id of voters.slice(0, 2 * f - 1)) {
      expect(cluster.step(second, cluster.commit(id, 0, 1, digest)).executed).toEqual([]);
    }
    // A COMMIT for another digest is not a matching vote.
    const otherDigest = batchDigest([cluster.request(3)], sha256);
    expect(cluster.step(second, cluster.commit(voters[2 * f - 1]!, 0, 1, otherDigest)).executed).toEqual([]);
    expect(cluster.replica(second).lastExecutedSeq).toBe(0);
    const ready = cluster.step(second, cluster.commit(voters[2 * f]!, 0, 1, digest));
    expect(ready.executed.map((batch) => batch.seq)).toEqual([1]);
  });
});

describe('normal case: rejected ordering messages', () => {
  it('a replica never accepts two PRE-PREPAREs for the same view and sequence number with different digests', () => {
    const cluster = new Cluster().start();
    const a = cluster.request(0);
    const b = cluster.request(1);
    const first = cluster.prePrepare(0, 0, 1, [a]);
    const conflicting = cluster.prePrepare(0, 0, 1, [b]);
    const digestB = conflicting.prePrepare.body.digest;

    expect(sentOfType(cluster.step(1, first), 'prepare')).toHaveLength(1);
    const ready = cluster.step(1, conflicting);
    expect(sentOfType(ready, 'prepare')).toEqual([]);
    expect(ready.persist).toEqual([]);
    expect(rejections(ready)).toEqual(['pre-prepare:conflicting-pre-prepare']);

    // Even a full quorum for the second digest never makes this replica prepare or commit it.
    const afterVotes = [
      cluster.step(1, cluster.prepare(2, 0, 1, digestB)),
      cluster.step(1, cluster.prepare(3, 0, 1, digestB)),
      cluster.step(1, cluster.commit(0, 0, 1, digestB)),
      cluster.step(1, cluster.commit(2, 0, 1, digestB)),
      cluster.step(1, cluster.commit(3, 0, 1, digestB)),
    ];
    for (const step of afterVotes) {
      expect(sentOfType(step, 'commit')).toEqual([]);
      expect(step.executed).toEqual([]);
    }
    // Every ordering message replica 1 ever signed for (0, 1) carries the first digest (besides
    // those it sent only the FETCH-STATE that announces it at start).
    const signed = cluster.sent.filter(
      (envelope) => envelope.from === 1 && envelope.message.type !== 'fetch-state',
    );
    expect(signed.length).toBeGreaterThan(0);
    for (const { message } of signed) {
      expect(message.type).toBe('prepare');
      if (message.type === 'prepare')
        expect(message.prepare.body.digest).toEqual(first.prePrepare.body.digest);
    }
  });

  it('a vote for a digest other than the accepted PRE-PREPARE is rejected, whether it comes before or after it', () => {
    const cluster = new Cluster().start();
    const a = cluster.request(0);
    const prePrepare = cluster.prePrepare(0, 0, 1, [a]);
    const digest = prePrepare.prePrepare.body.digest;
    const otherDigest = sha256(new Uint8Array([1, 2, 3]));

    // Before the PRE-PREPARE nothing tells which digest is right: the votes are kept.
    expect(rejections(cluster.step(1, cluster.prepare(3, 0, 1, otherDigest)))).toEqual([]);
    expect(rejections(cluster.step(1, cluster.commit(3, 0, 1, otherDigest)))).toEqual([]);
    // The PRE-PREPARE shows them for what they are; once it is there, so is every later one.
    expect(rejections(cluster.step(1, prePrepare))).toEqual([
      'prepare:vote-for-other-digest',
      'commit:vote-for-other-digest',
    ]);
    expect(rejections(cluster.step(1, cluster.prepare(2, 0, 1, otherDigest)))).toEqual([
      'prepare:vote-for-other-digest',
    ]);
    expect(rejections(cluster.step(1, cluster.commit(2, 0, 1, otherDigest)))).toEqual([
      'commit:vote-for-other-digest',
    ]);
    // The lying replica's own honest votes still count: nothing of the lie was kept in its place.
    const matching = [cluster.prepare(2, 0, 1, digest), cluster.prepare(3, 0, 1, digest)];
    for (const prepare of matching) expect(rejections(cluster.step(1, prepare))).toEqual([]);
    // Replica 1's own COMMIT and two others make 2f+1: the last one is the lying replica's.
    expect(cluster.step(1, cluster.commit(0, 0, 1, digest)).executed).toEqual([]);
    const ready = cluster.step(1, cluster.commit(3, 0, 1, digest));
    expect(ready.executed.map((batch) => batch.seq)).toEqual([1]);
  });

  it('PREPAREs from the primary are not counted', () => {
    const cluster = new Cluster().start();
    const prePrepare = cluster.prePrepare(0, 0, 1, [cluster.request(0)]);
    const digest = prePrepare.prePrepare.body.digest;
    cluster.step(1, prePrepare);
    // Own PREPARE plus the primary's would be 2f = 2, but the primary's must not count.
    const fromPrimary = cluster.step(1, cluster.prepare(0, 0, 1, digest));
    expect(rejections(fromPrimary)).toEqual(['prepare:prepare-from-primary']);
    expect(sentOfType(fromPrimary, 'commit')).toEqual([]);
    const fromBackup = cluster.step(1, cluster.prepare(2, 0, 1, digest));
    expect(sentOfType(fromBackup, 'commit')).toHaveLength(1);
  });

  it('a PRE-PREPARE whose digest does not match its batch is rejected', () => {
    const cluster = new Cluster().start();
    const a = cluster.request(0);
    const b = cluster.request(1);
    // Signed over the digest of [a], but carrying [b].
    const forged = cluster.prePrepare(0, 0, 1, [b], batchDigest([a], sha256));
    const ready = cluster.step(1, forged);
    expect(rejections(ready)).toEqual(['pre-prepare:digest-mismatch']);
    expect(ready.send).toEqual([]);
    expect(ready.persist).toEqual([]);
    // The slot is still free: the genuine PRE-PREPARE is accepted afterwards.
    expect(sentOfType(cluster.step(1, cluster.prePrepare(0, 0, 1, [b])), 'prepare')).toHaveLength(1);
  });

  it('only the primary of the view may pre-prepare', () => {
    const cluster = new Cluster().start();
    const request = cluster.request(0);
    // Replica 2 is a backup in view 0; replica 1 is primary of view 1, not of view 0.
    for (const impostor of [2, 1]) {
      const ready = cluster.step(3, cluster.prePrepare(impostor, 0, 1, [request]));
      expect(rejections(ready)).toEqual(['pre-prepare:not-from-primary']);
      expect(ready.send).toEqual([]);
      expect(ready.persist).toEqual([]);
    }
    // A backup does not propose either: a request makes it forward, never pre-prepare.
    const [backupReady] = cluster.submit(request, 3);
    expect(sentOfType(backupReady!, 'pre-prepare')).toEqual([]);
    // The real primary's PRE-PREPARE for the same slot is accepted.
    expect(sentOfType(cluster.step(3, cluster.prePrepare(0, 0, 1, [request])), 'prepare')).toHaveLength(1);
  });
});
