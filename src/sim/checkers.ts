/**
 * Invariant checkers run on every simulated seed. They watch what correct replicas execute and what
 * clients accept, and record a violation the moment an invariant breaks.
 */
import { decodeOperation, decodeResult } from '../ledger/operations.ts';
import type { Message } from '../protocol/messages.ts';
import type { ExecutedBatch } from '../protocol/replica.ts';
import { bytesEqual, toHex } from '../util/bytes.ts';

export type ViolationKind =
  | 'agreement'
  | 'order'
  | 'validity'
  | 'exactly-once'
  | 'conservation'
  | 'checkpoint'
  | 'client-result'
  /** A balance a client read from query answers that no correct replica held at or after its writes. */
  | 'client-read'
  | 'liveness'
  /** A correct replica built a frame the transport would drop. */
  | 'frame-size'
  /**
   * A correct replica signed two different things for one slot: PRE-PREPAREs, PREPAREs or COMMITs
   * with different digests for one (view, seq), or CHECKPOINTs with different state digests for one
   * seq. It persists what it signs before sending it, so only one that forgot (a storage fault
   * restarted without recovering) can.
   */
  | 'equivocation'
  | 'replica-crash';

export interface Violation {
  kind: ViolationKind;
  message: string;
}

/** Violations kept per seed: the first few are what matters, and a broken run must stay small. */
const VIOLATIONS_MAX = 20;

export class InvariantCheckers {
  readonly violations: Violation[] = [];
  /** seq → batch digest executed there by the first correct replica to execute it. */
  private readonly batchAtSeq = new Map<number, string>();
  /** seq → the requests (client:t) that actually executed (not skipped) at it. */
  private readonly executedAtSeq = new Map<number, string>();
  /** client:t → result bytes produced by correct replicas. */
  private readonly resultOf = new Map<string, Uint8Array>();
  /** Per correct replica: every client:t it executed (and at which seq), to catch a second execution. */
  private readonly executedBy = new Map<number, Map<string, number>>();
  /** checkpoint seq → state digest of the first correct replica to take it. */
  private readonly checkpointDigest = new Map<number, string>();
  /** client:t → operation bytes, for every request a client actually issued. */
  private readonly issued = new Map<string, Uint8Array>();
  /** client:t → the sequence number at which correct replicas executed it. */
  private readonly seqOf = new Map<string, number>();
  /** Per address, the (seq, position in the batch) of the transfer that created its account. */
  private readonly createdAt = new Map<string, { seq: number; index: number }>();
  /** Every result a correct replica computed for a stranger's request (hex), over its executions. */
  private readonly strangerResultsOf = new Map<string, Set<string>>();
  /** client → the highest sequence number of a request of its that it accepted (read-your-writes). */
  private readonly seenBy = new Map<string, number>();
  /** query id → what correct replicas answered it, and how far each had executed. */
  private readonly answersTo = new Map<number, Array<{ result: Uint8Array; lastExecuted: number }>>();

  /** Per correct replica: `type:view:seq` (CHECKPOINTs: `checkpoint:seq`) → the digest it signed there. */
  private readonly signedBy = new Map<number, Map<string, string>>();
  /** `replica|slot` already reported: a retransmitted equivocation is one violation. */
  private readonly equivocated = new Set<string>();

  /** The genesis total supply, which no execution may change. */
  private readonly supply: number;

  /** `accounts`: the genesis addresses; later accounts are learnt from the transfers that create them. */
  constructor(supply: number, accounts: readonly Uint8Array[] = []) {
    this.supply = supply;
    for (const address of accounts) this.createdAt.set(toHex(address), { seq: 0, index: -1 });
  }

  /**
   * Whether the client of the request at (seq, index) had no account then, judged from what
   * correct replicas executed (an account exists from the successful transfer that paid it first),
   * not from what the replica says.
   */
  private isStranger(client: Uint8Array, seq: number, index: number): boolean {
    const created = this.createdAt.get(toHex(client));
    return created === undefined || created.seq > seq || (created.seq === seq && created.index >= index);
  }

  private noteCreatedAccount(operation: Uint8Array, result: Uint8Array, seq: number, index: number): void {
    let to: Uint8Array;
    try {
      const decoded = decodeOperation(operation);
      if (decoded.type !== 'transfer' || decodeResult(result).status !== 'ok') return;
      to = decoded.to;
    } catch {
      return;
    }
    const key = toHex(to);
    const created = this.createdAt.get(key);
    if (created === undefined || created.seq > seq || (created.seq === seq && created.index > index))
      this.createdAt.set(key, { seq, index });
  }

  violate(kind: ViolationKind, message: string): void {
    if (this.violations.length < VIOLATIONS_MAX) this.violations.push({ kind, message });
  }

  recordIssued(client: Uint8Array, t: number, operation: Uint8Array): void {
    this.issued.set(`${toHex(client)}:${t}`, operation);
  }

  /** A correct replica executed a batch. */
  onExecuted(replica: number, batch: ExecutedBatch, supplyAfter: number): void {
    const digest = toHex(batch.digest);
    const agreed = this.batchAtSeq.get(batch.seq);
    if (agreed === undefined) this.batchAtSeq.set(batch.seq, digest);
    else if (agreed !== digest) {
      this.violate(
        'agreement',
        `replica ${replica} executed batch ${digest.slice(0, 12)} at seq ${batch.seq}, others ${agreed.slice(0, 12)}`,
      );
    }

    let executedHere = this.executedBy.get(replica);
    if (executedHere === undefined) {
      executedHere = new Map();
      this.executedBy.set(replica, executedHere);
    }
    const keys: string[] = [];
    for (const [index, { request, result }] of batch.requests.entries()) {
      const key = `${toHex(request.body.client)}:${request.body.t}`;
      const issuedOperation = this.issued.get(key);
      if (issuedOperation === undefined || !bytesEqual(issuedOperation, request.body.op)) {
        this.violate(
          'validity',
          `replica ${replica} executed request ${key.slice(0, 12)}… that no client issued`,
        );
      }
      if (result === null) continue;
      keys.push(key);
      const stranger = this.isStranger(request.body.client, batch.seq, index);
      this.noteCreatedAccount(request.body.op, result, batch.seq, index);
      // A stranger's request (its key had no account) changes nothing and is kept nowhere, so a
      // replay of it executes again; what must agree is each execution's result, per seq.
      if (stranger) {
        const results = this.strangerResultsOf.get(key) ?? new Set<string>();
        this.strangerResultsOf.set(key, results.add(toHex(result)));
      } else {
        if (executedHere.has(key))
          this.violate('exactly-once', `replica ${replica} executed ${key.slice(0, 12)}… twice`);
        executedHere.set(key, batch.seq);
        if (!this.seqOf.has(key)) this.seqOf.set(key, batch.seq);
      }
      const resultKey = stranger ? `${key}@${batch.seq}` : key;
      const known = this.resultOf.get(resultKey);
      if (known === undefined) this.resultOf.set(resultKey, result);
      else if (!bytesEqual(known, result)) {
        this.violate('agreement', `replica ${replica} computed a different result for ${key.slice(0, 12)}…`);
      }
    }
    const order = keys.join(',');
    const agreedOrder = this.executedAtSeq.get(batch.seq);
    if (agreedOrder === undefined) this.executedAtSeq.set(batch.seq, order);
    else if (agreedOrder !== order)
      this.violate('order', `replica ${replica} executed other requests at seq ${batch.seq}`);

    if (supplyAfter !== this.supply) {
      this.violate(
        'conservation',
        `replica ${replica} has supply ${supplyAfter} after seq ${batch.seq}, genesis ${this.supply}`,
      );
    }
  }

  /**
   * A correct replica restarted from its stable checkpoint at `restoredSeq`: what it executed above
   * that was lost with its memory and will legitimately execute again.
   */
  onRestart(replica: number, restoredSeq: number): void {
    const executedHere = this.executedBy.get(replica);
    if (executedHere === undefined) return;
    for (const [key, seq] of executedHere) if (seq > restoredSeq) executedHere.delete(key);
  }

  /** A correct replica sent `message`: what it signed itself must never contradict what it signed before. */
  onSigned(replica: number, message: Message): void {
    let signed = this.signedBy.get(replica);
    if (signed === undefined) {
      signed = new Map();
      this.signedBy.set(replica, signed);
    }
    for (const { slot, digest } of ownSlots(replica, message)) {
      const before = signed.get(slot);
      if (before === undefined) signed.set(slot, digest);
      else if (before !== digest && !this.equivocated.has(`${replica}|${slot}`)) {
        this.equivocated.add(`${replica}|${slot}`);
        this.violate(
          'equivocation',
          `replica ${replica} signed ${slot} for ${digest.slice(0, 12)} after signing it for ${before.slice(0, 12)}`,
        );
      }
    }
  }

  /** A correct replica took a checkpoint. */
  onCheckpoint(replica: number, seq: number, stateDigest: Uint8Array): void {
    const digest = toHex(stateDigest);
    const agreed = this.checkpointDigest.get(seq);
    if (agreed === undefined) this.checkpointDigest.set(seq, digest);
    else if (agreed !== digest)
      this.violate(
        'checkpoint',
        `replica ${replica} has state digest ${digest.slice(0, 12)} at checkpoint ${seq}`,
      );
  }

  /** A client accepted f+1 matching replies: the result must be what correct replicas computed. */
  onClientAccepted(client: Uint8Array, t: number, result: Uint8Array): void {
    const key = `${toHex(client)}:${t}`;
    const known = this.resultOf.get(key);
    const computed =
      (known !== undefined && bytesEqual(known, result)) ||
      (this.strangerResultsOf.get(key)?.has(toHex(result)) ?? false);
    if (!computed) {
      this.violate(
        'client-result',
        `client accepted a result for ${key.slice(0, 12)}… that no correct replica computed`,
      );
    }
    const seq = this.seqOf.get(key);
    if (seq !== undefined && seq > (this.seenBy.get(toHex(client)) ?? 0)) this.seenBy.set(toHex(client), seq);
  }

  /** A correct replica answered read-only query `id` from its state after executing `lastExecuted`. */
  onQueryAnswered(id: number, result: Uint8Array, lastExecuted: number): void {
    let answers = this.answersTo.get(id);
    if (answers === undefined) {
      answers = [];
      this.answersTo.set(id, answers);
    }
    answers.push({ result, lastExecuted });
  }

  /**
   * A client accepted `result` for its query `id` on matching answers, without ordering the read: a
   * correct replica must have answered it from a state that includes every request the client has
   * accepted so far (read-your-writes). A forged answer, or a stale one that a lagging correct
   * replica shares, fails this.
   */
  onReadAccepted(client: Uint8Array, id: number, result: Uint8Array): void {
    const seen = this.seenBy.get(toHex(client)) ?? 0;
    const held = (this.answersTo.get(id) ?? []).some(
      (answer) => answer.lastExecuted >= seen && bytesEqual(answer.result, result),
    );
    if (!held) {
      this.violate(
        'client-read',
        `client ${toHex(client).slice(0, 12)}… read an answer to query ${id} that no correct replica held at or after its last write (seq ${seen})`,
      );
    }
    this.answersTo.delete(id);
  }

  get highestAgreedSeq(): number {
    return Math.max(0, ...this.batchAtSeq.keys());
  }
}

/** The slots a message signed by `replica` itself speaks for, with the digest it gives each. */
function ownSlots(replica: number, message: Message): Array<{ slot: string; digest: string }> {
  const vote = (type: string, body: { view: number; seq: number; digest: Uint8Array; replica: number }) =>
    body.replica === replica
      ? [{ slot: `${type}:${body.view}:${body.seq}`, digest: toHex(body.digest) }]
      : [];
  switch (message.type) {
    case 'pre-prepare':
      return vote('pre-prepare', message.prePrepare.body);
    case 'prepare':
      return vote('prepare', message.prepare.body);
    case 'commit':
      return vote('commit', message.commit.body);
    case 'checkpoint': {
      const { seq, stateDigest, replica: signer } = message.checkpoint.body;
      return signer === replica ? [{ slot: `checkpoint:${seq}`, digest: toHex(stateDigest) }] : [];
    }
    case 'new-view':
      if (message.newView.body.replica !== replica) return [];
      return message.newView.body.prePrepares.flatMap((prePrepare) => vote('pre-prepare', prePrepare.body));
    default:
      return [];
  }
}
