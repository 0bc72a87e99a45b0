/**
 * The replica side of the network.
 *
 * Replica protocol: every replica keeps one long-lived outbound stream to every other replica (a
 * "link") and writes its frames there; it reads frames from every replica stream, in either
 * direction, attributing them to the replica whose peer id the Noise handshake authenticated. Only
 * cluster members get that far: streams from any other peer are aborted on arrival, and the
 * connection gater refuses to dial anyone outside the cluster.
 *
 * Staying connected: each link runs its own redial loop with capped exponential backoff, forever.
 * libp2p's keep-alive tags give up after about 31 s, and a replica that was down longer must still
 * be reconnected. A peer dialling us wakes the loop at once, so a restarted replica is back as soon
 * as it is up, whatever the backoff had reached.
 *
 * Client protocol: anyone may open it. Frames are size-limited and rate-limited per connection;
 * replies go back on the same stream through a bounded queue.
 */

import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import {
  ClientRateLimitError,
  NotClusterReplicaError,
  SeedPeerIdMismatchError,
  TransportConfigError,
  TransportStateError,
} from './errors.ts';
import { FRAME_SIZE_LIMIT_BYTES } from './framing.ts';
import { privateKeyFromSeed, publicKeyFromPeerId, SEED_LENGTH_BYTES } from './identity.ts';
import { createLibp2pNode, stopLibp2pNode } from './node.ts';
import { ClientRateLimiter, RATE_LIMIT_ABUSE_SECONDS } from './rate-limit.ts';
import { closeStream, FramedStream, FrameWriter, readFrames } from './streams.ts';
import {
  CLIENT_PROTOCOL,
  type ClientSession,
  type ClusterPeer,
  REPLICA_PROTOCOL,
  type ReplicaTransport,
  type ReplicaTransportOptions,
  type ReplicaTransportStats,
  SILENT_LOG,
  type TransportLog,
} from './types.ts';

const MIB = 1024 * 1024;
/**
 * Per peer. Room for a few maximum-size frames (state transfer) and for a few seconds of normal
 * traffic to a peer that is down; beyond it the oldest frames go, which PBFT's retransmissions cover.
 */
export const REPLICA_QUEUE_SIZE_MAX_BYTES = 32 * MIB;
/** Per peer, so a flood of tiny frames cannot cost more in bookkeeping than in bytes. */
export const REPLICA_QUEUE_FRAMES_MAX = 65_536;
/** Replies waiting for one client; a client that lets more pile up is not reading. */
export const CLIENT_SESSION_QUEUE_SIZE_MAX_BYTES = 1 * MIB;
export const CLIENT_SESSION_QUEUE_FRAMES_MAX = 1024;
export const REDIAL_BACKOFF_INITIAL_MS = 100;
export const REDIAL_BACKOFF_MAX_MS = 5000;
export const DIAL_TIMEOUT_MS = 5000;
/** A link stream that stayed open this long was healthy: after it closes, redial at once. */
export const LINK_STABLE_MS = 1000;
/** Concurrent replica streams per connection: one each way, plus ones still closing after a reconnect. */
export const REPLICA_STREAMS_PER_CONNECTION_MAX = 8;
export const CLIENT_STREAMS_PER_CONNECTION_MAX = 16;
/** Peer-store tag value that keeps libp2p's connection pruner away from replica connections. */
const REPLICA_TAG = 'pbft-replica';
const REPLICA_TAG_VALUE = 100;

export function createReplicaTransport(options: ReplicaTransportOptions): ReplicaTransport {
  return new Libp2pReplicaTransport(options);
}

function validateOptions(options: ReplicaTransportOptions): ClusterPeer {
  const fail = (message: string): never => {
    throw new TransportConfigError(message);
  };
  if (!(options.seed instanceof Uint8Array) || options.seed.length !== SEED_LENGTH_BYTES) {
    fail(`seed must be ${SEED_LENGTH_BYTES} bytes`);
  }
  if (options.listen.length === 0) fail('listen needs at least one multiaddr');
  for (const [name, value] of [
    ['replicaFrameSizeMaxBytes', options.replicaFrameSizeMaxBytes],
    ['clientFrameSizeMaxBytes', options.clientFrameSizeMaxBytes],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1 || value > FRAME_SIZE_LIMIT_BYTES) {
      fail(`${name} must be an integer between 1 and ${FRAME_SIZE_LIMIT_BYTES}`);
    }
  }
  if (options.replicaFrameSizeMaxBytes * 2 > REPLICA_QUEUE_SIZE_MAX_BYTES) {
    fail(
      `replicaFrameSizeMaxBytes must be at most ${REPLICA_QUEUE_SIZE_MAX_BYTES / 2} (half a peer's queue)`,
    );
  }
  if (options.clientFrameSizeMaxBytes > CLIENT_SESSION_QUEUE_SIZE_MAX_BYTES) {
    fail(`clientFrameSizeMaxBytes must be at most ${CLIENT_SESSION_QUEUE_SIZE_MAX_BYTES}`);
  }
  if (!(options.clientFramesPerSecondMax > 0)) fail('clientFramesPerSecondMax must be positive');
  const ids = new Set<number>();
  const peerIds = new Set<string>();
  for (const replica of options.replicas) {
    if (!Number.isSafeInteger(replica.id) || replica.id < 0)
      fail(`replica id ${replica.id} is not an integer ≥ 0`);
    if (ids.has(replica.id)) fail(`replica id ${replica.id} appears twice`);
    if (peerIds.has(replica.peerId)) fail(`peer id ${replica.peerId} appears twice`);
    ids.add(replica.id);
    peerIds.add(replica.peerId);
    try {
      publicKeyFromPeerId(replica.peerId);
      for (const address of replica.multiaddrs) multiaddr(address);
    } catch (error) {
      fail(`replica ${replica.id}: ${(error as Error).message}`);
    }
  }
  const self = options.replicas.find((replica) => replica.id === options.selfId);
  return self ?? fail(`selfId ${options.selfId} is not among the replicas`);
}

/** One outbound replica stream, redialled forever. */
class Link {
  readonly peer: ClusterPeer;
  readonly peerId: PeerId;
  readonly writer: FrameWriter;
  stream: Stream | undefined;
  /** Whether the queue is dropping frames (logged once per episode, not once per frame). */
  dropping = false;
  #wakeSleeper: (() => void) | undefined;
  #wakePending = false;

  constructor(peer: ClusterPeer, writer: FrameWriter) {
    this.peer = peer;
    this.peerId = peerIdFromString(peer.peerId);
    this.writer = writer;
  }

  /** Cut the current backoff sleep short, or the next one if the loop is busy dialling. */
  wake(): void {
    if (this.#wakeSleeper !== undefined) this.#wakeSleeper();
    else this.#wakePending = true;
  }

  sleep(ms: number): Promise<void> {
    if (this.#wakePending) {
      this.#wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakeSleeper = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakeSleeper = done;
    });
  }
}

class Libp2pReplicaTransport implements ReplicaTransport {
  readonly peerId: string;
  readonly #options: ReplicaTransportOptions;
  readonly #log: TransportLog;
  readonly #replicaIdByPeerId = new Map<string, number>();
  readonly #links = new Map<number, Link>();
  readonly #rateLimiters = new WeakMap<Connection, ClientRateLimiter>();
  readonly #stopController = new AbortController();
  readonly #linkLoops: Promise<void>[] = [];
  readonly #stats: ReplicaTransportStats = {
    replicaFramesSent: 0,
    replicaBatchesSent: 0,
    replicaFramesReceived: 0,
    replicaFramesDroppedQueueFull: 0,
    replicaFramesDroppedOversized: 0,
    replicaFramesDroppedUnknownReplica: 0,
    replicaFramesDroppedDisconnected: 0,
    replicaStreamsRefused: 0,
    replicaStreamsMalformed: 0,
    clientFramesReceived: 0,
    clientFramesDroppedRateLimit: 0,
    clientStreamsMalformed: 0,
    clientStreamsRateLimited: 0,
    clientSessionsOverflowed: 0,
  };
  #node: Libp2p | undefined;
  #state: 'new' | 'starting' | 'started' | 'stopped' = 'new';
  #sessionsOpened = 0;
  #lastConnected = '';

  constructor(options: ReplicaTransportOptions) {
    const self = validateOptions(options);
    this.peerId = self.peerId;
    this.#options = options;
    this.#log = options.log ?? SILENT_LOG;
    for (const replica of options.replicas) {
      this.#replicaIdByPeerId.set(replica.peerId, replica.id);
      if (replica.id === options.selfId) continue;
      const writer = new FrameWriter({
        bounds: { sizeMaxBytes: REPLICA_QUEUE_SIZE_MAX_BYTES, framesMax: REPLICA_QUEUE_FRAMES_MAX },
        onBatchSent: (frames) => {
          this.#stats.replicaFramesSent += frames;
          this.#stats.replicaBatchesSent++;
        },
        onWriteError: (stream, error) => {
          this.#log.debug({ replica: replica.id, err: error }, 'replica stream failed while writing');
          stream.abort(error as Error);
        },
      });
      this.#links.set(replica.id, new Link(replica, writer));
    }
  }

  async start(): Promise<void> {
    if (this.#state !== 'new')
      throw new TransportStateError(`cannot start a transport that is ${this.#state}`);
    this.#state = 'starting';
    const privateKey = await privateKeyFromSeed(this.#options.seed);
    const node = await createLibp2pNode({
      privateKey,
      listen: this.#options.listen,
      connectionGater: {
        // Replica traffic goes to cluster members only; clients dial us, we never dial them.
        denyDialPeer: (peerId) => !this.#replicaIdByPeerId.has(peerId.toString()),
      },
    });
    if (node.peerId.toString() !== this.peerId) {
      throw new SeedPeerIdMismatchError(this.#options.selfId, this.peerId, node.peerId.toString());
    }
    this.#node = node;
    await node.handle(REPLICA_PROTOCOL, (stream, connection) => this.#onReplicaStream(stream, connection), {
      maxInboundStreams: REPLICA_STREAMS_PER_CONNECTION_MAX,
      maxOutboundStreams: REPLICA_STREAMS_PER_CONNECTION_MAX,
    });
    await node.handle(CLIENT_PROTOCOL, (stream, connection) => this.#onClientStream(stream, connection), {
      maxInboundStreams: CLIENT_STREAMS_PER_CONNECTION_MAX,
    });
    node.addEventListener('peer:connect', (event) => {
      const replicaId = this.#replicaIdByPeerId.get(event.detail.toString());
      if (replicaId !== undefined) this.#links.get(replicaId)?.wake();
    });
    for (const link of this.#links.values()) {
      await node.peerStore.merge(link.peerId, { tags: { [REPLICA_TAG]: { value: REPLICA_TAG_VALUE } } });
    }
    await node.start();
    if (this.#stopController.signal.aborted) {
      await stopLibp2pNode(node);
      return;
    }
    this.#state = 'started';
    for (const link of this.#links.values()) this.#linkLoops.push(this.#runLink(link));
    this.#log.info({ peerId: this.peerId, listen: this.listenAddresses() }, 'transport listening');
  }

  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    const wasStarted = this.#state === 'started';
    this.#state = 'stopped';
    this.#stopController.abort();
    // A start() still in progress sees the abort and stops its node itself.
    if (!wasStarted) return;
    const closing: Promise<void>[] = [];
    for (const link of this.#links.values()) {
      link.wake();
      link.writer.clear();
      if (link.stream !== undefined) closing.push(closeStream(link.stream));
    }
    await Promise.all(closing);
    if (this.#node !== undefined) await stopLibp2pNode(this.#node);
    await Promise.all(this.#linkLoops);
  }

  sendToReplica(to: number, frame: Uint8Array): void {
    const link = this.#links.get(to);
    if (link === undefined) {
      this.#stats.replicaFramesDroppedUnknownReplica++;
      this.#log.debug({ to }, 'frame for an id that is not another replica dropped');
      return;
    }
    if (frame.length > this.#options.replicaFrameSizeMaxBytes) {
      this.#stats.replicaFramesDroppedOversized++;
      this.#log.warn(
        { to, sizeBytes: frame.length, sizeMaxBytes: this.#options.replicaFrameSizeMaxBytes },
        'oversized replica frame dropped',
      );
      return;
    }
    if (this.#state === 'stopped') return;
    if (link.stream === undefined) {
      // Not held for a peer that is down: PBFT retransmits what matters, and a replica that was
      // away catches up through the protocol (retransmission answers, checkpoints, state transfer)
      // rather than through a replay of everything it missed.
      this.#stats.replicaFramesDroppedDisconnected++;
      return;
    }
    const dropped = link.writer.enqueue(frame);
    if (dropped > 0) {
      this.#stats.replicaFramesDroppedQueueFull += dropped;
      if (!link.dropping) {
        link.dropping = true;
        this.#log.warn(
          { to, queuedFrames: link.writer.queuedFrames },
          'replica queue full: dropping oldest frames',
        );
      }
    } else if (link.dropping && link.writer.queuedFrames <= 1) {
      link.dropping = false;
    }
  }

  connectedReplicas(): number[] {
    const connected: number[] = [];
    for (const [id, link] of this.#links) if (link.stream !== undefined) connected.push(id);
    return connected.sort((a, b) => a - b);
  }

  listenAddresses(): string[] {
    if (this.#node === undefined) return [];
    const own = `/p2p/${this.peerId}`;
    return this.#node.getMultiaddrs().map((address) => {
      const text = address.toString();
      return text.endsWith(own) ? text.slice(0, -own.length) : text;
    });
  }

  stats(): ReplicaTransportStats {
    return { ...this.#stats };
  }

  async #runLink(link: Link): Promise<void> {
    const node = this.#node!;
    const stopSignal = this.#stopController.signal;
    let backoffMs = REDIAL_BACKOFF_INITIAL_MS;
    while (!stopSignal.aborted) {
      let stream: Stream;
      try {
        stream = await node.dialProtocol(dialTarget(link), REPLICA_PROTOCOL, {
          signal: AbortSignal.any([stopSignal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]),
        });
      } catch (error) {
        if (stopSignal.aborted) return;
        this.#log.debug({ replica: link.peer.id, backoffMs, err: error }, 'replica dial failed');
        await link.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, REDIAL_BACKOFF_MAX_MS);
        continue;
      }
      if (stopSignal.aborted) {
        stream.abort(new TransportStateError('transport stopped'));
        return;
      }
      const openedAtMs = performance.now();
      await this.#useLinkStream(link, stream);
      if (performance.now() - openedAtMs >= LINK_STABLE_MS) {
        backoffMs = REDIAL_BACKOFF_INITIAL_MS;
      } else {
        // The peer accepts streams and drops them at once (it may not list us as a member): do not spin.
        await link.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, REDIAL_BACKOFF_MAX_MS);
      }
    }
  }

  /** Write the link's frames to `stream` until it closes. */
  async #useLinkStream(link: Link, stream: Stream): Promise<void> {
    const closed = new Promise<void>((resolve) =>
      stream.addEventListener('close', () => resolve(), { once: true }),
    );
    this.#readReplicaStream(stream, link.peer.id);
    link.stream = stream;
    link.writer.attach(stream);
    this.#log.info({ replica: link.peer.id }, 'replica link open');
    this.#notifyConnectionChange();
    await closed;
    link.writer.detach();
    link.stream = undefined;
    if (this.#state !== 'stopped') this.#log.info({ replica: link.peer.id }, 'replica link closed');
    this.#notifyConnectionChange();
  }

  #notifyConnectionChange(): void {
    if (this.#state === 'stopped') return;
    const connected = this.connectedReplicas();
    const key = connected.join(',');
    if (key === this.#lastConnected) return;
    this.#lastConnected = key;
    this.#options.onPeerConnectionChange?.(connected);
  }

  #onReplicaStream(stream: Stream, connection: Connection): void {
    const remotePeer = connection.remotePeer.toString();
    const from = this.#replicaIdByPeerId.get(remotePeer);
    if (from === undefined || from === this.#options.selfId) {
      this.#stats.replicaStreamsRefused++;
      this.#log.warn({ peer: remotePeer }, 'replica protocol refused to a peer outside the cluster');
      stream.abort(new NotClusterReplicaError(remotePeer));
      return;
    }
    this.#readReplicaStream(stream, from);
    // We never write on an inbound replica stream: once the peer is done writing, it is finished.
    stream.addEventListener('remoteCloseWrite', () => void closeStream(stream));
  }

  #readReplicaStream(stream: Stream, from: number): void {
    readFrames(stream, {
      frameSizeMaxBytes: this.#options.replicaFrameSizeMaxBytes,
      onFrame: (frame) => {
        this.#stats.replicaFramesReceived++;
        this.#options.onReplicaFrame(from, frame);
        return true;
      },
      onMalformed: (error) => {
        this.#stats.replicaStreamsMalformed++;
        this.#log.warn({ replica: from, err: error.message }, 'replica stream closed: bad frame');
        stream.abort(error);
      },
    });
  }

  #onClientStream(stream: Stream, connection: Connection): void {
    let limiter = this.#rateLimiters.get(connection);
    if (limiter === undefined) {
      limiter = new ClientRateLimiter(this.#options.clientFramesPerSecondMax, performance.now());
      this.#rateLimiters.set(connection, limiter);
    }
    const remotePeer = connection.remotePeer.toString();
    const session = new StreamClientSession(`${remotePeer}#${++this.#sessionsOpened}`, stream, () => {
      this.#stats.clientSessionsOverflowed++;
      this.#log.warn({ session: session.id }, 'client session closed: client is not reading');
    });
    readFrames(stream, {
      frameSizeMaxBytes: this.#options.clientFrameSizeMaxBytes,
      onFrame: (frame) => {
        const admission = limiter.admit(performance.now());
        if (admission === 'accept') {
          this.#stats.clientFramesReceived++;
          this.#options.onClientFrame(session, frame);
          return !session.closed;
        }
        this.#stats.clientFramesDroppedRateLimit++;
        if (admission === 'drop') return true;
        this.#stats.clientStreamsRateLimited++;
        this.#log.warn({ session: session.id }, 'client stream closed: sustained rate-limit abuse');
        session.abort(
          new ClientRateLimitError(this.#options.clientFramesPerSecondMax, RATE_LIMIT_ABUSE_SECONDS),
        );
        return false;
      },
      onMalformed: (error) => {
        this.#stats.clientStreamsMalformed++;
        this.#log.debug({ session: session.id, err: error.message }, 'client stream closed: bad frame');
        session.abort(error);
      },
    });
  }
}

function dialTarget(link: Link): PeerId | Multiaddr[] {
  const { peerId, multiaddrs } = link.peer;
  // With no address (yet), dialling the peer id still reuses a connection the peer opened to us.
  if (multiaddrs.length === 0) return link.peerId;
  return multiaddrs.map((address) => multiaddr(address).encapsulate(`/p2p/${peerId}`));
}

class StreamClientSession extends FramedStream implements ClientSession {
  readonly id: string;

  constructor(id: string, stream: Stream, onOverflow: () => void) {
    super(stream, {
      bounds: {
        sizeMaxBytes: CLIENT_SESSION_QUEUE_SIZE_MAX_BYTES,
        framesMax: CLIENT_SESSION_QUEUE_FRAMES_MAX,
      },
      onOverflow,
    });
    this.id = id;
  }
}
