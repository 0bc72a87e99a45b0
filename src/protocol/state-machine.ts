/**
 * What the protocol core needs from the replicated application. The ledger implements it; the core
 * never looks inside operations or results, so it can order anything deterministic.
 */
export interface StateMachine {
  /**
   * Apply one ordered operation from `client` with request number `t`, ordered at sequence number
   * `seq`; returns the encoded result. The core calls it only for a `t` above `requestFloor(client)`
   * (a stranger's `t` is at most `seq`).
   */
  execute(seq: number, client: Uint8Array, t: number, operation: Uint8Array): Uint8Array;
  /**
   * The highest request number of `client` that must never execute (again): its last executed
   * request, or, for a client the application came to know at sequence number s, at least s, which
   * voids every request a stranger signed before (a stranger's executed requests are numbered at
   * most their sequence number). null when the application holds nothing for `client`: a stranger,
   * whose requests change nothing and for whom the core keeps nothing either. Exactly-once rests
   * on this floor, not on the core's bounded reply cache, so no number of strangers can lock
   * anyone out.
   */
  requestFloor(client: Uint8Array): number | null;
  /** Answer a read-only operation from the current state without changing it. */
  query(operation: Uint8Array): Uint8Array;
  /** Canonical bytes of the whole state: equal states give equal bytes. */
  snapshot(): Uint8Array;
  /** Replace the state with a snapshot taken by `snapshot()` (on any replica). */
  restore(snapshot: Uint8Array): void;
}
