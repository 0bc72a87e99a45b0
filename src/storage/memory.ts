/** The in-memory twin of LevelStorage: same interface, same semantics (applyPersistOps). */
import {
  applyPersistOps,
  type DurableState,
  emptyDurableState,
  type PersistOp,
} from '../protocol/durable.ts';
import type { ApplyOptions, ReplicaStorage } from './storage.ts';

export class MemoryStorage implements ReplicaStorage {
  readonly state: DurableState = emptyDurableState();

  async load(): Promise<DurableState> {
    return { ...this.state, log: [...this.state.log], prepared: [...this.state.prepared] };
  }

  async apply(ops: readonly PersistOp[], _options?: ApplyOptions): Promise<void> {
    applyPersistOps(this.state, ops);
  }

  async close(): Promise<void> {}
}
