/** The first-retransmission timeout follows the latency of agreed requests, within its bounds. */
import { describe, expect, it } from 'vitest';
import { RetransmitTimeout } from '../../../src/client/retransmit-timeout.ts';

describe('RetransmitTimeout', () => {
  it('starts at the floor and stays there while requests are fast', () => {
    const timeout = new RetransmitTimeout(1_000, 8_000);
    expect(timeout.currentMs).toBe(1_000);
    for (let sample = 0; sample < 50; sample++) timeout.observe(40 + (sample % 5));
    expect(timeout.currentMs).toBe(1_000);
  });

  it('rises above the latency an overloaded cluster shows, so clients do not retransmit into it', () => {
    const timeout = new RetransmitTimeout(1_000, 8_000);
    for (let sample = 0; sample < 50; sample++) timeout.observe(1_400 + (sample % 2) * 200);
    expect(timeout.currentMs).toBeGreaterThan(1_600);
    expect(timeout.currentMs).toBeLessThan(3_000);
  });

  it('never exceeds the ceiling and comes back down when latency does', () => {
    const timeout = new RetransmitTimeout(1_000, 8_000);
    for (let sample = 0; sample < 20; sample++) timeout.observe(30_000);
    expect(timeout.currentMs).toBe(8_000);
    for (let sample = 0; sample < 100; sample++) timeout.observe(50);
    expect(timeout.currentMs).toBe(1_000);
  });

  it('ignores samples that are not latencies', () => {
    const timeout = new RetransmitTimeout(1_000, 8_000);
    for (const bad of [Number.NaN, -5, Number.POSITIVE_INFINITY]) timeout.observe(bad);
    expect(timeout.currentMs).toBe(1_000);
    expect(() => new RetransmitTimeout(0, 10)).toThrow(RangeError);
  });

  it('backs off on a retransmission and holds it until a request is answered without one (Karn)', () => {
    const timeout = new RetransmitTimeout(1_000, 8_000);
    // A cold start slower than the floor: every request is retransmitted, so there are no samples.
    timeout.backOff(timeout.currentMs);
    expect(timeout.currentMs).toBe(2_000);
    timeout.backOff(timeout.currentMs);
    timeout.backOff(timeout.currentMs);
    expect(timeout.currentMs).toBe(8_000);
    timeout.backOff(timeout.currentMs);
    expect(timeout.currentMs).toBe(8_000);
    // The first request answered without a retransmission gives the estimator its say again.
    timeout.observe(300);
    expect(timeout.currentMs).toBe(1_000);
  });

  it('requests sent together that all time out double the timeout once, not once each', () => {
    const timeout = new RetransmitTimeout(1_000, 8_000);
    const sentWithMs = timeout.currentMs;
    for (let request = 0; request < 32; request++) timeout.backOff(sentWithMs);
    expect(timeout.currentMs).toBe(2_000);
  });
});
