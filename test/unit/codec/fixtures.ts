/**
 * Shared builders for the message codec and signature verification tests: a 4-replica cluster
 * (f = 1) and two clients with fixed seeds, and one correctly signed example of every message type.
 */
import { CodecError, encodeCanonical } from '../../../src/codec/cbor.ts';
import { createSigner, publicKeyFromSeed, type Signer, sha256 } from '../../../src/crypto/index.ts';
import { batchDigest } from '../../../src/protocol/certificates.ts';
import type {
  Body,
  CheckpointBody,
  Message,
  MessageType,
  NewViewBody,
  PrePrepareBody,
  PreparedCertificate,
  ReplyBody,
  RequestBody,
  Signed,
  ViewChangeBody,
} from '../../../src/protocol/messages.ts';
import { MESSAGE_TYPES, signBody } from '../../../src/protocol/messages.ts';
import { concatBytes, utf8 } from '../../../src/util/bytes.ts';

export const REPLICA_COUNT = 4;
export const CHECKPOINT_INTERVAL = 10;

function seedOf(byte: number): Uint8Array {
  return new Uint8Array(32).fill(byte);
}

const replicaSeeds = Array.from({ length: REPLICA_COUNT }, (_, i) => seedOf(0x10 + i));
const clientSeeds = [seedOf(0xc0), seedOf(0xc1)];

export const replicaSigners: readonly Signer[] = replicaSeeds.map((seed) => createSigner(seed));
export const replicaKeys: readonly Uint8Array[] = replicaSeeds.map((seed) => publicKeyFromSeed(seed));
export const clientSigners: readonly Signer[] = clientSeeds.map((seed) => createSigner(seed));

/** A recognisable 32-byte digest. */
export function digestOf(byte: number): Uint8Array {
  return new Uint8Array(32).fill(byte);
}

export function signAs<B extends Body>(signer: Signer, body: B): Signed<B> {
  return signBody(body, (bytes) => signer.sign(bytes));
}

export function signByReplica<B extends Exclude<Body, RequestBody>>(body: B): Signed<B> {
  return signAs(replicaSigners[body.replica]!, body);
}

export function request(client: number, t: number, op: string): Signed<RequestBody> {
  const signer = clientSigners[client]!;
  return signAs(signer, { type: 'request', client: signer.publicKey, t, op: utf8(op) });
}

export function prePrepare(view: number, seq: number, batch: Signed<RequestBody>[]): Signed<PrePrepareBody> {
  return signByReplica({
    type: 'pre-prepare',
    view,
    seq,
    digest: batchDigest(batch, sha256),
    replica: view % REPLICA_COUNT,
  });
}

export function checkpointProof(seq: number, stateDigest: Uint8Array): Signed<CheckpointBody>[] {
  return [0, 1, 2].map((replica) => signByReplica({ type: 'checkpoint', seq, stateDigest, replica }));
}

/** A PRE-PREPARE header for the batch from the view's primary and 2f = 2 PREPAREs from backups. */
export function preparedCertificate(
  view: number,
  seq: number,
  batch: Signed<RequestBody>[],
): PreparedCertificate {
  const signedPrePrepare = prePrepare(view, seq, batch);
  const primary = signedPrePrepare.body.replica;
  const backups = [1, 2, 3].map((offset) => (primary + offset) % REPLICA_COUNT).slice(0, 2);
  return {
    prePrepare: signedPrePrepare,
    prepares: backups.map((replica) =>
      signByReplica({ type: 'prepare', view, seq, digest: signedPrePrepare.body.digest, replica }),
    ),
  };
}

export function viewChange(newView: number, replica: number): Signed<ViewChangeBody> {
  return signByReplica({
    type: 'view-change',
    newView,
    stableSeq: CHECKPOINT_INTERVAL,
    checkpointProof: checkpointProof(CHECKPOINT_INTERVAL, digestOf(0x5c)),
    prepared: [
      preparedCertificate(newView - 1, CHECKPOINT_INTERVAL + 1, [request(0, 1, 'a'), request(1, 1, 'b')]),
      preparedCertificate(newView - 1, CHECKPOINT_INTERVAL + 2, [request(0, 2, 'c')]),
    ],
    replica,
  });
}

export function newView(view: number): Signed<NewViewBody> {
  const primary = view % REPLICA_COUNT;
  return signByReplica({
    type: 'new-view',
    view,
    viewChanges: [0, 1, 2].map((replica) => viewChange(view, replica)),
    prePrepares: [
      prePrepare(view, CHECKPOINT_INTERVAL + 1, [request(0, 1, 'a'), request(1, 1, 'b')]),
      prePrepare(view, CHECKPOINT_INTERVAL + 2, [request(0, 2, 'c')]),
      // The null request fills a gap.
      prePrepare(view, CHECKPOINT_INTERVAL + 3, []),
    ],
    replica: primary,
  });
}

export function reply(): ReplyBody {
  return {
    type: 'reply',
    view: 3,
    seq: 17,
    t: 9,
    client: clientSigners[0]!.publicKey,
    replica: 2,
    result: utf8('{"status":"ok"}'),
  };
}

/** One correctly signed example of every message type, with nested certificates where they exist. */
export function exampleMessages(): Record<MessageType, Message> {
  const batch = [request(0, 7, 'transfer 5'), request(1, 3, 'balance')];
  const stateDigest = digestOf(0x5d);
  return {
    request: { type: 'request', request: request(0, 1, 'transfer 10 to bob') },
    'pre-prepare': { type: 'pre-prepare', prePrepare: prePrepare(1, 12, batch), batch },
    prepare: {
      type: 'prepare',
      prepare: signByReplica({
        type: 'prepare',
        view: 1,
        seq: 12,
        digest: batchDigest(batch, sha256),
        replica: 2,
      }),
    },
    commit: {
      type: 'commit',
      commit: signByReplica({
        type: 'commit',
        view: 1,
        seq: 12,
        digest: batchDigest(batch, sha256),
        replica: 3,
      }),
    },
    checkpoint: {
      type: 'checkpoint',
      checkpoint: signByReplica({ type: 'checkpoint', seq: 20, stateDigest, replica: 0 }),
    },
    'view-change': { type: 'view-change', viewChange: viewChange(2, 3) },
    'new-view': { type: 'new-view', newView: newView(2) },
    'fetch-state': {
      type: 'fetch-state',
      fetchState: signByReplica({
        type: 'fetch-state',
        view: 2,
        lastExecuted: 4,
        recovering: false,
        replica: 1,
      }),
    },
    'fetch-batch': {
      type: 'fetch-batch',
      fetchBatch: signByReplica({
        type: 'fetch-batch',
        seq: 12,
        digest: batchDigest(batch, sha256),
        replica: 1,
      }),
    },
    batch: { type: 'batch', seq: 12, batch },
    state: {
      type: 'state',
      state: signByReplica({
        type: 'state',
        checkpointProof: checkpointProof(20, stateDigest),
        snapshot: utf8('snapshot bytes'),
        replica: 2,
      }),
    },
    reply: { type: 'reply', reply: reply() },
  };
}

export { MESSAGE_TYPES };

/** The code of the CodecError thrown by `action`; rethrows anything else, fails if nothing is thrown. */
export function codecErrorCode(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (error instanceof CodecError) return error.code;
    throw error;
  }
  throw new Error('expected a CodecError, but nothing was thrown');
}

/** A copy of `value` whose plain objects have their keys inserted in reverse order, recursively. */
export function reverseKeyOrder<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item) => reverseKeyOrder(item)) as T;
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return value;
  const entries = Object.entries(value).reverse();
  return Object.fromEntries(entries.map(([key, item]) => [key, reverseKeyOrder(item)])) as T;
}

/**
 * Hand-built CBOR, for forms `encodeCanonical` never produces. `map` writes entries in the given
 * order, each value as raw bytes, so tests control key order, duplicates and value encodings.
 */
export const raw = {
  item: (value: unknown): Uint8Array => encodeCanonical(value),
  map(entries: readonly (readonly [string, Uint8Array])[]): Uint8Array {
    if (entries.length > 23) throw new Error('raw.map: at most 23 entries');
    return concatBytes(
      Uint8Array.of(0xa0 + entries.length),
      ...entries.flatMap(([key, value]) => [encodeCanonical(key), value]),
    );
  },
};

/** A 64-byte stand-in signature (decoding does not check signatures). */
export const DUMMY_SIGNATURE = new Uint8Array(64).fill(0x55);

/** A frame `{ type, m: { b: body, s: signature } }` around hand-made body bytes. */
export function frameAroundBody(
  type: string,
  bodyBytes: Uint8Array,
  signature: Uint8Array = DUMMY_SIGNATURE,
): Uint8Array {
  return encodeCanonical({ type, m: { b: bodyBytes, s: signature } });
}
