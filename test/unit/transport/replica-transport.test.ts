/**
 * The replica transport over real libp2p on 127.0.0.1: all-to-all delivery, frame limits,
 * membership gating, reconnection after a restart, coalescing, and a clean stop.
 */
import { multiaddr } from '@multiformats/multiaddr';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrames } from '../../../src/transport/framing.ts';
import { CLIENT_PROTOCOL, REPLICA_PROTOCOL } from '../../../src/transport/index.ts';
import {
  bytesOf,
  seedFor,
  startCluster,
  startRawNode,
  streamClosed,
  type TestCluster,
  textOf,
  waitFor,
} from './helpers.ts';

const clusters: TestCluster[] = [];
async function cluster(...args: Parameters<typeof startCluster>): Promise<TestCluster> {
  const started = await startCluster(...args);
  clusters.push(started);
  return started;
}

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((started) => started.stop()));
});

describe('replica transport', () => {
  it('connects 4 replicas and delivers frames all-to-all, attributed to the authenticated sender', async () => {
    const { replicas } = await cluster(4);
    await waitFor('full mesh', () =>
      replicas.every((replica) => replica.transport.connectedReplicas().length === 3),
    );
    for (const sender of replicas) {
      for (const receiver of replicas) {
        if (receiver !== sender)
          sender.transport.sendToReplica(receiver.id, bytesOf(`${sender.id}->${receiver.id}`));
      }
    }
    await waitFor('12 frames', () => replicas.every((replica) => replica.received.length === 3));
    for (const receiver of replicas) {
      const got = receiver.received.map(({ from, frame }) => `${from}:${textOf(frame)}`).sort();
      const expected = replicas
        .filter((sender) => sender !== receiver)
        .map((sender) => `${sender.id}:${sender.id}->${receiver.id}`);
      expect(got).toEqual(expected);
      expect(receiver.transport.connectedReplicas()).toEqual(
        replicas.filter((other) => other !== receiver).map((other) => other.id),
      );
      expect(receiver.connectionChanges.at(-1)).toHaveLength(3);
    }
  });

  it('passes a frame of exactly the limit and drops a larger one without throwing', async () => {
    const limit = 64 * 1024;
    const { replicas } = await cluster(2, { replicaFrameSizeMaxBytes: limit });
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    await waitFor('link', () => a.transport.connectedReplicas().includes(1));
    a.transport.sendToReplica(1, new Uint8Array(limit).fill(7));
    expect(() => a.transport.sendToReplica(1, new Uint8Array(limit + 1))).not.toThrow();
    a.transport.sendToReplica(1, bytesOf('after'));
    await waitFor('two frames', () => b.received.length === 2);
    expect(b.received[0]!.frame).toEqual(new Uint8Array(limit).fill(7));
    expect(textOf(b.received[1]!.frame)).toBe('after');
    expect(a.transport.stats().replicaFramesDroppedOversized).toBe(1);
  });

  it('closes a replica stream whose length prefix exceeds the limit, and keeps serving the others', async () => {
    const limit = 1024;
    // Replica 2 is a cluster member driven by hand to misbehave.
    const { replicas } = await cluster(3, { replicaFrameSizeMaxBytes: limit }, 2);
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    const byzantine = await startRawNode(seedFor(2));
    try {
      const target = multiaddr(`${a.transport.listenAddresses()[0]}/p2p/${a.transport.peerId}`);
      const stream = await byzantine.dialProtocol(target, REPLICA_PROTOCOL);
      const closed = streamClosed(stream);
      stream.send(encodeFrames([new Uint8Array(limit)]));
      stream.send(encodeFrames([new Uint8Array(limit + 1)]));
      await closed;
      await waitFor('the exact-limit frame', () => a.received.some(({ from }) => from === 2));
      expect(a.received.filter(({ from }) => from === 2)).toHaveLength(1);
      expect(a.transport.stats().replicaStreamsMalformed).toBe(1);
      await waitFor('link from 1 to 0', () => b.transport.connectedReplicas().includes(0));
      b.transport.sendToReplica(0, bytesOf('still here'));
      await waitFor('a frame from replica 1', () => a.received.some(({ from }) => from === 1));
    } finally {
      await byzantine.stop();
    }
  });

  it('refuses the replica protocol to a peer outside the cluster, which can still use the client protocol', async () => {
    const { replicas } = await cluster(2);
    const a = replicas[0]!;
    const outsider = await startRawNode(seedFor(99));
    try {
      const target = multiaddr(`${a.transport.listenAddresses()[0]}/p2p/${a.transport.peerId}`);
      const stream = await outsider.dialProtocol(target, REPLICA_PROTOCOL);
      const closed = streamClosed(stream);
      try {
        stream.send(encodeFrames([bytesOf('let me in')]));
      } catch {
        // the reset may already have arrived
      }
      await closed;
      expect(stream.status).not.toBe('open');
      expect(a.transport.stats().replicaStreamsRefused).toBe(1);
      expect(a.received.some(({ frame }) => textOf(frame) === 'let me in')).toBe(false);

      const clientStream = await outsider.dialProtocol(target, CLIENT_PROTOCOL);
      clientStream.send(encodeFrames([bytesOf('a request')]));
      await waitFor('the client frame', () => a.clientFrames.length === 1);
      expect(textOf(a.clientFrames[0]!.frame)).toBe('a request');
    } finally {
      await outsider.stop();
    }
  });

  it('reconnects to a replica restarted on the same seed and port after >2 s; frames sent while it was down are dropped', async () => {
    const started = await cluster(3);
    const { replicas, peers } = started;
    await waitFor('full mesh', () =>
      replicas.every((replica) => replica.transport.connectedReplicas().length === 2),
    );
    const listen = [...peers[1]!.multiaddrs];
    await replicas[1]!.transport.stop();
    await waitFor('link to 1 down', () => !replicas[0]!.transport.connectedReplicas().includes(1));
    replicas[0]!.transport.sendToReplica(1, bytesOf('sent while down'));
    expect(replicas[0]!.transport.stats().replicaFramesDroppedDisconnected).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 2200));

    const restarted = await started.startReplica(1, listen);
    await waitFor('mesh again', () =>
      replicas.every((replica) => replica.transport.connectedReplicas().length === 2),
    );
    replicas[2]!.transport.sendToReplica(1, bytesOf('fresh'));
    restarted.transport.sendToReplica(2, bytesOf('back'));
    await waitFor('frames flow both ways', () => restarted.received.some(({ from }) => from === 2));
    await waitFor('frames flow both ways', () => replicas[2]!.received.some(({ from }) => from === 1));
    expect(restarted.received.map(({ frame }) => textOf(frame))).not.toContain('sent while down');
  });

  it('coalesces 5,000 small frames into few batches and delivers them in order', async () => {
    const { replicas } = await cluster(2);
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    await waitFor('link', () => a.transport.connectedReplicas().length === 1);
    const frameCount = 5000;
    for (let index = 0; index < frameCount; index++) a.transport.sendToReplica(1, bytesOf(`frame ${index}`));
    await waitFor('all frames', () => b.received.length === frameCount);
    expect(b.received.map(({ frame }) => textOf(frame))).toEqual(
      Array.from({ length: frameCount }, (_, index) => `frame ${index}`),
    );
    const stats = a.transport.stats();
    expect(stats.replicaFramesSent).toBe(frameCount);
    expect(stats.replicaBatchesSent).toBeLessThan(frameCount / 100);
  });

  it('ignores frames for itself or unknown ids and never throws', async () => {
    const { replicas } = await cluster(2);
    const a = replicas[0]!;
    expect(() => a.transport.sendToReplica(0, bytesOf('self'))).not.toThrow();
    expect(() => a.transport.sendToReplica(7, bytesOf('nobody'))).not.toThrow();
    expect(a.transport.stats().replicaFramesDroppedUnknownReplica).toBe(2);
  });

  it('stopping discards the frames still queued instead of delivering them first, and leaves no sockets behind', async () => {
    const baseline = socketCount();
    const started = await startCluster(3);
    await waitFor('full mesh', () =>
      started.replicas.every((replica) => replica.transport.connectedReplicas().length === 2),
    );
    const [sender, receiver] = [started.replicas[0]!, started.replicas[1]!];
    const sentBefore = sender.transport.stats().replicaFramesSent;
    for (let index = 0; index < 1000; index++) sender.transport.sendToReplica(1, bytesOf('busy'));
    // stop() runs before the writer's next turn: the 1000 frames are still queued.
    await started.stop();
    await waitFor('sockets closed', () => socketCount() <= baseline);
    expect(sender.transport.stats().replicaFramesSent).toBe(sentBefore);
    expect(receiver.received.filter(({ frame }) => textOf(frame) === 'busy')).toHaveLength(0);
    // A stopped transport drops what it is given, without throwing.
    expect(() => sender.transport.sendToReplica(1, bytesOf('after stop'))).not.toThrow();
    expect(sender.transport.stats().replicaFramesSent).toBe(sentBefore);
  });
});

function socketCount(): number {
  return process
    .getActiveResourcesInfo()
    .filter((kind) => kind === 'TCPSocketWrap' || kind === 'TCPServerWrap').length;
}
