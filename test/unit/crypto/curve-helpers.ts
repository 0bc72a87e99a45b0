/**
 * Curve arithmetic for building adversarial signatures in tests: small-order points in every
 * encoding, signatures made from known scalars, and an independent evaluation of the raw
 * cofactorless equation so a test can show "the equation holds, yet the signature is rejected".
 */
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { FIELD_PRIME, GROUP_ORDER, littleEndianToBigInt } from '../../../src/crypto/strict.ts';
import { concatBytes } from '../../../src/util/bytes.ts';

export const { Point } = ed;
export type Point = ed.Point;

const SCALAR_LENGTH_BYTES = 32;

/** Canonical encoding 26e8958f...6d53fc05 of a point of order 8; its multiples are all 8 small-order points. */
export const ORDER_8_POINT = Point.fromHex(
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
);

/** [0]T, [1]T, ..., [7]T: the whole torsion subgroup, identity first. */
export const SMALL_ORDER_POINTS: readonly Point[] = Array.from({ length: 8 }, (_, multiple) =>
  ORDER_8_POINT.multiply(BigInt(multiple), false),
);

export function encodeLittleEndian(value: bigint, lengthBytes: number = SCALAR_LENGTH_BYTES): Uint8Array {
  const out = new Uint8Array(lengthBytes);
  let remaining = value;
  for (let i = 0; i < lengthBytes; i++) {
    out[i] = Number(remaining & 0xffn);
    remaining >>= 8n;
  }
  if (remaining !== 0n) throw new RangeError(`${value} does not fit in ${lengthBytes} bytes`);
  return out;
}

/** Encodes y with the given sign bit, without checking y < p: the way to build non-canonical encodings. */
export function encodeY(y: bigint, signBit: boolean): Uint8Array {
  const out = encodeLittleEndian(y);
  if (signBit) out[31]! |= 0x80;
  return out;
}

/**
 * Every 32-byte string that a lax (ZIP-215 style) decoder reads as a small-order point: the 8
 * canonical encodings, x = 0 with the sign bit set (y = 1 and y = -1), and y + p for y = 0 and
 * y = 1 with either sign bit (y + p < 2^255 only for y < 19).
 */
export function smallOrderEncodings(): { label: string; bytes: Uint8Array; canonical: boolean }[] {
  const canonical = SMALL_ORDER_POINTS.map((point, multiple) => ({
    label: `[${multiple}]T8 canonical`,
    bytes: point.toBytes(),
    canonical: true,
  }));
  const nonCanonical = [
    { label: 'identity with sign bit', bytes: encodeY(1n, true) },
    { label: '(0, -1) with sign bit', bytes: encodeY(FIELD_PRIME - 1n, true) },
    { label: 'y = 0 as p', bytes: encodeY(FIELD_PRIME, false) },
    { label: 'y = 0 as p, sign bit', bytes: encodeY(FIELD_PRIME, true) },
    { label: 'identity as y = p + 1', bytes: encodeY(FIELD_PRIME + 1n, false) },
    { label: 'identity as y = p + 1, sign bit', bytes: encodeY(FIELD_PRIME + 1n, true) },
  ].map((entry) => ({ ...entry, canonical: false }));
  return [...canonical, ...nonCanonical];
}

/** k = SHA-512(R || A || M) mod L over the given bytes. */
export function challengeScalar(encodedR: Uint8Array, encodedA: Uint8Array, message: Uint8Array): bigint {
  return littleEndianToBigInt(sha512(concatBytes(encodedR, encodedA, message))) % GROUP_ORDER;
}

/**
 * The bare cofactorless equation [S]B = R + [k]A with lax decoding and S taken as is (not required
 * to be below L). True means a verifier without the strict pre-checks would accept.
 */
export function rawEquationHolds(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    const encodedR = signature.subarray(0, 32);
    const scalar = littleEndianToBigInt(signature.subarray(32)) % GROUP_ORDER;
    const R = Point.fromBytes(encodedR, true);
    const A = Point.fromBytes(publicKey, true);
    const k = challengeScalar(encodedR, publicKey, message);
    return Point.BASE.multiply(scalar, false).equals(R.add(A.multiply(k, false)));
  } catch {
    return false;
  }
}

/** A signature made from chosen points and scalars: S = r + k a mod L with k over the given bytes. */
export function signatureFromParts(encodedR: Uint8Array, scalar: bigint): Uint8Array {
  return concatBytes(encodedR, encodedLittleEndianScalar(scalar));
}

function encodedLittleEndianScalar(scalar: bigint): Uint8Array {
  return encodeLittleEndian(((scalar % GROUP_ORDER) + GROUP_ORDER) % GROUP_ORDER);
}

/** A deterministic nonzero scalar below L from a label, for reproducible constructions. */
export function scalarFromLabel(label: string): bigint {
  return (littleEndianToBigInt(sha512(new TextEncoder().encode(label))) % (GROUP_ORDER - 1n)) + 1n;
}

export interface Forgery {
  signature: Uint8Array;
  message: Uint8Array;
  publicKey: Uint8Array;
}

/**
 * A signature valid only under the cofactored equation: R = [r]B + T8 with S = r + k a. Then
 * [S]B - [k]A = [r]B = R - T8, so the cofactorless check fails while [8]([S]B - R - [k]A) = 0.
 */
export function cofactoredOnlySignature(label: string): Forgery {
  const secretScalar = scalarFromLabel(`${label}/a`);
  const nonce = scalarFromLabel(`${label}/r`);
  const publicKey = Point.BASE.multiply(secretScalar).toBytes();
  const encodedR = Point.BASE.multiply(nonce).add(ORDER_8_POINT).toBytes();
  const message = new TextEncoder().encode(label);
  const k = challengeScalar(encodedR, publicKey, message);
  return { signature: signatureFromParts(encodedR, nonce + k * secretScalar), message, publicKey };
}

/**
 * A key A = [a]B + T8 of mixed order (not small order, but with a torsion component) and a
 * signature that satisfies the cofactorless equation exactly: with R = [r]B - [x]T8 and
 * S = r + k a, [S]B - [k]A = [r]B - [k]T8, which equals R when k = x (mod 8). Tries messages
 * until the hash cooperates (1 in 8). With `nonce = 0` the R is itself a small-order point.
 */
export function mixedOrderKeySignature(
  label: string,
  nonce: bigint = scalarFromLabel(`${label}/r`),
): Forgery {
  const secretScalar = scalarFromLabel(`${label}/a`);
  const publicKey = Point.BASE.multiply(secretScalar).add(ORDER_8_POINT).toBytes();
  for (let attempt = 0; ; attempt++) {
    const message = new TextEncoder().encode(`${label}/${attempt}`);
    for (let torsionMultiple = 0n; torsionMultiple < 8n; torsionMultiple++) {
      const R = Point.BASE.multiply(nonce, false).subtract(ORDER_8_POINT.multiply(torsionMultiple, false));
      const encodedR = R.toBytes();
      const k = challengeScalar(encodedR, publicKey, message);
      if (k % 8n === torsionMultiple) {
        return { signature: signatureFromParts(encodedR, nonce + k * secretScalar), message, publicKey };
      }
    }
  }
}

/**
 * For a small-order public key (any encoding): a signature R = [S]B that satisfies the raw
 * equation because [k]A is the identity. For the identity key this works for every message,
 * which is exactly why small-order keys must be rejected.
 */
export function smallOrderKeySignature(publicKey: Uint8Array, label: string): Forgery {
  const A = Point.fromBytes(publicKey, true);
  for (let attempt = 0; ; attempt++) {
    const scalar = scalarFromLabel(`${label}/${attempt}`);
    const encodedR = Point.BASE.multiply(scalar).toBytes();
    const message = new TextEncoder().encode(`${label}/${attempt}`);
    const k = challengeScalar(encodedR, publicKey, message);
    if (A.multiply(k, false).is0())
      return { signature: signatureFromParts(encodedR, scalar), message, publicKey };
  }
}

export { FIELD_PRIME, GROUP_ORDER };
