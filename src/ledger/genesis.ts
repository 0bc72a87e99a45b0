/**
 * The genesis file: the initial balances every replica starts from.
 *
 *   { "accounts": { "<64 lowercase hex digits: ed25519 public key>": <balance>, ... } }
 *
 * Balances are plain integer literals (no sign, fraction or exponent) and non-negative safe
 * integers, and their total (the supply, which never changes) is at most SUPPLY_MAX, so no later sum
 * of balances can lose precision. Parsing is strict: unknown fields, duplicate keys, uppercase or
 * malformed hex are errors, each reported on one line naming the file and the field.
 *
 * In memory a Genesis is an array of accounts; `parseGenesis` and `validateGenesis` return it sorted
 * by address (byte order, which equals the order of the hex keys), with no duplicates.
 */
import { compareBytes, fromHex, toHex } from '../util/bytes.ts';
import {
  JsonNumber,
  type JsonObject,
  type JsonValue,
  parseStrictJson,
  StrictJsonError,
} from '../util/strict-json.ts';
import { ACCOUNT_COUNT_MAX, ADDRESS_LENGTH_BYTES, SUPPLY_MAX } from './limits.ts';

export type GenesisAccount = { address: Uint8Array; balance: number };
export type Genesis = { accounts: GenesisAccount[] };

/** Enough for ACCOUNT_COUNT_MAX accounts at about 90 characters each, with generous whitespace. */
export const GENESIS_TEXT_LENGTH_MAX = 16 * 1024 * 1024;

/** Longest excerpt of a bad key or value quoted back in an error message (a valid key is 64 characters). */
const QUOTED_TEXT_LENGTH_MAX = 80;

const ADDRESS_HEX_PATTERN = /^[0-9a-f]{64}$/;
const MIXED_CASE_ADDRESS_HEX_PATTERN = /^[0-9a-fA-F]{64}$/;
const NON_NEGATIVE_INTEGER_LITERAL_PATTERN = /^(?:0|[1-9][0-9]*)$/;

export type GenesisErrorCode =
  | 'TOO_LARGE'
  | 'INVALID_JSON'
  | 'WRONG_TYPE'
  | 'UNKNOWN_FIELD'
  | 'MISSING_FIELD'
  | 'INVALID_ADDRESS'
  | 'DUPLICATE_ADDRESS'
  | 'INVALID_BALANCE'
  | 'SUPPLY_OVERFLOW'
  | 'TOO_MANY_ACCOUNTS';

/** A bad genesis; the message is one line starting with the file name, saying what to fix. */
export class GenesisError extends Error {
  override name = 'GenesisError';
  readonly code: GenesisErrorCode;
  constructor(code: GenesisErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export function parseGenesis(text: string, fileName: string): Genesis {
  if (text.length > GENESIS_TEXT_LENGTH_MAX) {
    throw new GenesisError(
      'TOO_LARGE',
      `${fileName}: ${text.length} characters exceeds the limit of ${GENESIS_TEXT_LENGTH_MAX}`,
    );
  }
  let document: JsonValue;
  try {
    document = parseStrictJson(text);
  } catch (error) {
    if (!(error instanceof StrictJsonError)) throw error;
    if (error.code === 'DUPLICATE_KEY' && error.path.length === 1 && error.path[0] === 'accounts') {
      throw new GenesisError(
        'DUPLICATE_ADDRESS',
        `${fileName}: ${accountField(error.key!)} is listed more than once (line ${error.line} column ${error.column})`,
      );
    }
    throw new GenesisError('INVALID_JSON', `${fileName}: invalid JSON at ${error.message}`);
  }

  if (!isJsonObject(document)) {
    throw new GenesisError('WRONG_TYPE', `${fileName}: must be a JSON object with an "accounts" field`);
  }
  for (const key of Object.keys(document)) {
    if (key !== 'accounts') {
      throw new GenesisError(
        'UNKNOWN_FIELD',
        `${fileName}: unknown field ${quoteKey(key)} (the only field is "accounts")`,
      );
    }
  }
  const accountsValue = document['accounts'];
  if (accountsValue === undefined) {
    throw new GenesisError('MISSING_FIELD', `${fileName}: missing field "accounts"`);
  }
  if (!isJsonObject(accountsValue)) {
    throw new GenesisError(
      'WRONG_TYPE',
      `${fileName}: accounts must be an object mapping 64-character lowercase hex addresses to balances`,
    );
  }

  const keys = Object.keys(accountsValue);
  if (keys.length > ACCOUNT_COUNT_MAX) {
    throw new GenesisError(
      'TOO_MANY_ACCOUNTS',
      `${fileName}: accounts lists ${keys.length} accounts, more than the limit of ${ACCOUNT_COUNT_MAX}`,
    );
  }
  const accounts: GenesisAccount[] = [];
  let supply = 0;
  for (const key of keys) {
    const field = accountField(key);
    if (!ADDRESS_HEX_PATTERN.test(key)) {
      const hint = MIXED_CASE_ADDRESS_HEX_PATTERN.test(key)
        ? 'hex digits must be lowercase'
        : `expected 64 lowercase hex characters (an ed25519 public key), got ${key.length} characters`;
      throw new GenesisError('INVALID_ADDRESS', `${fileName}: ${field} is not a valid address: ${hint}`);
    }
    const balanceValue = accountsValue[key]!;
    if (
      !(balanceValue instanceof JsonNumber) ||
      !NON_NEGATIVE_INTEGER_LITERAL_PATTERN.test(balanceValue.text) ||
      !Number.isSafeInteger(balanceValue.value)
    ) {
      throw new GenesisError(
        'INVALID_BALANCE',
        `${fileName}: ${field} must be a non-negative safe integer, got ${describeJson(balanceValue)}`,
      );
    }
    const balance = balanceValue.value;
    if (balance > SUPPLY_MAX - supply) {
      throw new GenesisError(
        'SUPPLY_OVERFLOW',
        `${fileName}: ${field}: total supply would exceed ${SUPPLY_MAX} (Number.MAX_SAFE_INTEGER)`,
      );
    }
    supply += balance;
    accounts.push({ address: fromHex(key), balance });
  }
  accounts.sort((a, b) => compareBytes(a.address, b.address));
  return { accounts };
}

/**
 * Check a genesis built in code (same rules as the file) and return a sorted copy that shares no
 * bytes with the input. `source` names it in error messages.
 */
export function validateGenesis(genesis: Genesis, source = 'genesis'): Genesis {
  if (typeof genesis !== 'object' || genesis === null || !Array.isArray(genesis.accounts)) {
    throw new GenesisError('WRONG_TYPE', `${source}: accounts must be an array of { address, balance }`);
  }
  if (genesis.accounts.length > ACCOUNT_COUNT_MAX) {
    throw new GenesisError(
      'TOO_MANY_ACCOUNTS',
      `${source}: accounts lists ${genesis.accounts.length} accounts, more than the limit of ${ACCOUNT_COUNT_MAX}`,
    );
  }
  const accounts: GenesisAccount[] = [];
  let supply = 0;
  genesis.accounts.forEach((account, index) => {
    const field = `accounts[${index}]`;
    if (!(account.address instanceof Uint8Array) || account.address.length !== ADDRESS_LENGTH_BYTES) {
      throw new GenesisError(
        'INVALID_ADDRESS',
        `${source}: ${field}.address must be ${ADDRESS_LENGTH_BYTES} bytes (an ed25519 public key)`,
      );
    }
    if (!Number.isSafeInteger(account.balance) || account.balance < 0) {
      throw new GenesisError(
        'INVALID_BALANCE',
        `${source}: ${field}.balance must be a non-negative safe integer, got ${String(account.balance)}`,
      );
    }
    if (account.balance > SUPPLY_MAX - supply) {
      throw new GenesisError(
        'SUPPLY_OVERFLOW',
        `${source}: ${field}: total supply would exceed ${SUPPLY_MAX} (Number.MAX_SAFE_INTEGER)`,
      );
    }
    supply += account.balance;
    accounts.push({ address: account.address.slice(), balance: account.balance });
  });
  accounts.sort((a, b) => compareBytes(a.address, b.address));
  for (let i = 1; i < accounts.length; i++) {
    if (compareBytes(accounts[i - 1]!.address, accounts[i]!.address) === 0) {
      throw new GenesisError(
        'DUPLICATE_ADDRESS',
        `${source}: ${accountField(toHex(accounts[i]!.address))} is listed more than once`,
      );
    }
  }
  return { accounts };
}

/** The genesis file text: pretty JSON, accounts sorted by address, trailing newline. */
export function formatGenesis(genesis: Genesis): string {
  const { accounts } = validateGenesis(genesis);
  if (accounts.length === 0) return '{\n  "accounts": {}\n}\n';
  const lines = accounts.map(({ address, balance }) => `    "${toHex(address)}": ${balance}`);
  return `{\n  "accounts": {\n${lines.join(',\n')}\n  }\n}\n`;
}

/** Sum of the genesis balances; every ledger built from it keeps exactly this total. */
export function genesisSupply(genesis: Genesis): number {
  return validateGenesis(genesis).accounts.reduce((sum, account) => sum + account.balance, 0);
}

function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonNumber)
  );
}

function accountField(key: string): string {
  return `accounts[${quoteKey(key)}]`;
}

/** A key as a JSON string literal (so it stays on one line), shortened if absurdly long. */
function quoteKey(key: string): string {
  return JSON.stringify(shorten(key));
}

function shorten(text: string): string {
  return text.length > QUOTED_TEXT_LENGTH_MAX ? `${text.slice(0, QUOTED_TEXT_LENGTH_MAX)}…` : text;
}

function describeJson(value: JsonValue): string {
  if (value instanceof JsonNumber) return shorten(value.text);
  if (typeof value === 'string') return quoteKey(value);
  if (value === null || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
