/**
 * A cluster of real `pbft node` processes for the chaos runner and the benchmark: created with the
 * same code as `pbft testnet init`, one child process per replica, with the signals a test harness
 * needs (SIGKILL, SIGSTOP/SIGCONT, SIGTERM) and per-process CPU and memory readings from /proc.
 *
 * Optionally each replica runs in its own network namespace (see netns.ts): then it listens on its
 * namespace's address instead of 127.0.0.1, and the harness can cut or throttle its link.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitWithParent, spawnInOwnGroup } from '../../src/cli/process-groups.ts';
import { initTestnet } from '../../src/cli/testnet.ts';
import { PbftClient, type ReplicaStatusReport } from '../../src/client/client.ts';
import { type KeyPair, readKeyFile } from '../../src/crypto/index.ts';
import { type ClusterConfig, readClusterConfig } from '../../src/node/cluster-config.ts';

const BIN = fileURLToPath(new URL('../../bin/pbft.js', import.meta.url));
/** A replica that ignores SIGTERM this long is killed. */
const STOP_GRACE_MS = 10_000;
/** Linux reports process CPU time in clock ticks of 1/100 s (USER_HZ). */
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcessClusterOptions {
  dir: string;
  replicas: number;
  basePort: number;
  accounts: number;
  /** Protocol settings written into cluster.json over the testnet defaults. */
  protocol?: Record<string, number>;
  runtime?: Record<string, number | string>;
  /** The listen address of replica `id`, when replicas live in separate network namespaces. */
  hostOf?: (id: number) => string;
  /** The command prefix that runs a process inside replica `id`'s namespace (e.g. ip netns exec). */
  launcherOf?: (id: number) => string[];
}

export interface ProcessCpuSample {
  /** User + system CPU time, in seconds. */
  cpuSeconds: number;
  /** Peak resident set size so far (VmHWM), in MiB. */
  rssPeakMb: number;
  rssMb: number;
}

export class ReplicaProcess {
  readonly id: number;
  readonly home: string;
  private child: ChildProcess | null = null;
  private exitWaiters: Array<() => void> = [];
  private readonly launcher: string[];
  /** True while SIGSTOPped. */
  paused = false;
  /** Exits that the harness did not cause (a crash): what the log path says to read. */
  readonly unexpectedExits: string[] = [];
  private expectingExit = false;

  constructor(id: number, home: string, launcher: string[]) {
    this.id = id;
    this.home = home;
    this.launcher = launcher;
  }

  get running(): boolean {
    return this.child !== null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get logPath(): string {
    return join(this.home, 'replica.log');
  }

  start(extraArgs: string[] = []): void {
    if (this.child !== null) throw new Error(`replica ${this.id} is already running`);
    const log = createWriteStream(this.logPath, { flags: 'a' });
    const [command, ...prefix] =
      this.launcher.length > 0 ? [...this.launcher, process.execPath] : [process.execPath];
    // Its own process group, told to exit with this process and killed when this process exits or
    // is interrupted: an interrupted run leaves no replica behind (src/cli/process-groups.ts).
    const child = spawnInOwnGroup(command!, [...prefix, BIN, 'node', '--home', this.home, ...extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.expectingExit = false;
    this.paused = false;
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (!this.expectingExit) {
        this.unexpectedExits.push(
          `replica ${this.id} exited (${signal ?? `code ${code}`}); see ${this.logPath}`,
        );
      }
      for (const waiter of this.exitWaiters.splice(0)) waiter();
    });
    this.child = child;
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.expectingExit = true;
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    if (this.paused) child.kill('SIGCONT');
    child.kill(signal);
    this.paused = false;
    await exited;
  }

  /** kill -9: no chance to flush or say goodbye. */
  async kill9(): Promise<void> {
    await this.signalAndWait('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after a grace period. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.signalAndWait('SIGTERM');
    clearTimeout(killer);
  }

  /** A stop-the-world pause: the process keeps its sockets but runs no code until resumed. */
  pause(): void {
    if (this.child === null || this.paused) return;
    this.child.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (this.child === null || !this.paused) return;
    this.child.kill('SIGCONT');
    this.paused = false;
  }

  /** CPU time and memory of the replica process. */
  sample(): ProcessCpuSample | undefined {
    // `ip netns exec` execs the command, so the child's pid is the replica's pid either way.
    const pid = this.child?.pid;
    if (pid === undefined) return undefined;
    try {
      // Fields after the parenthesised command name: utime and stime are fields 14 and 15.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (name: string): number =>
        Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
      return { cpuSeconds, rssPeakMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
    } catch {
      return undefined; // the process exited between the check and the read
    }
  }
}

export interface Account {
  name: string;
  key: KeyPair;
  counterFile: string;
}

let watchingParent = false;

export class ProcessCluster {
  readonly dir: string;
  readonly config: ClusterConfig;
  readonly replicas: ReplicaProcess[];
  readonly accounts: Account[];

  private constructor(dir: string, config: ClusterConfig, replicas: ReplicaProcess[], accounts: Account[]) {
    this.dir = dir;
    this.config = config;
    this.replicas = replicas;
    this.accounts = accounts;
  }

  static async create(options: ProcessClusterOptions): Promise<ProcessCluster> {
    // Started by a test run (PBFT_EXIT_WITH_PARENT): this runner stops, cluster and all, once that
    // run is gone, through its own SIGTERM handling.
    if (!watchingParent) watchingParent = exitWithParent();
    const init = await initTestnet({
      dir: options.dir,
      replicas: options.replicas,
      basePort: options.basePort,
      accounts: options.accounts,
      force: true,
    });
    const clusterFile = init.clusterFile;
    const json = JSON.parse(await readFile(clusterFile, 'utf8')) as {
      protocol: Record<string, number>;
      runtime: Record<string, number | string>;
      replicas: Array<{ id: number; multiaddrs: string[] }>;
    };
    Object.assign(json.protocol, options.protocol ?? {});
    Object.assign(json.runtime, options.runtime ?? {});
    if (options.hostOf !== undefined) {
      for (const replica of json.replicas) {
        replica.multiaddrs = [`/ip4/${options.hostOf(replica.id)}/tcp/${options.basePort + replica.id}`];
      }
    }
    await writeFile(clusterFile, `${JSON.stringify(json, null, 2)}\n`);
    const config = await readClusterConfig(clusterFile);
    const replicas = init.replicas.map(
      (replica) => new ReplicaProcess(replica.id, replica.home, options.launcherOf?.(replica.id) ?? []),
    );
    const accounts = init.accounts.map((account) => ({
      name: account.name,
      key: readKeyFile(account.file),
      counterFile: join(init.dir, `${account.name}.counter`),
    }));
    return new ProcessCluster(init.dir, config, replicas, accounts);
  }

  startAll(extraArgs: (id: number) => string[] = () => []): void {
    for (const replica of this.replicas) replica.start(extraArgs(replica.id));
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.replicas.map((replica) => replica.stop()));
  }

  /** A client signing as `account`, once the cluster answers. */
  async client(account: Account | null, timeoutMs: number): Promise<PbftClient> {
    return await waitFor(
      'the cluster to accept a client',
      async () =>
        await PbftClient.connect({
          cluster: this.config,
          ...(account === null ? {} : { key: account.key, counterFile: account.counterFile }),
          timeoutMs,
        }),
      30_000,
    );
  }

  /** Every replica's status, through `observer`. */
  async statuses(observer: PbftClient): Promise<ReplicaStatusReport[]> {
    return await observer.status(2_000);
  }
}

/** Poll `probe` every 200 ms until it returns a value (not undefined and not a throw). */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  describe: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = (error as Error).message;
    }
    if (Date.now() > deadline) {
      const detail = [describe(), lastError].filter((text) => text !== '').join('; ');
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${detail === '' ? '' : ` (${detail})`}`,
      );
    }
    await sleep(200);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function formatStatuses(reports: ReplicaStatusReport[]): string {
  return reports
    .map((r) =>
      r.reachable
        ? `${r.id}:v${r.view}${r.viewChangeInProgress ? '*' : ''}/e${r.lastExecuted}/h${r.stableCheckpoint}/p${r.peersConnected}`
        : `${r.id}:down`,
    )
    .join(' ');
}

export interface ReplicaProcessInfo {
  pid: number;
  ppid: number;
  commandLine: string;
}

/**
 * `pbft node` processes running on this machine that are not children of this process: a
 * benchmark run beside them measures a machine they share. Read from /proc (Linux); none elsewhere.
 */
export function otherReplicaProcesses(): ReplicaProcessInfo[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  const found: ReplicaProcessInfo[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!isReplicaCommandLine(args)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) continue;
      found.push({ pid, ppid, commandLine: args.filter((arg) => arg !== '').join(' ') });
    } catch {
      // exited while we looked, or not ours to read
    }
  }
  return found;
}

/** `… pbft[.js] node …`: the pbft launcher running the `node` (one replica) command. */
export function isReplicaCommandLine(args: readonly string[]): boolean {
  return args.some((arg, index) => /(^|\/)pbft(\.js)?$/.test(arg) && args[index + 1] === 'node');
}
