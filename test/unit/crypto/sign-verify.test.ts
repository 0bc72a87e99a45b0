import { describe, expect, it } from 'vitest';
import {
  type CryptoBackend,
  createSigner,
  createVerifier,
  NativeSigner,
  NativeVerifier,
  NobleSigner,
  NobleVerifier,
  publicKeyFromSeed,
} from '../../../src/crypto/index.ts';
import { InvariantError } from '../../../src/util/assert.ts';
import { fromHex, toHex, utf8 } from '../../../src/util/bytes.ts';

const BACKENDS: readonly CryptoBackend[] = ['native', 'noble'];

/** RFC 8032 section 7.1, TEST 1 to TEST 3: seed, public key, message, signature. */
const RFC8032_VECTORS = [
  {
    name: 'TEST 1 (empty message)',
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2 (one byte)',
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3 (two bytes)',
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature:
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
] as const;

function seedFromByte(byte: number): Uint8Array {
  return new Uint8Array(32).fill(byte);
}

describe('RFC 8032 test vectors', () => {
  for (const vector of RFC8032_VECTORS) {
    for (const backend of BACKENDS) {
      it(`${vector.name}: ${backend} derives the key, signs byte for byte and verifies`, () => {
        const signer = createSigner(fromHex(vector.seed), backend);
        const message = fromHex(vector.message);
        expect(toHex(signer.publicKey)).toBe(vector.publicKey);
        expect(toHex(signer.sign(message))).toBe(vector.signature);
        expect(
          createVerifier(backend).verify(fromHex(vector.signature), message, fromHex(vector.publicKey)),
        ).toBe(true);
      });
    }
  }
});

describe('sign and verify', () => {
  it('derives the same public key in every backend and in publicKeyFromSeed', () => {
    const seed = seedFromByte(7);
    const expected = toHex(publicKeyFromSeed(seed));
    expect(toHex(new NativeSigner(seed).publicKey)).toBe(expected);
    expect(toHex(new NobleSigner(seed).publicKey)).toBe(expected);
  });

  for (const backend of BACKENDS) {
    it(`round trips on ${backend} and rejects another message or another key`, () => {
      const signer = createSigner(seedFromByte(1), backend);
      const other = createSigner(seedFromByte(2), backend);
      const verifier = createVerifier(backend);
      const message = utf8('PREPARE view=3 seq=41');
      const signature = signer.sign(message);
      expect(signature).toBeInstanceOf(Uint8Array);
      expect(signature.length).toBe(64);
      expect(signer.publicKey.length).toBe(32);
      expect(verifier.verify(signature, message, signer.publicKey)).toBe(true);
      expect(verifier.verify(signature, utf8('PREPARE view=3 seq=42'), signer.publicKey)).toBe(false);
      expect(verifier.verify(signature, message, other.publicKey)).toBe(false);
    });
  }

  it('returns plain Uint8Arrays, not Buffers, from both backends', () => {
    for (const backend of BACKENDS) {
      const signer = createSigner(seedFromByte(3), backend);
      expect(Object.getPrototypeOf(signer.sign(utf8('x')))).toBe(Uint8Array.prototype);
      expect(Object.getPrototypeOf(signer.publicKey)).toBe(Uint8Array.prototype);
    }
  });

  it('cross-verifies: noble signatures verify natively and vice versa, byte-identical', () => {
    const nativeVerifier = new NativeVerifier();
    const nobleVerifier = new NobleVerifier();
    for (let seedByte = 0; seedByte < 16; seedByte++) {
      const seed = seedFromByte(seedByte);
      const nativeSigner = new NativeSigner(seed);
      const nobleSigner = new NobleSigner(seed);
      const message = utf8(`message ${seedByte}`.repeat(seedByte));
      const nativeSignature = nativeSigner.sign(message);
      const nobleSignature = nobleSigner.sign(message);
      expect(toHex(nobleSignature)).toBe(toHex(nativeSignature));
      expect(nativeVerifier.verify(nobleSignature, message, nobleSigner.publicKey)).toBe(true);
      expect(nobleVerifier.verify(nativeSignature, message, nativeSigner.publicKey)).toBe(true);
    }
  });

  it('keeps its own copy of the seed: wiping the caller buffer does not change the key', () => {
    for (const backend of BACKENDS) {
      const seed = seedFromByte(9);
      const signer = createSigner(seed, backend);
      const before = toHex(signer.sign(utf8('m')));
      seed.fill(0);
      expect(toHex(signer.sign(utf8('m')))).toBe(before);
    }
  });

  it('refuses seeds that are not 32 bytes', () => {
    for (const backend of BACKENDS) {
      for (const length of [0, 31, 33, 64]) {
        expect(() => createSigner(new Uint8Array(length), backend)).toThrow(InvariantError);
      }
    }
  });

  it('refuses an unknown backend name from untyped callers', () => {
    expect(() => createSigner(seedFromByte(1), 'openssl' as CryptoBackend)).toThrow(/unknown crypto backend/);
    expect(() => createVerifier('wasm' as CryptoBackend)).toThrow(/unknown crypto backend/);
  });

  it('never throws on inputs of the wrong type', () => {
    const signer = createSigner(seedFromByte(4));
    const message = utf8('m');
    const signature = signer.sign(message);
    const junk: unknown[] = [undefined, null, 'abc', 42, [1, 2, 3], {}, new ArrayBuffer(64)];
    for (const backend of BACKENDS) {
      const verifier = createVerifier(backend);
      for (const value of junk) {
        const bad = value as Uint8Array;
        expect(verifier.verify(bad, message, signer.publicKey)).toBe(false);
        expect(verifier.verify(signature, bad, signer.publicKey)).toBe(false);
        expect(verifier.verify(signature, message, bad)).toBe(false);
      }
    }
  });

  it('accepts subarray views at any offset (keys and signatures inside larger buffers)', () => {
    const signer = createSigner(seedFromByte(5));
    const message = utf8('framed');
    const frame = new Uint8Array(3 + 64 + 32 + message.length);
    frame.set(signer.sign(message), 3);
    frame.set(signer.publicKey, 3 + 64);
    frame.set(message, 3 + 64 + 32);
    for (const backend of BACKENDS) {
      expect(
        createVerifier(backend).verify(frame.subarray(3, 67), frame.subarray(99), frame.subarray(67, 99)),
      ).toBe(true);
    }
  });

  it('does not print the seed when a signer is logged or serialised', () => {
    const seed = seedFromByte(0xab);
    for (const backend of BACKENDS) {
      const signer = createSigner(seed, backend);
      const shown = [JSON.stringify(signer), String(signer), `${signer}`].join('\n');
      expect(shown).toContain(toHex(signer.publicKey));
      expect(shown).not.toContain(toHex(seed));
    }
  });
});
