/**
 * A hostile client for the chaos runner (fault class 'hostile-client'): it never counts as one of
 * the f faulty replicas, and it attacks what every stranger can reach. Over its own connections it
 * sends, as fast as a client connection is allowed, requests signed by fresh keys that have no
 * account (one each: the lock-out attack, which once filled the reply cache for good), requests
 * with bad signatures, and frames larger than the client protocol allows (each closes its
 * connection; it reconnects). The honest load must go on, and the audit still must find every
 * acknowledged transfer executed exactly once.
 */
import { KeyPair } from '../../src/crypto/keys.ts';
import { encodeOperation } from '../../src/ledger/index.ts';
import type { ClusterConfig } from '../../src/node/cluster-config.ts';
import { CLIENT_FRAME_SIZE_MAX_BYTES, encodeClientFrame } from '../../src/protocol/client-protocol.ts';
import { type RequestBody, signBody } from '../../src/protocol/messages.ts';
import { type ClientConnection, createClientTransport } from '../../src/transport/index.ts';
import type { Random } from '../../src/util/random.ts';

/** Frames sent per replica and tick: 100 ticks a second keeps it under a connection's rate limit. */
const FRAMES_PER_TICK = 2;
const TICK_MS = 10;
/** Shares of the frames (per 100): the rest are fresh-key requests. */
const BAD_SIGNATURE_PER_100 = 15;
const OVERSIZED_PER_100 = 2;
/** Large enough to carry an oversized frame past our own transport's check. */
const HOSTILE_FRAME_SIZE_MAX_BYTES = 4 * CLIENT_FRAME_SIZE_MAX_BYTES;

export interface HostileClientReport {
  freshKeyRequests: number;
  badSignatures: number;
  oversizedFrames: number;
  reconnects: number;
}

export class HostileClient {
  readonly report: HostileClientReport = {
    freshKeyRequests: 0,
    badSignatures: 0,
    oversizedFrames: 0,
    reconnects: 0,
  };
  readonly #cluster: ClusterConfig;
  readonly #random: Random;
  readonly #connections = new Map<number, ClientConnection | 'connecting'>();
  #timer: NodeJS.Timeout | null = null;
  #transport: Awaited<ReturnType<typeof createClientTransport>> | null = null;

  constructor(cluster: ClusterConfig, random: Random) {
    this.#cluster = cluster;
    this.#random = random;
  }

  async start(): Promise<void> {
    this.#transport = await createClientTransport({ frameSizeMaxBytes: HOSTILE_FRAME_SIZE_MAX_BYTES });
    await this.#transport.start();
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  async stop(): Promise<HostileClientReport> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#transport?.stop();
    return this.report;
  }

  #tick(): void {
    for (const replica of this.#cluster.replicas) {
      const connection = this.#connections.get(replica.id);
      if (connection === undefined || (connection !== 'connecting' && connection.closed)) {
        if (connection !== undefined) this.report.reconnects++;
        this.#connections.set(replica.id, 'connecting');
        this.#transport!.connect(replica).then(
          (opened) => {
            opened.onFrame(() => undefined); // answers (refusals) are not read
            this.#connections.set(replica.id, opened);
          },
          () => this.#connections.delete(replica.id),
        );
        continue;
      }
      if (connection === 'connecting') continue;
      for (let i = 0; i < FRAMES_PER_TICK && !connection.closed; i++) connection.send(this.#frame());
    }
  }

  #frame(): Uint8Array {
    const roll = this.#random.int(0, 99);
    if (roll < OVERSIZED_PER_100) {
      this.report.oversizedFrames++;
      return this.#random.bytes(CLIENT_FRAME_SIZE_MAX_BYTES + 1 + this.#random.int(0, 1024));
    }
    const key = KeyPair.generate();
    const signer = key.signer();
    const op = encodeOperation({ type: 'transfer', to: this.#random.bytes(32), amount: 1 });
    const request = signBody<RequestBody>({ type: 'request', client: key.publicKey, t: 1, op }, (bytes) =>
      signer.sign(bytes),
    );
    if (roll < OVERSIZED_PER_100 + BAD_SIGNATURE_PER_100) {
      this.report.badSignatures++;
      const signature = request.signature.slice();
      signature[0] = signature[0]! ^ 0x01;
      return encodeClientFrame({ type: 'request', request: { ...request, signature } });
    }
    this.report.freshKeyRequests++;
    return encodeClientFrame({ type: 'request', request });
  }
}
