/**
 * ClusterConnection: one libp2p node with one stream to each replica, shared by any number of
 * PbftClients (one per account). A program that acts for many accounts (a wallet service, a
 * gateway, the benchmark's load) opens one connection and sends every account's requests through
 * it: one Noise session and one stream per replica serve them all, and a replica's replies to the
 * requests of one batch leave in one write instead of one per account.
 *
 * Frames from replicas are routed to the call that waits for them, by (client, t) for requests and
 * by id for queries, so a frame costs the same however many calls are in flight.
 */
import { randomBytes } from 'node:crypto';
import { type ClusterConfig, readClusterConfig } from '../node/cluster-config.ts';
import {
  CLIENT_FRAME_SIZE_MAX_BYTES,
  decodeReplicaToClient,
  type ReplicaToClient,
} from '../protocol/client-protocol.ts';
import { primaryOf } from '../protocol/config.ts';
import { type ClientConnection, type ClientTransport, createClientTransport } from '../transport/index.ts';
import { toHex } from '../util/bytes.ts';
import { PbftClientError } from './errors.ts';
import { RetransmitTimeout } from './retransmit-timeout.ts';

/**
 * First retransmission after this long without enough matching replies, or after what the latency
 * of recent requests suggests if that is longer (`RetransmitTimeout`); doubles up to the max.
 */
export const REQUEST_RETRY_MS = 1_000;
export const REQUEST_RETRY_MAX_MS = 8_000;
/**
 * Accounts remembered as presented to one replica (`sendRequest`); past this many the memory
 * starts over, which costs each account one more send there. Replicas remember 10,000 clients.
 */
const PRESENTED_ACCOUNTS_MAX = 10_000;
/** Connecting to one replica gives up after this long. */
export const CONNECT_TIMEOUT_MS = 3_000;

export interface ClusterConnectionOptions {
  /** cluster.json or its path. */
  cluster: ClusterConfig | string;
}

/** Decides, frame by frame, whether a call has what it waits for; throwing fails the call. */
export type Decide<T> = (replica: number, frame: ReplicaToClient) => T | undefined;

/** The route of the frames that answer request t of `client`. */
export function requestRoute(client: Uint8Array, t: number): string {
  return `${toHex(client)}:${t}`;
}

/** The route of the frames that answer query or status probe `id`. */
export function queryRoute(id: number): string {
  return `#${id}`;
}

function routeOf(frame: ReplicaToClient): string {
  switch (frame.type) {
    case 'reply':
      return requestRoute(frame.reply.client, frame.reply.t);
    case 'request-error':
      return requestRoute(frame.client, frame.t);
    case 'query-result':
    case 'status-result':
      return queryRoute(frame.id);
  }
}

interface Route {
  onFrame(replica: number, frame: ReplicaToClient): void;
  fail(error: PbftClientError): void;
  /** The believed view moved to a different primary. */
  onNewPrimary(): void;
}

export class ClusterConnection {
  readonly cluster: ClusterConfig;
  private readonly transport: ClientTransport;
  private readonly connections = new Map<number, ClientConnection>();
  private readonly routes = new Map<string, Route>();
  /**
   * Per replica, the accounts that have presented a request on its current stream. A replica
   * answers an account on the streams that presented its requests, so an account's first request
   * goes to every replica that has not seen it, not only the primary; otherwise only the primary
   * could answer it and it would wait for its retransmission timeout (a whole second for every
   * new client, and all of a freshly started load at once). Per replica, so that a replica that
   * reconnects gets each account's next request without every other replica getting it again.
   */
  private readonly presentedTo = new Map<number, Set<string>>();
  /** Per replica, the dial under way, shared by every send that finds no live stream. */
  private readonly dialling = new Map<number, Promise<ClientConnection | undefined>>();
  /** The highest view f+1 matching replies have shown: new requests go to its primary first. */
  private believedView = 0;
  private nextQueryId = 1;
  private closed = false;
  /** When ordered requests are first retransmitted, from their latency on this connection. */
  private readonly retransmit = new RetransmitTimeout(REQUEST_RETRY_MS, REQUEST_RETRY_MAX_MS);

  private constructor(cluster: ClusterConfig, transport: ClientTransport) {
    this.cluster = cluster;
    this.transport = transport;
  }

  /** Load the cluster description and connect to every reachable replica (at least one). */
  static async open(options: ClusterConnectionOptions): Promise<ClusterConnection> {
    const cluster =
      typeof options.cluster === 'object' ? options.cluster : await readClusterConfig(options.cluster);
    const transport = await createClientTransport({
      seed: randomBytes(32),
      frameSizeMaxBytes: CLIENT_FRAME_SIZE_MAX_BYTES,
    });
    await transport.start();
    const connection = new ClusterConnection(cluster, transport);
    await connection.connectAll();
    if (connection.connections.size === 0) {
      await connection.close();
      throw new PbftClientError(
        'UNREACHABLE',
        `no replica of ${cluster.path} is reachable (is the testnet running?)`,
      );
    }
    return connection;
  }

  get f(): number {
    return this.cluster.f;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** How many replicas this connection currently has a live stream to. */
  get replicasConnected(): number {
    let count = 0;
    for (const connection of this.connections.values()) if (!connection.closed) count++;
    return count;
  }

  /** How long an ordered request waits before its first retransmission. */
  get requestRetryMs(): number {
    return this.retransmit.currentMs;
  }

  /** An ordered request sent with `requestRetryMs` = `waitedMs` is being retransmitted. */
  backOffRequestRetry(waitedMs: number): void {
    this.retransmit.backOff(waitedMs);
  }

  /** The latency of an ordered request answered without being retransmitted. */
  observeRequestLatency(latencyMs: number): void {
    this.retransmit.observe(latencyMs);
  }

  /** A query id no other call on this connection uses. */
  newQueryId(): number {
    return this.nextQueryId++;
  }

  /** (Re)connect to every replica that has no live stream. */
  async connectAll(): Promise<void> {
    await Promise.all(this.cluster.replicas.map((replica) => this.connectTo(replica.id)));
  }

  /**
   * The live stream to replica `id`, opening one if there is none. Single-flight: every caller
   * while a dial is under way shares it. (Each caller dialling its own stream, as a burst of sends
   * to a restarted replica did, opened one stream per send; the replica takes a bounded number of
   * streams per connection, and the one kept here could be one it refused, which looked open and
   * answered nothing: a primary reached only through the backups' relays, ~20 transfers/s.)
   */
  private connectTo(id: number): Promise<ClientConnection | undefined> {
    const existing = this.connections.get(id);
    if (existing !== undefined && !existing.closed) return Promise.resolve(existing);
    const underway = this.dialling.get(id);
    if (underway !== undefined) return underway;
    const dial = this.dial(id).finally(() => this.dialling.delete(id));
    this.dialling.set(id, dial);
    return dial;
  }

  private async dial(id: number): Promise<ClientConnection | undefined> {
    const replica = this.cluster.replicas[id]!;
    try {
      const connection = await this.transport.connect(replica, {
        signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
      });
      connection.onFrame((frame) => this.onFrame(id, frame));
      const superseded = this.connections.get(id);
      this.connections.set(id, connection);
      if (superseded !== undefined && superseded !== connection) superseded.close();
      // A new stream is a new session at that replica: every account presents itself again.
      this.presentedTo.delete(id);
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
    this.routes.get(routeOf(frame))?.onFrame(replica, frame);
  }

  sendTo(replica: number, frame: Uint8Array): void {
    const connection = this.connections.get(replica);
    if (connection === undefined || connection.closed) {
      void this.connectTo(replica).then((reconnected) => reconnected?.send(frame));
      return;
    }
    connection.send(frame);
  }

  /** Raise the view new requests start in; only from replies f+1 replicas agree on. */
  noteView(view: number): void {
    if (view <= this.believedView) return;
    const replicas = this.cluster.replicas.length;
    const primaryBefore = primaryOf(this.believedView, replicas);
    this.believedView = view;
    if (primaryOf(view, replicas) === primaryBefore) return;
    for (const route of [...this.routes.values()]) route.onNewPrimary();
  }

  /**
   * The first send of an ordered request of `account` (hex): to the primary, and to every other
   * replica this account has not presented a request to on its current stream yet.
   */
  sendRequest(account: string, frame: Uint8Array): void {
    const primary = primaryOf(this.believedView, this.cluster.replicas.length);
    for (const replica of this.cluster.replicas) {
      let presented = this.presentedTo.get(replica.id);
      if (presented === undefined) {
        presented = new Set();
        this.presentedTo.set(replica.id, presented);
      }
      if (presented.has(account)) {
        if (replica.id === primary) this.sendTo(replica.id, frame);
        continue;
      }
      if (presented.size >= PRESENTED_ACCOUNTS_MAX) presented.clear();
      presented.add(account);
      this.sendTo(replica.id, frame);
    }
  }

  /** To the primary of the view of `noteView`. */
  sendToPrimary(frame: Uint8Array): void {
    this.sendTo(primaryOf(this.believedView, this.cluster.replicas.length), frame);
  }

  broadcast(frame: Uint8Array): void {
    for (const replica of this.cluster.replicas) this.sendTo(replica.id, frame);
  }

  /**
   * Wait until `decide` returns a value for a frame on `route`, resending with `resend(attempt)` on
   * each retry interval (the first after `firstRetryMs`, then doubling), or fail with TIMEOUT. One
   * call per route at a time.
   *
   * With `resendOnNewPrimary`, a call that has only made its first send (`resend(0)`, to the
   * primary) makes it again as soon as another call on this connection shows that the view moved
   * to another primary. A request sent to a primary that then crashed is otherwise lost until its
   * retransmission timeout, which under heavy load follows the long latencies and runs to seconds
   * after the cluster has already replaced the primary.
   */
  collect<T>(
    route: string,
    what: string,
    timeoutMs: number,
    decide: Decide<T>,
    resend: (attempt: number) => void,
    firstRetryMs: number = REQUEST_RETRY_MS,
    resendOnNewPrimary = false,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new PbftClientError('CLOSED', 'the client is closed'));
    if (this.routes.has(route)) {
      // Only two clients of one account with separate request counters on one connection do this.
      return Promise.reject(
        new PbftClientError('REJECTED', `${what}: request ${route} is already waiting on this connection`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      let retryMs = firstRetryMs;
      let attempt = 0;
      let retryTimer: NodeJS.Timeout;
      const finish = (): void => {
        clearTimeout(retryTimer);
        clearTimeout(deadline);
        this.routes.delete(route);
      };
      this.routes.set(route, {
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
        fail: (error) => {
          finish();
          reject(error);
        },
        onNewPrimary: () => {
          if (resendOnNewPrimary && attempt === 0) resend(0);
        },
      });
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
      resend(0);
      retryTimer = setTimeout(retry, retryMs);
    });
  }

  /** Close every stream and the libp2p node; calls still waiting fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const route of [...this.routes.values()])
      route.fail(new PbftClientError('CLOSED', 'the client was closed before enough replicas answered'));
    for (const connection of this.connections.values()) connection.close();
    await this.transport.stop();
  }
}
