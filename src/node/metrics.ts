/**
 * Prometheus metrics of one replica (prom-client), served on a loopback port. Each replica has its
 * own registry, so several replicas can run in one process (as the library allows).
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CODEC_ERROR_CODES } from '../codec/cbor.ts';
import { MESSAGE_TYPES } from '../protocol/messages.ts';
import {
  BATCH_REJECTIONS,
  CORE_REJECTION_REASONS,
  SCREEN_REJECTIONS,
  SIGNATURE_REJECTIONS,
} from '../protocol/rejections.ts';
import { VIEW_CHANGE_REASONS } from '../protocol/replica.ts';

/** Batch sizes are counted in requests; buckets up to the largest batch the protocol allows. */
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/** Commit latency from a request's arrival at this replica to its execution. */
const COMMIT_LATENCY_BUCKETS_SECONDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];
const STORAGE_WRITE_BUCKETS_SECONDS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5];

/** Every `reason` of pbft_invalid_messages_total: the codec's, the edge's and the core's. */
export const INVALID_MESSAGE_REASONS: readonly string[] = [
  ...new Set<string>([
    ...CODEC_ERROR_CODES,
    'undecodable', // a frame the decoder failed on without a code of its own
    ...SIGNATURE_REJECTIONS,
    ...BATCH_REJECTIONS,
    ...SCREEN_REJECTIONS,
    ...CORE_REJECTION_REASONS,
  ]),
];
/** Where signatures are checked: on the event loop or in `runtime.verifyWorkers` threads. */
export const SIGNATURE_THREADS = ['event-loop', 'worker'] as const;
/** Where admission control answers busy: the edge's inbox or the core's pending table. */
export const BUSY_WHERE = ['inbox', 'pending'] as const;
/**
 * Why a replica started recovering (it votes on nothing until it has): its storage was found
 * damaged, its data directory was missing although it had run before, or the operator asked.
 */
export const RECOVERY_REASONS = ['damaged', 'missing', 'requested'] as const;
export type RecoveryReason = (typeof RECOVERY_REASONS)[number];

export class ReplicaMetrics {
  readonly registry = new Registry();
  readonly view = new Gauge({ name: 'pbft_view', help: 'Current view', registers: [this.registry] });
  readonly primary = new Gauge({
    name: 'pbft_primary',
    help: 'Primary of the current view',
    registers: [this.registry],
  });
  readonly viewChangeInProgress = new Gauge({
    name: 'pbft_view_change_in_progress',
    help: '1 while this replica waits for a NEW-VIEW',
    registers: [this.registry],
  });
  readonly lastExecutedSeq = new Gauge({
    name: 'pbft_last_executed_seq',
    help: 'Highest sequence number executed',
    registers: [this.registry],
  });
  readonly stableCheckpoint = new Gauge({
    name: 'pbft_stable_checkpoint',
    help: 'Sequence number of the stable checkpoint',
    registers: [this.registry],
  });
  readonly lowWatermark = new Gauge({
    name: 'pbft_low_watermark',
    help: 'Low watermark h',
    registers: [this.registry],
  });
  readonly requestsInFlight = new Gauge({
    name: 'pbft_requests_in_flight',
    help: 'Requests received and not yet executed',
    registers: [this.registry],
  });
  readonly peersConnected = new Gauge({
    name: 'pbft_peers_connected',
    help: 'Other replicas this replica has an open link to',
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'pbft_batch_size',
    help: 'Requests per executed batch',
    buckets: BATCH_SIZE_BUCKETS,
    registers: [this.registry],
  });
  readonly commitLatency = new Histogram({
    name: 'pbft_commit_latency_seconds',
    help: "Time from a request's arrival at this replica to its execution",
    buckets: COMMIT_LATENCY_BUCKETS_SECONDS,
    registers: [this.registry],
  });
  readonly storageWrite = new Histogram({
    name: 'pbft_storage_write_seconds',
    help: 'Duration of one synced storage batch',
    buckets: STORAGE_WRITE_BUCKETS_SECONDS,
    registers: [this.registry],
  });
  readonly viewChanges = new Counter({
    name: 'pbft_view_changes_total',
    help: 'View changes this replica started, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly messagesReceived = new Counter({
    name: 'pbft_messages_received_total',
    help: 'Authenticated messages received, by type',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly messagesSent = new Counter({
    name: 'pbft_messages_sent_total',
    help: 'Messages sent to other replicas, by type',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly invalidMessages = new Counter({
    name: 'pbft_invalid_messages_total',
    help: 'Messages rejected at the edge or by a protocol rule, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly signaturesVerified = new Counter({
    name: 'pbft_signatures_verified_total',
    help: 'ed25519 signatures checked (cache misses), by thread: event-loop or worker',
    labelNames: ['thread'],
    registers: [this.registry],
  });
  readonly stateTransfers = new Counter({
    name: 'pbft_state_transfers_total',
    help: 'State transfers completed',
    registers: [this.registry],
  });
  readonly requestsBusy = new Counter({
    name: 'pbft_requests_busy_total',
    help: 'Client requests answered busy (admission control): where = inbox (the edge) or pending (the core)',
    labelNames: ['where'],
    registers: [this.registry],
  });
  readonly batchesFetched = new Counter({
    name: 'pbft_batches_fetched_total',
    help: 'Batches of NEW-VIEW slots this replica lacked and then received (by FETCH-BATCH or from the primary)',
    registers: [this.registry],
  });
  readonly batchesAwaited = new Gauge({
    name: 'pbft_batches_awaited',
    help: 'Slots of the current view waiting for their batch (FETCH-BATCH outstanding)',
    registers: [this.registry],
  });

  readonly recoveries = new Counter({
    name: 'pbft_storage_recoveries_total',
    help: 'Starts from storage that could not be trusted, by reason (damaged, missing, requested)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly recovering = new Gauge({
    name: 'pbft_recovering',
    help: '1 while this replica recovers from lost storage and votes on nothing',
    registers: [this.registry],
  });

  private server: Server | null = null;

  constructor() {
    // Every known label value exists from the first scrape, at 0: rate() and alert rules over a
    // labelled counter see 0 rather than no series at all until the first event.
    for (const reason of VIEW_CHANGE_REASONS) this.viewChanges.inc({ reason }, 0);
    for (const type of MESSAGE_TYPES) {
      this.messagesReceived.inc({ type }, 0);
      this.messagesSent.inc({ type }, 0);
    }
    for (const reason of INVALID_MESSAGE_REASONS) this.invalidMessages.inc({ reason }, 0);
    for (const thread of SIGNATURE_THREADS) this.signaturesVerified.inc({ thread }, 0);
    for (const where of BUSY_WHERE) this.requestsBusy.inc({ where }, 0);
    for (const reason of RECOVERY_REASONS) this.recoveries.inc({ reason }, 0);
  }

  /** Serve GET /metrics on 127.0.0.1:port (port 0 = do not serve). Returns the URL, if any. */
  async serve(port: number): Promise<string | null> {
    if (port === 0) return null;
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url !== '/metrics') {
        response.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return metricsUrl(port);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export function metricsUrl(port: number): string {
  return `http://127.0.0.1:${port}/metrics`;
}
