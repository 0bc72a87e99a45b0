/**
 * Bounds of the replicated ledger. They are part of the replicated semantics: every replica must
 * use the same values, or the same request could be accepted by one replica and rejected by another.
 */
import { FRAME_SIZE_MAX_BYTES } from '../codec/cbor.ts';

/** An address is an ed25519 public key. */
export const ADDRESS_LENGTH_BYTES = 32;

/**
 * No balance, amount or sum of balances may exceed this, so every sum of balances is exact in a
 * JavaScript number. Genesis enforces it on the total supply, which never changes afterwards.
 */
export const SUPPLY_MAX = Number.MAX_SAFE_INTEGER;

/**
 * Largest encoded operation. A transfer needs about 70 bytes; the rest is slack, not room for
 * growth of a hostile request.
 */
export const OPERATION_SIZE_MAX_BYTES = 256;

/** Longest human-readable message in a rejection (UTF-16 code units; ours are ASCII). */
export const RESULT_MESSAGE_LENGTH_MAX = 200;

/** Largest encoded result: a rejection with a message of RESULT_MESSAGE_LENGTH_MAX plus framing. */
export const RESULT_SIZE_MAX_BYTES = 1024;

/**
 * A snapshot must fit one frame so that state transfer can carry it; the account limit below is
 * chosen so that the largest possible ledger still does.
 */
export const SNAPSHOT_SIZE_MAX_BYTES = FRAME_SIZE_MAX_BYTES;

/**
 * Worst-case encoded size of one snapshot entry: array header (1) + 32-byte string (2 + 32) + two
 * 64-bit unsigned integers (9 + 9).
 */
export const SNAPSHOT_ENTRY_SIZE_MAX_BYTES = 53;

/** Room for the snapshot's outer map, its version and the accounts array header. */
export const SNAPSHOT_OVERHEAD_MAX_BYTES = 64;

/**
 * Most accounts the ledger will hold. Without a cap anyone could create accounts one unit at a time
 * until the snapshot no longer fits a frame, and lagging replicas could never catch up. A transfer
 * that would create an account beyond this is rejected with 'account-limit'. Together with the
 * protocol's bounded reply cache (clientTableMax) this keeps the whole replicated state within one
 * STATE frame; a larger ledger needs chunked state transfer.
 */
export const ACCOUNT_COUNT_MAX = 25_000;
