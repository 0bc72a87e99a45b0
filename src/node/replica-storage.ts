/**
 * Opening a replica's storage, and telling whether it can be trusted. A replica whose storage was
 * found damaged, whose data directory is gone although it ran before, or whose operator says the
 * data is not its latest (`pbft node --recover`, after restoring an old copy) may have signed
 * messages it no longer remembers: its data is moved aside (kept for inspection, never reused) and
 * it starts empty in recovering mode, voting on nothing until it has recovered (src/protocol/replica.ts,
 * `Recovery`).
 */
import { access, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DurableState } from '../protocol/durable.ts';
import { LevelStorage, StorageDamagedError, witnessPathOf } from '../storage/level.ts';
import type { RecoveryReason } from './metrics.ts';

const DATA_DIRECTORY = 'data';
/**
 * Written in the home folder once the replica has storage: a later start without a data directory
 * is then a replica that lost its memory, not a new one. (A home folder rebuilt from the key alone
 * has no marker: start it with --recover.)
 */
export const STORAGE_MARKER_FILE = 'storage-created';
/** Untrusted data directories are renamed `data.untrusted-<time>`, never deleted. */
const SET_ASIDE_PREFIX = `${DATA_DIRECTORY}.untrusted-`;

export interface OpenedStorage {
  storage: LevelStorage;
  durable: DurableState;
  /** Why the replica must recover before it votes (null: its storage is trusted). */
  recovery: RecoveryReason | null;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * Rename the data directory and its witness (src/storage/level.ts) out of the way, so that the
 * fresh storage starts with neither; returns where the data went (null: there was none).
 */
async function setAside(home: string): Promise<string | null> {
  const data = join(home, DATA_DIRECTORY);
  const aside = join(home, `${SET_ASIDE_PREFIX}${new Date().toISOString().replaceAll(':', '-')}`);
  if (await exists(witnessPathOf(data))) await rename(witnessPathOf(data), witnessPathOf(aside));
  if (!(await exists(data))) return null;
  await rename(data, aside);
  return aside;
}

async function openAndLoad(directory: string): Promise<{ storage: LevelStorage; durable: DurableState }> {
  const storage = await LevelStorage.open(directory);
  try {
    return { storage, durable: await storage.load() };
  } catch (error) {
    await storage.close();
    throw error;
  }
}

export async function openReplicaStorage(
  home: string,
  options: { recover: boolean; logger: Logger },
): Promise<OpenedStorage> {
  const directory = join(home, DATA_DIRECTORY);
  const marker = join(home, STORAGE_MARKER_FILE);
  const { logger } = options;
  let recovery: RecoveryReason | null = null;
  if (options.recover) {
    recovery = 'requested';
    const aside = await setAside(home);
    logger.warn(
      { setAside: aside },
      'recovering on request (--recover): this replica votes on nothing until the cluster has passed where it may have voted',
    );
  } else if (!(await exists(directory)) && (await exists(marker))) {
    recovery = 'missing';
    await setAside(home);
    logger.error(
      { directory },
      `${directory} is missing although this replica ran before (${marker} exists): it may have forgotten what it signed; recovering: it votes on nothing until the cluster has passed where it may have voted`,
    );
  }
  let opened: { storage: LevelStorage; durable: DurableState };
  try {
    opened = await openAndLoad(directory);
  } catch (error) {
    if (!(error instanceof StorageDamagedError)) throw error;
    const aside = await setAside(home);
    recovery = 'damaged';
    logger.error(
      { where: error.where, setAside: aside },
      `${error.message}; moved it to ${aside} and starting empty, recovering: this replica votes on nothing until the cluster has passed where it may have voted`,
    );
    opened = await openAndLoad(directory);
  }
  if (!(await exists(marker))) {
    await writeFile(
      marker,
      'This replica has storage in data/. If data/ goes missing, the replica recovers before it votes again.\n',
    );
  }
  return { ...opened, recovery };
}
