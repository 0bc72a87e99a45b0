/**
 * LevelStorage and its in-memory twin must agree: the same persist operations, taken from a real
 * simulated run with view changes, checkpoints and crashes, load back as the same durable state.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../../src/codec/cbor.ts';
import type { DurableState, PersistOp } from '../../../src/protocol/durable.ts';
import { encodeCheckpointRecord, encodeMessage, encodePreparedSlot } from '../../../src/protocol/messages.ts';
import { runSimulation } from '../../../src/sim/simulation.ts';
import { LevelStorage } from '../../../src/storage/level.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';

/** A canonical byte form of a durable state; the log is compared as a set (order is not kept). */
function fingerprint(state: DurableState): string {
  return Buffer.from(
    encodeCanonical({
      view: state.view,
      viewChangeInProgress: state.viewChangeInProgress,
      checkpoint: state.stableCheckpoint === null ? null : encodeCheckpointRecord(state.stableCheckpoint),
      ownViewChange:
        state.ownViewChange === null
          ? null
          : encodeMessage({ type: 'view-change', viewChange: state.ownViewChange }),
      newView: state.newView === null ? null : encodeMessage({ type: 'new-view', newView: state.newView }),
      prepared: state.prepared.map((c) => Buffer.from(encodePreparedSlot(c)).toString('hex')).sort(),
      log: state.log.map((m) => Buffer.from(encodeMessage(m)).toString('hex')).sort(),
    }),
  ).toString('hex');
}

const directories: string[] = [];
afterEach(async () => {
  for (const directory of directories.splice(0)) await rm(directory, { recursive: true, force: true });
});

describe('LevelStorage', () => {
  it('loads back exactly what the in-memory twin holds after every step of a run with view changes and checkpoints', async () => {
    const steps: Array<{ replica: number; ops: readonly PersistOp[] }> = [];
    const result = runSimulation({
      seed: 7,
      replicas: 4,
      byzantine: 1,
      byzantineReplicas: [0],
      behaviours: ['silent'],
      faults: false,
      requestsPerClient: 20,
      onPersist: (replica, ops) => steps.push({ replica, ops }),
    });
    expect(result.violations).toEqual([]);
    expect(result.viewChanges).toBeGreaterThanOrEqual(1);
    const replica = 1;
    const ops = steps.filter((step) => step.replica === replica);
    expect(ops.some((step) => step.ops.some((op) => op.type === 'stable-checkpoint'))).toBe(true);
    expect(ops.some((step) => step.ops.some((op) => op.type === 'new-view'))).toBe(true);

    const directory = await mkdtemp(join(tmpdir(), 'pbft-level-'));
    directories.push(directory);
    let level = await LevelStorage.open(directory);
    const memory = new MemoryStorage();
    for (const [index, step] of ops.entries()) {
      await level.apply(step.ops);
      await memory.apply(step.ops);
      const expected = fingerprint(await memory.load());
      expect(fingerprint(await level.load()), `after step ${index} of ${ops.length}`).toBe(expected);
      if (index === Math.floor(ops.length / 2)) {
        // Reopening the database (a restart) changes nothing.
        await level.close();
        level = await LevelStorage.open(directory);
        expect(fingerprint(await level.load()), `reopened after step ${index}`).toBe(expected);
      }
    }
    const final = await level.load();
    expect(final.stableCheckpoint?.seq).toBeGreaterThan(0);
    expect(final.view).toBeGreaterThanOrEqual(1);
    await level.close();
  });

  it('refuses a directory it cannot open with a one-line error naming it', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'pbft-level-'));
    directories.push(directory);
    const first = await LevelStorage.open(directory);
    await expect(LevelStorage.open(directory)).rejects.toThrow(
      new RegExp(`cannot open the database in ${directory}`),
    );
    await first.close();
  });

  it('refuses a record it cannot decode (an older format) with a one-line error naming the directory and the way out', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'pbft-level-'));
    directories.push(directory);
    const storage = await LevelStorage.open(directory);
    await storage.close();
    // A prepared certificate as versions before digest-only certificates stored it: with its batch
    // inside the certificate and no separate batch field.
    const { ClassicLevel } = await import('classic-level');
    const raw = new ClassicLevel<string, Uint8Array>(directory, {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
    });
    await raw.put('prepared/0000000000000001', encodeCanonical({ prePrepare: {}, batch: [], prepares: [] }));
    await raw.close();
    const reopened = await LevelStorage.open(directory);
    try {
      await expect(reopened.load()).rejects.toThrow(
        new RegExp(`^${directory}: a stored record does not decode .*re-create this replica's data`),
      );
    } finally {
      await reopened.close();
    }
  });
});
