/**
 * Verify at the edge: every signature in a message, including those nested in certificates, is
 * checked once before the core sees the message. The core then trusts authenticity and checks only
 * protocol rules. Pure given a Verifier, so the runtime and the simulator share it.
 */
import type { Sha256, Verifier } from '../crypto/types.ts';
import type {
  Body,
  CheckpointBody,
  Message,
  PreparedCertificate,
  Signed,
  ViewChangeBody,
} from './messages.ts';
import type { SignatureRejection } from './rejections.ts';

/**
 * (message digest, signature, public key) triples already verified. The digest of the signed bytes
 * is part of the key: a genuine signature attached to other bytes must miss the cache and fail.
 */
export interface VerifiedSignatureCache {
  has(key: string): boolean;
  add(key: string): void;
}

export interface SignatureContext {
  verifier: Verifier;
  /** Public key of each replica, indexed by replica id. */
  replicaKeys: readonly Uint8Array[];
  /** A cache of verified signatures and the hash that keys it by the exact signed bytes. */
  cache?: { verified: VerifiedSignatureCache; sha256: Sha256 };
}

export type { SignatureRejection };

function signerKey(body: Body, context: SignatureContext): Uint8Array | undefined {
  return body.type === 'request' ? body.client : context.replicaKeys[body.replica];
}

/**
 * The cache key of a (signed bytes, signature, public key) triple: SHA-256 over signature ‖ public
 * key ‖ bytes (the first two have fixed lengths, so the concatenation is unambiguous), as a
 * 32-character string of char codes 0-255. Small, so the cache costs tens of bytes per entry
 * rather than the hundreds that the bytes themselves would.
 */
function cacheKeyOf(signed: Signed<Body>, publicKey: Uint8Array, sha256: Sha256): string {
  const input = new Uint8Array(signed.signature.length + publicKey.length + signed.bytes.length);
  input.set(signed.signature, 0);
  input.set(publicKey, signed.signature.length);
  input.set(signed.bytes, signed.signature.length + publicKey.length);
  return String.fromCharCode(...sha256(input));
}

/** A signature the cache has not seen: checked by the caller (here or in a worker), then remembered. */
export interface SignatureToCheck {
  signed: Signed<Body>;
  publicKey: Uint8Array;
  /** The verified-cache key, '' without a cache. */
  cacheKey: string;
}

/**
 * The signatures in a message that still need checking (none when the cache has seen them all), or
 * why the message is refused without checking any (a signer that is not a replica).
 */
export function signaturesToCheck(
  message: Message,
  context: SignatureContext,
): SignatureToCheck[] | SignatureRejection {
  const unchecked: SignatureToCheck[] = [];
  const cache = context.cache;
  // A NEW-VIEW repeats signatures (its VIEW-CHANGEs carry the same proofs): each is checked once.
  const inThisMessage = new Set<string>();
  for (const signed of signedParts(message)) {
    const publicKey = signerKey(signed.body, context);
    if (publicKey === undefined) return 'unknown-replica';
    const cacheKey = cache === undefined ? '' : cacheKeyOf(signed, publicKey, cache.sha256);
    if (cache !== undefined && (inThisMessage.has(cacheKey) || cache.verified.has(cacheKey))) continue;
    inThisMessage.add(cacheKey);
    unchecked.push({ signed, publicKey, cacheKey });
  }
  return unchecked;
}

/** Remember signatures found valid, so the same ones arriving again are not checked again. */
export function rememberVerified(checked: readonly SignatureToCheck[], context: SignatureContext): void {
  const verified = context.cache?.verified;
  if (verified === undefined) return;
  for (const { cacheKey } of checked) verified.add(cacheKey);
}

function* preparedSigned(certificate: PreparedCertificate): Generator<Signed<Body>> {
  yield certificate.prePrepare;
  yield* certificate.prepares;
}

function* viewChangeSigned(viewChange: Signed<ViewChangeBody>): Generator<Signed<Body>> {
  yield viewChange;
  yield* viewChange.body.checkpointProof;
  for (const certificate of viewChange.body.prepared) yield* preparedSigned(certificate);
}

/** Every signed object inside a message, outermost first. */
export function* signedParts(message: Message): Generator<Signed<Body>> {
  switch (message.type) {
    case 'request':
      yield message.request;
      return;
    case 'pre-prepare':
      yield message.prePrepare;
      yield* message.batch;
      return;
    case 'prepare':
      yield message.prepare;
      return;
    case 'commit':
      yield message.commit;
      return;
    case 'checkpoint':
      yield message.checkpoint;
      return;
    case 'view-change':
      yield* viewChangeSigned(message.viewChange);
      return;
    case 'new-view':
      yield message.newView;
      for (const viewChange of message.newView.body.viewChanges) yield* viewChangeSigned(viewChange);
      yield* message.newView.body.prePrepares;
      return;
    case 'fetch-state':
      yield message.fetchState;
      return;
    case 'fetch-batch':
      yield message.fetchBatch;
      return;
    case 'batch':
      // Unsigned by its sender (the digest it must match authenticates it); its requests are not.
      yield* message.batch;
      return;
    case 'state':
      yield message.state;
      yield* message.state.body.checkpointProof as Signed<CheckpointBody>[];
      return;
    case 'reply':
      return;
  }
}

/** Check signatures from `signaturesToCheck` with the context's verifier and remember the valid ones. */
export function verifyUnchecked(
  unchecked: readonly SignatureToCheck[],
  context: SignatureContext,
): SignatureRejection | null {
  for (const { signed, publicKey } of unchecked) {
    if (!context.verifier.verify(signed.signature, signed.bytes, publicKey)) return 'bad-signature';
  }
  rememberVerified(unchecked, context);
  return null;
}

/** null when every signature in the message is valid; otherwise why it is not. */
export function verifyMessageSignatures(
  message: Message,
  context: SignatureContext,
): SignatureRejection | null {
  const unchecked = signaturesToCheck(message, context);
  return typeof unchecked === 'string' ? unchecked : verifyUnchecked(unchecked, context);
}
