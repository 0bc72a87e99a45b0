/**
 * Frame I/O on a libp2p stream, shared by replica links, client sessions and client connections.
 *
 * Writing: frames wait in a bounded FrameQueue and leave in batches, many length-prefixed frames
 * concatenated into one `send()` (the main throughput lever: one send per frame tops out around
 * 5-30k frames/s on loopback). A flush runs in the next setImmediate, so every frame
 * queued by the same burst of callbacks joins the same batch, and while a flush waits for 'drain'
 * new frames pile up into the next, larger batch.
 *
 * Reading: frames are decoded in the stream's 'message' listener and handed to the callback there
 * and then. There is no queue in between: a busy consumer delays reading from the socket (and TCP
 * pushes back on the sender) instead of growing memory.
 */
import type { Stream } from '@libp2p/interface';
import { SendQueueOverflowError } from './errors.ts';
import { FrameQueue, type FrameQueueBounds } from './frame-queue.ts';
import { encodeFrames, FrameDecoder } from './framing.ts';

/** Upper bound of one batch: large enough to amortise a send, small enough not to hog the socket. */
export const BATCH_SIZE_MAX_BYTES = 256 * 1024;
/** How long a graceful close may take to flush before the stream is aborted. */
export const CLOSE_GRACE_MS = 300;

export interface FrameWriterOptions {
  bounds: FrameQueueBounds;
  /** Called with the number of frames in each batch handed to the stream. */
  onBatchSent?(frames: number): void;
  /** The stream failed while writing (closed or reset under us); the frames in flight are lost. */
  onWriteError(stream: Stream, error: unknown): void;
}

export class FrameWriter {
  readonly #queue: FrameQueue;
  readonly #options: FrameWriterOptions;
  #stream: Stream | undefined;
  /** The stream a flush loop is running for, if any. */
  #flushingFor: Stream | undefined;
  #flushScheduled = false;

  constructor(options: FrameWriterOptions) {
    this.#queue = new FrameQueue(options.bounds);
    this.#options = options;
  }

  get queuedFrames(): number {
    return this.#queue.length;
  }

  /** Start writing queued and future frames to `stream`. */
  attach(stream: Stream): void {
    this.#stream = stream;
    this.#scheduleFlush();
  }

  /** Stop writing; frames queued from now on wait for the next `attach`. */
  detach(): void {
    this.#stream = undefined;
  }

  /** Queue a frame; returns how many frames the queue's bounds made it drop (oldest first). */
  enqueue(frame: Uint8Array): number {
    const dropped = this.#queue.push(frame);
    this.#scheduleFlush();
    return dropped;
  }

  /**
   * Hand every queued frame to the stream now, ignoring backpressure: used just before closing, when
   * the stream's own close waits for its buffer to be written. Bounded by the queue's bounds.
   */
  flushAll(): void {
    const stream = this.#stream;
    if (stream === undefined || stream.writeStatus !== 'writable' || this.#queue.length === 0) return;
    const frames = this.#queue.take(Number.POSITIVE_INFINITY);
    try {
      stream.send(encodeFrames(frames));
      this.#options.onBatchSent?.(frames.length);
    } catch (error) {
      this.#options.onWriteError(stream, error);
    }
  }

  clear(): void {
    this.#queue.clear();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#stream === undefined || this.#flushingFor === this.#stream) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    const stream = this.#stream;
    if (stream === undefined || this.#flushingFor === stream) return;
    this.#flushingFor = stream;
    try {
      while (this.#stream === stream && this.#queue.length > 0) {
        if (stream.writeStatus !== 'writable') return;
        if (stream.writableNeedsDrain) {
          await drained(stream);
          continue;
        }
        const frames = this.#queue.take(BATCH_SIZE_MAX_BYTES);
        const accepted = stream.send(encodeFrames(frames));
        this.#options.onBatchSent?.(frames.length);
        if (!accepted) await drained(stream);
      }
    } catch (error) {
      this.#options.onWriteError(stream, error);
    } finally {
      this.#flushingFor = undefined;
    }
    // Frames may have been queued for a stream attached while this flush was waiting on the old one.
    if (this.#stream !== stream) this.#scheduleFlush();
  }
}

/**
 * Resolves when `stream` can take more bytes, or has closed. Not `stream.onDrain()`: in
 * @libp2p/utils 7.4.1 it keeps handing out its first promise, already resolved, after the first
 * drain, so a writer that waits on it under backpressure spins on microtasks and starves the event
 * loop (a replica froze at 100% CPU when a peer was killed under load). Re-check on upgrade.
 */
function drained(stream: Stream): Promise<void> {
  if (!stream.writableNeedsDrain) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      stream.removeEventListener('drain', done);
      stream.removeEventListener('close', done);
      resolve();
    };
    stream.addEventListener('drain', done);
    stream.addEventListener('close', done);
  });
}

export interface FrameReaderOptions {
  frameSizeMaxBytes: number;
  /** Return false to stop delivering (the stream is being closed). */
  onFrame(frame: Uint8Array): boolean;
  /** An oversized or malformed length prefix: the stream is unusable from here on. */
  onMalformed(error: Error): void;
}

/** Decode frames from every 'message' event of `stream`. */
export function readFrames(stream: Stream, options: FrameReaderOptions): void {
  const decoder = new FrameDecoder(options.frameSizeMaxBytes);
  let stopped = false;
  stream.addEventListener('message', (event) => {
    if (stopped) return;
    let frames: Uint8Array[];
    try {
      frames = decoder.decode(event.data);
    } catch (error) {
      stopped = true;
      options.onMalformed(error as Error);
      return;
    }
    for (const frame of frames) {
      if (!options.onFrame(frame)) {
        stopped = true;
        return;
      }
    }
  });
}

/** Close gracefully within CLOSE_GRACE_MS (pending writes are flushed), otherwise abort. */
export async function closeStream(stream: Stream): Promise<void> {
  if (stream.status !== 'open') return;
  try {
    await stream.close({ signal: AbortSignal.timeout(CLOSE_GRACE_MS) });
  } catch (error) {
    stream.abort(error as Error);
  }
}

export interface FramedStreamOptions {
  bounds: FrameQueueBounds;
  /** The peer stopped reading and the queue overflowed; the stream is aborted right after. */
  onOverflow(): void;
}

/**
 * A stream carrying frames both ways, whose writer is bounded: a peer that does not read what we
 * send gets the stream aborted rather than our memory. Used for client sessions and client
 * connections; frame reading is set up by the owner.
 */
export class FramedStream {
  readonly stream: Stream;
  readonly #writer: FrameWriter;
  readonly #bounds: FrameQueueBounds;
  readonly #onOverflow: () => void;
  #closed = false;

  constructor(stream: Stream, options: FramedStreamOptions) {
    this.stream = stream;
    this.#bounds = options.bounds;
    this.#onOverflow = options.onOverflow;
    this.#writer = new FrameWriter({
      bounds: options.bounds,
      onWriteError: (_failed, error) => this.abort(error as Error),
    });
    this.#writer.attach(stream);
    stream.addEventListener('close', () => {
      this.#closed = true;
      this.#writer.detach();
      this.#writer.clear();
    });
    // The peer is done sending: the exchange is over, so finish ours and let the stream close.
    stream.addEventListener('remoteCloseWrite', () => this.close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(frame: Uint8Array): void {
    if (this.#closed) return;
    if (this.#writer.enqueue(frame) > 0) {
      this.#onOverflow();
      this.abort(new SendQueueOverflowError(this.#bounds.sizeMaxBytes));
    }
  }

  /** Hand over what is queued, then close gracefully (abort after CLOSE_GRACE_MS). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writer.flushAll();
    this.#writer.detach();
    void closeStream(this.stream);
  }

  abort(error: Error): void {
    this.#closed = true;
    this.#writer.detach();
    this.#writer.clear();
    this.stream.abort(error);
  }
}
