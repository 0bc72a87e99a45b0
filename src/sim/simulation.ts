/**
 * Deterministic discrete-event simulation of a pbft cluster (after TigerBeetle's VOPR).
 *
 * One seed drives everything: keys, genesis, network faults, crashes, partitions, which replicas lie
 * and how, and what clients send. Real protocol cores, the real ledger, the real codec and real
 * ed25519 run inside; only time and the network are simulated. A safety phase under faults is
 * followed by a liveness phase that heals the network and restarts crashed replicas, after which
 * every client request must complete. Checkers watch every step.
 */

import {
  BYZANTINE_BEHAVIOURS,
  type ByzantineBehaviour,
  type ByzantineContext,
  type ByzantineStrategy,
  type ClientAnswer,
  createStrategy,
  type Payload,
} from '../byzantine/strategies.ts';
import { FRAME_SIZE_MAX_BYTES } from '../codec/cbor.ts';
import { sha256 } from '../crypto/index.ts';
import type { Signer } from '../crypto/types.ts';
import type { Genesis } from '../ledger/genesis.ts';
import { encodeOperation, genesisSupply, Ledger } from '../ledger/index.ts';
import {
  CLIENT_FRAME_SIZE_MAX_BYTES,
  decodeClientToReplica,
  decodeReplicaToClient,
  encodeClientFrame,
  type QueryResultFrame,
  type ReplicaToClient,
  type RequestErrorFrame,
  type RequestErrorReason,
  vouchedFloor,
} from '../protocol/client-protocol.ts';
import { type ProtocolConfig, primaryOf, quorums } from '../protocol/config.ts';
import {
  applyPersistOps,
  type DurableState,
  emptyDurableState,
  type PersistOp,
} from '../protocol/durable.ts';
import {
  decodeMessage,
  encodeMessage,
  type Message,
  OPERATION_SIZE_MAX_BYTES,
  type RequestBody,
  type Signed,
  signBody,
} from '../protocol/messages.ts';
import { type Ready, Replica } from '../protocol/replica.ts';
import { type VerifiedSignatureCache, verifyMessageSignatures } from '../protocol/verify.ts';
import { InvariantError } from '../util/assert.ts';
import { bytesEqual, toHex } from '../util/bytes.ts';
import { Random } from '../util/random.ts';
import { InvariantCheckers, type Violation } from './checkers.ts';
import { EventQueue } from './event-queue.ts';
import { type NetworkFaults, type NodeId, PacketNetwork } from './network.ts';
import { type SignatureScheme, type SimulationCrypto, signatureScheme } from './sim-crypto.ts';

/** Virtual milliseconds per protocol tick. */
export const TICK_MS = 10;

/** Protocol parameters for simulation: small windows so checkpoints, GC and watermarks all happen. */
export const SIMULATION_PROTOCOL: Omit<ProtocolConfig, 'replicaCount'> = {
  checkpointInterval: 8,
  watermarkWindow: 32,
  batchSizeMax: 8,
  batchBytesMax: 64 * 1024,
  pipelineDepthMax: 8,
  viewChangeTimeoutTicks: 40,
  viewChangeTimeoutMaxTicks: 640,
  retransmitIntervalTicks: 15,
  pendingRequestsMax: 1000,
  clientTableMax: 1000,
};

export interface SimulationOptions {
  seed: number;
  replicas: number;
  /** Byzantine replicas (at most f). */
  byzantine: number;
  /** Restrict lying replicas to these behaviours (default: the whole catalogue). */
  behaviours?: readonly ByzantineBehaviour[];
  clients?: number;
  requestsPerClient?: number;
  /**
   * Chance (0-1) that a client reads a balance before its next transfer (default 0.3): a query to
   * every replica needing 2f+1 matching answers from replicas at or past the client's last write,
   * else an ordered read, as PbftClient.balance does. Reads are not counted in `requestsPerClient`.
   */
  readShare?: number;
  /**
   * Matching votes a client accepts (default f+1 replies, 2f+1 query answers). Only tests lower
   * them: a client that trusts too few replicas must be caught by the checkers.
   */
  clientVotes?: { reply?: number; read?: number };
  safetyPhaseMs?: number;
  /** How long the healed cluster gets to complete every request. */
  livenessPhaseMs?: number;
  /** Random crashes, partitions, loss and duplication in the safety phase (default true). */
  faults?: boolean;
  /** Which replicas lie (default: `byzantine` replicas drawn from the seed). */
  byzantineReplicas?: readonly number[];
  /**
   * With byzantineReplicas, the behaviour of each, in the same order (default: drawn from
   * `behaviours`). The draw is made either way, so the rest of the run comes from the same seed.
   */
  liarBehaviours?: readonly ByzantineBehaviour[];
  /**
   * A control run: the liars are drawn from the seed as usual (the same keys, schedule and random
   * streams) but run their honest cores, so a test can tell what the lie alone changed.
   */
  liarsHonest?: boolean;
  /** Scripted crashes of correct replicas, in addition to any random ones. */
  crashes?: ReadonlyArray<{ replica: number; atMs: number; downMs: number }>;
  /** Real ed25519, or keyed-hash stand-ins for fast sweeps (default 'simulated'). */
  crypto?: SimulationCrypto;
  /** Observe every replica's persist operations (storage conformance tests replay them). */
  onPersist?: (replica: number, ops: readonly PersistOp[]) => void;
  /** Protocol settings over SIMULATION_PROTOCOL (e.g. the shipped DEFAULT_CLUSTER_PROTOCOL). */
  protocol?: Partial<Omit<ProtocolConfig, 'replicaCount'>>;
  /**
   * Share of requests (0-1) whose operation is OPERATION_SIZE_MAX_BYTES of junk: the largest a
   * client may send. The ledger rejects it, identically everywhere; it still fills batches, and so
   * every message that carries or certifies them, to their largest.
   */
  largeOperationShare?: number;
  /** The transport's frame limit between replicas (default FRAME_SIZE_MAX_BYTES, the real one). */
  frameSizeMaxBytes?: number;
}

export interface SimulationResult {
  seed: number;
  replicas: number;
  byzantine: Array<{ replica: number; behaviour: ByzantineBehaviour }>;
  violations: Violation[];
  /** Client requests that completed with f+1 matching replies. */
  committed: number;
  requested: number;
  /** Highest sequence number executed by a correct replica. */
  executedSeq: number;
  /** View changes completed (highest view entered by a correct replica). */
  viewChanges: number;
  crashes: number;
  partitions: number;
  stateTransfers: number;
  messagesSent: number;
  messagesDropped: number;
  /**
   * When the run ended with correct replicas at different sequence numbers or states (every client
   * done), each replica's view/status/executed/low watermark (also a liveness violation); null when
   * they all agree.
   */
  laggards: string | null;
  /** The largest frame any replica sent, in bytes. */
  largestFrameBytes: number;
  /** Frames dropped for exceeding the transport's limit (as the real transport drops them). */
  oversizedFrames: number;
  /** Messages correct replicas rejected, by reason (edge: undecodable / bad-signature; core: rule). */
  rejections: Record<string, number>;
  /**
   * Requests that f+1 replicas refused, by reason, as the client saw it ('stale-request' includes
   * a new account's first request, which the client then signs again above its floor).
   */
  requestRefusals: Record<string, number>;
  /**
   * Balance reads completed: on 2f+1 matching query answers, or through the ordered fallback; and
   * query answers clients set aside because they came from before the client's last write.
   */
  reads: { query: number; ordered: number; behindWrites: number };
  /** What liars told clients, in replies and query answers, and what became of it. */
  clientLies: {
    /** Answers a liar sent that differ from what its honest core computed. */
    forged: number;
    /** Answers its honest core computed that a liar did not send. */
    withheld: number;
    /** Answers from liars that a client received and outvoted: they differ from what it accepted. */
    outvoted: number;
  };
  /** The same rejections (those of delivered messages, not of ticks) by the replica that sent them. */
  rejectionsBySender: RejectionCount[];
  /** Liars that were the primary of a view they were in (view 0 included): they lied as primary. */
  byzantinePrimaries: number[];
  /**
   * A tap on the wire, not a replica's judgement: per network sender, the PREPAREs and COMMITs
   * delivered to correct replicas for a (view, seq, digest) that no PRE-PREPARE or NEW-VIEW ever
   * proposed, and the CHECKPOINTs delivered to them whose state digest is not the one correct
   * replicas took at that sequence number. Correct replicas send neither.
   */
  unbackedVotes: Record<number, number>;
  falseCheckpoints: Record<number, number>;
  virtualTimeMs: number;
}

export interface RejectionCount {
  /** The network sender (the link authenticates it), not necessarily the message's signer. */
  from: number;
  messageType: string;
  reason: string;
  /** The top-level message was signed by a replica other than `from` (relayed or replayed). */
  relayed: boolean;
  count: number;
}

/** CHECKPOINTs the tap keeps to judge at the end (their seq not yet taken by a correct replica). */
const TAPPED_CHECKPOINTS_MAX = 10_000;

const CLIENT_TIMEOUT_MS = 400;
const CLIENT_TIMEOUT_MAX_MS = 3000;
const CLIENT_BALANCE = 1_000;
/** Pause between a client's requests, so load spreads over the safety phase and its faults. */
const CLIENT_THINK_MAX_MS = 300;
/** How long a client waits for 2f+1 matching query answers before it orders the read instead. */
const QUERY_TIMEOUT_MS = 400;
const VERIFIED_CACHE_MAX = 200_000;

type SimEvent =
  | { type: 'deliver'; from: NodeId; to: NodeId; bytes: Uint8Array }
  | { type: 'tick'; replica: number }
  | { type: 'client-send'; client: number }
  | { type: 'client-timeout'; client: number; t: number }
  | { type: 'query-timeout'; client: number; id: number }
  | { type: 'crash'; replica: number }
  | { type: 'restart'; replica: number }
  | { type: 'partition' }
  | { type: 'heal-partition' }
  | { type: 'liveness-phase' };

interface SimReplica {
  id: number;
  seed: Uint8Array;
  signer: Signer;
  core: Replica | null;
  ledger: Ledger;
  storage: DurableState;
  strategy: ByzantineStrategy | null;
  random: Random;
}

interface SimClient {
  index: number;
  node: NodeId;
  signer: Signer;
  t: number;
  remaining: number;
  /** `read`: an ordered balance read (the fallback of a query), not one of the transfers. */
  current: {
    request: Signed<RequestBody>;
    replies: Map<number, string>;
    /** Per replica, its request-error for this t: the reason and the floor it reported. */
    refusals: Map<number, { reason: RequestErrorReason; floor: number }>;
    timeoutMs: number;
    read: boolean;
  } | null;
  believedView: number;
  /** A balance query waiting for answers: per replica its answer, or null if it lagged the client. */
  query: { id: number; op: Uint8Array; answers: Map<number, string | null> } | null;
  /** The highest sequence number at which a request of this client committed (read-your-writes). */
  seenSeq: number;
}

/** The network sender of a delivered message, for rejections counted per sender. */
interface DeliveredFrom {
  from: NodeId;
  message: Message;
}

/** The replica that signed a message at its top level (requests, replies and BATCHes have none). */
function signerOf(message: Message): number | undefined {
  switch (message.type) {
    case 'pre-prepare':
      return message.prePrepare.body.replica;
    case 'prepare':
      return message.prepare.body.replica;
    case 'commit':
      return message.commit.body.replica;
    case 'checkpoint':
      return message.checkpoint.body.replica;
    case 'view-change':
      return message.viewChange.body.replica;
    case 'new-view':
      return message.newView.body.replica;
    case 'fetch-state':
      return message.fetchState.body.replica;
    case 'fetch-batch':
      return message.fetchBatch.body.replica;
    case 'state':
      return message.state.body.replica;
    default:
      return undefined;
  }
}

function slotKey(body: { view: number; seq: number; digest: Uint8Array }): string {
  return `${body.view}:${body.seq}:${toHex(body.digest)}`;
}

/** A bounded set: the simulator shares one verification cache among replicas to save CPU. */
class BoundedSet implements VerifiedSignatureCache {
  private readonly items = new Set<string>();
  has(key: string): boolean {
    return this.items.has(key);
  }
  add(key: string): void {
    if (this.items.size >= VERIFIED_CACHE_MAX) this.items.clear();
    this.items.add(key);
  }
}

export function runSimulation(options: SimulationOptions): SimulationResult {
  return new Simulation(options).run();
}

class Simulation {
  private readonly options: Required<
    Omit<
      SimulationOptions,
      | 'behaviours'
      | 'byzantineReplicas'
      | 'liarBehaviours'
      | 'crashes'
      | 'onPersist'
      | 'protocol'
      | 'liarsHonest'
      | 'clientVotes'
    >
  > & {
    protocol: Partial<Omit<ProtocolConfig, 'replicaCount'>>;
    onPersist?: (replica: number, ops: readonly PersistOp[]) => void;
    behaviours: readonly ByzantineBehaviour[];
    byzantineReplicas?: readonly number[];
    crashes: ReadonlyArray<{ replica: number; atMs: number; downMs: number }>;
  };
  /** Matching votes a client needs: f+1 replies, 2f+1 query answers (unless a test lowers them). */
  private readonly votesNeeded: { reply: number; read: number };
  private readonly rejections: Record<string, number> = {};
  private readonly refusals: Record<string, number> = {};
  private readonly rejectionsBySender = new Map<string, RejectionCount>();
  private readonly byzantinePrimaries = new Set<number>();
  /** slotKey of every PRE-PREPARE any replica sent, alone or inside a NEW-VIEW. */
  private readonly proposed = new Set<string>();
  /** seq → state digest (hex) correct replicas took there. */
  private readonly correctCheckpoints = new Map<number, string>();
  private readonly tappedCheckpoints: Array<{ from: NodeId; seq: number; digest: string }> = [];
  private readonly unbackedVotes: Record<number, number> = {};
  private readonly random: Random;
  private readonly faultRandom: Random;
  private readonly clientRandom: Random;
  private readonly network: PacketNetwork;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly config: ProtocolConfig;
  private readonly f: number;
  private readonly replicas: SimReplica[] = [];
  private readonly clients: SimClient[] = [];
  private readonly clientByKey = new Map<string, SimClient>();
  private readonly genesis: Genesis;
  private readonly checkers: InvariantCheckers;
  private readonly scheme: SignatureScheme;
  private readonly verifiedCache = new BoundedSet();
  /** Decoded form of each wire buffer: a broadcast is decoded once, not once per receiver. */
  private readonly decoded = new WeakMap<Uint8Array, Message | null>();
  private readonly replicaKeys: Uint8Array[];
  private nowMs = 0;
  private inLivenessPhase = false;
  private crashes = 0;
  private partitions = 0;
  private stateTransfers = 0;
  private highestView = 0;
  private largestFrameBytes = 0;
  private oversizedFrames = 0;
  private queriesIssued = 0;
  private readonly reads = { query: 0, ordered: 0, behindWrites: 0 };
  private readonly clientLies = { forged: 0, withheld: 0, outvoted: 0 };
  private readonly safetyFaults: NetworkFaults;

  constructor(options: SimulationOptions) {
    this.options = {
      clients: 3,
      requestsPerClient: 12,
      readShare: 0.3,
      safetyPhaseMs: 6_000,
      livenessPhaseMs: 60_000,
      faults: true,
      behaviours: BYZANTINE_BEHAVIOURS,
      crashes: [],
      crypto: 'simulated',
      protocol: {},
      largeOperationShare: 0,
      frameSizeMaxBytes: FRAME_SIZE_MAX_BYTES,
      ...options,
    };
    this.scheme = signatureScheme(this.options.crypto);
    const { replicas: n, byzantine } = this.options;
    this.f = quorums(n).f;
    this.votesNeeded = { reply: this.f + 1, read: 2 * this.f + 1, ...options.clientVotes };
    if (byzantine > this.f) throw new RangeError(`at most f = ${this.f} of ${n} replicas may be Byzantine`);
    this.config = { replicaCount: n, ...SIMULATION_PROTOCOL, ...this.options.protocol };
    this.random = new Random(options.seed);
    this.faultRandom = this.random.fork();
    this.clientRandom = this.random.fork();
    const networkRandom = this.random.fork();

    this.safetyFaults = this.options.faults
      ? {
          dropProbability: this.random.int(0, 8) / 100,
          duplicateProbability: this.random.int(0, 5) / 100,
          delayMinMs: 1,
          delayMaxMs: this.random.int(5, 60),
        }
      : { dropProbability: 0, duplicateProbability: 0, delayMinMs: 1, delayMaxMs: 10 };
    this.network = new PacketNetwork(networkRandom, this.safetyFaults);

    const liars = new Map<number, ByzantineBehaviour>();
    const liarIds =
      this.options.byzantineReplicas ?? this.random.shuffle([...Array(n).keys()]).slice(0, byzantine);
    if (
      liarIds.length !== byzantine ||
      new Set(liarIds).size !== byzantine ||
      liarIds.some((id) => id < 0 || id >= n)
    ) {
      throw new RangeError(`byzantineReplicas must list ${byzantine} distinct replica ids below ${n}`);
    }
    const given = options.liarBehaviours;
    if (given !== undefined && (options.byzantineReplicas === undefined || given.length !== byzantine))
      throw new RangeError(`liarBehaviours needs byzantineReplicas and one behaviour per liar`);
    for (const [index, id] of liarIds.entries()) {
      const drawn = this.random.pick(this.options.behaviours);
      liars.set(id, given?.[index] ?? drawn);
    }

    const seeds = Array.from({ length: n }, () => this.random.bytes(32));
    this.replicaKeys = seeds.map((seed) => this.scheme.publicKey(seed));

    for (let index = 0; index < this.options.clients; index++) {
      const signer = this.scheme.signer(this.random.bytes(32));
      const client: SimClient = {
        index,
        node: n + index,
        signer,
        t: 0,
        remaining: this.options.requestsPerClient,
        current: null,
        believedView: 0,
        query: null,
        seenSeq: 0,
      };
      this.clients.push(client);
      this.clientByKey.set(toHex(signer.publicKey), client);
    }
    // The last client is deliberately absent from genesis: its transfers are rejected (unknown sender).
    this.genesis = {
      accounts: this.clients
        .slice(0, Math.max(1, this.clients.length - 1))
        .map((client) => ({ address: client.signer.publicKey, balance: CLIENT_BALANCE })),
    };
    this.checkers = new InvariantCheckers(
      genesisSupply(this.genesis),
      this.genesis.accounts.map((account) => account.address),
    );

    seeds.forEach((seed, id) => {
      const behaviour = liars.get(id);
      const replica: SimReplica = {
        id,
        seed,
        signer: this.scheme.signer(seed),
        core: null,
        ledger: Ledger.fromGenesis(this.genesis),
        storage: emptyDurableState(),
        strategy: behaviour === undefined || options.liarsHonest ? null : createStrategy(behaviour),
        random: this.random.fork(),
      };
      this.replicas.push(replica);
    });
  }

  run(): SimulationResult {
    const primaryOfView0 = this.replicas[primaryOf(0, this.options.replicas)]!;
    if (!this.isCorrect(primaryOfView0)) this.byzantinePrimaries.add(primaryOfView0.id);
    for (const replica of this.replicas) this.boot(replica);
    for (const replica of this.replicas)
      this.queue.push(this.random.int(1, TICK_MS), { type: 'tick', replica: replica.id });
    for (const client of this.clients) {
      this.queue.push(this.clientRandom.int(0, 50), { type: 'client-send', client: client.index });
    }
    if (this.options.faults) this.scheduleFaults();
    for (const { replica, atMs, downMs } of this.options.crashes) {
      this.queue.push(atMs, { type: 'crash', replica });
      this.queue.push(atMs + downMs, { type: 'restart', replica });
    }
    this.queue.push(this.options.safetyPhaseMs, { type: 'liveness-phase' });
    const endMs = this.options.safetyPhaseMs + this.options.livenessPhaseMs;

    for (;;) {
      const next = this.queue.pop();
      if (next === undefined || next.atMs > endMs) break;
      this.nowMs = next.atMs;
      this.handle(next.event);
      if (this.inLivenessPhase && this.allClientsDone() && this.correctReplicasAgree()) break;
    }
    // Clients are satisfied by f+1 replies, so a correct replica left behind (stuck in a view, never
    // caught up) passes the client checks: by the end every correct replica must have executed as
    // far as the others and hold the same ledger.
    const laggards = this.allClientsDone() && !this.correctReplicasAgree() ? this.describeReplicas() : null;
    if (laggards !== null) {
      this.checkers.violate(
        'liveness',
        `correct replicas did not converge ${this.options.livenessPhaseMs} ms after healing: ${laggards}`,
      );
    }
    if (!this.allClientsDone()) {
      const stuck = this.clients.filter(
        (client) => client.remaining > 0 || client.current !== null || client.query !== null,
      );
      const replicas = this.describeReplicas();
      this.checkers.violate(
        'liveness',
        `${stuck.length} client(s) still waiting ${this.options.livenessPhaseMs} ms after healing; replicas ${replicas}`,
      );
    }
    return {
      seed: this.options.seed,
      replicas: this.options.replicas,
      byzantine: this.replicas
        .filter((replica) => replica.strategy !== null)
        .map((replica) => ({ replica: replica.id, behaviour: replica.strategy!.behaviour })),
      violations: this.checkers.violations,
      committed: this.clients.reduce(
        (sum, client) => sum + (this.options.requestsPerClient - client.remaining) - (client.current ? 1 : 0),
        0,
      ),
      requested: this.options.clients * this.options.requestsPerClient,
      executedSeq: this.checkers.highestAgreedSeq,
      viewChanges: this.highestView,
      crashes: this.crashes,
      partitions: this.partitions,
      stateTransfers: this.stateTransfers,
      messagesSent: this.network.sent,
      messagesDropped: this.network.dropped,
      largestFrameBytes: this.largestFrameBytes,
      oversizedFrames: this.oversizedFrames,
      rejections: this.rejections,
      requestRefusals: this.refusals,
      reads: { ...this.reads },
      clientLies: { ...this.clientLies },
      rejectionsBySender: [...this.rejectionsBySender.values()],
      byzantinePrimaries: [...this.byzantinePrimaries].sort((a, b) => a - b),
      unbackedVotes: this.unbackedVotes,
      falseCheckpoints: this.judgeTappedCheckpoints(),
      laggards,
      virtualTimeMs: this.nowMs,
    };
  }

  private describeReplicas(): string {
    return this.replicas
      .map(
        (r) =>
          `${r.id}${r.strategy ? `(${r.strategy.behaviour})` : ''}:v${r.core?.currentView}/${r.core?.currentStatus}/e${r.core?.lastExecutedSeq}/h${r.core?.lowWatermark}`,
      )
      .join(' ');
  }

  /** Every correct replica is running, has executed the same sequence numbers, and holds the same ledger. */
  private correctReplicasAgree(): boolean {
    const correct = this.replicas.filter((replica) => this.isCorrect(replica));
    if (correct.some((replica) => replica.core === null)) return false;
    const executed = new Set(correct.map((replica) => replica.core!.lastExecutedSeq));
    if (executed.size !== 1) return false;
    const states = new Set(correct.map((replica) => toHex(sha256(replica.ledger.snapshot()))));
    return states.size === 1;
  }

  private allClientsDone(): boolean {
    return this.clients.every(
      (client) => client.remaining === 0 && client.current === null && client.query === null,
    );
  }

  private isCorrect(replica: SimReplica): boolean {
    return replica.strategy === null;
  }

  // -------------------------------------------------------------------------------------------
  // Fault schedule for the safety phase.

  private scheduleFaults(): void {
    const { safetyPhaseMs } = this.options;
    const crashCount = this.faultRandom.int(0, 3);
    for (let i = 0; i < crashCount; i++) {
      const correct = this.replicas.filter((replica) => this.isCorrect(replica));
      const victim = this.faultRandom.pick(correct).id;
      const atMs = this.faultRandom.int(100, safetyPhaseMs - 100);
      this.queue.push(atMs, { type: 'crash', replica: victim });
      this.queue.push(atMs + this.faultRandom.int(100, 3_000), { type: 'restart', replica: victim });
    }
    const partitionCount = this.faultRandom.int(0, 2);
    for (let i = 0; i < partitionCount; i++) {
      const atMs = this.faultRandom.int(100, safetyPhaseMs - 100);
      this.queue.push(atMs, { type: 'partition' });
      this.queue.push(Math.min(safetyPhaseMs, atMs + this.faultRandom.int(200, 2_000)), {
        type: 'heal-partition',
      });
    }
  }

  private allNodes(): NodeId[] {
    return [...this.replicas.map((replica) => replica.id), ...this.clients.map((client) => client.node)];
  }

  private partition(): void {
    this.partitions++;
    const n = this.options.replicas;
    if (this.faultRandom.chance(0.5)) {
      // Symmetric: a random minority or majority of replicas is cut off from everyone else.
      const group = this.faultRandom.shuffle([...Array(n).keys()]).slice(0, this.faultRandom.int(1, n - 1));
      this.network.partition(group, this.allNodes());
    } else {
      // Asymmetric: some links stop working in one direction only.
      const links = this.faultRandom.int(1, n);
      for (let i = 0; i < links; i++) {
        const from = this.faultRandom.int(0, n - 1);
        const to = this.faultRandom.int(0, n - 1);
        if (from !== to) this.network.cutLink(from, to);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Events.

  private handle(event: SimEvent): void {
    switch (event.type) {
      case 'deliver':
        if (event.to >= this.options.replicas) {
          this.deliverToClient(this.clients[event.to - this.options.replicas]!, event.from, event.bytes);
        } else if (
          event.from < this.options.replicas ||
          !this.answerQuery(event.to, event.from, event.bytes)
        ) {
          this.deliverToReplica(event.to, event.from, event.bytes);
        }
        return;
      case 'tick': {
        const replica = this.replicas[event.replica]!;
        if (replica.core !== null) {
          this.process(
            replica,
            this.guard(replica, () => replica.core!.tick()),
          );
          this.byzantineTick(replica);
        }
        this.queue.push(this.nowMs + TICK_MS, event);
        return;
      }
      case 'client-send':
        return this.clientSend(this.clients[event.client]!);
      case 'client-timeout':
        return this.clientTimeout(this.clients[event.client]!, event.t);
      case 'query-timeout':
        return this.queryTimeout(this.clients[event.client]!, event.id);
      case 'crash': {
        const replica = this.replicas[event.replica]!;
        if (replica.core === null || this.inLivenessPhase) return;
        this.crashes++;
        replica.core = null;
        return;
      }
      case 'restart': {
        const replica = this.replicas[event.replica]!;
        if (replica.core === null) this.boot(replica);
        return;
      }
      case 'partition':
        if (!this.inLivenessPhase) this.partition();
        return;
      case 'heal-partition':
        this.network.healLinks();
        return;
      case 'liveness-phase':
        this.inLivenessPhase = true;
        this.network.healLinks();
        this.network.setFaults({ ...this.safetyFaults, dropProbability: 0, duplicateProbability: 0 });
        for (const replica of this.replicas) if (replica.core === null) this.boot(replica);
        return;
    }
  }

  /** Start a replica from its storage only (a fresh replica has empty storage). */
  private boot(replica: SimReplica): void {
    replica.ledger = Ledger.fromGenesis(this.genesis);
    replica.core = new Replica({
      id: replica.id,
      config: this.config,
      sign: (bytes) => replica.signer.sign(bytes),
      sha256,
      stateMachine: replica.ledger,
      durable: replica.storage,
    });
    if (this.isCorrect(replica)) this.checkers.onRestart(replica.id, replica.core.lastExecutedSeq);
    this.process(
      replica,
      this.guard(replica, () => replica.core!.start()),
    );
  }

  /** Run a core step; an invariant failure inside a correct replica is a violation, never hidden. */
  private guard(replica: SimReplica, step: () => Ready): Ready | null {
    try {
      return step();
    } catch (error) {
      if (!(error instanceof InvariantError) && !(error instanceof Error)) throw error;
      this.checkers.violate('replica-crash', `replica ${replica.id} threw: ${(error as Error).message}`);
      replica.core = null;
      return null;
    }
  }

  private deliverToReplica(id: number, from: NodeId, bytes: Uint8Array): void {
    const replica = this.replicas[id]!;
    if (replica.core === null) return;
    const message = this.decode(bytes);
    if (message === null) {
      // The edge drops what does not decode; the core never sees it.
      if (this.isCorrect(replica))
        this.countRejection('undecodable', { from, messageType: 'undecodable', signer: undefined });
      return;
    }
    if (message.type === 'reply') return;
    const context = {
      verifier: this.scheme.verifier,
      replicaKeys: this.replicaKeys,
      ...(this.scheme.cacheVerifications ? { cache: { verified: this.verifiedCache, sha256 } } : {}),
    };
    const signatureRejection = verifyMessageSignatures(message, context);
    if (signatureRejection !== null) {
      if (this.isCorrect(replica))
        this.countRejection(signatureRejection, {
          from,
          messageType: message.type,
          signer: signerOf(message),
        });
      return;
    }
    if (this.isCorrect(replica)) this.tap(from, message);
    replica.strategy?.observe(message);
    if (replica.strategy?.admits(message) === false) return;
    this.process(
      replica,
      this.guard(replica, () => replica.core!.step(message)),
      { from, message },
    );
  }

  /** The runtime's job, done in the Ready order: persist, send, then executions and replies. */
  private process(replica: SimReplica, ready: Ready | null, delivered?: DeliveredFrom): void {
    if (ready === null) return;
    applyPersistOps(replica.storage, ready.persist);
    if (ready.persist.length > 0) this.options.onPersist?.(replica.id, ready.persist);
    for (const outbound of ready.send) {
      const targets =
        outbound.to === 'all'
          ? this.replicas.map((r) => r.id).filter((id) => id !== replica.id)
          : [outbound.to];
      if (replica.strategy === null) {
        this.noteProposals(outbound.message);
        const bytes = encodeMessage(outbound.message);
        for (const to of targets) this.transmit(replica.id, to, bytes);
      } else {
        for (const to of targets) {
          for (const payload of replica.strategy.outgoing(
            outbound.message,
            to,
            this.byzantineContext(replica),
          )) {
            if (!(payload instanceof Uint8Array)) this.noteProposals(payload);
            this.transmit(replica.id, to, this.payloadBytes(payload));
          }
        }
      }
    }
    const correct = this.isCorrect(replica);
    for (const batch of ready.executed) {
      if (correct) this.checkers.onExecuted(replica.id, batch, replica.ledger.totalSupply());
    }
    for (const event of ready.events) {
      if (!correct) {
        if (event.type === 'new-view-entered' && primaryOf(event.view, this.options.replicas) === replica.id)
          this.byzantinePrimaries.add(replica.id);
        continue;
      }
      if (event.type === 'checkpoint-taken') {
        this.checkers.onCheckpoint(replica.id, event.seq, event.stateDigest);
        this.correctCheckpoints.set(event.seq, toHex(event.stateDigest));
      }
      if (event.type === 'new-view-entered') this.highestView = Math.max(this.highestView, event.view);
      if (event.type === 'state-transferred') this.stateTransfers++;
      if (event.type === 'message-rejected') {
        const sender =
          delivered === undefined
            ? undefined
            : { from: delivered.from, messageType: event.messageType, signer: signerOf(delivered.message) };
        this.countRejection(event.reason, sender);
      }
    }
    for (const { client, reply } of ready.replies) {
      const target = this.clientByKey.get(toHex(client));
      if (target !== undefined) this.answerClient(replica, target, { type: 'reply', reply });
    }
    // Refusals reach the client as the runtime sends them: request-error frames.
    for (const event of ready.events) {
      if (event.type !== 'request-stale' && event.type !== 'request-refused') continue;
      const target = this.clientByKey.get(toHex(event.client));
      if (target === undefined) continue;
      const frame = encodeClientFrame({
        type: 'request-error',
        replica: replica.id,
        client: event.client,
        t: event.t,
        reason: event.type === 'request-stale' ? 'stale-request' : event.reason,
        lastExecutedT: event.type === 'request-stale' ? event.lastExecutedT : 0,
      });
      this.transmit(replica.id, target.node, frame);
    }
  }

  /** A reply or query answer to a client: what the core computed, or what a liar says instead. */
  private answerClient(replica: SimReplica, client: SimClient, answer: ClientAnswer): void {
    const honest = encodeClientFrame(answer);
    if (replica.strategy === null) {
      this.transmit(replica.id, client.node, honest);
      return;
    }
    const told = replica.strategy.toClient(answer, this.byzantineContext(replica));
    if (told.length === 0) this.clientLies.withheld++;
    for (const frame of told) {
      const bytes = encodeClientFrame(frame);
      if (!bytesEqual(bytes, honest)) this.clientLies.forged++;
      this.transmit(replica.id, client.node, bytes);
    }
  }

  /**
   * A read-only query from a client, answered from the replica's current state without ordering
   * (the runtime's onClientFrame does the same). Returns false for any other frame.
   */
  private answerQuery(id: number, from: NodeId, bytes: Uint8Array): boolean {
    let frame: ReturnType<typeof decodeClientToReplica>;
    try {
      frame = decodeClientToReplica(bytes);
    } catch {
      return false;
    }
    if (frame.type !== 'query') return false;
    const replica = this.replicas[id]!;
    const client = this.clients[from - this.options.replicas];
    if (replica.core === null || client === undefined) return true;
    const answer = replica.core.query(frame.op);
    if (this.isCorrect(replica)) this.checkers.onQueryAnswered(frame.id, answer.result, answer.lastExecuted);
    this.answerClient(replica, client, { type: 'query-result', id: frame.id, replica: id, ...answer });
    return true;
  }

  private decode(bytes: Uint8Array): Message | null {
    let message = this.decoded.get(bytes);
    if (message === undefined) {
      try {
        message = decodeMessage(bytes);
      } catch {
        message = null;
      }
      this.decoded.set(bytes, message);
    }
    return message;
  }

  /** `sender`: who delivered the rejected message (absent for rejections raised by a tick). */
  private countRejection(
    reason: string,
    sender?: { from: NodeId; messageType: string; signer: number | undefined },
  ): void {
    this.rejections[reason] = (this.rejections[reason] ?? 0) + 1;
    if (sender === undefined) return;
    const { from, messageType, signer } = sender;
    const relayed = signer !== undefined && signer !== from;
    const key = `${from}|${messageType}|${reason}|${relayed}`;
    const counted = this.rejectionsBySender.get(key);
    if (counted !== undefined) counted.count++;
    else this.rejectionsBySender.set(key, { from, messageType, reason, relayed, count: 1 });
  }

  /** Remember what a replica proposed, so the tap can tell a vote for a digest nobody proposed. */
  private noteProposals(message: Message): void {
    if (message.type === 'pre-prepare') this.proposed.add(slotKey(message.prePrepare.body));
    if (message.type === 'new-view') {
      for (const prePrepare of message.newView.body.prePrepares) this.proposed.add(slotKey(prePrepare.body));
    }
  }

  /** The tap on an authenticated message delivered to a correct replica (see unbackedVotes). */
  private tap(from: NodeId, message: Message): void {
    if (message.type === 'prepare' || message.type === 'commit') {
      const body = message.type === 'prepare' ? message.prepare.body : message.commit.body;
      if (!this.proposed.has(slotKey(body))) this.unbackedVotes[from] = (this.unbackedVotes[from] ?? 0) + 1;
      return;
    }
    if (message.type !== 'checkpoint') return;
    const { seq, stateDigest } = message.checkpoint.body;
    // Far beyond anything executed (a flood's): no correct replica will take it, nothing to judge.
    if (seq > this.checkers.highestAgreedSeq + this.config.watermarkWindow) return;
    if (this.tappedCheckpoints.length < TAPPED_CHECKPOINTS_MAX)
      this.tappedCheckpoints.push({ from, seq, digest: toHex(stateDigest) });
  }

  private judgeTappedCheckpoints(): Record<number, number> {
    const counts: Record<number, number> = {};
    for (const { from, seq, digest } of this.tappedCheckpoints) {
      const correct = this.correctCheckpoints.get(seq);
      if (correct !== undefined && correct !== digest) counts[from] = (counts[from] ?? 0) + 1;
    }
    return counts;
  }

  private payloadBytes(payload: Payload): Uint8Array {
    return payload instanceof Uint8Array ? payload : encodeMessage(payload);
  }

  /**
   * Onto the network, through the same frame limits as the real transport: a replica's frame over
   * FRAME_SIZE_MAX_BYTES (or a client's over CLIENT_FRAME_SIZE_MAX_BYTES) never arrives. Such a
   * frame from a correct replica is also a violation: no message the protocol builds may be one.
   */
  private transmit(from: NodeId, to: NodeId, bytes: Uint8Array): void {
    const fromReplica = from < this.options.replicas;
    const limit =
      fromReplica && to < this.options.replicas
        ? this.options.frameSizeMaxBytes
        : CLIENT_FRAME_SIZE_MAX_BYTES;
    if (fromReplica) this.largestFrameBytes = Math.max(this.largestFrameBytes, bytes.length);
    if (bytes.length > limit) {
      this.oversizedFrames++;
      const sender = fromReplica ? this.replicas[from] : undefined;
      if (sender !== undefined && this.isCorrect(sender)) {
        this.checkers.violate(
          'frame-size',
          `replica ${from} built a ${bytes.length}-byte frame, over the ${limit}-byte limit`,
        );
      }
      return;
    }
    for (const delivery of this.network.route(from, to)) {
      this.queue.push(this.nowMs + delivery.delayMs, { type: 'deliver', from, to, bytes });
    }
  }

  private byzantineContext(replica: SimReplica): ByzantineContext {
    const core = replica.core!;
    return {
      id: replica.id,
      replicaCount: this.options.replicas,
      view: core.currentView,
      lowWatermark: core.lowWatermark,
      watermarkWindow: this.config.watermarkWindow,
      checkpointInterval: this.config.checkpointInterval,
      protocol: this.config,
      random: replica.random,
      sign: (bytes) => replica.signer.sign(bytes),
      sha256,
      signAsClient: (seed, t, op) => this.signAsLiarsClient(seed, t, op),
    };
  }

  /** A request of a client a liar made up: signed in this run's scheme, and issued (by a liar). */
  private signAsLiarsClient(seed: Uint8Array, t: number, op: Uint8Array): Signed<RequestBody> {
    const signer = this.scheme.signer(seed);
    this.checkers.recordIssued(signer.publicKey, t, op);
    return signBody<RequestBody>({ type: 'request', client: signer.publicKey, t, op }, (bytes) =>
      signer.sign(bytes),
    );
  }

  private byzantineTick(replica: SimReplica): void {
    if (replica.strategy === null || replica.core === null) return;
    for (const { to, payload } of replica.strategy.onTick(this.byzantineContext(replica))) {
      if (!(payload instanceof Uint8Array)) this.noteProposals(payload);
      const bytes = this.payloadBytes(payload);
      const targets = to === 'all' ? this.replicas.map((r) => r.id).filter((id) => id !== replica.id) : [to];
      for (const target of targets) this.transmit(replica.id, target, bytes);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Clients: one outstanding request or query each; f+1 matching replies complete a request, 2f+1
  // matching answers from replicas at or past the client's last write complete a query.

  private clientSend(client: SimClient): void {
    if (client.current !== null || client.query !== null || client.remaining === 0) return;
    if (this.options.readShare > 0 && this.clientRandom.chance(this.options.readShare)) {
      this.clientQuery(client);
      return;
    }
    const recipients = this.clients.filter((other) => other !== client);
    const roll = this.clientRandom.int(0, 99);
    const to =
      roll < 5
        ? this.clientRandom.bytes(32)
        : this.clientRandom.pick(recipients.length > 0 ? recipients : [client]).signer.publicKey;
    const amount =
      roll < 10
        ? this.clientRandom.int(-5, 0)
        : roll < 15
          ? CLIENT_BALANCE * 10
          : this.clientRandom.int(1, 300);
    const op =
      this.clientRandom.int(0, 999) < this.options.largeOperationShare * 1000
        ? this.clientRandom.bytes(OPERATION_SIZE_MAX_BYTES)
        : encodeOperation({ type: 'transfer', to, amount });
    this.clientRequest(client, op, false);
  }

  /** Sign and send a request to the believed primary; `read`: an ordered balance read. */
  private clientRequest(client: SimClient, op: Uint8Array, read: boolean): void {
    client.t++;
    const request = signBody<RequestBody>(
      { type: 'request', client: client.signer.publicKey, t: client.t, op },
      (bytes) => client.signer.sign(bytes),
    );
    this.checkers.recordIssued(client.signer.publicKey, client.t, op);
    client.current = { request, replies: new Map(), refusals: new Map(), timeoutMs: CLIENT_TIMEOUT_MS, read };
    const primary = primaryOf(client.believedView, this.options.replicas);
    this.transmit(client.node, primary, encodeMessage({ type: 'request', request }));
    this.queue.push(this.nowMs + CLIENT_TIMEOUT_MS, {
      type: 'client-timeout',
      client: client.index,
      t: client.t,
    });
  }

  private clientTimeout(client: SimClient, t: number): void {
    const current = client.current;
    if (current === null || current.request.body.t !== t) return;
    // Retransmit to every replica with the same t: backups forward it and start their timers.
    const bytes = encodeMessage({ type: 'request', request: current.request });
    for (const replica of this.replicas) this.transmit(client.node, replica.id, bytes);
    current.timeoutMs = Math.min(current.timeoutMs * 2, CLIENT_TIMEOUT_MAX_MS);
    this.queue.push(this.nowMs + current.timeoutMs, { type: 'client-timeout', client: client.index, t });
  }

  /** A balance query to every replica: the client's own account, or another client's. */
  private clientQuery(client: SimClient): void {
    const others = this.clients.filter((other) => other !== client);
    const whose =
      others.length > 0 && this.clientRandom.chance(0.5) ? this.clientRandom.pick(others) : client;
    const op = encodeOperation({ type: 'balance', address: whose.signer.publicKey });
    const id = ++this.queriesIssued;
    client.query = { id, op, answers: new Map() };
    const bytes = encodeClientFrame({ type: 'query', id, op });
    for (const replica of this.replicas) this.transmit(client.node, replica.id, bytes);
    this.queue.push(this.nowMs + QUERY_TIMEOUT_MS, { type: 'query-timeout', client: client.index, id });
  }

  private queryTimeout(client: SimClient, id: number): void {
    if (client.query?.id === id) this.orderedRead(client);
  }

  /** The query did not settle: order the read through PBFT instead, as PbftClient.balance does. */
  private orderedRead(client: SimClient): void {
    const { op } = client.query!;
    client.query = null;
    this.clientRequest(client, op, true);
  }

  private onQueryAnswer(client: SimClient, from: NodeId, answer: QueryResultFrame): void {
    const query = client.query;
    if (query === null || answer.id !== query.id || answer.replica !== from) return;
    // An answer from before this client's last write does not count (read-your-writes).
    const key = answer.lastExecuted >= client.seenSeq ? toHex(answer.result) : null;
    if (key === null) this.reads.behindWrites++;
    query.answers.set(from, key);
    const tally = new Map<string, number>();
    for (const vote of query.answers.values()) if (vote !== null) tally.set(vote, (tally.get(vote) ?? 0) + 1);
    const quorum = this.votesNeeded.read;
    if (key !== null && tally.get(key)! >= quorum) {
      this.checkers.onReadAccepted(client.signer.publicKey, query.id, answer.result);
      this.reads.query++;
      this.countOutvoted(query.answers, key);
      client.query = null;
      // The transfer the read came before goes now: reads add no think time of their own, so they
      // do not stretch a run's virtual time (and the sweeps' cost).
      this.queue.push(this.nowMs, { type: 'client-send', client: client.index });
    } else if (Math.max(0, ...tally.values()) + this.options.replicas - query.answers.size < quorum) {
      this.orderedRead(client);
    }
  }

  /** Liars' votes that differ from what the client accepted. */
  private countOutvoted(votes: ReadonlyMap<number, string | null>, accepted: string): void {
    for (const [replica, vote] of votes)
      if (vote !== accepted && !this.isCorrect(this.replicas[replica]!)) this.clientLies.outvoted++;
  }

  private deliverToClient(client: SimClient, from: NodeId, bytes: Uint8Array): void {
    let frame: ReplicaToClient;
    try {
      frame = decodeReplicaToClient(bytes);
    } catch {
      return;
    }
    if (frame.type === 'query-result') return this.onQueryAnswer(client, from, frame);
    const current = client.current;
    if (current !== null && frame.type === 'request-error') return this.onRefusal(client, from, frame);
    if (current === null || frame.type !== 'reply') return;
    const { reply } = frame;
    // The channel authenticates the sender, so a reply counts only for the replica that sent it.
    if (reply.replica !== from || reply.t !== current.request.body.t) return;
    // Correct replicas agree on the sequence number as well as the result (PbftClient votes alike).
    const key = `${reply.seq}:${toHex(reply.result)}`;
    current.replies.set(from, key);
    const matching = [...current.replies.values()].filter((vote) => vote === key).length;
    if (matching < this.votesNeeded.reply) return;
    this.checkers.onClientAccepted(client.signer.publicKey, reply.t, reply.result);
    this.countOutvoted(current.replies, key);
    client.current = null;
    client.seenSeq = Math.max(client.seenSeq, reply.seq);
    if (current.read) this.reads.ordered++;
    else client.remaining--;
    client.believedView = Math.max(client.believedView, reply.view);
    if (current.read) this.queue.push(this.nowMs, { type: 'client-send', client: client.index });
    else this.clientThinks(client);
  }

  /**
   * f+1 replicas refusing the same way are an answer (PbftClient alike): a stale request with a
   * floor above its t is signed again above the floor (a new account's first request); any other
   * refusal ends the request.
   */
  private onRefusal(client: SimClient, from: NodeId, frame: RequestErrorFrame): void {
    const current = client.current!;
    if (frame.replica !== from || frame.t !== current.request.body.t || frame.reason === 'busy') return;
    current.refusals.set(from, { reason: frame.reason, floor: frame.lastExecutedT });
    const same = [...current.refusals.values()].filter((refusal) => refusal.reason === frame.reason);
    if (same.length < this.f + 1) return;
    const floor = vouchedFloor(
      same.map((refusal) => refusal.floor),
      this.f,
    );
    client.current = null;
    this.refusals[frame.reason] = (this.refusals[frame.reason] ?? 0) + 1;
    if (frame.reason === 'stale-request' && floor > current.request.body.t) {
      client.t = Math.max(client.t, floor);
      this.clientRequest(client, current.request.body.op, current.read);
      return;
    }
    if (!current.read) client.remaining--;
    this.clientThinks(client);
  }

  private clientThinks(client: SimClient): void {
    this.queue.push(this.nowMs + this.clientRandom.int(0, CLIENT_THINK_MAX_MS), {
      type: 'client-send',
      client: client.index,
    });
  }
}
