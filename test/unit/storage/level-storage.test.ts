/**
 * LevelStorage and its in-memory twin must agree: the same persist operations, taken from a real
 * simulated run with view changes, checkpoints and crashes, load back as the same durable state.
 */
import { cp, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../../src/codec/cbor.ts';
import type { DurableState, PersistOp } from '../../../src/protocol/durable.ts';
import { encodeCheckpointRecord, encodeMessage, encodePreparedSlot } from '../../../src/protocol/messages.ts';
import { runSimulation } from '../../../src/sim/simulation.ts';
import { LevelStorage, StorageDamagedError, witnessPathOf } from '../../../src/storage/level.ts';
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
      recovery: state.recovery === null ? null : { untilSeq: state.recovery.untilSeq },
    }),
  ).toString('hex');
}

const directories: string[] = [];
afterEach(async () => {
  for (const directory of directories.splice(0)) {
    await rm(directory, { recursive: true, force: true });
    await rm(witnessPathOf(directory), { force: true });
  }
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

  it('keeps the recovery record across reopening: recovering, then bounded, then recovered', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'pbft-level-'));
    directories.push(directory);
    const stages: PersistOp[] = [
      { type: 'recovery', recovery: { untilSeq: null } },
      { type: 'recovery', recovery: { untilSeq: 576 } },
      { type: 'recovery', recovery: null },
    ];
    const memory = new MemoryStorage();
    for (const op of stages) {
      const level = await LevelStorage.open(directory);
      await level.apply([op]);
      await level.close();
      await memory.apply([op]);
      const reopened = await LevelStorage.open(directory);
      const loaded = await reopened.load();
      await reopened.close();
      expect(loaded.recovery).toEqual((await memory.load()).recovery);
      expect(fingerprint(loaded)).toBe(fingerprint(await memory.load()));
    }
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

  describe('damage is detected, never skipped', () => {
    /** A database holding the first steps of a simulated run, closed again. */
    async function filledDatabase(): Promise<string> {
      const steps: PersistOp[][] = [];
      runSimulation({
        seed: 7,
        replicas: 4,
        byzantine: 0,
        faults: false,
        requestsPerClient: 6,
        onPersist: (replica, ops) => {
          if (replica === 1) steps.push([...ops]);
        },
      });
      const directory = await mkdtemp(join(tmpdir(), 'pbft-level-'));
      directories.push(directory);
      const storage = await LevelStorage.open(directory);
      for (const ops of steps) await storage.apply(ops);
      await storage.close();
      return directory;
    }

    it('a write-ahead log with flipped bytes, whose records LevelDB would drop, is refused naming the file', async () => {
      const directory = await filledDatabase();
      const logName = (await readdir(directory)).find((name) => name.endsWith('.log'))!;
      const path = join(directory, logName);
      const bytes = await readFile(path);
      expect(bytes.length).toBeGreaterThan(4096);
      const middle = Math.floor(bytes.length / 2);
      for (let i = middle; i < middle + 64; i++) bytes[i] = bytes[i]! ^ 0xff;
      await writeFile(path, bytes);
      const opening = LevelStorage.open(directory);
      await expect(opening).rejects.toBeInstanceOf(StorageDamagedError);
      await expect(opening).rejects.toThrow(
        new RegExp(`^${path}: the storage is damaged: LevelDB dropped records`),
      );
      // LevelDB deleted the damaged log while recovering; the verdict stays for every later open.
      expect(await readdir(directory)).not.toContain(logName);
      await expect(LevelStorage.open(directory)).rejects.toThrow(
        new RegExp(`^${path}: the storage is damaged: LevelDB dropped records`),
      );
    });

    it('a record whose bytes changed is refused by its checksum, naming the record', async () => {
      const directory = await filledDatabase();
      const { ClassicLevel } = await import('classic-level');
      const raw = new ClassicLevel<string, Uint8Array>(directory, {
        keyEncoding: 'utf8',
        valueEncoding: 'view',
      });
      const [key, value] = (await raw.iterator({ gte: 'log/', lt: 'log/~', limit: 1 }).all())[0]!;
      const garbled = value.slice();
      garbled[garbled.length - 1] = garbled[garbled.length - 1]! ^ 0x01;
      await raw.put(key, garbled);
      await raw.close();
      const storage = await LevelStorage.open(directory);
      try {
        await expect(storage.load()).rejects.toBeInstanceOf(StorageDamagedError);
        await expect(storage.load()).rejects.toThrow(`record ${key} fails its checksum`);
      } finally {
        await storage.close();
      }
    });

    it('a write-ahead log cut short, which LevelDB reads as a torn last write without a word, is refused by the witness of synced writes', async () => {
      const directory = await filledDatabase();
      const logName = (await readdir(directory)).find((name) => name.endsWith('.log'))!;
      const path = join(directory, logName);
      const { size } = await stat(path);
      await truncate(path, Math.floor(size / 2));
      const opening = LevelStorage.open(directory);
      await expect(opening).rejects.toBeInstanceOf(StorageDamagedError);
      await expect(opening).rejects.toThrow(
        new RegExp(
          `^${directory}: the storage is damaged: it holds \\d+ writes but ${witnessPathOf(directory)} saw \\d+ synced`,
        ),
      );
    });

    it('an older copy of the data restored over it is refused; losing only unsynced writes is not damage', async () => {
      const steps = [
        [{ type: 'view', view: 1, viewChangeInProgress: false }],
        [{ type: 'view', view: 2, viewChangeInProgress: false }],
      ] as const satisfies PersistOp[][];
      const directory = await mkdtemp(join(tmpdir(), 'pbft-level-'));
      directories.push(directory);
      const copy = `${directory}-copy`;
      directories.push(copy);
      let storage = await LevelStorage.open(directory);
      await storage.apply(steps[0]);
      await storage.close();
      await cp(directory, copy, { recursive: true });
      // An unsynced write lost (as a power cut may lose it): the witness never saw it.
      storage = await LevelStorage.open(directory);
      await storage.apply(steps[1], { sync: false });
      await storage.close();
      await rm(directory, { recursive: true });
      await cp(copy, directory, { recursive: true });
      storage = await LevelStorage.open(directory);
      expect((await storage.load()).view).toBe(1);
      // A synced write lost: the copy is older than what the replica acknowledged.
      await storage.apply(steps[1]);
      await storage.close();
      await rm(directory, { recursive: true });
      await cp(copy, directory, { recursive: true });
      await expect(LevelStorage.open(directory)).rejects.toThrow(/holds 1 writes but .* saw 2 synced/);
    });

    it('a garbled witness is damage too; an empty one (a first write cut by a power cut) is none', async () => {
      const directory = await filledDatabase();
      await writeFile(witnessPathOf(directory), new Uint8Array(0));
      const storage = await LevelStorage.open(directory);
      await storage.close();
      await writeFile(witnessPathOf(directory), new Uint8Array(12).fill(7));
      await expect(LevelStorage.open(directory)).rejects.toThrow(/its witness of synced writes is garbled/);
    });

    it('an undamaged database opens and loads after the same steps', async () => {
      const directory = await filledDatabase();
      const storage = await LevelStorage.open(directory);
      try {
        expect((await storage.load()).log.length).toBeGreaterThan(0);
      } finally {
        await storage.close();
      }
    });
  });
});
