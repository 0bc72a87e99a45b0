/**
 * Durable replica state. The core says what to persist (PersistOp); storage makes each step's
 * operations durable atomically before the runtime sends anything the step produced.
 */
import type { DurableState, PersistOp } from '../protocol/durable.ts';

export interface ReplicaStorage {
  /** Everything persisted so far (empty state for a new replica). */
  load(): Promise<DurableState>;
  /** Apply one step's operations atomically; resolves once they are on disk (synced). */
  apply(ops: readonly PersistOp[]): Promise<void>;
  close(): Promise<void>;
}
