/**
 * The chaos runner's verdict, computed from what the clients saw and what each replica holds.
 *
 * Each load client sends transfers of 1 unit from its own sender account to its own sink account,
 * one at a time, and nothing else touches those accounts. So on every replica the number of its
 * transfers that executed is exactly (initial − sender balance), and also (sink balance − initial).
 * A client knows how many transfers were acknowledged (f+1 matching replies) and how many ended
 * with an unknown outcome (timed out: executed at most once, possibly not at all). Then:
 *   executed < acknowledged                → acknowledged transfers were lost
 *   executed > acknowledged + unknown      → some transfer executed twice
 *   replicas hold different balances       → correct replicas disagree
 *   sum of all balances ≠ genesis supply   → money was created or destroyed
 */

export interface LoadClientRecord {
  name: string;
  sender: string;
  sink: string;
  acknowledged: number;
  /** Transfers that timed out: each executed once or not at all. */
  unknown: number;
}

export interface AuditInput {
  initialBalance: number;
  supply: number;
  clients: readonly LoadClientRecord[];
  /** Every account address of the cluster (senders, sinks and any other). */
  addresses: readonly string[];
  /** Replica id → address → balance, as each correct replica answered. */
  balances: ReadonlyMap<number, ReadonlyMap<string, number>>;
  /** The replicas that must agree: those that never lied. */
  correct: readonly number[];
}

export interface AuditResult {
  acknowledged: number;
  unknown: number;
  /** Executed transfers per the first correct replica (all must agree anyway). */
  executed: number;
  lost: number;
  duplicated: number;
  /** One line per problem; empty when the run passed. */
  problems: string[];
}

export function auditLedger(input: AuditInput): AuditResult {
  const problems: string[] = [];
  let lost = 0;
  let duplicated = 0;
  let executedTotal = -1;
  // The first correct replica that answered: the others are compared with it.
  const reference = input.correct.find((id) => input.balances.has(id));
  for (const id of input.correct) {
    const balances = input.balances.get(id);
    if (balances === undefined) {
      problems.push(`replica ${id} did not answer the balance audit`);
      continue;
    }
    const missing = input.addresses.filter((address) => !balances.has(address));
    if (missing.length > 0) {
      problems.push(`replica ${id} gave no balance for ${missing.length} accounts`);
      continue;
    }
    const supply = input.addresses.reduce((sum, address) => sum + balances.get(address)!, 0);
    if (supply !== input.supply)
      problems.push(`replica ${id}: supply is ${supply}, genesis had ${input.supply}`);
    let executedHere = 0;
    // One line per replica and kind of problem, not per client: a replica that missed one batch
    // under heavy load would otherwise print a line for every client in it.
    const missingTransfers = new Findings('acknowledged transfers missing');
    const extra = new Findings('executed more transfers than sent');
    const unbalanced = new Findings('sender and sink disagree');
    for (const client of input.clients) {
      const sent = input.initialBalance - balances.get(client.sender)!;
      const received = balances.get(client.sink)! - input.initialBalance;
      if (sent !== received) unbalanced.add(client.name, 0, `sent ${sent} but its sink received ${received}`);
      executedHere += sent;
      if (sent < client.acknowledged) {
        if (id === reference) lost += client.acknowledged - sent;
        missingTransfers.add(
          client.name,
          client.acknowledged - sent,
          `executed ${sent}, acknowledged ${client.acknowledged}`,
        );
      }
      if (sent > client.acknowledged + client.unknown) {
        const count = sent - client.acknowledged - client.unknown;
        if (id === reference) duplicated += count;
        extra.add(
          client.name,
          count,
          `executed ${sent}, acknowledged ${client.acknowledged}, unknown ${client.unknown}`,
        );
      }
    }
    for (const findings of [unbalanced, missingTransfers, extra]) {
      const line = findings.line(id);
      if (line !== null) problems.push(line);
    }
    if (id === reference) executedTotal = executedHere;
    if (reference !== undefined && id !== reference) {
      const referenceBalances = input.balances.get(reference);
      const differing =
        referenceBalances === undefined
          ? []
          : input.addresses.filter((address) => referenceBalances.get(address) !== balances.get(address));
      if (differing.length > 0) {
        problems.push(`replicas ${reference} and ${id} disagree on ${differing.length} balances`);
      }
    }
  }
  return {
    acknowledged: input.clients.reduce((sum, client) => sum + client.acknowledged, 0),
    unknown: input.clients.reduce((sum, client) => sum + client.unknown, 0),
    executed: Math.max(0, executedTotal),
    lost,
    duplicated,
    problems,
  };
}

/** Clients with one kind of problem on one replica, summed up in one line. */
class Findings {
  private readonly what: string;
  private clients = 0;
  private transfers = 0;
  private example: string | null = null;

  constructor(what: string) {
    this.what = what;
  }

  add(client: string, transfers: number, detail: string): void {
    this.clients++;
    this.transfers += transfers;
    this.example ??= `${client}: ${detail}`;
  }

  line(replica: number): string | null {
    if (this.example === null) return null;
    const plural = (count: number, noun: string): string => `${count} ${noun}${count === 1 ? '' : 's'}`;
    const count = this.transfers > 0 ? `${plural(this.transfers, 'transfer')} of ` : '';
    return `replica ${replica}: ${this.what}: ${count}${plural(this.clients, 'client')} (first ${this.example})`;
  }
}
