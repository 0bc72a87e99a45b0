/**
 * Real processes on loopback: a 4-replica cluster created and run through the `pbft` CLI, driven by
 * the client library. Transfers continue while a backup and then the primary are killed with
 * SIGKILL; afterwards every live replica has executed the same sequence and holds the same
 * balances, and supply is unchanged. A replica that missed more than two checkpoint intervals
 * catches up by state transfer.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PbftClient, type ReplicaStatusReport } from '../../src/client/client.ts';
import { readKeyFile } from '../../src/crypto/index.ts';
import { readClusterConfig } from '../../src/node/cluster-config.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'pbft.js');
/** Ports well away from the default testnet (9000) so a running testnet does not collide. */
const BASE_PORT = 19_400 + (process.pid % 50) * 20;
const ACCOUNTS = 4;
const TRANSFERS_PER_ACCOUNT = 50;
const CHECKPOINT_INTERVAL = 8;

let dir = '';
const replicas = new Map<number, ChildProcess>();

function startReplica(id: number): void {
  const child = spawn(
    process.execPath,
    [BIN, 'node', '--home', join(dir, `replica-${id}`), '--log-level', 'info'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  (child as ChildProcess & { output: () => string }).output = () => log;
  replicas.set(id, child);
}

function logOf(id: number): string {
  return (replicas.get(id) as (ChildProcess & { output: () => string }) | undefined)?.output() ?? '';
}

async function kill9(id: number): Promise<void> {
  const child = replicas.get(id)!;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
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

let lastStatuses: ReplicaStatusReport[] = [];
async function statuses(client: PbftClient): Promise<ReplicaStatusReport[]> {
  lastStatuses = await client.status(2_000);
  return lastStatuses;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-e2e-'));
  const { stdout } = await run(process.execPath, [
    BIN,
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
  for (const child of replicas.values()) child.kill('SIGKILL');
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
      const supply = (await Promise.all(accounts.map((a) => observer.balance(a.key.publicKeyHex)))).reduce(
        (sum, b) => sum + b.balance,
        0,
      );

      let completed = 0;
      const load = Promise.all(
        accounts.map(async (account, index) => {
          const to = accounts[(index + 1) % accounts.length]!.key.publicKeyHex;
          for (let i = 0; i < TRANSFERS_PER_ACCOUNT; i++) {
            await account.client.transfer(to, 1 + (i % 7));
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

      // Every live replica converges on the same last executed sequence number and balances.
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
      const balances = await Promise.all(accounts.map((a) => observer.balance(a.key.publicKeyHex)));
      expect(balances.every((answer) => answer.via === 'query')).toBe(true);
      expect(balances.reduce((sum, b) => sum + b.balance, 0)).toBe(supply);

      // A replica down for more than two checkpoint intervals catches up by state transfer.
      await kill9(3);
      for (let i = 0; i < 3 * CHECKPOINT_INTERVAL + 2; i++) {
        await accounts[0]!.client.transfer(accounts[1]!.key.publicKeyHex, 1);
      }
      startReplica(3);
      await accounts[1]!.client.transfer(accounts[0]!.key.publicKeyHex, 1);
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
      for (const account of accounts) await account.client.close();
    } finally {
      await observer.close();
    }
  }, 240_000);
});
