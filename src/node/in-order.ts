/**
 * Hands results on in the order their slots were taken, whatever order they complete in. The edge
 * verifies messages asynchronously when it uses worker threads; the core must still see them in
 * the order they arrived, as it does when they are verified on the event loop.
 */
export class InOrderRelease {
  /** Slots not yet released; `release` is set once the slot's result is known. */
  #slots: Array<{ release: (() => void) | null }> = [];
  /** Index of the first slot not yet released: shifting an array per release would be O(n). */
  #head = 0;

  /** Slots taken and not yet released. */
  get length(): number {
    return this.#slots.length - this.#head;
  }

  /**
   * Take the next slot. Calling the returned function with what to do marks the slot done; it runs
   * once every earlier slot has run.
   */
  take(): (release: () => void) => void {
    const slot: { release: (() => void) | null } = { release: null };
    this.#slots.push(slot);
    let settled = false;
    return (release) => {
      if (settled) throw new Error('an InOrderRelease slot was settled twice');
      settled = true;
      slot.release = release;
      this.#flush();
    };
  }

  #flush(): void {
    while (this.#head < this.#slots.length) {
      const slot = this.#slots[this.#head]!;
      if (slot.release === null) break;
      this.#head++;
      slot.release();
    }
    if (this.#head === this.#slots.length) {
      this.#slots = [];
      this.#head = 0;
    }
  }
}
