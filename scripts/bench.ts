/**
 * npm run bench -- [--replicas 4] [--clients 32] [--duration 20] [--warmup 5] [--json]
 * npm run bench -- --soak            (10 minutes, RSS sampled every 10 s, judged flat or not)
 * npm run bench -- --attack BEHAVIOUR [--liar primary|backup] [--replace-max S] [--require-goals]
 * npm run bench -- … --plot FILE.svg (a timeline of the measured phases, see scripts/lib/plot.ts)
 *
 * Starts a real cluster (one `pbft node` process per replica, libp2p over loopback) in a temporary
 * folder, drives it with closed-loop clients (one funded account each, transfer after transfer),
 * warms up, then measures: committed transfers per second, client-observed latency p50/p99, CPU
 * per replica, peak RSS. It also measures this machine's ed25519 verification rate and relates
 * the throughput to the ceiling that signature checking alone sets:
 *
 *   every transfer's request signature is verified once by every replica, so on C cores
 *   throughput ≤ C × (verifications per second per core) ÷ replicas.
 *
 * With --attack it measures the same load twice, each time on a fresh cluster: fault-free, then
 * with one replica started with `pbft node --byzantine BEHAVIOUR` (the primary of view 0 or the
 * last backup), and prints R = tx/s under attack ÷ tx/s fault-free, both phases' latencies, when a
 * lying primary was replaced and the view changes, and the goals (scripts/lib/attack.ts).
 *
 * With --plot FILE.svg it writes committed transfers per second and p99 latency over the measured
 * time, with a dashed line where a new view settled; with --attack the fault-free phase comes
 * first and the attack phase after it, shaded.
 *
 * With --json the last stdout line is one JSON object. Processes and the temporary folder are
 * removed on exit and on Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ByzantineBehaviour } from '../src/byzantine/strategies.ts';
import type { PbftClient } from '../src/client/client.ts';
import { type CryptoBackend, createSigner, createVerifier } from '../src/crypto/index.ts';
import { LOG_LEVELS, type LogLevel } from '../src/node/cluster-config.ts';
import { Random } from '../src/util/random.ts';
import {
  type Attack,
  type AttackerRole,
  type AttackJudgement,
  defaultLiarRole,
  isClientAttack,
  judgeAttack,
  LIAR_ROLES,
  liarReplacedAtMs,
  liarReplica,
  parseAttackBehaviour,
  parseViewMetrics,
  REPLACEMENT_TIMEOUTS_MAX,
  type ViewReading,
  type ViewSample,
  viewChangesDuring,
} from './lib/attack.ts';
import { AckTimeline } from './lib/chaos-recovery.ts';
import { HostileClient } from './lib/hostile-client.ts';
import {
  type LoadDriver,
  type LoadOptions,
  type LoadWindow,
  startLoadInProcess,
  startLoadProcess,
} from './lib/load-generator.ts';
import { parseIntegerAtLeast, parseSvgPath } from './lib/options.ts';
import { type PlotMarker, renderTimelineSvg, type TimelinePlot, writeSvgFile } from './lib/plot.ts';
import { perSecondSeries, settledViewChanges, type TimelinePoint } from './lib/plot-series.ts';
import {
  formatStatuses,
  otherReplicaProcesses,
  ProcessCluster,
  type ReplicaProcessInfo,
  sleep,
  waitFor,
} from './lib/process-cluster.ts';

/** Accounts that only receive: transfers never touch a sender's own balance twice over. */
const SINK_ACCOUNTS = 4;
/** Loopback ports from here on (replica i: base + i; its metrics: base + n + i). */
const BASE_PORT_DEFAULT = 23_000;
const WARMUP_DEFAULT_S = 5;
const DURATION_DEFAULT_S = 20;
/**
 * A soak runs 10 minutes: at ~1,500 transfers/s the bounded caches (200,000 verified signatures)
 * fill in about 2.5 minutes and V8's heap reaches its working size by about 4, so a shorter run
 * cannot tell a cache filling up from a leak; the last 5 minutes are judged.
 */
const SOAK_DURATION_S = 600;
const SAMPLE_INTERVAL_DEFAULT_S = 10;
/**
 * Clients per ClusterConnection: like a service acting for many accounts. Stays well under the
 * replicas' per-connection frame limit (runtime.clientFramesPerSecondMax, 2,000/s by default).
 */
const ACCOUNTS_PER_CONNECTION_DEFAULT = 32;
/** How long one verification-rate measurement runs, per backend. */
const VERIFY_MEASURE_MS = 1_000;
/** Verifications between clock reads while measuring the rate. */
const VERIFY_CHUNK = 50;
/** About the size of a signed REQUEST body (client key, t, a transfer operation). */
const VERIFY_MESSAGE_BYTES = 128;
const CLUSTER_READY_TIMEOUT_MS = 60_000;
const CLIENT_TIMEOUT_MS = 30_000;
/** In a soak run, RSS may grow this much over the last third (fraction, or MiB if larger). */
const RSS_FLAT_TOLERANCE_FRACTION = 0.1;
const RSS_FLAT_TOLERANCE_MB = 16;
/** Samples averaged at two thirds and at the end of a soak run. */
const SOAK_WINDOW_SAMPLES = 3;
const PERCENT = 100;
/**
 * The share of the signature ceiling pbft aims for (docs/performance.md). Printed beside the CPU per
 * transfer: at this ratio the whole run may spend at most (verification per transfer) ÷ ratio.
 */
const RATIO_TARGET = 0.6;
/** /proc/stat counts CPU time in clock ticks of 1/100 s (USER_HZ). */
const CLOCK_TICKS_PER_SECOND = 100;
/** Above this much CPU used by other processes during the run, the result is flagged as disturbed. */
const OTHER_CPU_WARNING_PERCENT = 10;
/**
 * With --attack the warm-up defaults to none, in both phases alike: the measured attack phase then
 * starts with the load, so a lying primary's replacement (which needs requests waiting on it, so
 * it does not happen while the idle cluster starts) and what it cost are inside the measurement.
 */
const ATTACK_WARMUP_DEFAULT_S = 0;
/** The hostile client's random source (which frames it sends): fixed, so runs compare. */
const HOSTILE_CLIENT_SEED = 1;
/** With --attack, how often every replica's /metrics is read for its view. */
const VIEW_POLL_MS = 200;
/** A /metrics read that takes longer counts as no reading. */
const VIEW_READ_TIMEOUT_MS = 1_000;
/** --require-goals and a goal failed (1: the benchmark itself failed). */
const EXIT_GOAL_FAILED = 2;

interface BenchOptions {
  replicas: number;
  clients: number;
  duration?: number;
  warmup: number;
  soak: boolean;
  sampleInterval: number;
  basePort: number;
  load: 'process' | 'inline';
  accountsPerConnection: number;
  protocol: Record<string, number>;
  runtime: Record<string, number>;
  cpuProf?: string;
  keep: boolean;
  logLevel?: LogLevel;
  json: boolean;
  attack?: Attack;
  liar?: AttackerRole;
  replaceMax?: number;
  requireGoals: boolean;
  plot?: string;
}

interface Sample {
  /** Seconds since the measurement started. */
  atS: number;
  rssMb: number[];
  txPerSec: number;
  stableCheckpoint: number[];
}

interface BenchResult {
  replicas: number;
  clients: number;
  durationS: number;
  warmupS: number;
  load: 'process' | 'inline';
  accountsPerConnection: number;
  /** cluster.json settings changed from their defaults for this run (--protocol, --runtime). */
  overrides: Record<string, number>;
  transfers: number;
  errors: number;
  txPerSec: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  cpuPercentPerReplica: number[];
  /** CPU of the process running the clients, as % of one core. */
  loadCpuPercent: number;
  /** CPU of the benchmark process itself (the clients too when --load inline). */
  benchCpuPercent: number;
  /** CPU used by every other process on the machine meanwhile: a disturbed run shows here. */
  otherCpuPercent: number;
  /** `pbft node` processes not started by this run, found when it began. */
  otherReplicaProcesses: number;
  rssMbMax: number;
  verifyPerSecNative: number;
  verifyPerSecNoble: number;
  cores: number;
  ceilingTxPerSec: number;
  ratio: number;
  /** CPU of the replicas, the clients and the benchmark per committed transfer. */
  cpuMsPerTransfer: number;
  /** Of that, the replicas' CPU. */
  replicaCpuMsPerTransfer: number;
  /** What the ceiling counts per transfer: one native verification per replica. */
  verifyMsPerTransfer: number;
  node: string;
  cpuModel: string;
  soak?: { samples: Sample[]; rssFlat: boolean; rssGrowthMb: number[] };
}

function integerArgument(name: string, min: number): (value: string) => number {
  return (value) => {
    const parsed = parseIntegerAtLeast(value, min);
    if (parsed === null) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return parsed;
  };
}

/** A `name=integer` override of a cluster.json setting; repeated options add up. */
function setting(
  option: string,
  example: string,
): (text: string, settings: Record<string, number>) => Record<string, number> {
  return (text, settings) => {
    const match = /^([A-Za-z]+)=(\d+)$/.exec(text);
    if (match === null) throw new InvalidArgumentError(`${option} takes name=integer, e.g. ${example}`);
    return { ...settings, [match[1]!]: Number(match[2]) };
  };
}

function parseOptions(): BenchOptions {
  const program = new Command('bench')
    .description('throughput and latency of a real pbft cluster on this machine')
    .option('--replicas <n>', 'replicas (3f+1)', integerArgument('--replicas', 4), 4)
    .option('--clients <n>', 'closed-loop clients, one account each', integerArgument('--clients', 1), 32)
    .option(
      '--duration <s>',
      `seconds measured (default ${DURATION_DEFAULT_S}; ${SOAK_DURATION_S} with --soak)`,
      integerArgument('--duration', 1),
    )
    .option(
      '--warmup <s>',
      `seconds of load before measuring (${ATTACK_WARMUP_DEFAULT_S} with --attack)`,
      integerArgument('--warmup', 0),
      WARMUP_DEFAULT_S,
    )
    .option('--soak', `a ${SOAK_DURATION_S / 60}-minute run: print RSS every sample and judge it flat`, false)
    .option(
      '--sample-interval <s>',
      'seconds between RSS samples',
      integerArgument('--sample-interval', 1),
      SAMPLE_INTERVAL_DEFAULT_S,
    )
    .option(
      '--base-port <port>',
      'first loopback port',
      integerArgument('--base-port', 1024),
      BASE_PORT_DEFAULT,
    )
    .addOption(
      new Option('--load <where>', 'run the clients in a child process or in this one')
        .choices(['process', 'inline'])
        .default('process'),
    )
    .option(
      '--accounts-per-connection <n>',
      'clients that share one libp2p node and stream per replica (1: a node per client)',
      integerArgument('--accounts-per-connection', 1),
      ACCOUNTS_PER_CONNECTION_DEFAULT,
    )
    .option(
      '--protocol <name=value>',
      'override a protocol setting of cluster.json, e.g. batchSizeMax=64 (repeatable)',
      setting('--protocol', 'batchSizeMax=64'),
      {},
    )
    .option(
      '--runtime <name=value>',
      'override a runtime setting of cluster.json, e.g. verifyWorkers=1 (repeatable)',
      setting('--runtime', 'verifyWorkers=1'),
      {},
    )
    .option(
      '--cpu-prof <dir>',
      'write V8 CPU profiles of every replica (CPU.*.cpuprofile) and of the clients (load.cpuprofile)',
    )
    .option('--keep', 'keep the temporary cluster folder (logs, data)', false)
    .addOption(
      new Option(
        '--log-level <level>',
        "the replicas' log level (with --keep, to read what they did)",
      ).choices([...LOG_LEVELS]),
    )
    .option('--json', 'print one JSON object as the last line', false)
    .option(
      '--attack <behaviour>',
      'measure twice, fault-free and then with one replica running pbft node --byzantine BEHAVIOUR ' +
        '(or, for hostile-client, with a hostile client beside the load)',
      parseAttackBehaviour,
    )
    .addOption(
      new Option(
        '--liar <role>',
        'with --attack: the liar is the primary of view 0 (replica 0) or a backup (replica n-1); ' +
          'default primary for behaviours that lie in what the primary proposes, else backup',
      ).choices([...LIAR_ROLES]),
    )
    .option(
      '--replace-max <s>',
      `with --attack: a lying primary must be replaced within this many seconds (default ${REPLACEMENT_TIMEOUTS_MAX} view-change timeouts)`,
      integerArgument('--replace-max', 1),
    )
    .option('--require-goals', `with --attack: exit ${EXIT_GOAL_FAILED} when a goal fails`, false)
    .option(
      '--plot <file.svg>',
      'write a timeline: transfers/s and p99 latency per second, view changes, the attack phase shaded',
      (value: string) => {
        const path = parseSvgPath(value);
        if (path === null) throw new InvalidArgumentError('--plot takes a file ending in .svg');
        return path;
      },
    )
    .parse(process.argv);
  const options = program.opts<BenchOptions>();
  if ((options.replicas - 1) % 3 !== 0) program.error('--replicas must be 3f+1 (4, 7, 10, …)');
  if (options.clients > 1_000 - SINK_ACCOUNTS)
    program.error(`--clients must be at most ${1_000 - SINK_ACCOUNTS}`);
  if (options.attack === undefined) {
    if (options.liar !== undefined || options.replaceMax !== undefined || options.requireGoals)
      program.error('--liar, --replace-max and --require-goals need --attack BEHAVIOUR');
  } else {
    if (options.soak) program.error('--attack and --soak do not go together: run them separately');
    if (isClientAttack(options.attack) && options.liar !== undefined)
      program.error(`--liar names a replica; ${options.attack} is a client attack`);
    options.liar ??= defaultLiarRole(options.attack);
    if (program.getOptionValueSource('warmup') === 'default') options.warmup = ATTACK_WARMUP_DEFAULT_S;
  }
  return options;
}

/** Single-threaded verifications per second of one backend (same key, like a replica's peers). */
function measureVerifyRate(backend: CryptoBackend): number {
  const signer = createSigner(randomBytes(32), backend);
  const verifier = createVerifier(backend);
  const message = randomBytes(VERIFY_MESSAGE_BYTES);
  const signature = signer.sign(message);
  // Warm up the JIT and the public-key cache outside the timed loop.
  for (let i = 0; i < VERIFY_CHUNK; i++) verifier.verify(signature, message, signer.publicKey);
  let verified = 0;
  const startMs = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < VERIFY_MEASURE_MS) {
    for (let i = 0; i < VERIFY_CHUNK; i++) {
      if (!verifier.verify(signature, message, signer.publicKey)) throw new Error(`${backend}: bad verify`);
    }
    verified += VERIFY_CHUNK;
    elapsedMs = performance.now() - startMs;
  }
  return Math.round((verified * 1000) / elapsedMs);
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function log(line: string): void {
  // Progress goes to stderr so that --json leaves stdout to the result alone.
  process.stderr.write(`bench: ${line}\n`);
}

/** Everything started so far, stopped in reverse order; safe to call twice (exit and Ctrl-C). */
class Cleanup {
  private readonly steps: Array<() => Promise<void>> = [];
  private running: Promise<void> | null = null;

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) await step().catch(() => undefined);
    })();
    return this.running;
  }
}

async function waitUntilReady(cluster: ProcessCluster, observer: PbftClient): Promise<void> {
  const peers = cluster.replicas.length - 1;
  let last = '';
  await waitFor(
    'every replica to be connected to every other',
    async () => {
      const reports = await cluster.statuses(observer);
      last = formatStatuses(reports);
      return reports.every((report) => report.reachable && report.peersConnected === peers)
        ? true
        : undefined;
    },
    CLUSTER_READY_TIMEOUT_MS,
    () => last,
  );
}

/** CPU seconds the whole machine has spent busy (everything but idle and I/O wait), from /proc/stat. */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND;
}

function crashes(cluster: ProcessCluster): string[] {
  return cluster.replicas.flatMap((replica) => replica.unexpectedExits);
}

/**
 * A leak keeps growing; caches and V8's heap grow to their working size and stop, sometimes with a
 * last step when V8 enlarges the heap. So the first two thirds of a soak run are left to that, and
 * RSS counts as flat when, for every replica, the mean of the last few samples exceeds the mean of
 * the few at two thirds of the run by no more than the tolerance.
 */
function judgeSoak(samples: Sample[]): { rssFlat: boolean; rssGrowthMb: number[] } {
  const twoThirds = Math.floor((samples.length * 2) / 3);
  const around = samples.slice(Math.max(0, twoThirds - 1), twoThirds - 1 + SOAK_WINDOW_SAMPLES);
  const last = samples.slice(-SOAK_WINDOW_SAMPLES);
  if (samples.length < 2 * SOAK_WINDOW_SAMPLES) return { rssFlat: false, rssGrowthMb: [] };
  const mean = (window: Sample[], replica: number): number =>
    window.reduce((sum, sample) => sum + sample.rssMb[replica]!, 0) / window.length;
  const rssGrowthMb = last[0]!.rssMb.map((_, replica) => round(mean(last, replica) - mean(around, replica)));
  const rssFlat = rssGrowthMb.every(
    (growth, replica) =>
      growth <= Math.max(RSS_FLAT_TOLERANCE_MB, RSS_FLAT_TOLERANCE_FRACTION * mean(around, replica)),
  );
  return { rssFlat, rssGrowthMb };
}

/** What the machine offers, measured once per run (before any cluster starts). */
interface Machine {
  cores: number;
  /** `pbft node` processes not started by this run, found when it began. */
  strangers: ReplicaProcessInfo[];
  verifyPerSecNative: number;
  verifyPerSecNoble: number;
  ceilingTxPerSec: number;
}

function measureMachine(options: BenchOptions): Machine {
  const cores = availableParallelism();
  // Replicas left by another run (a testnet, a chaos run, an interrupted test) share the CPU.
  const strangers = otherReplicaProcesses();
  if (strangers.length > 0) {
    const pids = strangers.map((found) => found.pid).join(', ');
    log(
      `warning: ${strangers.length} other pbft replica processes are running (pids ${pids}); ` +
        'they compete for the CPU, so the numbers will be low',
    );
  }
  log('measuring ed25519 verification rates (1 s per backend)');
  const verifyPerSecNative = measureVerifyRate('native');
  const verifyPerSecNoble = measureVerifyRate('noble');
  const ceilingTxPerSec = (cores * verifyPerSecNative) / options.replicas;
  return { cores, strangers, verifyPerSecNative, verifyPerSecNoble, ceilingTxPerSec };
}

/** One replica's view, from its /metrics; null if it does not answer in time. */
async function readView(metricsPort: number): Promise<ViewReading | null> {
  try {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, {
      signal: AbortSignal.timeout(VIEW_READ_TIMEOUT_MS),
    });
    return parseViewMetrics(await response.text());
  } catch {
    return null;
  }
}

/** Reads every replica's view every VIEW_POLL_MS, from start() until stop(). */
class ViewWatch {
  private readonly samples: Array<{ atMs: number; replicas: Array<ViewReading | null> }> = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(metricsPorts: number[]) {
    this.loop = this.run(metricsPorts);
  }

  private async run(metricsPorts: number[]): Promise<void> {
    while (!this.stopped) {
      const replicas = await Promise.all(metricsPorts.map(readView));
      // Stamped when the readings are in: a view is seen no earlier than it is reported.
      this.samples.push({ atMs: performance.now(), replicas });
      await sleep(VIEW_POLL_MS);
    }
  }

  /** The samples, timed from `originMs` (performance.now() when the measured phase began). */
  async stop(originMs: number): Promise<ViewSample[]> {
    this.stopped = true;
    await this.loop;
    return this.samples.map((sample) => ({ atMs: sample.atMs - originMs, replicas: sample.replicas }));
  }
}

/** What a phase of an --attack run adds to the benchmark's numbers. */
interface PhaseViews {
  /** View changes a correct replica started during the measured phase (the most any one did). */
  viewChanges: number;
  /** Seconds from the start of the measured phase until the liar was no longer primary; null: never. */
  liarReplacedAfterS: number | null;
  /** A base view-change timeout of this cluster (viewChangeTimeoutTicks × tickMs). */
  viewChangeTimeoutS: number;
}

interface Phase {
  result: BenchResult;
  /** The slowest transfer that completed in the measured phase, in ms. */
  maxLatencyMs: number;
  /** Only when asked to watch views (--attack). */
  views?: PhaseViews;
  /** The measured phase second by second, for --plot. */
  timeline: PhaseTimeline;
}

/** What --plot draws of one measured phase, timed from its start. */
interface PhaseTimeline {
  points: TimelinePoint[];
  /** A new view settled (2f+1 correct replicas in it); empty unless views were watched. */
  viewChanges: PlotMarker[];
  durationS: number;
}

interface PhaseSetup {
  /** The replica started with --byzantine, and its behaviour; none in a fault-free phase. */
  liar?: { replica: number; behaviour: ByzantineBehaviour };
  /** A hostile client (scripts/lib/hostile-client.ts) runs beside the load, in this process. */
  hostileClient?: boolean;
  /** Read every replica's view throughout (--attack and --plot runs, both phases alike). */
  watchViews: boolean;
}

/** A fresh cluster, the load, the measurement; the cluster and its folder are gone on return. */
async function runPhase(
  options: BenchOptions,
  cleanup: Cleanup,
  machine: Machine,
  setup: PhaseSetup,
): Promise<Phase> {
  const phaseCleanup = new Cleanup();
  cleanup.add(() => phaseCleanup.run());
  try {
    return await measurePhase(options, phaseCleanup, machine, setup);
  } finally {
    await phaseCleanup.run();
  }
}

async function measurePhase(
  options: BenchOptions,
  cleanup: Cleanup,
  machine: Machine,
  setup: PhaseSetup,
): Promise<Phase> {
  const durationS = options.duration ?? (options.soak ? SOAK_DURATION_S : DURATION_DEFAULT_S);
  const { cores, strangers, verifyPerSecNative, verifyPerSecNoble, ceilingTxPerSec } = machine;

  const dir = await mkdtemp(join(tmpdir(), 'pbft-bench-'));
  if (!options.keep) cleanup.add(() => rm(dir, { recursive: true, force: true }));
  else log(`cluster folder: ${dir}`);
  const cluster = await ProcessCluster.create({
    dir,
    replicas: options.replicas,
    basePort: options.basePort,
    accounts: options.clients + SINK_ACCOUNTS,
    protocol: options.protocol,
    runtime: {
      ...options.runtime,
      ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
    },
  });
  cleanup.add(() => cluster.stopAll());
  if (options.cpuProf !== undefined) {
    // Replicas inherit the environment; a profile is written when a replica exits cleanly.
    process.env['NODE_OPTIONS'] = `--cpu-prof --cpu-prof-dir=${options.cpuProf}`;
  }
  const liar = setup.liar;
  log(
    `starting ${options.replicas} replicas on ports ${options.basePort}+` +
      (liar === undefined ? '' : `, replica ${liar.replica} with --byzantine ${liar.behaviour}`),
  );
  cluster.startAll((id) => (id === liar?.replica ? ['--byzantine', liar.behaviour] : []));
  delete process.env['NODE_OPTIONS'];
  const observer = await cluster.client(null, CLIENT_TIMEOUT_MS);
  cleanup.add(() => observer.close());
  await waitUntilReady(cluster, observer);
  const viewWatch = setup.watchViews
    ? new ViewWatch(cluster.config.replicas.map((replica) => replica.metricsPort))
    : null;
  if (viewWatch !== null) cleanup.add(async () => void (await viewWatch.stop(0)));

  const clientAccounts = cluster.accounts.slice(0, options.clients);
  const sinks = cluster.accounts.slice(options.clients);
  const loadOptions: LoadOptions = {
    clusterFile: cluster.config.path,
    accounts: clientAccounts.map((account) => ({
      keyFile: join(cluster.dir, 'accounts', `${account.name}.json`),
      counterFile: account.counterFile,
    })),
    sinkAddresses: sinks.map((account) => account.key.publicKeyHex),
    clientTimeoutMs: CLIENT_TIMEOUT_MS,
    accountsPerConnection: options.accountsPerConnection,
  };
  log(`connecting ${options.clients} clients (${options.load})`);
  const loadProfileArgs =
    options.cpuProf === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProf}`, '--cpu-prof-name=load.cpuprofile'];
  const load: LoadDriver =
    options.load === 'process'
      ? await startLoadProcess(loadOptions, loadProfileArgs)
      : await startLoadInProcess(loadOptions);
  cleanup.add(() => load.stop());
  if (setup.hostileClient) {
    const hostile = new HostileClient(cluster.config, new Random(HOSTILE_CLIENT_SEED));
    await hostile.start();
    cleanup.add(async () => {
      const report = await hostile.stop();
      log(
        `hostile client: ${report.freshKeyRequests} fresh-key requests, ${report.badSignatures} bad ` +
          `signatures, ${report.oversizedFrames} oversized frames, ${report.reconnects} reconnects`,
      );
    });
    log('hostile client started');
  }

  log(`warming up for ${options.warmup} s`);
  await sleep(options.warmup * 1000);
  await load.collect();
  const replicaStart = cluster.replicas.map((replica) => replica.sample()?.cpuSeconds ?? 0);
  const loadCpuStart = load.cpuSeconds();
  const benchCpuStart = process.cpuUsage();
  const machineBusyStart = machineBusySeconds();
  const startMs = performance.now();

  log(`measuring for ${durationS} s`);
  const measured: LoadWindow = { completed: 0, errors: 0, latenciesMs: [], lastError: null };
  const acks = new AckTimeline();
  const samples: Sample[] = [];
  let elapsedS = 0;
  while (elapsedS < durationS) {
    const stepS = Math.min(options.sampleInterval, durationS - elapsedS);
    const windowStartMs = performance.now();
    await sleep(stepS * 1000);
    const window = await load.collect();
    const windowS = (performance.now() - windowStartMs) / 1000;
    elapsedS = (performance.now() - startMs) / 1000;
    measured.completed += window.completed;
    measured.errors += window.errors;
    for (const latencyMs of window.latenciesMs) measured.latenciesMs.push(latencyMs);
    measured.lastError = window.lastError ?? measured.lastError;
    acks.add(window.sentAtMs, window.completedAtMs);
    const reports = await cluster.statuses(observer).catch(() => []);
    const sample: Sample = {
      atS: round(elapsedS),
      rssMb: cluster.replicas.map((replica) => round(replica.sample()?.rssMb ?? 0)),
      txPerSec: round(window.completed / windowS),
      stableCheckpoint: reports.map((report) => report.stableCheckpoint ?? -1),
    };
    samples.push(sample);
    if (options.soak) {
      log(
        `t=${sample.atS}s ${sample.txPerSec} tx/s rss ${sample.rssMb.join('/')} MiB h ${sample.stableCheckpoint.join('/')}`,
      );
    }
    const crashed = crashes(cluster);
    if (crashed.length > 0) throw new Error(crashed.join('; '));
  }
  const wallS = (performance.now() - startMs) / 1000;
  const viewSamples = viewWatch === null ? [] : await viewWatch.stop(startMs);
  const views = viewWatch === null ? undefined : phaseViews(viewSamples, cluster, liar?.replica);
  // The load's timestamps are clockMs(): performance.now() from the time origin.
  const startClockMs = performance.timeOrigin + startMs;
  const timeline: PhaseTimeline = {
    points: perSecondSeries(acks, { fromMs: startClockMs, toMs: startClockMs + wallS * 1_000 }),
    viewChanges: settledViewChanges(
      viewSamples,
      2 * cluster.config.f + 1,
      liar === undefined ? [] : [liar.replica],
    )
      .filter((change) => change.atMs >= 0)
      .map((change) => ({ atS: change.atMs / 1_000, label: `v${change.view}` })),
    durationS: wallS,
  };
  const replicaCpuSeconds = cluster.replicas.map(
    (replica, index) => (replica.sample()?.cpuSeconds ?? 0) - replicaStart[index]!,
  );
  const loadCpuSeconds = load.cpuSeconds() - loadCpuStart;
  const benchCpu = process.cpuUsage(benchCpuStart);
  const benchCpuSeconds = (benchCpu.user + benchCpu.system) / 1e6;
  const ownCpuSeconds =
    replicaCpuSeconds.reduce((sum, seconds) => sum + seconds, 0) +
    (options.load === 'process' ? loadCpuSeconds : 0) +
    benchCpuSeconds;
  const otherCpuPercent = round(
    (PERCENT * Math.max(0, machineBusySeconds() - machineBusyStart - ownCpuSeconds)) / wallS,
  );
  if (otherCpuPercent > OTHER_CPU_WARNING_PERCENT) {
    log(`warning: other processes used ${otherCpuPercent}% of a core meanwhile; the numbers are low`);
  }
  const cpuPercentPerReplica = replicaCpuSeconds.map((seconds) => round((PERCENT * seconds) / wallS));
  const loadCpuPercent = round((PERCENT * loadCpuSeconds) / wallS);
  const benchCpuPercent = round((PERCENT * benchCpuSeconds) / wallS);
  const rssMbMax = round(Math.max(...cluster.replicas.map((replica) => replica.sample()?.rssPeakMb ?? 0)));
  if (measured.errors > 0) log(`${measured.errors} transfers failed; last: ${measured.lastError}`);

  const sorted = measured.latenciesMs.sort((a, b) => a - b);
  const txPerSec = measured.completed / wallS;
  const meanMs = sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length);
  const replicaCpuSecondsTotal = replicaCpuSeconds.reduce((sum, seconds) => sum + seconds, 0);
  const committed = Math.max(1, measured.completed);
  const result: BenchResult = {
    replicas: options.replicas,
    clients: options.clients,
    durationS: round(wallS),
    warmupS: options.warmup,
    load: options.load,
    accountsPerConnection: options.accountsPerConnection,
    overrides: {
      ...Object.fromEntries(
        Object.entries(options.protocol).map(([name, value]) => [`protocol.${name}`, value]),
      ),
      ...Object.fromEntries(
        Object.entries(options.runtime).map(([name, value]) => [`runtime.${name}`, value]),
      ),
    },
    transfers: measured.completed,
    errors: measured.errors,
    txPerSec: round(txPerSec),
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    meanMs: round(meanMs),
    cpuPercentPerReplica,
    loadCpuPercent,
    benchCpuPercent,
    otherCpuPercent,
    otherReplicaProcesses: strangers.length,
    rssMbMax,
    verifyPerSecNative,
    verifyPerSecNoble,
    cores,
    ceilingTxPerSec: round(ceilingTxPerSec),
    ratio: round(txPerSec / ceilingTxPerSec, 3),
    cpuMsPerTransfer: round((1000 * ownCpuSeconds) / committed, 3),
    replicaCpuMsPerTransfer: round((1000 * replicaCpuSecondsTotal) / committed, 3),
    verifyMsPerTransfer: round((1000 * options.replicas) / verifyPerSecNative, 3),
    node: process.version,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    ...(options.soak ? { soak: { samples, ...judgeSoak(samples) } } : {}),
  };
  return {
    result,
    maxLatencyMs: round(sorted.at(-1) ?? 0),
    ...(views === undefined ? {} : { views }),
    timeline,
  };
}

function phaseViews(samples: ViewSample[], cluster: ProcessCluster, liar: number | undefined): PhaseViews {
  const { config } = cluster;
  // From the last reading before the measured phase began: a view change just after it counts.
  const measured = samples.slice(Math.max(0, samples.findIndex((sample) => sample.atMs > 0) - 1));
  const replacedAtMs = liar === undefined ? null : liarReplacedAtMs(samples, liar, config.f);
  return {
    viewChanges: viewChangesDuring(measured, liar ?? -1),
    liarReplacedAfterS: replacedAtMs === null ? null : round(replacedAtMs / 1000, 2),
    viewChangeTimeoutS: (config.protocol.viewChangeTimeoutTicks * config.runtime.tickMs) / 1000,
  };
}

async function run(options: BenchOptions, cleanup: Cleanup): Promise<BenchResult> {
  const machine = measureMachine(options);
  const phase = await runPhase(options, cleanup, machine, { watchViews: options.plot !== undefined });
  if (options.plot !== undefined) {
    const { result } = phase;
    await writePlot(options.plot, {
      title: `pbft bench: ${result.replicas} replicas, ${result.clients} closed-loop clients: ${result.txPerSec} transfers/s, p99 ${result.p99Ms} ms`,
      subtitle: `${result.durationS} s measured after ${result.warmupS} s warm-up; dashed: 2f+1 replicas settled in a new view`,
      bucketS: 1,
      points: phase.timeline.points,
      intervals: [],
      markers: phase.timeline.viewChanges,
      durationS: phase.timeline.durationS,
      timeAxisTitle: 'seconds measured',
    });
  }
  return phase.result;
}

/** One phase of an --attack run: the benchmark's numbers and the view changes it saw. */
interface AttackPhaseResult extends BenchResult {
  /** The slowest completed transfer: a stall shorter than 1 % of the transfers is not in p99. */
  maxMs: number;
  viewChanges: number;
}

interface AttackResult {
  attack: Attack;
  /** Which replica lied: the primary of view 0 (replica 0) or a backup (replica n-1). */
  /** Which replica lied, or null for a client attack (role 'client'). */
  liar: { role: AttackerRole; replica: number | null };
  replicas: number;
  clients: number;
  /** tx/s under attack ÷ tx/s fault-free. */
  R: number;
  faultFree: AttackPhaseResult;
  underAttack: AttackPhaseResult;
  /** A lying primary only: seconds into the measured attack phase until it was replaced; null: never. */
  liarReplacedAfterS?: number | null;
  /** A lying primary only: the bound it must be replaced within, in seconds. */
  replacementBoundS?: number;
  goals: AttackJudgement['goals'];
  /** Every goal passed. */
  pass: boolean;
}

async function runAttack(options: BenchOptions, cleanup: Cleanup): Promise<AttackResult> {
  const attack = options.attack!;
  const role = options.liar!;
  const replica = role === 'client' ? null : liarReplica(role, options.replicas);
  const machine = measureMachine(options);
  log('phase 1 of 2: fault-free');
  const faultFree = await runPhase(options, cleanup, machine, { watchViews: true });
  let underAttack: Phase;
  if (isClientAttack(attack) || replica === null) {
    log(`phase 2 of 2: a hostile client beside the load (${attack})`);
    underAttack = await runPhase(options, cleanup, machine, { watchViews: true, hostileClient: true });
  } else {
    log(
      `phase 2 of 2: replica ${replica} (the ${role === 'primary' ? 'primary of view 0' : 'last backup'}) lies`,
    );
    underAttack = await runPhase(options, cleanup, machine, {
      watchViews: true,
      liar: { replica, behaviour: attack },
    });
  }
  const views = underAttack.views!;
  if (options.plot !== undefined)
    await writePlot(options.plot, attackPlot(options, faultFree.timeline, underAttack.timeline, replica));
  const replacementBoundS = options.replaceMax ?? REPLACEMENT_TIMEOUTS_MAX * views.viewChangeTimeoutS;
  const judgement = judgeAttack({
    role,
    txPerSecFaultFree: faultFree.result.txPerSec,
    txPerSecUnderAttack: underAttack.result.txPerSec,
    replacedAfterS: views.liarReplacedAfterS,
    replacementBoundS,
  });
  return {
    attack,
    liar: { role, replica },
    replicas: options.replicas,
    clients: options.clients,
    R: judgement.R,
    faultFree: {
      ...faultFree.result,
      maxMs: faultFree.maxLatencyMs,
      viewChanges: faultFree.views!.viewChanges,
    },
    underAttack: { ...underAttack.result, maxMs: underAttack.maxLatencyMs, viewChanges: views.viewChanges },
    ...(role === 'primary' ? { liarReplacedAfterS: views.liarReplacedAfterS, replacementBoundS } : {}),
    goals: judgement.goals,
    pass: judgement.pass,
  };
}

/**
 * Both phases of an --attack run on one axis: fault-free first, then the attack phase (a fresh
 * cluster, so its views count from 0 again), shaded.
 */
function attackPlot(
  options: BenchOptions,
  faultFree: PhaseTimeline,
  underAttack: PhaseTimeline,
  liar: number | null,
): TimelinePlot {
  const who = liar === null ? 'a hostile client' : `replica ${liar} (${options.liar})`;
  const offsetS = faultFree.durationS;
  const later = <T extends { atS: number }>(items: readonly T[]): T[] =>
    items.map((item) => ({ ...item, atS: item.atS + offsetS }));
  return {
    title: `pbft bench --attack ${options.attack}: ${options.replicas} replicas, ${options.clients} closed-loop clients`,
    subtitle: `${round(faultFree.durationS)} s fault-free, then ${round(underAttack.durationS)} s on a fresh cluster with ${who} lying; dashed: 2f+1 correct replicas settled in a new view`,
    bucketS: 1,
    points: [...faultFree.points, ...later(underAttack.points)],
    intervals: [
      {
        fromS: offsetS,
        toS: offsetS + underAttack.durationS,
        label:
          liar === null
            ? `attack: ${options.attack} beside the load`
            : `attack: replica ${liar} (${options.liar}) runs --byzantine ${options.attack}`,
        kind: 'attack',
      },
    ],
    markers: [...faultFree.viewChanges, ...later(underAttack.viewChanges)],
    durationS: offsetS + underAttack.durationS,
    timeAxisTitle: 'seconds measured (fault-free phase, then the attack phase)',
    legend: { interval: 'attack phase', marker: 'view change' },
  };
}

async function writePlot(file: string, plot: TimelinePlot): Promise<void> {
  await writeSvgFile(file, renderTimelineSvg(plot));
  log(`timeline written to ${file}`);
}

function formatReplacement(result: AttackResult): string {
  const after = result.liarReplacedAfterS;
  const bound = `bound ${result.replacementBoundS} s`;
  if (after === undefined) return '';
  if (after === null) return `never (not in the ${result.underAttack.durationS} s measured; ${bound})`;
  if (after < 0) return `${-after} s before the measured phase began, during the warm-up (${bound})`;
  return `after ${after} s (${bound})`;
}

function formatAttack(result: AttackResult): string {
  const { faultFree, underAttack } = result;
  const who =
    result.liar.role === 'primary'
      ? `replica ${result.liar.replica} (the primary of view 0)`
      : result.liar.role === 'backup'
        ? `replica ${result.liar.replica} (a backup)`
        : 'a client';
  const rows: Array<[string, string, string]> = [
    ['', 'fault-free', 'under attack'],
    ['throughput (transfers/s)', String(faultFree.txPerSec), String(underAttack.txPerSec)],
    [
      'committed / failed',
      `${faultFree.transfers} / ${faultFree.errors}`,
      `${underAttack.transfers} / ${underAttack.errors}`,
    ],
    ['latency p50 (ms)', String(faultFree.p50Ms), String(underAttack.p50Ms)],
    ['latency p99 (ms)', String(faultFree.p99Ms), String(underAttack.p99Ms)],
    ['latency max (ms)', String(faultFree.maxMs), String(underAttack.maxMs)],
    ['view changes', String(faultFree.viewChanges), String(underAttack.viewChanges)],
    [
      'CPU per replica (%)',
      faultFree.cpuPercentPerReplica.join(' '),
      underAttack.cpuPercentPerReplica.join(' '),
    ],
    ['CPU of other processes (%)', String(faultFree.otherCpuPercent), String(underAttack.otherCpuPercent)],
  ];
  const lines: Array<[string, string]> = [
    [
      'attack',
      `${result.attack} by ${who}; ${result.replicas} replicas, ` +
        `${result.clients} clients, ${faultFree.durationS} s / ${underAttack.durationS} s measured ` +
        `after ${faultFree.warmupS} s warm-up, each phase on a fresh cluster`,
    ],
    ['R', `${result.R} (transfers/s under attack ÷ fault-free)`],
    ...(result.liar.role === 'primary'
      ? [['liar replaced', formatReplacement(result)] as [string, string]]
      : []),
    ...result.goals.map((goal) => [`goal ${goal.name}`, goal.pass ? 'PASS' : 'FAIL'] as [string, string]),
  ];
  const width = Math.max(...rows.map(([name]) => name.length), ...lines.map(([name]) => name.length));
  const column = Math.max(...rows.map(([, value]) => value.length)) + 2;
  return [
    lines[0]!,
    ...rows.map(([name, before, after]) => [name, `${before.padEnd(column)}${after}`] as [string, string]),
    ...lines.slice(1),
  ]
    .map(([name, value]) => `${name.padEnd(width)}  ${value}`)
    .join('\n');
}

function formatHuman(result: BenchResult): string {
  const rows: Array<[string, string]> = [
    [
      'replicas / clients',
      `${result.replicas} / ${result.clients} (load ${result.load}, ${result.accountsPerConnection} per connection)`,
    ],
    ...(Object.keys(result.overrides).length === 0
      ? []
      : [
          [
            'settings changed',
            Object.entries(result.overrides)
              .map(([name, value]) => `${name}=${value}`)
              .join(', '),
          ] as [string, string],
        ]),
    ['measured', `${result.durationS} s after ${result.warmupS} s warm-up`],
    ['throughput', `${result.txPerSec} transfers/s (${result.transfers} committed, ${result.errors} failed)`],
    ['latency', `p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, mean ${result.meanMs} ms`],
    ['CPU per replica', `${result.cpuPercentPerReplica.map((cpu) => `${cpu}%`).join(' ')} of a core`],
    ['CPU of the clients', `${result.loadCpuPercent}% (benchmark process ${result.benchCpuPercent}%)`],
    ['CPU of other processes', `${result.otherCpuPercent}% (not ours: a busy machine lowers every number)`],
    ...(result.otherReplicaProcesses === 0
      ? []
      : [
          [
            'other replicas',
            `${result.otherReplicaProcesses} pbft replica processes of another run were running`,
          ] as [string, string],
        ]),
    ['peak RSS', `${result.rssMbMax} MiB (largest replica)`],
    [
      'ed25519 verify',
      `${result.verifyPerSecNative}/s native, ${result.verifyPerSecNoble}/s noble (one core)`,
    ],
    [
      'signature ceiling',
      `${result.ceilingTxPerSec} transfers/s = ${result.cores} cores × ${result.verifyPerSecNative} ÷ ${result.replicas} replicas`,
    ],
    ['ratio', `${result.ratio} of the ceiling`],
    ['CPU per transfer', `${result.cpuMsPerTransfer} ms (replicas ${result.replicaCpuMsPerTransfer} ms)`],
    [
      `at ratio ${RATIO_TARGET}`,
      `at most ${round(result.verifyMsPerTransfer / RATIO_TARGET, 3)} ms per transfer with every core busy ` +
        `(the ceiling counts ${result.verifyMsPerTransfer} ms of verification)`,
    ],
  ];
  if (result.soak !== undefined) {
    rows.push([
      'soak RSS',
      `${result.soak.rssFlat ? 'flat' : 'GROWING'}: growth over the last third ${result.soak.rssGrowthMb.join(' / ')} MiB`,
    ]);
  }
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n');
}

const options = parseOptions();
const cleanup = new Cleanup();
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    process.stderr.write(`bench: ${signal}, stopping the cluster\n`);
    void cleanup.run().then(() => process.exit(130));
  });
}
try {
  if (options.attack === undefined) {
    const result = await run(options, cleanup);
    await cleanup.run();
    process.stdout.write(`${options.json ? JSON.stringify(result) : formatHuman(result)}\n`);
  } else {
    const result = await runAttack(options, cleanup);
    await cleanup.run();
    process.stdout.write(`${options.json ? JSON.stringify(result) : formatAttack(result)}\n`);
    if (options.requireGoals && !result.pass) process.exitCode = EXIT_GOAL_FAILED;
  }
} catch (error) {
  await cleanup.run();
  if (!interrupted) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
// Clients closed with transfers in flight still hold retry timers (with --load inline).
if (!interrupted) process.exit();
