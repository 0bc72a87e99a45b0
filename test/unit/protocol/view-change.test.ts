/** View changes (Castro & Liskov §4.4, §4.5.2). */
import { describe, expect, it } from 'vitest';
import { checkViewChange, computeNewViewPlan } from '../../../src/protocol/certificates.ts';
import type { Message, NewViewBody, PrePrepareBody, Signed } from '../../../src/protocol/messages.ts';
import { bytesEqual } from '../../../src/util/bytes.ts';
import {
  batchDigest,
  Cluster,
  dropViewZeroCommits,
  type Envelope,
  type EnvelopeFilter,
  preparedButNotCommitted,
  primaryEquivocatesAtSeqOne,
  rejections,
  sentOfType,
  sha256,
} from './harness.ts';

type NewViewMessage = Extract<Message, { type: 'new-view' }>;

const nullDigest = batchDigest([], sha256);

/** Tick one replica until its view changes; returns how many ticks it took (or -1). */
function ticksUntilViewMoves(cluster: Cluster, id: number, max: number): number {
  const start = cluster.replica(id).currentView;
  for (let tick = 1; tick <= max; tick++) {
    cluster.tick(id);
    if (cluster.replica(id).currentView !== start) return tick;
  }
  return -1;
}

function certificateContext(cluster: Cluster) {
  return {
    quorums: cluster.q,
    checkpointInterval: cluster.config.checkpointInterval,
    watermarkWindow: cluster.config.watermarkWindow,
    sha256,
  };
}

describe('view change: starting and joining', () => {
  it('a backup whose pending request does not execute before its timer expires moves to v+1', () => {
    const cluster = new Cluster().start();
    const request = cluster.request(0);
    const [received] = cluster.submit(request, 1);
    // It forwards the request to the primary, which never answers (the forward is lost).
    expect(sentOfType(received!, 'request').map((s) => s.to)).toEqual([0]);
    cluster.drop(() => true);
    const T = cluster.config.viewChangeTimeoutTicks;
    for (let i = 1; i < T; i++) {
      cluster.tick(1);
      expect(cluster.replica(1).currentView).toBe(0);
      expect(cluster.replica(1).currentStatus).toBe('normal');
    }
    const expired = cluster.tick(1);
    const backup = cluster.replica(1);
    expect(backup.currentView).toBe(1);
    expect(backup.currentStatus).toBe('view-change');
    expect(expired.events).toContainEqual({ type: 'view-change-started', view: 1, reason: 'timeout' });
    const viewChanges = sentOfType(expired, 'view-change');
    expect(viewChanges).toHaveLength(1);
    expect(viewChanges[0]!.to).toBe('all');
    expect(viewChanges[0]!.message.viewChange.body).toMatchObject({ newView: 1, stableSeq: 0, replica: 1 });
    expect(expired.persist).toContainEqual({ type: 'view', view: 1, viewChangeInProgress: true });

    // It stops accepting messages of view 0 (other than checkpoints, view-changes and new-views).
    const prePrepare = cluster.prePrepare(0, 0, 1, [request]);
    const digest = prePrepare.prePrepare.body.digest;
    for (const message of [prePrepare, cluster.prepare(2, 0, 1, digest), cluster.commit(2, 0, 1, digest)]) {
      const ready = cluster.step(1, message);
      expect(rejections(ready)).toEqual([`${message.type}:old-view`]);
      expect(ready.send).toEqual([]);
      expect(ready.persist).toEqual([]);
    }
  });

  it('the primary does not start a view change while nothing is pending', () => {
    const cluster = new Cluster().start();
    cluster.run(0);
    cluster.tickAll(10 * cluster.config.viewChangeTimeoutMaxTicks);
    cluster.deliverAll();
    for (const replica of cluster.replicas) {
      expect(replica.currentView).toBe(0);
      expect(replica.currentStatus).toBe('normal');
    }
  });

  it.each([4, 7])(
    'f+1 VIEW-CHANGEs for higher views make a replica join the smallest of them (n = %i)',
    (n) => {
      const cluster = new Cluster({ n }).start();
      const { f } = cluster.q;
      const target = n - 1;
      // Views claimed by f+1 distinct replicas; none has target as primary.
      const views = n === 4 ? [5, 2] : [4, 9, 2];
      expect(views).toHaveLength(f + 1);
      for (let i = 0; i < f; i++) {
        const ready = cluster.step(target, {
          type: 'view-change',
          viewChange: cluster.viewChange(i, views[i]!),
        });
        expect(sentOfType(ready, 'view-change')).toEqual([]);
        expect(cluster.replica(target).currentView).toBe(0);
        expect(cluster.replica(target).currentStatus).toBe('normal');
      }
      const ready = cluster.step(target, {
        type: 'view-change',
        viewChange: cluster.viewChange(f, views[f]!),
      });
      const smallest = Math.min(...views);
      expect(cluster.replica(target).currentView).toBe(smallest);
      expect(cluster.replica(target).currentStatus).toBe('view-change');
      expect(ready.events).toContainEqual({ type: 'view-change-started', view: smallest, reason: 'joined' });
      const sent = sentOfType(ready, 'view-change');
      expect(sent.map((s) => s.message.viewChange.body.newView)).toEqual([smallest]);
    },
  );

  it('a replica ignores its own VIEW-CHANGE when counting the f+1 needed to join', () => {
    const cluster = new Cluster().start();
    // Only f = 1 other replica asks for view 3: the target stays.
    cluster.step(3, { type: 'view-change', viewChange: cluster.viewChange(0, 3) });
    expect(cluster.replica(3).currentView).toBe(0);
    // The same replica asking for yet another view is still one replica.
    cluster.step(3, { type: 'view-change', viewChange: cluster.viewChange(0, 5) });
    expect(cluster.replica(3).currentView).toBe(0);
    expect(cluster.replica(3).currentStatus).toBe('normal');
  });
});

describe('view change: timers', () => {
  it('the NEW-VIEW timer starts only after 2f+1 VIEW-CHANGEs', () => {
    const cluster = new Cluster().start();
    const id = 2;
    cluster.submit(cluster.request(0), id);
    cluster.drop(() => true);
    const T = cluster.config.viewChangeTimeoutTicks;
    expect(ticksUntilViewMoves(cluster, id, T)).toBe(T);
    expect(cluster.replica(id).currentView).toBe(1);

    // Alone in view 1 it waits indefinitely (resending its VIEW-CHANGE) rather than racing ahead.
    expect(ticksUntilViewMoves(cluster, id, 20 * T)).toBe(-1);
    cluster.step(id, { type: 'view-change', viewChange: cluster.viewChange(0, 1) });
    expect(ticksUntilViewMoves(cluster, id, 20 * T)).toBe(-1);
    expect(cluster.replica(id).currentStatus).toBe('view-change');

    // The (2f+1)-th VIEW-CHANGE for view 1 (its own counts) starts the timer.
    cluster.step(id, { type: 'view-change', viewChange: cluster.viewChange(3, 1) });
    expect(ticksUntilViewMoves(cluster, id, 20 * T)).toBe(T);
    expect(cluster.replica(id).currentView).toBe(2);
    expect(cluster.events[id]).toContainEqual({ type: 'view-change-started', view: 2, reason: 'timeout' });
  });

  it('the timeout doubles after a view change that brings no progress', () => {
    // n = 7 so that the replica is primary of none of the views it goes through.
    const cluster = new Cluster({ n: 7 }).start();
    const id = 6;
    const others = [0, 1, 2, 3];
    cluster.submit(cluster.request(0), id);
    cluster.drop(() => true);
    const { viewChangeTimeoutTicks: T, viewChangeTimeoutMaxTicks: max } = cluster.config;
    expect(ticksUntilViewMoves(cluster, id, 100)).toBe(T);

    const waits: number[] = [];
    for (let view = 1; view <= 5; view++) {
      expect(cluster.replica(id).currentView).toBe(view);
      // 2f other replicas also want this view, but its primary never sends NEW-VIEW.
      for (const other of others) {
        cluster.step(id, { type: 'view-change', viewChange: cluster.viewChange(other, view) });
      }
      waits.push(ticksUntilViewMoves(cluster, id, 200));
    }
    expect(waits).toEqual([T, 2 * T, 4 * T, Math.min(8 * T, max), Math.min(16 * T, max)]);
    expect(waits.at(-1)).toBe(max);
  });

  it('after a view change that makes progress the timeout returns to its base value', () => {
    const cluster = new Cluster().start();
    preparedButNotCommitted(cluster);
    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    cluster.deliverAll({ drop: dropViewZeroCommits });
    expect(cluster.replica(2).currentView).toBe(1);
    expect(cluster.replica(2).lastExecutedSeq).toBe(1);
    // A new request stalls at backup 2 (its forward is lost): it times out after the base T again.
    cluster.submit(cluster.request(1), 2);
    cluster.drop(() => true);
    expect(ticksUntilViewMoves(cluster, 2, 100)).toBe(cluster.config.viewChangeTimeoutTicks);
    expect(cluster.replica(2).currentView).toBe(2);
  });
});

describe('view change: the request timer against a primary that censors', () => {
  /** Requests of client `index` to the primary are lost: the primary never learns of them. */
  const censoring =
    (cluster: Cluster, index: number): EnvelopeFilter =>
    (e) =>
      e.to === cluster.primaryId() &&
      e.message.type === 'request' &&
      bytesEqual(e.message.request.body.client, cluster.clients[index]!.publicKey);

  /** Tick everyone once, then deliver what that caused (minus `drop`). */
  const tickAndDeliver = (cluster: Cluster, drop: EnvelopeFilter): void => {
    cluster.tickAll(1);
    cluster.deliverAll({ drop });
  };

  it("a backup's request timer is not restarted by executing other clients' batches", () => {
    const cluster = new Cluster().start();
    const T = cluster.config.viewChangeTimeoutTicks;
    const drop = censoring(cluster, 0);
    const censored = cluster.request(0);
    cluster.submit(censored, [1, 2, 3]);
    cluster.deliverAll({ drop });
    let ticks = 0;
    // The primary orders client 1's requests every tick, always well inside the timeout.
    while (cluster.replica(1).currentView === 0 && ticks < 4 * T) {
      cluster.submit(cluster.request(1), 0);
      cluster.deliverAll({ drop });
      tickAndDeliver(cluster, drop);
      ticks++;
    }
    expect(cluster.executedSeqs(1).length).toBeGreaterThan(1);
    // The backups gave up on the primary one timeout after the censored request reached them.
    expect(ticks).toBe(T);
    for (const id of [1, 2, 3]) {
      expect(cluster.events[id]).toContainEqual({ type: 'view-change-started', view: 1, reason: 'timeout' });
    }
    // The new primary (replica 1) had the request and ordered it.
    cluster.deliverAll();
    expect(cluster.replica(1).currentView).toBe(1);
    for (const id of [1, 2, 3]) expect(cluster.repliesFor(id, censored)).toHaveLength(1);
  });

  it('an empty batch is progress for nobody: it does not restart the timer either', () => {
    const cluster = new Cluster().start();
    const T = cluster.config.viewChangeTimeoutTicks;
    const drop = censoring(cluster, 0);
    cluster.submit(cluster.request(0), [1, 2, 3]);
    cluster.deliverAll({ drop });
    for (let tick = 1; tick < T; tick++) {
      // A null PRE-PREPARE for the next slot, one per tick, from the primary itself.
      const seq = cluster.replica(1).lastExecutedSeq + 1;
      for (const id of [1, 2, 3]) cluster.step(id, cluster.prePrepare(0, 0, seq, []));
      cluster.deliverAll({ drop });
      tickAndDeliver(cluster, drop);
      expect(cluster.replica(1).currentView).toBe(0);
    }
    expect(cluster.executedSeqs(1).length).toBe(T - 1);
    tickAndDeliver(cluster, drop);
    expect(cluster.replica(1).currentView).toBe(1);
  });

  it('when the request it waits for executes and another is still pending, the timer restarts for that one', () => {
    const cluster = new Cluster().start();
    const T = cluster.config.viewChangeTimeoutTicks;
    const drop = censoring(cluster, 1);
    const first = cluster.request(0);
    cluster.submit(first, [1, 2, 3]);
    cluster.deliverAll({ drop: (e) => e.message.type === 'request' });
    cluster.tickAll(T - 2);
    // Client 1's request arrives later, and the primary never gets it.
    cluster.submit(cluster.request(1), [1, 2, 3]);
    cluster.deliverAll({ drop });
    cluster.tickAll(1);
    // Just before the timeout, the primary orders the first request after all.
    cluster.submit(first, 0);
    cluster.deliverAll({ drop });
    expect(cluster.repliesFor(1, first)).toHaveLength(1);
    // The timer now waits for client 1's request, a full timeout from this execution.
    for (let tick = 1; tick < T; tick++) {
      tickAndDeliver(cluster, drop);
      expect(cluster.replica(1).currentView).toBe(0);
    }
    tickAndDeliver(cluster, drop);
    expect(cluster.replica(1).currentView).toBe(1);
  });

  it('executing other requests the backup knew were waiting restarts the timer, but only up to viewChangeTimeoutMaxTicks', () => {
    const cluster = new Cluster().start();
    const { viewChangeTimeoutTicks: T, viewChangeTimeoutMaxTicks: max } = cluster.config;
    const drop = censoring(cluster, 0);
    cluster.submit(cluster.request(0), [1, 2, 3]);
    cluster.deliverAll({ drop });
    let ticks = 0;
    // Client 1 sends every request to every replica and the primary orders it at once, every
    // T - 1 ticks: a backlog the backups see being worked through (or a primary that serves
    // everyone but client 0, even clients the backups hear from directly).
    while (cluster.replica(1).currentView === 0 && ticks < 4 * max) {
      if (ticks % (T - 1) === 0) {
        cluster.submit(cluster.request(1), 'all');
        cluster.deliverAll({ drop });
      }
      tickAndDeliver(cluster, drop);
      ticks++;
    }
    expect(cluster.executedSeqs(1).length).toBeGreaterThan(max / T);
    // Not replaced after T (the backlog was moving), but within the bound of the first timing.
    expect(ticks).toBeGreaterThan(T);
    expect(ticks).toBeLessThanOrEqual(max);
    expect(ticks).toBeGreaterThan(max - T);
  });

  it('a client that keeps sending newer requests does not keep the timer off a censored one', () => {
    const cluster = new Cluster().start();
    const T = cluster.config.viewChangeTimeoutTicks;
    // Client 2 is the primary's accomplice: its requests reach the backups first and are never
    // ordered, and it replaces them with newer ones just before each timeout.
    const primaryNeverGets = (e: Envelope): boolean => e.message.type === 'request' && e.to === 0;
    cluster.submit(cluster.request(2), [1, 2, 3]);
    cluster.submit(cluster.request(0), [1, 2, 3]);
    cluster.deliverAll({ drop: primaryNeverGets });
    let ticks = 0;
    while (cluster.replica(1).currentView === 0 && ticks < 10 * T) {
      if (ticks % (T - 1) === T - 2) {
        cluster.submit(cluster.request(2), [1, 2, 3]);
        cluster.deliverAll({ drop: primaryNeverGets });
      }
      tickAndDeliver(cluster, primaryNeverGets);
      ticks++;
    }
    // One timeout for the accomplice's first request (replaced, so not a reason to suspect), then
    // one for the censored request, now the oldest.
    expect(ticks).toBe(2 * T);
  });
});

describe('view change: NEW-VIEW', () => {
  it('the new primary builds O from V: highest-view prepared certificate per sequence number, null requests for gaps', () => {
    const cluster = new Cluster().start();
    const context = certificateContext(cluster);
    const [a, b, c, d] = [0, 1, 2, 3].map((index) => cluster.request(index));
    const cert1 = cluster.preparedCertificate(0, 1, [a!]);
    const cert3view0 = cluster.preparedCertificate(0, 3, [c!]);
    const cert3view1 = cluster.preparedCertificate(1, 3, [d!]);
    const V = [
      cluster.viewChange(0, 2, { prepared: [cert1, cert3view0] }),
      cluster.viewChange(2, 2, { prepared: [cert3view1] }),
      cluster.viewChange(3, 2),
    ];
    for (const viewChange of V) expect(checkViewChange(viewChange.body, context)).toBeNull();
    const expected = {
      stableSeq: 0,
      checkpointProof: [],
      slots: [
        // Vouchers: the VIEW-CHANGE senders that carried the certificate and its signers.
        { seq: 1, digest: cert1.prePrepare.body.digest, isNull: false, sources: [0, 1, 2] },
        { seq: 2, digest: nullDigest, isNull: true, sources: [] },
        { seq: 3, digest: cert3view1.prePrepare.body.digest, isNull: false, sources: [0, 1, 2] },
      ],
    };
    expect(
      computeNewViewPlan(
        V.map((v) => v.body),
        sha256,
      ),
    ).toEqual(expected);
    // Independent of the order of V.
    expect(
      computeNewViewPlan(
        [...V].reverse().map((v) => v.body),
        sha256,
      ),
    ).toEqual(expected);

    // min-s is the highest stable checkpoint in V; certificates at or below it are ignored.
    const stateDigest = sha256(new TextEncoder().encode('state at 4'));
    const proof = [0, 1, 2].map((id) => cluster.checkpoint(id, 4, stateDigest).checkpoint);
    const cert5 = cluster.preparedCertificate(1, 5, [b!]);
    const cert7 = cluster.preparedCertificate(0, 7, [c!]);
    const withCheckpoint = [
      cluster.viewChange(0, 2, { prepared: [cert1, cert3view0, cert7] }),
      cluster.viewChange(1, 2, { stableSeq: 4, checkpointProof: proof, prepared: [cert5] }),
      cluster.viewChange(3, 2),
    ];
    for (const viewChange of withCheckpoint) expect(checkViewChange(viewChange.body, context)).toBeNull();
    expect(
      computeNewViewPlan(
        withCheckpoint.map((v) => v.body),
        sha256,
      ),
    ).toEqual({
      stableSeq: 4,
      checkpointProof: proof,
      slots: [
        { seq: 5, digest: cert5.prePrepare.body.digest, isNull: false, sources: [0, 1, 2] },
        { seq: 6, digest: nullDigest, isNull: true, sources: [] },
        { seq: 7, digest: cert7.prePrepare.body.digest, isNull: false, sources: [0, 1, 2] },
      ],
    });
    // No prepared certificates at all: O is empty.
    expect(
      computeNewViewPlan(
        [0, 1, 3].map((id) => cluster.viewChange(id, 2).body),
        sha256,
      ).slots,
    ).toEqual([]);
  });

  it('VIEW-CHANGEs with invalid prepared certificates are rejected', () => {
    const cluster = new Cluster().start();
    const context = certificateContext(cluster);
    const a = cluster.request(0);
    const good = cluster.preparedCertificate(0, 1, [a]);
    const cases: Array<[string, typeof good]> = [
      ['prepared-too-few-prepares', { ...good, prepares: good.prepares.slice(0, 2 * cluster.q.f - 1) }],
      ['prepared-view-too-high', cluster.preparedCertificate(2, 1, [a])],
      ['prepared-not-from-primary', { ...good, prePrepare: cluster.prePrepare(2, 0, 1, [a]).prePrepare }],
      [
        'prepared-prepare-mismatch',
        {
          ...good,
          prepares: [
            cluster.prepare(
              1,
              0,
              1,
              cluster.preparedCertificate(0, 1, [cluster.request(1)]).prePrepare.body.digest,
            ).prepare,
            good.prepares[1]!,
          ],
        },
      ],
      [
        'prepared-prepare-from-primary',
        {
          ...good,
          prepares: [cluster.prepare(0, 0, 1, good.prePrepare.body.digest).prepare, good.prepares[0]!],
        },
      ],
      ['prepared-outside-window', cluster.preparedCertificate(0, 9, [a])],
    ];
    for (const [reason, certificate] of cases) {
      expect(checkViewChange(cluster.viewChange(3, 2, { prepared: [certificate] }).body, context)).toBe(
        reason,
      );
    }
    // Two prepares from the same backup are one.
    const duplicated = { ...good, prepares: [good.prepares[0]!, good.prepares[0]!] };
    expect(checkViewChange(cluster.viewChange(3, 2, { prepared: [duplicated] }).body, context)).toBe(
      'prepared-too-few-prepares',
    );
  });

  it('only a byte-identical repeat of a stored VIEW-CHANGE skips the check; any other one from that replica is checked', () => {
    const cluster = new Cluster().start();
    const a = cluster.request(0);
    const good = cluster.preparedCertificate(0, 1, [a]);
    const forged = { ...good, prepares: good.prepares.slice(0, 1) };
    const valid = cluster.viewChange(3, 1, { prepared: [good] });
    const invalid = cluster.viewChange(3, 1, { prepared: [forged] });
    // An invalid one is never stored, so its repeats are checked (and rejected) every time.
    for (let copy = 0; copy < 2; copy++) {
      expect(rejections(cluster.step(2, { type: 'view-change', viewChange: invalid }))).toEqual([
        'view-change:prepared-too-few-prepares',
      ]);
    }
    expect(rejections(cluster.step(2, { type: 'view-change', viewChange: valid }))).toEqual([]);
    expect(rejections(cluster.step(2, { type: 'view-change', viewChange: valid }))).toEqual([]);
    // Once a valid one is stored, a different VIEW-CHANGE for the same view is still checked.
    expect(rejections(cluster.step(2, { type: 'view-change', viewChange: invalid }))).toEqual([
      'view-change:prepared-too-few-prepares',
    ]);
  });

  it('end to end, O re-proposes prepared batches with their sequence numbers and fills gaps with null requests', () => {
    const cluster = new Cluster().start();
    const requests = [0, 1, 2].map((index) => cluster.request(index));
    for (const request of requests) cluster.submit(request, 'all');
    // Seq 2's PRE-PREPARE never reaches a backup; every view-0 COMMIT is lost.
    const lost = (e: Envelope) =>
      (e.message.type === 'pre-prepare' &&
        e.message.prePrepare.body.view === 0 &&
        e.message.prePrepare.body.seq === 2) ||
      dropViewZeroCommits(e);
    cluster.deliverAll({ drop: lost });
    for (const replica of cluster.replicas) expect(replica.lastExecutedSeq).toBe(0);

    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    // The backups time out; the primary joins once f+1 of them asked for view 1.
    for (const id of [1, 2, 3]) expect(cluster.replica(id).currentView).toBe(1);
    cluster.deliverAll({ drop: lost });

    const newView = cluster.sent.find((e) => e.message.type === 'new-view')!.message as NewViewMessage;
    expect(newView.newView.body.replica).toBe(1);
    expect(newView.newView.body.viewChanges).toHaveLength(cluster.q.quorum);
    expect(newView.newView.body.prePrepares.map((p) => p.body.seq)).toEqual([1, 2, 3]);
    expect(newView.newView.body.prePrepares[1]!.body.digest).toEqual(nullDigest);

    for (let id = 0; id < cluster.n; id++) {
      const replica = cluster.replica(id);
      expect(replica.currentView).toBe(1);
      expect(replica.currentStatus).toBe('normal');
      const executed = cluster.executed[id]!;
      expect(executed.map((batch) => [batch.seq, batch.view])).toEqual([
        [1, 1],
        [2, 1],
        [3, 1],
        [4, 1],
      ]);
      expect(executed.map((batch) => batch.requests.map((r) => r.request))).toEqual([
        [requests[0]],
        [],
        [requests[2]],
        [requests[1]],
      ]);
      expect(executed[1]!.digest).toEqual(nullDigest);
      for (const request of requests) expect(cluster.repliesFor(id, request)).toHaveLength(1);
    }
  });

  it('a backup rejects a NEW-VIEW whose O does not match V', () => {
    const cluster = new Cluster().start();
    preparedButNotCommitted(cluster);
    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    // The new primary gets every VIEW-CHANGE; its NEW-VIEW is held back.
    cluster.deliverAll({
      drop: dropViewZeroCommits,
      hold: (e) => e.message.type === 'new-view' || e.to === 2,
    });
    expect(cluster.replica(1).currentView).toBe(1);
    expect(cluster.replica(1).currentStatus).toBe('normal');
    const genuine = cluster.peek((e) => e.to === 2 && e.message.type === 'new-view')[0]!
      .message as NewViewMessage;
    const body = genuine.newView.body;
    expect(body.prePrepares).toHaveLength(1);

    const resign = (changes: Partial<NewViewBody>): NewViewMessage => ({
      type: 'new-view',
      newView: cluster.signAs<NewViewBody>(1, { ...body, ...changes }),
    });
    const nullPrePrepare: Signed<PrePrepareBody> = cluster.signAs<PrePrepareBody>(1, {
      ...body.prePrepares[0]!.body,
      digest: nullDigest,
    });
    const extra = cluster.signAs<PrePrepareBody>(1, {
      ...body.prePrepares[0]!.body,
      seq: 2,
      digest: nullDigest,
    });
    const forgeries: Array<[NewViewMessage, string]> = [
      // The prepared request replaced by a null request.
      [resign({ prePrepares: [nullPrePrepare] }), 'new-view:wrong-pre-prepares'],
      // The prepared request left out.
      [resign({ prePrepares: [] }), 'new-view:wrong-pre-prepares'],
      // An extra slot V does not justify.
      [resign({ prePrepares: [body.prePrepares[0]!, extra] }), 'new-view:wrong-pre-prepares'],
      // A V that would drop the prepared certificate: the VIEW-CHANGE carrying it left out.
      [resign({ viewChanges: body.viewChanges.slice(0, 2 * cluster.q.f) }), 'new-view:too-few-view-changes'],
      // The same VIEW-CHANGE twice is not 2f+1 replicas.
      [
        resign({ viewChanges: [body.viewChanges[0]!, body.viewChanges[0]!, body.viewChanges[1]!] }),
        'new-view:too-few-view-changes',
      ],
    ];
    for (const [forged, reason] of forgeries) {
      const ready = cluster.step(2, forged);
      expect(rejections(ready)).toEqual([reason]);
      expect(ready.send).toEqual([]);
      expect(cluster.replica(2).currentStatus).toBe('view-change');
    }
    // A NEW-VIEW signed by a replica that is not the primary of view 1.
    const impostor = {
      type: 'new-view' as const,
      newView: cluster.signAs<NewViewBody>(3, { ...body, replica: 3 }),
    };
    expect(rejections(cluster.step(2, impostor))).toEqual(['new-view:not-from-primary']);

    // The genuine one is accepted: the backup enters view 1 and prepares the re-proposed batch.
    const ready = cluster.step(2, genuine);
    expect(rejections(ready)).toEqual([]);
    expect(cluster.replica(2).currentView).toBe(1);
    expect(cluster.replica(2).currentStatus).toBe('normal');
    expect(sentOfType(ready, 'prepare').map((s) => s.message.prepare.body)).toEqual([
      { type: 'prepare', view: 1, seq: 1, digest: body.prePrepares[0]!.body.digest, replica: 2 },
    ]);
  });

  it.each([4, 7])(
    'a request prepared in view v survives the view change and executes in v+1 (n = %i)',
    (n) => {
      const cluster = new Cluster({ n }).start();
      const request = preparedButNotCommitted(cluster);
      cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
      for (const replica of cluster.replicas.slice(1)) {
        expect(replica.currentView).toBe(1);
        expect(replica.currentStatus).toBe('view-change');
      }
      cluster.deliverAll({ drop: dropViewZeroCommits });
      for (let id = 0; id < n; id++) {
        expect(cluster.replica(id).currentView).toBe(1);
        expect(cluster.replica(id).currentStatus).toBe('normal');
        const executed = cluster.executed[id]!;
        expect(executed).toHaveLength(1);
        expect(executed[0]).toMatchObject({ seq: 1, view: 1 });
        expect(executed[0]!.requests).toEqual([expect.objectContaining({ request })]);
        expect(cluster.repliesFor(id, request)).toEqual([{ status: 'ok', type: 'transfer', balance: 990 }]);
      }
    },
  );

  it('the primary does not suspect itself: its request timer never starts a view change; it joins once f+1 backups ask for a newer view', () => {
    const cluster = new Cluster().start();
    preparedButNotCommitted(cluster);
    for (let i = 0; i < 4 * cluster.config.viewChangeTimeoutTicks; i++) cluster.tick(0);
    expect(cluster.replica(0).currentView).toBe(0);
    expect(cluster.replica(0).currentStatus).toBe('normal');
    expect(cluster.events[0]!.filter((event) => event.type === 'view-change-started')).toEqual([]);
    // f+1 VIEW-CHANGEs for view 1 from backups: at least one correct replica moved, so it follows.
    for (const id of [1, 2]) {
      for (let i = 0; i < cluster.config.viewChangeTimeoutTicks; i++) cluster.tick(id);
    }
    cluster.deliverWhere((e) => e.to === 0 && e.message.type === 'view-change');
    expect(cluster.replica(0).currentView).toBe(1);
    expect(cluster.events[0]).toContainEqual({ type: 'view-change-started', view: 1, reason: 'joined' });
  });

  it('a request committed at one replica in view v executes with the same sequence number at the others in v+1', () => {
    const cluster = new Cluster().start();
    const request = cluster.request(0, { amount: 10 });
    cluster.submit(request, 'all');
    // Only replica 3 gets the COMMITs of view 0 and executes seq 1 there.
    cluster.deliverAll({ drop: (e) => dropViewZeroCommits(e) && e.to !== 3 });
    expect(cluster.executed.map((batches) => batches.length)).toEqual([0, 0, 0, 1]);
    const committed = cluster.executed[3]![0]!;
    expect(committed).toMatchObject({ seq: 1, view: 0 });

    // Replicas 0, 1, 2 time out and change view without replica 3.
    for (const id of [0, 1, 2])
      for (let i = 0; i < cluster.config.viewChangeTimeoutTicks; i++) cluster.tick(id);
    cluster.deliverAll({ drop: (e) => dropViewZeroCommits(e) || e.to === 3 });
    for (const id of [0, 1, 2]) {
      expect(cluster.replica(id).currentView).toBe(1);
      expect(cluster.executed[id]!.map((batch) => [batch.seq, batch.view])).toEqual([[1, 1]]);
      expect(cluster.executed[id]![0]!.digest).toEqual(committed.digest);
    }
    expect(cluster.ledgers[0]!.snapshot()).toEqual(cluster.ledgers[3]!.snapshot());
  });
});

describe('view change: faulty primaries and laggards', () => {
  it('a faulty primary that sends different PRE-PREPAREs for one sequence number cannot get both executed', () => {
    const cluster = new Cluster().start();
    // Replica 0 is faulty: its own core is out of the picture, the test speaks for it.
    const { a, b } = primaryEquivocatesAtSeqOne(cluster);
    for (const id of [1, 2, 3]) expect(cluster.replica(id).lastExecutedSeq).toBe(0);
    // Replica 3 never prepares a: its PRE-PREPARE says b.
    expect(cluster.sent.some((e) => e.from === 3 && e.message.type === 'commit')).toBe(false);

    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    cluster.deliverAll();
    for (const id of [1, 2, 3]) {
      expect(cluster.replica(id).currentView).toBe(1);
      const executed = cluster.executed[id]!;
      expect(executed.map((batch) => [batch.seq, batch.requests.map((r) => r.request)])).toEqual([
        [1, [a]],
        [2, [b]],
      ]);
    }
    expect(cluster.ledgers[3]!.snapshot()).toEqual(cluster.ledgers[1]!.snapshot());
  });

  it('ordering messages from f+1 replicas in a higher view make a replica leave its view', () => {
    const cluster = new Cluster().start();
    const digest = batchDigest([cluster.request(0)], sha256);
    // One replica (f) speaking for view 1 could be faulty: stay.
    for (const message of [cluster.prepare(2, 1, 1, digest), cluster.commit(2, 1, 1, digest)]) {
      const ready = cluster.step(3, message);
      expect(ready.send).toEqual([]);
      expect(ready.persist).toEqual([]);
    }
    expect(cluster.replica(3).currentView).toBe(0);
    expect(cluster.replica(3).currentStatus).toBe('normal');
    // A second one (f+1): at least one correct replica is there.
    const second = cluster.step(3, cluster.commit(0, 1, 1, digest));
    expect(cluster.replica(3).currentView).toBe(1);
    expect(second.events).toContainEqual({ type: 'view-change-started', view: 1, reason: 'behind' });
    expect(sentOfType(second, 'view-change')).toHaveLength(1);
  });

  it('a replica left behind in an old view catches up through the NEW-VIEW of the current one', () => {
    const cluster = new Cluster().start();
    const first = preparedButNotCommitted(cluster);
    // Replicas 0, 1, 2 change view; replica 3 hears none of it.
    for (const id of [0, 1, 2])
      for (let i = 0; i < cluster.config.viewChangeTimeoutTicks; i++) cluster.tick(id);
    cluster.deliverAll({ drop: (e) => dropViewZeroCommits(e) || e.to === 3 });
    expect(cluster.replica(3).currentView).toBe(0);
    expect(cluster.replica(3).currentStatus).toBe('normal');
    for (const id of [0, 1, 2]) expect(cluster.repliesFor(id, first)).toHaveLength(1);

    // New work in view 1 reaches replica 3 again: f+1 replicas speaking for view 1 make it move.
    const next = cluster.request(1);
    cluster.submit(next, 1);
    cluster.deliverAll();
    expect(cluster.events[3]).toContainEqual({ type: 'view-change-started', view: 1, reason: 'behind' });
    // The others answer its VIEW-CHANGE with the NEW-VIEW they entered view 1 with.
    expect(cluster.events[3]).toContainEqual({ type: 'new-view-entered', view: 1 });
    for (let i = 0; i < 2 * cluster.config.retransmitIntervalTicks; i++) {
      cluster.tickAll(1);
      cluster.deliverAll();
    }
    expect(cluster.replica(3).currentView).toBe(1);
    expect(cluster.replica(3).currentStatus).toBe('normal');
    // Seq 1 was re-proposed in the NEW-VIEW: replica 3 executes it in view 1, like the others.
    expect(cluster.executed[3]![0]).toMatchObject({ seq: 1, view: 1 });
    expect(cluster.repliesFor(3, first)).toHaveLength(1);

    // It takes part in ordering again and converges with the others (by execution or, for what it
    // missed while changing view, by state transfer at the next stable checkpoint).
    const K = cluster.config.checkpointInterval;
    for (let t = 0; t < K - 2; t++) cluster.run(2 + t);
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.replica(id).lastExecutedSeq).toBe(K);
      expect(cluster.replica(id).stableCheckpointSeq).toBe(K);
      expect(cluster.ledgers[id]!.snapshot()).toEqual(cluster.ledgers[0]!.snapshot());
    }
    expect(cluster.repliesFor(0, next)).toHaveLength(1);
  });

  it('a NEW-VIEW carrying a newer stable checkpoint makes a lagging replica fetch that state', () => {
    const cluster = new Cluster().start();
    const K = cluster.config.checkpointInterval;
    // Replica 3 misses seqs 1..K; the others make checkpoint K stable, then seq K+1 prepares.
    for (let i = 0; i < K; i++) {
      cluster.submit(cluster.request(i % 3));
      cluster.deliverAll({ drop: (e) => e.to === 3 });
    }
    const pending = cluster.request(0);
    cluster.submit(pending, 'all');
    cluster.deliverAll({
      drop: (e) => dropViewZeroCommits(e) || (e.to === 3 && e.message.type !== 'request'),
    });
    expect(cluster.replica(3).lastExecutedSeq).toBe(0);
    expect(cluster.replica(3).stableCheckpointSeq).toBe(0);

    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    cluster.deliverAll({ drop: dropViewZeroCommits });
    const newView = cluster.sent.find((e) => e.message.type === 'new-view')!.message as NewViewMessage;
    expect(newView.newView.body.prePrepares.map((p) => p.body.seq)).toEqual([K + 1]);
    expect(cluster.events[3]).toContainEqual({ type: 'state-transfer-requested', seq: K });
    expect(cluster.events[3]).toContainEqual({ type: 'state-transferred', seq: K });
    for (let id = 0; id < cluster.n; id++) {
      expect(cluster.replica(id).currentView).toBe(1);
      expect(cluster.replica(id).lastExecutedSeq).toBe(K + 1);
      expect(cluster.repliesFor(id, pending)).toHaveLength(1);
      expect(cluster.ledgers[id]!.snapshot()).toEqual(cluster.ledgers[0]!.snapshot());
    }
  });
});
