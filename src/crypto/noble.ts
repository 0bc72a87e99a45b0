/**
 * Pure-JavaScript Ed25519 backend on @noble/ed25519 (audited, no native code).
 *
 * Signing is noble's RFC 8032 `sign`. Verification does NOT call noble's `verify`: even with
 * `{ zip215: false }` noble 3.x checks the cofactored equation [8][S]B = [8]R + [8][k]A, which
 * accepts signatures whose R carries a small-order component that OpenSSL's cofactorless check
 * rejects (see the differential tests). So the equation is evaluated here with noble's point
 * arithmetic, exactly as OpenSSL does it: encode [S]B - [k]A and compare with the R bytes.
 *
 * Measured on the development machine (Node 24.21, AMD EPYC VM, one core, 256-byte messages):
 * ~1,500-1,800 signatures/s and ~430-530 verifications/s with a cached key (~330-470/s when every
 * key is new); the native backend does ~15,000-20,000 and ~6,100-6,900. Use noble where node:crypto
 * is unavailable; the differential tests run it against the native backend.
 */
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { invariant } from '../util/assert.ts';
import { bytesEqual, toHex } from '../util/bytes.ts';
import { PUBLIC_KEY_CACHE_MAX_ENTRIES, PublicKeyCache } from './public-key-cache.ts';
import {
  GROUP_ORDER,
  isByteArray,
  littleEndianToBigInt,
  POINT_LENGTH_BYTES,
  SEED_LENGTH_BYTES,
  signatureRejection,
} from './strict.ts';
import type { Signer, Verifier, VerifierOptions } from './types.ts';

// noble's synchronous API hashes through this slot; wire the pure SHA-512 from @noble/hashes.
ed.hashes.sha512 = sha512;

export class NobleSigner implements Signer {
  readonly publicKey: Uint8Array;
  readonly #seed: Uint8Array;

  constructor(seed: Uint8Array) {
    invariant(isByteArray(seed) && seed.length === SEED_LENGTH_BYTES, 'an ed25519 seed is 32 bytes');
    // Own copy: the caller may wipe or reuse its buffer.
    this.#seed = Uint8Array.from(seed);
    this.publicKey = ed.getPublicKey(this.#seed);
  }

  sign(message: Uint8Array): Uint8Array {
    return ed.sign(message, this.#seed);
  }

  toJSON(): { backend: 'noble'; publicKey: string } {
    return { backend: 'noble', publicKey: toHex(this.publicKey) };
  }

  toString(): string {
    return `NobleSigner(${toHex(this.publicKey)})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `NobleSigner { publicKey: '${toHex(this.publicKey)}' }`;
  }
}

export class NobleVerifier implements Verifier {
  // Holds -A, the form the equation uses.
  readonly #negatedPublicKeys: PublicKeyCache<ed.Point>;

  constructor(options: VerifierOptions = {}) {
    this.#negatedPublicKeys = new PublicKeyCache(
      // Cannot throw: the strict checks already ran and are a superset of noble's strict decoding.
      (publicKey) => ed.Point.fromBytes(publicKey, false).negate(),
      options.publicKeyCacheMaxEntries ?? PUBLIC_KEY_CACHE_MAX_ENTRIES,
    );
  }

  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    if (!isByteArray(signature) || !isByteArray(message) || !isByteArray(publicKey)) return false;
    if (signatureRejection(signature) !== undefined) return false;
    const negatedPublicKey = this.#negatedPublicKeys.lookup(publicKey);
    if (negatedPublicKey === undefined) return false;

    const encodedR = signature.subarray(0, POINT_LENGTH_BYTES);
    const scalar = littleEndianToBigInt(signature.subarray(POINT_LENGTH_BYTES));
    // k = SHA-512(R || A || M) mod L over the bytes as received (they are canonical by now).
    const challenge =
      littleEndianToBigInt(sha512.create().update(encodedR).update(publicKey).update(message).digest()) %
      GROUP_ORDER;
    // Unsafe (variable-time) multiplication is fine: every input here is public.
    const expectedR = ed.Point.BASE.multiply(scalar, false).add(negatedPublicKey.multiply(challenge, false));
    return bytesEqual(expectedR.toBytes(), encodedR);
  }
}
