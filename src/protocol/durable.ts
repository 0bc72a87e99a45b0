/**
 * What a replica must keep across crashes, and the operations the core asks storage to apply.
 *
 * The core never writes anything itself: each step returns `persist` operations, and the runtime
 * makes them durable before it sends a single message from the same step. Everything this replica
 * signed that could matter later is here, so after a restart it never signs a conflicting message:
 * its PRE-PREPAREs, PREPAREs and COMMITs of the current view (in the log), its VIEW-CHANGE, and the
 * NEW-VIEW it entered the view with.
 */
import type {
  CheckpointBody,
  Message,
  NewViewBody,
  PreparedSlot,
  Signed,
  ViewChangeBody,
} from './messages.ts';

export interface StableCheckpoint {
  seq: number;
  stateDigest: Uint8Array;
  /** 2f+1 matching signed CHECKPOINTs (empty for the genesis checkpoint at seq 0). */
  proof: Signed<CheckpointBody>[];
  /** The replicated state at `seq` (application state plus the client table). */
  snapshot: Uint8Array;
}

/**
 * A replica that cannot trust its storage (found damaged, missing, or restored from an old copy)
 * may have signed messages it no longer remembers. Until it has recovered it votes on nothing:
 * `untilSeq` is the sequence number above which it may vote again, once 2f+1 peers told it how far
 * the cluster went (null until then); it is a full voter again once its stable checkpoint reaches it.
 */
export interface RecoveryRecord {
  untilSeq: number | null;
}

/** A message kept in the log: ordering messages of the current view above the stable checkpoint. */
export type LogMessage = Extract<Message, { type: 'pre-prepare' | 'prepare' | 'commit' }>;

export type PersistOp =
  /** The replica moved to `view`; `viewChangeInProgress` says whether it awaits a NEW-VIEW. */
  | { type: 'view'; view: number; viewChangeInProgress: boolean }
  /** Append an ordering message of `view` to the log. Storage may drop log messages of older views. */
  | { type: 'log'; message: LogMessage }
  /** The highest-view prepared certificate for its sequence number, with its batch (replaces an older one). */
  | { type: 'prepared'; slot: PreparedSlot }
  | { type: 'own-view-change'; viewChange: Signed<ViewChangeBody> }
  | { type: 'new-view'; newView: Signed<NewViewBody> }
  /** A new stable checkpoint: storage drops log messages and prepared certificates at or below it. */
  | { type: 'stable-checkpoint'; checkpoint: StableCheckpoint }
  /** The replica is recovering (with what it learnt so far), or has recovered (null). */
  | { type: 'recovery'; recovery: RecoveryRecord | null };

/** Everything storage returns on restart. */
export interface DurableState {
  view: number;
  viewChangeInProgress: boolean;
  stableCheckpoint: StableCheckpoint | null;
  ownViewChange: Signed<ViewChangeBody> | null;
  newView: Signed<NewViewBody> | null;
  prepared: PreparedSlot[];
  /** Log messages in the order they were persisted. */
  log: LogMessage[];
  /** Non-null while the replica recovers from storage it could not trust. */
  recovery: RecoveryRecord | null;
}

export function emptyDurableState(): DurableState {
  return {
    view: 0,
    viewChangeInProgress: false,
    stableCheckpoint: null,
    ownViewChange: null,
    newView: null,
    prepared: [],
    log: [],
    recovery: null,
  };
}

/** The signed body of a log message: every one has a view, a sequence number and a signer. */
export function logMessageBody(message: LogMessage): { view: number; seq: number; replica: number } {
  switch (message.type) {
    case 'pre-prepare':
      return message.prePrepare.body;
    case 'prepare':
      return message.prepare.body;
    case 'commit':
      return message.commit.body;
  }
}

export function logMessageSeq(message: LogMessage): number {
  return logMessageBody(message).seq;
}

/** The replica that signed a log message. */
export function logMessageReplica(message: LogMessage): number {
  return logMessageBody(message).replica;
}

export function logMessageView(message: LogMessage): number {
  return logMessageBody(message).view;
}

/**
 * Whether `op` must be on disk (fsync) before anything stepped with it leaves replica `self`.
 * Every message the replica signed must: after a crash it must remember what it said, or it could
 * say something else. So must everything else the core persists (its view, prepared certificates,
 * checkpoints). Other replicas' ordering messages need not: losing them to a power cut is the same
 * as never having received them, which retransmission and state transfer cover, and what the
 * replica executed on their strength was committed by 2f+1 replicas that each synced their own
 * COMMIT. Leaving them unsynced takes the fsync off the last step of every request (receive the
 * COMMITs, execute, reply); they still reach the operating system, so a killed process loses nothing.
 */
export function mustSyncBeforeSending(op: PersistOp, self: number): boolean {
  return op.type !== 'log' || logMessageReplica(op.message) === self;
}

/**
 * Apply persist operations to an in-memory DurableState: the reference semantics every storage
 * backend implements (the simulator's memory storage uses it directly).
 */
export function applyPersistOps(state: DurableState, ops: readonly PersistOp[]): void {
  for (const op of ops) {
    switch (op.type) {
      case 'view':
        state.view = op.view;
        state.viewChangeInProgress = op.viewChangeInProgress;
        state.log = state.log.filter((message) => logMessageView(message) >= op.view);
        break;
      case 'log':
        state.log.push(op.message);
        break;
      case 'prepared': {
        const seq = op.slot.certificate.prePrepare.body.seq;
        state.prepared = state.prepared.filter((slot) => slot.certificate.prePrepare.body.seq !== seq);
        state.prepared.push(op.slot);
        break;
      }
      case 'own-view-change':
        state.ownViewChange = op.viewChange;
        break;
      case 'new-view':
        state.newView = op.newView;
        break;
      case 'recovery':
        state.recovery = op.recovery === null ? null : { ...op.recovery };
        break;
      case 'stable-checkpoint': {
        const seq = op.checkpoint.seq;
        state.stableCheckpoint = op.checkpoint;
        state.log = state.log.filter((message) => logMessageSeq(message) > seq);
        state.prepared = state.prepared.filter((slot) => slot.certificate.prePrepare.body.seq > seq);
        break;
      }
    }
  }
}
