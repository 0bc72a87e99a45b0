import { describe, expect, it } from 'vitest';
import { createVerifier, sha256, type Verifier } from '../../../src/crypto/index.ts';
import {
  type Body,
  type CheckpointBody,
  decodeMessage,
  encodeMessage,
  type Message,
  type NewViewBody,
  type PrepareBody,
  type Signed,
  type StateBody,
  type ViewChangeBody,
} from '../../../src/protocol/messages.ts';
import {
  type SignatureContext,
  signedParts,
  type VerifiedSignatureCache,
  verifyMessageSignatures,
} from '../../../src/protocol/verify.ts';
import {
  digestOf,
  exampleMessages,
  MESSAGE_TYPES,
  REPLICA_COUNT,
  replicaKeys,
  replicaSigners,
  signAs,
  signByReplica,
} from './fixtures.ts';

const verifier = createVerifier();
const examples = exampleMessages();

function context(
  extra: { verifier?: Verifier; replicaKeys?: readonly Uint8Array[]; cache?: VerifiedSignatureCache } = {},
): SignatureContext {
  const { cache, ...rest } = extra;
  return {
    verifier,
    replicaKeys,
    ...rest,
    ...(cache === undefined ? {} : { cache: { verified: cache, sha256 } }),
  };
}

/** A copy of `bytes` with one bit flipped. */
function flipBit(bytes: Uint8Array, index = 0, bit = 0): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[index]! ^= 1 << bit;
  return copy;
}

function withBadSignature<B extends Body>(signed: Signed<B>, index = 5): Signed<B> {
  return { ...signed, signature: flipBit(signed.signature, index, 3) };
}

/** A Verifier that counts the signatures it checks. */
class CountingVerifier implements Verifier {
  calls = 0;
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    this.calls++;
    return verifier.verify(signature, message, publicKey);
  }
}

class SetCache implements VerifiedSignatureCache {
  readonly keys = new Set<string>();
  has(key: string): boolean {
    return this.keys.has(key);
  }
  add(key: string): void {
    this.keys.add(key);
  }
}

function viewChangeOf(message: Message): Signed<ViewChangeBody> {
  if (message.type !== 'view-change') throw new Error('expected a view-change');
  return message.viewChange;
}

function newViewOf(message: Message): Signed<NewViewBody> {
  if (message.type !== 'new-view') throw new Error('expected a new-view');
  return message.newView;
}

/** Rebuild a VIEW-CHANGE around a changed body, re-signed by its sender (so only the nested part is bad). */
function resignViewChange(original: Signed<ViewChangeBody>, body: ViewChangeBody): Signed<ViewChangeBody> {
  const resigned = signByReplica(body);
  expect(resigned.bytes).not.toEqual(original.bytes);
  return resigned;
}

/** A VIEW-CHANGE whose first prepared certificate's first PREPARE has a flipped signature bit. */
function viewChangeWithBadPrepare(original: Signed<ViewChangeBody>): Signed<ViewChangeBody> {
  const [first, ...rest] = original.body.prepared;
  const [prepare, ...otherPrepares] = first!.prepares;
  return resignViewChange(original, {
    ...original.body,
    prepared: [{ ...first!, prepares: [withBadSignature(prepare!), ...otherPrepares] }, ...rest],
  });
}

describe('verifyMessageSignatures accepts correctly signed messages', () => {
  it.each(MESSAGE_TYPES)('%s (and its decoded form) verifies, checking every signed part once', (type) => {
    const message = examples[type];
    const counting = new CountingVerifier();
    expect(verifyMessageSignatures(message, context({ verifier: counting }))).toBeNull();
    expect(counting.calls).toBe([...signedParts(message)].length);
    expect(verifyMessageSignatures(decodeMessage(encodeMessage(message)), context())).toBeNull();
  });

  it('nested signatures are really checked: view-change, new-view, state and pre-prepare batches', () => {
    const seenSigners = new Map<string, number>();
    for (const type of ['pre-prepare', 'view-change', 'new-view', 'state'] as const) {
      const types = [...signedParts(examples[type])].map((part) => part.body.type);
      seenSigners.set(type, new Set(types).size);
    }
    // pre-prepare + request; view-change + checkpoint + pre-prepare + prepare; and so on.
    expect(Object.fromEntries(seenSigners)).toEqual({
      'pre-prepare': 2,
      'view-change': 4,
      'new-view': 5,
      state: 2,
    });
  });
});

describe('verifyMessageSignatures rejects', () => {
  it.each(MESSAGE_TYPES.filter((type) => type !== 'reply'))(
    '%s: a flipped bit in the outer signature is bad-signature',
    (type) => {
      const message = examples[type];
      const outer = signedParts(message).next().value!;
      for (const [index, bit] of [
        [0, 0],
        [31, 7],
        [32, 0],
        [63, 6],
      ] as const) {
        const tampered = { ...outer, signature: flipBit(outer.signature, index, bit) };
        const replaced = replaceOuter(message, tampered);
        expect(verifyMessageSignatures(replaced, context())).toBe('bad-signature');
      }
    },
  );

  it.each(MESSAGE_TYPES.filter((type) => type !== 'reply'))(
    '%s: a flipped bit in the signed bytes is bad-signature',
    (type) => {
      const message = examples[type];
      const outer = signedParts(message).next().value!;
      const tampered = { ...outer, bytes: flipBit(outer.bytes, outer.bytes.length - 1, 0) };
      expect(verifyMessageSignatures(replaceOuter(message, tampered), context())).toBe('bad-signature');
    },
  );

  it('a flipped bit in a nested checkpoint-proof signature (VIEW-CHANGE) is bad-signature', () => {
    const original = viewChangeOf(examples['view-change']);
    const [first, ...rest] = original.body.checkpointProof;
    const viewChange = resignViewChange(original, {
      ...original.body,
      checkpointProof: [...rest, withBadSignature(first!)],
    });
    expect(verifyMessageSignatures({ type: 'view-change', viewChange }, context())).toBe('bad-signature');
  });

  it('a flipped bit in a nested checkpoint-proof signature (STATE) is bad-signature', () => {
    const message = examples.state;
    if (message.type !== 'state') throw new Error('fixture');
    const body: StateBody = {
      ...message.state.body,
      checkpointProof: message.state.body.checkpointProof.map((signed, index) =>
        index === 2 ? withBadSignature(signed) : signed,
      ),
    };
    expect(verifyMessageSignatures({ type: 'state', state: signByReplica(body) }, context())).toBe(
      'bad-signature',
    );
  });

  it('a flipped bit in a nested prepared-certificate PREPARE is bad-signature', () => {
    const viewChange = viewChangeWithBadPrepare(viewChangeOf(examples['view-change']));
    expect(verifyMessageSignatures({ type: 'view-change', viewChange }, context())).toBe('bad-signature');
  });

  it('a flipped bit in a prepared-certificate PRE-PREPARE is bad-signature', () => {
    const original = viewChangeOf(examples['view-change']);
    const prepared = original.body.prepared.map((certificate, index) =>
      index === 1 ? { ...certificate, prePrepare: withBadSignature(certificate.prePrepare) } : certificate,
    );
    const viewChange = resignViewChange(original, { ...original.body, prepared });
    expect(verifyMessageSignatures({ type: 'view-change', viewChange }, context())).toBe('bad-signature');
  });

  it("a flipped bit in a batch request's client signature is bad-signature (PRE-PREPARE and BATCH)", () => {
    const message = examples['pre-prepare'];
    if (message.type !== 'pre-prepare') throw new Error('fixture');
    const batch = [message.batch[0]!, withBadSignature(message.batch[1]!, 40)];
    // The PRE-PREPARE header itself still verifies: only the batch is tampered with.
    expect(verifyMessageSignatures({ ...message, batch }, context())).toBe('bad-signature');
    // A fetched batch is matched by digest, which covers the requests' bodies, not their
    // signatures: those are checked at the edge like a PRE-PREPARE's.
    expect(verifyMessageSignatures({ type: 'batch', seq: 12, batch }, context())).toBe('bad-signature');
    expect(verifyMessageSignatures({ type: 'batch', seq: 12, batch: message.batch }, context())).toBeNull();
  });

  it("a flipped bit in a prepared certificate's PREPARE inside a VIEW-CHANGE is bad-signature", () => {
    const original = viewChangeOf(examples['view-change']);
    const [first, ...rest] = original.body.prepared;
    const viewChange = resignViewChange(original, {
      ...original.body,
      prepared: [
        { ...first!, prepares: [withBadSignature(first!.prepares[0]!), ...first!.prepares.slice(1)] },
        ...rest,
      ],
    });
    expect(verifyMessageSignatures({ type: 'view-change', viewChange }, context())).toBe('bad-signature');
  });

  it('a bad signature anywhere inside a NEW-VIEW is bad-signature', () => {
    const original = newViewOf(examples['new-view']);
    const resign = (body: NewViewBody) => ({ type: 'new-view' as const, newView: signByReplica(body) });
    // A nested VIEW-CHANGE's own signature.
    const badViewChangeSignature = resign({
      ...original.body,
      viewChanges: original.body.viewChanges.map((signed, index) =>
        index === 1 ? withBadSignature(signed) : signed,
      ),
    });
    // A PREPARE two levels down (NEW-VIEW → VIEW-CHANGE → prepared certificate).
    const badDeepPrepare = resign({
      ...original.body,
      viewChanges: original.body.viewChanges.map((signed, index) =>
        index === 2 ? viewChangeWithBadPrepare(signed) : signed,
      ),
    });
    // One of the NEW-VIEW's own PRE-PREPAREs.
    const badPrePrepare = resign({
      ...original.body,
      prePrepares: original.body.prePrepares.map((signed, index) =>
        index === 2 ? withBadSignature(signed) : signed,
      ),
    });
    expect(verifyMessageSignatures(resign(original.body), context())).toBeNull();
    expect(verifyMessageSignatures(badViewChangeSignature, context())).toBe('bad-signature');
    expect(verifyMessageSignatures(badDeepPrepare, context())).toBe('bad-signature');
    expect(verifyMessageSignatures(badPrePrepare, context())).toBe('bad-signature');
  });

  it("a message claiming replica j but signed with replica i's key is bad-signature", () => {
    const body: PrepareBody = { type: 'prepare', view: 0, seq: 3, digest: digestOf(0x33), replica: 2 };
    const impersonation = signAs(replicaSigners[1]!, body);
    expect(verifyMessageSignatures({ type: 'prepare', prepare: impersonation }, context())).toBe(
      'bad-signature',
    );
    // The same body signed by replica 2 itself is fine.
    expect(verifyMessageSignatures({ type: 'prepare', prepare: signByReplica(body) }, context())).toBeNull();

    // Nested: a checkpoint proof entry claiming replica 3 but signed by replica 0.
    const original = viewChangeOf(examples['view-change']);
    const forged = signAs(replicaSigners[0]!, { ...original.body.checkpointProof[0]!.body, replica: 3 });
    const viewChange = resignViewChange(original, {
      ...original.body,
      checkpointProof: [...original.body.checkpointProof, forged],
    });
    expect(verifyMessageSignatures({ type: 'view-change', viewChange }, context())).toBe('bad-signature');
  });

  it('a replica id with no key is unknown-replica (outer and nested)', () => {
    const unknown = REPLICA_COUNT; // valid on the wire (< REPLICAS_MAX) but not in this cluster
    const body: CheckpointBody = { type: 'checkpoint', seq: 10, stateDigest: digestOf(1), replica: unknown };
    const signed = signAs(replicaSigners[0]!, body);
    const message: Message = { type: 'checkpoint', checkpoint: signed };
    expect(verifyMessageSignatures(message, context())).toBe('unknown-replica');
    // It survives the codec unchanged: the rejection happens at verification, not decoding.
    expect(verifyMessageSignatures(decodeMessage(encodeMessage(message)), context())).toBe('unknown-replica');
    // With fewer keys configured, a replica id beyond them is unknown too.
    expect(verifyMessageSignatures(examples.commit, context({ replicaKeys: replicaKeys.slice(0, 3) }))).toBe(
      'unknown-replica',
    );

    const state = examples.state;
    if (state.type !== 'state') throw new Error('fixture');
    const nested = signByReplica({
      ...state.state.body,
      checkpointProof: [...state.state.body.checkpointProof, signed],
    });
    expect(verifyMessageSignatures({ type: 'state', state: nested }, context())).toBe('unknown-replica');
  });

  it('the first failing part decides: an earlier unknown replica wins over a later bad signature', () => {
    const message = examples.state;
    if (message.type !== 'state') throw new Error('fixture');
    const unknown = signAs(replicaSigners[0]!, {
      type: 'checkpoint',
      seq: 20,
      stateDigest: digestOf(2),
      replica: 9,
    });
    const body: StateBody = {
      ...message.state.body,
      checkpointProof: [unknown, withBadSignature(message.state.body.checkpointProof[0]!)],
    };
    expect(verifyMessageSignatures({ type: 'state', state: signByReplica(body) }, context())).toBe(
      'unknown-replica',
    );
  });
});

describe('verification cache', () => {
  it('a valid signature is verified once; later checks are cache hits', () => {
    const counting = new CountingVerifier();
    const cache = new SetCache();
    const message = examples['new-view'];
    const parts = [...signedParts(message)];
    const distinct = new Set(parts.map((part) => Buffer.from(part.signature).toString('hex'))).size;
    expect(verifyMessageSignatures(message, context({ verifier: counting, cache }))).toBeNull();
    // The NEW-VIEW repeats signatures (its three VIEW-CHANGEs carry the same checkpoint proof and
    // certificates): each distinct one is verified once.
    expect(distinct).toBeLessThan(parts.length);
    expect(counting.calls).toBe(distinct);
    expect(cache.keys.size).toBe(distinct);
    expect(verifyMessageSignatures(message, context({ verifier: counting, cache }))).toBeNull();
    expect(
      verifyMessageSignatures(decodeMessage(encodeMessage(message)), context({ verifier: counting, cache })),
    ).toBeNull();
    expect(counting.calls).toBe(distinct);
    // Without a cache every part is verified every time.
    const uncached = new CountingVerifier();
    verifyMessageSignatures(message, context({ verifier: uncached }));
    verifyMessageSignatures(message, context({ verifier: uncached }));
    expect(uncached.calls).toBe(2 * parts.length);
  });

  it('an invalid signature is not cached: it is re-verified and rejected every time', () => {
    const counting = new CountingVerifier();
    const cache = new SetCache();
    const message = examples.prepare;
    if (message.type !== 'prepare') throw new Error('fixture');
    const bad: Message = { type: 'prepare', prepare: withBadSignature(message.prepare) };
    expect(verifyMessageSignatures(bad, context({ verifier: counting, cache }))).toBe('bad-signature');
    expect(verifyMessageSignatures(bad, context({ verifier: counting, cache }))).toBe('bad-signature');
    expect(counting.calls).toBe(2);
    expect(cache.keys.size).toBe(0);
  });

  it('the same signature with different bytes and a different key is verified anew', () => {
    const counting = new CountingVerifier();
    const cache = new SetCache();
    const body: PrepareBody = { type: 'prepare', view: 0, seq: 8, digest: digestOf(0x88), replica: 1 };
    const genuine = signByReplica(body);
    expect(
      verifyMessageSignatures({ type: 'prepare', prepare: genuine }, context({ verifier: counting, cache })),
    ).toBeNull();
    expect(counting.calls).toBe(1);
    // Replica 2's claimed PREPARE reuses replica 1's cached signature.
    const other = signByReplica({ ...body, replica: 2 });
    const replayed: Signed<PrepareBody> = { ...other, signature: genuine.signature };
    expect(replayed.bytes).not.toEqual(genuine.bytes);
    expect(
      verifyMessageSignatures({ type: 'prepare', prepare: replayed }, context({ verifier: counting, cache })),
    ).toBe('bad-signature');
    expect(counting.calls).toBe(2);
  });

  it('the same signature and key with different bytes is not accepted from the cache', () => {
    // A PREPARE from replica 1 for one digest is verified and cached; a forged PREPARE from replica 1
    // for another digest carrying the same signature must not be accepted. Ed25519 signatures are
    // bound to their message, so a cache hit on (signature, key) alone says nothing about new bytes.
    const cache = new SetCache();
    const counting = new CountingVerifier();
    const body: PrepareBody = { type: 'prepare', view: 0, seq: 8, digest: digestOf(0x88), replica: 1 };
    const genuine = signByReplica(body);
    expect(
      verifyMessageSignatures({ type: 'prepare', prepare: genuine }, context({ verifier: counting, cache })),
    ).toBeNull();
    const forgedBody: PrepareBody = { ...body, digest: digestOf(0x99) };
    const forged: Signed<PrepareBody> = {
      ...signAs(replicaSigners[0]!, forgedBody),
      signature: genuine.signature,
    };
    // Without a cache the forgery is rejected...
    expect(verifyMessageSignatures({ type: 'prepare', prepare: forged }, context())).toBe('bad-signature');
    // ...and with the cache it must be rejected too.
    expect(
      verifyMessageSignatures({ type: 'prepare', prepare: forged }, context({ verifier: counting, cache })),
    ).toBe('bad-signature');
  });
});

/** `message` with its outermost signed part replaced. */
function replaceOuter(message: Message, outer: Signed<Body>): Message {
  switch (message.type) {
    case 'request':
      return { type: 'request', request: outer as never };
    case 'pre-prepare':
      return { ...message, prePrepare: outer as never };
    case 'prepare':
      return { type: 'prepare', prepare: outer as never };
    case 'commit':
      return { type: 'commit', commit: outer as never };
    case 'checkpoint':
      return { type: 'checkpoint', checkpoint: outer as never };
    case 'view-change':
      return { type: 'view-change', viewChange: outer as never };
    case 'new-view':
      return { type: 'new-view', newView: outer as never };
    case 'fetch-state':
      return { type: 'fetch-state', fetchState: outer as never };
    case 'fetch-batch':
      return { type: 'fetch-batch', fetchBatch: outer as never };
    case 'batch':
      return { ...message, batch: [outer as never, ...message.batch.slice(1)] };
    case 'state':
      return { type: 'state', state: outer as never };
    case 'reply':
      return message;
  }
}
