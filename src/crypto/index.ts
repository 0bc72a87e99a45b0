/** Public API of the crypto layer: Ed25519 signing and strict verification, SHA-256, key files. */
export { SHA256_LENGTH_BYTES, sha256, sha256Noble, sha512 } from './digest.ts';
export {
  createSigner,
  createVerifier,
  formatKeyFile,
  generateSeed,
  KEY_FILE_SIZE_MAX_BYTES,
  KEY_TYPE,
  KeyFileError,
  KeyPair,
  parseKeyFile,
  publicKeyFromSeed,
  readKeyFile,
  type WriteKeyFileOptions,
  writeKeyFile,
} from './keys.ts';
export { NativeSigner, NativeVerifier } from './native.ts';
export { NobleSigner, NobleVerifier } from './noble.ts';
export { PUBLIC_KEY_CACHE_MAX_ENTRIES } from './public-key-cache.ts';
export {
  PUBLIC_KEY_LENGTH_BYTES,
  SEED_LENGTH_BYTES,
  SIGNATURE_LENGTH_BYTES,
  type StrictRejection,
  strictRejection,
} from './strict.ts';
export type { CryptoBackend, Sha256, Signer, Verifier, VerifierOptions } from './types.ts';
