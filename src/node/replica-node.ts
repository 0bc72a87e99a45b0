/**
 * The replica runtime: wires the pure core to the world. Frames arrive from the transport, are
 * decoded strictly and their signatures verified here at the edge (once, with a cache), then
 * stepped through the core. Each batch of steps is handled in the Ready order: persist everything
 * (one synced LevelDB batch), then send, then deliver replies. Ticks come from a monotonic clock.
 */

import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import {
  type ByzantineBehaviour,
  type ByzantineContext,
  type ByzantineStrategy,
  type ClientAnswer,
  createStrategy,
  type Payload,
} from '../byzantine/strategies.ts';
import { type CodecError, FRAME_SIZE_MAX_BYTES } from '../codec/cbor.ts';
import { BoundedCache } from '../crypto/bounded-cache.ts';
import { createVerifier, readKeyFile, sha256 } from '../crypto/index.ts';
import { type Genesis, Ledger, parseGenesis } from '../ledger/index.ts';
import { batchDigest } from '../protocol/certificates.ts';
import {
  CLIENT_FRAME_SIZE_MAX_BYTES,
  type ClientToReplica,
  decodeClientToReplica,
  encodeClientFrame,
  type RequestErrorReason,
} from '../protocol/client-protocol.ts';
import { type DurableState, mustSyncBeforeSending } from '../protocol/durable.ts';
import {
  decodeMessage,
  encodeMessage,
  type Message,
  type RequestBody,
  type Signed,
} from '../protocol/messages.ts';
import type { ScreenRejection } from '../protocol/rejections.ts';
import { type Ready, Replica } from '../protocol/replica.ts';
import {
  rememberVerified,
  type SignatureContext,
  type SignatureRejection,
  type SignatureToCheck,
  signaturesToCheck,
  type VerifiedSignatureCache,
  verifyUnchecked,
} from '../protocol/verify.ts';
import type { ReplicaStorage } from '../storage/storage.ts';
import { type ClientSession, createReplicaTransport, type ReplicaTransport } from '../transport/index.ts';
import { TokenBucket } from '../transport/rate-limit.ts';
import { bytesEqual, fromHex, toHex } from '../util/bytes.ts';
import { Random } from '../util/random.ts';
import { ClientSessions } from './client-sessions.ts';
import {
  type ClusterConfig,
  ConfigFileError,
  listenAddressesOf,
  readClusterConfig,
} from './cluster-config.ts';
import { InOrderRelease } from './in-order.ts';
import { type RecoveryReason, ReplicaMetrics } from './metrics.ts';
import { openReplicaStorage } from './replica-storage.ts';
import { VerifyPool } from './verify-pool.ts';

/** Most inputs stepped before one storage write: group commit amortises the fsync. */
const INBOX_BATCH_MAX = 512;
/** Inputs waiting for the core; beyond this, new frames are dropped (PBFT retransmits). */
const INBOX_LENGTH_MAX = 50_000;
/**
 * Admission control at the edge: with this many inputs already waiting (or being verified), a new
 * client request is answered "busy" before it costs a signature check, so replica-to-replica
 * traffic, which is what finishes the work already admitted, always finds room in the inbox.
 */
const CLIENT_ADMISSION_WAITING_MAX = 10_000;
/** Verified (digest, signature, key) triples remembered: every signature is checked once. */
const VERIFIED_SIGNATURES_MAX = 200_000;
/** Client keys whose sessions are remembered for routing replies (least recently used forgotten). */
const CLIENT_SESSIONS_MAX = 10_000;
/** Sessions answered per client key: the most recent that presented its requests (client-sessions.ts). */
const SESSIONS_PER_CLIENT_MAX = 4;
/** After a long pause (SIGSTOP, GC) at most this many ticks are delivered at once. */
const CATCH_UP_TICKS_MAX = 1_000;
/** Arrival times kept for the commit-latency histogram (requests not yet executed). */
const ARRIVALS_TRACKED_MAX = 100_000;
/**
 * Frames at least this large are fingerprinted before decoding, so a repeated VIEW-CHANGE or
 * NEW-VIEW is recognised without decoding it and checking every signature in it again.
 */
const FINGERPRINT_FRAME_MIN_BYTES = 16 * 1024;
/** NEW-VIEW fingerprints remembered; a few views' worth. */
const RECENT_NEW_VIEWS_MAX = 64;
/**
 * CHECKPOINTs and VIEW-CHANGEs a peer may have checked per second each (a token bucket, this many
 * deep). A correct replica signs a new CHECKPOINT every K executed slots and a new VIEW-CHANGE per
 * view it moves to, and repeats its own about once a retransmission interval: far below this. A
 * flooder's excess is dropped before its signature costs anything.
 */
const SCREENED_MESSAGES_PER_SECOND_MAX = 20;

export interface StartReplicaOptions {
  /** The replica's home folder: key.json and data/ (LevelDB). */
  home: string;
  /** Run as a liar (demonstrations and tests); refused unless cluster.json says testnet. */
  byzantine?: ByzantineBehaviour;
  /** cluster.json, or its path (default: ../cluster.json next to the home folder). */
  cluster?: ClusterConfig | string;
  logger?: Logger;
  logLevel?: string;
  /**
   * The data directory is not this replica's latest (restored from an older copy, say): set it
   * aside and recover before voting, as if it had been lost.
   */
  recover?: boolean;
}

export interface ReplicaStatus {
  id: number;
  peerId: string;
  view: number;
  primary: number;
  viewChangeInProgress: boolean;
  lastExecuted: number;
  stableCheckpoint: number;
  peersConnected: number;
}

export interface ReplicaNode {
  readonly id: number;
  readonly peerId: string;
  status(): ReplicaStatus;
  /** Finish pending writes, close the network and the database. */
  stop(): Promise<void>;
}

type Input = { kind: 'message'; message: Message } | { kind: 'tick' } | { kind: 'start' };

class SignatureCache implements VerifiedSignatureCache {
  private readonly entries = new BoundedCache<string, true>(VERIFIED_SIGNATURES_MAX);
  has(key: string): boolean {
    return this.entries.get(key) !== undefined;
  }
  add(key: string): void {
    this.entries.set(key, true);
  }
}

/**
 * JSON lines by default (one file per replica in a testnet), readable colour on a terminal.
 * Synchronous writes: a replica's log must never lag behind what it did (kill -9 loses nothing),
 * and at the default level it writes a few lines per checkpoint, not per request.
 */
function createLogger(level: string): Logger {
  const destination = process.stdout.isTTY
    ? pretty({ colorize: true, sync: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' })
    : pino.destination({ dest: 1, sync: true });
  return pino({ level }, destination);
}

export async function startReplica(options: StartReplicaOptions): Promise<ReplicaNode> {
  const cluster =
    typeof options.cluster === 'object'
      ? options.cluster
      : await readClusterConfig(options.cluster ?? join(options.home, '..', 'cluster.json'));
  const key = readKeyFile(join(options.home, 'key.json'));
  const self = cluster.replicas.find((replica) => replica.publicKey === key.publicKeyHex);
  if (self === undefined) {
    throw new Error(
      `${join(options.home, 'key.json')}: public key ${key.publicKeyHex} is not a replica of ${cluster.path}`,
    );
  }
  if (options.byzantine !== undefined && !cluster.testnet) {
    throw new ConfigFileError(
      `${cluster.path}: field "testnet" is false, so --byzantine ${options.byzantine} is refused (lying replicas are for testnets only)`,
    );
  }
  const genesis = parseGenesis(await readFile(cluster.genesisPath, 'utf8'), cluster.genesisPath);
  const logger = (options.logger ?? createLogger(options.logLevel ?? cluster.runtime.logLevel)).child({
    replica: self.id,
  });
  const { storage, durable, recovery } = await openReplicaStorage(options.home, {
    recover: options.recover === true,
    logger,
  });
  try {
    const liar = options.byzantine === undefined ? null : createStrategy(options.byzantine);
    if (liar !== null)
      logger.warn({ behaviour: liar.behaviour }, 'this replica LIES: it runs a Byzantine strategy');
    const runtime = new ReplicaRuntime(
      cluster,
      self.id,
      key.exportSeed(),
      key.signer(),
      genesis,
      storage,
      logger,
      liar,
    );
    await runtime.start(durable, recovery);
    return runtime;
  } catch (error) {
    await storage.close();
    throw error;
  }
}

class ReplicaRuntime implements ReplicaNode {
  readonly id: number;
  private readonly cluster: ClusterConfig;
  private readonly storage: ReplicaStorage;
  private readonly logger: Logger;
  private readonly verifier = createVerifier('native');
  private readonly verified = new SignatureCache();
  private readonly replicaKeys: Uint8Array[];
  private readonly signatureContext: SignatureContext;
  /** Worker threads for signature checks (runtime.verifyWorkers), or null to check on the event loop. */
  private verifyPool: VerifyPool | null = null;
  /** Messages being verified by the pool, released to the core in arrival order. */
  private readonly inOrder = new InOrderRelease();
  private readonly transport: ReplicaTransport;
  private readonly clientSessions = new ClientSessions<ClientSession>(
    CLIENT_SESSIONS_MAX,
    SESSIONS_PER_CLIENT_MAX,
  );
  readonly metrics = new ReplicaMetrics();
  /** client:t → when the request first reached this replica (performance.now(), ms). */
  private readonly arrivals = new BoundedCache<string, number>(ARRIVALS_TRACKED_MAX);
  /**
   * Repeats of view-change traffic. A VIEW-CHANGE carries a certificate (2f+1 signatures) per
   * prepared slot and a NEW-VIEW carries 2f+1 VIEW-CHANGEs, so they run to megabytes at n = 10
   * (docs/protocol.md, "Message size bounds"), each signature to check; replicas repeat
   * them every retransmission interval and answer each laggard with the NEW-VIEW, and on a loaded
   * cluster decoding the same bytes again and again used the CPU the view change needed to finish.
   * The last checked VIEW-CHANGE of each sender is kept to hand to the core again (it reacts to
   * repeats: a laggard is answered); a NEW-VIEW already checked is dropped (the core's verdict on
   * one depends only on its bytes and views it has left).
   */
  private readonly lastViewChangeFrom = new Map<number, { fingerprint: string; message: Message }>();
  /** Per peer and message type (checkpoint, view-change): the screen's token bucket. */
  private readonly screenBuckets = new Map<string, TokenBucket>();
  private readonly recentNewViews = new BoundedCache<string, true>(RECENT_NEW_VIEWS_MAX);
  private core!: Replica;
  private inbox: Input[] = [];
  private draining: Promise<void> | null = null;
  private stopped = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private ticksIssued = 0;
  private clockStartMs = 0;
  private readonly createCore: (durable: DurableState, recovering: boolean) => Replica;
  /** A Byzantine strategy rewriting what this replica sends (testnets only), or null. */
  private readonly liar: ByzantineStrategy | null;
  private readonly liarRandom = new Random(randomInt(0, 2 ** 47));
  private readonly sign: (bytes: Uint8Array) => Uint8Array;

  constructor(
    cluster: ClusterConfig,
    id: number,
    seed: Uint8Array,
    signer: { sign(bytes: Uint8Array): Uint8Array },
    genesis: Genesis,
    storage: ReplicaStorage,
    logger: Logger,
    liar: ByzantineStrategy | null,
  ) {
    this.liar = liar;
    this.sign = (bytes) => signer.sign(bytes);
    this.cluster = cluster;
    this.id = id;
    this.storage = storage;
    this.logger = logger;
    this.replicaKeys = cluster.replicas.map((replica) => fromHex(replica.publicKey));
    this.signatureContext = {
      verifier: this.verifier,
      replicaKeys: this.replicaKeys,
      cache: { verified: this.verified, sha256 },
    };
    this.createCore = (durable, recovering) =>
      new Replica({
        id,
        config: cluster.protocol,
        sign: (bytes) => signer.sign(bytes),
        sha256,
        stateMachine: Ledger.fromGenesis(genesis),
        durable,
        recovering,
      });
    this.transport = createReplicaTransport({
      seed,
      selfId: id,
      listen: listenAddressesOf(cluster.replicas[id]!),
      replicas: cluster.replicas.map(({ id: replicaId, peerId, multiaddrs }) => ({
        id: replicaId,
        peerId,
        multiaddrs,
      })),
      replicaFrameSizeMaxBytes: FRAME_SIZE_MAX_BYTES,
      clientFrameSizeMaxBytes: CLIENT_FRAME_SIZE_MAX_BYTES,
      clientFramesPerSecondMax: cluster.runtime.clientFramesPerSecondMax,
      onReplicaFrame: (from, frame) => this.onReplicaFrame(from, frame),
      onClientFrame: (session, frame) => this.onClientFrame(session, frame),
      onPeerConnectionChange: (connected) =>
        this.logger.info({ peers: connected }, 'replica connections changed'),
      log: logger,
    });
  }

  get peerId(): string {
    return this.transport.peerId;
  }

  /** Start from `durable`; `recovery` says why the storage could not be trusted (null: it can). */
  async start(durable: DurableState, recovery: RecoveryReason | null = null): Promise<void> {
    this.core = this.createCore(durable, recovery !== null);
    if (recovery !== null) this.metrics.recoveries.inc({ reason: recovery });
    this.metrics.recovering.set(this.core.recovering ? 1 : 0);
    this.logger.info(
      {
        view: this.core.currentView,
        lastExecuted: this.core.lastExecutedSeq,
        stableCheckpoint: this.core.stableCheckpointSeq,
        recovering: this.core.recovering,
      },
      'replica state loaded',
    );
    const workers = this.cluster.runtime.verifyWorkers;
    if (workers > 0) this.verifyPool = await VerifyPool.start(workers);
    try {
      await this.transport.start();
    } catch (error) {
      await this.verifyPool?.close();
      throw error;
    }
    const metricsUrl = await this.metrics.serve(this.cluster.replicas[this.id]!.metricsPort);
    this.enqueue({ kind: 'start' });
    this.clockStartMs = performance.now();
    this.tickTimer = setInterval(() => this.issueTicks(), this.cluster.runtime.tickMs);
    this.logger.info(
      {
        peerId: this.peerId,
        listen: this.transport.listenAddresses(),
        announce: this.cluster.replicas[this.id]!.multiaddrs,
        metricsUrl,
        verifyWorkers: workers,
      },
      'replica started',
    );
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      peerId: this.peerId,
      view: this.core.currentView,
      primary: this.core.primary,
      viewChangeInProgress: this.core.currentStatus === 'view-change',
      lastExecuted: this.core.lastExecutedSeq,
      stableCheckpoint: this.core.stableCheckpointSeq,
      peersConnected: this.transport.connectedReplicas().length,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    await this.transport.stop();
    await this.verifyPool?.close();
    await this.draining;
    await this.storage.close();
    await this.metrics.close();
    this.logger.info({ lastExecuted: this.core.lastExecutedSeq }, 'replica stopped');
  }

  /** Ticks follow the monotonic clock: a late timer delivers every tick that came due. */
  private issueTicks(): void {
    const due =
      Math.floor((performance.now() - this.clockStartMs) / this.cluster.runtime.tickMs) - this.ticksIssued;
    const count = Math.min(due, CATCH_UP_TICKS_MAX);
    this.ticksIssued += due;
    for (let i = 0; i < count; i++) this.enqueue({ kind: 'tick' });
  }

  // -------------------------------------------------------------------------------------------
  // The edge: strict decoding and signature checks before anything reaches the core.

  private onReplicaFrame(from: number, frame: Uint8Array): void {
    const fingerprint = frame.length >= FINGERPRINT_FRAME_MIN_BYTES ? toHex(sha256(frame)) : null;
    if (fingerprint !== null) {
      if (this.recentNewViews.get(fingerprint) !== undefined) return;
      const lastViewChange = this.lastViewChangeFrom.get(from);
      if (lastViewChange?.fingerprint === fingerprint) {
        this.metrics.messagesReceived.inc({ type: lastViewChange.message.type });
        this.enqueue({ kind: 'message', message: lastViewChange.message });
        return;
      }
    }
    let message: Message;
    try {
      message = decodeMessage(frame);
    } catch (error) {
      this.logger.debug({ from, code: (error as CodecError).code }, 'undecodable frame from replica');
      this.metrics.invalidMessages.inc({ reason: (error as CodecError).code ?? 'undecodable' });
      return;
    }
    if (message.type === 'reply') return;
    if (message.type === 'batch') {
      const rejection = this.unwantedBatch(message.seq, message.batch);
      if (rejection !== null) {
        this.metrics.invalidMessages.inc({ reason: rejection });
        return;
      }
    }
    const screened = this.screen(from, message);
    if (screened !== null) {
      this.metrics.invalidMessages.inc({ reason: screened });
      return;
    }
    this.verifyThen(message, (rejection) => {
      if (rejection !== null) {
        this.logger.debug({ from, type: message.type, rejection }, 'message rejected at the edge');
        this.metrics.invalidMessages.inc({ reason: rejection });
        return;
      }
      this.metrics.messagesReceived.inc({ type: message.type });
      if (message.type === 'request') this.noteArrival(message.request.body);
      this.liar?.observe(message);
      if (this.liar?.admits(message) === false) return;
      // Remembered only once the core will see it: a repeat must not be dropped in its place.
      if (!this.enqueue({ kind: 'message', message }) || fingerprint === null) return;
      if (message.type === 'new-view') this.recentNewViews.set(fingerprint, true);
      if (message.type === 'view-change') this.lastViewChangeFrom.set(from, { fingerprint, message });
    });
  }

  /**
   * Why a message is dropped before its signature is checked, or null. Ordering messages outside
   * the watermarks are rejected by the core whatever they say (it keeps none of them, not even
   * for a later view), so checking their signatures first would only let a liar spend this
   * replica's CPU; CHECKPOINTs and VIEW-CHANGEs beyond what a correct peer sends are rate-limited.
   */
  private screen(from: number, message: Message): ScreenRejection | null {
    switch (message.type) {
      case 'pre-prepare':
      case 'prepare':
      case 'commit': {
        const body =
          message.type === 'pre-prepare'
            ? message.prePrepare.body
            : message.type === 'prepare'
              ? message.prepare.body
              : message.commit.body;
        return this.core.inWindow(body.seq) ? null : 'outside-watermarks';
      }
      case 'checkpoint':
      case 'view-change': {
        const key = `${from}:${message.type}`;
        const nowMs = performance.now();
        let bucket = this.screenBuckets.get(key);
        if (bucket === undefined) {
          bucket = new TokenBucket({
            ratePerSecond: SCREENED_MESSAGES_PER_SECOND_MAX,
            capacity: SCREENED_MESSAGES_PER_SECOND_MAX,
            nowMs,
          });
          this.screenBuckets.set(key, bucket);
        }
        return bucket.tryTake(nowMs) ? null : 'rate-limited';
      }
      default:
        return null;
    }
  }

  /**
   * Why a BATCH is dropped before its requests' signatures are checked (a liar could otherwise make
   * this replica verify a batch's worth of signatures per frame), or null when the core awaits it.
   */
  private unwantedBatch(seq: number, batch: readonly Signed<RequestBody>[]): string | null {
    const awaited = this.core.awaitedBatchDigest(seq);
    if (awaited === undefined) return 'unsolicited-batch';
    return bytesEqual(batchDigest(batch, sha256), awaited) ? null : 'digest-mismatch';
  }

  /**
   * Check every signature in `message`, then call `then` with null or the reason it is rejected.
   * On the event loop by default; with verify workers asynchronously, and still in arrival order.
   */
  private verifyThen(message: Message, then: (rejection: SignatureRejection | null) => void): void {
    const unchecked = signaturesToCheck(message, this.signatureContext);
    if (typeof unchecked === 'string') {
      then(unchecked); // refused outright: nothing reaches the core, so order does not matter
      return;
    }
    if (this.verifyPool === null) {
      then(this.verifyOnEventLoop(unchecked));
      return;
    }
    if (unchecked.length === 0 && this.inOrder.length === 0) {
      then(null);
      return;
    }
    if (this.inOrder.length + this.inbox.length >= INBOX_LENGTH_MAX) {
      this.logger.warn({ verifying: this.inOrder.length }, 'inbox full, dropping input');
      return;
    }
    const settle = this.inOrder.take();
    if (unchecked.length === 0) {
      settle(() => then(null));
      return;
    }
    this.verifyPool
      .verify(
        unchecked.map(({ signed, publicKey }) => ({
          signature: signed.signature,
          message: signed.bytes,
          publicKey,
        })),
      )
      .then(
        (valid) => {
          this.metrics.signaturesVerified.inc({ thread: 'worker' }, valid.length);
          if (valid.every(Boolean)) {
            rememberVerified(unchecked, this.signatureContext);
            settle(() => then(null));
          } else {
            settle(() => then('bad-signature'));
          }
        },
        (error: Error) => {
          if (this.stopped) return; // the pool closed under it: the replica is stopping
          // A worker failed (a bug, not bad input): this message is checked on the event loop, and
          // so is everything once no worker is left.
          const pool = this.verifyPool;
          if (pool !== null && pool.size === 0) {
            this.logger.error(
              { err: error },
              'every verification worker failed; verifying on the event loop',
            );
            this.verifyPool = null;
            void pool.close();
          }
          settle(() => then(this.verifyOnEventLoop(unchecked)));
        },
      );
  }

  private verifyOnEventLoop(unchecked: readonly SignatureToCheck[]): SignatureRejection | null {
    if (unchecked.length > 0) this.metrics.signaturesVerified.inc({ thread: 'event-loop' }, unchecked.length);
    return verifyUnchecked(unchecked, this.signatureContext);
  }

  private onClientFrame(session: ClientSession, frame: Uint8Array): void {
    let input: ClientToReplica;
    try {
      input = decodeClientToReplica(frame);
    } catch (error) {
      this.logger.debug(
        { session: session.id, code: (error as CodecError).code },
        'undecodable client frame',
      );
      session.close();
      return;
    }
    switch (input.type) {
      case 'request':
        if (this.inbox.length + this.inOrder.length >= CLIENT_ADMISSION_WAITING_MAX) {
          this.metrics.requestsBusy.inc({ where: 'inbox' });
          session.send(this.requestErrorFrame(input.request.body, 'busy'));
          return;
        }
        // Through the cache, like replica messages: the same request comes back inside the
        // primary's PRE-PREPARE (at a backup) or again on a retry, and is verified only once.
        this.verifyThen(input, (rejection) => {
          if (rejection !== null) {
            this.logger.debug({ session: session.id }, 'client request with a bad signature');
            this.metrics.invalidMessages.inc({ reason: 'bad-signature' });
            const { client, t } = input.request.body;
            session.send(this.requestErrorFrame({ client, t }, 'bad-signature'));
            return;
          }
          this.clientSessions.bind(toHex(input.request.body.client), session);
          this.metrics.messagesReceived.inc({ type: 'request' });
          if (this.liar?.admits(input) === false) return;
          this.noteArrival(input.request.body);
          this.enqueue({ kind: 'message', message: input });
        });
        return;
      case 'query': {
        const answer = this.core.query(input.op);
        this.answerClient([session], {
          type: 'query-result',
          id: input.id,
          replica: this.id,
          view: answer.view,
          lastExecuted: answer.lastExecuted,
          result: answer.result,
        });
        return;
      }
      case 'status': {
        const status = this.status();
        session.send(
          encodeClientFrame({
            type: 'status-result',
            id: input.id,
            replica: this.id,
            view: status.view,
            primary: status.primary,
            viewChangeInProgress: status.viewChangeInProgress,
            lastExecuted: status.lastExecuted,
            stableCheckpoint: status.stableCheckpoint,
            peersConnected: status.peersConnected,
          }),
        );
        return;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // The loop: step a batch of inputs, persist once, then send and reply.

  /** Returns whether the input was queued (not when stopped or the inbox is full). */
  private enqueue(input: Input): boolean {
    if (this.stopped && input.kind !== 'start') return false;
    if (this.inbox.length >= INBOX_LENGTH_MAX) {
      this.logger.warn({ inbox: this.inbox.length }, 'inbox full, dropping input');
      return false;
    }
    this.inbox.push(input);
    if (this.draining === null) this.draining = this.drain();
    return true;
  }

  private async drain(): Promise<void> {
    // Let the current burst of network callbacks fill the inbox before stepping.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (this.inbox.length > 0) {
        const steps = this.stepInputs(this.inbox.splice(0, INBOX_BATCH_MAX));
        const persist = steps.flatMap(({ ready }) => ready.persist);
        if (persist.length > 0) {
          const endTimer = this.metrics.storageWrite.startTimer();
          await this.storage.apply(persist, {
            sync: persist.some((op) => mustSyncBeforeSending(op, this.id)),
          });
          endTimer();
        }
        for (const { ready, kind } of steps) this.deliver(ready, kind);
        this.updateGauges();
      }
    } catch (error) {
      // A failed write or a broken invariant: stop loudly rather than sign from an unknown state.
      this.logger.fatal({ err: error }, 'replica cannot continue');
      process.exitCode = 70;
      void this.stop();
    } finally {
      this.draining = null;
    }
  }

  private requestErrorFrame(
    request: { client: Uint8Array; t: number; lastExecutedT?: number },
    reason: RequestErrorReason,
  ): Uint8Array {
    return encodeClientFrame({
      type: 'request-error',
      replica: this.id,
      client: request.client,
      t: request.t,
      reason,
      lastExecutedT: request.lastExecutedT ?? 0,
    });
  }

  private noteArrival(body: RequestBody): void {
    const key = `${toHex(body.client)}:${body.t}`;
    if (this.arrivals.get(key) === undefined) this.arrivals.set(key, performance.now());
  }

  private updateGauges(): void {
    const status = this.status();
    this.metrics.view.set(status.view);
    this.metrics.primary.set(status.primary);
    this.metrics.viewChangeInProgress.set(status.viewChangeInProgress ? 1 : 0);
    this.metrics.lastExecutedSeq.set(status.lastExecuted);
    this.metrics.stableCheckpoint.set(status.stableCheckpoint);
    this.metrics.lowWatermark.set(this.core.lowWatermark);
    this.metrics.requestsInFlight.set(this.core.pendingRequestCount);
    this.metrics.batchesAwaited.set(this.core.awaitedBatchCount);
    this.metrics.peersConnected.set(status.peersConnected);
    this.metrics.recovering.set(this.core.recovering ? 1 : 0);
  }

  private otherReplicas(): number[] {
    return this.cluster.replicas.map((replica) => replica.id).filter((id) => id !== this.id);
  }

  private sendPayload(to: number, payload: Payload): void {
    this.transport.sendToReplica(to, payload instanceof Uint8Array ? payload : encodeMessage(payload));
  }

  private liarContext(): ByzantineContext {
    return {
      id: this.id,
      replicaCount: this.cluster.replicas.length,
      view: this.core.currentView,
      lowWatermark: this.core.lowWatermark,
      watermarkWindow: this.cluster.protocol.watermarkWindow,
      checkpointInterval: this.cluster.protocol.checkpointInterval,
      protocol: this.cluster.protocol,
      random: this.liarRandom,
      sign: this.sign,
      sha256,
    };
  }

  /**
   * Step inputs in arrival order. Consecutive messages go to the core together (`stepAll`), so the
   * requests among them share a PRE-PREPARE: the batch grows with whatever arrived while the
   * previous write was on its way to disk.
   */
  private stepInputs(inputs: readonly Input[]): Array<{ ready: Ready; kind: Input['kind'] }> {
    const steps: Array<{ ready: Ready; kind: Input['kind'] }> = [];
    let messages: Message[] = [];
    const flushMessages = (): void => {
      if (messages.length === 0) return;
      steps.push({ ready: this.core.stepAll(messages), kind: 'message' });
      messages = [];
    };
    for (const input of inputs) {
      if (input.kind === 'message') {
        messages.push(input.message);
        continue;
      }
      flushMessages();
      steps.push({ ready: input.kind === 'tick' ? this.core.tick() : this.core.start(), kind: input.kind });
    }
    flushMessages();
    return steps;
  }

  private deliver(ready: Ready, kind: Input['kind']): void {
    for (const outbound of ready.send) {
      const targets = outbound.to === 'all' ? this.otherReplicas() : [outbound.to];
      this.metrics.messagesSent.inc({ type: outbound.message.type }, targets.length);
      if (this.liar === null) {
        const frame = encodeMessage(outbound.message);
        for (const to of targets) this.transport.sendToReplica(to, frame);
      } else {
        for (const to of targets) {
          for (const payload of this.liar.outgoing(outbound.message, to, this.liarContext()))
            this.sendPayload(to, payload);
        }
      }
    }
    if (this.liar !== null && kind === 'tick') {
      for (const { to, payload } of this.liar.onTick(this.liarContext())) {
        for (const target of to === 'all' ? this.otherReplicas() : [to]) this.sendPayload(target, payload);
      }
    }
    for (const batch of ready.executed) {
      this.metrics.batchSize.observe(batch.requests.length);
      const nowMs = performance.now();
      for (const { request } of batch.requests) {
        const key = `${toHex(request.body.client)}:${request.body.t}`;
        const arrivedMs = this.arrivals.get(key);
        if (arrivedMs === undefined) continue;
        this.metrics.commitLatency.observe((nowMs - arrivedMs) / 1000);
        this.arrivals.delete(key);
      }
      this.logger.debug(
        { view: batch.view, seq: batch.seq, requests: batch.requests.length },
        'batch executed',
      );
    }
    for (const event of ready.events) {
      if (
        event.type === 'request-stale' ||
        event.type === 'request-refused' ||
        event.type === 'request-busy'
      ) {
        const reason =
          event.type === 'request-stale'
            ? 'stale-request'
            : event.type === 'request-busy'
              ? 'busy'
              : event.reason;
        if (reason === 'busy') this.metrics.requestsBusy.inc({ where: 'pending' });
        const frame = this.requestErrorFrame(event, reason);
        for (const session of this.clientSessions.of(toHex(event.client))) session.send(frame);
        continue;
      }
      if (event.type === 'view-change-started') this.metrics.viewChanges.inc({ reason: event.reason });
      if (event.type === 'state-transferred') this.metrics.stateTransfers.inc();
      if (event.type === 'batch-fetched') this.metrics.batchesFetched.inc();
      if (event.type === 'message-rejected') {
        this.metrics.invalidMessages.inc({ reason: event.reason });
        this.logger.debug(
          { view: this.core.currentView, type: event.messageType, reason: event.reason },
          'message rejected',
        );
      } else {
        this.logger.info(
          { view: this.core.currentView, lastExecuted: this.core.lastExecutedSeq, ...hexBytes(event) },
          event.type,
        );
      }
    }
    for (const { client, reply } of ready.replies) {
      this.answerClient(this.clientSessions.of(toHex(client)), { type: 'reply', reply });
    }
  }

  /**
   * A reply or query answer to a client, on each of `sessions`: what the core computed, or what
   * the liar says instead (encoded once for all of them).
   */
  private answerClient(sessions: readonly ClientSession[], answer: ClientAnswer): void {
    if (sessions.length === 0) return;
    const told = this.liar === null ? [answer] : this.liar.toClient(answer, this.liarContext());
    const frames = told.map((frame) => encodeClientFrame(frame));
    for (const session of sessions) for (const frame of frames) session.send(frame);
  }
}

export type { ClusterConfig };

/** Byte fields (digests, client keys) as hex: JSON would print a Uint8Array as an object of indices. */
function hexBytes(fields: object): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(fields).map(([key, value]) => [key, value instanceof Uint8Array ? toHex(value) : value]),
  );
}
