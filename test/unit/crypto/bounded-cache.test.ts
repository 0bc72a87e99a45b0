import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../../../src/crypto/bounded-cache.ts';
import { createSigner, NativeVerifier, NobleVerifier } from '../../../src/crypto/index.ts';
import { PublicKeyCache } from '../../../src/crypto/public-key-cache.ts';
import { InvariantError } from '../../../src/util/assert.ts';
import { utf8 } from '../../../src/util/bytes.ts';

describe('BoundedCache', () => {
  it('never holds more than its bound and evicts the least recently used entry', () => {
    const cache = new BoundedCache<string, number>(3);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    expect(cache.get('a')).toBe(1); // a is now the most recently used
    cache.set('d', 4); // evicts b
    expect(cache.size).toBe(3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.get('c')).toBe(3);
    expect(cache.get('d')).toBe(4);
  });

  it('overwriting a key does not evict another', () => {
    const cache = new BoundedCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('a', 10);
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBe(10);
    expect(cache.get('b')).toBe(2);
  });

  it('requires a positive integer bound', () => {
    for (const bound of [0, -1, 1.5, Number.NaN])
      expect(() => new BoundedCache(bound)).toThrow(InvariantError);
  });
});

describe('PublicKeyCache', () => {
  it('decodes each valid key once, never caches rejected keys, and stays within its bound', () => {
    let decodeCalls = 0;
    const cache = new PublicKeyCache((publicKey) => {
      decodeCalls++;
      return publicKey.length;
    }, 2);
    const keys = [1, 2, 3].map((byte) => createSigner(new Uint8Array(32).fill(byte)).publicKey);
    expect(cache.lookup(keys[0]!)).toBe(32);
    expect(cache.lookup(keys[0]!)).toBe(32);
    expect(decodeCalls).toBe(1);
    expect(cache.lookup(new Uint8Array(32))).toBeUndefined(); // small order: rejected before decode
    expect(decodeCalls).toBe(1);
    cache.lookup(keys[1]!);
    cache.lookup(keys[2]!);
    expect(cache.size).toBe(2);
  });

  it('keeps verifiers correct when more keys arrive than the cache holds', () => {
    const signers = Array.from({ length: 5 }, (_, index) => createSigner(new Uint8Array(32).fill(index + 1)));
    const message = utf8('m');
    for (const verifier of [
      new NativeVerifier({ publicKeyCacheMaxEntries: 2 }),
      new NobleVerifier({ publicKeyCacheMaxEntries: 2 }),
    ]) {
      for (let round = 0; round < 3; round++) {
        for (const signer of signers)
          expect(verifier.verify(signer.sign(message), message, signer.publicKey)).toBe(true);
      }
    }
  });
});
