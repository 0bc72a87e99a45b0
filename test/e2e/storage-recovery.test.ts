/**
 * The storage-fault scenario of issue "Storage faults", on real processes with the shipped protocol
 * settings: a 4-replica testnet, 20 transfers, kill -9 of replica 3, 64 bytes flipped in the middle
 * of its LevelDB write-ahead log, 5 more transfers, restart with `pbft node`. The replica must say
 * so in one line naming the file, count it, set the data aside, vote on nothing while it recovers
 * (its PREPARE, COMMIT, CHECKPOINT and VIEW-CHANGE counters stay at 0), catch up even though the
 * cluster is idle, and then vote again.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { PbftClient } from '../../src/client/client.ts';
import { readKeyFile } from '../../src/crypto/index.ts';
import { readClusterConfig } from '../../src/node/cluster-config.ts';
import {
  basePortFor,
  counterByLabel,
  logEntries,
  PBFT_BIN,
  scrapeMetrics,
  startReplicaProcess,
  type TestReplicaProcess,
} from './helpers.ts';

const run = promisify(execFile);
const BASE_PORT = basePortFor('test/e2e/storage-recovery.test.ts');
const DAMAGED_BYTES = 64;
/** The shipped view-change timeout (200 ticks of 10 ms): the stall is watched for twice as long. */
const STALL_OBSERVED_MS = 2_000;
const VOTE_TYPES = ['pre-prepare', 'prepare', 'commit', 'checkpoint', 'view-change', 'new-view'];

let dir = '';
const replicas = new Map<number, TestReplicaProcess>();

afterAll(async () => {
  await Promise.all([...replicas.values()].map((replica) => replica.kill9()));
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** One gauge's value in /metrics text. */
function gauge(metrics: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics);
  if (match === null) throw new Error(`no ${name} in /metrics`);
  return Number(match[1]);
}

it('a replica whose log was damaged says so, recovers without voting, catches up in an idle cluster and votes again', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-storage-'));
  await run(process.execPath, [
    PBFT_BIN,
    'testnet',
    'init',
    '--dir',
    dir,
    '--base-port',
    String(BASE_PORT),
    '--json',
  ]);
  for (let id = 0; id < 4; id++) replicas.set(id, startReplicaProcess(dir, id, ['--log-level', 'info']));
  const cluster = await readClusterConfig(join(dir, 'cluster.json'));
  const metricsPort = (id: number) => cluster.replicas[id]!.metricsPort;
  const bob = readKeyFile(join(dir, 'accounts', 'bob.json')).publicKeyHex;
  const alice = await waitFor('the cluster', async () =>
    PbftClient.connect({
      cluster,
      key: readKeyFile(join(dir, 'accounts', 'alice.json')),
      counterFile: join(dir, 'alice.counter'),
    }),
  );
  try {
    for (let i = 0; i < 20; i++) await alice.transfer(bob, 1);
    await replicas.get(3)!.kill9();
    replicas.delete(3);

    const data = join(dir, 'replica-3', 'data');
    const walName = (await readdir(data)).find((name) => name.endsWith('.log'))!;
    const wal = await readFile(join(data, walName));
    expect(wal.length).toBeGreaterThan(4 * DAMAGED_BYTES);
    const middle = wal.length >> 1;
    for (let i = middle; i < middle + DAMAGED_BYTES; i++) wal[i]! ^= 0xff;
    await writeFile(join(data, walName), wal);

    for (let i = 0; i < 5; i++) await alice.transfer(bob, 1);
    // Replica 2 goes down too, so that the recovery cannot finish before it has been watched: a
    // recovering replica needs every other replica's report at n = 4, and it is no voter, so the
    // cluster (0 and 1 voting) cannot commit either; a replica 3 that voted would make it commit.
    await replicas.get(2)!.kill9();
    replicas.delete(2);
    const restarted = startReplicaProcess(dir, 3, ['--log-level', 'info']);
    replicas.set(3, restarted);

    // One line naming the damaged file, and the metric.
    const damaged = await waitFor('the damage line', async () =>
      restarted.log().includes(walName) ? restarted.log() : undefined,
    );
    const line = damaged.split('\n').find((entry) => entry.includes(walName))!;
    expect(line).toMatch(/the storage is damaged/);
    expect(line).toMatch(/recovering/);
    const first = await waitFor('its metrics', async () => scrapeMetrics(metricsPort(3)));
    expect(counterByLabel(first, 'pbft_storage_recoveries_total', 'reason').get('damaged')).toBe(1);
    expect(await readdir(join(dir, 'replica-3'))).toEqual(
      expect.arrayContaining([expect.stringMatching(/^data\.untrusted-/)]),
    );

    // A transfer now finds two voters only: it waits, through the view-change timeout and more,
    // and replica 3 signs nothing (no PREPARE for the primary's PRE-PREPARE, no VIEW-CHANGE).
    let committed = false;
    const waiting = alice.transfer(bob, 1).then((receipt) => {
      committed = true;
      return receipt;
    });
    await new Promise((resolve) => setTimeout(resolve, 2 * STALL_OBSERVED_MS));
    const stalled = await scrapeMetrics(metricsPort(3));
    expect(committed).toBe(false);
    expect(gauge(stalled, 'pbft_recovering')).toBe(1);
    const sentWhileRecovering = counterByLabel(stalled, 'pbft_messages_sent_total', 'type');
    for (const type of VOTE_TYPES) expect(sentWhileRecovering.get(type), `${type} sent`).toBe(0);
    expect(sentWhileRecovering.get('fetch-state')).toBeGreaterThan(0);

    // Replica 2 returns: the transfer commits, and replica 3 recovers with the cluster idle.
    replicas.set(2, startReplicaProcess(dir, 2, ['--log-level', 'info']));
    await expect(waiting).resolves.toMatchObject({ status: 'ok' });
    const recoveredMetrics = await waitFor('recovery', async () => {
      const metrics = await scrapeMetrics(metricsPort(3));
      return gauge(metrics, 'pbft_recovering') === 0 ? metrics : undefined;
    });
    expect(logEntries(restarted.log(), 'recovered')).toHaveLength(1);
    expect(gauge(recoveredMetrics, 'pbft_last_executed_seq')).toBeGreaterThanOrEqual(26);

    // A full voter again: its PREPAREs count towards the next transfers.
    for (let i = 0; i < 3; i++) await alice.transfer(bob, 1);
    await waitFor('its votes', async () => {
      const sent = counterByLabel(await scrapeMetrics(metricsPort(3)), 'pbft_messages_sent_total', 'type');
      return (sent.get('prepare') ?? 0) > 0 && (sent.get('commit') ?? 0) > 0 ? true : undefined;
    });
    const executed = await Promise.all(
      [0, 1, 2, 3].map(async (id) => gauge(await scrapeMetrics(metricsPort(id)), 'pbft_last_executed_seq')),
    );
    await waitFor('no lag', async () => {
      const now = await Promise.all(
        [0, 1, 2, 3].map(async (id) => gauge(await scrapeMetrics(metricsPort(id)), 'pbft_last_executed_seq')),
      );
      return new Set(now).size === 1 ? now : undefined;
    });
    expect(executed[3]).toBeGreaterThan(0);
  } finally {
    await alice.close();
  }
}, 180_000);
