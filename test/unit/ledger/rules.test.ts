import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../../src/codec/cbor.ts';
import {
  ACCOUNT_COUNT_MAX,
  decodeResult,
  type Genesis,
  Ledger,
  SNAPSHOT_SIZE_MAX_BYTES,
  SUPPLY_MAX,
} from '../../../src/ledger/index.ts';
import { InvariantError } from '../../../src/util/assert.ts';
import { bytesEqual, toHex } from '../../../src/util/bytes.ts';
import { addressOf, balanceBytes, result, transferBytes } from './helpers.ts';

/** The sequence number the protocol orders these requests at (it matters only to new accounts). */
const SEQ = 1;

const alice = addressOf(0xa1);
const bob = addressOf(0xb0);
const carol = addressOf(0xc0);
const stranger = addressOf(0x51);

function aliceAndBob(): Ledger {
  return Ledger.fromGenesis({
    accounts: [
      { address: alice, balance: 100 },
      { address: bob, balance: 50 },
    ],
  });
}

describe('transfer', () => {
  it('moves the amount and reports the sender’s new balance', () => {
    const ledger = aliceAndBob();
    expect(result(ledger.execute(SEQ, alice, 1, transferBytes(bob, 30)))).toEqual({
      status: 'ok',
      type: 'transfer',
      balance: 70,
    });
    expect(ledger.account(alice)).toEqual({ balance: 70, lastRequest: 1 });
    expect(ledger.account(bob)).toEqual({ balance: 80, lastRequest: 0 });
    expect(ledger.totalSupply()).toBe(150);
  });

  it('may spend the whole balance, leaving an account with zero', () => {
    const ledger = aliceAndBob();
    expect(result(ledger.execute(SEQ, alice, 1, transferBytes(bob, 100)))).toMatchObject({ balance: 0 });
    expect(ledger.account(alice)).toEqual({ balance: 0, lastRequest: 1 });
    expect(ledger.accountCount()).toBe(2);
  });

  it('creates the recipient account when it does not exist', () => {
    const ledger = aliceAndBob();
    expect(ledger.account(carol)).toBeUndefined();
    expect(result(ledger.execute(SEQ, alice, 1, transferBytes(carol, 25))).status).toBe('ok');
    expect(ledger.account(carol)).toEqual({ balance: 25, lastRequest: 2 * SEQ + 1 });
    expect(ledger.accountCount()).toBe(3);
    expect(ledger.totalSupply()).toBe(150);
  });
});

describe('rejections change nothing but the sender’s lastRequest', () => {
  const cases = [
    { name: 'unknown-sender', client: stranger, operation: () => transferBytes(bob, 1) },
    { name: 'insufficient-funds', client: alice, operation: () => transferBytes(bob, 101) },
    { name: 'invalid-amount', client: alice, operation: () => transferBytes(bob, 0) },
    { name: 'invalid-amount', client: alice, operation: () => transferBytes(bob, -5) },
    { name: 'self-transfer', client: alice, operation: () => transferBytes(alice, 10) },
    { name: 'malformed-operation', client: alice, operation: () => Uint8Array.of(0xff, 0x00, 0x13) },
    {
      name: 'malformed-operation',
      client: alice,
      operation: () => encodeCanonical({ type: 'transfer', to: bob, amount: 1.5 }),
    },
    {
      name: 'malformed-operation',
      client: alice,
      operation: () => encodeCanonical({ type: 'mint', to: alice, amount: 1000 }),
    },
    { name: 'malformed-operation', client: alice, operation: () => new Uint8Array(0) },
  ] as const;

  for (const { name, client, operation } of cases) {
    it(`${name}: ${toHex(operation()).slice(0, 40)}`, () => {
      const ledger = aliceAndBob();
      const before = ledger.accounts();
      const outcome = result(ledger.execute(SEQ, client, 7, operation()));
      expect(outcome).toMatchObject({ status: 'rejected', reason: name });
      if (outcome.status !== 'rejected') throw new Error('unreachable');
      expect(outcome.message.length).toBeGreaterThan(0);

      const after = ledger.accounts();
      const expected = before.map((account) =>
        bytesEqual(account.address, client) ? { ...account, lastRequest: 7 } : account,
      );
      expect(after).toEqual(expected);
    });
  }

  it('an unknown sender gets no account from a rejection', () => {
    const ledger = aliceAndBob();
    const snapshot = ledger.snapshot();
    ledger.execute(SEQ, stranger, 1, transferBytes(bob, 1));
    expect(ledger.account(stranger)).toBeUndefined();
    expect(ledger.snapshot()).toEqual(snapshot);
  });

  it('checks amount before self-transfer before sender before funds, so the reason is the same everywhere', () => {
    const ledger = aliceAndBob();
    expect(result(ledger.execute(SEQ, stranger, 1, transferBytes(stranger, 0)))).toMatchObject({
      reason: 'invalid-amount',
    });
    expect(result(ledger.execute(SEQ, stranger, 2, transferBytes(stranger, 5)))).toMatchObject({
      reason: 'self-transfer',
    });
    expect(result(ledger.execute(SEQ, stranger, 3, transferBytes(bob, 1_000_000)))).toMatchObject({
      reason: 'unknown-sender',
    });
  });

  it('messages say what was wrong', () => {
    const ledger = aliceAndBob();
    const insufficient = result(ledger.execute(SEQ, alice, 1, transferBytes(bob, 101)));
    expect(insufficient).toMatchObject({ message: 'balance 100 is less than the amount 101' });
    const unknown = result(ledger.execute(SEQ, stranger, 1, transferBytes(bob, 1)));
    expect(unknown).toMatchObject({ message: `sender ${'51'.repeat(32)} has no account` });
  });
});

describe('lastRequest', () => {
  it('records t of every executed request of an existing account, whatever the outcome', () => {
    const ledger = aliceAndBob();
    ledger.execute(SEQ, alice, 1, transferBytes(bob, 1));
    expect(ledger.account(alice)?.lastRequest).toBe(1);
    ledger.execute(SEQ, alice, 2, balanceBytes(carol));
    expect(ledger.account(alice)?.lastRequest).toBe(2);
    ledger.execute(SEQ, alice, 5, transferBytes(bob, 1_000));
    expect(ledger.account(alice)?.lastRequest).toBe(5);
    expect(ledger.account(bob)?.lastRequest).toBe(0);
  });

  it('starts at 2s + 1 for the sequence number s that created the account (voiding what its key signed before) and advances when it sends', () => {
    const ledger = aliceAndBob();
    expect(ledger.requestFloor(carol)).toBeNull();
    ledger.execute(40, alice, 1, transferBytes(carol, 10));
    expect(ledger.account(carol)?.lastRequest).toBe(81);
    expect(ledger.requestFloor(carol)).toBe(81);
    ledger.execute(41, carol, 82, transferBytes(bob, 4));
    expect(ledger.account(carol)).toEqual({ balance: 6, lastRequest: 82 });
    expect(ledger.requestFloor(carol)).toBe(82);
    expect(ledger.requestFloor(alice)).toBe(1);
  });

  it('refuses malformed calls from the protocol: a short client key or an unsafe t', () => {
    const ledger = aliceAndBob();
    expect(() => ledger.execute(SEQ, alice.subarray(1), 1, transferBytes(bob, 1))).toThrow(InvariantError);
    expect(() => ledger.execute(SEQ, alice, -1, transferBytes(bob, 1))).toThrow(InvariantError);
    expect(() => ledger.execute(SEQ, alice, 1.5, transferBytes(bob, 1))).toThrow(InvariantError);
    expect(ledger.account(alice)).toEqual({ balance: 100, lastRequest: 0 });
  });
});

describe('balance', () => {
  it('as an ordered request answers for existing and missing accounts', () => {
    const ledger = aliceAndBob();
    expect(result(ledger.execute(SEQ, stranger, 1, balanceBytes(bob)))).toEqual({
      status: 'ok',
      type: 'balance',
      address: bob,
      balance: 50,
      exists: true,
    });
    expect(result(ledger.execute(SEQ, alice, 2, balanceBytes(carol)))).toEqual({
      status: 'ok',
      type: 'balance',
      address: carol,
      balance: 0,
      exists: false,
    });
    expect(ledger.account(carol)).toBeUndefined();
    expect(ledger.balanceOf(carol)).toBe(0);
    expect(ledger.balanceOf(bob)).toBe(50);
  });
});

describe('query', () => {
  it('answers balances and never mutates, whatever it is given', () => {
    const ledger = aliceAndBob();
    ledger.execute(SEQ, alice, 3, transferBytes(carol, 10));
    const snapshot = ledger.snapshot();

    expect(result(ledger.query(balanceBytes(alice)))).toEqual({
      status: 'ok',
      type: 'balance',
      address: alice,
      balance: 90,
      exists: true,
    });
    expect(result(ledger.query(balanceBytes(stranger)))).toMatchObject({ balance: 0, exists: false });
    expect(result(ledger.query(transferBytes(bob, 10)))).toMatchObject({
      status: 'rejected',
      reason: 'not-a-query',
    });
    expect(result(ledger.query(transferBytes(stranger, 10)))).toMatchObject({ reason: 'not-a-query' });
    expect(result(ledger.query(Uint8Array.of(1, 2, 3)))).toMatchObject({ reason: 'malformed-operation' });

    expect(ledger.snapshot()).toEqual(snapshot);
    expect(ledger.account(stranger)).toBeUndefined();
  });

  it('returns an address the caller cannot use to reach into the ledger', () => {
    const ledger = aliceAndBob();
    const outcome = result(ledger.query(balanceBytes(bob)));
    if (outcome.status !== 'ok' || outcome.type !== 'balance') throw new Error('unexpected result');
    outcome.address.fill(0);
    expect(ledger.balanceOf(bob)).toBe(50);
  });
});

describe('helpers', () => {
  it('account() and accounts() return copies', () => {
    const ledger = aliceAndBob();
    const account = ledger.account(alice)!;
    account.balance = 1_000_000;
    const [first] = ledger.accounts();
    first!.address.fill(0x33);
    first!.balance = 5;
    expect(ledger.account(alice)).toEqual({ balance: 100, lastRequest: 0 });
    expect(ledger.totalSupply()).toBe(150);
  });

  it('accounts() is sorted by address and fromGenesis ignores the order genesis lists them in', () => {
    const genesis: Genesis = {
      accounts: [
        { address: carol, balance: 3 },
        { address: alice, balance: 1 },
        { address: bob, balance: 2 },
      ],
    };
    const ledger = Ledger.fromGenesis(genesis);
    expect(ledger.accounts().map((account) => account.balance)).toEqual([1, 2, 3]);
    expect(ledger.snapshot()).toEqual(
      Ledger.fromGenesis({ accounts: genesis.accounts.toReversed() }).snapshot(),
    );
  });

  it('a new Ledger is empty', () => {
    const ledger = new Ledger();
    expect(ledger.accountCount()).toBe(0);
    expect(ledger.totalSupply()).toBe(0);
    expect(result(ledger.execute(SEQ, alice, 1, transferBytes(bob, 1)))).toMatchObject({
      reason: 'unknown-sender',
    });
  });

  it('supports a supply of exactly SUPPLY_MAX without losing precision', () => {
    const ledger = Ledger.fromGenesis({
      accounts: [
        { address: alice, balance: SUPPLY_MAX - 1 },
        { address: bob, balance: 1 },
      ],
    });
    ledger.execute(SEQ, bob, 1, transferBytes(alice, 1));
    expect(ledger.balanceOf(alice)).toBe(SUPPLY_MAX);
    expect(ledger.totalSupply()).toBe(SUPPLY_MAX);
    expect(Ledger.fromSnapshot(ledger.snapshot()).balanceOf(alice)).toBe(SUPPLY_MAX);
  });
});

describe('account limit', () => {
  /** Distinct addresses from a counter, spread over the first four bytes. */
  function numberedAddress(index: number): Uint8Array {
    const address = new Uint8Array(32).fill(0x01);
    new DataView(address.buffer).setUint32(0, index);
    return address;
  }

  it('a full ledger rejects transfers that would create an account; its widest snapshot still fits', () => {
    // Every field at its widest encoding: 32-bit+ balances and lastRequest near MAX_SAFE_INTEGER.
    const entries = Array.from({ length: ACCOUNT_COUNT_MAX }, (_, index) => [
      numberedAddress(index),
      2 ** 32 + index,
      Number.MAX_SAFE_INTEGER - index,
    ]);
    const snapshot = encodeCanonical({ version: 1, accounts: entries });
    expect(snapshot.length).toBeLessThanOrEqual(SNAPSHOT_SIZE_MAX_BYTES);
    const ledger = Ledger.fromSnapshot(snapshot);
    expect(ledger.accountCount()).toBe(ACCOUNT_COUNT_MAX);
    expect(ledger.snapshot()).toEqual(snapshot);

    const sender = numberedAddress(0);
    const newcomer = addressOf(0xee);
    const rejected = decodeResult(
      ledger.execute(SEQ, sender, Number.MAX_SAFE_INTEGER, transferBytes(newcomer, 1)),
    );
    expect(rejected).toMatchObject({ status: 'rejected', reason: 'account-limit' });
    expect(ledger.account(newcomer)).toBeUndefined();
    expect(ledger.accountCount()).toBe(ACCOUNT_COUNT_MAX);
    expect(ledger.account(sender)).toEqual({ balance: 2 ** 32, lastRequest: Number.MAX_SAFE_INTEGER });

    const paid = decodeResult(ledger.execute(SEQ, sender, 2, transferBytes(numberedAddress(1), 1)));
    expect(paid).toEqual({ status: 'ok', type: 'transfer', balance: 2 ** 32 - 1 });
    expect(ledger.balanceOf(numberedAddress(1))).toBe(2 ** 32 + 2);
  });
});
