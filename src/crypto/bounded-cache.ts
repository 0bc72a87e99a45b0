import { invariant } from '../util/assert.ts';

/**
 * A Map with a fixed maximum size that evicts the least recently used entry. Verifiers use it to
 * keep decoded public keys: a replica checks the same few keys constantly, but keys arrive from
 * the network, so the cache must not grow with whatever peers send.
 */
export class BoundedCache<Key, Value> {
  readonly maxEntries: number;
  // A Map iterates in insertion order; re-inserting on every hit keeps the oldest entry first.
  readonly #entries = new Map<Key, Value>();

  constructor(maxEntries: number) {
    invariant(Number.isSafeInteger(maxEntries) && maxEntries > 0, 'cache size must be a positive integer');
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: Key): Value | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  set(key: Key, value: Value): void {
    if (this.#entries.has(key)) {
      this.#entries.delete(key);
    } else if (this.#entries.size >= this.maxEntries) {
      const leastRecentlyUsed = this.#entries.keys().next();
      if (leastRecentlyUsed.done !== true) this.#entries.delete(leastRecentlyUsed.value);
    }
    this.#entries.set(key, value);
  }

  delete(key: Key): boolean {
    return this.#entries.delete(key);
  }
}
