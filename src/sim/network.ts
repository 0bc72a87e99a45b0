/**
 * The simulated packet network (after TigerBeetle's packet simulator): every packet gets a delay
 * drawn from the seed, and may be dropped, duplicated or overtaken by later packets. Links can be
 * cut in one direction (asymmetric partition) or both (symmetric partition).
 */
import type { Random } from '../util/random.ts';

/** A network endpoint: a replica id, or a client index offset past the replicas. */
export type NodeId = number;

export interface NetworkFaults {
  /** Probability that a packet is lost. */
  dropProbability: number;
  /** Probability that a packet is delivered twice. */
  duplicateProbability: number;
  delayMinMs: number;
  delayMaxMs: number;
}

export const HEALTHY_NETWORK: NetworkFaults = {
  dropProbability: 0,
  duplicateProbability: 0,
  delayMinMs: 1,
  delayMaxMs: 10,
};

export interface Delivery {
  to: NodeId;
  delayMs: number;
}

export class PacketNetwork {
  private faults: NetworkFaults;
  private readonly cut = new Set<string>();
  sent = 0;
  dropped = 0;
  duplicated = 0;

  private readonly random: Random;

  constructor(random: Random, faults: NetworkFaults) {
    this.random = random;
    this.faults = faults;
  }

  setFaults(faults: NetworkFaults): void {
    this.faults = faults;
  }

  /** Cut the link from → to (one direction only). */
  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  /** Split `group` from every other node in `all`, in both directions. */
  partition(group: readonly NodeId[], all: readonly NodeId[]): void {
    for (const inside of group) {
      for (const outside of all) {
        if (group.includes(outside)) continue;
        this.cutLink(inside, outside);
        this.cutLink(outside, inside);
      }
    }
  }

  healLinks(): void {
    this.cut.clear();
  }

  /** Decide the fate of one packet: zero, one or two deliveries, each with its own delay. */
  route(from: NodeId, to: NodeId): Delivery[] {
    this.sent++;
    if (this.cut.has(`${from}>${to}`) || this.random.chance(this.faults.dropProbability)) {
      this.dropped++;
      return [];
    }
    const deliveries = [{ to, delayMs: this.delay() }];
    if (this.random.chance(this.faults.duplicateProbability)) {
      this.duplicated++;
      deliveries.push({ to, delayMs: this.delay() });
    }
    return deliveries;
  }

  private delay(): number {
    return this.random.int(this.faults.delayMinMs, this.faults.delayMaxMs);
  }
}
