/**
 * What the protocol core needs from the replicated application. The ledger implements it; the core
 * never looks inside operations or results, so it can order anything deterministic.
 */
export interface StateMachine {
  /** Apply one ordered operation from `client` with request number `t`; returns the encoded result. */
  execute(client: Uint8Array, t: number, operation: Uint8Array): Uint8Array;
  /** Answer a read-only operation from the current state without changing it. */
  query(operation: Uint8Array): Uint8Array;
  /** Canonical bytes of the whole state: equal states give equal bytes. */
  snapshot(): Uint8Array;
  /** Replace the state with a snapshot taken by `snapshot()` (on any replica). */
  restore(snapshot: Uint8Array): void;
}
