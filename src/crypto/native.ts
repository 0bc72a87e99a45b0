/**
 * Ed25519 through node:crypto, i.e. the OpenSSL bundled with Node (3.5 in Node 24). The default
 * backend: an order of magnitude faster than pure JavaScript.
 *
 * OpenSSL's verify already checks S < L and the cofactorless equation by comparing the encoding of
 * [S]B - [k]A with the R bytes; the shared strict checks pin down the rest (small-order and
 * non-canonical R and A), so this backend and the noble one accept the same signatures, which the
 * differential tests check.
 *
 * Measured on the development machine (Node 24.21, AMD EPYC VM, one core, 256-byte messages):
 * ~15,000-20,000 signatures/s and ~6,100-6,900 verifications/s with a cached key (bare
 * crypto.verify does ~7,000-7,400/s, so the strict checks cost a few percent), ~3,200-3,700/s
 * when every key is new; noble does ~1,500-1,800 and ~430-530.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { invariant } from '../util/assert.ts';
import { bytesEqual, toHex } from '../util/bytes.ts';
import { PUBLIC_KEY_CACHE_MAX_ENTRIES, PublicKeyCache } from './public-key-cache.ts';
import { isByteArray, PUBLIC_KEY_LENGTH_BYTES, SEED_LENGTH_BYTES, signatureRejection } from './strict.ts';
import type { Signer, Verifier, VerifierOptions } from './types.ts';

/** DER of a PKCS#8 OneAsymmetricKey for Ed25519 (RFC 8410), up to the 32-byte seed. */
const PKCS8_ED25519_SEED_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** DER of a SubjectPublicKeyInfo for Ed25519 (RFC 8410), up to the 32-byte public key. */
const SPKI_ED25519_PUBLIC_KEY_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function privateKeyObjectFromSeed(seed: Uint8Array): KeyObject {
  invariant(isByteArray(seed) && seed.length === SEED_LENGTH_BYTES, 'an ed25519 seed is 32 bytes');
  const der = Buffer.concat([PKCS8_ED25519_SEED_PREFIX, seed]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    // OpenSSL holds its own copy; do not leave the seed in a second JavaScript buffer.
    der.fill(0);
  }
}

/** Throws on keys OpenSSL cannot decode; `NativeVerifier` runs the strict checks first. */
export function publicKeyObjectFromRaw(publicKey: Uint8Array): KeyObject {
  invariant(
    isByteArray(publicKey) && publicKey.length === PUBLIC_KEY_LENGTH_BYTES,
    'an ed25519 public key is 32 bytes',
  );
  const der = Buffer.concat([SPKI_ED25519_PUBLIC_KEY_PREFIX, publicKey]);
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

export function rawPublicKeyFromKeyObject(key: KeyObject): Uint8Array {
  const der = key.export({ format: 'der', type: 'spki' });
  invariant(
    der.length === SPKI_ED25519_PUBLIC_KEY_PREFIX.length + PUBLIC_KEY_LENGTH_BYTES &&
      bytesEqual(der.subarray(0, SPKI_ED25519_PUBLIC_KEY_PREFIX.length), SPKI_ED25519_PUBLIC_KEY_PREFIX),
    'expected an ed25519 SubjectPublicKeyInfo',
  );
  return Uint8Array.from(der.subarray(SPKI_ED25519_PUBLIC_KEY_PREFIX.length));
}

export class NativeSigner implements Signer {
  readonly publicKey: Uint8Array;
  readonly #privateKey: KeyObject;

  constructor(seed: Uint8Array) {
    this.#privateKey = privateKeyObjectFromSeed(seed);
    this.publicKey = rawPublicKeyFromKeyObject(createPublicKey(this.#privateKey));
  }

  sign(message: Uint8Array): Uint8Array {
    // A plain Uint8Array, not a Buffer: callers compare, encode and log signatures as bytes.
    return Uint8Array.from(sign(null, message, this.#privateKey));
  }

  toJSON(): { backend: 'native'; publicKey: string } {
    return { backend: 'native', publicKey: toHex(this.publicKey) };
  }

  toString(): string {
    return `NativeSigner(${toHex(this.publicKey)})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `NativeSigner { publicKey: '${toHex(this.publicKey)}' }`;
  }
}

export class NativeVerifier implements Verifier {
  readonly #publicKeys: PublicKeyCache<KeyObject>;

  constructor(options: VerifierOptions = {}) {
    this.#publicKeys = new PublicKeyCache(
      publicKeyObjectOrUndefined,
      options.publicKeyCacheMaxEntries ?? PUBLIC_KEY_CACHE_MAX_ENTRIES,
    );
  }

  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    if (!isByteArray(signature) || !isByteArray(message) || !isByteArray(publicKey)) return false;
    if (signatureRejection(signature) !== undefined) return false;
    const keyObject = this.#publicKeys.lookup(publicKey);
    if (keyObject === undefined) return false;
    try {
      return verify(null, message, keyObject, signature);
    } catch {
      // OpenSSL reports some malformed inputs as errors rather than `false`; for us both mean invalid.
      return false;
    }
  }
}

function publicKeyObjectOrUndefined(publicKey: Uint8Array): KeyObject | undefined {
  try {
    return publicKeyObjectFromRaw(publicKey);
  } catch {
    return undefined;
  }
}
