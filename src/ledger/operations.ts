/**
 * Ledger operations and their results, with strict canonical-CBOR codecs.
 *
 * Wire forms (CBOR maps, canonical key order):
 *   operation  { type: "transfer", to: bytes(32), amount: int }
 *              { type: "balance", address: bytes(32) }
 *   result     { status: "ok", type: "transfer", balance: uint }
 *              { status: "ok", type: "balance", address: bytes(32), balance: uint, exists: bool }
 *              { status: "rejected", reason: text, message: text }
 *
 * `amount` is a signed integer on the wire so that a zero or negative amount still decodes and is
 * rejected by the ledger with 'invalid-amount' rather than as undecodable bytes; non-integers and
 * integers outside the safe range are not decodable at all.
 */
import { CodecError, decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import {
  type Fields,
  readBoolean,
  readBytes,
  readLiteral,
  readMap,
  readString,
  readUint,
} from '../codec/schema.ts';
import {
  ADDRESS_LENGTH_BYTES,
  OPERATION_SIZE_MAX_BYTES,
  RESULT_MESSAGE_LENGTH_MAX,
  RESULT_SIZE_MAX_BYTES,
} from './limits.ts';

export type TransferOperation = { type: 'transfer'; to: Uint8Array; amount: number };
export type BalanceOperation = { type: 'balance'; address: Uint8Array };
export type Operation = TransferOperation | BalanceOperation;

export const OPERATION_TYPES = ['transfer', 'balance'] as const;
export type OperationType = (typeof OPERATION_TYPES)[number];

export const REJECTION_REASONS = [
  'unknown-sender',
  'insufficient-funds',
  'invalid-amount',
  'self-transfer',
  'malformed-operation',
  /** A transfer would create an account beyond ACCOUNT_COUNT_MAX. */
  'account-limit',
  /** `query` was given an operation that is not read-only (submit it as an ordered request). */
  'not-a-query',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export type TransferResult = { status: 'ok'; type: 'transfer' /** sender's new balance */; balance: number };
export type BalanceResult = {
  status: 'ok';
  type: 'balance';
  address: Uint8Array;
  /** 0 when the account does not exist. */
  balance: number;
  exists: boolean;
};
export type Rejection = { status: 'rejected'; reason: RejectionReason; message: string };
export type OperationResult = TransferResult | BalanceResult | Rejection;

const RESULT_STATUSES = ['ok', 'rejected'] as const;

/** Encode an operation; throws CodecError if the result would not decode (wrong lengths, bad amount). */
export function encodeOperation(operation: Operation): Uint8Array {
  const bytes =
    operation.type === 'transfer'
      ? encodeCanonical({ type: operation.type, to: operation.to, amount: operation.amount })
      : encodeCanonical({ type: operation.type, address: operation.address });
  // Refuse to produce bytes that every replica would reject as malformed.
  decodeOperation(bytes);
  return bytes;
}

export function decodeOperation(bytes: Uint8Array): Operation {
  const value = decodeCanonical(bytes, OPERATION_SIZE_MAX_BYTES);
  const type = readTag(value, 'operation', 'type', OPERATION_TYPES);
  if (type === 'transfer') {
    const fields = readMap(value, 'transfer', ['type', 'to', 'amount']);
    return {
      type,
      to: readBytes(fields.to, 'transfer.to', ADDRESS_LENGTH_BYTES),
      amount: readSafeInteger(fields.amount, 'transfer.amount'),
    };
  }
  const fields = readMap(value, 'balance', ['type', 'address']);
  return { type, address: readBytes(fields.address, 'balance.address', ADDRESS_LENGTH_BYTES) };
}

/** Encode a result; throws CodecError if it would not decode (e.g. a message over the limit). */
export function encodeResult(result: OperationResult): Uint8Array {
  let bytes: Uint8Array;
  if (result.status === 'rejected') {
    bytes = encodeCanonical({ status: result.status, reason: result.reason, message: result.message });
  } else if (result.type === 'transfer') {
    // One per executed transfer: two literals and a balance the ledger keeps a safe integer, so it
    // always decodes and skips the self-check below.
    return encodeCanonical({ status: result.status, type: result.type, balance: result.balance });
  } else {
    bytes = encodeCanonical({
      status: result.status,
      type: result.type,
      address: result.address,
      balance: result.balance,
      exists: result.exists,
    });
  }
  // Every replica's reply must be decodable by clients; catch a bad result here, not in the field.
  decodeResult(bytes);
  return bytes;
}

export function decodeResult(bytes: Uint8Array): OperationResult {
  const value = decodeCanonical(bytes, RESULT_SIZE_MAX_BYTES);
  const status = readTag(value, 'result', 'status', RESULT_STATUSES);
  if (status === 'rejected') {
    const fields = readMap(value, 'rejection', ['status', 'reason', 'message']);
    return {
      status,
      reason: readLiteral(fields.reason, 'rejection.reason', REJECTION_REASONS),
      message: readString(fields.message, 'rejection.message', RESULT_MESSAGE_LENGTH_MAX),
    };
  }
  const type = readTag(value, 'result', 'type', OPERATION_TYPES);
  if (type === 'transfer') {
    const fields = readMap(value, 'transfer result', ['status', 'type', 'balance']);
    return { status, type, balance: readUint(fields.balance, 'transfer result.balance') };
  }
  const fields = readMap(value, 'balance result', ['status', 'type', 'address', 'balance', 'exists']);
  const exists = readBoolean(fields.exists, 'balance result.exists');
  // A missing account has no balance; only one encoding per answer keeps replies comparable.
  const balance = readUint(fields.balance, 'balance result.balance', exists ? undefined : 0);
  return {
    status,
    type,
    address: readBytes(fields.address, 'balance result.address', ADDRESS_LENGTH_BYTES),
    balance,
    exists,
  };
}

/** Read the discriminating field of a tagged map before the map's exact shape is known. */
function readTag<T extends string>(value: unknown, what: string, key: string, allowed: readonly T[]): T {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new CodecError('WRONG_TYPE', `${what}: expected a map`);
  }
  if (!Object.hasOwn(value, key)) throw new CodecError('MISSING_FIELD', `${what}: missing field "${key}"`);
  return readLiteral((value as Fields)[key], `${what}.${key}`, allowed);
}

/** A signed integer in the safe range (CBOR major type 0 or 1). */
function readSafeInteger(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new CodecError('WRONG_TYPE', `${what}: expected an integer`);
  }
  return value;
}
