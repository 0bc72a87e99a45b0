/**
 * Signature schemes for the simulator.
 *
 * `ed25519` is the real thing (the crypto layer's native backend). `simulated` replaces each
 * signature by SHA-512(secret ‖ message) and verifies it against the simulator's table of secrets:
 * a replica can still only sign as itself, and forged, truncated or impersonating signatures still
 * fail, but a sweep of thousands of seeds runs several times faster. The real backends are tested
 * against each other separately (test/unit/crypto).
 */
import { createSigner, createVerifier, publicKeyFromSeed, sha256, sha512 } from '../crypto/index.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import { bytesEqual, concatBytes, toHex } from '../util/bytes.ts';

export type SimulationCrypto = 'ed25519' | 'simulated';

export interface SignatureScheme {
  signer(seed: Uint8Array): Signer;
  publicKey(seed: Uint8Array): Uint8Array;
  readonly verifier: Verifier;
  /** Whether verification is expensive enough to be worth caching. */
  readonly cacheVerifications: boolean;
}

class SimulatedScheme implements SignatureScheme {
  private readonly secrets = new Map<string, Uint8Array>();
  readonly cacheVerifications = false;
  readonly verifier: Verifier = {
    verify: (signature, message, publicKey) => {
      const secret = this.secrets.get(toHex(publicKey));
      return (
        secret !== undefined &&
        signature.length === 64 &&
        bytesEqual(signature, sha512(concatBytes(secret, message)))
      );
    },
  };

  publicKey(seed: Uint8Array): Uint8Array {
    return sha256(seed);
  }

  signer(seed: Uint8Array): Signer {
    const publicKey = this.publicKey(seed);
    this.secrets.set(toHex(publicKey), seed);
    return { publicKey, sign: (message) => sha512(concatBytes(seed, message)) };
  }
}

class Ed25519Scheme implements SignatureScheme {
  readonly cacheVerifications = true;
  readonly verifier = createVerifier('native');
  publicKey(seed: Uint8Array): Uint8Array {
    return publicKeyFromSeed(seed);
  }
  signer(seed: Uint8Array): Signer {
    return createSigner(seed, 'native');
  }
}

export function signatureScheme(kind: SimulationCrypto): SignatureScheme {
  return kind === 'ed25519' ? new Ed25519Scheme() : new SimulatedScheme();
}
