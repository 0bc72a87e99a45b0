/**
 * `pbft testnet init` and `pbft testnet start`: a local multi-replica cluster on loopback, each
 * replica a child process with its own home folder (key, LevelDB data, log).
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PbftClient, type ReplicaStatusReport } from '../client/client.ts';
import type { ClusterConfig } from '../node/cluster-config.ts';
import {
  checkAccountCount,
  checkReplicaCount,
  type WrittenAccount,
  type WrittenReplica,
  writeClusterFiles,
} from './cluster-files.ts';
import { CliError, EXIT_CONFIG, EXIT_USAGE } from './exit-codes.ts';
import { spawnInOwnGroup } from './process-groups.ts';

export { ACCOUNT_BALANCE, ACCOUNT_NAMES, accountName, TESTNET_ACCOUNTS_MAX } from './cluster-files.ts';

/** Replicas that do not exit this long after SIGTERM are killed. */
const STOP_GRACE_MS = 10_000;
const STATUS_INTERVAL_MS = 1_000;
const STATUS_INTERVAL_NON_TTY_MS = 10_000;
/** Stopping does not wait longer than this for the status probe to close. */
const PROBE_CLOSE_MAX_MS = 2_000;
const BIN = fileURLToPath(new URL('../../bin/pbft.js', import.meta.url));

export interface InitOptions {
  dir: string;
  replicas: number;
  basePort: number;
  accounts: number;
  force: boolean;
}

export interface InitResult {
  dir: string;
  clusterFile: string;
  replicas: WrittenReplica[];
  accounts: WrittenAccount[];
}

export async function initTestnet(options: InitOptions): Promise<InitResult> {
  const { replicas: n, basePort } = options;
  checkReplicaCount(n, '--replicas');
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + 2 * n > 65_535) {
    throw new CliError(EXIT_USAGE, `--base-port must leave room for ${2 * n} ports between 1024 and 65535`);
  }
  checkAccountCount(options.accounts);
  const dir = resolve(options.dir);
  const clusterFile = join(dir, 'cluster.json');
  if (existsSync(clusterFile)) {
    if (!options.force)
      throw new CliError(EXIT_CONFIG, `${clusterFile} already exists (use --force to replace the testnet)`);
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true });
  const written = await writeClusterFiles({
    name: 'pbft-testnet',
    testnet: true,
    replicas: Array.from({ length: n }, (_, id) => ({
      home: join(dir, `replica-${id}`),
      multiaddr: `/ip4/127.0.0.1/tcp/${basePort + id}`,
      metricsPort: basePort + n + id,
    })),
    accounts: options.accounts,
    accountsDir: join(dir, 'accounts'),
    configDirs: [dir],
  });
  return { dir, clusterFile, ...written };
}

export interface StartOptions {
  dir: string;
  /** Replica index → extra arguments for that replica's `pbft node` command line. */
  extraArgs?: Map<number, string[]>;
  out: (line: string) => void;
}

/** Start every replica as a child process; resolves when they have all been stopped (Ctrl-C). */
export async function startTestnet(cluster: ClusterConfig, options: StartOptions): Promise<void> {
  const dir = resolve(options.dir);
  const children = new Map<number, ChildProcess>();
  let stopping = false;
  for (const replica of cluster.replicas) {
    const home = join(dir, `replica-${replica.id}`);
    const logPath = join(home, 'replica.log');
    const log = createWriteStream(logPath, { flags: 'a' });
    const args = [
      BIN,
      'node',
      '--home',
      home,
      '--cluster',
      cluster.path,
      ...(options.extraArgs?.get(replica.id) ?? []),
    ];
    // Its own process group, told to exit with this process and killed if this process dies.
    const child = spawnInOwnGroup(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    child.on('exit', (code, signal) => {
      children.delete(replica.id);
      if (!stopping)
        options.out(`replica ${replica.id} exited (${signal ?? `code ${code}`}); see ${logPath}`);
    });
    children.set(replica.id, child);
  }
  options.out(
    `started ${cluster.replicas.length} replicas (f = ${cluster.f}); logs: ${join(dir, 'replica-*', 'replica.log')}`,
  );
  options.out('press Ctrl-C to stop them');

  // The replicas are still starting: connect the status probe lazily, retrying until one answers.
  let probe: PbftClient | null = null;
  const interactive = process.stdout.isTTY === true;
  let printedLines = 0;
  const showStatus = async (): Promise<void> => {
    probe ??= await PbftClient.connect({ cluster }).catch(() => null);
    const reports = probe === null ? [] : await probe.status(STATUS_INTERVAL_MS).catch(() => []);
    if (stopping) return;
    const lines = reports.map(formatStatusLine);
    if (interactive && printedLines > 0) process.stdout.write(`\x1b[${printedLines}A`);
    for (const line of lines) options.out(interactive ? `\x1b[2K${line}` : line);
    printedLines = lines.length;
  };
  const statusTimer = setInterval(
    () => void showStatus(),
    interactive ? STATUS_INTERVAL_MS : STATUS_INTERVAL_NON_TTY_MS,
  );

  await new Promise<void>((resolveStopped) => {
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      clearInterval(statusTimer);
      options.out('stopping replicas …');
      // Close the status probe while its replicas still answer, then stop them.
      const probeClosed = (probe as PbftClient | null)?.close() ?? Promise.resolve();
      void Promise.race([
        probeClosed,
        new Promise((resolve) => setTimeout(resolve, PROBE_CLOSE_MAX_MS)),
      ]).then(() => {
        for (const child of children.values()) child.kill('SIGTERM');
      });
      const killer = setTimeout(() => {
        for (const child of children.values()) child.kill('SIGKILL');
      }, STOP_GRACE_MS);
      const waitForAll = setInterval(() => {
        if (children.size > 0) return;
        clearInterval(waitForAll);
        clearTimeout(killer);
        resolveStopped();
      }, 50);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  options.out('all replicas stopped');
}

export function formatStatusLine(report: ReplicaStatusReport): string {
  if (!report.reachable) return `replica ${report.id}  unreachable`;
  const role = report.primary === report.id ? 'primary' : 'backup ';
  const phase = report.viewChangeInProgress ? ' (view change)' : '';
  return (
    `replica ${report.id}  ${role} view ${report.view}${phase}  executed ${report.lastExecuted}` +
    `${report.lag ? ` (lag ${report.lag})` : ''}  stable checkpoint ${report.stableCheckpoint}  peers ${report.peersConnected}`
  );
}
