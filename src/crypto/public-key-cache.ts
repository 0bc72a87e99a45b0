import { BoundedCache } from './bounded-cache.ts';
import { publicKeyRejection } from './strict.ts';

/**
 * Decoded public keys kept per verifier. A replica verifies the same few replica and client keys
 * constantly; the bound keeps memory flat when peers send arbitrary keys.
 */
export const PUBLIC_KEY_CACHE_MAX_ENTRIES = 4096;

/**
 * Public keys that passed the strict checks, in the form a backend verifies with. The checks
 * (~35 us) and decoding (~45 us for an OpenSSL KeyObject, a square root for noble) are paid once
 * per key rather than once per signature.
 */
export class PublicKeyCache<Decoded> {
  readonly #decode: (publicKey: Uint8Array) => Decoded | undefined;
  readonly #entries: BoundedCache<string, Decoded>;

  /** `decode` runs only on keys that passed the strict checks; `undefined` means invalid. */
  constructor(decode: (publicKey: Uint8Array) => Decoded | undefined, maxEntries: number) {
    this.#decode = decode;
    this.#entries = new BoundedCache(maxEntries);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The decoded key, or undefined when the key fails the strict checks. Rejections are not cached. */
  lookup(publicKey: Uint8Array): Decoded | undefined {
    // latin1 maps each byte to one char: an injective key that is cheaper to hash than hex.
    const cacheKey = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString(
      'latin1',
    );
    const cached = this.#entries.get(cacheKey);
    if (cached !== undefined) return cached;
    if (publicKeyRejection(publicKey) !== undefined) return undefined;
    const decoded = this.#decode(publicKey);
    if (decoded !== undefined) this.#entries.set(cacheKey, decoded);
    return decoded;
  }
}
