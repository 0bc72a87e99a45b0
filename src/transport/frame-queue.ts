/**
 * A FIFO of frames bounded in bytes and in count. When a push exceeds either bound the oldest frames
 * are dropped: for replica traffic that is safe (PBFT retransmits what matters and newer messages
 * supersede older ones) while unbounded memory is not.
 */
import { invariant } from '../util/assert.ts';

/** Compact the backing array once this many taken slots sit in front of the live frames. */
const COMPACT_AFTER_TAKEN_FRAMES = 1024;

export interface FrameQueueBounds {
  sizeMaxBytes: number;
  framesMax: number;
}

export class FrameQueue {
  readonly #sizeMaxBytes: number;
  readonly #framesMax: number;
  #frames: Uint8Array[] = [];
  #head = 0;
  #sizeBytes = 0;

  constructor(bounds: FrameQueueBounds) {
    invariant(
      Number.isSafeInteger(bounds.sizeMaxBytes) && bounds.sizeMaxBytes > 0,
      'sizeMaxBytes must be > 0',
    );
    invariant(Number.isSafeInteger(bounds.framesMax) && bounds.framesMax > 0, 'framesMax must be > 0');
    this.#sizeMaxBytes = bounds.sizeMaxBytes;
    this.#framesMax = bounds.framesMax;
  }

  get length(): number {
    return this.#frames.length - this.#head;
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /**
   * Append a frame, dropping the oldest frames while a bound is exceeded. A frame larger than the
   * whole byte bound is dropped itself. Returns how many frames were dropped.
   */
  push(frame: Uint8Array): number {
    if (frame.length > this.#sizeMaxBytes) return 1;
    this.#frames.push(frame);
    this.#sizeBytes += frame.length;
    let dropped = 0;
    while (this.length > this.#framesMax || this.#sizeBytes > this.#sizeMaxBytes) {
      this.#sizeBytes -= this.#frames[this.#head]!.length;
      this.#head++;
      dropped++;
    }
    this.#compact();
    return dropped;
  }

  /** Remove and return the oldest frames up to `sizeMaxBytes` in total, but always at least one. */
  take(sizeMaxBytes: number): Uint8Array[] {
    const batch: Uint8Array[] = [];
    let batchSizeBytes = 0;
    while (this.length > 0) {
      const frame = this.#frames[this.#head]!;
      if (batch.length > 0 && batchSizeBytes + frame.length > sizeMaxBytes) break;
      batch.push(frame);
      batchSizeBytes += frame.length;
      this.#head++;
    }
    this.#sizeBytes -= batchSizeBytes;
    this.#compact();
    return batch;
  }

  clear(): void {
    this.#frames = [];
    this.#head = 0;
    this.#sizeBytes = 0;
  }

  #compact(): void {
    if (this.#head === this.#frames.length) {
      this.#frames = [];
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER_TAKEN_FRAMES && this.#head * 2 >= this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head);
      this.#head = 0;
    }
  }
}
