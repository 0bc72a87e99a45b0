/**
 * Batches by digest. Certificates carry digests only (certificates.ts), so a replica keeps the
 * batches it vouched for, to hand them to replicas that must prepare or execute them, and fetches
 * the ones it lacks. Two containers, both bounded by the watermark window:
 *
 * - `BatchStore`: every batch this replica accepted a PRE-PREPARE for, by sequence number, for the
 *   few most recent views in which it saw one at that number. A correct replica that signed a
 *   PREPARE for (v, n, d) can then answer for d after it left view v, which is what makes the
 *   digest of a prepared certificate fetchable from its correct signers.
 * - `BatchFetches`: the digests this replica waits for, one per sequence number of its current
 *   view, with the replicas that vouched for them. Asked of f+1 of them at a time (at least one is
 *   correct when f+1 of them are vouchers from one certificate), rotating on every retry.
 */
import { toHex } from '../util/bytes.ts';
import type { ReplicaId, RequestBody, Signed } from './messages.ts';

/**
 * Batches kept per sequence number, for the most recent views that pre-prepared one there. A
 * sequence number normally sees one batch; more come only from view changes without progress.
 */
export const BATCHES_PER_SEQ_MAX = 3;

interface StoredBatch {
  view: number;
  digestHex: string;
  batch: Signed<RequestBody>[];
}

export class BatchStore {
  private readonly bySeq = new Map<number, StoredBatch[]>();

  /** Remember the batch pre-prepared at (`view`, `seq`) with `digest`. */
  add(seq: number, view: number, digest: Uint8Array, batch: Signed<RequestBody>[]): void {
    const digestHex = toHex(digest);
    let stored = this.bySeq.get(seq);
    if (stored === undefined) {
      stored = [];
      this.bySeq.set(seq, stored);
    }
    const same = stored.find((entry) => entry.digestHex === digestHex);
    if (same !== undefined) {
      same.view = Math.max(same.view, view);
    } else {
      stored.push({ view, digestHex, batch });
    }
    stored.sort((a, b) => a.view - b.view);
    while (stored.length > BATCHES_PER_SEQ_MAX) stored.shift();
  }

  find(seq: number, digest: Uint8Array): Signed<RequestBody>[] | undefined {
    const digestHex = toHex(digest);
    return this.bySeq.get(seq)?.find((entry) => entry.digestHex === digestHex)?.batch;
  }

  /** Forget everything at or below a stable checkpoint: state transfer covers it now. */
  prune(stableSeq: number): void {
    for (const seq of this.bySeq.keys()) if (seq <= stableSeq) this.bySeq.delete(seq);
  }

  get seqCount(): number {
    return this.bySeq.size;
  }
}

interface Fetch {
  digest: Uint8Array;
  /** Replicas that vouched for the digest (never this replica). */
  sources: ReplicaId[];
  /** Index into `sources` of the first replica of the next round. */
  nextSource: number;
  /** Rounds of FETCH-BATCH sent so far. */
  rounds: number;
}

export class BatchFetches {
  private readonly bySeq = new Map<number, Fetch>();
  private readonly askPerRound: number;

  /** `askPerRound`: how many vouchers one round asks (f+1: at least one correct among them). */
  constructor(askPerRound: number) {
    this.askPerRound = askPerRound;
  }

  /** Wait for `digest` at `seq`, to be asked of `sources`. Replaces a fetch of an older view. */
  want(seq: number, digest: Uint8Array, sources: readonly ReplicaId[]): void {
    this.bySeq.set(seq, { digest, sources: [...sources], nextSource: 0, rounds: 0 });
  }

  /** The digest awaited at `seq`, if any. */
  awaited(seq: number): Uint8Array | undefined {
    return this.bySeq.get(seq)?.digest;
  }

  done(seq: number): void {
    this.bySeq.delete(seq);
  }

  clear(): void {
    this.bySeq.clear();
  }

  prune(stableSeq: number): void {
    for (const seq of this.bySeq.keys()) if (seq <= stableSeq) this.bySeq.delete(seq);
  }

  /** One round: for every awaited digest, the next `askPerRound` vouchers to ask (rotating). */
  nextRound(): Array<{ seq: number; digest: Uint8Array; ask: ReplicaId[] }> {
    const round: Array<{ seq: number; digest: Uint8Array; ask: ReplicaId[] }> = [];
    for (const [seq, fetch] of this.bySeq) {
      if (fetch.sources.length === 0) continue;
      const count = Math.min(this.askPerRound, fetch.sources.length);
      const ask: ReplicaId[] = [];
      for (let i = 0; i < count; i++) ask.push(fetch.sources[(fetch.nextSource + i) % fetch.sources.length]!);
      fetch.nextSource = (fetch.nextSource + count) % fetch.sources.length;
      fetch.rounds++;
      round.push({ seq, digest: fetch.digest, ask });
    }
    return round;
  }

  get size(): number {
    return this.bySeq.size;
  }
}
