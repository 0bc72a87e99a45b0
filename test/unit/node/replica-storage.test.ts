/**
 * openReplicaStorage: a replica's storage is trusted, or set aside (data/ and its witness) with one
 * line saying why, and the replica told to recover: damaged (here: a write-ahead log cut short),
 * missing although the replica ran before, or on request.
 */
import { mkdtemp, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openReplicaStorage } from '../../../src/node/replica-storage.ts';
import type { PersistOp } from '../../../src/protocol/durable.ts';

const homes: string[] = [];
afterEach(async () => {
  for (const home of homes.splice(0)) await rm(home, { recursive: true, force: true });
});

function capturedLogger(): { logger: pino.Logger; lines: () => string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((line) => line !== ''),
      );
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines: () => lines };
}

/** A home whose storage holds `batches` synced view records, closed again. */
async function usedHome(batches: number): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'pbft-home-'));
  homes.push(home);
  const { storage } = await openReplicaStorage(home, { recover: false, logger: capturedLogger().logger });
  for (let view = 1; view <= batches; view++) {
    const ops: PersistOp[] = [{ type: 'view', view, viewChangeInProgress: false }];
    await storage.apply(ops);
  }
  await storage.close();
  return home;
}

describe('openReplicaStorage', () => {
  it('trusts storage that is intact', async () => {
    const home = await usedHome(3);
    const { storage, durable, recovery } = await openReplicaStorage(home, {
      recover: false,
      logger: capturedLogger().logger,
    });
    await storage.close();
    expect(recovery).toBeNull();
    expect(durable.view).toBe(3);
  });

  it('a write-ahead log cut short: one line naming the witness, data/ and its witness set aside, recovering from empty storage', async () => {
    const home = await usedHome(400);
    const data = join(home, 'data');
    const log = (await readdir(data)).find((name) => name.endsWith('.log'))!;
    await truncate(join(data, log), Math.floor((await stat(join(data, log))).size / 2));
    const { logger, lines } = capturedLogger();
    const { storage, durable, recovery } = await openReplicaStorage(home, { recover: false, logger });
    await storage.close();
    expect(recovery).toBe('damaged');
    expect(durable.view).toBe(0);
    expect(lines()).toHaveLength(1);
    expect(JSON.parse(lines()[0]!).msg).toMatch(
      /the storage is damaged: it holds \d+ writes but .*data\.witness saw 400 synced.*moved it to .*data\.untrusted-.*recovering/,
    );
    const names = await readdir(home);
    expect(names.filter((name) => name.startsWith('data.untrusted-')).sort()).toEqual([
      expect.stringMatching(/^data\.untrusted-[^.]+\.\d+Z$/),
      expect.stringMatching(/^data\.untrusted-.*Z\.witness$/),
    ]);
    // The fresh storage is trusted at its next start: its own witness starts from nothing.
    const again = await openReplicaStorage(home, { recover: false, logger: capturedLogger().logger });
    await again.storage.close();
    expect(again.recovery).toBeNull();
  });

  it('data/ missing although the replica ran before: recovering, with the old witness set aside', async () => {
    const home = await usedHome(2);
    await rm(join(home, 'data'), { recursive: true });
    const { logger, lines } = capturedLogger();
    const { storage, recovery } = await openReplicaStorage(home, { recover: false, logger });
    await storage.close();
    expect(recovery).toBe('missing');
    expect(lines().map((line) => JSON.parse(line).msg)).toEqual([
      expect.stringMatching(/is missing although this replica ran before/),
    ]);
  });
});
