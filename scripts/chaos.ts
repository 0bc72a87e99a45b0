/**
 * npm run chaos -- [--replicas 4|7|10] [--seed S] [--duration SECONDS] [--clients N]
 *                  [--faults kill,pause,primary-kill,primary-pause,byzantine,hostile-client,storage,partition,throttle,delay,loss]
 *                  [--recovery-max SECONDS] [--plot FILE.svg] [--json] [--keep]
 *
 * A real cluster of `pbft node` processes under closed-loop load from N clients (their own
 * process, ACCOUNTS_PER_CONNECTION accounts to a shared ClusterConnection, like a service acting
 * for many accounts), with faults injected on a seeded schedule (see lib/chaos-schedule.ts): kill
 * -9 and restart, SIGSTOP/SIGCONT pauses longer than the view-change timeout, the same two aimed
 * at the primary of the moment (primary-kill, primary-pause), f replicas restarted as liars, a
 * killed replica restarted on damaged storage (storage: bytes flipped in its write-ahead log, the
 * log cut short, or data/ deleted; lib/chaos-storage.ts), and,
 * when each replica can live in its own network namespace, partitions, throttled links, loss
 * (nftables) and delay (tc netem).
 *
 * Afterwards every fault is healed, the load stops, and the run checks (lib/chaos-audit.ts) that
 * every acknowledged transfer executed exactly once on every correct replica, that their balances
 * agree and supply is unchanged, and that committing resumed (lib/chaos-recovery.ts):
 *   - after every fault, every client committed again within --recovery-max seconds (default 60)
 *     of the fault being healed;
 *   - after a primary fault, the first transfer sent after the fault's start committed within
 *     --recovery-max seconds of that start (default: 3 base view-change timeouts, the project's
 *     target, plus the median latency of the 10 s before the fault, which a transfer sent then
 *     would have taken without it), and throughput in the 10 s after that is at least half of the
 *     10 s before;
 *   - after a storage fault, the restarted replica said it found the damage, started recovering,
 *     and recovered (its log's `recovered`) within --recovery-max seconds of the restart; the next
 *     fault waits for that, since a recovering replica is one of the f.
 * With --plot it also writes a timeline (lib/plot.ts): committed transfers per second and p99
 * latency, every fault shaded from injection to healing and labelled with its class and targets,
 * and a dashed line where a new view settled (from the replicas' status, polled all through the load).
 *
 * Exit code 0 when all holds, 1 when anything does not, 2 when no requested fault class can be
 * injected on this machine (nothing was tested), 64 for bad arguments.
 */
import { randomInt } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TESTNET_ACCOUNTS_MAX } from '../src/cli/testnet.ts';
import type { PbftClient, ReplicaStatusReport } from '../src/client/client.ts';
import { Random } from '../src/util/random.ts';
import { auditLedger, type LoadClientRecord } from './lib/chaos-audit.ts';
import {
  AckTimeline,
  type Interval,
  measureRecovery,
  primaryRecoveryBoundMs,
  type RecoveryMeasure,
  recoveryProblems,
  THROUGHPUT_RECOVERED_FRACTION,
} from './lib/chaos-recovery.ts';
import {
  chooseLiars,
  describeEpisode,
  FAULT_CLASSES,
  type FaultClass,
  type FaultEpisode,
  faultCount,
  generateSchedule,
  isFaultClass,
  isPrimaryFault,
  NETWORK_FAULT_CLASSES,
  resolveTargets,
  THROUGHPUT_WINDOW_MS,
  unavailableReason,
} from './lib/chaos-schedule.ts';
import {
  type DamageReport,
  damageStorage,
  describeDamage,
  type RecoveryReading,
  readRecovery,
  storageProblems,
} from './lib/chaos-storage.ts';
import { HostileClient } from './lib/hostile-client.ts';
import { clockMs, type LoadClientTotals, type LoadDriver, startLoadProcess } from './lib/load-generator.ts';
import { type NetnsSupport, probeNetns, ReplicaNetwork } from './lib/netns.ts';
import { integerOption, parseSvgPath } from './lib/options.ts';
import { type PlotInterval, renderTimelineSvg, writeSvgFile } from './lib/plot.ts';
import { perSecondSeries, settledViewChanges, type ViewPoll } from './lib/plot-series.ts';
import { formatStatuses, ProcessCluster, sleep, waitFor } from './lib/process-cluster.ts';

const EXIT_FAILED = 1;
const EXIT_NOTHING_INJECTED = 2;
const EXIT_USAGE = 64;
const SEED_RANDOM_MAX = 2 ** 40;
/** Development accounts start with this much (pbft testnet init). */
const INITIAL_BALANCE = 1_000_000;
/** `pbft testnet init` creates at most this many accounts; each client needs two (sender, sink). */
const ACCOUNTS_MAX = TESTNET_ACCOUNTS_MAX;
const CLIENTS_MAX = ACCOUNTS_MAX / 2;
/** Clients that share one ClusterConnection, as in the benchmark (well under a connection's frame limit). */
const ACCOUNTS_PER_CONNECTION = 32;
/** A transfer that gets no f+1 matching replies this long is given up as "unknown outcome". */
const TRANSFER_TIMEOUT_MS = 20_000;
/** Small checkpoint intervals so that a run crosses many checkpoints and restarted replicas catch up by state transfer. */
const CHAOS_PROTOCOL = { checkpointInterval: 16, watermarkWindow: 64 };
/** Load before the first fault and after the last heal, so that both are measured against a running cluster. */
const STEADY_LOAD_MS = 3_000;
const CONVERGE_TIMEOUT_MS = 60_000;
const STARTUP_TIMEOUT_MS = 60_000;
/** Every client must commit again within this long of a fault being healed (`--recovery-max` overrides it). */
const RECOVERY_MAX_DEFAULT_S = 60;
/**
 * After a primary fault, the first commit must come within this many base view-change timeouts
 * of the fault's start, plus the load's median latency before it (`--recovery-max` overrides
 * both): the project's target.
 */
const PRIMARY_RECOVERY_TIMEOUTS = 3;
/**
 * After a primary fault the runner still waits for every client to commit again, this long at
 * most: a liveness check, not the measured target. Clients back their retransmissions off up to
 * 8 s, so a bound as tight as the target would measure that backoff instead of the cluster.
 */
const PRIMARY_CLIENT_RESUME_MAX_MS = 60_000;
/** How often the runner reads the load process's acknowledgements. */
const LOAD_POLL_MS = 100;
/** A primary fault waits this long at most for 2f+1 replicas to agree on a view and its primary. */
const SETTLED_VIEW_TIMEOUT_MS = 30_000;
/** Balance queries in flight at once during the audit. */
const AUDIT_CONCURRENCY = 16;
/** With --plot, every replica's view is read this often, each read giving up after the timeout. */
const VIEW_POLL_MS = 250;
const VIEW_POLL_TIMEOUT_MS = 500;
/**
 * A replica restarted on damaged storage that has not started recovering this long after its
 * restart never noticed the damage: the runner stops waiting for its recovery.
 */
const STORAGE_DETECT_MS = 15_000;
/** How often the runner reads a recovering replica's log. */
const STORAGE_POLL_MS = 200;

function usage(message: string): never {
  console.error(`pbft chaos: ${message}`);
  console.error(
    `usage: npm run chaos -- [--replicas 4|7|10] [--seed S] [--duration SECONDS] [--clients N] [--faults ${FAULT_CLASSES.join(',')}] [--recovery-max SECONDS] [--plot FILE.svg] [--json] [--keep]`,
  );
  process.exit(EXIT_USAGE);
}

function parseOptions() {
  try {
    return parseArgs({
      options: {
        replicas: { type: 'string' },
        seed: { type: 'string' },
        duration: { type: 'string' },
        clients: { type: 'string' },
        faults: { type: 'string' },
        'recovery-max': { type: 'string' },
        'base-port': { type: 'string' },
        plot: { type: 'string' },
        json: { type: 'boolean', default: false },
        keep: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    usage((error as Error).message);
  }
}

const values = parseOptions();
const replicaCount = integerOption(values.replicas, 'replicas', 4, 4, usage);
if ((replicaCount - 1) % 3 !== 0) usage(`--replicas must be 3f+1 (4, 7, 10, …), got ${replicaCount}`);
const f = faultCount(replicaCount);
const seed = integerOption(values.seed, 'seed', randomInt(0, SEED_RANDOM_MAX), 0, usage);
const durationMs = integerOption(values.duration, 'duration', 60, 1, usage) * 1_000;
const clientCount = integerOption(values.clients, 'clients', replicaCount, 1, usage);
if (clientCount > CLIENTS_MAX)
  usage(
    `--clients must be at most ${CLIENTS_MAX} (each needs two of the ${ACCOUNTS_MAX} accounts), got ${clientCount}`,
  );
/** null: the defaults (60 s after healing; 3 view-change timeouts from the start for primary faults). */
const recoveryMaxFlagMs =
  values['recovery-max'] === undefined
    ? null
    : integerOption(values['recovery-max'], 'recovery-max', RECOVERY_MAX_DEFAULT_S, 1, usage) * 1_000;
const healRecoveryMaxMs = recoveryMaxFlagMs ?? RECOVERY_MAX_DEFAULT_S * 1_000;
const basePort = integerOption(
  values['base-port'],
  'base-port',
  25_000 + (process.pid % 90) * 20,
  1_024,
  usage,
);
const requestedClasses = (values.faults ?? FAULT_CLASSES.join(',')).split(',').map((name) => name.trim());
for (const name of requestedClasses) {
  if (!isFaultClass(name)) usage(`unknown fault "${name}"; faults are ${FAULT_CLASSES.join(', ')}`);
}
const plotFile =
  values.plot === undefined
    ? null
    : (parseSvgPath(values.plot) ?? usage(`--plot takes a file ending in .svg, got "${values.plot}"`));
const json = values.json;
const say = (line: string): void => {
  if (json) process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
};

// Network faults need namespaces (and netem for delay, nftables for loss); skip what this machine
// cannot do, and say so in the summary: a skipped class was not tested.
const skipped: Array<{ fault: FaultClass; reason: string }> = [];
let classes = requestedClasses as FaultClass[];
let network: ReplicaNetwork | null = null;
let support: NetnsSupport | null = null;
if (classes.some((fault) => NETWORK_FAULT_CLASSES.includes(fault))) {
  support = probeNetns();
  for (const reason of Object.values(support.missing)) say(`note: ${reason}`);
  for (const fault of classes) {
    const reason = unavailableReason(fault, support);
    if (reason !== undefined) skipped.push({ fault, reason });
  }
  classes = classes.filter((fault) => unavailableReason(fault, support) === undefined);
  if (classes.some((fault) => NETWORK_FAULT_CLASSES.includes(fault)))
    network = new ReplicaNetwork(replicaCount);
}

if (classes.length === 0) {
  // Nothing left to inject: a run now would only show that an undisturbed cluster works.
  for (const { fault, reason } of skipped) say(`chaos: skipping ${fault}: ${reason}`);
  say(`chaos: NOTHING TESTED: no requested fault class can be injected on this machine`);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ ok: false, verdict: 'nothing-injected', seed, replicas: replicaCount, f, clients: clientCount, faultsInjected: 0, faultsByClass: {}, skipped, problems: [] })}\n`,
    );
  }
  process.exit(EXIT_NOTHING_INJECTED);
}

const liars = classes.includes('byzantine') ? chooseLiars(seed, replicaCount) : [];
const dir = await mkdtemp(join(tmpdir(), 'pbft-chaos-'));
let cluster: ProcessCluster | null = null;
let load: LoadDriver | null = null;
const openClients: PbftClient[] = [];

/** Last-resort cleanup when the runner dies or is interrupted: no stray processes or namespaces. */
function killEverythingNow(): void {
  for (const replica of cluster?.replicas ?? []) {
    if (replica.pid !== undefined) {
      try {
        process.kill(replica.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  // The load process exits by itself once this process is gone (its IPC channel closes).
  network?.teardown();
}
process.on('exit', killEverythingNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`chaos: interrupted; stopping the cluster (logs stay in ${dir})`);
    killEverythingNow();
    process.exit(130);
  });
}

interface EpisodeRecord {
  index: number;
  fault: FaultClass;
  behaviour?: string;
  replicas: number[];
  durationMs: number;
  /** The view 2f+1 replicas were in when the fault started. */
  view: number;
  /** Seconds from the start of the load to the fault's start. */
  atS: number;
  /** From healing until every load client had a transfer acknowledged again. */
  recoveryMs: number | null;
  /** The longest time no client had a transfer acknowledged, from the fault until recovery. */
  longestStallMs: number;
  /** From the fault's start to the first acknowledgement of a transfer sent after it. */
  recoveryFromStartMs: number | null;
  /** Throughput over THROUGHPUT_WINDOW_MS before the start and after recovery (null: not clean). */
  txPerSecBefore: number | null;
  txPerSecAfter: number | null;
  /** The bound this episode's recovery is judged by, and from when it counts. */
  recoveryBoundMs: number;
  recoveryMeasuredFrom: 'start' | 'heal';
  /** For 'loss': packets the nftables rules dropped, summed over the targets (evidence that it bit). */
  droppedPackets?: number;
  /** For 'storage': the damage done, what the replica said about it, and when it had recovered. */
  storage?: {
    damage: string;
    detected: RecoveryReading['reason'];
    line: string | null;
    /** From its restart to its `recovered` (null: not within the bound). */
    recoveredAfterMs: number | null;
  };
  problems: string[];
}

/** An episode's clock times, for the measurements made once the run is over. */
interface EpisodeTimes {
  startedAtMs: number;
  healedAtMs: number;
  /** When the runner had seen what it waits for (recovery, and the window after it): the next fault may start. */
  settledAtMs: number;
}

async function main(): Promise<number> {
  say(
    `chaos: seed ${seed}, ${replicaCount} replicas (f = ${f}), ${clientCount} clients (${ACCOUNTS_PER_CONNECTION} per connection), faults ${classes.join(', ')}` +
      (liars.length > 0 ? `, liars ${liars.join(', ')}` : ''),
  );
  for (const { fault, reason } of skipped) say(`chaos: skipping ${fault}: ${reason}`);
  if (network !== null) {
    network.setup();
    say(`chaos: replicas in network namespaces ${network.namespace(0)} … on ${network.subnet}.0/24`);
  }
  cluster = await ProcessCluster.create({
    dir,
    replicas: replicaCount,
    basePort,
    accounts: 2 * clientCount,
    protocol: CHAOS_PROTOCOL,
    ...(network === null
      ? {}
      : {
          hostOf: (id: number) => network!.hostOf(id),
          launcherOf: (id: number) => network!.launcherOf(id),
        }),
  });
  const running = cluster;
  const viewChangeTimeoutMs = running.config.protocol.viewChangeTimeoutTicks * running.config.runtime.tickMs;
  const primaryRecoveryMaxMs = recoveryMaxFlagMs ?? PRIMARY_RECOVERY_TIMEOUTS * viewChangeTimeoutMs;
  const schedule = generateSchedule({
    seed,
    replicas: replicaCount,
    classes,
    durationMs,
    viewChangeTimeoutMs,
    liars,
  });
  for (const episode of schedule) say(`chaos: planned ${describeEpisode(episode)}`);

  running.startAll();
  const observer = await running.client(null, 5_000);
  openClients.push(observer);
  let lastReports: ReplicaStatusReport[] = [];
  const describeStatus = (): string => `last status ${formatStatuses(lastReports)}`;
  const statuses = async () => {
    lastReports = await running.statuses(observer);
    return lastReports;
  };
  await waitFor(
    'every replica to connect to every other',
    async () =>
      (await statuses()).every((r) => r.reachable && r.peersConnected === replicaCount - 1)
        ? true
        : undefined,
    STARTUP_TIMEOUT_MS,
    describeStatus,
  );

  // Load: client i moves 1 unit at a time from account i to its own sink, account clientCount + i,
  // so the audit can count each client's executed transfers from two balances.
  const senders = running.accounts.slice(0, clientCount);
  const sinks = running.accounts.slice(clientCount, 2 * clientCount);
  say(`chaos: connecting ${clientCount} clients`);
  load = await startLoadProcess({
    clusterFile: running.config.path,
    accounts: senders.map((account) => ({
      keyFile: join(running.dir, 'accounts', `${account.name}.json`),
      counterFile: account.counterFile,
    })),
    sinkAddresses: sinks.map((account) => account.key.publicKeyHex),
    clientTimeoutMs: TRANSFER_TIMEOUT_MS,
    accountsPerConnection: ACCOUNTS_PER_CONNECTION,
  });
  const driver = load;
  const loadStartedAtMs = clockMs();
  const timeline = new AckTimeline();
  let totals: LoadClientTotals[] = [];
  const unexpected: string[] = [];
  let polling = true;
  /** Every acknowledgement before this moment is in `timeline` (the start of the last completed poll). */
  let polledThroughMs = loadStartedAtMs;
  const poll = async (): Promise<void> => {
    const startedAtMs = clockMs();
    const window = await driver.collect();
    timeline.add(window.sentAtMs, window.completedAtMs);
    totals = await driver.totals();
    polledThroughMs = startedAtMs;
  };
  const failing = (): boolean => unexpected.length > 0 || totals.some((client) => client.failed > 0);
  /** Until the timeline holds every acknowledgement up to `atMs` (a busy machine delays the polls). */
  const pollPast = async (atMs: number): Promise<void> => {
    while (polledThroughMs < atMs && !failing()) await sleep(LOAD_POLL_MS);
  };
  const poller = (async () => {
    while (polling) {
      try {
        await poll();
      } catch (error) {
        unexpected.push(`reading the load: ${(error as Error).message}`);
        return;
      }
      await sleep(LOAD_POLL_MS);
    }
  })();
  // With --plot: the replicas' views all through the load, to mark when a new view settled.
  const viewPolls: ViewPoll[] = [];
  const viewPoller = (async () => {
    while (polling && plotFile !== null) {
      const reports = await observer.status(VIEW_POLL_TIMEOUT_MS).catch(() => []);
      viewPolls.push({
        atMs: clockMs(),
        replicas: reports.map((report) =>
          report.reachable && report.view !== undefined
            ? { view: report.view, viewChangeInProgress: report.viewChangeInProgress ?? false }
            : null,
        ),
      });
      await sleep(VIEW_POLL_MS);
    }
  })();
  /**
   * Resolves with how long after `healedAtMs` the last client had its first transfer acknowledged
   * (to within one poll of the load), or null after `boundMs` or once `givenUp()`. Started right at
   * healing, it runs alongside whatever else the runner waits for.
   */
  const waitForEveryClient = async (
    healedAtMs: number,
    boundMs: number,
    givenUp: () => boolean,
  ): Promise<number | null> => {
    const deadline = healedAtMs + boundMs;
    const firstAckAtMs: Array<number | undefined> = [];
    for (;;) {
      for (const [index, client] of totals.entries()) {
        if (firstAckAtMs[index] === undefined && (client.lastAckAtMs ?? 0) > healedAtMs)
          firstAckAtMs[index] = client.lastAckAtMs!;
      }
      const acked = firstAckAtMs.filter((atMs) => atMs !== undefined);
      if (acked.length === clientCount) return Math.max(...acked) - healedAtMs;
      if (clockMs() > deadline || failing() || givenUp()) return null;
      await sleep(LOAD_POLL_MS);
    }
  };
  const waitForFirstCommit = async (startedAtMs: number, boundMs: number): Promise<number | null> => {
    const deadline = startedAtMs + boundMs;
    for (;;) {
      const atMs = timeline.firstCommitSentFrom(startedAtMs);
      if (atMs !== null || polledThroughMs > deadline || failing()) return atMs;
      await sleep(LOAD_POLL_MS);
    }
  };
  const sleepUntil = async (atMs: number): Promise<void> => {
    const leftMs = atMs - clockMs();
    if (leftMs > 0) await sleep(leftMs);
  };

  // Warm-up: every client commits once (under heavy load on a busy machine the first batches take
  // seconds), then the cluster runs under steady load before the first fault.
  if ((await waitForEveryClient(loadStartedAtMs, STARTUP_TIMEOUT_MS, () => false)) === null) {
    await statuses().catch(() => undefined);
    throw new Error(`the cluster committed nothing for some client before any fault (${describeStatus()})`);
  }
  const warmAtMs = clockMs();
  await sleep(STEADY_LOAD_MS);

  /** The view that 2f+1 replicas are in and not changing, and its primary (as they report it). */
  const settledView = async (): Promise<{ view: number; primary: number }> =>
    await waitFor(
      `2f+1 replicas to agree on a view`,
      async () => {
        const inView = new Map<number, ReplicaStatusReport[]>();
        for (const report of await statuses()) {
          if (!report.reachable || report.viewChangeInProgress || report.view === undefined) continue;
          inView.set(report.view, [...(inView.get(report.view) ?? []), report]);
        }
        const settled = [...inView.entries()]
          .filter(([, reports]) => reports.length >= 2 * f + 1)
          .sort(([a], [b]) => b - a)[0];
        if (settled === undefined) return undefined;
        const [view, reports] = settled;
        return { view, primary: reports[0]!.primary ?? view % replicaCount };
      },
      SETTLED_VIEW_TIMEOUT_MS,
      describeStatus,
    );

  const episodes: EpisodeRecord[] = [];
  const times: EpisodeTimes[] = [];
  // The first "before" window starts after the warm-up, not with the load.
  let quietSinceMs = warmAtMs;
  for (const episode of schedule) {
    await sleep(episode.gapMs);
    const primaryFault = isPrimaryFault(episode.fault);
    // A primary fault's "before" window must hold nothing but steady load.
    if (primaryFault) await sleepUntil(quietSinceMs + THROUGHPUT_WINDOW_MS);
    const { view, primary } = await settledView();
    const targets = resolveTargets(episode.targets, primary, replicaCount);
    say(
      `chaos: ${describeEpisode(episode)}${targets.length === 0 ? '' : ` → replica${targets.length > 1 ? 's' : ''} ${targets.join(', ')}`} (view ${view})`,
    );
    const startedAtMs = clockMs();
    await inject(running, episode, targets);
    await sleep(episode.durationMs);
    const droppedPackets =
      episode.fault === 'loss'
        ? targets.reduce((sum, id) => sum + (network!.droppedPackets(id) ?? 0), 0)
        : undefined;
    await heal(running, episode, targets);
    const healedAtMs = clockMs();
    const record: EpisodeRecord = {
      index: episode.index,
      fault: episode.fault,
      ...(episode.behaviour === undefined ? {} : { behaviour: episode.behaviour }),
      replicas: targets,
      durationMs: episode.durationMs,
      view,
      atS: Math.round((startedAtMs - loadStartedAtMs) / 100) / 10,
      recoveryMs: null,
      longestStallMs: 0,
      recoveryFromStartMs: null,
      txPerSecBefore: null,
      txPerSecAfter: null,
      recoveryBoundMs: primaryFault ? primaryRecoveryMaxMs : healRecoveryMaxMs,
      recoveryMeasuredFrom: primaryFault ? 'start' : 'heal',
      ...(droppedPackets === undefined ? {} : { droppedPackets }),
      problems: [],
    };
    episodes.push(record);
    const label = `fault #${episode.index} (${episode.fault})`;
    const everyClientBoundMs = primaryFault
      ? Math.max(healRecoveryMaxMs, PRIMARY_CLIENT_RESUME_MAX_MS)
      : healRecoveryMaxMs;
    // Once the fault has failed its check, waiting on for every client would only prolong a failed run.
    const everyClient = waitForEveryClient(healedAtMs, everyClientBoundMs, () => record.problems.length > 0);
    // A recovering replica is one of the f: the next fault waits until it has recovered.
    const storageWatch =
      episode.fault === 'storage' ? watchStorageRecovery(running, targets[0]!, healRecoveryMaxMs) : null;
    if (primaryFault) {
      // Wait past the bound if need be, so that a slow recovery is still measured and reported.
      const horizonMs = Math.max(primaryRecoveryMaxMs, everyClientBoundMs);
      const recoveredAtMs = await waitForFirstCommit(startedAtMs, horizonMs);
      if (recoveredAtMs === null) {
        record.problems.push(
          `${label}: no transfer sent after the fault's start committed within ${horizonMs} ms`,
        );
      } else {
        // The window after recovery, complete.
        await sleepUntil(recoveredAtMs + THROUGHPUT_WINDOW_MS);
        await pollPast(recoveredAtMs + THROUGHPUT_WINDOW_MS);
        const measure = measureRecovery({
          timeline,
          startedAtMs,
          windowMs: THROUGHPUT_WINDOW_MS,
          load: { fromMs: loadStartedAtMs, toMs: clockMs() },
          others: times.map((other) => ({ fromMs: other.startedAtMs, toMs: other.settledAtMs })),
        });
        // An explicit --recovery-max is the whole bound; the default adds the load's own latency.
        record.recoveryBoundMs =
          recoveryMaxFlagMs ??
          primaryRecoveryBoundMs(timeline, startedAtMs, THROUGHPUT_WINDOW_MS, primaryRecoveryMaxMs);
        record.problems.push(...recoveryProblems(label, measure, record.recoveryBoundMs));
        say(
          `chaos: #${episode.index}: first commit ${measure.recoveryFromStartMs} ms after the start (bound ${record.recoveryBoundMs} ms); ` +
            `${measure.txPerSecBefore ?? '-'} tx/s before, ${measure.txPerSecAfter ?? '-'} tx/s after`,
        );
      }
    }
    record.recoveryMs = await everyClient;
    if (storageWatch !== null) {
      const id = targets[0]!;
      const report = damages.get(id)!;
      const outcome = await storageWatch;
      record.storage = {
        damage: describeDamage(report),
        detected: outcome.reading.reason,
        line: outcome.reading.line,
        recoveredAfterMs: outcome.recoveredAfterMs === null ? null : Math.round(outcome.recoveredAfterMs),
      };
      record.problems.push(...storageProblems(label, id, report, { ...outcome, boundMs: healRecoveryMaxMs }));
      say(
        outcome.recoveredAfterMs === null
          ? `chaos: #${episode.index}: replica ${id} (${describeDamage(report)}): ${outcome.reading.reason === null ? 'did NOT notice the damage' : `found it (${outcome.reading.reason}) but did not recover`}`
          : `chaos: #${episode.index}: replica ${id} (${describeDamage(report)}) found it (${outcome.reading.reason}) and recovered ${Math.round(outcome.recoveredAfterMs)} ms after its restart`,
      );
    }
    if (record.recoveryMs === null && record.problems.length === 0) {
      record.problems.push(
        `committing did not resume for every client within ${everyClientBoundMs} ms of healing fault #${episode.index}`,
      );
    }
    const settledAtMs = clockMs();
    times.push({ startedAtMs, healedAtMs, settledAtMs });
    quietSinceMs = settledAtMs;
    const recoveredEveryClientAtMs =
      record.recoveryMs === null ? settledAtMs : healedAtMs + record.recoveryMs;
    record.longestStallMs = Math.round(
      timeline.longestGapMs({ fromMs: startedAtMs, toMs: recoveredEveryClientAtMs }),
    );
    say(
      record.recoveryMs === null
        ? `chaos: #${episode.index}: ${record.problems[0] ?? 'committing did not resume for every client'} (${describeStatus()})`
        : `chaos: #${episode.index}: healed; every client committed again within ${Math.round(record.recoveryMs)} ms (longest stall ${record.longestStallMs} ms)`,
    );
    if (record.problems.length > 0 || failing()) break;
  }

  await sleep(STEADY_LOAD_MS);
  polling = false;
  await poller;
  await viewPoller;
  // Every transfer in flight gets its outcome (acknowledged or timed out) before the audit.
  await driver.drain();
  const loadStoppedAtMs = clockMs();
  await poll();
  await driver.stop();

  // Recovery measurements for the summary, now that the whole timeline is known (the primary
  // faults were judged as they happened, on the same numbers).
  const loadSpan: Interval = { fromMs: loadStartedAtMs, toMs: loadStoppedAtMs };
  for (const [index, record] of episodes.entries()) {
    const measure: RecoveryMeasure = measureRecovery({
      timeline,
      startedAtMs: times[index]!.startedAtMs,
      windowMs: THROUGHPUT_WINDOW_MS,
      load: loadSpan,
      others: times
        .filter((_, other) => other !== index)
        .map((other) => ({ fromMs: other.startedAtMs, toMs: other.settledAtMs })),
    });
    record.recoveryFromStartMs = measure.recoveryFromStartMs;
    record.txPerSecBefore = measure.txPerSecBefore;
    record.txPerSecAfter = measure.txPerSecAfter;
  }

  // Every replica catches up to the same point; then compare what each one holds.
  const correct = running.replicas.map((replica) => replica.id).filter((id) => !liars.includes(id));
  const converged = await waitFor(
    'every replica to execute the same requests',
    async () => {
      const reports = await statuses();
      const executed = new Set(reports.map((r) => r.lastExecuted));
      return reports.every((r) => r.reachable) && executed.size === 1 ? reports : undefined;
    },
    CONVERGE_TIMEOUT_MS,
    describeStatus,
  ).catch((error: Error) => {
    unexpected.push(error.message);
    return null;
  });
  // A correct replica that stayed behind is a liveness problem (reported above); comparing its
  // older balances would report a disagreement that is not one.
  const furthest = Math.max(
    0,
    ...lastReports.filter((r) => r.reachable && correct.includes(r.id)).map((r) => r.lastExecuted ?? 0),
  );
  const behind =
    converged === null
      ? lastReports.filter(
          (r) => correct.includes(r.id) && (!r.reachable || (r.lastExecuted ?? 0) < furthest),
        )
      : [];
  for (const report of behind) {
    unexpected.push(
      `replica ${report.id} stayed behind (${report.reachable ? `executed up to ${report.lastExecuted}` : 'unreachable'}, others ${furthest}): its balances were not audited`,
    );
  }
  const audited = correct.filter((id) => !behind.some((report) => report.id === id));
  const addresses = running.accounts.map((account) => account.key.publicKeyHex);
  const balances = new Map<number, Map<string, number>>();
  for (let first = 0; first < addresses.length; first += AUDIT_CONCURRENCY) {
    const group = addresses.slice(first, first + AUDIT_CONCURRENCY);
    const answered = await Promise.all(group.map((address) => observer.balanceByReplica(address, 5_000)));
    for (const [offset, answers] of answered.entries()) {
      for (const [replica, answer] of answers) {
        if (!balances.has(replica)) balances.set(replica, new Map());
        balances.get(replica)!.set(group[offset]!, answer.balance);
      }
    }
  }
  const records: LoadClientRecord[] = senders.map((sender, index) => {
    const client = totals[index] ?? {
      acknowledged: 0,
      timedOut: 0,
      failed: 0,
      abandoned: 0,
      lastAckAtMs: null,
      lastFailure: null,
    };
    if (client.failed > 0)
      unexpected.push(`${sender.name}: ${client.failed} transfers failed (last: ${client.lastFailure})`);
    return {
      name: sender.name,
      sender: sender.key.publicKeyHex,
      sink: sinks[index]!.key.publicKeyHex,
      acknowledged: client.acknowledged,
      // Each of these executed at most once; none of them was acknowledged.
      unknown: client.timedOut + client.failed + client.abandoned,
    };
  });
  const audit = auditLedger({
    initialBalance: INITIAL_BALANCE,
    supply: INITIAL_BALANCE * addresses.length,
    clients: records,
    addresses,
    balances,
    correct: audited,
  });
  const crashes = running.replicas.flatMap((replica) => replica.unexpectedExits);
  const lastRecoveryMs = episodes.at(-1)?.recoveryMs ?? null;
  const problems = [
    ...unexpected,
    ...crashes,
    ...audit.problems,
    ...episodes.flatMap((episode) => episode.problems),
  ];
  const injected: Record<string, number> = {};
  for (const episode of episodes) injected[episode.fault] = (injected[episode.fault] ?? 0) + 1;
  // Also when the replicas did not converge: the view the last status showed.
  const finalView = Math.max(0, ...(converged ?? lastReports).map((r) => r.view ?? 0));
  const recoveries = episodes.flatMap((episode) => (episode.recoveryMs === null ? [] : [episode.recoveryMs]));
  const loadSeconds = (loadStoppedAtMs - loadStartedAtMs) / 1_000;

  const summary = {
    ok: problems.length === 0,
    verdict: problems.length === 0 ? 'passed' : 'failed',
    seed,
    replicas: replicaCount,
    f,
    clients: clientCount,
    accountsPerConnection: ACCOUNTS_PER_CONNECTION,
    liars,
    viewChangeTimeoutMs,
    faultsInjected: episodes.length,
    faultsByClass: injected,
    /** 'storage' episodes, and those whose replica found the damage and recovered. */
    storageFaults: episodes.filter((episode) => episode.storage !== undefined).length,
    storageRecoveries: episodes.filter((episode) => episode.storage?.recoveredAfterMs != null).length,
    skipped,
    acknowledged: audit.acknowledged,
    unknownOutcome: audit.unknown,
    executed: audit.executed,
    lost: audit.lost,
    duplicated: audit.duplicated,
    txPerSec: Math.round((timeline.size / loadSeconds) * 10) / 10,
    lastExecutedSeq: converged?.[0]?.lastExecuted ?? null,
    /** The correct replicas whose balances were compared, and those left out because they stayed behind. */
    auditedReplicas: audited,
    behindReplicas: behind.map((report) => report.id),
    finalView,
    recoveryAfterLastFaultMs: lastRecoveryMs === null ? null : Math.round(lastRecoveryMs),
    recoveryMaxMs: recoveries.length === 0 ? null : Math.round(Math.max(...recoveries)),
    primaryRecoveryBoundMs: primaryRecoveryMaxMs,
    throughputRecoveredFraction: THROUGHPUT_RECOVERED_FRACTION,
    throughputWindowMs: THROUGHPUT_WINDOW_MS,
    episodes: episodes.map((episode) => ({
      ...episode,
      recoveryMs: episode.recoveryMs === null ? null : Math.round(episode.recoveryMs),
    })),
    problems,
  };
  say('');
  say(
    `faults injected     ${episodes.length} (${
      Object.entries(injected)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    })`,
  );
  for (const { fault, reason } of skipped) say(`NOT injected        ${fault}: ${reason}`);
  say(
    `transfers           ${audit.acknowledged} acknowledged (${summary.txPerSec} tx/s), ${audit.unknown} unknown outcome, ${audit.executed} executed`,
  );
  say(`lost / duplicated   ${audit.lost} / ${audit.duplicated}`);
  if (summary.storageFaults > 0)
    say(`storage faults      ${summary.storageFaults}, recovered ${summary.storageRecoveries}`);
  say(
    `replicas agree      ${audit.problems.length === 0 ? 'yes' : 'NO'} (checked ${audited.join(', ')}${behind.length > 0 ? `; ${behind.map((r) => r.id).join(', ')} behind` : ''}; final view ${finalView})`,
  );
  say(
    `recovery            every client again ${summary.recoveryAfterLastFaultMs ?? '-'} ms after the last fault was healed (worst ${summary.recoveryMaxMs ?? '-'} ms, bound ${healRecoveryMaxMs} ms)`,
  );
  const windowS = THROUGHPUT_WINDOW_MS / 1_000;
  for (const episode of episodes) {
    const rate = (value: number | null): string => (value === null ? 'not measured' : `${value} tx/s`);
    const throughput =
      episode.txPerSecBefore === null && episode.txPerSecAfter === null
        ? `throughput not measured (another fault, or the start or end of the load, within ${windowS} s)`
        : `${rate(episode.txPerSecBefore)} in the ${windowS} s before, ${rate(episode.txPerSecAfter)} in the ${windowS} s after`;
    say(
      `  #${episode.index} ${episode.fault.padEnd(14)} ${episode.replicas.length === 0 ? 'clients' : `replica${episode.replicas.length > 1 ? 's' : ''} ${episode.replicas.join(', ')}`} (view ${episode.view}) for ${episode.durationMs} ms: ` +
        `first commit ${episode.recoveryFromStartMs ?? '-'} ms after the start` +
        (isPrimaryFault(episode.fault) ? ` (bound ${episode.recoveryBoundMs} ms)` : '') +
        `; ${throughput}` +
        (episode.droppedPackets === undefined ? '' : `; ${episode.droppedPackets} packets dropped`) +
        (episode.storage === undefined
          ? ''
          : `; ${episode.storage.damage}: ${episode.storage.detected ?? 'NOT noticed'}, recovered ${episode.storage.recoveredAfterMs ?? '-'} ms after the restart`),
    );
  }
  for (const problem of problems) say(`PROBLEM: ${problem}`);
  if (problems.length > 0) {
    say(
      `chaos: FAILED; replay the schedule with: npm run chaos -- --replicas ${replicaCount} --seed ${seed} --duration ${durationMs / 1_000} --clients ${clientCount} --faults ${requestedClasses.join(',')}` +
        (recoveryMaxFlagMs === null ? '' : ` --recovery-max ${recoveryMaxFlagMs / 1_000}`),
    );
    say(`chaos: replica logs kept in ${dir}`);
  } else if (skipped.length > 0) {
    say(`chaos: passed, but NOT tested here: ${skipped.map((entry) => entry.fault).join(', ')} (see above)`);
  } else {
    say('chaos: passed');
  }
  if (plotFile !== null) {
    await writeSvgFile(
      plotFile,
      renderTimelineSvg({
        title: `pbft chaos: ${replicaCount} replicas (f = ${f}), ${clientCount} closed-loop clients, seed ${seed}: ${summary.verdict}`,
        subtitle:
          `${audit.acknowledged} transfers acknowledged, ${audit.lost} lost, ${audit.duplicated} duplicated; ` +
          'shaded: each fault from injection to healing; dashed: 2f+1 replicas settled in a new view',
        bucketS: 1,
        points: perSecondSeries(timeline, loadSpan),
        intervals: episodes.map((episode, index) => faultInterval(episode, times[index]!, loadStartedAtMs)),
        markers: settledViewChanges(viewPolls, 2 * f + 1).map((change) => ({
          atS: (change.atMs - loadStartedAtMs) / 1_000,
          label: `v${change.view}`,
        })),
        durationS: loadSeconds,
      }),
    );
    say(`chaos: timeline written to ${plotFile}`);
  }
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  return problems.length === 0 ? 0 : EXIT_FAILED;
}

/** An episode as the plot shades it: from injection to healing, labelled with its class and targets. */
function faultInterval(episode: EpisodeRecord, times: EpisodeTimes, originMs: number): PlotInterval {
  const what = episode.behaviour === undefined ? episode.fault : `${episode.fault} (${episode.behaviour})`;
  const on = episode.replicas.length === 0 ? 'clients' : episode.replicas.map((id) => `r${id}`).join(',');
  return {
    fromS: (times.startedAtMs - originMs) / 1_000,
    toS: (times.healedAtMs - originMs) / 1_000,
    label: `#${episode.index} ${what} ${on}`,
    kind: episode.fault,
  };
}

/** The hostile client of the 'hostile-client' episode under way. */
let hostile: HostileClient | null = null;
/** Per replica, the damage its storage took in the 'storage' episode under way. */
const damages = new Map<number, DamageReport>();
/** Per replica restarted by a 'storage' episode, where its log stood at the restart. */
const logOffsets = new Map<number, number>();

/**
 * Read the log a replica restarted on damaged storage wrote since its restart until it says
 * `recovered` (or the bound passes, or it has not started recovering STORAGE_DETECT_MS in).
 */
async function watchStorageRecovery(
  running: ProcessCluster,
  id: number,
  boundMs: number,
): Promise<{ reading: RecoveryReading; recoveredAfterMs: number | null }> {
  const replica = running.replicas[id]!;
  const restartedAtMs = clockMs();
  for (;;) {
    const log = await readFile(replica.logPath).catch(() => Buffer.alloc(0));
    const reading = readRecovery(log.subarray(logOffsets.get(id) ?? 0).toString('utf8'));
    const elapsedMs = clockMs() - restartedAtMs;
    if (reading.recovered) return { reading, recoveredAfterMs: elapsedMs };
    if (elapsedMs > boundMs || (!reading.started && elapsedMs > STORAGE_DETECT_MS))
      return { reading, recoveredAfterMs: null };
    await sleep(STORAGE_POLL_MS);
  }
}

async function inject(running: ProcessCluster, episode: FaultEpisode, targets: number[]): Promise<void> {
  if (episode.fault === 'hostile-client') {
    hostile = new HostileClient(running.config, new Random(seed + episode.index));
    await hostile.start();
    return;
  }
  for (const id of targets) {
    const replica = running.replicas[id]!;
    switch (episode.fault) {
      case 'kill':
      case 'primary-kill':
        await replica.kill9();
        break;
      case 'pause':
      case 'primary-pause':
        replica.pause();
        break;
      case 'byzantine':
        await replica.kill9();
        replica.start(['--byzantine', episode.behaviour!]);
        break;
      case 'storage':
        await replica.kill9();
        damages.set(id, await damageStorage(replica.home, episode.damage!));
        break;
      default:
        network!.inject(id, episode.fault);
    }
  }
}

async function heal(running: ProcessCluster, episode: FaultEpisode, targets: number[]): Promise<void> {
  if (episode.fault === 'hostile-client') {
    const report = await hostile!.stop();
    hostile = null;
    say(
      `chaos: #${episode.index} hostile client sent ${report.freshKeyRequests} requests from fresh keys, ${report.badSignatures} with bad signatures, ${report.oversizedFrames} oversized frames (reconnected ${report.reconnects} times)`,
    );
    return;
  }
  for (const id of targets) {
    const replica = running.replicas[id]!;
    switch (episode.fault) {
      case 'kill':
      case 'primary-kill':
        replica.start();
        break;
      case 'pause':
      case 'primary-pause':
        replica.resume();
        break;
      case 'byzantine':
        await replica.kill9();
        replica.start();
        break;
      case 'storage':
        logOffsets.set(id, (await stat(replica.logPath).catch(() => ({ size: 0 }))).size);
        replica.start();
        break;
      default:
        network!.heal(id);
    }
  }
}

let exitCode = EXIT_FAILED;
try {
  exitCode = await main();
} catch (error) {
  const message = (error as Error).message;
  say(`chaos: ${message}`);
  say(`chaos: FAILED (seed ${seed}); replica logs kept in ${dir}`);
  if (json)
    process.stdout.write(
      `${JSON.stringify({ ok: false, verdict: 'failed', seed, replicas: replicaCount, skipped, problems: [message] })}\n`,
    );
}
await (hostile as HostileClient | null)?.stop().catch(() => undefined);
await (load as LoadDriver | null)?.stop().catch(() => undefined);
for (const client of openClients) await client.close().catch(() => undefined);
await (cluster as ProcessCluster | null)?.stopAll();
network?.teardown();
if (exitCode === 0 && !values.keep) await rm(dir, { recursive: true, force: true });
process.exit(exitCode);
