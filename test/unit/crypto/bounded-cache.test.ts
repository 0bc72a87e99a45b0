import fc from 'fast-check';
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

  it('behaves like a reference LRU over long runs of gets, sets and deletes', () => {
    // The reference keeps keys in recency order in a plain array: slow, obviously right.
    type Op = { kind: 'get' | 'set' | 'delete'; key: number };
    const op = fc.record({
      kind: fc.constantFrom('get', 'set', 'set', 'delete'),
      key: fc.nat(12),
    }) as fc.Arbitrary<Op>;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 300 }), (bound, ops) => {
        const cache = new BoundedCache<number, number>(bound);
        const order: number[] = [];
        const values = new Map<number, number>();
        for (const [index, { kind, key }] of ops.entries()) {
          const at = order.indexOf(key);
          if (kind === 'get') {
            expect(cache.get(key)).toBe(at === -1 ? undefined : values.get(key));
            if (at !== -1) order.push(...order.splice(at, 1));
          } else if (kind === 'set') {
            cache.set(key, index);
            if (at !== -1) order.splice(at, 1);
            else if (order.length >= bound) values.delete(order.shift()!);
            order.push(key);
            values.set(key, index);
          } else {
            expect(cache.delete(key)).toBe(at !== -1);
            if (at !== -1) order.splice(at, 1);
            values.delete(key);
          }
          expect(cache.size).toBe(order.length);
        }
      }),
      { seed: 20_261_122, numRuns: 300 },
    );
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
