import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CodecError, encodeCanonical } from '../../../src/codec/cbor.ts';
import {
  ACCOUNT_COUNT_MAX,
  decodeOperation,
  decodeResult,
  encodeOperation,
  encodeResult,
  Ledger,
  OPERATION_SIZE_MAX_BYTES,
  type Operation,
  type OperationResult,
  REJECTION_REASONS,
  RESULT_MESSAGE_LENGTH_MAX,
  SNAPSHOT_FORMAT_VERSION,
  SNAPSHOT_SIZE_MAX_BYTES,
} from '../../../src/ledger/index.ts';
import { concatBytes, fromHex } from '../../../src/util/bytes.ts';
import { addressOf, codecErrorCode } from './helpers.ts';

/** The sequence number the protocol orders these requests at (it matters only to new accounts). */
const SEQ = 1;

const SEED = 7_331;
const alice = addressOf(0xa1);
const bob = addressOf(0xb0);

/** One canonical CBOR data item, to splice into hand-built (possibly non-canonical) maps. */
const item = (value: unknown) => encodeCanonical(value);
const mapHeader = (size: number) => Uint8Array.of(0xa0 + size);

const addressArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
const operationArb: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({
    type: fc.constant('transfer' as const),
    to: addressArb,
    amount: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  }),
  fc.record({ type: fc.constant('balance' as const), address: addressArb }),
);
const resultArb: fc.Arbitrary<OperationResult> = fc.oneof(
  fc.record({
    status: fc.constant('ok' as const),
    type: fc.constant('transfer' as const),
    balance: fc.maxSafeNat(),
  }),
  fc.oneof(
    fc.record({
      status: fc.constant('ok' as const),
      type: fc.constant('balance' as const),
      address: addressArb,
      balance: fc.maxSafeNat(),
      exists: fc.constant(true),
    }),
    fc.record({
      status: fc.constant('ok' as const),
      type: fc.constant('balance' as const),
      address: addressArb,
      balance: fc.constant(0),
      exists: fc.constant(false),
    }),
  ),
  fc.record({
    status: fc.constant('rejected' as const),
    reason: fc.constantFrom(...REJECTION_REASONS),
    message: fc.string({ maxLength: RESULT_MESSAGE_LENGTH_MAX }),
  }),
);

describe('operation codec', () => {
  it('round-trips every valid operation, and decoding then encoding gives the same bytes', () => {
    fc.assert(
      fc.property(operationArb, (operation) => {
        const bytes = encodeOperation(operation);
        expect(bytes.length).toBeLessThanOrEqual(OPERATION_SIZE_MAX_BYTES);
        const decoded = decodeOperation(bytes);
        expect(decoded).toEqual(operation);
        expect(encodeOperation(decoded)).toEqual(bytes);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('decodes zero and negative amounts, which execution rejects as invalid-amount', () => {
    expect(decodeOperation(item({ type: 'transfer', to: bob, amount: 0 }))).toMatchObject({ amount: 0 });
    expect(decodeOperation(item({ type: 'transfer', to: bob, amount: -42 }))).toMatchObject({ amount: -42 });
  });

  it('never throws anything but CodecError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: OPERATION_SIZE_MAX_BYTES + 10 }), (bytes) => {
        try {
          const operation = decodeOperation(bytes);
          // Whatever decodes is canonical: it re-encodes to the very same bytes.
          expect(encodeOperation(operation)).toEqual(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(CodecError);
        }
      }),
      { seed: SEED + 1, numRuns: 2_000 },
    );
  });

  const transferItems = {
    type: concatBytes(item('type'), item('transfer')),
    to: concatBytes(item('to'), item(bob)),
    amount: concatBytes(item('amount'), item(5)),
  };

  const rejected: Array<{ name: string; bytes: () => Uint8Array; code: string }> = [
    {
      name: 'hand-built canonical transfer is accepted (control case)',
      bytes: () => concatBytes(mapHeader(3), transferItems.to, transferItems.type, transferItems.amount),
      code: 'none',
    },
    {
      name: 'map keys out of canonical order',
      bytes: () => concatBytes(mapHeader(3), transferItems.type, transferItems.to, transferItems.amount),
      code: 'NON_CANONICAL',
    },
    {
      name: 'amount as a non-minimal integer (0x18 0x05)',
      bytes: () =>
        concatBytes(
          mapHeader(3),
          transferItems.to,
          transferItems.type,
          item('amount'),
          Uint8Array.of(0x18, 0x05),
        ),
      code: 'MALFORMED_CBOR',
    },
    {
      name: 'amount 5 written as a float (f9 4500)',
      bytes: () =>
        concatBytes(mapHeader(3), transferItems.to, transferItems.type, item('amount'), fromHex('f94500')),
      code: 'NON_CANONICAL',
    },
    {
      name: 'indefinite-length map',
      bytes: () =>
        concatBytes(
          Uint8Array.of(0xbf),
          transferItems.to,
          transferItems.type,
          transferItems.amount,
          Uint8Array.of(0xff),
        ),
      code: 'MALFORMED_CBOR',
    },
    {
      name: 'duplicate key',
      bytes: () =>
        concatBytes(
          mapHeader(4),
          transferItems.to,
          transferItems.to,
          transferItems.type,
          transferItems.amount,
        ),
      code: 'MALFORMED_CBOR',
    },
    {
      name: 'trailing bytes after the item',
      bytes: () => concatBytes(item({ type: 'balance', address: bob }), Uint8Array.of(0x00)),
      code: 'MALFORMED_CBOR',
    },
    {
      name: 'non-integer amount',
      bytes: () => item({ type: 'transfer', to: bob, amount: 1.5 }),
      code: 'WRONG_TYPE',
    },
    {
      name: 'amount beyond the safe integer range',
      bytes: () =>
        concatBytes(
          mapHeader(3),
          transferItems.to,
          transferItems.type,
          item('amount'),
          fromHex('1b0020000000000000'),
        ),
      code: 'MALFORMED_CBOR',
    },
    {
      name: 'amount as text',
      bytes: () => item({ type: 'transfer', to: bob, amount: '5' }),
      code: 'WRONG_TYPE',
    },
    {
      name: 'unknown field',
      bytes: () => item({ type: 'transfer', to: bob, amount: 5, memo: 'hi' }),
      code: 'UNKNOWN_FIELD',
    },
    { name: 'missing amount', bytes: () => item({ type: 'transfer', to: bob }), code: 'MISSING_FIELD' },
    { name: 'missing type', bytes: () => item({ to: bob, amount: 5 }), code: 'MISSING_FIELD' },
    { name: 'unknown type', bytes: () => item({ type: 'mint', to: bob, amount: 5 }), code: 'UNKNOWN_TYPE' },
    {
      name: 'balance with a transfer field',
      bytes: () => item({ type: 'balance', address: bob, amount: 1 }),
      code: 'UNKNOWN_FIELD',
    },
    {
      name: '31-byte recipient',
      bytes: () => item({ type: 'transfer', to: bob.subarray(1), amount: 5 }),
      code: 'WRONG_LENGTH',
    },
    {
      name: '33-byte address',
      bytes: () => item({ type: 'balance', address: concatBytes(bob, Uint8Array.of(0)) }),
      code: 'WRONG_LENGTH',
    },
    {
      name: 'address as hex text',
      bytes: () => item({ type: 'balance', address: 'b0'.repeat(32) }),
      code: 'WRONG_TYPE',
    },
    { name: 'an array, not a map', bytes: () => item(['transfer', bob, 5]), code: 'WRONG_TYPE' },
    { name: 'empty input', bytes: () => new Uint8Array(0), code: 'MALFORMED_CBOR' },
    {
      name: 'oversize operation',
      bytes: () => item({ type: 'balance', address: bob, padding: new Uint8Array(OPERATION_SIZE_MAX_BYTES) }),
      code: 'FRAME_TOO_LARGE',
    },
  ];

  for (const { name, bytes, code } of rejected) {
    it(`${code === 'none' ? 'accepts' : 'rejects'}: ${name}`, () => {
      if (code === 'none') {
        expect(decodeOperation(bytes())).toEqual({ type: 'transfer', to: bob, amount: 5 });
      } else {
        expect(codecErrorCode(() => decodeOperation(bytes()))).toBe(code);
      }
    });
  }

  it('encodeOperation refuses to produce bytes no replica would accept', () => {
    expect(codecErrorCode(() => encodeOperation({ type: 'transfer', to: bob.subarray(2), amount: 5 }))).toBe(
      'WRONG_LENGTH',
    );
    expect(codecErrorCode(() => encodeOperation({ type: 'transfer', to: bob, amount: 0.5 }))).toBe(
      'WRONG_TYPE',
    );
    expect(codecErrorCode(() => encodeOperation({ type: 'transfer', to: bob, amount: 2 ** 53 }))).toBe(
      'WRONG_TYPE',
    );
    expect(codecErrorCode(() => encodeOperation({ type: 'balance', address: new Uint8Array(0) }))).toBe(
      'WRONG_LENGTH',
    );
  });

  it('the ledger turns every undecodable operation into a malformed-operation rejection', () => {
    const ledger = Ledger.fromGenesis({ accounts: [{ address: alice, balance: 10 }] });
    for (const { bytes, code } of rejected) {
      if (code === 'none') continue;
      const result = decodeResult(ledger.execute(SEQ, alice, 1, bytes()));
      expect(result).toMatchObject({ status: 'rejected', reason: 'malformed-operation' });
      if (result.status === 'rejected') expect(result.message).toContain(code);
    }
    expect(ledger.account(alice)).toEqual({ balance: 10, lastRequest: 1 });
  });
});

describe('result codec', () => {
  it('round-trips every valid result', () => {
    fc.assert(
      fc.property(resultArb, (result) => {
        const bytes = encodeResult(result);
        const decoded = decodeResult(bytes);
        expect(decoded).toEqual(result);
        expect(encodeResult(decoded)).toEqual(bytes);
      }),
      { seed: SEED + 2, numRuns: 300 },
    );
  });

  const cases: Array<{ name: string; value: unknown; code: string }> = [
    {
      name: 'unknown status',
      value: { status: 'maybe', reason: 'self-transfer', message: '' },
      code: 'UNKNOWN_TYPE',
    },
    {
      name: 'unknown rejection reason',
      value: { status: 'rejected', reason: 'bored', message: 'x' },
      code: 'UNKNOWN_TYPE',
    },
    {
      name: 'message longer than the limit',
      value: {
        status: 'rejected',
        reason: 'self-transfer',
        message: 'x'.repeat(RESULT_MESSAGE_LENGTH_MAX + 1),
      },
      code: 'WRONG_LENGTH',
    },
    {
      name: 'unknown field in a rejection',
      value: { status: 'rejected', reason: 'self-transfer', message: 'x', seq: 1 },
      code: 'UNKNOWN_FIELD',
    },
    { name: 'negative balance', value: { status: 'ok', type: 'transfer', balance: -1 }, code: 'WRONG_TYPE' },
    {
      name: 'a missing account with a balance',
      value: { status: 'ok', type: 'balance', address: bob, balance: 3, exists: false },
      code: 'OUT_OF_RANGE',
    },
    {
      name: 'balance result with a short address',
      value: { status: 'ok', type: 'balance', address: bob.subarray(4), balance: 3, exists: true },
      code: 'WRONG_LENGTH',
    },
    {
      name: 'balance result without exists',
      value: { status: 'ok', type: 'balance', address: bob, balance: 3 },
      code: 'MISSING_FIELD',
    },
    {
      name: 'oversize result',
      value: { status: 'rejected', reason: 'self-transfer', message: 'x', padding: new Uint8Array(2_000) },
      code: 'FRAME_TOO_LARGE',
    },
  ];

  for (const { name, value, code } of cases) {
    it(`rejects: ${name}`, () => {
      expect(codecErrorCode(() => decodeResult(encodeCanonical(value)))).toBe(code);
    });
  }

  it('rejects a non-canonical result (keys out of order)', () => {
    const pairs = {
      type: concatBytes(item('type'), item('transfer')),
      status: concatBytes(item('status'), item('ok')),
      balance: concatBytes(item('balance'), item(5)),
    };
    // Canonical order sorts encoded keys bytewise: "type" (0x64…) < "status" (0x66…) < "balance" (0x67…).
    const canonical = concatBytes(mapHeader(3), pairs.type, pairs.status, pairs.balance);
    expect(decodeResult(canonical)).toEqual({ status: 'ok', type: 'transfer', balance: 5 });
    const reordered = concatBytes(mapHeader(3), pairs.status, pairs.type, pairs.balance);
    expect(codecErrorCode(() => decodeResult(reordered))).toBe('NON_CANONICAL');
  });

  it('encodeResult refuses a message over the limit', () => {
    const message = 'x'.repeat(RESULT_MESSAGE_LENGTH_MAX + 1);
    expect(codecErrorCode(() => encodeResult({ status: 'rejected', reason: 'self-transfer', message }))).toBe(
      'WRONG_LENGTH',
    );
  });
});

describe('snapshot decoding', () => {
  function sampleLedger(): Ledger {
    const ledger = Ledger.fromGenesis({
      accounts: [
        { address: alice, balance: 1_000 },
        { address: bob, balance: 2_000 },
      ],
    });
    ledger.execute(SEQ, alice, 4, encodeOperation({ type: 'transfer', to: addressOf(0xc0), amount: 300 }));
    return ledger;
  }

  /** A snapshot from raw entries [address, balance, lastRequest]. */
  const snapshotOf = (accounts: unknown, version: unknown = SNAPSHOT_FORMAT_VERSION) =>
    encodeCanonical({ version, accounts });

  const cases: Array<{ name: string; bytes: () => Uint8Array; code: string }> = [
    { name: 'truncated', bytes: () => sampleLedger().snapshot().subarray(0, 40), code: 'MALFORMED_CBOR' },
    { name: 'empty', bytes: () => new Uint8Array(0), code: 'MALFORMED_CBOR' },
    {
      name: 'accounts out of order',
      bytes: () =>
        snapshotOf([
          [bob, 1, 0],
          [alice, 1, 0],
        ]),
      code: 'NON_CANONICAL',
    },
    {
      name: 'the same account twice',
      bytes: () =>
        snapshotOf([
          [alice, 1, 0],
          [alice, 1, 0],
        ]),
      code: 'NON_CANONICAL',
    },
    { name: 'unknown version', bytes: () => snapshotOf([], 2), code: 'UNKNOWN_TYPE' },
    {
      name: 'supply beyond MAX_SAFE_INTEGER',
      bytes: () =>
        snapshotOf([
          [alice, Number.MAX_SAFE_INTEGER, 0],
          [bob, 1, 0],
        ]),
      code: 'OUT_OF_RANGE',
    },
    { name: 'negative balance', bytes: () => snapshotOf([[alice, -1, 0]]), code: 'WRONG_TYPE' },
    { name: 'fractional lastRequest', bytes: () => snapshotOf([[alice, 1, 0.5]]), code: 'WRONG_TYPE' },
    { name: 'entry with two fields', bytes: () => snapshotOf([[alice, 1]]), code: 'WRONG_LENGTH' },
    { name: 'entry as a map', bytes: () => snapshotOf([{ address: alice, balance: 1 }]), code: 'WRONG_TYPE' },
    { name: 'short address', bytes: () => snapshotOf([[alice.subarray(1), 1, 0]]), code: 'WRONG_LENGTH' },
    {
      name: 'unknown top-level field',
      bytes: () => encodeCanonical({ version: 1, accounts: [], supply: 0 }),
      code: 'UNKNOWN_FIELD',
    },
    {
      name: 'more accounts than the limit',
      bytes: () =>
        snapshotOf(
          Array.from({ length: ACCOUNT_COUNT_MAX + 1 }, (_, index) => {
            const address = new Uint8Array(32);
            new DataView(address.buffer).setUint32(28, index);
            return [address, 0, 0];
          }),
        ),
      code: 'WRONG_LENGTH',
    },
    {
      name: 'larger than a frame',
      bytes: () => new Uint8Array(SNAPSHOT_SIZE_MAX_BYTES + 1),
      code: 'FRAME_TOO_LARGE',
    },
  ];

  for (const { name, bytes, code } of cases) {
    it(`restore rejects a snapshot: ${name}, and keeps the old state`, () => {
      const ledger = sampleLedger();
      const before = ledger.snapshot();
      expect(codecErrorCode(() => ledger.restore(bytes()))).toBe(code);
      expect(ledger.snapshot()).toEqual(before);
    });
  }

  it('any single-byte corruption is either rejected or is exactly the snapshot of another valid state', () => {
    const snapshot = sampleLedger().snapshot();
    fc.assert(
      fc.property(fc.nat({ max: snapshot.length - 1 }), fc.integer({ min: 1, max: 255 }), (index, delta) => {
        const corrupt = snapshot.slice();
        corrupt[index] = (corrupt[index]! + delta) & 0xff;
        let restored: Ledger;
        try {
          restored = Ledger.fromSnapshot(corrupt);
        } catch (error) {
          expect(error).toBeInstanceOf(CodecError);
          return;
        }
        // Accepted bytes must be the unique encoding of the state they describe.
        expect(restored.snapshot()).toEqual(corrupt);
      }),
      { seed: SEED + 3, numRuns: 1_000 },
    );
  });
});
