/** Protocol parameters, quorum arithmetic and their validation. */
import { messageBoundViolation, REQUEST_WIRE_BYTES_MAX } from './message-bounds.ts';
import { BATCH_SIZE_LIMIT, REPLICAS_MAX, WINDOW_LIMIT } from './messages.ts';

export interface ProtocolConfig {
  /** Number of replicas, n = 3f + 1. */
  replicaCount: number;
  /** A stable checkpoint is taken every `checkpointInterval` executed sequence numbers (K). */
  checkpointInterval: number;
  /** Watermark window L: sequence numbers h < n ≤ h + L are accepted. A multiple of K. */
  watermarkWindow: number;
  /** Most requests in one PRE-PREPARE. */
  batchSizeMax: number;
  /**
   * Most bytes of requests in one PRE-PREPARE (signed bytes plus signatures, `requestWireBytes`).
   * With the count it bounds every message that carries a batch; see message-bounds.ts.
   */
  batchBytesMax: number;
  /** Most sequence numbers the primary keeps in flight (proposed, not yet executed). ≤ L. */
  pipelineDepthMax: number;
  /** Ticks a backup waits for a pending request to execute before starting a view change. */
  viewChangeTimeoutTicks: number;
  /** The timeout doubles after each view change without progress, up to this bound. */
  viewChangeTimeoutMaxTicks: number;
  /** Every this many ticks a replica resends its own messages for unfinished work. */
  retransmitIntervalTicks: number;
  /** Most requests a replica holds pending (received, not yet executed). */
  pendingRequestsMax: number;
  /**
   * Most clients in the replicated reply cache (the last reply of each, for retransmissions); the
   * least recently executed are evicted. Exactly-once rests on the application's request floor,
   * not on this cache, so it bounds no number of accounts; it is bounded to keep the whole state
   * within one STATE frame.
   */
  clientTableMax: number;
}

export const DEFAULT_PROTOCOL_CONFIG: Omit<ProtocolConfig, 'replicaCount'> = {
  checkpointInterval: 32,
  watermarkWindow: 128,
  batchSizeMax: 128,
  batchBytesMax: 256 * 1024,
  pipelineDepthMax: 16,
  viewChangeTimeoutTicks: 20,
  viewChangeTimeoutMaxTicks: 320,
  retransmitIntervalTicks: 10,
  pendingRequestsMax: 10_000,
  clientTableMax: 20_000,
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Every setting besides replicaCount; each is a positive integer (cluster.json's "protocol"). */
export const PROTOCOL_SETTINGS = [
  'checkpointInterval',
  'watermarkWindow',
  'batchSizeMax',
  'batchBytesMax',
  'pipelineDepthMax',
  'viewChangeTimeoutTicks',
  'viewChangeTimeoutMaxTicks',
  'retransmitIntervalTicks',
  'pendingRequestsMax',
  'clientTableMax',
] as const satisfies readonly (keyof ProtocolConfig)[];

export function validateProtocolConfig(config: ProtocolConfig): void {
  const { replicaCount: n } = config;
  if (!Number.isInteger(n) || n < 4 || n > REPLICAS_MAX || (n - 1) % 3 !== 0) {
    throw new ConfigError(`replicaCount must be 3f+1 with f >= 1 (4, 7, 10, ...), got ${n}`);
  }
  for (const key of PROTOCOL_SETTINGS) {
    const value = config[key];
    if (!Number.isSafeInteger(value) || value <= 0)
      throw new ConfigError(`${key} must be a positive integer`);
  }
  if (
    config.watermarkWindow % config.checkpointInterval !== 0 ||
    config.watermarkWindow < 2 * config.checkpointInterval
  ) {
    throw new ConfigError('watermarkWindow must be a multiple of checkpointInterval and at least twice it');
  }
  if (config.watermarkWindow > WINDOW_LIMIT)
    throw new ConfigError(`watermarkWindow must be at most ${WINDOW_LIMIT}`);
  if (config.batchSizeMax > BATCH_SIZE_LIMIT)
    throw new ConfigError(`batchSizeMax must be at most ${BATCH_SIZE_LIMIT}`);
  if (config.pipelineDepthMax > config.watermarkWindow) {
    throw new ConfigError('pipelineDepthMax must not exceed watermarkWindow');
  }
  if (config.viewChangeTimeoutMaxTicks < config.viewChangeTimeoutTicks) {
    throw new ConfigError('viewChangeTimeoutMaxTicks must be at least viewChangeTimeoutTicks');
  }
  if (config.batchBytesMax < REQUEST_WIRE_BYTES_MAX) {
    throw new ConfigError(`batchBytesMax must be at least ${REQUEST_WIRE_BYTES_MAX}, the largest request`);
  }
  // Every message the protocol can build must fit a frame, or a view change could never finish.
  const violation = messageBoundViolation(config);
  if (violation !== null) throw new ConfigError(violation);
}

/** Quorum sizes for n = 3f + 1. */
export interface Quorums {
  n: number;
  f: number;
  /** 2f + 1: prepared-with-primary, committed, stable checkpoint, NEW-VIEW's V. */
  quorum: number;
  /** f + 1: at least one correct replica (view-change join, client replies). */
  weak: number;
}

export function quorums(replicaCount: number): Quorums {
  const f = Math.floor((replicaCount - 1) / 3);
  return { n: replicaCount, f, quorum: 2 * f + 1, weak: f + 1 };
}

export function primaryOf(view: number, replicaCount: number): number {
  return view % replicaCount;
}
