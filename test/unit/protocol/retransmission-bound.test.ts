/** Retransmission of a replica's own ordering messages: bounded to its lowest uncommitted slots. */
import { describe, expect, it } from 'vitest';
import type { Message } from '../../../src/protocol/messages.ts';
import { Cluster, type Envelope, seqOf, viewOf } from './harness.ts';

type OrderingType = 'pre-prepare' | 'prepare' | 'commit';
const ORDERING: readonly Message['type'][] = ['pre-prepare', 'prepare', 'commit'];

function isOrdering(message: Message): message is Extract<Message, { type: OrderingType }> {
  return ORDERING.includes(message.type);
}

describe('retransmission', () => {
  it('a replica retransmits its own messages for the lowest two pipelines of uncommitted slots only, and moves on as they commit', () => {
    const cluster = new Cluster({
      config: { watermarkWindow: 16, checkpointInterval: 8, pipelineDepthMax: 2 },
    });
    cluster.start();
    const R = cluster.config.retransmitIntervalTicks;
    const bound = 2 * cluster.config.pipelineDepthMax;

    // View 0: slots 1..7 execute everywhere, one request at a time (no checkpoint yet: interval 8).
    for (let i = 0; i < 7; i++) cluster.run(i % 4);
    for (let id = 0; id < cluster.n; id++) expect(cluster.replica(id).lastExecutedSeq).toBe(7);

    // The primary crashes; a new request makes the backups time out and move to view 1, whose
    // primary (replica 1) re-proposes slots 1..7 in its NEW-VIEW and proposes the request at 8.
    // Nothing sent to replica 1 after that reaches it, so none of its slots commits in view 1.
    cluster.crash(0);
    cluster.submit(cluster.request(0), [1, 2, 3]);
    cluster.tickAll(cluster.config.viewChangeTimeoutTicks);
    const toPrimary = (e: Envelope) => e.to === 1 && isOrdering(e.message);
    cluster.deliverAll({ hold: toPrimary });
    const primary = cluster.replica(1);
    expect(primary.currentView).toBe(1);
    expect(primary.currentStatus).toBe('normal');
    const newView = cluster.sent.find((e) => e.from === 1 && e.message.type === 'new-view')!
      .message as Extract<Message, { type: 'new-view' }>;
    expect(newView.newView.body.prePrepares.map((p) => p.body.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const ownViewOne = cluster.sent
      .filter((e) => e.from === 1 && isOrdering(e.message) && viewOf(e.message) === 1)
      .map((e) => `${e.message.type}:${seqOf(e.message)}`);
    expect([...new Set(ownViewOne)]).toEqual(['pre-prepare:8']);
    // So replica 1 holds its own PRE-PREPAREs for slots 1..8, none committed in view 1 here:
    // twice the bound (two pipelines, 4 slots).
    expect(bound).toBe(4);

    /** Tick replica 1 through one retransmission interval; its own ordering messages sent, sorted. */
    const retransmitted = (): string[] => {
      const sent: Array<{ type: string; seq: number }> = [];
      for (let i = 0; i < R; i++) {
        for (const out of cluster.tick(1).send) {
          if (!isOrdering(out.message)) continue;
          expect(out.to).toBe('all');
          sent.push({ type: out.message.type, seq: seqOf(out.message)! });
        }
      }
      return sent
        .sort((a, b) => a.seq - b.seq || a.type.localeCompare(b.type))
        .map((m) => `${m.type}:${m.seq}`);
    };
    /** Hand replica 1 the held view-1 PREPAREs and COMMITs of these slots (from replicas 2 and 3). */
    const commitAtPrimary = (seqs: number[]): void => {
      const before = cluster.sent.length;
      const delivered = cluster.deliverWhere((e) => toPrimary(e) && seqs.includes(seqOf(e.message)!));
      expect(delivered.length).toBe(4 * seqs.length);
      // It prepared them and sent its COMMITs (to each of the other three).
      const commits = cluster.sent
        .slice(before)
        .filter((e) => e.from === 1 && e.message.type === 'commit')
        .map((e) => seqOf(e.message));
      expect([...new Set(commits)].sort((a, b) => a! - b!)).toEqual(seqs);
    };

    // The lowest two pipelines: slots 1..4, executed in view 0 but not yet committed in view 1.
    expect(retransmitted()).toEqual(['pre-prepare:1', 'pre-prepare:2', 'pre-prepare:3', 'pre-prepare:4']);
    // Again next interval: nothing changed.
    expect(retransmitted()).toEqual(['pre-prepare:1', 'pre-prepare:2', 'pre-prepare:3', 'pre-prepare:4']);

    // Slots 1 and 2 commit in view 1 at replica 1 (it prepares them and sends its COMMITs): the next
    // retransmission moves on to slots 3..6.
    commitAtPrimary([1, 2]);
    expect(retransmitted()).toEqual(['pre-prepare:3', 'pre-prepare:4', 'pre-prepare:5', 'pre-prepare:6']);

    // Slots 3..6 commit: what is left is 7 and 8, below the bound, and the COMMITs of the slots
    // committed here are not resent.
    commitAtPrimary([3, 4, 5, 6]);
    expect(retransmitted()).toEqual(['pre-prepare:7', 'pre-prepare:8']);

    // Slots 7 and 8 commit; 8 executes: nothing is left to retransmit.
    commitAtPrimary([7, 8]);
    expect(primary.lastExecutedSeq).toBe(8);
    expect(retransmitted()).toEqual([]);
  });
});
