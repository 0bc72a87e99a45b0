import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatGenesis,
  GENESIS_TEXT_LENGTH_MAX,
  type Genesis,
  GenesisError,
  genesisSupply,
  Ledger,
  parseGenesis,
  SUPPLY_MAX,
  validateGenesis,
} from '../../../src/ledger/index.ts';
import { toHex } from '../../../src/util/bytes.ts';
import {
  JSON_NESTING_DEPTH_MAX,
  JsonNumber,
  parseStrictJson,
  StrictJsonError,
} from '../../../src/util/strict-json.ts';
import { addressOf } from './helpers.ts';

const SEED = 4_242;
const A = 'a1'.repeat(32);
const B = 'b0'.repeat(32);

function genesisError(action: () => unknown): GenesisError {
  try {
    action();
  } catch (error) {
    if (error instanceof GenesisError) return error;
    throw error;
  }
  throw new Error('expected a GenesisError, but nothing was thrown');
}

describe('parseGenesis', () => {
  it('reads balances, sorted by address', () => {
    const genesis = parseGenesis(`{ "accounts": { "${B}": 20, "${A}": 10 } }`, 'genesis.json');
    expect(genesis.accounts.map(({ address, balance }) => [toHex(address), balance])).toEqual([
      [A, 10],
      [B, 20],
    ]);
    expect(genesisSupply(genesis)).toBe(30);
    expect(Ledger.fromGenesis(genesis).balanceOf(addressOf(0xb0))).toBe(20);
  });

  it('accepts zero balances, no accounts, and a supply of exactly MAX_SAFE_INTEGER', () => {
    expect(parseGenesis('{"accounts":{}}', 'g.json')).toEqual({ accounts: [] });
    const genesis = parseGenesis(`{"accounts":{"${A}":${SUPPLY_MAX - 1},"${B}":1}}`, 'g.json');
    expect(genesisSupply(genesis)).toBe(SUPPLY_MAX);
    expect(parseGenesis(`{"accounts":{"${A}":0}}`, 'g.json').accounts[0]!.balance).toBe(0);
  });

  const failures: Array<{ name: string; text: string; code: string; message: string }> = [
    {
      name: 'invalid JSON, with its position',
      text: '{\n  "accounts": {\n    "x": 1,\n  }\n}',
      code: 'INVALID_JSON',
      message: 'genesis.json: invalid JSON at line 4 column 3: expected a string key',
    },
    {
      name: 'not an object',
      text: '[]',
      code: 'WRONG_TYPE',
      message: 'genesis.json: must be a JSON object with an "accounts" field',
    },
    {
      name: 'unknown top-level field',
      text: `{"accounts":{"${A}":1},"supply":1}`,
      code: 'UNKNOWN_FIELD',
      message: 'genesis.json: unknown field "supply" (the only field is "accounts")',
    },
    {
      name: 'missing accounts',
      text: '{}',
      code: 'MISSING_FIELD',
      message: 'genesis.json: missing field "accounts"',
    },
    {
      name: 'accounts as an array',
      text: `{"accounts":[["${A}",1]]}`,
      code: 'WRONG_TYPE',
      message:
        'genesis.json: accounts must be an object mapping 64-character lowercase hex addresses to balances',
    },
    {
      name: 'uppercase hex',
      text: `{"accounts":{"${A.toUpperCase()}":1}}`,
      code: 'INVALID_ADDRESS',
      message: `genesis.json: accounts["${A.toUpperCase()}"] is not a valid address: hex digits must be lowercase`,
    },
    {
      name: 'short address',
      text: '{"accounts":{"ab12":1}}',
      code: 'INVALID_ADDRESS',
      message:
        'genesis.json: accounts["ab12"] is not a valid address: expected 64 lowercase hex characters (an ed25519 public key), got 4 characters',
    },
    {
      name: 'non-hex address',
      text: `{"accounts":{"${'zz'.repeat(32)}":1}}`,
      code: 'INVALID_ADDRESS',
      message: `genesis.json: accounts["${'zz'.repeat(32)}"] is not a valid address: expected 64 lowercase hex characters (an ed25519 public key), got 64 characters`,
    },
    {
      name: '__proto__ as an address',
      text: '{"accounts":{"__proto__":1}}',
      code: 'INVALID_ADDRESS',
      message:
        'genesis.json: accounts["__proto__"] is not a valid address: expected 64 lowercase hex characters (an ed25519 public key), got 9 characters',
    },
    {
      name: 'duplicate address',
      text: `{"accounts":{\n"${A}":1,\n"${A}":2}}`,
      code: 'DUPLICATE_ADDRESS',
      message: `genesis.json: accounts["${A}"] is listed more than once (line 3 column 1)`,
    },
    {
      name: 'duplicate top-level field',
      text: `{"accounts":{},"accounts":{"${A}":5}}`,
      code: 'INVALID_JSON',
      message: 'genesis.json: invalid JSON at line 1 column 16: duplicate key "accounts"',
    },
    ...(
      [
        ['-1', 'negative'],
        ['1.5', 'fractional'],
        ['1.0', 'integer written with a fraction'],
        ['1e3', 'exponent'],
        ['"100"', 'string'],
        ['null', 'null'],
        ['9007199254740992', 'beyond MAX_SAFE_INTEGER'],
      ] as const
    ).map(([balance, kind]) => ({
      name: `balance: ${kind}`,
      text: `{"accounts":{"${A}":${balance}}}`,
      code: 'INVALID_BALANCE',
      message: `genesis.json: accounts["${A}"] must be a non-negative safe integer, got ${balance}`,
    })),
    {
      name: 'supply overflow',
      text: `{"accounts":{"${A}":${SUPPLY_MAX},"${B}":1}}`,
      code: 'SUPPLY_OVERFLOW',
      message: `genesis.json: accounts["${B}"]: total supply would exceed ${SUPPLY_MAX} (Number.MAX_SAFE_INTEGER)`,
    },
  ];

  for (const { name, text, code, message } of failures) {
    it(`rejects ${name} with a one-line message naming the file and field`, () => {
      const error = genesisError(() => parseGenesis(text, 'genesis.json'));
      expect(error.code).toBe(code);
      expect(error.message).toBe(message);
      expect(error.message).not.toContain('\n');
    });
  }

  it('quotes hostile keys safely on one line and shortens them', () => {
    const key = `evil\n${'x'.repeat(500)}`;
    const error = genesisError(() => parseGenesis(JSON.stringify({ accounts: { [key]: 1 } }), 'g.json'));
    expect(error.code).toBe('INVALID_ADDRESS');
    expect(error.message).not.toContain('\n');
    expect(error.message.length).toBeLessThan(250);
    expect(error.message.startsWith('g.json: accounts["evil\\nxxx')).toBe(true);
  });

  it('rejects an oversize file before parsing it', () => {
    const error = genesisError(() => parseGenesis(' '.repeat(GENESIS_TEXT_LENGTH_MAX + 1), 'big.json'));
    expect(error.code).toBe('TOO_LARGE');
    expect(error.message).toMatch(/^big\.json: /);
  });
});

describe('formatGenesis', () => {
  it('writes the documented layout', () => {
    const text = formatGenesis({
      accounts: [
        { address: addressOf(0xb0), balance: 20 },
        { address: addressOf(0xa1), balance: 10 },
      ],
    });
    expect(text).toBe(`{\n  "accounts": {\n    "${A}": 10,\n    "${B}": 20\n  }\n}\n`);
    expect(JSON.parse(text)).toEqual({ accounts: { [A]: 10, [B]: 20 } });
    expect(formatGenesis({ accounts: [] })).toBe('{\n  "accounts": {}\n}\n');
  });

  it('round-trips through parseGenesis for any valid genesis', () => {
    const genesisArb: fc.Arbitrary<Genesis> = fc
      .uniqueArray(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 20, selector: toHex })
      .chain((addresses) =>
        fc.tuple(
          ...addresses.map((address) =>
            fc.integer({ min: 0, max: Math.floor(SUPPLY_MAX / 20) }).map((balance) => ({ address, balance })),
          ),
        ),
      )
      .map((accounts) => ({ accounts }));
    fc.assert(
      fc.property(genesisArb, (genesis) => {
        const parsed = parseGenesis(formatGenesis(genesis), 'genesis.json');
        expect(parsed).toEqual(validateGenesis(genesis));
        expect(formatGenesis(parsed)).toBe(formatGenesis(genesis));
      }),
      { seed: SEED, numRuns: 200 },
    );
  });
});

describe('validateGenesis (a genesis built in code, as Ledger.fromGenesis gets it)', () => {
  const cases: Array<{ name: string; genesis: Genesis; code: string; message: string }> = [
    {
      name: 'duplicate address',
      genesis: {
        accounts: [
          { address: addressOf(0xa1), balance: 1 },
          { address: addressOf(0xa1), balance: 2 },
        ],
      },
      code: 'DUPLICATE_ADDRESS',
      message: `genesis: accounts["${A}"] is listed more than once`,
    },
    {
      name: 'short address',
      genesis: { accounts: [{ address: new Uint8Array(31), balance: 1 }] },
      code: 'INVALID_ADDRESS',
      message: 'genesis: accounts[0].address must be 32 bytes (an ed25519 public key)',
    },
    {
      name: 'negative balance',
      genesis: { accounts: [{ address: addressOf(1), balance: -3 }] },
      code: 'INVALID_BALANCE',
      message: 'genesis: accounts[0].balance must be a non-negative safe integer, got -3',
    },
    {
      name: 'fractional balance',
      genesis: { accounts: [{ address: addressOf(1), balance: 0.5 }] },
      code: 'INVALID_BALANCE',
      message: 'genesis: accounts[0].balance must be a non-negative safe integer, got 0.5',
    },
    {
      name: 'supply overflow',
      genesis: {
        accounts: [
          { address: addressOf(1), balance: SUPPLY_MAX },
          { address: addressOf(2), balance: 1 },
        ],
      },
      code: 'SUPPLY_OVERFLOW',
      message: `genesis: accounts[1]: total supply would exceed ${SUPPLY_MAX} (Number.MAX_SAFE_INTEGER)`,
    },
  ];

  for (const { name, genesis, code, message } of cases) {
    it(`Ledger.fromGenesis rejects ${name}`, () => {
      const error = genesisError(() => Ledger.fromGenesis(genesis));
      expect(error.code).toBe(code);
      expect(error.message).toBe(message);
    });
  }

  it('copies the addresses, so later changes to the input do not reach the ledger', () => {
    const address = addressOf(0xa1);
    const ledger = Ledger.fromGenesis({ accounts: [{ address, balance: 9 }] });
    address.fill(0);
    expect(ledger.balanceOf(addressOf(0xa1))).toBe(9);
    expect(ledger.snapshot()).toEqual(
      Ledger.fromGenesis({ accounts: [{ address: addressOf(0xa1), balance: 9 }] }).snapshot(),
    );
  });
});

describe('parseStrictJson', () => {
  /** Plain data for comparison: objects as key/value lists, so "__proto__" is compared like any key. */
  function normalize(value: unknown): unknown {
    if (value instanceof JsonNumber) return value.value;
    if (Array.isArray(value)) return value.map(normalize);
    if (typeof value === 'object' && value !== null) {
      return Object.entries(value).map(([key, inner]) => [key, normalize(inner)]);
    }
    return value;
  }

  it('agrees with JSON.parse on every document without duplicate keys', () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        expect(normalize(parseStrictJson(text))).toEqual(normalize(JSON.parse(text)));
      }),
      { seed: SEED + 1, numRuns: 500 },
    );
  });

  it('keeps the source text of numbers', () => {
    const value = parseStrictJson('[1e3, 1.0, -0, 10]');
    expect(Array.isArray(value) && value.map((item) => (item as JsonNumber).text)).toEqual([
      '1e3',
      '1.0',
      '-0',
      '10',
    ]);
  });

  it('treats "__proto__" as an ordinary key', () => {
    const value = parseStrictJson('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  const invalid: Array<[string, string]> = [
    ['{"a":1,"a":2}', 'DUPLICATE_KEY'],
    ['{"a":{"b":1,"b":1}}', 'DUPLICATE_KEY'],
    ['{"a":1,}', 'SYNTAX'],
    ['[1,]', 'SYNTAX'],
    ['01', 'SYNTAX'],
    ['+1', 'SYNTAX'],
    ['.5', 'SYNTAX'],
    ['NaN', 'SYNTAX'],
    ["{'a':1}", 'SYNTAX'],
    ['"tab\there"', 'SYNTAX'],
    ['"\\x41"', 'SYNTAX'],
    ['"\\u12"', 'SYNTAX'],
    ['"open', 'SYNTAX'],
    ['{} {}', 'SYNTAX'],
    ['', 'SYNTAX'],
    ['tru', 'SYNTAX'],
    ['[1] // comment', 'SYNTAX'],
    [`${'['.repeat(JSON_NESTING_DEPTH_MAX + 1)}${']'.repeat(JSON_NESTING_DEPTH_MAX + 1)}`, 'TOO_DEEP'],
  ];

  for (const [text, code] of invalid) {
    it(`rejects ${JSON.stringify(text.slice(0, 30))} as ${code}`, () => {
      let caught: unknown;
      try {
        parseStrictJson(text);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(StrictJsonError);
      expect((caught as StrictJsonError).code).toBe(code);
    });
  }

  it('accepts nesting up to the limit', () => {
    const text = `${'['.repeat(JSON_NESTING_DEPTH_MAX)}${']'.repeat(JSON_NESTING_DEPTH_MAX)}`;
    expect(() => parseStrictJson(text)).not.toThrow();
  });

  it('reports the path and position of a duplicate key', () => {
    try {
      parseStrictJson('{"outer": {\n  "k": 1,\n  "k": 2}}');
      throw new Error('expected a StrictJsonError');
    } catch (error) {
      expect(error).toBeInstanceOf(StrictJsonError);
      const strict = error as StrictJsonError;
      expect(strict.path).toEqual(['outer']);
      expect(strict.key).toBe('k');
      expect([strict.line, strict.column]).toEqual([3, 3]);
    }
  });
});
