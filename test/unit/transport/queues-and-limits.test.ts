/** The bounded frame queue and the client rate limiter, with an injected clock. */
import { describe, expect, it } from 'vitest';
import { FrameQueue } from '../../../src/transport/frame-queue.ts';
import {
  ClientRateLimiter,
  RATE_LIMIT_ABUSE_SECONDS,
  TokenBucket,
} from '../../../src/transport/rate-limit.ts';

const frameOf = (value: number, sizeBytes = 1) => new Uint8Array(sizeBytes).fill(value);

describe('FrameQueue', () => {
  it('drops the oldest frames when the frame bound is exceeded, and says how many', () => {
    const queue = new FrameQueue({ sizeMaxBytes: 1000, framesMax: 3 });
    for (const value of [1, 2, 3]) expect(queue.push(frameOf(value))).toBe(0);
    expect(queue.push(frameOf(4))).toBe(1);
    expect(queue.take(1000).map((frame) => frame[0])).toEqual([2, 3, 4]);
    expect(queue.length).toBe(0);
    expect(queue.sizeBytes).toBe(0);
  });

  it('drops the oldest frames when the byte bound is exceeded', () => {
    const queue = new FrameQueue({ sizeMaxBytes: 10, framesMax: 100 });
    queue.push(frameOf(1, 4));
    queue.push(frameOf(2, 4));
    expect(queue.push(frameOf(3, 4))).toBe(1);
    expect(queue.sizeBytes).toBe(8);
    expect(queue.push(frameOf(4, 11))).toBe(1); // larger than the whole bound: dropped itself
    expect(queue.take(100).map((frame) => frame[0])).toEqual([2, 3]);
  });

  it('takes batches up to a size, but always at least one frame', () => {
    const queue = new FrameQueue({ sizeMaxBytes: 1000, framesMax: 100 });
    for (const value of [1, 2, 3]) queue.push(frameOf(value, 40));
    expect(queue.take(50)).toHaveLength(1);
    expect(queue.take(10)).toHaveLength(1);
    expect(queue.take(1000)).toHaveLength(1);
    expect(queue.take(1000)).toHaveLength(0);
  });

  it('stays in order across many pushes and takes (compaction)', () => {
    const queue = new FrameQueue({ sizeMaxBytes: 1_000_000, framesMax: 100_000 });
    const taken: number[] = [];
    for (let value = 0; value < 5000; value++) {
      queue.push(Uint8Array.of(value % 256));
      if (value % 3 === 0) taken.push(...queue.take(2).map((frame) => frame[0]!));
    }
    taken.push(...queue.take(Number.POSITIVE_INFINITY).map((frame) => frame[0]!));
    expect(taken).toEqual(Array.from({ length: 5000 }, (_, value) => value % 256));
  });
});

describe('TokenBucket', () => {
  it('allows a burst of its capacity, then its rate', () => {
    const bucket = new TokenBucket({ ratePerSecond: 10, capacity: 20, nowMs: 0 });
    let accepted = 0;
    for (let index = 0; index < 100; index++) if (bucket.tryTake(0)) accepted++;
    expect(accepted).toBe(20);
    expect(bucket.tryTake(50)).toBe(false);
    expect(bucket.tryTake(100)).toBe(true); // 100 ms at 10/s refills one token
    expect(bucket.tryTake(100)).toBe(false);
  });
});

describe('ClientRateLimiter', () => {
  it('drops over the limit and closes after drops in consecutive seconds', () => {
    const limiter = new ClientRateLimiter(10, 0);
    const admissions: string[] = [];
    // 50 frames/s, five times the limit, for five seconds.
    for (let timeMs = 0; timeMs < 5000; timeMs += 20) admissions.push(limiter.admit(timeMs));
    const firstClose = admissions.indexOf('close');
    expect(admissions.slice(0, 20).every((admission) => admission === 'accept')).toBe(true);
    expect(admissions).toContain('drop');
    expect(firstClose * 20).toBeGreaterThanOrEqual((RATE_LIMIT_ABUSE_SECONDS - 1) * 1000);
    expect(firstClose * 20).toBeLessThan(RATE_LIMIT_ABUSE_SECONDS * 1000);
  });

  it('forgives an occasional burst', () => {
    const limiter = new ClientRateLimiter(10, 0);
    const admissions: string[] = [];
    for (let second = 0; second < 10; second += 2) {
      // 25 frames at the start of every other second: over the burst, but never for long.
      for (let index = 0; index < 25; index++) admissions.push(limiter.admit(second * 1000));
    }
    expect(admissions).toContain('drop');
    expect(admissions).not.toContain('close');
  });
});
