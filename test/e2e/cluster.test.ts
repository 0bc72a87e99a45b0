/**
 * Real processes on loopback: a 4-replica cluster created and run through the `pbft` CLI, driven by
 * the client library. Transfers continue while a backup and then the primary are killed with
 * SIGKILL; afterwards every replica has executed the same sequence and holds, account by account,
 * exactly the balances the acknowledged transfers imply (a transfer lost or executed twice shows).
 * A replica that missed more than two checkpoint intervals catches up by state transfer and then
 * holds the same balances.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PbftClient, type ReplicaStatusReport } from '../../src/client/client.ts';
import { readKeyFile } from '../../src/crypto/index.ts';
import { readClusterConfig } from '../../src/node/cluster-config.ts';
import { basePortFor, PBFT_BIN, startReplicaProcess, type TestReplicaProcess } from './helpers.ts';

const run = promisify(execFile);
const BASE_PORT = basePortFor('test/e2e/cluster.test.ts');
const ACCOUNTS = 4;
const TRANSFERS_PER_ACCOUNT = 50;
const CHECKPOINT_INTERVAL = 8;

let dir = '';
const replicas = new Map<number, TestReplicaProcess>();

function startReplica(id: number): void {
  replicas.set(id, startReplicaProcess(dir, id, ['--log-level', 'info']));
}

function logOf(id: number): string {
  return replicas.get(id)?.log() ?? '';
}

async function kill9(id: number): Promise<void> {
  await replicas.get(id)!.kill9();
  replicas.delete(id);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const seen = lastStatuses.map((r) =>
        r.reachable
          ? `${r.id}:v${r.view}${r.viewChangeInProgress ? '*' : ''}/e${r.lastExecuted}/h${r.stableCheckpoint}/p${r.peersConnected}`
          : `${r.id}:down`,
      );
      throw new Error(`timed out waiting for ${what}; last status ${seen.join(' ')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Each replica's own answer (not a vote) for the balance of every address: replica → address → balance. */
async function balancesByReplica(
  observer: PbftClient,
  addresses: readonly string[],
): Promise<Map<number, Map<string, number>>> {
  const byReplica = new Map<number, Map<string, number>>();
  for (const address of addresses) {
    for (const [replica, answer] of await observer.balanceByReplica(address, 10_000)) {
      if (!byReplica.has(replica)) byReplica.set(replica, new Map());
      byReplica.get(replica)!.set(address, answer.balance);
    }
  }
  return byReplica;
}

function expectedByReplica(expected: Map<string, number>): Map<number, Map<string, number>> {
  return new Map([0, 1, 2, 3].map((replica) => [replica, new Map(expected)]));
}

let lastStatuses: ReplicaStatusReport[] = [];
async function statuses(client: PbftClient): Promise<ReplicaStatusReport[]> {
  lastStatuses = await client.status(2_000);
  return lastStatuses;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-e2e-'));
  const { stdout } = await run(process.execPath, [
    PBFT_BIN,
    'testnet',
    'init',
    '--dir',
    dir,
    '--replicas',
    '4',
    '--base-port',
    String(BASE_PORT),
    '--accounts',
    String(ACCOUNTS),
    '--force',
    '--json',
  ]);
  const init = JSON.parse(stdout) as { replicas: unknown[]; accounts: unknown[] };
  expect(init.replicas).toHaveLength(4);
  expect(init.accounts).toHaveLength(ACCOUNTS);
  // Small checkpoint intervals so that the catch-up test crosses several of them quickly.
  const clusterFile = join(dir, 'cluster.json');
  const cluster = JSON.parse(await readFile(clusterFile, 'utf8'));
  cluster.protocol.checkpointInterval = CHECKPOINT_INTERVAL;
  cluster.protocol.watermarkWindow = 4 * CHECKPOINT_INTERVAL;
  cluster.protocol.viewChangeTimeoutTicks = 100;
  await writeFile(clusterFile, `${JSON.stringify(cluster, null, 2)}\n`);
  for (let id = 0; id < 4; id++) startReplica(id);
});

afterAll(async () => {
  await Promise.all([...replicas.values()].map((replica) => replica.kill9()));
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('a 4-replica cluster of real processes', () => {
  it('keeps agreeing through kill -9 of a backup and of the primary, and a lagging replica catches up by state transfer', async () => {
    const cluster = await readClusterConfig(join(dir, 'cluster.json'));
    const observer = await waitFor('the cluster', async () => PbftClient.connect({ cluster }));
    try {
      await waitFor('all replicas reachable', async () => {
        const reports = await statuses(observer);
        return reports.every((report) => report.reachable && report.peersConnected === 3)
          ? reports
          : undefined;
      });

      const accounts = await Promise.all(
        ['alice', 'bob', 'carol', 'dave'].slice(0, ACCOUNTS).map(async (name) => {
          const file = join(dir, 'accounts', `${name}.json`);
          const key = readKeyFile(file);
          const client = await PbftClient.connect({
            cluster,
            key,
            counterFile: join(dir, `${name}.counter`),
            timeoutMs: 60_000,
          });
          return { name, key, client };
        }),
      );
      // What every replica must hold: the genesis balances moved by exactly the acknowledged
      // transfers. Each account sends its own amounts (1, 2, 4, 8, plus 0-6), so that every balance
      // ends somewhere different.
      const expected = new Map<string, number>();
      for (const account of accounts) {
        expected.set(account.key.publicKeyHex, (await observer.balance(account.key.publicKeyHex)).balance);
      }
      const acknowledged = (from: string, to: string, amount: number): void => {
        expected.set(from, expected.get(from)! - amount);
        expected.set(to, expected.get(to)! + amount);
      };

      let completed = 0;
      const load = Promise.all(
        accounts.map(async (account, index) => {
          const to = accounts[(index + 1) % accounts.length]!.key.publicKeyHex;
          for (let i = 0; i < TRANSFERS_PER_ACCOUNT; i++) {
            const amount = 2 ** index + (i % 7);
            await account.client.transfer(to, amount);
            acknowledged(account.key.publicKeyHex, to, amount);
            completed++;
          }
        }),
      );
      // Under load: kill -9 a backup and restart it; then kill -9 the primary.
      await waitFor('some progress', async () => (completed >= 20 ? true : undefined));
      await kill9(2);
      await waitFor('progress without replica 2', async () => (completed >= 60 ? true : undefined), 60_000);
      startReplica(2);
      await waitFor('more progress', async () => (completed >= 100 ? true : undefined), 60_000);
      const before = await statuses(observer);
      const primary = before.find((report) => report.reachable)!.primary!;
      await kill9(primary);
      await load;
      expect(completed).toBe(ACCOUNTS * TRANSFERS_PER_ACCOUNT);
      const afterKill = await statuses(observer);
      expect(Math.max(...afterKill.filter((r) => r.reachable).map((r) => r.view!))).toBeGreaterThan(
        before[0]!.view ?? 0,
      );
      startReplica(primary);

      // Every replica converges on the same last executed sequence number, and each holds exactly
      // the expected balance of every account.
      const converged = await waitFor(
        'replicas to converge',
        async () => {
          const reports = await statuses(observer);
          const executed = new Set(reports.map((report) => report.lastExecuted));
          return reports.every((report) => report.reachable) && executed.size === 1 ? reports : undefined;
        },
        60_000,
      );
      expect(converged[0]!.lastExecuted).toBeGreaterThan(0);
      expect(new Set(expected.values()).size, 'every account ends with a balance of its own').toBe(ACCOUNTS);
      expect(await balancesByReplica(observer, [...expected.keys()])).toEqual(expectedByReplica(expected));

      // A replica down for more than two checkpoint intervals catches up by state transfer.
      await kill9(3);
      const [first, second] = [accounts[0]!.key.publicKeyHex, accounts[1]!.key.publicKeyHex];
      for (let i = 0; i < 3 * CHECKPOINT_INTERVAL + 2; i++) {
        await accounts[0]!.client.transfer(second, 1);
        acknowledged(first, second, 1);
      }
      startReplica(3);
      await accounts[1]!.client.transfer(first, 3);
      acknowledged(second, first, 3);
      await waitFor(
        'replica 3 to catch up',
        async () => {
          const reports = await statuses(observer);
          const executed = new Set(reports.map((report) => report.lastExecuted));
          return reports.every((report) => report.reachable) && executed.size === 1 ? true : undefined;
        },
        60_000,
      );
      // Its log says how it caught up (logs arrive asynchronously over the pipe).
      await waitFor(
        "the state transfer in replica 3's log",
        async () => (logOf(3).includes('"msg":"state-transferred"') ? true : undefined),
        10_000,
      );
      // And the state it fetched is the right one: every replica, replica 3 included.
      expect(await balancesByReplica(observer, [...expected.keys()])).toEqual(expectedByReplica(expected));
      for (const account of accounts) await account.client.close();
    } finally {
      await observer.close();
    }
  }, 240_000);
});
