import { invariant } from '../util/assert.ts';

interface Entry<Key, Value> {
  key: Key;
  value: Value;
  /** Toward the least recently used end; null for the oldest entry. */
  older: Entry<Key, Value> | null;
  /** Toward the most recently used end; null for the newest entry. */
  newer: Entry<Key, Value> | null;
}

/**
 * A Map with a fixed maximum size that evicts the least recently used entry. Verifiers use it to
 * keep decoded public keys and verified signatures: a replica checks the same few keys constantly,
 * but keys arrive from the network, so the cache must not grow with whatever peers send.
 *
 * Recency is a doubly linked list through the entries, so a hit, an insert and an eviction are each
 * O(1). Finding the oldest entry through the Map's own insertion order instead (`keys().next()`)
 * is not: V8 leaves a hole for every deleted entry until the table is rebuilt, and iteration steps
 * over all of them, so a full cache that evicts on every insert slowed to ~190 µs per insert at
 * 200,000 entries, more than the signature check the cache saves.
 */
export class BoundedCache<Key, Value> {
  readonly maxEntries: number;
  readonly #entries = new Map<Key, Entry<Key, Value>>();
  #oldest: Entry<Key, Value> | null = null;
  #newest: Entry<Key, Value> | null = null;

  constructor(maxEntries: number) {
    invariant(Number.isSafeInteger(maxEntries) && maxEntries > 0, 'cache size must be a positive integer');
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: Key): Value | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#unlink(entry);
    this.#append(entry);
    return entry.value;
  }

  set(key: Key, value: Value): void {
    const existing = this.#entries.get(key);
    if (existing !== undefined) {
      existing.value = value;
      this.#unlink(existing);
      this.#append(existing);
      return;
    }
    if (this.#entries.size >= this.maxEntries && this.#oldest !== null) {
      const oldest = this.#oldest;
      this.#unlink(oldest);
      this.#entries.delete(oldest.key);
    }
    const entry: Entry<Key, Value> = { key, value, older: null, newer: null };
    this.#entries.set(key, entry);
    this.#append(entry);
  }

  delete(key: Key): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    this.#unlink(entry);
    return this.#entries.delete(key);
  }

  #unlink(entry: Entry<Key, Value>): void {
    if (entry.older === null) this.#oldest = entry.newer;
    else entry.older.newer = entry.newer;
    if (entry.newer === null) this.#newest = entry.older;
    else entry.newer.older = entry.older;
    entry.older = null;
    entry.newer = null;
  }

  #append(entry: Entry<Key, Value>): void {
    entry.older = this.#newest;
    if (this.#newest === null) this.#oldest = entry;
    else this.#newest.newer = entry;
    this.#newest = entry;
  }
}
