/**
 * The largest message the protocol can build, from its settings, and the rule that it fits a
 * frame. A message over the transport's frame limit is dropped on the way, and a VIEW-CHANGE or
 * NEW-VIEW that can never arrive is a view change that can never finish; so a setting whose
 * largest message does not fit is refused when the configuration is loaded, not discovered under
 * load.
 *
 * The bounds are computed, not estimated: each is the encoded size of the largest value of every
 * field (numbers at their widest, replica ids at REPLICAS_MAX, full proofs and certificates)
 * composed by the shape of the message, with a few bytes of slack where an array or byte-string
 * header grows with its length. `test/unit/protocol/message-bounds.test.ts` builds the largest
 * messages for real and checks that none exceeds its bound.
 */
import { encodeCanonical, FRAME_SIZE_MAX_BYTES } from '../codec/cbor.ts';
import {
  type Body,
  type CheckpointBody,
  DIGEST_BYTES,
  encodeBody,
  encodeMessage,
  OPERATION_SIZE_MAX_BYTES,
  type PrePrepareBody,
  type PrepareBody,
  type PreparedCertificate,
  PUBLIC_KEY_BYTES,
  REPLICAS_MAX,
  type RequestBody,
  SIGNATURE_BYTES,
  type Signed,
  SNAPSHOT_SIZE_MAX_BYTES,
  type ViewChangeBody,
} from './messages.ts';

/**
 * Room left in every frame beyond the largest message a setting allows: fields added later, and
 * the distance between "fits" and "fits only just" when an operator tunes the settings.
 */
export const FRAME_MARGIN_BYTES = 1024 * 1024;
/** What the configurable messages may reach: the frame limit less the margin. */
export const MESSAGE_SIZE_ALLOWED_BYTES = FRAME_SIZE_MAX_BYTES - FRAME_MARGIN_BYTES;
/** The most a CBOR array, map or byte-string header can grow by (1 byte up to 9). */
const HEADER_SLACK_BYTES = 9;

const WIDEST_UINT = Number.MAX_SAFE_INTEGER;
const HIGHEST_REPLICA = REPLICAS_MAX - 1;
const ZERO_SIGNATURE = new Uint8Array(SIGNATURE_BYTES);
const ZERO_DIGEST = new Uint8Array(DIGEST_BYTES);

function widestSigned<B extends Body>(body: B): Signed<B> {
  return { body, bytes: encodeBody(body), signature: ZERO_SIGNATURE };
}

/** A signed message as it sits inside another: { b: bytes, s: signature }. */
function nestedBytes(signed: Signed<Body>): number {
  return encodeCanonical({ b: signed.bytes, s: signed.signature }).length;
}

/** A PRE-PREPARE or PREPARE header at its widest (same fields, so the same size). */
function widestHeader<T extends PrePrepareBody | PrepareBody>(type: T['type']): Signed<T> {
  const body = { type, view: WIDEST_UINT, seq: WIDEST_UINT, digest: ZERO_DIGEST, replica: HIGHEST_REPLICA };
  return widestSigned(body as T);
}

function widestCheckpoint(): Signed<CheckpointBody> {
  return widestSigned({
    type: 'checkpoint',
    seq: WIDEST_UINT,
    stateDigest: ZERO_DIGEST,
    replica: HIGHEST_REPLICA,
  });
}

function widestRequest(): Signed<RequestBody> {
  return widestSigned({
    type: 'request',
    client: new Uint8Array(PUBLIC_KEY_BYTES),
    t: WIDEST_UINT,
    op: new Uint8Array(OPERATION_SIZE_MAX_BYTES),
  });
}

/** The largest request by the batch byte budget's measure (signed bytes plus signature). */
export const REQUEST_WIRE_BYTES_MAX = (() => {
  const request = widestRequest();
  return request.bytes.length + request.signature.length;
})();

/** CBOR framing around each request in a batch, beyond what `requestWireBytes` counts. */
export const REQUEST_FRAMING_MAX_BYTES = nestedBytes(widestRequest()) - REQUEST_WIRE_BYTES_MAX;

export interface MessageBoundSettings {
  replicaCount: number;
  watermarkWindow: number;
  batchSizeMax: number;
  batchBytesMax: number;
}

export interface MessageBounds {
  prePrepareBytes: number;
  batchBytes: number;
  viewChangeBytes: number;
  newViewBytes: number;
  stateBytes: number;
}

/** Upper bounds on the encoded frame of each message that grows with the settings. */
export function messageBounds(settings: MessageBoundSettings): MessageBounds {
  const f = Math.floor((settings.replicaCount - 1) / 3);
  const quorum = 2 * f + 1;
  const window = settings.watermarkWindow;
  const header = widestHeader<PrePrepareBody>('pre-prepare');
  const checkpoint = widestCheckpoint();
  const checkpointProof = Array.from({ length: quorum }, () => checkpoint);

  const batchPayload =
    HEADER_SLACK_BYTES + settings.batchBytesMax + settings.batchSizeMax * REQUEST_FRAMING_MAX_BYTES;
  const prePrepareBytes =
    encodeMessage({ type: 'pre-prepare', prePrepare: header, batch: [] }).length + batchPayload;
  const batchBytes = encodeMessage({ type: 'batch', seq: WIDEST_UINT, batch: [] }).length + batchPayload;

  // A VIEW-CHANGE: a full checkpoint proof and a certificate (a header and 2f PREPAREs) per slot.
  const certificate: PreparedCertificate = {
    prePrepare: header,
    prepares: Array.from({ length: 2 * f }, () => widestHeader<PrepareBody>('prepare')),
  };
  const viewChangeOf = (prepared: PreparedCertificate[]): ViewChangeBody => ({
    type: 'view-change',
    newView: WIDEST_UINT,
    stableSeq: WIDEST_UINT,
    checkpointProof,
    prepared,
    replica: HIGHEST_REPLICA,
  });
  const emptyViewChange = encodeBody(viewChangeOf([])).length;
  const certificateBytes = encodeBody(viewChangeOf([certificate])).length - emptyViewChange;
  const viewChangeBody = emptyViewChange + HEADER_SLACK_BYTES + window * certificateBytes;
  const emptyViewChangeSigned = widestSigned(viewChangeOf([]));
  /** What wrapping a signed body adds beyond the body's bytes, once the body is at its largest. */
  const wrapping = (wrappedBytes: number, signed: Signed<Body>): number =>
    wrappedBytes - signed.bytes.length + HEADER_SLACK_BYTES;
  const viewChangeNested =
    viewChangeBody + wrapping(nestedBytes(emptyViewChangeSigned), emptyViewChangeSigned);
  const viewChangeBytes =
    viewChangeBody +
    wrapping(
      encodeMessage({ type: 'view-change', viewChange: emptyViewChangeSigned }).length,
      emptyViewChangeSigned,
    );

  // A NEW-VIEW: 2f+1 VIEW-CHANGEs and a PRE-PREPARE header per slot.
  const emptyNewView = widestSigned({
    type: 'new-view',
    view: WIDEST_UINT,
    viewChanges: [],
    prePrepares: [],
    replica: HIGHEST_REPLICA,
  });
  const newViewBody =
    emptyNewView.bytes.length +
    2 * HEADER_SLACK_BYTES +
    quorum * viewChangeNested +
    window * nestedBytes(header);
  const newViewBytes =
    newViewBody + wrapping(encodeMessage({ type: 'new-view', newView: emptyNewView }).length, emptyNewView);

  const emptyState = widestSigned({
    type: 'state',
    checkpointProof,
    snapshot: new Uint8Array(0),
    replica: HIGHEST_REPLICA,
  });
  const stateBytes =
    encodeMessage({ type: 'state', state: emptyState }).length +
    2 * HEADER_SLACK_BYTES +
    SNAPSHOT_SIZE_MAX_BYTES;
  return { prePrepareBytes, batchBytes, viewChangeBytes, newViewBytes, stateBytes };
}

/**
 * Why these settings are refused, naming the field to change, or null when every message they
 * allow fits a frame with FRAME_MARGIN_BYTES to spare.
 */
export function messageBoundViolation(settings: MessageBoundSettings): string | null {
  const bounds = messageBounds(settings);
  const allowed = `over the ${MESSAGE_SIZE_ALLOWED_BYTES} bytes allowed (the ${FRAME_SIZE_MAX_BYTES}-byte frame limit less ${FRAME_MARGIN_BYTES} of margin)`;
  const n = settings.replicaCount;
  if (
    bounds.newViewBytes > MESSAGE_SIZE_ALLOWED_BYTES ||
    bounds.viewChangeBytes > MESSAGE_SIZE_ALLOWED_BYTES
  ) {
    return `watermarkWindow ${settings.watermarkWindow} is too large for ${n} replicas: a NEW-VIEW can reach ${bounds.newViewBytes} bytes, ${allowed}; lower watermarkWindow`;
  }
  if (bounds.prePrepareBytes > MESSAGE_SIZE_ALLOWED_BYTES || bounds.batchBytes > MESSAGE_SIZE_ALLOWED_BYTES) {
    return `batchBytesMax ${settings.batchBytesMax} is too large: a PRE-PREPARE can reach ${bounds.prePrepareBytes} bytes, ${allowed}; lower batchBytesMax`;
  }
  if (bounds.stateBytes > FRAME_SIZE_MAX_BYTES) {
    return `a STATE message can reach ${bounds.stateBytes} bytes, over the ${FRAME_SIZE_MAX_BYTES}-byte frame limit`;
  }
  return null;
}
