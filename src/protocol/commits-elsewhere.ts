/**
 * Slots that other replicas committed in a view this replica has left.
 *
 * A replica that moved to a newer view alone (or with f or fewer others) ignores the older view's
 * ordering messages, so it cannot execute what the rest committed there after it left; in an idle
 * cluster no request times the rest out to join it and no checkpoint may become stable without it
 * (with f liars, 2f+1 matching CHECKPOINTs need every correct replica). It was stuck for good.
 *
 * A commit certificate ends that without taking part in the old view: 2f+1 COMMITs for (v, n, d)
 * from distinct replicas mean at least f+1 correct replicas prepared d at n in v, so d is committed
 * at n (committed(m, v, n) of Castro & Liskov §4.4), and every correct replica that executes n
 * executes d. Executing it needs no vote of this replica's, so what it promised in its VIEW-CHANGE
 * still holds. The messages come from the peers' answers to its FETCH-STATE (their own messages for
 * the slots it has not executed).
 *
 * Bounded: one COMMIT per sender per sequence number (the highest view), only inside the watermark
 * window, and the batches of PRE-PREPAREs (from the primary of their view only) within a byte
 * budget per sender. What does not fit is sent again at the next answer.
 */
import { bytesEqual, toHex } from '../util/bytes.ts';
import type { CommitBody, ReplicaId, RequestBody, Signed } from './messages.ts';

interface KeptBatch {
  view: number;
  digest: Uint8Array;
  batch: Signed<RequestBody>[];
  bytes: number;
}

interface Slot {
  commits: Map<ReplicaId, Signed<CommitBody>>;
  /** Per sender (the primary of `view`): its PRE-PREPARE's batch. */
  batches: Map<ReplicaId, KeptBatch>;
}

/** A slot certified by 2f+1 COMMITs, with the batch behind the digest. */
export interface CommittedElsewhere {
  seq: number;
  view: number;
  digest: Uint8Array;
  batch: Signed<RequestBody>[];
}

export class CommitsElsewhere {
  private readonly bySeq = new Map<number, Slot>();
  private readonly batchBytesBySender = new Map<ReplicaId, number>();
  private readonly quorum: number;
  private readonly batchBytesPerSenderMax: number;

  /** `quorum`: 2f+1. `batchBytesPerSenderMax`: the byte budget of kept batches per sender. */
  constructor(quorum: number, batchBytesPerSenderMax: number) {
    this.quorum = quorum;
    this.batchBytesPerSenderMax = batchBytesPerSenderMax;
  }

  addCommit(commit: Signed<CommitBody>): void {
    const { seq, replica, view } = commit.body;
    const slot = this.slot(seq);
    const kept = slot.commits.get(replica);
    if (kept === undefined || kept.body.view < view) slot.commits.set(replica, commit);
  }

  /** A PRE-PREPARE's batch, already checked against its digest, from the primary of `view`. */
  addBatch(
    seq: number,
    view: number,
    digest: Uint8Array,
    batch: Signed<RequestBody>[],
    bytes: number,
    sender: ReplicaId,
  ): void {
    const slot = this.slot(seq);
    const kept = slot.batches.get(sender);
    if (kept !== undefined && kept.view >= view) return;
    const used = (this.batchBytesBySender.get(sender) ?? 0) - (kept?.bytes ?? 0);
    if (used + bytes > this.batchBytesPerSenderMax) return;
    slot.batches.set(sender, { view, digest, batch, bytes });
    this.batchBytesBySender.set(sender, used + bytes);
  }

  /**
   * The slot at `seq` if 2f+1 COMMITs certify one (view, digest) there and its batch is known:
   * kept from a PRE-PREPARE, or found by `batchFor` (what this replica itself holds).
   */
  certified(
    seq: number,
    batchFor: (seq: number, digest: Uint8Array) => Signed<RequestBody>[] | undefined,
  ): CommittedElsewhere | undefined {
    const slot = this.bySeq.get(seq);
    if (slot === undefined || slot.commits.size < this.quorum) return undefined;
    const groups = new Map<string, Signed<CommitBody>[]>();
    for (const commit of slot.commits.values()) {
      const key = `${commit.body.view}:${toHex(commit.body.digest)}`;
      groups.set(key, [...(groups.get(key) ?? []), commit]);
    }
    for (const group of groups.values()) {
      if (group.length < this.quorum) continue;
      const { view, digest } = group[0]!.body;
      const batch =
        [...slot.batches.values()].find((kept) => bytesEqual(kept.digest, digest))?.batch ??
        batchFor(seq, digest);
      if (batch !== undefined) return { seq, view, digest, batch };
    }
    return undefined;
  }

  /** Forget everything at or below `seq` (executed, or covered by a stable checkpoint). */
  prune(seq: number): void {
    for (const [slotSeq, slot] of this.bySeq) {
      if (slotSeq > seq) continue;
      for (const [sender, kept] of slot.batches)
        this.batchBytesBySender.set(sender, (this.batchBytesBySender.get(sender) ?? 0) - kept.bytes);
      this.bySeq.delete(slotSeq);
    }
  }

  get seqCount(): number {
    return this.bySeq.size;
  }

  private slot(seq: number): Slot {
    let slot = this.bySeq.get(seq);
    if (slot === undefined) {
      slot = { commits: new Map(), batches: new Map() };
      this.bySeq.set(seq, slot);
    }
    return slot;
  }
}
