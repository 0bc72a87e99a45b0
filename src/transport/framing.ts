/**
 * Length-prefixed frames: an unsigned LEB128 varint length, then that many bytes (the encoding of
 * it-length-prefixed and libp2p's lpStream).
 *
 * The decoder is our own rather than @libp2p/utils' LengthPrefixedDecoder because that one treats an
 * unterminated varint as "need more bytes": a peer sending 0xff 0xff … makes it buffer up to 4 MiB
 * before failing. Here a prefix fails as soon as it can no longer describe a frame within the limit,
 * so garbage costs at most a few bytes. Non-minimal prefixes are rejected, like every other
 * non-canonical encoding in pbft.
 */
import { FrameTooLargeError, MalformedLengthPrefixError } from './errors.ts';

/** Each varint byte carries 7 bits of the length, least significant group first. */
const VARINT_BASE = 128;
const VARINT_PAYLOAD_MASK = 0x7f;
const VARINT_CONTINUATION_BIT = 0x80;
/** Lengths are JavaScript numbers handled with exact integer arithmetic; no frame comes close. */
export const FRAME_SIZE_LIMIT_BYTES = 2 ** 31;

export function varintLengthBytes(value: number): number {
  let bytes = 1;
  let rest = value;
  while (rest >= VARINT_BASE) {
    rest = Math.floor(rest / VARINT_BASE);
    bytes++;
  }
  return bytes;
}

function writeVarint(value: number, target: Uint8Array, offset: number): number {
  let rest = value;
  let position = offset;
  while (rest >= VARINT_BASE) {
    target[position++] = (rest % VARINT_BASE) | VARINT_CONTINUATION_BIT;
    rest = Math.floor(rest / VARINT_BASE);
  }
  target[position++] = rest;
  return position;
}

/** Encoded size of `frames` laid out back to back. */
export function encodedSizeBytes(frames: readonly Uint8Array[]): number {
  let total = 0;
  for (const frame of frames) total += varintLengthBytes(frame.length) + frame.length;
  return total;
}

/** Concatenate length-prefixed frames into one buffer: one `send()` for a whole batch. */
export function encodeFrames(frames: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(encodedSizeBytes(frames));
  let offset = 0;
  for (const frame of frames) {
    offset = writeVarint(frame.length, out, offset);
    out.set(frame, offset);
    offset += frame.length;
  }
  return out;
}

/**
 * Incremental decoder for one stream. `decode` takes each chunk as it arrives and returns the frames
 * it completes; it throws FrameTooLargeError or MalformedLengthPrefixError, after which the stream
 * must be dropped (the decoder does not resynchronise).
 */
export class FrameDecoder {
  readonly #frameSizeMaxBytes: number;
  /** Length prefix being read: value so far and bytes read. */
  #prefixValue = 0;
  #prefixBytes = 0;
  /** Body being filled, once its prefix is complete. */
  #body: Uint8Array | undefined;
  #bodyFilledBytes = 0;

  constructor(frameSizeMaxBytes: number) {
    if (!Number.isSafeInteger(frameSizeMaxBytes) || frameSizeMaxBytes < 1) {
      throw new RangeError('frameSizeMaxBytes must be a positive integer');
    }
    if (frameSizeMaxBytes > FRAME_SIZE_LIMIT_BYTES) {
      throw new RangeError(`frameSizeMaxBytes must be at most ${FRAME_SIZE_LIMIT_BYTES}`);
    }
    this.#frameSizeMaxBytes = frameSizeMaxBytes;
  }

  decode(data: Uint8Array | Iterable<Uint8Array>): Uint8Array[] {
    const frames: Uint8Array[] = [];
    if (data instanceof Uint8Array) this.#decodeChunk(data, frames);
    else for (const chunk of data) this.#decodeChunk(chunk, frames);
    return frames;
  }

  #decodeChunk(chunk: Uint8Array, frames: Uint8Array[]): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#body !== undefined) {
        const copied = Math.min(this.#body.length - this.#bodyFilledBytes, chunk.length - offset);
        this.#body.set(chunk.subarray(offset, offset + copied), this.#bodyFilledBytes);
        this.#bodyFilledBytes += copied;
        offset += copied;
        if (this.#bodyFilledBytes === this.#body.length) {
          frames.push(this.#body);
          this.#body = undefined;
        }
        continue;
      }
      const byte = chunk[offset++]!;
      const payload = byte & VARINT_PAYLOAD_MASK;
      const weight = VARINT_BASE ** this.#prefixBytes;
      this.#prefixBytes++;
      if (this.#prefixBytes > 1 && byte === 0) throw new MalformedLengthPrefixError('non-minimal varint');
      this.#prefixValue += payload * weight;
      if ((byte & VARINT_CONTINUATION_BIT) !== 0) {
        // Every further byte is non-zero (minimal encoding), so the length is at least this much.
        const lengthAtLeast = this.#prefixValue + VARINT_BASE ** this.#prefixBytes;
        if (lengthAtLeast > this.#frameSizeMaxBytes) {
          throw new MalformedLengthPrefixError(
            `longer than any frame within the limit of ${this.#frameSizeMaxBytes} bytes`,
          );
        }
        continue;
      }
      const length = this.#prefixValue;
      this.#prefixValue = 0;
      this.#prefixBytes = 0;
      if (length > this.#frameSizeMaxBytes) throw new FrameTooLargeError(length, this.#frameSizeMaxBytes);
      if (length <= chunk.length - offset) {
        // Copy even when the frame lies inside the chunk: a view would pin the whole network buffer
        // for as long as the receiver keeps the frame.
        frames.push(chunk.slice(offset, offset + length));
        offset += length;
      } else {
        this.#body = new Uint8Array(length);
        this.#bodyFilledBytes = 0;
      }
    }
  }
}
