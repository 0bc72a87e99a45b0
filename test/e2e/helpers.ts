/** Shared by the real-process tests: ports, replica processes that die with the run, metrics. */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { spawnInOwnGroup } from '../../src/cli/process-groups.ts';
import { PbftClient, readKeyFile } from '../../src/index.ts';

// ---------------------------------------------------------------------------------------------
// Ports.

/**
 * The loopback TCP ports of every test file that starts a cluster, in one place so that they stay
 * disjoint: files run in parallel, and a port two clusters share makes one of them fail. A cluster
 * of n replicas takes 2n ports from its base port (replica i: base + i; its metrics: base + n + i).
 * Every range is below the ephemeral ports (32768-60999 on Linux) and clear of the defaults:
 * `pbft testnet init` 9000-9007, `npm run bench` 23000-23019, `npm run chaos` 25000-26799.
 * Within its range a file's clusters are shifted by the test process's pid, so that two test runs
 * on one machine rarely meet. The test transport and in-process unit tests use port 0 (the OS's).
 */
export const TEST_PORT_RANGES = {
  'test/e2e/strangers.test.ts': { first: 17_000, last: 17_999 },
  'test/package/package.test.ts': { first: 18_000, last: 18_999 },
  'test/e2e/library.test.ts': { first: 19_000, last: 19_999 },
  'test/e2e/cluster.test.ts': { first: 20_000, last: 20_999 },
  'test/e2e/byzantine.test.ts': { first: 21_000, last: 21_999 },
  'test/e2e/byzantine-behaviours.test.ts': { first: 22_000, last: 22_999 },
  // 23000-23019 is `npm run bench`'s default.
  'test/e2e/lying-to-clients.test.ts': { first: 23_200, last: 23_999 },
  'test/e2e/verify-workers.test.ts': { first: 24_000, last: 24_999 },
  'test/e2e/storage-recovery.test.ts': { first: 16_000, last: 16_999 },
  'test/unit/cli/process-groups.test.ts': { first: 26_800, last: 26_999 },
  'test/bench/bench.test.ts': { first: 27_000, last: 27_999 },
  'test/chaos/chaos.test.ts': { first: 28_000, last: 31_999 },
} as const;
export type PortRangeOwner = keyof typeof TEST_PORT_RANGES;

const EPHEMERAL_PORT_FIRST = 32_768;

/** Throws unless every range is well formed, below the ephemeral ports and apart from the others. */
export function checkPortRanges(ranges: Record<string, { first: number; last: number }>): void {
  const sorted = Object.entries(ranges).sort(([, a], [, b]) => a.first - b.first);
  for (const [index, [owner, range]] of sorted.entries()) {
    if (range.first > range.last || range.last >= EPHEMERAL_PORT_FIRST)
      throw new Error(`test ports of ${owner}: ${range.first}-${range.last} is not a range below 32768`);
    const next = sorted[index + 1];
    if (next !== undefined && next[1].first <= range.last)
      throw new Error(`test ports of ${owner} and ${next[0]} overlap`);
  }
}
checkPortRanges(TEST_PORT_RANGES);

/**
 * The base port of cluster `cluster` (0 … clusters-1) of a test file that starts `clusters`
 * clusters of `replicas` replicas each.
 */
export function basePortFor(
  owner: PortRangeOwner,
  {
    clusters = 1,
    replicas = 4,
    cluster = 0,
  }: { clusters?: number; replicas?: number; cluster?: number } = {},
): number {
  const range = TEST_PORT_RANGES[owner];
  const portsPerCluster = 2 * replicas;
  const portsPerRun = clusters * portsPerCluster;
  const runs = Math.floor((range.last - range.first + 1) / portsPerRun);
  if (runs < 1 || cluster < 0 || cluster >= clusters)
    throw new Error(`${owner}: ${clusters} clusters of ${replicas} replicas do not fit its port range`);
  return range.first + (process.pid % runs) * portsPerRun + cluster * portsPerCluster;
}

// ---------------------------------------------------------------------------------------------
// Replica processes.

export const PBFT_BIN = join(import.meta.dirname, '..', '..', 'bin', 'pbft.js');

export interface TestReplicaProcess {
  readonly id: number;
  readonly child: ChildProcess;
  /** Everything the replica wrote to stdout and stderr so far (its JSON log lines). */
  log(): string;
  /** Not exited and not killed by a signal. */
  alive(): boolean;
  /**
   * kill -9 of its process group, resolved once it has exited. The group, because on a Node older
   * than 22.18 bin/pbft.js re-runs itself with the bundled Node: the replica is then the
   * launcher's child, and a SIGKILL of the launcher alone would leave it running.
   */
  kill9(): Promise<void>;
}

/**
 * `pbft node` for replica `id` of the testnet in `dir`, as a child process in its own process group
 * that dies with this test process: killed when it exits or is interrupted, and exiting by itself
 * once this process is gone (PBFT_EXIT_WITH_PARENT), even after a SIGKILL of the test run.
 */
export function startReplicaProcess(
  dir: string,
  id: number,
  extraArgs: readonly string[] = [],
): TestReplicaProcess {
  const child = spawnInOwnGroup(
    process.execPath,
    [PBFT_BIN, 'node', '--home', join(dir, `replica-${id}`), ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    id,
    child,
    log: () => output,
    alive,
    kill9: async () => {
      if (!alive()) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    },
  };
}

/** The parsed JSON lines of a replica log whose `msg` is `message`. */
export function logEntries(log: string, message: string): Array<Record<string, unknown>> {
  return log
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((entry) => entry['msg'] === message);
}

// ---------------------------------------------------------------------------------------------
// Clients and metrics.

/** Attempts, 200 ms apart, to reach a cluster whose replica processes are still starting. */
const CONNECT_ATTEMPTS = 50;

/** A client for `account` (a file in DIR/accounts) once the testnet in `dir` answers, or null. */
export async function connectWhenUp(dir: string, account: string): Promise<PbftClient | null> {
  for (let attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
    const client = await PbftClient.connect({
      cluster: join(dir, 'cluster.json'),
      key: readKeyFile(join(dir, 'accounts', `${account}.json`)),
      counterFile: join(dir, `${account}.counter`),
      timeoutMs: 30_000,
    }).catch(() => null);
    if (client !== null) return client;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return null;
}

/** One replica's /metrics, as text. */
export async function scrapeMetrics(metricsPort: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  return await response.text();
}

/** The values of a labelled counter (e.g. pbft_invalid_messages_total by reason) in /metrics text. */
export function counterByLabel(metrics: string, name: string, label: string): Map<string, number> {
  const values = new Map<string, number>();
  const pattern = new RegExp(`^${name}\\{(?:[^}]*,)?${label}="([^"]*)"[^}]*\\} (\\S+)$`, 'gm');
  for (const match of metrics.matchAll(pattern)) {
    values.set(match[1]!, (values.get(match[1]!) ?? 0) + Number(match[2]));
  }
  return values;
}
