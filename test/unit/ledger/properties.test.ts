/**
 * Properties of the ledger over random genesis files and random request sequences: supply is
 * conserved, balances never go negative, results follow the rules (checked against a small
 * reference model), and execution is deterministic across ledgers and across snapshot/restore.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../../src/codec/cbor.ts';
import {
  ADDRESS_LENGTH_BYTES,
  decodeOperation,
  decodeResult,
  encodeOperation,
  type Genesis,
  Ledger,
  type Operation,
  type OperationResult,
  SUPPLY_MAX,
} from '../../../src/ledger/index.ts';
import { toHex } from '../../../src/util/bytes.ts';

/** The sequence number the protocol orders these requests at (it matters only to new accounts). */
const SEQ = 1;

const SEED = 20_240_601;
const RUNS = 200;
const POOL_SIZE = 6;

type Step = { client: Uint8Array; operation: Uint8Array };
type Scenario = { genesis: Genesis; steps: Step[] };

const addressArb = fc.uint8Array({ minLength: ADDRESS_LENGTH_BYTES, maxLength: ADDRESS_LENGTH_BYTES });

/** Amounts that are valid, zero, negative, too large, or at the edges of the safe range. */
const amountArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 200 }) },
  { weight: 1, arbitrary: fc.integer({ min: -1_000, max: 0 }) },
  { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 1) },
  { weight: 1, arbitrary: fc.maxSafeNat() },
);

/**
 * A scenario over a small pool of addresses, so that transfers often hit existing accounts; a pool
 * slot beyond the genesis accounts is an address that has no account yet.
 */
const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    pool: fc.uniqueArray(addressArb, { minLength: POOL_SIZE, maxLength: POOL_SIZE, selector: toHex }),
    fundedCount: fc.integer({ min: 0, max: POOL_SIZE - 1 }),
    balances: fc.array(
      fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 0, max: 500 }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: Math.floor(SUPPLY_MAX / POOL_SIZE) }) },
      ),
      { minLength: POOL_SIZE, maxLength: POOL_SIZE },
    ),
    rawSteps: fc.array(
      fc.record({
        clientSlot: fc.nat({ max: POOL_SIZE }),
        freshClient: addressArb,
        kind: fc.constantFrom('transfer', 'transfer', 'transfer', 'balance', 'garbage', 'mutated'),
        targetSlot: fc.nat({ max: POOL_SIZE }),
        freshTarget: addressArb,
        amount: amountArb,
        garbage: fc.uint8Array({ maxLength: 300 }),
        mutation: fc.record({ index: fc.nat(), byte: fc.nat({ max: 255 }) }),
      }),
      { maxLength: 60, size: 'medium' },
    ),
  })
  .map(({ pool, fundedCount, balances, rawSteps }) => {
    const genesis: Genesis = {
      accounts: pool.slice(0, fundedCount).map((address, index) => ({ address, balance: balances[index]! })),
    };
    const pick = (slot: number, fresh: Uint8Array) => (slot < POOL_SIZE ? pool[slot]! : fresh);
    const steps = rawSteps.map((raw): Step => {
      const client = pick(raw.clientSlot, raw.freshClient);
      const target = pick(raw.targetSlot, raw.freshTarget);
      const transfer = encodeCanonical({ type: 'transfer', to: target, amount: raw.amount });
      switch (raw.kind) {
        case 'transfer':
          return { client, operation: transfer };
        case 'balance':
          return { client, operation: encodeOperation({ type: 'balance', address: target }) };
        case 'garbage':
          return { client, operation: raw.garbage };
        case 'mutated': {
          const operation = transfer.slice();
          operation[raw.mutation.index % operation.length] = raw.mutation.byte;
          return { client, operation };
        }
      }
      throw new Error(`unknown step kind ${raw.kind}`);
    });
    return { genesis, steps };
  });

function nextRequestNumber(counters: Map<string, number>, client: Uint8Array): number {
  const key = toHex(client);
  const t = (counters.get(key) ?? 0) + 1;
  counters.set(key, t);
  return t;
}

/** Run every step, numbering each client's requests from 1 as the protocol would. */
function* run(ledger: Ledger, steps: readonly Step[], counters = new Map<string, number>()) {
  for (const step of steps) {
    const t = nextRequestNumber(counters, step.client);
    yield { step, t, resultBytes: ledger.execute(SEQ, step.client, t, step.operation) };
  }
}

/**
 * The rules of DESIGN.md §4 written as plainly as possible, independently of Ledger's code: the
 * expected outcome (a rejection reason, or 'ok') of a request given the balances before it. What
 * is malformed is the codec's business (tested in codec.test.ts), so the model asks the codec.
 */
function expectedOutcome(balances: Map<string, number>, client: Uint8Array, operation: Uint8Array): string {
  let decoded: Operation;
  try {
    decoded = decodeOperation(operation);
  } catch {
    return 'malformed-operation';
  }
  if (decoded.type === 'balance') return 'ok';
  const senderKey = toHex(client);
  if (decoded.amount <= 0) return 'invalid-amount';
  if (toHex(decoded.to) === senderKey) return 'self-transfer';
  const senderBalance = balances.get(senderKey);
  if (senderBalance === undefined) return 'unknown-sender';
  if (senderBalance < decoded.amount) return 'insufficient-funds';
  return 'ok';
}

function outcomeOf(result: OperationResult): string {
  return result.status === 'ok' ? 'ok' : result.reason;
}

describe('conservation of supply', () => {
  it('total supply never changes and no balance goes negative, whatever is executed', () => {
    fc.assert(
      fc.property(scenarioArb, ({ genesis, steps }) => {
        const ledger = Ledger.fromGenesis(genesis);
        const supply = genesis.accounts.reduce((sum, account) => sum + account.balance, 0);
        expect(ledger.totalSupply()).toBe(supply);
        for (const _ of run(ledger, steps)) {
          expect(ledger.totalSupply()).toBe(supply);
          for (const account of ledger.accounts()) {
            expect(Number.isSafeInteger(account.balance)).toBe(true);
            expect(account.balance).toBeGreaterThanOrEqual(0);
          }
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('rules under random input', () => {
  it('each result matches the reference model and changes only what that outcome allows', () => {
    fc.assert(
      fc.property(scenarioArb, ({ genesis, steps }) => {
        const ledger = Ledger.fromGenesis(genesis);
        const counters = new Map<string, number>();
        for (const step of steps) {
          const before = new Map(ledger.accounts().map((account) => [toHex(account.address), account]));
          const balancesBefore = new Map([...before].map(([key, account]) => [key, account.balance]));
          const t = nextRequestNumber(counters, step.client);
          const result = decodeResult(ledger.execute(SEQ, step.client, t, step.operation));
          expect(outcomeOf(result)).toBe(expectedOutcome(balancesBefore, step.client, step.operation));
          if (result.status === 'ok' && result.type === 'balance') {
            const queried = before.get(toHex(result.address));
            expect(result.balance).toBe(queried?.balance ?? 0);
            expect(result.exists).toBe(queried !== undefined);
          }

          const after = new Map(ledger.accounts().map((account) => [toHex(account.address), account]));
          const senderKey = toHex(step.client);
          const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
            (key) => JSON.stringify(before.get(key)) !== JSON.stringify(after.get(key)),
          );
          const operation =
            result.status === 'ok' && result.type === 'transfer'
              ? decodeOperation(step.operation)
              : undefined;
          const allowed = new Set([senderKey]);
          if (operation?.type === 'transfer') allowed.add(toHex(operation.to));
          for (const key of changed) expect(allowed.has(key)).toBe(true);

          if (before.has(senderKey)) expect(after.get(senderKey)!.lastRequest).toBe(t);
          else expect(after.has(senderKey)).toBe(false);
          if (operation?.type === 'transfer') {
            const toKey = toHex(operation.to);
            expect(after.get(senderKey)!.balance).toBe(before.get(senderKey)!.balance - operation.amount);
            expect(after.get(toKey)!.balance).toBe((before.get(toKey)?.balance ?? 0) + operation.amount);
            expect(result).toEqual({
              status: 'ok',
              type: 'transfer',
              balance: after.get(senderKey)!.balance,
            });
          }
        }
      }),
      { seed: SEED + 1, numRuns: RUNS },
    );
  });
});

describe('determinism', () => {
  it('two ledgers from the same genesis give identical results and snapshots', () => {
    fc.assert(
      fc.property(scenarioArb, ({ genesis, steps }) => {
        const first = Ledger.fromGenesis(genesis);
        // The order genesis lists accounts in must not matter.
        const second = Ledger.fromGenesis({ accounts: genesis.accounts.toReversed() });
        expect(second.snapshot()).toEqual(first.snapshot());
        const firstResults = [...run(first, steps)].map((entry) => entry.resultBytes);
        const secondResults = [...run(second, steps)].map((entry) => entry.resultBytes);
        expect(secondResults).toEqual(firstResults);
        expect(second.snapshot()).toEqual(first.snapshot());
      }),
      { seed: SEED + 2, numRuns: RUNS },
    );
  });

  it('snapshot → restore → snapshot is the identity and the restored ledger behaves identically', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(), ({ genesis, steps }, cutSeed) => {
        const cut = steps.length === 0 ? 0 : cutSeed % (steps.length + 1);
        const original = Ledger.fromGenesis(genesis);
        const counters = new Map<string, number>();
        [...run(original, steps.slice(0, cut), counters)];

        const snapshot = original.snapshot();
        const restored = Ledger.fromSnapshot(snapshot);
        expect(restored.snapshot()).toEqual(snapshot);
        expect(restored.accounts()).toEqual(original.accounts());
        expect(restored.totalSupply()).toBe(original.totalSupply());

        // restore() into a ledger that already has a different state replaces it entirely.
        const reused = Ledger.fromGenesis({
          accounts: [{ address: new Uint8Array(32).fill(0xfe), balance: 7 }],
        });
        reused.restore(snapshot);
        expect(reused.snapshot()).toEqual(snapshot);

        const rest = steps.slice(cut);
        const originalResults = [...run(original, rest, new Map(counters))].map((entry) => entry.resultBytes);
        const restoredResults = [...run(restored, rest, new Map(counters))].map((entry) => entry.resultBytes);
        const reusedResults = [...run(reused, rest, new Map(counters))].map((entry) => entry.resultBytes);
        expect(restoredResults).toEqual(originalResults);
        expect(reusedResults).toEqual(originalResults);
        expect(restored.snapshot()).toEqual(original.snapshot());
        expect(reused.snapshot()).toEqual(original.snapshot());
      }),
      { seed: SEED + 3, numRuns: RUNS },
    );
  });

  it('query never changes the snapshot bytes', () => {
    fc.assert(
      fc.property(scenarioArb, ({ genesis, steps }) => {
        const ledger = Ledger.fromGenesis(genesis);
        [...run(ledger, steps.slice(0, steps.length >> 1))];
        const snapshot = ledger.snapshot();
        for (const step of steps) {
          const answer = decodeResult(ledger.query(step.operation));
          if (answer.status === 'ok') expect(answer.type).toBe('balance');
        }
        expect(ledger.snapshot()).toEqual(snapshot);
      }),
      { seed: SEED + 4, numRuns: RUNS },
    );
  });
});

describe('the generators', () => {
  it('exercise every outcome, so the properties above are not vacuous', () => {
    const outcomes = new Map<string, number>();
    for (const { genesis, steps } of fc.sample(scenarioArb, { seed: SEED, numRuns: RUNS })) {
      const ledger = Ledger.fromGenesis(genesis);
      for (const { resultBytes } of run(ledger, steps)) {
        const outcome = outcomeOf(decodeResult(resultBytes));
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    }
    for (const outcome of [
      'ok',
      'unknown-sender',
      'insufficient-funds',
      'invalid-amount',
      'self-transfer',
      'malformed-operation',
    ]) {
      expect(outcomes.get(outcome) ?? 0, outcome).toBeGreaterThan(100);
    }
  });
});
