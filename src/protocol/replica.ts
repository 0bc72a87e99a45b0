/**
 * The PBFT replica as a pure, deterministic state machine (Castro & Liskov, OSDI'99, with signatures).
 *
 * `step(message)` and `tick()` are synchronous and do no I/O: they return a `Ready` describing what
 * to persist, what to send, which batches executed and which replies to deliver. The caller applies
 * them in that order (etcd/raft's Ready rule): persist, then send, then deliver replies. Time is
 * counted in ticks; signatures on inputs were verified at the edge (verify.ts), so every message
 * here is authentic, but every protocol rule (views, watermarks, digests, certificates) is checked.
 */

import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { readArray, readBytes, readMap, readUint } from '../codec/schema.ts';
import type { Sha256 } from '../crypto/types.ts';
import { invariant } from '../util/assert.ts';
import { bytesEqual, fromHex, toHex } from '../util/bytes.ts';
import { BatchFetches, BatchStore } from './batch-store.ts';
import {
  batchDigest,
  type CertificateContext,
  checkCheckpointProof,
  checkViewChange,
  computeNewViewPlan,
  type NewViewPlan,
  type NewViewSlot,
  prePreparesMatchPlan,
} from './certificates.ts';
import { CommitsElsewhere } from './commits-elsewhere.ts';
import { type ProtocolConfig, primaryOf, type Quorums, quorums, validateProtocolConfig } from './config.ts';
import {
  type DurableState,
  type LogMessage,
  logMessageSeq,
  logMessageView,
  type PersistOp,
  type StableCheckpoint,
} from './durable.ts';
import {
  type Body,
  type CheckpointBody,
  type CommitBody,
  type FetchBatchBody,
  type FetchStateBody,
  type Message,
  type NewViewBody,
  type PrePrepareBody,
  type PrepareBody,
  type PreparedCertificate,
  type PreparedSlot,
  PUBLIC_KEY_BYTES,
  type ReplicaId,
  type ReplyBody,
  type RequestBody,
  requestWireBytes,
  SIGNATURE_BYTES,
  type Signed,
  SNAPSHOT_SIZE_MAX_BYTES,
  type StateBody,
  signBody,
  type ViewChangeBody,
} from './messages.ts';
import type { CoreRejectionReason } from './rejections.ts';
import type { StateMachine } from './state-machine.ts';

/** VIEW-CHANGEs kept per sender, for its most recent views only: bounds memory under floods. */
const VIEW_CHANGES_PER_REPLICA_MAX = 4;
/**
 * Ordering messages for a view this replica has not entered are kept only for the next view (or
 * the one it is changing to): a replica further behind is brought forward by f+1 peers' messages
 * and a NEW-VIEW, and what it missed is retransmitted, so a liar cannot park messages for far views.
 */
const EARLY_VIEWS_AHEAD = 1;
/**
 * Bytes of early ordering messages kept per sender, in PRE-PREPAREs of the largest legal batch:
 * a correct primary of the next view is at most a pipeline ahead of a backup still entering it.
 * The rest of the bound covers the PREPAREs and COMMITs of a whole window.
 */
const EARLY_BATCHES_PER_REPLICA = 2;
/**
 * Bytes of batches from views this replica has left kept per sender, in batches of the largest
 * legal size: a laggard executes them in order as their commit certificates complete, and asks for
 * more (FETCH-STATE) once it has, so a few at a time suffice; a liar holds no more than that.
 */
const COMMITTED_ELSEWHERE_BATCHES_PER_REPLICA = 2;
/**
 * A replica idle with executions that no stable checkpoint covers yet announces how far it got
 * (FETCH-STATE): a replica a few slots behind an idle cluster, which no newer checkpoint will ever
 * reveal, is then answered with the slots it missed, or learns it is behind, and the primary pads
 * to a checkpoint. The gap between announcements doubles from one retransmission interval up to
 * this many, so an idle cluster sends a handful of small messages, and a lost one is not the last.
 */
const IDLE_ANNOUNCEMENT_GAP_MAX_INTERVALS = 64;
/** Checkpoint sequence numbers with votes kept per sender: the window plus room for laggards. */
const CHECKPOINT_VOTES_PER_REPLICA_EXTRA = 2;
/**
 * How far past its own execution a replica votes, in pipelines (pipelineDepthMax): a correct primary
 * proposes at most one pipeline past its execution, and a correct backup trails it by less than
 * another. Slots beyond wait for their votes until execution comes near, so a liar that proposes
 * up to the end of the window (empty batches, throwaway requests) gets at most this many slots
 * prepared past the first one it left out: the next view's NEW-VIEW re-proposes those and no more.
 */
const VOTE_AHEAD_PIPELINES = 2;
/**
 * Slots a replica retransmits its own messages for, each interval, in pipelines: the lowest ones
 * it has not committed. Resending a whole window every interval to every peer, while they are
 * still working through it, only deepens their queues.
 */
const RETRANSMIT_PIPELINES = 2;

export interface ReplicaOptions {
  id: ReplicaId;
  config: ProtocolConfig;
  /** Signs canonical bytes with this replica's key (ed25519 is deterministic, so this is pure). */
  sign: (bytes: Uint8Array) => Uint8Array;
  sha256: Sha256;
  /** The application at genesis; replaced by the stable checkpoint's snapshot when restoring. */
  stateMachine: StateMachine;
  /** State loaded from storage after a restart; omitted for a fresh replica. */
  durable?: DurableState;
  /**
   * This replica's storage could not be trusted (found damaged, missing, or restored from an older
   * copy) and was replaced by an empty one: it may have signed messages it no longer remembers, so
   * it starts recovering (see `Recovery`). A restored `durable.recovery` means the same.
   */
  recovering?: boolean;
}

/** A message to one replica, or to every other replica. */
export interface Outbound {
  to: ReplicaId | 'all';
  message: Message;
}

export interface ClientReply {
  client: Uint8Array;
  reply: ReplyBody;
}

export interface ExecutedRequest {
  request: Signed<RequestBody>;
  /** The encoded result, or null when the request had already executed (skipped: exactly once). */
  result: Uint8Array | null;
}

export interface ExecutedBatch {
  seq: number;
  view: number;
  digest: Uint8Array;
  requests: ExecutedRequest[];
}

/** Why a replica started a view change (`pbft_view_changes_total{reason}`). */
export const VIEW_CHANGE_REASONS = ['timeout', 'joined', 'behind'] as const;
export type ViewChangeReason = (typeof VIEW_CHANGE_REASONS)[number];

export type ReplicaEvent =
  | { type: 'view-change-started'; view: number; reason: ViewChangeReason }
  | { type: 'new-view-entered'; view: number }
  | { type: 'checkpoint-taken'; seq: number; stateDigest: Uint8Array }
  | { type: 'checkpoint-stable'; seq: number; stateDigest: Uint8Array }
  | { type: 'state-transfer-requested'; seq: number }
  | { type: 'state-transferred'; seq: number }
  /** This replica recovers from storage it could not trust: it votes on nothing until `recovered`. */
  | { type: 'recovery-started' }
  /** 2f+1 peers reported their checkpoints: this replica votes again once its stable one reaches `untilSeq`. */
  | { type: 'recovery-bounded'; untilSeq: number; reports: number }
  | { type: 'recovered'; seq: number }
  /** A batch this replica lacked for a slot of its view arrived (from the primary or by FETCH-BATCH). */
  | { type: 'batch-fetched'; seq: number }
  /**
   * A stranger's request (the application holds nothing for its client) numbered above the sequence
   * number it was ordered at: not executed, so that it can be voided when the client becomes known.
   */
  | { type: 'request-refused'; client: Uint8Array; t: number; reason: 'unknown-client' }
  /** The pending table is full (pendingRequestsMax): the request was not kept; the client may retry. */
  | { type: 'request-busy'; client: Uint8Array; t: number }
  /**
   * A request whose t is at most the client's floor (its last executed t, or the requests voided
   * when the application came to know it): it can never execute.
   */
  | { type: 'request-stale'; client: Uint8Array; t: number; lastExecutedT: number }
  | { type: 'message-rejected'; messageType: Message['type']; reason: CoreRejectionReason };

/** What one step asks of the runtime, in the order it must be done. */
export interface Ready {
  persist: PersistOp[];
  send: Outbound[];
  executed: ExecutedBatch[];
  replies: ClientReply[];
  events: ReplicaEvent[];
}

export type ReplicaStatus = 'normal' | 'view-change';

/** One sequence number of the current view. */
interface LogEntry {
  seq: number;
  prePrepare: Signed<PrePrepareBody> | null;
  batch: Signed<RequestBody>[] | null;
  /** One PREPARE per replica (the first it sent in this view), matched against the digest later. */
  prepares: Map<ReplicaId, Signed<PrepareBody>>;
  commits: Map<ReplicaId, Signed<CommitBody>>;
  /** Tick at which this replica last answered each peer's retransmission for this slot. */
  answeredAtTick: Map<ReplicaId, number>;
  prepared: boolean;
  committed: boolean;
}

/**
 * The last executed request of a client and its result: the reply cache, for retransmissions. Part
 * of the replicated state, so it holds nothing replicas may legitimately disagree on (not the view it
 * executed in: a batch can commit in view v at one replica and be re-proposed and executed in v+1 at
 * another), and it is bounded: the least recently executed entries are evicted in (seq, client)
 * order, the same everywhere. Exactly-once does not rest on it but on the application's
 * `requestFloor`; strangers never get an entry.
 */
interface ClientRecord {
  t: number;
  seq: number;
  result: Uint8Array;
}

interface OwnCheckpoint {
  message: Signed<CheckpointBody>;
  snapshot: Uint8Array;
}

type CertifiedCheckpoint = Omit<StableCheckpoint, 'snapshot'>;

/**
 * A replica that lost what it signed (TOCS'02 §4.3 estimates the same bound for proactive
 * recovery) sends no PRE-PREPARE, PREPARE, COMMIT, CHECKPOINT, VIEW-CHANGE or NEW-VIEW until its
 * stable checkpoint reaches `untilSeq`; it follows the cluster meanwhile (executes what 2f+1 others
 * commit, adopts certified state, enters NEW-VIEWs). Its old votes were for sequence numbers at
 * most its old stable checkpoint c plus L; c was certified by 2f+1 replicas, so among any 2f+1
 * others that report (at most f - 1 of them faulty besides this one) is a correct replica that
 * executed c, whose own stable checkpoint is therefore at least c - L. So untilSeq, the highest
 * certified checkpoint 2f+1 others reported plus 2L, lies above every old vote, and a liar cannot
 * raise it beyond what the cluster has certified.
 */
interface Recovery {
  /** The stable checkpoint each other replica reported (in a STATE), by replica. */
  reported: Map<ReplicaId, number>;
  /** Votes resume above this sequence number; null until 2f+1 others reported. Fixed once set. */
  untilSeq: number | null;
}

interface PendingStateTransfer {
  seq: number;
  stateDigest: Uint8Array;
}

function emptyReady(): Ready {
  return { persist: [], send: [], executed: [], replies: [], events: [] };
}

/** Generous bytes of one PREPARE or COMMIT (signed body and signature), for the early buffer's budget. */
const VOTE_BYTES_MAX = 256;

/** Bytes an ordering message holds: its signed body and signature, and a PRE-PREPARE's batch. */
function logMessageBytes(message: LogMessage): number {
  switch (message.type) {
    case 'pre-prepare':
      return message.prePrepare.bytes.length + SIGNATURE_BYTES + batchWireBytes(message.batch);
    case 'prepare':
      return message.prepare.bytes.length + SIGNATURE_BYTES;
    case 'commit':
      return message.commit.bytes.length + SIGNATURE_BYTES;
  }
}

function batchWireBytes(batch: readonly Signed<RequestBody>[]): number {
  let bytes = 0;
  for (const request of batch) bytes += requestWireBytes(request);
  return bytes;
}

function requestKey(body: RequestBody): string {
  return `${toHex(body.client)}:${body.t}`;
}

export class Replica {
  readonly id: ReplicaId;
  readonly config: ProtocolConfig;
  private readonly quorums: Quorums;
  private readonly certificateContext: CertificateContext;
  private readonly sign: (bytes: Uint8Array) => Uint8Array;
  private readonly sha256: Sha256;
  private readonly stateMachine: StateMachine;

  private out: Ready = emptyReady();
  /** True inside `stepAll`: requests queue up and are proposed together at its end. */
  private proposalsDeferred = false;

  // View state.
  private view = 0;
  private status: ReplicaStatus = 'normal';
  private ownViewChange: Signed<ViewChangeBody> | null = null;
  private currentNewView: Signed<NewViewBody> | null = null;
  private readonly viewChanges = new Map<ReplicaId, Map<number, Signed<ViewChangeBody>>>();
  /** This replica's VIEW-CHANGEs for its most recent views, to resend to replicas still collecting them. */
  private readonly recentOwnViewChanges = new Map<number, Signed<ViewChangeBody>>();

  // Ordering state.
  private readonly log = new Map<number, LogEntry>();
  /** The highest-view prepared certificate per sequence number, with its batch. */
  private readonly prepared = new Map<number, PreparedSlot>();
  /** Batches this replica pre-prepared, above the stable checkpoint, to hand to replicas lacking them. */
  private readonly batches = new BatchStore();
  /** Digests of this view's slots whose batch this replica still lacks. */
  private readonly fetches: BatchFetches;
  /** Slots committed in views this replica has left, by 2f+1 COMMITs: executed without its vote. */
  private readonly commitsElsewhere: CommitsElsewhere;
  /** Tick at which this replica last answered a FETCH-BATCH, per `${replica}:${seq}`. */
  private readonly batchServedAtTick = new Map<string, number>();
  private lastExecuted = 0;
  /** Highest sequence number this replica proposed (as primary) or saw in its NEW-VIEW. */
  private lastAssigned = 0;

  // Checkpoints and state transfer.
  /** The stable checkpoint: the low watermark h and its 2f+1 proof. */
  private stable: Omit<StableCheckpoint, 'snapshot'>;
  /** The state at the stable checkpoint; null while this replica waits for it by state transfer. */
  private stableSnapshot: Uint8Array | null;
  /** A certified checkpoint this replica is still executing towards; adopted by transfer if it stalls. */
  private stableCandidate: (CertifiedCheckpoint & { sinceTick: number }) | null = null;
  private readonly ownCheckpoints = new Map<number, OwnCheckpoint>();
  private readonly checkpointVotes = new Map<number, Map<ReplicaId, Signed<CheckpointBody>>>();
  private pendingStateTransfer: PendingStateTransfer | null = null;
  private readonly stateServedAtTick = new Map<ReplicaId, number>();
  private readonly slotsServedAtTick = new Map<ReplicaId, number>();

  // Clients.
  /** The reply cache, in (seq, client) order: the first entry is the next to evict. */
  private readonly clients = new Map<string, ClientRecord>();
  /** Requests received and not yet executed, one per client (PBFT clients have one outstanding). */
  private readonly pending = new Map<string, Signed<RequestBody>>();
  /** Backup: clients whose pending request was relayed to this view's primary (leave with `pending`). */
  private readonly relayed = new Set<string>();
  /** The primary's queue of requests not yet assigned a sequence number, in arrival order. */
  private readonly queue = new Map<string, Signed<RequestBody>>();
  private readonly assigned = new Set<string>();

  // Time.
  private ticks = 0;
  /**
   * Whether this replica has seen, since its last checkpoint, a sign that another one lags behind
   * its execution (a FETCH-STATE or a VIEW-CHANGE from a replica whose state is older): an idle
   * primary then pads to the next checkpoint.
   */
  private laggardSeen = false;
  /**
   * Whether a recovering replica asked (FETCH-STATE) since the last padding: an idle primary then
   * pads a whole checkpoint interval, so that an idle cluster still gets past where it may have voted.
   */
  private recoveringPeerSeen = false;
  /** The primary pads with null requests up to this sequence number (padToCheckpointWhenIdle). */
  private padTarget = 0;
  /** The primary is padding: once begun, padding goes on without waiting for another idle interval. */
  private paddingUnderway = false;
  /** Non-null while this replica recovers from storage it could not trust. */
  private recovery: Recovery | null = null;
  /**
   * Whether a peer's CHECKPOINT showed, since the last retransmission, that it executed further than
   * this replica: then this replica asks for what it missed (FETCH-STATE) at the next
   * retransmission, even in an idle cluster where nobody resends executed slots on their own.
   */
  private behindSeen = false;
  /** Retransmission intervals until the next idle announcement, and the gap after it (doubling). */
  private idleAnnouncementInIntervals = 1;
  private idleAnnouncementGapIntervals = 1;
  /** The last tick at which this replica proposed or executed a batch. */
  private busyAtTick = 0;
  private timerTicksLeft: number | null = null;
  /**
   * In normal operation, the pending request the timer waits for (PBFT §4.4): the timer restarts
   * when that request executes and another is still pending, not when other batches execute, so a
   * primary that orders everyone else's requests (or empty batches) cannot censor one client.
   */
  private timedRequest: { clientHex: string; t: number; sinceTick: number } | null = null;
  /**
   * Whether the batches just executed held requests this replica had pending besides the timed
   * one: the primary is working through what the backup knows is waiting, which (unlike empty
   * batches, or requests only the primary had) restarts the timer, up to a bound.
   */
  private pendingProgress = false;
  private timeoutTicks: number;
  private readonly newViewSentAtTick = new Map<ReplicaId, number>();
  private readonly viewChangeSentAtTick = new Map<ReplicaId, number>();
  /**
   * Ordering messages for views this replica has not entered yet, per sender: one per (type, view,
   * seq), only those that passed every check the current state allows, bounded in bytes.
   */
  private readonly earlyMessages = new Map<ReplicaId, { messages: Map<string, LogMessage>; bytes: number }>();
  /** Replicas seen sending ordering messages for views above ours, and the highest such view. */
  private readonly higherViewSeen = new Map<ReplicaId, number>();

  constructor(options: ReplicaOptions) {
    validateProtocolConfig(options.config);
    invariant(options.id >= 0 && options.id < options.config.replicaCount, 'replica id out of range');
    this.id = options.id;
    this.config = options.config;
    this.quorums = quorums(options.config.replicaCount);
    this.sign = options.sign;
    this.sha256 = options.sha256;
    this.stateMachine = options.stateMachine;
    this.timeoutTicks = options.config.viewChangeTimeoutTicks;
    this.fetches = new BatchFetches(this.quorums.weak);
    this.commitsElsewhere = new CommitsElsewhere(
      this.quorums.quorum,
      COMMITTED_ELSEWHERE_BATCHES_PER_REPLICA * this.config.batchBytesMax,
    );
    this.certificateContext = {
      quorums: this.quorums,
      checkpointInterval: options.config.checkpointInterval,
      watermarkWindow: options.config.watermarkWindow,
      sha256: options.sha256,
    };
    const genesisSnapshot = this.takeSnapshot();
    this.stable = { seq: 0, stateDigest: this.sha256(genesisSnapshot), proof: [] };
    this.stableSnapshot = genesisSnapshot;
    if (options.durable !== undefined) this.restore(options.durable);
    const restoredRecovery = options.durable?.recovery ?? null;
    if (options.recovering === true || restoredRecovery !== null) {
      this.recovery = { reported: new Map(), untilSeq: restoredRecovery?.untilSeq ?? null };
    }
  }

  // -------------------------------------------------------------------------------------------
  // Read-only views of the replica, for the runtime, metrics and tests.

  get currentView(): number {
    return this.view;
  }
  get currentStatus(): ReplicaStatus {
    return this.status;
  }
  get primary(): ReplicaId {
    return primaryOf(this.view, this.quorums.n);
  }
  get isPrimary(): boolean {
    return this.primary === this.id && this.status === 'normal';
  }
  get lastExecutedSeq(): number {
    return this.lastExecuted;
  }
  get stableCheckpointSeq(): number {
    return this.stable.seq;
  }
  /** The low watermark h: sequence numbers h < n ≤ h + L are accepted. */
  get lowWatermark(): number {
    return this.stable.seq;
  }
  get pendingRequestCount(): number {
    return this.pending.size;
  }
  /** Slots of the current view waiting for their batch. */
  get awaitedBatchCount(): number {
    return this.fetches.size;
  }

  /**
   * The digest of the batch awaited at `seq`, if any: the edge drops a BATCH nobody asked for, or
   * one with another digest, before checking the signatures of every request in it.
   */
  awaitedBatchDigest(seq: number): Uint8Array | undefined {
    return this.fetches.awaited(seq);
  }
  /** Whether this replica recovers from storage it could not trust (and so votes on nothing). */
  get recovering(): boolean {
    return this.recovery !== null;
  }
  /** While recovering: the sequence number above which it votes again (null: not known yet). */
  get recoveryUntilSeq(): number | null {
    return this.recovery?.untilSeq ?? null;
  }
  get awaitingStateTransfer(): boolean {
    return this.pendingStateTransfer !== null;
  }
  get quorumSizes(): Quorums {
    return this.quorums;
  }

  /** Digest of the state at the stable checkpoint (what 2f+1 replicas signed). */
  get stableStateDigest(): Uint8Array {
    return this.stable.stateDigest;
  }

  /** Answer a read-only operation from the current (tentative) state. */
  query(operation: Uint8Array): { result: Uint8Array; lastExecuted: number; view: number } {
    return { result: this.stateMachine.query(operation), lastExecuted: this.lastExecuted, view: this.view };
  }

  // -------------------------------------------------------------------------------------------
  // Entry points.

  /** Resume after construction or restart: finish what the log already proves, resend own state. */
  start(): Ready {
    return this.run(() => {
      if (this.recovery !== null) {
        this.out.persist.push({ type: 'recovery', recovery: { untilSeq: this.recovery.untilSeq } });
        this.out.events.push({ type: 'recovery-started' });
      }
      // Restored entries carry only messages; re-derive prepared/committed (sending a COMMIT the
      // crash may have kept in the outbox) and execute from the stable checkpoint onwards.
      for (const entry of [...this.log.values()].sort((a, b) => a.seq - b.seq)) this.checkPrepared(entry);
      this.executeCommitted();
      if (this.status === 'view-change') this.maybeStartNewViewTimer();
      this.retransmit();
      // Announce ourselves: whatever happened while we were away comes back as answers.
      this.requestState();
    });
  }

  /** Process one authenticated message. */
  step(message: Message): Ready {
    return this.run(() => this.dispatch(message));
  }

  /**
   * Process authenticated messages that arrived together, as if stepped one by one, except that
   * the primary proposes only once all of them are in: requests that arrive in one burst share one
   * PRE-PREPARE instead of taking one sequence number each. This is the adaptive batching: under
   * light load a burst is one request and goes out at once; under heavy load the runtime's bursts
   * grow (requests pile up while it writes to disk) and so do the batches, up to batchSizeMax.
   */
  stepAll(messages: readonly Message[]): Ready {
    return this.run(() => {
      this.proposalsDeferred = true;
      try {
        for (const message of messages) this.dispatch(message);
      } finally {
        this.proposalsDeferred = false;
      }
      this.propose();
    });
  }

  /** Advance logical time by one tick. */
  tick(): Ready {
    return this.run(() => {
      this.ticks++;
      if (this.timerTicksLeft !== null) {
        this.timerTicksLeft--;
        if (this.timerTicksLeft <= 0) {
          this.timerTicksLeft = null;
          this.onTimerExpired();
        }
      }
      if (this.ticks % this.config.retransmitIntervalTicks === 0) this.retransmit();
      this.checkStableCandidate();
      this.padToCheckpointWhenIdle();
    });
  }

  private run(action: () => void): Ready {
    this.out = emptyReady();
    action();
    const ready = this.out;
    this.out = emptyReady();
    return ready;
  }

  private dispatch(message: Message): void {
    switch (message.type) {
      case 'request':
        return this.onRequest(message.request);
      case 'pre-prepare':
        return this.onPrePrepare(message.prePrepare, message.batch);
      case 'prepare':
        return this.onPrepare(message.prepare);
      case 'commit':
        return this.onCommit(message.commit);
      case 'checkpoint':
        return this.onCheckpoint(message.checkpoint);
      case 'view-change':
        return this.onViewChange(message.viewChange);
      case 'new-view':
        return this.onNewView(message.newView);
      case 'fetch-state':
        return this.onFetchState(message.fetchState);
      case 'fetch-batch':
        return this.onFetchBatch(message.fetchBatch);
      case 'batch':
        return this.onBatch(message.seq, message.batch);
      case 'state':
        return this.onState(message.state);
      case 'reply':
        return this.reject(message, 'reply-sent-to-replica');
    }
  }

  private reject(message: Message, reason: CoreRejectionReason): void {
    this.out.events.push({ type: 'message-rejected', messageType: message.type, reason });
  }

  private rejectBody(body: Body, reason: CoreRejectionReason): void {
    this.out.events.push({ type: 'message-rejected', messageType: body.type, reason });
  }

  private signed<B extends Body>(body: B): Signed<B> {
    return signBody(body, this.sign);
  }

  private broadcast(message: Message): void {
    this.out.send.push({ to: 'all', message });
  }

  private sendTo(to: ReplicaId, message: Message): void {
    if (to !== this.id) this.out.send.push({ to, message });
  }

  /** Whether `seq` is inside the watermarks h < seq ≤ h + L (the edge screens with it). */
  inWindow(seq: number): boolean {
    return seq > this.stable.seq && seq <= this.stable.seq + this.config.watermarkWindow;
  }

  // -------------------------------------------------------------------------------------------
  // Requests.

  private onRequest(request: Signed<RequestBody>): void {
    const body = request.body;
    const clientHex = toHex(body.client);
    const record = this.clients.get(clientHex);
    if (record !== undefined && body.t === record.t) {
      // Retransmission of an executed request: answer from the reply cache, never execute again.
      this.sendReply(body.client, record);
      return;
    }
    const floor = this.stateMachine.requestFloor(body.client);
    if (floor !== null && body.t <= floor) {
      this.out.events.push({ type: 'request-stale', client: body.client, t: body.t, lastExecutedT: floor });
      return;
    }
    const existing = this.pending.get(clientHex);
    if (existing !== undefined && existing.body.t > body.t) return;
    const isNew = existing === undefined || existing.body.t < body.t;
    if (isNew) {
      if (existing === undefined && this.pending.size >= this.config.pendingRequestsMax) {
        // Admission control: a bounded table, and an answer instead of silence.
        this.out.events.push({ type: 'request-busy', client: body.client, t: body.t });
        return;
      }
      if (existing !== undefined) {
        this.queue.delete(requestKey(existing.body));
        // A newer request is the youngest: the timer times the oldest waiting one, and a client
        // that keeps sending newer requests must not keep its place at the front of the table.
        this.pending.delete(clientHex);
      }
      this.pending.set(clientHex, request);
    }
    if (this.status !== 'normal') return;
    if (this.primary === this.id) {
      const key = requestKey(body);
      if (!this.assigned.has(key)) this.queue.set(key, request);
      this.propose();
    } else if (isNew || !this.relayed.has(clientHex)) {
      // Forward to the primary (a client that only reached a backup is still served), once per
      // request and view: a client retries to every replica, and relaying every copy would hand a
      // primary that is already behind n-1 more duplicates of each retry. The stream to the
      // primary is reliable; if it dropped the request anyway, the timer moves to a new view.
      this.relayed.add(clientHex);
      this.sendTo(this.primary, { type: 'request', request });
    }
    // Every replica watches its pending requests. The primary's timer only matters once it is no
    // longer the primary it thinks it is (see onTimerExpired).
    if (this.timerTicksLeft === null) this.startTimer();
  }

  /** Whether request (client, t) executed already or never may (the application's floor). */
  private isSpent(client: Uint8Array, t: number): boolean {
    const floor = this.stateMachine.requestFloor(client);
    return floor !== null && t <= floor;
  }

  private sendReply(client: Uint8Array, record: ClientRecord): void {
    this.out.replies.push({
      client,
      reply: {
        type: 'reply',
        view: this.view,
        seq: record.seq,
        t: record.t,
        client,
        replica: this.id,
        result: record.result,
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // Normal case: PRE-PREPARE, PREPARE, COMMIT.

  /** Primary: assign sequence numbers to queued requests while the window and pipeline allow. */
  private propose(): void {
    if (!this.isPrimary || this.proposalsDeferred || !this.voting) return;
    while (this.queue.size > 0) {
      const seq = this.lastAssigned + 1;
      if (!this.inWindow(seq)) return;
      if (this.lastAssigned - this.lastExecuted >= this.config.pipelineDepthMax) return;
      const batch: Signed<RequestBody>[] = [];
      let batchBytes = 0;
      for (const [key, request] of this.queue) {
        if (batch.length >= this.config.batchSizeMax) break;
        const requestBytes = requestWireBytes(request);
        if (batchBytes + requestBytes > this.config.batchBytesMax) break;
        this.queue.delete(key);
        if (this.isSpent(request.body.client, request.body.t) || this.assigned.has(key)) continue;
        this.assigned.add(key);
        batch.push(request);
        batchBytes += requestBytes;
      }
      if (batch.length === 0) return;
      this.paddingUnderway = false;
      this.assign(seq, batch);
    }
  }

  /** Primary: send PRE-PREPARE for `batch` at `seq` (the next free sequence number). */
  private assign(seq: number, batch: Signed<RequestBody>[]): void {
    invariant(seq === this.lastAssigned + 1, 'sequence numbers are assigned in order');
    this.lastAssigned = seq;
    this.busyAtTick = this.ticks;
    const prePrepare = this.signed<PrePrepareBody>({
      type: 'pre-prepare',
      view: this.view,
      seq,
      digest: batchDigest(batch, this.sha256),
      replica: this.id,
    });
    const message: LogMessage = { type: 'pre-prepare', prePrepare, batch };
    this.entry(seq).prePrepare = prePrepare;
    this.entry(seq).batch = batch;
    this.out.persist.push({ type: 'log', message });
    this.broadcast(message);
  }

  /**
   * Primary, idle for a retransmission interval, with a replica known to lag: fill the slots up to
   * the next checkpoint with null requests (empty batches, as in a NEW-VIEW). An idle cluster would
   * otherwise never certify its last few executions, and a replica that missed them while it sat in
   * a view change of its own (it woke from a pause into a newer view than the others) could not
   * catch up: it ignores the older view's messages, and state transfer needs a stable checkpoint
   * that covers them. A liar can trigger this at most once per checkpoint interval of real work.
   * A recovering replica's FETCH-STATE pads to the end of the window: it needs the cluster 2L past
   * the checkpoint it learnt of, and asks again every retransmission interval while it recovers.
   * Once begun, padding goes on a pipeline at a time until real requests arrive or the target is
   * reached.
   */
  private padToCheckpointWhenIdle(): void {
    if (!this.isPrimary || this.status !== 'normal' || !this.voting) return;
    const interval = this.config.checkpointInterval;
    if (this.recoveringPeerSeen) {
      this.recoveringPeerSeen = false;
      this.padTarget = Math.max(this.padTarget, this.stable.seq + this.config.watermarkWindow);
    }
    if (this.laggardSeen) {
      if (this.lastExecuted % interval === 0) this.laggardSeen = false;
      else this.padTarget = Math.max(this.padTarget, Math.ceil(this.lastExecuted / interval) * interval);
    }
    if (this.lastAssigned >= this.padTarget) {
      this.paddingUnderway = false;
      return;
    }
    if (this.queue.size > 0 || this.lastAssigned !== this.lastExecuted) return;
    if (!this.paddingUnderway && this.ticks - this.busyAtTick < this.config.retransmitIntervalTicks) return;
    while (this.lastAssigned < this.padTarget) {
      const seq = this.lastAssigned + 1;
      if (!this.inWindow(seq) || seq - this.lastExecuted > this.config.pipelineDepthMax) return;
      this.assign(seq, []);
      this.paddingUnderway = true;
    }
  }

  /** Most bytes of early ordering messages kept from one sender. */
  private get earlyBytesPerReplicaMax(): number {
    return (
      EARLY_BATCHES_PER_REPLICA * this.config.batchBytesMax + 2 * this.config.watermarkWindow * VOTE_BYTES_MAX
    );
  }

  /** Bytes of early ordering messages held, from every sender (for tests and metrics). */
  get earlyMessageBytes(): number {
    let bytes = 0;
    for (const buffered of this.earlyMessages.values()) bytes += buffered.bytes;
    return bytes;
  }

  /**
   * Keep an ordering message of a view this replica has not entered yet, if it could be valid
   * there: the next view at most, a sequence number inside the window, one message per (type,
   * view, seq) from each sender (a second PRE-PREPARE for a slot is never taken), and within the
   * sender's byte budget. Messages left out are not lost for good: their senders retransmit them.
   */
  private bufferEarly(replica: ReplicaId, message: LogMessage): void {
    const view = logMessageView(message);
    const seq = logMessageSeq(message);
    const viewsAhead = this.status === 'view-change' ? EARLY_VIEWS_AHEAD - 1 : EARLY_VIEWS_AHEAD;
    if (view > this.view + viewsAhead || !this.inWindow(seq)) return;
    let buffered = this.earlyMessages.get(replica);
    if (buffered === undefined) {
      buffered = { messages: new Map(), bytes: 0 };
      this.earlyMessages.set(replica, buffered);
    }
    const key = `${message.type}:${view}:${seq}`;
    if (buffered.messages.has(key)) return;
    const bytes = logMessageBytes(message);
    if (buffered.bytes + bytes > this.earlyBytesPerReplicaMax) return;
    buffered.messages.set(key, message);
    buffered.bytes += bytes;
  }

  /** After entering a view: process what peers sent for it early, drop what is now stale. */
  private replayEarly(): void {
    const ready: LogMessage[] = [];
    for (const [replica, buffered] of this.earlyMessages) {
      for (const [key, message] of buffered.messages) {
        const view = logMessageView(message);
        if (view > this.view) continue;
        if (view === this.view) ready.push(message);
        buffered.messages.delete(key);
        buffered.bytes -= logMessageBytes(message);
      }
      if (buffered.messages.size === 0) this.earlyMessages.delete(replica);
    }
    for (const message of ready) this.dispatch(message);
  }

  private entry(seq: number): LogEntry {
    let entry = this.log.get(seq);
    if (entry === undefined) {
      entry = {
        seq,
        prePrepare: null,
        batch: null,
        prepares: new Map(),
        commits: new Map(),
        answeredAtTick: new Map(),
        prepared: false,
        committed: false,
      };
      this.log.set(seq, entry);
    }
    return entry;
  }

  /** Shared acceptance test for ordering messages: the current view, normal status, in the window. */
  private acceptOrdering(body: PrePrepareBody | PrepareBody | CommitBody, message: LogMessage): boolean {
    if (body.view > this.view || (body.view === this.view && this.status === 'view-change')) {
      // Peers that entered the view first speak before our NEW-VIEW arrives: keep it for then.
      this.bufferEarly(body.replica, message);
      this.noticeHigherView(body.replica, body.view);
      return false;
    }
    if (body.view < this.view) {
      this.sendNewViewTo(body.replica, body.view);
      // Rejected as a message of this view; a COMMIT or a batch may still help execute a slot the
      // old view committed (commits-elsewhere.ts).
      this.keepCommittedElsewhere(message);
      this.rejectBody(body, 'old-view');
      return false;
    }
    if (!this.inWindow(body.seq)) {
      this.rejectBody(body, 'outside-watermarks');
      return false;
    }
    return true;
  }

  /**
   * A COMMIT, or a PRE-PREPARE's batch, of a view this replica has left, for a slot it has not
   * executed: kept towards a commit certificate (commits-elsewhere.ts).
   */
  private keepCommittedElsewhere(message: LogMessage): void {
    const seq = logMessageSeq(message);
    if (seq <= this.lastExecuted || !this.inWindow(seq)) return;
    if (message.type === 'commit') {
      this.commitsElsewhere.addCommit(message.commit);
    } else if (message.type === 'pre-prepare') {
      // onPrePrepare checked, before any view rule, that it comes from its view's primary and that
      // the batch matches the digest and the size bounds.
      const { view, digest, replica } = message.prePrepare.body;
      const { batch } = message;
      this.commitsElsewhere.addBatch(seq, view, digest, batch, batchWireBytes(batch), replica);
    } else {
      return;
    }
    this.executeCommitted();
  }

  private onPrePrepare(prePrepare: Signed<PrePrepareBody>, batch: Signed<RequestBody>[]): void {
    const body = prePrepare.body;
    if (body.replica !== primaryOf(body.view, this.quorums.n))
      return this.rejectBody(body, 'not-from-primary');
    // What does not depend on the view is checked first, so that no early buffer holds it.
    if (batch.length > this.config.batchSizeMax) return this.rejectBody(body, 'batch-too-large');
    if (batchWireBytes(batch) > this.config.batchBytesMax)
      return this.rejectBody(body, 'batch-too-many-bytes');
    if (!bytesEqual(batchDigest(batch, this.sha256), body.digest))
      return this.rejectBody(body, 'digest-mismatch');
    if (!this.acceptOrdering(body, { type: 'pre-prepare', prePrepare, batch })) return;
    const entry = this.entry(body.seq);
    if (entry.prePrepare !== null) {
      // Never accept two PRE-PREPAREs for one (view, seq) with different digests.
      if (!bytesEqual(entry.prePrepare.body.digest, body.digest))
        return this.rejectBody(body, 'conflicting-pre-prepare');
      // The NEW-VIEW gave this slot's digest without its batch: the primary's copy completes it.
      if (entry.batch === null) this.completeSlot(entry, batch);
      return;
    }
    this.acceptPrePrepare(entry, prePrepare, batch);
    this.checkPrepared(entry);
  }

  private acceptPrePrepare(
    entry: LogEntry,
    prePrepare: Signed<PrePrepareBody>,
    batch: Signed<RequestBody>[],
  ): void {
    entry.prePrepare = prePrepare;
    entry.batch = batch;
    this.dropVotesForOtherDigests(entry);
    this.batches.add(entry.seq, prePrepare.body.view, prePrepare.body.digest, batch);
    this.fetches.done(entry.seq);
    this.out.persist.push({ type: 'log', message: { type: 'pre-prepare', prePrepare, batch } });
    for (const request of batch) this.assigned.add(requestKey(request.body));
    this.sendPrepareIfDue(entry);
  }

  /**
   * The highest sequence number this replica votes for now (VOTE_AHEAD_PIPELINES). Withholding a
   * vote is always safe; the slot still prepares and commits here on the others' votes.
   */
  private get voteHorizon(): number {
    const executed = Math.max(this.lastExecuted, this.stable.seq);
    return executed + VOTE_AHEAD_PIPELINES * this.config.pipelineDepthMax;
  }

  /** PREPARE a slot with its PRE-PREPARE and batch, once, if it is a backup's and within the horizon. */
  private sendPrepareIfDue(entry: LogEntry): void {
    const prePrepare = entry.prePrepare;
    if (prePrepare === null || entry.batch === null || !this.voting) return;
    if (prePrepare.body.replica === this.id || entry.prepares.has(this.id)) return;
    if (entry.seq > this.voteHorizon) return;
    const prepare = this.signed<PrepareBody>({
      type: 'prepare',
      view: prePrepare.body.view,
      seq: prePrepare.body.seq,
      digest: prePrepare.body.digest,
      replica: this.id,
    });
    entry.prepares.set(this.id, prepare);
    const message: LogMessage = { type: 'prepare', prepare };
    this.out.persist.push({ type: 'log', message });
    this.broadcast(message);
  }

  /** COMMIT a prepared slot, once, if it is within the horizon. */
  private sendCommitIfDue(entry: LogEntry): void {
    if (!entry.prepared || entry.prePrepare === null || entry.commits.has(this.id) || !this.voting) return;
    if (entry.seq > this.voteHorizon) return;
    const commit = this.signed<CommitBody>({
      type: 'commit',
      view: entry.prePrepare.body.view,
      seq: entry.seq,
      digest: entry.prePrepare.body.digest,
      replica: this.id,
    });
    entry.commits.set(this.id, commit);
    const message: LogMessage = { type: 'commit', commit };
    this.out.persist.push({ type: 'log', message });
    this.broadcast(message);
  }

  /** Execution moved the horizon: cast the votes withheld for the slots it now covers. */
  private voteWhereDue(): void {
    if (this.status !== 'normal') return;
    const horizon = Math.min(this.voteHorizon, this.stable.seq + this.config.watermarkWindow);
    for (let seq = this.lastExecuted + 1; seq <= horizon; seq++) {
      const entry = this.log.get(seq);
      if (entry === undefined || entry.prePrepare?.body.view !== this.view) continue;
      this.sendPrepareIfDue(entry);
      this.sendCommitIfDue(entry);
    }
  }

  /**
   * A slot of a NEW-VIEW: re-run the normal case with the batch behind its digest if this replica
   * has it (the null request it always has); otherwise keep the header and fetch the batch from the
   * replicas that vouched for it. No PREPARE goes out for a batch this replica has not seen.
   */
  private acceptNewViewSlot(prePrepare: Signed<PrePrepareBody>, slot: NewViewSlot): void {
    const batch = slot.isNull ? [] : this.batchFor(slot.seq, slot.digest);
    const entry = this.entry(slot.seq);
    if (batch !== undefined) {
      this.acceptPrePrepare(entry, prePrepare, batch);
      return;
    }
    entry.prePrepare = prePrepare;
    this.fetches.want(
      slot.seq,
      slot.digest,
      slot.sources.filter((replica) => replica !== this.id),
    );
  }

  /** The batch with `digest` at `seq`, if this replica holds it. */
  private batchFor(seq: number, digest: Uint8Array): Signed<RequestBody>[] | undefined {
    const prepared = this.prepared.get(seq);
    if (prepared !== undefined && bytesEqual(prepared.certificate.prePrepare.body.digest, digest))
      return prepared.batch;
    const entry = this.log.get(seq);
    if (entry?.batch != null && entry.prePrepare !== null && bytesEqual(entry.prePrepare.body.digest, digest))
      return entry.batch;
    return this.batches.find(seq, digest);
  }

  /** A slot that had only its PRE-PREPARE header gets its batch: prepare it like any other. */
  private completeSlot(entry: LogEntry, batch: Signed<RequestBody>[]): void {
    invariant(entry.prePrepare !== null && entry.batch === null, 'only a header-only slot is completed');
    this.acceptPrePrepare(entry, entry.prePrepare, batch);
    this.out.events.push({ type: 'batch-fetched', seq: entry.seq });
    this.checkPrepared(entry);
    this.executeCommitted();
  }

  /** One round of FETCH-BATCH for every slot still without its batch (each retransmission interval). */
  private askForBatches(): void {
    if (this.fetches.size === 0) return;
    for (const [seq, entry] of this.log) {
      const awaited = this.fetches.awaited(seq);
      if (awaited === undefined || entry.batch !== null) continue;
      const local = this.batchFor(seq, awaited);
      if (local !== undefined) this.completeSlot(entry, local);
    }
    for (const { seq, digest, ask } of this.fetches.nextRound()) {
      const fetchBatch = this.signed<FetchBatchBody>({ type: 'fetch-batch', seq, digest, replica: this.id });
      for (const replica of ask) this.sendTo(replica, { type: 'fetch-batch', fetchBatch });
    }
  }

  /**
   * Hand over a batch this replica holds, at most once per retransmission interval per replica and
   * sequence number (a liar asking again and again gets one answer per interval per slot).
   */
  private onFetchBatch(fetchBatch: Signed<FetchBatchBody>): void {
    const { seq, digest, replica } = fetchBatch.body;
    if (replica === this.id || !this.inWindow(seq)) return;
    const batch = this.batchFor(seq, digest);
    if (batch === undefined) return;
    const key = `${replica}:${seq}`;
    const servedAt = this.batchServedAtTick.get(key);
    if (servedAt !== undefined && this.ticks - servedAt < this.config.retransmitIntervalTicks) return;
    this.batchServedAtTick.set(key, this.ticks);
    this.sendTo(replica, { type: 'batch', seq, batch });
  }

  /** A BATCH is taken only for a slot waiting for exactly its digest: the digest authenticates it. */
  private onBatch(seq: number, batch: Signed<RequestBody>[]): void {
    const entry = this.log.get(seq);
    const awaited = this.fetches.awaited(seq);
    if (entry === undefined || entry.batch !== null || awaited === undefined) return;
    if (!bytesEqual(batchDigest(batch, this.sha256), awaited)) {
      this.out.events.push({ type: 'message-rejected', messageType: 'batch', reason: 'digest-mismatch' });
      return;
    }
    this.completeSlot(entry, batch);
  }

  private onPrepare(prepare: Signed<PrepareBody>): void {
    const body = prepare.body;
    if (!this.acceptOrdering(body, { type: 'prepare', prepare })) return;
    if (body.replica === primaryOf(body.view, this.quorums.n))
      return this.rejectBody(body, 'prepare-from-primary');
    const entry = this.entry(body.seq);
    if (this.votesForOtherDigest(entry, body)) return this.rejectBody(body, 'vote-for-other-digest');
    if (entry.prepares.has(body.replica)) return this.answerRetransmission(entry, body.replica);
    entry.prepares.set(body.replica, prepare);
    this.out.persist.push({ type: 'log', message: { type: 'prepare', prepare } });
    this.checkPrepared(entry);
  }

  /**
   * A vote in this view for a digest other than the one this replica accepted for the slot: one
   * PRE-PREPARE per (view, seq), so the vote cannot count towards anything here, and it shows a lie
   * (by its sender, or by a primary that pre-prepared two digests). It is counted, not kept.
   */
  private votesForOtherDigest(entry: LogEntry, vote: PrepareBody | CommitBody): boolean {
    return entry.prePrepare !== null && !bytesEqual(entry.prePrepare.body.digest, vote.digest);
  }

  /** Votes kept before the slot's PRE-PREPARE arrived that turn out to be for another digest. */
  private dropVotesForOtherDigests(entry: LogEntry): void {
    for (const votes of [entry.prepares, entry.commits] as Map<
      ReplicaId,
      Signed<PrepareBody | CommitBody>
    >[]) {
      for (const [replica, vote] of votes) {
        if (!this.votesForOtherDigest(entry, vote.body)) continue;
        votes.delete(replica);
        this.rejectBody(vote.body, 'vote-for-other-digest');
      }
    }
  }

  private matchingPrepares(entry: LogEntry): Signed<PrepareBody>[] {
    const digest = entry.prePrepare?.body.digest;
    if (digest === undefined) return [];
    return [...entry.prepares.values()]
      .filter((prepare) => bytesEqual(prepare.body.digest, digest))
      .sort((a, b) => a.body.replica - b.body.replica);
  }

  /** prepared(m, v, n, i): a PRE-PREPARE plus 2f matching PREPAREs from distinct backups. */
  private checkPrepared(entry: LogEntry): void {
    if (entry.prepared || entry.prePrepare === null || entry.batch === null) return;
    const prepares = this.matchingPrepares(entry);
    if (prepares.length < 2 * this.quorums.f) return;
    entry.prepared = true;
    const certificate: PreparedCertificate = {
      prePrepare: entry.prePrepare,
      prepares: prepares.slice(0, 2 * this.quorums.f),
    };
    const slot: PreparedSlot = { certificate, batch: entry.batch };
    this.prepared.set(entry.seq, slot);
    this.out.persist.push({ type: 'prepared', slot });
    this.sendCommitIfDue(entry);
    this.checkCommitted(entry);
  }

  private onCommit(commit: Signed<CommitBody>): void {
    const body = commit.body;
    if (!this.acceptOrdering(body, { type: 'commit', commit })) return;
    const entry = this.entry(body.seq);
    if (this.votesForOtherDigest(entry, body)) return this.rejectBody(body, 'vote-for-other-digest');
    if (entry.commits.has(body.replica)) return this.answerRetransmission(entry, body.replica);
    entry.commits.set(body.replica, commit);
    this.out.persist.push({ type: 'log', message: { type: 'commit', commit } });
    this.checkCommitted(entry);
  }

  /** committed-local(m, v, n, i): prepared plus 2f+1 matching COMMITs (possibly including its own). */
  private checkCommitted(entry: LogEntry): void {
    if (entry.committed || !entry.prepared || entry.prePrepare === null) return;
    const digest = entry.prePrepare.body.digest;
    let matching = 0;
    for (const commit of entry.commits.values()) if (bytesEqual(commit.body.digest, digest)) matching++;
    if (matching < this.quorums.quorum) return;
    entry.committed = true;
    this.executeCommitted();
  }

  // -------------------------------------------------------------------------------------------
  // Execution and checkpoints.

  /** Execute committed batches strictly in sequence order. */
  private executeCommitted(): void {
    let progressed = false;
    let progressedInView = false;
    for (;;) {
      const seq = this.lastExecuted + 1;
      const entry = this.log.get(seq);
      if (entry?.committed && entry.batch !== null && entry.prePrepare !== null) {
        this.executeBatch(seq, entry.prePrepare.body.view, entry.prePrepare.body.digest, entry.batch);
        progressed = progressedInView = true;
        continue;
      }
      const elsewhere = this.commitsElsewhere.certified(seq, (at, digest) => this.batchFor(at, digest));
      if (elsewhere === undefined) break;
      this.executeBatch(seq, elsewhere.view, elsewhere.digest, elsewhere.batch);
      progressed = true;
    }
    if (!progressed) return;
    this.commitsElsewhere.prune(this.lastExecuted);
    this.voteWhereDue();
    // Progress of this view: it is working, so the timeout returns to its base value. (Slots that
    // an older view committed say nothing of this one.)
    if (progressedInView) this.timeoutTicks = this.config.viewChangeTimeoutTicks;
    if (this.status === 'normal') {
      if (this.pending.size === 0) this.stopTimer();
      else if (this.timerTicksLeft === null || !this.isTimedRequestPending()) this.startTimer();
      else if (this.pendingProgress) this.extendTimer();
    }
    this.pendingProgress = false;
    this.propose();
  }

  private executeBatch(seq: number, view: number, digest: Uint8Array, batch: Signed<RequestBody>[]): void {
    invariant(seq === this.lastExecuted + 1, 'batches execute strictly in sequence order');
    this.busyAtTick = this.ticks;
    const requests: ExecutedRequest[] = [];
    const cached = new Map<string, ClientRecord>();
    for (const request of batch) {
      const body = request.body;
      const clientHex = toHex(body.client);
      let result: Uint8Array | null = null;
      // Exactly once: a request numbered at most the client's floor is skipped (executed before,
      // or voided when the application came to know the client). A stranger's request executes
      // (it can change nothing) only if t ≤ seq, so that the floor the application gives the
      // client when it comes to know it at a later seq voids it; nothing is kept for strangers, so
      // no number of fresh keys uses up anything an honest client needs. (The application's floor
      // already counts requests executed earlier in this batch.)
      const floor = this.stateMachine.requestFloor(body.client);
      if (floor === null && body.t > seq) {
        this.out.events.push({
          type: 'request-refused',
          client: body.client,
          t: body.t,
          reason: 'unknown-client',
        });
      } else if (floor === null || body.t > floor) {
        result = this.stateMachine.execute(seq, body.client, body.t, body.op);
        const record: ClientRecord = { t: body.t, seq, result };
        if (floor !== null) cached.set(clientHex, record);
        this.sendReply(body.client, record);
      } else if (body.t < floor || (cached.get(clientHex) ?? this.clients.get(clientHex))?.t !== body.t) {
        // Voided, or executed long ago: tell the client (a duplicate of the last one says nothing).
        this.out.events.push({ type: 'request-stale', client: body.client, t: body.t, lastExecutedT: floor });
      }
      requests.push({ request, result });
      const waiting = this.pending.get(clientHex);
      if (waiting !== undefined && waiting.body.t <= body.t) {
        if (clientHex !== this.timedRequest?.clientHex) this.pendingProgress = true;
        this.pending.delete(clientHex);
        this.relayed.delete(clientHex);
      }
      const key = requestKey(body);
      this.queue.delete(key);
      this.assigned.delete(key);
    }
    this.cacheReplies(cached);
    this.lastExecuted = seq;
    this.idleAnnouncementInIntervals = 1;
    this.idleAnnouncementGapIntervals = 1;
    this.out.executed.push({ seq, view, digest, requests });
    if (seq % this.config.checkpointInterval === 0) this.takeCheckpoint(seq);
  }

  /**
   * Put one batch's replies into the reply cache, behind every older entry and in client order (so
   * that the cache's order is (seq, client) on every replica, also after a restore), then evict the
   * least recently executed down to clientTableMax.
   */
  private cacheReplies(batchRecords: Map<string, ClientRecord>): void {
    for (const clientHex of [...batchRecords.keys()].sort()) {
      this.clients.delete(clientHex);
      this.clients.set(clientHex, batchRecords.get(clientHex)!);
    }
    for (const clientHex of this.clients.keys()) {
      if (this.clients.size <= this.config.clientTableMax) break;
      this.clients.delete(clientHex);
    }
  }

  /** The replicated state: the application's snapshot plus the client table (reply cache). */
  private takeSnapshot(): Uint8Array {
    const clientsInKeyOrder = [...this.clients.keys()].sort().map((clientHex) => ({
      client: fromHex(clientHex),
      ...this.clients.get(clientHex)!,
    }));
    return encodeCanonical({ app: this.stateMachine.snapshot(), clients: clientsInKeyOrder });
  }

  private restoreSnapshot(snapshot: Uint8Array): void {
    const fields = readMap(decodeCanonical(snapshot, SNAPSHOT_SIZE_MAX_BYTES), 'snapshot', [
      'app',
      'clients',
    ]);
    const app = readBytes(fields['app'], 'snapshot.app');
    const records = readArray(
      fields['clients'],
      'snapshot.clients',
      this.config.clientTableMax,
      (item, what) => {
        const record = readMap(item, what, ['client', 't', 'seq', 'result']);
        return {
          client: readBytes(record['client'], `${what}.client`, PUBLIC_KEY_BYTES),
          t: readUint(record['t'], `${what}.t`),
          seq: readUint(record['seq'], `${what}.seq`),
          result: readBytes(record['result'], `${what}.result`),
        };
      },
    );
    this.stateMachine.restore(app);
    this.clients.clear();
    // Eviction order: (seq, client), as cacheReplies keeps it while executing.
    const ordered = records
      .map(({ client, ...record }) => ({ clientHex: toHex(client), record }))
      .sort((a, b) => a.record.seq - b.record.seq || (a.clientHex < b.clientHex ? -1 : 1));
    for (const { clientHex, record } of ordered) this.clients.set(clientHex, record);
  }

  private takeCheckpoint(seq: number): void {
    const snapshot = this.takeSnapshot();
    // The state must fit one STATE frame, or lagging replicas could never fetch it (the ledger's
    // account cap keeps it there).
    invariant(
      snapshot.length <= SNAPSHOT_SIZE_MAX_BYTES,
      `state of ${snapshot.length} bytes exceeds one STATE frame`,
    );
    const stateDigest = this.sha256(snapshot);
    const message = this.signed<CheckpointBody>({ type: 'checkpoint', seq, stateDigest, replica: this.id });
    this.ownCheckpoints.set(seq, { message, snapshot });
    this.out.events.push({ type: 'checkpoint-taken', seq, stateDigest });
    // Recovering, it keeps its own checkpoint (to check others' against and to adopt the stable
    // one) but neither sends it nor counts it: the certificate is made of 2f+1 others' votes.
    if (!this.voting) return;
    this.broadcast({ type: 'checkpoint', checkpoint: message });
    this.recordCheckpointVote(message);
  }

  private onCheckpoint(checkpoint: Signed<CheckpointBody>): void {
    const body = checkpoint.body;
    if (body.seq > this.lastExecuted && body.replica !== this.id) this.behindSeen = true;
    // A CHECKPOINT for the stable seq that arrives after the certificate is complete (the slowest
    // or a lying voter's) can still be judged: the stable digest is certified by 2f+1, so one
    // that differs is a provable lie, shown however late the liar sends it. Older ones are
    // dropped: nothing is kept to judge them against.
    if (body.seq === this.stable.seq && body.replica !== this.id) {
      if (!bytesEqual(body.stateDigest, this.stable.stateDigest))
        this.rejectBody(body, 'checkpoint-state-mismatch');
      return;
    }
    if (body.seq <= this.stable.seq) return;
    if (body.seq % this.config.checkpointInterval !== 0)
      return this.rejectBody(body, 'checkpoint-not-on-interval');
    this.recordCheckpointVote(checkpoint);
  }

  private recordCheckpointVote(checkpoint: Signed<CheckpointBody>): void {
    const { seq, replica } = checkpoint.body;
    let votes = this.checkpointVotes.get(seq);
    if (votes === undefined) {
      votes = new Map();
      this.checkpointVotes.set(seq, votes);
    }
    if (votes.has(replica)) return;
    // The state digest is deterministic: a CHECKPOINT that differs from this replica's own at the
    // same seq is a lie (or this replica's state is damaged); it cannot count towards a proof
    // with this replica's own vote, so it is counted and not kept.
    const own = this.ownCheckpoints.get(seq)?.message.body.stateDigest;
    if (own !== undefined && replica !== this.id && !bytesEqual(own, checkpoint.body.stateDigest))
      return this.rejectBody(checkpoint.body, 'checkpoint-state-mismatch');
    if (replica === this.id) {
      for (const [other, vote] of votes) {
        if (bytesEqual(vote.body.stateDigest, checkpoint.body.stateDigest)) continue;
        votes.delete(other);
        this.rejectBody(vote.body, 'checkpoint-state-mismatch');
      }
    }
    votes.set(replica, checkpoint);
    this.boundCheckpointVotes(replica);
    this.checkStable(seq);
  }

  /** A replica may have votes at a bounded number of checkpoint sequence numbers; drop its oldest. */
  private boundCheckpointVotes(replica: ReplicaId): void {
    const limit =
      this.config.watermarkWindow / this.config.checkpointInterval + CHECKPOINT_VOTES_PER_REPLICA_EXTRA;
    const seqs = [...this.checkpointVotes.entries()]
      .filter(([, votes]) => votes.has(replica))
      .map(([seq]) => seq)
      .sort((a, b) => a - b);
    for (const seq of seqs.slice(0, Math.max(0, seqs.length - limit))) {
      const votes = this.checkpointVotes.get(seq)!;
      votes.delete(replica);
      if (votes.size === 0) this.checkpointVotes.delete(seq);
    }
  }

  /** 2f+1 matching CHECKPOINTs make a checkpoint stable. */
  private checkStable(seq: number): void {
    const votes = this.checkpointVotes.get(seq);
    if (votes === undefined || votes.size < this.quorums.quorum) return;
    const byDigest = new Map<string, Signed<CheckpointBody>[]>();
    for (const vote of votes.values()) {
      const key = toHex(vote.body.stateDigest);
      byDigest.set(key, [...(byDigest.get(key) ?? []), vote]);
    }
    for (const group of byDigest.values()) {
      if (group.length < this.quorums.quorum) continue;
      const proof = group.sort((a, b) => a.body.replica - b.body.replica).slice(0, this.quorums.quorum);
      this.adoptStableCheckpoint({ seq, stateDigest: proof[0]!.body.stateDigest, proof }, true);
      return;
    }
  }

  /**
   * Advance the low watermark to a checkpoint certified by 2f+1 replicas. A replica that has not
   * executed that far keeps executing while its log still covers the gap (`mayDefer`); otherwise,
   * or if that stalls, it fetches the certified state, which at least f+1 correct replicas hold.
   */
  private adoptStableCheckpoint(certified: CertifiedCheckpoint, mayDefer: boolean): void {
    const { seq, stateDigest } = certified;
    if (seq <= this.stable.seq) return;
    if (this.lastExecuted >= seq) {
      const own = this.ownCheckpoints.get(seq);
      invariant(own !== undefined, `own checkpoint ${seq} is kept until it becomes stable`);
      invariant(
        bytesEqual(own.message.body.stateDigest, stateDigest),
        `state at checkpoint ${seq} differs from the one 2f+1 replicas certified`,
      );
      this.stable = certified;
      this.stableSnapshot = own.snapshot;
      this.out.persist.push({
        type: 'stable-checkpoint',
        checkpoint: { ...certified, snapshot: own.snapshot },
      });
      this.out.events.push({ type: 'checkpoint-stable', seq, stateDigest });
    } else if (mayDefer && this.logCoversUpTo(seq)) {
      if (this.stableCandidate === null || this.stableCandidate.seq < seq) {
        this.stableCandidate = { ...certified, sinceTick: this.stableCandidate?.sinceTick ?? this.ticks };
      }
      return;
    } else {
      this.stable = certified;
      this.stableSnapshot = null;
      this.pendingStateTransfer = { seq, stateDigest };
      this.out.events.push({ type: 'state-transfer-requested', seq });
      this.requestState();
    }
    if (this.stableCandidate !== null && this.stableCandidate.seq <= seq) this.stableCandidate = null;
    this.collectGarbage(seq);
    this.maybeFinishRecovery();
    this.voteWhereDue();
    this.propose();
  }

  /** Every sequence number up to `seq` has a PRE-PREPARE here, so execution can still get there. */
  private logCoversUpTo(seq: number): boolean {
    for (let next = this.lastExecuted + 1; next <= seq; next++) {
      if (this.log.get(next)?.prePrepare == null) return false;
    }
    return true;
  }

  /** A certified checkpoint that execution has not reached within two retransmissions is fetched. */
  private checkStableCandidate(): void {
    const candidate = this.stableCandidate;
    if (candidate === null) return;
    if (candidate.seq <= this.stable.seq) {
      this.stableCandidate = null;
      return;
    }
    if (this.ticks - candidate.sinceTick < 2 * this.config.retransmitIntervalTicks) return;
    this.stableCandidate = null;
    this.adoptStableCheckpoint(candidate, false);
  }

  /** Discard everything at or below a stable checkpoint: the log, certificates, old checkpoints. */
  private collectGarbage(seq: number): void {
    for (const entrySeq of this.log.keys()) if (entrySeq <= seq) this.log.delete(entrySeq);
    for (const certificateSeq of this.prepared.keys())
      if (certificateSeq <= seq) this.prepared.delete(certificateSeq);
    this.batches.prune(seq);
    this.fetches.prune(seq);
    this.commitsElsewhere.prune(seq);
    for (const key of this.batchServedAtTick.keys())
      if (Number(key.split(':')[1]) <= seq) this.batchServedAtTick.delete(key);
    for (const voteSeq of this.checkpointVotes.keys())
      if (voteSeq <= seq) this.checkpointVotes.delete(voteSeq);
    for (const ownSeq of this.ownCheckpoints.keys()) if (ownSeq < seq) this.ownCheckpoints.delete(ownSeq);
    if (this.lastAssigned < seq) this.lastAssigned = seq;
  }

  // -------------------------------------------------------------------------------------------
  // State transfer.

  private requestState(): void {
    const fetchState = this.signed<FetchStateBody>({
      type: 'fetch-state',
      view: this.view,
      lastExecuted: this.lastExecuted,
      recovering: this.recovery !== null,
      replica: this.id,
    });
    this.broadcast({ type: 'fetch-state', fetchState });
  }

  /**
   * Bring a replica up to date, at most once per retransmission interval per replica (snapshots
   * are large): the NEW-VIEW of our newer view, our own messages for the slots it has not executed
   * (its peers' together make the certificates it needs), and our stable state if it is newer.
   */
  private onFetchState(fetchState: Signed<FetchStateBody>): void {
    const { replica, lastExecuted, view, recovering } = fetchState.body;
    if (replica === this.id) return;
    if (lastExecuted < this.lastExecuted) this.laggardSeen = true;
    if (recovering) this.recoveringPeerSeen = true;
    // The asker executed further than this replica: ask it in turn (at the next retransmission).
    if (lastExecuted > this.lastExecuted) this.behindSeen = true;
    if (view < this.view) this.sendNewViewTo(replica, view);
    const missing = [...this.log.values()]
      .filter((entry) => entry.seq > lastExecuted)
      .sort((a, b) => a.seq - b.seq);
    if (this.status === 'normal' && missing.length > 0 && this.mayServe(this.slotsServedAtTick, replica)) {
      for (const entry of missing) {
        for (const message of this.ownSlotMessages(entry)) this.sendTo(replica, message);
        for (const commit of this.othersCommitCertificate(entry))
          this.sendTo(replica, { type: 'commit', commit });
      }
    }
    const snapshot = this.stableSnapshot;
    const newer = snapshot !== null && this.stable.seq > lastExecuted && this.stable.seq > 0;
    // A recovering replica needs every peer's stable checkpoint, newer than its own or not; the
    // proof is what it counts, so the snapshot travels only when it is of use.
    if (!newer && !recovering) return;
    if (!this.mayServe(this.stateServedAtTick, replica)) return;
    const state = this.signed<StateBody>({
      type: 'state',
      checkpointProof: this.stable.proof,
      snapshot: newer ? snapshot : new Uint8Array(0),
      replica: this.id,
    });
    this.sendTo(replica, { type: 'state', state });
  }

  /** At most one answer per retransmission interval per replica and kind. */
  private mayServe(servedAtTick: Map<ReplicaId, number>, replica: ReplicaId): boolean {
    const servedAt = servedAtTick.get(replica);
    if (servedAt !== undefined && this.ticks - servedAt < this.config.retransmitIntervalTicks) return false;
    servedAtTick.set(replica, this.ticks);
    return true;
  }

  /** Accept a snapshot only if its digest matches a checkpoint certificate of 2f+1 signatures. */
  private onState(state: Signed<StateBody>): void {
    const { checkpointProof, snapshot } = state.body;
    const seq = checkpointProof[0]?.body.seq ?? 0;
    // Only state newer than what this replica executed, and never below its low watermark; while
    // recovering, every peer's certified checkpoint counts as its report.
    const newer = seq > this.lastExecuted && seq >= this.stable.seq;
    if (!newer && this.recovery === null) return;
    const proof = seq === 0 ? null : checkCheckpointProof(checkpointProof, seq, this.certificateContext);
    if (proof !== null && !proof.ok) return this.rejectBody(state.body, proof.reason);
    if (this.recovery !== null) this.noteRecoveryReport(state.body.replica, seq);
    if (!newer || proof === null) return;
    const stateDigest = proof.value!;
    if (!bytesEqual(this.sha256(snapshot), stateDigest))
      return this.rejectBody(state.body, 'snapshot-digest-mismatch');
    this.restoreSnapshot(snapshot);
    this.lastExecuted = seq;
    if (this.lastAssigned < seq) this.lastAssigned = seq;
    this.ownCheckpoints.clear();
    this.stable = { seq, stateDigest, proof: checkpointProof };
    this.stableSnapshot = snapshot;
    if (this.pendingStateTransfer !== null && this.pendingStateTransfer.seq <= seq)
      this.pendingStateTransfer = null;
    this.out.persist.push({ type: 'stable-checkpoint', checkpoint: { ...this.stable, snapshot } });
    this.out.events.push({ type: 'state-transferred', seq });
    for (const [clientHex, request] of this.pending) {
      if (this.isSpent(request.body.client, request.body.t)) {
        this.pending.delete(clientHex);
        this.relayed.delete(clientHex);
      }
    }
    this.collectGarbage(seq);
    this.maybeFinishRecovery();
    this.voteWhereDue();
    this.executeCommitted();
  }

  // -------------------------------------------------------------------------------------------
  // Recovery from storage that could not be trusted (see `Recovery`).

  /** Whether this replica may sign votes: not while it recovers. */
  private get voting(): boolean {
    return this.recovery === null;
  }

  /** A peer's stable checkpoint, certified: the first 2f+1 reports fix where votes may resume. */
  private noteRecoveryReport(replica: ReplicaId, stableSeq: number): void {
    const recovery = this.recovery;
    if (recovery === null || replica === this.id) return;
    recovery.reported.set(replica, Math.max(stableSeq, recovery.reported.get(replica) ?? 0));
    if (recovery.untilSeq !== null || recovery.reported.size < this.quorums.quorum) return;
    recovery.untilSeq = Math.max(...recovery.reported.values()) + 2 * this.config.watermarkWindow;
    this.out.persist.push({ type: 'recovery', recovery: { untilSeq: recovery.untilSeq } });
    this.out.events.push({
      type: 'recovery-bounded',
      untilSeq: recovery.untilSeq,
      reports: recovery.reported.size,
    });
    this.maybeFinishRecovery();
  }

  /** The stable checkpoint reached the bound: vote again, above it only. */
  private maybeFinishRecovery(): void {
    const untilSeq = this.recovery?.untilSeq ?? null;
    if (untilSeq === null || this.stable.seq < untilSeq) return;
    this.recovery = null;
    // Its own checkpoints up to the bound were never sent; they stay unsent.
    for (const seq of this.ownCheckpoints.keys()) if (seq <= untilSeq) this.ownCheckpoints.delete(seq);
    this.out.persist.push({ type: 'recovery', recovery: null });
    this.out.events.push({ type: 'recovered', seq: this.stable.seq });
  }

  // -------------------------------------------------------------------------------------------
  // View change.

  /** Start the timer afresh; in normal operation it waits for the oldest pending request. */
  private startTimer(): void {
    this.timerTicksLeft = this.timeoutTicks;
    this.timedRequest = null;
    for (const [clientHex, request] of this.pending) {
      this.timedRequest = { clientHex, t: request.body.t, sinceTick: this.ticks };
      break;
    }
  }

  /**
   * Other requests this backup knew were waiting executed: the primary is working through a
   * backlog, so the timed request gets a fresh timeout, but never past `viewChangeTimeoutMaxTicks`
   * from when it was first timed. Under a load whose latency exceeds the timeout a correct primary
   * is not replaced for it, and a primary that serves everyone but one client (even clients that
   * send every request to the backups too) is replaced within that bound.
   */
  private extendTimer(): void {
    const timed = this.timedRequest;
    if (timed === null || this.timerTicksLeft === null) return;
    const leftInBoundTicks = timed.sinceTick + this.config.viewChangeTimeoutMaxTicks - this.ticks;
    this.timerTicksLeft = Math.max(this.timerTicksLeft, Math.min(this.timeoutTicks, leftInBoundTicks));
  }

  private stopTimer(): void {
    this.timerTicksLeft = null;
    this.timedRequest = null;
  }

  private isTimedRequestPending(): boolean {
    const timed = this.timedRequest;
    return timed !== null && this.pending.get(timed.clientHex)?.body.t === timed.t;
  }

  /**
   * A backup whose pending request did not execute in time suspects the primary. The primary does
   * not suspect itself: under load it is the busiest replica and the first to fall behind its own
   * timer, and a primary leaving its view alone stops the view for everyone until their timers
   * expire too. A primary left behind in an old view needs no timer either: its PRE-PREPAREs of
   * that view are answered with the NEW-VIEW of the newer one (acceptOrdering), and ordering
   * messages or VIEW-CHANGEs from f+1 replicas in higher views take it there.
   */
  private onTimerExpired(): void {
    if (this.status === 'normal') {
      if (this.pending.size === 0) return;
      // The request it waited for executed some other way (a state transfer): time the next one.
      if (!this.isTimedRequestPending()) {
        this.startTimer();
        return;
      }
    }
    if (this.isPrimary) return;
    this.startViewChange(this.view + 1, 'timeout');
  }

  /** Move to `newView`: stop taking part in the current view and send VIEW-CHANGE. */
  private startViewChange(newView: number, reason: ViewChangeReason): void {
    if (newView <= this.view) return;
    // Recovering, it cannot say truthfully what it prepared: it waits for the others' NEW-VIEW,
    // and asks for it (a FETCH-STATE is answered with the NEW-VIEW of a newer view).
    if (!this.voting) {
      this.behindSeen = true;
      return;
    }
    this.view = newView;
    this.status = 'view-change';
    this.log.clear();
    this.fetches.clear();
    this.queue.clear();
    this.assigned.clear();
    const prepared = [...this.prepared.values()]
      .map((slot) => slot.certificate)
      .filter((certificate) => certificate.prePrepare.body.seq > this.stable.seq)
      .sort((a, b) => a.prePrepare.body.seq - b.prePrepare.body.seq);
    const viewChange = this.signed<ViewChangeBody>({
      type: 'view-change',
      newView,
      stableSeq: this.stable.seq,
      checkpointProof: this.stable.proof,
      prepared,
      replica: this.id,
    });
    this.ownViewChange = viewChange;
    this.recentOwnViewChanges.set(newView, viewChange);
    if (this.recentOwnViewChanges.size > VIEW_CHANGES_PER_REPLICA_MAX) {
      this.recentOwnViewChanges.delete(Math.min(...this.recentOwnViewChanges.keys()));
    }
    this.out.persist.push({ type: 'view', view: newView, viewChangeInProgress: true });
    this.out.persist.push({ type: 'own-view-change', viewChange });
    this.out.events.push({ type: 'view-change-started', view: newView, reason });
    this.broadcast({ type: 'view-change', viewChange });
    this.stopTimer();
    this.higherViewSeen.clear();
    this.storeViewChange(viewChange);
    this.maybeSendNewView();
    this.maybeStartNewViewTimer();
  }

  private storeViewChange(viewChange: Signed<ViewChangeBody>): void {
    const { replica, newView } = viewChange.body;
    let byView = this.viewChanges.get(replica);
    if (byView === undefined) {
      byView = new Map();
      this.viewChanges.set(replica, byView);
    }
    byView.set(newView, viewChange);
    if (byView.size > VIEW_CHANGES_PER_REPLICA_MAX) byView.delete(Math.min(...byView.keys()));
  }

  private onViewChange(viewChange: Signed<ViewChangeBody>): void {
    const body = viewChange.body;
    // A replica that wants a newer view than ours while its state is older may be stuck there
    // alone (it woke from a pause, say) and can only catch up through a checkpoint.
    if (body.newView > this.view && body.stableSeq < this.lastExecuted) this.laggardSeen = true;
    if (body.newView <= this.view) {
      if (!this.sendNewViewTo(body.replica, body.newView) && body.newView < this.view) {
        this.sendOwnViewChangeTo(body.replica, body.newView);
      }
      if (body.newView < this.view || this.status === 'normal') return;
    }
    // A repeat of a VIEW-CHANGE already checked (senders retransmit them) needs no second check of
    // its certificates, one per prepared slot.
    const stored = this.viewChanges.get(body.replica)?.get(body.newView);
    if (stored === undefined || !bytesEqual(stored.bytes, viewChange.bytes)) {
      const reason = checkViewChange(body, this.certificateContext);
      if (reason !== null) return this.rejectBody(body, reason);
    }
    this.storeViewChange(viewChange);
    this.maybeJoinViewChange();
    this.maybeSendNewView();
    this.maybeStartNewViewTimer();
  }

  /**
   * The NEW-VIEW timer starts only once 2f+1 replicas asked for this view (PBFT §4.5.2), so a replica
   * that starts a view change alone waits for the others instead of racing through views. Each view
   * change that does not bring progress doubles the timeout, up to its bound.
   */
  private maybeStartNewViewTimer(): void {
    if (this.status !== 'view-change' || this.timerTicksLeft !== null) return;
    let requested = 0;
    for (const byView of this.viewChanges.values()) if (byView.has(this.view)) requested++;
    if (requested < this.quorums.quorum) return;
    this.startTimer();
    this.timeoutTicks = Math.min(this.timeoutTicks * 2, this.config.viewChangeTimeoutMaxTicks);
  }

  /**
   * A replica that speaks for `view` is behind us: hand it the latest NEW-VIEW we entered, if that
   * is for `view` or later (self-certifying, so it can check and enter it). At most once per
   * interval per replica. Returns whether a NEW-VIEW was (or was recently) sent.
   */
  private sendNewViewTo(replica: ReplicaId, view: number): boolean {
    const newView = this.currentNewView;
    if (newView === null || newView.body.view < view || replica === this.id) return false;
    const sentAt = this.newViewSentAtTick.get(replica);
    if (sentAt !== undefined && this.ticks - sentAt < this.config.retransmitIntervalTicks) return true;
    this.newViewSentAtTick.set(replica, this.ticks);
    this.sendTo(replica, { type: 'new-view', newView });
    return true;
  }

  /**
   * The sender is still collecting VIEW-CHANGEs for `view`, which this replica already left. Our own
   * VIEW-CHANGE for it may have been lost on the way; resend it (a signed statement, safe to repeat)
   * so the sender can complete its 2f+1 and follow. At most once per interval per replica.
   */
  private sendOwnViewChangeTo(replica: ReplicaId, view: number): void {
    const own = this.recentOwnViewChanges.get(view);
    if (own === undefined || replica === this.id) return;
    const sentAt = this.viewChangeSentAtTick.get(replica);
    if (sentAt !== undefined && this.ticks - sentAt < this.config.retransmitIntervalTicks) return;
    this.viewChangeSentAtTick.set(replica, this.ticks);
    this.sendTo(replica, { type: 'view-change', viewChange: own });
  }

  /**
   * Ordering messages from f+1 replicas in views above ours mean at least one correct replica moved
   * on without us. Leave the current view; replicas already past it answer with their NEW-VIEW.
   */
  private noticeHigherView(replica: ReplicaId, view: number): void {
    if (this.status !== 'normal' || view <= this.view) return;
    this.higherViewSeen.set(replica, Math.max(view, this.higherViewSeen.get(replica) ?? 0));
    if (this.higherViewSeen.size >= this.quorums.weak) this.startViewChange(this.view + 1, 'behind');
  }

  /** f+1 VIEW-CHANGEs for views above ours: at least one correct replica moved, so join the smallest. */
  private maybeJoinViewChange(): void {
    const highestByReplica: number[] = [];
    for (const [replica, byView] of this.viewChanges) {
      if (replica === this.id) continue;
      const highest = Math.max(...byView.keys());
      if (highest > this.view) highestByReplica.push(highest);
    }
    if (highestByReplica.length < this.quorums.weak) return;
    highestByReplica.sort((a, b) => b - a);
    this.startViewChange(highestByReplica[this.quorums.weak - 1]!, 'joined');
  }

  /** The new primary: with 2f+1 VIEW-CHANGEs for its view, compute O and send NEW-VIEW. */
  private maybeSendNewView(): void {
    if (this.status !== 'view-change' || primaryOf(this.view, this.quorums.n) !== this.id) return;
    const chosen: Signed<ViewChangeBody>[] = [];
    for (let replica = 0; replica < this.quorums.n; replica++) {
      const viewChange = this.viewChanges.get(replica)?.get(this.view);
      if (viewChange !== undefined) chosen.push(viewChange);
    }
    if (chosen.length < this.quorums.quorum) return;
    const viewChanges = chosen.slice(0, this.quorums.quorum);
    const plan = computeNewViewPlan(
      viewChanges.map((viewChange) => viewChange.body),
      this.sha256,
    );
    const prePrepares = plan.slots.map((slot) =>
      this.signed<PrePrepareBody>({
        type: 'pre-prepare',
        view: this.view,
        seq: slot.seq,
        digest: slot.digest,
        replica: this.id,
      }),
    );
    const newView = this.signed<NewViewBody>({
      type: 'new-view',
      view: this.view,
      viewChanges,
      prePrepares,
      replica: this.id,
    });
    this.broadcastAfterPersist(newView);
    this.enterView(newView, plan);
  }

  private broadcastAfterPersist(newView: Signed<NewViewBody>): void {
    this.out.persist.push({ type: 'new-view', newView });
    this.broadcast({ type: 'new-view', newView });
  }

  private onNewView(newView: Signed<NewViewBody>): void {
    const body = newView.body;
    if (body.view < this.view || (body.view === this.view && this.status === 'normal')) return;
    if (body.replica !== primaryOf(body.view, this.quorums.n))
      return this.rejectBody(body, 'not-from-primary');
    const signers = new Set<number>();
    for (const viewChange of body.viewChanges) {
      if (viewChange.body.newView !== body.view) return this.rejectBody(body, 'view-change-for-other-view');
      const reason = checkViewChange(viewChange.body, this.certificateContext);
      if (reason !== null) return this.rejectBody(body, `invalid-view-change:${reason}`);
      signers.add(viewChange.body.replica);
    }
    if (signers.size < this.quorums.quorum || signers.size !== body.viewChanges.length) {
      return this.rejectBody(body, 'too-few-view-changes');
    }
    // Every backup recomputes O from V and rejects a NEW-VIEW whose O differs.
    const plan = computeNewViewPlan(
      body.viewChanges.map((viewChange) => viewChange.body),
      this.sha256,
    );
    if (!prePreparesMatchPlan(body.prePrepares, plan, body.view, body.replica)) {
      return this.rejectBody(body, 'wrong-pre-prepares');
    }
    this.out.persist.push({ type: 'new-view', newView });
    this.enterView(newView, plan);
  }

  /** Enter the view of a valid NEW-VIEW: re-run the normal case for every slot of O. */
  private enterView(newView: Signed<NewViewBody>, plan: NewViewPlan): void {
    this.view = newView.body.view;
    this.status = 'normal';
    this.higherViewSeen.clear();
    this.currentNewView = newView;
    this.log.clear();
    this.fetches.clear();
    this.queue.clear();
    this.assigned.clear();
    // A replica can enter a view straight from an older one (a NEW-VIEW that skipped its own view
    // change); the new primary has not seen what was relayed to the old one.
    this.relayed.clear();
    for (const [replica, byView] of this.viewChanges) {
      for (const view of byView.keys()) if (view <= this.view) byView.delete(view);
      if (byView.size === 0) this.viewChanges.delete(replica);
    }
    this.out.persist.push({ type: 'view', view: this.view, viewChangeInProgress: false });
    this.out.events.push({ type: 'new-view-entered', view: this.view });
    if (plan.stableSeq > this.stable.seq) {
      const stateDigest = plan.checkpointProof[0]!.body.stateDigest;
      this.adoptStableCheckpoint({ seq: plan.stableSeq, stateDigest, proof: plan.checkpointProof }, false);
    }
    this.lastAssigned = Math.max(this.stable.seq, this.lastExecuted, plan.slots.at(-1)?.seq ?? 0);
    newView.body.prePrepares.forEach((prePrepare, index) => {
      if (prePrepare.body.seq <= this.stable.seq) return;
      this.acceptNewViewSlot(prePrepare, plan.slots[index]!);
    });
    // Pending requests must now execute in this view, within the (possibly doubled) timeout.
    if (this.pending.size > 0) this.startTimer();
    else this.stopTimer();
    if (this.primary === this.id) {
      for (const request of this.pending.values()) {
        const key = requestKey(request.body);
        if (!this.assigned.has(key)) this.queue.set(key, request);
      }
      this.propose();
    } else {
      // Hand the new primary what it may not have, once: the clients' retries in this view are
      // not relayed again (the relay rule of onRequest).
      for (const [clientHex, request] of this.pending) {
        this.sendTo(this.primary, { type: 'request', request });
        this.relayed.add(clientHex);
      }
    }
    this.replayEarly();
    // Slots whose batch this replica lacks are asked for at once, then every retransmission.
    this.askForBatches();
  }

  // -------------------------------------------------------------------------------------------
  // Retransmission. Messages can be lost. A replica periodically resends its own messages for work
  // it has not finished; a replica that has finished answers such a retransmission with its own
  // messages for that slot, so stragglers are pulled forward without acknowledgements.

  private retransmit(): void {
    if (this.status === 'view-change') {
      if (this.ownViewChange !== null && this.ownViewChange.body.newView === this.view) {
        this.broadcast({ type: 'view-change', viewChange: this.ownViewChange });
      }
    } else {
      let slotsLeft = RETRANSMIT_PIPELINES * this.config.pipelineDepthMax;
      const end = this.stable.seq + this.config.watermarkWindow;
      for (let seq = this.stable.seq + 1; seq <= end && slotsLeft > 0; seq++) {
        const entry = this.log.get(seq);
        // Executed is not enough: a slot this replica executed in an earlier view and that a
        // NEW-VIEW re-proposed must still commit in this view at the others (the primary among
        // them may need this replica's COMMIT), so it is resent until it committed here too.
        if (entry === undefined || (entry.seq <= this.lastExecuted && entry.committed)) continue;
        const messages = this.ownSlotMessages(entry);
        if (messages.length === 0) continue;
        slotsLeft--;
        for (const message of messages) this.broadcast(message);
      }
      this.askForBatches();
    }
    const latestOwnCheckpoint = Math.max(0, ...this.ownCheckpoints.keys());
    const own = this.ownCheckpoints.get(latestOwnCheckpoint);
    if (own !== undefined && this.voting) this.broadcast({ type: 'checkpoint', checkpoint: own.message });
    if (
      this.pendingStateTransfer !== null ||
      this.behindSeen ||
      this.recovery !== null ||
      this.takeIdleAnnouncement()
    )
      this.requestState();
    this.behindSeen = false;
  }

  /**
   * Whether an idle announcement is due now (idle for an interval, executions above the stable
   * checkpoint, the gap since the last one over); taking it doubles the gap to the next.
   */
  private takeIdleAnnouncement(): boolean {
    if (this.status !== 'normal' || this.pending.size > 0 || this.lastExecuted <= this.stable.seq)
      return false;
    if (this.ticks - this.busyAtTick < this.config.retransmitIntervalTicks) return false;
    if (--this.idleAnnouncementInIntervals > 0) return false;
    this.idleAnnouncementGapIntervals = Math.min(
      2 * this.idleAnnouncementGapIntervals,
      IDLE_ANNOUNCEMENT_GAP_MAX_INTERVALS,
    );
    this.idleAnnouncementInIntervals = this.idleAnnouncementGapIntervals;
    return true;
  }

  /**
   * A duplicate PREPARE or COMMIT means the sender is retransmitting: send it what we have. At most
   * once per interval per peer and slot, so two finished replicas cannot keep answering each other.
   */
  private answerRetransmission(entry: LogEntry, replica: ReplicaId): void {
    if (replica === this.id) return;
    const answeredAt = entry.answeredAtTick.get(replica);
    if (answeredAt !== undefined && this.ticks - answeredAt < this.config.retransmitIntervalTicks) return;
    entry.answeredAtTick.set(replica, this.ticks);
    for (const message of this.ownSlotMessages(entry)) this.sendTo(replica, message);
  }

  /**
   * For a slot this replica committed, the others' COMMITs of its certificate (its own is among its
   * slot messages): a replica that left this view can execute the slot from one answer, even if
   * some of the signers have left the view too and no longer answer for it.
   */
  private othersCommitCertificate(entry: LogEntry): Signed<CommitBody>[] {
    if (!entry.committed || entry.prePrepare === null) return [];
    const digest = entry.prePrepare.body.digest;
    return [...entry.commits.values()]
      .filter((commit) => commit.body.replica !== this.id && bytesEqual(commit.body.digest, digest))
      .slice(0, this.quorums.quorum - 1);
  }

  private ownSlotMessages(entry: LogEntry): Message[] {
    const messages: Message[] = [];
    // Recovering, it may hold copies of its own forgotten votes (peers hand over commit
    // certificates); it sends none of them: it speaks for no slot until it has recovered.
    if (!this.voting) return messages;
    if (entry.prePrepare !== null && entry.batch !== null && entry.prePrepare.body.replica === this.id) {
      messages.push({ type: 'pre-prepare', prePrepare: entry.prePrepare, batch: entry.batch });
    }
    const prepare = entry.prepares.get(this.id);
    if (prepare !== undefined) messages.push({ type: 'prepare', prepare });
    const commit = entry.commits.get(this.id);
    if (commit !== undefined) messages.push({ type: 'commit', commit });
    return messages;
  }

  // -------------------------------------------------------------------------------------------
  // Recovery.

  /**
   * Rebuild from storage. Nothing is re-signed here: own messages come back exactly as persisted,
   * and `start()` re-derives which entries are prepared and committed from them.
   */
  private restore(durable: DurableState): void {
    const checkpoint = durable.stableCheckpoint;
    if (checkpoint !== null) {
      invariant(
        bytesEqual(this.sha256(checkpoint.snapshot), checkpoint.stateDigest),
        'stored snapshot digest',
      );
      this.restoreSnapshot(checkpoint.snapshot);
      this.stable = { seq: checkpoint.seq, stateDigest: checkpoint.stateDigest, proof: checkpoint.proof };
      this.stableSnapshot = checkpoint.snapshot;
      this.lastExecuted = checkpoint.seq;
      this.lastAssigned = checkpoint.seq;
    }
    this.view = durable.view;
    this.status = durable.viewChangeInProgress ? 'view-change' : 'normal';
    this.ownViewChange = durable.ownViewChange;
    if (this.ownViewChange !== null) {
      this.storeViewChange(this.ownViewChange);
      this.recentOwnViewChanges.set(this.ownViewChange.body.newView, this.ownViewChange);
    }
    for (const slot of durable.prepared) {
      const { seq, view, digest } = slot.certificate.prePrepare.body;
      if (seq <= this.stable.seq) continue;
      this.prepared.set(seq, slot);
      this.batches.add(seq, view, digest, slot.batch);
    }
    if (this.status !== 'normal') return;
    if (durable.newView !== null && durable.newView.body.view === this.view) {
      this.currentNewView = durable.newView;
      for (const prePrepare of durable.newView.body.prePrepares) {
        this.lastAssigned = Math.max(this.lastAssigned, prePrepare.body.seq);
      }
    }
    for (const message of durable.log) this.restoreLogMessage(message);
    if (this.currentNewView !== null) this.restoreSlotsAwaitingBatches(this.currentNewView);
  }

  /**
   * Slots of the NEW-VIEW this replica entered whose batch it still lacked when it stopped: their
   * PRE-PREPARE never reached the log (it is logged with its batch), so wait for the batch again.
   */
  private restoreSlotsAwaitingBatches(newView: Signed<NewViewBody>): void {
    const plan = computeNewViewPlan(
      newView.body.viewChanges.map((viewChange) => viewChange.body),
      this.sha256,
    );
    newView.body.prePrepares.forEach((prePrepare, index) => {
      const seq = prePrepare.body.seq;
      if (seq <= this.stable.seq || this.log.get(seq)?.prePrepare != null) return;
      const slot = plan.slots[index]!;
      const entry = this.entry(seq);
      entry.prePrepare = prePrepare;
      this.fetches.want(
        seq,
        slot.digest,
        slot.sources.filter((replica) => replica !== this.id),
      );
    });
  }

  private restoreLogMessage(message: LogMessage): void {
    switch (message.type) {
      case 'pre-prepare': {
        const { body } = message.prePrepare;
        if (body.view !== this.view || body.seq <= this.stable.seq) return;
        const entry = this.entry(body.seq);
        entry.prePrepare = message.prePrepare;
        entry.batch = message.batch;
        this.batches.add(body.seq, body.view, body.digest, message.batch);
        for (const request of message.batch) this.assigned.add(requestKey(request.body));
        this.lastAssigned = Math.max(this.lastAssigned, body.seq);
        return;
      }
      case 'prepare': {
        const { body } = message.prepare;
        if (body.view !== this.view || body.seq <= this.stable.seq) return;
        this.entry(body.seq).prepares.set(body.replica, message.prepare);
        return;
      }
      case 'commit': {
        const { body } = message.commit;
        if (body.view !== this.view || body.seq <= this.stable.seq) return;
        this.entry(body.seq).commits.set(body.replica, message.commit);
        return;
      }
    }
  }
}
