/** A priority queue of timed events (binary heap), ordered by time then insertion: deterministic. */

interface Scheduled<E> {
  atMs: number;
  order: number;
  event: E;
}

export class EventQueue<E> {
  private readonly heap: Scheduled<E>[] = [];
  private inserted = 0;

  get size(): number {
    return this.heap.length;
  }

  push(atMs: number, event: E): void {
    this.heap.push({ atMs, order: this.inserted++, event });
    this.siftUp(this.heap.length - 1);
  }

  /** The earliest event, or undefined when empty. */
  pop(): { atMs: number; event: E } | undefined {
    const top = this.heap[0];
    if (top === undefined) return undefined;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return { atMs: top.atMs, event: top.event };
  }

  private before(a: Scheduled<E>, b: Scheduled<E>): boolean {
    return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
  }

  private siftUp(index: number): void {
    let child = index;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!this.before(this.heap[child]!, this.heap[parent]!)) return;
      [this.heap[child], this.heap[parent]] = [this.heap[parent]!, this.heap[child]!];
      child = parent;
    }
  }

  private siftDown(index: number): void {
    let parent = index;
    for (;;) {
      const left = 2 * parent + 1;
      const right = left + 1;
      let smallest = parent;
      if (left < this.heap.length && this.before(this.heap[left]!, this.heap[smallest]!)) smallest = left;
      if (right < this.heap.length && this.before(this.heap[right]!, this.heap[smallest]!)) smallest = right;
      if (smallest === parent) return;
      [this.heap[smallest], this.heap[parent]] = [this.heap[parent]!, this.heap[smallest]!];
      parent = smallest;
    }
  }
}
