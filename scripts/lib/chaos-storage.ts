/**
 * The chaos runner's storage faults (class `storage`): what is done to a stopped (kill -9)
 * replica's LevelDB directory before it restarts, and what its log says about it afterwards.
 *
 * The three damages are the ones an operator meets: bytes flipped in the middle of the write-ahead
 * log (a bad sector; LevelDB's recovery drops the records it cannot read and says so in its LOG),
 * the write-ahead log cut to half its length (a copy or a restore that stopped short), and the data
 * directory gone (a wiped disk). The replica must find each (src/node/replica-storage.ts), set the
 * data aside, start empty and recover before it votes.
 */
import { readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Random } from '../../src/util/random.ts';

export const STORAGE_DAMAGES = ['flip', 'truncate', 'delete'] as const;
export type StorageDamage = (typeof STORAGE_DAMAGES)[number];

/** Bytes flipped in the middle of the write-ahead log (the e2e scenario's 64). */
export const FLIPPED_BYTES = 64;
/**
 * A write-ahead log shorter than this holds too little to damage in its middle (LevelDB had just
 * started a fresh one): the data directory is deleted instead, and the report says so.
 */
export const WAL_BYTES_MIN = 4 * FLIPPED_BYTES;

export interface DamageReport {
  /** What was drawn, and what was done (`delete` when the log was too short for the drawn damage). */
  drawn: StorageDamage;
  done: StorageDamage;
  /** The file or directory damaged, relative to the replica's home. */
  path: string;
  /** For flip and truncate: the log's length before, and the bytes flipped or cut off. */
  walBytes?: number;
  bytes?: number;
}

/** The replica's write-ahead log: the largest `*.log` in data/ (LevelDB keeps one, or two while it rotates). */
async function writeAheadLog(dataDir: string): Promise<{ name: string; bytes: number } | null> {
  const names = (await readdir(dataDir).catch(() => [] as string[])).filter((name) => name.endsWith('.log'));
  let largest: { name: string; bytes: number } | null = null;
  for (const name of names) {
    const { size } = await stat(join(dataDir, name));
    if (largest === null || size > largest.bytes) largest = { name, bytes: size };
  }
  return largest;
}

/** Damage the storage of the stopped replica whose home is `home`, as `damage` says. */
export async function damageStorage(home: string, damage: StorageDamage): Promise<DamageReport> {
  const dataDir = join(home, 'data');
  const wal = damage === 'delete' ? null : await writeAheadLog(dataDir);
  if (damage === 'delete' || wal === null || wal.bytes < WAL_BYTES_MIN) {
    await rm(dataDir, { recursive: true, force: true });
    return { drawn: damage, done: 'delete', path: 'data' };
  }
  const file = join(dataDir, wal.name);
  const path = join('data', wal.name);
  if (damage === 'truncate') {
    const kept = wal.bytes >> 1;
    await truncate(file, kept);
    return { drawn: damage, done: damage, path, walBytes: wal.bytes, bytes: wal.bytes - kept };
  }
  const bytes = await readFile(file);
  const middle = bytes.length >> 1;
  for (let i = middle; i < middle + FLIPPED_BYTES; i++) bytes[i]! ^= 0xff;
  await writeFile(file, bytes);
  return { drawn: damage, done: damage, path, walBytes: wal.bytes, bytes: FLIPPED_BYTES };
}

export function drawDamage(random: Random): StorageDamage {
  return random.pick(STORAGE_DAMAGES);
}

export function describeDamage(report: DamageReport): string {
  switch (report.done) {
    case 'flip':
      return `${report.bytes} bytes flipped in the middle of ${report.path} (${report.walBytes} bytes)`;
    case 'truncate':
      return `${report.path} cut from ${report.walBytes} to ${report.walBytes! - report.bytes!} bytes`;
    case 'delete':
      return report.drawn === 'delete'
        ? 'data/ deleted'
        : `data/ deleted (its write-ahead log had fewer than ${WAL_BYTES_MIN} bytes to ${report.drawn})`;
  }
}

/**
 * What a restarted replica's log (its JSON lines since the restart) says about its storage: why it
 * recovers (the one line openReplicaStorage writes: damaged, missing or requested; null: it trusted
 * its storage), and whether its core started and finished recovering (the `recovery-started` and
 * `recovered` events, logged at info). The log, not /metrics: in network namespaces the metrics
 * port is the namespace's loopback, out of the runner's reach.
 */
export interface RecoveryReading {
  reason: 'damaged' | 'missing' | 'requested' | null;
  /** The line that says so, for the report. */
  line: string | null;
  started: boolean;
  recovered: boolean;
}

export function readRecovery(log: string): RecoveryReading {
  const reading: RecoveryReading = { reason: null, line: null, started: false, recovered: false };
  for (const text of log.split('\n')) {
    if (!text.startsWith('{')) continue;
    let message: unknown;
    try {
      message = (JSON.parse(text) as { msg?: unknown }).msg;
    } catch {
      continue;
    }
    if (typeof message !== 'string') continue;
    if (message === 'recovery-started') reading.started = true;
    else if (message === 'recovered') reading.recovered = true;
    else if (reading.reason === null) {
      const reason = /--recover\b.*votes on nothing/.test(message)
        ? 'requested'
        : /is missing although this replica ran before/.test(message)
          ? 'missing'
          : /moved it to .*recovering/.test(message)
            ? 'damaged'
            : null;
      if (reason !== null) {
        reading.reason = reason;
        reading.line = message;
      }
    }
  }
  return reading;
}

/**
 * What the runner concludes once it has watched the restarted replica: the problem, if any. The
 * damage must be found (a reason counted) and the recovery end (the gauge back to 0) within the bound.
 */
export function storageProblems(
  label: string,
  replica: number,
  report: DamageReport,
  outcome: { reading: RecoveryReading; recoveredAfterMs: number | null; boundMs: number },
): string[] {
  const { reading, recoveredAfterMs, boundMs } = outcome;
  const what = describeDamage(report);
  if (reading.reason === null || !reading.started)
    return [
      `${label}: replica ${replica} restarted from damaged storage without noticing (${what}): it may have forgotten what it signed`,
    ];
  if (recoveredAfterMs === null)
    return [`${label}: replica ${replica} was still recovering ${boundMs} ms after its restart (${what})`];
  return [];
}
