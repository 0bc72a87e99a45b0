/**
 * PbftClient: submit signed transfers and read balances from a pbft cluster.
 *
 * A transfer is sent to the primary; it resolves once f+1 replicas (at least one correct) return the
 * same result for it. On timeout it is retransmitted to every replica with the same t, so it can
 * never execute twice. The request counter t is reserved on disk in blocks before use, so a new
 * client process never reuses a t. A balance query asks every replica and needs 2f+1 matching
 * answers from replicas that have executed this client's last committed operation; when they differ
 * (a transfer in flight, a lagging replica, a liar) it falls back to an ordered request.
 *
 * A client talks through a ClusterConnection: its own by default, or one shared with the clients of
 * other accounts (`PbftClient.connect({ connection, key, counterFile })`).
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KeyPair } from '../crypto/keys.ts';
import type { Signer } from '../crypto/types.ts';
import { decodeResult, encodeOperation, type OperationResult } from '../ledger/operations.ts';
import type { ClusterConfig } from '../node/cluster-config.ts';
import { encodeClientFrame, type RequestErrorReason, vouchedFloor } from '../protocol/client-protocol.ts';
import { type RequestBody, signBody } from '../protocol/messages.ts';
import { fromHex, toHex } from '../util/bytes.ts';
import {
  ClusterConnection,
  CONNECT_TIMEOUT_MS,
  type Decide,
  queryRoute,
  requestRoute,
} from './cluster-connection.ts';
import { PbftClientError, RequestRefusedError, TransferRejectedError } from './errors.ts';

export {
  ClusterConnection,
  type ClusterConnectionOptions,
  CONNECT_TIMEOUT_MS,
  REQUEST_RETRY_MAX_MS,
  REQUEST_RETRY_MS,
} from './cluster-connection.ts';
export {
  PbftClientError,
  type PbftClientErrorCode,
  RequestRefusedError,
  TransferRejectedError,
} from './errors.ts';

/**
 * Where a replica serves its metrics: the URL `ReplicaMetrics.serve` listens at (node/metrics.ts
 * `metricsUrl`, which test/unit/cli compares this with). Not imported from there: that module would
 * add prom-client, node:http (and with it undici) and the replica core to every client's start-up.
 */
function metricsUrl(port: number): string {
  return `http://127.0.0.1:${port}/metrics`;
}

/** A transfer or query fails with TIMEOUT after this long by default. */
export const OPERATION_TIMEOUT_MS = 30_000;
/** Request numbers reserved on disk at a time. */
export const COUNTER_RESERVATION_BLOCK = 64;
/**
 * Times one operation moves its request number past a floor the cluster reports (a new account's
 * floor is derived from the sequence number that created it; a lost counter file restarts below the last t).
 */
const STALE_SKIPS_MAX = 3;

export interface TransferReceipt {
  status: 'ok';
  /** The sender's balance after the transfer. */
  balance: number;
  t: number;
  seq: number;
  view: number;
}

export interface BalanceAnswer {
  address: string;
  balance: number;
  exists: boolean;
  /** 'query' when 2f+1 replicas agreed on a read; 'ordered' when it went through consensus. */
  via: 'query' | 'ordered';
}

export interface ReplicaStatusReport {
  id: number;
  reachable: boolean;
  /** Where the replica serves Prometheus metrics (from cluster.json), if it does. */
  metricsUrl?: string;
  /** How many sequence numbers it has executed fewer than the most advanced reachable replica. */
  lag?: number;
  view?: number;
  primary?: number;
  viewChangeInProgress?: boolean;
  lastExecuted?: number;
  stableCheckpoint?: number;
  peersConnected?: number;
}

export interface PbftClientOptions {
  /** cluster.json or its path: the client opens a connection of its own and closes it on close(). */
  cluster?: ClusterConfig | string;
  /** Or a connection shared with other clients: close() leaves it open for them. */
  connection?: ClusterConnection;
  /** The account that signs transfers (the sender). Needed for transfers and ordered reads. */
  key?: KeyPair;
  /** File that keeps the request counter across client processes (required with `key`). */
  counterFile?: string;
  timeoutMs?: number;
}

/** The request counter t, reserved on disk in blocks so that no process ever reuses a value. */
class RequestCounter {
  private next = 1;
  private reservedUpTo = 0;
  /** null: an in-memory counter, for a fresh key that has never been used before. */
  private readonly path: string | null;

  constructor(path: string | null) {
    this.path = path;
  }

  async load(): Promise<void> {
    if (this.path === null) return;
    let text: string | null = null;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (text !== null) {
      if (!/^\d+\n?$/.test(text))
        throw new PbftClientError('CLOSED', `${this.path}: not a request counter file`);
      // Everything up to the last reservation may have been used by an earlier process.
      this.next = Number(text.trim()) + 1;
      this.reservedUpTo = this.next - 1;
    }
  }

  async take(): Promise<number> {
    if (this.path !== null && this.next > this.reservedUpTo) {
      this.reservedUpTo = this.next + COUNTER_RESERVATION_BLOCK - 1;
      await writeFileDurably(this.path, `${this.reservedUpTo}\n`);
    }
    return this.next++;
  }

  /** Never hand out `floor` or anything below it again (reserved on disk by the next take). */
  skipPast(floor: number): void {
    if (this.next <= floor) this.next = floor + 1;
  }
}

async function writeFileDurably(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

export class PbftClient {
  readonly connection: ClusterConnection;
  private account: { signer: Signer; publicKey: Uint8Array; counter: RequestCounter } | null;
  private readonly timeoutMs: number;
  /** Whether close() closes the connection (it was opened for this client alone). */
  private readonly ownsConnection: boolean;
  private closed = false;
  /** The highest sequence number at which an operation of this client committed (read-your-writes). */
  private seenSeq = 0;

  private constructor(connection: ClusterConnection, ownsConnection: boolean, options: PbftClientOptions) {
    this.connection = connection;
    this.ownsConnection = ownsConnection;
    if (options.key !== undefined) {
      if (options.counterFile === undefined) throw new TypeError('a client with a key needs a counterFile');
      this.account = {
        signer: options.key.signer(),
        publicKey: options.key.publicKey,
        counter: new RequestCounter(options.counterFile),
      };
    } else {
      this.account = null;
    }
    this.timeoutMs = options.timeoutMs ?? OPERATION_TIMEOUT_MS;
  }

  /**
   * Load the request counter and connect to every reachable replica, or use `options.connection`.
   * Exactly one of `cluster` and `connection` is given.
   */
  static async connect(options: PbftClientOptions): Promise<PbftClient> {
    if ((options.cluster === undefined) === (options.connection === undefined))
      throw new TypeError('PbftClient.connect needs either a cluster or a connection');
    const owned = options.connection === undefined;
    const connection = options.connection ?? (await ClusterConnection.open({ cluster: options.cluster! }));
    const client = new PbftClient(connection, owned, options);
    try {
      await client.account?.counter.load();
    } catch (error) {
      await client.close();
      throw error;
    }
    return client;
  }

  get cluster(): ClusterConfig {
    return this.connection.cluster;
  }

  get f(): number {
    return this.connection.f;
  }

  private collect<T>(
    route: string,
    what: string,
    timeoutMs: number,
    decide: Decide<T>,
    resend: (attempt: number) => void,
    firstRetryMs?: number,
    resendOnNewPrimary?: boolean,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new PbftClientError('CLOSED', 'the client is closed'));
    return this.connection.collect(route, what, timeoutMs, decide, resend, firstRetryMs, resendOnNewPrimary);
  }

  /**
   * Order an operation through PBFT; resolves with the result f+1 replicas agree on. A request
   * refused as stale with a floor above its t (a correct replica vouches that some request numbered
   * above t is spent, so this process, which sends one request at a time, never had t executed) is
   * signed again above that floor: that is how a new account, whose floor is derived from the sequence number
   * that created it, sends its first request, and how a client whose counter file was lost goes on.
   * A floor equal to t means t executed and its reply is no longer cached: that is final.
   */
  private async ordered(
    op: Uint8Array,
    what: string,
  ): Promise<{ result: OperationResult; t: number; seq: number; view: number }> {
    // Without an account (e.g. a keyless balance read) a fresh key signs: it has no t to reuse.
    if (this.account === null) {
      const signer = KeyPair.generate().signer();
      this.account = { signer, publicKey: signer.publicKey, counter: new RequestCounter(null) };
    }
    const account = this.account;
    for (let skips = 0; ; skips++) {
      try {
        return await this.orderedOnce(account, op, what);
      } catch (error) {
        const skippable =
          error instanceof RequestRefusedError &&
          error.reason === 'stale-request' &&
          error.floor > error.t &&
          skips < STALE_SKIPS_MAX;
        if (!skippable) throw error;
        account.counter.skipPast(error.floor);
      }
    }
  }

  private async orderedOnce(
    account: NonNullable<PbftClient['account']>,
    op: Uint8Array,
    what: string,
  ): Promise<{ result: OperationResult; t: number; seq: number; view: number }> {
    const t = await account.counter.take();
    const request = signBody<RequestBody>({ type: 'request', client: account.publicKey, t, op }, (bytes) =>
      account.signer.sign(bytes),
    );
    const frame = encodeClientFrame({ type: 'request', request });
    const accountHex = toHex(account.publicKey);
    // Frames on this route answer (client, t): the connection matched both before they get here.
    // Correct replicas agree on the sequence number and the result; they may reply from different
    // views (around a view change), so the view is not part of the vote.
    const votes = new Map<number, { key: string; view: number }>();
    const replyOf = new Map<string, { seq: number; result: Uint8Array }>();
    const refusals = new Map<number, { reason: RequestErrorReason; floor: number }>();
    let busyBackedOff = false;
    const sentMs = performance.now();
    const firstRetryMs = this.connection.requestRetryMs;
    let retransmitted = false;
    let sentToPrimaries = 0;
    const agreed = await this.collect(
      requestRoute(account.publicKey, t),
      what,
      this.timeoutMs,
      (replica, message) => {
        if (message.type === 'request-error') {
          if (message.reason === 'busy') {
            // Admission control: the replica kept nothing. Not an answer, a reason to retry later
            // rather than sooner: the retransmission timeout backs off (once per request).
            if (!busyBackedOff) this.connection.backOffRequestRetry(firstRetryMs);
            busyBackedOff = true;
            return undefined;
          }
          // One replica could lie; f+1 saying the same thing include a correct one.
          refusals.set(replica, { reason: message.reason, floor: message.lastExecutedT });
          const same = [...refusals.values()].filter((refusal) => refusal.reason === message.reason);
          if (same.length < this.f + 1) return undefined;
          const floor = vouchedFloor(
            same.map((refusal) => refusal.floor),
            this.f,
          );
          throw new RequestRefusedError(message.reason, t, floor);
        }
        if (message.type !== 'reply') return undefined;
        const key = `${message.reply.seq}:${toHex(message.reply.result)}`;
        votes.set(replica, { key, view: message.reply.view });
        replyOf.set(key, message.reply);
        const matching = [...votes.values()].filter((vote) => vote.key === key);
        if (matching.length < this.f + 1) return undefined;
        // The lowest view among f+1 matching replies is one a correct replica has reached: a liar
        // cannot send later requests to a primary of its choosing by claiming a far-off view.
        const view = Math.min(...matching.map((vote) => vote.view));
        return { ...replyOf.get(key)!, view };
      },
      (attempt) => {
        // First to the primary (again to a new one if the view moves on before any retry); on
        // every retry to all replicas (backups forward and start timers).
        if (attempt === 0) {
          sentToPrimaries++;
          this.connection.sendRequest(accountHex, frame);
        } else {
          if (!retransmitted) this.connection.backOffRequestRetry(firstRetryMs);
          retransmitted = true;
          this.connection.broadcast(frame);
        }
      },
      firstRetryMs,
      true,
    );
    this.connection.noteView(agreed.view);
    // Karn's rule: only a request sent once tells how long an answer takes.
    if (!retransmitted && sentToPrimaries === 1)
      this.connection.observeRequestLatency(performance.now() - sentMs);
    return { result: decodeResult(agreed.result), t, seq: agreed.seq, view: agreed.view };
  }

  /** Transfer `amount` from this client's account to `to` (64 lowercase hex characters). */
  async transfer(to: string, amount: number): Promise<TransferReceipt> {
    const op = encodeOperation({ type: 'transfer', to: fromHex(to), amount });
    const { result, t, seq, view } = await this.ordered(op, 'transfer');
    this.noteSeen(seq);
    if (result.status === 'rejected') throw new TransferRejectedError(result.reason, result.message, seq);
    if (result.type !== 'transfer')
      throw new PbftClientError('REJECTED', `unexpected ${result.type} result for a transfer`);
    return { status: 'ok', balance: result.balance, t, seq, view };
  }

  /**
   * The balance of `address` that 2f+1 replicas agree on, each of them at or past the last write this
   * client saw commit (read-your-writes); failing that, an ordered read. With `linearizable`, always
   * the ordered read: it takes its place in the one order of all operations, so it sees every
   * transfer that committed before it was sent, whoever sent it (a query answers from replicas that
   * may not have executed a transfer another client just saw commit).
   */
  async balance(address: string, options: { linearizable?: boolean } = {}): Promise<BalanceAnswer> {
    const op = encodeOperation({ type: 'balance', address: fromHex(address) });
    if (options.linearizable === true) return this.orderedBalance(op, address);
    const quorum = 2 * this.f + 1;
    const replicas = this.cluster.replicas.length;
    const seen = this.seenSeq;
    const id = this.connection.newQueryId();
    const frame = encodeClientFrame({ type: 'query', id, op });
    // Per replica: its answer, or null when it answered from before this client's last write.
    const votes = new Map<number, string | null>();
    let answer: Uint8Array | null = null;
    try {
      answer = await this.collect(
        queryRoute(id),
        'balance query',
        CONNECT_TIMEOUT_MS,
        (replica, message) => {
          if (message.type !== 'query-result' || message.id !== id) return undefined;
          // A liar may claim any lastExecuted; 2f+1 matching answers still include f+1 correct
          // replicas, and those claim only what they have executed.
          const key = message.lastExecuted >= seen ? toHex(message.result) : null;
          votes.set(replica, key);
          const tally = new Map<string, number>();
          for (const vote of votes.values()) if (vote !== null) tally.set(vote, (tally.get(vote) ?? 0) + 1);
          if (key !== null && tally.get(key)! >= quorum) return message.result;
          // No answer can reach 2f+1 any more: order the read now rather than wait out the timeout.
          if (Math.max(0, ...tally.values()) + replicas - votes.size < quorum)
            throw new PbftClientError('REJECTED', 'balance query: the answers cannot agree');
          return undefined;
        },
        () => this.connection.broadcast(frame),
      );
    } catch {
      answer = null; // answers differ, are stale, or too few replicas answered: order the read instead
    }
    if (answer !== null) return balanceAnswer(decodeResult(answer), address, 'query');
    return this.orderedBalance(op, address);
  }

  private async orderedBalance(op: Uint8Array, address: string): Promise<BalanceAnswer> {
    const { result, seq } = await this.ordered(op, 'balance');
    this.noteSeen(seq);
    return balanceAnswer(result, address, 'ordered');
  }

  /** An operation of this client's committed at `seq`: later reads must not answer from before it. */
  private noteSeen(seq: number): void {
    if (seq > this.seenSeq) this.seenSeq = seq;
  }

  /**
   * Each replica's own answer for the balance of `address`, unvoted: for audits that compare
   * replicas (a chaos run checks that every correct replica holds the same balances). A faulty
   * replica can answer anything here; use `balance` for an answer you can trust.
   */
  async balanceByReplica(
    address: string,
    timeoutMs = CONNECT_TIMEOUT_MS,
  ): Promise<Map<number, BalanceAnswer>> {
    await this.connection.connectAll();
    const op = encodeOperation({ type: 'balance', address: fromHex(address) });
    const id = this.connection.newQueryId();
    const frame = encodeClientFrame({ type: 'query', id, op });
    const answers = new Map<number, BalanceAnswer>();
    await this.collect(
      queryRoute(id),
      'per-replica balance query',
      timeoutMs,
      (replica, message) => {
        if (message.type !== 'query-result' || message.id !== id) return undefined;
        try {
          answers.set(replica, balanceAnswer(decodeResult(message.result), address, 'query'));
        } catch {
          return undefined; // an undecodable or failed answer counts as no answer
        }
        return answers.size === this.connection.replicasConnected ? true : undefined;
      },
      () => this.connection.broadcast(frame),
    ).catch(() => undefined);
    return answers;
  }

  /** Ask every replica for its status; unreachable replicas are reported as such. */
  async status(timeoutMs = CONNECT_TIMEOUT_MS): Promise<ReplicaStatusReport[]> {
    await this.connection.connectAll();
    const id = this.connection.newQueryId();
    const reports = new Map<number, ReplicaStatusReport>();
    const frame = encodeClientFrame({ type: 'status', id });
    await this.collect(
      queryRoute(id),
      'status',
      timeoutMs,
      (replica, message) => {
        if (message.type !== 'status-result' || message.id !== id) return undefined;
        const { type: _type, id: _id, replica: _replica, ...fields } = message;
        reports.set(replica, { id: replica, reachable: true, ...fields });
        return reports.size === this.connection.replicasConnected ? true : undefined;
      },
      () => this.connection.broadcast(frame),
    ).catch(() => undefined);
    const best = Math.max(0, ...[...reports.values()].map((report) => report.lastExecuted ?? 0));
    return this.cluster.replicas.map((replica) => {
      const report = reports.get(replica.id);
      const metrics = replica.metricsPort === 0 ? {} : { metricsUrl: metricsUrl(replica.metricsPort) };
      if (report === undefined) return { id: replica.id, reachable: false, ...metrics };
      return { ...report, lag: best - (report.lastExecuted ?? 0), ...metrics };
    });
  }

  /** Close this client; its connection too, unless it was shared (`options.connection`). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsConnection) await this.connection.close();
  }
}

function balanceAnswer(result: OperationResult, address: string, via: 'query' | 'ordered'): BalanceAnswer {
  if (result.status !== 'ok' || result.type !== 'balance') {
    throw new PbftClientError(
      'REJECTED',
      `balance query failed: ${result.status === 'rejected' ? result.message : result.type}`,
    );
  }
  return { address, balance: result.balance, exists: result.exists, via };
}
