/**
 * `decodeCanonical` checks canonical form in one pass (see `CanonicalTokenizer`) instead of
 * re-encoding what it decoded and comparing bytes. These properties pin that the two are the same
 * rule: on canonical encodings, on other encoders' forms of the same values (any key order, floats,
 * longer heads), on mutated encodings and on random bytes, the one-pass decoder accepts exactly
 * what decode-re-encode-compare accepts, and returns the same value.
 */
import { decode, encode } from 'cborg';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CodecError,
  decodeCanonical,
  encodeCanonical,
  STRICT_DECODE_OPTIONS,
} from '../../../src/codec/cbor.ts';
import { concatBytes } from '../../../src/util/bytes.ts';

const SEED = 20_261_123;

/** The rule before the one-pass decoder: cborg strict decode, then the bytes must re-encode identically. */
function referenceDecode(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false } {
  let value: unknown;
  try {
    value = decode(bytes, STRICT_DECODE_OPTIONS);
    const again = encodeCanonical(value);
    if (again.length !== bytes.length || again.some((byte, index) => byte !== bytes[index]))
      return { ok: false };
  } catch {
    return { ok: false };
  }
  return { ok: true, value };
}

function expectSameVerdict(bytes: Uint8Array): void {
  const expected = referenceDecode(bytes);
  let actual: { ok: true; value: unknown } | { ok: false };
  try {
    actual = { ok: true, value: decodeCanonical(bytes) };
  } catch (error) {
    expect(error).toBeInstanceOf(CodecError);
    actual = { ok: false };
  }
  expect(actual.ok, Buffer.from(bytes).toString('hex')).toBe(expected.ok);
  if (actual.ok && expected.ok) expect(actual.value).toEqual(expected.value);
}

/** Keys short and long, ASCII and not, so orders by length and by bytes both matter. */
const key = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
  fc.string({ minLength: 22, maxLength: 26 }),
  fc.constantFrom('a', 'b', 'aa', 'ab', 'b\u00e9', '\u00e9', '\ufeffa', '\ufffd'),
);

const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.maxSafeInteger(),
    fc.integer({ min: -300, max: 300 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.uint8Array({ maxLength: 30 }),
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'grapheme', maxLength: 6 }),
    fc.constantFrom(true, false, null, '\ufeffbom', '\ufffd'),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 4 }),
    fc.dictionary(key, tie('node'), { maxKeys: 6, noNullPrototype: true }),
  ),
})).node;

/** A different encoder's form of a value: keys in insertion order, every float as 64 bits. */
function loosely(candidate: unknown): Uint8Array {
  return encode(candidate, { mapSorter: () => 0, float64: true });
}

describe('one-pass canonical decoding agrees with decode, re-encode and compare', () => {
  it('accepts every canonical encoding and returns the value', () => {
    fc.assert(
      fc.property(value, (candidate) => expectSameVerdict(encodeCanonical(candidate))),
      { seed: SEED, numRuns: 3_000 },
    );
  });

  it("gives the same verdict on another encoder's bytes (any key order, 64-bit floats)", () => {
    fc.assert(
      fc.property(value, (candidate) => expectSameVerdict(loosely(candidate))),
      { seed: SEED + 1, numRuns: 3_000 },
    );
  });

  it('gives the same verdict on canonical encodings with random byte mutations', () => {
    fc.assert(
      fc.property(
        value,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        (candidate, mutations) => {
          const bytes = Uint8Array.from(encodeCanonical(candidate));
          if (bytes.length === 0) return;
          for (const [position, replacement] of mutations) bytes[position % bytes.length] = replacement;
          expectSameVerdict(bytes);
        },
      ),
      { seed: SEED + 2, numRuns: 5_000 },
    );
  });

  it('gives the same verdict on random bytes behind a map or array head', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0x80, max: 0xbb }), fc.uint8Array({ maxLength: 64 }), (head, tail) =>
        expectSameVerdict(concatBytes(Uint8Array.of(head), tail)),
      ),
      { seed: SEED + 3, numRuns: 5_000 },
    );
  });

  it('rejects, as the reference does, the cases the one-pass checks exist for', () => {
    const cases: Array<[string, Uint8Array]> = [
      ['keys out of order', Uint8Array.of(0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02)],
      ['a repeated key', Uint8Array.of(0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02)],
      ['a longer key first', Uint8Array.of(0xa2, 0x62, 0x61, 0x61, 0x01, 0x61, 0x62, 0x02)],
      ['out of order in a nested map', Uint8Array.of(0x81, 0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02)],
      ['an integer as a half float (5.0)', Uint8Array.of(0xf9, 0x45, 0x00)],
      ['0.5 as a 64-bit float', Uint8Array.of(0xfb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0)],
      ['a lone continuation byte in text', Uint8Array.of(0x62, 0x61, 0x80)],
      ['an encoded surrogate in text', Uint8Array.of(0x63, 0xed, 0xa0, 0x80)],
      ['a byte-order mark the decoder would drop', Uint8Array.of(0x64, 0xef, 0xbb, 0xbf, 0x61)],
    ];
    for (const [what, bytes] of cases) {
      expect(referenceDecode(bytes).ok, what).toBe(false);
      expect(() => decodeCanonical(bytes), what).toThrow(CodecError);
    }
    for (const accepted of [
      Uint8Array.of(0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x02),
      Uint8Array.of(0xf9, 0x38, 0x00), // 0.5, shortest form
      Uint8Array.of(0x62, 0xc3, 0xa9), // "é"
      Uint8Array.of(0x63, 0xef, 0xbf, 0xbd), // U+FFFD written on purpose
    ]) {
      expect(referenceDecode(accepted).ok).toBe(true);
      expect(decodeCanonical(accepted)).toEqual((referenceDecode(accepted) as { value: unknown }).value);
    }
  });
});
