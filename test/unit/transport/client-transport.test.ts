/**
 * The client protocol over real libp2p on 127.0.0.1: round trips, size and rate limits, garbage,
 * unreachable replicas and clients that stop reading.
 */
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrames } from '../../../src/transport/framing.ts';
import {
  CLIENT_PROTOCOL,
  type ClientTransport,
  createClientTransport,
  FrameTooLargeError,
  ReplicaUnreachableError,
} from '../../../src/transport/index.ts';
import {
  bytesOf,
  DEFAULT_LIMITS,
  type ReplicaOverrides,
  seedFor,
  startCluster,
  startRawNode,
  streamClosed,
  type TestCluster,
  type TestReplica,
  textOf,
  waitFor,
} from './helpers.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function oneReplica(
  overrides: ReplicaOverrides = {},
): Promise<{ cluster: TestCluster; replica: TestReplica }> {
  const cluster = await startCluster(1, overrides);
  cleanups.push(() => cluster.stop());
  return { cluster, replica: cluster.replicas[0]! };
}

async function clientTransport(): Promise<ClientTransport> {
  const transport = await createClientTransport({
    frameSizeMaxBytes: DEFAULT_LIMITS.clientFrameSizeMaxBytes,
  });
  await transport.start();
  cleanups.push(() => transport.stop());
  return transport;
}

async function rawNode(index: number): Promise<Libp2p> {
  const node = await startRawNode(seedFor(index));
  cleanups.push(async () => {
    await node.stop();
  });
  return node;
}

async function openClientStream(node: Libp2p, replica: TestReplica): Promise<Stream> {
  const target = multiaddr(`${replica.transport.listenAddresses()[0]}/p2p/${replica.transport.peerId}`);
  return node.dialProtocol(target, CLIENT_PROTOCOL);
}

describe('client transport', () => {
  it('round-trips a request and its reply on the same stream', async () => {
    const { cluster, replica } = await oneReplica();
    const client = await clientTransport();
    const connection = await client.connect(cluster.peers[0]!);
    const replies: string[] = [];
    connection.onFrame((frame) => replies.push(textOf(frame)));
    connection.send(bytesOf('ping'));
    await waitFor('the request', () => replica.clientFrames.length === 1);
    const { session, frame } = replica.clientFrames[0]!;
    expect(textOf(frame)).toBe('ping');
    expect(session.closed).toBe(false);
    session.send(bytesOf('pong'));
    await waitFor('the reply', () => replies.length === 1);
    expect(replies).toEqual(['pong']);

    // close() flushes what is queued first.
    session.send(bytesOf('last words'));
    session.close();
    await waitFor('the connection to close', () => connection.closed);
    expect(replies).toEqual(['pong', 'last words']);
    expect(() => session.send(bytesOf('ignored'))).not.toThrow();
  });

  it('refuses to send an oversized frame from the client', async () => {
    const { cluster } = await oneReplica();
    const client = await clientTransport();
    const connection = await client.connect(cluster.peers[0]!);
    expect(() => connection.send(new Uint8Array(DEFAULT_LIMITS.clientFrameSizeMaxBytes + 1))).toThrow(
      FrameTooLargeError,
    );
  });

  it('rejects with ReplicaUnreachableError when nobody listens', async () => {
    const { cluster } = await oneReplica();
    const address = cluster.peers[0]!.multiaddrs[0]!;
    await cluster.replicas[0]!.transport.stop();
    const client = await clientTransport();
    await expect(client.connect({ ...cluster.peers[0]!, multiaddrs: [address] })).rejects.toThrow(
      ReplicaUnreachableError,
    );
  });

  it('delivers a frame of exactly the limit and closes the stream on a larger one', async () => {
    const { replica } = await oneReplica();
    const node = await rawNode(50);
    const stream = await openClientStream(node, replica);
    stream.send(encodeFrames([new Uint8Array(DEFAULT_LIMITS.clientFrameSizeMaxBytes).fill(1)]));
    await waitFor('the exact-limit frame', () => replica.clientFrames.length === 1);
    stream.send(encodeFrames([new Uint8Array(DEFAULT_LIMITS.clientFrameSizeMaxBytes + 1)]));
    await streamClosed(stream);
    expect(replica.clientFrames).toHaveLength(1);
    expect(replica.transport.stats().clientStreamsMalformed).toBe(1);
  });

  it('closes only the stream that sends garbage and keeps serving other clients', async () => {
    const { cluster, replica } = await oneReplica();
    const node = await rawNode(51);
    const garbage = await openClientStream(node, replica);
    const sibling = await openClientStream(node, replica);
    garbage.send(new Uint8Array(64).fill(0xff));
    await streamClosed(garbage);
    expect(replica.transport.stats().clientStreamsMalformed).toBe(1);

    sibling.send(encodeFrames([bytesOf('same connection, other stream')]));
    const client = await clientTransport();
    const connection = await client.connect(cluster.peers[0]!);
    connection.send(bytesOf('another client'));
    await waitFor('both frames', () => replica.clientFrames.length === 2);
    expect(replica.clientFrames.map(({ frame }) => textOf(frame)).sort()).toEqual([
      'another client',
      'same connection, other stream',
    ]);
    expect(sibling.status).toBe('open');
  });

  it('drops frames above the per-connection rate limit', async () => {
    const framesPerSecondMax = 10;
    const { cluster, replica } = await oneReplica({ clientFramesPerSecondMax: framesPerSecondMax });
    const client = await clientTransport();
    const connection = await client.connect(cluster.peers[0]!);
    const sent = 100;
    const startedMs = performance.now();
    for (let index = 0; index < sent; index++) connection.send(bytesOf(`request ${index}`));
    await waitFor('drops counted', () => {
      const stats = replica.transport.stats();
      return stats.clientFramesReceived + stats.clientFramesDroppedRateLimit === sent;
    });
    // The burst (2 s worth) passes, plus whatever refilled while the frames travelled.
    const refilled = Math.ceil(((performance.now() - startedMs) / 1000) * framesPerSecondMax);
    expect(replica.clientFrames.length).toBeGreaterThanOrEqual(2 * framesPerSecondMax);
    expect(replica.clientFrames.length).toBeLessThanOrEqual(2 * framesPerSecondMax + refilled);
    expect(textOf(replica.clientFrames[0]!.frame)).toBe('request 0');
    expect(connection.closed).toBe(false);
  });

  it('closes the session of a client that stops reading, not of one that reads', async () => {
    const { cluster, replica } = await oneReplica();
    const reader = await (await clientTransport()).connect(cluster.peers[0]!);
    let bytesRead = 0;
    reader.onFrame((frame) => {
      bytesRead += frame.length;
    });
    reader.send(bytesOf('reader'));
    const node = await rawNode(52);
    const stalled = await openClientStream(node, replica);
    stalled.send(encodeFrames([bytesOf('stalled')]));
    await waitFor('both requests', () => replica.clientFrames.length === 2);
    // Paused: Yamux stops granting window, so the replica's writes back up into its session queue.
    stalled.pause();
    const sessionOf = (text: string) =>
      replica.clientFrames.find(({ frame }) => textOf(frame) === text)!.session;
    const readerSession = sessionOf('reader');
    const stalledSession = sessionOf('stalled');
    const reply = new Uint8Array(DEFAULT_LIMITS.clientFrameSizeMaxBytes);
    const repliesPerRound = 16;
    let rounds = 0;
    for (; rounds < 200 && !stalledSession.closed; rounds++) {
      for (let index = 0; index < repliesPerRound; index++) {
        readerSession.send(reply);
        stalledSession.send(reply);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(stalledSession.closed).toBe(true);
    expect(replica.transport.stats().clientSessionsOverflowed).toBe(1);
    expect(readerSession.closed).toBe(false);
    await waitFor(
      'the reader to get every reply',
      () => bytesRead === rounds * repliesPerRound * reply.length,
    );
  });
});
