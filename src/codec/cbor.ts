/**
 * Canonical CBOR (RFC 8949 deterministic encoding, via cborg) and a strict decoder.
 *
 * Every replica must turn a message into the same bytes, because signatures and digests are taken
 * over those bytes. Decoding is strict: cborg's `strict` mode rejects non-minimal integers and
 * lengths, and we then re-encode the decoded value and require the bytes to be identical, which also
 * rejects what cborg cannot check itself (map key order, float forms). The value is then handed to a
 * schema reader (see `schema.ts`) that rejects unknown fields and wrong types.
 */
import { decode, encode } from 'cborg';
import { bytesEqual } from '../util/bytes.ts';

/** Largest frame any decoder in pbft accepts. Bounds memory per message from an untrusted peer. */
export const FRAME_SIZE_MAX_BYTES = 8 * 1024 * 1024;

export type CodecErrorCode =
  | 'FRAME_TOO_LARGE'
  | 'MALFORMED_CBOR'
  | 'NON_CANONICAL'
  | 'UNKNOWN_FIELD'
  | 'MISSING_FIELD'
  | 'WRONG_TYPE'
  | 'WRONG_LENGTH'
  | 'OUT_OF_RANGE'
  | 'UNKNOWN_TYPE';

/** One error class for every decoding failure; `code` is stable and used as a metrics label. */
export class CodecError extends Error {
  override name = 'CodecError';
  readonly code: CodecErrorCode;
  constructor(code: CodecErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const DECODE_OPTIONS = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
} as const;

/**
 * cborg's default options, not `rfc8949EncodeOptions`, and yet RFC 8949 deterministic bytes: the
 * default map order (shorter encoded key first, then bytewise) is exactly RFC 8949's bytewise order
 * of encoded keys when every key is a text string, and every map pbft encodes is a plain object
 * whose keys are strings (the strict decoder refuses any other key). The defaults take cborg's
 * direct encoder, while `rfc8949EncodeOptions` re-encodes both keys in every comparison: 60% of
 * the time of encoding a reply. `test/unit/codec/canonical-order.test.ts` checks the two agree.
 */
const ENCODE_OPTIONS = {} as const;

export function encodeCanonical(value: unknown): Uint8Array {
  return encode(value, ENCODE_OPTIONS);
}

/**
 * Decode bytes produced by `encodeCanonical`, rejecting anything another encoder could have
 * produced for the same value. `maxBytes` is the caller's own limit (never above the frame limit).
 */
export function decodeCanonical(bytes: Uint8Array, maxBytes: number = FRAME_SIZE_MAX_BYTES): unknown {
  if (bytes.length > maxBytes) {
    throw new CodecError(
      'FRAME_TOO_LARGE',
      `frame of ${bytes.length} bytes exceeds the limit of ${maxBytes}`,
    );
  }
  let value: unknown;
  try {
    value = decode(bytes, DECODE_OPTIONS);
  } catch (error) {
    throw new CodecError('MALFORMED_CBOR', `malformed CBOR: ${(error as Error).message}`);
  }
  let canonical: Uint8Array;
  try {
    canonical = encodeCanonical(value);
  } catch (error) {
    // Only pathological input gets here (e.g. nesting deep enough to exhaust the encoder's stack).
    throw new CodecError('MALFORMED_CBOR', `CBOR cannot be re-encoded: ${(error as Error).name}`);
  }
  if (!bytesEqual(canonical, bytes)) {
    throw new CodecError('NON_CANONICAL', 'CBOR is valid but not in canonical form');
  }
  return value;
}
