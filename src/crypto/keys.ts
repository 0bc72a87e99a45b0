/**
 * Key generation, backend selection and key files.
 *
 * A key file is one JSON object, written with mode 0600:
 *   { "type": "ed25519", "publicKey": "<64 lowercase hex>", "privateKey": "<64 lowercase hex seed>" }
 * Parsing is strict (no unknown or missing fields, lowercase hex only, public key must match the
 * seed) so a damaged or hand-edited file fails at startup with a message naming file and field.
 * The seed lives only in a private field of `KeyPair` and is never printed, serialised or logged.
 */

import { createPublicKey, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { invariant } from '../util/assert.ts';
import { bytesEqual, fromHex, toHex } from '../util/bytes.ts';
import {
  NativeSigner,
  NativeVerifier,
  privateKeyObjectFromSeed,
  rawPublicKeyFromKeyObject,
} from './native.ts';
import { NobleSigner, NobleVerifier } from './noble.ts';
import { isByteArray, SEED_LENGTH_BYTES } from './strict.ts';
import type { CryptoBackend, Signer, Verifier, VerifierOptions } from './types.ts';

export const KEY_TYPE = 'ed25519';
/** A valid key file is about 170 bytes; refuse to read anything far larger into memory. */
export const KEY_FILE_SIZE_MAX_BYTES = 4096;
const KEY_FILE_MODE = 0o600;
const KEY_FILE_FIELDS = ['type', 'publicKey', 'privateKey'] as const;
/** Optional in key files: the account address, which must equal the public key. */
const KEY_FILE_ADDRESS_FIELD = 'address';
type KeyFileField = (typeof KEY_FILE_FIELDS)[number];
const KEY_HEX_PATTERN = /^[0-9a-f]{64}$/;
const TEMPORARY_SUFFIX_RANDOM_BYTES = 6;

export function generateSeed(): Uint8Array {
  return Uint8Array.from(randomBytes(SEED_LENGTH_BYTES));
}

export function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  return rawPublicKeyFromKeyObject(createPublicKey(privateKeyObjectFromSeed(seed)));
}

export function createSigner(seed: Uint8Array, backend: CryptoBackend = 'native'): Signer {
  switch (backend) {
    case 'native':
      return new NativeSigner(seed);
    case 'noble':
      return new NobleSigner(seed);
    default:
      return unknownBackend(backend);
  }
}

export function createVerifier(backend: CryptoBackend = 'native', options: VerifierOptions = {}): Verifier {
  switch (backend) {
    case 'native':
      return new NativeVerifier(options);
    case 'noble':
      return new NobleVerifier(options);
    default:
      return unknownBackend(backend);
  }
}

function unknownBackend(backend: never): never {
  throw new TypeError(`unknown crypto backend ${JSON.stringify(backend)} (expected "native" or "noble")`);
}

/**
 * An Ed25519 key pair whose seed cannot leak by accident: it sits in a private field, and
 * `JSON.stringify`, `util.inspect` (hence console.log) and `String()` show only the public key.
 */
export class KeyPair {
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  readonly #seed: Uint8Array;

  constructor(seed: Uint8Array) {
    invariant(isByteArray(seed) && seed.length === SEED_LENGTH_BYTES, 'an ed25519 seed is 32 bytes');
    this.#seed = Uint8Array.from(seed);
    this.publicKey = publicKeyFromSeed(this.#seed);
    this.publicKeyHex = toHex(this.publicKey);
  }

  static generate(): KeyPair {
    return new KeyPair(generateSeed());
  }

  signer(backend: CryptoBackend = 'native'): Signer {
    return createSigner(this.#seed, backend);
  }

  /**
   * A copy of the 32-byte seed, for the one place that needs the raw key: deriving the replica's
   * libp2p identity (so its peer id is its consensus key). Never log or print it.
   */
  exportSeed(): Uint8Array {
    return Uint8Array.from(this.#seed);
  }

  toJSON(): { type: typeof KEY_TYPE; publicKey: string } {
    return { type: KEY_TYPE, publicKey: this.publicKeyHex };
  }

  toString(): string {
    return `KeyPair(${KEY_TYPE} ${this.publicKeyHex})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `KeyPair { type: '${KEY_TYPE}', publicKey: '${this.publicKeyHex}' }`;
  }
}

/** A key file that cannot be used. The message is one line naming the file and, if any, the field. */
export class KeyFileError extends Error {
  override name = 'KeyFileError';
  readonly fileName: string;
  readonly field: string | undefined;

  constructor(fileName: string, field: string | undefined, problem: string) {
    super(
      `${fileName}: ${field === undefined ? '' : `field "${field}" `}${problem}`.replace(/[\r\n]+/g, ' '),
    );
    this.fileName = fileName;
    this.field = field;
  }
}

/**
 * `withAddress` adds an "address" field (the public key, i.e. the ledger account) for account
 * files handed to people, who look for an address rather than a key.
 */
export function formatKeyFile(seed: Uint8Array, options: { withAddress?: boolean } = {}): string {
  const keyPair = new KeyPair(seed);
  const document: Record<string, string> = {
    type: KEY_TYPE,
    ...(options.withAddress === true ? { address: keyPair.publicKeyHex } : {}),
    publicKey: keyPair.publicKeyHex,
    privateKey: toHex(seed),
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** `fileName` only labels errors; nothing is read from disk. */
export function parseKeyFile(text: string, fileName: string): KeyPair {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    // Keep only V8's "(line L column C)": its other messages quote the input, which may be the seed.
    const location = /\(line \d+ column \d+\)/.exec((error as Error).message)?.[0];
    throw new KeyFileError(
      fileName,
      undefined,
      `is not valid JSON${location === undefined ? '' : ` ${location}`}`,
    );
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new KeyFileError(fileName, undefined, 'must be a JSON object');
  }
  for (const field of Object.keys(document)) {
    if (!(KEY_FILE_FIELDS as readonly string[]).includes(field) && field !== KEY_FILE_ADDRESS_FIELD) {
      throw new KeyFileError(fileName, field, `is not allowed (expected only ${quotedFieldList()})`);
    }
  }
  const fields = document as Partial<Record<KeyFileField, unknown>>;
  for (const field of KEY_FILE_FIELDS) {
    if (!Object.hasOwn(fields, field)) throw new KeyFileError(fileName, field, 'is missing');
  }
  if (fields.type !== KEY_TYPE) throw new KeyFileError(fileName, 'type', `must be "${KEY_TYPE}"`);
  const publicKey = readKeyHex(fields.publicKey, fileName, 'publicKey');
  const seed = readKeyHex(fields.privateKey, fileName, 'privateKey');
  const keyPair = new KeyPair(seed);
  seed.fill(0);
  if (!bytesEqual(keyPair.publicKey, publicKey)) {
    throw new KeyFileError(fileName, 'publicKey', 'does not match the key derived from "privateKey"');
  }
  const address = (document as Record<string, unknown>)[KEY_FILE_ADDRESS_FIELD];
  if (address !== undefined && address !== keyPair.publicKeyHex) {
    throw new KeyFileError(fileName, KEY_FILE_ADDRESS_FIELD, 'must equal "publicKey" (the account address)');
  }
  return keyPair;
}

function readKeyHex(value: unknown, fileName: string, field: KeyFileField): Uint8Array {
  // The value is never echoed: for "privateKey" that would print (part of) the secret.
  if (typeof value !== 'string' || !KEY_HEX_PATTERN.test(value)) {
    throw new KeyFileError(fileName, field, 'must be 64 lowercase hex characters');
  }
  return fromHex(value);
}

function quotedFieldList(): string {
  return KEY_FILE_FIELDS.map((field) => `"${field}"`).join(', ');
}

export function readKeyFile(path: string): KeyPair {
  return parseKeyFile(readBoundedText(path), path);
}

function readBoundedText(path: string): string {
  let descriptor: number;
  try {
    descriptor = openSync(path, 'r');
  } catch (error) {
    throw new KeyFileError(path, undefined, `cannot be opened (${systemErrorCode(error)})`);
  }
  try {
    const sizeBytes = fstatSync(descriptor).size;
    if (sizeBytes > KEY_FILE_SIZE_MAX_BYTES) {
      throw new KeyFileError(
        path,
        undefined,
        `is ${sizeBytes} bytes, more than the ${KEY_FILE_SIZE_MAX_BYTES} a key file may be`,
      );
    }
    // One byte past the limit detects a file that grew after fstat.
    const buffer = Buffer.alloc(KEY_FILE_SIZE_MAX_BYTES + 1);
    let lengthBytes = 0;
    for (;;) {
      const readBytes = readSync(descriptor, buffer, lengthBytes, buffer.length - lengthBytes, null);
      if (readBytes === 0) break;
      lengthBytes += readBytes;
      if (lengthBytes > KEY_FILE_SIZE_MAX_BYTES) {
        throw new KeyFileError(
          path,
          undefined,
          `is more than the ${KEY_FILE_SIZE_MAX_BYTES} bytes a key file may be`,
        );
      }
    }
    const text = buffer.toString('utf8', 0, lengthBytes);
    buffer.fill(0);
    return text;
  } finally {
    closeSync(descriptor);
  }
}

export interface WriteKeyFileOptions {
  /** Replace an existing file. Without it an existing key is never overwritten. */
  force?: boolean;
  /** Also write the "address" field (account files). */
  withAddress?: boolean;
}

/** Writes the key file with mode 0600 and returns the key pair it holds. */
export function writeKeyFile(path: string, seed: Uint8Array, options: WriteKeyFileOptions = {}): KeyPair {
  const keyPair = new KeyPair(seed);
  const text = formatKeyFile(seed, { withAddress: options.withAddress === true });
  if (options.force === true) {
    // Write a fresh 0600 file and rename it over the old one: the old key stays intact until the new
    // one is complete, and the new file never inherits looser permissions from the old.
    const temporaryPath = `${path}.${process.pid}.${randomBytes(TEMPORARY_SUFFIX_RANDOM_BYTES).toString('hex')}.tmp`;
    try {
      writeNewFile(temporaryPath, text, path);
      renameSync(temporaryPath, path);
    } catch (error) {
      rmSync(temporaryPath, { force: true });
      if (error instanceof KeyFileError) throw error;
      throw new KeyFileError(path, undefined, `cannot be written (${systemErrorCode(error)})`);
    }
  } else {
    writeNewFile(path, text, path);
  }
  return keyPair;
}

/** Creates `path` exclusively (fails if it exists), writes and fsyncs. `label` names it in errors. */
function writeNewFile(path: string, text: string, label: string): void {
  let descriptor: number;
  try {
    descriptor = openSync(path, 'wx', KEY_FILE_MODE);
  } catch (error) {
    if (systemErrorCode(error) === 'EEXIST') {
      throw new KeyFileError(
        label,
        undefined,
        'already exists; refusing to overwrite a key (pass { force: true } to replace it)',
      );
    }
    throw new KeyFileError(label, undefined, `cannot be created (${systemErrorCode(error)})`);
  }
  const bytes = Buffer.from(text, 'utf8');
  try {
    let writtenBytes = 0;
    while (writtenBytes < bytes.length) {
      writtenBytes += writeSync(descriptor, bytes, writtenBytes, bytes.length - writtenBytes);
    }
    fsyncSync(descriptor);
  } catch (error) {
    closeSync(descriptor);
    // A half-written key file would block the retry (it exists) and fail to parse: remove it.
    rmSync(path, { force: true });
    throw new KeyFileError(label, undefined, `cannot be written (${systemErrorCode(error)})`);
  } finally {
    bytes.fill(0);
  }
  closeSync(descriptor);
}

function systemErrorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(error);
}
