/**
 * Quorum certificates: digests, and the pure checks a replica applies to certificates it receives
 * (checkpoint proofs, prepared certificates, VIEW-CHANGE, NEW-VIEW). Signatures have already been
 * verified at the edge (see verify.ts); these functions check everything else the protocol requires.
 */
import type { Sha256 } from '../crypto/types.ts';
import { bytesEqual, concatBytes } from '../util/bytes.ts';
import { primaryOf, type Quorums } from './config.ts';
import type {
  CheckpointBody,
  PrePrepareBody,
  PreparedCertificate,
  ReplicaId,
  RequestBody,
  Signed,
  ViewChangeBody,
} from './messages.ts';
import type { CertificateRejection } from './rejections.ts';

/** Digest of one client request: SHA-256 of its canonical signed bytes. */
export function requestDigest(request: Signed<RequestBody>, sha256: Sha256): Uint8Array {
  return sha256(request.bytes);
}

/**
 * Digest of a batch: SHA-256 over the concatenated request digests, so a PRE-PREPARE's signature
 * binds every request in it. The empty batch is the null request used to fill gaps in a NEW-VIEW.
 */
export function batchDigest(batch: readonly Signed<RequestBody>[], sha256: Sha256): Uint8Array {
  return sha256(concatBytes(...batch.map((request) => requestDigest(request, sha256))));
}

export interface CertificateContext {
  quorums: Quorums;
  checkpointInterval: number;
  watermarkWindow: number;
  sha256: Sha256;
}

/** Why a certificate was rejected; stable strings, used as metrics labels. */
export type { CertificateRejection };

export type CheckResult<T> = { ok: true; value: T } | { ok: false; reason: CertificateRejection };

/**
 * A stable checkpoint proof: 2f+1 CHECKPOINTs from distinct replicas for one (seq, digest).
 * Sequence number 0 is the genesis state, which every replica has; its proof is empty.
 */
export function checkCheckpointProof(
  proof: readonly Signed<CheckpointBody>[],
  seq: number,
  context: CertificateContext,
): CheckResult<Uint8Array | null> {
  if (seq === 0) {
    return proof.length === 0
      ? { ok: true, value: null }
      : { ok: false, reason: 'checkpoint-proof-not-empty-at-genesis' };
  }
  if (seq % context.checkpointInterval !== 0) return { ok: false, reason: 'checkpoint-seq-not-on-interval' };
  if (proof.length < context.quorums.quorum) return { ok: false, reason: 'checkpoint-proof-too-small' };
  const digest = proof[0]!.body.stateDigest;
  const signers = new Set<number>();
  for (const checkpoint of proof) {
    if (checkpoint.body.replica >= context.quorums.n) return { ok: false, reason: 'replica-out-of-range' };
    if (checkpoint.body.seq !== seq || !bytesEqual(checkpoint.body.stateDigest, digest)) {
      return { ok: false, reason: 'checkpoint-proof-mismatch' };
    }
    if (signers.has(checkpoint.body.replica))
      return { ok: false, reason: 'checkpoint-proof-duplicate-signer' };
    signers.add(checkpoint.body.replica);
  }
  return { ok: true, value: digest };
}

/**
 * A prepared certificate inside a VIEW-CHANGE for `newView` whose sender's stable checkpoint is
 * `stableSeq`: a PRE-PREPARE header from the primary of an earlier view and 2f PREPAREs from
 * distinct backups of that view matching (view, seq, digest). The batch is not in it; the digest
 * stands for it.
 */
export function checkPreparedCertificate(
  certificate: PreparedCertificate,
  newView: number,
  stableSeq: number,
  context: CertificateContext,
): CertificateRejection | null {
  const { body } = certificate.prePrepare;
  const { n, f } = context.quorums;
  if (body.view >= newView) return 'prepared-view-too-high';
  if (body.replica !== primaryOf(body.view, n)) return 'prepared-not-from-primary';
  if (body.seq <= stableSeq || body.seq > stableSeq + context.watermarkWindow)
    return 'prepared-outside-window';
  const signers = new Set<number>();
  for (const prepare of certificate.prepares) {
    const p = prepare.body;
    if (p.replica >= n) return 'replica-out-of-range';
    if (p.view !== body.view || p.seq !== body.seq || !bytesEqual(p.digest, body.digest)) {
      return 'prepared-prepare-mismatch';
    }
    if (p.replica === body.replica) return 'prepared-prepare-from-primary';
    signers.add(p.replica);
  }
  if (signers.size < 2 * f) return 'prepared-too-few-prepares';
  return null;
}

/** Every rule a VIEW-CHANGE must satisfy besides its signatures. */
export function checkViewChange(
  body: ViewChangeBody,
  context: CertificateContext,
): CertificateRejection | null {
  if (body.replica >= context.quorums.n) return 'replica-out-of-range';
  const proof = checkCheckpointProof(body.checkpointProof, body.stableSeq, context);
  if (!proof.ok) return proof.reason;
  const seqs = new Set<number>();
  for (const certificate of body.prepared) {
    const reason = checkPreparedCertificate(certificate, body.newView, body.stableSeq, context);
    if (reason !== null) return reason;
    const { seq } = certificate.prePrepare.body;
    if (seqs.has(seq)) return 'prepared-duplicate-seq';
    seqs.add(seq);
  }
  return null;
}

/** One slot of a NEW-VIEW's O: the digest of the batch re-proposed at `seq`. */
export interface NewViewSlot {
  seq: number;
  digest: Uint8Array;
  /** The null request (an empty batch, which every replica has without fetching). */
  isNull: boolean;
  /**
   * Replicas that vouched for the batch and so hold it, if correct: the senders of the VIEW-CHANGEs
   * whose certificate for this slot has this digest, and every signer of those certificates. In
   * ascending order, without repeats.
   */
  sources: ReplicaId[];
}

export interface NewViewPlan {
  /** min-s: the highest stable checkpoint in V. */
  stableSeq: number;
  checkpointProof: Signed<CheckpointBody>[];
  /** Slots for every seq in (min-s, max-s], in order. */
  slots: NewViewSlot[];
}

/**
 * Compute O from V (PBFT §4.4): for every sequence number between the highest stable checkpoint
 * and the highest prepared sequence number in V, re-propose the batch of the prepared certificate
 * with the highest view, or the null request when no certificate exists. Deterministic, so every
 * backup recomputes it and rejects a NEW-VIEW whose O differs.
 */
export function computeNewViewPlan(viewChanges: readonly ViewChangeBody[], sha256: Sha256): NewViewPlan {
  let stableSeq = 0;
  let checkpointProof: Signed<CheckpointBody>[] = [];
  for (const viewChange of viewChanges) {
    if (viewChange.stableSeq > stableSeq) {
      stableSeq = viewChange.stableSeq;
      checkpointProof = viewChange.checkpointProof;
    }
  }
  const best = new Map<number, PreparedCertificate>();
  let highestSeq = stableSeq;
  for (const viewChange of viewChanges) {
    for (const certificate of viewChange.prepared) {
      const { seq, view } = certificate.prePrepare.body;
      if (seq <= stableSeq) continue;
      const current = best.get(seq);
      if (current === undefined || view > current.prePrepare.body.view) best.set(seq, certificate);
      if (seq > highestSeq) highestSeq = seq;
    }
  }
  const nullDigest = batchDigest([], sha256);
  const slots: NewViewSlot[] = [];
  for (let seq = stableSeq + 1; seq <= highestSeq; seq++) {
    const certificate = best.get(seq);
    if (certificate === undefined) {
      slots.push({ seq, digest: nullDigest, isNull: true, sources: [] });
      continue;
    }
    const digest = certificate.prePrepare.body.digest;
    slots.push({ seq, digest, isNull: false, sources: vouchersFor(viewChanges, seq, digest) });
  }
  return { stableSeq, checkpointProof, slots };
}

/** Every replica in V that signed or carried a certificate for (`seq`, `digest`). */
function vouchersFor(viewChanges: readonly ViewChangeBody[], seq: number, digest: Uint8Array): ReplicaId[] {
  const vouchers = new Set<ReplicaId>();
  for (const viewChange of viewChanges) {
    for (const certificate of viewChange.prepared) {
      const header = certificate.prePrepare.body;
      if (header.seq !== seq || !bytesEqual(header.digest, digest)) continue;
      vouchers.add(viewChange.replica);
      vouchers.add(header.replica);
      for (const prepare of certificate.prepares) vouchers.add(prepare.body.replica);
    }
  }
  return [...vouchers].sort((a, b) => a - b);
}

/** Does a NEW-VIEW's list of PRE-PREPAREs match the O recomputed from its V? */
export function prePreparesMatchPlan(
  prePrepares: readonly Signed<PrePrepareBody>[],
  plan: NewViewPlan,
  view: number,
  primary: number,
): boolean {
  if (prePrepares.length !== plan.slots.length) return false;
  return plan.slots.every((slot, index) => {
    const body = prePrepares[index]!.body;
    return (
      body.view === view &&
      body.seq === slot.seq &&
      body.replica === primary &&
      bytesEqual(body.digest, slot.digest)
    );
  });
}
