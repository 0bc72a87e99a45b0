/**
 * A small deterministic harness for the pure PBFT replica: n replicas with fixed keys, a ledger and
 * a durable store each, and an in-memory bus whose delivery the test controls (deliver all, drop,
 * hold back, deliver selectively). Every message a replica receives goes through the same
 * signature check as the real edge (verify.ts), so tests can only feed validly signed messages.
 */
import { createSigner, createVerifier, publicKeyFromSeed, sha256 } from '../../../src/crypto/index.ts';
import type { Signer } from '../../../src/crypto/types.ts';
import type { Genesis } from '../../../src/ledger/genesis.ts';
import { decodeResult, encodeOperation, Ledger, type OperationResult } from '../../../src/ledger/index.ts';
import { batchDigest } from '../../../src/protocol/certificates.ts';
import { type ProtocolConfig, primaryOf, type Quorums, quorums } from '../../../src/protocol/config.ts';
import {
  applyPersistOps,
  type DurableState,
  emptyDurableState,
  type LogMessage,
  logMessageSeq,
  logMessageView,
} from '../../../src/protocol/durable.ts';
import {
  type Body,
  type CheckpointBody,
  type CommitBody,
  type Message,
  type PrePrepareBody,
  type PrepareBody,
  type PreparedCertificate,
  type RequestBody,
  type Signed,
  signBody,
  type ViewChangeBody,
} from '../../../src/protocol/messages.ts';
import type {
  ClientReply,
  ExecutedBatch,
  Ready,
  ReplicaEvent,
  ReplicaOptions,
} from '../../../src/protocol/replica.ts';
import { Replica } from '../../../src/protocol/replica.ts';
import { verifyMessageSignatures } from '../../../src/protocol/verify.ts';
import { bytesEqual } from '../../../src/util/bytes.ts';

export const TEST_PROTOCOL: Omit<ProtocolConfig, 'replicaCount'> = {
  checkpointInterval: 4,
  watermarkWindow: 8,
  batchSizeMax: 4,
  batchBytesMax: 64 * 1024,
  pipelineDepthMax: 4,
  viewChangeTimeoutTicks: 5,
  viewChangeTimeoutMaxTicks: 40,
  retransmitIntervalTicks: 3,
  pendingRequestsMax: 100,
  clientTableMax: 100,
};

export const CLIENT_BALANCE = 1_000;

/** One message on the bus. */
export interface Envelope {
  from: number;
  to: number;
  message: Message;
}

export type EnvelopeFilter = (envelope: Envelope) => boolean;

export interface Client {
  index: number;
  signer: Signer;
  publicKey: Uint8Array;
  /** Last request number used by `request()`. */
  t: number;
}

export interface ClusterOptions {
  n?: number;
  clients?: number;
  /** How many of the last clients genesis leaves out: keys without an account (default 0). */
  strangers?: number;
  config?: Partial<Omit<ProtocolConfig, 'replicaCount'>>;
}

export function replicaSeed(id: number): Uint8Array {
  return new Uint8Array(32).fill(id + 1);
}

export function clientSeed(index: number): Uint8Array {
  return new Uint8Array(32).fill(0xc0 + index);
}

/** The sequence number of an ordering message (pre-prepare, prepare, commit), else undefined. */
export function seqOf(message: Message): number | undefined {
  if (message.type === 'checkpoint') return message.checkpoint.body.seq;
  return isLogMessage(message) ? logMessageSeq(message) : undefined;
}

/** The view of an ordering message, else undefined. */
export function viewOf(message: Message): number | undefined {
  return isLogMessage(message) ? logMessageView(message) : undefined;
}

function isLogMessage(message: Message): message is LogMessage {
  return message.type === 'pre-prepare' || message.type === 'prepare' || message.type === 'commit';
}

export function isType<T extends Message['type']>(type: T): EnvelopeFilter {
  return (envelope) => envelope.message.type === type;
}

/** Sent messages of one type in a Ready, with their destinations. */
export function sentOfType<T extends Message['type']>(
  ready: Ready,
  type: T,
): Array<{ to: number | 'all'; message: Extract<Message, { type: T }> }> {
  return ready.send
    .filter((outbound) => outbound.message.type === type)
    .map((outbound) => ({ to: outbound.to, message: outbound.message as Extract<Message, { type: T }> }));
}

export function rejections(ready: Ready): string[] {
  return ready.events.flatMap((event) =>
    event.type === 'message-rejected' ? [`${event.messageType}:${event.reason}`] : [],
  );
}

export class Cluster {
  readonly n: number;
  readonly q: Quorums;
  readonly config: ProtocolConfig;
  readonly genesis: Genesis;
  readonly replicaSigners: Signer[];
  readonly replicaKeys: Uint8Array[];
  readonly clients: Client[];
  readonly replicas: Replica[] = [];
  readonly ledgers: Ledger[] = [];
  readonly storage: DurableState[];
  /** Undelivered messages, in send order. */
  queue: Envelope[] = [];
  /** Every message any replica sent (one entry per destination), in order. */
  readonly sent: Envelope[] = [];
  /** Everything delivered (after the signature check), in order. */
  readonly delivered: Envelope[] = [];
  /** Per replica, every batch it executed, in order (kept across restarts). */
  readonly executed: ExecutedBatch[][];
  readonly replies: ClientReply[][];
  readonly events: ReplicaEvent[][];
  readonly crashed = new Set<number>();
  private readonly verifier = createVerifier('native');

  constructor(options: ClusterOptions = {}) {
    this.n = options.n ?? 4;
    this.q = quorums(this.n);
    this.config = { replicaCount: this.n, ...TEST_PROTOCOL, ...options.config };
    this.replicaSigners = Array.from({ length: this.n }, (_, id) => createSigner(replicaSeed(id)));
    this.replicaKeys = Array.from({ length: this.n }, (_, id) => publicKeyFromSeed(replicaSeed(id)));
    this.clients = Array.from({ length: options.clients ?? 4 }, (_, index) => {
      const signer = createSigner(clientSeed(index));
      return { index, signer, publicKey: signer.publicKey, t: 0 };
    });
    this.genesis = {
      accounts: this.clients
        .slice(0, this.clients.length - (options.strangers ?? 0))
        .map((client) => ({ address: client.publicKey, balance: CLIENT_BALANCE })),
    };
    this.storage = Array.from({ length: this.n }, () => emptyDurableState());
    this.executed = Array.from({ length: this.n }, () => []);
    this.replies = Array.from({ length: this.n }, () => []);
    this.events = Array.from({ length: this.n }, () => []);
    for (let id = 0; id < this.n; id++) {
      this.ledgers.push(Ledger.fromGenesis(this.genesis));
      this.replicas.push(this.makeReplica(id, undefined));
    }
  }

  private makeReplica(id: number, durable: DurableState | undefined, recovering = false): Replica {
    const signer = this.replicaSigners[id]!;
    const options: ReplicaOptions = {
      id,
      config: this.config,
      sign: (bytes) => signer.sign(bytes),
      sha256,
      stateMachine: this.ledgers[id]!,
    };
    if (durable !== undefined) options.durable = durable;
    if (recovering) options.recovering = true;
    return new Replica(options);
  }

  replica(id: number): Replica {
    return this.replicas[id]!;
  }

  /** Call start() on every replica and apply the results. */
  start(): this {
    for (let id = 0; id < this.n; id++) this.apply(id, this.replica(id).start());
    return this;
  }

  /** The runtime's job, in the Ready order: persist, then send (onto the bus), then record. */
  apply(id: number, ready: Ready): Ready {
    applyPersistOps(this.storage[id]!, ready.persist);
    for (const outbound of ready.send) {
      const targets =
        outbound.to === 'all' ? [...Array(this.n).keys()].filter((other) => other !== id) : [outbound.to];
      for (const to of targets) {
        const envelope = { from: id, to, message: outbound.message };
        this.sent.push(envelope);
        this.queue.push(envelope);
      }
    }
    this.executed[id]!.push(...ready.executed);
    this.replies[id]!.push(...ready.replies);
    this.events[id]!.push(...ready.events);
    return ready;
  }

  /** Hand one message to a replica through the signature-checking edge; throws on a bad signature. */
  step(to: number, message: Message): Ready {
    const rejection = verifyMessageSignatures(message, {
      verifier: this.verifier,
      replicaKeys: this.replicaKeys,
    });
    if (rejection !== null) throw new Error(`test fed a message with ${rejection}`);
    return this.apply(to, this.replica(to).step(message));
  }

  tick(id: number): Ready {
    return this.apply(id, this.replica(id).tick());
  }

  /** Tick every running replica `k` times, in id order within each round. */
  tickAll(k = 1): void {
    for (let round = 0; round < k; round++) {
      for (let id = 0; id < this.n; id++) if (!this.crashed.has(id)) this.tick(id);
    }
  }

  /** Remove queued messages matching `filter` (lost on the network); returns them. */
  drop(filter: EnvelopeFilter): Envelope[] {
    const dropped = this.queue.filter(filter);
    this.queue = this.queue.filter((envelope) => !filter(envelope));
    return dropped;
  }

  /** Queued messages matching `filter`, without delivering them. */
  peek(filter: EnvelopeFilter = () => true): Envelope[] {
    return this.queue.filter(filter);
  }

  private deliverEnvelope(envelope: Envelope): void {
    if (this.crashed.has(envelope.to)) return;
    this.delivered.push(envelope);
    this.step(envelope.to, envelope.message);
  }

  /**
   * Deliver queued messages (and whatever they cause) until nothing deliverable is left.
   * `drop`: matching messages are lost. `hold`: matching messages stay queued, undelivered.
   * Returns the number of messages delivered.
   */
  deliverAll(options: { drop?: EnvelopeFilter; hold?: EnvelopeFilter; max?: number } = {}): number {
    const max = options.max ?? 100_000;
    const held: Envelope[] = [];
    let count = 0;
    while (this.queue.length > 0) {
      const envelope = this.queue.shift()!;
      if (options.drop?.(envelope)) continue;
      if (options.hold?.(envelope)) {
        held.push(envelope);
        continue;
      }
      if (++count > max) throw new Error(`more than ${max} deliveries: the cluster does not quiesce`);
      this.deliverEnvelope(envelope);
    }
    this.queue = held;
    return count;
  }

  /** Deliver only the currently queued messages matching `filter` (one pass); others stay queued. */
  deliverWhere(filter: EnvelopeFilter): Envelope[] {
    const chosen = this.queue.filter(filter);
    this.queue = this.queue.filter((envelope) => !filter(envelope));
    for (const envelope of chosen) this.deliverEnvelope(envelope);
    return chosen;
  }

  /** Lose a replica's volatile state; its storage survives. Messages to it are lost while down. */
  crash(id: number): void {
    this.crashed.add(id);
    this.queue = this.queue.filter((envelope) => envelope.to !== id);
  }

  /**
   * Rebuild a crashed replica from its storage only (fresh genesis ledger), and call start().
   * `lostStorage`: its storage was found damaged or missing and replaced by an empty one, so it
   * starts recovering.
   */
  restart(id: number, options: { lostStorage?: boolean } = {}): Ready {
    this.crashed.delete(id);
    this.ledgers[id] = Ledger.fromGenesis(this.genesis);
    if (options.lostStorage === true) this.storage[id] = emptyDurableState();
    // Storage hands back a copy, as a disk would: the replica must not share memory with it.
    this.replicas[id] = this.makeReplica(
      id,
      structuredClone(this.storage[id]!),
      options.lostStorage === true,
    );
    return this.apply(id, this.replica(id).start());
  }

  // -------------------------------------------------------------------------------------------
  // Clients.

  /** A signed transfer request from client `index` (next t unless given). */
  request(index: number, options: { to?: number; amount?: number; t?: number } = {}): Signed<RequestBody> {
    const client = this.clients[index]!;
    const t = options.t ?? client.t + 1;
    client.t = Math.max(client.t, t);
    const to = this.clients[options.to ?? (index + 1) % this.clients.length]!.publicKey;
    const op = encodeOperation({ type: 'transfer', to, amount: options.amount ?? 1 });
    return signBody<RequestBody>({ type: 'request', client: client.publicKey, t, op }, (bytes) =>
      client.signer.sign(bytes),
    );
  }

  /** A client sends a request to one replica, several, or all (as on a retransmission). */
  submit(request: Signed<RequestBody>, to: number | number[] | 'all' = this.primaryId()): Ready[] {
    const targets = to === 'all' ? [...Array(this.n).keys()] : Array.isArray(to) ? to : [to];
    return targets
      .filter((id) => !this.crashed.has(id))
      .map((id) => this.step(id, { type: 'request', request }));
  }

  /** Submit a new request from `index` to the primary and run the cluster until it quiesces. */
  run(index: number, options: { amount?: number; to?: number } = {}): Signed<RequestBody> {
    const request = this.request(index, options);
    this.submit(request);
    this.deliverAll();
    return request;
  }

  primaryId(): number {
    const running = this.replicas.find((_, id) => !this.crashed.has(id))!;
    return primaryOf(running.currentView, this.n);
  }

  /** Decoded replies a replica delivered to `client` for request number t. */
  repliesFor(replica: number, request: Signed<RequestBody>): OperationResult[] {
    return this.replies[replica]!.filter(
      (reply) => reply.reply.t === request.body.t && bytesEqual(reply.client, request.body.client),
    ).map((reply) => decodeResult(reply.reply.result));
  }

  executedSeqs(replica: number): number[] {
    return this.executed[replica]!.map((batch) => batch.seq);
  }

  // -------------------------------------------------------------------------------------------
  // Forging validly signed replica messages (a Byzantine replica's, or a test's own).

  signAs<B extends Body>(replica: number, body: B): Signed<B> {
    const signer = this.replicaSigners[replica]!;
    return signBody(body, (bytes) => signer.sign(bytes));
  }

  prePrepare(
    replica: number,
    view: number,
    seq: number,
    batch: Signed<RequestBody>[],
    digest: Uint8Array = batchDigest(batch, sha256),
  ): Extract<Message, { type: 'pre-prepare' }> {
    const prePrepare = this.signAs<PrePrepareBody>(replica, {
      type: 'pre-prepare',
      view,
      seq,
      digest,
      replica,
    });
    return { type: 'pre-prepare', prePrepare, batch };
  }

  prepare(
    replica: number,
    view: number,
    seq: number,
    digest: Uint8Array,
  ): Extract<Message, { type: 'prepare' }> {
    return {
      type: 'prepare',
      prepare: this.signAs<PrepareBody>(replica, { type: 'prepare', view, seq, digest, replica }),
    };
  }

  commit(
    replica: number,
    view: number,
    seq: number,
    digest: Uint8Array,
  ): Extract<Message, { type: 'commit' }> {
    return {
      type: 'commit',
      commit: this.signAs<CommitBody>(replica, { type: 'commit', view, seq, digest, replica }),
    };
  }

  checkpoint(
    replica: number,
    seq: number,
    stateDigest: Uint8Array,
  ): Extract<Message, { type: 'checkpoint' }> {
    return {
      type: 'checkpoint',
      checkpoint: this.signAs<CheckpointBody>(replica, { type: 'checkpoint', seq, stateDigest, replica }),
    };
  }

  /** A prepared certificate for (view, seq, batch): the primary's PRE-PREPARE and 2f backups' PREPAREs. */
  preparedCertificate(view: number, seq: number, batch: Signed<RequestBody>[]): PreparedCertificate {
    const primary = primaryOf(view, this.n);
    const { prePrepare } = this.prePrepare(primary, view, seq, batch);
    const backups = [...Array(this.n).keys()].filter((id) => id !== primary).slice(0, 2 * this.q.f);
    return {
      prePrepare,
      prepares: backups.map((id) => this.prepare(id, view, seq, prePrepare.body.digest).prepare),
    };
  }

  viewChange(
    replica: number,
    newView: number,
    options: {
      stableSeq?: number;
      checkpointProof?: Signed<CheckpointBody>[];
      prepared?: PreparedCertificate[];
    } = {},
  ): Signed<ViewChangeBody> {
    return this.signAs<ViewChangeBody>(replica, {
      type: 'view-change',
      newView,
      stableSeq: options.stableSeq ?? 0,
      checkpointProof: options.checkpointProof ?? [],
      prepared: options.prepared ?? [],
      replica,
    });
  }
}

/** A request sent to every replica; PRE-PREPARE and PREPAREs delivered; every COMMIT lost. */
export function preparedButNotCommitted(cluster: Cluster): Signed<RequestBody> {
  const request = cluster.request(0, { amount: 10 });
  cluster.submit(request, 'all');
  cluster.deliverAll({ drop: isType('commit') });
  for (const replica of cluster.replicas) {
    if (replica.lastExecutedSeq !== 0) throw new Error('setup: nothing may execute yet');
  }
  return request;
}

/**
 * Replica 0, view 0's primary, is faulty (crashed here; the test speaks for it): for seq 1 it
 * pre-prepares request a at replicas 1 and 2 and request b at replica 3; both requests reached
 * every backup. Everything sent is delivered; nothing can execute.
 */
export function primaryEquivocatesAtSeqOne(cluster: Cluster): {
  a: Signed<RequestBody>;
  b: Signed<RequestBody>;
} {
  const a = cluster.request(0);
  const b = cluster.request(1);
  cluster.crash(0);
  cluster.submit(a, [1, 2, 3]);
  cluster.submit(b, [1, 2, 3]);
  cluster.step(1, cluster.prePrepare(0, 0, 1, [a]));
  cluster.step(2, cluster.prePrepare(0, 0, 1, [a]));
  cluster.step(3, cluster.prePrepare(0, 0, 1, [b]));
  cluster.deliverAll();
  return { a, b };
}

/** COMMITs of view 0 are lost. */
export const dropViewZeroCommits: EnvelopeFilter = (e) =>
  e.message.type === 'commit' && viewOf(e.message) === 0;

export { batchDigest, sha256 };
