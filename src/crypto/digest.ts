/**
 * SHA-256 in two implementations with identical output: `sha256` (OpenSSL through node:crypto, the
 * default) and `sha256Noble` (pure JavaScript, for environments without node:crypto and as a
 * cross-check in tests).
 */
import { createHash } from 'node:crypto';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import type { Sha256 } from './types.ts';

export const SHA256_LENGTH_BYTES = 32;

export const sha256: Sha256 = (data) =>
  // A plain Uint8Array, not a Buffer, so digests compare and serialise like every other byte string.
  Uint8Array.from(createHash('sha256').update(data).digest());

export const sha256Noble: Sha256 = (data) => nobleSha256(data);

/** SHA-512 (OpenSSL), 64 bytes: the simulator's stand-in signatures are keyed SHA-512 digests. */
export const sha512 = (data: Uint8Array): Uint8Array =>
  Uint8Array.from(createHash('sha512').update(data).digest());
