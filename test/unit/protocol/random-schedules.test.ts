/**
 * Safety under adversarial schedules: seeded random delivery order, loss, duplication, timeouts and
 * crash-restarts of up to f replicas. Whatever happens, no two correct replicas execute different
 * batches at one sequence number, and replicas that executed the same prefix hold the same state.
 */
import { describe, expect, it } from 'vitest';
import { toHex } from '../../../src/util/bytes.ts';
import { Cluster } from './harness.ts';

/** mulberry32: a tiny deterministic PRNG, so every failure replays from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Outcome {
  executedSeq: number;
  views: number[];
  completed: number;
  issued: number;
}

function runSchedule(seed: number, n: number, steps: number): Outcome {
  const random = prng(seed);
  const pick = (k: number) => Math.floor(random() * k);
  const cluster = new Cluster({ n, clients: 4 }).start();
  const { f } = cluster.q;
  const issued: Array<{ client: number; t: number }> = [];
  const outstanding = new Map<number, ReturnType<Cluster['request']>>();

  /** Digest executed at each seq, across every replica and every (re-)execution. */
  const agreed = new Map<number, string>();
  const checked = cluster.executed.map(() => 0);
  const checkSafety = () => {
    for (let id = 0; id < n; id++) {
      const batches = cluster.executed[id]!;
      for (; checked[id]! < batches.length; checked[id]!++) {
        const batch = batches[checked[id]!]!;
        const digest = toHex(batch.digest);
        const previous = agreed.get(batch.seq);
        if (previous === undefined) agreed.set(batch.seq, digest);
        else expect(digest, `seed ${seed}: replica ${id} seq ${batch.seq}`).toBe(previous);
      }
    }
  };

  /**
   * A client accepts a result once f+1 distinct replicas sent matching replies: the same sequence
   * number and the same result bytes (as PbftClient votes). Replies that differ do not add up.
   */
  const acceptedByClient = (request: ReturnType<Cluster['request']>): boolean => {
    const replicasByAnswer = new Map<string, Set<number>>();
    cluster.replicas.forEach((_, id) => {
      for (const { reply } of cluster.replies[id]!) {
        if (reply.t !== request.body.t || toHex(reply.client) !== toHex(request.body.client)) continue;
        const answer = `${reply.seq}:${toHex(reply.result)}`;
        replicasByAnswer.set(answer, (replicasByAnswer.get(answer) ?? new Set()).add(id));
      }
    });
    return [...replicasByAnswer.values()].some((replicas) => replicas.size >= f + 1);
  };

  for (let step = 0; step < steps; step++) {
    const roll = random();
    if (roll < 0.08) {
      // A client with nothing outstanding sends a new request (to the primary it believes in, or all).
      const client = pick(cluster.clients.length);
      if (!outstanding.has(client)) {
        const request = cluster.request(client, { amount: 1 + pick(5) });
        outstanding.set(client, request);
        issued.push({ client, t: request.body.t });
        cluster.submit(request, random() < 0.5 ? 'all' : pick(n));
      }
    } else if (roll < 0.12) {
      // A client retransmits its outstanding request to everyone.
      const request = [...outstanding.values()][pick(outstanding.size)];
      if (request !== undefined) cluster.submit(request, 'all');
    } else if (roll < 0.2) {
      const id = pick(n);
      if (!cluster.crashed.has(id)) cluster.tick(id);
    } else if (roll < 0.23 && cluster.queue.length > 0) {
      cluster.queue.splice(pick(cluster.queue.length), 1); // loss
    } else if (roll < 0.25 && cluster.queue.length > 0) {
      cluster.queue.push(cluster.queue[pick(cluster.queue.length)]!); // duplication
    } else if (roll < 0.26) {
      const id = pick(n);
      if (cluster.crashed.has(id)) cluster.restart(id);
      else if (cluster.crashed.size < f) cluster.crash(id);
    } else if (cluster.queue.length > 0) {
      // Deliver a random queued message: arbitrary reordering.
      const [envelope] = cluster.queue.splice(pick(cluster.queue.length), 1);
      if (!cluster.crashed.has(envelope!.to)) {
        cluster.delivered.push(envelope!);
        cluster.step(envelope!.to, envelope!.message);
      }
    }
    if (cluster.crashed.size > 0 && random() < 0.01) {
      const [id] = cluster.crashed;
      cluster.restart(id!);
    }
    checkSafety();
    for (const [client, request] of outstanding) {
      if (acceptedByClient(request)) outstanding.delete(client);
    }
  }

  // Heal: restart everyone, stop losing messages, and let time pass.
  for (const id of [...cluster.crashed]) cluster.restart(id);
  for (let round = 0; round < 400 && outstanding.size > 0; round++) {
    for (const request of outstanding.values()) cluster.submit(request, 'all');
    cluster.deliverAll();
    cluster.tickAll(1);
    cluster.deliverAll();
    checkSafety();
    for (const [client, request] of outstanding) {
      if (acceptedByClient(request)) outstanding.delete(client);
    }
  }
  checkSafety();

  // Replicas at the same point of execution hold the same state.
  const byExecuted = new Map<number, string>();
  cluster.replicas.forEach((replica, id) => {
    const state = toHex(cluster.ledgers[id]!.snapshot());
    const previous = byExecuted.get(replica.lastExecutedSeq);
    if (previous === undefined) byExecuted.set(replica.lastExecutedSeq, state);
    else expect(state, `seed ${seed}: state of replica ${id}`).toBe(previous);
    expect(cluster.ledgers[id]!.totalSupply()).toBe(cluster.clients.length * 1_000);
  });
  return {
    executedSeq: Math.max(...cluster.replicas.map((replica) => replica.lastExecutedSeq)),
    views: cluster.replicas.map((replica) => replica.currentView),
    completed: issued.length - outstanding.size,
    issued: issued.length,
  };
}

describe('random schedules', () => {
  it('no two replicas execute different batches at one sequence number, under any delivery order, loss, timeouts and crashes (n = 4)', () => {
    let progress = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const outcome = runSchedule(seed, 4, 600);
      progress += outcome.executedSeq;
      // Liveness once healed: every request issued completes with f+1 replies.
      expect(outcome.completed, `seed ${seed}: ${JSON.stringify(outcome)}`).toBe(outcome.issued);
    }
    expect(progress).toBeGreaterThan(0);
  });

  it('no two replicas execute different batches at one sequence number, under any delivery order, loss, timeouts and crashes (n = 7)', () => {
    for (let seed = 101; seed <= 103; seed++) {
      const outcome = runSchedule(seed, 7, 600);
      expect(outcome.completed, `seed ${seed}: ${JSON.stringify(outcome)}`).toBe(outcome.issued);
    }
  });
});
