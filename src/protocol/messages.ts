/**
 * PBFT messages (Castro & Liskov, with signatures) and their strict wire codec.
 *
 * A signed message carries the canonical bytes of its body next to the signature, so verification
 * and digests work on exactly the bytes that were signed and nothing is re-encoded on the hot path.
 * A PRE-PREPARE's batch travels beside the signed header, as in the paper: the signature covers the
 * batch digest, and the receiver recomputes the digest from the batch. Certificates (prepared
 * certificates, VIEW-CHANGE, NEW-VIEW) carry digests only; a replica that lacks the batch behind a
 * digest asks for it with FETCH-BATCH and gets it in a BATCH, which the digest authenticates.
 */
import { CodecError, decodeCanonical, encodeCanonical, FRAME_SIZE_MAX_BYTES } from '../codec/cbor.ts';
import {
  type Fields,
  readArray,
  readBoolean,
  readBytes,
  readLiteral,
  readMap,
  readUint,
} from '../codec/schema.ts';

export const DIGEST_BYTES = 32;
export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
/** Bound on one client operation; the ledger's operations are far smaller. */
export const OPERATION_SIZE_MAX_BYTES = 1024;
/** Bound on requests per PRE-PREPARE; the configured batch size may be smaller, never larger. */
export const BATCH_SIZE_LIMIT = 1024;
/** Bound on replicas in a cluster (3f+1 with f ≤ 33); bounds every certificate list. */
export const REPLICAS_MAX = 100;
/** Bound on prepared certificates in one VIEW-CHANGE and pre-prepares in one NEW-VIEW. */
export const WINDOW_LIMIT = 4096;
/** Bound on an operation result carried in a REPLY. */
export const RESULT_SIZE_MAX_BYTES = 1024;
/** Bound on a state snapshot carried in a STATE message. */
export const SNAPSHOT_SIZE_MAX_BYTES = FRAME_SIZE_MAX_BYTES - 64 * 1024;

export type ReplicaId = number;

export interface RequestBody {
  type: 'request';
  /** The client's ed25519 public key; for the ledger this is the sender's account. */
  client: Uint8Array;
  /** The client's strictly increasing request number. */
  t: number;
  op: Uint8Array;
}

export interface PrePrepareBody {
  type: 'pre-prepare';
  view: number;
  seq: number;
  digest: Uint8Array;
  replica: ReplicaId;
}

export interface PrepareBody {
  type: 'prepare';
  view: number;
  seq: number;
  digest: Uint8Array;
  replica: ReplicaId;
}

export interface CommitBody {
  type: 'commit';
  view: number;
  seq: number;
  digest: Uint8Array;
  replica: ReplicaId;
}

export interface CheckpointBody {
  type: 'checkpoint';
  seq: number;
  stateDigest: Uint8Array;
  replica: ReplicaId;
}

/**
 * A PRE-PREPARE header and 2f matching PREPAREs: proof that the batch with the header's digest
 * prepared. The batch itself is not part of it (Castro's thesis, ch. 6): certificates stay a few
 * hundred bytes per slot whatever the batches hold, and the digest authenticates the batch when a
 * replica fetches it.
 */
export interface PreparedCertificate {
  prePrepare: Signed<PrePrepareBody>;
  prepares: Signed<PrepareBody>[];
}

export interface ViewChangeBody {
  type: 'view-change';
  newView: number;
  /** Sequence number of the sender's stable checkpoint (0 = genesis, needs no proof). */
  stableSeq: number;
  checkpointProof: Signed<CheckpointBody>[];
  prepared: PreparedCertificate[];
  replica: ReplicaId;
}

export interface NewViewBody {
  type: 'new-view';
  view: number;
  viewChanges: Signed<ViewChangeBody>[];
  prePrepares: Signed<PrePrepareBody>[];
  replica: ReplicaId;
}

/**
 * A replica asks to be brought up to date: peers answer with the NEW-VIEW of a newer view, their
 * own messages for slots above `lastExecuted`, and their stable state if it is newer.
 */
export interface FetchStateBody {
  type: 'fetch-state';
  /** The requester's view: peers in a newer view hand over its NEW-VIEW. */
  view: number;
  /** The requester's last executed sequence number: only newer state is useful to it. */
  lastExecuted: number;
  /**
   * The requester recovers from storage it could not trust: every peer answers with its stable
   * checkpoint's proof (a STATE, the snapshot only if newer), which tells it how far the cluster
   * went, and an idle primary pads so that the cluster gets past where the requester may have voted.
   */
  recovering: boolean;
  replica: ReplicaId;
}

/** A replica asks for the batch behind `digest`, which it must prepare or execute at `seq`. */
export interface FetchBatchBody {
  type: 'fetch-batch';
  seq: number;
  digest: Uint8Array;
  replica: ReplicaId;
}

export interface StateBody {
  type: 'state';
  checkpointProof: Signed<CheckpointBody>[];
  snapshot: Uint8Array;
  replica: ReplicaId;
}

export type ReplicaBody =
  | PrePrepareBody
  | PrepareBody
  | CommitBody
  | CheckpointBody
  | ViewChangeBody
  | NewViewBody
  | FetchStateBody
  | FetchBatchBody
  | StateBody;

export type Body = RequestBody | ReplicaBody;

export interface Signed<B extends Body> {
  body: B;
  /** Canonical encoding of `body`: what the signature covers and what digests are taken over. */
  bytes: Uint8Array;
  signature: Uint8Array;
}

/**
 * What a request adds to a batch, by the measure the byte budget (`batchBytesMax`) counts: its
 * signed bytes and its signature. The CBOR framing around each is a few bytes more, bounded by
 * REQUEST_FRAMING_MAX_BYTES.
 */
export function requestWireBytes(request: Signed<RequestBody>): number {
  return request.bytes.length + request.signature.length;
}

/** REPLY. Not signed: it travels on the replica's authenticated (Noise) channel to the client. */
export interface ReplyBody {
  type: 'reply';
  view: number;
  seq: number;
  t: number;
  client: Uint8Array;
  replica: ReplicaId;
  result: Uint8Array;
}

export type Message =
  | { type: 'request'; request: Signed<RequestBody> }
  | { type: 'pre-prepare'; prePrepare: Signed<PrePrepareBody>; batch: Signed<RequestBody>[] }
  | { type: 'prepare'; prepare: Signed<PrepareBody> }
  | { type: 'commit'; commit: Signed<CommitBody> }
  | { type: 'checkpoint'; checkpoint: Signed<CheckpointBody> }
  | { type: 'view-change'; viewChange: Signed<ViewChangeBody> }
  | { type: 'new-view'; newView: Signed<NewViewBody> }
  | { type: 'fetch-state'; fetchState: Signed<FetchStateBody> }
  | { type: 'fetch-batch'; fetchBatch: Signed<FetchBatchBody> }
  /**
   * The answer to FETCH-BATCH: a batch for `seq`. Not signed by the sender: the receiver accepts it
   * only if its digest is one it is waiting for, and every request in it carries its own signature.
   */
  | { type: 'batch'; seq: number; batch: Signed<RequestBody>[] }
  | { type: 'state'; state: Signed<StateBody> }
  | { type: 'reply'; reply: ReplyBody };

export type MessageType = Message['type'];

// ---------------------------------------------------------------------------------------------
// Encoding. Bodies become plain CBOR maps; nested signed messages become { b: bytes, s: sig }.

type WireSigned = { b: Uint8Array; s: Uint8Array };

function wireSigned(signed: Signed<Body>): WireSigned {
  return { b: signed.bytes, s: signed.signature };
}

function bodyToWire(body: Body): Fields {
  switch (body.type) {
    case 'view-change':
      return {
        ...body,
        checkpointProof: body.checkpointProof.map(wireSigned),
        prepared: body.prepared.map(preparedToWire),
      };
    case 'new-view':
      return {
        ...body,
        viewChanges: body.viewChanges.map(wireSigned),
        prePrepares: body.prePrepares.map(wireSigned),
      };
    case 'state':
      return { ...body, checkpointProof: body.checkpointProof.map(wireSigned) };
    default:
      return { ...body };
  }
}

export function encodeBody(body: Body): Uint8Array {
  return encodeCanonical(bodyToWire(body));
}

export function encodeMessage(message: Message): Uint8Array {
  switch (message.type) {
    case 'request':
      return encodeCanonical({ type: message.type, m: wireSigned(message.request) });
    case 'pre-prepare':
      return encodeCanonical({
        type: message.type,
        m: wireSigned(message.prePrepare),
        batch: message.batch.map(wireSigned),
      });
    case 'prepare':
      return encodeCanonical({ type: message.type, m: wireSigned(message.prepare) });
    case 'commit':
      return encodeCanonical({ type: message.type, m: wireSigned(message.commit) });
    case 'checkpoint':
      return encodeCanonical({ type: message.type, m: wireSigned(message.checkpoint) });
    case 'view-change':
      return encodeCanonical({ type: message.type, m: wireSigned(message.viewChange) });
    case 'new-view':
      return encodeCanonical({ type: message.type, m: wireSigned(message.newView) });
    case 'fetch-state':
      return encodeCanonical({ type: message.type, m: wireSigned(message.fetchState) });
    case 'fetch-batch':
      return encodeCanonical({ type: message.type, m: wireSigned(message.fetchBatch) });
    case 'batch':
      return encodeCanonical({ type: message.type, seq: message.seq, batch: message.batch.map(wireSigned) });
    case 'state':
      return encodeCanonical({ type: message.type, m: wireSigned(message.state) });
    case 'reply':
      return encodeCanonical({ type: message.type, m: { ...message.reply } });
  }
}

// ---------------------------------------------------------------------------------------------
// Strict decoding.

export const MESSAGE_TYPES: readonly MessageType[] = [
  'request',
  'pre-prepare',
  'prepare',
  'commit',
  'checkpoint',
  'view-change',
  'new-view',
  'fetch-state',
  'fetch-batch',
  'batch',
  'state',
  'reply',
];

function readDigest(value: unknown, what: string): Uint8Array {
  return readBytes(value, what, DIGEST_BYTES);
}

function readReplica(value: unknown, what: string): ReplicaId {
  return readUint(value, what, REPLICAS_MAX - 1);
}

function readSigned<B extends Body>(
  value: unknown,
  what: string,
  readBody: (fields: unknown, what: string) => B,
): Signed<B> {
  const wire = readMap(value, what, ['b', 's']);
  const bytes = readBytes(wire['b'], `${what}.b`, undefined, FRAME_SIZE_MAX_BYTES);
  const signature = readBytes(wire['s'], `${what}.s`, SIGNATURE_BYTES);
  const body = readBody(decodeCanonical(bytes), `${what}.b`);
  return { body, bytes, signature };
}

function readRequestBody(value: unknown, what: string): RequestBody {
  const fields = readMap(value, what, ['type', 'client', 't', 'op']);
  readLiteral(fields['type'], `${what}.type`, ['request']);
  return {
    type: 'request',
    client: readBytes(fields['client'], `${what}.client`, PUBLIC_KEY_BYTES),
    t: readUint(fields['t'], `${what}.t`),
    op: readBytes(fields['op'], `${what}.op`, undefined, OPERATION_SIZE_MAX_BYTES),
  };
}

function readOrderingBody<T extends 'pre-prepare' | 'prepare' | 'commit'>(
  type: T,
): (
  value: unknown,
  what: string,
) => { type: T; view: number; seq: number; digest: Uint8Array; replica: number } {
  return (value, what) => {
    const fields = readMap(value, what, ['type', 'view', 'seq', 'digest', 'replica']);
    readLiteral(fields['type'], `${what}.type`, [type]);
    return {
      type,
      view: readUint(fields['view'], `${what}.view`),
      seq: readUint(fields['seq'], `${what}.seq`),
      digest: readDigest(fields['digest'], `${what}.digest`),
      replica: readReplica(fields['replica'], `${what}.replica`),
    };
  };
}

const readPrePrepareBody = readOrderingBody('pre-prepare');
const readPrepareBody = readOrderingBody('prepare');
const readCommitBody = readOrderingBody('commit');

function readCheckpointBody(value: unknown, what: string): CheckpointBody {
  const fields = readMap(value, what, ['type', 'seq', 'stateDigest', 'replica']);
  readLiteral(fields['type'], `${what}.type`, ['checkpoint']);
  return {
    type: 'checkpoint',
    seq: readUint(fields['seq'], `${what}.seq`),
    stateDigest: readDigest(fields['stateDigest'], `${what}.stateDigest`),
    replica: readReplica(fields['replica'], `${what}.replica`),
  };
}

function readBatch(value: unknown, what: string): Signed<RequestBody>[] {
  return readArray(value, what, BATCH_SIZE_LIMIT, (item, itemWhat) =>
    readSigned(item, itemWhat, readRequestBody),
  );
}

function readCheckpointProof(value: unknown, what: string): Signed<CheckpointBody>[] {
  return readArray(value, what, REPLICAS_MAX, (item, itemWhat) =>
    readSigned(item, itemWhat, readCheckpointBody),
  );
}

function readPreparedCertificate(value: unknown, what: string): PreparedCertificate {
  const fields = readMap(value, what, ['prePrepare', 'prepares']);
  return {
    prePrepare: readSigned(fields['prePrepare'], `${what}.prePrepare`, readPrePrepareBody),
    prepares: readArray(fields['prepares'], `${what}.prepares`, REPLICAS_MAX, (item, itemWhat) =>
      readSigned(item, itemWhat, readPrepareBody),
    ),
  };
}

function readViewChangeBody(value: unknown, what: string): ViewChangeBody {
  const fields = readMap(value, what, [
    'type',
    'newView',
    'stableSeq',
    'checkpointProof',
    'prepared',
    'replica',
  ]);
  readLiteral(fields['type'], `${what}.type`, ['view-change']);
  return {
    type: 'view-change',
    newView: readUint(fields['newView'], `${what}.newView`),
    stableSeq: readUint(fields['stableSeq'], `${what}.stableSeq`),
    checkpointProof: readCheckpointProof(fields['checkpointProof'], `${what}.checkpointProof`),
    prepared: readArray(fields['prepared'], `${what}.prepared`, WINDOW_LIMIT, readPreparedCertificate),
    replica: readReplica(fields['replica'], `${what}.replica`),
  };
}

function readNewViewBody(value: unknown, what: string): NewViewBody {
  const fields = readMap(value, what, ['type', 'view', 'viewChanges', 'prePrepares', 'replica']);
  readLiteral(fields['type'], `${what}.type`, ['new-view']);
  return {
    type: 'new-view',
    view: readUint(fields['view'], `${what}.view`),
    viewChanges: readArray(fields['viewChanges'], `${what}.viewChanges`, REPLICAS_MAX, (item, itemWhat) =>
      readSigned(item, itemWhat, readViewChangeBody),
    ),
    prePrepares: readArray(fields['prePrepares'], `${what}.prePrepares`, WINDOW_LIMIT, (item, itemWhat) =>
      readSigned(item, itemWhat, readPrePrepareBody),
    ),
    replica: readReplica(fields['replica'], `${what}.replica`),
  };
}

function readFetchStateBody(value: unknown, what: string): FetchStateBody {
  const fields = readMap(value, what, ['type', 'view', 'lastExecuted', 'recovering', 'replica']);
  readLiteral(fields['type'], `${what}.type`, ['fetch-state']);
  return {
    type: 'fetch-state',
    view: readUint(fields['view'], `${what}.view`),
    lastExecuted: readUint(fields['lastExecuted'], `${what}.lastExecuted`),
    recovering: readBoolean(fields['recovering'], `${what}.recovering`),
    replica: readReplica(fields['replica'], `${what}.replica`),
  };
}

function readFetchBatchBody(value: unknown, what: string): FetchBatchBody {
  const fields = readMap(value, what, ['type', 'seq', 'digest', 'replica']);
  readLiteral(fields['type'], `${what}.type`, ['fetch-batch']);
  return {
    type: 'fetch-batch',
    seq: readUint(fields['seq'], `${what}.seq`),
    digest: readDigest(fields['digest'], `${what}.digest`),
    replica: readReplica(fields['replica'], `${what}.replica`),
  };
}

function readStateBody(value: unknown, what: string): StateBody {
  const fields = readMap(value, what, ['type', 'checkpointProof', 'snapshot', 'replica']);
  readLiteral(fields['type'], `${what}.type`, ['state']);
  return {
    type: 'state',
    checkpointProof: readCheckpointProof(fields['checkpointProof'], `${what}.checkpointProof`),
    snapshot: readBytes(fields['snapshot'], `${what}.snapshot`, undefined, SNAPSHOT_SIZE_MAX_BYTES),
    replica: readReplica(fields['replica'], `${what}.replica`),
  };
}

function readReplyBody(value: unknown, what: string): ReplyBody {
  const fields = readMap(value, what, ['type', 'view', 'seq', 't', 'client', 'replica', 'result']);
  readLiteral(fields['type'], `${what}.type`, ['reply']);
  return {
    type: 'reply',
    view: readUint(fields['view'], `${what}.view`),
    seq: readUint(fields['seq'], `${what}.seq`),
    t: readUint(fields['t'], `${what}.t`),
    client: readBytes(fields['client'], `${what}.client`, PUBLIC_KEY_BYTES),
    replica: readReplica(fields['replica'], `${what}.replica`),
    result: readBytes(fields['result'], `${what}.result`, undefined, RESULT_SIZE_MAX_BYTES),
  };
}

/** Decode one frame. Throws CodecError (with a stable `code`) on anything not produced by encodeMessage. */
export function decodeMessage(frame: Uint8Array, maxBytes: number = FRAME_SIZE_MAX_BYTES): Message {
  return readMessage(decodeCanonical(frame, maxBytes));
}

/** A message from a frame already decoded by `decodeCanonical` (the client protocol peeks first). */
export function readMessage(value: unknown): Message {
  const top = value as Fields;
  const type = readLiteral(
    typeof top === 'object' && top !== null ? top['type'] : undefined,
    'message.type',
    MESSAGE_TYPES,
  );
  if (type === 'pre-prepare') {
    const fields = readMap(value, 'message', ['type', 'm', 'batch']);
    return {
      type,
      prePrepare: readSigned(fields['m'], 'pre-prepare', readPrePrepareBody),
      batch: readBatch(fields['batch'], 'pre-prepare.batch'),
    };
  }
  if (type === 'batch') {
    const fields = readMap(value, 'message', ['type', 'seq', 'batch']);
    return {
      type,
      seq: readUint(fields['seq'], 'batch.seq'),
      batch: readBatch(fields['batch'], 'batch.batch'),
    };
  }
  const fields = readMap(value, 'message', ['type', 'm']);
  const m = fields['m'];
  switch (type) {
    case 'request':
      return { type, request: readSigned(m, type, readRequestBody) };
    case 'prepare':
      return { type, prepare: readSigned(m, type, readPrepareBody) };
    case 'commit':
      return { type, commit: readSigned(m, type, readCommitBody) };
    case 'checkpoint':
      return { type, checkpoint: readSigned(m, type, readCheckpointBody) };
    case 'view-change':
      return { type, viewChange: readSigned(m, type, readViewChangeBody) };
    case 'new-view':
      return { type, newView: readSigned(m, type, readNewViewBody) };
    case 'fetch-state':
      return { type, fetchState: readSigned(m, type, readFetchStateBody) };
    case 'fetch-batch':
      return { type, fetchBatch: readSigned(m, type, readFetchBatchBody) };
    case 'state':
      return { type, state: readSigned(m, type, readStateBody) };
    case 'reply':
      return { type, reply: readReplyBody(m, type) };
    default:
      throw new CodecError('UNKNOWN_TYPE', `message.type: unsupported ${type}`);
  }
}

/** Sign a body with a signing function; the result carries the canonical bytes that were signed. */
export function signBody<B extends Body>(body: B, sign: (bytes: Uint8Array) => Uint8Array): Signed<B> {
  const bytes = encodeBody(body);
  return { body, bytes, signature: sign(bytes) };
}

/** The replica id that signed a replica message (the signature is checked against this id's key). */
export function signerOf(body: ReplicaBody): ReplicaId {
  return body.replica;
}

// ---------------------------------------------------------------------------------------------
// Records that are not messages but are persisted: prepared certificates and stable checkpoints.

function preparedToWire(certificate: PreparedCertificate): Fields {
  return {
    prePrepare: wireSigned(certificate.prePrepare),
    prepares: certificate.prepares.map(wireSigned),
  };
}

/**
 * A prepared certificate as a replica keeps it: with the batch it certifies. The batch stays on
 * this replica's disk (a replica that vouched for a digest must be able to hand over its batch,
 * also after a restart); only the certificate travels in VIEW-CHANGEs.
 */
export interface PreparedSlot {
  certificate: PreparedCertificate;
  batch: Signed<RequestBody>[];
}

export function encodePreparedSlot(slot: PreparedSlot): Uint8Array {
  return encodeCanonical({
    certificate: preparedToWire(slot.certificate),
    batch: slot.batch.map(wireSigned),
  });
}

export function decodePreparedSlot(bytes: Uint8Array): PreparedSlot {
  const fields = readMap(decodeCanonical(bytes), 'prepared', ['certificate', 'batch']);
  return {
    certificate: readPreparedCertificate(fields['certificate'], 'prepared.certificate'),
    batch: readBatch(fields['batch'], 'prepared.batch'),
  };
}

export interface CheckpointRecord {
  seq: number;
  stateDigest: Uint8Array;
  proof: Signed<CheckpointBody>[];
  snapshot: Uint8Array;
}

export function encodeCheckpointRecord(checkpoint: CheckpointRecord): Uint8Array {
  return encodeCanonical({
    seq: checkpoint.seq,
    stateDigest: checkpoint.stateDigest,
    proof: checkpoint.proof.map(wireSigned),
    snapshot: checkpoint.snapshot,
  });
}

export function decodeCheckpointRecord(bytes: Uint8Array): CheckpointRecord {
  const fields = readMap(decodeCanonical(bytes), 'checkpoint', ['seq', 'stateDigest', 'proof', 'snapshot']);
  return {
    seq: readUint(fields['seq'], 'checkpoint.seq'),
    stateDigest: readDigest(fields['stateDigest'], 'checkpoint.stateDigest'),
    proof: readCheckpointProof(fields['proof'], 'checkpoint.proof'),
    snapshot: readBytes(fields['snapshot'], 'checkpoint.snapshot', undefined, SNAPSHOT_SIZE_MAX_BYTES),
  };
}
