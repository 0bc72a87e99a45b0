/**
 * LevelDB storage (classic-level, which ships prebuilt binaries). One key per record, so a step
 * writes only what changed; every step's operations go in one atomic batch, written with
 * `sync: true` unless the caller says otherwise, so they are on disk before the runtime sends the
 * messages the step signed. An unsynced batch reaches the operating system at once (a killed
 * process loses nothing); only a power cut can lose it, and the runtime leaves unsynced only what
 * it may lose (`mustSyncBeforeSending` in src/protocol/durable.ts).
 *
 * Keys (sequence numbers and views zero-padded so that key order is numeric order):
 *   meta/view               { view, viewChangeInProgress }
 *   meta/own-view-change    the replica's latest VIEW-CHANGE
 *   meta/new-view           the NEW-VIEW of the current view
 *   meta/recovery           { untilSeq } while the replica recovers from storage it could not trust
 *   checkpoint              the stable checkpoint with its proof and snapshot
 *   prepared/<seq>          highest-view prepared certificate per sequence number, with its batch
 *   log/<seq>/<view>/<type>/<replica>   PRE-PREPAREs (with batch), PREPAREs, COMMITs
 *
 * Damage is detected, never skipped. LevelDB, as classic-level builds it, neither verifies block
 * checksums on reads nor fails on a damaged write-ahead log: it drops the damaged records and says
 * so only in its own LOG file. So every value is sealed with a format byte and a CRC-32 of its
 * bytes (checked on load), and after opening, the LOG LevelDB wrote for this open is read for the
 * records it dropped. Either refuses the storage with a StorageDamagedError naming what is damaged:
 * a replica that forgot what it signed must not vote as if it remembered (the node then moves the
 * data aside and recovers: src/node/replica-storage.ts).
 *
 * Neither finds a write-ahead log that lost its tail: LevelDB reads a log that ends mid-record as
 * the torn last write of a crash, without a word, and the records left cannot tell that more were
 * there. So every batch also writes `meta/writes`, the number of batches this storage has written,
 * and after each synced batch that number goes to a witness file beside the data directory
 * (`<directory>.witness`, 12 bytes: the count and its CRC-32, overwritten in place, not synced:
 * a killed process loses nothing the OS has, and after a power cut the witness can only be behind
 * the synced log, never ahead). An open that finds fewer writes in the database than its witness
 * saw synced is refused: the log lost writes it had acknowledged (cut short, a disk that did not
 * keep what it said it kept, an older copy of the data restored).
 */
import { closeSync, constants as fsConstants, openSync, writeSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ClassicLevel } from 'classic-level';
import { CodecError, decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { readBoolean, readMap, readUint } from '../codec/schema.ts';
import {
  type DurableState,
  emptyDurableState,
  type LogMessage,
  logMessageReplica,
  logMessageSeq,
  logMessageView,
  type PersistOp,
} from '../protocol/durable.ts';
import {
  decodeCheckpointRecord,
  decodeMessage,
  decodePreparedSlot,
  encodeCheckpointRecord,
  encodeMessage,
  encodePreparedSlot,
} from '../protocol/messages.ts';
import type { ApplyOptions, ReplicaStorage } from './storage.ts';

const NUMBER_KEY_DIGITS = 16;
const KEY_VIEW = 'meta/view';
const KEY_OWN_VIEW_CHANGE = 'meta/own-view-change';
const KEY_NEW_VIEW = 'meta/new-view';
const KEY_CHECKPOINT = 'checkpoint';
const KEY_RECOVERY = 'meta/recovery';
const KEY_WRITES = 'meta/writes';
const PREFIX_PREPARED = 'prepared/';
const PREFIX_LOG = 'log/';
/** Upper bound for range scans over a prefix: '0' < ... < '9' < '~' in ASCII. */
const PREFIX_END = '~';

type Mutation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

/** First byte of every sealed value: the format, so an older pbft's unsealed record is told apart. */
const SEALED_FORMAT = 0x01;
/** Format byte plus a big-endian CRC-32 of the payload. */
const SEAL_HEADER_BYTES = 5;
/**
 * Lines LevelDB writes to its LOG when it drops or cannot read records while recovering
 * ("… (ignoring error) … dropping 519 bytes; Corruption: missing start of fragmented record").
 */
const LEVELDB_DAMAGE_PATTERN = /corruption|dropping|ignoring error/i;
/** Kept in the data directory once damage was found (LevelDB itself forgets it at the next open). */
const DAMAGE_VERDICT_FILE = 'DAMAGED';
/** The witness file of a data directory: `<directory>.witness` beside it. */
const WITNESS_SUFFIX = '.witness';
/** A big-endian uint64 count of synced writes, then a big-endian CRC-32 of those 8 bytes. */
const WITNESS_BYTES = 12;

/** Where the witness of the data directory `directory` is kept. */
export function witnessPathOf(directory: string): string {
  return `${directory.replace(/\/+$/, '')}${WITNESS_SUFFIX}`;
}

function encodeWitness(writes: number): Uint8Array {
  const bytes = new Uint8Array(WITNESS_BYTES);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(writes));
  view.setUint32(8, crc32(bytes.subarray(0, 8)));
  return bytes;
}

/**
 * The synced writes a witness file vouches for: null when there is none (a storage that never
 * synced a batch, or one older than witnesses; an empty file is a first write cut by a power
 * cut). A witness of another length or with a wrong checksum is damage of its own.
 */
async function readWitness(path: string): Promise<number | null> {
  const bytes = await readFile(path).catch(() => null);
  if (bytes === null || bytes.length === 0) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length !== WITNESS_BYTES || crc32(bytes.subarray(0, 8)) !== view.getUint32(8))
    throw new StorageDamagedError(
      path,
      `${path}: the storage is damaged: its witness of synced writes is garbled (${bytes.length} bytes); this replica may have forgotten what it signed`,
    );
  return Number(view.getBigUint64(0));
}

function seal(payload: Uint8Array): Uint8Array {
  const sealed = new Uint8Array(SEAL_HEADER_BYTES + payload.length);
  sealed[0] = SEALED_FORMAT;
  new DataView(sealed.buffer).setUint32(1, crc32(payload));
  sealed.set(payload, SEAL_HEADER_BYTES);
  return sealed;
}

/** The payload of a sealed value, or a StorageDamagedError naming the record. */
function unsealValue(directory: string, key: string, value: Uint8Array): Uint8Array {
  if (value.length < SEAL_HEADER_BYTES || value[0] !== SEALED_FORMAT) {
    throw new CodecError('UNKNOWN_TYPE', `${key}: not a sealed record`);
  }
  const payload = value.subarray(SEAL_HEADER_BYTES);
  const expected = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(1);
  if (crc32(payload) !== expected) {
    throw new StorageDamagedError(
      `${directory} (${key})`,
      `${directory}: the storage is damaged: record ${key} fails its checksum; this replica may have forgotten what it signed`,
    );
  }
  return payload;
}

function padded(value: number): string {
  return value.toString().padStart(NUMBER_KEY_DIGITS, '0');
}

function logKey(message: LogMessage): string {
  return `${PREFIX_LOG}${padded(logMessageSeq(message))}/${padded(logMessageView(message))}/${message.type}/${logMessageReplica(message)}`;
}

function viewOfLogKey(key: string): number {
  return Number(key.split('/')[2]);
}

export class StorageError extends Error {
  override name = 'StorageError';
}

/** The storage lost or garbled records: its contents cannot be trusted (not merely unreadable). */
export class StorageDamagedError extends StorageError {
  override name = 'StorageDamagedError';
  /** The file or record found damaged. */
  readonly where: string;
  constructor(where: string, message: string) {
    super(message);
    this.where = where;
  }
}

export class LevelStorage implements ReplicaStorage {
  private readonly db: ClassicLevel<string, Uint8Array>;

  private readonly directory: string;

  /** Batches written so far (`meta/writes`), and the witness file's descriptor. */
  private writes: number;
  private readonly witnessFd: number;
  /** The highest count the witness holds, so that it never goes back. */
  private witnessed: number;
  private witnessClosed = false;

  private constructor(
    db: ClassicLevel<string, Uint8Array>,
    directory: string,
    writes: number,
    witnessFd: number,
  ) {
    this.db = db;
    this.directory = directory;
    this.writes = writes;
    this.witnessFd = witnessFd;
    this.witnessed = writes;
  }

  /** Open (creating if needed) the database in `directory`. */
  static async open(directory: string): Promise<LevelStorage> {
    const db = new ClassicLevel<string, Uint8Array>(directory, {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
    });
    try {
      await db.open();
    } catch (error) {
      const cause = (error as { cause?: Error }).cause?.message ?? (error as Error).message;
      throw new StorageError(`cannot open the database in ${directory}: ${cause}`);
    }
    let writes: number;
    try {
      await LevelStorage.checkRecoveryLog(directory);
      writes = await LevelStorage.checkWitness(db, directory);
    } catch (error) {
      await db.close();
      throw error;
    }
    const witnessFd = openSync(witnessPathOf(directory), fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
    return new LevelStorage(db, directory, writes, witnessFd);
  }

  /** The writes the database holds, or a StorageDamagedError if its witness saw more synced. */
  private static async checkWitness(
    db: ClassicLevel<string, Uint8Array>,
    directory: string,
  ): Promise<number> {
    const stored = await db.get(KEY_WRITES);
    const writes =
      stored === undefined
        ? 0
        : readUint(decodeCanonical(unsealValue(directory, KEY_WRITES, stored)), KEY_WRITES);
    const path = witnessPathOf(directory);
    const witnessed = await readWitness(path);
    if (witnessed !== null && writes < witnessed)
      throw new StorageDamagedError(
        path,
        `${directory}: the storage is damaged: it holds ${writes} writes but ${path} saw ${witnessed} synced; its write-ahead log lost writes it had acknowledged (cut short, a disk that did not keep them, or an older copy restored); this replica may have forgotten what it signed`,
      );
    return writes;
  }

  /**
   * LevelDB starts a fresh LOG at every open (the previous one becomes LOG.old), so what it holds
   * now is this open's recovery: any record dropped there is damage.
   */
  private static async checkRecoveryLog(directory: string): Promise<void> {
    // LevelDB deletes a damaged write-ahead log once it has recovered what it could, so the next
    // open would look clean: a verdict once reached is kept beside the database until the data
    // is re-created.
    const verdictPath = join(directory, DAMAGE_VERDICT_FILE);
    const verdict = await readFile(verdictPath, 'utf8').catch(() => null);
    if (verdict !== null) throw new StorageDamagedError(verdictPath, verdict.trim());
    const text = await readFile(join(directory, 'LOG'), 'utf8').catch(() => null);
    if (text === null) return; // no LOG (another LevelDB build): the seals still catch garbled records
    const damaged = text.split('\n').find((line) => LEVELDB_DAMAGE_PATTERN.test(line));
    if (damaged === undefined) return;
    // "<date> <thread> (ignoring error) <dir>/000003.log: dropping 519 bytes; Corruption: …"
    const detail = damaged.split(' ').slice(2).join(' ').trim();
    const where = /(\S+\.log):/.exec(detail)?.[1] ?? join(directory, 'LOG');
    const message = `${where}: the storage is damaged: LevelDB dropped records while opening it (${detail}); this replica may have forgotten what it signed`;
    await writeFile(verdictPath, `${message}\n`);
    throw new StorageDamagedError(where, message);
  }

  private unseal(key: string, value: Uint8Array): Uint8Array {
    return unsealValue(this.directory, key, value);
  }

  /**
   * Everything persisted, decoded strictly. A record that does not decode is named in one line:
   * most often it was written by an older version of pbft (prepared certificates once carried their
   * batches), and the replica's data must be re-created.
   */
  async load(): Promise<DurableState> {
    try {
      return await this.loadRecords();
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      throw new StorageError(
        `${this.directory}: a stored record does not decode (${error.message}); it may have been written by an older version of pbft, or damaged: re-create this replica's data (for a testnet: pbft testnet init --force)`,
      );
    }
  }

  private async loadRecords(): Promise<DurableState> {
    const state = emptyDurableState();
    const singleKeys = [KEY_VIEW, KEY_OWN_VIEW_CHANGE, KEY_NEW_VIEW, KEY_CHECKPOINT, KEY_RECOVERY];
    const [view, ownViewChange, newView, checkpoint, recovery] = (await this.db.getMany(singleKeys)).map(
      (value, index) => (value === undefined ? undefined : this.unseal(singleKeys[index]!, value)),
    );
    if (view !== undefined) {
      const fields = readMap(decodeCanonical(view), KEY_VIEW, ['view', 'viewChangeInProgress']);
      state.view = readUint(fields['view'], 'view');
      state.viewChangeInProgress = readBoolean(fields['viewChangeInProgress'], 'viewChangeInProgress');
    }
    if (ownViewChange !== undefined) {
      const message = decodeMessage(ownViewChange);
      if (message.type !== 'view-change')
        throw new StorageError(`${KEY_OWN_VIEW_CHANGE} holds a ${message.type}`);
      state.ownViewChange = message.viewChange;
    }
    if (newView !== undefined) {
      const message = decodeMessage(newView);
      if (message.type !== 'new-view') throw new StorageError(`${KEY_NEW_VIEW} holds a ${message.type}`);
      state.newView = message.newView;
    }
    if (checkpoint !== undefined) state.stableCheckpoint = decodeCheckpointRecord(checkpoint);
    if (recovery !== undefined) {
      const fields = readMap(decodeCanonical(recovery), KEY_RECOVERY, ['bounded', 'untilSeq']);
      const untilSeq = readUint(fields['untilSeq'], 'untilSeq');
      state.recovery = { untilSeq: readBoolean(fields['bounded'], 'bounded') ? untilSeq : null };
    }
    for await (const [key, value] of this.db.iterator({
      gte: PREFIX_PREPARED,
      lt: PREFIX_PREPARED + PREFIX_END,
    })) {
      state.prepared.push(decodePreparedSlot(this.unseal(key, value)));
    }
    for await (const [key, value] of this.db.iterator({ gte: PREFIX_LOG, lt: PREFIX_LOG + PREFIX_END })) {
      const message = decodeMessage(this.unseal(key, value));
      if (message.type !== 'pre-prepare' && message.type !== 'prepare' && message.type !== 'commit') {
        throw new StorageError(`the log holds a ${message.type}`);
      }
      state.log.push(message);
    }
    return state;
  }

  async apply(ops: readonly PersistOp[], options: ApplyOptions = {}): Promise<void> {
    if (ops.length === 0) return;
    const mutations: Mutation[] = [];
    /** Keys written earlier in this same batch, so pruning sees them as well as what is on disk. */
    const logKeysInBatch: string[] = [];
    const preparedKeysInBatch: string[] = [];
    for (const op of ops) {
      switch (op.type) {
        case 'view':
          mutations.push({
            type: 'put',
            key: KEY_VIEW,
            value: encodeCanonical({ view: op.view, viewChangeInProgress: op.viewChangeInProgress }),
          });
          for (const key of [
            ...(await this.keysBetween(PREFIX_LOG, PREFIX_LOG + PREFIX_END)),
            ...logKeysInBatch,
          ]) {
            if (viewOfLogKey(key) < op.view) mutations.push({ type: 'del', key });
          }
          break;
        case 'log': {
          const key = logKey(op.message);
          logKeysInBatch.push(key);
          mutations.push({ type: 'put', key, value: encodeMessage(op.message) });
          break;
        }
        case 'prepared': {
          const key = PREFIX_PREPARED + padded(op.slot.certificate.prePrepare.body.seq);
          preparedKeysInBatch.push(key);
          mutations.push({ type: 'put', key, value: encodePreparedSlot(op.slot) });
          break;
        }
        case 'own-view-change':
          mutations.push({
            type: 'put',
            key: KEY_OWN_VIEW_CHANGE,
            value: encodeMessage({ type: 'view-change', viewChange: op.viewChange }),
          });
          break;
        case 'new-view':
          mutations.push({
            type: 'put',
            key: KEY_NEW_VIEW,
            value: encodeMessage({ type: 'new-view', newView: op.newView }),
          });
          break;
        case 'recovery':
          mutations.push(
            op.recovery === null
              ? { type: 'del', key: KEY_RECOVERY }
              : {
                  type: 'put',
                  key: KEY_RECOVERY,
                  value: encodeCanonical({
                    bounded: op.recovery.untilSeq !== null,
                    untilSeq: op.recovery.untilSeq ?? 0,
                  }),
                },
          );
          break;
        case 'stable-checkpoint': {
          mutations.push({ type: 'put', key: KEY_CHECKPOINT, value: encodeCheckpointRecord(op.checkpoint) });
          const above = padded(op.checkpoint.seq + 1);
          const stale = [
            ...(await this.keysBetween(PREFIX_LOG, PREFIX_LOG + above)),
            ...logKeysInBatch.filter((key) => key < PREFIX_LOG + above),
            ...(await this.keysBetween(PREFIX_PREPARED, PREFIX_PREPARED + above)),
            ...preparedKeysInBatch.filter((key) => key < PREFIX_PREPARED + above),
          ];
          for (const key of stale) mutations.push({ type: 'del', key });
          break;
        }
      }
    }
    const writes = ++this.writes;
    mutations.push({ type: 'put', key: KEY_WRITES, value: encodeCanonical(writes) });
    const sealed = mutations.map((mutation) =>
      mutation.type === 'put' ? { ...mutation, value: seal(mutation.value) } : mutation,
    );
    const sync = options.sync ?? true;
    await this.db.batch(sealed, { sync });
    // A synced batch makes every batch before it durable too (LevelDB's log is written in order).
    if (sync && writes > this.witnessed) {
      this.witnessed = writes;
      writeSync(this.witnessFd, encodeWitness(writes), 0, WITNESS_BYTES, 0);
    }
  }

  private async keysBetween(gte: string, lt: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of this.db.keys({ gte, lt })) keys.push(key);
    return keys;
  }

  async close(): Promise<void> {
    await this.db.close();
    if (this.witnessClosed) return;
    this.witnessClosed = true;
    closeSync(this.witnessFd);
  }
}
