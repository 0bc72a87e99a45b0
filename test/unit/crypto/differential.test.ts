/**
 * The native (OpenSSL) and noble verifiers must return the same verdict on every input, or a
 * Byzantine signer could split replicas running different backends. Random inputs through
 * fast-check (fixed seed, so failures reproduce) plus hand-built edge cases, each of which must
 * also be rejected by both.
 */
import * as ed from '@noble/ed25519';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NativeSigner,
  NativeVerifier,
  NobleSigner,
  NobleVerifier,
  type StrictRejection,
  strictRejection,
} from '../../../src/crypto/index.ts';
import { concatBytes, toHex, utf8 } from '../../../src/util/bytes.ts';
import {
  cofactoredOnlySignature,
  encodeLittleEndian,
  encodeY,
  FIELD_PRIME,
  GROUP_ORDER,
  mixedOrderKeySignature,
  rawEquationHolds,
  SMALL_ORDER_POINTS,
  smallOrderEncodings,
  smallOrderKeySignature,
} from './curve-helpers.ts';

const FAST_CHECK_SEED = 0x5eed_0001;
const RANDOM_VALID_RUNS = 500;
const RANDOM_MUTATION_RUNS = 1500;
const RANDOM_GARBAGE_RUNS = 1500;
const MESSAGE_LENGTH_MAX_BYTES = 256;
const BITS_PER_BYTE = 8;

const nativeVerifier = new NativeVerifier();
const nobleVerifier = new NobleVerifier();

/** Both verdicts, asserting they agree; returns the common verdict. */
function agreedVerdict(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  const native = nativeVerifier.verify(signature, message, publicKey);
  const noble = nobleVerifier.verify(signature, message, publicKey);
  if (native !== noble) {
    throw new Error(
      `backends disagree (native ${native}, noble ${noble}) on signature ${toHex(signature)} ` +
        `key ${toHex(publicKey)} message ${toHex(message)}`,
    );
  }
  return native;
}

function expectRejectedBoth(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
  reason: StrictRejection | undefined,
  label: string,
): void {
  expect(agreedVerdict(signature, message, publicKey), label).toBe(false);
  if (reason !== undefined) expect(strictRejection(signature, publicKey), label).toBe(reason);
}

function flipBit(bytes: Uint8Array, bitIndex: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[Math.floor(bitIndex / BITS_PER_BYTE)]! ^= 1 << (bitIndex % BITS_PER_BYTE);
  return copy;
}

const seedArbitrary = fc.uint8Array({ minLength: 32, maxLength: 32 });
const messageArbitrary = fc.uint8Array({ minLength: 0, maxLength: MESSAGE_LENGTH_MAX_BYTES });

function signed(seed: Uint8Array, message: Uint8Array): { signature: Uint8Array; publicKey: Uint8Array } {
  const signer = new NativeSigner(seed);
  return { signature: signer.sign(message), publicKey: signer.publicKey };
}

describe('differential: random inputs', () => {
  it('both accept valid signatures, and both backends sign byte-identically', () => {
    fc.assert(
      fc.property(seedArbitrary, messageArbitrary, (seed, message) => {
        const { signature, publicKey } = signed(seed, message);
        expect(toHex(new NobleSigner(seed).sign(message))).toBe(toHex(signature));
        expect(agreedVerdict(signature, message, publicKey)).toBe(true);
      }),
      { seed: FAST_CHECK_SEED, numRuns: RANDOM_VALID_RUNS },
    );
  });

  it('both reject a valid signature after any single bit flip in signature, message or key', () => {
    const targetArbitrary = fc.constantFrom('signature', 'message', 'publicKey');
    fc.assert(
      fc.property(
        seedArbitrary,
        fc.uint8Array({ minLength: 1, maxLength: MESSAGE_LENGTH_MAX_BYTES }),
        targetArbitrary,
        fc.nat(),
        (seed, message, target, bitChoice) => {
          const { signature, publicKey } = signed(seed, message);
          const mutated: Record<typeof target, Uint8Array> = { signature, message, publicKey };
          const original = mutated[target];
          mutated[target] = flipBit(original, bitChoice % (original.length * BITS_PER_BYTE));
          expect(agreedVerdict(mutated.signature, mutated.message, mutated.publicKey)).toBe(false);
        },
      ),
      { seed: FAST_CHECK_SEED, numRuns: RANDOM_MUTATION_RUNS },
    );
  });

  it('agree on random well-formed garbage (S < L, so the equation itself is evaluated)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        messageArbitrary,
        (signature, publicKey, message) => {
          signature[63]! &= 0x0f; // S < 2^252 < L
          agreedVerdict(signature, message, publicKey);
        },
      ),
      { seed: FAST_CHECK_SEED, numRuns: RANDOM_GARBAGE_RUNS },
    );
  });

  it('agree on random bytes of arbitrary lengths', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 70 }),
        fc.uint8Array({ maxLength: 40 }),
        messageArbitrary,
        (signature, publicKey, message) => {
          expect(agreedVerdict(signature, message, publicKey)).toBe(false);
        },
      ),
      { seed: FAST_CHECK_SEED, numRuns: RANDOM_GARBAGE_RUNS },
    );
  });
});

describe('differential: edge cases, each rejected by both', () => {
  const seed = new Uint8Array(32).fill(0x11);
  const message = utf8('COMMIT view=7 seq=1024');
  const { signature, publicKey } = signed(seed, message);
  const encodedR = signature.subarray(0, 32);
  const scalar = signature.subarray(32);

  it('sanity: the unmodified signature is accepted by both', () => {
    expect(agreedVerdict(signature, message, publicKey)).toBe(true);
  });

  it('S + L and S = L: the equation still holds mod L, but S is not reduced', () => {
    const s = BigInt(`0x${toHex(scalar.slice().reverse())}`);
    const sPlusL = concatBytes(encodedR, encodeLittleEndian(s + GROUP_ORDER));
    expect(rawEquationHolds(sPlusL, message, publicKey)).toBe(true);
    expectRejectedBoth(sPlusL, message, publicKey, 'scalar-not-reduced', 'S + L');
    expectRejectedBoth(
      concatBytes(encodedR, encodeLittleEndian(GROUP_ORDER)),
      message,
      publicKey,
      'scalar-not-reduced',
      'S = L',
    );
    expectRejectedBoth(
      concatBytes(encodedR, new Uint8Array(32).fill(0xff)),
      message,
      publicKey,
      'scalar-not-reduced',
      'S = 2^256 - 1',
    );
  });

  it('non-canonical R and A: y >= p in either sign', () => {
    for (let offset = 0n; offset < 19n; offset++) {
      for (const signBit of [false, true]) {
        const nonCanonical = encodeY(FIELD_PRIME + offset, signBit);
        const label = `y = p + ${offset}, sign ${signBit}`;
        expectRejectedBoth(
          concatBytes(nonCanonical, scalar),
          message,
          publicKey,
          'r-non-canonical',
          `R ${label}`,
        );
        expectRejectedBoth(signature, message, nonCanonical, 'public-key-non-canonical', `A ${label}`);
      }
    }
    const allOnes = encodeY(2n ** 255n - 1n, true);
    expectRejectedBoth(concatBytes(allOnes, scalar), message, publicKey, 'r-non-canonical', 'R all ones');
    expectRejectedBoth(signature, message, allOnes, 'public-key-non-canonical', 'A all ones');
  });

  it('small-order A in all 14 encodings, even with signatures that satisfy the raw equation', () => {
    for (const { label, bytes, canonical } of smallOrderEncodings()) {
      const forgery = smallOrderKeySignature(bytes, label);
      expect(rawEquationHolds(forgery.signature, forgery.message, forgery.publicKey), label).toBe(true);
      expectRejectedBoth(
        forgery.signature,
        forgery.message,
        forgery.publicKey,
        canonical ? 'public-key-small-order' : 'public-key-non-canonical',
        label,
      );
      expectRejectedBoth(signature, message, bytes, undefined, `${label} with an honest signature`);
    }
  });

  it('the identity key accepts a forgery for every message under the raw equation: rejected', () => {
    const identity = SMALL_ORDER_POINTS[0]!.toBytes();
    const forgery = smallOrderKeySignature(identity, 'identity');
    for (const other of [utf8('transfer 1'), utf8('transfer 1000000'), new Uint8Array()]) {
      expect(rawEquationHolds(forgery.signature, other, identity)).toBe(true);
      expectRejectedBoth(forgery.signature, other, identity, 'public-key-small-order', 'identity key');
    }
  });

  it('small-order R in all 14 encodings', () => {
    for (const { label, bytes, canonical } of smallOrderEncodings()) {
      expectRejectedBoth(
        concatBytes(bytes, scalar),
        message,
        publicKey,
        canonical ? 'r-small-order' : 'r-non-canonical',
        label,
      );
    }
  });

  it('small-order R with a mixed-order key, satisfying the cofactorless equation', () => {
    for (let variant = 0; variant < 8; variant++) {
      const forgery = mixedOrderKeySignature(`small-order R ${variant}`, 0n);
      expect(rawEquationHolds(forgery.signature, forgery.message, forgery.publicKey)).toBe(true);
      expectRejectedBoth(
        forgery.signature,
        forgery.message,
        forgery.publicKey,
        'r-small-order',
        `variant ${variant}`,
      );
    }
  });

  it('wrong lengths of signature and key', () => {
    for (const length of [0, 31, 33, 63, 65]) {
      const shortOrLong = new Uint8Array(length).fill(1);
      expectRejectedBoth(shortOrLong, message, publicKey, 'signature-length', `signature of ${length}`);
      expectRejectedBoth(signature, message, shortOrLong, 'public-key-length', `key of ${length}`);
    }
    for (const length of [0, 31, 32, 33, 63]) {
      const truncated = signature.subarray(0, length);
      expectRejectedBoth(
        truncated,
        message,
        publicKey,
        'signature-length',
        `signature truncated to ${length}`,
      );
    }
    for (const length of [0, 1, 16, 31]) {
      const truncated = publicKey.subarray(0, length);
      expectRejectedBoth(signature, message, truncated, 'public-key-length', `key truncated to ${length}`);
    }
    for (const extension of [Uint8Array.of(0), signature]) {
      const extended = concatBytes(signature, extension);
      expectRejectedBoth(extended, message, publicKey, 'signature-length', `extended by ${extension.length}`);
      expectRejectedBoth(
        signature,
        message,
        concatBytes(publicKey, extension),
        'public-key-length',
        'key extended',
      );
    }
  });

  it('all-zero key and signature', () => {
    const zeroKey = new Uint8Array(32);
    const zeroSignature = new Uint8Array(64);
    expectRejectedBoth(zeroSignature, message, publicKey, 'r-small-order', 'zero signature');
    expectRejectedBoth(signature, message, zeroKey, 'public-key-small-order', 'zero key');
    expectRejectedBoth(zeroSignature, message, zeroKey, 'r-small-order', 'zero both');
    expectRejectedBoth(zeroSignature, new Uint8Array(), zeroKey, 'r-small-order', 'zero everything');
  });

  it('a key that is not on the curve', () => {
    let y = 2n;
    while (strictRejection(signature, encodeY(y, false)) !== 'public-key-not-on-curve') y++;
    expectRejectedBoth(signature, message, encodeY(y, false), 'public-key-not-on-curve', `y = ${y}`);
  });
});

describe('differential: where the libraries themselves differ', () => {
  it('a cofactored-only signature: noble verify({ zip215: false }) accepts, OpenSSL and both backends reject', () => {
    for (let variant = 0; variant < 4; variant++) {
      const forgery = cofactoredOnlySignature(`cofactored ${variant}`);
      // This is why NobleVerifier evaluates the equation itself instead of calling ed.verify.
      expect(ed.verify(forgery.signature, forgery.message, forgery.publicKey, { zip215: false })).toBe(true);
      expect(rawEquationHolds(forgery.signature, forgery.message, forgery.publicKey)).toBe(false);
      expect(strictRejection(forgery.signature, forgery.publicKey)).toBeUndefined();
      expect(agreedVerdict(forgery.signature, forgery.message, forgery.publicKey)).toBe(false);
    }
  });

  it('a mixed-order key with a cofactorless-valid signature: both accept, as RFC 8032 and OpenSSL do', () => {
    for (let variant = 0; variant < 4; variant++) {
      const forgery = mixedOrderKeySignature(`mixed ${variant}`);
      expect(ed.Point.fromBytes(forgery.publicKey).isSmallOrder()).toBe(false);
      expect(ed.Point.fromBytes(forgery.publicKey).isTorsionFree()).toBe(false);
      expect(agreedVerdict(forgery.signature, forgery.message, forgery.publicKey)).toBe(true);
    }
  });
});
