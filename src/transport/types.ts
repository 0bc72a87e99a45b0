/** The transport's public surface: what the runtime and the client library program against. */

export const REPLICA_PROTOCOL = '/pbft/replica/1.0.0';
export const CLIENT_PROTOCOL = '/pbft/client/1.0.0';

export interface ClusterPeer {
  id: number;
  peerId: string;
  /** Read at every dial, so addresses known only after construction (tests on /tcp/0) still work. */
  multiaddrs: string[];
}

export interface TransportLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export const SILENT_LOG: TransportLog = { info() {}, warn() {}, debug() {} };

export interface ReplicaTransportOptions {
  /** This replica's 32-byte ed25519 seed; the libp2p identity derives from it, so peerId == replica key. */
  seed: Uint8Array;
  selfId: number;
  /** e.g. ['/ip4/127.0.0.1/tcp/9000']. */
  listen: string[];
  /** Every replica, this one included. */
  replicas: ClusterPeer[];
  replicaFrameSizeMaxBytes: number;
  clientFrameSizeMaxBytes: number;
  /** Per client connection; a token bucket with a burst of twice this. */
  clientFramesPerSecondMax: number;
  /**
   * `from` is the replica authenticated by the connection's remote peer id. Both callbacks run inside
   * the stream's event listener and are not wrapped: an exception is a bug and surfaces as uncaught.
   */
  onReplicaFrame(from: number, frame: Uint8Array): void;
  onClientFrame(session: ClientSession, frame: Uint8Array): void;
  /** Called when the set of replicas with an open outbound stream changes. */
  onPeerConnectionChange?(connectedReplicaIds: number[]): void;
  log?: TransportLog;
}

/** One client stream. Replies written with `send` go back on the same stream. */
export interface ClientSession {
  readonly id: string;
  readonly closed: boolean;
  /** Never throws; a no-op once closed. A client that stops reading gets its session closed. */
  send(frame: Uint8Array): void;
  /** Flushes what is queued, then closes the stream. */
  close(): void;
}

/** Counters, for metrics and tests. All only increase. */
export interface ReplicaTransportStats {
  replicaFramesSent: number;
  replicaBatchesSent: number;
  replicaFramesReceived: number;
  /** Oldest frames dropped because a peer's queue was full (the peer is down or slow). */
  replicaFramesDroppedQueueFull: number;
  /** Frames larger than replicaFrameSizeMaxBytes handed to sendToReplica. */
  replicaFramesDroppedOversized: number;
  /** Frames for an id that is not another replica of the cluster. */
  replicaFramesDroppedUnknownReplica: number;
  /** Frames for a replica whose link was down when they were sent. */
  replicaFramesDroppedDisconnected: number;
  /** Replica-protocol streams from peers outside the cluster. */
  replicaStreamsRefused: number;
  /** Replica streams closed for an oversized or malformed length prefix. */
  replicaStreamsMalformed: number;
  clientFramesReceived: number;
  clientFramesDroppedRateLimit: number;
  /** Client streams closed for an oversized or malformed length prefix. */
  clientStreamsMalformed: number;
  /** Client streams closed for sustained rate-limit abuse. */
  clientStreamsRateLimited: number;
  /** Client sessions closed because the client stopped reading its replies. */
  clientSessionsOverflowed: number;
}

export interface ReplicaTransport {
  readonly peerId: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Never throws; queued if not connected (bounded, oldest dropped first), coalesced with other frames. */
  sendToReplica(to: number, frame: Uint8Array): void;
  /** Replicas with an open outbound stream, ascending. */
  connectedReplicas(): number[];
  /** The addresses actually listened on (with the OS-chosen port for /tcp/0), without /p2p/. */
  listenAddresses(): string[];
  stats(): ReplicaTransportStats;
}

export interface ClientTransportOptions {
  /** A random identity when omitted. */
  seed?: Uint8Array;
  frameSizeMaxBytes: number;
  log?: TransportLog;
}

export interface ClientConnection {
  readonly closed: boolean;
  /** A no-op once closed (check `closed` and reconnect); throws FrameTooLargeError for an oversized frame. */
  send(frame: Uint8Array): void;
  /** Sets the handler; frames that arrive before a handler is set wait for it (bounded). */
  onFrame(handler: (frame: Uint8Array) => void): void;
  close(): void;
}

export interface ClientTransport {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Opens a CLIENT_PROTOCOL stream; rejects with ReplicaUnreachableError if that fails. */
  connect(peer: ClusterPeer, options?: { signal?: AbortSignal }): Promise<ClientConnection>;
}
