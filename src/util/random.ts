/**
 * A seeded pseudo-random generator: xoroshiro128+ from pure-rand (the generator behind fast-check).
 * The simulator's only source of randomness (one seed drives every choice, so a seed replays a run
 * exactly), and the dice of lying replicas in a testnet.
 */
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

const UINT32_RANGE = 0x1_0000_0000;
const WARM_UP_DRAWS = 16;

/** murmur3's 32-bit finaliser: a cheap bijection with good avalanche. */
function mix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

export class Random {
  private readonly generator: RandomGenerator;

  /** `seed` is any non-negative safe integer (53 bits are used). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw new RangeError(`seed must be a non-negative safe integer`);
    const high = Math.floor(seed / UINT32_RANGE) | 0;
    const low = (seed % UINT32_RANGE) | 0;
    // Mix the seed into all 128 bits of state so that nearby seeds give unrelated streams, then
    // discard the first outputs (xoroshiro's earliest outputs reflect its state too directly).
    this.generator = xoroshiro128plusFromState([
      mix32(low ^ 0x2545f491),
      mix32(high ^ 0x9e3779b9),
      mix32(low ^ 0x6a09e667 ^ mix32(high)),
      mix32(high ^ 0xbb67ae85 ^ mix32(low)),
    ]);
    for (let i = 0; i < WARM_UP_DRAWS; i++) this.generator.next();
  }

  /** Uniform integer in [from, to]. */
  int(from: number, to: number): number {
    return uniformInt(this.generator, from, to);
  }

  /** True with probability `probability` (resolution 1e-6). */
  chance(probability: number): boolean {
    return this.int(0, 999_999) < probability * 1_000_000;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(0, items.length - 1)]!;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(0, 255);
    return out;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** An independent generator for a sub-component, so adding draws in one place does not shift another. */
  fork(): Random {
    return new Random(this.int(0, 0x1f_ffff) * UINT32_RANGE + this.int(0, UINT32_RANGE - 1));
  }
}
