/**
 * Canonical CBOR (RFC 8949 deterministic encoding, via cborg) and a strict decoder.
 *
 * Every replica must turn a message into the same bytes, because signatures and digests are taken
 * over those bytes. Decoding is strict: it accepts exactly the bytes `encodeCanonical` produces for
 * the value decoded, in one pass. cborg's `strict` mode rejects non-minimal integers and lengths;
 * `CanonicalTokenizer` checks, token by token as cborg builds the value, what cborg cannot check
 * itself: map keys in canonical order and never repeated, floats in their shortest
 * form and never for integers, and text that is UTF-8 exactly as an encoder would write it. The value is then handed to a schema reader (see
 * `schema.ts`) that rejects unknown fields and wrong types.
 */
import { decode, encode, type Token, Tokenizer, Type } from 'cborg';

/** Largest frame any decoder in pbft accepts. Bounds memory per message from an untrusted peer. */
export const FRAME_SIZE_MAX_BYTES = 8 * 1024 * 1024;

export const CODEC_ERROR_CODES = [
  'FRAME_TOO_LARGE',
  'MALFORMED_CBOR',
  'NON_CANONICAL',
  'UNKNOWN_FIELD',
  'MISSING_FIELD',
  'WRONG_TYPE',
  'WRONG_LENGTH',
  'OUT_OF_RANGE',
  'UNKNOWN_TYPE',
] as const;
export type CodecErrorCode = (typeof CODEC_ERROR_CODES)[number];

/** One error class for every decoding failure; `code` is stable and used as a metrics label. */
export class CodecError extends Error {
  override name = 'CodecError';
  readonly code: CodecErrorCode;
  constructor(code: CodecErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** cborg's strictest decoding; `CanonicalTokenizer` adds what it leaves out. */
export const STRICT_DECODE_OPTIONS = {
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
  // cborg copies byte strings out with `slice`, which on a Buffer would share the frame's memory.
  const data =
    Object.getPrototypeOf(bytes) === Uint8Array.prototype
      ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  try {
    return decode(data, { ...STRICT_DECODE_OPTIONS, tokenizer: new CanonicalTokenizer(data) });
  } catch (error) {
    if (error instanceof CodecError) throw error;
    // cborg's own rejections, and a RangeError from nesting deep enough to exhaust its stack.
    throw new CodecError('MALFORMED_CBOR', `malformed CBOR: ${(error as Error).message}`);
  }
}

/** An array or map being decoded: how many items it holds, and for a map where its last key lies. */
interface OpenContainer {
  isMap: boolean;
  /** Items in all, keys and values counted separately for a map. */
  items: number;
  started: number;
  lastKeyStart: number;
  lastKeyEnd: number;
}

const textEncoder = new TextEncoder();

/**
 * cborg's tokenizer, plus the canonical-form checks cborg's strict mode leaves out. cborg pulls
 * tokens depth first while it builds the value, so tracking the open containers tells which tokens
 * are map keys; a key's encoded bytes are compared in place with the previous key's.
 */
class CanonicalTokenizer {
  readonly #data: Uint8Array;
  readonly #inner: Tokenizer;
  readonly #open: OpenContainer[] = [];

  constructor(data: Uint8Array) {
    this.#data = data;
    this.#inner = new Tokenizer(data, STRICT_DECODE_OPTIONS);
  }

  done(): boolean {
    return this.#inner.done();
  }

  pos(): number {
    return this.#inner.pos();
  }

  next(): Token {
    const start = this.#inner.pos();
    const token = this.#inner.next();
    const end = this.#inner.pos();
    const type = token.type;
    const parent = this.#open.at(-1);
    if (parent !== undefined) {
      if (parent.isMap && parent.started % 2 === 0) {
        // RFC 8949 4.2.1: keys sorted by the bytewise order of their encodings. A repeated key is
        // no valid map at all (RFC 8949 5.6), whatever the order.
        if (parent.lastKeyEnd > 0) {
          const order = compareRanges(this.#data, parent.lastKeyStart, parent.lastKeyEnd, start, end);
          if (order === 0) throw new CodecError('MALFORMED_CBOR', 'malformed CBOR: a map key repeats');
          if (order > 0) throw new CodecError('NON_CANONICAL', 'CBOR map keys are not in canonical order');
        }
        parent.lastKeyStart = start;
        parent.lastKeyEnd = end;
      }
      parent.started++;
    }
    if (type === Type.float) this.#checkFloat(token.value as number, start, end);
    if (type === Type.string) this.#checkText(token.value as string, start, end);
    if ((type === Type.map || type === Type.array) && (token.value as number) > 0) {
      const isMap = type === Type.map;
      this.#open.push({
        isMap,
        items: (token.value as number) * (isMap ? 2 : 1),
        started: 0,
        lastKeyStart: 0,
        lastKeyEnd: 0,
      });
      return token;
    }
    // A whole item: it completes every container whose last item it was.
    let top = this.#open.at(-1);
    while (top !== undefined && top.started === top.items) {
      this.#open.pop();
      top = this.#open.at(-1);
    }
    return token;
  }

  /**
   * A float must be in the form an encoder gives that number: the shortest exact width, and never
   * for an integer (5.0 is the integer 5). pbft itself never sends one, so the rare check may cost.
   */
  #checkFloat(value: number, start: number, end: number): void {
    const encoded = encodeCanonical(value);
    if (encoded.length !== end - start || !bytesAt(this.#data, start, encoded)) {
      throw new CodecError('NON_CANONICAL', 'CBOR float is not in canonical form');
    }
  }

  /**
   * cborg decodes text leniently (malformed UTF-8 becomes U+FFFD, a leading byte-order mark is
   * dropped), so other text must re-encode to exactly the bytes received, header included.
   */
  #checkText(text: string, start: number, end: number): void {
    // As many ASCII characters as bytes: every byte was one of them (the common case, all keys).
    if (end - start === headerLength(text.length) + text.length && isAscii(text)) return;
    const encoded = textEncoder.encode(text);
    const contentStart = end - encoded.length;
    const sameBytes =
      contentStart - start === headerLength(encoded.length) && bytesAt(this.#data, contentStart, encoded);
    if (!sameBytes) throw new CodecError('NON_CANONICAL', 'CBOR text is not well-formed UTF-8');
  }
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Bytes of a minimal CBOR head for an item of `length` (RFC 8949 3 and 4.2.1). */
function headerLength(length: number): number {
  if (length < 24) return 1;
  if (length < 0x100) return 2;
  if (length < 0x10000) return 3;
  if (length < 0x100000000) return 5;
  return 9;
}

/** Bytewise lexicographic order of two ranges of `data` (a prefix sorts first): <0, 0 or >0. */
function compareRanges(data: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const aLength = aEnd - aStart;
  const bLength = bEnd - bStart;
  const common = Math.min(aLength, bLength);
  for (let i = 0; i < common; i++) {
    const difference = data[aStart + i]! - data[bStart + i]!;
    if (difference !== 0) return difference;
  }
  return aLength - bLength;
}

/** Whether `data` holds `expected` starting at `offset`. */
function bytesAt(data: Uint8Array, offset: number, expected: Uint8Array): boolean {
  for (let i = 0; i < expected.length; i++) if (data[offset + i] !== expected[i]) return false;
  return true;
}
