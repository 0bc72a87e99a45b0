/**
 * The libp2p transport: stable replica identities derived from replica keys, the replica and client
 * protocols with length-prefixed frames, membership gating, coalesced and bounded outbound queues,
 * and reconnection that never gives up. See replica-transport.ts and client-transport.ts.
 */
export { createClientTransport } from './client-transport.ts';
export {
  ClientRateLimitError,
  FrameTooLargeError,
  InvalidPeerIdError,
  MalformedLengthPrefixError,
  NotClusterReplicaError,
  ReplicaUnreachableError,
  SeedPeerIdMismatchError,
  SendQueueOverflowError,
  TransportConfigError,
  TransportStateError,
  TransportStoppedError,
} from './errors.ts';
export { peerIdFromSeed, publicKeyFromPeerId } from './identity.ts';
export { createReplicaTransport } from './replica-transport.ts';
export {
  CLIENT_PROTOCOL,
  type ClientConnection,
  type ClientSession,
  type ClientTransport,
  type ClientTransportOptions,
  type ClusterPeer,
  REPLICA_PROTOCOL,
  type ReplicaTransport,
  type ReplicaTransportOptions,
  type ReplicaTransportStats,
  type TransportLog,
} from './types.ts';
