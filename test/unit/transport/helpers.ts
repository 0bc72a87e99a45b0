/**
 * Real libp2p clusters on 127.0.0.1 for the transport tests. Ports come from the OS (/tcp/0): every
 * transport starts with empty peer addresses, then the shared ClusterPeer objects are filled in from
 * listenAddresses() (links read them at every dial).
 */
import type { Stream } from '@libp2p/interface';
import type { Libp2p } from 'libp2p';
import { privateKeyFromSeed } from '../../../src/transport/identity.ts';
import {
  type ClientSession,
  type ClusterPeer,
  createReplicaTransport,
  peerIdFromSeed,
  type ReplicaTransport,
  type ReplicaTransportOptions,
} from '../../../src/transport/index.ts';
import { createLibp2pNode } from '../../../src/transport/node.ts';

export const LOOPBACK_ANY_PORT = '/ip4/127.0.0.1/tcp/0';
export const WAIT_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 10;

export function seedFor(index: number): Uint8Array {
  return new Uint8Array(32).fill(index + 1);
}

export async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs = WAIT_TIMEOUT_MS,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

export function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function textOf(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

export interface ReceivedFrame {
  from: number;
  frame: Uint8Array;
}

export interface TestReplica {
  id: number;
  transport: ReplicaTransport;
  received: ReceivedFrame[];
  clientFrames: { session: ClientSession; frame: Uint8Array }[];
  connectionChanges: number[][];
}

export type ReplicaOverrides = Partial<Omit<ReplicaTransportOptions, 'seed' | 'selfId' | 'replicas'>>;

export const DEFAULT_LIMITS = {
  replicaFrameSizeMaxBytes: 8 * 1024 * 1024,
  clientFrameSizeMaxBytes: 4096,
  clientFramesPerSecondMax: 1000,
};

export interface TestCluster {
  peers: ClusterPeer[];
  replicas: TestReplica[];
  /** Start (or restart) replica `id` listening on `listen`, and publish its address. */
  startReplica(id: number, listen?: string[]): Promise<TestReplica>;
  stop(): Promise<void>;
}

/**
 * `size` cluster members; the first `running` of them are started as transports, the rest are left
 * for the test to impersonate with raw nodes.
 */
export async function startCluster(
  size: number,
  overrides: ReplicaOverrides = {},
  running = size,
): Promise<TestCluster> {
  const peers: ClusterPeer[] = await Promise.all(
    Array.from({ length: size }, async (_, id) => ({
      id,
      peerId: await peerIdFromSeed(seedFor(id)),
      multiaddrs: [],
    })),
  );
  const replicas: TestReplica[] = [];
  const startReplica = async (id: number, listen = [LOOPBACK_ANY_PORT]): Promise<TestReplica> => {
    const replica: TestReplica = {
      id,
      transport: undefined!,
      received: [],
      clientFrames: [],
      connectionChanges: [],
    };
    replica.transport = createReplicaTransport({
      ...DEFAULT_LIMITS,
      listen,
      onReplicaFrame: (from, frame) => replica.received.push({ from, frame }),
      onClientFrame: (session, frame) => replica.clientFrames.push({ session, frame }),
      onPeerConnectionChange: (connected) => replica.connectionChanges.push(connected),
      ...overrides,
      seed: seedFor(id),
      selfId: id,
      replicas: peers,
    });
    await replica.transport.start();
    peers[id]!.multiaddrs.splice(0, Number.POSITIVE_INFINITY, ...replica.transport.listenAddresses());
    replicas[id] = replica;
    return replica;
  };
  await Promise.all(Array.from({ length: running }, (_, id) => startReplica(id)));
  return {
    peers,
    replicas,
    startReplica,
    stop: async () => {
      await Promise.all(replicas.map((replica) => replica.transport.stop()));
    },
  };
}

/** A bare libp2p node (same stack as the transport) for speaking the protocols by hand. */
export async function startRawNode(seed: Uint8Array): Promise<Libp2p> {
  const node = await createLibp2pNode({
    privateKey: await privateKeyFromSeed(seed),
    listen: [],
    connectionGater: {},
  });
  await node.start();
  return node;
}

/** Resolves once the stream is closed, including when that happened before the call. */
export function streamClosed(stream: Stream): Promise<void> {
  if (stream.status !== 'open') return Promise.resolve();
  return new Promise((resolve) => stream.addEventListener('close', () => resolve()));
}
