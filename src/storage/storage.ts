/**
 * Durable replica state. The core says what to persist (PersistOp); storage makes each step's
 * operations durable atomically before the runtime sends anything the step produced.
 */
import type { DurableState, PersistOp } from '../protocol/durable.ts';

export interface ApplyOptions {
  /** Wait for the disk (fsync); default true. */
  sync?: boolean;
}

export interface ReplicaStorage {
  /** Everything persisted so far (empty state for a new replica). */
  load(): Promise<DurableState>;
  /**
   * Apply one step's operations atomically, in order after every earlier apply. With `sync` (the
   * default) it resolves once they are on disk; without, once they are written to the operating
   * system: they survive a crash of the process but not of the machine, until the next synced
   * apply, which makes everything before it durable too.
   */
  apply(ops: readonly PersistOp[], options?: ApplyOptions): Promise<void>;
  close(): Promise<void>;
}
