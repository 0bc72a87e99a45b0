import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SHA256_LENGTH_BYTES, sha256, sha256Noble } from '../../../src/crypto/index.ts';
import { toHex, utf8 } from '../../../src/util/bytes.ts';

const FAST_CHECK_SEED = 0x5eed_0002;
const RANDOM_RUNS = 2000;
const INPUT_LENGTH_MAX_BYTES = 1024;

describe('sha256', () => {
  it('matches the FIPS 180-2 "abc" and empty-string vectors in both implementations', () => {
    for (const digest of [sha256, sha256Noble]) {
      expect(toHex(digest(utf8('abc')))).toBe(
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
      );
      expect(toHex(digest(new Uint8Array()))).toBe(
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      );
    }
  });

  it('gives identical 32-byte plain Uint8Arrays from both implementations', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: INPUT_LENGTH_MAX_BYTES }), (data) => {
        const native = sha256(data);
        expect(native.length).toBe(SHA256_LENGTH_BYTES);
        expect(Object.getPrototypeOf(native)).toBe(Uint8Array.prototype);
        expect(toHex(sha256Noble(data))).toBe(toHex(native));
      }),
      { seed: FAST_CHECK_SEED, numRuns: RANDOM_RUNS },
    );
  });

  it('hashes only the view, not the whole underlying buffer', () => {
    const buffer = utf8('xxabcxx');
    for (const digest of [sha256, sha256Noble]) {
      expect(toHex(digest(buffer.subarray(2, 5)))).toBe(toHex(digest(utf8('abc'))));
    }
  });
});
