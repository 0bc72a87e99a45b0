/** Interfaces the rest of pbft depends on; the backends behind them are interchangeable. */

/** Ed25519 signing with one key: 32-byte public key, 64-byte signatures, synchronous. */
export interface Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/**
 * Ed25519 verification under the strict rules in `strict.ts`. Synchronous and total: anything
 * malformed (wrong lengths, wrong types, invalid points) yields `false`, never an exception, because
 * every input comes from an untrusted peer.
 */
export interface Verifier {
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

export type Sha256 = (data: Uint8Array) => Uint8Array;

/** `native` is OpenSSL through node:crypto (fast); `noble` is pure JavaScript (portable, audited). */
export type CryptoBackend = 'native' | 'noble';

export interface VerifierOptions {
  /** Decoded public keys a verifier keeps; defaults to `PUBLIC_KEY_CACHE_MAX_ENTRIES`. */
  publicKeyCacheMaxEntries?: number;
}
