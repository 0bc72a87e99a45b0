/**
 * Signature checks on worker threads give exactly the event loop's answers, in order, including the
 * strict rejections both backends share; and the edge releases asynchronously verified messages in
 * arrival order.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSigner, createVerifier } from '../../../src/crypto/index.ts';
import { GROUP_ORDER } from '../../../src/crypto/strict.ts';
import { InOrderRelease } from '../../../src/node/in-order.ts';
import { type SignatureCheck, VerifyPool } from '../../../src/node/verify-pool.ts';

const WORKERS = 2;

function littleEndian(value: bigint, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let index = 0; index < length; index++) bytes[index] = Number((value >> BigInt(8 * index)) & 0xffn);
  return bytes;
}

/** Valid signatures and every kind of invalid one, interleaved. */
function mixedChecks(count: number): SignatureCheck[] {
  const checks: SignatureCheck[] = [];
  for (let index = 0; index < count; index++) {
    const signer = createSigner(randomBytes(32), 'native');
    const message = randomBytes(40 + index);
    const signature = signer.sign(message);
    switch (index % 5) {
      case 0:
        checks.push({ signature, message, publicKey: signer.publicKey });
        break;
      case 1: // a different message
        checks.push({ signature, message: randomBytes(40), publicKey: signer.publicKey });
        break;
      case 2: {
        // S + L: the same equation holds, but strict verification refuses a non-reduced scalar
        const scalar = littleEndian(
          signature.subarray(32).reduceRight((value, byte) => (value << 8n) | BigInt(byte), 0n) + GROUP_ORDER,
          32,
        );
        const malleated = new Uint8Array(64);
        malleated.set(signature.subarray(0, 32));
        malleated.set(scalar, 32);
        checks.push({ signature: malleated, message, publicKey: signer.publicKey });
        break;
      }
      case 3: // someone else's key
        checks.push({ signature, message, publicKey: createSigner(randomBytes(32), 'native').publicKey });
        break;
      default: // a small-order public key (the identity)
        checks.push({ signature, message, publicKey: littleEndian(1n, 32) });
    }
  }
  return checks;
}

describe('VerifyPool', () => {
  let pool: VerifyPool;
  beforeAll(async () => {
    pool = await VerifyPool.start(WORKERS);
  });
  afterAll(async () => {
    await pool.close();
  });

  it('answers exactly as the event-loop verifier, signature by signature and in order', async () => {
    const verifier = createVerifier('native');
    const checks = mixedChecks(50);
    const expected = checks.map((check) => verifier.verify(check.signature, check.message, check.publicKey));
    expect(expected.filter(Boolean)).toHaveLength(10);
    await expect(pool.verify(checks)).resolves.toEqual(expected);
  });

  it('keeps each caller its own answers when bursts of one turn are sent together', async () => {
    const verifier = createVerifier('native');
    const bursts = Array.from({ length: 7 }, (_, index) => mixedChecks(index + 1));
    const answers = await Promise.all(bursts.map((checks) => pool.verify(checks)));
    for (const [index, checks] of bursts.entries()) {
      expect(answers[index]).toEqual(
        checks.map((check) => verifier.verify(check.signature, check.message, check.publicKey)),
      );
    }
    await expect(pool.verify([])).resolves.toEqual([]);
  });

  it('fails the checks a dying worker held, then refuses work once no worker is left', async () => {
    const failing = await VerifyPool.start(2, {
      workerFile: new URL('./fixtures/failing-verify-worker.ts', import.meta.url),
    });
    try {
      await expect(failing.verify(mixedChecks(40))).rejects.toThrow(/exited/);
      // Each worker got part of the burst; the second may exit a moment after the first.
      await expect.poll(() => failing.size).toBe(0);
      await expect(failing.verify(mixedChecks(1))).rejects.toThrow(/every verification worker has failed/);
    } finally {
      await failing.close();
    }
  });

  it('refuses work once closed', async () => {
    const closing = await VerifyPool.start(1);
    await closing.close();
    await expect(closing.verify(mixedChecks(1))).rejects.toThrow(/closed/);
  });
});

describe('InOrderRelease', () => {
  it('releases in the order slots were taken, whatever order they complete in', () => {
    const released: string[] = [];
    const order = new InOrderRelease();
    const first = order.take();
    const second = order.take();
    const third = order.take();
    third(() => released.push('third'));
    second(() => released.push('second'));
    expect(released).toEqual([]);
    expect(order.length).toBe(3);
    first(() => released.push('first'));
    expect(released).toEqual(['first', 'second', 'third']);
    expect(order.length).toBe(0);
    const fourth = order.take();
    fourth(() => released.push('fourth'));
    expect(released).toEqual(['first', 'second', 'third', 'fourth']);
    expect(() => fourth(() => undefined)).toThrow(/twice/);
  });

  it('lets a release take and settle further slots', () => {
    const released: number[] = [];
    const order = new InOrderRelease();
    const first = order.take();
    first(() => {
      released.push(1);
      const nested = order.take();
      nested(() => released.push(2));
    });
    expect(released).toEqual([1, 2]);
    expect(order.length).toBe(0);
  });
});
