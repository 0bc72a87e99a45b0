/**
 * One error class per condition, each with a one-line message. Streams are aborted with these, so
 * the reason shows up in libp2p's logs and in the 'close' event of the affected stream.
 */

export class TransportConfigError extends Error {
  override name = 'TransportConfigError';
}

export class TransportStateError extends Error {
  override name = 'TransportStateError';
}

/** The seed does not derive the peer id the cluster configuration lists for this replica. */
export class SeedPeerIdMismatchError extends Error {
  override name = 'SeedPeerIdMismatchError';
  constructor(replicaId: number, configuredPeerId: string, derivedPeerId: string) {
    super(
      `replica ${replicaId}'s seed derives peer id ${derivedPeerId}, but the cluster lists ${configuredPeerId}`,
    );
  }
}

export class InvalidPeerIdError extends Error {
  override name = 'InvalidPeerIdError';
  constructor(peerId: string, reason: string) {
    super(`invalid peer id ${JSON.stringify(peerId)}: ${reason}`);
  }
}

export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError';
  constructor(sizeBytes: number, sizeMaxBytes: number) {
    super(`frame of ${sizeBytes} bytes exceeds the limit of ${sizeMaxBytes} bytes`);
  }
}

export class MalformedLengthPrefixError extends Error {
  override name = 'MalformedLengthPrefixError';
  constructor(reason: string) {
    super(`malformed frame length prefix: ${reason}`);
  }
}

/** A peer outside the cluster opened the replica protocol. */
export class NotClusterReplicaError extends Error {
  override name = 'NotClusterReplicaError';
  constructor(peerId: string) {
    super(`peer ${peerId} is not a replica of this cluster`);
  }
}

/** A client kept sending above its rate limit. */
export class ClientRateLimitError extends Error {
  override name = 'ClientRateLimitError';
  constructor(framesPerSecondMax: number, abuseSeconds: number) {
    super(`client exceeded ${framesPerSecondMax} frames/s for ${abuseSeconds} consecutive seconds`);
  }
}

/** The peer does not read what we send: its queue on our side hit its bound. */
export class SendQueueOverflowError extends Error {
  override name = 'SendQueueOverflowError';
  constructor(sizeMaxBytes: number) {
    super(`peer stopped reading: send queue exceeded ${sizeMaxBytes} bytes`);
  }
}

export class ReplicaUnreachableError extends Error {
  override name = 'ReplicaUnreachableError';
  readonly replicaId: number;
  constructor(replicaId: number, cause: unknown) {
    super(`replica ${replicaId} is unreachable: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.replicaId = replicaId;
  }
}

export class TransportStoppedError extends Error {
  override name = 'TransportStoppedError';
  constructor() {
    super('the transport is stopped');
  }
}
