/**
 * Per-connection admission of client frames: a token bucket (rate r, burst 2r) decides whether a
 * frame is delivered or dropped, and a connection that has frames dropped in several consecutive
 * seconds is judged abusive and closed. Time is passed in (monotonic milliseconds) so the rules are
 * tested without waiting.
 */
import { invariant } from '../util/assert.ts';

/** A bucket holds this many seconds' worth of tokens: short bursts (a client reconnecting and resending) pass. */
export const BURST_SECONDS = 2;
/** Frames dropped in this many consecutive seconds close the client's stream. */
export const RATE_LIMIT_ABUSE_SECONDS = 3;
const MS_PER_SECOND = 1000;

export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #capacity: number;
  #tokens: number;
  #refilledAtMs: number;

  constructor(options: { ratePerSecond: number; capacity: number; nowMs: number }) {
    invariant(
      options.ratePerSecond > 0 && options.capacity >= 1,
      'a token bucket needs a positive rate and capacity',
    );
    this.#ratePerMs = options.ratePerSecond / MS_PER_SECOND;
    this.#capacity = options.capacity;
    this.#tokens = options.capacity;
    this.#refilledAtMs = options.nowMs;
  }

  tryTake(nowMs: number): boolean {
    const elapsedMs = Math.max(0, nowMs - this.#refilledAtMs);
    this.#tokens = Math.min(this.#capacity, this.#tokens + elapsedMs * this.#ratePerMs);
    this.#refilledAtMs = nowMs;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

export type Admission = 'accept' | 'drop' | 'close';

export class ClientRateLimiter {
  readonly #bucket: TokenBucket;
  /** The whole second (of the monotonic clock) in which the last drop happened. */
  #lastDropSecond = Number.NEGATIVE_INFINITY;
  #consecutiveDropSeconds = 0;

  constructor(framesPerSecondMax: number, nowMs: number) {
    this.#bucket = new TokenBucket({
      ratePerSecond: framesPerSecondMax,
      capacity: Math.max(1, framesPerSecondMax * BURST_SECONDS),
      nowMs,
    });
  }

  admit(nowMs: number): Admission {
    if (this.#bucket.tryTake(nowMs)) return 'accept';
    const second = Math.floor(nowMs / MS_PER_SECOND);
    if (second !== this.#lastDropSecond) {
      this.#consecutiveDropSeconds =
        second === this.#lastDropSecond + 1 ? this.#consecutiveDropSeconds + 1 : 1;
      this.#lastDropSecond = second;
    }
    return this.#consecutiveDropSeconds >= RATE_LIMIT_ABUSE_SECONDS ? 'close' : 'drop';
  }
}
