/**
 * FrameWriter under backpressure. The fake stream behaves like a libp2p 3 stream whose muxer is
 * full: send() returns false until a 'drain' event, and, like @libp2p/utils 7.4.1, onDrain() keeps
 * returning an already-resolved promise after the first drain. A writer that waited on onDrain()
 * spun on microtasks there and starved the event loop (a replica froze when a peer was killed).
 */
import type { Stream } from '@libp2p/interface';
import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../../src/transport/framing.ts';
import { FrameWriter } from '../../../src/transport/streams.ts';

const ON_DRAIN_CALLS_MAX = 1_000;

class CongestedStream extends EventTarget {
  writeStatus = 'writable';
  writableNeedsDrain = false;
  readonly written: Uint8Array[] = [];
  #staleDrainPromise: Promise<void> | undefined;
  onDrainCalls = 0;

  send(bytes: Uint8Array): boolean {
    this.written.push(bytes);
    this.writableNeedsDrain = true;
    return false;
  }

  onDrain(): Promise<void> {
    this.onDrainCalls++;
    // Fail fast instead of hanging the test run if the writer busy-waits on this promise.
    if (this.onDrainCalls > ON_DRAIN_CALLS_MAX) throw new Error('the writer spins on onDrain()');
    this.#staleDrainPromise ??= Promise.resolve();
    return this.#staleDrainPromise;
  }

  drain(): void {
    this.writableNeedsDrain = false;
    this.dispatchEvent(new Event('drain'));
  }
}

function frame(byte: number): Uint8Array {
  return new Uint8Array([byte, byte, byte]);
}

describe('FrameWriter', () => {
  it('waits for the drain event under backpressure instead of spinning, then sends the rest', async () => {
    const stream = new CongestedStream();
    const writer = new FrameWriter({
      bounds: { framesMax: 100, sizeMaxBytes: 1 << 20 },
      onWriteError: (_stream, error) => {
        throw error;
      },
    });
    writer.attach(stream as unknown as Stream);
    writer.enqueue(frame(1));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stream.written).toHaveLength(1);

    // Queued while the stream is congested: nothing may be written, and timers must still run.
    writer.enqueue(frame(2));
    writer.enqueue(frame(3));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stream.written).toHaveLength(1);
    expect(stream.onDrainCalls).toBe(0);

    stream.drain();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stream.written).toHaveLength(2);
    expect(writer.queuedFrames).toBe(0);
    const decoder = new FrameDecoder(1024);
    const frames = stream.written.flatMap((bytes) => decoder.decode(bytes));
    expect(frames).toEqual([frame(1), frame(2), frame(3)]);
  });

  it('stops waiting when the stream closes', async () => {
    const stream = new CongestedStream();
    const writer = new FrameWriter({
      bounds: { framesMax: 100, sizeMaxBytes: 1 << 20 },
      onWriteError: () => {},
    });
    writer.attach(stream as unknown as Stream);
    writer.enqueue(frame(1));
    await new Promise((resolve) => setImmediate(resolve));
    writer.enqueue(frame(2));
    stream.writeStatus = 'closed';
    stream.dispatchEvent(new Event('close'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stream.written).toHaveLength(1);
    expect(writer.queuedFrames).toBe(1);
  });
});
