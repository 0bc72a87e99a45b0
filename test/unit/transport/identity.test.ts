/** The libp2p identity is the replica key: the peer id derives from the seed and embeds its public key. */
import { describe, expect, it } from 'vitest';
import { publicKeyFromSeed } from '../../../src/crypto/keys.ts';
import {
  InvalidPeerIdError,
  peerIdFromSeed,
  publicKeyFromPeerId,
  TransportConfigError,
} from '../../../src/transport/index.ts';

describe('identity', () => {
  it('derives a stable peer id from a seed, embedding the same public key the crypto layer derives', async () => {
    const seed = new Uint8Array(32).fill(42);
    const peerId = await peerIdFromSeed(seed);
    expect(await peerIdFromSeed(seed)).toBe(peerId);
    expect(peerId).not.toBe(await peerIdFromSeed(new Uint8Array(32).fill(43)));
    expect(publicKeyFromPeerId(peerId)).toEqual(publicKeyFromSeed(seed));
  });

  it('rejects seeds of the wrong length and peer ids that are not ed25519', async () => {
    await expect(peerIdFromSeed(new Uint8Array(31))).rejects.toThrow(TransportConfigError);
    expect(() => publicKeyFromPeerId('not a peer id')).toThrow(InvalidPeerIdError);
    // An RSA-style (sha256 multihash) peer id carries no key.
    expect(() => publicKeyFromPeerId('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N')).toThrow(
      InvalidPeerIdError,
    );
  });
});
