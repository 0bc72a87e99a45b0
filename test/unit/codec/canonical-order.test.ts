/**
 * `encodeCanonical` uses cborg's default map order for speed; these properties pin that it yields
 * exactly the bytes of cborg's RFC 8949 deterministic encoder for every value pbft can encode:
 * plain objects with text-string keys (any length, any Unicode), byte strings, integers, strings,
 * booleans and arrays, nested.
 */
import { encode, rfc8949EncodeOptions } from 'cborg';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCanonical, encodeCanonical } from '../../../src/codec/cbor.ts';
import { encodeMessage } from '../../../src/protocol/messages.ts';
import { exampleMessages } from './fixtures.ts';

const SEED = 20_261_122;

/** Keys around the CBOR length boundaries (23/24, 255/256) and outside ASCII, where orders could differ. */
const key = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ minLength: 250, maxLength: 260 }),
  fc.constantFrom('t', 'seq', 'type', 'view', 'client', 'result', 'replica', 'b', 's', 'm'),
);

const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.maxSafeInteger(),
    fc.nat(),
    fc.uint8Array({ maxLength: 40 }),
    fc.string({ maxLength: 30 }),
    fc.boolean(),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 4 }),
    fc.dictionary(key, tie('node'), { maxKeys: 6, noNullPrototype: true }),
  ),
})).node;

describe('canonical encoding', () => {
  it('equals the RFC 8949 deterministic encoding for every string-keyed value', () => {
    fc.assert(
      fc.property(value, (candidate) => {
        const expected = encode(candidate, rfc8949EncodeOptions);
        expect(encodeCanonical(candidate)).toEqual(expected);
        expect(decodeCanonical(expected)).toEqual(candidate);
      }),
      { seed: SEED, numRuns: 2_000 },
    );
  });

  it('equals the RFC 8949 deterministic encoding for every message type', () => {
    for (const message of Object.values(exampleMessages())) {
      const bytes = encodeMessage(message);
      expect(bytes, message.type).toEqual(encode(decodeCanonical(bytes), rfc8949EncodeOptions));
    }
  });
});
