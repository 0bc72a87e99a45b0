/**
 * The client side: a libp2p node that only dials (it listens nowhere and its gater refuses inbound
 * connections) and opens one CLIENT_PROTOCOL stream per replica it talks to.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import {
  FrameTooLargeError,
  ReplicaUnreachableError,
  TransportConfigError,
  TransportStateError,
  TransportStoppedError,
} from './errors.ts';
import { privateKeyFromSeed } from './identity.ts';
import { createLibp2pNode, stopLibp2pNode } from './node.ts';
import { FramedStream, readFrames } from './streams.ts';
import {
  CLIENT_PROTOCOL,
  type ClientConnection,
  type ClientTransport,
  type ClientTransportOptions,
  type ClusterPeer,
  SILENT_LOG,
  type TransportLog,
} from './types.ts';

const MIB = 1024 * 1024;
/** Requests waiting to leave for one replica; more means the replica is not reading. */
export const CLIENT_QUEUE_SIZE_MAX_BYTES = 1 * MIB;
export const CLIENT_QUEUE_FRAMES_MAX = 1024;
/** Frames held for a connection whose frame handler is not set yet. */
export const UNHANDLED_FRAMES_MAX = 256;
export const CONNECT_TIMEOUT_MS = 5000;

export async function createClientTransport(options: ClientTransportOptions): Promise<ClientTransport> {
  const { frameSizeMaxBytes } = options;
  if (
    !Number.isSafeInteger(frameSizeMaxBytes) ||
    frameSizeMaxBytes < 1 ||
    frameSizeMaxBytes > CLIENT_QUEUE_SIZE_MAX_BYTES
  ) {
    throw new TransportConfigError(
      `frameSizeMaxBytes must be an integer between 1 and ${CLIENT_QUEUE_SIZE_MAX_BYTES}`,
    );
  }
  const privateKey =
    options.seed === undefined ? await generateKeyPair('Ed25519') : await privateKeyFromSeed(options.seed);
  const node = await createLibp2pNode({
    privateKey,
    listen: [],
    connectionGater: { denyInboundConnection: () => true },
  });
  return new Libp2pClientTransport(node, frameSizeMaxBytes, options.log ?? SILENT_LOG);
}

class Libp2pClientTransport implements ClientTransport {
  readonly #node: Libp2p;
  readonly #frameSizeMaxBytes: number;
  readonly #log: TransportLog;
  readonly #connections = new Set<StreamClientConnection>();
  #state: 'new' | 'started' | 'stopped' = 'new';

  constructor(node: Libp2p, frameSizeMaxBytes: number, log: TransportLog) {
    this.#node = node;
    this.#frameSizeMaxBytes = frameSizeMaxBytes;
    this.#log = log;
  }

  async start(): Promise<void> {
    if (this.#state !== 'new')
      throw new TransportStateError(`cannot start a transport that is ${this.#state}`);
    await this.#node.start();
    this.#state = 'started';
  }

  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    for (const connection of this.#connections) connection.close();
    await stopLibp2pNode(this.#node);
  }

  async connect(peer: ClusterPeer, options: { signal?: AbortSignal } = {}): Promise<ClientConnection> {
    if (this.#state !== 'started') throw new TransportStoppedError();
    if (peer.multiaddrs.length === 0) throw new ReplicaUnreachableError(peer.id, 'no multiaddrs');
    const signals = [AbortSignal.timeout(CONNECT_TIMEOUT_MS)];
    if (options.signal !== undefined) signals.push(options.signal);
    let stream: Stream;
    try {
      const target = peer.multiaddrs.map((address) => multiaddr(address).encapsulate(`/p2p/${peer.peerId}`));
      stream = await this.#node.dialProtocol(target, CLIENT_PROTOCOL, { signal: AbortSignal.any(signals) });
    } catch (error) {
      this.#log.debug({ replica: peer.id, err: error }, 'client connect failed');
      throw new ReplicaUnreachableError(peer.id, error);
    }
    if (this.#state !== 'started') {
      stream.abort(new TransportStoppedError());
      throw new TransportStoppedError();
    }
    const connection = new StreamClientConnection(stream, this.#frameSizeMaxBytes, () =>
      this.#log.warn({ replica: peer.id }, 'replica is not reading: client connection closed'),
    );
    this.#connections.add(connection);
    stream.addEventListener('close', () => this.#connections.delete(connection), { once: true });
    return connection;
  }
}

class StreamClientConnection extends FramedStream implements ClientConnection {
  readonly #frameSizeMaxBytes: number;
  #handler: ((frame: Uint8Array) => void) | undefined;
  #unhandled: Uint8Array[] = [];

  constructor(stream: Stream, frameSizeMaxBytes: number, onOverflow: () => void) {
    super(stream, {
      bounds: { sizeMaxBytes: CLIENT_QUEUE_SIZE_MAX_BYTES, framesMax: CLIENT_QUEUE_FRAMES_MAX },
      onOverflow,
    });
    this.#frameSizeMaxBytes = frameSizeMaxBytes;
    readFrames(stream, {
      frameSizeMaxBytes,
      onFrame: (frame) => {
        if (this.#handler !== undefined) this.#handler(frame);
        else if (this.#unhandled.length < UNHANDLED_FRAMES_MAX) this.#unhandled.push(frame);
        return !this.closed;
      },
      // A replica that sends garbage is faulty; the client stops listening to it on this stream.
      onMalformed: (error) => this.abort(error),
    });
  }

  override send(frame: Uint8Array): void {
    if (frame.length > this.#frameSizeMaxBytes)
      throw new FrameTooLargeError(frame.length, this.#frameSizeMaxBytes);
    super.send(frame);
  }

  onFrame(handler: (frame: Uint8Array) => void): void {
    this.#handler = handler;
    const waiting = this.#unhandled;
    this.#unhandled = [];
    for (const frame of waiting) handler(frame);
  }
}
