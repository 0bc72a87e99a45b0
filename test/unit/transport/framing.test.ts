/** Length-prefixed framing: round trips at every split point, strict limits, garbage. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameTooLargeError, MalformedLengthPrefixError } from '../../../src/transport/errors.ts';
import { encodeFrames, FrameDecoder, varintLengthBytes } from '../../../src/transport/framing.ts';

const FAST_CHECK_SEED = 20_240_601;

function decodeInChunks(decoder: FrameDecoder, bytes: Uint8Array, splits: number[]): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let start = 0;
  for (const end of [
    ...splits.filter((split) => split > 0 && split < bytes.length).sort((a, b) => a - b),
    bytes.length,
  ]) {
    frames.push(...decoder.decode(bytes.subarray(start, end)));
    start = end;
  }
  return frames;
}

describe('framing', () => {
  it('round-trips any frames split at any points', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.nat(7000), { maxLength: 10 }),
        (frames, splits) => {
          const decoded = decodeInChunks(new FrameDecoder(300), encodeFrames(frames), splits);
          expect(decoded).toEqual(frames);
        },
      ),
      { seed: FAST_CHECK_SEED, numRuns: 300 },
    );
  });

  it('uses the unsigned varint prefix of it-length-prefixed', () => {
    expect([...encodeFrames([new Uint8Array(300)]).subarray(0, 2)]).toEqual([0xac, 0x02]);
    expect(varintLengthBytes(127)).toBe(1);
    expect(varintLengthBytes(128)).toBe(2);
    expect(varintLengthBytes(2 ** 31)).toBe(5);
  });

  it('accepts a frame of exactly the limit and rejects one byte more from its prefix alone', () => {
    const limit = 4096;
    expect(new FrameDecoder(limit).decode(encodeFrames([new Uint8Array(limit)]))[0]).toHaveLength(limit);
    const prefixOnly = encodeFrames([new Uint8Array(limit + 1)]).subarray(0, varintLengthBytes(limit + 1));
    expect(() => new FrameDecoder(limit).decode(prefixOnly)).toThrow(FrameTooLargeError);
  });

  it('rejects a run of continuation bytes after a few bytes instead of buffering it', () => {
    const decoder = new FrameDecoder(4096);
    expect(() => decoder.decode(new Uint8Array([0xff]))).not.toThrow();
    expect(() => decoder.decode(new Uint8Array([0xff]))).toThrow(MalformedLengthPrefixError);
  });

  it('rejects a non-minimal prefix', () => {
    expect(() => new FrameDecoder(4096).decode(new Uint8Array([0x81, 0x00, 0x01]))).toThrow(
      MalformedLengthPrefixError,
    );
  });

  it('delivers empty frames and copies frames out of the network buffer', () => {
    const bytes = encodeFrames([new Uint8Array(0), new Uint8Array([1, 2, 3])]);
    const [empty, frame] = new FrameDecoder(16).decode(bytes);
    expect(empty).toHaveLength(0);
    bytes.fill(9);
    expect([...frame!]).toEqual([1, 2, 3]);
  });

  it('reads chunk lists such as Uint8ArrayList', () => {
    const bytes = encodeFrames([new Uint8Array([5, 6]), new Uint8Array([7])]);
    const chunks = [bytes.subarray(0, 2), bytes.subarray(2)];
    expect(new FrameDecoder(16).decode(chunks)).toEqual([new Uint8Array([5, 6]), new Uint8Array([7])]);
  });
});
