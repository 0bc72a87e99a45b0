/** The chaos runner's verdict: lost, duplicated, disagreeing and supply-changing outcomes are all caught. */
import { describe, expect, it } from 'vitest';
import { type AuditInput, auditLedger } from '../../../scripts/lib/chaos-audit.ts';

const INITIAL = 1_000;
const ADDRESSES = ['a1', 'a2', 's1', 's2'];

/** Two clients (a1 → s1, a2 → s2); `executed` is how many transfers each replica applied per client. */
function input(
  executed: Record<number, [number, number]>,
  acknowledged: [number, number],
  unknown: [number, number] = [0, 0],
): AuditInput {
  const balances = new Map<number, Map<string, number>>();
  for (const [replica, [first, second]] of Object.entries(executed)) {
    balances.set(
      Number(replica),
      new Map([
        ['a1', INITIAL - first],
        ['a2', INITIAL - second],
        ['s1', INITIAL + first],
        ['s2', INITIAL + second],
      ]),
    );
  }
  return {
    initialBalance: INITIAL,
    supply: INITIAL * ADDRESSES.length,
    clients: [
      { name: 'one', sender: 'a1', sink: 's1', acknowledged: acknowledged[0], unknown: unknown[0] },
      { name: 'two', sender: 'a2', sink: 's2', acknowledged: acknowledged[1], unknown: unknown[1] },
    ],
    addresses: ADDRESSES,
    balances,
    correct: Object.keys(executed).map(Number),
  };
}

describe('chaos audit', () => {
  it('passes when every acknowledged transfer executed once everywhere', () => {
    const result = auditLedger(input({ 0: [10, 7], 1: [10, 7], 2: [10, 7] }, [10, 7]));
    expect(result).toMatchObject({ acknowledged: 17, executed: 17, lost: 0, duplicated: 0, problems: [] });
  });

  it('accepts an unknown outcome either way: executed once or not at all', () => {
    expect(auditLedger(input({ 0: [11, 7], 1: [11, 7] }, [10, 7], [1, 0])).problems).toEqual([]);
    expect(auditLedger(input({ 0: [10, 7], 1: [10, 7] }, [10, 7], [1, 0])).problems).toEqual([]);
  });

  it('reports acknowledged transfers that no replica executed as lost', () => {
    const result = auditLedger(input({ 0: [9, 7], 1: [9, 7] }, [10, 7]));
    expect(result.lost).toBe(1);
    expect(result.problems).toEqual([
      'replica 0: acknowledged transfers missing: 1 transfer of 1 client (first one: executed 9, acknowledged 10)',
      'replica 1: acknowledged transfers missing: 1 transfer of 1 client (first one: executed 9, acknowledged 10)',
    ]);
  });

  it('reports a transfer executed twice as duplicated', () => {
    const result = auditLedger(input({ 0: [10, 9], 1: [10, 9] }, [10, 7], [0, 1]));
    expect(result.duplicated).toBe(1);
    expect(result.problems[0]).toBe(
      'replica 0: executed more transfers than sent: 1 transfer of 1 client (first two: executed 9, acknowledged 7, unknown 1)',
    );
  });

  it('reports replicas that disagree', () => {
    const result = auditLedger(input({ 0: [10, 7], 1: [11, 7] }, [10, 7], [1, 0]));
    expect(result.problems).toEqual(['replicas 0 and 1 disagree on 2 balances']);
  });

  it('reports created money and a replica that did not answer', () => {
    const created = input({ 0: [10, 7] }, [10, 7]);
    (created.balances.get(0) as Map<string, number>).set('s2', INITIAL + 8);
    const result = auditLedger({ ...created, correct: [0, 3] });
    expect(result.problems).toContain(`replica 0: supply is ${INITIAL * 4 + 1}, genesis had ${INITIAL * 4}`);
    expect(result.problems).toContain(
      'replica 0: sender and sink disagree: 1 client (first two: sent 7 but its sink received 8)',
    );
    expect(result.problems).toContain('replica 3 did not answer the balance audit');
  });

  it('sums up a replica that missed the same batch for every client in one line', () => {
    const result = auditLedger(input({ 0: [10, 7], 1: [9, 6] }, [10, 7]));
    expect(result.problems).toEqual([
      'replica 1: acknowledged transfers missing: 2 transfers of 2 clients (first one: executed 9, acknowledged 10)',
      'replicas 0 and 1 disagree on 4 balances',
    ]);
  });
});
