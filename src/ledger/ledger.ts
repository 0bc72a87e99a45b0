/**
 * The replicated ledger: a deterministic state machine over accounts.
 *
 * Every correct replica applies the same requests in the same order and must reach the same state
 * and give the same answers, so nothing here depends on anything but the inputs: no clock, no
 * randomness, no iteration order that differs between runs (snapshots sort accounts by address).
 *
 * Rules (checked in this order, so that the reason for a rejection is the same everywhere):
 *   undecodable operation       → rejected 'malformed-operation'
 *   balance { address }         → ok, with the balance (0 and exists: false for an unknown address)
 *   transfer amount ≤ 0         → rejected 'invalid-amount'
 *   transfer to the sender      → rejected 'self-transfer'
 *   sender has no account       → rejected 'unknown-sender'
 *   sender balance < amount     → rejected 'insufficient-funds'
 *   new recipient, ledger full  → rejected 'account-limit'
 *   otherwise                   → amount moves; a missing recipient account is created
 * Whatever the outcome, the sender's lastRequest becomes t if the sender has an account. The ledger
 * does not deduplicate requests: at-most-once execution (t strictly increasing per client) is the
 * protocol's job, on the floor the ledger keeps (`requestFloor`): an account's lastRequest. Genesis
 * accounts start at 0; an account created by a transfer at sequence number s starts at 2s + 1
 * (`createdAccountFloor`), which voids every request its key signed while it had no account (the
 * protocol executes a stranger's request only if t ≤ its sequence number), so a request refused
 * for 'unknown-sender' can never execute after the key is funded.
 */
import { CodecError, type CodecErrorCode, decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { readArray, readBytes, readMap, readUint } from '../codec/schema.ts';
import { invariant } from '../util/assert.ts';
import { compareBytes, toHex } from '../util/bytes.ts';
import { type Genesis, validateGenesis } from './genesis.ts';
import {
  ACCOUNT_COUNT_MAX,
  ADDRESS_LENGTH_BYTES,
  OPERATION_SIZE_MAX_BYTES,
  SNAPSHOT_SIZE_MAX_BYTES,
  SUPPLY_MAX,
} from './limits.ts';
import {
  type BalanceResult,
  decodeOperation,
  encodeResult,
  type Operation,
  type OperationResult,
  type Rejection,
  type RejectionReason,
  type TransferOperation,
} from './operations.ts';

/**
 * Snapshot wire form: { version: 1, accounts: [[address, balance, lastRequest], ...] } with
 * accounts in strictly ascending byte order of address, so equal states give equal bytes and
 * there is exactly one valid encoding of each state.
 */
export const SNAPSHOT_FORMAT_VERSION = 1;

export type AccountState = { balance: number; lastRequest: number };
export type AccountEntry = { address: Uint8Array; balance: number; lastRequest: number };

/**
 * Fixed text per decoding failure. The message must be identical on every replica, so it never
 * quotes the decoder's own text (which depends on the CBOR library version) or attacker-chosen
 * bytes such as unknown field names.
 */
const MALFORMED_OPERATION_DESCRIPTIONS: Record<CodecErrorCode, string> = {
  FRAME_TOO_LARGE: `larger than ${OPERATION_SIZE_MAX_BYTES} bytes`,
  MALFORMED_CBOR: 'not valid CBOR, or an integer outside the safe range',
  NON_CANONICAL: 'not in canonical CBOR form',
  UNKNOWN_FIELD: 'unknown field',
  MISSING_FIELD: 'missing field',
  WRONG_TYPE: 'a field has the wrong type (the amount must be an integer)',
  WRONG_LENGTH: `an address must be ${ADDRESS_LENGTH_BYTES} bytes`,
  OUT_OF_RANGE: 'a field is out of range',
  UNKNOWN_TYPE: 'unknown operation type',
};

/** `new Ledger()` is empty (no accounts, zero supply); build one with fromGenesis or fromSnapshot. */
/** Implements the protocol's StateMachine interface (structurally: the ledger imports no protocol code). */
export class Ledger {
  /**
   * Keyed by lowercase hex of the address. Entries keep the address bytes too, so snapshots need no
   * hex decoding; they are owned and mutated only by this class and never handed out.
   */
  #accounts = new Map<string, AccountEntry>();

  /** Throws GenesisError if the genesis breaks the rules of the genesis file. */
  static fromGenesis(genesis: Genesis): Ledger {
    const ledger = new Ledger();
    for (const { address, balance } of validateGenesis(genesis).accounts) {
      ledger.#accounts.set(toHex(address), { address, balance, lastRequest: 0 });
    }
    return ledger;
  }

  static fromSnapshot(snapshot: Uint8Array): Ledger {
    const ledger = new Ledger();
    ledger.restore(snapshot);
    return ledger;
  }

  /**
   * Apply one request from `client` (its public key), ordered at sequence number `seq`, and return
   * the encoded result.
   */
  execute(seq: number, client: Uint8Array, t: number, operation: Uint8Array): Uint8Array {
    invariant(Number.isSafeInteger(seq) && seq >= 0, 'sequence number must be a non-negative safe integer');
    invariant(client.length === ADDRESS_LENGTH_BYTES, `client key must be ${ADDRESS_LENGTH_BYTES} bytes`);
    invariant(Number.isSafeInteger(t) && t >= 0, 'request number t must be a non-negative safe integer');
    const senderKey = toHex(client);
    const sender = this.#accounts.get(senderKey);
    const result = this.#apply(seq, senderKey, sender, operation);
    if (sender !== undefined) sender.lastRequest = t;
    return encodeResult(result);
  }

  /** The account's lastRequest (see the rules above); null for a key without an account. */
  requestFloor(client: Uint8Array): number | null {
    return this.#accounts.get(toHex(client))?.lastRequest ?? null;
  }

  /** Answer a read-only operation from the current state; never changes anything. */
  query(operation: Uint8Array): Uint8Array {
    const decoded = decodeOrReject(operation);
    if ('status' in decoded) return encodeResult(decoded);
    if (decoded.type !== 'balance') {
      return encodeResult(
        reject('not-a-query', `${decoded.type} is not read-only: submit it as an ordered request`),
      );
    }
    return encodeResult(this.#balanceResult(decoded.address));
  }

  snapshot(): Uint8Array {
    const entries = this.#sortedEntries().map((account) => [
      account.address,
      account.balance,
      account.lastRequest,
    ]);
    return encodeCanonical({ version: SNAPSHOT_FORMAT_VERSION, accounts: entries });
  }

  /** Replace the whole state with a snapshot; throws CodecError and keeps the old state if invalid. */
  restore(snapshot: Uint8Array): void {
    this.#accounts = decodeSnapshot(snapshot);
  }

  account(address: Uint8Array): AccountState | undefined {
    const account = this.#accounts.get(toHex(address));
    return account === undefined ? undefined : { balance: account.balance, lastRequest: account.lastRequest };
  }

  /** 0 for an address without an account. */
  balanceOf(address: Uint8Array): number {
    return this.#accounts.get(toHex(address))?.balance ?? 0;
  }

  /** Computed from the balances, not remembered, so it really checks conservation. */
  totalSupply(): number {
    let supply = 0;
    for (const account of this.#accounts.values()) supply += account.balance;
    return supply;
  }

  accountCount(): number {
    return this.#accounts.size;
  }

  /** Every account, sorted by address; copies, so changing them does not change the ledger. */
  accounts(): AccountEntry[] {
    return this.#sortedEntries().map((account) => ({
      address: account.address.slice(),
      balance: account.balance,
      lastRequest: account.lastRequest,
    }));
  }

  #sortedEntries(): AccountEntry[] {
    // Lowercase hex keys of equal length sort like the bytes they encode.
    return [...this.#accounts.keys()].sort().map((key) => this.#accounts.get(key)!);
  }

  #apply(
    seq: number,
    senderKey: string,
    sender: AccountEntry | undefined,
    operationBytes: Uint8Array,
  ): OperationResult {
    const operation = decodeOrReject(operationBytes);
    if ('status' in operation) return operation;
    if (operation.type === 'balance') return this.#balanceResult(operation.address);
    return this.#transfer(seq, senderKey, sender, operation);
  }

  #transfer(
    seq: number,
    senderKey: string,
    sender: AccountEntry | undefined,
    { to, amount }: TransferOperation,
  ): OperationResult {
    if (amount <= 0) return reject('invalid-amount', `amount must be a positive integer, got ${amount}`);
    const recipientKey = toHex(to);
    if (recipientKey === senderKey) return reject('self-transfer', 'cannot transfer to the sending account');
    if (sender === undefined) return reject('unknown-sender', `sender ${senderKey} has no account`);
    if (sender.balance < amount) {
      return reject('insufficient-funds', `balance ${sender.balance} is less than the amount ${amount}`);
    }
    let recipient = this.#accounts.get(recipientKey);
    if (recipient === undefined) {
      if (this.#accounts.size >= ACCOUNT_COUNT_MAX) {
        return reject(
          'account-limit',
          `the ledger holds the maximum of ${ACCOUNT_COUNT_MAX} accounts; pay an existing account`,
        );
      }
      // Its key may have signed requests as a stranger; they are numbered at most seq. Void them.
      recipient = { address: to.slice(), balance: 0, lastRequest: createdAccountFloor(seq) };
      this.#accounts.set(recipientKey, recipient);
    }
    // Cannot overflow: both balances are part of a supply that is at most SUPPLY_MAX.
    sender.balance -= amount;
    recipient.balance += amount;
    return { status: 'ok', type: 'transfer', balance: sender.balance };
  }

  #balanceResult(address: Uint8Array): BalanceResult {
    const account = this.#accounts.get(toHex(address));
    return {
      status: 'ok',
      type: 'balance',
      address: address.slice(),
      balance: account?.balance ?? 0,
      exists: account !== undefined,
    };
  }
}

/**
 * The lastRequest of an account created at sequence number `seq`: above every request its key can
 * have had executed as a stranger (t ≤ the seq it executed at ≤ seq), and above the next number of
 * a client that numbers its requests one by one from 1 (at most seq + 1), so that a client's first
 * request as an account is answered with a floor above its t, which PbftClient skips, never with a
 * floor equal to its t, which means "executed" and is final.
 */
export function createdAccountFloor(seq: number): number {
  return 2 * seq + 1;
}

function decodeOrReject(bytes: Uint8Array): Operation | Rejection {
  try {
    return decodeOperation(bytes);
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    return reject(
      'malformed-operation',
      `malformed operation (${error.code}): ${MALFORMED_OPERATION_DESCRIPTIONS[error.code]}`,
    );
  }
}

function reject(reason: RejectionReason, message: string): Rejection {
  return { status: 'rejected', reason, message };
}

function decodeSnapshot(snapshot: Uint8Array): Map<string, AccountEntry> {
  const fields = readMap(decodeCanonical(snapshot, SNAPSHOT_SIZE_MAX_BYTES), 'snapshot', [
    'version',
    'accounts',
  ]);
  const version = readUint(fields.version, 'snapshot.version');
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    throw new CodecError('UNKNOWN_TYPE', `snapshot.version: unsupported version ${version}`);
  }
  const entries = readArray(fields.accounts, 'snapshot.accounts', ACCOUNT_COUNT_MAX, readSnapshotEntry);
  const accounts = new Map<string, AccountEntry>();
  let supply = 0;
  let previous: Uint8Array | undefined;
  for (const [index, { address, balance, lastRequest }] of entries.entries()) {
    if (previous !== undefined && compareBytes(previous, address) >= 0) {
      throw new CodecError(
        'NON_CANONICAL',
        `snapshot.accounts[${index}]: addresses must be in strictly ascending order`,
      );
    }
    if (balance > SUPPLY_MAX - supply) {
      throw new CodecError('OUT_OF_RANGE', `snapshot.accounts[${index}]: total supply exceeds ${SUPPLY_MAX}`);
    }
    supply += balance;
    previous = address;
    accounts.set(toHex(address), { address: address.slice(), balance, lastRequest });
  }
  return accounts;
}

function readSnapshotEntry(value: unknown, what: string): AccountEntry {
  if (!Array.isArray(value)) throw new CodecError('WRONG_TYPE', `${what}: expected an array`);
  if (value.length !== 3) {
    throw new CodecError('WRONG_LENGTH', `${what}: expected [address, balance, lastRequest]`);
  }
  return {
    address: readBytes(value[0], `${what}.address`, ADDRESS_LENGTH_BYTES),
    balance: readUint(value[1], `${what}.balance`),
    lastRequest: readUint(value[2], `${what}.lastRequest`),
  };
}
