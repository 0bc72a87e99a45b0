/**
 * Verify at the edge: every signature in a message, including those nested in certificates, is
 * checked once before the core sees the message. The core then trusts authenticity and checks only
 * protocol rules. Pure given a Verifier, so the runtime and the simulator share it.
 */
import type { Verifier } from '../crypto/types.ts';
import { toHex } from '../util/bytes.ts';
import type {
  Body,
  CheckpointBody,
  Message,
  PreparedCertificate,
  RequestBody,
  Signed,
  ViewChangeBody,
} from './messages.ts';

/**
 * Signatures already verified, keyed by (signature, public key). Sound because verification is
 * strict (no small-order keys): one signature verifying for two messages under one key would need a
 * SHA-512 collision modulo the group order.
 */
export interface VerifiedSignatureCache {
  has(key: string): boolean;
  add(key: string): void;
}

export interface SignatureContext {
  verifier: Verifier;
  /** Public key of each replica, indexed by replica id. */
  replicaKeys: readonly Uint8Array[];
  cache?: VerifiedSignatureCache;
}

export type SignatureRejection = 'unknown-replica' | 'bad-signature';

function signerKey(body: Body, context: SignatureContext): Uint8Array | undefined {
  return body.type === 'request' ? body.client : context.replicaKeys[body.replica];
}

function verifySigned(signed: Signed<Body>, context: SignatureContext): SignatureRejection | null {
  const publicKey = signerKey(signed.body, context);
  if (publicKey === undefined) return 'unknown-replica';
  const cacheKey = context.cache === undefined ? '' : toHex(signed.signature) + toHex(publicKey);
  if (context.cache?.has(cacheKey)) return null;
  if (!context.verifier.verify(signed.signature, signed.bytes, publicKey)) return 'bad-signature';
  context.cache?.add(cacheKey);
  return null;
}

function* preparedSigned(certificate: PreparedCertificate): Generator<Signed<Body>> {
  yield certificate.prePrepare;
  yield* certificate.batch;
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
    case 'state':
      yield message.state;
      yield* message.state.body.checkpointProof as Signed<CheckpointBody>[];
      return;
    case 'reply':
      return;
  }
}

/** null when every signature in the message is valid; otherwise why it is not. */
export function verifyMessageSignatures(
  message: Message,
  context: SignatureContext,
): SignatureRejection | null {
  for (const signed of signedParts(message)) {
    const rejection = verifySigned(signed, context);
    if (rejection !== null) return rejection;
  }
  return null;
}

/** Verify one client request (the client library and the runtime's client protocol use it). */
export function verifyRequestSignature(request: Signed<RequestBody>, verifier: Verifier): boolean {
  return verifier.verify(request.signature, request.bytes, request.body.client);
}
