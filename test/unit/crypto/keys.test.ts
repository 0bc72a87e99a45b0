import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format, inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createVerifier,
  formatKeyFile,
  generateSeed,
  KEY_FILE_SIZE_MAX_BYTES,
  KeyFileError,
  KeyPair,
  parseKeyFile,
  publicKeyFromSeed,
  readKeyFile,
  writeKeyFile,
} from '../../../src/crypto/index.ts';
import { fromHex, toHex, utf8 } from '../../../src/util/bytes.ts';

const FILE_NAME = 'replica-0/key.json';
const SEED_HEX = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const PUBLIC_KEY_HEX = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const OWNER_ONLY_MODE = 0o600;
const PERMISSION_BITS = 0o777;

function keyFileText(fields: Record<string, unknown>): string {
  return JSON.stringify(fields);
}

const validFields = { type: 'ed25519', publicKey: PUBLIC_KEY_HEX, privateKey: SEED_HEX };

/** Every way the seed could show up in text: hex, base64, or the decimal list util.inspect prints. */
function leaksSeed(text: string, seed: Uint8Array): boolean {
  const decimalPrefix = Array.from(seed.subarray(0, 6)).join(', ');
  return (
    text.includes(toHex(seed)) ||
    text.toLowerCase().includes(toHex(seed).slice(0, 16)) ||
    text.includes(Buffer.from(seed).toString('base64').slice(0, 16)) ||
    text.includes(decimalPrefix)
  );
}

function parseError(text: string): KeyFileError {
  try {
    parseKeyFile(text, FILE_NAME);
  } catch (error) {
    expect(error).toBeInstanceOf(KeyFileError);
    const keyFileError = error as KeyFileError;
    expect(keyFileError.message.startsWith(`${FILE_NAME}: `)).toBe(true);
    expect(keyFileError.message).not.toContain('\n');
    expect(leaksSeed(keyFileError.message, fromHex(SEED_HEX))).toBe(false);
    return keyFileError;
  }
  throw new Error('expected parseKeyFile to throw');
}

describe('parseKeyFile', () => {
  it('reads a valid file', () => {
    const keyPair = parseKeyFile(keyFileText(validFields), FILE_NAME);
    expect(keyPair.publicKeyHex).toBe(PUBLIC_KEY_HEX);
    expect(toHex(keyPair.publicKey)).toBe(PUBLIC_KEY_HEX);
    const message = utf8('m');
    for (const backend of ['native', 'noble'] as const) {
      expect(
        createVerifier(backend).verify(keyPair.signer(backend).sign(message), message, keyPair.publicKey),
      ).toBe(true);
    }
  });

  it('reports invalid JSON with the file name and position only, never the content', () => {
    const error = parseError(`{"privateKey": "${SEED_HEX}", x}`);
    expect(error.message).toMatch(/^replica-0\/key\.json: is not valid JSON/);
    expect(error.field).toBeUndefined();
    expect(parseError(`{"privateKey": ${SEED_HEX}}`).message).toContain('is not valid JSON');
    expect(parseError('').message).toContain('is not valid JSON');
  });

  it('requires a JSON object', () => {
    for (const text of ['[]', 'null', '42', '"ed25519"']) {
      expect(parseError(text).message).toBe(`${FILE_NAME}: must be a JSON object`);
    }
  });

  it('names a missing field', () => {
    for (const field of ['type', 'publicKey', 'privateKey'] as const) {
      const { [field]: _removed, ...rest } = validFields;
      const error = parseError(keyFileText(rest));
      expect(error.message).toBe(`${FILE_NAME}: field "${field}" is missing`);
      expect(error.field).toBe(field);
    }
  });

  it('names an unknown field, including prototype-looking ones', () => {
    for (const extra of ['comment', '__proto__', 'constructor', 'PublicKey']) {
      const error = parseError(
        `{"type":"ed25519","publicKey":"${PUBLIC_KEY_HEX}","privateKey":"${SEED_HEX}","${extra}":1}`,
      );
      expect(error.message).toBe(
        `${FILE_NAME}: field "${extra}" is not allowed (expected only "type", "publicKey", "privateKey")`,
      );
      expect(error.field).toBe(extra);
    }
  });

  it('requires type "ed25519"', () => {
    for (const type of ['Ed25519', 'ed448', 1, null]) {
      expect(parseError(keyFileText({ ...validFields, type })).message).toBe(
        `${FILE_NAME}: field "type" must be "ed25519"`,
      );
    }
  });

  it('requires 64 lowercase hex characters in both key fields', () => {
    const badValues: unknown[] = [
      SEED_HEX.toUpperCase(),
      `${SEED_HEX.slice(0, 63)}A`,
      SEED_HEX.slice(0, 62),
      `${SEED_HEX}00`,
      ` ${SEED_HEX.slice(1)}`,
      `0x${SEED_HEX.slice(2)}`,
      `${SEED_HEX.slice(0, 63)}g`,
      '',
      42,
      null,
      [SEED_HEX],
    ];
    for (const field of ['publicKey', 'privateKey'] as const) {
      for (const value of badValues) {
        const error = parseError(keyFileText({ ...validFields, [field]: value }));
        expect(error.message).toBe(`${FILE_NAME}: field "${field}" must be 64 lowercase hex characters`);
        expect(error.field).toBe(field);
      }
    }
  });

  it('rejects a public key that does not belong to the seed', () => {
    const otherPublicKey = toHex(publicKeyFromSeed(new Uint8Array(32).fill(1)));
    const error = parseError(keyFileText({ ...validFields, publicKey: otherPublicKey }));
    expect(error.message).toBe(
      `${FILE_NAME}: field "publicKey" does not match the key derived from "privateKey"`,
    );
    expect(error.field).toBe('publicKey');
  });
});

describe('KeyPair secrecy', () => {
  const seed = fromHex(SEED_HEX);
  const keyPair = new KeyPair(seed);

  it('shows the public key everywhere and the seed nowhere', () => {
    const renderings = [
      JSON.stringify(keyPair),
      JSON.stringify({ nested: { keyPair } }),
      inspect(keyPair),
      inspect(keyPair, { showHidden: true, depth: Number.POSITIVE_INFINITY }),
      inspect(keyPair, { customInspect: false, showHidden: true, depth: Number.POSITIVE_INFINITY }),
      inspect({ config: { keyPair } }),
      String(keyPair),
      `${keyPair}`,
      format('%s %o %O %j', keyPair, keyPair, keyPair, keyPair),
      JSON.stringify(Object.entries(keyPair)),
      JSON.stringify(structuredClone({ ...keyPair })),
      JSON.stringify(keyPair.signer('native')),
      JSON.stringify(keyPair.signer('noble')),
      inspect(keyPair.signer('native'), { customInspect: false, showHidden: true }),
      inspect(keyPair.signer('noble'), { customInspect: false, showHidden: true }),
    ];
    for (const text of renderings) {
      expect(leaksSeed(text, seed), text).toBe(false);
    }
    expect(JSON.parse(JSON.stringify(keyPair))).toEqual({ type: 'ed25519', publicKey: PUBLIC_KEY_HEX });
    expect(inspect(keyPair)).toContain(PUBLIC_KEY_HEX);
    expect(String(keyPair)).toContain(PUBLIC_KEY_HEX);
  });

  it('has no enumerable or own property holding the seed', () => {
    for (const key of Reflect.ownKeys(keyPair)) {
      const value = (keyPair as unknown as Record<PropertyKey, unknown>)[key];
      if (value instanceof Uint8Array) expect(toHex(value)).not.toBe(SEED_HEX);
      if (typeof value === 'string') expect(value).not.toContain(SEED_HEX);
    }
  });

  it('keeps its own copy of the seed', () => {
    const callerSeed = fromHex(SEED_HEX);
    const copy = new KeyPair(callerSeed);
    callerSeed.fill(0);
    expect(toHex(copy.signer().sign(utf8('m')))).toBe(toHex(keyPair.signer().sign(utf8('m'))));
  });

  it('generates distinct random keys', () => {
    expect(KeyPair.generate().publicKeyHex).not.toBe(KeyPair.generate().publicKeyHex);
    expect(toHex(generateSeed())).not.toBe(toHex(generateSeed()));
    expect(generateSeed().length).toBe(32);
  });
});

describe('key files on disk', () => {
  let directory = '';
  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), 'pbft-crypto-keys-'));
  });
  afterEach(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  it('round trips through writeKeyFile and readKeyFile with mode 0600', () => {
    const path = join(directory, 'key.json');
    const seed = generateSeed();
    const written = writeKeyFile(path, seed);
    expect(statSync(path).mode & PERMISSION_BITS).toBe(OWNER_ONLY_MODE);
    const read = readKeyFile(path);
    expect(read.publicKeyHex).toBe(written.publicKeyHex);
    expect(read.publicKeyHex).toBe(toHex(publicKeyFromSeed(seed)));
    expect(toHex(read.signer().sign(utf8('x')))).toBe(toHex(written.signer('noble').sign(utf8('x'))));
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({
      type: 'ed25519',
      publicKey: written.publicKeyHex,
      privateKey: toHex(seed),
    });
    expect(readFileSync(path, 'utf8')).toBe(formatKeyFile(seed));
  });

  it('refuses to overwrite an existing key unless forced, and keeps 0600 when forced', () => {
    const path = join(directory, 'key.json');
    const first = writeKeyFile(path, generateSeed());
    expect(() => writeKeyFile(path, generateSeed())).toThrow(KeyFileError);
    expect(() => writeKeyFile(path, generateSeed())).toThrow(/already exists/);
    expect(readKeyFile(path).publicKeyHex).toBe(first.publicKeyHex);

    const second = writeKeyFile(path, generateSeed(), { force: true });
    expect(second.publicKeyHex).not.toBe(first.publicKeyHex);
    expect(readKeyFile(path).publicKeyHex).toBe(second.publicKeyHex);
    expect(statSync(path).mode & PERMISSION_BITS).toBe(OWNER_ONLY_MODE);
  });

  it('forced write over a world-readable file leaves a 0600 file', () => {
    const path = join(directory, 'key.json');
    writeFileSync(path, 'old', { mode: 0o644 });
    writeKeyFile(path, generateSeed(), { force: true });
    expect(statSync(path).mode & PERMISSION_BITS).toBe(OWNER_ONLY_MODE);
  });

  it('names the file when it is missing or too large', () => {
    const missing = join(directory, 'missing.json');
    expect(() => readKeyFile(missing)).toThrow(KeyFileError);
    expect(() => readKeyFile(missing)).toThrow(`${missing}: cannot be opened (ENOENT)`);

    const large = join(directory, 'large.json');
    writeFileSync(large, ' '.repeat(KEY_FILE_SIZE_MAX_BYTES + 1));
    expect(() => readKeyFile(large)).toThrow(`${large}: is ${KEY_FILE_SIZE_MAX_BYTES + 1} bytes`);
  });

  it('reports parse errors with the path', () => {
    const path = join(directory, 'bad.json');
    writeFileSync(path, keyFileText({ ...validFields, privateKey: SEED_HEX.toUpperCase() }));
    expect(() => readKeyFile(path)).toThrow(
      `${path}: field "privateKey" must be 64 lowercase hex characters`,
    );
  });
});
