/**
 * Every message the protocol can build fits the frame limit: the largest VIEW-CHANGE, NEW-VIEW,
 * PRE-PREPARE, BATCH and STATE are built for real at the shipped settings and measured against the
 * bounds that configuration loading enforces.
 */
import { describe, expect, it } from 'vitest';
import { FRAME_SIZE_MAX_BYTES } from '../../../src/codec/cbor.ts';
import { DEFAULT_CLUSTER_PROTOCOL } from '../../../src/node/cluster-config.ts';
import { ConfigError, type ProtocolConfig, validateProtocolConfig } from '../../../src/protocol/config.ts';
import {
  MESSAGE_SIZE_ALLOWED_BYTES,
  messageBounds,
  REQUEST_WIRE_BYTES_MAX,
} from '../../../src/protocol/message-bounds.ts';
import {
  type Body,
  type CheckpointBody,
  encodeBody,
  encodeMessage,
  OPERATION_SIZE_MAX_BYTES,
  type PreparedCertificate,
  REPLICAS_MAX,
  type RequestBody,
  requestWireBytes,
  type Signed,
  SNAPSHOT_SIZE_MAX_BYTES,
  type ViewChangeBody,
} from '../../../src/protocol/messages.ts';

const WIDE = Number.MAX_SAFE_INTEGER;
const signature = new Uint8Array(64).fill(0xff);
const digest = new Uint8Array(32).fill(0xee);

function signed<B extends Body>(body: B): Signed<B> {
  return { body, bytes: encodeBody(body), signature };
}

/** Wide numbers everywhere; sequence numbers differ per slot as in a real VIEW-CHANGE. */
function largestViewChange(n: number, window: number): Signed<ViewChangeBody> {
  const f = (n - 1) / 3;
  const replica = REPLICAS_MAX - 1;
  const checkpointProof = Array.from({ length: 2 * f + 1 }, () =>
    signed<CheckpointBody>({ type: 'checkpoint', seq: WIDE, stateDigest: digest, replica }),
  );
  const prepared: PreparedCertificate[] = Array.from({ length: window }, (_, slot) => ({
    prePrepare: signed({ type: 'pre-prepare', view: WIDE - 1, seq: WIDE - slot, digest, replica }),
    prepares: Array.from({ length: 2 * f }, () =>
      signed({ type: 'prepare', view: WIDE - 1, seq: WIDE - slot, digest, replica }),
    ),
  }));
  return signed({ type: 'view-change', newView: WIDE, stableSeq: WIDE, checkpointProof, prepared, replica });
}

function largestBatch(config: Omit<ProtocolConfig, 'replicaCount'>): Signed<RequestBody>[] {
  const batch: Signed<RequestBody>[] = [];
  let bytes = 0;
  while (batch.length < config.batchSizeMax) {
    const request = signed<RequestBody>({
      type: 'request',
      client: new Uint8Array(32).fill(batch.length % 256),
      t: WIDE,
      op: new Uint8Array(OPERATION_SIZE_MAX_BYTES),
    });
    if (bytes + requestWireBytes(request) > config.batchBytesMax) break;
    bytes += requestWireBytes(request);
    batch.push(request);
  }
  return batch;
}

describe('message size bounds', () => {
  it.each([4, 7, 10])(
    'every message the protocol can build fits the frame limit at the shipped settings (n = %i)',
    (n) => {
      const config = { ...DEFAULT_CLUSTER_PROTOCOL, replicaCount: n };
      expect(() => validateProtocolConfig(config)).not.toThrow();
      const bounds = messageBounds(config);
      const viewChange = largestViewChange(n, config.watermarkWindow);
      const viewChangeFrame = encodeMessage({ type: 'view-change', viewChange }).length;
      const newView = signed({
        type: 'new-view',
        view: WIDE,
        viewChanges: Array.from({ length: (2 * (n - 1)) / 3 + 1 }, () => viewChange),
        prePrepares: viewChange.body.prepared.map((certificate) => certificate.prePrepare),
        replica: REPLICAS_MAX - 1,
      });
      const newViewFrame = encodeMessage({ type: 'new-view', newView }).length;
      const batch = largestBatch(config);
      const prePrepareFrame = encodeMessage({
        type: 'pre-prepare',
        prePrepare: viewChange.body.prepared[0]!.prePrepare,
        batch,
      }).length;
      const batchFrame = encodeMessage({ type: 'batch', seq: WIDE, batch }).length;
      const stateFrame = encodeMessage({
        type: 'state',
        state: signed({
          type: 'state',
          checkpointProof: viewChange.body.checkpointProof,
          snapshot: new Uint8Array(SNAPSHOT_SIZE_MAX_BYTES),
          replica: REPLICAS_MAX - 1,
        }),
      }).length;
      const measured = { viewChangeFrame, newViewFrame, prePrepareFrame, batchFrame, stateFrame };
      console.log(`n = ${n}: largest frames ${JSON.stringify(measured)}; bounds ${JSON.stringify(bounds)}`);
      // The bounds hold, and are tight (within 1 % of what a real message reaches).
      for (const [actual, bound] of [
        [viewChangeFrame, bounds.viewChangeBytes],
        [newViewFrame, bounds.newViewBytes],
        [prePrepareFrame, bounds.prePrepareBytes],
        [batchFrame, bounds.batchBytes],
        [stateFrame, bounds.stateBytes],
      ] as const) {
        expect(actual).toBeLessThanOrEqual(bound);
        expect(bound - actual).toBeLessThan(Math.max(1024, actual / 100));
      }
      for (const frame of [viewChangeFrame, newViewFrame, prePrepareFrame, batchFrame]) {
        expect(frame).toBeLessThanOrEqual(MESSAGE_SIZE_ALLOWED_BYTES);
      }
      expect(stateFrame).toBeLessThanOrEqual(FRAME_SIZE_MAX_BYTES);
    },
  );

  it('a setting whose largest message does not fit a frame is refused at load, naming the field', () => {
    const base = { ...DEFAULT_CLUSTER_PROTOCOL };
    // A NEW-VIEW grows with (2f+1)² × L: the shipped window is too wide for 40 replicas.
    expect(() => validateProtocolConfig({ ...base, replicaCount: 40 })).toThrow(ConfigError);
    expect(() => validateProtocolConfig({ ...base, replicaCount: 40 })).toThrow(
      /^watermarkWindow 256 is too large for 40 replicas/,
    );
    expect(() =>
      validateProtocolConfig({
        ...base,
        replicaCount: 40,
        watermarkWindow: 32,
        checkpointInterval: 16,
        pipelineDepthMax: 16,
      }),
    ).not.toThrow();
    // A batch whose bytes alone exceed the frame.
    expect(() =>
      validateProtocolConfig({ ...base, replicaCount: 4, batchBytesMax: FRAME_SIZE_MAX_BYTES }),
    ).toThrow(/^batchBytesMax \d+ is too large/);
    // A budget smaller than the largest request could never order it.
    expect(() =>
      validateProtocolConfig({ ...base, replicaCount: 4, batchBytesMax: REQUEST_WIRE_BYTES_MAX - 1 }),
    ).toThrow(/^batchBytesMax must be at least/);
  });
});
