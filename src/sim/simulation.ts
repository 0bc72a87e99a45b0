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
  logMessageBody,
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
import { type Ready, Replica, type ReplicaEvent } from '../protocol/replica.ts';
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

/**
 * What a storage fault does to a crashed replica's memory storage, as the real node would meet it on
 * its disk: `lost` (its data directory deleted, or the tail of its write-ahead log truncated),
 * `corrupted` (a flipped byte in one record) or `rolled-back` (an operator restored an older copy of
 * it, taken earlier in the run).
 */
export const STORAGE_FAULT_KINDS = ['lost', 'corrupted', 'rolled-back'] as const;
export type StorageFaultKind = (typeof STORAGE_FAULT_KINDS)[number];

export function isStorageFaultKind(name: string): name is StorageFaultKind {
  return (STORAGE_FAULT_KINDS as readonly string[]).includes(name);
}

/** A crash; with `storage`, the replica's storage is damaged while it is down. */
export interface SimulatedCrash {
  replica: number;
  atMs: number;
  downMs: number;
  storage?: StorageFaultKind;
}

/** One storage fault: what was damaged, and what the replica did about it when it restarted. */
export interface StorageFaultRecord {
  replica: number;
  kind: StorageFaultKind;
  /** When the storage was damaged (the crash), and when the restarted replica found out (null: never restarted). */
  atMs: number;
  detectedAtMs: number | null;
  /** What the damage was, in the words of the node that finds it. */
  detail: string;
  /** The replica restarted empty and recovering (false only with `recoverFromStorageFaults: false`). */
  recovering: boolean;
  /** When it had recovered (its `recovered` event), null if it had not by the end of the run. */
  recoveredAtMs: number | null;
}

/** What a `trace` hook sees, in the order it happens. */
export type SimTraceEntry =
  /** A message a replica's core sent (a liar's strategy may then send something else instead). */
  | { type: 'sent'; atMs: number; replica: number; message: Message }
  | { type: 'replica-event'; atMs: number; replica: number; event: ReplicaEvent }
  | { type: 'crash'; atMs: number; replica: number }
  | { type: 'restart'; atMs: number; replica: number; recovering: boolean }
  | { type: 'storage-fault'; atMs: number; fault: StorageFaultRecord };

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
  /**
   * Scripted crashes of correct replicas, in addition to any random ones; one with `storage` damages
   * the replica's storage while it is down (it counts against the same budget as random storage
   * faults: see scheduleStorageFaults).
   */
  crashes?: ReadonlyArray<SimulatedCrash>;
  /**
   * Random storage faults in the safety phase (default false; needs `faults`): a crashed correct
   * replica's storage is lost, corrupted or rolled back, and it restarts empty and recovering. Only
   * while the model allows it: liars plus recovering replicas stay at most f (scheduleStorageFaults).
   */
  storageFaults?: boolean;
  /**
   * How a replica restarts after a storage fault (default true): as the real node does, with the
   * damaged data set aside, empty storage and `recovering`. Only tests turn it off: a replica
   * restarted from its damaged storage as if nothing happened (amnesia) must be caught by the checkers.
   */
  recoverFromStorageFaults?: boolean;
  /** Observe sends, replica events, crashes, restarts and storage faults (tests). */
  trace?: (entry: SimTraceEntry) => void;
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
  /** Storage faults injected (each also a crash), and what became of each. */
  storageFaults: number;
  /** Recoveries completed: `recovered` events of correct replicas. */
  recoveries: number;
  /**
   * Times the liveness phase found its clients done and a recovering replica's recovery stalled in
   * the idle cluster, and resumed the load until it recovered (a known limit: see nudgeStalledRecovery).
   */
  recoveryNudges: number;
  storageFaultLog: StorageFaultRecord[];
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
  /** Virtual time at which the last client request completed (0 if none did). */
  lastRequestDoneAtMs: number;
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
/**
 * With the clients done and a replica recovering, this many of the longest view-change timeout
 * (viewChangeTimeoutMaxTicks) without any correct replica executing is a stalled recovery (an idle
 * primary pads every retransmission interval, and a view change in progress has had time to end);
 * the load then resumes until it has recovered (nudgeStalledRecovery).
 */
const RECOVERY_STALL_TIMEOUTS = 2;
const RECOVERY_LOAD_WINDOWS = 8;

type SimEvent =
  | { type: 'deliver'; from: NodeId; to: NodeId; bytes: Uint8Array }
  | { type: 'tick'; replica: number }
  | { type: 'client-send'; client: number }
  | { type: 'client-timeout'; client: number; t: number }
  | { type: 'query-timeout'; client: number; id: number }
  | { type: 'crash'; replica: number; storage?: StorageFaultKind }
  | { type: 'restart'; replica: number }
  /** An operator's copy of the replica's storage, restored by a later `rolled-back` fault. */
  | { type: 'backup'; replica: number }
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
  /** The latest operator's copy of its storage (for `rolled-back` faults). */
  backup: { atMs: number; storage: DurableState } | null;
  /** Damage done to its storage while it was down (one fault or more): found at the next restart. */
  damaged: StorageFaultRecord[];
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

/** What a replica's storage holds, for the storage fault log. */
function describeStorage(storage: DurableState): string {
  const stable = storage.stableCheckpoint?.seq ?? 0;
  return `view ${storage.view}, stable checkpoint ${stable}, ${storage.log.length} log records, ${storage.prepared.length} prepared`;
}

/** The records of a storage a flipped byte can hit, each with what skipping it leaves. */
function storageRecords(storage: DurableState): Array<{ name: string; drop: () => void }> {
  const records: Array<{ name: string; drop: () => void }> = [];
  if (storage.stableCheckpoint !== null)
    records.push({ name: 'the stable checkpoint', drop: () => (storage.stableCheckpoint = null) });
  if (storage.ownViewChange !== null)
    records.push({ name: 'its own VIEW-CHANGE', drop: () => (storage.ownViewChange = null) });
  if (storage.newView !== null) records.push({ name: 'the NEW-VIEW', drop: () => (storage.newView = null) });
  for (const slot of storage.prepared) {
    const seq = slot.certificate.prePrepare.body.seq;
    records.push({
      name: `the prepared certificate at seq ${seq}`,
      drop: () => storage.prepared.splice(storage.prepared.indexOf(slot), 1),
    });
  }
  for (const [index, message] of storage.log.entries()) {
    const { view, seq, replica } = logMessageBody(message);
    records.push({
      name: `log record ${index + 1} of ${storage.log.length} (${message.type.toUpperCase()} v${view} s${seq} of replica ${replica})`,
      drop: () => storage.log.splice(storage.log.indexOf(message), 1),
    });
  }
  return records;
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
      | 'trace'
    >
  > & {
    protocol: Partial<Omit<ProtocolConfig, 'replicaCount'>>;
    onPersist?: (replica: number, ops: readonly PersistOp[]) => void;
    behaviours: readonly ByzantineBehaviour[];
    byzantineReplicas?: readonly number[];
    crashes: ReadonlyArray<SimulatedCrash>;
    trace?: (entry: SimTraceEntry) => void;
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
  private recoveries = 0;
  /** Stalled recoveries in the idle cluster, and the load resumed to end them (nudgeStalledRecovery). */
  private recoveryNudges = 0;
  private recoveryLoad = false;
  private recoveryRequests = 0;
  /** When a correct replica last executed a batch. */
  private lastExecutedAtMs = 0;
  private lastRequestDoneAtMs = 0;
  private readonly storageFaultLog: StorageFaultRecord[] = [];
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
      storageFaults: false,
      recoverFromStorageFaults: true,
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
        backup: null,
        damaged: [],
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
    this.scriptedStorageFaultReplicas();
    if (this.options.faults) this.scheduleFaults();
    for (const crash of this.options.crashes) this.scheduleCrash(crash);
    this.queue.push(this.options.safetyPhaseMs, { type: 'liveness-phase' });
    const endMs = this.options.safetyPhaseMs + this.options.livenessPhaseMs;

    for (;;) {
      const next = this.queue.pop();
      if (next === undefined || next.atMs > endMs) break;
      this.nowMs = next.atMs;
      this.handle(next.event);
      if (!this.inLivenessPhase || !this.allClientsDone()) continue;
      if (this.correctReplicasAgree() && !this.anyRecovering()) break;
      this.nudgeStalledRecovery();
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
    // A recovering replica is live only if the cluster takes it past its bound (an idle one pads):
    // once every client is done, each must have recovered too.
    const recovering = this.replicas.filter((r) => this.isCorrect(r) && r.core?.recovering === true);
    if (this.allClientsDone() && laggards === null && recovering.length > 0) {
      this.checkers.violate(
        'liveness',
        `${recovering.map((r) => `replica ${r.id} (until ${r.core!.recoveryUntilSeq}, stable ${r.core!.stableCheckpointSeq})`).join(', ')} still recovering ${this.options.livenessPhaseMs} ms after healing; replicas ${this.describeReplicas()}`,
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
      storageFaults: this.storageFaultLog.length,
      recoveries: this.recoveries,
      recoveryNudges: this.recoveryNudges,
      storageFaultLog: this.storageFaultLog.map((fault) => ({ ...fault })),
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
      lastRequestDoneAtMs: this.lastRequestDoneAtMs,
    };
  }

  private describeReplicas(): string {
    return this.replicas
      .map(
        (r) =>
          `${r.id}${r.strategy ? `(${r.strategy.behaviour})` : ''}:v${r.core?.currentView}/${r.core?.currentStatus}/e${r.core?.lastExecutedSeq}/h${r.core?.lowWatermark}${r.core?.recovering ? '/recovering' : ''}`,
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

  /**
   * A known limit, met here so that the rest of the run is still checked. An idle cluster passes a
   * recovering replica's bound only if its primary pads, and it may not: a recovering primary
   * proposes nothing (not even null requests); a lying one need not pad (it is not replaced while
   * no request waits); and padding needs 2f+1 voters in the primary's view besides the recovering
   * replica, which correct replicas left in a view change that an idle cluster never joins do not
   * give. With no request pending no timer runs, so such a cluster stands still: the replica never
   * recovers, and one that missed the last batches never executes them. Requests end it (timers
   * expire, the view changes; each request moves the sequence number on). So once the clients are
   * done, a replica is recovering and no correct replica executed anything for
   * RECOVERY_STALL_TIMEOUTS of the longest view-change timeout, the load resumes: client 0 sends
   * transfer after transfer (RECOVERY_LOAD_WINDOWS watermark windows of them at most) until no
   * replica is recovering. Each stall is counted in `recoveryNudges`, so a seed that needed it says
   * so; the run must then converge and every recovering replica recover, as always. A cluster whose
   * primary is correct and whose voters share its view recovers on its own, by padding.
   */
  private nudgeStalledRecovery(): void {
    const client = this.clients[0];
    if (client === undefined || !this.anyRecovering()) return;
    if (!this.recoveryLoad) {
      const stallMs = RECOVERY_STALL_TIMEOUTS * this.config.viewChangeTimeoutMaxTicks * TICK_MS;
      if (this.nowMs - this.lastExecutedAtMs < stallMs) return;
      this.recoveryLoad = true;
      this.recoveryNudges++;
    }
    const idle = client.current === null && client.query === null && client.remaining === 0;
    if (!idle || this.recoveryRequests >= RECOVERY_LOAD_WINDOWS * this.config.watermarkWindow) return;
    this.recoveryRequests++;
    client.remaining++;
    this.queue.push(this.nowMs, { type: 'client-send', client: client.index });
  }

  /** Whether a correct replica is still recovering from a storage fault. */
  private anyRecovering(): boolean {
    return this.replicas.some((replica) => this.isCorrect(replica) && replica.core?.recovering === true);
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
    // Drawn last, so that the crashes and partitions of a seed are the same with or without them.
    if (this.options.storageFaults) this.scheduleStorageFaults();
  }

  /**
   * Storage faults, within the model. A replica that lost what it signed is faulty until it has
   * recovered, and docs/protocol.md counts it as one of the f: liars plus replicas recovering at
   * once stay at most f. Both halves of that are needed here:
   *   - liveness: beside f liars, the 2f correct replicas left cannot make a quorum of 2f+1 without
   *     the liars (a silent liar never votes), so the cluster never passes the recovering replica's
   *     bound, and it never recovers;
   *   - safety: the bound is safe because among the 2f+1 others that report, one correct replica
   *     executed the recovering replica's old stable checkpoint c (so reports at least c - L).
   *     That survives one recovering replica beside f liars (c's 2f+1 signers include at least f
   *     correct others, the reporters at least f+1 of the 2f), but not two: then neither count is
   *     forced to overlap.
   * How long a recovery takes is not known when the schedule is drawn (the cluster must go 2L past
   * the bound), so the budget is static: storage faults hit only f - byzantine correct replicas,
   * drawn once (scripted ones first); one of them may be hit twice (again while it recovers, or
   * after), still one replica at fault. With f liars (as most sweep seeds have) nothing is drawn.
   * Crashes are another matter: a crashed replica restarts from intact storage as the correct
   * replica it was, so crashes beside a recovering one only stall committing in the safety phase
   * (at n = 4 nothing commits while a replica recovers and another is down, as on real processes),
   * and the liveness phase restarts every crashed replica.
   */
  private scheduleStorageFaults(): void {
    const eligible = this.storageFaultReplicas();
    if (eligible.length === 0) return;
    const { safetyPhaseMs } = this.options;
    const count = this.faultRandom.int(1, 2);
    for (let i = 0; i < count; i++) {
      const replica = this.faultRandom.pick(eligible);
      const atMs = this.faultRandom.int(100, safetyPhaseMs - 100);
      const downMs = this.faultRandom.int(100, 3_000);
      const storage = this.faultRandom.pick(STORAGE_FAULT_KINDS);
      const backupAtMs = this.faultRandom.int(1, atMs - 1);
      this.scheduleCrash({ replica, atMs, downMs, storage }, backupAtMs);
    }
  }

  /**
   * The correct replicas storage faults may hit: the scripted ones, then drawn ones, f - byzantine
   * in all (see scheduleStorageFaults). Throws if the scripted ones alone exceed that or hit a liar.
   */
  private storageFaultReplicas(): number[] {
    const budget = this.f - this.options.byzantine;
    const scripted = this.scriptedStorageFaultReplicas();
    if (budget === scripted.length) return scripted;
    const others = this.replicas
      .filter((r) => this.isCorrect(r) && !scripted.includes(r.id))
      .map((r) => r.id);
    return [...scripted, ...this.faultRandom.shuffle(others)].slice(0, budget);
  }

  /** The replicas scripted crashes damage the storage of; throws beyond the budget or at a liar. */
  private scriptedStorageFaultReplicas(): number[] {
    const budget = this.f - this.options.byzantine;
    const scripted = [
      ...new Set(
        this.options.crashes.filter((crash) => crash.storage !== undefined).map((crash) => crash.replica),
      ),
    ];
    if (scripted.length > budget || scripted.some((id) => !this.isCorrect(this.replicas[id]!)))
      throw new RangeError(
        `storage faults may hit at most f - byzantine = ${budget} correct replicas, got ${scripted.join(', ')}`,
      );
    return scripted;
  }

  /** A crash and its restart; a storage fault's `rolled-back` restores a copy taken at `backupAtMs`. */
  private scheduleCrash(crash: SimulatedCrash, backupAtMs = Math.floor(crash.atMs / 2)): void {
    const { replica, atMs, downMs, storage } = crash;
    if (storage === 'rolled-back') this.queue.push(backupAtMs, { type: 'backup', replica });
    this.queue.push(
      atMs,
      storage === undefined ? { type: 'crash', replica } : { type: 'crash', replica, storage },
    );
    this.queue.push(atMs + downMs, { type: 'restart', replica });
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
        if (this.inLivenessPhase) return;
        if (replica.core !== null) {
          this.crashes++;
          replica.core = null;
          this.options.trace?.({ type: 'crash', atMs: this.nowMs, replica: replica.id });
        } else if (event.storage === undefined) return;
        // A replica already down still has a disk to damage.
        if (event.storage !== undefined) this.damageStorage(replica, event.storage);
        return;
      }
      case 'restart': {
        const replica = this.replicas[event.replica]!;
        if (replica.core === null) this.boot(replica);
        return;
      }
      case 'backup': {
        const replica = this.replicas[event.replica]!;
        replica.backup = { atMs: this.nowMs, storage: structuredClone(replica.storage) };
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

  /**
   * Start a replica from its storage only (a fresh replica has empty storage). Storage damaged while
   * it was down is found now, as the node finds it (a CRC-32 seal that fails, LevelDB's LOG naming
   * dropped records, a witness that saw more synced writes than the log holds, data/ missing beside
   * storage-created, or --recover after a restored copy): set aside, the replica starts empty and
   * recovering (src/node/replica-storage.ts, openReplicaStorage).
   */
  private boot(replica: SimReplica): void {
    const damaged = replica.damaged.splice(0);
    const recovering = damaged.length > 0 && this.options.recoverFromStorageFaults;
    for (const fault of damaged) {
      fault.detectedAtMs = this.nowMs;
      fault.recovering = recovering;
    }
    if (recovering) replica.storage = emptyDurableState();
    replica.ledger = Ledger.fromGenesis(this.genesis);
    replica.core = new Replica({
      id: replica.id,
      config: this.config,
      sign: (bytes) => replica.signer.sign(bytes),
      sha256,
      stateMachine: replica.ledger,
      durable: replica.storage,
      recovering,
    });
    this.options.trace?.({ type: 'restart', atMs: this.nowMs, replica: replica.id, recovering });
    if (this.isCorrect(replica)) this.checkers.onRestart(replica.id, replica.core.lastExecutedSeq);
    this.process(
      replica,
      this.guard(replica, () => replica.core!.start()),
    );
  }

  /**
   * Damage a crashed replica's storage (drawn from the fault stream). What is left is what a plain
   * restart would read (`recoverFromStorageFaults: false`): the damaged record skipped, the
   * truncated tail gone, the restored copy. The node, and so the simulator, reads none of it.
   */
  private damageStorage(replica: SimReplica, kind: StorageFaultKind): void {
    const before = describeStorage(replica.storage);
    const storage = replica.storage;
    let detail: string;
    switch (kind) {
      case 'lost': {
        const tail =
          storage.log.length > 0 && this.faultRandom.chance(0.5)
            ? this.faultRandom.int(1, storage.log.length)
            : 0;
        if (tail === 0) {
          replica.storage = emptyDurableState();
          detail = `data/ deleted (${before}) while storage-created says it ran before`;
        } else {
          storage.log.splice(storage.log.length - tail);
          detail = `write-ahead log truncated: the last ${tail} of its log records lost (${before}); its witness of synced writes counted more`;
        }
        break;
      }
      case 'corrupted': {
        const records = storageRecords(storage);
        const record = records.length > 0 ? this.faultRandom.pick(records) : null;
        detail =
          record === null
            ? `a flipped byte in its view record (${before}): its CRC-32 seal fails`
            : `a flipped byte in ${record.name} (${before}): its CRC-32 seal fails`;
        record?.drop();
        break;
      }
      case 'rolled-back': {
        const backup = replica.backup;
        replica.storage = backup === null ? emptyDurableState() : structuredClone(backup.storage);
        detail =
          backup === null
            ? `its copy from before it stored anything restored over ${before}; the operator starts it with --recover`
            : `its copy of ${backup.atMs} ms (${describeStorage(backup.storage)}) restored over ${before}; the operator starts it with --recover`;
        break;
      }
    }
    const fault: StorageFaultRecord = {
      replica: replica.id,
      kind,
      atMs: this.nowMs,
      detectedAtMs: null,
      detail,
      recovering: false,
      recoveredAtMs: null,
    };
    this.storageFaultLog.push(fault);
    replica.damaged.push(fault);
    this.options.trace?.({ type: 'storage-fault', atMs: this.nowMs, fault });
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
    const correct = this.isCorrect(replica);
    // A step's events say what state it reached (e.g. `recovered`), and its sends were signed in
    // that state: the trace shows the events first, since the Ready does not keep their interleaving.
    for (const event of ready.events)
      this.options.trace?.({ type: 'replica-event', atMs: this.nowMs, replica: replica.id, event });
    for (const outbound of ready.send) {
      this.options.trace?.({
        type: 'sent',
        atMs: this.nowMs,
        replica: replica.id,
        message: outbound.message,
      });
      if (correct) this.checkers.onSigned(replica.id, outbound.message);
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
    if (correct && ready.executed.length > 0) this.lastExecutedAtMs = this.nowMs;
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
      if (event.type === 'recovered') this.noteRecovered(replica.id);
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

  /** A correct replica recovered: the storage fault it recovered from is over. */
  private noteRecovered(id: number): void {
    this.recoveries++;
    for (const fault of this.storageFaultLog)
      if (fault.replica === id && fault.recovering && fault.recoveredAtMs === null)
        fault.recoveredAtMs = this.nowMs;
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
    else {
      client.remaining--;
      this.lastRequestDoneAtMs = this.nowMs;
    }
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
    if (!current.read) {
      client.remaining--;
      this.lastRequestDoneAtMs = this.nowMs;
    }
    this.clientThinks(client);
  }

  private clientThinks(client: SimClient): void {
    this.queue.push(this.nowMs + this.clientRandom.int(0, CLIENT_THINK_MAX_MS), {
      type: 'client-send',
      client: client.index,
    });
  }
}
