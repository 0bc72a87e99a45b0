/**
 * When to retransmit a request, from how long agreed requests took: the Jacobson/Karels estimator
 * TCP uses (RFC 6298), a smoothed latency plus four deviations, kept between a floor and a ceiling.
 *
 * A fixed first retry of 1 s turns an overloaded cluster into a melting one: once latency passes
 * it, every client broadcasts its request to all replicas, multiplying the load on a cluster that
 * is already behind. Following the observed latency keeps retries for requests that are really
 * lost, such as those a faulty primary drops.
 */
const SMOOTHING = 1 / 8;
const DEVIATION_SMOOTHING = 1 / 4;
const DEVIATIONS = 4;

export class RetransmitTimeout {
  readonly floorMs: number;
  readonly ceilingMs: number;
  #smoothedMs: number | null = null;
  #deviationMs = 0;
  #backedOffMs: number | null = null;

  constructor(floorMs: number, ceilingMs: number) {
    if (!(floorMs > 0 && ceilingMs >= floorMs)) throw new RangeError('need 0 < floorMs <= ceilingMs');
    this.floorMs = floorMs;
    this.ceilingMs = ceilingMs;
  }

  /**
   * The latency of a request answered without a retransmission (Karn's rule: a retransmitted one
   * cannot tell which copy was answered).
   */
  observe(latencyMs: number): void {
    if (!(latencyMs >= 0) || !Number.isFinite(latencyMs)) return;
    this.#backedOffMs = null;
    if (this.#smoothedMs === null) {
      this.#smoothedMs = latencyMs;
      this.#deviationMs = latencyMs / 2;
      return;
    }
    this.#deviationMs += DEVIATION_SMOOTHING * (Math.abs(this.#smoothedMs - latencyMs) - this.#deviationMs);
    this.#smoothedMs += SMOOTHING * (latencyMs - this.#smoothedMs);
  }

  /**
   * A request that waited `waitedMs` (the value `currentMs` had when it was sent) is being
   * retransmitted. Requests sent together share one timeout, so their retransmissions double it
   * once, not once each.
   */
  backOff(waitedMs: number): void {
    const backedOffMs = Math.min(this.ceilingMs, 2 * waitedMs);
    if (backedOffMs > (this.#backedOffMs ?? 0)) this.#backedOffMs = backedOffMs;
  }

  /** Milliseconds to wait before the first retransmission. */
  get currentMs(): number {
    if (this.#backedOffMs !== null) return this.#backedOffMs;
    if (this.#smoothedMs === null) return this.floorMs;
    const estimate = this.#smoothedMs + DEVIATIONS * this.#deviationMs;
    return Math.min(this.ceilingMs, Math.max(this.floorMs, estimate));
  }
}
