/** The chaos runner's storage faults: what each damage does to a data directory, and how the log is read. */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  damageStorage,
  FLIPPED_BYTES,
  readRecovery,
  storageProblems,
  WAL_BYTES_MIN,
} from '../../../scripts/lib/chaos-storage.ts';

let home = '';
afterEach(async () => {
  if (home !== '') await rm(home, { recursive: true, force: true });
});

/** A replica home whose data/ holds a write-ahead log of `walBytes` bytes (0xaa) and a table. */
async function replicaHome(walBytes: number): Promise<string> {
  home = await mkdtemp(join(tmpdir(), 'pbft-chaos-storage-'));
  await mkdir(join(home, 'data'));
  await writeFile(join(home, 'data', '000003.log'), new Uint8Array(walBytes).fill(0xaa));
  await writeFile(join(home, 'data', '000002.log'), new Uint8Array(8).fill(0xaa));
  await writeFile(join(home, 'data', '000005.ldb'), new Uint8Array(100));
  return home;
}

const line = (msg: string): string => JSON.stringify({ level: 30, replica: 3, msg });

describe('chaos storage faults', () => {
  it('flip: 64 bytes in the middle of the largest write-ahead log, nothing else', async () => {
    const dir = await replicaHome(1_000);
    const report = await damageStorage(dir, 'flip');
    expect(report).toEqual({
      drawn: 'flip',
      done: 'flip',
      path: 'data/000003.log',
      walBytes: 1_000,
      bytes: 64,
    });
    const wal = await readFile(join(dir, 'data', '000003.log'));
    expect(wal.length).toBe(1_000);
    const flipped = [...wal.entries()].filter(([, byte]) => byte !== 0xaa).map(([index]) => index);
    expect(flipped).toEqual(Array.from({ length: FLIPPED_BYTES }, (_, i) => 500 + i));
    expect((await readFile(join(dir, 'data', '000002.log'))).every((byte) => byte === 0xaa)).toBe(true);
  });

  it('truncate: the write-ahead log cut to half; delete: data/ gone; a log too short to damage: data/ gone', async () => {
    let dir = await replicaHome(1_000);
    expect(await damageStorage(dir, 'truncate')).toMatchObject({ done: 'truncate', bytes: 500 });
    expect((await readFile(join(dir, 'data', '000003.log'))).length).toBe(500);
    await rm(dir, { recursive: true });

    dir = await replicaHome(1_000);
    expect(await damageStorage(dir, 'delete')).toEqual({ drawn: 'delete', done: 'delete', path: 'data' });
    expect(await readdir(dir)).toEqual([]);
    await rm(dir, { recursive: true });

    dir = await replicaHome(WAL_BYTES_MIN - 1);
    expect(await damageStorage(dir, 'flip')).toEqual({ drawn: 'flip', done: 'delete', path: 'data' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('reads from the log why the replica recovers and whether it has; a replica that noticed nothing is a problem', () => {
    const report = {
      drawn: 'truncate',
      done: 'truncate',
      path: 'data/000003.log',
      walBytes: 10,
      bytes: 5,
    } as const;
    const damaged = readRecovery(
      [
        'not json',
        line(
          'storage damaged: data/000003.log; moved it to data.untrusted-1 and starting empty, recovering: this replica votes on nothing until the cluster has passed where it may have voted',
        ),
        line('recovery-started'),
        line('recovered'),
      ].join('\n'),
    );
    expect(damaged).toMatchObject({ reason: 'damaged', started: true, recovered: true });
    const missing = readRecovery(
      `${line('/x/data is missing although this replica ran before (/x/storage-created exists): it may have forgotten what it signed; recovering')}\n${line('recovery-started')}`,
    );
    expect(missing).toMatchObject({ reason: 'missing', started: true, recovered: false });
    expect(
      storageProblems('fault #0 (storage)', 3, report, {
        reading: missing,
        recoveredAfterMs: null,
        boundMs: 60_000,
      }),
    ).toEqual([expect.stringMatching(/still recovering 60000 ms after its restart/)]);
    const unnoticed = readRecovery(line('replica state loaded'));
    expect(unnoticed).toEqual({ reason: null, line: null, started: false, recovered: false });
    expect(
      storageProblems('fault #0 (storage)', 3, report, {
        reading: unnoticed,
        recoveredAfterMs: null,
        boundMs: 60_000,
      }),
    ).toEqual([expect.stringMatching(/restarted from damaged storage without noticing/)]);
    expect(
      storageProblems('fault #0 (storage)', 3, report, {
        reading: damaged,
        recoveredAfterMs: 1_200,
        boundMs: 60_000,
      }),
    ).toEqual([]);
  });
});
