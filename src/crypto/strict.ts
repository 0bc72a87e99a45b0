/**
 * Strict Ed25519 pre-checks shared by both verifier backends.
 *
 * Replicas must agree on which signatures are valid: if one replica accepted a signature that another
 * rejected, a Byzantine signer could split honest replicas. OpenSSL and noble differ at the edges of
 * RFC 8032 (non-canonical encodings, small-order points, cofactored versus cofactorless equation),
 * so both backends first run these checks and then evaluate the same cofactorless equation
 * [S]B = R + [k]A by comparing the encoding of [S]B - [k]A with the R bytes, as OpenSSL does.
 *
 * Rejected here, whatever either library would do:
 * - signature not 64 bytes, public key not 32 bytes;
 * - S >= L (RFC 8032 5.1.7 step 1; prevents malleability S -> S + L);
 * - R or A non-canonically encoded: y >= p, or x = 0 with the sign bit set (RFC 8032 5.1.3);
 * - R or A of small order (the 8 points of the torsion subgroup): such keys and nonces make
 *   signatures that verify for many messages or many keys;
 * - A not on the curve.
 *
 * The checks need only the y coordinate and one Legendre symbol, so they are done here with plain
 * bigint arithmetic, independent of both libraries.
 */
import { toHex } from '../util/bytes.ts';

export const SIGNATURE_LENGTH_BYTES = 64;
export const PUBLIC_KEY_LENGTH_BYTES = 32;
export const SEED_LENGTH_BYTES = 32;
/** A point is encoded as 32 bytes: y little-endian in bits 0..254, the sign (low bit) of x in bit 255. */
export const POINT_LENGTH_BYTES = 32;
const SIGN_BIT_MASK = 0x80;
const Y_COORDINATE_MASK = (1n << 255n) - 1n;

/** p = 2^255 - 19, the prime of the base field. */
export const FIELD_PRIME = 2n ** 255n - 19n;
/** L = 2^252 + 27742317777372353535851937790883648493, the prime order of the base point B. */
export const GROUP_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;
/** d = -121665 / 121666 mod p, the twisted Edwards curve -x^2 + y^2 = 1 + d x^2 y^2. */
export const EDWARDS_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;

/** y of the order-8 point whose canonical encoding is 26e8958f...6d53fc05 (libsodium's blocklist). */
const ORDER_8_POINT_Y = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;

/**
 * The y coordinates of the 8 small-order points: every point with one of these y values has small
 * order, whichever sign x takes, so checking y alone rejects all of them.
 * - y = 1: the identity (x = 0), order 1;
 * - y = p - 1: (0, -1), order 2;
 * - y = 0: (+-sqrt(-1), 0), order 4;
 * - y = +-ORDER_8_POINT_Y: the four points of order 8.
 */
export const SMALL_ORDER_Y_COORDINATES: ReadonlySet<bigint> = new Set([
  1n,
  FIELD_PRIME - 1n,
  0n,
  ORDER_8_POINT_Y,
  FIELD_PRIME - ORDER_8_POINT_Y,
]);

export type StrictRejection =
  | 'signature-length'
  | 'scalar-not-reduced'
  | 'r-non-canonical'
  | 'r-small-order'
  | 'public-key-length'
  | 'public-key-non-canonical'
  | 'public-key-small-order'
  | 'public-key-not-on-curve';

export function isByteArray(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

export function littleEndianToBigInt(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  return BigInt(`0x${toHex(bytes.slice().reverse())}`);
}

/** Reasons to reject a signature that do not depend on the key or message, or undefined. */
export function signatureRejection(signature: Uint8Array): StrictRejection | undefined {
  if (signature.length !== SIGNATURE_LENGTH_BYTES) return 'signature-length';
  const scalar = littleEndianToBigInt(signature.subarray(POINT_LENGTH_BYTES));
  if (scalar >= GROUP_ORDER) return 'scalar-not-reduced';
  const problem = pointEncodingProblem(signature.subarray(0, POINT_LENGTH_BYTES));
  if (problem === 'non-canonical') return 'r-non-canonical';
  if (problem === 'small-order') return 'r-small-order';
  // R need not be decoded: both backends compare its bytes with the canonical encoding of a
  // computed point, so an R that is not on the curve simply never matches.
  return undefined;
}

/** Reasons to reject a public key, or undefined. Costs a Jacobi symbol (~35 us), so verifiers cache. */
export function publicKeyRejection(publicKey: Uint8Array): StrictRejection | undefined {
  if (publicKey.length !== PUBLIC_KEY_LENGTH_BYTES) return 'public-key-length';
  const problem = pointEncodingProblem(publicKey);
  if (problem === 'non-canonical') return 'public-key-non-canonical';
  if (problem === 'small-order') return 'public-key-small-order';
  if (!isCurveY(encodedY(publicKey))) return 'public-key-not-on-curve';
  return undefined;
}

/** The first strict rule the pair breaks, or undefined when the equation decides. */
export function strictRejection(signature: Uint8Array, publicKey: Uint8Array): StrictRejection | undefined {
  return signatureRejection(signature) ?? publicKeyRejection(publicKey);
}

function encodedY(encoded: Uint8Array): bigint {
  return littleEndianToBigInt(encoded) & Y_COORDINATE_MASK;
}

function pointEncodingProblem(encoded: Uint8Array): 'non-canonical' | 'small-order' | undefined {
  const y = encodedY(encoded);
  if (y >= FIELD_PRIME) return 'non-canonical';
  // x = 0 exactly when y = 1 or y = -1; then -x = x, and the only canonical sign bit is 0.
  const signBitSet = (encoded[POINT_LENGTH_BYTES - 1]! & SIGN_BIT_MASK) !== 0;
  if (signBitSet && (y === 1n || y === FIELD_PRIME - 1n)) return 'non-canonical';
  if (SMALL_ORDER_Y_COORDINATES.has(y)) return 'small-order';
  return undefined;
}

/**
 * Whether some x satisfies the curve equation for this y: x^2 = u / v with u = y^2 - 1 and
 * v = d y^2 + 1 (v is never 0 because -1/d is not a square mod p). A solution exists exactly when
 * u = 0 or u / v is a square, and u / v = u v / v^2 is a square exactly when u v is. Either sign
 * of x is then a valid point.
 */
function isCurveY(y: bigint): boolean {
  const ySquared = (y * y) % FIELD_PRIME;
  const u = (ySquared - 1n + FIELD_PRIME) % FIELD_PRIME;
  const v = (EDWARDS_D * ySquared + 1n) % FIELD_PRIME;
  if (u === 0n) return true;
  return jacobiSymbol((u * v) % FIELD_PRIME, FIELD_PRIME) === 1;
}

/**
 * The Jacobi symbol (a / n) for odd n > 0; for prime n it is the Legendre symbol: 1 for a nonzero
 * square, -1 for a non-square, 0 for a multiple of n. Computed Euclid-style with quadratic
 * reciprocity (Cohen, Algorithm 1.4.10) because Euler's criterion a^((p-1)/2) costs ~20x more with
 * bigints (~340 us against ~19 us per key measured here).
 */
function jacobiSymbol(value: bigint, modulus: bigint): number {
  let a = value % modulus;
  let n = modulus;
  let sign = 1;
  while (a !== 0n) {
    // (2 / n) = -1 exactly when n = 3 or 5 (mod 8).
    while ((a & 1n) === 0n) {
      a >>= 1n;
      const nMod8 = n & 7n;
      if (nMod8 === 3n || nMod8 === 5n) sign = -sign;
    }
    // Reciprocity: (a / n) = (n / a), negated when both are 3 (mod 4).
    [a, n] = [n, a];
    if ((a & 3n) === 3n && (n & 3n) === 3n) sign = -sign;
    a %= n;
  }
  return n === 1n ? sign : 0;
}
