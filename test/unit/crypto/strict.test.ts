import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSigner } from '../../../src/crypto/index.ts';
import {
  EDWARDS_D,
  FIELD_PRIME,
  GROUP_ORDER,
  littleEndianToBigInt,
  publicKeyRejection,
  SMALL_ORDER_Y_COORDINATES,
  signatureRejection,
  strictRejection,
} from '../../../src/crypto/strict.ts';
import { concatBytes, utf8 } from '../../../src/util/bytes.ts';
import {
  encodeLittleEndian,
  encodeY,
  Point,
  SMALL_ORDER_POINTS,
  smallOrderEncodings,
} from './curve-helpers.ts';

const FAST_CHECK_SEED = 0x5eed_0003;
const RANDOM_RUNS = 2000;

const signer = createSigner(new Uint8Array(32).fill(0x42));
const validSignature = signer.sign(utf8('m'));
const validR = validSignature.subarray(0, 32);
const validS = validSignature.subarray(32);

describe('curve constants', () => {
  it('match the curve noble implements', () => {
    const curve = Point.CURVE();
    expect(FIELD_PRIME).toBe(curve.p);
    expect(GROUP_ORDER).toBe(curve.n);
    expect(EDWARDS_D).toBe(curve.d);
    expect((EDWARDS_D * 121666n + 121665n) % FIELD_PRIME).toBe(0n);
  });

  it('list exactly the y coordinates of the 8 small-order points', () => {
    for (const point of SMALL_ORDER_POINTS) expect(point.isSmallOrder()).toBe(true);
    expect(new Set(SMALL_ORDER_POINTS.map((point) => point.y))).toEqual(new Set(SMALL_ORDER_Y_COORDINATES));
    expect(new Set(SMALL_ORDER_POINTS.map((point) => point.toHex())).size).toBe(8);
  });

  it('reads little-endian scalars', () => {
    expect(littleEndianToBigInt(new Uint8Array())).toBe(0n);
    expect(littleEndianToBigInt(Uint8Array.of(1, 2))).toBe(0x0201n);
    expect(littleEndianToBigInt(encodeLittleEndian(GROUP_ORDER))).toBe(GROUP_ORDER);
  });
});

describe('signatureRejection', () => {
  it('passes a valid signature', () => {
    expect(signatureRejection(validSignature)).toBeUndefined();
    expect(strictRejection(validSignature, signer.publicKey)).toBeUndefined();
  });

  it('rejects every length but 64', () => {
    for (const length of [0, 1, 31, 32, 33, 63, 65, 128]) {
      expect(signatureRejection(new Uint8Array(length))).toBe('signature-length');
    }
  });

  it('rejects S >= L and accepts S = L - 1', () => {
    expect(signatureRejection(concatBytes(validR, encodeLittleEndian(GROUP_ORDER)))).toBe(
      'scalar-not-reduced',
    );
    expect(signatureRejection(concatBytes(validR, encodeLittleEndian(GROUP_ORDER + 1n)))).toBe(
      'scalar-not-reduced',
    );
    expect(signatureRejection(concatBytes(validR, encodeLittleEndian(2n ** 256n - 1n)))).toBe(
      'scalar-not-reduced',
    );
    const sPlusL = littleEndianToBigInt(validS) + GROUP_ORDER;
    expect(signatureRejection(concatBytes(validR, encodeLittleEndian(sPlusL)))).toBe('scalar-not-reduced');
    expect(signatureRejection(concatBytes(validR, encodeLittleEndian(GROUP_ORDER - 1n)))).toBeUndefined();
    expect(signatureRejection(concatBytes(validR, new Uint8Array(32)))).toBeUndefined();
  });

  it('rejects R with y >= p, and x = 0 with the sign bit set', () => {
    for (let offset = 0n; offset < 19n; offset++) {
      for (const signBit of [false, true]) {
        const signature = concatBytes(encodeY(FIELD_PRIME + offset, signBit), validS);
        expect(signatureRejection(signature), `y = p + ${offset}`).toBe('r-non-canonical');
      }
    }
    expect(signatureRejection(concatBytes(encodeY(2n ** 255n - 1n, true), validS))).toBe('r-non-canonical');
    expect(signatureRejection(concatBytes(encodeY(1n, true), validS))).toBe('r-non-canonical');
    expect(signatureRejection(concatBytes(encodeY(FIELD_PRIME - 1n, true), validS))).toBe('r-non-canonical');
  });

  it('rejects every encoding of every small-order R', () => {
    for (const { label, bytes, canonical } of smallOrderEncodings()) {
      expect(signatureRejection(concatBytes(bytes, validS)), label).toBe(
        canonical ? 'r-small-order' : 'r-non-canonical',
      );
    }
  });
});

describe('publicKeyRejection', () => {
  it('passes a real key', () => {
    expect(publicKeyRejection(signer.publicKey)).toBeUndefined();
  });

  it('rejects every length but 32', () => {
    for (const length of [0, 31, 33, 63, 64, 65]) {
      expect(publicKeyRejection(new Uint8Array(length))).toBe('public-key-length');
    }
  });

  it('rejects every encoding of every small-order key, including all zeros', () => {
    expect(publicKeyRejection(new Uint8Array(32))).toBe('public-key-small-order');
    for (const { label, bytes, canonical } of smallOrderEncodings()) {
      expect(publicKeyRejection(bytes), label).toBe(
        canonical ? 'public-key-small-order' : 'public-key-non-canonical',
      );
    }
  });

  it('rejects non-canonical y >= p', () => {
    for (let offset = 0n; offset < 19n; offset++) {
      expect(publicKeyRejection(encodeY(FIELD_PRIME + offset, false))).toBe('public-key-non-canonical');
    }
  });

  it('agrees with noble strict decoding on whether y is on the curve', () => {
    let offCurve = 0;
    for (let y = 2n; y < 400n; y++) {
      if (SMALL_ORDER_Y_COORDINATES.has(y)) continue;
      for (const signBit of [false, true]) {
        const encoded = encodeY(y, signBit);
        let nobleDecodes = true;
        try {
          Point.fromBytes(encoded, false);
        } catch {
          nobleDecodes = false;
        }
        expect(publicKeyRejection(encoded), `y = ${y}`).toBe(
          nobleDecodes ? undefined : 'public-key-not-on-curve',
        );
        if (!nobleDecodes) offCurve++;
      }
    }
    // About half of all y values have no x; make sure the loop exercised both outcomes.
    expect(offCurve).toBeGreaterThan(200);
    expect(offCurve).toBeLessThan(600);
  });

  it('agrees with noble strict decoding on random 32-byte strings', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (encoded) => {
        let nobleDecodes = true;
        try {
          nobleDecodes = !Point.fromBytes(encoded, false).isSmallOrder();
        } catch {
          nobleDecodes = false;
        }
        expect(publicKeyRejection(encoded) === undefined).toBe(nobleDecodes);
      }),
      { seed: FAST_CHECK_SEED, numRuns: RANDOM_RUNS },
    );
  });
});
