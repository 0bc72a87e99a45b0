/**
 * A replica's libp2p identity is its ed25519 replica key: the private key derives from the replica's
 * 32-byte seed, and the peer id embeds the public key. So cluster.json can list peer ids, Noise
 * authenticates the replica key on every connection, and the consensus layer can read the key back
 * from the peer id without any lookup.
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import type { Ed25519PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { InvalidPeerIdError, TransportConfigError } from './errors.ts';

export const SEED_LENGTH_BYTES = 32;

export async function privateKeyFromSeed(seed: Uint8Array): Promise<Ed25519PrivateKey> {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_LENGTH_BYTES) {
    throw new TransportConfigError(`an ed25519 seed is ${SEED_LENGTH_BYTES} bytes`);
  }
  return generateKeyPairFromSeed('Ed25519', seed);
}

export async function peerIdFromSeed(seed: Uint8Array): Promise<string> {
  return peerIdFromPrivateKey(await privateKeyFromSeed(seed)).toString();
}

/** The 32-byte ed25519 public key embedded in an ed25519 peer id. */
export function publicKeyFromPeerId(peerId: string): Uint8Array {
  let parsed: ReturnType<typeof peerIdFromString>;
  try {
    parsed = peerIdFromString(peerId);
  } catch (error) {
    throw new InvalidPeerIdError(peerId, error instanceof Error ? error.message : String(error));
  }
  if (parsed.type !== 'Ed25519') throw new InvalidPeerIdError(peerId, `a ${parsed.type} key, not ed25519`);
  return parsed.publicKey.raw;
}
