import {
  ADDRESS_LENGTH_BYTES,
  decodeResult,
  encodeOperation,
  type OperationResult,
} from '../../../src/ledger/index.ts';

/** A recognisable address: 32 copies of one byte. */
export function addressOf(byte: number): Uint8Array {
  return new Uint8Array(ADDRESS_LENGTH_BYTES).fill(byte);
}

export function transferBytes(to: Uint8Array, amount: number): Uint8Array {
  return encodeOperation({ type: 'transfer', to, amount });
}

export function balanceBytes(address: Uint8Array): Uint8Array {
  return encodeOperation({ type: 'balance', address });
}

export function result(bytes: Uint8Array): OperationResult {
  return decodeResult(bytes);
}

export { codecErrorCode } from '../codec/fixtures.ts';
