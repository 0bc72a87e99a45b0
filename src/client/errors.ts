/**
 * What a client call can fail with. `code` says which kind of failure; the subclasses carry what the
 * cluster answered.
 */
import type { RejectionReason } from '../ledger/index.ts';
import type { RequestErrorReason } from '../protocol/client-protocol.ts';

export type PbftClientErrorCode = 'TIMEOUT' | 'REJECTED' | 'UNREACHABLE' | 'CLOSED';

export class PbftClientError extends Error {
  override name = 'PbftClientError';
  readonly code: PbftClientErrorCode;
  constructor(code: PbftClientErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** The cluster ordered the transfer and rejected it (insufficient funds, unknown sender, …). */
export class TransferRejectedError extends PbftClientError {
  override name = 'TransferRejectedError';
  readonly reason: RejectionReason;
  /** The ledger's own explanation, e.g. "balance 12 is less than the amount 50". */
  readonly detail: string;
  readonly seq: number;
  constructor(reason: RejectionReason, detail: string, seq: number) {
    super('REJECTED', `transfer rejected (${reason}): ${detail}`);
    this.reason = reason;
    this.detail = detail;
    this.seq = seq;
  }
}

/** The refusals that end a request; 'busy' only delays it. */
export type FinalRefusalReason = Exclude<RequestErrorReason, 'busy'>;

const REFUSAL_MESSAGES: Record<FinalRefusalReason, string> = {
  'bad-signature': "the request signature does not verify (is the key file the sender's?)",
  'stale-request': 'its request number was already used (was the .counter file next to the key file lost?)',
  'unknown-client':
    'the sender has no account and its request number is ahead of the cluster, so it was not executed (fund the account first)',
};

/** f+1 replicas refused to order the request (it never executed). */
export class RequestRefusedError extends PbftClientError {
  override name = 'RequestRefusedError';
  readonly reason: FinalRefusalReason;
  readonly t: number;
  /**
   * For 'stale-request': a request number at or below which nothing of this client can execute,
   * vouched for by a correct replica (the (f+1)-th highest that the refusing replicas reported).
   */
  readonly floor: number;
  constructor(reason: FinalRefusalReason, t: number, floor = 0) {
    super('REJECTED', `request ${t} refused: ${REFUSAL_MESSAGES[reason]}`);
    this.reason = reason;
    this.t = t;
    this.floor = floor;
  }
}
