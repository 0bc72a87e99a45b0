/**
 * Closed-loop load for the benchmark and the chaos runner: each client is one funded account with
 * its own PbftClient, sending transfer after transfer (the next one only when f+1 replicas have
 * answered the last). Clients share ClusterConnections, `accountsPerConnection` accounts to one
 * libp2p node, as a service acting for many accounts would; 1 gives every client a node of its own.
 *
 * Besides the benchmark's windows (completions, latencies), it keeps for each client how many
 * transfers were acknowledged, timed out, failed otherwise or were abandoned in flight, and when
 * each acknowledged transfer was sent and answered: the chaos runner audits the ledger against
 * the first and measures recovery from the second.
 *
 * The load runs either inside the benchmark process or in a child process of its own
 * (`load-worker.ts`), behind the same `LoadDriver` interface. The child keeps the clients' CPU
 * (signing, Noise, decoding replies) apart from the benchmark's bookkeeping and makes it
 * measurable from /proc like a replica's.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ClusterConnection, PbftClient, PbftClientError } from '../../src/client/client.ts';
import { readKeyFile } from '../../src/crypto/index.ts';
import { readClusterConfig } from '../../src/node/cluster-config.ts';

/** Every transfer moves this much: the accounts' balances last for a million transfers. */
const TRANSFER_AMOUNT = 1;
/** Connections open this many at a time: a burst of libp2p handshakes slows the replicas down. */
const CONNECT_CONCURRENCY = 8;
/** Opening one connection (retried while the cluster starts) gives up after this long. */
const CONNECT_TIMEOUT_MS = 30_000;
const CONNECT_RETRY_MS = 200;
/** Linux reports process CPU time in clock ticks of 1/100 s (USER_HZ). */
const CLOCK_TICKS_PER_SECOND = 100;
const WORKER = fileURLToPath(new URL('./load-worker.ts', import.meta.url));

export interface LoadAccount {
  /** The account's key file (the client signs with it). */
  keyFile: string;
  /** Where its request counter is reserved on disk. */
  counterFile: string;
}

export interface LoadOptions {
  clusterFile: string;
  /** One closed-loop client per account. */
  accounts: LoadAccount[];
  /** Transfers go to these addresses, round robin over the clients. */
  sinkAddresses: string[];
  /** A transfer that gets no f+1 matching replies this long counts as an error. */
  clientTimeoutMs: number;
  /** Clients that share one ClusterConnection (one libp2p node, one stream per replica). */
  accountsPerConnection: number;
}

/** What the clients did since the previous `collect()`. */
export interface LoadWindow {
  completed: number;
  errors: number;
  /** Client-observed latency of each completed transfer, in ms. */
  latenciesMs: number[];
  /** The last error message seen in the window, if any. */
  lastError: string | null;
}

/** A window that also says when each completed transfer was sent and acknowledged (`clockMs`). */
export interface TimedLoadWindow extends LoadWindow {
  /** In completion order, like latenciesMs. */
  sentAtMs: number[];
  completedAtMs: number[];
}

/** One client's transfers since the load started, in account order. */
export interface LoadClientTotals {
  /** f+1 matching replies: executed exactly once. */
  acknowledged: number;
  /** Gave up with TIMEOUT: executed once or not at all. */
  timedOut: number;
  /** Failed any other way (rejected, refused, closed): executed at most once. */
  failed: number;
  /** In flight when the clients were closed (`stop` without `drain`): executed at most once. */
  abandoned: number;
  /** When the last acknowledged transfer was answered (`clockMs`), null before the first. */
  lastAckAtMs: number | null;
  /** The last failure's message (not timeouts), if any. */
  lastFailure: string | null;
}

export interface LoadDriver {
  collect(): Promise<TimedLoadWindow>;
  totals(): Promise<LoadClientTotals[]>;
  /** Start no new transfers and wait until every one in flight is acknowledged or has failed. */
  drain(): Promise<void>;
  /** CPU time used by the load so far, in seconds (user + system). */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/**
 * Milliseconds on a clock that the processes of one machine share (wall-clock origin, monotonic
 * within a process), so a load process's timestamps compare with its parent's.
 */
export function clockMs(): number {
  return performance.timeOrigin + performance.now();
}

function emptyWindow(): TimedLoadWindow {
  return { completed: 0, errors: 0, latenciesMs: [], lastError: null, sentAtMs: [], completedAtMs: [] };
}

function emptyTotals(): LoadClientTotals {
  return { acknowledged: 0, timedOut: 0, failed: 0, abandoned: 0, lastAckAtMs: null, lastFailure: null };
}

async function openConnection(clusterFile: string): Promise<ClusterConnection> {
  const cluster = await readClusterConfig(clusterFile);
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    try {
      const connection = await ClusterConnection.open({ cluster });
      // Every replica, not just one: the load should not start against half a cluster.
      if (connection.replicasConnected === cluster.replicas.length) return connection;
      await connection.close();
      throw new Error(
        `only ${connection.replicasConnected} of ${cluster.replicas.length} replicas reachable`,
      );
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS));
    }
  }
}

/** The clients themselves; runs in whichever process drives the load. */
export class LoadGenerator {
  private readonly connections: ClusterConnection[];
  private readonly clients: PbftClient[];
  private window: TimedLoadWindow = emptyWindow();
  private readonly clientTotals: LoadClientTotals[];
  private readonly loops: Array<Promise<void>> = [];
  /** No new transfers (drain or stop). */
  private draining = false;
  /** The clients are being closed: what is still in flight is abandoned. */
  private stopping = false;

  private constructor(connections: ClusterConnection[], clients: PbftClient[]) {
    this.connections = connections;
    this.clients = clients;
    this.clientTotals = clients.map(() => emptyTotals());
  }

  /** Open the connections and a client per account, then start the clients' loops. */
  static async start(options: LoadOptions): Promise<LoadGenerator> {
    const connectionCount = Math.ceil(options.accounts.length / options.accountsPerConnection);
    const connections: ClusterConnection[] = [];
    const clients: PbftClient[] = [];
    try {
      for (let first = 0; first < connectionCount; first += CONNECT_CONCURRENCY) {
        const group = Math.min(CONNECT_CONCURRENCY, connectionCount - first);
        connections.push(
          ...(await Promise.all(Array.from({ length: group }, () => openConnection(options.clusterFile)))),
        );
      }
      for (const [index, account] of options.accounts.entries()) {
        const connection = connections[Math.floor(index / options.accountsPerConnection)]!;
        clients.push(
          await PbftClient.connect({
            connection,
            key: readKeyFile(account.keyFile),
            counterFile: account.counterFile,
            timeoutMs: options.clientTimeoutMs,
          }),
        );
      }
    } catch (error) {
      await Promise.all(connections.map((connection) => connection.close()));
      throw error;
    }
    const generator = new LoadGenerator(connections, clients);
    for (const [index, client] of clients.entries()) {
      const sink = options.sinkAddresses[index % options.sinkAddresses.length]!;
      generator.loops.push(generator.run(client, sink, generator.clientTotals[index]!));
    }
    return generator;
  }

  private async run(client: PbftClient, sink: string, totals: LoadClientTotals): Promise<void> {
    while (!this.draining) {
      const sentAtMs = clockMs();
      try {
        await client.transfer(sink, TRANSFER_AMOUNT);
        const completedAtMs = clockMs();
        // Counted for the audit even while stopping: the transfer did execute.
        totals.acknowledged++;
        totals.lastAckAtMs = completedAtMs;
        if (this.stopping) return;
        this.window.completed++;
        this.window.latenciesMs.push(completedAtMs - sentAtMs);
        this.window.sentAtMs.push(sentAtMs);
        this.window.completedAtMs.push(completedAtMs);
      } catch (error) {
        if (this.stopping) {
          totals.abandoned++;
          return;
        }
        if (error instanceof PbftClientError && error.code === 'TIMEOUT') totals.timedOut++;
        else {
          totals.failed++;
          totals.lastFailure = (error as Error).message;
        }
        this.window.errors++;
        this.window.lastError = (error as Error).message;
      }
    }
  }

  collect(): TimedLoadWindow {
    const window = this.window;
    this.window = emptyWindow();
    return window;
  }

  totals(): LoadClientTotals[] {
    return this.clientTotals.map((totals) => ({ ...totals }));
  }

  /** Start no new transfers; resolves once every transfer in flight has its outcome. */
  async drain(): Promise<void> {
    this.draining = true;
    await Promise.all(this.loops);
  }

  /**
   * Stop the loops and close the connections; transfers in flight fail with CLOSED, do not count
   * in the windows and count as abandoned in the totals.
   */
  async stop(): Promise<void> {
    this.draining = true;
    this.stopping = true;
    await Promise.all(this.clients.map((client) => client.close()));
    await Promise.all(this.connections.map((connection) => connection.close()));
  }
}

/** The load inside the calling process. */
export async function startLoadInProcess(options: LoadOptions): Promise<LoadDriver> {
  const cpuStart = process.cpuUsage();
  const generator = await LoadGenerator.start(options);
  return {
    collect: async () => generator.collect(),
    totals: async () => generator.totals(),
    drain: () => generator.drain(),
    // Everything this process does counts, the benchmark's bookkeeping included.
    cpuSeconds: () => {
      const usage = process.cpuUsage(cpuStart);
      return (usage.user + usage.system) / 1e6;
    },
    stop: () => generator.stop(),
  };
}

/** Messages between the benchmark and `load-worker.ts`. */
export type ToWorker =
  | { type: 'start'; options: LoadOptions }
  | { type: 'collect' }
  | { type: 'totals' }
  | { type: 'drain' }
  | { type: 'stop' };
export type FromWorker =
  | { type: 'started' }
  | { type: 'window'; window: TimedLoadWindow }
  | { type: 'totals'; totals: LoadClientTotals[] }
  | { type: 'drained' }
  | { type: 'stopped' }
  | { type: 'failed'; message: string };

/** The load in a child process of its own; `execArgv` are Node options for it (e.g. --cpu-prof). */
export async function startLoadProcess(options: LoadOptions, execArgv: string[] = []): Promise<LoadDriver> {
  // The worker must not inherit profiling flags meant for the replicas.
  const { NODE_OPTIONS: _ignored, ...env } = process.env;
  const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env, execArgv });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = (): Promise<FromWorker> =>
    new Promise((resolve, reject) => {
      const onMessage = (message: FromWorker): void => {
        child.off('exit', onExit);
        resolve(message);
      };
      const onExit = (code: number | null): void => {
        child.off('message', onMessage);
        reject(new Error(`the load worker exited (code ${code})`));
      };
      child.once('message', onMessage);
      child.once('exit', onExit);
    });
  const ask = async (message: ToWorker): Promise<FromWorker> => {
    const answer = next();
    child.send(message);
    const reply = await answer;
    if (reply.type === 'failed') throw new Error(`load worker: ${reply.message}`);
    return reply;
  };
  try {
    await ask({ type: 'start', options });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    collect: async () => {
      const reply = await ask({ type: 'collect' });
      if (reply.type !== 'window') throw new Error(`load worker answered ${reply.type}`);
      return reply.window;
    },
    totals: async () => {
      const reply = await ask({ type: 'totals' });
      if (reply.type !== 'totals') throw new Error(`load worker answered ${reply.type}`);
      return reply.totals;
    },
    drain: async () => {
      const reply = await ask({ type: 'drain' });
      if (reply.type !== 'drained') throw new Error(`load worker answered ${reply.type}`);
    },
    cpuSeconds: () => processCpuSeconds(child),
    stop: async () => {
      // The worker exits by itself after answering 'stop' (or when this process goes away).
      if (child.exitCode === null && child.signalCode === null)
        await ask({ type: 'stop' }).catch(() => undefined);
      await exited;
    },
  };
}

/** User + system CPU seconds of a child process, from /proc (0 once it has exited). */
function processCpuSeconds(child: ChildProcess): number {
  if (child.pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}
