/**
 * PbftClient: submit signed transfers and read balances from a pbft cluster.
 *
 * A transfer is sent to the primary; it resolves once f+1 replicas (at least one correct) return the
 * same result for it. On timeout it is retransmitted to every replica with the same t, so it can
 * never execute twice. The request counter t is reserved on disk in blocks before use, so a new
 * client process never reuses a t. A balance query asks every replica and needs 2f+1 matching
 * answers; when they differ (a transfer in flight) it falls back to an ordered request.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KeyPair } from '../crypto/keys.ts';
import type { Signer } from '../crypto/types.ts';
import {
  decodeResult,
  encodeOperation,
  type OperationResult,
  type RejectionReason,
} from '../ledger/index.ts';
import { type ClusterConfig, readClusterConfig } from '../node/cluster-config.ts';
import { metricsUrl } from '../node/metrics.ts';
import {
  CLIENT_FRAME_SIZE_MAX_BYTES,
  decodeReplicaToClient,
  encodeClientFrame,
  type ReplicaToClient,
  type RequestErrorReason,
} from '../protocol/client-protocol.ts';
import { primaryOf } from '../protocol/config.ts';
import { type RequestBody, signBody } from '../protocol/messages.ts';
import { type ClientConnection, type ClientTransport, createClientTransport } from '../transport/index.ts';
import { fromHex, toHex } from '../util/bytes.ts';

/** First retransmission after this long without f+1 matching replies; doubles up to the max. */
export const REQUEST_RETRY_MS = 1_000;
export const REQUEST_RETRY_MAX_MS = 8_000;
/** A transfer or query fails with TIMEOUT after this long by default. */
export const OPERATION_TIMEOUT_MS = 30_000;
/** Connecting to one replica gives up after this long. */
export const CONNECT_TIMEOUT_MS = 3_000;
/** Request numbers reserved on disk at a time. */
export const COUNTER_RESERVATION_BLOCK = 64;

export type PbftClientErrorCode = 'TIMEOUT' | 'REJECTED' | 'UNREACHABLE' | 'CLOSED';

export class PbftClientError extends Error {
  override name = 'PbftClientError';
  readonly code: PbftClientErrorCode;
  constructor(code: PbftClientErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** The cluster ordered the transfer and rejected it (insufficient funds, unknown sender, …). */
export class TransferRejectedError extends PbftClientError {
  override name = 'TransferRejectedError';
  readonly reason: RejectionReason;
  /** The ledger's own explanation, e.g. "balance 12 is less than the amount 50". */
  readonly detail: string;
  readonly seq: number;
  constructor(reason: RejectionReason, detail: string, seq: number) {
    super('REJECTED', `transfer rejected (${reason}): ${detail}`);
    this.reason = reason;
    this.detail = detail;
    this.seq = seq;
  }
}

const REFUSAL_MESSAGES: Record<RequestErrorReason, string> = {
  'bad-signature': "the request signature does not verify (is the key file the sender's?)",
  'stale-request': 'its request number was already used (was the .counter file next to the key file lost?)',
  'client-table-full': 'the cluster serves no new clients: its reply cache is full',
};

/** f+1 replicas refused to order the request (it never executed). */
export class RequestRefusedError extends PbftClientError {
  override name = 'RequestRefusedError';
  readonly reason: RequestErrorReason;
  constructor(reason: RequestErrorReason, t: number) {
    super('REJECTED', `request ${t} refused: ${REFUSAL_MESSAGES[reason]}`);
    this.reason = reason;
  }
}

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
  /** cluster.json or its path. */
  cluster: ClusterConfig | string;
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

interface Waiter {
  onFrame(replica: number, frame: ReplicaToClient): void;
}

export class PbftClient {
  readonly cluster: ClusterConfig;
  private account: { signer: Signer; publicKey: Uint8Array; counter: RequestCounter } | null;
  private readonly timeoutMs: number;
  private readonly transport: ClientTransport;
  private readonly connections = new Map<number, ClientConnection>();
  private readonly waiters = new Set<Waiter>();
  private believedView = 0;
  private nextQueryId = 1;
  private closed = false;

  private constructor(cluster: ClusterConfig, options: PbftClientOptions, transport: ClientTransport) {
    this.cluster = cluster;
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
    this.transport = transport;
  }

  /** Load the cluster description and the request counter, and connect to every reachable replica. */
  static async connect(options: PbftClientOptions): Promise<PbftClient> {
    const cluster =
      typeof options.cluster === 'object' ? options.cluster : await readClusterConfig(options.cluster);
    const transport = await createClientTransport({
      seed: randomBytes(32),
      frameSizeMaxBytes: CLIENT_FRAME_SIZE_MAX_BYTES,
    });
    await transport.start();
    const client = new PbftClient(cluster, options, transport);
    await client.account?.counter.load();
    await client.connectAll();
    if (client.connections.size === 0) {
      await client.close();
      throw new PbftClientError(
        'UNREACHABLE',
        `no replica of ${cluster.path} is reachable (is the testnet running?)`,
      );
    }
    return client;
  }

  get f(): number {
    return this.cluster.f;
  }

  private async connectAll(): Promise<void> {
    await Promise.all(this.cluster.replicas.map((replica) => this.connectTo(replica.id)));
  }

  private async connectTo(id: number): Promise<ClientConnection | undefined> {
    const existing = this.connections.get(id);
    if (existing !== undefined && !existing.closed) return existing;
    const replica = this.cluster.replicas[id]!;
    try {
      const connection = await this.transport.connect(replica, {
        signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
      });
      connection.onFrame((frame) => this.onFrame(id, frame));
      this.connections.set(id, connection);
      return connection;
    } catch {
      this.connections.delete(id);
      return undefined;
    }
  }

  private onFrame(replica: number, bytes: Uint8Array): void {
    let frame: ReplicaToClient;
    try {
      frame = decodeReplicaToClient(bytes);
    } catch {
      return; // a replica sending garbage is faulty; its vote simply does not count
    }
    // The connection authenticates the replica: a frame only speaks for the replica it came from.
    const claimed = frame.type === 'reply' ? frame.reply.replica : frame.replica;
    if (claimed !== replica) return;
    for (const waiter of [...this.waiters]) waiter.onFrame(replica, frame);
  }

  private sendTo(replica: number, frame: Uint8Array): void {
    const connection = this.connections.get(replica);
    if (connection === undefined || connection.closed) {
      void this.connectTo(replica).then((reconnected) => reconnected?.send(frame));
      return;
    }
    connection.send(frame);
  }

  private broadcast(frame: Uint8Array): void {
    for (const replica of this.cluster.replicas) this.sendTo(replica.id, frame);
  }

  /**
   * Wait until `decide` returns a value, resending with `resend(attempt)` on each retry interval,
   * or fail with TIMEOUT.
   */
  private collect<T>(
    what: string,
    timeoutMs: number,
    decide: (replica: number, frame: ReplicaToClient) => T | undefined,
    resend: (attempt: number) => void,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new PbftClientError('CLOSED', 'the client is closed'));
    return new Promise<T>((resolve, reject) => {
      let retryMs = REQUEST_RETRY_MS;
      let attempt = 0;
      let retryTimer: NodeJS.Timeout;
      const finish = (): void => {
        clearTimeout(retryTimer);
        clearTimeout(deadline);
        this.waiters.delete(waiter);
      };
      const waiter: Waiter = {
        onFrame: (replica, frame) => {
          let value: T | undefined;
          try {
            value = decide(replica, frame);
          } catch (error) {
            finish();
            reject(error);
            return;
          }
          if (value === undefined) return;
          finish();
          resolve(value);
        },
      };
      const retry = (): void => {
        attempt++;
        resend(attempt);
        retryTimer = setTimeout(retry, retryMs);
        retryMs = Math.min(retryMs * 2, REQUEST_RETRY_MAX_MS);
      };
      const deadline = setTimeout(() => {
        finish();
        reject(new PbftClientError('TIMEOUT', `${what}: not enough matching replies within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(waiter);
      resend(0);
      retryTimer = setTimeout(retry, retryMs);
    });
  }

  /** Order an operation through PBFT; resolves with the result f+1 replicas agree on. */
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
    const t = await account.counter.take();
    const request = signBody<RequestBody>({ type: 'request', client: account.publicKey, t, op }, (bytes) =>
      account.signer.sign(bytes),
    );
    const frame = encodeClientFrame({ type: 'request', request });
    const votes = new Map<number, string>();
    const replyOf = new Map<string, { seq: number; view: number; result: Uint8Array }>();
    const refusals = new Map<number, RequestErrorReason>();
    const agreed = await this.collect(
      what,
      this.timeoutMs,
      (replica, message) => {
        if (
          message.type === 'request-error' &&
          message.t === t &&
          toHex(message.client) === toHex(account.publicKey)
        ) {
          // One replica could lie; f+1 saying the same thing include a correct one.
          refusals.set(replica, message.reason);
          const same = [...refusals.values()].filter((reason) => reason === message.reason).length;
          if (same >= this.f + 1) throw new RequestRefusedError(message.reason, t);
          return undefined;
        }
        if (
          message.type !== 'reply' ||
          message.reply.t !== t ||
          toHex(message.reply.client) !== toHex(account.publicKey)
        ) {
          return undefined;
        }
        const key = toHex(message.reply.result);
        votes.set(replica, key);
        replyOf.set(key, message.reply);
        this.believedView = Math.max(this.believedView, message.reply.view);
        const matching = [...votes.values()].filter((vote) => vote === key).length;
        return matching >= this.f + 1 ? replyOf.get(key) : undefined;
      },
      (attempt) => {
        // First to the primary; on every retry to all replicas (backups forward and start timers).
        if (attempt === 0) this.sendTo(primaryOf(this.believedView, this.cluster.replicas.length), frame);
        else this.broadcast(frame);
      },
    );
    return { result: decodeResult(agreed.result), t, seq: agreed.seq, view: agreed.view };
  }

  /** Transfer `amount` from this client's account to `to` (64 lowercase hex characters). */
  async transfer(to: string, amount: number): Promise<TransferReceipt> {
    const op = encodeOperation({ type: 'transfer', to: fromHex(to), amount });
    const { result, t, seq, view } = await this.ordered(op, 'transfer');
    if (result.status === 'rejected') throw new TransferRejectedError(result.reason, result.message, seq);
    if (result.type !== 'transfer')
      throw new PbftClientError('REJECTED', `unexpected ${result.type} result for a transfer`);
    return { status: 'ok', balance: result.balance, t, seq, view };
  }

  /** The balance of `address` that 2f+1 replicas agree on (or, failing that, an ordered read). */
  async balance(address: string): Promise<BalanceAnswer> {
    const op = encodeOperation({ type: 'balance', address: fromHex(address) });
    const quorum = 2 * this.f + 1;
    const id = this.nextQueryId++;
    const frame = encodeClientFrame({ type: 'query', id, op });
    const votes = new Map<number, string>();
    let answer: Uint8Array | null = null;
    try {
      answer = await this.collect(
        'balance query',
        CONNECT_TIMEOUT_MS,
        (replica, message) => {
          if (message.type !== 'query-result' || message.id !== id) return undefined;
          const key = toHex(message.result);
          votes.set(replica, key);
          const matching = [...votes.values()].filter((vote) => vote === key).length;
          return matching >= quorum ? message.result : undefined;
        },
        () => this.broadcast(frame),
      );
    } catch {
      answer = null; // replies differ or too few replicas answered: order the read instead
    }
    if (answer !== null) return balanceAnswer(decodeResult(answer), address, 'query');
    const { result } = await this.ordered(op, 'balance');
    return balanceAnswer(result, address, 'ordered');
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
    await this.connectAll();
    const op = encodeOperation({ type: 'balance', address: fromHex(address) });
    const id = this.nextQueryId++;
    const frame = encodeClientFrame({ type: 'query', id, op });
    const answers = new Map<number, BalanceAnswer>();
    await this.collect(
      'per-replica balance query',
      timeoutMs,
      (replica, message) => {
        if (message.type !== 'query-result' || message.id !== id) return undefined;
        try {
          answers.set(replica, balanceAnswer(decodeResult(message.result), address, 'query'));
        } catch {
          return undefined; // an undecodable or failed answer counts as no answer
        }
        return answers.size === this.connections.size ? true : undefined;
      },
      () => this.broadcast(frame),
    ).catch(() => undefined);
    return answers;
  }

  /** Ask every replica for its status; unreachable replicas are reported as such. */
  async status(timeoutMs = CONNECT_TIMEOUT_MS): Promise<ReplicaStatusReport[]> {
    await this.connectAll();
    const id = this.nextQueryId++;
    const reports = new Map<number, ReplicaStatusReport>();
    const frame = encodeClientFrame({ type: 'status', id });
    await this.collect(
      'status',
      timeoutMs,
      (replica, message) => {
        if (message.type !== 'status-result' || message.id !== id) return undefined;
        const { type: _type, id: _id, replica: _replica, ...fields } = message;
        reports.set(replica, { id: replica, reachable: true, ...fields });
        return reports.size === this.connections.size ? true : undefined;
      },
      () => this.broadcast(frame),
    ).catch(() => undefined);
    const best = Math.max(0, ...[...reports.values()].map((report) => report.lastExecuted ?? 0));
    return this.cluster.replicas.map((replica) => {
      const report = reports.get(replica.id);
      const metrics = replica.metricsPort === 0 ? {} : { metricsUrl: metricsUrl(replica.metricsPort) };
      if (report === undefined) return { id: replica.id, reachable: false, ...metrics };
      return { ...report, lag: best - (report.lastExecuted ?? 0), ...metrics };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const connection of this.connections.values()) connection.close();
    await this.transport.stop();
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
